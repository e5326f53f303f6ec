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
  /* the LwM2M server (server/coap/lwm2m_*.c) */
  int lwm2m;               /* registration interface on this listener */
  int lwm2m_insecure;      /* [coap]: registrations over plain CoAP allowed */
  int lwm2m_registrations; /* registrations held at once */
  int lwm2m_lifetime_min;  /* seconds a registration may ask, at least */
  int lwm2m_lifetime_max;  /* ... at most */
  int lwm2m_queue_awake;   /* seconds a queue-mode device listens after it spoke */
  int lwm2m_poll;          /* seconds between two offer checks of a registered device */
};

extern const struct conf_section coap_conf_section, coaps_conf_section;

#endif
