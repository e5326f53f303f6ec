/* test_progress.c: a device's download progress: the byte intervals of
 * its offer (gaps, overlaps, adjacency, out of order, the cap), and the
 * delivery core's transfers that feed them (percent, contiguous prefix,
 * resumes, segments, blocks, and the bytes and downloads counted per
 * protocol and per package). */
#include "autoconfig.h"

#include "fleet_fixture.h"

static struct device *blank(void)
{
  static struct device d;

  memset(&d, 0, sizeof(d));
  return &d;
}

/* The intervals are sorted, disjoint and not touching. */
static int well_formed(const struct device *d)
{
  if (d->n_ival < 0 || d->n_ival > MAX_IVALS)
    return 0;
  for (int i = 0; i < d->n_ival; i++) {
    if (d->ival[i].start >= d->ival[i].end)
      return 0;
    if (i > 0 && d->ival[i].start <= d->ival[i - 1].end)
      return 0;
  }
  return 1;
}

static void intervals(void)
{
  struct device *d = blank();

  progress_add_interval(d, 0, 10);
  CHECK(d->n_ival == 1 && d->contiguous == 10);
  progress_add_interval(d, 20, 30); /* a gap */
  CHECK(d->n_ival == 2 && d->contiguous == 10);
  progress_add_interval(d, 10, 20); /* fills it */
  CHECK(d->n_ival == 1 && d->contiguous == 30 && d->ival[0].end == 30);
  progress_add_interval(d, 25, 40); /* overlaps */
  CHECK(d->n_ival == 1 && d->contiguous == 40);
  progress_add_interval(d, 5, 15); /* inside */
  CHECK(d->n_ival == 1 && d->contiguous == 40);
  progress_add_interval(d, 40, 50); /* touching */
  CHECK(d->n_ival == 1 && d->contiguous == 50);
  progress_add_interval(d, 7, 7);   /* empty */
  progress_add_interval(d, 90, 60); /* reversed */
  CHECK(d->n_ival == 1 && d->contiguous == 50 && well_formed(d));
  progress_add_interval(d, 0, 100); /* a resume from 0 covering all */
  CHECK(d->n_ival == 1 && d->contiguous == 100);

  /* out of order: nothing from 0 until the first bytes come */
  d = blank();
  progress_add_interval(d, 50, 60);
  progress_add_interval(d, 30, 40);
  progress_add_interval(d, 10, 20);
  CHECK(d->n_ival == 3 && d->contiguous == 0 && well_formed(d));
  CHECK(d->ival[0].start == 10 && d->ival[2].start == 50);
  progress_add_interval(d, 0, 10);
  CHECK(d->contiguous == 20);
  progress_add_interval(d, 20, 30);
  CHECK(d->contiguous == 40 && d->n_ival == 2);
  progress_add_interval(d, 35, 55); /* bridges two */
  CHECK(d->contiguous == 60 && d->n_ival == 1 && well_formed(d));

  /* the cap: at most MAX_IVALS intervals; the first ones (which decide the
   * prefix) are kept, a later one gives way */
  d = blank();
  for (int k = 0; k < MAX_IVALS + 2; k++)
    progress_add_interval(d, 10 + 20 * (uint64_t)k, 15 + 20 * (uint64_t)k);
  CHECK(d->n_ival == MAX_IVALS && well_formed(d));
  for (int k = 0; k < MAX_IVALS - 1; k++)
    CHECK(d->ival[k].start == 10 + 20 * (uint64_t)k);
  CHECK(d->contiguous == 0);
  progress_add_interval(d, 0, 10);
  CHECK(d->contiguous == 15 && well_formed(d));
  progress_add_interval(d, 15, 30);
  CHECK(d->contiguous == 35);
}

/* Random pieces against a bitmap of the bytes really delivered: the prefix
 * is exact while the intervals fit, and never more than what arrived. */
