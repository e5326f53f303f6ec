/* coap_front.c: the CoAP(S) front's life cycle: rows "coap" and "coaps"
 * of the fronts table, one engine (a libcoap context and the one thread
 * that may call libcoap) per running section, its limits, and reloads.
 *
 * libcoap binds its own UDP sockets (it cannot adopt bound descriptors in
 * 4.3.1, and DTLS sessions live in its context), so a second context on
 * the same port could not take over the sessions of the first. A reload
 * whose addresses are unchanged is therefore done in place: the new
 * front instance shares the running engine, which takes the new limits
 * and re-reads certificates for the handshakes that follow; established
 * sessions and downloads go on untouched. A reload that changes the
 * addresses starts a new engine, and the old one ends with its front. */
#include "autoconfig.h"

#include "coap_front.h"

#include <arpa/inet.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../net/front.h"
#include "../../util/util.h"
#include "coap_int.h"
#include "lwm2m.h"

#define LOOP_MS 200         /* the thread's longest wait: stop and reload latency */
#define HOUSEKEEP_MS 500    /* expiry, pending settings, key wiping */
#define BUSY_WINDOW_MS 5000 /* a download active this recently keeps a draining front busy */
#define TRIM_MS 10000       /* memory freed by ended handshakes goes back this often */

static pthread_mutex_t engines_mu = PTHREAD_MUTEX_INITIALIZER;
static struct coap_engine *engines[PROTO_COUNT]; /* the newest engine per protocol */

/* ---- logging -------------------------------------------------------- */

/* libcoap's messages: its errors as our warnings, the rest (per-packet
 * chatter, which a flood would multiply) as debug */
static void coap_logger(coap_log_t level, const char *message)
{
  size_t n = strlen(message);

  while (n > 0 && (message[n - 1] == '\n' || message[n - 1] == '\r'))
    n--;
  if (level <= LOG_ERR)
    log_warn("libcoap: %.*s", (int)n, message);
  else
    log_debug("libcoap: %.*s", (int)n, message);
}

static pthread_once_t startup_once = PTHREAD_ONCE_INIT;

static void startup(void)
{
  coap_startup();
  coap_set_log_handler(coap_logger);
  coap_dtls_set_log_level(log_enabled(LOG_DEBUG) ? COAP_LEVEL_INFO : LOG_ERR);
  coap_set_log_level(log_enabled(LOG_DEBUG) ? COAP_LEVEL_INFO : LOG_ERR);
}

/* ---- addresses -------------------------------------------------------- */

void coap_peer_text(coap_session_t *s, char *ip, size_t iplen, char *ipport, size_t iplen2)
{
  const coap_address_t *a = coap_session_get_addr_remote(s);
  char buf[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;

  if (a && a->addr.sa.sa_family == AF_INET) {
    inet_ntop(AF_INET, &a->addr.sin.sin_addr, buf, sizeof(buf));
    port = ntohs(a->addr.sin.sin_port);
    snprintf(ipport, iplen2, "%s:%u", buf, port);
  } else if (a && a->addr.sa.sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &a->addr.sin6.sin6_addr, buf, sizeof(buf));
    /* IPv4 clients of a dual-stack socket appear as ::ffff:a.b.c.d */
    if (strncmp(buf, "::ffff:", 7) == 0 && strchr(buf, '.') != NULL)
      memmove(buf, buf + 7, strlen(buf + 7) + 1);
    port = ntohs(a->addr.sin6.sin6_port);
    snprintf(ipport, iplen2, strchr(buf, ':') ? "[%s]:%u" : "%s:%u", buf, port);
  } else {
    snprintf(ipport, iplen2, "?");
  }
  snprintf(ip, iplen, "%s", buf);
}

/* ---- sessions per client address ------------------------------------- */

struct ip_count {
  char ip[INET6_ADDRSTRLEN];
  int n;
  struct ip_count *next;
};

static struct ip_count **ipc_slot(struct coap_engine *e, const char *ip)
{
  struct ip_count **pp = &e->ipc[hash_str(ip) & (e->nipc - 1)];

  while (*pp && strcmp((*pp)->ip, ip) != 0)
    pp = &(*pp)->next;
  return pp;
}

