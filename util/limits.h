/* limits.h: every limit and default of dfotad, named in one place. */
#ifndef DFOTAD_LIMITS_H
#define DFOTAD_LIMITS_H

/* Configuration file */
#define CONF_MAX_LINE 4096 /* bytes per configuration line */
#define CONF_MAX_LISTEN 16 /* listen addresses per section */
#define CONF_MAX_ERRORS 64 /* errors reported by one check */
#define CONF_URL_MAX 161   /* a public_url, with its NUL: URLs for modules stay short */

/* Defaults (embedded configuration) */
#define DEF_STATE_DIR "./var/dfotad"
#define DEF_CONNECTION_LIMIT 1024
#define DEF_TIMEOUT 60            /* idle seconds before a connection closes */
#define DEF_SHUTDOWN_TIMEOUT 10   /* seconds transfers get on SIGTERM */
#define DEF_FLUSH_INTERVAL_MS 250 /* batched writer commit period */
#define DEF_MAX_UPLOAD (1024ULL * 1024 * 1024)

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

/* Descriptors and bodies */
/* descriptors beyond the fronts' connections: store, logs, listeners, libraries */
#define FD_RESERVE 128
#define REPORT_BODY_MAX (16 * 1024) /* a device report: a few URC lines */

/* DTLS pre-shared keys */
#define PSK_MIN 16       /* key bytes an operator may set (PSK_MAX in fleet/delivery.h) */
#define PSK_GENERATED 16 /* default of [fleet] psk_generate_bytes */

/* Each front's own limits are in its folder: server/http/http_limits.h,
 * server/coap/coap_limits.h, server/ftp/ftp_limits.h, server/admin/admin_conf.h;
 * net/mhd.h, net/tls_store.h. */

#endif
