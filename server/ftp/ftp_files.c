/* ftp_files.c: what a logged-in session sees and fetches (vsftpd's
 * postlogin.c): "/" holding the offer's one file (its name from
 * delivery_file_name), or with anonymous_packages "/p/{id}" for every
 * package, unlisted; CWD, SIZE, MDTM, MLST, LIST/NLST/MLSD and RETR, which
 * begins a transfer through the delivery core. Nothing can be written, and
 * no path a client names reaches the file system: a name is compared with
 * the one the login sees, or taken as a package id looked up in the store. */
#include "autoconfig.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ftp_cmd.h"
#include "ftp_int.h"

/* ---- the one file a login sees ------------------------------------------------ */

static int pkg_id_ok(const char *id)
{
  size_t n = strlen(id);

  if (n == 0 || n > PKG_ID_LEN)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '2' && id[i] <= '7')))
      return 0;
  return 1;
}

/* What a client's path names; path gets the resolved path and, for N_PKG,
 * id the package id. */
static enum node lookup(struct session *s, const char *arg, char *path, size_t pathlen,
                        char id[PKG_ID_LEN + 1])
{
  if (ftp_path_resolve(s->cwd, arg, path, pathlen) < 0)
    return N_NONE;
  if (strcmp(path, "/") == 0)
    return N_ROOT;
  if (s->anonymous) {
    if (strcmp(path, "/p") == 0)
      return N_PDIR;
    if (strncmp(path, "/p/", 3) == 0 && pkg_id_ok(path + 3)) {
      snprintf(id, PKG_ID_LEN + 1, "%s", path + 3);
      return N_PKG;
    }
    return N_NONE;
  }
  return path[0] == '/' && s->name[0] != '\0' && strcmp(path + 1, s->name) == 0 ? N_FILE : N_NONE;
}

/* Resolves a file node to a target (with a package reference). fetch: a
 * RETR (the offer moves to downloading). 0, or -1 after a 550 reply. */
static int resolve(struct session *s, enum node n, const char *id, int fetch, struct target *t)
{
  enum resolve r = RESOLVE_NOT_FOUND;

  memset(t, 0, sizeof(*t));
  if (n == N_FILE && !s->damaged)
    r = delivery_resolve_offer(s->ff->fleet, s->token, s->user, fetch, t);
  else if (n == N_PKG)
    r = delivery_resolve_package(s->ff->fleet, id, t);
  if (r == RESOLVE_OK && t->pkg != NULL)
    return 0;
  if (t->pkg != NULL)
    target_release(t);
  if (r == RESOLVE_UNAVAILABLE)
    session_reply(s, "450 The database does not answer; try again later.");
  else if (r == RESOLVE_DAMAGED || s->damaged)
    session_reply(s, "550 Package damaged on the server.");
  else
    session_reply(s, "550 Failed to open file.");
  return -1;
}

/* ---- listings and file facts ------------------------------------------------------ */

/* Skips ls options ("-la") some clients put before the path. */
static const char *list_path(const char *arg)
{
  while (*arg == '-') {
    while (*arg && *arg != ' ')
      arg++;
    while (*arg == ' ')
      arg++;
  }
  return arg;
}

/* A transfer may open its data connection: 0 with the refusal sent. */
static int data_allowed(struct session *s)
{
  if (s->ff->require_tls && !s->prot_p) {
    session_reply(s, "522 Data connections must be encrypted (PROT P).");
    return 0;
  }
  if (!data_ready(s)) {
    session_reply(s, "425 Use PASV or EPSV first.");
    return 0;
  }
  return 1;
}

void cmd_list(struct session *s, enum ftp_verb v, const char *arg)
{
  char path[FTP_PATH_MAX + 2], id[PKG_ID_LEN + 1], line[FTP_PATH_MAX + 160];
  struct evbuffer *text;
  struct target t;
  enum node n;
  int64_t now = (int64_t)time(NULL);
  int len = 0;

  if (!data_allowed(s))
    return;
  n = lookup(s, v == V_MLSD ? arg : list_path(arg), path, sizeof(path), id);
  if (n == N_NONE || (v == V_MLSD && n != N_ROOT && n != N_PDIR)) {
    session_reply(s, v == V_MLSD && n != N_NONE ? "501 Not a directory."
                                                : "550 No such file or directory.");
    return;
  }
  text = evbuffer_new();
  if (text == NULL) {
    session_reply(s, "451 Out of memory.");
    return;
  }
  if (n == N_ROOT && s->anonymous) {
    len = v == V_LIST   ? ftp_list_line(line, sizeof(line), 1, "p", 0, now, now)
          : v == V_NLST ? snprintf(line, sizeof(line), "p\r\n")
                        : ftp_mlsx_facts(line, sizeof(line), "dir", "p", 0, now);
  } else if (n == N_ROOT || n == N_FILE) {
    /* the offer's file; LIST of the file itself names it as asked */
    len = v == V_LIST   ? ftp_list_line(line, sizeof(line), 0, s->name, s->size, s->mtime, now)
          : v == V_NLST ? snprintf(line, sizeof(line), "%s\r\n", s->name)
                        : ftp_mlsx_facts(line, sizeof(line), "file", s->name, s->size, s->mtime);
  } else if (n == N_PKG) {
    if (resolve(s, n, id, 0, &t) < 0) {
      evbuffer_free(text);
      return;
    }
    len = v == V_LIST ? ftp_list_line(line, sizeof(line), 0, id, t.pkg->size, t.pkg->created, now)
                      : snprintf(line, sizeof(line), "%s\r\n", id);
    target_release(&t);
  } /* N_PDIR: the packages are not listed: their ids are not for browsing */
  if (len > 0) {
    evbuffer_add(text, line, (size_t)len);
    if (v == V_MLSD)
      evbuffer_add(text, "\r\n", 2);
  }
  data_list(s, text);
}

