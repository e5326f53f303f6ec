#!/bin/bash
# fleet_pause.sh: 511 and 506 failures in the first wave, above
# max_failure_rate, pause the rollout by itself with the reason shown by
# GET /api/v1/rollouts/{id}; no device of a later wave is offered anything.
#   part A: reports posted by hand: one failure (25 %) stays under
#           max_failure_rate 30, the second (50 %) pauses the rollout.
#   part B: the simulator over a whole fleet, with faults 511 and 506
#           injected into two wave-1 devices.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"

fleet_start || bail "dfotad starts"
mkpkg "$VA" "$VC" 65536 || bail "upload A -> C" "status $STATUS"

# register N devices of group G on version A with secrets "secret-G-i-....."
register() { # G N
  local g=$1 n=$2 i
  python3 - "$g" "$n" "$MODEL" "$VA" >"$T/bulk-$g.json" <<'PYEOF'
import json, sys
g, n, model, va = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
json.dump([{"id": "%s-%02d" % (g, i), "model": model, "version": va, "group": g,
            "secret": "secret-%s-%02d-0123456789" % (g, i)} for i in range(n)], sys.stdout)
PYEOF
  api_json_file POST /api/v1/devices "$T/bulk-$g.json"
  [ "$STATUS" = 200 ] && [ "$(json "$BODY" .created)" = "$n" ]
}

# ---------------------------------------------------------------------------
# part A: 20 devices, waves [20, 100]: wave 1 = 4 devices
register ga 20 || bail "register group ga" "status $STATUS" "$(cat "$BODY")"
rollout_create "{\"name\":\"pause-a\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"group\":\"ga\"},\"waves\":[20,100],\"success_threshold\":90,
  \"max_failure_rate\":30,\"max_attempts\":3,\"timeout\":300,\"retry_backoff\":1}" ||
  bail "create rollout A" "status $STATUS" "$(cat "$BODY")"
RA=$RID
rollout_action "$RA" start
expect_eq "rollout A running" running "$(json "$BODY" .state)"
events_many "$T/eva" $(jq -r '.[].id' <"$T/bulk-ga.json") || fail "events of group ga"
W1=($(positions "$T/eva" | awk '$2 >= 0 && $2 < 4 { print $1 }' | sort))
W2=($(positions "$T/eva" | awk '$2 >= 4 { print $1 }' | sort))
expect_eq "rollout A: 4 devices in wave 1" 4 "${#W1[@]}"
expect_eq "rollout A: 16 devices in wave 2" 16 "${#W2[@]}"

# the module of device X: offer, download, install; END,CODE
fail_with() { # ID CODE
  local id=$1 code=$2 url
  checkin "$id" "secret-$id-0123456789" "$VA" -H 'Accept: application/json'
  [ "$STATUS" = 200 ] || { echo "check-in of $id: $STATUS"; return 1; }
  url=$(json "$BODY" .url)
  curl -s --max-time 20 -o "$T/dl-$id.bin" "$url" || return 1
  report "$id" "secret-$id-0123456789" "$(urcs '+QIND: "FOTA","HTTPSTART"' '+QIND: "FOTA","DOWNLOADING",100' \
    '+QIND: "FOTA","HTTPEND",0' '+QIND: "FOTA","START"' '+QIND: "FOTA","UPDATING",30' "+QIND: \"FOTA\",\"END\",$code")"
  [ "$STATUS" = 200 ] || { echo "report of $id: $STATUS $(cat "$BODY")"; return 1; }
  return 0
}
check "wave-1 device ${W1[0]} fails with END,511" fail_with "${W1[0]}" 511
expect_eq "its state: failed" failed "$(dev_field "${W1[0]}" .state)"
expect_eq "511: its version becomes unknown" "null" "$(dev_get "${W1[0]}"; jq -c .version <"$BODY")"
expect_eq "511: last_result code" 511 "$(json "$BODY" .last_result.code)"
expect_eq "511: classified mismatch" mismatch "$(json "$BODY" .last_result.class)"
rollout_get "$RA" "$T/ra1.json"
expect_eq "1 of 4 failed (25 %) <= max_failure_rate 30: still running" running "$(json "$T/ra1.json" .state)"
expect_eq "codes: 511 counted" 1 "$(jq -r '.codes["511"] // 0' <"$T/ra1.json")"

check "wave-1 device ${W1[1]} fails with END,506" fail_with "${W1[1]}" 506
expect_eq "its state: failed" failed "$(dev_field "${W1[1]}" .state)"
expect_eq "506: classified package_suspect" 1 \
  "$(jq '[.last_result.class] | map(select(test("suspect|package"))) | length' <"$BODY")"
rollout_get "$RA" "$T/ra2.json"
expect_eq "2 of 4 failed (50 %): the rollout paused by itself" paused "$(json "$T/ra2.json" .state)"
reason=$(json "$T/ra2.json" .reason)
echo "# reason: $reason"
expect_match "the reason names the failure rate" 'max_failure_rate' "$reason"
expect_match "the reason names the wave" '[Ww]ave 1' "$reason"
expect_eq "still wave 1" 1 "$(json "$T/ra2.json" .wave)"
expect_eq "codes: 511 and 506 once each" '{"506":1,"511":1}' "$(jq -c -S '.codes | {"506", "511"}' <"$T/ra2.json")"
expect_eq "counts: 2 failed" 2 "$(json "$T/ra2.json" .counts.failed)"
# the package was re-checked after 506 and is fine
api GET "/api/v1/packages/$PKG_ID"
expect_eq "the package stays ok after its re-check" ok "$(json "$BODY" .status)"

