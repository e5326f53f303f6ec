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

/* A number a device sent as a float: kept when an int64_t holds it (its
 * fraction dropped); SECURITY: converting one out of range (1e59) or NaN
 * is undefined behaviour, so those are left out, as CBOR's always were. */
static void add_number(struct lwm2m_value *out, double d)
{
  if (d > -9.2e18 && d < 9.2e18)
    add_int(out, (int64_t)d);
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

/* Whether a SenML record's full name (bn + n) names resource rid: it ends
 * with "/rid" (or "/rid/k" for a multiple resource's instance). */
static int name_is(const char *bn, const char *n, uint16_t rid)
{
  char name[256], want[16], *last, *prev;

  snprintf(name, sizeof(name), "%s%s", bn, n ? n : "");
  snprintf(want, sizeof(want), "%u", (unsigned)rid);
  if ((last = strrchr(name, '/')) == NULL)
    return 0;
  if (strcmp(last + 1, want) == 0)
    return 1;
  *last = '\0';
  prev = strrchr(name, '/');
  return prev && strcmp(prev + 1, want) == 0 && name[0] != '\0';
}

/* SenML JSON: [{"bn":"/5/0/","n":"3","v":2}, ...]. */
static int senml_find(const uint8_t *p, size_t len, uint16_t rid, struct lwm2m_value *out)
{
  json_error_t err;
  json_t *a = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &err), *rec;
  char bn[128] = "";
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
    if (!name_is(bn, json_string_value(json_object_get(rec, "n")), rid))
      continue;
    if ((v = json_object_get(rec, "v")) != NULL && json_is_number(v)) {
      if (json_is_integer(v))
        add_int(out, (int64_t)json_integer_value(v));
      else
        add_number(out, json_real_value(v));
      found = 0;
    } else if ((s = json_string_value(json_object_get(rec, "vs"))) != NULL) {
      set_text(out, (const uint8_t *)s, strlen(s));
      found = 0;
    }
  }
  json_decref(a);
  return found;
}

/* ---- SenML CBOR -----------------------------------------------------------
 * An array of maps whose keys are SenML's integer labels (bn -2, n 0, v 2,
 * vs 3, vb 4; others skipped) and whose values are scalars. Definite
 * lengths only (what RFC 8428's deterministic encoding uses); nothing
 * nested deeper than a record. */
#define CBOR_RECORDS_MAX 64
#define CBOR_PAIRS_MAX 32

struct cbor {
  const uint8_t *p;
  size_t len, i;
};

/* An item's head: major type and argument (a length, an integer, a float's
 * bits). 0, or -1 when short or indefinite. */
static int cb_head(struct cbor *c, int *major, uint64_t *arg, int *ai)
{
  uint8_t b;
  size_t n;

  if (c->i >= c->len)
    return -1;
  b = c->p[c->i++];
  *major = b >> 5;
  *ai = b & 31;
  if (*ai < 24) {
    *arg = (uint64_t)*ai;
    return 0;
  }
  if (*ai > 27)
    return -1;
  n = (size_t)1 << (*ai - 24);
  if (c->len - c->i < n)
    return -1;
  *arg = 0;
  for (size_t k = 0; k < n; k++)
    *arg = *arg << 8 | c->p[c->i++];
  return 0;
}

static double half_float(uint64_t h)
{
  int ex = (int)(h >> 10) & 0x1f;
  double m = (double)(h & 0x3ff), v;

  if (ex == 0)
    v = m / 16777216.0; /* m * 2^-24 */
  else if (ex == 31)
    v = m == 0 ? 1e308 * 10 : 0; /* infinity; NaN taken as 0 */
  else {
    v = (m + 1024.0);
    for (int k = ex - 25; k > 0; k--)
      v *= 2;
    for (int k = ex - 25; k < 0; k++)
      v /= 2;
  }
  return (h & 0x8000) ? -v : v;
}

/* One scalar value: kind 'i' (an integer or a float in *num), 's' (text at
 * *str, *slen bytes), 'b' (bytes), 't' (a boolean in *num), '?' (another
 * simple value). 0 or -1. */
static int cb_scalar(struct cbor *c, int *kind, double *num, const uint8_t **str, size_t *slen)
{
  int major, ai;
  uint64_t arg;

  if (cb_head(c, &major, &arg, &ai) < 0)
    return -1;
  switch (major) {
  case 0:
    *kind = 'i';
    *num = (double)arg;
    return 0;
  case 1:
    *kind = 'i';
    *num = -1.0 - (double)arg;
    return 0;
  case 2:
  case 3:
    if (arg > c->len - c->i)
      return -1;
    *kind = major == 3 ? 's' : 'b';
    *str = c->p + c->i;
    *slen = (size_t)arg;
    c->i += (size_t)arg;
    return 0;
  case 7:
    if (ai == 20 || ai == 21) {
      *kind = 't';
      *num = ai == 21;
    } else if (ai == 25) {
      *kind = 'i';
      *num = half_float(arg);
    } else if (ai == 26) {
      uint32_t u = (uint32_t)arg;
      float f;
      memcpy(&f, &u, sizeof(f));
      *kind = 'i';
      *num = f;
    } else if (ai == 27) {
      double d;
      memcpy(&d, &arg, sizeof(d));
      *kind = 'i';
      *num = d;
    } else {
      *kind = '?';
    }
    return 0;
  default: return -1; /* arrays, maps, tags: not a SenML value */
  }
}

