/* backup_cli.c: dfotad --backup DIR and --restore DIR.
 *
 * --backup works on the state directory from a second process, beside a
 * running dfotad (or a stopped one): store_backup() takes an SQLite online
 * backup (one read snapshot; in WAL mode dfotad keeps committing) and the
 * package files it refers to, plus the PSK seal key and the admin token.
 * Run it as root or as the user dfotad runs as.
 *
 * --restore fills an empty (or absent) state directory from such a backup,
 * after checking every hash of its manifest. As root, what it writes is
 * then given to the owner of the state directory (or to [server] user),
 * so that dfotad, running as that user, can use it. */
#include "autoconfig.h"

#include <errno.h>
#include <ftw.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../store/backup.h"
#include "../util/config.h"
#include "admin/admin_conf.h"
#include "cli.h"
#include "fronts.h"
#include "server_conf.h"

static uid_t owner_uid;
static gid_t owner_gid;

static int chown_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  if (lchown(path, owner_uid, owner_gid) < 0)
    fprintf(stderr, "dfotad: chown %s: %s\n", path, strerror(errno));
  return 0;
}

/* Who should own a restored state directory: its owner when it exists,
 * else [server] user. 0 when found. */
static int restore_owner(const struct server_conf *c)
{
  struct stat st;
  struct passwd *pw;

  if (stat(c->state_dir, &st) == 0 && st.st_uid != 0) {
    owner_uid = st.st_uid;
    owner_gid = st.st_gid;
    return 0;
  }
  if (c->user[0] != '\0' && (pw = getpwnam(c->user)) != NULL) {
    owner_uid = pw->pw_uid;
    owner_gid = pw->pw_gid;
    return 0;
  }
  return -1;
}

int backup_cli(const char *conf_file, char *const *overrides, int n_overrides,
               const char *backup_dir, const char *restore_dir)
{
  struct config_errors errs = {0};
  struct config *conf = dfotad_config_load(conf_file, overrides, n_overrides, &errs);
  const struct server_conf *c;
  const char *token_file;
  struct backup_counts n;
  char psk[4096], err[1024] = "", info[128];
  int rc, chown_after;

  if (conf == NULL || errs.n > 0) {
    for (int i = 0; i < errs.n; i++)
      fprintf(stderr, "%s\n", errs.msg[i]);
    fprintf(stderr, "configuration %s: errors found\n", conf_file ? conf_file : "(defaults)");
    config_errors_clear(&errs);
    config_free(conf);
    return 1;
  }
  c = config_section(conf, "server");
  token_file = ((const struct admin_conf *)config_section(conf, "admin"))->token_file;
  snprintf(psk, sizeof(psk), "%s/psk.key", c->state_dir);
  struct backup_extra extra[] = {
      {"psk.key", psk, 1},
      {"admin.token", token_file, 1},
  };
  if (backup_dir != NULL) {
    umask(077); /* the backup holds secrets: the caller's alone */
    snprintf(info, sizeof(info), "dfotad %s", PACKAGE_VERSION);
    rc = store_backup(c->state_dir, backup_dir, extra, 2, info, &n, err, sizeof(err));
    if (rc == 0)
      printf("backup of %s in %s: %d packages, %llu bytes, %d snapshot(s)%s\n", c->state_dir,
             backup_dir, n.packages, (unsigned long long)n.bytes, n.attempts,
             n.damaged ? " (damaged packages left out: see above)" : "");
  } else {
    umask(027); /* as dfotad's own files */
    chown_after = geteuid() == 0 && restore_owner(c) == 0;
    rc = store_restore(restore_dir, c->state_dir, extra, 2, &n, err, sizeof(err));
    if (rc == 0 && chown_after) {
      nftw(c->state_dir, chown_one, 16, FTW_PHYS);
      if (strncmp(token_file, c->state_dir, strlen(c->state_dir)) != 0)
        chown_one(token_file, NULL, 0, NULL);
    }
    if (rc == 0)
      printf("restored %s into %s: %d packages, %llu bytes\n", restore_dir, c->state_dir,
             n.packages, (unsigned long long)n.bytes);
  }
  if (rc < 0)
    fprintf(stderr, "dfotad: %s: %s\n", backup_dir ? "backup" : "restore", err);
  config_free(conf);
  return rc < 0 ? 1 : 0;
}
