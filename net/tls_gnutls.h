/* tls_gnutls.h: the GnuTLS adapter of the TLS store, for the HTTPS front
 * (libmicrohttpd is built with GnuTLS): a default certificate, per-name
 * certificates chosen by SNI, and the verification of client certificates. */
#ifndef DFOTAD_TLS_GNUTLS_H
#define DFOTAD_TLS_GNUTLS_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stddef.h>

#include "tls_store.h"

struct tls_gnutls;

/* GnuTLS certificates and keys from a store. NULL with errors added. */
struct tls_gnutls *tls_gnutls_build(const struct tls_store *s, struct config_errors *errs);

/* Makes g the set that new handshakes use and returns the one it replaces.
 * A set once installed stays valid until tls_gnutls_shutdown(): handshakes
 * in flight may still hold it. */
struct tls_gnutls *tls_gnutls_install(struct tls_gnutls *g);
/* The installed set, or NULL. */
struct tls_gnutls *tls_gnutls_current(void);
/* Frees a set that was never installed (NULL: nothing). */
void tls_gnutls_free(struct tls_gnutls *g);
/* Frees every set ever installed. At exit. */
void tls_gnutls_shutdown(void);

/* For MHD_OPTION_HTTPS_CERT_CALLBACK: picks the certificate by SNI, the
 * default one for clients that send no name or an unknown one. */
int tls_gnutls_cert_callback(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                             const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                             gnutls_pcert_st **pcert, unsigned int *pcert_length,
                             gnutls_privkey_t *pkey);

/* Verifies the client's certificate against the trust given to the daemon
 * (client_ca). On TLS_PEER_VALID, cn receives the subject's common name. */
enum tls_peer tls_gnutls_peer(gnutls_session_t session, char *cn, size_t cnlen);

#endif
