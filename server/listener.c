/* listener.c: sockets and libmicrohttpd daemons, and their hand-over on
 * reload. We bind the sockets ourselves (before dropping privileges, and so
 * that a reload can pass a socket from an old daemon to a new one without
 * refusing a single connection). */
#include "autoconfig.h"

#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../api/admin.h"
#include "http_front.h"
#include "log.h"
#include "tls.h"

struct listener {
  struct front_ctx ctx; /* first: handlers get it as their cls */
  struct listen_addr addr;
  int fd;                      /* listening socket we own; -1 once handed on */
  struct listener *reuse_from; /* old listener whose socket we share */
  struct MHD_Daemon *d;
  char *trust_pem; /* client_ca text, alive as long as d */
  char *priorities;
  struct listener *next;
};

static const char *kind_name(enum front_kind k)
{
  return k == FRONT_HTTP ? "http" : k == FRONT_HTTPS ? "https" : "admin";
}

static int bind_socket(const struct listen_addr *a, struct config_errors *errs)
{
  int fd, one = 1;

  fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    config_errors_add(errs, "listen %s: socket: %s", a->text, strerror(errno));
    return -1;
  }
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (a->ss.ss_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, SOMAXCONN) < 0) {
    config_errors_add(errs, "listen %s: %s", a->text, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

static struct listener *find_by_addr(const struct listener_set *set, const char *text)
{
  for (struct listener *l = set ? set->head : NULL; l; l = l->next)
    if (l->fd >= 0 && strcmp(l->addr.text, text) == 0)
      return l;
  return NULL;
}

static void listener_free(struct listener *l)
{
  free(l->trust_pem);
  free(l->priorities);
  free(l);
}

void listeners_discard(struct listener_set *set)
{
  while (set->head) {
    struct listener *l = set->head;
    set->head = l->next;
    if (l->reuse_from == NULL && l->fd >= 0)
      close(l->fd);
    listener_free(l);
  }
}

int listeners_bind(const struct config *c, const struct listener_set *old, struct listener_set *out,
                   struct config_errors *errs)
{
  const struct {
    enum front_kind kind;
    const struct listen_set *ls;
  } groups[] = {
      {FRONT_HTTP, &c->http.listen},
      {FRONT_HTTPS, &c->https.listen},
      {FRONT_ADMIN, &c->admin_listen},
  };
  struct listener **tail = &out->head;
  int before = errs->n;

  out->head = NULL;
  for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++)
    for (int i = 0; i < groups[g].ls->n; i++) {
      const struct listen_addr *a = &groups[g].ls->addr[i];
      struct listener *l = calloc(1, sizeof(*l)), *prev;
      if (l == NULL) {
        config_errors_add(errs, "out of memory");
        break;
      }
      l->ctx.kind = groups[g].kind;
      l->addr = *a;
      prev = find_by_addr(old, a->text);
      if (prev != NULL) {
        l->fd = prev->fd;
        l->reuse_from = prev;
      } else {
        l->fd = bind_socket(a, errs);
      }
      *tail = l;
      tail = &l->next;
    }
  if (errs->n != before) {
    listeners_discard(out);
    return -1;
  }
  return 0;
}

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

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
  struct front_ctx *f = cls;

  if (f->kind == FRONT_ADMIN)
    admin_completed(f, conn, req_cls, toe);
  else
    http_front_completed(f, conn, req_cls, toe);
}

