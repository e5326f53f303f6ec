/* admission.h: who may hold what at once, one table for every front.
 *
 * A table counts, per key, what a peer holds now in each phase: open
 * connections or sessions, connections still sending their headers,
 * logins in progress, handshakes in progress, passive ports. A key is a
 * client address (IPv4, or an IPv6 /64, which one host usually owns
 * whole) or a device credential (its id), so that per-device caps use
 * the same table. No protocol is known here: the fronts choose the
 * phases and their limits.
 *
 * The table is bounded. An entry lives while it holds something; when
 * every slot is taken, a newcomer takes the slot of the oldest entry
 * holding the least (among a few of the oldest), never is it refused:
 * a flood of addresses cannot lock new ones out. What the evicted entry
 * held is forgotten (its holders' releases then do nothing), so its
 * address may briefly hold more than its limit; a table sized above the
 * front's connection limit evicts only under attack.
 *
 * Failed credentials are not kept here: they feed the delivery core's
 * throttle (per address and per device id), the one every front shares.
 *
 * Threads: every call takes the table's lock; any thread may call. */
#ifndef DFOTAD_ADMISSION_H
#define DFOTAD_ADMISSION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum adm_phase {
  ADM_CONN = 0,  /* connections or sessions */
  ADM_HEADER,    /* connections still sending their first request's headers */
  ADM_LOGIN,     /* logins in progress */
  ADM_HANDSHAKE, /* handshakes in progress */
  ADM_PORT,      /* passive data ports */
  ADM_PHASES
};

#define ADM_KEY_MAX 64      /* bytes of a device key; longer ids are cut */
#define ADM_TABLE_MAX 65536 /* entries of a table, at most (about 110 bytes each) */

struct adm_key {
  unsigned char kind; /* 1: address, 2: device */
  unsigned char len;
  unsigned char b[ADM_KEY_MAX];
};

/* What one take holds; give it back once. A zeroed hold holds nothing. */
struct adm_hold {
  uint32_t idx, gen; /* gen 0: nothing */
  enum adm_phase phase;
};

struct admission;

/* A table of at most cap entries (16 to ADM_TABLE_MAX). NULL: out of
 * memory. */
struct admission *adm_new(unsigned cap);
void adm_free(struct admission *a);

/* The key of a client address: IPv4 (also as ::ffff:a.b.c.d), or the /64
 * of an IPv6 address. */
void adm_key_addr(const struct sockaddr *sa, struct adm_key *k);
/* The key of a device credential. */
void adm_key_device(const char *id, struct adm_key *k);

/* Takes one of phase for k unless k already holds limit of them (limit 0:
 * no limit). 0 with *h filled, or -1 (over the limit, or a bad key) with
 * *h holding nothing. */
int adm_take(struct admission *a, const struct adm_key *k, enum adm_phase phase, unsigned limit,
             struct adm_hold *h);
/* Gives back what h holds (nothing when it holds nothing, or when its entry
 * was evicted) and clears it. */
void adm_give(struct admission *a, struct adm_hold *h);
/* How many of phase the entry of h holds now (0 when evicted). */
unsigned adm_held(struct admission *a, const struct adm_hold *h);

struct adm_stats {
  unsigned entries;           /* now */
  unsigned long long evicted; /* entries evicted for a newcomer */
  unsigned long long refused; /* takes over a limit */
};
void adm_stats(struct admission *a, struct adm_stats *out);

/* Whether two addresses are the same host (whole addresses, IPv4-mapped
 * folded: a data connection must come from its control connection's
 * host, not only from its /64). */
int adm_same_host(const struct sockaddr *x, const struct sockaddr *y);
/* The text of an address as the failed-credential throttle keys it:
 * IPv4 as is, IPv6 as its /64 ("2001:db8:1:2::/64"). text: an address as
 * text (what a front records); out gets at most len bytes. */
void adm_throttle_key(const char *text, char *out, size_t len);

#endif
