/* fuzz_checkin.c: libFuzzer target for the check-in query: arbitrary
 * version and transport strings (as a front hands them over, NUL-ended)
 * from a device with an offer, over any listener protocol. Input: byte 0
 * picks the listener and which strings are absent, byte 1 where the
 * version ends; the rest is version then transport. Invariants: a verdict
 * the fronts know; an offer has a URL of at most 700 bytes on the base of a
 * served transport (ftp: DEVICE:TOKEN@ with the id percent-encoded); a
 * refusal says why; the device's version stays printable. */
#include "autoconfig.h"

#include <stdint.h>

#include "fuzz_fleet.h"
#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_offer(const struct checkin_answer *a)
{
  char base[CONF_URL_MAX];

  if ((unsigned)a->transport >= PROTO_COUNT || strlen(a->url) > 700 || a->url[0] == '\0')
    abort();
  fleet_public_base(fz_fleet, a->transport, base, sizeof(base));
  if (base[0] == '\0')
    abort(); /* offered over a transport with no front */
  if (a->transport == PROTO_FTP || a->transport == PROTO_FTPS) {
    const char *scheme = proto_name(a->transport);
    if (strncmp(a->url, scheme, strlen(scheme)) != 0 ||
        strncmp(a->url + strlen(scheme), "://dev%3A1:", 11) != 0)
      abort();
  } else if (strncmp(a->url, base, strlen(base)) != 0 ||
             strncmp(a->url + strlen(base), "/f/", 3) != 0 ||
             strlen(a->url) != strlen(base) + 3 + FLEET_TOKEN_LEN) {
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct device_identity who;
  struct checkin_answer a;
  char *version, *transport;
  size_t split;
  struct device *d;

  if (size < 2 || size > 1024)
    return 0;
  split = data[1] < size - 2 ? data[1] : size - 2;
  version = malloc(split + 1);
  transport = malloc(size - 2 - split + 1);
  if (version == NULL || transport == NULL)
    abort();
  memcpy(version, data + 2, split);
  version[split] = '\0';
  memcpy(transport, data + 2 + split, size - 2 - split);
  transport[size - 2 - split] = '\0';

  fz_init();
  fz_reset();
  fz_who(&who, (enum proto)(data[0] % PROTO_COUNT));
  delivery_checkin(fz_fleet, &who, data[0] & 0x40 ? NULL : version,
                   data[0] & 0x80 ? NULL : transport, &a);
  switch (a.verdict) {
  case VERDICT_OFFER: check_offer(&a); break;
  case VERDICT_NOTHING: break;
  case VERDICT_LATER:
    if (a.retry_after <= 0)
      abort();
    break;
  case VERDICT_BAD_REQUEST:
  case VERDICT_NO_TRANSPORT:
    if (a.message[0] == '\0')
      abort();
    break;
  default: abort(); /* our own device with its secret is never forbidden */
  }
  pthread_mutex_lock(&fz_fleet->mu);
  d = device_find(fz_fleet, FZ_DEVICE);
  if (d == NULL || (d->version != NULL && !text_printable(d->version, PKG_FIELD_MAX, 0)))
    abort();
  pthread_mutex_unlock(&fz_fleet->mu);
  fz_check_device();
  free(version);
  free(transport);
  return 0;
}
