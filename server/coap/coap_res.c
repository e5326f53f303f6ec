/* coap_res.c: the CoAP(S) front's resources. It only translates: parse
 * (coap_msg.c), ask the delivery core, render the answer as CoAP codes.
 *
 *   GET  /f/{token}          a download offered to a device (the token is
 *                            the credential), block by block
 *   GET  /p/{id}             a package, only with [coap] anonymous_packages
 *   GET  /v1/update?device=ID&version=V   check-in (CoAPS only)
 *   POST /v1/report?device=ID             URC lines (CoAPS only)
 *
 * Block2 is handled here, not by libcoap: any block of a download may be
 * asked on its own, in any order, at any time, at any size from 16 to 1024
 * bytes; each answer carries Size2 and an 8-byte ETag (the first bytes of
 * the package's SHA-256), and its payload comes straight from the
 * package's mapping. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../util/util.h"
#include "coap_int.h"
#include "coap_msg.h"
#include "lwm2m.h"

#define MAX_OPTIONS 32       /* options of a request we look at; more is a bad request */
#define RESPONSE_OVERHEAD 40 /* header and the options of a block answer, token apart */

/* A request as the handlers see it. */
struct call {
  struct coap_engine *e;
  coap_session_t *s;
  const coap_pdu_t *req;
  coap_pdu_t *resp;
  struct coap_req r;
  size_t req_size; /* about the request's bytes on the wire */
  int secure;
};

static void add_uint_option(coap_pdu_t *pdu, uint16_t num, uint64_t v)
{
  uint8_t buf[8];
  size_t n = coap_uint_encode(v, buf);

  coap_add_option(pdu, num, n, buf);
}

/* An answer without a representation. Its diagnostic text goes only where
 * it cannot amplify: over DTLS, or within COAP_AMPLIFICATION times the
 * request's size (RFC 7252 11.3). */
static void answer(struct call *c, int code, const char *text)
{
  size_t n = text ? strlen(text) : 0;

  coap_pdu_set_code(c->resp, (coap_pdu_code_t)COAP_RESPONSE_CODE(code));
  if (code / 100 == 4 && code != 404 && code != 403)
    delivery_count(c->e->proto, FC_BAD_REQUESTS, 1);
  if (n > 0 && (c->secure || 5 + n <= COAP_AMPLIFICATION * c->req_size))
    coap_add_data(c->resp, n, (const uint8_t *)text);
}

/* 5.03 or 4.29 with Max-Age: ask again in seconds */
static void answer_later(struct call *c, int code, int seconds)
{
  coap_pdu_set_code(c->resp, (coap_pdu_code_t)COAP_RESPONSE_CODE(code));
  add_uint_option(c->resp, COAPOPT_MAX_AGE, (uint64_t)(seconds > 0 ? seconds : 1));
}

/* 5.03 while the database does not answer: a check-in or a report is
 * answered only with what is durable, so not now. 1 when answered so. */
static int store_down(struct call *c)
{
  if (delivery_store_up(c->e->fleet))
    return 0;
  answer_later(c, 503, DELIVERY_STORE_RETRY);
  return 1;
}

/* ---- downloads --------------------------------------------------------- */

