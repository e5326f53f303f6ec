/* http_front.h: device downloads over HTTP and HTTPS. */
#ifndef DFOTAD_HTTP_FRONT_H
#define DFOTAD_HTTP_FRONT_H

#include <microhttpd.h>
#include <stddef.h>

#include "front.h"

enum MHD_Result http_front_handler(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **req_cls);
/* Settles the large responses still waiting for TCP to say how much of
 * them arrived (see http_front.c); force: all of them, now (at exit). */
void http_front_tick(int force);
void http_front_completed(struct front_ctx *f, struct MHD_Connection *c, void **req_cls,
                          enum MHD_RequestTerminationCode toe);

#endif
