/* stats.h: daemon-wide counters of the device fronts, for /metrics. */
#ifndef DFOTAD_STATS_H
#define DFOTAD_STATS_H

#include <stdatomic.h>
#include <stdint.h>

enum { STATS_HTTP = 0, STATS_HTTPS, STATS_PROTOCOLS };

struct dfotad_stats {
  _Atomic uint64_t requests[STATS_PROTOCOLS];
  _Atomic uint64_t bytes[STATS_PROTOCOLS];
};

extern struct dfotad_stats dfotad_stats;

static inline const char *stats_protocol_name(int p) { return p == STATS_HTTPS ? "https" : "http"; }

#endif
