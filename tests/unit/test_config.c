/* test_config.c: the configuration machinery (file parser, overrides,
 * reload classes) over dfotad's sections, and over a section of its own. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/admin/admin_conf.h"
#include "server/coap/coap_conf.h"
#include "server/fronts.h"
#include "server/ftp/ftp_conf.h"
#include "server/http/http_conf.h"
#include "server/server_conf.h"
#include "util/config.h"
#include "unit.h"

#define SRV(c) ((struct server_conf *)config_section(c, "server"))
#define HTTP(c) ((struct http_conf *)config_section(c, "http"))
#define HTTPS(c) ((struct http_conf *)config_section(c, "https"))
#define FTP(c) ((struct ftp_conf *)config_section(c, "ftp"))
#define FTPS(c) ((struct ftp_conf *)config_section(c, "ftps"))
#define ADMIN(c) ((struct admin_conf *)config_section(c, "admin"))

static char path[64];

struct rows {
  int n, ftp_reuse, restart;
  const char *last;
};

static void count(const struct conf_section *sec, const struct conf_row *row, void *arg)
{
  struct rows *r = arg;

  r->n++;
  if (strcmp(sec->name, "ftp") == 0 && strcmp(row->name, "tls_session_reuse") == 0)
    r->ftp_reuse++;
  if (row->reload == RELOAD_RESTART)
    r->restart++;
  r->last = row->name;
}

static struct config *load_text(const char *text, char *const *ov, int nov,
                                struct config_errors *errs)
{
  FILE *f = fopen(path, "w");

  fputs(text, f);
  fclose(f);
  config_errors_clear(errs);
  return dfotad_config_load(path, ov, nov, errs);
}

/* The first error names the file and this line. */
static void expect_error(const char *text, int line, const char *needle)
{
  struct config_errors errs = {0};
  struct config *c = load_text(text, NULL, 0, &errs);
  char want[128];

  snprintf(want, sizeof(want), "%s:%d:", path, line);
  CHECK(c == NULL);
  CHECK(errs.n >= 1);
  if (errs.n >= 1) {
    CHECK(strncmp(errs.msg[0], want, strlen(want)) == 0);
    CHECK(strstr(errs.msg[0], needle) != NULL);
    if (strstr(errs.msg[0], needle) == NULL || strncmp(errs.msg[0], want, strlen(want)) != 0)
      fprintf(stderr, "  got \"%s\", want \"%s...%s\"\n", errs.msg[0], want, needle);
  }
  config_free(c);
  config_errors_clear(&errs);
}

