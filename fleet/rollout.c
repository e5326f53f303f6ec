/* rollout.c: rollout policy: who is in one (selector), in which wave (a
 * stable pseudo-random order cut at cumulative percentages), when the next
 * wave starts (success threshold), when it stops by itself (failure rate),
 * and the timeouts of its members (the fleet's tick). Called with
 * fleet->mu held, but for fleet_tick, which takes it. */
#include "autoconfig.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "../util/util.h"
#include "fleet_int.h"
#include "lwm2m_int.h"

static const char *const rstate_names[] = {"draft",     "running",   "paused",
                                           "completed", "cancelled", "starting"};

const char *rstate_name(enum rstate s)
{
  return (unsigned)s < sizeof(rstate_names) / sizeof(rstate_names[0]) ? rstate_names[s] : "unknown";
}

int rstate_parse(const char *s, enum rstate *out)
{
  for (size_t i = 0; i < sizeof(rstate_names) / sizeof(rstate_names[0]); i++)
    if (strcmp(s, rstate_names[i]) == 0) {
      *out = (enum rstate)i;
      return 0;
    }
  return -1;
}

struct rollout *rollout_find(struct fleet *f, const char *id)
{
  for (struct rollout *r = f->rollouts; r; r = r->next)
    if (strcmp(r->id, id) == 0)
      return r;
  return NULL;
}

void rollout_mark(struct rollout *r)
{
  r->dirty = 1;
  feed_rollout(r);
}

void rollout_free(struct rollout *r)
{
  free(r->name);
  free(r->model);
  free(r->target);
  json_decref(r->selector);
  free(r->sel_ids);
  json_decref(r->alarms);
  json_decref(r->codes);
  free(r->members);
  free(r->mstate);
  free(r->mpos);
  free(r);
}

static int has_string(json_t *arr, const char *s)
{
  size_t i;
  json_t *v;

  if (s == NULL)
    return 0;
  json_array_foreach(arr, i,
                     v) if (json_is_string(v) && strcmp(json_string_value(v), s) == 0) return 1;
  return 0;
}

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Whether id is in selector.devices (a non-empty array): by binary search
 * in its sorted copy, made once (f->mu held, as for every match). */
static int in_devices(const struct rollout *r, json_t *arr, const char *id)
{
  struct rollout *w = (struct rollout *)r; /* the index is a cache of the selector */
  size_t i, n = 0;
  json_t *v;

  if (!r->sel_indexed) {
    w->sel_ids = malloc(json_array_size(arr) * sizeof(*w->sel_ids));
    if (w->sel_ids == NULL)
      return has_string(arr, id); /* out of memory: the slow way, this time */
    json_array_foreach(arr, i, v) if (json_is_string(v)) w->sel_ids[n++] = json_string_value(v);
    qsort(w->sel_ids, n, sizeof(*w->sel_ids), cmp_str);
    w->n_sel_ids = n;
    w->sel_indexed = 1;
  }
  return bsearch(&id, r->sel_ids, r->n_sel_ids, sizeof(*r->sel_ids), cmp_str) != NULL;
}

int rollout_matches(const struct rollout *r, const struct device *d)
{
  json_t *sel = r->selector, *v;
  size_t i;

  if (d->model == NULL || strcmp(d->model, r->model) != 0)
    return 0;
  if ((v = json_object_get(sel, "group")) && json_is_string(v) &&
      strcmp(json_string_value(v), d->group) != 0)
    return 0;
  if ((v = json_object_get(sel, "tags")) && json_is_array(v)) {
    json_t *t;
    json_array_foreach(v, i, t) if (!has_string(d->tags, json_string_value(t))) return 0;
  }
  if ((v = json_object_get(sel, "versions")) && json_is_array(v) && json_array_size(v) > 0 &&
      !has_string(v, d->version))
    return 0;
  if ((v = json_object_get(sel, "devices")) && json_is_array(v) && json_array_size(v) > 0 &&
      !in_devices(r, v, d->id))
    return 0;
  return 1;
}

