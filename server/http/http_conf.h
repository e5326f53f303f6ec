/* http_conf.h: the [http] and [https] sections (http_conf.c). */
#ifndef DFOTAD_HTTP_CONF_H
#define DFOTAD_HTTP_CONF_H

#include <stdint.h>

#include "../../net/front.h"
#include "http_limits.h"

struct http_conf {
  struct front_conf base;
  int threads;                /* 0: one per CPU */
  uint64_t connection_memory; /* bytes of libmicrohttpd's pool per connection */
  int header_timeout;         /* seconds for a request's headers */
  int header_limit;           /* connections in their header phase; 0: half of connection_limit */
  int header_per_ip_limit;    /* ... from one address; 0: no cap */
  uint64_t send_lowat;        /* TCP_NOTSENT_LOWAT of connections; 0: the kernel's */
  int cpu_affinity;           /* workers one per CPU, connections re-homed (net/mhd.h) */
  struct tls_conf tls;        /* [https] */
};

extern const struct conf_section http_conf_section, https_conf_section;

#endif
