/* db_pg.c: the PostgreSQL backend of the store ([store] backend =
 * postgresql), and the only file of dfotad that knows libpq. The same
 * tables as db_sqlite.c, ids in byte order (COLLATE "C") so that pages
 * come in the same order; documents kept as text, byte for byte.
 *
 * One connection, serialised by a mutex, with every statement prepared
 * once per connection. A lost connection (PostgreSQL restarted, the
 * network cut) is noticed by the call that failed; the next call
 * reconnects, at most once a second, and prepares again. Meanwhile calls
 * fail fast: the writer's commit is retried at its next flush, with
 * everything it held.
 *
 * Migrations: entry i of migrations[] brings the schema from version i to
 * i + 1, recorded in schema_version (a row per version applied), all in
 * one transaction under an advisory lock, so that nodes starting together
 * migrate once. */
#include "autoconfig.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../util/log.h"
#include "db.h"
#include "store.h"

#define RECONNECT_MS 1000      /* least time between two connection attempts */
#define MIGRATE_LOCK 745207003 /* pg_advisory_xact_lock key: "dfotad schema" */
#define NODE_LOCK 745207004    /* pg_try_advisory_lock key: the one node of this database */

struct pg {
  struct db base; /* first: what db.c sees */
  PGconn *c;
  char *conninfo;
  pthread_mutex_t mu;
  int prepared;      /* the statements exist on this connection */
  int tx_failed;     /* a statement of the writer's transaction failed */
  int pending;       /* statements of the pipeline whose answers are not read */
  char last_tag[16]; /* the command tag of the last answer read */
  int64_t retry_at;  /* monotonic ms of the next connection attempt */
  atomic_int up;     /* the last call reached the server */
  pthread_mutex_t err_mu;
  char why[200]; /* why it is down */
};

static const char *const migrations[] = {
    /* 1: packages and their statistics, the fleet's devices, events and
     * rollouts (SQLite's versions 1 and 2 in one) */
    "CREATE TABLE packages ("
    "  id text COLLATE \"C\" PRIMARY KEY,"
    "  seq bigint GENERATED ALWAYS AS IDENTITY,"
    "  model text NOT NULL,"
    "  from_version text NOT NULL,"
    "  to_version text NOT NULL,"
    "  name text NOT NULL,"
    "  size bigint NOT NULL CHECK (size > 0),"
    "  sha256 text NOT NULL CHECK (length(sha256) = 64),"
    "  created_at bigint NOT NULL,"
    "  CONSTRAINT packages_hop UNIQUE (model, from_version, to_version)"
    ");"
    "CREATE INDEX packages_sha256 ON packages (sha256);"
    "CREATE TABLE package_stats ("
    "  package_id text COLLATE \"C\" PRIMARY KEY REFERENCES packages (id) ON DELETE CASCADE,"
    "  requests bigint NOT NULL DEFAULT 0,"
    "  bytes_sent bigint NOT NULL DEFAULT 0,"
    "  downloads bigint NOT NULL DEFAULT 0"
    ");"
    "CREATE TABLE devices ("
    "  id text COLLATE \"C\" PRIMARY KEY,"
    "  model text NOT NULL,"
    "  state text NOT NULL,"
    "  rollout_id text,"
    "  doc text NOT NULL"
    ");"
    "CREATE INDEX devices_rollout ON devices (rollout_id);"
    "CREATE TABLE device_events ("
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  device_id text COLLATE \"C\" NOT NULL,"
    "  at bigint NOT NULL,"
    "  kind text NOT NULL,"
    "  detail text NOT NULL"
    ");"
    "CREATE INDEX device_events_device ON device_events (device_id, id);"
    "CREATE TABLE rollouts ("
    "  id text COLLATE \"C\" PRIMARY KEY,"
    "  seq bigint GENERATED ALWAYS AS IDENTITY,"
    "  state text NOT NULL,"
    "  doc text NOT NULL"
    ");",
};
#define N_MIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* The statements, prepared on each connection. */
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
  S_EVENTS_TRIM,
  S_ROLLOUT_PUT,
  S_DEV_ALL,
  S_DEV_PAGE,
  S_DEV_PAGE_IN,
  S_DEV_PAGE_OUT,
  S_ROLLOUTS,
  S_EVENTS_PAGE,
  S_COUNT
};

