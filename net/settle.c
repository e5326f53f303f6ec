/* settle.c: the TCP settle meter (settle.h). Linux's TCP_INFO gives the
 * bytes the peer acknowledged (tcpi_bytes_acked, Linux 4.1) and the state;
 * SIOCOUTQ the bytes still in the send queue. */
#include "autoconfig.h"

#include "settle.h"

#include <linux/sockios.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_acked */
#include <netinet/in.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

/* Linux TCP states (include/net/tcp_states.h), which no user header names
 * alongside struct tcp_info */
enum {
  TCPS_ESTABLISHED = 1,
  TCPS_FIN_WAIT1 = 4,
  TCPS_FIN_WAIT2 = 5,
  TCPS_TIME_WAIT = 6,
  TCPS_CLOSE = 7,
  TCPS_CLOSE_WAIT = 8,
  TCPS_LAST_ACK = 9,
  TCPS_CLOSING = 11
};

static int tcp_read(int fd, uint64_t *acked, int *state)
{
  struct tcp_info ti;
  socklen_t len = sizeof(ti);

  if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
      len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(ti.tcpi_bytes_acked))
    return -1;
  *acked = ti.tcpi_bytes_acked;
  *state = ti.tcpi_state;
  return 0;
}

int settle_info(int fd, struct settle_info *out)
{
  struct tcp_info ti;
  socklen_t len = sizeof(ti);

  out->acked = out->received = 0;
  out->all_acked = 0;
  if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
      len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received))
    return -1;
  out->acked = ti.tcpi_bytes_acked;
  out->received = ti.tcpi_bytes_received;
  /* nothing in flight (tcpi_unacked: segments sent and not acknowledged)
   * and nothing unsent: every byte written is acknowledged. Only while the
   * connection is up: a reset purges the send queue, which then looks
   * empty. tcpi_notsent_bytes: Linux 4.6. */
  out->all_acked =
      (ti.tcpi_state == TCPS_ESTABLISHED || ti.tcpi_state == TCPS_CLOSE_WAIT) &&
      len >= offsetof(struct tcp_info, tcpi_notsent_bytes) + sizeof(ti.tcpi_notsent_bytes) &&
      ti.tcpi_unacked == 0 && ti.tcpi_notsent_bytes == 0;
  return 0;
}

uint64_t settle_acked(int fd)
{
  uint64_t acked = 0;
  int state;

  return tcp_read(fd, &acked, &state) == 0 ? acked : 0;
}

void settle_begin(struct settle *m, int fd, uint64_t floor)
{
  /* On a connection that sent before, where the last response ended is
   * enough: whatever went out since (an answer not measured) only counts
   * towards this one's wire size, and completion is judged by the end
   * position alone. A system call per response saved. */
  m->acked_start = floor > 0 ? floor : settle_acked(fd);
  m->wire = 0;
  m->payload = 0;
  m->done = 0;
  m->cut = 0;
}

/* written = acknowledged + in the send queue, from two calls: an
 * acknowledgement between them would make the sum wrong either way, so
 * the acknowledged count is read before and after the queue until the
 * two agree (if they never do, the sum is too large: a response is then
 * found cut, never complete too early). *outq: the queue, -1 unknown. */
static uint64_t written_now(int fd, uint64_t *acked_out, int *outq_out)
{
  uint64_t a1, acked = settle_acked(fd);
  int outq = -1, q = -1;

  for (int i = 0; i < 4; i++) {
    a1 = acked;
    q = ioctl(fd, SIOCOUTQ, &outq);
    acked = settle_acked(fd);
    if (q < 0 || acked == a1)
      break;
  }
  if (q < 0 || outq < 0)
    outq = -1;
  *acked_out = acked;
  *outq_out = outq;
  return acked + (uint64_t)(outq > 0 ? outq : 0);
}

