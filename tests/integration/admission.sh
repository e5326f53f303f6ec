#!/bin/sh
# admission.sh: the one admission table (net/admission.c) and the one
# failed-credential throttle under attack, on loopback, each attack bounded:
# - cookie-less ClientHellos from 1,300 sources: a device from another
#   address completes a DTLS check-in meanwhile;
# - a wrong DTLS PSK for a known identity: a log line with the identity and
#   the address, counted; 20 tries from one address lock it out (throttled);
# - a device that resumes its DTLS session checks in as itself, and no
#   longer once its key changed (the session ends);
# - handshakes that return the cookie and offer no usable suite leave no
#   count against their address (per_ip_limit = 1);
# - one failed FTP login from each of 65,536 addresses, then 256 FTP
#   connections from one address that never log in: a device from another
#   address downloads over FTP all the while.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"
. "$(dirname "$0")/coap_lib.sh"

FLOOD="$LIB_DIR/adm_flood.py"
coap_start || bail "dfotad starts with [coap], [coaps] and [ftp]"
KEY1='admission-psk-key-0123456789'
KEY2='admission-psk-key-abcdefghij'
KEY3='admission-psk-key-klmnopqrst'
mkpkg "$VA" "$VC" 400000 || bail "package uploaded"
PKG="$T/pkg-$VA-$VC.bin"
for d in 1 2 3; do
  k=KEY$d
  dev_put "d$d" "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"transport\":\"coaps\",\"psk\":\"$(hexof "${!k}")\"}"
  [ "$STATUS" = 201 ] || bail "device d$d" "$STATUS"
done
dev_put f1 "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"transport\":\"ftp\",\"secret\":\"secret-f1-0123456789\"}"
rollout_create "{\"name\":\"adm\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"devices\":[\"f1\"]},\"waves\":[100]}" || bail "rollout"
rollout_action "$RID" start
checkin_coaps() { # DEVICE KEY [CC-ARGS...]: a CoAPS check-in; its answer on stdout
  local d=$1 k=$2
  shift 2
  CC_WAIT=${CC_WAIT:-10} cc "$@" -u "$d" -k "$k" "coaps://$COAPS/v1/update?device=$d&version=$VA" 2>&1
}

# --- cookie-less ClientHellos from 1,300 sources (over handshake_limit) --------
python3 "$FLOOD" hellos "$COAPS_PORT" 4 1300 9 >"$T/hellos.out" 2>&1 &
HF=$!
BG_PIDS+=("$HF")
sleep 3 # two rounds: every source known to libcoap
OUT=$(checkin_coaps d2 "$KEY2")
expect_no_match "ClientHello flood: a device from another address checks in over DTLS" '4\.0|5\.0|ERR|^$' "$OUT"
sleep 2
OUT=$(checkin_coaps d2 "$KEY2")
expect_no_match "... and again, later in the flood" '4\.0|5\.0|ERR|^$' "$OUT"
wait "$HF"
expect_match "ClientHello flood: 1,300 sources, several rounds" '^sent [0-9]+ rounds [3-9]' "$(cat "$T/hellos.out")"

# --- a wrong PSK for a known identity: logged, counted, throttled -------------
mark=$(log_mark)
f0=$(metric 'dfotad_auth_failures_total{protocol="coaps"}')
th0=$(metric 'dfotad_auth_throttled_total{protocol="coaps"}')
pids=()
for i in $(seq 1 20); do
  CC_WAIT=3 cc -a 127.5.0.1 -u d3 -k 'wrong-wrong-wrong-wrong' \
    "coaps://$COAPS/v1/update?device=d3&version=$VA" >/dev/null 2>&1 &
  pids+=($!)
done
BG_PIDS+=("${pids[@]}")
wait "${pids[@]}"
_failed20() { [ "$(metric 'dfotad_auth_failures_total{protocol="coaps"}')" -ge $((f0 + 20)) ]; }
check "20 wrong keys: counted in dfotad_auth_failures_total{protocol=\"coaps\"}" wait_until 20 _failed20
check "a wrong key is logged with the identity and the address" \
  _log_has_since "$mark" 'wrong key for DTLS PSK identity d3: device d3 from 127\.5\.0\.1' ""
check "wrong keys are logged at a bounded rate" \
  test "$(log_since "$mark" | grep -c 'wrong key for DTLS PSK')" -le 15
