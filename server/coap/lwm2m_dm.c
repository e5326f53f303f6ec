/* lwm2m_dm.c: device management over a registered device's own session.
 *
 * Requests (Read, Write, Execute, Observe) go out one at a time per
 * device, as confirmable messages that libcoap retransmits (RFC 7252
 * 4.2); a queue-mode device (b=UQ / Q) is only sent to while it is awake,
 * that is for [coap] lwm2m_queue_awake seconds after it last spoke. Their tokens name the
 * registration (4 bytes of its id) and the request, so that a response or a
 * notification finds its device without a search, and one for a
 * registration that is gone gets a Reset, which ends a stale observation.
 *
 * At registration: Read /3/0/3 (firmware version), /5/0/8, /5/0/9;
 * Observe /5/0/3 (State) and /5/0/5 (Update Result). The campaign's steps
 * (check-ins, offers, reports, Update) are lwm2m_offer.c's; a push of the
 * package into /5/0/0 is lwm2m_push.c's. */
#include "autoconfig.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../util/util.h"
#include "coap_msg.h"
#include "lwm2m.h"
#include "lwm2m_tlv.h"

#define REQUEST_GIVE_UP_MS 300000 /* past libcoap's own retransmissions (EXCHANGE_LIFETIME) */
#define MISSED_MS 2000 /* a queue-mode device's Update this long after a request: missed */
#define SEQ_STATE 0xFFFFFFF1u
#define SEQ_RESULT 0xFFFFFFF2u

static void put32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int lwm2m_dm_queue(struct lwm2m_reg *r, enum lwm2m_op_kind kind, uint16_t obj, uint16_t inst,
                   uint16_t res, const char *payload)
{
  struct lwm2m_op *op;

  if (r->nq == LWM2M_QUEUE_MAX)
    return -1;
  op = &r->q[r->nq];
  memset(op, 0, sizeof(*op));
  op->kind = kind;
  op->obj = obj;
  op->inst = inst;
  op->res = res;
  if (payload != NULL && (op->payload = strdup(payload)) == NULL)
    return -1;
  r->nq++;
  return 0;
}

void lwm2m_dm_clear(struct lwm2m_reg *r)
{
  lwm2m_push_end(NULL, r, NULL);
  for (int i = 0; i < r->nq; i++)
    free(r->q[i].payload);
  r->nq = 0;
  free(r->cur.payload);
  r->cur.payload = NULL;
}

void lwm2m_dm_start(struct coap_engine *e, struct lwm2m_reg *r)
{
  (void)e;
  lwm2m_dm_queue(r, OP_READ, 3, 0, 3, NULL);
  if (lwm2m_links_has(&r->links, 5)) {
    lwm2m_dm_queue(r, OP_READ, 5, 0, 8, NULL);
    lwm2m_dm_queue(r, OP_READ, 5, 0, 9, NULL);
    /* notified at most every LWM2M_PMIN s, at least once a lifetime (a
     * State that changed unseen still reaches us) */
    lwm2m_dm_queue(r, OP_ATTRS, 5, 0, 3, NULL);
    lwm2m_dm_queue(r, OP_OBSERVE, 5, 0, 3, NULL);
    lwm2m_dm_queue(r, OP_ATTRS, 5, 0, 5, NULL);
    lwm2m_dm_queue(r, OP_OBSERVE, 5, 0, 5, NULL);
  }
  r->next_poll = 0;
}

/* The Content-Formats tried in turn when a device answers 4.15 (a Write)
 * or 4.06 (a Read with Accept): text/plain first for a single resource
 * (every LwM2M version has it), then TLV (1.0), SenML JSON and SenML CBOR
 * (1.1+). A Read first goes without Accept: the device picks. */
static const int write_fmts[] = {LWM2M_FMT_TEXT, LWM2M_FMT_TLV, LWM2M_FMT_SENML_JSON,
                                 LWM2M_FMT_SENML_CBOR};
static const int read_fmts[] = {-1, LWM2M_FMT_TLV, LWM2M_FMT_SENML_JSON, LWM2M_FMT_SENML_CBOR,
                                LWM2M_FMT_TEXT};
#define N_WRITE_FMTS (int)(sizeof(write_fmts) / sizeof(write_fmts[0]))
#define N_READ_FMTS (int)(sizeof(read_fmts) / sizeof(read_fmts[0]))

static void add_uint(coap_pdu_t *pdu, uint16_t opt, unsigned v)
{
  uint8_t b[4];

  coap_add_option(pdu, opt, coap_encode_var_safe(b, sizeof(b), v), b);
}

