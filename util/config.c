/* config.c: one declarative table of options (a row per key: section, name,
 * type, where it goes, default, bounds); the file parser, the --set
 * overrides and the embedded defaults all go through the same setters, so
 * a value is checked the same way wherever it comes from. */
#include "autoconfig.h"

#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum opt_type {
  T_STRING, /* any text, may be empty */
  T_PATH,   /* non-empty text */
  T_INT,    /* decimal, within min..max */
  T_SIZE,   /* bytes with optional K/M/G suffix */
  T_BOOL,   /* yes/no, true/false, on/off, 1/0 */
  T_LOGLEVEL,
  T_LISTEN, /* one or more addresses; repeated keys add */
  T_SNI,    /* NAME CERTFILE KEYFILE; repeatable; offset: its struct tls_conf */
  T_CLIENT_AUTH,
  T_URL, /* SECTION://HOST:PORT (the section's scheme, an explicit port), or empty */
  T_RANGE, /* LO-HI ports (struct port_range), or empty */
};

struct option {
  const char *section;
  const char *name;
  enum opt_type type;
  size_t offset;
  const char *def;
  long long min, max;
  const char *help;
};

#define STR_(x) #x
#define STR(x) STR_(x) /* a limits.h number as a default's text */
#define O(f) offsetof(struct config, f)
#define F(p, f) offsetof(struct config, front[p].f)

/* Every front's section has these rows. */
#define FRONT_ROWS(sec, p, listen_def)                                                             \
  {sec, "listen", T_LISTEN, F(p, listen), listen_def, 0, 0, "ADDRESS:PORT ..."},                   \
      {sec, "connection_limit", T_INT, F(p, connection_limit), "1024", 1, MAX_CONNECTION_LIMIT,    \
       "connections"},                                                                             \
      {sec, "timeout", T_INT, F(p, timeout), "60", 1, MAX_TIMEOUT, "idle seconds"},                \
      {sec, "per_ip_limit", T_INT, F(p, per_ip_limit), "0", 0, MAX_CONNECTION_LIMIT,               \
       "connections per client address, 0 for none"},                                              \
      {sec, "public_url", T_URL, F(p, public_url), "", 0, 0, "base URL devices see"}

/* The HTTP(S) sections have these: what a connection may cost. */
#define HTTP_ROWS(sec, p)                                                                          \
  {sec, "threads", T_INT, F(p, threads), "0", 0, MAX_THREADS, "0: one per CPU"},                   \
      {sec, "connection_memory", T_SIZE, F(p, connection_memory), DEF_CONNECTION_MEMORY_TEXT,      \
       MIN_CONNECTION_MEMORY, MAX_CONNECTION_MEMORY,                                               \
       "bytes per connection for its request and response headers"},                              \
      {sec, "header_timeout", T_INT, F(p, header_timeout), DEF_HEADER_TIMEOUT_TEXT, 1,            \
       MAX_TIMEOUT, "seconds a connection has to send its first request's headers"},               \
      {sec, "header_limit", T_INT, F(p, header_limit), "0", 0, MAX_CONNECTION_LIMIT,               \
       "connections still sending headers, 0 for half of connection_limit"},                      \
      {sec, "header_per_ip_limit", T_INT, F(p, header_per_ip_limit), DEF_HEADER_PER_IP_TEXT, 0,    \
       MAX_CONNECTION_LIMIT, "connections still sending headers per address, 0 for none"},        \
      {sec, "send_lowat", T_SIZE, F(p, send_lowat), DEF_SEND_LOWAT_TEXT, 0, MAX_SEND_LOWAT,        \
       "bytes not yet sent the kernel may hold per connection, 0 for no bound"}