void cmd_mlst(struct session *s, const char *arg)
{
  char path[FTP_PATH_MAX + 2], id[PKG_ID_LEN + 1], facts[FTP_PATH_MAX + 160];
  enum node n = lookup(s, arg, path, sizeof(path), id);
  struct target t;
  int len = -1;

  if (n == N_ROOT || n == N_PDIR)
    len = ftp_mlsx_facts(facts, sizeof(facts), "dir", path, 0, (int64_t)time(NULL));
  else if (n == N_FILE)
    len = ftp_mlsx_facts(facts, sizeof(facts), "file", path, s->size, s->mtime);
  else if (n == N_PKG) {
    if (resolve(s, n, id, 0, &t) < 0)
      return;
    len = ftp_mlsx_facts(facts, sizeof(facts), "file", path, t.pkg->size, t.pkg->created);
    target_release(&t);
  }
  if (len < 0)
    session_reply(s, "550 No such file or directory.");
  else
    session_reply(s, "250-Listing %s\r\n %s\r\n250 End", path, facts);
}

/* SIZE (mdtm 0) or MDTM of a file. */
void cmd_size(struct session *s, const char *arg, int mdtm)
{
  char path[FTP_PATH_MAX + 2], id[PKG_ID_LEN + 1], t14[20];
  enum node n = lookup(s, arg, path, sizeof(path), id);
  uint64_t size = s->size;
  int64_t mtime = s->mtime;
  struct target t;

  if (n == N_PKG) {
    if (resolve(s, n, id, 0, &t) < 0)
      return;
    size = t.pkg->size;
    mtime = t.pkg->created;
    target_release(&t);
  } else if (n != N_FILE) {
    session_reply(s, mdtm ? "550 Could not get file modification time."
                          : "550 Could not get file size.");
    return;
  }
  if (mdtm) {
    ftp_time14(mtime, t14, sizeof(t14));
    session_reply(s, "213 %s", t14);
  } else {
    session_reply(s, "213 %llu", (unsigned long long)size);
  }
}

void cmd_cwd(struct session *s, const char *arg)
{
  char path[FTP_PATH_MAX + 2], id[PKG_ID_LEN + 1];
  enum node n = lookup(s, arg, path, sizeof(path), id);

  if (n == N_ROOT || n == N_PDIR) {
    snprintf(s->cwd, sizeof(s->cwd), "%s", path);
    session_reply(s, "250 Directory successfully changed.");
  } else {
    session_reply(s, "550 Failed to change directory.");
  }
}

void cmd_retr(struct session *s, const char *arg)
{
  char path[FTP_PATH_MAX + 2], id[PKG_ID_LEN + 1];
  enum node n;
  struct target t;
  struct transfer *tr;
  uint64_t start = s->rest, size;

  s->rest = 0;
  if (!data_allowed(s))
    return;
  n = lookup(s, arg, path, sizeof(path), id);
  if (n != N_FILE && n != N_PKG) {
    session_reply(s, "550 Failed to open file.");
    return;
  }
  /* fetch = 0: a RETR that cannot start does not move the device */
  if (resolve(s, n, id, 0, &t) < 0)
    return;
  size = t.pkg->size;
  if (start > size) {
    target_release(&t);
    session_reply(s, "554 Restart position beyond the end of the file.");
    return;
  }
  target_fetch(s->ff->fleet, &t);
  /* explicit TLS on [ftp] counts as ftps: what crossed the network was */
  tr = transfer_begin(s->ff->fleet, &t, s->tls ? PROTO_FTPS : PROTO_FTP, s->addr);
  if (tr == NULL) {
    session_reply(s, "451 Local error: out of memory.");
    return;
  }
  transfer_request(tr);
  data_retr(s, tr, start, size - start);
}