OUT=$(CC_WAIT=3 checkin_coaps d3 "$KEY3" -a 127.5.0.1)
expect_match "after 20 wrong keys, the address is locked out (even the right key is not heard)" \
  'alert.*unknown PSK identity' "$OUT"
check "... counted in dfotad_auth_throttled_total{protocol=\"coaps\"}" \
  test "$(metric 'dfotad_auth_throttled_total{protocol="coaps"}')" -gt "$th0"
OUT=$(checkin_coaps d2 "$KEY2")
expect_no_match "another device from another address still checks in" '4\.0|5\.0|ERR|^$' "$OUT"

# --- DTLS session resumption keeps the device; a changed key ends it ----------
python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import coap_raw
sys.stdout.buffer.write(coap_raw.build("/v1/update?device=d1&version=" + sys.argv[2])[0])' \
  "$LIB_DIR" "$VA" >"$T/req.bin"
dtls_checkin() { # OUT SESSION-ARGS...: one check-in through openssl s_client (DTLS 1.2, PSK)
  local out=$1
  shift
  (cat "$T/req.bin"; sleep 1.5) | timeout 10 openssl s_client -dtls1_2 -connect "$COAPS" \
    -psk_identity d1 -psk "$(hexof "$KEY1")" "$@" >"$out" 2>&1
}
code_of() { # the code of the answer to req.bin that s_client printed: "2.05"
  python3 -c 'import sys
req = open(sys.argv[2], "rb").read()
out = open(sys.argv[1], "rb").read()
i = out.find(req[2:8])  # the message id and the token come back in the ACK
c = out[i - 1] if i > 0 and out[i - 2] & 0xF0 == 0x60 else 0
print("%d.%02d" % (c >> 5, c & 31))' "$1" "$T/req.bin"
}
dtls_checkin "$T/full.out" -sess_out "$T/sess.pem"
expect_match "s_client: a full DTLS handshake" 'New, TLSv1\.2' "$(cat "$T/full.out")"
expect_eq "s_client: the check-in is answered 2.05" 2.05 "$(code_of "$T/full.out")"
dtls_checkin "$T/resumed.out" -sess_in "$T/sess.pem"
expect_match "s_client: the session is resumed" 'Reused, TLSv1\.2' "$(cat "$T/resumed.out")"
expect_eq "a resumed DTLS session checks in as its device (2.05, not 4.03)" 2.05 "$(code_of "$T/resumed.out")"
mark=$(log_mark)
dev_put d1 "{\"psk\":\"$(hexof 'admission-new-key-0123456789')\"}"
expect_eq "d1's key changed" 200 "$STATUS"
dtls_checkin "$T/revoked.out" -sess_in "$T/sess.pem"
expect_eq "a session resumed after its key changed: 4.03" 4.03 "$(code_of "$T/revoked.out")"
check "... and it is ended" wait_log_since "$mark" 'PSK identity d1: its key was removed or changed; session ended' 5

# --- a cookie-verified ClientHello with no usable suite counts for nothing -------
# (libcoap frees such a session without an event: a count taken before the
# handshake completed would stay for good)
mark=$(log_mark)
printf '[coaps]\nper_ip_limit = 1\n' >>"$FLEET_CONF"
kill -HUP "$DFOTAD_PID"
check "per_ip_limit = 1, reloaded in place" wait_log_since "$mark" 'coaps: reloaded in place' 10
sleep 1 # the engine takes the new limits at its next housekeeping
expect_eq "three cookie exchanges completed with no usable suite" "verified 3" \
  "$(python3 "$FLOOD" no-suite "$COAPS_PORT" 127.6.0.1 3 2>&1)"
OUT=$(checkin_coaps d2 "$KEY2" -a 127.6.0.1)
expect_no_match "... then a device from that address checks in (not 5.03)" '4\.0|5\.0|ERR|^$' "$OUT"

