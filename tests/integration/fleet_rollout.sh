#!/bin/bash
# fleet_rollout.sh: a rollout in waves [10, 100] over 24 simulated devices on
# three source versions (A and B have a delta straight to C, D only D -> E
# -> C): every device ends on C, the two-hop devices downloaded and
# confirmed both hops in order, every device's events are complete, wave 2
# started only after wave 1 succeeded, and the rollout is completed.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"

fleet_start || bail "dfotad starts"

# ---------------------------------------------------------------------------
# packages: A->C, B->C, D->E, E->C
for hop in "$VA $VC 98304" "$VB $VC 81920" "$VD $VE 49152" "$VE $VC 65536"; do
  set -- $hop
  mkpkg "$1" "$2" "$3" || bail "upload $1 -> $2" "status $STATUS" "$(cat "$BODY")"
done
SZ_AC=98304 SZ_BC=81920 SZ_DE=49152 SZ_EC=65536

# ---------------------------------------------------------------------------
# 24 devices (9 on A, 8 on B, 7 on D) in one bulk call, secrets generated
N=24
python3 - "$N" "$VA" "$VB" "$VD" "$MODEL" >"$T/bulk.json" <<'PYEOF'
import json, sys
n = int(sys.argv[1]); va, vb, vd, model = sys.argv[2:6]
out = []
for i in range(n):
    v = va if i < 9 else vb if i < 17 else vd
    out.append({"id": "8600000000000%02d" % i, "model": model, "version": v,
                "group": "field", "tags": ["eu", "meter"]})
json.dump(out, sys.stdout)
PYEOF
api_json_file POST /api/v1/devices "$T/bulk.json"
expect_eq "bulk import of $N devices: 200" 200 "$STATUS"
expect_eq "bulk import created $N" "$N" "$(json "$BODY" .created)"
jq --slurpfile res "$BODY" '[.[] | {id, version, secret: $res[0].secrets[.id]}]' \
  <"$T/bulk.json" >"$T/devices.json"
expect_eq "a generated secret for every device" 0 \
  "$(jq '[.[] | select(.secret == null or (.secret | length) < 16)] | length' <"$T/devices.json")"
# one more device outside the selector (other group): must stay out of it
dev_put outsider "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"group\":\"lab\",\"secret\":\"outsider-secret-0001\"}"
expect_eq "PUT a device of another group: 201" 201 "$STATUS"

# ---------------------------------------------------------------------------
# the rollout
rollout_create "{\"name\":\"to-A03\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"group\":\"field\",\"tags\":[\"meter\"]},\"waves\":[10,100],
  \"success_threshold\":90,\"max_failure_rate\":20,\"max_concurrent\":0,\"max_attempts\":3,
  \"timeout\":120,\"retry_backoff\":1}" || bail "create the rollout" "status $STATUS" "$(cat "$BODY")"
expect_eq "a new rollout is a draft" draft "$(json "$BODY" .state)"
rollout_action "$RID" start
expect_eq "start: 200" 200 "$STATUS"
expect_eq "started rollout is running" running "$(json "$BODY" .state)"
expect_eq "started in wave 1" 1 "$(json "$BODY" .wave)"
expect_eq "the rollout has the $N devices of its selector" "$N" "$(json "$BODY" .devices)"
expect_eq "the outsider is in no rollout" "" "$(dev_field outsider .rollout)"

# wave 1 is ceil(10% of 24) = 3 devices: positions 0..2
CUT=3
declare -A POS
events_many "$T/ev0" $(jq -r '.[].id' <"$T/devices.json") || fail "events of every device"
while read -r id p; do POS[$id]=$p; done < <(positions "$T/ev0")
W1=() W2=()
for id in "${!POS[@]}"; do
  if [ "${POS[$id]}" -lt $CUT ]; then W1+=("$id"); else W2+=("$id"); fi
done
expect_eq "3 devices in wave 1" 3 "${#W1[@]}"
secret_of() { jq -r --arg id "$1" '.[] | select(.id == $id) | .secret' <"$T/devices.json"; }
version_of() { jq -r --arg id "$1" '.[] | select(.id == $id) | .version' <"$T/devices.json"; }

