/* test_checkin.c: check-in verdicts (who may ask, what is malformed, what
 * is offered when) and the offer's transport: the check-in's wish, else the
 * device's, else its rollout's, else the listener's protocol; a transport
 * with no front is refused at check-in and when it is written; the URL of
 * each protocol's form. */
#include "autoconfig.h"

#include <time.h>
#include <unistd.h>

#include "../../fleet/lwm2m.h"
#include "fleet_fixture.h"

static struct fx x;
static char pkg[PKG_ID_LEN + 1];

static enum verdict checkin_over(const char *id, enum proto p, const char *transport,
                                 struct checkin_answer *a)
{
  struct device_identity who;

  fx_who(&who, id, p);
  delivery_checkin(x.f, &who, "A", transport, a);
  return a->verdict;
}

static int starts(const char *s, const char *prefix)
{
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void who_may_ask(void)
{
  struct device_identity who;
  struct checkin_answer a;

  CHECK(fx_device(&x, "v1", "A") == 201);
  CHECK(fx_checkin(&x, "v1", "A", NULL, &a) == VERDICT_NOTHING); /* in no rollout */
  CHECK(fx_checkin(&x, "nobody", "A", NULL, &a) == VERDICT_FORBIDDEN);
  fx_who(&who, "v1", PROTO_HTTP);
  who.secret = "not-the-secret-0123456789";
  delivery_checkin(x.f, &who, "A", NULL, &a);
  CHECK(a.verdict == VERDICT_FORBIDDEN);
  who.secret = NULL;
  delivery_checkin(x.f, &who, "A", NULL, &a);
  CHECK(a.verdict == VERDICT_FORBIDDEN);
  who.device_id = NULL;
  who.secret = FX_SECRET;
  delivery_checkin(x.f, &who, "A", NULL, &a);
  CHECK(a.verdict == VERDICT_FORBIDDEN);
  /* a verified client certificate naming the device stands for the secret */
  fx_who(&who, "v1", PROTO_HTTPS);
  who.secret = NULL;
  who.peer_id = "v1";
  delivery_checkin(x.f, &who, "A", NULL, &a);
  CHECK(a.verdict == VERDICT_NOTHING);
  who.peer_id = "v2";
  delivery_checkin(x.f, &who, "A", NULL, &a);
  CHECK(a.verdict == VERDICT_FORBIDDEN);

  /* malformed versions and transports change nothing */
  CHECK(fx_checkin(&x, "v1", "A B", NULL, &a) == VERDICT_BAD_REQUEST);
  CHECK(a.message[0] != '\0');
  CHECK(fx_checkin(&x, "v1", "A\x01", NULL, &a) == VERDICT_BAD_REQUEST);
  CHECK(fx_checkin(&x, "v1", "C", "pigeon", &a) == VERDICT_BAD_REQUEST);
  CHECK(strstr(a.message, "transport") != NULL);
  CHECK(strcmp(fx_get(&x, "v1", 0).version, "A") == 0);
  CHECK(fx_checkin(&x, "v1", "C", "ftps", &a) == VERDICT_NO_TRANSPORT);
  CHECK(strstr(a.message, "ftps") != NULL);
  CHECK(strcmp(fx_get(&x, "v1", 0).version, "A") == 0);
  CHECK(fx_checkin(&x, "v1", NULL, NULL, &a) == VERDICT_NOTHING); /* no version: fine */
  CHECK(fx_checkin(&x, "v1", "", "", &a) == VERDICT_NOTHING);
  CHECK(strcmp(fx_get(&x, "v1", 0).version, "A") == 0);
}

/* The order of preference, each step on its own device. */
static void transport_choice(void)
{
  char rid[16], rid2[16], token[FLEET_TOKEN_LEN + 1], want[256];
  struct checkin_answer a;

  /* no preference anywhere: the listener's protocol */
  CHECK(fx_device(&x, "t1", "A") == 201);
  CHECK(fx_put(&x, "t2",
               "{\"model\":\"" FX_MODEL "\",\"version\":\"A\",\"secret\":\"" FX_SECRET
               "\",\"transport\":\"ftp\"}") == 201);
  CHECK(fx_get(&x, "t2", 0).transport == PROTO_FTP);
  CHECK(fx_rollout(&x, "B", "[\"t1\",\"t2\"]", "", rid) == 0);
  CHECK(checkin_over("t1", PROTO_HTTPS, NULL, &a) == VERDICT_OFFER);
  snprintf(token, sizeof(token), "%s", fx_get(&x, "t1", 0).token);
  snprintf(want, sizeof(want), "https://127.0.0.1:8443/f/%s", token);
  CHECK(a.transport == PROTO_HTTPS && strcmp(a.url, want) == 0);
  CHECK(strcmp(a.package_id, pkg) == 0 && a.size == 30000 && strcmp(a.from, "A") == 0 &&
        strcmp(a.to, "B") == 0 && strcmp(a.rollout, rid) == 0 && strlen(a.sha256) == 64);
  CHECK(a.request_size > 0 && a.request_size % 2048 == 0);
  CHECK(checkin_over("t1", PROTO_HTTP, NULL, &a) == VERDICT_OFFER);
  snprintf(want, sizeof(want), "http://127.0.0.1:8080/f/%s", token);
  CHECK(a.transport == PROTO_HTTP && strcmp(a.url, want) == 0); /* the same offer */
  /* the query's wish */
  CHECK(checkin_over("t1", PROTO_HTTP, "coap", &a) == VERDICT_OFFER);
  snprintf(want, sizeof(want), "coap://127.0.0.1:5683/f/%s", token);
  CHECK(a.transport == PROTO_COAP && strcmp(a.url, want) == 0);
  CHECK(checkin_over("t1", PROTO_HTTP, "coaps", &a) == VERDICT_NO_TRANSPORT);
  CHECK(strstr(a.message, "coaps") != NULL);
  /* the device's transport beats the listener's */
  CHECK(checkin_over("t2", PROTO_HTTPS, NULL, &a) == VERDICT_OFFER);
  CHECK(a.transport == PROTO_FTP);
  snprintf(want, sizeof(want), "ftp://t2:%s@127.0.0.1:2121/a-b.bin", fx_get(&x, "t2", 0).token);
  CHECK(strcmp(a.url, want) == 0);
  /* and the query beats the device's */
  CHECK(checkin_over("t2", PROTO_HTTPS, "http", &a) == VERDICT_OFFER);
  CHECK(a.transport == PROTO_HTTP && starts(a.url, "http://127.0.0.1:8080/f/"));

  /* a rollout's transport: beats the listener, not the device */
  CHECK(fx_device(&x, "t3", "A") == 201);
  CHECK(fx_put(&x, "t4",
               "{\"model\":\"" FX_MODEL "\",\"version\":\"A\",\"secret\":\"" FX_SECRET
               "\",\"transport\":\"https\"}") == 201);
  CHECK(fx_rollout(&x, "B", "[\"t3\",\"t4\"]", "\"transport\":\"coap\"", rid2) == 0);
  CHECK(checkin_over("t3", PROTO_HTTP, NULL, &a) == VERDICT_OFFER);
  CHECK(a.transport == PROTO_COAP && starts(a.url, "coap://127.0.0.1:5683/f/"));
  CHECK(checkin_over("t4", PROTO_HTTP, NULL, &a) == VERDICT_OFFER);
  CHECK(a.transport == PROTO_HTTPS && starts(a.url, "https://127.0.0.1:8443/f/"));
  CHECK(checkin_over("t3", PROTO_HTTP, "ftp", &a) == VERDICT_OFFER);
  CHECK(a.transport == PROTO_FTP && starts(a.url, "ftp://t3:"));
  /* a device's transport can be taken off again */
  CHECK(fx_put(&x, "t4", "{\"transport\":null}") == 200);
  CHECK(fx_get(&x, "t4", 0).transport == -1);
  CHECK(checkin_over("t4", PROTO_HTTP, NULL, &a) == VERDICT_OFFER);
  CHECK(a.transport == PROTO_COAP);
}

/* A transport with no front: refused when written; a device that has one
 * whose front went away gets a clear verdict, not a dead URL. */
static void unserved(void)
{
  static const char *const with_coaps[PROTO_COUNT] = {"http://127.0.0.1:8080",  "", "",
                                                      "coaps://127.0.0.1:5684", "", ""};
  char rid[16], msg[200];
  struct checkin_answer a;

  CHECK(fx_put(&x, "u1",
               "{\"model\":\"" FX_MODEL "\",\"version\":\"A\",\"secret\":\"" FX_SECRET
               "\",\"transport\":\"coaps\"}") == 400);
  CHECK(fx_put(&x, "u1",
               "{\"model\":\"" FX_MODEL "\",\"version\":\"A\",\"secret\":\"" FX_SECRET
               "\",\"transport\":\"smoke\"}") == 400);
  CHECK(fx_put(&x, "u1",
               "{\"model\":\"" FX_MODEL "\",\"version\":\"A\",\"secret\":\"" FX_SECRET
               "\",\"transport\":7}") == 400);
  CHECK(fx_put(&x, "u1",
               "{\"model\":\"" FX_MODEL "\",\"version\":\"A\",\"secret\":\"" FX_SECRET
               "\",\"transprot\":\"http\"}") == 400);
  CHECK(!fx_get(&x, "u1", 0).found);
  CHECK(fx_rollout_create(&x,
                          "{\"name\":\"n\",\"model\":\"" FX_MODEL "\",\"target_version\":\"B\","
                          "\"transport\":\"ftps\"}",
                          rid, msg, sizeof(msg)) == 400);
  CHECK(strstr(msg, "transport") != NULL);
  CHECK(fx_rollout_create(&x,
                          "{\"name\":\"n\",\"model\":\"" FX_MODEL "\",\"target_version\":\"B\","
                          "\"wavez\":[100]}",
                          rid, msg, sizeof(msg)) == 400);
  CHECK(strstr(msg, "wavez") != NULL);

  /* with a coaps front, a device may have it ... */
  delivery_set_bases(x.f, with_coaps);
  CHECK(delivery_has(x.f, PROTO_COAPS) && !delivery_has(x.f, PROTO_HTTPS));
  CHECK(fx_put(&x, "u1",
               "{\"model\":\"" FX_MODEL "\",\"version\":\"A\",\"secret\":\"" FX_SECRET
               "\",\"transport\":\"coaps\"}") == 201);
  CHECK(fx_rollout(&x, "B", "[\"u1\"]", "", rid) == 0);
  CHECK(checkin_over("u1", PROTO_HTTP, NULL, &a) == VERDICT_OFFER);
  CHECK(a.transport == PROTO_COAPS && starts(a.url, "coaps://127.0.0.1:5684/f/"));
  CHECK(strlen(a.url) == strlen("coaps://127.0.0.1:5684/f/") + FLEET_TOKEN_LEN);
  /* ... and when the front goes (a reload), the check-in says so */
  delivery_set_bases(x.f, fx_bases);
  CHECK(checkin_over("u1", PROTO_HTTP, NULL, &a) == VERDICT_NO_TRANSPORT);
  CHECK(strstr(a.message, "coaps") != NULL && a.url[0] == '\0');
  CHECK(checkin_over("u1", PROTO_HTTP, "http", &a) == VERDICT_OFFER);
  CHECK(a.transport == PROTO_HTTP);
}

/* FTP URLs: the device id percent-encoded as the user, the token as the
 * password, the package's file name. */
static void ftp_urls(void)
{
  static const char *const ftps[PROTO_COUNT] = {
      "http://127.0.0.1:8080", "", "", "", "ftp://[::1]:2121", "ftps://dfotad.example:990"};
  char rid[16], want[256], token[FLEET_TOKEN_LEN + 1];
  struct checkin_answer a;

  delivery_set_bases(x.f, ftps);
  CHECK(fx_device(&x, "dev:1.x_y-z", "A") == 201);
  CHECK(fx_rollout(&x, "B", "[\"dev:1.x_y-z\"]", "\"transport\":\"ftps\"", rid) == 0);
  CHECK(checkin_over("dev:1.x_y-z", PROTO_HTTP, NULL, &a) == VERDICT_OFFER);
  snprintf(token, sizeof(token), "%s", fx_get(&x, "dev:1.x_y-z", 0).token);
  snprintf(want, sizeof(want), "ftps://dev%%3A1.x_y-z:%s@dfotad.example:990/a-b.bin", token);
  CHECK(strcmp(a.url, want) == 0);
  if (strcmp(a.url, want) != 0)
    fprintf(stderr, "# got %s\n# want %s\n", a.url, want);
  CHECK(checkin_over("dev:1.x_y-z", PROTO_HTTP, "ftp", &a) == VERDICT_OFFER);
  snprintf(want, sizeof(want), "ftp://dev%%3A1.x_y-z:%s@[::1]:2121/a-b.bin", token);
  CHECK(strcmp(a.url, want) == 0);
  delivery_set_bases(x.f, fx_bases);

  /* the file name: the uploaded one when safe, else ID.bin */
  {
    struct package p;
    char out[80];
    memset(&p, 0, sizeof(p));
    snprintf(p.id, sizeof(p.id), "abcdefghijkl");
    p.name = "BG95_A-B.2.bin";
    delivery_file_name(&p, out, sizeof(out));
    CHECK(strcmp(out, "BG95_A-B.2.bin") == 0);
    p.name = "../etc/passwd";
    delivery_file_name(&p, out, sizeof(out));
    CHECK(strcmp(out, "abcdefghijkl.bin") == 0);
    p.name = ".hidden";
    delivery_file_name(&p, out, sizeof(out));
    CHECK(strcmp(out, "abcdefghijkl.bin") == 0);
    p.name = "a b";
    delivery_file_name(&p, out, sizeof(out));
    CHECK(strcmp(out, "abcdefghijkl.bin") == 0);
    p.name = "";
    delivery_file_name(&p, out, sizeof(out));
    CHECK(strcmp(out, "abcdefghijkl.bin") == 0);
    p.name = NULL;
    delivery_file_name(&p, out, sizeof(out));
    CHECK(strcmp(out, "abcdefghijkl.bin") == 0);
    p.name = "x123456789x123456789x123456789x123456789x123456789x123456789x1234"; /* 65 */
    delivery_file_name(&p, out, sizeof(out));
    CHECK(strcmp(out, "abcdefghijkl.bin") == 0);
  }
}

/* The offer stands until it ends; states that have nothing to offer. */
static void offer_lifecycle(void)
{
  char rid[16], url[720];
  struct checkin_answer a;
  struct report_answer ra;

  CHECK(fx_device(&x, "l1", "A") == 201);
  CHECK(fx_rollout(&x, "B", "[\"l1\"]", "", rid) == 0);
  CHECK(fx_checkin(&x, "l1", "A", NULL, &a) == VERDICT_OFFER);
  snprintf(url, sizeof(url), "%s", a.url);
  CHECK(fx_checkin(&x, "l1", "A", NULL, &a) == VERDICT_OFFER && strcmp(a.url, url) == 0);
  CHECK(fx_urc(&x, "l1", "HTTPSTART", 0) == VERDICT_NOTHING);
  CHECK(fx_checkin(&x, "l1", "A", NULL, &a) == VERDICT_OFFER && strcmp(a.url, url) == 0);
  CHECK(fx_report(&x, "l1", 0, "+QIND: \"FOTA\",\"HTTPEND\",0", &ra) == VERDICT_NOTHING);
  CHECK(fx_checkin(&x, "l1", "A", NULL, &a) == VERDICT_NOTHING); /* downloaded */
  CHECK(fx_checkin(&x, "l1", "B", NULL, &a) == VERDICT_NOTHING);
  CHECK(fx_get(&x, "l1", 0).state == D_SUCCEEDED);
  /* no path: a version with no package from it */
  CHECK(fx_device(&x, "l2", "Z") == 201);
  CHECK(fx_rollout(&x, "B", "[\"l2\"]", "", rid) == 0);
  CHECK(fx_checkin(&x, "l2", "Z", NULL, &a) == VERDICT_NOTHING);
  CHECK(fx_get(&x, "l2", 0).state == D_NO_PATH);
  /* already there */
  CHECK(fx_device(&x, "l3", "B") == 201);
  CHECK(fx_rollout(&x, "B", "[\"l3\"]", "", rid) == 0);
  CHECK(fx_get(&x, "l3", 0).state == D_SUCCEEDED);
  CHECK(fx_checkin(&x, "l3", "B", NULL, &a) == VERDICT_NOTHING);
}

/* The answers' bodies, rendered once by the core for every front. */
static void rendered(void)
{
  char rid[16], url[720];
  struct checkin_answer a;
  struct report_answer ra;
  json_t *o;

  CHECK(fx_device(&x, "r1", "A") == 201);
  /* nothing: no body; refusals: their message as text, no JSON */
  CHECK(fx_checkin(&x, "r1", "A", NULL, &a) == VERDICT_NOTHING);
  CHECK(a.text[0] == '\0' && a.json[0] == '\0' && a.must_commit == 0);
  CHECK(fx_checkin(&x, "nobody", "A", NULL, &a) == VERDICT_FORBIDDEN);
  CHECK(strcmp(a.text, "forbidden") == 0 && a.json[0] == '\0');
  CHECK(fx_checkin(&x, "r1", "A B", NULL, &a) == VERDICT_BAD_REQUEST);
  CHECK(strcmp(a.text, a.message) == 0 && a.json[0] == '\0');
  /* an offer: the URL alone as text; JSON with every field */
  CHECK(fx_rollout(&x, "B", "[\"r1\"]", "", rid) == 0);
  CHECK(fx_checkin(&x, "r1", "A", NULL, &a) == VERDICT_OFFER);
  snprintf(url, sizeof(url), "%s", a.url);
  CHECK(strcmp(a.text, a.url) == 0);
  o = json_loads(a.json, 0, NULL);
  CHECK(o != NULL);
  CHECK(o && strcmp(json_string_value(json_object_get(o, "url")), url) == 0);
  CHECK(o && strcmp(json_string_value(json_object_get(o, "transport")), "http") == 0);
  CHECK(o && json_integer_value(json_object_get(o, "size")) == 30000);
  CHECK(o && strcmp(json_string_value(json_object_get(o, "from")), "A") == 0);
  CHECK(o && strcmp(json_string_value(json_object_get(o, "to")), "B") == 0);
  CHECK(o && strcmp(json_string_value(json_object_get(o, "rollout")), rid) == 0);
  CHECK(o && json_integer_value(json_object_get(o, "request_size")) == a.request_size);
  json_decref(o);
  /* a report: its JSON as both bodies */
  CHECK(fx_report(&x, "r1", 0, "+QIND: \"FOTA\",\"HTTPSTART\"", &ra) == VERDICT_NOTHING);
  CHECK(strcmp(ra.json, "{\"state\":\"downloading\",\"accepted\":1}") == 0);
  CHECK(strcmp(ra.text, ra.json) == 0);
  CHECK(fx_report(&x, "r1", 0, "no urc here", &ra) == VERDICT_BAD_REQUEST);
  CHECK(strcmp(ra.text, ra.message) == 0 && ra.json[0] == '\0');

  /* the renderer alone: text that needs escaping stays valid JSON */
  memset(&a, 0, sizeof(a));
  a.verdict = VERDICT_OFFER;
  a.transport = PROTO_COAPS;
  snprintf(a.url, sizeof(a.url), "coaps://h/f/x");
  snprintf(a.from, sizeof(a.from), "v\"1\\\n");
  snprintf(a.to, sizeof(a.to), "v2\x01");
  checkin_render(&a);
  o = json_loads(a.json, 0, NULL);
  CHECK(o && strcmp(json_string_value(json_object_get(o, "from")), "v\"1\\\n") == 0);
  CHECK(o && strcmp(json_string_value(json_object_get(o, "to")), "v2\x01") == 0);
  CHECK(o && strcmp(json_string_value(json_object_get(o, "transport")), "coaps") == 0);
  json_decref(o);
  a.verdict = VERDICT_LATER;
  a.retry_after = 30;
  checkin_render(&a);
  CHECK(a.text[0] == '\0' && a.json[0] == '\0');
  memset(&ra, 0, sizeof(ra));
  ra.verdict = VERDICT_NOTHING;
  snprintf(ra.state, sizeof(ra.state), "a\"b");
  report_render(&ra);
  o = json_loads(ra.json, 0, NULL);
  CHECK(o && strcmp(json_string_value(json_object_get(o, "state")), "a\"b") == 0);
  json_decref(o);
}

/* Check-ins and reports are counted as requests by the core, under the
 * protocol they came in on, whatever the verdict. */
static void counted(void)
{
  struct checkin_answer a;
  struct proto_figures before, after;

  delivery_figures(PROTO_COAP, &before);
  CHECK(checkin_over("nobody", PROTO_COAP, NULL, &a) == VERDICT_FORBIDDEN);
  CHECK(checkin_over("v1", PROTO_COAP, NULL, &a) == VERDICT_NOTHING);
  delivery_figures(PROTO_COAP, &after);
  CHECK(after.requests == before.requests + 2);
}

/* delivery_checkin_nowait: the state is changed, the commit left to the
 * caller; delivery_commit runs done once it is durable. */
static int commits;
static void commit_done(void *arg)
{
  (void)arg;
  __atomic_add_fetch(&commits, 1, __ATOMIC_SEQ_CST);
}

static void nowait(void)
{
  char rid[16];
  struct checkin_answer a;
  struct device_identity who;

  CHECK(fx_device(&x, "n1", "A") == 201);
  CHECK(fx_rollout(&x, "B", "[\"n1\"]", "", rid) == 0);
  fx_who(&who, "n1", PROTO_COAP);
  delivery_checkin_nowait(x.f, &who, "A", NULL, &a);
  CHECK(a.verdict == VERDICT_OFFER && a.must_commit == 1);
  CHECK(delivery_commit(x.f, commit_done, NULL) == 0);
  for (int i = 0; i < 500 && __atomic_load_n(&commits, __ATOMIC_SEQ_CST) == 0; i++)
    usleep(10000);
  CHECK(__atomic_load_n(&commits, __ATOMIC_SEQ_CST) == 1);
  /* the same offer again changes nothing: nothing to commit */
  delivery_checkin_nowait(x.f, &who, "A", NULL, &a);
  CHECK(a.verdict == VERDICT_OFFER && a.must_commit == 0);
}

/* What the LwM2M server asks of the core (fleet/lwm2m.h): whether Update
 * may be executed now (the rollout runs, its window is open), and which
 * devices a wave's admission wakes (the lwm2m-driven members of the wave,
 * once each). */
static void lwm2m_gate(void)
{
  char rid[16], rid2[16], extra[96], ids[8][DEVICE_ID_MAX + 1], body[256];
  uint64_t cursor = delivery_lwm2m_wake_head();
  time_t t = time(NULL);
  struct tm tm;
  int all = -1, n, h;

  gmtime_r(&t, &tm);
  h = tm.tm_hour;
  for (int i = 0; i < 3; i++) {
    snprintf(body, sizeof(body), "{\"model\":\"%s\",\"version\":\"A\",\"secret\":\"%s\"%s}",
             FX_MODEL, FX_SECRET, i < 2 ? ",\"trigger\":\"lwm2m\"" : "");
    CHECK(fx_put(&x, i == 0 ? "lw1" : i == 1 ? "lw2" : "ck1", body) == 201);
  }
  CHECK(delivery_lwm2m_may_update(x.f, "lw1") == -2);    /* in no rollout */
  CHECK(delivery_lwm2m_may_update(x.f, "nobody") == -2); /* no such device */
  /* open for this hour and the next: no boundary crossed while it runs */
  snprintf(extra, sizeof(extra), "\"window\":{\"from_hour\":%d,\"to_hour\":%d}", h, (h + 2) % 24);
  CHECK(fx_rollout(&x, "B", "[\"lw1\",\"ck1\"]", extra, rid) == 0);
  CHECK(delivery_lwm2m_may_update(x.f, "lw1") == 0);
  /* the start woke lw1 only: ck1's host checks in by itself */
  n = delivery_lwm2m_woken(&cursor, ids, 8, &all);
  CHECK(n == 1 && all == 0 && strcmp(ids[0], "lw1") == 0);
  CHECK(delivery_lwm2m_woken(&cursor, ids, 8, &all) == 0);
  CHECK(fx_action(&x, rid, "pause") == 200);
  CHECK(delivery_lwm2m_may_update(x.f, "lw1") == -1);
  CHECK(delivery_lwm2m_woken(&cursor, ids, 8, &all) == 0); /* a pause wakes nobody */
  CHECK(fx_action(&x, rid, "resume") == 200);
  CHECK(delivery_lwm2m_woken(&cursor, ids, 8, &all) == 1 && strcmp(ids[0], "lw1") == 0);
  CHECK(delivery_lwm2m_may_update(x.f, "lw1") == 0);
  CHECK(fx_action(&x, rid, "cancel") == 200);
  CHECK(delivery_lwm2m_may_update(x.f, "lw1") == -2);
  /* closed now and for the next hour: the seconds until it opens */
  snprintf(extra, sizeof(extra), "\"window\":{\"from_hour\":%d,\"to_hour\":%d}", (h + 2) % 24,
           (h + 3) % 24);
  CHECK(fx_rollout(&x, "B", "[\"lw2\"]", extra, rid2) == 0);
  n = delivery_lwm2m_may_update(x.f, "lw2");
  CHECK(n > 3600 && n <= 2 * 3600);
  /* a reader that fell behind is told to ask every registered device */
  {
    uint64_t stale = cursor + 1000000; /* past the head: never valid */
    CHECK(delivery_lwm2m_woken(&stale, ids, 8, &all) == 0 && all == 1);
  }
}

int main(void)
{
  if (fx_open(&x, "test-checkin") < 0) {
    CHECK(0);
    return unit_done("test_checkin");
  }
  CHECK(fx_package(&x, "A", "B", "a-b.bin", 30000, pkg) == 0);
  who_may_ask();
  transport_choice();
  unserved();
  ftp_urls();
  offer_lifecycle();
  rendered();
  counted();
  nowait();
  lwm2m_gate();
  fx_close(&x);
  return unit_done("test_checkin");
}
