/* test_store_contract.c: what the fleet asks of a store backend, through
 * store.h only (no SQL, nothing of the backend): the writer's transaction
 * (writes in the flush hook, all committed or none, done() told which),
 * upserts, deletion taking a device's events along, events paged and
 * trimmed, devices paged by id with a state filter, rollouts, and all of
 * it still there after a close and a reopen. It runs on SQLite, and on
 * PostgreSQL when DFOTAD_STORE_PG holds a connection string to an empty
 * database (tests/integration/pg_contract.sh starts one). */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"
#include "unit.h"

/* The writes of one flush: a script the hook plays. */
enum op { PUT, DEL, EVENT, TRIM, ROLLOUT };
struct write {
  enum op op;
  const char *id, *a, *b, *c;
  int64_t n;
};

static struct {
  const struct write *w;
  int n;
  int done_calls, committed;
} script;

static void hook(struct store *s, void *arg)
{
  (void)arg;
  for (int i = 0; i < script.n; i++) {
    const struct write *w = &script.w[i];
    switch (w->op) {
    case PUT: store_tx_device_put(s, w->id, w->a, w->b, w->c, w->c ? "{\"r\":1}" : "{}"); break;
    case DEL: store_tx_device_delete(s, w->id); break;
    case EVENT: store_tx_event(s, w->id, w->n, w->a, w->b); break;
    case TRIM: store_tx_events_trim(s, w->id, (int)w->n); break;
    case ROLLOUT: store_tx_rollout_put(s, w->id, w->a, w->b); break;
    }
  }
  script.n = 0; /* once */
}

static void done(void *arg, int committed)
{
  (void)arg;
  script.done_calls++;
  script.committed = committed;
}

static void play(struct store *s, const struct write *w, int n)
{
  script.w = w;
  script.n = n;
  script.done_calls = 0;
  store_sync(s);
}

struct rows {
  char ids[64][65];
  char docs[64][64];
  int n;
};

static int row(const char *id, const char *doc, void *arg)
{
  struct rows *r = arg;

  if (r->n < 64) {
    snprintf(r->ids[r->n], sizeof(r->ids[0]), "%s", id);
    snprintf(r->docs[r->n], sizeof(r->docs[0]), "%s", doc);
    r->n++;
  }
  return 0;
}

struct evs {
  int64_t ids[64];
  char kinds[64][16];
  int n;
};

static int ev(int64_t id, const char *kind, const char *detail, void *arg)
{
  struct evs *e = arg;

  (void)detail;
  if (e->n < 64) {
    e->ids[e->n] = id;
    snprintf(e->kinds[e->n], sizeof(e->kinds[0]), "%s", kind);
    e->n++;
  }
  return 0;
}

static int n_events(struct store *s, const char *id)
{
  struct evs e = {0};
  CHECK(store_events_page(s, id, 0, 64, 0, ev, &e) == 0);
  return e.n;
}

static struct rows page(struct store *s, const char *state, const char *after, int limit)
{
  struct rows r = {0};
  int n = store_devices_page(s, state, after, limit, row, &r);
  CHECK(n == r.n);
  return r;
}

