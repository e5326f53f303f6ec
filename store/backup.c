/* backup.c: backup and restore of a state directory (see backup.h).
 *
 * The backup runs in its own process beside a running dfotad. The
 * database is in WAL mode, so one sqlite3_backup_step(-1) copies a single
 * read snapshot while dfotad keeps committing: device traffic does not
 * wait for it. Package files are content-addressed and never change; one
 * deleted between the snapshot and its copy makes the backup take a new
 * snapshot (a few tries). */
#include "autoconfig.h"

#include "backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../util/log.h"
#include "../util/util.h"
#include "db.h"
#include "store_int.h"

#define SNAPSHOT_TRIES 5
#define MANIFEST_MAX (64u << 20) /* bytes: a million packages fit */
#define NAME_MAX_LEN 255

struct entry {
  char hash[65];
  char name[NAME_MAX_LEN + 1];
  int written; /* restore: its copy exists (undone on failure) */
};

struct list {
  struct entry *v;
  size_t n, cap;
};

static int list_add(struct list *l, const char *hash, const char *name)
{
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    struct entry *v = realloc(l->v, cap * sizeof(*v));
    if (v == NULL)
      return -1;
    l->v = v;
    l->cap = cap;
  }
  snprintf(l->v[l->n].hash, sizeof(l->v[l->n].hash), "%s", hash);
  snprintf(l->v[l->n].name, sizeof(l->v[l->n].name), "%s", name);
  l->v[l->n].written = 0;
  l->n++;
  return 0;
}

const char *store_backend_version(void)
{
  static char buf[64];

  snprintf(buf, sizeof(buf), "SQLite %s (%s)", sqlite3_libversion(), SQLITE_VERSION);
  return buf;
}

static int is_hash(const char *s)
{
  size_t i;

  for (i = 0; i < 64; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return 0;
  return s[64] == '\0';
}

/* 1 when dir has no entry, 0 when it has one, -1 when unreadable (errno). */
static int dir_is_empty(const char *dir)
{
  DIR *d = opendir(dir);
  struct dirent *e;
  int empty = 1;

  if (d == NULL)
    return -1;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
      empty = 0;
      break;
    }
  closedir(d);
  return empty;
}

/* Creates dir (mode), or accepts an existing empty one. *created says
 * which. 0, or -1 with err. */
static int empty_dir(const char *dir, mode_t mode, int *created, char *err, size_t errlen)
{
  struct stat st;

  *created = 0;
  if (mkdir(dir, mode) == 0) {
    *created = 1;
    return 0;
  }
  if (errno != EEXIST) {
    snprintf(err, errlen, "%s: cannot create: %s", dir, strerror(errno));
    return -1;
  }
  if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
    snprintf(err, errlen, "%s: not a directory", dir);
    return -1;
  }
  switch (dir_is_empty(dir)) {
  case 1: return 0;
  case 0: snprintf(err, errlen, "%s: not empty (give an empty or new directory)", dir); return -1;
  default: snprintf(err, errlen, "%s: %s", dir, strerror(errno)); return -1;
  }
}

/* Copies src to dst (created, mode; it must not exist), hashing what it
 * copies into hex; fsyncs dst. 0; -1 with err; -2 when src is missing. */
static int copy_hashed(const char *src, const char *dst, mode_t mode, char hex[65], uint64_t *bytes,
                       char *err, size_t errlen)
{
  unsigned char buf[65536], md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  int in = -1, out = -1, rc = -1;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  ssize_t n;

  if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
    snprintf(err, errlen, "sha256: cannot start");
    goto out;
  }
  in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (in < 0) {
    rc = errno == ENOENT ? -2 : -1;
    snprintf(err, errlen, "%s: %s", src, strerror(errno));
    goto out;
  }
  if (dst != NULL) {
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (out < 0) {
      snprintf(err, errlen, "%s: %s", dst, strerror(errno));
      goto out;
    }
  }
  while ((n = read(in, buf, sizeof(buf))) != 0) {
    if (n < 0) {
      if (errno == EINTR)
        continue;
      snprintf(err, errlen, "%s: read: %s", src, strerror(errno));
      goto out;
    }
    EVP_DigestUpdate(ctx, buf, (size_t)n);
    if (bytes != NULL)
      *bytes += (uint64_t)n;
    for (ssize_t off = 0; out >= 0 && off < n;) {
      ssize_t w = write(out, buf + off, (size_t)(n - off));
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0) {
        snprintf(err, errlen, "%s: write: %s", dst, strerror(errno));
        goto out;
      }
      off += w;
    }
  }
  if (out >= 0 && (fchmod(out, mode) < 0 || fsync(out) < 0)) {
    snprintf(err, errlen, "%s: %s", dst, strerror(errno));
    goto out;
  }
  EVP_DigestFinal_ex(ctx, md, &mdlen);
  hex_encode(md, mdlen, hex);
  rc = 0;
