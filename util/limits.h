/* limits.h: every limit and default of dfotad, named in one place. */
#ifndef DFOTAD_LIMITS_H
#define DFOTAD_LIMITS_H

/* Configuration file */
#define CONF_MAX_LINE 4096 /* bytes per configuration line */
#define CONF_MAX_LISTEN 16 /* listen addresses per section */
#define CONF_MAX_SNI 64    /* sni = lines in [https] */
#define CONF_MAX_ERRORS 64 /* errors reported by one check */
#define CONF_URL_MAX 161   /* a public_url, with its NUL: URLs for modules stay short */

/* Defaults (embedded configuration) */
#define DEF_STATE_DIR "./var/dfotad"
#define DEF_HTTP_LISTEN "127.0.0.1:8080"
#define DEF_ADMIN_LISTEN "127.0.0.1:8081"
#define DEF_CONNECTION_LIMIT 1024
#define DEF_TIMEOUT 60            /* idle seconds before a connection closes */
#define DEF_SHUTDOWN_TIMEOUT 10   /* seconds transfers get on SIGTERM */
#define DEF_FLUSH_INTERVAL_MS 250 /* batched writer commit period */
#define DEF_MAX_UPLOAD (1024ULL * 1024 * 1024)
/* TLS 1.2 and 1.3, AEAD suites with forward secrecy only, in the server's
 * order (no CBC: LUCKY13 and kin; no RSA key exchange) */
#define DEF_TLS_PRIORITIES                                                                         \
  "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"              \
  "+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:%SERVER_PRECEDENCE"

/* Bounds */
#define MAX_CONNECTION_LIMIT 100000
#define MAX_TIMEOUT 3600
#define MAX_THREADS 256
#define MAX_SHUTDOWN_TIMEOUT 3600
#define MAX_CERT_FILE (1024 * 1024) /* PEM files are small; refuse more */
#define MAX_TOKEN_LEN 256

/* Packages */
#define PKG_ID_LEN 12                /* base32 characters, 60 random bits */
#define PKG_FIELD_MAX 128            /* model, from, to: bytes */
#define PKG_NAME_MAX 200             /* original file name: bytes */
#define SMALL_RANGE_MAX (256 * 1024) /* ranges up to this go from memory */

/* Fleet: what one device may cost */
#define DEF_EVENTS_PER_DEVICE 1000 /* events kept per device; the oldest go */
#define DEF_REPORT_LINES 64        /* URC lines in one report */
#define DEF_RECHECK_MS 60000       /* least time between two re-checks of a package */

#define MAX_PAGE 1000 /* items in one page of an admin listing */
#define DEF_PAGE 100

/* Failed device credentials: free ones per window, then a lock-out that
 * doubles, per address and per device id */
#define AUTH_SLOTS 4096 /* addresses and ids tracked (each) */
#define AUTH_WINDOW_MS 60000
#define DEF_AUTH_FREE 10        /* failures per window before any lock-out */
#define AUTH_ADDR_LOCK_MAX 300  /* seconds, at most, for an address */
#define AUTH_DEVICE_LOCK_MAX 60 /* seconds, at most, for a device id */
#define AUTH_LOG_MS 1000        /* at most one log line about failures a second */

/* Rollouts */
#define MAX_ROLLOUT_CONCURRENT 1000000    /* max_concurrent */
#define MAX_ROLLOUT_TIMEOUT (365 * 86400) /* timeout, seconds */

/* Writer */
#define WRITER_QUEUE_LEN 65536 /* events buffered before drops */

/* HTTP */
/* libmicrohttpd's pool per device connection (connection_memory): it
 * holds the request's headers and ours, and is all written to (about
 * 2 KB more per connection go to libmicrohttpd and us), so it is most of
 * what a slow download costs: 2 KiB takes requests of up to about 1.3 KB
 * of headers, against modules' 200 to 500 bytes */
#define DEF_CONNECTION_MEMORY_TEXT "2K"
#define MIN_CONNECTION_MEMORY 1536
#define MAX_CONNECTION_MEMORY (1024 * 1024)
#define DEF_HEADER_TIMEOUT_TEXT "15" /* seconds for a connection's first headers */
#define DEF_HEADER_PER_IP_TEXT "32"  /* connections still sending headers per address */
/* TCP_NOTSENT_LOWAT of device connections (send_lowat): without it the
 * kernel lets each socket's unsent queue grow with its autotuned send
 * buffer, about 190 KB per slow download (2 GB for 10,000); a slow reader
 * then wakes us every send_lowat/2 bytes it drains */
