/* proto.h: the protocols a device can download over. The delivery core
 * keys its accounting by them; each names a front (a config section). */
#ifndef DFOTAD_PROTO_H
#define DFOTAD_PROTO_H

enum proto {
  PROTO_HTTP = 0,
  PROTO_HTTPS,
  PROTO_COAP,
  PROTO_COAPS,
  PROTO_FTP,
  PROTO_FTPS,
  PROTO_COUNT
};

/* "http", "https", "coap", "coaps", "ftp", "ftps"; "?" out of range. */
const char *proto_name(enum proto p);
/* 0 with *out set, or -1 for an unknown name. */
int proto_parse(const char *name, enum proto *out);
/* Whether the protocol runs over TLS or DTLS. */
int proto_secure(enum proto p);

#endif
