/* writer.c: one thread that flushes the store on a timer or on demand. */
#include "autoconfig.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../util/log.h"
#include "writer.h"

/* A wish to hear when a commit generation is done (writer_sync_async). */
struct waiter {
  uint64_t gen;
  void (*done)(void *arg);
  void *arg;
  struct waiter *next;
};

struct writer {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t wake, done;
  int interval_ms;
  int stop;
  uint64_t requested, completed; /* sync generations */
  uint64_t notified;             /* generations whose waiters were told */
  struct waiter *waiters;        /* oldest first */
  void (*flush)(void *arg);
  void *arg;
  char *delay_file; /* DFOTAD_TEST_COMMIT_DELAY: tests only */
};

/* Tests only: the milliseconds named in the file DFOTAD_TEST_COMMIT_DELAY
 * names (0 when absent), at most a minute: a slow disk a test can turn on
 * and off while the daemon runs. */
static int test_delay_ms(const struct writer *w)
{
  char buf[16] = "";
  FILE *fp;
  int ms;

  if (w->delay_file == NULL || (fp = fopen(w->delay_file, "re")) == NULL)
    return 0;
  if (fgets(buf, sizeof(buf), fp) == NULL)
    buf[0] = '\0';
  fclose(fp);
  ms = atoi(buf);
  return ms < 0 ? 0 : ms > 60000 ? 60000 : ms;
}

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

/* Tells the waiters of generations up to gen, outside the lock (held on
 * entry and on return), oldest first. */
static void notify(struct writer *w, uint64_t gen)
{
  struct waiter *due = NULL, **tail = &due;

  while (w->waiters != NULL && w->waiters->gen <= gen) {
    *tail = w->waiters;
    w->waiters = w->waiters->next;
    tail = &(*tail)->next;
  }
  *tail = NULL;
  if (due == NULL) {
    w->notified = gen;
    return;
  }
  pthread_mutex_unlock(&w->mu);
  while (due != NULL) {
    struct waiter *x = due;
    due = x->next;
    x->done(x->arg);
    free(x);
  }
  pthread_mutex_lock(&w->mu);
  w->notified = gen;
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

    if (w->delay_file != NULL) {
      int ms = test_delay_ms(w);
      if (ms > 0)
        usleep((useconds_t)ms * 1000); /* a slow disk, for tests */
    }
    w->flush(w->arg);

    pthread_mutex_lock(&w->mu);
    w->completed = gen;
    notify(w, gen);
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
  {
    /* tests only: every commit takes longer by what a file says */
    const char *d = getenv("DFOTAD_TEST_COMMIT_DELAY");
    if (d != NULL && d[0] != '\0' && (w->delay_file = strdup(d)) != NULL)
      log_warn("writer: DFOTAD_TEST_COMMIT_DELAY=%s: commits slowed by the milliseconds in that "
               "file (tests only)",
               d);
  }
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

  /* on the writer's own thread (a decision inside its transaction, which
   * commits right after): nothing to wait for */
  if (pthread_equal(pthread_self(), w->thread))
    return;
  pthread_mutex_lock(&w->mu);
  want = ++w->requested;
  pthread_cond_signal(&w->wake);
  while (w->notified < want && !w->stop)
    pthread_cond_wait(&w->done, &w->mu);
  pthread_mutex_unlock(&w->mu);
}

int writer_sync_async(struct writer *w, void (*done)(void *arg), void *arg)
{
  struct waiter *x = malloc(sizeof(*x)), **pp;

  if (x == NULL)
    return -1;
  x->done = done;
  x->arg = arg;
  x->next = NULL;
  pthread_mutex_lock(&w->mu);
  if (w->stop) {
    pthread_mutex_unlock(&w->mu);
    free(x);
    return -1;
  }
  x->gen = ++w->requested;
  for (pp = &w->waiters; *pp; pp = &(*pp)->next)
    ;
  *pp = x;
  pthread_cond_signal(&w->wake);
  pthread_mutex_unlock(&w->mu);
  return 0;
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
  /* the final flush told every waiter that came before the stop */
  pthread_cond_destroy(&w->wake);
  pthread_cond_destroy(&w->done);
  pthread_mutex_destroy(&w->mu);
  free(w->delay_file);
  free(w);
}
