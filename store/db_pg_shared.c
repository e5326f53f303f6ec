/* db_pg_shared.c: several dfotad nodes on one PostgreSQL database
 * ([store] nodes = shared).
 *
 * Every node keeps the fleet in memory as a single node does, but no node
 * decides from a copy that may be stale: each writer transaction first
 * takes one transaction-level advisory lock (so the nodes' transactions
 * take turns), then reads what the other nodes committed since this
 * node's last transaction (every device and rollout write takes a number
 * from the sequence dfotad_change; removed devices leave a numbered row in
 * devices_removed), applies it, and only then decides and writes. What a
 * device is told is decided inside such a transaction and committed before
 * the answer. Reads that decide nothing (admin listings, token look-ups)
 * use the copy, which is at most one flush interval old. */
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

#define SHARED_TX_LOCK 745207005 /* pg_advisory_xact_lock key: the nodes' writer transactions */

/* Inside a transaction (d->mu held): waits for the nodes' turn, held until
 * the transaction ends. Every write that takes a number other nodes read
 * by (dfotad_change, packages.seq, packages_removed.seq) is made in it, so
 * that a node holding the turn reads every number up to the last one taken
 * as committed or gone, never one still to come. 0 or -1. */
int pg_shared_turn(struct pg *d)
{
  char sql[64];

  snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(%d)", SHARED_TX_LOCK);
  return pg_exec(d, sql, PGRES_TUPLES_OK);
}

int pg_shared_start(struct pg *d, char *err, size_t errlen)
{
  PGresult *r = NULL;
  int rc = -1;

  /* the node loads everything after this point; what others write while
   * it loads is read again at its first transaction (applied twice:
   * harmless, a record is replaced by the same record). The mark is read
   * in the nodes' turn: numbers are taken from the sequence only under
   * that lock, so once this node holds it every number up to the mark is
   * committed (or rolled back) and the load sees its record. Read outside
   * the lock, the mark could pass the numbers of another node's
   * transaction still open, whose records the load then misses and the
   * first transaction (reading after the mark) never reads: a stale device
   * on this node, its offer's token unknown (404), its stale record
   * flushed back over the newer one at its next change. */
  if (pg_exec(d, "BEGIN", PGRES_COMMAND_OK) == 0 && pg_shared_turn(d) == 0) {
    r = PQexec(d->c, pg_stmts[S_CHANGE_MARK].sql);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
      d->seen = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
      rc = 0;
    }
  }
  if (rc == 0 && pg_exec(d, "COMMIT", PGRES_COMMAND_OK) < 0)
    rc = -1;
  if (rc < 0) {
    snprintf(err, errlen, "PostgreSQL: cannot read the change sequence: %s", PQerrorMessage(d->c));
    err[strcspn(err, "\n")] = '\0';
    if (PQtransactionStatus(d->c) == PQTRANS_INERROR ||
        PQtransactionStatus(d->c) == PQTRANS_INTRANS)
      pg_exec(d, "ROLLBACK", PGRES_COMMAND_OK);
  }
  PQclear(r);
  return rc;
}

int64_t pg_shared_seen(struct db *db)
{
  struct pg *d = (struct pg *)db;
  int64_t v;

  pthread_mutex_lock(&d->mu);
  v = d->seen;
  pthread_mutex_unlock(&d->mu);
  return v;
}

static int read_changes(struct pg *d, const struct db_changes *c)
{
  char after[24], pafter[24];
  const char *v1[1] = {after}, *v2[1] = {pafter};
  PGresult *r;
  int rc = 0;

  snprintf(after, sizeof(after), "%lld", (long long)d->seen);
  if ((r = pg_run(d, S_CHANGES, v1, PGRES_TUPLES_OK)) == NULL)
    return -1;
  for (int i = 0; i < PQntuples(r) && rc == 0; i++)
    if (c->doc != NULL)
      rc = c->doc(PQgetvalue(r, i, 0)[0], PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), c->arg);
  PQclear(r);
  if (rc != 0 || c->pkg == NULL)
    return rc;
  snprintf(pafter, sizeof(pafter), "%lld", (long long)c->pkg_after);
  if ((r = pg_run(d, S_PKG_AFTER, v2, PGRES_TUPLES_OK)) == NULL)
    return -1;
  for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
    struct db_package p = pg_package_row(r, i);
    rc = c->pkg(&p, strtoll(PQgetvalue(r, i, 11), NULL, 10), c->arg);
  }
  PQclear(r);
  if (rc != 0 || c->pkg_gone == NULL)
    return rc;
  snprintf(pafter, sizeof(pafter), "%lld", (long long)c->gone_after);
  if ((r = pg_run(d, S_PKG_GONE_AFTER, v2, PGRES_TUPLES_OK)) == NULL)
    return -1;
  for (int i = 0; i < PQntuples(r) && rc == 0; i++)
    rc = c->pkg_gone(PQgetvalue(r, i, 0), strtoll(PQgetvalue(r, i, 1), NULL, 10), c->arg);
  PQclear(r);
  return rc;
}