# --- FTP: 65,536 addresses with one failed login each --------------------------
checkin f1 secret-f1-0123456789 "$VA" -H 'Accept: application/json'
URL=$(json "$BODY" .url)
expect_match "f1: an ftp:// offer" '^ftp://f1:' "$URL"
SHA=$(sha "$PKG")
downloads() { # SECONDS OUT: curl downloads from 127.0.0.1 in a loop; one line per result
  local end=$(($(date +%s) + $1)) n=0
  while [ "$(date +%s)" -lt "$end" ]; do
    rm -f "$T/dl.bin"
    curl -sS --max-time 20 -o "$T/dl.bin" "$URL" 2>>"$T/curl.err"
    if [ "$(sha "$T/dl.bin" 2>/dev/null)" = "$SHA" ]; then echo ok; else echo "bad $n"; fi
    n=$((n + 1))
    sleep 0.3
  done >"$2"
}
f0=$(metric 'dfotad_auth_failures_total{protocol="ftp"}')
start=$(date +%s.%N)
python3 "$FLOOD" ftp-fails "$FTP_PORT" 1 65536 >"$T/fails.out" 2>"$T/fails.err" &
FF=$!
BG_PIDS+=("$FF")
: >"$T/dl1.out"
while kill -0 "$FF" 2>/dev/null; do
  rm -f "$T/dl.bin"
  curl -sS --max-time 20 -o "$T/dl.bin" "$URL" 2>>"$T/curl.err"
  if [ "$(sha "$T/dl.bin" 2>/dev/null)" = "$SHA" ]; then echo ok; else echo bad; fi >>"$T/dl1.out"
  sleep 0.5
done
wait "$FF"
echo "# 65,536 failed logins in $(elapsed_since "$start") s" >&2
expect_match "every address sent its login" '^sent 655[0-9][0-9]$' "$(cat "$T/fails.out")"
check "FTP downloads from another address during the flood" test "$(grep -c ok "$T/dl1.out")" -ge 3
expect_eq "... every one of them byte-identical" 0 "$(grep -c bad "$T/dl1.out")"
_ftp_failed() { [ "$(metric 'dfotad_auth_failures_total{protocol="ftp"}')" -ge $((f0 + 65000)) ]; }
check "the failed logins reach dfotad_auth_failures_total{protocol=\"ftp\"}" wait_until 20 _ftp_failed
rm -f "$T/dl.bin"
curl -sS --max-time 20 -o "$T/dl.bin" "$URL" 2>>"$T/curl.err"
expect_eq "a download after the flood" "$SHA" "$(sha "$T/dl.bin")"

# --- FTP: 256 connections from one address that never log in -------------------
python3 "$FLOOD" ftp-pending "$FTP_PORT" 127.3.0.1 256 8 >"$T/pending.out" 2>&1 &
FP=$!
BG_PIDS+=("$FP")
sleep 1
downloads 6 "$T/dl2.out"
wait "$FP"
check "FTP downloads from another address meanwhile" test "$(grep -c ok "$T/dl2.out")" -ge 3
expect_eq "... every one of them byte-identical" 0 "$(grep -c bad "$T/dl2.out")"
expect_match "the pending logins of one address are capped (login_per_ip_limit)" \
  '421 Too many logins in progress from your address' "$(cat "$T/pending.out")"
expect_match "... 8 of them wait for their login" '^8 220 ' "$(cat "$T/pending.out")"

# --- FTP: one device credential cannot take every slot ------------------------------
[[ $URL =~ ^ftp://([^:]+):([^@]+)@ ]] || bail "the offer's user and token"
python3 - "$FTP_PORT" "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" >"$T/caps.out" 2>&1 <<'PYEOF'
import ftplib, sys
port, user, token = int(sys.argv[1]), sys.argv[2], sys.argv[3]
sessions, out = [], []
for i in range(5):  # device_session_limit = 4
    f = ftplib.FTP()
    f.connect("127.0.0.1", port, timeout=10)
    try:
        out.append(f.login(user, token)[:3])
        sessions.append(f)
    except ftplib.all_errors as e:
        out.append(str(e)[:3])
print("logins", " ".join(out))
out = []
for f in sessions[:3]:  # device_port_limit = 2
    try:
        out.append(f.sendcmd("PASV")[:3])
    except ftplib.all_errors as e:
        out.append(str(e)[:3])
print("pasv", " ".join(out))
PYEOF
expect_match "device_session_limit 4: the fifth session of one device gets 421" \
  'logins 230 230 230 230 421' "$(cat "$T/caps.out")"
expect_match "device_port_limit 2: its third passive port gets 425" 'pasv 227 227 425' \
  "$(cat "$T/caps.out")"

finish