int main(void)
{
  struct config_errors errs = {0};
  struct config *c;
  uint64_t sz;
  struct listen_addr a;

  snprintf(path, sizeof(path), "/tmp/dfotad-test-config-%d.conf", (int)getpid());
  unsetenv("STATE_DIRECTORY");

  /* embedded defaults */
  c = dfotad_config_load(NULL, NULL, 0, &errs);
  CHECK(c != NULL);
  if (c != NULL) {
    CHECK(strcmp(SRV(c)->state_dir, DEF_STATE_DIR) == 0);
    CHECK(HTTP(c)->base.listen.n == 1 &&
          strcmp(HTTP(c)->base.listen.addr[0].text, "127.0.0.1:8080") == 0);
    CHECK(ADMIN(c)->base.listen.n == 1 &&
          strcmp(ADMIN(c)->base.listen.addr[0].text, "127.0.0.1:8081") == 0);
    CHECK(HTTPS(c)->base.listen.n == 0);
    CHECK(HTTP(c)->base.timeout == 60);
    CHECK(strcmp(HTTP(c)->base.public_url, "http://127.0.0.1:8080") == 0);
    CHECK(strcmp(ADMIN(c)->token_file, "./var/dfotad/admin.token") == 0);
    CHECK(ADMIN(c)->max_upload_size == 1024ULL * 1024 * 1024);
  }
  config_free(c);

  /* systemd's StateDirectory */
  setenv("STATE_DIRECTORY", "/var/lib/dfotad", 1);
  c = dfotad_config_load(NULL, NULL, 0, &errs);
  CHECK(c != NULL && strcmp(SRV(c)->state_dir, "/var/lib/dfotad") == 0);
  config_free(c);
  unsetenv("STATE_DIRECTORY");

  /* a full file */
  c = load_text("# comment\n; comment\n[server]\nstate_dir = /tmp/x\nlog_level = debug\n"
                "[http]\nlisten = 127.0.0.1:1 [::1]:2\nlisten = *:3\ntimeout = 5\n"
                "public_url = http://fota.example.com:8080/\n"
                "[admin]\nmax_upload_size = 5M\n",
                NULL, 0, &errs);
  CHECK(c != NULL);
  if (c != NULL) {
    CHECK(SRV(c)->log_level == LOG_DEBUG);
    CHECK(HTTP(c)->base.listen.n == 3);
    CHECK(HTTP(c)->base.timeout == 5);
    CHECK(strcmp(HTTP(c)->base.public_url, "http://fota.example.com:8080") == 0);
    CHECK(ADMIN(c)->max_upload_size == 5ULL * 1024 * 1024);
    CHECK(ADMIN(c)->base.listen.n == 1); /* untouched default */
  }
  config_free(c);

  /* overrides replace lists and win over the file */
  {
    char *ov[] = {"http.listen=127.0.0.1:9", "http.timeout=7"};
    c = load_text("[http]\nlisten = 127.0.0.1:1 127.0.0.1:2\ntimeout = 5\n", ov, 2, &errs);
    CHECK(c != NULL && HTTP(c)->base.listen.n == 1 && HTTP(c)->base.timeout == 7);
    config_free(c);
  }
  {
    char *ov[] = {"http.nosuch=1"};
    c = load_text("", ov, 1, &errs);
    CHECK(c == NULL && errs.n == 1 && strstr(errs.msg[0], "--set http.nosuch") != NULL);
    config_free(c);
  }

  /* errors name the file and line */
  expect_error("[server]\nnosuch = 1\n", 2, "unknown key");
  expect_error("[nosuch]\nx = 1\n", 1, "unknown section");
  expect_error("[http]\n\ntimeout = abc\n", 3, "not a whole number");
  expect_error("[http]\ntimeout = 0\n", 2, "between");
  expect_error("[http]\nlisten = nonsense\n", 2, "bad address");
  expect_error("[http]\nlisten = 127.0.0.1:99999\n", 2, "bad address");
  expect_error("[http]\npublic_url = http://example.com/\n", 2, "explicit port");
  expect_error("[server]\nlog_level = loud\n", 2, "one of");
  expect_error("timeout = 1\n", 1, "outside any");
  expect_error("[http]\njust words\n", 2, "KEY = VALUE");
  expect_error("[https]\nclient_auth = sometimes\n", 2, "none, optional");
  expect_error("[https]\nsni = only-a-name\n", 2, "NAME CERTFILE KEYFILE");
  expect_error("[admin]\nmax_upload_size = 5Q\n", 2, "not a size");

  /* cross-option checks */
  c = load_text("[https]\nlisten = 127.0.0.1:8443\n", NULL, 0, &errs);
  CHECK(c == NULL && errs.n == 1 && strstr(errs.msg[0], "needs cert and key") != NULL);
  c = load_text("[https]\nclient_auth = required\n", NULL, 0, &errs);
  CHECK(c == NULL && errs.n == 1 && strstr(errs.msg[0], "needs client_ca") != NULL);
  c = load_text("[admin]\nlisten = 127.0.0.1:8080\n", NULL, 0, &errs);
  CHECK(c == NULL && errs.n == 1);
  c = load_text("[http]\nlisten =\n[coap]\nlisten =\n[ftp]\nlisten =\n", NULL, 0, &errs);
  CHECK(c == NULL && errs.n == 1 && strstr(errs.msg[0], "no device front") != NULL);
  /* [ftp] is on by default: on its own it is a device front */
  c = load_text("[http]\nlisten =\n", NULL, 0, &errs);
  CHECK(c != NULL && FTP(c)->base.listen.n == 1 &&
        strcmp(FTP(c)->base.listen.addr[0].text, DEF_FTP_LISTEN) == 0);
  config_free(c);
  /* the FTP sections' own keys */
  c = load_text("[ftp]\npasv_ports = 50000-50100\nrequire_tls = no\nport_enable = yes\n"
                "login_timeout = 5\n[ftps]\npasv_address = 192.0.2.1\n",
                NULL, 0, &errs);
  CHECK(c != NULL && FTP(c)->pasv_ports.lo == 50000 && FTP(c)->pasv_ports.hi == 50100 &&
        FTP(c)->port_enable == 1 && FTP(c)->login_timeout == 5 && FTPS(c)->base.listen.n == 0 &&
        strcmp(FTPS(c)->pasv_address, "192.0.2.1") == 0 &&
        strcmp(FTP(c)->base.public_url, "ftp://127.0.0.1:2121") == 0);
  config_free(c);
  expect_error("[ftp]\npasv_ports = 50100-50000\n", 2, "LO-HI");
  expect_error("[ftp]\npasv_ports = 80-90\n", 2, "1024");
  c = load_text("[ftp]\nrequire_tls = yes\n", NULL, 0, &errs);
  CHECK(c == NULL && errs.n == 1 && strstr(errs.msg[0], "require_tls needs cert") != NULL);
  c = load_text("[ftp]\npasv_address = fota.example.com\n", NULL, 0, &errs);
  CHECK(c == NULL && errs.n == 1 && strstr(errs.msg[0], "IPv4") != NULL);

  /* [ftp] tls_session_reuse: required by default, off, nothing else */
  c = load_text("", NULL, 0, &errs);
  CHECK(c != NULL && FTP(c)->tls_session_reuse == FTP_TLS_REUSE_REQUIRED &&
        FTPS(c)->tls_session_reuse == FTP_TLS_REUSE_REQUIRED);
  config_free(c);
  c = load_text("[ftp]\ntls_session_reuse = off\n", NULL, 0, &errs);
  CHECK(c != NULL && FTP(c)->tls_session_reuse == FTP_TLS_REUSE_OFF);
  config_free(c);
  expect_error("[ftp]\ntls_session_reuse = sometimes\n", 2, "one of off, required");

  /* [store] backend: sqlite by default; postgresql needs its connection
   * string; a password in it needs a file only its owner reads */
  c = load_text("", NULL, 0, &errs);
  CHECK(c != NULL && ((struct store_conf *)config_section(c, "store"))->backend == STORE_SQLITE);
  config_free(c);
  expect_error("[store]\nbackend = mysql\n", 2, "one of sqlite, postgresql");
  c = load_text("[store]\nbackend = postgresql\n", NULL, 0, &errs);
  CHECK(c == NULL && errs.n >= 1 && strstr(errs.msg[0], "needs postgresql = CONNINFO"));
  config_free(c);
  chmod(path, 0644);
  c = load_text("[store]\npostgresql = host=db password=x\n", NULL, 0, &errs);
  CHECK(c == NULL && errs.n >= 1 && strstr(errs.msg[0], "must be mode 0600"));
  config_free(c);
  chmod(path, 0600);
  c = load_text("[store]\npostgresql = host=db password=x\n", NULL, 0, &errs);
  CHECK(c != NULL);
  config_free(c);
  c = load_text("[store]\npostgresql = postgresql://u:pw@db/x\n", NULL, 0, &errs);
  CHECK(c != NULL);
  config_free(c);
  chmod(path, 0644);
  c = load_text("[store]\npostgresql = postgresql://u:pw@db/x\n", NULL, 0, &errs);
  CHECK(c == NULL && errs.n >= 1 && strstr(errs.msg[0], "must be mode 0600"));
  config_free(c);
  c = load_text("[store]\npostgresql = host=db user=u\n", NULL, 0, &errs);
  CHECK(c != NULL);
  config_free(c);

  /* reload classes: a key a reload cannot apply is refused, by name */
  {
    struct config *old = load_text("[http]\ntimeout = 5\n", NULL, 0, &errs), *next;
    CHECK(old != NULL);
    next = load_text("[http]\ntimeout = 9\n[server]\nlog_level = debug\n", NULL, 0, &errs);
    CHECK(next != NULL && config_reload_check(old, next, &errs) == 0 && errs.n == 0);
    config_free(next);
    next = load_text("[store]\nflush_interval = 500\n[server]\nstate_dir = /tmp/y\n"
                     "user = nobody\n",
                     NULL, 0, &errs);
    CHECK(next != NULL && config_reload_check(old, next, &errs) == 3);
    CHECK(errs.n == 3 && strstr(errs.msg[0], "[server] state_dir cannot change on a reload") &&
          strstr(errs.msg[1], "[server] user") &&
          strstr(errs.msg[2], "[store] flush_interval cannot change on a reload (250 -> 500)"));
    config_free(next);
    config_free(old);
  }

  /* every row is listed once, sections in order, the fronts' own among them */
  {
    struct rows r = {0, 0, 0, ""};
    config_each_row(dfotad_sections(), count, &r);
    CHECK(r.n > 80 && r.ftp_reuse == 1 && r.restart == 6);
    CHECK(strcmp(config_type_name(T_SIZE), "size") == 0);
  }

  /* the machinery knows no section: one of our own */
  {
    struct mine {
      int n;
      char *word;
      int pick;
    };
    static const char *const picks[] = {"a", "b", NULL};
    static const struct conf_row rows[] = {
        {.name = "n",
         .type = T_INT,
         .offset = offsetof(struct mine, n),
         .def = "3",
         .min = 1,
         .max = 5},
        {.name = "word", .type = T_PATH, .offset = offsetof(struct mine, word), .def = "x"},
        {.name = "pick",
         .type = T_CHOICE,
         .offset = offsetof(struct mine, pick),
         .def = "b",
         .choices = picks},
        {.name = NULL},
    };
    static const struct conf_section sec = {
        .name = "mine", .size = sizeof(struct mine), .rows = rows};
    static const struct conf_section *const secs[] = {&sec, NULL};
    FILE *f = fopen(path, "w");
    struct mine *m;
    fputs("[mine]\nn = 4\npick = a\n", f);
    fclose(f);
    config_errors_clear(&errs);
    c = config_load(secs, path, NULL, 0, &errs);
    m = c ? config_section(c, "mine") : NULL;
    CHECK(m != NULL && m->n == 4 && strcmp(m->word, "x") == 0 && m->pick == 0);
    CHECK(c != NULL && config_section(c, "http") == NULL);
    config_free(c);
  }

  /* helpers */
  CHECK(size_parse("10K", &sz) == 0 && sz == 10240);
  CHECK(size_parse("1G", &sz) == 0 && sz == 1073741824ULL);
  CHECK(size_parse("7", &sz) == 0 && sz == 7);
  CHECK(size_parse("-1", &sz) < 0);
  CHECK(size_parse("99999999999999999999", &sz) < 0);
  CHECK(size_parse("17179869184G", &sz) < 0);
  CHECK(listen_addr_parse("[::1]:8080", &a) == 0);
  CHECK(listen_addr_parse("::1:8080", &a) < 0);
  CHECK(listen_addr_parse("127.0.0.1:0", &a) < 0);
  CHECK(listen_addr_parse("127.0.0.1:", &a) < 0);
  CHECK(listen_addr_parse(":80", &a) < 0);

  config_errors_clear(&errs);
  unlink(path);
  return unit_done("test_config");
}
