/* fleet_int.h: the fleet's inside, shared by its files: devices.c (records,
 * states, events), credentials.c, persist.c, checkin.c, report.c,
 * progress.c, delivery.c (the core the fronts call), device_admin.c,
 * rollout.c (waves and thresholds), rollout_admin.c and metrics.c.
 * Everything here is guarded by fleet->mu unless said otherwise.
 *
 * Locking: one mutex (f->mu) guards every device and rollout. Lock order:
 * f->mu, then the store's catalog lock. The store's writer takes f->mu in
 * its flush hook while it holds the database, so nothing may wait for the
 * writer (store_sync) or read the database with f->mu held (the loader's
 * row callback, like the flush hook, takes f->mu inside the database's
 * lock). Work over many devices (rollout_job.c, bulk calls, listings, the
 * flush, the load) holds f->mu for a page of JOB_PAGE devices at most. */
#ifndef DFOTAD_FLEET_INT_H
#define DFOTAD_FLEET_INT_H

#include <jansson.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "../util/limits.h"
#include "../util/proto.h"
#include "delivery.h"
#include "feed.h"
#include "fleet.h"
#include "fleet_admin.h"

enum dstate {
  D_IDLE = 0, /* in no rollout */
  D_PENDING,
  D_OFFERED,
  D_DOWNLOADING,
  D_DOWNLOADED,
  D_UPDATING,
  D_SUCCEEDED,
  D_FAILED,
  D_NO_PATH,
  D_NSTATES
};

/* R_STARTING: the start's background job is enrolling the members a page
 * at a time (rollout_job.c); no offers until it runs. */
enum rstate { R_DRAFT = 0, R_RUNNING, R_PAUSED, R_COMPLETED, R_CANCELLED, R_STARTING };

/* Work on a whole rollout done in pages by the fleet's job thread, the
 * lock let go between pages. */
enum rjob { JOB_NONE = 0, JOB_START, JOB_SWEEP /* a cancel's: members back to idle */ };

#define PSK_MASTER_LEN 32 /* AES-256 key sealing the devices' pre-shared keys */
#define MAX_IVALS 8       /* byte intervals served, per offer */
#define MAX_WAVES 16
/* Device hash tables (by id, token, PSK identity): sized for a million
 * devices, ~4 a chain; at 16384 a chain held ~60 at a million and a create
 * (a lookup that misses, twice) walked them all with strcmp. */
#define DEV_BUCKETS 262144
/* Buckets a whole-fleet scan (listing, overview) covers per lock hold: the
 * same share of the fleet (1/64) as before the tables grew. */
#define DEV_SCAN_BUCKETS (DEV_BUCKETS / 64)

struct rollout;

struct device {
  char id[DEVICE_ID_MAX + 1];
  const char *model;    /* interned (fleet_intern) */
  char *version;        /* NULL: unknown (after 511) */
  const char *group;    /* interned */
  json_t *tags;         /* array of strings; NULL: none */
  char secret_hash[96]; /* "sha256$SALT$HEX" */
  enum dstate state;
  int64_t state_since; /* ms */
  char *reason;        /* NULL: none */

  /* rollout membership and the current offer (one hop of the path) */
  struct rollout *rollout;
  char rollout_id[16]; /* kept while loading, before rollouts link */
  int position;        /* order in the rollout: decides the wave */
  char package_id[PKG_ID_LEN + 1];
  char token[FLEET_TOKEN_LEN + 1];
  char sha256[65];
  char *hop_from, *hop_to;
  uint64_t size;
  int attempts;
  int64_t retry_at; /* ms; 0: none */
  long fail_code;   /* -1: none */

  /* progress of the current offer */
  uint64_t bytes_served, contiguous;
  struct {
    uint64_t start, end;
  } ival[MAX_IVALS];
  int n_ival;
  int resumes, segments, last_interrupted, device_percent;
  char protocol[8], addr[64];
  int transport; /* enum proto the operator chose, -1: none */
  int64_t first_seen, last_seen;

