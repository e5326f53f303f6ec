/* store.c: the package catalog and its files.
 *
 * Layout of the state directory:
 *   dfotad.db            metadata (db_sqlite.c), unless the store is on
 *                        PostgreSQL (db_pg.c: [store] backend = postgresql)
 *   packages/<sha256>    package contents, read-only, named by their hash
 *   tmp/                 uploads in progress; emptied at start
 *
 * The catalog is an in-memory hash table of referenced packages, loaded at
 * start and kept in step with the database by the admin operations; the data
 * plane reads only the catalog, never the database. */
#include "autoconfig.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../util/log.h"
#include "../util/util.h"
#include "db.h"
#include "store.h"
#include "store_int.h"
#include "writer.h"

static unsigned hash_id(const char *id) { return hash_str(id) % BUCKETS; }

static char *path_join(const char *a, const char *b)
{
  size_t n = strlen(a) + strlen(b) + 2;
  char *p = malloc(n);

  if (p != NULL)
    snprintf(p, n, "%s/%s", a, b);
  return p;
}

static int mkdir_p(const char *path, mode_t mode)
{
  char buf[4096];

  if (strlen(path) >= sizeof(buf))
    return -1;
  snprintf(buf, sizeof(buf), "%s", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
      return -1;
    *p = '/';
  }
  if (mkdir(buf, mode) < 0 && errno != EEXIST)
    return -1;
  return 0;
}

int fsync_dir(const char *dir)
{
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int rc;

  if (fd < 0)
    return -1;
  rc = fsync(fd);
  close(fd);
  return rc;
}

/* ---- packages ---------------------------------------------------------- */

static void package_free(struct package *p)
{
  if (p->map != NULL)
    munmap((void *)p->map, p->size);
  if (p->fd >= 0)
    close(p->fd);
  free(p->model);
  free(p->from);
  free(p->to);
  free(p->name);
  free(p->damage);
  free(p);
}

