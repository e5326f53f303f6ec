#!/bin/bash
# bench.sh: dfotad against a well-tuned nginx, serving the same file.
#
# Usage: tests/bench/bench.sh [path/to/dfotad]      (default ./server/dfotad)
#
# Environment:
#   BENCH_ROUNDS=5       timed rounds per metric and server (1..50)
#   BENCH_DURATION=5     seconds per timed wrk run (1..120)
#   BENCH_WARMUP=1       seconds of untimed wrk warm-up per metric and server (0..30)
#   BENCH_SIZE_MIB=10    size of the random file served (1..1024)
#   BENCH_RANGE_ALIGN=2048  range starts are multiples of this (1: any offset)
#   BENCH_METRICS="range whole"  which measurements to run
#   BENCH_KEEP=1         keep the temporary directory (wrk outputs, logs)
#   BENCH_DFOTAD_CONF    lines appended to dfotad's configuration, e.g.
#                        "$(printf '[http]\nsend_lowat = 0')" (printed in the summary)
#
# What it does: writes a 10 MiB random file; starts Debian's nginx (its own
# nginx.conf in a temporary directory) and dfotad (its own configuration,
# statistics on as always, log_level warn), both on free 127.0.0.1 ports;
# uploads the file to dfotad through the admin API; checks that both return
# a correct 206 for a range and the identical whole file (sha256); then runs
# wrk against each, alternating dfotad and nginx (and which one goes first,
# round by round):
#   a) requests/s, random 2048-byte ranges, 64 connections, 2 threads
#   b) MB/s (1 MB = 10^6 bytes), whole-file downloads, 16 connections, 2 threads
# and prints per-round figures, medians and the ratio dfotad/nginx, each
# server's CPU use (% of one CPU, from /proc/PID/stat) and throughput per
# server CPU-second (steadier than raw figures on a small machine, where wrk
# competes with the server for the same CPUs), machine information,
# dfotad's peak RSS (VmHWM), a check that dfotad's statistics counted every
# request wrk completed, and a summary block for BENCHMARKS.md.
# It warns when the machine was busy before it started: rerun then.
#
# Only loopback addresses; every step is bounded in time; servers and the
# temporary directory are removed on exit.

set -u
umask 022

# ---------------------------------------------------------------------------
# Arguments and environment

