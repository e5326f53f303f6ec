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
#define DEF_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

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

/* Rollouts */
#define MAX_ROLLOUT_CONCURRENT 1000000 /* max_concurrent */
#define MAX_ROLLOUT_TIMEOUT (365 * 86400) /* timeout, seconds */

/* Writer */
#define WRITER_QUEUE_LEN 65536 /* events buffered before drops */

/* HTTP */
#define HTTP_MEMORY_LIMIT (32 * 1024)   /* per device connection */
#define ADMIN_MEMORY_LIMIT (256 * 1024) /* per admin connection: upload chunk */
#define ADMIN_CONNECTION_LIMIT 64
#define ADMIN_BODY_MAX (32 * 1024 * 1024) /* JSON bodies: a bulk import of 100k devices */
#define REPORT_BODY_MAX (16 * 1024)       /* a device report: a few URC lines */

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
