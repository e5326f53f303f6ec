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
 * migrate once. The reads and writes are in db_pg_rw.c. */
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
#include "db_pg_int.h"
#include "store.h"

#define RECONNECT_MS 1000      /* least time between two connection attempts */
#define MIGRATE_LOCK 745207003 /* pg_advisory_xact_lock key: "dfotad schema" */
#define NODE_LOCK 745207004    /* pg_try_advisory_lock key: the one node of this database */

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
    /* 2: the devices in a state (those in flight load first at start) */
    "CREATE INDEX devices_state ON devices (state, id);",
    /* 3: several nodes (db_pg_shared.c): every device and rollout write
     * takes a number from one sequence, so that a node reads what the
     * others wrote since its last transaction; removed devices leave a
     * numbered tombstone */
    "CREATE SEQUENCE dfotad_change;"
    "ALTER TABLE devices ADD COLUMN change_seq bigint NOT NULL DEFAULT 0;"
    "ALTER TABLE rollouts ADD COLUMN change_seq bigint NOT NULL DEFAULT 0;"
    "CREATE INDEX devices_change ON devices (change_seq);"
    "CREATE INDEX rollouts_change ON rollouts (change_seq);"
    "CREATE TABLE devices_removed ("
    "  change_seq bigint PRIMARY KEY,"
    "  id text COLLATE \"C\" NOT NULL"
    ");",
    /* 4: several nodes: who carries on a rollout's start or cancel sweep
     * (job "ROLLOUT/start" or "ROLLOUT/sweep"; db_pg_shared.c); a claim
     * lapses when its node stops renewing it */
    "CREATE TABLE rollout_jobs ("
    "  job text COLLATE \"C\" PRIMARY KEY,"
    "  node text NOT NULL,"
    "  until timestamptz NOT NULL"
    ");"
    /* a package deleted on one node: the others drop it from their
     * catalogs at their next transaction; its file goes after a grace */
    "CREATE TABLE packages_removed ("
    "  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  id text COLLATE \"C\" NOT NULL,"
    "  sha256 text NOT NULL,"
    "  at timestamptz NOT NULL DEFAULT now()"
    ");",
};
#define N_MIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* The statements, prepared on each connection. */

