#!/bin/bash
# flood.sh: the bounded load run of the flood suite (issue 7), part of
# `make check`. All at once against one daemon:
#   - slow downloads by the thousand (each client a 4 KiB receive buffer,
#     reading 4 KiB a second), every byte compared with the package;
#   - slowloris from one address (a header byte a second), which the cap on
#     connections still sending headers per address must end, and a few
#     from a second address, which the header deadline must end;
#   - the simulator's devices: check-ins, downloads cut and resumed,
#     reports, through a whole rollout;
#   - a fresh device downloading the whole package, served within seconds;
# with the daemon's descriptors and RSS sampled throughout. Then, restarted
# with connection_limit = 50: clients that never read their responses must
# keep the daemon's descriptors within the limit, and a new client is served
# or refused, never left waiting; nothing stored is lost across the restart.
# Prints the figures on lines starting with "# load:" (tests/run-all shows
# them). Under the sanitizers (an ASan binary) the counts are smaller and
# RSS is printed, not bounded.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"

FLOOD="${top_builddir:-$LIB_DIR/../..}/tests/load/flood"
[ -x "$FLOOD" ] || bail "the load client $FLOOD (make check builds it)"
SAN=0
if ldd "$DFOTAD" 2>/dev/null | grep -q libasan; then SAN=1; fi
if [ $SAN = 1 ]; then
  N_SLOW=500 N_LORIS=500 N_DEV=30
else
  N_SLOW=2000 N_LORIS=1000 N_DEV=100
fi
LIMIT=$((N_SLOW + N_LORIS + N_DEV + 300))
# every client here needs a descriptor; the daemon raises its own limit
if ! ulimit -Sn $((N_SLOW + N_LORIS + 500)) 2>/dev/null; then
  echo "1..0 # SKIP needs $((N_SLOW + N_LORIS + 500)) descriptors (ulimit -Hn is $(ulimit -Hn))"
  exit 77
fi

fleet_start "[http]" "connection_limit = $LIMIT" "header_timeout = 10" "header_per_ip_limit = 32" ||
  bail "dfotad starts"
# the package of the slow downloads (64 KiB: 16 s at 4 KiB/s), and the
# rollout's
random_file "$T/slow.bin" 65536
upload "$T/slow.bin" FLOOD-1 1.0 1.1 slow.bin
[ "$STATUS" = 201 ] || bail "upload the slow package" "status $STATUS"
SLOW_ID=$PKG_ID
mkpkg "$VA" "$VC" 262144 || bail "upload A -> C" "status $STATUS"
ROLL_PKG=$PKG_ID
python3 - "$N_DEV" "$MODEL" "$VA" >"$T/bulk.json" <<'PYEOF'
import json, sys
n, model, va = int(sys.argv[1]), sys.argv[2], sys.argv[3]
json.dump([{"id": "fl%03d" % i, "model": model, "version": va, "group": "flood",
            "secret": "secret-fl%03d-0123456789" % i} for i in range(n)], sys.stdout)
PYEOF
api_json_file POST /api/v1/devices "$T/bulk.json"
expect_eq "bulk import of $N_DEV devices" "200 $N_DEV" "$STATUS $(json "$BODY" .created)"
rollout_create "{\"name\":\"flood\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"group\":\"flood\"},\"waves\":[100],\"max_concurrent\":$N_DEV,\"max_attempts\":5,
  \"timeout\":300,\"retry_backoff\":1}" || bail "create the rollout" "status $STATUS" "$(cat "$BODY")"
rollout_action "$RID" start
jq '[.[] | {id, secret, version}]' <"$T/bulk.json" >"$T/devices.json"

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$DFOTAD_PID/status" 2>/dev/null || echo 0; }
fds() { ls "/proc/$DFOTAD_PID/fd" 2>/dev/null | wc -l; }
IDLE_RSS=$(rss_kb)
IDLE_FDS=$(fds)

# sampler: the daemon's descriptors and RSS every 0.2 s until told to stop
sample() {
  : >"$T/samples"
  while [ ! -e "$T/sampler.stop" ]; do
    echo "$(fds) $(rss_kb)" >>"$T/samples"
    sleep 0.2
  done
}
sample &
SAMPLER=$!
BG_PIDS+=("$SAMPLER")

t0=$(date +%s.%N)
"$FLOOD" slow -p "$HTTP_PORT" -u "/p/$SLOW_ID" -n $N_SLOW -r 4096 -b 4096 -t 40 -C 1000 \
  -f "$T/slow.bin" >"$T/slow.out" 2>"$T/slow.err" &
SLOW_PID=$!
BG_PIDS+=("$SLOW_PID")
sleep 1
"$FLOOD" loris -p "$HTTP_PORT" -u "/p/$SLOW_ID" -n $N_LORIS -i 1 -t 25 -C 1000 \
  >"$T/loris.out" 2>"$T/loris.err" &
