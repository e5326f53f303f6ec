/* mhd.c: starting and stopping libmicrohttpd daemons on our own sockets. */
#include "autoconfig.h"

#include "mhd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../util/limits.h"
#include "../util/util.h"

#include "../net/tls_gnutls.h"
#include "../util/log.h"

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
  char buf[512];
  size_t n;

  (void)cls;
  if (!log_enabled(LOG_INFO))
    return;
  vsnprintf(buf, sizeof(buf), fmt, ap);
  n = strlen(buf);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
    buf[--n] = '\0';
  log_info("http: %s", buf);
}

/* Decodes %XX in place, but leaves "%00" as it is: SECURITY: a NUL would
 * cut a path or an id short ("/p/ID%00zzz" serving ID), so it stays text
 * that matches no id. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
  char *w;

  (void)cls;
  (void)c;
  /* most targets have no escape at all: found at the speed of strchr */
  w = strchr(s, '%');
  if (w == NULL)
    return strlen(s);
  for (const char *r = w; *r;) {
    int hi, lo;
    if (r[0] == '%' && (hi = hex_digit(r[1])) >= 0 && (lo = hex_digit(r[2])) >= 0 &&
        (hi | lo) != 0) {
      *w++ = (char)(hi << 4 | lo);
      r += 3;
    } else {
      *w++ = *r++;
    }
  }
  *w = '\0';
  return (size_t)(w - s);
}

/* SECURITY: libmicrohttpd 0.9.75 sends nothing (until the idle timeout) to
 * a request whose target it cannot store, such as thousands of query
 * arguments. Targets over the bounds are answered 414 and closed here, as
 * soon as the request line is read. */
static void *uri_check(void *cls, const char *uri, struct MHD_Connection *c)
{
  int tls = (int)(intptr_t)cls;
  size_t args = 0, len = strlen(uri);
  const union MHD_ConnectionInfo *ci;

  for (const char *q = strchr(uri, '?'); q != NULL; q = strchr(q + 1, '&'))
    args++;
  if (len <= MAX_REQUEST_URI && args <= MAX_QUERY_ARGS)
    return NULL;
  ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (ci != NULL) {
    static const char answer[] = "HTTP/1.1 414 URI Too Long\r\nContent-Length: 0\r\n"
                                 "Connection: close\r\n\r\n";
    if (!tls) /* over TLS the socket is not ours to write to */
      (void)!send(ci->connect_fd, answer, sizeof(answer) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    shutdown(ci->connect_fd, SHUT_RDWR);
  }
  return NULL;
}

/* sendfile() raises SIGPIPE on a closed connection (send() is told not
 * to, sendfile() cannot be): safe only while the process ignores it */
static int sigpipe_ignored(void)
{
  struct sigaction sa;

  return sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN;
}

/* Connections accepted a socket at a time before the others' turn */
#define ACCEPT_BATCH 16
/* ms the acceptor waits when a daemon is full or descriptors ran out */
#define ACCEPT_PAUSE_MS 50

static int daemon_full(struct MHD_Daemon *d, unsigned limit)
{
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);

  return di != NULL && di->num_connections >= limit;
}

/* connections in a row that settle a worker thread (settle_worker) */
#define SETTLE_STARTS 4
/* mhd_rehome looks at one request in this many of a worker */
#define REHOME_SAMPLE 64
/* and re-homes at most this many connections a second per worker, */
#define REHOME_RATE 256
/* only connections that asked this many requests or more */
#define REHOME_BUSY 32
/* counted in this many slots per worker (connections sharing one add up) */
#define REHOME_SLOTS 256

/* A worker may carry this much more than the mean load before the
 * connections of its CPU go to the least loaded worker instead */
#define STEER_SLACK(mean) (8 + (mean) / 4)

static int conn_fd(struct MHD_Connection *c)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

  return ci != NULL ? ci->connect_fd : -1;
}

/* The calling worker thread's CPU, for mhd_rehome: each worker thread
 * serves one set all its life. */
