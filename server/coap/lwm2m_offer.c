/* lwm2m_offer.c: the campaign steps dfotad takes with a registered device
 * whose trigger is lwm2m and which has /5 (see lwm2m_dm.c for the requests
 * they go out as):
 *   every [coap] lwm2m_poll seconds while /5 is idle: a check-in with the
 *   delivery core, as the device's host would make it; an offer's URL is
 *   written into Package URI (/5/0/1), or, for a device that takes only
 *   push (/5/0/9 = 1), the package itself into /5/0/0 (lwm2m_push.c);
 *   State 2 (Downloaded): reported to the core as a finished download, and
 *   Update (/5/0/2) executed, reported as the update's start;
 *   Update Result 2..11: reported as the Quectel code of the same class
 *   (see result_code); 1: the version is read again, and the check-in that
 *   follows confirms the hop. */
#include "autoconfig.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../util/util.h"
#include "lwm2m.h"

static void who_of(struct coap_engine *e, struct lwm2m_reg *r, struct device_identity *who)
{
  memset(who, 0, sizeof(*who));
  /* the registration proved the device (its DTLS identity, or plain CoAP
   * where the operator allows it): the core takes it as a verified peer */
  who->device_id = r->device;
  who->peer_id = r->device;
  who->addr = r->ip;
  who->proto = e->proto;
}

/* ---- commits ------------------------------------------------------------
 * A check-in or report changes state the writer commits on its own thread
 * (delivery_*_nowait, delivery_commit): this thread never waits on the
 * disk, and an offer's Package URI is written only once the offer is
 * durable. */
struct lwm2m_commit {
  struct coap_engine *e;
  atomic_int committed;
  char device[DEVICE_ID_MAX + 1];
  char url[LWM2M_URL_MAX]; /* the offer to write once durable; "": nothing */
  struct lwm2m_commit *next;
};

/* The writer's thread: touches c only before it says so, and e last (the
 * engine waits for commits_out to reach 0 before it goes). */
static void commit_done(void *arg)
{
  struct lwm2m_commit *c = arg;
  struct coap_engine *e = c->e;

  atomic_store(&c->committed, 1);
  atomic_fetch_add(&e->commits_done, 1);
  atomic_fetch_sub(&e->commits_out, 1);
}

/* Asks for the commit of what the last call changed; url (or NULL) is
 * written to the device once it is done. */
static void commit_then(struct coap_engine *e, const char *device, const char *url)
{
  struct lwm2m_commit *c = calloc(1, sizeof(*c));

  if (c == NULL) {
    delivery_commit_wait(e->fleet);
    return; /* the next poll writes the offer */
  }
  c->e = e;
  snprintf(c->device, sizeof(c->device), "%s", device);
  if (url != NULL && strlen(url) < sizeof(c->url))
    snprintf(c->url, sizeof(c->url), "%s", url);
  atomic_fetch_add(&e->commits_out, 1);
  if (delivery_commit(e->fleet, commit_done, c) < 0) {
    atomic_fetch_sub(&e->commits_out, 1);
    delivery_commit_wait(e->fleet);
    atomic_store(&c->committed, 1);
  }
  c->next = e->lw->commits;
  e->lw->commits = c;
}

static void apply_offer(struct coap_engine *e, struct lwm2m_reg *r, const char *url);

int lwm2m_commits_pending(const struct coap_engine *e)
{
  return e->lw != NULL && e->lw->commits != NULL;
}

int lwm2m_dm_commits(struct coap_engine *e, int wait, int max)
{
  struct lwm2m_commit **p = &e->lw->commits;
  int done = 0, left = 0;

  while (wait && atomic_load(&e->commits_out) > 0)
    usleep(1000);
  while (*p != NULL) {
    struct lwm2m_commit *c = *p;
    struct lwm2m_reg *r;
    if (!atomic_load(&c->committed)) {
      p = &c->next;
      continue;
    }
    if (max > 0 && done == max) {
      left++;
      p = &c->next;
      continue;
    }
    done++;
    *p = c->next;
    if (!wait && c->url[0] != '\0' && (r = lwm2m_reg_by_dev(e->lw, c->device)) != NULL) {
      apply_offer(e, r, c->url);
      lwm2m_due_touch(e->lw, r);
    }
    free(c);
  }
  return left;
}

