/* device_admin.c: the admin API's device calls: create and update (one or
 * in bulk), read, delete, list, and the event history. Bodies are checked
 * whole before anything changes; an unknown field is an error. */
#include "autoconfig.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
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

/* Checks an item bulk_parse read (plain printable strings, known keys
 * only): the checks of device_body_error that can fail on it, in its
 * order, with its words. */
static const char *narrow_error(struct fleet *f, const struct bulk_item *it, struct device *d)
{
  int creating = d == NULL;
  size_t n;

  if (creating && it->model == NULL)
    return "model is required";
  if (it->model != NULL && (it->model[0] == '\0' || strlen(it->model) > PKG_FIELD_MAX))
    return "model must be a non-empty string of at most 128 characters";
  if (it->version != NULL && strlen(it->version) > PKG_FIELD_MAX)
    return "version must be a string of at most 128 characters";
  if (it->group != NULL && strlen(it->group) > PKG_FIELD_MAX)
    return "group must be a string of at most 128 characters";
  if (it->secret != NULL && ((n = strlen(it->secret)) < 16 || n > 128))
    return "secret must be a string of 16 to 128 characters";
  return psk_body_error_of(f, it->id, d, NULL);
}

/* The fields of a JSON body (checked or not: a missing or mistyped one is
 * NULL). */
static void item_of(json_t *b, const char *id, struct bulk_item *it)
{
  it->id = id;
  it->model = json_string_value(json_object_get(b, "model"));
  it->version = json_string_value(json_object_get(b, "version"));
  it->group = json_string_value(json_object_get(b, "group"));
  it->secret = json_string_value(json_object_get(b, "secret"));
  it->b = b;
}

/* A device's secret, prepared without the lock: generated (for a device
 * created without one) and hashed. */
struct prepared {
  char gen[27];          /* generated, "" none */
  char hash[96];         /* "" none */
  unsigned creating : 1; /* no such device when the body was checked */
};

/* Random bytes a prepared secret takes: 26 characters of the secret (130
 * bits), 16 of its salt. */
#define PREP_RAND (26 + 16)

/* secret: the body's, or NULL; rnd: PREP_RAND bytes the caller drew, or
 * NULL to draw them here. */
static void prepare(struct prepared *p, const char *secret, const unsigned char *rnd)
{
  char salt[17];

  if (secret == NULL && p->creating) {
    if (rnd != NULL)
      base32_from(rnd, p->gen, 26);
    else
      random_base32(p->gen, 26);
    secret = p->gen;
  }
  if (secret == NULL)
    return;
  if (rnd == NULL) {
    make_secret_hash(secret, p->hash, sizeof(p->hash));
    return;
  }
  base32_from(rnd + 26, salt, 16);
  hash_secret(secret, salt, p->hash, sizeof(p->hash));
  OPENSSL_cleanse(salt, sizeof(salt));
}

/* Creates or updates a device from a checked body. pre: its secret
 * prepared, or NULL to do it here. *secret_out receives a generated
 * secret, *psk_out a generated pre-shared key in hex (the caller frees
 * them) when one was made. */
