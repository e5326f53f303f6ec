/* db_pg_rw.c: the PostgreSQL backend's reads and writes (db_pg.c has the
 * connection, the schema and the statements): packages, the writer's
 * transaction as one pipeline, and the pages the fleet loads. */
#include "autoconfig.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "db.h"
#include "db_pg_int.h"
#include "store.h"

/* Runs a prepared statement; the result (the caller clears it), or NULL
 * after logging why. */
PGresult *pg_run(struct pg *d, enum stmt s, const char *const *vals, ExecStatusType want)
{
  PGresult *r = PQexecPrepared(d->c, pg_stmts[s].name, pg_stmts[s].n, vals, NULL, NULL, 0);

  if (PQresultStatus(r) != want) {
    log_error("database: %s: %s", pg_stmts[s].name, PQerrorMessage(d->c));
    PQclear(r);
    pg_conn_check(d);
    return NULL;
  }
  return r;
}

static int run_cmd(struct pg *d, enum stmt s, const char *const *vals)
{
  PGresult *r = pg_run(d, s, vals, PGRES_COMMAND_OK);

  PQclear(r);
  return r != NULL ? 0 : -1;
}

static int is_sqlstate(const PGresult *r, const char *code)
{
  const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  return s != NULL && strcmp(s, code) == 0;
}

/* ---- packages ---------------------------------------------------------- */

int pg_package_insert(struct db *db, const struct db_package *p)
{
  struct pg *d = (struct pg *)db;
  char size[24], created[24];
  const char *vals[8] = {p->id, p->model, p->from, p->to, p->name, size, p->sha256, created};
  PGresult *r;
  int rc = STORE_ERR;

  snprintf(size, sizeof(size), "%llu", (unsigned long long)p->size);
  snprintf(created, sizeof(created), "%lld", (long long)p->created);
  pthread_mutex_lock(&d->mu);
  if (pg_ensure(d) < 0 || pg_exec(d, "BEGIN", PGRES_COMMAND_OK) < 0)
    goto out;
  /* several nodes: the package's number (packages.seq) is taken in the
   * nodes' turn, or a node reading the packages added after its last one
   * could pass this number while it is not committed, and never add the
   * package to its catalog */
  if (d->shared && pg_shared_turn(d) < 0)
    goto rollback;
  r = PQexecPrepared(d->c, pg_stmts[S_PKG_INSERT].name, 8, vals, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    const char *con = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
    if (is_sqlstate(r, "23505") && con != NULL && strcmp(con, "packages_pkey") == 0)
      rc = DB_ID_CLASH;
    else if (is_sqlstate(r, "23505"))
      rc = STORE_EXISTS;
    else
      log_error("database: insert package: %s", PQerrorMessage(d->c));
    PQclear(r);
    pg_conn_check(d);
    goto rollback;
  }
  PQclear(r);
  if (run_cmd(d, S_STATS_INSERT, vals) < 0 || pg_exec(d, "COMMIT", PGRES_COMMAND_OK) < 0)
    goto rollback;
  rc = STORE_OK;
  goto out;
rollback:
  if (d->c != NULL && PQstatus(d->c) == CONNECTION_OK)
    pg_exec(d, "ROLLBACK", PGRES_COMMAND_OK);
out:
  pthread_mutex_unlock(&d->mu);
  return rc;
}

int pg_package_delete(struct db *db, const char *id)
{
  struct pg *d = (struct pg *)db;
  PGresult *r = NULL;
  int rc = STORE_ERR;

  pthread_mutex_lock(&d->mu);
  if (d->shared) {
    rc = pg_shared_package_delete(d, id);
    pthread_mutex_unlock(&d->mu);
    return rc;
  }
  if (pg_ensure(d) == 0 && (r = pg_run(d, S_PKG_DELETE, &id, PGRES_COMMAND_OK)) != NULL)
    rc = strcmp(PQcmdTuples(r), "0") != 0 ? STORE_OK : STORE_NOTFOUND;
  PQclear(r);
  pthread_mutex_unlock(&d->mu);
  return rc;
}

