/* device_doc.c: a device's persisted document, as a jansson object
 * (device_doc) and as text written directly (device_text, the writer's
 * usual path); persist.c writes them and reads them back. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet_int.h"
#include "lwm2m_int.h"

/* The persisted form: everything, so that a restart resumes every offer;
 * a field at its default (what device_from_doc takes for a missing one)
 * is left out, so that a device at rest is a short document. */
static void put_s(json_t *o, const char *k, const char *v)
{
  if (v != NULL && v[0] != '\0')
    json_object_set_new(o, k, json_string(v));
}

static void put_i(json_t *o, const char *k, int64_t v, int64_t def)
{
  if (v != def)
    json_object_set_new(o, k, json_integer((json_int_t)v));
}

json_t *device_doc(const struct device *d)
{
  json_t *o = json_object();

  put_s(o, "model", d->model);
  if (d->version != NULL) /* "" is a version; NULL: unknown */
    json_object_set_new(o, "version", json_string(d->version));
  put_s(o, "group", d->group);
  if (json_array_size(d->tags) > 0)
    json_object_set(o, "tags", d->tags);
  put_s(o, "secret", d->secret_hash);
  put_s(o, "psk", d->psk_sealed); /* sealed (psk.c) */
  put_s(o, "psk_identity", d->psk_identity);
  put_s(o, "state", dstate_name(d->state));
  json_object_set_new(o, "state_since", json_integer((json_int_t)d->state_since));
  put_s(o, "reason", d->reason);
  put_s(o, "rollout", d->rollout ? d->rollout->id : NULL);
  put_i(o, "position", d->position, 0);
  put_s(o, "package", d->package_id);
  put_s(o, "sha256", d->sha256);
  put_s(o, "token", d->token);
  put_s(o, "hop_from", d->hop_from);
  put_s(o, "hop_to", d->hop_to);
  put_i(o, "size", (int64_t)d->size, 0);
  put_i(o, "attempts", d->attempts, 0);
  put_i(o, "retry_at", d->retry_at, 0);
  put_i(o, "fail_code", d->fail_code, -1);
  put_i(o, "bytes_served", (int64_t)d->bytes_served, 0);
  put_i(o, "contiguous", (int64_t)d->contiguous, 0);
  if (d->n_ival > 0) {
    json_t *iv = json_array();
    for (int i = 0; i < d->n_ival; i++)
      json_array_append_new(
          iv, json_pack("[I,I]", (json_int_t)d->ival[i].start, (json_int_t)d->ival[i].end));
    json_object_set_new(o, "ival", iv);
  }
  put_i(o, "resumes", d->resumes, 0);
  put_i(o, "segments", d->segments, 0);
  put_i(o, "interrupted", d->last_interrupted, 0);
  put_i(o, "device_percent", d->device_percent, -1);
  put_s(o, "protocol", d->protocol);
  put_s(o, "transport", d->transport >= 0 ? proto_name((enum proto)d->transport) : NULL);
  put_s(o, "addr", d->addr);
  put_i(o, "first_seen", d->first_seen, 0);
  put_i(o, "last_seen", d->last_seen, 0);
  put_s(o, "last_stage", d->last_stage);
  put_i(o, "last_code", d->last_code, -1);
  put_i(o, "last_at", d->last_at, 0);
  lwm2m_doc(d, o);
  return o;
}

/* The same document as text, without a jansson object per device: at a
 * bulk create the writer built and dumped 50,000 objects a page under the
 * fleet lock. NULL (the caller falls back to device_doc) for a device with
 * LwM2M state (lwm2m.c writes its part), a string that is not plain ASCII
 * (jansson's UTF-8 check decides those), or out of memory. The loader reads
 * both forms alike: keys in any order, a default left out. */
struct text {
  char *p;
  size_t len, cap;
  int bad;
};

static void t_add(struct text *t, const char *s, size_t n)
{
  if (t->bad)
    return;
  if (t->len + n + 1 > t->cap) {
    size_t cap = t->cap * 2 > t->len + n + 1 ? t->cap * 2 : t->len + n + 1;
    char *p = realloc(t->p, cap);
    if (p == NULL) {
      t->bad = 1;
      return;
    }
    t->p = p;
    t->cap = cap;
  }
  memcpy(t->p + t->len, s, n);
  t->len += n;
  t->p[t->len] = '\0';
}

