/* persist.c: the fleet's persistence: devices and rollouts as documents,
 * written by the store's writer in its transaction (the flush hook), and
 * loaded at start. */
#include "autoconfig.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../store/store.h"
#include "../util/log.h"
#include "../util/util.h"
#include "fleet_int.h"
#include "lwm2m_int.h"

/* The persisted form: everything, so that a restart resumes every offer. */
static void put_s(json_t *o, const char *k, const char *v)
{
  json_object_set_new(o, k, v ? json_string(v) : json_null());
}

static void put_i(json_t *o, const char *k, int64_t v)
{
  json_object_set_new(o, k, json_integer((json_int_t)v));
}

json_t *device_doc(const struct device *d)
{
  json_t *o = json_object(), *iv = json_array();

  for (int i = 0; i < d->n_ival; i++)
    json_array_append_new(
        iv, json_pack("[I,I]", (json_int_t)d->ival[i].start, (json_int_t)d->ival[i].end));
  put_s(o, "model", d->model);
  put_s(o, "version", d->version);
  put_s(o, "group", d->group);
  json_object_set(o, "tags", d->tags);
  put_s(o, "secret", d->secret_hash);
  put_s(o, "psk", d->psk_sealed); /* sealed (psk.c) */
  put_s(o, "psk_identity", d->psk_identity);
  put_s(o, "state", dstate_name(d->state));
  put_i(o, "state_since", d->state_since);
  put_s(o, "reason", d->reason);
  put_s(o, "rollout", d->rollout ? d->rollout->id : NULL);
  put_i(o, "position", d->position);
  put_s(o, "package", d->package_id);
  put_s(o, "sha256", d->sha256);
  put_s(o, "token", d->token);
  put_s(o, "hop_from", d->hop_from);
  put_s(o, "hop_to", d->hop_to);
  put_i(o, "size", (int64_t)d->size);
  put_i(o, "attempts", d->attempts);
  put_i(o, "retry_at", d->retry_at);
  put_i(o, "fail_code", d->fail_code);
  put_i(o, "bytes_served", (int64_t)d->bytes_served);
  put_i(o, "contiguous", (int64_t)d->contiguous);
  json_object_set_new(o, "ival", iv);
  put_i(o, "resumes", d->resumes);
  put_i(o, "segments", d->segments);
  put_i(o, "interrupted", d->last_interrupted);
  put_i(o, "device_percent", d->device_percent);
  put_s(o, "protocol", d->protocol);
  put_s(o, "transport", d->transport >= 0 ? proto_name((enum proto)d->transport) : NULL);
  put_s(o, "addr", d->addr);
  put_i(o, "first_seen", d->first_seen);
  put_i(o, "last_seen", d->last_seen);
  put_s(o, "last_stage", d->last_stage);
  put_i(o, "last_code", d->last_code);
  put_i(o, "last_at", d->last_at);
  lwm2m_doc(d, o);
  return o;
}

static const char *jstr(json_t *o, const char *k)
{
  const char *s = json_string_value(json_object_get(o, k));
  return s ? s : "";
}

