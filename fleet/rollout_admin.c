/* rollout_admin.c: rollouts as the admin API sees them: the specification
 * a create body gives (checked whole, every field typed and bounded, an
 * unknown field refused), the stored document, and the actions. */
#include "autoconfig.h"

#include <limits.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../store/store.h"
#include "../util/log.h"
#include "../util/util.h"
#include "fleet_int.h"
#include "lwm2m_int.h"

static json_t *spec_json(const struct rollout *r)
{
  json_t *waves = json_array(), *o;

  for (int i = 0; i < r->n_waves; i++)
    json_array_append_new(waves, json_integer(r->waves[i]));
  o = json_pack(
      "{s:s,s:s,s:s,s:s,s:O,s:o,s:f,s:f,s:i,s:i,s:i,s:i,s:o,s:o}", "id", r->id, "name", r->name,
      "model", r->model, "target_version", r->target, "selector", r->selector, "waves", waves,
      "success_threshold", r->success_threshold, "max_failure_rate", r->max_failure_rate,
      "max_concurrent", r->max_concurrent, "max_attempts", r->max_attempts, "timeout", r->timeout,
      "retry_backoff", r->retry_backoff, "start_at", time_json(r->start_at), "window",
      r->win_from < 0 ? json_null()
                      : json_pack("{s:i,s:i}", "from_hour", r->win_from, "to_hour", r->win_to));
  if (o != NULL)
    json_object_set_new(o, "transport",
                        r->transport >= 0 ? json_string(proto_name((enum proto)r->transport))
                                          : json_null());
  return o;
}

json_t *rollout_json(const struct rollout *r)
{
  json_t *o = spec_json(r), *counts = json_object();

  for (int s = D_PENDING; s < D_NSTATES; s++)
    json_object_set_new(counts, dstate_name((enum dstate)s), json_integer(r->count[s]));
  json_object_set_new(o, "state", json_string(rstate_name(r->state)));
  json_object_set_new(o, "wave", json_integer(r->wave + 1));
  json_object_set_new(o, "wave_percent",
                      json_integer(r->n_waves ? r->waves[r->wave < r->n_waves ? r->wave : 0] : 0));
  json_object_set_new(o, "devices", json_integer(r->n_members));
  json_object_set_new(o, "counts", counts);
  json_object_set(o, "codes", r->codes);
  json_object_set_new(o, "bytes_served", json_integer((json_int_t)r->bytes_served));
  json_object_set_new(o, "reason", r->reason[0] ? json_string(r->reason) : json_null());
  json_object_set(o, "alarms", r->alarms);
  json_object_set_new(o, "created", time_json(r->created));
  json_object_set_new(o, "started", time_json(r->started));
  if (r->state == R_STARTING)
    json_object_set_new(o, "starting",
                        json_pack("{s:i,s:i}", "enrolled", r->job_done, "candidates", r->job_of));
  return o;
}

json_t *rollout_doc(const struct rollout *r)
{
  json_t *o = spec_json(r);

  json_object_set_new(o, "state", json_string(rstate_name(r->state)));
  json_object_set_new(o, "wave_index", json_integer(r->wave));
  json_object_set_new(o, "failed_base", json_integer(r->failed_base));
  json_object_set_new(o, "aside", json_integer(r->aside));
  /* the waves' cutoffs stay where they were across a restart, also when
   * the members at the last positions were deleted */
  json_object_set_new(o, "pos_end", json_integer(r->pos_end));
  json_object_set_new(o, "reason", json_string(r->reason));
  json_object_set(o, "alarms", r->alarms);
  json_object_set(o, "codes", r->codes);
  json_object_set_new(o, "bytes_served", json_integer((json_int_t)r->bytes_served));
  json_object_set_new(o, "created_ms", json_integer(r->created));
  json_object_set_new(o, "started_ms", json_integer(r->started));
  json_object_set_new(o, "start_at_ms", json_integer(r->start_at));
  return o;
}

/* Parses "2026-11-24T06:50:00Z" (UTC only). */
static int parse_time(const char *s, int64_t *ms)
{
  struct tm tm;
  const char *end;

  memset(&tm, 0, sizeof(tm));
  end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == NULL || (strcmp(end, "Z") != 0 && strcmp(end, "+00:00") != 0))
    return -1;
  *ms = (int64_t)timegm(&tm) * 1000;
  return 0;
}

/* An integer field within [min, max] (def when absent or null). A float,
 * even 1.0, is refused: no silent rounding. NULL, or what is wrong. */