DFOTAD=${1:-./server/dfotad}
case $DFOTAD in
/*) ;;
*) DFOTAD="$PWD/${DFOTAD#./}" ;;
esac

ROUNDS=${BENCH_ROUNDS:-5}
DURATION=${BENCH_DURATION:-5}
WARMUP=${BENCH_WARMUP:-1}
SIZE_MIB=${BENCH_SIZE_MIB:-10}
ALIGN=${BENCH_RANGE_ALIGN:-2048}
RANGE_LEN=2048
RANGE_CONNS=64
WHOLE_CONNS=16
WRK_THREADS=2

. "$(dirname "$0")/common.sh" # die, int_in, wait_until, http_ok, start_bench_dfotad
int_in "$ROUNDS" 1 50 || die "BENCH_ROUNDS must be 1..50 (got '$ROUNDS')"
int_in "$DURATION" 1 120 || die "BENCH_DURATION must be 1..120 seconds (got '$DURATION')"
int_in "$WARMUP" 0 30 || die "BENCH_WARMUP must be 0..30 seconds (got '$WARMUP')"
int_in "$SIZE_MIB" 1 1024 || die "BENCH_SIZE_MIB must be 1..1024 (got '$SIZE_MIB')"
METRICS=${BENCH_METRICS:-range whole}
for m in $METRICS; do
  case $m in range | whole) ;; *) die "BENCH_METRICS: unknown metric '$m' (range, whole)" ;; esac
done
int_in "$ALIGN" 1 1048576 || die "BENCH_RANGE_ALIGN must be 1..1048576 (got '$ALIGN')"

[ -x "$DFOTAD" ] || die "dfotad binary '$DFOTAD' not found or not executable (build it: autoreconf -fi && ./configure && make)"
for tool in wrk curl sha256sum awk sed sort head cmp timeout pgrep getconf; do
  command -v "$tool" >/dev/null 2>&1 || die "needs $tool"
done
NGINX=$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; }) ||
  die "needs nginx (apt-get install nginx-light)"

SIZE=$((SIZE_MIB * 1024 * 1024))
CURL=(curl -sS --noproxy '*' --max-time 60)

# ---------------------------------------------------------------------------
# Temporary directory and cleanup

T=$(mktemp -d "${TMPDIR:-/tmp}/dfotad-bench.XXXXXX") || die "mktemp failed"
DFOTAD_PID=
NGINX_PID=
WRK_PID=

# shellcheck disable=SC2317  # invoked by the traps
cleanup() {
  local rc=$? p i workers=
  trap - EXIT INT TERM HUP
  # nginx's workers, known before their master goes (they would outlive a
  # master killed with SIGKILL)
  [ -n "$NGINX_PID" ] && workers=$(pgrep -P "$NGINX_PID" 2>/dev/null)
  for p in $WRK_PID $DFOTAD_PID $NGINX_PID; do
    kill -TERM "$p" 2>/dev/null
  done
  for p in $WRK_PID $DFOTAD_PID $NGINX_PID $workers; do
    # bounded wait (5 s), then SIGKILL
    for ((i = 0; i < 50; i++)); do
      kill -0 "$p" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null
  done
  wait 2>/dev/null
  if [ "${BENCH_KEEP:-0}" = 1 ]; then
    echo "bench: kept $T" >&2
  else
    rm -rf "$T"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT TERM HUP

# ---------------------------------------------------------------------------
# Helpers

# free_port: a TCP port on 127.0.0.1 that nothing listens on now, and that
# this script has not handed out yet.
USED_PORTS=" "
free_port() {
  local p i
  for i in $(seq 1 200); do
    if command -v python3 >/dev/null 2>&1; then
      p=$(python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' 2>/dev/null)
    else
      p=$((20000 + RANDOM % 40000))
    fi
    [ -n "$p" ] || continue
    case $USED_PORTS in *" $p "*) continue ;; esac
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      continue # something answers there
    fi
    USED_PORTS="$USED_PORTS$p "
    echo "$p"
    return 0
  done
  return 1
}

# wait_until SECONDS CMD...: polls CMD every 0.1 s.
alive() { kill -0 "$1" 2>/dev/null; }

# http_ok URL CODE: true when a GET of URL answers HTTP status CODE.
# shellcheck disable=SC2317  # called through wait_until

# hdr NAME HEADERFILE: value of header NAME in a curl -D dump.
hdr() {
  tr -d '\r' <"$2" | awk -v n="$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]')" '
    { i = index($0, ":"); if (i == 0) next
      k = tolower(substr($0, 1, i - 1))
      if (k == n) { v = substr($0, i + 1); sub(/^[ \t]+/, "", v); last = v } }
    END { if (last != "") print last }'
}

# json_str FILE KEY: value of the first "KEY": "string" in a JSON file.
json_str() {
  if command -v jq >/dev/null 2>&1; then
    jq -r ".$2 // empty" <"$1" 2>/dev/null
  else
    tr -d '\n' <"$1" | sed -n "s/.*\"$2\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p" | head -n 1
  fi
}

# json_num FILE KEY: value of the first "KEY": number in a JSON file.
json_num() {
  tr -d '\n' <"$1" | grep -o "\"$2\"[[:space:]]*:[[:space:]]*[0-9]*" | head -n 1 | sed 's/.*://; s/[[:space:]]//g'
}

median() { # numbers on stdin, one per line
  sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "nan"; exit }
    if (NR % 2) printf "%.1f\n", v[(NR + 1) / 2]
    else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "nan"; else printf "%.2f\n", a / b }'; }

# ---------------------------------------------------------------------------
# Machine information

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
[ -n "$CPU_MODEL" ] || CPU_MODEL=$(awk -F': ' '/^(Hardware|cpu model|CPU part)/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
[ -n "$CPU_MODEL" ] || CPU_MODEL=unknown
NPROC=$(nproc 2>/dev/null || echo '?')
KERNEL="$(uname -sr) $(uname -m)"
MEM_GIB=$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo 2>/dev/null)
NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
WRK_VERSION=$(wrk -v 2>&1 | head -n 1 | awk '{ print $2 }')
DFOTAD_VERSION=$(timeout 5 "$DFOTAD" -V 2>&1 | head -n 1 | sed 's/^dfotad //')
DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)

echo "== dfotad benchmark ($DATE)"
echo "machine: $NPROC CPUs, $CPU_MODEL, ${MEM_GIB:-?} GiB, $KERNEL"
echo "servers: dfotad $DFOTAD_VERSION ($DFOTAD) vs $NGINX_VERSION"
echo "client:  wrk $WRK_VERSION, -t$WRK_THREADS; $ROUNDS rounds x ${DURATION}s (+${WARMUP}s warm-up), same host"
echo "file:    $SIZE bytes of random data"
# cpu_busy: percentage of CPU time not idle over the next second
cpu_busy() {
  local a b
  a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat 2>/dev/null)
  sleep 1
  b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat 2>/dev/null)
  awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ")
    busy = y[1] - x[1]; idle = y[2] - x[2]
    if (busy + idle > 0) printf "%.0f\n", 100 * busy / (busy + idle) }'
}
BUSY=$(cpu_busy)
echo "busy:    ${BUSY:-?}% of CPU time used by others during 1 s before starting"
if [ -n "$BUSY" ] && [ "$BUSY" -gt 10 ]; then
  echo "WARNING: the machine is already busy: figures will be noisy (wrk and both servers share its CPUs)"
fi

# ---------------------------------------------------------------------------
# The file

mkdir -p "$T/www/f" "$T/state" "$T/nginx/logs" "$T/nginx/tmp" || die "mkdir failed"
head -c "$SIZE" /dev/urandom >"$T/pkg.bin" || die "cannot write the random file"
SHA=$(sha256sum "$T/pkg.bin" | cut -d' ' -f1)
cp "$T/pkg.bin" "$T/www/f/pkg.bin"
# nginx workers may run as another user (www-data) when started as root
chmod 0711 "$T"
chmod 0755 "$T/www" "$T/www/f"
chmod 0644 "$T/www/f/pkg.bin"

# ---------------------------------------------------------------------------
# nginx

NGINX_PORT=$(free_port) || die "no free port"
cat >"$T/nginx/nginx.conf" <<EOF
# written by bench.sh: a fair, tuned static file server
worker_processes auto;
pid $T/nginx/nginx.pid;
error_log $T/nginx/logs/error.log warn;
events {
    worker_connections 4096;
}
http {
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    access_log off;
    keepalive_timeout 65;
    keepalive_requests 100000;
    open_file_cache max=1000 inactive=60s;
    open_file_cache_valid 60s;
    client_body_temp_path $T/nginx/tmp/body;
    proxy_temp_path $T/nginx/tmp/proxy;
    fastcgi_temp_path $T/nginx/tmp/fastcgi;
    uwsgi_temp_path $T/nginx/tmp/uwsgi;
    scgi_temp_path $T/nginx/tmp/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        server_name localhost;
        root $T/www;
        location / {
        }
    }
}
EOF
"$NGINX" -t -q -e "$T/nginx/logs/error.log" -c "$T/nginx/nginx.conf" -p "$T/nginx/" >"$T/nginx/t.out" 2>&1 ||
  { cat "$T/nginx/t.out" >&2; die "nginx rejected its configuration"; }
"$NGINX" -e "$T/nginx/logs/error.log" -c "$T/nginx/nginx.conf" -p "$T/nginx/" -g 'daemon off;' \
  >"$T/nginx/stdout" 2>&1 &
NGINX_PID=$!
NGINX_URL="http://127.0.0.1:$NGINX_PORT/f/pkg.bin"
wait_until 10 http_ok "$NGINX_URL" 200 ||
  { tail -n 20 "$T/nginx/logs/error.log" >&2; die "nginx did not come up on 127.0.0.1:$NGINX_PORT"; }

# ---------------------------------------------------------------------------
# dfotad

HTTP_PORT=$(free_port) || die "no free port"
ADMIN_PORT=$(free_port) || die "no free port"
start_bench_dfotad
wait_until 5 http_ok "$DEV_URL/p/aaaaaaaaaaaa" 404 ||
  { tail -n 20 "$T/dfotad.log" >&2; die "dfotad's http listener 127.0.0.1:$HTTP_PORT does not answer 404 for an unknown id"; }

code=$("${CURL[@]}" -o "$T/upload.json" -w '%{http_code}' -X POST \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/octet-stream' \
  --data-binary @"$T/pkg.bin" \
  "$ADMIN_URL/api/v1/packages?model=BENCH-1&from=1.0.0&to=1.0.1&name=pkg.bin") ||
  die "upload to dfotad failed"
[ "$code" = 201 ] || { cat "$T/upload.json" >&2; die "upload: HTTP $code, expected 201"; }
PKG_ID=$(json_str "$T/upload.json" id)
DFOTAD_URL=$(json_str "$T/upload.json" url)
if [ -z "$PKG_ID" ] || [ -z "$DFOTAD_URL" ]; then
  cat "$T/upload.json" >&2
  die "upload answer has no id/url"
fi
[ "$(json_str "$T/upload.json" sha256)" = "$SHA" ] ||
  { cat "$T/upload.json" >&2; die "upload answer: sha256 differs from the file's"; }
[ "$(json_num "$T/upload.json" size)" = "$SIZE" ] ||
  { cat "$T/upload.json" >&2; die "upload answer: size differs from the file's"; }
case $DFOTAD_URL in
"http://127.0.0.1:$HTTP_PORT/p/$PKG_ID") ;;
*) die "package url '$DFOTAD_URL' is not http://127.0.0.1:$HTTP_PORT/p/$PKG_ID" ;;
esac

# ---------------------------------------------------------------------------
# Correctness before timing: a 206 with the exact bytes, and the whole file.

R_START=$(((SIZE / 2 / RANGE_LEN) * RANGE_LEN + 7)) # unaligned on purpose
R_END=$((R_START + RANGE_LEN - 1))
tail -c +$((R_START + 1)) "$T/pkg.bin" | head -c "$RANGE_LEN" >"$T/expect.range"

verify() { # NAME URL
  local name=$1 url=$2 code cr got
  code=$("${CURL[@]}" -D "$T/$name.range.h" -o "$T/$name.range.b" -w '%{http_code}' \
    -H "Range: bytes=$R_START-$R_END" "$url") || die "$name: range request failed"
  [ "$code" = 206 ] || die "$name: range request answered $code, expected 206"
  cr=$(hdr Content-Range "$T/$name.range.h")
  [ "$cr" = "bytes $R_START-$R_END/$SIZE" ] ||
    die "$name: Content-Range '$cr', expected 'bytes $R_START-$R_END/$SIZE'"
  [ "$(hdr Content-Length "$T/$name.range.h")" = "$RANGE_LEN" ] || die "$name: range Content-Length is not $RANGE_LEN"
  cmp -s "$T/$name.range.b" "$T/expect.range" || die "$name: range body differs from the file's bytes"
  code=$("${CURL[@]}" -D "$T/$name.whole.h" -o "$T/$name.whole.b" -w '%{http_code}' "$url") ||
    die "$name: whole-file request failed"
  [ "$code" = 200 ] || die "$name: whole-file request answered $code, expected 200"
  got=$(sha256sum "$T/$name.whole.b" | cut -d' ' -f1)
  [ "$got" = "$SHA" ] || die "$name: whole file sha256 $got, expected $SHA"
  rm -f "$T/$name.whole.b"
  echo "verified: $name: 206 'Content-Range: $cr' with the exact bytes; 200 whole file sha256 ${SHA:0:16}..."
}
verify dfotad "$DFOTAD_URL"
verify nginx "$NGINX_URL"

# ---------------------------------------------------------------------------
# wrk scripts. done() prints exact totals (wrk's own summary is rounded).

cat >"$T/common.lua" <<'EOF'
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCHRESULT requests=%d bytes=%d duration_us=%d status_errors=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.bytes, summary.duration, e.status, e.connect, e.read, e.write,
    e.timeout, latency:percentile(50), latency:percentile(99)))
end
EOF

cat >"$T/whole.lua" <<EOF
dofile("$T/common.lua")
EOF

cat >"$T/range.lua" <<EOF
dofile("$T/common.lua")
local size, len, align = $SIZE, $RANGE_LEN, $ALIGN
local slots = math.floor((size - len) / align) + 1
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("seed", 1000 + counter)
end
function init(args)
  -- same deterministic sequence for both servers (per thread)
  math.randomseed(seed or 1)
end
function request()
  local n = (math.random(slots) - 1) * align
  return wrk.format(nil, nil, { ["Range"] = "bytes=" .. n .. "-" .. (n + len - 1) })
end
EOF

# run_wrk OUT CONNS SECONDS SCRIPT URL: runs wrk, bounded in time.
run_wrk() {
  local out=$1 conns=$2 secs=$3 script=$4 url=$5
  timeout -k 5 $((secs + 30)) wrk -t"$WRK_THREADS" -c"$conns" -d"${secs}s" --timeout 10s \
    -s "$script" "$url" >"$out" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID"
  local rc=$?
  WRK_PID=
  if [ $rc -ne 0 ] || ! grep -q '^BENCHRESULT ' "$out"; then
    cat "$out" >&2
    die "wrk failed (exit $rc) against $url"
  fi
}

# field OUT NAME: a number from the BENCHRESULT line.
field() { sed -n "s/^BENCHRESULT .*\b$2=\([0-9]*\).*/\1/p" "$1"; }

