/* test_rollout.c: wave evaluation on a real fleet: who is in a wave, the
 * success threshold that opens the next one, max_failure_rate pausing,
 * failures an operator's resume sets aside, timeouts (fleet_tick),
 * completion, concurrency and start time, and the actions. */
#include "autoconfig.h"

#include <limits.h>
#include <time.h>
#include <unistd.h>

#include "fleet_fixture.h"

static struct fx x;

/* n devices PREFIX-0.. on A; their ids as a JSON array's text in out. */
static void devices(const char *prefix, int n, char *out, size_t len)
{
  size_t o = 0;

  o += (size_t)snprintf(out + o, len - o, "[");
  for (int i = 0; i < n; i++) {
    char id[32];
    snprintf(id, sizeof(id), "%s-%d", prefix, i);
    CHECK(fx_device(&x, id, "A") == 201);
    o += (size_t)snprintf(out + o, len - o, "%s\"%s\"", i ? "," : "", id);
  }
  snprintf(out + o, len - o, "]");
}

static int position(const char *id)
{
  int p = -1;
  struct device *d;

  pthread_mutex_lock(&x.f->mu);
  d = device_find(x.f, id);
  if (d != NULL && d->rollout != NULL)
    p = d->position;
  pthread_mutex_unlock(&x.f->mu);
  return p;
}

/* The ids of PREFIX-0..n-1 in rollout order into ids[position]. */
static void by_position(const char *prefix, int n, char ids[][32])
{
  for (int i = 0; i < n; i++) {
    char id[32];
    int p;
    snprintf(id, sizeof(id), "%s-%d", prefix, i);
    p = position(id);
    CHECK(p >= 0 && p < n);
    if (p >= 0 && p < n)
      snprintf(ids[p], 32, "%s", id);
  }
}

/* Takes an offered device through to the target version. */
static void succeed(const char *id)
{
  struct checkin_answer a;
  struct report_answer ra;

  CHECK(fx_report(&x, id, 0, "+QIND: \"FOTA\",\"HTTPEND\",0\r\n+QIND: \"FOTA\",\"END\",0\r\n",
                  &ra) == VERDICT_NOTHING);
  CHECK(fx_checkin(&x, id, "B", NULL, &a) == VERDICT_NOTHING);
  CHECK(fx_get(&x, id, 0).state == D_SUCCEEDED);
}

static void cutoffs(void)
{
  struct rollout r;

  memset(&r, 0, sizeof(r));
  r.waves[0] = 1, r.waves[1] = 10, r.waves[2] = 50, r.waves[3] = 100, r.n_waves = 4;
  r.pos_end = 10;
  CHECK(rollout_wave_cutoff(&r, 0) == 1); /* at least one device */
  CHECK(rollout_wave_cutoff(&r, 1) == 1);
  CHECK(rollout_wave_cutoff(&r, 2) == 5);
  CHECK(rollout_wave_cutoff(&r, 3) == 10);
  CHECK(rollout_wave_cutoff(&r, 9) == 10); /* past the last: everyone */
  r.pos_end = 3;
  CHECK(rollout_wave_cutoff(&r, 2) == 2);
  r.pos_end = 0;
  CHECK(rollout_wave_cutoff(&r, 0) == 0);
}

/* waves [20, 100] over 10 devices, success_threshold 100: the second wave
 * opens once both devices of the first succeeded. */
static void threshold(void)
{
  char devs[512], rid[16], ids[10][32];
  struct checkin_answer a;
  int offers = 0;

  devices("w", 10, devs, sizeof(devs));
  CHECK(fx_rollout(&x, "B", devs, "\"waves\":[20,100],\"success_threshold\":100", rid) == 0);
  by_position("w", 10, ids);
  for (int p = 0; p < 10; p++) {
    enum verdict v = fx_checkin(&x, ids[p], "A", NULL, &a);
    CHECK(v == (p < 2 ? VERDICT_OFFER : VERDICT_NOTHING));
    offers += v == VERDICT_OFFER;
  }
  CHECK(offers == 2);
  CHECK(fx_get(&x, ids[0], 0).wave == 0);
  succeed(ids[0]);
  fleet_tick(x.f);
  CHECK(fx_get(&x, ids[0], 0).wave == 0); /* 50 % < 100 % */
  CHECK(fx_checkin(&x, ids[5], "A", NULL, &a) == VERDICT_NOTHING);
  succeed(ids[1]);
  fleet_tick(x.f);
  CHECK(fx_get(&x, ids[0], 0).wave == 1);
  CHECK(fx_get(&x, ids[0], 0).rstate == R_RUNNING);
  for (int p = 2; p < 10; p++)
    CHECK(fx_checkin(&x, ids[p], "A", NULL, &a) == VERDICT_OFFER);
  for (int p = 2; p < 10; p++)
    succeed(ids[p]);
  fleet_tick(x.f);
  CHECK(fx_get(&x, ids[0], 0).rstate == R_COMPLETED);
}