void lwm2m_report(struct coap_engine *e, struct lwm2m_reg *r, const char *stage, long code)
{
  struct device_identity who;
  struct report_answer a;
  char body[96];
  int n;

  who_of(e, r, &who);
  if (code >= 0)
    n = snprintf(body, sizeof(body), "{\"stage\":\"%s\",\"code\":%ld}", stage, code);
  else
    n = snprintf(body, sizeof(body), "{\"stage\":\"%s\"}", stage);
  delivery_report_nowait(e->fleet, &who, 1, body, (size_t)n, &a);
  if (a.must_commit)
    commit_then(e, r->device, NULL);
  if (a.verdict != VERDICT_NOTHING)
    log_warn("%s: LwM2M device %s: report %s not taken: %s", proto_name(e->proto), r->device, body,
             a.message);
}

/* An Update Result (LwM2M 1.x, /5/0/5) as the Quectel code of the same
 * class (fleet/urc.c), with the stage it ends; 0 for none (0, 1). */
static long result_code(int result, const char **stage)
{
  *stage = "DOWNLOADED";
  switch (result) {
  case 2:                             /* not enough flash */
  case 3: return 701;                 /* out of RAM: retryable */
  case 4: return 711;                 /* connection lost during download: retryable */
  case 5: return 710;                 /* integrity check failure: the package is re-checked */
  case 6: return 590;                 /* unsupported package type: device side */
  case 7: return 705;                 /* invalid URI: our mistake */
  case 8: *stage = "END"; return 504; /* firmware update failed: device side */
  case 9: return 706;                 /* unsupported protocol: our mistake */
  case 10:                            /* cancelled */
  case 11: return 709;                /* deferred: retryable */
  default: return 0;
  }
}

/* The /5 values changed (a read or a notification). */
void lwm2m_fw_changed(struct coap_engine *e, struct lwm2m_reg *r)
{
  const char *stage;
  long code;

  if (!r->drive || r->url[0] == '\0')
    return;
  if (r->fw_state == 2 && !r->downloaded_told) {
    r->downloaded_told = 1;
    lwm2m_report(e, r, "DOWNLOADED", 0);
    /* Update goes out only while the rollout lets it (lwm2m_dm_step) */
    r->execute_due = 1;
    r->execute_held = 0;
    r->execute_at = 0;
    return;
  }
  if (r->fw_result == 1 && r->executed) {
    /* done: the version it runs now confirms the hop */
    lwm2m_dm_queue(r, OP_READ, 3, 0, 3, NULL);
    r->executed = 0;
    return;
  }
  code = result_code(r->fw_result, &stage);
  if (code != 0) {
    char detail[96];
    snprintf(detail, sizeof(detail), "Update Result %d, reported as %s %ld", r->fw_result, stage,
             code);
    delivery_lwm2m_event(e->fleet, r->device, "lwm2m_result", detail);
    lwm2m_report(e, r, stage, code);
    /* the offer is spent; a retry the core grants is written again */
    r->url[0] = '\0';
    r->downloaded_told = r->executed = r->execute_due = 0;
  }
}

/* The protocol of the offer: the listener's when the device takes it
 * (/5/0/8), else the first the device takes and a front serves. NULL: let
 * the core choose (the device's, the rollout's transport). */
static const char *transport_for(struct coap_engine *e, struct lwm2m_reg *r)
{
  /* /5/0/8 numbers: 0 CoAP, 1 CoAPS, 2 HTTP 1.1, 3 HTTPS 1.1 */
  static const struct {
    int bit;
    enum proto p;
  } m[] = {{1, PROTO_COAPS}, {3, PROTO_HTTPS}, {0, PROTO_COAP}, {2, PROTO_HTTP}};
  int own = e->proto == PROTO_COAPS ? 1 : 0;

  if (r->fw_protocols < 0 || (r->fw_protocols & (1 << own)))
    return NULL;
  for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
    if ((r->fw_protocols & (1 << m[i].bit)) && delivery_has(e->fleet, m[i].p))
      return proto_name(m[i].p);
  return NULL;
}

/* Whether the offer behind the Package URI we wrote still stands (a
 * cancelled rollout, or an offer the core ended, takes it away). */
int lwm2m_offer_stands(struct coap_engine *e, struct lwm2m_reg *r)
{
  const char *tok = strstr(r->url, "/f/");
  struct target t;

  if (tok == NULL)
    return 1;
  if (delivery_resolve_offer(e->fleet, tok + 3, r->device, 0, &t) != RESOLVE_OK)
    return 0;
  target_release(&t);
  return 1;
}

/* The offer is gone: an empty Package URI cancels the device's download
 * and resets /5 to idle (LwM2M 1.x, 5.6.1). */
void lwm2m_cancel_offer(struct coap_engine *e, struct lwm2m_reg *r)
{
  lwm2m_push_end(e, r, "the offer is gone");
  if (lwm2m_dm_queue(r, OP_WRITE, 5, 0, 1, "") < 0)
    return;
  r->url[0] = '\0';
  r->downloaded_told = r->executed = r->execute_due = 0;
  delivery_lwm2m_event(e->fleet, r->device, "lwm2m_cancel", "/5/0/1 written empty");
}

