#!/bin/sh
# pg_contract.sh: the store's unit tests that go through store.h only
# (test_store_contract: the fleet's transactions, paging, events, a reopen;
# test_store: packages, statistics, deletion, integrity) run unchanged
# against PostgreSQL, each on a fresh database of a throw-away cluster.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$LIB_DIR/../pg_lib.sh"

trap 'rc=$?; pg_stop; (exit $rc); _cleanup' EXIT
"$DFOTAD" --version | grep -q libpq || bail_skip "dfotad built without PostgreSQL (libpq)"
pg_start || bail_skip "PostgreSQL not installed (tests/deps.sh installs it)"
UNIT=${top_builddir:-$LIB_DIR/../..}/tests/unit

for t in test_store_contract test_store; do
  ci=$(pg_createdb "$t") || bail "cannot create database $t"
  if DFOTAD_STORE_PG=$ci "$UNIT/$t" >"$T/$t.out" 2>&1; then
    pass "$t on PostgreSQL"
  else
    fail "$t on PostgreSQL" "$(cat "$T/$t.out")"
  fi
  PG_DB_CONNINFO=$ci
  expect_eq "$t: schema_version recorded" 4 "$(pg_psql 'SELECT max(version) FROM schema_version')"
  unset PG_DB_CONNINFO
done

# a second open of a migrated database migrates nothing, and a database
# newer than this dfotad is refused
ci=$(pg_createdb newer)
DFOTAD_STORE_PG=$ci "$UNIT/test_store_contract" >/dev/null 2>&1
PG_DB_CONNINFO=$ci pg_psql "INSERT INTO schema_version (version) VALUES (99)"
mkdir -p "$T/st"
cat >"$T/newer.conf" <<CONF
[server]
state_dir = $T/st
[store]
backend = postgresql
postgresql = $ci
[http]
listen = 127.0.0.1:$(free_port)
[admin]
listen = 127.0.0.1:$(free_port)
CONF
"$DFOTAD" -c "$T/newer.conf" >"$T/newer.log" 2>&1 &
wait_until 10 _pid_gone $!
expect_match "a newer schema is refused" "newer than this dfotad" "$(cat "$T/newer.log")"

# one node per database: a second node on it is refused while the first runs
ci=$(pg_createdb single)
mkdir -p "$T/st1" "$T/st2"
for i in 1 2; do
  cat >"$T/node$i.conf" <<CONF
[server]
state_dir = $T/st$i
[store]
backend = postgresql
postgresql = $ci
[http]
listen = 127.0.0.1:$(free_port)
[ftp]
listen =
[admin]
listen = 127.0.0.1:$(free_port)
CONF
done
start_dfotad "$T/node1.conf" || bail "the first node starts"
"$DFOTAD" -c "$T/node2.conf" >"$T/node2.log" 2>&1 &
n2=$!
check "a second node on the same database exits" wait_until 10 _pid_gone $n2
expect_match "... saying why" "another dfotad node uses this database" "$(cat "$T/node2.log")"

# a password in the connection string needs a configuration file only its
# owner may read
printf '[store]\nbackend = postgresql\npostgresql = postgresql://dfotad:secret@db.example/dfotad\n' \
  >"$T/pw.conf"
chmod 0644 "$T/pw.conf"
check_not "a password in a 0644 file: dfotad -t refuses it" "$DFOTAD" -t -c "$T/pw.conf"
expect_match "... saying why" "must be mode 0600" "$("$DFOTAD" -t -c "$T/pw.conf" 2>&1)"
chmod 0600 "$T/pw.conf"
check "... and accepts it at 0600" "$DFOTAD" -t -c "$T/pw.conf"
printf '[store]\nbackend = postgres\n' >"$T/bad.conf"
expect_match "an unknown backend is refused" "store.backend: must be one of sqlite, postgresql" \
  "$("$DFOTAD" -t -c "$T/bad.conf" 2>&1)"
finish
