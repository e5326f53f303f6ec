/* coap_xfer.h: the CoAP front's downloads in progress. A download is a
 * (client address and port, resource) pair with a delivery-core transfer
 * behind it; blocks of it may come in any order and at any time. The table
 * is bounded (COAP_XFER_MAX, least recently used first out) and forgets a
 * download idle for COAP_XFER_IDLE_MS. Only the front's thread uses it.
 *
 * A download offered to a device is keyed by its token alone: the token
 * names the device, which may come back from another port or address (a
 * NAT binding renewed, a new data call) to finish it. An anonymous
 * package download is keyed by the client's address and port.
 *
 * Accounting, per RFC 7959's request/response rhythm: a block counts as
 * received once the client asks for a later one (it could not have gone
 * on without it), the last block once it has been sent (the device's
 * COAPEND,0 report confirms it); a step back to an earlier block after a
 * pause, or going on from another address or port after a pause, is a
 * resume; a repeated message id is a duplicate, answered but
 * not counted again. */
#ifndef DFOTAD_COAP_XFER_H
#define DFOTAD_COAP_XFER_H

#include <stddef.h>
#include <stdint.h>

#include "../../fleet/delivery.h"
#include "../../util/limits.h"
#include "coap_limits.h"

#define COAP_XFER_KEY 160

struct coap_xfer {
  char key[COAP_XFER_KEY];
  uint32_t hash;
  struct transfer *tr;
  uint64_t size;
  uint64_t high;     /* end of the furthest block served */
  uint64_t pend_off; /* the block served last, not yet known received */
  size_t pend_len;
  int pending;
  int64_t last_ms; /* monotonic time of the last request */
  char peer[80];   /* address and port of the last request */
  struct {
    int64_t at; /* 0: free */
    uint64_t off;
    uint16_t mid;
  } dup[COAP_DUP_SLOTS];
  int dup_next;
  struct coap_xfer *hnext, *prev, *next; /* bucket chain; LRU list */
};

struct coap_xfers {
  struct coap_xfer **bucket;
  size_t nbucket;
  size_t n, max;
  struct coap_xfer *head, *tail; /* most recently used first */
};

/* 0, or -1 out of memory. max: downloads kept at once. */
int coap_xfers_init(struct coap_xfers *t, size_t max);
/* Ends every download (blocks not known received are not counted). */
void coap_xfers_free(struct coap_xfers *t);

struct coap_xfer *coap_xfers_find(struct coap_xfers *t, const char *key);
/* Adds a download of tr (taken over) under key; the least recently used
 * one goes when the table is full. NULL (tr ended) when out of memory. */
struct coap_xfer *coap_xfers_add(struct coap_xfers *t, const char *key, struct transfer *tr,
                                 int64_t now);
/* Forgets downloads idle for idle_ms or more. */
void coap_xfers_expire(struct coap_xfers *t, int64_t now, int64_t idle_ms);
/* Downloads active within the last window_ms. */
size_t coap_xfers_active(const struct coap_xfers *t, int64_t now, int64_t window_ms);

/* Accounts one block [off, off + len) served to message id mid of the
 * client at peer ("addr:port"); more: not the last block. Returns 1 when
 * it is a duplicate (nothing counted). */
int coap_xfer_block(struct coap_xfer *x, const char *peer, uint16_t mid, uint64_t off, size_t len,
                    int more, int64_t now);

#endif
