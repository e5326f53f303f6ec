#!/bin/bash
# lwm2m.sh: dfotad's LwM2M server at scale (issue 15): N registered
# simulated devices over plain CoAP, Package URI written to all of a wave.
#
# Usage: tests/bench/lwm2m.sh [path/to/dfotad]      (default ./server/dfotad)
#
# Environment:
#   LW_DEVICES=10000     devices (100..20000), all trigger lwm2m
#   LW_WAVE=1000         devices in the first wave (10..LW_DEVICES): the
#                        rollout's waves are [100*LW_WAVE/LW_DEVICES, 100]
#   LW_UPDATE_RATE=200   registration Updates per second, in total
#   LW_POLL=60           [coap] lwm2m_poll (s): how often a registered idle
#                        device's offer is asked of the rollouts (the default;
#                        the wave's start wakes its devices whatever this is)
#   LW_MAX_SECONDS=300   bound on each wait (10..3600)
#   LW_KEEP=1            keep the temporary directory
#
# What it does, on free 127.0.0.1 ports with its own state directory:
# uploads a package A -> C; creates the devices in pages of 5,000 (POST
# /api/v1/devices); starts tests/bench/lwm2m_load.py (one process, one
# UDP socket per device) which registers them all and answers the
# server's Reads and Observes; reads VmRSS/VmHWM; lets the Updates run
# 10 s (at rest), then creates and starts a rollout whose first wave is
# LW_WAVE devices, and waits until the client acknowledged LW_WAVE Package
# URI writes; then 5 s more. Prints the registration time, RSS, the time
# from the start call to the last write acknowledged, and p50/p99/worst of
# the Updates' round trips at rest and during the wave, and the goals. A
# round trip ends at the ACK's arrival at the device's socket (the kernel's
# time stamp): the server's answer time, without the load client's loop
# (one Python process for all devices), whose own delays are shown apart.

set -u
umask 022
export PYTHONDONTWRITEBYTECODE=1

