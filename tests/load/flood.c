/* flood.c: many hostile or slow HTTP clients from one process, for the
 * flood suite (tests/integration/flood.sh) and the benchmark
 * (tests/bench/flood.sh). Loopback only: the host must be 127.0.0.1 or ::1.
 *
 *   flood MODE -p PORT -u PATH [-n CONNS] [options]
 *
 * Modes:
 *   slow    GET PATH and read the body at -r bytes a second per connection
 *           (a cellular module), each with a -b byte receive buffer. Every
 *           body byte is compared with -f FILE (from the Range start), so a
 *           finished download is byte-exact or counted as a mismatch.
 *   loris   send the request one byte every -i seconds, never finishing the
 *           headers; counts how long the server takes to close each.
 *   noread  send the request (with -c: Connection: close) and never read.
 *
 * Options: -h HOST (127.0.0.1), -t SECONDS run (60), -C CONNECTS/s (2000),
 * -R START-END (a Range), -c (Connection: close), -i SECONDS (loris, 3),
 * -H "Name: value" (an extra header), -w SECONDS (stall window, 30: a slow
 * download still open that received nothing for that long is "stalled"),
 * -s ADDRESS (the source address: another loopback address, 127.0.0.2,
 * to come from a second client address).
 *
 * At the end one line of key=value figures on stdout; exit 0 (the caller
 * asserts on the figures). Every connection and the run itself are bounded
 * in time; the run ends early once every connection has ended. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 60000
#define HDR_MAX 2048

enum mode { M_SLOW, M_LORIS, M_NOREAD };
enum st { S_IDLE, S_CONNECTING, S_HEADERS, S_BODY, S_DONE, S_CLOSED, S_FAILED };

struct conn {
  int fd;
  enum st st;
  int status;
  int64_t clen;      /* Content-Length, -1 unknown */
  int64_t got;       /* body bytes */
  int64_t last_rx;   /* ms, last byte received */
  int64_t opened;    /* ms, connected */
  int64_t closed;    /* ms, closed by the server */
  size_t sent;       /* request bytes sent (loris) */
  int64_t next_send; /* loris */
  uint16_t hlen;
  char *hdr; /* header bytes until the blank line */
};

static enum mode mode;
static const char *host = "127.0.0.1", *path = "/", *file, *range, *extra;
static int port, nconns = 1, seconds = 60, connect_rate = 2000, rate = 512, rcvbuf = 0;
static int loris_interval = 3, conn_close, stall_window = 30;
static struct conn *cs;
static const unsigned char *expect;
static int64_t expect_len, range_start;
static char req[4096];
static size_t req_len;
static struct sockaddr_storage sa, src;
static socklen_t salen;
static const char *source;
static long mismatch, server_closed, resets, connect_fail, other_status;

static int64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *m)
{
  fprintf(stderr, "flood: %s\n", m);
  exit(2);
}

static void usage(void)
{
  fprintf(stderr,
          "usage: flood slow|loris|noread -p PORT -u PATH [-n N] [-r B/s] [-b RCVBUF] "
          "[-t S] [-C N/s] [-f FILE] [-R A-B] [-c] [-i S] [-H HDR] [-w S] [-h HOST] [-s SRC]\n");
  exit(2);
}

static void build_request(void)
{
  int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: flood\r\n",
                   path, host, port);
  if (range)
    n += snprintf(req + n, sizeof(req) - (size_t)n, "Range: bytes=%s\r\n", range);
  if (conn_close)
    n += snprintf(req + n, sizeof(req) - (size_t)n, "Connection: close\r\n");
  if (extra)
    n += snprintf(req + n, sizeof(req) - (size_t)n, "%s\r\n", extra);
  n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
  if (n >= (int)sizeof(req))
    die("request too long");
  req_len = (size_t)n;
}

static void conn_end(struct conn *c, enum st st, int64_t now)
{
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  c->st = st;
  c->closed = now;
  free(c->hdr);
  c->hdr = NULL;
}

