/* ftp_conf.c: the rows and checks of [ftp] and [ftps]. */
#include "autoconfig.h"

#include "ftp_conf.h"

#include <arpa/inet.h>

static const char *const reuse_choices[] = {"off", "required", NULL};

#define F(f) offsetof(struct ftp_conf, f)
#define FTP_ROWS                                                                                   \
  {.name = "threads",                                                                              \
   .type = T_INT,                                                                                  \
   .offset = F(threads),                                                                           \
   .def = "0",                                                                                     \
   .min = 0,                                                                                       \
   .max = MAX_THREADS,                                                                             \
   .help = "event threads, 0: one per CPU"},                                                       \
      {.name = "anonymous_packages",                                                               \
       .type = T_BOOL,                                                                             \
       .offset = F(anonymous_packages),                                                            \
       .def = "no",                                                                                \
       .help = "anonymous logins may fetch /p/{id}"},                                              \
      {.name = "require_tls",                                                                      \
       .type = T_BOOL,                                                                             \
       .offset = F(require_tls),                                                                   \
       .def = "no",                                                                                \
       .help = "refuse logins and data connections without TLS"},                                  \
      {.name = "pasv_ports",                                                                       \
       .type = T_RANGE,                                                                            \
       .offset = F(pasv_ports),                                                                    \
       .def = "",                                                                                  \
       .help = "LO-HI passive data ports"},                                                        \
      {.name = "pasv_address",                                                                     \
       .type = T_STRING,                                                                           \
       .offset = F(pasv_address),                                                                  \
       .def = "",                                                                                  \
       .help = "IPv4 address PASV announces (behind NAT)"},                                        \
      {.name = "port_enable",                                                                      \
       .type = T_BOOL,                                                                             \
       .offset = F(port_enable),                                                                   \
       .def = "no",                                                                                \
       .help = "allow PORT/EPRT (active mode) to the client's own address"},                       \
      {.name = "login_limit",                                                                      \
       .type = T_INT,                                                                              \
       .offset = F(login_limit),                                                                   \
       .def = DEF_FTP_LOGIN_LIMIT,                                                                 \
       .min = 1,                                                                                   \
       .max = MAX_CONNECTION_LIMIT,                                                                \
       .help = "sessions not logged in yet, at once"},                                             \
      {.name = "login_per_ip_limit",                                                               \
       .type = T_INT,                                                                              \
       .offset = F(login_per_ip_limit),                                                            \
       .def = DEF_FTP_LOGIN_PER_IP,                                                                \
       .min = 0,                                                                                   \
       .max = MAX_CONNECTION_LIMIT,                                                                \
       .help = "sessions not logged in yet from one address, 0 for no cap"},                       \
      {.name = "device_session_limit",                                                             \
       .type = T_INT,                                                                              \
       .offset = F(device_session_limit),                                                          \
       .def = DEF_FTP_DEVICE_SESSIONS,                                                             \
       .min = 0,                                                                                   \
       .max = MAX_CONNECTION_LIMIT,                                                                \
       .help = "logged-in sessions of one device, 0 for no cap"},                                  \
      {.name = "device_port_limit",                                                                \
       .type = T_INT,                                                                              \
       .offset = F(device_port_limit),                                                             \
       .def = DEF_FTP_DEVICE_PORTS,                                                                \
       .min = 0,                                                                                   \
       .max = MAX_CONNECTION_LIMIT,                                                                \
       .help = "passive ports one device holds at once, 0 for no cap"},                            \
      {.name = "login_timeout",                                                                    \
       .type = T_INT,                                                                              \
       .offset = F(login_timeout),                                                                 \
       .def = DEF_FTP_LOGIN_TIMEOUT,                                                               \
       .min = 1,                                                                                   \
       .max = MAX_TIMEOUT,                                                                         \
       .help = "seconds to log in"},                                                               \
      {.name = "data_timeout",                                                                     \
       .type = T_INT,                                                                              \
       .offset = F(data_timeout),                                                                  \
       .def = DEF_FTP_DATA_TIMEOUT,                                                                \
       .min = 1,                                                                                   \
       .max = MAX_TIMEOUT,                                                                         \
       .help = "seconds without progress on a data connection"},                                   \
  {                                                                                                \
    .name = "tls_session_reuse", .type = T_CHOICE, .offset = F(tls_session_reuse),                 \
    .def = "required", .choices = reuse_choices,                                                   \
    .help = "off|required: a TLS data connection must resume its control connection's session"     \
  }

static const struct conf_row ftp_rows[] = {
    FRONT_ROWS(struct ftp_conf, DEF_FTP_LISTEN),
    FTP_ROWS,
    TLS_ROWS(struct ftp_conf, tls, ""),
    {.name = NULL},
};

static const struct conf_row ftps_rows[] = {
    FRONT_ROWS(struct ftp_conf, ""),
    FTP_ROWS,
    TLS_ROWS(struct ftp_conf, tls, ""),
    {.name = NULL},
};

static void ftp_check(void *sec, const struct conf_section *self, const struct config *c,
                      struct config_errors *errs)
{
  struct ftp_conf *f = sec;
  struct in_addr ip;
  int listening = f->base.listen.n > 0;

  /* [ftps] needs a certificate; [ftp] offers AUTH TLS when it has one */
  tls_conf_check(&f->tls, self->name, c->source, listening, self == &ftps_conf_section, errs);
  if (self == &ftp_conf_section && f->require_tls && listening &&
      (f->tls.cert[0] == '\0' || f->tls.key[0] == '\0'))
    config_errors_add(errs, "%s: [ftp] require_tls needs cert and key (for AUTH TLS)", c->source);
  if (f->pasv_address[0] != '\0' && inet_pton(AF_INET, f->pasv_address, &ip) != 1)
    config_errors_add(errs, "%s: [%s] pasv_address must be an IPv4 address", c->source, self->name);
  front_conf_check(&f->base, self->name, errs);
}

const struct conf_section ftp_conf_section = {
    .name = "ftp", .size = sizeof(struct ftp_conf), .rows = ftp_rows, .check = ftp_check};
const struct conf_section ftps_conf_section = {
    .name = "ftps", .size = sizeof(struct ftp_conf), .rows = ftps_rows, .check = ftp_check};
