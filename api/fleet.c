/* fleet.c: devices, their credentials, check-ins, reports and download
 * progress, and the fleet's persistence.
 *
 * Locking: one mutex (f->mu) guards every device and rollout. Lock order:
 * f->mu, then the store's catalog lock. The store's writer takes f->mu in
 * its flush hook while it holds the database, so nothing here may wait for
 * the writer (store_sync) or read the database with f->mu held. */
#include "autoconfig.h"

#include "fleet_int.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../server/log.h"
#include "../store/store.h"
#include "paths.h"
#include "urc.h"

#define MAX_HOPS 8
#define RETRY_CONCURRENCY 10 /* about the seconds a device waits for a free slot */

static const char *const dstate_names[D_NSTATES] = {
    "idle",     "pending",   "offered", "downloading", "downloaded",
    "updating", "succeeded", "failed",  "no_path",
};

int64_t now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *dstate_name(enum dstate s)
{
  return (unsigned)s < D_NSTATES ? dstate_names[s] : "unknown";
}

int dstate_parse(const char *s, enum dstate *out)
{
  for (int i = 0; i < D_NSTATES; i++)
    if (strcmp(s, dstate_names[i]) == 0) {
      *out = (enum dstate)i;
      return 0;
    }
  return -1;
}

json_t *fleet_error(const char *code, const char *message)
{
  return json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
}

static unsigned hash_str(const char *s)
{
  unsigned h = 2166136261u;

  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 16777619u;
  return h % DEV_BUCKETS;
}

static void random_base32(char *out, int n)
{
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
  unsigned char r[64];

  if (n > (int)sizeof(r) || RAND_bytes(r, n) != 1)
    fatal("no randomness available");
  for (int i = 0; i < n; i++)
    out[i] = alphabet[r[i] & 31];
  out[n] = '\0';
}

static char *xstrdup(const char *s) { return s ? strdup(s) : NULL; }

static void set_str(char **slot, const char *v)
{
  free(*slot);
  *slot = xstrdup(v);
}

/* ---- secrets ----------------------------------------------------------
 * SECURITY: the database keeps a salted SHA-256 of each device secret, not
 * the secret: a stolen database does not hand out credentials. Secrets we
 * generate carry 128 random bits, which is what makes a fast hash enough;
 * secrets an operator sets must have at least 16 characters. */

static void hash_secret(const char *secret, const char *salt, char *out, size_t outlen)
{
  unsigned char md[32];
  unsigned mdlen = 0;
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  char hex[65];

  EVP_DigestInit_ex(c, EVP_sha256(), NULL);
  EVP_DigestUpdate(c, salt, strlen(salt));
  EVP_DigestUpdate(c, secret, strlen(secret));
  EVP_DigestFinal_ex(c, md, &mdlen);
  EVP_MD_CTX_free(c);
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", md[i]);
  snprintf(out, outlen, "sha256$%s$%s", salt, hex);
}

static void make_secret_hash(const char *secret, char *out, size_t outlen)
{
  char salt[17];

  random_base32(salt, 16);
  hash_secret(secret, salt, out, outlen);
}

static int secret_ok(const struct device *d, const char *secret)
{
  char salt[32], want[96];
  const char *p = d->secret_hash + 7, *q;

  if (secret == NULL || strncmp(d->secret_hash, "sha256$", 7) != 0)
    return 0;
  q = strchr(p, '$');
  if (q == NULL || (size_t)(q - p) >= sizeof(salt))
    return 0;
  memcpy(salt, p, (size_t)(q - p));
  salt[q - p] = '\0';
  hash_secret(secret, salt, want, sizeof(want));
  return strlen(want) == strlen(d->secret_hash) &&
         CRYPTO_memcmp(want, d->secret_hash, strlen(want)) == 0;
}

/* ---- devices ----------------------------------------------------------- */

struct device *device_find(struct fleet *f, const char *id)
{
  for (struct device *d = f->dev[hash_str(id)]; d; d = d->next)
    if (strcmp(d->id, id) == 0)
      return d;
  return NULL;
}

static struct device *token_find(struct fleet *f, const char *token)
{
  for (struct device *d = f->tok[hash_str(token)]; d; d = d->tnext)
    if (strcmp(d->token, token) == 0)
      return d;
  return NULL;
}

void token_link(struct fleet *f, struct device *d)
{
  unsigned h = hash_str(d->token);
  d->tnext = f->tok[h];
  f->tok[h] = d;
}

static void token_unlink(struct fleet *f, struct device *d)
{
  if (d->token[0] == '\0')
    return;
  for (struct device **pp = &f->tok[hash_str(d->token)]; *pp; pp = &(*pp)->tnext)
    if (*pp == d) {
      *pp = d->tnext;
      break;
    }
  d->tnext = NULL;
}

void device_mark(struct fleet *f, struct device *d)
{
  if (!d->dirty) {
    d->dirty = 1;
    d->dirty_next = f->dirty;
    f->dirty = d;
  }
}

static void time_text(int64_t ms, char *out, size_t len);

void device_event(struct fleet *f, const struct device *d, const char *kind, json_t *detail)
{
  char *text;

  char at[40], sec[32];
  int64_t t = now_ms();

  if (detail == NULL)
    detail = json_object();
  time_text(t, sec, sizeof(sec));
  sec[strlen(sec) - 1] = '\0'; /* drop the Z: milliseconds follow */
  snprintf(at, sizeof(at), "%s.%03dZ", sec, (int)(t % 1000));
  json_object_set_new(detail, "at", json_string(at));
  text = json_dumps(detail, JSON_COMPACT);
  json_decref(detail);
  if (text == NULL)
    return;
  json_array_append_new(f->events, json_pack("[s,I,s,s]", d->id, (json_int_t)t, kind, text));
  free(text);
}

