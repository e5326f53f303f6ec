/* test_report.c: what each class of Quectel result code does when a device
 * reports it (URC lines or JSON): the device's state, attempts, retry time
 * and offer, and its rollout (codes counted, alarms, pauses). Each case has
 * its own device in its own one-device rollout, on a real store. */
#include "autoconfig.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fleet_fixture.h"

static struct fx x;
static int serial;

/* A new device on A in its own rollout to B (extra: more rollout fields),
 * checked in and offered the package. Its id into id. With a spare, the
 * rollout has a second member that never checks in, so that the first
 * one's end does not complete it (one failure of two: 50 %). */
static int offered_spare(char *id, const char *extra, int spare)
{
  char devs[96], rid[16], sp[48];
  struct checkin_answer a;

  snprintf(id, 32, "dev-%d", ++serial);
  snprintf(sp, sizeof(sp), "%s-spare", id);
  snprintf(devs, sizeof(devs), spare ? "[\"%s\",\"%s\"]" : "[\"%s\"]", id, sp);
  if (spare && fx_device(&x, sp, "A") != 201)
    return -1;
  if (fx_device(&x, id, "A") != 201 || fx_rollout(&x, "B", devs, extra, rid) < 0 ||
      fx_checkin(&x, id, "A", NULL, &a) != VERDICT_OFFER) {
    fprintf(stderr, "# %s: not offered\n", id);
    return -1;
  }
  return 0;
}

static int offered(char *id, const char *extra) { return offered_spare(id, extra, 1); }

#define STRICT "\"max_attempts\":3,\"retry_backoff\":30,\"max_failure_rate\":40"
#define LENIENT "\"max_attempts\":3,\"retry_backoff\":30,\"max_failure_rate\":100"

static void success(void)
{
  char id[32];
  struct fx_dev v;
  struct report_answer ra;
  struct checkin_answer a;

  if (offered_spare(id, STRICT, 0) < 0)
    return;
  CHECK(fx_urc(&x, id, "HTTPSTART", 0) == VERDICT_NOTHING);
  CHECK(fx_get(&x, id, 0).state == D_DOWNLOADING);
  CHECK(fx_report(&x, id, 0, "+QIND: \"FOTA\",\"DOWNLOADING\",45\r\n", &ra) == VERDICT_NOTHING);
  CHECK(fx_get(&x, id, 0).device_percent == 45);
  CHECK(fx_urc(&x, id, "HTTPEND", 0) == VERDICT_NOTHING);
  v = fx_get(&x, id, 0);
  CHECK(v.state == D_DOWNLOADED && v.attempts == 0 && v.retry_at == 0 && v.last_code == 0);
  CHECK(v.code_count == 0 && v.rstate == R_RUNNING);
  CHECK(fx_report(&x, id, 0, "+QIND: \"FOTA\",\"START\"\r\n", &ra) == VERDICT_NOTHING);
  CHECK(strcmp(ra.state, "updating") == 0);
  CHECK(fx_urc(&x, id, "END", 0) == VERDICT_NOTHING);
  CHECK(fx_get(&x, id, 0).state == D_UPDATING);
  /* the new version at check-in confirms it */
  CHECK(fx_checkin(&x, id, "B", NULL, &a) == VERDICT_NOTHING);
  v = fx_get(&x, id, 0);
  CHECK(v.state == D_SUCCEEDED && v.token[0] == '\0' && v.attempts == 0);
  /* its one device done, the rollout completes (at the next evaluation) */
  fleet_tick(x.f);
  CHECK(fx_get(&x, id, 0).rstate == R_COMPLETED);
}

/* 712: one request_size segment done: downloading, nothing counted. */
static void segment(void)
{
  char id[32];
  struct fx_dev v;

  if (offered(id, STRICT) < 0)
    return;
  CHECK(fx_urc(&x, id, "HTTPEND", 712) == VERDICT_NOTHING);
  v = fx_get(&x, id, 712);
  CHECK(v.state == D_DOWNLOADING && v.attempts == 0 && v.retry_at == 0 && v.fail_code == -1);
  CHECK(v.last_code == 712 && v.code_count == 0 && v.rstate == R_RUNNING);
  CHECK(v.token[0] != '\0');
  /* more segments, then the end */
  CHECK(fx_urc(&x, id, "HTTPEND", 712) == VERDICT_NOTHING);
  CHECK(fx_get(&x, id, 0).state == D_DOWNLOADING);
  CHECK(fx_urc(&x, id, "HTTPEND", 0) == VERDICT_NOTHING);
  CHECK(fx_get(&x, id, 0).state == D_DOWNLOADED);
}

