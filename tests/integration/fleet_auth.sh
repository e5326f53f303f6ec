#!/bin/bash
# fleet_auth.sh: a wrong or unknown device credential gets 403 on check-in
# and report, and nothing is recorded against any device: the device
# record (version, state, last_seen, address) and its events stay as they
# were. The right credential works; the header name is configurable.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"

fleet_start "[fleet]" "auth_failures = 1000" || bail "dfotad starts"
mkpkg "$VA" "$VC" 65536 || bail "upload A -> C" "status $STATUS"
S1='secret-a1-0123456789abcdef'
S2='secret-a2-0123456789abcdef'
dev_put a1 "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"secret\":\"$S1\"}"
expect_eq "PUT a1: 201" 201 "$STATUS"
dev_put a2 "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"secret\":\"$S2\"}"
expect_eq "PUT a2: 201" 201 "$STATUS"
rollout_create "{\"name\":\"auth\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",\"waves\":[100]}" ||
  bail "create the rollout" "status $STATUS" "$(cat "$BODY")"
rollout_action "$RID" start
# a1 has been seen once, so last_seen is set and must not move
checkin a1 "$S1" "$VA"
expect_eq "a1 with its secret: offered (200)" 200 "$STATUS"
URL1=$(tr -d '\r\n' <"$BODY")

snap() { # ID: record and events
  dev_get "$1" "$T/snap-$1.json"
  events_count "$1" >"$T/snapn-$1"
}
same() { # ID DESC
  dev_get "$1" "$T/now-$1.json"
  expect_eq "$2: $1's record unchanged" "$(jq -S -c . <"$T/snap-$1.json")" "$(jq -S -c . <"$T/now-$1.json")"
  expect_eq "$2: $1's events unchanged" "$(cat "$T/snapn-$1")" "$(events_count "$1")"
}
sleep 1.1 # last_seen has a resolution of one second
snap a1
snap a2
api GET /metrics
checkins0=$(grep '^dfotad_checkins_total ' "$BODY" | awk '{ print $2 }')

