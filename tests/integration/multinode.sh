#!/bin/bash
# multinode.sh: three dfotad nodes on loopback sharing one PostgreSQL
# database ([store] nodes = shared; a throw-away cluster with fsync on) and
# one package folder, through a rollout of 60 simulated devices whose every
# request (check-in, report, download segment) goes round-robin to the next
# node (tests/sim/dfotasim.py --server URL1,URL2,URL3, leaving out for 3 s a
# node that does not answer, as a load balancer's health check would):
#   - a package uploaded on node 1, devices created on node 2 and a rollout
#     created on node 3 are known to every node;
#   - nodes = shared on SQLite is refused (dfotad -t), and a single node
#     (nodes = single) is refused while shared nodes run;
#   - max_concurrent = 5 holds across the nodes (the devices in flight in
#     the database sampled every 0.1 s: never more than 5);
#   - kill -9 of node 2 mid-rollout: the rollout completes on the other two;
#   - pg_ctl restart -m immediate mid-rollout: nothing the API showed 1.5 s
#     before is lost (checked on node 3 restarted, which loads from the
#     database);
#   - every device on the target, every download byte-exact (the simulator
#     checks each package's sha256), the rollout completed on every node;
#   - a start left half-done (a rollout "starting" in the database, its
#     claim held by a node that is gone) is carried on by exactly one node,
#     once that claim lapses;
#   - with PostgreSQL frozen (SIGSTOP) while that rollout runs, a node's
#     main loop still answers a signal: its tick never waits for the
#     database;
#   - a package a device holds an offer of is not deleted (409, on another
#     node than the offer's); once the offer is gone, a deletion on node 3
#     leaves node 1's catalog without a restart, and the file stays in the
#     shared folder until a sweep after the grace (an hour; back-dated here).
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"
. "$LIB_DIR/../pg_lib.sh"

trap 'rc=$?; touch "$T/sampler.stop"; pg_stop; (exit $rc); _cleanup' EXIT
"$DFOTAD" --version | grep -q libpq || bail_skip "dfotad built without PostgreSQL (libpq)"
pg_start durable || bail_skip "PostgreSQL not installed (tests/deps.sh installs it)"
CI=$(pg_createdb fleet) || bail "create the database"
export PG_DB_CONNINFO=$CI
mkdir -p "$T/packages"

declare -a N_HTTP N_ADMIN N_STATE N_LOG N_CONF N_PID

# node_conf N [nodes]: node N's configuration (its own ports and state
# folder; the package folder shared).
node_conf() {
  local n=$1 mode=${2:-shared} ports http ftp admin
  ports=$(free_port 3 | tr '\n' ' ')
  read -r http ftp admin <<<"$ports"
  N_HTTP[n]="127.0.0.1:$http"
  N_ADMIN[n]="127.0.0.1:$admin"
  N_STATE[n]="$T/n$n/state"
  N_LOG[n]="$T/n$n.log"
  N_CONF[n]="$T/n$n.conf"
  mkdir -p "${N_STATE[n]}"
  ln -sfn "$T/packages" "${N_STATE[n]}/packages"
  cat >"${N_CONF[n]}" <<EOF
[server]
state_dir = ${N_STATE[n]}
log_level = ${MULTINODE_LOG_LEVEL:-info}
shutdown_timeout = 5

[store]
flush_interval = 100
backend = postgresql
postgresql = $CI
nodes = $mode

[http]
listen = ${N_HTTP[n]}
timeout = 30

[ftp]
listen = 127.0.0.1:$ftp

[admin]
listen = ${N_ADMIN[n]}
EOF
}

# use_node N: the lib's helpers (api, start_dfotad, ...) talk to node N.
use_node() {
  ADMIN=${N_ADMIN[$1]}
  ADMIN_URL="http://$ADMIN"
  STATE=${N_STATE[$1]}
  DFOTAD_LOG=${N_LOG[$1]}
  DFOTAD_PID=${N_PID[$1]:-}
  load_token 2>/dev/null || true
}

