/* listener.h: the listening sockets and the libmicrohttpd daemons behind
 * them, one per address, and their replacement on reload without dropping
 * a transfer: a new daemon takes over the same socket, the old one stops
 * accepting and is stopped once its last response has been sent. */
#ifndef DFOTAD_LISTENER_H
#define DFOTAD_LISTENER_H

#include <stdatomic.h>

#include "config.h"
#include "front.h"

struct listener;
struct store;
struct fleet;

struct listener_set {
  struct listener *head;
};

/* Binds every listen address of c (http, https, admin), reusing the socket
 * of a listener in `old` that has the same address. Nothing is started.
 * 0, or -1 with errors added (and nothing bound). */
int listeners_bind(const struct config *c, const struct listener_set *old, struct listener_set *out,
                   struct config_errors *errs);

/* Starts the daemons of a bound set. token: the admin token. On success,
 * the old set (may be NULL) stops accepting and moves to `retired`; on
 * failure nothing of the old set is touched and the new set is undone. */
int listeners_start(struct listener_set *set, const struct config *c, struct store *store,
                    struct fleet *fleet, const char *token, atomic_int *total_inflight,
                    struct listener_set *old, struct listener_set *retired,
                    struct config_errors *errs);

/* Stops retired daemons whose last response has been sent; with force, all
 * of them. Returns how many are left. */
int listeners_reap(struct listener_set *retired, int force);

/* Stops accepting on every listener of the set, which moves to retired. */
void listeners_quiesce(struct listener_set *set, struct listener_set *retired);

/* Releases a set that was bound but never started. */
void listeners_discard(struct listener_set *set);

#endif