# server_ticks SERVER: user+system clock ticks used so far by the server's
# processes (all threads; nginx: master and workers).
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
server_ticks() {
  local pids p sum=0 t
  if [ "$1" = dfotad ]; then pids=$DFOTAD_PID; else pids="$NGINX_PID $(pgrep -P "$NGINX_PID" 2>/dev/null)"; fi
  for p in $pids; do
    # fields after the ")" closing the command name: utime is the 12th, stime the 13th
    t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }')
    sum=$((sum + ${t:-0}))
  done
  echo "$sum"
}

ERRORS_SEEN=0
# measure METRIC SERVER ROUND: one timed run; sets MEASURED to the figure.
MEASURED=
MEASURED_CPU=
measure() {
  local metric=$1 server=$2 round=$3 url conns script out req bytes us errs v
  if [ "$server" = dfotad ]; then url=$DFOTAD_URL; else url=$NGINX_URL; fi
  if [ "$metric" = range ]; then conns=$RANGE_CONNS; script=$T/range.lua; else conns=$WHOLE_CONNS; script=$T/whole.lua; fi
  out="$T/wrk.$metric.$server.$round.out"
  alive "$DFOTAD_PID" || die "dfotad died (log: $(tail -n 5 "$T/dfotad.log"))"
  alive "$NGINX_PID" || die "nginx died"
  local t0 t1 c0 c1 cpu
  c0=$(server_ticks "$server")
  t0=$(date +%s%N)
  run_wrk "$out" "$conns" "$DURATION" "$script" "$url"
  t1=$(date +%s%N)
  c1=$(server_ticks "$server")
  # the server's CPU time over the run, in % of one CPU
  cpu=$(awk -v c="$((c1 - c0))" -v hz="$CLK_TCK" -v ns="$((t1 - t0))" \
    'BEGIN { printf "%.0f", 100 * (c / hz) / (ns / 1e9) }')
  req=$(field "$out" requests)
  bytes=$(field "$out" bytes)
  us=$(field "$out" duration_us)
  errs=$(($(field "$out" status_errors) + $(field "$out" connect) + $(field "$out" read) + $(field "$out" write) + $(field "$out" timeout)))
  if [ "$errs" -gt 0 ]; then
    ERRORS_SEEN=$((ERRORS_SEEN + errs))
    echo "  WARNING: $server $metric round $round: $(grep '^BENCHRESULT' "$out" | cut -d' ' -f5-9)" >&2
  fi
  if [ "$metric" = range ]; then
    v=$(awk -v r="$req" -v u="$us" 'BEGIN { printf "%.1f", r / (u / 1e6) }')
  else
    v=$(awk -v b="$bytes" -v u="$us" 'BEGIN { printf "%.1f", b / (u / 1e6) / 1e6 }')
  fi
  echo "$server $metric $round $v $req $(field "$out" p50_us) $(field "$out" p99_us) $cpu" >>"$T/results"
  MEASURED=$v
  MEASURED_CPU=$cpu
}

