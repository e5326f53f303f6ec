/* overview.c: the aggregates the operator's console asks for: the fleet at
 * a glance (devices by state, by model and version; transfers by protocol;
 * rollouts running; alarms), one rollout's waves, and the upgrade path a
 * device of a model would take. Each answer is bounded whatever the size of
 * the fleet (a million devices: one pass, no list of them). */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../store/store.h"
#include "../util/util.h"
#include "paths.h"
#include "urc.h"
#include "fleet_int.h"

#define OV_MODELS 64   /* models listed; the rest are counted as "other" */
#define OV_VERSIONS 32 /* versions listed per model; likewise */
#define FAILED_SHOWN 20
#define MAX_HOPS 8

/* Counting by model and version without a JSON lookup per device: a
 * million devices take one pass of pointer and string compares over a few
 * models and versions (bounded: the rest is counted as "other"). */
struct vcount {
  const char *v;
  int n;
};
struct mcount {
  const char *model;
  int n, nv;
  struct vcount v[OV_VERSIONS + 1];
};

/* The names are copies: the pass lets the lock go between pages, and a
 * device may change its version or go meanwhile. NULL: out of memory. */
static struct vcount *vslot(struct mcount *m, const char *v)
{
  char *copy;

  for (int i = 0; i < m->nv; i++)
    if (strcmp(m->v[i].v, v) == 0)
      return &m->v[i];
  if (m->nv == OV_VERSIONS) {
    v = "other";
    for (int i = 0; i < m->nv; i++)
      if (strcmp(m->v[i].v, v) == 0)
        return &m->v[i];
  }
  if ((copy = strdup(v)) == NULL)
    return NULL;
  m->v[m->nv] = (struct vcount){copy, 0};
  return &m->v[m->nv++];
}

static struct mcount *mslot(struct mcount *ms, int *n, const char *model)
{
  char *copy;

  for (int i = 0; i < *n; i++)
    if (strcmp(ms[i].model, model) == 0)
      return &ms[i];
  if (*n == OV_MODELS) {
    model = "other";
    for (int i = 0; i < *n; i++)
      if (strcmp(ms[i].model, model) == 0)
        return &ms[i];
  }
  if ((copy = strdup(model)) == NULL)
    return NULL;
  ms[*n].model = copy;
  ms[*n].n = ms[*n].nv = 0;
  return &ms[(*n)++];
}

static void mcounts_free(struct mcount *ms, int n)
{
  for (int i = 0; ms != NULL && i < n; i++) {
    free((char *)ms[i].model);
    for (int k = 0; k < ms[i].nv; k++)
      free((char *)ms[i].v[k].v);
  }
  free(ms);
}

/* The devices, rollouts and alarms; NULL when out of memory. */
static json_t *overview_compute(struct fleet *f)
{
  json_t *states = json_object(), *models = json_object(), *running = json_array();
  json_t *alarms = json_array(), *rollouts = json_object(), *out;
  int st[D_NSTATES] = {0}, n = 0, nm = 0, rs[R_CANCELLED + 1] = {0};
  struct mcount *ms = calloc(OV_MODELS + 1, sizeof(*ms)), *last = NULL;
  char at[40];

  if (ms == NULL) {
    json_decref(states);
    json_decref(models);
    json_decref(running);
    json_decref(alarms);
    json_decref(rollouts);
    return NULL;
  }
  /* SECURITY (device requests wait on nothing long): the fleet a few
   * hundred buckets per lock hold, as the device listing does; a device
   * changed meanwhile is counted as it was when its bucket was read */
  for (int b0 = 0; b0 < DEV_BUCKETS; b0 += DEV_SCAN_BUCKETS) {
    pthread_mutex_lock(&f->mu);
    for (int b = b0; b < b0 + DEV_SCAN_BUCKETS && b < DEV_BUCKETS; b++)
      for (struct device *d = f->dev[b]; d; d = d->next) {
        struct mcount *m =
            last != NULL && strcmp(last->model, d->model) == 0 ? last : mslot(ms, &nm, d->model);
        struct vcount *v = m != NULL ? vslot(m, d->version ? d->version : "unknown") : NULL;
        st[d->state]++;
        n++;
        if (m != NULL)
          m->n++;
        if (v != NULL)
          v->n++;
        last = m;
      }
    page_unlock(f);
  }
  for (int i = 0; i < nm; i++) {
    json_t *v = json_object();
    for (int k = 0; k < ms[i].nv; k++)
      json_object_set_new(v, ms[i].v[k].v, json_integer(ms[i].v[k].n));
    json_object_set_new(models, ms[i].model,
                        json_pack("{s:i,s:o}", "devices", ms[i].n, "versions", v));
  }
  pthread_mutex_lock(&f->mu);
  for (struct rollout *r = f->rollouts; r; r = r->next) {
    rs[r->state]++;
    if (r->state == R_RUNNING || r->state == R_PAUSED) {
      int done = r->count[D_SUCCEEDED];
      json_array_append_new(
          running, json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:i,s:i}", "id", r->id, "name", r->name,
                             "state", rstate_name(r->state), "model", r->model, "wave", r->wave + 1,
                             "waves", r->n_waves, "devices", r->n_members, "succeeded", done));
    }
    if (r->state == R_PAUSED && r->reason[0] != '\0')
      json_array_append_new(alarms, json_pack("{s:s,s:s,s:s}", "rollout", r->id, "name", r->name,
                                              "reason", r->reason));
  }
  pthread_mutex_unlock(&f->mu);
  mcounts_free(ms, nm);
  for (int s = 0; s < D_NSTATES; s++)
    json_object_set_new(states, dstate_name((enum dstate)s), json_integer(st[s]));
  for (int s = 0; s <= R_CANCELLED; s++)
    if (rs[s] > 0)
      json_object_set_new(rollouts, rstate_name((enum rstate)s), json_integer(rs[s]));
  time_iso_ms(now_ms(), at, sizeof(at));
  out = json_pack("{s:i,s:o,s:o,s:o,s:o,s:o,s:s}", "devices", n, "by_state", states, "models",
                  models, "rollouts", rollouts, "running", running, "alarms", alarms, "as_of", at);
  return out;
}

