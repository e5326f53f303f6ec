/* metrics.c: the fleet's and the fronts' counters as Prometheus text, in
 * one place. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>

#include "fleet_int.h"
#include "lwm2m_int.h"

static void metric(FILE *m, const char *name, const char *help, const char *type,
                   unsigned long long value)
{
  fprintf(m, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, value);
}

/* The header of a family with one series per protocol. */
static void family(FILE *m, const char *name, const char *help, const char *type)
{
  fprintf(m, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A family with one series per protocol from first to last. */
static void series(FILE *m, const char *name, const struct proto_figures *fig, int first, int last,
                   size_t which)
{
  for (int p = first; p <= last; p++) {
    const struct proto_figures *g = &fig[p];
    unsigned long long v = which == 0   ? g->requests
                           : which == 1 ? g->bytes
                           : which == 2 ? g->downloads
                                        : g->counter[which - 3];
    fprintf(m, "%s{protocol=\"%s\"} %llu\n", name, proto_name((enum proto)p), v);
  }
}

/* Which protocols a front counter is shown for: those whose fronts count
 * it (the others would only ever show 0). */
static void counter_range(enum front_counter c, int *first, int *last)
{
  switch (c) {
  case FC_HANDSHAKES:
  case FC_HANDSHAKE_FAILURES:
  case FC_UNKNOWN_IDENTITIES: *first = *last = PROTO_COAPS; return;
  case FC_BAD_REQUESTS: *first = PROTO_COAP, *last = PROTO_COAPS; return;
  case FC_HEADER_TIMEOUTS:
  case FC_HEADER_EVICTED:
  case FC_KEPT_CLOSED: *first = PROTO_HTTP, *last = PROTO_HTTPS; return;
  case FC_REHOMED: *first = *last = PROTO_HTTP; return;
  default: *first = 0, *last = PROTO_COUNT - 1; return;
  }
}

/* A counter family from one value per protocol. */
static void per_protocol(FILE *m, const char *name, const char *help, const uint64_t *v)
{
  fprintf(m, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
  for (int p = 0; p < PROTO_COUNT; p++)
    fprintf(m, "%s{protocol=\"%s\"} %llu\n", name, proto_name((enum proto)p),
            (unsigned long long)v[p]);
}

char *fleet_metrics(struct fleet *f)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&buf, &len);
  int dirty = 0, events;
  struct proto_figures fig[PROTO_COUNT];

  if (m == NULL)
    return NULL;
  for (int p = 0; p < PROTO_COUNT; p++)
    delivery_figures((enum proto)p, &fig[p]);
  family(m, "dfotad_requests_total",
         "Device requests answered, by protocol: check-ins and reports at their verdict, "
         "download requests as their answer starts (an HTTP response queued, an FTP RETR, a "
         "CoAP block).",
         "counter");
  series(m, "dfotad_requests_total", fig, 0, PROTO_COUNT - 1, 0);
  family(m, "dfotad_bytes_sent_total", "Payload bytes that reached devices, by protocol.",
         "counter");
  series(m, "dfotad_bytes_sent_total", fig, 0, PROTO_COUNT - 1, 1);
  family(m, "dfotad_downloads_total",
         "Transfers that delivered a package's last byte, by protocol.", "counter");
  series(m, "dfotad_downloads_total", fig, 0, PROTO_COUNT - 1, 2);
  family(m, "dfotad_sessions_open", "Sessions open now (CoAP), by protocol.", "gauge");
  for (int p = PROTO_COAP; p <= PROTO_COAPS; p++)
    fprintf(m, "dfotad_sessions_open{protocol=\"%s\"} %lld\n", proto_name((enum proto)p),
            (long long)fig[p].open);
  for (int c = 0; c < FC_COUNT; c++) {
    int first, last;
    counter_range((enum front_counter)c, &first, &last);
    family(m, front_counter_name((enum front_counter)c), front_counter_help((enum front_counter)c),
           "counter");
    series(m, front_counter_name((enum front_counter)c), fig, first, last, (size_t)c + 3);
  }
  lwm2m_metrics(m);
  pthread_mutex_lock(&f->mu);
  for (struct device *d = f->dirty; d; d = d->dirty_next)
    dirty++;
  events = (int)f->n_events;
  metric(m, "dfotad_devices", "Devices known.", "gauge", (unsigned long long)f->n_devices);
  metric(m, "dfotad_checkins_total", "Device check-ins.", "counter", f->checkins);
  metric(m, "dfotad_reports_total", "Device reports.", "counter", f->reports);
  metric(m, "dfotad_offers_total", "Download offers made.", "counter", f->offers);
  per_protocol(m, "dfotad_auth_failures_total",
               "Device credentials refused (secrets, FTP logins, DTLS PSK identities and keys), "
               "by protocol.",
               f->auth_failures);
  per_protocol(m, "dfotad_auth_throttled_total",
               "Device requests, logins and handshakes refused unheard after too many failed "
               "credentials, by protocol.",
               f->auth_throttled);
  metric(m, "dfotad_progress_events_total", "Ranges recorded against devices.", "counter",
         f->progress_events);
  metric(m, "dfotad_writer_queue", "Device records and events waiting for the writer.", "gauge",
         (unsigned long long)(dirty + events));
  fprintf(m, "# HELP dfotad_rollout_devices Devices per state per rollout.\n"
             "# TYPE dfotad_rollout_devices gauge\n");
  for (struct rollout *r = f->rollouts; r; r = r->next) {
    const int *c = r->count;
    for (int s = D_PENDING; s < D_NSTATES; s++)
      fprintf(m, "dfotad_rollout_devices{rollout=\"%s\",state=\"%s\"} %d\n", r->id,
              dstate_name((enum dstate)s), c[s]);
  }
  fprintf(m, "# HELP dfotad_rollout_bytes_served_total Bytes served per rollout.\n"
             "# TYPE dfotad_rollout_bytes_served_total counter\n");
  for (struct rollout *r = f->rollouts; r; r = r->next)
    fprintf(m, "dfotad_rollout_bytes_served_total{rollout=\"%s\"} %llu\n", r->id,
            (unsigned long long)r->bytes_served);
  pthread_mutex_unlock(&f->mu);
  fclose(m);
  return buf;
}