/* Every TLS or DTLS section has these: one set of TLS options. */
#define TLS_ROWS(sec, p, prio_def)                                                                 \
  {sec, "cert", T_STRING, F(p, tls.cert), "", 0, 0, "default certificate chain (PEM)"},            \
      {sec, "key", T_STRING, F(p, tls.key), "", 0, 0, "its private key (PEM)"},                    \
      {sec, "sni", T_SNI, F(p, tls), NULL, 0, 0, "NAME CERTFILE KEYFILE"},                         \
      {sec, "client_ca", T_STRING, F(p, tls.client_ca), "", 0, 0, "CA for client certificates"},  \
      {sec, "client_auth", T_CLIENT_AUTH, F(p, tls.client_auth), "none", 0, 0,                     \
       "none|optional|required"},                                                                  \
      {sec, "priorities", T_STRING, F(p, tls.priorities), prio_def, 0, 0,                          \
       "cipher preferences, in the TLS library's syntax"}

/* The FTP sections' own rows ([ftp] also has TLS_ROWS, for AUTH TLS). */
#define FTP_ROWS(sec, p)                                                                           \
  {sec, "threads", T_INT, F(p, threads), "0", 0, MAX_THREADS, "event threads, 0: one per CPU"},    \
      {sec, "anonymous_packages", T_BOOL, F(p, anonymous_packages), "no", 0, 0,                    \
       "anonymous logins may fetch /p/{id}"},                                                      \
      {sec, "require_tls", T_BOOL, F(p, require_tls), "no", 0, 0,                                  \
       "refuse logins and data connections without TLS"},                                          \
      {sec, "pasv_ports", T_RANGE, F(p, pasv_ports), "", 0, 0, "LO-HI passive data ports"},        \
      {sec, "pasv_address", T_STRING, F(p, pasv_address), "", 0, 0,                                \
       "IPv4 address PASV announces (behind NAT)"},                                                \
      {sec, "port_enable", T_BOOL, F(p, port_enable), "no", 0, 0,                                  \
       "allow PORT/EPRT (active mode) to the client's own address"},                               \
      {sec, "login_limit", T_INT, F(p, login_limit), DEF_FTP_LOGIN_LIMIT, 1,                       \
       MAX_CONNECTION_LIMIT, "sessions not logged in yet, at once"},                               \
      {sec, "login_timeout", T_INT, F(p, login_timeout), DEF_FTP_LOGIN_TIMEOUT, 1, MAX_TIMEOUT,     \
       "seconds to log in"},                                                                       \
      {sec, "data_timeout", T_INT, F(p, data_timeout), DEF_FTP_DATA_TIMEOUT, 1, MAX_TIMEOUT,       \
       "seconds without progress on a data connection"}

/* The CoAP sections' LwM2M server rows. */
#define LWM2M_ROWS(sec, p)                                                                         \
  {sec, "lwm2m", T_BOOL, F(p, lwm2m), "no", 0, 0, "LwM2M registration interface (/rd)"},          \
      {sec, "lwm2m_registrations", T_INT, F(p, lwm2m_registrations), DEF_LWM2M_REGISTRATIONS, 1,   \
       MAX_LWM2M_REGISTRATIONS, "LwM2M registrations held at once"},                              \
      {sec, "lwm2m_lifetime_min", T_INT, F(p, lwm2m_lifetime_min), "60", 1, MAX_LWM2M_LIFETIME,    \
       "seconds: the shortest lifetime a registration may ask"},                                  \
      {sec, "lwm2m_lifetime_max", T_INT, F(p, lwm2m_lifetime_max), "2592000", 1,                   \
       MAX_LWM2M_LIFETIME, "seconds: the longest lifetime a registration may ask"},               \
      {sec, "lwm2m_poll", T_INT, F(p, lwm2m_poll), "60", 1, 86400,                                 \
       "seconds between two asks of the delivery core for a registered device's offer"},          \
      {sec, "lwm2m_queue_awake", T_INT, F(p, lwm2m_queue_awake), "10", 1, 3600,                    \
       "seconds a queue-mode device listens after it spoke: requests wait for that"}