static void intervals_random(void)
{
  enum { N = 4096 };
  static unsigned char have[N];
  uint32_t seed = 12345;
  int exact_runs = 0, runs = 0;

  for (int run = 0; run < 300; run++) {
    struct device *d = blank();
    int overflowed = 0, bad = 0;
    uint64_t prev = 0;
    memset(have, 0, sizeof(have));
    for (int step = 0; step < 40; step++) {
      uint64_t s, len, truth = 0;
      seed = seed * 1103515245u + 12345u;
      s = (seed >> 8) % N;
      seed = seed * 1103515245u + 12345u;
      len = 1 + (seed >> 8) % (run % 3 == 0 ? 600 : 120);
      if (s + len > N)
        len = N - s;
      if (d->n_ival == MAX_IVALS)
        overflowed = 1;
      progress_add_interval(d, s, s + len);
      memset(have + s, 1, (size_t)len);
      while (truth < N && have[truth])
        truth++;
      if (!well_formed(d) || d->contiguous > truth || d->contiguous < prev)
        bad = 1;
      if (!overflowed && d->contiguous != truth)
        bad = 1;
      prev = d->contiguous;
    }
    CHECK(!bad);
    runs++;
    exact_runs += !overflowed;
  }
  CHECK(exact_runs > 10 && exact_runs < runs); /* both cases were tried */
}

static struct fx x;

/* A device on A in a rollout to B, offered; its token into token. */
static int offered(const char *id, char *token)
{
  char devs[64], rid[16];
  struct checkin_answer a;

  snprintf(devs, sizeof(devs), "[\"%s\"]", id);
  if (fx_device(&x, id, "A") != 201 || fx_rollout(&x, "B", devs, "", rid) < 0 ||
      fx_checkin(&x, id, "A", NULL, &a) != VERDICT_OFFER)
    return -1;
  snprintf(token, FLEET_TOKEN_LEN + 1, "%s", fx_get(&x, id, 0).token);
  return 0;
}

struct snap {
  uint64_t requests[PROTO_COUNT], bytes[PROTO_COUNT], downloads[PROTO_COUNT];
  uint64_t pkg_downloads, pkg_bytes, pkg_requests;
};

static struct snap snap(const char *pkg)
{
  struct snap s;
  struct package *p = store_package_get(x.s, pkg);

  for (int i = 0; i < PROTO_COUNT; i++) {
    struct proto_figures fig;
    delivery_figures((enum proto)i, &fig);
    s.requests[i] = fig.requests;
    s.bytes[i] = fig.bytes;
    s.downloads[i] = fig.downloads;
  }
  s.pkg_downloads = p ? atomic_load(&p->downloads) : 0;
  s.pkg_bytes = p ? atomic_load(&p->bytes_sent) : 0;
  s.pkg_requests = p ? atomic_load(&p->requests) : 0;
  if (p)
    package_unref(p);
  return s;
}

static uint64_t rollout_bytes(const char *id)
{
  uint64_t b = 0;
  struct device *d;

  pthread_mutex_lock(&x.f->mu);
  d = device_find(x.f, id);
  if (d != NULL && d->rollout != NULL)
    b = d->rollout->bytes_served;
  pthread_mutex_unlock(&x.f->mu);
  return b;
}

#define SIZE 1048576u