/* +1 or -1 session for the address of s; returns the count after. */
static int ipc_add(struct coap_engine *e, coap_session_t *s, int d)
{
  char ip[INET6_ADDRSTRLEN], ipport[INET6_ADDRSTRLEN + 16];
  struct ip_count **pp, *c;

  coap_peer_text(s, ip, sizeof(ip), ipport, sizeof(ipport));
  pp = ipc_slot(e, ip);
  c = *pp;
  if (c == NULL) {
    if (d < 0 || (c = calloc(1, sizeof(*c))) == NULL)
      return 0;
    snprintf(c->ip, sizeof(c->ip), "%s", ip);
    *pp = c;
  }
  c->n += d;
  if (c->n <= 0) {
    *pp = c->next;
    free(c);
    return 0;
  }
  return c->n;
}

static int on_event(coap_session_t *s, const coap_event_t ev)
{
  struct coap_engine *e = coap_get_app_data(coap_session_get_context(s));

  switch (ev) {
  case COAP_EVENT_SERVER_SESSION_NEW:
    atomic_fetch_add(&e->stats->open, 1);
    e->nsessions++;
    /* SECURITY: one address may hold at most per_ip sessions; the others
     * get no handshake and no answer but 5.03 */
    if (ipc_add(e, s, 1) > e->set.per_ip && e->set.per_ip > 0) {
      coap_session_set_app_data(s, COAP_SESSION_OVER);
      atomic_fetch_add(&e->stats->refused, 1);
    }
    break;
  case COAP_EVENT_SERVER_SESSION_DEL:
    atomic_fetch_sub(&e->stats->open, 1);
    e->nsessions--;
    ipc_add(e, s, -1);
    break;
  case COAP_EVENT_DTLS_CONNECTED: atomic_fetch_add(&e->stats->handshakes, 1); break;
  case COAP_EVENT_DTLS_ERROR: atomic_fetch_add(&e->stats->handshake_failures, 1); break;
  default: break;
  }
  return 0;
}

/* ---- the engine ---------------------------------------------------------- */

static void apply_limits(struct coap_engine *e)
{
  coap_context_set_max_idle_sessions(e->ctx, (unsigned)e->set.sessions);
  coap_context_set_max_handshake_sessions(e->ctx, (unsigned)e->set.handshakes);
  coap_context_set_session_timeout(e->ctx, (unsigned)e->set.timeout);
}

/* Takes settings and certificates a reload left for the thread. */
static void apply_pending(struct coap_engine *e)
{
  struct coap_settings *set;
  struct tls_store *tls;
  int tls_set;
  struct config_errors errs = {0};

  pthread_mutex_lock(&e->mu);
  set = e->pending_set;
  tls = e->pending_tls;
  tls_set = e->pending_tls_set;
  e->pending_set = NULL;
  e->pending_tls = NULL;
  e->pending_tls_set = 0;
  pthread_mutex_unlock(&e->mu);
  if (set) {
    e->set = *set;
    free(set);
    apply_limits(e);
  }
  if (tls_set) {
    if (coap_dtls_setup(e, tls, &errs) < 0) {
      log_error("%s: certificates not reloaded; the previous ones stay", proto_name(e->proto));
      tls_store_free(tls);
    }
    config_errors_clear(&errs);
  }
}

static void *engine_main(void *arg)
{
  struct coap_engine *e = arg;
  int64_t last = 0, trimmed = 0;

  while (!atomic_load(&e->stop)) {
    int64_t now;
    coap_io_process(e->ctx, LOOP_MS);
    now = mono_ms();
    lwm2m_tick(e, now);
    if (now - last >= HOUSEKEEP_MS) {
      last = now;
      apply_pending(e);
      coap_dtls_wipe(e);
      coap_xfers_expire(&e->xfers, now, COAP_XFER_IDLE_MS);
      atomic_store(&e->active, coap_xfers_active(&e->xfers, now, BUSY_WINDOW_MS));
    }
    if (now - trimmed >= TRIM_MS) {
      /* a DTLS handshake allocates and frees far more than a session
       * keeps: give the freed memory of this thread's arena back */
      trimmed = now;
      malloc_trim(0);
    }
  }
  return NULL;
}