static int near(int64_t v, int64_t want, int64_t slack)
{
  return v >= want - slack && v <= want + slack;
}

/* retryable (and unknown) codes: back to offered with a backoff that
 * doubles; failed once max_attempts are used up. */
static void retryable(long code, const char *stage)
{
  char id[32];
  struct fx_dev v;
  struct checkin_answer a;
  int64_t t;

  if (offered(id, STRICT) < 0)
    return;
  t = now_ms();
  CHECK(fx_urc(&x, id, stage, code) == VERDICT_NOTHING);
  v = fx_get(&x, id, code);
  CHECK(v.state == D_OFFERED);
  CHECK(v.attempts == 1);
  CHECK(near(v.retry_at, t + 30000, 2000));
  CHECK(v.fail_code == code && v.last_code == code);
  CHECK(v.code_count == 1);
  CHECK(v.rstate == R_RUNNING && v.n_alarms == 0);
  CHECK(v.token[0] != '\0');
  if (v.state != D_OFFERED)
    fprintf(stderr, "# code %ld: state %s (%s)\n", code, dstate_name(v.state), v.reason);
  /* during the backoff: later */
  CHECK(fx_checkin(&x, id, "A", NULL, &a) == VERDICT_LATER);
  CHECK(a.retry_after >= 28 && a.retry_after <= 31);
  /* after it: the same offer again */
  {
    char token[FLEET_TOKEN_LEN + 1];
    snprintf(token, sizeof(token), "%s", v.token);
    fx_age(&x, id, 31000);
    CHECK(fx_checkin(&x, id, "A", NULL, &a) == VERDICT_OFFER);
    CHECK(strstr(a.url, token) != NULL);
  }
}

static void retries_run_out(void)
{
  char id[32];
  struct fx_dev v;
  int64_t t;

  if (offered(id, STRICT) < 0)
    return;
  CHECK(fx_urc(&x, id, "HTTPEND", 702) == VERDICT_NOTHING);
  t = now_ms();
  CHECK(fx_urc(&x, id, "HTTPEND", 711) == VERDICT_NOTHING);
  v = fx_get(&x, id, 702);
  CHECK(v.state == D_OFFERED && v.attempts == 2);
  CHECK(near(v.retry_at, t + 60000, 2000)); /* doubled */
  CHECK(v.code_count == 1);
  CHECK(fx_urc(&x, id, "HTTPEND", 704) == VERDICT_NOTHING);
  v = fx_get(&x, id, 704);
  CHECK(v.state == D_FAILED && v.attempts == 3 && v.fail_code == 704);
  CHECK(strstr(v.reason, "704") != NULL && strstr(v.reason, "retryable") != NULL);
  /* one failed device of two: over max_failure_rate 40 */
  CHECK(v.rstate == R_PAUSED && strstr(v.rreason, "max_failure_rate") != NULL);
}

/* 705, 706: our URL or package is wrong: failed at once, and an alarm. */
static void our_mistake(long code)
{
  char id[32];
  struct fx_dev v;

  if (offered(id, STRICT) < 0)
    return;
  CHECK(fx_urc(&x, id, "HTTPEND", code) == VERDICT_NOTHING);
  v = fx_get(&x, id, code);
  CHECK(v.state == D_FAILED && v.attempts == 1 && v.fail_code == code);
  CHECK(v.code_count == 1 && v.n_alarms == 1);
  CHECK(strstr(v.reason, "our_mistake") != NULL);
  CHECK(v.rstate == R_PAUSED);
}

/* 506, 710: the package is re-checked; intact, only the device fails. */
static void suspect_intact(long code, const char *stage)
{
  char id[32];
  struct fx_dev v;

  if (offered(id, LENIENT) < 0)
    return;
  if (code == 506) { /* an update error comes after the download */
    CHECK(fx_urc(&x, id, "HTTPEND", 0) == VERDICT_NOTHING);
  }
  CHECK(fx_urc(&x, id, stage, code) == VERDICT_NOTHING);
  v = fx_get(&x, id, code);
  CHECK(v.state == D_FAILED && v.attempts == 1 && v.fail_code == code && v.code_count == 1);
  CHECK(strstr(v.reason, "package_suspect") != NULL);
  CHECK(v.rstate == R_RUNNING); /* the package checked out fine */
}

/* A damaged package file: a 710 report pauses every running rollout that
 * offers it, and the package is no longer served. */
