/* ftp_cmd.c: the FTP front's parsers (see ftp_cmd.h). Nothing here does
 * I/O or allocates: every input is bounded by its caller (a command line
 * is at most FTP_LINE_MAX bytes) and every output goes to a given buffer. */
#include "autoconfig.h"

#include "ftp_cmd.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../../util/limits.h"

static const struct {
  const char *name;
  enum ftp_verb verb;
} verbs[] = {
    {"USER", V_USER},  {"PASS", V_PASS},  {"AUTH", V_AUTH},  {"PBSZ", V_PBSZ},  {"PROT", V_PROT},
    {"CCC", V_CCC},    {"SYST", V_SYST},  {"FEAT", V_FEAT},  {"OPTS", V_OPTS},  {"HELP", V_HELP},
    {"NOOP", V_NOOP},  {"QUIT", V_QUIT},  {"STAT", V_STAT},  {"TYPE", V_TYPE},  {"MODE", V_MODE},
    {"STRU", V_STRU},  {"ALLO", V_ALLO},  {"PWD", V_PWD},    {"XPWD", V_PWD},   {"CWD", V_CWD},
    {"XCWD", V_CWD},   {"CDUP", V_CDUP},  {"XCUP", V_CDUP},  {"SIZE", V_SIZE},  {"MDTM", V_MDTM},
    {"REST", V_REST},  {"RETR", V_RETR},  {"PASV", V_PASV},  {"EPSV", V_EPSV},  {"PORT", V_PORT},
    {"EPRT", V_EPRT},  {"LIST", V_LIST},  {"NLST", V_NLST},  {"MLSD", V_MLSD},  {"MLST", V_MLST},
    {"ABOR", V_ABOR},  {"STOR", V_WRITE}, {"STOU", V_WRITE}, {"APPE", V_WRITE}, {"DELE", V_WRITE},
    {"MKD", V_WRITE},  {"XMKD", V_WRITE}, {"RMD", V_WRITE},  {"XRMD", V_WRITE}, {"RNFR", V_WRITE},
    {"RNTO", V_WRITE}, {"SITE", V_SITE},
};

enum ftp_parse ftp_cmd_parse(char *line, size_t len, struct ftp_cmd *out)
{
  size_t i = 0, n = 0, end = len;

  memset(out, 0, sizeof(*out));
  out->arg = "";
  if (memchr(line, '\0', len) != NULL)
    return FTP_NUL;
  /* Telnet "interrupt process" and "synch" (IAC IP IAC DM) precede an
   * urgent ABOR; any byte outside ASCII before the verb is such noise */
  while (i < len && (unsigned char)line[i] >= 0x80)
    i++;
  while (end > i && line[end - 1] == '\r')
    end--;
  line[end] = '\0'; /* the line's buffer holds len + 1 bytes */
  if (i == end)
    return FTP_EMPTY;
  while (i + n < end && n < 5 && isalpha((unsigned char)line[i + n])) {
    if (n < 4)
      out->name[n] = (char)toupper((unsigned char)line[i + n]);
    n++;
  }
  if (n < 3 || n > 4 || (i + n < end && line[i + n] != ' '))
    return FTP_BAD;
  out->name[n] = '\0';
  if (i + n < end) {
    char *a = line + i + n + 1;
    /* SECURITY: arguments become paths and numbers; no control
     * characters, which could also forge lines in our replies and logs */
    for (char *p = a; *p; p++)
      if ((unsigned char)*p < 0x20 || *p == 0x7f)
        return FTP_BAD;
    out->arg = a;
  }
  out->verb = V_UNKNOWN;
  for (size_t k = 0; k < sizeof(verbs) / sizeof(verbs[0]); k++)
    if (strcmp(out->name, verbs[k].name) == 0) {
      out->verb = verbs[k].verb;
      break;
    }
  return FTP_OK;
}

