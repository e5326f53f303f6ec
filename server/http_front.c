/* http_front.c: the device-facing HTTP(S) front: GET and HEAD of
 * /p/{id}[/{name}] and /f/{token}, with the exact Range semantics modules
 * rely on; GET /v1/update (check-in) and POST /v1/report. It translates
 * between HTTP and the delivery core, nothing more.
 *
 * A module's HTTP client needs Content-Length, cannot take chunked
 * encoding, and writes the body at the offset it asked for whatever the
 * status. So every answer has a known length, and a Range we cannot serve
 * exactly is refused (416), never answered with the whole body. */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../fleet/delivery.h"
#include "../net/tls_gnutls.h"
#include "../util/log.h"
#include "../util/util.h"
#include "fronts.h"
#include "http_framing.h"
#include "http_settle.h"
#include "mhd.h"
#include "range.h"

/* One instance of the front: its settings, copied at start. */
struct http_front {
  struct front *fr;
  struct fleet *fleet;
  struct store *store;
  enum proto proto;
  enum client_auth client_auth;
  char token_header[64];
  atomic_int inflight; /* responses queued and not yet completed */
  struct mhd_set mhd;
  struct http_settle *settle;
  /* https */
  struct tls_store *tls;
  struct tls_gnutls *certs, *prev_certs;
  char *priorities;
};

/* One download response, from queueing to completion. */
struct dl {
  int kind; /* REQ_DOWNLOAD */
  struct transfer *tr;
  uint64_t start, len;
  enum piece piece;
  int head;
};

/* A report's body, gathered across calls. */
struct report_req {
  int kind; /* REQ_REPORT */
  char *body;
  size_t len;
  int too_large;
  int answered; /* a refusal is queued */
};

enum { REQ_DOWNLOAD = 1, REQ_REPORT };

/* *req_cls between the first and the second call of a request */
static char first_call;

/* Headers every answer gets; NULL r: nothing (allocation failed). */
static enum MHD_Result queue(struct MHD_Connection *c, struct http_front *h, unsigned status,
                             struct MHD_Response *r)
{
  enum MHD_Result ret;

  if (r == NULL)
    return MHD_NO;
  /* a reload replaced this listener: clients reconnect to the new one */
  if (atomic_load(&h->fr->draining))
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
  ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

/* A short text (or JSON, when it starts with '{') answer; copied. */
static enum MHD_Result queue_text(struct MHD_Connection *c, struct http_front *h, unsigned status,
                                  const char *text)
{
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);

  if (r == NULL)
    return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                          text[0] == '{' ? "application/json" : "text/plain");
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  return queue(c, h, status, r);
}

/* 429 with Retry-After: ask again later. */
static enum MHD_Result queue_later(struct MHD_Connection *c, struct http_front *h, int seconds)
{
  struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  char ra[16];

  if (r == NULL)
    return MHD_NO;
  snprintf(ra, sizeof(ra), "%d", seconds > 0 ? seconds : 1);
  MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
  return queue(c, h, MHD_HTTP_TOO_MANY_REQUESTS, r);
}

/* 503 with Retry-After while the database does not answer: a check-in or
 * a report is answered only with what is durable, so not now. */
static enum MHD_Result queue_store_down(struct MHD_Connection *c, struct http_front *h)
{
  struct MHD_Response *r = MHD_create_response_from_buffer(
      30, (void *)"the database does not answer\n", MHD_RESPMEM_PERSISTENT);
  char ra[16];

  if (r == NULL)
    return MHD_NO;
  snprintf(ra, sizeof(ra), "%d", STORE_RETRY_AFTER);
  MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
  return queue(c, h, MHD_HTTP_SERVICE_UNAVAILABLE, r);
}

static int store_down(struct http_front *h)
{
  char why[200];
  return !store_reachable(h->store, why, sizeof(why));
}

static void release_package(void *cls) { package_unref(cls); }

static enum MHD_Result count_range(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
  (void)kind;
  (void)value;
  if (strcasecmp(key, MHD_HTTP_HEADER_RANGE) == 0)
    (*(int *)cls)++;
  return MHD_YES;
}

static void etag_of(const struct package *p, char *out, size_t len)
{
  snprintf(out, len, "\"%s\"", p->sha256);
}

