/* server_conf.c: the rows of [server], [store] and [fleet], and the checks
 * across sections: some front listens, no address in two sections of one
 * transport, the admin token's default place. */
#include "autoconfig.h"

#include "server_conf.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "admin/admin_conf.h"
#include "fronts.h"

static const struct conf_row server_rows[] = {
    {.name = "state_dir",
     .type = T_PATH,
     .offset = offsetof(struct server_conf, state_dir),
     .def = DEF_STATE_DIR,
     .help = "state directory",
     .reload = RELOAD_RESTART},
    {.name = "log_level",
     .type = T_LOGLEVEL,
     .offset = offsetof(struct server_conf, log_level),
     .def = "info",
     .help = "error|warn|info|debug"},
    {.name = "user",
     .type = T_STRING,
     .offset = offsetof(struct server_conf, user),
     .def = "",
     .help = "user to run as after binding",
     .reload = RELOAD_RESTART},
    {.name = "shutdown_timeout",
     .type = T_INT,
     .offset = offsetof(struct server_conf, shutdown_timeout),
     .def = "10",
     .min = 0,
     .max = MAX_SHUTDOWN_TIMEOUT,
     .help = "seconds"},
    {.name = NULL},
};

/* under systemd, StateDirectory= tells where our state lives */
static void server_init(void *sec)
{
  struct server_conf *s = sec;
  const char *sd = getenv("STATE_DIRECTORY");

  if (sd != NULL && sd[0] != '\0') {
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", sd);
    buf[strcspn(buf, ":")] = '\0';
    config_set_string(&s->state_dir, buf);
  }
}

static int row_udp(const struct front_row *r) { return r->datagram; }

static void server_check(void *sec, const struct conf_section *self, const struct config *c,
                         struct config_errors *errs)
{
  struct server_conf *s = sec;
  struct admin_conf *a = config_section(c, "admin");
  int listening = 0;

  (void)self;
  if (a != NULL && a->token_file[0] == '\0') {
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s/admin.token", s->state_dir);
    config_set_string(&a->token_file, buf);
  }
  for (const struct front_row *const *r = fronts_table; *r; r++) {
    const struct front_conf *fc = front_conf_of(c, *r);
    if (fc != NULL && (*r)->proto >= 0)
      listening += fc->listen.n;
  }
  if (listening == 0)
    config_errors_add(errs, "%s: no device front ([http], [https], ...) has a listen address",
                      c->source);
  /* one address, one section (of the same transport) */
  for (const struct front_row *const *p = fronts_table; *p; p++)
    for (const struct front_row *const *q = p + 1; *q; q++) {
      const struct front_conf *a1 = front_conf_of(c, *p), *b1 = front_conf_of(c, *q);
      if (a1 == NULL || b1 == NULL || row_udp(*p) != row_udp(*q))
        continue;
      for (int i = 0; i < a1->listen.n; i++)
        for (int j = 0; j < b1->listen.n; j++)
          if (strcmp(a1->listen.addr[i].text, b1->listen.addr[j].text) == 0)
            config_errors_add(errs, "%s: %s is both an [%s] and an [%s] address", c->source,
                              a1->listen.addr[i].text, (*p)->section, (*q)->section);
    }
}

static const char *const backend_choices[] = {"sqlite", "postgresql", NULL};
static const char *const nodes_choices[] = {"single", "shared", NULL};

static const struct conf_row store_rows[] = {
    {.name = "flush_interval",
     .type = T_INT,
     .offset = offsetof(struct store_conf, flush_interval_ms),
     .def = "250",
     .min = 10,
     .max = 1000,
     .help = "milliseconds",
     /* the store's writer takes it when it opens */
     .reload = RELOAD_RESTART},
    {.name = "backend",
     .type = T_CHOICE,
     .offset = offsetof(struct store_conf, backend),
     .def = "sqlite",
     .choices = backend_choices,
     .help = "the database: sqlite (a file in state_dir) or postgresql (the server the postgresql "
             "key names)",
     .reload = RELOAD_RESTART},
    {.name = "postgresql",
     .type = T_STRING,
     .offset = offsetof(struct store_conf, postgresql),
     .def = "",
     .help = "libpq connection string or URI (backend = postgresql)",
     .reload = RELOAD_RESTART},
    {.name = "nodes",
     .type = T_CHOICE,
     .offset = offsetof(struct store_conf, nodes),
     .def = "single",
     .choices = nodes_choices,
     .help = "single (this node alone uses the database) or shared (several nodes share one "
             "PostgreSQL database and one package folder; README \"Several nodes\")",
     .reload = RELOAD_RESTART},
    {.name = NULL},
};

