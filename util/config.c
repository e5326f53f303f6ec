/* config.c: the configuration machinery (config.h): sections declared
 * elsewhere as tables of rows (section, name, type, where it goes,
 * default, bounds, reload class); the file parser, the --set overrides and
 * the embedded defaults all go through the same setters, so a value is
 * checked the same way wherever it comes from. It knows no section. */
#include "autoconfig.h"

#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

void config_errors_add(struct config_errors *errs, const char *fmt, ...)
{
  va_list ap;
  char buf[1024];

  if (errs->n >= CONF_MAX_ERRORS) {
    errs->dropped++;
    return;
  }
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  errs->msg[errs->n] = strdup(buf);
  if (errs->msg[errs->n] != NULL)
    errs->n++;
}

void config_errors_clear(struct config_errors *errs)
{
  for (int i = 0; i < errs->n; i++)
    free(errs->msg[i]);
  errs->n = 0;
  errs->dropped = 0;
}

static char *trim(char *s)
{
  char *e;

  while (isspace((unsigned char)*s))
    s++;
  e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1]))
    *--e = '\0';
  return s;
}

int config_set_string(char **slot, const char *v)
{
  char *n = strdup(v);

  if (n == NULL)
    return -1;
  free(*slot);
  *slot = n;
  return 0;
}

/* Splits v on blanks into at most max words; the words point into v. */
int config_split_words(char *v, char **words, int max)
{
  int n = 0;
  char *save = NULL;

  for (char *w = strtok_r(v, " \t", &save); w != NULL; w = strtok_r(NULL, " \t", &save)) {
    if (n == max)
      return -1;
    words[n++] = w;
  }
  return n;
}

/* Applies value to the option. replace: a --set or the default (a list is
 * replaced), otherwise a file line (the first line replaces the default,
 * later lines add). Returns NULL or an error message. */