/* 416 with the size, for every Range we will not serve exactly. */
static enum MHD_Result queue_416(struct MHD_Connection *c, struct http_front *h,
                                 const struct package *p)
{
  static const char body[] = "range not satisfiable: one range of bytes within the file only\n";
  struct MHD_Response *r;
  char cr[64], etag[72];

  r = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
  if (r == NULL)
    return MHD_NO;
  snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)p->size);
  etag_of(p, etag, sizeof(etag));
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
  MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
  MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
  return queue(c, h, MHD_HTTP_RANGE_NOT_SATISFIABLE, r);
}

/* Decides what part of p to send. Returns the status: 200, 206 or 416. */
static unsigned choose_range(struct MHD_Connection *c, const struct package *p,
                             struct byte_range *br)
{
  const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
  const char *if_range;
  char etag[72], date[40];
  int n = 0;

  br->start = 0;
  br->len = p->size;
  br->bounded = 0;
  if (range == NULL)
    return MHD_HTTP_OK;
  /* If-Range naming another version: the whole current body (RFC 9110) */
  if_range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_RANGE);
  etag_of(p, etag, sizeof(etag));
  time_http(p->created, date, sizeof(date));
  if (if_range != NULL && strcmp(if_range, etag) != 0 && strcmp(if_range, date) != 0)
    return MHD_HTTP_OK;
  MHD_get_connection_values(c, MHD_HEADER_KIND, count_range, &n);
  if (n != 1)
    return MHD_HTTP_RANGE_NOT_SATISFIABLE;
  switch (range_parse(range, p->size, br)) {
  case RANGE_OK: return MHD_HTTP_PARTIAL_CONTENT;
  case RANGE_NONE: return MHD_HTTP_OK;
  default: return MHD_HTTP_RANGE_NOT_SATISFIABLE;
  }
}

/* The client certificate check of client_auth. 0: go on (cn receives the
 * subject CN of a verified certificate, or ""); -1: refused. */
static int client_allowed(struct MHD_Connection *c, const struct http_front *h, char *cn,
                          size_t cnlen)
{
  const union MHD_ConnectionInfo *ci;
  enum tls_peer peer;

  cn[0] = '\0';
  if (h->proto != PROTO_HTTPS || h->client_auth == CLIENT_AUTH_NONE)
    return 0;
  ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  if (ci == NULL || ci->tls_session == NULL)
    return -1;
  peer = tls_gnutls_peer(ci->tls_session, cn, cnlen);
  if (peer == TLS_PEER_INVALID)
    return -1;
  if (peer == TLS_PEER_NONE && h->client_auth == CLIENT_AUTH_REQUIRED)
    return -1;
  return 0;
}

static void client_addr(struct MHD_Connection *c, char *out, size_t len)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  const struct sockaddr *sa = ci ? ci->client_addr : NULL;

  out[0] = '\0';
  if (sa == NULL)
    return;
  if (sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)len);
  else if (sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)len);
}

static enum MHD_Result serve_package(struct MHD_Connection *c, struct http_front *h,
                                     struct target *t, int head, void **req_cls)
{
  struct package *p = t->pkg;
  struct byte_range br;
  struct MHD_Response *r;
  struct dl *dl;
  unsigned status;
  enum MHD_Result ret;
  char cr[96], etag[72], date[40], addr[64];

