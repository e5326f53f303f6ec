/* fuzz_ftp.c: libFuzzer target for the FTP front's parsers: command lines,
 * REST counts, PORT/EPRT addresses, the passive port range and path
 * resolution. Invariants: a parsed verb is 3 or 4 upper-case letters and
 * its argument has no control characters; a resolved path is absolute,
 * without "." or ".." segments or doubled slashes, and within its bound. */
#include "autoconfig.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/ftp/ftp_cmd.h"
#include "util/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_path(const char *p, size_t max)
{
  size_t n = strlen(p);

  if (p[0] != '/' || n >= max || (n > 1 && p[n - 1] == '/') || strstr(p, "//") != NULL ||
      strstr(p, "/./") != NULL || strstr(p, "/../") != NULL ||
      (n >= 3 && strcmp(p + n - 3, "/..") == 0) || (n >= 2 && strcmp(p + n - 2, "/.") == 0))
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *line, out[FTP_PATH_MAX + 2];
  struct ftp_cmd c;
  struct sockaddr_storage ss;
  socklen_t len;
  uint64_t v;
  int lo, hi;

  if (size > FTP_LINE_MAX)
    return 0;
  line = malloc(size + 1);
  if (line == NULL)
    return 0;
  memcpy(line, data, size);
  line[size] = '\0';
  if (ftp_cmd_parse(line, size, &c) == FTP_OK) {
    size_t n = strlen(c.name);
    if (n < 3 || n > 4)
      abort();
    for (size_t i = 0; i < n; i++)
      if (!isupper((unsigned char)c.name[i]))
        abort();
    for (const char *p = c.arg; *p; p++)
      if ((unsigned char)*p < 0x20 || *p == 0x7f)
        abort();
    ftp_parse_u64(c.arg, &v);
    ftp_parse_port(c.arg, &ss, &len);
    ftp_parse_eprt(c.arg, &ss, &len);
    if (ftp_parse_port_range(c.arg, &lo, &hi) == 0 &&
        (lo > hi || (lo != 0 && lo < 1024) || hi > 65535))
      abort();
    if (ftp_path_resolve("/", c.arg, out, sizeof(out)) == 0)
      check_path(out, sizeof(out));
    if (ftp_path_resolve("/p", c.arg, out, sizeof(out)) == 0)
      check_path(out, sizeof(out));
    if (ftp_path_resolve("/", c.arg, out, 8) == 0)
      check_path(out, 8);
  }
  free(line);
  return 0;
}
