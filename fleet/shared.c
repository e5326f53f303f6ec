/* shared.c: the fleet on one of several nodes sharing a PostgreSQL
 * database ([store] nodes = shared; store/shared.c and
 * store/db_pg_shared.c hold the database side).
 *
 * Each node keeps the fleet in memory, as one node does, and the database
 * stays the truth: every writer transaction of every node takes the
 * nodes' transaction lock, applies what the others committed since this
 * node's last transaction (apply() below), and only then decides and
 * writes. So:
 * - whatever a device is told (check-in, report) is decided inside such a
 *   transaction (fleet_decide) from the records as the database has them,
 *   and committed before the answer;
 * - limits hold across the nodes: max_concurrent counts the members in
 *   flight as the last commit left them, whichever node admitted them;
 * - waves, thresholds, timeouts and pauses (fleet_tick, admin calls) are
 *   decided the same way, one transaction at a time: a node that ticks
 *   after another sees its result first and has nothing left to do, and a
 *   node killed mid-way held nothing but its uncommitted transaction;
 * - a change made outside a transaction (download progress, the first
 *   bytes of an offer) is written at the node's next flush unless another
 *   node changed that record meanwhile, in which case the other's wins.
 * Lock order as on one node: the database (writer) first, then f->mu. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../store/store.h"
#include "../util/log.h"
#include "../util/util.h"
#include "fleet_int.h"

#define SHARED_TICK_MS 1000 /* waves, thresholds and timeouts: a transaction a second a node */
#define SHARED_MISS_MS 100  /* least time between two reads forced by an unknown token */
/* a queued tick whose transaction never opened (the database went away)
 * is dropped; another is queued after this long */
#define SHARED_QUEUED_MS 10000
/* a rollout job's claim lasts this long unless renewed (at every page):
 * the time another node waits before it takes over from a node gone */
#define JOB_LEASE_S 10

/* set on the writer's thread while it runs decisions: a nested call (an
 * admin call that ticks, a start that syncs) runs in place */
static _Thread_local int in_decision;

/* ---- what the other nodes wrote ----------------------------------------- */

static void apply_rollout(struct fleet *f, const char *id, json_t *doc)
{
  struct rollout *nr = rollout_from_doc(id, doc), *r, old;

  if (nr == NULL) {
    log_error("fleet: rollout %s from another node: unreadable record, skipped", id);
    return;
  }
  if ((r = rollout_find(f, id)) == NULL) {
    nr->next = f->rollouts;
    f->rollouts = nr;
    return;
  }
  /* the record's fields from the database; the members (linked by the
   * devices' own records) and the node's job state stay */
  old = *r;
  *r = *nr;
  r->members = old.members;
  r->mstate = old.mstate;
  r->mpos = old.mpos;
  r->n_members = old.n_members;
  r->cap_members = old.cap_members;
  r->wcut = old.wcut;
  memcpy(r->wcount, old.wcount, sizeof(r->wcount));
  /* the record's pos_end: where the node that ran the start ended its
   * numbering, and joiners on other nodes since; this node's own
   * joiners not yet in it count too (but not a starting rollout's
   * positions, which its start numbers 0.. again) */
  if (!(old.state == R_STARTING && r->state != R_STARTING) && old.pos_end > r->pos_end)
    r->pos_end = old.pos_end;
  memcpy(r->count, old.count, sizeof(r->count));
  r->job = old.job;
  r->job_busy = old.job_busy;
  r->job_done = old.job_done;
  r->job_of = old.job_of;
  r->dirty = 0;
  r->next = old.next;
  /* this node's joiners of the start that the node that ran it did not
   * know of when it ended: last, as joiners of the running rollout */
  if (old.state == R_STARTING && r->state != R_STARTING && !f->loading)
    rollout_place_joiners(f, r);
  /* nr now carries the old fields away */
  *nr = old;
  nr->members = NULL;
  nr->mstate = NULL;
  nr->mpos = NULL;
  rollout_free(nr);
}

static void apply_device(struct fleet *f, const char *id, json_t *doc)
{
  struct device *d = device_find(f, id);

  if (d == NULL) {
    if ((d = device_new(f, id)) == NULL)
      return;
  } else {
    if (d->rollout != NULL)
      rollout_remove_member(d->rollout, d);
    token_unlink(f, d);
    json_decref(d->tags);
    d->tags = NULL;
  }
  device_from_doc(f, d, doc);
  if (d->rollout_id[0] != '\0') {
    struct rollout *r = rollout_find(f, d->rollout_id);
    if (r != NULL) {
      rollout_add_member(r, d, d->position);
      /* another node's joiner of a start that ended without it */
      if (!f->loading)
        rollout_place_joiner(f, r, d);
    }
  }
}

