#!/bin/sh
# Builds the fuzz targets with clang's libFuzzer (plus ASan and UBSan) and
# runs each for FUZZ_SECONDS (default 30). Needs clang (apt-get install
# clang). Usage: tests/fuzz/run.sh [target...]
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${FUZZ_OUT:-/tmp/dfotad-fuzz}
secs=${FUZZ_SECONDS:-30}
mkdir -p "$out"
[ -f "$top/autoconfig.h" ] || [ -f "$out/autoconfig.h" ] || {
  echo "#define PACKAGE_VERSION \"fuzz\"" > "$out/autoconfig.h"
}
flags="-g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I$top -I$out"
targets=${*:-"range config ftp"}
for t in $targets; do
  case $t in
  range) srcs="server/range.c" ;;
  config) srcs="util/config.c util/log.c util/proto.c" ;;
  ftp) srcs="server/ftp_cmd.c" ;;
  *) echo "unknown target $t"; exit 2 ;;
  esac
  (cd "$top" && clang $flags -o "$out/fuzz_$t" "tests/fuzz/fuzz_$t.c" $srcs)
  mkdir -p "$out/corpus_$t"
  [ "$t" = range ] && printf 'bytes=0-2047' > "$out/corpus_$t/seed1" && printf 'bytes=-10' > "$out/corpus_$t/seed2"
  [ "$t" = ftp ] && printf 'RETR ../a/./b//c' > "$out/corpus_$t/seed1" &&
    printf 'EPRT |2|::1|5282|' > "$out/corpus_$t/seed2" && printf 'PORT 127,0,0,1,200,10' > "$out/corpus_$t/seed3"
  [ "$t" = config ] && cp "$top/conf/dfotad.conf" "$out/corpus_$t/seed1" 2>/dev/null || true
  echo "== fuzz_$t for ${secs}s"
  "$out/fuzz_$t" -max_total_time="$secs" -max_len=4096 "$out/corpus_$t" 2>&1 | tail -n 3
done
