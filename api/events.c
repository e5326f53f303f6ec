/* events.c: the event stream (events.h). Each subscriber keeps the id of
 * the last event it considered; its content reader formats what the feed
 * holds after that id and matches its filters, and suspends the
 * connection when there is nothing. The hub's mutex orders a reader's
 * "nothing, suspend" against the pump's "something, resume", so that no
 * event is left waiting behind a suspended connection. */
#include "autoconfig.h"

#include "events.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../fleet/delivery.h"
#include "../fleet/feed.h"
#include "../util/log.h"
#include "../util/proto.h"
#include "../util/util.h"
#include "json.h"

#define KINDS_MAX 8
#define BATCH 64 /* events formatted per call of the reader */

struct sse_sub {
  struct sse_hub *hub;
  struct MHD_Connection *c;
  uint64_t last;
  int suspended, stats;
  int gone;                           /* the client closed while suspended: end at once */
  int64_t next_stats, next_keepalive; /* monotonic ms */
  char rollout[16], device[65];
  char kinds[KINDS_MAX][FEED_KIND_MAX];
  int n_kinds;
  char *out; /* formatted, not yet handed to libmicrohttpd */
  size_t len, off;
  struct sse_sub *next;
};

/* ---- formatting ------------------------------------------------------------ */

static int kind_matches(const struct sse_sub *s, const char *kind)
{
  if (s->n_kinds == 0)
    return 1;
  for (int i = 0; i < s->n_kinds; i++) {
    size_t n = strlen(s->kinds[i]);
    /* "device" matches "device.state" too */
    if (strncmp(kind, s->kinds[i], n) == 0 && (kind[n] == '\0' || kind[n] == '.'))
      return 1;
  }
  return 0;
}

struct fmt {
  struct sse_sub *s;
  FILE *m;
  int n;
};

static void quoted(FILE *m, const char *v)
{
  json_t *j;
  char *t;

  if (v[0] == '\0') {
    fputs("null", m);
    return;
  }
  j = json_string(v);
  t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
  fputs(t ? t : "null", m);
  free(t);
  json_decref(j);
}

static int format_one(const struct feed_event *e, void *arg)
{
  struct fmt *f = arg;
  const struct sse_sub *s = f->s;
  char at[40];

  if ((s->rollout[0] && strcmp(s->rollout, e->rollout) != 0) ||
      (s->device[0] && strcmp(s->device, e->device) != 0) || !kind_matches(s, e->kind))
    return 0;
  time_iso_ms(e->at, at, sizeof(at));
  /* kinds, ids and times are ours; device ids are quoted by jansson and
   * the detail is JSON the fleet wrote: one line, no raw newline */
  fprintf(f->m,
          "id: %llu\nevent: %s\ndata: {\"id\":%llu,\"kind\":\"%s\",\"at\":\"%s\",\"rollout\":",
          (unsigned long long)e->id, e->kind, (unsigned long long)e->id, e->kind, at);
  quoted(f->m, e->rollout);
  fputs(",\"device\":", f->m);
  quoted(f->m, e->device);
  fprintf(f->m, ",\"detail\":%s}\n\n", e->detail);
  f->n++;
  return 0;
}

static void format_stats(FILE *m)
{
  fputs("event: stats\ndata: {\"transfers\":{", m);
  for (int p = 0; p < PROTO_COUNT; p++) {
    struct proto_figures fig;
    delivery_figures((enum proto)p, &fig);
    fprintf(m, "%s\"%s\":{\"in_flight\":%lld,\"bytes_sent\":%llu}", p ? "," : "",
            proto_name((enum proto)p), (long long)fig.in_flight, (unsigned long long)fig.bytes);
  }
  fprintf(m, "},\"in_flight\":%d,\"last_event\":%llu}\n\n", delivery_in_flight(),
          (unsigned long long)feed_last());
}

/* Fills s->out with what is due now; hub->mu held. */
static void fill(struct sse_sub *s)
{
  struct fmt f = {s, NULL, 0};
  int64_t now = mono_ms();
  int gap = 0;

  free(s->out);
  s->out = NULL;
  s->len = s->off = 0;
  f.m = open_memstream(&s->out, &s->len);
  if (f.m == NULL)
    return;
  s->last = feed_read(s->last, BATCH, format_one, &f, &gap);
  if (gap)
    fputs("event: gap\ndata: {\"message\":\"events were missed; reload the state\"}\n\n", f.m);
  if (s->stats && now >= s->next_stats) {
    format_stats(f.m);
    s->next_stats = now + SSE_STATS_MS;
    f.n++;
  }
  if (f.n == 0 && !gap && now >= s->next_keepalive)
    fputs(": keep-alive\n\n", f.m);
  fclose(f.m);
  if (s->len > 0)
    s->next_keepalive = now + SSE_KEEPALIVE_MS;
}

