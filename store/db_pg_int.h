/* db_pg_int.h: the inside of the PostgreSQL backend, shared by db_pg.c
 * (connection, schema, statements, health) and db_pg_rw.c (reads and
 * writes). Nothing else includes it. */
#ifndef DFOTAD_DB_PG_INT_H
#define DFOTAD_DB_PG_INT_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "db.h"

struct pg {
  struct db base; /* first: what db.c sees */
  PGconn *c;
  char *conninfo;
  pthread_mutex_t mu;
  int prepared;      /* the statements exist on this connection */
  int tx_failed;     /* a statement of the writer's transaction failed */
  int pending;       /* statements of the pipeline whose answers are not read */
  char last_tag[16]; /* the command tag of the last answer read */
  /* rows of the writer's transaction gathered into text[] literals, sent
   * as one statement (db_pg_rw.c) */
  int batch_stmt; /* S_DEV_PUT_MANY, S_EVENT_ADD_MANY, or 0: none */
  int batch_rows;
  struct {
    char *buf;
    size_t len, cap;
  } col[5];
  int64_t retry_at; /* monotonic ms of the next connection attempt */
  /* several nodes (db_pg_shared.c) */
  int shared;      /* [store] nodes = shared */
  int in_pipe;     /* the writer's transaction is in pipeline mode */
  int64_t seen;    /* change number the node has read up to (committed) */
  int64_t mark;    /* the same, as read in the transaction in progress */
  int mark_wanted; /* a tuple in the pipeline's answers is the mark */
  atomic_int up;   /* the last call reached the server */
  pthread_mutex_t err_mu;
  char why[200]; /* why it is down */
};

/* The statements, prepared on each connection (db_pg.c). */
enum stmt {
  S_PKG_INSERT,
  S_STATS_INSERT,
  S_PKG_DELETE,
  S_PKG_LOAD,
  S_SHA_USERS,
  S_STATS_PUT,
  S_DEV_PUT,
  S_DEV_DEL,
  S_EVENTS_DEL,
  S_EVENT_ADD,
  S_DEV_PUT_MANY,
  S_EVENT_ADD_MANY,
  S_EVENTS_TRIM,
  S_ROLLOUT_PUT,
  S_DEV_ALL,
  S_DEV_PAGE,
  S_DEV_PAGE_STATE,
  S_ROLLOUTS,
  S_EVENTS_PAGE,
  S_EVENTS_PAGE_DESC,
  S_CHANGES,
  S_PKG_AFTER,
  S_CHANGE_MARK,
  S_JOB_CLAIM,
  S_PKG_GONE_AFTER,
  S_PKG_OFFERS,
  S_PKG_REMOVE,
  S_PKG_SWEEP,
  S_COUNT
};

struct pg_stmt {
  const char *name, *sql;
  int n; /* parameters */
};
extern const struct pg_stmt pg_stmts[S_COUNT];

/* db_pg.c; d->mu held for each */
/* After a failed call: a connection gone bad is dropped (reconnected by
 * the next call). */
void pg_conn_check(struct pg *d);
/* Runs sql (no parameters); 0 when it returned want. */
int pg_exec(struct pg *d, const char *sql, ExecStatusType want);
/* The connection, made again when it was lost (at most once a second). 0
 * or -1. */
int pg_ensure(struct pg *d);

/* db_pg_rw.c: the db_ops of the backend */
int pg_package_insert(struct db *db, const struct db_package *p);
int pg_package_delete(struct db *db, const char *id);
int pg_package_load(struct db *db, int (*cb)(const struct db_package *p, void *arg), void *arg);
/* Row i of a result whose columns are those of S_PKG_LOAD (id, model,
 * from, to, name, size, sha256, created, requests, bytes_sent, downloads,
 * then anything else): the strings point into the result. */
struct db_package pg_package_row(const PGresult *r, int i);
/* Runs prepared statement s with vals; the result when its status is
 * want, else NULL (logged, the connection checked). */
PGresult *pg_run(struct pg *d, enum stmt s, const char *const *vals, ExecStatusType want);
int pg_sha256_users(struct db *db, const char *sha256);
int pg_tx_begin(struct db *db);
int pg_tx_end(struct db *db, int ok);
int pg_tx_stats(struct db *db, const struct db_stats *row);
int pg_tx_device_put(struct db *db, const char *id, const char *model, const char *state,
                     const char *rollout_id, const char *doc);
int pg_tx_device_delete(struct db *db, const char *id);
int pg_tx_event(struct db *db, const char *device_id, int64_t at_ms, const char *kind,
                const char *detail);
int pg_tx_rollout_put(struct db *db, const char *id, const char *state, const char *doc);
int pg_tx_events_trim(struct db *db, const char *device_id, int keep);
int pg_devices_load(struct db *db, db_doc_cb cb, void *arg);
int pg_devices_page(struct db *db, const char *state, const char *after, int limit, db_doc_cb cb,
                    void *arg);
int pg_rollouts_load(struct db *db, db_doc_cb cb, void *arg);
int pg_events_page(struct db *db, const char *device_id, int64_t after, int limit, int desc,
                   db_event_cb cb, void *arg);

/* db_pg_shared.c: several nodes */
/* At open: the change number up to which the node loads (d->seen). */
int pg_shared_start(struct pg *d, char *err, size_t errlen);
int pg_shared_turn(struct pg *d);
int pg_tx_shared_begin(struct db *db, const struct db_changes *c);
int64_t pg_shared_seen(struct db *db);
int pg_tx_job_claim(struct db *db, const char *job, const char *node, int lease_s);
/* A package's deletion on a shared node (pg_package_delete passes it on):
 * refused while a device holds an offer of it, else a removal marker. */
int pg_shared_package_delete(struct pg *d, const char *id);
int pg_tx_pkg_sweep(struct db *db, int grace_s, int (*cb)(const char *sha256, void *arg),
                    void *arg);
/* The writer's transaction goes into pipeline mode for its writes (at
 * once for a single node; after the reads of a shared begin). 0 or -1. */
int pg_pipe_enter(struct pg *d);

#endif
