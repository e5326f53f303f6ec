#!/bin/sh
# coap_robust.sh: the CoAP(S) front under odd and hostile input: blocks in
# any order and size, CON and NON; duplicates answered but counted once;
# bad Block2 options refused with a clear 4.xx and nothing recorded;
# malformed datagrams dropped while the service goes on; error answers
# never larger than 3x their request (no amplification); a ClientHello
# flood that does not stop an established DTLS download; a download cut at
# about 40 % that shows ~40 %, then 100 % with a resume; SIGHUP reloads in
# place (a DTLS download goes on across it); the per-address limit.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"
. "$(dirname "$0")/coap_lib.sh"

coap_start || bail "dfotad starts with [coap] and [coaps]"
KEY='robust-psk-key-0123456789'
mkpkg "$VA" "$VC" 300001 || bail "package uploaded"
PKG="$T/pkg-$VA-$VC.bin"
dev_put dev1 "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"transport\":\"coap\",\"psk\":\"$(hexof "$KEY")\"}"
# dev2's download is cut and resumed on its own: dev1's random blocks, a
# first request past byte 0 among them, tell that it holds the bytes before
CUT_SECRET='robust-cut-secret-0123456789'
dev_put dev2 "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"transport\":\"coap\",\"secret\":\"$CUT_SECRET\"}"
rollout_create "{\"name\":\"r\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"devices\":[\"dev1\",\"dev2\"]},\"waves\":[100]}" || bail "rollout"
rollout_action "$RID" start
URL=$(cc -u dev1 -k "$KEY" "coaps://$COAPS/v1/update?device=dev1&version=$VA" 2>>"$T/cc.err")
expect_match "an offer over coap" "^coap://127\.0\.0\.1:$COAP_PORT/f/" "$URL"
FPATH=${URL#coap://$COAP}
req() { metric 'dfotad_requests_total{protocol="coap"}'; }

# --- bad Block2: a clear 4.xx, nothing recorded -------------------------------
r0=$(req)
bytes0=$(dev_field dev1 .progress.bytes_served)
OUT=$(python3 "$RAW" badblock 127.0.0.1 "$COAP_PORT" "$FPATH" 2>&1)
expect_match "SZX 7, past the end, two Block2: 4.02 each" 'two Block2 options: 4.02' "$OUT"
echo "$OUT" | sed 's/^/# /'
expect_eq "no request counted for them" "$r0" "$(req)"
expect_eq "no byte recorded for them" "$bytes0" "$(dev_field dev1 .progress.bytes_served)"
expect_eq "the device stays offered (no download began)" offered "$(dev_field dev1 .state)"

# --- any order, any size, CON and NON -----------------------------------------
OUT=$(python3 "$RAW" order 127.0.0.1 "$COAP_PORT" "$FPATH" "$PKG" 2>&1)
expect_match "random blocks and sizes: right bytes, Size2, ETag = SHA-256 prefix" '^ok' "$OUT"

# --- duplicates: answered again, counted once -----------------------------------
r0=$(req)
OUT=$(python3 "$RAW" dup 127.0.0.1 "$COAP_PORT" "$FPATH" 2>&1)
expect_match "CON and NON duplicates answered with the same block" '^ok NON' "$OUT"
expect_eq "four datagrams, two blocks counted" $((r0 + 2)) "$(req)"

# --- malformed datagrams: dropped, the service goes on ---------------------------
OUT=$(python3 "$RAW" malformed 127.0.0.1 "$COAP_PORT" "$FPATH" 2>&1)
expect_match "malformed datagrams, then a good request answered" '^ok .* 2\.05$' "$OUT"
OUT=$(python3 "$RAW" amp 127.0.0.1 "$COAP_PORT" 2>&1)
expect_match "error answers at most 3x their request" '^ok' "$OUT"

# --- cut at about 40 %, then resumed -----------------------------------------------
# coap-client sends its first 118 requests (of 294 blocks), then loses every
# datagram: the download stops at about 40 %
checkin dev2 "$CUT_SECRET" "$VA"
URL2=$(cat "$BODY")
expect_match "dev2: an offer over coap" "^coap://127\.0\.0\.1:$COAP_PORT/f/" "$URL2"
rm -f "$T/cut.bin"
CC_WAIT=3 cc -l 119-99999 -b 1024 -o "$T/cut.bin" "$URL2" 2>>"$T/cc.err"
got=$(fsize "$T/cut.bin")
sleep 0.5
pct=$(dev_field dev2 .progress.percent)
expect_match "cut: about 40 % recorded ($pct %, $got bytes on the client)" '^(3[5-9]|4[0-5])$' "$pct"
sleep 2.5 # a pause, then the device goes on from its breakpoint, from another port
python3 "$RAW" fetch 127.0.0.1 "$COAP_PORT" "${URL2#coap://$COAP}" "$T/cut.bin" --from $((got / 1024)) >/dev/null
expect_eq "resumed: the package complete on the client" "$(sha "$PKG")" "$(sha "$T/cut.bin")"
expect_eq "resumed: 100 %" 100 "$(dev_field dev2 .progress.percent)"
expect_match "resumed: a resume recorded" '^[1-9]' "$(dev_field dev2 .progress.resumes)"

# --- a ClientHello flood (400 spoofed sources, under handshake_limit) stops
# neither an established DTLS download nor a new handshake ---------------------
rm -f "$T/dtls.bin"
cc -u dev1 -k "$KEY" -b 64 -o "$T/dtls.bin" "coaps://$COAPS$FPATH" 2>>"$T/cc.err" &
DL=$!
BG_PIDS+=("$DL")
python3 - "$COAPS_PORT" <<'PYEOF' &
import os, socket, struct, sys, time
# ClientHellos from 400 source ports, repeated for 3 s (no cookie: they
# never complete)
port = int(sys.argv[1])
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(400)]
body = b"\xfe\xfd" + os.urandom(32) + b"\x00" + b"\x00" + b"\x00\x04\x00\xa8\x00\xae" + b"\x01\x00"
hs = b"\x01" + struct.pack("!I", len(body))[1:] + b"\x00\x00" + b"\x00\x00\x00" + struct.pack("!I", len(body))[1:] + body
rec = b"\x16\xfe\xff" + b"\x00\x00" + b"\x00" * 6 + struct.pack("!H", len(hs)) + hs
end = time.time() + 3
while time.time() < end:
    for s in socks:
        s.sendto(rec, ("127.0.0.1", port))
    time.sleep(0.05)
