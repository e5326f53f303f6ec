#!/bin/sh
# lwm2m_dtls.sh: LwM2M registration over CoAPS (DTLS-PSK) by an independent
# client (issue 15): the npm package node-coap-client, whose DTLS
# (node-dtls-client) shares no code with libcoap or OpenSSL's DTLS.
# Register, Update at the location given, De-register; the same identity
# registering another endpoint is refused (4.03); a wrong key registers
# nothing. Installed like lwm2m.sh's lwm2m-node-lib, into
# DFOTAD_NPM_CACHE (nothing downloaded is committed); skipped when node or
# npm cannot install it.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"
. "$(dirname "$0")/coap_lib.sh"

npm_dtls() {
  local cache=${DFOTAD_NPM_CACHE:-/tmp/dfotad-npm-cache}
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || return 1
  if [ ! -d "$cache/node_modules/node-coap-client" ]; then
    mkdir -p "$cache" && (cd "$cache" && timeout 180 npm install --no-audit --no-fund --silent \
      node-coap-client@2.1.0 >/dev/null 2>&1) || return 1
  fi
  export NODE_PATH="$cache/node_modules"
}
if ! npm_dtls; then
  skip "node-coap-client DTLS registration" "node or npm cannot install it here"
  finish
fi

COAPS="127.0.0.1:$(udp_ports 1)"
fleet_start "[coaps]" "listen = $COAPS" "lwm2m = yes" ||
  bail "dfotad starts with [coaps] lwm2m = yes"
KEY=lwm2m-psk-16byte # 16 bytes: what tinydtls clients take, and node-dtls-client too
dev_put dtls1 "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"psk\":\"$(hexof "$KEY")\",\"trigger\":\"lwm2m\"}"
expect_eq "a device with a PSK: 201" 201 "$STATUS"
dev_put dtls2 "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"trigger\":\"lwm2m\"}"

# node HOST PORT IDENTITY KEY EP [OTHER]: the client, bounded in time
nodelw() { timeout -k 5 60 node "$LIB_DIR/lwm2m_dtls.js" 127.0.0.1 "${COAPS##*:}" "$@" 2>"$T/node.err"; }
nodelw dtls1 "$KEY" dtls1 dtls2 >"$T/node.out"
NODE_RC=$?
sed 's/^/# /' "$T/node.out"
expect_eq "node-coap-client over DTLS-PSK: every request answered" 0 "$NODE_RC"
[ "$NODE_RC" = 0 ] || sed 's/^/# /' "$T/node.err" | tail -20
expect_match "Register: 2.01 with a location" '^register 2\.01 rd/[a-z2-7]{10}$' "$(grep ^register "$T/node.out")"
expect_eq "Update at that location: 2.04" "update 2.04" "$(grep ^update "$T/node.out")"
expect_eq "the same identity registering another endpoint: 4.03" "other 4.03" "$(grep ^other "$T/node.out")"
expect_eq "De-register: 2.02" "delete 2.02" "$(grep ^delete "$T/node.out")"
dev_get dtls1
expect_eq "the device shows the registration: over coaps, lifetime updated, de-registered" \
  "dtls1 coaps 90 false" "$(jq -r '"\(.lwm2m.endpoint) \(.lwm2m.protocol) \(.lwm2m.lifetime) \(.lwm2m.registered)"' <"$BODY")"
expect_eq "metric: one registration" 1 "$(metric dfotad_lwm2m_registrations_total)"
expect_eq "metric: one identity refused" 1 "$(metric dfotad_lwm2m_refused_identity_total)"
expect_eq "metric: one de-registration" 1 "$(metric dfotad_lwm2m_deregistrations_total)"

nodelw dtls1 wrong-psk-16byte dtls1 >"$T/node2.out"
expect_ne "a wrong key: the client gets no answer" 0 $?
sed 's/^/# /' "$T/node2.out"
expect_eq "... and registers nothing" 1 "$(metric dfotad_lwm2m_registrations_total)"
stop_dfotad TERM 15
finish
