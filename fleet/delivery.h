/* delivery.h: the delivery core. Every device front (HTTP(S), CoAP(S),
 * FTP(S)) parses its own wire format, asks these calls, and renders their
 * answers in its own codes: resolve a name to a package, account a
 * transfer, check a device in, take its report. Nothing here knows a wire
 * format, and no front knows another or touches the database.
 *
 * Threads: every call may be made from any thread. */
#ifndef DFOTAD_DELIVERY_H
#define DFOTAD_DELIVERY_H

#include <stddef.h>
#include <stdint.h>

#include "../store/store.h"
#include "../util/proto.h"

struct fleet;

#define DEVICE_ID_MAX 64
#define FLEET_TOKEN_LEN 24 /* base32: 120 random bits */

/* ---- counters, for /metrics ------------------------------------------
 * The core keeps every figure /metrics shows; fronts report what only
 * they can see (a handshake, a refused connection, a failed login) with
 * delivery_count(). Requests, bytes and downloads are counted by the core
 * itself: a check-in or a report when the core gives its verdict, a
 * download request at transfer_request() (see there). */

enum front_counter {
  FC_HANDSHAKES = 0,     /* (D)TLS handshakes completed */
  FC_HANDSHAKE_FAILURES, /* (D)TLS handshakes failed: wrong key, bad certificate... */
  FC_UNKNOWN_IDENTITIES, /* PSK identities unknown, empty or too long */
  FC_REFUSED,            /* connections or sessions refused by a limit */
  FC_BAD_REQUESTS,       /* requests refused as malformed */
  FC_HEADER_TIMEOUTS,    /* connections ended: headers too slow */
  FC_HEADER_EVICTED,     /* header phases ended for newer connections */
  FC_KEPT_CLOSED,        /* idle keep-alive connections closed for room */
  FC_REHOMED,            /* busy connections asked to reconnect to their CPU's worker */
  FC_COUNT
};

/* n more of c over protocol p. Lock-free; any thread. */
void delivery_count(enum proto p, enum front_counter c, uint64_t n);
/* Sessions (or connections) of p open now: delta +1 on open, -1 on close. */
void delivery_sessions_open(enum proto p, int64_t delta);
/* Transfers begun and not yet ended. */
int delivery_in_flight(void);

/* Whether the store answers (PostgreSQL may not): while it does not, a
 * check-in or a report must not be answered, since only what is durable
 * may be told; fronts ask again after DELIVERY_STORE_RETRY seconds. */
int delivery_store_up(struct fleet *f);
#define DELIVERY_STORE_RETRY 5

/* A snapshot of one protocol's figures. */
struct proto_figures {
  uint64_t requests;  /* check-ins, reports and download requests answered */
  uint64_t bytes;     /* payload bytes that reached clients */
  uint64_t downloads; /* transfers that delivered a package's last byte */
  int64_t open;       /* sessions open now (fronts that report them) */
  int64_t in_flight;  /* transfers under way now */
  uint64_t counter[FC_COUNT];
};
void delivery_figures(enum proto p, struct proto_figures *out);
/* The metric name ("dfotad_..._total") and help text of a counter. */
const char *front_counter_name(enum front_counter c);
const char *front_counter_help(enum front_counter c);

/* ---- where fronts are ------------------------------------------------ */

/* The public base of each protocol's front ("http://host:8080",
 * "coaps://host:5684", "ftp://host:2121"), "" where no front of that
 * protocol runs. Offers are only made over a protocol that has one. Called
 * at start and on every reload; the strings are copied. */
void delivery_set_bases(struct fleet *f, const char *const bases[PROTO_COUNT]);
/* Whether a front of that protocol runs. */
int delivery_has(struct fleet *f, enum proto p);

/* ---- who a device says it is ------------------------------------------ */

struct device_identity {
  const char *device_id; /* claimed (the query's device=), NULL: none */
  const char *secret;    /* the credential header's value, NULL: none */
  const char *peer_id;   /* the device a verified TLS client certificate
                            (CN) or DTLS PSK identity names, NULL: none */
  const char *addr;      /* the client's address as text, for the record */
  enum proto proto;      /* the protocol of the listener it came in on */
};

/* ---- resolving a download name ---------------------------------------- */

/* RESOLVE_UNAVAILABLE: on a node sharing the database, a token this node
 * does not know could not be looked up there (the database does not
 * answer): not "no such download", which a module takes as final; fronts
 * answer "later" (503 with Retry-After DELIVERY_STORE_RETRY, 5.03, FTP 421). */
enum resolve { RESOLVE_OK = 0, RESOLVE_NOT_FOUND, RESOLVE_DAMAGED, RESOLVE_UNAVAILABLE };