  status = choose_range(c, p, &br);
  if (status == MHD_HTTP_RANGE_NOT_SATISFIABLE) {
    ret = queue_416(c, h, p);
    target_release(t);
    return ret;
  }
  dl = calloc(1, sizeof(*dl));
  if (dl == NULL) {
    target_release(t);
    return MHD_NO;
  }
  /* from the mapping, without a copy: the socket (or TLS) reads from it,
   * and no descriptor is held for the body */
  package_ref(p);
  r = MHD_create_response_from_buffer_with_free_callback_cls(br.len, (void *)(p->map + br.start),
                                                             release_package, p);
  if (r == NULL) {
    package_unref(p);
    target_release(t);
    free(dl);
    return MHD_NO;
  }
  etag_of(p, etag, sizeof(etag));
  time_http(p->created, date, sizeof(date));
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
  MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
  MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
  MHD_add_response_header(r, MHD_HTTP_HEADER_LAST_MODIFIED, date);
  /* packages are served byte for byte: no proxy may recompress them */
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-transform");
  if (status == MHD_HTTP_PARTIAL_CONTENT) {
    snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)br.start,
             (unsigned long long)(br.start + br.len - 1), (unsigned long long)p->size);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
  }
  client_addr(c, addr, sizeof(addr));
  dl->kind = REQ_DOWNLOAD;
  dl->start = br.start;
  dl->len = br.len;
  dl->head = head;
  dl->piece = status == MHD_HTTP_PARTIAL_CONTENT && br.bounded ? PIECE_SEGMENT : PIECE_WHOLE;
  dl->tr = transfer_begin(h->fleet, t, h->proto, addr);
  if (dl->tr == NULL) {
    MHD_destroy_response(r);
    free(dl);
    return MHD_NO;
  }
  if (!head)
    http_settle_begin(h->settle, c, dl->tr, dl->start, dl->len, dl->piece);
  atomic_fetch_add(&h->inflight, 1);
  ret = queue(c, h, status, r);
  if (ret == MHD_YES) {
    *req_cls = dl;
  } else {
    atomic_fetch_sub(&h->inflight, 1);
    if (!head)
      http_settle_abandon(h->settle, c);
    transfer_end(dl->tr);
    free(dl);
  }
  return ret;
}

/* Copies the path segment after prefix into out; -1 when empty or long. */
static int path_id(const char *url, const char *prefix, char *out, size_t outlen)
{
  const char *p = url + strlen(prefix), *end = strchr(p, '/');
  size_t n = end ? (size_t)(end - p) : strlen(p);

  if (n == 0 || n >= outlen)
    return -1;
  memcpy(out, p, n);
  out[n] = '\0';
  return 0;
}

static void identity(struct MHD_Connection *c, const struct http_front *h, const char *cn,
                     char *addr, size_t addrlen, struct device_identity *who)
{
  client_addr(c, addr, addrlen);
  who->device_id = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "device");
  who->secret = MHD_lookup_connection_value(c, MHD_HEADER_KIND, h->token_header);
  who->peer_id = cn[0] ? cn : NULL;
  who->addr = addr;
  who->proto = h->proto;
}

/* GET /v1/update?device=ID&version=V[&transport=T]: the device asks what
 * to do. */
static enum MHD_Result checkin(struct MHD_Connection *c, struct http_front *h, const char *cn)
{
  struct device_identity who;
  struct checkin_answer a;
  struct MHD_Response *r;
  const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
  char addr[64], msg[200];