static int cbor_find(const uint8_t *p, size_t len, uint16_t rid, struct lwm2m_value *out)
{
  struct cbor c = {p, len, 0};
  int major, ai, found = -1;
  uint64_t nrec;
  char bn[128] = "";

  if (cb_head(&c, &major, &nrec, &ai) < 0 || major != 4 || nrec > CBOR_RECORDS_MAX)
    return -1;
  for (uint64_t r = 0; r < nrec; r++) {
    uint64_t npairs;
    char n[128] = "";
    int has_n = 0, vkind = 0;
    double vnum = 0;
    const uint8_t *vstr = NULL;
    size_t vlen = 0;

    if (cb_head(&c, &major, &npairs, &ai) < 0 || major != 5 || npairs > CBOR_PAIRS_MAX)
      return -1;
    for (uint64_t k = 0; k < npairs; k++) {
      int kk, kind;
      double key, num = 0;
      const uint8_t *str = NULL;
      size_t sl = 0;
      if (cb_scalar(&c, &kk, &key, &str, &sl) < 0 || cb_scalar(&c, &kind, &num, &str, &sl) < 0)
        return -1;
      if (kk != 'i')
        continue; /* a text label: an extension, skipped */
      if (key == -2 && kind == 's') {
        snprintf(bn, sizeof(bn), "%.*s", (int)(sl < sizeof(bn) ? sl : sizeof(bn) - 1),
                 (const char *)str);
        /* SECURITY: a NUL inside the name ends it; names are only compared */
      } else if (key == 0 && kind == 's') {
        snprintf(n, sizeof(n), "%.*s", (int)(sl < sizeof(n) ? sl : sizeof(n) - 1),
                 (const char *)str);
        has_n = 1;
      } else if ((key == 2 && kind == 'i') || (key == 4 && kind == 't')) {
        vkind = 'i';
        vnum = num;
      } else if (key == 3 && kind == 's') {
        vkind = 's';
        vstr = str;
        vlen = sl;
      }
    }
    if (vkind == 0 || !name_is(bn, has_n ? n : NULL, rid))
      continue;
    if (vkind == 'i')
      add_number(out, vnum);
    else if (vkind == 's')
      set_text(out, vstr, vlen);
    found = 0;
  }
  return found;
}

/* ---- writing one string resource -------------------------------------- */

static size_t cb_text(uint8_t *o, const char *s, size_t n)
{
  size_t h;

  if (n < 24) {
    o[0] = (uint8_t)(0x60 | n);
    h = 1;
  } else if (n < 256) {
    o[0] = 0x78;
    o[1] = (uint8_t)n;
    h = 2;
  } else {
    o[0] = 0x79;
    o[1] = (uint8_t)(n >> 8);
    o[2] = (uint8_t)n;
    h = 3;
  }
  memcpy(o + h, s, n);
  return h + n;
}

int lwm2m_value_encode(int fmt, uint16_t obj, uint16_t inst, uint16_t res, const char *s,
                       uint8_t *out, size_t cap)
{
  size_t n = strlen(s), h = 0;
  char bn[24];

  snprintf(bn, sizeof(bn), "/%u/%u/%u", (unsigned)obj, (unsigned)inst, (unsigned)res);
  switch (fmt) {
  case LWM2M_FMT_TEXT:
    if (n > cap)
      return -1;
    memcpy(out, s, n);
    return (int)n;
  case LWM2M_FMT_TLV:
    /* one resource with its value (type 3), the length in 0..3 bytes */
    if (n > 0xFFFF || cap < n + 6)
      return -1;
    out[h++] = (uint8_t)(0xC0 | (res > 255 ? 0x20 : 0) | (n < 8 ? n : n < 256 ? 0x08 : 0x10));
    if (res > 255)
      out[h++] = (uint8_t)(res >> 8);
    out[h++] = (uint8_t)res;
    if (n >= 256)
      out[h++] = (uint8_t)(n >> 8);
    if (n >= 8)
      out[h++] = (uint8_t)n;
    memcpy(out + h, s, n);
    return (int)(h + n);
  case LWM2M_FMT_SENML_JSON: {
    json_t *a = json_pack("[{s:s,s:s}]", "bn", bn, "vs", s);
    char *t = a ? json_dumps(a, JSON_COMPACT) : NULL;
    int r = -1;
    if (t != NULL && strlen(t) <= cap) {
      r = (int)strlen(t);
      memcpy(out, t, (size_t)r);
    }
    free(t);
    json_decref(a);
    return r;
  }
  case LWM2M_FMT_SENML_CBOR:
    /* [{-2: bn, 3: vs}] */
    if (n > 0xFFFF || cap < n + strlen(bn) + 9)
      return -1;
    out[h++] = 0x81;
    out[h++] = 0xA2;
    out[h++] = 0x21;
    h += cb_text(out + h, bn, strlen(bn));
    out[h++] = 0x03;
    h += cb_text(out + h, s, n);
    return (int)h;
  default: return -1;
  }
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
  case LWM2M_FMT_SENML_CBOR: return cbor_find(p, len, rid, out);
  default: return -1;
  }
}
