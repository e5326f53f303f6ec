/* db.h: the database backend behind store.c. One implementation per file:
 * db_sqlite.c (the embedded default) and db_pg.c (PostgreSQL, built when
 * libpq is); db.c passes each call to the backend the store opened.
 * Nothing outside store/ includes this. */
#ifndef DFOTAD_DB_H
#define DFOTAD_DB_H

#include <stddef.h>
#include <stdint.h>

struct db_package {
  const char *id, *model, *from, *to, *name, *sha256;
  uint64_t size;
  int64_t created;
  uint64_t requests, bytes_sent, downloads;
};

struct db_stats {
  const char *id;
  uint64_t requests, bytes_sent, downloads;
};

struct db;

typedef int (*db_doc_cb)(const char *id, const char *doc, void *arg);
typedef int (*db_event_cb)(int64_t id, const char *kind, const char *detail, void *arg);

/* Several nodes on one database ([store] nodes = shared; PostgreSQL only).
 * A node's writer transaction starts with db_tx_shared_begin instead of
 * db_tx_begin: the transaction takes the fleet's transaction lock (one
 * writer transaction at a time across the nodes), then hands the caller
 * what the other nodes committed since this node's last transaction:
 * rollouts first, then devices and removals in the order they were
 * written ('r' rollout, 'd' device, 'x' device removed: doc ""), then
 * packages added since pkg_after. Writes and db_tx_end follow as usual;
 * after a commit, db_shared_seen says how far the node has seen. */
struct db_changes {
  int (*doc)(char kind, const char *id, const char *doc, void *arg);
  int (*pkg)(const struct db_package *p, int64_t seq, void *arg);
  void *arg;
  int64_t pkg_after; /* in: the last package seq the node knows */
  /* then packages deleted (on any node) since gone_after */
  int (*pkg_gone)(const char *id, int64_t seq, void *arg);
  int64_t gone_after;
};

/* A backend: its connection starts with a struct db, whose ops are its
 * implementation of the calls below (same meaning, same results). */
struct db_ops {
  const char *name;
  void (*close)(struct db *d);
  int (*package_insert)(struct db *d, const struct db_package *p);
  int (*package_delete)(struct db *d, const char *id);
  int (*package_load)(struct db *d, int (*cb)(const struct db_package *p, void *arg), void *arg);
  int (*sha256_users)(struct db *d, const char *sha256);
  int (*tx_begin)(struct db *d);
  int (*tx_end)(struct db *d, int ok);
  int (*tx_stats)(struct db *d, const struct db_stats *row);
  int (*tx_device_put)(struct db *d, const char *id, const char *model, const char *state,
                       const char *rollout_id, const char *doc);
  int (*tx_device_delete)(struct db *d, const char *id);
  int (*tx_event)(struct db *d, const char *device_id, int64_t at_ms, const char *kind,
                  const char *detail);
  int (*tx_rollout_put)(struct db *d, const char *id, const char *state, const char *doc);
  int (*tx_events_trim)(struct db *d, const char *device_id, int keep);
  int (*devices_load)(struct db *d, db_doc_cb cb, void *arg);
  int (*devices_page)(struct db *d, const char *state, const char *after, int limit, db_doc_cb cb,
                      void *arg);
  int (*rollouts_load)(struct db *d, db_doc_cb cb, void *arg);
  int (*events_page)(struct db *d, const char *device_id, int64_t after, int limit, int desc,
                     db_event_cb cb, void *arg);
  int (*integrity)(struct db *d, char *msg, size_t len);
  int (*reachable)(struct db *d, char *msg, size_t len);
  /* several nodes (NULL: this backend cannot share its database) */
  int (*tx_shared_begin)(struct db *d, const struct db_changes *c);
  int64_t (*shared_seen)(struct db *d);
  int (*tx_job_claim)(struct db *d, const char *rollout_id, const char *node, int lease_s);
  int (*tx_pkg_sweep)(struct db *d, int grace_s, int (*cb)(const char *sha256, void *arg),
                      void *arg);
};

struct db {
  const struct db_ops *ops;
};

/* Opens the SQLite database at path, creating it and applying migrations.
 * 0 or -1 (err filled). */