static void t_key(struct text *t, const char *k)
{
  t_add(t, t->len > 1 ? ",\"" : "\"", t->len > 1 ? 2 : 1);
  t_add(t, k, strlen(k));
  t_add(t, "\":", 2);
}

static void t_str(struct text *t, const char *k, const char *v, int empty_too)
{
  if (v == NULL || (v[0] == '\0' && !empty_too))
    return;
  t_key(t, k);
  t_add(t, "\"", 1);
  for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
    char esc[8];
    if (*c >= 0x80)
      t->bad = 1; /* not ASCII: device_doc writes it */
    else if (*c == '"' || *c == '\\')
      t_add(t, (const char[]){'\\', (char)*c}, 2);
    else if (*c < 0x20) {
      snprintf(esc, sizeof(esc), "\\u%04x", *c);
      t_add(t, esc, 6);
    } else
      t_add(t, (const char *)c, 1);
  }
  t_add(t, "\"", 1);
}

static void t_int(struct text *t, const char *k, int64_t v, int64_t def, int always)
{
  char num[24];

  if (v == def && !always)
    return;
  t_key(t, k);
  t_add(t, num, (size_t)snprintf(num, sizeof(num), "%lld", (long long)v));
}

char *device_text(const struct device *d)
{
  struct text t = {NULL, 0, 0, 0};
  char num[48];

  if (d->lwm2m != NULL)
    return NULL;
  t_add(&t, "{", 1);
  t_str(&t, "model", d->model, 0);
  t_str(&t, "version", d->version, 1); /* "" is a version; NULL: unknown */
  t_str(&t, "group", d->group, 0);
  if (json_array_size(d->tags) > 0) {
    char *tags = json_dumps(d->tags, JSON_COMPACT);
    t.bad |= tags == NULL;
    if (tags != NULL) {
      t_key(&t, "tags");
      t_add(&t, tags, strlen(tags));
    }
    free(tags);
  }
  t_str(&t, "secret", d->secret_hash, 0);
  t_str(&t, "psk", d->psk_sealed, 0);
  t_str(&t, "psk_identity", d->psk_identity, 0);
  t_str(&t, "state", dstate_name(d->state), 0);
  t_int(&t, "state_since", d->state_since, 0, 1);
  t_str(&t, "reason", d->reason, 0);
  t_str(&t, "rollout", d->rollout ? d->rollout->id : NULL, 0);
  t_int(&t, "position", d->position, 0, 0);
  t_str(&t, "package", d->package_id, 0);
  t_str(&t, "sha256", d->sha256, 0);
  t_str(&t, "token", d->token, 0);
  t_str(&t, "hop_from", d->hop_from, 0);
  t_str(&t, "hop_to", d->hop_to, 0);
  t_int(&t, "size", (int64_t)d->size, 0, 0);
  t_int(&t, "attempts", d->attempts, 0, 0);
  t_int(&t, "retry_at", d->retry_at, 0, 0);
  t_int(&t, "fail_code", d->fail_code, -1, 0);
  t_int(&t, "bytes_served", (int64_t)d->bytes_served, 0, 0);
  t_int(&t, "contiguous", (int64_t)d->contiguous, 0, 0);
  if (d->n_ival > 0) {
    t_key(&t, "ival");
    for (int i = 0; i < d->n_ival; i++)
      t_add(&t, num,
            (size_t)snprintf(num, sizeof(num), "%s[%lld,%lld]", i ? "," : "[",
                             (long long)(int64_t)d->ival[i].start,
                             (long long)(int64_t)d->ival[i].end));
    t_add(&t, "]", 1);
  }
  t_int(&t, "resumes", d->resumes, 0, 0);
  t_int(&t, "segments", d->segments, 0, 0);
  t_int(&t, "interrupted", d->last_interrupted, 0, 0);
  t_int(&t, "device_percent", d->device_percent, -1, 0);
  t_str(&t, "protocol", d->protocol, 0);
  t_str(&t, "transport", d->transport >= 0 ? proto_name((enum proto)d->transport) : NULL, 0);
  t_str(&t, "addr", d->addr, 0);
  t_int(&t, "first_seen", d->first_seen, 0, 0);
  t_int(&t, "last_seen", d->last_seen, 0, 0);
  t_str(&t, "last_stage", d->last_stage, 0);
  t_int(&t, "last_code", d->last_code, -1, 0);
  t_int(&t, "last_at", d->last_at, 0, 0);
  t_add(&t, "}", 1);
  if (t.bad) {
    free(t.p);
    return NULL;
  }
  return t.p;
}
