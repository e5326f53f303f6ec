/* fronts.h: the fronts table: every front this daemon runs, a row each.
 * Adding a protocol is a folder under server/ with a header that declares
 * its rows, and a row in server/fronts.c. No front includes another's
 * headers, nor this one: only the listener and main read the table. */
#ifndef DFOTAD_FRONTS_H
#define DFOTAD_FRONTS_H

#include "../net/front.h"

/* NULL-terminated */
extern const struct front_row *const fronts_table[];

#endif
