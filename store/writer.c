/* writer.c: one thread that flushes the store on a timer or on demand. */
#include "autoconfig.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "../util/log.h"
#include "writer.h"

struct writer {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t wake, done;
  int interval_ms;
  int stop;
  uint64_t requested, completed; /* sync generations */
  void (*flush)(void *arg);
  void *arg;
};

static void deadline_after(struct timespec *ts, int ms)
{
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

static void *writer_main(void *arg)
{
  struct writer *w = arg;
  struct timespec next;

  pthread_mutex_lock(&w->mu);
  deadline_after(&next, w->interval_ms);
  for (;;) {
    uint64_t gen;
    int stopping;

    while (!w->stop && w->requested == w->completed) {
      if (pthread_cond_timedwait(&w->wake, &w->mu, &next) == ETIMEDOUT)
        break;
    }
    gen = w->requested;
    stopping = w->stop;
    pthread_mutex_unlock(&w->mu);

    w->flush(w->arg);

    pthread_mutex_lock(&w->mu);
    w->completed = gen;
    pthread_cond_broadcast(&w->done);
    deadline_after(&next, w->interval_ms);
    if (stopping)
      break;
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

struct writer *writer_start(int interval_ms, void (*flush)(void *arg), void *arg)
{
  struct writer *w = calloc(1, sizeof(*w));
  pthread_condattr_t ca;

  if (w == NULL)
    return NULL;
  w->interval_ms = interval_ms;
  w->flush = flush;
  w->arg = arg;
  pthread_mutex_init(&w->mu, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w->wake, &ca);
  pthread_condattr_destroy(&ca);
  pthread_cond_init(&w->done, NULL);
  if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
    log_error("writer: cannot start thread");
    free(w);
    return NULL;
  }
  return w;
}

void writer_sync(struct writer *w)
{
  uint64_t want;

  pthread_mutex_lock(&w->mu);
  want = ++w->requested;
  pthread_cond_signal(&w->wake);
  while (w->completed < want && !w->stop)
    pthread_cond_wait(&w->done, &w->mu);
  pthread_mutex_unlock(&w->mu);
}

void writer_stop(struct writer *w)
{
  if (w == NULL)
    return;
  pthread_mutex_lock(&w->mu);
  w->stop = 1;
  pthread_cond_signal(&w->wake);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->thread, NULL);
  pthread_cond_destroy(&w->wake);
  pthread_cond_destroy(&w->done);
  pthread_mutex_destroy(&w->mu);
  free(w);
}
