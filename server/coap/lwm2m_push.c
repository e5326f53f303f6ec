/* lwm2m_push.c: the package pushed into a device's /5/0/0 (Package), block
 * by block (RFC 7959 Block1), for a device that takes firmware only that
 * way: /5/0/9 (Firmware Update Delivery Method) 1, push only. A device
 * that takes both (2) or only pull (0) gets the Package URI (lwm2m_offer.c).
 *
 * One block is in flight at a time, as a confirmable PUT the device
 * acknowledges with 2.31 Continue (2.04 Changed for the last); it goes out
 * through the device's request queue like any other request (lwm2m_dm.c),
 * so a queue-mode device is only sent to while it listens, and a block
 * it slept through goes out again at its next wake: the push resumes
 * where the device's acknowledgements stopped. The block size starts at
 * LWM2M_PUSH_SZX (what fits the session's PDU) and follows the device's:
 * a smaller SZX in its Block1 answer is used from the next block on, and a
 * 4.13 (Request Entity Too Large) has the same block sent again, smaller.
 * A 4.08 (Request Entity Incomplete: the device lost what it had, a
 * reboot) starts over from the first block.
 *
 * The bytes are the package's mapping (fleet/delivery.h), copied once into
 * each datagram. Progress is what the device acknowledged, through the
 * delivery core's transfer accounting like every other front's: a block
 * counts once its acknowledgement arrives. */
#include "autoconfig.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../util/util.h"
#include "coap_msg.h"
#include "lwm2m.h"

#define PUSH_HEADROOM 64 /* header, token and options of a block's PUT */

int lwm2m_push_wanted(const struct lwm2m_reg *r) { return r->fw_delivery == 1; }

static void push_free(struct lwm2m_reg *r)
{
  if (r->push == NULL)
    return;
  if (r->push->tr != NULL)
    transfer_end(r->push->tr);
  free(r->push);
  r->push = NULL;
}

void lwm2m_push_end(struct coap_engine *e, struct lwm2m_reg *r, const char *why)
{
  char detail[128];

  if (r->push == NULL)
    return;
  if (why != NULL) {
    snprintf(detail, sizeof(detail), "%s after %llu of %llu bytes", why,
             (unsigned long long)r->push->acked, (unsigned long long)r->push->size);
    delivery_lwm2m_event(e->fleet, r->device, "lwm2m_push_end", detail);
  }
  push_free(r);
}

int lwm2m_push_start(struct coap_engine *e, struct lwm2m_reg *r, const char *url)
{
  const char *tok = strstr(url, "/f/");
  struct lwm2m_push *p;
  struct target t;
  char detail[96];

  if (tok == NULL || strlen(url) >= sizeof(r->url))
    return -1;
  lwm2m_push_end(e, r, "a new push");
  /* SECURITY: the offer must be this very device's */
  if (delivery_resolve_offer(e->fleet, tok + 3, r->device, 0, &t) != RESOLVE_OK)
    return -1;
  p = calloc(1, sizeof(*p));
  if (p == NULL || lwm2m_dm_queue(r, OP_PUSH, 5, 0, 0, NULL) < 0) {
    free(p);
    target_release(&t);
    return -1;
  }
  target_fetch(e->fleet, &t); /* the device downloads now */
  p->size = t.pkg->size;
  p->szx = LWM2M_PUSH_SZX;
  p->tr = transfer_begin(e->fleet, &t, e->proto, r->ip);
  if (p->tr == NULL) {
    free(p);
    r->nq--; /* the push just queued */
    return -1;
  }
  r->push = p;
  snprintf(r->url, sizeof(r->url), "%s", url);
  r->downloaded_told = r->executed = r->execute_due = 0;
  snprintf(detail, sizeof(detail), "/5/0/0: %llu bytes in blocks of %d",
           (unsigned long long)p->size, 16 << p->szx);
  delivery_lwm2m_event(e->fleet, r->device, "lwm2m_push", detail);
  return 0;
}