  /* last result reported */
  char last_stage[16];
  long last_code; /* -1: none */
  int64_t last_at;

  /* DTLS pre-shared key (psk.c): sealed, never in clear at rest */
  char *psk_identity; /* NULL: the device id */
  char *psk_sealed;   /* NULL: none */
  int psk_linked;

  int midx;                   /* index in its rollout's member arrays */
  struct device_lwm2m *lwm2m; /* lwm2m.c: endpoint, trigger, registration; NULL none */

  int dirty;
  int dead;             /* deleted while a job may still hold it (f->graveyard) */
  int events_untrimmed; /* events written since its history was last trimmed */
  struct device *next, *tnext, *dirty_next, *inext;
};

struct rollout {
  char id[16];
  char *name, *model, *target;
  json_t *selector; /* {group, tags, versions, devices} */
  /* selector.devices sorted (strings of selector, which never changes),
   * built at the first match: a start over N devices with M ids costs
   * N log M, not N x M */
  const char **sel_ids;
  size_t n_sel_ids;
  int sel_indexed;
  int waves[MAX_WAVES], n_waves;
  double success_threshold, max_failure_rate; /* percent */
  int max_concurrent, max_attempts, timeout;  /* timeout: seconds */
  int retry_backoff;                          /* seconds before the first retry; doubles */
  int64_t start_at;                           /* ms; 0: at once */
  int transport;                              /* enum proto for its members, -1: none */
  int win_from, win_to;                       /* hours of day, UTC; win_from < 0: always */
  enum rstate state;
  int wave;
  int failed_base; /* failures the operator accepted by resuming */
  int aside;       /* devices of the wave that ended off target (failed, no path) when the
                      operator resumed: no longer counted against its success */
  char reason[200];
  json_t *alarms; /* array of strings */
  json_t *codes;  /* {"511": n, ...} */
  uint64_t bytes_served;
  int64_t created, started;
  /* members, in three arrays by member index (not position): a scan of
   * states and positions touches 5 bytes a member, not its record */
  struct device **members;
  unsigned char *mstate; /* enum dstate */
  int *mpos;             /* position */
  int n_members, cap_members;
  /* one past the highest position given (0 before any): a member deleted
   * leaves its position empty, so positions run 0..pos_end-1 with holes,
   * and the waves are cut in positions, not in members (joiners of a
   * running rollout go to pos_end) */
  int pos_end;
  /* the members at positions below wcut, by state: what evaluating the
   * current wave reads, kept as members come, go, move and change state,
   * and counted again (every member) only when the cutoff moves: an offer
   * or a report evaluates the rollout, and a scan of a million members
   * under the fleet's lock took 0.4 ms each time */
  int wcut;
  int wcount[D_NSTATES];
  int count[D_NSTATES]; /* members per state */
  enum rjob job;
  int job_busy;         /* a thread runs its job */
  int job_done, job_of; /* progress of the start job: enrolled, candidates */
  int dirty;
  struct rollout *next;
};

/* Failed credentials of one address or one device id (credentials.c). */
struct auth_fail {
  uint32_t key;                       /* hash of the address or id; 0: free */
  int count;                          /* failures in the window */
  int64_t window_start, locked_until; /* monotonic ms */
};