: >"$T/results"
TOTAL_DFOTAD_REQUESTS=0
MED_range_dfotad='' MED_range_nginx='' MED_whole_dfotad='' MED_whole_nginx=''
EFF_range_dfotad='' EFF_range_nginx='' EFF_whole_dfotad='' EFF_whole_nginx=''

run_metric() { # METRIC LABEL UNIT
  local metric=$1 label=$2 unit=$3 r first second v1 v2 s
  echo
  echo "== $label"
  if [ "$WARMUP" -gt 0 ]; then
    for s in dfotad nginx; do
      local url=$DFOTAD_URL conns=$RANGE_CONNS script=$T/range.lua
      [ "$s" = nginx ] && url=$NGINX_URL
      [ "$metric" = whole ] && { conns=$WHOLE_CONNS; script=$T/whole.lua; }
      run_wrk "$T/wrk.$metric.$s.warmup.out" "$conns" "$WARMUP" "$script" "$url"
      [ "$s" = dfotad ] && TOTAL_DFOTAD_REQUESTS=$((TOTAL_DFOTAD_REQUESTS + $(field "$T/wrk.$metric.$s.warmup.out" requests)))
    done
  fi
  printf '  %-6s %14s %14s %11s %11s\n' round "dfotad $unit" "nginx $unit" "dfotad CPU" "nginx CPU"
  local c1 c2
  for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then first=dfotad; second=nginx; else first=nginx; second=dfotad; fi
    measure "$metric" "$first" "$r"
    v1=$MEASURED c1=$MEASURED_CPU
    measure "$metric" "$second" "$r"
    v2=$MEASURED c2=$MEASURED_CPU
    if [ "$first" = dfotad ]; then
      printf '  %-6s %14s %14s %10s%% %10s%%   (dfotad first)\n' "$r" "$v1" "$v2" "$c1" "$c2"
    else
      printf '  %-6s %14s %14s %10s%% %10s%%   (nginx first)\n' "$r" "$v2" "$v1" "$c2" "$c1"
    fi
  done
  local md mn
  md=$(awk -v m="$metric" '$1 == "dfotad" && $2 == m { print $4 }' "$T/results" | median)
  mn=$(awk -v m="$metric" '$1 == "nginx" && $2 == m { print $4 }' "$T/results" | median)
  TOTAL_DFOTAD_REQUESTS=$((TOTAL_DFOTAD_REQUESTS + $(awk -v m="$metric" '$1 == "dfotad" && $2 == m { s += $5 } END { print s + 0 }' "$T/results")))
  local lat_d lat_n p99_d p99_n
  lat_d=$(awk -v m="$metric" '$1 == "dfotad" && $2 == m { print $6 / 1000 }' "$T/results" | median)
  lat_n=$(awk -v m="$metric" '$1 == "nginx" && $2 == m { print $6 / 1000 }' "$T/results" | median)
  p99_d=$(awk -v m="$metric" '$1 == "dfotad" && $2 == m { print $7 / 1000 }' "$T/results" | median)
  p99_n=$(awk -v m="$metric" '$1 == "nginx" && $2 == m { print $7 / 1000 }' "$T/results" | median)
  printf '  %-6s %14s %14s   ratio dfotad/nginx %s\n' median "$md" "$mn" "$(ratio "$md" "$mn")"
  printf '  %-6s %14s %14s   (median of per-run p50 latency, ms)\n' "p50 ms" "$lat_d" "$lat_n"
  printf '  %-6s %14s %14s   (median of per-run p99 latency, ms)\n' "p99 ms" "$p99_d" "$p99_n"
  local cpu_d cpu_n eff_d eff_n
  cpu_d=$(awk -v m="$metric" '$1 == "dfotad" && $2 == m { print $8 }' "$T/results" | median)
  cpu_n=$(awk -v m="$metric" '$1 == "nginx" && $2 == m { print $8 }' "$T/results" | median)
  eff_d=$(awk -v m="$metric" '$1 == "dfotad" && $2 == m && $8 > 0 { print $4 / ($8 / 100) }' "$T/results" | median)
  eff_n=$(awk -v m="$metric" '$1 == "nginx" && $2 == m && $8 > 0 { print $4 / ($8 / 100) }' "$T/results" | median)
  printf '  %-6s %14s %14s   (median server CPU, %% of one CPU)\n' "CPU %" "$cpu_d" "$cpu_n"
  printf '  %-6s %14s %14s   (median %s per server CPU-second; ratio %s)\n' "per-CPU" "$eff_d" "$eff_n" \
    "${unit%/s}" "$(ratio "$eff_d" "$eff_n")"
  eval "EFF_${metric}_dfotad=\$eff_d; EFF_${metric}_nginx=\$eff_n"
  eval "MED_${metric}_dfotad=\$md; MED_${metric}_nginx=\$mn"
}