int lwm2m_push_fill(struct coap_engine *e, struct lwm2m_reg *r, coap_pdu_t *pdu)
{
  struct lwm2m_push *p = r->push;
  uint8_t b[8];
  size_t n, room = coap_session_max_pdu_size(r->s);
  uint64_t num;

  (void)e;
  if (p == NULL || p->acked >= p->size)
    return -1;
  /* the block size fits the session's PDU (DTLS takes its share) */
  while (p->szx > 0 && (size_t)(16 << p->szx) + PUSH_HEADROOM > room)
    p->szx--;
  num = p->acked >> (4 + p->szx);
  if (num > 0xFFFFF)
    return -1; /* past what Block1's NUM can say at this size */
  p->len = (size_t)(p->size - p->acked < (uint64_t)(16 << p->szx) ? p->size - p->acked
                                                                  : (uint64_t)(16 << p->szx));
  p->off = p->acked;
  n = coap_uint_encode(COAP_FMT_OCTETS, b);
  coap_add_option(pdu, COAP_OPTION_CONTENT_FORMAT, n, b);
  n = coap_block_encode((uint32_t)num, p->off + p->len < p->size, p->szx, b);
  coap_add_option(pdu, COAP_OPTION_BLOCK1, n, b);
  if (p->off == 0) {
    n = coap_uint_encode(p->size, b);
    coap_add_option(pdu, COAP_OPTION_SIZE1, n, b);
  }
  /* copied once, into the datagram; the package is never copied whole */
  if (!coap_add_data(pdu, p->len, transfer_package(p->tr)->map + p->off))
    return -1;
  if (!p->sent_once || p->off != p->last_off)
    transfer_request(p->tr); /* a block asked for: counted once, not per send */
  p->sent_once = 1;
  p->last_off = p->off;
  return 0;
}

/* The Block1 option of an answer: its SZX, or -1. */
static int answer_szx(const coap_pdu_t *recv)
{
  coap_opt_iterator_t it;
  coap_opt_t *o = coap_check_option(recv, COAP_OPTION_BLOCK1, &it);

  if (o == NULL)
    return -1;
  return (int)(coap_decode_var_bytes(coap_opt_value(o), coap_opt_length(o)) & 7u);
}

void lwm2m_push_answer(struct coap_engine *e, struct lwm2m_reg *r, const coap_pdu_t *recv)
{
  struct lwm2m_push *p = r->push;
  coap_pdu_code_t code = coap_pdu_get_code(recv);
  int szx = answer_szx(recv);
  char detail[96];

  if (p == NULL)
    return;
  if (COAP_RESPONSE_CLASS(code) == 2) {
    /* acknowledged: counted, and the next block goes out (smaller when
     * the device said so, RFC 7959 2.3) */
    transfer_delivered(p->tr, p->off, p->len, 1, PIECE_BLOCK);
    p->acked = p->off + p->len;
    if (szx >= 0 && szx < p->szx)
      p->szx = szx;
    if (p->acked >= p->size) {
      delivery_lwm2m_event(e->fleet, r->device, "lwm2m_pushed", "/5/0/0: every block acknowledged");
      push_free(r); /* the device's State 2 (Downloaded) follows */
      return;
    }
    r->push_next = 1;
    return;
  }
  if (code == COAP_RESPONSE_CODE(413) && (szx >= 0 ? szx < p->szx : p->szx > 0)) {
    p->szx = szx >= 0 ? szx : p->szx - 1;
    snprintf(detail, sizeof(detail), "/5/0/0: 4.13, blocks of %d from here", 16 << p->szx);
    delivery_lwm2m_event(e->fleet, r->device, "lwm2m_push_size", detail);
    r->push_next = 1;
    return;
  }
  if (code == COAP_RESPONSE_CODE(408) && p->acked > 0) {
    /* the device lost what it had: from the first block again */
    delivery_lwm2m_event(e->fleet, r->device, "lwm2m_push_restart",
                         "/5/0/0: 4.08 Request Entity Incomplete, from the first block");
    transfer_resumed(p->tr, 0);
    p->acked = 0;
    r->push_next = 1;
    return;
  }
  /* refused: the offer cannot go this way; retried as the rollout allows
   * (711: connection lost during download, retryable) */
  snprintf(detail, sizeof(detail), "/5/0/0 block at %llu refused: %d.%02d",
           (unsigned long long)p->off, COAP_RESPONSE_CLASS(code), code & 0x1F);
  delivery_lwm2m_event(e->fleet, r->device, "lwm2m_error", detail);
  lwm2m_push_end(e, r, NULL);
  lwm2m_report(e, r, "DOWNLOADED", 711);
  r->url[0] = '\0';
}
