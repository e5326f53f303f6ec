/* http_device.c: the device API of the HTTP(S) front: GET /v1/update
 * (check-in) and POST /v1/report, the core's verdicts on HTTP's wire. A
 * verdict that changed state is answered once the writer made it durable,
 * with the connection suspended meanwhile (the thread serves others). */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_int.h"
#include "http_settle.h"

static void identity(struct MHD_Connection *c, const struct http_front *h, const char *cn,
                     char *addr, size_t addrlen, struct device_identity *who)
{
  http_client_addr(c, addr, addrlen);
  who->device_id = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "device");
  who->secret = MHD_lookup_connection_value(c, MHD_HEADER_KIND, h->token_header);
  who->peer_id = cn[0] ? cn : NULL;
  who->addr = addr;
  who->proto = h->proto;
}

int http_store_down(struct http_front *h) { return !delivery_store_up(h->fleet); }

/* 503 with Retry-After while the database does not answer: a check-in or
 * a report is answered only with what is durable, so not now. */
enum MHD_Result http_queue_store_down(struct MHD_Connection *c, struct http_front *h)
{
  static const char text[] = "the database does not answer\n";
  struct MHD_Response *r =
      MHD_create_response_from_buffer(sizeof(text) - 1, (void *)text, MHD_RESPMEM_PERSISTENT);
  char ra[16];

  if (r == NULL)
    return MHD_NO;
  snprintf(ra, sizeof(ra), "%d", DELIVERY_STORE_RETRY);
  MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
  return http_queue(c, h, MHD_HTTP_SERVICE_UNAVAILABLE, r);
}

/* Sends the core's answer, once its commit (if any) is done: while the
 * database does not answer (that commit failed), 503 instead, so that the
 * device is told nothing it might lose. */
enum MHD_Result http_send_reply(struct MHD_Connection *c, struct http_front *h,
                                const struct reply *rp)
{
  struct MHD_Response *r;

  if (http_store_down(h))
    return http_queue_store_down(c, h);
  if (rp->status == MHD_HTTP_TOO_MANY_REQUESTS)
    return http_queue_later(c, h, rp->retry_after);
  r = MHD_create_response_from_buffer(strlen(rp->body), (void *)rp->body, MHD_RESPMEM_MUST_COPY);
  if (r == NULL)
    return MHD_NO;
  if (rp->body[0] != '\0')
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, rp->type);
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  return http_queue(c, h, rp->status, r);
}

/* line: the body ends its line, as text answers over HTTP do (for a shell
 * reading them); an offer's URL goes bare, as AT+QFOTADL takes it */
static void reply_set(struct reply *rp, unsigned status, const char *body, const char *type,
                      int line)
{
  rp->status = status;
  rp->type = type;
  snprintf(rp->body, sizeof(rp->body), "%s%s", body, line && body[0] ? "\n" : "");
}

/* The writer's thread: the commit is done. Touches w only before the
 * resume (the connection's thread may free it at once), h last (http_stop
 * waits for commits_out to reach 0). */
static void commit_done(void *arg)
{
  struct wait_req *w = arg;
  struct http_front *h = w->h;

  atomic_store(&w->ready, 1);
  MHD_resume_connection(w->c);
  atomic_fetch_sub(&h->commits_out, 1);
}

/* Sends rp now, or once the commit it waits on is done (must_commit). A
 * report's request state (*req_cls) is replaced. */
static enum MHD_Result reply_after_commit(struct MHD_Connection *c, struct http_front *h,
                                          const struct reply *rp, int must_commit, void **req_cls)
{
  struct wait_req *w;

  if (!must_commit)
    return http_send_reply(c, h, rp);
  w = calloc(1, sizeof(*w));
  if (w == NULL) {
    delivery_commit_wait(h->fleet);
    return http_send_reply(c, h, rp);
  }
  w->kind = REQ_WAIT;
  w->h = h;
  w->c = c;
  w->r = *rp;
  if (*req_cls != NULL) { /* a report's gathered body: done with */
    struct report_req *rq = *req_cls;
    free(rq->body);
    free(rq);
  } else {
    http_inflight_add(h, 1);
  }
  *req_cls = w;
  MHD_suspend_connection(c);
  atomic_fetch_add(&h->commits_out, 1);
  if (delivery_commit(h->fleet, commit_done, w) < 0) {
    atomic_fetch_sub(&h->commits_out, 1);
    delivery_commit_wait(h->fleet);
    atomic_store(&w->ready, 1);
    MHD_resume_connection(c);
  }
  return MHD_YES;
}