static json_t *transfers_json(void)
{
  json_t *t = json_object();

  for (int p = 0; p < PROTO_COUNT; p++) {
    struct proto_figures fig;
    delivery_figures((enum proto)p, &fig);
    json_object_set_new(t, proto_name((enum proto)p),
                        json_pack("{s:I,s:I,s:I,s:I}", "in_flight", (json_int_t)fig.in_flight,
                                  "bytes_sent", (json_int_t)fig.bytes, "requests",
                                  (json_int_t)fig.requests, "downloads",
                                  (json_int_t)fig.downloads));
  }
  return t;
}

/* The pass over the devices holds the fleet's lock (about 1.5 us a device
 * here: 0.3 s at 200,000), so its result is kept for OV_CACHE_MS and shared
 * by every console; only the transfer counters are read fresh each time. */
#define OV_CACHE_MS 2000
static pthread_mutex_t ov_mu = PTHREAD_MUTEX_INITIALIZER;
static json_t *ov_cached;
static const struct fleet *ov_fleet;
static int64_t ov_at;

int fleet_overview(struct fleet *f, json_t **out)
{
  /* one computation at a time: the others wait for it and share it */
  pthread_mutex_lock(&ov_mu);
  if (ov_cached == NULL || ov_fleet != f || mono_ms() - ov_at >= OV_CACHE_MS) {
    json_t *fresh = overview_compute(f);
    if (fresh != NULL) {
      json_decref(ov_cached);
      ov_cached = fresh;
      ov_fleet = f;
      ov_at = mono_ms();
    }
  }
  *out = ov_cached != NULL && ov_fleet == f ? json_deep_copy(ov_cached) : NULL;
  pthread_mutex_unlock(&ov_mu);
  if (*out == NULL) {
    *out = fleet_error("internal", "out of memory");
    return 500;
  }
  json_object_set_new(*out, "transfers", transfers_json());
  return 200;
}

