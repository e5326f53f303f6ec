/* feed.c: the live event feed (feed.h): a ring of the newest FEED_RING
 * events, a condition variable for the readers that wait, and the small
 * table that turns rollout_mark()'s many calls into one event per change. */
#include "autoconfig.h"

#include "feed.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../util/util.h"
#include "fleet_int.h"

#define FEED_SMALL 160 /* bytes of a detail kept in its slot (with its NUL) */

struct slot {
  uint64_t id; /* 0: empty */
  int64_t at;
  char kind[FEED_KIND_MAX];
  char rollout[16];
  char device[65];
  char *detail; /* small, or malloc'd */
  /* a short detail (most device events) is copied here: no allocation
   * under the fleet lock, and no free of another thread's block */
  char small[FEED_SMALL];
};

/* what the feed last said of a rollout, to tell a change from a step */
struct seen_rollout {
  char id[16]; /* "": free */
  int state, wave;
};
#define SEEN_ROLLOUTS 64

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static struct slot ring[FEED_RING];
static uint64_t last_id; /* the newest event; ring[last_id % FEED_RING] */
static unsigned kicks;
static int waiters; /* threads in feed_wait() for an event: only then is an event signalled */
static struct seen_rollout seen_tab[SEEN_ROLLOUTS];
static int seen_next;
static struct seen_rollout *seen_recent; /* the one asked about last: most calls are for it */

static void init(void)
{
  pthread_condattr_t a;

  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(&cond, &a);
  pthread_condattr_destroy(&a);
}

static void copy(char *dst, size_t len, const char *src)
{
  snprintf(dst, len, "%s", src != NULL ? src : "");
}

/* The next slot, its old detail let go; mu held. */
static struct slot *next_slot(void)
{
  struct slot *s = &ring[(last_id + 1) % FEED_RING];

  if (s->detail != s->small)
    free(s->detail);
  s->detail = NULL;
  return s;
}

static void fill(struct slot *s, const char *kind, const char *rollout, const char *device,
                 char *detail)
{
  s->id = ++last_id;
  s->at = now_ms();
  copy(s->kind, sizeof(s->kind), kind);
  copy(s->rollout, sizeof(s->rollout), rollout);
  copy(s->device, sizeof(s->device), device);
  s->detail = detail;
  if (waiters > 0)
    pthread_cond_broadcast(&cond);
}

/* Appends with mu held; detail: malloc'd text, taken. */
static void append(const char *kind, const char *rollout, const char *device, char *detail)
{
  struct slot *s;

  if (detail != NULL && strlen(detail) > FEED_DETAIL_MAX) {
    free(detail);
    detail = strdup("{\"truncated\":true}");
  }
  if (detail == NULL)
    return;
  s = next_slot();
  fill(s, kind, rollout, device, detail);
}

void feed_publish(const char *kind, const char *rollout, const char *device, json_t *detail)
{
  char *text;

  pthread_once(&once, init);
  if (detail == NULL)
    detail = json_object();
  text = json_dumps(detail, JSON_COMPACT);
  json_decref(detail);
  pthread_mutex_lock(&mu);
  append(kind, rollout, device, text);
  pthread_mutex_unlock(&mu);
}

void feed_device(const struct device *d, const char *kind, const char *detail_text)
{
  char k[FEED_KIND_MAX];
  const char *t = detail_text != NULL ? detail_text : "{}";
  size_t n = strlen(t);
  char *text = n < FEED_SMALL ? NULL : strdup(t);

  pthread_once(&once, init);
  snprintf(k, sizeof(k), "device.%s", kind);
  pthread_mutex_lock(&mu);
  if (text != NULL || n >= FEED_SMALL) {
    append(k, d->rollout != NULL ? d->rollout->id : NULL, d->id, text);
  } else {
    struct slot *s = next_slot();
    memcpy(s->small, t, n + 1);
    fill(s, k, d->rollout != NULL ? d->rollout->id : NULL, d->id, s->small);
  }
  pthread_mutex_unlock(&mu);
}

