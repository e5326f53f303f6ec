/* coap_msg.h: what the CoAP front reads from a request, parsed in one
 * place with every input bounded: the route (Uri-Path), the query
 * (Uri-Query), Block2 (RFC 7959) and the formats. Also the Block2
 * arithmetic of a download. No libcoap state and no I/O: the fuzz target
 * (tests/fuzz/fuzz_coap.c) drives exactly this code. */
#ifndef DFOTAD_COAP_MSG_H
#define DFOTAD_COAP_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "../../fleet/delivery.h"
#include "../../util/limits.h"
#include "coap_limits.h"

/* CoAP option numbers we read or write (RFC 7252, 7959, 8516) */
enum {
  COAPOPT_ETAG = 4,
  COAPOPT_URI_PATH = 11,
  COAPOPT_CONTENT_FORMAT = 12,
  COAPOPT_MAX_AGE = 14,
  COAPOPT_URI_QUERY = 15,
  COAPOPT_ACCEPT = 17,
  COAPOPT_BLOCK2 = 23,
  COAPOPT_BLOCK1 = 27,
  COAPOPT_SIZE2 = 28,
  COAPOPT_SIZE1 = 60
};

enum { COAP_FMT_TEXT = 0, COAP_FMT_OCTETS = 42, COAP_FMT_JSON = 50 };

/* One option as it came off the wire. */
struct coap_optv {
  uint16_t number;
  const uint8_t *value;
  size_t len;
};

enum coap_route {
  ROUTE_NONE = 0, /* nothing of ours: 4.04 */
  ROUTE_OFFER,    /* /f/{token} */
  ROUTE_PACKAGE,  /* /p/{id}[/{name}] */
  ROUTE_CHECKIN,  /* /v1/update */
  ROUTE_REPORT    /* /v1/report */
};

#define COAP_NAME_MAX 64 /* a token or a package id in the path */

struct coap_req {
  enum coap_route route;
  char name[COAP_NAME_MAX + 1];
  /* query */
  char device[DEVICE_ID_MAX + 1];
  char version[PKG_FIELD_MAX + 1];
  char transport[8];
  int has_device, has_version, has_transport;
  /* Block2 as asked */
  int has_block2;
  uint32_t num;
  int szx;            /* 0..7 as sent; 7 is refused */
  int accept;         /* -1: none */
  int content_format; /* -1: none */
  int has_block1;
  /* set when the request is malformed: the answer is 4.00 or 4.02 */
  int bad_code; /* 0, 400 or 402 */
  const char *why;
};

/* Reads opts[0..n) (in wire order). Always fills out; out->bad_code says
 * whether the request can be served. */
void coap_req_parse(const struct coap_optv *opts, size_t n, struct coap_req *out);

/* The Block2 answer for block num of size 16 << szx of a body of size
 * bytes, when at most room payload bytes fit in the response. */
struct coap_block {
  uint64_t off;
  size_t len;
  uint32_t num; /* may differ from the request's when szx had to shrink */
  int szx;
  int more;
};

enum coap_plan { PLAN_OK = 0, PLAN_BAD_SZX, PLAN_PAST_END, PLAN_NO_ROOM };

/* PLAN_OK with out filled, or why not. A smaller size than asked is only
 * used when the asked one cannot fit in room (RFC 7959 2.4 lets the server
 * choose a smaller block; the offset stays the one asked for). */
enum coap_plan coap_block_plan(uint32_t num, int szx, uint64_t size, size_t room,
                               struct coap_block *out);

/* Encodes a Block2 value (NUM, M, SZX) into out[3]; returns its length (0-3). */
size_t coap_block_encode(uint32_t num, int more, int szx, uint8_t out[3]);
/* Encodes an unsigned integer option value into out[8]; returns its length. */
size_t coap_uint_encode(uint64_t v, uint8_t out[8]);
/* Decodes an unsigned option value of at most 4 bytes; -1 when longer. */
int64_t coap_uint_decode(const uint8_t *v, size_t len);

#endif