static const struct option options[] = {
    {"server", "state_dir", T_PATH, O(state_dir), DEF_STATE_DIR, 0, 0, "state directory"},
    {"server", "log_level", T_LOGLEVEL, O(log_level), "info", 0, 0, "error|warn|info|debug"},
    {"server", "user", T_STRING, O(user), "", 0, 0, "user to run as after binding"},
    {"server", "shutdown_timeout", T_INT, O(shutdown_timeout), "10", 0, MAX_SHUTDOWN_TIMEOUT,
     "seconds"},
    {"store", "flush_interval", T_INT, O(flush_interval_ms), "250", 10, 1000, "milliseconds"},
    FRONT_ROWS("http", PROTO_HTTP, DEF_HTTP_LISTEN),
    HTTP_ROWS("http", PROTO_HTTP),
    FRONT_ROWS("https", PROTO_HTTPS, ""),
    HTTP_ROWS("https", PROTO_HTTPS),
    TLS_ROWS("https", PROTO_HTTPS, DEF_TLS_PRIORITIES),
    FRONT_ROWS("coap", PROTO_COAP, DEF_COAP_LISTEN),
    {"coap", "anonymous_packages", T_BOOL, F(PROTO_COAP, anonymous_packages), "no", 0, 0,
     "serve /p/{id} without an offer's token"},
    LWM2M_ROWS("coap", PROTO_COAP),
    {"coap", "lwm2m_insecure", T_BOOL, F(PROTO_COAP, lwm2m_insecure), "no", 0, 0,
     "LwM2M registrations over plain CoAP (no device identity: test benches only)"},
    FRONT_ROWS("coaps", PROTO_COAPS, ""),
    LWM2M_ROWS("coaps", PROTO_COAPS),
    {"coaps", "anonymous_packages", T_BOOL, F(PROTO_COAPS, anonymous_packages), "no", 0, 0,
     "serve /p/{id} without an offer's token"},
    {"coaps", "max_report", T_INT, F(PROTO_COAPS, max_report), STR(DEF_COAP_REPORT_MAX), 64,
     MAX_COAP_REPORT,
     "bytes of a report's payload"},
    {"coaps", "handshake_limit", T_INT, F(PROTO_COAPS, handshake_limit), STR(DEF_COAP_HANDSHAKES), 1,
     MAX_COAP_HANDSHAKES, "DTLS handshakes in progress"},
    TLS_ROWS("coaps", PROTO_COAPS, ""),
    FRONT_ROWS("ftp", PROTO_FTP, DEF_FTP_LISTEN),
    FTP_ROWS("ftp", PROTO_FTP),
    TLS_ROWS("ftp", PROTO_FTP, ""),
    FRONT_ROWS("ftps", PROTO_FTPS, ""),
    FTP_ROWS("ftps", PROTO_FTPS),
    TLS_ROWS("ftps", PROTO_FTPS, ""),
    {"fleet", "token_header", T_PATH, O(token_header), "X-Device-Token", 0, 0,
     "header carrying a device's secret"},
    {"fleet", "events_per_device", T_INT, O(events_per_device), "1000", 10, 1000000,
     "events kept per device; the oldest go"},
    {"fleet", "report_lines", T_INT, O(report_lines), "64", 1, 1000, "URC lines in one report"},
    {"fleet", "recheck_interval", T_INT, O(recheck_interval), "60", 0, 86400,
     "seconds between two re-checks of a package devices report corrupt"},
    {"fleet", "auth_failures", T_INT, O(auth_failures), "10", 1, 1000000,
     "failed credentials per address or device id and minute before a lock-out"},
    {"fleet", "psk_generate_bytes", T_INT, O(psk_generate_bytes), "16", 16, 64,
     "bytes of a DTLS key made by \"psk\": \"generate\" (tinydtls clients take at most 16)"},
    {"admin", "listen", T_LISTEN, O(admin_listen), DEF_ADMIN_LISTEN, 0, 0, "ADDRESS:PORT ..."},
    {"admin", "token_file", T_STRING, O(token_file), "", 0, 0, "bearer token file"},
    {"admin", "max_upload_size", T_SIZE, O(max_upload_size), "1G", 1, 0, "bytes (K, M, G)"},
};
#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

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

