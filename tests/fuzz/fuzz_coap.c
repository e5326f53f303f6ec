/* fuzz_coap.c: libFuzzer target for what the CoAP front reads from a
 * datagram: libcoap's PDU parser (as the front's thread runs it), then our
 * option parser and Block2 arithmetic on whatever it accepted. Invariants:
 * a parsed name is a bounded run of [A-Za-z0-9]; a planned block lies
 * within the body, fits the room and keeps the offset asked for. */
#include "autoconfig.h"

#include <coap3/coap.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/coap/coap_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_req(const struct coap_req *r)
{
  size_t n = strlen(r->name);

  if (n > COAP_NAME_MAX || strlen(r->device) > DEVICE_ID_MAX ||
      strlen(r->version) > PKG_FIELD_MAX || strlen(r->transport) > 7)
    abort();
  if ((r->route == ROUTE_OFFER || r->route == ROUTE_PACKAGE) && n == 0)
    abort();
  for (size_t i = 0; i < n; i++)
    if (!((r->name[i] >= 'a' && r->name[i] <= 'z') || (r->name[i] >= 'A' && r->name[i] <= 'Z') ||
          (r->name[i] >= '0' && r->name[i] <= '9')))
      abort();
}

static void check_plan(const struct coap_req *r)
{
  static const uint64_t sizes[] = {0, 1, 16, 1000, 1048576, 300001, UINT64_MAX >> 8};
  static const size_t rooms[] = {0, 15, 16, 100, 1024, 1100};
  struct coap_block b;

  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
    for (size_t j = 0; j < sizeof(rooms) / sizeof(rooms[0]); j++) {
      if (coap_block_plan(r->num, r->szx, sizes[i], rooms[j], &b) != PLAN_OK)
        continue;
      if (b.len > rooms[j] || b.off > sizes[i] || b.len > sizes[i] - b.off ||
          b.off != (uint64_t)r->num << (r->szx + 4) || b.num > 0xFFFFF ||
          b.more != (b.off + b.len < sizes[i]) || (b.len == 0 && sizes[i] != 0))
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static int started;
  struct coap_optv opts[32];
  struct coap_req r;
  coap_opt_iterator_t it;
  coap_opt_t *o;
  coap_pdu_t *pdu;
  size_t n = 0;

  if (!started) {
    coap_startup();
    coap_set_log_level(LOG_EMERG);
    started = 1;
  }
  pdu = coap_pdu_init(0, 0, 0, size + 16);
  if (pdu == NULL)
    return 0;
  if (coap_pdu_parse(COAP_PROTO_UDP, data, size, pdu)) {
    coap_option_iterator_init(pdu, &it, COAP_OPT_ALL);
    while ((o = coap_option_next(&it)) != NULL && n < 32) {
      opts[n].number = it.number;
      opts[n].value = coap_opt_value(o);
      opts[n].len = coap_opt_length(o);
      n++;
    }
    coap_req_parse(opts, n, &r);
    check_req(&r);
    if (r.bad_code == 0)
      check_plan(&r);
  }
  coap_delete_pdu(pdu);
  /* the bytes as a list of options of our own, without libcoap's checks */
  n = 0;
  for (size_t i = 0; i + 2 <= size && n < 32;) {
    size_t len = data[i + 1] % 80;
    if (i + 2 + len > size)
      len = size - i - 2;
    opts[n].number = (uint16_t)(data[i] % 64);
    opts[n].value = data + i + 2;
    opts[n].len = len;
    n++;
    i += 2 + len;
  }
  coap_req_parse(opts, n, &r);
  check_req(&r);
  if (r.bad_code == 0)
    check_plan(&r);
  return 0;
}
