/* shared.c: the store's part of several nodes on one database ([store]
 * nodes = shared; db_pg_shared.c has the SQL). In that mode the writer's
 * transaction opens with the nodes' transaction lock and what the others
 * wrote since (handed to the fleet's apply hook, packages added to the
 * catalog), then runs the decisions queued with store_decide, then the
 * flush as on one node. A decision thus reads the fleet as the database
 * has it and is committed before its caller answers. */
#include "autoconfig.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util/log.h"
#include "../util/util.h"
#include "db.h"
#include "store.h"
#include "store_int.h"
#include "writer.h"

/* A deleted package's file stays this long in the shared folder: longer
 * than any transfer of it another node may still be serving (a response is
 * bounded by [http] timeout between reads; an hour covers the slowest
 * module fetching a large package in one request) */
#define SHARED_PKG_GRACE_S 3600
#define SHARED_SWEEP_MS 10000

struct decision {
  void (*fn)(void *arg);
  void *arg;
  int rc;    /* 1: waiting; 0: committed; -1: not run or not committed */
  int async; /* on the heap, nobody waits: freed when its transaction ends */
  struct decision *next;
};

int store_shared(const struct store *s) { return s->shared; }

void store_set_apply_hook(struct store *s, store_apply_hook apply, void *arg)
{
  s->apply = apply;
  s->apply_arg = arg;
}

static int apply_doc(char kind, const char *id, const char *doc, void *arg)
{
  struct store *s = arg;

  if (s->apply != NULL)
    s->apply(s->apply_arg, kind, id, doc);
  return 0;
}

/* A package another node added: into the catalog once its file (in the
 * shared package folder) is there and matches its hash. */
static int apply_pkg(const struct db_package *r, int64_t seq, void *arg)
{
  struct store *s = arg;
  struct package *p;

  if (seq > s->pkg_seen)
    s->pkg_seen = seq;
  if ((p = store_package_get(s, r->id)) != NULL) {
    package_unref(p);
    return 0;
  }
  if ((p = package_new(r)) == NULL)
    return 0;
  package_open_file(s, p, 1);
  if (p->status != PKG_OK)
    log_error("package %s (added by another node): %s; not served here until its file is in the "
              "shared package folder",
              p->id, p->damage);
  else
    log_info("package %s (%s %s -> %s) added by another node", p->id, p->model, p->from, p->to);
  pthread_rwlock_wrlock(&s->lock);
  catalog_insert(s, p);
  pthread_rwlock_unlock(&s->lock);
  return 0;
}

/* A package deleted (on any node, this one too): out of the catalog now.
 * Transfers in flight keep their reference and descriptor; the file stays
 * in the shared folder until the sweep (sweep_files), so that other nodes'
 * transfers of it end first. */
static int apply_gone(const char *id, int64_t seq, void *arg)
{
  struct store *s = arg;
  struct package *p;

  if (seq > s->gone_seen)
    s->gone_seen = seq;
  pthread_rwlock_wrlock(&s->lock);
  p = catalog_remove(s, id);
  pthread_rwlock_unlock(&s->lock);
  if (p != NULL) {
    atomic_store(&p->deleted, 1);
    log_info("package %s deleted by another node", id);
    package_unref(p);
  }
  return 0;
}

static int unlink_file(const char *sha256, void *arg)
{
  struct store *s = arg;
  char path[4096];

  if (strlen(sha256) != 64 || strspn(sha256, "0123456789abcdef") != 64)
    return 0; /* not a name this folder holds */
  snprintf(path, sizeof(path), "%s/%s", s->pkg_dir, sha256);
  if (unlink(path) == 0)
    log_info("package file %s removed (deleted more than %d s ago, on every node)", sha256,
             SHARED_PKG_GRACE_S);
  return 0;
}

/* At most once every 10 s, in the nodes' turn: the files of packages deleted
 * more than the grace ago, whose content no package has, leave the shared
 * folder (one node does it: the markers go in the same transaction). */
