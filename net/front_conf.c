/* front_conf.c: what every front's section has (front.h). */
#include "autoconfig.h"

#include "front.h"

#include <string.h>

void front_conf_check(struct front_conf *fc, const char *section, struct config_errors *errs)
{
  char url[CONF_URL_MAX];

  if (fc->public_url[0] != '\0' || fc->listen.n == 0)
    return;
  listen_public_url(&fc->listen.addr[0], section, url, sizeof(url));
  if (config_set_string(&fc->public_url, url) < 0)
    config_errors_add(errs, "out of memory");
}

const struct front_conf *front_conf_of(const struct config *c, const struct front_row *row)
{
  return config_section(c, row->section);
}

struct tls_set *front_env_tls(const struct front_env *env, const struct front_row *row)
{
  for (int i = 0; i < env->n_tls; i++)
    if (env->tls[i].row == row)
      return env->tls[i].set;
  return NULL;
}
