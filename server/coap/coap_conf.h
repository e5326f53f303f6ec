/* coap_conf.h: the [coap] and [coaps] sections (coap_conf.c). */
#ifndef DFOTAD_COAP_CONF_H
#define DFOTAD_COAP_CONF_H

#include "../../net/front.h"
#include "coap_limits.h"

struct coap_conf {
  struct front_conf base;
  int anonymous_packages; /* serve /p/{id} without an offer's token */
  int max_report;         /* report payload bytes */
  int handshake_limit;    /* DTLS handshakes in progress ([coaps]) */
  struct tls_conf tls;    /* [coaps] */
};

extern const struct conf_section coap_conf_section, coaps_conf_section;

#endif
