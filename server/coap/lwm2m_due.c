/* lwm2m_due.c: when each registration next needs the engine's attention,
 * in a binary min-heap (see lwm2m.h).
 *
 * Why: lwm2m_tick walked every registration each 20 ms (TICK_MS) to find
 * the few with something to do: 9 to 12% of the CoAP thread with 10,000
 * registered devices (BENCHMARKS.md). A registration's next moment is
 * known (its expiry, a request's give-up time, its next check-in, a held
 * Update's next ask, or now when something waits to go out), so a tick
 * takes only those due, O(log n) each. What changes a registration from
 * outside a tick (a datagram from it, a commit, a wake) calls
 * lwm2m_due_touch, which makes it due at once. */
#include "autoconfig.h"

#include <stdlib.h>

#include "lwm2m.h"

static void put(struct lwm2m_server *lw, int i, struct lwm2m_reg *r)
{
  lw->heap[i] = r;
  r->hidx = i;
}

static void up(struct lwm2m_server *lw, int i)
{
  struct lwm2m_reg *r = lw->heap[i];

  while (i > 0 && lw->heap[(i - 1) / 2]->due > r->due) {
    put(lw, i, lw->heap[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  put(lw, i, r);
}

static void down(struct lwm2m_server *lw, int i)
{
  struct lwm2m_reg *r = lw->heap[i];

  for (;;) {
    int c = 2 * i + 1;
    if (c >= lw->hn)
      break;
    if (c + 1 < lw->hn && lw->heap[c + 1]->due < lw->heap[c]->due)
      c++;
    if (lw->heap[c]->due >= r->due)
      break;
    put(lw, i, lw->heap[c]);
    i = c;
  }
  put(lw, i, r);
}

int lwm2m_due_set(struct lwm2m_server *lw, struct lwm2m_reg *r, int64_t due)
{
  if (r->hidx < 0) {
    if (lw->hn == lw->hcap) {
      int cap = lw->hcap ? lw->hcap * 2 : 1024;
      struct lwm2m_reg **h = realloc(lw->heap, (size_t)cap * sizeof(*h));
      if (h == NULL)
        return -1;
      lw->heap = h;
      lw->hcap = cap;
    }
    r->due = due;
    put(lw, lw->hn++, r);
    up(lw, r->hidx);
    return 0;
  }
  if (due < r->due) {
    r->due = due;
    up(lw, r->hidx);
  } else if (due > r->due) {
    r->due = due;
    down(lw, r->hidx);
  }
  return 0;
}

void lwm2m_due_touch(struct lwm2m_server *lw, struct lwm2m_reg *r)
{
  if (r->hidx >= 0 && r->due > 0)
    lwm2m_due_set(lw, r, 0);
}

void lwm2m_due_remove(struct lwm2m_server *lw, struct lwm2m_reg *r)
{
  int i = r->hidx;
  struct lwm2m_reg *last;

  if (i < 0)
    return;
  r->hidx = -1;
  if (--lw->hn == i)
    return;
  last = lw->heap[lw->hn];
  put(lw, i, last); /* the last one fills the hole, then finds its place */
  up(lw, i);
  down(lw, last->hidx);
}

struct lwm2m_reg *lwm2m_due_next(struct lwm2m_server *lw, int64_t now)
{
  return lw->hn > 0 && lw->heap[0]->due <= now ? lw->heap[0] : NULL;
}
