/* fuzz_bulk.c: libFuzzer target for bulk_parse (fleet/bulk.c), the text
 * reader of a bulk device call. Invariant: whatever it accepts, jansson
 * (JSON_REJECT_DUPLICATES, as the admin API) reads as the same array of
 * objects with the same strings; what it declines is left to jansson. */
#include "autoconfig.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fleet/fleet_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same(json_t *o, const char *key, const char *v, size_t *n)
{
  json_t *j = json_object_get(o, key);

  if (v == NULL) {
    if (j != NULL)
      abort();
    return;
  }
  if (!json_is_string(j) || json_string_length(j) != strlen(v) || strcmp(json_string_value(j), v))
    abort();
  (*n)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *s = malloc(size + 1);
  struct bulk_item *it = NULL;
  size_t n = 0;
  json_t *j;
  int r;

  if (s == NULL)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  r = bulk_parse(s, size, &it, &n);
  if (r == 0) {
    j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_array(j) || json_array_size(j) != n)
      abort();
    for (size_t i = 0; i < n; i++) {
      json_t *o = json_array_get(j, i);
      size_t k = 0;
      if (!json_is_object(o) || it[i].b != NULL)
        abort();
      same(o, "id", it[i].id, &k);
      same(o, "model", it[i].model, &k);
      same(o, "version", it[i].version, &k);
      same(o, "group", it[i].group, &k);
      same(o, "secret", it[i].secret, &k);
      if (json_object_size(o) != k)
        abort();
    }
    json_decref(j);
  }
  free(it);
  free(s);
  return 0;
}
