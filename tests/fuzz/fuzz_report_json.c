/* fuzz_report_json.c: libFuzzer target for JSON report bodies
 * ({"stage": "HTTPEND", "code": 0} or "percent") through delivery_report on
 * a real fleet whose device has an offer. Invariants: a verdict the fronts
 * know, at most one usable stage, a sane device record, and an end stage
 * applied is recorded with the code the body gave (nothing in the stage
 * can forge it). */
#include "autoconfig.h"

#include <stdint.h>

#include "fuzz_fleet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The code an applied end stage must have left, or -2 for none. */
static long expected_code(const uint8_t *data, size_t size)
{
  json_t *o = json_loadb((const char *)data, size, 0, NULL), *code;
  long want = -2;

  code = json_object_get(o, "code");
  if (json_is_integer(code) && json_integer_value(code) >= 0 && json_integer_value(code) < 100000)
    want = (long)json_integer_value(code);
  json_decref(o);
  return want;
}

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
  if (a.verdict == VERDICT_NOTHING) {
    struct device *d;
    long want = expected_code(data, size);
    pthread_mutex_lock(&fz_fleet->mu);
    d = device_find(fz_fleet, FZ_DEVICE);
    /* last_stage is the stage applied; an end stage records its code */
    if (want != -2 &&
        (strcmp(d->last_stage, "END") == 0 || strstr(d->last_stage, "END") ||
         strcmp(d->last_stage, "DOWNLOADED") == 0) &&
        d->last_code != want)
      abort();
    pthread_mutex_unlock(&fz_fleet->mu);
  }
  fz_check_device();
  return 0;
}