void rollout_add_member(struct rollout *r, struct device *d, int position)
{
  if (r->n_members == r->cap_members) {
    int nc = r->cap_members ? 2 * r->cap_members : 64;
    struct device **nm = realloc(r->members, (size_t)nc * sizeof(*nm));
    unsigned char *ns;
    int *np;
    if (nm == NULL)
      return;
    r->members = nm;
    ns = realloc(r->mstate, (size_t)nc * sizeof(*ns));
    if (ns == NULL)
      return;
    r->mstate = ns;
    np = realloc(r->mpos, (size_t)nc * sizeof(*np));
    if (np == NULL)
      return;
    r->mpos = np;
    r->cap_members = nc;
  }
  d->midx = r->n_members++;
  r->members[d->midx] = d;
  r->mstate[d->midx] = (unsigned char)d->state;
  r->mpos[d->midx] = position;
  r->count[d->state]++;
  r->wcount[d->state] += position < r->wcut;
  d->rollout = r;
  d->position = position;
  rollout_note_position(r, position);
}

void rollout_set_position(struct rollout *r, struct device *d, int position)
{
  int i = d->midx;

  if (i < 0 || i >= r->n_members || r->members[i] != d)
    return;
  r->wcount[r->mstate[i]] += (position < r->wcut) - (r->mpos[i] < r->wcut);
  r->mpos[i] = d->position = position;
  rollout_note_position(r, position);
}

const int *rollout_wave_counts(struct rollout *r, int cutoff)
{
  if (cutoff != r->wcut) {
    memset(r->wcount, 0, sizeof(r->wcount));
    for (int i = 0; i < r->n_members; i++)
      r->wcount[r->mstate[i]] += r->mpos[i] < cutoff;
    r->wcut = cutoff;
  }
  return r->wcount;
}

void rollout_note_position(struct rollout *r, int position)
{
  if (position < INT_MAX / 2 && position >= r->pos_end)
    r->pos_end = position + 1;
}

/* A member at a position a joiner takes while its rollout starts (from
 * INT_MAX / 2), in a rollout that no longer starts: one that joined on
 * another node while the rollout started there, whose record came after
 * the start's end (the job numbers only the joiners it knows). Out of
 * every wave, it would never be offered and the rollout never complete:
 * it goes last, as a joiner of a running rollout (of a running or paused
 * one: a cancelled start's are left as they are). */
void rollout_place_joiner(struct fleet *f, struct rollout *r, struct device *d)
{
  if ((r->state != R_RUNNING && r->state != R_PAUSED) || d->rollout != r ||
      d->position < INT_MAX / 2)
    return;
  rollout_set_position(r, d, r->pos_end);
  device_mark(f, d);
  rollout_mark(r);
}

void rollout_place_joiners(struct fleet *f, struct rollout *r)
{
  for (int i = 0; (r->state == R_RUNNING || r->state == R_PAUSED) && i < r->n_members; i++)
    if (r->mpos[i] >= INT_MAX / 2)
      rollout_place_joiner(f, r, r->members[i]);
}

/* The last member takes the leaver's place: O(1); the order of the arrays
 * means nothing (positions do). */
void rollout_remove_member(struct rollout *r, struct device *d)
{
  int i = d->midx, last = r->n_members - 1;

  if (i < 0 || i > last || r->members[i] != d) {
    d->rollout = NULL;
    return;
  }
  r->count[r->mstate[i]]--;
  r->wcount[r->mstate[i]] -= r->mpos[i] < r->wcut;
  if (i != last) {
    r->members[i] = r->members[last];
    r->mstate[i] = r->mstate[last];
    r->mpos[i] = r->mpos[last];
    r->members[i]->midx = i;
  }
  r->n_members--;
  d->rollout = NULL;
  d->midx = -1;
}

void rollout_member_state(struct rollout *r, struct device *d, enum dstate from, enum dstate to)
{
  if (d->midx < 0 || d->midx >= r->n_members || r->members[d->midx] != d)
    return;
  r->count[from]--;
  r->count[to]++;
  if (r->mpos[d->midx] < r->wcut) {
    r->wcount[from]--;
    r->wcount[to]++;
  }
  r->mstate[d->midx] = (unsigned char)to;
}

/* The positions the wave covers, 0..cutoff-1: ceil(percent of the
 * positions given). Positions, not members: a member deleted leaves its
 * position empty (no renumbering of a running rollout), and a cutoff
 * made from the member count would leave the last positions out of
 * every wave, the last one's included. */
