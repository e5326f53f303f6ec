/* ftp_limits.h: the FTP(S) front's limits and defaults. */
#ifndef DFOTAD_FTP_LIMITS_H
#define DFOTAD_FTP_LIMITS_H

#define DEF_FTP_LISTEN "127.0.0.1:2121"
#define FTP_LINE_MAX 512             /* command line bytes, CRLF included (RFC 959) */
#define DEF_FTP_LOGIN_TIMEOUT "30"   /* seconds from connect to a login */
#define DEF_FTP_DATA_TIMEOUT "60"    /* seconds without progress on a data connection */
#define DEF_FTP_LOGIN_LIMIT "256"    /* sessions not logged in yet, at once */
#define DEF_FTP_LOGIN_PER_IP "8"     /* ... from one address */
#define DEF_FTP_DEVICE_SESSIONS "4"  /* logged-in sessions of one device */
#define DEF_FTP_DEVICE_PORTS "2"     /* passive ports one device holds at once */
#define FTP_LOGIN_DELAY_MS 500       /* the first failed login's delay, doubled per failure */
#define FTP_LOGIN_DELAY_MAX_MS 16000 /* the longest */
#define FTP_LOGIN_TRIES 3            /* failed logins before a session is closed */
#define FTP_WRITE_MAX (1024 * 1024)  /* bytes per write on a data connection */
#define FTP_SETTLE_POLL_MS 20        /* how often an unsettled transfer asks TCP */
#define FTP_PATH_MAX 256             /* bytes of a path a client names */
#define FTP_REPLY_BUFFER_MAX 65536   /* reply bytes queued before reading waits */

#endif
