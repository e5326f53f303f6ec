/* admin.h: the JSON admin API (control plane). */
#ifndef DFOTAD_ADMIN_H
#define DFOTAD_ADMIN_H

#include <microhttpd.h>
#include <stddef.h>

#include "../server/front.h"

enum MHD_Result admin_handler(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls);
void admin_completed(struct front_ctx *f, struct MHD_Connection *c, void **req_cls,
                     enum MHD_RequestTerminationCode toe);

#endif