static void contract(struct store *s)
{
  struct rows r;
  struct evs e = {0};

  store_set_flush_hook(s, hook, done, NULL);

  /* a transaction: devices, events and a rollout, committed together */
  {
    static const struct write w[] = {
        {PUT, "d3", "M", "idle", NULL, 0},
        {PUT, "d1", "M", "pending", "r1", 0},
        {PUT, "d2", "M", "offered", "r1", 0},
        {PUT, "d4", "N", "succeeded", "r1", 0},
        {EVENT, "d1", "created", "{}", NULL, 1},
        {EVENT, "d1", "state", "{\"to\":1}", NULL, 2},
        {EVENT, "d1", "state", "{\"to\":2}", NULL, 3},
        {EVENT, "d2", "created", "{}", NULL, 4},
        {ROLLOUT, "r1", "running", "{\"x\":1}", NULL, 0},
    };
    play(s, w, (int)(sizeof(w) / sizeof(w[0])));
    CHECK(script.done_calls == 1 && script.committed == 1);
  }
  /* devices by id, in pages */
  r = page(s, NULL, "", 2);
  CHECK(r.n == 2 && strcmp(r.ids[0], "d1") == 0 && strcmp(r.ids[1], "d2") == 0);
  CHECK(strcmp(r.docs[0], "{\"r\":1}") == 0);
  r = page(s, NULL, "d2", 10);
  CHECK(r.n == 2 && strcmp(r.ids[0], "d3") == 0 && strcmp(r.ids[1], "d4") == 0);
  r = page(s, NULL, "d4", 10);
  CHECK(r.n == 0);
  /* in one state */
  r = page(s, "pending", "", 10);
  CHECK(r.n == 1 && strcmp(r.ids[0], "d1") == 0);
  r = page(s, "idle", "", 10);
  CHECK(r.n == 1 && strcmp(r.ids[0], "d3") == 0);
  r = page(s, "nothing", "", 10);
  CHECK(r.n == 0);
  CHECK(store_devices_page(s, NULL, "", 0, row, &r) < 0); /* a page has rows */
  /* one device by id (what a request loads while the fleet loads) */
  {
    static const struct write w[] = {{PUT, "d", "M", "idle", "r1", 0},
                                     {PUT, "d1-", "M", "idle", NULL, 0},
                                     {PUT, "d0~", "M", "idle", NULL, 0}};
    char *doc = NULL;
    play(s, w, 3);
    CHECK(store_device_get(s, "d1", &doc) == 1 && doc && strcmp(doc, "{\"r\":1}") == 0);
    free(doc);
    CHECK(store_device_get(s, "d", &doc) == 1 && doc && strcmp(doc, "{\"r\":1}") == 0);
    free(doc);
    CHECK(store_device_get(s, "d1-", &doc) == 1 && doc && strcmp(doc, "{}") == 0);
    free(doc);
    CHECK(store_device_get(s, "d0", &doc) == 0 && doc == NULL);
    CHECK(store_device_get(s, "d5", &doc) == 0 && doc == NULL);
    CHECK(store_device_get(s, "", &doc) == 0 && doc == NULL);
    CHECK(store_device_get(s, "d1 ", &doc) == 0 && doc == NULL);
    {
      static const struct write x[] = {
          {DEL, "d", 0, 0, 0, 0}, {DEL, "d1-", 0, 0, 0, 0}, {DEL, "d0~", 0, 0, 0, 0}};
      play(s, x, 3);
    }
    CHECK(store_device_get(s, "d", &doc) == 0 && doc == NULL);
  }
  /* events: oldest first, paged by id */
  CHECK(store_events_page(s, "d1", 0, 2, 0, ev, &e) == 0);
  CHECK(e.n == 2 && strcmp(e.kinds[0], "created") == 0 && e.ids[0] < e.ids[1]);
  {
    int64_t last = e.ids[1];
    memset(&e, 0, sizeof(e));
    CHECK(store_events_page(s, "d1", last, 10, 0, ev, &e) == 0);
    CHECK(e.n == 1 && e.ids[0] > last);
  }
  /* newest first: from the newest, then the events before a page's last */
  {
    struct evs all = {0}, d = {0};
    CHECK(store_events_page(s, "d1", 0, 10, 0, ev, &all) == 0);
    CHECK(store_events_page(s, "d1", 0, 2, 1, ev, &d) == 0);
    CHECK(all.n == 3 && d.n == 2 && d.ids[0] == all.ids[2] && d.ids[1] == all.ids[1]);
    {
      int64_t last = d.ids[1];
      memset(&d, 0, sizeof(d));
      CHECK(store_events_page(s, "d1", last, 10, 1, ev, &d) == 0);
      CHECK(d.n == 1 && d.ids[0] == all.ids[0] && strcmp(d.kinds[0], "created") == 0);
      memset(&d, 0, sizeof(d));
      CHECK(store_events_page(s, "d1", all.ids[0], 10, 1, ev, &d) == 0);
      CHECK(d.n == 0);
      CHECK(store_events_page(s, "d2", 0, 10, 1, ev, &d) == 0);
      CHECK(d.n > 0 && d.ids[0] > 0);
      CHECK(store_events_page(s, "nobody", 0, 10, 1, ev, &d) == 0);
    }
  }
  /* upsert: the same id again replaces the record (twice in one
   * transaction: the last write wins) */
  {
    static const struct write w[] = {{PUT, "d3", "M", "offered", NULL, 0},
                                     {PUT, "d3", "M", "pending", "r1", 0}};
    play(s, w, 2);
    CHECK(script.committed == 1);
  }
  r = page(s, "pending", "", 10);
  CHECK(r.n == 2 && strcmp(r.ids[1], "d3") == 0);
  r = page(s, "pending", "d1", 10);
  CHECK(r.n == 1 && strcmp(r.ids[0], "d3") == 0);
  r = page(s, NULL, "", 10);
  CHECK(r.n == 4);
  /* a trim keeps the newest; a deletion takes the device's events along */
  {
    static const struct write w[] = {{TRIM, "d1", NULL, NULL, NULL, 1}, {DEL, "d2", 0, 0, 0, 0}};
    play(s, w, 2);
    CHECK(script.committed == 1);
  }
  memset(&e, 0, sizeof(e));
  CHECK(store_events_page(s, "d1", 0, 10, 0, ev, &e) == 0);
  CHECK(e.n == 1 && strcmp(e.kinds[0], "state") == 0);
  CHECK(n_events(s, "d2") == 0);
  r = page(s, NULL, "", 10);
  CHECK(r.n == 3 && strcmp(r.ids[1], "d3") == 0);
  /* all or nothing: a write that fails (a device without a document)
   * takes the whole transaction back, and done() says so */
  {
    static const struct write w[] = {{PUT, "d9", "M", "idle", NULL, 0},
                                     {EVENT, "d1", "late", "{}", NULL, 9}};
    play(s, w, 2);
    CHECK(script.committed == 1);
    r = page(s, NULL, "d8", 10);
    CHECK(r.n == 1);
  }
  {
    static const struct write w[] = {{DEL, "d9", 0, 0, 0, 0},
                                     {EVENT, "d1", "lost", "{}", NULL, 10},
                                     {PUT, "d8", "M", NULL, NULL, 0}}; /* no state: refused */
    play(s, w, 3);
    CHECK(script.done_calls == 1 && script.committed == 0);
  }
  r = page(s, NULL, "d8", 10);
  CHECK(r.n == 1 && strcmp(r.ids[0], "d9") == 0); /* the deletion was rolled back */
  CHECK(n_events(s, "d1") == 2);                  /* "lost" never happened */
  store_set_flush_hook(s, NULL, NULL, NULL);
}

