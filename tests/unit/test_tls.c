/* test_tls.c: the TLS lifecycle (net/tls_set.c): a section's set read,
 * checked and built for each library; its references and generations; the
 * slot's users holding every set installed while they live, a reload
 * undone bringing the set before back, and every set freed when its last
 * user lets go (ASan checks what is left); SNI name choice. Certificates
 * are made here, with OpenSSL. */
#include "autoconfig.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/tls_gnutls.h"
#include "net/tls_openssl.h"
#include "net/tls_set.h"
#include "unit.h"

static char dir[64];

/* A self-signed certificate for cn and its key, in dir/NAME.crt and .key
 * (mode 0600). 0 or -1. */
static int make_pair(const char *name, const char *cn)
{
  EVP_PKEY *k = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  char path[128];
  FILE *f;
  int ok = k != NULL && x != NULL;

  if (ok) {
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    ok = X509_sign(x, k, EVP_sha256()) > 0;
  }
  snprintf(path, sizeof(path), "%s/%s.crt", dir, name);
  if (ok && (f = fopen(path, "w")) != NULL) {
    ok = PEM_write_X509(f, x) == 1;
    fclose(f);
  }
  snprintf(path, sizeof(path), "%s/%s.key", dir, name);
  if (ok && (f = fopen(path, "w")) != NULL) {
    ok = PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1;
    fclose(f);
    chmod(path, 0600);
  }
  X509_free(x);
  EVP_PKEY_free(k);
  return ok ? 0 : -1;
}

static char *path_of(const char *name, const char *ext)
{
  static char buf[8][128];
  static int i;

  i = (i + 1) % 8;
  snprintf(buf[i], sizeof(buf[i]), "%s/%s.%s", dir, name, ext);
  return buf[i];
}

/* A tls_conf naming files of dir (strings owned by the caller's struct). */
static void conf_of(struct tls_conf *tc, const char *def, const char *sni_name, const char *sni)
{
  memset(tc, 0, sizeof(*tc));
  tc->cert = strdup(path_of(def, "crt"));
  tc->key = strdup(path_of(def, "key"));
  tc->client_ca = strdup("");
  tc->priorities = strdup("");
  if (sni != NULL) {
    tc->sni[0].name = strdup(sni_name);
    tc->sni[0].cert = strdup(path_of(sni, "crt"));
    tc->sni[0].key = strdup(path_of(sni, "key"));
    tc->n_sni = 1;
  }
}

static void conf_free(struct tls_conf *tc)
{
  free(tc->cert);
  free(tc->key);
  free(tc->client_ca);
  free(tc->priorities);
  tls_conf_release(tc);
}

static int refs(struct tls_set *s) { return atomic_load(&s->refs); }

static int has_error(const struct config_errors *e, const char *needle)
{
  for (int i = 0; i < e->n; i++)
    if (strstr(e->msg[i], needle) != NULL)
      return 1;
  return 0;
}

