/* store.h: persistence for dfotad: the package catalog (metadata in the
 * database, content in content-addressed files), uploads, and statistics
 * batched through one writer. Fronts and the admin API use only this
 * header; which database sits behind it is store.c's business.
 *
 * Threads: every function may be called from any thread. */
#ifndef DFOTAD_STORE_H
#define DFOTAD_STORE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/limits.h"

enum store_status {
  STORE_OK = 0,
  STORE_ERR = -1,    /* I/O or database failure, logged */
  STORE_EXISTS = -2, /* a package for that model, from and to exists */
  STORE_NOTFOUND = -3,
  STORE_TOO_LARGE = -4, /* upload over its limit */
  STORE_EMPTY = -5,     /* upload with no bytes */
  STORE_INVALID = -6,   /* bad metadata */
  STORE_IN_USE = -8,    /* devices hold offers of it (several nodes: deletion refused) */
};

enum package_status { PKG_OK = 0, PKG_DAMAGED };

/* A package as served. Immutable after creation but for the counters.
 * Reference-counted: whoever holds a reference may read map and fd until
 * package_unref(). A deleted package stays readable by those holders. */
struct package {
  char id[PKG_ID_LEN + 1];
  char *model, *from, *to, *name;
  char sha256[65];
  uint64_t size;
  int64_t created;                     /* unix seconds */
  uint64_t seq;                        /* creation order within the catalog */
  _Atomic(enum package_status) status; /* set damaged once; damage is set before */
  char *damage;                        /* why it is damaged, or NULL */
  int fd;                              /* read-only, O_CLOEXEC; -1 when damaged */
  const unsigned char *map;            /* the whole file, read-only; NULL when damaged */

  /* statistics: totals, updated lock-free on the hot path */
  _Atomic uint64_t requests, bytes_sent, downloads;
  uint64_t flushed_requests, flushed_bytes, flushed_downloads; /* writer only */

  atomic_uint refs;
  atomic_int deleted;
  _Atomic int64_t checked_at; /* monotonic ms of the last re-check; 0: none */
  atomic_int checking;  /* a re-check: 0 none, 1 queued or running, 2 running and asked again */
  struct package *next; /* catalog bucket chain */
};

struct package_meta {
  const char *model, *from, *to, *name;
};

struct store;
struct upload;

/* Opens (creating when needed) the store under state_dir: database,
 * migrations, package files checked against their recorded size and hash,
 * leftovers of interrupted uploads removed. Starts the writer, which
 * commits statistics every flush_interval_ms. 0, or -1 with err filled. */
int store_open(const char *state_dir, int flush_interval_ms, struct store **out, char *err,
               size_t errlen);
/* The same, with the database on PostgreSQL when postgresql (a libpq
 * connection string or URI) is neither NULL nor empty; package contents
 * stay files under state_dir. */
int store_open_with(const char *state_dir, const char *postgresql, int flush_interval_ms,
                    struct store **out, char *err, size_t errlen);
/* The same for one of several nodes sharing a PostgreSQL database
 * (shared: [store] nodes = shared; needs postgresql; package files in a
 * folder the nodes share, state_dir/packages). */
int store_open_nodes(const char *state_dir, const char *postgresql, int shared,
                     int flush_interval_ms, struct store **out, char *err, size_t errlen);
/* "sqlite" or "postgresql" */
const char *store_backend(struct store *s);
/* "libpq VERSION" when this dfotad can use PostgreSQL, else NULL. */
const char *store_pg_version(void);
/* Whether the database answers now and the writer's last commit went
 * through: 1, or 0 with msg saying why. The store reconnects by itself;
 * meanwhile the writer's commits fail and are retried (store_sync says
 * so). */
int store_reachable(struct store *s, char *msg, size_t len);
/* Seconds a device is asked to wait (503, Retry-After) while the database
 * does not answer: no state it could be told would be durable. */
#define STORE_RETRY_AFTER 5
/* Flushes statistics and closes. Packages still referenced stay valid. */
void store_close(struct store *s);

/* The package with that id, with a reference the caller must drop, or NULL. */
struct package *store_package_get(struct store *s, const char *id);
void package_ref(struct package *p);
void package_unref(struct package *p);

/* Calls cb for each package matching the filters (NULL: any), ordered by
 * creation; stops early when cb returns non-zero. The package is valid only
 * during the call. */
typedef int (*package_cb)(struct package *p, void *arg);
void store_package_foreach(struct store *s, const char *model, const char *from, const char *to,
                           package_cb cb, void *arg);

/* Deletes the package: it disappears from the catalog at once; transfers
 * holding a reference finish; its file goes when no package uses it. */
int store_package_delete(struct store *s, const char *id);

/* Uploads: begin, write chunks, then finish or abort. The content is
 * streamed to a temporary file and hashed; finish fsyncs it, moves it into
 * place and records it, so the package is visible only once complete.
 * begin fails with STORE_EXISTS or STORE_INVALID before any byte is read. */
int store_upload_begin(struct store *s, const struct package_meta *meta, uint64_t max_size,
                       struct upload **out);
int store_upload_write(struct upload *u, const void *data, size_t len);
/* Consumes u. On STORE_OK *out holds a referenced package. */
int store_upload_finish(struct upload *u, struct package **out);
/* Consumes u; removes the temporary file. */
void store_upload_abort(struct upload *u);

/* Hot path: counts one response (GET or HEAD) as it ends, then, once known,
 * the body bytes that reached the client; a response that delivered the
 * package's last byte counts as a download. */
