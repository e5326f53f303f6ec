/* http_settle.c: settling HTTP responses with TCP, and the economics of
 * the connections that carry them (http_settle.h; their header phase is in
 * http_header.c). */
#include "autoconfig.h"

#include "http_settle.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../net/admission.h"
#include "../../net/settle.h"
#include "../../util/log.h"
#include "../../util/util.h"
#include "http_limits.h"
#include "http_settle_int.h"

struct http_settle *http_settle_new(const struct http_settle_conf *conf)
{
  struct http_settle *s = calloc(1, sizeof(*s));

  if (s == NULL)
    return NULL;
  s->adm = adm_new(conf->connection_limit < ADM_TABLE_MAX / 2 ? conf->connection_limit * 2
                                                              : ADM_TABLE_MAX);
  if (s->adm == NULL) {
    free(s);
    return NULL;
  }
  pthread_mutex_init(&s->mu, NULL);
  s->conf = *conf;
  return s;
}

static int pend_fd(const struct pend *p) { return p->own_fd >= 0 ? p->own_fd : p->conn->fd; }

/* Closes a kept socket. A response given up with bytes still unsent or
 * unacknowledged ends with a reset: a client that does not read would
 * otherwise leave the kernel an orphan socket full of data to retry. */
static void close_kept(int fd, int complete)
{
  if (!complete) {
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  }
  close(fd);
}

/* Records what arrived and lets the response go. Without the lock; p is
 * off every list. */
static void finish(struct pend *p, uint64_t payload, int complete)
{
  transfer_delivered(p->tr, p->start, payload, complete, p->kind);
  transfer_end(p->tr);
  if (!complete)
    log_debug("http: transfer cut after about %llu of %llu bytes", (unsigned long long)payload,
              (unsigned long long)p->len);
  if (p->own_fd >= 0)
    close_kept(p->own_fd, complete);
  free(p);
}

static void finish_list(struct pend *done)
{
  while (done) {
    struct pend *p = done;
    done = p->next;
    finish(p, p->got, p->complete);
  }
}

/* Takes p off both lists; s->mu held. */
static void unlink_pend(struct http_settle *s, struct pend *p)
{
  if (p->prev)
    p->prev->next = p->next;
  else
    s->head = p->next;
  if (p->next)
    p->next->prev = p->prev;
  if (p->conn != NULL) {
    if (p->cprev)
      p->cprev->cnext = p->cnext;
    else
      p->conn->wait = p->cnext;
    if (p->cnext)
      p->cnext->cprev = p->cprev;
  }
  if (p->own_fd >= 0) {
    if (p->lprev)
      p->lprev->lnext = p->lnext;
    else
      s->lhead = p->lnext;
    if (p->lnext)
      p->lnext->lprev = p->lprev;
    else
      s->ltail = p->lprev;
    s->lingering--;
  }
  p->next = p->prev = p->cnext = p->cprev = p->lnext = p->lprev = NULL;
  s->n--;
}

/* Takes p off the lists as settled with what TCP says now; s->mu held.
 * Pushes it on *done, to be finished without the lock. */
static void settle_now(struct http_settle *s, struct pend *p, struct pend **done)
{
  uint64_t payload = 0;
  enum settle_state st = settle_check(&p->m, pend_fd(p), &payload);

  unlink_pend(s, p);
  p->conn = NULL;
  p->got = payload;
  p->complete = st == SETTLE_DONE;
  p->next = *done;
  *done = p;
}

/* Puts p (written, measured, not settled) on the waiting lists of s and
 * of cn; s->mu held. */
static void wait_add(struct http_settle *s, struct conn *cn, struct pend *p)
{
  p->conn = cn;
  p->deadline = mono_ms() + LINGER_MS;
  p->next = s->head;
  if (s->head)
    s->head->prev = p;
  s->head = p;
  p->cnext = cn->wait;
  if (cn->wait)
    cn->wait->cprev = p;
  cn->wait = p;
  s->n++;
}

