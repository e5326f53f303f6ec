#!/bin/bash
# openapi.sh: api/openapi.json, the one description of the admin API, is
# valid OpenAPI 3.1, is what the daemon serves at /api/v1/openapi.json,
# describes every route the daemon answers, and every route it describes
# answers, with statuses it lists and bodies that validate against its
# schemas (ajv; the event stream's events too). tests/console/openapi.js
# does the work; needs tests/deps.sh --console (node and the npm packages),
# skipped (77) without them.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"

CONSOLE_DIR="$LIB_DIR/../console"
if ! command -v node >/dev/null 2>&1 || [ ! -d "$CONSOLE_DIR/node_modules/ajv" ]; then
  echo "$TEST_NAME: needs node and tests/console/node_modules: run tests/deps.sh --console" >&2
  exit 77
fi

fleet_start || bail "dfotad starts"
random_file "$T/pkg.bin" 20000
start=$(date +%s.%N)
if ADMIN_URL="$ADMIN_URL" DEV_URL="$DEV_URL" TOKEN="$TOKEN" SRC="$LIB_DIR/../.." PKG_FILE="$T/pkg.bin" \
  MODEL="$MODEL" FROM="$VA" TO="$VC" timeout -k 5 120 node "$CONSOLE_DIR/openapi.js" >"$T/openapi.out" 2>&1; then
  pass "the document and the daemon agree ($(grep -c '^ok' "$T/openapi.out") checks, $(elapsed_since "$start") s)"
else
  fail "the document and the daemon agree" "$(grep -v '^ok' "$T/openapi.out" | head -60)"
fi
grep -v '^ok' "$T/openapi.out" | sed 's/^/# /' | head -80
finish
