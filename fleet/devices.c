/* devices.c: device records: lookup by id and by offer token, states and
 * the events that record their changes, and the device's JSON view. */
#include "autoconfig.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/util.h"
#include "urc.h"
#include "fleet_int.h"
#include "lwm2m_int.h"

static const char *const dstate_names[D_NSTATES] = {
    "idle",     "pending",   "offered", "downloading", "downloaded",
    "updating", "succeeded", "failed",  "no_path",
};

const char *dstate_name(enum dstate s)
{
  return (unsigned)s < D_NSTATES ? dstate_names[s] : "unknown";
}

int dstate_parse(const char *s, enum dstate *out)
{
  for (int i = 0; i < D_NSTATES; i++)
    if (strcmp(s, dstate_names[i]) == 0) {
      *out = (enum dstate)i;
      return 0;
    }
  return -1;
}

json_t *fleet_error(const char *code, const char *message)
{
  return json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
}

struct device *device_find(struct fleet *f, const char *id)
{
  for (struct device *d = f->dev[hash_str(id) % DEV_BUCKETS]; d; d = d->next)
    if (strcmp(d->id, id) == 0)
      return d;
  return NULL;
}

struct device *token_find(struct fleet *f, const char *token)
{
  for (struct device *d = f->tok[hash_str(token) % DEV_BUCKETS]; d; d = d->tnext)
    if (strcmp(d->token, token) == 0)
      return d;
  return NULL;
}

void token_link(struct fleet *f, struct device *d)
{
  unsigned h = hash_str(d->token) % DEV_BUCKETS;
  d->tnext = f->tok[h];
  f->tok[h] = d;
}

void token_unlink(struct fleet *f, struct device *d)
{
  if (d->token[0] == '\0')
    return;
  for (struct device **pp = &f->tok[hash_str(d->token) % DEV_BUCKETS]; *pp; pp = &(*pp)->tnext)
    if (*pp == d) {
      *pp = d->tnext;
      break;
    }
  d->tnext = NULL;
}

void device_mark(struct fleet *f, struct device *d)
{
  if (!d->dirty) {
    d->dirty = 1;
    d->dirty_next = f->dirty;
    f->dirty = d;
  }
}

void fleet_event_add(struct fleet *f, const char *device, int64_t at, const char *kind,
                     const char *text)
{
  size_t a = strlen(device) + 1, b = strlen(kind) + 1, c = strlen(text) + 1;

  if (f->n_events == f->cap_events) {
    size_t nc = f->cap_events ? 2 * f->cap_events : 1024;
    struct fevent *ne = realloc(f->events, nc * sizeof(*ne));
    if (ne == NULL)
      return; /* out of memory: the event is lost, not the state */
    f->events = ne;
    f->cap_events = nc;
  }
  if (f->ev_len + a + b + c > f->ev_cap) {
    size_t nc = f->ev_cap ? 2 * f->ev_cap : 65536;
    char *nt;
    while (nc < f->ev_len + a + b + c)
      nc *= 2;
    if ((nt = realloc(f->ev_text, nc)) == NULL)
      return;
    f->ev_text = nt;
    f->ev_cap = nc;
  }
  memcpy(f->ev_text + f->ev_len, device, a);
  memcpy(f->ev_text + f->ev_len + a, kind, b);
  memcpy(f->ev_text + f->ev_len + a + b, text, c);
  f->events[f->n_events++] = (struct fevent){f->ev_len, at};
  f->ev_len += a + b + c;
}

