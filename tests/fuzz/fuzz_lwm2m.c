/* fuzz_lwm2m.c: libFuzzer target for what an LwM2M client sends dfotad:
 * the first byte picks the parser. 0: a registration's link-format payload
 * (invariants: at most LWM2M_OBJ_MAX instances, a text form that fits);
 * 1: its Uri-Query options, '&'-separated (invariants: a bounded,
 * printable endpoint, a binding of known letters); 3..: one resource's
 * value in a payload, the next two bytes its Content-Format (among the
 * known ones) and resource id (invariants: printable text, at most
 * LWM2M_INTS_MAX integers); 2: a string written as /5/0/1 in each write
 * format reads back the same. */
#include "autoconfig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/coap/lwm2m_link.h"
#include "server/coap/lwm2m_tlv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void links(const uint8_t *p, size_t n)
{
  struct lwm2m_links l;
  const char *why = NULL;
  char text[256];

  if (lwm2m_links_parse((const char *)p, n, &l, &why) == 0) {
    if (l.n < 0 || l.n > LWM2M_OBJ_MAX)
      abort();
    lwm2m_links_text(&l, text, sizeof(text));
    if (strnlen(text, sizeof(text)) == sizeof(text))
      abort();
    for (int i = 0; i < l.n; i++)
      if (strnlen(l.o[i].ver, sizeof(l.o[i].ver)) == sizeof(l.o[i].ver) || l.o[i].inst < -1)
        abort();
  } else if (why == NULL) {
    abort();
  }
}

static void query(const uint8_t *p, size_t n)
{
  struct lwm2m_query q;
  const char *why = NULL;
  size_t i = 0;

  lwm2m_query_init(&q);
  while (i <= n) {
    const uint8_t *amp = memchr(p + i, '&', n - i);
    size_t e = amp ? (size_t)(amp - p) : n;
    if (lwm2m_query_add(&q, p + i, e - i, &why) < 0 && why == NULL)
      abort();
    i = e + 1;
  }
  if (q.has_ep) {
    size_t len = strnlen(q.ep, sizeof(q.ep));
    if (len == 0 || len > LWM2M_EP_MAX)
      abort();
    for (size_t k = 0; k < len; k++)
      if (q.ep[k] < 0x21 || q.ep[k] > 0x7e)
        abort();
  }
  if (strspn(q.binding, "UQSNT") != strlen(q.binding) || q.lt < -1)
    abort();
}

static void value(const uint8_t *p, size_t n)
{
  static const int fmts[] = {-1,
                             LWM2M_FMT_TEXT,
                             LWM2M_FMT_OPAQUE,
                             LWM2M_FMT_SENML_JSON,
                             LWM2M_FMT_TLV_OLD,
                             LWM2M_FMT_TLV,
                             LWM2M_FMT_JSON,
                             LWM2M_FMT_SENML_CBOR,
                             12345};
  struct lwm2m_value v;

  if (n < 2)
    return;
  if (lwm2m_value_decode(fmts[p[0] % 9], p + 2, n - 2, p[1], &v) == 0) {
    size_t len = strnlen(v.text, sizeof(v.text));
    if (len == sizeof(v.text) || v.n_ints < 0 || v.n_ints > LWM2M_INTS_MAX)
      abort();
    for (size_t k = 0; k < len; k++)
      if (v.text[k] < 0x20 || v.text[k] > 0x7e)
        abort();
  }
}

/* A Package URI written in each format reads back the same (its printable
 * text: what a device's URI can be). */
static void roundtrip(const uint8_t *p, size_t n)
{
  static const int fmts[] = {LWM2M_FMT_TEXT, LWM2M_FMT_TLV, LWM2M_FMT_SENML_JSON,
                             LWM2M_FMT_SENML_CBOR};
  char s[LWM2M_VALUE_MAX + 1];
  uint8_t buf[1024];
  size_t k = 0;
  struct lwm2m_value v;

  for (size_t i = 0; i < n && k < sizeof(s) - 1; i++)
    if (p[i] >= 0x20 && p[i] < 0x7f)
      s[k++] = (char)p[i];
  s[k] = '\0';
  for (size_t f = 0; f < sizeof(fmts) / sizeof(fmts[0]); f++) {
    int len = lwm2m_value_encode(fmts[f], 5, 0, 1, s, buf, sizeof(buf));
    if (len < 0 || lwm2m_value_decode(fmts[f], buf, (size_t)len, 1, &v) < 0 ||
        strcmp(v.text, s) != 0)
      abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size == 0)
    return 0;
  if (data[0] == 0)
    links(data + 1, size - 1);
  else if (data[0] == 1)
    query(data + 1, size - 1);
  else if (data[0] == 2)
    roundtrip(data + 1, size - 1);
  else
    value(data + 1, size - 1);
  return 0;
}
