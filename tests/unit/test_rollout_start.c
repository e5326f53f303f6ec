/* test_rollout_start.c: a start in the background (the job thread, a page
 * at a time) whose candidates drop out while it runs: members deleted
 * after they were enrolled, candidates deleted before, devices created
 * meanwhile. Once running, the members' positions are 0..n-1 without a
 * gap or a duplicate, in the fleet and in the database (a reopened
 * fleet), each wave holds its percentage of the members, and no deleted
 * device is a member. Bounded: 20,000 devices, a few hundred deletions,
 * a few seconds. */
#include "autoconfig.h"

#include <limits.h>
#include <time.h>
#include <unistd.h>

#include "fleet_fixture.h"

#define N_GROUP 10000 /* devices a group; two groups: every start is a job */
#define MAX_DELETE 300
#define WAIT_MS 60000 /* a start that never ends fails, it does not hang */

static struct fx x;
static char gone[MAX_DELETE][DEVICE_ID_MAX + 1];
static int n_gone;

static void bulk(const char *group, int n)
{
  size_t cap = (size_t)n * 96 + 16, o = 0;
  char *body = malloc(cap), *text = NULL;
  json_t *out = NULL;

  CHECK(body != NULL);
  if (body == NULL)
    return;
  o += (size_t)snprintf(body + o, cap - o, "[");
  for (int i = 0; i < n; i++)
    o += (size_t)snprintf(
        body + o, cap - o,
        "%s{\"id\":\"%s-%05d\",\"model\":\"%s\",\"version\":\"A\",\"group\":\"%s\"}", i ? "," : "",
        group, i, FX_MODEL, group);
  snprintf(body + o, cap - o, "]");
  CHECK(fleet_devices_bulk(x.f, body, strlen(body), &text, &out) == 200);
  free(body);
  free(text);
  json_decref(out);
}

static void delete (const char *id)
{
  json_t *out = NULL;

  CHECK(fleet_device_delete(x.f, id, &out) == 204);
  json_decref(out);
  if (n_gone < MAX_DELETE)
    snprintf(gone[n_gone++], sizeof(gone[0]), "%s", id);
}

static int is_gone(const char *id)
{
  for (int i = 0; i < n_gone; i++)
    if (strcmp(gone[i], id) == 0)
      return 1;
  return 0;
}

static enum rstate state_of(const char *rid, int *done, int *of)
{
  enum rstate st;
  struct rollout *r;

  pthread_mutex_lock(&x.f->mu);
  r = rollout_find(x.f, rid);
  st = r->state;
  *done = r->job_done;
  *of = r->job_of;
  pthread_mutex_unlock(&x.f->mu);
  return st;
}

/* Up to max members of rid enrolled by the job (not joiners) that are
 * still there, by ids into ids; how many. */
static int enrolled(const char *rid, char ids[][DEVICE_ID_MAX + 1], int max)
{
  struct rollout *r;
  int n = 0;

  pthread_mutex_lock(&x.f->mu);
  r = rollout_find(x.f, rid);
  for (int i = r->n_members - 1; i >= 0 && n < max; i -= 37)
    if (r->mpos[i] < INT_MAX / 2 && !is_gone(r->members[i]->id))
      snprintf(ids[n++], DEVICE_ID_MAX + 1, "%s", r->members[i]->id);
  pthread_mutex_unlock(&x.f->mu);
  return n;
}

static int cmp_int(const void *a, const void *b)
{
  int x_ = *(const int *)a, y = *(const int *)b;

  return x_ < y ? -1 : x_ > y;
}

/* The members' positions are 0..n-1, n = expect; no deleted device is one;
 * each wave holds the members its percentage of the positions says. late:
 * deletions that may have come once the rollout ran (a member deleted then
 * leaves its position empty, as it should): at most that many positions
 * missing. */