void feed_rollout(const struct rollout *r)
{
  struct seen_rollout *e = NULL;
  int alarm;
  json_t *o;

  pthread_once(&once, init);
  pthread_mutex_lock(&mu);
  if (seen_recent != NULL && strcmp(seen_recent->id, r->id) == 0)
    e = seen_recent;
  for (int i = 0; i < SEEN_ROLLOUTS && e == NULL; i++)
    if (strcmp(seen_tab[i].id, r->id) == 0)
      e = &seen_tab[i];
  if (e != NULL && e->state == (int)r->state && e->wave == r->wave) {
    seen_recent = e;
    pthread_mutex_unlock(&mu);
    return; /* a device's step, not the rollout's */
  }
  if (e == NULL) {
    e = &seen_tab[seen_next];
    seen_next = (seen_next + 1) % SEEN_ROLLOUTS;
    copy(e->id, sizeof(e->id), r->id);
    e->state = -1;
  }
  seen_recent = e;
  alarm = r->state == R_PAUSED && e->state != R_PAUSED &&
          strcmp(r->reason, "paused by the operator") != 0;
  e->state = (int)r->state;
  e->wave = r->wave;
  o = json_pack("{s:s,s:i,s:i,s:s?}", "state", rstate_name(r->state), "wave", r->wave + 1, "waves",
                r->n_waves, "reason", r->reason[0] ? r->reason : NULL);
  append("rollout", r->id, NULL, json_dumps(o, JSON_COMPACT));
  json_decref(o);
  if (alarm) {
    o = json_pack("{s:s,s:s}", "reason", r->reason, "state", "paused");
    append("alarm", r->id, NULL, json_dumps(o, JSON_COMPACT));
    json_decref(o);
  }
  pthread_mutex_unlock(&mu);
}

void feed_alarm(const struct rollout *r, const char *text)
{
  feed_publish("alarm", r->id, NULL, json_pack("{s:s}", "reason", text));
}

uint64_t feed_read(uint64_t after, int max, int (*fn)(const struct feed_event *e, void *arg),
                   void *arg, int *gap)
{
  uint64_t id, oldest;

  pthread_mutex_lock(&mu);
  oldest = last_id >= FEED_RING ? last_id - FEED_RING + 1 : 1;
  *gap = after + 1 < oldest || after > last_id;
  if (after > last_id)
    after = 0; /* an id of an earlier run of the daemon */
  id = after + 1 < oldest ? oldest : after + 1;
  for (; id <= last_id && max > 0; id++, max--) {
    const struct slot *s = &ring[id % FEED_RING];
    struct feed_event e = {s->id, s->at, "", "", "", s->detail};
    memcpy(e.kind, s->kind, sizeof(e.kind));
    memcpy(e.rollout, s->rollout, sizeof(e.rollout));
    memcpy(e.device, s->device, sizeof(e.device));
    after = id;
    if (fn(&e, arg) != 0)
      break;
  }
  pthread_mutex_unlock(&mu);
  return after;
}

uint64_t feed_last(void)
{
  uint64_t n;

  pthread_mutex_lock(&mu);
  n = last_id;
  pthread_mutex_unlock(&mu);
  return n;
}

uint64_t feed_wait(uint64_t seen_id, int timeout_ms)
{
  struct timespec ts;
  unsigned k;
  uint64_t n;

  pthread_once(&once, init);
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += timeout_ms / 1000;
  ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&mu);
  k = kicks;
  waiters += seen_id != UINT64_MAX;
  while (last_id <= seen_id && k == kicks)
    if (pthread_cond_timedwait(&cond, &mu, &ts) != 0)
      break;
  waiters -= seen_id != UINT64_MAX;
  n = last_id;
  pthread_mutex_unlock(&mu);
  return n;
}

void feed_kick(void)
{
  pthread_once(&once, init);
  pthread_mutex_lock(&mu);
  kicks++;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&mu);
}