node_start() { # N: (re)starts node N on its configuration
  use_node "$1"
  start_dfotad "${N_CONF[$1]}" || return 1
  N_PID[$1]=$DFOTAD_PID
}

node_kill9() {
  use_node "$1"
  kill9_dfotad
  N_PID[$1]=
}

# shared needs PostgreSQL: an SQLite file serves one node
printf '[server]\nstate_dir = %s\n[store]\nnodes = shared\n' "$T/sq" >"$T/sqlite.conf"
out=$("$DFOTAD" -t -c "$T/sqlite.conf" 2>&1)
check_not "dfotad -t refuses nodes = shared on SQLite" test $? = 0
expect_match "... and says why" "nodes = shared needs backend = postgresql" "$out"

for n in 1 2 3; do
  node_conf $n
  node_start $n || bail "node $n starts on the shared database"
done
use_node 1
api_noauth GET /healthz
expect_eq "node 1 /healthz: 200, store postgresql" "200 postgresql" "$STATUS $(json "$BODY" .store)"

# a node that wants the database to itself is refused while shared nodes run
node_conf 4 single
use_node 4
"$DFOTAD" -c "${N_CONF[4]}" >/dev/null 2>"${N_LOG[4]}" &
single=$!
BG_PIDS+=("$single")
wait_until 15 _pid_gone "$single"
check "a single node (nodes = single) is refused while shared nodes run" \
  grep -q "uses this database" "${N_LOG[4]}"

# packages uploaded on node 1 reach the others (the shared folder, the
# catalog read from the database)
use_node 1
for hop in "$VA $VC 65536" "$VB $VC 49152" "$VD $VE 32768" "$VE $VC 40960"; do
  set -- $hop
  mkpkg "$1" "$2" "$3" || bail "upload $1 -> $2 on node 1" "status $STATUS"
done
LAST_PKG=$PKG_ID
_pkg_known() { use_node "$1" && api GET "/api/v1/packages/$LAST_PKG" && [ "$STATUS" = 200 ]; }
check "node 2 knows the package uploaded on node 1" wait_until 5 _pkg_known 2
check "node 3 too" wait_until 5 _pkg_known 3
_curl "http://${N_HTTP[3]}/p/$LAST_PKG"
expect_eq "node 3 serves it byte-exact" "$(sha "$T/pkg-$VE-$VC.bin")" "$(sha "$BODY")"

# devices created on node 2, the rollout on node 3, started on node 1
N=60
python3 - "$N" "$MODEL" "$VA" "$VB" "$VD" >"$T/bulk.json" <<'PYEOF'
import json, sys
n, model, va, vb, vd = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
json.dump([{"id": "m%02d" % i, "model": model, "version": va if i % 4 < 2 else vb if i % 4 == 2 else vd,
            "group": "multi", "secret": "secret-m%02d-0123456789" % i} for i in range(n)], sys.stdout)
PYEOF
use_node 2
api_json_file POST /api/v1/devices "$T/bulk.json"
expect_eq "bulk import of $N devices on node 2" "200 $N" "$STATUS $(json "$BODY" .created)"
expect_eq "devices recorded in PostgreSQL" $N "$(pg_psql 'SELECT count(*) FROM devices')"
use_node 3
rollout_create "{\"name\":\"multi\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"group\":\"multi\"},\"waves\":[10,100],\"success_threshold\":75,
  \"max_failure_rate\":90,\"max_concurrent\":5,\"max_attempts\":8,\"timeout\":60,
  \"retry_backoff\":1}" || bail "create the rollout on node 3" "status $STATUS" "$(cat "$BODY")"
use_node 1
rollout_action "$RID" start
expect_eq "rollout started on node 1: running" running "$(json "$BODY" .state)"
expect_eq "... with all $N members" $N "$(json "$BODY" .devices)"

# the transfers under way (offered or downloading: what max_concurrent
# counts), sampled in the database every 0.1 s
IN_FLIGHT="SELECT count(*) FROM devices WHERE rollout_id = '$RID'
  AND state IN ('offered', 'downloading')"