#define DEF_SEND_LOWAT_TEXT "16K"
#define MAX_SEND_LOWAT (64 * 1024 * 1024)
#define HTTP_REFUSE_ROOM                                                                           \
  64 /* connections libmicrohttpd takes beyond connection_limit,                                   \
        so that one over the limit is refused at once */
#define FD_RESERVE                                                                                 \
  128                                   /* descriptors beyond the fronts' connections: store,      \
                                           logs, listeners, libraries */
#define ADMIN_MEMORY_LIMIT (256 * 1024) /* per admin connection: upload chunk */
#define ADMIN_CONNECTION_LIMIT 64
#define ADMIN_BODY_MAX (32 * 1024 * 1024) /* JSON bodies: a bulk import of 100k devices */
#define REPORT_BODY_MAX (16 * 1024)       /* a device report: a few URC lines */
#define MAX_REQUEST_HEADERS 64            /* header fields of a device request */
#define MAX_REQUEST_URI 2048              /* bytes of a request's target */
#define MAX_QUERY_ARGS 32                 /* arguments in a request's query */

/* CoAP(S) */
#define DEF_COAP_LISTEN "127.0.0.1:5683"
#define DEF_COAP_HANDSHAKES                                                                        \
  1000 /* DTLS handshakes in progress (libcoap counts half-open ones for 30 s) */
#define DEF_COAP_REPORT_MAX 1024 /* bytes of a report's payload (one datagram, no Block1) */
#define MAX_COAP_REPORT 1024
#define MAX_COAP_HANDSHAKES 10000
#define DEF_LWM2M_REGISTRATIONS "20000" /* LwM2M registrations held per listener */
#define MAX_LWM2M_REGISTRATIONS 1000000
#define MAX_LWM2M_LIFETIME 31536000    /* a year */
#define COAP_XFER_MAX 65536            /* downloads tracked at once, per front */
#define COAP_XFER_IDLE_MS (600 * 1000) /* a download idle this long is forgotten */
#define COAP_RESUME_PAUSE_MS 2000      /* a step back after this pause is a resume */
#define COAP_DUP_WINDOW_MS 247000      /* EXCHANGE_LIFETIME (RFC 7252): message ids remembered */
#define COAP_DUP_SLOTS 4               /* message ids remembered per download */
#define COAP_PATH_SEGMENTS 4           /* Uri-Path options we look at */
#define COAP_QUERY_OPTIONS 8           /* Uri-Query options we look at */
#define COAP_AMPLIFICATION 3           /* an error's diagnostic text: at most 3x the request */

/* DTLS pre-shared keys */
#define PSK_MIN 16       /* key bytes an operator may set (PSK_MAX in fleet/delivery.h) */
#define PSK_GENERATED 16 /* default of [fleet] psk_generate_bytes */

/* FTP(S) */
#define DEF_FTP_LISTEN "127.0.0.1:2121"
#define FTP_LINE_MAX 512             /* command line bytes, CRLF included (RFC 959) */
#define DEF_FTP_LOGIN_TIMEOUT "30"   /* seconds from connect to a login */
#define DEF_FTP_DATA_TIMEOUT "60"    /* seconds without progress on a data connection */
#define DEF_FTP_LOGIN_LIMIT "256"    /* sessions not logged in yet, at once */
#define FTP_LOGIN_DELAY_MS 500       /* the first failed login's delay, doubled per failure */
#define FTP_LOGIN_DELAY_MAX_MS 16000 /* the longest */
#define FTP_LOGIN_FORGET_MS 600000   /* an address's failures are forgotten after this */
#define FTP_LOGIN_TRIES 3            /* failed logins before a session is closed */
#define FTP_ADDR_TABLE_MAX 65536     /* client addresses tracked for limits and delays */
#define FTP_WRITE_MAX (1024 * 1024)  /* bytes per write on a data connection */
#define FTP_SETTLE_POLL_MS 20        /* how often an unsettled transfer asks TCP */
#define FTP_PATH_MAX 256             /* bytes of a path a client names */
#define FTP_REPLY_BUFFER_MAX 65536   /* reply bytes queued before reading waits */

#endif
