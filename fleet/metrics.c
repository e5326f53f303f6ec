/* metrics.c: the fleet's and the fronts' counters as Prometheus text, in
 * one place. */
#include "autoconfig.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "fleet_int.h"
#include "lwm2m_int.h"

static void metric(FILE *m, const char *name, const char *help, const char *type,
                   unsigned long long value)
{
  fprintf(m, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, value);
}

/* A counter family with one series per protocol; field: the counter's
 * offset in struct proto_stats. */
static void by_protocol(FILE *m, const char *name, const char *help, size_t field)
{
  fprintf(m, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
  for (int p = 0; p < PROTO_COUNT; p++)
    fprintf(
        m, "%s{protocol=\"%s\"} %llu\n", name, proto_name((enum proto)p),
        (unsigned long long)atomic_load((_Atomic uint64_t *)((char *)&delivery_stats[p] + field)));
}

char *fleet_metrics(struct fleet *f)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&buf, &len);
  int dirty = 0, events;

  if (m == NULL)
    return NULL;
  by_protocol(m, "dfotad_requests_total", "Device requests answered, by protocol.",
              offsetof(struct proto_stats, requests));
  by_protocol(m, "dfotad_bytes_sent_total", "Payload bytes that reached devices, by protocol.",
              offsetof(struct proto_stats, bytes));
  by_protocol(m, "dfotad_downloads_total",
              "Transfers that delivered a package's last byte, by protocol.",
              offsetof(struct proto_stats, downloads));
  {
    static const struct {
      const char *name, *help;
      size_t off;
    } ss[] = {
        {"dfotad_sessions_open", "Sessions open now (CoAP), by protocol.",
         offsetof(struct session_stats, open)},
        {"dfotad_sessions_handshakes_total", "DTLS handshakes completed, by protocol.",
         offsetof(struct session_stats, handshakes)},
        {"dfotad_sessions_handshake_failures_total", "DTLS handshakes failed, by protocol.",
         offsetof(struct session_stats, handshake_failures)},
        {"dfotad_sessions_unknown_identities_total",
         "DTLS handshakes refused for an unknown PSK identity, by protocol.",
         offsetof(struct session_stats, unknown_identities)},
        {"dfotad_sessions_refused_total", "Sessions refused by the per-address limit.",
         offsetof(struct session_stats, refused)},
        {"dfotad_bad_requests_total", "Requests refused as malformed (CoAP 4.00/4.02...).",
         offsetof(struct session_stats, bad_requests)},
    };
    for (size_t i = 0; i < sizeof(ss) / sizeof(ss[0]); i++) {
      fprintf(m, "# HELP %s %s\n# TYPE %s %s\n", ss[i].name, ss[i].help, ss[i].name,
              i == 0 ? "gauge" : "counter");
      for (int p = PROTO_COAP; p <= PROTO_COAPS; p++) {
        const char *base = (const char *)&delivery_sessions[p] + ss[i].off;
        long long v = i == 0 ? (long long)atomic_load((_Atomic int64_t *)base)
                             : (long long)atomic_load((_Atomic uint64_t *)base);
        fprintf(m, "%s{protocol=\"%s\"} %lld\n", ss[i].name, proto_name((enum proto)p), v);
      }
    }
  }
  lwm2m_metrics(m);
  pthread_mutex_lock(&f->mu);
  for (struct device *d = f->dirty; d; d = d->dirty_next)
    dirty++;
  events = (int)json_array_size(f->events);
  metric(m, "dfotad_devices", "Devices known.", "gauge", (unsigned long long)f->n_devices);
  metric(m, "dfotad_checkins_total", "Device check-ins.", "counter", f->checkins);
  metric(m, "dfotad_reports_total", "Device reports.", "counter", f->reports);
  metric(m, "dfotad_offers_total", "Download offers made.", "counter", f->offers);
  metric(m, "dfotad_auth_failures_total", "Device credentials refused.", "counter",
         f->auth_failures);
  metric(m, "dfotad_auth_throttled_total",
         "Device requests refused unheard after too many failed credentials.", "counter",
         f->auth_throttled);
  metric(m, "dfotad_progress_events_total", "Ranges recorded against devices.", "counter",
         f->progress_events);
  metric(m, "dfotad_writer_queue", "Device records and events waiting for the writer.", "gauge",
         (unsigned long long)(dirty + events));
  fprintf(m, "# HELP dfotad_rollout_devices Devices per state per rollout.\n"
             "# TYPE dfotad_rollout_devices gauge\n");
  for (struct rollout *r = f->rollouts; r; r = r->next) {
    int c[D_NSTATES] = {0};
    for (int i = 0; i < r->n_members; i++)
      c[r->members[i]->state]++;
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
