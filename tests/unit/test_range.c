/* test_range.c: the Range parser, on the cases modules and attackers send. */
#include "autoconfig.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/http/range.h"
#include "unit.h"
#include "util/util.h"

/* util.c's gmtime_r (libmicrohttpd's Date, Last-Modified) against glibc's
 * localtime_r in UTC, field by field, over 400 years either side and
 * around the era and leap-year edges. */
static void check_gmtime(void)
{
  static const time_t edges[] = {0,           -1,           59,           86399,
                                 86400,       -86400,       -86401,       951782399,
                                 951782400,   951868800,    4107542399,   4107542400,
                                 -2208988800, -62135596800, 253402300799, 1764748800};
  int bad = 0;
  char text[40];

  setenv("TZ", "UTC", 1);
  tzset();
  for (long i = -(long)(sizeof(edges) / sizeof(edges[0])); i < 200000; i++) {
    time_t t = i < 0 ? edges[-i - 1] : (time_t)(i - 100000) * 126227 + i % 86400;
    struct tm a, b;
    for (int twice = 0; twice < 2; twice++) /* the second from the thread's last second */
      if (gmtime_r(&t, &a) == NULL || localtime_r(&t, &b) == NULL || a.tm_year != b.tm_year ||
          a.tm_mon != b.tm_mon || a.tm_mday != b.tm_mday || a.tm_hour != b.tm_hour ||
          a.tm_min != b.tm_min || a.tm_sec != b.tm_sec || a.tm_wday != b.tm_wday ||
          a.tm_yday != b.tm_yday || a.tm_isdst != 0 || a.tm_gmtoff != 0 ||
          strcmp(a.tm_zone, "GMT") != 0)
        bad++;
  }
  CHECK(bad == 0);
  time_http(0, text, sizeof(text));
  CHECK(strcmp(text, "Thu, 01 Jan 1970 00:00:00 GMT") == 0);
  time_http(951782400, text, sizeof(text));
  CHECK(strcmp(text, "Tue, 29 Feb 2000 00:00:00 GMT") == 0);
  /* the ends of struct tm's int year, as glibc's: the last second that
   * fits, then NULL with EOVERFLOW (OpenSSL, libevent and GnuTLS call it
   * too, with whatever time a certificate or a peer names) */
  {
    static const time_t last = 67768036191676799LL, first = -67768040609740800LL;
    const time_t past_last = last + 1, before_first = first - 1, big = INT64_MAX, small = INT64_MIN;
    struct tm a;
    CHECK(gmtime_r(&last, &a) != NULL && a.tm_year == INT_MAX && a.tm_mon == 11 &&
          a.tm_mday == 31 && a.tm_sec == 59);
    CHECK(gmtime_r(&first, &a) != NULL && a.tm_year == INT_MIN && a.tm_mon == 0 && a.tm_mday == 1 &&
          a.tm_hour == 0);
    errno = 0;
    CHECK(gmtime_r(&past_last, &a) == NULL && errno == EOVERFLOW);
    errno = 0;
    CHECK(gmtime_r(&before_first, &a) == NULL && errno == EOVERFLOW);
    errno = 0;
    CHECK(gmtime_r(&big, &a) == NULL && errno == EOVERFLOW);
    errno = 0;
    CHECK(gmtime_r(&small, &a) == NULL && errno == EOVERFLOW);
  }
}

static void expect(const char *v, uint64_t size, enum range_result want, uint64_t start,
                   uint64_t len)
{
  struct byte_range br = {0, 0, 0};
  enum range_result got = range_parse(v, size, &br);

  CHECK(got == want);
  if (got != want)
    fprintf(stderr, "  range_parse(\"%s\", %llu) = %d, want %d\n", v ? v : "(null)",
            (unsigned long long)size, (int)got, (int)want);
  if (want == RANGE_OK && got == RANGE_OK) {
    CHECK(br.start == start);
    CHECK(br.len == len);
    if (br.start != start || br.len != len)
      fprintf(stderr, "  \"%s\": start %llu len %llu, want %llu %llu\n", v,
              (unsigned long long)br.start, (unsigned long long)br.len, (unsigned long long)start,
              (unsigned long long)len);
  }
}