PYEOF
FLOOD=$!
BG_PIDS+=("$FLOOD")
wait "$FLOOD"
wait "$DL"
expect_eq "a DTLS download through a ClientHello flood: byte-identical" "$(sha "$PKG")" "$(sha "$T/dtls.bin" 2>/dev/null)"
OUT=$(cc -u dev1 -k "$KEY" "coaps://$COAPS/v1/update?device=dev1&version=$VA" 2>&1)
expect_match "a new handshake after the flood works" '^coap://' "$OUT"

# --- SIGHUP: reloaded in place; a DTLS download goes on across it -----------------
rm -f "$T/dtls2.bin"
cc -u dev1 -k "$KEY" -b 16 -o "$T/dtls2.bin" "coaps://$COAPS$FPATH" 2>>"$T/cc.err" &
DL=$!
BG_PIDS+=("$DL")
sleep 1
mark=$(log_mark)
kill -HUP "$DFOTAD_PID"
wait_log_since "$mark" 'coaps: reloaded in place' 10
expect_match "SIGHUP: coaps reloaded in place" 'coaps: reloaded in place' "$(log_since "$mark")"
wait "$DL"
expect_eq "a DTLS download across the reload: byte-identical" "$(sha "$PKG")" "$(sha "$T/dtls2.bin" 2>/dev/null)"

# --- the per-address limit ------------------------------------------------------------
stop_dfotad TERM 15
expect_eq "dfotad stops cleanly" 0 "$DFOTAD_RC"
printf '[coap]\nper_ip_limit = 2\n' >>"$FLEET_CONF"
start_dfotad "$FLEET_CONF" || bail "dfotad restarts with per_ip_limit = 2"
codes=$(for i in 1 2 3; do python3 "$RAW" get 127.0.0.1 "$COAP_PORT" /p/nothing | cut -d' ' -f1; done | tr '\n' ' ')
expect_eq "three sessions from one address with per_ip_limit = 2: the third gets 5.03" "4.04 4.04 5.03 " "$codes"
expect_eq "the refused session is counted" 1 "$(metric 'dfotad_sessions_refused_total{protocol="coap"}')"
stop_dfotad TERM 15
finish
