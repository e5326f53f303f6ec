/* admission.c: the per-address and per-device table (admission.h). Entries
 * sit in one preallocated array, chained by index in hash buckets and in a
 * list from the most to the least recently taken; a free list holds the
 * unused ones. */
#include "autoconfig.h"

#include "admission.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define NIL UINT32_MAX
#define EVICT_SCAN 16 /* oldest entries looked at for the one to evict */

struct ent {
  struct adm_key key;
  uint32_t gen; /* 0: free */
  unsigned held[ADM_PHASES];
  uint32_t hnext;        /* bucket chain */
  uint32_t newer, older; /* the recency list */
};

struct admission {
  pthread_mutex_t mu;
  struct ent *e;
  uint32_t *bucket;
  uint32_t cap, nbuckets, used;
  uint32_t free_head;
  uint32_t newest, oldest;
  uint32_t gen;
  uint32_t seed;
  unsigned long long evicted, refused;
};

struct admission *adm_new(unsigned cap)
{
  struct admission *a = calloc(1, sizeof(*a));

  if (a == NULL)
    return NULL;
  if (cap < 16)
    cap = 16;
  if (cap > ADM_TABLE_MAX)
    cap = ADM_TABLE_MAX;
  a->cap = cap;
  for (a->nbuckets = 16; a->nbuckets < cap; a->nbuckets <<= 1)
    ;
  a->e = calloc(cap, sizeof(*a->e));
  a->bucket = malloc(a->nbuckets * sizeof(*a->bucket));
  if (a->e == NULL || a->bucket == NULL) {
    adm_free(a);
    return NULL;
  }
  for (uint32_t i = 0; i < a->nbuckets; i++)
    a->bucket[i] = NIL;
  for (uint32_t i = 0; i < cap; i++)
    a->e[i].hnext = i + 1 < cap ? i + 1 : NIL;
  a->free_head = 0;
  a->newest = a->oldest = NIL;
  /* a seed an outsider cannot guess: crafted keys then cannot pile up in
   * one bucket */
  if (getrandom(&a->seed, sizeof(a->seed), GRND_NONBLOCK) != sizeof(a->seed))
    a->seed = (uint32_t)(uintptr_t)a;
  pthread_mutex_init(&a->mu, NULL);
  return a;
}

void adm_free(struct admission *a)
{
  if (a == NULL)
    return;
  if (a->e != NULL && a->bucket != NULL)
    pthread_mutex_destroy(&a->mu);
  free(a->e);
  free(a->bucket);
  free(a);
}

