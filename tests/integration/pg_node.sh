#!/bin/bash
# pg_node.sh: one dfotad node on PostgreSQL ([store] backend = postgresql,
# a throw-away cluster with fsync on) through a rollout of 40 simulated
# devices (two-hop paths among them), with three failures in its middle:
#   1. kill -9 of the node, restarted on the same database: no device lost
#      a state or an event the admin API showed 1.5 s before the kill;
#   2. PostgreSQL stopped (pg_ctl stop -m immediate) for a while: check-ins
#      and reports get 503 with Retry-After (never an answer that might not
#      be durable), both /healthz say the store is unreachable; once it is
#      back the node reconnects by itself;
#   3. pg_ctl restart -m immediate while the devices go on: what the admin
#      API showed before it is in the database after it (checked by a
#      kill -9 of the node and a restart, which loads from the database).
# The rollout then completes: every device on the target, byte-exact
# downloads (the simulator checks each package's sha256).
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"
. "$LIB_DIR/../pg_lib.sh"

trap 'rc=$?; pg_stop; (exit $rc); _cleanup' EXIT
"$DFOTAD" --version | grep -q libpq || bail_skip "dfotad built without PostgreSQL (libpq)"
pg_start durable || bail_skip "PostgreSQL not installed (tests/deps.sh installs it)"
CI=$(pg_createdb fleet) || bail "create the database"
export PG_DB_CONNINFO=$CI

fleet_start "[store]" "backend = postgresql" "postgresql = $CI" || bail "dfotad starts on PostgreSQL"
api_noauth GET /healthz
expect_eq "/healthz: 200, store postgresql" "200 postgresql" "$STATUS $(json "$BODY" .store)"
for hop in "$VA $VC 262144" "$VB $VC 196608" "$VD $VE 131072" "$VE $VC 163840"; do
  set -- $hop
  mkpkg "$1" "$2" "$3" || bail "upload $1 -> $2" "status $STATUS"
done
expect_eq "packages recorded in PostgreSQL" 4 "$(pg_psql 'SELECT count(*) FROM packages')"
N=40
python3 - "$N" "$MODEL" "$VA" "$VB" "$VD" >"$T/bulk.json" <<'PYEOF'
import json, sys
n, model, va, vb, vd = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
json.dump([{"id": "k%02d" % i, "model": model, "version": va if i % 4 < 2 else vb if i % 4 == 2 else vd,
            "group": "pg", "secret": "secret-k%02d-0123456789" % i} for i in range(n)], sys.stdout)
PYEOF
api_json_file POST /api/v1/devices "$T/bulk.json"
expect_eq "bulk import of $N devices" "200 $N" "$STATUS $(json "$BODY" .created)"
expect_eq "devices recorded in PostgreSQL" $N "$(pg_psql 'SELECT count(*) FROM devices')"
rollout_create "{\"name\":\"pg\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"group\":\"pg\"},\"waves\":[10,100],\"success_threshold\":75,
  \"max_failure_rate\":50,\"max_concurrent\":6,\"max_attempts\":8,\"timeout\":120,
  \"retry_backoff\":1}" || bail "create the rollout" "status $STATUS" "$(cat "$BODY")"
rollout_action "$RID" start
expect_eq "rollout running" running "$(json "$BODY" .state)"
IDS=$(jq -r '.[].id' <"$T/bulk.json")

snapshot() { # DIR: every device (id, version, state), its events, the rollout
  mkdir -p "$1"
  devices_all "$1/devices.json" "rollout=$RID" || return 1
  events_many "$1" $IDS || return 1
  rollout_get "$RID" "$1/rollout.json"
}


jq '[.[] | {id, secret, version}]' <"$T/bulk.json" >"$T/devices.json"
"$PYTHON" "$SIM" --server "$DEV_URL" --devices "$T/devices.json" --concurrency $N --mode segments \
  --request-size 2048 --target "$VC" --poll-interval 0.3 --retry-delay 0.3 --max-retry-after 1 \
  --install-seconds 1 --max-seconds 100 --seed 14 --out "$T/summary.json" >"$T/sim.out" 2>"$T/sim.log" &
SIM_PID=$!
BG_PIDS+=("$SIM_PID")
t0=$(date +%s.%N)

_midway() {
  rollout_get "$RID"
  [ "$(json "$BODY" .wave)" = 2 ] && [ "$(json "$BODY" .counts.succeeded)" -ge 4 ]
}
check "the rollout gets to its middle (wave 2, >= 4 succeeded)" wait_until 40 _midway

