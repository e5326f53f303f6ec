/* config.h: dfotad's configuration: embedded defaults, an INI file and
 * --set overrides, checked against one table of options (config.c). */
#ifndef DFOTAD_CONFIG_H
#define DFOTAD_CONFIG_H

#include <stdint.h>
#include <sys/socket.h>

#include "limits.h"
#include "log.h"
#include "proto.h"

struct listen_addr {
  char text[80]; /* as written: "127.0.0.1:8080", "[::1]:443" */
  struct sockaddr_storage ss;
  socklen_t len;
};

struct listen_set {
  struct listen_addr addr[CONF_MAX_LISTEN];
  int n;
  int explicit_set; /* a file or --set replaced the default */
};

struct sni_entry {
  char *name; /* server name, may start with "*." */
  char *cert; /* PEM chain file */
  char *key;  /* PEM key file */
};

/* A range of TCP ports, "LO-HI" (1024 <= LO <= HI <= 65535); 0-0: none. */
struct port_range {
  int lo, hi;
};

enum client_auth { CLIENT_AUTH_NONE = 0, CLIENT_AUTH_OPTIONAL, CLIENT_AUTH_REQUIRED };

/* The TLS settings of a TLS (or DTLS) section: one set of options, the same
 * rows in every such section. */
struct tls_conf {
  char *cert, *key; /* default certificate chain and key (PEM) */
  char *client_ca;  /* CA for client certificates */
  enum client_auth client_auth;
  char *priorities; /* the TLS library's own syntax: GnuTLS priority
                       string for https, OpenSSL cipher list for others */
  struct sni_entry sni[CONF_MAX_SNI];
  int n_sni;
};

/* One front's section: [http], [https], ... (the admin API has its own). */
struct front_conf {
  struct listen_set listen;
  int connection_limit;
  int timeout;
  int per_ip_limit;
  int threads; /* 0: one per CPU */
  /* HTTP(S) fronts: connection economics */
  uint64_t connection_memory; /* bytes of libmicrohttpd's pool per connection */
  int header_timeout;         /* seconds for a connection's first request headers */
  int header_limit;           /* connections in their header phase; 0: half of connection_limit */
  int header_per_ip_limit;    /* ... from one address; 0: no cap */
  uint64_t send_lowat;        /* TCP_NOTSENT_LOWAT of connections; 0: the kernel's */
  char *public_url;           /* base URL devices see; derived when empty */
  int anonymous_packages;     /* serve /p/{id} without a token (CoAP, FTP) */
  int handshake_limit;        /* DTLS handshakes in progress (CoAPS) */
  int max_report;             /* report payload bytes (CoAP) */
  /* [coap], [coaps]: the LwM2M server (server/coap/lwm2m_*.c) */
  int lwm2m;               /* registration interface on this listener */
  int lwm2m_insecure;      /* [coap]: registrations over plain CoAP allowed */
  int lwm2m_registrations; /* registrations held at once */
  int lwm2m_lifetime_min;  /* seconds a registration may ask, at least */
  int lwm2m_lifetime_max;  /* ... at most */
  int lwm2m_queue_awake;   /* seconds a queue-mode device listens after it spoke */
  int lwm2m_poll;          /* seconds between two offer checks of a registered device */
  struct tls_conf tls;     /* TLS sections only ([ftp] too: AUTH TLS) */
  /* [ftp], [ftps] */
  int require_tls;              /* [ftp]: no login or data without TLS */
  struct port_range pasv_ports; /* passive data ports; 0-0: the kernel picks */
  char *pasv_address;           /* what PASV announces (NAT); "": the local address */
  int port_enable;              /* PORT/EPRT (active mode), own address only */
  int login_limit;              /* sessions not logged in yet, at once */
  int login_timeout;            /* seconds from connect to a login */
  int data_timeout;             /* seconds without progress on a data connection */
};

struct config {
  char *source; /* file it came from, or "(defaults)" */
  /* [server] */
  char *state_dir;
  enum log_level log_level;
  char *user;
  int shutdown_timeout;
  /* [store] */
  int flush_interval_ms;
  /* [http], [https], ...: indexed by enum proto */
  struct front_conf front[PROTO_COUNT];
  /* [fleet] */
  char *token_header;
  int events_per_device, report_lines, recheck_interval; /* recheck: seconds */
  int auth_failures;
  int psk_generate_bytes; /* bytes of a key made by "psk": "generate" */
  /* [admin] */
  struct listen_set admin_listen;
  char *token_file;
  uint64_t max_upload_size;
};

/* Whether a section of that protocol exists in the option table (its front
 * is built into this daemon). */
int config_has_section(enum proto p);

/* The option table, one row at a time (the man page dfotad.conf(5) and
 * the tests that keep it and conf/dfotad.conf in step): 0 while i is a
 * row, -1 past the end. def is NULL for a key with no default (sni); min
 * and max bound integers and sizes (max 0: no bound). */
struct config_key {
  const char *section, *name, *type, *def, *help;
  long long min, max;
};
int config_key_at(size_t i, struct config_key *out);

/* Errors found while loading, each "FILE:LINE: message". */
struct config_errors {
  char *msg[CONF_MAX_ERRORS];
  int n;
  int dropped;
};

/* Builds a configuration: defaults, then FILE (NULL: none), then each
 * override "section.key=value". Returns NULL and fills errs when anything
 * is wrong; the caller owns the result (config_free). */
struct config *config_load(const char *file, char *const *overrides, int n_overrides,
                           struct config_errors *errs);
void config_free(struct config *c);
void config_errors_clear(struct config_errors *errs);
void config_errors_add(struct config_errors *errs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Parses "HOST:PORT" ("*" for any IPv4, "[::]" for any IPv6). 0 or -1. */
int listen_addr_parse(const char *s, struct listen_addr *out);

/* "SCHEME://HOST:PORT" for a listen address (the host name for a wildcard
 * address). listen.c */
void listen_public_url(const struct listen_addr *a, const char *scheme, char *url, size_t len);

/* Parses "123", "10K", "5M", "1G". 0 or -1. */
int size_parse(const char *s, uint64_t *out);

#endif
