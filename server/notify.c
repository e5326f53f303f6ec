/* notify.c: tells systemd (Type=notify) how dfotad is doing, with the
 * documented datagram protocol of sd_notify(3): one AF_UNIX datagram of
 * "KEY=VALUE" lines to $NOTIFY_SOCKET ("@name" for an abstract socket).
 * Without $NOTIFY_SOCKET every call does nothing. */
#include "autoconfig.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../util/log.h"
#include "cli.h"

static void notify_send(const char *msg)
{
  const char *path = getenv("NOTIFY_SOCKET");
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  size_t len;
  socklen_t salen;
  int fd;

  if (path == NULL || (path[0] != '/' && path[0] != '@'))
    return;
  len = strlen(path);
  if (len >= sizeof(sa.sun_path)) {
    log_warn("NOTIFY_SOCKET: path too long");
    return;
  }
  memcpy(sa.sun_path, path, len);
  if (path[0] == '@')
    sa.sun_path[0] = '\0'; /* abstract namespace */
  salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));
  fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return;
  if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0)
    log_warn("NOTIFY_SOCKET %s: %s", path, strerror(errno));
  close(fd);
}

void notify_ready(void) { notify_send("READY=1\nSTATUS=serving"); }

void notify_reloading(void)
{
  struct timespec ts;
  char msg[96];

  clock_gettime(CLOCK_MONOTONIC, &ts);
  snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
           (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
  notify_send(msg);
}

void notify_stopping(void) { notify_send("STOPPING=1"); }

void notify_watchdog(void)
{
  static int64_t interval_ms = -1, last;
  struct timespec ts;
  int64_t now;

  if (interval_ms < 0) {
    const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    long long us = usec ? atoll(usec) : 0;
    interval_ms = 0;
    if (us > 0 && (pid == NULL || atoll(pid) == (long long)getpid()))
      interval_ms = us / 2000; /* half the timeout, as sd_watchdog_enabled(3) advises */
  }
  if (interval_ms == 0)
    return;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  if (last != 0 && now - last < interval_ms)
    return;
  last = now;
  notify_send("WATCHDOG=1");
}