static const char *option_set(void *base, const struct conf_section *sec, const struct conf_row *o,
                              const char *value, int replace, char *msg, size_t msglen)
{
  char *slot = (char *)base + o->offset;
  char buf[CONF_MAX_LINE];

  snprintf(buf, sizeof(buf), "%s", value);
  switch (o->type) {
  case T_STRING:
  case T_PATH:
    if (o->type == T_PATH && buf[0] == '\0')
      return "a value is required";
    if (config_set_string((char **)slot, buf) < 0)
      return "out of memory";
    return NULL;
  case T_URL: {
    char scheme[16];
    const char *p;
    if (buf[0] == '\0') {
      config_set_string((char **)slot, "");
      return NULL;
    }
    snprintf(scheme, sizeof(scheme), "%s://", sec->name);
    if (strncmp(buf, scheme, strlen(scheme)) != 0) {
      snprintf(msg, msglen, "must start with %s", scheme);
      return msg;
    }
    p = buf + strlen(scheme);
    /* modules need an explicit port, and short URLs */
    const char *slash = strchr(p, '/');
    const char *colon = strrchr(p, ':');
    if (colon == NULL || (slash != NULL && colon > slash) || !isdigit((unsigned char)colon[1]))
      return "must name an explicit port (SCHEME://HOST:PORT), as some modules require";
    if (strlen(buf) >= CONF_URL_MAX)
      return "too long: the URLs handed to modules must stay short";
    for (const char *q = buf; *q; q++)
      if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7f || *q == '@')
        return "must be plain printable ASCII without spaces or '@'";
    while (buf[0] != '\0' && buf[strlen(buf) - 1] == '/')
      buf[strlen(buf) - 1] = '\0';
    if (config_set_string((char **)slot, buf) < 0)
      return "out of memory";
    return NULL;
  }
  case T_RANGE: {
    struct port_range *r = (struct port_range *)slot;
    char *end;
    long lo, hi;
    if (buf[0] == '\0') {
      r->lo = r->hi = 0;
      return NULL;
    }
    errno = 0;
    lo = strtol(buf, &end, 10);
    if (errno != 0 || end == buf || *end != '-' || !isdigit((unsigned char)end[1]))
      return "must be LO-HI (ports)";
    hi = strtol(end + 1, &end, 10);
    if (errno != 0 || *end != '\0' || lo < 1024 || hi < lo || hi > 65535)
      return "must be LO-HI with 1024 <= LO <= HI <= 65535";
    r->lo = (int)lo;
    r->hi = (int)hi;
    return NULL;
  }
  case T_BOOL:
    if (strcmp(buf, "yes") == 0 || strcmp(buf, "true") == 0 || strcmp(buf, "on") == 0 ||
        strcmp(buf, "1") == 0)
      *(int *)slot = 1;
    else if (strcmp(buf, "no") == 0 || strcmp(buf, "false") == 0 || strcmp(buf, "off") == 0 ||
             strcmp(buf, "0") == 0)
      *(int *)slot = 0;
    else
      return "must be yes or no";
    return NULL;
  case T_INT: {
    char *end;
    long long v;
    errno = 0;
    v = strtoll(buf, &end, 10);
    if (buf[0] == '\0' || *end != '\0' || errno != 0)
      return "not a whole number";
    if (v < o->min || v > o->max) {
      snprintf(msg, msglen, "must be between %lld and %lld", o->min, o->max);
      return msg;
    }
    *(int *)slot = (int)v;
    return NULL;
  }
  case T_SIZE: {
    uint64_t v;
    if (size_parse(buf, &v) < 0)
      return "not a size (a number with an optional K, M or G)";
    if (v < (uint64_t)o->min)
      return "too small";
    if (o->max > 0 && v > (uint64_t)o->max) {
      snprintf(msg, msglen, "must be at most %lld bytes", o->max);
      return msg;
    }
    *(uint64_t *)slot = v;
    return NULL;
  }
  case T_LOGLEVEL:
    if (log_level_parse(buf, (enum log_level *)slot) < 0)
      return "must be one of error, warn, info, debug";
    return NULL;
  case T_CHOICE: {
    size_t n = 0;
    for (int i = 0; o->choices[i] != NULL; i++) {
      if (strcmp(buf, o->choices[i]) == 0) {
        *(int *)slot = i;
        return NULL;
      }
      n += (size_t)snprintf(msg + n, n < msglen ? msglen - n : 0, "%s%s",
                            i ? ", " : "must be one of ", o->choices[i]);
    }
    return msg;
  }
  case T_LISTEN: {
    struct listen_set *ls = (struct listen_set *)slot;
    char *words[CONF_MAX_LISTEN + 1];
    int n = config_split_words(buf, words, CONF_MAX_LISTEN);
    struct listen_set next;
    if (n < 0)
      return "too many addresses";
    if (replace || !ls->explicit_set)
      next.n = 0;
    else
      next = *ls;
    for (int i = 0; i < n; i++) {
      if (next.n == CONF_MAX_LISTEN)
        return "too many addresses";
      if (listen_addr_parse(words[i], &next.addr[next.n]) < 0) {
        snprintf(msg, msglen, "bad address '%s' (expected IPV4:PORT, *:PORT or [IPV6]:PORT)",
                 words[i]);
        return msg;
      }
      for (int j = 0; j < next.n; j++)
        if (strcmp(next.addr[j].text, words[i]) == 0) {
          snprintf(msg, msglen, "address '%s' given twice", words[i]);
          return msg;
        }
      next.n++;
    }
    next.explicit_set = 1;
    *ls = next;
    return NULL;
  }
  case T_CUSTOM: return o->parse(slot, buf, msg, msglen);
  }
  return "unknown option type";
}

/* The section named name: its index in c, or -1. */
static int section_index(const struct config *c, const char *name)
{
  for (int i = 0; i < c->n; i++)
    if (strcmp(c->sec[i]->name, name) == 0)
      return i;
  return -1;
}

void *config_section(const struct config *c, const char *name)
{
  int i = section_index(c, name);

  return i < 0 ? NULL : c->val[i];
}

static const struct conf_row *option_find(const struct conf_section *sec, const char *name)
{
  for (const struct conf_row *o = sec->rows; o->name != NULL; o++)
    if (strcmp(o->name, name) == 0)
      return o;
  return NULL;
}