int db_open(const char *path, struct db **out, char *err, size_t errlen);
/* Connects to PostgreSQL (a libpq connection string or URI) and applies
 * migrations. -1 with err filled when it cannot, or when this dfotad was
 * built without libpq. */
int db_pg_open(const char *conninfo, struct db **out, char *err, size_t errlen);
/* The same for one of several nodes sharing the database (shared: no
 * single-node lock; the nodes' writer transactions take turns). */
int db_pg_open_nodes(const char *conninfo, int shared, struct db **out, char *err, size_t errlen);
/* libpq's version ("libpq 15.18"), or NULL when built without it. */
const char *db_pg_version(void);
void db_close(struct db *d);
/* "sqlite" or "postgresql" */
const char *db_backend(const struct db *d);

/* 0, STORE_EXISTS (same model/from/to), or STORE_ERR. A clash of id is
 * reported as -7 so that the caller can draw another id. */
#define DB_ID_CLASH (-7)
int db_package_insert(struct db *d, const struct db_package *p);
int db_package_delete(struct db *d, const char *id);
/* Calls cb for every package, oldest first. */
int db_package_load(struct db *d, int (*cb)(const struct db_package *p, void *arg), void *arg);
/* Packages whose content has this hash; -1 when the database cannot say. */
int db_sha256_users(struct db *d, const char *sha256);
/* The writer's transaction: begin, any number of db_tx_* writes, end
 * (ok: commit, else roll back). The database is held in between. */
int db_tx_begin(struct db *d);
int db_tx_end(struct db *d, int ok);
int db_tx_stats(struct db *d, const struct db_stats *row);
int db_tx_device_put(struct db *d, const char *id, const char *model, const char *state,
                     const char *rollout_id, const char *doc);
int db_tx_device_delete(struct db *d, const char *id); /* and its events */
int db_tx_event(struct db *d, const char *device_id, int64_t at_ms, const char *kind,
                const char *detail);
int db_tx_rollout_put(struct db *d, const char *id, const char *state, const char *doc);
/* Keeps the newest `keep` events of a device. */
int db_tx_events_trim(struct db *d, const char *device_id, int keep);

int db_devices_load(struct db *d, db_doc_cb cb, void *arg);
/* Devices by id (byte order) after `after` ("": from the first), at most
 * limit, in state `state` (NULL: any). The number of rows, or -1. */
int db_devices_page(struct db *d, const char *state, const char *after, int limit, db_doc_cb cb,
                    void *arg);
int db_rollouts_load(struct db *d, db_doc_cb cb, void *arg);
/* A device's events after id `after`, oldest first, at most limit; desc:
 * those before id `after`, newest first. */
int db_events_page(struct db *d, const char *device_id, int64_t after, int limit, int desc,
                   db_event_cb cb, void *arg);
int db_integrity(struct db *d, char *msg, size_t len);
/* Whether the database answers now: 1, or 0 with msg saying why (a
 * server that went away; the backend reconnects by itself). */
int db_reachable(struct db *d, char *msg, size_t len);
/* Whether the backend can be shared by several nodes. */
int db_can_share(const struct db *d);
/* See struct db_changes. 0, or -1 (nothing open; the database held
 * nothing). */
int db_tx_shared_begin(struct db *d, const struct db_changes *c);
/* The change number up to which the node has seen the others' writes
 * (its last committed shared transaction). */
int64_t db_shared_seen(struct db *d);
/* Inside a shared transaction, before its writes: claims (or renews) for
 * node the work left on a rollout, job "ROLLOUT/start" (a start's
 * enrolment) or "ROLLOUT/sweep" (a cancel's)
 * for lease_s seconds of the database's clock, unless another node's claim
 * is still current. 1 held, 0 another node holds it, -1 the statement
 * failed (the transaction will not commit). */
int db_tx_job_claim(struct db *d, const char *job, const char *node, int lease_s);
/* Inside a shared transaction, before its writes: forgets the package
 * removals older than grace_s seconds and calls cb with each content hash
 * no package (nor a newer removal) has any more: its file may go. 0 or -1
 * (the transaction will not commit). */
int db_tx_pkg_sweep(struct db *d, int grace_s, int (*cb)(const char *sha256, void *arg), void *arg);

#endif
