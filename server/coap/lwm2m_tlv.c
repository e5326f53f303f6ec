/* lwm2m_tlv.c: one resource's value out of a payload (see lwm2m_tlv.h). */
#include "autoconfig.h"

#include "lwm2m_tlv.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_text(struct lwm2m_value *out, const uint8_t *p, size_t len)
{
  size_t n = 0;

  /* SECURITY: only printable ASCII is kept; the text is logged and shown */
  for (size_t i = 0; i < len && n < LWM2M_VALUE_MAX; i++)
    if (p[i] >= 0x20 && p[i] < 0x7f)
      out->text[n++] = (char)p[i];
  out->text[n] = '\0';
}

static void add_int(struct lwm2m_value *out, int64_t v)
{
  if (out->n_ints < LWM2M_INTS_MAX)
    out->ints[out->n_ints++] = v;
}

static int text_decode(const uint8_t *p, size_t len, struct lwm2m_value *out)
{
  int64_t v = 0;
  size_t i = 0;
  int neg = 0;

  set_text(out, p, len);
  if (len > 0 && p[0] == '-')
    neg = 1, i = 1;
  if (i == len || len - i > 18)
    return 0;
  for (; i < len; i++) {
    if (p[i] < '0' || p[i] > '9')
      return 0;
    v = v * 10 + (p[i] - '0');
  }
  add_int(out, neg ? -v : v);
  return 0;
}

/* A big-endian signed integer of 1, 2, 4 or 8 bytes. */
static int tlv_int(const uint8_t *p, size_t len, int64_t *v)
{
  uint64_t u = 0;

  if (len != 1 && len != 2 && len != 4 && len != 8)
    return -1;
  for (size_t i = 0; i < len; i++)
    u = (u << 8) | p[i];
  if (len < 8 && (p[0] & 0x80))
    u |= ~(uint64_t)0 << (len * 8);
  *v = (int64_t)u;
  return 0;
}

/* One TLV at p: its type, id and value. Returns the bytes it takes, or 0
 * when malformed. */
static size_t tlv_next(const uint8_t *p, size_t len, int *type, uint16_t *id, const uint8_t **val,
                       size_t *vlen)
{
  size_t h = 1, n;
  int idlen, ltype;

  if (len < 2)
    return 0;
  *type = p[0] >> 6;
  idlen = (p[0] & 0x20) ? 2 : 1;
  ltype = (p[0] >> 3) & 3;
  if (len < h + (size_t)idlen + (size_t)ltype)
    return 0;
  *id = idlen == 2 ? (uint16_t)(p[1] << 8 | p[2]) : p[1];
  h += (size_t)idlen;
  if (ltype == 0) {
    n = p[0] & 7;
  } else {
    n = 0;
    for (int i = 0; i < ltype; i++)
      n = n << 8 | p[h + (size_t)i];
    h += (size_t)ltype;
  }
  if (n > len - h)
    return 0;
  *val = p + h;
  *vlen = n;
  return h + n;
}

/* depth: object instances hold resources; nothing deeper */
static int tlv_find(const uint8_t *p, size_t len, uint16_t rid, struct lwm2m_value *out, int depth)
{
  while (len > 0) {
    int type;
    uint16_t id;
    const uint8_t *v;
    size_t vlen, used = tlv_next(p, len, &type, &id, &v, &vlen);

    if (used == 0)
      return -1;
    if (type == 0 && depth == 0) { /* an object instance: its resources */
      if (tlv_find(v, vlen, rid, out, 1) == 0)
        return 0;
    } else if (type == 3 && id == rid) { /* a resource with its value */
      int64_t iv;
      set_text(out, v, vlen);
      if (tlv_int(v, vlen, &iv) == 0)
        add_int(out, iv);
      return 0;
    } else if (type == 2 && id == rid) { /* a multiple resource: its instances */
      const uint8_t *q = v;
      size_t ql = vlen;
      while (ql > 0) {
        int t2;
        uint16_t id2;
        const uint8_t *v2;
        size_t l2, u2 = tlv_next(q, ql, &t2, &id2, &v2, &l2);
        int64_t iv;
        if (u2 == 0 || t2 != 1)
          return -1;
        if (tlv_int(v2, l2, &iv) == 0)
          add_int(out, iv);
        q += u2;
        ql -= u2;
      }
      return 0;
    }
    p += used;
    len -= used;
  }
  return -1;
}

/* SenML JSON: [{"bn":"/5/0/","n":"3","v":2}, ...]; a record's full name
 * (bn + n) ends with "/rid" (or "/rid/k" for a multiple resource). */
static int senml_find(const uint8_t *p, size_t len, uint16_t rid, struct lwm2m_value *out)
{
  json_error_t err;
  json_t *a = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &err), *rec;
  char bn[128] = "", name[256], want[16];
  size_t i;
  int found = -1;

  if (!json_is_array(a)) {
    json_decref(a);
    return -1;
  }
  json_array_foreach(a, i, rec)
  {
    const char *s;
    json_t *v;
    if (!json_is_object(rec))
      break;
    if ((s = json_string_value(json_object_get(rec, "bn"))) != NULL)
      snprintf(bn, sizeof(bn), "%s", s);
    s = json_string_value(json_object_get(rec, "n"));
    snprintf(name, sizeof(name), "%s%s", bn, s ? s : "");
    /* the resource's id is the last or the second-to-last segment */
    {
      char *last = strrchr(name, '/'), *prev;
      int ok = 0;
      snprintf(want, sizeof(want), "%u", (unsigned)rid);
      if (last && strcmp(last + 1, want) == 0)
        ok = 1;
      else if (last) {
        *last = '\0';
        prev = strrchr(name, '/');
        ok = prev && strcmp(prev + 1, want) == 0 && name[0] != '\0';
      }
      if (!ok)
        continue;
    }
    if ((v = json_object_get(rec, "v")) != NULL && json_is_number(v)) {
      add_int(out, (int64_t)json_number_value(v));
      found = 0;
    } else if ((s = json_string_value(json_object_get(rec, "vs"))) != NULL) {
      set_text(out, (const uint8_t *)s, strlen(s));
      found = 0;
    }
  }
  json_decref(a);
  return found;
}

int lwm2m_value_decode(int fmt, const uint8_t *p, size_t len, uint16_t rid, struct lwm2m_value *out)
{
  memset(out, 0, sizeof(*out));
  if (len > LWM2M_PAYLOAD_MAX)
    return -1;
  switch (fmt) {
  case -1:
  case LWM2M_FMT_TEXT: return text_decode(p, len, out);
  case LWM2M_FMT_OPAQUE: set_text(out, p, len); return 0;
  case LWM2M_FMT_TLV:
  case LWM2M_FMT_TLV_OLD: return tlv_find(p, len, rid, out, 0);
  case LWM2M_FMT_SENML_JSON: return senml_find(p, len, rid, out);
  default: return -1;
  }
}