/* Whether a libpq connection string (KEY=VALUE words or a URI) carries a
 * password: a password keyword, a URI's user:password@ or its
 * ?password= parameter. */
static int conninfo_has_password(const char *ci)
{
  if (strncmp(ci, "postgresql://", 13) == 0 || strncmp(ci, "postgres://", 11) == 0) {
    const char *auth = strstr(ci, "://") + 3;
    size_t n = strcspn(auth, "/?");
    const char *at = memchr(auth, '@', n), *q = strchr(ci, '?');
    if (at != NULL && memchr(auth, ':', (size_t)(at - auth)) != NULL)
      return 1;
    for (; q != NULL; q = strchr(q + 1, '&'))
      if (strncmp(q + 1, "password=", 9) == 0)
        return 1;
    return 0;
  }
  for (const char *p = strstr(ci, "password"); p != NULL; p = strstr(p + 1, "password")) {
    const char *e = p + 8;
    if (p != ci && !isspace((unsigned char)p[-1]))
      continue;
    while (isspace((unsigned char)*e))
      e++;
    if (*e == '=')
      return 1;
  }
  return 0;
}

/* [store]: PostgreSQL's connection string with its backend; a password in
 * it needs a file only its owner reads, as the token file. */
static void store_check(void *sec, const struct conf_section *self, const struct config *c,
                        struct config_errors *errs)
{
  struct store_conf *s = sec;
  struct stat st;

  (void)self;
  if (s->backend == STORE_POSTGRESQL && s->postgresql[0] == '\0')
    config_errors_add(errs, "%s: [store] backend = postgresql needs postgresql = CONNINFO",
                      c->source);
  if (s->nodes == STORE_NODES_SHARED && s->backend != STORE_POSTGRESQL)
    config_errors_add(errs,
                      "%s: [store] nodes = shared needs backend = postgresql (an SQLite file "
                      "serves one node)",
                      c->source);
#ifndef HAVE_LIBPQ
  else if (s->backend == STORE_POSTGRESQL)
    config_errors_add(errs,
                      "%s: [store] backend = postgresql: this dfotad was built without it"
                      " (configure --with-postgresql)",
                      c->source);
#endif
  if (!conninfo_has_password(s->postgresql) || strcmp(c->source, "(defaults)") == 0)
    return;
  if (stat(c->source, &st) < 0)
    config_errors_add(errs, "%s: %s", c->source, strerror(errno));
  else if (st.st_mode & (S_IRWXG | S_IRWXO))
    config_errors_add(errs,
                      "%s: [store] postgresql holds a password, so the file must be mode 0600"
                      " (it is %04o); or keep the password in a ~/.pgpass file",
                      c->source, (unsigned)(st.st_mode & 0777));
}

#define FL(f) offsetof(struct fleet_conf, f)
static const struct conf_row fleet_rows[] = {
    {.name = "token_header",
     .type = T_PATH,
     .offset = FL(token_header),
     .def = "X-Device-Token",
     .help = "header carrying a device's secret"},
    {.name = "events_per_device",
     .type = T_INT,
     .offset = FL(events_per_device),
     .def = "1000",
     .min = 10,
     .max = 1000000,
     .help = "events kept per device; the oldest go"},
    {.name = "report_lines",
     .type = T_INT,
     .offset = FL(report_lines),
     .def = "64",
     .min = 1,
     .max = 1000,
     .help = "URC lines in one report"},
    {.name = "recheck_interval",
     .type = T_INT,
     .offset = FL(recheck_interval),
     .def = "60",
     .min = 0,
     .max = 86400,
     .help = "seconds between two re-checks of a package devices report corrupt"},
    {.name = "auth_failures",
     .type = T_INT,
     .offset = FL(auth_failures),
     .def = "10",
     .min = 1,
     .max = 1000000,
     .help = "failed credentials per address or device id and minute before a lock-out"},
    {.name = "psk_generate_bytes",
     .type = T_INT,
     .offset = FL(psk_generate_bytes),
     .def = "16",
     .min = 16,
     .max = 64,
     .help =
         "bytes of a DTLS key made by \"psk\": \"generate\" (tinydtls clients take at most 16)"},
    {.name = NULL},
};

const struct conf_section server_conf_section = {.name = "server",
                                                 .size = sizeof(struct server_conf),
                                                 .rows = server_rows,
                                                 .init = server_init,
                                                 .check = server_check};
const struct conf_section store_conf_section = {
    .name = "store", .size = sizeof(struct store_conf), .rows = store_rows, .check = store_check};
const struct conf_section fleet_conf_section = {
    .name = "fleet", .size = sizeof(struct fleet_conf), .rows = fleet_rows};
