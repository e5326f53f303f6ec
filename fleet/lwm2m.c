/* lwm2m.c: the fleet's side of LwM2M devices: the device fields
 * lwm2m_endpoint and trigger, the registration view shown on a device, and
 * the endpoint lookup. The campaign itself goes through the delivery core
 * (check-ins and reports, delivery.h) like every other front. */
#include "autoconfig.h"

#include "lwm2m.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/util.h"
#include "fleet_int.h"
#include "lwm2m_int.h"

struct lwm2m_stats lwm2m_stats;

struct device_lwm2m {
  char endpoint[LWM2M_ENDPOINT_MAX + 1]; /* "": the device id */
  int drive;                             /* trigger = lwm2m */
  struct lwm2m_view view;
  int has_view;
  struct device *dev;           /* whose */
  struct device_lwm2m *ep_next; /* in ep_index, while endpoint is set */
};

/* The devices with an lwm2m_endpoint set, by endpoint (f->mu held): a
 * registration's lookup is one bucket, never a scan of the fleet. */
#define EP_BUCKETS 4096
static struct device_lwm2m *ep_index[EP_BUCKETS];

static unsigned ep_hash(const char *s)
{
  uint32_t h = 2166136261u; /* FNV-1a */

  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 16777619u;
  return h % EP_BUCKETS;
}

static void set_endpoint(struct device_lwm2m *lw, const char *ep)
{
  if (lw->endpoint[0] != '\0')
    for (struct device_lwm2m **p = &ep_index[ep_hash(lw->endpoint)]; *p; p = &(*p)->ep_next)
      if (*p == lw) {
        *p = lw->ep_next;
        break;
      }
  lw->ep_next = NULL;
  snprintf(lw->endpoint, sizeof(lw->endpoint), "%s", ep);
  if (lw->endpoint[0] != '\0') {
    unsigned h = ep_hash(lw->endpoint);
    lw->ep_next = ep_index[h];
    ep_index[h] = lw;
  }
}

/* Devices whose trigger is lwm2m (f->mu held): a wave's admission looks
 * for them among its members only when there are any. */
static int n_drive;

static void set_drive(struct device_lwm2m *lw, int drive)
{
  n_drive += (drive != 0) - (lw->drive != 0);
  lw->drive = drive != 0;
}

static struct device_lwm2m *lw_of(struct device *d)
{
  if (d->lwm2m == NULL && (d->lwm2m = calloc(1, sizeof(*d->lwm2m))) != NULL)
    d->lwm2m->dev = d;
  return d->lwm2m;
}

static int endpoint_ok(const char *s)
{
  size_t n = strlen(s);

  if (n == 0 || n > LWM2M_ENDPOINT_MAX)
    return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
      return 0;
  return 1;
}

const char *lwm2m_body_error(json_t *b)
{
  json_t *v = json_object_get(b, "lwm2m_endpoint");

  if (v && !json_is_null(v) && (!json_is_string(v) || !endpoint_ok(json_string_value(v))))
    return "lwm2m_endpoint must be 1 to 64 printable characters without spaces, or null";
  v = json_object_get(b, "trigger");
  if (v && (!json_is_string(v) || (strcmp(json_string_value(v), "checkin") != 0 &&
                                   strcmp(json_string_value(v), "lwm2m") != 0)))
    return "trigger must be checkin or lwm2m";
  return NULL;
}

void lwm2m_apply(struct device *d, json_t *b)
{
  json_t *v;
  struct device_lwm2m *lw;

  if (json_object_get(b, "lwm2m_endpoint") == NULL && json_object_get(b, "trigger") == NULL)
    return;
  if ((lw = lw_of(d)) == NULL)
    return;
  if ((v = json_object_get(b, "lwm2m_endpoint")) != NULL)
    set_endpoint(lw, json_is_string(v) ? json_string_value(v) : "");
  if ((v = json_object_get(b, "trigger")) != NULL)
    set_drive(lw, strcmp(json_string_value(v), "lwm2m") == 0);
}

void lwm2m_doc(const struct device *d, json_t *o)
{
  if (d->lwm2m == NULL)
    return;
  if (d->lwm2m->endpoint[0] != '\0')
    json_object_set_new(o, "lwm2m_endpoint", json_string(d->lwm2m->endpoint));
  if (d->lwm2m->drive)
    json_object_set_new(o, "trigger", json_string("lwm2m"));
}

void lwm2m_from_doc(struct device *d, json_t *doc)
{
  const char *ep = json_string_value(json_object_get(doc, "lwm2m_endpoint"));
  const char *tr = json_string_value(json_object_get(doc, "trigger"));
  struct device_lwm2m *lw;

  if ((ep == NULL || !endpoint_ok(ep)) && (tr == NULL || strcmp(tr, "lwm2m") != 0))
    return;
  if ((lw = lw_of(d)) == NULL)
    return;
  if (ep != NULL && endpoint_ok(ep))
    set_endpoint(lw, ep);
  set_drive(lw, tr != NULL && strcmp(tr, "lwm2m") == 0);
}