int fleet_rollout_waves(struct fleet *f, const char *id, json_t **out)
{
  struct rollout *r;
  json_t *waves, *codes, *failed, *v;
  const char *key;

  pthread_mutex_lock(&f->mu);
  r = rollout_find(f, id);
  if (r == NULL) {
    pthread_mutex_unlock(&f->mu);
    *out = fleet_error("not_found", "no such rollout");
    return 404;
  }
  waves = json_array();
  failed = json_array();
  /* one pass over the members' state and position arrays (5 bytes each);
   * a member's record is read only for bytes in flight and failures */
  int cut[MAX_WAVES], c[MAX_WAVES][D_NSTATES];
  uint64_t bytes[MAX_WAVES], size[MAX_WAVES];
  memset(c, 0, sizeof(c));
  memset(bytes, 0, sizeof(bytes));
  memset(size, 0, sizeof(size));
  for (int w = 0; w < r->n_waves; w++)
    cut[w] = rollout_wave_cutoff(r, w);
  for (int i = 0; i < r->n_members; i++) {
    int w = 0, st = r->mstate[i];
    while (w < r->n_waves && r->mpos[i] >= cut[w])
      w++;
    if (w == r->n_waves)
      continue;
    c[w][st]++;
    if (st == D_DOWNLOADING || st == D_OFFERED) {
      bytes[w] += r->members[i]->contiguous;
      size[w] += r->members[i]->size;
    }
    if ((st == D_FAILED || st == D_NO_PATH) && json_array_size(failed) < FAILED_SHOWN) {
      const struct device *d = r->members[i];
      json_array_append_new(failed,
                            json_pack("{s:s,s:s,s:s?,s:i}", "id", d->id, "state",
                                      dstate_name(d->state), "reason", d->reason, "wave", w + 1));
    }
  }
  for (int w = 0; w < r->n_waves; w++) {
    /* its members: its positions but those of members deleted since */
    int in = 0;
    json_t *counts = json_object();
    for (int s = D_PENDING; s < D_NSTATES; s++)
      json_object_set_new(counts, dstate_name((enum dstate)s), json_integer(c[w][s]));
    for (int s = 0; s < D_NSTATES; s++)
      in += c[w][s];
    json_array_append_new(waves,
                          json_pack("{s:i,s:i,s:i,s:b,s:o,s:I,s:I}", "wave", w + 1, "percent",
                                    r->waves[w], "devices", in, "current", w == r->wave, "counts",
                                    counts, "bytes_downloading", (json_int_t)bytes[w],
                                    "bytes_to_download", (json_int_t)size[w]));
  }
  codes = json_array();
  json_object_foreach(r->codes, key, v)
  {
    long code = strtol(key, NULL, 10);
    json_array_append_new(codes, json_pack("{s:i,s:I,s:s,s:s}", "code", (int)code, "count",
                                           (json_int_t)json_integer_value(v), "meaning",
                                           code_meaning(code), "class",
                                           code_class_name(code_classify(code))));
  }
  *out = json_pack("{s:s,s:s,s:i,s:o,s:o,s:o}", "rollout", r->id, "state", rstate_name(r->state),
                   "wave", r->wave + 1, "waves", waves, "codes", codes, "failed", failed);
  pthread_mutex_unlock(&f->mu);
  return 200;
}

struct edges {
  struct path_edge e[256];
  char *ids[256];
  int n;
};

static int collect(struct package *p, void *arg)
{
  struct edges *l = arg;

  if (p->status != PKG_OK)
    return 0;
  if (l->n == (int)(sizeof(l->e) / sizeof(l->e[0])))
    return 1;
  l->e[l->n] = (struct path_edge){strdup(p->from), strdup(p->to), p->size};
  l->ids[l->n] = strdup(p->id);
  l->n++;
  return 0;
}

int fleet_upgrade_path(struct fleet *f, const char *model, const char *from, const char *to,
                       json_t **out)
{
  struct edges *l;
  int hops[MAX_HOPS], n;
  uint64_t total = 0;
  json_t *arr;

  if (model == NULL || from == NULL || to == NULL) {
    *out = fleet_error("bad_request", "model, from and to are required query parameters");
    return 400;
  }
  l = calloc(1, sizeof(*l));
  if (l == NULL) {
    *out = fleet_error("internal", "out of memory");
    return 500;
  }
  store_package_foreach(f->store, model, NULL, NULL, collect, l);
  n = path_find(l->e, l->n, from, to, hops, MAX_HOPS, &total);
  arr = json_array();
  for (int i = 0; i < n; i++)
    json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:I}", "package", l->ids[hops[i]], "from",
                                         l->e[hops[i]].from, "to", l->e[hops[i]].to, "size",
                                         (json_int_t)l->e[hops[i]].size));
  *out = json_pack("{s:s,s:s,s:s,s:o,s:I}", "model", model, "from", from, "to", to, "hops",
                   n < 0 ? json_null() : arr, "bytes", (json_int_t)(n < 0 ? 0 : total));
  if (n < 0)
    json_decref(arr);
  for (int i = 0; i < l->n; i++) {
    free((char *)l->e[i].from);
    free((char *)l->e[i].to);
    free(l->ids[i]);
  }
  free(l);
  return 200;
}