int rollout_wave_cutoff(const struct rollout *r, int wave)
{
  int pct = wave < r->n_waves ? r->waves[wave] : 100;
  int n = r->pos_end;
  int c = (int)(((long long)n * pct + 99) / 100);

  return c > n ? n : c;
}

/* an offer holds its slot through a retry's backoff too, so that a device
 * coming back never finds the limit exceeded by others */
int rollout_active(const struct rollout *r)
{
  return r->count[D_DOWNLOADING] + r->count[D_OFFERED];
}

void rollout_alarm(struct fleet *f, struct rollout *r, const char *text)
{
  (void)f;
  log_warn("rollout %s: alarm: %s", r->id, text);
  feed_alarm(r, text);
  if (json_array_size(r->alarms) < 100)
    json_array_append_new(r->alarms, json_string(text));
  rollout_mark(r);
}

void rollout_pause(struct fleet *f, struct rollout *r, const char *reason)
{
  (void)f;
  if (r->state != R_RUNNING)
    return;
  r->state = R_PAUSED;
  snprintf(r->reason, sizeof(r->reason), "%s", reason);
  log_warn("rollout %s paused: %s", r->id, reason);
  rollout_mark(r);
}

void rollout_evaluate(struct fleet *f, struct rollout *r)
{
  /* while the fleet loads the counts cover the members loaded so far: the
   * first tick after the load evaluates */
  if (f->loading)
    return;
  for (;;) {
    /* in: the wave's members (its positions less the deleted members') */
    int cutoff, ok = 0, failed = 0, done = 0, wave_done = 0, off = 0, counted, in = 0;

    if (r->state != R_RUNNING)
      return;
    if (r->n_members == 0) {
      r->state = R_COMPLETED;
      snprintf(r->reason, sizeof(r->reason), "no device matched the selector");
      rollout_mark(r);
      return;
    }
    cutoff = rollout_wave_cutoff(r, r->wave);
    done = r->count[D_SUCCEEDED] + r->count[D_FAILED] + r->count[D_NO_PATH];
    if (cutoff >= r->pos_end) {
      /* the whole rollout: the counts say it all */
      in = r->n_members;
      wave_done = done;
      ok = r->count[D_SUCCEEDED];
      failed = r->count[D_FAILED];
      off = failed + r->count[D_NO_PATH];
    } else {
      const int *c = rollout_wave_counts(r, cutoff);
      for (int s = 0; s < D_NSTATES; s++)
        in += c[s];
      wave_done = c[D_SUCCEEDED] + c[D_FAILED] + c[D_NO_PATH];
      off = c[D_FAILED] + c[D_NO_PATH];
      ok = c[D_SUCCEEDED];
      failed = c[D_FAILED];
    }
    /* failures counted before an operator's resume do not pause again */
    failed -= failed < r->failed_base ? failed : r->failed_base;
    if (in > 0 && 100.0 * failed / in > r->max_failure_rate) {
      char reason[200];
      snprintf(reason, sizeof(reason),
               "wave %d: %d of %d devices failed (%.1f%%), above max_failure_rate %.1f%%",
               r->wave + 1, failed, in, 100.0 * failed / in, r->max_failure_rate);
      rollout_pause(f, r, reason);
      return;
    }
    /* devices the operator set aside by resuming count for nothing */
    counted = in - (off < r->aside ? off : r->aside);
    if (r->wave < r->n_waves - 1 && cutoff > 0 &&
        (counted <= 0 || 100.0 * ok / counted >= r->success_threshold)) {
      r->wave++;
      log_info("rollout %s: wave %d of %d starts (%d%% of %d devices)", r->id, r->wave + 1,
               r->n_waves, r->waves[r->wave], r->n_members);
      rollout_mark(r);
      lwm2m_wake_wave(r);
      continue;
    }
    if (r->wave < r->n_waves - 1 && cutoff > 0 && wave_done == in) {
      /* every device of the wave has ended, too few of them on the target
       * for the next wave, and not failed enough to pause on that: the
       * rollout would wait for ever, so it pauses and says why */
      char reason[200];
      snprintf(reason, sizeof(reason),
               "wave %d ended with %d of %d devices on the target (%.1f%%), below "
               "success_threshold %.1f%%",
               r->wave + 1, ok, counted, 100.0 * ok / counted, r->success_threshold);
      rollout_pause(f, r, reason);
      return;
    }
    if (r->wave == r->n_waves - 1 && done == r->n_members) {
      r->state = R_COMPLETED;
      snprintf(r->reason, sizeof(r->reason), "every device reached an end state");
      log_info("rollout %s completed", r->id);
      rollout_mark(r);
    }
    return;
  }
}

