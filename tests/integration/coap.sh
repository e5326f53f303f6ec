#!/bin/sh
# coap.sh: the CoAP(S) front end to end: per-device DTLS pre-shared keys
# through the admin API (sealed at rest, never shown again), check-ins,
# downloads and reports over CoAPS with PSK and with certificates, plain
# CoAP downloads at every block size, byte-identical; the device's
# progress; a rollout with transport coaps that completes; wrong and
# unknown keys that fail the handshake and record nothing; an independent
# client (npm) when it can be fetched.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"
. "$(dirname "$0")/coap_lib.sh"

coap_pki dev-cert || bail "test certificates made with openssl"
coap_start || bail "dfotad starts with [coap] and [coaps]"

KEY_PSK='dev-psk-key-0123456789'      # coap-client takes the key as text
KEY_PLAIN='plain-secret-0123456789'
mkpkg "$VA" "$VC" 150001 || bail "package uploaded"
PKG="$T/pkg-$VA-$VC.bin"
PID_AC=$PKG_ID

# --- devices and their keys ------------------------------------------------------
dev_put dev-psk "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"transport\":\"coaps\",\"psk\":\"$(hexof "$KEY_PSK")\"}"
expect_eq "a device with a PSK is created" 201 "$STATUS"
expect_eq "its answer does not show the key" "" "$(json "$BODY" .psk)"
expect_eq "its identity defaults to its id" dev-psk "$(json "$BODY" .psk_identity)"
dev_put dev-cert "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"transport\":\"coaps\"}"
dev_put dev-plain "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"transport\":\"coap\",\"secret\":\"$KEY_PLAIN\"}"
dev_put dev-gen "{\"model\":\"$MODEL\",\"version\":\"$VC\",\"psk\":\"generate\",\"psk_identity\":\"gen-ident\"}"
GEN=$(json "$BODY" .psk)
expect_match "psk: generate returns the key once (16 bytes in hex by default, what tinydtls takes)" '^[0-9a-f]{32}$' "$GEN"
dev_get dev-gen
expect_eq "GET never shows a key" "" "$(json "$BODY" .psk)"
expect_eq "GET shows the identity" gen-ident "$(json "$BODY" .psk_identity)"
dev_put dev-other "{\"model\":\"$MODEL\",\"psk\":\"generate\",\"psk_identity\":\"gen-ident\"}"
expect_eq "an identity of another device is refused" 400 "$STATUS"
dev_put dev-short "{\"model\":\"$MODEL\",\"psk\":\"00112233\"}"
expect_eq "a key of fewer than 16 bytes is refused" 400 "$STATUS"
expect_eq "psk.key is made 0600" 600 "$(file_mode "$STATE/psk.key")"
sleep 0.3 # a flush of the writer
if command -v sqlite3 >/dev/null 2>&1; then
  expect_eq "the database holds no key in clear" 0 \
    "$(sqlite3 "$STATE/dfotad.db" .dump | grep -c -e "$KEY_PSK" -e "$(hexof "$KEY_PSK")" -e "$GEN")"
fi
expect_eq "the log holds no key" 0 "$(grep -c -e "$KEY_PSK" -e "$(hexof "$KEY_PSK")" -e "$GEN" "$DFOTAD_LOG")"
curl -s "http://$ADMIN/metrics" >"$T/metrics.txt"
expect_eq "/metrics holds no key" 0 "$(grep -c -e "$(hexof "$KEY_PSK")" -e "$GEN" "$T/metrics.txt")"

rollout_create "{\"name\":\"coaps\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"devices\":[\"dev-psk\",\"dev-cert\",\"dev-plain\"]},\"waves\":[100],\"transport\":\"coaps\"}" ||
  bail "rollout created" "$(cat "$BODY")"
rollout_action "$RID" start

# --- check-ins over CoAPS: the DTLS identity authenticates ------------------------
PSKARGS=(-u dev-psk -k "$KEY_PSK")
CERTARGS=(-c "$P/dev.crt" -j "$P/dev.key" -C "$P/ca.crt")
URL_PSK=$(cc "${PSKARGS[@]}" "coaps://$COAPS/v1/update?device=dev-psk&version=$VA" 2>>"$T/cc.err")
expect_match "PSK check-in: a coaps:// offer with an explicit port" "^coaps://127\.0\.0\.1:$COAPS_PORT/f/[a-z2-7]+$" "$URL_PSK"
URL_CERT=$(cc "${CERTARGS[@]}" "coaps://$COAPS/v1/update?device=dev-cert&version=$VA" 2>>"$T/cc.err")
expect_match "certificate check-in (CN): a coaps:// offer" "^coaps://127\.0\.0\.1:$COAPS_PORT/f/" "$URL_CERT"
OUT=$(cc "${PSKARGS[@]}" "coaps://$COAPS/v1/update?device=dev-cert&version=$VA" 2>&1)
expect_match "a PSK identity checking in as another device: 4.03" '4\.03' "$OUT"
OUT=$(cc "coap://$COAP/v1/update?device=dev-psk&version=$VA" 2>&1)
expect_match "no check-in over plain CoAP: 4.03" '4\.03' "$OUT"
OUT=$(cc -C "$P/ca.crt" "coaps://$COAPS/v1/update?device=dev-cert&version=$VA" 2>&1)
expect_match "no client certificate, no identity: 4.03" '4\.03' "$OUT"
checkin dev-plain "$KEY_PLAIN" "$VA"
URL_PLAIN=$(cat "$BODY")
expect_match "HTTP check-in of a coap device: a coap:// offer" "^coap://127\.0\.0\.1:$COAP_PORT/f/" "$URL_PLAIN"

