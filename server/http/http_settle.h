/* http_settle.h: what of each HTTP response reached the device, settled
 * with TCP (net/settle.h) on the connection's own socket: no second
 * descriptor while libmicrohttpd holds the connection. A response whose
 * bytes TCP has not all seen acknowledged when libmicrohttpd is done with
 * it waits here, checked at every tick, until every byte is acknowledged,
 * the connection is over, or a deadline. Only when libmicrohttpd closes a
 * connection with bytes still unacknowledged does the meter keep the
 * socket (a duplicate taken as libmicrohttpd lets go of its own, so still
 * one descriptor). Kept sockets count against the front's connection
 * limit: one is kept only while there is room, and a new connection makes
 * room by settling the oldest as it stands.
 *
 * The meter owns a response's transfer from http_settle_written on, and
 * ends it (transfer_delivered, transfer_end) once settled. A response
 * written whole over plain HTTP is measured at a later request of its
 * connection, together with up to HTTP_SETTLE_BATCH-1 more: the client has
 * read them by then, and one TCP_INFO saying everything written is
 * acknowledged settles them all; else (or when no request comes: at the
 * tick, or the close) each by bounds from where what was written ends
 * (measure_batch in http_settle.c). Over TLS a response is measured when
 * written.
 *
 * Connection economics: the meter sees every connection from libmicrohttpd's
 * STARTED to CLOSED, so it also keeps what libmicrohttpd cannot: a
 * deadline for every request's headers (a keep-alive connection's later
 * request from its first bytes, seen in TCP's received count), caps on the
 * connections still sending their first request's headers, per address
 * and overall (a new one makes room by ending the oldest, unless that one
 * is younger than a second; else the new one is refused). A connection over the limit is
 * refused at once (503 in plain HTTP), never left in the listen queue. */
#ifndef DFOTAD_HTTP_SETTLE_H
#define DFOTAD_HTTP_SETTLE_H

#include <microhttpd.h>
#include <stdint.h>

#include "../../fleet/delivery.h"

struct http_settle;

struct http_settle_conf {
  unsigned connection_limit; /* libmicrohttpd's connections and kept sockets together */
  unsigned header_timeout;   /* seconds for a request's headers, 0: none (the first
                                request: from the connection; a later one: from its
                                first bytes) */
  unsigned header_limit;     /* connections in their header phase, 0: no cap */
  unsigned header_per_ip;    /* ... from one address, 0: no cap */
  int tls;                   /* the sockets speak TLS: refusals cannot answer */
  unsigned send_lowat;       /* TCP_NOTSENT_LOWAT of each connection, 0: none */
};

/* Figures for the log (the core counts them too, for /metrics: delivery_count). */
struct http_settle_stats {
  unsigned open, kept, in_header;    /* now */
  unsigned long long refused;        /* connections refused: no room */
  unsigned long long kept_closed;    /* kept sockets settled early for room */
  unsigned long long header_evicted; /* header phases ended for a newer one */
  unsigned long long header_timeouts;
};

struct http_settle *http_settle_new(const struct http_settle_conf *conf);
/* Settles everything now (as it stands) and frees the meter. */
void http_settle_free(struct http_settle *s);

/* libmicrohttpd's connection notifications (MHD_OPTION_NOTIFY_CONNECTION). */
void http_settle_opened(struct http_settle *s, struct MHD_Connection *c, void **socket_context);
void http_settle_closed(struct http_settle *s, struct MHD_Connection *c, void **socket_context);

/* The request handler's first call of a request: c has sent its headers
 * and leaves the header phase (cheap when it already did). download: a
 * GET or HEAD of a package (else the responses before are settled now:
 * what a check-in or report says comes after what was downloaded). -1: c
 * is being ended (refused, or too slow), the handler answers MHD_NO. */
int http_settle_headers_done(struct http_settle *s, struct MHD_Connection *c, int download);

/* The peer's address of c as text, formatted once for the connection
 * (NULL: unknown). */
const char *http_settle_peer(struct MHD_Connection *c);

/* A request of c ended with no response given to the meter (not a GET
 * download): until its next request's headers, c is between requests
 * (the header deadline of a later request). http_settle_written does the
 * same for a download. */
void http_settle_request_done(struct http_settle *s, struct MHD_Connection *c);

/* A response of len body bytes from start is queued on c. */
void http_settle_begin(struct http_settle *s, struct MHD_Connection *c, struct transfer *tr,
                       uint64_t start, uint64_t len, enum piece kind);
/* It could not be queued after all (the caller keeps the transfer). */
void http_settle_abandon(struct http_settle *s, struct MHD_Connection *c);
/* libmicrohttpd is done with it: ok, every byte is in the kernel; else it
 * was cut. The meter takes the transfer (the same as at begin, with the
 * same piece, for the case the meter could not measure it). */
void http_settle_written(struct http_settle *s, struct MHD_Connection *c, int ok,
                         struct transfer *tr, uint64_t start, uint64_t len, enum piece kind);

/* Settles what TCP has settled (force: everything, as it stands). */
void http_settle_tick(struct http_settle *s, int force);
/* Responses waiting: unsettled, or in a keep-alive batch not measured yet
 * (a retiring listener is busy until they settle). */
int http_settle_pending(struct http_settle *s);

#endif