static const struct {
  const char *name, *sql;
  int n;
} stmts[S_COUNT] = {
    [S_PKG_INSERT] = {"pkg_insert",
                      "INSERT INTO packages (id, model, from_version, to_version, name, size,"
                      " sha256, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                      8},
    [S_STATS_INSERT] = {"stats_insert", "INSERT INTO package_stats (package_id) VALUES ($1)", 1},
    [S_PKG_DELETE] = {"pkg_delete", "DELETE FROM packages WHERE id = $1", 1},
    [S_PKG_LOAD] = {"pkg_load",
                    "SELECT p.id, p.model, p.from_version, p.to_version, p.name, p.size,"
                    " p.sha256, p.created_at, coalesce(s.requests, 0),"
                    " coalesce(s.bytes_sent, 0), coalesce(s.downloads, 0)"
                    " FROM packages p LEFT JOIN package_stats s ON s.package_id = p.id"
                    " ORDER BY p.created_at, p.seq",
                    0},
    [S_SHA_USERS] = {"sha_users", "SELECT count(*) FROM packages WHERE sha256 = $1", 1},
    [S_STATS_PUT] = {"stats_put",
                     "UPDATE package_stats SET requests = $2, bytes_sent = $3, downloads = $4"
                     " WHERE package_id = $1",
                     4},
    [S_DEV_PUT] = {"dev_put",
                   "INSERT INTO devices (id, model, state, rollout_id, doc)"
                   " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET"
                   " model = excluded.model, state = excluded.state,"
                   " rollout_id = excluded.rollout_id, doc = excluded.doc",
                   5},
    [S_DEV_DEL] = {"dev_del", "DELETE FROM devices WHERE id = $1", 1},
    [S_EVENTS_DEL] = {"events_del", "DELETE FROM device_events WHERE device_id = $1", 1},
    [S_EVENT_ADD] = {"event_add",
                     "INSERT INTO device_events (device_id, at, kind, detail)"
                     " VALUES ($1, $2, $3, $4)",
                     4},
    [S_EVENTS_TRIM] = {"events_trim",
                       "DELETE FROM device_events WHERE device_id = $1 AND id <="
                       " (SELECT id FROM device_events WHERE device_id = $1"
                       " ORDER BY id DESC LIMIT 1 OFFSET $2)",
                       2},
    [S_ROLLOUT_PUT] = {"rollout_put",
                       "INSERT INTO rollouts (id, state, doc) VALUES ($1, $2, $3)"
                       " ON CONFLICT (id) DO UPDATE SET state = excluded.state,"
                       " doc = excluded.doc",
                       3},
    [S_DEV_ALL] = {"dev_all", "SELECT id, doc FROM devices ORDER BY id", 0},
    [S_DEV_PAGE] = {"dev_page", "SELECT id, doc FROM devices WHERE id > $1 ORDER BY id LIMIT $2",
                    2},
    [S_DEV_PAGE_IN] = {"dev_page_in",
                       "SELECT id, doc FROM devices WHERE id > $1 AND state = ANY ($3::text[])"
                       " ORDER BY id LIMIT $2",
                       3},
    [S_DEV_PAGE_OUT] = {"dev_page_out",
                        "SELECT id, doc FROM devices WHERE id > $1 AND state <> ALL ($3::text[])"
                        " ORDER BY id LIMIT $2",
                        3},
    [S_ROLLOUTS] = {"rollouts", "SELECT id, doc FROM rollouts ORDER BY seq", 0},
    [S_EVENTS_PAGE] = {"events_page",
                       "SELECT id, kind, detail FROM device_events WHERE device_id = $1"
                       " AND id > $2 ORDER BY id LIMIT $3",
                       3},
};

static int64_t mono_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_down(struct pg *d, const char *why)
{
  char one[sizeof(d->why)];

  snprintf(one, sizeof(one), "%s", why);
  one[strcspn(one, "\n")] = '\0';
  pthread_mutex_lock(&d->err_mu);
  snprintf(d->why, sizeof(d->why), "%s", one);
  pthread_mutex_unlock(&d->err_mu);
  if (atomic_exchange(&d->up, 0))
    log_error("database: PostgreSQL unreachable: %s; reconnecting", one);
}

/* After a failed call: a connection gone bad is dropped, and the next call
 * reconnects. */
static void check_conn(struct pg *d)
{
  if (d->c != NULL && PQstatus(d->c) == CONNECTION_BAD) {
    set_down(d, PQerrorMessage(d->c));
    d->prepared = 0;
  }
}

/* Runs sql (no parameters); 0 when it returned want. */
static int exec_sql(struct pg *d, const char *sql, ExecStatusType want)
{
  PGresult *r = PQexec(d->c, sql);
  int rc = 0;

  if (PQresultStatus(r) != want) {
    log_error("database: %.80s: %s", sql, PQerrorMessage(d->c));
    rc = -1;
  }
  PQclear(r);
  if (rc < 0)
    check_conn(d);
  return rc;
}

static int migrate(struct pg *d, char *err, size_t errlen)
{
  char sql[160];
  PGresult *r;
  int v;

  if (exec_sql(d, "BEGIN", PGRES_COMMAND_OK) < 0)
    goto fail;
  snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(%d)", MIGRATE_LOCK);
  if (exec_sql(d, sql, PGRES_TUPLES_OK) < 0 ||
      exec_sql(d,
               "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY,"
               " applied_at timestamptz NOT NULL DEFAULT now())",
               PGRES_COMMAND_OK) < 0)
    goto rollback;
  r = PQexec(d->c, "SELECT coalesce(max(version), 0) FROM schema_version");
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
    snprintf(err, errlen, "cannot read schema version: %s", PQerrorMessage(d->c));
    PQclear(r);
    goto rollback_quiet;
  }
  v = atoi(PQgetvalue(r, 0, 0));
  PQclear(r);
  if (v > N_MIGRATIONS) {
    snprintf(err, errlen, "database schema %d is newer than this dfotad (%d)", v, N_MIGRATIONS);
    goto rollback_quiet;
  }
  for (; v < N_MIGRATIONS; v++) {
    if (exec_sql(d, migrations[v], PGRES_COMMAND_OK) < 0)
      goto rollback;
    snprintf(sql, sizeof(sql), "INSERT INTO schema_version (version) VALUES (%d)", v + 1);
    if (exec_sql(d, sql, PGRES_COMMAND_OK) < 0)
      goto rollback;
    log_info("database schema migrated to version %d (PostgreSQL)", v + 1);
  }
  if (exec_sql(d, "COMMIT", PGRES_COMMAND_OK) < 0)
    goto fail;
  return 0;
rollback:
  snprintf(err, errlen, "migration of the PostgreSQL schema failed (see the log)");
rollback_quiet:
  exec_sql(d, "ROLLBACK", PGRES_COMMAND_OK);
  return -1;
fail:
  snprintf(err, errlen, "migration of the PostgreSQL schema failed: %s", PQerrorMessage(d->c));
  return -1;
}