(
  for _ in $(seq 3000); do
    [ -e "$T/sampler.stop" ] && break
    pg_psql "$IN_FLIGHT" 2>/dev/null >>"$T/samples"
    sleep 0.1
  done
) &
BG_PIDS+=("$!")

jq '[.[] | {id, secret, version}]' <"$T/bulk.json" >"$T/devices.json"
SERVERS="http://${N_HTTP[1]},http://${N_HTTP[2]},http://${N_HTTP[3]}"
"$PYTHON" "$SIM" --server "$SERVERS" --devices "$T/devices.json" --concurrency $N \
  --mode segments --request-size 8192 --target "$VC" --poll-interval 0.3 --retry-delay 0.3 \
  --max-retry-after 1 --install-seconds 1 --max-seconds 150 --seed 14 \
  --out "$T/summary.json" >"$T/sim.out" 2>"$T/sim.log" &
SIM_PID=$!
BG_PIDS+=("$SIM_PID")
t0=$(date +%s.%N)

succeeded() { pg_psql "SELECT count(*) FROM devices WHERE rollout_id = '$RID' AND state = 'succeeded'"; }
_at_least() { [ "$(succeeded)" -ge "$1" ]; }

# ---------------------------------------------------------------------------
# kill -9 of node 2 mid-rollout
check "the rollout gets going (>= 12 succeeded)" wait_until 60 _at_least 12
echo "# kill -9 of node 2 at $(elapsed_since "$t0") s: $(succeeded) succeeded"
node_kill9 2

# ---------------------------------------------------------------------------
# pg_ctl restart -m immediate mid-rollout
check "the rollout goes on without node 2 (>= 30 succeeded)" wait_until 60 _at_least 30
IDS=$(jq -r '.[].id' <"$T/bulk.json")
snapshot() { # DIR: every device of the rollout and its events, through the current node
  mkdir -p "$1"
  devices_all "$1/devices.json" "rollout=$RID" || return 1
  events_many "$1" $IDS || return 1
  rollout_get "$RID" "$1/rollout.json"
}
use_node 1
snapshot "$T/before" || fail "snapshot before the PostgreSQL restart"
echo "# pg_ctl restart -m immediate at $(elapsed_since "$t0") s: $(jq -c .counts <"$T/before/rollout.json")"
sleep 1.5
check "pg_ctl restart -m immediate" pg_restart_immediate
_healthz_200() { use_node "$1" && api_noauth GET /healthz && [ "$STATUS" = 200 ]; }
check "node 1 reconnects (/healthz 200 within 10 s)" wait_until 10 _healthz_200 1
check "node 3 too" wait_until 10 _healthz_200 3
kill -STOP "$SIM_PID" 2>/dev/null
sleep 0.5
node_kill9 3
r0=$(date +%s.%N)
node_start 3 || bail "node 3 restarts from the database"
echo "# node 3 serves again $(elapsed_since "$r0") s after its start (kill -9, then a restart)"
snapshot "$T/after" || fail "snapshot on node 3 after the restarts"
kill -CONT "$SIM_PID" 2>/dev/null
out=$(fleet_compare "$T/before" "$T/after")
expect_eq "PostgreSQL crash: no state or event shown before it lost" "PROBLEMS 0" \
  "$(tail -n 1 <<<"$out")"
head -n -1 <<<"$out"

# ---------------------------------------------------------------------------
# the rollout completes on nodes 1 and 3
wait_until 120 _pid_gone "$SIM_PID"
wait "$SIM_PID" 2>/dev/null
touch "$T/sampler.stop"
echo "# simulator after $(elapsed_since "$t0") s: $(jq -c '.totals | {outcomes, statuses}' <"$T/summary.json" 2>/dev/null)"
expect_eq "every device on the target, downloads byte-exact" $N \
  "$(jq --arg c "$VC" '[.devices[] | select(.outcome == "on_target" and .version == $c)] | length' <"$T/summary.json")"
