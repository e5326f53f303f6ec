/* admin_conf.h: the [admin] section (admin_conf.c) and the admin
 * listener's limits. */
#ifndef DFOTAD_ADMIN_CONF_H
#define DFOTAD_ADMIN_CONF_H

#include <stdint.h>

#include "../../net/front.h"

#define DEF_ADMIN_LISTEN "127.0.0.1:8081"
#define ADMIN_MEMORY_LIMIT (256 * 1024) /* per admin connection: upload chunk */
#define ADMIN_CONNECTION_LIMIT 64

struct admin_conf {
  struct front_conf base; /* listen (connection_limit: ADMIN_CONNECTION_LIMIT) */
  char *token_file;       /* "": admin.token in [server] state_dir (server_conf.c) */
  uint64_t max_upload_size;
};

extern const struct conf_section admin_conf_section;

#endif
