/* store_int.h: the store's inside, shared by store.c (catalog, files,
 * statistics, persistence) and upload.c (uploads and deletions). */
#ifndef DFOTAD_STORE_INT_H
#define DFOTAD_STORE_INT_H

#include <openssl/evp.h>
#include <pthread.h>

#include "db.h"
#include "store.h"

#define BUCKETS 1024

struct store {
  char *dir, *pkg_dir, *tmp_dir;
  struct db *db;
  struct writer *writer;
  pthread_rwlock_t lock; /* catalog */
  struct package *bucket[BUCKETS];
  pthread_mutex_t upload_mu; /* serialises finish/delete on files */
  store_flush_hook hook;     /* the fleet's part of each flush */
  void (*hook_done)(void *arg, int committed);
  void *hook_arg;
  int tx_failed; /* a store_tx_* call failed in this flush */
  _Atomic uint64_t commits, last_commit_us;
  uint64_t seq;            /* creation order of catalog entries */
  struct recheck *recheck; /* recheck.c */
  /* the last flush committed (or had nothing to) */
  atomic_int last_flush_ok;
  /* several nodes (shared.c) */
  int shared;
  store_apply_hook apply;
  void *apply_arg;
  int64_t pkg_seen;           /* packages read from the others up to this seq */
  int64_t gone_seen;          /* package removals read up to this seq */
  int64_t swept_at;           /* monotonic ms of the last sweep of removed packages' files */
  pthread_mutex_t dec_mu;     /* the queue of decisions */
  pthread_cond_t dec_done;    /* a transaction with decisions ended */
  struct decision *decisions; /* queued, newest first */
  struct decision *running;   /* taken by the transaction in progress */
};

struct upload {
  struct store *s;
  char *model, *from, *to, *name;
  char tmp_path[4096];
  int fd;
  uint64_t size, max;
  EVP_MD_CTX *md;
};

int fsync_dir(const char *dir);
/* shared.c: the writer's transaction in flush_all: opened (on several
 * nodes: with the others' changes applied and the queued decisions run),
 * then closed (the decisions learn whether it committed). */
int store_tx_open(struct store *s);
void store_tx_closed(struct store *s, int committed);
/* At close, after the writer's last transaction: queued decisions nobody
 * waits for (store_decide_async) are dropped without running. */
void store_decisions_drop(struct store *s);
/* recheck.c */
int recheck_init(struct store *s);
void recheck_stop(struct store *s);
/* A catalog entry from a database row; its file is not opened yet. */
struct package *package_new(const struct db_package *r);
/* Opens (and with verify, hashes) the package's file; marks it damaged on
 * failure. */
void package_open_file(struct store *s, struct package *p, int verify);
/* s->lock held for writing */
void catalog_insert(struct store *s, struct package *p);
struct package *catalog_remove(struct store *s, const char *id);

#endif
