#!/bin/sh
# coap_slow_store.sh: a CoAPS check-in that changes state waits for its
# commit without stopping the CoAP engine. The store is slowed with the
# tests-only hook DFOTAD_TEST_COMMIT_DELAY (a file holding the
# milliseconds every writer commit sleeps first: a slow disk turned on and
# off while the daemon runs). While one device's check-in (an offer: state
# that must be durable before the device is told) waits about 3 s on the
# writer, other devices' DTLS handshakes and check-ins and plain CoAP
# block downloads are answered at once; the waiting check-in then gets its
# offer as a separate response (empty ACK, then the answer), after the
# commit. A report that changes state waits the same way; so do HTTP
# check-ins and reports (their connections suspended) on a front with one
# thread, whose other connections are answered meanwhile. Then two small
# fixes: a download whose first request is a later block shows downloading,
# its protocol and a truthful percent; unserved methods get 4.05.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"
. "$(dirname "$0")/coap_lib.sh"

SLOW="$T/commit-delay-ms"
export DFOTAD_TEST_COMMIT_DELAY="$SLOW"
# one HTTP thread: a check-in that blocked it on the disk would hold up
# every other HTTP connection
coap_start "[http]
threads = 1" || bail "dfotad starts with [coap] and [coaps]"
mkpkg "$VA" "$VC" 20000 || bail "package uploaded"
PKGID=$(json "$BODY" .id)
KA='slow-store-key-A-0123456789'
KB='slow-store-key-B-0123456789'
dev_put dA "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"transport\":\"coap\",\"psk\":\"$(hexof "$KA")\"}"
dev_put dB "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"psk\":\"$(hexof "$KB")\"}"
rollout_create "{\"name\":\"slow\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"devices\":[\"dA\"]},\"waves\":[100]}" || bail "rollout"
rollout_action "$RID" start

ms() { echo $(($(date +%s%N) / 1000000)); }

echo 3000 >"$SLOW"
sleep 1.2 # a periodic commit already running takes the old delay
t0=$(ms)
cc -u dA -k "$KA" "coaps://$COAPS/v1/update?device=dA&version=$VA" >"$T/a.out" 2>"$T/a.err" &
APID=$!
sleep 0.3
# meanwhile: new DTLS sessions and check-ins of another device, answered at once
worst=0
for i in 1 2 3; do
  s=$(ms)
  cc -u dB -k "$KB" "coaps://$COAPS/v1/update?device=dB&version=$VA" >"$T/b$i.out" 2>>"$T/b.err"
  rc=$?
  d=$(($(ms) - s))
  [ $d -gt $worst ] && worst=$d
  expect_eq "check-in $i of another device answered during the commit" 0 "$rc"
done
echo "# other device: 3 DTLS handshakes + check-ins, the slowest took $worst ms"
check "their slowest under 1500 ms (the commit takes 3000 ms)" test "$worst" -lt 1500
# and a plain CoAP block of a package
if [ -n "$PKGID" ]; then
  s=$(ms)
  cc -b 0,1024 -o "$T/blk.bin" "coap://$COAP/p/$PKGID" 2>>"$T/b.err" >/dev/null
  d=$(($(ms) - s))
  echo "# a CoAP download of a package during the commit: $d ms"
  check "the package downloads during the commit (under 1500 ms: $d)" test "$d" -lt 1500
fi
check "the first check-in is still waiting for its commit" kill -0 "$APID"
wait "$APID"
ARC=$?
ta=$(($(ms) - t0))
echo "# the check-in that changed state: $ta ms"
expect_eq "the waiting check-in ends well" 0 "$ARC"
expect_match "it gets its offer" "^coap://127\.0\.0\.1:$COAP_PORT/f/" "$(cat "$T/a.out")"
check "it was answered only after the commit (>= 2500 ms: $ta)" test "$ta" -ge 2500
expect_eq "the device is offered" offered "$(dev_field dA .state)"

# a report that changes state waits the same way, and others go on
t0=$(ms)
printf '+QIND: "FOTA","HTTPSTART"\r\n' >"$T/rep.txt"
cc -u dA -k "$KA" -m post -f "$T/rep.txt" "coaps://$COAPS/v1/report?device=dA" >"$T/r.out" 2>"$T/r.err" &
RPID=$!
sleep 0.3
s=$(ms)
cc -u dB -k "$KB" "coaps://$COAPS/v1/update?device=dB&version=$VA" >/dev/null 2>>"$T/b.err"
d=$(($(ms) - s))
check "a check-in during the report's commit is answered at once ($d ms)" test "$d" -lt 1500
wait "$RPID"
tr=$(($(ms) - t0))
echo "# the report that changed state: $tr ms; answer $(cat "$T/r.out")"
expect_match "the report is applied" '"state":"downloading"' "$(cat "$T/r.out")"
check "it was answered only after the commit (>= 2500 ms: $tr)" test "$tr" -ge 2500

