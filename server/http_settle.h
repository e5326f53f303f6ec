/* http_settle.h: what of each HTTP response reached the device, settled
 * with TCP (net/settle.h) on the connection's own socket: no second
 * descriptor while libmicrohttpd holds the connection. A response whose
 * bytes TCP has not all seen acknowledged when libmicrohttpd is done with
 * it waits here, checked at every tick, until every byte is acknowledged,
 * the connection is over, or a deadline. Only when libmicrohttpd closes a
 * connection with bytes still unacknowledged does the meter keep the
 * socket (a duplicate taken as libmicrohttpd lets go of its own, so still
 * one descriptor), at most max_lingering of them; beyond that the count is
 * taken as it stands.
 *
 * The meter owns a response's transfer from http_settle_written on, and
 * ends it (transfer_delivered, transfer_end) once settled. */
#ifndef DFOTAD_HTTP_SETTLE_H
#define DFOTAD_HTTP_SETTLE_H

#include <microhttpd.h>
#include <stdint.h>

#include "../fleet/delivery.h"

struct http_settle;

struct http_settle *http_settle_new(unsigned max_lingering);
/* Settles everything now (as it stands) and frees the meter. */
void http_settle_free(struct http_settle *s);

/* libmicrohttpd's connection notifications (MHD_OPTION_NOTIFY_CONNECTION). */
void http_settle_opened(struct http_settle *s, struct MHD_Connection *c, void **socket_context);
void http_settle_closed(struct http_settle *s, struct MHD_Connection *c, void **socket_context);

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
/* Responses waiting. */
int http_settle_pending(struct http_settle *s);

#endif
