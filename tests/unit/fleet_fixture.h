/* fleet_fixture.h: a real store (SQLite in a temporary directory) and a
 * fleet on it, for the fleet's unit tests: packages uploaded through the
 * store, devices and rollouts made through the admin calls, check-ins and
 * reports through the delivery core, exactly as the fronts make them.
 * Tests look at a device's record (fleet_int.h) with the fleet's lock held. */
#ifndef DFOTAD_FLEET_FIXTURE_H
#define DFOTAD_FLEET_FIXTURE_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleet/delivery.h"
#include "fleet/fleet.h"
#include "fleet/fleet_admin.h"
#include "fleet/fleet_int.h"
#include "store/store.h"
#include "util/log.h"
#include "util/util.h"
#include "unit.h"

#define FX_MODEL "BG95-M3"
#define FX_SECRET "secret-0123456789abcdef"

struct fx {
  char dir[64];
  struct store *s;
  struct fleet *f;
};

/* The bases the check-ins see: every protocol but coaps and ftps. */
static const char *const fx_bases[PROTO_COUNT] = {"http://127.0.0.1:8080", "https://127.0.0.1:8443",
                                                  "coap://127.0.0.1:5683", "",
                                                  "ftp://127.0.0.1:2121",  ""};

static inline int fx_open(struct fx *x, const char *name)
{
  char err[256];

  snprintf(x->dir, sizeof(x->dir), "/tmp/dfotad-%s-XXXXXX", name);
  x->s = NULL;
  x->f = NULL;
  log_set_level(LOG_WARN);
  if (mkdtemp(x->dir) == NULL || store_open(x->dir, 20, &x->s, err, sizeof(err)) < 0 ||
      fleet_open(x->s, &x->f, err, sizeof(err)) < 0) {
    fprintf(stderr, "fixture: %s\n", err);
    return -1;
  }
  delivery_set_bases(x->f, fx_bases);
  return 0;
}

static inline void fx_close(struct fx *x)
{
  char cmd[128];

  fleet_close(x->f);
  store_close(x->s);
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", x->dir);
  if (system(cmd) != 0)
    fprintf(stderr, "fixture: could not remove %s\n", x->dir);
}

/* Uploads a package of size bytes (a repeating pattern); its id into id
 * (PKG_ID_LEN + 1 bytes). 0 or -1. */
static inline int fx_package(struct fx *x, const char *from, const char *to, const char *name,
                             uint64_t size, char *id)
{
  struct package_meta m = {FX_MODEL, from, to, name};
  struct upload *u = NULL;
  struct package *p = NULL;
  unsigned char buf[4096];

  for (size_t i = 0; i < sizeof(buf); i++)
    buf[i] = (unsigned char)(i * 7 + from[0] + to[0]);
  if (store_upload_begin(x->s, &m, size + 1, &u) != STORE_OK)
    return -1;
  for (uint64_t off = 0; off < size; off += sizeof(buf)) {
    size_t n = size - off < sizeof(buf) ? (size_t)(size - off) : sizeof(buf);
    if (store_upload_write(u, buf, n) != STORE_OK) {
      store_upload_abort(u);
      return -1;
    }
  }
  if (store_upload_finish(u, &p) != STORE_OK)
    return -1;
  snprintf(id, PKG_ID_LEN + 1, "%s", p->id);
  package_unref(p);
  return 0;
}

/* PUT /api/v1/devices/ID with body (JSON text); the HTTP status. */
static inline int fx_put(struct fx *x, const char *id, const char *body)
{
  json_t *b = json_loads(body, 0, NULL), *out = NULL;
  int st;

  if (b == NULL)
    return -1;
  st = fleet_device_put(x->f, id, b, &out);
  if (st >= 300 && out != NULL)
    fprintf(stderr, "# PUT %s: %d %s\n", id, st,
            json_string_value(json_object_get(json_object_get(out, "error"), "message")));
  json_decref(b);
  json_decref(out);
  return st;
}