static const char *int_field(json_t *b, const char *key, long long min, long long max, int def,
                             int *out, char *err, size_t errlen)
{
  json_t *v = json_object_get(b, key);

  *out = def;
  if (v == NULL || json_is_null(v))
    return NULL;
  if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
    snprintf(err, errlen, "%s must be a whole number from %lld to %lld", key, min, max);
    return err;
  }
  *out = (int)json_integer_value(v);
  return NULL;
}

/* A percentage: any JSON number from 0 to 100. */
static const char *pct_field(json_t *b, const char *key, double def, double *out, char *err,
                             size_t errlen)
{
  json_t *v = json_object_get(b, key);

  *out = def;
  if (v == NULL || json_is_null(v))
    return NULL;
  if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 100) {
    snprintf(err, errlen, "%s must be a percentage (a number from 0 to 100)", key);
    return err;
  }
  *out = json_number_value(v);
  return NULL;
}

/* A JSON string of 1..max bytes without control characters or NUL. */
static int good_text(json_t *v, size_t max)
{
  const char *s = json_string_value(v);
  size_t n = json_string_length(v);

  if (s == NULL || n == 0 || n > max || strlen(s) != n)
    return 0;
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f)
      return 0;
  return 1;
}

static const char *const spec_keys[] = {"name",
                                        "model",
                                        "target_version",
                                        "selector",
                                        "waves",
                                        "success_threshold",
                                        "max_failure_rate",
                                        "max_concurrent",
                                        "max_attempts",
                                        "timeout",
                                        "retry_backoff",
                                        "start_at",
                                        "window",
                                        "transport"};

/* Fills r's specification from a create body (f: the fleet, to check the
 * transport; strict: unknown fields refused) or a stored document (f NULL).
 * NULL when fine, else what is wrong (possibly in err). */
static const char *spec_from_json(struct fleet *f, struct rollout *r, json_t *b, char *err,
                                  size_t errlen)
{
  json_t *v, *w;
  const char *key, *e;
  size_t i;

  if (!json_is_object(b))
    return "the body must be a JSON object";
  if (f != NULL)
    json_object_foreach(b, key, v)
    {
      int ok = 0;
      for (i = 0; i < sizeof(spec_keys) / sizeof(spec_keys[0]) && !ok; i++)
        ok = strcmp(key, spec_keys[i]) == 0;
      if (!ok) {
        /* a typo must never drop a limit silently */
        snprintf(err, errlen, "unknown field '%.60s'", key);
        return err;
      }
    }
#define STR(field, key, max)                                                                       \
  do {                                                                                             \
    json_t *s_ = json_object_get(b, key);                                                          \
    if (!good_text(s_, max))                                                                       \
      return key " is required (a string of 1 to " #max " characters, no control characters)";     \
    r->field = strdup(json_string_value(s_));                                                      \
  } while (0)
  STR(name, "name", 200);
  STR(model, "model", 128);
  STR(target, "target_version", 128);
#undef STR
  v = json_object_get(b, "selector");
  if (v != NULL && !json_is_null(v)) {
    const char *keys[] = {"tags", "versions", "devices"};
    if (!json_is_object(v))
      return "selector must be an object";
    json_object_foreach(v, key, w) if (strcmp(key, "group") != 0 && strcmp(key, "tags") != 0 &&
                                       strcmp(key, "versions") != 0 && strcmp(key, "devices") != 0)
    {
      snprintf(err, errlen, "unknown field 'selector.%.60s'", key);
      return err;
    }
    if (json_object_get(v, "group") && !good_text(json_object_get(v, "group"), 128))
      return "selector.group must be a string of 1 to 128 characters";
    for (size_t k = 0; k < 3; k++) {
      json_t *a = json_object_get(v, keys[k]), *el;
      if (a == NULL)
        continue;
      if (!json_is_array(a) || json_array_size(a) > 100000)
        return "selector.tags, .versions and .devices must be arrays of strings";
      json_array_foreach(a, i, el) if (!good_text(el, 128)) return "selector arrays hold strings "
                                                                   "of 1 to 128 characters";
    }
    r->selector = json_deep_copy(v);
  } else {
    r->selector = json_object();
  }
  v = json_object_get(b, "waves");
  if (v == NULL || json_is_null(v)) {
    r->waves[0] = 100;
    r->n_waves = 1;
  } else {
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > MAX_WAVES)
      return "waves must be an array of 1 to 16 cumulative percentages";
    json_array_foreach(v, i, w)
    {
      if (!json_is_integer(w) || json_integer_value(w) < 1 || json_integer_value(w) > 100 ||
          (i > 0 && json_integer_value(w) <= r->waves[i - 1]))
        return "waves must be whole numbers rising from 1 to 100, such as [1, 10, 50, 100]";
      r->waves[i] = (int)json_integer_value(w);
    }
    r->n_waves = (int)json_array_size(v);
    if (r->waves[r->n_waves - 1] != 100)
      return "the last wave must be 100";
  }
  if ((e = pct_field(b, "success_threshold", 95, &r->success_threshold, err, errlen)) ||
      (e = pct_field(b, "max_failure_rate", 10, &r->max_failure_rate, err, errlen)) ||
      (e = int_field(b, "max_concurrent", 0, MAX_ROLLOUT_CONCURRENT, 0, &r->max_concurrent, err,
                     errlen)) ||
      (e = int_field(b, "max_attempts", 1, 100, 3, &r->max_attempts, err, errlen)) ||
      (e = int_field(b, "timeout", 1, MAX_ROLLOUT_TIMEOUT, 86400, &r->timeout, err, errlen)) ||
      (e = int_field(b, "retry_backoff", 0, 86400, 30, &r->retry_backoff, err, errlen)))
    return e;
  v = json_object_get(b, "start_at");
  if (v != NULL && !json_is_null(v) &&
      (!json_is_string(v) || parse_time(json_string_value(v), &r->start_at) < 0))
    return "start_at must be a UTC time such as \"2026-11-24T06:00:00Z\" (or null)";
  r->win_from = -1;
  v = json_object_get(b, "window");
  if (v != NULL && !json_is_null(v)) {
    json_t *a = json_object_get(v, "from_hour"), *z = json_object_get(v, "to_hour");
    if (!json_is_object(v) || json_object_size(v) != 2 || !json_is_integer(a) ||
        !json_is_integer(z) || json_integer_value(a) < 0 || json_integer_value(a) > 23 ||
        json_integer_value(z) < 0 || json_integer_value(z) > 24 ||
        json_integer_value(a) == json_integer_value(z))
      return "window is {\"from_hour\": 0..23, \"to_hour\": 0..24}, in UTC (or null)";
    r->win_from = (int)json_integer_value(a);
    r->win_to = (int)json_integer_value(z);
  }
  if (f != NULL)
    return transport_from_json(f, json_object_get(b, "transport"), &r->transport);
  {
    enum proto t;
    const char *ts = json_string_value(json_object_get(b, "transport"));
    r->transport = ts != NULL && proto_parse(ts, &t) == 0 ? (int)t : -1;
  }
  return NULL;
}

