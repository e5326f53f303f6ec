/* urc.h: the FOTA URC lines a module prints (read by its host and posted to
 * us), and what the Quectel result codes mean for a server. */
#ifndef DFOTAD_URC_H
#define DFOTAD_URC_H

#include <stddef.h>

enum urc_stage {
  URC_NONE = 0,
  URC_DOWNLOAD_START, /* HTTPSTART, COAPSTART, FTPSTART, LwM2M DOWNLOADING,START */
  URC_DOWNLOADING,    /* DOWNLOADING,<percent> */
  URC_DOWNLOAD_END,   /* HTTPEND,<err>, COAPEND, FTPEND, LwM2M DOWNLOADED,<err> */
  URC_RESETTING,
  URC_UPDATE_START, /* START */
  URC_UPDATING,     /* UPDATING,<percent> */
  URC_UPDATE_END,   /* END,<err> */
};

struct urc {
  enum urc_stage stage;
  char name[16]; /* the stage as printed: "HTTPEND", "END", ... */
  int has_number;
  long number; /* percent or result code */
};

/* Parses one line, tolerantly: a missing "+", a line cut short after the
 * number, blanks and \r are accepted. 0 with *out filled for a FOTA URC,
 * -1 for anything else (other URCs, truncated stages, noise). */
int urc_parse_line(const char *line, size_t len, struct urc *out);

enum code_class {
  CODE_SUCCESS = 0,
  CODE_SEGMENT,         /* 712: one request_size segment done, not an error */
  CODE_RETRYABLE,       /* 701-704, 709, 711: try again later */
  CODE_OUR_MISTAKE,     /* 705, 706: our URL or package is wrong */
  CODE_PACKAGE_SUSPECT, /* 506, 710: corrupted in transit or at rest */
  CODE_MISMATCH,        /* 511: the device is not on the version we thought */
  CODE_DEVICE_SIDE,     /* storage, memory, parameters on the module */
  CODE_UNKNOWN,         /* kept as received, never refused */
};

enum code_class code_classify(long code);
const char *code_class_name(enum code_class c);
const char *code_meaning(long code); /* the guide's words, or "unknown" */

#endif