int main(void)
{
  struct config_errors errs = {0};
  struct tls_conf tc;
  struct tls_set *s1, *s2, *s3, *bad;
  struct tls_slot slot = TLS_SLOT_INIT;
  struct tls_slot_user *u1, *u2;

  snprintf(dir, sizeof(dir), "/tmp/dfotad-test-tls-%d", (int)getpid());
  mkdir(dir, 0700);
  CHECK(make_pair("a", "a.test") == 0 && make_pair("b", "b.test") == 0 &&
        make_pair("w", "wild.test") == 0);

  /* built once per library, checked, numbered */
  conf_of(&tc, "a", "*.example.com", "w");
  s1 = tls_set_build(&tc, "https", TLS_ADAPTER_GNUTLS, &errs);
  s2 = tls_set_build(&tc, "ftps", TLS_ADAPTER_OPENSSL, &errs);
  s3 = tls_set_build(&tc, "coaps", TLS_ADAPTER_DTLS, &errs);
  CHECK(errs.n == 0);
  CHECK(s1 != NULL && s1->gnutls != NULL && s1->ssl_ctx == NULL && refs(s1) == 1);
  CHECK(s2 != NULL && s2->ssl_ctx != NULL && s2->gnutls == NULL);
  CHECK(s3 != NULL && s3->store->def.cert_pem != NULL && s3->gnutls == NULL && s3->ssl_ctx == NULL);
  CHECK(s1 != NULL && s2 != NULL && s3 != NULL && s2->generation == s1->generation + 1 &&
        s3->generation == s2->generation + 1);
  CHECK(s1 != NULL && strcmp(s1->section, "https") == 0 && s1->store->n_sni == 1);
  tls_set_unref(s2);
  tls_set_unref(s3);
  conf_free(&tc);

  /* what is wrong is said, and nothing built */
  conf_of(&tc, "a", "b.test", "b");
  free(tc.key);
  tc.key = strdup(path_of("b", "key"));
  bad = tls_set_build(&tc, "ftps", TLS_ADAPTER_OPENSSL, &errs);
  CHECK(bad == NULL && has_error(&errs, "the key does not match"));
  config_errors_clear(&errs);
  conf_free(&tc);
  conf_of(&tc, "nosuch", NULL, NULL);
  bad = tls_set_build(&tc, "https", TLS_ADAPTER_GNUTLS, &errs);
  CHECK(bad == NULL && has_error(&errs, "nosuch.crt"));
  config_errors_clear(&errs);
  conf_free(&tc);
  chmod(path_of("b", "key"), 0644);
  conf_of(&tc, "b", NULL, NULL);
  bad = tls_set_build(&tc, "https", TLS_ADAPTER_GNUTLS, &errs);
  CHECK(bad == NULL && has_error(&errs, "readable by others"));
  config_errors_clear(&errs);
  chmod(path_of("b", "key"), 0600);
  s2 = tls_set_build(&tc, "https", TLS_ADAPTER_GNUTLS, &errs);
  CHECK(s2 != NULL && errs.n == 0);
  conf_free(&tc);
  if (s1 == NULL || s2 == NULL)
    return unit_done("test_tls");

  /* the slot: u1 installs s1 */
  u1 = tls_slot_join(&slot, s1);
  CHECK(u1 != NULL && tls_slot_current(&slot) == s1);
  CHECK(refs(s1) == 3); /* ours, u1's, the slot's */
  /* a reload: u2 installs s2; u1 may have handshakes on s2 now, u2 holds s1
   * to bring it back if the reload is undone */
  u2 = tls_slot_join(&slot, s2);
  CHECK(u2 != NULL && tls_slot_current(&slot) == s2);
  CHECK(refs(s1) == 3); /* ours, u1's, u2's */
  CHECK(refs(s2) == 4); /* ours, u1's, u2's, the slot's */
  /* the reload undone: u2 leaves while s2 is installed: s1 comes back */
  tls_slot_leave(&slot, u2);
  CHECK(tls_slot_current(&slot) == s1);
  CHECK(refs(s1) == 3 && refs(s2) == 2); /* s2: ours, u1's */
  /* a reload that holds: u2 installs s2 again; then u1 drains and leaves */
  u2 = tls_slot_join(&slot, s2);
  tls_slot_leave(&slot, u1);
  CHECK(tls_slot_current(&slot) == s2);
  CHECK(refs(s1) == 2 && refs(s2) == 3); /* s1: ours, u2's; s2: ours, u2's, the slot's */
  tls_slot_leave(&slot, u2);             /* the last instance stops */
  tls_slot_clear(&slot);
  CHECK(refs(s1) == 1 && refs(s2) == 1 && tls_slot_current(&slot) == NULL);
  tls_set_unref(s1);
  tls_set_unref(s2); /* freed: ASan reports what is left */

  /* SNI: exact names first, then wildcards, one label for a wildcard */
  {
    struct named {
      int x;
      char *name;
    } n[] = {{0, "*.example.com"}, {1, "a.example.com"}, {2, "other.test"}};
    CHECK(tls_name_pick((const char *const *)&n[0].name, sizeof(n[0]), 3, "a.example.com") == 1);
    CHECK(tls_name_pick((const char *const *)&n[0].name, sizeof(n[0]), 3, "B.Example.com") == 0);
    CHECK(tls_name_pick((const char *const *)&n[0].name, sizeof(n[0]), 3, "x.y.example.com") == -1);
    CHECK(tls_name_pick((const char *const *)&n[0].name, sizeof(n[0]), 3, "OTHER.test") == 2);
    CHECK(tls_name_pick((const char *const *)&n[0].name, sizeof(n[0]), 3, NULL) == -1);
  }

  for (const char *const *f = (const char *const[]){"a", "b", "w", NULL}; *f; f++) {
    unlink(path_of(*f, "crt"));
    unlink(path_of(*f, "key"));
  }
  rmdir(dir);
  return unit_done("test_tls");
}