void device_set_state(struct fleet *f, struct device *d, enum dstate to, const char *reason)
{
  enum dstate from = d->state;

  snprintf(d->reason, sizeof(d->reason), "%s", reason ? reason : "");
  if (from == to) {
    device_mark(f, d);
    return;
  }
  d->state = to;
  d->state_since = now_ms();
  device_event(f, d, "state",
               json_pack("{s:s,s:s,s:s}", "from", dstate_name(from), "to", dstate_name(to),
                         "reason", d->reason));
  device_mark(f, d);
  if (d->rollout != NULL)
    rollout_mark(d->rollout);
}

void device_clear_offer(struct fleet *f, struct device *d)
{
  token_unlink(f, d);
  d->token[0] = '\0';
  d->package_id[0] = '\0';
  d->sha256[0] = '\0';
  set_str(&d->hop_from, NULL);
  set_str(&d->hop_to, NULL);
}

/* A new offer starts its progress from nothing; until then the last
 * offer's progress stays on show. */
static void progress_reset(struct device *d)
{
  d->size = 0;
  d->bytes_served = d->contiguous = 0;
  d->n_ival = 0;
  d->resumes = d->segments = d->last_interrupted = 0;
  d->device_percent = -1;
}

static void device_free(struct device *d)
{
  free(d->model);
  free(d->version);
  free(d->group);
  free(d->hop_from);
  free(d->hop_to);
  json_decref(d->tags);
  OPENSSL_cleanse(d->secret_hash, sizeof(d->secret_hash));
  free(d);
}

static struct device *device_new(struct fleet *f, const char *id)
{
  struct device *d = calloc(1, sizeof(*d));
  unsigned h = hash_str(id);

  if (d == NULL)
    return NULL;
  snprintf(d->id, sizeof(d->id), "%s", id);
  d->group = strdup("");
  d->tags = json_array();
  d->fail_code = d->last_code = -1;
  d->device_percent = -1;
  d->state_since = now_ms();
  d->next = f->dev[h];
  f->dev[h] = d;
  f->n_devices++;
  return d;
}

static void device_unlink(struct fleet *f, struct device *d)
{
  for (struct device **pp = &f->dev[hash_str(d->id)]; *pp; pp = &(*pp)->next)
    if (*pp == d) {
      *pp = d->next;
      break;
    }
  for (struct device **pp = &f->dirty; *pp; pp = &(*pp)->dirty_next)
    if (*pp == d) {
      *pp = d->dirty_next;
      break;
    }
  token_unlink(f, d);
  f->n_devices--;
}

static int percent_of(const struct device *d)
{
  if (d->size == 0)
    return 0;
  return (int)(d->contiguous * 100 / d->size);
}

static void time_text(int64_t ms, char *out, size_t len)
{
  time_t t = (time_t)(ms / 1000);
  struct tm tm;

  if (ms <= 0) {
    out[0] = '\0';
    return;
  }
  gmtime_r(&t, &tm);
  strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

json_t *time_json(int64_t ms)
{
  char buf[32];

  if (ms <= 0)
    return json_null();
  time_text(ms, buf, sizeof(buf));
  return json_string(buf);
}

json_t *device_json(const struct device *d)
{
  json_t *o = json_object(), *prog, *last = json_null();

  json_object_set_new(o, "id", json_string(d->id));
  json_object_set_new(o, "model", json_string(d->model));
  json_object_set_new(o, "version", d->version ? json_string(d->version) : json_null());
  json_object_set_new(o, "group", json_string(d->group));
  json_object_set(o, "tags", d->tags);
  json_object_set_new(o, "state", json_string(dstate_name(d->state)));
  json_object_set_new(o, "state_since", time_json(d->state_since));
  json_object_set_new(o, "reason", json_string(d->reason));
  json_object_set_new(o, "rollout", d->rollout ? json_string(d->rollout->id) : json_null());
  json_object_set_new(o, "attempts", json_integer(d->attempts));
  if (d->package_id[0] != '\0')
    json_object_set_new(o, "offer",
                        json_pack("{s:s,s:s?,s:s?,s:I}", "package", d->package_id, "from",
                                  d->hop_from, "to", d->hop_to, "size", (json_int_t)d->size));
  prog = json_pack("{s:i,s:I,s:I,s:i,s:i,s:s,s:o,s:o,s:s}", "percent", percent_of(d),
                   "bytes_served", (json_int_t)d->bytes_served, "contiguous",
                   (json_int_t)d->contiguous, "resumes", d->resumes, "segments", d->segments,
                   "protocol", d->protocol, "first_seen", time_json(d->first_seen), "last_seen",
                   time_json(d->last_seen), "client_address", d->addr);
  if (d->device_percent >= 0)
    json_object_set_new(prog, "device_percent", json_integer(d->device_percent));
  json_object_set_new(o, "progress", prog);
  if (d->last_code >= 0 || d->last_stage[0] != '\0') {
    last = json_pack("{s:s,s:o,s:o}", "stage", d->last_stage, "at", time_json(d->last_at), "code",
                     d->last_code >= 0 ? json_integer(d->last_code) : json_null());
    if (d->last_code >= 0) {
      json_object_set_new(last, "class", json_string(code_class_name(code_classify(d->last_code))));
      json_object_set_new(last, "meaning", json_string(code_meaning(d->last_code)));
    }
  }
  json_object_set_new(o, "last_result", last);
  return o;
}

/* The persisted form: everything, so that a restart resumes every offer. */
static void put_s(json_t *o, const char *k, const char *v)
{
  json_object_set_new(o, k, v ? json_string(v) : json_null());
}

static void put_i(json_t *o, const char *k, int64_t v)
{
  json_object_set_new(o, k, json_integer((json_int_t)v));
}

static json_t *device_doc(const struct device *d)
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
  put_s(o, "addr", d->addr);
  put_i(o, "first_seen", d->first_seen);
  put_i(o, "last_seen", d->last_seen);
  put_s(o, "last_stage", d->last_stage);
  put_i(o, "last_code", d->last_code);
  put_i(o, "last_at", d->last_at);
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

static void device_from_doc(struct fleet *f, struct device *d, json_t *doc)
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
  snprintf(d->addr, sizeof(d->addr), "%s", jstr(doc, "addr"));
  d->first_seen = jint(doc, "first_seen", 0);
  d->last_seen = jint(doc, "last_seen", 0);
  snprintf(d->last_stage, sizeof(d->last_stage), "%s", jstr(doc, "last_stage"));
  d->last_code = jint(doc, "last_code", -1);
  d->last_at = jint(doc, "last_at", 0);
  if (d->token[0] != '\0')
    token_link(f, d);
}

