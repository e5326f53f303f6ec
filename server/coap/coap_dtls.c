/* coap_dtls.c: DTLS for the CoAPS front through libcoap-3-openssl: a
 * pre-shared key per device, looked up by its identity in the delivery
 * core's memory at each handshake (so a key set through the admin API
 * works at the next handshake), and the section's certificate with its
 * chain, client certificates verified against client_ca.
 *
 * libcoap 4.3.1 quirks handled here:
 * - with certificates configured, its ClientHello callback considers PSK
 *   only when a server-wide default key is set; we set a random one
 *   that no identity ever gets (the identity callback decides every key);
 * - it loads only the first certificate of a PEM buffer: the rest of the
 *   chain is added in the per-handshake setup callback;
 * - it knows "verify and require" or "do not ask": client_auth =
 *   optional is made in the same callback (ask, do not require).
 * The SNI entries of the section are not used over DTLS: libcoap caches
 * one context per distinct name without bound; modules send no SNI. */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

#include "../../net/tls_openssl.h"
#include "../../util/util.h"
#include "coap_int.h"

/* Memory per DTLS session: OpenSSL sizes a session's write buffer for
 * 16 KiB records, but a CoAP datagram is at most COAP_DTLS_RECORD bytes of
 * plaintext (handshake messages are fragmented anyway); and buffers may be
 * released between datagrams. Set on the session's SSL and on libcoap's
 * SSL_CTX (which we only reach through a session), for the sessions that
 * follow: a thousand open sessions then cost far less. */
