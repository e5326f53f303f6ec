/* ftp_session.c: one FTP control connection: reading command lines (at
 * most FTP_LINE_MAX bytes, one at a time), the login (user = device id,
 * password = the offer's download token, so a login sees exactly one file
 * and dies with the offer), explicit TLS, and every command but the data
 * connection's own (ftp_data.c). A session lives on one worker thread.
 *
 * What a logged-in session sees and fetches is ftp_files.c's. */
#include "autoconfig.h"

#include <errno.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <netinet/tcp.h>

#include "../../net/tls_openssl.h"
#include "../../util/log.h"
#include "../../util/util.h"
#include "ftp_cmd.h"
#include "ftp_int.h"

#define CLOSE_WRITE_S 10 /* seconds a closing session may take to read its last reply */

static void process(struct session *s);
static void bev_setup(struct session *s);

void session_reply(struct session *s, const char *fmt, ...)
{
  struct evbuffer *out = bufferevent_get_output(s->bev);
  va_list ap;

  va_start(ap, fmt);
  evbuffer_add_vprintf(out, fmt, ap);
  va_end(ap);
  evbuffer_add(out, "\r\n", 2);
}

void session_free(struct session *s)
{
  struct ftp_worker *w = s->w;

  data_free(s);
  if (s->prev)
    s->prev->next = s->next;
  else
    w->head = s->next;
  if (s->next)
    s->next->prev = s->prev;
  ftp_login_over(s);
  atomic_fetch_sub(&s->ff->sessions, 1);
  adm_give(ftp_adm, &s->hold_addr);
  adm_give(ftp_adm, &s->hold_login);
  adm_give(ftp_adm, &s->hold_dev);
  if (s->timer)
    event_free(s->timer);
  if (s->bev != NULL) {
    evutil_socket_t fd = bufferevent_getfd(s->bev);
    bufferevent_disable(s->bev, EV_READ | EV_WRITE); /* before the close below */
    bufferevent_free(s->bev);                        /* TLS: frees the SSL and closes the socket */
    if (!s->tls && fd >= 0)
      close(fd);
  }
  explicit_bzero(s->token, sizeof(s->token));
  free(s);
}

void session_close(struct session *s, const char *fmt, ...)
{
  struct evbuffer *out = bufferevent_get_output(s->bev);
  struct timeval tv = {CLOSE_WRITE_S, 0};
  va_list ap;

  va_start(ap, fmt);
  evbuffer_add_vprintf(out, fmt, ap);
  va_end(ap);
  evbuffer_add(out, "\r\n", 2);
  s->state = S_CLOSING;
  data_free(s);
  evtimer_del(s->timer);
  bufferevent_disable(s->bev, EV_READ);
  bufferevent_set_timeouts(s->bev, NULL, &tv);
}

static void set_idle(struct session *s, int on)
{
  struct timeval tv = {on ? s->ff->idle_s : 0, 0};

  bufferevent_set_timeouts(s->bev, on ? &tv : NULL, NULL);
}

void session_transfer_over(struct session *s)
{
  set_idle(s, 1);
  if (atomic_load(&s->ff->quiescing)) {
    session_close(s, "421 Server restarting, please reconnect.");
    return;
  }
  bufferevent_enable(s->bev, EV_READ);
  process(s); /* commands that waited for the transfer */
}

void session_quiesce(struct session *s)
{
  if (s->state != S_CLOSING && !data_busy(s))
    session_close(s, "421 Server restarting, please reconnect.");
}

/* ---- login ------------------------------------------------------------------ */

static void login_ok(struct session *s)
{
  s->state = S_READY;
  ftp_login_over(s);
  adm_give(ftp_adm, &s->hold_login);
  evtimer_del(s->timer);
  snprintf(s->cwd, sizeof(s->cwd), "/");
  session_reply(s, "230 Login successful.");
}

