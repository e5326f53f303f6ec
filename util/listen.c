/* listen.c: the values of the configuration that name network things:
 * sizes, listen addresses, and the public URL a listen address implies. */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int size_parse(const char *s, uint64_t *out)
{
  char *end;
  unsigned long long v;
  uint64_t mult = 1;

  if (!isdigit((unsigned char)s[0]))
    return -1;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno != 0)
    return -1;
  if (*end != '\0') {
    switch (toupper((unsigned char)*end)) {
    case 'K': mult = 1024ULL; break;
    case 'M': mult = 1024ULL * 1024; break;
    case 'G': mult = 1024ULL * 1024 * 1024; break;
    default: return -1;
    }
    if (end[1] != '\0' && !(toupper((unsigned char)end[1]) == 'B' && end[2] == '\0'))
      return -1;
  }
  if (v > UINT64_MAX / mult)
    return -1;
  *out = v * mult;
  return 0;
}

int listen_addr_parse(const char *s, struct listen_addr *out)
{
  char host[64];
  const char *colon, *port_s;
  char *end;
  unsigned long port;
  size_t hl;

  memset(out, 0, sizeof(*out));
  if (strlen(s) >= sizeof(out->text))
    return -1;
  if (s[0] == '[') {
    const char *rb = strchr(s, ']');
    if (rb == NULL || rb[1] != ':')
      return -1;
    hl = (size_t)(rb - s - 1);
    if (hl == 0 || hl >= sizeof(host))
      return -1;
    memcpy(host, s + 1, hl);
    host[hl] = '\0';
    port_s = rb + 2;
  } else {
    colon = strrchr(s, ':');
    if (colon == NULL || strchr(s, ':') != colon)
      return -1;
    hl = (size_t)(colon - s);
    if (hl == 0 || hl >= sizeof(host))
      return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    port_s = colon + 1;
  }
  if (!isdigit((unsigned char)port_s[0]))
    return -1;
  errno = 0;
  port = strtoul(port_s, &end, 10);
  if (errno != 0 || *end != '\0' || port == 0 || port > 65535)
    return -1;

  if (s[0] == '[') {
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&out->ss;
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
      return -1;
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    out->len = sizeof(*a6);
  } else {
    struct sockaddr_in *a4 = (struct sockaddr_in *)&out->ss;
    if (strcmp(host, "*") == 0)
      a4->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
      return -1;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    out->len = sizeof(*a4);
  }
  snprintf(out->text, sizeof(out->text), "%s", s);
  return 0;
}

void listen_public_url(const struct listen_addr *a, const char *scheme, char *url, size_t len)
{
  char host[64];

  if (a->ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&a->ss;
    if (IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr)) {
      if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "localhost");
      host[sizeof(host) - 1] = '\0';
      snprintf(url, len, "%s://%s:%u", scheme, host, ntohs(a6->sin6_port));
    } else {
      inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof(host));
      snprintf(url, len, "%s://[%s]:%u", scheme, host, ntohs(a6->sin6_port));
    }
  } else {
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)&a->ss;
    if (a4->sin_addr.s_addr == htonl(INADDR_ANY)) {
      if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "localhost");
      host[sizeof(host) - 1] = '\0';
    } else {
      inet_ntop(AF_INET, &a4->sin_addr, host, sizeof(host));
    }
    snprintf(url, len, "%s://%s:%u", scheme, host, ntohs(a4->sin_port));
  }
}
