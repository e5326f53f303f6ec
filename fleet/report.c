/* report.c: what a device reports (URC lines as its host read them, or a
 * JSON stage), and how each Quectel result code moves it and its rollout. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../store/store.h"
#include "../util/util.h"
#include "fleet_int.h"
#include "urc.h"

static int64_t backoff_ms(const struct rollout *r, int attempts)
{
  int64_t s = r->retry_backoff;

  for (int i = 1; i < attempts && s < 3600; i++)
    s *= 2;
  return (s > 3600 ? 3600 : s) * 1000;
}

static void count_code(struct rollout *r, long code)
{
  char key[24];
  json_t *v;

  if (r == NULL)
    return;
  snprintf(key, sizeof(key), "%ld", code);
  v = json_object_get(r->codes, key);
  json_object_set_new(r->codes, key, json_integer(v ? json_integer_value(v) + 1 : 1));
  rollout_mark(r);
}

/* Packages found damaged by a report: pause every rollout offering them. */
struct suspect {
  char id[PKG_ID_LEN + 1];
};

static void fail(struct fleet *f, struct device *d, long code, const char *stage,
                 struct suspect *suspect)
{
  struct rollout *r = d->rollout;
  enum code_class cls = code_classify(code);
  char reason[160];

  d->fail_code = code;
  count_code(r, code);
  snprintf(reason, sizeof(reason), "%s %ld: %s (%s)", stage, code, code_meaning(code),
           code_class_name(cls));
  if (r == NULL) {
    device_mark(f, d);
    return;
  }
  switch (cls) {
  case CODE_RETRYABLE:
  case CODE_UNKNOWN:
    d->attempts++;
    if (d->attempts < r->max_attempts) {
      d->retry_at = now_ms() + backoff_ms(r, d->attempts);
      d->last_interrupted = 1;
      device_set_state(f, d, D_OFFERED, reason);
      return;
    }
    device_set_state(f, d, D_FAILED, reason);
    return;
  case CODE_OUR_MISTAKE: {
    char alarm[400];
    snprintf(alarm, sizeof(alarm), "device %s: %s on package %s", d->id, reason, d->package_id);
    rollout_alarm(f, r, alarm);
    d->attempts++;
    device_set_state(f, d, D_FAILED, reason);
    return;
  }
  case CODE_PACKAGE_SUSPECT:
    if (suspect != NULL)
      snprintf(suspect->id, sizeof(suspect->id), "%s", d->package_id);
    d->attempts++;
    device_set_state(f, d, D_FAILED, reason);
    return;
  case CODE_MISMATCH:
    /* the device is not on the version we thought: unknown until it says */
    set_str(&d->version, NULL);
    d->attempts++;
    device_clear_offer(f, d);
    device_set_state(f, d, D_FAILED, reason);
    return;
  default:
    d->attempts++;
    device_set_state(f, d, D_FAILED, reason);
    return;
  }
}

/* Whether reports can move the device: it is in a rollout with something
 * in flight. */
static int in_flight(const struct device *d)
{
  return d->rollout != NULL && d->state != D_SUCCEEDED && d->state != D_IDLE &&
         d->state != D_NO_PATH && d->state != D_PENDING;
}

/* Applies one URC (or JSON stage) to the device. */
static void apply_urc(struct fleet *f, struct device *d, const struct urc *u,
                      struct suspect *suspect)
{
  int moving = in_flight(d);

