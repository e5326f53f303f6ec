/* resp_cache.c: libmicrohttpd responses for package bodies, built once
 * and queued again (resp_cache.h). Two-way set associative, a mutex per
 * set: the response is queued under its set's lock, so that no other
 * thread can evict (and release) it between the lookup and the queueing,
 * which takes libmicrohttpd's own reference. */
#include "autoconfig.h"

#include "resp_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define WAYS 2

struct entry {
  struct MHD_Response *r; /* NULL: empty */
  struct package *p;      /* held by the entry */
  uint64_t start, len;
  unsigned status;
  unsigned lines; /* cache lines from lo: the response's memory (resp_cache_prefetch) */
  uintptr_t owner;
  uintptr_t lo;
  int64_t used; /* the cache's clock when last queued */
};

/* libmicrohttpd's response object, about 190 bytes in 0.9.75 (only a hint:
 * what is prefetched is never read by us) */
#define RESPONSE_OBJECT_BYTES 192
/* a response whose pieces lie further apart is not prefetched */
#define PREFETCH_SPAN_MAX 2048

struct span {
  uintptr_t lo, hi;
};

static void span_add(struct span *sp, const void *at, size_t n)
{
  uintptr_t a = (uintptr_t)at;

  if (a < sp->lo)
    sp->lo = a;
  if (a + n > sp->hi)
    sp->hi = a + n;
}

static enum MHD_Result span_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
  (void)kind;
  span_add(cls, key, strlen(key) + 1);
  span_add(cls, value, strlen(value) + 1);
  return MHD_YES;
}

/* Where r's memory lies: the object and its headers' strings (their list
 * nodes are allocated among them), as the first line and a count of
 * lines; 0 lines when spread wider than PREFETCH_SPAN_MAX. */
static void response_span(struct MHD_Response *r, uintptr_t *lo, unsigned *lines)
{
  struct span sp = {UINTPTR_MAX, 0};

  span_add(&sp, r, RESPONSE_OBJECT_BYTES);
  MHD_get_response_headers(r, span_header, &sp);
  sp.lo &= ~(uintptr_t)63;
  *lo = sp.lo;
  *lines = sp.hi - sp.lo <= PREFETCH_SPAN_MAX ? (unsigned)((sp.hi - sp.lo + 63) / 64) : 0;
}

struct set {
  pthread_mutex_t mu;
  struct entry e[WAYS];
};

struct resp_cache {
  resp_build_fn build;
  void *ctx;
  unsigned mask;       /* sets - 1 */
  _Atomic int64_t now; /* ms, as the last sweep saw it: no clock read per request */
  int64_t swept_at;    /* the sweeper's thread only */
  struct set *sets;
};

struct resp_cache *resp_cache_new(unsigned entries, resp_build_fn build, void *ctx)
{
  struct resp_cache *rc = calloc(1, sizeof(*rc));
  unsigned sets = 1;

  if (rc == NULL)
    return NULL;
  while (sets * WAYS < entries && sets < (1u << 20))
    sets <<= 1;
  rc->sets = calloc(sets, sizeof(*rc->sets));
  if (rc->sets == NULL) {
    free(rc);
    return NULL;
  }
  for (unsigned i = 0; i < sets; i++)
    pthread_mutex_init(&rc->sets[i].mu, NULL);
  rc->mask = sets - 1;
  rc->build = build;
  rc->ctx = ctx;
  return rc;
}

static unsigned set_of(const struct resp_cache *rc, const struct package *p, uint64_t start,
                       uint64_t len, unsigned status, uintptr_t owner)
{
  uint64_t h =
      ((uint64_t)(uintptr_t)p ^ (uint64_t)owner * 0x94D049BB133111EBull) * 0x9E3779B97F4A7C15ull;

  h ^= start * 0xC2B2AE3D27D4EB4Full;
  h ^= (len + status) * 0x165667B19E3779F9ull;
  h ^= h >> 29;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 32;
  return (unsigned)h & rc->mask;
}

static void drop(struct entry *e)
{
  if (e->r != NULL) {
    MHD_destroy_response(e->r); /* freed once no connection holds it */
    package_unref(e->p);
  }
  e->r = NULL;
  e->p = NULL;
}

