/* coap_msg.c: the CoAP front's request parser and Block2 arithmetic (see
 * coap_msg.h). Every field copied here is bounded and checked for the
 * characters it may hold; anything else makes the request bad or routes
 * it nowhere. */
#include "autoconfig.h"

#include "coap_msg.h"

#include <string.h>

int64_t coap_uint_decode(const uint8_t *v, size_t len)
{
  uint64_t r = 0;

  if (len > 4)
    return -1;
  for (size_t i = 0; i < len; i++)
    r = (r << 8) | v[i];
  return (int64_t)r;
}

size_t coap_uint_encode(uint64_t v, uint8_t out[8])
{
  size_t n = 0;
  uint8_t tmp[8];

  while (v != 0 && n < sizeof(tmp)) {
    tmp[n++] = (uint8_t)(v & 0xff);
    v >>= 8;
  }
  for (size_t i = 0; i < n; i++)
    out[i] = tmp[n - 1 - i];
  return n;
}

size_t coap_block_encode(uint32_t num, int more, int szx, uint8_t out[3])
{
  uint32_t v = (num << 4) | (more ? 8u : 0u) | ((uint32_t)szx & 7u);
  uint8_t tmp[8];
  size_t n = coap_uint_encode(v, tmp);

  memcpy(out, tmp, n); /* at most 3 bytes: num has 20 bits */
  return n;
}

/* [A-Za-z0-9], 1..max bytes: what tokens and package ids are made of */
static int id_chars(const uint8_t *s, size_t len, size_t max)
{
  if (len == 0 || len > max)
    return 0;
  for (size_t i = 0; i < len; i++) {
    uint8_t c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
      return 0;
  }
  return 1;
}

static int seg_is(const struct coap_optv *o, const char *s)
{
  size_t n = strlen(s);
  return o->len == n && memcmp(o->value, s, n) == 0;
}

/* Copies a query value: printable ASCII without spaces, at most max bytes. */
static int copy_value(const uint8_t *v, size_t len, char *out, size_t max)
{
  if (len > max)
    return -1;
  for (size_t i = 0; i < len; i++)
    if (v[i] < 0x21 || v[i] > 0x7e)
      return -1;
  memcpy(out, v, len);
  out[len] = '\0';
  return 0;
}

static void bad(struct coap_req *r, int code, const char *why)
{
  if (r->bad_code == 0) {
    r->bad_code = code;
    r->why = why;
  }
}

static void query(struct coap_req *r, const struct coap_optv *o)
{
  static const struct {
    const char *key;
    size_t off, max, seen;
  } keys[] = {
      {"device=", offsetof(struct coap_req, device), DEVICE_ID_MAX,
       offsetof(struct coap_req, has_device)},
      {"version=", offsetof(struct coap_req, version), PKG_FIELD_MAX,
       offsetof(struct coap_req, has_version)},
      {"transport=", offsetof(struct coap_req, transport), 7,
       offsetof(struct coap_req, has_transport)},
  };

  for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
    size_t kl = strlen(keys[k].key);
    int *seen = (int *)((char *)r + keys[k].seen);
    if (o->len < kl || memcmp(o->value, keys[k].key, kl) != 0)
      continue;
    if (*seen) {
      bad(r, 400, "a query parameter given twice");
      return;
    }
    if (copy_value(o->value + kl, o->len - kl, (char *)r + keys[k].off, keys[k].max) < 0) {
      bad(r, 400, "a query value too long or not printable");
      return;
    }
    *seen = 1;
    return;
  }
  /* other parameters are ignored, as over HTTP */
}