static void download(struct call *c)
{
  struct coap_engine *e = c->e;
  char ip[64], ipport[80], key[COAP_XFER_KEY];
  struct coap_xfer *x;
  struct coap_block b;
  struct target t;
  struct package *p;
  uint8_t etag[8], blk[3];
  char etag_hex[17];
  size_t tkl = coap_pdu_get_token(c->req).length, room, max_pdu;
  uint64_t size;
  int64_t now = mono_ms();
  enum coap_plan plan;

  max_pdu = coap_session_max_pdu_size(c->s);
  room = max_pdu > RESPONSE_OVERHEAD + tkl ? max_pdu - RESPONSE_OVERHEAD - tkl : 0;
  coap_peer_text(c->s, ip, sizeof(ip), ipport, sizeof(ipport));
  /* an offer's download is the device's wherever it comes from (see
   * coap_xfer.h); an anonymous one is the client's session's */
  if (c->r.route == ROUTE_OFFER)
    snprintf(key, sizeof(key), "f|%s", c->r.name);
  else
    snprintf(key, sizeof(key), "p|%s|%s", ipport, c->r.name);
  /* no Block2: block 0, at the largest size */
  if (!c->r.has_block2) {
    c->r.num = 0;
    c->r.szx = 6;
  }
  x = coap_xfers_find(&e->xfers, key);
  if (x == NULL) {
    enum resolve res;
    if (atomic_load(&e->draining)) {
      answer_later(c, 503, 10);
      return;
    }
    /* SECURITY: a token or a package id, looked up in memory; nothing of
     * the request reaches the file system */
    /* fetch = 0: a block that cannot be served must not move the device
     * to downloading; target_fetch() once it can */
    if (c->r.route == ROUTE_OFFER)
      res = delivery_resolve_offer(e->fleet, c->r.name, NULL, 0, &t);
    else if (e->set.anonymous)
      res = delivery_resolve_package(e->fleet, c->r.name, &t);
    else
      res = RESOLVE_NOT_FOUND;
    if (res == RESOLVE_UNAVAILABLE) {
      answer_later(c, 503, DELIVERY_STORE_RETRY);
      return;
    }
    if (res != RESOLVE_OK) {
      answer(c, res == RESOLVE_NOT_FOUND ? 404 : 503, delivery_resolve_text(res));
      return;
    }
    size = t.pkg->size;
    plan = coap_block_plan(c->r.num, c->r.szx, size, room, &b);
    if (plan != PLAN_OK) {
      target_release(&t); /* nothing recorded for a block that cannot be */
      goto refuse;
    }
    target_fetch(e->fleet, &t);
    struct transfer *tr = transfer_begin(e->fleet, &t, e->proto, ip);
    if (tr == NULL || (x = coap_xfers_add(&e->xfers, key, tr, now)) == NULL) {
      answer(c, 500, "out of memory");
      return;
    }
  } else {
    size = x->size;
    plan = coap_block_plan(c->r.num, c->r.szx, size, room, &b);
    if (plan != PLAN_OK)
      goto refuse;
  }
  p = transfer_package(x->tr);
  coap_xfer_block(x, ipport, coap_pdu_get_mid(c->req), b.off, b.len, b.more, now);
  coap_pdu_set_code(c->resp, COAP_RESPONSE_CODE_CONTENT);
  /* options in ascending order: ETag, Content-Format, Block2, Size2 */
  /* the strong validator: the SHA-256's first 8 bytes */
  memcpy(etag_hex, p->sha256, 16);
  etag_hex[16] = '\0';
  if (hex_decode(etag_hex, etag, sizeof(etag)) == 0)
    coap_add_option(c->resp, COAPOPT_ETAG, sizeof(etag), etag);
  add_uint_option(c->resp, COAPOPT_CONTENT_FORMAT, COAP_FMT_OCTETS);
  coap_add_option(c->resp, COAPOPT_BLOCK2, coap_block_encode(b.num, b.more, b.szx, blk), blk);
  add_uint_option(c->resp, COAPOPT_SIZE2, size);
  /* copied once, into the datagram; the package is never copied whole */
  if (b.len > 0 && !coap_add_data(c->resp, b.len, p->map + b.off))
    answer(c, 500, "block does not fit");
  return;

refuse:
  if (plan == PLAN_PAST_END) {
    answer(c, 402, "block past the end");
    add_uint_option(c->resp, COAPOPT_SIZE2, size);
  } else if (plan == PLAN_BAD_SZX) {
    answer(c, 402, "bad block size");
  } else {
    answer(c, 500, "no room for a block");
  }
}

/* ---- check-ins and reports ------------------------------------------- */

/* The identity of a CoAPS request; -1 (answered) when it has none. */
static int identity(struct call *c, struct device_identity *who, char *peer, char *ip, size_t iplen)
{
  char ipport[80];

  if (!c->secure) {
    answer(c, 403, "check-ins and reports need coaps");
    return -1;
  }
  if (coap_dtls_peer(c->e, c->s, peer) < 0) {
    answer(c, 403, "no device identity in this DTLS session");
    return -1;
  }
  coap_peer_text(c->s, ip, iplen, ipport, sizeof(ipport));
  memset(who, 0, sizeof(*who));
  who->device_id = c->r.has_device ? c->r.device : NULL;
  who->peer_id = peer;
  who->addr = ip;
  who->proto = c->e->proto;
  return 0;
}

