/* fuzz_fleet.h: one real fleet (SQLite store in a temporary directory,
 * under /dev/shm when there is one, so that commits are cheap) shared by
 * every input of a fuzz target: a package chain A -> B -> C of model M, a
 * device "dev:1" in a running rollout to C, fronts for http, https, coap
 * and ftp (none for coaps and ftps). fuzz_reset() puts the device and its
 * rollout back in play before each input, so that every input meets a
 * device with an offer rather than one that ended long ago. */
#ifndef DFOTAD_FUZZ_FLEET_H
#define DFOTAD_FUZZ_FLEET_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleet/delivery.h"
#include "fleet/fleet.h"
#include "fleet/fleet_admin.h"
#include "fleet/fleet_int.h"
#include "store/store.h"
#include "util/log.h"

#define FZ_DEVICE "dev:1"
#define FZ_SECRET "fuzz-secret-0123456789"

static struct store *fz_store;
static struct fleet *fz_fleet;
static char fz_dir[64];
static char fz_rollout[16];

static void fz_cleanup(void)
{
  char cmd[128];

  fleet_close(fz_fleet);
  store_close(fz_store);
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fz_dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", fz_dir);
}

static void fz_package(const char *from, const char *to)
{
  struct package_meta m = {"M", from, to, "pkg.bin"};
  struct upload *u = NULL;
  struct package *p = NULL;
  char data[3000];

  memset(data, from[0], sizeof(data));
  if (store_upload_begin(fz_store, &m, 1 << 20, &u) != STORE_OK ||
      store_upload_write(u, data, sizeof(data)) != STORE_OK ||
      store_upload_finish(u, &p) != STORE_OK)
    abort();
  package_unref(p);
}

static json_t *fz_json(const char *text)
{
  json_t *j = json_loads(text, 0, NULL);

  if (j == NULL)
    abort();
  return j;
}

/* Sets everything up once. */
static void fz_init(void)
{
  static const char *const bases[PROTO_COUNT] = {"http://127.0.0.1:8080", "https://127.0.0.1:8443",
                                                 "coap://127.0.0.1:5683", "",
                                                 "ftp://127.0.0.1:2121",  ""};
  char err[256];
  json_t *b, *out = NULL;

  if (fz_fleet != NULL)
    return;
  log_set_level(LOG_ERROR);
  snprintf(fz_dir, sizeof(fz_dir), "%s/dfotad-fuzz-XXXXXX",
           access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  if (mkdtemp(fz_dir) == NULL || store_open(fz_dir, 1000, &fz_store, err, sizeof(err)) < 0 ||
      fleet_open(fz_store, &fz_fleet, err, sizeof(err)) < 0) {
    fprintf(stderr, "fuzz fleet: %s\n", err);
    abort();
  }
  atexit(fz_cleanup);
  delivery_set_bases(fz_fleet, bases);
  fz_package("A", "B");
  fz_package("B", "C");
  b = fz_json("{\"model\":\"M\",\"version\":\"A\",\"secret\":\"" FZ_SECRET "\"}");
  if (fleet_device_put(fz_fleet, FZ_DEVICE, b, &out) != 201)
    abort();
  json_decref(b);
  json_decref(out);
  b = fz_json("{\"name\":\"fuzz\",\"model\":\"M\",\"target_version\":\"C\",\"max_attempts\":100,"
              "\"retry_backoff\":0}");
  if (fleet_rollout_create(fz_fleet, b, &out) != 201)
    abort();
  snprintf(fz_rollout, sizeof(fz_rollout), "%s", json_string_value(json_object_get(out, "id")));
  json_decref(b);
  json_decref(out);
  if (fleet_rollout_action(fz_fleet, fz_rollout, "start", &out) != 200)
    abort();
  json_decref(out);
}

static void fz_who(struct device_identity *who, enum proto p)
{
  memset(who, 0, sizeof(*who));
  who->device_id = FZ_DEVICE;
  who->secret = FZ_SECRET;
  who->addr = "127.0.0.1";
  who->proto = p;
}

/* The device back on A with a fresh offer, its rollout running. */
static void fz_reset(void)
{
  struct device *d;
  struct device_identity who;
  struct checkin_answer a;

  pthread_mutex_lock(&fz_fleet->mu);
  d = device_find(fz_fleet, FZ_DEVICE);
  if (d == NULL || d->rollout == NULL)
    abort();
  d->rollout->state = R_RUNNING;
  d->rollout->failed_base = 0;
  d->rollout->wave = 0;
  if (d->state != D_OFFERED && d->state != D_DOWNLOADING) {
    device_clear_offer(fz_fleet, d);
    set_str(&d->version, "A");
    d->state = D_PENDING;
  }
  d->attempts = 0;
  d->retry_at = 0;
  pthread_mutex_unlock(&fz_fleet->mu);
  fz_who(&who, PROTO_HTTP);
  delivery_checkin(fz_fleet, &who, NULL, NULL, &a);
  if (a.verdict != VERDICT_OFFER)
    abort();
}

/* A reason is a sentence of ours, never a device's whole input. */
#define FZ_REASON_MAX 512

/* The device's record is sane. */
static void fz_check_device(void)
{
  struct device *d;

  pthread_mutex_lock(&fz_fleet->mu);
  d = device_find(fz_fleet, FZ_DEVICE);
  if (d == NULL || (unsigned)d->state >= D_NSTATES || d->attempts < 0 || d->n_ival < 0 ||
      d->n_ival > MAX_IVALS || d->device_percent > 100 ||
      strlen(d->last_stage) >= sizeof(d->last_stage) ||
      (d->reason != NULL && strlen(d->reason) > FZ_REASON_MAX))
    abort();
  pthread_mutex_unlock(&fz_fleet->mu);
}

#endif
