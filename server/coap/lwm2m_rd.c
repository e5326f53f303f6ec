/* lwm2m_rd.c: the LwM2M registration interface on a CoAP(S) engine
 * ([coap] lwm2m = yes):
 *
 *   POST   /rd?ep=NAME&lt=S&lwm2m=V&b=B   Register (link-format payload);
 *                                          2.01 with Location-Path rd/LOC
 *   POST   /rd/LOC[?lt=S&b=B]              Update (payload optional)
 *   DELETE /rd/LOC                         De-register
 *
 * and lifetime expiry. An endpoint name is a device: the one whose
 * lwm2m_endpoint it is, else the one whose id it is; unknown names get
 * 4.03. Over CoAPS the DTLS session's PSK identity (or certificate CN)
 * must be that very device; over plain CoAP registrations are refused
 * unless [coap] lwm2m_insecure allows them. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../util/util.h"
#include "coap_msg.h"
#include "lwm2m.h"

#define MAX_QUERY 16         /* Uri-Query options of a registration */
#define EXPIRY_GRACE_MS 2000 /* an Update on the dot of the lifetime still counts */
#define TICK_MS 20
#define WAKE_PER_TICK 256  /* woken device ids taken off the fleet's list a tick */
#define POLLS_PER_TICK 64  /* check-ins a tick: a woken 10,000-device wave in ~3 s */
#define STEPS_PER_TICK 512 /* registrations stepped a tick; the rest stay due, in order */
/* A tick's work, at most, before the thread goes back to its datagrams;
 * what is left is done in slices between them (see lwm2m_tick) */
#define SLICE_US 1000
#define COMMITS_PER_SLICE 64 /* offers made durable, applied a slice */
/* Requests sent a slice: each brings an answer (and a Write of Package URI
 * a notification too) back into the socket ahead of the Updates that come
 * after; a thousand sent in a burst came back as a thousand datagrams to
 * read before the next Update (20-25 ms), and overflowed the socket's
 * buffer (Updates lost). Eight a slice keep that backlog to one batch. */
#define SENDS_PER_SLICE 8
/* A slice also ends, after a request sent or PEEK_US, when a datagram
 * waits: an Update that came meanwhile is answered before the next step,
 * not after the slice (it waited up to SLICE_US: the wave's p50 was 1.5 ms) */
#define PEEK_US 100

static size_t slot_str(const struct lwm2m_server *lw, const char *s)
{
  return hash_str(s) & (lw->nb - 1);
}

struct lwm2m_reg *lwm2m_reg_by_id(struct lwm2m_server *lw, uint32_t id)
{
  struct lwm2m_reg *r = lw->by_id[id & (lw->nb - 1)];

  while (r && r->id != id)
    r = r->next_id;
  return r;
}

static struct lwm2m_reg *by_loc(struct lwm2m_server *lw, const char *loc)
{
  struct lwm2m_reg *r = lw->by_loc[slot_str(lw, loc)];

  while (r && strcmp(r->loc, loc) != 0)
    r = r->next_loc;
  return r;
}

struct lwm2m_reg *lwm2m_reg_by_dev(struct lwm2m_server *lw, const char *dev)
{
  struct lwm2m_reg *r = lw->by_dev[slot_str(lw, dev)];

  while (r && strcmp(r->device, dev) != 0)
    r = r->next_dev;
  return r;
}

static void unlink_from(struct lwm2m_reg **pp, struct lwm2m_reg *r, size_t next_off)
{
  while (*pp && *pp != r)
    pp = (struct lwm2m_reg **)((char *)*pp + next_off);
  if (*pp)
    *pp = *(struct lwm2m_reg **)((char *)r + next_off);
}

