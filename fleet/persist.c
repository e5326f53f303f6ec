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

  d->model = fleet_intern(f, jstr(doc, "model"));
  set_str(&d->version, json_string_value(json_object_get(doc, "version")));
  d->group = fleet_intern(f, jstr(doc, "group"));
  if (json_array_size(json_object_get(doc, "tags")) > 0) {
    json_decref(d->tags);
    d->tags = json_deep_copy(json_object_get(doc, "tags"));
  }
  snprintf(d->secret_hash, sizeof(d->secret_hash), "%s", jstr(doc, "secret"));
  psk_unlink(f, d);
  set_str(&d->psk_identity, jstr(doc, "psk_identity")[0] ? jstr(doc, "psk_identity") : NULL);
  free(d->psk_sealed);
  d->psk_sealed = jstr(doc, "psk")[0] ? strdup(jstr(doc, "psk")) : NULL;
  psk_link(f, d);
  if (dstate_parse(jstr(doc, "state"), &d->state) < 0)
    d->state = D_IDLE;
  d->state_since = jint(doc, "state_since", now_ms());
  set_str(&d->reason, jstr(doc, "reason")[0] ? jstr(doc, "reason") : NULL);
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

struct saved {
  char id[DEVICE_ID_MAX + 1];
  char model[PKG_FIELD_MAX + 1], state[16], rollout[16];
  char *text; /* device_text, or NULL: doc */
  json_t *doc;
  int failed;
  int trim;
};

/* Writes a page of saved devices; 1 when some failed (out of memory). */
static int write_page(struct store *s, struct saved *dev, int n, int keep)
{
  int failed = 0;

  for (int k = 0; k < n; k++) {
    char *text = dev[k].text  ? dev[k].text
                 : dev[k].doc ? json_dumps(dev[k].doc, JSON_COMPACT)
                              : NULL;
    if (dev[k].trim)
      store_tx_events_trim(s, dev[k].id, keep);
    if (text != NULL)
      store_tx_device_put(s, dev[k].id, dev[k].model, dev[k].state,
                          dev[k].rollout[0] ? dev[k].rollout : NULL, text);
    else
      failed = 1;
    dev[k].failed = text == NULL;
    free(text);
    dev[k].text = NULL;
    json_decref(dev[k].doc);
    dev[k].doc = NULL;
  }
  return failed;
}

/* The writer's part for the fleet: under the lock only take the records
 * (documents built, lists swapped), a page of devices at a time; encode
 * and write them without it, so that the data plane waits a page's
 * documents at most, not a commit, however many devices changed. */
