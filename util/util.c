/* util.c: the small helpers of util.h. */
#include "autoconfig.h"

#include "util.h"

#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

int usable_cpus(void)
{
  cpu_set_t cs;
  long n;

  if (sched_getaffinity(0, sizeof(cs), &cs) == 0 && CPU_COUNT(&cs) > 0)
    return CPU_COUNT(&cs);
  n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

int64_t mono_us(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Days since 1970-01-01 of a civil date (proleptic Gregorian; m 1..12). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
  int64_t era, yoe, doy;

  y -= m <= 2;
  era = (y >= 0 ? y : y - 399) / 400;
  yoe = y - era * 400;
  doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

/* The process's gmtime_r, libmicrohttpd's included: it formats a Date for
 * every response with it, and glibc's takes the process-wide time zone
 * lock on every call (UTC needs no time zone), a lock the HTTP front's
 * threads then pass between their processors once a response. Computed
 * here without a lock, the last second kept per thread. */
struct tm *gmtime_r(const time_t *restrict t, struct tm *restrict out)
{
  static _Thread_local time_t last_t = (time_t)-1;
  static _Thread_local struct tm last;
  int64_t s = (int64_t)*t, days = s / 86400, rem = s % 86400, z, era, doe, yoe, y, doy, mp;

  if (s == (int64_t)last_t && last.tm_mday != 0) {
    *out = last;
    return out;
  }
  if (rem < 0) {
    rem += 86400;
    days--;
  }
  /* civil_from_days (H. Hinnant's algorithm): eras of 400 years from
   * 0000-03-01 */
  z = days + 719468;
  era = (z >= 0 ? z : z - 146096) / 146097;
  doe = z - era * 146097;
  yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  mp = (5 * doy + 2) / 153;
  memset(out, 0, sizeof(*out));
  out->tm_mday = (int)(doy - (153 * mp + 2) / 5 + 1);
  out->tm_mon = (int)(mp < 10 ? mp + 2 : mp - 10);
  y = yoe + era * 400 + (out->tm_mon <= 1);
  if (y - 1900 > INT_MAX || y - 1900 < INT_MIN) {
    errno = EOVERFLOW;
    return NULL;
  }
  out->tm_year = (int)(y - 1900);
  out->tm_yday = (int)(days - days_from_civil(y, 1, 1));
  out->tm_wday = (int)((days % 7 + 11) % 7); /* 1970-01-01: a Thursday */
  out->tm_hour = (int)(rem / 3600);
  out->tm_min = (int)(rem / 60 % 60);
  out->tm_sec = (int)(rem % 60);
  out->tm_isdst = 0;
#ifdef __USE_MISC
  out->tm_gmtoff = 0;
  out->tm_zone = "GMT";
#endif
  last = *out;
  last_t = *t;
  return out;
}

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