int lwm2m_init(struct coap_engine *e)
{
  struct lwm2m_server *lw = calloc(1, sizeof(*lw));

  if (lw == NULL)
    return -1;
  lw->nb = 4096;
  lw->by_loc = calloc(lw->nb, sizeof(*lw->by_loc));
  lw->by_id = calloc(lw->nb, sizeof(*lw->by_id));
  lw->by_dev = calloc(lw->nb, sizeof(*lw->by_dev));
  if (lw->by_loc == NULL || lw->by_id == NULL || lw->by_dev == NULL) {
    free(lw->by_loc);
    free(lw->by_id);
    free(lw->by_dev);
    free(lw);
    return -1;
  }
  lw->next_id = (uint32_t)mono_ms();
  lw->wake_cursor = delivery_lwm2m_wake_head();
  e->lw = lw;
  /* responses to the requests dfotad makes on devices' sessions, and
   * notifications of what they observe */
  coap_register_response_handler(e->ctx, lwm2m_dm_response);
  coap_register_nack_handler(e->ctx, lwm2m_dm_nack);
  return 0;
}

void lwm2m_reg_view(struct coap_engine *e, struct lwm2m_reg *r)
{
  struct lwm2m_view v;

  memset(&v, 0, sizeof(v));
  v.registered = r->s != NULL;
  snprintf(v.endpoint, sizeof(v.endpoint), "%s", r->ep);
  snprintf(v.lwm2m, sizeof(v.lwm2m), "%s", r->ver);
  snprintf(v.binding, sizeof(v.binding), "%s", r->binding);
  v.lifetime = r->lifetime;
  v.registered_at = r->registered_at;
  v.updated_at = r->updated_at;
  lwm2m_links_text(&r->links, v.objects, sizeof(v.objects));
  snprintf(v.firmware_version, sizeof(v.firmware_version), "%s", r->version);
  v.fw_state = r->fw_state;
  v.fw_result = r->fw_result;
  v.fw_protocols = r->fw_protocols;
  v.fw_delivery = r->fw_delivery;
  snprintf(v.address, sizeof(v.address), "%s", r->ip);
  snprintf(v.protocol, sizeof(v.protocol), "%s", proto_name(e->proto));
  delivery_lwm2m_view(e->fleet, r->device, &v);
}

/* Unlinks and frees r; why: the event ("lwm2m_deregister"...). */
static void reg_drop(struct coap_engine *e, struct lwm2m_reg *r, const char *why)
{
  struct lwm2m_server *lw = e->lw;

  lwm2m_due_remove(lw, r);
  if (r->view_due)
    unlink_from(&lw->views, r, offsetof(struct lwm2m_reg, next_view));
  unlink_from(&lw->by_loc[slot_str(lw, r->loc)], r, offsetof(struct lwm2m_reg, next_loc));
  unlink_from(&lw->by_id[r->id & (lw->nb - 1)], r, offsetof(struct lwm2m_reg, next_id));
  unlink_from(&lw->by_dev[slot_str(lw, r->device)], r, offsetof(struct lwm2m_reg, next_dev));
  lw->n--;
  atomic_fetch_sub(&lwm2m_stats.registered, 1);
  if (r->s) {
    coap_session_release(r->s);
    r->s = NULL;
  }
  if (why != NULL) {
    lwm2m_reg_view(e, r);
    delivery_lwm2m_event(e->fleet, r->device, why, r->ep);
  }
  lwm2m_dm_clear(r);
  free(r);
}

void lwm2m_free(struct coap_engine *e)
{
  struct lwm2m_server *lw = e->lw;

  if (lw == NULL)
    return;
  lwm2m_dm_commits(e, 1, 0);
  lw->views = NULL; /* the fleet's views go with the engine */
  for (size_t i = 0; i < lw->nb; i++)
    while (lw->by_loc[i])
      reg_drop(e, lw->by_loc[i], NULL);
  free(lw->by_loc);
  free(lw->by_id);
  free(lw->by_dev);
  free(lw->heap);
  free(lw);
  e->lw = NULL;
}

static void add_uint_opt(coap_pdu_t *pdu, uint16_t num, uint64_t v)
{
  uint8_t buf[8];
  size_t n = coap_uint_encode(v, buf);

  coap_add_option(pdu, num, n, buf);
}

static void refuse(coap_pdu_t *resp, int code, const char *text, _Atomic uint64_t *counter)
{
  coap_pdu_set_code(resp, (coap_pdu_code_t)COAP_RESPONSE_CODE(code));
  if (text != NULL)
    coap_add_data(resp, strlen(text), (const uint8_t *)text);
  if (counter != NULL)
    atomic_fetch_add(counter, 1);
}