int ftp_parse_u64(const char *s, uint64_t *out)
{
  uint64_t v = 0;

  if (*s == '\0')
    return -1;
  for (; *s; s++) {
    uint64_t d = (uint64_t)(*s - '0');
    if (!isdigit((unsigned char)*s) || v > UINT64_MAX / 10 ||
        (v == UINT64_MAX / 10 && d > UINT64_MAX % 10))
      return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

/* A decimal number 0..max of at most 5 digits, ending at a delimiter. */
static const char *number(const char *s, unsigned max, char delim, unsigned *out)
{
  unsigned v = 0;
  int n = 0;

  while (isdigit((unsigned char)*s) && n < 6) {
    v = v * 10 + (unsigned)(*s++ - '0');
    n++;
  }
  if (n == 0 || n > 5 || v > max || *s != delim)
    return NULL;
  *out = v;
  return s;
}

int ftp_parse_port(const char *s, struct sockaddr_storage *out, socklen_t *len)
{
  struct sockaddr_in *a = (struct sockaddr_in *)out;
  unsigned v[6];

  for (int i = 0; i < 6; i++) {
    s = number(s, 255, i == 5 ? '\0' : ',', &v[i]);
    if (s == NULL)
      return -1;
    if (i < 5)
      s++;
  }
  memset(out, 0, sizeof(*out));
  a->sin_family = AF_INET;
  a->sin_addr.s_addr = htonl(v[0] << 24 | v[1] << 16 | v[2] << 8 | v[3]);
  a->sin_port = htons((uint16_t)(v[4] << 8 | v[5]));
  *len = sizeof(*a);
  return 0;
}

int ftp_parse_eprt(const char *s, struct sockaddr_storage *out, socklen_t *len)
{
  char d = s[0], host[INET6_ADDRSTRLEN];
  const char *p, *q;
  unsigned af, port;
  size_t hl;

  if (d < 33 || d > 126 || isdigit((unsigned char)d))
    return -1;
  p = number(s + 1, 2, d, &af);
  if (p == NULL || af < 1)
    return -1;
  q = strchr(p + 1, d);
  if (q == NULL)
    return -1;
  hl = (size_t)(q - (p + 1));
  if (hl == 0 || hl >= sizeof(host))
    return -1;
  memcpy(host, p + 1, hl);
  host[hl] = '\0';
  p = number(q + 1, 65535, d, &port);
  if (p == NULL || p[1] != '\0' || port == 0)
    return -1;
  memset(out, 0, sizeof(*out));
  if (af == 1) {
    struct sockaddr_in *a = (struct sockaddr_in *)out;
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
      return -1;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    *len = sizeof(*a);
  } else {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
      return -1;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    *len = sizeof(*a);
  }
  return 0;
}

int ftp_parse_port_range(const char *s, int *lo, int *hi)
{
  unsigned a, b;
  const char *p;

  if (*s == '\0') {
    *lo = *hi = 0;
    return 0;
  }
  p = number(s, 65535, '-', &a);
  if (p == NULL || number(p + 1, 65535, '\0', &b) == NULL || a < 1024 || b < a)
    return -1;
  *lo = (int)a;
  *hi = (int)b;
  return 0;
}

int ftp_path_resolve(const char *cwd, const char *arg, char *out, size_t outlen)
{
  char buf[2 * FTP_PATH_MAX + 2];
  size_t n = 0, seg[FTP_PATH_MAX / 2 + 1];
  int depth = 0;
  const char *src[2] = {cwd, arg};

  if (strlen(cwd) > FTP_PATH_MAX || strlen(arg) > FTP_PATH_MAX || outlen < 2)
    return -1;
  if (arg[0] == '/')
    src[0] = "";
  out[0] = '\0';
  for (int k = 0; k < 2; k++) {
    const char *p = src[k];
    while (*p) {
      const char *e;
      size_t l;
      while (*p == '/')
        p++;
      if (*p == '\0')
        break;
      e = strchr(p, '/');
      l = e ? (size_t)(e - p) : strlen(p);
      for (size_t i = 0; i < l; i++)
        if ((unsigned char)p[i] < 0x20)
          return -1;
      if (l == 1 && p[0] == '.') {
        /* nothing */
      } else if (l == 2 && p[0] == '.' && p[1] == '.') {
        /* SECURITY: nothing exists above the login's root; climbing
         * there is refused rather than silently clamped */
        if (depth == 0)
          return -1;
        n = seg[--depth];
      } else {
        if (depth >= (int)(sizeof(seg) / sizeof(seg[0])) || n + 1 + l >= sizeof(buf))
          return -1;
        seg[depth++] = n;
        buf[n++] = '/';
        memcpy(buf + n, p, l);
        n += l;
      }
      p += l;
    }
  }
  if (n == 0)
    buf[n++] = '/';
  if (n >= outlen)
    return -1;
  memcpy(out, buf, n);
  out[n] = '\0';
  return 0;
}

void ftp_time14(int64_t t, char *out, size_t outlen)
{
  time_t tt = (time_t)t;
  struct tm tm;

  if (gmtime_r(&tt, &tm) == NULL || strftime(out, outlen, "%Y%m%d%H%M%S", &tm) == 0)
    snprintf(out, outlen, "19700101000000");
}

int ftp_list_line(char *out, size_t outlen, int dir, const char *name, uint64_t size, int64_t mtime,
                  int64_t now)
{
  static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t tt = (time_t)mtime;
  struct tm tm;
  char when[48];
  int n;

  if (gmtime_r(&tt, &tm) == NULL)
    memset(&tm, 0, sizeof(tm));
  /* ls -l's rule: the year instead of the time for entries older than
   * six months or in the future */
  if (mtime > now || now - mtime > 182 * 24 * 3600)
    snprintf(when, sizeof(when), "%s %2d  %4d", mon[tm.tm_mon % 12], tm.tm_mday, tm.tm_year + 1900);
  else
    snprintf(when, sizeof(when), "%s %2d %02d:%02d", mon[tm.tm_mon % 12], tm.tm_mday, tm.tm_hour,
             tm.tm_min);
  n = snprintf(out, outlen, "%s    1 ftp      ftp      %12llu %s %s\r\n",
               dir ? "dr-xr-xr-x" : "-r--r--r--", (unsigned long long)size, when, name);
  return n < 0 || (size_t)n >= outlen ? -1 : n;
}

int ftp_mlsx_facts(char *out, size_t outlen, const char *type, const char *name, uint64_t size,
                   int64_t mtime)
{
  char t14[20];
  int n;

  ftp_time14(mtime, t14, sizeof(t14));
  if (strcmp(type, "file") == 0)
    n = snprintf(out, outlen, "type=file;size=%llu;modify=%s;perm=r; %s", (unsigned long long)size,
                 t14, name);
  else
    n = snprintf(out, outlen, "type=%s;modify=%s;perm=el; %s", type, t14, name);
  return n < 0 || (size_t)n >= outlen ? -1 : n;
}
