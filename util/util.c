/* util.c: the small helpers of util.h. */
#include "autoconfig.h"

#include "util.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"

uint32_t hash_str(const char *s)
{
  uint32_t h = 2166136261u;

  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

void hex_encode(const unsigned char *in, size_t n, char *out)
{
  static const char digits[] = "0123456789abcdef";

  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * n] = '\0';
}

int hex_digit(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int hex_decode(const char *in, unsigned char *out, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    int hi = hex_digit(in[2 * i]), lo = hi < 0 ? -1 : hex_digit(in[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return -1;
    out[i] = (unsigned char)(hi << 4 | lo);
  }
  return in[2 * n] == '\0' ? 0 : -1;
}

void base32_from(const unsigned char *r, char *out, int n)
{
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

  for (int i = 0; i < n; i++)
    out[i] = alphabet[r[i] & 31];
  out[n] = '\0';
}

void random_base32(char *out, int n)
{
  unsigned char r[64];

  if (n < 0 || n > (int)sizeof(r) || RAND_bytes(r, n) != 1)
    fatal("no randomness available");
  base32_from(r, out, n);
  OPENSSL_cleanse(r, (size_t)n);
}

static int64_t clock_ms(clockid_t id)
{
  struct timespec ts;

  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t now_ms(void) { return clock_ms(CLOCK_REALTIME); }

int64_t mono_ms(void) { return clock_ms(CLOCK_MONOTONIC); }

void time_iso(int64_t ms, char *out, size_t len)
{
  time_t t = (time_t)(ms / 1000);
  struct tm tm;

  if (ms <= 0 || gmtime_r(&t, &tm) == NULL) {
    if (len > 0)
      out[0] = '\0';
    return;
  }
  strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void time_iso_ms(int64_t ms, char *out, size_t len)
{
  char sec[32];

  time_iso(ms, sec, sizeof(sec));
  if (sec[0] == '\0') {
    if (len > 0)
      out[0] = '\0';
    return;
  }
  sec[strlen(sec) - 1] = '\0'; /* the Z follows the milliseconds */
  snprintf(out, len, "%s.%03dZ", sec, (int)(ms % 1000));
}

void time_http(int64_t sec, char *out, size_t len)
{
  time_t t = (time_t)sec;
  struct tm tm;

  if (gmtime_r(&t, &tm) == NULL) {
    if (len > 0)
      out[0] = '\0';
    return;
  }
  strftime(out, len, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

int text_printable(const char *s, size_t max, int spaces)
{
  size_t n = 0;

  for (; *s; s++, n++) {
    unsigned char c = (unsigned char)*s;
    if (n >= max || c > 0x7e || c < 0x20 || (c == ' ' && !spaces))
      return 0;
  }
  return 1;
}
