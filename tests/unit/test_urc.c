/* test_urc.c: URC lines as modules print them, whole, cut short, noisy. */
#include "autoconfig.h"

#include <string.h>

#include "fleet/urc.h"
#include "unit.h"

static int parse(const char *s, struct urc *u) { return urc_parse_line(s, strlen(s), u); }

int main(void)
{
  struct urc u;

  CHECK(parse("+QIND: \"FOTA\",\"HTTPSTART\"", &u) == 0 && u.stage == URC_DOWNLOAD_START &&
        !u.has_number);
  CHECK(parse("+QIND: \"FOTA\",\"DOWNLOADING\",45\r", &u) == 0 && u.stage == URC_DOWNLOADING &&
        u.has_number && u.number == 45);
  CHECK(parse("+QIND: \"FOTA\",\"HTTPEND\",702", &u) == 0 && u.stage == URC_DOWNLOAD_END &&
        u.number == 702 && strcmp(u.name, "HTTPEND") == 0);
  CHECK(parse("+QIND: \"FOTA\",\"HTTPEND\",712", &u) == 0 && u.number == 712);
  CHECK(parse("+QIND: \"FOTA\",\"COAPEND\",0", &u) == 0 && u.stage == URC_DOWNLOAD_END);
  CHECK(parse("+QIND: \"FOTA\",\"FTPEND\",0", &u) == 0 && u.stage == URC_DOWNLOAD_END);
  CHECK(parse("+QIND: \"FOTA\",\"RESETTING\"", &u) == 0 && u.stage == URC_RESETTING);
  CHECK(parse("+QIND: \"FOTA\",\"START\"", &u) == 0 && u.stage == URC_UPDATE_START);
  CHECK(parse("+QIND: \"FOTA\",\"UPDATING\",99", &u) == 0 && u.stage == URC_UPDATING &&
        u.number == 99);
  CHECK(parse("+QIND: \"FOTA\",\"END\",0", &u) == 0 && u.stage == URC_UPDATE_END && u.number == 0);
  CHECK(parse("+QIND: \"FOTA\",\"END\",511", &u) == 0 && u.number == 511);
  /* tolerance: lost "+", blanks, lower case, trailing noise */
  CHECK(parse("QIND: \"FOTA\",\"END\",0", &u) == 0 && u.stage == URC_UPDATE_END);
  CHECK(parse("  +QIND:  \"FOTA\" , \"END\" , 0  ", &u) == 0 && u.number == 0);
  CHECK(parse("+qind: \"fota\",\"end\",0", &u) == 0);
  /* LwM2M */
  CHECK(parse("+LWM2M: \"FOTA\",\"DOWNLOADING\",\"START\"", &u) == 0 &&
        u.stage == URC_DOWNLOAD_START);
  CHECK(parse("+LWM2M: \"FOTA\",\"DOWNLOADED\",0", &u) == 0 && u.stage == URC_DOWNLOAD_END);
  /* unusable: other URCs, cut-short stages, ends without a code */
  CHECK(parse("+QIND: \"FOTA\",\"HTTPE", &u) < 0);
  CHECK(parse("+QIND: \"FOTA\",\"END\"", &u) < 0);
  CHECK(parse("+QIND: \"FOTA\",\"END\",", &u) < 0);
  CHECK(parse("+QIND: \"FOTA\"", &u) < 0);
  CHECK(parse("+CREG: 1", &u) < 0);
  CHECK(parse("OK", &u) < 0);
  CHECK(parse("", &u) < 0);
  CHECK(parse("+QIND: \"FOTA\",\"NOSUCH\",1", &u) < 0);
  CHECK(parse("+QIND: \"FOTA\",\"DOWNLOADING\",450", &u) == 0 && !u.has_number);
  CHECK(parse("+QIND: \"FOTA\",\"END\",abc", &u) < 0);

  CHECK(code_classify(0) == CODE_SUCCESS);
  CHECK(code_classify(712) == CODE_SEGMENT);
  CHECK(code_classify(702) == CODE_RETRYABLE);
  CHECK(code_classify(704) == CODE_RETRYABLE);
  CHECK(code_classify(705) == CODE_OUR_MISTAKE);
  CHECK(code_classify(706) == CODE_OUR_MISTAKE);
  CHECK(code_classify(506) == CODE_PACKAGE_SUSPECT);
  CHECK(code_classify(710) == CODE_PACKAGE_SUSPECT);
  CHECK(code_classify(511) == CODE_MISMATCH);
  CHECK(code_classify(707) == CODE_DEVICE_SIDE);
  CHECK(code_classify(730) == CODE_UNKNOWN);
  CHECK(code_classify(552) == CODE_UNKNOWN);
  CHECK(strcmp(code_class_name(CODE_MISMATCH), "mismatch") == 0);
  CHECK(strcmp(code_meaning(511), "package mismatched with the current firmware") == 0);
  CHECK(strcmp(code_meaning(999), "unknown") == 0);
  return unit_done("test_urc");
}
