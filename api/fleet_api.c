/* fleet_api.c: the admin API's device, rollout and metrics endpoints: the
 * translation between HTTP and fleet.h.
 *
 *   PUT    /api/v1/devices/{id}          GET/DELETE /api/v1/devices/{id}
 *   POST   /api/v1/devices   (bulk)      GET /api/v1/devices[?filters]
 *   GET    /api/v1/devices/{id}/events
 *   POST   /api/v1/rollouts              GET /api/v1/rollouts[/{id}] (?limit=&after=)
 *   POST   /api/v1/rollouts/{id}/{start|pause|resume|cancel}
 *   GET    /api/v1/rollouts/{id}/waves   GET /api/v1/overview
 *   GET    /api/v1/paths?model=&from=&to=
 *   GET    /metrics */
#include "autoconfig.h"

#include "fleet_api.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fleet/delivery.h"
#include "../fleet/fleet_admin.h"
#include "../store/store.h"
#include "../util/limits.h"
#include "json.h"

#define DEV_PREFIX "/api/v1/devices"
#define RO_PREFIX "/api/v1/rollouts"
#define OVERVIEW "/api/v1/overview"
#define PATHS "/api/v1/paths"

/* The query parameters each listing takes: any other is a 400 (a typo in
 * a filter's name must not list the whole fleet). */
static const char *const q_devices[] = {"model", "version", "group", "state", "rollout",
                                        "q",     "limit",   "after", NULL};
static const char *const q_page[] = {"limit", "after", NULL};
static const char *const q_events[] = {"limit", "after", "order", NULL};
static const char *const q_paths[] = {"model", "from", "to", NULL};

static enum MHD_Result reply(struct MHD_Connection *c, int status, json_t *body)
{
  if (status == 204) {
    json_decref(body);
    return json_reply(c, MHD_HTTP_NO_CONTENT, json_object());
  }
  return json_reply(c, (unsigned)status, body);
}

static enum MHD_Result method_not_allowed(struct MHD_Connection *c, const char *allowed)
{
  char msg[64];

  snprintf(msg, sizeof(msg), "use %s", allowed);
  return json_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", msg);
}

/* Splits "a/b" after prefix + "/" into first and rest (rest may be ""). */
static int split(const char *url, const char *prefix, char *first, size_t flen, const char **rest)
{
  const char *p = url + strlen(prefix) + 1, *slash = strchr(p, '/');
  size_t n = slash ? (size_t)(slash - p) : strlen(p);

  if (n == 0 || n >= flen)
    return -1;
  memcpy(first, p, n);
  first[n] = '\0';
  *rest = slash ? slash + 1 : "";
  return 0;
}

/* The admin calls that change the fleet, run as decisions (fleet_decide):
 * with several nodes on one database, inside a database transaction from
 * the records as the database has them; on one node as they are. */
enum admin_op { OP_BULK, OP_PUT, OP_DELETE, OP_RO_CREATE, OP_RO_ACTION };

struct admin_call {
  struct fleet *fleet;
  enum admin_op op;
  const char *id, *action;
  json_t *body, *out;
  int st;
  const char *raw; /* OP_BULK: the body's text */
  size_t raw_len;
  char *text; /* OP_BULK: the answer's */
};

static void admin_call_run(void *arg)
{
  struct admin_call *a = arg;

  switch (a->op) {
  case OP_BULK:
    free(a->text); /* a decision run again */
    a->text = NULL;
    json_decref(a->out);
    a->out = NULL;
    a->st = fleet_devices_bulk(a->fleet, a->raw, a->raw_len, &a->text, &a->out);
    break;
  case OP_PUT: a->st = fleet_device_put(a->fleet, a->id, a->body, &a->out); break;
  case OP_DELETE: a->st = fleet_device_delete(a->fleet, a->id, &a->out); break;
  case OP_RO_CREATE: a->st = fleet_rollout_create(a->fleet, a->body, &a->out); break;
  case OP_RO_ACTION: a->st = fleet_rollout_action(a->fleet, a->id, a->action, &a->out); break;
  }
}