static json_t *int_or_null(long v) { return v >= 0 ? json_integer(v) : json_null(); }

void lwm2m_json(const struct device *d, json_t *o)
{
  const struct device_lwm2m *lw = d->lwm2m;
  const struct lwm2m_view *v;
  json_t *r, *protos;

  json_object_set_new(o, "trigger", json_string(lw && lw->drive ? "lwm2m" : "checkin"));
  json_object_set_new(o, "lwm2m_endpoint",
                      lw && lw->endpoint[0] ? json_string(lw->endpoint) : json_null());
  if (lw == NULL || !lw->has_view)
    return;
  v = &lw->view;
  protos = json_array();
  if (v->fw_protocols >= 0)
    for (int i = 0; i < 8; i++)
      if (v->fw_protocols & (1 << i))
        json_array_append_new(protos, json_integer(i));
  r = json_pack("{s:b,s:s,s:s,s:s,s:I,s:o,s:o,s:s,s:o,s:o,s:o,s:o,s:o,s:s,s:s}", "registered",
                v->registered, "endpoint", v->endpoint, "lwm2m", v->lwm2m, "binding", v->binding,
                "lifetime", (json_int_t)v->lifetime, "registered_at", time_json(v->registered_at),
                "updated_at", time_json(v->updated_at), "objects", v->objects, "firmware_version",
                v->firmware_version[0] ? json_string(v->firmware_version) : json_null(), "fw_state",
                int_or_null(v->fw_state), "fw_update_result", int_or_null(v->fw_result),
                "fw_protocols", v->fw_protocols >= 0 ? protos : (json_decref(protos), json_null()),
                "fw_delivery", int_or_null(v->fw_delivery), "address", v->address, "protocol",
                v->protocol);
  json_object_set_new(o, "lwm2m", r);
}

void lwm2m_device_free(struct device *d)
{
  if (d->lwm2m != NULL) {
    set_endpoint(d->lwm2m, "");
    set_drive(d->lwm2m, 0);
  }
  free(d->lwm2m);
  d->lwm2m = NULL;
}

int delivery_lwm2m_endpoint(struct fleet *f, const char *ep, char device[DEVICE_ID_MAX + 1],
                            int *drive)
{
  struct device *d = NULL;
  int loading;
  /* while the fleet loads after a start: the device of that id first (an
   * endpoint of another name is known once its device is loaded) */
  int stored = fleet_fault_in(f, ep);

  device_lock(f);
  loading = f->loading;
  /* an lwm2m_endpoint set on some device wins over another device's id
   * (and is this fleet's device: the index is the process's) */
  for (struct device_lwm2m *lw = ep_index[ep_hash(ep)]; lw && d == NULL; lw = lw->ep_next)
    if (strcmp(lw->endpoint, ep) == 0 && device_find(f, lw->dev->id) == lw->dev)
      d = lw->dev;
  if (d == NULL && (d = device_find(f, ep)) != NULL && d->lwm2m && d->lwm2m->endpoint[0] != '\0' &&
      strcmp(d->lwm2m->endpoint, ep) != 0)
    d = NULL; /* its endpoint is another name */
  if (d != NULL) {
    snprintf(device, DEVICE_ID_MAX + 1, "%s", d->id);
    *drive = d->lwm2m != NULL && d->lwm2m->drive;
  }
  pthread_mutex_unlock(&f->mu);
  return d != NULL ? 0 : loading || stored < 0 ? -2 : -1;
}

void delivery_lwm2m_view(struct fleet *f, const char *device, const struct lwm2m_view *v)
{
  struct device *d;

  device_lock(f);
  if ((d = device_find(f, device)) != NULL && lw_of(d) != NULL) {
    d->lwm2m->view = *v;
    d->lwm2m->has_view = 1;
  }
  pthread_mutex_unlock(&f->mu);
}

void delivery_lwm2m_event(struct fleet *f, const char *device, const char *kind, const char *detail)
{
  struct device *d;

  device_lock(f);
  if ((d = device_find(f, device)) != NULL)
    device_event(f, d, kind, detail ? json_pack("{s:s}", "detail", detail) : NULL);
  pthread_mutex_unlock(&f->mu);
}

int delivery_lwm2m_may_update(struct fleet *f, const char *device)
{
  struct device *d;
  int wait = -2;

  device_lock(f);
  if ((d = device_find(f, device)) != NULL && d->rollout != NULL) {
    const struct rollout *r = d->rollout;
    if (r->state == R_RUNNING)
      wait = rollout_window_wait(r, now_ms());
    else if (r->state == R_PAUSED || r->state == R_STARTING)
      wait = -1;
  }
  pthread_mutex_unlock(&f->mu);
  return wait;
}