/* waves [20, 100] over 10 devices, success_threshold 100, and a member of
 * the first wave deleted once it runs: its position stays empty (nobody is
 * renumbered), the first wave is its one member left, whose success opens
 * the next; the last position is in the last wave (not cut off by a
 * cutoff made from the member count). (A device that joins after a
 * deletion: test_rollout_start.) */
static void deleted_member(void)
{
  char devs[512], rid[16], ids[10][32];
  struct checkin_answer a;
  json_t *out = NULL;

  devices("dm", 10, devs, sizeof(devs));
  CHECK(fx_rollout(&x, "B", devs, "\"waves\":[20,100],\"success_threshold\":100", rid) == 0);
  by_position("dm", 10, ids);
  CHECK(fleet_device_delete(x.f, ids[1], &out) == 204);
  json_decref(out);
  CHECK(fx_checkin(&x, ids[0], "A", NULL, &a) == VERDICT_OFFER);
  succeed(ids[0]);
  fleet_tick(x.f);
  CHECK(fx_get(&x, ids[0], 0).wave == 1);
  CHECK(fx_wave_counts_ok(&x, rid));
  CHECK(fx_checkin(&x, ids[9], "A", NULL, &a) == VERDICT_OFFER);
  CHECK(fleet_rollout_waves(x.f, rid, &out) == 200);
  CHECK(json_integer_value(
            json_object_get(json_array_get(json_object_get(out, "waves"), 0), "devices")) == 1);
  CHECK(json_integer_value(
            json_object_get(json_array_get(json_object_get(out, "waves"), 1), "devices")) == 8);
  json_decref(out);
  for (int p = 2; p < 10; p++) {
    if (p != 9)
      CHECK(fx_checkin(&x, ids[p], "A", NULL, &a) == VERDICT_OFFER);
    succeed(ids[p]);
  }
  fleet_tick(x.f);
  CHECK(fx_get(&x, ids[0], 0).rstate == R_COMPLETED);
}

/* waves [20, 100] over 10 devices with the default thresholds: one success
 * and one failure end the first wave at 50 % (below 95 %) without reaching
 * max_failure_rate: it pauses and says why, instead of waiting for ever;
 * a resume sets the failure aside and the next wave starts. */
static void stalled_wave(void)
{
  char devs[512], rid[16], ids[10][32];
  struct checkin_answer a;
  struct fx_dev v;

  devices("st", 10, devs, sizeof(devs));
  CHECK(fx_rollout(&x, "B", devs, "\"waves\":[20,100],\"max_failure_rate\":60,\"max_attempts\":1",
                   rid) == 0);
  by_position("st", 10, ids);
  CHECK(fx_checkin(&x, ids[0], "A", NULL, &a) == VERDICT_OFFER);
  CHECK(fx_checkin(&x, ids[1], "A", NULL, &a) == VERDICT_OFFER);
  succeed(ids[0]);
  CHECK(fx_urc(&x, ids[1], "HTTPEND", 707) == VERDICT_NOTHING);
  fleet_tick(x.f);
  v = fx_get(&x, ids[0], 0);
  CHECK(v.rstate == R_PAUSED && strstr(v.rreason, "below success_threshold") != NULL);
  CHECK(fx_action(&x, rid, "resume") == 200);
  v = fx_get(&x, ids[0], 0);
  CHECK(v.rstate == R_RUNNING && v.wave == 1);
  CHECK(fx_checkin(&x, ids[5], "A", NULL, &a) == VERDICT_OFFER);
}

/* max_failure_rate pauses the rollout; a resume sets the failures so far
 * aside; a new one pauses it again. */
