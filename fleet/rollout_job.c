/* rollout_job.c: work over a whole rollout, done a page at a time with the
 * fleet lock let go between pages, so that no device request waits behind
 * it: a start (select the members, order them, enrol them) and a cancel's
 * sweep (members back to idle). One thread runs the jobs; a small one may
 * run in the admin call itself. A job's state is in the rollout (state
 * "starting", or "cancelled" with members not yet idle), so a restart takes
 * it up again (fleet_open). */
#include "autoconfig.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../store/store.h"
#include "../util/log.h"
#include "../util/util.h"
#include "fleet_int.h"
#include "lwm2m_int.h"

/* hash buckets a page of the start's scan covers, at most */
#define SCAN_BUCKETS DEV_SCAN_BUCKETS
#define SWEEP_PASSES 3
/* Members a page of a start or a sweep enrols under the lock: each makes
 * events and JSON (about 20 us), so a fifth of JOB_PAGE keeps a page near
 * 2 ms, and a holder the scheduler takes the processor from (2 cores, many
 * threads) leaves device requests waiting less; commits stay every
 * JOB_SYNC_PAGES x JOB_PAGE members. */
#define ENROL_PAGE (JOB_PAGE / 5)
#define ENROL_SYNC_PAGES (JOB_SYNC_PAGES * JOB_PAGE / ENROL_PAGE)
/* renumberings a page at a time before the one under the lock, when
 * members keep being deleted while the positions are made 0.. again */
#define RENUMBER_PAGED 3

/* A device's place in a rollout's order: stable, and unrelated between
 * rollouts. */
static unsigned order_hash(const char *rid, const char *did)
{
  char buf[16 + DEVICE_ID_MAX + 2];

  snprintf(buf, sizeof(buf), "%s/%s", rid, did);
  return hash_str(buf);
}

struct ordered {
  unsigned key;
  int pos; /* its place in the rollout's order */
  struct device *d;
};

static int cmp_ordered(const void *a, const void *b)
{
  const struct ordered *x = a, *y = b;

  if (x->key != y->key)
    return x->key < y->key ? -1 : 1;
  return strcmp(x->d->id, y->d->id);
}

static int cmp_id(const void *a, const void *b)
{
  return strcmp(((const struct ordered *)a)->d->id, ((const struct ordered *)b)->d->id);
}

static int cmp_pos(const void *a, const void *b)
{
  const struct ordered *x = a, *y = b;

  return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Makes the members' positions 0.. again, in their order (list sorted by
 * pos), after some candidates were not enrolled (deleted, or taken by
 * another rollout meanwhile) or members were deleted once enrolled: pages
 * like the enrol's, or all at once when locked (f->mu held). The positions
 * are read only once the rollout runs. Returns the next position, or -1
 * when the job must stop. */
static int renumber(struct fleet *f, struct rollout *r, struct ordered *list, size_t n, int locked)
{
  int pos = 0;

  for (size_t i = 0; i < n;) {
    if (!locked) {
      page_lock(f);
      if (r->state != R_STARTING || f->job_stop) {
        pthread_mutex_unlock(&f->mu);
        return -1;
      }
    }
    for (int k = 0; (locked || k < ENROL_PAGE) && i < n; k++, i++) {
      struct device *d = list[i].d;
      if (d->dead || d->rollout != r || d->position >= INT_MAX / 2)
        continue;
      if (d->position != pos) {
        rollout_set_position(r, d, pos);
        device_mark(f, d);
      }
      pos++;
    }
    if (!locked)
      page_unlock(f);
  }
  return pos;
}

/* The members the job enrolled (joiners have positions from INT_MAX / 2). */
static int enrolled_count(const struct rollout *r)
{
  int k = 0;

  for (int m = 0; m < r->n_members; m++)
    k += r->mpos[m] < INT_MAX / 2;
  return k;
}

/* May d join r now? Not when a live rollout (another) has it. */
static int candidate(const struct rollout *r, const struct device *d)
{
  const struct rollout *o = d->rollout;

  if (d->dead)
    return 0;
  if (o != NULL && o != r &&
      (o->state == R_RUNNING || o->state == R_PAUSED || o->state == R_STARTING))
    return 0;
  return rollout_matches(r, d);
}