# ---------------------------------------------------------------------------
# check-ins with a wrong credential (and a version that would change the record)
checkin a1 wrong-secret-0123456789 EVIL01
expect_eq "check-in, wrong secret: 403" 403 "$STATUS"
cp "$BODY" "$T/403-wrong.body"
checkin a1 "$S2" EVIL01
expect_eq "check-in with another device's secret: 403" 403 "$STATUS"
checkin a1 "${S1:0:20}" EVIL01
expect_eq "check-in with a prefix of the secret: 403" 403 "$STATUS"
checkin a1 "${S1}x" EVIL01
expect_eq "check-in with the secret and one more character: 403" 403 "$STATUS"
checkin a1 "$(printf '%s' "$S1" | tr 'a-z' 'A-Z')" EVIL01
expect_eq "check-in with the secret in upper case: 403" 403 "$STATUS"
checkin a1 "" EVIL01
expect_eq "check-in with an empty credential: 403" 403 "$STATUS"
_curl "$DEV_URL/v1/update?device=a1&version=EVIL01"
expect_eq "check-in without any credential: 403" 403 "$STATUS"
checkin ghost "$S1" "$VA"
expect_eq "check-in of an unknown device: 403" 403 "$STATUS"
cp "$BODY" "$T/403-unknown.body"
expect_eq "unknown device and wrong secret: the same answer" "$(cat "$T/403-wrong.body")" "$(cat "$T/403-unknown.body")"
_curl -H "X-Device-Token: $S1" "$DEV_URL/v1/update?version=EVIL01"
check "check-in without a device id: 400 or 403 ($STATUS)" test "$STATUS" = 403 -o "$STATUS" = 400
# reports with a wrong credential, bodies that would change the state
report a1 wrong-secret-0123456789 "$(urcs '+QIND: "FOTA","HTTPSTART"' '+QIND: "FOTA","HTTPEND",0')"
expect_eq "report, wrong secret: 403" 403 "$STATUS"
report a1 "$S2" "$(urcs '+QIND: "FOTA","END",0')"
expect_eq "report with another device's secret: 403" 403 "$STATUS"
report a1 wrong-secret-0123456789 '{"stage":"HTTPEND","code":0}' application/json
expect_eq "JSON report, wrong secret: 403" 403 "$STATUS"
_curl -X POST -H 'Content-Type: text/plain' --data-binary '+QIND: "FOTA","HTTPSTART"' "$DEV_URL/v1/report?device=a1"
expect_eq "report without any credential: 403" 403 "$STATUS"
report ghost "$S1" "$(urcs '+QIND: "FOTA","HTTPSTART"')"
expect_eq "report of an unknown device: 403" 403 "$STATUS"
# a download URL that is not a live token
tok=${URL1##*/f/}
bad="${tok%?}$( [ "${tok: -1}" = a ] && echo b || echo a)"
_curl -o /dev/null "$DEV_URL/f/$bad"
expect_eq "/f/ with a token one character off: 404" 404 "$STATUS"
_curl -o /dev/null "$DEV_URL/f/$S1"
expect_eq "/f/ with the device secret as token: 404" 404 "$STATUS"

sleep 0.3 # anything recorded would be flushed by now (flush_interval 20 ms)
same a1 "after 17 refused requests"
same a2 "after 17 refused requests"
expect_eq "a1's version not taken from a refused check-in" "$VA" "$(dev_field a1 .version)"
api GET /metrics
checkins1=$(grep '^dfotad_checkins_total ' "$BODY" | awk '{ print $2 }')
echo "# dfotad_checkins_total $checkins0 -> $checkins1 (refused check-ins may be counted there)"

# the right credential is recorded
checkin a1 "$S1" "$VA"
expect_eq "a1 with its secret again: 200" 200 "$STATUS"
expect_eq "the same offer URL" "$URL1" "$(tr -d '\r\n' <"$BODY")"
expect_ne "a1's last_seen moves with an accepted check-in" "$(json "$T/snap-a1.json" .progress.last_seen)" \
  "$(dev_field a1 .progress.last_seen)"

# ---------------------------------------------------------------------------
# the header name is configurable: [fleet] token_header
stop_dfotad TERM || fail "dfotad stops"
start_dfotad "$FLEET_CONF" --set fleet.token_header=X-Fota-Key || bail "dfotad restarts with token_header"
checkin a2 "$S2" "$VA"
expect_eq "token_header X-Fota-Key: X-Device-Token no longer accepted (403)" 403 "$STATUS"
TOKEN_HEADER=X-Fota-Key checkin a2 "$S2" "$VA"
expect_eq "token_header X-Fota-Key: accepted there (200)" 200 "$STATUS"
TOKEN_HEADER=X-Fota-Key checkin a2 wrong-secret-0123456789 "$VA"
expect_eq "token_header X-Fota-Key: wrong secret still 403" 403 "$STATUS"

# ---------------------------------------------------------------------------
# failed credentials are throttled: past auth_failures in a minute, 429
stop_dfotad TERM || fail "dfotad stops"
start_dfotad "$FLEET_CONF" --set fleet.auth_failures=5 || bail "dfotad restarts"
mark=$(log_mark)
codes=''
for i in $(seq 1 12); do
  checkin a1 "wrong-secret-$i-0123456789" "$VA"
  codes="$codes $STATUS"
  [ "$STATUS" = 429 ] && break
done
cp "$HDRS" "$T/429.hdrs"
checkin a1 "$S1" "$VA"
right=$STATUS
# five free failures; the sixth starts a lock-out of 4 s
expect_eq "wrong secrets: 6 times 403, then 429" " 403 403 403 403 403 403 429" "$codes"
check "429 carries Retry-After" grep -qi '^Retry-After: [0-9]' "$T/429.hdrs"
expect_eq "locked out: even the right secret waits (429)" 429 "$right"
api GET /metrics
expect_eq "failures counted" 6 "$(grep '^dfotad_auth_failures_total{protocol="http"} ' "$BODY" | awk '{ print $2 }')"
check "throttled requests counted" test "$(grep '^dfotad_auth_throttled_total{protocol="http"} ' "$BODY" | awk '{ print $2 }')" -ge 2
check "failures logged at a bounded rate" test "$(log_since "$mark" | grep -c 'credential refused')" -le 3
sleep 4.2
checkin a1 "$S1" "$VA"
expect_eq "after the lock-out, the right secret works" 200 "$STATUS"

finish