static int rollout_row(const char *id, const char *doc, void *arg) { return row(id, doc, arg); }

int main(void)
{
  char dir[] = "/tmp/dfotad-contract-XXXXXX", err[256], cmd[128];
  const char *pg = getenv("DFOTAD_STORE_PG");
  struct store *s = NULL;
  struct rows r = {0};

  CHECK(mkdtemp(dir) != NULL);
  CHECK(store_open_with(dir, pg, 20, &s, err, sizeof(err)) == 0);
  if (s == NULL) {
    fprintf(stderr, "store: %s\n", err);
    return unit_done("test_store_contract");
  }
  if (pg != NULL)
    CHECK(strcmp(store_backend(s), "postgresql") == 0);
  contract(s);
  store_close(s);

  /* durable: all of it there after a reopen */
  CHECK(store_open_with(dir, pg, 20, &s, err, sizeof(err)) == 0);
  if (s != NULL) {
    r = page(s, NULL, "", 10);
    CHECK(r.n == 4 && strcmp(r.ids[0], "d1") == 0 && strcmp(r.ids[3], "d9") == 0);
    CHECK(n_events(s, "d1") == 2);
    memset(&r, 0, sizeof(r));
    CHECK(store_rollouts_load(s, rollout_row, &r) == 0);
    CHECK(r.n == 1 && strcmp(r.ids[0], "r1") == 0 && strcmp(r.docs[0], "{\"x\":1}") == 0);
    memset(&r, 0, sizeof(r));
    CHECK(store_devices_load(s, row, &r) == 0);
    CHECK(r.n == 4);
    store_close(s);
  }
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
  return unit_done("test_store_contract");
}
