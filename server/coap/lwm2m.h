/* lwm2m.h: the LwM2M server on a CoAP(S) engine ([coap] lwm2m = yes):
 * lwm2m_rd.c is the registration interface (Register, Update,
 * De-register, lifetime expiry), lwm2m_dm.c the device management dfotad
 * does over the device's own session (Read, Write, Execute, Observe of
 * /3 and /5, one request at a time per device, queue mode), lwm2m_offer.c
 * the campaign steps it takes through the delivery core (check-ins for an
 * offer, reports of what /5 says), lwm2m_push.c the package pushed into
 * /5/0/0 block by block.
 *
 * Threads: everything here runs on the engine's thread (see coap_int.h). */
#ifndef DFOTAD_LWM2M_H
#define DFOTAD_LWM2M_H

#include "../../fleet/lwm2m.h"
#include "coap_int.h"
#include "lwm2m_link.h"

#define LWM2M_LOC_LEN 10  /* the location path segment: base32 */
#define LWM2M_QUEUE_MAX 8 /* requests waiting per device */
#define LWM2M_URL_MAX 720 /* a Package URI we write */
#define LWM2M_TOKEN_LEN 8
#define LWM2M_RETRIES 3 /* a request missed by a sleeping device: sent again at as many wakes */

enum lwm2m_op_kind { OP_READ = 0, OP_WRITE, OP_EXECUTE, OP_OBSERVE, OP_ATTRS, OP_PUSH };
/* a push's first block size, 16 << SZX: 1024 (less when the session's PDU
 * or the device wants less) */
#define LWM2M_PUSH_SZX 6
#define LWM2M_PMIN 1 /* s: the least between two notifications of State, Update Result */

struct lwm2m_op {
  enum lwm2m_op_kind kind;
  uint16_t obj, inst, res;
  char *payload; /* a write's text, malloc'd; NULL none */
};

/* A push of the package into /5/0/0 (lwm2m_push.c). */
struct lwm2m_push {
  struct transfer *tr; /* the delivery core's accounting; holds the package */
  uint64_t size;
  uint64_t acked;    /* bytes the device acknowledged: the next block starts here */
  uint64_t off;      /* the block out */
  uint64_t last_off; /* the block sent last (a resend is not a new request) */
  size_t len;
  int szx; /* block size in use, 16 << szx */
  int sent_once;
};

struct lwm2m_reg {
  uint32_t id; /* tokens start with it */
  char loc[LWM2M_LOC_LEN + 1];
  char ep[LWM2M_EP_MAX + 1], device[DEVICE_ID_MAX + 1];
  int drive; /* trigger = lwm2m */
  char ver[8], binding[8];
  int queue; /* queue mode: requests only while it is awake */
  long lifetime;
  int64_t expires, heard;            /* monotonic ms */
  int64_t registered_at, updated_at; /* wall ms */
  struct lwm2m_links links;
  coap_session_t *s; /* referenced while registered */
  char ip[64];

  /* device management: one request out at a time */
  struct lwm2m_op q[LWM2M_QUEUE_MAX];
  int nq;
  struct lwm2m_op cur;
  int busy;
  uint8_t tok[LWM2M_TOKEN_LEN];
  int64_t sent_at;
  int wfmt, rfmt; /* the write and read formats the device takes (lwm2m_dm.c), by index */
  int tries;      /* times cur went out unanswered across a queue-mode device's sleeps */
  int resend;     /* cur is to go out again at the device's next wake */
  uint32_t seq;
  uint8_t tok_state[LWM2M_TOKEN_LEN], tok_result[LWM2M_TOKEN_LEN]; /* observations */

  /* what the device said */
  char version[64]; /* /3/0/3, "" unknown */
  int fw_state, fw_result, fw_protocols, fw_delivery;
  int version_told; /* the version went to the core */

  /* the campaign */
  char url[LWM2M_URL_MAX]; /* the Package URI written for the current offer, "" none */
  int downloaded_told, executed;
  int execute_due;    /* downloaded: Update waits for the rollout's leave (running, window) */
  int execute_held;   /* ... and the wait was said once (an event) */
  int64_t execute_at; /* monotonic ms of the next ask */
  int64_t next_poll;  /* monotonic ms of the next check-in for an offer */

  struct lwm2m_push *push; /* the push under way, or NULL */
  int push_next;           /* its next block is to go out */

  int64_t due; /* monotonic ms: when a tick next steps it (lwm2m_due.c) */
  int hidx;    /* its place in the due heap, -1 none */

  int view_due;                /* in lw->views */
  struct lwm2m_reg *next_view; /* ... */
  struct lwm2m_reg *next_loc, *next_id, *next_dev;
};

struct lwm2m_commit; /* lwm2m_dm.c */

struct lwm2m_server {
  struct lwm2m_reg **by_loc, **by_id, **by_dev;
  struct lwm2m_commit *commits; /* asked of the writer, their follow-up not yet done */
  size_t nb;                    /* buckets, a power of two */
  int n;
  uint32_t next_id;
  int64_t last_tick;
  uint64_t wake_cursor;    /* read of the fleet's wake list (fleet/lwm2m.h) */
  int polls_left;          /* check-ins this tick may still make (a woken wave is spread) */
  int steps_left;          /* registrations this tick may still step */
  int sends_left;          /* requests this slice may still send */
  int more;                /* the tick's last slice ran out of time: the next goes on */
  struct lwm2m_reg **heap; /* by due time (lwm2m_due.c) */
  struct lwm2m_reg *views; /* Updated: their view not yet handed to the fleet */
  int hn, hcap;
};

