#!/bin/bash
# store_pg.sh: the fleet_scale bench (tests/bench/fleet_scale.sh) on both
# store backends, one after the other on this machine: SQLite (the state
# directory) and PostgreSQL (a throw-away cluster in a temporary folder,
# fsync on: the durability a production database has; tests/pg_lib.sh).
# Not in make check.
#
# Usage: tests/bench/store_pg.sh [path/to/dfotad]      (default ./server/dfotad)
#
# Environment: STORE_BENCH_DEVICES=100000 (1000..5000000), and
# fleet_scale.sh's own (SCALE_PAGE, SCALE_REST_SECONDS, SCALE_MAX_SECONDS).
#
# Prints each run's fleet_scale summary, and for PostgreSQL the
# transactions it committed (pg_stat_database), the rows written and the
# database's size at the end.

set -u
DFOTAD=${1:-./server/dfotad}
N=${STORE_BENCH_DEVICES:-100000}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../pg_lib.sh"
trap 'pg_stop' EXIT
trap 'exit 130' INT TERM HUP

"$DFOTAD" -V | grep -q libpq || { echo "store_pg: $DFOTAD was built without libpq" >&2; exit 1; }
echo "== store backends, fleet_scale at $N devices ($(date -u +%Y-%m-%dT%H:%M:%SZ))"

echo "-- sqlite"
SCALE_DEVICES=$N "$HERE/fleet_scale.sh" "$DFOTAD" | grep -E '^(create|restart|start|during|at rest|summary):'

echo "-- postgresql"
pg_start durable || { echo "store_pg: cannot start PostgreSQL" >&2; exit 1; }
CI=$(pg_createdb bench) || exit 1
export PG_DB_CONNINFO=$CI
stat() { pg_psql "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = 'bench'"; }
IFS='|' read -r C0 R0 <<<"$(stat)"
t0=$(date +%s.%N)
BENCH_STORE_BACKEND=postgresql BENCH_STORE_PG=$CI SCALE_DEVICES=$N "$HERE/fleet_scale.sh" "$DFOTAD" |
  grep -E '^(create|restart|start|during|at rest|summary):'
sleep 1 # the statistics collector's delay
IFS='|' read -r C1 R1 <<<"$(stat)"
S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
echo "postgresql: $((C1 - C0)) transactions committed, $((R1 - R0)) rows written in $S s (the whole run); database $(pg_psql "SELECT pg_size_pretty(pg_database_size('bench'))")"
