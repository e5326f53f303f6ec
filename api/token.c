/* token.c: the admin bearer token. */
#include "autoconfig.h"

#include "token.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int create_token_file(const char *path, struct config_errors *errs)
{
  unsigned char raw[32];
  char line[2 * sizeof(raw) + 2];
  int fd;
  ssize_t w;

  if (RAND_bytes(raw, sizeof(raw)) != 1) {
    config_errors_add(errs, "token %s: no randomness available", path);
    return -1;
  }
  for (size_t i = 0; i < sizeof(raw); i++)
    snprintf(line + 2 * i, 3, "%02x", raw[i]);
  line[2 * sizeof(raw)] = '\n';
  line[2 * sizeof(raw) + 1] = '\0';
  OPENSSL_cleanse(raw, sizeof(raw));
  fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    config_errors_add(errs, "token %s: cannot create: %s", path, strerror(errno));
    return -1;
  }
  w = write(fd, line, strlen(line));
  OPENSSL_cleanse(line, sizeof(line));
  if (w < 0 || fsync(fd) < 0) {
    config_errors_add(errs, "token %s: cannot write: %s", path, strerror(errno));
    close(fd);
    unlink(path);
    return -1;
  }
  close(fd);
  return 0;
}

int token_load(const char *path, int create, char *out, size_t outlen, struct config_errors *errs)
{
  char buf[MAX_TOKEN_LEN + 2];
  struct stat st;
  ssize_t r;
  int fd;

  fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT && create) {
    if (create_token_file(path, errs) < 0)
      return -1;
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  }
  if (fd < 0) {
    config_errors_add(errs, "token %s: %s", path, strerror(errno));
    return -1;
  }
  /* SECURITY: whoever reads the token controls every package and device */
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    config_errors_add(errs, "token %s: not a regular file", path);
    goto fail;
  }
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    config_errors_add(errs, "token %s: group or others may access it (mode %03o); chmod 600 it",
                      path, (unsigned)(st.st_mode & 0777));
    goto fail;
  }
  r = read(fd, buf, sizeof(buf) - 1);
  if (r < 0) {
    config_errors_add(errs, "token %s: %s", path, strerror(errno));
    goto fail;
  }
  buf[r] = '\0';
  buf[strcspn(buf, "\r\n")] = '\0';
  if (strlen(buf) < 16 || strlen(buf) > MAX_TOKEN_LEN || strlen(buf) >= outlen) {
    config_errors_add(errs, "token %s: the first line must hold 16 to %d characters", path,
                      MAX_TOKEN_LEN);
    goto fail;
  }
  for (const char *p = buf; *p; p++)
    if (*p <= ' ' || *p > '~') {
      config_errors_add(errs, "token %s: only printable characters without blanks", path);
      goto fail;
    }
  memcpy(out, buf, strlen(buf) + 1);
  OPENSSL_cleanse(buf, sizeof(buf));
  close(fd);
  return 0;
fail:
  OPENSSL_cleanse(buf, sizeof(buf));
  close(fd);
  return -1;
}

int token_equal(const char *presented, size_t presented_len, const char *real)
{
  size_t n = strlen(real);

  if (presented_len != n)
    return 0;
  return CRYPTO_memcmp(presented, real, n) == 0;
}
