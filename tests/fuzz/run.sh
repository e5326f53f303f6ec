#!/bin/sh
# Builds the fuzz targets with clang's libFuzzer (plus ASan and UBSan) and
# runs each for FUZZ_SECONDS (default 30). Needs clang (apt-get install
# clang). Usage: tests/fuzz/run.sh [target...]
# Targets: range, config, coap, ftp, lwm2m (parsers alone); urc, report_json, checkin (the
# delivery core on a real fleet: a SQLite store under /dev/shm or /tmp,
# removed at exit).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${FUZZ_OUT:-/tmp/dfotad-fuzz}
secs=${FUZZ_SECONDS:-30}
mkdir -p "$out"
[ -f "$top/autoconfig.h" ] || [ -f "$out/autoconfig.h" ] || {
  echo "#define PACKAGE_VERSION \"fuzz\"" > "$out/autoconfig.h"
}
flags="-g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I$top -I$out"
targets=${*:-"range config urc report_json checkin coap ftp lwm2m"}
# the delivery core and what it stands on (no front, no libmicrohttpd)
core="util/log.c util/util.c util/proto.c store/store.c store/upload.c store/writer.c
  store/db_sqlite.c fleet/delivery.c fleet/devices.c fleet/credentials.c fleet/persist.c
  fleet/checkin.c fleet/report.c fleet/progress.c fleet/device_admin.c fleet/rollout.c
  fleet/rollout_admin.c fleet/metrics.c fleet/urc.c fleet/paths.c fleet/psk.c store/recheck.c
  fleet/lwm2m.c"
corelibs=$(pkg-config --libs jansson sqlite3 libcrypto)" -lpthread"
for t in $targets; do
  case $t in
  range) srcs="server/http/range.c" ;;
  config) srcs="util/config.c util/listen.c util/log.c util/proto.c" ;;
  urc | report_json | checkin) srcs="$core $corelibs" ;;
  coap) srcs="server/coap/coap_msg.c -lcoap-3-openssl" ;;
  ftp) srcs="server/ftp/ftp_cmd.c" ;;
  lwm2m) srcs="server/coap/lwm2m_link.c server/coap/lwm2m_tlv.c $(pkg-config --libs jansson)" ;;
  *) echo "unknown target $t"; exit 2 ;;
  esac
  (cd "$top" && clang $flags -o "$out/fuzz_$t" "tests/fuzz/fuzz_$t.c" $srcs)
  mkdir -p "$out/corpus_$t"
  [ "$t" = range ] && printf 'bytes=0-2047' > "$out/corpus_$t/seed1" && printf 'bytes=-10' > "$out/corpus_$t/seed2"
  [ "$t" = config ] && cp "$top/conf/dfotad.conf" "$out/corpus_$t/seed1" 2>/dev/null
  [ "$t" = urc ] && printf '+QIND: "FOTA","HTTPSTART"\r\n+QIND: "FOTA","DOWNLOADING",50\r\n+QIND: "FOTA","HTTPEND",702\r\n' >"$out/corpus_$t/seed1" &&
    printf '+QIND: "FOTA","END",511\r\n+LWM2M: "FOTA","DOWNLOADING","START"\n' >"$out/corpus_$t/seed2"
  [ "$t" = report_json ] && printf '{"stage":"HTTPEND","code":702}' >"$out/corpus_$t/seed1" &&
    printf '{"stage":"DOWNLOADING","percent":40}' >"$out/corpus_$t/seed2"
  # checkin: listener byte, version length, version, transport
  [ "$t" = checkin ] && printf '\000\001Bftp' >"$out/corpus_$t/seed1" &&
    printf '\001\001Ccoaps' >"$out/corpus_$t/seed2" && printf '\002\001Ahttp' >"$out/corpus_$t/seed3"
  [ "$t" = coap ] && printf '\102\001\022\064\252\273\261f\030tokenaaaaaaaaaaaaaaaaaaa\301\006' > "$out/corpus_$t/seed1"
  [ "$t" = ftp ] && printf 'RETR ../a/./b//c' > "$out/corpus_$t/seed1" &&
    printf 'EPRT |2|::1|5282|' > "$out/corpus_$t/seed2" && printf 'PORT 127,0,0,1,200,10' > "$out/corpus_$t/seed3"
  # lwm2m: selector byte (0 links, 1 query, 2.. a value: format, resource id)
  [ "$t" = lwm2m ] && printf '\000</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>,</5/0>;ver=1.1' >"$out/corpus_$t/seed1" &&
    printf '\001ep=urn:imei:1&lt=300&lwm2m=1.1&b=UQ&Q' >"$out/corpus_$t/seed2" &&
    printf '\002\005\003\303\003BG95' >"$out/corpus_$t/seed3" &&
    printf '\002\003\003[{"bn":"/5/0/","n":"3","v":2}]' >"$out/corpus_$t/seed4"
  true
  echo "== fuzz_$t for ${secs}s"
  dict=
  [ -f "$top/tests/fuzz/$t.dict" ] && dict="-dict=$top/tests/fuzz/$t.dict"
  "$out/fuzz_$t" -max_total_time="$secs" -max_len=4096 $dict "$out/corpus_$t" 2>&1 | tail -n 3
done
