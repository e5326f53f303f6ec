#!/bin/bash
# fleet_crash.sh: kill -9 of dfotad in the middle of a rollout under load
# (40 simulated devices, two-hop paths among them), then a restart on the
# same state directory: the rollout goes on and completes, every device
# ends on the target, and no device went backwards: what the admin API
# showed 1.5 s before the kill (state, version, events) is still there
# after the restart, or later in the order
#   pending < offered < downloading < downloaded < updating < succeeded
# (a confirmed hop starts the next one from pending: the version counts
# first).
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"

fleet_start || bail "dfotad starts"
for hop in "$VA $VC 262144" "$VB $VC 196608" "$VD $VE 131072" "$VE $VC 163840"; do
  set -- $hop
  mkpkg "$1" "$2" "$3" || bail "upload $1 -> $2" "status $STATUS"
done
N=40
python3 - "$N" "$MODEL" "$VA" "$VB" "$VD" >"$T/bulk.json" <<'PYEOF'
import json, sys
n, model, va, vb, vd = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
json.dump([{"id": "k%02d" % i, "model": model, "version": va if i % 4 < 2 else vb if i % 4 == 2 else vd,
            "group": "crash", "secret": "secret-k%02d-0123456789" % i} for i in range(n)], sys.stdout)
PYEOF
api_json_file POST /api/v1/devices "$T/bulk.json"
expect_eq "bulk import of $N devices" "200 $N" "$STATUS $(json "$BODY" .created)"
rollout_create "{\"name\":\"crash\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"group\":\"crash\"},\"waves\":[10,100],\"success_threshold\":75,
  \"max_failure_rate\":50,\"max_concurrent\":10,\"max_attempts\":8,\"timeout\":120,
  \"retry_backoff\":1}" || bail "create the rollout" "status $STATUS" "$(cat "$BODY")"
rollout_action "$RID" start
expect_eq "rollout running" running "$(json "$BODY" .state)"
IDS=$(jq -r '.[].id' <"$T/bulk.json")

# snapshot DIR: every device (id, version, state) and its events
snapshot() {
  mkdir -p "$1"
  devices_all "$1/devices.json" "rollout=$RID" || return 1
  events_many "$1" $IDS || return 1
  rollout_get "$RID" "$1/rollout.json"
}

# ---------------------------------------------------------------------------
# load: the simulator, in the background
jq '[.[] | {id, secret, version}]' <"$T/bulk.json" >"$T/devices.json"
"$PYTHON" "$SIM" --server "$DEV_URL" --devices "$T/devices.json" --concurrency $N --mode segments \
  --request-size 2048 --target "$VC" --poll-interval 0.3 --retry-delay 0.3 --max-retry-after 1 --install-seconds 1 \
  --max-seconds 50 --seed 11 --out "$T/summary.json" >"$T/sim.out" 2>"$T/sim.log" &
SIM_PID=$!
BG_PIDS+=("$SIM_PID")
t0=$(date +%s.%N)

# in the middle: wave 2 running, some devices succeeded, most not yet
_midway() {
  rollout_get "$RID"
  local s
  s=$(json "$BODY" .counts.succeeded)
  [ "$(json "$BODY" .wave)" = 2 ] && [ "${s:-0}" -ge 6 ]
}
check "the rollout gets to the middle (wave 2, >= 6 succeeded)" wait_until 30 _midway
snapshot "$T/before" || fail "snapshot before the kill"
echo "# before the kill ($(elapsed_since "$t0") s into the run): $(jq -c .counts <"$T/before/rollout.json")"
check "not finished yet when the snapshot was taken" \
  test "$(json "$T/before/rollout.json" .counts.succeeded)" -lt $((N - 5))
sleep 1.5 # the load goes on
kill -STOP "$SIM_PID" 2>/dev/null # the simulated devices hold still while dfotad is down
killed_at=$(date +%s.%N)
# on a fast machine the last devices may finish in those 1.5 s
done_before_kill=$(grep -c "rollout $RID completed" "$DFOTAD_LOG")
kill9_dfotad
start_dfotad "$FLEET_CONF" || bail "dfotad restarts after kill -9"
echo "# restarted $(elapsed_since "$killed_at") s after the kill"
snapshot "$T/after" || fail "snapshot after the restart"
kill -CONT "$SIM_PID" 2>/dev/null
echo "# after the restart: $(jq -c .counts <"$T/after/rollout.json")"
if [ "$done_before_kill" = 0 ]; then
  expect_eq "the rollout is still running after the restart" running "$(json "$T/after/rollout.json" .state)"
else
  expect_eq "the rollout completed before the kill, and stays completed" completed \
    "$(json "$T/after/rollout.json" .state)"
fi
check "its wave did not go back" test "$(json "$T/after/rollout.json" .wave)" -ge "$(json "$T/before/rollout.json" .wave)"
check "its succeeded count did not go back" \
  test "$(json "$T/after/rollout.json" .counts.succeeded)" -ge "$(json "$T/before/rollout.json" .counts.succeeded)"
check "its bytes_served did not go back" \
  test "$(json "$T/after/rollout.json" .bytes_served)" -ge "$(json "$T/before/rollout.json" .bytes_served)"
expect_match "the restart loaded every device" "fleet: $N devices loaded" "$(log_since "$_start_mark")"

fleet_compare "$T/before" "$T/after" >"$T/compare.txt"
head -n 1 "$T/compare.txt"
expect_eq "no device lost a state or an event recorded 1.5 s before the kill" "PROBLEMS 0" "$(tail -n 1 "$T/compare.txt")"
[ "$(tail -n 1 "$T/compare.txt")" = "PROBLEMS 0" ] || sed -n '2,21p' "$T/compare.txt"

# ---------------------------------------------------------------------------
# the rollout finishes
wait_until 60 _pid_gone "$SIM_PID"
wait "$SIM_PID" 2>/dev/null
SIM_RC=$?
echo "# simulator: exit $SIM_RC after $(elapsed_since "$t0") s: $(jq -c '.totals | {outcomes, statuses, errors}' <"$T/summary.json" 2>/dev/null)"
expect_eq "simulator: every device on the target" $N \
  "$(jq --arg c "$VC" '[.devices[] | select(.outcome == "on_target" and .version == $c)] | length' <"$T/summary.json")"
wait_rollout_state "$RID" completed 10
rollout_get "$RID" "$T/final.json"
expect_eq "rollout completed after the crash" completed "$(json "$T/final.json" .state)"
expect_eq "all $N succeeded" $N "$(json "$T/final.json" .counts.succeeded)"
devices_all "$T/final-devices.json" "rollout=$RID"
expect_eq "every device on $VC" $N "$(jq --arg c "$VC" '[.[] | select(.version == $c and .state == "succeeded")] | length' <"$T/final-devices.json")"
expect_eq "two-hop devices confirmed both hops" 10 \
  "$(events_many "$T/final-ev" $(jq -r '.[] | select(.version == "'"$VD"'") | .id' <"$T/bulk.json");
     cat "$T"/final-ev/ev-*.json | jq -s --arg d "$VD" --arg e "$VE" --arg c "$VC" \
       '[.[] | select([.events[] | select(.kind == "hop_confirmed") | "\(.from)>\(.to)"] == ["\($d)>\($e)", "\($e)>\($c)"])] | length')"

finish