/* A whole download over HTTPS cut 16 KiB before its end, then resumed. */
static void whole_cut_and_resumed(const char *pkg)
{
  char token[FLEET_TOKEN_LEN + 1];
  struct target t;
  struct transfer *tr;
  struct snap a, b;
  struct fx_dev v;
  int in_flight = delivery_in_flight();

  if (offered("w1", token) < 0) {
    CHECK(0);
    return;
  }
  /* a HEAD (no fetch) leaves it offered; the first GET moves it */
  CHECK(delivery_resolve_offer(x.f, token, NULL, 0, &t) == RESOLVE_OK);
  target_release(&t);
  CHECK(fx_get(&x, "w1", 0).state == D_OFFERED);
  CHECK(delivery_resolve_offer(x.f, token, "someone-else", 1, &t) == RESOLVE_NOT_FOUND);
  CHECK(delivery_resolve_offer(x.f, "AAAA", NULL, 1, &t) == RESOLVE_NOT_FOUND);
  CHECK(fx_get(&x, "w1", 0).state == D_OFFERED);
  CHECK(delivery_resolve_offer(x.f, token, "w1", 1, &t) == RESOLVE_OK);
  CHECK(t.pkg != NULL && strcmp(t.device, "w1") == 0 && strcmp(t.token, token) == 0);
  CHECK(fx_get(&x, "w1", 0).state == D_DOWNLOADING);

  a = snap(pkg);
  tr = transfer_begin(x.f, &t, PROTO_HTTPS, "192.0.2.7");
  CHECK(tr != NULL && t.pkg == NULL);
  if (tr == NULL)
    return;
  CHECK(delivery_in_flight() == in_flight + 1);
  CHECK(transfer_package(tr)->size == SIZE);
  transfer_request(tr);
  transfer_delivered(tr, 0, SIZE - 16384, 0, PIECE_WHOLE);
  b = snap(pkg);
  v = fx_get(&x, "w1", 0);
  CHECK(v.percent == 98 && v.contiguous == SIZE - 16384 && v.bytes_served == SIZE - 16384);
  CHECK(strcmp(v.protocol, "https") == 0 && v.resumes == 0 && v.segments == 0);
  CHECK(b.bytes[PROTO_HTTPS] - a.bytes[PROTO_HTTPS] == SIZE - 16384);
  CHECK(b.requests[PROTO_HTTPS] - a.requests[PROTO_HTTPS] == 1);
  CHECK(b.downloads[PROTO_HTTPS] == a.downloads[PROTO_HTTPS]); /* cut: not a download */
  CHECK(b.pkg_downloads == a.pkg_downloads && b.pkg_requests == a.pkg_requests + 1);
  CHECK(b.pkg_bytes - a.pkg_bytes == SIZE - 16384);
  CHECK(b.bytes[PROTO_HTTP] == a.bytes[PROTO_HTTP]);
  CHECK(rollout_bytes("w1") == SIZE - 16384);

  /* a piece that got to the last byte but not all of itself is not a
   * download either; starting this close after a cut it resumes it (a
   * module resuming in segments from its own breakpoint, see ack_slack):
   * the bytes between are the device's */
  transfer_delivered(tr, SIZE - 1000, 1000, 0, PIECE_SEGMENT);
  b = snap(pkg);
  CHECK(b.downloads[PROTO_HTTPS] == a.downloads[PROTO_HTTPS] && b.pkg_downloads == a.pkg_downloads);
  v = fx_get(&x, "w1", 0);
  CHECK(v.percent == 100 && v.n_ival == 1 && v.resumes == 1);

  /* resumed from the breakpoint, to the end */
  transfer_request(tr);
  transfer_delivered(tr, SIZE - 16384, 16384, 1, PIECE_WHOLE);
  b = snap(pkg);
  v = fx_get(&x, "w1", 0);
  CHECK(v.percent == 100 && v.contiguous == SIZE && v.resumes == 2 && v.n_ival == 1);
  CHECK(v.bytes_served == SIZE - 16384 + 1000 + 16384);
  CHECK(b.downloads[PROTO_HTTPS] == a.downloads[PROTO_HTTPS] + 1);
  CHECK(b.pkg_downloads == a.pkg_downloads + 1 && b.pkg_requests == a.pkg_requests + 2);
  CHECK(b.bytes[PROTO_HTTPS] - a.bytes[PROTO_HTTPS] == SIZE + 1000);
  transfer_end(tr);
  CHECK(delivery_in_flight() == in_flight);
}

/* A download cut where TCP had not acknowledged the last bytes the device
 * kept (its delayed ACK lost in the reset): its resume a little further
 * on, open-ended or a request_size segment from the device's breakpoint,
 * closes the gap; one far further on (another client's split) does not. */
static void ack_slack(const char *pkg)
{
  char token[FLEET_TOKEN_LEN + 1];
  struct target t;
  struct transfer *tr;
  struct fx_dev v;

  (void)pkg;
  if (offered("k1", token) < 0 || delivery_resolve_offer(x.f, token, NULL, 1, &t) != RESOLVE_OK) {
    CHECK(0);
    return;
  }
  tr = transfer_begin(x.f, &t, PROTO_HTTP, "192.0.2.9");
  if (tr == NULL)
    return;
  transfer_delivered(tr, 0, 100000, 0, PIECE_WHOLE);
  transfer_delivered(tr, 130000, 1000, 0, PIECE_WHOLE); /* 30,000 unacknowledged */
  v = fx_get(&x, "k1", 0);
  CHECK(v.contiguous == 131000 && v.n_ival == 1 && v.resumes == 1);
  transfer_delivered(tr, 131000 + 300 * 1024, 1000, 0, PIECE_WHOLE); /* far on: a split */
  v = fx_get(&x, "k1", 0);
  CHECK(v.contiguous == 131000 && v.n_ival == 2 && v.resumes == 1);
  /* cut again at 131,000 + 1,000 counted; the next segment 9,559 further */
  transfer_delivered(tr, 131000, 1000, 0, PIECE_SEGMENT);
  transfer_delivered(tr, 132000 + 9559, 10240, 1, PIECE_SEGMENT);
  v = fx_get(&x, "k1", 0);
  CHECK(v.contiguous == 132000 + 9559 + 10240 && v.resumes == 3);
  transfer_end(tr);
}

