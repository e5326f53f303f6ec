/* tls_store.c: reading and checking a section's certificates and keys,
 * independently of the TLS library that will use them. */
#include "autoconfig.h"

#include "tls_store.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util/log.h"

const char *const tls_client_auth_choices[] = {"none", "optional", "required", NULL};

const char *tls_conf_parse_sni(void *slot, char *value, char *msg, size_t msglen)
{
  struct tls_conf *tc = slot;
  char *words[4];
  int n = config_split_words(value, words, 3);
  struct sni_entry *e;

  (void)msg;
  (void)msglen;
  if (n != 3)
    return "expected: sni = NAME CERTFILE KEYFILE";
  if (tc->n_sni == CONF_MAX_SNI)
    return "too many sni entries";
  for (const char *p = words[0]; *p; p++)
    if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '.' || *p == '*'))
      return "bad server name";
  for (int i = 0; i < tc->n_sni; i++)
    if (strcasecmp(tc->sni[i].name, words[0]) == 0)
      return "server name given twice";
  e = &tc->sni[tc->n_sni];
  e->name = strdup(words[0]);
  e->cert = strdup(words[1]);
  e->key = strdup(words[2]);
  tc->n_sni++;
  if (e->name == NULL || e->cert == NULL || e->key == NULL)
    return "out of memory";
  return NULL;
}

void tls_conf_release(void *slot)
{
  struct tls_conf *tc = slot;

  for (int i = 0; i < tc->n_sni; i++) {
    free(tc->sni[i].name);
    free(tc->sni[i].cert);
    free(tc->sni[i].key);
  }
  tc->n_sni = 0;
}

void tls_conf_check(const struct tls_conf *tc, const char *section, const char *source,
                    int listening, int needs_cert, struct config_errors *errs)
{
  if (listening && needs_cert && (tc->cert[0] == '\0' || tc->key[0] == '\0'))
    config_errors_add(errs, "%s: [%s] listen needs cert and key", source, section);
  if (tc->client_auth != CLIENT_AUTH_NONE && tc->client_ca[0] == '\0')
    config_errors_add(errs, "%s: [%s] client_auth = %s needs client_ca", source, section,
                      tc->client_auth == CLIENT_AUTH_REQUIRED ? "required" : "optional");
}

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
  log_debug("tls: read %s %s (%zu bytes)", what, path, got);
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

static void pair_free(struct tls_pair *p)
{
  free(p->name);
  free(p->cert_pem);
  if (p->key_pem != NULL) {
    explicit_bzero(p->key_pem, strlen(p->key_pem));
    free(p->key_pem);
  }
  memset(p, 0, sizeof(*p));
}

/* The key must belong to the leaf certificate. */
static int pair_matches(const struct tls_pair *p, const char *cert_path, const char *key_path,
                        struct config_errors *errs)
{
  BIO *cb = BIO_new_mem_buf(p->cert_pem, -1), *kb = BIO_new_mem_buf(p->key_pem, -1);
  X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
  EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
  int ok = 0;

  if (x == NULL)
    config_errors_add(errs, "certificate %s: no PEM certificate in it", cert_path);
  else if (k == NULL)
    config_errors_add(errs, "key %s: no PEM private key in it (or it is encrypted)", key_path);
  else if (X509_check_private_key(x, k) != 1)
    config_errors_add(errs, "certificate %s with key %s: the key does not match", cert_path,
                      key_path);
  else
    ok = 1;
  X509_free(x);
  EVP_PKEY_free(k);
  BIO_free(cb);
  BIO_free(kb);
  return ok ? 0 : -1;
}

static int pair_load(struct tls_pair *out, const char *name, const char *cert_path,
                     const char *key_path, struct config_errors *errs)
{
  memset(out, 0, sizeof(*out));
  if (!key_secret_enough(key_path, errs))
    return -1;
  out->cert_pem = tls_read_pem(cert_path, "certificate", errs);
  out->key_pem = tls_read_pem(key_path, "key", errs);
  if (out->cert_pem == NULL || out->key_pem == NULL ||
      pair_matches(out, cert_path, key_path, errs) < 0 ||
      (name != NULL && (out->name = strdup(name)) == NULL)) {
    pair_free(out);
    return -1;
  }
  return 0;
}

void tls_store_free(struct tls_store *s)
{
  if (s == NULL)
    return;
  pair_free(&s->def);
  for (int i = 0; i < s->n_sni; i++)
    pair_free(&s->sni[i]);
  free(s->sni);
  free(s->client_ca_pem);
  free(s->priorities);
  free(s);
}

struct tls_store *tls_store_load(const struct tls_conf *tc, const char *section,
                                 struct config_errors *errs)
{
  struct tls_store *s = calloc(1, sizeof(*s));
  int before = errs->n;

  if (s == NULL) {
    config_errors_add(errs, "out of memory");
    return NULL;
  }
  s->client_auth = tc->client_auth;
  s->priorities = strdup(tc->priorities ? tc->priorities : "");
  if (tc->cert[0] != '\0' || tc->key[0] != '\0') {
    if (tc->cert[0] == '\0' || tc->key[0] == '\0')
      config_errors_add(errs, "[%s] needs both cert and key", section);
    else
      pair_load(&s->def, NULL, tc->cert, tc->key, errs);
  }
  if (tc->n_sni > 0) {
    s->sni = calloc((size_t)tc->n_sni, sizeof(*s->sni));
    if (s->sni == NULL)
      goto fail;
    for (int i = 0; i < tc->n_sni; i++)
      if (pair_load(&s->sni[s->n_sni], tc->sni[i].name, tc->sni[i].cert, tc->sni[i].key, errs) == 0)
        s->n_sni++;
  }
  if (tc->client_ca[0] != '\0') {
    s->client_ca_pem = tls_read_pem(tc->client_ca, "client_ca", errs);
    if (s->client_ca_pem != NULL && strstr(s->client_ca_pem, "-----BEGIN CERTIFICATE-----") == NULL)
      config_errors_add(errs, "client_ca %s: no PEM certificate in it", tc->client_ca);
  }
  if (errs->n != before || s->priorities == NULL)
    goto fail;
  return s;
fail:
  tls_store_free(s);
  return NULL;
}

/* "*.example.com" matches exactly one label in front of example.com. */
int tls_name_matches(const char *pattern, const char *name)
{
  if (pattern[0] == '*' && pattern[1] == '.') {
    const char *dot = strchr(name, '.');
    return dot != NULL && dot != name && strcasecmp(dot, pattern + 1) == 0;
  }
  return strcasecmp(pattern, name) == 0;
}

int tls_name_pick(const char *const *first, size_t stride, int n, const char *name)
{
  if (name == NULL || name[0] == '\0' || n <= 0)
    return -1;
  for (int pass = 0; pass < 2; pass++) /* exact names first, then wildcards */
    for (int i = 0; i < n; i++) {
      const char *p = *(const char *const *)((const char *)first + (size_t)i * stride);
      if ((p[0] == '*') == pass && tls_name_matches(p, name))
        return i;
    }
  return -1;
}
