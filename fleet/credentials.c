/* credentials.c: how a device proves who it is.
 *
 * SECURITY: the database keeps a salted SHA-256 of each device secret, not
 * the secret: a stolen database does not hand out credentials. Secrets we
 * generate carry 130 random bits, which is what makes a fast hash enough;
 * secrets an operator sets must have at least 16 characters. */
#include "autoconfig.h"

#include <openssl/crypto.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "../net/admission.h"
#include "../util/log.h"
#include "../util/util.h"
#include "fleet_int.h"

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void) { sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL); }

/* "sha256$SALT$HEX" of salt + secret. The digest is fetched once: EVP_sha256()
 * looked it up again at every hash (provider locks, parameter lookups), a
 * tenth of a bulk create's CPU. */
void hash_secret(const char *secret, const char *salt, char *out, size_t outlen)
{
  unsigned char md[32];
  unsigned mdlen = 0;
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  char hex[65];

  pthread_once(&sha256_once, sha256_fetch);
  if (c == NULL || sha256_md == NULL || EVP_DigestInit_ex(c, sha256_md, NULL) != 1 ||
      EVP_DigestUpdate(c, salt, strlen(salt)) != 1 ||
      EVP_DigestUpdate(c, secret, strlen(secret)) != 1 || EVP_DigestFinal_ex(c, md, &mdlen) != 1)
    memset(md, 0, sizeof(md)); /* matches nothing a device can send: the prefix differs */
  EVP_MD_CTX_free(c);
  hex_encode(md, sizeof(md), hex);
  snprintf(out, outlen, "sha256$%s$%s", salt, mdlen == 32 ? hex : "-");
  OPENSSL_cleanse(md, sizeof(md));
}

void make_secret_hash(const char *secret, char *out, size_t outlen)
{
  char salt[17];

  random_base32(salt, 16);
  hash_secret(secret, salt, out, outlen);
}

/* Compares secret against a stored hash, in time that does not depend on
 * where they differ. */
static int secret_ok(const char *stored, const char *secret)
{
  char salt[32], want[96];
  const char *p = stored + 7, *q;

  if (strncmp(stored, "sha256$", 7) != 0)
    return 0;
  q = strchr(p, '$');
  if (q == NULL || (size_t)(q - p) >= sizeof(salt))
    return 0;
  memcpy(salt, p, (size_t)(q - p));
  salt[q - p] = '\0';
  hash_secret(secret, salt, want, sizeof(want));
  return strlen(want) == strlen(stored) && CRYPTO_memcmp(want, stored, strlen(want)) == 0;
}

static struct auth_fail *slot(struct auth_fail *table, const char *key)
{
  uint32_t h = hash_str(key) | 1; /* never 0, which marks a free slot */
  struct auth_fail *a = &table[h % AUTH_SLOTS];

  if (a->key != h)
    *a = (struct auth_fail){h, 0, 0, 0};
  return a;
}

/* Seconds key stays locked out, 0 when it may try. */
static int locked(struct auth_fail *table, const char *key, int64_t now)
{
  uint32_t h = hash_str(key) | 1;
  const struct auth_fail *a = &table[h % AUTH_SLOTS];

  if (a->key != h || a->locked_until <= now)
    return 0;
  return (int)((a->locked_until - now + 999) / 1000);
}

/* One more failure: past the free ones in a window, a lock-out of 4 s
 * that doubles with each further failure, up to max_s seconds. */
static void failed(struct auth_fail *table, const char *key, int64_t now, int free, int max_s)
{
  struct auth_fail *a = slot(table, key);
  int over;

  if (now - a->window_start > AUTH_WINDOW_MS) {
    a->window_start = now;
    a->count = 0;
  }
  over = ++a->count - free;
  if (over > 0)
    a->locked_until = now + 1000LL * (over >= 8             ? max_s
                                      : (2 << over) < max_s ? (2 << over)
                                                            : max_s);
}

static void log_failure(struct fleet *f, enum proto proto, const char *what, const char *device_id,
                        const char *addr, int64_t now)
{
  /* SECURITY: at a bounded rate: a flood of wrong credentials must not
   * flood the log */
  if (now - f->auth_logged < AUTH_LOG_MS) {
    f->auth_unlogged++;
    return;
  }
  log_warn("%s: %s: device %.64s from %s (%llu more failures since the last line)",
           proto_name(proto), what, device_id ? device_id : "-", addr ? addr : "-",
           (unsigned long long)f->auth_unlogged);
  f->auth_logged = now;
  f->auth_unlogged = 0;
}

