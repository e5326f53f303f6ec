/* db_sqlite.c: the SQLite backend of the store (the embedded default), and
 * the only file of dfotad that knows SQLite. WAL mode, synchronous=FULL (a committed package or
 * statistic survives a crash or power loss), versioned migrations recorded
 * in PRAGMA user_version. One connection, serialised by a mutex: writes are
 * few and batched, and the data plane never reaches the database. */
#include "autoconfig.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "db.h"
#include "store.h"

struct sq {
  struct db base; /* first: what db.c sees */
  sqlite3 *h;
  pthread_mutex_t mu;
  /* statements of the writer's transactions, prepared once */
  sqlite3_stmt *dev_put, *dev_del, *events_del, *event_add, *events_trim, *rollout_put, *stats_put;
};

/* Migrations: entry i brings the schema from version i to i + 1. Never
 * edit an entry once released; append a new one. */
static const char *const migrations[] = {
    /* 1: packages and their statistics */
    "CREATE TABLE packages ("
    "  id TEXT PRIMARY KEY,"
    "  model TEXT NOT NULL,"
    "  from_version TEXT NOT NULL,"
    "  to_version TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  size INTEGER NOT NULL CHECK (size > 0),"
    "  sha256 TEXT NOT NULL CHECK (length(sha256) = 64),"
    "  created_at INTEGER NOT NULL,"
    "  UNIQUE (model, from_version, to_version)"
    ");"
    "CREATE INDEX packages_sha256 ON packages(sha256);"
    "CREATE TABLE package_stats ("
    "  package_id TEXT PRIMARY KEY REFERENCES packages(id) ON DELETE CASCADE,"
    "  requests INTEGER NOT NULL DEFAULT 0,"
    "  bytes_sent INTEGER NOT NULL DEFAULT 0,"
    "  downloads INTEGER NOT NULL DEFAULT 0"
    ");",
    /* 2: the fleet. Devices and rollouts are documents owned by the fleet
     * logic (api/fleet.c), with the columns an operator filters on beside
     * them; events are appended and never changed. */
    "CREATE TABLE devices ("
    "  id TEXT PRIMARY KEY,"
    "  model TEXT NOT NULL,"
    "  state TEXT NOT NULL,"
    "  rollout_id TEXT,"
    "  doc TEXT NOT NULL"
    ");"
    "CREATE INDEX devices_rollout ON devices(rollout_id);"
    "CREATE TABLE device_events ("
    "  id INTEGER PRIMARY KEY,"
    "  device_id TEXT NOT NULL,"
    "  at INTEGER NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  detail TEXT NOT NULL"
    ");"
    "CREATE INDEX device_events_device ON device_events(device_id, id);"
    "CREATE TABLE rollouts ("
    "  id TEXT PRIMARY KEY,"
    "  state TEXT NOT NULL,"
    "  doc TEXT NOT NULL"
    ");",
    /* 3: the devices in a state (those in flight load first at start) */
    "CREATE INDEX devices_state ON devices(state, id);",
};
#define N_MIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

