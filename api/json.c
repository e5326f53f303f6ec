/* json.c: JSON responses, always with Content-Length and a JSON type. */
#include "autoconfig.h"

#include "json.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum MHD_Result queue(struct MHD_Connection *c, unsigned status, char *text, size_t len,
                             int retry_after)
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
  if (retry_after > 0) {
    char ra[16];
    snprintf(ra, sizeof(ra), "%d", retry_after);
    MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
  }
  ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

enum MHD_Result json_text_reply(struct MHD_Connection *c, unsigned status, char *text, size_t len)
{
  return queue(c, status, text, len, 0);
}

/* v (consumed) as text with a newline; NULL when out of memory. */
static char *dump(json_t *v, size_t *len)
{
  char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;

  json_decref(v);
  if (text == NULL)
    return NULL;
  *len = strlen(text);
  {
    char *nt = realloc(text, *len + 2);
    if (nt == NULL) {
      free(text);
      return NULL;
    }
    text = nt;
  }
  text[(*len)++] = '\n';
  text[*len] = '\0';
  return text;
}

enum MHD_Result json_reply(struct MHD_Connection *c, unsigned status, json_t *v)
{
  size_t len = 0;
  char *text = dump(v, &len);

  return text == NULL ? MHD_NO : queue(c, status, text, len, 0);
}

enum MHD_Result json_error(struct MHD_Connection *c, unsigned status, const char *code,
                           const char *message)
{
  return json_error_retry(c, status, code, message, 0);
}

enum MHD_Result json_error_retry(struct MHD_Connection *c, unsigned status, const char *code,
                                 const char *message, int retry_after)
{
  size_t len = 0;
  char *text = dump(json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message), &len);

  return text == NULL ? MHD_NO : queue(c, status, text, len, retry_after);
}

struct query_check {
  const char *const *known;
  unsigned seen;
  char *msg;
  size_t len;
};

static void known_list(const char *const *known, char *out, size_t len)
{
  size_t n = 0;

  out[0] = '\0';
  for (int i = 0; known[i] != NULL && n < len; i++)
    n += (size_t)snprintf(out + n, len - n, "%s%s", i ? ", " : "", known[i]);
}

static enum MHD_Result query_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
  struct query_check *q = cls;
  char names[160];
  int i;

  (void)kind;
  if (key[0] == '\0' && (value == NULL || value[0] == '\0'))
    return MHD_YES; /* "?&limit=1", "a=1&&b=2": an empty piece names nothing */
  for (i = 0; q->known[i] != NULL && i < 16; i++)
    if (strcmp(key, q->known[i]) == 0)
      break;
  if (q->known[i] == NULL || i == 16) {
    known_list(q->known, names, sizeof(names));
    if (names[0] == '\0')
      snprintf(q->msg, q->len, "unknown parameter '%.40s' (this endpoint takes none)", key);
    else
      snprintf(q->msg, q->len, "unknown parameter '%.40s' (%s)", key, names);
  } else if (q->seen & (1u << i)) {
    snprintf(q->msg, q->len, "parameter '%s' given twice", q->known[i]);
  } else if (value == NULL || value[0] == '\0') {
    snprintf(q->msg, q->len, "parameter '%s' is empty", q->known[i]);
  } else {
    q->seen |= 1u << i;
    return MHD_YES;
  }
  return MHD_NO;
}

int json_query_check(struct MHD_Connection *c, const char *const *known, char *msg, size_t len)
{
  struct query_check q = {known, 0, msg, len};

  msg[0] = '\0';
  MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, query_one, &q);
  return msg[0] == '\0' ? 0 : -1;
}

int json_query_refuse(struct MHD_Connection *c, const char *const *known)
{
  char msg[256];

  if (json_query_check(c, known, msg, sizeof(msg)) == 0)
    return -1;
  return (int)json_error(c, MHD_HTTP_BAD_REQUEST, "bad_request", msg);
}

const char *json_arg(struct MHD_Connection *c, const char *name)
{
  const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
  return v != NULL && v[0] != '\0' ? v : NULL;
}

long long json_num_arg(struct MHD_Connection *c, const char *name, long long min, long long max,
                       long long def, int *ok)
{
  const char *v = json_arg(c, name);
  char *end;
  long long n;

  if (v == NULL)
    return def;
  /* digits, a minus at most: strtoll would also take " 5" and "+5" */
  if (!isdigit((unsigned char)v[v[0] == '-'])) {
    *ok = 0;
    return -1;
  }
  errno = 0;
  n = strtoll(v, &end, 10);
  if (errno != 0 || *end != '\0' || end == v || n < min || n > max) {
    *ok = 0;
    return -1;
  }
  return n;
}