# --- HTTP, one thread: a check-in and a report wait on their commits with
# their connections suspended; other connections go on ------------------------
echo 0 >"$SLOW"
HA='slow-store-http-A-0123456789'
HB='slow-store-http-B-0123456789'
dev_put hA "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"secret\":\"$HA\"}"
dev_put hB "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"secret\":\"$HB\"}"
rollout_create "{\"name\":\"http\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"devices\":[\"hA\"]},\"waves\":[100]}" || bail "http rollout"
rollout_action "$RID" start
echo 3000 >"$SLOW"
sleep 1.2
hcheckin() { curl -s --max-time 30 -o "$2" -w '%{http_code}' -H "X-Device-Token: $1" \
  "http://$HTTP/v1/update?device=$3&version=$VA"; }
t0=$(ms)
hcheckin "$HA" "$T/ha.out" hA >"$T/ha.code" &
HPID=$!
sleep 0.3
worst=0
for i in 1 2 3; do
  s=$(ms)
  code=$(hcheckin "$HB" "$T/hb.out" hB)
  d=$(($(ms) - s))
  [ $d -gt $worst ] && worst=$d
  expect_eq "HTTP check-in $i of another device: 204 during the commit" 204 "$code"
done
echo "# HTTP, one thread: the other device's check-ins took at most $worst ms"
check "their slowest under 1500 ms (the commit takes 3000 ms)" test "$worst" -lt 1500
check "the first HTTP check-in is still waiting for its commit" kill -0 "$HPID"
wait "$HPID"
ta=$(($(ms) - t0))
echo "# the HTTP check-in that changed state: $ta ms"
expect_eq "it gets 200" 200 "$(cat "$T/ha.code")"
expect_match "with its offer" "^http://127\.0\.0\.1:" "$(cat "$T/ha.out")"
check "answered only after the commit (>= 2500 ms: $ta)" test "$ta" -ge 2500
t0=$(ms)
curl -s --max-time 30 -o "$T/hr.out" -H "X-Device-Token: $HA" -H 'Content-Type: text/plain' \
  --data-binary '+QIND: "FOTA","HTTPSTART"' "http://$HTTP/v1/report?device=hA" &
HPID=$!
sleep 0.3
s=$(ms)
code=$(hcheckin "$HB" "$T/hb.out" hB)
d=$(($(ms) - s))
expect_eq "an HTTP check-in during the report's commit: 204" 204 "$code"
check "answered at once ($d ms)" test "$d" -lt 1500
wait "$HPID"
tr=$(($(ms) - t0))
echo "# the HTTP report that changed state: $tr ms; $(cat "$T/hr.out")"
expect_match "the HTTP report is applied" '"state":"downloading"' "$(cat "$T/hr.out")"
check "answered only after the commit (>= 2500 ms: $tr)" test "$tr" -ge 2500
echo 0 >"$SLOW"

# --- a download whose first request is a later block --------------------------
rollout_create "{\"name\":\"late\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"devices\":[\"dB\"]},\"waves\":[100]}" || bail "second rollout"
rollout_action "$RID" start
URLB=$(cc -u dB -k "$KB" "coaps://$COAPS/v1/update?device=dB&version=$VA" 2>>"$T/b.err")
expect_match "dB gets a coaps offer" "^coaps://127\.0\.0\.1:$COAPS_PORT/f/" "$URLB"
rm -f "$T/late.bin"
cc -u dB -k "$KB" -b 10,1024 -o "$T/late.bin" "$URLB" 2>>"$T/b.err"
expect_eq "-b 10,1024: block 10 alone" 1024 "$(fsize "$T/late.bin")"
expect_eq "the device is downloading" downloading "$(dev_field dB .state)"
expect_eq "with the protocol shown" coaps "$(dev_field dB .progress.protocol)"
# asking for block 10 first, the device holds blocks 0..9 (10240 of 20000
# bytes: 51 %); block 10 itself is not known received until it asks past it
expect_eq "and a truthful percent" 51 "$(dev_field dB .progress.percent)"
expect_eq "nothing counted as served by us before block 10" 0 "$(dev_field dB .progress.bytes_served)"
expect_eq "counted as a resume" 1 "$(dev_field dB .progress.resumes)"

# --- unserved methods: 4.05, never 2.02 ---------------------------------------
for m in delete put; do
  OUT=$(cc -m $m "coap://$COAP/f/AAAAAAAAAAAAAAAAAAAAAAAA" 2>&1)
  expect_match "$m on a download path: 4.05" '4\.05' "$OUT"
  OUT=$(cc -m $m "coap://$COAP/anything" 2>&1)
  expect_match "$m on any path: 4.05" '4\.05' "$OUT"
done
finish