/* A device of the fixture's model on version with the fixture's secret. */
static inline int fx_device(struct fx *x, const char *id, const char *version)
{
  char body[256];

  snprintf(body, sizeof(body), "{\"model\":\"%s\",\"version\":\"%s\",\"secret\":\"%s\"}", FX_MODEL,
           version, FX_SECRET);
  return fx_put(x, id, body);
}

/* Creates a rollout from body (JSON text); its id into rid (16 bytes) on
 * 201; the status. msg (may be NULL): the error message, if any. */
static inline int fx_rollout_create(struct fx *x, const char *body, char *rid, char *msg,
                                    size_t msglen)
{
  json_t *b = json_loads(body, 0, NULL), *out = NULL;
  int st;

  rid[0] = '\0';
  if (b == NULL)
    return -1;
  st = fleet_rollout_create(x->f, b, &out);
  if (st == 201)
    snprintf(rid, 16, "%s", json_string_value(json_object_get(out, "id")));
  if (msg != NULL)
    snprintf(msg, msglen, "%s",
             json_string_value(json_object_get(json_object_get(out, "error"), "message")) ?: "");
  json_decref(b);
  json_decref(out);
  return st;
}

/* Creates and starts a rollout to target over the devices named in
 * devices (a JSON array's text) with extra fields (text after a comma, or
 * ""); 0 or -1. */
static inline int fx_rollout(struct fx *x, const char *target, const char *devices,
                             const char *extra, char *rid)
{
  char body[1024];
  json_t *out = NULL;
  int st;

  snprintf(body, sizeof(body),
           "{\"name\":\"t\",\"model\":\"%s\",\"target_version\":\"%s\","
           "\"selector\":{\"devices\":%s}%s%s}",
           FX_MODEL, target, devices, extra[0] ? "," : "", extra);
  if (fx_rollout_create(x, body, rid, NULL, 0) != 201)
    return -1;
  st = fleet_rollout_action(x->f, rid, "start", &out);
  json_decref(out);
  return st == 200 ? 0 : -1;
}

/* A rollout action; the status. */
static inline int fx_action(struct fx *x, const char *rid, const char *action)
{
  json_t *out = NULL;
  int st = fleet_rollout_action(x->f, rid, action, &out);

  json_decref(out);
  return st;
}

static inline void fx_who(struct device_identity *who, const char *id, enum proto p)
{
  memset(who, 0, sizeof(*who));
  who->device_id = id;
  who->secret = FX_SECRET;
  who->addr = "127.0.0.1";
  who->proto = p;
}

/* A check-in over HTTP (version and transport may be NULL). */
static inline enum verdict fx_checkin(struct fx *x, const char *id, const char *version,
                                      const char *transport, struct checkin_answer *a)
{
  struct device_identity who;

  fx_who(&who, id, PROTO_HTTP);
  delivery_checkin(x->f, &who, version, transport, a);
  return a->verdict;
}

/* A report of URC lines (json: one JSON object) over HTTP. */
static inline enum verdict fx_report(struct fx *x, const char *id, int json, const char *body,
                                     struct report_answer *a)
{
  struct device_identity who;

  fx_who(&who, id, PROTO_HTTP);
  delivery_report(x->f, &who, json, body, strlen(body), a);
  return a->verdict;
}

/* One URC line, as a module prints it. */
static inline enum verdict fx_urc(struct fx *x, const char *id, const char *stage, long code)
{
  char line[96];
  struct report_answer a;

  snprintf(line, sizeof(line), "+QIND: \"FOTA\",\"%s\",%ld\r\n", stage, code);
  return fx_report(x, id, 0, line, &a);
}

/* A copy of a device's record (the scalars; pointers are not to be
 * followed) and of its rollout's, read under the fleet's lock. */
struct fx_dev {
  int found;
  enum dstate state;
  int attempts;
  int64_t retry_at, state_since;
  long fail_code, last_code;
  char token[FLEET_TOKEN_LEN + 1], package_id[PKG_ID_LEN + 1], reason[160];
  int has_version;
  char version[64];
  uint64_t bytes_served, contiguous, size;
  int n_ival, resumes, segments, percent, device_percent, transport;
  char protocol[8];
  /* its rollout */
  enum rstate rstate;
  int wave, n_alarms, failed_base;
  long code_count; /* of the code asked for in fx_get */
  char rreason[200];
};