# --- downloads, byte-identical ----------------------------------------------------------
for b in 16 64 256 1024; do
  rm -f "$T/out.bin"
  cc -b "$b" -o "$T/out.bin" "$URL_PLAIN" 2>>"$T/cc.err"
  expect_eq "coap:// at -b $b: byte-identical" "$(sha "$PKG")" "$(sha "$T/out.bin" 2>/dev/null)"
done
expect_eq "plain download: progress 100" 100 "$(dev_field dev-plain .progress.percent)"
expect_eq "plain download: protocol coap" coap "$(dev_field dev-plain .progress.protocol)"
for b in 64 1024; do
  rm -f "$T/out.bin"
  cc "${PSKARGS[@]}" -b "$b" -o "$T/out.bin" "$URL_PSK" 2>>"$T/cc.err"
  expect_eq "coaps:// PSK at -b $b: byte-identical" "$(sha "$PKG")" "$(sha "$T/out.bin" 2>/dev/null)"
done
rm -f "$T/out.bin"
cc "${CERTARGS[@]}" -b 256 -o "$T/out.bin" "$URL_CERT" 2>>"$T/cc.err"
expect_eq "coaps:// certificates at -b 256: byte-identical" "$(sha "$PKG")" "$(sha "$T/out.bin" 2>/dev/null)"
expect_eq "PSK download: progress 100" 100 "$(dev_field dev-psk .progress.percent)"
expect_eq "PSK download: protocol coaps" coaps "$(dev_field dev-psk .progress.protocol)"
expect_eq "PSK download: the client address" 127.0.0.1 "$(dev_field dev-psk .progress.client_address)"
expect_eq "the device is downloading" downloading "$(dev_field dev-psk .state)"

# --- wrong and unknown keys: the handshake fails, nothing is recorded ------------
before=$(dev_field dev-psk .progress.bytes_served)
unknown0=$(metric 'dfotad_sessions_unknown_identities_total{protocol="coaps"}')
OUT=$(CC_WAIT=5 cc -u dev-psk -k 'wrong-key-wrong-key-00' -o "$T/bad.bin" "$URL_PSK" 2>&1)
expect_eq "a wrong key gets no byte" 0 "$(fsize "$T/bad.bin")"
OUT=$(CC_WAIT=5 cc -u nobody-knows-me -k 'wrong-key-wrong-key-00' -o "$T/bad2.bin" "$URL_PSK" 2>&1)
expect_eq "an unknown identity gets no byte" 0 "$(fsize "$T/bad2.bin")"
expect_eq "nothing recorded for either" "$before" "$(dev_field dev-psk .progress.bytes_served)"
expect_eq "the unknown identity is counted" $((unknown0 + 1)) \
  "$(metric 'dfotad_sessions_unknown_identities_total{protocol="coaps"}')"

# --- one block alone, any time: -b N,1024 ---------------------------------------------
rm -f "$T/blk.bin"
cc -b 100,1024 -o "$T/blk.bin" "$URL_PLAIN" 2>>"$T/cc.err"
dd if="$PKG" of="$T/want.bin" bs=1024 skip=100 count=1 2>/dev/null
expect_eq "-b 100,1024: block 100 alone" "$(sha "$T/want.bin")" "$(sha "$T/blk.bin" 2>/dev/null)"
sleep 10 # longer than libcoap's own 8 s hold of a large response
rm -f "$T/blk.bin"
cc -b 20,1024 -o "$T/blk.bin" "$URL_PLAIN" 2>>"$T/cc.err"
dd if="$PKG" of="$T/want.bin" bs=1024 skip=20 count=1 2>/dev/null
expect_eq "-b 20,1024 ten seconds later: block 20 alone" "$(sha "$T/want.bin")" "$(sha "$T/blk.bin" 2>/dev/null)"

# --- 10 % of datagrams lost: still complete (a small package, anonymously) -------
mkpkg "$VB" "$VC" 40000 || bail "small package uploaded"
SMALL="$T/pkg-$VB-$VC.bin"
rm -f "$T/lossy.bin"
CC_WAIT=100 cc -l 10% -b 1024 -o "$T/lossy.bin" "coap://$COAP/p/$PKG_ID" 2>>"$T/cc.err"
expect_eq "10 % loss (-l 10%): complete and intact" "$(sha "$SMALL")" "$(sha "$T/lossy.bin" 2>/dev/null)"
OUT=$(cc -o /dev/null "coaps://$COAPS/p/$PKG_ID" "${PSKARGS[@]}" 2>&1)
expect_match "/p/ is off where anonymous_packages is not set ([coaps]): 4.04" '4\.04' "$OUT"