LORIS_PID=$!
BG_PIDS+=("$LORIS_PID")
# a second address, under the cap: only the deadline (10 s) ends these
"$FLOOD" loris -p "$HTTP_PORT" -u "/p/$SLOW_ID" -n 20 -i 1 -t 25 -s 127.0.0.2 \
  >"$T/loris2.out" 2>"$T/loris2.err" &
LORIS2_PID=$!
BG_PIDS+=("$LORIS2_PID")
sleep 2
# the devices, with interruptions (a fifth cut mid-download, resumed)
SIM_TIMEOUT=90 sim --server "$DEV_URL" --devices "$T/devices.json" --concurrency 50 --mode mixed \
  --faults "drop:20%" --target "$VC" --poll-interval 0.3 --retry-delay 0.3 --max-retry-after 1 \
  --install-seconds 0.1 --max-seconds 70 --seed 3 --out "$T/summary.json" >"$T/sim.out" 2>"$T/sim.log" &
SIM_PID=$!
BG_PIDS+=("$SIM_PID")
# fresh devices during the flood: the whole package, at full speed (on a
# quiet machine the first byte comes within milliseconds; the bound allows
# for CI running other tests on the same CPUs)
FRESH_OK=0 FRESH_MAX=0
for i in 1 2 3; do
  sleep 3
  r=$(curl -sS --max-time 20 -o "$T/fresh.bin" -w '%{http_code} %{time_starttransfer} %{time_connect}' \
    "$DEV_URL/p/$ROLL_PKG" 2>&1)
  read -r code ttfb tconn <<<"$r"
  echo "# fresh download $i during the flood: HTTP $code, connected after ${tconn}s, first byte after ${ttfb}s"
  if [ "$code" = 200 ] && cmp -s "$T/fresh.bin" "$T/pkg-$VA-$VC.bin"; then
    FRESH_OK=$((FRESH_OK + 1))
  fi
  FRESH_MAX=$(awk -v a="$FRESH_MAX" -v b="${ttfb:-99}" 'BEGIN { print (b > a ? b : a) }')
done
wait "$SIM_PID"
SIM_RC=$?
wait "$LORIS_PID" "$LORIS2_PID" "$SLOW_PID"
touch "$T/sampler.stop"
wait_until 5 _pid_gone "$SAMPLER"
echo "# flood took $(elapsed_since "$t0") s"

slow=$(cat "$T/slow.out") loris=$(cat "$T/loris.out") loris2=$(cat "$T/loris2.out")
echo "# slow:   $slow"
echo "# loris:  $loris"
echo "# loris2: $loris2"
fig() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

expect_eq "every slow download connected" $N_SLOW "$(fig "$slow" connected)"
expect_eq "every slow download finished" $N_SLOW "$(fig "$slow" done)"
expect_eq "every slow download byte-exact (mismatches)" 0 "$(fig "$slow" mismatch)"
expect_eq "no slow download refused or answered otherwise" 0 "$(fig "$slow" bad_status)"
expect_eq "no slow download cut" "0 0" "$(fig "$slow" server_closed) $(fig "$slow" resets)"
expect_eq "every slowloris connection closed by the server" $N_LORIS "$(fig "$loris" server_closed)"
check "slowloris beyond the per-address cap ended before the deadline (median $(fig "$loris" closed_ms_median) ms)" \
  test "$(fig "$loris" closed_ms_median)" -lt 8000
expect_eq "slowloris under the cap: all closed" 20 "$(fig "$loris2" server_closed)"
m2=$(fig "$loris2" closed_ms_median)
check "slowloris under the cap: ended by the 10 s header deadline (median $m2 ms)" \
  test "$m2" -ge 9500 -a "$m2" -le 16000
expect_eq "fresh devices downloaded the whole package during the flood" 3 "$FRESH_OK"
check "fresh devices got their first byte within 5 s (slowest ${FRESH_MAX}s)" \
  awk -v t="$FRESH_MAX" 'BEGIN { exit !(t < 5) }'

echo "# simulator: exit $SIM_RC: $(jq -c '.totals | {outcomes, statuses}' <"$T/summary.json" 2>/dev/null)"
expect_eq "simulator: every device through the rollout" 0 "$SIM_RC"
devices_all "$T/all.json" "group=flood" || fail "list the devices"
ON=$(jq --arg c "$VC" '[.[] | select(.version == $c)] | length' <"$T/all.json")
expect_eq "every device on the target version" "$N_DEV" "$ON"

FDS_MAX=$(awk 'BEGIN { m = 0 } $1 > m { m = $1 } END { print m }' "$T/samples")
RSS_MAX=$(awk 'BEGIN { m = 0 } $2 > m { m = $2 } END { print m }' "$T/samples")
CONC=$((N_SLOW + N_LORIS + N_DEV))
check "descriptors within connection_limit and a few ($FDS_MAX <= $((LIMIT + 64 + IDLE_FDS)))" \
  test "$FDS_MAX" -le $((LIMIT + 64 + IDLE_FDS))
