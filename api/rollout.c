/* rollout.c: rollouts: who is in one (selector), in which wave (a stable
 * pseudo-random order cut at cumulative percentages), when the next wave
 * starts (success threshold), when it stops by itself (failure rate), and
 * the admin API's view of them. Called with fleet->mu held, but for the
 * fleet_rollout_* entry points, which take it. */
#include "autoconfig.h"

#include "fleet_int.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../server/log.h"
#include "../store/store.h"

static const char *const rstate_names[] = {"draft", "running", "paused", "completed", "cancelled"};

const char *rstate_name(enum rstate s)
{
  return (unsigned)s < sizeof(rstate_names) / sizeof(rstate_names[0]) ? rstate_names[s] : "unknown";
}

static int rstate_parse(const char *s, enum rstate *out)
{
  for (size_t i = 0; i < sizeof(rstate_names) / sizeof(rstate_names[0]); i++)
    if (strcmp(s, rstate_names[i]) == 0) {
      *out = (enum rstate)i;
      return 0;
    }
  return -1;
}

struct rollout *rollout_find(struct fleet *f, const char *id)
{
  for (struct rollout *r = f->rollouts; r; r = r->next)
    if (strcmp(r->id, id) == 0)
      return r;
  return NULL;
}

void rollout_mark(struct rollout *r) { r->dirty = 1; }

void rollout_free(struct rollout *r)
{
  free(r->name);
  free(r->model);
  free(r->target);
  json_decref(r->selector);
  json_decref(r->alarms);
  json_decref(r->codes);
  free(r->members);
  free(r);
}

static int has_string(json_t *arr, const char *s)
{
  size_t i;
  json_t *v;

  if (s == NULL)
    return 0;
  json_array_foreach(arr, i,
                     v) if (json_is_string(v) && strcmp(json_string_value(v), s) == 0) return 1;
  return 0;
}

int rollout_matches(const struct rollout *r, const struct device *d)
{
  json_t *sel = r->selector, *v;
  size_t i;

  if (d->model == NULL || strcmp(d->model, r->model) != 0)
    return 0;
  if ((v = json_object_get(sel, "group")) && json_is_string(v) &&
      strcmp(json_string_value(v), d->group) != 0)
    return 0;
  if ((v = json_object_get(sel, "tags")) && json_is_array(v)) {
    json_t *t;
    json_array_foreach(v, i, t) if (!has_string(d->tags, json_string_value(t))) return 0;
  }
  if ((v = json_object_get(sel, "versions")) && json_is_array(v) && json_array_size(v) > 0 &&
      !has_string(v, d->version))
    return 0;
  if ((v = json_object_get(sel, "devices")) && json_is_array(v) && json_array_size(v) > 0 &&
      !has_string(v, d->id))
    return 0;
  return 1;
}

void rollout_add_member(struct rollout *r, struct device *d, int position)
{
  if (r->n_members == r->cap_members) {
    int nc = r->cap_members ? 2 * r->cap_members : 64;
    struct device **nm = realloc(r->members, (size_t)nc * sizeof(*nm));
    if (nm == NULL)
      return;
    r->members = nm;
    r->cap_members = nc;
  }
  r->members[r->n_members++] = d;
  d->rollout = r;
  d->position = position;
}

void rollout_remove_member(struct rollout *r, struct device *d)
{
  for (int i = 0; i < r->n_members; i++)
    if (r->members[i] == d) {
      memmove(&r->members[i], &r->members[i + 1],
              (size_t)(r->n_members - i - 1) * sizeof(*r->members));
      r->n_members--;
      break;
    }
  d->rollout = NULL;
}

/* How many positions the wave covers: ceil(percent of the members). */
int rollout_wave_cutoff(const struct rollout *r, int wave)
{
  int pct = wave < r->n_waves ? r->waves[wave] : 100;
  int n = r->n_members;
  int c = (int)(((long long)n * pct + 99) / 100);

  return c > n ? n : c;
}

int rollout_active(const struct rollout *r)
{
  int n = 0;

  for (int i = 0; i < r->n_members; i++) {
    const struct device *d = r->members[i];
    /* an offer holds its slot through a retry's backoff too, so that a
     * device coming back never finds the limit exceeded by others */
    if (d->state == D_DOWNLOADING || d->state == D_OFFERED)
      n++;
  }
  return n;
}

