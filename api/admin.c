/* admin.c: the admin API: packages today; devices and rollouts build on it.
 *
 *   GET    /healthz
 *   POST   /api/v1/packages?model=M&from=V1&to=V2&name=N   (raw body)
 *   GET    /api/v1/packages[?model=&from=&to=&limit=&after=]
 *   GET    /api/v1/packages/{id}
 *   DELETE /api/v1/packages/{id}
 *   GET    /api/v1/events                (Server-Sent Events, events.c)
 *   GET    /api/v1/openapi.json          (this API described: api/openapi.json)
 *   GET    /, /console/...               (the operator's console, no token: console.c)
 *
 * Every /api/ request carries "Authorization: Bearer TOKEN". Errors are
 * always {"error": {"code": "...", "message": "..."}}. */
#include "autoconfig.h"

#include "admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../fleet/feed.h"
#include "../fleet/fleet_admin.h"
#include "../store/store.h"
#include "../util/limits.h"
#include "../util/log.h"
#include "../util/proto.h"
#include "../util/util.h"
#include "console.h"
#include "events.h"
#include "fleet_api.h"
#include "json.h"
#include "token.h"

#define PKG_PREFIX "/api/v1/packages"

/* State of an upload across libmicrohttpd's calls. */
struct admin_req {
  int json; /* a JSON body, gathered for the fleet endpoints */
  char *body;
  size_t len;
  int too_large;
  struct upload *up;
  unsigned err_status; /* non-zero: refuse once the body is over */
  const char *err_code;
  char err_msg[160];
  int queued;
};

static json_t *package_json(const struct package *p, const struct admin_ctx *f)
{
  char created[32], url[CONF_URL_MAX + 32], base[CONF_URL_MAX];
  json_t *o;

  time_iso((int64_t)p->created * 1000, created, sizeof(created));
  o = json_pack(
      "{s:s,s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:{s:I,s:I,s:I}}", "id", p->id, "model", p->model,
      "from", p->from, "to", p->to, "name", p->name, "size", (json_int_t)p->size, "sha256",
      p->sha256, "created", created, "status", p->status == PKG_OK ? "ok" : "damaged", "stats",
      "requests", (json_int_t)atomic_load(&p->requests), "bytes_sent",
      (json_int_t)atomic_load(&p->bytes_sent), "downloads", (json_int_t)atomic_load(&p->downloads));
  if (o == NULL)
    return NULL;
  if (p->status != PKG_OK && p->damage != NULL)
    json_object_set_new(o, "damage", json_string(p->damage));
  /* the anonymous URL of each front that serves packages by id */
  fleet_public_base(f->fleet, PROTO_HTTP, base, sizeof(base));
  if (base[0] != '\0') {
    snprintf(url, sizeof(url), "%s/p/%s", base, p->id);
    json_object_set_new(o, "url", json_string(url));
  }
  fleet_public_base(f->fleet, PROTO_HTTPS, base, sizeof(base));
  if (base[0] != '\0') {
    snprintf(url, sizeof(url), "%s/p/%s", base, p->id);
    json_object_set_new(o, json_object_get(o, "url") ? "https_url" : "url", json_string(url));
  }
  return o;
}

static int authorized(struct MHD_Connection *c, const struct admin_ctx *f)
{
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);

  if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
    return 0;
  h += 7;
  while (*h == ' ')
    h++;
  return token_equal(h, strlen(h), f->token);
}

/* ---- packages ---------------------------------------------------------- */

/* A page of the listing, oldest first: at most `limit` packages after the
 * one named `after` (the "next" of the page before). */
struct list_ctx {
  json_t *arr;
  const struct admin_ctx *f;
  const char *after;
  int found, limit, more;
  char last[PKG_ID_LEN + 1];
};

static int list_one(struct package *p, void *arg_)
{
  struct list_ctx *l = arg_;

  if (l->after != NULL && !l->found) {
    l->found = strcmp(p->id, l->after) == 0;
    return 0;
  }
  if ((int)json_array_size(l->arr) == l->limit) {
    l->more = 1;
    return 1;
  }
  json_array_append_new(l->arr, package_json(p, l->f));
  snprintf(l->last, sizeof(l->last), "%s", p->id);
  return 0;
}

static enum MHD_Result packages_list(struct MHD_Connection *c, struct admin_ctx *f)
{
  static const char *const known[] = {"model", "from", "to", "limit", "after", NULL};
  int refused = json_query_refuse(c, known);
  int ok = 1;
  struct list_ctx l = {
      NULL, f, json_arg(c, "after"), 0, (int)json_num_arg(c, "limit", 1, MAX_PAGE, MAX_PAGE, &ok),
      0,    ""};

