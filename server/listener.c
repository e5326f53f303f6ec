/* listener.c: binding the fronts' sockets and handing them over on reload.
 * We bind the sockets ourselves: before dropping privileges, and so that a
 * reload can pass a socket from an old instance to a new one without
 * refusing a single connection. */
#include "autoconfig.h"

#include "listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../util/log.h"
#include "fronts.h"

static const struct listen_set *addresses(const struct config *c, const struct front_row *row)
{
  static const struct listen_set none;
  const struct front_conf *fc = front_conf_of(c, row);

  return fc != NULL ? &fc->listen : &none;
}

static int bind_socket(const struct listen_addr *a, int type, struct config_errors *errs)
{
  int fd, one = 1;

  fd = socket(a->ss.ss_family, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    config_errors_add(errs, "listen %s: socket: %s", a->text, strerror(errno));
    return -1;
  }
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (a->ss.ss_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 ||
      (type == SOCK_STREAM && listen(fd, SOMAXCONN) < 0)) {
    config_errors_add(errs, "listen %s: %s", a->text, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

/* The socket an old front of the same row has for that address, or -1;
 * *from: that front. */
static int reusable(const struct listener_set *old, const struct front_row *row, const char *text,
                    struct front **from)
{
  for (struct front *f = old ? old->head : NULL; f; f = f->next)
    if (f->row == row)
      for (int i = 0; i < f->n; i++)
        if (f->fd[i] >= 0 && strcmp(f->addr[i].text, text) == 0) {
          *from = f;
          return f->fd[i];
        }
  return -1;
}

/* A socket borrowed from an older instance is that one's to close until
 * the new one takes over. */
static int owned(const struct front *f, int i) { return f->fd[i] >= 0 && !f->borrowed[i]; }

static void close_owned(struct front *f)
{
  for (int i = 0; i < f->n; i++)
    if (owned(f, i))
      close(f->fd[i]);
}

void listeners_discard(struct listener_set *set)
{
  while (set->head) {
    struct front *f = set->head;
    set->head = f->next;
    close_owned(f);
    free(f);
  }
}

int listeners_bind(const struct config *c, const struct listener_set *old, struct listener_set *out,
                   struct config_errors *errs)
{
  struct front **tail = &out->head;
  int before = errs->n;

  out->head = NULL;
  for (const struct front_row *const *row = fronts_table; *row; row++) {
    const struct listen_set *ls = addresses(c, *row);
    struct front *f;
    if (ls->n == 0)
      continue;
    f = calloc(1, sizeof(*f));
    if (f == NULL) {
      config_errors_add(errs, "out of memory");
      break;
    }
    f->row = *row;
    f->n = ls->n;
    for (int i = 0; i < ls->n; i++) {
      struct front *from = NULL;
      f->addr[i] = ls->addr[i];
      f->fd[i] = -1;
      if ((*row)->socktype == 0)
        continue; /* the front binds itself */
      f->fd[i] = reusable(old, *row, ls->addr[i].text, &from);
      f->borrowed[i] = f->fd[i] >= 0;
      if (f->fd[i] < 0)
        f->fd[i] = bind_socket(&ls->addr[i], (*row)->socktype, errs);
    }
    *tail = f;
    tail = &f->next;
  }
  if (errs->n != before) {
    listeners_discard(out);
    return -1;
  }
  return 0;
}

static void stop_one(struct front *f)
{
  if (f->priv != NULL)
    f->row->stop(f);
  close_owned(f);
  free(f);
}

int listeners_start(struct listener_set *set, const struct front_env *env, struct listener_set *old,
                    struct listener_set *retired, struct config_errors *errs)
{
  struct front *f;

  for (f = set->head; f; f = f->next)
    if (f->row->start(f, env, errs) < 0)
      goto undo;
  /* committed: the new fronts own the sockets they share with the old
   * ones, which stop taking new work and finish what they are doing */
  for (f = set->head; f; f = f->next)
    for (int i = 0; i < f->n; i++)
      if (f->borrowed[i]) {
        for (struct front *o = old ? old->head : NULL; o; o = o->next)
          for (int j = 0; j < o->n; j++)
            if (o->fd[j] == f->fd[i])
              o->borrowed[j] = 1; /* no longer its to close */
        f->borrowed[i] = 0;
      }
  if (old != NULL)
    listeners_quiesce(old, retired);
  return 0;
undo:
  while (set->head) {
    f = set->head;
    set->head = f->next;
    stop_one(f);
  }
  return -1;
}

void listeners_quiesce(struct listener_set *set, struct listener_set *retired)
{
  while (set->head) {
    struct front *f = set->head;
    set->head = f->next;
    atomic_store(&f->draining, 1);
    if (f->priv != NULL)
      f->row->quiesce(f);
    f->next = retired->head;
    retired->head = f;
  }
}

int listeners_reap(struct listener_set *retired, int force)
{
  struct front **pp = &retired->head;
  int left = 0;

  while (*pp) {
    struct front *f = *pp;
    if (force || f->priv == NULL || f->row->busy(f) == 0) {
      *pp = f->next;
      stop_one(f);
    } else {
      left++;
      pp = &f->next;
    }
  }
  return left;
}

void listeners_tick(struct listener_set *set, int force)
{
  for (struct front *f = set->head; f; f = f->next)
    if (f->priv != NULL && f->row->tick != NULL)
      f->row->tick(f, force);
}

void listeners_bases(const struct config *c, const char *bases[PROTO_COUNT])
{
  for (int p = 0; p < PROTO_COUNT; p++)
    bases[p] = "";
  for (const struct front_row *const *row = fronts_table; *row; row++) {
    const struct front_conf *fc = front_conf_of(c, *row);
    if ((*row)->proto >= 0 && fc != NULL && fc->listen.n > 0)
      bases[(*row)->proto] = fc->public_url;
  }
}
