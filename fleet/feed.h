/* feed.h: the live event feed: a bounded ring of the fleet's recent events
 * (device and rollout state changes, alarms, uploads) for the admin API's
 * event stream (GET /api/v1/events). In memory only: ids rise from 1 for
 * the life of the process and a restart begins again (a client resuming
 * from an id the ring no longer holds is told so, see feed_read).
 *
 * Threads: every call may be made from any thread. The feed has its own
 * lock and never takes the fleet's, so fleet code calls it with f->mu held
 * (lock order: f->mu, then the feed's). */
#ifndef DFOTAD_FEED_H
#define DFOTAD_FEED_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define FEED_RING 4096       /* events kept */
#define FEED_DETAIL_MAX 2048 /* bytes of an event's detail; a longer one is cut */
#define FEED_KIND_MAX 24

struct device;
struct rollout;

/* One event as a reader sees it. */
struct feed_event {
  uint64_t id;
  int64_t at; /* ms since the epoch */
  char kind[FEED_KIND_MAX];
  char rollout[16];   /* "" none */
  char device[65];    /* "" none */
  const char *detail; /* compact JSON object text */
};

/* Appends an event. detail: a JSON object, consumed (NULL: {}). rollout
 * and device may be NULL. */
void feed_publish(const char *kind, const char *rollout, const char *device, json_t *detail);

/* The fleet's hooks, each called from one place where the fleet already
 * records what happened (f->mu held): */
/* devices.c device_event(): kind "device." + kind, detail the event's text */
void feed_device(const struct device *d, const char *kind, const char *detail_text);
/* rollout.c rollout_mark(): a "rollout" event when the rollout's state or
 * wave changed since the feed last saw it (not at every device's step),
 * and an "alarm" when it paused for a reason other than the operator */
void feed_rollout(const struct rollout *r);
/* rollout.c rollout_alarm(): an "alarm" */
void feed_alarm(const struct rollout *r, const char *text);

/* Calls fn for each event after `after` (oldest first), at most max
 * events, while fn returns 0; fn must not call into the feed. Returns the
 * id of the last event passed to fn (after when none). *gap is set when
 * events after `after` have already left the ring (a reader that resumes
 * from there has missed some). */
uint64_t feed_read(uint64_t after, int max, int (*fn)(const struct feed_event *e, void *arg),
                   void *arg, int *gap);
/* The id of the newest event (0: none yet). */
uint64_t feed_last(void);
/* Waits until an event newer than `seen` exists, feed_kick() is called, or
 * timeout_ms passes. Returns feed_last(). seen UINT64_MAX: for a kick or
 * the time only (events then cost their publishers no wake-up). */
uint64_t feed_wait(uint64_t seen, int timeout_ms);
/* Wakes every feed_wait(). */
void feed_kick(void);

#endif
