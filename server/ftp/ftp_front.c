/* ftp_front.c: the FTP(S) front's rows ([ftp]: control port with explicit
 * TLS through AUTH TLS; [ftps]: implicit TLS) and what an instance owns:
 * its event threads (libevent), the listeners on the sockets the listener
 * bound, the TLS context, the passive port pool, and the admission table
 * (net/admission.h: sessions and logins per address, sessions and ports
 * per device), which all instances share so that a reload does not reset
 * it. Failed logins go to the delivery core's throttle, every front's. */
#include "autoconfig.h"

#include "ftp_front.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../net/admission.h"
#include "../../net/tls_openssl.h"
#include "../../net/tls_set.h"
#include "../../util/log.h"
#include "../../util/util.h"
#include "ftp_cmd.h"
#include "ftp_conf.h"
#include "ftp_int.h"

/* ---- admission ------------------------------------------------------------ */

/* One table for every FTP instance (addresses and device credentials), so
 * that a reload does not reset what peers hold. */
static pthread_once_t adm_once = PTHREAD_ONCE_INIT;
struct admission *ftp_adm;

static void adm_init(void) { ftp_adm = adm_new(FTP_ADM_ENTRIES); }

/* ---- logins in progress ------------------------------------------------------ */

/* Takes s off the list; pend_mu held. */
static void pend_unlink(struct ftp_front *ff, struct session *s)
{
  if (!s->pending)
    return;
  if (s->pprev)
    s->pprev->pnext = s->pnext;
  else
    ff->pend_head = s->pnext;
  if (s->pnext)
    s->pnext->pprev = s->pprev;
  else
    ff->pend_tail = s->pprev;
  s->pnext = s->pprev = NULL;
  s->pending = 0;
}

void ftp_login_over(struct session *s)
{
  struct ftp_front *ff = s->ff;

  pthread_mutex_lock(&ff->pend_mu);
  pend_unlink(ff, s);
  pthread_mutex_unlock(&ff->pend_mu);
  if (s->counted_login) {
    s->counted_login = 0;
    atomic_fetch_sub(&ff->logins, 1);
  }
}

static void worker_order(struct ftp_worker *w, int order);

/* SECURITY: every login slot is taken: the oldest login in progress makes
 * room (its worker closes it), rather than the newcomer being refused, so
 * that a flood of connections that do not log in cannot lock a device out.
 * 0, or -1 when there is none old enough to evict. */
static int evict_login(struct ftp_front *ff)
{
  struct session *s;

  pthread_mutex_lock(&ff->pend_mu);
  s = ff->pend_head;
  if (s != NULL && mono_ms() - s->opened < FTP_EVICT_MIN_MS)
    s = NULL; /* a burst, not a siege: the newcomer waits its turn */
  if (s != NULL) {
    pend_unlink(ff, s);
    atomic_store(&s->evict, 1);
    worker_order(s->w, WAKE_EVICT);
  }
  pthread_mutex_unlock(&ff->pend_mu);
  return s != NULL ? 0 : -1;
}

/* ---- passive ports ------------------------------------------------------------ */

int ftp_port_take(struct ftp_front *ff, const struct sockaddr_storage *local, int *port)
{
  struct sockaddr_storage ss = *local;
  int n = ff->pasv_hi - ff->pasv_lo + 1, one = 1;

  for (int tries = 0; tries < (ff->pasv_lo ? n : 1); tries++) {
    int p = 0, fd;
    if (ff->pasv_lo) {
      /* a free slot of the pool, from where the last search ended */
      pthread_mutex_lock(&ff->port_mu);
      for (int i = 0; i < n && p == 0; i++) {
        int k = (ff->port_next + i) % n;
        if (!ff->port_used[k]) {
          ff->port_used[k] = 1;
          p = ff->pasv_lo + k;
          ff->port_next = (k + 1) % n;
        }
      }
      pthread_mutex_unlock(&ff->port_mu);
      if (p == 0)
        return -1;
    }
    if (ss.ss_family == AF_INET)
      ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)p);
    else
      ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)p);
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
      /* earlier data connections on this port may linger in TIME_WAIT */
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      if (bind(fd, (struct sockaddr *)&ss,
               ss.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                       : sizeof(struct sockaddr_in6)) == 0 &&
          listen(fd, 1) == 0) {
        socklen_t len = sizeof(ss);
        getsockname(fd, (struct sockaddr *)&ss, &len);
        *port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                              : ((struct sockaddr_in6 *)&ss)->sin6_port);
        return fd;
      }
      close(fd);
    }
    if (p != 0)
      ftp_port_give(ff, p); /* in use by someone else: try the next */
  }
  return -1;
}