/* request_size segments over HTTP, one cut and resumed. */
static void segments(const char *pkg)
{
  char token[FLEET_TOKEN_LEN + 1];
  struct target t;
  struct transfer *tr;
  struct snap a, b;
  struct fx_dev v;
  const uint64_t seg = 65536;

  if (offered("s1", token) < 0 || delivery_resolve_offer(x.f, token, NULL, 1, &t) != RESOLVE_OK) {
    CHECK(0);
    return;
  }
  a = snap(pkg);
  tr = transfer_begin(x.f, &t, PROTO_HTTP, "192.0.2.8");
  if (tr == NULL)
    return;
  for (uint64_t off = 0; off < 4 * seg; off += seg) {
    transfer_request(tr);
    transfer_delivered(tr, off, seg, 1, PIECE_SEGMENT);
  }
  v = fx_get(&x, "s1", 0);
  CHECK(v.segments == 4 && v.resumes == 0 && v.contiguous == 4 * seg && v.percent == 25);
  /* the fifth is cut at half; it is asked for again from there */
  transfer_delivered(tr, 4 * seg, seg / 2, 0, PIECE_SEGMENT);
  v = fx_get(&x, "s1", 0);
  CHECK(v.segments == 4 && v.contiguous == 4 * seg + seg / 2);
  transfer_delivered(tr, 4 * seg + seg / 2, seg / 2, 1, PIECE_SEGMENT);
  v = fx_get(&x, "s1", 0);
  CHECK(v.segments == 5 && v.resumes == 1 && v.contiguous == 5 * seg);
  for (uint64_t off = 5 * seg; off < SIZE; off += seg)
    transfer_delivered(tr, off, seg, 1, PIECE_SEGMENT);
  v = fx_get(&x, "s1", 0);
  CHECK(v.segments == 5 + (int)((SIZE - 5 * seg) / seg) && v.percent == 100);
  CHECK(strcmp(v.protocol, "http") == 0);
  b = snap(pkg);
  CHECK(b.downloads[PROTO_HTTP] == a.downloads[PROTO_HTTP] + 1); /* the last segment only */
  CHECK(b.pkg_downloads == a.pkg_downloads + 1);
  CHECK(b.bytes[PROTO_HTTP] - a.bytes[PROTO_HTTP] == SIZE);
  CHECK(b.requests[PROTO_HTTP] - a.requests[PROTO_HTTP] == 4);
  transfer_end(tr);
}

/* CoAP blocks, out of order, with a resume the front tells about. */
static void blocks(const char *pkg)
{
  char token[FLEET_TOKEN_LEN + 1];
  struct target t;
  struct transfer *tr;
  struct snap a, b;
  struct fx_dev v;

  if (offered("b1", token) < 0 || delivery_resolve_offer(x.f, token, NULL, 1, &t) != RESOLVE_OK) {
    CHECK(0);
    return;
  }
  a = snap(pkg);
  tr = transfer_begin(x.f, &t, PROTO_COAP, "[2001:db8::1]:5683");
  if (tr == NULL)
    return;
  transfer_delivered(tr, 2048, 1024, 1, PIECE_BLOCK);
  v = fx_get(&x, "b1", 0);
  CHECK(v.contiguous == 0 && v.percent == 0 && v.bytes_served == 1024);
  transfer_delivered(tr, 0, 1024, 0, PIECE_BLOCK); /* incomplete blocks change no resume count */
  transfer_delivered(tr, 1024, 1024, 1, PIECE_BLOCK);
  v = fx_get(&x, "b1", 0);
  CHECK(v.contiguous == 3072 && v.resumes == 0 && v.segments == 0);
  transfer_resumed(tr, 3072);
  v = fx_get(&x, "b1", 0);
  CHECK(v.resumes == 1 && v.contiguous == 3072 && v.bytes_served == 3072);
  for (uint64_t off = 3072; off < SIZE; off += 1024) {
    transfer_request(tr);
    transfer_delivered(tr, off, 1024, 1, PIECE_BLOCK);
  }
  v = fx_get(&x, "b1", 0);
  CHECK(v.percent == 100 && strcmp(v.protocol, "coap") == 0 && v.resumes == 1);
  b = snap(pkg);
  CHECK(b.bytes[PROTO_COAP] - a.bytes[PROTO_COAP] == SIZE);
  CHECK(b.downloads[PROTO_COAP] == a.downloads[PROTO_COAP] + 1);
  CHECK(b.requests[PROTO_COAP] - a.requests[PROTO_COAP] == (SIZE - 3072) / 1024);
  transfer_end(tr);
}

