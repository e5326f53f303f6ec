/* upload.c: uploads and deletions of packages. An upload streams to a
 * temporary file while it is hashed; finishing it fsyncs the file, moves it
 * into place under its hash and records it, so that a package is visible
 * only once complete and durable. */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../util/log.h"
#include "../util/util.h"
#include "store_int.h"

/* Metadata fields are printable ASCII without quotes or backslashes, so
 * that they are safe in logs, JSON and headers alike. */
static int field_ok(const char *v, size_t max, int allow_empty)
{
  size_t n = v ? strlen(v) : 0;

  if (n == 0)
    return allow_empty;
  if (n > max)
    return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if (c < 0x21 || c > 0x7e || c == '"' || c == '\\')
      return 0;
  }
  return 1;
}

static int exists_triple(struct store *s, const char *model, const char *from, const char *to)
{
  int found = 0;

  pthread_rwlock_rdlock(&s->lock);
  for (int b = 0; b < BUCKETS && !found; b++)
    for (struct package *p = s->bucket[b]; p && !found; p = p->next)
      found = !strcmp(p->model, model) && !strcmp(p->from, from) && !strcmp(p->to, to);
  pthread_rwlock_unlock(&s->lock);
  return found;
}

int store_upload_begin(struct store *s, const struct package_meta *meta, uint64_t max_size,
                       struct upload **out)
{
  struct upload *u;

  if (!field_ok(meta->model, PKG_FIELD_MAX, 0) || !field_ok(meta->from, PKG_FIELD_MAX, 0) ||
      !field_ok(meta->to, PKG_FIELD_MAX, 0) || !field_ok(meta->name, PKG_NAME_MAX, 1) ||
      strcmp(meta->from, meta->to) == 0)
    return STORE_INVALID;
  if (exists_triple(s, meta->model, meta->from, meta->to))
    return STORE_EXISTS;
  u = calloc(1, sizeof(*u));
  if (u == NULL)
    return STORE_ERR;
  u->s = s;
  u->fd = -1;
  u->max = max_size;
  u->model = strdup(meta->model);
  u->from = strdup(meta->from);
  u->to = strdup(meta->to);
  u->name = strdup(meta->name ? meta->name : "");
  u->md = EVP_MD_CTX_new();
  snprintf(u->tmp_path, sizeof(u->tmp_path), "%s/upload-XXXXXX", s->tmp_dir);
  if (!u->model || !u->from || !u->to || !u->name || !u->md ||
      EVP_DigestInit_ex(u->md, EVP_sha256(), NULL) != 1)
    goto fail;
  u->fd = mkostemp(u->tmp_path, O_CLOEXEC);
  if (u->fd < 0) {
    log_error("upload: cannot create %s: %s", u->tmp_path, strerror(errno));
    u->tmp_path[0] = '\0';
    goto fail;
  }
  *out = u;
  return STORE_OK;
fail:
  store_upload_abort(u);
  return STORE_ERR;
}

int store_upload_write(struct upload *u, const void *data, size_t len)
{
  const char *p = data;

  if (len > u->max - u->size)
    return STORE_TOO_LARGE;
  EVP_DigestUpdate(u->md, data, len);
  u->size += len;
  while (len > 0) {
    ssize_t w = write(u->fd, p, len);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      log_error("upload: write %s: %s", u->tmp_path, strerror(errno));
      return STORE_ERR;
    }
    p += w;
    len -= (size_t)w;
  }
  return STORE_OK;
}

void store_upload_abort(struct upload *u)
{
  if (u == NULL)
    return;
  if (u->fd >= 0)
    close(u->fd);
  if (u->tmp_path[0] != '\0' && u->fd >= 0)
    unlink(u->tmp_path);
  EVP_MD_CTX_free(u->md);
  free(u->model);
  free(u->from);
  free(u->to);
  free(u->name);
  free(u);
}

static void new_id(char out[PKG_ID_LEN + 1]) { random_base32(out, PKG_ID_LEN); }