/* Measures cn's batch (responses written whole since floor, the first
 * from floor, perhaps with unmeasured answers among and after them) and
 * sets where the next response on cn begins. si: TCP_INFO of the socket
 * now. When the peer has acknowledged every byte written (what a
 * keep-alive client asking its next request has done), that one call
 * settles them all, complete. Else the written end is read, and each gets
 * bounds from it: TCP acknowledges in order, and every response after one
 * is at least its payload and SETTLE_HEADER_MIN long, so each one ends
 * at the latest where those after it leave room for, and starts at the
 * latest where that leaves room for it. Complete once TCP has its latest
 * end (its true end is never later), counted from its latest start
 * until then (never more than arrived); those TCP has not settled yet
 * wait. cn->lk held, or cn closing (no tick sees it); mu_held: s->mu
 * too. Settled ones are appended to *done in order (p->got, p->complete;
 * to be finished without the locks). */
static void measure_batch(struct http_settle *s, struct conn *cn, const struct settle_info *si,
                          int mu_held, struct pend **done)
{
  struct pend *p, *next, **tail = done;
  uint64_t end, acked, room = 0, at = 0, first;

  if (cn->bhead == NULL)
    return;
  first = cn->bhead->m.acked_start;
  while (*tail != NULL)
    tail = &(*tail)->next;
  if (si->all_acked) {
    cn->floor = si->acked;
  } else {
    end = settle_written_end(cn->fd, &acked);
    cn->floor = end;
    for (p = cn->bhead; p != NULL; p = p->cnext)
      room += p->len + SETTLE_HEADER_MIN;
    at = end > room ? end - room : 0;
  }
  for (p = cn->bhead; p != NULL; p = next) {
    next = p->cnext;
    p->cnext = NULL;
    if (si->all_acked) {
      p->got = p->len;
      p->complete = 1;
    } else {
      uint64_t start = at > first ? at : first;
      enum settle_state st;
      at += p->len + SETTLE_HEADER_MIN;
      settle_bounded(&p->m, start, at > start ? at : start + p->len + SETTLE_HEADER_MIN, p->len);
      st = settle_check(&p->m, cn->fd, &p->got);
      if (st == SETTLE_PENDING) {
        if (!mu_held)
          pthread_mutex_lock(&s->mu);
        wait_add(s, cn, p);
        if (!mu_held)
          pthread_mutex_unlock(&s->mu);
        continue;
      }
      p->complete = st == SETTLE_DONE;
    }
    p->next = NULL;
    *tail = p;
    tail = &p->next;
  }
  cn->bhead = cn->btail = NULL;
  atomic_fetch_sub(&s->batched, (int)cn->bn);
  cn->bn = 0;
}

/* Measures cn's batch now (cn->lk held); returns what settled, to be
 * finished without the lock. */
static struct pend *flush_batch(struct http_settle *s, struct conn *cn)
{
  struct settle_info si;
  struct pend *done = NULL;

  (void)settle_info(cn->fd, &si);
  measure_batch(s, cn, &si, 0, &done);
  return done;
}

void http_settle_opened(struct http_settle *s, struct MHD_Connection *c, void **socket_context)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  const union MHD_ConnectionInfo *ai =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  struct conn *cn = calloc(1, sizeof(*cn)), *old;
  struct pend *done = NULL;
  int64_t now = mono_ms();

  *socket_context = cn; /* NULL: this connection's responses go unmeasured */
  if (cn == NULL)
    return;
  cn->fd = ci != NULL ? ci->connect_fd : -1;
  cn->opened = now;
  pthread_mutex_init(&cn->lk, NULL);
  if (ai != NULL && ai->client_addr != NULL) { /* formatted once, for every request */
    const struct sockaddr *sa = ai->client_addr;
    if (sa->sa_family == AF_INET)
      inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, cn->addr, sizeof(cn->addr));
    else if (sa->sa_family == AF_INET6)
      inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, cn->addr,
                sizeof(cn->addr));
  }
  /* what the kernel holds unsent for a slow reader: bounded, not grown
   * with the send buffer's autotuning */
  if (s->conf.send_lowat > 0 && cn->fd >= 0)
    setsockopt(cn->fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &s->conf.send_lowat,
               sizeof(s->conf.send_lowat));
  pthread_mutex_lock(&s->mu);
  s->open++;
  cn->onext = s->ohead;
  if (s->ohead)
    s->ohead->oprev = cn;
  s->ohead = cn;
  /* SECURITY: sockets kept after a response count against the connection
   * limit: the oldest kept one is settled as it stands to make room */
  while (s->open - s->ending + s->lingering > s->conf.connection_limit && s->lhead != NULL) {
    settle_now(s, s->lhead, &done);
    s->stats.kept_closed++;
    delivery_count(s->conf.tls ? PROTO_HTTPS : PROTO_HTTP, FC_KEPT_CLOSED, 1);
  }
  if (s->open - s->ending + s->lingering > s->conf.connection_limit) {
    /* SECURITY: every slot is taken: a connection that has not sent its
     * headers for a while makes room, else this one is refused at once
     * (never left waiting in the listen queue) */
    if ((old = hs_oldest_header(s, now)) != NULL) {
      s->stats.header_evicted++;
      delivery_count(s->conf.tls ? PROTO_HTTPS : PROTO_HTTP, FC_HEADER_EVICTED, 1);
      hs_end_conn(s, old);
    } else {
      hs_refuse(s, cn);
      pthread_mutex_unlock(&s->mu);
      finish_list(done);
      return;
    }
  }
  /* over the header caps, the tick ends the oldest */
  hs_header_add(s, cn, ai != NULL ? ai->client_addr : NULL);
  pthread_mutex_unlock(&s->mu);
  finish_list(done);
}