static void suspect_damaged(void)
{
  char pkg[PKG_ID_LEN + 1], id1[] = "dmg-1", id2[] = "dmg-2", rid1[16], rid2[16], path[256];
  struct checkin_answer a;
  struct package *p;
  struct target t;
  struct fx_dev v;
  int fd;

  CHECK(fx_package(&x, "C", "D", "c-d.bin", 10000, pkg) == 0);
  CHECK(fx_device(&x, id1, "C") == 201 && fx_device(&x, id2, "C") == 201);
  /* each with a spare member, so that one failure does not complete it */
  CHECK(fx_device(&x, "dmg-3", "C") == 201 && fx_device(&x, "dmg-4", "C") == 201);
  CHECK(fx_rollout(&x, "D", "[\"dmg-1\",\"dmg-3\"]", LENIENT, rid1) == 0);
  CHECK(fx_rollout(&x, "D", "[\"dmg-2\",\"dmg-4\"]", LENIENT, rid2) == 0);
  CHECK(fx_checkin(&x, id1, "C", NULL, &a) == VERDICT_OFFER);
  CHECK(fx_checkin(&x, id2, "C", NULL, &a) == VERDICT_OFFER);
  p = store_package_get(x.s, pkg);
  CHECK(p != NULL);
  if (p == NULL)
    return;
  snprintf(path, sizeof(path), "%s/packages/%s", x.dir, p->sha256);
  package_unref(p);
  chmod(path, 0600);
  fd = open(path, O_WRONLY);
  CHECK(fd >= 0 && pwrite(fd, "\x55\xaa", 2, 100) == 2);
  if (fd >= 0)
    close(fd);
  {
    /* the re-check runs on the store's worker: wait for its verdict */
    struct fleet_limits l = {DEF_EVENTS_PER_DEVICE, DEF_REPORT_LINES, 0, DEF_AUTH_FREE,
                             PSK_GENERATED};
    fleet_set_limits(x.f, &l);
  }
  CHECK(fx_urc(&x, id1, "HTTPEND", 710) == VERDICT_NOTHING);
  for (int i = 0; i < 500; i++) {
    v = fx_get(&x, id1, 710);
    if (v.rstate == R_PAUSED)
      break;
    usleep(10000);
  }
  CHECK(v.state == D_FAILED && v.rstate == R_PAUSED && strstr(v.rreason, "re-check") != NULL);
  v = fx_get(&x, id2, 710);
  CHECK(v.rstate == R_PAUSED && v.state == D_OFFERED);
  CHECK(delivery_resolve_package(x.f, pkg, &t) == RESOLVE_DAMAGED);
  CHECK(t.pkg == NULL);
}

/* 511: the device is not on the version we thought: version unknown, offer
 * dropped; its next check-in plans again from what it says. */
static void mismatch(void)
{
  char id[32], token[FLEET_TOKEN_LEN + 1];
  struct checkin_answer a;
  struct fx_dev v;

  if (offered(id, LENIENT) < 0)
    return;
  snprintf(token, sizeof(token), "%s", fx_get(&x, id, 0).token);
  CHECK(fx_urc(&x, id, "HTTPEND", 0) == VERDICT_NOTHING);
  CHECK(fx_urc(&x, id, "END", 511) == VERDICT_NOTHING);
  v = fx_get(&x, id, 511);
  CHECK(v.state == D_FAILED && v.attempts == 1 && v.fail_code == 511 && v.code_count == 1);
  CHECK(!v.has_version);
  CHECK(v.token[0] == '\0' && v.package_id[0] == '\0');
  CHECK(v.rstate == R_RUNNING);
  {
    struct target t;
    CHECK(delivery_resolve_offer(x.f, token, NULL, 0, &t) == RESOLVE_NOT_FOUND);
  }
  /* it says A again: a new offer, a new token */
  CHECK(fx_checkin(&x, id, "A", NULL, &a) == VERDICT_OFFER);
  v = fx_get(&x, id, 511);
  CHECK(v.state == D_OFFERED && v.has_version && strcmp(v.version, "A") == 0);
  CHECK(v.token[0] != '\0' && strcmp(v.token, token) != 0);
}

/* storage, memory, parameters on the module: failed, no retry. */
static void device_side(long code, const char *stage)
{
  char id[32];
  struct fx_dev v;

  if (offered(id, STRICT) < 0)
    return;
  CHECK(fx_urc(&x, id, stage, code) == VERDICT_NOTHING);
  v = fx_get(&x, id, code);
  CHECK(v.state == D_FAILED && v.attempts == 1 && v.fail_code == code && v.code_count == 1);
  CHECK(v.retry_at == 0 && v.n_alarms == 0);
  CHECK(strstr(v.reason, "device_side") != NULL);
  CHECK(v.rstate == R_PAUSED);
}