static uint64_t u64(const PGresult *r, int row, int col)
{
  return strtoull(PQgetvalue(r, row, col), NULL, 10);
}

struct db_package pg_package_row(const PGresult *r, int i)
{
  struct db_package p = {
      .id = PQgetvalue(r, i, 0),
      .model = PQgetvalue(r, i, 1),
      .from = PQgetvalue(r, i, 2),
      .to = PQgetvalue(r, i, 3),
      .name = PQgetvalue(r, i, 4),
      .size = u64(r, i, 5),
      .sha256 = PQgetvalue(r, i, 6),
      .created = strtoll(PQgetvalue(r, i, 7), NULL, 10),
      .requests = u64(r, i, 8),
      .bytes_sent = u64(r, i, 9),
      .downloads = u64(r, i, 10),
  };
  return p;
}

int pg_package_load(struct db *db, int (*cb)(const struct db_package *p, void *arg), void *arg)
{
  struct pg *d = (struct pg *)db;
  PGresult *r = NULL;
  int rc = -1;

  pthread_mutex_lock(&d->mu);
  if (pg_ensure(d) == 0 && (r = pg_run(d, S_PKG_LOAD, NULL, PGRES_TUPLES_OK)) != NULL) {
    rc = 0;
    for (int i = 0; i < PQntuples(r); i++) {
      struct db_package p = pg_package_row(r, i);
      if (cb(&p, arg) != 0) {
        rc = -1;
        break;
      }
    }
  }
  PQclear(r);
  pthread_mutex_unlock(&d->mu);
  return rc;
}

int pg_sha256_users(struct db *db, const char *sha256)
{
  struct pg *d = (struct pg *)db;
  PGresult *r = NULL;
  int n = -1;

  pthread_mutex_lock(&d->mu);
  if (pg_ensure(d) == 0 && (r = pg_run(d, S_SHA_USERS, &sha256, PGRES_TUPLES_OK)) != NULL)
    n = atoi(PQgetvalue(r, 0, 0));
  PQclear(r);
  pthread_mutex_unlock(&d->mu);
  return n;
}

/* ---- the writer's transaction ------------------------------------------ */

/* The writer's transaction is one pipeline (libpq's pipeline mode): its
 * writes are sent without waiting for each answer, and the answers read a
 * batch at a time (so that neither side's buffers fill up), then at the
 * commit. A write the server refuses is known only then: the transaction
 * is rolled back and tx_end says so, as a failed commit. */
#define PIPE_BATCH 256

/* Reads the answers to the statements sent so far (each: its result, then
 * NULL). The first refusal fails the transaction. d->mu held. */
static void pipe_read(struct pg *d)
{
  while (d->pending > 0) {
    PGresult *r = PQgetResult(d->c);
    ExecStatusType st;

    if (r == NULL) { /* the connection broke */
      d->tx_failed = 1;
      d->pending = 0;
      pg_conn_check(d);
      d->prepared = 0; /* start afresh */
      return;
    }
    st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
      snprintf(d->last_tag, sizeof(d->last_tag), "%s", PQcmdStatus(r));
      /* the only query of the pipeline: a shared transaction's mark */
      if (st == PGRES_TUPLES_OK && d->mark_wanted && PQntuples(r) == 1)
        d->mark = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    } else {
      if (!d->tx_failed && st != PGRES_PIPELINE_ABORTED)
        log_error("database: the writer's transaction: %s", PQresultErrorMessage(r));
      d->tx_failed = 1;
      d->last_tag[0] = '\0';
    }
    PQclear(r);
    while ((r = PQgetResult(d->c)) != NULL) /* the NULL that ends it */
      PQclear(r);
    d->pending--;
  }
}

static int batch_flush(struct pg *d);

static int pipe_send(struct pg *d, const char *sql)
{
  if (pg_pipe_enter(d) < 0)
    return -1;
  if (!PQsendQueryParams(d->c, sql, 0, NULL, NULL, NULL, NULL, 0)) {
    d->tx_failed = 1;
    return -1;
  }
  d->pending++;
  return 0;
}