static void flush_hook(struct store *s, void *arg)
{
  struct fleet *f = arg;
  struct saved *dev = calloc(JOB_PAGE, sizeof(*dev));
  struct rsaved {
    char id[16], state[16];
    json_t *doc;
    int failed;
  } *ro = NULL;
  char **deleted;
  int keep = f->limits.events_per_device;
  struct fevent *events;
  char *ev_text;
  size_t n_events;
  int n_ro = 0, n_deleted, cap = 0, failed = 0;

  if (dev == NULL) {
    /* out of memory: everything stays marked for the next flush */
    log_error("fleet: out of memory while saving; trying again at the next flush");
    return;
  }
  pthread_mutex_lock(&f->mu);
  /* what changed up to now is this flush's: the rest waits for the next */
  if (f->dirty != NULL && f->flushing == NULL) {
    /* the usual case (a flush writes all it took): no walk of the list,
     * which a start or a bulk makes hundreds of thousands long */
    f->flushing = f->dirty;
    f->dirty = NULL;
  } else if (f->dirty != NULL) {
    struct device *tail = f->dirty;
    while (tail->dirty_next)
      tail = tail->dirty_next;
    tail->dirty_next = f->flushing;
    f->flushing = f->dirty;
    f->dirty = NULL;
  }
  deleted = f->deleted;
  n_deleted = f->n_deleted;
  f->deleted = NULL;
  f->n_deleted = f->cap_deleted = 0;
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
  n_events = f->n_events;
  ev_text = f->ev_text;
  f->events = NULL;
  f->n_events = f->cap_events = 0;
  f->ev_text = NULL;
  f->ev_len = f->ev_cap = 0;
  pthread_mutex_unlock(&f->mu);

  /* events first, so that a deletion in this flush takes its device's along */
  for (size_t k = 0; k < n_events; k++) {
    const char *who = ev_text + events[k].off, *kind = who + strlen(who) + 1;
    store_tx_event(s, who, events[k].at, kind, kind + strlen(kind) + 1);
  }
  free(events);
  free(ev_text);
  for (int k = 0; k < n_deleted; k++) {
    store_tx_device_delete(s, deleted[k]);
    free(deleted[k]);
  }
  free(deleted);
  for (;;) {
    int n = 0, more;
    page_lock(f);
    while (f->flushing != NULL && n < JOB_PAGE) {
      struct device *d = f->flushing;
      struct saved *sv = &dev[n++];
      /* a device's history is cut back to its newest events now and then,
       * not at every event: at most a tenth over the limit */
      sv->trim = keep > 0 && d->events_untrimmed > keep / 10;
      if (sv->trim)
        d->events_untrimmed = 0;
      snprintf(sv->id, sizeof(sv->id), "%s", d->id);
      snprintf(sv->model, sizeof(sv->model), "%s", d->model ? d->model : "");
      snprintf(sv->state, sizeof(sv->state), "%s", dstate_name(d->state));
      snprintf(sv->rollout, sizeof(sv->rollout), "%s", d->rollout ? d->rollout->id : "");
      sv->text = device_text(d);
      sv->doc = sv->text ? NULL : device_doc(d);
      f->flushing = d->dirty_next;
      d->dirty = 0;
      d->dirty_next = NULL;
    }
    more = f->flushing != NULL;
    page_unlock(f);
    if (write_page(s, dev, n, keep)) {
      /* out of memory for a record: it stays marked for the next flush */
      pthread_mutex_lock(&f->mu);
      for (int k = 0; k < n; k++) {
        struct device *d = dev[k].failed ? device_find(f, dev[k].id) : NULL;
        if (d != NULL)
          device_mark(f, d);
      }
      pthread_mutex_unlock(&f->mu);
    }
    if (!more)
      break;
  }
  free(dev);
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
    pthread_mutex_lock(&f->mu);
    for (int k = 0; k < n_ro; k++) {
      struct rollout *r = ro[k].failed ? rollout_find(f, ro[k].id) : NULL;
      if (r != NULL)
        rollout_mark(r);
    }
    pthread_mutex_unlock(&f->mu);
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

/* ---- loading ------------------------------------------------------------ */

/* rows a read holds the database for: a request loading its device may
 * wait for one */
#define LOAD_PAGE 1000

/* Passes by state before the one over all. The devices in flight (holding
 * an offer's token, counted against max_concurrent) load before
 * fleet_open returns, so that downloads find their tokens and admission
 * counts are whole; pending ones (possibly every device) on the thread,
 * first, then the rest. */
static const char *const hot_states[] = {"offered", "downloading", "downloaded", "updating",
                                         "pending"};
#define N_HOT ((int)(sizeof(hot_states) / sizeof(hot_states[0])))
#define N_INFLIGHT 4 /* the first passes, loaded before the fronts open */
/* and pages up to these (10,000 devices): a small fleet is whole at once */
#define LOAD_SYNC_PAGES 10

struct load_page {
  struct fleet *f;
  char last[DEVICE_ID_MAX + 1]; /* the last id read, kept or not */
  char (*ids)[DEVICE_ID_MAX + 1];
  char **texts;
  json_t **docs;
  int n;
};

static int collect_row(const char *id, const char *text, void *arg)
{
  struct load_page *p = arg;

  int known;

  if (p->n >= LOAD_PAGE)
    return 1;
  snprintf(p->last, sizeof(p->last), "%s", id);
  if (p->f->load_pass == N_HOT) {
    /* the last pass: what the first ones (or a device's request) loaded is
     * not read twice (the lock order allows f->mu inside the database's
     * lock) */
    pthread_mutex_lock(&p->f->mu);
    known = device_find(p->f, id) != NULL;
    pthread_mutex_unlock(&p->f->mu);
    if (known)
      return 0;
  }
  snprintf(p->ids[p->n], sizeof(p->ids[0]), "%s", id);
  p->texts[p->n] = strdup(text);
  p->n++;
  return 0;
}

int fleet_loading_gate(struct fleet *f, json_t **out)
{
  int st;

  pthread_mutex_lock(&f->mu);
  st = fleet_loading_refusal(f, out);
  pthread_mutex_unlock(&f->mu);
  return st;
}

int fleet_loading_refusal(struct fleet *f, json_t **out)
{
  char msg[160];

  if (!f->loading)
    return 0;
  if (f->load_failed)
    snprintf(msg, sizeof(msg), "the fleet could not be loaded from the database (see the log)");
  else
    snprintf(msg, sizeof(msg),
             "the fleet is loading after a start (%d devices so far); try again in a few seconds",
             f->n_devices);
  *out = fleet_error("unavailable", msg);
  return 503;
}

/* A device read from the database into memory, in its rollout. f->mu */
static void load_device(struct fleet *f, const char *id, json_t *doc)
{
  struct device *d = device_new(f, id);

  if (d == NULL)
    return;
  device_from_doc(f, d, doc);
  if (d->rollout_id[0] != '\0') {
    struct rollout *r = rollout_find(f, d->rollout_id);
    if (r != NULL)
      rollout_add_member(r, d, d->position);
  }
}

int fleet_fault_in(struct fleet *f, const char *id)
{
  char *text = NULL;
  json_t *doc;
  int rc;

  if (!atomic_load(&f->loading) || id == NULL || id[0] == '\0')
    return 0;
  pthread_mutex_lock(&f->mu);
  rc = !f->loading ? 0 : f->load_failed ? -1 : device_find(f, id) != NULL ? 0 : 1;
  pthread_mutex_unlock(&f->mu);
  if (rc <= 0)
    return rc;
  /* a device not in memory has not changed since the start: its stored
   * record is the current one */
  rc = store_device_get(f->store, id, &text);
  if (rc <= 0)
    return rc; /* no such device (0): the fleet can say so; or an error */
  doc = json_loads(text, 0, NULL);
  free(text);
  if (doc == NULL)
    return -1; /* unreadable: the loader says so in the log */
  pthread_mutex_lock(&f->mu);
  /* the loader, or another request, may have brought it in meanwhile, and
   * that copy may have changed since: it stays */
  if (f->loading && device_find(f, id) == NULL)
    load_device(f, id, doc);
  pthread_mutex_unlock(&f->mu);
  json_decref(doc);
  return 0;
}

/* One page of devices (in flight first, then the others). 1 when a page
 * was loaded, 0 at the end, -1 on a database error. */
static int load_step(struct fleet *f, struct load_page *pg)
{
  int n;

  pg->n = 0;
  pg->last[0] = '\0';
  /* a pass for each state of the devices in flight, then one over all
   * (those in already skipped) */
  n = store_devices_page(f->store, f->load_pass < N_HOT ? hot_states[f->load_pass] : NULL,
                         f->load_after, LOAD_PAGE, collect_row, pg);
  if (n < 0)
    return -1;
  /* parsed without any lock */
  for (int i = 0; i < pg->n; i++) {
    pg->docs[i] = pg->texts[i] ? json_loads(pg->texts[i], 0, NULL) : NULL;
    free(pg->texts[i]);
    pg->texts[i] = NULL;
  }
  pthread_mutex_lock(&f->mu);
  for (int i = 0; i < pg->n; i++) {
    const char *id = pg->ids[i];
    if (i > 0 && i % (JOB_PAGE / 5) == 0) {
      /* a breath for the device requests: 100 records a hold, about a
       * millisecond (500 were several under load, while devices check in) */
      page_unlock(f);
      pthread_mutex_lock(&f->mu);
    }
    if (device_find(f, id) != NULL) {
      /* loaded by an earlier pass, or by a device's request since this
       * page was read (and maybe changed since): the copy in memory stays */
    } else if (pg->docs[i] == NULL) {
      log_error("fleet: device %s: unreadable record, skipped", id);
    } else {
      load_device(f, id, pg->docs[i]);
    }
    json_decref(pg->docs[i]);
    pg->docs[i] = NULL;
  }
  pthread_mutex_unlock(&f->mu);
  if (n > 0)
    snprintf(f->load_after, sizeof(f->load_after), "%s", pg->last);
  if (n < LOAD_PAGE) {
    if (f->load_pass == N_HOT)
      return 0;
    f->load_pass++;
    f->load_after[0] = '\0';
  }
  return 1;
}

/* Everything is in: jobs a stop (or a crash) interrupted go on, and the
 * fleet opens. f->mu held. */
static void load_done(struct fleet *f)
{
  for (struct rollout *r = f->rollouts; r; r = r->next)
    if (r->state == R_STARTING)
      r->job = JOB_START;
    else if (r->state == R_CANCELLED && r->count[D_PENDING] + r->count[D_OFFERED] +
                                                r->count[D_DOWNLOADING] + r->count[D_DOWNLOADED] +
                                                r->count[D_UPDATING] >
                                            0)
      r->job = JOB_SWEEP;
  /* joiners of a start that ended without numbering them (several
   * nodes); pos_end is whole only now */
  for (struct rollout *r = f->rollouts; r; r = r->next)
    rollout_place_joiners(f, r);
  f->loading = 0;
  log_info("fleet: %d devices loaded in %lld ms", f->n_devices,
           (long long)(mono_ms() - f->load_t0));
  if (f->job_started)
    fleet_jobs_kick(f);
}

/* Pages until the passes before `until_pass` are done (N_HOT + 1: until
 * the end), and at least max_pages. 0 at the end, 1 when stopped before
 * it, -1 on an error. */
static int load_pages(struct fleet *f, int until_pass, int max_pages)
{
  struct load_page pg = {0};
  int rc = 1;

  pg.f = f;
  pg.ids = calloc(LOAD_PAGE, sizeof(*pg.ids));
  pg.texts = calloc(LOAD_PAGE, sizeof(*pg.texts));
  pg.docs = calloc(LOAD_PAGE, sizeof(*pg.docs));
  if (pg.ids == NULL || pg.texts == NULL || pg.docs == NULL)
    rc = -1;
  for (int k = 0; rc == 1 && (f->load_pass < until_pass || k < max_pages); k += pg.n > 0) {
    pthread_mutex_lock(&f->mu);
    if (f->load_stop) {
      pthread_mutex_unlock(&f->mu);
      break;
    }
    pthread_mutex_unlock(&f->mu);
    rc = load_step(f, &pg);
  }
  free(pg.ids);
  free(pg.texts);
  free(pg.docs);
  return rc;
}

static void *load_main(void *arg)
{
  struct fleet *f = arg;
  int rc = load_pages(f, N_HOT + 1, 0);

  pthread_mutex_lock(&f->mu);
  if (rc == 0)
    load_done(f);
  else if (rc < 0) {
    f->load_failed = 1;
    log_error("fleet: cannot load the devices; device requests and admin calls are refused");
  }
  pthread_mutex_unlock(&f->mu);
  return NULL;
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
  int rc;

  if (f == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  pthread_mutex_init(&f->mu, NULL);
  f->store = s;
  f->limits = (struct fleet_limits){DEF_EVENTS_PER_DEVICE, DEF_REPORT_LINES, DEF_RECHECK_MS,
                                    DEF_AUTH_FREE, PSK_GENERATED};
  if (store_rollouts_load(s, load_rollout, f) < 0) {
    snprintf(err, errlen, "cannot load the rollouts");
    fleet_close(f);
    return -1;
  }
  /* the devices in flight now; the rest on a thread while the fronts
   * already answer (a device's request loads that device at once) */
  f->loading = 1;
  f->load_t0 = mono_ms();
  rc = load_pages(f, N_INFLIGHT, LOAD_SYNC_PAGES);
  if (rc < 0) {
    snprintf(err, errlen, "cannot load the devices");
    fleet_close(f);
    return -1;
  }
  store_set_flush_hook(s, flush_hook, flush_done, f);
  fleet_shared_open(f);
  store_set_damage_hook(s, package_damaged, f);
  if (fleet_jobs_start(f) < 0) {
    snprintf(err, errlen, "cannot start the fleet's job thread");
    fleet_close(f);
    return -1;
  }
  if (rc == 0) {
    pthread_mutex_lock(&f->mu);
    load_done(f);
    pthread_mutex_unlock(&f->mu);
  } else if (pthread_create(&f->load_thread, NULL, load_main, f) != 0) {
    snprintf(err, errlen, "cannot start the fleet's loading thread");
    fleet_close(f);
    return -1;
  } else {
    f->load_started = 1;
    log_info("fleet: %d devices loaded so far; the rest loads in the background", f->n_devices);
  }
  *out = f;
  return 0;
}

void fleet_close(struct fleet *f)
{
  if (f == NULL)
    return;
  if (f->load_started) {
    pthread_mutex_lock(&f->mu);
    f->load_stop = 1;
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->load_thread, NULL);
    f->load_started = 0;
  }
  fleet_jobs_stop(f);
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
  free(f->events);
  free(f->ev_text);
  fleet_intern_free(f);
  pthread_mutex_destroy(&f->mu);
  free(f);
}