int http_settle_headers_done(struct http_settle *s, struct MHD_Connection *c, int download)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  struct conn *cn = ci != NULL ? ci->socket_context : NULL;

  if (cn == NULL)
    return 0;
  if (atomic_load_explicit(&cn->ended, memory_order_relaxed))
    return -1;
  if (atomic_load_explicit(&cn->in_header, memory_order_relaxed)) {
    pthread_mutex_lock(&s->mu);
    hs_header_remove(s, cn);
    pthread_mutex_unlock(&s->mu);
  }
  /* a later request of a keep-alive connection: the responses before it,
   * which the client has read before asking again, are settled now, but
   * for a download (http_settle_begin does it once the batch is full or
   * before a large response): a device's check-in or report then finds
   * what it downloaded counted */
  if (atomic_load_explicit(&cn->between, memory_order_relaxed)) {
    struct pend *done = NULL;
    pthread_mutex_lock(&cn->lk);
    atomic_store_explicit(&cn->between, 0, memory_order_relaxed);
    if (cn->bhead != NULL && !download)
      done = flush_batch(s, cn);
    pthread_mutex_unlock(&cn->lk);
    finish_list(done);
  }
  return atomic_load_explicit(&cn->ended, memory_order_relaxed) ? -1 : 0;
}

const char *http_settle_peer(struct MHD_Connection *c)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  const struct conn *cn = ci != NULL ? ci->socket_context : NULL;

  return cn != NULL && cn->addr[0] != '\0' ? cn->addr : NULL;
}

/* ---- settling ---------------------------------------------------------------- */

static struct conn *conn_of(struct MHD_Connection *c)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

  return ci != NULL ? ci->socket_context : NULL;
}

void http_settle_begin(struct http_settle *s, struct MHD_Connection *c, struct transfer *tr,
                       uint64_t start, uint64_t len, enum piece kind)
{
  struct conn *cn = conn_of(c);
  struct pend *p;

  (void)s;
  /* malloc, not calloc: glibc's calloc passes its per-thread cache by */
  if (cn == NULL || cn->cur != NULL || (p = malloc(sizeof(*p))) == NULL)
    return; /* unmeasured: settled as libmicrohttpd says */
  memset(p, 0, sizeof(*p));
  p->tr = tr;
  p->start = start;
  p->len = len;
  p->kind = kind;
  p->own_fd = -1;
  if (cn->bhead != NULL && (cn->bn >= HTTP_SETTLE_BATCH || len > HTTP_SETTLE_BATCH_LEN)) {
    struct pend *done;
    pthread_mutex_lock(&cn->lk);
    done = flush_batch(s, cn);
    pthread_mutex_unlock(&cn->lk);
    finish_list(done);
  }
  if (cn->bhead == NULL)
    settle_begin(&p->m, cn->fd, cn->floor);
  else /* measured with its batch, or, cut, from where the batch ends */
    settle_bounded(&p->m, cn->bhead->m.acked_start, cn->bhead->m.acked_start, 0);
  cn->cur = p;
}

void http_settle_abandon(struct http_settle *s, struct MHD_Connection *c)
{
  struct conn *cn = conn_of(c);

  (void)s;
  if (cn != NULL && cn->cur != NULL) {
    free(cn->cur);
    cn->cur = NULL;
  }
}

