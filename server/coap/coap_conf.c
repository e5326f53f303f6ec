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

/* The LwM2M server's rows (server/coap/lwm2m_*.c), in both sections. */
#define LW(f) offsetof(struct coap_conf, f)
#define LWM2M_ROWS                                                                                 \
  {.name = "lwm2m",                                                                                \
   .type = T_BOOL,                                                                                 \
   .offset = LW(lwm2m),                                                                            \
   .def = "no",                                                                                    \
   .help = "LwM2M registration interface (/rd)"},                                                  \
      {.name = "lwm2m_registrations",                                                              \
       .type = T_INT,                                                                              \
       .offset = LW(lwm2m_registrations),                                                          \
       .def = DEF_LWM2M_REGISTRATIONS,                                                             \
       .min = 1,                                                                                   \
       .max = MAX_LWM2M_REGISTRATIONS,                                                             \
       .help = "LwM2M registrations held at once"},                                                \
      {.name = "lwm2m_lifetime_min",                                                               \
       .type = T_INT,                                                                              \
       .offset = LW(lwm2m_lifetime_min),                                                           \
       .def = "60",                                                                                \
       .min = 1,                                                                                   \
       .max = MAX_LWM2M_LIFETIME,                                                                  \
       .help = "seconds: the shortest lifetime a registration may ask"},                           \
      {.name = "lwm2m_lifetime_max",                                                               \
       .type = T_INT,                                                                              \
       .offset = LW(lwm2m_lifetime_max),                                                           \
       .def = "2592000",                                                                           \
       .min = 1,                                                                                   \
       .max = MAX_LWM2M_LIFETIME,                                                                  \
       .help = "seconds: the longest lifetime a registration may ask"},                            \
      {.name = "lwm2m_poll",                                                                       \
       .type = T_INT,                                                                              \
       .offset = LW(lwm2m_poll),                                                                   \
       .def = "60",                                                                                \
       .min = 1,                                                                                   \
       .max = 86400,                                                                               \
       .help = "seconds between two asks of the delivery core for a registered device's offer "    \
               "(the admission of its wave asks at once)"},                                        \
  {                                                                                                \
    .name = "lwm2m_queue_awake", .type = T_INT, .offset = LW(lwm2m_queue_awake), .def = "10",      \
    .min = 1, .max = 3600,                                                                         \
    .help = "seconds a queue-mode device listens after it spoke: requests wait for that"           \
  }

static const struct conf_row coap_rows[] = {
    FRONT_ROWS(struct coap_conf, DEF_COAP_LISTEN),
    ANONYMOUS_ROW,
    LWM2M_ROWS,
    {.name = "lwm2m_insecure",
     .type = T_BOOL,
     .offset = LW(lwm2m_insecure),
     .def = "no",
     .help = "LwM2M registrations over plain CoAP (no device identity: test benches only)"},
    {.name = NULL},
};

static const struct conf_row coaps_rows[] = {
    FRONT_ROWS(struct coap_conf, ""),
    LWM2M_ROWS,
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
  if (cc->lwm2m_lifetime_min > cc->lwm2m_lifetime_max)
    config_errors_add(errs, "%s: [%s] lwm2m_lifetime_min %d is over lwm2m_lifetime_max %d",
                      c->source, self->name, cc->lwm2m_lifetime_min, cc->lwm2m_lifetime_max);
}

const struct conf_section coap_conf_section = {
    .name = "coap", .size = sizeof(struct coap_conf), .rows = coap_rows, .check = coap_check};
const struct conf_section coaps_conf_section = {
    .name = "coaps", .size = sizeof(struct coap_conf), .rows = coaps_rows, .check = coap_check};
