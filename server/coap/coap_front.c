/* coap_front.c: the CoAP(S) front's life cycle: rows "coap" and "coaps"
 * of the fronts table, one engine (a libcoap context and the one thread
 * that may call libcoap) per running section, its limits, and reloads.
 *
 * libcoap binds its own UDP sockets (it cannot adopt bound descriptors in
 * 4.3.1, and DTLS sessions live in its context), so a second context on
 * the same port could not take over the sessions of the first. A reload
 * whose addresses are unchanged is therefore done in place: the new
 * front instance shares the running engine, which takes the new limits
 * and re-reads certificates for the handshakes that follow; established
 * sessions and downloads go on untouched. A reload that changes the
 * addresses starts a new engine, and the old one ends with its front. */
#include "autoconfig.h"

#include "coap_front.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../net/front.h"
#include "../../util/util.h"
#include "coap_conf.h"
#include "coap_int.h"
#include "lwm2m.h"

#define LOOP_MS 200         /* the thread's longest wait: stop and reload latency */
#define HOUSEKEEP_MS 500    /* expiry, pending settings, key wiping */
#define BUSY_WINDOW_MS 5000 /* a download active this recently keeps a draining front busy */
#define WAIT_POLL_MS 2      /* the thread's wait while answers wait on commits */
#define TRIM_MS 10000       /* memory freed by ended handshakes goes back this often */
#define PREPARE_MS 200      /* a walk of libcoap's sessions at least this often (see engine_io) */
#define WALK_MS 10          /* ... and this often while datagrams come or requests go out */
#define READS_PER_EVENT 16  /* datagrams a socket's readiness reads, per walk of the sessions */
#define EVENTS_MAX 10       /* COAP_MAX_EPOLL_EVENTS of libcoap 4.3.1 */
#define RCVBUF (4 << 20)    /* a listening socket's receive buffer (net.core.rmem_max caps it) */

static pthread_mutex_t engines_mu = PTHREAD_MUTEX_INITIALIZER;
static struct coap_engine *engines[PROTO_COUNT]; /* the newest engine per protocol */

/* ---- logging -------------------------------------------------------- */

/* libcoap's messages: its errors as our warnings, the rest (per-packet
 * chatter, which a flood would multiply) as debug */
static void coap_logger(coap_log_t level, const char *message)
{
  size_t n = strlen(message);

  while (n > 0 && (message[n - 1] == '\n' || message[n - 1] == '\r'))
    n--;
  /* SECURITY: a peer can make libcoap say things (a spoofed RST is an
   * alert to it): at a bounded rate */
  if (level <= LOG_ERR)
    log_limited(LOG_WARN, 5, "libcoap: %.*s", (int)n, message);
  else
    log_debug("libcoap: %.*s", (int)n, message);
}

static pthread_once_t startup_once = PTHREAD_ONCE_INIT;

static void startup(void)
{
  coap_startup();
  coap_set_log_handler(coap_logger);
  coap_dtls_set_log_level(log_enabled(LOG_DEBUG) ? COAP_LEVEL_INFO : LOG_ERR);
  coap_set_log_level(log_enabled(LOG_DEBUG) ? COAP_LEVEL_INFO : LOG_ERR);
}

/* ---- addresses -------------------------------------------------------- */

void coap_peer_text(coap_session_t *s, char *ip, size_t iplen, char *ipport, size_t iplen2)
{
  const coap_address_t *a = coap_session_get_addr_remote(s);
  char buf[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;

  if (a && a->addr.sa.sa_family == AF_INET) {
    inet_ntop(AF_INET, &a->addr.sin.sin_addr, buf, sizeof(buf));
    port = ntohs(a->addr.sin.sin_port);
    snprintf(ipport, iplen2, "%s:%u", buf, port);
  } else if (a && a->addr.sa.sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &a->addr.sin6.sin6_addr, buf, sizeof(buf));
    /* IPv4 clients of a dual-stack socket appear as ::ffff:a.b.c.d */
    if (strncmp(buf, "::ffff:", 7) == 0 && strchr(buf, '.') != NULL)
      memmove(buf, buf + 7, strlen(buf + 7) + 1);
    port = ntohs(a->addr.sin6.sin6_port);
    snprintf(ipport, iplen2, strchr(buf, ':') ? "[%s]:%u" : "%s:%u", buf, port);
  } else {
    snprintf(ipport, iplen2, "?");
  }
  snprintf(ip, iplen, "%s", buf);
}