static void login_failed(struct session *s)
{
  int64_t delay = FTP_LOGIN_DELAY_MS;
  struct timeval tv;

  for (int i = 0; i < s->fails && delay < FTP_LOGIN_DELAY_MAX_MS; i++)
    delay *= 2;
  if (delay > FTP_LOGIN_DELAY_MAX_MS)
    delay = FTP_LOGIN_DELAY_MAX_MS;
  tv.tv_sec = delay / 1000;
  tv.tv_usec = (delay % 1000) * 1000;
  s->fails++;
  /* SECURITY: counted, throttled and logged (at a bounded rate) by the
   * delivery core, as every front's failed credentials; the user name is
   * printable text (the parser refuses control characters), the password
   * never reaches a log */
  delivery_auth_failed(s->ff->fleet, s->ff->proto, s->addr, s->user[0] ? s->user : NULL,
                       "failed FTP login");
  explicit_bzero(s->token, sizeof(s->token));
  /* SECURITY: the answer waits, longer with every failure of the session */
  s->state = S_DELAY;
  evtimer_add(s->timer, &tv);
}

static void cmd_user(struct session *s, const char *arg)
{
  if (s->state == S_READY) {
    session_reply(s, "530 Can't change to another user.");
    return;
  }
  if (s->ff->require_tls && !s->tls) {
    session_reply(s, "530 Non-anonymous sessions must use encryption (AUTH TLS).");
    return;
  }
  /* a name too long is kept empty: the login then fails like any other,
   * without saying which part was wrong */
  if (strlen(arg) <= DEVICE_ID_MAX)
    snprintf(s->user, sizeof(s->user), "%s", arg);
  else
    s->user[0] = '\0';
  s->state = S_PASS;
  session_reply(s, "331 Please specify the password.");
}

static void cmd_pass(struct session *s, const char *arg)
{
  struct target t;
  enum resolve r;
  char cn[DEVICE_ID_MAX + 8];
  struct adm_key k;
  int wait;

  if (s->state != S_PASS) {
    session_reply(s, s->state == S_READY ? "230 Already logged in." : "503 Login with USER first.");
    return;
  }
  /* SECURITY: an address or a device id that failed too often lately is
   * not heard (the throttle every front shares) */
  wait = delivery_auth_wait(s->ff->fleet, s->ff->proto, s->addr, s->user[0] ? s->user : NULL);
  if (wait > 0) {
    explicit_bzero(s->token, sizeof(s->token));
    session_close(s, "421 Too many failed logins, try again in %d seconds.", wait);
    return;
  }
  if (strcasecmp(s->user, "anonymous") == 0 || strcasecmp(s->user, "ftp") == 0) {
    if (!s->ff->anonymous) {
      login_failed(s);
      return;
    }
    s->anonymous = 1;
    log_limited(LOG_INFO, 10, "%s: anonymous login from %s", proto_name(s->ff->proto), s->addr);
    login_ok(s);
    return;
  }
  if (s->user[0] == '\0' || strlen(arg) != FLEET_TOKEN_LEN) {
    login_failed(s);
    return;
  }
  /* a verified client certificate names the device: it must be this one */
  if (s->ssl != NULL && tls_openssl_peer(s->ssl, cn, sizeof(cn)) == TLS_PEER_VALID &&
      strcmp(cn, s->user) != 0) {
    login_failed(s);
    return;
  }
  memset(&t, 0, sizeof(t));
  r = delivery_resolve_offer(s->ff->fleet, arg, s->user, 0, &t);
  if (r == RESOLVE_UNAVAILABLE) {
    /* not a wrong password: no failed login counted */
    session_close(s, "421 The database does not answer, try again in %d seconds.",
                  DELIVERY_STORE_RETRY);
    return;
  }
  if (r == RESOLVE_NOT_FOUND || (r == RESOLVE_OK && t.pkg == NULL)) {
    login_failed(s);
    return;
  }
  /* SECURITY: one device's credential holds at most device_session_limit
   * sessions: it cannot take every slot */
  adm_key_device(s->user, &k);
  if (adm_take(ftp_adm, &k, ADM_CONN, (unsigned)s->ff->device_sessions, &s->hold_dev) < 0) {
    target_release(&t);
    log_limited(LOG_INFO, 5, "%s: device %s from %s: over device_session_limit",
                proto_name(s->ff->proto), s->user, s->addr);
    session_close(s, "421 Too many sessions for this device, try later.");
    return;
  }
  snprintf(s->token, sizeof(s->token), "%s", arg);
  if (t.pkg != NULL) {
    delivery_file_name(t.pkg, s->name, sizeof(s->name));
    s->size = t.pkg->size;
    s->mtime = t.pkg->created;
    target_release(&t);
  }
  s->damaged = r == RESOLVE_DAMAGED;
  log_limited(LOG_INFO, 20, "%s: device %s logged in from %s for %s", proto_name(s->ff->proto),
              s->user, s->addr, s->name);
  login_ok(s);
}

