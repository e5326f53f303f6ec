/* tls.c: certificate sets for the HTTPS front.
 *
 * libmicrohttpd hands certificate selection to us through GnuTLS's
 * retrieve callback, which lets one listener serve several names (SNI),
 * give the default certificate to modules that send no SNI (their default),
 * and swap certificates on SIGHUP without restarting anything: the callback
 * reads the installed set at every handshake. */
#include "autoconfig.h"

#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define MAX_CHAIN 16

struct tls_cert {
  char *name; /* NULL for the default certificate */
  gnutls_pcert_st chain[MAX_CHAIN];
  unsigned n_chain;
  gnutls_privkey_t key;
};

struct tls_certs {
  struct tls_cert def;
  struct tls_cert *sni;
  int n_sni;
  struct tls_certs *retired_next;
};

static _Atomic(struct tls_certs *) installed;
static pthread_mutex_t retired_mu = PTHREAD_MUTEX_INITIALIZER;
static struct tls_certs *retired;

char *tls_read_pem(const char *path, const char *what, struct config_errors *errs)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  char *buf = NULL;
  size_t got = 0;

  if (fd < 0) {
    config_errors_add(errs, "%s %s: %s", what, path, strerror(errno));
    return NULL;
  }
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    config_errors_add(errs, "%s %s: not a regular file", what, path);
    goto fail;
  }
  if (st.st_size > MAX_CERT_FILE) {
    config_errors_add(errs, "%s %s: larger than %d bytes", what, path, MAX_CERT_FILE);
    goto fail;
  }
  buf = malloc((size_t)st.st_size + 1);
  if (buf == NULL)
    goto fail;
  while (got < (size_t)st.st_size) {
    ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  buf[got] = '\0';
  close(fd);
  return buf;
fail:
  free(buf);
  close(fd);
  return NULL;
}

/* SECURITY: a private key that others can read or change is a key an
 * attacker may hold or replace; refuse it, as OpenBSD httpd does. */
static int key_secret_enough(const char *path, struct config_errors *errs)
{
  struct stat st;

  if (stat(path, &st) < 0)
    return 1; /* reported by the read */
  if (st.st_mode & (S_IWGRP | S_IWOTH | S_IROTH)) {
    config_errors_add(errs, "key %s: readable by others or writable by group/others (mode %03o)",
                      path, (unsigned)(st.st_mode & 0777));
    return 0;
  }
  return 1;
}

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

