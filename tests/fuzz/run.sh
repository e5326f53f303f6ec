#!/bin/sh
# The libFuzzer targets, built with clang (plus ASan and UBSan).
#
#   tests/fuzz/run.sh [target...]      fuzz each target FUZZ_SECONDS (30) on a
#                                      working corpus in FUZZ_OUT
#                                      (/tmp/dfotad-fuzz), seeded from
#                                      tests/fuzz/corpus/<target>/
#   tests/fuzz/run.sh -c target        what `make check` runs for each target
#                                      (tests/fuzz/fuzz.am): replay every
#                                      committed input of
#                                      tests/fuzz/corpus/<target>/, then fuzz
#                                      FUZZ_SECONDS (15) more; the committed
#                                      corpus is only read. Exit 77 (skip)
#                                      when clang cannot build a fuzzer,
#                                      unless FUZZ_REQUIRED=1 (tests/run-all).
#
# Needs clang and libclang-rt-dev (tests/deps.sh installs them). Targets:
# range, bulk, ftp, coap, lwm2m (parsers alone); config (every section the daemon
# declares, so the whole daemon library: built once); urc, report_json, checkin (the
# delivery core on a real fleet: a SQLite store under /dev/shm or /tmp,
# removed at exit). A crash leaves its input in FUZZ_OUT; copy it to
# tests/fuzz/corpus/<target>/crash-<what> with the fix, so that every run
# replays it from then on. New target: tests/fuzz/fuzz_<name>.c, its sources
# in the case below, seeds in tests/fuzz/corpus/<name>/, and a line in
# tests/fuzz/fuzz.am.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
check=0
if [ "${1:-}" = -c ]; then
  check=1
  shift
  [ $# -eq 1 ] || { echo "usage: $0 -c target" >&2; exit 2; }
  # the name make check gives it: .../tests/fuzz/fuzz_<target>.c
  t=${1##*/}
  t=${t#fuzz_}
  set -- "${t%.c}"
  out=${FUZZ_OUT:-$PWD/tests/fuzz/out}
  secs=${FUZZ_SECONDS:-15}
else
  out=${FUZZ_OUT:-/tmp/dfotad-fuzz}
  secs=${FUZZ_SECONDS:-30}
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
cc=${FUZZ_CC:-clang}

# can clang build a fuzzer here at all?
if ! printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' |
  $cc -x c -fsanitize=fuzzer,address,undefined -o "$out/probe" - >/dev/null 2>&1; then
  echo "$cc cannot build a libFuzzer target here (apt-get install clang libclang-rt-dev)"
  [ "${FUZZ_REQUIRED:-0}" = 1 ] && exit 1
  exit 77
fi
rm -f "$out/probe"

[ -f "$top/autoconfig.h" ] || [ -f "$out/autoconfig.h" ] || {
  echo "#define PACKAGE_VERSION \"fuzz\"" >"$out/autoconfig.h"
}
flags="-g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
  -D_GNU_SOURCE -I$top -I$out"
# the delivery core and what it stands on (no front, no libmicrohttpd):
# every source of util/, store/ and fleet/, and what fleet/ takes from net/
# The PostgreSQL backend (store/db_pg*.c) comes in when the autoconfig.h
# the build reads says configure found libpq; else db.c answers for it.
pgsrc=
pglibs=
if grep -qs '^#define HAVE_LIBPQ 1' "$top/autoconfig.h" ||
  { [ ! -f "$top/autoconfig.h" ] && grep -qs '^#define HAVE_LIBPQ 1' "$out/autoconfig.h"; }; then
  pgsrc=" $(cd "$top" && ls store/db_pg*.c | tr '\n' ' ')"
  pglibs=$(pkg-config --libs libpq)
  flags="$flags $(pkg-config --cflags libpq)"
fi
core="$(cd "$top" && ls util/*.c store/*.c fleet/*.c net/admission.c | grep -v '^store/db_pg' |
  tr '\n' ' ')$pgsrc"
corelibs="$(pkg-config --libs jansson sqlite3 libcrypto) $pglibs -lpthread"

# the core once into $out/core.a, shared by its three targets (make check
# may build them at the same time: one builds, the others wait)
build_core() {
  (
    flock 9
    new=0
    for s in $core; do
      o="$out/core/${s%.c}.o"
      # stale when its source or any header of the core is newer
      if [ ! -f "$o" ] || [ -n "$(find "$top/$s" "$top/util" "$top/store" "$top/fleet" \
        -newer "$o" \( -name '*.h' -o -path "$top/$s" \) -print | head -n 1)" ]; then
        mkdir -p "${o%/*}"
        # shellcheck disable=SC2086
        (cd "$top" && $cc $flags -c -o "$o" "$s") || exit 1
        new=1
      fi
    done
    if [ $new = 1 ] || [ ! -f "$out/core.a" ]; then
      rm -f "$out/core.a"
      # shellcheck disable=SC2046
      (cd "$out/core" && ar rcs "$out/core.a" $(for s in $core; do echo "${s%.c}.o"; done))
    fi
  ) 9>"$out/core.lock"
}

# the whole daemon library (Makefile.am's libdfotad_a_SOURCES, and the
# console's embedded assets) once into $out/lib.a, for the config target:
# the configuration is every section the fronts declare, and their checks
# read the fronts table, so it takes every front with it
am_list() { # VARIABLE: the words of a Makefile.am variable's definition
  sed -n "/^$1 =/,/[^\\]\$/p" "$top/Makefile.am" | sed -e "s/^$1 =//" -e 's/\\$//' | tr -s ' \t' '\n'
}
lib="$(am_list libdfotad_a_SOURCES | grep '\.c$') $pgsrc"
liblibs="$(pkg-config --libs libmicrohttpd gnutls libcoap-3-openssl libcrypto libssl libevent \
  libevent_openssl libevent_pthreads sqlite3 jansson) $pglibs -lpthread"
build_lib() {
  (
    flock 9
    new=0
    mkdir -p "$out/lib/api"
    assets=$(am_list CONSOLE_ASSETS)
    # shellcheck disable=SC2086
    sh "$top/api/console/embed.sh" "$top" $assets >"$out/lib/api/console_assets.c.new"
    if cmp -s "$out/lib/api/console_assets.c.new" "$out/lib/api/console_assets.c"; then
      rm -f "$out/lib/api/console_assets.c.new"
    else
      mv "$out/lib/api/console_assets.c.new" "$out/lib/api/console_assets.c"
    fi
    objs=
    for s in $lib "$out/lib/api/console_assets.c"; do
      o="$out/lib/$(echo "${s#"$out"/lib/}" | sed 's/\.c$//').o"
      objs="$objs $o"
      src=$s
      [ -f "$src" ] || src="$top/$s"
      if [ ! -f "$o" ] || [ -n "$(find "$src" "$top/util" "$top/store" "$top/fleet" "$top/net" \
        "$top/api" "$top/server" -newer "$o" \( -name '*.h' -o -path "$src" \) -print |
        head -n 1)" ]; then
        mkdir -p "${o%/*}"
        # shellcheck disable=SC2086
        (cd "$top" && $cc $flags -c -o "$o" "$src") || exit 1
        new=1
      fi
    done
    if [ $new = 1 ] || [ ! -f "$out/lib.a" ]; then
      rm -f "$out/lib.a"
      # shellcheck disable=SC2086
      ar rcs "$out/lib.a" $objs
    fi
  ) 9>"$out/lib.lock"
}

status=0
[ $# -eq 0 ] && set -- range bulk config urc report_json checkin coap ftp lwm2m
for t in "$@"; do
  case $t in
  range) srcs="server/http/range.c" ;;
  bulk) srcs="fleet/bulk.c $(pkg-config --libs jansson libcrypto)" ;;
  config) build_lib && srcs="$out/lib.a $liblibs" ;;
  urc | report_json | checkin) build_core && srcs="$out/core.a $corelibs" ;;
  coap) srcs="server/coap/coap_msg.c -lcoap-3-openssl" ;;
  ftp) srcs="server/ftp/ftp_cmd.c" ;;
  lwm2m) srcs="server/coap/lwm2m_link.c server/coap/lwm2m_tlv.c $(pkg-config --libs jansson)" ;;
  *) echo "unknown target $t"; exit 2 ;;
  esac
  echo "== fuzz_$t: build"
  # shellcheck disable=SC2086
  (cd "$top" && $cc $flags -fsanitize=fuzzer -o "$out/fuzz_$t" "tests/fuzz/fuzz_$t.c" $srcs)
  seeds="$top/tests/fuzz/corpus/$t"
  work="$out/corpus_$t"
  mkdir -p "$work"
  dict=
  [ -f "$top/tests/fuzz/$t.dict" ] && dict="-dict=$top/tests/fuzz/$t.dict"
  opts="-max_len=4096 -timeout=10 -rss_limit_mb=1024 -artifact_prefix=$out/$t-"
  rc=0
  if [ $check = 1 ]; then
    # every committed input once (file arguments: run them and stop)
    n=$(find "$seeds" -type f | wc -l)
    echo "== fuzz_$t: replay $n committed inputs"
    # shellcheck disable=SC2046,SC2086
    "$out/fuzz_$t" $opts $(find "$seeds" -type f | sort) >"$out/$t.replay" 2>&1 || rc=$?
    if [ $rc != 0 ]; then
      tail -n 40 "$out/$t.replay"
      echo "== fuzz_$t failed on a committed input: $(sed -n 's/^Running: //p' "$out/$t.replay" | tail -n 1)"
    fi
    # a fresh working corpus each time: new finds go there, never into
    # the committed one (read as the second folder)
    rm -rf "$work" "$out/$t"-crash-* "$out/$t"-leak-* "$out/$t"-timeout-* "$out/$t"-oom-*
    mkdir -p "$work"
  fi
  if [ $rc = 0 ]; then
    echo "== fuzz_$t: ${secs}s"
    # shellcheck disable=SC2086
    "$out/fuzz_$t" -max_total_time="$secs" $opts $dict "$work" "$seeds" >"$out/$t.fuzz" 2>&1 || rc=$?
    if [ $rc = 0 ]; then
      grep -E '^(#[0-9]+[[:space:]]+INITED|Done [0-9]+ runs)' "$out/$t.fuzz" || tail -n 3 "$out/$t.fuzz"
    else
      tail -n 60 "$out/$t.fuzz"
    fi
  fi
  if [ $rc != 0 ]; then
    status=1
    for a in "$out/$t"-crash-* "$out/$t"-leak-* "$out/$t"-timeout-* "$out/$t"-oom-*; do
      [ -f "$a" ] || continue
      echo "== fuzz_$t failed on $a (base64 below); fix it, then add it as"
      echo "   tests/fuzz/corpus/$t/crash-<what> so that every run replays it"
      base64 -w 76 "$a" | head -n 60
    done
  fi
done
exit $status