static void uri_path(coap_pdu_t *pdu, const struct lwm2m_op *op)
{
  char seg[8];
  unsigned v[3] = {op->obj, op->inst, op->res};

  for (int i = 0; i < 3; i++) {
    int n = snprintf(seg, sizeof(seg), "%u", v[i]);
    coap_add_option(pdu, COAP_OPTION_URI_PATH, (size_t)n, (const uint8_t *)seg);
  }
}

/* Sends r->cur; 0 or -1. */
static int send_cur(struct coap_engine *e, struct lwm2m_reg *r, int64_t now)
{
  static const coap_pdu_code_t codes[] = {COAP_REQUEST_CODE_GET,  COAP_REQUEST_CODE_PUT,
                                          COAP_REQUEST_CODE_POST, COAP_REQUEST_CODE_GET,
                                          COAP_REQUEST_CODE_PUT,  COAP_REQUEST_CODE_PUT};
  struct lwm2m_op *op = &r->cur;
  coap_pdu_t *pdu;
  uint32_t seq;

  if (r->s == NULL)
    return -1;
  if (op->kind == OP_OBSERVE)
    seq = op->res == 3 ? SEQ_STATE : SEQ_RESULT;
  else
    seq = ++r->seq & 0x7FFFFFFF;
  put32(r->tok, r->id);
  put32(r->tok + 4, seq);
  if (op->kind == OP_OBSERVE)
    memcpy(op->res == 3 ? r->tok_state : r->tok_result, r->tok, LWM2M_TOKEN_LEN);
  pdu = coap_new_pdu(COAP_MESSAGE_CON, codes[op->kind], r->s);
  if (pdu == NULL)
    return -1;
  coap_add_token(pdu, LWM2M_TOKEN_LEN, r->tok);
  if (op->kind == OP_OBSERVE) {
    uint8_t zero = 0;
    coap_add_option(pdu, COAP_OPTION_OBSERVE, 0, &zero);
  }
  uri_path(pdu, op);
  if (op->kind == OP_ATTRS) {
    /* Write-Attributes (LwM2M 1.x 5.4.4): a PUT with the attributes as
     * Uri-Query and no payload */
    char q[32];
    int n = snprintf(q, sizeof(q), "pmin=%d", LWM2M_PMIN);
    coap_add_option(pdu, COAP_OPTION_URI_QUERY, (size_t)n, (const uint8_t *)q);
    n = snprintf(q, sizeof(q), "pmax=%ld", r->lifetime);
    coap_add_option(pdu, COAP_OPTION_URI_QUERY, (size_t)n, (const uint8_t *)q);
  }
  if ((op->kind == OP_READ || op->kind == OP_OBSERVE) && read_fmts[r->rfmt] >= 0)
    add_uint(pdu, COAP_OPTION_ACCEPT, (unsigned)read_fmts[r->rfmt]);
  if (op->kind == OP_PUSH && lwm2m_push_fill(e, r, pdu) < 0) {
    coap_delete_pdu(pdu);
    return -1;
  }
  if (op->kind == OP_WRITE) {
    uint8_t body[LWM2M_URL_MAX + 64];
    int fmt = write_fmts[r->wfmt];
    int n = lwm2m_value_encode(fmt, op->obj, op->inst, op->res, op->payload ? op->payload : "",
                               body, sizeof(body));
    if (n < 0) {
      coap_delete_pdu(pdu);
      return -1;
    }
    add_uint(pdu, COAP_OPTION_CONTENT_FORMAT, (unsigned)fmt);
    if (n > 0)
      coap_add_data(pdu, (size_t)n, body);
  }
  if (coap_send(r->s, pdu) == COAP_INVALID_MID)
    return -1;
  e->lw->sends_left--;
  e->sent++;
  r->busy = 1;
  r->sent_at = now;
  return 0;
}

void lwm2m_dm_session(struct lwm2m_reg *r)
{
  /* a queue-mode device may sleep through a request, which libcoap keeps
   * retransmitting for ~93 s; the copy sent at its next wake must not wait
   * behind it (NSTART 1, RFC 7252 4.7): one more in flight per retry */
  if (r->s != NULL && r->queue)
    coap_session_set_nstart(r->s, LWM2M_RETRIES + 1);
}

void lwm2m_dm_woke(struct lwm2m_reg *r, int64_t now)
{
  /* the device slept since the request went out: it never heard it (its
   * radio was off), so it goes out again now that it listens */
  if (r->busy && r->queue && now - r->sent_at >= MISSED_MS) {
    r->busy = 0;
    r->resend = 1;
  }
}

