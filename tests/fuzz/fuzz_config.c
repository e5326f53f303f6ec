/* fuzz_config.c: libFuzzer target for the configuration parser: any file
 * either loads or is refused with errors, never crashes or leaks. */
#include "autoconfig.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "server/fronts.h"
#include "util/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static char path[64];
  struct config_errors errs = {0};
  struct config *c;
  FILE *f;

  if (path[0] == '\0')
    snprintf(path, sizeof(path), "/tmp/fuzz-config-%d.conf", (int)getpid());
  f = fopen(path, "w");
  if (f == NULL)
    return 0;
  fwrite(data, 1, size, f);
  fclose(f);
  c = dfotad_config_load(path, NULL, 0, &errs);
  if (c == NULL && errs.n == 0)
    abort(); /* a refusal always says why */
  config_free(c);
  config_errors_clear(&errs);
  return 0;
}
