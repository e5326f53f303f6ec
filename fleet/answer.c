/* answer.c: the bodies of check-in and report answers, rendered once here
 * for every front (delivery.h). A front sends text or json as they are and
 * maps the verdict onto its own status codes. */
#include "autoconfig.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "../util/util.h"
#include "fleet_int.h"

/* Dumps o (taken) into out; "" when it does not fit. */
static void dump(json_t *o, char *out, size_t len)
{
  size_t n = o ? json_dumpb(o, out, len - 1, JSON_COMPACT) : 0;

  json_decref(o);
  out[n > 0 && n < len ? n : 0] = '\0';
}

void checkin_render(struct checkin_answer *a)
{
  a->text[0] = a->json[0] = '\0';
  switch (a->verdict) {
  case VERDICT_OFFER:
    /* the URL for AT+QFOTADL, alone */
    snprintf(a->text, sizeof(a->text), "%s", a->url);
    dump(json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:i,s:s}", "url", a->url, "transport",
                   proto_name(a->transport), "size", (json_int_t)a->size, "sha256", a->sha256,
                   "from", a->from, "to", a->to, "package", a->package_id, "request_size",
                   a->request_size, "rollout", a->rollout),
         a->json, sizeof(a->json));
    return;
  case VERDICT_NOTHING:
  case VERDICT_LATER: return;
  case VERDICT_FORBIDDEN: snprintf(a->text, sizeof(a->text), "forbidden"); return;
  case VERDICT_BAD_REQUEST:
  case VERDICT_NO_TRANSPORT:
    snprintf(a->text, sizeof(a->text), "%s", a->message[0] ? a->message : "bad request");
    return;
  }
}

void report_render(struct report_answer *a)
{
  a->text[0] = a->json[0] = '\0';
  switch (a->verdict) {
  case VERDICT_NOTHING:
    dump(json_pack("{s:s,s:i}", "state", a->state, "accepted", a->accepted), a->json,
         sizeof(a->json));
    if (strlen(a->json) < sizeof(a->text))
      memcpy(a->text, a->json, strlen(a->json) + 1);
    return;
  case VERDICT_LATER: return;
  case VERDICT_FORBIDDEN: snprintf(a->text, sizeof(a->text), "forbidden"); return;
  default:
    snprintf(a->text, sizeof(a->text), "%s",
             a->message[0] ? a->message : "nothing usable in the report");
    return;
  }
}