  if (refused >= 0)
    return (enum MHD_Result)refused;
  if (!ok)
    return json_error(c, MHD_HTTP_BAD_REQUEST, "bad_request", "limit is 1 to 1000");
  l.arr = json_array();
  store_package_foreach(f->store, json_arg(c, "model"), json_arg(c, "from"), json_arg(c, "to"),
                        list_one, &l);
  if (l.after != NULL && !l.found) {
    json_decref(l.arr);
    return json_error(c, MHD_HTTP_BAD_REQUEST, "bad_request",
                      "after: no such package among those listed (deleted since?): "
                      "list again from the start");
  }
  return json_reply(c, MHD_HTTP_OK,
                    json_pack("{s:o,s:o}", "packages", l.arr, "next",
                              l.more ? json_string(l.last) : json_null()));
}

static enum MHD_Result package_one(struct MHD_Connection *c, struct admin_ctx *f,
                                   const char *method, const char *id)
{
  struct package *p;
  json_t *o;

  if (strcmp(method, MHD_HTTP_METHOD_DELETE) == 0) {
    int rc = store_package_delete(f->store, id);
    if (rc == STORE_NOTFOUND)
      return json_error(c, MHD_HTTP_NOT_FOUND, "not_found", "no such package");
    if (rc == STORE_IN_USE)
      return json_error(
          c, MHD_HTTP_CONFLICT, "conflict",
          "devices hold an offer of this package; cancel or finish their rollout first");
    if (rc != STORE_OK)
      return json_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "could not delete");
    feed_publish("package.deleted", NULL, NULL, json_pack("{s:s}", "package", id));
    return json_reply(c, MHD_HTTP_NO_CONTENT, json_object());
  }
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
    return json_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", "use GET or DELETE");
  p = store_package_get(f->store, id);
  if (p == NULL)
    return json_error(c, MHD_HTTP_NOT_FOUND, "not_found", "no such package");
  o = package_json(p, f);
  package_unref(p);
  return json_reply(c, MHD_HTTP_OK, o);
}

/* First call of POST /api/v1/packages: everything that can be refused
 * before reading a byte of the body is refused here. */
static enum MHD_Result upload_begin(struct MHD_Connection *c, struct admin_ctx *f, void **req_cls)
{
  struct package_meta meta = {json_arg(c, "model"), json_arg(c, "from"), json_arg(c, "to"),
                              json_arg(c, "name")};
  const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  struct admin_req *req;
  char msg[160];
  int rc;
  static const char *const known[] = {"model", "from", "to", "name", NULL};

  if ((rc = json_query_refuse(c, known)) >= 0)
    return (enum MHD_Result)rc; /* "nmae=": not a package without its name */
  if (meta.model == NULL || meta.from == NULL || meta.to == NULL)
    return json_error(c, MHD_HTTP_BAD_REQUEST, "bad_request",
                      "model, from and to are required query parameters");
  if (cl != NULL) {
    char *end;
    unsigned long long n;
    errno = 0;
    n = strtoull(cl, &end, 10);
    if (errno == 0 && *end == '\0' && n > f->max_upload_size) {
      snprintf(msg, sizeof(msg), "the package is larger than max_upload_size (%llu bytes)",
               (unsigned long long)f->max_upload_size);
      return json_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", msg);
    }
  }
  req = calloc(1, sizeof(*req));
  if (req == NULL)
    return MHD_NO;
  rc = store_upload_begin(f->store, &meta, f->max_upload_size, &req->up);
  if (rc != STORE_OK) {
    free(req);
    if (rc == STORE_EXISTS) {
      snprintf(msg, sizeof(msg), "a package for %s from %s to %s exists; delete it first",
               meta.model, meta.from, meta.to);
      return json_error(c, MHD_HTTP_CONFLICT, "conflict", msg);
    }
    if (rc == STORE_INVALID)
      return json_error(c, MHD_HTTP_BAD_REQUEST, "bad_request",
                        "model, from, to and name must be printable ASCII without quotes, "
                        "backslashes or blanks, at most 128 bytes, and from must differ from to");
    return json_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "cannot store uploads");
  }
  *req_cls = req;
  atomic_fetch_add(&f->inflight, 1);
  return MHD_YES;
}

