#!/bin/bash
# http_ab.sh: server CPU per 2 KiB range request of two dfotad binaries,
# side by side: on a machine other jobs keep busy, two bench.sh runs one
# after the other meet different loads (nginx's own CPU per request swings
# by a quarter between them); here both daemons run at once and wrk asks
# them in turn, N times each, so that both meet the same moments.
#
# Usage: tests/bench/http_ab.sh BINARY_A BINARY_B
#
# Environment:
#   AB_RUNS=8          wrk runs per binary, alternating which goes first (2..50)
#   AB_DURATION=3      seconds per run (1..60)
#   AB_ALIGN=2048      range starts are multiples of this (bench.sh's pattern)
#   BENCH_KEEP=1       keep the temporary directory
#
# What it does: writes a 10 MiB random file, starts each binary as
# start_bench_dfotad does (statistics on, log level warn), uploads the
# file to both, warms both up, then runs wrk (-t2 -c64, random 2048-byte
# ranges as bench.sh) against A and B in turn and prints each run's
# server CPU (user + system, from /proc/PID/stat) per request in
# microseconds, and the medians. Only loopback; bounded in time.

set -u
umask 022

A=${1:-}
B=${2:-}
RUNS=${AB_RUNS:-8}
SECS=${AB_DURATION:-3}
ALIGN=${AB_ALIGN:-2048}
SIZE=$((10 * 1024 * 1024))

. "$(dirname "$0")/common.sh" # die, int_in, wait_until, http_ok, start_bench_dfotad
if [ -z "$A" ] || [ -z "$B" ]; then die "usage: http_ab.sh BINARY_A BINARY_B"; fi
for bin in "$A" "$B"; do [ -x "$bin" ] || die "'$bin' is not an executable"; done
int_in "$RUNS" 2 50 || die "AB_RUNS must be 2..50 (got '$RUNS')"
int_in "$SECS" 1 60 || die "AB_DURATION must be 1..60 (got '$SECS')"
int_in "$ALIGN" 1 1048576 || die "AB_ALIGN must be 1..1048576 (got '$ALIGN')"
for tool in wrk curl python3 timeout; do
  command -v "$tool" >/dev/null 2>&1 || die "needs $tool"
done
case $A in /*) ;; *) A="$PWD/$A" ;; esac
case $B in /*) ;; *) B="$PWD/$B" ;; esac
CURL=(curl -sS --noproxy '*' --max-time 60)

PID_A=
PID_B=
bench_tmpdir http_ab "${BENCH_KEEP:-0}" PID_A PID_B
TOP=$T
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
median() { # numbers on stdin, one per line
  sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "nan"; exit }
    if (NR % 2) printf "%.3f\n", v[(NR + 1) / 2]
    else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

head -c "$SIZE" /dev/urandom >"$TOP/pkg.bin" || die "no random file"

# start NAME BINARY: the daemon in $TOP/NAME, its package URL in $TOP/NAME.url
start() {
  T=$TOP/$1
  mkdir -p "$T" || die "mkdir $T failed"
  # read by start_bench_dfotad (common.sh)
  # shellcheck disable=SC2034
  DFOTAD=$2 HTTP_PORT=$(free_port) ADMIN_PORT=$(free_port)
  start_bench_dfotad
  "${CURL[@]}" -X POST -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/octet-stream' --data-binary @"$TOP/pkg.bin" \
    "$ADMIN_URL/api/v1/packages?model=AB-1&from=1.0.0&to=1.0.1&name=pkg.bin" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["url"])' >"$TOP/$1.url" ||
    die "upload to $1 failed"
  T=$TOP
}
start a "$A"
PID_A=$DFOTAD_PID
start b "$B"
PID_B=$DFOTAD_PID

cat >"$T/range.lua" <<EOF
local size, len, align = $SIZE, 2048, $ALIGN
local slots = math.floor((size - len) / align) + 1
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("seed", 1000 + counter)
end
function init(args)
  math.randomseed(seed or 1)
end
function request()
  local n = (math.random(slots) - 1) * align
  return wrk.format(nil, nil, { ["Range"] = "bytes=" .. n .. "-" .. (n + len - 1) })
end
function done(summary, latency, requests)
  io.write(string.format("ABRESULT requests=%d errors=%d\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
end
EOF

ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# run NAME PID: one timed wrk run; appends "NAME us/request requests/s"
run() {
  local c0 c1 n e
  kill -0 "$2" 2>/dev/null || die "daemon $1 died"
  c0=$(ticks "$2")
  timeout -k 5 $((SECS + 30)) wrk -t2 -c64 -d"${SECS}s" --timeout 10s -s "$T/range.lua" \
    "$(cat "$T/$1.url")" >"$T/wrk.out" 2>&1 || die "wrk failed against $1"
  c1=$(ticks "$2")
  n=$(sed -n 's/^ABRESULT requests=\([0-9]*\).*/\1/p' "$T/wrk.out")
  e=$(sed -n 's/^ABRESULT .*errors=\([0-9]*\).*/\1/p' "$T/wrk.out")
  [ "${n:-0}" -gt 0 ] || die "wrk completed no request against $1"
  [ "${e:-0}" = 0 ] || echo "  WARNING: $1: $e errors" >&2
  awk -v c=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$n" -v s="$SECS" -v name="$1" \
    'BEGIN { printf "%s %.3f %.0f\n", name, c / hz * 1e6 / n, n / s }' >>"$T/results"
}

for s in a b; do # warm-up: page cache, response caches
  timeout 60 wrk -t2 -c64 -d2s -s "$T/range.lua" "$(cat "$T/$s.url")" >/dev/null 2>&1
done
: >"$T/results"
for i in $(seq 1 "$RUNS"); do
  if [ $((i % 2)) = 1 ]; then run a "$PID_A"; run b "$PID_B"; else run b "$PID_B"; run a "$PID_A"; fi
done
echo "server CPU per 2048-byte range request (us, user + system), $RUNS runs x ${SECS}s each, alternating:"
for s in a b; do
  bin=$A
  [ $s = b ] && bin=$B
  printf '  %s %-40s median %s us (runs: %s); requests/s median %s\n' "$s" "$bin" \
    "$(awk -v s=$s '$1 == s { print $2 }' "$T/results" | median)" \
    "$(awk -v s=$s '$1 == s { print $2 }' "$T/results" | sort -g | tr '\n' ' ' | sed 's/ $//')" \
    "$(awk -v s=$s '$1 == s { print $3 }' "$T/results" | median)"
done
