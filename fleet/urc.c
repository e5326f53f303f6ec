/* urc.c: FOTA URC lines and result codes (DFOTA guide, chapter 4). */
#include "autoconfig.h"

#include "urc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
  const char *name;
  enum urc_stage stage;
} stages[] = {
    {"HTTPSTART", URC_DOWNLOAD_START}, {"COAPSTART", URC_DOWNLOAD_START},
    {"FTPSTART", URC_DOWNLOAD_START},  {"DOWNLOADING", URC_DOWNLOADING},
    {"HTTPEND", URC_DOWNLOAD_END},     {"COAPEND", URC_DOWNLOAD_END},
    {"FTPEND", URC_DOWNLOAD_END},      {"DOWNLOADED", URC_DOWNLOAD_END},
    {"RESETTING", URC_RESETTING},      {"START", URC_UPDATE_START},
    {"UPDATING", URC_UPDATING},        {"END", URC_UPDATE_END},
};

/* Reads a quoted or bare token at p into out; returns the position after
 * it and a following comma, or NULL when there is no token. */
static const char *token(const char *p, const char *end, char *out, size_t outlen, int *closed)
{
  size_t n = 0;
  int quoted;

  while (p < end && (*p == ' ' || *p == '\t'))
    p++;
  quoted = p < end && *p == '"';
  if (quoted)
    p++;
  while (p < end && *p != '"' && *p != ',' && *p != '\r' && *p != '\n') {
    if (n + 1 < outlen)
      out[n++] = *p;
    p++;
  }
  while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t'))
    n--;
  out[n] = '\0';
  *closed = !quoted || (p < end && *p == '"');
  if (quoted && p < end && *p == '"')
    p++;
  while (p < end && (*p == ' ' || *p == '\t'))
    p++;
  if (p < end && *p == ',')
    p++;
  return n > 0 ? p : NULL;
}

int urc_parse_line(const char *line, size_t len, struct urc *out)
{
  const char *end = line + len, *p, *q;
  char tok[32];
  int closed;
  int lwm2m;

  memset(out, 0, sizeof(*out));
  /* find the "FOTA" field: after +QIND: or +LWM2M: (the "+" may be lost) */
  p = NULL;
  for (q = line; q + 6 <= end; q++)
    if (strncasecmp(q, "\"FOTA\"", 6) == 0) {
      p = q + 6;
      break;
    }
  if (p == NULL)
    return -1;
  lwm2m = 0;
  for (q = line; q + 5 <= p; q++)
    if (strncasecmp(q, "LWM2M", 5) == 0)
      lwm2m = 1;
  while (p < end && (*p == ' ' || *p == '\t'))
    p++;
  if (p >= end || *p != ',')
    return -1;
  p = token(p + 1, end, tok, sizeof(tok), &closed);
  if (p == NULL || !closed)
    return -1; /* a stage cut short is no stage */
  for (size_t i = 0; i < sizeof(stages) / sizeof(stages[0]); i++)
    if (strcasecmp(tok, stages[i].name) == 0) {
      out->stage = stages[i].stage;
      snprintf(out->name, sizeof(out->name), "%s", stages[i].name);
    }
  if (out->stage == URC_NONE)
    return -1;
  /* the number, if any; LwM2M's DOWNLOADING carries "START"/"COMPLETED" */
  {
    char num[32];
    const char *r = token(p, end, num, sizeof(num), &closed);
    if (r != NULL && lwm2m && out->stage == URC_DOWNLOADING) {
      if (strcasecmp(num, "START") == 0)
        out->stage = URC_DOWNLOAD_START;
      else if (strcasecmp(num, "COMPLETED") == 0) {
        out->stage = URC_DOWNLOADING;
        out->has_number = 1;
        out->number = 100;
      }
    } else if (r != NULL && (isdigit((unsigned char)num[0]) || num[0] == '-')) {
      char *e;
      long v = strtol(num, &e, 10);
      if (*e == '\0' && v >= -1 && v < 100000) {
        out->has_number = 1;
        out->number = v;
      }
    }
  }
  /* an end without its code is not usable: we would not know the result */
  if ((out->stage == URC_DOWNLOAD_END || out->stage == URC_UPDATE_END) && !out->has_number)
    return -1;
  if ((out->stage == URC_DOWNLOADING || out->stage == URC_UPDATING) && out->has_number &&
      (out->number < 0 || out->number > 100))
    out->has_number = 0;
  return 0;
}

enum code_class code_classify(long code)
{
  switch (code) {
  case 0: return CODE_SUCCESS;
  case 712: return CODE_SEGMENT;
  case 701:
  case 702:
  case 703:
  case 704:
  case 709:
  case 711: return CODE_RETRYABLE;
  case 705:
  case 706: return CODE_OUR_MISTAKE;
  case 506:
  case 710: return CODE_PACKAGE_SUSPECT;
  case 511: return CODE_MISMATCH;
  case 504:
  case 505:
  case 507:
  case 508:
  case 509:
  case 510:
  case 707:
  case 708:
  case 590:
  case 591:
  case 592:
  case 593:
  case 594: return CODE_DEVICE_SIDE;
  default: return CODE_UNKNOWN;
  }
}

const char *code_class_name(enum code_class c)
{
  static const char *const names[] = {"success",         "segment",  "retryable",   "our_mistake",
                                      "package_suspect", "mismatch", "device_side", "unknown"};
  return (unsigned)c < sizeof(names) / sizeof(names[0]) ? names[c] : "unknown";
}

const char *code_meaning(long code)
{
  static const struct {
    long code;
    const char *text;
  } meanings[] = {
      {0, "success"},
      {701, "unknown download error"},
      {702, "server connection failed"},
      {703, "request failed"},
      {704, "download timeout"},
      {705, "URL error"},
      {706, "file does not exist"},
      {707, "failed to write data to file"},
      {708, "downloaded file too large"},
      {709, "download cancelled"},
      {710, "downloaded package check failed"},
      {711, "data call disconnected"},
      {712, "custom segmented download"},
      {504, "firmware update failed"},
      {505, "update package does not exist"},
      {506, "update package check failed"},
      {507, "decompress failed"},
      {508, "compress failed"},
      {509, "failed to copy compressed data"},
      {510, "restore failed"},
      {511, "package mismatched with the current firmware"},
      {512, "DFOTA unknown error"},
      {590, "invalid input parameter"},
      {591, "DFOTA is ongoing"},
      {592, "DFOTA is not in downloading"},
      {593, "package does not exist or failed to open"},
      {594, "memory allocation failed"},
  };
  for (size_t i = 0; i < sizeof(meanings) / sizeof(meanings[0]); i++)
    if (meanings[i].code == code)
      return meanings[i].text;
  return "unknown";
}
