/* front.h: what every request handler (device fronts and admin API) is
 * given: a copy of the settings it needs, taken when its listener started,
 * so that a reload never changes them under a request in flight. */
#ifndef DFOTAD_FRONT_H
#define DFOTAD_FRONT_H

#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "limits.h"

struct store;
struct fleet;

enum front_kind { FRONT_HTTP, FRONT_HTTPS, FRONT_ADMIN };

struct front_ctx {
  enum front_kind kind;
  struct store *store;
  atomic_int inflight;        /* responses being sent by this listener */
  atomic_int *total_inflight; /* the same, daemon-wide */
  atomic_int draining;        /* replaced by a reload: ask clients to close */
  struct fleet *fleet;
  enum client_auth client_auth; /* https */
  char token_header[64];        /* the device credential's header */
  /* admin */
  char token[MAX_TOKEN_LEN + 1];
  uint64_t max_upload_size;
  char http_url[200], https_url[200]; /* public bases; "" when none */
};

static inline void front_begin(struct front_ctx *f)
{
  atomic_fetch_add(&f->inflight, 1);
  atomic_fetch_add(f->total_inflight, 1);
}

static inline void front_end(struct front_ctx *f)
{
  atomic_fetch_sub(&f->inflight, 1);
  atomic_fetch_sub(f->total_inflight, 1);
}

#endif
