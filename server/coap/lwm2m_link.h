/* lwm2m_link.h: what an LwM2M registration carries, parsed with every
 * input bounded and nothing else: the query of POST /rd (ep, lt, lwm2m, b)
 * and the link-format payload (RFC 6690) listing the client's objects.
 * No libcoap and no I/O: tests/fuzz/fuzz_lwm2m.c drives exactly this code,
 * and so do the payload decoders (lwm2m_tlv.h). */
#ifndef DFOTAD_LWM2M_LINK_H
#define DFOTAD_LWM2M_LINK_H

#include <stddef.h>
#include <stdint.h>

#define LWM2M_EP_MAX 64     /* endpoint name bytes */
#define LWM2M_LINK_MAX 2048 /* link-format payload bytes (one datagram, no Block1) */
#define LWM2M_OBJ_MAX 64    /* object instances kept from a registration */

/* The query of a Register or Update. */
struct lwm2m_query {
  char ep[LWM2M_EP_MAX + 1];
  char ver[8];     /* "1.0", "1.1", "1.2"; "" when not sent */
  char binding[8]; /* "U", "UQ", "S"...; "" when not sent */
  long lt;         /* -1: not sent */
  int queue;       /* b=UQ (1.0) or Q (1.1+) */
  int has_ep, has_b;
};

/* Starts a query: nothing sent. */
void lwm2m_query_init(struct lwm2m_query *q);
/* Adds one Uri-Query option (key=value). 0, or -1 with *why set: a bad
 * value, a repeated key or an over-long one. Unknown keys (sms, Q, ...)
 * are accepted and ignored. */
int lwm2m_query_add(struct lwm2m_query *q, const uint8_t *v, size_t len, const char **why);

struct lwm2m_obj {
  uint16_t obj;
  int32_t inst; /* -1: the object without an instance */
  char ver[8];  /* the object's ver= attribute, "" none */
};

struct lwm2m_links {
  struct lwm2m_obj o[LWM2M_OBJ_MAX];
  int n;
};

/* Parses a link-format payload of at most LWM2M_LINK_MAX bytes into out.
 * Links that are not /O or /O/I (an alternate root's "</>;rt=...", for
 * one) are skipped. 0, or -1 with *why set when it is malformed, too long
 * or lists more than LWM2M_OBJ_MAX instances. */
int lwm2m_links_parse(const char *p, size_t len, struct lwm2m_links *out, const char **why);
/* "</1/0>,</3/0>,</5/0>" of out, cut at len bytes. */
void lwm2m_links_text(const struct lwm2m_links *l, char *out, size_t len);
/* Whether out lists object obj (any instance). */
int lwm2m_links_has(const struct lwm2m_links *l, uint16_t obj);

#endif
