/* psk.c: the devices' DTLS pre-shared keys (CoAPS).
 *
 * SECURITY: unlike a device secret, which is only ever compared and so is
 * kept as a salted hash, a pre-shared key is needed in clear by the DTLS
 * handshake. It is kept sealed: AES-256-GCM under a key file of the state
 * directory (STATE/psk.key, 32 random bytes made 0600 at the first start,
 * refused when its group or others may read it or it is not ours), with
 * the device id as associated data, so that a stolen database alone hands
 * out no key and a sealed key copied onto another device does not open.
 * It is opened for the length of a handshake's lookup, on the caller's
 * stack, and wiped; never logged, never in an answer but the one that
 * generated it, never in /metrics. */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util/log.h"
#include "../util/util.h"
#include "fleet_int.h"

#define NONCE_LEN 12
#define TAG_LEN 16
#define SEALED_MAX (4 + 2 * (NONCE_LEN + PSK_MAX + TAG_LEN) + 4)

int fleet_psk_open(struct fleet *f, const char *state_dir, char *err, size_t errlen)
{
  char path[4096];
  unsigned char key[PSK_MASTER_LEN];
  struct stat st;
  ssize_t n;
  int fd;

  snprintf(path, sizeof(path), "%s/psk.key", state_dir);
  fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    /* first start: a new key, readable by us only */
    if (RAND_bytes(key, sizeof(key)) != 1) {
      snprintf(err, errlen, "%s: no randomness for a new key", path);
      return -1;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, key, sizeof(key)) != (ssize_t)sizeof(key) || fsync(fd) < 0) {
      snprintf(err, errlen, "%s: cannot create: %s", path, strerror(errno));
      if (fd >= 0)
        close(fd);
      unlink(path);
      OPENSSL_cleanse(key, sizeof(key));
      return -1;
    }
    close(fd);
    log_info("created %s (the key sealing the devices' DTLS pre-shared keys)", path);
    memcpy(f->psk_master, key, sizeof(key));
    OPENSSL_cleanse(key, sizeof(key));
    f->psk_ready = 1;
    return 0;
  }
  if (fd < 0) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  /* SECURITY: a key others can read seals nothing (httpd's check_file_secrecy) */
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & (S_IRWXG | S_IRWXO)) != 0 ||
      st.st_uid != geteuid()) {
    snprintf(err, errlen, "%s: must be a regular file of ours with mode 0600 (chmod 600 %s)", path,
             path);
    close(fd);
    return -1;
  }
  n = read(fd, key, sizeof(key));
  close(fd);
  if (n != (ssize_t)sizeof(key) || st.st_size != (off_t)sizeof(key)) {
    snprintf(err, errlen, "%s: not a key of %d bytes", path, PSK_MASTER_LEN);
    OPENSSL_cleanse(key, sizeof(key));
    return -1;
  }
  memcpy(f->psk_master, key, sizeof(key));
  OPENSSL_cleanse(key, sizeof(key));
  f->psk_ready = 1;
  return 0;
}

/* "v1:NONCE:CIPHERTEXT:TAG" (hex) of psk for device id; NULL on failure. */
char *psk_seal(const struct fleet *f, const char *id, const unsigned char *psk, size_t len)
{
  unsigned char nonce[NONCE_LEN], ct[PSK_MAX], tag[TAG_LEN];
  char hn[2 * NONCE_LEN + 1], hc[2 * PSK_MAX + 1], ht[2 * TAG_LEN + 1], *out = NULL;
  EVP_CIPHER_CTX *c = NULL;
  int l1 = 0, l2 = 0;

  if (!f->psk_ready || len == 0 || len > PSK_MAX || RAND_bytes(nonce, sizeof(nonce)) != 1)
    return NULL;
  c = EVP_CIPHER_CTX_new();
  if (c == NULL || EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, f->psk_master, nonce) != 1 ||
      EVP_EncryptUpdate(c, NULL, &l1, (const unsigned char *)id, (int)strlen(id)) != 1 ||
      EVP_EncryptUpdate(c, ct, &l1, psk, (int)len) != 1 ||
      EVP_EncryptFinal_ex(c, ct + l1, &l2) != 1 ||
      EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
    goto done;
  hex_encode(nonce, sizeof(nonce), hn);
  hex_encode(ct, (size_t)(l1 + l2), hc);
  hex_encode(tag, sizeof(tag), ht);
  out = malloc(SEALED_MAX);
  if (out != NULL)
    snprintf(out, SEALED_MAX, "v1:%s:%s:%s", hn, hc, ht);
done:
  EVP_CIPHER_CTX_free(c);
  OPENSSL_cleanse(ct, sizeof(ct));
  return out;
}