void adm_key_addr(const struct sockaddr *sa, struct adm_key *k)
{
  memset(k, 0, sizeof(*k));
  k->kind = 1;
  k->len = 16;
  if (sa == NULL)
    return;
  if (sa->sa_family == AF_INET) {
    k->b[10] = k->b[11] = 0xff;
    memcpy(k->b + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
  } else if (sa->sa_family == AF_INET6) {
    const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    memcpy(k->b, a6, 16);
    /* an IPv4 client of a dual-stack socket is its IPv4 address; an IPv6
     * host owns its /64 */
    if (!IN6_IS_ADDR_V4MAPPED(a6))
      memset(k->b + 8, 0, 8);
  }
}

void adm_key_device(const char *id, struct adm_key *k)
{
  size_t n = strlen(id);

  memset(k, 0, sizeof(*k));
  k->kind = 2;
  k->len = (unsigned char)(n < ADM_KEY_MAX ? n : ADM_KEY_MAX);
  memcpy(k->b, id, k->len);
}

static uint32_t hash(const struct admission *a, const struct adm_key *k)
{
  uint32_t h = 2166136261u ^ a->seed;

  h = (h ^ k->kind) * 16777619u;
  for (unsigned i = 0; i < k->len; i++)
    h = (h ^ k->b[i]) * 16777619u;
  h ^= h >> 15;
  h *= 0x2c1b3c6dU;
  h ^= h >> 12;
  return h & (a->nbuckets - 1);
}

static int same_key(const struct adm_key *x, const struct adm_key *y)
{
  return x->kind == y->kind && x->len == y->len && memcmp(x->b, y->b, x->len) == 0;
}

/* ---- the recency list --------------------------------------------------- */

static void list_unlink(struct admission *a, uint32_t i)
{
  struct ent *e = &a->e[i];

  if (e->newer != NIL)
    a->e[e->newer].older = e->older;
  else
    a->newest = e->older;
  if (e->older != NIL)
    a->e[e->older].newer = e->newer;
  else
    a->oldest = e->newer;
  e->newer = e->older = NIL;
}

static void list_push(struct admission *a, uint32_t i)
{
  struct ent *e = &a->e[i];

  e->older = a->newest;
  e->newer = NIL;
  if (a->newest != NIL)
    a->e[a->newest].newer = i;
  else
    a->oldest = i;
  a->newest = i;
}

/* ---- entries -------------------------------------------------------------- */

/* Takes entry i out of its bucket and the list, onto the free list. */
static void release(struct admission *a, uint32_t i)
{
  struct ent *e = &a->e[i];
  uint32_t *pp = &a->bucket[hash(a, &e->key)];

  while (*pp != i)
    pp = &a->e[*pp].hnext;
  *pp = e->hnext;
  list_unlink(a, i);
  memset(e, 0, sizeof(*e));
  e->hnext = a->free_head;
  a->free_head = i;
  a->used--;
}

static unsigned total(const struct ent *e)
{
  unsigned n = 0;

  for (int p = 0; p < ADM_PHASES; p++)
    n += e->held[p];
  return n;
}

/* SECURITY: a full table makes room rather than refusing: among the
 * EVICT_SCAN least recently taken entries, the one holding the least goes
 * (the oldest of those on a tie). */
static void evict(struct admission *a)
{
  uint32_t best = NIL, i = a->oldest;
  unsigned best_n = 0;

  for (int n = 0; n < EVICT_SCAN && i != NIL; n++, i = a->e[i].newer) {
    unsigned t = total(&a->e[i]);
    if (best == NIL || t < best_n) {
      best = i;
      best_n = t;
    }
  }
  if (best != NIL) {
    release(a, best);
    a->evicted++;
  }
}

/* The entry of k, added when missing; a->mu held. */
static uint32_t find_or_add(struct admission *a, const struct adm_key *k)
{
  uint32_t b = hash(a, k), i;

  for (i = a->bucket[b]; i != NIL; i = a->e[i].hnext)
    if (same_key(&a->e[i].key, k))
      return i;
  if (a->free_head == NIL)
    evict(a);
  i = a->free_head;
  if (i == NIL)
    return NIL;
  a->free_head = a->e[i].hnext;
  memset(&a->e[i], 0, sizeof(a->e[i]));
  a->e[i].key = *k;
  if (++a->gen == 0)
    a->gen = 1;
  a->e[i].gen = a->gen;
  a->e[i].hnext = a->bucket[b];
  a->bucket[b] = i;
  a->e[i].newer = a->e[i].older = NIL;
  list_push(a, i);
  a->used++;
  return i;
}

int adm_take(struct admission *a, const struct adm_key *k, enum adm_phase phase, unsigned limit,
             struct adm_hold *h)
{
  uint32_t i;
  int r = -1;

  memset(h, 0, sizeof(*h));
  if (a == NULL || phase >= ADM_PHASES || k->len > ADM_KEY_MAX)
    return -1;
  pthread_mutex_lock(&a->mu);
  i = find_or_add(a, k);
  if (i != NIL) {
    struct ent *e = &a->e[i];
    if (limit > 0 && e->held[phase] >= limit) {
      a->refused++;
      if (total(e) == 0)
        release(a, i);
    } else {
      e->held[phase]++;
      list_unlink(a, i);
      list_push(a, i);
      h->idx = i;
      h->gen = e->gen;
      h->phase = phase;
      r = 0;
    }
  }
  pthread_mutex_unlock(&a->mu);
  return r;
}

void adm_give(struct admission *a, struct adm_hold *h)
{
  if (a == NULL || h->gen == 0)
    return;
  pthread_mutex_lock(&a->mu);
  if (h->idx < a->cap && a->e[h->idx].gen == h->gen) {
    struct ent *e = &a->e[h->idx];
    if (e->held[h->phase] > 0)
      e->held[h->phase]--;
    if (total(e) == 0)
      release(a, h->idx);
  }
  pthread_mutex_unlock(&a->mu);
  memset(h, 0, sizeof(*h));
}

unsigned adm_held(struct admission *a, const struct adm_hold *h)
{
  unsigned n = 0;

  if (a == NULL || h->gen == 0)
    return 0;
  pthread_mutex_lock(&a->mu);
  if (h->idx < a->cap && a->e[h->idx].gen == h->gen)
    n = a->e[h->idx].held[h->phase];
  pthread_mutex_unlock(&a->mu);
  return n;
}

void adm_stats(struct admission *a, struct adm_stats *out)
{
  pthread_mutex_lock(&a->mu);
  out->entries = a->used;
  out->evicted = a->evicted;
  out->refused = a->refused;
  pthread_mutex_unlock(&a->mu);
}

int adm_same_host(const struct sockaddr *x, const struct sockaddr *y)
{
  unsigned char kx[16] = {0}, ky[16] = {0};
  const struct sockaddr *s[2] = {x, y};
  unsigned char *k[2] = {kx, ky};

  for (int n = 0; n < 2; n++) {
    if (s[n]->sa_family == AF_INET) {
      k[n][10] = k[n][11] = 0xff;
      memcpy(k[n] + 12, &((const struct sockaddr_in *)s[n])->sin_addr, 4);
    } else if (s[n]->sa_family == AF_INET6) {
      memcpy(k[n], &((const struct sockaddr_in6 *)s[n])->sin6_addr, 16);
    } else {
      return 0;
    }
  }
  return memcmp(kx, ky, 16) == 0;
}

void adm_throttle_key(const char *text, char *out, size_t len)
{
  struct in6_addr a6;
  char buf[INET6_ADDRSTRLEN];

  if (strchr(text, ':') != NULL && inet_pton(AF_INET6, text, &a6) == 1 &&
      !IN6_IS_ADDR_V4MAPPED(&a6)) {
    memset(a6.s6_addr + 8, 0, 8);
    if (inet_ntop(AF_INET6, &a6, buf, sizeof(buf)) != NULL) {
      snprintf(out, len, "%s/64", buf);
      return;
    }
  }
  snprintf(out, len, "%s", text);
}
