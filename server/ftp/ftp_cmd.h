/* ftp_cmd.h: the FTP front's parsers, free of any I/O so that they can be
 * tested and fuzzed alone: a command line, numbers, PORT/EPRT addresses,
 * the passive port range, paths within the tiny tree a login sees, and the
 * text of listings. Every function takes bounded input and writes into a
 * buffer the caller gives. */
#ifndef DFOTAD_FTP_CMD_H
#define DFOTAD_FTP_CMD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ftp_limits.h"

enum ftp_verb {
  V_UNKNOWN = 0,
  V_USER,
  V_PASS,
  V_AUTH,
  V_PBSZ,
  V_PROT,
  V_CCC,
  V_SYST,
  V_FEAT,
  V_OPTS,
  V_HELP,
  V_NOOP,
  V_QUIT,
  V_STAT,
  V_TYPE,
  V_MODE,
  V_STRU,
  V_ALLO,
  V_PWD,
  V_CWD,
  V_CDUP,
  V_SIZE,
  V_MDTM,
  V_REST,
  V_RETR,
  V_PASV,
  V_EPSV,
  V_PORT,
  V_EPRT,
  V_LIST,
  V_NLST,
  V_MLSD,
  V_MLST,
  V_ABOR,
  V_WRITE, /* STOR, STOU, APPE, DELE, MKD, RMD, RNFR, RNTO and their X forms */
  V_SITE,
};

enum ftp_parse { FTP_OK = 0, FTP_EMPTY, FTP_NUL, FTP_BAD };

struct ftp_cmd {
  enum ftp_verb verb;
  char name[5];    /* the verb as sent, upper case (for replies and logs) */
  const char *arg; /* points into the line, NUL-terminated; "" when none */
};

/* Parses one command line of len bytes (without its line ending), which it
 * modifies in place (arg is NUL-terminated inside it). Leading Telnet
 * bytes (IAC IP, IAC DM, as clients send before ABOR) are skipped.
 * FTP_NUL: a NUL byte; FTP_BAD: no verb of 3 or 4 letters, or control
 * characters in the argument. */
enum ftp_parse ftp_cmd_parse(char *line, size_t len, struct ftp_cmd *out);

/* A decimal count (REST): digits only, no sign, no overflow. 0 or -1. */
int ftp_parse_u64(const char *s, uint64_t *out);

/* PORT h1,h2,h3,h4,p1,p2 into an IPv4 address. 0 or -1. */
int ftp_parse_port(const char *s, struct sockaddr_storage *out, socklen_t *len);
/* EPRT |af|address|port| (any delimiter in 33..126). 0 or -1. */
int ftp_parse_eprt(const char *s, struct sockaddr_storage *out, socklen_t *len);

/* "50000-50100" into lo and hi (1024 <= lo <= hi <= 65535); "" gives 0-0
 * (ports the kernel picks). 0 or -1. */
int ftp_parse_port_range(const char *s, int *lo, int *hi);

/* Resolves a client's path against cwd (both within the login's tree):
 * absolute or relative, "." and ".." and repeated slashes folded. out gets
 * "/" or "/a/b" without a trailing slash. -1 when the path is too long,
 * has control characters, or climbs above the root. */
int ftp_path_resolve(const char *cwd, const char *arg, char *out, size_t outlen);

/* One line of a LIST answer ("-r--r--r-- 1 ftp ftp SIZE Mon DD HH:MM NAME")
 * or, for a directory, "dr-xr-xr-x ...". now: unix seconds, for the year
 * form of old entries. Returns the length written (with CRLF), or -1. */
int ftp_list_line(char *out, size_t outlen, int dir, const char *name, uint64_t size, int64_t mtime,
                  int64_t now);
/* The MLSx facts of an entry ("type=file;size=N;modify=YYYYMMDDHHMMSS;perm=r; NAME"),
 * without a line ending. type: "file", "dir" or "cdir". -1 on overflow. */
int ftp_mlsx_facts(char *out, size_t outlen, const char *type, const char *name, uint64_t size,
                   int64_t mtime);
/* YYYYMMDDHHMMSS of unix seconds (MDTM, MLSx), in UTC. */
void ftp_time14(int64_t t, char *out, size_t outlen);

#endif