#define COAP_DTLS_RECORD 1280
static void release_buffers(SSL *ssl)
{
  if (ssl == NULL)
    return;
  SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
  SSL_set_max_send_fragment(ssl, COAP_DTLS_RECORD);
  SSL_CTX_set_mode(SSL_get_SSL_CTX(ssl), SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_max_send_fragment(SSL_get_SSL_CTX(ssl), COAP_DTLS_RECORD);
}

/* ---- PSK -------------------------------------------------------------------- */

/* Resumption: a resumed session (from a ticket or the server's cache)
 * keeps the PSK identity OpenSSL stored with it, and carries as its
 * ticket's application data the digest of the key its full handshake
 * used, so that a resumption after the key was removed or changed ends the
 * session (coap_dtls_connected). The digest is attached when the session's
 * ticket is made, after the PSK callback set this up on libcoap's SSL_CTX
 * (which we reach only through a session). */
static int ticket_gen(SSL *ssl, void *arg)
{
  coap_session_t *s = SSL_get_app_data(ssl);
  const struct coap_peer *p = s != NULL ? coap_session_get_app_data(s) : NULL;

  (void)arg;
  if (p != NULL && p->identity[0] != '\0')
    SSL_SESSION_set1_ticket_appdata(SSL_get_session(ssl), p->digest, sizeof(p->digest));
  return 1;
}

static void key_digest(const char *identity, const unsigned char *key, size_t keylen,
                       unsigned char out[32])
{
  unsigned n = 0;
  EVP_MD_CTX *c = EVP_MD_CTX_new();

  if (c == NULL || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 ||
      EVP_DigestUpdate(c, identity, strlen(identity) + 1) != 1 ||
      EVP_DigestUpdate(c, key, keylen) != 1 || EVP_DigestFinal_ex(c, out, &n) != 1 || n != 32)
    RAND_bytes(out, 32); /* matches nothing */
  EVP_MD_CTX_free(c);
}

/* The identity's key now: 0 with digest and device, -1 when unknown. */
static int current(struct coap_engine *e, const char *identity, unsigned char digest[32],
                   char device[DEVICE_ID_MAX + 1])
{
  unsigned char key[PSK_MAX];
  size_t keylen = 0;
  int r = -1;

  if (delivery_psk_lookup(e->fleet, identity, strlen(identity), key, &keylen, device) == 0 &&
      keylen > 0 && keylen <= sizeof(key)) {
    key_digest(identity, key, keylen, digest);
    r = 0;
  }
  explicit_bzero(key, sizeof(key));
  return r;
}

int coap_dtls_key_current(struct coap_engine *e, const struct coap_peer *p)
{
  unsigned char d[32];
  char device[DEVICE_ID_MAX + 1];
  int same = current(e, p->identity, d, device) == 0 && CRYPTO_memcmp(d, p->digest, 32) == 0 &&
             strcmp(device, p->device) == 0;

  explicit_bzero(d, sizeof(d));
  return same;
}

/* SECURITY: identities are bounded and looked up in memory only. Every
 * front's throttle is asked first (an address or device that failed too
 * often is not heard); an unknown identity is a failed credential, and so
 * is a known one whose handshake then fails (a wrong key: coap_dtls_failed). */
static const coap_bin_const_t *psk_for_identity(coap_bin_const_t *identity, coap_session_t *session,
                                                void *arg)
{
  struct coap_engine *e = arg;
  char device[DEVICE_ID_MAX + 1] = "", ip[INET6_ADDRSTRLEN], ipport[INET6_ADDRSTRLEN + 16];
  char id[PSK_IDENTITY_MAX + 1];
  size_t keylen = 0;
  coap_tls_library_t lib;
  void *ssl = coap_session_get_tls(session, &lib);
  const coap_address_t *ra = coap_session_get_addr_remote(session);
  struct coap_peer *p;
  struct adm_key k;
  int known, wait;

  if (lib == COAP_TLS_LIBRARY_OPENSSL && ssl != NULL) {
    release_buffers(ssl);
    SSL_CTX_set_session_ticket_cb(SSL_get_SSL_CTX(ssl), ticket_gen, NULL, NULL);
  }
  if (coap_session_over(session))
    return NULL;
  coap_peer_text(session, ip, sizeof(ip), ipport, sizeof(ipport));
  known = identity != NULL && identity->length > 0 && identity->length <= PSK_IDENTITY_MAX &&
          memchr(identity->s, '\0', identity->length) == NULL &&
          delivery_psk_lookup(e->fleet, (const char *)identity->s, identity->length, e->psk_out,
                              &keylen, device) == 0 &&
          keylen > 0 && keylen <= sizeof(e->psk_out);
  wait = delivery_auth_wait(e->fleet, e->proto, ip, known ? device : NULL);
  if (wait > 0 || !known) {
    explicit_bzero(e->psk_out, sizeof(e->psk_out));
    if (wait > 0) {
      log_limited(LOG_DEBUG, 5, "%s: handshake from %s refused for %d s more (failed credentials)",
                  proto_name(e->proto), ipport, wait);
    } else {
      delivery_count(e->proto, FC_UNKNOWN_IDENTITIES, 1);
      delivery_auth_failed(e->fleet, e->proto, ip, NULL, "unknown DTLS PSK identity");
    }
    return NULL;
  }
  memcpy(id, identity->s, identity->length);
  id[identity->length] = '\0';
  p = coap_peer_get(e, session);
  if (p == NULL)
    return NULL;
  /* SECURITY: a real address (its cookie came back) has at most so many
   * handshakes at once: one host cannot fill the session table with them */
  adm_key_addr(ra != NULL ? &ra->addr.sa : NULL, &k);
  if (p->handshake.gen == 0 &&
      adm_take(e->adm, &k, ADM_HANDSHAKE, COAP_HANDSHAKES_PER_ADDR, &p->handshake) < 0) {
    explicit_bzero(e->psk_out, sizeof(e->psk_out));
    log_limited(LOG_INFO, 5, "%s: %s: too many handshakes from one address at once",
                proto_name(e->proto), ipport);
    return NULL;
  }
  snprintf(p->identity, sizeof(p->identity), "%s", id);
  snprintf(p->device, sizeof(p->device), "%s", device);
  key_digest(id, e->psk_out, keylen, p->digest);
  p->asked = mono_ms();
  /* libcoap copies the key at once; the housekeeping wipes ours */
  e->psk_bin.s = e->psk_out;
  e->psk_bin.length = keylen;
  return &e->psk_bin;
}

/* An identity as log text: printable ASCII only. */
static void printable(const char *in, char *out, size_t len)
{
  size_t n = 0;

  for (; *in && n + 1 < len; in++)
    out[n++] = (*in > 0x20 && *in < 0x7f) ? *in : '?';
  out[n] = '\0';
}

void coap_dtls_failed(struct coap_engine *e, struct coap_peer *p)
{
  char ip[INET6_ADDRSTRLEN], ipport[INET6_ADDRSTRLEN + 16], id[PSK_IDENTITY_MAX + 1],
      what[PSK_IDENTITY_MAX + 64];

  if (p->identity[0] == '\0')
    return;
  coap_peer_text(p->s, ip, sizeof(ip), ipport, sizeof(ipport));
  printable(p->identity, id, sizeof(id));
  snprintf(what, sizeof(what), "wrong key for DTLS PSK identity %s", id);
  /* counted (dfotad_auth_failures_total), throttled and logged at a
   * bounded rate with the identity and the address */
  delivery_auth_failed(e->fleet, e->proto, ip, p->device, what);
  p->identity[0] = '\0';
}

void coap_dtls_connected(struct coap_engine *e, struct coap_peer *p)
{
  coap_tls_library_t lib;
  SSL *ssl = coap_session_get_tls(p->s, &lib);
  SSL_SESSION *ss;
  const char *id;
  void *d = NULL;
  size_t n = 0;

  if (ssl == NULL || lib != COAP_TLS_LIBRARY_OPENSSL || (ss = SSL_get_session(ssl)) == NULL ||
      (id = SSL_get_psk_identity(ssl)) == NULL || !SSL_session_reused(ssl))
    return; /* a full handshake (the PSK callback filled p), or a certificate */
  /* SECURITY: a resumed session is the device of its identity, as long as
   * that identity still has the key of the full handshake */
  snprintf(p->identity, sizeof(p->identity), "%s", id);
  if (SSL_SESSION_get0_ticket_appdata(ss, &d, &n) != 1 || n != sizeof(p->digest) ||
      current(e, p->identity, p->digest, p->device) < 0 ||
      CRYPTO_memcmp(d, p->digest, sizeof(p->digest)) != 0)
    p->revoked = 1;
}

void coap_dtls_wipe(struct coap_engine *e) { explicit_bzero(e->psk_out, sizeof(e->psk_out)); }

/* The intermediates of a PEM chain (every certificate after the leaf,
 * which libcoap loads itself). NULL when there are none or on error. */
static STACK_OF(X509) * parse_chain(const char *pem)
{
  STACK_OF(X509) *chain = NULL;
  BIO *bio = BIO_new_mem_buf(pem, (int)strlen(pem));
  X509 *x;
  int first = 1;

  if (bio == NULL)
    return NULL;
  while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
    if (first) { /* the leaf is libcoap's */
      X509_free(x);
      first = 0;
      continue;
    }
    if ((chain == NULL && (chain = sk_X509_new_null()) == NULL) || !sk_X509_push(chain, x)) {
      X509_free(x);
      break;
    }
  }
  ERR_clear_error(); /* the end of the PEM text */
  BIO_free(bio);
  return chain;
}