static void sweep_files(struct store *s)
{
  int64_t now = mono_ms();

  if (s->swept_at != 0 && now - s->swept_at < SHARED_SWEEP_MS)
    return;
  s->swept_at = now;
  db_tx_pkg_sweep(s->db, SHARED_PKG_GRACE_S, unlink_file, s);
}

int store_tx_open(struct store *s)
{
  struct db_changes c = {apply_doc, apply_pkg, s, s->pkg_seen, apply_gone, s->gone_seen};
  struct decision *q;

  if (!s->shared)
    return db_tx_begin(s->db);
  pthread_mutex_lock(&s->dec_mu);
  q = s->decisions;
  s->decisions = NULL;
  pthread_mutex_unlock(&s->dec_mu);
  s->running = q;
  if (db_tx_shared_begin(s->db, &c) < 0)
    return -1;
  sweep_files(s);
  /* oldest first */
  {
    struct decision *rev = NULL;
    while (q != NULL) {
      struct decision *n = q->next;
      q->next = rev;
      rev = q;
      q = n;
    }
    s->running = rev;
  }
  for (q = s->running; q != NULL; q = q->next)
    q->fn(q->arg);
  return 0;
}

void store_tx_closed(struct store *s, int committed)
{
  struct decision *q = s->running, *next;

  s->running = NULL;
  pthread_mutex_lock(&s->dec_mu);
  for (; q != NULL; q = next) {
    next = q->next; /* a waiter's d is gone once it sees its rc */
    if (q->async)
      free(q);
    else
      q->rc = committed ? 0 : -1;
  }
  pthread_cond_broadcast(&s->dec_done);
  pthread_mutex_unlock(&s->dec_mu);
}

int store_decide(struct store *s, void (*fn)(void *arg), void *arg)
{
  struct decision d = {fn, arg, 1, 0, NULL};

  if (!s->shared) {
    fn(arg);
    return store_sync(s);
  }
  pthread_mutex_lock(&s->dec_mu);
  d.next = s->decisions;
  s->decisions = &d;
  pthread_mutex_unlock(&s->dec_mu);
  /* the flush this asks for starts after the decision was queued, so it
   * takes it (or an earlier one did) */
  writer_sync(s->writer);
  pthread_mutex_lock(&s->dec_mu);
  while (d.rc == 1)
    pthread_cond_wait(&s->dec_done, &s->dec_mu);
  pthread_mutex_unlock(&s->dec_mu);
  return d.rc;
}

static void nothing(void *arg) { (void)arg; }

int store_decide_async(struct store *s, void (*fn)(void *arg), void *arg)
{
  struct decision *d;

  if (!s->shared || (d = calloc(1, sizeof(*d))) == NULL)
    return -1;
  *d = (struct decision){fn, arg, 1, 1, NULL};
  pthread_mutex_lock(&s->dec_mu);
  d->next = s->decisions;
  s->decisions = d;
  pthread_mutex_unlock(&s->dec_mu);
  /* a flush now rather than at the next interval; if the writer is
   * stopping, the decision is dropped with the queue at close */
  store_sync_async(s, nothing, NULL);
  return 0;
}

void store_decisions_drop(struct store *s)
{
  pthread_mutex_lock(&s->dec_mu);
  while (s->decisions != NULL) {
    struct decision *d = s->decisions;
    s->decisions = d->next;
    if (d->async)
      free(d);
    else
      d->rc = -1;
  }
  pthread_cond_broadcast(&s->dec_done);
  pthread_mutex_unlock(&s->dec_mu);
}

int store_job_claim(struct store *s, const char *job, const char *node, int lease_s)
{
  int rc;

  if (!s->shared)
    return 1;
  if ((rc = db_tx_job_claim(s->db, job, node, lease_s)) < 0)
    s->tx_failed = 1;
  return rc;
}
