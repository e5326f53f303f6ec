/* range.h: the Range header of a device's download request. */
#ifndef DFOTAD_RANGE_H
#define DFOTAD_RANGE_H

#include <stdint.h>

enum range_result {
  RANGE_NONE = 0,      /* no Range header: the whole body, 200 */
  RANGE_OK,            /* one satisfiable range: 206 */
  RANGE_UNSATISFIABLE, /* starts at or past the end: 416 */
  RANGE_INVALID,       /* anything we cannot serve exactly: 416 as well */
};

struct byte_range {
  uint64_t start;
  uint64_t len; /* at least 1 */
  int bounded;  /* the request named its last byte (a request_size segment) */
};

/* Parses one Range header value against a body of `size` bytes. Accepts
 * exactly one range of unit "bytes": "N-", "N-M" (M past the end is clamped)
 * or "-N" (the last N bytes). Everything else, including several ranges,
 * another unit, or numbers that do not fit in 64 bits, is RANGE_INVALID:
 * a module writes whatever body it gets at the offset it asked for, so a
 * whole body in answer to a range it asked for would corrupt its image. */
enum range_result range_parse(const char *value, uint64_t size, struct byte_range *out);

#endif
