/* proto.c: protocol names. */
#include "autoconfig.h"

#include "proto.h"

#include <string.h>

static const char *const names[PROTO_COUNT] = {"http", "https", "coap", "coaps", "ftp", "ftps"};

const char *proto_name(enum proto p) { return (unsigned)p < PROTO_COUNT ? names[p] : "?"; }

int proto_parse(const char *name, enum proto *out)
{
  for (int i = 0; i < PROTO_COUNT; i++)
    if (strcmp(name, names[i]) == 0) {
      *out = (enum proto)i;
      return 0;
    }
  return -1;
}

int proto_secure(enum proto p) { return p == PROTO_HTTPS || p == PROTO_COAPS || p == PROTO_FTPS; }