static void failure_rate(void)
{
  char devs[512], rid[16], ids[10][32];
  struct checkin_answer a;
  struct fx_dev v;

  devices("f", 10, devs, sizeof(devs));
  CHECK(fx_rollout(&x, "B", devs, "\"waves\":[20,100],\"max_failure_rate\":40,\"max_attempts\":1",
                   rid) == 0);
  by_position("f", 10, ids);
  CHECK(fx_checkin(&x, ids[0], "A", NULL, &a) == VERDICT_OFFER);
  CHECK(fx_checkin(&x, ids[1], "A", NULL, &a) == VERDICT_OFFER);
  CHECK(fx_urc(&x, ids[0], "HTTPEND", 707) == VERDICT_NOTHING);
  v = fx_get(&x, ids[0], 707);
  CHECK(v.state == D_FAILED && v.rstate == R_PAUSED);
  CHECK(strstr(v.rreason, "1 of 2 devices failed") != NULL);
  /* paused: nobody gets anything, not even the offered device */
  CHECK(fx_checkin(&x, ids[1], "A", NULL, &a) == VERDICT_NOTHING);
  CHECK(fx_checkin(&x, ids[5], "A", NULL, &a) == VERDICT_NOTHING);
  CHECK(fx_action(&x, rid, "resume") == 200);
  v = fx_get(&x, ids[0], 707);
  CHECK(v.rstate == R_RUNNING && v.failed_base == 1 && v.rreason[0] == '\0');
  fleet_tick(x.f);
  CHECK(fx_get(&x, ids[0], 0).rstate == R_RUNNING); /* the old failure counts no more */
  CHECK(fx_checkin(&x, ids[1], "A", NULL, &a) == VERDICT_OFFER);
  CHECK(fx_urc(&x, ids[1], "HTTPEND", 705) == VERDICT_NOTHING); /* a new failure */
  v = fx_get(&x, ids[1], 705);
  CHECK(v.rstate == R_PAUSED && v.n_alarms == 1);
  CHECK(fx_action(&x, rid, "resume") == 200);
  CHECK(fx_get(&x, ids[0], 0).failed_base == 2);
  CHECK(fx_action(&x, rid, "resume") == 409);
  /* both failures set aside by the operator: they count for nothing, so
   * the next wave starts */
  CHECK(fx_get(&x, ids[0], 0).wave == 1);
}

/* An offer nobody takes up, a download that stalls, an update that never
 * confirms: each times out at the next tick after rollout.timeout. */
static void timeouts(void)
{
  char devs[256], rid[16], ids[4][32];
  struct checkin_answer a;
  struct fx_dev v;

  devices("t", 4, devs, sizeof(devs));
  CHECK(fx_rollout(&x, "B", devs, "\"timeout\":60,\"max_failure_rate\":100", rid) == 0);
  by_position("t", 4, ids);
  for (int p = 0; p < 4; p++)
    CHECK(fx_checkin(&x, ids[p], "A", NULL, &a) == VERDICT_OFFER);
  CHECK(fx_urc(&x, ids[1], "HTTPSTART", 0) == VERDICT_NOTHING);
  CHECK(fx_urc(&x, ids[2], "END", 0) == VERDICT_NOTHING);
  CHECK(fx_get(&x, ids[2], 0).state == D_UPDATING);
  succeed(ids[3]);
  fleet_tick(x.f);
  for (int p = 0; p < 3; p++)
    CHECK(fx_get(&x, ids[p], 0).state != D_FAILED);
  for (int p = 0; p < 4; p++)
    fx_age(&x, ids[p], 59000);
  fleet_tick(x.f);
  CHECK(fx_get(&x, ids[0], 0).state == D_OFFERED);
  for (int p = 0; p < 4; p++)
    fx_age(&x, ids[p], 2000);
  fleet_tick(x.f);
  v = fx_get(&x, ids[0], 0);
  CHECK(v.state == D_FAILED && v.attempts == 1 && strstr(v.reason, "timeout: offered") != NULL);
  v = fx_get(&x, ids[1], 0);
  CHECK(v.state == D_FAILED && strstr(v.reason, "timeout: downloading") != NULL);
  v = fx_get(&x, ids[2], 0);
  CHECK(v.state == D_FAILED && strstr(v.reason, "timeout: updating") != NULL);
  v = fx_get(&x, ids[3], 0);
  CHECK(v.state == D_SUCCEEDED); /* done is done */
  CHECK(v.rstate == R_COMPLETED && strstr(v.rreason, "end state") != NULL);
}