/* ---- the wake list --------------------------------------------------------
 * Device ids whose wave was just admitted, in a ring the LwM2M servers (one
 * per CoAP(S) engine, each with its own cursor) read at their next tick. A
 * server that fell more than the ring behind is told to ask every
 * registered device once (what lwm2m_poll would do anyway, only sooner).
 * The ring (WAKE_MAX ids, ~1 MiB) is allocated at the first wave that has
 * LwM2M-driven devices. */
#define WAKE_MAX 16384
static pthread_mutex_t wake_mu = PTHREAD_MUTEX_INITIALIZER;
static char (*wake_ring)[DEVICE_ID_MAX + 1];
static uint64_t wake_head; /* ids pushed so far */

void lwm2m_wake_wave(struct rollout *r)
{
  int cutoff;

  if (r->state != R_RUNNING || n_drive == 0)
    return;
  cutoff = rollout_wave_cutoff(r, r->wave);
  pthread_mutex_lock(&wake_mu);
  for (int i = 0; i < r->n_members; i++) {
    const struct device *d;
    unsigned char st = r->mstate[i];
    /* the member arrays first: a record is read only for the wave's
     * members not yet at an end */
    if (r->mpos[i] >= cutoff || st == D_SUCCEEDED || st == D_NO_PATH)
      continue;
    d = r->members[i];
    if (d->lwm2m == NULL || !d->lwm2m->drive)
      continue;
    if (wake_ring == NULL && (wake_ring = calloc(WAKE_MAX, sizeof(*wake_ring))) == NULL)
      break; /* the devices' next lwm2m_poll asks for them */
    snprintf(wake_ring[wake_head++ % WAKE_MAX], DEVICE_ID_MAX + 1, "%s", d->id);
  }
  pthread_mutex_unlock(&wake_mu);
}

int delivery_lwm2m_woken(uint64_t *cursor, char (*ids)[DEVICE_ID_MAX + 1], int max, int *all)
{
  int n = 0;

  pthread_mutex_lock(&wake_mu);
  *all = 0;
  if (*cursor > wake_head || wake_head - *cursor > WAKE_MAX) {
    *all = 1;
    *cursor = wake_head;
  }
  for (; *cursor < wake_head && n < max; n++)
    memcpy(ids[n], wake_ring[(*cursor)++ % WAKE_MAX], DEVICE_ID_MAX + 1);
  pthread_mutex_unlock(&wake_mu);
  return n;
}

uint64_t delivery_lwm2m_wake_head(void)
{
  uint64_t h;

  pthread_mutex_lock(&wake_mu);
  h = wake_head;
  pthread_mutex_unlock(&wake_mu);
  return h;
}

void lwm2m_metrics(FILE *m)
{
  static const struct {
    const char *name, *help;
    _Atomic uint64_t *v;
  } c[] = {
      {"dfotad_lwm2m_registrations_total", "LwM2M registrations accepted.",
       &lwm2m_stats.registrations},
      {"dfotad_lwm2m_updates_total", "LwM2M registration updates.", &lwm2m_stats.updates},
      {"dfotad_lwm2m_deregistrations_total", "LwM2M de-registrations.",
       &lwm2m_stats.deregistrations},
      {"dfotad_lwm2m_expiries_total", "LwM2M registrations whose lifetime ran out.",
       &lwm2m_stats.expiries},
      {"dfotad_lwm2m_refused_unknown_total", "LwM2M registrations of unknown endpoints (4.03).",
       &lwm2m_stats.refused_unknown},
      {"dfotad_lwm2m_refused_identity_total",
       "LwM2M registrations refused: the DTLS identity is another device's, or plain CoAP not "
       "allowed.",
       &lwm2m_stats.refused_identity},
      {"dfotad_lwm2m_refused_other_total",
       "LwM2M registrations refused as malformed or over a "
       "bound.",
       &lwm2m_stats.refused_other},
      {"dfotad_lwm2m_notifications_total", "LwM2M notifications received.",
       &lwm2m_stats.notifications},
  };

  for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
    fprintf(m, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", c[i].name, c[i].help, c[i].name,
            c[i].name, (unsigned long long)atomic_load(c[i].v));
  fprintf(m,
          "# HELP dfotad_lwm2m_requests_total LwM2M requests to devices, by result.\n"
          "# TYPE dfotad_lwm2m_requests_total counter\n"
          "dfotad_lwm2m_requests_total{result=\"ok\"} %llu\n"
          "dfotad_lwm2m_requests_total{result=\"error\"} %llu\n"
          "dfotad_lwm2m_requests_total{result=\"timeout\"} %llu\n",
          (unsigned long long)atomic_load(&lwm2m_stats.requests_ok),
          (unsigned long long)atomic_load(&lwm2m_stats.requests_error),
          (unsigned long long)atomic_load(&lwm2m_stats.requests_timeout));
  fprintf(m,
          "# HELP dfotad_lwm2m_registered LwM2M registrations held now.\n"
          "# TYPE dfotad_lwm2m_registered gauge\ndfotad_lwm2m_registered %lld\n",
          (long long)atomic_load(&lwm2m_stats.registered));
}
