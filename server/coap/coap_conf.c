/* coap_conf.c: the rows and checks of [coap] and [coaps]. */
#include "autoconfig.h"

#include "coap_conf.h"

#include "../../util/log.h"

#define STR_(x) #x
#define STR(x) STR_(x) /* a limit's number as a default's text */

#define ANONYMOUS_ROW                                                                              \
  {                                                                                                \
    .name = "anonymous_packages", .type = T_BOOL,                                                  \
    .offset = offsetof(struct coap_conf, anonymous_packages), .def = "no",                         \
    .help = "serve /p/{id} without an offer's token"                                               \
  }

static const struct conf_row coap_rows[] = {
    FRONT_ROWS(struct coap_conf, DEF_COAP_LISTEN),
    ANONYMOUS_ROW,
    {.name = NULL},
};

static const struct conf_row coaps_rows[] = {
    FRONT_ROWS(struct coap_conf, ""),
    ANONYMOUS_ROW,
    {.name = "max_report",
     .type = T_INT,
     .offset = offsetof(struct coap_conf, max_report),
     .def = STR(DEF_COAP_REPORT_MAX),
     .min = 64,
     .max = MAX_COAP_REPORT,
     .help = "bytes of a report's payload"},
    {.name = "handshake_limit",
     .type = T_INT,
     .offset = offsetof(struct coap_conf, handshake_limit),
     .def = STR(DEF_COAP_HANDSHAKES),
     .min = 1,
     .max = MAX_COAP_HANDSHAKES,
     .help = "DTLS handshakes in progress"},
    TLS_ROWS(struct coap_conf, tls, ""),
    {.name = NULL},
};

static void coap_check(void *sec, const struct conf_section *self, const struct config *c,
                       struct config_errors *errs)
{
  struct coap_conf *cc = sec;

  /* CoAPS may run on pre-shared keys alone: a certificate is optional */
  if (self == &coaps_conf_section)
    tls_conf_check(&cc->tls, self->name, c->source, cc->base.listen.n > 0, 0, errs);
  front_conf_check(&cc->base, self->name, errs);
}

const struct conf_section coap_conf_section = {
    .name = "coap", .size = sizeof(struct coap_conf), .rows = coap_rows, .check = coap_check};
const struct conf_section coaps_conf_section = {
    .name = "coaps", .size = sizeof(struct coap_conf), .rows = coaps_rows, .check = coap_check};
