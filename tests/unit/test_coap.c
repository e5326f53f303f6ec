/* test_coap.c: the CoAP front's request parser and Block2 arithmetic
 * (server/coap/coap_msg.c), and the fleet's sealed pre-shared keys
 * (fleet/psk.c): key file rules, sealing bound to the device, lookup. */
#include "autoconfig.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fleet/fleet_int.h"
#include "server/coap/coap_msg.h"
#include "unit.h"

static struct coap_optv opt(uint16_t n, const char *v)
{
  struct coap_optv o = {n, (const uint8_t *)v, strlen(v)};
  return o;
}

static void test_parse(void)
{
  struct coap_req r;
  struct coap_optv o[8];
  uint8_t blk[3] = {0x12, 0x34, 0x56};

  o[0] = opt(COAPOPT_URI_PATH, "f");
  o[1] = opt(COAPOPT_URI_PATH, "abcDEF234");
  coap_req_parse(o, 2, &r);
  CHECK(r.route == ROUTE_OFFER && strcmp(r.name, "abcDEF234") == 0 && !r.has_block2 &&
        r.bad_code == 0);
  o[2].number = COAPOPT_BLOCK2;
  o[2].value = blk;
  o[2].len = 3;
  coap_req_parse(o, 3, &r);
  CHECK(r.has_block2 && r.num == 0x12345 && r.szx == 6);
  o[3] = o[2];
  coap_req_parse(o, 4, &r);
  CHECK(r.bad_code == 402); /* Block2 twice */
  o[1] = opt(COAPOPT_URI_PATH, "../etc");
  coap_req_parse(o, 2, &r);
  CHECK(r.route == ROUTE_NONE); /* only [A-Za-z0-9] names anything */
  o[0] = opt(COAPOPT_URI_PATH, "v1");
  o[1] = opt(COAPOPT_URI_PATH, "update");
  o[2] = opt(COAPOPT_URI_QUERY, "device=dev-1");
  o[3] = opt(COAPOPT_URI_QUERY, "version=V 2");
  coap_req_parse(o, 3, &r);
  CHECK(r.route == ROUTE_CHECKIN && r.has_device && strcmp(r.device, "dev-1") == 0);
  coap_req_parse(o, 4, &r);
  CHECK(r.bad_code == 400); /* a space in a value */
  o[3] = opt(COAPOPT_URI_QUERY, "device=dev-2");
  coap_req_parse(o, 4, &r);
  CHECK(r.bad_code == 400); /* device twice */
  o[0] = opt(COAPOPT_URI_PATH, "p");
  o[1] = opt(COAPOPT_URI_PATH, "pkg1");
  o[2] = opt(COAPOPT_URI_PATH, "name.bin");
  coap_req_parse(o, 3, &r);
  CHECK(r.route == ROUTE_PACKAGE && strcmp(r.name, "pkg1") == 0);
  for (int i = 0; i < 5; i++)
    o[i] = opt(COAPOPT_URI_PATH, "p");
  coap_req_parse(o, 5, &r);
  CHECK(r.route == ROUTE_NONE);
}

static void test_plan(void)
{
  struct coap_block b;

  CHECK(coap_block_plan(0, 6, 3000, 1100, &b) == PLAN_OK && b.off == 0 && b.len == 1024 && b.more);
  CHECK(coap_block_plan(2, 6, 3000, 1100, &b) == PLAN_OK && b.off == 2048 && b.len == 952 &&
        !b.more);
  CHECK(coap_block_plan(3, 6, 3000, 1100, &b) == PLAN_PAST_END);
  CHECK(coap_block_plan(0, 7, 3000, 1100, &b) == PLAN_BAD_SZX);
  CHECK(coap_block_plan(187, 0, 3000, 1100, &b) == PLAN_OK && b.len == 8 && !b.more);
  CHECK(coap_block_plan(0, 0, 0, 1100, &b) == PLAN_OK && b.len == 0 && !b.more);
  CHECK(coap_block_plan(1, 0, 0, 1100, &b) == PLAN_PAST_END);
  /* no room for 1024: 512 at the same offset */
  CHECK(coap_block_plan(1, 6, 3000, 600, &b) == PLAN_OK && b.szx == 5 && b.num == 2 &&
        b.off == 1024 && b.len == 512);
}