static void parse_file(struct config *c, const char *file, struct config_errors *errs)
{
  FILE *f = fopen(file, "r");
  char line[CONF_MAX_LINE + 2];
  char section[64] = "";
  int lineno = 0, si = -1;

  if (f == NULL) {
    config_errors_add(errs, "%s: cannot open: %s", file, strerror(errno));
    return;
  }
  while (fgets(line, sizeof(line), f) != NULL) {
    char *s, *eq, *key, *val, msg[256];
    const struct conf_row *o;
    const char *err;

    lineno++;
    if (strchr(line, '\n') == NULL && !feof(f)) {
      int ch;
      config_errors_add(errs, "%s:%d: line longer than %d bytes", file, lineno, CONF_MAX_LINE);
      while ((ch = fgetc(f)) != EOF && ch != '\n')
        ;
      continue;
    }
    s = trim(line);
    if (*s == '\0' || *s == '#' || *s == ';')
      continue;
    if (*s == '[') {
      char *rb = strchr(s, ']');
      if (rb == NULL || rb[1] != '\0' || (size_t)(rb - s - 1) >= sizeof(section)) {
        config_errors_add(errs, "%s:%d: bad section header", file, lineno);
        section[0] = '\0';
        si = -1;
        continue;
      }
      *rb = '\0';
      snprintf(section, sizeof(section), "%s", trim(s + 1));
      si = section_index(c, section);
      if (si < 0) {
        config_errors_add(errs, "%s:%d: unknown section [%s]", file, lineno, section);
        snprintf(section, sizeof(section), "!"); /* its keys are not reported again */
      }
      continue;
    }
    eq = strchr(s, '=');
    if (eq == NULL) {
      config_errors_add(errs, "%s:%d: expected KEY = VALUE", file, lineno);
      continue;
    }
    *eq = '\0';
    key = trim(s);
    val = trim(eq + 1);
    if (strcmp(section, "!") == 0)
      continue; /* already reported the section */
    if (si < 0) {
      config_errors_add(errs, "%s:%d: '%s' outside any [section]", file, lineno, key);
      continue;
    }
    o = option_find(c->sec[si], key);
    if (o == NULL) {
      config_errors_add(errs, "%s:%d: unknown key '%s' in [%s]", file, lineno, key, section);
      continue;
    }
    err = option_set(c->val[si], c->sec[si], o, val, 0, msg, sizeof(msg));
    if (err != NULL)
      config_errors_add(errs, "%s:%d: %s.%s: %s", file, lineno, section, key, err);
  }
  if (ferror(f))
    config_errors_add(errs, "%s: read error", file);
  fclose(f);
}

static void apply_override(struct config *c, const char *ov, struct config_errors *errs)
{
  char buf[CONF_MAX_LINE], msg[256];
  char *eq, *dot;
  const struct conf_row *o = NULL;
  const char *err;
  int si;

  snprintf(buf, sizeof(buf), "%s", ov);
  eq = strchr(buf, '=');
  dot = strchr(buf, '.');
  if (eq == NULL || dot == NULL || dot > eq) {
    config_errors_add(errs, "--set %s: expected SECTION.KEY=VALUE", ov);
    return;
  }
  *eq = '\0';
  *dot = '\0';
  si = section_index(c, buf);
  if (si >= 0)
    o = option_find(c->sec[si], dot + 1);
  if (o == NULL) {
    config_errors_add(errs, "--set %s.%s: unknown option", buf, dot + 1);
    return;
  }
  /* a repeatable key adds; any other replaces what the file said */
  err = option_set(c->val[si], c->sec[si], o, trim(eq + 1), o->type != T_CUSTOM, msg, sizeof(msg));
  if (err != NULL)
    config_errors_add(errs, "--set %s.%s: %s", buf, dot + 1, err);
}

struct config *config_load(const struct conf_section *const *secs, const char *file,
                           char *const *overrides, int n_overrides, struct config_errors *errs)
{
  struct config *c = calloc(1, sizeof(*c));
  char msg[256];

  if (c == NULL) {
    config_errors_add(errs, "out of memory");
    return NULL;
  }
  c->source = strdup(file != NULL ? file : "(defaults)");
  for (; *secs != NULL; secs++) {
    if (c->n == CONF_MAX_SECTIONS)
      fatal("more than %d configuration sections", CONF_MAX_SECTIONS);
    c->sec[c->n] = *secs;
    c->val[c->n] = calloc(1, (*secs)->size);
    if (c->val[c->n] == NULL || c->source == NULL) {
      config_errors_add(errs, "out of memory");
      config_free(c);
      return NULL;
    }
    c->n++;
  }
  for (int i = 0; i < c->n; i++)
    for (const struct conf_row *o = c->sec[i]->rows; o->name != NULL; o++) {
      if (o->def == NULL)
        continue;
      if (option_set(c->val[i], c->sec[i], o, o->def, 1, msg, sizeof(msg)) != NULL)
        fatal("bad embedded default for %s.%s: %s", c->sec[i]->name, o->name, msg);
      if (o->type == T_LISTEN)
        ((struct listen_set *)((char *)c->val[i] + o->offset))->explicit_set = 0;
    }
  for (int i = 0; i < c->n; i++)
    if (c->sec[i]->init != NULL)
      c->sec[i]->init(c->val[i]);
  if (file != NULL)
    parse_file(c, file, errs);
  for (int i = 0; i < n_overrides; i++)
    apply_override(c, overrides[i], errs);
  for (int i = 0; i < c->n && errs->n == 0; i++)
    if (c->sec[i]->check != NULL)
      c->sec[i]->check(c->val[i], c->sec[i], c, errs);
  if (errs->n > 0) {
    config_free(c);
    return NULL;
  }
  return c;
}

