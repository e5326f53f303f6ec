/* backup.h: a consistent copy of a state directory, taken by a second
 * process while dfotad runs on it, and its restore into an empty one.
 *
 * A backup directory holds
 *   dfotad.db            SQLite online backup of the database (one read
 *                        snapshot: every commit before it, none after)
 *   packages/<sha256>    the files the snapshot's packages refer to
 *   <extra>              further files the caller names (psk.key, ...)
 *   BACKUP               what was copied, when, by which version
 *   MANIFEST             "SHA256  NAME" per file (sha256sum -c reads it),
 *                        written last: a backup without it is incomplete */
#ifndef DFOTAD_STORE_BACKUP_H
#define DFOTAD_STORE_BACKUP_H

#include <stddef.h>
#include <stdint.h>

/* A file beside the database: its name in the backup and its path on the
 * server. An optional one may be missing. */
struct backup_extra {
  const char *name;
  const char *path;
  int optional;
};

struct backup_counts {
  int packages;   /* package files copied */
  int damaged;    /* package files left out: missing or not their hash */
  uint64_t bytes; /* of every file copied */
  int attempts;   /* snapshots taken (a package deleted meanwhile: again) */
};

/* Copies state_dir into out_dir (created 0700; when it exists it must be
 * empty). info is a line for BACKUP (who made it). 0, or -1 with err. */
int store_backup(const char *state_dir, const char *out_dir, const struct backup_extra *extra,
                 int n_extra, const char *info, struct backup_counts *counts, char *err,
                 size_t errlen);

/* Checks every hash of in_dir's MANIFEST, then copies it into state_dir,
 * which must be empty or absent, and opens the database once (migrations,
 * integrity check). Extras go to their path unless a file is there
 * already (kept, with a warning). On failure nothing stays in state_dir.
 * 0, or -1 with err. */
int store_restore(const char *in_dir, const char *state_dir, const struct backup_extra *extra,
                  int n_extra, struct backup_counts *counts, char *err, size_t errlen);

/* "SQLite 3.40.1 (3.40.1)": the library running, and the one built with. */
const char *store_backend_version(void);

#endif
