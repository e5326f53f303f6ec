/* fleet.h: the fleet logic: devices, their credentials, check-ins, the
 * downloads and reports that move them through their states, rollouts in
 * waves, upgrade paths. It lives in memory, guarded by one lock, and is
 * persisted through the store's writer (store.h): state changes are
 * committed before the answer that reveals them; download progress is
 * batched. The device fronts and the admin API are its only callers. */
#ifndef DFOTAD_FLEET_H
#define DFOTAD_FLEET_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct fleet;
struct store;
struct package;

#define DEVICE_ID_MAX 64
#define FLEET_TOKEN_LEN 24 /* base32: 120 random bits */

/* Loads devices and rollouts, and registers the fleet's flush hook.
 * 0, or -1 with err filled. */
int fleet_open(struct store *s, struct fleet **out, char *err, size_t errlen);
void fleet_close(struct fleet *f);
/* Timeouts, backoffs, waves: called a few times a second. */
void fleet_tick(struct fleet *f);

/* ---- device-facing -------------------------------------------------- */

/* Who a device request says it is: the device id of the query, and the
 * secret from the header or, on TLS, the subject CN of a verified client
 * certificate. */
struct fleet_identity {
  const char *device_id;
  const char *secret;  /* NULL when absent */
  const char *cert_cn; /* NULL when no verified certificate */
  const char *addr;    /* client address, for the record */
  const char *protocol;
};

struct checkin_answer {
  int status;      /* 200, 204, 429, 400, 403 */
  int retry_after; /* seconds, with 429 */
  char url[320];   /* with 200 */
  char package_id[16], sha256[65], from[130], to[130], rollout[16];
  uint64_t size;
  int request_size;  /* a suggestion for AT+QFOTADL's request_size */
  char message[160]; /* with 400/403 */
};

/* A check-in: GET /v1/update?device=ID&version=V. base_url is the public
 * URL of the listener it came in on ("http://host:port"). */
void fleet_checkin(struct fleet *f, const struct fleet_identity *who, const char *version,
                   const char *base_url, struct checkin_answer *out);

/* A report: POST /v1/report. Returns 200 (state filled, *accepted: the
 * usable lines), 400 (nothing usable; message filled) or 403. */
int fleet_report(struct fleet *f, const struct fleet_identity *who, const char *content_type,
                 const char *body, size_t len, char *state, size_t statelen, int *accepted,
                 char *message, size_t msglen);

/* /f/{token}: the package behind a download token, with a reference the
 * caller drops, or NULL for an unknown or ended offer. get: a GET (not a
 * HEAD), which moves an offered device to downloading. */
struct package *fleet_download_begin(struct fleet *f, const char *token, int get);
/* Records a range served under a token: start offset, bytes that reached
 * the client, whether the response completed, and whether it was a range. */
void fleet_download_end(struct fleet *f, const char *token, uint64_t start, uint64_t sent,
                        int complete, int ranged, const char *protocol, const char *addr);

/* ---- admin ---------------------------------------------------------- */

/* Every call returns an HTTP status and sets *out to the JSON body (an
 * object, or an error object made by fleet_error). */
int fleet_device_put(struct fleet *f, const char *id, json_t *body, json_t **out);
int fleet_devices_bulk(struct fleet *f, json_t *body, json_t **out);
int fleet_device_get(struct fleet *f, const char *id, json_t **out);
int fleet_device_delete(struct fleet *f, const char *id, json_t **out);
int fleet_device_events(struct fleet *f, const char *id, json_t **out);
/* filters: NULL for any. after: the last id of the previous page. */
int fleet_devices_list(struct fleet *f, const char *model, const char *version, const char *group,
                       const char *state, const char *rollout, int limit, const char *after,
                       json_t **out);

int fleet_rollout_create(struct fleet *f, json_t *body, json_t **out);
int fleet_rollout_get(struct fleet *f, const char *id, json_t **out);
int fleet_rollouts_list(struct fleet *f, json_t **out);
/* action: "start", "pause", "resume", "cancel" */
int fleet_rollout_action(struct fleet *f, const char *id, const char *action, json_t **out);

/* Prometheus text for /metrics; the caller frees it. */
char *fleet_metrics(struct fleet *f);

json_t *fleet_error(const char *code, const char *message);

#endif