const struct pg_stmt pg_stmts[S_COUNT] = {
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
                   "INSERT INTO devices (id, model, state, rollout_id, doc, change_seq)"
                   " VALUES ($1, $2, $3, $4, $5, nextval('dfotad_change'))"
                   " ON CONFLICT (id) DO UPDATE SET"
                   " model = excluded.model, state = excluded.state,"
                   " rollout_id = excluded.rollout_id, doc = excluded.doc,"
                   " change_seq = excluded.change_seq",
                   5},
    [S_DEV_DEL] = {"dev_del",
                   "WITH x AS (DELETE FROM devices WHERE id = $1 RETURNING id)"
                   " INSERT INTO devices_removed (change_seq, id)"
                   " SELECT nextval('dfotad_change'), id FROM x",
                   1},
    [S_EVENTS_DEL] = {"events_del", "DELETE FROM device_events WHERE device_id = $1", 1},
    /* a batch of devices; the same id twice: the last one wins, as one
     * upsert after the other would */
    [S_DEV_PUT_MANY] = {"dev_put_many",
                        "INSERT INTO devices (id, model, state, rollout_id, doc, change_seq)"
                        " SELECT id, model, state, rollout_id, doc, nextval('dfotad_change')"
                        " FROM (SELECT DISTINCT ON (id) id, model, state, rollout_id, doc"
                        " FROM unnest ($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])"
                        " WITH ORDINALITY AS u (id, model, state, rollout_id, doc, n)"
                        " ORDER BY id, n DESC) v ON CONFLICT (id) DO UPDATE SET"
                        " model = excluded.model, state = excluded.state,"
                        " rollout_id = excluded.rollout_id, doc = excluded.doc,"
                        " change_seq = excluded.change_seq",
                        5},
    /* a batch of events, their ids in the order given */
    [S_EVENT_ADD_MANY] = {"event_add_many",
                          "INSERT INTO device_events (device_id, at, kind, detail)"
                          " SELECT device_id, at, kind, detail"
                          " FROM unnest ($1::text[], $2::bigint[], $3::text[], $4::text[])"
                          " WITH ORDINALITY AS u (device_id, at, kind, detail, n) ORDER BY n",
                          4},
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
                       "INSERT INTO rollouts (id, state, doc, change_seq)"
                       " VALUES ($1, $2, $3, nextval('dfotad_change'))"
                       " ON CONFLICT (id) DO UPDATE SET state = excluded.state,"
                       " doc = excluded.doc, change_seq = excluded.change_seq",
                       3},
    [S_DEV_ALL] = {"dev_all", "SELECT id, doc FROM devices ORDER BY id", 0},
    [S_DEV_PAGE] = {"dev_page", "SELECT id, doc FROM devices WHERE id > $1 ORDER BY id LIMIT $2",
                    2},
    [S_DEV_PAGE_STATE] = {"dev_page_state",
                          "SELECT id, doc FROM devices WHERE state = $3 AND id > $1"
                          " ORDER BY id LIMIT $2",
                          3},
    [S_ROLLOUTS] = {"rollouts", "SELECT id, doc FROM rollouts ORDER BY seq", 0},
    [S_EVENTS_PAGE] = {"events_page",
                       "SELECT id, kind, detail FROM device_events WHERE device_id = $1"
                       " AND id > $2 ORDER BY id LIMIT $3",
                       3},
    [S_EVENTS_PAGE_DESC] = {"events_page_desc",
                            "SELECT id, kind, detail FROM device_events WHERE device_id = $1"
                            " AND id < $2 ORDER BY id DESC LIMIT $3",
                            3},
    /* several nodes: what the others wrote after $1 (rollouts first, so
     * that their devices find them), and packages added after $2 */
    [S_CHANGES] = {"changes",
                   "SELECT kind, id, doc FROM ("
                   " SELECT 0 AS o, 'r' AS kind, id, doc, change_seq FROM rollouts"
                   "  WHERE change_seq > $1"
                   " UNION ALL SELECT 1, 'd', id, doc, change_seq FROM devices"
                   "  WHERE change_seq > $1"
                   " UNION ALL SELECT 1, 'x', id, '', change_seq FROM devices_removed"
                   "  WHERE change_seq > $1) c ORDER BY o, change_seq",
                   1},
    [S_PKG_AFTER] = {"pkg_after",
                     "SELECT p.id, p.model, p.from_version, p.to_version, p.name, p.size,"
                     " p.sha256, p.created_at, coalesce(s.requests, 0),"
                     " coalesce(s.bytes_sent, 0), coalesce(s.downloads, 0), p.seq"
                     " FROM packages p LEFT JOIN package_stats s ON s.package_id = p.id"
                     " WHERE p.seq > $1 ORDER BY p.seq",
                     1},
    [S_CHANGE_MARK] = {"change_mark",
                       "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM dfotad_change",
                       0},
    /* a rollout's job: taken, renewed by its node, or taken over once the
     * claim lapsed; a row back means this node ($2) holds it */
    [S_JOB_CLAIM] = {"job_claim",
                     "INSERT INTO rollout_jobs (job, node, until)"
                     " VALUES ($1, $2, now() + make_interval(secs => $3::int))"
                     " ON CONFLICT (job) DO UPDATE SET node = excluded.node,"
                     " until = excluded.until"
                     " WHERE rollout_jobs.node = excluded.node OR rollout_jobs.until < now()"
                     " RETURNING node",
                     3},
    [S_PKG_GONE_AFTER] = {"pkg_gone_after",
                          "SELECT id, seq FROM packages_removed WHERE seq > $1 ORDER BY seq", 1},
    /* devices holding an offer of a package, whichever node made it */
    [S_PKG_OFFERS] = {"pkg_offers",
                      "SELECT count(*) FROM devices WHERE state IN ('offered', 'downloading')"
                      " AND doc::jsonb->>'package' = $1",
                      1},
    [S_PKG_REMOVE] = {"pkg_remove",
                      "WITH p AS (DELETE FROM packages WHERE id = $1 RETURNING id, sha256)"
                      " INSERT INTO packages_removed (id, sha256) SELECT id, sha256 FROM p"
                      " RETURNING seq",
                      1},
    /* removals older than the grace: their files go unless a package
     * (or a removal still in its grace) has the same content */
    [S_PKG_SWEEP] = {"pkg_sweep",
                     "WITH g AS (DELETE FROM packages_removed"
                     "  WHERE at < now() - make_interval(secs => $1::int) RETURNING sha256)"
                     " SELECT DISTINCT g.sha256 FROM g"
                     " WHERE NOT EXISTS (SELECT 1 FROM packages p WHERE p.sha256 = g.sha256)"
                     " AND NOT EXISTS (SELECT 1 FROM packages_removed r WHERE r.sha256 = g.sha256"
                     "  AND r.at >= now() - make_interval(secs => $1::int))",
                     1},
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
void pg_conn_check(struct pg *d)
{
  if (d->c != NULL && PQstatus(d->c) == CONNECTION_BAD) {
    set_down(d, PQerrorMessage(d->c));
    d->prepared = 0;
  }
}

