#!/bin/bash
# fleet_suspect.sh: a device reporting 710 (package check failed) makes
# dfotad hash the package again, off the request threads. Intact: nothing
# but the failure. Damaged on disk: the package is marked damaged and no
# longer served (503), and every running rollout offering it pauses with the
# reason. With the default interval, a flood of such reports re-hashes the
# package at most once a minute.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"

fleet_start "[fleet]" "recheck_interval = 0" || bail "dfotad starts"
mkpkg "$VA" "$VC" 65536 || bail "upload A -> C" "status $STATUS"
PKG=$PKG_ID
for d in s1 s2 s3 s4 s5 s6 s7 s8 s9 s10; do
  dev_put "$d" "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"secret\":\"secret-$d-0123456789\"}"
done
# a high failure threshold: only the damage may pause this rollout
rollout_create "{\"name\":\"suspect\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"waves\":[100],\"max_failure_rate\":100}" || bail "create the rollout" "status $STATUS"
rollout_action "$RID" start
checkin s1 secret-s1-0123456789 "$VA"
expect_eq "s1 gets an offer" 200 "$STATUS"
checkin s2 secret-s2-0123456789 "$VA"
expect_eq "s2 gets an offer" 200 "$STATUS"

# intact package: a 710 is the device's failure alone
mark=$(log_mark)
report s1 secret-s1-0123456789 "$(urcs '+QIND: "FOTA","HTTPSTART"' '+QIND: "FOTA","HTTPEND",710')"
expect_eq "710 report accepted" 200 "$STATUS"
expect_eq "s1 failed" failed "$(dev_field s1 .state)"
expect_eq "the rollout still runs" running "$(rollout_field "$RID" .state)"
api GET "/api/v1/packages/$PKG"
expect_eq "the package is still ok" ok "$(json "$BODY" .status)"
# that re-check seen before the damage below (with recheck_interval = 0 a
# 710 that comes while a check runs gets one more check after it: the
# running one may have read the bytes before the damage)
check "the intact package was re-checked" wait_log_since "$mark" 're-checked, sha256 matches' 10

# damage the file behind the daemon's back, then another 710
f="$STATE/packages/$(json "$BODY" .sha256)"
chmod u+w "$f"
printf 'X' | dd of="$f" bs=1 seek=100 conv=notrunc status=none
report s2 secret-s2-0123456789 "$(urcs '+QIND: "FOTA","HTTPEND",710')"
expect_eq "second 710 accepted" 200 "$STATUS"
check "the rollout paused (the re-check runs apart)" wait_rollout_state "$RID" paused 10
expect_match "the reason names the package" "$PKG.*damaged" "$(rollout_field "$RID" .reason)"
api GET "/api/v1/packages/$PKG"
expect_eq "the package is listed damaged" damaged "$(json "$BODY" .status)"
code=$(curl -s -o /dev/null -w '%{http_code}' "$DEV_URL/p/$PKG")
expect_eq "the damaged package is not served" 503 "$code"
stop_dfotad

# the default interval: 40 reports of 710 from offered devices re-hash a
# package once
STATE="$T/state2"
rm -f "$T/dfotad.conf"
fleet_start || bail "dfotad starts again"
mkpkg "$VA" "$VC" 65536 || bail "upload A -> C" "status $STATUS"
for i in $(seq 1 40); do
  dev_put "f$i" "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"secret\":\"secret-f$i-0123456789\"}" >/dev/null
done
rollout_create "{\"name\":\"flood\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"waves\":[100],\"max_failure_rate\":100}" || bail "create the rollout" "status $STATUS"
rollout_action "$RID" start
mark=$(log_mark)
for i in $(seq 1 40); do
  checkin "f$i" "secret-f$i-0123456789" "$VA"
  report "f$i" "secret-f$i-0123456789" "$(urcs '+QIND: "FOTA","HTTPEND",710')"
done
sleep 1
expect_eq "40 reports of 710: one re-check" 1 "$(log_since "$mark" | grep -c 're-checked')"
finish