out:
  EVP_MD_CTX_free(ctx);
  if (in >= 0)
    close(in);
  if (out >= 0 && close(out) < 0 && rc == 0) {
    snprintf(err, errlen, "%s: close: %s", dst, strerror(errno));
    rc = -1;
  }
  if (rc != 0 && out >= 0)
    unlink(dst);
  return rc;
}

/* The hash of a file (no copy). */
static int hash_file(const char *path, char hex[65], char *err, size_t errlen)
{
  return copy_hashed(path, NULL, 0, hex, NULL, err, errlen);
}

/* ---- backup -------------------------------------------------------------- */

/* One read snapshot of src_path into dst_path (a new file, journal mode
 * DELETE), and the sha256 of every package it refers to. */
static int snapshot(const char *src_path, const char *dst_path, struct list *hashes, char *err,
                    size_t errlen)
{
  sqlite3 *src = NULL, *dst = NULL;
  sqlite3_backup *b;
  sqlite3_stmt *st = NULL;
  int rc = -1, step;
  struct timespec pause = {0, 50 * 1000 * 1000};

  /* read-write without create: WAL readers write the -shm index, and a
   * missing database is an error, not a new empty one */
  if (sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
    snprintf(err, errlen, "%s: %s", src_path, src ? sqlite3_errmsg(src) : "cannot open");
    goto out;
  }
  sqlite3_busy_timeout(src, 10000);
  unlink(dst_path);
  if (sqlite3_open_v2(dst_path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
      SQLITE_OK) {
    snprintf(err, errlen, "%s: %s", dst_path, dst ? sqlite3_errmsg(dst) : "cannot open");
    goto out;
  }
  b = sqlite3_backup_init(dst, "main", src, "main");
  if (b == NULL) {
    snprintf(err, errlen, "backup: %s", sqlite3_errmsg(dst));
    goto out;
  }
  /* all pages in one step: one read transaction, one consistent snapshot */
  for (int i = 0; i < 200; i++) {
    step = sqlite3_backup_step(b, -1);
    if (step != SQLITE_BUSY && step != SQLITE_LOCKED)
      break;
    nanosleep(&pause, NULL);
  }
  if (sqlite3_backup_finish(b) != SQLITE_OK || step != SQLITE_DONE) {
    snprintf(err, errlen, "backup of %s: %s", src_path, sqlite3_errmsg(dst));
    goto out;
  }
  if (sqlite3_exec(dst, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(dst, "SELECT DISTINCT sha256 FROM packages ORDER BY sha256", -1, &st,
                         NULL) != SQLITE_OK) {
    snprintf(err, errlen, "%s: %s", dst_path, sqlite3_errmsg(dst));
    goto out;
  }
  hashes->n = 0;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    const char *h = (const char *)sqlite3_column_text(st, 0);
    if (h == NULL || !is_hash(h)) {
      snprintf(err, errlen, "%s: a package with a malformed sha256", dst_path);
      goto out;
    }
    if (list_add(hashes, h, h) < 0) {
      snprintf(err, errlen, "out of memory");
      goto out;
    }
  }
  if (step != SQLITE_DONE) {
    snprintf(err, errlen, "%s: %s", dst_path, sqlite3_errmsg(dst));
    goto out;
  }
  rc = 0;
out:
  sqlite3_finalize(st);
  sqlite3_close(src);
  sqlite3_close(dst);
  return rc;
}

static int write_text(const char *path, const char *text, char *err, size_t errlen)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  size_t len = strlen(text);

  if (fd < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) < 0) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    if (fd >= 0)
      close(fd);
    return -1;
  }
  return close(fd);
}

static int cmp_hash(const void *a, const void *b)
{
  return strcmp(((const struct entry *)a)->hash, ((const struct entry *)b)->hash);
}

/* Removes out_dir/packages files that the final snapshot does not use
 * (copied for an earlier one). */