/* ---- persistence ------------------------------------------------------- */

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
  } *dev = NULL;
  struct rsaved {
    char id[16], state[16];
    json_t *doc;
  } *ro = NULL;
  char **deleted;
  json_t *events, *e;
  int n_dev = 0, n_ro = 0, n_deleted, cap = 0;
  size_t i;

  pthread_mutex_lock(&f->mu);
  deleted = f->deleted;
  n_deleted = f->n_deleted;
  f->deleted = NULL;
  f->n_deleted = f->cap_deleted = 0;
  for (struct device *d = f->dirty; d; d = d->dirty_next)
    cap++;
  dev = cap ? calloc((size_t)cap, sizeof(*dev)) : NULL;
  while (f->dirty) {
    struct device *d = f->dirty;
    if (dev != NULL) {
      struct saved *sv = &dev[n_dev++];
      snprintf(sv->id, sizeof(sv->id), "%s", d->id);
      snprintf(sv->model, sizeof(sv->model), "%s", d->model ? d->model : "");
      snprintf(sv->state, sizeof(sv->state), "%s", dstate_name(d->state));
      snprintf(sv->rollout, sizeof(sv->rollout), "%s", d->rollout ? d->rollout->id : "");
      sv->doc = device_doc(d);
    }
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
  for (int k = 0; k < n_deleted; k++) {
    store_tx_device_delete(s, deleted[k]);
    free(deleted[k]);
  }
  free(deleted);
  for (int k = 0; k < n_dev; k++) {
    char *text = json_dumps(dev[k].doc, JSON_COMPACT);
    if (text != NULL)
      store_tx_device_put(s, dev[k].id, dev[k].model, dev[k].state,
                          dev[k].rollout[0] ? dev[k].rollout : NULL, text);
    free(text);
    json_decref(dev[k].doc);
  }
  free(dev);
  for (int k = 0; k < n_ro; k++) {
    char *text = json_dumps(ro[k].doc, JSON_COMPACT);
    if (text != NULL)
      store_tx_rollout_put(s, ro[k].id, ro[k].state, text);
    free(text);
    json_decref(ro[k].doc);
  }
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
  *out = f;
  return 0;
}