static __thread struct {
  const struct mhd_set *set; /* NULL: not settled yet */
  int cpu;                   /* -1: not kept on one */
  int label, same;           /* before it is settled: see settle_worker */
  unsigned requests;
  int64_t second; /* ms: start of the second moved counts in */
  unsigned moved;
  /* requests of its connections (slot_of; the descriptor tells a slot's
   * connection, a newcomer takes the slot over): only busy connections
   * are re-homed, never one that asks a few things */
  struct {
    int fd;
    unsigned short asked;
  } conn[REHOME_SLOTS];
} worker;

static unsigned slot_of(const struct mhd_set *set, int fd)
{
  return (unsigned)(fd / set->workers) % REHOME_SLOTS;
}

/* The calling thread started a connection whose descriptor names worker
 * w of set. A worker is nearly always the one its connections' numbers
 * name, but libmicrohttpd gives a connection to the next worker when the
 * named one is full: the thread is settled as worker w, and kept on w's
 * CPU, once SETTLE_STARTS connections in a row named w. */
static void settle_worker(const struct mhd_set *set, int w)
{
  cpu_set_t cs;
  int err;

  if (w != worker.label || worker.same == 0) {
    worker.label = w;
    worker.same = 0;
  }
  if (++worker.same < SETTLE_STARTS)
    return;
  worker.set = set;
  worker.cpu = -1;
  CPU_ZERO(&cs);
  CPU_SET(set->cpu_of[w], &cs);
  err = pthread_setaffinity_np(pthread_self(), sizeof(cs), &cs);
  if (err != 0) {
    log_warn("http: worker %d: not kept on CPU %d: %s", w, set->cpu_of[w], strerror(err));
    return;
  }
  worker.cpu = set->cpu_of[w];
}

/* Keeps the workers' loads (mhd.h: struct mhd_set) by the descriptor
 * libmicrohttpd chose the worker by, then the front's own notification. */
static void counted(void *cls, struct MHD_Connection *c, void **socket_context,
                    enum MHD_ConnectionNotificationCode toe)
{
  struct mhd_set *set = cls;
  int fd = conn_fd(c);

  if (fd >= 0 && toe == MHD_CONNECTION_NOTIFY_STARTED) {
    uint64_t seq = atomic_load(&set->seq[fd % MHD_SEQ_SLOTS]);
    if (set->affinity && worker.set != set)
      settle_worker(set, fd % set->workers);
    if (worker.set == set) {
      worker.conn[slot_of(set, fd)].fd = fd;
      worker.conn[slot_of(set, fd)].asked = 0;
    }
    atomic_fetch_add(&set->conns[fd % set->workers], 1);
    if ((int)(seq >> 32) == fd) /* else the slot is another's (mhd.h) */
      atomic_store(&set->started[fd % set->workers], (unsigned)seq);
  } else if (fd >= 0 && toe == MHD_CONNECTION_NOTIFY_CLOSED) {
    atomic_fetch_sub(&set->conns[fd % set->workers], 1);
  }
  if (set->notify != NULL)
    set->notify(set->notify_cls, c, socket_context, toe);
}

static int load_of(struct mhd_set *set, int w)
{
  int waiting = (int)(atomic_load(&set->handed[w]) - atomic_load(&set->started[w]));
  int held = atomic_load(&set->conns[w]);

  return (held > 0 ? held : 0) + (waiting > 0 ? waiting : 0);
}

/* Whether worker w, carrying load of the total, may take one more of its
 * CPU's connections: not over the mean by STEER_SLACK, and not at
 * libmicrohttpd's limit per worker (a full worker's connection would go
 * to the next one, whose thread might then take itself for the full one:
 * settle_worker). pick_worker and mhd_rehome ask the same. */
static int takes_more(const struct mhd_set *set, int load, int total)
{
  int n = set->workers;

  return load <= total / n + STEER_SLACK(total / n) && load < (int)(set->limit / (unsigned)n);
}

static int total_load(struct mhd_set *set)
{
  int total = 0;

  for (int i = 0; i < set->workers; i++)
    total += load_of(set, i);
  return total;
}

/* The worker for a new connection: the one for the CPU that received it
 * (SO_INCOMING_CPU: the network queue's CPU, or on loopback the client's),
 * so that its requests are answered where their data is in the cache (a
 * 2 KiB range took 4.3-4.8 us of server CPU this way against 6.0-6.5
 * spread over both workers: BENCHMARKS.md); but when that worker carries
 * STEER_SLACK more than the mean (every connection arriving on one CPU,
 * as with a single-queue network card), the least loaded one. */