int store_upload_finish(struct upload *u, struct package **out)
{
  struct store *s = u->s;
  unsigned char digest[32];
  unsigned dl = 0;
  char sha[65], final_path[4096], id[PKG_ID_LEN + 1];
  struct db_package row;
  struct package *p = NULL;
  int rc = STORE_ERR, moved = 0;
  struct stat st;

  if (u->size == 0) {
    rc = STORE_EMPTY;
    goto out;
  }
  if (EVP_DigestFinal_ex(u->md, digest, &dl) != 1)
    goto out;
  hex_encode(digest, 32, sha);
  /* durable before visible: data, then name, then the record */
  if (fchmod(u->fd, 0440) < 0 || fsync(u->fd) < 0) {
    log_error("upload: fsync %s: %s", u->tmp_path, strerror(errno));
    goto out;
  }
  snprintf(final_path, sizeof(final_path), "%s/%s", s->pkg_dir, sha);
  pthread_mutex_lock(&s->upload_mu);
  if (lstat(final_path, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == u->size) {
    /* same content already stored: keep that file */
    unlink(u->tmp_path);
  } else {
    if (rename(u->tmp_path, final_path) < 0) {
      log_error("upload: rename to %s: %s", final_path, strerror(errno));
      pthread_mutex_unlock(&s->upload_mu);
      goto out;
    }
    moved = 1;
  }
  u->tmp_path[0] = '\0';
  fsync_dir(s->pkg_dir);

  row = (struct db_package){.model = u->model,
                            .from = u->from,
                            .to = u->to,
                            .name = u->name,
                            .sha256 = sha,
                            .size = u->size,
                            .created = (int64_t)time(NULL)};
  for (int tries = 0; tries < 8; tries++) {
    new_id(id);
    row.id = id;
    rc = db_package_insert(s->db, &row);
    if (rc != DB_ID_CLASH)
      break;
  }
  if (rc == STORE_OK) {
    p = package_new(&row);
    if (p == NULL) {
      log_error("upload: out of memory; package %s is recorded and loads at restart", row.id);
      rc = STORE_ERR;
    } else {
      package_open_file(s, p, 0);
      pthread_rwlock_wrlock(&s->lock);
      catalog_insert(s, p); /* even damaged: listed, so that it can be deleted */
      pthread_rwlock_unlock(&s->lock);
      if (p->status != PKG_OK) {
        log_error("upload: stored package %s cannot be opened: %s", p->id, p->damage);
        p = NULL;
        rc = STORE_ERR;
      } else {
        package_ref(p);
        log_info("package %s stored: %s %s -> %s, %llu bytes, sha256 %s", p->id, p->model, p->from,
                 p->to, (unsigned long long)p->size, p->sha256);
      }
    }
  } else if (rc != STORE_OK && moved && db_sha256_users(s->db, sha) == 0) {
    unlink(final_path);
  }
  pthread_mutex_unlock(&s->upload_mu);
out:
  *out = p;
  store_upload_abort(u);
  return rc;
}

int store_package_delete(struct store *s, const char *id)
{
  struct package *p;
  int rc;

  pthread_mutex_lock(&s->upload_mu);
  rc = db_package_delete(s->db, id);
  if (rc != STORE_OK) {
    pthread_mutex_unlock(&s->upload_mu);
    return rc;
  }
  pthread_rwlock_wrlock(&s->lock);
  p = catalog_remove(s, id);
  pthread_rwlock_unlock(&s->lock);
  if (p != NULL) {
    atomic_store(&p->deleted, 1);
    /* the file goes now if no other package shares it; transfers in flight
     * keep reading it through their open descriptor and mapping. Several
     * nodes: other nodes may serve it still; the sweep removes it after a
     * grace (shared.c) */
    if (!s->shared && db_sha256_users(s->db, p->sha256) == 0) {
      char path[4096];
      snprintf(path, sizeof(path), "%s/%s", s->pkg_dir, p->sha256);
      unlink(path);
    }
    log_info("package %s deleted", id);
    package_unref(p);
  }
  pthread_mutex_unlock(&s->upload_mu);
  return STORE_OK;
}