static void check_members(const char *rid, int expect, int late, const char *what)
{
  struct rollout *r;
  int *pos, n, gaps = 0, dups = 0, gone_members = 0, pos_end;
  json_t *out = NULL, *w;
  size_t i;

  pthread_mutex_lock(&x.f->mu);
  r = rollout_find(x.f, rid);
  n = r->n_members;
  pos_end = r->pos_end;
  pos = malloc(((size_t)n + 1) * sizeof(*pos));
  for (int k = 0; k < n; k++) {
    pos[k] = r->mpos[k];
    CHECK(r->members[k]->position == r->mpos[k]);
    gone_members += is_gone(r->members[k]->id);
  }
  for (int k = 0; k < n_gone; k++)
    CHECK(device_find(x.f, gone[k]) == NULL);
  pthread_mutex_unlock(&x.f->mu);
  qsort(pos, (size_t)n, sizeof(*pos), cmp_int);
  for (int k = 0; k < n; k++) {
    gaps += pos[k] != k;
    dups += k > 0 && pos[k] == pos[k - 1];
  }
  if (n != expect || gaps > 0 || gone_members > 0)
    fprintf(stderr,
            "# %s: %d members (%d expected), %d out of place (first %d..%d), %d deleted, "
            "%d deletions maybe after the start\n",
            what, n, expect, gaps, n > 0 ? pos[0] : -1, n > 0 ? pos[n - 1] : -1, gone_members,
            late);
  CHECK(n == expect);
  CHECK(dups == 0);
  CHECK(n == 0 || (pos[0] >= 0 && pos[n - 1] < n + late));
  CHECK(late > 0 || gaps == 0);
  CHECK(gone_members == 0);
  /* positions given: past the last member's, holes only for deletions
   * once it ran */
  CHECK(n == 0 || pos_end >= pos[n - 1] + 1);
  CHECK(pos_end - n <= late);

  CHECK(fx_wave_counts_ok(&x, rid));
  CHECK(fleet_rollout_waves(x.f, rid, &out) == 200);
  {
    /* a wave: positions lo..hi-1, hi its percentage of the positions;
     * it holds the members there, and no position there is empty unless
     * a deletion came late */
    int lo = 0, total = 0, k0 = 0;
    json_array_foreach(json_object_get(out, "waves"), i, w)
    {
      int pct = (int)json_integer_value(json_object_get(w, "percent"));
      int hi = (int)(((long long)pos_end * pct + 99) / 100), in = 0, there = 0;
      json_t *c;
      const char *k;
      json_object_foreach(json_object_get(w, "counts"), k, c) in += (int)json_integer_value(c);
      while (k0 < n && pos[k0] < hi)
        k0++, there++;
      if (in != there || there != hi - lo)
        fprintf(stderr, "# %s: wave %zu (%d%%) holds %d members, %d there, %d positions\n", what,
                i + 1, pct, in, there, hi - lo);
      CHECK(json_integer_value(json_object_get(w, "devices")) == there);
      CHECK(in == there);
      CHECK(there <= hi - lo && there >= hi - lo - late);
      total += in;
      lo = hi;
    }
    CHECK(total == n);
  }
  json_decref(out);
  free(pos);
}

/* Starts a rollout over group (waves 10, 50, 100) and, while it starts,
 * deletes members already enrolled (mid: only those, so that no
 * candidate is ever skipped) or every 41st device of the group whatever
 * the phase, and creates a few devices of the group. The members it
 * should have; *late: the deletions not known to have come before the
 * start ended (the rollout was no longer starting once they returned). */
