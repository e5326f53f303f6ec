/* http_front.c: the device-facing HTTP(S) front: GET and HEAD of
 * /p/{id}[/{name}], with the exact Range semantics modules rely on.
 *
 * A module's HTTP client needs Content-Length, cannot take chunked
 * encoding, and writes the body at the offset it asked for whatever the
 * status. So every answer has a known length, and a Range we cannot serve
 * exactly is refused (416), never answered with the whole body. */
#include "autoconfig.h"

#include "http_front.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <jansson.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_acked */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../api/fleet.h"
#include "../store/store.h"
#include "log.h"
#include "range.h"
#include "stats.h"
#include "tls.h"

/* One download response, from queueing to completion. */
struct dl {
  int kind; /* REQ_DOWNLOAD */
  struct package *pkg;
  uint64_t len;    /* body bytes */
  int reached_end; /* the range ends at the package's last byte */
  int head;
  uint64_t acked_start; /* TCP bytes acknowledged before; 0: not measured */
  int fd;               /* client socket, for the measure */
  uint64_t start;       /* first byte of the range */
  int ranged;
  char token[FLEET_TOKEN_LEN + 8]; /* /f/ downloads: the offer's token */
  char addr[64];
  struct fleet *fleet; /* outlives the listener, which a reload may retire */
  int https;
};

/* A report's body, gathered across calls. */
struct report_req {
  int kind; /* REQ_REPORT */
  char *body;
  size_t len;
  int too_large;
};

enum { REQ_DOWNLOAD = 1, REQ_REPORT };

/* libmicrohttpd calls a response complete once its last byte is in the
 * kernel's send buffer, which on a fast link holds the whole of a small
 * package: a module cut off then would look done. So a large response whose
 * bytes TCP has not all seen acknowledged lingers here, with its own
 * descriptor of the socket, until TCP settles it: all acknowledged, the
 * connection ended (then TCP's count is how much arrived), or a deadline. */
struct lingering {
  struct dl *dl;
  int64_t deadline; /* ms, monotonic */
  struct lingering *next;
};

static pthread_mutex_t linger_mu = PTHREAD_MUTEX_INITIALIZER;
static struct lingering *linger_head;

#define LINGER_MS 120000

#define HEADER_ESTIMATE 300 /* bytes of our response headers, about */

/* Linux TCP states (include/net/tcp_states.h), which no user header names
 * alongside struct tcp_info */
enum {
  TCPS_FIN_WAIT2 = 5,
  TCPS_TIME_WAIT = 6,
  TCPS_CLOSE = 7,
  TCPS_CLOSE_WAIT = 8,
  TCPS_LAST_ACK = 9,
  TCPS_CLOSING = 11
};

struct dfotad_stats dfotad_stats;

/* *req_cls between the first and the second call of a request */
static char first_call;

static uint64_t tcp_bytes_acked(int fd)
{
  struct tcp_info ti;
  socklen_t len = sizeof(ti);

  if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
      len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(ti.tcpi_bytes_acked))
    return 0;
  return ti.tcpi_bytes_acked;
}

static enum MHD_Result queue_text(struct MHD_Connection *c, unsigned status, const char *text,
                                  const struct front_ctx *f)
{
  struct MHD_Response *r;
  enum MHD_Result ret;

  r = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
  if (r == NULL)
    return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  if (atomic_load(&f->draining))
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
  ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

/* As queue_text, for text on the stack. */
static enum MHD_Result queue_text_copy(struct MHD_Connection *c, unsigned status, const char *text,
                                       const struct front_ctx *f)
{
  struct MHD_Response *r;
  enum MHD_Result ret;

  r = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
  if (r == NULL)
    return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                          text[0] == '{' ? "application/json" : "text/plain");
  if (atomic_load(&f->draining))
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
  ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
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

/* 416 with the size, for every Range we will not serve exactly. */
static enum MHD_Result queue_416(struct MHD_Connection *c, struct package *p,
                                 const struct front_ctx *f)
{
  static const char body[] = "range not satisfiable: one range of bytes within the file only\n";
  struct MHD_Response *r;
  enum MHD_Result ret;
  char cr[64];

  r = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
  if (r == NULL)
    return MHD_NO;
  snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)p->size);
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
  MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
  MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, p->etag);
  if (atomic_load(&f->draining))
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
  ret = MHD_queue_response(c, MHD_HTTP_RANGE_NOT_SATISFIABLE, r);
  MHD_destroy_response(r);
  return ret;
}

