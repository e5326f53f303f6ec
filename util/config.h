/* config.h: dfotad's configuration machinery: embedded defaults, an INI
 * file and --set overrides, checked against tables of rows. util/ knows no
 * section: each part of the daemon declares its own (a struct conf_section:
 * its rows, the struct they fill, its cross-checks), and the caller hands
 * the list to config_load (dfotad's list: server/fronts.h). */
#ifndef DFOTAD_CONFIG_H
#define DFOTAD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "limits.h"
#include "log.h"

struct listen_addr {
  char text[80]; /* as written: "127.0.0.1:8080", "[::1]:443" */
  struct sockaddr_storage ss;
  socklen_t len;
};

struct listen_set {
  struct listen_addr addr[CONF_MAX_LISTEN];
  int n;
  int explicit_set; /* a file or --set replaced the default */
};

/* A range of TCP ports, "LO-HI" (1024 <= LO <= HI <= 65535); 0-0: none. */
struct port_range {
  int lo, hi;
};

/* Errors found while loading, each "FILE:LINE: message". */
struct config_errors {
  char *msg[CONF_MAX_ERRORS];
  int n;
  int dropped;
};

enum conf_type {
  T_STRING,   /* char *: any text, may be empty */
  T_PATH,     /* char *: non-empty text */
  T_INT,      /* int: decimal, within min..max */
  T_SIZE,     /* uint64_t: bytes with optional K/M/G suffix, min.., ..max (0: none) */
  T_BOOL,     /* int: yes/no, true/false, on/off, 1/0 */
  T_LOGLEVEL, /* enum log_level */
  T_LISTEN,   /* struct listen_set: addresses; repeated keys add */
  T_URL,      /* char *: SECTION://HOST:PORT (the section's scheme, an explicit port), or empty */
  T_RANGE,    /* struct port_range: LO-HI ports, or empty */
  T_CHOICE,   /* int: the index of one word of choices */
  T_CUSTOM,   /* the row's parse and release; a repeatable key (each line adds) */
};

/* How a reload takes a changed value. */
enum conf_reload {
  RELOAD_APPLIES = 0, /* the reload applies it (the default) */
  RELOAD_RESTART,     /* only a restart can: a reload changing it is refused */
};

/* One key of a section. Write rows with designated initializers (a row
 * moves between tables as it is). */
struct conf_row {
  const char *name;
  enum conf_type type;
  size_t offset;   /* in the section's struct */
  const char *def; /* embedded default, as a file would write it; NULL: none */
  long long min, max;
  const char *help; /* one line, for -h style listings and dfotad.conf(5) */
  enum conf_reload reload;
  const char *const *choices; /* T_CHOICE: NULL-terminated */
  /* T_CUSTOM: applies one line to the slot; NULL or an error message
   * (msg may hold it). release frees what parse stored. */
  const char *(*parse)(void *slot, char *value, char *msg, size_t msglen);
  void (*release)(void *slot);
};

struct config;

/* One [section]: its rows (ended by a row without a name) fill a struct of
 * `size` bytes, allocated zeroed per configuration. */
struct conf_section {
  const char *name;
  size_t size;
  const struct conf_row *rows;
  /* After the embedded defaults, before the file: defaults from the
   * environment. May be NULL. */
  void (*init)(void *sec);
  /* Cross-row checks and derived values, once every value is set: errors
   * as "SOURCE: [section] ...". May be NULL. */
  void (*check)(void *sec, const struct conf_section *self, const struct config *c,
                struct config_errors *errs);
};

#define CONF_MAX_SECTIONS 32

struct config {
  char *source; /* file it came from, or "(defaults)" */
  const struct conf_section *sec[CONF_MAX_SECTIONS];
  void *val[CONF_MAX_SECTIONS]; /* sec[i]'s struct */
  int n;
};

/* Builds a configuration of the sections secs (NULL-terminated): defaults,
 * then FILE (NULL: none), then each override "section.key=value", then
 * each section's check. Returns NULL and fills errs when anything is
 * wrong; the caller owns the result (config_free). */
struct config *config_load(const struct conf_section *const *secs, const char *file,
                           char *const *overrides, int n_overrides, struct config_errors *errs);
void config_free(struct config *c);

/* The struct of section `name`, or NULL when c has no such section. */
void *config_section(const struct config *c, const char *name);

/* Refuses what a reload from `old` to `next` cannot apply: every changed
 * RELOAD_RESTART row adds an error naming it. Returns the errors added. */
int config_reload_check(const struct config *old, const struct config *next,
                        struct config_errors *errs);

/* Calls fn for every row of every section of secs, in order (dfotad.conf(5)
 * is generated from this). */
void config_each_row(const struct conf_section *const *secs,
                     void (*fn)(const struct conf_section *sec, const struct conf_row *row,
                                void *arg),
                     void *arg);

/* A row type's name for people: "text", "path", "integer", "size",
 * "yes/no", "level", "addresses", "URL", "port range", "choice", "list". */
const char *config_type_name(enum conf_type t);

void config_errors_clear(struct config_errors *errs);
void config_errors_add(struct config_errors *errs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Parses "HOST:PORT" ("*" for any IPv4, "[::]" for any IPv6). 0 or -1. */
int listen_addr_parse(const char *s, struct listen_addr *out);

/* "SCHEME://HOST:PORT" for a listen address (the host name for a wildcard
 * address). listen.c */
void listen_public_url(const struct listen_addr *a, const char *scheme, char *url, size_t len);

/* Parses "123", "10K", "5M", "1G". 0 or -1. */
int size_parse(const char *s, uint64_t *out);

/* Replaces *slot by a copy of v. 0 or -1. */
int config_set_string(char **slot, const char *v);

/* Splits v on blanks into at most max words pointing into v; -1 for more. */
int config_split_words(char *v, char **words, int max);

#endif
