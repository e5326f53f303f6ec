/* admin_conf.c: the rows and checks of [admin]. */
#include "autoconfig.h"

#include "admin_conf.h"

static const struct conf_row admin_rows[] = {
    {.name = "listen",
     .type = T_LISTEN,
     .offset = offsetof(struct admin_conf, base.listen),
     .def = DEF_ADMIN_LISTEN,
     .help = "ADDRESS:PORT ..."},
    {.name = "token_file",
     .type = T_STRING,
     .offset = offsetof(struct admin_conf, token_file),
     .def = "",
     .help = "bearer token file"},
    {.name = "max_upload_size",
     .type = T_SIZE,
     .offset = offsetof(struct admin_conf, max_upload_size),
     .def = "1G",
     .min = 1,
     .max = 0,
     .help = "bytes (K, M, G)"},
    {.name = NULL},
};

static void admin_check(void *sec, const struct conf_section *self, const struct config *c,
                        struct config_errors *errs)
{
  struct admin_conf *a = sec;

  (void)self;
  (void)c;
  (void)errs;
  a->base.connection_limit = ADMIN_CONNECTION_LIMIT;
  a->base.timeout = 60;
}

const struct conf_section admin_conf_section = {
    .name = "admin", .size = sizeof(struct admin_conf), .rows = admin_rows, .check = admin_check};