struct fleet {
  pthread_mutex_t mu;
  struct store *store;
  struct device *dev[DEV_BUCKETS], *tok[DEV_BUCKETS];
  int n_devices;
  struct rollout *rollouts;
  struct device *dirty;     /* devices to save at the next flush */
  struct device *flushing;  /* taken by the flush in progress, saved a page at a time */
  struct device *graveyard; /* deleted while a job ran: freed when no job runs */
  /* strings many devices share (models, groups), kept once until the
   * fleet closes: an open-addressed set */
  char **istr;
  size_t n_istr, cap_istr;
  /* loading at start (persist.c): the devices in flight first, then the
   * rest, a page at a time, on a thread once the first are in; meanwhile a
   * device's request loads that device at once (fleet_fault_in) and admin
   * calls are refused. Atomic: read without the lock on every request. */
  atomic_int loading;
  int load_failed, load_pass;
  int load_stop;
  char load_after[DEVICE_ID_MAX + 1];
  pthread_t load_thread;
  int load_started;
  int64_t load_t0;
  /* device requests waiting for mu (device_lock): pages yield to them */
  atomic_int waiters;
  /* the job thread (rollout_job.c) */
  pthread_t job_thread;
  pthread_cond_t job_wake;
  int job_started, job_stop, job_running;
  char **deleted; /* ids to delete at the next flush */
  int n_deleted, cap_deleted;
  /* events to append, "device\0kind\0detail" each, one after another in
   * ev_text (at ev_text + off): no allocation per event under the lock,
   * and the writer frees two blocks a flush, not one per event made by
   * another thread (an enrol makes two per member; a bulk create one) */
  struct fevent {
    size_t off;
    int64_t at;
  } * events;
  size_t n_events, cap_events;
  char *ev_text;
  size_t ev_len, ev_cap;
  char base[PROTO_COUNT][CONF_URL_MAX]; /* public bases of the fronts, "" none */
  struct fleet_limits limits;
  struct auth_fail auth_addr[AUTH_SLOTS], auth_dev[AUTH_SLOTS];
  uint64_t auth_failures[PROTO_COUNT], auth_throttled[PROTO_COUNT]; /* by protocol */
  int64_t auth_logged; /* monotonic ms of the last failure logged */
  uint64_t auth_unlogged;
  struct device *ident[DEV_BUCKETS];        /* by PSK identity, devices with a key */
  unsigned char psk_master[PSK_MASTER_LEN]; /* set once at start (fleet_psk_open) */
  int psk_ready;
  /* metrics */
  uint64_t checkins, reports, progress_events, offers;
  /* several nodes (shared.c) */
  int shared;
  int64_t shared_ticked, shared_missed; /* monotonic ms */
  int64_t shared_tick_queued;           /* monotonic ms a tick was queued and has not run; 0 */
  char node_id[80];                     /* "host/random": this node's name in job claims */
};

/* devices.c */
const char *dstate_name(enum dstate s);
int dstate_parse(const char *s, enum dstate *out);
struct device *device_find(struct fleet *f, const char *id);
struct device *device_new(struct fleet *f, const char *id);
void device_unlink(struct fleet *f, struct device *d);
void device_free(struct device *d);
struct device *token_find(struct fleet *f, const char *token);
void token_link(struct fleet *f, struct device *d);
void token_unlink(struct fleet *f, struct device *d);
void device_mark(struct fleet *f, struct device *d);
void device_set_state(struct fleet *f, struct device *d, enum dstate to, const char *reason);
void device_event(struct fleet *f, struct device *d, const char *kind, json_t *detail);
/* An event whose detail is fields, JSON members already written (and
 * escaped), at most EVENT_FIELDS_MAX bytes: no JSON tree. */
#define EVENT_FIELDS_MAX 448
void device_event_fields(struct fleet *f, struct device *d, const char *kind, const char *fields);
/* Whether s is at most max bytes of printable ASCII that JSON writes as it
 * is (no quote, no backslash). */
int json_plain(const char *s, size_t max);
/* An event to append at the next flush (text: its detail as JSON), copied. f->mu */
void fleet_event_add(struct fleet *f, const char *device, int64_t at, const char *kind,
                     const char *text);
void device_clear_offer(struct fleet *f, struct device *d);
void progress_reset(struct device *d);
int percent_of(const struct device *d);
json_t *device_json(const struct device *d);
/* "2026-11-24T06:50:00Z", or null for 0 */
json_t *time_json(int64_t ms);
void set_str(char **slot, const char *v);
/* The one copy of s the fleet keeps ("" when out of memory). f->mu held. */
const char *fleet_intern(struct fleet *f, const char *s);
void fleet_intern_free(struct fleet *f);