void package_ref(struct package *p)
{
  atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

void package_unref(struct package *p)
{
  if (p != NULL && atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
    package_free(p);
}

static void mark_damaged(struct package *p, const char *what, const char *detail)
{
  char buf[256];

  snprintf(buf, sizeof(buf), "%s%s", what, detail);
  free(p->damage);
  p->damage = strdup(buf);
  p->status = PKG_DAMAGED;
  if (p->map != NULL)
    munmap((void *)p->map, p->size);
  p->map = NULL;
  if (p->fd >= 0)
    close(p->fd);
  p->fd = -1;
}

/* Hashes an open file from its start. 0 or -1. */
static int hash_fd(int fd, char out[65])
{
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  unsigned char buf[1 << 16], digest[32];
  unsigned dl = 0;
  off_t off = 0;
  ssize_t r;
  int rc = -1;

  if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
    goto out;
  while ((r = pread(fd, buf, sizeof(buf), off)) > 0) {
    EVP_DigestUpdate(md, buf, (size_t)r);
    off += r;
  }
  if (r < 0 || EVP_DigestFinal_ex(md, digest, &dl) != 1)
    goto out;
  hex_encode(digest, 32, out);
  rc = 0;
out:
  EVP_MD_CTX_free(md);
  return rc;
}

/* Opens the package's file, safely: no symlinks, a regular file of the
 * recorded size; maps it. verify: also check its hash. The package is
 * marked damaged (and not served) when anything disagrees. */
void package_open_file(struct store *s, struct package *p, int verify)
{
  char path[4096];
  struct stat st;
  void *map;

  snprintf(path, sizeof(path), "%s/%s", s->pkg_dir, p->sha256);
  /* SECURITY: the path comes from our database, never from a request;
   * O_NOFOLLOW and S_ISREG keep a planted link or device from being served */
  p->fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (p->fd < 0) {
    mark_damaged(p, "file missing: ", strerror(errno));
    return;
  }
  if (fstat(p->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    mark_damaged(p, "not a regular file", "");
    return;
  }
  if ((uint64_t)st.st_size != p->size) {
    char d[64];
    snprintf(d, sizeof(d), "%lld bytes on disk", (long long)st.st_size);
    mark_damaged(p, "size differs from the database: ", d);
    return;
  }
  if (verify) {
    char sha[65];
    if (hash_fd(p->fd, sha) < 0) {
      mark_damaged(p, "cannot read file", "");
      return;
    }
    if (strcmp(sha, p->sha256) != 0) {
      mark_damaged(p, "sha256 differs from the database; on disk: ", sha);
      return;
    }
  }
  map = mmap(NULL, p->size, PROT_READ, MAP_SHARED, p->fd, 0);
  if (map == MAP_FAILED) {
    mark_damaged(p, "cannot map: ", strerror(errno));
    return;
  }
  p->map = map;
  p->status = PKG_OK;
}

struct package *package_new(const struct db_package *r)
{
  struct package *p = calloc(1, sizeof(*p));

  if (p == NULL)
    return NULL;
  snprintf(p->id, sizeof(p->id), "%s", r->id);
  p->model = strdup(r->model);
  p->from = strdup(r->from);
  p->to = strdup(r->to);
  p->name = strdup(r->name);
  snprintf(p->sha256, sizeof(p->sha256), "%s", r->sha256);
  p->size = r->size;
  p->created = r->created;
  p->fd = -1;
  atomic_init(&p->refs, 1); /* the catalog's */
  atomic_init(&p->requests, r->requests);
  atomic_init(&p->bytes_sent, r->bytes_sent);
  atomic_init(&p->downloads, r->downloads);
  p->flushed_requests = r->requests;
  p->flushed_bytes = r->bytes_sent;
  p->flushed_downloads = r->downloads;
  if (p->model == NULL || p->from == NULL || p->to == NULL || p->name == NULL) {
    package_free(p);
    return NULL;
  }
  return p;
}

void catalog_insert(struct store *s, struct package *p)
{
  unsigned h = hash_id(p->id);

  /* creation order: the database loads oldest first, uploads come after */
  p->seq = ++s->seq;
  struct package **pp = &s->bucket[h];

  /* append, so that a bucket keeps creation order */
  while (*pp != NULL)
    pp = &(*pp)->next;
  p->next = NULL;
  *pp = p;
}

struct package *catalog_remove(struct store *s, const char *id)
{
  for (struct package **pp = &s->bucket[hash_id(id)]; *pp; pp = &(*pp)->next)
    if (strcmp((*pp)->id, id) == 0) {
      struct package *p = *pp;
      *pp = p->next;
      p->next = NULL;
      return p;
    }
  return NULL;
}

struct package *store_package_get(struct store *s, const char *id)
{
  struct package *p;

  pthread_rwlock_rdlock(&s->lock);
  for (p = s->bucket[hash_id(id)]; p; p = p->next)
    if (strcmp(p->id, id) == 0) {
      package_ref(p);
      break;
    }
  pthread_rwlock_unlock(&s->lock);
  return p;
}

static int cmp_created(const void *a, const void *b)
{
  const struct package *x = *(struct package *const *)a, *y = *(struct package *const *)b;

  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void store_package_foreach(struct store *s, const char *model, const char *from, const char *to,
                           package_cb cb, void *arg)
{
  struct package **list = NULL;
  size_t n = 0, cap = 0;

  /* take references under the lock, call back without it */
  pthread_rwlock_rdlock(&s->lock);
  for (int b = 0; b < BUCKETS; b++)
    for (struct package *p = s->bucket[b]; p; p = p->next) {
      if ((model && strcmp(model, p->model)) || (from && strcmp(from, p->from)) ||
          (to && strcmp(to, p->to)))
        continue;
      if (n == cap) {
        size_t nc = cap ? cap * 2 : 64;
        struct package **nl = realloc(list, nc * sizeof(*nl));
        if (nl == NULL)
          break;
        list = nl;
        cap = nc;
      }
      package_ref(p);
      list[n++] = p;
    }
  pthread_rwlock_unlock(&s->lock);
  if (n > 1)
    qsort(list, n, sizeof(*list), cmp_created);
  for (size_t i = 0; i < n; i++) {
    int stop = cb(list[i], arg);
    for (size_t j = i; stop && j < n; j++)
      package_unref(list[j]);
    if (stop)
      break;
    package_unref(list[i]);
  }
  free(list);
}

/* ---- statistics -------------------------------------------------------- */

void store_record_request(struct package *p)
{
  atomic_fetch_add_explicit(&p->requests, 1, memory_order_relaxed);
}

void store_record_delivered(struct package *p, uint64_t bytes, int reached_end)
{
  if (bytes > 0)
    atomic_fetch_add_explicit(&p->bytes_sent, bytes, memory_order_relaxed);
  if (reached_end)
    atomic_fetch_add_explicit(&p->downloads, 1, memory_order_relaxed);
}

struct flush_ctx {
  struct db_stats *rows;
  struct package **pkgs;
  int n, cap;
};

/* The writer's job, every interval and on store_sync(): one transaction
 * with every package whose counters moved since the last flush, and what
 * the flush hook (the fleet) has to write. */
static void flush_all(void *arg)
{
  struct store *s = arg;
  struct flush_ctx f = {0};
  int ok = 1;

  pthread_rwlock_rdlock(&s->lock);
  for (int b = 0; b < BUCKETS; b++)
    for (struct package *p = s->bucket[b]; p; p = p->next) {
      uint64_t r = atomic_load(&p->requests), by = atomic_load(&p->bytes_sent),
               d = atomic_load(&p->downloads);
      if (r == p->flushed_requests && by == p->flushed_bytes && d == p->flushed_downloads)
        continue;
      if (f.n == f.cap) {
        int nc = f.cap ? f.cap * 2 : 32;
        struct db_stats *nr = realloc(f.rows, (size_t)nc * sizeof(*nr));
        struct package **np;
        if (nr == NULL)
          break;
        f.rows = nr;
        np = realloc(f.pkgs, (size_t)nc * sizeof(*np));
        if (np == NULL)
          break;
        f.pkgs = np;
        f.cap = nc;
      }
      package_ref(p);
      f.pkgs[f.n] = p;
      f.rows[f.n] = (struct db_stats){p->id, r, by, d};
      f.n++;
    }
  pthread_rwlock_unlock(&s->lock);

  if (f.n > 0 || s->hook != NULL) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (store_tx_open(s) == 0) {
      for (int i = 0; i < f.n && ok; i++)
        ok = db_tx_stats(s->db, &f.rows[i]) == 0;
      s->tx_failed = 0;
      if (ok && s->hook != NULL)
        s->hook(s, s->hook_arg);
      ok = ok && !s->tx_failed;
      if (db_tx_end(s->db, ok) < 0) {
        ok = 0;
        log_error("store: the writer's commit failed; it is retried at the next flush");
      }
    } else {
      ok = 0;
    }
    store_tx_closed(s, ok);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    atomic_store(&s->last_commit_us,
                 (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000));
    atomic_fetch_add(&s->commits, 1);
  }
  if (ok)
    for (int i = 0; i < f.n; i++) {
      f.pkgs[i]->flushed_requests = f.rows[i].requests;
      f.pkgs[i]->flushed_bytes = f.rows[i].bytes_sent;
      f.pkgs[i]->flushed_downloads = f.rows[i].downloads;
    }
  atomic_store(&s->last_flush_ok, ok);
  if (s->hook_done != NULL)
    s->hook_done(s->hook_arg, ok);
  for (int i = 0; i < f.n; i++)
    package_unref(f.pkgs[i]);
  free(f.rows);
  free(f.pkgs);
}

int store_sync(struct store *s)
{
  writer_sync(s->writer);
  return atomic_load(&s->last_flush_ok) ? 0 : -1;
}

int store_reachable(struct store *s, char *msg, size_t len)
{
  if (!db_reachable(s->db, msg, len))
    return 0;
  /* a commit that failed (the connection broke in it) counts until one
   * goes through: what it held, the device must not be told yet */
  if (!atomic_load(&s->last_flush_ok)) {
    snprintf(msg, len, "the last commit failed; retried at the next flush");
    return 0;
  }
  return 1;
}

const char *store_backend(struct store *s) { return db_backend(s->db); }

const char *store_pg_version(void) { return db_pg_version(); }

int store_sync_async(struct store *s, void (*done)(void *arg), void *arg)
{
  return writer_sync_async(s->writer, done, arg);
}

/* ---- open and close ---------------------------------------------------- */

static int load_one(const struct db_package *r, void *arg)
{
  struct store *s = arg;
  struct package *p = package_new(r);

  if (p == NULL)
    return -1;
  package_open_file(s, p, 1);
  if (p->status != PKG_OK)
    log_error("package %s (%s %s -> %s): %s; it will not be served until replaced", p->id, p->model,
              p->from, p->to, p->damage);
  catalog_insert(s, p);
  return 0;
}

/* Removes what interrupted uploads left, and package files that no package
 * refers to (a crash between moving a file into place and recording it). */
static void sweep(struct store *s)
{
  DIR *d;
  struct dirent *e;

  if ((d = opendir(s->tmp_dir)) != NULL) {
    while ((e = readdir(d)) != NULL) {
      if (e->d_name[0] == '.')
        continue;
      if (unlinkat(dirfd(d), e->d_name, 0) == 0)
        log_info("removed unfinished upload %s/%s", s->tmp_dir, e->d_name);
    }
    closedir(d);
  }
  /* a package folder shared by several nodes may hold a file another node
   * has just moved in and not recorded yet: left alone */
  if (!s->shared && (d = opendir(s->pkg_dir)) != NULL) {
    while ((e = readdir(d)) != NULL) {
      if (e->d_name[0] == '.')
        continue;
      if (strlen(e->d_name) != 64 || db_sha256_users(s->db, e->d_name) == 0) {
        if (unlinkat(dirfd(d), e->d_name, 0) == 0)
          log_info("removed unreferenced file %s/%s", s->pkg_dir, e->d_name);
      }
    }
    closedir(d);
  }
}

int store_open(const char *state_dir, int flush_interval_ms, struct store **out, char *err,
               size_t errlen)
{
  return store_open_with(state_dir, NULL, flush_interval_ms, out, err, errlen);
}

int store_open_with(const char *state_dir, const char *postgresql, int flush_interval_ms,
                    struct store **out, char *err, size_t errlen)
{
  return store_open_nodes(state_dir, postgresql, 0, flush_interval_ms, out, err, errlen);
}

int store_open_nodes(const char *state_dir, const char *postgresql, int shared,
                     int flush_interval_ms, struct store **out, char *err, size_t errlen)
{
  struct store *s = calloc(1, sizeof(*s));
  char *dbpath = NULL;

  if (s == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  pthread_rwlock_init(&s->lock, NULL);
  pthread_mutex_init(&s->upload_mu, NULL);
  pthread_mutex_init(&s->dec_mu, NULL);
  pthread_cond_init(&s->dec_done, NULL);
  atomic_init(&s->last_flush_ok, 1);
  s->dir = strdup(state_dir);
  s->pkg_dir = path_join(state_dir, "packages");
  s->tmp_dir = path_join(state_dir, "tmp");
  dbpath = path_join(state_dir, "dfotad.db");
  if (!s->dir || !s->pkg_dir || !s->tmp_dir || !dbpath || recheck_init(s) < 0) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  if (mkdir_p(state_dir, 0750) < 0 || mkdir_p(s->pkg_dir, 0750) < 0 ||
      mkdir_p(s->tmp_dir, 0700) < 0) {
    snprintf(err, errlen, "cannot create %s: %s", state_dir, strerror(errno));
    goto fail;
  }
  if (shared && (postgresql == NULL || postgresql[0] == '\0')) {
    snprintf(err, errlen, "[store] nodes = shared needs backend = postgresql");
    goto fail;
  }
  s->shared = shared;
  if (postgresql != NULL && postgresql[0] != '\0') {
    if (db_pg_open_nodes(postgresql, shared, &s->db, err, errlen) < 0)
      goto fail;
    free(dbpath);
    dbpath = strdup("the PostgreSQL database");
  } else if (db_open(dbpath, &s->db, err, errlen) < 0) {
    goto fail;
  }
  sweep(s);
  if (db_package_load(s->db, load_one, s) < 0) {
    snprintf(err, errlen, "cannot load packages from %s", dbpath ? dbpath : "the database");
    goto fail;
  }
  s->writer = writer_start(flush_interval_ms, flush_all, s);
  if (s->writer == NULL) {
    snprintf(err, errlen, "cannot start the writer");
    goto fail;
  }
  free(dbpath);
  *out = s;
  return 0;
fail:
  free(dbpath);
  store_close(s);
  return -1;
}

void store_close(struct store *s)
{
  if (s == NULL)
    return;
  recheck_stop(s);
  writer_stop(s->writer); /* flushes a last time */
  store_decisions_drop(s);
  for (int b = 0; b < BUCKETS; b++)
    while (s->bucket[b]) {
      struct package *p = s->bucket[b];
      s->bucket[b] = p->next;
      package_unref(p);
    }
  db_close(s->db);
  pthread_rwlock_destroy(&s->lock);
  pthread_mutex_destroy(&s->upload_mu);
  pthread_mutex_destroy(&s->dec_mu);
  pthread_cond_destroy(&s->dec_done);
  free(s->dir);
  free(s->pkg_dir);
  free(s->tmp_dir);
  free(s);
}

int store_check(struct store *s, char *msg, size_t len) { return db_integrity(s->db, msg, len); }

/* ---- fleet persistence ------------------------------------------------- */

void store_set_flush_hook(struct store *s, store_flush_hook hook,
                          void (*done)(void *arg, int committed), void *arg)
{
  s->hook = hook;
  s->hook_done = done;
  s->hook_arg = arg;
}

static void tx_result(struct store *s, int rc)
{
  if (rc != 0)
    s->tx_failed = 1;
}

void store_tx_device_put(struct store *s, const char *id, const char *model, const char *state,
                         const char *rollout_id, const char *doc)
{
  tx_result(s, db_tx_device_put(s->db, id, model, state, rollout_id, doc));
}

void store_tx_device_delete(struct store *s, const char *id)
{
  tx_result(s, db_tx_device_delete(s->db, id));
}

void store_tx_event(struct store *s, const char *device_id, int64_t at_ms, const char *kind,
                    const char *detail)
{
  tx_result(s, db_tx_event(s->db, device_id, at_ms, kind, detail));
}

void store_tx_rollout_put(struct store *s, const char *id, const char *state, const char *doc)
{
  tx_result(s, db_tx_rollout_put(s->db, id, state, doc));
}

int store_devices_load(struct store *s, store_doc_cb cb, void *arg)
{
  return db_devices_load(s->db, cb, arg);
}

int store_devices_page(struct store *s, const char *state, const char *after, int limit,
                       store_doc_cb cb, void *arg)
{
  return db_devices_page(s->db, state, after, limit, cb, arg);
}

struct one_doc {
  const char *id;
  char *doc;
  int found;
};

static int one_row(const char *id, const char *doc, void *arg)
{
  struct one_doc *o = arg;

  if (strcmp(id, o->id) == 0) {
    o->found = 1;
    o->doc = strdup(doc);
  }
  return 1;
}

/* A page of one row after the id's immediate predecessor (its last byte
 * one lower, then '~', above every byte an id may hold): the primary key
 * answers it on every backend with the call each already has. */
int store_device_get(struct store *s, const char *id, char **doc)
{
  char after[66];
  size_t n = strlen(id);
  struct one_doc o = {id, NULL, 0};

  *doc = NULL;
  if (n == 0 || n > sizeof(after) - 2)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (id[i] < '!' || id[i] > '}')
      return 0; /* no stored id holds such a byte */
  memcpy(after, id, n);
  after[n - 1]--;
  after[n] = '~';
  after[n + 1] = '\0';
  if (db_devices_page(s->db, NULL, after, 1, one_row, &o) < 0)
    return -1;
  if (o.found && o.doc == NULL)
    return -1; /* out of memory */
  *doc = o.doc;
  return o.found;
}

int store_rollouts_load(struct store *s, store_doc_cb cb, void *arg)
{
  return db_rollouts_load(s->db, cb, arg);
}

int store_events_page(struct store *s, const char *device_id, int64_t after, int limit,
                      int newest_first, store_event_cb cb, void *arg)
{
  if (newest_first && after <= 0)
    after = INT64_MAX; /* from the newest */
  return db_events_page(s->db, device_id, after, limit, newest_first, cb, arg);
}

void store_tx_events_trim(struct store *s, const char *device_id, int keep)
{
  tx_result(s, db_tx_events_trim(s->db, device_id, keep));
}

void store_writer_stats(struct store *s, uint64_t *commits, uint64_t *last_commit_us)
{
  *commits = atomic_load(&s->commits);
  *last_commit_us = atomic_load(&s->last_commit_us);
}

int store_package_verify(struct store *s, const char *id)
{
  struct package *p = store_package_get(s, id);
  char sha[65];
  int rc = 0;

  if (p == NULL)
    return STORE_NOTFOUND;
  if (p->status != PKG_OK || p->fd < 0 || hash_fd(p->fd, sha) < 0 || strcmp(sha, p->sha256) != 0) {
    log_error("package %s: re-check failed: its file does not match its sha256; no longer served",
              p->id);
    pthread_mutex_lock(&s->upload_mu);
    if (p->status == PKG_OK) {
      /* the mapping stays: transfers in flight still read it */
      p->damage = strdup("re-check after a device report: the file does not match its sha256");
      p->status = PKG_DAMAGED;
    }
    pthread_mutex_unlock(&s->upload_mu);
    rc = -1;
  } else {
    log_info("package %s: re-checked, sha256 matches", p->id);
  }
  package_unref(p);
  return rc;
}