static int device_apply(struct fleet *f, const struct bulk_item *it, struct prepared *pre,
                        char **secret_out, char **psk_out)
{
  const char *id = it->id;
  json_t *b = it->b; /* NULL: the item's fields only */
  struct device *d = device_find(f, id);
  int created = d == NULL;
  struct prepared here;
  json_t *v;

  *secret_out = NULL;
  if (pre == NULL) {
    memset(&here, 0, sizeof(here));
    here.creating = created;
    prepare(&here, it->secret, NULL);
    pre = &here;
  }
  if (created) {
    d = device_new(f, id);
    if (d == NULL)
      return -1;
    if (pre->gen[0] == '\0' && pre->hash[0] == '\0') {
      /* created meanwhile by nobody's body with a secret: make one */
      pre->creating = 1;
      prepare(pre, it->secret, NULL);
    }
    if (pre->gen[0] != '\0')
      *secret_out = strdup(pre->gen);
    device_event(f, d, "created", NULL);
  }
  /* a secret generated for a device another call created meanwhile is
   * not applied: the body gave none */
  if (pre->hash[0] != '\0' && (created || pre->gen[0] == '\0'))
    snprintf(d->secret_hash, sizeof(d->secret_hash), "%s", pre->hash);
  OPENSSL_cleanse(pre, sizeof(*pre));
  if (it->model != NULL)
    d->model = fleet_intern(f, it->model);
  if (it->group != NULL)
    d->group = fleet_intern(f, it->group);
  if ((v = json_object_get(b, "tags")) != NULL) {
    json_decref(d->tags);
    d->tags = json_array_size(v) > 0 ? json_deep_copy(v) : NULL;
  }
  if ((v = json_object_get(b, "transport")) != NULL)
    transport_from_json(f, v, &d->transport); /* checked before */
  lwm2m_apply(d, b);
  {
    const char *nv = it->version; /* NULL: absent or null */
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
  int refused = fleet_loading_gate(f, out);
  if (refused)
    return refused;
  const char *err;
  char *secret = NULL, *psk = NULL, ebuf[120];
  struct bulk_item it;
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
  item_of(body, id, &it);
  created = device_apply(f, &it, NULL, &secret, &psk);
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

struct prep_job {
  const struct bulk_item *it;
  struct prepared *pre;
  size_t from, to;
};

/* Devices whose random bytes are drawn in one RAND_bytes call: a call per
 * secret and per salt took OpenSSL's DRBG locks 100,000 times a 50,000
 * device bulk. 10.5 KiB on the stack. */
#define PREP_BATCH 256

static void *prep_run(void *arg)
{
  struct prep_job *j = arg;
  unsigned char rnd[PREP_BATCH * PREP_RAND];

  for (size_t b0 = j->from; b0 < j->to; b0 += PREP_BATCH) {
    size_t k = j->to - b0 < PREP_BATCH ? j->to - b0 : PREP_BATCH;
    if (RAND_bytes(rnd, (int)(k * PREP_RAND)) != 1)
      fatal("no randomness available");
    for (size_t i = 0; i < k; i++)
      prepare(&j->pre[b0 + i], j->it[b0 + i].secret, rnd + i * PREP_RAND);
  }
  OPENSSL_cleanse(rnd, sizeof(rnd));
  return NULL;
}

/* Secrets generated and hashed without the lock, on two threads. */
static void prepare_all(const struct bulk_item *it, struct prepared *pre, size_t n)
{
  struct prep_job j[2] = {{it, pre, 0, n / 2}, {it, pre, n / 2, n}};
  pthread_t t;

  if (n < 1000 || pthread_create(&t, NULL, prep_run, &j[0]) != 0) {
    j[1].from = 0;
    prep_run(&j[1]);
    return;
  }
  prep_run(&j[1]);
  pthread_join(t, NULL);
}

/* All or nothing: every entry checked first, under the lock; then the
 * secrets prepared without it; then applied a page at a time, the lock
 * let go between pages, and committed once. The answer is written as
 * text: ids (id_ok), generated secrets (base32) and keys (hex) need no
 * escaping. */
static int bulk_run(struct fleet *f, struct bulk_item *it, size_t n, char **text, json_t **out)
{
  struct tbuf sec = {0}, psks = {0}, all = {0};
  struct prepared *pre;
  size_t i;
  int created = 0, updated = 0;
  char msg[200], ebuf[120];

  pre = calloc(n + 1, sizeof(*pre));
  if (pre == NULL) {
    *out = fleet_error("internal", "out of memory");
    return 500;
  }
  for (size_t p0 = 0; p0 < n || p0 == 0; p0 += JOB_PAGE) {
    page_lock(f);
    for (i = p0; i < n && i < p0 + JOB_PAGE; i++) {
      const char *id = it[i].id, *err;
      struct device *d = id != NULL ? device_find(f, id) : NULL;
      pre[i].creating = id != NULL && d == NULL;
      err = id == NULL || !id_ok(id) ? "id missing or malformed"
            : it[i].b != NULL
                ? device_body_error(f, id, it[i].b, pre[i].creating, 1, ebuf, sizeof(ebuf))
                : narrow_error(f, &it[i], d);
      if (err != NULL) {
        pthread_mutex_unlock(&f->mu);
        free(pre);
        snprintf(msg, sizeof(msg), "device %zu: %s; nothing was imported", i, err);
        *out = fleet_error("bad_request", msg);
        return 400;
      }
    }
    page_unlock(f);
    if (n == 0)
      break;
  }
  prepare_all(it, pre, n);
  tbuf_add(&sec, "{", 1);
  tbuf_add(&psks, "{", 1);
  for (size_t p0 = 0; p0 < n; p0 += JOB_PAGE) {
    page_lock(f);
    for (i = p0; i < n && i < p0 + JOB_PAGE; i++) {
      char *secret = NULL, *psk = NULL;
      int c = device_apply(f, &it[i], &pre[i], &secret, &psk);
      if (c > 0)
        created++;
      else if (c == 0)
        updated++;
      if (secret != NULL) {
        tbuf_pair(&sec, it[i].id, secret);
        OPENSSL_cleanse(secret, strlen(secret));
        free(secret);
      }
      if (psk != NULL) {
        tbuf_pair(&psks, it[i].id, psk);
        OPENSSL_cleanse(psk, strlen(psk));
        free(psk);
      }
    }
    page_unlock(f);
  }
  OPENSSL_cleanse(pre, (n + 1) * sizeof(*pre));
  free(pre);
  store_sync(f->store);
  snprintf(msg, sizeof(msg), "{\"created\":%d,\"updated\":%d,\"secrets\":", created, updated);
  tbuf_str(&all, msg);
  tbuf_add(&all, sec.s != NULL ? sec.s : "", sec.len);
  tbuf_str(&all, "},\"psks\":");
  tbuf_add(&all, psks.s != NULL ? psks.s : "", psks.len);
  tbuf_str(&all, "}}\n");
  tbuf_free(&sec);
  tbuf_free(&psks);
  if (all.failed) {
    /* applied and committed, but the secrets are lost: say so */
    tbuf_free(&all);
    *out = fleet_error("internal", "out of memory writing the answer; the devices were saved "
                                   "but their generated secrets are lost: set new ones");
    return 500;
  }
  *text = all.s; /* the caller frees it */
  return 200;
}

int fleet_devices_bulk(struct fleet *f, const char *body, size_t len, char **text, json_t **out)
{
  int refused = fleet_loading_gate(f, out);
  if (refused)
    return refused;
  struct bulk_item *it = NULL;
  json_t *tree = NULL;
  char *copy = NULL, msg[200];
  size_t n = 0;
  int r = 1, st;

  *text = NULL;
  if (len > 0) {
    /* read in a copy: the parse writes into it, and jansson reads the
     * original when the body is not of the narrow shape */
    if ((copy = malloc(len + 1)) == NULL ||
        (r = bulk_parse(memcpy(copy, body, len), len, &it, &n)) < 0) {
      free(copy);
      *out = fleet_error("internal", "out of memory");
      return 500;
    }
  }
  if (r > 0) {
    json_error_t jerr;
    free(copy);
    copy = NULL;
    if (len > 0 && (tree = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
      snprintf(msg, sizeof(msg), "malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
               jerr.text);
      *out = fleet_error("bad_request", msg);
      return 400;
    }
    if (!json_is_array(tree) || json_array_size(tree) > BULK_MAX) {
      json_decref(tree);
      *out = fleet_error("bad_request", "the body must be a JSON array of at most 100000 devices");
      return 400;
    }
    n = json_array_size(tree);
    if ((it = malloc((n + 1) * sizeof(*it))) == NULL) {
      json_decref(tree);
      *out = fleet_error("internal", "out of memory");
      return 500;
    }
    for (size_t i = 0; i < n; i++) {
      json_t *b = json_array_get(tree, i);
      item_of(b, json_string_value(json_object_get(b, "id")), &it[i]);
    }
  }
  st = bulk_run(f, it, n, text, out);
  if (copy != NULL) {
    OPENSSL_cleanse(copy, len); /* the body's secrets */
    free(copy);
  }
  free(it);
  json_decref(tree);
  return st;
}

int fleet_device_get(struct fleet *f, const char *id, json_t **out)
{
  int refused = fleet_loading_gate(f, out);
  if (refused)
    return refused;
  struct device *d;

  pthread_mutex_lock(&f->mu);
  d = device_find(f, id);
  *out = d ? device_json(d) : fleet_error("not_found", "no such device");
  pthread_mutex_unlock(&f->mu);
  return d ? 200 : 404;
}

int fleet_device_delete(struct fleet *f, const char *id, json_t **out)
{
  int refused = fleet_loading_gate(f, out);
  if (refused)
    return refused;
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
  device_bury(f, d);
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
 * of at most `limit` events after event `after` (ids rise), or newest
 * first before it (ids fall), with "next" naming the last id of a full
 * page. */
int fleet_device_events(struct fleet *f, const char *id, int64_t after, int limit, int newest_first,
                        json_t **out)
{
  int refused = fleet_loading_gate(f, out);
  if (refused)
    return refused;
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
  if (store_events_page(f->store, id, after, limit, newest_first, event_one, &c) < 0) {
    json_decref(c.arr);
    *out = fleet_error("internal", "cannot read the events");
    return 500;
  }
  *out = json_pack("{s:s,s:o,s:o}", "device", id, "events", c.arr, "next",
                   (int)json_array_size(c.arr) == limit ? json_integer((json_int_t)c.last)
                                                        : json_null());
  return 200;
}

static int cmp_id(const void *a, const void *b) { return strcmp(a, b); }

typedef char idbuf[DEVICE_ID_MAX + 1];

/* A max-heap of ids: the `limit` smallest seen so far. */
static void heap_push(idbuf *h, int *n, int limit, const char *id)
{
  int i;

  if (*n == limit) {
    if (strcmp(id, h[0]) >= 0)
      return;
    /* replace the largest, sift down */
    i = 0;
    snprintf(h[0], sizeof(h[0]), "%s", id);
    for (;;) {
      int l = 2 * i + 1, r = l + 1, m = i;
      idbuf t;
      if (l < *n && strcmp(h[l], h[m]) > 0)
        m = l;
      if (r < *n && strcmp(h[r], h[m]) > 0)
        m = r;
      if (m == i)
        return;
      memcpy(t, h[i], sizeof(t));
      memcpy(h[i], h[m], sizeof(t));
      memcpy(h[m], t, sizeof(t));
      i = m;
    }
  }
  i = (*n)++;
  snprintf(h[i], sizeof(h[i]), "%s", id);
  while (i > 0 && strcmp(h[(i - 1) / 2], h[i]) < 0) {
    idbuf t;
    memcpy(t, h[i], sizeof(t));
    memcpy(h[i], h[(i - 1) / 2], sizeof(t));
    memcpy(h[(i - 1) / 2], t, sizeof(t));
    i = (i - 1) / 2;
  }
}

/* The whole fleet is scanned a few hundred buckets per lock hold, keeping
 * the `limit` smallest ids after `after` (and the count); then the page's
 * devices are looked up again and shown. */
int fleet_devices_list(struct fleet *f, const char *model, const char *version, const char *group,
                       const char *state, const char *rollout, const char *q, int limit,
                       const char *after, json_t **out)
{
  int refused = fleet_loading_gate(f, out);
  if (refused)
    return refused;
  idbuf *heap;
  json_t *arr = json_array();
  enum dstate st = D_IDLE;
  int n = 0, total = 0;

  if (state != NULL && dstate_parse(state, &st) < 0) {
    json_decref(arr);
    *out = fleet_error("bad_request", "unknown state");
    return 400;
  }
  if (limit <= 0 || limit > MAX_PAGE)
    limit = DEF_PAGE;
  heap = malloc((size_t)limit * sizeof(*heap));
  if (heap == NULL) {
    json_decref(arr);
    *out = fleet_error("internal", "out of memory");
    return 500;
  }
  for (int b0 = 0; b0 < DEV_BUCKETS; b0 += DEV_SCAN_BUCKETS) {
    pthread_mutex_lock(&f->mu);
    for (int b = b0; b < b0 + DEV_SCAN_BUCKETS && b < DEV_BUCKETS; b++)
      for (struct device *d = f->dev[b]; d; d = d->next) {
        if ((model && strcmp(d->model, model)) ||
            (version && (d->version == NULL || strcmp(d->version, version))) ||
            (group && strcmp(d->group, group)) || (state && d->state != st) ||
            (rollout && (d->rollout == NULL || strcmp(d->rollout->id, rollout))) ||
            (after && strcmp(d->id, after) <= 0) || (q && strstr(d->id, q) == NULL))
          continue;
        total++;
        heap_push(heap, &n, limit, d->id);
      }
    page_unlock(f);
  }
  if (n > 1)
    qsort(heap, (size_t)n, sizeof(*heap), cmp_id);
  pthread_mutex_lock(&f->mu);
  for (int i = 0; i < n; i++) {
    struct device *d = device_find(f, heap[i]);
    if (d != NULL) /* not deleted meanwhile */
      json_array_append_new(arr, device_json(d));
  }
  pthread_mutex_unlock(&f->mu);
  *out = json_pack("{s:o,s:s?,s:i}", "devices", arr, "next",
                   n == limit && total > limit ? heap[limit - 1] : NULL, "total", total);
  free(heap);
  return 200;
}