static int64_t jint(json_t *o, const char *k, int64_t def)
{
  json_t *v = json_object_get(o, k);
  return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

void device_from_doc(struct fleet *f, struct device *d, json_t *doc)
{
  json_t *iv = json_object_get(doc, "ival"), *v;
  size_t i;

  set_str(&d->model, jstr(doc, "model"));
  set_str(&d->version, json_string_value(json_object_get(doc, "version")));
  set_str(&d->group, jstr(doc, "group"));
  if (json_is_array(json_object_get(doc, "tags"))) {
    json_decref(d->tags);
    d->tags = json_deep_copy(json_object_get(doc, "tags"));
  }
  snprintf(d->secret_hash, sizeof(d->secret_hash), "%s", jstr(doc, "secret"));
  psk_unlink(f, d);
  snprintf(d->psk_identity, sizeof(d->psk_identity), "%s", jstr(doc, "psk_identity"));
  free(d->psk_sealed);
  d->psk_sealed = jstr(doc, "psk")[0] ? strdup(jstr(doc, "psk")) : NULL;
  psk_link(f, d);
  if (dstate_parse(jstr(doc, "state"), &d->state) < 0)
    d->state = D_IDLE;
  d->state_since = jint(doc, "state_since", now_ms());
  snprintf(d->reason, sizeof(d->reason), "%s", jstr(doc, "reason"));
  snprintf(d->rollout_id, sizeof(d->rollout_id), "%s", jstr(doc, "rollout"));
  d->position = (int)jint(doc, "position", 0);
  snprintf(d->package_id, sizeof(d->package_id), "%s", jstr(doc, "package"));
  snprintf(d->sha256, sizeof(d->sha256), "%s", jstr(doc, "sha256"));
  snprintf(d->token, sizeof(d->token), "%s", jstr(doc, "token"));
  set_str(&d->hop_from, json_string_value(json_object_get(doc, "hop_from")));
  set_str(&d->hop_to, json_string_value(json_object_get(doc, "hop_to")));
  d->size = (uint64_t)jint(doc, "size", 0);
  d->attempts = (int)jint(doc, "attempts", 0);
  d->retry_at = jint(doc, "retry_at", 0);
  d->fail_code = jint(doc, "fail_code", -1);
  d->bytes_served = (uint64_t)jint(doc, "bytes_served", 0);
  d->contiguous = (uint64_t)jint(doc, "contiguous", 0);
  d->n_ival = 0;
  json_array_foreach(iv, i, v)
  {
    if (d->n_ival < MAX_IVALS) {
      d->ival[d->n_ival].start = (uint64_t)json_integer_value(json_array_get(v, 0));
      d->ival[d->n_ival].end = (uint64_t)json_integer_value(json_array_get(v, 1));
      d->n_ival++;
    }
  }
  d->resumes = (int)jint(doc, "resumes", 0);
  d->segments = (int)jint(doc, "segments", 0);
  d->last_interrupted = (int)jint(doc, "interrupted", 0);
  d->device_percent = (int)jint(doc, "device_percent", -1);
  snprintf(d->protocol, sizeof(d->protocol), "%s", jstr(doc, "protocol"));
  {
    enum proto t;
    d->transport = proto_parse(jstr(doc, "transport"), &t) == 0 ? (int)t : -1;
  }
  snprintf(d->addr, sizeof(d->addr), "%s", jstr(doc, "addr"));
  d->first_seen = jint(doc, "first_seen", 0);
  d->last_seen = jint(doc, "last_seen", 0);
  lwm2m_from_doc(d, doc);
  snprintf(d->last_stage, sizeof(d->last_stage), "%s", jstr(doc, "last_stage"));
  d->last_code = jint(doc, "last_code", -1);
  d->last_at = jint(doc, "last_at", 0);
  if (d->token[0] != '\0')
    token_link(f, d);
}

/* The writer's part for the fleet: under the lock only take the records
 * (documents built, lists swapped); encode and write them without it, so
 * that the data plane waits microseconds, not a commit. */
static void flush_hook(struct store *s, void *arg)
{
  struct fleet *f = arg;
  struct saved {
    char id[DEVICE_ID_MAX + 1];
    char model[PKG_FIELD_MAX + 1], state[16], rollout[16];
    json_t *doc;
    int failed;
  } *dev = NULL;
  struct rsaved {
    char id[16], state[16];
    json_t *doc;
    int failed;
  } *ro = NULL;
  char **deleted;
  char(*trim)[DEVICE_ID_MAX + 1] = NULL;
  int n_trim = 0, keep = f->limits.events_per_device;
  json_t *events, *e;
  int n_dev = 0, n_ro = 0, n_deleted, cap = 0, failed = 0;
  size_t i;

  pthread_mutex_lock(&f->mu);
  for (struct device *d = f->dirty; d; d = d->dirty_next)
    cap++;
  dev = cap ? calloc((size_t)cap, sizeof(*dev)) : NULL;
  if (cap > 0 && dev == NULL) {
    /* out of memory: everything stays marked for the next flush */
    pthread_mutex_unlock(&f->mu);
    log_error("fleet: out of memory while saving; trying again at the next flush");
    return;
  }
  deleted = f->deleted;
  n_deleted = f->n_deleted;
  f->deleted = NULL;
  f->n_deleted = f->cap_deleted = 0;
  trim = cap ? calloc((size_t)cap, sizeof(*trim)) : NULL;
  while (f->dirty) {
    struct device *d = f->dirty;
    struct saved *sv = &dev[n_dev++];
    /* a device's history is cut back to its newest events now and then,
     * not at every event: at most a tenth over the limit */
    if (trim != NULL && keep > 0 && d->events_untrimmed > keep / 10) {
      snprintf(trim[n_trim++], sizeof(trim[0]), "%s", d->id);
      d->events_untrimmed = 0;
    }
    snprintf(sv->id, sizeof(sv->id), "%s", d->id);
    snprintf(sv->model, sizeof(sv->model), "%s", d->model ? d->model : "");
    snprintf(sv->state, sizeof(sv->state), "%s", dstate_name(d->state));
    snprintf(sv->rollout, sizeof(sv->rollout), "%s", d->rollout ? d->rollout->id : "");
    sv->doc = device_doc(d);
    f->dirty = d->dirty_next;
    d->dirty = 0;
    d->dirty_next = NULL;
  }
  cap = 0;
  for (struct rollout *r = f->rollouts; r; r = r->next)
    cap += r->dirty;
  ro = cap ? calloc((size_t)cap, sizeof(*ro)) : NULL;
  for (struct rollout *r = f->rollouts; r; r = r->next)
    if (r->dirty && ro != NULL) {
      snprintf(ro[n_ro].id, sizeof(ro[n_ro].id), "%s", r->id);
      snprintf(ro[n_ro].state, sizeof(ro[n_ro].state), "%s", rstate_name(r->state));
      ro[n_ro++].doc = rollout_doc(r);
      r->dirty = 0;
    }
  events = f->events;
  f->events = json_array();
  pthread_mutex_unlock(&f->mu);

  /* events first, so that a deletion in this flush takes its device's along */
  json_array_foreach(events, i, e)
  {
    store_tx_event(s, json_string_value(json_array_get(e, 0)),
                   (int64_t)json_integer_value(json_array_get(e, 1)),
                   json_string_value(json_array_get(e, 2)),
                   json_string_value(json_array_get(e, 3)));
  }
  json_decref(events);
  for (int k = 0; k < n_trim; k++)
    store_tx_events_trim(s, trim[k], keep);
  free(trim);
  for (int k = 0; k < n_deleted; k++) {
    store_tx_device_delete(s, deleted[k]);
    free(deleted[k]);
  }
  free(deleted);
  for (int k = 0; k < n_dev; k++) {
    char *text = dev[k].doc ? json_dumps(dev[k].doc, JSON_COMPACT) : NULL;
    if (text != NULL)
      store_tx_device_put(s, dev[k].id, dev[k].model, dev[k].state,
                          dev[k].rollout[0] ? dev[k].rollout : NULL, text);
    else
      failed++;
    dev[k].failed = text == NULL;
    free(text);
    json_decref(dev[k].doc);
  }
  for (int k = 0; k < n_ro; k++) {
    char *text = ro[k].doc ? json_dumps(ro[k].doc, JSON_COMPACT) : NULL;
    if (text != NULL)
      store_tx_rollout_put(s, ro[k].id, ro[k].state, text);
    else
      failed++;
    ro[k].failed = text == NULL;
    free(text);
    json_decref(ro[k].doc);
  }
  if (failed > 0) {
    /* out of memory for a record: it stays marked for the next flush */
    pthread_mutex_lock(&f->mu);
    for (int k = 0; k < n_dev; k++) {
      struct device *d = dev[k].failed ? device_find(f, dev[k].id) : NULL;
      if (d != NULL)
        device_mark(f, d);
    }
    for (int k = 0; k < n_ro; k++) {
      struct rollout *r = ro[k].failed ? rollout_find(f, ro[k].id) : NULL;
      if (r != NULL)
        rollout_mark(r);
    }
    pthread_mutex_unlock(&f->mu);
  }
  free(dev);
  free(ro);
}

/* A failed commit: write everything again at the next flush. */
static void flush_done(void *arg, int committed)
{
  struct fleet *f = arg;

  if (committed)
    return;
  pthread_mutex_lock(&f->mu);
  for (int b = 0; b < DEV_BUCKETS; b++)
    for (struct device *d = f->dev[b]; d; d = d->next)
      device_mark(f, d);
  for (struct rollout *r = f->rollouts; r; r = r->next)
    r->dirty = 1;
  pthread_mutex_unlock(&f->mu);
}

static int load_rollout(const char *id, const char *text, void *arg)
{
  struct fleet *f = arg;
  json_t *doc = json_loads(text, 0, NULL);
  struct rollout *r = doc ? rollout_from_doc(id, doc) : NULL;

  json_decref(doc);
  if (r == NULL) {
    log_error("fleet: rollout %s: unreadable record, skipped", id);
    return 0;
  }
  r->next = f->rollouts;
  f->rollouts = r;
  return 0;
}

static int load_device(const char *id, const char *text, void *arg)
{
  struct fleet *f = arg;
  json_t *doc = json_loads(text, 0, NULL);
  struct device *d;

  if (doc == NULL || device_find(f, id) != NULL) {
    log_error("fleet: device %s: unreadable record, skipped", id);
    json_decref(doc);
    return 0;
  }
  d = device_new(f, id);
  if (d != NULL)
    device_from_doc(f, d, doc);
  json_decref(doc);
  return 0;
}

void fleet_set_limits(struct fleet *f, const struct fleet_limits *l)
{
  pthread_mutex_lock(&f->mu);
  f->limits = *l;
  pthread_mutex_unlock(&f->mu);
}

int fleet_open(struct store *s, struct fleet **out, char *err, size_t errlen)
{
  struct fleet *f = calloc(1, sizeof(*f));

  if (f == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  pthread_mutex_init(&f->mu, NULL);
  f->store = s;
  f->events = json_array();
  f->limits = (struct fleet_limits){DEF_EVENTS_PER_DEVICE, DEF_REPORT_LINES, DEF_RECHECK_MS,
                                    DEF_AUTH_FREE, PSK_GENERATED};
  if (store_rollouts_load(s, load_rollout, f) < 0 || store_devices_load(s, load_device, f) < 0) {
    snprintf(err, errlen, "cannot load devices and rollouts");
    fleet_close(f);
    return -1;
  }
  /* link devices to their rollouts, in their order */
  for (int b = 0; b < DEV_BUCKETS; b++)
    for (struct device *d = f->dev[b]; d; d = d->next)
      if (d->rollout_id[0] != '\0') {
        struct rollout *r = rollout_find(f, d->rollout_id);
        if (r != NULL)
          rollout_add_member(r, d, d->position);
      }
  log_info("fleet: %d devices loaded", f->n_devices);
  store_set_flush_hook(s, flush_hook, flush_done, f);
  store_set_damage_hook(s, package_damaged, f);
  *out = f;
  return 0;
}

void fleet_close(struct fleet *f)
{
  if (f == NULL)
    return;
  if (f->store != NULL) {
    store_set_flush_hook(f->store, NULL, NULL, NULL);
    store_set_damage_hook(f->store, NULL, NULL);
  }
  OPENSSL_cleanse(f->psk_master, sizeof(f->psk_master));
  for (int b = 0; b < DEV_BUCKETS; b++)
    while (f->dev[b]) {
      struct device *d = f->dev[b];
      f->dev[b] = d->next;
      device_free(d);
    }
  while (f->rollouts) {
    struct rollout *r = f->rollouts;
    f->rollouts = r->next;
    rollout_free(r);
  }
  for (int k = 0; k < f->n_deleted; k++)
    free(f->deleted[k]);
  free(f->deleted);
  json_decref(f->events);
  pthread_mutex_destroy(&f->mu);
  free(f);
}
