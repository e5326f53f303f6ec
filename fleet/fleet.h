/* fleet.h: the fleet's life: devices and rollouts loaded from the store,
 * kept in memory under one lock, persisted through the store's writer
 * (state changes are committed before the answer that reveals them;
 * download progress is batched), and moved on by a periodic tick.
 *
 * Device fronts reach the fleet through delivery.h, the admin API through
 * fleet_admin.h. */
#ifndef DFOTAD_FLEET_H
#define DFOTAD_FLEET_H

#include <stddef.h>

struct fleet;
struct store;

/* Loads devices and rollouts, and registers the fleet's flush hook.
 * 0, or -1 with err filled. */
int fleet_open(struct store *s, struct fleet **out, char *err, size_t errlen);
void fleet_close(struct fleet *f);
/* Loads (or creates, 0600) STATE/psk.key, which seals the devices' DTLS
 * pre-shared keys; refuses one that group or others can read. 0, or -1
 * with err filled. */
int fleet_psk_open(struct fleet *f, const char *state_dir, char *err, size_t errlen);
/* Timeouts, backoffs, waves: called a few times a second. */
void fleet_tick(struct fleet *f);

/* What one device may cost: events kept per device (the oldest go), URC
 * lines per report, and the least time between two re-checks of a package
 * that devices report corrupt. */
struct fleet_limits {
  int events_per_device;
  int report_lines;
  int recheck_interval_ms;
  int auth_free;          /* failed credentials per address or id and minute before a lock-out */
  int psk_generate_bytes; /* bytes of a generated DTLS key, 16..64 (0: 16) */
};
/* At start and on every reload. */
void fleet_set_limits(struct fleet *f, const struct fleet_limits *l);

#endif