static int pick_worker(struct mhd_set *set, int c)
{
  int n = set->workers, cpu = -1, least = 0, total = 0, load[MHD_MAX_WORKERS], w;
  socklen_t len = sizeof(cpu);

  for (int i = 0; i < n; i++) {
    load[i] = load_of(set, i);
    total += load[i];
    if (load[i] < load[least])
      least = i;
  }
  if (getsockopt(c, SOL_SOCKET, SO_INCOMING_CPU, &cpu, &len) != 0 || cpu < 0)
    return least;
  w = cpu < MHD_MAX_CPUS && set->home[cpu] >= 0 ? set->home[cpu] : cpu % n;
  return takes_more(set, load[w], total) ? w : least;
}

/* c as a descriptor that libmicrohttpd 0.9.75 gives to worker w: it
 * tries the workers from descriptor % workers on (an implementation
 * detail, not its interface: with another rule connections are spread
 * as that rule says, nothing worse). c, or a duplicate with the right
 * remainder, the lowest free one found from c + 1 on, then from further
 * and further up (descriptors of one remainder all taken below some
 * point, as a burst from one CPU leaves them, cost one try per doubling,
 * not one per descriptor: walking them gave up after eight and handed 7
 * to 12 connections in 32 to the wrong worker). */
static int steer(struct mhd_set *set, int c)
{
  int n = set->workers, w, step = 1;

  if (n < 2)
    return c;
  w = pick_worker(set, c);
  for (int tries = 0; c % n != w && tries < 16; tries++) {
    int from = c + (step - 1) * n + 1, d;
    d = fcntl(c, F_DUPFD_CLOEXEC, from + (w - from % n + n) % n);
    if (d < 0)
      break; /* none free up there: c goes where its number says */
    if (d % n == w) {
      close(c);
      return d;
    }
    close(d);
    step *= 2;
  }
  return c;
}

/* Hands c to its daemon, numbered for its worker's load (mhd.h). */
static void hand_over(struct mhd_set *set, struct MHD_Daemon *d, int c,
                      const struct sockaddr_storage *ss, socklen_t len)
{
  int w = c % set->workers;
  unsigned s = atomic_load(&set->handed[w]) + 1;

  /* numbered before it is handed: its worker may start it at once */
  atomic_store(&set->seq[c % MHD_SEQ_SLOTS], (uint64_t)(unsigned)c << 32 | s);
  atomic_store(&set->handed[w], s);
  /* refused (the per-address limit, every worker full): libmicrohttpd
   * closed the socket and queued nothing; the acceptor alone writes
   * handed */
  if (MHD_add_connection(d, c, (const struct sockaddr *)ss, len) != MHD_YES)
    atomic_store(&set->handed[w], s - 1);
}

int mhd_rehome(struct mhd_set *set, struct MHD_Connection *c)
{
  int n = set->workers, fd, cpu = -1, w;
  socklen_t len = sizeof(cpu);
  struct timespec ts;
  int64_t now;
  unsigned short *asked;

  if (worker.set != set || worker.cpu < 0 || set->tls || (fd = conn_fd(c)) < 0)
    return 0;
  if (worker.conn[slot_of(set, fd)].fd != fd) { /* a newcomer on a shared slot */
    worker.conn[slot_of(set, fd)].fd = fd;
    worker.conn[slot_of(set, fd)].asked = 0;
  }
  asked = &worker.conn[slot_of(set, fd)].asked;
  if (*asked < USHRT_MAX)
    (*asked)++;
  if (++worker.requests % REHOME_SAMPLE != 0 || *asked < REHOME_BUSY)
    return 0;
  if (getsockopt(fd, SOL_SOCKET, SO_INCOMING_CPU, &cpu, &len) != 0 || cpu < 0 ||
      cpu == worker.cpu || cpu >= MHD_MAX_CPUS)
    return 0;
  /* its CPU has a worker, other than the one c was handed to (were the
   * thread not on its own CPU, c would be re-homed to where it is) */
  w = set->home[cpu];
  if (w < 0 || w == fd % n)
    return 0;
  if (!takes_more(set, load_of(set, w), total_load(set)))
    return 0; /* it would be steered elsewhere again */
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  if (now - worker.second >= 1000) {
    worker.second = now;
    worker.moved = 0;
  }
  if (worker.moved >= REHOME_RATE)
    return 0;
  worker.moved++;
  return 1;
}