static void engine_free(struct coap_engine *e)
{
  lwm2m_free(e); /* its sessions' references first */
  if (e->ctx) {
    coap_free_context(e->ctx); /* before the downloads: no handler runs after */
    e->ctx = NULL;
    atomic_fetch_sub(&e->stats->open, e->nsessions); /* freed without events */
  }
  coap_xfers_free(&e->xfers);
  if (e->ipc) {
    for (size_t i = 0; i < e->nipc; i++)
      while (e->ipc[i]) {
        struct ip_count *c = e->ipc[i];
        e->ipc[i] = c->next;
        free(c);
      }
    free(e->ipc);
  }
  pthread_mutex_lock(&e->mu);
  free(e->pending_set);
  if (e->pending_tls_set)
    tls_store_free(e->pending_tls);
  pthread_mutex_unlock(&e->mu);
  tls_store_free(e->tls);
  pthread_mutex_destroy(&e->mu);
  explicit_bzero(e->psk_out, sizeof(e->psk_out));
  free(e);
}

static void settings_of(const struct front_conf *fc, struct coap_settings *s)
{
  s->sessions = fc->connection_limit;
  s->handshakes = fc->handshake_limit;
  s->timeout = fc->timeout;
  s->per_ip = fc->per_ip_limit;
  s->anonymous = fc->anonymous_packages;
  s->max_report = fc->max_report;
  s->lwm2m = fc->lwm2m;
  s->lwm2m_insecure = fc->lwm2m_insecure;
  s->lwm2m_registrations = fc->lwm2m_registrations;
  s->lwm2m_lt_min = fc->lwm2m_lifetime_min;
  s->lwm2m_lt_max = fc->lwm2m_lifetime_max;
  s->lwm2m_poll = fc->lwm2m_poll;
  s->lwm2m_awake = fc->lwm2m_queue_awake;
}

static void listen_key(const struct front *fr, char *out, size_t len)
{
  size_t n = 0;

  out[0] = '\0';
  for (int i = 0; i < fr->n && n < len; i++)
    n += (size_t)snprintf(out + n, len - n, "%s ", fr->addr[i].text);
}

/* Binds fr's addresses in a new context and starts its thread. */
static struct coap_engine *engine_new(struct front *fr, const struct front_env *env,
                                      struct tls_store *tls, struct config_errors *errs)
{
  const struct front_conf *fc = &env->conf->front[fr->row->proto];
  struct coap_engine *e = calloc(1, sizeof(*e));

  if (e == NULL) {
    tls_store_free(tls);
    config_errors_add(errs, "%s: out of memory", fr->row->section);
    return NULL;
  }
  e->proto = (enum proto)fr->row->proto;
  e->fleet = env->fleet;
  e->stats = &delivery_sessions[e->proto];
  pthread_mutex_init(&e->mu, NULL);
  settings_of(fc, &e->set);
  listen_key(fr, e->listen_key, sizeof(e->listen_key));
  e->nipc = 1024;
  e->ipc = calloc(e->nipc, sizeof(*e->ipc));
  if (e->ipc == NULL || coap_xfers_init(&e->xfers, COAP_XFER_MAX) < 0 ||
      (e->ctx = coap_new_context(NULL)) == NULL) {
    tls_store_free(tls);
    config_errors_add(errs, "%s: cannot set up libcoap", fr->row->section);
    goto fail;
  }
  coap_set_app_data(e->ctx, e);
  coap_register_event_handler(e->ctx, on_event);
  apply_limits(e);
  /* Block2 is ours (see coap_res.c): libcoap's large-body support keeps
   * transfer state only for seconds and would answer blocks by itself */
  coap_context_set_block_mode(e->ctx, 0);
  if (e->proto == PROTO_COAPS && coap_dtls_setup(e, tls, errs) < 0)
    goto fail;
  if (e->proto != PROTO_COAPS)
    tls_store_free(tls);
  if (coap_res_register(e) < 0 || lwm2m_init(e) < 0) {
    config_errors_add(errs, "%s: cannot register resources", fr->row->section);
    goto fail;
  }
  for (int i = 0; i < fr->n; i++) {
    coap_address_t a;
    coap_address_init(&a);
    memcpy(&a.addr, &fr->addr[i].ss, fr->addr[i].len);
    a.size = fr->addr[i].len;
    if (coap_new_endpoint(e->ctx, &a, e->proto == PROTO_COAPS ? COAP_PROTO_DTLS : COAP_PROTO_UDP) ==
        NULL) {
      config_errors_add(errs, "%s: cannot listen on %s (UDP)", fr->row->section, fr->addr[i].text);
      goto fail;
    }
  }
  atomic_store(&e->refs, 1);
  if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
    config_errors_add(errs, "%s: cannot start its thread", fr->row->section);
    goto fail;
  }
  return e;