int pg_pipe_enter(struct pg *d)
{
  if (d->in_pipe)
    return 0;
  if (!PQenterPipelineMode(d->c)) {
    d->tx_failed = 1;
    return -1;
  }
  d->in_pipe = 1;
  return 0;
}

int pg_tx_begin(struct db *db)
{
  struct pg *d = (struct pg *)db;

  pthread_mutex_lock(&d->mu);
  d->in_pipe = 0;
  d->mark_wanted = 0;
  if (pg_ensure(d) < 0 || pg_pipe_enter(d) < 0) {
    pthread_mutex_unlock(&d->mu);
    return -1;
  }
  d->tx_failed = 0;
  d->pending = 0;
  d->batch_rows = 0;
  for (int i = 0; i < 5; i++)
    d->col[i].len = 0;
  pipe_send(d, "BEGIN");
  return 0;
}

int pg_tx_end(struct db *db, int ok)
{
  struct pg *d = (struct pg *)db;
  int commit, rc = -1;
  PGresult *r;

  if (ok)
    batch_flush(d);
  commit = ok && !d->tx_failed;

  if (d->shared && commit) {
    /* how far this node has seen, once its writes count: under the
     * fleet's transaction lock nobody else takes a number meanwhile */
    d->mark_wanted = 1;
    pipe_send(d, pg_stmts[S_CHANGE_MARK].sql);
  }
  pipe_send(d, commit ? "COMMIT" : "ROLLBACK");
  if (PQpipelineSync(d->c)) {
    pipe_read(d);
    /* a transaction that failed inside answers COMMIT with ROLLBACK */
    rc = commit && !d->tx_failed && strcmp(d->last_tag, "COMMIT") == 0 ? 0 : -1;
    if ((r = PQgetResult(d->c)) != NULL && PQresultStatus(r) != PGRES_PIPELINE_SYNC)
      rc = -1;
    PQclear(r);
  } else {
    d->tx_failed = 1;
  }
  if (rc == 0 && d->shared && d->mark_wanted)
    d->seen = d->mark;
  d->mark_wanted = 0;
  d->in_pipe = 0;
  if (!PQexitPipelineMode(d->c)) {
    log_error("database: cannot leave pipeline mode: %s", PQerrorMessage(d->c));
    d->prepared = 0; /* a new connection next time */
    rc = -1;
  } else if (PQtransactionStatus(d->c) != PQTRANS_IDLE) {
    pg_exec(d, "ROLLBACK", PGRES_COMMAND_OK); /* a failed transaction block */
  }
  if (rc < 0) {
    if (commit)
      log_error("database: commit failed");
    pg_conn_check(d);
  }
  pthread_mutex_unlock(&d->mu);
  return rc;
}

/* A write of the writer's transaction, sent without waiting; once one
 * failed, what follows is not sent. */
static int send_stmt(struct pg *d, enum stmt s, const char *const *vals)
{
  if (d->tx_failed || pg_pipe_enter(d) < 0)
    return -1;
  if (!PQsendQueryPrepared(d->c, pg_stmts[s].name, pg_stmts[s].n, vals, NULL, NULL, 0)) {
    log_error("database: %s: %s", pg_stmts[s].name, PQerrorMessage(d->c));
    d->tx_failed = 1;
    pg_conn_check(d);
    return -1;
  }
  if (++d->pending >= PIPE_BATCH) {
    if (!PQsendFlushRequest(d->c) || PQflush(d->c) != 0) {
      d->tx_failed = 1;
      return -1;
    }
    pipe_read(d);
  }
  return d->tx_failed ? -1 : 0;
}

#define BATCH_ROWS 1000 /* rows in one batched statement */

/* Appends an element to column i's text[] literal: NULL, or the value
 * quoted with its quotes and backslashes escaped. -1 when out of memory. */