/* The same with the clock: a timeout of 1 s. */
static void timeout_real(void)
{
  char devs[128], rid[16];
  struct checkin_answer a;
  struct timespec ts = {1, 300 * 1000 * 1000};

  devices("tr", 1, devs, sizeof(devs));
  CHECK(fx_rollout(&x, "B", devs, "\"timeout\":1", rid) == 0);
  CHECK(fx_checkin(&x, "tr-0", "A", NULL, &a) == VERDICT_OFFER);
  fleet_tick(x.f);
  CHECK(fx_get(&x, "tr-0", 0).state == D_OFFERED);
  nanosleep(&ts, NULL);
  fleet_tick(x.f);
  CHECK(fx_get(&x, "tr-0", 0).state == D_FAILED);
}

/* A paused rollout's members do not time out while it is paused. */
static void paused_no_timeout(void)
{
  char devs[256], rid[16];
  struct checkin_answer a;

  devices("p", 2, devs, sizeof(devs));
  CHECK(fx_rollout(&x, "B", devs, "\"timeout\":60", rid) == 0);
  CHECK(fx_checkin(&x, "p-0", "A", NULL, &a) == VERDICT_OFFER);
  CHECK(fx_action(&x, rid, "pause") == 200);
  CHECK(fx_action(&x, rid, "pause") == 409);
  fx_age(&x, "p-0", 120000);
  fleet_tick(x.f);
  CHECK(fx_get(&x, "p-0", 0).state == D_OFFERED);
  CHECK(fx_action(&x, rid, "cancel") == 200);
  CHECK(fx_get(&x, "p-0", 0).state == D_IDLE && fx_get(&x, "p-0", 0).token[0] == '\0');
  CHECK(fx_action(&x, rid, "cancel") == 409);
  CHECK(fx_action(&x, rid, "start") == 409);
  CHECK(fx_action(&x, rid, "explode") == 404);
  CHECK(fx_action(&x, "rnosuchrollout", "start") == 404);
}

/* max_concurrent: the next device waits; start_at: everyone waits. */
static void limits(void)
{
  char devs[256], rid[16];
  struct checkin_answer a;

  devices("c", 3, devs, sizeof(devs));
  CHECK(fx_rollout(&x, "B", devs, "\"max_concurrent\":1", rid) == 0);
  CHECK(fx_checkin(&x, "c-0", "A", NULL, &a) == VERDICT_OFFER);
  CHECK(fx_checkin(&x, "c-1", "A", NULL, &a) == VERDICT_LATER);
  CHECK(a.retry_after >= 5 && a.retry_after < 15);
  succeed("c-0");
  CHECK(fx_checkin(&x, "c-1", "A", NULL, &a) == VERDICT_OFFER);

  devices("s", 1, devs, sizeof(devs));
  CHECK(fx_rollout(&x, "B", devs, "\"start_at\":\"2099-01-01T00:00:00Z\"", rid) == 0);
  CHECK(fx_checkin(&x, "s-0", "A", NULL, &a) == VERDICT_LATER);
  CHECK(a.retry_after == 86400);

  /* a selector that matches nobody completes at once */
  {
    char r2[16];
    CHECK(fx_rollout(&x, "B", "[\"nobody\"]", "", r2) == 0);
    json_t *out = NULL;
    CHECK(fleet_rollout_get(x.f, r2, &out) == 200);
    CHECK(strcmp(json_string_value(json_object_get(out, "state")) ?: "", "completed") == 0);
    json_decref(out);
  }
}

/* The fleet closed and opened again on the same database, loaded. */
static void reopen(void) { CHECK(fx_reopen(&x) == 0); }

/* The members' arrays agree with their records, every position is one
 * given (below pos_end) and none is given twice; pos_end into *end. */
static int positions_ok(const char *rid, int *end)
{
  struct rollout *r;
  unsigned char *seen;
  int ok = 1;

  pthread_mutex_lock(&x.f->mu);
  r = rollout_find(x.f, rid);
  if (r == NULL) {
    pthread_mutex_unlock(&x.f->mu);
    return 0;
  }
  *end = r->pos_end;
  seen = calloc((size_t)r->pos_end + 1, 1);
  for (int i = 0; seen != NULL && i < r->n_members; i++) {
    const struct device *d = r->members[i];
    int p = r->mpos[i];
    if (d->rollout != r || d->midx != i || d->position != p || r->mstate[i] != d->state || p < 0 ||
        p >= r->pos_end || seen[p]) {
      fprintf(stderr, "# member %s: position %d of %d, index %d of %d\n", d->id, p, r->pos_end,
              d->midx, i);
      ok = 0;
      break;
    }
    seen[p] = 1;
  }
  free(seen);
  pthread_mutex_unlock(&x.f->mu);
  return ok;
}