/* The failed-login delay is over, or the login deadline passed. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
  struct session *s = arg;

  (void)fd;
  (void)what;
  if (s->state == S_DELAY) {
    if (s->fails >= FTP_LOGIN_TRIES) {
      session_close(s, "530 Login incorrect.");
      return;
    }
    session_reply(s, "530 Login incorrect.");
    s->state = S_USER;
    /* what is left of the login deadline */
    int64_t left = s->login_deadline - mono_ms();
    if (left <= 0) {
      session_close(s, "421 Login timeout.");
      return;
    }
    struct timeval tv = {left / 1000, (left % 1000) * 1000};
    evtimer_add(s->timer, &tv);
    process(s);
  } else if (s->state != S_READY && s->state != S_CLOSING) {
    session_close(s, "421 Login timeout.");
  }
}

/* ---- TLS ------------------------------------------------------------------------- */

static void cmd_auth(struct session *s, const char *arg)
{
  struct bufferevent *nb;
  struct evbuffer *in, *out;
  evutil_socket_t fd = bufferevent_getfd(s->bev);
  SSL *ssl;

  if (s->tls) {
    session_reply(s, "503 Already using TLS.");
    return;
  }
  if (s->ff->ssl_ctx == NULL) {
    session_reply(s, "502 TLS is not configured here.");
    return;
  }
  if (s->state == S_READY) {
    session_reply(s, "503 AUTH must come before the login.");
    return;
  }
  if (strcasecmp(arg, "TLS") != 0 && strcasecmp(arg, "TLS-C") != 0 && strcasecmp(arg, "SSL") != 0) {
    session_reply(s, "504 Unknown AUTH type.");
    return;
  }
  ssl = SSL_new(s->ff->ssl_ctx);
  if (ssl == NULL) {
    session_reply(s, "431 Unable to start TLS.");
    return;
  }
  tls_openssl_bind(ssl, s->nonce);
  session_reply(s, "234 Proceed with negotiation.");
  /* SECURITY: whatever the client sent after AUTH TLS in the same read is
   * plaintext an attacker may have injected; it must never run as if it
   * had come inside TLS (CVE-2011-0411). What is still in the kernel is
   * read by TLS, which refuses it unless it is a handshake. */
  in = bufferevent_get_input(s->bev);
  if (evbuffer_get_length(in) > 0) {
    log_limited(LOG_INFO, 5, "%s: %s sent commands along with AUTH TLS; discarded",
                proto_name(s->ff->proto), s->addr);
    evbuffer_drain(in, evbuffer_get_length(in));
  }
  /* the plain replies must leave before TLS takes the socket; a client
   * that does not even read a few lines is not worth waiting for */
  out = bufferevent_get_output(s->bev);
  evbuffer_unfreeze(out, 1); /* the bufferevent is about to go: we write */
  while (evbuffer_get_length(out) > 0)
    if (evbuffer_write(out, fd) <= 0) {
      log_debug("%s: %s: AUTH TLS: the plain replies could not be sent: %s",
                proto_name(s->ff->proto), s->addr, strerror(errno));
      SSL_free(ssl);
      s->doomed = 1;
      return;
    }
  /* off the event loop now: a bufferevent freed inside its own callback
   * goes later, and must not read the handshake meanwhile */
  bufferevent_disable(s->bev, EV_READ | EV_WRITE);
  bufferevent_free(s->bev); /* made without CLOSE_ON_FREE: the socket stays */
  s->bev = NULL;
  nb = bufferevent_openssl_socket_new(s->w->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                      BEV_OPT_CLOSE_ON_FREE);
  if (nb == NULL) {
    SSL_free(ssl);
    close(fd);
    s->doomed = 1;
    return;
  }
  s->bev = nb;
  s->ssl = ssl;
  s->tls = 1;
  s->pbsz = s->prot_p = 0;
  s->state = S_USER; /* RFC 4217: AUTH resets the login */
  s->tls_started = 1;
  bev_setup(s);
}