/* ---- what sessions hold (net/admission.h) ------------------------------ */

/* SECURITY: a source counts against its address only once it is real: a
 * CoAP session at its first datagram (no handshake to wait for), a DTLS
 * one once its cookie came back and its PSK identity was asked for (a
 * handshake), then once its handshake completed (a session). A ClientHello
 * alone (spoofable) counts for nothing; and since the count is kept here,
 * it does not depend on libcoap deleting every session with an event. */

int coap_session_over(coap_session_t *s)
{
  const struct coap_peer *p = coap_session_get_app_data(s);

  return p != NULL && p->over;
}

struct coap_peer *coap_peer_get(struct coap_engine *e, coap_session_t *s)
{
  struct coap_peer *p = coap_session_get_app_data(s);

  if (p != NULL)
    return p;
  p = calloc(1, sizeof(*p));
  if (p == NULL)
    return NULL;
  p->s = s;
  p->next = e->peers;
  if (e->peers)
    e->peers->prev = p;
  e->peers = p;
  coap_session_set_app_data(s, p);
  return p;
}

static void log_revoked(const struct coap_engine *e, const struct coap_peer *p)
{
  log_limited(LOG_INFO, 5, "%s: PSK identity %s: its key was removed or changed; session ended",
              proto_name(e->proto), p->identity);
}

static void peer_free(struct coap_engine *e, struct coap_peer *p)
{
  /* a revoked session its client closed before the sweep came round */
  if (p->revoked == 1 && p->connected)
    log_revoked(e, p);
  adm_give(e->adm, &p->conn);
  adm_give(e->adm, &p->handshake);
  if (p->counted) {
    delivery_sessions_open(e->proto, -1);
    e->nsessions--;
  }
  if (p->prev)
    p->prev->next = p->next;
  else
    e->peers = p->next;
  if (p->next)
    p->next->prev = p->prev;
  explicit_bzero(p->digest, sizeof(p->digest));
  free(p);
}

/* s is established: counted, and against its address's limit. */
static void peer_established(struct coap_engine *e, coap_session_t *s)
{
  struct coap_peer *p = coap_peer_get(e, s);
  const coap_address_t *ra = coap_session_get_addr_remote(s);
  struct adm_key k;

  if (p == NULL || p->counted)
    return;
  adm_give(e->adm, &p->handshake);
  p->counted = 1;
  delivery_sessions_open(e->proto, 1);
  e->nsessions++;
  adm_key_addr(ra != NULL ? &ra->addr.sa : NULL, &k);
  /* SECURITY: one address may hold at most per_ip sessions; the others
   * get no answer but 5.03 */
  if (adm_take(e->adm, &k, ADM_CONN, (unsigned)(e->set.per_ip > 0 ? e->set.per_ip : 0), &p->conn) <
      0) {
    p->over = 1;
    delivery_count(e->proto, FC_REFUSED, 1);
  }
}