use_node 1
wait_rollout_state "$RID" completed 15
rollout_get "$RID" "$T/final1.json"
expect_eq "node 1: rollout completed" completed "$(json "$T/final1.json" .state)"
expect_eq "node 1: all $N succeeded" $N "$(json "$T/final1.json" .counts.succeeded)"
use_node 3
wait_rollout_state "$RID" completed 5
rollout_get "$RID" "$T/final3.json"
expect_eq "node 3: the same" "completed $N" \
  "$(json "$T/final3.json" .state) $(json "$T/final3.json" .counts.succeeded)"
expect_eq "PostgreSQL has them succeeded" $N "$(succeeded)"
expect_eq "... and the rollout completed" completed \
  "$(pg_psql "SELECT state FROM rollouts WHERE id = '$RID'")"
max=$(sort -n "$T/samples" | tail -n 1)
echo "# in flight at once (database, $(wc -l <"$T/samples") samples): max ${max:-none}"
check "max_concurrent = 5 held across the nodes (sampled)" test "${max:-99}" -le 5
check "... and was reached (the nodes contended for slots)" test "${max:-0}" -ge 4

# ---------------------------------------------------------------------------
# a start left half-done by a node that is gone: 10 more devices, a draft
# rollout put in the database as "starting" with its claim held by a node
# that no longer renews it (as a node killed mid-start leaves it)
python3 - "$MODEL" "$VA" >"$T/bulk2.json" <<'PYEOF'
import json, sys
json.dump([{"id": "s%02d" % i, "model": sys.argv[1], "version": sys.argv[2], "group": "orphan",
            "secret": "secret-s%02d-0123456789" % i} for i in range(10)], sys.stdout)
PYEOF
use_node 1
api_json_file POST /api/v1/devices "$T/bulk2.json"
expect_eq "10 more devices" "200 10" "$STATUS $(json "$BODY" .created)"
rollout_create "{\"name\":\"orphan\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"group\":\"orphan\"},\"max_concurrent\":5}" || bail "create rollout orphan"
RID2=$RID
pg_psql "BEGIN;
  INSERT INTO rollout_jobs (job, node, until) VALUES ('$RID2/start', 'gone/node', now() + interval '2 seconds');
  UPDATE rollouts SET state = 'starting', change_seq = nextval('dfotad_change'),
    doc = jsonb_set(doc::jsonb, '{state}', '\"starting\"')::text WHERE id = '$RID2';
  COMMIT;" >/dev/null
_ro_running() { use_node "$1" && rollout_get "$RID2" "$T/ro2.json" && [ "$(json "$T/ro2.json" .state)" = running ]; }
check "the half-done start is carried on (running on node 1)" wait_until 30 _ro_running 1
expect_eq "... with its 10 members" 10 "$(json "$T/ro2.json" .devices)"
check "node 3 sees it running too" wait_until 5 _ro_running 3
holder=$(pg_psql "SELECT node FROM rollout_jobs WHERE job = '$RID2/start'")
check "the claim went from the node gone to a live one ($holder)" test "${holder:-gone/node}" != gone/node
carried=$(grep -l "rollout $RID2: this node carries on its start" "${N_LOG[1]}" "${N_LOG[3]}" | wc -l)
expect_eq "exactly one node carried it on" 1 "$carried"
expect_eq "every member enrolled once, in the database" "10 10" \
  "$(pg_psql "SELECT count(*), count(DISTINCT COALESCE(doc::jsonb->>'position', '0')) FROM devices WHERE rollout_id = '$RID2'" | tr '|' ' ')"

# ---------------------------------------------------------------------------
# PostgreSQL frozen (its processes stopped: connections hang, as to a server
# cut off) while rollout orphan runs, so that every node ticks: the main
# loop must not wait for the tick's transaction. A SIGHUP is answered by the
# main loop ("reload: reading" in the log) while the database is frozen.
PG_PIDS=$(head -n 1 "$PG_DIR/data/postmaster.pid")
PG_PIDS="$PG_PIDS $(pgrep -P "$PG_PIDS" | tr '\n' ' ')"
# shellcheck disable=SC2086 # a list of pids
kill -STOP $PG_PIDS
sleep 2 # a tick or two queued
use_node 1
reloads=$(grep -c "reload: reading" "${N_LOG[1]}")
kill -HUP "${N_PID[1]}"
_reloaded() { [ "$(grep -c "reload: reading" "${N_LOG[1]}")" -gt "$reloads" ]; }
check "PostgreSQL frozen: node 1's main loop answers SIGHUP (the tick is not waited for)" \
  wait_until 5 _reloaded