void store_record_request(struct package *p);
void store_record_delivered(struct package *p, uint64_t bytes, int reached_end);

/* Makes the writer commit now and waits for it: 0 when that commit went
 * through, -1 when it failed (the database unreachable: what it held is
 * written again at the next flush). */
int store_sync(struct store *s);
/* Makes the writer commit now without waiting: done(arg) runs on the
 * writer's thread once the commit is done (through or not: ask
 * store_reachable). 0, or -1 (done never runs). */
int store_sync_async(struct store *s, void (*done)(void *arg), void *arg);

/* Checks the database (PRAGMA integrity_check or equivalent): 0 when ok. */
int store_check(struct store *s, char *msg, size_t len);

/* ---- fleet persistence --------------------------------------------------
 * Devices and rollouts live in memory in the fleet logic, which persists
 * them as documents. Its flush hook runs in the writer thread, inside the
 * writer's transaction (every flush interval, and at once on store_sync),
 * and writes with the store_tx_* calls, which are valid only there. done()
 * then says whether that transaction committed. */
typedef void (*store_flush_hook)(struct store *s, void *arg);

/* ---- several nodes (shared.c) ---------------------------------------------
 * Whether this node shares its database with others. */
int store_shared(const struct store *s);
/* What another node wrote, applied at the start of each writer transaction
 * (inside the database's lock): kind 'r' a rollout's document, 'd' a
 * device's, 'x' a device removed (doc ""). */
typedef void (*store_apply_hook)(void *arg, char kind, const char *id, const char *doc);
void store_set_apply_hook(struct store *s, store_apply_hook apply, void *arg);
/* Runs fn(arg) on the writer's thread inside its next transaction, after
 * the other nodes' changes are applied and before the flush, and waits for
 * the commit: 0 when it committed, -1 when fn did not run or its changes
 * did not commit (the database unreachable). On one node: fn(arg) here,
 * then store_sync. fn must not wait for the writer (store_sync returns at
 * once on the writer's thread). */
int store_decide(struct store *s, void (*fn)(void *arg), void *arg);
/* The same without waiting (shared nodes only): fn(arg) runs in the
 * writer's next transaction, which starts at once; nobody learns whether
 * it committed. 0, or -1 (out of memory: fn never runs). */
int store_decide_async(struct store *s, void (*fn)(void *arg), void *arg);
/* In a decision (on the writer's thread, in its transaction): claims or
 * renews for node a rollout's job ("ROLLOUT/start" or "ROLLOUT/sweep")
 * for lease_s seconds, unless
 * another node's claim is current. 1 held (always on one node), 0
 * another node holds it, -1 the database failed (nothing commits). */
int store_job_claim(struct store *s, const char *job, const char *node, int lease_s);
void store_set_flush_hook(struct store *s, store_flush_hook hook,
                          void (*done)(void *arg, int committed), void *arg);
void store_tx_device_put(struct store *s, const char *id, const char *model, const char *state,
                         const char *rollout_id, const char *doc);
void store_tx_device_delete(struct store *s, const char *id); /* and its events */
void store_tx_event(struct store *s, const char *device_id, int64_t at_ms, const char *kind,
                    const char *detail);
void store_tx_rollout_put(struct store *s, const char *id, const char *state, const char *doc);
/* Keeps the newest `keep` events of a device, the older go. */
void store_tx_events_trim(struct store *s, const char *device_id, int keep);

/* Loading, at start: cb(key, doc, arg) per row; non-zero stops. */
typedef int (*store_doc_cb)(const char *key, const char *doc, void *arg);
int store_devices_load(struct store *s, store_doc_cb cb, void *arg);
int store_rollouts_load(struct store *s, store_doc_cb cb, void *arg);
/* A page of devices by id after `after` ("": from the first), at most
 * limit, in state `state` (NULL: any): cb(id, doc, arg) per device, in the
 * database's lock (call nothing of the store from it). The number of
 * devices, 0 at the end, or -1. */
int store_devices_page(struct store *s, const char *state, const char *after, int limit,
                       store_doc_cb cb, void *arg);
/* One device's document by id (the fleet's ids: bytes '!'..'}' only, at
 * most 64), read now: 1 with *doc set (the caller frees it), 0 when there
 * is no such device, -1 on a database error. */
int store_device_get(struct store *s, const char *id, char **doc);
/* A device's events after event id `after` (0: from the first), oldest
 * first, at most limit: cb(id, kind, detail_json, arg); non-zero stops.
 * newest_first: newest first instead, the events before event id `after`
 * (0: from the newest). */
typedef int (*store_event_cb)(int64_t id, const char *kind, const char *detail, void *arg);
int store_events_page(struct store *s, const char *device_id, int64_t after, int limit,
                      int newest_first, store_event_cb cb, void *arg);

/* The writer's commits so far and the duration of the last one. */
void store_writer_stats(struct store *s, uint64_t *commits, uint64_t *last_commit_us);

/* Hashes a package's file again: 0 when it matches, -1 when damaged (it is
 * then marked damaged and no longer served; transfers in flight finish).
 * Takes as long as reading the file: not for request threads. */
int store_package_verify(struct store *s, const char *id);

/* Queues a re-check of a package on the store's own worker, unless one is
 * queued or running, or the last one ended less than min_interval_ms ago.
 * 1 when queued. A package found damaged is passed to the damage hook,
 * from the worker thread. */
int store_package_recheck(struct store *s, const char *id, int min_interval_ms);
typedef void (*store_damage_cb)(void *arg, const char *package_id);
void store_set_damage_hook(struct store *s, store_damage_cb cb, void *arg);

#endif