/* Decodes the n bytes whose hex text starts at s (and goes on). */
static int hex_part(const char *s, unsigned char *out, size_t n)
{
  char buf[2 * PSK_MAX + 1];

  if (n > PSK_MAX)
    return -1;
  memcpy(buf, s, 2 * n);
  buf[2 * n] = '\0';
  return hex_decode(buf, out, n);
}

/* Opens a sealed key of device id into psk; its length, or -1. */
static int psk_unseal(const struct fleet *f, const char *id, const char *sealed, unsigned char *psk)
{
  unsigned char nonce[NONCE_LEN], ct[PSK_MAX], tag[TAG_LEN];
  const char *p1, *p2;
  size_t clen;
  EVP_CIPHER_CTX *c;
  int l1 = 0, l2 = 0, r = -1;

  if (!f->psk_ready || strncmp(sealed, "v1:", 3) != 0 || (p1 = strchr(sealed + 3, ':')) == NULL ||
      (p2 = strchr(p1 + 1, ':')) == NULL || p1 - (sealed + 3) != 2 * NONCE_LEN ||
      strlen(p2 + 1) != 2 * TAG_LEN || (size_t)(p2 - p1 - 1) % 2 != 0)
    return -1;
  clen = (size_t)(p2 - p1 - 1) / 2;
  if (clen == 0 || clen > PSK_MAX || hex_part(sealed + 3, nonce, NONCE_LEN) < 0 ||
      hex_part(p1 + 1, ct, clen) < 0 || hex_part(p2 + 1, tag, TAG_LEN) < 0)
    return -1;
  c = EVP_CIPHER_CTX_new();
  if (c != NULL && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, f->psk_master, nonce) == 1 &&
      EVP_DecryptUpdate(c, NULL, &l1, (const unsigned char *)id, (int)strlen(id)) == 1 &&
      EVP_DecryptUpdate(c, psk, &l1, ct, (int)clen) == 1 &&
      EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1 &&
      EVP_DecryptFinal_ex(c, psk + l1, &l2) == 1)
    r = l1 + l2;
  EVP_CIPHER_CTX_free(c);
  if (r < 0)
    OPENSSL_cleanse(psk, PSK_MAX);
  return r;
}

/* ---- the identity index ---------------------------------------------------- */

static unsigned ident_hash(const char *s, size_t n)
{
  uint32_t h = 2166136261u;

  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 16777619u;
  }
  return h % DEV_BUCKETS;
}

const char *psk_identity_of(const struct device *d)
{
  return d->psk_identity != NULL ? d->psk_identity : d->id;
}

struct device *psk_find(struct fleet *f, const char *identity, size_t n)
{
  for (struct device *d = f->ident[ident_hash(identity, n)]; d; d = d->inext) {
    const char *id = psk_identity_of(d);
    if (strlen(id) == n && memcmp(id, identity, n) == 0)
      return d;
  }
  return NULL;
}

void psk_unlink(struct fleet *f, struct device *d)
{
  const char *id = psk_identity_of(d);
  struct device **pp = &f->ident[ident_hash(id, strlen(id))];

  if (!d->psk_linked)
    return;
  while (*pp && *pp != d)
    pp = &(*pp)->inext;
  if (*pp)
    *pp = d->inext;
  d->inext = NULL;
  d->psk_linked = 0;
}

void psk_link(struct fleet *f, struct device *d)
{
  const char *id = psk_identity_of(d);
  unsigned h = ident_hash(id, strlen(id));

  if (d->psk_linked || d->psk_sealed == NULL)
    return;
  d->inext = f->ident[h];
  f->ident[h] = d;
  d->psk_linked = 1;
}

/* ---- the handshake's lookup ---------------------------------------------- */

int delivery_psk_lookup(struct fleet *f, const char *identity, size_t idlen, unsigned char *key,
                        size_t *keylen, char device[DEVICE_ID_MAX + 1])
{
  char sealed[SEALED_MAX], id[DEVICE_ID_MAX + 1];
  struct device *d;
  int n;

  if (idlen == 0 || idlen > PSK_IDENTITY_MAX)
    return -1;
  if (idlen <= DEVICE_ID_MAX && memchr(identity, '\0', idlen) == NULL) {
    /* while the fleet loads: a device whose identity is its id comes in
     * first (one with an identity of its own waits for the load) */
    memcpy(id, identity, idlen);
    id[idlen] = '\0';
    fleet_fault_in(f, id);
  }
  /* the lock for a hash lookup and a copy; the key is opened outside it */
  device_lock(f);
  d = psk_find(f, identity, idlen);
  if (d == NULL || d->psk_sealed == NULL) {
    pthread_mutex_unlock(&f->mu);
    return -1;
  }
  snprintf(sealed, sizeof(sealed), "%s", d->psk_sealed);
  snprintf(id, sizeof(id), "%s", d->id);
  pthread_mutex_unlock(&f->mu);
  n = psk_unseal(f, id, sealed, key);
  if (n <= 0) {
    log_warn("device %s: its DTLS pre-shared key does not open (psk.key replaced?)", id);
    return -1;
  }
  *keylen = (size_t)n;
  snprintf(device, DEVICE_ID_MAX + 1, "%s", id);
  return 0;
}