void fleet_close(struct fleet *f)
{
  if (f == NULL)
    return;
  if (f->store != NULL)
    store_set_flush_hook(f->store, NULL, NULL, NULL);
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

/* ---- identity ---------------------------------------------------------- */

/* SECURITY: a device proves itself with its secret, or with a client
 * certificate (verified against client_ca) whose CN is its id. Nothing is
 * recorded for a request that fails this. */
static struct device *authenticate(struct fleet *f, const struct fleet_identity *who)
{
  struct device *d;

  if (who->device_id == NULL || who->device_id[0] == '\0')
    return NULL;
  d = device_find(f, who->device_id);
  if (d == NULL)
    return NULL;
  if (who->cert_cn != NULL && strcmp(who->cert_cn, d->id) == 0)
    return d;
  if (who->secret != NULL && secret_ok(d, who->secret))
    return d;
  return NULL;
}

static void seen(struct device *d, const struct fleet_identity *who)
{
  int64_t t = now_ms();

  if (d->first_seen == 0)
    d->first_seen = t;
  d->last_seen = t;
  if (who->addr != NULL)
    snprintf(d->addr, sizeof(d->addr), "%s", who->addr);
}

/* ---- offers ------------------------------------------------------------ */

struct edge_list {
  struct path_edge *e;
  char (*ids)[PKG_ID_LEN + 1];
  char (*shas)[65];
  int n, cap;
};

static int collect_edge(struct package *p, void *arg)
{
  struct edge_list *l = arg;

  if (p->status != PKG_OK)
    return 0;
  if (l->n == l->cap) {
    int nc = l->cap ? 2 * l->cap : 32;
    struct path_edge *ne = realloc(l->e, (size_t)nc * sizeof(*ne));
    char(*ni)[PKG_ID_LEN + 1];
    if (ne == NULL)
      return 1;
    l->e = ne;
    ni = realloc(l->ids, (size_t)nc * sizeof(*ni));
    if (ni == NULL)
      return 1;
    l->ids = ni;
    {
      char(*ns)[65] = realloc(l->shas, (size_t)nc * sizeof(*ns));
      if (ns == NULL)
        return 1;
      l->shas = ns;
    }
    l->cap = nc;
  }
  /* the strings stay valid: the list is used while the callback's caller
   * holds nothing, so copy them */
  l->e[l->n].from = strdup(p->from);
  l->e[l->n].to = strdup(p->to);
  l->e[l->n].size = p->size;
  snprintf(l->ids[l->n], sizeof(l->ids[l->n]), "%s", p->id);
  snprintf(l->shas[l->n], sizeof(l->shas[l->n]), "%s", p->sha256);
  l->n++;
  return 0;
}

static void edges_free(struct edge_list *l)
{
  for (int i = 0; i < l->n; i++) {
    free((char *)l->e[i].from);
    free((char *)l->e[i].to);
  }
  free(l->e);
  free(l->ids);
  free(l->shas);
}

/* Offers the device the first hop of its cheapest path to the target.
 * 0: offered; 1: already there; -1: no path (state no_path). */
static int offer_next_hop(struct fleet *f, struct device *d)
{
  struct rollout *r = d->rollout;
  struct edge_list l = {0};
  int hops[MAX_HOPS], n;
  uint64_t total = 0;
  char reason[160];

  if (d->version == NULL) {
    device_set_state(f, d, D_PENDING, "version unknown: waiting for the device to report it");
    return -1;
  }
  if (strcmp(d->version, r->target) == 0)
    return 1;
  store_package_foreach(f->store, r->model, NULL, NULL, collect_edge, &l);
  n = path_find(l.e, l.n, d->version, r->target, hops, MAX_HOPS, &total);
  if (n <= 0) {
    snprintf(reason, sizeof(reason), "no chain of packages from %s to %s for model %s", d->version,
             r->target, r->model);
    edges_free(&l);
    device_clear_offer(f, d);
    device_set_state(f, d, D_NO_PATH, reason);
    return -1;
  }
  device_clear_offer(f, d);
  progress_reset(d);
  snprintf(d->package_id, sizeof(d->package_id), "%s", l.ids[hops[0]]);
  snprintf(d->sha256, sizeof(d->sha256), "%s", l.shas[hops[0]]);
  set_str(&d->hop_from, l.e[hops[0]].from);
  set_str(&d->hop_to, l.e[hops[0]].to);
  d->size = l.e[hops[0]].size;
  random_base32(d->token, FLEET_TOKEN_LEN);
  token_link(f, d);
  f->offers++;
  snprintf(reason, sizeof(reason), "hop %s -> %s (%d of %d, %llu bytes in all)", d->hop_from,
           d->hop_to, 1, n, (unsigned long long)total);
  device_event(f, d, "offer",
               json_pack("{s:s,s:s,s:s,s:I,s:i}", "package", d->package_id, "from", d->hop_from,
                         "to", d->hop_to, "size", (json_int_t)d->size, "hops", n));
  device_set_state(f, d, D_OFFERED, reason);
  edges_free(&l);
  return 0;
}

/* Seconds until the rollout's window opens, 0 when open. */
static int window_wait(const struct rollout *r, int64_t now)
{
  time_t t = (time_t)(now / 1000);
  struct tm tm;
  int h;

  if (r->win_from < 0)
    return 0;
  gmtime_r(&t, &tm);
  h = tm.tm_hour;
  if (r->win_from <= r->win_to ? (h >= r->win_from && h < r->win_to)
                               : (h >= r->win_from || h < r->win_to))
    return 0;
  {
    int hours = (r->win_from - h + 24) % 24;
    int wait = hours * 3600 - tm.tm_min * 60 - tm.tm_sec;
    return wait > 0 ? wait : 60;
  }
}

static void answer_offer(const struct device *d, const char *base_url, struct checkin_answer *out)
{
  out->status = 200;
  snprintf(out->url, sizeof(out->url), "%s/f/%s", base_url, d->token);
  snprintf(out->package_id, sizeof(out->package_id), "%s", d->package_id);
  snprintf(out->sha256, sizeof(out->sha256), "%s", d->sha256);
  snprintf(out->from, sizeof(out->from), "%s", d->hop_from ? d->hop_from : "");
  snprintf(out->to, sizeof(out->to), "%s", d->hop_to ? d->hop_to : "");
  snprintf(out->rollout, sizeof(out->rollout), "%s", d->rollout ? d->rollout->id : "");
  out->size = d->size;
  /* a segment a module can write between two check-ins of its host;
   * a multiple of 2048, as AT+QFOTADL requires */
  out->request_size = d->size > 1024 * 1024 ? 65536 : 10240;
}

/* The device moved to `version`. Confirms a hop or notes the surprise. */
static void version_changed(struct fleet *f, struct device *d, const char *version)
{
  char *old = d->version ? strdup(d->version) : NULL;

  set_str(&d->version, version);
  device_event(f, d, "version", json_pack("{s:s?,s:s}", "from", old, "to", version));
  device_mark(f, d);
  if (d->rollout != NULL && d->hop_to != NULL && strcmp(version, d->hop_to) == 0) {
    int final = strcmp(version, d->rollout->target) == 0;
    device_event(
        f, d, "hop_confirmed",
        json_pack("{s:s,s:s?,s:s}", "package", d->package_id, "from", d->hop_from, "to", version));
    device_clear_offer(f, d);
    d->attempts = 0;
    d->fail_code = -1;
    if (final)
      device_set_state(f, d, D_SUCCEEDED, "on the target version");
    else
      device_set_state(f, d, D_PENDING, "hop confirmed; next hop follows");
  } else if (d->rollout != NULL && d->state != D_SUCCEEDED && d->state != D_IDLE) {
    if (d->rollout->target && strcmp(version, d->rollout->target) == 0) {
      device_clear_offer(f, d);
      device_set_state(f, d, D_SUCCEEDED, "on the target version");
    } else if (d->state == D_NO_PATH ||
               (d->state == D_FAILED && d->fail_code == 511 &&
                d->attempts < d->rollout->max_attempts) ||
               (d->hop_from != NULL && strcmp(version, d->hop_from) != 0)) {
      /* not where we thought: plan again from where it is */
      device_clear_offer(f, d);
      device_set_state(f, d, D_PENDING, "version changed; path planned again");
    }
  }
  free(old);
}

void fleet_checkin(struct fleet *f, const struct fleet_identity *who, const char *version,
                   const char *base_url, struct checkin_answer *out)
{
  struct device *d;
  struct rollout *r;
  int64_t now = now_ms();
  int changed = 0;

  memset(out, 0, sizeof(*out));
  pthread_mutex_lock(&f->mu);
  f->checkins++;
  d = authenticate(f, who);
  if (d == NULL) {
    out->status = 403;
    snprintf(out->message, sizeof(out->message), "unknown device or wrong credential");
    goto out;
  }
  seen(d, who);
  device_mark(f, d);
  if (version != NULL && version[0] != '\0' &&
      (d->version == NULL || strcmp(d->version, version))) {
    version_changed(f, d, version);
    changed = 1;
  }
  r = d->rollout;
  out->status = 204;
  if (r == NULL || r->state != R_RUNNING)
    goto out;

  switch (d->state) {
  case D_OFFERED:
    if (d->retry_at > now) {
      out->status = 429;
      out->retry_after = (int)((d->retry_at - now + 999) / 1000);
      goto out;
    }
    /* an offer stands until it ends: the same URL again */
    answer_offer(d, base_url, out);
    goto out;
  case D_DOWNLOADING: answer_offer(d, base_url, out); goto out;
  case D_FAILED:
    if (d->retry_at > now && d->attempts < r->max_attempts) {
      out->status = 429;
      out->retry_after = (int)((d->retry_at - now + 999) / 1000);
    }
    goto out;
  case D_PENDING: break;
  default: goto out; /* downloaded, updating, succeeded, no_path, idle */
  }

  /* pending: is it this device's turn? */
  if (d->position >= rollout_wave_cutoff(r, r->wave))
    goto out;
  if (r->start_at > now) {
    int64_t wait = (r->start_at - now + 999) / 1000;
    out->status = 429;
    out->retry_after = (int)(wait > 86400 ? 86400 : wait); /* ask again within a day */
    goto out;
  }
  if ((out->retry_after = window_wait(r, now)) > 0) {
    out->status = 429;
    goto out;
  }
  if (r->max_concurrent > 0 && rollout_active(r) >= r->max_concurrent) {
    unsigned char j = 0;
    RAND_bytes(&j, 1);
    out->status = 429;
    /* spread the retries, so that freed slots do not wait, nor all at once */
    out->retry_after = RETRY_CONCURRENCY / 2 + j % RETRY_CONCURRENCY;
    goto out;
  }
  changed = 1;
  if (offer_next_hop(f, d) == 0)
    answer_offer(d, base_url, out);
  else if (d->state == D_PENDING && d->version != NULL && strcmp(d->version, r->target) == 0)
    device_set_state(f, d, D_SUCCEEDED, "on the target version");
  rollout_evaluate(f, r);
out:
  pthread_mutex_unlock(&f->mu);
  /* a state the device is told about is durable before it is told */
  if (changed)
    store_sync(f->store);
}

/* ---- reports ----------------------------------------------------------- */

static int64_t backoff_ms(const struct rollout *r, int attempts)
{
  int64_t s = r->retry_backoff;

  for (int i = 1; i < attempts && s < 3600; i++)
    s *= 2;
  return (s > 3600 ? 3600 : s) * 1000;
}

static void count_code(struct rollout *r, long code)
{
  char key[24];
  json_t *v;

  if (r == NULL)
    return;
  snprintf(key, sizeof(key), "%ld", code);
  v = json_object_get(r->codes, key);
  json_object_set_new(r->codes, key, json_integer(v ? json_integer_value(v) + 1 : 1));
  rollout_mark(r);
}

/* Packages found damaged by a report: pause every rollout offering them. */
struct suspect {
  char id[PKG_ID_LEN + 1];
};

static void fail(struct fleet *f, struct device *d, long code, const char *stage,
                 struct suspect *suspect)
{
  struct rollout *r = d->rollout;
  enum code_class cls = code_classify(code);
  char reason[160];

  d->fail_code = code;
  count_code(r, code);
  snprintf(reason, sizeof(reason), "%s %ld: %s (%s)", stage, code, code_meaning(code),
           code_class_name(cls));
  if (r == NULL) {
    device_mark(f, d);
    return;
  }
  switch (cls) {
  case CODE_RETRYABLE:
  case CODE_UNKNOWN:
    d->attempts++;
    if (d->attempts < r->max_attempts) {
      d->retry_at = now_ms() + backoff_ms(r, d->attempts);
      d->last_interrupted = 1;
      device_set_state(f, d, D_OFFERED, reason);
      return;
    }
    device_set_state(f, d, D_FAILED, reason);
    return;
  case CODE_OUR_MISTAKE: {
    char alarm[400];
    snprintf(alarm, sizeof(alarm), "device %s: %s on package %s", d->id, reason, d->package_id);
    rollout_alarm(f, r, alarm);
    d->attempts++;
    device_set_state(f, d, D_FAILED, reason);
    return;
  }
  case CODE_PACKAGE_SUSPECT:
    if (suspect != NULL)
      snprintf(suspect->id, sizeof(suspect->id), "%s", d->package_id);
    d->attempts++;
    device_set_state(f, d, D_FAILED, reason);
    return;
  case CODE_MISMATCH:
    /* the device is not on the version we thought: unknown until it says */
    set_str(&d->version, NULL);
    d->attempts++;
    device_clear_offer(f, d);
    device_set_state(f, d, D_FAILED, reason);
    return;
  default:
    d->attempts++;
    device_set_state(f, d, D_FAILED, reason);
    return;
  }
}

/* Applies one URC (or JSON stage) to the device. */
static void apply_urc(struct fleet *f, struct device *d, const struct urc *u,
                      struct suspect *suspect)
{
  int in_flight = d->rollout != NULL && d->state != D_SUCCEEDED && d->state != D_IDLE &&
                  d->state != D_NO_PATH && d->state != D_PENDING;

  snprintf(d->last_stage, sizeof(d->last_stage), "%s", u->name);
  d->last_at = now_ms();
  if (u->has_number && (u->stage == URC_DOWNLOAD_END || u->stage == URC_UPDATE_END))
    d->last_code = u->number;
  device_event(f, d, "report",
               json_pack("{s:s,s:o}", "stage", u->name, "value",
                         u->has_number ? json_integer(u->number) : json_null()));
  device_mark(f, d);
  if (!in_flight)
    return;
  switch (u->stage) {
  case URC_DOWNLOAD_START:
    if (d->state == D_OFFERED)
      device_set_state(f, d, D_DOWNLOADING, "the module started downloading");
    break;
  case URC_DOWNLOADING:
    if (u->has_number)
      d->device_percent = (int)u->number;
    if (d->state == D_OFFERED)
      device_set_state(f, d, D_DOWNLOADING, "the module is downloading");
    break;
  case URC_DOWNLOAD_END:
    if (u->number == 0)
      device_set_state(f, d, D_DOWNLOADED, "the module has the whole package");
    else if (code_classify(u->number) == CODE_SEGMENT) {
      if (d->state == D_OFFERED)
        device_set_state(f, d, D_DOWNLOADING, "segmented download");
    } else
      fail(f, d, u->number, u->name, suspect);
    break;
  case URC_RESETTING:
  case URC_UPDATE_START:
  case URC_UPDATING:
    if (d->state != D_FAILED)
      device_set_state(f, d, D_UPDATING, "the module is applying the package");
    break;
  case URC_UPDATE_END:
    if (u->number == 0)
      device_set_state(f, d, D_UPDATING,
                       "update reported done; waiting for the new version at check-in");
    else
      fail(f, d, u->number, u->name, suspect);
    break;
  default: break;
  }
}

/* JSON reports: {"stage": "HTTPEND", "code": 702} (or "percent"). */
static int json_report(const char *body, size_t len, struct urc *u)
{
  json_t *o = json_loadb(body, len, 0, NULL);
  char line[128];
  const char *stage;
  json_t *code, *pct;
  int rc = -1;

  if (!json_is_object(o))
    goto out;
  stage = json_string_value(json_object_get(o, "stage"));
  code = json_object_get(o, "code");
  pct = json_object_get(o, "percent");
  if (stage == NULL || strlen(stage) > 20)
    goto out;
  if (json_is_integer(code))
    snprintf(line, sizeof(line), "+QIND: \"FOTA\",\"%s\",%lld", stage,
             (long long)json_integer_value(code));
  else if (json_is_integer(pct))
    snprintf(line, sizeof(line), "+QIND: \"FOTA\",\"%s\",%lld", stage,
             (long long)json_integer_value(pct));
  else
    snprintf(line, sizeof(line), "+QIND: \"FOTA\",\"%s\"", stage);
  rc = urc_parse_line(line, strlen(line), u);
out:
  json_decref(o);
  return rc;
}

static void pause_rollouts_using(struct fleet *f, const char *package_id)
{
  char reason[200];

  snprintf(reason, sizeof(reason), "package %s failed its re-check: damaged on the server",
           package_id);
  for (struct rollout *r = f->rollouts; r; r = r->next) {
    int uses = 0;
    for (int i = 0; i < r->n_members && !uses; i++)
      uses = strcmp(r->members[i]->package_id, package_id) == 0;
    if (uses && r->state == R_RUNNING)
      rollout_pause(f, r, reason);
  }
}

int fleet_report(struct fleet *f, const struct fleet_identity *who, const char *content_type,
                 const char *body, size_t len, char *state, size_t statelen, int *accepted,
                 char *message, size_t msglen)
{
  struct device *d;
  struct suspect suspect = {""};
  struct urc u;
  int used = 0, status = 200;

  pthread_mutex_lock(&f->mu);
  f->reports++;
  d = authenticate(f, who);
  if (d == NULL) {
    snprintf(message, msglen, "unknown device or wrong credential");
    status = 403;
    goto out;
  }
  if (content_type != NULL && strncasecmp(content_type, "application/json", 16) == 0) {
    if (json_report(body, len, &u) == 0) {
      apply_urc(f, d, &u, &suspect);
      used++;
    }
  } else {
    const char *p = body, *end = body + len;
    while (p < end) {
      const char *nl = memchr(p, '\n', (size_t)(end - p));
      const char *le = nl ? nl : end;
      if (urc_parse_line(p, (size_t)(le - p), &u) == 0) {
        apply_urc(f, d, &u, &suspect);
        used++;
      }
      p = nl ? nl + 1 : end;
    }
  }
  if (used == 0) {
    snprintf(message, msglen,
             "no FOTA URC line in the report (expected e.g. "
             "+QIND: \"FOTA\",\"HTTPEND\",0)");
    status = 400;
    goto out;
  }
  seen(d, who);
  *accepted = used;
  snprintf(state, statelen, "%s", dstate_name(d->state));
  if (d->rollout != NULL)
    rollout_evaluate(f, d->rollout);
out:
  pthread_mutex_unlock(&f->mu);
  if (suspect.id[0] != '\0' && store_package_verify(f->store, suspect.id) < 0) {
    pthread_mutex_lock(&f->mu);
    pause_rollouts_using(f, suspect.id);
    pthread_mutex_unlock(&f->mu);
  }
  if (status == 200)
    store_sync(f->store);
  return status;
}

/* ---- downloads --------------------------------------------------------- */

struct package *fleet_download_begin(struct fleet *f, const char *token, int get)
{
  struct device *d;
  char pkg[PKG_ID_LEN + 1] = "";

  pthread_mutex_lock(&f->mu);
  d = token_find(f, token);
  if (d != NULL) {
    snprintf(pkg, sizeof(pkg), "%s", d->package_id);
    if (get && d->state == D_OFFERED && d->retry_at <= now_ms())
      device_set_state(f, d, D_DOWNLOADING, "first bytes requested");
  }
  pthread_mutex_unlock(&f->mu);
  return pkg[0] ? store_package_get(f->store, pkg) : NULL;
}

/* Adds [start, end) to the offer's intervals and recomputes how far the
 * device has every byte from 0. */
static void add_interval(struct device *d, uint64_t start, uint64_t end)
{
  int i, j;

  if (end <= start)
    return;
  if (d->n_ival == MAX_IVALS) {
    /* keep the first intervals, which decide the contiguous prefix */
    d->n_ival--;
  }
  d->ival[d->n_ival].start = start;
  d->ival[d->n_ival].end = end;
  d->n_ival++;
  /* sort by start and merge */
  for (i = 1; i < d->n_ival; i++)
    for (j = i; j > 0 && d->ival[j].start < d->ival[j - 1].start; j--) {
      uint64_t s = d->ival[j].start, e = d->ival[j].end;
      d->ival[j] = d->ival[j - 1];
      d->ival[j - 1].start = s;
      d->ival[j - 1].end = e;
    }
  for (i = 0, j = 1; j < d->n_ival; j++) {
    if (d->ival[j].start <= d->ival[i].end) {
      if (d->ival[j].end > d->ival[i].end)
        d->ival[i].end = d->ival[j].end;
    } else {
      d->ival[++i] = d->ival[j];
    }
  }
  d->n_ival = i + 1;
  d->contiguous = d->ival[0].start == 0 ? d->ival[0].end : 0;
}

void fleet_download_end(struct fleet *f, const char *token, uint64_t start, uint64_t sent,
                        int complete, int ranged, const char *protocol, const char *addr)
{
  struct device *d;

  pthread_mutex_lock(&f->mu);
  f->progress_events++;
  d = token_find(f, token);
  if (d == NULL)
    goto out;
  if (start > 0 && d->last_interrupted && start <= d->contiguous)
    d->resumes++;
  if (ranged && complete)
    d->segments++;
  d->last_interrupted = !complete;
  d->bytes_served += sent;
  add_interval(d, start, start + sent);
  if (d->rollout != NULL) {
    d->rollout->bytes_served += sent;
    rollout_mark(d->rollout);
  }
  snprintf(d->protocol, sizeof(d->protocol), "%s", protocol);
  if (addr != NULL)
    snprintf(d->addr, sizeof(d->addr), "%s", addr);
  if (d->first_seen == 0)
    d->first_seen = now_ms();
  d->last_seen = now_ms();
  device_mark(f, d); /* batched: no commit waited for */
out:
  pthread_mutex_unlock(&f->mu);
}

/* ---- tick ---------------------------------------------------------------- */

void fleet_tick(struct fleet *f)
{
  int64_t now = now_ms();

  pthread_mutex_lock(&f->mu);
  for (struct rollout *r = f->rollouts; r; r = r->next) {
    if (r->state != R_RUNNING)
      continue;
    for (int i = 0; i < r->n_members; i++) {
      struct device *d = r->members[i];
      int64_t since = d->retry_at > d->state_since ? d->retry_at : d->state_since;
      /* an offer nobody takes up also times out: it holds a concurrency slot */
      if ((d->state == D_OFFERED || d->state == D_DOWNLOADING || d->state == D_DOWNLOADED ||
           d->state == D_UPDATING) &&
          r->timeout > 0 && now - since > (int64_t)r->timeout * 1000) {
        char reason[96];
        snprintf(reason, sizeof(reason), "timeout: %s for more than %d s", dstate_name(d->state),
                 r->timeout);
        d->attempts++;
        device_set_state(f, d, D_FAILED, reason);
      }
    }
    rollout_evaluate(f, r);
  }
  pthread_mutex_unlock(&f->mu);
}

/* ---- admin: devices ------------------------------------------------------ */

static int id_ok(const char *id)
{
  size_t n = strlen(id);

  if (n == 0 || n > DEVICE_ID_MAX)
    return 0;
  for (const char *p = id; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '-' || *p == '_' || *p == '.' || *p == ':'))
      return 0;
  return 1;
}

