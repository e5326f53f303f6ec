/* coap_int.h: what the CoAP front's files share (coap_front.c: life cycle
 * and the thread; coap_res.c: resources; coap_dtls.c: PSK and
 * certificates). Include <coap3/coap.h> only through this header: it
 * brings syslog.h, whose LOG_INFO and LOG_DEBUG macros would otherwise
 * shadow our log levels.
 *
 * Threads: libcoap 4.3.1 is not thread-safe. An engine owns one
 * coap_context_t and one thread, and only that thread calls libcoap or
 * touches the fields below marked (thread). Other threads use the atomics
 * and the mutex-guarded pending settings. */
#ifndef DFOTAD_COAP_INT_H
#define DFOTAD_COAP_INT_H

#include <coap3/coap.h>
/* libcoap's (syslog's) levels we use, kept before their names go */
enum { COAP_LEVEL_INFO = LOG_INFO, COAP_LEVEL_DEBUG = LOG_DEBUG };
#undef LOG_INFO
#undef LOG_DEBUG

#include <pthread.h>
#include <stdatomic.h>

#include "../../fleet/delivery.h"
#include "../../net/tls_store.h"
#include "../../util/config.h"
#include "../../util/log.h"
#include "coap_front.h"
#include "coap_xfer.h"

/* The settings of a [coap] or [coaps] section an engine runs with; copied
 * from the configuration, replaced on reload. */
struct coap_settings {
  int sessions;   /* at once: beyond it the idlest session goes */
  int handshakes; /* DTLS handshakes in progress */
  int timeout;    /* idle seconds before a session goes */
  int per_ip;     /* sessions per client address, 0: no limit */
  int anonymous;  /* /p/{id} served */
  int max_report; /* report payload bytes */
  /* LwM2M (lwm2m.h) */
  int lwm2m, lwm2m_insecure, lwm2m_registrations, lwm2m_lt_min, lwm2m_lt_max, lwm2m_poll,
      lwm2m_awake;
};

struct coap_engine {
  enum proto proto;
  struct fleet *fleet;
  coap_context_t *ctx; /* (thread) after start */
  pthread_t thread;
  atomic_int stop, draining, refs;
  char listen_key[CONF_MAX_LISTEN * 80]; /* the addresses, to tell a reload in place */

  struct coap_settings set; /* (thread) */
  struct tls_store *tls;    /* (thread) the certificates in use, or NULL: PSK only */

  pthread_mutex_t mu; /* guards the two below */
  struct coap_settings *pending_set;
  struct tls_store *pending_tls;
  int pending_tls_set;

  struct coap_xfers xfers; /* (thread) */
  struct ip_count **ipc;   /* (thread) sessions per client address */
  size_t nipc;
  atomic_size_t active; /* downloads active lately, for busy() */

  unsigned char psk_out[PSK_MAX]; /* (thread) the key handed to libcoap, wiped after */
  coap_bin_const_t psk_bin;
  unsigned char dummy_psk[32]; /* see coap_dtls.c */
  coap_dtls_pki_t pki;         /* (thread) points into tls */

  struct session_stats *stats; /* &delivery_sessions[proto] */
  long nsessions;              /* (thread) this engine's share of stats->sessions */
  struct lwm2m_server *lw;     /* (thread) the LwM2M server's registrations (lwm2m.h) */
};

/* Sessions over the per-address limit carry this as their app data. */
#define COAP_SESSION_OVER ((void *)1)

/* coap_res.c: registers the resources on e->ctx. 0 or -1. */
int coap_res_register(struct coap_engine *e);

/* coap_dtls.c: PSK (always, for coaps) and certificates (when tls has a
 * default pair). 0, or -1 with errors added. (thread, or before it runs) */
int coap_dtls_setup(struct coap_engine *e, struct tls_store *tls, struct config_errors *errs);
/* The device a DTLS session authenticated (PSK identity or verified
 * certificate CN); 0, or -1 when none. (thread) */
int coap_dtls_peer(struct coap_engine *e, coap_session_t *s, char device[DEVICE_ID_MAX + 1]);
/* Wipes the key last handed to libcoap. (thread) */
void coap_dtls_wipe(struct coap_engine *e);

/* "1.2.3.4" and "1.2.3.4:5683" ("[::1]:5683") of a session's peer. */
void coap_peer_text(coap_session_t *s, char *ip, size_t iplen, char *ipport, size_t iplen2);

#endif