void http_settle_written(struct http_settle *s, struct MHD_Connection *c, int ok,
                         struct transfer *tr, uint64_t start, uint64_t len, enum piece kind)
{
  struct conn *cn = conn_of(c);
  struct pend *p = cn != NULL ? cn->cur : NULL;
  uint64_t payload;
  enum settle_state st;
  struct pend *done = NULL;

  if (p == NULL) {
    /* unmeasured (out of memory): libmicrohttpd's word is all there is */
    transfer_delivered(tr, start, ok ? len : 0, ok, kind);
    transfer_end(tr);
    return;
  }
  cn->cur = NULL;
  /* Written whole in plain HTTP: joins the batch, measured together with
   * the responses before and after it (one system call for up to
   * HTTP_SETTLE_BATCH of them), at a later request of the connection, by
   * the tick when none comes, or at the close (measure_batch): an error
   * libmicrohttpd answers itself among them would only ever count against
   * them, never for them. Cut after a batch: the batch is measured now,
   * and this one counted from where the batch ends at the latest, so
   * nothing (it may have written nothing). Over TLS, now: closing the
   * connection writes a TLS alert after it. */
  pthread_mutex_lock(&cn->lk);
  cn->rx_known = 0;
  cn->next_at = 0;
  atomic_store_explicit(&cn->between, 1, memory_order_relaxed);
  if (ok && !s->conf.tls) {
    p->cnext = NULL;
    if (cn->btail != NULL)
      cn->btail->cnext = p;
    else
      cn->bhead = p;
    cn->btail = p;
    cn->bn++;
    atomic_fetch_add(&s->batched, 1);
    p = NULL;
  } else if (cn->bhead != NULL) {
    done = flush_batch(s, cn);
    p->m.acked_start = cn->floor;
  }
  pthread_mutex_unlock(&cn->lk);
  finish_list(done);
  if (p == NULL)
    return;
  settle_written(&p->m, cn->fd, p->len, ok);
  cn->floor = settle_end(&p->m);
  st = settle_check(&p->m, cn->fd, &payload);
  if (st != SETTLE_PENDING) {
    finish(p, payload, st == SETTLE_DONE);
    return;
  }
  pthread_mutex_lock(&s->mu);
  wait_add(s, cn, p);
  pthread_mutex_unlock(&s->mu);
}

void http_settle_request_done(struct http_settle *s, struct MHD_Connection *c)
{
  struct conn *cn = conn_of(c);

  (void)s;
  if (cn == NULL || atomic_load_explicit(&cn->in_header, memory_order_relaxed))
    return;
  pthread_mutex_lock(&cn->lk);
  cn->rx_known = 0;
  cn->next_at = 0;
  atomic_store_explicit(&cn->between, 1, memory_order_relaxed);
  pthread_mutex_unlock(&cn->lk);
}

void http_settle_closed(struct http_settle *s, struct MHD_Connection *c, void **socket_context)
{
  struct conn *cn = *socket_context;
  struct pend *done = NULL, *p, *next;

  (void)c;
  if (cn == NULL)
    return;
  *socket_context = NULL;
  pthread_mutex_lock(&s->mu);
  hs_header_remove(s, cn);
  if (cn->oprev)
    cn->oprev->onext = cn->onext;
  else
    s->ohead = cn->onext;
  if (cn->onext)
    cn->onext->oprev = cn->oprev;
  s->open--;
  if (cn->bhead != NULL) { /* the tick cannot see cn any more */
    struct settle_info si;
    (void)settle_info(cn->fd, &si);
    measure_batch(s, cn, &si, 1, &done);
  }
  if (atomic_load_explicit(&cn->ended, memory_order_relaxed))
    s->ending--;
  for (p = cn->wait; p; p = next) {
    next = p->cnext;
    /* libmicrohttpd closes its socket next: one still unsettled goes on
     * with our own descriptor of it, while there is room under the
     * connection limit (the same descriptor count as before) */
    if (settle_check(&p->m, cn->fd, &p->got) == SETTLE_PENDING &&
        s->open - s->ending + s->lingering < s->conf.connection_limit &&
        (p->own_fd = fcntl(cn->fd, F_DUPFD_CLOEXEC, 0)) >= 0) {
      s->lingering++;
      p->cprev = p->cnext = NULL;
      p->conn = NULL;
      p->lprev = s->ltail;
      if (s->ltail)
        s->ltail->lnext = p;
      else
        s->lhead = p;
      s->ltail = p;
      continue;
    }
    settle_now(s, p, &done);
  }
  pthread_mutex_unlock(&s->mu);
  finish_list(done);
  if (cn->cur != NULL) /* queued, not completed yet: the completion settles it unmeasured */
    free(cn->cur);
  pthread_mutex_destroy(&cn->lk);
  free(cn);
}

