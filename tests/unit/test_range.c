/* test_range.c: the Range parser, on the cases modules and attackers send. */
#include "autoconfig.h"

#include "server/http/range.h"
#include "unit.h"

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
  return unit_done("test_range");
}