case " $METRICS " in *" range "*)
  run_metric range "a) random ${RANGE_LEN}-byte ranges (align $ALIGN), $RANGE_CONNS connections: requests/s" "req/s" ;;
esac
case " $METRICS " in *" whole "*)
  run_metric whole "b) whole-file downloads ($SIZE bytes), $WHOLE_CONNS connections: MB/s (10^6 bytes)" "MB/s" ;;
esac

# ---------------------------------------------------------------------------
# After the runs: dfotad still well? Memory, statistics, log.

alive "$DFOTAD_PID" || die "dfotad died during the benchmark (log: $(tail -n 5 "$T/dfotad.log"))"
HWM=$(awk '/^VmHWM:/ { print $2 }' "/proc/$DFOTAD_PID/status" 2>/dev/null)
RSS=$(awk '/^VmRSS:/ { print $2 }' "/proc/$DFOTAD_PID/status" 2>/dev/null)
THREADS=$(awk '/^Threads:/ { print $2 }' "/proc/$DFOTAD_PID/status" 2>/dev/null)
NGINX_HWM=0
for p in $NGINX_PID $(pgrep -P "$NGINX_PID" 2>/dev/null); do
  h=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null)
  NGINX_HWM=$((NGINX_HWM + ${h:-0}))
done