/* The core offers url: written as the Package URI (or, when the device
 * downloads or has what was written before it registered again, taken as
 * the current offer). */
static void apply_offer(struct coap_engine *e, struct lwm2m_reg *r, const char *url)
{
  if (lwm2m_push_wanted(r) && !(r->url[0] == '\0' && r->fw_state == 2)) {
    /* the package itself, into /5/0/0 (lwm2m_push.c); a device that was
     * downloading before it registered again lost its blocks */
    if (strcmp(url, r->url) != 0 && lwm2m_push_start(e, r, url) < 0)
      delivery_lwm2m_event(e->fleet, r->device, "lwm2m_error", "/5/0/0 push could not start");
    return;
  }
  if (r->url[0] == '\0' && (r->fw_state == 1 || r->fw_state == 2) && strlen(url) < sizeof(r->url)) {
    /* it downloads, or has, what we wrote before it registered again:
     * the offer goes on from there */
    snprintf(r->url, sizeof(r->url), "%s", url);
    r->downloaded_told = r->executed = r->execute_due = 0;
    lwm2m_fw_changed(e, r);
  } else if (strcmp(url, r->url) != 0 && strlen(url) < sizeof(r->url) &&
             lwm2m_dm_queue(r, OP_WRITE, 5, 0, 1, url) == 0) {
    snprintf(r->url, sizeof(r->url), "%s", url);
    r->downloaded_told = r->executed = r->execute_due = 0;
    delivery_lwm2m_event(e->fleet, r->device, "lwm2m_write", "/5/0/1 Package URI");
  }
}

/* Asks the core whether the device has an offer, as its host's check-in
 * would. */
void lwm2m_poll_offer(struct coap_engine *e, struct lwm2m_reg *r, int64_t now)
{
  struct device_identity who;
  struct checkin_answer a;
  int64_t wait = (int64_t)e->set.lwm2m_poll * 1000;

  who_of(e, r, &who);
  delivery_checkin_nowait(e->fleet, &who, r->version[0] ? r->version : NULL, transport_for(e, r),
                          &a);
  if (a.must_commit && a.verdict != VERDICT_OFFER)
    commit_then(e, r->device, NULL);
  r->version_told = 1;
  switch (a.verdict) {
  case VERDICT_OFFER:
    if (a.must_commit)
      commit_then(e, r->device, a.url); /* written once durable */
    else
      apply_offer(e, r, a.url);
    break;
  case VERDICT_LATER:
    if (a.retry_after > 0 && (int64_t)a.retry_after * 1000 < wait)
      wait = (int64_t)a.retry_after * 1000;
    break;
  case VERDICT_NOTHING:
    if (r->url[0] != '\0' && !r->executed && !lwm2m_offer_stands(e, r))
      lwm2m_cancel_offer(e, r);
    break;
  default:
    log_warn("%s: LwM2M device %s: check-in refused: %s", proto_name(e->proto), r->device,
             a.message);
    break;
  }
  r->next_poll = now + wait;
}

/* The device downloaded: Update (/5/0/2) is executed only while its
 * rollout runs and inside the rollout's window; else asked again when the
 * window opens, at the next lwm2m_poll, or at once when the rollout resumes
 * (the wake list). */
void lwm2m_execute_when_allowed(struct coap_engine *e, struct lwm2m_reg *r, int64_t now)
{
  int w = delivery_lwm2m_may_update(e->fleet, r->device);
  int64_t poll = (int64_t)e->set.lwm2m_poll * 1000;
  char detail[96];

  if (w == 0) {
    if (lwm2m_dm_queue(r, OP_EXECUTE, 5, 0, 2, NULL) == 0) {
      r->execute_due = 0;
      delivery_lwm2m_event(e->fleet, r->device, "lwm2m_execute", "/5/0/2");
    }
    return;
  }
  if (w == -2) {
    r->execute_due = 0; /* the offer is gone: cancel_offer follows */
    return;
  }
  r->execute_at = now + (w > 0 && (int64_t)w * 1000 < poll ? (int64_t)w * 1000 : poll);
  if (!r->execute_held) {
    r->execute_held = 1;
    if (w > 0)
      snprintf(detail, sizeof(detail), "/5/0/2 held: the rollout's window opens in %d s", w);
    else
      snprintf(detail, sizeof(detail), "/5/0/2 held: the rollout is paused");
    delivery_lwm2m_event(e->fleet, r->device, "lwm2m_execute_held", detail);
  }
}
