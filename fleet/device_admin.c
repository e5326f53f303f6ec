/* device_admin.c: the admin API's device calls: create and update (one or
 * in bulk), read, delete, list, and the event history. Bodies are checked
 * whole before anything changes; an unknown field is an error. */
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

static int id_ok(const char *id)
{
  size_t n = strlen(id);

  if (n == 0 || n > DEVICE_ID_MAX || strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
    return 0;
  for (const char *p = id; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '-' || *p == '_' || *p == '.' || *p == ':'))
      return 0;
  return 1;
}

/* A JSON string of at most max bytes, without control characters or NUL. */
static int text_ok(json_t *v, size_t max)
{
  const char *s = json_string_value(v);
  size_t n = json_string_length(v);

  if (s == NULL || n > max || strlen(s) != n)
    return 0;
  for (const char *p = s; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      return 0;
  return 1;
}

/* Checks a device body; NULL when fine, else the complaint. */
/* err: room for a message made up here. */
static const char *device_body_error(struct fleet *f, const char *id, json_t *b, int creating,
                                     int bulk, char *err, size_t errlen)
{
  static const char *const known[] = {"model",          "version",   "group", "tags",
                                      "secret",         "transport", "psk",   "psk_identity",
                                      "lwm2m_endpoint", "trigger"};
  const char *key;
  json_t *v;
  size_t i;
  int tr;

  if (!json_is_object(b))
    return "the body must be a JSON object";
  json_object_foreach(b, key, v)
  {
    int ok = bulk && strcmp(key, "id") == 0;
    for (i = 0; i < sizeof(known) / sizeof(known[0]) && !ok; i++)
      ok = strcmp(key, known[i]) == 0;
    if (!ok) {
      /* a typo must never drop a setting silently */
      snprintf(err, errlen, "unknown field '%.60s'", key);
      return err;
    }
  }
  v = json_object_get(b, "model");
  if (creating && !json_is_string(v))
    return "model is required";
  if (v && (!json_is_string(v) || !text_ok(v, PKG_FIELD_MAX) || json_string_length(v) == 0))
    return "model must be a non-empty string of at most 128 characters";
  v = json_object_get(b, "version");
  if (v && !json_is_null(v) && (!json_is_string(v) || !text_ok(v, PKG_FIELD_MAX)))
    return "version must be a string of at most 128 characters";
  v = json_object_get(b, "group");
  if (v && (!json_is_string(v) || !text_ok(v, PKG_FIELD_MAX)))
    return "group must be a string of at most 128 characters";
  v = json_object_get(b, "tags");
  if (v) {
    json_t *t;
    if (!json_is_array(v) || json_array_size(v) > 64)
      return "tags must be an array of at most 64 strings";
    json_array_foreach(
        v, i, t) if (!json_is_string(t) ||
                     !text_ok(t, 64)) return "tags must be strings of at most 64 characters";
  }
  v = json_object_get(b, "secret");
  if (v && (!json_is_string(v) || json_string_length(v) < 16 || json_string_length(v) > 128 ||
            !text_ok(v, 128)))
    return "secret must be a string of 16 to 128 characters";
  if ((key = transport_from_json(f, json_object_get(b, "transport"), &tr)) != NULL)
    return key;
  if ((key = lwm2m_body_error(b)) != NULL)
    return key;
  return psk_body_error(f, id, b);
}

/* Creates or updates a device from a checked body. *secret_out receives a
 * generated secret, *psk_out a generated pre-shared key in hex (the caller
 * frees them) when one was made. */
static int device_apply(struct fleet *f, const char *id, json_t *b, char **secret_out,
                        char **psk_out)
{
  struct device *d = device_find(f, id);
  int created = d == NULL;
  json_t *v;
  const char *secret = json_string_value(json_object_get(b, "secret"));

  *secret_out = NULL;
  if (created) {
    d = device_new(f, id);
    if (d == NULL)
      return -1;
    if (secret == NULL) {
      char gen[27];
      random_base32(gen, 26); /* 130 bits */
      *secret_out = strdup(gen);
      secret = gen;
      make_secret_hash(secret, d->secret_hash, sizeof(d->secret_hash));
      OPENSSL_cleanse(gen, sizeof(gen));
    }
    device_event(f, d, "created", NULL);
  }
  if (secret != NULL && *secret_out == NULL)
    make_secret_hash(secret, d->secret_hash, sizeof(d->secret_hash));
  if ((v = json_object_get(b, "model")) != NULL)
    set_str(&d->model, json_string_value(v));
  if ((v = json_object_get(b, "group")) != NULL)
    set_str(&d->group, json_string_value(v));
  if ((v = json_object_get(b, "tags")) != NULL) {
    json_decref(d->tags);
    d->tags = json_deep_copy(v);
  }
  if ((v = json_object_get(b, "transport")) != NULL)
    transport_from_json(f, v, &d->transport); /* checked before */
  lwm2m_apply(d, b);
  if ((v = json_object_get(b, "version")) != NULL) {
    const char *nv = json_string_value(v);
    if (nv != NULL && (d->version == NULL || strcmp(nv, d->version) != 0)) {
      if (created)
        set_str(&d->version, nv);
      else
        version_changed(f, d, nv);
    }
  }
  if (psk_apply(f, d, b, psk_out) < 0)
    log_error("device %s: its pre-shared key could not be sealed", d->id);
  device_mark(f, d);
  if (d->rollout == NULL || d->rollout->state == R_COMPLETED || d->rollout->state == R_CANCELLED)
    rollout_join_running(f, d);
  return created;
}

int fleet_device_put(struct fleet *f, const char *id, json_t *body, json_t **out)
{
  const char *err;
  char *secret = NULL, *psk = NULL, ebuf[120];
  int created;

  if (!id_ok(id)) {
    *out = fleet_error("bad_request", "device ids are 1 to 64 of A-Z a-z 0-9 - _ . :");
    return 400;
  }
  pthread_mutex_lock(&f->mu);
  err = device_body_error(f, id, body, device_find(f, id) == NULL, 0, ebuf, sizeof(ebuf));
  if (err != NULL) {
    pthread_mutex_unlock(&f->mu);
    *out = fleet_error("bad_request", err);
    return 400;
  }
  created = device_apply(f, id, body, &secret, &psk);
  if (created < 0) {
    pthread_mutex_unlock(&f->mu);
    *out = fleet_error("internal", "out of memory");
    return 500;
  }
  *out = device_json(device_find(f, id));
  pthread_mutex_unlock(&f->mu);
  if (secret != NULL) {
    /* shown once: only its hash is kept */
    json_object_set_new(*out, "secret", json_string(secret));
    OPENSSL_cleanse(secret, strlen(secret));
    free(secret);
  }
  if (psk != NULL) {
    /* shown once: only its sealed form is kept */
    json_object_set_new(*out, "psk", json_string(psk));
    OPENSSL_cleanse(psk, strlen(psk));
    free(psk);
  }
  store_sync(f->store);
  return created ? 201 : 200;
}

int fleet_devices_bulk(struct fleet *f, json_t *body, json_t **out)
{
  json_t *item, *secrets = json_object(), *psks = json_object();
  size_t i;
  int created = 0, updated = 0;
  char msg[200], ebuf[120];

  if (!json_is_array(body) || json_array_size(body) > 100000) {
    json_decref(secrets);
    json_decref(psks);
    *out = fleet_error("bad_request", "the body must be a JSON array of at most 100000 devices");
    return 400;
  }
  pthread_mutex_lock(&f->mu);
  /* all or nothing: check every entry first */
  json_array_foreach(body, i, item)
  {
    const char *id = json_string_value(json_object_get(item, "id"));
    const char *err =
        id == NULL || !id_ok(id)
            ? "id missing or malformed"
            : device_body_error(f, id, item, device_find(f, id) == NULL, 1, ebuf, sizeof(ebuf));
    if (err != NULL) {
      pthread_mutex_unlock(&f->mu);
      json_decref(secrets);
      json_decref(psks);
      snprintf(msg, sizeof(msg), "device %zu: %s; nothing was imported", i, err);
      *out = fleet_error("bad_request", msg);
      return 400;
    }
  }
  json_array_foreach(body, i, item)
  {
    const char *id = json_string_value(json_object_get(item, "id"));
    char *secret = NULL, *psk = NULL;
    int c = device_apply(f, id, item, &secret, &psk);
    if (c > 0)
      created++;
    else if (c == 0)
      updated++;
    if (secret != NULL) {
      json_object_set_new(secrets, id, json_string(secret));
      OPENSSL_cleanse(secret, strlen(secret));
      free(secret);
    }
    if (psk != NULL) {
      json_object_set_new(psks, id, json_string(psk));
      OPENSSL_cleanse(psk, strlen(psk));
      free(psk);
    }
  }
  pthread_mutex_unlock(&f->mu);
  store_sync(f->store);
  *out = json_pack("{s:i,s:i,s:o,s:o}", "created", created, "updated", updated, "secrets", secrets,
                   "psks", psks);
  return 200;
}

int fleet_device_get(struct fleet *f, const char *id, json_t **out)
{
  struct device *d;

  pthread_mutex_lock(&f->mu);
  d = device_find(f, id);
  *out = d ? device_json(d) : fleet_error("not_found", "no such device");
  pthread_mutex_unlock(&f->mu);
  return d ? 200 : 404;
}

int fleet_device_delete(struct fleet *f, const char *id, json_t **out)
{
  struct device *d;

  pthread_mutex_lock(&f->mu);
  d = device_find(f, id);
  if (d == NULL) {
    pthread_mutex_unlock(&f->mu);
    *out = fleet_error("not_found", "no such device");
    return 404;
  }
  /* room in the list of deletions first: a delete we could not record
   * must not be answered as done */
  if (f->n_deleted == f->cap_deleted) {
    int nc = f->cap_deleted ? 2 * f->cap_deleted : 16;
    char **nd = realloc(f->deleted, (size_t)nc * sizeof(*nd));
    if (nd != NULL) {
      f->deleted = nd;
      f->cap_deleted = nc;
    }
  }
  if (f->n_deleted == f->cap_deleted || (f->deleted[f->n_deleted] = strdup(d->id)) == NULL) {
    pthread_mutex_unlock(&f->mu);
    *out = fleet_error("unavailable", "out of memory; nothing was deleted");
    return 503;
  }
  f->n_deleted++;
  if (d->rollout != NULL) {
    rollout_mark(d->rollout);
    rollout_remove_member(d->rollout, d);
  }
  device_unlink(f, d);
  device_free(d);
  pthread_mutex_unlock(&f->mu);
  store_sync(f->store);
  *out = NULL;
  return 204;
}

struct events_ctx {
  json_t *arr;
  int64_t last;
};

static int event_one(int64_t id, const char *kind, const char *detail, void *arg)
{
  struct events_ctx *c = arg;
  json_t *o = json_loads(detail, 0, NULL);

  if (!json_is_object(o)) {
    json_decref(o);
    o = json_object();
  }
  json_object_set_new(o, "id", json_integer((json_int_t)id));
  json_object_set_new(o, "kind", json_string(kind));
  json_array_append_new(c->arr, o);
  c->last = id;
  return 0;
}

/* Each event's detail carries its time ("at") beside what happened; pages
 * of at most `limit` events after event `after` (ids rise), with "next"
 * naming the last id of a full page. */
int fleet_device_events(struct fleet *f, const char *id, int64_t after, int limit, json_t **out)
{
  struct events_ctx c = {NULL, 0};
  int exists;

  pthread_mutex_lock(&f->mu);
  exists = device_find(f, id) != NULL;
  pthread_mutex_unlock(&f->mu);
  if (!exists) {
    *out = fleet_error("not_found", "no such device");
    return 404;
  }
  store_sync(f->store); /* events still queued are written first */
  c.arr = json_array();
  if (store_events_page(f->store, id, after, limit, event_one, &c) < 0) {
    json_decref(c.arr);
    *out = fleet_error("internal", "cannot read the events");
    return 500;
  }
  *out = json_pack("{s:s,s:o,s:o}", "device", id, "events", c.arr, "next",
                   (int)json_array_size(c.arr) == limit ? json_integer((json_int_t)c.last)
                                                        : json_null());
  return 200;
}

static int cmp_device_id(const void *a, const void *b)
{
  return strcmp((*(struct device *const *)a)->id, (*(struct device *const *)b)->id);
}

int fleet_devices_list(struct fleet *f, const char *model, const char *version, const char *group,
                       const char *state, const char *rollout, int limit, const char *after,
                       json_t **out)
{
  struct device **all;
  json_t *arr = json_array();
  enum dstate st = D_IDLE;
  int n = 0, shown = 0;
  const char *next = NULL;

  if (state != NULL && dstate_parse(state, &st) < 0) {
    json_decref(arr);
    *out = fleet_error("bad_request", "unknown state");
    return 400;
  }
  if (limit <= 0 || limit > MAX_PAGE)
    limit = DEF_PAGE;
  pthread_mutex_lock(&f->mu);
  all = malloc(((size_t)f->n_devices + 1) * sizeof(*all));
  for (int b = 0; all && b < DEV_BUCKETS; b++)
    for (struct device *d = f->dev[b]; d; d = d->next) {
      if ((model && strcmp(d->model, model)) ||
          (version && (d->version == NULL || strcmp(d->version, version))) ||
          (group && strcmp(d->group, group)) || (state && d->state != st) ||
          (rollout && (d->rollout == NULL || strcmp(d->rollout->id, rollout))) ||
          (after && strcmp(d->id, after) <= 0))
        continue;
      all[n++] = d;
    }
  if (all != NULL && n > 1)
    qsort(all, (size_t)n, sizeof(*all), cmp_device_id);
  for (int i = 0; all && i < n && shown < limit; i++, shown++)
    json_array_append_new(arr, device_json(all[i]));
  if (all && shown == limit && n > limit)
    next = all[limit - 1]->id;
  *out = json_pack("{s:o,s:s?,s:i}", "devices", arr, "next", next, "total", n);
  free(all);
  pthread_mutex_unlock(&f->mu);
  return 200;
}