/* credentials.c */
void make_secret_hash(const char *secret, char *out, size_t outlen);
/* The same with a salt the caller drew (16 characters of [a-z2-7]). */
void hash_secret(const char *secret, const char *salt, char *out, size_t outlen);
/* The device a request proves to be, or NULL; the same work either way.
 * *retry_after > 0 (seconds): refused unheard, the address or the device
 * failed too often lately. */
struct device *authenticate(struct fleet *f, const struct device_identity *who, int *retry_after);
/* The same when it proves it, else NULL without counting anything (the
 * caller then asks authenticate()). */
struct device *authenticate_quiet(struct fleet *f, const struct device_identity *who);
void seen(struct device *d, const struct device_identity *who);

/* checkin.c */
/* The device moved to `version`. Confirms a hop or notes the surprise. */
void version_changed(struct fleet *f, struct device *d, const char *version);

/* report.c */
/* The store found a package damaged (from its re-check worker): every
 * running rollout offering it pauses. arg: the fleet. */
void package_damaged(void *arg, const char *package_id);

/* progress.c */
/* Records a piece of an offer's download against its device. */
void progress_record(struct fleet *f, const char *token, uint64_t start, uint64_t bytes,
                     int complete, enum piece kind, enum proto proto, const char *addr);
/* The device went back (or started past byte 0) to `at`: a resume, over
 * proto from addr (shown at once, before any piece is known delivered);
 * it holds [0, at). */
void progress_resumed(struct fleet *f, const char *token, uint64_t at, enum proto proto,
                      const char *addr);
/* Adds [start, end) to the offer's intervals; recomputes the prefix. */
void progress_add_interval(struct device *d, uint64_t start, uint64_t end);

/* persist.c */
/* While the fleet loads: 503 with *out set, else 0. f->mu held. */
int fleet_loading_refusal(struct fleet *f, json_t **out);
/* The same for admin calls on devices and rollouts, taking f->mu itself. */
int fleet_loading_gate(struct fleet *f, json_t **out);
/* While the fleet loads: brings device id in from the database now, so
 * that its request is answered at once, not after the whole load. 0 when
 * the fleet can answer for it (in memory, no such device, or the load
 * over), -1 when not yet (database error, the load failed). Without
 * f->mu: the database's lock comes first in the lock order. */
int fleet_fault_in(struct fleet *f, const char *id);
#define LOADING_RETRY_S 2 /* Retry-After for a device request while loading */
json_t *device_doc(const struct device *d);
/* The same document as text (free it), or NULL: use device_doc. */
char *device_text(const struct device *d);
void device_from_doc(struct fleet *f, struct device *d, json_t *doc);

/* delivery.c */
/* The URL for AT+QFOTADL of d's offer over transport t; f->mu held. */
void offer_url(struct fleet *f, const struct device *d, enum proto t, char *out, size_t len);
/* Whether the transport has a front; f->mu held. */
int transport_served(const struct fleet *f, enum proto p);
/* "transport must be one of ..." or NULL when v (a JSON value, may be NULL
 * or null) names a served transport; *out: -1 for none. f->mu held. */
const char *transport_from_json(const struct fleet *f, json_t *v, int *out);
/* One more request answered over p (check-ins, reports, download requests). */
void count_request(enum proto p);

/* psk.c */
/* The identity a device's key answers to (its own, or its id). */
const char *psk_identity_of(const struct device *d);
struct device *psk_find(struct fleet *f, const char *identity, size_t n);
void psk_link(struct fleet *f, struct device *d);
void psk_unlink(struct fleet *f, struct device *d);
/* The sealed text of a key for device id, malloc'd; NULL on failure. */
char *psk_seal(const struct fleet *f, const char *id, const unsigned char *psk, size_t len);
/* The admin API's psk and psk_identity fields: a complaint or NULL; then
 * applied (*generated: a generated key in hex, shown once; caller frees). */
