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
#include "../../net/admission.h"
#include "../../net/tls_set.h"
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
  struct tls_set *tls;      /* (thread) the TLS set in use (a reference), or NULL: PSK only */
  atomic_int has_pki;       /* libcoap holds a certificate: it cannot drop it in place */

  /* A reload in place hands the engine its settings and TLS set here; the
   * thread installs them (libcoap is not thread-safe). */
  pthread_mutex_t mu; /* guards the three below */
  struct coap_settings *pending_set;
  struct tls_set *pending_tls; /* a reference */
  int pending_tls_set;

  struct coap_xfers xfers; /* (thread) */
  struct admission *adm;   /* sessions and handshakes per client address */
  struct coap_peer *peers; /* (thread) what each session holds */
  int64_t swept;           /* (thread) the last check of PSK sessions' keys */
  atomic_size_t active;    /* downloads active lately, for busy() */

  unsigned char psk_out[PSK_MAX]; /* (thread) the key handed to libcoap, wiped after */
  coap_bin_const_t psk_bin;
  unsigned char dummy_psk[32]; /* see coap_dtls.c */
  coap_dtls_pki_t pki;         /* (thread) points into tls */
  void *chain; /* (thread) STACK_OF(X509): tls's intermediates, parsed once per set */

  long nsessions;          /* (thread) this engine's share of the sessions open */
  struct lwm2m_server *lw; /* (thread) the LwM2M server's registrations (lwm2m.h) */
  unsigned sent;           /* (thread) requests (CONs) sent by the server, ever */

  struct coap_wait *waits;  /* (thread) answers waiting on a commit (coap_res.c) */
  atomic_uint commits_done; /* bumped by the writer's thread as commits end */
  atomic_int commits_out;   /* commits asked for and not yet done */
};

/* What a session holds, as its app data, from the moment it counts (a
 * CoAP session at once; a DTLS session when its PSK identity is known or
 * its handshake completed: never on a ClientHello) until libcoap deletes
 * it (or the engine ends). (thread) */
struct coap_peer {
  coap_session_t *s;
  struct adm_hold conn;                /* a session of its address, once established */
  struct adm_hold handshake;           /* a handshake of its address, until it ends */
  int counted;                         /* among the sessions open */
  int over;                            /* over per_ip_limit: answered 5.03 */
  int connected;                       /* (DTLS) the handshake completed */
  int revoked;                         /* its PSK was removed or changed: 1 to be ended, 2 ended */
  char identity[PSK_IDENTITY_MAX + 1]; /* its PSK identity, "" for none */
  char device[DEVICE_ID_MAX + 1];      /* the device of that identity */
  unsigned char digest[32];            /* SHA-256 of identity and key: is the key still the same? */
  int64_t asked;                       /* monotonic ms the PSK callback gave its key */
  struct coap_peer *prev, *next;
};

/* Handshakes in progress from one address (after the cookie: the address
 * is real): beyond it, the PSK is refused. */
#define COAP_HANDSHAKES_PER_ADDR 64
/* libcoap counts ClientHellos that got a cookie (and never came back) as
 * handshakes for 30 s; they hold no TLS state, so its limit is this many
 * times ours (we count the real ones, see coap_front.c). */
#define COAP_HELLO_FACTOR 16
#define COAP_PSK_SWEEP_MS 10000 /* how often PSK sessions' keys are checked */
/* A handshake whose key was handed out but that did not complete within
 * this: a wrong key (DTLS drops the undecryptable Finished silently, and
 * libcoap would give up only after its retransmissions, half a minute). */
#define COAP_PSK_FINISH_MS 10000

/* Whether s is over the per-address limit (its requests get 5.03). */
int coap_session_over(coap_session_t *s);
/* The peer record of s, made when missing; NULL when out of memory. */
struct coap_peer *coap_peer_get(struct coap_engine *e, coap_session_t *s);

/* coap_res.c: registers the resources on e->ctx. 0 or -1. */
int coap_res_register(struct coap_engine *e);
/* Answers whose commits are done are triggered, answered ones freed.
 * (thread) */
void coap_waits_run(struct coap_engine *e, int64_t now);
/* Whether answers wait on commits (the thread then polls briefly). */
int coap_waits_pending(const struct coap_engine *e);
/* Waits for the commits asked for, then frees every wait (before the
 * context is freed: they hold references to its sessions). */
void coap_waits_free(struct coap_engine *e);

/* coap_dtls.c: PSK (always, for coaps) and certificates (when tls, a TLS
 * set whose reference this takes, is not NULL): installed for the
 * handshakes that follow, the set before let go. 0, or -1 with errors
 * added (the reference let go, the set before kept). (thread, or before
 * it runs) */
int coap_dtls_setup(struct coap_engine *e, struct tls_set *tls, struct config_errors *errs);
/* The device a DTLS session authenticated (PSK identity or verified
 * certificate CN); 0, or -1 when none. (thread) */
int coap_dtls_peer(struct coap_engine *e, coap_session_t *s, char device[DEVICE_ID_MAX + 1]);
/* Wipes the key last handed to libcoap. (thread) */
void coap_dtls_wipe(struct coap_engine *e);
/* Frees what coap_dtls_setup kept (the engine's end). */
void coap_dtls_free(struct coap_engine *e);
/* A DTLS handshake of p completed: a resumed one keeps its PSK identity
 * when the key is unchanged, else p is revoked. (thread) */
void coap_dtls_connected(struct coap_engine *e, struct coap_peer *p);
/* A handshake of p that knew its identity failed or was given up: a wrong
 * key (logged, counted, throttled). (thread) */
void coap_dtls_failed(struct coap_engine *e, struct coap_peer *p);
/* Whether p's PSK still has the key its session was made with. (thread) */
int coap_dtls_key_current(struct coap_engine *e, const struct coap_peer *p);

/* "1.2.3.4" and "1.2.3.4:5683" ("[::1]:5683") of a session's peer. */
/* A datagram or libcoap's timer waits on the engine's descriptor. (thread) */
int coap_input_waiting(struct coap_engine *e);

void coap_peer_text(coap_session_t *s, char *ip, size_t iplen, char *ipport, size_t iplen2);

#endif