static void test_psk(void)
{
  char dir[] = "/tmp/test_coap.XXXXXX", err[256], path[300], dev[DEVICE_ID_MAX + 1];
  struct fleet *f = calloc(1, sizeof(*f));
  struct device *a, *b;
  unsigned char key[PSK_MAX];
  size_t len = 0;
  char *gen = NULL, *copy;
  json_t *body;

  CHECK(mkdtemp(dir) != NULL && f != NULL);
  pthread_mutex_init(&f->mu, NULL);
  CHECK(fleet_psk_open(f, dir, err, sizeof(err)) == 0);
  snprintf(path, sizeof(path), "%s/psk.key", dir);
  {
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600 && st.st_size == 32);
  }
  CHECK(fleet_psk_open(f, dir, err, sizeof(err)) == 0); /* the same key, read back */
  chmod(path, 0640);
  CHECK(fleet_psk_open(f, dir, err, sizeof(err)) < 0); /* group may read it: refused */
  chmod(path, 0600);
  CHECK(fleet_psk_open(f, dir, err, sizeof(err)) == 0);

  a = device_new(f, "dev-a");
  b = device_new(f, "dev-b");
  body = json_pack("{s:s}", "psk", "00112233445566778899aabbccddeeff");
  CHECK(psk_body_error(f, "dev-a", body) == NULL);
  CHECK(psk_apply(f, a, body, &gen) == 0 && gen == NULL && a->psk_sealed != NULL);
  json_decref(body);
  CHECK(strstr(a->psk_sealed, "00112233445566778899aabbccddeeff") == NULL);
  CHECK(delivery_psk_lookup(f, "dev-a", 5, key, &len, dev) == 0 && len == 16 && key[15] == 0xff &&
        strcmp(dev, "dev-a") == 0);
  CHECK(delivery_psk_lookup(f, "dev-b", 5, key, &len, dev) < 0); /* no key */
  CHECK(delivery_psk_lookup(f, "dev-", 4, key, &len, dev) < 0);
  /* identities name one device */
  body = json_pack("{s:s,s:s}", "psk", "generate", "psk_identity", "dev-a");
  CHECK(psk_body_error(f, "dev-b", body) != NULL);
  json_decref(body);
  body = json_pack("{s:s,s:s}", "psk", "generate", "psk_identity", "ident-b");
  CHECK(psk_body_error(f, "dev-b", body) == NULL);
  /* 16 bytes by default: what tinydtls clients take */
  CHECK(psk_apply(f, b, body, &gen) == 0 && gen != NULL && strlen(gen) == 32);
  CHECK(delivery_psk_lookup(f, "ident-b", 7, key, &len, dev) == 0 && len == 16 &&
        strcmp(dev, "dev-b") == 0);
  free(gen);
  {
    struct fleet_limits l = {DEF_EVENTS_PER_DEVICE, DEF_REPORT_LINES, 0, DEF_AUTH_FREE, 32};
    fleet_set_limits(f, &l);
  }
  CHECK(psk_apply(f, b, body, &gen) == 0 && gen != NULL && strlen(gen) == 64);
  json_decref(body);
  CHECK(delivery_psk_lookup(f, "ident-b", 7, key, &len, dev) == 0 && len == 32 &&
        strcmp(dev, "dev-b") == 0);
  free(gen);
  /* a sealed key copied onto another device does not open there */
  copy = strdup(a->psk_sealed);
  psk_unlink(f, b);
  free(b->psk_sealed);
  b->psk_sealed = copy;
  psk_link(f, b);
  CHECK(delivery_psk_lookup(f, "ident-b", 7, key, &len, dev) < 0);
  /* bad values */
  body = json_pack("{s:s}", "psk", "0011");
  CHECK(psk_body_error(f, "dev-a", body) != NULL);
  json_decref(body);
  body = json_pack("{s:s}", "psk", "zz112233445566778899aabbccddeeff");
  CHECK(psk_body_error(f, "dev-a", body) != NULL);
  json_decref(body);
  body = json_pack("{s:s}", "psk_identity", "has space");
  CHECK(psk_body_error(f, "dev-a", body) != NULL);
  json_decref(body);
  /* null removes the key */
  body = json_pack("{s:n}", "psk");
  CHECK(psk_apply(f, a, body, &gen) == 0 && a->psk_sealed == NULL);
  json_decref(body);
  CHECK(delivery_psk_lookup(f, "dev-a", 5, key, &len, dev) < 0);

  psk_unlink(f, a);
  psk_unlink(f, b);
  device_unlink(f, a);
  device_unlink(f, b);
  device_free(a);
  device_free(b);
  unlink(path);
  rmdir(dir);
  pthread_mutex_destroy(&f->mu);
  free(f);
}

int main(void)
{
  test_parse();
  test_plan();
  test_psk();
  return unit_done("test_coap");
}
