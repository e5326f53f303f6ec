/* http_framing.h: strict HTTP framing for the device listeners. What
 * libmicrohttpd 0.9.75 lets through and another parser (a proxy in front
 * of us) could read differently is refused: conflicting Content-Length,
 * Content-Length with Transfer-Encoding, codings other than chunked, a
 * missing Host on HTTP/1.1, control characters in values, blanks before a
 * colon or folded lines (which would hide a Range header). */
#ifndef DFOTAD_HTTP_FRAMING_H
#define DFOTAD_HTTP_FRAMING_H

#include <microhttpd.h>

/* NULL when the request's framing is sound, else what is wrong. *ranges:
 * the number of Range fields (counted on the way). */
const char *http_framing_error(struct MHD_Connection *c, const char *version, int *ranges);
/* Whether the declared body length is over max. */
int http_body_over(struct MHD_Connection *c, unsigned long max);

#endif