echo
echo "== dfotad after the runs"
echo "  peak RSS (VmHWM): $((${HWM:-0} / 1024)) MiB (${HWM:-?} kB); RSS now $((${RSS:-0} / 1024)) MiB; threads $THREADS"
echo "  nginx master+workers peak RSS, summed: $((NGINX_HWM / 1024)) MiB"

# statistics: requests counted by dfotad vs requests wrk completed
STATS_NOTE=
if "${CURL[@]}" -o "$T/pkg.json" -H "Authorization: Bearer $TOKEN" "$ADMIN_URL/api/v1/packages/$PKG_ID"; then
  if command -v jq >/dev/null 2>&1; then
    S_REQ=$(jq -r '.stats.requests' <"$T/pkg.json")
    S_DL=$(jq -r '.stats.downloads' <"$T/pkg.json")
    S_BYTES=$(jq -r '.stats.bytes_sent' <"$T/pkg.json")
  else
    S_REQ=$(json_num "$T/pkg.json" requests)
    S_DL=$(json_num "$T/pkg.json" downloads)
    S_BYTES=$(json_num "$T/pkg.json" bytes_sent)
  fi
  # wrk counts completed responses; dfotad also counts the 2 verification
  # GETs and requests cut off when a run ends, so it may be a little higher.
  EXPECT_MIN=$((TOTAL_DFOTAD_REQUESTS + 2))
  echo "  statistics: requests=$S_REQ downloads=$S_DL bytes_sent=$S_BYTES (wrk completed $TOTAL_DFOTAD_REQUESTS requests + 2 checks)"
  if [ -n "$S_REQ" ] && [ "$S_REQ" -lt "$EXPECT_MIN" ] 2>/dev/null; then
    STATS_NOTE="statistics lost $((EXPECT_MIN - S_REQ)) requests under load"
    echo "  WARNING: $STATS_NOTE"
  fi