/* The entry of the key in s, or NULL; s->mu held. */
static struct entry *find(struct set *s, const struct package *p, uint64_t start, uint64_t len,
                          unsigned status, uintptr_t owner)
{
  for (int i = 0; i < WAYS; i++) {
    struct entry *x = &s->e[i];
    if (x->r != NULL && x->p == p && x->start == start && x->len == len && x->status == status &&
        x->owner == owner)
      return x;
  }
  return NULL;
}

void resp_cache_prefetch(struct resp_cache *rc, const struct package *p, uint64_t start,
                         uint64_t len, unsigned status, uintptr_t owner)
{
  struct set *s = &rc->sets[set_of(rc, p, start, len, status, owner)];
  const struct entry *e;
  uintptr_t lo = 0;
  unsigned lines = 0;

  pthread_mutex_lock(&s->mu);
  if ((e = find(s, p, start, len, status, owner)) != NULL) {
    lo = e->lo;
    lines = e->lines;
  }
  pthread_mutex_unlock(&s->mu);
  /* the response stays in the entry, or another takes its place: either
   * way these are only hints, never read here */
  for (unsigned i = 0; i < lines; i++)
    __builtin_prefetch((const void *)(lo + 64 * (uintptr_t)i), 0, 3);
}

enum MHD_Result resp_cache_queue(struct resp_cache *rc, struct MHD_Connection *c, struct package *p,
                                 uint64_t start, uint64_t len, unsigned status, uintptr_t owner)
{
  struct set *s = &rc->sets[set_of(rc, p, start, len, status, owner)];
  int64_t now = atomic_load_explicit(&rc->now, memory_order_relaxed);
  struct entry *e;
  enum MHD_Result ret;

  pthread_mutex_lock(&s->mu);
  e = find(s, p, start, len, status, owner);
  if (e == NULL) {
    struct MHD_Response *r;
    e = &s->e[0]; /* an empty way, else the least recently used */
    for (int i = 1; i < WAYS && e->r != NULL; i++)
      if (s->e[i].r == NULL || s->e[i].used < e->used)
        e = &s->e[i];
    /* the victim first: the new response's two dozen allocations then
     * come back from the memory it frees (malloc's per-thread cache),
     * not from the heap's bins */
    drop(e);
    r = rc->build(rc->ctx, p, start, len, status);
    if (r == NULL) {
      pthread_mutex_unlock(&s->mu);
      return MHD_NO;
    }
    package_ref(p);
    *e = (struct entry){r, p, start, len, status, 0, owner, 0, now};
    response_span(r, &e->lo, &e->lines);
  }
  e->used = now;
  ret = MHD_queue_response(c, status, e->r);
  pthread_mutex_unlock(&s->mu);
  return ret;
}

void resp_cache_sweep(struct resp_cache *rc, int64_t now_ms, int64_t idle_ms)
{
  atomic_store_explicit(&rc->now, now_ms, memory_order_relaxed);
  /* a few times per idle period is enough to bound how long a deleted
   * package's file stays mapped by the cache */
  if (now_ms - rc->swept_at < idle_ms / 4)
    return;
  rc->swept_at = now_ms;
  for (unsigned i = 0; i <= rc->mask; i++) {
    struct set *s = &rc->sets[i];
    pthread_mutex_lock(&s->mu);
    for (int w = 0; w < WAYS; w++) {
      struct entry *e = &s->e[w];
      if (e->r != NULL && (now_ms - e->used >= idle_ms || atomic_load(&e->p->deleted) ||
                           atomic_load(&e->p->status) != PKG_OK))
        drop(e);
    }
    pthread_mutex_unlock(&s->mu);
  }
}

void resp_cache_free(struct resp_cache *rc)
{
  if (rc == NULL)
    return;
  for (unsigned i = 0; i <= rc->mask; i++) {
    for (int w = 0; w < WAYS; w++)
      drop(&rc->sets[i].e[w]);
    pthread_mutex_destroy(&rc->sets[i].mu);
  }
  free(rc->sets);
  free(rc);
}
