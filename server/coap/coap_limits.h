/* coap_limits.h: the CoAP(S) front's limits and defaults. */
#ifndef DFOTAD_COAP_LIMITS_H
#define DFOTAD_COAP_LIMITS_H

#define DEF_COAP_LISTEN "127.0.0.1:5683"
#define DEF_COAP_HANDSHAKES                                                                        \
  1000 /* DTLS handshakes in progress (libcoap counts half-open ones for 30 s) */
#define DEF_COAP_REPORT_MAX 1024 /* bytes of a report's payload (one datagram, no Block1) */
#define MAX_COAP_REPORT 1024
#define MAX_COAP_HANDSHAKES 10000
#define DEF_LWM2M_REGISTRATIONS "20000" /* LwM2M registrations held per listener */
#define MAX_LWM2M_REGISTRATIONS 1000000
#define MAX_LWM2M_LIFETIME 31536000    /* a year */
#define COAP_XFER_MAX 65536            /* downloads tracked at once, per front */
#define COAP_XFER_IDLE_MS (600 * 1000) /* a download idle this long is forgotten */
#define COAP_RESUME_PAUSE_MS 2000      /* a step back after this pause is a resume */
#define COAP_DUP_WINDOW_MS 247000      /* EXCHANGE_LIFETIME (RFC 7252): message ids remembered */
#define COAP_DUP_SLOTS 4               /* message ids remembered per download */
#define COAP_PATH_SEGMENTS 4           /* Uri-Path options we look at */
#define COAP_QUERY_OPTIONS 8           /* Uri-Query options we look at */
#define COAP_AMPLIFICATION 3           /* an error's diagnostic text: at most 3x the request */

#endif