static int due(const struct sse_sub *s, int64_t now)
{
  return feed_last() > s->last || (s->stats && now >= s->next_stats) || now >= s->next_keepalive;
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
  struct sse_sub *s = cls;
  struct sse_hub *h = s->hub;
  size_t n;

  (void)pos;
  pthread_mutex_lock(&h->mu);
  if (s->gone) {
    pthread_mutex_unlock(&h->mu);
    return MHD_CONTENT_READER_END_WITH_ERROR;
  }
  if (s->off == s->len) {
    if (h->stopping || atomic_load(h->draining)) {
      pthread_mutex_unlock(&h->mu);
      return MHD_CONTENT_READER_END_OF_STREAM;
    }
    fill(s);
    if (s->off == s->len) {
      s->suspended = 1;
      MHD_suspend_connection(s->c);
      pthread_mutex_unlock(&h->mu);
      return 0;
    }
  }
  n = s->len - s->off < max ? s->len - s->off : max;
  memcpy(buf, s->out + s->off, n);
  s->off += n;
  pthread_mutex_unlock(&h->mu);
  return (ssize_t)n;
}

static void sub_free(void *cls)
{
  struct sse_sub *s = cls;
  struct sse_hub *h = s->hub;

  pthread_mutex_lock(&h->mu);
  for (struct sse_sub **p = &h->subs; *p; p = &(*p)->next)
    if (*p == s) {
      *p = s->next;
      break;
    }
  h->n--;
  pthread_mutex_unlock(&h->mu);
  free(s->out);
  free(s);
}

/* ---- the pump ------------------------------------------------------------------- */

/* Whether the client of a suspended stream has gone (libmicrohttpd does
 * not watch a suspended connection): its place is freed at once rather
 * than at the next keep-alive. */
static int client_gone(struct MHD_Connection *c)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  struct pollfd p;

  if (ci == NULL)
    return 0;
  p.fd = ci->connect_fd;
  p.events = POLLRDHUP;
  p.revents = 0;
  return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

static void *pump(void *arg)
{
  struct sse_hub *h = arg;
  uint64_t seen = 0;

  for (;;) {
    int64_t now;
    int n;
    pthread_mutex_lock(&h->mu);
    n = h->n;
    pthread_mutex_unlock(&h->mu);
    /* with no stream, events wake nobody (a rollout's start publishes one
     * per device); with streams, at most one round per 20 ms */
    seen = feed_wait(n > 0 ? seen : UINT64_MAX, 500);
    if (n > 0) {
      struct timespec pause = {0, 20 * 1000000L};
      nanosleep(&pause, NULL);
    }
    now = mono_ms();
    pthread_mutex_lock(&h->mu);
    if (h->stopping) {
      pthread_mutex_unlock(&h->mu);
      return NULL;
    }
    for (struct sse_sub *s = h->subs; s; s = s->next) {
      if (!s->suspended)
        continue;
      s->gone = client_gone(s->c);
      if (s->gone || due(s, now) || atomic_load(h->draining)) {
        s->suspended = 0;
        MHD_resume_connection(s->c);
      }
    }
    pthread_mutex_unlock(&h->mu);
  }
}

int sse_hub_start(struct sse_hub *h, const atomic_int *draining)
{
  memset(h, 0, sizeof(*h));
  pthread_mutex_init(&h->mu, NULL);
  h->draining = draining;
  if (pthread_create(&h->pump, NULL, pump, h) != 0) {
    pthread_mutex_destroy(&h->mu);
    return -1;
  }
  h->started = 1;
  return 0;
}

void sse_hub_stop(struct sse_hub *h)
{
  if (!h->started)
    return;
  pthread_mutex_lock(&h->mu);
  h->stopping = 1;
  for (struct sse_sub *s = h->subs; s; s = s->next)
    if (s->suspended) {
      s->suspended = 0;
      MHD_resume_connection(s->c);
    }
  pthread_mutex_unlock(&h->mu);
  feed_kick();
  pthread_join(h->pump, NULL);
  h->started = 0;
  /* let the readers end their streams (at most 2 s) */
  for (int i = 0; i < 200; i++) {
    int n;
    pthread_mutex_lock(&h->mu);
    n = h->n;
    pthread_mutex_unlock(&h->mu);
    if (n == 0)
      break;
    usleep(10000);
  }
}

void sse_hub_free(struct sse_hub *h) { pthread_mutex_destroy(&h->mu); }

/* ---- the request ------------------------------------------------------------ */

/* The kinds a filter may name: a family ("device" is every device.*) or
 * one kind of it. A name that is neither is refused rather than matched
 * against nothing: a typo in kind= must not turn into a silent, empty
 * stream. The device kinds are those device_event() is called with
 * (fleet/, and the LwM2M ones of server/coap/);
 * tests/console/openapi.js checks each kind the sources name is taken. */