/* Members come and go while devices check in, succeed and fail, the
 * rollout pauses and resumes: the kept wave counts and the positions stay
 * true after every step, and across a reopen (pos_end from the record,
 * the deleted last positions included). Deterministic. */
static void churn(void)
{
  char devs[2048], rid[16], id[32], bodyids[1536];
  struct checkin_answer a;
  unsigned seed = 12345;
  int end = 0, end2 = 0, joined = 0, o = 0;

  /* 30 members at the start; j-0..j-19 in the selector, created later */
  devices("ch", 30, devs, sizeof(devs));
  o = snprintf(bodyids, sizeof(bodyids), "%.*s", (int)strlen(devs) - 1, devs);
  for (int i = 0; i < 20; i++)
    o += snprintf(bodyids + o, sizeof(bodyids) - (size_t)o, ",\"j-%d\"", i);
  snprintf(bodyids + o, sizeof(bodyids) - (size_t)o, "]");
  CHECK(fx_rollout(&x, "B", bodyids,
                   "\"waves\":[10,30,60,100],\"success_threshold\":50,\"max_failure_rate\":40,"
                   "\"max_attempts\":1",
                   rid) == 0);
  CHECK(fx_wave_counts_ok(&x, rid) && positions_ok(rid, &end) && end == 30);
  for (int step = 0; step < 400; step++) {
    unsigned v;
    seed = seed * 1103515245u + 12345u;
    v = (seed >> 8) % 100;
    snprintf(id, sizeof(id), "ch-%u", (seed >> 20) % 30);
    if (v < 8) {
      json_t *out = NULL;
      fleet_device_delete(x.f, id, &out); /* 404 once gone */
      json_decref(out);
    } else if (v < 14 && joined < 20) {
      snprintf(id, sizeof(id), "j-%d", joined++);
      CHECK(fx_device(&x, id, "A") == 201);
    } else if (v < 17) {
      fx_action(&x, rid, (seed >> 16) & 1 ? "pause" : "resume");
    } else if (v < 20) {
      fleet_tick(x.f);
    } else {
      if (v < 60 && joined > 0)
        snprintf(id, sizeof(id), "j-%u", (seed >> 12) % (unsigned)joined);
      if (fx_checkin(&x, id, "A", NULL, &a) == VERDICT_OFFER) {
        if (v % 3 == 0)
          fx_urc(&x, id, "HTTPEND", 707);
        else
          succeed(id);
      }
    }
    if (!fx_wave_counts_ok(&x, rid) || !positions_ok(rid, &end)) {
      fprintf(stderr, "# churn: step %d (%u)\n", step, v);
      CHECK(0);
      break;
    }
  }
  CHECK(joined > 0);
  {
    struct fx_dev v = fx_get(&x, "j-0", 0);
    fprintf(stderr, "# churn: %d joined, wave %d, rollout state %d, pos_end %d\n", joined,
            v.wave + 1, (int)v.rstate, end);
  }
  reopen();
  fleet_tick(x.f);
  CHECK(fx_wave_counts_ok(&x, rid) && positions_ok(rid, &end2));
  CHECK(end2 == end);
}

/* A member of a running rollout still at a position a joiner takes while
 * its rollout starts (from INT_MAX / 2), as one joined on another node
 * whose record came after the start's end: out of every wave for ever,
 * and the rollout never completes. Opened again, it takes the next
 * position. */
static void stranded_joiner(void)
{
  char devs[256], rid[16], ids[4][32];
  struct device *d;
  int end = 0;

  devices("sj", 4, devs, sizeof(devs));
  CHECK(fx_rollout(&x, "B", devs, "\"waves\":[100]", rid) == 0);
  by_position("sj", 4, ids);
  pthread_mutex_lock(&x.f->mu);
  d = device_find(x.f, ids[3]);
  rollout_set_position(d->rollout, d, INT_MAX / 2 + 3);
  device_mark(x.f, d);
  pthread_mutex_unlock(&x.f->mu);
  reopen();
  CHECK(positions_ok(rid, &end) && end == 5);
  CHECK(fx_wave_counts_ok(&x, rid));
  for (int p = 0; p < 4; p++) {
    struct checkin_answer a;
    CHECK(fx_checkin(&x, ids[p], "A", NULL, &a) == VERDICT_OFFER);
    succeed(ids[p]);
  }
  fleet_tick(x.f);
  CHECK(fx_get(&x, ids[0], 0).rstate == R_COMPLETED);
}

