/* version.c: dfotad --version: the version, and each library it was built
 * with (the headers' version) and runs with (the library's own). */
#include "autoconfig.h"

#include <coap3/coap.h>
#include <event2/event.h>
#include <gnutls/gnutls.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <stdio.h>
#include <string.h>

#include "../store/backup.h"
#include "../store/store.h"
#include "cli.h"

static const char *strip(const char *s, const char *prefix)
{
  size_t n = strlen(prefix);
  return strncmp(s, prefix, n) == 0 ? s + n : s;
}

void version_print(FILE *out)
{
  unsigned mhd = MHD_VERSION;

  fprintf(out, "dfotad %s\n", PACKAGE_VERSION);
  fprintf(out, "libraries: running (built with)\n");
  fprintf(out, "  libmicrohttpd %s (%x.%x.%x)\n", MHD_get_version(), (mhd >> 24) & 0xff,
          (mhd >> 16) & 0xff, (mhd >> 8) & 0xff);
  fprintf(out, "  GnuTLS %s (%s)\n", gnutls_check_version(NULL), GNUTLS_VERSION);
  fprintf(out, "  libcoap %s (%s)\n", strip(coap_package_version(), "libcoap "),
          LIBCOAP_PACKAGE_VERSION);
#if OPENSSL_VERSION_MAJOR >= 3
  fprintf(out, "  OpenSSL %s (%s)\n", OpenSSL_version(OPENSSL_VERSION_STRING), OPENSSL_VERSION_STR);
#else
  fprintf(out, "  %s (%s)\n", OpenSSL_version(OPENSSL_VERSION), OPENSSL_VERSION_TEXT);
#endif
  fprintf(out, "  libevent %s (%s)\n", event_get_version(), EVENT__VERSION);
  fprintf(out, "  jansson %s (%s)\n", jansson_version_str(), JANSSON_VERSION);
  fprintf(out, "  %s\n", store_backend_version());
  if (store_pg_version() != NULL)
    fprintf(out, "  %s (PostgreSQL store backend)\n", store_pg_version());
}