static int start_with_drops(const char *group, int mid, char *rid, int *late)
{
  char body[512], ids[8][DEVICE_ID_MAX + 1];
  json_t *out = NULL;
  int done, of, st, during = 0, created = 0, next = 3, polls = 0;
  int64_t t0 = now_ms();
  int before = n_gone;

  snprintf(body, sizeof(body),
           "{\"name\":\"drops\",\"model\":\"%s\",\"target_version\":\"B\","
           "\"selector\":{\"group\":\"%s\"},\"waves\":[10,50,100]}",
           FX_MODEL, group);
  CHECK(fx_rollout_create(&x, body, rid, NULL, 0) == 201);
  st = fleet_rollout_action(x.f, rid, "start", &out);
  json_decref(out);
  CHECK(st == 202); /* the job thread's */
  while ((st = (int)state_of(rid, &done, &of)) == R_STARTING && now_ms() - t0 < WAIT_MS) {
    polls++;
    if (n_gone - before >= MAX_DELETE / 2 - 8) {
      usleep(1000);
      continue;
    }
    if (mid) {
      int n;
      if (done == 0 || done >= of / 2) {
        usleep(200);
        continue;
      }
      n = enrolled(rid, ids, 3);
      for (int k = 0; k < n; k++) {
        delete (ids[k]);
        *late += state_of(rid, &done, &of) != R_STARTING;
      }
      during += n;
    } else {
      char id[DEVICE_ID_MAX + 1];
      if (next >= N_GROUP) {
        usleep(1000);
        continue;
      }
      snprintf(id, sizeof(id), "%s-%05d", group, next);
      next += 41;
      delete (id);
      *late += state_of(rid, &done, &of) != R_STARTING;
      during++;
      if (created < 5 && polls % 7 == 0) {
        char b2[192];
        snprintf(id, sizeof(id), "%s-new-%d", group, created++);
        snprintf(b2, sizeof(b2), "{\"model\":\"%s\",\"version\":\"A\",\"group\":\"%s\"}", FX_MODEL,
                 group);
        CHECK(fx_put(&x, id, b2) == 201);
      }
    }
  }
  CHECK(st == R_RUNNING);
  fprintf(stderr,
          "# %s: %d deleted while it started (%d maybe after), %d polls, %d created, %lld ms\n",
          group, during, *late, polls, created, (long long)(now_ms() - t0));
  /* the point of the test: some dropped out while it started */
  CHECK(during - *late > 0);
  return N_GROUP - (n_gone - before) + created;
}

static void reopen(void) { CHECK(fx_reopen(&x) == 0); }

int main(void)
{
  char pkg[PKG_ID_LEN + 1], r1[16], r2[16];
  int n1, n2, late1 = 0, late2 = 0, pos_end2;

  if (fx_open(&x, "test-rollout-start") < 0) {
    CHECK(0);
    return unit_done("test_rollout_start");
  }
  CHECK(fx_package(&x, "A", "B", "a-b.bin", 20000, pkg) == 0);
  bulk("g1", N_GROUP);
  bulk("g2", N_GROUP);
  n1 = start_with_drops("g1", 1, r1, &late1);
  check_members(r1, n1, late1, "members deleted once enrolled");
  n2 = start_with_drops("g2", 0, r2, &late2);
  check_members(r2, n2, late2, "candidates deleted in any phase");
  {
    /* a member deleted from the running rollout leaves its position
     * empty; a device that joins afterwards goes after the last position,
     * not to the member count (which a remaining member holds) */
    char ids[1][DEVICE_ID_MAX + 1], id[DEVICE_ID_MAX + 1];
    char b2[192];
    CHECK(enrolled(r2, ids, 1) == 1);
    delete (ids[0]);
    late2++;
    snprintf(b2, sizeof(b2), "{\"model\":\"%s\",\"version\":\"A\",\"group\":\"g2\"}", FX_MODEL);
    for (int k = 0; k < 2; k++) {
      snprintf(id, sizeof(id), "g2-late-%d", k);
      CHECK(fx_put(&x, id, b2) == 201);
      n2++;
    }
    n2--;
    check_members(r2, n2, late2, "joined the running rollout after a deletion");
    /* the last joiner deleted: its position stays given, also across the
     * reopening (the waves' cutoffs do not move) */
    delete (id);
    late2++;
    n2--;
    check_members(r2, n2, late2, "the last position's member deleted");
  }
  pthread_mutex_lock(&x.f->mu);
  pos_end2 = rollout_find(x.f, r2)->pos_end;
  pthread_mutex_unlock(&x.f->mu);
  reopen();
  pthread_mutex_lock(&x.f->mu);
  CHECK(rollout_find(x.f, r2)->pos_end == pos_end2);
  pthread_mutex_unlock(&x.f->mu);
  {
    /* saved running, not starting: a restart must not start them over */
    json_t *out = NULL;
    CHECK(fleet_rollout_get(x.f, r1, &out) == 200);
    CHECK(strcmp(json_string_value(json_object_get(out, "state")) ?: "", "running") == 0);
    json_decref(out);
    CHECK(fleet_rollout_get(x.f, r2, &out) == 200);
    CHECK(strcmp(json_string_value(json_object_get(out, "state")) ?: "", "running") == 0);
    json_decref(out);
  }
  check_members(r1, n1, late1, "reopened: members deleted once enrolled");
  check_members(r2, n2, late2, "reopened: candidates deleted in any phase");
  fx_close(&x);
  return unit_done("test_rollout_start");
}
