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
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../fleet/delivery.h"
#include "../../net/tls_gnutls.h"
#include "../../util/log.h"
#include "../../util/util.h"
#include "http_conf.h"
#include "http_front.h"
#include "http_int.h"
#include "http_framing.h"
#include "http_settle.h"
#include "../../net/mhd.h"
#include "range.h"
#include "resp_cache.h"

/* One download response, from queueing to completion. */
struct dl {
  int kind; /* REQ_DOWNLOAD */
  struct transfer *tr;
  uint64_t start, len;
  enum piece piece;
  int head;
};

/* *req_cls between the first and the second call of a request: with at
 * most one Range field, or several */
static char first_call, first_call_ranges;

void http_inflight_add(struct http_front *h, int d)
{
  static atomic_uint next;
  static _Thread_local int shard = -1;

  if (shard < 0)
    shard = (int)(atomic_fetch_add(&next, 1) % HTTP_INFLIGHT_SHARDS);
  atomic_fetch_add(&h->inflight[shard].n, d);
}

/* Headers every answer gets; NULL r: nothing (allocation failed). */
enum MHD_Result http_queue(struct MHD_Connection *c, struct http_front *h, unsigned status,
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
enum MHD_Result http_queue_text(struct MHD_Connection *c, struct http_front *h, unsigned status,
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
  return http_queue(c, h, status, r);
}

/* 429 with Retry-After: ask again later. */
enum MHD_Result http_queue_later(struct MHD_Connection *c, struct http_front *h, int seconds)
{
  struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  char ra[16];

  if (r == NULL)
    return MHD_NO;
  snprintf(ra, sizeof(ra), "%d", seconds > 0 ? seconds : 1);
  MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
  return http_queue(c, h, MHD_HTTP_TOO_MANY_REQUESTS, r);
}

static void release_package(void *cls) { package_unref(cls); }

/* out: at least 67 bytes */
static void etag_of(const struct package *p, char *out, size_t len)
{
  size_t n = strlen(p->sha256);

  if (n + 3 > len)
    n = len - 3;
  out[0] = '"';
  memcpy(out + 1, p->sha256, n);
  out[n + 1] = '"';
  out[n + 2] = '\0';
}

/* A package's Last-Modified, formatted once per thread for the package
 * time it last saw (strftime costs more than the rest of a range). */
static const char *modified(const struct package *p)
{
  static _Thread_local int64_t at = INT64_MIN;
  static _Thread_local char text[40];

  if (p->created != at) {
    time_http(p->created, text, sizeof(text));
    at = p->created;
  }
  return text;
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
  return http_queue(c, h, MHD_HTTP_RANGE_NOT_SATISFIABLE, r);
}

/* Decides what part of p to send (several: the request has more than one
 * Range field). Returns the status: 200, 206 or 416. */
static unsigned choose_range(struct MHD_Connection *c, const struct package *p, int several,
                             struct byte_range *br)
{
  const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
  const char *if_range;
  char etag[72];

  br->start = 0;
  br->len = p->size;
  br->bounded = 0;
  if (range == NULL)
    return MHD_HTTP_OK;
  /* If-Range naming another version: the whole current body (RFC 9110) */
  if_range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_RANGE);
  if (if_range != NULL) {
    etag_of(p, etag, sizeof(etag));
    if (strcmp(if_range, etag) != 0 && strcmp(if_range, modified(p)) != 0)
      return MHD_HTTP_OK;
  }
  if (several)
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

void http_client_addr(struct MHD_Connection *c, char *out, size_t len)
{
  const union MHD_ConnectionInfo *ci;
  const struct sockaddr *sa;
  const char *known = http_settle_peer(c); /* formatted once per connection */

  if (known != NULL) {
    size_t n = strnlen(known, len - 1);
    memcpy(out, known, n);
    out[n] = '\0';
    return;
  }
  ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  sa = ci ? ci->client_addr : NULL;
  out[0] = '\0';
  if (sa == NULL)
    return;
  if (sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)len);
  else if (sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)len);
}

/* Appends v in decimal at out; returns the end. */
static char *put_u64(char *out, uint64_t v)
{
  char tmp[20];
  int n = 0;

  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0)
    *out++ = tmp[--n];
  return out;
}

/* A whole package over plain HTTP: sent with sendfile() (body_response). */
static int sends_file(const struct http_front *h, const struct package *p, uint64_t start,
                      uint64_t len)
{
  return h->proto == PROTO_HTTP && start == 0 && len == p->size && len >= HTTP_SENDFILE_MIN;
}