else
  echo "  WARNING: could not read the package's statistics"
fi
NLOG=$(grep -c . "$T/dfotad.log" 2>/dev/null)
if [ "${NLOG:-0}" -gt 0 ]; then
  echo "  dfotad logged $NLOG line(s) at warn or above; first ones:"
  head -n 5 "$T/dfotad.log" | sed 's/^/    /'
fi
[ "$ERRORS_SEEN" -gt 0 ] && echo "  WARNING: wrk saw $ERRORS_SEEN errors or non-2xx responses in timed runs (see above)"

# ---------------------------------------------------------------------------
# Summary

echo
echo "== summary (for BENCHMARKS.md)"
echo '```'
echo "date:     $DATE"
echo "machine:  $NPROC CPUs, $CPU_MODEL, $KERNEL; ${BUSY:-?}% busy before the run"
echo "servers:  dfotad $DFOTAD_VERSION vs $NGINX_VERSION (sendfile, tcp_nopush, open_file_cache, workers auto); loopback"
[ -n "${BENCH_DFOTAD_CONF:-}" ] && echo "dfotad:   with $(printf '%s' "$BENCH_DFOTAD_CONF" | tr '\n' ' ')"
echo "client:   wrk $WRK_VERSION -t$WRK_THREADS on the same host; $ROUNDS rounds x ${DURATION}s, alternating; medians"
printf '%-34s %12s %12s %8s\n' "metric" dfotad nginx ratio
[ -n "$MED_range_dfotad" ] &&
  printf '%-34s %12s %12s %8s\n' "${RANGE_LEN}-byte ranges, c$RANGE_CONNS (req/s)" "$MED_range_dfotad" "$MED_range_nginx" \
    "$(ratio "$MED_range_dfotad" "$MED_range_nginx")"
[ -n "$MED_whole_dfotad" ] &&
  printf '%-34s %12s %12s %8s\n' "$((SIZE / 1048576)) MiB whole file, c$WHOLE_CONNS (MB/s)" "$MED_whole_dfotad" "$MED_whole_nginx" \
    "$(ratio "$MED_whole_dfotad" "$MED_whole_nginx")"
[ -n "$EFF_range_dfotad" ] &&
  printf '%-34s %12s %12s %8s\n' "  ranges per server CPU-second" "$EFF_range_dfotad" "$EFF_range_nginx" \
    "$(ratio "$EFF_range_dfotad" "$EFF_range_nginx")"
[ -n "$EFF_whole_dfotad" ] &&
  printf '%-34s %12s %12s %8s\n' "  MB per server CPU-second" "$EFF_whole_dfotad" "$EFF_whole_nginx" \
    "$(ratio "$EFF_whole_dfotad" "$EFF_whole_nginx")"
echo "dfotad peak RSS: $((${HWM:-0} / 1024)) MiB${STATS_NOTE:+; $STATS_NOTE}"
[ "$ERRORS_SEEN" -gt 0 ] && echo "wrk errors/non-2xx in timed runs: $ERRORS_SEEN"
echo '```'
exit 0