/* ---- the admin API's fields: "psk" and "psk_identity" ---------------------- */

/* "generate", null (remove the key) or 16 to 64 bytes in hex */
static int psk_value(json_t *v, unsigned char *out, size_t *len)
{
  const char *s = json_string_value(v);
  size_t n = s ? strlen(s) : 0;

  if (s == NULL || n % 2 != 0 || n / 2 < PSK_MIN || n / 2 > PSK_MAX || n != json_string_length(v))
    return -1;
  *len = n / 2;
  return hex_decode(s, out, *len);
}

const char *psk_body_error(struct fleet *f, const char *id, json_t *b)
{
  return psk_body_error_of(f, id, id ? device_find(f, id) : NULL, b);
}

const char *psk_body_error_of(struct fleet *f, const char *id, struct device *d, json_t *b)
{
  json_t *v = json_object_get(b, "psk"), *vi = json_object_get(b, "psk_identity");
  unsigned char key[PSK_MAX];
  size_t len;
  const char *ident = id;
  struct device *o;

  if (v != NULL && !json_is_null(v) &&
      !(json_is_string(v) && strcmp(json_string_value(v), "generate") == 0)) {
    int bad = psk_value(v, key, &len) < 0;
    OPENSSL_cleanse(key, sizeof(key));
    if (bad)
      return "psk must be \"generate\", null or 16 to 64 bytes in hex";
  }
  if (v != NULL && !json_is_null(v) && !f->psk_ready)
    return "pre-shared keys are not available (no key file)";
  if (vi != NULL && !json_is_null(vi)) {
    const char *s = json_string_value(vi);
    if (s == NULL || strlen(s) == 0 || strlen(s) > PSK_IDENTITY_MAX ||
        strlen(s) != json_string_length(vi) || !text_printable(s, PSK_IDENTITY_MAX, 0))
      return "psk_identity must be 1 to 64 printable characters without spaces";
    ident = s;
  } else if (vi == NULL && d != NULL) {
    ident = psk_identity_of(d);
  }
  /* SECURITY: an identity names one device: the handshake must not pick
   * another's key */
  if (ident != NULL && (o = psk_find(f, ident, strlen(ident))) != NULL &&
      (id == NULL || strcmp(o->id, id) != 0))
    return "psk_identity is another device's";
  return NULL;
}

int psk_apply(struct fleet *f, struct device *d, json_t *b, char **generated)
{
  json_t *v = json_object_get(b, "psk"), *vi = json_object_get(b, "psk_identity");
  unsigned char key[PSK_MAX];
  size_t len = 0;
  char *sealed;

  *generated = NULL;
  if (vi != NULL) {
    psk_unlink(f, d);
    set_str(&d->psk_identity,
            json_is_string(vi) && json_string_length(vi) > 0 ? json_string_value(vi) : NULL);
    psk_link(f, d);
  }
  if (v == NULL)
    return 0;
  psk_unlink(f, d);
  if (d->psk_sealed != NULL) {
    OPENSSL_cleanse(d->psk_sealed, strlen(d->psk_sealed));
    free(d->psk_sealed);
    d->psk_sealed = NULL;
  }
  if (json_is_null(v))
    return 0;
  if (json_is_string(v) && strcmp(json_string_value(v), "generate") == 0) {
    /* 16 by default: LwM2M clients on tinydtls fail the handshake with more */
    len = f->limits.psk_generate_bytes >= 16 && f->limits.psk_generate_bytes <= PSK_MAX
              ? (size_t)f->limits.psk_generate_bytes
              : PSK_GENERATED;
    if (RAND_bytes(key, (int)len) != 1)
      return -1;
    *generated = malloc(2 * len + 1);
    if (*generated != NULL)
      hex_encode(key, len, *generated);
  } else if (psk_value(v, key, &len) < 0) {
    return -1;
  }
  sealed = psk_seal(f, d->id, key, len);
  OPENSSL_cleanse(key, sizeof(key));
  if (sealed == NULL) {
    free(*generated);
    *generated = NULL;
    return -1;
  }
  d->psk_sealed = sealed;
  psk_link(f, d);
  return 0;
}
