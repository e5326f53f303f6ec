/* fronts.c: the fronts table (fronts.h). */
#include "autoconfig.h"

#include "fronts.h"

#include <stddef.h>

const struct front_row *const fronts_table[] = {
    &http_row,
    &https_row,
    &ftp_row,
    &ftps_row,
    &admin_row,
    NULL,
};
