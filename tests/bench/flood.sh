#!/bin/bash
# flood.sh: thousands of slow downloads at once, dfotad against nginx in the
# same run: what each server's memory (RSS) costs per connection, and
# whether every download keeps receiving while a fresh client is served.
#
# Usage: tests/bench/flood.sh [path/to/dfotad]      (default ./server/dfotad)
#
# Environment:
#   FLOOD_CONNS=10000     concurrent slow downloads per server (100..50000)
#   FLOOD_SECONDS=120     how long each flood lasts (20..3600)
#   FLOOD_RATE=512        bytes a second each client reads (1..1048576)
#   FLOOD_RCVBUF=4096     each client's receive buffer (SO_RCVBUF)
#   FLOOD_SIZE_MIB=10     the package (1..1024)
#   FLOOD_SERVERS="dfotad nginx"
#   FLOOD_LORIS=2000      slowloris connections after the flood (0: none)
#   FLOOD_DFOTAD_CONF=    extra lines for dfotad's [http] section (\n between lines)
#   FLOOD_KEEP=1          keep the temporary directory
#
# Per server: tests/load/flood (built here from flood.c) opens the
# connections (2,000 a second), each reading FLOOD_RATE bytes a second of
# the whole package with a small receive buffer, checking every byte it gets
# against the file; halfway through, curl downloads the whole package at
# full speed (sha256 checked, time to first byte printed); at the end the
# server's RSS (VmRSS of every process: nginx's master and workers) and
# descriptors are read while every connection is still open. Then
# FLOOD_LORIS slowloris connections from one address, a header byte every
# 3 s, for 30 s, with fresh downloads during them. Loopback only,
# bounded in time; servers and the temporary directory go on exit.

set -u
umask 022