static int start_one(struct listener *l, const struct config *c, struct config_errors *errs)
{
  const struct front_conf *fc = l->ctx.kind == FRONT_HTTPS ? &c->https : &c->http;
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
  unsigned threads = 1, conn_limit, timeout, per_ip;
  size_t mem_limit = HTTP_MEMORY_LIMIT;
  MHD_AccessHandlerCallback handler = http_front_handler;
  struct MHD_OptionItem opts[20];
  int n = 0;

  if (l->addr.ss.ss_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  if (l->ctx.kind == FRONT_ADMIN) {
    /* poll(), not epoll: with libmicrohttpd 0.9.75's edge-triggered epoll,
     * a client that sends part of a large upload and closes cleanly left
     * its connection (and temporary file) until the idle timeout */
    flags |= MHD_USE_POLL;
    handler = admin_handler;
    conn_limit = ADMIN_CONNECTION_LIMIT;
    timeout = DEF_TIMEOUT;
    per_ip = 0;
    mem_limit = ADMIN_MEMORY_LIMIT;
  } else {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    flags |= MHD_USE_EPOLL;
    threads = fc->threads > 0 ? (unsigned)fc->threads : (unsigned)(ncpu > 0 ? ncpu : 1);
    conn_limit = (unsigned)fc->connection_limit;
    timeout = (unsigned)fc->timeout;
    per_ip = (unsigned)fc->per_ip_limit;
  }

  /* the logger first, so that libmicrohttpd uses it for everything */
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_logger, NULL};
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, l->fd, NULL};
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, conn_limit, NULL};
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, timeout, NULL};
  opts[n++] =
      (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)mem_limit, NULL};
  if (per_ip > 0)
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, NULL};
  if (threads > 1)
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, threads, NULL};
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, &l->ctx};
  if (l->ctx.kind == FRONT_HTTPS) {
    flags |= MHD_USE_TLS;
    l->priorities = strdup(c->tls_priorities);
    opts[n++] =
        (struct MHD_OptionItem){MHD_OPTION_HTTPS_CERT_CALLBACK, 0, (void *)tls_cert_callback};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, l->priorities};
    if (c->client_auth != CLIENT_AUTH_NONE) {
      /* with a trust list libmicrohttpd asks clients for a certificate */
      l->trust_pem = tls_read_pem(c->client_ca, "client_ca", errs);
      if (l->trust_pem == NULL)
        return -1;
      opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, l->trust_pem};
    }
  }
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

  l->d = MHD_start_daemon(flags, 0, NULL, NULL, handler, &l->ctx, MHD_OPTION_ARRAY, opts,
                          MHD_OPTION_END);
  if (l->d == NULL) {
    config_errors_add(errs, "%s %s: the HTTP daemon did not start", kind_name(l->ctx.kind),
                      l->addr.text);
    return -1;
  }
  log_info("listening: %s %s", kind_name(l->ctx.kind), l->addr.text);
  return 0;
}

static void stop_one(struct listener *l)
{
  if (l->d != NULL) {
    MHD_quiesce_daemon(l->d); /* keeps the socket out of MHD_stop_daemon's hands */
    MHD_stop_daemon(l->d);
    l->d = NULL;
  }
  if (l->fd >= 0 && l->reuse_from == NULL)
    close(l->fd);
  l->fd = -1;
}

int listeners_start(struct listener_set *set, const struct config *c, struct store *store,
                    struct fleet *fleet, const char *token, atomic_int *total_inflight,
                    struct listener_set *old, struct listener_set *retired,
                    struct config_errors *errs)
{
  struct listener *l;

  for (l = set->head; l; l = l->next) {
    struct front_ctx *f = &l->ctx;
    f->store = store;
    f->fleet = fleet;
    snprintf(f->token_header, sizeof(f->token_header), "%s", c->token_header);
    f->total_inflight = total_inflight;
    f->client_auth = c->client_auth;
    f->max_upload_size = c->max_upload_size;
    snprintf(f->token, sizeof(f->token), "%s", token);
    snprintf(f->http_url, sizeof(f->http_url), "%s", c->http.public_url);
    snprintf(f->https_url, sizeof(f->https_url), "%s",
             c->https.listen.n > 0 ? c->https.public_url : "");
    if (start_one(l, c, errs) < 0)
      goto undo;
  }
  /* committed: the new daemons accept; the old ones stop accepting and
   * finish what they are sending */
  for (l = set->head; l; l = l->next)
    if (l->reuse_from != NULL) {
      struct listener *prev = l->reuse_from;
      if (prev->d != NULL)
        MHD_quiesce_daemon(prev->d);
      prev->fd = -1;
      l->reuse_from = NULL;
    }
  if (old != NULL)
    listeners_quiesce(old, retired);
  return 0;
undo:
  for (l = set->head; l; l = l->next)
    stop_one(l);
  listeners_discard(set);
  return -1;
}

void listeners_quiesce(struct listener_set *set, struct listener_set *retired)
{
  while (set->head) {
    struct listener *l = set->head;
    set->head = l->next;
    if (l->d != NULL)
      MHD_quiesce_daemon(l->d);
    atomic_store(&l->ctx.draining, 1);
    l->next = retired->head;
    retired->head = l;
  }
}

int listeners_reap(struct listener_set *retired, int force)
{
  struct listener **pp = &retired->head;
  int left = 0;

  while (*pp) {
    struct listener *l = *pp;
    if (force || atomic_load(&l->ctx.inflight) == 0) {
      *pp = l->next;
      stop_one(l);
      listener_free(l);
    } else {
      left++;
      pp = &l->next;
    }
  }
  return left;
}