/* Accepts from every socket of the set and hands each connection to its
 * daemon. A full daemon's socket is left alone (the connections wait in
 * the listen queue, as libmicrohttpd's own accepting leaves them), and so
 * is every socket for a moment when descriptors run out. */
static void *acceptor_main(void *arg)
{
  struct mhd_set *set = arg;
  struct pollfd pfd[CONF_MAX_LISTEN + 1];
  int pause = 0;

  pfd[0] = (struct pollfd){.fd = set->wake, .events = POLLIN};
  for (int i = 0; i < set->n; i++)
    pfd[i + 1] = (struct pollfd){.fd = set->fds[i], .events = POLLIN};
  while (!atomic_load(&set->stop)) {
    if (poll(pfd, pause ? 1 : (nfds_t)set->n + 1, pause ? ACCEPT_PAUSE_MS : -1) < 0 &&
        errno != EINTR) {
      log_error("http: acceptor: poll: %s", strerror(errno));
      pause = 1;
      continue;
    }
    if (pfd[0].revents != 0)
      break;
    pause = 0;
    for (int i = 0; i < set->n; i++) {
      if (pfd[i + 1].revents == 0)
        continue;
      pfd[i + 1].revents = 0;
      for (int k = 0; k < ACCEPT_BATCH; k++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int c;
        if (daemon_full(set->d[i], set->limit)) {
          pause = 1;
          break;
        }
        c = accept4(set->fds[i], (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
          if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            pause = 1;
          if (errno == EINTR || errno == ECONNABORTED)
            continue;
          break; /* EAGAIN: the queue is empty */
        }
        hand_over(set, set->d[i], steer(set, c), &ss, len);
      }
    }
  }
  return NULL;
}

static void acceptor_stop(struct mhd_set *set)
{
  uint64_t one = 1;

  if (set->wake < 0)
    return;
  atomic_store(&set->stop, 1);
  (void)!write(set->wake, &one, sizeof(one));
  pthread_join(set->acceptor, NULL);
  close(set->wake);
  set->wake = -1;
}

static struct MHD_Daemon *start_one(const struct front *fr, int i, const struct mhd_params *p,
                                    struct mhd_set *set, int accepted)
{
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
  struct MHD_OptionItem opts[20];
  int n = 0;

  flags |= p->poll ? MHD_USE_POLL : MHD_USE_EPOLL;
  if (p->suspend)
    flags |= MHD_ALLOW_SUSPEND_RESUME;
  if (accepted)
    flags |= MHD_USE_NO_LISTEN_SOCKET; /* the acceptor hands it connections */
  else if (fr->addr[i].ss.ss_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  /* the logger first, so that libmicrohttpd uses it for everything */
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_logger, NULL};
  if (!accepted)
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, fr->fd[i], NULL};
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, p->connection_limit, NULL};
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, p->timeout, NULL};
  opts[n++] =
      (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)p->memory_limit, NULL};
  if (p->per_ip_limit > 0)
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT, p->per_ip_limit, NULL};
  if (p->threads > 1)
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, p->threads, NULL};
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)p->completed, p->cls};
  if (p->sendfile && !p->tls && sigpipe_ignored())
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SIGPIPE_HANDLED_BY_APP, 1, NULL};
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)unescape, NULL};
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)uri_check,
                                      (void *)(intptr_t)p->tls};
  if (accepted)
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)counted, set};
  else if (p->notify != NULL)
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)p->notify, p->cls};
  if (p->tls) {
    flags |= MHD_USE_TLS;
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_CERT_CALLBACK, 0,
                                        (void *)tls_gnutls_cert_callback};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)p->priorities};
    /* with a trust list libmicrohttpd asks clients for a certificate */
    if (p->trust_pem != NULL)
      opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, (void *)p->trust_pem};
  }
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
  return MHD_start_daemon(flags, 0, NULL, NULL, p->handler, p->cls, MHD_OPTION_ARRAY, opts,
                          MHD_OPTION_END);
}

