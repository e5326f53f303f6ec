/* tls_gnutls.h: the GnuTLS adapter of the TLS store, for the HTTPS front
 * (libmicrohttpd is built with GnuTLS): a default certificate, per-name
 * certificates chosen by SNI, and the verification of client certificates.
 * The TLS default priorities (TLS 1.2 and 1.3, AEAD suites with forward
 * secrecy only, in the server's order: no CBC, LUCKY13 and kin; no RSA key
 * exchange) are GnuTLS's syntax, so they are here. */
#ifndef DFOTAD_TLS_GNUTLS_H
#define DFOTAD_TLS_GNUTLS_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stddef.h>

#include "tls_set.h"

#define DEF_TLS_PRIORITIES                                                                         \
  "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"              \
  "+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:%SERVER_PRECEDENCE"

struct tls_gnutls;

/* GnuTLS certificates and keys from a store. NULL with errors added. */
struct tls_gnutls *tls_gnutls_build(const struct tls_store *s, const char *section,
                                    struct config_errors *errs);
/* Frees what tls_gnutls_build made (NULL: nothing); tls_set.c. */
void tls_gnutls_free(struct tls_gnutls *g);

/* Where the HTTPS front installs its TLS set (tls_set.h): the callback
 * below reads it at every handshake. */
extern struct tls_slot tls_gnutls_slot;

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