static int text_ok(const char *s, size_t max)
{
  size_t n = strlen(s);

  if (n > max)
    return 0;
  for (const char *p = s; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      return 0;
  return 1;
}

/* Checks a device body; NULL when fine, else the complaint. */
static const char *device_body_error(json_t *b, int creating)
{
  json_t *v;
  size_t i;

  if (!json_is_object(b))
    return "the body must be a JSON object";
  v = json_object_get(b, "model");
  if (creating && !json_is_string(v))
    return "model is required";
  if (v && (!json_is_string(v) || !text_ok(json_string_value(v), PKG_FIELD_MAX) ||
            json_string_length(v) == 0))
    return "model must be a non-empty string of at most 128 characters";
  v = json_object_get(b, "version");
  if (v && !json_is_null(v) &&
      (!json_is_string(v) || !text_ok(json_string_value(v), PKG_FIELD_MAX)))
    return "version must be a string of at most 128 characters";
  v = json_object_get(b, "group");
  if (v && (!json_is_string(v) || !text_ok(json_string_value(v), PKG_FIELD_MAX)))
    return "group must be a string of at most 128 characters";
  v = json_object_get(b, "tags");
  if (v) {
    json_t *t;
    if (!json_is_array(v) || json_array_size(v) > 64)
      return "tags must be an array of at most 64 strings";
    json_array_foreach(v, i,
                       t) if (!json_is_string(t) ||
                              !text_ok(json_string_value(t),
                                       64)) return "tags must be strings of at most 64 characters";
  }
  v = json_object_get(b, "secret");
  if (v && (!json_is_string(v) || json_string_length(v) < 16 || json_string_length(v) > 128 ||
            !text_ok(json_string_value(v), 128)))
    return "secret must be a string of 16 to 128 characters";
  return NULL;
}

/* Creates or updates a device from a checked body. *secret_out receives a
 * generated secret (the caller frees it) when one was made. */
static int device_apply(struct fleet *f, const char *id, json_t *b, char **secret_out)
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
  if ((v = json_object_get(b, "version")) != NULL) {
    const char *nv = json_string_value(v);
    if (nv != NULL && (d->version == NULL || strcmp(nv, d->version) != 0)) {
      if (created)
        set_str(&d->version, nv);
      else
        version_changed(f, d, nv);
    }
  }
  device_mark(f, d);
  if (d->rollout == NULL || d->rollout->state == R_COMPLETED || d->rollout->state == R_CANCELLED)
    rollout_join_running(f, d);
  return created;
}