/* /p/ID: counted for the package and the protocol, no device moves. */
static void anonymous(const char *pkg)
{
  struct target t;
  struct transfer *tr;
  struct snap a, b;

  CHECK(delivery_resolve_package(x.f, "nosuchpackage", &t) == RESOLVE_NOT_FOUND);
  CHECK(delivery_resolve_package(x.f, pkg, &t) == RESOLVE_OK);
  CHECK(t.token[0] == '\0' && t.device[0] == '\0');
  a = snap(pkg);
  tr = transfer_begin(x.f, &t, PROTO_FTPS, NULL);
  if (tr == NULL)
    return;
  transfer_request(tr);
  transfer_delivered(tr, 0, SIZE, 1, PIECE_WHOLE);
  transfer_end(tr);
  b = snap(pkg);
  CHECK(b.downloads[PROTO_FTPS] == a.downloads[PROTO_FTPS] + 1);
  CHECK(b.bytes[PROTO_FTPS] - a.bytes[PROTO_FTPS] == SIZE);
  CHECK(b.pkg_downloads == a.pkg_downloads + 1);
  /* a transfer nobody took gives its reference back */
  CHECK(delivery_resolve_package(x.f, pkg, &t) == RESOLVE_OK);
  target_release(&t);
  CHECK(t.pkg == NULL);
}

/* A new offer (the next hop) starts its progress from nothing. */
static void new_offer_resets(void)
{
  struct device *d = blank();

  d->size = 100;
  progress_add_interval(d, 0, 100);
  d->bytes_served = 100;
  d->resumes = 2;
  CHECK(percent_of(d) == 100);
  progress_reset(d);
  CHECK(percent_of(d) == 0 && d->n_ival == 0 && d->contiguous == 0 && d->resumes == 0);
  CHECK(d->device_percent == -1);
}

/* A CoAP download whose first request is a later block: downloading, the
 * protocol shown at once, and the bytes before that block held by the
 * device (a truthful percent), none counted as served. */
static void later_block(void)
{
  char token[FLEET_TOKEN_LEN + 1];
  struct target t;
  struct transfer *tr;
  struct fx_dev v;

  if (offered("b2", token) < 0 || delivery_resolve_offer(x.f, token, NULL, 0, &t) != RESOLVE_OK) {
    CHECK(0);
    return;
  }
  CHECK(fx_get(&x, "b2", 0).state == D_OFFERED);
  target_fetch(x.f, &t);
  CHECK(fx_get(&x, "b2", 0).state == D_DOWNLOADING);
  tr = transfer_begin(x.f, &t, PROTO_COAPS, "192.0.2.7");
  if (tr == NULL)
    return;
  transfer_resumed(tr, SIZE / 2);
  v = fx_get(&x, "b2", 0);
  CHECK(v.percent == 50 && v.resumes == 1 && v.bytes_served == 0);
  CHECK(strcmp(v.protocol, "coaps") == 0);
  transfer_end(tr);
}

int main(void)
{
  char pkg[PKG_ID_LEN + 1];

  intervals();
  intervals_random();
  new_offer_resets();
  if (fx_open(&x, "test-progress") < 0) {
    CHECK(0);
    return unit_done("test_progress");
  }
  CHECK(fx_package(&x, "A", "B", "a-b.bin", SIZE, pkg) == 0);
  whole_cut_and_resumed(pkg);
  segments(pkg);
  ack_slack(pkg);
  blocks(pkg);
  later_block();
  anonymous(pkg);
  fx_close(&x);
  return unit_done("test_progress");
}
