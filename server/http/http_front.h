/* http_front.h: the HTTP(S) device front's rows for the fronts table
 * (server/fronts.c). Everything else of the front is its own. */
#ifndef DFOTAD_HTTP_FRONT_H
#define DFOTAD_HTTP_FRONT_H

#include "../../net/front.h"

extern const struct front_row http_row, https_row;

#endif