static int set_string(char **slot, const char *v)
{
  char *n = strdup(v);

  if (n == NULL)
    return -1;
  free(*slot);
  *slot = n;
  return 0;
}

/* Splits v on blanks into at most max words; the words point into v. */
static int split_words(char *v, char **words, int max)
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
static const char *option_set(struct config *c, const struct option *o, const char *value,
                              int replace, char *msg, size_t msglen)
{
  char *slot = (char *)c + o->offset;
  char buf[CONF_MAX_LINE];

  snprintf(buf, sizeof(buf), "%s", value);
  switch (o->type) {
  case T_STRING:
  case T_PATH:
    if (o->type == T_PATH && buf[0] == '\0')
      return "a value is required";
    if (set_string((char **)slot, buf) < 0)
      return "out of memory";
    return NULL;
  case T_URL: {
    char scheme[16];
    const char *p;
    if (buf[0] == '\0') {
      set_string((char **)slot, "");
      return NULL;
    }
    snprintf(scheme, sizeof(scheme), "%s://", o->section);
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
    if (set_string((char **)slot, buf) < 0)
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
  case T_CLIENT_AUTH: {
    enum client_auth *ca = (enum client_auth *)slot;
    if (strcmp(buf, "none") == 0)
      *ca = CLIENT_AUTH_NONE;
    else if (strcmp(buf, "optional") == 0)
      *ca = CLIENT_AUTH_OPTIONAL;
    else if (strcmp(buf, "required") == 0)
      *ca = CLIENT_AUTH_REQUIRED;
    else
      return "must be one of none, optional, required";
    return NULL;
  }
  case T_LISTEN: {
    struct listen_set *ls = (struct listen_set *)slot;
    char *words[CONF_MAX_LISTEN + 1];
    int n = split_words(buf, words, CONF_MAX_LISTEN);
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
  case T_SNI: {
    char *words[4];
    int n = split_words(buf, words, 3);
    struct tls_conf *tc = (struct tls_conf *)slot;
    struct sni_entry *e;
    if (n != 3)
      return "expected: sni = NAME CERTFILE KEYFILE";
    if (tc->n_sni == CONF_MAX_SNI)
      return "too many sni entries";
    for (const char *p = words[0]; *p; p++)
      if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '.' || *p == '*'))
        return "bad server name";
    for (int i = 0; i < tc->n_sni; i++)
      if (strcasecmp(tc->sni[i].name, words[0]) == 0)
        return "server name given twice";
    e = &tc->sni[tc->n_sni];
    e->name = strdup(words[0]);
    e->cert = strdup(words[1]);
    e->key = strdup(words[2]);
    tc->n_sni++;
    if (e->name == NULL || e->cert == NULL || e->key == NULL)
      return "out of memory";
    return NULL;
  }
  }
  return "unknown option type";
}

static const struct option *option_find(const char *section, const char *name)
{
  for (size_t i = 0; i < N_OPTIONS; i++)
    if (strcmp(options[i].section, section) == 0 && strcmp(options[i].name, name) == 0)
      return &options[i];
  return NULL;
}

static int section_known(const char *section)
{
  for (size_t i = 0; i < N_OPTIONS; i++)
    if (strcmp(options[i].section, section) == 0)
      return 1;
  return 0;
}