static void upload_fail(struct admin_req *req, unsigned status, const char *code, const char *msg)
{
  store_upload_abort(req->up);
  req->up = NULL;
  req->err_status = status;
  req->err_code = code;
  snprintf(req->err_msg, sizeof(req->err_msg), "%s", msg);
}

static enum MHD_Result upload_continue(struct MHD_Connection *c, struct admin_ctx *f,
                                       struct admin_req *req, const char *data, size_t *size)
{
  struct package *p = NULL;
  int rc;

  if (*size > 0) {
    if (req->up != NULL) {
      rc = store_upload_write(req->up, data, *size);
      if (rc == STORE_TOO_LARGE) {
        char msg[160];
        snprintf(msg, sizeof(msg), "the package is larger than max_upload_size (%llu bytes)",
                 (unsigned long long)f->max_upload_size);
        upload_fail(req, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", msg);
      } else if (rc != STORE_OK) {
        upload_fail(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "cannot write the upload");
      }
    }
    *size = 0;
    /* refuse at once rather than read the rest of a body we will not keep */
    if (req->err_status != 0 && !req->queued &&
        json_error(c, req->err_status, req->err_code, req->err_msg) == MHD_YES)
      req->queued = 1;
    return MHD_YES;
  }
  if (req->queued)
    return MHD_YES;
  req->queued = 1;
  if (req->err_status != 0)
    return json_error(c, req->err_status, req->err_code, req->err_msg);
  rc = store_upload_finish(req->up, &p);
  req->up = NULL;
  switch (rc) {
  case STORE_OK: {
    json_t *o = package_json(p, f);
    feed_publish("package.uploaded", NULL, NULL,
                 json_pack("{s:s,s:s,s:s,s:s,s:I}", "package", p->id, "model", p->model, "from",
                           p->from, "to", p->to, "size", (json_int_t)p->size));
    package_unref(p);
    return json_reply(c, MHD_HTTP_CREATED, o);
  }
  case STORE_EXISTS:
    return json_error(c, MHD_HTTP_CONFLICT, "conflict",
                      "a package for that model, from and to was stored meanwhile");
  case STORE_EMPTY: return json_error(c, MHD_HTTP_BAD_REQUEST, "bad_request", "the body is empty");
  default:
    return json_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "cannot store the package");
  }
}

/* ---- dispatch ---------------------------------------------------------- */

/* Gathers a JSON body (bounded), then hands it to the fleet endpoints. */
static enum MHD_Result json_body(struct MHD_Connection *c, struct admin_ctx *f, const char *url,
                                 const char *method, struct admin_req *req, const char *data,
                                 size_t *size)
{
  json_t *body;
  json_error_t jerr;
  enum MHD_Result ret;
  char msg[200];

  if (*size > 0) {
    if (req->len + *size > ADMIN_BODY_MAX) {
      req->too_large = 1;
    } else if (!req->too_large) {
      char *nb = realloc(req->body, req->len + *size + 1);
      if (nb == NULL)
        return MHD_NO;
      memcpy(nb + req->len, data, *size);
      req->body = nb;
      req->len += *size;
    }
    *size = 0;
    return MHD_YES;
  }
  if (req->queued)
    return MHD_YES;
  req->queued = 1;
  if (req->too_large)
    return json_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", "the JSON body is too large");
  if (req->len == 0)
    return fleet_api_dispatch(c, f, url, method, NULL);
  /* a bulk of devices (50,000 and more) is read by the fleet without a
   * JSON tree when its shape allows */
  if (strcmp(url, "/api/v1/devices") == 0 && strcmp(method, MHD_HTTP_METHOD_POST) == 0)
    return fleet_api_bulk(c, f, req->body, req->len);
  body = json_loadb(req->body, req->len, JSON_REJECT_DUPLICATES, &jerr);
  if (body == NULL) {
    snprintf(msg, sizeof(msg), "malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
             jerr.text);
    return json_error(c, MHD_HTTP_BAD_REQUEST, "bad_request", msg);
  }
  ret = fleet_api_dispatch(c, f, url, method, body);
  json_decref(body);
  return ret;
}

/* *req_cls of a request other than an upload, between its calls */
static char deferred;

