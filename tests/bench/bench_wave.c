/* bench_wave.c: what a device of a rollout's current wave costs the fleet
 * (under its one lock) when the rollout is large: every offer and every
 * report evaluates the rollout (may the next wave start? must it pause?),
 * and check-ins of the whole fleet wait behind that lock. DEVICES devices
 * on a real SQLite file, a rollout over all of them with waves [1, 100]
 * (started by the job thread, as in the daemon), then ROUNDS rounds of 200
 * devices of the first wave each checking in (offered) and reporting
 * HTTPSTART: the median time a call, the time one evaluation of the
 * rollout takes under the lock, and a tick's (every 200 ms in the daemon:
 * timeouts of the devices under way) with those devices under way.
 * Usage: make tests/bench/bench_wave && tests/bench/bench_wave [DEVICES] [ROUNDS] */
#include "autoconfig.h"

#include <limits.h>
#include <time.h>
#include <unistd.h>

#include "../unit/fleet_fixture.h"

#define PER_ROUND 200

static struct fx x;

static double now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
  double p = *(const double *)a, q = *(const double *)b;
  return p < q ? -1 : p > q;
}

static double median(double *v, int n)
{
  qsort(v, (size_t)n, sizeof(*v), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void create(int n)
{
  const int chunk = 10000;
  size_t cap = (size_t)chunk * 96 + 16;
  char *body = malloc(cap);

  for (int i0 = 0; i0 < n; i0 += chunk) {
    size_t o = 0;
    char *text = NULL;
    json_t *out = NULL;
    o += (size_t)snprintf(body + o, cap - o, "[");
    for (int i = i0; i < n && i < i0 + chunk; i++)
      o += (size_t)snprintf(body + o, cap - o,
                            "%s{\"id\":\"w%07d\",\"model\":\"%s\",\"version\":\"A\","
                            "\"secret\":\"%s\"}",
                            i > i0 ? "," : "", i, FX_MODEL, FX_SECRET);
    snprintf(body + o, cap - o, "]");
    if (fleet_devices_bulk(x.f, body, strlen(body), &text, &out) != 200) {
      fprintf(stderr, "bulk create failed\n");
      exit(1);
    }
    free(text);
    json_decref(out);
  }
  free(body);
}

int main(int argc, char **argv)
{
  int n = argc > 1 ? atoi(argv[1]) : 1000000;
  int rounds = argc > 2 ? atoi(argv[2]) : 5;
  char pkg[PKG_ID_LEN + 1], rid[16], body[256];
  char(*wave)[DEVICE_ID_MAX + 1];
  int n_wave = 0, cutoff, used = 0;
  double *checkin_us, *report_us, eval_us[9], t0;
  json_t *out = NULL;
  struct rollout *r;

  if (n < 1000 || n > 2000000 || rounds < 1 || rounds > 50) {
    fprintf(stderr, "usage: bench_wave [DEVICES 1000..2000000] [ROUNDS 1..50]\n");
    return 2;
  }
  if (fx_open(&x, "bench-wave") < 0 || fx_package(&x, "A", "B", "a-b.bin", 100000, pkg) < 0)
    return 1;
  t0 = now_us();
  create(n);
  printf("%d devices created in %.1f s\n", n, (now_us() - t0) / 1e6);
  snprintf(body, sizeof(body),
           "{\"name\":\"w\",\"model\":\"%s\",\"target_version\":\"B\",\"waves\":[1,100],"
           "\"success_threshold\":100,\"max_failure_rate\":100}",
           FX_MODEL);
  if (fx_rollout_create(&x, body, rid, NULL, 0) != 201)
    return 1;
  t0 = now_us();
  fleet_rollout_action(x.f, rid, "start", &out);
  json_decref(out);
  for (;;) {
    enum rstate st;
    pthread_mutex_lock(&x.f->mu);
    st = rollout_find(x.f, rid)->state;
    pthread_mutex_unlock(&x.f->mu);
    if (st != R_STARTING)
      break;
    usleep(20000);
  }
  printf("rollout started in %.1f s\n", (now_us() - t0) / 1e6);

  /* the first wave's members, by id */
  pthread_mutex_lock(&x.f->mu);
  r = rollout_find(x.f, rid);
  cutoff = rollout_wave_cutoff(r, 0);
  wave = calloc((size_t)cutoff + 1, sizeof(*wave));
  for (int i = 0; i < r->n_members && n_wave < cutoff; i++)
    if (r->mpos[i] < cutoff)
      snprintf(wave[n_wave++], DEVICE_ID_MAX + 1, "%s", r->members[i]->id);
  for (int k = 0; k < 9; k++) {
    double t = now_us();
    rollout_evaluate(x.f, r);
    eval_us[k] = now_us() - t;
  }
  pthread_mutex_unlock(&x.f->mu);
  printf("first wave: %d members; one evaluation of the rollout under the lock: %.1f us "
         "(median of 9)\n",
         n_wave, median(eval_us, 9));

  checkin_us = calloc((size_t)rounds, sizeof(double));
  report_us = calloc((size_t)rounds, sizeof(double));
  for (int k = 0; k < rounds; k++) {
    double c = 0, rep = 0;
    int m = 0;
    for (; m < PER_ROUND && used < n_wave; m++, used++) {
      struct checkin_answer a;
      double t = now_us();
      fx_checkin(&x, wave[used], "A", NULL, &a);
      c += now_us() - t;
      t = now_us();
      fx_urc(&x, wave[used], "HTTPSTART", 0);
      rep += now_us() - t;
    }
    checkin_us[k] = m ? c / m : 0;
    report_us[k] = m ? rep / m : 0;
  }
  printf("per wave device (median of %d rounds of %d): check-in with an offer %.1f us, "
         "report %.1f us\n",
         rounds, PER_ROUND, median(checkin_us, rounds), median(report_us, rounds));
  for (int k = 0; k < 9; k++) {
    double t = now_us();
    fleet_tick(x.f);
    eval_us[k] = now_us() - t;
  }
  printf("a tick with %d devices under way: %.1f us (median of 9)\n", used, median(eval_us, 9));
  for (int k = 0; k < 9; k++) {
    double t = now_us();
    fleet_rollout_waves(x.f, rid, &out);
    eval_us[k] = now_us() - t;
    json_decref(out);
  }
  printf("GET /api/v1/rollouts/ID/waves: %.1f us (median of 9)\n", median(eval_us, 9));
  free(checkin_us);
  free(report_us);
  free(wave);
  fx_close(&x);
  return 0;
}