static int on_event(coap_session_t *s, const coap_event_t ev)
{
  struct coap_engine *e = coap_get_app_data(coap_session_get_context(s));
  struct coap_peer *p = coap_session_get_app_data(s);

  switch (ev) {
  case COAP_EVENT_SERVER_SESSION_NEW:
    if (e->proto == PROTO_COAP)
      peer_established(e, s);
    break;
  case COAP_EVENT_DTLS_CONNECTED:
    delivery_count(e->proto, FC_HANDSHAKES, 1);
    peer_established(e, s);
    p = coap_session_get_app_data(s);
    if (p != NULL) {
      p->connected = 1;
      coap_dtls_connected(e, p);
    }
    break;
  case COAP_EVENT_DTLS_ERROR:
    delivery_count(e->proto, FC_HANDSHAKE_FAILURES, 1);
    if (p != NULL && !p->connected)
      coap_dtls_failed(e, p);
    break;
  case COAP_EVENT_SERVER_SESSION_DEL:
    if (p != NULL) {
      if (e->proto == PROTO_COAPS && !p->connected)
        coap_dtls_failed(e, p); /* a handshake given up */
      coap_session_set_app_data(s, NULL);
      peer_free(e, p);
    }
    break;
  default: break;
  }
  return 0;
}

/* Ends the sessions whose PSK was removed or changed (checked now and then,
 * and by every request), and the handshakes that knew their key and did
 * not complete in time (a wrong key): outside libcoap's callbacks, on the
 * thread. */
static void peers_sweep(struct coap_engine *e, int64_t now)
{
  int check = now - e->swept >= COAP_PSK_SWEEP_MS;

  if (check)
    e->swept = now;
  for (struct coap_peer *p = e->peers, *next; p != NULL; p = next) {
    next = p->next;
    if (check && p->connected && !p->revoked && p->identity[0] != '\0' &&
        !coap_dtls_key_current(e, p))
      p->revoked = 1;
    if (!p->connected && p->identity[0] != '\0' && now - p->asked > COAP_PSK_FINISH_MS) {
      coap_dtls_failed(e, p); /* reported once: it clears the identity */
      coap_session_disconnected(p->s, COAP_NACK_TLS_FAILED);
      continue;
    }
    if (p->revoked == 1 && p->connected) {
      p->revoked = 2; /* once */
      log_revoked(e, p);
      coap_session_disconnected(p->s, COAP_NACK_TLS_FAILED);
    }
  }
}

/* ---- the engine ---------------------------------------------------------- */

static void apply_limits(struct coap_engine *e)
{
  coap_context_set_max_idle_sessions(e->ctx, (unsigned)e->set.sessions);
  /* SECURITY: libcoap counts every source that sent a ClientHello as a
   * handshake for 30 s (and ignores new ones beyond its limit), though only
   * a cookie that came back makes one: spoofed ClientHellos would lock the
   * real devices out. Its limit leaves room for them; the real handshakes
   * are capped per address when their PSK identity is asked for. */
  coap_context_set_max_handshake_sessions(e->ctx, (unsigned)e->set.handshakes * COAP_HELLO_FACTOR);
  coap_context_set_session_timeout(e->ctx, (unsigned)e->set.timeout);
}

/* Takes settings and certificates a reload left for the thread. */
static void apply_pending(struct coap_engine *e)
{
  struct coap_settings *set;
  struct tls_set *tls;
  int tls_set;
  struct config_errors errs = {0};

  pthread_mutex_lock(&e->mu);
  set = e->pending_set;
  tls = e->pending_tls;
  tls_set = e->pending_tls_set;
  e->pending_set = NULL;
  e->pending_tls = NULL;
  e->pending_tls_set = 0;
  pthread_mutex_unlock(&e->mu);
  if (set) {
    e->set = *set;
    free(set);
    apply_limits(e);
  }
  if (tls_set) {
    if (coap_dtls_setup(e, tls, &errs) < 0) {
      log_error("%s: certificates not reloaded; the previous ones stay", proto_name(e->proto));
    }
    config_errors_clear(&errs);
  }
}

/* ---- libcoap's walk of its sessions --------------------------------------- */

/* libcoap 4.3.1's coap_io_prepare_epoll walks every session of the context
 * (idle ones to free, DTLS handshake timers, the earliest timeout to arm
 * its timer), and coap_io_do_epoll calls it after every batch of
 * datagrams: 0.3 to 1 ms of CPU with 10,000 LwM2M registrations, 77% of
 * this thread in issue 15's wave, while Updates waited behind it. It is
 * exported and called through the PLT, so this definition stands in for
 * libcoap's; it skips the walk when the engine says so (walk_skip: this
 * thread's next call, once) and otherwise calls libcoap's own. Whatever
 * stops it from standing in (a libcoap linked with -Bsymbolic, or
 * statically) leaves libcoap's walk after every batch, as before. */
