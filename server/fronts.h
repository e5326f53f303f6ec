/* fronts.h: the fronts table: every front this daemon runs, a row each,
 * and the configuration sections they and the daemon declare. Adding a
 * protocol is a folder under server/ with a header that declares its rows
 * (front row and config section), and a row in server/fronts.c. No front
 * includes another's headers, nor this one: only the listener, main and
 * server_conf.c read the table. */
#ifndef DFOTAD_FRONTS_H
#define DFOTAD_FRONTS_H

#include "../net/front.h"

/* NULL-terminated */
extern const struct front_row *const fronts_table[];

/* Every config section of the daemon, NULL-terminated: [server], [store],
 * [fleet], then each front's. For config_load and config_each_row (the
 * manual page is generated from it). */
const struct conf_section *const *dfotad_sections(void);

/* config_load over dfotad_sections(). */
struct config *dfotad_config_load(const char *file, char *const *overrides, int n_overrides,
                                  struct config_errors *errs);

/* The TLS sets of a configuration: one per front section that listens and
 * has a certificate, each read and built once (tls_set.h). */
struct front_tls_sets {
  struct front_tls set[16];
  int n;
};
/* Builds them; 0, or -1 with errors added and nothing left. */
int fronts_tls_build(const struct config *c, struct front_tls_sets *out,
                     struct config_errors *errs);
/* Lets go of the references fronts_tls_build took. */
void fronts_tls_release(struct front_tls_sets *s);

#endif