void coap_dtls_free(struct coap_engine *e)
{
  sk_X509_pop_free(e->chain, X509_free);
  e->chain = NULL;
}

/* Per handshake, after libcoap's certificate setup: the chain, and
 * client_auth = optional. Returns 1 to go on, 0 to fail the handshake.
 * The intermediates were parsed once for the set (coap_dtls_setup); each
 * handshake's SSL takes a reference to each (add1: the set's stack keeps
 * its own, which a later handshake uses again). */
static int pki_handshake_setup(void *tls_session, coap_dtls_pki_t *setup)
{
  SSL *ssl = tls_session;
  struct coap_engine *e = setup->cn_call_back_arg;
  coap_session_t *s = ssl ? SSL_get_app_data(ssl) : NULL;
  STACK_OF(X509) * chain;

  if (ssl == NULL || e == NULL || e->tls == NULL)
    return 0;
  release_buffers(ssl);
  if (s != NULL && coap_session_over(s))
    return 0;
  chain = e->chain;
  for (int i = 0; chain != NULL && i < sk_X509_num(chain); i++)
    if (SSL_add1_chain_cert(ssl, sk_X509_value(chain, i)) != 1)
      return 0;
  /* libcoap's per-handshake certificate setup reads its PEM texts (the
   * client CAs) until the PEM reader fails, which leaves "no start line"
   * on OpenSSL's error queue; left there, the next SSL_get_error in
   * libcoap's handshake takes it for a failure and the certificate
   * handshake dies (unless libcoap's debug logging drained the queue: why
   * parsing the chain once had "worked only at log level debug") */
  ERR_clear_error();
  if (e->tls->store->client_auth == CLIENT_AUTH_OPTIONAL)
    SSL_set_verify(ssl, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, SSL_get_verify_callback(ssl));
  return 1;
}

/* libcoap asks about each certificate of the client's chain it verified;
 * the device is read from the verified leaf per request (coap_dtls_peer) */
static int accept_cn(const char *cn, const uint8_t *der, size_t len, coap_session_t *s,
                     unsigned depth, int validated, void *arg)
{
  (void)cn;
  (void)der;
  (void)len;
  (void)s;
  (void)depth;
  (void)arg;
  return validated;
}