struct rollout *rollout_from_doc(const char *id, json_t *doc)
{
  struct rollout *r = rollout_alloc();
  json_t *v;
  char err[160];

  if (r == NULL)
    return NULL;
  snprintf(r->id, sizeof(r->id), "%s", id);
  if (spec_from_json(NULL, r, doc, err, sizeof(err)) != NULL ||
      rstate_parse(json_string_value(json_object_get(doc, "state")) ?: "", &r->state) < 0) {
    rollout_free(r);
    return NULL;
  }
  r->wave = (int)json_integer_value(json_object_get(doc, "wave_index"));
  r->failed_base = (int)json_integer_value(json_object_get(doc, "failed_base"));
  r->aside = (int)json_integer_value(json_object_get(doc, "aside"));
  r->pos_end = (int)json_integer_value(json_object_get(doc, "pos_end"));
  if (r->pos_end < 0 || r->pos_end >= INT_MAX / 2)
    r->pos_end = 0; /* the members' positions say, as they load */
  if (r->wave < 0 || r->wave >= r->n_waves)
    r->wave = 0;
  snprintf(r->reason, sizeof(r->reason), "%s",
           json_string_value(json_object_get(doc, "reason")) ?: "");
  if (json_is_array(v = json_object_get(doc, "alarms"))) {
    json_decref(r->alarms);
    r->alarms = json_deep_copy(v);
  }
  if (json_is_object(v = json_object_get(doc, "codes"))) {
    json_decref(r->codes);
    r->codes = json_deep_copy(v);
  }
  r->bytes_served = (uint64_t)json_integer_value(json_object_get(doc, "bytes_served"));
  r->created = json_integer_value(json_object_get(doc, "created_ms"));
  r->started = json_integer_value(json_object_get(doc, "started_ms"));
  r->start_at = json_integer_value(json_object_get(doc, "start_at_ms"));
  return r;
}

/* ---- admin API ----------------------------------------------------------- */

