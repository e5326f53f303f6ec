/* listener.h: the fronts' sockets and their life across reloads. For every
 * row of the fronts table with listen addresses, the listener binds them
 * (or leaves that to the front) and starts an instance of the front; on
 * reload a new instance takes over the same sockets without refusing a
 * connection, and the old one drains and is stopped once idle. It knows
 * no protocol by name. */
#ifndef DFOTAD_LISTENER_H
#define DFOTAD_LISTENER_H

#include "../net/front.h"
#include "../util/config.h"
#include "../util/proto.h"

struct listener_set {
  struct front *head;
};

/* Binds the addresses of every front that c configures, reusing the socket
 * of a front in `old` that has the same row and address. Nothing starts.
 * 0, or -1 with errors added (and nothing bound). */
int listeners_bind(const struct config *c, const struct listener_set *old, struct listener_set *out,
                   struct config_errors *errs);

/* Starts the fronts of a bound set. On success, the old set (may be NULL)
 * stops taking new work and moves to `retired`; on failure nothing of the
 * old set is touched and the new set is undone. */
int listeners_start(struct listener_set *set, const struct front_env *env, struct listener_set *old,
                    struct listener_set *retired, struct config_errors *errs);

/* Stops retired fronts with nothing in flight; with force, all of them.
 * Returns how many are left. */
int listeners_reap(struct listener_set *retired, int force);

/* Stops taking new work on every front of the set, which moves to retired. */
void listeners_quiesce(struct listener_set *set, struct listener_set *retired);

/* The fronts' periodic work (force: at exit). */
void listeners_tick(struct listener_set *set, int force);

/* Releases a set that was bound but never started. */
void listeners_discard(struct listener_set *set);

/* The public base of each protocol's front, "" where none is configured. */
void listeners_bases(const struct config *c, const char *bases[PROTO_COUNT]);

#endif