static __thread int walk_skip;
static unsigned (*libcoap_prepare_epoll)(coap_context_t *, coap_tick_t);
static pthread_once_t prepare_once = PTHREAD_ONCE_INIT;

static void prepare_find(void)
{
  *(void **)&libcoap_prepare_epoll = dlsym(RTLD_NEXT, "coap_io_prepare_epoll");
}

unsigned int coap_io_prepare_epoll(coap_context_t *ctx, coap_tick_t now)
{
  if (walk_skip) {
    walk_skip = 0;
    return 0; /* coap_io_do_epoll ignores it */
  }
  pthread_once(&prepare_once, prepare_find);
  if (libcoap_prepare_epoll == NULL) {
    log_error("coap: libcoap's coap_io_prepare_epoll not found");
    abort();
  }
  return libcoap_prepare_epoll(ctx, now);
}

/* One pass of libcoap's I/O, waiting up to wait_ms for a datagram.
 *
 * Why not coap_io_process: in libcoap 4.3.1 each pass walks every session
 * of the context twice (coap_io_prepare_epoll before the wait, and again at
 * the end of coap_io_do_epoll), and reads one datagram per readable socket.
 * Here:
 * - a readable socket's event is handed to coap_io_do_epoll READS_PER_EVENT
 *   times, so that one pass reads up to that many datagrams. A read past
 *   the socket's last datagram fails with EAGAIN, costs one system call and
 *   is only logged at libcoap's warning level (not shown);
 * - the walk is made (before the wait, or at the end of coap_io_do_epoll)
 *   only when libcoap's timer fired (a retransmission, an async answer, an
 *   observe notification or an idle session due: it armed the timer for
 *   it), when datagrams were read or requests sent (w->dirty) and no walk
 *   was made for WALK_MS, and at least every PREPARE_MS. Datagrams are read
 *   and answered at every wake without it. What needs a walk after them:
 *   a new DTLS handshake's timer (a second or more: at most WALK_MS late),
 *   idle sessions (seconds), and a CON sent: coap_send arms libcoap's timer
 *   itself (coap_wait_ack), but with its time since the send queue's base,
 *   later than due when the queue was not empty and the timer armed later
 *   still; a walk within WALK_MS re-arms it (the first retransmission is 2
 *   s or more away), as one did after every batch before.
 * Without epoll in libcoap, coap_io_process as before. */
struct walk_state {
  int64_t at; /* monotonic ms of the last walk; 0: none yet */
  int dirty;  /* datagrams read or requests sent since */
};

static void walk_now(struct coap_engine *e, struct walk_state *w, unsigned *wait_ms)
{
  coap_tick_t t;
  unsigned next;

  coap_ticks(&t);
  next = coap_io_prepare_epoll(e->ctx, t);
  w->at = mono_ms();
  w->dirty = 0;
  if (next > 0 && next < *wait_ms)
    *wait_ms = next;
}