static int cert_load(struct tls_cert *out, const char *name, const char *cert_path,
                     const char *key_path, struct config_errors *errs)
{
  char *cert_pem = NULL, *key_pem = NULL;
  gnutls_certificate_credentials_t check = NULL;
  gnutls_datum_t cd, kd;
  int ret, rc = -1;

  memset(out, 0, sizeof(*out));
  if (!key_secret_enough(key_path, errs))
    return -1;
  cert_pem = tls_read_pem(cert_path, "certificate", errs);
  key_pem = tls_read_pem(key_path, "key", errs);
  if (cert_pem == NULL || key_pem == NULL)
    goto out;
  cd = (gnutls_datum_t){(unsigned char *)cert_pem, (unsigned)strlen(cert_pem)};
  kd = (gnutls_datum_t){(unsigned char *)key_pem, (unsigned)strlen(key_pem)};

  /* GnuTLS checks that the key belongs to the certificate here */
  gnutls_certificate_allocate_credentials(&check);
  ret = gnutls_certificate_set_x509_key_mem2(check, &cd, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
  if (ret < 0) {
    config_errors_add(errs, "certificate %s with key %s: %s", cert_path, key_path,
                      gnutls_strerror(ret));
    goto out;
  }
  out->n_chain = MAX_CHAIN;
  ret = gnutls_pcert_list_import_x509_raw(out->chain, &out->n_chain, &cd, GNUTLS_X509_FMT_PEM, 0);
  if (ret < 0 || out->n_chain == 0) {
    out->n_chain = 0;
    config_errors_add(errs, "certificate %s: %s", cert_path, gnutls_strerror(ret));
    goto out;
  }
  if (gnutls_privkey_init(&out->key) < 0 ||
      (ret = gnutls_privkey_import_x509_raw(out->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
    config_errors_add(errs, "key %s: %s", key_path, gnutls_strerror(ret));
    goto out;
  }
  if (name != NULL && (out->name = strdup(name)) == NULL)
    goto out;
  rc = 0;
out:
  if (check != NULL)
    gnutls_certificate_free_credentials(check);
  if (key_pem != NULL) {
    explicit_bzero(key_pem, strlen(key_pem));
    free(key_pem);
  }
  free(cert_pem);
  if (rc < 0)
    cert_free(out);
  return rc;
}

static void certs_free(struct tls_certs *s)
{
  if (s == NULL)
    return;
  cert_free(&s->def);
  for (int i = 0; i < s->n_sni; i++)
    cert_free(&s->sni[i]);
  free(s->sni);
  free(s);
}

struct tls_certs *tls_certs_load(const struct config *c, struct config_errors *errs)
{
  struct tls_certs *s = calloc(1, sizeof(*s));
  int before = errs->n;

  if (s == NULL)
    return NULL;
  if (c->cert[0] == '\0' || c->key[0] == '\0') {
    config_errors_add(errs, "%s: [https] needs cert and key", c->source);
    goto fail;
  }
  cert_load(&s->def, NULL, c->cert, c->key, errs);
  if (c->n_sni > 0) {
    s->sni = calloc((size_t)c->n_sni, sizeof(*s->sni));
    if (s->sni == NULL)
      goto fail;
    for (int i = 0; i < c->n_sni; i++)
      if (cert_load(&s->sni[s->n_sni], c->sni[i].name, c->sni[i].cert, c->sni[i].key, errs) == 0)
        s->n_sni++;
  }
  if (c->client_ca[0] != '\0') {
    char *ca = tls_read_pem(c->client_ca, "client_ca", errs);
    if (ca != NULL && strstr(ca, "-----BEGIN CERTIFICATE-----") == NULL)
      config_errors_add(errs, "client_ca %s: no PEM certificate in it", c->client_ca);
    free(ca);
  }
  if (errs->n != before)
    goto fail;
  return s;
fail:
  certs_free(s);
  return NULL;
}

struct tls_certs *tls_certs_current(void) { return atomic_load(&installed); }

void tls_certs_free(struct tls_certs *certs) { certs_free(certs); }

void tls_certs_install(struct tls_certs *certs)
{
  struct tls_certs *old;

  pthread_mutex_lock(&retired_mu);
  /* a set installed again (a reload undone) leaves the retired list */
  for (struct tls_certs **pp = &retired; *pp; pp = &(*pp)->retired_next)
    if (*pp == certs) {
      *pp = certs->retired_next;
      break;
    }
  old = atomic_exchange(&installed, certs);
  if (old != NULL && old != certs) {
    old->retired_next = retired;
    retired = old;
  }
  pthread_mutex_unlock(&retired_mu);
}

void tls_shutdown(void)
{
  tls_certs_install(NULL);
  pthread_mutex_lock(&retired_mu);
  while (retired != NULL) {
    struct tls_certs *n = retired->retired_next;
    certs_free(retired);
    retired = n;
  }
  pthread_mutex_unlock(&retired_mu);
}

/* "*.example.com" matches exactly one label in front of example.com. */
static int name_matches(const char *pattern, const char *name)
{
  if (pattern[0] == '*' && pattern[1] == '.') {
    const char *dot = strchr(name, '.');
    return dot != NULL && dot != name && strcasecmp(dot, pattern + 1) == 0;
  }
  return strcasecmp(pattern, name) == 0;
}

int tls_cert_callback(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                      const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                      gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
  struct tls_certs *s = atomic_load(&installed);
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
  if (gnutls_server_name_get(session, name, &len, &type, 0) == GNUTLS_E_SUCCESS &&
      type == GNUTLS_NAME_DNS) {
    /* exact names first, then wildcards */
    for (int pass = 0; pass < 2 && pick == &s->def; pass++)
      for (int i = 0; i < s->n_sni; i++) {
        int wild = s->sni[i].name[0] == '*';
        if (wild == pass && name_matches(s->sni[i].name, name)) {
          pick = &s->sni[i];
          break;
        }
      }
  }
  *pcert = pick->chain;
  *pcert_length = pick->n_chain;
  *pkey = pick->key;
  return 0;
}

enum tls_peer tls_peer_verify(gnutls_session_t session, char *cn, size_t cnlen)
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