if [ $SAN = 0 ]; then
  # measured about 4 KB a slow download; allow twice that, and 24 MiB
  check "RSS within bounds ($RSS_MAX kB, idle $IDLE_RSS kB)" \
    test "$RSS_MAX" -le $((IDLE_RSS + N_SLOW * 8 + 24576))
fi
ERRS=$(($(fig "$slow" mismatch) + $(fig "$slow" bad_status) + $(fig "$slow" server_closed) +
  $(fig "$slow" resets) + N_SLOW - $(fig "$slow" done) + 3 - FRESH_OK + N_DEV - ON))
echo "# load: devices=$N_DEV on_target=$ON downloads_verified=$(fig "$slow" done) (slow, ${N_SLOW} at 4 KiB/s) fresh=$FRESH_OK/3 slowloris_closed=$(($(fig "$loris" server_closed) + $(fig "$loris2" server_closed)))/$((N_LORIS + 20)) errors=$ERRS"
echo "# load: peak RSS ${RSS_MAX} kB (idle ${IDLE_RSS} kB, $(awk -v r="$RSS_MAX" -v i="$IDLE_RSS" -v n="$CONC" 'BEGIN { printf "%.0f", (r - i) * 1024 / n }') bytes per connection) descriptors peak $FDS_MAX (idle $IDLE_FDS), sanitizers=$SAN"

# ---------------------------------------------------------------------------
# Clients that never read, against connection_limit = 50; after a restart
# on the same state: nothing stored lost.
api GET /api/v1/packages
PKGS_BEFORE=$(jq -c '[.packages[].id] | sort' <"$BODY" 2>/dev/null)
stop_dfotad || fail "dfotad stops"
sed -i "s/^connection_limit = $LIMIT\$/connection_limit = 50/" "$FLEET_CONF"
# the kernel takes whole responses (no send_lowat), so that libmicrohttpd
# is done with them and the meter keeps the sockets: those must stay within
# the limit. (With the default send_lowat the responses stay
# libmicrohttpd's, until the idle timeout, and new clients are refused.)
echo "send_lowat = 0" >>"$FLEET_CONF"
start_dfotad "$FLEET_CONF" || bail "dfotad restarts with connection_limit = 50"
api GET /api/v1/packages
expect_eq "the packages are all there after the flood and a restart" "$PKGS_BEFORE" \
  "$(jq -c '[.packages[].id] | sort' <"$BODY" 2>/dev/null)"
devices_all "$T/all2.json" "group=flood" || fail "list the devices again"
expect_eq "every device still on the target version" "$N_DEV" \
  "$(jq --arg c "$VC" '[.[] | select(.version == $c)] | length' <"$T/all2.json")"
random_file "$T/big.bin" 1048576
upload "$T/big.bin" FLOOD-2 1.0 1.1 big.bin
[ "$STATUS" = 201 ] || bail "upload the big package" "status $STATUS"
BIG_ID=$PKG_ID
IDLE_FDS=$(fds)
"$FLOOD" noread -p "$HTTP_PORT" -u "/p/$BIG_ID" -n 400 -R 0-299999 -c -C 100 -t 12 \
  >"$T/noread.out" 2>"$T/noread.err" &
NOREAD_PID=$!
BG_PIDS+=("$NOREAD_PID")
FDS_MAX=0 HUNG=0 SERVED=0 REFUSED=0
for i in $(seq 1 8); do
  sleep 1
  n=$(fds)
  [ "$n" -gt "$FDS_MAX" ] && FDS_MAX=$n
  code=$(curl -s --max-time 5 -o "$T/nr.bin" -w '%{http_code}' -r 0-99999 "$DEV_URL/p/$BIG_ID")
  case $code in
  206) SERVED=$((SERVED + 1)) ;;
  503) REFUSED=$((REFUSED + 1)) ;;
  *) HUNG=$((HUNG + 1)) ;;
  esac
done
wait "$NOREAD_PID"
echo "# noread: $(cat "$T/noread.out")"
echo "# new clients during it: $SERVED served, $REFUSED refused (503), $HUNG without an answer"
echo "# load: non-reading clients: 400 against connection_limit 50: descriptors peak $FDS_MAX (idle $IDLE_FDS)"
check "descriptors within the limit and a few ($FDS_MAX <= $((50 + IDLE_FDS + 16)))" \
  test "$FDS_MAX" -le $((50 + IDLE_FDS + 16))
expect_eq "every new client served or refused, none left waiting" 0 "$HUNG"
# served when a kept socket makes room; refused while every slot is a
# connection libmicrohttpd is still writing to (more of them under ASan)
check "some new clients served ($SERVED of 8)" test "$SERVED" -ge 1
TCP_ORPHANS=$(awk '/^TCP:/ { for (i = 1; i < NF; i++) if ($i == "orphan") print $(i + 1) }' /proc/net/sockstat)
echo "# load: TCP orphans after: $TCP_ORPHANS"
finish
