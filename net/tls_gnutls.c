/* tls_gnutls.c: the HTTPS front's certificates in GnuTLS form.
 *
 * libmicrohttpd hands certificate selection to us through GnuTLS's
 * retrieve callback, which lets one listener serve several names (SNI),
 * give the default certificate to modules that send no SNI (their default),
 * and swap certificates on SIGHUP without restarting anything: the callback
 * reads the installed TLS set at every handshake (tls_set.h: its life). */
#include "autoconfig.h"

#include "tls_gnutls.h"

#include <gnutls/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_CHAIN 16

struct tls_cert {
  char *name; /* NULL for the default certificate */
  gnutls_pcert_st chain[MAX_CHAIN];
  unsigned n_chain;
  gnutls_privkey_t key;
};

struct tls_gnutls {
  struct tls_cert def;
  struct tls_cert *sni;
  int n_sni;
};

struct tls_slot tls_gnutls_slot = TLS_SLOT_INIT;

static void cert_free(struct tls_cert *c)
{
  for (unsigned i = 0; i < c->n_chain; i++)
    gnutls_pcert_deinit(&c->chain[i]);
  c->n_chain = 0;
  if (c->key != NULL)
    gnutls_privkey_deinit(c->key);
  c->key = NULL;
  free(c->name);
  c->name = NULL;
}

static int cert_load(struct tls_cert *out, const struct tls_pair *p, struct config_errors *errs)
{
  gnutls_datum_t cd, kd;
  int ret;

  memset(out, 0, sizeof(*out));
  cd = (gnutls_datum_t){(unsigned char *)p->cert_pem, (unsigned)strlen(p->cert_pem)};
  kd = (gnutls_datum_t){(unsigned char *)p->key_pem, (unsigned)strlen(p->key_pem)};
  out->n_chain = MAX_CHAIN;
  ret = gnutls_pcert_list_import_x509_raw(out->chain, &out->n_chain, &cd, GNUTLS_X509_FMT_PEM, 0);
  if (ret < 0 || out->n_chain == 0) {
    out->n_chain = 0;
    config_errors_add(errs, "certificate %s: %s", p->name ? p->name : "(default)",
                      gnutls_strerror(ret));
    goto fail;
  }
  if (gnutls_privkey_init(&out->key) < 0 ||
      (ret = gnutls_privkey_import_x509_raw(out->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
    config_errors_add(errs, "key %s: %s", p->name ? p->name : "(default)", gnutls_strerror(ret));
    goto fail;
  }
  if (p->name != NULL && (out->name = strdup(p->name)) == NULL)
    goto fail;
  return 0;
fail:
  cert_free(out);
  return -1;
}

static void certs_free(struct tls_gnutls *s)
{
  if (s == NULL)
    return;
  cert_free(&s->def);
  for (int i = 0; i < s->n_sni; i++)
    cert_free(&s->sni[i]);
  free(s->sni);
  free(s);
}

struct tls_gnutls *tls_gnutls_build(const struct tls_store *st, const char *section,
                                    struct config_errors *errs)
{
  struct tls_gnutls *s = calloc(1, sizeof(*s));

  if (s == NULL)
    return NULL;
  if (st->priorities != NULL && st->priorities[0] != '\0') {
    /* libmicrohttpd takes it at start: said now, and by -t */
    gnutls_priority_t prio;
    const char *where = NULL;
    int ret = gnutls_priority_init(&prio, st->priorities, &where);
    if (ret < 0) {
      config_errors_add(errs, "[%s] priorities: %s at \"%.40s\"", section, gnutls_strerror(ret),
                        where != NULL ? where : "");
      goto fail;
    }
    gnutls_priority_deinit(prio);
  }
  if (st->def.cert_pem == NULL) {
    config_errors_add(errs, "[%s] needs cert and key", section);
    goto fail;
  }
  if (cert_load(&s->def, &st->def, errs) < 0)
    goto fail;
  if (st->n_sni > 0) {
    s->sni = calloc((size_t)st->n_sni, sizeof(*s->sni));
    if (s->sni == NULL)
      goto fail;
    for (int i = 0; i < st->n_sni; i++) {
      if (cert_load(&s->sni[i], &st->sni[i], errs) < 0)
        goto fail;
      s->n_sni++;
    }
  }
  return s;
fail:
  certs_free(s);
  return NULL;
}

void tls_gnutls_free(struct tls_gnutls *certs) { certs_free(certs); }

int tls_gnutls_cert_callback(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                             const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                             gnutls_pcert_st **pcert, unsigned int *pcert_length,
                             gnutls_privkey_t *pkey)
{
  /* the set stays valid while this handshake's front lives (tls_set.h) */
  struct tls_set *set = tls_slot_current(&tls_gnutls_slot);
  struct tls_gnutls *s = set != NULL ? set->gnutls : NULL;
  struct tls_cert *pick;
  char name[256];
  size_t len = sizeof(name);
  unsigned type = 0;

  (void)req_ca_dn;
  (void)nreqs;
  (void)pk_algos;
  (void)pk_algos_length;
  if (s == NULL)
    return -1;
  pick = &s->def;
  if (s->n_sni > 0 && gnutls_server_name_get(session, name, &len, &type, 0) == GNUTLS_E_SUCCESS &&
      type == GNUTLS_NAME_DNS) {
    int i = tls_name_pick((const char *const *)&s->sni[0].name, sizeof(s->sni[0]), s->n_sni, name);
    if (i >= 0)
      pick = &s->sni[i];
  }
  *pcert = pick->chain;
  *pcert_length = pick->n_chain;
  *pkey = pick->key;
  return 0;
}

enum tls_peer tls_gnutls_peer(gnutls_session_t session, char *cn, size_t cnlen)
{
  unsigned status = 0, n = 0;
  const gnutls_datum_t *peers;
  gnutls_x509_crt_t crt;
  int ret;

  ret = gnutls_certificate_verify_peers2(session, &status);
  if (ret == GNUTLS_E_NO_CERTIFICATE_FOUND)
    return TLS_PEER_NONE;
  if (ret < 0 || status != 0)
    return TLS_PEER_INVALID;
  peers = gnutls_certificate_get_peers(session, &n);
  if (peers == NULL || n == 0)
    return TLS_PEER_NONE;
  if (cn != NULL && cnlen > 0) {
    cn[0] = '\0';
    if (gnutls_x509_crt_init(&crt) == 0) {
      size_t l = cnlen;
      if (gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER) == 0 &&
          gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &l) != 0)
        cn[0] = '\0';
      gnutls_x509_crt_deinit(crt);
    }
  }
  return TLS_PEER_VALID;
}