/* A member of a completed rollout whose group changes to a running
 * rollout's joins that one: it leaves the first (its counts, kept wave
 * counts included), and takes the running one's next position. */
static void moved_member(void)
{
  char devs[256], r1[16], r2[16], ids[2][32];
  struct checkin_answer a;
  int end1 = 0, end2 = 0;

  devices("mv", 2, devs, sizeof(devs));
  CHECK(fx_rollout(&x, "B", devs, "\"waves\":[100]", r1) == 0);
  by_position("mv", 2, ids);
  for (int p = 0; p < 2; p++) {
    CHECK(fx_checkin(&x, ids[p], "A", NULL, &a) == VERDICT_OFFER);
    succeed(ids[p]);
  }
  fleet_tick(x.f);
  CHECK(fx_get(&x, ids[0], 0).rstate == R_COMPLETED);
  CHECK(fx_wave_counts_ok(&x, r1));
  /* a second rollout over the group "moved": mv-9 */
  CHECK(fx_put(&x, "mv-9", "{\"model\":\"" FX_MODEL "\",\"version\":\"A\",\"group\":\"moved\"}") ==
        201);
  CHECK(fx_rollout_create(&x,
                          "{\"name\":\"t\",\"model\":\"" FX_MODEL "\",\"target_version\":\"B\","
                          "\"selector\":{\"group\":\"moved\"},\"waves\":[50,100]}",
                          r2, NULL, 0) == 201);
  CHECK(fx_action(&x, r2, "start") == 200);
  CHECK(positions_ok(r2, &end2) && end2 == 1);
  /* ids[0] moves to that group: it leaves r1 (completed) for r2 */
  CHECK(fx_put(&x, ids[0], "{\"group\":\"moved\"}") == 200);
  CHECK(positions_ok(r2, &end2) && end2 == 2);
  CHECK(positions_ok(r1, &end1) && end1 == 2);
  CHECK(fx_wave_counts_ok(&x, r1) && fx_wave_counts_ok(&x, r2));
  fleet_tick(x.f);
  CHECK(fx_wave_counts_ok(&x, r2));
  CHECK(fx_get(&x, ids[0], 0).rstate == R_RUNNING);
}

/* A start run again (a restart while it started) after a member enrolled
 * by the first run stopped matching (its model changed): the second run
 * does not enrol it again, and it kept the first run's position, which
 * the second run may give another member or leave past pos_end, out of
 * every wave. Simulated: a started rollout made starting again, its job
 * run again. */
static void start_again(void)
{
  char devs[512], rid[16], ids[10][32];
  struct rollout *r;
  int end = 0;

  devices("sa", 10, devs, sizeof(devs));
  CHECK(fx_rollout(&x, "B", devs, "\"waves\":[50,100]", rid) == 0);
  by_position("sa", 10, ids);
  pthread_mutex_lock(&x.f->mu);
  r = rollout_find(x.f, rid);
  r->state = R_STARTING;
  r->job = JOB_START;
  pthread_mutex_unlock(&x.f->mu);
  /* the last one by the first run's order leaves the model */
  CHECK(fx_put(&x, ids[9], "{\"model\":\"other-model\"}") == 200);
  rollout_job_run(x.f, r);
  CHECK(fx_get(&x, ids[0], 0).rstate == R_RUNNING);
  CHECK(positions_ok(rid, &end) && end == 10);
  CHECK(fx_wave_counts_ok(&x, rid));
}

int main(void)
{
  char pkg[PKG_ID_LEN + 1];

  cutoffs();
  if (fx_open(&x, "test-rollout") < 0) {
    CHECK(0);
    return unit_done("test_rollout");
  }
  CHECK(fx_package(&x, "A", "B", "a-b.bin", 20000, pkg) == 0);
  threshold();
  failure_rate();
  stalled_wave();
  deleted_member();
  timeouts();
  timeout_real();
  paused_no_timeout();
  limits();
  churn();
  stranded_joiner();
  moved_member();
  start_again();
  fx_close(&x);
  return unit_done("test_rollout");
}
