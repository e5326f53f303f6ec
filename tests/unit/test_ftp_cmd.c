/* test_ftp_cmd.c: the FTP front's parsers on what clients, modules and
 * attackers send: command lines, REST, PORT/EPRT, the passive range, paths
 * (climbing above the root refused), listings. */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "server/ftp/ftp_cmd.h"
#include "util/limits.h"
#include "unit.h"

static enum ftp_parse parse(const char *text, struct ftp_cmd *c, char *buf, size_t buflen)
{
  size_t n = strlen(text);

  memcpy(buf, text, n + 1 <= buflen ? n + 1 : buflen);
  return ftp_cmd_parse(buf, n, c);
}

static int resolves(const char *cwd, const char *arg, const char *want)
{
  char out[FTP_PATH_MAX + 2];

  if (ftp_path_resolve(cwd, arg, out, sizeof(out)) < 0)
    return want == NULL;
  if (want == NULL || strcmp(out, want) != 0) {
    fprintf(stderr, "  resolve(%s, %s) = %s, want %s\n", cwd, arg, out, want ? want : "refusal");
    return 0;
  }
  return 1;
}

int main(void)
{
  struct ftp_cmd c;
  char buf[1024];
  struct sockaddr_storage ss;
  socklen_t len;
  uint64_t v;
  int lo, hi;

  /* command lines */
  CHECK(parse("RETR pkg.bin", &c, buf, sizeof(buf)) == FTP_OK && c.verb == V_RETR &&
        strcmp(c.arg, "pkg.bin") == 0);
  CHECK(parse("retr pkg.bin\r", &c, buf, sizeof(buf)) == FTP_OK && c.verb == V_RETR &&
        strcmp(c.name, "RETR") == 0 && strcmp(c.arg, "pkg.bin") == 0);
  CHECK(parse("PWD", &c, buf, sizeof(buf)) == FTP_OK && c.verb == V_PWD && c.arg[0] == '\0');
  CHECK(parse("XPWD", &c, buf, sizeof(buf)) == FTP_OK && c.verb == V_PWD);
  CHECK(parse("CWD ..", &c, buf, sizeof(buf)) == FTP_OK && c.verb == V_CWD);
  CHECK(parse("\xff\xf4\xff\xf2"
              "ABOR",
              &c, buf, sizeof(buf)) == FTP_OK &&
        c.verb == V_ABOR);
  CHECK(parse("STOR x", &c, buf, sizeof(buf)) == FTP_OK && c.verb == V_WRITE);
  CHECK(parse("DELE x", &c, buf, sizeof(buf)) == FTP_OK && c.verb == V_WRITE);
  CHECK(parse("XMKD x", &c, buf, sizeof(buf)) == FTP_OK && c.verb == V_WRITE);
  CHECK(parse("SITE CHMOD", &c, buf, sizeof(buf)) == FTP_OK && c.verb == V_SITE);
  CHECK(parse("FOOB", &c, buf, sizeof(buf)) == FTP_OK && c.verb == V_UNKNOWN);
  CHECK(parse("", &c, buf, sizeof(buf)) == FTP_EMPTY);
  CHECK(parse("AB", &c, buf, sizeof(buf)) == FTP_BAD);
  CHECK(parse("TOOLONG x", &c, buf, sizeof(buf)) == FTP_BAD);
  CHECK(parse("RETR\tx", &c, buf, sizeof(buf)) == FTP_BAD);
  CHECK(parse("USER a\x01"
              "b",
              &c, buf, sizeof(buf)) == FTP_BAD);
  memcpy(buf, "NO\0OP", 6);
  CHECK(ftp_cmd_parse(buf, 5, &c) == FTP_NUL);

  /* REST */
  CHECK(ftp_parse_u64("0", &v) == 0 && v == 0);
  CHECK(ftp_parse_u64("1048576", &v) == 0 && v == 1048576);
  CHECK(ftp_parse_u64("18446744073709551615", &v) == 0 && v == UINT64_MAX);
  CHECK(ftp_parse_u64("18446744073709551616", &v) < 0);
  CHECK(ftp_parse_u64("-1", &v) < 0);
  CHECK(ftp_parse_u64("", &v) < 0);
  CHECK(ftp_parse_u64("12a", &v) < 0);

  /* PORT and EPRT */
  CHECK(ftp_parse_port("127,0,0,1,200,10", &ss, &len) == 0 && ss.ss_family == AF_INET &&
        ntohs(((struct sockaddr_in *)&ss)->sin_port) == 200 * 256 + 10 &&
        ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) == 0x7f000001);
  CHECK(ftp_parse_port("127,0,0,1,256,10", &ss, &len) < 0);
  CHECK(ftp_parse_port("127,0,0,1,200", &ss, &len) < 0);
  CHECK(ftp_parse_port("127,0,0,1,200,10,1", &ss, &len) < 0);
  CHECK(ftp_parse_port("127,0,0,1,200,1x", &ss, &len) < 0);
  CHECK(ftp_parse_eprt("|1|10.0.0.1|5282|", &ss, &len) == 0 && ss.ss_family == AF_INET &&
        ntohs(((struct sockaddr_in *)&ss)->sin_port) == 5282);
  CHECK(ftp_parse_eprt("|2|::1|5282|", &ss, &len) == 0 && ss.ss_family == AF_INET6);
  CHECK(ftp_parse_eprt("!2!::1!5282!", &ss, &len) == 0);
  CHECK(ftp_parse_eprt("|1|::1|5282|", &ss, &len) < 0);
  CHECK(ftp_parse_eprt("|3|1.2.3.4|5282|", &ss, &len) < 0);
  CHECK(ftp_parse_eprt("|1|1.2.3.4|0|", &ss, &len) < 0);
  CHECK(ftp_parse_eprt("|1|1.2.3.4|70000|", &ss, &len) < 0);
  CHECK(ftp_parse_eprt("|1|1.2.3.4|5282", &ss, &len) < 0);

  /* the passive range */
  CHECK(ftp_parse_port_range("50000-50100", &lo, &hi) == 0 && lo == 50000 && hi == 50100);
  CHECK(ftp_parse_port_range("", &lo, &hi) == 0 && lo == 0 && hi == 0);
  CHECK(ftp_parse_port_range("1000-2000", &lo, &hi) < 0);
  CHECK(ftp_parse_port_range("5000-4000", &lo, &hi) < 0);
  CHECK(ftp_parse_port_range("5000-70000", &lo, &hi) < 0);

  /* paths: the tree a login sees; nothing above its root */
  CHECK(resolves("/", "pkg.bin", "/pkg.bin"));
  CHECK(resolves("/", "/pkg.bin", "/pkg.bin"));
  CHECK(resolves("/", "./pkg.bin", "/pkg.bin"));
  CHECK(resolves("/", "//a///b/", "/a/b"));
  CHECK(resolves("/p", "abc", "/p/abc"));
  CHECK(resolves("/p", "..", "/"));
  CHECK(resolves("/p", "../p/./x", "/p/x"));
  CHECK(resolves("/", "", "/"));
  CHECK(resolves("/", "..", NULL));
  CHECK(resolves("/", "../etc/passwd", NULL));
  CHECK(resolves("/", "/../pkg.bin", NULL));
  CHECK(resolves("/p", "../../x", NULL));
  memset(buf, 'a', 600);
  buf[600] = '\0';
  CHECK(resolves("/", buf, NULL));

  /* listings */
  {
    char line[512];
    CHECK(ftp_list_line(line, sizeof(line), 0, "pkg.bin", 1234, 1700000000, 1700000100) > 0 &&
          strncmp(line, "-r--r--r--", 10) == 0 && strstr(line, " 1234 ") != NULL &&
          strstr(line, "pkg.bin\r\n") != NULL);
    CHECK(ftp_list_line(line, sizeof(line), 1, "p", 0, 1700000000, 1800000000) > 0 &&
          line[0] == 'd' && strstr(line, "2023") != NULL);
    CHECK(ftp_list_line(line, 10, 0, "pkg.bin", 1, 0, 0) < 0);
    CHECK(ftp_mlsx_facts(line, sizeof(line), "file", "pkg.bin", 10, 0) > 0 &&
          strcmp(line, "type=file;size=10;modify=19700101000000;perm=r; pkg.bin") == 0);
  }
  return unit_done("test_ftp_cmd");
}
