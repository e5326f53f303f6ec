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
#include <stddef.h>

#include "../util/config.h"
#include "tls_store.h"

struct store;
struct fleet;
struct front_row;

/* Descriptors counted per listening front beyond its connection_limit
 * (libmicrohttpd takes that many more, refused at once). */
#define FRONT_FD_ROOM 64

/* What every front's section has, first in its struct (see FRONT_ROWS):
 * the listener, the public URLs and the descriptor budget read it. */
struct front_conf {
  struct listen_set listen;
  int connection_limit;
  int timeout;      /* idle seconds */
  int per_ip_limit; /* connections per client address, 0: none */
  char *public_url; /* base URL devices see; derived from listen when empty */
};

/* The rows of struct front_conf, in a section whose struct T has it as
 * member `base`. */
#define FRONT_ROWS(T, listen_def)                                                                  \
  {.name = "listen",                                                                               \
   .type = T_LISTEN,                                                                               \
   .offset = offsetof(T, base.listen),                                                             \
   .def = listen_def,                                                                              \
   .help = "ADDRESS:PORT ..."},                                                                    \
      {.name = "connection_limit",                                                                 \
       .type = T_INT,                                                                              \
       .offset = offsetof(T, base.connection_limit),                                               \
       .def = "1024",                                                                              \
       .min = 1,                                                                                   \
       .max = MAX_CONNECTION_LIMIT,                                                                \
       .help = "connections"},                                                                     \
      {.name = "timeout",                                                                          \
       .type = T_INT,                                                                              \
       .offset = offsetof(T, base.timeout),                                                        \
       .def = "60",                                                                                \
       .min = 1,                                                                                   \
       .max = MAX_TIMEOUT,                                                                         \
       .help = "idle seconds"},                                                                    \
      {.name = "per_ip_limit",                                                                     \
       .type = T_INT,                                                                              \
       .offset = offsetof(T, base.per_ip_limit),                                                   \
       .def = "0",                                                                                 \
       .min = 0,                                                                                   \
       .max = MAX_CONNECTION_LIMIT,                                                                \
       .help = "connections per client address, 0 for none"},                                      \
  {                                                                                                \
    .name = "public_url", .type = T_URL, .offset = offsetof(T, base.public_url), .def = "",        \
    .help = "base URL devices see"                                                                 \
  }

/* The generic part of a front section's check: public_url derived from the
 * first listen address when not set. front_conf.c */
void front_conf_check(struct front_conf *fc, const char *section, struct config_errors *errs);

/* A front's section in c (NULL when c has none). */
const struct front_conf *front_conf_of(const struct config *c, const struct front_row *row);

/* The TLS set (net/tls_set.h) built for a front's section by this reload. */
struct front_tls {
  const struct front_row *row;
  struct tls_set *set;
};

/* What a starting front is given. Settings must be copied: the config is
 * freed by the next reload while the instance may still be draining. */
struct front_env {
  const struct config *conf;
  struct store *store;
  struct fleet *fleet;
  const char *admin_token;
  const char *token_header;    /* [fleet] token_header */
  const struct front_tls *tls; /* the sets of this reload, one per TLS section that listens */
  int n_tls;
};

/* The set env carries for row, or NULL. The front takes its own reference
 * (tls_set_ref) when it keeps it. */
struct tls_set *front_env_tls(const struct front_env *env, const struct front_row *row);

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
  /* Its config section: rows, the struct they fill (a struct front_conf
   * first), its checks (server/<front>/<front>_conf.c). */
  const struct conf_section *conf;
  int datagram;         /* UDP: its addresses may repeat a TCP front's */
  enum tls_adapter tls; /* the TLS set its section gets; TLS_ADAPTER_NONE: none */
  size_t tls_offset;    /* its struct tls_conf in the section's struct */
  int tls_needs_cert;   /* listening needs cert and key (else TLS is optional) */
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
