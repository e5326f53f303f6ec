/* ftp_int.h: what the FTP front's files share. ftp_front.c owns an
 * instance (its event threads, listeners, limits, TLS context, passive
 * ports); ftp_session.c speaks the control connection; ftp_data.c the data
 * connections. A session and everything it owns live on one event thread
 * (a worker), so nothing of a session needs a lock; what instances and
 * workers share (limits per address, the port pool) takes one. */
#ifndef DFOTAD_FTP_INT_H
#define DFOTAD_FTP_INT_H

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "../../fleet/delivery.h"
#include "../../net/admission.h"
#include "../../net/front.h"
#include "../../net/settle.h"
#include "../../net/tls_openssl.h"
#include "../../util/limits.h"
#include "../../util/proto.h"
#include "ftp_cmd.h"

#define FTP_NONCE_LEN TLS_BIND_LEN
/* Entries of the admission table: addresses and devices holding sessions
 * now (each session holds at most its address and its device); more than
 * that many only under a flood of addresses, when the idlest go. */
#define FTP_ADM_ENTRIES 8192
/* Connections a worker accepts at a time before it serves the sessions it
 * has: a burst waits in the kernel's queue, in order, rather than piling
 * up here unread (and over the limits). */
#define FTP_ACCEPT_BATCH 16
/* A login in progress younger than this is not closed to make room. */
#define FTP_EVICT_MIN_MS 1000

struct ftp_worker;
struct ftp_data;

/* One instance of the [ftp] or [ftps] row. Settings are copied at start. */
struct ftp_front {
  struct front *fr;
  enum proto proto;
  int implicit_tls; /* [ftps]: TLS from the first byte */
  struct fleet *fleet;
  int max_sessions, per_ip, max_logins, login_per_ip;
  int device_sessions, device_ports; /* per device credential, 0: no cap */
  int idle_s, login_s, data_s;
  int require_tls, port_enable, anonymous;
  int tls_reuse;           /* TLS data must resume the control connection's session */
  int pasv_lo, pasv_hi;    /* 0-0: ports the kernel picks */
  struct in_addr announce; /* what PASV announces, when set */
  int has_announce;
  struct tls_set *tls; /* this reload's (tls_set.h); NULL: no TLS on this front */
  SSL_CTX *ssl_ctx;    /* the set's */
  struct ftp_worker *w;
  int nw;
  atomic_int sessions, logins, transfers;
  atomic_int quiescing;
  pthread_mutex_t pend_mu; /* the sessions still logging in, oldest first */
  struct session *pend_head, *pend_tail;
  pthread_mutex_t port_mu;  /* the passive port pool */
  unsigned char *port_used; /* a byte per port of the range */
  int port_next;
};

struct ftp_worker {
  struct ftp_front *ff;
  struct event_base *base;
  pthread_t thread;
  int started;
  struct event *lev[CONF_MAX_LISTEN]; /* a listening socket's readiness */
  int nlev;
  struct event *wake; /* quiesce or stop, from the main thread */
  atomic_int order;   /* WAKE_* */
  struct session *head;
};

enum { WAKE_QUIESCE = 1, WAKE_STOP = 2, WAKE_EVICT = 4 };

enum sess_state { S_USER = 0, S_PASS, S_DELAY, S_READY, S_CLOSING };
enum node { N_NONE = 0, N_ROOT, N_PDIR, N_FILE, N_PKG };

