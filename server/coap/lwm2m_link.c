/* lwm2m_link.c: the registration's query and link-format payload (see
 * lwm2m_link.h). */
#include "autoconfig.h"

#include "lwm2m_link.h"

#include <stdio.h>
#include <string.h>

void lwm2m_query_init(struct lwm2m_query *q)
{
  memset(q, 0, sizeof(*q));
  q->lt = -1;
}

/* Copies v[0..len) into out when it is 1..outlen-1 bytes of allowed. */
static int copy_token(char *out, size_t outlen, const uint8_t *v, size_t len, const char *allowed)
{
  if (len == 0 || len >= outlen)
    return -1;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = v[i];
    if (allowed != NULL ? strchr(allowed, c) == NULL || c == '\0' : (c < 0x21 || c > 0x7e))
      return -1;
    out[i] = (char)c;
  }
  out[len] = '\0';
  return 0;
}

int lwm2m_query_add(struct lwm2m_query *q, const uint8_t *v, size_t len, const char **why)
{
  const uint8_t *eq = memchr(v, '=', len);
  size_t klen = eq ? (size_t)(eq - v) : len, vlen = eq ? len - klen - 1 : 0;
  const uint8_t *val = eq ? eq + 1 : v + len;

  if (klen == 2 && memcmp(v, "ep", 2) == 0) {
    /* SECURITY: the name is looked up, logged and shown: printable ASCII,
     * no spaces, bounded */
    if (q->has_ep || copy_token(q->ep, sizeof(q->ep), val, vlen, NULL) < 0) {
      *why = "ep must be 1 to 64 printable characters";
      return -1;
    }
    q->has_ep = 1;
  } else if (klen == 2 && memcmp(v, "lt", 2) == 0) {
    long lt = 0;
    if (q->lt >= 0 || vlen == 0 || vlen > 9) {
      *why = "lt must be a number of seconds";
      return -1;
    }
    for (size_t i = 0; i < vlen; i++) {
      if (val[i] < '0' || val[i] > '9') {
        *why = "lt must be a number of seconds";
        return -1;
      }
      lt = lt * 10 + (val[i] - '0');
    }
    q->lt = lt;
  } else if (klen == 5 && memcmp(v, "lwm2m", 5) == 0) {
    if (q->ver[0] != '\0' || copy_token(q->ver, sizeof(q->ver), val, vlen, "0123456789.") < 0) {
      *why = "lwm2m must be a version such as 1.1";
      return -1;
    }
  } else if (klen == 1 && v[0] == 'b') {
    if (q->has_b || copy_token(q->binding, sizeof(q->binding), val, vlen, "UQSNT") < 0) {
      *why = "b must be a binding such as U or UQ";
      return -1;
    }
    q->has_b = 1;
    q->queue = strchr(q->binding, 'Q') != NULL;
  } else if (klen == 1 && v[0] == 'Q' && vlen == 0) {
    q->queue = 1; /* LwM2M 1.1+: queue mode is its own parameter */
  }
  return 0;
}

/* One link's target, "/O" or "/O/I": 0 with obj and inst, -1 when it is
 * something else (skipped). */
static int target_of(const char *p, size_t len, uint16_t *obj, int32_t *inst)
{
  long v[2] = {-1, -1};
  int k = -1;

  for (size_t i = 0; i < len; i++) {
    if (p[i] == '/') {
      if (++k > 1)
        return -1;
      v[k] = -1;
    } else if (p[i] >= '0' && p[i] <= '9' && k >= 0) {
      v[k] = (v[k] < 0 ? 0 : v[k]) * 10 + (p[i] - '0');
      if (v[k] > 65535)
        return -1;
    } else {
      return -1;
    }
  }
  if (k < 0 || v[0] < 0 || (k == 1 && v[1] < 0))
    return -1;
  *obj = (uint16_t)v[0];
  *inst = k == 1 ? (int32_t)v[1] : -1;
  return 0;
}

int lwm2m_links_parse(const char *p, size_t len, struct lwm2m_links *out, const char **why)
{
  size_t i = 0;

  memset(out, 0, sizeof(*out));
  if (len > LWM2M_LINK_MAX) {
    *why = "link-format payload too long";
    return -1;
  }
  while (i < len) {
    size_t start, end;
    struct lwm2m_obj o;
    int keep;

    while (i < len && (p[i] == ' ' || p[i] == '\r' || p[i] == '\n' || p[i] == '\t'))
      i++;
    if (i == len)
      break;
    if (p[i] != '<') {
      *why = "a link must start with <";
      return -1;
    }
    start = ++i;
    while (i < len && p[i] != '>' && p[i] != '<' && p[i] != ',')
      i++;
    if (i == len || p[i] != '>') {
      *why = "a link's target must end with >";
      return -1;
    }
    end = i++;
    memset(&o, 0, sizeof(o));
    keep = target_of(p + start, end - start, &o.obj, &o.inst) == 0;
    /* parameters: ;name[=value], value a token or a quoted string */
    while (i < len && p[i] == ';') {
      size_t ns = ++i, ne, vs = 0, ve = 0;
      while (i < len && p[i] != '=' && p[i] != ';' && p[i] != ',')
        i++;
      ne = i;
      if (ne == ns) {
        *why = "an empty link parameter";
        return -1;
      }
      if (i < len && p[i] == '=') {
        i++;
        if (i < len && p[i] == '"') {
          vs = ++i;
          while (i < len && p[i] != '"')
            i++;
          if (i == len) {
            *why = "an unterminated quoted string";
            return -1;
          }
          ve = i++;
        } else {
          vs = i;
          while (i < len && p[i] != ';' && p[i] != ',')
            i++;
          ve = i;
        }
      }
      if (ne - ns == 3 && memcmp(p + ns, "ver", 3) == 0 && ve > vs && ve - vs < sizeof(o.ver)) {
        memcpy(o.ver, p + vs, ve - vs);
        o.ver[ve - vs] = '\0';
      }
    }
    if (i < len && p[i] != ',') {
      *why = "links must be separated by commas";
      return -1;
    }
    if (i < len)
      i++;
    if (keep) {
      if (out->n == LWM2M_OBJ_MAX) {
        *why = "too many object instances";
        return -1;
      }
      out->o[out->n++] = o;
    }
  }
  return 0;
}

void lwm2m_links_text(const struct lwm2m_links *l, char *out, size_t len)
{
  size_t n = 0;

  if (len == 0)
    return;
  out[0] = '\0';
  for (int i = 0; i < l->n && n + 1 < len; i++) {
    int w;
    if (l->o[i].inst >= 0)
      w = snprintf(out + n, len - n, "%s</%u/%ld>", i ? "," : "", (unsigned)l->o[i].obj,
                   (long)l->o[i].inst);
    else
      w = snprintf(out + n, len - n, "%s</%u>", i ? "," : "", (unsigned)l->o[i].obj);
    if (w < 0 || (size_t)w >= len - n) {
      out[n] = '\0';
      break;
    }
    n += (size_t)w;
  }
}

int lwm2m_links_has(const struct lwm2m_links *l, uint16_t obj)
{
  for (int i = 0; i < l->n; i++)
    if (l->o[i].obj == obj)
      return 1;
  return 0;
}