/* 0 when done (or stopped by a change of state), -1 when the fleet stops. */
static int start_job(struct fleet *f, struct rollout *r)
{
  struct ordered *list = NULL;
  size_t n = 0, cap;
  int pos = 0, scan, sorted = 0;

  pthread_mutex_lock(&f->mu);
  cap = (size_t)f->n_devices + 1024;
  pthread_mutex_unlock(&f->mu);
  /* about a job page of devices a scan page (130 buckets at a million;
   * 15,000 devices with 4096 of them: a page of tens of ms, cold) */
  scan = (int)((size_t)DEV_BUCKETS * JOB_PAGE / cap);
  scan = scan < 1 ? 1 : scan > SCAN_BUCKETS ? SCAN_BUCKETS : scan;
  list = malloc(cap * sizeof(*list));
  if (list == NULL) {
    log_error("rollout %s: out of memory for its start; trying again later", r->id);
    return -1;
  }
  /* the candidates, a few hundred buckets at a time; the records stay
   * valid while the job runs (device_bury) */
  for (int b0 = 0; b0 < DEV_BUCKETS; b0 += scan) {
    page_lock(f);
    if (r->state != R_STARTING || f->job_stop) {
      pthread_mutex_unlock(&f->mu);
      free(list);
      return f->job_stop ? -1 : 0;
    }
    if (b0 == 0)
      /* a start run again (a restart, another node taking it over): the
       * members an earlier run enrolled get their positions again, and
       * one not enrolled again (it no longer matches) goes last, as a
       * joiner, instead of keeping a position that another member takes
       * or that is past the end, out of every wave */
      for (int m = 0; m < r->n_members; m++)
        if (r->mpos[m] < INT_MAX / 2)
          rollout_set_position(r, r->members[m], INT_MAX / 2 + m);
    for (int b = b0; b < b0 + scan && b < DEV_BUCKETS; b++)
      for (struct device *d = f->dev[b]; d; d = d->next) {
        if (!candidate(r, d))
          continue;
        if (n == cap) {
          struct ordered *nl = realloc(list, 2 * cap * sizeof(*nl));
          if (nl == NULL)
            break;
          list = nl;
          cap *= 2;
        }
        list[n++] = (struct ordered){order_hash(r->id, d->id), 0, d};
      }
    r->job_of = (int)n;
    page_unlock(f);
  }
  /* the rollout's order gives the positions; the members are enrolled in
   * the order of their ids, which is the database's: a commit then
   * rewrites a few pages of rows next to each other, not a page per member
   * (a start over a million devices was bound by those writes) */
  if (n > 1)
    qsort(list, n, sizeof(*list), cmp_ordered);
  for (size_t i = 0; i < n; i++)
    list[i].pos = (int)i;
  if (n > 1)
    qsort(list, n, sizeof(*list), cmp_id);
  /* enrolled a page at a time; each page committed before the next, so
   * that the writer's transactions stay small and memory bounded */
  for (size_t i = 0, page = 0; i < n || i == 0; page++) {
    if (!fleet_shared_job_hold(f, r)) { /* another node carries it on */
      free(list);
      return 0;
    }
    page_lock(f);
    if (r->state != R_STARTING || f->job_stop) {
      pthread_mutex_unlock(&f->mu);
      free(list);
      return f->job_stop ? -1 : 0;
    }
    for (int k = 0; k < ENROL_PAGE && i < n; k++, i++)
      if (candidate(r, list[i].d))
        rollout_enrol(f, r, list[i].d, list[i].pos);
    r->job_done = (int)i;
    r->job_of = (int)n;
    rollout_mark(r);
    /* candidates not enrolled, or members deleted since, leave holes in
     * the positions 0..n-1: they are numbered again, a page at a time,
     * until no member left meanwhile; the last time under the lock */
    for (int tries = 0, next = (int)n; i >= n; tries++) {
      if ((pos = next) == enrolled_count(r))
        break;
      if (tries == RENUMBER_PAGED) {
        pos = renumber(f, r, list, n, 1);
        break;
      }
      page_unlock(f);
      if (!sorted && n > 1)
        qsort(list, n, sizeof(*list), cmp_pos);
      sorted = 1;
      if ((next = renumber(f, r, list, n, 0)) < 0) {
        free(list);
        return f->job_stop ? -1 : 0;
      }
      page_lock(f);
      if (r->state != R_STARTING || f->job_stop) {
        pthread_mutex_unlock(&f->mu);
        free(list);
        return f->job_stop ? -1 : 0;
      }
    }
    if (i >= n) {
      /* the end: devices that joined meanwhile go last, in any order */
      for (int m = 0; m < r->n_members; m++)
        if (r->mpos[m] >= INT_MAX / 2) {
          rollout_set_position(r, r->members[m], pos++);
          device_mark(f, r->members[m]);
        }
      r->pos_end = pos; /* the renumbering made the positions 0..pos-1 */
      r->state = R_RUNNING;
      r->reason[0] = '\0';
      if (r->job == JOB_START)
        r->job = JOB_NONE;
      /* saved as running: a flush while the positions were numbered again
       * (the lock let go) may have saved it starting, and a restart would
       * start it over */
      rollout_mark(r);
      log_info("rollout %s started: %d devices, waves of %d%%..%d%%", r->id, r->n_members,
               r->waves[0], r->waves[r->n_waves - 1]);
      lwm2m_wake_wave(r);
      rollout_evaluate(f, r);
      pthread_mutex_unlock(&f->mu);
      store_sync(f->store);
      break;
    }
    page_unlock(f);
    if (page % ENROL_SYNC_PAGES == ENROL_SYNC_PAGES - 1)
      store_sync(f->store);
  }
  free(list);
  return 0;
}

