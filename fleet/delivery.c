/* delivery.c: the delivery core (delivery.h): the fronts' bases, resolving
 * download names, transfers and their accounting, offer URLs. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/util.h"
#include "fleet_int.h"

/* ---- counters ---------------------------------------------------------------- */

struct proto_counters {
  _Atomic uint64_t requests, bytes, downloads;
  _Atomic int64_t open, in_flight;
  _Atomic uint64_t counter[FC_COUNT];
};
static struct proto_counters counters[PROTO_COUNT];
static atomic_int in_flight;

static const struct {
  const char *name, *help;
} counter_rows[FC_COUNT] = {
    [FC_HANDSHAKES] = {"dfotad_sessions_handshakes_total",
                       "DTLS handshakes completed, by protocol."},
    [FC_HANDSHAKE_FAILURES] = {"dfotad_sessions_handshake_failures_total",
                               "DTLS handshakes failed, by protocol."},
    [FC_UNKNOWN_IDENTITIES] = {"dfotad_sessions_unknown_identities_total",
                               "DTLS handshakes refused for an unknown PSK identity, by protocol."},
    [FC_REFUSED] = {"dfotad_sessions_refused_total",
                    "Connections or sessions refused by a limit, by protocol."},
    [FC_BAD_REQUESTS] = {"dfotad_bad_requests_total",
                         "Requests refused as malformed (CoAP 4.00/4.02...), by protocol."},
    [FC_HEADER_TIMEOUTS] = {"dfotad_header_timeouts_total",
                            "Connections ended for sending their headers too slowly."},
    [FC_HEADER_EVICTED] = {"dfotad_header_evicted_total",
                           "Connections in their header phase ended for newer ones."},
    [FC_KEPT_CLOSED] = {"dfotad_kept_closed_total",
                        "Idle keep-alive connections closed to make room."},
    [FC_REHOMED] = {"dfotad_rehomed_total",
                    "Busy keep-alive connections asked to reconnect to the worker on their CPU."},
};

void delivery_count(enum proto p, enum front_counter c, uint64_t n)
{
  if ((unsigned)p < PROTO_COUNT && (unsigned)c < FC_COUNT)
    atomic_fetch_add_explicit(&counters[p].counter[c], n, memory_order_relaxed);
}

void delivery_sessions_open(enum proto p, int64_t delta)
{
  if ((unsigned)p < PROTO_COUNT)
    atomic_fetch_add_explicit(&counters[p].open, delta, memory_order_relaxed);
}

int delivery_in_flight(void) { return atomic_load(&in_flight); }

void delivery_figures(enum proto p, struct proto_figures *out)
{
  memset(out, 0, sizeof(*out));
  if ((unsigned)p >= PROTO_COUNT)
    return;
  out->requests = atomic_load_explicit(&counters[p].requests, memory_order_relaxed);
  out->bytes = atomic_load_explicit(&counters[p].bytes, memory_order_relaxed);
  out->downloads = atomic_load_explicit(&counters[p].downloads, memory_order_relaxed);
  out->open = atomic_load_explicit(&counters[p].open, memory_order_relaxed);
  out->in_flight = atomic_load_explicit(&counters[p].in_flight, memory_order_relaxed);
  for (int c = 0; c < FC_COUNT; c++)
    out->counter[c] = atomic_load_explicit(&counters[p].counter[c], memory_order_relaxed);
}

const char *front_counter_name(enum front_counter c)
{
  return (unsigned)c < FC_COUNT ? counter_rows[c].name : "";
}

const char *front_counter_help(enum front_counter c)
{
  return (unsigned)c < FC_COUNT ? counter_rows[c].help : "";
}

void count_request(enum proto p)
{
  if ((unsigned)p < PROTO_COUNT)
    atomic_fetch_add_explicit(&counters[p].requests, 1, memory_order_relaxed);
}

/* ---- commits ---------------------------------------------------------------- */

int delivery_commit(struct fleet *f, void (*done)(void *arg), void *arg)
{
  return store_sync_async(f->store, done, arg);
}

void delivery_commit_wait(struct fleet *f) { store_sync(f->store); }

struct transfer {
  struct fleet *f;
  struct package *pkg;
  enum proto proto;
  char token[FLEET_TOKEN_LEN + 1];
  char addr[64];
};

/* ---- bases ---------------------------------------------------------------- */

void delivery_set_bases(struct fleet *f, const char *const bases[PROTO_COUNT])
{
  pthread_mutex_lock(&f->mu);
  for (int p = 0; p < PROTO_COUNT; p++)
    snprintf(f->base[p], sizeof(f->base[p]), "%s", bases[p] ? bases[p] : "");
  pthread_mutex_unlock(&f->mu);
}