/* ---- answers that wait on a commit -------------------------------------
 * A check-in or report that changed state is committed before it is
 * answered, and the engine's thread never waits on the disk: the request
 * is registered with libcoap as a separate response (an empty ACK at once
 * when it is confirmable), the commit is handed to the store's writer, and
 * once the writer says it is done the engine triggers the request, whose
 * handler runs again and sends the answer prepared before. Other sessions
 * are served meanwhile. */

enum { WAIT_CHECKIN = 1, WAIT_REPORT };

struct coap_wait {
  struct coap_engine *e;
  coap_session_t *s; /* referenced while we wait */
  uint8_t token[8];
  size_t tkl;
  int kind;
  atomic_int committed; /* set by the writer's thread */
  int triggered, answered;
  int64_t triggered_at;
  union {
    struct checkin_answer ck;
    struct report_answer rp;
  } a;
  struct coap_wait *next;
};

#define WAIT_LOST_MS 5000 /* a triggered request libcoap never handed back */

/* The writer's thread: the commit is done. Touches w only before it says
 * so, and e last: the engine may free w at once, and waits for
 * commits_out to reach 0 before it goes. */
static void commit_done(void *arg)
{
  struct coap_wait *w = arg;
  struct coap_engine *e = w->e;

  atomic_store(&w->committed, 1);
  atomic_fetch_add(&e->commits_done, 1);
  atomic_fetch_sub(&e->commits_out, 1);
}

static void wait_free(struct coap_wait *w)
{
  coap_session_release(w->s);
  free(w);
}

/* Hands the prepared answer's commit to the writer and leaves the request
 * pending; 0, or -1 (nothing taken: commit synchronously and answer). */
static int wait_for_commit(struct call *c, int kind, const void *answer_data, size_t len)
{
  coap_bin_const_t tok = coap_pdu_get_token(c->req);
  struct coap_wait *w;
  coap_async_t *as;

  if (!coap_async_is_supported() || tok.length > sizeof(w->token))
    return -1;
  w = calloc(1, sizeof(*w));
  if (w == NULL)
    return -1;
  as = coap_register_async(c->s, c->req, 0); /* 0: until triggered */
  if (as == NULL) {
    free(w);
    return -1;
  }
  w->e = c->e;
  w->s = coap_session_reference(c->s);
  memcpy(w->token, tok.s, tok.length);
  w->tkl = tok.length;
  w->kind = kind;
  memcpy(&w->a, answer_data, len);
  coap_async_set_app_data(as, w);
  atomic_fetch_add(&c->e->commits_out, 1);
  if (delivery_commit(c->e->fleet, commit_done, w) < 0) {
    atomic_fetch_sub(&c->e->commits_out, 1);
    delivery_commit_wait(c->e->fleet);
    atomic_store(&w->committed, 1);
    atomic_fetch_add(&c->e->commits_done, 1);
  }
  w->next = c->e->waits;
  c->e->waits = w;
  /* no code: libcoap sends an empty ACK to a confirmable request */
  return 0;
}

/* The wait of a request triggered again, or NULL for a new request. A
 * retransmission that comes while the commit runs gets an empty ACK
 * again (*busy set). */
static struct coap_wait *waiting(struct call *c, int *busy)
{
  coap_async_t *as = coap_find_async(c->s, coap_pdu_get_token(c->req));
  struct coap_wait *w = as ? coap_async_get_app_data(as) : NULL;

  *busy = 0;
  if (w == NULL)
    return NULL;
  if (!w->triggered) {
    *busy = 1;
    return NULL;
  }
  w->answered = 1;
  return w;
}

void coap_waits_run(struct coap_engine *e, int64_t now)
{
  struct coap_wait **pp = &e->waits;

  while (*pp != NULL) {
    struct coap_wait *w = *pp;
    int drop = 0;
    if (w->answered) {
      drop = 1;
    } else if (w->triggered) {
      drop = now - w->triggered_at >= WAIT_LOST_MS;
    } else if (atomic_load(&w->committed)) {
      coap_bin_const_t tok = {w->tkl, w->token};
      coap_async_t *as = coap_find_async(w->s, tok);
      if (as == NULL) {
        drop = 1; /* the session went, and its request with it */
      } else {
        coap_async_trigger(as);
        w->triggered = 1;
        w->triggered_at = now;
      }
    }
    if (drop) {
      *pp = w->next;
      wait_free(w);
    } else {
      pp = &w->next;
    }
  }
}