static int exec(struct sq *d, const char *sql)
{
  char *msg = NULL;

  if (sqlite3_exec(d->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
    log_error("database: %s: %s", sql, msg ? msg : "?");
    sqlite3_free(msg);
    return -1;
  }
  return 0;
}

static int user_version(struct sq *d)
{
  sqlite3_stmt *st;
  int v = -1;

  if (sqlite3_prepare_v2(d->h, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
    return -1;
  if (sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return v;
}

static int migrate(struct sq *d, char *err, size_t errlen)
{
  int v = user_version(d);

  if (v < 0) {
    snprintf(err, errlen, "cannot read schema version: %s", sqlite3_errmsg(d->h));
    return -1;
  }
  if (v > N_MIGRATIONS) {
    snprintf(err, errlen, "database schema %d is newer than this dfotad (%d)", v, N_MIGRATIONS);
    return -1;
  }
  for (; v < N_MIGRATIONS; v++) {
    char pragma[64];
    if (exec(d, "BEGIN IMMEDIATE") < 0)
      goto fail;
    if (exec(d, migrations[v]) < 0) {
      exec(d, "ROLLBACK");
      goto fail;
    }
    snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
    if (exec(d, pragma) < 0 || exec(d, "COMMIT") < 0) {
      exec(d, "ROLLBACK");
      goto fail;
    }
    log_info("database schema migrated to version %d", v + 1);
  }
  return 0;
fail:
  snprintf(err, errlen, "migration to schema version %d failed", v + 1);
  return -1;
}

static const struct db_ops sq_ops;

int db_open(const char *path, struct db **out, char *err, size_t errlen)
{
  struct sq *d = calloc(1, sizeof(*d));

  if (d == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  pthread_mutex_init(&d->mu, NULL);
  if (sqlite3_open_v2(path, &d->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK) {
    snprintf(err, errlen, "%s: %s", path, d->h ? sqlite3_errmsg(d->h) : "cannot open");
    goto fail;
  }
  sqlite3_busy_timeout(d->h, 5000);
  if (exec(d, "PRAGMA journal_mode=WAL") < 0 || exec(d, "PRAGMA synchronous=FULL") < 0 ||
      exec(d, "PRAGMA foreign_keys=ON") < 0) {
    snprintf(err, errlen, "%s: cannot set up the database", path);
    goto fail;
  }
  if (migrate(d, err, errlen) < 0)
    goto fail;
  d->base.ops = &sq_ops;
  *out = &d->base;
  return 0;
fail:
  sqlite3_close(d->h);
  pthread_mutex_destroy(&d->mu);
  free(d);
  return -1;
}

static void sq_close(struct db *db)
{
  struct sq *d = (struct sq *)db;

  sqlite3_finalize(d->dev_put);
  sqlite3_finalize(d->dev_del);
  sqlite3_finalize(d->events_del);
  sqlite3_finalize(d->event_add);
  sqlite3_finalize(d->events_trim);
  sqlite3_finalize(d->rollout_put);
  sqlite3_finalize(d->stats_put);
  sqlite3_close(d->h);
  pthread_mutex_destroy(&d->mu);
  free(d);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
  sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

static int sq_package_insert(struct db *db, const struct db_package *p)
{
  struct sq *d = (struct sq *)db;
  sqlite3_stmt *st = NULL;
  int rc = STORE_ERR, step;

  pthread_mutex_lock(&d->mu);
  if (exec(d, "BEGIN IMMEDIATE") < 0)
    goto out;
  if (sqlite3_prepare_v2(d->h,
                         "INSERT INTO packages (id, model, from_version, to_version, name, size,"
                         " sha256, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                         -1, &st, NULL) != SQLITE_OK)
    goto rollback;
  bind_text(st, 1, p->id);
  bind_text(st, 2, p->model);
  bind_text(st, 3, p->from);
  bind_text(st, 4, p->to);
  bind_text(st, 5, p->name);
  sqlite3_bind_int64(st, 6, (sqlite3_int64)p->size);
  bind_text(st, 7, p->sha256);
  sqlite3_bind_int64(st, 8, p->created);
  step = sqlite3_step(st);
  if (step != SQLITE_DONE) {
    const char *m = sqlite3_errmsg(d->h);
    if (sqlite3_extended_errcode(d->h) == SQLITE_CONSTRAINT_PRIMARYKEY)
      rc = DB_ID_CLASH;
    else if (sqlite3_extended_errcode(d->h) == SQLITE_CONSTRAINT_UNIQUE)
      rc = STORE_EXISTS;
    else
      log_error("database: insert package: %s", m);
    goto rollback;
  }
  sqlite3_finalize(st);
  st = NULL;
  if (sqlite3_prepare_v2(d->h, "INSERT INTO package_stats (package_id) VALUES (?1)", -1, &st,
                         NULL) != SQLITE_OK)
    goto rollback;
  bind_text(st, 1, p->id);
  if (sqlite3_step(st) != SQLITE_DONE)
    goto rollback;
  if (exec(d, "COMMIT") < 0)
    goto rollback;
  rc = STORE_OK;
  goto out;
rollback:
  exec(d, "ROLLBACK");
out:
  sqlite3_finalize(st);
  pthread_mutex_unlock(&d->mu);
  return rc;
}

static int sq_package_delete(struct db *db, const char *id)
{
  struct sq *d = (struct sq *)db;
  sqlite3_stmt *st = NULL;
  int rc = STORE_ERR;

  pthread_mutex_lock(&d->mu);
  if (sqlite3_prepare_v2(d->h, "DELETE FROM packages WHERE id = ?1", -1, &st, NULL) != SQLITE_OK)
    goto out;
  bind_text(st, 1, id);
  if (sqlite3_step(st) != SQLITE_DONE) {
    log_error("database: delete package: %s", sqlite3_errmsg(d->h));
    goto out;
  }
  rc = sqlite3_changes(d->h) > 0 ? STORE_OK : STORE_NOTFOUND;
out:
  sqlite3_finalize(st);
  pthread_mutex_unlock(&d->mu);
  return rc;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
  const unsigned char *t = sqlite3_column_text(st, i);
  return t ? (const char *)t : "";
}

static int sq_package_load(struct db *db, int (*cb)(const struct db_package *p, void *arg),
                           void *arg)
{
  struct sq *d = (struct sq *)db;
  sqlite3_stmt *st = NULL;
  int rc = -1, step;

  pthread_mutex_lock(&d->mu);
  if (sqlite3_prepare_v2(d->h,
                         "SELECT p.id, p.model, p.from_version, p.to_version, p.name, p.size,"
                         " p.sha256, p.created_at, coalesce(s.requests, 0),"
                         " coalesce(s.bytes_sent, 0), coalesce(s.downloads, 0)"
                         " FROM packages p LEFT JOIN package_stats s ON s.package_id = p.id"
                         " ORDER BY p.created_at, p.rowid",
                         -1, &st, NULL) != SQLITE_OK)
    goto out;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    struct db_package p = {
        .id = col_text(st, 0),
        .model = col_text(st, 1),
        .from = col_text(st, 2),
        .to = col_text(st, 3),
        .name = col_text(st, 4),
        .size = (uint64_t)sqlite3_column_int64(st, 5),
        .sha256 = col_text(st, 6),
        .created = sqlite3_column_int64(st, 7),
        .requests = (uint64_t)sqlite3_column_int64(st, 8),
        .bytes_sent = (uint64_t)sqlite3_column_int64(st, 9),
        .downloads = (uint64_t)sqlite3_column_int64(st, 10),
    };
    if (cb(&p, arg) != 0)
      goto out;
  }
  if (step == SQLITE_DONE)
    rc = 0;
  else
    log_error("database: load packages: %s", sqlite3_errmsg(d->h));
out:
  sqlite3_finalize(st);
  pthread_mutex_unlock(&d->mu);
  return rc;
}

static int sq_sha256_users(struct db *db, const char *sha256)
{
  struct sq *d = (struct sq *)db;
  sqlite3_stmt *st = NULL;
  int n = -1;

  pthread_mutex_lock(&d->mu);
  if (sqlite3_prepare_v2(d->h, "SELECT count(*) FROM packages WHERE sha256 = ?1", -1, &st, NULL) ==
      SQLITE_OK) {
    bind_text(st, 1, sha256);
    if (sqlite3_step(st) == SQLITE_ROW)
      n = sqlite3_column_int(st, 0);
  }
  sqlite3_finalize(st);
  pthread_mutex_unlock(&d->mu);
  return n;
}

static sqlite3_stmt *prepared(struct sq *d, sqlite3_stmt **slot, const char *sql)
{
  if (*slot == NULL &&
      sqlite3_prepare_v3(d->h, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL) != SQLITE_OK) {
    log_error("database: %s: %s", sql, sqlite3_errmsg(d->h));
    *slot = NULL;
    return NULL;
  }
  sqlite3_reset(*slot);
  sqlite3_clear_bindings(*slot);
  return *slot;
}

static int step_done(struct sq *d, sqlite3_stmt *st, const char *what)
{
  if (st == NULL)
    return -1;
  if (sqlite3_step(st) != SQLITE_DONE) {
    log_error("database: %s: %s", what, sqlite3_errmsg(d->h));
    sqlite3_reset(st);
    return -1;
  }
  sqlite3_reset(st);
  return 0;
}

static int sq_tx_begin(struct db *db)
{
  struct sq *d = (struct sq *)db;
  pthread_mutex_lock(&d->mu);
  if (exec(d, "BEGIN IMMEDIATE") < 0) {
    pthread_mutex_unlock(&d->mu);
    return -1;
  }
  return 0;
}

static int sq_tx_end(struct db *db, int ok)
{
  struct sq *d = (struct sq *)db;
  int rc = 0;

  if (!ok || exec(d, "COMMIT") < 0) {
    exec(d, "ROLLBACK");
    rc = -1;
  }
  pthread_mutex_unlock(&d->mu);
  return rc;
}

static int sq_tx_stats(struct db *db, const struct db_stats *r)
{
  struct sq *d = (struct sq *)db;
  sqlite3_stmt *st = prepared(d, &d->stats_put,
                              "UPDATE package_stats SET requests = ?2, bytes_sent = ?3,"
                              " downloads = ?4 WHERE package_id = ?1");
  if (st == NULL)
    return -1;
  bind_text(st, 1, r->id);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)r->requests);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)r->bytes_sent);
  sqlite3_bind_int64(st, 4, (sqlite3_int64)r->downloads);
  return step_done(d, st, "statistics");
}

static int sq_tx_device_put(struct db *db, const char *id, const char *model, const char *state,
                            const char *rollout_id, const char *doc)
{
  struct sq *d = (struct sq *)db;
  sqlite3_stmt *st = prepared(d, &d->dev_put,
                              "INSERT INTO devices (id, model, state, rollout_id, doc)"
                              " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(id) DO UPDATE SET"
                              " model = excluded.model, state = excluded.state,"
                              " rollout_id = excluded.rollout_id, doc = excluded.doc");
  if (st == NULL)
    return -1;
  bind_text(st, 1, id);
  bind_text(st, 2, model);
  bind_text(st, 3, state);
  if (rollout_id != NULL)
    bind_text(st, 4, rollout_id);
  bind_text(st, 5, doc);
  return step_done(d, st, "save device");
}

static int sq_tx_device_delete(struct db *db, const char *id)
{
  struct sq *d = (struct sq *)db;
  sqlite3_stmt *st = prepared(d, &d->dev_del, "DELETE FROM devices WHERE id = ?1");
  sqlite3_stmt *ev;

  if (st == NULL)
    return -1;
  bind_text(st, 1, id);
  if (step_done(d, st, "delete device") < 0)
    return -1;
  ev = prepared(d, &d->events_del, "DELETE FROM device_events WHERE device_id = ?1");
  if (ev == NULL)
    return -1;
  bind_text(ev, 1, id);
  return step_done(d, ev, "delete device events");
}

static int sq_tx_event(struct db *db, const char *device_id, int64_t at_ms, const char *kind,
                       const char *detail)
{
  struct sq *d = (struct sq *)db;
  sqlite3_stmt *st = prepared(d, &d->event_add,
                              "INSERT INTO device_events (device_id, at, kind, detail)"
                              " VALUES (?1, ?2, ?3, ?4)");
  if (st == NULL)
    return -1;
  bind_text(st, 1, device_id);
  sqlite3_bind_int64(st, 2, at_ms);
  bind_text(st, 3, kind);
  bind_text(st, 4, detail);
  return step_done(d, st, "event");
}

static int sq_tx_events_trim(struct db *db, const char *device_id, int keep)
{
  struct sq *d = (struct sq *)db;
  sqlite3_stmt *st = prepared(d, &d->events_trim,
                              "DELETE FROM device_events WHERE device_id = ?1 AND id <="
                              " (SELECT id FROM device_events WHERE device_id = ?1"
                              " ORDER BY id DESC LIMIT 1 OFFSET ?2)");
  if (st == NULL)
    return -1;
  bind_text(st, 1, device_id);
  sqlite3_bind_int(st, 2, keep);
  return step_done(d, st, "trim events");
}

static int sq_tx_rollout_put(struct db *db, const char *id, const char *state, const char *doc)
{
  struct sq *d = (struct sq *)db;
  sqlite3_stmt *st = prepared(d, &d->rollout_put,
                              "INSERT INTO rollouts (id, state, doc) VALUES (?1, ?2, ?3)"
                              " ON CONFLICT(id) DO UPDATE SET state = excluded.state,"
                              " doc = excluded.doc");
  if (st == NULL)
    return -1;
  bind_text(st, 1, id);
  bind_text(st, 2, state);
  bind_text(st, 3, doc);
  return step_done(d, st, "save rollout");
}

/* Runs a query (with an optional text parameter ?1 and integers ?2, ?3)
 * and calls row(st, arg) for each row; non-zero stops. */
static int query_rows(struct sq *d, const char *sql, const char *param, int64_t i2, int64_t i3,
                      int (*row)(sqlite3_stmt *st, void *arg), void *arg)
{
  sqlite3_stmt *st = NULL;
  int rc = -1, step;

  pthread_mutex_lock(&d->mu);
  if (sqlite3_prepare_v2(d->h, sql, -1, &st, NULL) != SQLITE_OK)
    goto out;
  if (param != NULL)
    bind_text(st, 1, param);
  if (sqlite3_bind_parameter_count(st) >= 3) {
    sqlite3_bind_int64(st, 2, i2);
    sqlite3_bind_int64(st, 3, i3);
  }
  while ((step = sqlite3_step(st)) == SQLITE_ROW)
    if (row(st, arg) != 0)
      break;
  rc = (step == SQLITE_DONE || step == SQLITE_ROW) ? 0 : -1;
out:
  if (rc < 0)
    log_error("database: %s: %s", sql, sqlite3_errmsg(d->h));
  sqlite3_finalize(st);
  pthread_mutex_unlock(&d->mu);
  return rc;
}

struct doc_cb {
  int (*cb)(const char *key, const char *doc, void *arg);
  void *arg;
};

static int doc_row(sqlite3_stmt *st, void *arg)
{
  struct doc_cb *c = arg;
  return c->cb(col_text(st, 0), col_text(st, 1), c->arg);
}

/* Calls cb(key, doc) for each row of a (key, doc) query. */
static int load_docs(struct sq *d, const char *sql, int (*cb)(const char *, const char *, void *),
                     void *arg)
{
  struct doc_cb c = {cb, arg};
  return query_rows(d, sql, NULL, 0, 0, doc_row, &c);
}

static int sq_devices_load(struct db *db, int (*cb)(const char *id, const char *doc, void *arg),
                           void *arg)
{
  struct sq *d = (struct sq *)db;
  return load_docs(d, "SELECT id, doc FROM devices ORDER BY id", cb, arg);
}

static int sq_devices_page(struct db *db, const char *state, const char *after, int limit,
                           int (*cb)(const char *id, const char *doc, void *arg), void *arg)
{
  struct sq *d = (struct sq *)db;
  /* by the primary key, or by (state, id): no sort either way */
  const char *sql = state != NULL
                        ? "SELECT id, doc FROM devices WHERE state = ?3 AND id > ?1"
                          " ORDER BY id LIMIT ?2"
                        : "SELECT id, doc FROM devices WHERE id > ?1 ORDER BY id LIMIT ?2";
  sqlite3_stmt *st = NULL;
  int n = 0, step;

  if (limit <= 0)
    return -1;
  pthread_mutex_lock(&d->mu);
  if (sqlite3_prepare_v2(d->h, sql, -1, &st, NULL) != SQLITE_OK) {
    log_error("database: %s: %s", sql, sqlite3_errmsg(d->h));
    pthread_mutex_unlock(&d->mu);
    return -1;
  }
  bind_text(st, 1, after);
  sqlite3_bind_int(st, 2, limit);
  if (state != NULL)
    bind_text(st, 3, state);
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    n++;
    if (cb(col_text(st, 0), col_text(st, 1), arg) != 0)
      break;
  }
  if (step != SQLITE_DONE && step != SQLITE_ROW) {
    log_error("database: load devices: %s", sqlite3_errmsg(d->h));
    n = -1;
  }
  sqlite3_finalize(st);
  pthread_mutex_unlock(&d->mu);
  return n;
}

static int sq_rollouts_load(struct db *db, int (*cb)(const char *id, const char *doc, void *arg),
                            void *arg)
{
  struct sq *d = (struct sq *)db;
  return load_docs(d, "SELECT id, doc FROM rollouts ORDER BY rowid", cb, arg);
}

struct event_cb {
  int (*cb)(int64_t id, const char *kind, const char *detail, void *arg);
  void *arg;
};

static int event_row(sqlite3_stmt *st, void *arg)
{
  struct event_cb *c = arg;
  return c->cb(sqlite3_column_int64(st, 0), col_text(st, 1), col_text(st, 2), c->arg);
}

static int sq_events_page(struct db *db, const char *device_id, int64_t after, int limit, int desc,
                          int (*cb)(int64_t id, const char *kind, const char *detail, void *arg),
                          void *arg)
{
  struct sq *d = (struct sq *)db;
  struct event_cb c = {cb, arg};
  return query_rows(d,
                    desc ? "SELECT id, kind, detail FROM device_events WHERE device_id = ?1"
                           " AND id < ?2 ORDER BY id DESC LIMIT ?3"
                         : "SELECT id, kind, detail FROM device_events WHERE device_id = ?1"
                           " AND id > ?2 ORDER BY id LIMIT ?3",
                    device_id, after, limit, event_row, &c);
}

static int sq_integrity(struct db *db, char *msg, size_t len)
{
  struct sq *d = (struct sq *)db;
  sqlite3_stmt *st = NULL;
  int rc = -1;

  pthread_mutex_lock(&d->mu);
  if (sqlite3_prepare_v2(d->h, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    snprintf(msg, len, "%s", col_text(st, 0));
    rc = strcmp(msg, "ok") == 0 ? 0 : -1;
  } else {
    snprintf(msg, len, "%s", sqlite3_errmsg(d->h));
  }
  sqlite3_finalize(st);
  pthread_mutex_unlock(&d->mu);
  return rc;
}

/* One file, one connection: reachable whenever open. */
static int sq_reachable(struct db *db, char *msg, size_t len)
{
  (void)db;
  snprintf(msg, len, "ok");
  return 1;
}

static const struct db_ops sq_ops = {
    .name = "sqlite",
    .close = sq_close,
    .package_insert = sq_package_insert,
    .package_delete = sq_package_delete,
    .package_load = sq_package_load,
    .sha256_users = sq_sha256_users,
    .tx_begin = sq_tx_begin,
    .tx_end = sq_tx_end,
    .tx_stats = sq_tx_stats,
    .tx_device_put = sq_tx_device_put,
    .tx_device_delete = sq_tx_device_delete,
    .tx_event = sq_tx_event,
    .tx_rollout_put = sq_tx_rollout_put,
    .tx_events_trim = sq_tx_events_trim,
    .devices_load = sq_devices_load,
    .devices_page = sq_devices_page,
    .rollouts_load = sq_rollouts_load,
    .events_page = sq_events_page,
    .integrity = sq_integrity,
    .reachable = sq_reachable,
};
