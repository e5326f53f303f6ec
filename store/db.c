/* db.c: each db_* call goes to the backend the store opened (db.h). */
#include "autoconfig.h"

#include "db.h"

void db_close(struct db *d)
{
  if (d != NULL)
    d->ops->close(d);
}

const char *db_backend(const struct db *d) { return d->ops->name; }

int db_package_insert(struct db *d, const struct db_package *p)
{
  return d->ops->package_insert(d, p);
}

int db_package_delete(struct db *d, const char *id) { return d->ops->package_delete(d, id); }

int db_package_load(struct db *d, int (*cb)(const struct db_package *p, void *arg), void *arg)
{
  return d->ops->package_load(d, cb, arg);
}

int db_sha256_users(struct db *d, const char *sha256) { return d->ops->sha256_users(d, sha256); }

int db_tx_begin(struct db *d) { return d->ops->tx_begin(d); }

int db_tx_end(struct db *d, int ok) { return d->ops->tx_end(d, ok); }

int db_tx_stats(struct db *d, const struct db_stats *row) { return d->ops->tx_stats(d, row); }

int db_tx_device_put(struct db *d, const char *id, const char *model, const char *state,
                     const char *rollout_id, const char *doc)
{
  return d->ops->tx_device_put(d, id, model, state, rollout_id, doc);
}

int db_tx_device_delete(struct db *d, const char *id) { return d->ops->tx_device_delete(d, id); }

int db_tx_event(struct db *d, const char *device_id, int64_t at_ms, const char *kind,
                const char *detail)
{
  return d->ops->tx_event(d, device_id, at_ms, kind, detail);
}

int db_tx_rollout_put(struct db *d, const char *id, const char *state, const char *doc)
{
  return d->ops->tx_rollout_put(d, id, state, doc);
}

int db_tx_events_trim(struct db *d, const char *device_id, int keep)
{
  return d->ops->tx_events_trim(d, device_id, keep);
}

int db_devices_load(struct db *d, db_doc_cb cb, void *arg)
{
  return d->ops->devices_load(d, cb, arg);
}

int db_devices_page(struct db *d, const char *state, const char *after, int limit, db_doc_cb cb,
                    void *arg)
{
  if (limit <= 0)
    return -1;
  return d->ops->devices_page(d, state, after, limit, cb, arg);
}

int db_rollouts_load(struct db *d, db_doc_cb cb, void *arg)
{
  return d->ops->rollouts_load(d, cb, arg);
}

int db_events_page(struct db *d, const char *device_id, int64_t after, int limit, int desc,
                   db_event_cb cb, void *arg)
{
  return d->ops->events_page(d, device_id, after, limit, desc, cb, arg);
}

int db_integrity(struct db *d, char *msg, size_t len) { return d->ops->integrity(d, msg, len); }

int db_reachable(struct db *d, char *msg, size_t len) { return d->ops->reachable(d, msg, len); }

#ifndef HAVE_LIBPQ
#include <stdio.h>

int db_pg_open(const char *conninfo, struct db **out, char *err, size_t errlen)
{
  (void)conninfo;
  *out = NULL;
  snprintf(err, errlen, "this dfotad was built without PostgreSQL (configure --with-postgresql)");
  return -1;
}

int db_pg_open_nodes(const char *conninfo, int shared, struct db **out, char *err, size_t errlen)
{
  (void)shared;
  return db_pg_open(conninfo, out, err, errlen);
}

const char *db_pg_version(void) { return NULL; }
#endif

int db_can_share(const struct db *d) { return d->ops->tx_shared_begin != NULL; }

int db_tx_shared_begin(struct db *d, const struct db_changes *c)
{
  /* SQLite is one file on one machine: one node */
  return d->ops->tx_shared_begin ? d->ops->tx_shared_begin(d, c) : -1;
}

int64_t db_shared_seen(struct db *d) { return d->ops->shared_seen ? d->ops->shared_seen(d) : 0; }

int db_tx_pkg_sweep(struct db *d, int grace_s, int (*cb)(const char *sha256, void *arg), void *arg)
{
  return d->ops->tx_pkg_sweep ? d->ops->tx_pkg_sweep(d, grace_s, cb, arg) : 0;
}

int db_tx_job_claim(struct db *d, const char *job, const char *node, int lease_s)
{
  /* a database nobody shares: the one node holds every job */
  return d->ops->tx_job_claim ? d->ops->tx_job_claim(d, job, node, lease_s) : 1;
}