DFOTAD=${1:-./server/dfotad}
case $DFOTAD in /*) ;; *) DFOTAD="$PWD/${DFOTAD#./}" ;; esac
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh" # die, int_in, wait_until, http_ok

CONNS=${FLOOD_CONNS:-10000}
SECONDS_RUN=${FLOOD_SECONDS:-120}
RATE=${FLOOD_RATE:-512}
RCVBUF=${FLOOD_RCVBUF:-4096}
SIZE_MIB=${FLOOD_SIZE_MIB:-10}
SERVERS=${FLOOD_SERVERS:-dfotad nginx}
LORIS=${FLOOD_LORIS:-2000}
int_in "$CONNS" 100 50000 || die "FLOOD_CONNS must be 100..50000"
int_in "$SECONDS_RUN" 20 3600 || die "FLOOD_SECONDS must be 20..3600"
int_in "$RATE" 1 1048576 || die "FLOOD_RATE must be 1..1048576"
int_in "$RCVBUF" 0 16777216 || die "FLOOD_RCVBUF must be 0..16777216"
int_in "$SIZE_MIB" 1 1024 || die "FLOOD_SIZE_MIB must be 1..1024"
int_in "$LORIS" 0 50000 || die "FLOOD_LORIS must be 0..50000"
[ -x "$DFOTAD" ] || die "dfotad binary '$DFOTAD' not found (build it first)"
for tool in curl cc sha256sum awk timeout; do
  command -v "$tool" >/dev/null 2>&1 || die "needs $tool"
done
NGINX=$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; }) || NGINX=
case " $SERVERS " in *" nginx "*) [ -n "$NGINX" ] || die "needs nginx (sh tests/deps.sh --bench)" ;; esac

# each side needs a descriptor per connection and some (the soft limit only:
# dfotad raises its own within the hard one)
need=$((CONNS + 400))
[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge "$need" ] ||
  die "the hard descriptor limit $(ulimit -Hn) is below $need"
ulimit -Sn "$need" || die "cannot raise the descriptor limit to $need"

SIZE=$((SIZE_MIB * 1024 * 1024))
CURL=(curl -sS --noproxy '*' --max-time 60)
T=$(mktemp -d "${TMPDIR:-/tmp}/dfotad-flood.XXXXXX") || die "mktemp failed"
DFOTAD_PID= NGINX_PID= FLOOD_PID=

cleanup() {
  local rc=$? p i workers=
  trap - EXIT INT TERM HUP
  [ -n "$NGINX_PID" ] && workers=$(pgrep -P "$NGINX_PID" 2>/dev/null)
  for p in $FLOOD_PID $DFOTAD_PID $NGINX_PID; do kill -TERM "$p" 2>/dev/null; done
  for p in $FLOOD_PID $DFOTAD_PID $NGINX_PID $workers; do
    for ((i = 0; i < 50; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  wait 2>/dev/null
  if [ "${FLOOD_KEEP:-0}" = 1 ]; then echo "flood: kept $T" >&2; else rm -rf "$T"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "flood: interrupted" >&2; exit 130' INT TERM HUP

free_port() {
  python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# pids_rss PID...: kB of VmRSS (and RssAnon, RssFile) summed over the processes
pids_rss() {
  local p
  for p in "$@"; do cat "/proc/$p/status" 2>/dev/null; done |
    awk '/^VmRSS:/ { r += $2 } /^RssAnon:/ { a += $2 } /^RssFile:/ { f += $2 }
         END { printf "%d %d %d\n", r, a, f }'
}
pids_fds() {
  local p n=0
  for p in "$@"; do n=$((n + $(ls "/proc/$p/fd" 2>/dev/null | wc -l))); done
  echo "$n"
}

cc -O2 -o "$T/flood" "$HERE/../load/flood.c" || die "cannot build tests/load/flood.c"
head -c "$SIZE" /dev/urandom >"$T/pkg.bin" || die "cannot write the package"
SHA=$(sha256sum "$T/pkg.bin" | cut -d' ' -f1)

echo "== flood benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
echo "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(uname -sr)"
echo "load:    $CONNS slow downloads per server, each reading $RATE B/s with SO_RCVBUF $RCVBUF, of a $SIZE_MIB MiB package, for ${SECONDS_RUN}s"

# run_flood NAME PORT URLPATH PIDS...: prints one "result" line
run_flood() {
  local name=$1 port=$2 upath=$3
  shift 3
  local pids=("$@") base rss fresh code ttfb sha figures fds tcpmem
  base=$(pids_rss "${pids[@]}")
  "$T/flood" slow -p "$port" -u "$upath" -n "$CONNS" -r "$RATE" -b "$RCVBUF" -t "$SECONDS_RUN" \
    -f "$T/pkg.bin" -C 2000 -w 30 >"$T/$name.flood" 2>"$T/$name.flood.err" &
  FLOOD_PID=$!
  sleep $((SECONDS_RUN / 2))
  # a fresh device during the flood: the whole package at full speed
  fresh=$("${CURL[@]}" -o "$T/$name.fresh" -w '%{http_code} %{time_starttransfer} %{time_total}' \
    "http://127.0.0.1:$port$upath" 2>&1) || fresh="failed: $fresh"
  sha=$(sha256sum "$T/$name.fresh" 2>/dev/null | cut -d' ' -f1)
  rm -f "$T/$name.fresh"
  sleep $((SECONDS_RUN - SECONDS_RUN / 2 - 3))
  rss=$(pids_rss "${pids[@]}")
  fds=$(pids_fds "${pids[@]}")
  tcpmem=$(awk '/^TCP:/ { for (i = 1; i < NF; i++) if ($i == "mem") print $(i + 1) * 4 }' /proc/net/sockstat)
  wait "$FLOOD_PID"
  FLOOD_PID=
  figures=$(cat "$T/$name.flood")
  set -- $rss
  local rss_kb=$1 anon_kb=$2 file_kb=$3
  set -- $base
  local base_kb=$1
  read -r code ttfb _ <<<"$fresh"
  echo "$name: $figures"
  echo "$name: fresh client: HTTP $code, first byte after ${ttfb}s, sha256 $([ "$sha" = "$SHA" ] && echo ok || echo WRONG)"
  echo "$name: RSS ${rss_kb} kB (anon ${anon_kb}, file ${file_kb}; ${base_kb} kB idle), descriptors $fds, kernel TCP memory ${tcpmem} kB (both ends)"
  awk -v n="$name" -v r="$rss_kb" -v b="$base_kb" -v c="$CONNS" \
    'BEGIN { printf "%s: %.0f bytes of RSS per connection (over idle), %.1f MiB in all\n", n, (r - b) * 1024 / c, r / 1024 }'
  echo "result $name rss_kb=$rss_kb anon_kb=$anon_kb idle_kb=$base_kb fds=$fds fresh=$code:$([ "$sha" = "$SHA" ] && echo ok || echo bad) $figures" >>"$T/results"
}

# run_loris NAME PORT URLPATH: FLOOD_LORIS slowloris connections from one
# address (a header byte every 3 s) for 30 s, fresh downloads during them
run_loris() {
  local name=$1 port=$2 upath=$3 i fresh figures
  [ "$LORIS" -gt 0 ] || return 0
  "$T/flood" loris -p "$port" -u "$upath" -n "$LORIS" -i 3 -t 30 -C 2000 >"$T/$name.loris" 2>&1 &
  FLOOD_PID=$!
  for i in 1 2 3; do
    sleep 6
    fresh=$("${CURL[@]}" -o "$T/$name.fresh" -w '%{http_code} %{time_starttransfer}' \
      "http://127.0.0.1:$port$upath" 2>&1) || fresh="failed: $fresh"
    echo "$name: slowloris: fresh client $i: HTTP ${fresh% *}, first byte after ${fresh#* }s, sha256 $([ "$(sha256sum <"$T/$name.fresh" | cut -d' ' -f1)" = "$SHA" ] && echo ok || echo WRONG)"
  done
  wait "$FLOOD_PID"
  FLOOD_PID=
  figures=$(cat "$T/$name.loris")
  echo "$name: slowloris: $figures"
  echo "result $name loris $figures" >>"$T/results"
}

for s in $SERVERS; do
  case $s in
  dfotad)
    HTTP_PORT=$(free_port) ADMIN_PORT=$(free_port)
    mkdir -p "$T/state"
    cat >"$T/dfotad.conf" <<EOF
[server]
state_dir = $T/state
log_level = warn

[http]
listen = 127.0.0.1:$HTTP_PORT
connection_limit = $((CONNS + 100))
$(printf '%b' "${FLOOD_DFOTAD_CONF:-}")

[admin]
listen = 127.0.0.1:$ADMIN_PORT
EOF
    timeout 10 "$DFOTAD" -c "$T/dfotad.conf" -t >"$T/dfotad-t.out" 2>&1 ||
      { cat "$T/dfotad-t.out" >&2; die "dfotad -t rejected the configuration"; }
    "$DFOTAD" -c "$T/dfotad.conf" >"$T/dfotad.out" 2>"$T/dfotad.log" &
    DFOTAD_PID=$!
    ADMIN_URL="http://127.0.0.1:$ADMIN_PORT"
    wait_until 15 http_ok "$ADMIN_URL/healthz" 200 || die "dfotad did not come up"
    wait_until 5 test -s "$T/state/admin.token" || die "no admin token"
    TOKEN=$(head -n 1 "$T/state/admin.token" | tr -d '\r\n')
    code=$("${CURL[@]}" -o "$T/upload.json" -w '%{http_code}' -X POST \
      -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/octet-stream' \
      --data-binary @"$T/pkg.bin" \
      "$ADMIN_URL/api/v1/packages?model=FLOOD-1&from=1.0.0&to=1.0.1&name=pkg.bin") ||
      die "upload to dfotad failed"
    [ "$code" = 201 ] || die "upload: HTTP $code"
    PKG_ID=$(jq -r .id "$T/upload.json")
    # one download first, so that both servers start with the file in cache
    "${CURL[@]}" -o /dev/null "http://127.0.0.1:$HTTP_PORT/p/$PKG_ID" || die "first download failed"
    run_flood dfotad "$HTTP_PORT" "/p/$PKG_ID" "$DFOTAD_PID"
    run_loris dfotad "$HTTP_PORT" "/p/$PKG_ID"
    kill "$DFOTAD_PID"; wait "$DFOTAD_PID" 2>/dev/null; DFOTAD_PID=
    ;;
  nginx)
    NGINX_PORT=$(free_port)
    mkdir -p "$T/www/f" "$T/nginx/logs" "$T/nginx/tmp"
    cp "$T/pkg.bin" "$T/www/f/pkg.bin"
    chmod 0711 "$T"; chmod 0755 "$T/www" "$T/www/f"; chmod 0644 "$T/www/f/pkg.bin"
    # bench.sh's nginx, with room for the flood
    cat >"$T/nginx/nginx.conf" <<EOF
worker_processes auto;
worker_rlimit_nofile $((CONNS + 200));
pid $T/nginx/nginx.pid;
error_log $T/nginx/logs/error.log warn;
events { worker_connections $((CONNS + 100)); }
http {
    default_type application/octet-stream;
    sendfile on; tcp_nopush on; tcp_nodelay on; access_log off;
    keepalive_timeout 65; keepalive_requests 100000;
    open_file_cache max=1000 inactive=60s; open_file_cache_valid 60s;
    client_body_temp_path $T/nginx/tmp/body; proxy_temp_path $T/nginx/tmp/proxy;
    fastcgi_temp_path $T/nginx/tmp/fastcgi; uwsgi_temp_path $T/nginx/tmp/uwsgi;
    scgi_temp_path $T/nginx/tmp/scgi;
    server { listen 127.0.0.1:$NGINX_PORT backlog=4096; root $T/www; location / { } }
}
EOF
    "$NGINX" -e "$T/nginx/logs/error.log" -c "$T/nginx/nginx.conf" -p "$T/nginx/" -g 'daemon off;' \
      >"$T/nginx/stdout" 2>&1 &
    NGINX_PID=$!
    wait_until 10 http_ok "http://127.0.0.1:$NGINX_PORT/f/pkg.bin" 200 || die "nginx did not come up"
    # shellcheck disable=SC2046
    run_flood nginx "$NGINX_PORT" /f/pkg.bin "$NGINX_PID" $(pgrep -P "$NGINX_PID")
    run_loris nginx "$NGINX_PORT" /f/pkg.bin
    kill "$NGINX_PID"; wait "$NGINX_PID" 2>/dev/null; NGINX_PID=
    ;;
  *) die "FLOOD_SERVERS: unknown server '$s'" ;;
  esac
done
echo "== summary"
cat "$T/results"
