/* server_conf.h: the daemon's own sections, [server], [store] and
 * [fleet] (server_conf.c); the fronts' are in their folders. */
#ifndef DFOTAD_SERVER_CONF_H
#define DFOTAD_SERVER_CONF_H

#include "../util/config.h"

struct server_conf {
  char *state_dir;
  enum log_level log_level;
  char *user;
  int shutdown_timeout;
};

enum store_backend { STORE_SQLITE, STORE_POSTGRESQL };
enum store_nodes { STORE_NODES_SINGLE, STORE_NODES_SHARED };

struct store_conf {
  int flush_interval_ms;
  int backend;      /* enum store_backend */
  char *postgresql; /* libpq conninfo or URI, with backend = postgresql */
  int nodes;        /* enum store_nodes */
};

struct fleet_conf {
  char *token_header;
  int events_per_device, report_lines, recheck_interval; /* recheck: seconds */
  int auth_failures;
  int psk_generate_bytes; /* bytes of a key made by "psk": "generate" */
};

extern const struct conf_section server_conf_section, store_conf_section, fleet_conf_section;

#endif