void rollout_alarm(struct fleet *f, struct rollout *r, const char *text)
{
  (void)f;
  log_warn("rollout %s: alarm: %s", r->id, text);
  if (json_array_size(r->alarms) < 100)
    json_array_append_new(r->alarms, json_string(text));
  rollout_mark(r);
}

void rollout_pause(struct fleet *f, struct rollout *r, const char *reason)
{
  (void)f;
  if (r->state != R_RUNNING)
    return;
  r->state = R_PAUSED;
  snprintf(r->reason, sizeof(r->reason), "%s", reason);
  log_warn("rollout %s paused: %s", r->id, reason);
  rollout_mark(r);
}

void rollout_evaluate(struct fleet *f, struct rollout *r)
{
  for (;;) {
    int cutoff, ok = 0, failed = 0, done = 0;

    if (r->state != R_RUNNING)
      return;
    if (r->n_members == 0) {
      r->state = R_COMPLETED;
      snprintf(r->reason, sizeof(r->reason), "no device matched the selector");
      rollout_mark(r);
      return;
    }
    cutoff = rollout_wave_cutoff(r, r->wave);
    for (int i = 0; i < r->n_members; i++) {
      const struct device *d = r->members[i];
      int terminal = d->state == D_SUCCEEDED || d->state == D_FAILED || d->state == D_NO_PATH;
      if (terminal)
        done++;
      if (d->position >= cutoff)
        continue;
      ok += d->state == D_SUCCEEDED;
      failed += d->state == D_FAILED;
    }
    /* failures counted before an operator's resume do not pause again */
    failed -= failed < r->failed_base ? failed : r->failed_base;
    if (cutoff > 0 && 100.0 * failed / cutoff > r->max_failure_rate) {
      char reason[200];
      snprintf(reason, sizeof(reason),
               "wave %d: %d of %d devices failed (%.1f%%), above max_failure_rate %.1f%%",
               r->wave + 1, failed, cutoff, 100.0 * failed / cutoff, r->max_failure_rate);
      rollout_pause(f, r, reason);
      return;
    }
    if (r->wave < r->n_waves - 1 && cutoff > 0 && 100.0 * ok / cutoff >= r->success_threshold) {
      r->wave++;
      log_info("rollout %s: wave %d of %d starts (%d%% of %d devices)", r->id, r->wave + 1,
               r->n_waves, r->waves[r->wave], r->n_members);
      rollout_mark(r);
      continue;
    }
    if (r->wave == r->n_waves - 1 && done == r->n_members) {
      r->state = R_COMPLETED;
      snprintf(r->reason, sizeof(r->reason), "every device reached an end state");
      log_info("rollout %s completed", r->id);
      rollout_mark(r);
    }
    return;
  }
}

static unsigned order_hash(const char *rid, const char *did)
{
  unsigned h = 2166136261u;

  for (const char *p = rid; *p; p++)
    h = (h ^ (unsigned char)*p) * 16777619u;
  for (const char *p = did; *p; p++)
    h = (h ^ (unsigned char)*p) * 16777619u;
  return h;
}

struct ordered {
  unsigned key;
  struct device *d;
};

static int cmp_ordered(const void *a, const void *b)
{
  const struct ordered *x = a, *y = b;

  if (x->key != y->key)
    return x->key < y->key ? -1 : 1;
  return strcmp(x->d->id, y->d->id);
}

static int member_of_live(const struct device *d)
{
  return d->rollout != NULL && (d->rollout->state == R_RUNNING || d->rollout->state == R_PAUSED);
}

/* A member starts (or joins) the rollout: pending, or done if already on
 * the target. */
static void enrol(struct fleet *f, struct rollout *r, struct device *d, int position)
{
  if (d->rollout != NULL && d->rollout != r)
    rollout_remove_member(d->rollout, d);
  device_clear_offer(f, d);
  d->attempts = 0;
  d->retry_at = 0;
  d->fail_code = -1;
  rollout_add_member(r, d, position);
  device_event(f, d, "rollout", json_pack("{s:s,s:i}", "rollout", r->id, "position", position));
  if (d->version != NULL && strcmp(d->version, r->target) == 0)
    device_set_state(f, d, D_SUCCEEDED, "already on the target version");
  else
    device_set_state(f, d, D_PENDING, "waiting for its wave");
}