static const char *const families[] = {"device", "rollout", "alarm", "package", "stats", NULL};
static const char *const device_kinds[] = {
    "state", "offer", "report", "version", "hop_confirmed", "rollout", "created",
    /* LwM2M: server/coap/lwm2m_rd.c (registrations), lwm2m_dm.c (/5),
     * lwm2m_push.c (the package pushed into /5/0/0) */
    "lwm2m_register", "lwm2m_deregister", "lwm2m_expired", "lwm2m_write", "lwm2m_execute",
    "lwm2m_execute_held", "lwm2m_result", "lwm2m_retry", "lwm2m_cancel", "lwm2m_gave_up",
    "lwm2m_format", "lwm2m_error", "lwm2m_push", "lwm2m_pushed", "lwm2m_push_size",
    "lwm2m_push_restart", "lwm2m_push_end", NULL};
static const char *const package_kinds[] = {"uploaded", "deleted", "damaged", NULL};

static int in_list(const char *const *list, const char *v, size_t n)
{
  for (; *list != NULL; list++)
    if (strlen(*list) == n && strncmp(*list, v, n) == 0)
      return 1;
  return 0;
}

static int kind_known(const char *v, size_t n)
{
  const char *dot = memchr(v, '.', n);

  if (dot == NULL)
    return in_list(families, v, n);
  if ((size_t)(dot - v) == 6 && strncmp(v, "device", 6) == 0)
    return in_list(device_kinds, dot + 1, n - 7);
  if ((size_t)(dot - v) == 7 && strncmp(v, "package", 7) == 0)
    return in_list(package_kinds, dot + 1, n - 8);
  return 0;
}

static int parse_kinds(struct sse_sub *s, const char *v)
{
  while (v != NULL && *v != '\0') {
    const char *comma = strchr(v, ',');
    size_t n = comma ? (size_t)(comma - v) : strlen(v);
    if (n == 0 || n >= FEED_KIND_MAX || s->n_kinds == KINDS_MAX || !kind_known(v, n))
      return -1;
    memcpy(s->kinds[s->n_kinds], v, n);
    s->kinds[s->n_kinds++][n] = '\0';
    v = comma ? comma + 1 : NULL;
  }
  return 0;
}

enum MHD_Result sse_handle(struct MHD_Connection *c, struct sse_hub *h)
{
  const char *last = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
  const char *rollout = json_arg(c, "rollout"), *device = json_arg(c, "device");
  struct MHD_Response *r;
  struct sse_sub *s;
  enum MHD_Result ret;

  /* a typo ("rolout=") is a 400, not a filter left out: every rollout's events */
  static const char *const known[] = {"rollout", "device", "kind", "last_event_id", NULL};
  int refused = json_query_refuse(c, known);

  if (refused >= 0)
    return (enum MHD_Result)refused;
  if (last == NULL || last[0] == '\0')
    last = json_arg(c, "last_event_id");
  if ((rollout && strlen(rollout) >= sizeof(s->rollout)) ||
      (device && strlen(device) >= sizeof(s->device)))
    return json_error(c, MHD_HTTP_BAD_REQUEST, "bad_request", "rollout or device id too long");
  s = calloc(1, sizeof(*s));
  if (s == NULL)
    return MHD_NO;
  if (parse_kinds(s, json_arg(c, "kind")) < 0) {
    free(s);
    return json_error(c, MHD_HTTP_BAD_REQUEST, "bad_request",
                      "kind is a comma-separated list of at most 8 known kinds: rollout, "
                      "alarm, stats, package, package.uploaded (deleted, damaged), device, "
                      "device.state (offer, report, version, hop_confirmed, rollout, created, "
                      "lwm2m_...)");
  }
  if (last != NULL) {
    char *end;
    errno = 0;
    unsigned long long n = strtoull(last, &end, 10);
    if (errno != 0 || *end != '\0' || !isdigit((unsigned char)last[0])) {
      free(s);
      return json_error(c, MHD_HTTP_BAD_REQUEST, "bad_request",
                        "Last-Event-ID must be an event id (a whole number)");
    }
    s->last = (uint64_t)n;
  } else {
    s->last = feed_last(); /* from now on */
  }
  snprintf(s->rollout, sizeof(s->rollout), "%s", rollout ? rollout : "");
  snprintf(s->device, sizeof(s->device), "%s", device ? device : "");
  s->stats = kind_matches(s, "stats");
  s->hub = h;
  s->c = c;
  s->next_keepalive = 0; /* a first line at once: the client knows it is connected */
  pthread_mutex_lock(&h->mu);
  if (h->stopping || h->n >= SSE_MAX_SUBSCRIBERS) {
    pthread_mutex_unlock(&h->mu);
    free(s);
    return json_error_retry(c, MHD_HTTP_SERVICE_UNAVAILABLE, "busy",
                            "too many event streams are open; try again later", SSE_RETRY_AFTER_S);
  }
  s->next = h->subs;
  h->subs = s;
  h->n++;
  pthread_mutex_unlock(&h->mu);
  feed_kick(); /* the pump watches streams from now on */
  r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, reader, s, sub_free);
  if (r == NULL) {
    sub_free(s);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  MHD_add_response_header(r, "X-Accel-Buffering", "no");
  ret = MHD_queue_response(c, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}
