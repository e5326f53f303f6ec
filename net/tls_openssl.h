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
 * fails). The store must outlive the context. NULL with errors added. */
SSL_CTX *tls_openssl_server_ctx(const struct tls_store *s, struct config_errors *errs);

/* The verified peer certificate's common name, after a handshake. */
enum tls_peer tls_openssl_peer(SSL *ssl, char *cn, size_t cnlen);

#endif
