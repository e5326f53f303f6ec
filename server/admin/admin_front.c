/* admin_front.c: the admin API's row: libmicrohttpd daemons on the
 * [admin] addresses, handled by api/admin.c. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../../api/admin.h"
#include "admin_conf.h"
#include "admin_front.h"
#include "../../net/mhd.h"

struct admin_front {
  struct admin_ctx ctx; /* first: the handlers' cls */
  struct mhd_set mhd;
};

static int admin_start(struct front *fr, const struct front_env *env, struct config_errors *errs)
{
  struct admin_front *a = calloc(1, sizeof(*a));
  struct mhd_params p = {0};

  if (a == NULL) {
    config_errors_add(errs, "out of memory");
    return -1;
  }
  a->ctx.store = env->store;
  a->ctx.fleet = env->fleet;
  snprintf(a->ctx.token, sizeof(a->ctx.token), "%s", env->admin_token);
  a->ctx.max_upload_size =
      ((const struct admin_conf *)config_section(env->conf, fr->row->section))->max_upload_size;
  a->ctx.draining = &fr->draining;
  p.handler = admin_handler;
  p.cls = &a->ctx;
  p.completed = admin_completed;
  p.connection_limit = ADMIN_CONNECTION_LIMIT;
  p.timeout = DEF_TIMEOUT;
  p.memory_limit = ADMIN_MEMORY_LIMIT;
  p.threads = 1;
  /* poll(), not epoll: with libmicrohttpd 0.9.75's edge-triggered epoll,
   * a client that sends part of a large upload and closes cleanly left
   * its connection (and temporary file) until the idle timeout */
  p.poll = 1;
  p.suspend = 1; /* the event streams wait suspended */
  if (sse_hub_start(&a->ctx.sse, &fr->draining) < 0) {
    config_errors_add(errs, "cannot start the event stream's thread");
    explicit_bzero(a->ctx.token, sizeof(a->ctx.token));
    free(a);
    return -1;
  }
  if (mhd_start(fr, &a->mhd, &p, errs) < 0) {
    sse_hub_stop(&a->ctx.sse);
    sse_hub_free(&a->ctx.sse);
    explicit_bzero(a->ctx.token, sizeof(a->ctx.token));
    free(a);
    return -1;
  }
  fr->priv = a;
  return 0;
}

static void admin_quiesce(struct front *fr)
{
  struct admin_front *a = fr->priv;

  mhd_quiesce(&a->mhd);
}

static int admin_busy(struct front *fr)
{
  struct admin_front *a = fr->priv;

  return atomic_load(&a->ctx.inflight);
}

static void admin_stop(struct front *fr)
{
  struct admin_front *a = fr->priv;

  sse_hub_stop(&a->ctx.sse); /* no connection may stay suspended */
  mhd_stop(&a->mhd);
  sse_hub_free(&a->ctx.sse);
  explicit_bzero(a->ctx.token, sizeof(a->ctx.token));
  free(a);
  fr->priv = NULL;
}

const struct front_row admin_row = {.section = "admin",
                                    .proto = -1,
                                    .socktype = SOCK_STREAM,
                                    .start = admin_start,
                                    .quiesce = admin_quiesce,
                                    .busy = admin_busy,
                                    .stop = admin_stop,
                                    .conf = &admin_conf_section};