static void apply(void *arg, char kind, const char *id, const char *text)
{
  struct fleet *f = arg;
  json_t *doc = NULL;

  if (kind != 'x' && (doc = json_loads(text, 0, NULL)) == NULL) {
    log_error("fleet: %s %s from another node: unreadable record, skipped",
              kind == 'r' ? "rollout" : "device", id);
    return;
  }
  pthread_mutex_lock(&f->mu);
  if (kind == 'r') {
    apply_rollout(f, id, doc);
  } else if (kind == 'd') {
    apply_device(f, id, doc);
  } else if (kind == 'x') {
    struct device *d = device_find(f, id);
    if (d != NULL) {
      if (d->rollout != NULL)
        rollout_remove_member(d->rollout, d);
      device_unlink(f, d);
      device_bury(f, d);
    }
  }
  pthread_mutex_unlock(&f->mu);
  json_decref(doc);
}

void fleet_shared_open(struct fleet *f)
{
  if (!store_shared(f->store))
    return;
  char host[64] = "", rnd[9];

  f->shared = 1;
  gethostname(host, sizeof(host) - 1);
  random_base32(rnd, 8);
  snprintf(f->node_id, sizeof(f->node_id), "%.63s/%s", host[0] ? host : "node", rnd);
  store_set_apply_hook(f->store, apply, f);
  log_info("fleet: one of several nodes on this database: decisions are taken in the database's "
           "transactions, one node at a time");
}

/* ---- decisions -------------------------------------------------------------- */

struct decide_ctx {
  void (*fn)(void *arg);
  void *arg;
};

static void run_decision(void *arg)
{
  struct decide_ctx *c = arg;

  in_decision = 1;
  c->fn(c->arg);
  in_decision = 0;
}

int fleet_decide(struct fleet *f, void (*fn)(void *arg), void *arg)
{
  struct decide_ctx c = {fn, arg};

  if (!f->shared || in_decision) {
    fn(arg);
    return 0;
  }
  return store_decide(f->store, run_decision, &c);
}

int fleet_in_decision(const struct fleet *f) { return !f->shared || in_decision; }

/* ---- a rollout's job on one node ---------------------------------------- */

/* A start's enrolment or a cancel's sweep left unfinished, that no job of
 * this node runs. f->mu held. */
static enum rjob orphan_job(const struct rollout *r)
{
  if (r->job != JOB_NONE || r->job_busy)
    return JOB_NONE;
  if (r->state == R_STARTING)
    return JOB_START;
  if (r->state == R_CANCELLED && r->count[D_PENDING] + r->count[D_OFFERED] +
                                         r->count[D_DOWNLOADING] + r->count[D_DOWNLOADED] +
                                         r->count[D_UPDATING] >
                                     0)
    return JOB_SWEEP;
  return JOB_NONE;
}

struct hold_ctx {
  struct fleet *f;
  struct rollout *r;
  enum rjob job;
  int held;
};

/* The claim's name: a start and the sweep of its cancel are claimed apart,
 * so that a cancel decided on any node sweeps at once. */
static const char *job_name(char *buf, size_t len, const struct rollout *r, enum rjob job)
{
  snprintf(buf, len, "%s/%s", r->id, job == JOB_START ? "start" : "sweep");
  return buf;
}

static void hold_fn(void *arg)
{
  struct hold_ctx *c = arg;
  char name[64];

  c->held = store_job_claim(c->f->store, job_name(name, sizeof(name), c->r, c->job), c->f->node_id,
                            JOB_LEASE_S) == 1;
}

int fleet_shared_job_hold(struct fleet *f, struct rollout *r)
{
  struct hold_ctx c = {f, r, JOB_NONE, 0};

  if (!f->shared)
    return 1;
  pthread_mutex_lock(&f->mu);
  c.job = r->job;
  pthread_mutex_unlock(&f->mu);
  if (c.job == JOB_NONE)
    return 0; /* ended meanwhile (a cancel ends a start) */
  /* in the database's turn: a claim another node holds is current unless
   * it lapsed; what this node then writes of the page is committed by
   * the next transactions, the claim renewed at each page */
  if (fleet_decide(f, hold_fn, &c) < 0)
    c.held = 0;
  if (!c.held) {
    pthread_mutex_lock(&f->mu);
    if (r->job != JOB_NONE)
      log_info("rollout %s: its %s is carried on by another node (or the database is away)", r->id,
               r->job == JOB_START ? "start" : "cancel's sweep");
    r->job = JOB_NONE;
    pthread_mutex_unlock(&f->mu);
  }
  return c.held;
}