/* JSON reports go the same way as URC lines. */
static void json_reports(void)
{
  char id[32];
  struct report_answer ra;
  struct fx_dev v;

  if (offered(id, STRICT) < 0)
    return;
  CHECK(fx_report(&x, id, 1, "{\"stage\":\"DOWNLOADING\",\"percent\":50}", &ra) == VERDICT_NOTHING);
  v = fx_get(&x, id, 0);
  CHECK(v.state == D_DOWNLOADING && v.device_percent == 50);
  CHECK(fx_report(&x, id, 1, "{\"stage\":\"HTTPEND\",\"code\":702}", &ra) == VERDICT_NOTHING);
  CHECK(ra.accepted == 1 && strcmp(ra.state, "offered") == 0);
  v = fx_get(&x, id, 702);
  CHECK(v.state == D_OFFERED && v.attempts == 1 && v.code_count == 1);
  /* unusable bodies change nothing */
  CHECK(fx_report(&x, id, 1, "{\"stage\":\"HTTPEND\"}", &ra) == VERDICT_BAD_REQUEST);
  CHECK(fx_report(&x, id, 1, "{\"stage\":\"NOSUCH\",\"code\":1}", &ra) == VERDICT_BAD_REQUEST);
  CHECK(fx_report(&x, id, 1, "[1,2]", &ra) == VERDICT_BAD_REQUEST);
  CHECK(fx_report(&x, id, 1, "{\"stage\":", &ra) == VERDICT_BAD_REQUEST);
  CHECK(fx_report(&x, id, 1, "{\"stage\":\"HTTPEND\\\"\",\"code\":0}", &ra) == VERDICT_BAD_REQUEST);
  CHECK(fx_report(&x, id, 1, "{\"stage\":\"HTTPEND\",\"code\":1e3}", &ra) == VERDICT_BAD_REQUEST);
  /* a stage cannot forge the code: this is 702 in disguise, not 0 */
  CHECK(fx_report(&x, id, 1, "{\"stage\":\"HTTPEND\\\",\\\"0\",\"code\":702}", &ra) ==
        VERDICT_BAD_REQUEST);
  CHECK(fx_report(&x, id, 1, "{\"stage\":\"HTTPEND,0\",\"code\":702}", &ra) == VERDICT_BAD_REQUEST);
  v = fx_get(&x, id, 702);
  CHECK(v.state == D_OFFERED && v.attempts == 1);
}

#define END0 "+QIND: \"FOTA\",\"END\",0"

static void reports_misc(void)
{
  char id[32];
  struct report_answer ra;
  struct device_identity who;

  /* several lines, noise between them */
  if (offered(id, STRICT) < 0)
    return;
  CHECK(fx_report(&x, id, 0,
                  "+QIND: \"FOTA\",\"HTTPSTART\"\r\nOK\r\n+QIND: \"FOTA\",\"DOWNLOADING\",10\r\n"
                  "+CREG: 1\r\n+QIND: \"FOTA\",\"HTTPEND\",0",
                  &ra) == VERDICT_NOTHING);
  CHECK(ra.accepted == 3 && strcmp(ra.state, "downloaded") == 0);
  CHECK(fx_report(&x, id, 0, "OK\r\n+QIND: \"FOTA\",\"HTTPE", &ra) == VERDICT_BAD_REQUEST);
  CHECK(fx_report(&x, id, 0, "", &ra) == VERDICT_BAD_REQUEST);
  /* who may report */
  fx_who(&who, id, PROTO_HTTP);
  who.secret = "wrong-secret-0123456789";
  delivery_report(x.f, &who, 0, END0, strlen(END0), &ra);
  CHECK(ra.verdict == VERDICT_FORBIDDEN);
  CHECK(fx_report(&x, "nobody", 0, "+QIND: \"FOTA\",\"END\",0", &ra) == VERDICT_FORBIDDEN);
  fx_who(&who, id, PROTO_HTTPS);
  who.secret = NULL;
  who.peer_id = id; /* a verified client certificate */
  delivery_report(x.f, &who, 0, END0, strlen(END0), &ra);
  CHECK(ra.verdict == VERDICT_NOTHING && strcmp(ra.state, "updating") == 0);
  who.peer_id = "someone-else";
  delivery_report(x.f, &who, 0, END0, strlen(END0), &ra);
  CHECK(ra.verdict == VERDICT_FORBIDDEN);

  /* a device with nothing in flight (in no rollout): its report changes
   * nothing */
  CHECK(fx_device(&x, "loner", "A") == 201);
  CHECK(fx_urc(&x, "loner", "HTTPEND", 702) == VERDICT_NOTHING);
  {
    struct fx_dev v = fx_get(&x, "loner", 702);
    CHECK(v.state == D_IDLE && v.last_code == -1 && v.attempts == 0 && v.retry_at == 0);
  }
}