DFOTAD=${1:-./server/dfotad}
case $DFOTAD in
/*) ;;
*) DFOTAD="$PWD/${DFOTAD#./}" ;;
esac
N=${LW_DEVICES:-10000}
WAVE=${LW_WAVE:-1000}
RATE=${LW_UPDATE_RATE:-200}
POLL=${LW_POLL:-60}
MAXS=${LW_MAX_SECONDS:-300}
MODEL=BG95-M3
VA=BG95M3LAR02A01
VC=BG95M3LAR02A03
HERE=$(cd "$(dirname "$0")" && pwd)

. "$HERE/common.sh" # die, int_in, wait_until, http_ok, start_bench_dfotad
int_in "$N" 100 20000 || die "LW_DEVICES must be 100..20000 (got '$N')"
int_in "$WAVE" 10 "$N" || die "LW_WAVE must be 10..LW_DEVICES (got '$WAVE')"
int_in "$RATE" 1 5000 || die "LW_UPDATE_RATE must be 1..5000 (got '$RATE')"
int_in "$POLL" 1 60 || die "LW_POLL must be 1..60 (got '$POLL')"
int_in "$MAXS" 10 3600 || die "LW_MAX_SECONDS must be 10..3600 (got '$MAXS')"
[ $((WAVE * 100 % N)) = 0 ] || die "LW_WAVE must be a whole percent of LW_DEVICES"
[ -x "$DFOTAD" ] || die "dfotad binary '$DFOTAD' not found or not executable (build it first)"
for tool in python3 curl jq timeout awk; do
  command -v "$tool" >/dev/null 2>&1 || die "needs $tool"
done

DFOTAD_PID=
LOAD_PID=
bench_tmpdir lwm2m-bench "${LW_KEEP:-0}" DFOTAD_PID LOAD_PID

CURL=(curl -sS --noproxy '*' --max-time "$MAXS")

free_ports() { # N [udp]
  python3 -c 'import socket, sys
kind = socket.SOCK_DGRAM if len(sys.argv) > 2 else socket.SOCK_STREAM
socks = []
for i in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, kind); s.bind(("127.0.0.1", 0)); socks.append(s)
for s in socks: print(s.getsockname()[1])
for s in socks: s.close()' "$@"
}
api() { # METHOD PATH OUTFILE [CURL-ARGS...]: admin request; prints the status
  local m=$1 p=$2 out=$3
  shift 3
  "${CURL[@]}" -o "$out" -w '%{http_code}' -X "$m" -H "Authorization: Bearer $TOKEN" "$@" \
    "$ADMIN_URL$p" 2>>"$T/curl.err" || echo 000
}
proc_field() { awk -v f="$2:" '$1 == f { print $2; exit }' "/proc/$1/status" 2>/dev/null; }
now() { date +%s.%N; }
cpu_s() { # PID: its user + system CPU seconds so far
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat" 2>/dev/null
}
cpu_pct() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { printf "%.0f%%", (t > 0 ? 100 * (b - a) / t : 0) }'; }
mib() { awk -v k="${1:-0}" 'BEGIN { printf "%.0f MiB", k / 1024 }'; }
status() { jq -r "$1" "$T/status.json" 2>/dev/null; }
metric() { "${CURL[@]}" -H "Authorization: Bearer $TOKEN" "$ADMIN_URL/metrics" 2>/dev/null |
  awk -v m="$1" '$1 == m { print $2; exit }'; }

read -r HTTP_PORT ADMIN_PORT <<<"$(free_ports 2 | tr '\n' ' ')"
COAP_PORT=$(free_ports 1 udp)
{ [ -n "$HTTP_PORT" ] && [ -n "$ADMIN_PORT" ] && [ -n "$COAP_PORT" ]; } || die "no free ports"
# shellcheck disable=SC2034  # read by start_bench_dfotad (common.sh)
BENCH_DFOTAD_CONF="[http]
connection_limit = 256
[coap]
listen = 127.0.0.1:$COAP_PORT
connection_limit = $((N + 1000))
timeout = 3600
per_ip_limit = 0
lwm2m = yes
lwm2m_insecure = yes
lwm2m_registrations = $((N + 100))
lwm2m_poll = $POLL"
start_bench_dfotad

echo "== dfotad LwM2M bench ($(date -u +%Y-%m-%dT%H:%M:%SZ)): $N devices, first wave $WAVE, $RATE Updates/s, lwm2m_poll $POLL s"
echo "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(uname -sr)"
echo "dfotad:  $(timeout 5 "$DFOTAD" -V 2>&1 | head -n 1) ($DFOTAD)"

head -c 65536 /dev/urandom >"$T/pkg.bin"
code=$(api POST "/api/v1/packages?model=$MODEL&from=$VA&to=$VC&name=a-c.bin" "$T/up.json" \
  -H 'Content-Type: application/octet-stream' --data-binary @"$T/pkg.bin")
[ "$code" = 201 ] || { cat "$T/up.json" >&2; die "upload: HTTP $code"; }

python3 - "$N" "$MODEL" "$VA" "$T/page" <<'PYEOF' || die "cannot write the pages"
import json, sys
n, model, va, prefix = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
for p, first in enumerate(range(0, n, 5000)):
    with open("%s-%03d.json" % (prefix, p), "w") as f:
        json.dump([{"id": "lwb%06d" % i, "model": model, "version": va, "trigger": "lwm2m",
                    "group": "lwbench"}
                   for i in range(first, min(n, first + 5000))], f)
PYEOF
t0=$(now)
for f in "$T"/page-*.json; do
  code=$(api POST /api/v1/devices "$T/create.json" -H 'Content-Type: application/json' --data-binary @"$f")
  [ "$code" = 200 ] || [ "$code" = 201 ] || { head -c 400 "$T/create.json" >&2; die "create: HTTP $code"; }
done
echo "created:     $N devices in $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s"
RSS0=$(proc_field "$DFOTAD_PID" VmRSS)

T_REG=$(now)
python3 "$HERE/lwm2m_load.py" --server "127.0.0.1:$COAP_PORT" --devices "$N" --prefix lwb \
  --version "$VA" --status "$T/status.json" --out "$T/load.json" --update-rate "$RATE" \
  --max-seconds $((MAXS * 3)) >"$T/load.out" 2>"$T/load.err" &
LOAD_PID=$!
_all_registered() { # read once: the status file may appear between two reads
  local t
  t=$(status .all_registered_at)
  [ -n "$t" ] && [ "$t" != null ]
}
wait_until "$MAXS" _all_registered || {
  tail -n 5 "$T/load.err" >&2
  die "not all registered within $MAXS s: $(cat "$T/status.json" 2>/dev/null)"
}
REG_S=$(awk -v a="$T_REG" -v b="$(status .all_registered_at)" 'BEGIN { printf "%.1f", b - a }')
echo "registered:  $(status .registered) of $N in $REG_S s ($(status .reg_retries) retried, $(status .reg_failed) failed); server: $(metric dfotad_lwm2m_registered) registered"
# the reads and observes of the registrations settle
sleep 10
RSS1=$(proc_field "$DFOTAD_PID" VmRSS)
HWM1=$(proc_field "$DFOTAD_PID" VmHWM)
echo "dfotad RSS:  $(mib "$RSS0") with the devices created, $(mib "$RSS1") with $N registered (VmHWM $(mib "$HWM1"))"

T_REST=$(now)
C0=$(cpu_s "$DFOTAD_PID")
L0=$(cpu_s "$LOAD_PID")
sleep 10
echo "at rest (10 s): dfotad CPU $(cpu_pct "$C0" "$(cpu_s "$DFOTAD_PID")" 10) of one core, load client $(cpu_pct "$L0" "$(cpu_s "$LOAD_PID")" 10)"
T_REST_END=$(now)
PCT=$((WAVE * 100 / N))
printf '{"name":"lwbench","model":"%s","target_version":"%s","selector":{"group":"lwbench"},"waves":[%d,100]}' \
  "$MODEL" "$VC" "$PCT" >"$T/rollout.json"
code=$(api POST /api/v1/rollouts "$T/ro.json" -H 'Content-Type: application/json' --data-binary @"$T/rollout.json")
[ "$code" = 201 ] || { head -c 400 "$T/ro.json" >&2; die "rollout: HTTP $code"; }
RID=$(jq -r .id "$T/ro.json")
T_START=$(now)
C0=$(cpu_s "$DFOTAD_PID")
L0=$(cpu_s "$LOAD_PID")
code=$(api POST "/api/v1/rollouts/$RID/start" "$T/start.json")
case $code in 200 | 202) ;; *) head -c 400 "$T/start.json" >&2; die "start: HTTP $code" ;; esac
_wave_written() { [ "$(status .writes)" -ge "$WAVE" ] 2>/dev/null; }
wait_until "$MAXS" _wave_written
W=$(status .writes)
T_LAST=$(status .last_write)
DT=$(awk -v a="$T_START" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
echo "in the wave ($DT s): dfotad CPU $(cpu_pct "$C0" "$(cpu_s "$DFOTAD_PID")" "$DT") of one core, load client $(cpu_pct "$L0" "$(cpu_s "$LOAD_PID")" "$DT")"
sleep 5
T_END=$(now)
RSS2=$(proc_field "$DFOTAD_PID" VmRSS)
HWM2=$(proc_field "$DFOTAD_PID" VmHWM)
kill -TERM "$LOAD_PID" 2>/dev/null
for ((i = 0; i < 100; i++)); do kill -0 "$LOAD_PID" 2>/dev/null || break; sleep 0.1; done
wait "$LOAD_PID" 2>/dev/null
LOAD_PID=
[ -s "$T/load.json" ] || die "the load client wrote no results"
echo "server metrics: requests ok $(metric 'dfotad_lwm2m_requests_total{result="ok"}'), timeout $(metric 'dfotad_lwm2m_requests_total{result="timeout"}'), updates $(metric dfotad_lwm2m_updates_total), expiries $(metric dfotad_lwm2m_expiries_total)"

python3 - "$T/load.json" "$T_REST" "$T_START" "$T_END" "$T_LAST" "$W" "$WAVE" "$HWM2" "$RSS2" "$T_REST_END" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
rest, start, end = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
last = None if sys.argv[5] in ("null", "") else float(sys.argv[5])
w, wave, hwm, rss = int(sys.argv[6] or 0), int(sys.argv[7]), int(sys.argv[8] or 0), int(sys.argv[9] or 0)
def figs(lo, hi, k=1):
    # k 1: to the ACK's arrival at the device (kernel time stamp), the
    # server's answer time; 2: to when the load client's loop took it
    xs = [u[k] for u in d["updates"] if lo <= u[0] < hi]
    ok = sorted(r * 1000 for r in xs if r is not None)
    lost = sum(1 for r in xs if r is None)
    if not ok:
        return "none", None
    q = lambda p: ok[min(len(ok) - 1, int(p * len(ok)))]
    return ("%d Updates, p50 %.2f ms, p99 %.2f ms, worst %.1f ms, %d unanswered"
            % (len(ok), q(0.5), q(0.99), ok[-1], lost)), q(0.99) if not lost else float("inf")
t_wave = (last - start) if (last and w >= wave) else None
print("wave:        %d of %d Package URI writes acknowledged%s" %
      (w, wave, ", the last %.2f s after the start call" % t_wave if t_wave is not None else ""))
s_rest, _ = figs(rest, float(sys.argv[10]))
s_wave, p99 = figs(start, (last or end) if w >= wave else end)
print("Updates at rest:      " + s_rest)
print("Updates in the wave:  " + s_wave)
print("  as the load client's loop saw them (its own delays added):")
print("    at rest:          " + figs(rest, float(sys.argv[10]), 2)[0])
print("    in the wave:      " + figs(start, (last or end) if w >= wave else end, 2)[0])
prof = {}
for t, r, _ in d["updates"]:
    if start - 2 <= t < end:
        k = int((t - start) // 1)
        prof[k] = max(prof.get(k, 0), 9999 if r is None else r * 1000)
print("worst Update per second from the start call (ms, 9999 unanswered): " +
      " ".join("%+d:%.0f" % (k, v) for k, v in sorted(prof.items())))
print("dfotad at the end: VmRSS %.0f MiB, VmHWM %.0f MiB" % (rss / 1024, hwm / 1024))
goal = lambda ok: "met" if ok else "MISSED"
print("goal: %d registrations in under 150 MiB RSS (VmHWM): %s" % (d["counts"]["registered"], goal(hwm < 150 * 1024)))
print("goal: the wave's %d writes acknowledged within 10 s: %s" % (wave, goal(t_wave is not None and t_wave <= 10)))
print("goal: Updates answered in under 5 ms (p99) meanwhile: %s" % goal(p99 is not None and p99 < 5))
print("load client: " + json.dumps(d["counts"]))
PYEOF