/* Whether the session may speak for device: its DTLS identity is the
 * device's, or plain CoAP is allowed. */
static int identity_ok(struct coap_engine *e, coap_session_t *s, const char *device)
{
  char peer[DEVICE_ID_MAX + 1];

  if (e->proto != PROTO_COAPS)
    return e->set.lwm2m_insecure;
  return coap_dtls_peer(e, s, peer) == 0 && strcmp(peer, device) == 0;
}

static void set_session(struct lwm2m_reg *r, coap_session_t *s)
{
  char ipport[96];

  if (r->s != s) {
    coap_session_reference(s);
    if (r->s)
      coap_session_release(r->s);
    r->s = s;
  }
  coap_peer_text(s, r->ip, sizeof(r->ip), ipport, sizeof(ipport));
}

static void do_register(struct coap_engine *e, coap_session_t *s, const coap_pdu_t *req,
                        coap_pdu_t *resp, const struct lwm2m_query *q)
{
  struct lwm2m_server *lw = e->lw;
  struct lwm2m_links links;
  struct lwm2m_reg *r, *old;
  char device[DEVICE_ID_MAX + 1];
  const uint8_t *data = NULL;
  size_t len = 0;
  const char *why = NULL;
  long lt = q->lt >= 0 ? q->lt : 86400;
  int drive = 0, rc;
  int64_t now = mono_ms();

  if (!q->has_ep) {
    refuse(resp, 400, "ep is required", &lwm2m_stats.refused_other);
    return;
  }
  if (lt < e->set.lwm2m_lt_min || lt > e->set.lwm2m_lt_max) {
    refuse(resp, 400, "lt out of the server's range", &lwm2m_stats.refused_other);
    return;
  }
  coap_get_data(req, &len, &data);
  if (len > LWM2M_LINK_MAX) {
    refuse(resp, 413, "link-format payload too long", &lwm2m_stats.refused_other);
    add_uint_opt(resp, COAPOPT_SIZE1, LWM2M_LINK_MAX);
    return;
  }
  if (lwm2m_links_parse((const char *)data, len, &links, &why) < 0) {
    refuse(resp, 400, why, &lwm2m_stats.refused_other);
    return;
  }
  /* SECURITY: only known devices register, each only as itself */
  rc = delivery_lwm2m_endpoint(e->fleet, q->ep, device, &drive);
  if (rc == -2) { /* not known yet: the fleet loads, or the store is away */
    refuse(resp, 503, NULL, &lwm2m_stats.refused_other);
    add_uint_opt(resp, COAPOPT_MAX_AGE, DELIVERY_STORE_RETRY);
    return;
  }
  if (rc < 0) {
    refuse(resp, 403, NULL, &lwm2m_stats.refused_unknown);
    log_debug("%s: LwM2M registration of unknown endpoint %s refused", proto_name(e->proto), q->ep);
    return;
  }
  if (!identity_ok(e, s, device)) {
    refuse(resp, 403, NULL, &lwm2m_stats.refused_identity);
    return;
  }
  old = lwm2m_reg_by_dev(lw, device);
  if (old == NULL && lw->n >= e->set.lwm2m_registrations) {
    refuse(resp, 503, NULL, &lwm2m_stats.refused_other);
    add_uint_opt(resp, COAPOPT_MAX_AGE, 60);
    return;
  }
  if ((r = calloc(1, sizeof(*r))) == NULL) {
    refuse(resp, 500, NULL, NULL);
    return;
  }
  if (old != NULL) {
    /* a device registering again has rebooted (after an update, say):
     * the new registration replaces the old one. What was written before
     * may be lost, so the offer that stands is written again. */
    snprintf(r->version, sizeof(r->version), "%s", old->version);
    reg_drop(e, old, NULL);
  }
  r->id = lw->next_id++;
  while (lwm2m_reg_by_id(lw, r->id) != NULL)
    r->id = lw->next_id++;
  do
    random_base32(r->loc, LWM2M_LOC_LEN);
  while (by_loc(lw, r->loc) != NULL);
  snprintf(r->ep, sizeof(r->ep), "%s", q->ep);
  snprintf(r->device, sizeof(r->device), "%s", device);
  r->drive = drive;
  snprintf(r->ver, sizeof(r->ver), "%s", q->ver[0] ? q->ver : "1.0");
  snprintf(r->binding, sizeof(r->binding), "%s", q->has_b ? q->binding : "U");
  r->queue = q->queue;
  r->lifetime = lt;
  r->expires = now + lt * 1000 + EXPIRY_GRACE_MS;
  r->heard = now;
  r->registered_at = r->updated_at = now_ms();
  r->links = links;
  r->fw_state = r->fw_result = r->fw_protocols = r->fw_delivery = -1;
  r->hidx = -1;
  if (lwm2m_due_set(lw, r, 0) < 0) {
    free(r);
    refuse(resp, 500, NULL, NULL);
    return;
  }
  set_session(r, s);
  lwm2m_dm_session(r);
  r->next_loc = lw->by_loc[slot_str(lw, r->loc)];
  lw->by_loc[slot_str(lw, r->loc)] = r;
  r->next_id = lw->by_id[r->id & (lw->nb - 1)];
  lw->by_id[r->id & (lw->nb - 1)] = r;
  r->next_dev = lw->by_dev[slot_str(lw, r->device)];
  lw->by_dev[slot_str(lw, r->device)] = r;
  lw->n++;
  atomic_fetch_add(&lwm2m_stats.registered, 1);
  atomic_fetch_add(&lwm2m_stats.registrations, 1);
  coap_pdu_set_code(resp, COAP_RESPONSE_CODE_CREATED);
  coap_add_option(resp, COAP_OPTION_LOCATION_PATH, 2, (const uint8_t *)"rd");
  coap_add_option(resp, COAP_OPTION_LOCATION_PATH, strlen(r->loc), (const uint8_t *)r->loc);
  lwm2m_dm_start(e, r);
  lwm2m_reg_view(e, r);
  {
    char detail[256];
    snprintf(detail, sizeof(detail), "%s lwm2m=%s b=%s lt=%ld from %s", r->ep, r->ver, r->binding,
             r->lifetime, r->ip);
    delivery_lwm2m_event(e->fleet, r->device, "lwm2m_register", detail);
  }
}