static int unfinished(const struct rollout *r)
{
  return r->count[D_PENDING] + r->count[D_OFFERED] + r->count[D_DOWNLOADING] +
         r->count[D_DOWNLOADED] + r->count[D_UPDATING];
}

/* A cancelled rollout's members that had not ended go back to idle. */
static int sweep_job(struct fleet *f, struct rollout *r)
{
  for (int pass = 0; pass < SWEEP_PASSES; pass++) {
    for (int i = 0, page = 0;; page++) {
      int more;
      if (!fleet_shared_job_hold(f, r))
        return 0; /* another node carries it on */
      page_lock(f);
      if (f->job_stop) {
        pthread_mutex_unlock(&f->mu);
        return -1;
      }
      for (int k = 0; k < ENROL_PAGE && i < r->n_members; k++, i++) {
        unsigned char st = r->mstate[i];
        if (st != D_SUCCEEDED && st != D_FAILED && st != D_NO_PATH && st != D_IDLE) {
          struct device *d = r->members[i];
          device_clear_offer(f, d);
          device_set_state(f, d, D_IDLE, "rollout cancelled");
        }
      }
      more = i < r->n_members;
      page_unlock(f);
      if (!more || page % ENROL_SYNC_PAGES == ENROL_SYNC_PAGES - 1)
        store_sync(f->store);
      if (!more)
        break;
    }
    pthread_mutex_lock(&f->mu);
    if (unfinished(r) == 0) {
      if (r->job == JOB_SWEEP)
        r->job = JOB_NONE;
      pthread_mutex_unlock(&f->mu);
      return 0;
    }
    pthread_mutex_unlock(&f->mu);
  }
  pthread_mutex_lock(&f->mu);
  if (r->job == JOB_SWEEP)
    r->job = JOB_NONE; /* what is left moved by itself meanwhile */
  pthread_mutex_unlock(&f->mu);
  return 0;
}

static void graveyard_free(struct fleet *f)
{
  while (f->graveyard) {
    struct device *d = f->graveyard;
    f->graveyard = d->next;
    device_free(d);
  }
}

void device_bury(struct fleet *f, struct device *d)
{
  if (f->job_running == 0) {
    device_free(d);
    return;
  }
  d->dead = 1;
  d->next = f->graveyard;
  f->graveyard = d;
}

void rollout_job_run(struct fleet *f, struct rollout *r)
{
  enum rjob job;

  pthread_mutex_lock(&f->mu);
  job = r->job;
  pthread_mutex_unlock(&f->mu);
  /* several nodes: one of them carries a job on (fleet/shared.c) */
  if (job == JOB_NONE || !fleet_shared_job_hold(f, r))
    return;
  pthread_mutex_lock(&f->mu);
  job = r->job;
  if (job == JOB_NONE || r->job_busy) {
    pthread_mutex_unlock(&f->mu);
    return;
  }
  r->job_busy = 1;
  f->job_running++;
  pthread_mutex_unlock(&f->mu);

  if (job == JOB_START)
    start_job(f, r);
  else
    sweep_job(f, r);

  pthread_mutex_lock(&f->mu);
  r->job_busy = 0;
  if (--f->job_running == 0)
    graveyard_free(f);
  if (r->job != JOB_NONE && !f->job_stop)
    fleet_jobs_kick(f); /* a cancel came during a start */
  pthread_mutex_unlock(&f->mu);
}

static void *job_main(void *arg)
{
  struct fleet *f = arg;

  pthread_mutex_lock(&f->mu);
  while (!f->job_stop) {
    struct rollout *r = f->rollouts;
    while (r != NULL && (r->job == JOB_NONE || r->job_busy))
      r = r->next;
    if (r == NULL) {
      pthread_cond_wait(&f->job_wake, &f->mu);
      continue;
    }
    pthread_mutex_unlock(&f->mu);
    rollout_job_run(f, r); /* rollouts are never freed while the fleet lives */
    pthread_mutex_lock(&f->mu);
  }
  pthread_mutex_unlock(&f->mu);
  return NULL;
}

void fleet_jobs_kick(struct fleet *f) { pthread_cond_signal(&f->job_wake); }

int fleet_jobs_start(struct fleet *f)
{
  pthread_cond_init(&f->job_wake, NULL);
  if (pthread_create(&f->job_thread, NULL, job_main, f) != 0) {
    pthread_cond_destroy(&f->job_wake);
    return -1;
  }
  f->job_started = 1;
  return 0;
}

void fleet_jobs_stop(struct fleet *f)
{
  if (!f->job_started)
    return;
  pthread_mutex_lock(&f->mu);
  f->job_stop = 1;
  pthread_cond_broadcast(&f->job_wake);
  pthread_mutex_unlock(&f->mu);
  pthread_join(f->job_thread, NULL);
  pthread_cond_destroy(&f->job_wake);
  f->job_started = 0;
  pthread_mutex_lock(&f->mu);
  graveyard_free(f);
  pthread_mutex_unlock(&f->mu);
}