int main(void)
{
  /* the list, on a 1000-byte file */
  {
    struct byte_range br;
    CHECK(range_parse("bytes=0-2047", 10240, &br) == RANGE_OK && br.bounded);
    CHECK(range_parse("bytes=2048-", 10240, &br) == RANGE_OK && !br.bounded);
    CHECK(range_parse("bytes=-10", 10240, &br) == RANGE_OK && !br.bounded);
  }
  expect("bytes=-10", 1000, RANGE_OK, 990, 10);
  expect("bytes=990-1990", 1000, RANGE_OK, 990, 10);
  expect("bytes=alpha", 1000, RANGE_INVALID, 0, 0);
  expect("bytes=10-alpha", 1000, RANGE_INVALID, 0, 0);
  expect("bytes=10", 1000, RANGE_INVALID, 0, 0);
  expect("bytes=5-4", 1000, RANGE_INVALID, 0, 0);
  expect("bytes=-0", 1000, RANGE_UNSATISFIABLE, 0, 0);
  expect("items=0-1", 1000, RANGE_INVALID, 0, 0);
  expect("bytes=0-18446744073709551615", 1000, RANGE_OK, 0, 1000);
  expect("bytes=18446744073709551616-", 1000, RANGE_INVALID, 0, 0);
  expect("bytes=0-1,5-6", 1000, RANGE_INVALID, 0, 0);
  expect("bytes=0-1, 5-6", 1000, RANGE_INVALID, 0, 0);

  /* what modules send */
  expect(NULL, 1000, RANGE_NONE, 0, 0);
  expect("bytes=0-", 1000, RANGE_OK, 0, 1000);
  expect("bytes=500-", 1000, RANGE_OK, 500, 500);
  expect("bytes=999-", 1000, RANGE_OK, 999, 1);
  expect("bytes=1000-", 1000, RANGE_UNSATISFIABLE, 0, 0);
  expect("bytes=1000-1999", 1000, RANGE_UNSATISFIABLE, 0, 0);
  expect("bytes=0-2047", 1000, RANGE_OK, 0, 1000);
  expect("bytes=2048-4095", 10240, RANGE_OK, 2048, 2048);
  expect("bytes=8192-10239", 10240, RANGE_OK, 8192, 2048);
  expect("bytes=0-0", 1000, RANGE_OK, 0, 1);
  expect("bytes=-1000", 1000, RANGE_OK, 0, 1000);
  expect("bytes=-5000", 1000, RANGE_OK, 0, 1000);
  expect("Bytes=1-2", 1000, RANGE_OK, 1, 2);
  expect(" bytes=1-2 ", 1000, RANGE_OK, 1, 2);

  /* malformed */
  expect("", 1000, RANGE_INVALID, 0, 0);
  expect("bytes", 1000, RANGE_INVALID, 0, 0);
  expect("bytes=", 1000, RANGE_INVALID, 0, 0);
  expect("bytes=-", 1000, RANGE_INVALID, 0, 0);
  expect("bytes==1-2", 1000, RANGE_INVALID, 0, 0);
  expect("bytes=1--2", 1000, RANGE_INVALID, 0, 0);
  expect("bytes=+1-2", 1000, RANGE_INVALID, 0, 0);
  expect("bytes=1-2x", 1000, RANGE_INVALID, 0, 0);
  expect("bytes=0x10-", 1000, RANGE_INVALID, 0, 0);
  expect("bytes=-1-2", 1000, RANGE_INVALID, 0, 0);
  expect("bytes=1 -2", 1000, RANGE_INVALID, 0, 0);
  expect("bytes=1-2,", 1000, RANGE_INVALID, 0, 0);
  expect("bytes=-18446744073709551616", 1000, RANGE_INVALID, 0, 0);
  expect("bytes=18446744073709551615-18446744073709551615", 1000, RANGE_UNSATISFIABLE, 0, 0);
  expect("bytesx=1-2", 1000, RANGE_INVALID, 0, 0);
  /* the first 19 digits are read unchecked, the rest checked */
  expect("bytes=0000000000000000000001-0000000000000000000002", 1000, RANGE_OK, 1, 2);
  expect("bytes=1844674407370955161-", 1000, RANGE_UNSATISFIABLE, 0, 0);
  expect("bytes=99999999999999999999-", 1000, RANGE_INVALID, 0, 0);
  expect("bytes=0-99999999999999999999", 1000, RANGE_INVALID, 0, 0);
  expect("BYTES=1-2", 1000, RANGE_OK, 1, 2);
  expect("bYtEs=1-2", 1000, RANGE_OK, 1, 2);
  expect("byte=1-2", 1000, RANGE_INVALID, 0, 0);
  expect("bytes\x00=1-2", 1000, RANGE_INVALID, 0, 0);
  expect("BYTE\x13=1-2", 1000, RANGE_INVALID, 0, 0);
  check_gmtime();
  return unit_done("test_range");
}
