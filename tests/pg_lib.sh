# pg_lib.sh: a throw-away PostgreSQL cluster for tests and benchmarks
# (bash; sourced). The cluster lives in a temporary folder, listens on a
# Unix socket in that folder only (no TCP port to collide with anything),
# and trusts local connections. Run as root, the server runs as user
# postgres (initdb and postgres refuse root).
#
#   pg_start [durable]   initdb + pg_ctl start; fsync off unless durable.
#                        Sets PG_DIR, PG_CONNINFO (the cluster's postgres
#                        database). 0, or 77 when PostgreSQL is not installed.
#   pg_createdb NAME     a fresh database; prints its conninfo
#   pg_psql SQL...       psql -Atq on PG_CONNINFO (or PG_DB_CONNINFO when set)
#   pg_restart_immediate pg_ctl restart -m immediate (a crash, then recovery)
#   pg_halt / pg_resume  pg_ctl stop -m immediate / start again
#   pg_stop              stop and remove the cluster (also on exit)
#
# Every wait is bounded (pg_ctl -w -t).

PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
PG_DIR=
PG_CONNINFO=
PG_PORT=${PG_PORT:-5432}

_pg_as() { # runs a command as the cluster's owner
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_available() {
  [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] &&
    { [ "$(id -u)" != 0 ] || id postgres >/dev/null 2>&1; }
}

_pg_ctl() { _pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" "$@" >/dev/null; }

pg_start() {
  local fsync=off
  [ "${1:-}" = durable ] && fsync=on
  pg_available || return 77
  PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/dfotad-pg.XXXXXX") || return 1
  chmod 755 "$PG_DIR"
  [ "$(id -u)" = 0 ] && chown postgres "$PG_DIR"
  _pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres -E UTF8 --locale=C \
    --no-sync >"$PG_DIR/initdb.log" 2>&1 || {
    cat "$PG_DIR/initdb.log" >&2
    return 1
  }
  cat >>"$PG_DIR/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$PG_DIR'
port = $PG_PORT
fsync = $fsync
synchronous_commit = on
full_page_writes = $fsync
shared_buffers = 64MB
max_connections = 40
EOF
  _pg_ctl -w -t 30 start || {
    cat "$PG_DIR/server.log" >&2
    return 1
  }
  PG_CONNINFO="host=$PG_DIR port=$PG_PORT user=postgres dbname=postgres"
  export PG_DIR PG_CONNINFO
}

pg_psql() {
  "$PG_BIN/psql" -X -Atq -v ON_ERROR_STOP=1 -d "${PG_DB_CONNINFO:-$PG_CONNINFO}" -c "$*"
}

pg_createdb() {
  pg_psql "CREATE DATABASE $1" >/dev/null || return 1
  echo "host=$PG_DIR port=$PG_PORT user=postgres dbname=$1"
}

pg_restart_immediate() { _pg_ctl -w -t 30 -m immediate restart; }
pg_halt() { _pg_ctl -w -t 30 -m immediate stop; }
pg_resume() { _pg_ctl -w -t 30 start; }

pg_stop() {
  [ -n "$PG_DIR" ] || return 0
  [ -f "$PG_DIR/data/postmaster.pid" ] && _pg_ctl -w -t 30 -m immediate stop 2>/dev/null
  rm -rf "$PG_DIR"
  PG_DIR=
}

# bail_skip REASON: the test cannot run here (automake's SKIP).
bail_skip() {
  echo "# SKIP: $1"
  exit 77
}
