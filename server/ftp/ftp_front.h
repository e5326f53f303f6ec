/* ftp_front.h: the FTP(S) front's rows for the fronts table: [ftp] (control
 * port, explicit TLS through AUTH TLS) and [ftps] (implicit TLS). */
#ifndef DFOTAD_FTP_FRONT_H
#define DFOTAD_FTP_FRONT_H

#include <stdint.h>

#include "../../net/front.h"

extern const struct front_row ftp_row, ftps_row;

#endif