/* In the tick's transaction: a job left by a node gone (its claim lapsed),
 * or that nobody took up after a restart, is claimed here and run by this
 * node's job thread. */
static void claim_orphans(struct fleet *f)
{
  struct rollout *head;

  pthread_mutex_lock(&f->mu);
  /* while loading, the start would see part of the fleet; load_done
   * hands the jobs out (rollout_job_run claims them) */
  head = f->loading ? NULL : f->rollouts; /* added only at the head, never freed */
  pthread_mutex_unlock(&f->mu);
  for (struct rollout *r = head; r != NULL; r = r->next) {
    enum rjob job;
    char name[64];
    pthread_mutex_lock(&f->mu);
    job = orphan_job(r);
    pthread_mutex_unlock(&f->mu);
    if (job == JOB_NONE || store_job_claim(f->store, job_name(name, sizeof(name), r, job),
                                           f->node_id, JOB_LEASE_S) != 1)
      continue;
    pthread_mutex_lock(&f->mu);
    if (orphan_job(r) == job) {
      r->job = job;
      log_info("rollout %s: this node carries on its %s", r->id,
               job == JOB_START ? "start" : "cancel's sweep");
      fleet_jobs_kick(f);
    }
    pthread_mutex_unlock(&f->mu);
  }
}

/* The tick's decision, on the writer's thread; the main loop does not wait
 * for it. */
static void tick_fn(void *arg)
{
  struct fleet *f = arg;

  pthread_mutex_lock(&f->mu);
  f->shared_tick_queued = 0;
  pthread_mutex_unlock(&f->mu);
  in_decision = 1;
  fleet_tick(f);
  claim_orphans(f);
  in_decision = 0;
}

int fleet_shared_tick(struct fleet *f)
{
  int64_t now = mono_ms();
  char why[200];
  int running = 0;

  if (!f->shared || in_decision)
    return 0;
  /* the main loop never waits for the database: the tick is queued for
   * the writer's next transaction; while the database is down (the writer
   * may sit in a connect for seconds) it is not even queued */
  if (!store_reachable(f->store, why, sizeof(why)))
    return 1;
  /* one transaction a second a node; a tick that finds nothing to do
   * writes nothing */
  pthread_mutex_lock(&f->mu);
  if (now - f->shared_ticked < SHARED_TICK_MS ||
      (f->shared_tick_queued != 0 && now - f->shared_tick_queued < SHARED_QUEUED_MS)) {
    pthread_mutex_unlock(&f->mu);
    return 1;
  }
  f->shared_ticked = now;
  /* nothing running in the copy (at most a flush interval old): no turn
   * of the lock; a rollout started elsewhere is seen at the next flush */
  for (struct rollout *r = f->rollouts; r != NULL && !running; r = r->next)
    running = r->state == R_RUNNING || orphan_job(r) != JOB_NONE;
  if (running)
    f->shared_tick_queued = now;
  pthread_mutex_unlock(&f->mu);
  if (running && store_decide_async(f->store, tick_fn, f) < 0) {
    pthread_mutex_lock(&f->mu);
    f->shared_tick_queued = 0;
    pthread_mutex_unlock(&f->mu);
  }
  return 1;
}

int fleet_shared_refresh(struct fleet *f)
{
  int64_t now = mono_ms(), wait;

  if (!f->shared)
    return 0;
  /* SECURITY: unknown tokens cannot make a node read the database more
   * than ten times a second: a miss soon after another waits out the
   * rest of the interval (misses meanwhile share the next read) */
  pthread_mutex_lock(&f->mu);
  wait = f->shared_missed + SHARED_MISS_MS - now;
  f->shared_missed = wait > 0 ? now + wait : now;
  pthread_mutex_unlock(&f->mu);
  if (wait > 0)
    nanosleep(&(struct timespec){wait / 1000, (wait % 1000) * 1000000L}, NULL);
  return store_sync(f->store) < 0 ? -1 : 1;
}