static int member_of_live(const struct device *d)
{
  return d->rollout != NULL && (d->rollout->state == R_RUNNING || d->rollout->state == R_PAUSED ||
                                d->rollout->state == R_STARTING);
}

/* A member starts (or joins) the rollout: pending, or done if already on
 * the target. A member already (a start job run again after a restart)
 * only takes its new position. */
void rollout_enrol(struct fleet *f, struct rollout *r, struct device *d, int position)
{
  if (d->rollout != NULL && d->rollout != r)
    rollout_remove_member(d->rollout, d);
  device_clear_offer(f, d);
  d->attempts = 0;
  d->retry_at = 0;
  d->fail_code = -1;
  if (d->rollout == r)
    rollout_set_position(r, d, position);
  else
    rollout_add_member(r, d, position);
  if (json_plain(r->id, 32)) {
    char fields[96];
    snprintf(fields, sizeof(fields), "\"rollout\":\"%s\",\"position\":%d", r->id, position);
    device_event_fields(f, d, "rollout", fields);
  } else {
    device_event(f, d, "rollout", json_pack("{s:s,s:i}", "rollout", r->id, "position", position));
  }
  if (d->version != NULL && strcmp(d->version, r->target) == 0)
    device_set_state(f, d, D_SUCCEEDED, "already on the target version");
  else
    device_set_state(f, d, D_PENDING, "waiting for its wave");
}

void rollout_join_running(struct fleet *f, struct device *d)
{
  for (struct rollout *r = f->rollouts; r; r = r->next)
    if ((r->state == R_RUNNING || r->state == R_STARTING) && !member_of_live(d) &&
        rollout_matches(r, d)) {
      /* while a start job runs, the job numbers joiners after its own
       * (positions from INT_MAX / 2) when it ends */
      rollout_enrol(f, r, d, r->state == R_STARTING ? INT_MAX / 2 + r->n_members : r->pos_end);
      rollout_mark(r);
      return;
    }
}

struct rollout *rollout_alloc(void)
{
  struct rollout *r = calloc(1, sizeof(*r));

  if (r == NULL)
    return NULL;
  r->alarms = json_array();
  r->codes = json_object();
  r->win_from = -1;
  r->transport = -1;
  return r;
}

void fleet_tick(struct fleet *f)
{
  int64_t now = now_ms();

  /* several nodes: in a database transaction, from the records as the
   * database has them (shared.c) */
  if (fleet_shared_tick(f))
    return;
  pthread_mutex_lock(&f->mu);
  for (struct rollout *r = f->loading ? NULL : f->rollouts; r; r = r->next) {
    if (r->state != R_RUNNING)
      continue;
    if (r->count[D_OFFERED] + r->count[D_DOWNLOADING] + r->count[D_DOWNLOADED] +
            r->count[D_UPDATING] ==
        0) {
      rollout_evaluate(f, r);
      continue;
    }
    for (int i = 0; i < r->n_members; i++) {
      struct device *d;
      int64_t since;
      unsigned char st = r->mstate[i];
      if (st != D_OFFERED && st != D_DOWNLOADING && st != D_DOWNLOADED && st != D_UPDATING)
        continue;
      d = r->members[i];
      since = d->retry_at > d->state_since ? d->retry_at : d->state_since;
      /* an offer nobody takes up also times out: it holds a concurrency slot */
      if ((d->state == D_OFFERED || d->state == D_DOWNLOADING || d->state == D_DOWNLOADED ||
           d->state == D_UPDATING) &&
          r->timeout > 0 && now - since > (int64_t)r->timeout * 1000) {
        char reason[96];
        snprintf(reason, sizeof(reason), "timeout: %s for more than %d s", dstate_name(d->state),
                 r->timeout);
        d->attempts++;
        device_set_state(f, d, D_FAILED, reason);
      }
    }
    rollout_evaluate(f, r);
  }
  pthread_mutex_unlock(&f->mu);
}
