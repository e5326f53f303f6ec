/* fuzz_range.c: libFuzzer target for the Range parser. Invariants: a
 * satisfiable range lies within the file and is never empty. */
#include "autoconfig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/http/range.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static const uint64_t sizes[] = {1, 1000, 10240, UINT64_MAX};
  char *s = malloc(size + 1);
  struct byte_range br;

  if (s == NULL)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    if (range_parse(s, sizes[i], &br) == RANGE_OK) {
      if (br.len == 0 || br.start >= sizes[i] || br.len > sizes[i] - br.start)
        abort();
    }
  }
  free(s);
  return 0;
}