# --- an implementation that is not libcoap --------------------------------------
if npm_clients; then
  rm -f "$T/node.bin"
  OUT=$(timeout 120 node "$NODE_CLIENT" get "$URL_PLAIN" "$T/node.bin" 256 2>&1)
  expect_eq "npm coap: byte-identical ($OUT)" "$(sha "$PKG")" "$(sha "$T/node.bin" 2>/dev/null)"
  rm -f "$T/node2.bin"
  OUT=$(timeout 120 node "$NODE_CLIENT" psk "${URL_PSK/127.0.0.1/localhost}" "$T/node2.bin" dev-psk "$KEY_PSK" 2>&1)
  expect_eq "npm node-coap-client over DTLS PSK: byte-identical ($OUT)" "$(sha "$PKG")" "$(sha "$T/node2.bin" 2>/dev/null)"
else
  skip "npm clients (coap, node-coap-client)" "node or npm cannot fetch them here"
fi
rm -f "$T/raw.bin"
python3 "$RAW" fetch 127.0.0.1 "$COAP_PORT" "${URL_PLAIN#coap://127.0.0.1:$COAP_PORT}" "$T/raw.bin" --szx 3 >/dev/null
expect_eq "coap_raw.py (Python) at 128-byte blocks: byte-identical" "$(sha "$PKG")" "$(sha "$T/raw.bin" 2>/dev/null)"

# --- reports over CoAPS, then the new version: the rollout completes --------------
for who in psk cert; do
  if [ $who = psk ]; then A=("${PSKARGS[@]}"); else A=("${CERTARGS[@]}"); fi
  printf '+QIND: "FOTA","COAPSTART"\r\n+QIND: "FOTA","COAPEND",0\r\n+QIND: "FOTA","START"\r\n+QIND: "FOTA","END",0\r\n' >"$T/urc.txt"
  OUT=$(cc "${A[@]}" -m post -f "$T/urc.txt" "coaps://$COAPS/v1/report?device=dev-$who" 2>&1)
  expect_match "report over CoAPS ($who): applied" '"accepted":[1-9]' "$OUT"
  OUT=$(cc "${A[@]}" "coaps://$COAPS/v1/update?device=dev-$who&version=$VC" 2>&1)
  expect_eq "check-in on the new version ($who): 2.05, nothing to do" "" "$OUT"
  expect_eq "dev-$who succeeded" succeeded "$(dev_field dev-$who .state)"
done
head -c 2000 /dev/zero | tr '\0' 'x' >"$T/big.txt"
OUT=$(cc "${PSKARGS[@]}" -m post -f "$T/big.txt" "coaps://$COAPS/v1/report?device=dev-psk" 2>&1)
expect_match "a report over max_report: 4.13" '4\.13' "$OUT"
report dev-plain "$KEY_PLAIN" "$(urcs '+QIND: "FOTA","COAPEND",0' '+QIND: "FOTA","END",0')"
checkin dev-plain "$KEY_PLAIN" "$VC"
wait_rollout_state "$RID" completed 10
expect_eq "the coaps rollout completes" completed "$(rollout_field "$RID" .state)"

curl -s "http://$ADMIN/metrics" >"$T/metrics.txt"
expect_match "/metrics: requests by protocol coap" 'dfotad_requests_total\{protocol="coap"\} [1-9]' "$(cat "$T/metrics.txt")"
expect_match "/metrics: DTLS handshakes" 'dfotad_sessions_handshakes_total\{protocol="coaps"\} [1-9]' "$(cat "$T/metrics.txt")"
pkg_json "$PID_AC"
expect_match "package statistics count CoAP downloads" '^[1-9]' "$(json "$BODY" .stats.downloads)"

# --- a reload in place cannot drop the certificate: refused, not ignored ----------------
sed -i -e '/^cert = /d' -e '/^key = /d' -e '/^client_ca = /d' -e '/^client_auth = /d' "$FLEET_CONF"
mark=$(log_mark)
kill -HUP "$DFOTAD_PID"
check "[coaps] cert removed: the reload is refused" wait_log_since "$mark" 'reload refused' 10
expect_match "[coaps] cert removed: the refusal says why" 'coaps: cert removed: .*restart' \
  "$(log_since "$mark")"
OUT=$(cc "${CERTARGS[@]}" "coaps://$COAPS/v1/update?device=dev-cert&version=$VC" 2>&1)
expect_eq "after the refused reload, a certificate check-in still works" "" "$OUT"

stop_dfotad TERM 15
expect_eq "dfotad stops cleanly" 0 "$DFOTAD_RC"
finish