int transport_served(const struct fleet *f, enum proto p)
{
  return (unsigned)p < PROTO_COUNT && f->base[p][0] != '\0';
}

int delivery_has(struct fleet *f, enum proto p)
{
  int has;

  pthread_mutex_lock(&f->mu);
  has = transport_served(f, p);
  pthread_mutex_unlock(&f->mu);
  return has;
}

void fleet_public_base(struct fleet *f, int proto, char *out, size_t len)
{
  pthread_mutex_lock(&f->mu);
  snprintf(out, len, "%s", (unsigned)proto < PROTO_COUNT ? f->base[proto] : "");
  pthread_mutex_unlock(&f->mu);
}

const char *transport_from_json(const struct fleet *f, json_t *v, int *out)
{
  enum proto p;

  *out = -1;
  if (v == NULL || json_is_null(v))
    return NULL;
  if (!json_is_string(v) || proto_parse(json_string_value(v), &p) < 0)
    return "transport must be one of http, https, coap, coaps, ftp, ftps (or null)";
  if (!transport_served(f, p))
    return "transport names a protocol with no front on this server (its section has no "
           "listen address)";
  *out = (int)p;
  return NULL;
}

/* ---- names ---------------------------------------------------------------- */

void delivery_file_name(const struct package *p, char *out, size_t len)
{
  const char *n = p->name ? p->name : "";
  size_t l = strlen(n);
  int safe = l > 0 && l <= 64 && n[0] != '.';

  for (const char *c = n; safe && *c; c++)
    safe = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
           *c == '.' || *c == '_' || *c == '-';
  if (safe)
    snprintf(out, len, "%s", n);
  else
    snprintf(out, len, "%s.bin", p->id);
}

/* Percent-encodes what is not unreserved (RFC 3986), for a URL's user. */
static void url_user(const char *in, char *out, size_t len)
{
  size_t o = 0;

  for (; *in && o + 4 < len; in++) {
    unsigned char c = (unsigned char)*in;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~')
      out[o++] = (char)c;
    else
      o += (size_t)snprintf(out + o, len - o, "%%%02X", c);
  }
  out[o] = '\0';
}

void offer_url(struct fleet *f, const struct device *d, enum proto t, char *out, size_t len)
{
  const char *base = f->base[t];

  if (t == PROTO_FTP || t == PROTO_FTPS) {
    /* ftp://DEVICE:TOKEN@HOST:PORT/NAME: the token is the password, so the
     * URL dies with the offer; the login sees that one file */
    const char *hostport = strstr(base, "://");
    struct package *p = store_package_get(f->store, d->package_id);
    char user[3 * DEVICE_ID_MAX + 1], name[80];

    url_user(d->id, user, sizeof(user));
    if (p != NULL) {
      delivery_file_name(p, name, sizeof(name));
      package_unref(p);
    } else {
      snprintf(name, sizeof(name), "%s.bin", d->package_id);
    }
    snprintf(out, len, "%s://%s:%s@%s/%s", proto_name(t), user, d->token,
             hostport ? hostport + 3 : base, name);
    return;
  }
  snprintf(out, len, "%s/f/%s", base, d->token);
}

/* ---- resolving -------------------------------------------------------------- */

static enum resolve resolved(struct package *p, struct target *out)
{
  out->pkg = p;
  if (p == NULL)
    return RESOLVE_NOT_FOUND;
  if (atomic_load(&p->status) != PKG_OK) {
    package_unref(p);
    out->pkg = NULL;
    return RESOLVE_DAMAGED;
  }
  return RESOLVE_OK;
}

enum resolve delivery_resolve_package(struct fleet *f, const char *id, struct target *out)
{
  memset(out, 0, sizeof(*out));
  return resolved(store_package_get(f->store, id), out);
}

const char *delivery_resolve_text(enum resolve r)
{
  switch (r) {
  case RESOLVE_OK: return "";
  case RESOLVE_DAMAGED: return "package damaged on the server";
  case RESOLVE_UNAVAILABLE: return "the database does not answer";
  default: return "no such download";
  }
}

/* An offered device whose first bytes are asked for is downloading. (f->mu) */
static void fetching(struct fleet *f, struct device *d)
{
  if (d->state == D_OFFERED && d->retry_at <= now_ms())
    device_set_state(f, d, D_DOWNLOADING, "first bytes requested");
}

