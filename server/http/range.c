/* range.c: a strict, allocation-free parser of one byte range (RFC 9110
 * section 14), written for the module's needs rather than a browser's. */
#include "autoconfig.h"

#include <stddef.h>

#include "range.h"

/* Reads 1*DIGIT into *out; NULL on no digit or on overflow. Nineteen
 * digits never overflow 64 bits: checked from the twentieth on only. */
static const char *read_u64(const char *p, uint64_t *out)
{
  uint64_t v = 0;
  const char *start = p;

  while (*p >= '0' && *p <= '9' && p - start < 19)
    v = v * 10 + (unsigned)(*p++ - '0');
  while (*p >= '0' && *p <= '9') {
    unsigned d = (unsigned)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      return NULL;
    v = v * 10 + d;
    p++;
  }
  if (p == start)
    return NULL;
  *out = v;
  return p;
}

static const char *skip_ows(const char *p)
{
  while (*p == ' ' || *p == '\t')
    p++;
  return p;
}

enum range_result range_parse(const char *value, uint64_t size, struct byte_range *out)
{
  const char *p;
  uint64_t first, last;

  if (value == NULL)
    return RANGE_NONE;
  p = skip_ows(value);
  /* "bytes" in any case (c | 0x20 is one of these letters only for it
   * in either case; a NUL stops the comparison) */
  for (int i = 0; i < 5; i++)
    if ((p[i] | 0x20) != "bytes"[i])
      return RANGE_INVALID;
  p += 5;
  if (*p != '=')
    return RANGE_INVALID;
  p = skip_ows(p + 1);

  if (*p == '-') {
    /* suffix: the last N bytes */
    uint64_t n;
    p = read_u64(p + 1, &n);
    if (p == NULL || *skip_ows(p) != '\0')
      return RANGE_INVALID;
    if (n == 0 || size == 0)
      return RANGE_UNSATISFIABLE;
    if (n > size)
      n = size;
    out->start = size - n;
    out->len = n;
    out->bounded = 0;
    return RANGE_OK;
  }

  p = read_u64(p, &first);
  if (p == NULL || *p != '-')
    return RANGE_INVALID;
  p++;
  out->bounded = *p >= '0' && *p <= '9';
  if (out->bounded) {
    p = read_u64(p, &last);
    if (p == NULL)
      return RANGE_INVALID;
    if (last < first)
      return RANGE_INVALID;
  } else {
    last = UINT64_MAX;
  }
  if (*skip_ows(p) != '\0')
    return RANGE_INVALID; /* trailing text, or a second range after ',' */
  if (first >= size)
    return RANGE_UNSATISFIABLE;
  if (last > size - 1)
    last = size - 1;
  out->start = first;
  out->len = last - first + 1;
  return RANGE_OK;
}
