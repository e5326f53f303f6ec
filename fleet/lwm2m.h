/* lwm2m.h: what the LwM2M server (server/coap/lwm2m_*.c) asks the fleet,
 * besides the delivery core's check-ins and reports (delivery.h), which it
 * makes the way every front does. No CoAP in here.
 *
 * Threads: every call may be made from any thread. */
#ifndef DFOTAD_FLEET_LWM2M_H
#define DFOTAD_FLEET_LWM2M_H

#include <stdatomic.h>
#include <stdint.h>

#include "delivery.h"

#define LWM2M_ENDPOINT_MAX 64

/* The device an endpoint name stands for: the device whose lwm2m_endpoint
 * is ep, else the device whose id is ep. 0 with device filled and *drive
 * (its trigger is lwm2m: dfotad drives its updates over /5), -1 (no such
 * device), or -2: not known yet while the fleet loads after a start, or
 * the store did not answer (ask again after DELIVERY_STORE_RETRY s). */
int delivery_lwm2m_endpoint(struct fleet *f, const char *ep, char device[DEVICE_ID_MAX + 1],
                            int *drive);

/* A registration as the admin API shows it on its device. */
struct lwm2m_view {
  int registered; /* 0: de-registered or expired (the rest is the last known) */
  char endpoint[LWM2M_ENDPOINT_MAX + 1];
  char lwm2m[8], binding[8];
  long lifetime;
  int64_t registered_at, updated_at; /* ms, wall clock */
  char objects[256];
  char firmware_version[64]; /* /3/0/3, "" unknown */
  int fw_state, fw_result;   /* /5/0/3 and /5/0/5, -1 unknown */
  int fw_protocols;          /* /5/0/8 as a bit mask (1 << protocol), -1 unknown */
  int fw_delivery;           /* /5/0/9, -1 unknown */
  char address[64], protocol[8];
};
/* Replaces the view shown on device (after a registration, an update, a
 * read or a notification). */
void delivery_lwm2m_view(struct fleet *f, const char *device, const struct lwm2m_view *v);
/* An event on the device ("lwm2m_register", "lwm2m_write"...), detail a
 * short text or NULL. */
void delivery_lwm2m_event(struct fleet *f, const char *device, const char *kind,
                          const char *detail);

/* Whether the device may be told to install what it downloaded (Execute
 * /5/0/2) now: 0 yes (its rollout runs and its window is open), > 0 the
 * seconds until the window opens, -1 its rollout is paused (or starting),
 * -2 it has no live rollout (cancelled, ended: the offer is gone). */
int delivery_lwm2m_may_update(struct fleet *f, const char *device);

/* The wake list (lwm2m_int.h): up to max device ids pushed since
 * *cursor into ids; how many (*cursor moves on). *all is set when the
 * caller fell behind what the list keeps: every registered device is to be
 * asked. Its own small lock, never f->mu: callable at every tick. A new
 * reader starts at delivery_lwm2m_wake_head(). */
int delivery_lwm2m_woken(uint64_t *cursor, char (*ids)[DEVICE_ID_MAX + 1], int max, int *all);
uint64_t delivery_lwm2m_wake_head(void);

/* Counters for /metrics, added to by the LwM2M server. */
struct lwm2m_stats {
  _Atomic uint64_t registrations, updates, deregistrations, expiries;
  _Atomic uint64_t refused_unknown, refused_identity, refused_other;
  _Atomic uint64_t requests_ok, requests_error, requests_timeout;
  _Atomic uint64_t notifications;
  _Atomic int64_t registered; /* now */
};
extern struct lwm2m_stats lwm2m_stats;

#endif
