#!/bin/bash
# manpages.sh: dfotad(8) and dfotad.conf(5) are clean for mandoc -Tlint
# (every message but the environment's own: manuals not installed here,
# an outdated mandoc.db), every long option of "dfotad -h" is in dfotad(8),
# the keys of dfotad.conf(5) and conf/dfotad.conf are the option table's
# (tests/unit/test_manpage, run here too so that a failure names the
# pages), and that file loads.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

SRC=${top_srcdir:-$LIB_DIR/../..}
MAN8="$SRC/doc/dfotad.8"
MAN5="$SRC/doc/dfotad.conf.5"
if ! command -v mandoc >/dev/null 2>&1; then
  echo "# SKIP: mandoc is not installed (tests/deps.sh installs it)"
  exit 77
fi

mandoc -Tlint "$MAN8" "$MAN5" >"$T/lint" 2>&1
grep -v -e 'referenced manual not found' -e 'outdated mandoc.db' -e 'no manual database' "$T/lint" \
  >"$T/lint.left" || true
expect_eq "mandoc -Tlint: no message about the pages themselves" "" "$(cat "$T/lint.left")"
mandoc -Tlint -W warning "$MAN8" "$MAN5" >"$T/lint.w" 2>&1 || true
grep -v -e 'outdated mandoc.db' "$T/lint.w" >"$T/lint.w.left" || true
expect_eq "mandoc -Tlint -W warning: nothing" "" "$(cat "$T/lint.w.left")"

for f in "$MAN8" "$MAN5"; do
  mandoc -Tascii "$f" >"$T/out" 2>/dev/null
  check "$(basename "$f") renders" test -s "$T/out"
done

"$DFOTAD" -h >"$T/help" 2>&1
for opt in $(grep -o -- '--[a-z][a-z-]*' "$T/help" | sort -u); do
  check "dfotad(8) documents $opt" grep -Eq -- "Fl -${opt#--}( |$)" "$MAN8"
done
for sig in SIGHUP SIGTERM SIGINT; do
  check "dfotad(8) documents $sig" grep -q "$sig" "$MAN8"
done
for sec in "EXIT STATUS" FILES EXAMPLES SIGNALS "BACKUP AND RESTORE"; do
  check "dfotad(8) has $sec" grep -q "^\.Sh $sec" "$MAN8"
done

# the sample configuration, every key listed, loads as it is
"$DFOTAD" -t -c "$SRC/conf/dfotad.conf" >"$T/t.out" 2>&1
expect_eq "dfotad -t -c conf/dfotad.conf" 0 "$?"

UNIT=${top_builddir:-$LIB_DIR/../..}/tests/unit/test_manpage
if [ -x "$UNIT" ]; then
  top_srcdir=$SRC "$UNIT" >"$T/unit" 2>&1
  expect_eq "test_manpage: the pages' keys are the table's" 0 "$?"
  sed 's/^/# /' "$T/unit" | grep -v ' 0 failed' | head -20
fi

finish
