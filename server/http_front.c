/* http_front.c: the device-facing HTTP(S) front: GET and HEAD of
 * /p/{id}[/{name}], with the exact Range semantics modules rely on.
 *
 * A module's HTTP client needs Content-Length, cannot take chunked
 * encoding, and writes the body at the offset it asked for whatever the
 * status. So every answer has a known length, and a Range we cannot serve
 * exactly is refused (416), never answered with the whole body. */
#include "autoconfig.h"

#include "http_front.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_acked */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../store/store.h"
#include "log.h"
#include "range.h"
#include "tls.h"

/* One download response, from queueing to completion. */
struct dl {
  struct package *pkg;
  uint64_t len;    /* body bytes */
  int reached_end; /* the range ends at the package's last byte */
  int head;
  uint64_t acked_start; /* TCP bytes acknowledged before; 0: not measured */
  int fd;               /* client socket, for the measure */
};

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

/* The client certificate check of client_auth. 0: go on; -1: refused. */
static int client_allowed(struct MHD_Connection *c, const struct front_ctx *f)
{
  const union MHD_ConnectionInfo *ci;
  enum tls_peer peer;

  if (f->kind != FRONT_HTTPS || f->client_auth == CLIENT_AUTH_NONE)
    return 0;
  ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  if (ci == NULL || ci->tls_session == NULL)
    return -1;
  peer = tls_peer_verify(ci->tls_session, NULL, 0);
  if (peer == TLS_PEER_INVALID)
    return -1;
  if (peer == TLS_PEER_NONE && f->client_auth == CLIENT_AUTH_REQUIRED)
    return -1;
  return 0;
}

static enum MHD_Result serve_package(struct MHD_Connection *c, struct front_ctx *f,
                                     struct package *p, int head, void **req_cls)
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

  dl->pkg = p; /* takes the caller's reference */
  dl->len = br.len;
  dl->head = head;
  dl->reached_end = br.start + br.len == p->size;
  dl->fd = -1;
  if (!head && br.len > SMALL_RANGE_MAX) {
    /* worth a system call: lets an interrupted transfer count what the
     * device actually received */
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci != NULL) {
      dl->fd = ci->connect_fd;
      dl->acked_start = tcp_bytes_acked(dl->fd);
    }
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

enum MHD_Result http_front_handler(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **req_cls)
{
  struct front_ctx *f = cls;
  char id[PKG_ID_LEN + 8];
  const char *p, *end;
  struct package *pkg;
  int head;
  size_t n;

  (void)version;
  (void)upload_data;
  /* libmicrohttpd closes the connection after a response queued in the
   * first call; answering in the second keeps it alive for the next range */
  if (*req_cls == NULL) {
    *req_cls = &first_call;
    return MHD_YES;
  }
  if (*req_cls != &first_call || *upload_data_size != 0) {
    *upload_data_size = 0; /* a body we did not ask for: ignore it */
    return MHD_YES;
  }
  *req_cls = NULL;
  head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
  if (!head && strcmp(method, MHD_HTTP_METHOD_GET) != 0)
    return queue_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n", f);
  if (client_allowed(c, f) < 0)
    return queue_text(c, MHD_HTTP_FORBIDDEN, "a valid client certificate is required\n", f);
  if (strcmp(url, "/healthz") == 0)
    return queue_text(c, MHD_HTTP_OK, "ok\n", f);
  if (strncmp(url, "/p/", 3) != 0)
    return queue_text(c, MHD_HTTP_NOT_FOUND, "not found\n", f);
  /* SECURITY: the path names a package id, looked up in the catalog; no
   * part of it ever reaches the file system */
  p = url + 3;
  end = strchr(p, '/');
  n = end ? (size_t)(end - p) : strlen(p);
  if (n == 0 || n >= sizeof(id))
    return queue_text(c, MHD_HTTP_NOT_FOUND, "no such package\n", f);
  memcpy(id, p, n);
  id[n] = '\0';
  pkg = store_package_get(f->store, id);
  if (pkg == NULL)
    return queue_text(c, MHD_HTTP_NOT_FOUND, "no such package\n", f);
  if (pkg->status != PKG_OK) {
    package_unref(pkg);
    return queue_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "package damaged on the server\n", f);
  }
  return serve_package(c, f, pkg, head, req_cls);
}

void http_front_completed(struct front_ctx *f, struct MHD_Connection *c, void **req_cls,
                          enum MHD_RequestTerminationCode toe)
{
  struct dl *dl = *req_cls;
  uint64_t bytes;
  int ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;

  (void)c;
  if (dl == NULL || *req_cls == &first_call)
    return;
  *req_cls = NULL;
  if (dl->head) {
    bytes = 0;
  } else if (ok) {
    bytes = dl->len;
  } else if (dl->acked_start > 0 || dl->fd >= 0) {
    /* what TCP saw acknowledged, less a few hundred bytes of headers */
    uint64_t now = tcp_bytes_acked(dl->fd), d = now > dl->acked_start ? now - dl->acked_start : 0;
    d = d > 512 ? d - 512 : 0;
    bytes = d < dl->len ? d : dl->len;
  } else {
    bytes = 0;
  }
  store_record_served(dl->pkg, bytes, ok && !dl->head && dl->reached_end);
  if (!ok)
    log_debug("package %s: transfer interrupted after about %llu of %llu bytes", dl->pkg->id,
              (unsigned long long)bytes, (unsigned long long)dl->len);
  package_unref(dl->pkg);
  free(dl);
  front_end(f);
}