struct session {
  struct ftp_worker *w;
  struct ftp_front *ff;
  struct bufferevent *bev; /* the control connection (a TLS filter after AUTH TLS) */
  SSL *ssl;                /* its TLS, when any */
  struct sockaddr_storage peer, local;
  socklen_t peerlen, locallen;
  char addr[64]; /* the peer's address as text */
  enum sess_state state;
  int tls, pbsz, prot_p, binary, epsv_all;
  int counted_login;             /* counted among logins in progress */
  int pending;                   /* on ff's list of logins in progress (pend_mu) */
  atomic_int evict;              /* made room for a newer login: to be closed */
  struct session *pnext, *pprev; /* that list (pend_mu) */
  int fails;                     /* failed logins in this session */
  struct adm_hold hold_addr;     /* its address's session count (ftp_adm) */
  struct adm_hold hold_login;    /* ... its logins in progress, until the login */
  struct adm_hold hold_dev;      /* its device's session count, once logged in */
  int skipping;                  /* discarding the rest of an overlong line */
  int processing;                /* inside process(): a transfer's end must not re-enter */
  int doomed;                    /* to be freed once the command returns */
  int tls_started;               /* AUTH TLS just switched the input to TLS */
  int64_t login_deadline;        /* monotonic ms */
  int64_t opened;                /* monotonic ms */
  int anonymous, damaged;
  char user[DEVICE_ID_MAX + 1];
  char token[FLEET_TOKEN_LEN + 1]; /* wiped when the session ends */
  /* the one file an offer's login sees */
  char name[80];
  uint64_t size;
  int64_t mtime;
  char cwd[FTP_PATH_MAX + 2];
  uint64_t rest;
  unsigned char nonce[FTP_NONCE_LEN]; /* binds data TLS sessions to this one */
  struct event *timer;                /* login deadline, failed-login delay */
  struct ftp_data *data;              /* at most one data connection */
  struct session *prev, *next;
};

/* ---- ftp_front.c -------------------------------------------------------- */

/* Whether a data connection's TLS resumed the session of control s
 * (tls_openssl_bind: its tickets carry s->nonce). */
static inline int ftp_tls_data_bound(SSL *data, const struct session *s)
{
  return tls_openssl_bound(data, s->nonce);
}
/* A passive listening socket on the control connection's local address,
 * with a port from the range; *port gets it. -1 when none is free. */
int ftp_port_take(struct ftp_front *ff, const struct sockaddr_storage *local, int *port);
void ftp_port_give(struct ftp_front *ff, int port);
/* Sessions and logins in progress per address, sessions and passive
 * ports per device: every instance's. */
extern struct admission *ftp_adm;

/* The session is no longer a login in progress (logged in, or ending). */
void ftp_login_over(struct session *s);

/* ---- ftp_session.c ----------------------------------------------------- */

/* Takes fd (an accepted control connection) in worker w, and what its
 * address holds in ftp_adm (hold[0]: a session, hold[1]: a login). */
void session_new(struct ftp_worker *w, int fd, const struct sockaddr *sa, socklen_t salen,
                 struct adm_hold hold[2]);
/* Ends the session now: its transfer is accounted as cut. */
void session_free(struct session *s);
/* Queues a reply line ("226 Transfer complete."); CRLF is added. */
void session_reply(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Replies then closes once the reply is written. */
void session_close(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The data connection's transfer is over: commands held back go on. */
void session_transfer_over(struct session *s);
/* Quiesce: idle sessions close, busy ones once their transfer ends. */
void session_quiesce(struct session *s);

/* ---- ftp_files.c: commands on the login's files ------------------------ */

void cmd_cwd(struct session *s, const char *arg);
void cmd_size(struct session *s, const char *arg, int mdtm); /* SIZE, or MDTM */
void cmd_mlst(struct session *s, const char *arg);
void cmd_list(struct session *s, enum ftp_verb v, const char *arg); /* LIST NLST MLSD */
void cmd_retr(struct session *s, const char *arg);

/* ---- ftp_data.c -------------------------------------------------------- */

/* PASV (epsv 0) or EPSV: opens the session's passive listener and replies. */
void data_pasv(struct session *s, int epsv, const char *arg);
/* PORT (eprt 0) or EPRT, when enabled: checks the address and replies. */
void data_port(struct session *s, int eprt, const char *arg);
/* Whether a PASV/EPSV/PORT/EPRT prepared a data connection. */
int data_ready(const struct session *s);
/* Whether a transfer (or listing) runs on the data connection. */
int data_busy(const struct session *s);
/* RETR: sends [start, start + len) of tr's package; takes tr (a transfer
 * begun and requested), and answers 150, then 226 or 426 or 425. */
void data_retr(struct session *s, struct transfer *tr, uint64_t start, uint64_t len);
/* LIST, NLST, MLSD: sends text (taken). */
void data_list(struct session *s, struct evbuffer *text);
/* ABOR: cuts what runs (426 then 226) or says there was nothing (225). */
void data_abort(struct session *s);
/* The session ends: what runs is cut and accounted, ports released. */
void data_free(struct session *s);

#endif