void target_fetch(struct fleet *f, const struct target *t)
{
  struct device *d;

  if (t->token[0] == '\0')
    return;
  pthread_mutex_lock(&f->mu);
  d = token_find(f, t->token);
  if (d != NULL && strcmp(d->id, t->device) == 0)
    fetching(f, d);
  pthread_mutex_unlock(&f->mu);
}

enum resolve delivery_resolve_offer(struct fleet *f, const char *token, const char *device,
                                    int fetch, struct target *out)
{
  struct device *d;
  char pkg[PKG_ID_LEN + 1] = "";
  int synced = 0;

  memset(out, 0, sizeof(*out));
  if (strlen(token) != FLEET_TOKEN_LEN)
    return RESOLVE_NOT_FOUND;
  pthread_mutex_lock(&f->mu);
  d = token_find(f, token);
  if (d == NULL && f->shared) {
    /* another node's offer of a moment ago: read the others' changes */
    pthread_mutex_unlock(&f->mu);
    synced = fleet_shared_refresh(f);
    pthread_mutex_lock(&f->mu);
    d = token_find(f, token);
  }
  if (d != NULL && (device == NULL || strcmp(device, d->id) == 0)) {
    snprintf(pkg, sizeof(pkg), "%s", d->package_id);
    snprintf(out->token, sizeof(out->token), "%s", token);
    snprintf(out->device, sizeof(out->device), "%s", d->id);
    if (fetch)
      fetching(f, d);
  }
  pthread_mutex_unlock(&f->mu);
  if (pkg[0] == '\0')
    return synced < 0 ? RESOLVE_UNAVAILABLE : RESOLVE_NOT_FOUND;
  return resolved(store_package_get(f->store, pkg), out);
}

void target_release(struct target *t)
{
  if (t->pkg != NULL)
    package_unref(t->pkg);
  t->pkg = NULL;
}

/* ---- transfers ------------------------------------------------------------- */

/* Copies s into out (len bytes), cut short if need be; always ended. */
static void copy_bounded(char *out, size_t len, const char *s)
{
  size_t n = strnlen(s, len - 1);

  memcpy(out, s, n);
  out[n] = '\0';
}

struct transfer *transfer_begin(struct fleet *f, struct target *t, enum proto proto,
                                const char *addr)
{
  /* malloc, not calloc: glibc's calloc passes its per-thread cache by
   * (one transfer per request, freed to that cache and never taken back) */
  struct transfer *tr = malloc(sizeof(*tr));

  if (tr == NULL) {
    target_release(t);
    return NULL;
  }
  memset(tr, 0, sizeof(*tr));
  tr->f = f;
  tr->pkg = t->pkg;
  t->pkg = NULL;
  tr->proto = proto;
  /* bounded copies without snprintf: this is every download's path, and
   * two snprintf calls cost more than the rest of transfer_begin */
  copy_bounded(tr->token, sizeof(tr->token), t->token);
  copy_bounded(tr->addr, sizeof(tr->addr), addr ? addr : "");
  atomic_fetch_add(&in_flight, 1);
  atomic_fetch_add(&counters[proto].in_flight, 1);
  return tr;
}

struct package *transfer_package(const struct transfer *tr) { return tr->pkg; }

void transfer_request(struct transfer *tr)
{
  store_record_request(tr->pkg);
  count_request(tr->proto);
}

void transfer_delivered(struct transfer *tr, uint64_t start, uint64_t bytes, int complete,
                        enum piece kind)
{
  int reached_end = complete && start + bytes >= tr->pkg->size && bytes > 0;

  store_record_delivered(tr->pkg, bytes, reached_end);
  atomic_fetch_add_explicit(&counters[tr->proto].bytes, bytes, memory_order_relaxed);
  if (reached_end)
    atomic_fetch_add_explicit(&counters[tr->proto].downloads, 1, memory_order_relaxed);
  if (tr->token[0] != '\0')
    progress_record(tr->f, tr->token, start, bytes, complete, kind, tr->proto, tr->addr);
}

void transfer_resumed(struct transfer *tr, uint64_t at)
{
  if (tr->token[0] != '\0')
    progress_resumed(tr->f, tr->token, at < tr->pkg->size ? at : tr->pkg->size, tr->proto,
                     tr->addr);
}

void transfer_end(struct transfer *tr)
{
  if (tr == NULL)
    return;
  package_unref(tr->pkg);
  atomic_fetch_sub(&counters[tr->proto].in_flight, 1);
  free(tr);
  atomic_fetch_sub(&in_flight, 1);
}

/* delivery_psk_lookup: psk.c */

int delivery_store_up(struct fleet *f)
{
  char why[200];

  return store_reachable(f->store, why, sizeof(why));
}
