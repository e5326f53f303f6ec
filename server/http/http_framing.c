/* http_framing.c: the checks every device request passes before anything
 * else looks at it (http_framing.h). */
#include "autoconfig.h"

#include "http_framing.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../util/limits.h"
#include "http_limits.h"

struct framing {
  int headers, content_length, transfer_encoding, host, range;
  const char *cl_value;
  const char *error;
};

/* Byte classes of header text, one table lookup a byte (every request
 * passes every header through them): TCHAR, RFC 9110's token characters
 * (ALPHA, DIGIT and !#$%&'*+-.^_`|~), which a field name is made of;
 * CTL, the control characters a field value must not hold (HTAB
 * allowed). */
enum { TCHAR = 1, CTL = 2 };
static unsigned char byte_class[256];
static pthread_once_t classes_once = PTHREAD_ONCE_INIT;

static void classes_init(void)
{
  static const char extra[] = "!#$%&'*+-.^_`|~";

  for (int c = 0; c < 256; c++) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c != 0 && strchr(extra, c) != NULL))
      byte_class[c] |= TCHAR;
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      byte_class[c] |= CTL;
  }
}

/* Whether any of the n bytes at s is CTL. Eight bytes at a time: "some
 * byte below 0x20" and "some byte equal to 0x7f" are exact word tests
 * (a byte of 0x80 or more never counts); a word that has one (a tab,
 * mostly) is looked at byte by byte from there. */
static int has_ctl(const unsigned char *s, size_t n)
{
  const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  size_t i = 0;

  for (; i + 8 <= n; i += 8) {
    uint64_t x, del;
    memcpy(&x, s + i, 8);
    del = x ^ (0x7f * ones);
    if ((((x - 0x20 * ones) & ~x) | ((del - ones) & ~del)) & highs)
      break;
  }
  for (; i < n; i++)
    if (byte_class[s[i]] & CTL)
      return 1;
  return 0;
}

/* key (n bytes of token characters) is lower, ignoring ASCII case: a
 * token character c has c | 0x20 equal to a lower-case letter or '-'
 * only when it is that letter in either case, or '-' */
static int name_is(const char *key, size_t n, const char *lower, size_t len)
{
  if (n != len)
    return 0;
  for (size_t i = 0; i < n; i++)
    if ((key[i] | 0x20) != lower[i])
      return 0;
  return 1;
}

static enum MHD_Result framing_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                   size_t key_size, const char *value, size_t value_size)
{
  struct framing *fr = cls;

  (void)kind;
  if (value == NULL) {
    value = "";
    value_size = 0;
  }
  if (++fr->headers > MAX_REQUEST_HEADERS) {
    fr->error = "too many header fields";
    return MHD_NO;
  }
  if (key_size == 0) {
    fr->error = "empty header field name";
    return MHD_NO;
  }
  /* SECURITY: a name with blanks ("Range : ...", a tab, a folded line)
   * would hide a header from us that another parser sees: refuse it (a
   * NUL too: the name is checked to its full length, not to a NUL) */
  for (size_t i = 0; i < key_size; i++)
    if (!(byte_class[(unsigned char)key[i]] & TCHAR)) {
      fr->error = "malformed header field name (blank before the colon, or a folded line?)";
      return MHD_NO;
    }
  if (has_ctl((const unsigned char *)value, value_size)) {
    fr->error = "control character in a header field value";
    return MHD_NO;
  }
  /* the names that matter, by their length before comparing */
  if (name_is(key, key_size, "range", 5)) {
    fr->range++;
  } else if (name_is(key, key_size, "host", 4)) {
    fr->host++;
  } else if (name_is(key, key_size, "content-length", 14)) {
    if (fr->content_length++ > 0 && strcmp(fr->cl_value, value) != 0) {
      fr->error = "conflicting Content-Length fields";
      return MHD_NO;
    }
    fr->cl_value = value;
  } else if (name_is(key, key_size, "transfer-encoding", 17)) {
    fr->transfer_encoding++;
    if (strcasecmp(value, "chunked") != 0) {
      fr->error = "unsupported Transfer-Encoding";
      return MHD_NO;
    }
  }
  return MHD_YES;
}

/* SECURITY: request smuggling and hidden headers: what libmicrohttpd lets
 * through that another parser (a proxy in front of us) could read another
 * way is refused before anything else. NULL when the framing is sound. */
const char *http_framing_error(struct MHD_Connection *c, const char *version, int *ranges)
{
  struct framing fr = {0};

  pthread_once(&classes_once, classes_init);
  MHD_get_connection_values_n(c, MHD_HEADER_KIND, framing_one, &fr);
  *ranges = fr.range;
  if (fr.error != NULL)
    return fr.error;
  if (fr.content_length > 0 && fr.transfer_encoding > 0)
    return "both Content-Length and Transfer-Encoding";
  if (fr.transfer_encoding > 1)
    return "several Transfer-Encoding fields";
  if (fr.host != 1 && strcmp(version, MHD_HTTP_VERSION_1_1) == 0)
    return fr.host == 0 ? "HTTP/1.1 needs a Host field" : "several Host fields";
  return NULL;
}

int http_body_over(struct MHD_Connection *c, unsigned long max)
{
  const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

  return cl != NULL && (strlen(cl) > 12 || strtoul(cl, NULL, 10) > max);
}
