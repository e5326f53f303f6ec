/* cli.h: what main.c calls besides the daemon's life cycle: --version,
 * --backup and --restore (backup_cli.c), and the service manager's
 * notifications (notify.c). */
#ifndef DFOTAD_CLI_H
#define DFOTAD_CLI_H

#include <stdio.h>

void version_print(FILE *out);

/* dfotad [-c FILE] [--set ...] --backup DIR | --restore DIR: the exit code. */
int backup_cli(const char *conf_file, char *const *overrides, int n_overrides,
               const char *backup_dir, const char *restore_dir);

/* sd_notify(3)'s datagram protocol on $NOTIFY_SOCKET, without libsystemd;
 * each is a no-op when dfotad was not started by systemd (Type=notify). */
void notify_ready(void);
void notify_reloading(void);
void notify_stopping(void);
/* From the main loop: WATCHDOG=1 every half of $WATCHDOG_USEC. */
void notify_watchdog(void);

#endif