/* A request went unanswered across LWM2M_RETRIES wakes: given up, said, and
 * for a Package URI reported as a failed request (703: retry later), which
 * the rollout's attempts and backoff then govern. */
static void give_up(struct coap_engine *e, struct lwm2m_reg *r)
{
  char detail[96];
  static const char *const kinds[] = {"Read", "Write", "Execute", "Observe", "Write-Attributes",
                                      "Push"};

  snprintf(detail, sizeof(detail), "%s /%u/%u/%u unanswered after %d sends", kinds[r->cur.kind],
           r->cur.obj, r->cur.inst, r->cur.res, r->tries);
  atomic_fetch_add(&lwm2m_stats.requests_timeout, 1);
  delivery_lwm2m_event(e->fleet, r->device, "lwm2m_gave_up", detail);
  if (r->cur.kind == OP_WRITE && r->cur.obj == 5 && r->cur.res == 1 && r->cur.payload != NULL &&
      r->cur.payload[0] != '\0' && r->url[0] != '\0') {
    lwm2m_report(e, r, "DOWNLOADED", 703);
    r->url[0] = '\0';
    r->downloaded_told = r->executed = r->execute_due = 0;
  }
  if (r->cur.kind == OP_PUSH && r->push != NULL) {
    lwm2m_push_end(e, r, "a block unanswered");
    lwm2m_report(e, r, "DOWNLOADED", 703);
    r->url[0] = '\0';
    r->downloaded_told = r->executed = r->execute_due = 0;
  }
  r->resend = 0;
  free(r->cur.payload);
  r->cur.payload = NULL;
}

void lwm2m_dm_step(struct coap_engine *e, struct lwm2m_reg *r, int64_t now)
{
  if (r->busy) {
    if (now - r->sent_at < REQUEST_GIVE_UP_MS)
      return;
    r->busy = 0;
    if (r->queue)
      r->resend = 1;
    else
      atomic_fetch_add(&lwm2m_stats.requests_timeout, 1);
  }
  /* queue mode: only while the device listens */
  if (r->queue && now - r->heard >= (int64_t)e->set.lwm2m_awake * 1000)
    return;
  if (r->resend) {
    if (r->tries > LWM2M_RETRIES) {
      give_up(e, r);
    } else {
      r->resend = 0;
      r->tries++;
      delivery_lwm2m_event(e->fleet, r->device, "lwm2m_retry",
                           "a request the device slept through, sent again at its wake");
      if (send_cur(e, r, now) < 0)
        give_up(e, r);
    }
    return;
  }
  if (r->push_next) {
    /* the push's next block, ahead of anything queued meanwhile */
    r->push_next = 0;
    r->tries = 1;
    if (r->push != NULL && r->cur.kind == OP_PUSH && send_cur(e, r, now) < 0)
      give_up(e, r);
    return;
  }
  if (r->nq > 0) {
    free(r->cur.payload);
    r->tries = 1;
    r->cur = r->q[0];
    memmove(&r->q[0], &r->q[1], (size_t)(r->nq - 1) * sizeof(r->q[0]));
    r->nq--;
    if (send_cur(e, r, now) < 0) {
      atomic_fetch_add(&lwm2m_stats.requests_error, 1);
      free(r->cur.payload);
      r->cur.payload = NULL;
    }
    return;
  }
  if (r->execute_due && now >= r->execute_at) {
    lwm2m_execute_when_allowed(e, r, now);
    return;
  }
  if (!r->drive || !lwm2m_links_has(&r->links, 5) || now < r->next_poll)
    return;
  if (r->fw_state <= 0 || r->url[0] == '\0' || !r->version_told) {
    /* a woken wave's check-ins are spread over ticks: Updates meanwhile
     * are still answered at once */
    if (e->lw->polls_left <= 0)
      return;
    e->lw->polls_left--;
    lwm2m_poll_offer(e, r, now);
  } else if ((r->fw_state == 1 || r->fw_state == 2) && !r->executed) {
    /* downloading or downloaded: only whether the offer still stands */
    r->next_poll = now + (int64_t)e->set.lwm2m_poll * 1000;
    if (!lwm2m_offer_stands(e, r))
      lwm2m_cancel_offer(e, r);
  }
}

