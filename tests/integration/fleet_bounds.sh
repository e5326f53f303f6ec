#!/bin/bash
# fleet_bounds.sh (issue 7): what one device's credential can cost is
# bounded: its event history keeps the newest events_per_device (the oldest
# go), the listing comes in pages (limit, after), a report holds at most
# report_lines lines.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"

fleet_start "[fleet]" "events_per_device = 20" "report_lines = 8" || bail "dfotad starts"
mkpkg "$VA" "$VC" 65536 || bail "upload A -> C" "status $STATUS"
S='secret-b1-0123456789abcdef'
dev_put b1 "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"secret\":\"$S\"}"
rollout_create "{\"name\":\"b\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",\"waves\":[100]}" ||
  bail "create the rollout" "status $STATUS"
rollout_action "$RID" start
checkin b1 "$S" "$VA"
expect_eq "b1 offered" 200 "$STATUS"

for i in $(seq 1 30); do
  lines=$(for k in 1 2 3 4 5; do printf '+QIND: "FOTA","DOWNLOADING",%d\r\n' "$k"; done)
  report b1 "$S" "$lines"
  [ "$STATUS" = 200 ] || fail "report $i: 200" "status $STATUS"
done
pass "30 reports of 5 lines accepted"
n=$(events_count b1)
check "b1 keeps at most 22 events (20 and a tenth)" test "$n" -le 22
check "and at least 20" test "$n" -ge 20

nine=$(for k in $(seq 1 9); do printf '+QIND: "FOTA","DOWNLOADING",%d\r\n' "$k"; done)
report b1 "$S" "$nine"
expect_eq "a report of 9 lines (limit 8): 400" 400 "$STATUS"
expect_eq "it added nothing" "$n" "$(events_count b1)"

# pages
api GET "/api/v1/devices/b1/events?limit=7"
expect_eq "page 1: 200" 200 "$STATUS"
expect_eq "page 1 holds 7" 7 "$(jq '.events | length' <"$BODY")"
next=$(json "$BODY" .next)
first=$(jq -c '[.events[].id]' <"$BODY")
api GET "/api/v1/devices/b1/events?limit=7&after=$next"
expect_eq "page 2 starts after page 1" 1 "$(jq --argjson n "$next" '[.events[].id | select(. <= $n)] | length == 0 | if . then 1 else 0 end' <"$BODY")"
api GET "/api/v1/devices/b1/events?limit=100000"
expect_eq "limit over 1000: 400" 400 "$STATUS"
api GET "/api/v1/devices/b1/events?limit=abc"
expect_eq "limit not a number: 400" 400 "$STATUS"
# only digits: strtoll alone takes a sign and leading blanks
api GET "/api/v1/devices/b1/events?limit=%2B5"
expect_eq "limit +5: 400" 400 "$STATUS"
api GET "/api/v1/devices/b1/events?limit=%205"
expect_eq "limit ' 5': 400" 400 "$STATUS"
api GET "/api/v1/devices/b1/events?limit=5"
expect_eq "limit 5: 200" 200 "$STATUS"
api GET "/api/v1/devices?limit=0"
expect_eq "devices limit 0: 400" 400 "$STATUS"
finish
