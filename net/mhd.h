/* mhd.h: libmicrohttpd daemons on a front's sockets, one per address, for
 * the fronts that speak HTTP (the device HTTP(S) front and the admin API).
 * We bind the sockets ourselves (before dropping privileges, and so that a
 * reload hands a socket from an old daemon to a new one without refusing a
 * connection); the daemons never close them. */
#ifndef DFOTAD_MHD_H
#define DFOTAD_MHD_H

#define MAX_REQUEST_URI 2048 /* bytes of a request's target */
#define MAX_QUERY_ARGS 32    /* arguments in a request's query */
#define MHD_MAX_WORKERS 256  /* threads of a daemon (the config's bound) */

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../net/front.h"

struct mhd_set {
  int n;
  struct MHD_Daemon *d[CONF_MAX_LISTEN];
  /* A pool of worker threads (threads > 1) is handed its connections by
   * an acceptor thread of ours (MHD_add_connection), each to the worker
   * for the CPU that received it (mhd.c steer), instead of each worker
   * accepting from the shared socket: there a burst of connections went
   * to whichever worker woke first (seen: all 64 of a benchmark on one of
   * two workers), and a worker served connections of every CPU. wake: -1
   * when no acceptor runs. */
  int fds[CONF_MAX_LISTEN];
  unsigned limit; /* connections of a daemon at which the acceptor waits */
  int wake;       /* eventfd that stops the acceptor, or -1 */
  atomic_int stop;
  pthread_t acceptor;
  int workers; /* of each daemon */
  /* A worker's load, as the acceptor steers by it: the connections it
   * started and has not closed, plus those handed to it that it has not
   * started yet (a burst is handed over faster than a busy worker starts
   * them: counting only started ones let one worker take 59 of 64).
   * Handed connections are numbered per worker; a worker starts its new
   * connections in the order they were handed (libmicrohttpd's queue),
   * so the number of the last it started says how many wait, and one it
   * dropped before starting (out of memory) is passed over by the next it
   * starts instead of counting for ever (one refused at once is taken
   * back). seq: descriptor << 32 | number of the connection on descriptor
   * fd, at fd % MHD_SEQ_SLOTS; a worker starting a connection whose slot
   * another descriptor took since leaves started as it was. */
  atomic_int conns[MHD_MAX_WORKERS];
  atomic_uint handed[MHD_MAX_WORKERS];
  atomic_uint started[MHD_MAX_WORKERS];
#define MHD_SEQ_SLOTS 1024
  _Atomic uint64_t seq[MHD_SEQ_SLOTS];
  /* cpu_affinity (mhd_params): worker w runs on CPU cpu_of[w] only, and
   * home[c] is the worker on CPU c (-1: none; then connections of CPU c
   * are steered to c % workers, as without affinity). */
  int affinity, tls;
  int cpu_of[MHD_MAX_WORKERS];
#define MHD_MAX_CPUS 1024
  short home[MHD_MAX_CPUS];
  MHD_NotifyConnectionCallback notify; /* the front's, called by ours */
  void *notify_cls;
};

struct mhd_params {
  MHD_AccessHandlerCallback handler;
  void *cls; /* for the handler and both notifications */
  MHD_RequestCompletedCallback completed;
  MHD_NotifyConnectionCallback notify; /* NULL: none */
  unsigned connection_limit, timeout, per_ip_limit, threads;
  size_t memory_limit;
  int poll;               /* poll() rather than epoll */
  int suspend;            /* the handler may suspend connections */
  int tls;                /* HTTPS, through the GnuTLS certificate callback */
  const char *priorities; /* with tls */
  const char *trust_pem;  /* with tls: client_ca, NULL: no client certificates */
  /* file responses go out with sendfile(): libmicrohttpd 0.9.75 uses it
   * only when told the application handles SIGPIPE, which is asked here
   * and done only if the process ignores SIGPIPE (main.c) */
  int sendfile;
  /* with a pool of workers, no more than the CPUs the process may use:
   * each worker kept on a CPU of its own, and busy connections re-homed
   * (mhd_rehome) */
  int cpu_affinity;
};

/* Starts a daemon on each of fr's sockets. 0, or -1 with errors added and
 * nothing left running. The strings of p must outlive the daemons. */
int mhd_start(struct front *fr, struct mhd_set *set, const struct mhd_params *p,
              struct config_errors *errs);
/* Stops accepting; connections go on. */
void mhd_quiesce(struct mhd_set *set);
/* Stops the daemons (connections end). */
void mhd_stop(struct mhd_set *set);
/* Whether the connection c, whose request the calling worker is
 * answering, should end after this answer and reconnect (the caller adds
 * Connection: close): with cpu_affinity, when its packets now arrive on
 * another CPU than the one the worker runs on (the client's thread or the
 * network queue moved after it connected), its new connection is handed
 * to the worker on that CPU. Answered and processed on one CPU, a 2 KiB
 * range costs about 4.6 us of server CPU; across two, 6.5 (BENCHMARKS.md).
 * Checked on one request in REHOME_SAMPLE of a worker (busy connections
 * first: they are the ones it pays for), only on a connection that asked
 * REHOME_BUSY requests or more (one that asks a few things is left
 * alone), at most REHOME_RATE connections a second per worker, never over
 * TLS (a new handshake costs more than it saves), and only when the worker
 * of that CPU is not over its share. */
int mhd_rehome(struct mhd_set *set, struct MHD_Connection *c);

#endif
