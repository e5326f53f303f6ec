/* fronts.c: the fronts table (fronts.h). */
#include "autoconfig.h"

#include "fronts.h"

#include <stddef.h>

#include "coap_front.h"

const struct front_row *const fronts_table[] = {
    &http_row, &https_row, &coap_front_row, &coaps_front_row, &ftp_row, &ftps_row, &admin_row, NULL,
};
