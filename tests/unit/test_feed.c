/* test_feed.c: the live event feed's ring (fleet/feed.c): ids rise, a
 * reader resumes after the id it saw, a reader that fell behind the ring is
 * told of the gap and resumes at the oldest event kept, an id from an
 * earlier run counts as a gap, a detail over the bound is cut, and a
 * waiter wakes on an event and on a kick. */
#include "autoconfig.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../fleet/feed.h"
#include "../../util/util.h"
#include "unit.h"

struct seen {
  int n;
  uint64_t first, last;
  char kind[FEED_KIND_MAX], device[65], detail[64];
};

static int take(const struct feed_event *e, void *arg)
{
  struct seen *s = arg;

  if (s->n++ == 0)
    s->first = e->id;
  s->last = e->id;
  snprintf(s->kind, sizeof(s->kind), "%s", e->kind);
  snprintf(s->device, sizeof(s->device), "%s", e->device);
  snprintf(s->detail, sizeof(s->detail), "%s", e->detail);
  return 0;
}

static void *publish_later(void *arg)
{
  (void)arg;
  usleep(50000);
  feed_publish("package.uploaded", NULL, NULL, json_pack("{s:s}", "package", "p1"));
  return NULL;
}

int main(void)
{
  struct seen s = {0};
  int gap = 0;
  uint64_t last;
  pthread_t t;
  char *big;

  CHECK(feed_last() == 0);
  CHECK(feed_read(0, 10, take, &s, &gap) == 0 && s.n == 0 && !gap);
  feed_publish("alarm", "r1", NULL, json_pack("{s:s}", "reason", "x"));
  feed_publish("device.state", "r1", "d1", NULL);
  CHECK(feed_last() == 2);
  CHECK(feed_read(0, 10, take, &s, &gap) == 2 && s.n == 2 && s.first == 1 && !gap);
  CHECK(strcmp(s.kind, "device.state") == 0 && strcmp(s.device, "d1") == 0);
  CHECK(strcmp(s.detail, "{}") == 0);
  memset(&s, 0, sizeof(s));
  CHECK(feed_read(1, 10, take, &s, &gap) == 2 && s.n == 1 && s.first == 2);

  /* a bounded batch */
  for (int i = 0; i < 10; i++)
    feed_publish("rollout", "r1", NULL, NULL);
  memset(&s, 0, sizeof(s));
  CHECK(feed_read(2, 4, take, &s, &gap) == 6 && s.n == 4 && s.first == 3);

  /* the ring wraps: a reader from id 2 missed some */
  for (int i = 0; i < FEED_RING + 5; i++)
    feed_publish("device.report", NULL, "d2", NULL);
  last = feed_last();
  CHECK(last == 12 + FEED_RING + 5);
  memset(&s, 0, sizeof(s));
  gap = 0;
  CHECK(feed_read(2, FEED_RING * 2, take, &s, &gap) == last && gap);
  CHECK(s.first == last - FEED_RING + 1 && s.n == FEED_RING);
  /* an id beyond the newest: a previous run's; a gap, from the oldest */
  memset(&s, 0, sizeof(s));
  gap = 0;
  feed_read(last + 100, 1, take, &s, &gap);
  CHECK(gap && s.first == last - FEED_RING + 1);
  /* no gap for a reader that is up to date */
  gap = 1;
  memset(&s, 0, sizeof(s));
  CHECK(feed_read(last, 10, take, &s, &gap) == last && s.n == 0 && !gap);

  /* an over-long detail is cut to a marker */
  big = malloc(FEED_DETAIL_MAX + 100);
  memset(big, 'a', FEED_DETAIL_MAX + 99);
  big[FEED_DETAIL_MAX + 99] = '\0';
  feed_publish("device.report", NULL, "d3", json_pack("{s:s}", "text", big));
  free(big);
  memset(&s, 0, sizeof(s));
  feed_read(last, 10, take, &s, &gap);
  CHECK(s.n == 1 && strcmp(s.detail, "{\"truncated\":true}") == 0);

  /* waiting: times out, wakes on an event */
  last = feed_last();
  {
    int64_t t0 = mono_ms();
    CHECK(feed_wait(last, 100) == last && mono_ms() - t0 >= 90);
  }
  pthread_create(&t, NULL, publish_later, NULL);
  {
    int64_t t0 = mono_ms();
    CHECK(feed_wait(last, 5000) == last + 1 && mono_ms() - t0 < 4000);
  }
  pthread_join(t, NULL);
  return unit_done("test_feed");
}
