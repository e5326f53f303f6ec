/* http_settle_int.h: what http_settle.c (settling responses with TCP) and
 * http_header.c (the header phase of connections) share: the records of
 * responses and connections, and the meter. Not for other files. */
#ifndef DFOTAD_HTTP_SETTLE_INT_H
#define DFOTAD_HTTP_SETTLE_INT_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../../net/admission.h"
#include "../../net/settle.h"
#include "http_settle.h"

#define LINGER_MS 120000 /* longest wait for TCP to settle a response */
#define EVICT_MIN_MS                                                                               \
  1000                /* a connection in its header phase is not evicted                           \
                         for a newer one before this age */
#define EVICT_SCAN 64 /* connections looked at for one to evict */

/* how often the tick looks for the first bytes of a keep-alive connection's next request */
#define KEEP_CHECK_MS 1000

struct conn;

/* A response, from queueing until TCP settles it. */
struct pend {
  struct transfer *tr;
  struct settle m;
  uint64_t start, len;
  enum piece kind;
  struct conn *conn;          /* NULL once its connection closed */
  int own_fd;                 /* our duplicate of the socket after that, or -1 */
  int64_t deadline;           /* monotonic ms */
  uint64_t got;               /* once settled: payload bytes that arrived */
  int complete;               /* once settled: all of them */
  struct pend *next, *prev;   /* the meter's waiting list */
  struct pend *cnext, *cprev; /* its connection's */
  struct pend *lnext, *lprev; /* the lingering list, oldest first (own_fd >= 0) */
};

/* libmicrohttpd's socket_context of a connection. */
struct conn {
  int fd;            /* libmicrohttpd's socket */
  uint64_t floor;    /* where the last response measured ended in TCP's acknowledged count */
  struct pend *cur;  /* being written */
  struct pend *wait; /* written, waiting for TCP */
  /* between two requests of a keep-alive connection: lk guards these
   * against the tick (libmicrohttpd's thread of the connection writes them) */
  pthread_mutex_t lk;
  /* the batch: responses written whole, not measured yet, in the order
   * written (chained by cnext), the first from floor */
  struct pend *bhead, *btail;
  unsigned bn;
  atomic_int between; /* a request ended; the next one's headers are not in yet */
  int rx_known;       /* rx is set */
  uint64_t rx;        /* bytes received as the tick first saw it between requests */
  int64_t next_at;    /* monotonic ms the next request's first bytes were seen, 0: not yet */
  char addr[INET6_ADDRSTRLEN]; /* the peer's address, as text */
  struct conn *onext, *oprev;  /* every open connection */
  /* the header phase: from the connection to its first request's headers */
  int64_t opened;             /* monotonic ms */
  atomic_int in_header;       /* on the header lists (read without the lock) */
  atomic_int ended;           /* shut down by us; libmicrohttpd closes it next */
  struct conn *hnext, *hprev; /* all connections in their header phase, oldest first */
  struct adm_hold hold;       /* its address's count of them (net/admission.h) */
};

struct http_settle {
  pthread_mutex_t mu; /* everything below, and every conn's lists */
  struct pend *head;
  int n;
  atomic_int batched; /* responses in the connections' batches (busy, like n) */
  struct http_settle_conf conf;
  unsigned open;      /* connections between libmicrohttpd's STARTED and CLOSED */
  unsigned ending;    /* ... of them ended by us, not closed yet */
  unsigned lingering; /* sockets kept after libmicrohttpd closed them */
  struct pend *lhead, *ltail;
  unsigned in_header;
  struct conn *hhead, *htail;
  struct admission *adm; /* connections in their header phase per address (an IPv6 /64) */
  struct conn *ohead;    /* every open connection */
  int64_t keep_at;       /* monotonic ms of the next look at connections between requests */
  struct http_settle_stats stats;
  struct http_settle_stats logged; /* as of the last log line */
  int64_t log_at;                  /* monotonic ms of the next one */
};

/* ---- the header phase (http_header.c), each with s->mu held ---- */

/* Puts cn on the header lists and counts it against its address. */
void hs_header_add(struct http_settle *s, struct conn *cn, const struct sockaddr *sa);
/* Takes cn off the header lists. */
void hs_header_remove(struct http_settle *s, struct conn *cn);
/* Ends cn: libmicrohttpd sees the socket shut and closes the connection. */
void hs_end_conn(struct http_settle *s, struct conn *cn);
/* The oldest connection in its header phase that may be evicted, or NULL. */
struct conn *hs_oldest_header(struct http_settle *s, int64_t now);
/* Refuses a connection: a short 503 where the socket speaks plain HTTP, then the end. */
void hs_refuse(struct http_settle *s, struct conn *cn);
/* Ends the connections past the header deadline or beyond the caps. */
void hs_header_deadline(struct http_settle *s, int64_t now);

#endif
