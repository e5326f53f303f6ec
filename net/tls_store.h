/* tls_store.h: the certificates and keys of one TLS (or DTLS) front, as
 * PEM text read from the files the configuration names, checked once, and
 * held independently of any TLS library. An adapter per library turns it
 * into that library's objects: tls_gnutls.c (libmicrohttpd is built with
 * GnuTLS), tls_openssl.c (the CoAP and FTP fronts). */
#ifndef DFOTAD_TLS_STORE_H
#define DFOTAD_TLS_STORE_H

#include <stddef.h>

#include "../util/config.h"

struct tls_pair {
  char *name;     /* server name for SNI ("*.example.com" allowed); NULL: default */
  char *cert_pem; /* the chain, leaf first */
  char *key_pem;  /* wiped when freed */
};

struct tls_store {
  struct tls_pair def;
  struct tls_pair *sni;
  int n_sni;
  char *client_ca_pem; /* NULL when none */
  enum client_auth client_auth;
  char *priorities; /* the section's priorities/ciphers text, library-specific */
};

/* Reads and checks the TLS settings of a section: files readable, keys not
 * readable by others, each key matching its certificate. NULL with errors
 * added when anything is wrong. section: for messages ("https"). */
struct tls_store *tls_store_load(const struct tls_conf *tc, const char *section,
                                 struct config_errors *errs);
void tls_store_free(struct tls_store *s);

/* The pair for a server name (exact names first, then wildcards, then the
 * default); name may be NULL (no SNI). */
const struct tls_pair *tls_store_pick(const struct tls_store *s, const char *name);

enum tls_peer { TLS_PEER_NONE = 0, TLS_PEER_VALID, TLS_PEER_INVALID };

/* Whether a server name matches a pattern: exactly (case aside), or
 * "*.example.com" for exactly one label in front of example.com. */
int tls_name_matches(const char *pattern, const char *name);

/* Reads a whole PEM file (at most MAX_CERT_FILE bytes) into a NUL-terminated
 * buffer the caller frees. NULL with errors added. */
char *tls_read_pem(const char *path, const char *what, struct config_errors *errs);

#endif
