/* tls_set.h: one TLS lifecycle for every TLS stack of the daemon (GnuTLS
 * for HTTPS, OpenSSL for FTPS, libcoap-3-openssl for CoAPS).
 *
 * A TLS set is what one config section's TLS settings give at one reload:
 * its files read once (tls_store), checked (key matches certificate, mode,
 * PEM), and built for the front's library (the adapter: GnuTLS
 * certificates, an SSL_CTX, or the PEM text libcoap takes). It is built
 * once per reload (and by -t) before any front starts, handed to the
 * section's front, installed for new handshakes, and freed when the last
 * user lets go: reference counted, numbered by a generation that grows with
 * every set built (logged, so that a reload's certificates can be told
 * apart). */
#ifndef DFOTAD_TLS_SET_H
#define DFOTAD_TLS_SET_H

#include <pthread.h>
#include <stdatomic.h>

#include "tls_store.h"

struct tls_gnutls;
struct ssl_ctx_st;

struct tls_set {
  atomic_int refs;
  unsigned long generation;
  char section[16];
  enum tls_adapter adapter;
  struct tls_store *store;    /* the PEM text, as read */
  struct tls_gnutls *gnutls;  /* TLS_ADAPTER_GNUTLS */
  struct ssl_ctx_st *ssl_ctx; /* TLS_ADAPTER_OPENSSL */
};

/* Reads, checks and builds a section's set (one reference, the caller's).
 * NULL with errors added. */
struct tls_set *tls_set_build(const struct tls_conf *tc, const char *section,
                              enum tls_adapter adapter, struct config_errors *errs);
/* Another reference (s may be NULL). */
struct tls_set *tls_set_ref(struct tls_set *s);
/* Lets one reference go; the last frees the set (s may be NULL). */
void tls_set_unref(struct tls_set *s);

/* For a library that reads certificates from a process-wide place at each
 * handshake (GnuTLS's retrieve callback has no argument): the installed
 * set, and the users (front instances) that may have handshakes on any set
 * installed while they live. Each user holds every such set until it
 * leaves, so a handshake's set outlives every connection that used it. */
struct tls_slot_user;
struct tls_slot {
  pthread_mutex_t mu;
  _Atomic(struct tls_set *) installed; /* holds a reference */
  struct tls_slot_user *users;
};
#define TLS_SLOT_INIT                                                                              \
  {                                                                                                \
    PTHREAD_MUTEX_INITIALIZER, NULL, NULL                                                          \
  }

/* A new user that installs set for the handshakes that follow. NULL when
 * out of memory (nothing changed). */
struct tls_slot_user *tls_slot_join(struct tls_slot *slot, struct tls_set *set);
/* The user is gone (its handshakes too): if its set is still installed (it
 * never was replaced: a reload undone), the one before comes back. */
void tls_slot_leave(struct tls_slot *slot, struct tls_slot_user *u);
/* The installed set, for a handshake on a thread of a live user. */
static inline struct tls_set *tls_slot_current(struct tls_slot *slot)
{
  return atomic_load(&slot->installed);
}
/* Uninstalls (at exit, once every user left). */
void tls_slot_clear(struct tls_slot *slot);

#endif
