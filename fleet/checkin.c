/* checkin.c: a device's check-in: who it is, what version it runs, and
 * whether it is its turn for the next hop of its upgrade path. */
#include "autoconfig.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../store/store.h"
#include "../util/util.h"
#include "fleet_int.h"
#include "paths.h"

#define MAX_HOPS 8
#define RETRY_CONCURRENCY 10 /* about the seconds a device waits for a free slot */

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
int rollout_window_wait(const struct rollout *r, int64_t now)
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

static void answer_offer(struct fleet *f, const struct device *d, enum proto t,
                         struct checkin_answer *out)
{
  out->verdict = VERDICT_OFFER;
  out->transport = t;
  offer_url(f, d, t, out->url, sizeof(out->url));
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

/* The transport of an offer: the check-in's wish, else the device's, else
 * its rollout's, else the protocol the check-in came in on. -1 with the
 * answer filled when that is unknown or has no front here. */
static int choose_transport(struct fleet *f, const struct device *d,
                            const struct device_identity *who, const char *asked,
                            struct checkin_answer *out)
{
  enum proto t = who->proto;

  if (d->rollout != NULL && d->rollout->transport >= 0)
    t = (enum proto)d->rollout->transport;
  if (d->transport >= 0)
    t = (enum proto)d->transport;
  if (asked != NULL && asked[0] != '\0' && proto_parse(asked, &t) < 0) {
    out->verdict = VERDICT_BAD_REQUEST;
    snprintf(out->message, sizeof(out->message),
             "transport must be one of http, https, coap, coaps, ftp, ftps");
    return -1;
  }
  if (!transport_served(f, t)) {
    out->verdict = VERDICT_NO_TRANSPORT;
    snprintf(out->message, sizeof(out->message), "transport %s: no [%s] front runs on this server",
             proto_name(t), proto_name(t));
    return -1;
  }
  return (int)t;
}

/* The device moved to `version`. Confirms a hop or notes the surprise. */
void version_changed(struct fleet *f, struct device *d, const char *version)
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

/* The check-in's verdict, rendered; 1 when it changed state that must be
 * committed before the device is told. */
static int checkin(struct fleet *f, const struct device_identity *who, const char *version,
                   const char *transport, struct checkin_answer *out)
{
  struct device *d;
  struct rollout *r;
  int64_t now = now_ms();
  int changed = 0, t;
  /* while the fleet loads after a start, this device comes in first */
  int ready = fleet_fault_in(f, who->device_id) == 0;

  memset(out, 0, sizeof(*out));
  device_lock(f);
  f->checkins++;
  if (f->loading && !ready) {
    /* the database cannot say now */
    out->verdict = VERDICT_LATER;
    out->retry_after = LOADING_RETRY_S;
    snprintf(out->message, sizeof(out->message), "the server is starting");
    goto out;
  }
  d = authenticate(f, who, &out->retry_after);
  if (d == NULL) {
    out->verdict = out->retry_after > 0 ? VERDICT_LATER : VERDICT_FORBIDDEN;
    snprintf(out->message, sizeof(out->message), "unknown device or wrong credential");
    goto out;
  }
  if (version != NULL && !text_printable(version, PKG_FIELD_MAX, 0)) {
    out->verdict = VERDICT_BAD_REQUEST;
    snprintf(out->message, sizeof(out->message),
             "version must be 1 to %d printable characters without spaces", PKG_FIELD_MAX);
    goto out;
  }
  /* a bad transport changes nothing, not even the version */
  if ((t = choose_transport(f, d, who, transport, out)) < 0)
    goto out;
  seen(d, who);
  device_mark(f, d);
  if (version != NULL && version[0] != '\0' &&
      (d->version == NULL || strcmp(d->version, version))) {
    version_changed(f, d, version);
    changed = 1;
    /* a confirmed hop may end the wave or the rollout: at once, not at
     * the next tick, so that what the device is told and what the
     * operator reads agree */
    if (d->rollout != NULL)
      rollout_evaluate(f, d->rollout);
  }
  r = d->rollout;
  out->verdict = VERDICT_NOTHING;
  if (r == NULL || r->state != R_RUNNING)
    goto out;

  switch (d->state) {
  case D_OFFERED:
    if (d->retry_at > now) {
      out->verdict = VERDICT_LATER;
      out->retry_after = (int)((d->retry_at - now + 999) / 1000);
      goto out;
    }
    /* an offer stands until it ends: the same URL again */
    answer_offer(f, d, (enum proto)t, out);
    goto out;
  case D_DOWNLOADING: answer_offer(f, d, (enum proto)t, out); goto out;
  case D_FAILED:
    if (d->retry_at > now && d->attempts < r->max_attempts) {
      out->verdict = VERDICT_LATER;
      out->retry_after = (int)((d->retry_at - now + 999) / 1000);
    }
    goto out;
  case D_PENDING: break;
  default: goto out; /* downloaded, updating, succeeded, no_path, idle */
  }

  /* pending: is it this device's turn? */
  if (d->position >= rollout_wave_cutoff(r, r->wave)) {
    if (f->loading) {
      /* the cutoff counts the members loaded so far only: ask again soon */
      out->verdict = VERDICT_LATER;
      out->retry_after = LOADING_RETRY_S;
    }
    goto out;
  }
  if (r->start_at > now) {
    int64_t wait = (r->start_at - now + 999) / 1000;
    out->verdict = VERDICT_LATER;
    out->retry_after = (int)(wait > 86400 ? 86400 : wait); /* ask again within a day */
    goto out;
  }
  if ((out->retry_after = rollout_window_wait(r, now)) > 0) {
    out->verdict = VERDICT_LATER;
    goto out;
  }
  if (r->max_concurrent > 0 && rollout_active(r) >= r->max_concurrent) {
    unsigned char j = 0;
    RAND_bytes(&j, 1);
    out->verdict = VERDICT_LATER;
    /* spread the retries, so that freed slots do not wait, nor all at once */
    out->retry_after = RETRY_CONCURRENCY / 2 + j % RETRY_CONCURRENCY;
    goto out;
  }
  changed = 1;
  if (offer_next_hop(f, d) == 0)
    answer_offer(f, d, (enum proto)t, out);
  else if (d->state == D_PENDING && d->version != NULL && strcmp(d->version, r->target) == 0)
    device_set_state(f, d, D_SUCCEEDED, "on the target version");
  rollout_evaluate(f, r);
out:
  pthread_mutex_unlock(&f->mu);
  count_request(who->proto);
  checkin_render(out);
  return changed;
}

struct checkin_call {
  struct fleet *f;
  const struct device_identity *who;
  const char *version, *transport;
  struct checkin_answer *out;
};

static void checkin_decision(void *arg)
{
  struct checkin_call *c = arg;
  checkin(c->f, c->who, c->version, c->transport, c->out);
}

/* Several nodes: a check-in with nothing to decide, answered from the
 * node's copy (at most one flush interval old) without waiting for the
 * database: a device whose credential the copy accepts, whose version is
 * unchanged and whose rollout (if any) runs nothing for it now. Refusals
 * are decided (a device created on another node a moment ago is not
 * refused). Its last_seen is written at the next flush, as on one node.
 * 1 when answered. */
static int checkin_settled(struct fleet *f, const struct device_identity *who, const char *version,
                           const char *transport, struct checkin_answer *out)
{
  struct device *d;
  struct rollout *r;
  int done = 0;

  memset(out, 0, sizeof(*out));
  device_lock(f);
  if (f->loading)
    goto out;
  if ((d = authenticate_quiet(f, who)) == NULL)
    goto out;
  if (version != NULL && version[0] != '\0' &&
      (d->version == NULL || strcmp(d->version, version) != 0))
    goto out; /* a new version: decided in the database's turn */
  r = d->rollout;
  if (r != NULL && r->state == R_RUNNING && d->state != D_IDLE && d->state != D_SUCCEEDED &&
      d->state != D_NO_PATH && d->state != D_DOWNLOADED && d->state != D_UPDATING)
    goto out; /* pending, offered, downloading, failed: decided */
  if (choose_transport(f, d, who, transport, out) >= 0) {
    seen(d, who);
    device_mark(f, d);
    out->verdict = VERDICT_NOTHING;
  }
  f->checkins++;
  done = 1;
out:
  pthread_mutex_unlock(&f->mu);
  if (done) {
    count_request(who->proto);
    checkin_render(out);
  }
  return done;
}

/* Several nodes (shared.c): the check-in decided in a database transaction
 * and committed before the answer; when that cannot be, the device is
 * asked to come back, told nothing else. */
static void checkin_shared(struct fleet *f, const struct device_identity *who, const char *version,
                           const char *transport, struct checkin_answer *out)
{
  struct checkin_call c = {f, who, version, transport, out};

  if (checkin_settled(f, who, version, transport, out))
    return;
  if (fleet_decide(f, checkin_decision, &c) < 0) {
    memset(out, 0, sizeof(*out));
    out->verdict = VERDICT_LATER;
    out->retry_after = DELIVERY_STORE_RETRY;
    snprintf(out->message, sizeof(out->message), "the database is unreachable; try again later");
    checkin_render(out);
  }
}

void delivery_checkin(struct fleet *f, const struct device_identity *who, const char *version,
                      const char *transport, struct checkin_answer *out)
{
  if (f->shared) {
    checkin_shared(f, who, version, transport, out);
    return;
  }
  /* a state the device is told about is durable before it is told */
  if (checkin(f, who, version, transport, out))
    store_sync(f->store);
}

void delivery_checkin_nowait(struct fleet *f, const struct device_identity *who,
                             const char *version, const char *transport, struct checkin_answer *out)
{
  if (f->shared) {
    /* several nodes: the decision needs the database's turn; this thread
     * waits for it (a front's event loop stalls meanwhile) */
    checkin_shared(f, who, version, transport, out);
    out->must_commit = 0;
    return;
  }
  out->must_commit = checkin(f, who, version, transport, out);
}