/* The connections between two requests: the response before, unmeasured
 * yet, settled once TCP has it acknowledged (a client that asks nothing
 * more); and the header deadline of a later request, from its first bytes
 * (seen as the socket's received count grows, checked every
 * KEEP_CHECK_MS): a keep-alive connection idles under libmicrohttpd's
 * timeout, but dribbles its next headers no longer than a first request
 * may. s->mu held. */
static void keep_alive(struct http_settle *s, int64_t now, struct pend **done)
{
  int64_t limit = (int64_t)s->conf.header_timeout * 1000;
  int look = now >= s->keep_at;

  if (look)
    s->keep_at = now + KEEP_CHECK_MS;
  for (struct conn *cn = s->ohead; cn != NULL; cn = cn->onext) {
    struct settle_info si;

    if (!atomic_load_explicit(&cn->between, memory_order_relaxed) ||
        atomic_load_explicit(&cn->ended, memory_order_relaxed))
      continue;
    if (pthread_mutex_trylock(&cn->lk) != 0)
      continue; /* its thread is at it: the next tick */
    if (atomic_load_explicit(&cn->between, memory_order_relaxed) &&
        (cn->bhead != NULL || (look && limit > 0))) {
      (void)settle_info(cn->fd, &si);
      measure_batch(s, cn, &si, 1, done);
      if (!cn->rx_known) {
        cn->rx = si.received;
        cn->rx_known = 1;
      } else if (cn->next_at == 0 && si.received != cn->rx) {
        cn->next_at = now;
      }
      if (look && limit > 0 && cn->next_at != 0 && now - cn->next_at >= limit) {
        s->stats.header_timeouts++;
        delivery_count(s->conf.tls ? PROTO_HTTPS : PROTO_HTTP, FC_HEADER_TIMEOUTS, 1);
        hs_end_conn(s, cn);
      }
    }
    pthread_mutex_unlock(&cn->lk);
  }
}

void http_settle_tick(struct http_settle *s, int force)
{
  struct pend *done = NULL, *p, *next;
  int64_t now = mono_ms();

  if (s == NULL)
    return;
  struct http_settle_stats st, was;
  int say = 0;

  pthread_mutex_lock(&s->mu);
  hs_header_deadline(s, now);
  keep_alive(s, now, &done);
  for (p = s->head; p; p = next) {
    uint64_t payload;
    next = p->next;
    if (!force && now < p->deadline && settle_check(&p->m, pend_fd(p), &payload) == SETTLE_PENDING)
      continue;
    settle_now(s, p, &done);
  }
  /* what the limits did, at most once a minute (a flood must not flood
   * the log) */
  if (now >= s->log_at) {
    st = s->stats;
    was = s->logged;
    say = st.refused != was.refused || st.kept_closed != was.kept_closed ||
          st.header_evicted != was.header_evicted || st.header_timeouts != was.header_timeouts;
    st.open = s->open;
    st.kept = s->lingering;
    st.in_header = s->in_header;
    s->logged = s->stats;
    s->log_at = now + 60000;
  }
  pthread_mutex_unlock(&s->mu);
  finish_list(done);
  if (say)
    log_warn("http: limits: %llu refused (connection_limit), %llu kept sockets closed early, "
             "%llu slow headers ended (caps), %llu header deadlines; now %u open, %u kept, "
             "%u sending headers",
             st.refused - was.refused, st.kept_closed - was.kept_closed,
             st.header_evicted - was.header_evicted, st.header_timeouts - was.header_timeouts,
             st.open, st.kept, st.in_header);
}

int http_settle_pending(struct http_settle *s)
{
  int n;

  pthread_mutex_lock(&s->mu);
  n = s->n;
  pthread_mutex_unlock(&s->mu);
  return n + atomic_load(&s->batched);
}

void http_settle_free(struct http_settle *s)
{
  if (s == NULL)
    return;
  http_settle_tick(s, 1);
  adm_free(s->adm);
  pthread_mutex_destroy(&s->mu);
  free(s);
}