static void cmd_pbsz(struct session *s, const char *arg)
{
  uint64_t v;

  if (!s->tls)
    session_reply(s, "503 PBSZ needs a TLS session (AUTH TLS).");
  else if (ftp_parse_u64(arg, &v) < 0)
    session_reply(s, "501 Bad PBSZ.");
  else {
    s->pbsz = 1;
    session_reply(s, "200 PBSZ=0");
  }
}

static void cmd_prot(struct session *s, const char *arg)
{
  if (!s->tls)
    session_reply(s, "503 PROT needs a TLS session (AUTH TLS).");
  else if (!s->pbsz)
    session_reply(s, "503 PBSZ first.");
  else if (strcasecmp(arg, "P") == 0) {
    s->prot_p = 1;
    session_reply(s, "200 PROT now Private.");
  } else if (strcasecmp(arg, "C") == 0) {
    if (s->ff->require_tls) {
      session_reply(s, "534 PROT C refused: data connections must be encrypted.");
      return;
    }
    s->prot_p = 0;
    session_reply(s, "200 PROT now Clear.");
  } else if (strcasecmp(arg, "S") == 0 || strcasecmp(arg, "E") == 0)
    session_reply(s, "536 PROT level not supported.");
  else
    session_reply(s, "504 Unknown PROT level.");
}

/* ---- dispatch ---------------------------------------------------------------------- */

static void cmd_feat(struct session *s)
{
  session_reply(s,
                "211-Features:\r\n%s%s MDTM\r\n MLST type*;size*;modify*;perm*;\r\n REST STREAM\r\n"
                " SIZE\r\n TVFS\r\n UTF8\r\n EPSV\r\n%s211 End",
                s->ff->ssl_ctx && !s->ff->implicit_tls ? " AUTH TLS\r\n" : "",
                s->ff->ssl_ctx ? " PBSZ\r\n PROT\r\n" : "", s->ff->port_enable ? " EPRT\r\n" : "");
}

static void cmd_opts(struct session *s, const char *arg)
{
  if (strncasecmp(arg, "UTF8", 4) == 0)
    session_reply(s, "200 Always in UTF8 mode.");
  else if (strncasecmp(arg, "MLST", 4) == 0)
    session_reply(s, "200 MLST OPTS type;size;modify;perm;");
  else
    session_reply(s, "501 Option not understood.");
}

static void cmd_type(struct session *s, const char *arg)
{
  /* packages leave byte for byte whatever the type: an ASCII transfer is
   * accepted (clients ask for it before LIST) but never converts */
  if (strcasecmp(arg, "I") == 0 || strcasecmp(arg, "L 8") == 0) {
    s->binary = 1;
    session_reply(s, "200 Switching to Binary mode.");
  } else if (strcasecmp(arg, "A") == 0 || strcasecmp(arg, "A N") == 0) {
    s->binary = 0;
    session_reply(s, "200 Switching to ASCII mode.");
  } else {
    session_reply(s, "504 Unsupported TYPE.");
  }
}

static void cmd_stat(struct session *s)
{
  session_reply(s,
                "211-FTP server status:\r\n Connected to %s\r\n Logged in as %s\r\n TYPE: %s\r\n"
                " Data connection: %s\r\n211 End of status",
                s->addr, s->state == S_READY ? (s->anonymous ? "anonymous" : s->user) : "(nobody)",
                s->binary ? "BINARY" : "ASCII",
                data_busy(s)    ? "transferring"
                : data_ready(s) ? "ready"
                                : "none");
}