int fleet_rollout_create(struct fleet *f, json_t *body, json_t **out)
{
  int refused = fleet_loading_gate(f, out);
  if (refused)
    return refused;
  struct rollout *r = rollout_alloc();
  const char *err;
  char ebuf[160];

  if (r == NULL) {
    *out = fleet_error("internal", "out of memory");
    return 500;
  }
  pthread_mutex_lock(&f->mu); /* the fronts' bases, for the transport */
  err = spec_from_json(f, r, body, ebuf, sizeof(ebuf));
  pthread_mutex_unlock(&f->mu);
  if (err != NULL) {
    rollout_free(r);
    *out = fleet_error("bad_request", err);
    return 400;
  }
  r->id[0] = 'r';
  random_base32(r->id + 1, 10);
  r->created = now_ms();
  r->state = R_DRAFT;
  pthread_mutex_lock(&f->mu);
  r->next = f->rollouts;
  f->rollouts = r;
  rollout_mark(r);
  *out = rollout_json(r);
  pthread_mutex_unlock(&f->mu);
  store_sync(f->store);
  return 201;
}

int fleet_rollout_get(struct fleet *f, const char *id, json_t **out)
{
  struct rollout *r;

  pthread_mutex_lock(&f->mu);
  r = rollout_find(f, id);
  *out = r ? rollout_json(r) : fleet_error("not_found", "no such rollout");
  pthread_mutex_unlock(&f->mu);
  return r ? 200 : 404;
}

int fleet_rollouts_list(struct fleet *f, json_t **out)
{
  json_t *arr = json_array();

  pthread_mutex_lock(&f->mu);
  for (struct rollout *r = f->rollouts; r; r = r->next)
    json_array_insert_new(arr, 0, rollout_json(r)); /* oldest first */
  pthread_mutex_unlock(&f->mu);
  *out = json_pack("{s:o}", "rollouts", arr);
  return 200;
}

int fleet_rollout_action(struct fleet *f, const char *id, const char *action, json_t **out)
{
  int refused = fleet_loading_gate(f, out);
  if (refused)
    return refused;
  struct rollout *r;
  const char *err = NULL;
  int background = 0;

  pthread_mutex_lock(&f->mu);
  r = rollout_find(f, id);
  if (r == NULL) {
    pthread_mutex_unlock(&f->mu);
    *out = fleet_error("not_found", "no such rollout");
    return 404;
  }
  if (strcmp(action, "start") == 0) {
    if (r->state != R_DRAFT)
      err = "only a draft rollout can start";
    else {
      r->state = R_STARTING;
      r->started = now_ms();
      r->reason[0] = '\0';
      r->job = JOB_START;
      r->job_done = r->job_of = 0;
      rollout_mark(r);
      background = f->n_devices > START_INLINE_MAX;
    }
  } else if (strcmp(action, "pause") == 0) {
    if (r->state != R_RUNNING)
      err = "only a running rollout can pause";
    else
      rollout_pause(f, r, "paused by the operator");
  } else if (strcmp(action, "resume") == 0) {
    if (r->state != R_PAUSED)
      err = "only a paused rollout can resume";
    else {
      const int *c = rollout_wave_counts(r, rollout_wave_cutoff(r, r->wave));
      int failed = c[D_FAILED], no_path = c[D_NO_PATH];
      r->failed_base = failed;
      r->aside = failed + no_path;
      r->state = R_RUNNING;
      r->reason[0] = '\0';
      rollout_mark(r);
      log_info("rollout %s resumed; %d failures so far are set aside", r->id, failed);
      lwm2m_wake_wave(r);
      rollout_evaluate(f, r);
    }
  } else if (strcmp(action, "cancel") == 0) {
    if (r->state == R_COMPLETED || r->state == R_CANCELLED)
      err = "the rollout has already ended";
    else {
      r->state = R_CANCELLED;
      snprintf(r->reason, sizeof(r->reason), "cancelled by the operator");
      r->job = JOB_SWEEP;
      rollout_mark(r);
      background = r->n_members > START_INLINE_MAX || r->job_busy;
      log_info("rollout %s cancelled", r->id);
    }
  } else {
    pthread_mutex_unlock(&f->mu);
    *out = fleet_error("not_found", "actions are start, pause, resume and cancel");
    return 404;
  }
  if (err != NULL) {
    pthread_mutex_unlock(&f->mu);
    *out = fleet_error("conflict", err);
    return 409;
  }
  if (r->job != JOB_NONE && background) {
    /* a whole fleet's work: the job thread does it a page at a time; the
     * rollout's state says how far it is */
    fleet_jobs_kick(f);
    *out = rollout_json(r);
    pthread_mutex_unlock(&f->mu);
    store_sync(f->store);
    return 202;
  }
  pthread_mutex_unlock(&f->mu);
  rollout_job_run(f, r); /* small: done in this call, in pages all the same */
  store_sync(f->store);
  pthread_mutex_lock(&f->mu);
  *out = rollout_json(r);
  pthread_mutex_unlock(&f->mu);
  return 200;
}
