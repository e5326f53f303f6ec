/* ftp_data.c: a session's data connection, from PASV/EPSV (or PORT/EPRT
 * when enabled) to its end: accepting only the control peer, TLS that must
 * resume the control connection's session, the payload (sendfile() of the
 * package file in the clear, the package's mapping under TLS), and the
 * accounting of what TCP saw arrive (net/settle.h) before 226 is sent.
 *
 * A data connection carries one transfer (stream mode: its end is the
 * file's end), so every path ends in data_end(), which accounts, replies,
 * releases the passive port and closes the socket. */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/bufferevent_ssl.h>
#include <linux/sockios.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "../../util/log.h"
#include "../../util/util.h"
#include "ftp_cmd.h"
#include "ftp_int.h"

enum { J_NONE = 0, J_RETR, J_LIST };
enum dstate {
  D_LISTEN = 0, /* passive: waiting for the client's connection */
  D_PORT,       /* active: an address to connect to at the transfer */
  D_CONNECT,    /* active: connecting */
  D_OPEN,       /* connected, no transfer yet */
  D_HANDSHAKE,  /* TLS handshake */
  D_TLS,        /* TLS up, no transfer yet */
  D_REFUSED,    /* TLS without the control's session: closed, 522 at the transfer */
  D_SEND,       /* payload queued, being written */
  D_NOTIFY,     /* TLS close_notify waiting for room */
  D_SETTLE,     /* all written; waiting for TCP to say what arrived */
};

struct ftp_data {
  struct session *s;
  enum dstate state;
  int lfd, port;                  /* passive listener and its pool port */
  struct adm_hold h_port;         /* the port, counted against the device (ftp_adm) */
  int fd;                         /* the data connection, ours until data_end */
  struct sockaddr_storage target; /* PORT/EPRT */
  socklen_t targetlen;
  struct event *ev;    /* accept, connect, close_notify or EOF watch */
  struct event *timer; /* deadlines; the settle poll */
  struct bufferevent *bev;
  SSL *ssl;
  int job;
  struct transfer *tr;
  uint64_t start, len; /* the piece of the package */
  struct evbuffer *text;
  uint64_t total; /* payload bytes queued */
  struct settle m;
  int metering;
  int64_t deadline; /* monotonic ms, while settling */
};

enum end { END_DONE, END_CUT, END_ABOR, END_SILENT, END_NOCONN, END_REUSE, END_TLS };

static void data_end(struct ftp_data *d, enum end how, uint64_t arrived, int complete);
static void go(struct ftp_data *d);
static int tls_begin(struct ftp_data *d);

/* Frees a bufferevent whose socket we keep or close ourselves. Inside its
 * own callback libevent finishes freeing it later; its events leave the
 * loop now, before the socket may be closed. */
static void bev_drop(struct bufferevent *bev)
{
  bufferevent_disable(bev, EV_READ | EV_WRITE);
  bufferevent_free(bev);
}

static void timer_in(struct ftp_data *d, int64_t ms)
{
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

  evtimer_add(d->timer, &tv);
}

static void set_ev(struct ftp_data *d, int fd, short what, event_callback_fn cb)
{
  if (d->ev != NULL)
    event_free(d->ev);
  d->ev = event_new(d->s->w->base, fd, what, cb, d);
  if (d->ev != NULL)
    event_add(d->ev, NULL);
}

int data_ready(const struct session *s) { return s->data != NULL && s->data->job == J_NONE; }

int data_busy(const struct session *s) { return s->data != NULL && s->data->job != J_NONE; }

static void on_timer(evutil_socket_t fd, short what, void *arg);

static struct ftp_data *data_new(struct session *s)
{
  struct ftp_data *d = calloc(1, sizeof(*d));

  if (d == NULL)
    return NULL;
  d->s = s;
  d->lfd = d->fd = -1;
  d->timer = evtimer_new(s->w->base, on_timer, d);
  if (d->timer == NULL) {
    free(d);
    return NULL;
  }
  return d;
}