static int batch_elem(struct pg *d, int i, const char *v)
{
  size_t need = (v ? 2 * strlen(v) : 0) + 8;
  char *o;

  if (d->col[i].len + need > d->col[i].cap) {
    size_t cap = (d->col[i].len + need) * 2;
    char *nb = realloc(d->col[i].buf, cap);
    if (nb == NULL)
      return -1;
    d->col[i].buf = nb;
    d->col[i].cap = cap;
  }
  o = d->col[i].buf + d->col[i].len;
  *o++ = d->batch_rows == 0 ? '{' : ',';
  if (v == NULL) {
    memcpy(o, "NULL", 4);
    o += 4;
  } else {
    *o++ = '"';
    for (; *v; v++) {
      if (*v == '"' || *v == '\\')
        *o++ = '\\';
      *o++ = *v;
    }
    *o++ = '"';
  }
  d->col[i].len = (size_t)(o - d->col[i].buf);
  return 0;
}

/* Sends the rows gathered as one statement. */
static int batch_flush(struct pg *d)
{
  const char *vals[5] = {NULL, NULL, NULL, NULL, NULL};
  int n = pg_stmts[d->batch_stmt].n, rc;

  if (d->batch_rows == 0)
    return d->tx_failed ? -1 : 0;
  for (int i = 0; i < n; i++) {
    d->col[i].buf[d->col[i].len] = '}'; /* room was kept */
    d->col[i].buf[d->col[i].len + 1] = '\0';
    vals[i] = d->col[i].buf;
  }
  rc = send_stmt(d, (enum stmt)d->batch_stmt, vals);
  for (int i = 0; i < n; i++)
    d->col[i].len = 0;
  d->batch_rows = 0;
  return rc;
}

/* Adds a row to the batch of statement s (sending the batch of another
 * statement first, so that the writes keep their order). */
static int batch_add(struct pg *d, enum stmt s, const char *const *vals)
{
  if (d->tx_failed)
    return -1;
  if (d->batch_stmt != (int)s && batch_flush(d) < 0)
    return -1;
  d->batch_stmt = (int)s;
  for (int i = 0; i < pg_stmts[s].n; i++)
    if (batch_elem(d, i, vals[i]) < 0) {
      log_error("database: out of memory for a batch");
      d->tx_failed = 1;
      return -1;
    }
  if (++d->batch_rows >= BATCH_ROWS)
    return batch_flush(d);
  return 0;
}

/* Any other write: the batch gathered so far goes first. */
static int tx_cmd(struct pg *d, enum stmt s, const char *const *vals)
{
  if (d->tx_failed || batch_flush(d) < 0)
    return -1;
  return send_stmt(d, s, vals);
}

int pg_tx_stats(struct db *db, const struct db_stats *row)
{
  struct pg *d = (struct pg *)db;
  char a[24], b[24], c[24];
  const char *vals[4] = {row->id, a, b, c};

  snprintf(a, sizeof(a), "%llu", (unsigned long long)row->requests);
  snprintf(b, sizeof(b), "%llu", (unsigned long long)row->bytes_sent);
  snprintf(c, sizeof(c), "%llu", (unsigned long long)row->downloads);
  return tx_cmd(d, S_STATS_PUT, vals);
}

int pg_tx_device_put(struct db *db, const char *id, const char *model, const char *state,
                     const char *rollout_id, const char *doc)
{
  const char *vals[5] = {id, model, state, rollout_id, doc};
  return batch_add((struct pg *)db, S_DEV_PUT_MANY, vals);
}

int pg_tx_device_delete(struct db *db, const char *id)
{
  struct pg *d = (struct pg *)db;

  if (tx_cmd(d, S_DEV_DEL, &id) < 0)
    return -1;
  return tx_cmd(d, S_EVENTS_DEL, &id);
}

int pg_tx_event(struct db *db, const char *device_id, int64_t at_ms, const char *kind,
                const char *detail)
{
  char at[24];
  const char *vals[4] = {device_id, at, kind, detail};

  snprintf(at, sizeof(at), "%lld", (long long)at_ms);
  return batch_add((struct pg *)db, S_EVENT_ADD_MANY, vals);
}