static void do_update(struct coap_engine *e, coap_session_t *s, const coap_pdu_t *req,
                      coap_pdu_t *resp, struct lwm2m_reg *r, const struct lwm2m_query *q)
{
  const uint8_t *data = NULL;
  size_t len = 0;
  const char *why = NULL;
  int64_t now = mono_ms();

  if (q->has_ep) {
    refuse(resp, 400, "ep is not updatable", &lwm2m_stats.refused_other);
    return;
  }
  if (q->lt >= 0 && (q->lt < e->set.lwm2m_lt_min || q->lt > e->set.lwm2m_lt_max)) {
    refuse(resp, 400, "lt out of the server's range", &lwm2m_stats.refused_other);
    return;
  }
  coap_get_data(req, &len, &data);
  if (len > LWM2M_LINK_MAX) {
    refuse(resp, 413, "link-format payload too long", &lwm2m_stats.refused_other);
    return;
  }
  if (len > 0) {
    struct lwm2m_links links;
    if (lwm2m_links_parse((const char *)data, len, &links, &why) < 0) {
      refuse(resp, 400, why, &lwm2m_stats.refused_other);
      return;
    }
    r->links = links;
  }
  if (q->lt >= 0)
    r->lifetime = q->lt;
  if (q->has_b) {
    snprintf(r->binding, sizeof(r->binding), "%s", q->binding);
    r->queue = q->queue;
  }
  r->expires = now + r->lifetime * 1000 + EXPIRY_GRACE_MS;
  r->heard = now;
  r->updated_at = now_ms();
  set_session(r, s);
  lwm2m_dm_session(r);
  if (r->queue)
    lwm2m_dm_woke(r, now);
  lwm2m_due_touch(e->lw, r);
  atomic_fetch_add(&lwm2m_stats.updates, 1);
  coap_pdu_set_code(resp, COAP_RESPONSE_CODE_CHANGED);
  /* its view after the answer (views_flush): handing it over takes the
   * fleet's lock, which its other threads hold for a millisecond or more
   * while a wave starts (the wave's Updates: p50 1.5 ms, 0.06 without) */
  if (!r->view_due) {
    r->view_due = 1;
    r->next_view = e->lw->views;
    e->lw->views = r;
  }
}

