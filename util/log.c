/* log.c: one line per message, "TIME LEVEL: text", written with a single
 * write() so that lines from several threads never interleave. */
#include "autoconfig.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static atomic_int current_level = LOG_INFO;
static const char *const names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level level) { atomic_store(&current_level, (int)level); }

int log_enabled(enum log_level level) { return (int)level <= atomic_load(&current_level); }

int log_level_parse(const char *s, enum log_level *out)
{
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (strcmp(s, names[i]) == 0) {
      *out = (enum log_level)i;
      return 0;
    }
  return -1;
}

static void vlog(enum log_level level, const char *fmt, va_list ap)
{
  char buf[2048];
  struct timespec ts;
  struct tm tm;
  size_t n;
  int r;

  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  r = snprintf(buf + n, sizeof(buf) - n, ".%03ldZ %s: ", ts.tv_nsec / 1000000L, names[level]);
  if (r > 0)
    n += (size_t)r;
  r = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
  if (r > 0)
    n += (size_t)r;
  if (n > sizeof(buf) - 2)
    n = sizeof(buf) - 2;
  buf[n++] = '\n';
  if (write(STDERR_FILENO, buf, n) < 0) {
    /* nowhere left to report it */
  }
}

void log_msg(enum log_level level, const char *fmt, ...)
{
  va_list ap;

  if (!log_enabled(level))
    return;
  va_start(ap, fmt);
  vlog(level, fmt, ap);
  va_end(ap);
}

void log_limit_msg(struct log_limit *l, unsigned per_sec, enum log_level level, const char *fmt,
                   ...)
{
  struct timespec ts;
  long long now, was;
  unsigned long long skipped;
  char text[1536];
  va_list ap;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  now = (long long)ts.tv_sec;
  was = atomic_load(&l->sec);
  if (was != now && atomic_compare_exchange_strong(&l->sec, &was, now))
    atomic_store(&l->n, 0);
  if (atomic_fetch_add(&l->n, 1) >= per_sec) {
    atomic_fetch_add(&l->suppressed, 1);
    return;
  }
  skipped = atomic_exchange(&l->suppressed, 0);
  va_start(ap, fmt);
  vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  if (skipped > 0)
    log_msg(level, "%s (%llu such lines suppressed before)", text, skipped);
  else
    log_msg(level, "%s", text);
}

void fatal(const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  vlog(LOG_ERROR, fmt, ap);
  va_end(ap);
  exit(1);
}
