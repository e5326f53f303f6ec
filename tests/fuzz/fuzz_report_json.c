/* fuzz_report_json.c: libFuzzer target for JSON report bodies
 * ({"stage": "HTTPEND", "code": 0} or "percent") through delivery_report on
 * a real fleet whose device has an offer. Invariants: a verdict the fronts
 * know, at most one usable stage, a sane device record. */
#include "autoconfig.h"

#include <stdint.h>

#include "fuzz_fleet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct device_identity who;
  struct report_answer a;

  if (size > 16 * 1024) /* REPORT_BODY_MAX: the front refuses more */
    return 0;
  fz_init();
  fz_reset();
  fz_who(&who, PROTO_HTTPS);
  delivery_report(fz_fleet, &who, 1, (const char *)data, size, &a);
  if (a.verdict != VERDICT_NOTHING && a.verdict != VERDICT_BAD_REQUEST)
    abort();
  if (a.verdict == VERDICT_NOTHING && (a.accepted != 1 || a.state[0] == '\0'))
    abort();
  if (a.verdict == VERDICT_BAD_REQUEST && a.message[0] == '\0')
    abort();
  fz_check_device();
  return 0;
}