static void rollout_start(struct fleet *f, struct rollout *r)
{
  struct ordered *list = malloc(((size_t)f->n_devices + 1) * sizeof(*list));
  int n = 0;

  for (int b = 0; list && b < DEV_BUCKETS; b++)
    for (struct device *d = f->dev[b]; d; d = d->next)
      if (!member_of_live(d) && rollout_matches(r, d))
        list[n++] = (struct ordered){order_hash(r->id, d->id), d};
  if (n > 1)
    qsort(list, (size_t)n, sizeof(*list), cmp_ordered);
  r->state = R_RUNNING;
  r->started = now_ms();
  r->reason[0] = '\0';
  for (int i = 0; i < n; i++)
    enrol(f, r, list[i].d, i);
  free(list);
  log_info("rollout %s started: %d devices, waves of %d%%..%d%%", r->id, n, r->waves[0],
           r->waves[r->n_waves - 1]);
  rollout_mark(r);
  rollout_evaluate(f, r);
}

void rollout_join_running(struct fleet *f, struct device *d)
{
  for (struct rollout *r = f->rollouts; r; r = r->next)
    if (r->state == R_RUNNING && !member_of_live(d) && rollout_matches(r, d)) {
      enrol(f, r, d, r->n_members);
      rollout_mark(r);
      return;
    }
}

/* ---- documents ----------------------------------------------------------- */

static json_t *spec_json(const struct rollout *r)
{
  json_t *waves = json_array();

  for (int i = 0; i < r->n_waves; i++)
    json_array_append_new(waves, json_integer(r->waves[i]));
  return json_pack(
      "{s:s,s:s,s:s,s:s,s:O,s:o,s:f,s:f,s:i,s:i,s:i,s:i,s:o,s:o}", "id", r->id, "name", r->name,
      "model", r->model, "target_version", r->target, "selector", r->selector, "waves", waves,
      "success_threshold", r->success_threshold, "max_failure_rate", r->max_failure_rate,
      "max_concurrent", r->max_concurrent, "max_attempts", r->max_attempts, "timeout", r->timeout,
      "retry_backoff", r->retry_backoff, "start_at", time_json(r->start_at), "window",
      r->win_from < 0 ? json_null()
                      : json_pack("{s:i,s:i}", "from_hour", r->win_from, "to_hour", r->win_to));
}

json_t *rollout_json(const struct rollout *r)
{
  json_t *o = spec_json(r), *counts = json_object();
  int c[D_NSTATES] = {0};

  for (int i = 0; i < r->n_members; i++)
    c[r->members[i]->state]++;
  for (int s = D_PENDING; s < D_NSTATES; s++)
    json_object_set_new(counts, dstate_name((enum dstate)s), json_integer(c[s]));
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
  return o;
}