int json_plain(const char *s, size_t max)
{
  size_t n = 0;

  for (; *s; s++, n++)
    if (n >= max || (unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f || *s == '"' ||
        *s == '\\')
      return 0;
  return 1;
}

/* An event of d, its detail already text: to the writer and the live feed. */
static void event_put(struct fleet *f, struct device *d, int64_t t, const char *kind,
                      const char *text)
{
  fleet_event_add(f, d->id, t, kind, text);
  feed_device(d, kind, text);
  d->events_untrimmed++;
}

void device_event_fields(struct fleet *f, struct device *d, const char *kind, const char *fields)
{
  char text[EVENT_FIELDS_MAX + 64], at[40];
  int64_t t = now_ms();

  time_iso_ms(t, at, sizeof(at));
  snprintf(text, sizeof(text), "{%s,\"at\":\"%s\"}", fields, at);
  event_put(f, d, t, kind, text);
}

void device_event(struct fleet *f, struct device *d, const char *kind, json_t *detail)
{
  char *text, at[40], plain[64];
  int64_t t = now_ms();

  time_iso_ms(t, at, sizeof(at));
  if (detail == NULL) {
    /* {"at": ...} alone (a creation, most of a bulk's work): no JSON */
    snprintf(plain, sizeof(plain), "{\"at\":\"%s\"}", at);
    event_put(f, d, t, kind, plain);
    return;
  }
  json_object_set_new(detail, "at", json_string(at));
  text = json_dumps(detail, JSON_COMPACT);
  json_decref(detail);
  if (text == NULL)
    return;
  event_put(f, d, t, kind, text);
  free(text);
}

void device_set_state(struct fleet *f, struct device *d, enum dstate to, const char *reason)
{
  enum dstate from = d->state;

  set_str(&d->reason, reason != NULL && reason[0] != '\0' ? reason : NULL);
  if (from == to) {
    device_mark(f, d);
    return;
  }
  d->state = to;
  d->state_since = now_ms();
  if (d->rollout != NULL)
    rollout_member_state(d->rollout, d, from, to);
  if (json_plain(d->reason ? d->reason : "", EVENT_FIELDS_MAX - 64)) {
    /* the usual case, without a JSON tree (an enrol makes one a member) */
    char fields[EVENT_FIELDS_MAX];
    snprintf(fields, sizeof(fields), "\"from\":\"%s\",\"to\":\"%s\",\"reason\":\"%s\"",
             dstate_name(from), dstate_name(to), d->reason ? d->reason : "");
    device_event_fields(f, d, "state", fields);
  } else {
    device_event(f, d, "state",
                 json_pack("{s:s,s:s,s:s}", "from", dstate_name(from), "to", dstate_name(to),
                           "reason", d->reason ? d->reason : ""));
  }
  device_mark(f, d);
  if (d->rollout != NULL)
    rollout_mark(d->rollout);
}

void device_clear_offer(struct fleet *f, struct device *d)
{
  token_unlink(f, d);
  d->token[0] = '\0';
  d->package_id[0] = '\0';
  d->sha256[0] = '\0';
  set_str(&d->hop_from, NULL);
  set_str(&d->hop_to, NULL);
}

/* A new offer starts its progress from nothing; until then the last
 * offer's progress stays on show. */
void progress_reset(struct device *d)
{
  d->size = 0;
  d->bytes_served = d->contiguous = 0;
  d->n_ival = 0;
  d->resumes = d->segments = d->last_interrupted = 0;
  d->device_percent = -1;
}

void device_free(struct device *d)
{
  free(d->version);
  free(d->hop_from);
  free(d->hop_to);
  free(d->reason);
  free(d->psk_identity);
  json_decref(d->tags);
  OPENSSL_cleanse(d->secret_hash, sizeof(d->secret_hash));
  if (d->psk_sealed != NULL) {
    OPENSSL_cleanse(d->psk_sealed, strlen(d->psk_sealed));
    free(d->psk_sealed);
  }
  lwm2m_device_free(d);
  free(d);
}

struct device *device_new(struct fleet *f, const char *id)
{
  struct device *d = calloc(1, sizeof(*d));
  unsigned h = hash_str(id) % DEV_BUCKETS;

  if (d == NULL)
    return NULL;
  snprintf(d->id, sizeof(d->id), "%s", id);
  d->group = "";
  d->fail_code = d->last_code = -1;
  d->transport = -1;
  d->device_percent = -1;
  d->midx = -1;
  d->state_since = now_ms();
  d->next = f->dev[h];
  f->dev[h] = d;
  f->n_devices++;
  return d;
}

void device_unlink(struct fleet *f, struct device *d)
{
  for (struct device **pp = &f->dev[hash_str(d->id) % DEV_BUCKETS]; *pp; pp = &(*pp)->next)
    if (*pp == d) {
      *pp = d->next;
      break;
    }
  for (struct device **head = d->dirty ? &f->dirty : NULL; head != NULL;
       head = head == &f->dirty ? &f->flushing : NULL)
    for (struct device **pp = head; *pp; pp = &(*pp)->dirty_next)
      if (*pp == d) {
        *pp = d->dirty_next;
        d->dirty = 0;
        break;
      }
  token_unlink(f, d);
  psk_unlink(f, d);
  f->n_devices--;
}

int percent_of(const struct device *d)
{
  if (d->size == 0)
    return 0;
  return (int)(d->contiguous * 100 / d->size);
}

json_t *time_json(int64_t ms)
{
  char buf[32];

  if (ms <= 0)
    return json_null();
  time_iso(ms, buf, sizeof(buf));
  return json_string(buf);
}

json_t *device_json(const struct device *d)
{
  json_t *o = json_object(), *prog, *last = json_null();

  json_object_set_new(o, "id", json_string(d->id));
  json_object_set_new(o, "model", json_string(d->model));
  json_object_set_new(o, "version", d->version ? json_string(d->version) : json_null());
  json_object_set_new(o, "group", json_string(d->group));
  json_object_set_new(o, "tags", d->tags ? json_incref(d->tags) : json_array());
  json_object_set_new(o, "state", json_string(dstate_name(d->state)));
  json_object_set_new(o, "state_since", time_json(d->state_since));
  json_object_set_new(o, "reason", json_string(d->reason ? d->reason : ""));
  json_object_set_new(o, "rollout", d->rollout ? json_string(d->rollout->id) : json_null());
  json_object_set_new(o, "attempts", json_integer(d->attempts));
  json_object_set_new(o, "transport",
                      d->transport >= 0 ? json_string(proto_name((enum proto)d->transport))
                                        : json_null());
  /* the key itself is never shown; whether there is one, and its identity */
  json_object_set_new(o, "psk_identity",
                      d->psk_sealed ? json_string(psk_identity_of(d)) : json_null());
  if (d->package_id[0] != '\0')
    json_object_set_new(o, "offer",
                        json_pack("{s:s,s:s?,s:s?,s:I}", "package", d->package_id, "from",
                                  d->hop_from, "to", d->hop_to, "size", (json_int_t)d->size));
  prog = json_pack("{s:i,s:I,s:I,s:i,s:i,s:s,s:o,s:o,s:s}", "percent", percent_of(d),
                   "bytes_served", (json_int_t)d->bytes_served, "contiguous",
                   (json_int_t)d->contiguous, "resumes", d->resumes, "segments", d->segments,
                   "protocol", d->protocol, "first_seen", time_json(d->first_seen), "last_seen",
                   time_json(d->last_seen), "client_address", d->addr);
  if (d->device_percent >= 0)
    json_object_set_new(prog, "device_percent", json_integer(d->device_percent));
  json_object_set_new(o, "progress", prog);
  if (d->last_code >= 0 || d->last_stage[0] != '\0') {
    last = json_pack("{s:s,s:o,s:o}", "stage", d->last_stage, "at", time_json(d->last_at), "code",
                     d->last_code >= 0 ? json_integer(d->last_code) : json_null());
    if (d->last_code >= 0) {
      json_object_set_new(last, "class", json_string(code_class_name(code_classify(d->last_code))));
      json_object_set_new(last, "meaning", json_string(code_meaning(d->last_code)));
    }
  }
  json_object_set_new(o, "last_result", last);
  lwm2m_json(d, o);
  return o;
}

const char *fleet_intern(struct fleet *f, const char *s)
{
  size_t i, mask;
  char *c;

  if (f->n_istr * 2 >= f->cap_istr) {
    size_t nc = f->cap_istr ? 2 * f->cap_istr : 256;
    char **nt = calloc(nc, sizeof(*nt));
    if (nt == NULL)
      return "";
    for (size_t k = 0; k < f->cap_istr; k++)
      if (f->istr[k] != NULL) {
        size_t j = hash_str(f->istr[k]) & (nc - 1);
        while (nt[j] != NULL)
          j = (j + 1) & (nc - 1);
        nt[j] = f->istr[k];
      }
    free(f->istr);
    f->istr = nt;
    f->cap_istr = nc;
  }
  mask = f->cap_istr - 1;
  for (i = hash_str(s) & mask; f->istr[i] != NULL; i = (i + 1) & mask)
    if (strcmp(f->istr[i], s) == 0)
      return f->istr[i];
  if ((c = strdup(s)) == NULL)
    return "";
  f->istr[i] = c;
  f->n_istr++;
  return c;
}

void fleet_intern_free(struct fleet *f)
{
  for (size_t k = 0; k < f->cap_istr; k++)
    free(f->istr[k]);
  free(f->istr);
  f->istr = NULL;
  f->n_istr = f->cap_istr = 0;
}

void set_str(char **slot, const char *v)
{
  if (*slot != NULL && v != NULL && strcmp(*slot, v) == 0)
    return;
  free(*slot);
  *slot = v ? strdup(v) : NULL;
}