int pg_tx_shared_begin(struct db *db, const struct db_changes *c)
{
  struct pg *d = (struct pg *)db;

  pthread_mutex_lock(&d->mu);
  d->in_pipe = 0;
  d->mark_wanted = 0;
  d->tx_failed = 0;
  d->pending = 0;
  d->batch_rows = 0;
  for (int i = 0; i < 5; i++)
    d->col[i].len = 0;
  if (pg_ensure(d) < 0 || pg_exec(d, "BEGIN", PGRES_COMMAND_OK) < 0)
    goto fail;
  /* the nodes' transactions one at a time: what this one reads next is
   * all there is, and nobody writes until it commits */
  if (pg_shared_turn(d) < 0 || read_changes(d, c) < 0) {
    if (d->c != NULL && PQstatus(d->c) == CONNECTION_OK)
      pg_exec(d, "ROLLBACK", PGRES_COMMAND_OK);
    goto fail;
  }
  /* d->mu stays held until pg_tx_end, as after pg_tx_begin */
  return 0;
fail:
  pthread_mutex_unlock(&d->mu);
  return -1;
}

/* d->mu is held by the writer's transaction (pg_tx_shared_begin), which
 * is not in pipeline mode until the flush writes: a plain statement. */
int pg_tx_job_claim(struct db *db, const char *job, const char *node, int lease_s)
{
  struct pg *d = (struct pg *)db;
  char secs[16];
  const char *v[3] = {job, node, secs};
  PGresult *r;
  int rc;

  if (d->in_pipe || d->tx_failed || d->c == NULL)
    return -1;
  snprintf(secs, sizeof(secs), "%d", lease_s);
  r = PQexecPrepared(d->c, pg_stmts[S_JOB_CLAIM].name, 3, v, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    log_error("database: claim of rollout job %s: %s", job, PQerrorMessage(d->c));
    d->tx_failed = 1;
    rc = -1;
  } else {
    rc = PQntuples(r) == 1;
  }
  PQclear(r);
  if (rc < 0)
    pg_conn_check(d);
  return rc;
}

/* d->mu held. In the nodes' turn, so that no node offers the package
 * between the count and the removal: after the commit each node drops it
 * from its catalog at its next transaction, before it decides anything. */
int pg_shared_package_delete(struct pg *d, const char *id)
{
  const char *v[1] = {id};
  PGresult *r = NULL;
  int rc = STORE_ERR;

  if (pg_ensure(d) < 0 || pg_exec(d, "BEGIN", PGRES_COMMAND_OK) < 0)
    return STORE_ERR;
  if (pg_shared_turn(d) < 0)
    goto rollback;
  r = PQexecPrepared(d->c, pg_stmts[S_PKG_OFFERS].name, 1, v, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
    log_error("database: offers of package %s: %s", id, PQerrorMessage(d->c));
    goto rollback;
  }
  if (strtoll(PQgetvalue(r, 0, 0), NULL, 10) > 0) {
    log_info("package %s not deleted: %s devices hold an offer of it", id, PQgetvalue(r, 0, 0));
    rc = STORE_IN_USE;
    goto rollback;
  }
  PQclear(r);
  r = PQexecPrepared(d->c, pg_stmts[S_PKG_REMOVE].name, 1, v, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    log_error("database: delete package %s: %s", id, PQerrorMessage(d->c));
    goto rollback;
  }
  rc = PQntuples(r) == 1 ? STORE_OK : STORE_NOTFOUND;
  PQclear(r);
  r = NULL;
  if (pg_exec(d, "COMMIT", PGRES_COMMAND_OK) < 0)
    rc = STORE_ERR;
  return rc;
rollback:
  PQclear(r);
  if (d->c != NULL && PQstatus(d->c) == CONNECTION_OK)
    pg_exec(d, "ROLLBACK", PGRES_COMMAND_OK);
  pg_conn_check(d);
  return rc;
}

int pg_tx_pkg_sweep(struct db *db, int grace_s, int (*cb)(const char *sha256, void *arg), void *arg)
{
  struct pg *d = (struct pg *)db;
  char secs[16];
  const char *v[1] = {secs};
  PGresult *r;

  if (d->in_pipe || d->tx_failed || d->c == NULL)
    return -1;
  snprintf(secs, sizeof(secs), "%d", grace_s);
  r = PQexecPrepared(d->c, pg_stmts[S_PKG_SWEEP].name, 1, v, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    log_error("database: sweep of deleted packages: %s", PQerrorMessage(d->c));
    d->tx_failed = 1;
    PQclear(r);
    pg_conn_check(d);
    return -1;
  }
  for (int i = 0; i < PQntuples(r); i++)
    cb(PQgetvalue(r, i, 0), arg);
  PQclear(r);
  return 0;
}
