/* fronts.c: the fronts table (fronts.h). */
#include "autoconfig.h"

#include "fronts.h"

#include <stddef.h>

#include "admin/admin_front.h"
#include "coap/coap_front.h"
#include "ftp/ftp_front.h"
#include "http/http_front.h"

const struct front_row *const fronts_table[] = {
    &http_row, &https_row, &coap_front_row, &coaps_front_row, &ftp_row, &ftps_row, &admin_row, NULL,
};