# a wave-2 device asks now: nothing to do yet
d=${W2[0]}
checkin "$d" "$(secret_of "$d")" "$(version_of "$d")"
expect_eq "a wave-2 device checking in during wave 1 gets 204" 204 "$STATUS"
# a wave-1 device asks as a module's host does: text/plain, one line
d=${W1[0]}
checkin "$d" "$(secret_of "$d")" "$(version_of "$d")"
expect_eq "a wave-1 device gets an offer (200)" 200 "$STATUS"
expect_match "plain offer is text/plain" '^text/plain' "$(hdr Content-Type "$HDRS")"
url=$(tr -d '\r\n' <"$BODY")
expect_eq "plain offer is one line" 1 "$(grep -c . "$BODY")"
expect_match "offer URL: http://HOST:PORT/f/TOKEN" "^http://127\.0\.0\.1:$HTTP_PORT/f/[A-Za-z0-9_-]{20,}$" "$url"
check "offer URL at most 255 bytes" test "${#url}" -le 255
# the same device again, asking for JSON: the same offer stands
checkin "$d" "$(secret_of "$d")" "$(version_of "$d")" -H 'Accept: application/json'
expect_eq "JSON check-in: 200" 200 "$STATUS"
expect_eq "JSON offer: the same URL" "$url" "$(json "$BODY" .url)"
expect_eq "JSON offer: rollout" "$RID" "$(json "$BODY" .rollout)"
first_to=$VC
[ "$(version_of "$d")" = "$VD" ] && first_to=$VE # D: the first of two hops
expect_eq "JSON offer: to (the first hop)" "$first_to" "$(json "$BODY" .to)"
expect_eq "JSON offer: from" "$(version_of "$d")" "$(json "$BODY" .from)"
rs=$(json "$BODY" .request_size)
check "JSON offer: request_size a multiple of 2048 ($rs)" test -n "$rs" -a $((${rs:-1} % 2048)) = 0

# ---------------------------------------------------------------------------
# the simulated fleet
t0=$(date +%s.%N)
SIM_TIMEOUT=70 sim --server "$DEV_URL" --devices "$T/devices.json" --concurrency "$N" \
  --mode mixed --target "$VC" --admin "$ADMIN_URL" --token "$TOKEN" --rollout "$RID" \
  --poll-interval 0.3 --retry-delay 0.3 --max-retry-after 2 --install-seconds 0.1 \
  --max-seconds 45 --seed 3 --out "$T/summary.json" >"$T/sim.out" 2>"$T/sim.log"
SIM_RC=$?
echo "# simulator: exit $SIM_RC after $(elapsed_since "$t0") s: $(jq -c '.totals | {outcomes, requests, statuses, resumes, segments}' <"$T/summary.json" 2>/dev/null)"
expect_eq "simulator exit status" 0 "$SIM_RC"
[ -s "$T/summary.json" ] || bail "simulator summary" "$(tail -n 20 "$T/sim.log")"
expect_eq "simulator: every device on the target" "$N" \
  "$(jq '[.devices[] | select(.outcome == "on_target" and .version == "'"$VC"'")] | length' <"$T/summary.json")"
expect_eq "simulator saw no protocol anomalies" 0 "$(jq .totals.anomalies <"$T/summary.json")"
expect_eq "two-hop devices downloaded D->E then E->C" 7 \
  "$(jq --arg d "$VD" --arg e "$VE" --arg c "$VC" '[.devices[] | select(.start_version == $d) |
    select([.hops[] | select(.result == "downloaded") | "\(.from)>\(.to)"] == ["\($d)>\($e)", "\($e)>\($c)"])] | length' <"$T/summary.json")"

wait_rollout_state "$RID" completed 10
rollout_get "$RID" "$T/rollout.json"
expect_eq "rollout completed" completed "$(json "$T/rollout.json" .state)"
expect_eq "rollout in its last wave" 2 "$(json "$T/rollout.json" .wave)"
expect_eq "rollout counts: all succeeded" "$N" "$(json "$T/rollout.json" .counts.succeeded)"
expect_eq "rollout counts: no failures" 0 "$(jq '[.counts.failed, .counts.no_path] | add' <"$T/rollout.json")"
expect_eq "rollout: no error codes" '{}' "$(jq -c .codes <"$T/rollout.json")"
min_bytes=$((9 * SZ_AC + 8 * SZ_BC + 7 * (SZ_DE + SZ_EC)))
check "rollout bytes_served >= every hop once ($min_bytes)" \
  test "$(json "$T/rollout.json" .bytes_served)" -ge $min_bytes

devices_all "$T/all.json" "rollout=$RID" || fail "list the rollout's devices"
expect_eq "listing rollout=ID: $N devices" "$N" "$(jq length <"$T/all.json")"
expect_eq "every device on $VC, succeeded, percent 100" "$N" \
  "$(jq --arg c "$VC" '[.[] | select(.version == $c and .state == "succeeded" and .progress.percent == 100)] | length' <"$T/all.json")"
jq -c --arg c "$VC" '.[] | select(.version != $c or .state != "succeeded" or .progress.percent != 100) |
  {id, version, state, offer, progress}' <"$T/all.json" | sed 's/^/# not done: /'
expect_eq "the outsider was never offered anything" 0 \
  "$(dev_events outsider "$T/ev-outsider.json"; jq '[.events[] | select(.kind == "offer")] | length' <"$T/ev-outsider.json")"