# paused: nobody gets an offer, neither the rest of wave 1 nor wave 2
checkin "${W1[2]}" "secret-${W1[2]}-0123456789" "$VA"
expect_eq "paused: a pending wave-1 device gets 204" 204 "$STATUS"
checkin "${W2[0]}" "secret-${W2[0]}-0123456789" "$VA"
expect_eq "paused: a wave-2 device gets 204" 204 "$STATUS"
events_many "$T/eva2" "${W2[@]}" || fail "events of wave 2"
expect_eq "no wave-2 device was offered anything" 0 \
  "$(cat "$T"/eva2/ev-*.json | jq -s '[.[].events[] | select(.kind == "offer")] | length')"
sleep 1.2
expect_eq "still paused a moment later (the tick does not resume it)" paused "$(rollout_field "$RA" .state)"
# the operator looked into it and resumes: the rollout goes on
rollout_action "$RA" resume
expect_eq "resume after the automatic pause: 200" 200 "$STATUS"
expect_eq "resume after the automatic pause: running (the operator's resume holds)" running \
  "$(rollout_field "$RA" .state)"
checkin "${W1[2]}" "secret-${W1[2]}-0123456789" "$VA"
expect_eq "resumed: a pending wave-1 device gets its offer" 200 "$STATUS"
rollout_action "$RA" pause
rollout_get "$RA" "$T/ra3.json"

# ---------------------------------------------------------------------------
# part B: the simulator; 20 devices, waves [20, 100], max_failure_rate 20:
# 511 and 506 injected into two of the four wave-1 devices
register gb 20 || bail "register group gb" "status $STATUS" "$(cat "$BODY")"
rollout_create "{\"name\":\"pause-b\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"group\":\"gb\"},\"waves\":[20,100],\"success_threshold\":100,
  \"max_failure_rate\":20,\"max_attempts\":3,\"timeout\":300,\"retry_backoff\":1}" ||
  bail "create rollout B" "status $STATUS" "$(cat "$BODY")"
RB=$RID
rollout_action "$RB" start
expect_eq "rollout B running" running "$(json "$BODY" .state)"
events_many "$T/evb" $(jq -r '.[].id' <"$T/bulk-gb.json") || fail "events of group gb"
positions "$T/evb" >"$T/pos-b"
B1=($(awk '$2 >= 0 && $2 < 4 { print $1 }' "$T/pos-b" | sort))
expect_eq "rollout B: 4 devices in wave 1" 4 "${#B1[@]}"
jq --arg f511 "${B1[0]}" --arg f506 "${B1[1]}" '[.[] | {id, secret, version} +
  (if .id == $f511 then {faults: ["511"]} elif .id == $f506 then {faults: ["506"]} else {} end)]' \
  <"$T/bulk-gb.json" >"$T/devices-b.json"
t0=$(date +%s.%N)
SIM_TIMEOUT=60 sim --server "$DEV_URL" --devices "$T/devices-b.json" --concurrency 20 --mode mixed \
  --target "$VC" --admin "$ADMIN_URL" --token "$TOKEN" --rollout "$RB" --poll-interval 0.3 \
  --retry-delay 0.3 --max-retry-after 2 --install-seconds 0.2 --max-seconds 30 --seed 5 \
  --out "$T/summary-b.json" >"$T/sim-b.out" 2>"$T/sim-b.log"
echo "# simulator: exit $? after $(elapsed_since "$t0") s: $(jq -c '.totals.outcomes' <"$T/summary-b.json" 2>/dev/null)"
wait_rollout_state "$RB" paused 5
rollout_get "$RB" "$T/rb.json"
expect_eq "rollout B paused by itself" paused "$(json "$T/rb.json" .state)"
reason=$(json "$T/rb.json" .reason)
echo "# reason: $reason; codes $(jq -c .codes <"$T/rb.json"); counts $(jq -c .counts <"$T/rb.json")"
expect_match "rollout B: the reason names the failure rate" 'max_failure_rate' "$reason"
expect_eq "rollout B: still wave 1" 1 "$(json "$T/rb.json" .wave)"
check "rollout B: 511 or 506 counted in codes" \
  test "$(jq '[.codes["511"] // 0, .codes["506"] // 0] | add' <"$T/rb.json")" -ge 1
expect_eq "the simulator's faults fired on wave-1 devices" 1 \
  "$(jq --arg a "${B1[0]}" --arg b "${B1[1]}" '[.devices[] | select(.fault_triggered != null) | .id] |
    (length >= 1 and all(. == $a or . == $b)) | if . then 1 else 0 end' <"$T/summary-b.json")"
events_many "$T/evb2" $(awk '$2 >= 4 { print $1 }' "$T/pos-b") || fail "events of rollout B wave 2"
expect_eq "rollout B: no wave-2 device was offered anything" 0 \
  "$(cat "$T"/evb2/ev-*.json | jq -s '[.[].events[] | select(.kind == "offer")] | length')"
expect_eq "rollout A is untouched by B (same state and reason)" "$(jq -r '"\(.state)|\(.reason)"' <"$T/ra3.json")" \
  "$(rollout_get "$RA"; jq -r '"\(.state)|\(.reason)"' <"$BODY")"

finish