int fleet_device_put(struct fleet *f, const char *id, json_t *body, json_t **out)
{
  const char *err;
  char *secret = NULL;
  int created;

  if (!id_ok(id)) {
    *out = fleet_error("bad_request", "device ids are 1 to 64 of A-Z a-z 0-9 - _ . :");
    return 400;
  }
  pthread_mutex_lock(&f->mu);
  err = device_body_error(body, device_find(f, id) == NULL);
  if (err != NULL) {
    pthread_mutex_unlock(&f->mu);
    *out = fleet_error("bad_request", err);
    return 400;
  }
  created = device_apply(f, id, body, &secret);
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
  store_sync(f->store);
  return created ? 201 : 200;
}

int fleet_devices_bulk(struct fleet *f, json_t *body, json_t **out)
{
  json_t *item, *secrets = json_object();
  size_t i;
  int created = 0, updated = 0;
  char msg[160];

  if (!json_is_array(body) || json_array_size(body) > 100000) {
    json_decref(secrets);
    *out = fleet_error("bad_request", "the body must be a JSON array of at most 100000 devices");
    return 400;
  }
  pthread_mutex_lock(&f->mu);
  /* all or nothing: check every entry first */
  json_array_foreach(body, i, item)
  {
    const char *id = json_string_value(json_object_get(item, "id"));
    const char *err = id == NULL || !id_ok(id)
                          ? "id missing or malformed"
                          : device_body_error(item, device_find(f, id) == NULL);
    if (err != NULL) {
      pthread_mutex_unlock(&f->mu);
      json_decref(secrets);
      snprintf(msg, sizeof(msg), "device %zu: %s; nothing was imported", i, err);
      *out = fleet_error("bad_request", msg);
      return 400;
    }
  }
  json_array_foreach(body, i, item)
  {
    const char *id = json_string_value(json_object_get(item, "id"));
    char *secret = NULL;
    int c = device_apply(f, id, item, &secret);
    if (c > 0)
      created++;
    else if (c == 0)
      updated++;
    if (secret != NULL) {
      json_object_set_new(secrets, id, json_string(secret));
      OPENSSL_cleanse(secret, strlen(secret));
      free(secret);
    }
  }
  pthread_mutex_unlock(&f->mu);
  store_sync(f->store);
  *out = json_pack("{s:i,s:i,s:o}", "created", created, "updated", updated, "secrets", secrets);
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
  if (d->rollout != NULL) {
    rollout_mark(d->rollout);
    rollout_remove_member(d->rollout, d);
  }
  device_unlink(f, d);
  if (f->n_deleted == f->cap_deleted) {
    int nc = f->cap_deleted ? 2 * f->cap_deleted : 16;
    char **nd = realloc(f->deleted, (size_t)nc * sizeof(*nd));
    if (nd != NULL) {
      f->deleted = nd;
      f->cap_deleted = nc;
    }
  }
  if (f->n_deleted < f->cap_deleted)
    f->deleted[f->n_deleted++] = strdup(d->id);
  device_free(d);
  pthread_mutex_unlock(&f->mu);
  store_sync(f->store);
  *out = NULL;
  return 204;
}

struct events_ctx {
  json_t *arr;
};

static int event_one(const char *kind, const char *detail, void *arg)
{
  struct events_ctx *c = arg;
  json_t *o = json_loads(detail, 0, NULL);

  if (!json_is_object(o)) {
    json_decref(o);
    o = json_object();
  }
  json_object_set_new(o, "kind", json_string(kind));
  json_array_append_new(c->arr, o);
  return 0;
}

/* Each event's detail carries its time ("at") beside what happened. */
int fleet_device_events(struct fleet *f, const char *id, json_t **out)
{
  struct events_ctx c;
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
  store_events_load(f->store, id, event_one, &c);
  *out = json_pack("{s:s,s:o}", "device", id, "events", c.arr);
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
  if (limit <= 0 || limit > 1000)
    limit = 100;
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