/* ---- setting up: PASV, EPSV, PORT, EPRT ------------------------------------------------ */

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
  struct ftp_data *d = arg;
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  char who[64] = "?";
  int fd;

  (void)what;
  fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0)
    return;
  /* SECURITY: only the control connection's peer may take the data
   * connection (vsftpd's pasv_promiscuous=NO); anyone else racing for the
   * announced port is turned away and the port stays open for the client */
  if (!adm_same_host((struct sockaddr *)&ss, (struct sockaddr *)&d->s->peer)) {
    if (ss.ss_family == AF_INET)
      inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, who, sizeof(who));
    else if (ss.ss_family == AF_INET6)
      inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, who, sizeof(who));
    log_limited(LOG_WARN, 5, "%s: data connection from %s refused: the session is %s's",
                proto_name(d->s->ff->proto), who, d->s->addr);
    close(fd);
    return;
  }
  /* accepted once: the listener and its port go now */
  event_free(d->ev);
  d->ev = NULL;
  close(d->lfd);
  d->lfd = -1;
  ftp_port_give(d->s->ff, d->port);
  adm_give(ftp_adm, &d->h_port);
  d->fd = fd;
  d->state = D_OPEN;
  timer_in(d, (int64_t)d->s->ff->data_s * 1000);
  /* TLS starts now: clients begin their handshake as soon as they connect
   * and would wait for it before sending RETR */
  if (d->s->prot_p) {
    if (tls_begin(d) < 0)
      return; /* it failed and ended */
  }
  if (d->job != J_NONE)
    go(d); /* RETR came first: 150 now (TLS goes on on its own) */
}

/* The control connection's local IPv4 address, for PASV. */
static int local_v4(const struct session *s, struct in_addr *out)
{
  const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&s->local;

  if (s->local.ss_family == AF_INET) {
    *out = ((const struct sockaddr_in *)&s->local)->sin_addr;
    return 0;
  }
  if (s->local.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
    memcpy(out, a6->sin6_addr.s6_addr + 12, 4);
    return 0;
  }
  return -1;
}

void data_pasv(struct session *s, int epsv, const char *arg)
{
  struct ftp_front *ff = s->ff;
  struct ftp_data *d;
  struct in_addr ip;
  int v6 = s->local.ss_family == AF_INET6 &&
           !IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&s->local)->sin6_addr);

  if (epsv && strcasecmp(arg, "ALL") == 0) {
    s->epsv_all = 1;
    session_reply(s, "200 EPSV ALL ok.");
    return;
  }
  if (epsv && arg[0] != '\0' && strcmp(arg, v6 ? "2" : "1") != 0) {
    session_reply(s, "522 Network protocol not supported, use (%d)", v6 ? 2 : 1);
    return;
  }
  if (!epsv && s->epsv_all) {
    session_reply(s, "503 PASV not allowed after EPSV ALL.");
    return;
  }
  if (!epsv && !ff->has_announce && local_v4(s, &ip) < 0) {
    session_reply(s, "425 PASV needs IPv4; use EPSV.");
    return;
  }
  data_free(s); /* one data connection per session: a new PASV replaces it */
  d = data_new(s);
  if (d == NULL) {
    session_reply(s, "425 Out of memory.");
    return;
  }
  /* SECURITY: a device's sessions hold at most device_port_limit passive
   * ports together: one credential cannot empty the pool */
  if (s->hold_dev.gen != 0) {
    struct adm_key k;
    adm_key_device(s->user, &k);
    if (adm_take(ftp_adm, &k, ADM_PORT, (unsigned)ff->device_ports, &d->h_port) < 0) {
      event_free(d->timer);
      free(d);
      session_reply(s, "425 Too many passive ports held by this device, try later.");
      return;
    }
  }
  d->lfd = ftp_port_take(ff, &s->local, &d->port);
  if (d->lfd < 0) {
    adm_give(ftp_adm, &d->h_port);
    event_free(d->timer);
    free(d);
    session_reply(s, "425 No passive port free, try later.");
    return;
  }
  d->state = D_LISTEN;
  s->data = d;
  set_ev(d, d->lfd, EV_READ | EV_PERSIST, on_accept);
  /* a client that never connects gives its port back */
  timer_in(d, (int64_t)ff->data_s * 1000);
  if (epsv) {
    session_reply(s, "229 Entering Extended Passive Mode (|||%d|)", d->port);
  } else {
    unsigned char *b;
    if (ff->has_announce)
      ip = ff->announce;
    b = (unsigned char *)&ip;
    session_reply(s, "227 Entering Passive Mode (%u,%u,%u,%u,%d,%d).", b[0], b[1], b[2], b[3],
                  d->port >> 8, d->port & 255);
  }
}

