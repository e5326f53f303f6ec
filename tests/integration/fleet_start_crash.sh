#!/bin/bash
# fleet_start_crash.sh: kill -9 of dfotad while a rollout's start enrols
# 30,000 devices in the background (202, state "starting"); after a restart
# on the same state the start goes on by itself and the rollout runs with
# every device; nothing committed is lost: every device is there, each a
# member, pending, with its "rollout" event; and a member's check-in gets
# its offer.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"

N=30000
if ldd "$DFOTAD" 2>/dev/null | grep -q libasan; then N=12000; fi
fleet_start || bail "dfotad starts"
mkpkg "$VA" "$VC" 4096 || bail "upload $VA -> $VC" "status $STATUS"
for p in 0 1 2; do
  python3 - "$N" "$p" "$MODEL" "$VA" >"$T/bulk.json" <<'PYEOF'
import json, sys
n, p, model, va = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
json.dump([{"id": "c%06d" % i, "model": model, "version": va, "group": "sc",
            "secret": "secret-c%06d-0123456789" % i} for i in range(p * n // 3, (p + 1) * n // 3)],
          sys.stdout)
PYEOF
  api_json_file POST /api/v1/devices "$T/bulk.json"
  expect_eq "bulk import, page $((p + 1)) of 3" "200 $((N / 3))" "$STATUS $(json "$BODY" .created)"
done
rollout_create "{\"name\":\"start-crash\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"group\":\"sc\"},\"waves\":[100],\"max_concurrent\":0}" ||
  bail "create the rollout" "status $STATUS" "$(cat "$BODY")"
rollout_action "$RID" start
expect_eq "the start answers at once: 202, starting" "202 starting" "$STATUS $(json "$BODY" .state)"

# kill -9 once the job has enrolled some devices, not all
_enrolling() {
  rollout_get "$RID"
  [ "$(json "$BODY" .state)" != starting ] || [ "$(json "$BODY" .starting.enrolled)" -ge 2000 ]
}
wait_until 60 _enrolling
state=$(json "$BODY" .state)
enrolled=$(json "$BODY" .starting.enrolled)
kill9_dfotad
echo "# killed while the rollout was $state (${enrolled:-all} of $N enrolled)"
if [ "$state" != starting ]; then
  skip "killed during the start" "the start was over before the kill (a fast machine)"
fi
start_dfotad "$FLEET_CONF" || bail "dfotad restarts after kill -9"
rollout_get "$RID"
expect_match "after the restart the rollout is starting or running" '^(starting|running)$' \
  "$(json "$BODY" .state)"
_running() {
  rollout_get "$RID"
  [ "$(json "$BODY" .state)" = running ]
}
check "the start goes on by itself and the rollout runs (60 s)" wait_until 60 _running
expect_eq "every device is a member" "$N" "$(json "$BODY" .devices)"
expect_eq "every member is pending" "$N" "$(json "$BODY" .counts.pending)"
api GET "/api/v1/devices?rollout=$RID&limit=1"
expect_eq "the listing agrees" "$N" "$(json "$BODY" .total)"
api GET "/api/v1/devices?limit=1"
expect_eq "no device lost" "$N" "$(json "$BODY" .total)"
for id in c000000 c$(printf %06d $((N / 2 + 3))) c$(printf %06d $((N - 1))); do
  api GET "/api/v1/devices/$id/events?limit=100"
  expect_match "$id has its rollout event" "\"rollout\":\"$RID\"" "$(jq -c '[.events[] | select(.kind == "rollout")]' <"$BODY")"
done
code=$(curl -sS --noproxy '*' --max-time 10 -o "$T/ci.json" -w '%{http_code}' \
  -H "X-Device-Token: secret-c000007-0123456789" -H "Accept: application/json" "$DEV_URL/v1/update?device=c000007&version=$VA")
expect_eq "a member's check-in gets its offer" "200 $VC" "$code $(json "$T/ci.json" .to)"
api GET /api/v1/devices/c000007
expect_eq "and the offer is recorded" offered "$(json "$BODY" .state)"
finish