/* Decides what part of p to send. Returns the status: 200, 206 or 416. */
static unsigned choose_range(struct MHD_Connection *c, const struct package *p,
                             struct byte_range *br)
{
  const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
  const char *if_range;
  int n = 0;

  br->start = 0;
  br->len = p->size;
  if (range == NULL)
    return MHD_HTTP_OK;
  /* If-Range naming another version: the whole current body (RFC 9110) */
  if_range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_RANGE);
  if (if_range != NULL && strcmp(if_range, p->etag) != 0 && strcmp(if_range, p->last_modified) != 0)
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
static int client_allowed(struct MHD_Connection *c, const struct front_ctx *f, char *cn,
                          size_t cnlen)
{
  const union MHD_ConnectionInfo *ci;
  enum tls_peer peer;

  cn[0] = '\0';
  if (f->kind != FRONT_HTTPS || f->client_auth == CLIENT_AUTH_NONE)
    return 0;
  ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  if (ci == NULL || ci->tls_session == NULL)
    return -1;
  peer = tls_peer_verify(ci->tls_session, cn, cnlen);
  if (peer == TLS_PEER_INVALID)
    return -1;
  if (peer == TLS_PEER_NONE && f->client_auth == CLIENT_AUTH_REQUIRED)
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

static enum MHD_Result serve_package(struct MHD_Connection *c, struct front_ctx *f,
                                     struct package *p, int head, const char *token, void **req_cls)
{
  struct byte_range br;
  struct MHD_Response *r;
  struct dl *dl;
  unsigned status;
  enum MHD_Result ret;
  char cr[96];

  status = choose_range(c, p, &br);
  if (status == MHD_HTTP_RANGE_NOT_SATISFIABLE) {
    ret = queue_416(c, p, f);
    package_unref(p);
    return ret;
  }
  dl = calloc(1, sizeof(*dl));
  if (dl == NULL) {
    package_unref(p);
    return MHD_NO;
  }
  if (f->kind == FRONT_HTTPS || br.len <= SMALL_RANGE_MAX || head) {
    /* from the mapping, without a copy: TLS encrypts from it, and small
     * ranges leave with their headers in one write */
    package_ref(p);
    r = MHD_create_response_from_buffer_with_free_callback_cls(br.len, (void *)(p->map + br.start),
                                                               release_package, p);
    if (r == NULL)
      package_unref(p);
  } else {
    /* large ranges over plain HTTP: sendfile() from our own descriptor */
    int fd = fcntl(p->fd, F_DUPFD_CLOEXEC, 0);
    r = fd < 0 ? NULL : MHD_create_response_from_fd_at_offset64(br.len, fd, (int64_t)br.start);
    if (r == NULL && fd >= 0)
      close(fd);
  }
  if (r == NULL) {
    free(dl);
    package_unref(p);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
  MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
  MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, p->etag);
  MHD_add_response_header(r, MHD_HTTP_HEADER_LAST_MODIFIED, p->last_modified);
  /* packages are served byte for byte: no proxy may recompress them */
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-transform");
  if (status == MHD_HTTP_PARTIAL_CONTENT) {
    snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)br.start,
             (unsigned long long)(br.start + br.len - 1), (unsigned long long)p->size);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
  }
  if (atomic_load(&f->draining))
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");

  dl->kind = REQ_DOWNLOAD;
  dl->fleet = f->fleet;
  dl->https = f->kind == FRONT_HTTPS;
  dl->pkg = p; /* takes the caller's reference */
  dl->start = br.start;
  dl->ranged = status == MHD_HTTP_PARTIAL_CONTENT && br.bounded;
  if (token != NULL) {
    snprintf(dl->token, sizeof(dl->token), "%s", token);
    client_addr(c, dl->addr, sizeof(dl->addr));
  }
  dl->len = br.len;
  dl->head = head;
  dl->reached_end = br.start + br.len == p->size;
  dl->fd = -1;
  if (!head && br.len > SMALL_RANGE_MAX) {
    /* worth a system call: lets an interrupted transfer count what the
     * device actually received */
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    /* our own descriptor: the socket outlives libmicrohttpd's close
     * until we know how much arrived */
    if (ci != NULL && (dl->fd = fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0)) >= 0)
      dl->acked_start = tcp_bytes_acked(dl->fd);
  }
  ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  if (ret == MHD_YES) {
    *req_cls = dl;
    front_begin(f);
  } else {
    package_unref(p);
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

static void identity(struct MHD_Connection *c, const struct front_ctx *f, const char *cn,
                     char *addr, size_t addrlen, struct fleet_identity *who)
{
  client_addr(c, addr, addrlen);
  who->device_id = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "device");
  who->secret = MHD_lookup_connection_value(c, MHD_HEADER_KIND, f->token_header);
  who->cert_cn = cn[0] ? cn : NULL;
  who->addr = addr;
  who->protocol = f->kind == FRONT_HTTPS ? "https" : "http";
}

