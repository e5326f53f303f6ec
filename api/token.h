/* token.h: the admin API's bearer token, kept in a file only we can read. */
#ifndef DFOTAD_TOKEN_H
#define DFOTAD_TOKEN_H

#include <stddef.h>

#include "../util/config.h"

/* Reads the token (first line of path) into out. create: when the file is
 * absent, make it with a fresh random token, mode 0600. Refuses a file that
 * group or others can read or write. 0, or -1 with an error added. */
int token_load(const char *path, int create, char *out, size_t outlen, struct config_errors *errs);

/* Constant-time comparison of a presented token with the real one. */
int token_equal(const char *presented, size_t presented_len, const char *real);

#endif
