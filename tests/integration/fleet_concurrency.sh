#!/bin/bash
# fleet_concurrency.sh: a rollout with max_concurrent = 5 and 50 devices
# checking in at once: at most 5 get an offer (200), every other one 429
# with Retry-After. Then the simulator runs the whole rollout: sampled
# through the admin API while it runs, and reconstructed afterwards from
# every device's state events, never more than 5 devices are offered or
# downloading together; the rollout completes. Last, with max_concurrent
# 1, the limit must also hold when a device's retry backoff ends.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"

fleet_start || bail "dfotad starts"
mkpkg "$VA" "$VC" 131072 || bail "upload A -> C" "status $STATUS"
N=50
MAXC=5
python3 - "$N" "$MODEL" "$VA" >"$T/bulk.json" <<'PYEOF'
import json, sys
n, model, va = int(sys.argv[1]), sys.argv[2], sys.argv[3]
json.dump([{"id": "c%02d" % i, "model": model, "version": va, "group": "conc",
            "secret": "secret-c%02d-0123456789" % i} for i in range(n)], sys.stdout)
PYEOF
api_json_file POST /api/v1/devices "$T/bulk.json"
expect_eq "bulk import of $N devices" "200 $N" "$STATUS $(json "$BODY" .created)"
rollout_create "{\"name\":\"conc\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"group\":\"conc\"},\"waves\":[100],\"max_concurrent\":$MAXC,\"max_attempts\":3,
  \"timeout\":300,\"retry_backoff\":1}" || bail "create the rollout" "status $STATUS" "$(cat "$BODY")"
rollout_action "$RID" start
expect_eq "rollout running" running "$(json "$BODY" .state)"

# ---------------------------------------------------------------------------
# 50 check-ins at once (50 threads released together, one connection each)
python3 - "$DEV_URL" "$T/bulk.json" "$VA" >"$T/burst.json" <<'PYEOF'
import http.client, json, sys, threading, urllib.parse
base, devfile, va = sys.argv[1], sys.argv[2], sys.argv[3]
u = urllib.parse.urlsplit(base)
devs = json.load(open(devfile))
barrier = threading.Barrier(len(devs))
out = [None] * len(devs)
def one(i, d):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
    c.connect()
    barrier.wait(timeout=20)
    c.request("GET", "/v1/update?device=%s&version=%s" % (d["id"], va),
              headers={"X-Device-Token": d["secret"], "Accept": "application/json"})
    r = c.getresponse()
    body = r.read()
    out[i] = {"id": d["id"], "status": r.status, "retry_after": r.getheader("Retry-After"),
              "url": json.loads(body).get("url") if r.status == 200 else None}
    c.close()
ts = [threading.Thread(target=one, args=(i, d)) for i, d in enumerate(devs)]
for t in ts: t.start()
for t in ts: t.join(30)
json.dump(out, sys.stdout)
PYEOF
n200=$(jq '[.[] | select(.status == 200)] | length' <"$T/burst.json")
n429=$(jq '[.[] | select(.status == 429)] | length' <"$T/burst.json")
echo "# burst of $N check-ins: $(jq -c 'group_by(.status) | map({(.[0].status | tostring): length}) | add' <"$T/burst.json")"
check "at most $MAXC of $N got an offer ($n200)" test "$n200" -le $MAXC
expect_eq "exactly $MAXC offers (the slots were free)" $MAXC "$n200"
expect_eq "every other device: 429" $((N - n200)) "$n429"
expect_eq "every 429 has a Retry-After of whole seconds >= 1" "$n429" \
  "$(jq '[.[] | select(.status == 429 and ((.retry_after // "") | test("^[1-9][0-9]*$")))] | length' <"$T/burst.json")"
expect_eq "the offers have distinct URLs" "$n200" "$(jq '[.[] | .url | select(. != null)] | unique | length' <"$T/burst.json")"
rollout_get "$RID" "$T/r1.json"
expect_eq "rollout counts: offered+downloading = $n200" "$n200" "$(jq '.counts.offered + .counts.downloading' <"$T/r1.json")"
expect_eq "rollout counts: the rest pending" $((N - n200)) "$(json "$T/r1.json" .counts.pending)"
# a refused device asking again right away: still 429
d=$(jq -r '[.[] | select(.status == 429)][0].id' <"$T/burst.json")
checkin "$d" "secret-$d-0123456789" "$VA"
expect_eq "a refused device asking again while the slots are full: 429" 429 "$STATUS"

# ---------------------------------------------------------------------------
# the whole rollout with the simulator; the admin API sampled meanwhile
python3 - "$ADMIN_URL" "$TOKEN" "$RID" "$T/sampler.stop" >"$T/samples.txt" 2>/dev/null <<'PYEOF' &
import json, os, sys, time, urllib.request
base, token, rid, stop = sys.argv[1:5]
end = time.time() + 60
while time.time() < end and not os.path.exists(stop):
    try:
        req = urllib.request.Request("%s/api/v1/rollouts/%s" % (base, rid),
                                     headers={"Authorization": "Bearer " + token})
        with urllib.request.urlopen(req, timeout=5) as r:
            j = json.load(r)
        c = j["counts"]
        print(c["offered"] + c["downloading"], c["offered"], c["downloading"], j["state"], flush=True)
    except Exception:
        pass
    time.sleep(0.02)
