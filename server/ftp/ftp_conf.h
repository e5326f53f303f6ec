/* ftp_conf.h: the [ftp] and [ftps] sections (ftp_conf.c). */
#ifndef DFOTAD_FTP_CONF_H
#define DFOTAD_FTP_CONF_H

#include "../../net/front.h"
#include "ftp_limits.h"

enum ftp_tls_reuse { FTP_TLS_REUSE_OFF = 0, FTP_TLS_REUSE_REQUIRED };

struct ftp_conf {
  struct front_conf base;
  int threads;                  /* event threads, 0: one per CPU */
  int anonymous_packages;       /* anonymous logins may fetch /p/{id} */
  int require_tls;              /* [ftp]: no login or data without TLS */
  struct port_range pasv_ports; /* passive data ports; 0-0: the kernel picks */
  char *pasv_address;           /* what PASV announces (NAT); "": the local address */
  int port_enable;              /* PORT/EPRT (active mode), own address only */
  int login_limit;              /* sessions not logged in yet, at once */
  int login_per_ip_limit;       /* ... from one address; 0: no cap */
  int device_session_limit;     /* logged-in sessions of one device credential; 0: no cap */
  int device_port_limit;        /* passive ports one device credential holds; 0: no cap */
  int login_timeout;            /* seconds from connect to a login */
  int data_timeout;             /* seconds without progress on a data connection */
  int tls_session_reuse;        /* enum ftp_tls_reuse */
  struct tls_conf tls;          /* [ftp]: AUTH TLS when it has a certificate */
};

extern const struct conf_section ftp_conf_section, ftps_conf_section;

#endif
