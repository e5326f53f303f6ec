/* bench_progress.c: how many download-progress events per second the fleet
 * absorbs, with the store's writer committing them to a real SQLite file
 * as it does in the daemon. Two threads (the daemon's HTTP thread pool on
 * this machine) record ranges against DEVICES devices for SECONDS seconds.
 * Usage: bench_progress [DEVICES] [SECONDS] */
#include "autoconfig.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fleet/fleet.h"
#include "fleet/fleet_int.h"
#include "store/store.h"

static struct fleet *fleet;
static char (*tokens)[FLEET_TOKEN_LEN + 1];
static int n_devices;
static atomic_int stop;
static _Atomic uint64_t events;

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *worker(void *arg)
{
  unsigned seed = (unsigned)(uintptr_t)arg;
  uint64_t n = 0;

  while (!atomic_load(&stop)) {
    for (int k = 0; k < 1000; k++) {
      int d = (int)(rand_r(&seed) % (unsigned)n_devices);
      uint64_t off = (uint64_t)(rand_r(&seed) % 1000) * 2048;
      progress_record(fleet, tokens[d], off, 2048, 1, PIECE_SEGMENT, PROTO_HTTP, "127.0.0.1");
    }
    n += 1000;
  }
  atomic_fetch_add(&events, n);
  return NULL;
}

int main(int argc, char **argv)
{
  char dir[] = "/tmp/dfotad-bench-progress-XXXXXX", err[256], cmd[512];
  struct store *s;
  pthread_t th[2];
  int seconds;
  double t0, t1;
  uint64_t commits, last_us;

  n_devices = argc > 1 ? atoi(argv[1]) : 10000;
  seconds = argc > 2 ? atoi(argv[2]) : 5;
  if (mkdtemp(dir) == NULL || store_open(dir, 250, &s, err, sizeof(err)) < 0 ||
      fleet_open(s, &fleet, err, sizeof(err)) < 0) {
    fprintf(stderr, "setup: %s\n", err);
    return 1;
  }
  /* devices with an offer each, as after a rollout's check-ins */
  tokens = calloc((size_t)n_devices, sizeof(*tokens));
  pthread_mutex_lock(&fleet->mu);
  for (int i = 0; i < n_devices; i++) {
    char id[32];
    struct device *d;
    json_t *b =
        json_pack("{s:s,s:s,s:s}", "model", "BG95", "version", "A", "secret", "0123456789abcdef");
    json_t *out = NULL;
    snprintf(id, sizeof(id), "dev%06d", i);
    pthread_mutex_unlock(&fleet->mu);
    fleet_device_put(fleet, id, b, &out);
    pthread_mutex_lock(&fleet->mu);
    json_decref(b);
    json_decref(out);
    d = device_find(fleet, id);
    snprintf(d->token, sizeof(d->token), "t%023d", i);
    snprintf(tokens[i], sizeof(tokens[i]), "%s", d->token);
    d->size = 2048 * 1000;
    token_link(fleet, d); /* as an offer does */
  }
  pthread_mutex_unlock(&fleet->mu);

  printf("%d devices, 2 threads, %d s, writer flushing every 250 ms to %s\n", n_devices, seconds,
         dir);
  t0 = now_s();
  for (long i = 0; i < 2; i++)
    pthread_create(&th[i], NULL, worker, (void *)(i + 1));
  sleep((unsigned)seconds);
  atomic_store(&stop, 1);
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  t1 = now_s();
  store_sync(s);
  store_writer_stats(s, &commits, &last_us);
  printf("progress events: %llu in %.2f s = %.0f per second\n",
         (unsigned long long)atomic_load(&events), t1 - t0,
         (double)atomic_load(&events) / (t1 - t0));
  printf("writer: %llu commits, last one %.1f ms\n", (unsigned long long)commits, last_us / 1000.0);
  fleet_close(fleet);
  store_close(s);
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : 1;
}
