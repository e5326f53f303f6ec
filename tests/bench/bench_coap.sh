#!/bin/bash
# bench_coap.sh: dfotad's CoAP(S) front against libcoap's own
# coap-server-openssl, serving the same 1 MiB file; then dfotad's memory
# with 1,000 DTLS PSK sessions open.
#
# Usage: tests/bench/bench_coap.sh [path/to/dfotad]   (default ./server/dfotad)
#
# Environment:
#   BENCH_ROUNDS=3      timed rounds per server and mode (1..20)
#   BENCH_CLIENTS=16    parallel downloads per round (1..256)
#   BENCH_SESSIONS=1000 DTLS PSK sessions for the memory figure (0..5000)
#   BENCH_KEEP=1        keep the temporary directory
#
# A round starts BENCH_CLIENTS coap-client-openssl processes at once, each
# downloading the whole file at 1024-byte blocks (-b 1024), and times the
# round until the last one ends; every download is checked (sha256).
# Rounds alternate between the servers. Modes: plain CoAP, and DTLS with a
# pre-shared key (a handshake per client). dfotad serves /p/ID (anonymous
# packages on); coap-server-openssl serves the file PUT to it first (its
# large-body support answers the blocks). Ratio: coap-server's time over
# dfotad's (above 1: dfotad is faster). The same client processes cost
# the same on both sides. Loopback only; every step is bounded in time.
set -u
umask 022