int coap_waits_pending(const struct coap_engine *e) { return e->waits != NULL; }

void coap_waits_free(struct coap_engine *e)
{
  /* the writer tells every commit asked for; none may touch e after */
  while (atomic_load(&e->commits_out) > 0)
    usleep(1000);
  while (e->waits != NULL) {
    struct coap_wait *w = e->waits;
    e->waits = w->next;
    wait_free(w);
  }
}

/* ---- check-ins and reports: the core's verdict on CoAP's wire ------------ */

static void checkin_reply(struct call *c, const struct checkin_answer *a)
{
  const char *body = a->text;
  int fmt = COAP_FMT_TEXT;

  switch (a->verdict) {
  case VERDICT_OFFER: break;
  case VERDICT_NOTHING: coap_pdu_set_code(c->resp, COAP_RESPONSE_CODE_CONTENT); return;
  case VERDICT_LATER: answer_later(c, 429, a->retry_after); return;
  case VERDICT_FORBIDDEN: answer(c, 403, a->text); return;
  case VERDICT_BAD_REQUEST:
  case VERDICT_NO_TRANSPORT:
  default: answer(c, 400, a->text); return;
  }
  if (c->r.accept == COAP_FMT_JSON) {
    body = a->json;
    fmt = COAP_FMT_JSON;
  }
  coap_pdu_set_code(c->resp, COAP_RESPONSE_CODE_CONTENT);
  add_uint_option(c->resp, COAPOPT_CONTENT_FORMAT, (uint64_t)fmt);
  if (body[0] == '\0' || !coap_add_data(c->resp, strlen(body), (const uint8_t *)body))
    answer(c, 500, "answer too large");
}

static void report_reply(struct call *c, const struct report_answer *a)
{
  switch (a->verdict) {
  case VERDICT_NOTHING: break;
  case VERDICT_LATER: answer_later(c, 429, a->retry_after); return;
  case VERDICT_FORBIDDEN: answer(c, 403, a->text); return;
  default: answer(c, 400, a->text); return;
  }
  coap_pdu_set_code(c->resp, COAP_RESPONSE_CODE_CHANGED);
  add_uint_option(c->resp, COAPOPT_CONTENT_FORMAT, COAP_FMT_JSON);
  coap_add_data(c->resp, strlen(a->json), (const uint8_t *)a->json);
}

static void checkin(struct call *c)
{
  struct device_identity who;
  struct checkin_answer a;
  struct coap_wait *w;
  char peer[DEVICE_ID_MAX + 1], ip[64];
  int busy;

  if ((w = waiting(c, &busy)) != NULL) {
    if (!store_down(c)) /* its commit failed: the device is told nothing it might lose */
      checkin_reply(c, &w->a.ck);
    return;
  }
  if (busy || identity(c, &who, peer, ip, sizeof(ip)) < 0 || store_down(c))
    return;
  delivery_checkin_nowait(c->e->fleet, &who, c->r.has_version ? c->r.version : NULL,
                          c->r.has_transport ? c->r.transport : NULL, &a);
  if (a.must_commit) {
    if (wait_for_commit(c, WAIT_CHECKIN, &a, sizeof(a)) == 0)
      return;
    delivery_commit_wait(c->e->fleet);
  }
  if (store_down(c))
    return;
  checkin_reply(c, &a);
}

static void report(struct call *c)
{
  struct device_identity who;
  struct report_answer a;
  struct coap_wait *w;
  char peer[DEVICE_ID_MAX + 1], ip[64];
  const uint8_t *data = NULL;
  size_t len = 0;
  int busy;

  if ((w = waiting(c, &busy)) != NULL) {
    if (!store_down(c)) /* its commit failed: the device is told nothing it might lose */
      report_reply(c, &w->a.rp);
    return;
  }
  if (busy || identity(c, &who, peer, ip, sizeof(ip)) < 0)
    return;
  coap_get_data(c->req, &len, &data);
  /* SECURITY: a report is a few URC lines in one datagram; no Block1 */
  if (c->r.has_block1 || len > (size_t)c->e->set.max_report) {
    answer(c, 413, "report too large");
    add_uint_option(c->resp, COAPOPT_SIZE1, (uint64_t)c->e->set.max_report);
    return;
  }
  if (store_down(c))
    return;
  delivery_report_nowait(c->e->fleet, &who, c->r.content_format == COAP_FMT_JSON,
                         len ? (const char *)data : "", len, &a);
  if (a.must_commit) {
    if (wait_for_commit(c, WAIT_REPORT, &a, sizeof(a)) == 0)
      return;
    delivery_commit_wait(c->e->fleet);
  }
  if (store_down(c))
    return;
  report_reply(c, &a);
}