static void open_one(int ep, struct conn *c)
{
  struct epoll_event ev = {0};
  int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

  if (fd < 0) {
    connect_fail++;
    c->st = S_FAILED;
    return;
  }
  if (rcvbuf > 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  if (source != NULL && bind(fd, (struct sockaddr *)&src, salen) < 0) {
    close(fd);
    connect_fail++;
    c->st = S_FAILED;
    return;
  }
  if (connect(fd, (struct sockaddr *)&sa, salen) < 0 && errno != EINPROGRESS) {
    close(fd);
    connect_fail++;
    c->st = S_FAILED;
    return;
  }
  c->fd = fd;
  c->st = S_CONNECTING;
  c->clen = -1;
  ev.events = EPOLLOUT | EPOLLRDHUP;
  ev.data.ptr = c;
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

/* Parses the header block once complete: status and Content-Length. */
static void parse_headers(struct conn *c)
{
  char *p = c->hdr, *end = strstr(c->hdr, "\r\n\r\n");

  c->status = 0;
  if (strncmp(p, "HTTP/1.", 7) == 0)
    c->status = atoi(p + 9);
  for (char *l = strstr(p, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n"))
    if (strncasecmp(l + 2, "Content-Length:", 15) == 0)
      c->clen = strtoll(l + 17, NULL, 10);
}

/* Body bytes b[0..n) at c->got: compared with the expected file. */
static void body(struct conn *c, const char *b, size_t n)
{
  if (expect != NULL && c->status / 100 == 2) {
    int64_t off = range_start + c->got;
    if (off + (int64_t)n > expect_len || memcmp(expect + off, b, n) != 0)
      mismatch++;
  }
  c->got += (int64_t)n;
}

/* Reads at most budget bytes. Returns bytes read. */
static long read_some(struct conn *c, long budget, int64_t now)
{
  char buf[65536];
  long total = 0;

  while (budget > 0 && c->fd >= 0) {
    size_t want = (size_t)(budget < (long)sizeof(buf) ? budget : (long)sizeof(buf));
    ssize_t r = recv(c->fd, buf, want, MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    if (r <= 0) {
      if (r < 0)
        resets++;
      else
        server_closed++;
      conn_end(c, S_CLOSED, now);
      break;
    }
    total += r;
    budget -= r;
    c->last_rx = now;
    if (c->st == S_HEADERS) {
      size_t take = (size_t)r, already = c->hlen; /* header bytes before this read */
      char *e;
      if (c->hlen + take > HDR_MAX - 1)
        take = HDR_MAX - 1 - c->hlen;
      memcpy(c->hdr + c->hlen, buf, take);
      c->hlen = (uint16_t)(c->hlen + take);
      c->hdr[c->hlen] = '\0';
      e = strstr(c->hdr, "\r\n\r\n");
      if (e == NULL) {
        if (c->hlen >= HDR_MAX - 1) {
          other_status++;
          conn_end(c, S_FAILED, now);
        }
        continue;
      }
      parse_headers(c);
      if (c->status != 200 && c->status != 206) {
        if (other_status++ < 3)
          fprintf(stderr, "flood: unexpected answer: %.80s\n", c->hdr);
      }
      c->st = S_BODY;
      size_t hdr_bytes = (size_t)(e + 4 - c->hdr);
      size_t off = hdr_bytes - already; /* where the body starts in buf */
      free(c->hdr);
      c->hdr = NULL;
      if ((size_t)r > off)
        body(c, buf + off, (size_t)r - off);
    } else {
      body(c, buf, (size_t)r);
    }
    if (c->st == S_BODY && c->clen >= 0 && c->got >= c->clen)
      conn_end(c, S_DONE, now);
  }
  return total;
}

static void on_event(int ep, struct conn *c, uint32_t events, int64_t now)
{
  if (c->st == S_CONNECTING) {
    int err = 0;
    socklen_t l = sizeof(err);
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err != 0 || (events & (EPOLLERR | EPOLLHUP))) {
      connect_fail++;
      conn_end(c, S_FAILED, now);
      return;
    }
    c->opened = now;
    c->last_rx = now;
    if (mode == M_LORIS) {
      /* the request line and a header at once, then a byte at a time */
      size_t first = req_len - 4;
      if (send(c->fd, req, first, MSG_NOSIGNAL) < 0) {
        connect_fail++;
        conn_end(c, S_FAILED, now);
        return;
      }
      c->sent = first;
      c->next_send = now + loris_interval * 1000;
    } else if (send(c->fd, req, req_len, MSG_NOSIGNAL) != (ssize_t)req_len) {
      connect_fail++;
      conn_end(c, S_FAILED, now);
      return;
    }
    c->st = S_HEADERS;
    c->hdr = calloc(1, HDR_MAX);
    if (c->hdr == NULL)
      die("out of memory");
    struct epoll_event ev = {0};
    ev.data.ptr = c;
    /* slow readers are read by the clock; the others only watch for the end */
    ev.events = EPOLLRDHUP | (mode == M_SLOW ? 0 : EPOLLIN);
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    return;
  }
  if (mode == M_LORIS && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
    /* anything from the server (an error answer or the close) ends it */
    char buf[4096];
    while (recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
      ;
    server_closed++;
    conn_end(c, S_CLOSED, now);
    return;
  }
  if (mode == M_NOREAD && (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
    server_closed++;
    conn_end(c, S_CLOSED, now);
    return;
  }
  if (mode == M_NOREAD && (events & EPOLLIN)) {
    /* data waits in the buffer unread: stop watching it */
    struct epoll_event ev = {0};
    ev.data.ptr = c;
    ev.events = EPOLLRDHUP;
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
  }
  if (mode == M_SLOW && (events & (EPOLLHUP | EPOLLERR)) && c->fd >= 0) {
    read_some(c, 1 << 20, now); /* what is left, then the end */
  }
}

static int cmp_i64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
  struct rlimit rl;
  struct epoll_event evs[256];
  int ep, opt, opened = 0;
  int64_t start, end, next_tick;
  unsigned tick = 0;

  if (argc < 2)
    usage();
  if (strcmp(argv[1], "slow") == 0)
    mode = M_SLOW;
  else if (strcmp(argv[1], "loris") == 0)
    mode = M_LORIS;
  else if (strcmp(argv[1], "noread") == 0)
    mode = M_NOREAD;
  else
    usage();
  optind = 2;
  while ((opt = getopt(argc, argv, "h:p:u:n:r:b:t:C:f:R:ci:H:w:s:")) != -1) {
    switch (opt) {
    case 'h': host = optarg; break;
    case 'p': port = atoi(optarg); break;
    case 'u': path = optarg; break;
    case 'n': nconns = atoi(optarg); break;
    case 'r': rate = atoi(optarg); break;
    case 'b': rcvbuf = atoi(optarg); break;
    case 't': seconds = atoi(optarg); break;
    case 'C': connect_rate = atoi(optarg); break;
    case 'f': file = optarg; break;
    case 'R': range = optarg; break;
    case 'c': conn_close = 1; break;
    case 'i': loris_interval = atoi(optarg); break;
    case 'H': extra = optarg; break;
    case 'w': stall_window = atoi(optarg); break;
    case 's': source = optarg; break;
    default: usage();
    }
  }
  if (port <= 0 || port > 65535 || nconns < 1 || nconns > MAX_CONNS || seconds < 1 ||
      seconds > 3600 || connect_rate < 1 || rate < 1 || loris_interval < 1)
    usage();
  /* SECURITY: a load generator aimed only at this machine */
  memset(&sa, 0, sizeof(sa));
  if (strcmp(host, "127.0.0.1") == 0) {
    struct sockaddr_in *a = (struct sockaddr_in *)&sa;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, host, &a->sin_addr);
    salen = sizeof(*a);
  } else if (strcmp(host, "::1") == 0) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&sa;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    inet_pton(AF_INET6, host, &a->sin6_addr);
    salen = sizeof(*a);
  } else {
    die("loopback only: -h 127.0.0.1 or ::1");
  }
  if (source != NULL) {
    /* SECURITY: another loopback address only */
    memset(&src, 0, sizeof(src));
    if (sa.ss_family == AF_INET) {
      struct sockaddr_in *a = (struct sockaddr_in *)&src;
      a->sin_family = AF_INET;
      if (inet_pton(AF_INET, source, &a->sin_addr) != 1 || (ntohl(a->sin_addr.s_addr) >> 24) != 127)
        die("-s: a 127.x.y.z address only");
    } else {
      die("-s: with -h 127.0.0.1 only");
    }
  }
  if (file) {
    int fd = open(file, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
      die("cannot open -f file");
    expect_len = st.st_size;
    expect = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (expect == MAP_FAILED)
      die("cannot map -f file");
    close(fd);
  }
  if (range)
    range_start = strtoll(range, NULL, 10);
  /* room for every connection */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)nconns + 64) {
    rl.rlim_cur = rl.rlim_max < (rlim_t)nconns + 64 ? rl.rlim_max : (rlim_t)nconns + 64;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  build_request();
  cs = calloc((size_t)nconns, sizeof(*cs));
  if (cs == NULL)
    die("out of memory");
  for (int i = 0; i < nconns; i++)
    cs[i].fd = -1;
  ep = epoll_create1(EPOLL_CLOEXEC);
  start = now_ms();
  end = start + (int64_t)seconds * 1000;
  next_tick = start;
  for (;;) {
    int64_t now = now_ms();
    int n;
    if (now >= end)
      break;
    /* connect at connect_rate a second */
    while (opened < nconns && opened < (int)((now - start + 1) * connect_rate / 1000 + 1))
      open_one(ep, &cs[opened++]);
    n = epoll_wait(ep, evs, 256, 10);
    now = now_ms();
    for (int i = 0; i < n; i++)
      on_event(ep, evs[i].data.ptr, evs[i].events, now);
    if (now < next_tick)
      continue;
    next_tick += 100;
    tick++;
    /* every connection opened and ended (finished, or closed by the
     * server): nothing left to measure, so the run ends before -t */
    if (opened == nconns) {
      int open_now = 0;
      for (int i = 0; i < opened && !open_now; i++)
        open_now = cs[i].fd >= 0;
      if (!open_now)
        break;
    }
    /* every 100 ms a tenth of the connections reads its second's worth, or
     * sends its next header byte */
    for (int i = (int)(tick % 10); i < opened; i += 10) {
      struct conn *c = &cs[i];
      if (c->fd < 0)
        continue;
      if (mode == M_SLOW && (c->st == S_HEADERS || c->st == S_BODY))
        read_some(c, rate, now);
      if (mode == M_LORIS && c->st == S_HEADERS && now >= c->next_send && c->sent < req_len - 2) {
        /* never the final CRLF */
        if (send(c->fd, req + c->sent, 1, MSG_NOSIGNAL) == 1)
          c->sent++;
        c->next_send = now + loris_interval * 1000;
      }
    }
  }
  /* figures */
  {
    int64_t now = now_ms();
    long connected = 0, headers = 0, done = 0, open_now = 0, stalled = 0, body_open = 0;
    long long bytes = 0;
    int64_t *life = calloc((size_t)opened + 1, sizeof(int64_t));
    long nl = 0;
    for (int i = 0; i < opened; i++) {
      struct conn *c = &cs[i];
      if (c->opened)
        connected++;
      if (c->st == S_BODY || c->st == S_DONE || (c->st == S_CLOSED && c->status))
        headers++;
      if (c->st == S_DONE)
        done++;
      if (c->fd >= 0) {
        open_now++;
        if (c->st == S_BODY) {
          body_open++;
          if (now - c->last_rx > (int64_t)stall_window * 1000)
            stalled++;
        }
      }
      if (c->st == S_CLOSED && c->opened && life)
        life[nl++] = c->closed - c->opened;
      bytes += c->got;
    }
    if (life && nl)
      qsort(life, (size_t)nl, sizeof(int64_t), cmp_i64);
    printf("mode=%s conns=%d attempted=%d connected=%ld connect_fail=%ld headers=%ld "
           "bad_status=%ld done=%ld open=%ld receiving=%ld stalled=%ld server_closed=%ld "
           "resets=%ld mismatch=%ld bytes=%lld closed_ms_median=%lld closed_ms_max=%lld\n",
           argv[1], nconns, opened, connected, connect_fail, headers, other_status, done, open_now,
           body_open - stalled, stalled, server_closed, resets, mismatch, bytes,
           nl ? (long long)life[nl / 2] : -1LL, nl ? (long long)life[nl - 1] : -1LL);
    fflush(stdout);
    free(life);
  }
  return 0;
}