fail:
  engine_free(e);
  return NULL;
}

/* ---- the row ---------------------------------------------------------------- */

static int coap_start(struct front *fr, const struct front_env *env, struct config_errors *errs)
{
  const struct front_conf *fc = &env->conf->front[fr->row->proto];
  struct tls_store *tls = NULL;
  struct coap_engine *e;
  char key[sizeof(e->listen_key)];

  pthread_once(&startup_once, startup);
  if (fc->tls.n_sni > 0 || (fc->tls.priorities != NULL && fc->tls.priorities[0] != '\0'))
    log_warn("%s: sni and priorities are not used over DTLS (see README)", fr->row->section);
  if (fc->lwm2m && fc->lwm2m_lifetime_min > fc->lwm2m_lifetime_max) {
    config_errors_add(errs, "%s: lwm2m_lifetime_min is above lwm2m_lifetime_max", fr->row->section);
    return -1;
  }
  if (fr->row->proto == PROTO_COAPS && fc->tls.cert != NULL && fc->tls.cert[0] != '\0' &&
      (tls = tls_store_load(&fc->tls, fr->row->section, errs)) == NULL)
    return -1;
  listen_key(fr, key, sizeof(key));
  pthread_mutex_lock(&engines_mu);
  e = engines[fr->row->proto];
  if (e != NULL && !atomic_load(&e->draining) && strcmp(e->listen_key, key) == 0) {
    /* a reload on the same addresses: in place (see the top) */
    struct coap_settings *set = malloc(sizeof(*set));
    if (set == NULL) {
      pthread_mutex_unlock(&engines_mu);
      tls_store_free(tls);
      config_errors_add(errs, "%s: out of memory", fr->row->section);
      return -1;
    }
    settings_of(fc, set);
    pthread_mutex_lock(&e->mu);
    free(e->pending_set);
    e->pending_set = set;
    if (e->pending_tls_set)
      tls_store_free(e->pending_tls);
    e->pending_tls = tls;
    e->pending_tls_set = fr->row->proto == PROTO_COAPS && tls != NULL;
    if (!e->pending_tls_set)
      tls_store_free(tls);
    pthread_mutex_unlock(&e->mu);
    atomic_fetch_add(&e->refs, 1);
    pthread_mutex_unlock(&engines_mu);
    fr->priv = e;
    log_info("%s: reloaded in place on %s", fr->row->section, key);
    return 0;
  }
  pthread_mutex_unlock(&engines_mu);
  e = engine_new(fr, env, tls, errs);
  if (e == NULL)
    return -1;
  pthread_mutex_lock(&engines_mu);
  engines[fr->row->proto] = e;
  pthread_mutex_unlock(&engines_mu);
  fr->priv = e;
  log_info("%s: listening on %s(UDP%s)", fr->row->section, key,
           fr->row->proto == PROTO_COAPS ? ", DTLS" : "");
  return 0;
}

static void coap_quiesce(struct front *fr)
{
  struct coap_engine *e = fr->priv;

  /* shared with a newer instance: that one goes on taking work */
  if (e != NULL && atomic_load(&e->refs) == 1)
    atomic_store(&e->draining, 1);
}

static int coap_busy(struct front *fr)
{
  struct coap_engine *e = fr->priv;

  if (e == NULL || atomic_load(&e->refs) > 1)
    return 0;
  return (int)atomic_load(&e->active);
}

static void coap_stop(struct front *fr)
{
  struct coap_engine *e = fr->priv;

  fr->priv = NULL;
  if (e == NULL || atomic_fetch_sub(&e->refs, 1) > 1)
    return;
  pthread_mutex_lock(&engines_mu);
  if (engines[e->proto] == e)
    engines[e->proto] = NULL;
  pthread_mutex_unlock(&engines_mu);
  atomic_store(&e->stop, 1);
  pthread_join(e->thread, NULL);
  engine_free(e);
}

const struct front_row coap_front_row = {"coap",       PROTO_COAP, 0,         coap_start,
                                         coap_quiesce, coap_busy,  coap_stop, NULL};
const struct front_row coaps_front_row = {"coaps",      PROTO_COAPS, 0,         coap_start,
                                          coap_quiesce, coap_busy,   coap_stop, NULL};