/* What a download name designates. pkg holds a reference; token and
 * device are empty for an anonymous package download. */
struct target {
  struct package *pkg;
  char token[FLEET_TOKEN_LEN + 1];
  char device[DEVICE_ID_MAX + 1];
};

/* /p/{id}: a package by id, for fronts that serve packages anonymously. */
enum resolve delivery_resolve_package(struct fleet *f, const char *id, struct target *out);
/* /f/{token}: the package an offer's token stands for. device: when not
 * NULL, the offer must be that device's (an FTP login's user name). fetch:
 * the device starts fetching bytes (not a HEAD, SIZE or probe), which
 * moves an offered device to downloading. */
enum resolve delivery_resolve_offer(struct fleet *f, const char *token, const char *device,
                                    int fetch, struct target *out);
/* The text of a refusal, for a front to show ("no such download",
 * "package damaged on the server"); "" for RESOLVE_OK. */
const char *delivery_resolve_text(enum resolve r);
/* The device starts fetching bytes of t (resolved with fetch = 0, now known
 * servable): an offered device moves to downloading. Nothing for an
 * anonymous target. */
void target_fetch(struct fleet *f, const struct target *t);
/* Drops the reference of a target that no transfer took. */
void target_release(struct target *t);
/* A short file name for a package, for protocols that show one (FTP):
 * its uploaded name when that is safe ([A-Za-z0-9._-], at most 64 bytes,
 * not starting with a dot), else "<id>.bin". */
void delivery_file_name(const struct package *p, char *out, size_t len);

/* ---- transfers --------------------------------------------------------- */

/* A piece is what one request delivered: an HTTP response, one CoAP block,
 * one FTP data connection. */
enum piece {
  PIECE_WHOLE = 0, /* from its start to the end of the package */
  PIECE_SEGMENT,   /* a bounded range (a request_size segment) */
  PIECE_BLOCK
}; /* one block of a block-wise transfer */

struct transfer;

/* Begins a transfer of t (consumed: the transfer takes its reference) over
 * proto for the client at addr. NULL only when out of memory (t is then
 * released). A transfer may span many pieces (the blocks of a CoAP
 * download, the responses of one connection). */
struct transfer *transfer_begin(struct fleet *f, struct target *t, enum proto proto,
                                const char *addr);
struct package *transfer_package(const struct transfer *tr);
/* One download request answered, counted per package and per protocol, at
 * the moment the front starts its answer: an HTTP response queued (GET or
 * HEAD), an FTP RETR accepted, a CoAP block answered (a duplicate message
 * is answered again but not counted). */
void transfer_request(struct transfer *tr);
/* A piece [start, start + bytes) reached the client; complete: all of the
 * piece that was asked for arrived. bytes are payload bytes only (no
 * headers, no TLS records). The offer's device progress, the package's
 * statistics and the protocol's counters follow from this. */
void transfer_delivered(struct transfer *tr, uint64_t start, uint64_t bytes, int complete,
                        enum piece kind);
/* The device went back to an earlier part of the package after a pause,
 * or began past its start (a front that can tell, such as CoAP, says so;
 * HTTP's resumes are seen from interrupted pieces): it asks for `at` on,
 * so it holds the bytes before `at` (shown in its progress, never counted
 * as bytes served). */
void transfer_resumed(struct transfer *tr, uint64_t at);
/* Ends the transfer and releases its package. */
void transfer_end(struct transfer *tr);

/* ---- check-ins ----------------------------------------------------------- */

enum verdict {
  VERDICT_OFFER = 0,   /* url and the offer's details filled */
  VERDICT_NOTHING,     /* nothing to do now */
  VERDICT_LATER,       /* ask again in retry_after seconds */
  VERDICT_BAD_REQUEST, /* message filled */
  VERDICT_FORBIDDEN,   /* unknown device or wrong credential */
  VERDICT_NO_TRANSPORT /* the transport asked for has no front here; message filled */
};

/* Every verdict comes with its body rendered by the core, once, for every
 * front: text (text/plain) and, where there is one, JSON
 * (application/json). A front picks one by what the client accepts and
 * maps the verdict onto its status codes; it renders nothing itself. */
#define ANSWER_TEXT_MAX 768
#define ANSWER_JSON_MAX 1536