static void dispatch(struct session *s, const struct ftp_cmd *c)
{
  uint64_t v;

  /* before the login, only what a login needs */
  if (s->state != S_READY) {
    switch (c->verb) {
    case V_USER: cmd_user(s, c->arg); return;
    case V_PASS: cmd_pass(s, c->arg); return;
    case V_AUTH: cmd_auth(s, c->arg); return;
    case V_PBSZ: cmd_pbsz(s, c->arg); return;
    case V_PROT: cmd_prot(s, c->arg); return;
    case V_FEAT: cmd_feat(s); return;
    case V_OPTS: cmd_opts(s, c->arg); return;
    case V_SYST: session_reply(s, "215 UNIX Type: L8"); return;
    case V_NOOP: session_reply(s, "200 NOOP ok."); return;
    case V_HELP: break;
    case V_QUIT: session_close(s, "221 Goodbye."); return;
    case V_UNKNOWN: session_reply(s, "500 Unknown command."); return;
    default: session_reply(s, "530 Please login with USER and PASS."); return;
    }
  }
  switch (c->verb) {
  case V_USER: cmd_user(s, c->arg); break;
  case V_PASS: cmd_pass(s, c->arg); break;
  case V_AUTH: cmd_auth(s, c->arg); break;
  case V_PBSZ: cmd_pbsz(s, c->arg); break;
  case V_PROT: cmd_prot(s, c->arg); break;
  case V_CCC:
    session_reply(s, "502 CCC not supported: the control connection stays encrypted.");
    break;
  case V_SYST: session_reply(s, "215 UNIX Type: L8"); break;
  case V_FEAT: cmd_feat(s); break;
  case V_OPTS: cmd_opts(s, c->arg); break;
  case V_HELP:
    session_reply(s, "214-Commands recognized:\r\n ABOR AUTH CDUP CWD EPSV FEAT LIST MDTM MLSD MLST"
                     " NLST NOOP OPTS PASS PASV PBSZ PROT PWD QUIT REST RETR SIZE STAT SYST TYPE"
                     " USER\r\n214 Help OK.");
    break;
  case V_NOOP: session_reply(s, "200 NOOP ok."); break;
  case V_QUIT:
    data_free(s); /* a transfer still running is cut, and accounted so */
    session_close(s, "221 Goodbye.");
    break;
  case V_STAT: cmd_stat(s); break;
  case V_TYPE: cmd_type(s, c->arg); break;
  case V_MODE:
    session_reply(s, strcasecmp(c->arg, "S") == 0 ? "200 Mode set to S." : "504 Bad MODE command.");
    break;
  case V_STRU:
    session_reply(s, strcasecmp(c->arg, "F") == 0 ? "200 Structure set to F."
                                                  : "504 Bad STRU command.");
    break;
  case V_ALLO: session_reply(s, "202 ALLO command ignored."); break;
  case V_PWD: session_reply(s, "257 \"%s\" is the current directory", s->cwd); break;
  case V_CWD: cmd_cwd(s, c->arg); break;
  case V_CDUP: cmd_cwd(s, ".."); break;
  case V_SIZE: cmd_size(s, c->arg, 0); break;
  case V_MDTM: cmd_size(s, c->arg, 1); break;
  case V_REST:
    if (ftp_parse_u64(c->arg, &v) < 0) {
      session_reply(s, "501 Bad REST parameter.");
    } else {
      s->rest = v;
      session_reply(s, "350 Restart position accepted (%llu).", (unsigned long long)v);
    }
    break;
  case V_RETR: cmd_retr(s, c->arg); break;
  case V_PASV: data_pasv(s, 0, c->arg); break;
  case V_EPSV: data_pasv(s, 1, c->arg); break;
  case V_PORT: data_port(s, 0, c->arg); break;
  case V_EPRT: data_port(s, 1, c->arg); break;
  case V_LIST:
  case V_NLST:
  case V_MLSD: cmd_list(s, c->verb, c->arg); break;
  case V_MLST: cmd_mlst(s, c->arg); break;
  case V_ABOR: data_abort(s); break;
  case V_WRITE: session_reply(s, "550 Permission denied."); break;
  case V_SITE: session_reply(s, "502 SITE not supported."); break;
  default: session_reply(s, "500 Unknown command."); break;
  }
}