void coap_req_parse(const struct coap_optv *opts, size_t n, struct coap_req *r)
{
  const struct coap_optv *seg[COAP_PATH_SEGMENTS];
  size_t nseg = 0, nquery = 0;
  int nblock2 = 0;

  memset(r, 0, sizeof(*r));
  r->accept = -1;
  r->content_format = -1;
  for (size_t i = 0; i < n; i++) {
    const struct coap_optv *o = &opts[i];
    switch (o->number) {
    case COAPOPT_URI_PATH:
      /* SECURITY: a fixed number of segments; a longer path names nothing */
      if (nseg < COAP_PATH_SEGMENTS)
        seg[nseg] = o;
      nseg++;
      break;
    case COAPOPT_URI_QUERY:
      if (++nquery > COAP_QUERY_OPTIONS) {
        bad(r, 400, "too many query options");
        break;
      }
      query(r, o);
      break;
    case COAPOPT_BLOCK2: {
      int64_t v = coap_uint_decode(o->value, o->len);
      /* RFC 7252 5.4.5: a critical option that must not repeat, repeated,
       * is treated as unrecognised: 4.02 */
      if (++nblock2 > 1 || v < 0 || o->len > 3) {
        bad(r, 402, "bad Block2 option");
        break;
      }
      r->has_block2 = 1;
      r->num = (uint32_t)((uint64_t)v >> 4);
      r->szx = (int)(v & 7);
      break;
    }
    case COAPOPT_BLOCK1: r->has_block1 = 1; break;
    case COAPOPT_ACCEPT: {
      int64_t v = coap_uint_decode(o->value, o->len);
      if (v < 0 || v > 0xffff)
        bad(r, 400, "bad Accept option");
      else
        r->accept = (int)v;
      break;
    }
    case COAPOPT_CONTENT_FORMAT: {
      int64_t v = coap_uint_decode(o->value, o->len);
      if (v < 0 || v > 0xffff)
        bad(r, 400, "bad Content-Format option");
      else
        r->content_format = (int)v;
      break;
    }
    default: break;
    }
  }
  if (nseg > COAP_PATH_SEGMENTS)
    return;
  if (nseg == 2 && seg_is(seg[0], "f") && id_chars(seg[1]->value, seg[1]->len, COAP_NAME_MAX)) {
    r->route = ROUTE_OFFER;
  } else if ((nseg == 2 || nseg == 3) && seg_is(seg[0], "p") &&
             id_chars(seg[1]->value, seg[1]->len, COAP_NAME_MAX)) {
    r->route = ROUTE_PACKAGE; /* a third segment is a file name for people */
  } else if (nseg == 2 && seg_is(seg[0], "v1") && seg_is(seg[1], "update")) {
    r->route = ROUTE_CHECKIN;
    return;
  } else if (nseg == 2 && seg_is(seg[0], "v1") && seg_is(seg[1], "report")) {
    r->route = ROUTE_REPORT;
    return;
  } else {
    return;
  }
  memcpy(r->name, seg[1]->value, seg[1]->len);
  r->name[seg[1]->len] = '\0';
}

enum coap_plan coap_block_plan(uint32_t num, int szx, uint64_t size, size_t room,
                               struct coap_block *out)
{
  uint64_t off;

  /* SZX 7 is BERT, for CoAP over TCP only (RFC 8323) */
  if (szx < 0 || szx > 6)
    return PLAN_BAD_SZX;
  if (num > 0xFFFFF)
    return PLAN_PAST_END;
  off = (uint64_t)num << (szx + 4);
  /* block 0 of an empty body is the empty body; any other must start
   * inside it */
  if (off >= size && !(num == 0 && size == 0))
    return PLAN_PAST_END;
  /* a block larger than the datagram can carry: halve it, keeping the
   * offset (off is a multiple of every smaller size) */
  while (szx > 0 && ((size_t)16 << szx) > room)
    szx--;
  if (((size_t)16 << szx) > room)
    return PLAN_NO_ROOM;
  out->off = off;
  out->szx = szx;
  if ((off >> (szx + 4)) > 0xFFFFF)
    return PLAN_NO_ROOM;
  out->num = (uint32_t)(off >> (szx + 4));
  out->len = (size_t)(size - off < ((uint64_t)16 << szx) ? size - off : ((uint64_t)16 << szx));
  out->more = off + out->len < size;
  return PLAN_OK;
}
