/* bulk.c: the body of a bulk device call (POST /api/v1/devices) read
 * without a JSON tree, and its answer written as text.
 *
 * A bulk of 50,000 devices as a jansson tree is some 750,000 allocations
 * to build and as many to free, two fifths of the call's time at a
 * million devices. The usual body has one narrow shape: an array of
 * objects whose values are plain strings (printable ASCII, no escapes)
 * under the keys id, model, version, group and secret. bulk_parse reads
 * exactly that shape, in place; anything else (another key, another type,
 * an escape, a byte outside printable ASCII, a repeated key, malformed
 * JSON) makes it answer "not narrow" and the caller parses the body with
 * jansson as before, which gives the same answers and errors as ever.
 * Nothing is changed by a parse that fails. */
#include "autoconfig.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "fleet_int.h"

static const char *ws(const char *p, const char *end)
{
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
    p++;
  return p;
}

/* A string at p (its opening quote) made a C string in place; NULL when
 * it is not a plain one. *next: after its closing quote. */
static char *plain_string(char *p, const char *end, char **next)
{
  char *s;

  if (p >= end || *p != '"')
    return NULL;
  s = ++p;
  while (p < end && *p != '"') {
    unsigned char ch = (unsigned char)*p;
    if (ch < 0x20 || ch >= 0x7f || ch == '\\')
      return NULL;
    p++;
  }
  if (p >= end)
    return NULL;
  *p = '\0';
  *next = p + 1;
  return s;
}

static const char **field(struct bulk_item *it, const char *key)
{
  switch (key[0]) {
  case 'i': return strcmp(key, "id") == 0 ? &it->id : NULL;
  case 'm': return strcmp(key, "model") == 0 ? &it->model : NULL;
  case 'v': return strcmp(key, "version") == 0 ? &it->version : NULL;
  case 'g': return strcmp(key, "group") == 0 ? &it->group : NULL;
  case 's': return strcmp(key, "secret") == 0 ? &it->secret : NULL;
  default: return NULL;
  }
}

/* One object at p; 0 and *next past it, -1 when not narrow. */
static int object(char *p, const char *end, struct bulk_item *it, char **next)
{
  memset(it, 0, sizeof(*it));
  if (p >= end || *p != '{')
    return -1;
  p = (char *)ws(p + 1, end);
  if (p < end && *p == '}') {
    *next = p + 1;
    return 0;
  }
  for (;;) {
    char *key = plain_string(p, end, &p), *val;
    const char **slot;
    if (key == NULL || (slot = field(it, key)) == NULL || *slot != NULL)
      return -1; /* another key, or a repeated one: jansson judges it */
    p = (char *)ws(p, end);
    if (p >= end || *p != ':')
      return -1;
    p = (char *)ws(p + 1, end);
    if ((val = plain_string(p, end, &p)) == NULL)
      return -1;
    *slot = val;
    p = (char *)ws(p, end);
    if (p < end && *p == ',') {
      p = (char *)ws(p + 1, end);
      continue;
    }
    if (p < end && *p == '}') {
      *next = p + 1;
      return 0;
    }
    return -1;
  }
}

int bulk_parse(char *text, size_t len, struct bulk_item **items, size_t *n)
{
  const char *end = text + len;
  char *p = (char *)ws(text, end);
  size_t cap = 0, k = 0;
  struct bulk_item *v = NULL;

  *items = NULL;
  *n = 0;
  if (p >= end || *p != '[')
    return 1;
  /* an upper bound of the objects: every '{' (strings hold none that
   * matter: a bound is all this is) */
  for (const char *q = p; q < end; q++)
    cap += *q == '{';
  if (cap > BULK_MAX)
    return 1; /* jansson's path gives the error */
  v = malloc((cap + 1) * sizeof(*v));
  if (v == NULL)
    return -1;
  p = (char *)ws(p + 1, end);
  if (p < end && *p == ']') {
    p++;
  } else {
    for (;;) {
      if (k == cap || object(p, end, &v[k], &p) < 0)
        goto not_narrow;
      k++;
      p = (char *)ws(p, end);
      if (p < end && *p == ',') {
        p = (char *)ws(p + 1, end);
        continue;
      }
      if (p < end && *p == ']') {
        p++;
        break;
      }
      goto not_narrow;
    }
  }
  if (ws(p, end) != end)
    goto not_narrow;
  *items = v;
  *n = k;
  return 0;
not_narrow:
  free(v);
  return 1;
}

/* ---- the answer as text ---------------------------------------------- */

int tbuf_add(struct tbuf *b, const char *s, size_t n)
{
  if (b->failed)
    return -1;
  if (b->len + n + 1 > b->cap) {
    size_t nc = b->cap ? b->cap : 4096;
    char *nb;
    while (nc < b->len + n + 1)
      nc *= 2;
    /* not realloc: what is copied may hold secrets, and the old block
     * is cleansed before it is freed */
    nb = malloc(nc);
    if (nb == NULL) {
      b->failed = 1;
      return -1;
    }
    size_t len = b->len;
    if (len > 0)
      memcpy(nb, b->s, len);
    tbuf_free(b);
    b->s = nb;
    b->len = len;
    b->cap = nc;
  }
  memcpy(b->s + b->len, s, n);
  b->len += n;
  b->s[b->len] = '\0';
  return 0;
}

int tbuf_str(struct tbuf *b, const char *s) { return tbuf_add(b, s, strlen(s)); }

/* "key":"value" after a comma unless first; both plain (ids, base32, hex) */
int tbuf_pair(struct tbuf *b, const char *key, const char *value)
{
  if (b->len > 1)
    tbuf_add(b, ",", 1);
  tbuf_add(b, "\"", 1);
  tbuf_str(b, key);
  tbuf_add(b, "\":\"", 3);
  tbuf_str(b, value);
  return tbuf_add(b, "\"", 1);
}

void tbuf_free(struct tbuf *b)
{
  if (b->s != NULL) {
    OPENSSL_cleanse(b->s, b->cap);
    free(b->s);
  }
  b->s = NULL;
  b->len = b->cap = 0;
}
