/* ftp_front.c: the FTP(S) front's rows ([ftp]: control port with explicit
 * TLS through AUTH TLS; [ftps]: implicit TLS) and what an instance owns:
 * its event threads (libevent), the listeners on the sockets the listener
 * bound, the TLS context, the passive port pool, and the limits kept per
 * client address (sessions, failed-login delays), which all instances
 * share so that a reload does not reset them. */
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

#include "../../net/tls_openssl.h"
#include "../../net/tls_store.h"
#include "../../util/log.h"
#include "../../util/util.h"
#include "ftp_cmd.h"
#include "ftp_int.h"

int ftp_ssl_nonce_idx = -1;

/* ---- limits per client address ------------------------------------------- */

struct addr_ent {
  unsigned char key[16]; /* IPv6, or IPv4-mapped */
  int sessions;
  int fails;
  int64_t last_fail; /* monotonic ms */
  struct addr_ent *next;
};

#define ADDR_BUCKETS 4096

static pthread_mutex_t addr_mu = PTHREAD_MUTEX_INITIALIZER;
static struct addr_ent *addr_tab[ADDR_BUCKETS];
static int addr_count;

static void addr_key(const struct sockaddr_storage *ss, unsigned char key[16])
{
  memset(key, 0, 16);
  if (ss->ss_family == AF_INET) {
    key[10] = key[11] = 0xff;
    memcpy(key + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
  } else if (ss->ss_family == AF_INET6) {
    memcpy(key, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
  }
}

int ftp_same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
  unsigned char ka[16], kb[16];

  addr_key(a, ka);
  addr_key(b, kb);
  return memcmp(ka, kb, 16) == 0;
}

static unsigned addr_hash(const unsigned char key[16])
{
  uint32_t h = 2166136261u;

  for (int i = 0; i < 16; i++)
    h = (h ^ key[i]) * 16777619u;
  return h % ADDR_BUCKETS;
}

/* Finds (or with create, adds) the entry of key; addr_mu held. */
static struct addr_ent *addr_find(const unsigned char key[16], int create)
{
  struct addr_ent *e;
  unsigned h = addr_hash(key);

  for (e = addr_tab[h]; e; e = e->next)
    if (memcmp(e->key, key, 16) == 0)
      return e;
  /* SECURITY: the table is bounded; a flood of addresses cannot grow it */
  if (!create || addr_count >= FTP_ADDR_TABLE_MAX || (e = calloc(1, sizeof(*e))) == NULL)
    return NULL;
  memcpy(e->key, key, 16);
  e->next = addr_tab[h];
  addr_tab[h] = e;
  addr_count++;
  return e;
}

/* Counts a session of the address: 0, or -1 when over per_ip (0: no limit)
 * or when the table is full. */
static int addr_enter(const struct sockaddr_storage *ss, int per_ip)
{
  unsigned char key[16];
  struct addr_ent *e;
  int ret = -1;

  addr_key(ss, key);
  pthread_mutex_lock(&addr_mu);
  e = addr_find(key, 1);
  if (e != NULL && (per_ip <= 0 || e->sessions < per_ip)) {
    e->sessions++;
    ret = 0;
  }
  pthread_mutex_unlock(&addr_mu);
  return ret;
}

static void addr_leave(const struct sockaddr_storage *ss)
{
  unsigned char key[16];
  struct addr_ent *e;

  addr_key(ss, key);
  pthread_mutex_lock(&addr_mu);
  e = addr_find(key, 0);
  if (e != NULL && e->sessions > 0)
    e->sessions--;
  pthread_mutex_unlock(&addr_mu);
}

int64_t ftp_addr_failed(const struct sockaddr_storage *peer)
{
  unsigned char key[16];
  struct addr_ent *e;
  int64_t now = mono_ms(), delay = FTP_LOGIN_DELAY_MS;

  addr_key(peer, key);
  pthread_mutex_lock(&addr_mu);
  e = addr_find(key, 1);
  if (e != NULL) {
    if (now - e->last_fail > FTP_LOGIN_FORGET_MS)
      e->fails = 0;
    e->fails++;
    e->last_fail = now;
    for (int i = 1; i < e->fails && delay < FTP_LOGIN_DELAY_MAX_MS; i++)
      delay *= 2;
  } else {
    delay = FTP_LOGIN_DELAY_MAX_MS; /* table full: the longest */
  }
  pthread_mutex_unlock(&addr_mu);
  return delay < FTP_LOGIN_DELAY_MAX_MS ? delay : FTP_LOGIN_DELAY_MAX_MS;
}

/* Drops entries with no session and no failure worth remembering. */
static void addr_prune(void)
{
  int64_t now = mono_ms();

  pthread_mutex_lock(&addr_mu);
  for (int h = 0; h < ADDR_BUCKETS; h++)
    for (struct addr_ent **pp = &addr_tab[h]; *pp;) {
      struct addr_ent *e = *pp;
      if (e->sessions == 0 && (e->fails == 0 || now - e->last_fail > FTP_LOGIN_FORGET_MS)) {
        *pp = e->next;
        free(e);
        addr_count--;
      } else {
        pp = &e->next;
      }
    }
  pthread_mutex_unlock(&addr_mu);
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
 * nonce, and the data connection's resumed session must carry it too, so
 * neither a fresh handshake nor a session from another login will do. */
static int ticket_gen(SSL *ssl, void *arg)
{
  const unsigned char *nonce = SSL_get_ex_data(ssl, ftp_ssl_nonce_idx);

  (void)arg;
  if (nonce != NULL)
    SSL_SESSION_set1_ticket_appdata(SSL_get_session(ssl), nonce, FTP_NONCE_LEN);
  return 1;
}

static SSL_TICKET_RETURN ticket_dec(SSL *ssl, SSL_SESSION *ss, const unsigned char *keyname,
                                    size_t keyname_len, SSL_TICKET_STATUS status, void *arg)
{
  (void)ssl;
  (void)ss;
  (void)keyname;
  (void)keyname_len;
  (void)arg;
  switch (status) {
  case SSL_TICKET_FATAL_ERR_MALLOC:
  case SSL_TICKET_FATAL_ERR_OTHER: return SSL_TICKET_RETURN_ABORT;
  case SSL_TICKET_SUCCESS: return SSL_TICKET_RETURN_USE;
  case SSL_TICKET_SUCCESS_RENEW: return SSL_TICKET_RETURN_USE_RENEW;
  default: return SSL_TICKET_RETURN_IGNORE_RENEW;
  }
}

int ftp_tls_data_bound(SSL *data, const struct session *s)
{
  SSL_SESSION *ss = SSL_get0_session(data);
  void *p = NULL;
  size_t n = 0;

  if (!SSL_session_reused(data) || ss == NULL)
    return 0;
  SSL_SESSION_get0_ticket_appdata(ss, &p, &n);
  return n == FTP_NONCE_LEN && CRYPTO_memcmp(p, s->nonce, n) == 0;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* libevent's own messages go to our log, not raw to stderr */
static void event_log(int severity, const char *msg)
{
  if (severity >= EVENT_LOG_WARN)
    log_warn("ftp: libevent: %s", msg);
  else
    log_debug("ftp: libevent: %s", msg);
}

static void init_once(void)
{
  /* cross-thread event_active() (quiesce, stop) needs libevent's locks */
  evthread_use_pthreads();
  event_set_log_callback(event_log);
  ftp_ssl_nonce_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static int tls_setup(struct ftp_front *ff, const struct front_conf *fc, const char *section,
                     struct config_errors *errs)
{
  static const unsigned char sid_ctx[] = "dfotad-ftp";

  ff->tls = tls_store_load(&fc->tls, section, errs);
  if (ff->tls == NULL)
    return -1;
  ff->ssl_ctx = tls_openssl_server_ctx(ff->tls, errs);
  if (ff->ssl_ctx == NULL)
    return -1;
  /* resumption (data connections) needs a session id context, and tickets
   * that carry the control connection's nonce */
  SSL_CTX_set_session_id_context(ff->ssl_ctx, sid_ctx, sizeof(sid_ctx) - 1);
  SSL_CTX_set_session_cache_mode(ff->ssl_ctx, SSL_SESS_CACHE_SERVER);
  SSL_CTX_set_timeout(ff->ssl_ctx, 3600);
  SSL_CTX_set_session_ticket_cb(ff->ssl_ctx, ticket_gen, ticket_dec, NULL);
  /* idle sessions keep no TLS buffers */
  SSL_CTX_set_mode(ff->ssl_ctx, SSL_MODE_RELEASE_BUFFERS);
  return 0;
}

/* ---- workers -------------------------------------------------------------- */

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
  struct ftp_worker *w = arg;
  struct ftp_front *ff = w->ff;
  const char *why = NULL;

  (void)l;
  if (atomic_load(&ff->quiescing))
    why = "421 Service not available, closing control connection.\r\n";
  else if (atomic_load(&ff->sessions) >= ff->max_sessions)
    why = "421 Too many sessions, try later.\r\n";
  else if (atomic_load(&ff->logins) >= ff->max_logins)
    why = "421 Too many logins in progress, try later.\r\n";
  else if (addr_enter((struct sockaddr_storage *)sa, ff->per_ip) < 0)
    why = "421 Too many sessions from your address.\r\n";
  if (why != NULL) {
    /* over a limit: one best-effort line (plain even on [ftps], where a
     * handshake would cost more than the refusal) */
    if (!ff->implicit_tls && send(fd, why, strlen(why), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
      (void)0;
    close(fd);
    return;
  }
  session_new(w, fd, sa, (socklen_t)salen);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
  struct ftp_worker *w = arg;
  int order = atomic_exchange(&w->order, 0);

  (void)fd;
  (void)what;
  if (order & (WAKE_QUIESCE | WAKE_STOP))
    for (int i = 0; i < w->nlev; i++)
      evconnlistener_disable(w->lev[i]);
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
      evconnlistener_free(w->lev[k]); /* LEV_OPT_CLOSE_ON_FREE unset: fds stay */
    if (w->wake)
      event_free(w->wake);
    if (w->base)
      event_base_free(w->base);
  }
  free(ff->w);
  if (ff->ssl_ctx)
    SSL_CTX_free(ff->ssl_ctx);
  if (ff->tls)
    tls_store_free(ff->tls);
  free(ff->port_used);
  pthread_mutex_destroy(&ff->port_mu);
  free(ff);
}

/* ---- the row ------------------------------------------------------------------- */

static int ftp_start(struct front *fr, const struct front_env *env, struct config_errors *errs)
{
  const char *section = fr->row->section;
  enum proto proto = (enum proto)fr->row->proto;
  const struct front_conf *fc = &env->conf->front[proto];
  struct ftp_front *ff;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  int before = errs->n;

  pthread_once(&once, init_once);
  ff = calloc(1, sizeof(*ff));
  if (ff == NULL) {
    config_errors_add(errs, "%s: out of memory", section);
    return -1;
  }
  pthread_mutex_init(&ff->port_mu, NULL);
  ff->fr = fr;
  ff->proto = proto;
  ff->implicit_tls = proto == PROTO_FTPS;
  ff->fleet = env->fleet;
  ff->max_sessions = fc->connection_limit;
  ff->per_ip = fc->per_ip_limit;
  ff->max_logins = fc->login_limit;
  ff->idle_s = fc->timeout;
  ff->login_s = fc->login_timeout;
  ff->data_s = fc->data_timeout;
  ff->require_tls = fc->require_tls;
  ff->port_enable = fc->port_enable;
  ff->anonymous = fc->anonymous_packages;
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
  /* [ftps] needs a certificate; [ftp] offers AUTH TLS when it has one */
  if (ff->implicit_tls || (fc->tls.cert != NULL && fc->tls.cert[0] != '\0')) {
    if (tls_setup(ff, fc, section, errs) < 0)
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
      w->lev[w->nlev] =
          evconnlistener_new(w->base, on_accept, w, LEV_OPT_CLOSE_ON_EXEC, 0, fr->fd[k]);
      if (w->lev[w->nlev] == NULL)
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

static void ftp_tick(struct front *fr, int force)
{
  static int64_t last;
  int64_t now = mono_ms();

  (void)fr;
  (void)force;
  if (now - last > 60000) {
    last = now;
    addr_prune();
  }
}

const struct front_row ftp_row = {"ftp",       PROTO_FTP, SOCK_STREAM, ftp_start,
                                  ftp_quiesce, ftp_busy,  ftp_stop,    ftp_tick};
const struct front_row ftps_row = {"ftps",      PROTO_FTPS, SOCK_STREAM, ftp_start,
                                   ftp_quiesce, ftp_busy,   ftp_stop,    ftp_tick};

void ftp_session_left(const struct sockaddr_storage *peer) { addr_leave(peer); }