DFOTAD=${1:-./server/dfotad}
case $DFOTAD in /*) ;; *) DFOTAD="$PWD/${DFOTAD#./}" ;; esac
ROUNDS=${BENCH_ROUNDS:-3}
CLIENTS=${BENCH_CLIENTS:-16}
SESSIONS=${BENCH_SESSIONS:-1000}
CLIENT=coap-client-openssl
SERVER=coap-server-openssl
KEY=bench-psk-key-0123456789

T=$(mktemp -d /tmp/bench_coap.XXXXXX) || exit 1
CURL=(curl -s --max-time 30)
. "$(dirname "$0")/common.sh"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  [ "${BENCH_KEEP:-0}" = 1 ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT

int_in "$ROUNDS" 1 20 || die "BENCH_ROUNDS must be 1..20"
int_in "$CLIENTS" 1 256 || die "BENCH_CLIENTS must be 1..256"
int_in "$SESSIONS" 0 5000 || die "BENCH_SESSIONS must be 0..5000"
for tool in "$CLIENT" "$SERVER" curl jq python3 sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || die "needs $tool (apt-get install libcoap3-bin curl jq)"
done
[ -x "$DFOTAD" ] || die "no dfotad at $DFOTAD"

read -r HTTP_PORT ADMIN_PORT < <(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
read -r COAP_PORT COAPS_PORT SRV_PORT < <(python3 -c 'import socket
# coap-server-openssl takes PORT for CoAP and PORT+1 for DTLS: find a pair
import random
def free(p):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
out = []
while len(out) < 2:
    p = random.randint(20000, 60000)
    if free(p) and p not in out: out.append(p)
while True:
    p = random.randint(20000, 60000)
    if free(p) and free(p + 1) and p not in out and p + 1 not in out: break
print(out[0], out[1], p)')

head -c 1048576 /dev/urandom >"$T/file.bin"
WANT=$(sha256sum "$T/file.bin" | cut -d' ' -f1)

# --- dfotad --------------------------------------------------------------------
start_bench_dfotad
kill "$DFOTAD_PID"
wait "$DFOTAD_PID" 2>/dev/null
cat >>"$T/dfotad.conf" <<CONF

[coap]
listen = 127.0.0.1:$COAP_PORT
anonymous_packages = yes

[coaps]
listen = 127.0.0.1:$COAPS_PORT
anonymous_packages = yes
timeout = 600
connection_limit = 10000
CONF
"$DFOTAD" -c "$T/dfotad.conf" >"$T/dfotad.out" 2>"$T/dfotad.log" &
DFOTAD_PID=$!
PIDS+=("$DFOTAD_PID")
wait_until 15 http_ok "$ADMIN_URL/healthz" 200 || die "dfotad did not come up"
AUTH="Authorization: Bearer $TOKEN"
ID=$("${CURL[@]}" -H "$AUTH" --data-binary @"$T/file.bin" \
  "$ADMIN_URL/api/v1/packages?model=M&from=A&to=B&name=bench.bin" | jq -r .id)
[ -n "$ID" ] && [ "$ID" != null ] || die "upload to dfotad failed"
HEX=$(printf '%s' "$KEY" | od -An -tx1 | tr -d ' \n')
"${CURL[@]}" -X PUT -H "$AUTH" -d "{\"model\":\"M\",\"psk\":\"$HEX\",\"psk_identity\":\"bench\"}" \
  "$ADMIN_URL/api/v1/devices/bench" >/dev/null || die "device with PSK"

# --- coap-server-openssl ---------------------------------------------------------
"$SERVER" -A 127.0.0.1 -p "$SRV_PORT" -d 4 -k "$KEY" >"$T/server.log" 2>&1 &
SRV_PID=$!
PIDS+=("$SRV_PID")
sleep 0.5
timeout 60 "$CLIENT" -B 30 -m put -b 1024 -f "$T/file.bin" "coap://127.0.0.1:$SRV_PORT/bench" \
  >/dev/null 2>&1 || die "PUT to coap-server-openssl failed"

# url SERVER MODE
url() {
  case "$1/$2" in
  dfotad/coap) echo "coap://127.0.0.1:$COAP_PORT/p/$ID" ;;
  dfotad/coaps) echo "coaps://127.0.0.1:$COAPS_PORT/p/$ID" ;;
  libcoap/coap) echo "coap://127.0.0.1:$SRV_PORT/bench" ;;
  libcoap/coaps) echo "coaps://127.0.0.1:$((SRV_PORT + 1))/bench" ;;
  esac
}

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# round SERVER MODE N: N parallel downloads; prints the seconds and the
# server's CPU seconds, or FAIL
round() {
  local u a=() start i bad=0 pids=() pid c0
  u=$(url "$1" "$2")
  pid=$([ "$1" = dfotad ] && echo "$DFOTAD_PID" || echo "$SRV_PID")
  c0=$(ticks "$pid")
  [ "$2" = coaps ] && a=(-u bench -k "$KEY")
  start=$(date +%s.%N)
  for i in $(seq 1 "$3"); do
    timeout 120 "$CLIENT" -B 100 "${a[@]}" -b 1024 -o "$T/dl.$i" "$u" >/dev/null 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}"
  local t
  t=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
  for i in $(seq 1 "$3"); do
    [ "$(sha256sum "$T/dl.$i" 2>/dev/null | cut -d' ' -f1)" = "$WANT" ] || bad=$((bad + 1))
    rm -f "$T/dl.$i"
  done
  local cpu
  cpu=$(awk -v a="$c0" -v b="$(ticks "$pid")" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')
  [ $bad = 0 ] && echo "$t $cpu" || echo "FAIL($bad) -"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "== $(nproc) CPUs, $(uname -sr), $("$CLIENT" 2>&1 | head -n 1)"
echo "== $CLIENTS parallel 1 MiB downloads at 1024-byte blocks, $ROUNDS rounds per server and mode"
declare -A res cpus
for mode in coap coaps; do
  for r in $(seq 1 "$ROUNDS"); do
    order="dfotad libcoap"
    [ $((r % 2)) = 0 ] && order="libcoap dfotad"
    for s in $order; do
      read -r t cpu < <(round "$s" "$mode" "$CLIENTS")
      echo "$mode round $r $s: $t s, server CPU $cpu s"
      res[$mode/$s]="${res[$mode/$s]:-} $t"
      cpus[$mode/$s]="${cpus[$mode/$s]:-} $cpu"
    done
  done
done
echo
echo "| mode | dfotad (s) | coap-server-openssl (s) | coap-server/dfotad | server CPU s: dfotad / coap-server |"
echo "|---|---|---|---|---|"
for mode in coap coaps; do
  d=$(echo "${res[$mode/dfotad]}" | tr ' ' '\n' | grep -E '^[0-9.]+$' | median)
  l=$(echo "${res[$mode/libcoap]}" | tr ' ' '\n' | grep -E '^[0-9.]+$' | median)
  ratio=$(awk -v a="$d" -v b="$l" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "-" }')
  dc=$(echo "${cpus[$mode/dfotad]}" | tr ' ' '\n' | grep -E '^[0-9.]+$' | median)
  lc=$(echo "${cpus[$mode/libcoap]}" | tr ' ' '\n' | grep -E '^[0-9.]+$' | median)
  label=$([ "$mode" = coap ] && echo "plain CoAP" || echo "DTLS PSK")
  echo "| $label, $CLIENTS x 1 MiB | $d | $l | **$ratio** | $dc / $lc |"
done

# --- memory with many DTLS PSK sessions -------------------------------------------
if [ "$SESSIONS" -gt 0 ]; then
  rss() { awk '/^VmRSS/ { print $2 }' "/proc/$DFOTAD_PID/status"; }
  before=$(rss)
  u="coaps://127.0.0.1:$COAPS_PORT/p/$ID"
  n=0
  while [ $n -lt "$SESSIONS" ]; do
    pids=()
    for i in $(seq 1 50); do
      [ $n -lt "$SESSIONS" ] || break
      # a handshake and one block, then the client waits (-s: observe);
      # killed without a DTLS close_notify, its session stays open on the
      # server, as a module's does when it loses coverage
      "$CLIENT" -B 20 -s 20 -u bench -k "$KEY" -b 0,1024 -o /dev/null "$u" >/dev/null 2>&1 &
      pids+=($!)
      n=$((n + 1))
    done
    sleep 1.5
    kill -9 "${pids[@]}" 2>/dev/null
    wait "${pids[@]}" 2>/dev/null
  done
  open=$("${CURL[@]}" "$ADMIN_URL/metrics" | awk '$1 == "dfotad_sessions_open{protocol=\"coaps\"}" { print $2 }')
  after=$(rss)
  hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$DFOTAD_PID/status")
  echo
  echo "| DTLS PSK sessions open | dfotad RSS before | RSS with them | peak RSS (VmHWM) |"
  echo "|---|---|---|---|"
  echo "| $open | $((before / 1024)) MiB | $((after / 1024)) MiB | $((hwm / 1024)) MiB |"
fi