  identity(c, h, cn, addr, sizeof(addr), &who);
  atomic_fetch_add_explicit(&delivery_stats[h->proto].requests, 1, memory_order_relaxed);
  if (store_down(h))
    return queue_store_down(c, h);
  http_settle_tick(h->settle, 0); /* what the device downloaded counts before what it says */
  delivery_checkin(h->fleet, &who, MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "version"),
                   MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "transport"), &a);
  if (store_down(h)) /* its commit failed: the device is told nothing it might lose */
    return queue_store_down(c, h);
  switch (a.verdict) {
  case VERDICT_FORBIDDEN: return queue_text(c, h, MHD_HTTP_FORBIDDEN, "forbidden\n");
  case VERDICT_BAD_REQUEST:
  case VERDICT_NO_TRANSPORT:
    snprintf(msg, sizeof(msg), "%s\n", a.message);
    return queue_text(
        c, h, a.verdict == VERDICT_BAD_REQUEST ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_CONFLICT, msg);
  case VERDICT_NOTHING: return queue_text(c, h, MHD_HTTP_NO_CONTENT, "");
  case VERDICT_LATER: return queue_later(c, h, a.retry_after);
  case VERDICT_OFFER: break;
  }
  if (accept != NULL && strstr(accept, "application/json") != NULL) {
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:i,s:s}", "url", a.url, "transport",
                          proto_name(a.transport), "size", (json_int_t)a.size, "sha256", a.sha256,
                          "from", a.from, "to", a.to, "package", a.package_id, "request_size",
                          a.request_size, "rollout", a.rollout);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text == NULL)
      return MHD_NO;
    r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
      free(text);
      return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  } else {
    /* the URL for AT+QFOTADL, alone on its line */
    r = MHD_create_response_from_buffer(strlen(a.url), a.url, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
      return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  return queue(c, h, MHD_HTTP_OK, r);
}

/* POST /v1/report?device=ID: URC lines or JSON, gathered then applied. */
static enum MHD_Result report(struct MHD_Connection *c, struct http_front *h, struct report_req *rq,
                              const char *cn)
{
  struct device_identity who;
  struct report_answer a;
  const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
  char addr[64], body[256];

  if (rq->too_large)
    return queue_text(c, h, MHD_HTTP_CONTENT_TOO_LARGE, "report too large\n");
  identity(c, h, cn, addr, sizeof(addr), &who);
  atomic_fetch_add_explicit(&delivery_stats[h->proto].requests, 1, memory_order_relaxed);
  if (store_down(h))
    return queue_store_down(c, h);
  http_settle_tick(h->settle, 0);
  delivery_report(h->fleet, &who, ct != NULL && strncasecmp(ct, "application/json", 16) == 0,
                  rq->body ? rq->body : "", rq->len, &a);
  if (store_down(h))
    return queue_store_down(c, h);
  if (a.verdict == VERDICT_FORBIDDEN)
    return queue_text(c, h, MHD_HTTP_FORBIDDEN, "forbidden\n");
  if (a.verdict == VERDICT_LATER)
    return queue_later(c, h, a.retry_after);
  if (a.verdict != VERDICT_NOTHING) {
    snprintf(body, sizeof(body), "%s\n", a.message);
    return queue_text(c, h, MHD_HTTP_BAD_REQUEST, body);
  }
  snprintf(body, sizeof(body), "{\"state\":\"%s\",\"accepted\":%d}\n", a.state, a.accepted);
  return queue_text(c, h, MHD_HTTP_OK, body);
}

/* Gathers a report's body, at most REPORT_BODY_MAX bytes. */
static enum MHD_Result report_body(struct report_req *rq, const char *data, size_t *size)
{
  /* SECURITY: a report is a few lines; refuse to buffer more */
  if (rq->len + *size > REPORT_BODY_MAX) {
    rq->too_large = 1;
  } else if (!rq->too_large) {
    char *nb = realloc(rq->body, rq->len + *size + 1);
    if (nb == NULL)
      return MHD_NO;
    memcpy(nb + rq->len, data, *size);
    rq->body = nb;
    rq->len += *size;
    rq->body[rq->len] = '\0';
  }
  *size = 0;
  return MHD_YES;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **req_cls)
{
  struct http_front *h = cls;
  char id[PKG_ID_LEN + 8], token[FLEET_TOKEN_LEN + 8], cn[DEVICE_ID_MAX + 8];
  struct target t;
  enum resolve rs;
  int head, post;

  if (*req_cls == NULL && http_settle_headers_done(h->settle, c) < 0)
    return MHD_NO; /* refused, or too slow: being closed */
  post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
  /* libmicrohttpd closes the connection after a response queued in the
   * first call (what a refusal wants); answering in the second keeps it
   * alive for the next range */
  if (*req_cls == NULL) {
    const char *bad = http_framing_error(c, version);
    if (bad != NULL) {
      char msg[160];
      snprintf(msg, sizeof(msg), "bad request: %s\n", bad);
      return queue_text(c, h, MHD_HTTP_BAD_REQUEST, msg);
    }
    if (post && strcmp(url, "/v1/report") == 0) {
      if (http_body_over(c, REPORT_BODY_MAX))
        return queue_text(c, h, MHD_HTTP_CONTENT_TOO_LARGE, "report too large\n");
      struct report_req *rq = calloc(1, sizeof(*rq));
      if (rq == NULL)
        return MHD_NO;
      rq->kind = REQ_REPORT;
      *req_cls = rq;
      atomic_fetch_add(&h->inflight, 1);
      return MHD_YES;
    }
    *req_cls = &first_call;
    return MHD_YES;
  }
  if (*req_cls != &first_call) {
    struct report_req *rq = *req_cls;
    if (rq->kind == REQ_REPORT && *upload_data_size > 0) {
      if (report_body(rq, upload_data, upload_data_size) == MHD_NO)
        return MHD_NO;
      /* over the limit (chunked): answered at once, the rest unread */
      if (rq->too_large && !rq->answered) {
        rq->answered = 1;
        return queue_text(c, h, MHD_HTTP_CONTENT_TOO_LARGE, "report too large\n");
      }
      return MHD_YES;
    }
    if (rq->kind == REQ_REPORT && rq->answered)
      return MHD_YES;
    if (rq->kind == REQ_REPORT) {
      if (client_allowed(c, h, cn, sizeof(cn)) < 0)
        return queue_text(c, h, MHD_HTTP_FORBIDDEN, "a valid client certificate is required\n");
      return report(c, h, rq, cn);
    }
    *upload_data_size = 0; /* a body we did not ask for: ignore it */
    return MHD_YES;
  }
  if (*upload_data_size != 0) {
    *upload_data_size = 0;
    return MHD_YES;
  }
  *req_cls = NULL;
  head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
  if (!head && strcmp(method, MHD_HTTP_METHOD_GET) != 0)
    return queue_text(c, h, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
  if (client_allowed(c, h, cn, sizeof(cn)) < 0)
    return queue_text(c, h, MHD_HTTP_FORBIDDEN, "a valid client certificate is required\n");
  if (strcmp(url, "/healthz") == 0)
    return store_down(h) ? queue_text(c, h, MHD_HTTP_SERVICE_UNAVAILABLE, "store unreachable\n")
                         : queue_text(c, h, MHD_HTTP_OK, "ok\n");
  if (strcmp(url, "/v1/update") == 0)
    return checkin(c, h, cn);
  /* SECURITY: a path names a package id or an offer's token, looked up in
   * memory; no part of it ever reaches the file system */
  if (strncmp(url, "/f/", 3) == 0) {
    rs = path_id(url, "/f/", token, sizeof(token)) < 0
             ? RESOLVE_NOT_FOUND
             : delivery_resolve_offer(h->fleet, token, NULL, !head, &t);
    if (rs == RESOLVE_NOT_FOUND)
      return queue_text(c, h, MHD_HTTP_NOT_FOUND, "no such download\n");
  } else if (strncmp(url, "/p/", 3) == 0) {
    rs = path_id(url, "/p/", id, sizeof(id)) < 0 ? RESOLVE_NOT_FOUND
                                                 : delivery_resolve_package(h->fleet, id, &t);
    if (rs == RESOLVE_NOT_FOUND)
      return queue_text(c, h, MHD_HTTP_NOT_FOUND, "no such package\n");
  } else {
    return queue_text(c, h, MHD_HTTP_NOT_FOUND, "not found\n");
  }
  if (rs == RESOLVE_DAMAGED)
    return queue_text(c, h, MHD_HTTP_SERVICE_UNAVAILABLE, "package damaged on the server\n");
  return serve_package(c, h, &t, head, req_cls);
}

/* A response ended: written whole into the kernel (ok) or cut. What
 * reached the device is settled with TCP (http_settle.c). */
static void completed(void *cls, struct MHD_Connection *c, void **req_cls,
                      enum MHD_RequestTerminationCode toe)
{
  struct http_front *h = cls;
  struct dl *dl = *req_cls;
  int ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;

  if (dl == NULL || *req_cls == &first_call)
    return;
  *req_cls = NULL;
  atomic_fetch_sub(&h->inflight, 1);
  if (dl->kind == REQ_REPORT) {
    struct report_req *rq = (struct report_req *)dl;
    free(rq->body);
    free(rq);
    return;
  }
  transfer_request(dl->tr);
  if (dl->head)
    transfer_end(dl->tr);
  else
    http_settle_written(h->settle, c, ok, dl->tr, dl->start, dl->len, dl->piece);
  free(dl);
}

static void connection(void *cls, struct MHD_Connection *c, void **socket_context,
                       enum MHD_ConnectionNotificationCode toe)
{
  struct http_front *h = cls;

  if (toe == MHD_CONNECTION_NOTIFY_STARTED)
    http_settle_opened(h->settle, c, socket_context);
  else if (toe == MHD_CONNECTION_NOTIFY_CLOSED)
    http_settle_closed(h->settle, c, socket_context);
}

/* ---- the row ---------------------------------------------------------------- */

static void http_free(struct http_front *h)
{
  if (h == NULL)
    return;
  http_settle_free(h->settle);
  /* a set still installed was never replaced by a newer instance: this one
   * never took over (a reload undone), so the set before comes back. Sets
   * once installed stay valid until exit: a handshake may hold one. */
  if (h->certs != NULL && tls_gnutls_current() == h->certs)
    tls_gnutls_install(h->prev_certs);
  tls_store_free(h->tls);
  free(h->priorities);
  free(h);
}

static int http_start(struct front *fr, const struct front_env *env, struct config_errors *errs)
{
  const struct front_conf *fc = &env->conf->front[fr->row->proto];
  struct http_front *h = calloc(1, sizeof(*h));
  struct mhd_params p = {0};
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

  if (h == NULL) {
    config_errors_add(errs, "out of memory");
    return -1;
  }
  h->fr = fr;
  h->fleet = env->fleet;
  h->store = env->store;
  h->proto = (enum proto)fr->row->proto;
  h->client_auth = fc->tls.client_auth;
  snprintf(h->token_header, sizeof(h->token_header), "%s", env->conf->token_header);
  {
    struct http_settle_conf sc = {(unsigned)fc->connection_limit, (unsigned)fc->header_timeout,
                                  (unsigned)fc->header_limit,     (unsigned)fc->header_per_ip_limit,
                                  h->proto == PROTO_HTTPS,        (unsigned)fc->send_lowat};
    if (sc.header_limit == 0)
      sc.header_limit = sc.connection_limit / 2 > 0 ? sc.connection_limit / 2 : 1;
    h->settle = http_settle_new(&sc);
  }
  if (h->settle == NULL) {
    config_errors_add(errs, "out of memory");
    goto fail;
  }
  p.handler = handler;
  p.cls = h;
  p.completed = completed;
  p.notify = connection;
  /* libmicrohttpd takes a few more, which the meter refuses at once: one
   * over the limit gets an answer, never a wait in the listen queue */
  p.connection_limit = (unsigned)fc->connection_limit + HTTP_REFUSE_ROOM;
  p.timeout = (unsigned)fc->timeout;
  p.per_ip_limit = (unsigned)fc->per_ip_limit;
  p.threads = fc->threads > 0 ? (unsigned)fc->threads : (unsigned)(ncpu > 0 ? ncpu : 1);
  p.memory_limit = (size_t)fc->connection_memory;
  if (h->proto == PROTO_HTTPS) {
    h->tls = tls_store_load(&fc->tls, fr->row->section, errs);
    if (h->tls == NULL || (h->certs = tls_gnutls_build(h->tls, errs)) == NULL)
      goto fail;
    h->priorities = strdup(h->tls->priorities[0] ? h->tls->priorities : DEF_TLS_PRIORITIES);
    if (h->priorities == NULL)
      goto fail;
    p.tls = 1;
    p.priorities = h->priorities;
    p.trust_pem = h->client_auth != CLIENT_AUTH_NONE ? h->tls->client_ca_pem : NULL;
    h->prev_certs = tls_gnutls_install(h->certs);
  }
  if (mhd_start(fr, &h->mhd, &p, errs) < 0)
    goto fail;
  fr->priv = h;
  return 0;
fail:
  if (h->certs != NULL && tls_gnutls_current() != h->certs)
    tls_gnutls_free(h->certs); /* never installed */
  http_free(h);
  return -1;
}

static void http_quiesce(struct front *fr)
{
  struct http_front *h = fr->priv;

  mhd_quiesce(&h->mhd);
}

static int http_busy(struct front *fr)
{
  struct http_front *h = fr->priv;

  return atomic_load(&h->inflight) + http_settle_pending(h->settle);
}

static void http_stop(struct front *fr)
{
  struct http_front *h = fr->priv;

  mhd_stop(&h->mhd);
  http_settle_tick(h->settle, 1);
  http_free(h);
  fr->priv = NULL;
}

static void http_tick(struct front *fr, int force)
{
  struct http_front *h = fr->priv;

  http_settle_tick(h->settle, force);
}

const struct front_row http_row = {"http",       PROTO_HTTP, SOCK_STREAM, http_start,
                                   http_quiesce, http_busy,  http_stop,   http_tick};
const struct front_row https_row = {"https",      PROTO_HTTPS, SOCK_STREAM, http_start,
                                    http_quiesce, http_busy,   http_stop,   http_tick};