const char *psk_body_error(struct fleet *f, const char *id, json_t *b);
/* The same for the device d (id's, NULL when there is none), looked up
 * already. */
const char *psk_body_error_of(struct fleet *f, const char *id, struct device *d, json_t *b);
int psk_apply(struct fleet *f, struct device *d, json_t *b, char **generated);

/* rollout.c */
const char *rstate_name(enum rstate s);
int rstate_parse(const char *s, enum rstate *out);
struct rollout *rollout_find(struct fleet *f, const char *id);
void rollout_mark(struct rollout *r);
int rollout_matches(const struct rollout *r, const struct device *d);
void rollout_add_member(struct rollout *r, struct device *d, int position);
void rollout_remove_member(struct rollout *r, struct device *d);
int rollout_wave_cutoff(const struct rollout *r, int wave);
/* a member took position: pos_end follows */
void rollout_note_position(struct rollout *r, int position);
/* d, a member of r, moves to position */
void rollout_set_position(struct rollout *r, struct device *d, int position);
/* a member still at a joiner's position of a start (from INT_MAX / 2) in
 * a running or paused rollout takes pos_end (and is marked); f->mu */
void rollout_place_joiner(struct fleet *f, struct rollout *r, struct device *d);
/* the same for each such member of r */
void rollout_place_joiners(struct fleet *f, struct rollout *r);
/* r->wcount for the members below cutoff (counted again if it moved) */
const int *rollout_wave_counts(struct rollout *r, int cutoff);
int rollout_active(const struct rollout *r);
/* Seconds until the rollout's window (win_from..win_to, UTC) opens; 0 when
 * open (checkin.c). now: wall ms. */
int rollout_window_wait(const struct rollout *r, int64_t now);
void rollout_evaluate(struct fleet *f, struct rollout *r);
void rollout_alarm(struct fleet *f, struct rollout *r, const char *text);
void rollout_pause(struct fleet *f, struct rollout *r, const char *reason);
/* A bulk call's devices (POST /api/v1/devices): at most BULK_MAX. An
 * item's fields, from a jansson object (b) or read as text by bulk_parse
 * (b NULL: only these fields, plain strings). */
#define BULK_MAX 100000
struct bulk_item {
  const char *id, *model, *version, *group, *secret;
  json_t *b;
};
/* Reads text (len bytes; changed in place) when it is an array of objects
 * of plain strings under id, model, version, group and secret: 0 and
 * *items (the caller frees it), 1 when it is not (parse it with jansson),
 * -1 out of memory. */
int bulk_parse(char *text, size_t len, struct bulk_item **items, size_t *n);
/* A growing text; freed cleansed (it may hold secrets). */
struct tbuf {
  char *s;
  size_t len, cap;
  int failed;
};
int tbuf_add(struct tbuf *b, const char *s, size_t n);
int tbuf_str(struct tbuf *b, const char *s);
int tbuf_pair(struct tbuf *b, const char *key, const char *value);
void tbuf_free(struct tbuf *b);
/* How many members a start enrols in its call; above it, in the
 * background (202). */
#define START_INLINE_MAX 5000
/* Devices one page of a job, a bulk call, a load or a flush handles under
 * the lock (a few milliseconds' work); a job lets the writer commit every
 * JOB_SYNC_PAGES pages, which keeps the writer's transactions and memory
 * bounded. */
#define JOB_PAGE 500
#define JOB_SYNC_PAGES 4
/* A device request takes the lock through this, so that pages know it
 * waits. */
