/* test_admission.c: the admission table: limits per key and phase, IPv6
 * by /64, a full table that evicts its idlest entry rather than refusing,
 * and releases of evicted holds that do nothing. */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "net/admission.h"
#include "unit.h"

static struct sockaddr_storage v4(const char *text)
{
  struct sockaddr_storage ss;
  struct sockaddr_in *a = (struct sockaddr_in *)&ss;

  memset(&ss, 0, sizeof(ss));
  a->sin_family = AF_INET;
  inet_pton(AF_INET, text, &a->sin_addr);
  return ss;
}

static struct sockaddr_storage v6(const char *text)
{
  struct sockaddr_storage ss;
  struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

  memset(&ss, 0, sizeof(ss));
  a->sin6_family = AF_INET6;
  inet_pton(AF_INET6, text, &a->sin6_addr);
  return ss;
}

static int take(struct admission *a, struct sockaddr_storage ss, enum adm_phase p, unsigned limit,
                struct adm_hold *h)
{
  struct adm_key k;

  adm_key_addr((struct sockaddr *)&ss, &k);
  return adm_take(a, &k, p, limit, h);
}

int main(void)
{
  struct admission *a = adm_new(16);
  struct adm_hold h[40];
  struct adm_stats st;
  struct adm_key k;
  char buf[64];

  CHECK(a != NULL);
  /* a limit per key and phase; phases apart */
  CHECK(take(a, v4("10.0.0.1"), ADM_LOGIN, 2, &h[0]) == 0);
  CHECK(take(a, v4("10.0.0.1"), ADM_LOGIN, 2, &h[1]) == 0);
  CHECK(take(a, v4("10.0.0.1"), ADM_LOGIN, 2, &h[2]) < 0 && h[2].gen == 0);
  CHECK(take(a, v4("10.0.0.1"), ADM_CONN, 2, &h[3]) == 0);
  CHECK(adm_held(a, &h[0]) == 2);
  adm_give(a, &h[0]);
  CHECK(h[0].gen == 0);
  adm_give(a, &h[0]); /* twice: nothing */
  CHECK(adm_held(a, &h[1]) == 1);
  CHECK(take(a, v4("10.0.0.1"), ADM_LOGIN, 2, &h[0]) == 0);
  /* IPv6: one /64 is one key; IPv4-mapped is the IPv4 address */
  CHECK(take(a, v6("2001:db8:1:2::1"), ADM_CONN, 2, &h[4]) == 0);
  CHECK(take(a, v6("2001:db8:1:2:ffff::9"), ADM_CONN, 2, &h[5]) == 0);
  CHECK(take(a, v6("2001:db8:1:2:1234::"), ADM_CONN, 2, &h[6]) < 0);
  CHECK(take(a, v6("2001:db8:1:3::1"), ADM_CONN, 2, &h[6]) == 0);
  CHECK(take(a, v6("::ffff:10.0.0.1"), ADM_CONN, 2, &h[7]) == 0);
  CHECK(take(a, v4("10.0.0.1"), ADM_CONN, 2, &h[8]) < 0); /* the mapped one counted */
  /* devices are keys of their own */
  adm_key_device("meter-0001", &k);
  CHECK(adm_take(a, &k, ADM_CONN, 1, &h[9]) == 0);
  CHECK(adm_take(a, &k, ADM_CONN, 1, &h[10]) < 0);
  /* full: newcomers always get in, the idlest entries go */
  for (int i = 0; i < 30; i++) {
    snprintf(buf, sizeof(buf), "192.0.2.%d", i + 1);
    CHECK(take(a, v4(buf), ADM_CONN, 1, &h[10]) == 0);
  }
  adm_stats(a, &st);
  CHECK(st.entries == 16);
  CHECK(st.evicted > 0);
  /* the holds of evicted entries give back nothing, harmlessly */
  for (int i = 0; i < 10; i++)
    adm_give(a, &h[i]);
  adm_free(a);

  /* the throttle's key: IPv6 by /64 */
  adm_throttle_key("2001:db8:1:2:3:4:5:6", buf, sizeof(buf));
  CHECK(strcmp(buf, "2001:db8:1:2::/64") == 0);
  adm_throttle_key("192.0.2.7", buf, sizeof(buf));
  CHECK(strcmp(buf, "192.0.2.7") == 0);
  {
    struct sockaddr_storage x = v4("10.1.1.1"), y = v6("::ffff:10.1.1.1"), z = v6("2001:db8::1"),
                            w = v6("2001:db8::2");
    CHECK(adm_same_host((struct sockaddr *)&x, (struct sockaddr *)&y));
    CHECK(!adm_same_host((struct sockaddr *)&z, (struct sockaddr *)&w)); /* whole addresses */
  }
  return unit_done("test_admission");
}