static void engine_io(struct coap_engine *e, unsigned wait_ms, struct walk_state *w)
{
  struct epoll_event ev[EVENTS_MAX], batch[EVENTS_MAX * READS_PER_EVENT];
  int64_t now = mono_ms();
  int fd = coap_context_get_coap_fd(e->ctx), n, m = 0, timer = 0;

  if (fd < 0) {
    coap_io_process(e->ctx, wait_ms);
    return;
  }
  if (w->at == 0 || now - w->at >= PREPARE_MS || (w->dirty && now - w->at >= WALK_MS))
    walk_now(e, w, &wait_ms);
  else if (w->dirty && (unsigned)(WALK_MS - (now - w->at)) < wait_ms)
    wait_ms = (unsigned)(WALK_MS - (now - w->at));
  n = epoll_wait(fd, ev, EVENTS_MAX, (int)wait_ms);
  if (n <= 0)
    return;
  for (int i = 0; i < n; i++) {
    /* libcoap's timer has no pointer; a socket's readiness to read is
     * repeated, anything else (a write readiness) handed over once */
    int copies = ev[i].data.ptr != NULL && ev[i].events == EPOLLIN ? READS_PER_EVENT : 1;
    timer |= ev[i].data.ptr == NULL;
    for (int k = 0; k < copies; k++)
      batch[m++] = ev[i];
  }
  now = mono_ms();
  walk_skip = !timer && now - w->at < WALK_MS;
  coap_io_do_epoll(e->ctx, batch, (size_t)m);
  if (walk_skip) {
    walk_skip = 0; /* not called: a libcoap that does not walk through our definition */
    w->at = mono_ms();
    w->dirty = 0;
  } else if (timer || now - w->at >= WALK_MS) {
    w->at = mono_ms(); /* coap_io_do_epoll ended with the walk */
    w->dirty = 0;
  } else {
    w->dirty = 1;
  }
}

/* Is a datagram (or libcoap's timer) waiting? Asked between a tick's
 * requests, so that an Update that came meanwhile is answered before the
 * next (lwm2m_tick). One epoll_wait that does not wait: the event stays. */
int coap_input_waiting(struct coap_engine *e)
{
  struct epoll_event ev;
  int fd = coap_context_get_coap_fd(e->ctx);

  return fd >= 0 && epoll_wait(fd, &ev, 1, 0) > 0;
}

static void *engine_main(void *arg)
{
  struct coap_engine *e = arg;
  int64_t last = 0, trimmed = 0;
  struct walk_state walk = {0, 0};
  unsigned seen = 0, sent = 0;
  int more = 0;

  while (!atomic_load(&e->stop)) {
    int64_t now;
    unsigned done;
    /* LwM2M work left from the last slice: the socket polled, not waited
     * on; answers waiting on the writer: a short wait, so that each goes
     * out within WAIT_POLL_MS of its commit */
    unsigned wait = LOOP_MS;
    int due = lwm2m_wait_ms(e, mono_ms());
    if (more)
      wait = 0;
    else if (coap_waits_pending(e) || lwm2m_commits_pending(e))
      wait = WAIT_POLL_MS;
    if (due >= 0 && (unsigned)due < wait)
      wait = (unsigned)due;
    engine_io(e, wait, &walk);
    now = mono_ms();
    if ((done = atomic_load(&e->commits_done)) != seen || coap_waits_pending(e)) {
      seen = done;
      coap_waits_run(e, now);
    }
    more = lwm2m_tick(e, now);
    if (e->sent != sent) { /* CONs queued: their timer wants a walk (engine_io) */
      sent = e->sent;
      walk.dirty = 1;
    }
    if (now - last >= HOUSEKEEP_MS) {
      last = now;
      apply_pending(e);
      coap_dtls_wipe(e);
      peers_sweep(e, now);
      coap_xfers_expire(&e->xfers, now, COAP_XFER_IDLE_MS);
      atomic_store(&e->active, coap_xfers_active(&e->xfers, now, BUSY_WINDOW_MS));
    }
    if (now - trimmed >= TRIM_MS) {
      /* a DTLS handshake allocates and frees far more than a session
       * keeps: give the freed memory of this thread's arena back */
      trimmed = now;
#ifndef __SANITIZE_ADDRESS__
      /* (not under AddressSanitizer: its allocator is not glibc's, whose
       * first use would then be here, by two engine threads at once) */
      malloc_trim(0);
#endif
    }
  }
  return NULL;
}