static enum MHD_Result dispatch(struct MHD_Connection *c, struct admin_ctx *f, const char *url,
                                const char *method, void **req_cls)
{
  int get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
  int head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;

  if (strcmp(url, "/healthz") == 0 || strcmp(url, "/metrics") == 0) {
    char why[200];
    if (!get && !head)
      return json_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", "use GET");
    if (url[1] == 'm')
      return fleet_api_dispatch(c, f, url, method, NULL);
    /* a node whose database does not answer says so (a load balancer
     * takes it out); it reconnects by itself */
    if (!store_reachable(f->store, why, sizeof(why)))
      return json_reply(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                        json_pack("{s:s,s:s,s:s,s:s}", "status", "store_unreachable", "version",
                                  PACKAGE_VERSION, "store", store_backend(f->store), "error", why));
    return json_reply(c, MHD_HTTP_OK,
                      json_pack("{s:s,s:s,s:s}", "status", "ok", "version", PACKAGE_VERSION,
                                "store", store_backend(f->store)));
  }
  if (strncmp(url, "/api/", 5) != 0) {
    /* the console's page and assets hold no data: every datum comes from
     * /api/ with the token */
    const struct console_asset *a = console_find(url);
    if (a != NULL)
      return (enum MHD_Result)console_reply(c, a, method);
    return json_error(c, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
  }
  if (!authorized(c, f))
    return json_error(c, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                      "send Authorization: Bearer TOKEN (the admin token file)");
  if (strcmp(url, "/api/v1/openapi.json") == 0) {
    if (!get)
      return json_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", "use GET");
    return (enum MHD_Result)console_reply(c, console_find(url), method);
  }
  if (strcmp(url, "/api/v1/events") == 0) {
    if (!get)
      return json_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", "use GET");
    return sse_handle(c, &f->sse);
  }
  if (fleet_api_handles(url))
    return fleet_api_dispatch(c, f, url, method, NULL);

  if (strcmp(url, PKG_PREFIX) == 0) {
    if (get)
      return packages_list(c, f);
    if (strcmp(method, MHD_HTTP_METHOD_POST) == 0)
      return upload_begin(c, f, req_cls);
    return json_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", "use GET or POST");
  }
  if (strncmp(url, PKG_PREFIX "/", sizeof(PKG_PREFIX)) == 0) {
    const char *id = url + sizeof(PKG_PREFIX);
    if (id[0] == '\0' || strchr(id, '/') != NULL)
      return json_error(c, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
    if (strlen(id) <= PKG_ID_LEN)
      return package_one(c, f, method, id);
    return json_error(c, MHD_HTTP_NOT_FOUND, "not_found", "no such package");
  }
  return json_error(c, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
}

enum MHD_Result admin_handler(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
  struct admin_ctx *f = cls;

  (void)version;
  if (*req_cls == NULL) {
    int with_body =
        strcmp(method, MHD_HTTP_METHOD_POST) == 0 || strcmp(method, MHD_HTTP_METHOD_PUT) == 0;
    /* a request with a body is judged at once: refusing it here also
     * refuses its body (libmicrohttpd then closes the connection). Anything
     * else is answered in the second call, which keeps it alive. */
    if (with_body && fleet_api_handles(url)) {
      struct admin_req *req;
      if (!authorized(c, f))
        return json_error(c, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                          "send Authorization: Bearer TOKEN (the admin token file)");
      req = calloc(1, sizeof(*req));
      if (req == NULL)
        return MHD_NO;
      req->json = 1;
      *req_cls = req;
      atomic_fetch_add(&f->inflight, 1);
      return MHD_YES;
    }
    if (with_body)
      return dispatch(c, f, url, method, req_cls);
    *req_cls = &deferred;
    return MHD_YES;
  }
  if (*req_cls == &deferred) {
    if (*upload_data_size != 0) {
      *upload_data_size = 0; /* bodies of GET and DELETE are ignored */
      return MHD_YES;
    }
    *req_cls = NULL;
    return dispatch(c, f, url, method, req_cls);
  }
  if (((struct admin_req *)*req_cls)->json)
    return json_body(c, f, url, method, *req_cls, upload_data, upload_data_size);
  return upload_continue(c, f, *req_cls, upload_data, upload_data_size);
}

void admin_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                     enum MHD_RequestTerminationCode toe)
{
  struct admin_ctx *f = cls;
  struct admin_req *req = *req_cls;

  (void)c;
  if (req == NULL || *req_cls == (void *)&deferred)
    return;
  free(req->body);
  if (req->up != NULL) {
    /* the client went away mid-upload: nothing of it is kept */
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
      log_info("upload interrupted (%d); discarded", (int)toe);
    store_upload_abort(req->up);
  }
  free(req);
  *req_cls = NULL;
  atomic_fetch_sub(&f->inflight, 1);
}
