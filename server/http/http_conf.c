/* http_conf.c: the rows and checks of [http] and [https]. */
#include "autoconfig.h"

#include "http_conf.h"

#include "../../net/tls_gnutls.h"

/* What a connection may cost. */
#define HTTP_ROWS                                                                                  \
  {.name = "threads",                                                                              \
   .type = T_INT,                                                                                  \
   .offset = offsetof(struct http_conf, threads),                                                  \
   .def = "0",                                                                                     \
   .min = 0,                                                                                       \
   .max = MAX_THREADS,                                                                             \
   .help = "0: one per CPU"},                                                                      \
      {.name = "connection_memory",                                                                \
       .type = T_SIZE,                                                                             \
       .offset = offsetof(struct http_conf, connection_memory),                                    \
       .def = DEF_CONNECTION_MEMORY_TEXT,                                                          \
       .min = MIN_CONNECTION_MEMORY,                                                               \
       .max = MAX_CONNECTION_MEMORY,                                                               \
       .help = "bytes per connection for its request and response headers"},                       \
      {.name = "header_timeout",                                                                   \
       .type = T_INT,                                                                              \
       .offset = offsetof(struct http_conf, header_timeout),                                       \
       .def = DEF_HEADER_TIMEOUT_TEXT,                                                             \
       .min = 1,                                                                                   \
       .max = MAX_TIMEOUT,                                                                         \
       .help = "seconds a request's headers may take (a later one's from its first bytes)"},       \
      {.name = "header_limit",                                                                     \
       .type = T_INT,                                                                              \
       .offset = offsetof(struct http_conf, header_limit),                                         \
       .def = "0",                                                                                 \
       .min = 0,                                                                                   \
       .max = MAX_CONNECTION_LIMIT,                                                                \
       .help = "connections still sending headers, 0 for half of connection_limit"},               \
      {.name = "header_per_ip_limit",                                                              \
       .type = T_INT,                                                                              \
       .offset = offsetof(struct http_conf, header_per_ip_limit),                                  \
       .def = DEF_HEADER_PER_IP_TEXT,                                                              \
       .min = 0,                                                                                   \
       .max = MAX_CONNECTION_LIMIT,                                                                \
       .help = "connections still sending headers per address, 0 for none"},                       \
      {.name = "cpu_affinity",                                                                     \
       .type = T_BOOL,                                                                             \
       .offset = offsetof(struct http_conf, cpu_affinity),                                         \
       .def = "yes",                                                                               \
       .help = "workers kept one per CPU, busy connections moved to their CPU's"},                 \
  {                                                                                                \
    .name = "send_lowat", .type = T_SIZE, .offset = offsetof(struct http_conf, send_lowat),        \
    .def = DEF_SEND_LOWAT_TEXT, .min = 0, .max = MAX_SEND_LOWAT,                                   \
    .help = "bytes not yet sent the kernel may hold per connection, 0 for no bound"                \
  }

static const struct conf_row http_rows[] = {
    FRONT_ROWS(struct http_conf, DEF_HTTP_LISTEN),
    HTTP_ROWS,
    {.name = NULL},
};

static const struct conf_row https_rows[] = {
    FRONT_ROWS(struct http_conf, ""),
    HTTP_ROWS,
    TLS_ROWS(struct http_conf, tls, DEF_TLS_PRIORITIES),
    {.name = NULL},
};

static void http_check(void *sec, const struct conf_section *self, const struct config *c,
                       struct config_errors *errs)
{
  struct http_conf *h = sec;

  if (self == &https_conf_section)
    tls_conf_check(&h->tls, self->name, c->source, h->base.listen.n > 0, 1, errs);
  front_conf_check(&h->base, self->name, errs);
}

const struct conf_section http_conf_section = {
    .name = "http", .size = sizeof(struct http_conf), .rows = http_rows, .check = http_check};
const struct conf_section https_conf_section = {
    .name = "https", .size = sizeof(struct http_conf), .rows = https_rows, .check = http_check};