static void engine_free(struct coap_engine *e)
{
  lwm2m_free(e); /* its sessions' references first */
  if (e->ctx) {
    coap_waits_free(e);        /* their sessions' references, while the context lives */
    coap_free_context(e->ctx); /* before the downloads: no handler runs after */
    e->ctx = NULL;
    delivery_sessions_open(e->proto, -e->nsessions); /* freed without events */
  }
  while (e->peers != NULL) {
    e->peers->counted = 0; /* already taken off above */
    peer_free(e, e->peers);
  }
  adm_free(e->adm);
  coap_xfers_free(&e->xfers);
  pthread_mutex_lock(&e->mu);
  free(e->pending_set);
  if (e->pending_tls_set)
    tls_set_unref(e->pending_tls);
  pthread_mutex_unlock(&e->mu);
  coap_dtls_free(e);
  tls_set_unref(e->tls);
  pthread_mutex_destroy(&e->mu);
  explicit_bzero(e->psk_out, sizeof(e->psk_out));
  free(e);
}

static void settings_of(const struct coap_conf *fc, struct coap_settings *s)
{
  s->sessions = fc->base.connection_limit;
  s->handshakes = fc->handshake_limit;
  s->timeout = fc->base.timeout;
  s->per_ip = fc->base.per_ip_limit;
  s->anonymous = fc->anonymous_packages;
  s->max_report = fc->max_report;
  s->lwm2m = fc->lwm2m;
  s->lwm2m_insecure = fc->lwm2m_insecure;
  s->lwm2m_registrations = fc->lwm2m_registrations;
  s->lwm2m_lt_min = fc->lwm2m_lifetime_min;
  s->lwm2m_lt_max = fc->lwm2m_lifetime_max;
  s->lwm2m_poll = fc->lwm2m_poll;
  s->lwm2m_awake = fc->lwm2m_queue_awake;
}

static void listen_key(const struct front *fr, char *out, size_t len)
{
  size_t n = 0;

  out[0] = '\0';
  for (int i = 0; i < fr->n && n < len; i++)
    n += (size_t)snprintf(out + n, len - n, "%s ", fr->addr[i].text);
}

/* The receive buffer of the UDP socket libcoap bound to a (it gives no
 * endpoint's descriptor in 4.3.1: the one whose local address is a's).
 * Why: every device's datagrams arrive on that one socket, and the
 * default buffer (net.core.rmem_default, 208 KiB: about 200 small
 * datagrams on Linux) overflowed whenever the thread was held a second
 * (a loaded machine, a registration storm): Updates lost, registrations
 * retransmitted (issue 15's bench: 5,574 datagrams dropped while 10,000
 * devices registered). RCVBUF holds some 4,000. */
static int same_addr(const struct sockaddr_storage *x, const struct sockaddr_storage *y)
{
  const struct sockaddr_in *x4 = (const void *)x, *y4 = (const void *)y;
  const struct sockaddr_in6 *x6 = (const void *)x, *y6 = (const void *)y;

  if (x->ss_family != y->ss_family)
    return 0;
  if (x->ss_family == AF_INET)
    return x4->sin_port == y4->sin_port && x4->sin_addr.s_addr == y4->sin_addr.s_addr;
  return x->ss_family == AF_INET6 && x6->sin6_port == y6->sin6_port &&
         memcmp(&x6->sin6_addr, &y6->sin6_addr, sizeof(x6->sin6_addr)) == 0;
}

static void enlarge_rcvbuf(const struct sockaddr_storage *a)
{
  /* the open descriptors only (not every number up to RLIMIT_NOFILE) */
  DIR *dir = opendir("/proc/self/fd");
  struct dirent *de;

  while (dir != NULL && (de = readdir(dir)) != NULL) {
    struct sockaddr_storage l;
    socklen_t llen = sizeof(l), tlen = sizeof(int);
    int fd = atoi(de->d_name), type = 0, size = RCVBUF;
    if (de->d_name[0] < '0' || de->d_name[0] > '9' || fd == dirfd(dir) ||
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 || type != SOCK_DGRAM ||
        getsockname(fd, (struct sockaddr *)&l, &llen) < 0 || !same_addr(&l, a))
      continue;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)) < 0)
      log_warn("coap: cannot enlarge a socket's receive buffer: %s", strerror(errno));
    break;
  }
  if (dir != NULL)
    closedir(dir);
}