/* GET /v1/update?device=ID&version=V: the device asks what to do. */
static enum MHD_Result checkin(struct MHD_Connection *c, struct front_ctx *f, const char *cn)
{
  struct fleet_identity who;
  struct checkin_answer a;
  struct MHD_Response *r;
  const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
  char addr[64], body[1024], ra[16];
  enum MHD_Result ret;
  int n;

  identity(c, f, cn, addr, sizeof(addr), &who);
  atomic_fetch_add_explicit(&dfotad_stats.requests[f->kind == FRONT_HTTPS], 1,
                            memory_order_relaxed);
  http_front_tick(0); /* what the device downloaded counts before what it says */
  fleet_checkin(f->fleet, &who, MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "version"),
                f->kind == FRONT_HTTPS ? f->https_url : f->http_url, &a);
  if (a.status == 403 || a.status == 400)
    return queue_text(c, a.status, a.status == 403 ? "forbidden\n" : "bad request\n", f);
  if (a.status == 204)
    return queue_text(c, MHD_HTTP_NO_CONTENT, "", f);
  if (a.status == 429) {
    r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (r == NULL)
      return MHD_NO;
    snprintf(ra, sizeof(ra), "%d", a.retry_after > 0 ? a.retry_after : 1);
    MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    ret = MHD_queue_response(c, MHD_HTTP_TOO_MANY_REQUESTS, r);
    MHD_destroy_response(r);
    return ret;
  }
  if (accept != NULL && strstr(accept, "application/json") != NULL) {
    json_t *o =
        json_pack("{s:s,s:I,s:s,s:s,s:s,s:s,s:i,s:s}", "url", a.url, "size", (json_int_t)a.size,
                  "sha256", a.sha256, "from", a.from, "to", a.to, "package", a.package_id,
                  "request_size", a.request_size, "rollout", a.rollout);
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
    n = snprintf(body, sizeof(body), "%s", a.url);
    r = MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
      return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  ret = MHD_queue_response(c, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}

/* POST /v1/report?device=ID: URC lines or JSON, gathered then applied. */
static enum MHD_Result report(struct MHD_Connection *c, struct front_ctx *f, struct report_req *rq,
                              const char *cn)
{
  struct fleet_identity who;
  char addr[64], state[32] = "", msg[200] = "", body[256];
  int status, accepted = 0;

  if (rq->too_large)
    return queue_text(c, MHD_HTTP_CONTENT_TOO_LARGE, "report too large\n", f);
  identity(c, f, cn, addr, sizeof(addr), &who);
  atomic_fetch_add_explicit(&dfotad_stats.requests[f->kind == FRONT_HTTPS], 1,
                            memory_order_relaxed);
  http_front_tick(0);
  status = fleet_report(
      f->fleet, &who, MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
      rq->body ? rq->body : "", rq->len, state, sizeof(state), &accepted, msg, sizeof(msg));
  if (status == 403)
    return queue_text(c, MHD_HTTP_FORBIDDEN, "forbidden\n", f);
  if (status == 400) {
    snprintf(body, sizeof(body), "%s\n", msg);
    return queue_text_copy(c, MHD_HTTP_BAD_REQUEST, body, f);
  }
  snprintf(body, sizeof(body), "{\"state\":\"%s\",\"accepted\":%d}\n", state, accepted);
  return queue_text_copy(c, MHD_HTTP_OK, body, f);
}

enum MHD_Result http_front_handler(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **req_cls)
{
  struct front_ctx *f = cls;
  char id[PKG_ID_LEN + 8], token[FLEET_TOKEN_LEN + 8], cn[DEVICE_ID_MAX + 8];
  struct package *pkg;
  int head, post;

  (void)version;
  post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
  /* libmicrohttpd closes the connection after a response queued in the
   * first call; answering in the second keeps it alive for the next range */
  if (*req_cls == NULL) {
    if (post && strcmp(url, "/v1/report") == 0 && f->fleet != NULL) {
      struct report_req *rq = calloc(1, sizeof(*rq));
      if (rq == NULL)
        return MHD_NO;
      rq->kind = REQ_REPORT;
      *req_cls = rq;
      front_begin(f);
      return MHD_YES;
    }
    *req_cls = &first_call;
    return MHD_YES;
  }
  if (*req_cls != &first_call) {
    struct report_req *rq = *req_cls;
    if (rq->kind == REQ_REPORT && *upload_data_size > 0) {
      /* SECURITY: a report is a few lines; refuse to buffer more */
      if (rq->len + *upload_data_size > REPORT_BODY_MAX) {
        rq->too_large = 1;
      } else {
        char *nb = realloc(rq->body, rq->len + *upload_data_size + 1);
        if (nb == NULL)
          return MHD_NO;
        memcpy(nb + rq->len, upload_data, *upload_data_size);
        rq->body = nb;
        rq->len += *upload_data_size;
        rq->body[rq->len] = '\0';
      }
      *upload_data_size = 0;
      return MHD_YES;
    }
    if (rq->kind == REQ_REPORT) {
      if (client_allowed(c, f, cn, sizeof(cn)) < 0)
        return queue_text(c, MHD_HTTP_FORBIDDEN, "a valid client certificate is required\n", f);
      return report(c, f, rq, cn);
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
    return queue_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n", f);
  if (client_allowed(c, f, cn, sizeof(cn)) < 0)
    return queue_text(c, MHD_HTTP_FORBIDDEN, "a valid client certificate is required\n", f);
  if (strcmp(url, "/healthz") == 0)
    return queue_text(c, MHD_HTTP_OK, "ok\n", f);
  if (strcmp(url, "/v1/update") == 0 && f->fleet != NULL)
    return checkin(c, f, cn);
  /* SECURITY: a path names a package id or an offer's token, looked up in
   * memory; no part of it ever reaches the file system */
  if (strncmp(url, "/f/", 3) == 0 && f->fleet != NULL) {
    if (path_id(url, "/f/", token, sizeof(token)) < 0 ||
        (pkg = fleet_download_begin(f->fleet, token, !head)) == NULL)
      return queue_text(c, MHD_HTTP_NOT_FOUND, "no such download\n", f);
  } else if (strncmp(url, "/p/", 3) == 0) {
    if (path_id(url, "/p/", id, sizeof(id)) < 0 || (pkg = store_package_get(f->store, id)) == NULL)
      return queue_text(c, MHD_HTTP_NOT_FOUND, "no such package\n", f);
  } else {
    return queue_text(c, MHD_HTTP_NOT_FOUND, "not found\n", f);
  }
  if (pkg->status != PKG_OK) {
    package_unref(pkg);
    return queue_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "package damaged on the server\n", f);
  }
  return serve_package(c, f, pkg, head, strncmp(url, "/f/", 3) == 0 ? token : NULL, req_cls);
}

/* Records a finished response: statistics, the device's progress. Frees
 * dl and releases its package. */
static void dl_finish(struct dl *dl, uint64_t bytes, int complete)
{
  store_record_delivered(dl->pkg, bytes, complete && !dl->head && dl->reached_end);
  atomic_fetch_add_explicit(&dfotad_stats.bytes[dl->https], bytes, memory_order_relaxed);
  if (dl->token[0] != '\0' && !dl->head)
    fleet_download_end(dl->fleet, dl->token, dl->start, bytes, complete, dl->ranged,
                       dl->https ? "https" : "http", dl->addr);
  if (!complete)
    log_debug("package %s: transfer interrupted after about %llu of %llu bytes", dl->pkg->id,
              (unsigned long long)bytes, (unsigned long long)dl->len);
  if (dl->fd >= 0)
    close(dl->fd);
  package_unref(dl->pkg);
  free(dl);
}

/* Body bytes TCP saw acknowledged since the response started. */
static uint64_t acked_body(const struct dl *dl)
{
  uint64_t now = tcp_bytes_acked(dl->fd), d = now > dl->acked_start ? now - dl->acked_start : 0;

  d = d > HEADER_ESTIMATE ? d - HEADER_ESTIMATE : 0;
  return d < dl->len ? d : dl->len;
}

static int64_t mono_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 1 when TCP has settled how much of dl arrived: every byte acknowledged,
 * or the connection over. *bytes gets the count. */
static int tcp_settled(const struct dl *dl, uint64_t *bytes)
{
  struct tcp_info ti;
  socklen_t len = sizeof(ti);
  uint64_t acked = acked_body(dl);

  *bytes = acked + HEADER_ESTIMATE >= dl->len ? dl->len : acked;
  if (*bytes == dl->len)
    return 1;
  if (getsockopt(dl->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
    return 1;
  /* our FIN acknowledged (FIN_WAIT2, TIME_WAIT) means all data was; a reset
   * or the peer's close (CLOSE, CLOSE_WAIT, LAST_ACK, CLOSING) ends it */
  return ti.tcpi_state == TCPS_FIN_WAIT2 || ti.tcpi_state == TCPS_TIME_WAIT ||
         ti.tcpi_state == TCPS_CLOSE || ti.tcpi_state == TCPS_CLOSE_WAIT ||
         ti.tcpi_state == TCPS_LAST_ACK || ti.tcpi_state == TCPS_CLOSING;
}

void http_front_tick(int force)
{
  struct lingering *done = NULL, **pp;
  int64_t now = mono_ms();

  pthread_mutex_lock(&linger_mu);
  for (pp = &linger_head; *pp;) {
    struct lingering *l = *pp;
    uint64_t bytes;
    if (force || tcp_settled(l->dl, &bytes) || now >= l->deadline) {
      *pp = l->next;
      l->next = done;
      done = l;
    } else {
      pp = &l->next;
    }
  }
  pthread_mutex_unlock(&linger_mu);
  while (done) {
    struct lingering *l = done;
    uint64_t bytes;
    done = l->next;
    tcp_settled(l->dl, &bytes);
    dl_finish(l->dl, bytes, bytes == l->dl->len);
    free(l);
  }
}

void http_front_completed(struct front_ctx *f, struct MHD_Connection *c, void **req_cls,
                          enum MHD_RequestTerminationCode toe)
{
  struct dl *dl = *req_cls;
  int ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;

  if (dl == NULL || *req_cls == &first_call)
    return;
  *req_cls = NULL;
  if (dl->kind == REQ_REPORT) {
    struct report_req *rq = (struct report_req *)dl;
    free(rq->body);
    free(rq);
    front_end(f);
    return;
  }
  atomic_fetch_add_explicit(&dfotad_stats.requests[f->kind == FRONT_HTTPS], 1,
                            memory_order_relaxed);
  store_record_request(dl->pkg);
  front_end(f);
  if (dl->fd >= 0)
    log_debug("package %s: response %s; TCP acknowledged %llu of %llu body bytes", dl->pkg->id,
              ok ? "sent" : "cut", (unsigned long long)acked_body(dl), (unsigned long long)dl->len);
  if (dl->head) {
    dl_finish(dl, 0, ok);
  } else if (dl->fd < 0) {
    /* small: sent along with its headers, or not at all */
    dl_finish(dl, ok ? dl->len : 0, ok);
  } else if (!ok) {
    uint64_t b = acked_body(dl);
    dl_finish(dl, b, 0);
  } else {
    uint64_t bytes;
    struct lingering *l;
    if (tcp_settled(dl, &bytes) || (l = calloc(1, sizeof(*l))) == NULL) {
      dl_finish(dl, bytes, bytes == dl->len);
      return;
    }
    l->dl = dl;
    l->deadline = mono_ms() + LINGER_MS;
    pthread_mutex_lock(&linger_mu);
    l->next = linger_head;
    linger_head = l;
    pthread_mutex_unlock(&linger_mu);
  }
}