/* lwm2m_due.c: the registrations by the time they are next due. */
/* Puts r in (or moves it to) due; -1 when out of memory (r not in). */
int lwm2m_due_set(struct lwm2m_server *lw, struct lwm2m_reg *r, int64_t due);
/* Something about r changed outside a tick: due at the next tick. */
void lwm2m_due_touch(struct lwm2m_server *lw, struct lwm2m_reg *r);
void lwm2m_due_remove(struct lwm2m_server *lw, struct lwm2m_reg *r);
/* The registration due first if it is due by now, else NULL. */
struct lwm2m_reg *lwm2m_due_next(struct lwm2m_server *lw, int64_t now);

/* lwm2m_rd.c */
int lwm2m_init(struct coap_engine *e);
/* Releases every registration (before the context goes). */
void lwm2m_free(struct coap_engine *e);
/* A request to /rd...: answered, 1. Anything else: 0, untouched. */
int lwm2m_rd_handle(struct coap_engine *e, coap_session_t *s, const coap_pdu_t *req,
                    coap_pdu_t *resp);
/* Expiries and the device management's next steps, in a slice of time;
 * 1 when work is left for the next call (the engine calls again as soon
 * as it answered the datagrams that came meanwhile), else 0. */
int lwm2m_tick(struct coap_engine *e, int64_t now);
/* Milliseconds until a tick has a registration to step, -1 for none: the
 * engine waits no longer (a woken wave's check-ins beyond a tick's share
 * go at the next tick, not at the next datagram). */
int lwm2m_wait_ms(const struct coap_engine *e, int64_t now);
struct lwm2m_reg *lwm2m_reg_by_id(struct lwm2m_server *lw, uint32_t id);
struct lwm2m_reg *lwm2m_reg_by_dev(struct lwm2m_server *lw, const char *device);
void lwm2m_reg_view(struct coap_engine *e, struct lwm2m_reg *r);

/* lwm2m_dm.c */
/* The new registration's first reads and observations. */
void lwm2m_dm_start(struct coap_engine *e, struct lwm2m_reg *r);
/* Queues a request; -1 when the device's queue is full. */
int lwm2m_dm_queue(struct lwm2m_reg *r, enum lwm2m_op_kind kind, uint16_t obj, uint16_t inst,
                   uint16_t res, const char *payload);
/* Sends what is due, polls the core for an offer. */
void lwm2m_dm_step(struct coap_engine *e, struct lwm2m_reg *r, int64_t now);
/* When r next needs a step (at the latest its expiry). */
int64_t lwm2m_dm_due(const struct coap_engine *e, const struct lwm2m_reg *r, int64_t now);
void lwm2m_dm_clear(struct lwm2m_reg *r);
/* A queue-mode device woke (its registration's Update, on session s). */
void lwm2m_dm_woke(struct lwm2m_reg *r, int64_t now);
/* The session a registration now uses (a registration, or an Update from
 * a new address). */
void lwm2m_dm_session(struct lwm2m_reg *r);
/* The follow-up of the commits the writer finished (a Package URI written
 * once the offer is durable), at most max of them (0: no limit); at the
 * engine's end (wait: 1) every commit asked for is waited for first.
 * Returns how many finished commits are left for the next call. */
int lwm2m_dm_commits(struct coap_engine *e, int wait, int max);
/* lwm2m_offer.c: the campaign */
/* A report to the core, as the device's host would make it (code < 0:
 * none). */
void lwm2m_report(struct coap_engine *e, struct lwm2m_reg *r, const char *stage, long code);
/* The /5 values changed (a read or a notification). */
void lwm2m_fw_changed(struct coap_engine *e, struct lwm2m_reg *r);
/* Asks the core whether the device has an offer, as its host's check-in
 * would. */
void lwm2m_poll_offer(struct coap_engine *e, struct lwm2m_reg *r, int64_t now);
/* The device downloaded: Update (/5/0/2) once the rollout lets it. */
void lwm2m_execute_when_allowed(struct coap_engine *e, struct lwm2m_reg *r, int64_t now);
/* Whether the offer behind r->url still stands. */
int lwm2m_offer_stands(struct coap_engine *e, struct lwm2m_reg *r);
/* The offer is gone: an empty Package URI resets /5. */
void lwm2m_cancel_offer(struct coap_engine *e, struct lwm2m_reg *r);
/* lwm2m_push.c */
/* Whether offers go to r as a push into /5/0/0 (its /5/0/9 says push only). */
int lwm2m_push_wanted(const struct lwm2m_reg *r);
/* Starts pushing the package of the offer at url (queued as r's next
 * request); 0, or -1 when the offer is not r's or out of memory. */
int lwm2m_push_start(struct coap_engine *e, struct lwm2m_reg *r, const char *url);
/* The block due into pdu (Content-Format, Block1, Size1, payload); 0 or -1. */
int lwm2m_push_fill(struct coap_engine *e, struct lwm2m_reg *r, coap_pdu_t *pdu);
/* The device answered the block out. */
void lwm2m_push_answer(struct coap_engine *e, struct lwm2m_reg *r, const coap_pdu_t *recv);
/* Ends r's push, if any (why: said as an event; NULL: silently, e unused). */
void lwm2m_push_end(struct coap_engine *e, struct lwm2m_reg *r, const char *why);
/* Whether some commit's follow-up waits (the engine polls sooner). */
int lwm2m_commits_pending(const struct coap_engine *e);
/* libcoap's response and NACK handlers (registered by lwm2m_init). */
coap_response_t lwm2m_dm_response(coap_session_t *s, const coap_pdu_t *sent, const coap_pdu_t *recv,
                                  const coap_mid_t mid);
void lwm2m_dm_nack(coap_session_t *s, const coap_pdu_t *sent, const coap_nack_reason_t reason,
                   const coap_mid_t mid);

#endif