static void drop_unused(const char *pkg_dir, const struct list *used)
{
  DIR *d = opendir(pkg_dir);
  struct dirent *e;
  char path[4096];

  if (d == NULL)
    return;
  while ((e = readdir(d)) != NULL) {
    struct entry key;
    if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof(key.hash))
      continue;
    strcpy(key.hash, e->d_name);
    /* used is sorted by hash (the snapshot's ORDER BY) */
    if (bsearch(&key, used->v, used->n, sizeof(key), cmp_hash) == NULL &&
        (size_t)snprintf(path, sizeof(path), "%s/%s", pkg_dir, e->d_name) < sizeof(path))
      unlink(path);
  }
  closedir(d);
}

static int cmp_entry(const void *a, const void *b)
{
  return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

int store_backup(const char *state_dir, const char *out_dir, const struct backup_extra *extra,
                 int n_extra, const char *info, struct backup_counts *counts, char *err,
                 size_t errlen)
{
  struct list hashes = {0}, manifest = {0};
  char src[4096], dst[4096], tmp[4096], hex[65];
  char *text = NULL;
  size_t text_len = 0;
  FILE *mf = NULL;
  int created, rc = -1, missing = 1;
  struct stat st;

  memset(counts, 0, sizeof(*counts));
  snprintf(src, sizeof(src), "%s/dfotad.db", state_dir);
  if (stat(src, &st) < 0) {
    snprintf(err, errlen, "%s: %s (is %s a dfotad state directory?)", src, strerror(errno),
             state_dir);
    return -1;
  }
  if (empty_dir(out_dir, 0700, &created, err, errlen) < 0)
    return -1;
  snprintf(dst, sizeof(dst), "%s/packages", out_dir);
  if (mkdir(dst, 0700) < 0) {
    snprintf(err, errlen, "%s: %s", dst, strerror(errno));
    return -1;
  }

  while (missing && counts->attempts < SNAPSHOT_TRIES) {
    counts->attempts++;
    missing = 0;
    snprintf(src, sizeof(src), "%s/dfotad.db", state_dir);
    snprintf(dst, sizeof(dst), "%s/dfotad.db", out_dir);
    if (snapshot(src, dst, &hashes, err, errlen) < 0)
      goto out;
    counts->packages = counts->damaged = 0;
    for (size_t i = 0; i < hashes.n; i++) {
      const char *h = hashes.v[i].hash;
      int c;
      snprintf(src, sizeof(src), "%s/packages/%s", state_dir, h);
      snprintf(dst, sizeof(dst), "%s/packages/%s", out_dir, h);
      if (access(dst, F_OK) == 0) { /* copied and checked for an earlier snapshot */
        counts->packages++;
        continue;
      }
      c = copy_hashed(src, dst, 0400, hex, &counts->bytes, err, errlen);
      if (c == -2) {
        /* deleted since the snapshot, or damaged (then dfotad serves it
         * as damaged, and so will the restored server) */
        missing = 1;
        continue;
      }
      if (c < 0)
        goto out;
      if (strcmp(hex, h) != 0) {
        log_warn("backup: package file %s does not match its hash: left out (damaged)", h);
        unlink(dst);
        counts->damaged++;
        continue;
      }
      counts->packages++;
    }
  }
  if (missing) {
    for (size_t i = 0; i < hashes.n; i++) {
      snprintf(dst, sizeof(dst), "%s/packages/%s", out_dir, hashes.v[i].hash);
      if (access(dst, F_OK) != 0) {
        log_warn("backup: package file %s is missing from %s/packages: left out (damaged)",
                 hashes.v[i].hash, state_dir);
        counts->damaged++;
      }
    }
  }
  snprintf(dst, sizeof(dst), "%s/packages", out_dir);
  drop_unused(dst, &hashes);

  /* the manifest: the database, the packages, the extras, BACKUP */
  snprintf(dst, sizeof(dst), "%s/dfotad.db", out_dir);
  if (hash_file(dst, hex, err, errlen) < 0 || list_add(&manifest, hex, "dfotad.db") < 0)
    goto out;
  if (stat(dst, &st) == 0)
    counts->bytes += (uint64_t)st.st_size;
  for (size_t i = 0; i < hashes.n; i++) {
    snprintf(dst, sizeof(dst), "%s/packages/%s", out_dir, hashes.v[i].hash);
    snprintf(tmp, sizeof(tmp), "packages/%s", hashes.v[i].hash);
    if (access(dst, F_OK) == 0 && list_add(&manifest, hashes.v[i].hash, tmp) < 0)
      goto out;
  }
  for (int i = 0; i < n_extra; i++) {
    int c;
    snprintf(dst, sizeof(dst), "%s/%s", out_dir, extra[i].name);
    c = copy_hashed(extra[i].path, dst, 0600, hex, &counts->bytes, err, errlen);
    if (c == -2 && extra[i].optional)
      continue;
    if (c < 0 || list_add(&manifest, hex, extra[i].name) < 0)
      goto out;
  }
  mf = open_memstream(&text, &text_len);
  if (mf == NULL)
    goto out;
  {
    char when[64];
    time_iso(now_ms(), when, sizeof(when));
    fprintf(mf, "dfotad backup\ncreated: %s\nby: %s\nfrom: %s\npackages: %d\ndamaged: %d\n", when,
            info, state_dir, counts->packages, counts->damaged);
    fclose(mf);
    mf = NULL;
  }
  snprintf(dst, sizeof(dst), "%s/BACKUP", out_dir);
  if (text == NULL || write_text(dst, text, err, errlen) < 0 ||
      hash_file(dst, hex, err, errlen) < 0 || list_add(&manifest, hex, "BACKUP") < 0)
    goto out;
  free(text);
  text = NULL;
  qsort(manifest.v, manifest.n, sizeof(manifest.v[0]), cmp_entry);
  mf = open_memstream(&text, &text_len);
  if (mf == NULL)
    goto out;
  for (size_t i = 0; i < manifest.n; i++)
    fprintf(mf, "%s  %s\n", manifest.v[i].hash, manifest.v[i].name);
  fclose(mf);
  mf = NULL;
  snprintf(tmp, sizeof(tmp), "%s/MANIFEST.tmp", out_dir);
  snprintf(dst, sizeof(dst), "%s/MANIFEST", out_dir);
  snprintf(src, sizeof(src), "%s/packages", out_dir);
  if (text == NULL || fsync_dir(src) < 0 || write_text(tmp, text, err, errlen) < 0 ||
      rename(tmp, dst) < 0 || fsync_dir(out_dir) < 0) {
    if (err[0] == '\0')
      snprintf(err, errlen, "%s: %s", dst, strerror(errno));
    goto out;
  }
  rc = 0;
out:
  if (rc < 0 && err[0] == '\0')
    snprintf(err, errlen, "out of memory");
  free(text);
  free(hashes.v);
  free(manifest.v);
  return rc;
}

/* ---- restore ------------------------------------------------------------- */

static int read_manifest(const char *in_dir, struct list *l, char *err, size_t errlen)
{
  char path[4096], line[NAME_MAX_LEN + 80];
  FILE *f;
  int rc = 0, lineno = 0;
  struct stat st;

  snprintf(path, sizeof(path), "%s/MANIFEST", in_dir);
  f = fopen(path, "re");
  if (f == NULL) {
    snprintf(err, errlen, "%s: %s (not a dfotad backup, or an incomplete one)", path,
             strerror(errno));
    return -1;
  }
  if (fstat(fileno(f), &st) < 0 || (uint64_t)st.st_size > MANIFEST_MAX) {
    snprintf(err, errlen, "%s: too large", path);
    fclose(f);
    return -1;
  }
  while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
    size_t len = strlen(line);
    lineno++;
    if (len == 0 || line[len - 1] != '\n' || len < 68 || line[64] != ' ' || line[65] != ' ') {
      snprintf(err, errlen, "%s:%d: not \"SHA256  NAME\"", path, lineno);
      rc = -1;
      break;
    }
    line[len - 1] = '\0';
    line[64] = '\0';
    if (!is_hash(line) || list_add(l, line, line + 66) < 0) {
      snprintf(err, errlen, "%s:%d: bad hash", path, lineno);
      rc = -1;
    }
  }
  fclose(f);
  return rc;
}

