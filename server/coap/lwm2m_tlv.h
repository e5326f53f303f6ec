/* lwm2m_tlv.h: the value of one resource in an LwM2M payload, by its
 * Content-Format: text/plain, OMA TLV (RFC-less, LwM2M 1.0 6.4.3), SenML
 * JSON (RFC 8428) and SenML CBOR (RFC 8428, 6); and a single string
 * resource written in each of them. Bounded, no I/O, no libcoap: fuzzed by
 * tests/fuzz/fuzz_lwm2m.c. */
#ifndef DFOTAD_LWM2M_TLV_H
#define DFOTAD_LWM2M_TLV_H

#include <stddef.h>
#include <stdint.h>

enum {
  LWM2M_FMT_TEXT = 0,
  LWM2M_FMT_OPAQUE = 42,
  LWM2M_FMT_SENML_JSON = 110,
  LWM2M_FMT_SENML_CBOR = 112,
  LWM2M_FMT_TLV_OLD = 1542, /* pre-registration numbers some 1.0 clients use */
  LWM2M_FMT_JSON_OLD = 1543,
  LWM2M_FMT_TLV = 11542,
  LWM2M_FMT_JSON = 11543
};

#define LWM2M_VALUE_MAX 255 /* text bytes kept of a value */
#define LWM2M_INTS_MAX 8    /* instances kept of a multiple resource */
#define LWM2M_PAYLOAD_MAX 1024

struct lwm2m_value {
  char text[LWM2M_VALUE_MAX + 1]; /* printable ASCII of a string value, "" else */
  int64_t ints[LWM2M_INTS_MAX];   /* integer values: one, or a multiple resource's */
  int n_ints;
};

/* The value of resource rid in payload p (fmt: its Content-Format, -1
 * when it had none: text). 0, or -1 when the format is unknown, the payload
 * is malformed or longer than LWM2M_PAYLOAD_MAX, or rid is not in it. */
int lwm2m_value_decode(int fmt, const uint8_t *p, size_t len, uint16_t rid,
                       struct lwm2m_value *out);

/* The string s as the value of resource /obj/inst/res in fmt (text, TLV,
 * SenML JSON or SenML CBOR), into out (cap bytes). Its length, or -1 when
 * fmt is none of those or it does not fit. */
int lwm2m_value_encode(int fmt, uint16_t obj, uint16_t inst, uint16_t res, const char *s,
                       uint8_t *out, size_t cap);

#endif