# shellcheck disable=SC2086
kill -CONT $PG_PIDS
check "... and node 1 is healthy once PostgreSQL runs again" wait_until 10 _healthz_200 1

# ---------------------------------------------------------------------------
# deleting a package on several nodes
# shellcheck disable=SC2034 # read by checkin (fleet_lib.sh)
DEV_URL="http://${N_HTTP[1]}"
for i in 0 1 2 3 4 5 6 7 8 9; do checkin "s0$i" "secret-s0$i-0123456789" "$VA" >/dev/null; done
P=$(pg_psql "SELECT doc::jsonb->>'package' FROM devices WHERE rollout_id = '$RID2'
  AND state IN ('offered', 'downloading') LIMIT 1")
check "devices of the second rollout hold offers (on node 1)" test -n "$P"
use_node 3
api DELETE "/api/v1/packages/$P"
expect_eq "node 3 refuses to delete a package a device holds an offer of" 409 "$STATUS"
rollout_action "$RID2" cancel
expect_eq "the rollout cancelled on node 3" cancelled "$(json "$BODY" .state)"
api DELETE "/api/v1/packages/$P"
expect_eq "... then deletes the package (no offer left)" 204 "$STATUS"
_pkg_gone() { use_node "$1" && api GET "/api/v1/packages/$P" && [ "$STATUS" = 404 ]; }
check "node 1 forgets it without a restart" wait_until 5 _pkg_gone 1
_curl "http://${N_HTTP[1]}/p/$P"
expect_eq "... and no longer serves it" 404 "$STATUS"
PSHA=$(pg_psql "SELECT sha256 FROM packages_removed WHERE id = '$P'")
check "its file stays in the shared folder for the grace" test -e "$T/packages/$PSHA"
pg_psql "UPDATE packages_removed SET at = now() - interval '2 hours' WHERE id = '$P'"
_file_gone() { [ ! -e "$T/packages/$PSHA" ]; }
check "... and goes once the grace is over (the removal back-dated)" wait_until 25 _file_gone
expect_eq "... its marker with it" 0 "$(pg_psql "SELECT count(*) FROM packages_removed")"
# ---------------------------------------------------------------------------
# a node starting while another node's transaction is open: that
# transaction took its sequence number (in the nodes' lock) before the
# starting node reads its change mark, and commits after the node loaded.
# The mark is read in the nodes' turn, so the node waits for the commit and
# loads the record; read without the lock, the mark would pass that number
# and the node keep the old record for good (a token unknown: 404).
LOCK_KEY=$(sed -n 's/^#define SHARED_TX_LOCK \([0-9]*\).*/\1/p' "$LIB_DIR/../../store/db_pg_shared.c")
check "the nodes' lock key read from store/db_pg_shared.c" test -n "$LOCK_KEY"
{
  echo "BEGIN; SELECT pg_advisory_xact_lock($LOCK_KEY);"
  echo "UPDATE devices SET change_seq = nextval('dfotad_change'),
    doc = jsonb_set(doc::jsonb, '{group}', '\"late\"')::text WHERE id = 's00';"
  echo "SELECT 'held';"
  sleep 3
  echo "COMMIT;"
} | "$PG_BIN/psql" -X -Atq -v ON_ERROR_STOP=1 -d "$CI" >"$T/held.out" 2>&1 &
HELD=$!
BG_PIDS+=("$HELD")
_held() { grep -q held "$T/held.out"; }
check "a transaction holds the nodes' lock, a device changed in it" wait_until 5 _held
node_start 2 || bail "node 2 restarts while another transaction holds the nodes' lock"
wait "$HELD"
check "... which commits" test $? = 0
_late() { use_node 2 && api GET /api/v1/devices/s00 && [ "$(json "$BODY" .group)" = late ]; }
check "node 2 (started meanwhile) has the device as committed" wait_until 5 _late
finish