/* Runs the complete command lines waiting in the input, one at a time. */
static void process(struct session *s)
{
  char line[FTP_LINE_MAX + 1];

  if (s->processing)
    return; /* a transfer ending inside a command: the loop below goes on */
  s->processing = 1;
  while (s->state != S_DELAY && s->state != S_CLOSING) {
    struct evbuffer *in = bufferevent_get_input(s->bev);
    size_t avail = evbuffer_get_length(in), eol = 0, n;
    struct evbuffer_ptr p;
    struct ftp_cmd c;
    enum ftp_parse r;

    if (avail == 0)
      break;
    /* SECURITY: a client that sends commands but never reads the replies
     * does not make us buffer them without end: reading waits until it has */
    if (evbuffer_get_length(bufferevent_get_output(s->bev)) > FTP_REPLY_BUFFER_MAX) {
      bufferevent_disable(s->bev, EV_READ);
      break;
    }
    p = evbuffer_search_eol(in, NULL, &eol, EVBUFFER_EOL_CRLF);
    if (s->skipping) {
      evbuffer_drain(in, p.pos < 0 ? avail : (size_t)p.pos + eol);
      s->skipping = p.pos < 0;
      continue;
    }
    if (p.pos < 0) {
      /* SECURITY: a line never grows past FTP_LINE_MAX in memory */
      if (avail >= FTP_LINE_MAX) {
        evbuffer_drain(in, avail);
        s->skipping = 1;
        session_reply(s, "500 Command line too long.");
      }
      break;
    }
    n = (size_t)p.pos;
    if (n + eol > FTP_LINE_MAX) {
      evbuffer_drain(in, n + eol);
      session_reply(s, "500 Command line too long.");
      continue;
    }
    evbuffer_copyout(in, line, n);
    r = ftp_cmd_parse(line, n, &c);
    /* one command at a time: while a transfer runs, only ABOR, STAT, NOOP
     * and QUIT are taken; anything else waits for the transfer's end */
    if (r == FTP_OK && data_busy(s) && c.verb != V_ABOR && c.verb != V_STAT && c.verb != V_NOOP &&
        c.verb != V_QUIT)
      break;
    evbuffer_drain(in, n + eol);
    if (r == FTP_NUL)
      session_reply(s, "500 NUL in command line.");
    else if (r == FTP_BAD)
      session_reply(s, "500 Syntax error in command line.");
    else if (r == FTP_OK) {
      log_debug("%s: %s > %s %s", proto_name(s->ff->proto), s->addr, c.name,
                c.verb == V_PASS ? "****" : c.arg);
      dispatch(s, &c);
    }
    if (s->doomed) {
      session_free(s); /* a command found the connection unusable */
      return;
    }
    explicit_bzero(line, sizeof(line)); /* it may have held a password */
    if (s->tls_started) {
      s->tls_started = 0;
      break; /* the input is the TLS layer's now */
    }
  }
  s->processing = 0;
}

/* ---- the control connection's events ---------------------------------------------- */

static void on_read(struct bufferevent *bev, void *arg)
{
  (void)bev;
  process(arg);
}

