/* db.h: the database backend behind store.c. One implementation per file:
 * db_sqlite.c today. Nothing outside store/ includes this. */
#ifndef DFOTAD_DB_H
#define DFOTAD_DB_H

#include <stdint.h>

struct db;

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

/* Opens path, creating it and applying migrations. 0 or -1 (err filled). */
int db_open(const char *path, struct db **out, char *err, size_t errlen);
void db_close(struct db *d);

/* 0, STORE_EXISTS (same model/from/to), or STORE_ERR. A clash of id is
 * reported as -7 so that the caller can draw another id. */
#define DB_ID_CLASH (-7)
int db_package_insert(struct db *d, const struct db_package *p);
int db_package_delete(struct db *d, const char *id);
/* Calls cb for every package, oldest first. */
int db_package_load(struct db *d, int (*cb)(const struct db_package *p, void *arg), void *arg);
/* Packages whose content has this hash. */
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

int db_devices_load(struct db *d, int (*cb)(const char *id, const char *doc, void *arg), void *arg);
/* Devices by id after `after` ("": from the first), at most limit, in
 * state `state` (NULL: any). The number of rows, or -1. */
int db_devices_page(struct db *d, const char *state, const char *after, int limit,
                    int (*cb)(const char *id, const char *doc, void *arg), void *arg);
int db_rollouts_load(struct db *d, int (*cb)(const char *id, const char *doc, void *arg),
                     void *arg);
/* A device's events after id `after`, oldest first, at most limit. */
int db_events_page(struct db *d, const char *device_id, int64_t after, int limit,
                   int (*cb)(int64_t id, const char *kind, const char *detail, void *arg),
                   void *arg);
int db_integrity(struct db *d, char *msg, size_t len);

#endif