/* Binds fr's addresses in a new context and starts its thread. */
static struct coap_engine *engine_new(struct front *fr, const struct front_env *env,
                                      struct tls_set *tls, struct config_errors *errs)
{
  const struct coap_conf *fc = config_section(env->conf, fr->row->section);
  struct coap_engine *e = calloc(1, sizeof(*e));

  if (e == NULL) {
    tls_set_unref(tls);
    config_errors_add(errs, "%s: out of memory", fr->row->section);
    return NULL;
  }
  e->proto = (enum proto)fr->row->proto;
  e->fleet = env->fleet;
  pthread_mutex_init(&e->mu, NULL);
  settings_of(fc, &e->set);
  listen_key(fr, e->listen_key, sizeof(e->listen_key));
  e->adm = adm_new((unsigned)(fc->base.connection_limit + fc->handshake_limit) * 2 < ADM_TABLE_MAX
                       ? (unsigned)(fc->base.connection_limit + fc->handshake_limit) * 2
                       : ADM_TABLE_MAX);
  if (e->adm == NULL || coap_xfers_init(&e->xfers, COAP_XFER_MAX) < 0 ||
      (e->ctx = coap_new_context(NULL)) == NULL) {
    tls_set_unref(tls);
    config_errors_add(errs, "%s: cannot set up libcoap", fr->row->section);
    goto fail;
  }
  coap_set_app_data(e->ctx, e);
  coap_register_event_handler(e->ctx, on_event);
  apply_limits(e);
  /* Block2 is ours (see coap_res.c): libcoap's large-body support keeps
   * transfer state only for seconds and would answer blocks by itself */
  coap_context_set_block_mode(e->ctx, 0);
  if (e->proto == PROTO_COAPS && coap_dtls_setup(e, tls, errs) < 0)
    goto fail;
  if (e->proto != PROTO_COAPS)
    tls_set_unref(tls);
  if (coap_res_register(e) < 0 || lwm2m_init(e) < 0) {
    config_errors_add(errs, "%s: cannot register resources", fr->row->section);
    goto fail;
  }
  for (int i = 0; i < fr->n; i++) {
    coap_address_t a;
    coap_address_init(&a);
    memcpy(&a.addr, &fr->addr[i].ss, fr->addr[i].len);
    a.size = fr->addr[i].len;
    if (coap_new_endpoint(e->ctx, &a, e->proto == PROTO_COAPS ? COAP_PROTO_DTLS : COAP_PROTO_UDP) ==
        NULL) {
      config_errors_add(errs, "%s: cannot listen on %s (UDP)", fr->row->section, fr->addr[i].text);
      goto fail;
    }
    enlarge_rcvbuf(&fr->addr[i].ss);
  }
  atomic_store(&e->refs, 1);
  if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
    config_errors_add(errs, "%s: cannot start its thread", fr->row->section);
    goto fail;
  }
  return e;

fail:
  engine_free(e);
  return NULL;
}

/* ---- the row ---------------------------------------------------------------- */