int pg_tx_rollout_put(struct db *db, const char *id, const char *state, const char *doc)
{
  const char *vals[3] = {id, state, doc};
  return tx_cmd((struct pg *)db, S_ROLLOUT_PUT, vals);
}

int pg_tx_events_trim(struct db *db, const char *device_id, int keep)
{
  char k[16];
  const char *vals[2] = {device_id, k};

  snprintf(k, sizeof(k), "%d", keep < 0 ? 0 : keep);
  return tx_cmd((struct pg *)db, S_EVENTS_TRIM, vals);
}

/* ---- reading ------------------------------------------------------------ */

/* Runs a (key, doc) query; cb per row until it returns non-zero. single:
 * rows streamed one at a time (a whole table), else one result. The number
 * of rows, or -1. */
static int query_docs(struct pg *d, enum stmt s, const char *const *vals, int single, db_doc_cb cb,
                      void *arg)
{
  PGresult *r;
  int n = 0, stop = 0, failed = 0;

  pthread_mutex_lock(&d->mu);
  if (pg_ensure(d) < 0 ||
      !PQsendQueryPrepared(d->c, pg_stmts[s].name, pg_stmts[s].n, vals, NULL, NULL, 0)) {
    if (d->c != NULL)
      pg_conn_check(d);
    pthread_mutex_unlock(&d->mu);
    return -1;
  }
  if (single)
    PQsetSingleRowMode(d->c);
  /* every result is read, also after a stop, so the connection is ready */
  while ((r = PQgetResult(d->c)) != NULL) {
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_SINGLE_TUPLE || st == PGRES_TUPLES_OK) {
      for (int i = 0; i < PQntuples(r) && !stop; i++) {
        n++;
        stop = cb(PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), arg) != 0;
      }
    } else {
      log_error("database: %s: %s", pg_stmts[s].name, PQerrorMessage(d->c));
      failed = 1;
    }
    PQclear(r);
  }
  if (failed)
    pg_conn_check(d);
  pthread_mutex_unlock(&d->mu);
  return failed ? -1 : n;
}

int pg_devices_load(struct db *db, db_doc_cb cb, void *arg)
{
  return query_docs((struct pg *)db, S_DEV_ALL, NULL, 1, cb, arg) < 0 ? -1 : 0;
}

int pg_devices_page(struct db *db, const char *state, const char *after, int limit, db_doc_cb cb,
                    void *arg)
{
  char lim[16];
  const char *vals[3] = {after, lim, state};

  snprintf(lim, sizeof(lim), "%d", limit);
  return query_docs((struct pg *)db, state != NULL ? S_DEV_PAGE_STATE : S_DEV_PAGE, vals, 0, cb,
                    arg);
}

int pg_rollouts_load(struct db *db, db_doc_cb cb, void *arg)
{
  return query_docs((struct pg *)db, S_ROLLOUTS, NULL, 0, cb, arg) < 0 ? -1 : 0;
}

int pg_events_page(struct db *db, const char *device_id, int64_t after, int limit, int desc,
                   db_event_cb cb, void *arg)
{
  struct pg *d = (struct pg *)db;
  char a[24], l[16];
  const char *vals[3] = {device_id, a, l};
  PGresult *r = NULL;
  int rc = -1;

  snprintf(a, sizeof(a), "%lld", (long long)after);
  snprintf(l, sizeof(l), "%d", limit);
  pthread_mutex_lock(&d->mu);
  if (pg_ensure(d) == 0 &&
      (r = pg_run(d, desc ? S_EVENTS_PAGE_DESC : S_EVENTS_PAGE, vals, PGRES_TUPLES_OK)) != NULL) {
    rc = 0;
    for (int i = 0; i < PQntuples(r); i++)
      if (cb(strtoll(PQgetvalue(r, i, 0), NULL, 10), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
             arg) != 0)
        break;
  }
  PQclear(r);
  pthread_mutex_unlock(&d->mu);
  return rc;
}
