#!/bin/bash
# fleet_bulk.sh: POST /api/v1/devices with 10,000 devices in one call (timed,
# printed), GET /api/v1/devices walked page by page (limit/after) over all
# of them, filters; a bulk body with one bad entry imports nothing (400),
# neither its new devices nor its updates.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"

fleet_start || bail "dfotad starts"
N=10000
# ids d00000..d09999; models M1/M2; versions V1..V4; groups g0..g9; every
# third device brings its own secret, the others get one generated
python3 - "$N" >"$T/bulk.json" <<'PYEOF'
import json, sys
n = int(sys.argv[1])
out = []
for i in range(n):
    d = {"id": "d%05d" % i, "model": "M%d" % (1 + i % 2), "version": "V%d" % (1 + i % 4),
         "group": "g%d" % (i % 10), "tags": ["bulk", "t%d" % (i % 3)]}
    if i % 3 == 0:
        d["secret"] = "own-secret-%05d-abcdef" % i
    out.append(d)
json.dump(out, sys.stdout)
PYEOF
echo "# bulk body: $(fsize "$T/bulk.json") bytes"
t0=$(date +%s.%N)
CURL_MAX_TIME=60 api_json_file POST /api/v1/devices "$T/bulk.json"
echo "# POST /api/v1/devices with $N devices: $(elapsed_since "$t0") s (status $STATUS)"
cp "$BODY" "$T/bulk-res.json"
expect_eq "bulk import of $N: 200" 200 "$STATUS"
expect_eq "created $N" $N "$(json "$T/bulk-res.json" .created)"
expect_eq "updated 0" 0 "$(json "$T/bulk-res.json" .updated)"
ngen=$(jq '.secrets | length' <"$T/bulk-res.json")
expect_eq "a generated secret for each device without one ($((N - (N + 2) / 3)))" $((N - (N + 2) / 3)) "$ngen"
expect_eq "no secret returned for devices that brought theirs" 0 \
  "$(jq '[.secrets | keys[] | ltrimstr("d") | tonumber | select(. % 3 == 0)] | length' <"$T/bulk-res.json")"
expect_eq "generated secrets are distinct" "$ngen" "$(jq '[.secrets[]] | unique | length' <"$T/bulk-res.json")"

# ---------------------------------------------------------------------------
# pagination: limit 1000, then 777 (pages not aligned), then the default
walk() { # LIMIT OUT [QUERY]: ids, one per line, following "next"; PAGES set
  local limit=$1 out=$2 q=${3:-} after=''
  PAGES=0
  : >"$out"
  while [ $PAGES -lt 100 ]; do
    api GET "/api/v1/devices?${limit:+limit=$limit}${q:+&$q}${after:+&after=$after}"
    [ "$STATUS" = 200 ] || return 1
    PAGES=$((PAGES + 1))
    jq -r '.devices[].id' <"$BODY" >>"$out"
    LASTPAGE=$(jq '.devices | length' <"$BODY")
    after=$(json "$BODY" .next)
    [ -n "$after" ] || return 0
  done
  return 1
}
jq -r '.[].id' <"$T/bulk.json" | sort >"$T/want.ids"
t0=$(date +%s.%N)
check "walk with limit=1000" walk 1000 "$T/got1000.ids"
echo "# walked $N devices in $PAGES pages of 1000: $(elapsed_since "$t0") s"
expect_eq "limit=1000: 10 pages" 10 "$PAGES"
expect_eq "limit=1000: every device once, in id order" "$(cat "$T/want.ids")" "$(cat "$T/got1000.ids")"
check "walk with limit=777" walk 777 "$T/got777.ids"
expect_eq "limit=777: 13 pages" 13 "$PAGES"
expect_eq "limit=777: the last page has the rest ($((N % 777)))" $((N % 777)) "$LASTPAGE"
expect_eq "limit=777: every device once, in id order" "$(cat "$T/want.ids")" "$(cat "$T/got777.ids")"
api GET "/api/v1/devices"
expect_eq "no limit: a page of 100" 100 "$(jq '.devices | length' <"$BODY")"
expect_eq "no limit: next is the last id of the page" "$(jq -r '.devices[-1].id' <"$BODY")" "$(json "$BODY" .next)"
api GET "/api/v1/devices?limit=1000&after=d09999"
expect_eq "after the last id: empty page, next null" '0 null' "$(jq -c '"\(.devices | length) \(.next)"' -r <"$BODY")"
api GET "/api/v1/devices?limit=5&after=d04997"
expect_eq "after=d04997: d04998.." "d04998 d04999 d05000 d05001 d05002" "$(jq -r '[.devices[].id] | join(" ")' <"$BODY")"
expect_eq "listed devices carry no secret" 0 "$(jq '[.devices[] | select(has("secret"))] | length' <"$BODY")"

# filters, walked too
check "walk group=g7" walk 1000 "$T/g7.ids" "group=g7"
expect_eq "group=g7: 1000 devices" 1000 "$(grep -c . "$T/g7.ids")"
expect_eq "group=g7: the right ones" "$(jq -r '.[] | select(.group == "g7") | .id' <"$T/bulk.json" | sort)" "$(cat "$T/g7.ids")"
check "walk model=M2&version=V4" walk 500 "$T/m2v4.ids" "model=M2&version=V4"
expect_eq "model=M2&version=V4: 2500 devices" 2500 "$(grep -c . "$T/m2v4.ids")"
check "walk model=M1&version=V4 (none)" walk 500 "$T/none.ids" "model=M1&version=V4"
expect_eq "model=M1&version=V4: none" 0 "$(grep -c . "$T/none.ids")"
api GET "/api/v1/devices?state=idle&limit=1"
expect_eq "state=idle: devices" 1 "$(jq '.devices | length' <"$BODY")"
api GET "/api/v1/devices?state=bogus"
expect_eq "state=bogus: 400" 400 "$STATUS"
dev_get d00003
expect_eq "one of them: model, version, group, tags" 'M2 V4 g3 ["bulk","t0"]' \
  "$(jq -r '"\(.model) \(.version) \(.group) \(.tags | tojson)"' <"$BODY")"
