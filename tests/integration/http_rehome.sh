#!/bin/sh
# http_rehome.sh: [http] cpu_affinity. With a worker kept on each CPU, a
# keep-alive client whose packets move to another CPU (its thread moved)
# is asked once, with Connection: close after a complete answer, to
# reconnect, and its new connection stays; a client that never moves is
# never asked, nor one whose connections ask a few requests each; every range stays byte-exact across the reconnect;
# dfotad_rehomed_total counts it; with cpu_affinity = no nothing is ever
# closed. Needs two CPUs (skipped on one).
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null || bail "needs python3"
CPUS=$(python3 -c 'import os; print(" ".join(str(c) for c in sorted(os.sched_getaffinity(0))))')
set -- $CPUS
if [ $# -lt 2 ]; then
  skip "re-homing between CPUs" "one CPU only"
  finish
fi
CPU_A=$1
CPU_B=$2

SIZE=262144
PKG="$T/pkg.bin"
random_file "$PKG" $SIZE
CLIENT="$(dirname "$0")/http_rehome.py"

# run_client BEFORE AFTER [ROUNDS]: the client's summary line
run_client() {
  python3 "$CLIENT" "${HTTP%:*}" "${HTTP##*:}" "/p/$ID" $SIZE "$CPU_A" "$CPU_B" "$@" <"$PKG"
}
field() { printf '%s\n' "$1" | tr ' ' '\n' | grep -A1 -x "$2" | tail -n 1; }
rehomed() {
  curl -s "http://$ADMIN/metrics" | sed -n 's/^dfotad_rehomed_total{protocol="http"} //p'
}

CONF="$T/dfotad.conf"
base_config "$CONF" # threads = 0: one worker per CPU the daemon may use
printf '[http]\n' >>"$CONF"
start_dfotad "$CONF" || bail "dfotad starts"
load_token || bail "admin token file readable"
upload "$PKG" BG95-M3 A01 A02 rehome.bin
expect_eq "upload: 201" 201 "$STATUS"
ID=$PKG_ID
check "log: workers kept on their CPUs" grep -q "kept on CPUs" "$DFOTAD_LOG"

# a worker thread takes itself for the worker its connections name, and
# is kept on that worker's CPU, after four in a row: eight short
# connections from each CPU first
python3 "$CLIENT" "${HTTP%:*}" "${HTTP##*:}" "/p/$ID" $SIZE "$CPU_A" "$CPU_B" 1 0 8 <"$PKG" >/dev/null
python3 "$CLIENT" "${HTTP%:*}" "${HTTP##*:}" "/p/$ID" $SIZE "$CPU_B" "$CPU_A" 1 0 8 <"$PKG" >/dev/null
OUT=$(run_client 400 600)
echo "# cpu_affinity = yes: $OUT"
expect_eq "every range byte-exact, across the reconnect" 0 "$(field "$OUT" bad)"
expect_eq "a client that stays on its CPU is never asked to reconnect" 0 "$(field "$OUT" closes_before)"
expect_eq "once it moves, asked to reconnect once" 1 "$(field "$OUT" closes_after)"
FIRST=$(field "$OUT" first_close_at)
check "asked within 200 requests of moving (one in 64 is looked at)" test "$FIRST" -ge 0 -a "$FIRST" -lt 200
expect_eq "its new connection, on its new CPU's worker, is kept" 0 "$(field "$OUT" closes_late)"
expect_eq "dfotad_rehomed_total{protocol=\"http\"} counts it" 1 "$(rehomed)"
# connections that ask a few things each (25), moved after 5: never asked,
# though the worker looks at several of their requests (300 in all)
OUT=$(run_client 5 20 12)
echo "# short connections: $OUT"
expect_eq "short connections: every range byte-exact" 0 "$(field "$OUT" bad)"
expect_eq "a connection that asked under 32 requests is never asked to reconnect" 0 \
  "$(($(field "$OUT" closes_before) + $(field "$OUT" closes_after)))"
expect_eq "dfotad_rehomed_total still 1" 1 "$(rehomed)"
stop_dfotad
expect_eq "SIGTERM: exit 0" 0 "$DFOTAD_RC"

printf 'cpu_affinity = no\n' >>"$CONF"
MARK=$(log_mark)
start_dfotad "$CONF" || bail "dfotad starts with cpu_affinity = no"
expect_eq "log: no worker kept on a CPU" 0 "$(log_since "$MARK" | grep -c "kept on CPUs")"
OUT=$(run_client 200 600)
echo "# cpu_affinity = no: $OUT"
expect_eq "no: every range byte-exact" 0 "$(field "$OUT" bad)"
expect_eq "no: never asked to reconnect" 0 "$(($(field "$OUT" closes_before) + $(field "$OUT" closes_after)))"
expect_eq "no: dfotad_rehomed_total stays 0" 0 "$(rehomed)"
stop_dfotad
finish
