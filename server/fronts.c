/* fronts.c: the fronts table and the daemon's config sections (fronts.h). */
#include "autoconfig.h"

#include "fronts.h"

#include <stddef.h>
#include <string.h>

#include "../net/tls_set.h"
#include "admin/admin_front.h"
#include "coap/coap_front.h"
#include "ftp/ftp_front.h"
#include "http/http_front.h"
#include "server_conf.h"

const struct front_row *const fronts_table[] = {
    &http_row, &https_row, &coap_front_row, &coaps_front_row, &ftp_row, &ftps_row, &admin_row, NULL,
};

const struct conf_section *const *dfotad_sections(void)
{
  static const struct conf_section *secs[CONF_MAX_SECTIONS + 1];

  if (secs[0] == NULL) {
    int n = 0;
    secs[n++] = &server_conf_section;
    secs[n++] = &store_conf_section;
    for (const struct front_row *const *r = fronts_table; *r && n < CONF_MAX_SECTIONS - 1; r++)
      if ((*r)->proto >= 0)
        secs[n++] = (*r)->conf;
    secs[n++] = &fleet_conf_section;
    for (const struct front_row *const *r = fronts_table; *r && n < CONF_MAX_SECTIONS; r++)
      if ((*r)->proto < 0)
        secs[n++] = (*r)->conf;
  }
  return secs;
}

struct config *dfotad_config_load(const char *file, char *const *overrides, int n_overrides,
                                  struct config_errors *errs)
{
  return config_load(dfotad_sections(), file, overrides, n_overrides, errs);
}

int fronts_tls_build(const struct config *c, struct front_tls_sets *out, struct config_errors *errs)
{
  int before = errs->n;

  out->n = 0;
  for (const struct front_row *const *r = fronts_table; *r; r++) {
    const struct front_conf *fc = front_conf_of(c, *r);
    const struct tls_conf *tc;
    struct tls_set *s;
    if ((*r)->tls == TLS_ADAPTER_NONE || fc == NULL || fc->listen.n == 0)
      continue;
    tc = (const struct tls_conf *)((const char *)fc + (*r)->tls_offset);
    if (tc->cert[0] == '\0' && !(*r)->tls_needs_cert)
      continue; /* TLS optional and not configured */
    s = tls_set_build(tc, (*r)->section, (*r)->tls, errs);
    if (s == NULL)
      continue;
    if (out->n == (int)(sizeof(out->set) / sizeof(out->set[0]))) {
      tls_set_unref(s);
      config_errors_add(errs, "too many TLS sections");
      continue;
    }
    out->set[out->n].row = *r;
    out->set[out->n].set = s;
    out->n++;
  }
  if (errs->n != before) {
    fronts_tls_release(out);
    return -1;
  }
  return 0;
}

void fronts_tls_release(struct front_tls_sets *s)
{
  for (int i = 0; i < s->n; i++)
    tls_set_unref(s->set[i].set);
  s->n = 0;
}