void data_port(struct session *s, int eprt, const char *arg)
{
  struct sockaddr_storage ss;
  socklen_t len;
  struct ftp_data *d;
  int port;

  if (!s->ff->port_enable) {
    session_reply(s, "502 %s is disabled here; use PASV or EPSV.", eprt ? "EPRT" : "PORT");
    return;
  }
  if (s->epsv_all) {
    session_reply(s, "503 %s not allowed after EPSV ALL.", eprt ? "EPRT" : "PORT");
    return;
  }
  if ((eprt ? ftp_parse_eprt(arg, &ss, &len) : ftp_parse_port(arg, &ss, &len)) < 0) {
    session_reply(s, "501 Syntax error in %s.", eprt ? "EPRT" : "PORT");
    return;
  }
  port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                       : ((struct sockaddr_in6 *)&ss)->sin6_port);
  /* SECURITY: no bounce (FTP used to reach third hosts or ports): only the
   * control connection's own address, never a privileged port */
  if (!adm_same_host((struct sockaddr *)&ss, (struct sockaddr *)&s->peer) || port < 1024) {
    log_limited(LOG_WARN, 5, "%s: %s from %s refused: not its own address or a privileged port",
                proto_name(s->ff->proto), eprt ? "EPRT" : "PORT", s->addr);
    session_reply(s, "500 Illegal %s command.", eprt ? "EPRT" : "PORT");
    return;
  }
  data_free(s);
  d = data_new(s);
  if (d == NULL) {
    session_reply(s, "425 Out of memory.");
    return;
  }
  d->state = D_PORT;
  d->target = ss;
  d->targetlen = len;
  s->data = d;
  session_reply(s, "200 %s command successful. Consider using EPSV.", eprt ? "EPRT" : "PORT");
}

static void on_connected(evutil_socket_t fd, short what, void *arg)
{
  struct ftp_data *d = arg;
  int err = 0;
  socklen_t len = sizeof(err);

  (void)what;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
    data_end(d, END_NOCONN, 0, 0);
    return;
  }
  event_free(d->ev);
  d->ev = NULL;
  d->state = D_OPEN;
  go(d);
}

