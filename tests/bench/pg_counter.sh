#!/bin/bash
# pg_counter.sh: what a global admission counter (a rollout's
# max_concurrent across nodes, issue 14) costs on PostgreSQL: CLIENTS
# pgbench clients acquire a slot (UPDATE ... WHERE used < max) and release
# it, on a throw-away cluster (fsync on), with synchronous_commit on and
# off. A CHECK (0 <= used <= max) makes any over-admission an error.
# Not in make check.
#
# Usage: tests/bench/pg_counter.sh     Environment: CLIENTS=8, SECONDS_EACH=10, MAX=100
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../pg_lib.sh"
trap 'pg_stop' EXIT
CLIENTS=${CLIENTS:-8}
SECS=${SECONDS_EACH:-10}
MAX=${MAX:-100}
pg_start durable || { echo "pg_counter: cannot start PostgreSQL" >&2; exit 1; }
pg_psql "CREATE TABLE lim (id int PRIMARY KEY, used int NOT NULL, max int NOT NULL,
  CHECK (used >= 0 AND used <= max)); INSERT INTO lim VALUES (1, 0, $MAX)"
cat >"$PG_DIR/counter.sql" <<'SQL'
UPDATE lim SET used = used + 1 WHERE id = 1 AND used < max RETURNING used;
UPDATE lim SET used = used - 1 WHERE id = 1 AND used > 0;
SQL
echo "== global counter on PostgreSQL: $CLIENTS clients, max $MAX, $SECS s each ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
for sc in on off; do
  tps=$(PGOPTIONS="-c synchronous_commit=$sc" "$PG_BIN/pgbench" -n -c "$CLIENTS" -j 2 -T "$SECS" \
    -f "$PG_DIR/counter.sql" -d "$PG_CONNINFO" 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
  echo "synchronous_commit=$sc: ${tps:-?} acquire+release pairs/s; used at the end: $(pg_psql 'SELECT used FROM lim')"
done