/* The views of the registrations Updated since the last call. */
static void views_flush(struct coap_engine *e)
{
  struct lwm2m_reg *r;

  while ((r = e->lw->views) != NULL) {
    e->lw->views = r->next_view;
    r->view_due = 0;
    lwm2m_reg_view(e, r);
  }
}

int lwm2m_rd_handle(struct coap_engine *e, coap_session_t *s, const coap_pdu_t *req,
                    coap_pdu_t *resp)
{
  coap_opt_iterator_t it;
  coap_opt_t *o;
  struct lwm2m_query q;
  char loc[LWM2M_LOC_LEN + 1] = "";
  int segs = 0, nq = 0, bad = 0, code = coap_pdu_get_code(req);
  const char *why = "bad query";
  struct lwm2m_reg *r;

  if (!e->set.lwm2m || e->lw == NULL)
    return 0;
  lwm2m_query_init(&q);
  coap_option_iterator_init(req, &it, COAP_OPT_ALL);
  while ((o = coap_option_next(&it)) != NULL) {
    const uint8_t *v = coap_opt_value(o);
    size_t n = coap_opt_length(o);
    if (it.number == COAPOPT_URI_PATH) {
      if (segs == 0 && !(n == 2 && memcmp(v, "rd", 2) == 0))
        return 0; /* not ours */
      if (segs == 1) {
        if (n == 0 || n > LWM2M_LOC_LEN)
          bad = 1;
        else {
          memcpy(loc, v, n);
          loc[n] = '\0';
        }
      }
      if (segs >= 2)
        bad = 1;
      segs++;
    } else if (it.number == COAPOPT_URI_QUERY) {
      if (++nq > MAX_QUERY || lwm2m_query_add(&q, v, n, &why) < 0)
        bad = 2;
    } else if (it.number == COAPOPT_BLOCK1) {
      bad = 3;
    }
  }
  if (segs == 0)
    return 0;
  if (coap_session_over(s)) {
    refuse(resp, 503, NULL, NULL);
    return 1;
  }
  if (bad == 3) {
    /* SECURITY: a registration is one datagram; no Block1 */
    refuse(resp, 413, NULL, &lwm2m_stats.refused_other);
    add_uint_opt(resp, COAPOPT_SIZE1, LWM2M_LINK_MAX);
    return 1;
  }
  if (bad) {
    refuse(resp, bad == 1 ? 404 : 400, bad == 1 ? NULL : why, &lwm2m_stats.refused_other);
    return 1;
  }
  if (segs == 1) {
    if (code != COAP_REQUEST_CODE_POST)
      refuse(resp, 405, NULL, NULL);
    else
      do_register(e, s, req, resp, &q);
    return 1;
  }
  r = by_loc(e->lw, loc);
  /* SECURITY: a location is only its device's to update or delete */
  if (r == NULL) {
    refuse(resp, 404, NULL, NULL);
    return 1;
  }
  if (!identity_ok(e, s, r->device)) {
    refuse(resp, 403, NULL, &lwm2m_stats.refused_identity);
    return 1;
  }
  if (code == COAP_REQUEST_CODE_POST) {
    do_update(e, s, req, resp, r, &q);
  } else if (code == COAP_REQUEST_CODE_DELETE) {
    coap_pdu_set_code(resp, COAP_RESPONSE_CODE_DELETED);
    atomic_fetch_add(&lwm2m_stats.deregistrations, 1);
    reg_drop(e, r, "lwm2m_deregister");
  } else {
    refuse(resp, 405, NULL, NULL);
  }
  return 1;
}

