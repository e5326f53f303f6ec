/* json.h: JSON responses of the admin API. */
#ifndef DFOTAD_JSON_H
#define DFOTAD_JSON_H

#include <jansson.h>
#include <microhttpd.h>
#include <stddef.h>

/* Queues v (consumed) as the body of a response with that status. */
enum MHD_Result json_reply(struct MHD_Connection *c, unsigned status, json_t *v);
/* text: a JSON document (with its newline) of len bytes, malloc'd: freed
 * here or by libmicrohttpd. */
enum MHD_Result json_text_reply(struct MHD_Connection *c, unsigned status, char *text, size_t len);
/* Queues {"error": {"code": code, "message": message}}. */
enum MHD_Result json_error(struct MHD_Connection *c, unsigned status, const char *code,
                           const char *message);
/* The same with a Retry-After of retry_after seconds (a 503's, a 429's). */
enum MHD_Result json_error_retry(struct MHD_Connection *c, unsigned status, const char *code,
                                 const char *message, int retry_after);

/* Checks the query's parameters against `known` (NULL-terminated, at most
 * 16): each known one at most once and not empty, no other. 0, or -1 with
 * msg set (naming the parameter and those allowed): a typo in a filter's
 * name must be a 400, not a filter quietly left out. */
int json_query_check(struct MHD_Connection *c, const char *const *known, char *msg, size_t len);
/* The same, answering the 400 itself: MHD_YES/MHD_NO from json_error, or
 * -1 when the query is fine (the caller goes on). */
int json_query_refuse(struct MHD_Connection *c, const char *const *known);

/* A query parameter's value; NULL when absent or empty. */
const char *json_arg(struct MHD_Connection *c, const char *name);
/* A whole number parameter within [min, max], def when absent; -1 with *ok
 * cleared when malformed. */
long long json_num_arg(struct MHD_Connection *c, const char *name, long long min, long long max,
                       long long def, int *ok);

#endif