static inline struct fx_dev fx_get(struct fx *x, const char *id, long code)
{
  struct fx_dev v;
  struct device *d;

  memset(&v, 0, sizeof(v));
  pthread_mutex_lock(&x->f->mu);
  d = device_find(x->f, id);
  if (d != NULL) {
    v.found = 1;
    v.state = d->state;
    v.attempts = d->attempts;
    v.retry_at = d->retry_at;
    v.state_since = d->state_since;
    v.fail_code = d->fail_code;
    v.last_code = d->last_code;
    snprintf(v.token, sizeof(v.token), "%s", d->token);
    snprintf(v.package_id, sizeof(v.package_id), "%s", d->package_id);
    snprintf(v.reason, sizeof(v.reason), "%s", d->reason);
    v.has_version = d->version != NULL;
    snprintf(v.version, sizeof(v.version), "%s", d->version ? d->version : "");
    v.bytes_served = d->bytes_served;
    v.contiguous = d->contiguous;
    v.size = d->size;
    v.n_ival = d->n_ival;
    v.resumes = d->resumes;
    v.segments = d->segments;
    v.percent = percent_of(d);
    v.device_percent = d->device_percent;
    v.transport = d->transport;
    snprintf(v.protocol, sizeof(v.protocol), "%s", d->protocol);
    if (d->rollout != NULL) {
      char key[24];
      snprintf(key, sizeof(key), "%ld", code);
      v.rstate = d->rollout->state;
      v.wave = d->rollout->wave;
      v.failed_base = d->rollout->failed_base;
      v.n_alarms = (int)json_array_size(d->rollout->alarms);
      v.code_count = (long)json_integer_value(json_object_get(d->rollout->codes, key));
      snprintf(v.rreason, sizeof(v.rreason), "%s", d->rollout->reason);
    }
  }
  pthread_mutex_unlock(&x->f->mu);
  return v;
}

/* Closes the fleet and opens it again on the same store (as a restart
 * does), waiting (up to 60 s) until it has loaded; 0 or -1. */
static inline int fx_reopen(struct fx *x)
{
  char err[256];
  int loading = 1;

  store_sync(x->s);
  fleet_close(x->f);
  x->f = NULL;
  if (fleet_open(x->s, &x->f, err, sizeof(err)) != 0) {
    fprintf(stderr, "fixture: reopen: %s\n", err);
    return -1;
  }
  for (int64_t t0 = now_ms(); loading && now_ms() - t0 < 60000;) {
    pthread_mutex_lock(&x->f->mu);
    loading = x->f->loading;
    pthread_mutex_unlock(&x->f->mu);
    if (loading)
      usleep(10000);
  }
  delivery_set_bases(x->f, fx_bases);
  return loading ? -1 : 0;
}

/* Do the rollout's kept wave counts (r->wcount, members below r->wcut by
 * state) agree with its members? 1 or 0. */
static inline int fx_wave_counts_ok(struct fx *x, const char *rid)
{
  struct rollout *r;
  int c[D_NSTATES] = {0}, ok;

  pthread_mutex_lock(&x->f->mu);
  r = rollout_find(x->f, rid);
  for (int i = 0; r != NULL && i < r->n_members; i++)
    c[r->mstate[i]] += r->mpos[i] < r->wcut;
  ok = r != NULL && memcmp(c, r->wcount, sizeof(c)) == 0;
  pthread_mutex_unlock(&x->f->mu);
  return ok;
}

/* Moves a device's state (and retry time) back by ms, as if that much
 * time had passed: timeouts without sleeping. */
static inline void fx_age(struct fx *x, const char *id, int64_t ms)
{
  struct device *d;

  pthread_mutex_lock(&x->f->mu);
  d = device_find(x->f, id);
  if (d != NULL) {
    d->state_since -= ms;
    if (d->retry_at > 0)
      d->retry_at -= ms;
  }
  pthread_mutex_unlock(&x->f->mu);
}

#endif