void ftp_port_give(struct ftp_front *ff, int port)
{
  if (ff->pasv_lo == 0 || port < ff->pasv_lo || port > ff->pasv_hi)
    return;
  pthread_mutex_lock(&ff->port_mu);
  ff->port_used[port - ff->pasv_lo] = 0;
  pthread_mutex_unlock(&ff->port_mu);
}

/* ---- TLS -------------------------------------------------------------- */

/* SECURITY: a data connection must resume the TLS session of its own
 * control connection (vsftpd's require_ssl_reuse, made stricter): every
 * ticket issued on a control connection carries that connection's random
 * nonce (tls_openssl_bind), and the data connection's resumed session must
 * carry it too, so neither a fresh handshake nor a session from another
 * login will do. [ftp] tls_session_reuse = off lifts it, for clients that
 * cannot resume (ftp_data.c). */

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* libevent's own messages go to our log, not raw to stderr */
static void event_log(int severity, const char *msg)
{
  if (severity >= EVENT_LOG_WARN)
    log_limited(LOG_WARN, 5, "ftp: libevent: %s", msg);
  else
    log_debug("ftp: libevent: %s", msg);
}

static void init_once(void)
{
  /* cross-thread event_active() (quiesce, stop) needs libevent's locks */
  evthread_use_pthreads();
  event_set_log_callback(event_log);
}

/* ---- workers -------------------------------------------------------------- */

