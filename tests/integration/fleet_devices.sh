#!/bin/bash
# fleet_devices.sh: PUT without a secret returns a generated "secret" once;
# no GET (device, list, events) shows it again, nor does the database hold
# it in clear; updates, DELETE. A device added (or moved into the selector)
# after a rollout started joins it; others do not.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"

fleet_start || bail "dfotad starts"
mkpkg "$VA" "$VC" 32768 || bail "upload A -> C" "status $STATUS"

# ---------------------------------------------------------------------------
# secrets
dev_put 860000000000001 "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"group\":\"lab\",\"tags\":[\"t1\"]}"
expect_eq "PUT a new device without a secret: 201" 201 "$STATUS"
SEC=$(json "$BODY" .secret)
check "a generated secret is returned (${#SEC} characters)" test "${#SEC}" -ge 16
expect_eq "the new device: model, version, group, tags, state" "$MODEL $VA lab [\"t1\"] idle" \
  "$(jq -r '"\(.model) \(.version) \(.group) \(.tags | tojson) \(.state)"' <"$BODY")"
dev_get 860000000000001
expect_eq "GET: 200" 200 "$STATUS"
expect_eq "GET has no secret field" false "$(jq 'has("secret")' <"$BODY")"
check_not "GET does not contain the secret anywhere" grep -qF "$SEC" "$BODY"
api GET "/api/v1/devices?limit=1000"
check_not "the listing does not contain the secret" grep -qF "$SEC" "$BODY"
api GET "/api/v1/devices/860000000000001/events"
check_not "the events do not contain the secret" grep -qF "$SEC" "$BODY"
expect_eq "the first event is 'created'" created "$(jq -r '.events[0].kind' <"$BODY")"
checkin 860000000000001 "$SEC" "$VA"
expect_eq "the generated secret works (204: no rollout)" 204 "$STATUS"

dev_put 860000000000001 "{\"group\":\"lab\",\"tags\":[\"t1\",\"t2\"]}"
expect_eq "PUT again (update): 200" 200 "$STATUS"
expect_eq "an update returns no secret" false "$(jq 'has("secret")' <"$BODY")"
expect_eq "the update applied, the rest kept" "$MODEL $VA [\"t1\",\"t2\"]" \
  "$(jq -r '"\(.model) \(.version) \(.tags | tojson)"' <"$BODY")"
checkin 860000000000001 "$SEC" "$VA"
expect_eq "the secret still works after an update without one" 204 "$STATUS"

dev_put own1 "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"secret\":\"my-own-secret-0123456789\"}"
expect_eq "PUT with a secret: 201" 201 "$STATUS"
checkin own1 my-own-secret-0123456789 "$VA"
expect_eq "the secret given works" 204 "$STATUS"
dev_put own1 "{\"secret\":\"a-new-secret-9876543210\"}"
expect_eq "PUT a new secret: 200" 200 "$STATUS"
checkin own1 my-own-secret-0123456789 "$VA"
expect_eq "the old secret no longer works" 403 "$STATUS"
checkin own1 a-new-secret-9876543210 "$VA"
expect_eq "the new secret works" 204 "$STATUS"
dev_put own2 "{\"model\":\"$MODEL\",\"secret\":\"short\"}"
expect_eq "a secret under 16 characters: 400" 400 "$STATUS"
dev_put own2 "{\"version\":\"$VA\"}"
expect_eq "a new device without model: 400" 400 "$STATUS"
dev_put 'bad%20id' "{\"model\":\"$MODEL\"}"
expect_eq "a device id with a space: 400" 400 "$STATUS"
expect_eq "no device was made by the refused PUTs" 404 "$(dev_get own2; echo "$STATUS")"

# the database does not hold the secrets in clear
sync
check_not "the generated secret is not in the state directory" grep -rqaF "$SEC" "$STATE"
check_not "a given secret is not in the state directory" grep -rqaF a-new-secret-9876543210 "$STATE"