# ---------------------------------------------------------------------------
# 1. kill -9 of the node
snapshot "$T/before1" || fail "snapshot before the kill"
echo "# kill -9 at $(elapsed_since "$t0") s: $(jq -c .counts <"$T/before1/rollout.json")"
sleep 1.5
kill -STOP "$SIM_PID" 2>/dev/null
kill9_dfotad
start_dfotad "$FLEET_CONF" || bail "dfotad restarts after kill -9"
snapshot "$T/after1" || fail "snapshot after the restart"
kill -CONT "$SIM_PID" 2>/dev/null
out=$(fleet_compare "$T/before1" "$T/after1")
expect_eq "kill -9: no state or event recorded 1.5 s before it lost" "PROBLEMS 0" "$(tail -n 1 <<<"$out")"
head -n -1 <<<"$out"
expect_match "kill -9: the restart loaded every device from PostgreSQL" "fleet: $N devices loaded" \
  "$(log_since "$_start_mark")"

# ---------------------------------------------------------------------------
# 2. PostgreSQL down
sleep 1
kill -STOP "$SIM_PID" 2>/dev/null
mark=$(log_mark)
check "pg_ctl stop -m immediate" pg_halt
check "the node notices within 2 s (its writer's next flush)" \
  wait_log_since "$mark" "PostgreSQL unreachable" 2
_curl -H "X-Device-Token: secret-k00-0123456789" "$DEV_URL/v1/update?device=k00&version=$VA"
expect_eq "check-in while PostgreSQL is down: 503" 503 "$STATUS"
expect_eq "... with Retry-After" 5 "$(hdr Retry-After "$HDRS")"
printf '+QIND: "FOTA","HTTPSTART"\r\n' >"$T/urc.txt"
_curl -X POST -H "X-Device-Token: secret-k01-0123456789" -H 'Content-Type: text/plain' \
  --data-binary @"$T/urc.txt" "$DEV_URL/v1/report?device=k01"
expect_eq "report while PostgreSQL is down: 503" 503 "$STATUS"
api_noauth GET /healthz
expect_eq "admin /healthz: 503 store_unreachable" "503 store_unreachable" "$STATUS $(json "$BODY" .status)"
_curl "$DEV_URL/healthz"
expect_eq "device /healthz: 503" 503 "$STATUS"
_curl "$DEV_URL/f/AAAAAAAAAAAAAAAAAAAAAAAA"
expect_eq "downloads need no database: an unknown token is still 404" 404 "$STATUS"
sleep 2 # a few failed flushes
mark=$(log_mark)
check "PostgreSQL starts again" pg_resume
_healthz_200() { api_noauth GET /healthz && [ "$STATUS" = 200 ]; }
check "the node reconnects by itself (/healthz 200 within 5 s)" wait_until 5 _healthz_200
check "... and says so" wait_log_since "$mark" "connected to PostgreSQL" 2
_curl -H "X-Device-Token: secret-k00-0123456789" "$DEV_URL/v1/update?device=k00&version=$VA"
check "check-ins are answered again" test "$STATUS" = 200 -o "$STATUS" = 204 -o "$STATUS" = 429
kill -CONT "$SIM_PID" 2>/dev/null

# ---------------------------------------------------------------------------
# 3. pg_ctl restart -m immediate while the devices go on
sleep 1
snapshot "$T/before3" || fail "snapshot before the PostgreSQL restart"
echo "# pg_ctl restart -m immediate at $(elapsed_since "$t0") s: $(jq -c .counts <"$T/before3/rollout.json")"
check "pg_ctl restart -m immediate" pg_restart_immediate
check "the node reconnects (/healthz 200 within 5 s)" wait_until 5 _healthz_200
sleep 1 # the writer's retry commits what waited
kill -STOP "$SIM_PID" 2>/dev/null
kill9_dfotad
start_dfotad "$FLEET_CONF" || bail "dfotad restarts from the database"
snapshot "$T/after3" || fail "snapshot after the restarts"
kill -CONT "$SIM_PID" 2>/dev/null
out=$(fleet_compare "$T/before3" "$T/after3")
expect_eq "PostgreSQL crash: no state or event recorded before it lost" "PROBLEMS 0" \
  "$(tail -n 1 <<<"$out")"
head -n -1 <<<"$out"

# ---------------------------------------------------------------------------
# the rollout completes
wait_until 90 _pid_gone "$SIM_PID"
wait "$SIM_PID" 2>/dev/null
echo "# simulator after $(elapsed_since "$t0") s: $(jq -c '.totals | {outcomes, statuses}' <"$T/summary.json" 2>/dev/null)"
expect_eq "every device on the target, downloads byte-exact" $N \
  "$(jq --arg c "$VC" '[.devices[] | select(.outcome == "on_target" and .version == $c)] | length' <"$T/summary.json")"
wait_rollout_state "$RID" completed 15
rollout_get "$RID" "$T/final.json"
expect_eq "rollout completed" completed "$(json "$T/final.json" .state)"
expect_eq "all $N succeeded" $N "$(json "$T/final.json" .counts.succeeded)"
sleep 0.5
expect_eq "PostgreSQL has them succeeded" $N \
  "$(pg_psql "SELECT count(*) FROM devices WHERE state = 'succeeded' AND rollout_id = '$RID'")"
expect_eq "... and the rollout completed" completed \
  "$(pg_psql "SELECT state FROM rollouts WHERE id = '$RID'")"
finish