/* Runs sql (no parameters); 0 when it returned want. */
int pg_exec(struct pg *d, const char *sql, ExecStatusType want)
{
  PGresult *r = PQexec(d->c, sql);
  int rc = 0;

  if (PQresultStatus(r) != want) {
    log_error("database: %.80s: %s", sql, PQerrorMessage(d->c));
    rc = -1;
  }
  PQclear(r);
  if (rc < 0)
    pg_conn_check(d);
  return rc;
}

static int migrate(struct pg *d, char *err, size_t errlen)
{
  char sql[160];
  PGresult *r;
  int v;

  if (pg_exec(d, "BEGIN", PGRES_COMMAND_OK) < 0)
    goto fail;
  snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(%d)", MIGRATE_LOCK);
  if (pg_exec(d, sql, PGRES_TUPLES_OK) < 0 ||
      pg_exec(d,
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
    if (pg_exec(d, migrations[v], PGRES_COMMAND_OK) < 0)
      goto rollback;
    snprintf(sql, sizeof(sql), "INSERT INTO schema_version (version) VALUES (%d)", v + 1);
    if (pg_exec(d, sql, PGRES_COMMAND_OK) < 0)
      goto rollback;
    log_info("database schema migrated to version %d (PostgreSQL)", v + 1);
  }
  if (pg_exec(d, "COMMIT", PGRES_COMMAND_OK) < 0)
    goto fail;
  return 0;
rollback:
  snprintf(err, errlen, "migration of the PostgreSQL schema failed (see the log)");
rollback_quiet:
  pg_exec(d, "ROLLBACK", PGRES_COMMAND_OK);
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

  /* nodes that share the database hold the lock in shared mode: they
   * exclude a single node, and a single node excludes them */
  snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_lock%s(%d)", d->shared ? "_shared" : "",
           NODE_LOCK);
  r = PQexec(d->c, sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
    snprintf(why, len, "cannot take the node lock: %s", PQerrorMessage(d->c));
  else if (strcmp(PQgetvalue(r, 0, 0), "t") != 0)
    snprintf(why, len,
             d->shared ? "a single dfotad node (nodes = single) uses this database"
                       : "another dfotad node uses this database ([store] nodes = shared lets "
                         "several use it)");
  else
    rc = 0;
  PQclear(r);
  why[strcspn(why, "\n")] = '\0';
  return rc;
}

static int prepare_all(struct pg *d)
{
  for (int i = 0; i < S_COUNT; i++) {
    PGresult *r = PQprepare(d->c, pg_stmts[i].name, pg_stmts[i].sql, pg_stmts[i].n, NULL);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
      log_error("database: prepare %s: %s", pg_stmts[i].name, PQerrorMessage(d->c));
    PQclear(r);
    if (!ok) {
      pg_conn_check(d);
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
int pg_ensure(struct pg *d)
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

static const struct db_ops pg_ops;

int db_pg_open(const char *conninfo, struct db **out, char *err, size_t errlen)
{
  return db_pg_open_nodes(conninfo, 0, out, err, errlen);
}

int db_pg_open_nodes(const char *conninfo, int shared, struct db **out, char *err, size_t errlen)
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
  d->shared = shared;
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
  if (shared && pg_shared_start(d, err, errlen) < 0)
    goto fail;
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
  for (int i = 0; i < 5; i++)
    free(d->col[i].buf);
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
  if (pg_ensure(d) < 0) {
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
    pg_conn_check(d);
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
    .tx_shared_begin = pg_tx_shared_begin,
    .shared_seen = pg_shared_seen,
    .tx_job_claim = pg_tx_job_claim,
    .tx_pkg_sweep = pg_tx_pkg_sweep,
};
