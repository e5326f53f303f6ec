/* http_int.h: what the HTTP(S) front's files share (http_front.c: the
 * listener, downloads and the request dispatch; http_device.c: check-ins
 * and reports, answered once their commit is durable). Internal to
 * server/http/. */
#ifndef DFOTAD_HTTP_INT_H
#define DFOTAD_HTTP_INT_H

#include <microhttpd.h>
#include <stdatomic.h>
#include <stddef.h>

#include "../../fleet/delivery.h"
#include "../../net/mhd.h"
#include "../../net/tls_gnutls.h"
#include "http_conf.h"

#define HTTP_INFLIGHT_SHARDS 8

/* One instance of the front: its settings, copied at start. */
struct http_front {
  struct front *fr;
  struct fleet *fleet;
  enum proto proto;
  enum client_auth client_auth;
  char token_header[64];
  atomic_int commits_out; /* commits asked for whose connection is not yet resumed */
  /* responses queued (or waiting on a commit) and not completed, counted
   * per worker thread, a cache line each (http_inflight_add): one count
   * all threads change would pass its line between their processors
   * twice a response */
  struct {
    atomic_int n;
    char pad[64 - sizeof(atomic_int)];
  } inflight[HTTP_INFLIGHT_SHARDS];
  struct mhd_set mhd;
  struct http_settle *settle;
  struct resp_cache *cache; /* download responses, queued again (resp_cache.h) */
  struct resp_cache *whole; /* whole files with sendfile(), per package and thread */
  /* https: this reload's TLS set, installed for the handshakes of every
   * instance (GnuTLS's callback reads one place), held until this one stops */
  struct tls_set *tls;
  struct tls_slot_user *tls_user;
};

/* A report's body, gathered across calls. */
struct report_req {
  int kind; /* REQ_REPORT */
  char *body;
  size_t len;
  int too_large;
  int answered; /* a refusal is queued */
};

/* An answer the core gave, on HTTP's wire. */
struct reply {
  unsigned status;
  int retry_after;                /* with 429 */
  const char *type;               /* of a non-empty body */
  char body[ANSWER_JSON_MAX + 1]; /* and a newline */
};

/* A check-in or report that changed state waits for its commit with its
 * connection suspended: the thread goes on with its other connections,
 * and the writer resumes this one once the state is durable. */
struct wait_req {
  int kind; /* REQ_WAIT */
  struct http_front *h;
  struct MHD_Connection *c;
  atomic_int ready;
  struct reply r;
};

enum { REQ_DOWNLOAD = 1, REQ_REPORT, REQ_WAIT };

/* Counts a response in flight (d = 1) or done with (d = -1) in the
 * calling thread's shard. */
void http_inflight_add(struct http_front *h, int d);

/* Headers every answer gets; NULL r: nothing (allocation failed). */
enum MHD_Result http_queue(struct MHD_Connection *c, struct http_front *h, unsigned status,
                           struct MHD_Response *r);
/* A short text (or JSON, when it starts with '{') answer; copied. */
enum MHD_Result http_queue_text(struct MHD_Connection *c, struct http_front *h, unsigned status,
                                const char *text);
/* 429 with Retry-After: ask again later. */
enum MHD_Result http_queue_later(struct MHD_Connection *c, struct http_front *h, int seconds);
/* The client's address as text ("" when unknown). */
void http_client_addr(struct MHD_Connection *c, char *out, size_t len);

/* http_device.c. cn: the verified client certificate's CN, or "". A
 * check-in or report that changed state answers once its commit is done:
 * *req_cls then holds a struct wait_req (a report's struct report_req is
 * freed). */
enum MHD_Result http_checkin(struct MHD_Connection *c, struct http_front *h, const char *cn,
                             void **req_cls);
enum MHD_Result http_report(struct MHD_Connection *c, struct http_front *h, struct report_req *rq,
                            const char *cn, void **req_cls);
/* Gathers a report's body, at most REPORT_BODY_MAX bytes. */
enum MHD_Result http_report_body(struct report_req *rq, const char *data, size_t *size);
/* Whether the database does not answer now (check-ins and reports get
 * 503, /healthz too). */
int http_store_down(struct http_front *h);
/* 503 with Retry-After: the database does not answer. */
enum MHD_Result http_queue_store_down(struct MHD_Connection *c, struct http_front *h);
/* Queues the answer the core gave (a waiting request's, once resumed). */
enum MHD_Result http_send_reply(struct MHD_Connection *c, struct http_front *h,
                                const struct reply *rp);

#endif
