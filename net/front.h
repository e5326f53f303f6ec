/* front.h: what a front is. A front is a file and a row of the fronts
 * table (server/fronts.c): its config section, whether the listener binds
 * stream or datagram sockets for it, and start, quiesce, busy, stop and
 * tick. listener.c and main.c drive rows and know no protocol by name.
 *
 * Life of an instance: the listener binds the section's addresses (or
 * leaves binding to the front), fills a struct front and calls start. On
 * reload a new instance of each row starts on the same sockets, then the
 * old one is quiesced (stops taking new work) and stopped once busy()
 * says it has nothing left in flight (or at the shutdown deadline). */
#ifndef DFOTAD_FRONT_H
#define DFOTAD_FRONT_H

#include <stdatomic.h>

#include "../util/config.h"

struct store;
struct fleet;

/* What a starting front is given. Settings must be copied: the config is
 * freed by the next reload while the instance may still be draining. */
struct front_env {
  const struct config *conf;
  struct store *store;
  struct fleet *fleet;
  const char *admin_token;
};

struct front;

struct front_row {
  const char *section; /* its config section: "http", "admin", ... */
  int proto;           /* enum proto, or -1 for the admin API */
  int socktype;        /* SOCK_STREAM or SOCK_DGRAM: the listener binds;
                          0: the front binds its addresses itself */
  /* Starts serving on fr->fd[0..n) (bound sockets, or -1 when the front
   * binds itself). 0, or -1 with errors added and nothing left running. */
  int (*start)(struct front *fr, const struct front_env *env, struct config_errors *errs);
  /* Stops taking new work; what is in flight goes on, and answers ask
   * clients to close (fr->draining is set first). */
  void (*quiesce)(struct front *fr);
  /* Work still in flight. */
  int (*busy)(struct front *fr);
  /* Ends everything and frees fr->priv. Never closes fr->fd. */
  void (*stop)(struct front *fr);
  /* A few times a second from the main thread; force: at exit. May be NULL. */
  void (*tick)(struct front *fr, int force);
};

struct front {
  const struct front_row *row;
  int n; /* addresses */
  struct listen_addr addr[CONF_MAX_LISTEN];
  int fd[CONF_MAX_LISTEN];       /* bound by the listener, or -1 */
  int borrowed[CONF_MAX_LISTEN]; /* fd[i] is an older instance's until
                                    this one takes over (the listener's) */
  atomic_int draining;           /* a reload or stop replaced it */
  void *priv;                    /* the front's own state */
  struct front *next;
};

#endif
