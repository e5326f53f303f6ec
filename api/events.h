/* events.h: GET /api/v1/events, the fleet's live events (fleet/feed.h) as
 * Server-Sent Events, filtered by rollout=, device= and kind=, resumed from
 * Last-Event-ID. A stream that has nothing to send is suspended in
 * libmicrohttpd (no thread, no busy loop); the hub's one thread resumes it
 * when an event arrives, when a stats tick or a keep-alive is due, and when
 * the listener drains or stops. */
#ifndef DFOTAD_EVENTS_H
#define DFOTAD_EVENTS_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

#define SSE_MAX_SUBSCRIBERS 16
#define SSE_RETRY_AFTER_S 5    /* the Retry-After of the 503 past SSE_MAX_SUBSCRIBERS */
#define SSE_STATS_MS 2000      /* a "stats" event (transfers by protocol) this often */
#define SSE_KEEPALIVE_MS 15000 /* a comment line when nothing else was sent */

struct sse_sub;

struct sse_hub {
  pthread_mutex_t mu;
  pthread_t pump;
  int started, stopping, n;
  struct sse_sub *subs;
  const atomic_int *draining; /* set: every stream ends (clients reconnect) */
};

/* 0, or -1 (no thread). */
int sse_hub_start(struct sse_hub *h, const atomic_int *draining);
/* Ends every stream and the thread; call before stopping the daemons
 * (libmicrohttpd must not stop with a connection suspended). */
void sse_hub_stop(struct sse_hub *h);
/* After the daemons stopped. */
void sse_hub_free(struct sse_hub *h);

/* Answers GET /api/v1/events (the caller checked the token). */
enum MHD_Result sse_handle(struct MHD_Connection *c, struct sse_hub *h);

#endif