int64_t lwm2m_dm_due(const struct coap_engine *e, const struct lwm2m_reg *r, int64_t now)
{
  int64_t due = r->expires + 1; /* expired: dropped at that step */

  if (r->busy)
    return r->sent_at + REQUEST_GIVE_UP_MS < due ? r->sent_at + REQUEST_GIVE_UP_MS : due;
  if (r->queue && now - r->heard >= (int64_t)e->set.lwm2m_awake * 1000)
    return due; /* asleep: its next Update touches it */
  if (r->resend || r->nq > 0 || r->push_next)
    return now;
  if (r->execute_due && r->execute_at < due)
    due = r->execute_at;
  /* the check-ins lwm2m_dm_step makes; while the device updates (or was
   * told to), a notification touches it */
  if (r->drive && lwm2m_links_has(&r->links, 5) && r->next_poll < due &&
      (r->fw_state <= 0 || r->url[0] == '\0' || !r->version_told ||
       ((r->fw_state == 1 || r->fw_state == 2) && !r->executed)))
    due = r->next_poll;
  return due;
}

/* ---- responses and notifications -------------------------------------- */

static int content_format(const coap_pdu_t *pdu)
{
  coap_opt_iterator_t it;
  coap_opt_t *o = coap_check_option(pdu, COAP_OPTION_CONTENT_FORMAT, &it);

  return o ? (int)coap_decode_var_bytes(coap_opt_value(o), coap_opt_length(o)) : -1;
}

/* The value of resource res in pdu; 0 or -1. */
static int value_of(const coap_pdu_t *pdu, uint16_t res, struct lwm2m_value *v)
{
  const uint8_t *data = NULL;
  size_t len = 0;

  coap_get_data(pdu, &len, &data);
  return lwm2m_value_decode(content_format(pdu), data ? data : (const uint8_t *)"", len, res, v);
}

static void took_value(struct coap_engine *e, struct lwm2m_reg *r, uint16_t obj, uint16_t res,
                       const coap_pdu_t *pdu)
{
  struct lwm2m_value v;

  if (value_of(pdu, res, &v) < 0)
    return;
  if (obj == 3 && res == 3) {
    if (v.text[0] != '\0' && strcmp(v.text, r->version) != 0 && strlen(v.text) < 64) {
      snprintf(r->version, sizeof(r->version), "%s", v.text);
      r->version_told = 0;
      r->next_poll = 0; /* tell the core now: it may confirm a hop */
    }
  } else if (obj == 5 && res == 8) {
    r->fw_protocols = 0;
    for (int i = 0; i < v.n_ints; i++)
      if (v.ints[i] >= 0 && v.ints[i] < 16)
        r->fw_protocols |= 1 << v.ints[i];
  } else if (obj == 5 && res == 9 && v.n_ints > 0) {
    r->fw_delivery = (int)v.ints[0];
  } else if (obj == 5 && (res == 3 || res == 5) && v.n_ints > 0) {
    int *slot = res == 3 ? &r->fw_state : &r->fw_result;
    if (*slot != (int)v.ints[0]) {
      *slot = (int)v.ints[0];
      lwm2m_fw_changed(e, r);
    }
  }
  lwm2m_reg_view(e, r);
}

/* The device refused the format of the request out (4.15 to a Write's
 * Content-Format, 4.06 to a Read's Accept): the next one is tried, and
 * kept for its later requests. 1 when there is one. */
static int other_format(struct coap_engine *e, struct lwm2m_reg *r, coap_pdu_code_t code)
{
  const struct lwm2m_op *op = &r->cur;
  char detail[96];
  int *i, n, from;

  if (op->kind == OP_WRITE && code == COAP_RESPONSE_CODE(415)) {
    i = &r->wfmt;
    n = N_WRITE_FMTS;
  } else if ((op->kind == OP_READ || op->kind == OP_OBSERVE) && code == COAP_RESPONSE_CODE(406)) {
    i = &r->rfmt;
    n = N_READ_FMTS;
  } else {
    return 0;
  }
  if (*i + 1 >= n)
    return 0;
  from = op->kind == OP_WRITE ? write_fmts[*i] : read_fmts[*i];
  (*i)++;
  snprintf(detail, sizeof(detail), "%s /%u/%u/%u: Content-Format %d refused, %d next",
           op->kind == OP_WRITE ? "Write" : "Read", op->obj, op->inst, op->res, from,
           op->kind == OP_WRITE ? write_fmts[*i] : read_fmts[*i]);
  delivery_lwm2m_event(e->fleet, r->device, "lwm2m_format", detail);
  return 1;
}

