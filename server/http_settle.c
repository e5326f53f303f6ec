/* http_settle.c: settling HTTP responses with TCP (http_settle.h). */
#include "autoconfig.h"

#include "http_settle.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "../net/settle.h"
#include "../util/log.h"
#include "../util/util.h"

#define LINGER_MS 120000 /* longest wait for TCP to settle a response */
#define HEADER_MIN 100   /* bytes of our response headers, at the least */

struct conn;

/* A response, from queueing until TCP settles it. */
struct pend {
  struct transfer *tr;
  struct settle m;
  uint64_t start, len;
  enum piece kind;
  struct conn *conn; /* NULL once its connection closed */
  int own_fd;        /* our duplicate of the socket after that, or -1 */
  int64_t deadline;  /* monotonic ms */
  uint64_t got;      /* once settled: payload bytes that arrived */
  int complete;      /* once settled: all of them */
  int cut;           /* libmicrohttpd could not write all of it */
  struct pend *next, *prev;   /* the meter's waiting list */
  struct pend *cnext, *cprev; /* its connection's */
};

/* libmicrohttpd's socket_context of a connection. */
struct conn {
  int fd;         /* libmicrohttpd's socket */
  uint64_t floor; /* where the last response ended in TCP's acknowledged count */
  struct pend *cur;  /* being written */
  struct pend *wait; /* written, waiting for TCP */
};

struct http_settle {
  pthread_mutex_t mu; /* the waiting list, every conn's wait list, lingering */
  struct pend *head;
  int n;
  unsigned lingering, max_lingering;
};

struct http_settle *http_settle_new(unsigned max_lingering)
{
  struct http_settle *s = calloc(1, sizeof(*s));

  if (s == NULL)
    return NULL;
  pthread_mutex_init(&s->mu, NULL);
  s->max_lingering = max_lingering;
  return s;
}

static int pend_fd(const struct pend *p) { return p->own_fd >= 0 ? p->own_fd : p->conn->fd; }

/* Records what arrived and lets the response go. Without the lock. */
static void finish(struct http_settle *s, struct pend *p, uint64_t payload, int complete)
{
  /* A response libmicrohttpd could not write whole never arrived whole,
   * whatever TCP says: a reset purges the send queue, so the bytes
   * written then look all acknowledged, and over TLS they outnumber the
   * payload (record overhead), so no floor on the size on the wire holds. */
  if (p->cut) {
    complete = 0;
    if (payload >= p->len)
      payload = p->len > 0 ? p->len - 1 : 0;
  }
  transfer_delivered(p->tr, p->start, payload, complete, p->kind);
  transfer_end(p->tr);
  if (!complete)
    log_debug("http: transfer cut after about %llu of %llu bytes", (unsigned long long)payload,
              (unsigned long long)p->len);
  if (p->own_fd >= 0) {
    close(p->own_fd);
    pthread_mutex_lock(&s->mu);
    s->lingering--;
    pthread_mutex_unlock(&s->mu);
  }
  free(p);
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
  p->next = p->prev = p->cnext = p->cprev = NULL;
  s->n--;
}

void http_settle_opened(struct http_settle *s, struct MHD_Connection *c, void **socket_context)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  struct conn *cn = calloc(1, sizeof(*cn));

  (void)s;
  if (cn != NULL)
    cn->fd = ci != NULL ? ci->connect_fd : -1;
  *socket_context = cn; /* NULL: this connection's responses go unmeasured */
}

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
  if (cn == NULL || cn->cur != NULL || (p = calloc(1, sizeof(*p))) == NULL)
    return; /* unmeasured: settled as libmicrohttpd says */
  p->tr = tr;
  p->start = start;
  p->len = len;
  p->kind = kind;
  p->own_fd = -1;
  settle_begin(&p->m, cn->fd, cn->floor);
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

  if (p == NULL) {
    /* unmeasured (out of memory): libmicrohttpd's word is all there is */
    transfer_delivered(tr, start, ok ? len : 0, ok, kind);
    transfer_end(tr);
    return;
  }
  cn->cur = NULL;
  p->cut = !ok;
  settle_written(&p->m, cn->fd, p->len);
  if (!ok && p->m.wire < p->len + HEADER_MIN)
    p->m.wire = p->len + HEADER_MIN; /* cut: pro rata of the whole response */
  cn->floor = settle_end(&p->m);
  st = settle_check(&p->m, cn->fd, &payload);
  if (st != SETTLE_PENDING) {
    finish(s, p, payload, st == SETTLE_DONE);
    return;
  }
  p->conn = cn;
  p->deadline = mono_ms() + LINGER_MS;
  pthread_mutex_lock(&s->mu);
  p->next = s->head;
  if (s->head)
    s->head->prev = p;
  s->head = p;
  p->cnext = cn->wait;
  if (cn->wait)
    cn->wait->cprev = p;
  cn->wait = p;
  s->n++;
  pthread_mutex_unlock(&s->mu);
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
  for (p = cn->wait; p; p = next) {
    uint64_t payload;
    enum settle_state st = settle_check(&p->m, cn->fd, &payload);
    next = p->cnext;
    /* libmicrohttpd closes its socket next: one still unsettled goes on
     * with our own descriptor of it, while there is room */
    if (st == SETTLE_PENDING && s->lingering < s->max_lingering &&
        (p->own_fd = fcntl(cn->fd, F_DUPFD_CLOEXEC, 0)) >= 0) {
      s->lingering++;
      p->cprev = p->cnext = NULL;
      p->conn = NULL;
      continue;
    }
    unlink_pend(s, p);
    p->conn = NULL;
    p->got = payload;
    p->complete = st == SETTLE_DONE;
    p->next = done;
    done = p;
  }
  pthread_mutex_unlock(&s->mu);
  while (done) {
    p = done;
    done = p->next;
    finish(s, p, p->got, p->complete);
  }
  if (cn->cur != NULL) /* queued, not completed yet: the completion settles it unmeasured */
    free(cn->cur);
  free(cn);
}

void http_settle_tick(struct http_settle *s, int force)
{
  struct pend *done = NULL, *p, *next;
  int64_t now = mono_ms();

  if (s == NULL)
    return;
  pthread_mutex_lock(&s->mu);
  for (p = s->head; p; p = next) {
    uint64_t payload;
    enum settle_state st = settle_check(&p->m, pend_fd(p), &payload);
    next = p->next;
    if (st == SETTLE_PENDING && !force && now < p->deadline)
      continue;
    unlink_pend(s, p);
    p->conn = NULL;
    p->got = payload;
    p->complete = st == SETTLE_DONE;
    p->next = done;
    done = p;
  }
  pthread_mutex_unlock(&s->mu);
  while (done) {
    p = done;
    done = p->next;
    finish(s, p, p->got, p->complete);
  }
}

int http_settle_pending(struct http_settle *s)
{
  int n;

  pthread_mutex_lock(&s->mu);
  n = s->n;
  pthread_mutex_unlock(&s->mu);
  return n;
}

void http_settle_free(struct http_settle *s)
{
  if (s == NULL)
    return;
  http_settle_tick(s, 1);
  pthread_mutex_destroy(&s->mu);
  free(s);
}