static int admin_change(struct fleet *fl, enum admin_op op, const char *id, const char *action,
                        json_t *body, json_t **out)
{
  struct admin_call a = {fl, op, id, action, body, NULL, 500, NULL, 0, NULL};

  if (fleet_decide(fl, admin_call_run, &a) < 0) {
    json_decref(a.out);
    *out = fleet_error("unavailable",
                       "the database is unreachable: the change was not saved; try again");
    return 503;
  }
  *out = a.out;
  return a.st;
}

enum MHD_Result fleet_api_bulk(struct MHD_Connection *c, struct admin_ctx *f, const char *body,
                               size_t len)
{
  struct admin_call a = {f->fleet, OP_BULK, NULL, NULL, NULL, NULL, 500, body, len, NULL};

  if (fleet_decide(f->fleet, admin_call_run, &a) < 0) {
    json_decref(a.out);
    free(a.text);
    return json_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                      "the database is unreachable: the change was not saved; try again");
  }
  if (a.st == 200 && a.text != NULL) {
    json_decref(a.out);
    return json_text_reply(c, 200, a.text, strlen(a.text));
  }
  free(a.text);
  return reply(c, a.st, a.out);
}

static enum MHD_Result devices(struct MHD_Connection *c, struct admin_ctx *f, const char *url,
                               const char *method, json_t *body)
{
  json_t *out = NULL;
  char id[DEVICE_ID_MAX + 2];
  const char *rest;
  int st;

  if (strcmp(url, DEV_PREFIX) == 0) {
    if (strcmp(method, "GET") == 0) {
      int ok = 1, refused = json_query_refuse(c, q_devices);
      if (refused >= 0)
        return (enum MHD_Result)refused;
      long long limit = json_num_arg(c, "limit", 1, MAX_PAGE, DEF_PAGE, &ok);
      if (!ok)
        return json_error(c, MHD_HTTP_BAD_REQUEST, "bad_request",
                          "limit must be a whole number from 1 to 1000");
      st = fleet_devices_list(f->fleet, json_arg(c, "model"), json_arg(c, "version"),
                              json_arg(c, "group"), json_arg(c, "state"), json_arg(c, "rollout"),
                              json_arg(c, "q"), (int)limit, json_arg(c, "after"), &out);
    } else if (strcmp(method, "POST") == 0) {
      return fleet_api_bulk(c, f, NULL, 0); /* no body (one is read as text) */
    } else {
      return method_not_allowed(c, "GET or POST");
    }
    return reply(c, st, out);
  }
  if (url[strlen(DEV_PREFIX) + 1] == '\0')
    return json_error(c, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
  if (split(url, DEV_PREFIX, id, sizeof(id), &rest) < 0)
    return json_error(c, MHD_HTTP_NOT_FOUND, "not_found", "no such device");
  if (strcmp(rest, "events") == 0) {
    if (strcmp(method, "GET") != 0)
      return method_not_allowed(c, "GET");
    int ok = 1, refused = json_query_refuse(c, q_events);
    if (refused >= 0)
      return (enum MHD_Result)refused;
    long long limit = json_num_arg(c, "limit", 1, MAX_PAGE, DEF_PAGE, &ok);
    long long after = json_num_arg(c, "after", 0, INT64_MAX, 0, &ok);
    const char *order = json_arg(c, "order");
    if (order != NULL && strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0)
      ok = 0;
    if (!ok)
      return json_error(c, MHD_HTTP_BAD_REQUEST, "bad_request",
                        "limit is 1 to 1000, after an event id (a whole number) and order asc "
                        "or desc");
    st = fleet_device_events(f->fleet, id, (int64_t)after, (int)limit,
                             order != NULL && strcmp(order, "desc") == 0, &out);
    return reply(c, st, out);
  }
  if (rest[0] != '\0')
    return json_error(c, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
  if (strcmp(method, "GET") == 0)
    st = fleet_device_get(f->fleet, id, &out);
  else if (strcmp(method, "PUT") == 0)
    st = admin_change(f->fleet, OP_PUT, id, NULL, body, &out);
  else if (strcmp(method, "DELETE") == 0)
    st = admin_change(f->fleet, OP_DELETE, id, NULL, NULL, &out);
  else
    return method_not_allowed(c, "GET, PUT or DELETE");
  return reply(c, st, out);
}

/* GET /api/v1/rollouts[?limit=&after=]: a page, oldest first, of at most
 * limit rollouts after the one named after (the "next" of the page
 * before). Rollouts are few beside devices (the fleet lists them all at
 * once); the page keeps each answer, and the console's table, bounded. */
static enum MHD_Result rollouts_page(struct MHD_Connection *c, struct admin_ctx *f)
{
  json_t *out = NULL, *all, *page;
  const char *after = json_arg(c, "after");
  int ok = 1, st;
  long long limit = json_num_arg(c, "limit", 1, MAX_PAGE, MAX_PAGE, &ok);
  size_t i = 0, n;
  int refused = json_query_refuse(c, q_page);

  if (refused >= 0)
    return (enum MHD_Result)refused;
  if (!ok)
    return json_error(c, MHD_HTTP_BAD_REQUEST, "bad_request", "limit is 1 to 1000");
  st = fleet_rollouts_list(f->fleet, &out);
  if (st != 200)
    return reply(c, st, out);
  all = json_object_get(out, "rollouts");
  n = json_array_size(all);
  if (after != NULL) {
    for (; i < n; i++) {
      const char *id = json_string_value(json_object_get(json_array_get(all, i), "id"));
      if (id != NULL && strcmp(id, after) == 0)
        break;
    }
    if (i == n) {
      json_decref(out);
      return json_error(c, MHD_HTTP_BAD_REQUEST, "bad_request",
                        "after: no such rollout among those listed: list again from the start");
    }
    i++;
  }
  page = json_array();
  for (size_t k = i; k < n && k < i + (size_t)limit; k++)
    json_array_append(page, json_array_get(all, k));
  json_object_set_new(
      out, "next",
      i + (size_t)limit < n
          ? json_copy(json_object_get(json_array_get(page, json_array_size(page) - 1), "id"))
          : json_null());
  json_object_set_new(out, "rollouts", page);
  return reply(c, 200, out);
}

static enum MHD_Result rollouts(struct MHD_Connection *c, struct admin_ctx *f, const char *url,
                                const char *method, json_t *body)
{
  json_t *out = NULL;
  char id[32];
  const char *rest;
  int st;

  if (strcmp(url, RO_PREFIX) == 0) {
    if (strcmp(method, "GET") == 0)
      return rollouts_page(c, f);
    else if (strcmp(method, "POST") == 0)
      st = admin_change(f->fleet, OP_RO_CREATE, NULL, NULL, body, &out);
    else
      return method_not_allowed(c, "GET or POST");
    return reply(c, st, out);
  }
  if (url[strlen(RO_PREFIX) + 1] == '\0')
    return json_error(c, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
  if (split(url, RO_PREFIX, id, sizeof(id), &rest) < 0)
    return json_error(c, MHD_HTTP_NOT_FOUND, "not_found", "no such rollout");
  if (rest[0] == '\0') {
    if (strcmp(method, "GET") != 0)
      return method_not_allowed(c, "GET");
    st = fleet_rollout_get(f->fleet, id, &out);
    return reply(c, st, out);
  }
  if (strcmp(rest, "waves") == 0) {
    if (strcmp(method, "GET") != 0)
      return method_not_allowed(c, "GET");
    st = fleet_rollout_waves(f->fleet, id, &out);
    return reply(c, st, out);
  }
  if (strcmp(rest, "start") != 0 && strcmp(rest, "pause") != 0 && strcmp(rest, "resume") != 0 &&
      strcmp(rest, "cancel") != 0)
    return json_error(c, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
  if (strcmp(method, "POST") != 0)
    return method_not_allowed(c, "POST");
  st = admin_change(f->fleet, OP_RO_ACTION, id, rest, NULL, &out);
  return reply(c, st, out);
}

static enum MHD_Result metrics(struct MHD_Connection *c, struct admin_ctx *f)
{
  char *fleet_text = fleet_metrics(f->fleet), *text = NULL;
  uint64_t commits = 0, last_us = 0;
  struct MHD_Response *r;
  enum MHD_Result ret;
  size_t len = 0;
  FILE *m = open_memstream(&text, &len);

  if (m == NULL) {
    free(fleet_text);
    return MHD_NO;
  }
  fprintf(m,
          "# HELP dfotad_transfers_in_flight Transfers under way (responses being sent, block-wise "
          "downloads, data connections).\n"
          "# TYPE dfotad_transfers_in_flight gauge\ndfotad_transfers_in_flight %d\n",
          delivery_in_flight());
  store_writer_stats(f->store, &commits, &last_us);
  fprintf(m,
          "# HELP dfotad_writer_commits_total Transactions committed by the writer.\n"
          "# TYPE dfotad_writer_commits_total counter\ndfotad_writer_commits_total %llu\n",
          (unsigned long long)commits);
  fprintf(m,
          "# HELP dfotad_writer_commit_seconds Duration of the writer's last commit.\n"
          "# TYPE dfotad_writer_commit_seconds gauge\ndfotad_writer_commit_seconds %.6f\n",
          (double)last_us / 1e6);
  if (fleet_text != NULL)
    fputs(fleet_text, m);
  fclose(m);
  free(fleet_text);
  r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
  if (r == NULL) {
    free(text);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4");
  ret = MHD_queue_response(c, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}

int fleet_api_handles(const char *url)
{
  /* /metrics is answered here too (fleet_api_dispatch), but takes no body */
  return strcmp(url, OVERVIEW) == 0 || strcmp(url, PATHS) == 0 ||
         strncmp(url, DEV_PREFIX, strlen(DEV_PREFIX)) == 0 ||
         strncmp(url, RO_PREFIX, strlen(RO_PREFIX)) == 0;
}

enum MHD_Result fleet_api_dispatch(struct MHD_Connection *c, struct admin_ctx *f, const char *url,
                                   const char *method, json_t *body)
{
  json_t *out = NULL;
  int st;

  if (strcmp(url, "/metrics") == 0)
    return metrics(c, f);
  if (strcmp(url, OVERVIEW) == 0 || strcmp(url, PATHS) == 0) {
    if (strcmp(method, "GET") != 0)
      return method_not_allowed(c, "GET");
    if (strcmp(url, OVERVIEW) == 0) {
      st = fleet_overview(f->fleet, &out);
    } else {
      int refused = json_query_refuse(c, q_paths);
      if (refused >= 0)
        return (enum MHD_Result)refused;
      st = fleet_upgrade_path(f->fleet, json_arg(c, "model"), json_arg(c, "from"),
                              json_arg(c, "to"), &out);
    }
    return reply(c, st, out);
  }
  if (strncmp(url, DEV_PREFIX, strlen(DEV_PREFIX)) == 0 &&
      (url[strlen(DEV_PREFIX)] == '\0' || url[strlen(DEV_PREFIX)] == '/'))
    return devices(c, f, url, method, body);
  if (strncmp(url, RO_PREFIX, strlen(RO_PREFIX)) == 0 &&
      (url[strlen(RO_PREFIX)] == '\0' || url[strlen(RO_PREFIX)] == '/'))
    return rollouts(c, f, url, method, body);
  return json_error(c, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
}