coap_response_t lwm2m_dm_response(coap_session_t *s, const coap_pdu_t *sent, const coap_pdu_t *recv,
                                  const coap_mid_t mid)
{
  struct coap_engine *e = coap_get_app_data(coap_session_get_context(s));
  coap_bin_const_t tok = coap_pdu_get_token(recv);
  struct lwm2m_reg *r;
  int ok = COAP_RESPONSE_CLASS(coap_pdu_get_code(recv)) == 2;
  int64_t now = mono_ms();

  (void)sent;
  (void)mid;
  if (e == NULL || e->lw == NULL || tok.length != LWM2M_TOKEN_LEN ||
      (r = lwm2m_reg_by_id(e->lw, get32(tok.s))) == NULL)
    return COAP_RESPONSE_FAIL; /* a Reset: nobody waits for it */
  r->heard = now;
  lwm2m_due_touch(e->lw, r);
  if (r->busy && memcmp(tok.s, r->tok, LWM2M_TOKEN_LEN) == 0) {
    /* the answer to the request out */
    struct lwm2m_op *op = &r->cur;
    r->busy = 0;
    if (other_format(e, r, coap_pdu_get_code(recv)) && send_cur(e, r, now) == 0)
      return COAP_RESPONSE_OK; /* the same request in the next format */
    atomic_fetch_add(ok ? &lwm2m_stats.requests_ok : &lwm2m_stats.requests_error, 1);
    if (op->kind == OP_PUSH)
      lwm2m_push_answer(e, r, recv);
    else if (ok && (op->kind == OP_READ || op->kind == OP_OBSERVE))
      took_value(e, r, op->obj, op->res, recv);
    else if (op->kind == OP_EXECUTE && op->obj == 5 && op->res == 2) {
      if (ok) {
        r->executed = 1;
        lwm2m_report(e, r, "START", -1);
      } else {
        delivery_lwm2m_event(e->fleet, r->device, "lwm2m_error", "Execute /5/0/2 refused");
      }
    } else if (op->kind == OP_ATTRS && !ok) {
      /* not fatal: the device notifies on its own terms */
      char detail[80];
      snprintf(detail, sizeof(detail), "Write-Attributes /5/0/%u refused", op->res);
      delivery_lwm2m_event(e->fleet, r->device, "lwm2m_error", detail);
    } else if (op->kind == OP_WRITE && !ok) {
      /* a device that refuses our Package URI cannot take this offer */
      delivery_lwm2m_event(e->fleet, r->device, "lwm2m_error", "Write /5/0/1 refused");
      lwm2m_report(e, r, "DOWNLOADED", 705);
      r->url[0] = '\0';
    }
    return COAP_RESPONSE_OK;
  }
  if (memcmp(tok.s, r->tok_state, LWM2M_TOKEN_LEN) == 0 ||
      memcmp(tok.s, r->tok_result, LWM2M_TOKEN_LEN) == 0) {
    atomic_fetch_add(&lwm2m_stats.notifications, 1);
    if (ok)
      took_value(e, r, 5, memcmp(tok.s, r->tok_state, LWM2M_TOKEN_LEN) == 0 ? 3 : 5, recv);
    return COAP_RESPONSE_OK;
  }
  return COAP_RESPONSE_FAIL;
}

void lwm2m_dm_nack(coap_session_t *s, const coap_pdu_t *sent, const coap_nack_reason_t reason,
                   const coap_mid_t mid)
{
  struct coap_engine *e = coap_get_app_data(coap_session_get_context(s));
  coap_bin_const_t tok;
  struct lwm2m_reg *r;

  (void)mid;
  if (sent == NULL || e == NULL || e->lw == NULL)
    return;
  tok = coap_pdu_get_token(sent);
  if (tok.length != LWM2M_TOKEN_LEN || (r = lwm2m_reg_by_id(e->lw, get32(tok.s))) == NULL)
    return;
  if (r->busy && memcmp(tok.s, r->tok, LWM2M_TOKEN_LEN) == 0) {
    r->busy = 0;
    lwm2m_due_touch(e->lw, r);
    if ((r->queue || r->cur.kind == OP_PUSH) && reason == COAP_NACK_TOO_MANY_RETRIES) {
      /* it slept through them: again at its next wake; a push's block
       * again (up to LWM2M_RETRIES times), where the acknowledgements
       * stopped */
      r->resend = 1;
      return;
    }
    atomic_fetch_add(
        reason == COAP_NACK_RST ? &lwm2m_stats.requests_error : &lwm2m_stats.requests_timeout, 1);
  }
}
