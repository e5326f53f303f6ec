/* admin_front.h: the admin API listener's row for the fronts table
 * (server/fronts.c); the API itself is in api/. */
#ifndef DFOTAD_ADMIN_FRONT_H
#define DFOTAD_ADMIN_FRONT_H

#include "../../net/front.h"

extern const struct front_row admin_row;

#endif
