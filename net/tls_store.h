/* tls_store.h: the certificates and keys of one TLS (or DTLS) front, as
 * PEM text read from the files the configuration names, checked once, and
 * held independently of any TLS library. An adapter per library turns it
 * into that library's objects: tls_gnutls.c (libmicrohttpd is built with
 * GnuTLS), tls_openssl.c (the CoAP and FTP fronts). */
#ifndef DFOTAD_TLS_STORE_H
#define DFOTAD_TLS_STORE_H

#include <stddef.h>

#include "../util/config.h"

#define CONF_MAX_SNI 64 /* sni = lines in a section */

enum client_auth { CLIENT_AUTH_NONE = 0, CLIENT_AUTH_OPTIONAL, CLIENT_AUTH_REQUIRED };

struct sni_entry {
  char *name; /* server name, may start with "*." */
  char *cert; /* PEM chain file */
  char *key;  /* PEM key file */
};

/* The TLS settings of a TLS (or DTLS) section: one set of options, the same
 * rows in every such section (TLS_ROWS). */
struct tls_conf {
  char *cert, *key; /* default certificate chain and key (PEM) */
  char *client_ca;  /* CA for client certificates */
  enum client_auth client_auth;
  char *priorities; /* the TLS library's own syntax: GnuTLS priority
                       string for https, OpenSSL cipher list for others */
  struct sni_entry sni[CONF_MAX_SNI];
  int n_sni;
};

/* Which library a section's certificates are built for. */
enum tls_adapter {
  TLS_ADAPTER_NONE = 0,
  TLS_ADAPTER_GNUTLS,  /* libmicrohttpd (HTTPS) */
  TLS_ADAPTER_OPENSSL, /* an SSL_CTX (FTPS) */
  TLS_ADAPTER_DTLS,    /* libcoap-3-openssl takes the PEM text (CoAPS) */
};

extern const char *const tls_client_auth_choices[];
/* T_CUSTOM of the sni row: "NAME CERTFILE KEYFILE" added to a struct tls_conf. */
const char *tls_conf_parse_sni(void *slot, char *value, char *msg, size_t msglen);
void tls_conf_release(void *slot);

/* The rows of struct tls_conf, member m of a section's struct T. */
#define TLS_ROWS(T, m, prio_def)                                                                   \
  {.name = "cert",                                                                                 \
   .type = T_STRING,                                                                               \
   .offset = offsetof(T, m.cert),                                                                  \
   .def = "",                                                                                      \
   .help = "default certificate chain (PEM)"},                                                     \
      {.name = "key",                                                                              \
       .type = T_STRING,                                                                           \
       .offset = offsetof(T, m.key),                                                               \
       .def = "",                                                                                  \
       .help = "its private key (PEM)"},                                                           \
      {.name = "sni",                                                                              \
       .type = T_CUSTOM,                                                                           \
       .offset = offsetof(T, m),                                                                   \
       .help = "NAME CERTFILE KEYFILE",                                                            \
       .parse = tls_conf_parse_sni,                                                                \
       .release = tls_conf_release},                                                               \
      {.name = "client_ca",                                                                        \
       .type = T_STRING,                                                                           \
       .offset = offsetof(T, m.client_ca),                                                         \
       .def = "",                                                                                  \
       .help = "CA for client certificates"},                                                      \
      {.name = "client_auth",                                                                      \
       .type = T_CHOICE,                                                                           \
       .offset = offsetof(T, m.client_auth),                                                       \
       .def = "none",                                                                              \
       .help = "none|optional|required",                                                           \
       .choices = tls_client_auth_choices},                                                        \
  {                                                                                                \
    .name = "priorities", .type = T_STRING, .offset = offsetof(T, m.priorities), .def = prio_def,  \
    .help = "cipher preferences, in the TLS library's syntax"                                      \
  }

/* A section's TLS checks: with listening and needs_cert, cert and key are
 * required; client_auth needs client_ca. */
void tls_conf_check(const struct tls_conf *tc, const char *section, const char *source,
                    int listening, int needs_cert, struct config_errors *errs);

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

/* Which of n names a server name picks (exact names first, then
 * wildcards): its index, or -1 (none, or name NULL or empty). The names are
 * the char * at first, first + stride, ... (a member of an array of
 * structs). The one way every TLS adapter chooses a certificate by SNI. */
int tls_name_pick(const char *const *first, size_t stride, int n, const char *name);

enum tls_peer { TLS_PEER_NONE = 0, TLS_PEER_VALID, TLS_PEER_INVALID };

/* Whether a server name matches a pattern: exactly (case aside), or
 * "*.example.com" for exactly one label in front of example.com. */
int tls_name_matches(const char *pattern, const char *name);

/* Reads a whole PEM file (at most MAX_CERT_FILE bytes) into a NUL-terminated
 * buffer the caller frees. NULL with errors added. */
char *tls_read_pem(const char *path, const char *what, struct config_errors *errs);

#endif