/* Where a manifest entry goes: "state" for the database and packages, an
 * extra's index, or -2 for BACKUP (checked, not restored). -1: unknown. */
static int entry_kind(const struct entry *e, const struct backup_extra *extra, int n_extra)
{
  if (strcmp(e->name, "dfotad.db") == 0)
    return n_extra;
  if (strcmp(e->name, "BACKUP") == 0)
    return -2;
  if (strncmp(e->name, "packages/", 9) == 0)
    return strcmp(e->name + 9, e->hash) == 0 ? n_extra : -1;
  for (int i = 0; i < n_extra; i++)
    if (strcmp(e->name, extra[i].name) == 0)
      return i;
  return -1;
}

/* Where a manifest entry is restored to. */
static void entry_dest(const struct entry *e, int k, const char *state_dir,
                       const struct backup_extra *extra, int n_extra, char *dst, size_t len)
{
  if (k >= 0 && k < n_extra)
    snprintf(dst, len, "%s", extra[k].path);
  else
    snprintf(dst, len, "%s/%s", state_dir, e->name);
}

/* Undoes a failed restore: what it wrote into the (empty) state_dir. */
static void undo(const char *state_dir, int created_state, const struct list *m,
                 const struct backup_extra *extra, int n_extra)
{
  char path[4096];

  for (size_t i = 0; i < m->n; i++)
    if (m->v[i].written) {
      entry_dest(&m->v[i], entry_kind(&m->v[i], extra, n_extra), state_dir, extra, n_extra, path,
                 sizeof(path));
      unlink(path);
    }
  snprintf(path, sizeof(path), "%s/dfotad.db-wal", state_dir);
  unlink(path);
  snprintf(path, sizeof(path), "%s/dfotad.db-shm", state_dir);
  unlink(path);
  snprintf(path, sizeof(path), "%s/tmp", state_dir);
  rmdir(path);
  snprintf(path, sizeof(path), "%s/packages", state_dir);
  rmdir(path);
  if (created_state)
    rmdir(state_dir);
}