static inline void device_lock(struct fleet *f)
{
  atomic_fetch_add_explicit(&f->waiters, 1, memory_order_relaxed);
  pthread_mutex_lock(&f->mu);
  atomic_fetch_sub_explicit(&f->waiters, 1, memory_order_relaxed);
}
/* The end of a page: the lock let go and, when device requests wait,
 * handed over: the page's thread waits (PAGE_HANDOFF_US at most) until
 * they have it. A mutex is not fair: a request woken on the other
 * processor is still waking when the running page thread takes the lock
 * again, and may lose it so page after page (hundreds of ms at a million
 * devices). */
#define PAGE_HANDOFF_US 3000
/* The start of a page: the processor given up first, so that the hold
 * begins a fresh time slice. A page holds the lock a millisecond of CPU
 * or less, but a holder the scheduler takes the processor from on a busy
 * machine holds it tens to hundreds of milliseconds: measured at 200,000
 * devices with a load average of 20-35, holds of 0.1-1.2 ms of CPU took
 * 50-415 ms. */
static inline void page_lock(struct fleet *f)
{
  sched_yield();
  pthread_mutex_lock(&f->mu);
}
static inline void page_unlock(struct fleet *f)
{
  struct timespec t0, t;

  pthread_mutex_unlock(&f->mu);
  if (atomic_load_explicit(&f->waiters, memory_order_relaxed) == 0)
    return;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  do {
    sched_yield();
    clock_gettime(CLOCK_MONOTONIC, &t);
  } while (atomic_load_explicit(&f->waiters, memory_order_relaxed) > 0 &&
           (t.tv_sec - t0.tv_sec) * 1000000 + (t.tv_nsec - t0.tv_nsec) / 1000 < PAGE_HANDOFF_US);
}
void rollout_enrol(struct fleet *f, struct rollout *r, struct device *d, int position);
/* A member's state changed (devices.c): the counts and arrays follow. */
void rollout_member_state(struct rollout *r, struct device *d, enum dstate from, enum dstate to);
struct rollout *rollout_alloc(void);
void rollout_free(struct rollout *r);
/* The device joins a running rollout whose selector it matches, if any. */
void rollout_join_running(struct fleet *f, struct device *d);

/* rollout_job.c */
int fleet_jobs_start(struct fleet *f);
void fleet_jobs_stop(struct fleet *f);
/* Wakes the job thread: a rollout has a job. f->mu held. */
void fleet_jobs_kick(struct fleet *f);
/* Runs r's job to its end from this thread (f->mu not held), pages and all. */
void rollout_job_run(struct fleet *f, struct rollout *r);
/* A device leaves the fleet: freed now, or when no job may hold it. */
void device_bury(struct fleet *f, struct device *d);

/* shared.c: several nodes on one database */
void fleet_shared_open(struct fleet *f);
/* 1 when the calling thread decides already, or on one node. */
int fleet_in_decision(const struct fleet *f);
/* On several nodes: runs the tick as a decision (at most once a second);
 * 1 when it did or skipped it, 0 when the caller ticks itself. */
int fleet_shared_tick(struct fleet *f);
/* On several nodes: reads the others' changes now (an unknown token may be
 * another node's offer of a moment ago); 1 when it did, -1 when the
 * database did not answer, 0 on one node. */
int fleet_shared_refresh(struct fleet *f);
/* Before each page of r's job (a start's enrolment, a cancel's sweep) and
 * before it begins: whether this node carries it on. On several nodes the
 * job is claimed in the database (renewed at every page; another node
 * takes it over once the claim lapses, its node gone); when another node
 * holds it, or the database cannot say, r's job here ends (r->job =
 * JOB_NONE; the tick claims it again later). Always 1 on one node. f->mu
 * not held. */
int fleet_shared_job_hold(struct fleet *f, struct rollout *r);

/* rollout_admin.c */
json_t *rollout_json(const struct rollout *r);
json_t *rollout_doc(const struct rollout *r);
struct rollout *rollout_from_doc(const char *id, json_t *doc);

#endif
