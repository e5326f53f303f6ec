/* settle.h: how much of what we wrote to a TCP socket reached the client.
 * A server's write ends once the kernel has the bytes, which on a fast
 * link is the whole of a small package; a client cut off then would look
 * done. TCP knows better: what it saw acknowledged. A meter is started
 * when a response (or an FTP data transfer) begins, told when everything
 * is written, and settles once TCP has every byte acknowledged, or the
 * connection is over (then what was acknowledged is what arrived).
 *
 * Bytes written include protocol overhead (headers, TLS records); the
 * meter gives payload bytes pro rata, so a transfer is complete only when
 * every byte on the wire was acknowledged, never by an estimate.
 *
 * A meter holds no descriptor: the caller passes the socket it owns. */
#ifndef DFOTAD_SETTLE_H
#define DFOTAD_SETTLE_H

#include <stdint.h>

/* Bytes of protocol framing in front of a payload, at the least (an HTTP
 * response's status line and headers, an FTP reply's line). */
#define SETTLE_HEADER_MIN 100

struct settle {
  uint64_t acked_start; /* the socket's acknowledged bytes when it began */
  uint64_t wire;        /* bytes written for it; 0 until settle_written */
  uint64_t payload;     /* payload bytes among them */
  int done;             /* all acknowledged when written */
  int cut;              /* not all of it was written: never complete */
};

/* Begins measuring what is written to fd from now on. floor: where the
 * earlier response on the same connection ended in the socket's
 * acknowledged count (settle_end), 0 for the first one. */
void settle_begin(struct settle *m, int fd, uint64_t floor);
/* It is written (in the kernel now): its size on the wire is what was
 * acknowledged since it began plus what waits in the send queue. payload:
 * its payload bytes; whole: all of it was written (else it was cut, and
 * what arrives is counted pro rata of the whole, never complete). */
void settle_written(struct settle *m, int fd, uint64_t payload, int whole);

/* settle_written(m, fd, payload, 1) for a response after which nothing
 * but our FIN may have been written (the connection shut by whoever closes
 * it): the FIN takes a sequence number, not a byte of the response. */
void settle_written_fin(struct settle *m, int fd, uint64_t payload);

/* Where what was written to fd ends now in its acknowledged count: the
 * acknowledged bytes (also in *acked) and those still in the send queue,
 * read so that an acknowledgement between the two calls never makes it
 * too small; our FIN, when sent, left out. */
uint64_t settle_written_end(int fd, uint64_t *acked);
/* A response written whole whose bytes lie within [start, end) of the
 * socket's acknowledged count, known only by those bounds (responses
 * measured together: each one's start at the latest, its end at the
 * latest). Complete once everything up to end is acknowledged; before,
 * what arrived is counted from start, so never more than arrived. */
void settle_bounded(struct settle *m, uint64_t start, uint64_t end, uint64_t payload);

enum settle_state { SETTLE_PENDING = 0, SETTLE_DONE, SETTLE_CUT };
/* Reads TCP's view now. SETTLE_DONE: every byte acknowledged;
 * SETTLE_CUT: the connection is over (reset, closed by the peer) with
 * bytes missing; SETTLE_PENDING: neither yet. *payload: the payload bytes
 * that arrived (all of them only with SETTLE_DONE). */
enum settle_state settle_check(const struct settle *m, int fd, uint64_t *payload);
/* The end position of this response in the socket's acknowledged count,
 * for the floor of the next one on the same connection. */
uint64_t settle_end(const struct settle *m);

/* What one TCP_INFO says of a socket: the bytes the peer acknowledged and
 * the bytes received from it (both counted since the connection began),
 * and whether every byte written so far is acknowledged (a response
 * written whole is then complete, exactly: no second call needed). -1:
 * unknown (all zero). */
struct settle_info {
  uint64_t acked, received;
  int all_acked;
};
int settle_info(int fd, struct settle_info *out);

/* The socket's acknowledged byte count (0 when unknown). */
uint64_t settle_acked(int fd);

#endif
