/* recheck.c: re-hashing a package's file when devices report it corrupt,
 * off the request threads and at most once per package per interval: one
 * worker thread, a short queue, and a check already queued or recent is
 * not queued again. SECURITY: a device's report must not make the server
 * hash a large file over and over. */
#include "autoconfig.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "../util/util.h"
#include "store_int.h"

#define RECHECK_QUEUE 8

struct recheck {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  int started, stopping;
  struct package *queue[RECHECK_QUEUE];
  int n;
  store_damage_cb cb;
  void *cb_arg;
};

static void *worker(void *arg)
{
  struct store *s = arg;
  struct recheck *rc = s->recheck;

  pthread_mutex_lock(&rc->mu);
  for (;;) {
    struct package *p;
    int damaged, again;
    while (rc->n == 0 && !rc->stopping)
      pthread_cond_wait(&rc->cv, &rc->mu);
    if (rc->n == 0)
      break;
    p = rc->queue[0];
    memmove(rc->queue, rc->queue + 1, (size_t)(rc->n - 1) * sizeof(rc->queue[0]));
    rc->n--;
    pthread_mutex_unlock(&rc->mu);
    damaged = store_package_verify(s, p->id) < 0;
    atomic_store(&p->checked_at, mono_ms());
    again = atomic_exchange(&p->checking, 0) == 2 && !damaged;
    if (damaged && rc->cb != NULL)
      rc->cb(rc->cb_arg, p->id);
    pthread_mutex_lock(&rc->mu);
    if (again && !rc->stopping && rc->n < RECHECK_QUEUE && atomic_exchange(&p->checking, 1) == 0) {
      rc->queue[rc->n++] = p; /* asked again while it ran: once more, the reference kept */
      continue;
    }
    pthread_mutex_unlock(&rc->mu);
    package_unref(p);
    pthread_mutex_lock(&rc->mu);
  }
  pthread_mutex_unlock(&rc->mu);
  return NULL;
}

int recheck_init(struct store *s)
{
  struct recheck *rc = calloc(1, sizeof(*rc));

  if (rc == NULL)
    return -1;
  pthread_mutex_init(&rc->mu, NULL);
  pthread_cond_init(&rc->cv, NULL);
  s->recheck = rc;
  /* started here, by the thread that opens the store, not by the first
   * report's request thread: a thread takes its creator's CPUs, and an
   * HTTP worker may be kept on one ([http] cpu_affinity). Should it fail,
   * the first check tries again. */
  rc->started = pthread_create(&rc->thread, NULL, worker, s) == 0;
  return 0;
}

void recheck_stop(struct store *s)
{
  struct recheck *rc = s->recheck;

  if (rc == NULL)
    return;
  pthread_mutex_lock(&rc->mu);
  rc->stopping = 1;
  for (int i = 0; i < rc->n; i++) /* not checked: nothing is lost, it was only a suspicion */
    package_unref(rc->queue[i]);
  rc->n = 0;
  pthread_cond_signal(&rc->cv);
  pthread_mutex_unlock(&rc->mu);
  if (rc->started)
    pthread_join(rc->thread, NULL);
  pthread_cond_destroy(&rc->cv);
  pthread_mutex_destroy(&rc->mu);
  free(rc);
  s->recheck = NULL;
}

void store_set_damage_hook(struct store *s, store_damage_cb cb, void *arg)
{
  pthread_mutex_lock(&s->recheck->mu);
  s->recheck->cb = cb;
  s->recheck->cb_arg = arg;
  pthread_mutex_unlock(&s->recheck->mu);
}

int store_package_recheck(struct store *s, const char *id, int min_interval_ms)
{
  struct recheck *rc = s->recheck;
  struct package *p = store_package_get(s, id);
  int64_t last;
  int queued = 0, idle = 0, running = 1;

  if (p == NULL)
    return 0;
  last = atomic_load(&p->checked_at);
  if (atomic_load(&p->status) != PKG_OK || (last != 0 && mono_ms() - last < min_interval_ms)) {
    package_unref(p);
    return 0;
  }
  if (!atomic_compare_exchange_strong(&p->checking, &idle, 1)) {
    /* one queued or running already. With no interval, a report that
     * comes while it runs gets a check of its own once it ends (the one
     * running may have read the bytes before this report's damage); with
     * one, the running check is this interval's. */
    if (min_interval_ms == 0)
      atomic_compare_exchange_strong(&p->checking, &running, 2);
    package_unref(p);
    return 0;
  }
  pthread_mutex_lock(&rc->mu);
  if (!rc->stopping && rc->n < RECHECK_QUEUE &&
      (rc->started || pthread_create(&rc->thread, NULL, worker, s) == 0)) {
    rc->started = 1;
    rc->queue[rc->n++] = p; /* the worker drops the reference */
    pthread_cond_signal(&rc->cv);
    queued = 1;
  }
  pthread_mutex_unlock(&rc->mu);
  if (!queued) {
    atomic_store(&p->checking, 0);
    package_unref(p);
    log_warn("package %s: re-check not queued (queue full)", id);
  }
  return queued;
}
