/* tls_openssl.c: server contexts in OpenSSL form, for the fronts that use
 * OpenSSL (FTPS; CoAPS goes through libcoap-3-openssl, which takes the
 * store's PEM text itself). */
#include "autoconfig.h"

#include "tls_openssl.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>

/* AEAD suites only, forward secrecy only, in our order (TLS 1.2; TLS 1.3
 * has nothing else) */
#define DEF_OPENSSL_CIPHERS                                                                        \
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"       \
  "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* Per-name contexts, in ex_data of the default context (copies of the
 * names: the context needs nothing of the store). */
struct sni_ctxs {
  int n;
  char **name;
  SSL_CTX **ctx; /* one per name */
};

static int sni_index = -1, bind_index = -1;
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

/* ---- sessions bound to a nonce ------------------------------------------- */

/* Every ticket issued carries the nonce of the connection it was issued
 * on (none: an empty one). */
static int ticket_gen(SSL *ssl, void *arg)
{
  const unsigned char *nonce = SSL_get_ex_data(ssl, bind_index);

  (void)arg;
  if (nonce != NULL)
    SSL_SESSION_set1_ticket_appdata(SSL_get_session(ssl), nonce, TLS_BIND_LEN);
  return 1;
}

static SSL_TICKET_RETURN ticket_dec(SSL *ssl, SSL_SESSION *ss, const unsigned char *keyname,
                                    size_t keyname_len, SSL_TICKET_STATUS status, void *arg)
{
  (void)ssl;
  (void)ss;
  (void)keyname;
  (void)keyname_len;
  (void)arg;
  switch (status) {
  case SSL_TICKET_FATAL_ERR_MALLOC:
  case SSL_TICKET_FATAL_ERR_OTHER: return SSL_TICKET_RETURN_ABORT;
  case SSL_TICKET_SUCCESS: return SSL_TICKET_RETURN_USE;
  case SSL_TICKET_SUCCESS_RENEW: return SSL_TICKET_RETURN_USE_RENEW;
  default: return SSL_TICKET_RETURN_IGNORE_RENEW;
  }
}

void tls_openssl_bind(SSL *ssl, const unsigned char *nonce)
{
  SSL_set_ex_data(ssl, bind_index, (void *)nonce);
}

void tls_openssl_bind_session(SSL *ssl, const unsigned char *nonce)
{
  SSL_SESSION *ss = SSL_get_session(ssl);

  if (ss != NULL)
    SSL_SESSION_set1_ticket_appdata(ss, nonce, TLS_BIND_LEN);
}

int tls_openssl_bound(SSL *ssl, const unsigned char *nonce)
{
  SSL_SESSION *ss = SSL_get0_session(ssl);
  void *p = NULL;
  size_t n = 0;

  if (!SSL_session_reused(ssl) || ss == NULL)
    return 0;
  SSL_SESSION_get0_ticket_appdata(ss, &p, &n);
  return n == TLS_BIND_LEN && CRYPTO_memcmp(p, nonce, n) == 0;
}

static void add_error(struct config_errors *errs, const char *what)
{
  char buf[256];
  unsigned long e = ERR_get_error();

  ERR_error_string_n(e, buf, sizeof(buf));
  config_errors_add(errs, "%s: %s", what, e ? buf : "failed");
  ERR_clear_error();
}

/* Loads a PEM chain and key into ctx. */
static int use_pair(SSL_CTX *ctx, const struct tls_pair *p, struct config_errors *errs)
{
  BIO *b = BIO_new_mem_buf(p->cert_pem, -1);
  X509 *x = b ? PEM_read_bio_X509_AUX(b, NULL, NULL, NULL) : NULL;
  EVP_PKEY *k = NULL;
  int ok = 0;

  if (x == NULL || SSL_CTX_use_certificate(ctx, x) != 1) {
    add_error(errs, "certificate");
    goto out;
  }
  SSL_CTX_clear_chain_certs(ctx);
  for (;;) {
    X509 *ca = PEM_read_bio_X509(b, NULL, NULL, NULL);
    if (ca == NULL)
      break;
    if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
      X509_free(ca);
      add_error(errs, "certificate chain");
      goto out;
    }
  }
  ERR_clear_error(); /* the end of the chain reads as an error */
  BIO_free(b);
  b = BIO_new_mem_buf(p->key_pem, -1);
  k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
  if (k == NULL || SSL_CTX_use_PrivateKey(ctx, k) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    add_error(errs, "private key");
    goto out;
  }
  ok = 1;
out:
  X509_free(x);
  EVP_PKEY_free(k);
  BIO_free(b);
  return ok ? 0 : -1;
}

static int trust_client_ca(SSL_CTX *ctx, const char *pem, struct config_errors *errs)
{
  BIO *b = BIO_new_mem_buf(pem, -1);
  X509_STORE *store = SSL_CTX_get_cert_store(ctx);
  STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
  int n = 0;

  for (;;) {
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    if (x == NULL)
      break;
    X509_STORE_add_cert(store, x);
    if (names != NULL)
      sk_X509_NAME_push(names, X509_NAME_dup(X509_get_subject_name(x)));
    X509_free(x);
    n++;
  }
  ERR_clear_error();
  BIO_free(b);
  if (n == 0) {
    sk_X509_NAME_pop_free(names, X509_NAME_free);
    config_errors_add(errs, "client_ca: no certificate in it");
    return -1;
  }
  if (names != NULL)
    SSL_CTX_set_client_CA_list(ctx, names);
  return 0;
}