int coap_dtls_setup(struct coap_engine *e, struct tls_set *set, struct config_errors *errs)
{
  const struct tls_store *tls = set != NULL ? set->store : NULL;
  coap_dtls_spsk_t psk;

  if (!coap_dtls_is_supported()) {
    config_errors_add(errs, "%s: this libcoap has no DTLS", proto_name(e->proto));
    tls_set_unref(set);
    return -1;
  }
  if (e->psk_bin.s == NULL) {
    /* the first setup: PSK, with a default key nobody gets (see the top) */
    if (RAND_bytes(e->dummy_psk, sizeof(e->dummy_psk)) != 1) {
      config_errors_add(errs, "%s: no randomness", proto_name(e->proto));
      tls_set_unref(set);
      return -1;
    }
    memset(&psk, 0, sizeof(psk));
    psk.version = COAP_DTLS_SPSK_SETUP_VERSION;
    psk.validate_id_call_back = psk_for_identity;
    psk.id_call_back_arg = e;
    psk.psk_info.key.s = e->dummy_psk;
    psk.psk_info.key.length = sizeof(e->dummy_psk);
    if (!coap_context_set_psk2(e->ctx, &psk)) {
      config_errors_add(errs, "%s: cannot set up DTLS PSK", proto_name(e->proto));
      tls_set_unref(set);
      return -1;
    }
    e->psk_bin.s = e->psk_out;
  }
  if (tls == NULL)
    return 0;
  memset(&e->pki, 0, sizeof(e->pki));
  e->pki.version = COAP_DTLS_PKI_SETUP_VERSION;
  e->pki.verify_peer_cert = tls->client_auth != CLIENT_AUTH_NONE && tls->client_ca_pem != NULL;
  e->pki.check_common_ca = 0;
  e->pki.allow_self_signed = 0;
  e->pki.allow_expired_certs = 0;
  e->pki.cert_chain_validation = 1;
  e->pki.cert_chain_verify_depth = 4;
  e->pki.validate_cn_call_back = accept_cn;
  e->pki.cn_call_back_arg = e;
  e->pki.additional_tls_setup_call_back = pki_handshake_setup;
  e->pki.pki_key.key_type = COAP_PKI_KEY_PEM_BUF;
  e->pki.pki_key.key.pem_buf.public_cert = (const uint8_t *)tls->def.cert_pem;
  e->pki.pki_key.key.pem_buf.public_cert_len = strlen(tls->def.cert_pem) + 1;
  e->pki.pki_key.key.pem_buf.private_key = (const uint8_t *)tls->def.key_pem;
  e->pki.pki_key.key.pem_buf.private_key_len = strlen(tls->def.key_pem) + 1;
  if (tls->client_ca_pem != NULL) {
    e->pki.pki_key.key.pem_buf.ca_cert = (const uint8_t *)tls->client_ca_pem;
    e->pki.pki_key.key.pem_buf.ca_cert_len = strlen(tls->client_ca_pem) + 1;
  }
  if (!coap_context_set_pki(e->ctx, &e->pki)) {
    config_errors_add(errs, "%s: libcoap refused the certificate", proto_name(e->proto));
    tls_set_unref(set);
    return -1;
  }
  /* libcoap now points into the new set; the old one is unused (it is
   * read only while a ClientHello is handled, on this thread) */
  tls_set_unref(e->tls);
  e->tls = set;
  coap_dtls_free(e);
  e->chain = parse_chain(tls->def.cert_pem);
  atomic_store(&e->has_pki, 1);
  return 0;
}

int coap_dtls_peer(struct coap_engine *e, coap_session_t *s, char device[DEVICE_ID_MAX + 1])
{
  const coap_bin_const_t *id = coap_session_get_psk_identity(s);
  struct coap_peer *p = coap_session_get_app_data(s);
  coap_tls_library_t lib;
  unsigned char key[PSK_MAX];
  size_t keylen = 0;
  void *ssl;
  int r = -1;

  /* a PSK session (resumed or not) is its identity's device while that
   * identity keeps its key; else it is ended (coap_front.c's sweep) */
  if (p != NULL && p->connected && p->identity[0] != '\0') {
    if (p->revoked || !coap_dtls_key_current(e, p)) {
      p->revoked = 1;
      return -1;
    }
    snprintf(device, DEVICE_ID_MAX + 1, "%s", p->device);
    return 0;
  }
  if (p != NULL && p->revoked)
    return -1;
  if (id != NULL && id->length > 0) {
    if (id->length <= PSK_IDENTITY_MAX &&
        delivery_psk_lookup(e->fleet, (const char *)id->s, id->length, key, &keylen, device) == 0)
      r = 0;
    explicit_bzero(key, sizeof(key));
    return r;
  }
  ssl = coap_session_get_tls(s, &lib);
  if (ssl == NULL || lib != COAP_TLS_LIBRARY_OPENSSL)
    return -1;
  return tls_openssl_peer(ssl, device, DEVICE_ID_MAX + 1) == TLS_PEER_VALID ? 0 : -1;
}