/* Gives each worker a CPU of its own when there are as many workers as
 * CPUs the process may use (threads = 0, one per CPU, as by default);
 * 0 otherwise. */
static int plan_affinity(struct mhd_set *set)
{
  cpu_set_t cs;
  int w = 0;

  if (sched_getaffinity(0, sizeof(cs), &cs) != 0 || CPU_COUNT(&cs) != set->workers)
    return 0; /* a CPU with no worker, or two workers on one: left to the kernel */
  for (int c = 0; c < MHD_MAX_CPUS && c < CPU_SETSIZE && w < set->workers; c++) {
    if (!CPU_ISSET(c, &cs))
      continue;
    set->cpu_of[w] = c;
    set->home[c] = (short)w++;
  }
  if (w == set->workers)
    return 1;
  for (int c = 0; c < MHD_MAX_CPUS; c++)
    set->home[c] = -1;
  return 0;
}

int mhd_start(struct front *fr, struct mhd_set *set, const struct mhd_params *p,
              struct config_errors *errs)
{
  /* a pool of workers on epoll is handed its connections (mhd.h) */
  int accepted = p->threads > 1 && p->threads <= MHD_MAX_WORKERS && !p->poll;

  set->n = 0;
  set->wake = -1;
  set->limit = p->connection_limit;
  set->workers = (int)p->threads;
  set->notify = p->notify;
  set->notify_cls = p->cls;
  for (int w = 0; w < MHD_MAX_WORKERS; w++) {
    atomic_store(&set->conns[w], 0);
    atomic_store(&set->handed[w], 0);
    atomic_store(&set->started[w], 0);
  }
  for (int k = 0; k < MHD_SEQ_SLOTS; k++)
    atomic_store(&set->seq[k], (uint64_t)UINT32_MAX << 32); /* no descriptor's */
  set->tls = p->tls;
  for (int c = 0; c < MHD_MAX_CPUS; c++)
    set->home[c] = -1;
  set->affinity = accepted && p->cpu_affinity && plan_affinity(set);
  atomic_store(&set->stop, 0);
  for (int i = 0; i < fr->n; i++) {
    set->fds[i] = fr->fd[i];
    set->d[i] = start_one(fr, i, p, set, accepted);
    if (set->d[i] == NULL) {
      config_errors_add(errs, "%s %s: the HTTP daemon did not start", fr->row->section,
                        fr->addr[i].text);
      mhd_stop(set);
      return -1;
    }
    set->n++;
    log_info("listening: %s %s", fr->row->section, fr->addr[i].text);
  }
  if (accepted && p->cpu_affinity && !set->affinity)
    log_info("%s: %d workers, not as many as the CPUs dfotad may use: not kept on CPUs",
             fr->row->section, set->workers);
  if (set->affinity) {
    char cpus[128];
    size_t k = 0;
    for (int w = 0; w < set->workers && k < sizeof(cpus) - 12; w++)
      k += (size_t)snprintf(cpus + k, sizeof(cpus) - k, "%s%d", w ? "," : "", set->cpu_of[w]);
    log_info("%s: %d workers kept on CPUs %s", fr->row->section, set->workers, cpus);
  }
  if (accepted) {
    int err = 0;
    set->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (set->wake < 0 || (err = pthread_create(&set->acceptor, NULL, acceptor_main, set)) != 0) {
      config_errors_add(errs, "%s: no acceptor thread: %s", fr->row->section,
                        set->wake < 0 ? strerror(errno) : strerror(err));
      if (set->wake >= 0)
        close(set->wake);
      set->wake = -1;
      mhd_stop(set);
      return -1;
    }
  }
  return 0;
}

void mhd_quiesce(struct mhd_set *set)
{
  acceptor_stop(set);
  for (int i = 0; i < set->n; i++)
    MHD_quiesce_daemon(set->d[i]);
}

void mhd_stop(struct mhd_set *set)
{
  acceptor_stop(set);
  for (int i = 0; i < set->n; i++) {
    MHD_quiesce_daemon(set->d[i]); /* keeps the socket out of MHD_stop_daemon's hands */
    MHD_stop_daemon(set->d[i]);
  }
  set->n = 0;
}
