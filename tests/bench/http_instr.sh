#!/bin/bash
# http_instr.sh: user-space instructions per HTTP range request, counted by
# callgrind: a figure that does not depend on how busy the machine is
# (bench.sh's requests/s and CPU-seconds do, a lot, on a shared machine).
#
# Usage: tests/bench/http_instr.sh [path/to/dfotad]     (default ./server/dfotad)
#
# Environment:
#   INSTR_REQUESTS=2000  range requests counted (100..100000)
#   INSTR_ALIGN=2048     range starts are multiples of this: 2048 gives 5,120
#                        distinct 2 KiB ranges of the 10 MiB file (bench.sh's
#                        pattern), 1048576 gives 10 (ranges asked again)
#   BENCH_KEEP=1         keep the temporary directory (callgrind's output)
#
# What it does: starts dfotad under valgrind --tool=callgrind with
# `[http] threads = 1` (statistics on, log level warn, as bench.sh),
# uploads a 10 MiB random file, asks 200 ranges to warm up, zeroes the
# counters, asks INSTR_REQUESTS random 2048-byte ranges on one keep-alive
# connection (Python's http.client, the same seed every run), dumps the
# counters and prints the instructions per request (every thread of the
# daemon: libmicrohttpd, ours, libc; not the kernel's).
#
# Only loopback; bounded in time; the daemon and the temporary directory
# are removed on exit.

set -u
umask 022

DFOTAD=${1:-./server/dfotad}
case $DFOTAD in
/*) ;;
*) DFOTAD="$PWD/${DFOTAD#./}" ;;
esac
N=${INSTR_REQUESTS:-2000}
ALIGN=${INSTR_ALIGN:-2048}
SIZE=$((10 * 1024 * 1024))

. "$(dirname "$0")/common.sh" # die, int_in, wait_until, http_ok, start_bench_dfotad
int_in "$N" 100 100000 || die "INSTR_REQUESTS must be 100..100000 (got '$N')"
int_in "$ALIGN" 1 1048576 || die "INSTR_ALIGN must be 1..1048576 (got '$ALIGN')"
[ -x "$DFOTAD" ] || die "dfotad binary '$DFOTAD' not found or not executable"
for tool in valgrind callgrind_control python3 curl head timeout; do
  command -v "$tool" >/dev/null 2>&1 || die "needs $tool"
done
CURL=(curl -sS --noproxy '*' --max-time 60)

REAL_DFOTAD=$DFOTAD
DFOTAD_PID=
bench_tmpdir http_instr "${BENCH_KEEP:-0}" DFOTAD_PID

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# read by start_bench_dfotad (common.sh)
# shellcheck disable=SC2034
HTTP_PORT=$(free_port) || die "no free port"
# shellcheck disable=SC2034
ADMIN_PORT=$(free_port) || die "no free port"

# the daemon under callgrind (exec: the same pid), its -t check without
cat >"$T/dfotad-cg" <<EOF
#!/bin/sh
case " \$* " in *" -t "*) exec "$REAL_DFOTAD" "\$@" ;; esac
exec valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$T/cg.out" "$REAL_DFOTAD" "\$@"
EOF
chmod +x "$T/dfotad-cg"
DFOTAD=$T/dfotad-cg
# shellcheck disable=SC2034  # read by start_bench_dfotad
BENCH_DFOTAD_CONF=$(printf '[http]\nthreads = 1')
start_bench_dfotad

head -c "$SIZE" /dev/urandom >"$T/pkg.bin" || die "no random file"
URL=$("${CURL[@]}" -X POST -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/octet-stream' --data-binary @"$T/pkg.bin" \
  "$ADMIN_URL/api/v1/packages?model=INSTR-1&from=1.0.0&to=1.0.1&name=pkg.bin" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["url"])') || die "upload failed"

cat >"$T/client.py" <<EOF
import http.client, random, sys, urllib.parse
u = urllib.parse.urlparse("$URL")
n, seed = int(sys.argv[1]), int(sys.argv[2])
random.seed(seed)
c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
slots = ($SIZE - 2048) // $ALIGN + 1
for i in range(n):
    start = random.randrange(slots) * $ALIGN
    c.request("GET", u.path, headers={"Range": "bytes=%d-%d" % (start, start + 2047)})
    r = c.getresponse()
    body = r.read()
    if r.status != 206 or len(body) != 2048:
        sys.exit("unexpected answer %d with %d bytes" % (r.status, len(body)))
EOF
timeout 600 python3 "$T/client.py" 200 1 || die "warm-up failed"
callgrind_control -z "$DFOTAD_PID" >/dev/null 2>&1 || die "callgrind_control -z failed"
timeout 1200 python3 "$T/client.py" "$N" 7 || die "the counted requests failed"
callgrind_control -d "$DFOTAD_PID" >/dev/null 2>&1 || die "callgrind_control -d failed"
# one dump per thread: libmicrohttpd's worker is the busiest; the others
# (the writer's commits, the ticks) do time-driven work that grows with
# how long the run took, so they are shown apart
read -r WORKER TOTAL < <(for f in "$T"/cg.out*; do awk '/^summary:/ { print $2 }' "$f"; done |
  awk '{ t += $1; if ($1 > m) m = $1 } END { print m + 0, t + 0 }')
[ "${TOTAL:-0}" -gt 0 ] || die "no callgrind dump"

echo "dfotad:       $REAL_DFOTAD"
echo "requests:     $N random 2048-byte ranges, starts aligned to $ALIGN, one keep-alive connection, [http] threads = 1"
echo "instructions: $WORKER in the request thread ($((WORKER / N)) per request); all threads $TOTAL ($((TOTAL / N)) per request)"
