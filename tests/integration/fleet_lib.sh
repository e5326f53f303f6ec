# fleet_lib.sh: helpers for the fleet integration tests (issue 3), sourced
# after lib.sh:
#   [ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
#   . "$(dirname "$0")/lib.sh"
#   . "$(dirname "$0")/fleet_lib.sh"
#
# Devices, packages and rollouts through the admin API; check-ins and URC
# reports on the device listener; the simulator tests/sim/dfotasim.py.
# Loopback only; every request and every wait is bounded.

SIM="$LIB_DIR/../sim/dfotasim.py"
if [ ! -f "$SIM" ]; then
  echo "$TEST_NAME: simulator $SIM not found" >&2
  exit 99
fi
if ! command -v timeout >/dev/null 2>&1; then
  echo "$TEST_NAME: needs timeout (coreutils)" >&2
  exit 99
fi

# One model, five firmware revisions: A and B have a delta straight to C;
# D has only D -> E -> C (two hops).
MODEL=BG95-M3
VA=BG95M3LAR02A01
VB=BG95M3LAR02A02
VC=BG95M3LAR02A03
VD=BG95M3LAR01A07
VE=BG95M3LAR01A08

# Device states in the order a device moves through one hop.
STATE_ORDER='{"pending":0,"offered":1,"downloading":2,"downloaded":3,"updating":4,"succeeded":5}'

# fleet_start [CONFIG-LINES]: base configuration (+ the given lines,
# appended as they are), dfotad started; DEV_URL and ADMIN_URL set.
fleet_start() {
  FLEET_CONF="$T/dfotad.conf"
  base_config "$FLEET_CONF"
  [ $# -gt 0 ] && printf '%s\n' "$@" >>"$FLEET_CONF"
  DEV_URL="http://$HTTP"
  ADMIN_URL="http://$ADMIN"
  start_dfotad "$FLEET_CONF"
}

# api_json METHOD PATH JSON-TEXT: admin request with a JSON body.
api_json() {
  local m=$1 p=$2 j=$3
  printf '%s' "$j" >"$T/req.json"
  api "$m" "$p" -H 'Content-Type: application/json' --data-binary @"$T/req.json"
}

# api_json_file METHOD PATH FILE
api_json_file() {
  api "$1" "$2" -H 'Content-Type: application/json' --data-binary @"$3"
}

# mkpkg FROM TO BYTES: uploads a random package for $MODEL (kept as
# $T/pkg-FROM-TO.bin); sets PKG_ID; returns 1 unless 201.
mkpkg() {
  local f="$T/pkg-$1-$2.bin"
  random_file "$f" "$3"
  upload "$f" "$MODEL" "$1" "$2" "$1-$2.bin"
  [ "$STATUS" = 201 ]
}

# dev_put ID JSON: PUT /api/v1/devices/ID.
dev_put() { api_json PUT "/api/v1/devices/$1" "$2"; }

# dev_get ID [OUT]: GET /api/v1/devices/ID into $BODY (and OUT).
dev_get() {
  api GET "/api/v1/devices/$1"
  [ -n "${2:-}" ] && cp "$BODY" "$2"
  return 0
}

# dev_field ID JQ: one value of the device ("" when absent).
dev_field() {
  dev_get "$1"
  json "$BODY" "$2"
}

# dev_events ID OUT: GET /api/v1/devices/ID/events into OUT.
dev_events() {
  api GET "/api/v1/devices/$1/events?limit=1000"
  cp "$BODY" "$2"
}

# events_count ID: number of events of the device ("ERR..." on failure).
events_count() {
  api GET "/api/v1/devices/$1/events?limit=1000"
  if [ "$STATUS" = 200 ]; then jq '.events | length' <"$BODY"; else echo "ERR$STATUS"; fi
}

# rollout_create JSON: POST /api/v1/rollouts; sets RID on 201.
rollout_create() {
  RID=
  api_json POST /api/v1/rollouts "$1"
  [ "$STATUS" = 201 ] && RID=$(json "$BODY" .id)
  [ -n "$RID" ]
}

# rollout_action RID ACTION
rollout_action() { api POST "/api/v1/rollouts/$1/$2"; }

# rollout_get RID [OUT]
rollout_get() {
  api GET "/api/v1/rollouts/$1"
  [ -n "${2:-}" ] && cp "$BODY" "$2"
  return 0
}

# rollout_field RID JQ
rollout_field() {
  rollout_get "$1"
  json "$BODY" "$2"
}

_rollout_state_is() { [ "$(rollout_field "$1" .state)" = "$2" ]; }

# wait_rollout_state RID STATE SECONDS
wait_rollout_state() { wait_until "$3" _rollout_state_is "$1" "$2"; }

# devices_all OUT [QUERY]: every device (of the filter QUERY, e.g.
# "rollout=ID") walked through the pagination, as one JSON array in OUT.
devices_all() {
  local out=$1 q=${2:-} after='' page=0
  echo '[]' >"$out"
  while [ $page -lt 200 ]; do
    api GET "/api/v1/devices?limit=1000${q:+&$q}${after:+&after=$(uri "$after")}"
    [ "$STATUS" = 200 ] || return 1
    jq -s '.[0] + .[1].devices' "$out" "$BODY" >"$out.tmp" && mv "$out.tmp" "$out"
    after=$(json "$BODY" .next)
    [ -n "$after" ] || return 0
    page=$((page + 1))
  done
  return 1
}

# ---------------------------------------------------------------------------
# The device side (http listener)

# checkin ID SECRET VERSION [CURL-ARGS...]: GET /v1/update with the
# credential in X-Device-Token (override with TOKEN_HEADER).
checkin() {
  local id=$1 secret=$2 v=$3
  shift 3
  _curl -H "${TOKEN_HEADER:-X-Device-Token}: $secret" "$@" \
    "$DEV_URL/v1/update?device=$(uri "$id")&version=$(uri "$v")"
}

# report ID SECRET TEXT [CONTENT-TYPE]: POST /v1/report with TEXT as it is.
report() {
  local id=$1 secret=$2 text=$3 ct=${4:-text/plain}
  printf '%s' "$text" >"$T/report.body"
  _curl -X POST -H "${TOKEN_HEADER:-X-Device-Token}: $secret" -H "Content-Type: $ct" \
    --data-binary @"$T/report.body" "$DEV_URL/v1/report?device=$(uri "$id")"
}

# urcs LINE...: the lines joined with CRLF (what a host forwards).
urcs() {
  local out='' l
  for l in "$@"; do out="$out$l"$'\r\n'; done
  printf '%s' "$out"
}

# sim ARGS...: the simulator, killed after SIM_TIMEOUT seconds (default 90).
sim() {
  timeout -k 5 "${SIM_TIMEOUT:-90}" "$PYTHON" "$SIM" "$@"
}

# elapsed_since START (from date +%s.%N): seconds, 2 decimals.
elapsed_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }

# events_many DIR ID...: GET /api/v1/devices/ID/events for each ID, written
# to DIR/ev-ID.json (one python process: far faster than a curl each).
# Returns 1 when any answer was not 200.
events_many() {
  local dir=$1
  shift
  mkdir -p "$dir"
  python3 - "$ADMIN_URL" "$TOKEN" "$dir" "$@" <<'PYEOF'
import sys, urllib.parse, urllib.request
base, token, out = sys.argv[1], sys.argv[2], sys.argv[3]
rc = 0
for i in sys.argv[4:]:
    req = urllib.request.Request("%s/api/v1/devices/%s/events?limit=1000" % (base, urllib.parse.quote(i, safe="")),
                                 headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            data = r.read()
    except Exception as e:
        print("events of %s: %s" % (i, e), file=sys.stderr)
        rc = 1
        continue
    with open("%s/ev-%s.json" % (out, i), "wb") as f:
        f.write(data)
sys.exit(rc)
PYEOF
}

# positions DIR: "ID POSITION" per line, from the ev-*.json files of
# events_many (the position in the device's last "rollout" event).
positions() {
  local f
  for f in "$1"/ev-*.json; do
    jq -r '.device + " " + ([.events[] | select(.kind == "rollout")] | last | .position // -1 | tostring)' <"$f"
  done
}

# fleet_compare BEFORE AFTER: two snapshots of the same devices
# (BEFORE/devices.json and BEFORE/ev-ID.json, likewise AFTER), taken before
# and after a crash: "# moved on meanwhile: N devices", a "# " line per
# problem (a device gone, gone back in version or state, an event lost),
# then "PROBLEMS n". Versions rank VE < VC (the hops' targets).
fleet_compare() {
  python3 - "$1" "$2" "$STATE_ORDER" "$VC" "$VE" <<'PYEOF'
import json, sys
before, after, order, vc, ve = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4], sys.argv[5]
def rank(d):
    v = d.get("version")
    vr = 2 if v == vc else 1 if v == ve else 0
    s = d.get("state")
    return (vr, order.get(s, -1)), "%s/%s" % (v, s)
b = {d["id"]: d for d in json.load(open(before + "/devices.json"))}
a = {d["id"]: d for d in json.load(open(after + "/devices.json"))}
problems = []
for i, d in sorted(b.items()):
    if i not in a:
        problems.append("%s: gone" % i)
        continue
    rb, tb = rank(d)
    ra, ta = rank(a[i])
    if rb[1] < 0 or ra[1] < 0:
        problems.append("%s: unexpected state %s -> %s" % (i, tb, ta))
    elif ra < rb:
        problems.append("%s: went back from %s to %s" % (i, tb, ta))
    eb = json.load(open("%s/ev-%s.json" % (before, i)))["events"]
    ea = json.load(open("%s/ev-%s.json" % (after, i)))["events"]
    if ea[:len(eb)] != eb:
        problems.append("%s: %d events before, %d after; the first ones differ" % (i, len(eb), len(ea)))
moved = sum(1 for i in b if i in a and rank(a[i])[0] > rank(b[i])[0])
print("# moved on meanwhile: %d devices" % moved)
for p in problems[:20]:
    print("# " + p)
print("PROBLEMS %d" % len(problems))
PYEOF
}