# ---------------------------------------------------------------------------
# events of every device
events_many "$T" $(jq -r '.[].id' <"$T/devices.json") || fail "events of every device"
python3 - "$T" "$T/devices.json" "$CUT" "$VA" "$VB" "$VC" "$VD" "$VE" "$RID" >"$T/ev-check.out" <<'PYEOF'
import json, sys
t, devfile, cut = sys.argv[1], sys.argv[2], int(sys.argv[3])
va, vb, vc, vd, ve, rid = sys.argv[4:10]
devs = json.load(open(devfile))
problems = []
w1_done, w2_first_offer = [], []
for d in devs:
    ev = json.load(open("%s/ev-%s.json" % (t, d["id"])))["events"]
    p = lambda m: problems.append("%s (%s): %s" % (d["id"], d["version"], m))
    kinds = [e.get("kind") for e in ev]
    for k in ("created", "rollout", "offer", "state", "report", "version", "hop_confirmed"):
        if k not in kinds:
            p("no %r event" % k)
    if kinds and kinds[0] != "created":
        p("first event is %r, not created" % kinds[0])
    ats = [e.get("at") for e in ev]
    if any(not isinstance(a, str) for a in ats):
        p("an event without 'at'")
    elif ats != sorted(ats):
        p("event times go backwards")
    ro = [e for e in ev if e["kind"] == "rollout"]
    if not ro or ro[-1].get("rollout") != rid:
        p("rollout event does not name %s: %r" % (rid, ro))
    pos = ro[-1].get("position") if ro else None
    hops = [(d["version"], vc)] if d["version"] != vd else [(vd, ve), (ve, vc)]
    offers = [(e.get("from"), e.get("to")) for e in ev if e["kind"] == "offer"]
    if offers != hops:
        p("offers %r, expected %r" % (offers, hops))
    conf = [(e.get("from"), e.get("to")) for e in ev if e["kind"] == "hop_confirmed"]
    if conf != hops:
        p("hop_confirmed %r, expected %r" % (conf, hops))
    vers = [(e.get("from"), e.get("to")) for e in ev if e["kind"] == "version"]
    if vers != hops:
        p("version events %r, expected %r" % (vers, hops))
    # per hop: offer < downloading < HTTPEND,0 report < downloaded < updating < END,0 < hop_confirmed
    idx_offer = [i for i, e in enumerate(ev) if e["kind"] == "offer"]
    idx_conf = [i for i, e in enumerate(ev) if e["kind"] == "hop_confirmed"]
    if len(idx_offer) == len(hops) and len(idx_conf) == len(hops):
        prev = -1
        for h in range(len(hops)):
            a, b = idx_offer[h], idx_conf[h]
            if not prev < a < b:
                p("hop %d: offer at %d, confirmed at %d, previous hop ended at %d" % (h + 1, a, b, prev))
            seg = ev[a:b + 1]
            tos = [e.get("to") for e in seg if e["kind"] == "state"]
            want = ["offered", "downloading", "downloaded", "updating"]
            it = iter(tos)
            if not all(any(x == w for x in it) for w in want):
                p("hop %d: states %r do not pass through %r in order" % (h + 1, tos, want))
            reps = [(e.get("stage"), e.get("value")) for e in seg if e["kind"] == "report"]
            if ("HTTPEND", 0) not in reps:
                p("hop %d: no HTTPEND,0 report (reports: %r)" % (h + 1, reps))
            if ("END", 0) not in reps:
                p("hop %d: no END,0 report" % (h + 1))
            prev = b
    states = [e for e in ev if e["kind"] == "state"]
    if not states or states[-1].get("to") != "succeeded":
        p("last state event %r" % (states[-1] if states else None))
    if any(not e.get("from") or not e.get("to") or "reason" not in e for e in states):
        p("a state event without from/to/reason")
    for e in states:
        if e.get("to") == "succeeded" and pos is not None and pos < cut:
            w1_done.append(e["at"])
    offer_ats = [e["at"] for e in ev if e["kind"] == "offer"]
    if pos is not None and pos >= cut and offer_ats:
        w2_first_offer.append(offer_ats[0])
if w1_done and w2_first_offer and min(w2_first_offer) < max(w1_done):
    problems.append("a wave-2 device was offered (%s) before wave 1 had succeeded (%s)" % (
        min(w2_first_offer), max(w1_done)))
if len(w1_done) != cut:
    problems.append("%d wave-1 devices succeeded, expected %d" % (len(w1_done), cut))
for x in problems[:30]:
    print(x)
print("PROBLEMS %d" % len(problems))
PYEOF
expect_eq "every device's events are complete and in order" "PROBLEMS 0" "$(tail -n 1 "$T/ev-check.out")"
[ "$(tail -n 1 "$T/ev-check.out")" = "PROBLEMS 0" ] || sed 's/^/#   /' "$T/ev-check.out" | head -n 30

# a finished device that checks in again has nothing to do
d=${W1[0]}
checkin "$d" "$(secret_of "$d")" "$VC"
expect_eq "a succeeded device checking in gets 204" 204 "$STATUS"

finish
