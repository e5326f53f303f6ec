/* admin.h: the JSON admin API (control plane), served by libmicrohttpd on
 * the [admin] addresses. */
#ifndef DFOTAD_ADMIN_H
#define DFOTAD_ADMIN_H

#include <microhttpd.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/limits.h"
#include "events.h"

#define ADMIN_BODY_MAX (32 * 1024 * 1024) /* JSON bodies: a bulk import of 100k devices */

struct store;
struct fleet;

/* What the admin handlers are given: copies of the settings they need,
 * taken when the listener started, so that a reload never changes them
 * under a request in flight. */
struct admin_ctx {
  struct store *store;
  struct fleet *fleet;
  char token[MAX_TOKEN_LEN + 1];
  uint64_t max_upload_size;
  atomic_int inflight;        /* requests with a body in progress */
  const atomic_int *draining; /* replaced by a reload: ask clients to close */
  struct sse_hub sse;         /* the event streams */
};

enum MHD_Result admin_handler(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls);
/* For MHD_OPTION_NOTIFY_COMPLETED; cls: the admin_ctx. */
void admin_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                     enum MHD_RequestTerminationCode toe);

#endif