/* Starts a job: now when connected, else when the connection comes. */
static void job_start(struct session *s)
{
  struct ftp_data *d = s->data;

  /* the control connection waits quietly while data flows */
  bufferevent_set_timeouts(s->bev, NULL, NULL);
  if (d->state == D_OPEN || d->state == D_TLS || d->state == D_HANDSHAKE || d->state == D_REFUSED) {
    go(d);
  } else if (d->state == D_PORT) {
    d->fd = socket(d->target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (d->fd < 0 ||
        (connect(d->fd, (struct sockaddr *)&d->target, d->targetlen) < 0 && errno != EINPROGRESS)) {
      data_end(d, END_NOCONN, 0, 0);
      return;
    }
    d->state = D_CONNECT;
    set_ev(d, d->fd, EV_WRITE, on_connected);
    timer_in(d, (int64_t)s->ff->data_s * 1000);
  } /* D_LISTEN: on_accept starts it */
}

void data_retr(struct session *s, struct transfer *tr, uint64_t start, uint64_t len)
{
  struct ftp_data *d = s->data;

  d->job = J_RETR;
  d->tr = tr;
  d->start = start;
  d->len = len;
  job_start(s);
}

void data_list(struct session *s, struct evbuffer *text)
{
  struct ftp_data *d = s->data;

  d->job = J_LIST;
  d->text = text;
  d->len = evbuffer_get_length(text);
  job_start(s);
}

/* ---- sending --------------------------------------------------------------------------- */

static void on_drain(evutil_socket_t fd, short what, void *arg);
static void check(struct ftp_data *d);

/* Everything is in the kernel (and TLS said close_notify): from now on
 * only TCP knows how much arrives. */
static void after_write(struct ftp_data *d)
{
  /* stream mode: the end of the connection is the end of the file */
  shutdown(d->fd, SHUT_WR);
  d->state = D_SETTLE;
  d->deadline = mono_ms() + (int64_t)d->s->ff->data_s * 1000;
  /* the client's close (after our FIN) is the moment to look again */
  set_ev(d, d->fd, EV_READ | EV_PERSIST, on_drain);
  check(d);
}

static void notify(evutil_socket_t fd, short what, void *arg)
{
  struct ftp_data *d = arg;
  int r;

  (void)fd;
  (void)what;
  ERR_clear_error();
  r = SSL_shutdown(d->ssl);
  if (r < 0 && SSL_get_error(d->ssl, r) == SSL_ERROR_WANT_WRITE) {
    /* the send buffer is full: try again when there is room */
    d->state = D_NOTIFY;
    if (d->ev == NULL || event_get_callback(d->ev) != notify)
      set_ev(d, d->fd, EV_WRITE | EV_PERSIST, notify);
    return;
  }
  after_write(d);
}

static void written(struct ftp_data *d)
{
  /* the socket stays ours: the bufferevent was made without CLOSE_ON_FREE */
  bev_drop(d->bev);
  d->bev = NULL;
  /* the piece on the wire ends here: TLS's close_notify and our FIN are
   * not payload, and a client may reset the connection without
   * acknowledging them */
  settle_written(&d->m, d->fd, d->total, 1);
  if (d->ssl != NULL) {
    /* TLS clients (GnuTLS's above all) want close_notify before the end */
    timer_in(d, (int64_t)d->s->ff->data_s * 1000);
    notify(d->fd, 0, d);
  } else {
    after_write(d);
  }
}

static void on_bev_write(struct bufferevent *bev, void *arg)
{
  struct ftp_data *d = arg;

  (void)bev;
  if (d->state == D_SEND)
    written(d);
}

/* Payload bytes that reached the client so far, when a transfer is cut. */
static uint64_t arrived_now(struct ftp_data *d, int *complete)
{
  uint64_t payload = 0;
  enum settle_state st;

  *complete = 0;
  if (!d->metering)
    return 0;
  if (d->state == D_SEND) {
    uint64_t left = d->bev ? evbuffer_get_length(bufferevent_get_output(d->bev)) : 0;
    settle_written(&d->m, d->fd, d->total > left ? d->total - left : 0, 0);
  }
  st = settle_check(&d->m, d->fd, &payload);
  *complete = st == SETTLE_DONE && d->state == D_SETTLE;
  return payload;
}

static void send_begin(struct ftp_data *d)
{
  struct evbuffer *out = bufferevent_get_output(d->bev);
  struct timeval tv = {d->s->ff->data_s, 0};
  int outq = 0;

  /* TLS handshake bytes still unacknowledged are not payload: the piece
   * starts where they end in the socket's acknowledged count */
  if (ioctl(d->fd, SIOCOUTQ, &outq) < 0 || outq < 0)
    outq = 0;
  settle_begin(&d->m, d->fd, settle_acked(d->fd) + (uint64_t)outq);
  d->metering = 1;
  bufferevent_set_max_single_write(d->bev, FTP_WRITE_MAX);
  if (d->job == J_RETR && d->len > 0) {
    struct package *p = transfer_package(d->tr);
    if (d->ssl == NULL) {
      /* sendfile() from the package's descriptor (the segment does not
       * close it); the transfer holds the package until data_end */
      struct evbuffer_file_segment *seg =
          evbuffer_file_segment_new(p->fd, (ev_off_t)d->start, (ev_off_t)d->len, 0);
      if (seg == NULL || evbuffer_add_file_segment(out, seg, 0, (ev_off_t)d->len) < 0) {
        if (seg)
          evbuffer_file_segment_free(seg);
        data_end(d, END_CUT, 0, 0);
        return;
      }
      evbuffer_file_segment_free(seg); /* the buffer holds its own reference */
    } else if (evbuffer_add_reference(out, p->map + d->start, (size_t)d->len, NULL, NULL) < 0) {
      data_end(d, END_CUT, 0, 0);
      return;
    }
  } else if (d->job == J_LIST) {
    evbuffer_add_buffer(out, d->text);
  }
  d->total = d->len;
  d->state = D_SEND;
  bufferevent_set_timeouts(d->bev, NULL, &tv); /* no progress for data_s: cut */
  if (d->len == 0) {
    written(d); /* nothing to write: REST at the end of the file */
    return;
  }
  bufferevent_enable(d->bev, d->ssl ? EV_READ | EV_WRITE : EV_WRITE);
}

static void on_bev_event(struct bufferevent *bev, short what, void *arg)
{
  struct ftp_data *d = arg;
  uint64_t arrived;
  int complete;

  (void)bev;
  if (what & BEV_EVENT_CONNECTED) {
    if (d->s->ff->tls_reuse && !ftp_tls_data_bound(d->ssl, d->s)) {
      log_limited(LOG_WARN, 5,
                  "%s: data connection from %s without the control connection's TLS session",
                  proto_name(d->s->ff->proto), d->s->addr);
      if (d->job != J_NONE) {
        data_end(d, END_REUSE, 0, 0);
        return;
      }
      /* closed now; the transfer asked for later gets 522 */
      bev_drop(d->bev);
      d->bev = NULL;
      SSL_free(d->ssl);
      d->ssl = NULL;
      close(d->fd);
      d->fd = -1;
      d->state = D_REFUSED;
      return;
    }
    if (d->job != J_NONE)
      send_begin(d);
    else
      d->state = D_TLS;
    return;
  }
  if (d->state == D_HANDSHAKE || d->state == D_TLS) {
    data_end(d, d->job != J_NONE ? END_TLS : END_SILENT, 0, 0);
    return;
  }
  arrived = arrived_now(d, &complete);
  data_end(d, END_CUT, arrived, 0);
}

/* The TLS handshake of the data connection (the server's side of it).
 * 0, or -1 when it could not start (d is then ended and freed). */
static int tls_begin(struct ftp_data *d)
{
  struct session *s = d->s;
  struct timeval tv = {s->ff->data_s, 0};

  d->ssl = SSL_new(s->ff->ssl_ctx);
  if (d->ssl != NULL) {
    SSL_set_num_tickets(d->ssl, 0); /* resumed from the control's ticket; none new */
    d->bev =
        bufferevent_openssl_socket_new(s->w->base, d->fd, d->ssl, BUFFEREVENT_SSL_ACCEPTING, 0);
  }
  if (d->bev == NULL) {
    data_end(d, d->job != J_NONE ? END_TLS : END_SILENT, 0, 0);
    return -1;
  }
  d->state = D_HANDSHAKE;
  bufferevent_setcb(d->bev, NULL, on_bev_write, on_bev_event, d);
  bufferevent_set_timeouts(d->bev, &tv, &tv);
  bufferevent_enable(d->bev, EV_READ | EV_WRITE);
  return 0;
}

/* The connection is there and a job waits: 150, TLS if asked, send. */
static void go(struct ftp_data *d)
{
  struct session *s = d->s;
  int one = 1;

  evtimer_del(d->timer);
  if (d->state == D_REFUSED) {
    data_end(d, END_REUSE, 0, 0);
    return;
  }
  /* the last short segment and close_notify leave at once */
  setsockopt(d->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (d->job == J_RETR)
    session_reply(s, "150 Opening BINARY mode data connection (%llu bytes).",
                  (unsigned long long)d->len);
  else
    session_reply(s, "150 Here comes the directory listing.");
  if (d->state == D_TLS) {
    send_begin(d);
  } else if (d->state == D_HANDSHAKE) {
    /* on_bev_event sends once the handshake is done */
  } else if (s->prot_p) {
    tls_begin(d); /* active mode: the connection has just been made */
  } else {
    d->bev = bufferevent_socket_new(s->w->base, d->fd, 0);
    if (d->bev == NULL) {
      data_end(d, END_CUT, 0, 0);
      return;
    }
    bufferevent_setcb(d->bev, NULL, on_bev_write, on_bev_event, d);
    send_begin(d);
  }
}

/* ---- settling and the end ------------------------------------------------------------- */

static void check(struct ftp_data *d)
{
  uint64_t payload = 0;
  enum settle_state st = settle_check(&d->m, d->fd, &payload);

  /* everything was written: the answer is 226 even when the client ended
   * the connection before TCP saw its last bytes acknowledged (curl resets
   * it after its byte count, its delayed ACK unsent); what arrived is
   * accounted by what TCP saw all the same */
  if (st == SETTLE_DONE)
    data_end(d, END_DONE, payload, 1);
  else if (st == SETTLE_CUT)
    data_end(d, END_DONE, payload, 0);
  else if (mono_ms() >= d->deadline)
    data_end(d, END_CUT, payload, 0);
  else
    timer_in(d, FTP_SETTLE_POLL_MS);
}

static void on_drain(evutil_socket_t fd, short what, void *arg)
{
  struct ftp_data *d = arg;
  char buf[4096];
  ssize_t n;

  (void)what;
  /* whatever the client sends now (its close_notify) is read and
   * dropped: unread bytes would make our close a reset */
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
    ;
  if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
    event_free(d->ev); /* EOF stays readable: stop watching */
    d->ev = NULL;
  }
  check(d);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
  struct ftp_data *d = arg;
  uint64_t arrived;
  int complete;

  (void)fd;
  (void)what;
  if (d->job == J_NONE) {
    /* nobody came, or nothing was asked: the port goes back */
    data_end(d, END_SILENT, 0, 0);
    return;
  }
  switch (d->state) {
  case D_SETTLE: check(d); break;
  case D_LISTEN:
  case D_OPEN:
  case D_TLS:
  case D_REFUSED:
  case D_CONNECT:
  case D_PORT: data_end(d, END_NOCONN, 0, 0); break;
  default:
    arrived = arrived_now(d, &complete);
    data_end(d, END_CUT, arrived, 0);
    break;
  }
}

static void data_end(struct ftp_data *d, enum end how, uint64_t arrived, int complete)
{
  struct session *s = d->s;
  int job = d->job;

  log_debug("%s: %s data connection ends (%d) in state %d: %llu of %llu bytes arrived",
            proto_name(s->ff->proto), s->addr, (int)how, (int)d->state, (unsigned long long)arrived,
            (unsigned long long)d->len);
  if (d->tr != NULL) {
    if (d->metering)
      transfer_delivered(d->tr, d->start, arrived, complete && arrived == d->len, PIECE_WHOLE);
    transfer_end(d->tr);
  }
  if (d->bev)
    bev_drop(d->bev);
  if (d->ssl)
    SSL_free(d->ssl);
  if (d->ev)
    event_free(d->ev);
  event_free(d->timer);
  if (d->fd >= 0)
    close(d->fd);
  if (d->lfd >= 0) {
    close(d->lfd);
    ftp_port_give(s->ff, d->port);
  }
  adm_give(ftp_adm, &d->h_port);
  if (d->text)
    evbuffer_free(d->text);
  s->data = NULL;
  free(d);
  switch (how) {
  case END_DONE:
    session_reply(s, job == J_LIST ? "226 Directory send OK." : "226 Transfer complete.");
    break;
  case END_CUT: session_reply(s, "426 Connection closed; transfer aborted."); break;
  case END_ABOR:
    session_reply(s, "426 Connection closed; transfer aborted.");
    session_reply(s, "226 ABOR successful.");
    break;
  case END_NOCONN: session_reply(s, "425 Failed to establish connection."); break;
  case END_REUSE:
    session_reply(s, "522 TLS data connection must resume the control connection's session.");
    break;
  case END_TLS: session_reply(s, "425 TLS handshake failed on the data connection."); break;
  case END_SILENT: break;
  }
  if (job != J_NONE && how != END_SILENT)
    session_transfer_over(s);
}

void data_abort(struct session *s)
{
  struct ftp_data *d = s->data;
  uint64_t arrived;
  int complete;

  if (d == NULL || d->job == J_NONE) {
    if (d != NULL)
      data_end(d, END_SILENT, 0, 0);
    session_reply(s, "225 No transfer to ABOR.");
    return;
  }
  arrived = arrived_now(d, &complete);
  if (complete)
    data_end(d, END_DONE, arrived, 1);
  else
    data_end(d, END_ABOR, arrived, 0);
}

void data_free(struct session *s)
{
  struct ftp_data *d = s->data;
  uint64_t arrived;
  int complete;

  if (d == NULL)
    return;
  arrived = arrived_now(d, &complete);
  data_end(d, END_SILENT, arrived, complete);
}