/* A wave was admitted (a start, a resume, the next wave): its registered
 * devices ask the core for their offer at the next step, rather than at
 * their next lwm2m_poll; a queue-mode one at its next Update, since steps
 * wait until it is awake. A download held on the rollout's pause is asked
 * about again as well. */
static void wake(struct lwm2m_server *lw, struct lwm2m_reg *r)
{
  r->next_poll = 0;
  r->execute_at = 0;
  lwm2m_due_touch(lw, r);
}

static void take_wakes(struct lwm2m_server *lw)
{
  char ids[WAKE_PER_TICK][DEVICE_ID_MAX + 1]; /* 16 KiB of the engine thread's stack */
  int all = 0, n = delivery_lwm2m_woken(&lw->wake_cursor, ids, WAKE_PER_TICK, &all);
  struct lwm2m_reg *r;

  for (int i = 0; i < n; i++)
    if ((r = lwm2m_reg_by_dev(lw, ids[i])) != NULL && r->drive)
      wake(lw, r);
  if (all)
    for (size_t i = 0; i < lw->nb; i++)
      for (r = lw->by_loc[i]; r; r = r->next_loc)
        if (r->drive)
          wake(lw, r);
}

int lwm2m_wait_ms(const struct coap_engine *e, int64_t now)
{
  const struct lwm2m_server *lw = e->lw;
  int64_t at;

  if (lw == NULL || lw->hn == 0)
    return -1;
  /* the first due registration, at the tick it can be stepped in */
  at = lw->heap[0]->due;
  if (at < lw->last_tick + TICK_MS)
    at = lw->last_tick + TICK_MS;
  return at <= now ? 0 : at - now > INT32_MAX ? INT32_MAX : (int)(at - now);
}

/* Why slices: a wave's start makes a thousand registrations due at once
 * (their check-ins, then their Package URI writes, each a coap_send), and
 * stepping 512 of them in one go held the thread for 5 to 25 ms while
 * registration Updates waited in the socket (issue 15). A tick now stops
 * after SLICE_US (or sooner when a datagram waits) and says so; the engine
 * then polls its socket without waiting, answers what came, and calls
 * again for the next slice. */
int lwm2m_tick(struct coap_engine *e, int64_t now)
{
  struct lwm2m_server *lw = e->lw;
  struct lwm2m_reg *r;
  int64_t t0;
  int more = 0;

  if (lw == NULL)
    return 0;
  views_flush(e);
  t0 = mono_us();
  if (lw->commits != NULL && lwm2m_dm_commits(e, 0, COMMITS_PER_SLICE) > 0)
    more = 1;
  if (lw->n == 0 || (!lw->more && now - lw->last_tick < TICK_MS))
    return more;
  if (!lw->more) {
    /* a new tick (a slice goes on with what the tick allowed) */
    lw->last_tick = now;
    lw->polls_left = POLLS_PER_TICK;
    lw->steps_left = STEPS_PER_TICK;
    take_wakes(lw);
  }
  lw->more = 0;
  lw->sends_left = SENDS_PER_SLICE;
  /* only the registrations due (lwm2m_due.c), not a walk of them all,
   * and a bounded number a tick: the thread answers datagrams meanwhile */
  while ((r = lwm2m_due_next(lw, now)) != NULL) {
    int64_t due, elapsed;
    if (lw->steps_left <= 0)
      break; /* the rest at the next tick */
    if (lw->sends_left <= 0 || (elapsed = mono_us() - t0) >= SLICE_US ||
        ((lw->sends_left < SENDS_PER_SLICE || elapsed >= PEEK_US) && coap_input_waiting(e))) {
      lw->more = 1;
      break;
    }
    lw->steps_left--;
    if (now > r->expires) {
      atomic_fetch_add(&lwm2m_stats.expiries, 1);
      reg_drop(e, r, "lwm2m_expired");
      continue;
    }
    lwm2m_dm_step(e, r, now);
    /* still due (a check-in over this tick's budget): behind the others
     * due now, so that each gets its turn */
    due = lwm2m_dm_due(e, r, now);
    lwm2m_due_set(lw, r, due <= now ? now + 1 : due);
  }
  return more || lw->more;
}
