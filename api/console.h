/* console.h: the operator's console (a dashboard at "/") and the OpenAPI
 * description of the admin API, built into the binary from api/console/
 * and api/openapi.json by api/console/embed.sh (no files to install). */
#ifndef DFOTAD_CONSOLE_H
#define DFOTAD_CONSOLE_H

#include <stddef.h>

struct MHD_Connection;

struct console_asset {
  const char *url, *type;
  const unsigned char *data;
  size_t len;
};
/* generated: ends with an entry whose url is NULL */
extern const struct console_asset console_assets[];

/* The asset served at url, or NULL. */
const struct console_asset *console_find(const char *url);
/* Queues the asset (GET or HEAD) with a strict Content-Security-Policy. */
int console_reply(struct MHD_Connection *c, const struct console_asset *a, const char *method);

#endif