# the secrets work: one brought, one generated
checkin d00003 own-secret-00003-abcdef V4
expect_eq "check-in with a secret brought in the bulk body: 204 (no rollout)" 204 "$STATUS"
checkin d00004 "$(jq -r '.secrets.d00004' <"$T/bulk-res.json")" V1
expect_eq "check-in with a generated secret: 204" 204 "$STATUS"

# ---------------------------------------------------------------------------
# one bad entry: nothing imported, nothing updated
bad_bulk() { # DESC JQ-EXPR-FOR-THE-BAD-ENTRY
  python3 - "$2" >"$T/bad.json" <<'PYEOF'
import json, sys
out = [{"id": "new%03d" % i, "model": "M1", "version": "V1"} for i in range(50)]
out.insert(10, {"id": "d00001", "model": "M1", "version": "V9", "group": "moved"})  # an update
out.insert(25, json.loads(sys.argv[1]))
json.dump(out, sys.stdout)
PYEOF
  api_json_file POST /api/v1/devices "$T/bad.json"
  cp "$BODY" "$T/bad-res.json"
  expect_eq "bulk with one bad entry ($1): 400" 400 "$STATUS"
  expect_eq "bulk with one bad entry ($1): nothing created" 404 "$(dev_get new000; echo "$STATUS")"
  expect_eq "bulk with one bad entry ($1): nothing updated" "V2 g1" \
    "$(dev_get d00001; jq -r '"\(.version) \(.group)"' <"$BODY")"
}
bad_bulk "no model" '{"id": "newbad", "version": "V1"}'
bad_bulk "no id" '{"model": "M1", "version": "V1"}'
bad_bulk "bad id" '{"id": "bad id/x", "model": "M1"}'
bad_bulk "tags not an array" '{"id": "newbad", "model": "M1", "tags": "x"}'
bad_bulk "short secret" '{"id": "newbad", "model": "M1", "secret": "short"}'
bad_bulk "not an object" '"d00002"'
# entries the server reads as text (plain strings under known keys), and
# their complaints as jansson's path gives them
bad_bulk "empty model" '{"id": "newbad", "model": ""}'
bad_bulk "long version" "{\"id\": \"newbad\", \"model\": \"M1\", \"version\": \"$(printf 'v%.0s' {1..129})\"}"
expect_eq "the complaint names the entry" \
  "device 25: version must be a string of at most 128 characters; nothing was imported" \
  "$(jq -r .error.message <"$T/bad-res.json")"
walk 1000 "$T/after-bad.ids"
expect_eq "still exactly $N devices" $N "$(grep -c . "$T/after-bad.ids")"
api_json POST /api/v1/devices '{"id": "x", "model": "M1"}'
expect_eq "bulk body that is not an array: 400" 400 "$STATUS"
api_json POST /api/v1/devices '[{"id": "newbad", "model": "M1", "model": "M2"}]'
expect_match "a key twice in an entry: 400, malformed" "^400 malformed JSON .*duplicate object key" \
  "$STATUS $(jq -r .error.message <"$BODY")"
api_json POST /api/v1/devices '[{"id": "newbad", "model": "M1"},]'
expect_match "a trailing comma: 400, malformed" "^400 malformed JSON at line 1" \
  "$STATUS $(jq -r .error.message <"$BODY")"
expect_eq "neither created a device" 404 "$(dev_get newbad; echo "$STATUS")"
# escapes and other bytes than printable ASCII: read by jansson, same result
api_json POST /api/v1/devices '[{"id": "esc\u002d1", "model": "M\u00e9", "group": "g\"q"}]'
expect_eq "an entry with escapes: 200, created" "200 1" "$STATUS $(json "$BODY" .created)"
expect_eq "its fields as sent" "Mé g\"q" "$(dev_get esc-1; jq -r '"\(.model) \(.group)"' <"$BODY")"
api DELETE /api/v1/devices/esc-1
expect_eq "and deleted again: 204" 204 "$STATUS"

# a good bulk call that updates some and creates some
api_json POST /api/v1/devices '[{"id": "d00001", "version": "V3"}, {"id": "new-one", "model": "M1", "version": "V1"}]'
expect_eq "bulk update + create: 200, 1 created, 1 updated" "200 1 1" \
  "$STATUS $(json "$BODY" .created) $(json "$BODY" .updated)"
expect_eq "the update applied" V3 "$(dev_field d00001 .version)"

# all of it is durable: kill -9 and restart
kill9_dfotad
start_dfotad "$FLEET_CONF" || bail "dfotad restarts"
# over 10,000 devices the rest loads in the background: wait for its line
_loaded() { log_since "$_start_mark" | grep -q "fleet: $((N + 1)) devices loaded in"; }
wait_until 20 _loaded
expect_match "restart loads $((N + 1)) devices" "fleet: $((N + 1)) devices loaded in" "$(log_since "$_start_mark")"
check "walk after the restart" walk 1000 "$T/restart.ids"
expect_eq "after the restart: $((N + 1)) devices" $((N + 1)) "$(grep -c . "$T/restart.ids")"
checkin d00004 "$(jq -r '.secrets.d00004' <"$T/bulk-res.json")" V1
expect_eq "after the restart a generated secret still works" 204 "$STATUS"

finish
