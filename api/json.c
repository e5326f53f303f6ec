/* json.c: JSON responses, always with Content-Length and a JSON type. */
#include "autoconfig.h"

#include "json.h"

#include <stdlib.h>
#include <string.h>

enum MHD_Result json_text_reply(struct MHD_Connection *c, unsigned status, char *text, size_t len)
{
  struct MHD_Response *r;
  enum MHD_Result ret;

  r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
  if (r == NULL) {
    free(text);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  if (status == MHD_HTTP_UNAUTHORIZED)
    MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
  ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

enum MHD_Result json_reply(struct MHD_Connection *c, unsigned status, json_t *v)
{
  char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
  size_t len;

  json_decref(v);
  if (text == NULL)
    return MHD_NO;
  len = strlen(text);
  {
    char *nt = realloc(text, len + 2);
    if (nt == NULL) {
      free(text);
      return MHD_NO;
    }
    text = nt;
  }
  text[len++] = '\n';
  text[len] = '\0';
  return json_text_reply(c, status, text, len);
}

enum MHD_Result json_error(struct MHD_Connection *c, unsigned status, const char *code,
                           const char *message)
{
  return json_reply(c, status,
                    json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message));
}
