#!/bin/bash
# readme_flow.sh: runs the operator flow block of README.md, as written,
# against a daemon on free ports, and checks where it leaves the device and
# the rollout. Keeps the README true.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

readme="$LIB_DIR/../../README.md"
sed -n '/<!-- flow:begin -->/,/<!-- flow:end -->/p' "$readme" | grep -v '^<!--' | grep -v '^```' \
  >"$T/flow.sh"
check "README has the flow block" test -s "$T/flow.sh"

base_config "$T/dfotad.conf"
start_dfotad "$T/dfotad.conf" || bail "dfotad did not start"

(cd "$T" && ADMIN="http://$ADMIN" DEV="http://$HTTP" STATE="$STATE" bash -e "$T/flow.sh") \
  >"$T/flow.out" 2>"$T/flow.err"
rc=$?
expect_eq "the flow block runs without error" 0 "$rc"
sed 's/^/# /' "$T/flow.out"
sed 's/^/# stderr: /' "$T/flow.err"

expect_match "two URLs were handed to AT+QFOTADL" '^AT\+QFOTADL="http://127\.0\.0\.1:[0-9]+/f/[a-z2-7]{24}"$' \
  "$(grep -c '^AT+QFOTADL' "$T/flow.out" | grep -q '^2$' && grep -m1 '^AT+QFOTADL' "$T/flow.out")"
check "the last check-in got 204" grep -qx 204 "$T/flow.out"
check "the device is on A05 and succeeded" \
  grep -q '"version":"BG95M3LAR02A05","state":"succeeded"' "$T/flow.out"
check "the device's progress says 100 percent" grep -q '"percent":100' "$T/flow.out"
check "events show both hops confirmed" test "$(grep -c ' hop_confirmed' "$T/flow.out")" -eq 2
check "the rollout completed" grep -q '"state":"completed","counts":{"pending":0' "$T/flow.out"
finish