int store_restore(const char *in_dir, const char *state_dir, const struct backup_extra *extra,
                  int n_extra, struct backup_counts *counts, char *err, size_t errlen)
{
  struct list manifest = {0};
  char src[4096], dst[4096], hex[65], msg[256];
  int created = 0, rc = -1, have_db = 0;
  struct db *db = NULL;

  memset(counts, 0, sizeof(*counts));
  if (read_manifest(in_dir, &manifest, err, errlen) < 0)
    goto out;
  /* everything checked before anything is written */
  for (size_t i = 0; i < manifest.n; i++) {
    const struct entry *e = &manifest.v[i];
    if (entry_kind(e, extra, n_extra) == -1) {
      snprintf(err, errlen, "%s/MANIFEST: unknown entry \"%s\"", in_dir, e->name);
      goto out;
    }
    have_db |= strcmp(e->name, "dfotad.db") == 0;
    snprintf(src, sizeof(src), "%s/%s", in_dir, e->name);
    if (hash_file(src, hex, err, errlen) < 0)
      goto out;
    if (strcmp(hex, e->hash) != 0) {
      snprintf(err, errlen, "%s: its sha256 is not the manifest's: the backup is damaged", src);
      goto out;
    }
  }
  if (!have_db) {
    snprintf(err, errlen, "%s/MANIFEST: no dfotad.db", in_dir);
    goto out;
  }
  if (empty_dir(state_dir, 0750, &created, err, errlen) < 0)
    goto out;
  snprintf(dst, sizeof(dst), "%s/packages", state_dir);
  if (mkdir(dst, 0750) < 0) {
    snprintf(err, errlen, "%s: %s", dst, strerror(errno));
    goto undo;
  }
  for (size_t i = 0; i < manifest.n; i++) {
    struct entry *e = &manifest.v[i];
    int k = entry_kind(e, extra, n_extra), pkg = strncmp(e->name, "packages/", 9) == 0;
    if (k == -2)
      continue;
    snprintf(src, sizeof(src), "%s/%s", in_dir, e->name);
    entry_dest(e, k, state_dir, extra, n_extra, dst, sizeof(dst));
    if (k < n_extra && access(dst, F_OK) == 0) {
      log_warn("restore: %s exists: kept, not replaced by the backup's %s", dst, e->name);
      continue;
    }
    if (copy_hashed(src, dst,
                    pkg           ? 0440
                    : k < n_extra ? 0600
                                  : 0640,
                    hex, &counts->bytes, err, errlen) < 0)
      goto undo;
    e->written = 1;
    if (strcmp(hex, e->hash) != 0) { /* changed under us */
      snprintf(err, errlen, "%s: changed while it was restored", src);
      goto undo;
    }
    counts->packages += pkg;
  }
  snprintf(dst, sizeof(dst), "%s/packages", state_dir);
  if (fsync_dir(dst) < 0 || fsync_dir(state_dir) < 0) {
    snprintf(err, errlen, "%s: %s", state_dir, strerror(errno));
    goto undo;
  }
  /* the schema this dfotad knows (migrations run now), and sound */
  snprintf(dst, sizeof(dst), "%s/dfotad.db", state_dir);
  if (db_open(dst, &db, err, errlen) < 0)
    goto undo;
  if (db_integrity(db, msg, sizeof(msg)) < 0) {
    snprintf(err, errlen, "%s: integrity check: %s", dst, msg);
    db_close(db);
    goto undo;
  }
  db_close(db);
  rc = 0;
  goto out;
undo:
  undo(state_dir, created, &manifest, extra, n_extra);
out:
  free(manifest.v);
  return rc;
}
