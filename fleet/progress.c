/* progress.c: how much of its offer a device has: the byte intervals its
 * downloads delivered (TCP-acknowledged or block-confirmed), the prefix it
 * holds from byte 0, its resumes and segments. */
#include "autoconfig.h"

#include <stdio.h>
#include <string.h>

#include "../util/util.h"
#include "fleet_int.h"

/* the most a cut's counted end can fall short of what the device kept:
 * a receiver acknowledges at least every second full segment, and on
 * loopback (or with receive offload) a segment is up to 64 KiB */
#define RESUME_ACK_SLACK (256 * 1024)

/* Adds [start, end) to the offer's intervals and recomputes how far the
 * device has every byte from 0. */
void progress_add_interval(struct device *d, uint64_t start, uint64_t end)
{
  int i, j;

  if (end <= start)
    return;
  if (d->n_ival == MAX_IVALS) {
    /* keep the first intervals, which decide the contiguous prefix */
    d->n_ival--;
  }
  d->ival[d->n_ival].start = start;
  d->ival[d->n_ival].end = end;
  d->n_ival++;
  /* sort by start and merge */
  for (i = 1; i < d->n_ival; i++)
    for (j = i; j > 0 && d->ival[j].start < d->ival[j - 1].start; j--) {
      uint64_t s = d->ival[j].start, e = d->ival[j].end;
      d->ival[j] = d->ival[j - 1];
      d->ival[j - 1].start = s;
      d->ival[j - 1].end = e;
    }
  for (i = 0, j = 1; j < d->n_ival; j++) {
    if (d->ival[j].start <= d->ival[i].end) {
      if (d->ival[j].end > d->ival[i].end)
        d->ival[i].end = d->ival[j].end;
    } else {
      d->ival[++i] = d->ival[j];
    }
  }
  d->n_ival = i + 1;
  d->contiguous = d->ival[0].start == 0 ? d->ival[0].end : 0;
}

void progress_record(struct fleet *f, const char *token, uint64_t start, uint64_t bytes,
                     int complete, enum piece kind, enum proto proto, const char *addr)
{
  struct device *d;

  device_lock(f);
  f->progress_events++;
  d = token_find(f, token);
  if (d == NULL)
    goto out;
  if (kind != PIECE_BLOCK) {
    /* A piece starting a little past where a cut one was counted to
     * resumes it: TCP never acknowledged the last bytes the device kept
     * (a delayed ACK lost in its reset), and without this they would stay
     * a gap in its prefix for good. Open-ended or a segment (a module
     * resuming with request_size asks its first segment from its own
     * breakpoint: seen at 9,559 bytes past the count, percent then stuck
     * at 39 after a whole download). Only that little (a piece further
     * on is another client's split, not a resume). */
    if (d->last_interrupted && start > d->contiguous && start - d->contiguous <= RESUME_ACK_SLACK)
      progress_add_interval(d, d->contiguous, start);
    /* a piece that starts where an interrupted one left off (or before) */
    if (start > 0 && d->last_interrupted && start <= d->contiguous)
      d->resumes++;
    if (kind == PIECE_SEGMENT && complete)
      d->segments++;
    d->last_interrupted = !complete;
  }
  d->bytes_served += bytes;
  progress_add_interval(d, start, start + bytes);
  if (d->rollout != NULL) {
    d->rollout->bytes_served += bytes;
    rollout_mark(d->rollout);
  }
  snprintf(d->protocol, sizeof(d->protocol), "%s", proto_name(proto));
  if (addr != NULL && addr[0] != '\0')
    snprintf(d->addr, sizeof(d->addr), "%s", addr);
  if (d->first_seen == 0)
    d->first_seen = now_ms();
  d->last_seen = now_ms();
  device_mark(f, d); /* batched: no commit waited for */
out:
  pthread_mutex_unlock(&f->mu);
}

void progress_resumed(struct fleet *f, const char *token, uint64_t at, enum proto proto,
                      const char *addr)
{
  struct device *d;

  device_lock(f);
  d = token_find(f, token);
  if (d != NULL) {
    d->resumes++;
    /* it would not ask for `at` without the bytes before it */
    progress_add_interval(d, 0, at);
    snprintf(d->protocol, sizeof(d->protocol), "%s", proto_name(proto));
    if (addr != NULL && addr[0] != '\0')
      snprintf(d->addr, sizeof(d->addr), "%s", addr);
    device_mark(f, d);
  }
  pthread_mutex_unlock(&f->mu);
}