static SSL_CTX *new_ctx(const struct tls_store *s, const struct tls_pair *p, const char *section,
                        struct config_errors *errs)
{
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  const char *ciphers = s->priorities && s->priorities[0] ? s->priorities : DEF_OPENSSL_CIPHERS;
  unsigned char sid[SSL_MAX_SID_CTX_LENGTH];
  int n = snprintf((char *)sid, sizeof(sid), "dfotad-%s", section);

  if (ctx == NULL) {
    add_error(errs, "TLS context");
    return NULL;
  }
  /* resumption: the same settings on every context, the default and each
   * name's, whichever one a handshake ends on (OpenSSL 3.0 looks a session
   * up before the SNI callback switches contexts, so the default's decide
   * today; tests/integration/ftp.sh resumes with SNI and client
   * certificates over TLS 1.2 and 1.3) */
  SSL_CTX_set_session_id_context(ctx, sid,
                                 (unsigned)(n < (int)sizeof(sid) ? n : (int)sizeof(sid) - 1));
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  SSL_CTX_set_timeout(ctx, 3600);
  SSL_CTX_set_session_ticket_cb(ctx, ticket_gen, ticket_dec, NULL);
  /* idle connections keep no TLS buffers */
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_NO_COMPRESSION);
  if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
    add_error(errs, "ciphers");
    goto fail;
  }
  if (p->cert_pem != NULL && use_pair(ctx, p, errs) < 0)
    goto fail;
  if (s->client_auth != CLIENT_AUTH_NONE) {
    if (s->client_ca_pem == NULL || trust_client_ca(ctx, s->client_ca_pem, errs) < 0)
      goto fail;
    SSL_CTX_set_verify(
        ctx,
        SSL_VERIFY_PEER |
            (s->client_auth == CLIENT_AUTH_REQUIRED ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
        NULL);
    SSL_CTX_set_verify_depth(ctx, 8);
  }
  return ctx;
fail:
  SSL_CTX_free(ctx);
  return NULL;
}

static int on_servername(SSL *ssl, int *alert, void *arg)
{
  struct sni_ctxs *sc = arg;
  int i = tls_name_pick((const char *const *)sc->name, sizeof(sc->name[0]), sc->n,
                        SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));

  (void)alert;
  if (i >= 0)
    SSL_set_SSL_CTX(ssl, sc->ctx[i]);
  return SSL_TLSEXT_ERR_OK;
}

static void free_sni(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
  struct sni_ctxs *sc = ptr;

  (void)parent;
  (void)ad;
  (void)idx;
  (void)argl;
  (void)argp;
  if (sc == NULL)
    return;
  for (int i = 0; i < sc->n; i++) {
    SSL_CTX_free(sc->ctx[i]);
    free(sc->name[i]);
  }
  free(sc->ctx);
  free(sc->name);
  free(sc);
}

static void make_indexes(void)
{
  sni_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_sni);
  bind_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

SSL_CTX *tls_openssl_server_ctx(const struct tls_store *s, const char *section,
                                struct config_errors *errs)
{
  SSL_CTX *ctx;
  struct sni_ctxs *sc;

  pthread_once(&index_once, make_indexes);
  ctx = new_ctx(s, &s->def, section, errs);
  if (ctx == NULL || s->n_sni == 0)
    return ctx;
  sc = calloc(1, sizeof(*sc));
  if (sc == NULL || (sc->ctx = calloc((size_t)s->n_sni, sizeof(*sc->ctx))) == NULL ||
      (sc->name = calloc((size_t)s->n_sni, sizeof(*sc->name))) == NULL) {
    if (sc != NULL)
      free(sc->ctx);
    free(sc);
    SSL_CTX_free(ctx);
    config_errors_add(errs, "[%s] TLS: out of memory", section);
    return NULL;
  }
  SSL_CTX_set_ex_data(ctx, sni_index, sc); /* freed with ctx */
  for (int i = 0; i < s->n_sni; i++) {
    sc->n++;
    if ((sc->name[i] = strdup(s->sni[i].name)) == NULL ||
        (sc->ctx[i] = new_ctx(s, &s->sni[i], section, errs)) == NULL) {
      SSL_CTX_free(ctx);
      return NULL;
    }
  }
  SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
  SSL_CTX_set_tlsext_servername_arg(ctx, sc);
  return ctx;
}

enum tls_peer tls_openssl_peer(SSL *ssl, char *cn, size_t cnlen)
{
  X509 *x = SSL_get1_peer_certificate(ssl);
  enum tls_peer r;

  if (cn != NULL && cnlen > 0)
    cn[0] = '\0';
  if (x == NULL)
    return TLS_PEER_NONE;
  if (SSL_get_verify_result(ssl) != X509_V_OK) {
    r = TLS_PEER_INVALID;
  } else {
    r = TLS_PEER_VALID;
    if (cn != NULL && cnlen > 0 &&
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, (int)cnlen) < 0)
      cn[0] = '\0';
  }
  X509_free(x);
  return r;
}
