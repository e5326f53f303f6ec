/* json.h: JSON responses of the admin API. */
#ifndef DFOTAD_JSON_H
#define DFOTAD_JSON_H

#include <jansson.h>
#include <microhttpd.h>

/* Queues v (consumed) as the body of a response with that status. */
enum MHD_Result json_reply(struct MHD_Connection *c, unsigned status, json_t *v);
/* text: a JSON document (with its newline) of len bytes, malloc'd: freed
 * here or by libmicrohttpd. */
enum MHD_Result json_text_reply(struct MHD_Connection *c, unsigned status, char *text, size_t len);
/* Queues {"error": {"code": code, "message": message}}. */
enum MHD_Result json_error(struct MHD_Connection *c, unsigned status, const char *code,
                           const char *message);

#endif