/* ---- entry ------------------------------------------------------------- */

/* Gathers the request's options and parses them; 0, or -1 (answered). */
static int parse(struct call *c)
{
  struct coap_optv opts[MAX_OPTIONS];
  coap_opt_iterator_t it;
  coap_opt_t *o;
  size_t n = 0, len = 0;
  const uint8_t *data;

  c->req_size = 4 + coap_pdu_get_token(c->req).length;
  coap_option_iterator_init(c->req, &it, COAP_OPT_ALL);
  while ((o = coap_option_next(&it)) != NULL) {
    if (n == MAX_OPTIONS) {
      answer(c, 400, "too many options");
      return -1;
    }
    opts[n].number = it.number;
    opts[n].value = coap_opt_value(o);
    opts[n].len = coap_opt_length(o);
    c->req_size += 1 + opts[n].len;
    n++;
  }
  if (coap_get_data(c->req, &len, &data))
    c->req_size += 1 + len;
  coap_req_parse(opts, n, &c->r);
  if (c->r.bad_code) {
    answer(c, c->r.bad_code, c->r.why);
    return -1;
  }
  return 0;
}

static void handle(coap_resource_t *res, coap_session_t *s, const coap_pdu_t *req,
                   const coap_string_t *query, coap_pdu_t *resp)
{
  struct call c;

  (void)res;
  (void)query;
  memset(&c, 0, sizeof(c));
  c.e = coap_get_app_data(coap_session_get_context(s));
  c.s = s;
  c.req = req;
  c.resp = resp;
  c.secure = c.e->proto == PROTO_COAPS;
  if (coap_session_over(s)) {
    /* SECURITY: over the per-address session limit */
    answer_later(&c, 503, 60);
    return;
  }
  if (lwm2m_rd_handle(c.e, s, req, resp)) /* LwM2M registrations: /rd... */
    return;
  /* GET and POST only (the others are registered to be refused here:
   * libcoap would answer a DELETE on an unknown path 2.02 Deleted) */
  if (coap_pdu_get_code(req) != COAP_REQUEST_CODE_GET &&
      coap_pdu_get_code(req) != COAP_REQUEST_CODE_POST) {
    answer(&c, 405, NULL);
    return;
  }
  if (parse(&c) < 0)
    return;
  switch (c.r.route) {
  case ROUTE_OFFER:
  case ROUTE_PACKAGE:
    if (coap_pdu_get_code(req) != COAP_REQUEST_CODE_GET)
      answer(&c, 405, NULL);
    else
      download(&c);
    break;
  case ROUTE_CHECKIN:
    if (coap_pdu_get_code(req) != COAP_REQUEST_CODE_GET)
      answer(&c, 405, NULL);
    else
      checkin(&c);
    break;
  case ROUTE_REPORT:
    if (coap_pdu_get_code(req) != COAP_REQUEST_CODE_POST)
      answer(&c, 405, NULL);
    else
      report(&c);
    break;
  default: answer(&c, 404, NULL); break;
  }
}

int coap_res_register(struct coap_engine *e)
{
  /* every path is ours to parse: one catch-all resource; GET and POST are
   * served, every other method gets 4.05 from handle() */
  static const coap_request_t methods[] = {
      COAP_REQUEST_GET,   COAP_REQUEST_POST,  COAP_REQUEST_PUT,   COAP_REQUEST_DELETE,
      COAP_REQUEST_FETCH, COAP_REQUEST_PATCH, COAP_REQUEST_IPATCH};
  coap_resource_t *r = coap_resource_unknown_init2(NULL, 0);

  if (r == NULL)
    return -1;
  for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
    coap_register_request_handler(r, methods[i], handle);
  coap_add_resource(e->ctx, r);
  return 0;
}