static int proto_index(enum proto p) { return (unsigned)p < PROTO_COUNT ? (int)p : 0; }

/* Seconds the address or the id stays locked out, 0 when it may try;
 * counted as throttled when not 0. f->mu held. */
static int throttle_wait(struct fleet *f, enum proto proto, const char *addr, const char *device_id,
                         int64_t now)
{
  char key[INET6_ADDRSTRLEN + 8];
  int wait;

  adm_throttle_key(addr ? addr : "", key, sizeof(key));
  wait = locked(f->auth_addr, key, now);
  if (wait == 0 && device_id != NULL && device_id[0] != '\0')
    wait = locked(f->auth_dev, device_id, now);
  if (wait > 0)
    f->auth_throttled[proto_index(proto)]++;
  return wait;
}

/* One failure of the address and the id; f->mu held. */
static void throttle_failed(struct fleet *f, enum proto proto, const char *what, const char *addr,
                            const char *device_id, int64_t now)
{
  char key[INET6_ADDRSTRLEN + 8];

  adm_throttle_key(addr ? addr : "", key, sizeof(key));
  f->auth_failures[proto_index(proto)]++;
  failed(f->auth_addr, key, now, f->limits.auth_free, AUTH_ADDR_LOCK_MAX);
  if (device_id != NULL && device_id[0] != '\0')
    failed(f->auth_dev, device_id, now, f->limits.auth_free, AUTH_DEVICE_LOCK_MAX);
  log_failure(f, proto, what, device_id, addr, now);
}

int delivery_auth_wait(struct fleet *f, enum proto proto, const char *addr, const char *device_id)
{
  int wait;

  pthread_mutex_lock(&f->mu);
  wait = throttle_wait(f, proto, addr, device_id, mono_ms());
  pthread_mutex_unlock(&f->mu);
  return wait;
}

void delivery_auth_failed(struct fleet *f, enum proto proto, const char *addr,
                          const char *device_id, const char *what)
{
  pthread_mutex_lock(&f->mu);
  throttle_failed(f, proto, what ? what : "device credential refused", addr, device_id, mono_ms());
  pthread_mutex_unlock(&f->mu);
}

/* SECURITY: a device proves itself with its secret, or with a client
 * certificate (verified against client_ca) or DTLS PSK identity that names
 * it. An unknown id costs the same hash as a known one (against a dummy),
 * so that answer times do not tell which ids exist. Failures are counted
 * per address and per id; too many in a minute lock them out for a while
 * (a lock-out that doubles), so that guessing costs the guesser, not us.
 * Nothing is recorded against a device for a request that fails this. */
struct device *authenticate(struct fleet *f, const struct device_identity *who, int *retry_after)
{
  static const char dummy[] = "sha256$aaaaaaaaaaaaaaaa$"
                              "0000000000000000000000000000000000000000000000000000000000000000";
  int64_t now = mono_ms();
  struct device *d;
  int ok, wait;

  *retry_after = 0;
  if (who->device_id == NULL || who->device_id[0] == '\0')
    return NULL;
  d = device_find(f, who->device_id);
  if (d != NULL && who->peer_id != NULL && strcmp(who->peer_id, d->id) == 0)
    return d;
  wait = throttle_wait(f, who->proto, who->addr, who->device_id, now);
  if (wait > 0) {
    *retry_after = wait;
    return NULL;
  }
  ok = who->secret != NULL && secret_ok(d != NULL ? d->secret_hash : dummy, who->secret);
  if (d != NULL && ok)
    return d;
  throttle_failed(f, who->proto, "device credential refused", who->addr, who->device_id, now);
  return NULL;
}

struct device *authenticate_quiet(struct fleet *f, const struct device_identity *who)
{
  struct device *d;

  if (who->device_id == NULL || who->device_id[0] == '\0' ||
      (d = device_find(f, who->device_id)) == NULL)
    return NULL;
  if (who->peer_id != NULL && strcmp(who->peer_id, d->id) == 0)
    return d;
  /* a throttled address or id, or a refused secret: the caller asks
   * authenticate(), which counts it */
  if (throttle_wait(f, who->proto, who->addr, who->device_id, mono_ms()) > 0 ||
      who->secret == NULL || !secret_ok(d->secret_hash, who->secret))
    return NULL;
  return d;
}

void seen(struct device *d, const struct device_identity *who)
{
  int64_t t = now_ms();

  if (d->first_seen == 0)
    d->first_seen = t;
  d->last_seen = t;
  if (who->addr != NULL)
    snprintf(d->addr, sizeof(d->addr), "%s", who->addr);
}