/* A report as the front hands it over: exactly len bytes on the heap, no
 * terminator after them, so that AddressSanitizer sees any read outside. */
static enum verdict heap_report(const char *id, const char *body, size_t len,
                                struct report_answer *ra)
{
  struct device_identity who;
  char *copy = malloc(len ? len : 1);

  if (copy == NULL)
    return VERDICT_BAD_REQUEST;
  memcpy(copy, body, len);
  fx_who(&who, id, PROTO_HTTP);
  delivery_report(x.f, &who, 0, copy, len, ra);
  free(copy);
  return ra->verdict;
}

/* Empty lines: a body that starts with one (the fuzzer's find: the line
 * check read the byte before the body), and blank lines, which count
 * neither as URC lines nor towards [fleet] report_lines. */
static void blank_lines(void)
{
  /* tests/fuzz/corpus/urc/crash-empty-first-line */
  static const char found[] = "\n+OTA\",\"ENDND\",511\r\n+22,022\r\n\n+";
  static const char first[] = "\n+QIND: \"FOTA\",\"DOWNLOADING\",30\r\n";
  char id[32], body[800];
  struct report_answer ra;
  struct fx_dev v;
  size_t n = 0;

  if (offered(id, STRICT) < 0)
    return;
  CHECK(heap_report(id, found, sizeof(found) - 1, &ra) == VERDICT_BAD_REQUEST);
  CHECK(heap_report(id, "\n", 1, &ra) == VERDICT_BAD_REQUEST);
  CHECK(heap_report(id, "\r", 1, &ra) == VERDICT_BAD_REQUEST);
  v = fx_get(&x, id, 0);
  CHECK(v.state == D_OFFERED && v.attempts == 0 && v.device_percent != 30);
  CHECK(heap_report(id, first, sizeof(first) - 1, &ra) == VERDICT_NOTHING);
  CHECK(ra.accepted == 1 && fx_get(&x, id, 0).device_percent == 30);
  /* 300 blank lines and one URC: one line of the 64 allowed */
  for (int i = 0; i < 300; i++)
    n += (size_t)snprintf(body + n, sizeof(body) - n, i % 2 ? "\r\n" : "\n");
  n += (size_t)snprintf(body + n, sizeof(body) - n, "+QIND: \"FOTA\",\"DOWNLOADING\",40");
  CHECK(heap_report(id, body, n, &ra) == VERDICT_NOTHING);
  CHECK(ra.accepted == 1 && fx_get(&x, id, 0).device_percent == 40);
  /* 65 lines that are not blank: one too many, nothing changes */
  n = 0;
  for (int i = 0; i < 65; i++)
    n += (size_t)snprintf(body + n, sizeof(body) - n, "OK\r\n");
  CHECK(heap_report(id, body, n, &ra) == VERDICT_BAD_REQUEST);
  CHECK(strstr(ra.message, "at most 64 lines") != NULL);
  CHECK(fx_get(&x, id, 0).device_percent == 40);
}

int main(void)
{
  static const long retry_codes[] = {701, 702, 703, 704, 709, 711};
  char pkg[PKG_ID_LEN + 1];

  if (fx_open(&x, "test-report") < 0) {
    CHECK(0);
    return unit_done("test_report");
  }
  CHECK(fx_package(&x, "A", "B", "a-b.bin", 100000, pkg) == 0);
  success();
  segment();
  for (size_t i = 0; i < sizeof(retry_codes) / sizeof(retry_codes[0]); i++)
    retryable(retry_codes[i], "HTTPEND");
  retryable(702, "COAPEND");
  retryable(730, "HTTPEND"); /* unknown: kept, treated as retryable */
  retryable(552, "FTPEND");
  retries_run_out();
  our_mistake(705);
  our_mistake(706);
  suspect_intact(710, "HTTPEND");
  suspect_intact(506, "END");
  mismatch();
  device_side(707, "HTTPEND");
  device_side(708, "HTTPEND");
  device_side(504, "END");
  device_side(590, "END");
  json_reports();
  reports_misc();
  blank_lines();
  suspect_damaged(); /* last: it damages a package file */
  fx_close(&x);
  return unit_done("test_report");
}