/* GET /v1/update?device=ID&version=V[&transport=T]: the device asks what
 * to do. The core's verdict on HTTP's wire. */
enum MHD_Result http_checkin(struct MHD_Connection *c, struct http_front *h, const char *cn,
                             void **req_cls)
{
  struct device_identity who;
  struct checkin_answer a;
  struct reply rp = {0};
  const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
  char addr[64];

  identity(c, h, cn, addr, sizeof(addr), &who);
  if (http_store_down(h))
    return http_queue_store_down(c, h);
  http_settle_tick(h->settle, 0); /* what the device downloaded counts before what it says */
  delivery_checkin_nowait(h->fleet, &who,
                          MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "version"),
                          MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "transport"), &a);
  switch (a.verdict) {
  case VERDICT_OFFER:
    if (accept != NULL && strstr(accept, "application/json") != NULL)
      reply_set(&rp, MHD_HTTP_OK, a.json, "application/json", 0);
    else
      reply_set(&rp, MHD_HTTP_OK, a.text, "text/plain", 0);
    break;
  case VERDICT_NOTHING: reply_set(&rp, MHD_HTTP_NO_CONTENT, "", "", 0); break;
  case VERDICT_LATER:
    rp.status = MHD_HTTP_TOO_MANY_REQUESTS;
    rp.retry_after = a.retry_after;
    break;
  case VERDICT_FORBIDDEN: reply_set(&rp, MHD_HTTP_FORBIDDEN, a.text, "text/plain", 1); break;
  case VERDICT_NO_TRANSPORT: reply_set(&rp, MHD_HTTP_CONFLICT, a.text, "text/plain", 1); break;
  case VERDICT_BAD_REQUEST:
  default: reply_set(&rp, MHD_HTTP_BAD_REQUEST, a.text, "text/plain", 1); break;
  }
  return reply_after_commit(c, h, &rp, a.must_commit, req_cls);
}

/* POST /v1/report?device=ID: URC lines or JSON, gathered then applied. */
enum MHD_Result http_report(struct MHD_Connection *c, struct http_front *h, struct report_req *rq,
                            const char *cn, void **req_cls)
{
  struct device_identity who;
  struct report_answer a;
  struct reply rp = {0};
  const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
  char addr[64];

  if (rq->too_large)
    return http_queue_text(c, h, MHD_HTTP_CONTENT_TOO_LARGE, "report too large\n");
  identity(c, h, cn, addr, sizeof(addr), &who);
  if (http_store_down(h))
    return http_queue_store_down(c, h);
  http_settle_tick(h->settle, 0);
  delivery_report_nowait(h->fleet, &who, ct != NULL && strncasecmp(ct, "application/json", 16) == 0,
                         rq->body ? rq->body : "", rq->len, &a);
  switch (a.verdict) {
  case VERDICT_NOTHING: reply_set(&rp, MHD_HTTP_OK, a.json, "application/json", 1); break;
  case VERDICT_LATER:
    rp.status = MHD_HTTP_TOO_MANY_REQUESTS;
    rp.retry_after = a.retry_after;
    break;
  case VERDICT_FORBIDDEN: reply_set(&rp, MHD_HTTP_FORBIDDEN, a.text, "text/plain", 1); break;
  default: reply_set(&rp, MHD_HTTP_BAD_REQUEST, a.text, "text/plain", 1); break;
  }
  return reply_after_commit(c, h, &rp, a.must_commit, req_cls);
}

/* Gathers a report's body, at most REPORT_BODY_MAX bytes. */
enum MHD_Result http_report_body(struct report_req *rq, const char *data, size_t *size)
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