struct checkin_answer {
  enum verdict verdict;
  int retry_after; /* seconds, with VERDICT_LATER */
  char url[720];   /* for AT+QFOTADL: at most 700 bytes */
  enum proto transport;
  char package_id[PKG_ID_LEN + 4], sha256[65], from[PKG_FIELD_MAX + 2], to[PKG_FIELD_MAX + 2],
      rollout[16];
  uint64_t size;
  int request_size; /* a suggestion for AT+QFOTADL's request_size */
  char message[160];
  /* rendered: an offer: text = the URL alone (for AT+QFOTADL), json = the
   * offer's fields; a refusal: text = the message, json = ""; nothing to do
   * or later: both "" */
  char text[ANSWER_TEXT_MAX];
  char json[ANSWER_JSON_MAX];
  /* set by delivery_checkin_nowait() only: the check-in changed state that
   * must be committed (delivery_commit) before the answer is sent */
  int must_commit;
};

/* A check-in (GET /v1/update?device=ID&version=V[&transport=T]). version
 * and transport may be NULL. The offer URL is built for the transport the
 * check-in asks for, else the device's, else its rollout's, else the
 * protocol the check-in came in on. */
void delivery_checkin(struct fleet *f, const struct device_identity *who, const char *version,
                      const char *transport, struct checkin_answer *out);
/* The same for a thread that must not wait on the disk (a single-threaded
 * front's event loop): returns at once; when out->must_commit is set, the
 * answer may be sent only after delivery_commit()'s done has run (a state a
 * device is told about is durable before it is told). */
void delivery_checkin_nowait(struct fleet *f, const struct device_identity *who,
                             const char *version, const char *transport,
                             struct checkin_answer *out);

/* Asks for a commit of what the calls so far changed, without waiting:
 * done(arg) runs on the store's writer thread once it is durable. 0, or -1
 * when it cannot be asked (out of memory, stopping): commit synchronously
 * then (delivery_commit_wait). */
int delivery_commit(struct fleet *f, void (*done)(void *arg), void *arg);
/* Commits now and waits for it. */
void delivery_commit_wait(struct fleet *f);

/* ---- reports ----------------------------------------------------------- */

struct report_answer {
  enum verdict verdict; /* VERDICT_NOTHING (applied), BAD_REQUEST, FORBIDDEN, LATER
                           (too many failed credentials: retry_after seconds) */
  int retry_after;
  char state[32]; /* the device's state after it */
  int accepted;   /* usable lines */
  char message[200];
  /* rendered: applied: json = {"state":..,"accepted":..} and text the
   * same; refused: text = the message, json = "" */
  char text[ANSWER_TEXT_MAX];
  char json[ANSWER_JSON_MAX];
  int must_commit; /* delivery_report_nowait() only: see must_commit above */
};

/* A report: URC lines (one per line, as the module printed them) or, when
 * json is set, one JSON object {"stage": "HTTPEND", "code": 0}. */
void delivery_report(struct fleet *f, const struct device_identity *who, int json, const char *body,
                     size_t len, struct report_answer *out);
/* The same without waiting on the disk (see delivery_checkin_nowait). */
void delivery_report_nowait(struct fleet *f, const struct device_identity *who, int json,
                            const char *body, size_t len, struct report_answer *out);

/* The renderers the calls above use (exposed for tests): fill text and
 * json from the other fields. */
void checkin_render(struct checkin_answer *a);
void report_render(struct report_answer *a);

/* ---- failed credentials: one throttle for every front ---------------------- */

/* Failures are counted per address (an IPv6 /64) and per device id; past
 * [fleet] auth_failures in a minute the address or id is locked out for a
 * while that doubles. A front asks before it checks a credential of its
 * own (an FTP login, a DTLS PSK identity), and says when one failed.
 * The check-in and the report do both themselves. */
/* Seconds the address (or the id, when not NULL) must still wait; 0: it
 * may try. A wait is counted as a throttled request. */
int delivery_auth_wait(struct fleet *f, enum proto proto, const char *addr, const char *device_id);
/* A credential failed: counted (dfotad_auth_failures_total), fed to the
 * throttle, and logged at a bounded rate with what, the id and addr.
 * device_id: the id it claimed, NULL when none. */
void delivery_auth_failed(struct fleet *f, enum proto proto, const char *addr,
                          const char *device_id, const char *what);

/* ---- DTLS pre-shared keys ------------------------------------------------ */

#define PSK_MAX 64          /* key bytes */
#define PSK_IDENTITY_MAX 64 /* identity bytes */

/* The key of a PSK identity, from memory (no database read, the lock held
 * for a lookup only). 0 with key, *keylen and device (the device id) set,
 * or -1 for an unknown identity. */
int delivery_psk_lookup(struct fleet *f, const char *identity, size_t idlen, unsigned char *key,
                        size_t *keylen, char device[DEVICE_ID_MAX + 1]);

#endif