  snprintf(d->last_stage, sizeof(d->last_stage), "%s", u->name);
  d->last_at = now_ms();
  if (u->has_number && (u->stage == URC_DOWNLOAD_END || u->stage == URC_UPDATE_END))
    d->last_code = u->number;
  device_event(f, d, "report",
               json_pack("{s:s,s:o}", "stage", u->name, "value",
                         u->has_number ? json_integer(u->number) : json_null()));
  device_mark(f, d);
  if (!moving)
    return;
  switch (u->stage) {
  case URC_DOWNLOAD_START:
    if (d->state == D_OFFERED)
      device_set_state(f, d, D_DOWNLOADING, "the module started downloading");
    break;
  case URC_DOWNLOADING:
    if (u->has_number)
      d->device_percent = (int)u->number;
    if (d->state == D_OFFERED)
      device_set_state(f, d, D_DOWNLOADING, "the module is downloading");
    break;
  case URC_DOWNLOAD_END:
    if (u->number == 0) {
      /* the module checked the package's length and hash: it holds every
       * byte, even where the settling of a piece was lost (a reset
       * connection, more out-of-order segments than intervals kept) */
      progress_add_interval(d, 0, d->size);
      device_set_state(f, d, D_DOWNLOADED, "the module has the whole package");
    } else if (code_classify(u->number) == CODE_SEGMENT) {
      if (d->state == D_OFFERED)
        device_set_state(f, d, D_DOWNLOADING, "segmented download");
    } else
      fail(f, d, u->number, u->name, suspect);
    break;
  case URC_RESETTING:
  case URC_UPDATE_START:
  case URC_UPDATING:
    if (d->state != D_FAILED)
      device_set_state(f, d, D_UPDATING, "the module is applying the package");
    break;
  case URC_UPDATE_END:
    if (u->number == 0)
      device_set_state(f, d, D_UPDATING,
                       "update reported done; waiting for the new version at check-in");
    else
      fail(f, d, u->number, u->name, suspect);
    break;
  default: break;
  }
}

/* JSON reports: {"stage": "HTTPEND", "code": 702} (or "percent"). */
static int json_report(const char *body, size_t len, struct urc *u)
{
  json_t *o = json_loadb(body, len, 0, NULL);
  char line[128];
  const char *stage;
  json_t *code, *pct;
  int rc = -1;

  if (!json_is_object(o))
    goto out;
  stage = json_string_value(json_object_get(o, "stage"));
  code = json_object_get(o, "code");
  pct = json_object_get(o, "percent");
  if (stage == NULL || strlen(stage) > 20)
    goto out;
  /* SECURITY: the stage is written into a URC line and parsed again; a
   * quote or comma in it would forge the fields after it (a "code": 702
   * read as 0). Stage names are letters. */
  for (const char *c = stage; *c; c++)
    if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z')))
      goto out;
  if (json_is_integer(code))
    snprintf(line, sizeof(line), "+QIND: \"FOTA\",\"%s\",%lld", stage,
             (long long)json_integer_value(code));
  else if (json_is_integer(pct))
    snprintf(line, sizeof(line), "+QIND: \"FOTA\",\"%s\",%lld", stage,
             (long long)json_integer_value(pct));
  else
    snprintf(line, sizeof(line), "+QIND: \"FOTA\",\"%s\"", stage);
  rc = urc_parse_line(line, strlen(line), u);
out:
  json_decref(o);
  return rc;
}

void package_damaged(void *arg, const char *package_id)
{
  struct fleet *f = arg;
  char reason[200];

  snprintf(reason, sizeof(reason), "package %s failed its re-check: damaged on the server",
           package_id);
  feed_publish("package.damaged", NULL, NULL, json_pack("{s:s}", "package", package_id));
  device_lock(f);
  for (struct rollout *r = f->rollouts; r; r = r->next) {
    int uses = 0;
    for (int i = 0; i < r->n_members && !uses; i++)
      uses = strcmp(r->members[i]->package_id, package_id) == 0;
    if (uses && r->state == R_RUNNING)
      rollout_pause(f, r, reason);
  }
  pthread_mutex_unlock(&f->mu);
}

/* Parses a report into at most max URCs; -1 when it has more lines. */
static int parse_report(int json, const char *body, size_t len, struct urc *u, int max)
{
  const char *p = body, *end = body + len;
  int n = 0, lines = 0;

  if (json)
    return json_report(body, len, &u[0]) == 0 ? 1 : 0;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    size_t ll = (size_t)(le - p);
    /* an empty line (or a lone \r) is no line; le[-1] only when there is
     * one, or an empty first line would read before the body */
    if (ll > 0 && le[-1] == '\r')
      ll--;
    if (ll > 0 && ++lines > max)
      return -1;
    if (urc_parse_line(p, (size_t)(le - p), &u[n]) == 0)
      n++;
    p = nl ? nl + 1 : end;
  }
  return n;
}

/* The report's verdict, rendered; 1 when it changed state that must be
 * committed before the device is told. */