static void on_accept(struct ftp_worker *w, int fd, struct sockaddr *sa, socklen_t salen)
{
  struct ftp_front *ff = w->ff;
  const char *why = NULL;
  struct adm_hold hold[2] = {{0}};
  struct adm_key k;

  adm_key_addr(sa, &k);
  if (atomic_load(&ff->quiescing))
    why = "421 Service not available, closing control connection.\r\n";
  else if (atomic_load(&ff->sessions) >= ff->max_sessions)
    why = "421 Too many sessions, try later.\r\n";
  /* SECURITY: per address (an IPv6 /64): its sessions, and its logins in
   * progress, so that one address cannot take every login slot */
  else if (adm_take(ftp_adm, &k, ADM_CONN, (unsigned)ff->per_ip, &hold[0]) < 0)
    why = "421 Too many sessions from your address.\r\n";
  else if (adm_take(ftp_adm, &k, ADM_LOGIN, (unsigned)ff->login_per_ip, &hold[1]) < 0)
    why = "421 Too many logins in progress from your address, try later.\r\n";
  else if (atomic_load(&ff->logins) >= ff->max_logins && evict_login(ff) < 0)
    why = "421 Too many logins in progress, try later.\r\n";
  if (why != NULL) {
    adm_give(ftp_adm, &hold[1]);
    adm_give(ftp_adm, &hold[0]);
    /* over a limit: one best-effort line (plain even on [ftps], where a
     * handshake would cost more than the refusal) */
    if (!ff->implicit_tls && send(fd, why, strlen(why), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
      (void)0;
    close(fd);
    return;
  }
  session_new(w, fd, sa, salen, hold);
}

/* A listening socket is ready: at most FTP_ACCEPT_BATCH connections now. */
static void on_listen(evutil_socket_t lfd, short what, void *arg)
{
  struct ftp_worker *w = arg;

  (void)what;
  for (int i = 0; i < FTP_ACCEPT_BATCH; i++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
        log_limited(LOG_WARN, 1, "ftp: accept: %s", strerror(errno));
      return;
    }
    on_accept(w, fd, (struct sockaddr *)&ss, len);
  }
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
  struct ftp_worker *w = arg;
  int order = atomic_exchange(&w->order, 0);

  (void)fd;
  (void)what;
  if (order & (WAKE_QUIESCE | WAKE_STOP))
    for (int i = 0; i < w->nlev; i++)
      event_del(w->lev[i]);
  if ((order & WAKE_EVICT) && !(order & WAKE_STOP))
    for (struct session *s = w->head, *next; s; s = next) {
      next = s->next;
      if (atomic_exchange(&s->evict, 0) && s->state != S_READY && s->state != S_CLOSING)
        session_close(s, "421 Too many logins in progress; yours waited longest.");
    }
  if (order & WAKE_STOP) {
    while (w->head)
      session_free(w->head);
    event_base_loopbreak(w->base);
  } else if (order & WAKE_QUIESCE) {
    for (struct session *s = w->head, *next; s; s = next) {
      next = s->next;
      session_quiesce(s);
    }
  }
}

static void *worker_main(void *arg)
{
  struct ftp_worker *w = arg;

  event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
  return NULL;
}

static void worker_order(struct ftp_worker *w, int order)
{
  atomic_fetch_or(&w->order, order);
  event_active(w->wake, EV_READ, 0);
}

static void instance_free(struct ftp_front *ff)
{
  for (int i = 0; i < ff->nw; i++) {
    struct ftp_worker *w = &ff->w[i];
    if (w->started) {
      worker_order(w, WAKE_STOP);
      pthread_join(w->thread, NULL);
    }
    for (int k = 0; k < w->nlev; k++)
      event_free(w->lev[k]); /* the sockets stay: they are the listener's */
    if (w->wake)
      event_free(w->wake);
    if (w->base)
      event_base_free(w->base);
  }
  free(ff->w);
  /* live SSLs hold the context; the set goes when its last user does */
  tls_set_unref(ff->tls);
  free(ff->port_used);
  pthread_mutex_destroy(&ff->port_mu);
  pthread_mutex_destroy(&ff->pend_mu);
  free(ff);
}

/* ---- the row ------------------------------------------------------------------- */

static int ftp_start(struct front *fr, const struct front_env *env, struct config_errors *errs)
{
  const char *section = fr->row->section;
  enum proto proto = (enum proto)fr->row->proto;
  const struct ftp_conf *fc = config_section(env->conf, section);
  struct ftp_front *ff;
  long ncpu = usable_cpus();
  int before = errs->n;

  pthread_once(&once, init_once);
  pthread_once(&adm_once, adm_init);
  if (ftp_adm == NULL) {
    config_errors_add(errs, "%s: out of memory", section);
    return -1;
  }
  ff = calloc(1, sizeof(*ff));
  if (ff == NULL) {
    config_errors_add(errs, "%s: out of memory", section);
    return -1;
  }
  pthread_mutex_init(&ff->port_mu, NULL);
  pthread_mutex_init(&ff->pend_mu, NULL);
  ff->fr = fr;
  ff->proto = proto;
  ff->implicit_tls = proto == PROTO_FTPS;
  ff->fleet = env->fleet;
  ff->max_sessions = fc->base.connection_limit;
  ff->per_ip = fc->base.per_ip_limit;
  ff->max_logins = fc->login_limit;
  ff->login_per_ip = fc->login_per_ip_limit;
  ff->device_sessions = fc->device_session_limit;
  ff->device_ports = fc->device_port_limit;
  ff->idle_s = fc->base.timeout;
  ff->login_s = fc->login_timeout;
  ff->data_s = fc->data_timeout;
  ff->require_tls = fc->require_tls;
  ff->port_enable = fc->port_enable;
  ff->anonymous = fc->anonymous_packages;
  ff->tls_reuse = fc->tls_session_reuse == FTP_TLS_REUSE_REQUIRED;
  ff->pasv_lo = fc->pasv_ports.lo;
  ff->pasv_hi = fc->pasv_ports.hi;
  if (fc->pasv_address != NULL && fc->pasv_address[0] != '\0') {
    if (inet_pton(AF_INET, fc->pasv_address, &ff->announce) != 1) {
      config_errors_add(errs, "%s: pasv_address %s: an IPv4 address is needed", section,
                        fc->pasv_address);
      goto fail;
    }
    ff->has_announce = 1;
  }
  if (ff->pasv_lo > 0 &&
      (ff->port_used = calloc((size_t)(ff->pasv_hi - ff->pasv_lo + 1), 1)) == NULL) {
    config_errors_add(errs, "%s: out of memory", section);
    goto fail;
  }
  /* [ftps] needs a certificate; [ftp] offers AUTH TLS when it has one:
   * this reload's set, read and built once (tls_set.h) */
  ff->tls = tls_set_ref(front_env_tls(env, fr->row));
  if (ff->tls != NULL) {
    ff->ssl_ctx = ff->tls->ssl_ctx;
  } else if (ff->implicit_tls) {
    config_errors_add(errs, "%s: needs cert and key", section);
    goto fail;
  } else if (ff->require_tls) {
    config_errors_add(errs, "%s: require_tls needs cert and key", section);
    goto fail;
  }

  ff->nw = fc->threads > 0 ? fc->threads : (int)(ncpu > 0 ? ncpu : 1);
  ff->w = calloc((size_t)ff->nw, sizeof(*ff->w));
  if (ff->w == NULL)
    goto oom;
  for (int i = 0; i < ff->nw; i++) {
    struct ftp_worker *w = &ff->w[i];
    w->ff = ff;
    w->base = event_base_new();
    if (w->base == NULL)
      goto oom;
    w->wake = event_new(w->base, -1, 0, on_wake, w);
    if (w->wake == NULL)
      goto oom;
    /* every worker accepts on every socket: the kernel hands each
     * connection to one of them, and its session stays there */
    for (int k = 0; k < fr->n; k++) {
      if (fr->fd[k] < 0)
        continue;
      /* several workers wait on one socket: it must not block */
      evutil_make_socket_nonblocking(fr->fd[k]);
      w->lev[w->nlev] = event_new(w->base, fr->fd[k], EV_READ | EV_PERSIST, on_listen, w);
      if (w->lev[w->nlev] == NULL || event_add(w->lev[w->nlev], NULL) < 0)
        goto oom;
      w->nlev++;
    }
  }
  for (int i = 0; i < ff->nw; i++) {
    if (pthread_create(&ff->w[i].thread, NULL, worker_main, &ff->w[i]) != 0) {
      config_errors_add(errs, "%s: cannot start a thread", section);
      goto fail;
    }
    ff->w[i].started = 1;
  }
  fr->priv = ff;
  for (int k = 0; k < fr->n; k++)
    log_info("listening: %s %s", section, fr->addr[k].text);
  return 0;
oom:
  config_errors_add(errs, "%s: out of memory", section);
fail:
  if (errs->n == before)
    config_errors_add(errs, "%s: the front did not start", section);
  instance_free(ff);
  return -1;
}

static void ftp_quiesce(struct front *fr)
{
  struct ftp_front *ff = fr->priv;

  atomic_store(&ff->quiescing, 1);
  for (int i = 0; i < ff->nw; i++)
    worker_order(&ff->w[i], WAKE_QUIESCE);
}

static int ftp_busy(struct front *fr)
{
  struct ftp_front *ff = fr->priv;

  return atomic_load(&ff->sessions);
}

static void ftp_stop(struct front *fr)
{
  struct ftp_front *ff = fr->priv;

  if (ff == NULL)
    return;
  instance_free(ff);
  fr->priv = NULL;
}

const struct front_row ftp_row = {.section = "ftp",
                                  .proto = PROTO_FTP,
                                  .socktype = SOCK_STREAM,
                                  .start = ftp_start,
                                  .quiesce = ftp_quiesce,
                                  .busy = ftp_busy,
                                  .stop = ftp_stop,
                                  .conf = &ftp_conf_section,
                                  .tls = TLS_ADAPTER_OPENSSL,
                                  .tls_offset = offsetof(struct ftp_conf, tls)};
const struct front_row ftps_row = {.section = "ftps",
                                   .proto = PROTO_FTPS,
                                   .socktype = SOCK_STREAM,
                                   .start = ftp_start,
                                   .quiesce = ftp_quiesce,
                                   .busy = ftp_busy,
                                   .stop = ftp_stop,
                                   .conf = &ftps_conf_section,
                                   .tls = TLS_ADAPTER_OPENSSL,
                                   .tls_offset = offsetof(struct ftp_conf, tls),
                                   .tls_needs_cert = 1};
