/* fleet_api.h: the admin API's fleet endpoints (devices, rollouts, metrics). */
#ifndef DFOTAD_FLEET_API_H
#define DFOTAD_FLEET_API_H

#include <jansson.h>
#include <microhttpd.h>

#include "admin.h"

/* Whether url belongs to these endpoints. */
int fleet_api_handles(const char *url);
/* Answers the request; body: the parsed JSON body of a POST or PUT. */
enum MHD_Result fleet_api_dispatch(struct MHD_Connection *c, struct admin_ctx *f, const char *url,
                                   const char *method, json_t *body);
/* POST /api/v1/devices: body, its text (len bytes; NULL and 0 when none),
 * read by the fleet without a JSON tree when it can. */
enum MHD_Result fleet_api_bulk(struct MHD_Connection *c, struct admin_ctx *f, const char *body,
                               size_t len);

#endif
