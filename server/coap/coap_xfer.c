/* coap_xfer.c: the CoAP front's downloads in progress (see coap_xfer.h). */
#include "autoconfig.h"

#include "coap_xfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../util/util.h"

int coap_xfers_init(struct coap_xfers *t, size_t max)
{
  memset(t, 0, sizeof(*t));
  t->max = max;
  t->nbucket = 1024;
  while (t->nbucket < max && t->nbucket < (1u << 20))
    t->nbucket <<= 1;
  t->bucket = calloc(t->nbucket, sizeof(*t->bucket));
  return t->bucket ? 0 : -1;
}

static void lru_unlink(struct coap_xfers *t, struct coap_xfer *x)
{
  if (x->prev)
    x->prev->next = x->next;
  else
    t->head = x->next;
  if (x->next)
    x->next->prev = x->prev;
  else
    t->tail = x->prev;
  x->prev = x->next = NULL;
}

static void lru_push(struct coap_xfers *t, struct coap_xfer *x)
{
  x->prev = NULL;
  x->next = t->head;
  if (t->head)
    t->head->prev = x;
  t->head = x;
  if (t->tail == NULL)
    t->tail = x;
}

/* Ends a download: a block served but not known received is not counted
 * (the client never asked past it). */
static void drop(struct coap_xfers *t, struct coap_xfer *x)
{
  struct coap_xfer **pp = &t->bucket[x->hash & (t->nbucket - 1)];

  while (*pp != x)
    pp = &(*pp)->hnext;
  *pp = x->hnext;
  lru_unlink(t, x);
  t->n--;
  transfer_end(x->tr);
  free(x);
}

void coap_xfers_free(struct coap_xfers *t)
{
  while (t->head)
    drop(t, t->head);
  free(t->bucket);
  t->bucket = NULL;
}

struct coap_xfer *coap_xfers_find(struct coap_xfers *t, const char *key)
{
  uint32_t h = hash_str(key);

  for (struct coap_xfer *x = t->bucket[h & (t->nbucket - 1)]; x; x = x->hnext)
    if (x->hash == h && strcmp(x->key, key) == 0) {
      lru_unlink(t, x);
      lru_push(t, x);
      return x;
    }
  return NULL;
}

struct coap_xfer *coap_xfers_add(struct coap_xfers *t, const char *key, struct transfer *tr,
                                 int64_t now)
{
  struct coap_xfer *x;
  size_t b;

  /* SECURITY: bounded; a flood of new downloads pushes out the idlest */
  if (t->n >= t->max && t->tail)
    drop(t, t->tail);
  x = calloc(1, sizeof(*x));
  if (x == NULL) {
    transfer_end(tr);
    return NULL;
  }
  snprintf(x->key, sizeof(x->key), "%s", key);
  x->hash = hash_str(x->key);
  x->tr = tr;
  x->size = transfer_package(tr)->size;
  x->last_ms = now;
  b = x->hash & (t->nbucket - 1);
  x->hnext = t->bucket[b];
  t->bucket[b] = x;
  lru_push(t, x);
  t->n++;
  return x;
}

void coap_xfers_expire(struct coap_xfers *t, int64_t now, int64_t idle_ms)
{
  while (t->tail && now - t->tail->last_ms >= idle_ms)
    drop(t, t->tail);
}

size_t coap_xfers_active(const struct coap_xfers *t, int64_t now, int64_t window_ms)
{
  size_t n = 0;

  for (const struct coap_xfer *x = t->head; x && now - x->last_ms < window_ms; x = x->next)
    n++;
  return n;
}

static int is_duplicate(struct coap_xfer *x, uint16_t mid, uint64_t off, int64_t now)
{
  for (int i = 0; i < COAP_DUP_SLOTS; i++)
    if (x->dup[i].at != 0 && x->dup[i].mid == mid && x->dup[i].off == off &&
        now - x->dup[i].at < COAP_DUP_WINDOW_MS)
      return 1;
  x->dup[x->dup_next].at = now;
  x->dup[x->dup_next].mid = mid;
  x->dup[x->dup_next].off = off;
  x->dup_next = (x->dup_next + 1) % COAP_DUP_SLOTS;
  return 0;
}

int coap_xfer_block(struct coap_xfer *x, const char *peer, uint16_t mid, uint64_t off, size_t len,
                    int more, int64_t now)
{
  int64_t pause = now - x->last_ms;
  int first = x->high == 0 && !x->pending;
  /* the block asked for last, asked again: a retransmission, not a step back */
  int again = x->pending && off == x->pend_off;
  int paused = !first && pause >= COAP_RESUME_PAUSE_MS;
  int back = paused && !again && off < x->high;
  int moved = paused && strcmp(peer, x->peer) != 0;

  /* message ids are the client's per session: a duplicate is the same id
   * from the same address and port, for the same block */
  if (strcmp(peer, x->peer) == 0 && is_duplicate(x, mid, off, now))
    return 1;
  if (strcmp(peer, x->peer) != 0) {
    memset(x->dup, 0, sizeof(x->dup));
    snprintf(x->peer, sizeof(x->peer), "%s", peer);
    is_duplicate(x, mid, off, now);
  }
  x->last_ms = now;
  if (x->pending && off > x->pend_off) {
    /* asking past a block proves it arrived */
    transfer_delivered(x->tr, x->pend_off, x->pend_len, 1, PIECE_BLOCK);
    x->pending = 0;
  }
  /* back to an earlier block after a pause (the device starts again from
   * where it knows it is), on from another address or port after a pause
   * (a new session), or a download that starts past the beginning: a
   * resume */
  if (back || moved || (first && off > 0))
    transfer_resumed(x->tr, off);
  transfer_request(x->tr);
  if (!more) {
    transfer_delivered(x->tr, off, len, 1, PIECE_BLOCK);
    x->pending = 0;
  } else {
    /* replaces an earlier block still pending (a step back): that one is
     * not known to have arrived */
    x->pend_off = off;
    x->pend_len = len;
    x->pending = 1;
  }
  if (off + len > x->high)
    x->high = off + len;
  return 0;
}
