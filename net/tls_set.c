/* tls_set.c: TLS sets and the slot of process-wide installation
 * (tls_set.h). */
#include "autoconfig.h"

#include "tls_set.h"

#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "tls_gnutls.h"
#include "tls_openssl.h"

static atomic_ulong generations;

struct tls_set *tls_set_build(const struct tls_conf *tc, const char *section,
                              enum tls_adapter adapter, struct config_errors *errs)
{
  struct tls_set *s = calloc(1, sizeof(*s));
  int before = errs->n;

  if (s == NULL) {
    config_errors_add(errs, "[%s] TLS: out of memory", section);
    return NULL;
  }
  atomic_init(&s->refs, 1);
  s->generation = atomic_fetch_add(&generations, 1) + 1;
  snprintf(s->section, sizeof(s->section), "%s", section);
  s->adapter = adapter;
  s->store = tls_store_load(tc, section, errs);
  if (s->store == NULL)
    goto fail;
  switch (adapter) {
  case TLS_ADAPTER_GNUTLS: s->gnutls = tls_gnutls_build(s->store, section, errs); break;
  case TLS_ADAPTER_OPENSSL: s->ssl_ctx = tls_openssl_server_ctx(s->store, section, errs); break;
  case TLS_ADAPTER_DTLS:
  case TLS_ADAPTER_NONE: break;
  }
  if (errs->n != before)
    goto fail;
  log_debug("tls: [%s] set %lu built (%d server names)", section, s->generation, s->store->n_sni);
  return s;
fail:
  if (errs->n == before)
    config_errors_add(errs, "[%s] TLS: cannot build its certificates", section);
  tls_set_unref(s);
  return NULL;
}

struct tls_set *tls_set_ref(struct tls_set *s)
{
  if (s != NULL)
    atomic_fetch_add(&s->refs, 1);
  return s;
}

void tls_set_unref(struct tls_set *s)
{
  if (s == NULL || atomic_fetch_sub(&s->refs, 1) > 1)
    return;
  log_debug("tls: [%s] set %lu retired", s->section, s->generation);
  tls_gnutls_free(s->gnutls);
  SSL_CTX_free(s->ssl_ctx);
  tls_store_free(s->store);
  free(s);
}

/* ---- the slot ------------------------------------------------------------ */

struct tls_slot_user {
  struct tls_set *mine, *prev; /* what it installed, what was installed before */
  struct tls_set **held;       /* every set installed while it lives */
  int n, cap;
  struct tls_slot_user *next;
};

/* u holds s from now on; mu held. 0 or -1. */
static int hold(struct tls_slot_user *u, struct tls_set *s)
{
  if (s == NULL)
    return 0;
  for (int i = 0; i < u->n; i++)
    if (u->held[i] == s)
      return 0;
  if (u->n == u->cap) {
    int cap = u->cap ? u->cap * 2 : 4;
    struct tls_set **h = realloc(u->held, (size_t)cap * sizeof(*h));
    if (h == NULL)
      return -1;
    u->held = h;
    u->cap = cap;
  }
  u->held[u->n++] = tls_set_ref(s);
  return 0;
}

/* Makes s the installed set; mu held. Every user holds it. */
static int install(struct tls_slot *slot, struct tls_set *s)
{
  struct tls_set *old;

  for (struct tls_slot_user *u = slot->users; u; u = u->next)
    if (hold(u, s) < 0)
      return -1;
  old = atomic_exchange(&slot->installed, tls_set_ref(s));
  tls_set_unref(old);
  return 0;
}

struct tls_slot_user *tls_slot_join(struct tls_slot *slot, struct tls_set *set)
{
  struct tls_slot_user *u = calloc(1, sizeof(*u));

  if (u == NULL)
    return NULL;
  pthread_mutex_lock(&slot->mu);
  u->mine = set;
  u->prev = atomic_load(&slot->installed);
  if (hold(u, u->prev) < 0) {
    pthread_mutex_unlock(&slot->mu);
    free(u);
    return NULL;
  }
  u->next = slot->users;
  slot->users = u;
  if (install(slot, set) < 0) {
    pthread_mutex_unlock(&slot->mu);
    tls_slot_leave(slot, u);
    return NULL;
  }
  pthread_mutex_unlock(&slot->mu);
  return u;
}

void tls_slot_leave(struct tls_slot *slot, struct tls_slot_user *u)
{
  if (u == NULL)
    return;
  pthread_mutex_lock(&slot->mu);
  for (struct tls_slot_user **pp = &slot->users; *pp; pp = &(*pp)->next)
    if (*pp == u) {
      *pp = u->next;
      break;
    }
  /* never replaced: a reload undone; the set before comes back (u holds it) */
  if (u->mine != NULL && atomic_load(&slot->installed) == u->mine)
    install(slot, u->prev);
  pthread_mutex_unlock(&slot->mu);
  for (int i = 0; i < u->n; i++)
    tls_set_unref(u->held[i]);
  free(u->held);
  free(u);
}

void tls_slot_clear(struct tls_slot *slot)
{
  pthread_mutex_lock(&slot->mu);
  tls_set_unref(atomic_exchange(&slot->installed, NULL));
  pthread_mutex_unlock(&slot->mu);
}
