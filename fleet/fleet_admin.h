/* fleet_admin.h: the fleet's calls for the admin API. Each returns an HTTP
 * status (the admin API is HTTP and JSON only) and sets *out to the JSON
 * body (an object, or an error object made by fleet_error). */
#ifndef DFOTAD_FLEET_ADMIN_H
#define DFOTAD_FLEET_ADMIN_H

#include <jansson.h>

struct fleet;

int fleet_device_put(struct fleet *f, const char *id, json_t *body, json_t **out);
/* body: the request's JSON text (len bytes). 200: *text the answer, a JSON
 * document and a newline (the caller frees it); else *out the error. */
int fleet_devices_bulk(struct fleet *f, const char *body, size_t len, char **text, json_t **out);
int fleet_device_get(struct fleet *f, const char *id, json_t **out);
int fleet_device_delete(struct fleet *f, const char *id, json_t **out);
/* after: the last event id of the previous page (0: from the first);
 * limit: 1..MAX_PAGE; newest_first: newest first (after 0: from the
 * newest; else the events older than event id after). */
int fleet_device_events(struct fleet *f, const char *id, int64_t after, int limit, int newest_first,
                        json_t **out);
/* filters: NULL for any; q: text the id contains. after: the last id of the previous page;
 * limit: 1..MAX_PAGE. */
int fleet_devices_list(struct fleet *f, const char *model, const char *version, const char *group,
                       const char *state, const char *rollout, const char *q, int limit,
                       const char *after, json_t **out);

int fleet_rollout_create(struct fleet *f, json_t *body, json_t **out);
int fleet_rollout_get(struct fleet *f, const char *id, json_t **out);
int fleet_rollouts_list(struct fleet *f, json_t **out);
/* action: "start", "pause", "resume", "cancel" */
int fleet_rollout_action(struct fleet *f, const char *id, const char *action, json_t **out);

/* Prometheus text for /metrics (the fleet's and the fronts' counters);
 * the caller frees it. NULL when out of memory. */
char *fleet_metrics(struct fleet *f);

/* {"error": {"code": code, "message": message}} */
json_t *fleet_error(const char *code, const char *message);
/* Runs fn(arg) as a decision (fleet/shared.c): with several nodes on one
 * database, inside a database transaction after the other nodes' changes,
 * committed before it returns 0 (-1: not run or not committed, the
 * database unreachable: answer 503); on one node fn(arg), and 0 (the
 * calls commit as before). f->mu not held. */
int fleet_decide(struct fleet *f, void (*fn)(void *arg), void *arg);

/* The operator's console (overview.c): the fleet at a glance; one
 * rollout's waves and its failures by Quectel code; the cheapest upgrade
 * path from one version of a model to another ("hops": null when none). */
int fleet_overview(struct fleet *f, json_t **out);
int fleet_rollout_waves(struct fleet *f, const char *id, json_t **out);
int fleet_upgrade_path(struct fleet *f, const char *model, const char *from, const char *to,
                       json_t **out);

/* The public base URL of a protocol's front ("" when none runs). */
void fleet_public_base(struct fleet *f, int proto, char *out, size_t len);

#endif