void config_free(struct config *c)
{
  if (c == NULL)
    return;
  for (int i = 0; i < c->n; i++) {
    if (c->val[i] == NULL)
      continue;
    for (const struct conf_row *o = c->sec[i]->rows; o->name != NULL; o++) {
      void *slot = (char *)c->val[i] + o->offset;
      if (o->type == T_STRING || o->type == T_PATH || o->type == T_URL)
        free(*(char **)slot);
      else if (o->type == T_CUSTOM && o->release != NULL)
        o->release(slot);
    }
    free(c->val[i]);
  }
  free(c->source);
  free(c);
}

/* A row's value as text, for messages; "" for the types not shown. */
static void value_text(const void *base, const struct conf_row *o, char *out, size_t len)
{
  const char *slot = (const char *)base + o->offset;

  out[0] = '\0';
  switch (o->type) {
  case T_STRING:
  case T_PATH:
  case T_URL: {
    const char *v = *(char *const *)slot;
    snprintf(out, len, "\"%s\"", v != NULL ? v : "");
    break;
  }
  case T_INT:
  case T_BOOL: snprintf(out, len, "%d", *(const int *)slot); break;
  case T_CHOICE: snprintf(out, len, "%s", o->choices[*(const int *)slot]); break;
  case T_SIZE: snprintf(out, len, "%llu", (unsigned long long)*(const uint64_t *)slot); break;
  case T_LOGLEVEL: snprintf(out, len, "%d", (int)*(const enum log_level *)slot); break;
  case T_RANGE: {
    const struct port_range *r = (const struct port_range *)slot;
    snprintf(out, len, "%d-%d", r->lo, r->hi);
    break;
  }
  case T_LISTEN: {
    const struct listen_set *l = (const struct listen_set *)slot;
    size_t n = 0;
    for (int i = 0; i < l->n && n < len; i++)
      n += (size_t)snprintf(out + n, len - n, "%s%s", i ? " " : "", l->addr[i].text);
    break;
  }
  case T_CUSTOM: break;
  }
}

int config_reload_check(const struct config *old, const struct config *next,
                        struct config_errors *errs)
{
  int before = errs->n;

  for (int i = 0; i < next->n; i++) {
    const void *ov = config_section(old, next->sec[i]->name);
    if (ov == NULL)
      continue;
    for (const struct conf_row *o = next->sec[i]->rows; o->name != NULL; o++) {
      char a[512], b[512];
      if (o->reload != RELOAD_RESTART)
        continue;
      value_text(ov, o, a, sizeof(a));
      value_text(next->val[i], o, b, sizeof(b));
      if (strcmp(a, b) != 0)
        config_errors_add(errs,
                          "%s: [%s] %s cannot change on a reload (%s -> %s): restart dfotad to "
                          "apply it",
                          next->source, next->sec[i]->name, o->name, a, b);
    }
  }
  return errs->n - before;
}

const char *config_type_name(enum conf_type t)
{
  switch (t) {
  case T_STRING: return "text";
  case T_PATH: return "path";
  case T_INT: return "integer";
  case T_SIZE: return "size";
  case T_BOOL: return "yes/no";
  case T_LOGLEVEL: return "level";
  case T_LISTEN: return "addresses";
  case T_URL: return "URL";
  case T_RANGE: return "port range";
  case T_CHOICE: return "choice";
  case T_CUSTOM: return "list";
  }
  return "?";
}

void config_each_row(const struct conf_section *const *secs,
                     void (*fn)(const struct conf_section *sec, const struct conf_row *row,
                                void *arg),
                     void *arg)
{
  for (; *secs != NULL; secs++)
    for (const struct conf_row *o = (*secs)->rows; o->name != NULL; o++)
      fn(*secs, o, arg);
}