static int coap_start(struct front *fr, const struct front_env *env, struct config_errors *errs)
{
  const struct coap_conf *fc = config_section(env->conf, fr->row->section);
  struct tls_set *tls = NULL;
  struct coap_engine *e;
  char key[sizeof(e->listen_key)];

  pthread_once(&startup_once, startup);
  if (fc->tls.n_sni > 0 || (fc->tls.priorities != NULL && fc->tls.priorities[0] != '\0'))
    log_warn("%s: sni and priorities are not used over DTLS (see README)", fr->row->section);
  /* this reload's set, read and built once (tls_set.h); NULL: PSK only */
  if (fr->row->proto == PROTO_COAPS)
    tls = tls_set_ref(front_env_tls(env, fr->row));
  listen_key(fr, key, sizeof(key));
  pthread_mutex_lock(&engines_mu);
  e = engines[fr->row->proto];
  if (e != NULL && !atomic_load(&e->draining) && strcmp(e->listen_key, key) == 0) {
    /* a reload on the same addresses: in place (see the top) */
    struct coap_settings *set;
    if (fr->row->proto == PROTO_COAPS && tls == NULL && atomic_load(&e->has_pki)) {
      /* refused, not ignored: the engine would go on with the old one */
      pthread_mutex_unlock(&engines_mu);
      config_errors_add(errs,
                        "%s: cert removed: a running engine cannot drop its certificate "
                        "(libcoap); restart dfotad, or change [%s] listen with it",
                        fr->row->section, fr->row->section);
      return -1;
    }
    set = malloc(sizeof(*set));
    if (set == NULL) {
      pthread_mutex_unlock(&engines_mu);
      tls_set_unref(tls);
      config_errors_add(errs, "%s: out of memory", fr->row->section);
      return -1;
    }
    settings_of(fc, set);
    pthread_mutex_lock(&e->mu);
    free(e->pending_set);
    e->pending_set = set;
    if (e->pending_tls_set)
      tls_set_unref(e->pending_tls);
    e->pending_tls = tls;
    e->pending_tls_set = fr->row->proto == PROTO_COAPS && tls != NULL;
    if (!e->pending_tls_set)
      tls_set_unref(tls);
    pthread_mutex_unlock(&e->mu);
    atomic_fetch_add(&e->refs, 1);
    pthread_mutex_unlock(&engines_mu);
    fr->priv = e;
    log_info("%s: reloaded in place on %s", fr->row->section, key);
    return 0;
  }
  pthread_mutex_unlock(&engines_mu);
  e = engine_new(fr, env, tls, errs);
  if (e == NULL)
    return -1;
  pthread_mutex_lock(&engines_mu);
  engines[fr->row->proto] = e;
  pthread_mutex_unlock(&engines_mu);
  fr->priv = e;
  log_info("%s: listening on %s(UDP%s)", fr->row->section, key,
           fr->row->proto == PROTO_COAPS ? ", DTLS" : "");
  return 0;
}

static void coap_quiesce(struct front *fr)
{
  struct coap_engine *e = fr->priv;

  /* shared with a newer instance: that one goes on taking work */
  if (e != NULL && atomic_load(&e->refs) == 1)
    atomic_store(&e->draining, 1);
}

static int coap_busy(struct front *fr)
{
  struct coap_engine *e = fr->priv;

  if (e == NULL || atomic_load(&e->refs) > 1)
    return 0;
  return (int)atomic_load(&e->active);
}

static void coap_stop(struct front *fr)
{
  struct coap_engine *e = fr->priv;

  fr->priv = NULL;
  if (e == NULL || atomic_fetch_sub(&e->refs, 1) > 1)
    return;
  pthread_mutex_lock(&engines_mu);
  if (engines[e->proto] == e)
    engines[e->proto] = NULL;
  pthread_mutex_unlock(&engines_mu);
  atomic_store(&e->stop, 1);
  pthread_join(e->thread, NULL);
  engine_free(e);
}

const struct front_row coap_front_row = {.section = "coap",
                                         .proto = PROTO_COAP,
                                         .start = coap_start,
                                         .quiesce = coap_quiesce,
                                         .busy = coap_busy,
                                         .stop = coap_stop,
                                         .conf = &coap_conf_section,
                                         .datagram = 1};
const struct front_row coaps_front_row = {.section = "coaps",
                                          .proto = PROTO_COAPS,
                                          .start = coap_start,
                                          .quiesce = coap_quiesce,
                                          .busy = coap_busy,
                                          .stop = coap_stop,
                                          .conf = &coaps_conf_section,
                                          .datagram = 1,
                                          .tls = TLS_ADAPTER_DTLS,
                                          .tls_offset = offsetof(struct coap_conf, tls)};