/* One node per database, for now: a running node holds a session lock
 * for as long as its connection lives; a second node is refused, and a
 * node that reconnects after someone else took the database stays out
 * (its writes would overwrite the other's). 0, or -1 with why set. */
static int take_node_lock(struct pg *d, char *why, size_t len)
{
  char sql[64];
  PGresult *r;
  int rc = -1;

  snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_lock(%d)", NODE_LOCK);
  r = PQexec(d->c, sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
    snprintf(why, len, "cannot take the node lock: %s", PQerrorMessage(d->c));
  else if (strcmp(PQgetvalue(r, 0, 0), "t") != 0)
    snprintf(why, len, "another dfotad node uses this database (one node per database for now)");
  else
    rc = 0;
  PQclear(r);
  why[strcspn(why, "\n")] = '\0';
  return rc;
}

static int prepare_all(struct pg *d)
{
  for (int i = 0; i < S_COUNT; i++) {
    PGresult *r = PQprepare(d->c, stmts[i].name, stmts[i].sql, stmts[i].n, NULL);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
      log_error("database: prepare %s: %s", stmts[i].name, PQerrorMessage(d->c));
    PQclear(r);
    if (!ok) {
      check_conn(d);
      return -1;
    }
  }
  d->prepared = 1;
  return 0;
}

/* The server's notices ("relation ... already exists, skipping") are
 * chatter: to the debug log, not to stderr as libpq would. */
static void notice(void *arg, const char *message)
{
  (void)arg;
  log_debug("database: %.*s", (int)strcspn(message, "\n"), message);
}

/* A new connection: bounded waits (connect, TCP keep-alives, unacknowledged
 * data), the caller's settings after ours. */
static PGconn *connect_pg(const char *conninfo)
{
  static const char *const keys[] = {"connect_timeout",
                                     "application_name",
                                     "client_encoding",
                                     "keepalives_idle",
                                     "keepalives_interval",
                                     "keepalives_count",
                                     "tcp_user_timeout",
                                     "dbname",
                                     NULL};
  const char *vals[] = {"5", "dfotad", "UTF8", "10", "5", "3", "15000", conninfo, NULL};
  PGconn *c = PQconnectdbParams(keys, vals, 1);

  if (c != NULL)
    PQsetNoticeProcessor(c, notice, NULL);
  return c;
}

/* The connection, made again when it was lost (at most once a second).
 * d->mu held. 0 or -1. */
static int ensure(struct pg *d)
{
  int64_t now;

  if (d->c != NULL && PQstatus(d->c) == CONNECTION_OK && d->prepared)
    return 0;
  now = mono_ms();
  if (now < d->retry_at)
    return -1;
  d->retry_at = now + RECONNECT_MS;
  if (d->c != NULL)
    PQfinish(d->c);
  d->prepared = 0;
  d->c = connect_pg(d->conninfo);
  if (d->c == NULL || PQstatus(d->c) != CONNECTION_OK) {
    set_down(d, d->c ? PQerrorMessage(d->c) : "out of memory");
    return -1;
  }
  {
    char why[200];
    if (take_node_lock(d, why, sizeof(why)) < 0) {
      set_down(d, why);
      PQfinish(d->c);
      d->c = NULL;
      return -1;
    }
  }
  if (prepare_all(d) < 0) {
    set_down(d, "cannot prepare statements");
    return -1;
  }
  if (!atomic_exchange(&d->up, 1))
    log_info("database: connected to PostgreSQL %d.%d", PQserverVersion(d->c) / 10000,
             PQserverVersion(d->c) % 10000);
  return 0;
}

/* Runs a prepared statement; the result (the caller clears it), or NULL
 * after logging why. */
static PGresult *run(struct pg *d, enum stmt s, const char *const *vals, ExecStatusType want)
{
  PGresult *r = PQexecPrepared(d->c, stmts[s].name, stmts[s].n, vals, NULL, NULL, 0);

  if (PQresultStatus(r) != want) {
    log_error("database: %s: %s", stmts[s].name, PQerrorMessage(d->c));
    PQclear(r);
    check_conn(d);
    return NULL;
  }
  return r;
}

static int run_cmd(struct pg *d, enum stmt s, const char *const *vals)
{
  PGresult *r = run(d, s, vals, PGRES_COMMAND_OK);

  PQclear(r);
  return r != NULL ? 0 : -1;
}

static int is_sqlstate(const PGresult *r, const char *code)
{
  const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  return s != NULL && strcmp(s, code) == 0;
}

static const struct db_ops pg_ops;

int db_pg_open(const char *conninfo, struct db **out, char *err, size_t errlen)
{
  struct pg *d = calloc(1, sizeof(*d));

  *out = NULL;
  err[0] = '\0';
  if (d == NULL || (d->conninfo = strdup(conninfo)) == NULL) {
    free(d);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  pthread_mutex_init(&d->mu, NULL);
  pthread_mutex_init(&d->err_mu, NULL);
  d->base.ops = &pg_ops;
  d->c = connect_pg(conninfo);
  if (d->c == NULL || PQstatus(d->c) != CONNECTION_OK) {
    /* SECURITY: libpq's message names host and user, never the password */
    snprintf(err, errlen, "PostgreSQL: %s", d->c ? PQerrorMessage(d->c) : "out of memory");
    err[strcspn(err, "\n")] = '\0';
    goto fail;
  }
  /* a node killed a moment ago may still hold it until its server
   * process has noticed: a few seconds' grace */
  for (int i = 0; take_node_lock(d, err, errlen) < 0; i++) {
    if (i == 50)
      goto fail;
    nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
  }
  err[0] = '\0';
  if (migrate(d, err, errlen) < 0 || prepare_all(d) < 0) {
    if (err[0] == '\0')
      snprintf(err, errlen, "PostgreSQL: cannot prepare statements");
    goto fail;
  }
  atomic_store(&d->up, 1);
  log_info("database: PostgreSQL %d.%d, schema version %d", PQserverVersion(d->c) / 10000,
           PQserverVersion(d->c) % 10000, N_MIGRATIONS);
  *out = &d->base;
  return 0;
fail:
  pg_ops.close(&d->base);
  return -1;
}

static void pg_close(struct db *db)
{
  struct pg *d = (struct pg *)db;

  if (d->c != NULL)
    PQfinish(d->c);
  pthread_mutex_destroy(&d->mu);
  pthread_mutex_destroy(&d->err_mu);
  free(d->conninfo);
  free(d);
}

const char *db_pg_version(void)
{
  static char buf[32];
  int v = PQlibVersion();

  snprintf(buf, sizeof(buf), "libpq %d.%d", v / 10000, v % 10000);
  return buf;
}

/* ---- packages ---------------------------------------------------------- */

static int pg_package_insert(struct db *db, const struct db_package *p)
{
  struct pg *d = (struct pg *)db;
  char size[24], created[24];
  const char *vals[8] = {p->id, p->model, p->from, p->to, p->name, size, p->sha256, created};
  PGresult *r;
  int rc = STORE_ERR;

  snprintf(size, sizeof(size), "%llu", (unsigned long long)p->size);
  snprintf(created, sizeof(created), "%lld", (long long)p->created);
  pthread_mutex_lock(&d->mu);
  if (ensure(d) < 0 || exec_sql(d, "BEGIN", PGRES_COMMAND_OK) < 0)
    goto out;
  r = PQexecPrepared(d->c, stmts[S_PKG_INSERT].name, 8, vals, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    const char *con = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
    if (is_sqlstate(r, "23505") && con != NULL && strcmp(con, "packages_pkey") == 0)
      rc = DB_ID_CLASH;
    else if (is_sqlstate(r, "23505"))
      rc = STORE_EXISTS;
    else
      log_error("database: insert package: %s", PQerrorMessage(d->c));
    PQclear(r);
    check_conn(d);
    goto rollback;
  }
  PQclear(r);
  if (run_cmd(d, S_STATS_INSERT, vals) < 0 || exec_sql(d, "COMMIT", PGRES_COMMAND_OK) < 0)
    goto rollback;
  rc = STORE_OK;
  goto out;
rollback:
  if (d->c != NULL && PQstatus(d->c) == CONNECTION_OK)
    exec_sql(d, "ROLLBACK", PGRES_COMMAND_OK);
out:
  pthread_mutex_unlock(&d->mu);
  return rc;
}

static int pg_package_delete(struct db *db, const char *id)
{
  struct pg *d = (struct pg *)db;
  PGresult *r = NULL;
  int rc = STORE_ERR;

  pthread_mutex_lock(&d->mu);
  if (ensure(d) == 0 && (r = run(d, S_PKG_DELETE, &id, PGRES_COMMAND_OK)) != NULL)
    rc = strcmp(PQcmdTuples(r), "0") != 0 ? STORE_OK : STORE_NOTFOUND;
  PQclear(r);
  pthread_mutex_unlock(&d->mu);
  return rc;
}

static uint64_t u64(const PGresult *r, int row, int col)
{
  return strtoull(PQgetvalue(r, row, col), NULL, 10);
}

static int pg_package_load(struct db *db, int (*cb)(const struct db_package *p, void *arg),
                           void *arg)
{
  struct pg *d = (struct pg *)db;
  PGresult *r = NULL;
  int rc = -1;

  pthread_mutex_lock(&d->mu);
  if (ensure(d) == 0 && (r = run(d, S_PKG_LOAD, NULL, PGRES_TUPLES_OK)) != NULL) {
    rc = 0;
    for (int i = 0; i < PQntuples(r); i++) {
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

static int pg_sha256_users(struct db *db, const char *sha256)
{
  struct pg *d = (struct pg *)db;
  PGresult *r = NULL;
  int n = -1;

  pthread_mutex_lock(&d->mu);
  if (ensure(d) == 0 && (r = run(d, S_SHA_USERS, &sha256, PGRES_TUPLES_OK)) != NULL)
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
      check_conn(d);
      d->prepared = 0; /* start afresh */
      return;
    }
    st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
      snprintf(d->last_tag, sizeof(d->last_tag), "%s", PQcmdStatus(r));
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

static int pipe_send(struct pg *d, const char *sql)
{
  if (!PQsendQueryParams(d->c, sql, 0, NULL, NULL, NULL, NULL, 0)) {
    d->tx_failed = 1;
    return -1;
  }
  d->pending++;
  return 0;
}

static int pg_tx_begin(struct db *db)
{
  struct pg *d = (struct pg *)db;

  pthread_mutex_lock(&d->mu);
  if (ensure(d) < 0 || !PQenterPipelineMode(d->c)) {
    pthread_mutex_unlock(&d->mu);
    return -1;
  }
  d->tx_failed = 0;
  d->pending = 0;
  pipe_send(d, "BEGIN");
  return 0;
}

static int pg_tx_end(struct db *db, int ok)
{
  struct pg *d = (struct pg *)db;
  int commit = ok && !d->tx_failed, rc = -1;
  PGresult *r;

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
  if (!PQexitPipelineMode(d->c)) {
    log_error("database: cannot leave pipeline mode: %s", PQerrorMessage(d->c));
    d->prepared = 0; /* a new connection next time */
    rc = -1;
  } else if (PQtransactionStatus(d->c) != PQTRANS_IDLE) {
    exec_sql(d, "ROLLBACK", PGRES_COMMAND_OK); /* a failed transaction block */
  }
  if (rc < 0) {
    if (commit)
      log_error("database: commit failed");
    check_conn(d);
  }
  pthread_mutex_unlock(&d->mu);
  return rc;
}

/* A write of the writer's transaction, sent without waiting; once one
 * failed, what follows is not sent. */
static int tx_cmd(struct pg *d, enum stmt s, const char *const *vals)
{
  if (d->tx_failed)
    return -1;
  if (!PQsendQueryPrepared(d->c, stmts[s].name, stmts[s].n, vals, NULL, NULL, 0)) {
    log_error("database: %s: %s", stmts[s].name, PQerrorMessage(d->c));
    d->tx_failed = 1;
    check_conn(d);
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

static int pg_tx_stats(struct db *db, const struct db_stats *row)
{
  struct pg *d = (struct pg *)db;
  char a[24], b[24], c[24];
  const char *vals[4] = {row->id, a, b, c};

  snprintf(a, sizeof(a), "%llu", (unsigned long long)row->requests);
  snprintf(b, sizeof(b), "%llu", (unsigned long long)row->bytes_sent);
  snprintf(c, sizeof(c), "%llu", (unsigned long long)row->downloads);
  return tx_cmd(d, S_STATS_PUT, vals);
}

static int pg_tx_device_put(struct db *db, const char *id, const char *model, const char *state,
                            const char *rollout_id, const char *doc)
{
  const char *vals[5] = {id, model, state, rollout_id, doc};
  return tx_cmd((struct pg *)db, S_DEV_PUT, vals);
}

static int pg_tx_device_delete(struct db *db, const char *id)
{
  struct pg *d = (struct pg *)db;

  if (tx_cmd(d, S_DEV_DEL, &id) < 0)
    return -1;
  return tx_cmd(d, S_EVENTS_DEL, &id);
}

static int pg_tx_event(struct db *db, const char *device_id, int64_t at_ms, const char *kind,
                       const char *detail)
{
  char at[24];
  const char *vals[4] = {device_id, at, kind, detail};

  snprintf(at, sizeof(at), "%lld", (long long)at_ms);
  return tx_cmd((struct pg *)db, S_EVENT_ADD, vals);
}

static int pg_tx_rollout_put(struct db *db, const char *id, const char *state, const char *doc)
{
  const char *vals[3] = {id, state, doc};
  return tx_cmd((struct pg *)db, S_ROLLOUT_PUT, vals);
}

static int pg_tx_events_trim(struct db *db, const char *device_id, int keep)
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
  if (ensure(d) < 0 || !PQsendQueryPrepared(d->c, stmts[s].name, stmts[s].n, vals, NULL, NULL, 0)) {
    if (d->c != NULL)
      check_conn(d);
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
      log_error("database: %s: %s", stmts[s].name, PQerrorMessage(d->c));
      failed = 1;
    }
    PQclear(r);
  }
  if (failed)
    check_conn(d);
  pthread_mutex_unlock(&d->mu);
  return failed ? -1 : n;
}

static int pg_devices_load(struct db *db, db_doc_cb cb, void *arg)
{
  return query_docs((struct pg *)db, S_DEV_ALL, NULL, 1, cb, arg) < 0 ? -1 : 0;
}

/* A text[] literal of the states: {"a","b"}, quotes and backslashes
 * escaped. NULL when out of memory. */
static char *text_array(const char *const *v, int n)
{
  size_t len = 3;
  char *out, *o;

  for (int i = 0; i < n; i++)
    len += 2 * strlen(v[i]) + 3;
  if ((out = malloc(len)) == NULL)
    return NULL;
  o = out;
  *o++ = '{';
  for (int i = 0; i < n; i++) {
    if (i > 0)
      *o++ = ',';
    *o++ = '"';
    for (const char *c = v[i]; *c; c++) {
      if (*c == '"' || *c == '\\')
        *o++ = '\\';
      *o++ = *c;
    }
    *o++ = '"';
  }
  *o++ = '}';
  *o = '\0';
  return out;
}

static int pg_devices_page(struct db *db, const char *const *states, int n_states, int exclude,
                           const char *after, int limit, db_doc_cb cb, void *arg)
{
  char lim[16], *arr = NULL;
  const char *vals[3] = {after, lim, NULL};
  enum stmt s = S_DEV_PAGE;
  int n;

  snprintf(lim, sizeof(lim), "%d", limit);
  if (n_states > 0) {
    if ((arr = text_array(states, n_states)) == NULL)
      return -1;
    vals[2] = arr;
    s = exclude ? S_DEV_PAGE_OUT : S_DEV_PAGE_IN;
  }
  n = query_docs((struct pg *)db, s, vals, 0, cb, arg);
  free(arr);
  return n;
}

static int pg_rollouts_load(struct db *db, db_doc_cb cb, void *arg)
{
  return query_docs((struct pg *)db, S_ROLLOUTS, NULL, 0, cb, arg) < 0 ? -1 : 0;
}

static int pg_events_page(struct db *db, const char *device_id, int64_t after, int limit,
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
  if (ensure(d) == 0 && (r = run(d, S_EVENTS_PAGE, vals, PGRES_TUPLES_OK)) != NULL) {
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

/* ---- health ------------------------------------------------------------- */

/* What fits PostgreSQL (its own pages are checksummed and WAL-logged): the
 * schema this dfotad knows, every package with its statistics row and no
 * statistics without a package, and, where the amcheck extension is
 * installed, the B-tree indexes of our tables. */
static int pg_integrity(struct db *db, char *msg, size_t len)
{
  static const char *const checks[][2] = {
      {"SELECT coalesce(max(version), 0) FROM schema_version", "schema version"},
      {"SELECT count(*) FROM packages p WHERE NOT EXISTS"
       " (SELECT 1 FROM package_stats s WHERE s.package_id = p.id)",
       "packages without statistics"},
      {"SELECT count(*) FROM package_stats s WHERE NOT EXISTS"
       " (SELECT 1 FROM packages p WHERE p.id = s.package_id)",
       "statistics without a package"},
      {"SELECT count(*) FROM (SELECT bt_index_check(i.indexrelid) FROM pg_index i"
       " JOIN pg_class c ON c.oid = i.indrelid JOIN pg_am a ON a.oid ="
       " (SELECT relam FROM pg_class WHERE oid = i.indexrelid)"
       " WHERE a.amname = 'btree' AND c.relname IN ('packages', 'package_stats',"
       " 'devices', 'device_events', 'rollouts')) x",
       "amcheck"},
  };
  struct pg *d = (struct pg *)db;
  int rc = 0, amcheck = 0;

  pthread_mutex_lock(&d->mu);
  if (ensure(d) < 0) {
    pthread_mutex_lock(&d->err_mu);
    snprintf(msg, len, "unreachable: %s", d->why);
    pthread_mutex_unlock(&d->err_mu);
    pthread_mutex_unlock(&d->mu);
    return -1;
  }
  {
    PGresult *r = PQexec(d->c, "SELECT 1 FROM pg_extension WHERE extname = 'amcheck'");
    amcheck = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    PQclear(r);
  }
  snprintf(msg, len, "ok");
  for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]) && rc == 0; i++) {
    PGresult *r;
    long long v;
    if (i == 3 && !amcheck)
      break;
    r = PQexec(d->c, checks[i][0]);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
      snprintf(msg, len, "%s: %s", checks[i][1], PQerrorMessage(d->c));
      msg[strcspn(msg, "\n")] = '\0';
      rc = -1;
    } else {
      v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
      if (i == 0 && v != N_MIGRATIONS) {
        snprintf(msg, len, "schema version %lld, expected %d", v, N_MIGRATIONS);
        rc = -1;
      } else if ((i == 1 || i == 2) && v != 0) {
        snprintf(msg, len, "%s: %lld", checks[i][1], v);
        rc = -1;
      }
    }
    PQclear(r);
  }
  if (rc < 0)
    check_conn(d);
  pthread_mutex_unlock(&d->mu);
  return rc;
}

/* Whether the last call reached the server; without taking the connection
 * (the writer may hold it), so that /healthz answers at once. */
static int pg_reachable(struct db *db, char *msg, size_t len)
{
  struct pg *d = (struct pg *)db;

  if (atomic_load(&d->up)) {
    snprintf(msg, len, "ok");
    return 1;
  }
  pthread_mutex_lock(&d->err_mu);
  snprintf(msg, len, "%s", d->why);
  pthread_mutex_unlock(&d->err_mu);
  return 0;
}

static const struct db_ops pg_ops = {
    .name = "postgresql",
    .close = pg_close,
    .package_insert = pg_package_insert,
    .package_delete = pg_package_delete,
    .package_load = pg_package_load,
    .sha256_users = pg_sha256_users,
    .tx_begin = pg_tx_begin,
    .tx_end = pg_tx_end,
    .tx_stats = pg_tx_stats,
    .tx_device_put = pg_tx_device_put,
    .tx_device_delete = pg_tx_device_delete,
    .tx_event = pg_tx_event,
    .tx_rollout_put = pg_tx_rollout_put,
    .tx_events_trim = pg_tx_events_trim,
    .devices_load = pg_devices_load,
    .devices_page = pg_devices_page,
    .rollouts_load = pg_rollouts_load,
    .events_page = pg_events_page,
    .integrity = pg_integrity,
    .reachable = pg_reachable,
};
