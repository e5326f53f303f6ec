/* log.h: leveled logging to stderr (journald under systemd). */
#ifndef DFOTAD_LOG_H
#define DFOTAD_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
int log_enabled(enum log_level level);
int log_level_parse(const char *s, enum log_level *out);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
  do {                                                                                             \
    if (log_enabled(LOG_DEBUG))                                                                    \
      log_msg(LOG_DEBUG, __VA_ARGS__);                                                             \
  } while (0)

/* Lines a remote peer can cause: at most per_sec a second from one call
 * site; the first line after a suppressed stretch says how many went
 * unwritten. Use through log_limited(). */
struct log_limit {
  _Atomic long long sec; /* the monotonic second being counted */
  _Atomic unsigned n;    /* lines of it so far */
  _Atomic unsigned long long suppressed;
};
void log_limit_msg(struct log_limit *l, unsigned per_sec, enum log_level level, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));
#define log_limited(level, per_sec, ...)                                                           \
  do {                                                                                             \
    static struct log_limit log_limit_site_;                                                       \
    if (log_enabled(level))                                                                        \
      log_limit_msg(&log_limit_site_, (per_sec), (level), __VA_ARGS__);                            \
  } while (0)

/* Start-up failures only: logs and exits 1. */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