/* Whether our FIN is queued or sent (the state read before the queue: a
 * FIN queued then is in the queue read next and is taken off; one queued
 * after counts as a byte, never more than what arrived). */
static int fin_sent(int fd)
{
  uint64_t a0 = 0;
  int s0 = TCPS_CLOSE;

  return tcp_read(fd, &a0, &s0) == 0 &&
         (s0 == TCPS_FIN_WAIT1 || s0 == TCPS_FIN_WAIT2 || s0 == TCPS_TIME_WAIT ||
          s0 == TCPS_CLOSING || s0 == TCPS_LAST_ACK);
}

void settle_written(struct settle *m, int fd, uint64_t payload, int whole)
{
  uint64_t acked, end;
  int outq;

  end = written_now(fd, &acked, &outq);
  m->done = outq == 0 && acked > 0; /* every byte written is acknowledged already */
  m->wire = end > m->acked_start ? end - m->acked_start : 0;
  m->payload = payload;
  if (!whole) {
    /* cut before all was written: it never arrived whole, whatever TCP
     * says (a reset purges the send queue, so what was written looks all
     * acknowledged; over TLS it outnumbers the payload), and what did
     * arrive is counted pro rata of the whole it should have been */
    m->done = 0;
    m->cut = 1;
    if (m->wire < payload + SETTLE_HEADER_MIN)
      m->wire = payload + SETTLE_HEADER_MIN;
  }
}

void settle_written_fin(struct settle *m, int fd, uint64_t payload)
{
  int fin = fin_sent(fd);

  settle_written(m, fd, payload, 1);
  if (fin && m->wire > 0)
    m->wire--;
}

uint64_t settle_written_end(int fd, uint64_t *acked)
{
  int fin = fin_sent(fd), outq;
  uint64_t end = written_now(fd, acked, &outq);

  return fin && end > 0 ? end - 1 : end; /* the FIN takes a sequence number */
}

void settle_bounded(struct settle *m, uint64_t start, uint64_t end, uint64_t payload)
{
  m->acked_start = start;
  m->wire = end > start ? end - start : 0;
  m->payload = payload;
  m->done = 0;
  m->cut = 0;
}

uint64_t settle_end(const struct settle *m) { return m->acked_start + m->wire; }

enum settle_state settle_check(const struct settle *m, int fd, uint64_t *payload)
{
  uint64_t acked = 0, got;
  int state = TCPS_CLOSE;

  *payload = 0;
  if (m->done) {
    *payload = m->payload;
    return SETTLE_DONE;
  }
  if (m->wire == 0) /* nothing went out, or never measured */
    return m->payload == 0 ? SETTLE_DONE : SETTLE_CUT;
  if (tcp_read(fd, &acked, &state) < 0)
    return SETTLE_CUT;
  got = acked > m->acked_start ? acked - m->acked_start : 0;
  if (got >= m->wire && !m->cut) {
    *payload = m->payload;
    return SETTLE_DONE;
  }
  /* pro rata: headers and record overhead spread over the payload; never
   * all of it while a byte on the wire is missing */
  *payload = (uint64_t)((unsigned __int128)got * m->payload / m->wire);
  if (*payload >= m->payload)
    *payload = m->payload - 1;
  /* our FIN acknowledged (FIN_WAIT2, TIME_WAIT) means all data was; a reset
   * or the peer's close (CLOSE, CLOSE_WAIT, LAST_ACK, CLOSING) ends it */
  if (state == TCPS_FIN_WAIT2 || state == TCPS_TIME_WAIT || (m->cut && got >= m->wire)) {
    if (m->cut)
      return SETTLE_CUT; /* all that was written arrived, which was not all */
    *payload = m->payload;
    return SETTLE_DONE;
  }
  if (state == TCPS_CLOSE || state == TCPS_CLOSE_WAIT || state == TCPS_LAST_ACK ||
      state == TCPS_CLOSING)
    return SETTLE_CUT;
  return SETTLE_PENDING;
}
