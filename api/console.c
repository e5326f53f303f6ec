/* console.c: serves the built-in console and the OpenAPI document. The
 * policy allows scripts, styles and requests from this origin only: no
 * inline script or style, no other site, no framing. */
#include "autoconfig.h"

#include "console.h"

#include <microhttpd.h>
#include <string.h>

#include "json.h"

#define CSP                                                                                        \
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "                \
  "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const struct console_asset *console_find(const char *url)
{
  for (const struct console_asset *a = console_assets; a->url != NULL; a++)
    if (strcmp(a->url, url) == 0)
      return a;
  return NULL;
}

int console_reply(struct MHD_Connection *c, const struct console_asset *a, const char *method)
{
  struct MHD_Response *r;
  enum MHD_Result ret;

  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
    return json_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", "use GET");
  r = MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
  if (r == NULL)
    return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, a->type);
  MHD_add_response_header(r, "Content-Security-Policy", CSP);
  MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
  MHD_add_response_header(r, "X-Frame-Options", "DENY");
  /* a new daemon brings new assets: ask again each time (they are small) */
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
  ret = MHD_queue_response(c, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}
