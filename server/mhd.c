/* mhd.c: starting and stopping libmicrohttpd daemons on our own sockets. */
#include "autoconfig.h"

#include "mhd.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

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

static struct MHD_Daemon *start_one(const struct front *fr, int i, const struct mhd_params *p)
{
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
  struct MHD_OptionItem opts[20];
  int n = 0;

  flags |= p->poll ? MHD_USE_POLL : MHD_USE_EPOLL;
  if (fr->addr[i].ss.ss_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  /* the logger first, so that libmicrohttpd uses it for everything */
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_logger, NULL};
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, fr->fd[i], NULL};
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, p->connection_limit, NULL};
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, p->timeout, NULL};
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                      (intptr_t)p->memory_limit, NULL};
  if (p->per_ip_limit > 0)
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT, p->per_ip_limit, NULL};
  if (p->threads > 1)
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, p->threads, NULL};
  opts[n++] =
      (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)p->completed, p->cls};
  if (p->notify != NULL)
    opts[n++] =
        (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)p->notify, p->cls};
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
