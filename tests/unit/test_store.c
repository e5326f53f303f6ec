/* test_store.c: the store on a real SQLite file in a temporary directory:
 * uploads, refusals, deletion, statistics across a reopen, and a package
 * file damaged behind the store's back. */
#include "autoconfig.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"
#include "unit.h"

static struct package *upload(struct store *s, const char *model, const char *from, const char *to,
                              const char *data, size_t len, int *rc)
{
  struct package_meta m = {model, from, to, "test.bin"};
  struct upload *u = NULL;
  struct package *p = NULL;

  *rc = store_upload_begin(s, &m, 1 << 20, &u);
  if (*rc != STORE_OK)
    return NULL;
  for (size_t off = 0; off < len; off += 7) {
    size_t n = len - off < 7 ? len - off : 7;
    if ((*rc = store_upload_write(u, data + off, n)) != STORE_OK) {
      store_upload_abort(u);
      return NULL;
    }
  }
  *rc = store_upload_finish(u, &p);
  return p;
}

static int count_cb(struct package *p, void *arg)
{
  (void)p;
  (*(int *)arg)++;
  return 0;
}

static int count(struct store *s, const char *model)
{
  int n = 0;
  store_package_foreach(s, model, NULL, NULL, count_cb, &n);
  return n;
}

static int dir_entries(const char *dir)
{
  char cmd[512];
  FILE *f;
  int n = -1;

  snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", dir);
  f = popen(cmd, "r");
  if (f != NULL) {
    if (fscanf(f, "%d", &n) != 1)
      n = -1;
    pclose(f);
  }
  return n;
}

int main(void)
{
  char dir[] = "/tmp/dfotad-test-store-XXXXXX", sub[256], err[256];
  static const char data[] = "the quick brown fox jumps over the lazy dog";
  struct store *s = NULL;
  struct package *p, *q;
  char id[PKG_ID_LEN + 1];
  int rc;

  CHECK(mkdtemp(dir) != NULL);
  CHECK(store_open_with(dir, getenv("DFOTAD_STORE_PG"), 20, &s, err, sizeof(err)) == 0);
  if (s == NULL)
    return unit_done("test_store");

  p = upload(s, "BG95", "A", "B", data, strlen(data), &rc);
  CHECK(rc == STORE_OK && p != NULL);
  if (p == NULL)
    return unit_done("test_store");
  CHECK(p->size == strlen(data));
  /* sha256 of the text above */
  CHECK(strcmp(p->sha256, "05c6e08f1d9fdafa03147fcb8f82f124c76d2f70e3d989dc8aadb5e7d7450bec") == 0);
  CHECK(memcmp(p->map, data, p->size) == 0);
  CHECK(strlen(p->id) == PKG_ID_LEN);
  snprintf(id, sizeof(id), "%s", p->id);

  /* refusals change nothing */
  CHECK(upload(s, "BG95", "A", "B", data, 3, &rc) == NULL && rc == STORE_EXISTS);
  CHECK(upload(s, "BG95", "A", "A", data, 3, &rc) == NULL && rc == STORE_INVALID);
  CHECK(upload(s, "BG\"95", "A", "C", data, 3, &rc) == NULL && rc == STORE_INVALID);
  CHECK(upload(s, "BG95", "A", "C", data, 0, &rc) == NULL && rc == STORE_EMPTY);
  {
    struct package_meta m = {"BG95", "A", "D", ""};
    struct upload *u;
    CHECK(store_upload_begin(s, &m, 10, &u) == STORE_OK);
    CHECK(store_upload_write(u, data, 11) == STORE_TOO_LARGE);
    store_upload_abort(u);
  }
  CHECK(count(s, NULL) == 1);
  snprintf(sub, sizeof(sub), "%s/tmp", dir);
  CHECK(dir_entries(sub) == 0);

  /* statistics survive a reopen */
  store_record_request(p);
  store_record_delivered(p, 10, 0);
  store_record_request(p);
  store_record_delivered(p, p->size, 1);
  package_unref(p);
  store_close(s);
  s = NULL;
  CHECK(store_open_with(dir, getenv("DFOTAD_STORE_PG"), 20, &s, err, sizeof(err)) == 0);
  p = store_package_get(s, id);
  CHECK(p != NULL);
  if (p != NULL) {
    CHECK(atomic_load(&p->requests) == 2);
    CHECK(atomic_load(&p->bytes_sent) == 10 + strlen(data));
    CHECK(atomic_load(&p->downloads) == 1);
    CHECK(p->status == PKG_OK);
  }

  /* a deleted package stays readable by its holders */
  CHECK(store_package_delete(s, id) == STORE_OK);
  CHECK(store_package_get(s, id) == NULL);
  CHECK(store_package_delete(s, id) == STORE_NOTFOUND);
  if (p != NULL) {
    CHECK(memcmp(p->map, data, p->size) == 0);
    package_unref(p);
  }
  snprintf(sub, sizeof(sub), "%s/packages", dir);
  CHECK(dir_entries(sub) == 0);

  /* a file damaged behind our back is reported and not served */
  q = upload(s, "BG95", "B", "C", data, strlen(data), &rc);
  CHECK(q != NULL);
  if (q != NULL) {
    char f[512];
    int fd;
    snprintf(id, sizeof(id), "%s", q->id);
    snprintf(f, sizeof(f), "%s/packages/%s", dir, q->sha256);
    package_unref(q);
    store_close(s);
    s = NULL;
    chmod(f, 0600);
    fd = open(f, O_WRONLY);
    CHECK(fd >= 0 && pwrite(fd, "X", 1, 3) == 1);
    close(fd);
    CHECK(store_open_with(dir, getenv("DFOTAD_STORE_PG"), 20, &s, err, sizeof(err)) == 0);
    q = store_package_get(s, id);
    CHECK(q != NULL && q->status == PKG_DAMAGED && q->damage != NULL);
    package_unref(q);
  }
  CHECK(store_check(s, err, sizeof(err)) == 0 && strcmp(err, "ok") == 0);
  store_close(s);

  snprintf(sub, sizeof(sub), "rm -rf '%s'", dir);
  CHECK(system(sub) == 0);
  return unit_done("test_store");
}
