/* fronts.h: the fronts table: every front this daemon runs, a row each.
 * Adding a protocol is a new file and a row here. */
#ifndef DFOTAD_FRONTS_H
#define DFOTAD_FRONTS_H

#include "../net/front.h"

extern const struct front_row http_row, https_row, admin_row;
extern const struct front_row ftp_row, ftps_row; /* ftp_front.c */

/* NULL-terminated */
extern const struct front_row *const fronts_table[];

#endif
