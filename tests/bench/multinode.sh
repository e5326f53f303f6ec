#!/bin/bash
# multinode.sh: check-ins a second through three dfotad nodes sharing one
# PostgreSQL database ([store] nodes = shared; a throw-away cluster, fsync
# on), against one node on SQLite, with the same devices and the same load:
# MN_CLIENTS keep-alive connections (spread round-robin over the nodes)
# checking in as fast as they are answered for MN_SECONDS. Devices are in
# no rollout, so a check-in decides nothing but the device's last_seen.
# Not in make check; the nodes, PostgreSQL and the client share the machine.
#
# Usage: tests/bench/multinode.sh [path/to/dfotad]      (default ./server/dfotad)
# Environment: MN_DEVICES=2000, MN_CLIENTS=16, MN_SECONDS=10, MN_NODES=3.
#
# Prints per run: check-ins/s, p50/p99/max latency (ms), errors; for
# PostgreSQL the transactions committed a second (pg_stat_database).

set -u
DFOTAD=${1:-./server/dfotad}
N=${MN_DEVICES:-2000}
CLIENTS=${MN_CLIENTS:-16}
SECS=${MN_SECONDS:-10}
NODES=${MN_NODES:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../pg_lib.sh"
case $DFOTAD in /*) ;; *) DFOTAD="$PWD/$DFOTAD" ;; esac
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dfotad-mnbench.XXXXXX")
PIDS=()
stop_all() {
  local p
  for p in ${PIDS[@]+"${PIDS[@]}"}; do kill "$p" 2>/dev/null; done
  for p in ${PIDS[@]+"${PIDS[@]}"}; do wait "$p" 2>/dev/null; done
  PIDS=()
}
trap 'stop_all; pg_stop; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM HUP

"$DFOTAD" -V | grep -q libpq || { echo "multinode bench: $DFOTAD was built without libpq" >&2; exit 1; }
free_ports() {
  python3 -c 'import socket, sys
s = [socket.socket() for _ in range(int(sys.argv[1]))]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))' "$1"
}

# start_node DIR STORE-LINES...: sets NODE_HTTP and NODE_ADMIN once /healthz answers
start_node() {
  local dir=$1 http ftp admin
  shift
  read -r http ftp admin <<<"$(free_ports 3)"
  mkdir -p "$dir/state"
  [ -d "$TMP/packages" ] && ln -sfn "$TMP/packages" "$dir/state/packages"
  {
    printf '[server]\nstate_dir = %s\nlog_level = warn\n\n[store]\n' "$dir/state"
    printf '%s\n' "$@"
    printf '\n[http]\nlisten = 127.0.0.1:%s\n\n[ftp]\nlisten = 127.0.0.1:%s\n' "$http" "$ftp"
    printf '\n[coap]\nlisten =\n\n[admin]\nlisten = 127.0.0.1:%s\n' "$admin"
  } >"$dir/dfotad.conf"
  "$DFOTAD" -c "$dir/dfotad.conf" >>"$dir/dfotad.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$admin/healthz" && break
    sleep 0.1
  done
  NODE_HTTP="127.0.0.1:$http"
  NODE_ADMIN="127.0.0.1:$admin"
}

# run LABEL ADMIN HTTP...: devices created through ADMIN, then the load
run() {
  local label=$1 admin=$2 token
  shift 2
  token=$(head -n 1 "$TOKEN_FILE")
  python3 - "$N" >"$TMP/devices.json" <<'PYEOF'
import json, sys
n = int(sys.argv[1])
json.dump([{"id": "b%06d" % i, "model": "BG95-M3", "version": "A01",
            "secret": "secret-b%06d-0123456789" % i} for i in range(n)], sys.stdout)
PYEOF
  curl -sf -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    --data-binary @"$TMP/devices.json" "http://$admin/api/v1/devices" ||
    { echo "$label: bulk create failed" >&2; return 1; }
  python3 - "$N" "$CLIENTS" "$SECS" "$label" "$@" <<'PYEOF'
import http.client, sys, threading, time
n, clients, secs, label = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
nodes = sys.argv[5:]
lat, errs, lock = [], [0], threading.Lock()
stop = time.monotonic() + secs
def worker(k):
    conns, i, mine = {}, k, []
    while time.monotonic() < stop:
        node = nodes[i % len(nodes)]
        dev = i % n
        i += clients
        c = conns.get(node) or http.client.HTTPConnection(node, timeout=10)
        conns[node] = c
        t = time.monotonic()
        try:
            c.request("GET", "/v1/update?device=b%06d&version=A01" % dev,
                      headers={"X-Device-Token": "secret-b%06d-0123456789" % dev})
            r = c.getresponse(); r.read()
            ok = r.status in (200, 204)
        except (OSError, http.client.HTTPException):
            ok = False; c.close(); conns.pop(node, None)
        if ok:
            mine.append(time.monotonic() - t)
        else:
            with lock: errs[0] += 1
    with lock: lat.extend(mine)
ts = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
t0 = time.monotonic()
for t in ts: t.start()
for t in ts: t.join()
el = time.monotonic() - t0
lat.sort()
q = lambda p: 1000 * lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
print("%s: %d check-ins in %.1f s: %.0f/s, p50 %.1f ms, p99 %.1f ms, max %.1f ms, errors %d"
      % (label, len(lat), el, len(lat) / el, q(0.5), q(0.99), 1000 * (lat[-1] if lat else 0), errs[0]))
PYEOF
}

echo "== multinode bench: $N devices, $CLIENTS clients, $SECS s ($(date -u +%Y-%m-%dT%H:%M:%SZ), load $(cut -d' ' -f1 /proc/loadavg))"

start_node "$TMP/single"
TOKEN_FILE="$TMP/single/state/admin.token"
run "1 node, SQLite" "$NODE_ADMIN" "$NODE_HTTP"
stop_all

pg_start durable || { echo "multinode bench: cannot start PostgreSQL" >&2; exit 1; }
CI=$(pg_createdb bench) || exit 1
export PG_DB_CONNINFO=$CI
mkdir -p "$TMP/packages"
hs=()
for k in $(seq "$NODES"); do
  start_node "$TMP/n$k" "backend = postgresql" "postgresql = $CI" "nodes = shared"
  hs+=("$NODE_HTTP")
  [ "$k" = 1 ] && a1=$NODE_ADMIN
done
TOKEN_FILE="$TMP/n1/state/admin.token"
stat() { pg_psql "SELECT xact_commit FROM pg_stat_database WHERE datname = 'bench'"; }
sleep 1
c0=$(stat)
t0=$(date +%s.%N)
run "$NODES nodes, PostgreSQL" "$a1" "${hs[@]}"
sleep 0.6 # the statistics collector's delay
c1=$(stat)
awk -v c="$((c1 - c0))" -v a="$t0" -v b="$(date +%s.%N)" \
  'BEGIN { printf "PostgreSQL: %d transactions committed in %.1f s (%.0f/s, create and idle flushes included)\n", c, b - a, c / (b - a) }'
stop_all
