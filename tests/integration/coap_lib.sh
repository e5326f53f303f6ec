# coap_lib.sh: helpers for the CoAP(S) front's integration tests, sourced
# after lib.sh and fleet_lib.sh. Clients: coap-client-openssl (Debian
# libcoap3-bin), tests/integration/coap_raw.py (hand-made datagrams, a
# client that is not libcoap) and, when npm can fetch them,
# tests/integration/coap_node.js (the npm packages coap and
# node-coap-client). Loopback only; every client run is bounded in time.

COAP_CLIENT=${COAP_CLIENT:-coap-client-openssl}
if ! command -v "$COAP_CLIENT" >/dev/null 2>&1; then
  echo "$TEST_NAME: needs $COAP_CLIENT (apt-get install libcoap3-bin)" >&2
  exit 77
fi
RAW="$LIB_DIR/coap_raw.py"
NODE_CLIENT="$LIB_DIR/coap_node.js"

# udp_ports N: N UDP ports on 127.0.0.1 free right now, one per line.
udp_ports() {
  python3 -c 'import socket, sys
socks = []
for i in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])' "${1:-1}"
}

# cc ARGS...: coap-client-openssl, bounded (-B: its own give-up time).
cc() { timeout -k 5 "${CC_TIMEOUT:-120}" "$COAP_CLIENT" -B "${CC_WAIT:-60}" "$@"; }

# coap_pki: a CA, an intermediate, the server's chain (leaf + intermediate)
# and a device certificate whose CN is $1, in $P.
coap_pki() {
  P="$T/pki"
  mkdir -p "$P"
  local cn=$1
  {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout "$P/ca.key" -out "$P/ca.crt" -days 2 -subj "/CN=dfotad test CA" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign &&
      openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$P/int.key" -out "$P/int.csr" -subj "/CN=dfotad test intermediate" &&
      printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' >"$P/int.ext" &&
      openssl x509 -req -in "$P/int.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial \
        -days 2 -extfile "$P/int.ext" -out "$P/int.crt" &&
      openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$P/server.key" -out "$P/server.csr" -subj "/CN=localhost" &&
      printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$P/server.ext" &&
      openssl x509 -req -in "$P/server.csr" -CA "$P/int.crt" -CAkey "$P/int.key" \
        -CAcreateserial -days 2 -extfile "$P/server.ext" -out "$P/server-leaf.crt" &&
      cat "$P/server-leaf.crt" "$P/int.crt" >"$P/server.crt" &&
      openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$P/dev.key" -out "$P/dev.csr" -subj "/CN=$cn" &&
      openssl x509 -req -in "$P/dev.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial \
        -days 2 -out "$P/dev.crt"
  } >/dev/null 2>&1 || return 1
  chmod 600 "$P"/*.key
}

# coap_start [CONFIG-LINES]: fleet_start with [coap] and [coaps] on free
# UDP ports (certificates from coap_pki when $P is set); COAP and COAPS
# are HOST:PORT. A port taken between its pick and the daemon's bind (by
# another test running at the same time) means new ports, up to 3 tries.
coap_start() {
  local ports try
  for try in 1 2 3; do
    ports=$(udp_ports 2 | tr '\n' ' ')
    read -r COAP_PORT COAPS_PORT <<<"$ports"
    COAP="127.0.0.1:$COAP_PORT"
    COAPS="127.0.0.1:$COAPS_PORT"
    local tls=""
    if [ -n "${P:-}" ]; then
      tls="cert = $P/server.crt
key = $P/server.key
client_ca = $P/ca.crt
client_auth = optional"
    fi
    fleet_start "[coap]
listen = $COAP
anonymous_packages = yes
[coaps]
listen = $COAPS
$tls" "$@" && return 0
    log_since "$_start_mark" | grep -q 'cannot listen' || return 1
    echo "# try $try: a port was taken before dfotad could bind it; new ports"
    HTTP_PORT=
  done
  return 1
}

# lwm2m_start [CONFIG-LINES]: fleet_start with an LwM2M server on plain
# CoAP (COAP is HOST:PORT), devices polled every 300 s, lifetimes from 2 s,
# queue-mode devices awake 2 s, every 710 re-checked; LWSIM: the simulator.
lwm2m_start() {
  LWSIM="$LIB_DIR/../sim/lwm2msim.py"
  COAP="127.0.0.1:$(udp_ports 1)"
  fleet_start "[coap]" "listen = $COAP" "lwm2m = yes" "lwm2m_insecure = yes" "lwm2m_poll = 300" \
    "lwm2m_lifetime_min = 2" "lwm2m_queue_awake = 2" "[fleet]" "recheck_interval = 0" "$@"
}

# hexof TEXT: TEXT's bytes in hex (coap-client takes a key as text).
hexof() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }

# metric NAME{LABELS}: its value in /metrics ("" when absent).
metric() {
  curl -s --max-time 10 "http://$ADMIN/metrics" | awk -v k="$1" '$1 == k { print $2 }'
}

# npm_clients: the npm packages for coap_node.js, in a cache outside the
# repository; NODE_PATH set. 1 (with a message) when node or npm cannot.
npm_clients() {
  local cache=${DFOTAD_NPM_CACHE:-/tmp/dfotad-npm-cache}
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || return 1
  # one install at a time (tests/run-all runs two builds' tests at once)
  mkdir -p "$cache" || return 1
  (
    flock 9
    [ -d "$cache/node_modules/coap" ] && [ -d "$cache/node_modules/node-coap-client" ] && exit 0
    cd "$cache" && timeout 180 npm install --no-audit --no-fund --silent coap@1 \
      node-coap-client >/dev/null 2>&1
  ) 9>"$cache.lock" || return 1
  export NODE_PATH="$cache/node_modules"
}