/* p's bytes [start, start + len). A whole package over plain HTTP
 * (sends_file) with sendfile() from a descriptor of the package's file
 * (the response's own, closed by libmicrohttpd): the kernel sends the
 * page cache's pages without copying them, and the copy a send() from the
 * mapping makes was most of a whole download's CPU. Anything else from
 * the mapping without a copy of ours, holding p until libmicrohttpd frees
 * the response (no descriptor per response: TLS encrypts from it anyway,
 * a small body goes out with its headers in one write). ctx: the front.
 * NULL: out of memory. */
static struct MHD_Response *body_response(void *ctx, struct package *p, uint64_t start,
                                          uint64_t len, unsigned status)
{
  const struct http_front *h = ctx;
  struct MHD_Response *r = NULL;
  char cr[96], etag[72];

  if (sends_file(h, p, start, len) && p->fd >= 0) {
    int fd = fcntl(p->fd, F_DUPFD_CLOEXEC, 0);
    if (fd >= 0 && (r = MHD_create_response_from_fd_at_offset64(len, fd, 0)) == NULL)
      close(fd);
  }
  if (r == NULL) {
    package_ref(p);
    r = MHD_create_response_from_buffer_with_free_callback_cls(len, (void *)(p->map + start),
                                                               release_package, p);
    if (r == NULL) {
      package_unref(p);
      return NULL;
    }
  }
  etag_of(p, etag, sizeof(etag));
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
  /* a 206 answers a Range already: Accept-Ranges on the whole body only
   * (as nginx); each header is three allocations and a list node read at
   * every send of the (cached) response */
  if (status != MHD_HTTP_PARTIAL_CONTENT)
    MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
  MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
  MHD_add_response_header(r, MHD_HTTP_HEADER_LAST_MODIFIED, modified(p));
  /* packages are served byte for byte: no proxy may recompress them */
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-transform");
  if (status == MHD_HTTP_PARTIAL_CONTENT) { /* "bytes FIRST-LAST/SIZE", 3 x 20 digits at most */
    char *e = cr;
    memcpy(e, "bytes ", 6);
    e = put_u64(e + 6, start);
    *e++ = '-';
    e = put_u64(e, start + len - 1);
    *e++ = '/';
    e = put_u64(e, p->size);
    *e = '\0';
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
  }
  return r;
}

static enum MHD_Result serve_package(struct MHD_Connection *c, struct http_front *h,
                                     struct target *t, int head, int several, void **req_cls)
{
  struct package *p = t->pkg;
  struct byte_range br;
  struct dl *dl;
  unsigned status;
  enum MHD_Result ret;
  char addr[64];