PYEOF
SAMPLER=$!
BG_PIDS+=("$SAMPLER")
jq '[.[] | {id, secret, version}]' <"$T/bulk.json" >"$T/devices.json"
t0=$(date +%s.%N)
SIM_TIMEOUT=70 sim --server "$DEV_URL" --devices "$T/devices.json" --concurrency $N --mode mixed \
  --target "$VC" --admin "$ADMIN_URL" --token "$TOKEN" --rollout "$RID" --poll-interval 0.2 \
  --retry-delay 0.2 --max-retry-after 0.3 --install-seconds 0.1 --max-seconds 45 --seed 7 \
  --out "$T/summary.json" >"$T/sim.out" 2>"$T/sim.log"
SIM_RC=$?
touch "$T/sampler.stop"
wait_until 5 _pid_gone "$SAMPLER"
echo "# simulator: exit $SIM_RC after $(elapsed_since "$t0") s: $(jq -c '.totals | {outcomes, statuses}' <"$T/summary.json" 2>/dev/null)"
expect_eq "simulator exit status" 0 "$SIM_RC"
nsamples=$(grep -c . "$T/samples.txt")
maxseen=$(awk 'BEGIN { m = 0 } $1 > m { m = $1 } END { print m }' "$T/samples.txt")
echo "# $nsamples samples of the rollout; most offered+downloading at once: $maxseen"
check "sampled at least 20 times while it ran ($nsamples)" test "$nsamples" -ge 20
check "sampled: never more than $MAXC offered+downloading ($maxseen)" test "$maxseen" -le $MAXC
expect_eq "simulator: 429s were answered while slots were full" 1 \
  "$(jq '[.totals.statuses | to_entries[] | select(.key == "checkin 429") | .value] | add // 0 | if . > 0 then 1 else 0 end' <"$T/summary.json")"
wait_rollout_state "$RID" completed 10
rollout_get "$RID" "$T/r2.json"
expect_eq "rollout completed" completed "$(json "$T/r2.json" .state)"
expect_eq "all $N succeeded" $N "$(json "$T/r2.json" .counts.succeeded)"

# from the events: intervals in offered/downloading, their largest overlap
events_many "$T/ev" $(jq -r '.[].id' <"$T/devices.json") || fail "events of every device"
python3 - "$T/ev" >"$T/overlap.txt" <<'PYEOF'
import glob, json, sys
points = []
for f in glob.glob(sys.argv[1] + "/ev-*.json"):
    j = json.load(open(f))
    active = False
    for e in j["events"]:
        if e.get("kind") != "state":
            continue
        now = e["to"] in ("offered", "downloading")
        if now and not active:
            points.append((e["at"], 1, j["device"]))
        elif active and not now:
            points.append((e["at"], 0, j["device"]))
        active = now
    if active:
        points.append(("9999", 0, j["device"]))
# ends before starts at the same millisecond
points.sort(key=lambda p: (p[0], p[1]))
cur = peak = 0
at = None
for t, start, dev in points:
    cur += 1 if start else -1
    if cur > peak:
        peak, at = cur, t
print(peak, at)
PYEOF
read -r peak peak_at <"$T/overlap.txt"
echo "# from the events: at most $peak devices offered or downloading together (at $peak_at)"
check "events: never more than $MAXC offered+downloading ($peak)" test "${peak:-99}" -le $MAXC

# ---------------------------------------------------------------------------
# the limit holds across a retry backoff: max_concurrent 1, devices x and y;
# x fails with 711 (back to offered, in backoff), y may take the slot; when
# x's backoff ends while y downloads, they must not both be downloading
for i in x y; do
  dev_put "$i" "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"group\":\"one\",\"secret\":\"secret-$i-0123456789\"}"
done
rollout_create "{\"name\":\"one\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"group\":\"one\"},\"waves\":[100],\"max_concurrent\":1,\"max_attempts\":5,
  \"retry_backoff\":2}" || bail "create rollout one" "status $STATUS" "$(cat "$BODY")"
R1=$RID
rollout_action "$R1" start
checkin x secret-x-0123456789 "$VA"
expect_eq "max_concurrent 1: x gets the slot" 200 "$STATUS"
URLX=$(tr -d '\r\n' <"$BODY")
checkin y secret-y-0123456789 "$VA"
expect_eq "max_concurrent 1: y waits (429)" 429 "$STATUS"
curl -s --max-time 10 -o /dev/null "$URLX"
report x secret-x-0123456789 "$(urcs '+QIND: "FOTA","HTTPSTART"' '+QIND: "FOTA","HTTPEND",711')"
expect_eq "x: 711 -> offered, in its retry backoff" offered "$(json "$BODY" .state)"
checkin y secret-y-0123456789 "$VA"
y_status=$STATUS
if [ "$y_status" = 200 ]; then
  report y secret-y-0123456789 "$(urcs '+QIND: "FOTA","HTTPSTART"')"
fi
sleep 2.5 # x's backoff is over
checkin x secret-x-0123456789 "$VA"
x_status=$STATUS
echo "# y during x's backoff: $y_status; x after its backoff (y downloading if it got 200): $x_status"
check "max_concurrent 1 across a retry backoff: not both x and y given the download (y $y_status, x $x_status)" \
  test "$y_status" != 200 -o "$x_status" != 200

finish
