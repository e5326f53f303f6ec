/* mhd.c: starting and stopping libmicrohttpd daemons on our own sockets. */
#include "autoconfig.h"

#include "mhd.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

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

static struct MHD_Daemon *start_one(const struct front *fr, int i, const struct mhd_params *p)
{
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
  struct MHD_OptionItem opts[20];
  int n = 0;

  flags |= p->poll ? MHD_USE_POLL : MHD_USE_EPOLL;
  if (p->suspend)
    flags |= MHD_ALLOW_SUSPEND_RESUME;
  if (fr->addr[i].ss.ss_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  /* the logger first, so that libmicrohttpd uses it for everything */
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_logger, NULL};
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
  if (p->notify != NULL)
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

int mhd_start(struct front *fr, struct mhd_set *set, const struct mhd_params *p,
              struct config_errors *errs)
{
  set->n = 0;
  for (int i = 0; i < fr->n; i++) {
    set->d[i] = start_one(fr, i, p);
    if (set->d[i] == NULL) {
      config_errors_add(errs, "%s %s: the HTTP daemon did not start", fr->row->section,
                        fr->addr[i].text);
      mhd_stop(set);
      return -1;
    }
    set->n++;
    log_info("listening: %s %s", fr->row->section, fr->addr[i].text);
  }
  return 0;
}

void mhd_quiesce(struct mhd_set *set)
{
  for (int i = 0; i < set->n; i++)
    MHD_quiesce_daemon(set->d[i]);
}

void mhd_stop(struct mhd_set *set)
{
  for (int i = 0; i < set->n; i++) {
    MHD_quiesce_daemon(set->d[i]); /* keeps the socket out of MHD_stop_daemon's hands */
    MHD_stop_daemon(set->d[i]);
  }
  set->n = 0;
}