# DELETE
dev_put gone1 "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"secret\":\"gone-secret-0123456789\"}"
api DELETE /api/v1/devices/gone1
expect_eq "DELETE: 204" 204 "$STATUS"
expect_eq "GET after DELETE: 404" 404 "$(dev_get gone1; echo "$STATUS")"
api GET /api/v1/devices/gone1/events
expect_eq "events after DELETE: 404" 404 "$STATUS"
checkin gone1 gone-secret-0123456789 "$VA"
expect_eq "a deleted device's secret: 403" 403 "$STATUS"
api DELETE /api/v1/devices/gone1
expect_eq "DELETE again: 404" 404 "$STATUS"
dev_put gone1 "{\"model\":\"$MODEL\",\"version\":\"$VA\"}"
expect_eq "the id can be registered again: 201" 201 "$STATUS"
expect_eq "... with a fresh history (one 'created' event)" '["created"]' \
  "$(api GET /api/v1/devices/gone1/events; jq -c '[.events[].kind]' <"$BODY")"

# ---------------------------------------------------------------------------
# devices added after a rollout started
for i in 1 2; do
  dev_put "early$i" "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"group\":\"late\",\"secret\":\"secret-early$i-0123456789\"}"
done
rollout_create "{\"name\":\"late-join\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"group\":\"late\"},\"waves\":[100],\"retry_backoff\":1}" ||
  bail "create the rollout" "status $STATUS" "$(cat "$BODY")"
dev_put draft1 "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"group\":\"late\",\"secret\":\"secret-draft1-0123456789\"}"
expect_eq "a device added to a draft rollout's selector stays out (no rollout yet)" "" "$(json "$BODY" .rollout)"
rollout_action "$RID" start
expect_eq "started with the 3 devices of its group" 3 "$(json "$BODY" .devices)"

dev_put late1 "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"group\":\"late\"}"
expect_eq "PUT a matching device after the start: 201" 201 "$STATUS"
LSEC=$(json "$BODY" .secret)
expect_eq "it joined the running rollout (PUT answer)" "$RID" "$(json "$BODY" .rollout)"
dev_get late1
expect_eq "it joined: GET shows the rollout and pending" "$RID pending" "$(jq -r '"\(.rollout) \(.state)"' <"$BODY")"
expect_eq "its events: created, then rollout" '["created","rollout"]' \
  "$(api GET /api/v1/devices/late1/events; jq -c '[.events[].kind] | map(select(. == "created" or . == "rollout"))' <"$BODY")"
expect_eq "the rollout counts it" 4 "$(rollout_field "$RID" .devices)"
checkin late1 "$LSEC" "$VA"
expect_eq "the late device is offered the update" 200 "$STATUS"

dev_put other1 "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"group\":\"elsewhere\"}"
expect_eq "a device of another group does not join" "" "$(json "$BODY" .rollout)"
dev_put wrongmodel "{\"model\":\"BG77\",\"version\":\"$VA\",\"group\":\"late\"}"
expect_eq "a device of another model does not join" "" "$(json "$BODY" .rollout)"
dev_put other1 '{"group":"late"}'
expect_eq "moving a device into the selector's group: it joins" "$RID" "$(json "$BODY" .rollout)"
api_json POST /api/v1/devices "[{\"id\":\"late2\",\"model\":\"$MODEL\",\"version\":\"$VA\",\"group\":\"late\"},
  {\"id\":\"late3\",\"model\":\"$MODEL\",\"version\":\"$VC\",\"group\":\"late\"}]"
expect_eq "bulk-added matching devices: 200" 200 "$STATUS"
expect_eq "bulk-added device joins, pending" "$RID pending" "$(dev_get late2; jq -r '"\(.rollout) \(.state)"' <"$BODY")"
expect_eq "bulk-added device already on the target joins as succeeded" "$RID succeeded" \
  "$(dev_get late3; jq -r '"\(.rollout) \(.state)"' <"$BODY")"
expect_eq "the rollout now has 7 devices" 7 "$(rollout_field "$RID" .devices)"
api GET "/api/v1/devices?rollout=$RID&limit=100"
expect_eq "listing rollout=ID shows the 7" "draft1 early1 early2 late1 late2 late3 other1" \
  "$(jq -r '[.devices[].id] | join(" ")' <"$BODY")"

# once the rollout is cancelled, new devices stay out
rollout_action "$RID" cancel
expect_eq "cancel: 200" 200 "$STATUS"
dev_put late4 "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"group\":\"late\"}"
expect_eq "a device added after the cancel does not join" "" "$(json "$BODY" .rollout)"

finish