static void on_write(struct bufferevent *bev, void *arg)
{
  struct session *s = arg;

  (void)bev;
  if (s->state == S_CLOSING) {
    session_free(s);
    return;
  }
  /* the replies are out: commands held back by FTP_REPLY_BUFFER_MAX go on */
  if (!data_busy(s) && s->state != S_DELAY) {
    bufferevent_enable(s->bev, EV_READ);
    process(s);
  }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
  struct session *s = arg;

  (void)bev;
  if (what & BEV_EVENT_CONNECTED) {
    /* the TLS handshake is done: sessions cached server-side (TLS 1.2
     * without tickets) carry the nonce too */
    if (s->ssl != NULL)
      tls_openssl_bind_session(s->ssl, s->nonce);
    return;
  }
  if (what & BEV_EVENT_ERROR) {
    unsigned long e = s->tls ? bufferevent_get_openssl_error(s->bev) : 0;
    char buf[256] = "";
    if (e != 0)
      ERR_error_string_n(e, buf, sizeof(buf));
    log_debug("%s: %s: control connection error: %s %s", proto_name(s->ff->proto), s->addr, buf,
              evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
  }
  if ((what & BEV_EVENT_TIMEOUT) && s->state != S_CLOSING) {
    session_close(s, "421 Timeout.");
    return;
  }
  session_free(s);
}

static void bev_setup(struct session *s)
{
  bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
  bufferevent_setwatermark(s->bev, EV_READ, 0, 4 * FTP_LINE_MAX);
  set_idle(s, 1);
  bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

void session_new(struct ftp_worker *w, int fd, const struct sockaddr *sa, socklen_t salen,
                 struct adm_hold hold[2])
{
  struct ftp_front *ff = w->ff;
  struct session *s = calloc(1, sizeof(*s));
  struct timeval tv = {ff->login_s, 0};
  const void *ip;
  int one = 1;

  if (s == NULL) {
    close(fd);
    adm_give(ftp_adm, &hold[0]);
    adm_give(ftp_adm, &hold[1]);
    return;
  }
  s->w = w;
  s->ff = ff;
  s->hold_addr = hold[0];
  s->hold_login = hold[1];
  /* replies are whole lines: Nagle would only hold one back behind a TLS
   * ticket until the client's delayed ACK, 40 ms or more per command */
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  memcpy(&s->peer, sa, salen < sizeof(s->peer) ? salen : sizeof(s->peer));
  s->peerlen = salen;
  s->locallen = sizeof(s->local);
  getsockname(fd, (struct sockaddr *)&s->local, &s->locallen);
  ip = sa->sa_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                                 : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
  inet_ntop(sa->sa_family, ip, s->addr, sizeof(s->addr));
  snprintf(s->cwd, sizeof(s->cwd), "/");
  s->binary = 1;
  RAND_bytes(s->nonce, sizeof(s->nonce));
  atomic_fetch_add(&ff->sessions, 1);
  atomic_fetch_add(&ff->logins, 1);
  s->counted_login = 1;
  s->opened = mono_ms();
  pthread_mutex_lock(&ff->pend_mu);
  s->pprev = ff->pend_tail;
  if (ff->pend_tail)
    ff->pend_tail->pnext = s;
  else
    ff->pend_head = s;
  ff->pend_tail = s;
  s->pending = 1;
  pthread_mutex_unlock(&ff->pend_mu);
  s->next = w->head;
  if (w->head)
    w->head->prev = s;
  w->head = s;
  s->timer = evtimer_new(w->base, on_timer, s);
  if (ff->implicit_tls) {
    s->ssl = SSL_new(ff->ssl_ctx);
    if (s->ssl != NULL) {
      tls_openssl_bind(s->ssl, s->nonce);
      s->bev = bufferevent_openssl_socket_new(w->base, fd, s->ssl, BUFFEREVENT_SSL_ACCEPTING,
                                              BEV_OPT_CLOSE_ON_FREE);
      if (s->bev == NULL)
        SSL_free(s->ssl);
    }
    s->tls = 1;
  } else {
    /* not CLOSE_ON_FREE: AUTH TLS hands the socket to a TLS bufferevent */
    s->bev = bufferevent_socket_new(w->base, fd, 0);
  }
  if (s->bev == NULL || s->timer == NULL) {
    if (s->bev == NULL)
      close(fd);
    session_free(s);
    return;
  }
  s->login_deadline = s->opened + (int64_t)ff->login_s * 1000;
  evtimer_add(s->timer, &tv);
  bev_setup(s);
  session_reply(s, "220 dfotad FTP server ready.");
}