  status = choose_range(c, p, several, &br);
  if (status == MHD_HTTP_RANGE_NOT_SATISFIABLE) {
    ret = queue_416(c, h, p);
    target_release(t);
    return ret;
  }
  if (h->cache != NULL && !sends_file(h, p, br.start, br.len))
    resp_cache_prefetch(h->cache, p, br.start, br.len, status, 0);
  dl = malloc(sizeof(*dl)); /* not calloc: glibc's passes its per-thread cache by */
  if (dl == NULL) {
    target_release(t);
    return MHD_NO;
  }
  http_client_addr(c, addr, sizeof(addr));
  dl->kind = REQ_DOWNLOAD;
  dl->start = br.start;
  dl->len = br.len;
  dl->head = head;
  dl->piece = status == MHD_HTTP_PARTIAL_CONTENT && br.bounded ? PIECE_SEGMENT : PIECE_WHOLE;
  dl->tr = transfer_begin(h->fleet, t, h->proto, addr); /* holds p from now on */
  if (dl->tr == NULL) {
    free(dl);
    return MHD_NO;
  }
  if (!head)
    http_settle_begin(h->settle, c, dl->tr, dl->start, dl->len, dl->piece);
  http_inflight_add(h, 1);
  /* Shared responses: never one a listener being replaced adds
   * Connection: close to. A whole file's (one descriptor each) only among
   * the connections of one thread: libmicrohttpd holds a file response's
   * lock while it sends from it, and a thread sends one at a time. */
  if (!head && !atomic_load(&h->fr->draining) && mhd_rehome(&h->mhd, c)) {
    /* this client's packets now arrive on another CPU: its next
     * connection is handed to the worker there (net/mhd.h) */
    struct MHD_Response *r = body_response(h, p, br.start, br.len, status);
    if (r != NULL)
      MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    ret = http_queue(c, h, status, r);
    if (ret == MHD_YES)
      delivery_count(h->proto, FC_REHOMED, 1);
  } else if (atomic_load(&h->fr->draining) || h->cache == NULL)
    ret = http_queue(c, h, status, body_response(h, p, br.start, br.len, status));
  else if (sends_file(h, p, br.start, br.len))
    ret = resp_cache_queue(h->whole, c, p, br.start, br.len, status, (uintptr_t)pthread_self());
  else
    ret = resp_cache_queue(h->cache, c, p, br.start, br.len, status, 0);
  if (ret == MHD_YES) {
    transfer_request(dl->tr); /* counted as its answer starts, as every front does */
    *req_cls = dl;
  } else {
    http_inflight_add(h, -1);
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

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **req_cls)
{
  struct http_front *h = cls;
  char id[PKG_ID_LEN + 8], token[FLEET_TOKEN_LEN + 8], cn[DEVICE_ID_MAX + 8];
  struct target t;
  enum resolve rs;
  int head, post, several;

  if (*req_cls == NULL &&
      http_settle_headers_done(h->settle, c,
                               (strncmp(url, "/p/", 3) == 0 || strncmp(url, "/f/", 3) == 0) &&
                                   (strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
                                    strcmp(method, MHD_HTTP_METHOD_HEAD) == 0)) < 0)
    return MHD_NO; /* refused, or too slow: being closed */
  post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
  /* libmicrohttpd closes the connection after a response queued in the
   * first call (what a refusal wants); answering in the second keeps it
   * alive for the next range */
  if (*req_cls == NULL) {
    int ranges = 0;
    const char *bad = http_framing_error(c, version, &ranges);
    if (bad != NULL) {
      char msg[160];
      snprintf(msg, sizeof(msg), "bad request: %s\n", bad);
      return http_queue_text(c, h, MHD_HTTP_BAD_REQUEST, msg);
    }
    if (post && strcmp(url, "/v1/report") == 0) {
      if (http_body_over(c, REPORT_BODY_MAX))
        return http_queue_text(c, h, MHD_HTTP_CONTENT_TOO_LARGE, "report too large\n");
      struct report_req *rq = calloc(1, sizeof(*rq));
      if (rq == NULL)
        return MHD_NO;
      rq->kind = REQ_REPORT;
      *req_cls = rq;
      http_inflight_add(h, 1);
      return MHD_YES;
    }
    *req_cls = ranges > 1 ? &first_call_ranges : &first_call;
    return MHD_YES;
  }
  if (*req_cls != &first_call && *req_cls != &first_call_ranges &&
      ((struct wait_req *)*req_cls)->kind == REQ_WAIT) {
    struct wait_req *w = *req_cls; /* resumed: the commit is done */
    if (!atomic_load(&w->ready)) {
      MHD_suspend_connection(c); /* not for us yet: wait on */
      return MHD_YES;
    }
    return http_send_reply(c, h, &w->r);
  }
  if (*req_cls != &first_call && *req_cls != &first_call_ranges) {
    struct report_req *rq = *req_cls;
    if (rq->kind == REQ_REPORT && *upload_data_size > 0) {
      if (http_report_body(rq, upload_data, upload_data_size) == MHD_NO)
        return MHD_NO;
      /* over the limit (chunked): answered at once, the rest unread */
      if (rq->too_large && !rq->answered) {
        rq->answered = 1;
        return http_queue_text(c, h, MHD_HTTP_CONTENT_TOO_LARGE, "report too large\n");
      }
      return MHD_YES;
    }
    if (rq->kind == REQ_REPORT && rq->answered)
      return MHD_YES;
    if (rq->kind == REQ_REPORT) {
      if (client_allowed(c, h, cn, sizeof(cn)) < 0)
        return http_queue_text(c, h, MHD_HTTP_FORBIDDEN,
                               "a valid client certificate is required\n");
      return http_report(c, h, rq, cn, req_cls);
    }
    *upload_data_size = 0; /* a body we did not ask for: ignore it */
    return MHD_YES;
  }
  if (*upload_data_size != 0) {
    *upload_data_size = 0;
    return MHD_YES;
  }
  several = *req_cls == &first_call_ranges;
  *req_cls = NULL;
  head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
  if (!head && strcmp(method, MHD_HTTP_METHOD_GET) != 0)
    return http_queue_text(c, h, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
  if (client_allowed(c, h, cn, sizeof(cn)) < 0)
    return http_queue_text(c, h, MHD_HTTP_FORBIDDEN, "a valid client certificate is required\n");
  if (strcmp(url, "/healthz") == 0)
    return http_store_down(h)
               ? http_queue_text(c, h, MHD_HTTP_SERVICE_UNAVAILABLE, "store unreachable\n")
               : http_queue_text(c, h, MHD_HTTP_OK, "ok\n");
  if (strcmp(url, "/v1/update") == 0)
    return http_checkin(c, h, cn, req_cls);
  /* SECURITY: a path names a package id or an offer's token, looked up in
   * memory; no part of it ever reaches the file system */
  if (strncmp(url, "/f/", 3) == 0) {
    rs = path_id(url, "/f/", token, sizeof(token)) < 0
             ? RESOLVE_NOT_FOUND
             : delivery_resolve_offer(h->fleet, token, NULL, !head, &t);
    if (rs == RESOLVE_NOT_FOUND)
      return http_queue_text(c, h, MHD_HTTP_NOT_FOUND, "no such download\n");
  } else if (strncmp(url, "/p/", 3) == 0) {
    rs = path_id(url, "/p/", id, sizeof(id)) < 0 ? RESOLVE_NOT_FOUND
                                                 : delivery_resolve_package(h->fleet, id, &t);
    if (rs == RESOLVE_NOT_FOUND)
      return http_queue_text(c, h, MHD_HTTP_NOT_FOUND, "no such package\n");
  } else {
    return http_queue_text(c, h, MHD_HTTP_NOT_FOUND, "not found\n");
  }
  if (rs == RESOLVE_UNAVAILABLE)
    return http_queue_store_down(c, h);
  if (rs == RESOLVE_DAMAGED)
    return http_queue_text(c, h, MHD_HTTP_SERVICE_UNAVAILABLE, "package damaged on the server\n");
  return serve_package(c, h, &t, head, several, req_cls);
}

/* A response ended: written whole into the kernel (ok) or cut. What
 * reached the device is settled with TCP (http_settle.c). */
static void completed(void *cls, struct MHD_Connection *c, void **req_cls,
                      enum MHD_RequestTerminationCode toe)
{
  struct http_front *h = cls;
  struct dl *dl = *req_cls;
  int ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;

  if (dl == NULL || *req_cls == &first_call || *req_cls == &first_call_ranges) {
    http_settle_request_done(h->settle, c);
    return;
  }
  *req_cls = NULL;
  http_inflight_add(h, -1);
  if (dl->kind == REQ_WAIT) {
    free(dl);
    http_settle_request_done(h->settle, c);
    return;
  }
  if (dl->kind == REQ_REPORT) {
    struct report_req *rq = (struct report_req *)dl;
    free(rq->body);
    free(rq);
    http_settle_request_done(h->settle, c);
    return;
  }
  if (dl->head) {
    transfer_end(dl->tr);
    http_settle_request_done(h->settle, c);
  } else
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
  resp_cache_free(h->cache); /* after mhd_stop: no handler queues from them */
  resp_cache_free(h->whole);
  /* after mhd_stop: none of this instance's handshakes is left. A set of
   * ours still installed was never replaced (a reload undone): the one
   * before comes back. */
  tls_slot_leave(&tls_gnutls_slot, h->tls_user);
  tls_set_unref(h->tls);
  free(h);
}

static int http_start(struct front *fr, const struct front_env *env, struct config_errors *errs)
{
  const struct http_conf *fc = config_section(env->conf, fr->row->section);
  struct http_front *h = calloc(1, sizeof(*h));
  struct mhd_params p = {0};
  int ncpu = usable_cpus();

  if (h == NULL) {
    config_errors_add(errs, "out of memory");
    return -1;
  }
  h->fr = fr;
  h->fleet = env->fleet;
  h->proto = (enum proto)fr->row->proto;
  h->client_auth = fc->tls.client_auth;
  snprintf(h->token_header, sizeof(h->token_header), "%s", env->token_header);
  {
    struct http_settle_conf sc = {(unsigned)fc->base.connection_limit,
                                  (unsigned)fc->header_timeout,
                                  (unsigned)fc->header_limit,
                                  (unsigned)fc->header_per_ip_limit,
                                  h->proto == PROTO_HTTPS,
                                  (unsigned)fc->send_lowat};
    if (sc.header_limit == 0)
      sc.header_limit = sc.connection_limit / 2 > 0 ? sc.connection_limit / 2 : 1;
    h->settle = http_settle_new(&sc);
  }
  h->cache = resp_cache_new(HTTP_RESP_CACHE_ENTRIES, body_response, h);
  h->whole = resp_cache_new(HTTP_WHOLE_SHARED, body_response, h);
  if (h->settle == NULL || h->cache == NULL || h->whole == NULL) {
    config_errors_add(errs, "out of memory");
    goto fail;
  }
  p.handler = handler;
  p.cls = h;
  p.completed = completed;
  p.notify = connection;
  p.suspend = 1; /* check-ins and reports wait on commits suspended */
  p.sendfile = h->proto == PROTO_HTTP;
  /* libmicrohttpd takes a few more, which the meter refuses at once: one
   * over the limit gets an answer, never a wait in the listen queue */
  p.connection_limit = (unsigned)fc->base.connection_limit + HTTP_REFUSE_ROOM;
  p.timeout = (unsigned)fc->base.timeout;
  p.per_ip_limit = (unsigned)fc->base.per_ip_limit;
  p.threads = fc->threads > 0 ? (unsigned)fc->threads : (unsigned)ncpu;
  p.memory_limit = (size_t)fc->connection_memory;
  p.cpu_affinity = fc->cpu_affinity;
  if (h->proto == PROTO_HTTPS) {
    /* read and built once for this reload (tls_set.h) */
    h->tls = tls_set_ref(front_env_tls(env, fr->row));
    if (h->tls == NULL || h->tls->gnutls == NULL) {
      config_errors_add(errs, "%s: no certificates", fr->row->section);
      goto fail;
    }
    p.tls = 1;
    p.priorities = h->tls->store->priorities[0] ? h->tls->store->priorities : DEF_TLS_PRIORITIES;
    p.trust_pem = h->client_auth != CLIENT_AUTH_NONE ? h->tls->store->client_ca_pem : NULL;
    h->tls_user = tls_slot_join(&tls_gnutls_slot, h->tls);
    if (h->tls_user == NULL) {
      config_errors_add(errs, "%s: out of memory", fr->row->section);
      goto fail;
    }
  }
  if (mhd_start(fr, &h->mhd, &p, errs) < 0)
    goto fail;
  fr->priv = h;
  return 0;
fail:
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

  int n = http_settle_pending(h->settle);

  for (int i = 0; i < HTTP_INFLIGHT_SHARDS; i++)
    n += atomic_load(&h->inflight[i].n);
  return n;
}

static void http_stop(struct front *fr)
{
  struct http_front *h = fr->priv;

  /* a commit's end resumes its connection: not after the daemons stop */
  while (atomic_load(&h->commits_out) > 0)
    usleep(1000);
  mhd_stop(&h->mhd);
  http_settle_tick(h->settle, 1);
  http_free(h);
  fr->priv = NULL;
}

static void http_tick(struct front *fr, int force)
{
  struct http_front *h = fr->priv;

  http_settle_tick(h->settle, force);
  resp_cache_sweep(h->cache, mono_ms(), HTTP_RESP_CACHE_IDLE_MS);
  resp_cache_sweep(h->whole, mono_ms(), HTTP_RESP_CACHE_IDLE_MS);
}

const struct front_row http_row = {.section = "http",
                                   .proto = PROTO_HTTP,
                                   .socktype = SOCK_STREAM,
                                   .start = http_start,
                                   .quiesce = http_quiesce,
                                   .busy = http_busy,
                                   .stop = http_stop,
                                   .tick = http_tick,
                                   .conf = &http_conf_section};
const struct front_row https_row = {.section = "https",
                                    .proto = PROTO_HTTPS,
                                    .socktype = SOCK_STREAM,
                                    .start = http_start,
                                    .quiesce = http_quiesce,
                                    .busy = http_busy,
                                    .stop = http_stop,
                                    .tick = http_tick,
                                    .conf = &https_conf_section,
                                    .tls = TLS_ADAPTER_GNUTLS,
                                    .tls_offset = offsetof(struct http_conf, tls),
                                    .tls_needs_cert = 1};
