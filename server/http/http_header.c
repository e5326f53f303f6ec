/* http_header.c: the header phase of HTTP connections: from the
 * connection to its first request's headers, a deadline, and caps overall
 * and per address (an IPv6 /64) that evict the oldest connections that
 * dribble their headers (http_settle_int.h). */
#include "autoconfig.h"

#include <sys/ioctl.h>
#include <sys/socket.h>

#include "../../util/util.h"
#include "http_settle_int.h"

/* Puts cn on the header lists and counts it against its address; s->mu
 * held. */
void hs_header_add(struct http_settle *s, struct conn *cn, const struct sockaddr *sa)
{
  struct adm_key k;

  /* no limit here: over header_per_ip, the tick ends the oldest (a
   * connection the table could not count still has the deadline) */
  adm_key_addr(sa, &k);
  (void)adm_take(s->adm, &k, ADM_HEADER, 0, &cn->hold);
  cn->hprev = s->htail;
  if (s->htail)
    s->htail->hnext = cn;
  else
    s->hhead = cn;
  s->htail = cn;
  s->in_header++;
  atomic_store_explicit(&cn->in_header, 1, memory_order_relaxed);
}

/* Takes cn off the header lists; s->mu held. */
void hs_header_remove(struct http_settle *s, struct conn *cn)
{
  if (!atomic_load_explicit(&cn->in_header, memory_order_relaxed))
    return;
  atomic_store_explicit(&cn->in_header, 0, memory_order_relaxed);
  if (cn->hprev)
    cn->hprev->hnext = cn->hnext;
  else
    s->hhead = cn->hnext;
  if (cn->hnext)
    cn->hnext->hprev = cn->hprev;
  else
    s->htail = cn->hprev;
  cn->hnext = cn->hprev = NULL;
  s->in_header--;
  adm_give(s->adm, &cn->hold);
}

/* Ends cn: libmicrohttpd sees the socket shut and closes the connection
 * (then http_settle_closed). s->mu held, which http_settle_closed takes
 * before libmicrohttpd closes the socket: cn->fd is still cn's. */
void hs_end_conn(struct http_settle *s, struct conn *cn)
{
  hs_header_remove(s, cn);
  if (atomic_load_explicit(&cn->ended, memory_order_relaxed))
    return;
  atomic_store_explicit(&cn->ended, 1, memory_order_relaxed);
  s->ending++;
  if (cn->fd >= 0)
    shutdown(cn->fd, SHUT_RDWR);
}

/* Whether cn's client is the slow one: libmicrohttpd has read all it sent
 * and still has no complete headers. Bytes waiting unread in the socket
 * mean the server is behind (a burst of connections on busy CPUs), and
 * the client is not to blame. s->mu held (cn->fd is cn's). */
static int dribbling(const struct conn *cn)
{
  int unread = 0;

  return cn->fd >= 0 && ioctl(cn->fd, FIONREAD, &unread) == 0 && unread == 0;
}

/* The oldest connection in its header phase that is older than
 * EVICT_MIN_MS and dribbling, among the EVICT_SCAN oldest, or NULL. */
struct conn *hs_oldest_header(struct http_settle *s, int64_t now)
{
  int n = 0;

  for (struct conn *cn = s->hhead; cn != NULL && n < EVICT_SCAN; cn = cn->hnext, n++) {
    if (now - cn->opened < EVICT_MIN_MS)
      return NULL;
    if (dribbling(cn))
      return cn;
  }
  return NULL;
}

/* Refuses a connection: a short answer where the socket speaks plain
 * HTTP, then the end. s->mu held. */
void hs_refuse(struct http_settle *s, struct conn *cn)
{
  static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 10\r\n"
                             "Content-Length: 0\r\nConnection: close\r\n\r\n";

  if (!s->conf.tls && cn->fd >= 0)
    (void)!send(cn->fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
  s->stats.refused++;
  delivery_count(s->conf.tls ? PROTO_HTTPS : PROTO_HTTP, FC_REFUSED, 1);
  hs_end_conn(s, cn);
}

/* Ends the connections past the header deadline, and, among those older
 * than EVICT_MIN_MS that dribble, the oldest beyond the caps on
 * connections in their header phase, overall and per address. A device
 * sends its headers in milliseconds: the caps only ever catch connections
 * that dribble them. s->mu held. */
void hs_header_deadline(struct http_settle *s, int64_t now)
{
  int64_t limit = (int64_t)s->conf.header_timeout * 1000;
  struct conn *cn, *next;

  while (limit > 0 && s->hhead != NULL && now - s->hhead->opened >= limit) {
    s->stats.header_timeouts++;
    delivery_count(s->conf.tls ? PROTO_HTTPS : PROTO_HTTP, FC_HEADER_TIMEOUTS, 1);
    hs_end_conn(s, s->hhead);
  }
  for (cn = s->hhead; cn != NULL && now - cn->opened >= EVICT_MIN_MS; cn = next) {
    next = cn->hnext;
    if (((s->conf.header_limit > 0 && s->in_header > s->conf.header_limit) ||
         (s->conf.header_per_ip > 0 && adm_held(s->adm, &cn->hold) > s->conf.header_per_ip)) &&
        dribbling(cn)) {
      s->stats.header_evicted++;
      delivery_count(s->conf.tls ? PROTO_HTTPS : PROTO_HTTP, FC_HEADER_EVICTED, 1);
      hs_end_conn(s, cn);
    }
  }
}
