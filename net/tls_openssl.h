/* tls_openssl.h: the OpenSSL adapter of the TLS store, for the fronts
 * that use OpenSSL (FTPS directly; CoAPS through libcoap-3-openssl, which
 * takes the store's PEM text itself). */
#ifndef DFOTAD_TLS_OPENSSL_H
#define DFOTAD_TLS_OPENSSL_H

#include <openssl/ssl.h>

#include "tls_store.h"

/* A server SSL_CTX from the store: TLS 1.2 and 1.3 only, AEAD suites in
 * the server's order (or the store's priorities as an OpenSSL cipher list),
 * the default certificate, an SNI callback choosing among the others, and
 * client certificates requested and verified against client_ca when
 * client_auth is optional or required (required: a handshake without one
 * fails). Every context (the default and each server name's) has the
 * section's session id context, a server session cache and the ticket
 * callbacks of tls_openssl_bind, so that sessions resume whichever name
 * was asked for and with client certificates. Idle connections keep no
 * buffers. The context needs nothing of the store afterwards. NULL with
 * errors added. */
SSL_CTX *tls_openssl_server_ctx(const struct tls_store *s, const char *section,
                                struct config_errors *errs);

#define TLS_BIND_LEN 16 /* bytes of a binding nonce */

/* Binds the sessions ssl issues to nonce (TLS_BIND_LEN bytes, which must
 * outlive ssl): their tickets, and the session itself (tls_openssl_bound
 * checks a resumption). Call before the handshake, and once it is done
 * (for sessions cached on the server, TLS 1.2 without tickets). */
void tls_openssl_bind(SSL *ssl, const unsigned char *nonce);
void tls_openssl_bind_session(SSL *ssl, const unsigned char *nonce);
/* Whether ssl's handshake resumed a session bound to nonce. */
int tls_openssl_bound(SSL *ssl, const unsigned char *nonce);

/* The verified peer certificate's common name, after a handshake. */
enum tls_peer tls_openssl_peer(SSL *ssl, char *cn, size_t cnlen);

#endif
