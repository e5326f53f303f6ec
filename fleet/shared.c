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

#include "../store/store.h"
#include "../util/log.h"
#include "../util/util.h"
#include "fleet_int.h"

#define SHARED_TICK_MS 1000 /* waves, thresholds and timeouts: a transaction a second a node */
#define SHARED_MISS_MS 100  /* least time between two reads forced by an unknown token */

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
  memcpy(r->count, old.count, sizeof(r->count));
  r->job = old.job;
  r->job_busy = old.job_busy;
  r->job_done = old.job_done;
  r->job_of = old.job_of;
  r->dirty = 0;
  r->next = old.next;
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
    if (r != NULL)
      rollout_add_member(r, d, d->position);
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
  f->shared = 1;
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

static void tick_fn(void *arg) { fleet_tick(arg); }

int fleet_shared_tick(struct fleet *f)
{
  int64_t now = mono_ms();

  if (!f->shared || in_decision)
    return 0;
  /* one transaction a second a node; a tick that finds nothing to do
   * writes nothing */
  int running = 0;

  pthread_mutex_lock(&f->mu);
  if (now - f->shared_ticked < SHARED_TICK_MS) {
    pthread_mutex_unlock(&f->mu);
    return 1;
  }
  f->shared_ticked = now;
  /* nothing running in the copy (at most a flush interval old): no turn
   * of the lock; a rollout started elsewhere is seen at the next flush */
  for (struct rollout *r = f->rollouts; r != NULL && !running; r = r->next)
    running = r->state == R_RUNNING;
  pthread_mutex_unlock(&f->mu);
  if (running)
    fleet_decide(f, tick_fn, f);
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
  store_sync(f->store);
  return 1;
}