json_t *rollout_doc(const struct rollout *r)
{
  json_t *o = spec_json(r);

  json_object_set_new(o, "state", json_string(rstate_name(r->state)));
  json_object_set_new(o, "wave_index", json_integer(r->wave));
  json_object_set_new(o, "failed_base", json_integer(r->failed_base));
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

static double num(json_t *o, const char *k, double def)
{
  json_t *v = json_object_get(o, k);
  return json_is_number(v) ? json_number_value(v) : def;
}

/* Fills r's specification from a create body or a stored document.
 * NULL when fine, else what is wrong. */
static const char *spec_from_json(struct rollout *r, json_t *b)
{
  json_t *v, *w;
  size_t i;

  if (!json_is_object(b))
    return "the body must be a JSON object";
#define STR(field, key, max)                                                                       \
  do {                                                                                             \
    const char *s_ = json_string_value(json_object_get(b, key));                                   \
    if (s_ == NULL || s_[0] == '\0' || strlen(s_) > (max))                                         \
      return key " is required (a string of at most " #max " characters)";                         \
    r->field = strdup(s_);                                                                         \
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
    if (json_object_get(v, "group") && !json_is_string(json_object_get(v, "group")))
      return "selector.group must be a string";
    for (size_t k = 0; k < 3; k++) {
      json_t *a = json_object_get(v, keys[k]), *e;
      if (a == NULL)
        continue;
      if (!json_is_array(a))
        return "selector.tags, .versions and .devices must be arrays of strings";
      json_array_foreach(a, i, e) if (!json_is_string(e)) return "selector arrays hold strings";
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
      int p = (int)json_integer_value(w);
      if (!json_is_integer(w) || p < 1 || p > 100 || (i > 0 && p <= r->waves[i - 1]))
        return "waves must rise from 1 to 100, such as [1, 10, 50, 100]";
      r->waves[i] = p;
    }
    r->n_waves = (int)json_array_size(v);
    if (r->waves[r->n_waves - 1] != 100)
      return "the last wave must be 100";
  }
  r->success_threshold = num(b, "success_threshold", 95);
  r->max_failure_rate = num(b, "max_failure_rate", 10);
  r->max_concurrent = (int)num(b, "max_concurrent", 0);
  r->max_attempts = (int)num(b, "max_attempts", 3);
  r->timeout = (int)num(b, "timeout", 86400);
  r->retry_backoff = (int)num(b, "retry_backoff", 30);
  if (r->success_threshold < 0 || r->success_threshold > 100)
    return "success_threshold is a percentage (0 to 100)";
  if (r->max_failure_rate < 0 || r->max_failure_rate > 100)
    return "max_failure_rate is a percentage (0 to 100)";
  if (r->max_concurrent < 0 || r->max_attempts < 1 || r->max_attempts > 100 || r->timeout < 1 ||
      r->retry_backoff < 0 || r->retry_backoff > 86400)
    return "max_concurrent >= 0, max_attempts 1..100, timeout >= 1 s, retry_backoff 0..86400 s";
  v = json_object_get(b, "start_at");
  if (json_is_string(v) && parse_time(json_string_value(v), &r->start_at) < 0)
    return "start_at must be a UTC time such as 2026-11-24T06:00:00Z";
  r->win_from = -1;
  v = json_object_get(b, "window");
  if (json_is_object(v)) {
    json_t *a = json_object_get(v, "from_hour"), *z = json_object_get(v, "to_hour");
    if (!json_is_integer(a) || !json_is_integer(z) || json_integer_value(a) < 0 ||
        json_integer_value(a) > 23 || json_integer_value(z) < 0 || json_integer_value(z) > 24 ||
        json_integer_value(a) == json_integer_value(z))
      return "window is {\"from_hour\": 0..23, \"to_hour\": 0..24}, in UTC";
    r->win_from = (int)json_integer_value(a);
    r->win_to = (int)json_integer_value(z);
  }
  return NULL;
}

static struct rollout *rollout_alloc(void)
{
  struct rollout *r = calloc(1, sizeof(*r));

  if (r == NULL)
    return NULL;
  r->alarms = json_array();
  r->codes = json_object();
  r->win_from = -1;
  return r;
}

struct rollout *rollout_from_doc(const char *id, json_t *doc)
{
  struct rollout *r = rollout_alloc();
  json_t *v;

  if (r == NULL)
    return NULL;
  snprintf(r->id, sizeof(r->id), "%s", id);
  if (spec_from_json(r, doc) != NULL ||
      rstate_parse(json_string_value(json_object_get(doc, "state")) ?: "", &r->state) < 0) {
    rollout_free(r);
    return NULL;
  }
  r->wave = (int)json_integer_value(json_object_get(doc, "wave_index"));
  r->failed_base = (int)json_integer_value(json_object_get(doc, "failed_base"));
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
  struct rollout *r = rollout_alloc();
  const char *err;
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
  unsigned char rnd[10];

  if (r == NULL) {
    *out = fleet_error("internal", "out of memory");
    return 500;
  }
  err = spec_from_json(r, body);
  if (err != NULL) {
    rollout_free(r);
    *out = fleet_error("bad_request", err);
    return 400;
  }
  if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
    rollout_free(r);
    *out = fleet_error("internal", "no randomness available");
    return 500;
  }
  r->id[0] = 'r';
  for (int i = 0; i < 10; i++)
    r->id[i + 1] = alphabet[rnd[i] & 31];
  r->id[11] = '\0';
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
  struct rollout *r;
  const char *err = NULL;

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
    else
      rollout_start(f, r);
  } else if (strcmp(action, "pause") == 0) {
    if (r->state != R_RUNNING)
      err = "only a running rollout can pause";
    else
      rollout_pause(f, r, "paused by the operator");
  } else if (strcmp(action, "resume") == 0) {
    if (r->state != R_PAUSED)
      err = "only a paused rollout can resume";
    else {
      int cutoff = rollout_wave_cutoff(r, r->wave), failed = 0;
      for (int i = 0; i < r->n_members; i++)
        failed += r->members[i]->position < cutoff && r->members[i]->state == D_FAILED;
      r->failed_base = failed;
      r->state = R_RUNNING;
      r->reason[0] = '\0';
      rollout_mark(r);
      log_info("rollout %s resumed; %d failures so far are set aside", r->id, failed);
      rollout_evaluate(f, r);
    }
  } else if (strcmp(action, "cancel") == 0) {
    if (r->state == R_COMPLETED || r->state == R_CANCELLED)
      err = "the rollout has already ended";
    else {
      r->state = R_CANCELLED;
      snprintf(r->reason, sizeof(r->reason), "cancelled by the operator");
      for (int i = 0; i < r->n_members; i++) {
        struct device *d = r->members[i];
        if (d->state != D_SUCCEEDED && d->state != D_FAILED && d->state != D_NO_PATH) {
          device_clear_offer(f, d);
          device_set_state(f, d, D_IDLE, "rollout cancelled");
        }
      }
      rollout_mark(r);
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
  *out = rollout_json(r);
  pthread_mutex_unlock(&f->mu);
  store_sync(f->store);
  return 200;
}

/* ---- metrics ------------------------------------------------------------- */

static void metric(FILE *m, const char *name, const char *help, const char *type,
                   unsigned long long value)
{
  fprintf(m, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, value);
}

char *fleet_metrics(struct fleet *f)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&buf, &len);
  int dirty = 0, events;

  if (m == NULL)
    return NULL;
  pthread_mutex_lock(&f->mu);
  for (struct device *d = f->dirty; d; d = d->dirty_next)
    dirty++;
  events = (int)json_array_size(f->events);
  metric(m, "dfotad_devices", "Devices known.", "gauge", (unsigned long long)f->n_devices);
  metric(m, "dfotad_checkins_total", "Device check-ins.", "counter", f->checkins);
  metric(m, "dfotad_reports_total", "Device reports.", "counter", f->reports);
  metric(m, "dfotad_offers_total", "Download offers made.", "counter", f->offers);
  metric(m, "dfotad_progress_events_total", "Ranges recorded against devices.", "counter",
         f->progress_events);
  metric(m, "dfotad_writer_queue", "Device records and events waiting for the writer.", "gauge",
         (unsigned long long)(dirty + events));
  fprintf(m, "# HELP dfotad_rollout_devices Devices per state per rollout.\n"
             "# TYPE dfotad_rollout_devices gauge\n");
  for (struct rollout *r = f->rollouts; r; r = r->next) {
    int c[D_NSTATES] = {0};
    for (int i = 0; i < r->n_members; i++)
      c[r->members[i]->state]++;
    for (int s = D_PENDING; s < D_NSTATES; s++)
      fprintf(m, "dfotad_rollout_devices{rollout=\"%s\",state=\"%s\"} %d\n", r->id,
              dstate_name((enum dstate)s), c[s]);
  }
  fprintf(m, "# HELP dfotad_rollout_bytes_served_total Bytes served per rollout.\n"
             "# TYPE dfotad_rollout_bytes_served_total counter\n");
  for (struct rollout *r = f->rollouts; r; r = r->next)
    fprintf(m, "dfotad_rollout_bytes_served_total{rollout=\"%s\"} %llu\n", r->id,
            (unsigned long long)r->bytes_served);
  pthread_mutex_unlock(&f->mu);
  fclose(m);
  return buf;
}
