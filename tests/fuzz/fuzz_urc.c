/* fuzz_urc.c: libFuzzer target for URC report bodies: every line through
 * urc_parse_line (invariants: a parsed line has a stage, a printable name,
 * an end stage always has its code, a percent lies in 0..100), then the
 * whole body through delivery_report on a real fleet whose device has an
 * offer (invariants: a verdict the fronts know, a sane device record). */
#include "autoconfig.h"

#include <stdint.h>

#include "fleet/urc.h"
#include "fuzz_fleet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parse_lines(const char *body, size_t len)
{
  const char *p = body, *end = body + len;

  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    struct urc u;
    if (urc_parse_line(p, (size_t)(le - p), &u) == 0) {
      size_t n = strnlen(u.name, sizeof(u.name));
      if (u.stage == URC_NONE || n == 0 || n == sizeof(u.name))
        abort();
      if ((u.stage == URC_DOWNLOAD_END || u.stage == URC_UPDATE_END) && !u.has_number)
        abort();
      if ((u.stage == URC_DOWNLOADING || u.stage == URC_UPDATING) && u.has_number &&
          (u.number < 0 || u.number > 100))
        abort();
      if (u.has_number && code_meaning(u.number) == NULL)
        abort();
      if (strcmp(code_class_name(code_classify(u.number)), "") == 0)
        abort();
    }
    p = nl ? nl + 1 : end;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct device_identity who;
  struct report_answer a;

  if (size > 16 * 1024) /* REPORT_BODY_MAX: the front refuses more */
    return 0;
  parse_lines((const char *)data, size);
  fz_init();
  fz_reset();
  fz_who(&who, PROTO_HTTP);
  delivery_report(fz_fleet, &who, 0, (const char *)data, size, &a);
  if (a.verdict != VERDICT_NOTHING && a.verdict != VERDICT_BAD_REQUEST)
    abort();
  if (a.verdict == VERDICT_NOTHING && (a.accepted <= 0 || a.state[0] == '\0'))
    abort();
  if (a.verdict == VERDICT_BAD_REQUEST && a.message[0] == '\0')
    abort();
  fz_check_device();
  return 0;
}