static void parse_file(struct config *c, const char *file, struct config_errors *errs)
{
  FILE *f = fopen(file, "r");
  char line[CONF_MAX_LINE + 2];
  char section[64] = "";
  int lineno = 0;

  if (f == NULL) {
    config_errors_add(errs, "%s: cannot open: %s", file, strerror(errno));
    return;
  }
  while (fgets(line, sizeof(line), f) != NULL) {
    char *s, *eq, *key, *val, msg[256];
    const struct option *o;
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
        continue;
      }
      *rb = '\0';
      snprintf(section, sizeof(section), "%s", trim(s + 1));
      if (!section_known(section)) {
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
    if (section[0] == '\0') {
      config_errors_add(errs, "%s:%d: '%s' outside any [section]", file, lineno, key);
      continue;
    }
    o = option_find(section, key);
    if (o == NULL) {
      config_errors_add(errs, "%s:%d: unknown key '%s' in [%s]", file, lineno, key, section);
      continue;
    }
    err = option_set(c, o, val, 0, msg, sizeof(msg));
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
  const struct option *o;
  const char *err;

  snprintf(buf, sizeof(buf), "%s", ov);
  eq = strchr(buf, '=');
  dot = strchr(buf, '.');
  if (eq == NULL || dot == NULL || dot > eq) {
    config_errors_add(errs, "--set %s: expected SECTION.KEY=VALUE", ov);
    return;
  }
  *eq = '\0';
  *dot = '\0';
  o = option_find(buf, dot + 1);
  if (o == NULL) {
    config_errors_add(errs, "--set %s.%s: unknown option", buf, dot + 1);
    return;
  }
  if (o->type == T_SNI) {
    err = option_set(c, o, trim(eq + 1), 0, msg, sizeof(msg));
  } else {
    err = option_set(c, o, trim(eq + 1), 1, msg, sizeof(msg));
  }
  if (err != NULL)
    config_errors_add(errs, "--set %s.%s: %s", buf, dot + 1, err);
}

int config_has_section(enum proto p)
{
  for (size_t i = 0; i < N_OPTIONS; i++)
    if (strcmp(options[i].section, proto_name(p)) == 0)
      return 1;
  return 0;
}

static int proto_udp(int p) { return p == PROTO_COAP || p == PROTO_COAPS; }

/* Cross-option checks, done once everything is set. */
static void validate(struct config *c, struct config_errors *errs)
{
  const char *src = c->source;
  int listening = 0;

  for (int p = 0; p < PROTO_COUNT; p++) {
    const struct front_conf *fc = &c->front[p];
    const char *sec = proto_name((enum proto)p);
    if (!config_has_section((enum proto)p))
      continue;
    listening += fc->listen.n;
    if (proto_secure((enum proto)p) && fc->listen.n > 0 &&
        (fc->tls.cert == NULL || fc->tls.cert[0] == '\0' || fc->tls.key[0] == '\0') &&
        p != PROTO_COAPS) /* CoAPS may run on pre-shared keys alone */
      config_errors_add(errs, "%s: [%s] listen needs cert and key", src, sec);
    if (proto_secure((enum proto)p) && fc->tls.client_auth != CLIENT_AUTH_NONE &&
        fc->tls.client_ca[0] == '\0')
      config_errors_add(errs, "%s: [%s] client_auth = %s needs client_ca", src, sec,
                        fc->tls.client_auth == CLIENT_AUTH_REQUIRED ? "required" : "optional");
    if (p == PROTO_FTP || p == PROTO_FTPS) {
      struct in_addr ip;
      if (p == PROTO_FTP && fc->require_tls && fc->listen.n > 0 &&
          (fc->tls.cert[0] == '\0' || fc->tls.key[0] == '\0'))
        config_errors_add(errs, "%s: [ftp] require_tls needs cert and key (for AUTH TLS)", src);
      if (fc->pasv_address[0] != '\0' && inet_pton(AF_INET, fc->pasv_address, &ip) != 1)
        config_errors_add(errs, "%s: [%s] pasv_address must be an IPv4 address", src, sec);
    }
  }
  if (listening == 0)
    config_errors_add(errs, "%s: no device front ([http], [https], ...) has a listen address", src);
  /* one address, one section (of the same transport) */
  for (int p = 0; p <= PROTO_COUNT; p++) {
    const struct listen_set *a = p < PROTO_COUNT ? &c->front[p].listen : &c->admin_listen;
    for (int q = p + 1; q <= PROTO_COUNT; q++) {
      const struct listen_set *b = q < PROTO_COUNT ? &c->front[q].listen : &c->admin_listen;
      if (proto_udp(p) != proto_udp(q))
        continue;
      for (int i = 0; i < a->n; i++)
        for (int j = 0; j < b->n; j++)
          if (strcmp(a->addr[i].text, b->addr[j].text) == 0)
            config_errors_add(errs, "%s: %s is both an [%s] and an [%s] address", src,
                              a->addr[i].text, p < PROTO_COUNT ? proto_name((enum proto)p) : "admin",
                              q < PROTO_COUNT ? proto_name((enum proto)q) : "admin");
    }
  }
}

/* public_url, when not set: from the first listen address of the front. */
static void derive_public_url(struct front_conf *f, const char *scheme)
{
  char url[CONF_URL_MAX];

  if (f->public_url[0] != '\0' || f->listen.n == 0)
    return;
  listen_public_url(&f->listen.addr[0], scheme, url, sizeof(url));
  set_string(&f->public_url, url);
}

struct config *config_load(const char *file, char *const *overrides, int n_overrides,
                           struct config_errors *errs)
{
  struct config *c = calloc(1, sizeof(*c));
  const char *sd;
  char msg[256];

  if (c == NULL) {
    config_errors_add(errs, "out of memory");
    return NULL;
  }
  c->source = strdup(file != NULL ? file : "(defaults)");
  for (size_t i = 0; i < N_OPTIONS; i++) {
    if (options[i].def == NULL)
      continue;
    if (option_set(c, &options[i], options[i].def, 1, msg, sizeof(msg)) != NULL)
      fatal("bad embedded default for %s.%s", options[i].section, options[i].name);
    if (options[i].type == T_LISTEN)
      ((struct listen_set *)((char *)c + options[i].offset))->explicit_set = 0;
  }
  /* under systemd, StateDirectory= tells where our state lives */
  sd = getenv("STATE_DIRECTORY");
  if (sd != NULL && sd[0] != '\0') {
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", sd);
    buf[strcspn(buf, ":")] = '\0';
    set_string(&c->state_dir, buf);
  }
  if (file != NULL)
    parse_file(c, file, errs);
  for (int i = 0; i < n_overrides; i++)
    apply_override(c, overrides[i], errs);
  if (errs->n == 0)
    validate(c, errs);
  if (errs->n > 0) {
    config_free(c);
    return NULL;
  }
  if (c->token_file[0] == '\0') {
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s/admin.token", c->state_dir);
    set_string(&c->token_file, buf);
  }
  for (int p = 0; p < PROTO_COUNT; p++)
    if (config_has_section((enum proto)p))
      derive_public_url(&c->front[p], proto_name((enum proto)p));
  return c;
}

int config_key_at(size_t i, struct config_key *out)
{
  static const char *const types[] = {
      [T_STRING] = "text",      [T_PATH] = "text",          [T_INT] = "integer",
      [T_SIZE] = "size",        [T_BOOL] = "boolean",       [T_LOGLEVEL] = "level",
      [T_LISTEN] = "addresses", [T_SNI] = "NAME CERTFILE KEYFILE", [T_CLIENT_AUTH] = "mode",
      [T_URL] = "URL",          [T_RANGE] = "LO-HI",
  };

  if (i >= N_OPTIONS)
    return -1;
  out->section = options[i].section;
  out->name = options[i].name;
  out->type = types[options[i].type];
  out->def = options[i].def;
  out->help = options[i].help;
  out->min = options[i].min;
  out->max = options[i].max;
  return 0;
}

void config_free(struct config *c)
{
  if (c == NULL)
    return;
  for (size_t i = 0; i < N_OPTIONS; i++) {
    enum opt_type t = options[i].type;
    if (t == T_STRING || t == T_PATH || t == T_URL)
      free(*(char **)((char *)c + options[i].offset));
  }
  for (int p = 0; p < PROTO_COUNT; p++)
    for (int i = 0; i < c->front[p].tls.n_sni; i++) {
      free(c->front[p].tls.sni[i].name);
      free(c->front[p].tls.sni[i].cert);
      free(c->front[p].tls.sni[i].key);
    }
  free(c->source);
  free(c);
}