static int report(struct fleet *f, const struct device_identity *who, int json, const char *body,
                  size_t len, struct report_answer *out)
{
  struct device *d;
  struct suspect suspect = {""};
  struct urc *u = NULL;
  int n, changed = 0, recheck_ms;

  int ready = fleet_fault_in(f, who->device_id) == 0; /* while loading: this one first */

  memset(out, 0, sizeof(*out));
  device_lock(f);
  f->reports++;
  recheck_ms = f->limits.recheck_interval_ms;
  if (f->loading && !ready) {
    out->verdict = VERDICT_LATER;
    out->retry_after = LOADING_RETRY_S;
    snprintf(out->message, sizeof(out->message), "the server is starting");
    goto out;
  }
  d = authenticate(f, who, &out->retry_after);
  if (d == NULL) {
    snprintf(out->message, sizeof(out->message), "unknown device or wrong credential");
    out->verdict = out->retry_after > 0 ? VERDICT_LATER : VERDICT_FORBIDDEN;
    goto out;
  }
  u = calloc((size_t)f->limits.report_lines + 1, sizeof(*u));
  n = u == NULL ? -2 : parse_report(json, body, len, u, f->limits.report_lines);
  if (n < 0) {
    snprintf(out->message, sizeof(out->message),
             n == -1 ? "a report holds at most %d lines" : "out of memory", f->limits.report_lines);
    out->verdict = VERDICT_BAD_REQUEST;
    goto out;
  }
  if (n == 0) {
    snprintf(out->message, sizeof(out->message),
             "no FOTA URC line in the report (expected e.g. "
             "+QIND: \"FOTA\",\"HTTPEND\",0)");
    out->verdict = VERDICT_BAD_REQUEST;
    goto out;
  }
  out->verdict = VERDICT_NOTHING;
  out->accepted = 0;
  /* SECURITY: a device with nothing in flight changes nothing by
   * reporting: its credential cannot grow its history at will */
  if (in_flight(d)) {
    for (int i = 0; i < n; i++)
      apply_urc(f, d, &u[i], &suspect);
    out->accepted = n;
    seen(d, who);
    changed = 1;
    if (d->rollout != NULL)
      rollout_evaluate(f, d->rollout);
  }
  snprintf(out->state, sizeof(out->state), "%s", dstate_name(d->state));
out:
  pthread_mutex_unlock(&f->mu);
  free(u);
  /* SECURITY: the re-check runs on the store's worker, at most once per
   * package per interval, whatever the reports */
  if (suspect.id[0] != '\0')
    store_package_recheck(f->store, suspect.id, recheck_ms);
  count_request(who->proto);
  report_render(out);
  return changed;
}

struct report_call {
  struct fleet *f;
  const struct device_identity *who;
  int json;
  const char *body;
  size_t len;
  struct report_answer *out;
};

static void report_decision(void *arg)
{
  struct report_call *c = arg;
  report(c->f, c->who, c->json, c->body, c->len, c->out);
}

/* Several nodes (shared.c): decided in a database transaction, committed
 * before the answer; else the device is asked to send it again. */
static void report_shared(struct fleet *f, const struct device_identity *who, int json,
                          const char *body, size_t len, struct report_answer *out)
{
  struct report_call c = {f, who, json, body, len, out};

  if (fleet_decide(f, report_decision, &c) < 0) {
    memset(out, 0, sizeof(*out));
    out->verdict = VERDICT_LATER;
    out->retry_after = DELIVERY_STORE_RETRY;
    snprintf(out->message, sizeof(out->message), "the database is unreachable; try again later");
    report_render(out);
  }
}

void delivery_report(struct fleet *f, const struct device_identity *who, int json, const char *body,
                     size_t len, struct report_answer *out)
{
  if (f->shared) {
    report_shared(f, who, json, body, len, out);
    return;
  }
  if (report(f, who, json, body, len, out))
    store_sync(f->store);
}

void delivery_report_nowait(struct fleet *f, const struct device_identity *who, int json,
                            const char *body, size_t len, struct report_answer *out)
{
  if (f->shared) {
    report_shared(f, who, json, body, len, out); /* waits: see delivery_checkin_nowait */
    out->must_commit = 0;
    return;
  }
  out->must_commit = report(f, who, json, body, len, out);
}
