/* tls.h: certificates for the HTTPS front (GnuTLS, as libmicrohttpd uses
 * it): a default certificate, per-name certificates chosen by SNI, and the
 * verification of client certificates. */
#ifndef DFOTAD_TLS_H
#define DFOTAD_TLS_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stddef.h>

#include "config.h"

struct tls_certs;

/* Loads the default and every sni certificate of c, checking that each key
 * matches its certificate. NULL with errors added when anything fails. */
struct tls_certs *tls_certs_load(const struct config *c, struct config_errors *errs);

/* Makes certs the set that new handshakes use. A set once installed stays
 * valid until tls_shutdown(): handshakes in flight may still hold it. */
void tls_certs_install(struct tls_certs *certs);
void tls_shutdown(void);
/* The installed set, or NULL. */
struct tls_certs *tls_certs_current(void);
/* Frees a set that was never installed (NULL: nothing). */
void tls_certs_free(struct tls_certs *certs);

/* For MHD_OPTION_HTTPS_CERT_CALLBACK: picks the certificate by SNI,
 * the default one for clients that send no name or an unknown one. */
int tls_cert_callback(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                      const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                      gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey);

enum tls_peer { TLS_PEER_NONE = 0, TLS_PEER_VALID, TLS_PEER_INVALID };

/* Verifies the client's certificate against the trust given to the daemon
 * (client_ca). On TLS_PEER_VALID, cn receives the subject's common name. */
enum tls_peer tls_peer_verify(gnutls_session_t session, char *cn, size_t cnlen);

/* Reads a whole PEM file (at most MAX_CERT_FILE bytes) into a NUL-terminated
 * buffer the caller frees. NULL with errors added. */
char *tls_read_pem(const char *path, const char *what, struct config_errors *errs);

#endif
