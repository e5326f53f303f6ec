#!/bin/bash
# backup.sh: dfotad --backup of a running server under device load, and
# --restore into a new state directory (issue 17).
#
# 200 simulated devices, all acting at once (concurrency 200), download
# (Range segments of 2 KiB, packages of 64 to 384 KiB) and report while
# the backup runs from a second process: the backup starts once 5 have
# succeeded and at least 50 are downloading; device traffic goes on.
# The backup is restored into an empty directory and a second dfotad
# started on it on other ports. Nothing missing, nothing torn: every
# package (same ids, same sha256, served whole by the second server),
# every device, with a state, progress and events between what the first
# server showed just before the backup and just after it; the rollout's
# counts likewise; device secrets, the PSK seal key and the admin token
# restored. Then what --backup and --restore refuse: a non-empty target,
# a damaged backup (nothing written), a backup without MANIFEST; and a
# package file damaged on the server, left out and restored as damaged.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"

N=200
fleet_start || bail "dfotad starts"
# the 100 devices at VA have a long download (384 KiB), those at VB and VD
# short ones: at the backup some have succeeded, some install, most download
for hop in "$VA $VC 393216" "$VB $VC 81920" "$VD $VE 65536" "$VE $VC 73728"; do
  set -- $hop
  mkpkg "$1" "$2" "$3" || bail "upload $1 -> $2" "status $STATUS"
done
python3 - "$N" "$MODEL" "$VA" "$VB" "$VD" >"$T/bulk.json" <<'PYEOF'
import json, sys
n, model, va, vb, vd = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
devs = [{"id": "b%03d" % i, "model": model, "version": va if i % 4 < 2 else vb if i % 4 == 2 else vd,
         "group": "load", "secret": "secret-b%03d-0123456789" % i} for i in range(n)]
# one device with a DTLS pre-shared key (sealed with psk.key), not in the rollout
devs.append({"id": "psk1", "model": model, "version": va, "group": "psk",
             "secret": "secret-psk1-0123456789", "psk": "00112233445566778899aabbccddeeff",
             "psk_identity": "psk1-identity"})
json.dump(devs, sys.stdout)
PYEOF
api_json_file POST /api/v1/devices "$T/bulk.json"
expect_eq "bulk import of $N devices and one with a PSK" "200 $((N + 1))" "$STATUS $(json "$BODY" .created)"
rollout_create "{\"name\":\"backup\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"group\":\"load\"},\"waves\":[100],\"success_threshold\":50,
  \"max_failure_rate\":50,\"max_concurrent\":$N,\"max_attempts\":8,\"timeout\":120,
  \"retry_backoff\":1}" || bail "create the rollout" "status $STATUS" "$(cat "$BODY")"
rollout_action "$RID" start
expect_eq "rollout running" running "$(json "$BODY" .state)"
IDS=$(jq -r '.[] | select(.group == "load") | .id' <"$T/bulk.json")

# snapshot DIR: every device of the rollout, its events, the rollout, packages
snapshot() {
  mkdir -p "$1"
  devices_all "$1/devices.json" "rollout=$RID" || return 1
  events_many "$1" $IDS || return 1
  rollout_get "$RID" "$1/rollout.json"
  api GET /api/v1/packages && jq -S '[.packages[] | {id, model, from, to, name, size, sha256}]' \
    <"$BODY" >"$1/packages.json"
}

jq '[.[] | select(.group == "load") | {id, secret, version}]' <"$T/bulk.json" >"$T/devices.json"
"$PYTHON" "$SIM" --server "$DEV_URL" --devices "$T/devices.json" --concurrency "$N" --mode segments \
  --request-size 2048 --target "$VC" --poll-interval 0.3 --retry-delay 0.3 --max-retry-after 1 \
  --install-seconds 1 --max-seconds 90 --seed 17 --out "$T/summary.json" >"$T/sim.out" 2>"$T/sim.log" &
SIM_PID=$!
BG_PIDS+=("$SIM_PID")

_midway() {
  rollout_get "$RID"
  local s
  [ "$(jq '.counts.downloading >= 50 and .counts.succeeded >= 5' <"$BODY")" = true ]
}
check "the rollout gets going (>= 5 devices succeeded, >= 50 downloading)" wait_until 60 _midway
# the devices held still (SIGSTOP) while the snapshot before is read: it
# takes a while (200 devices' events; seconds with the sanitizers), and the
# devices must still be downloading when the backup starts
kill -STOP "$SIM_PID"
snapshot "$T/before" || fail "snapshot before the backup"
kill -CONT "$SIM_PID"
echo "# before the backup: $(jq -c .counts <"$T/before/rollout.json")"
sleep 0.3 # the devices go on; what the API showed is committed (flush_interval = 20 ms)
rollout_get "$RID" "$T/at_start.json"
echo "# as the backup starts: $(jq -c .counts <"$T/at_start.json")"
busy=$(jq '.counts.offered + .counts.downloading + .counts.downloaded + .counts.updating' <"$T/at_start.json")
dl=$(jq '.counts.downloading' <"$T/at_start.json")
check "devices still downloading ($dl, $busy in flight) when the backup starts" test "$dl" -gt 0
m=$(log_mark)
t0=$(date +%s.%N)
"$DFOTAD" -c "$FLEET_CONF" --backup "$T/bk" >"$T/backup.out" 2>"$T/backup.err"
rc=$?
secs=$(elapsed_since "$t0")
expect_eq "--backup of the running server exits 0" 0 "$rc"
sed 's/^/# /' "$T/backup.out" "$T/backup.err"
echo "# --backup took $secs s under load"
snapshot "$T/after" || fail "snapshot after the backup"
echo "# after the backup: $(jq -c .counts <"$T/after/rollout.json")"
# the devices may be past their downloads by then (installing, reporting):
# traffic is bytes served or devices that reached their target meanwhile
_went_on() {
  [ "$(json "$T/after/rollout.json" .bytes_served)" -gt "$(json "$T/before/rollout.json" .bytes_served)" ] ||
    [ "$(json "$T/after/rollout.json" .counts.succeeded)" -gt "$(json "$T/before/rollout.json" .counts.succeeded)" ]
}
check "device traffic went on during the backup (bytes served or devices done grew)" _went_on
# how many devices moved on between the two snapshots (the backup between
# them), and their reports (URCs) recorded meanwhile
reports() { cat "$1"/ev-*.json | jq -s '[.[].events[] | select(.kind == "report")] | length'; }
rep_b=$(reports "$T/before") rep_a=$(reports "$T/after")
moved=$(jq -n --slurpfile b "$T/before/devices.json" --slurpfile a "$T/after/devices.json" \
  '($b[0] | map({(.id): .progress.bytes_served}) | add) as $w
   | [$a[0][] | select(.progress.bytes_served > $w[.id])] | length')
echo "# around the backup: $moved of $N devices downloaded more, device reports $rep_b -> $rep_a, \
$(($(json "$T/after/rollout.json" .bytes_served) - $(json "$T/before/rollout.json" .bytes_served))) bytes served"
check "devices reported meanwhile ($rep_b -> $rep_a reports)" test "$rep_a" -gt "$rep_b"
check "dfotad logged no error during the backup" test -z "$(log_since "$m" | grep -E ' error: ')"
# two more while the devices go on: each complete and sound
for i in 2 3; do
  "$DFOTAD" -c "$FLEET_CONF" --backup "$T/bk$i" >/dev/null 2>"$T/backup$i.err"
  expect_eq "backup $i under load exits 0" 0 "$?"
  check "backup $i verifies" sh -c "cd '$T/bk$i' && sha256sum -c --quiet --strict MANIFEST"
done
kill "$SIM_PID" 2>/dev/null # the load has done its part

check "MANIFEST verifies with sha256sum -c" sh -c "cd '$T/bk' && sha256sum -c --quiet --strict MANIFEST"
for f in dfotad.db psk.key admin.token BACKUP; do
  check "the backup has $f" grep -q "  $f\$" "$T/bk/MANIFEST"
done
expect_eq "the backup has the 4 package files" 4 "$(grep -c '  packages/' "$T/bk/MANIFEST")"
expect_eq "the backup directory is the caller's alone" 700 "$(file_mode "$T/bk")"

# restore into a new directory, and a second server on other ports
STATE2="$T/state2"
"$DFOTAD" -c "$FLEET_CONF" --set "server.state_dir=$STATE2" --set "admin.token_file=$STATE2/admin.token" \
  --restore "$T/bk" >"$T/restore.out" 2>&1
expect_eq "--restore into a new directory exits 0" 0 "$?"
sed 's/^/# /' "$T/restore.out"
P2=$(free_port 3 | tr '\n' ' ')
read -r HTTP2 ADMIN2 FTP2 <<<"$P2"
cat >"$T/second.conf" <<EOF2
[server]
state_dir = $STATE2
[http]
listen = 127.0.0.1:$HTTP2
[ftp]
listen = 127.0.0.1:$FTP2
[coap]
listen =
[admin]
listen = 127.0.0.1:$ADMIN2
EOF2
FIRST_PID=$DFOTAD_PID
TOKEN1=$TOKEN
ADMIN="127.0.0.1:$ADMIN2"
start_dfotad "$T/second.conf" || bail "the second dfotad starts on the restored state"
expect_eq "the admin token was restored" "$TOKEN1" "$TOKEN"
ADMIN_URL="http://$ADMIN"
DEV_URL="http://127.0.0.1:$HTTP2"
snapshot "$T/restored" || fail "snapshot of the restored server"
expect_eq "same packages (ids, sha256, sizes)" "$(cat "$T/before/packages.json")" \
  "$(cat "$T/restored/packages.json")"
for id in $(jq -r '.[].id' <"$T/restored/packages.json"); do
  want=$(jq -r --arg id "$id" '.[] | select(.id == $id) | .sha256' <"$T/before/packages.json")
  got=$(curl -s --max-time 10 "$DEV_URL/p/$id" | sha256sum | cut -d' ' -f1)
  expect_eq "package $id served whole by the restored server" "$want" "$got"
done
python3 - "$T/before" "$T/restored" "$T/after" "$STATE_ORDER" "$VC" "$VE" >"$T/compare.txt" <<'PYEOF'
import json, sys
before, restored, after, order, vc, ve = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), sys.argv[5], sys.argv[6]
def rank(d):
    v = d.get("version")
    return (2 if v == vc else 1 if v == ve else 0, order.get(d.get("state"), -1))
def load(p):
    return {d["id"]: d for d in json.load(open(p + "/devices.json"))}
b, r, a = load(before), load(restored), load(after)
problems = []
if set(b) != set(r):
    problems.append("device ids differ: %d before, %d restored" % (len(b), len(r)))
for i in sorted(b):
    if i not in r:
        continue
    rb, rr, ra = rank(b[i]), rank(r[i]), rank(a[i])
    eb = json.load(open("%s/ev-%s.json" % (before, i)))["events"]
    er = json.load(open("%s/ev-%s.json" % (restored, i)))["events"]
    ea = json.load(open("%s/ev-%s.json" % (after, i)))["events"]
    states = [e.get("to") for e in er if e["kind"] == "state"]
    if rr[1] < 0:
        problems.append("%s: restored in an unknown state %s" % (i, r[i].get("state")))
    elif not (rb[0] <= rr[0] <= ra[0]):
        problems.append("%s: restored at %s, not between %s and %s" % (
            i, r[i]["version"], b[i]["version"], a[i]["version"]))
    elif not (rb <= rr <= ra) and (not states or states[-1] != r[i]["state"]):
        # a state may go back (a download cut off under load is offered
        # again): then the restored one must be where its own events end
        problems.append("%s: restored %s/%s is not between %s/%s and %s/%s, nor its events' last state (%s)" % (
            i, r[i]["version"], r[i]["state"], b[i]["version"], b[i]["state"], a[i]["version"], a[i]["state"],
            states[-1] if states else None))
    pb, pr, pa = (x[i]["progress"]["bytes_served"] for x in (b, r, a))
    if rb == rr == ra and not (pb <= pr <= pa):
        problems.append("%s: bytes_served %d restored, %d before, %d after" % (i, pr, pb, pa))
    if er[:len(eb)] != eb or ea[:len(er)] != er:
        problems.append("%s: events %d before, %d restored, %d after: not a prefix chain" % (i, len(eb), len(er), len(ea)))
rb, rr, ra = (json.load(open(p + "/rollout.json")) for p in (before, restored, after))
for k in ("succeeded", "failed"):
    x, y, z = rb["counts"].get(k, 0), rr["counts"].get(k, 0), ra["counts"].get(k, 0)
    if not (x <= y <= z):
        problems.append("rollout %s: %d restored, %d before, %d after" % (k, y, x, z))
if rr["id"] != rb["id"] or rr["name"] != rb["name"]:
    problems.append("rollout id or name differs")
print("restored: %d devices, rollout counts %s" % (len(r), json.dumps(rr["counts"])))
for p in problems[:20]:
    print(p)
print("PROBLEMS %d" % len(problems))
PYEOF
sed 's/^/# /' "$T/compare.txt"
expect_eq "nothing missing, nothing torn" "PROBLEMS 0" "$(tail -n 1 "$T/compare.txt")"

dev_get psk1
expect_eq "the PSK device keeps its identity" psk1-identity "$(json "$BODY" .psk_identity)"
check_not "its sealed PSK opens with the restored psk.key" grep -q 'does not open' "$DFOTAD_LOG"
checkin b000 secret-b000-0123456789 "$VC"
check "a device secret still opens a check-in" test "$STATUS" = 200 -o "$STATUS" = 204
checkin b000 wrong-secret-0123456789 "$VC"
expect_eq "a wrong secret still does not" 403 "$STATUS"
stop_dfotad TERM
expect_eq "the second server stops cleanly" 0 "$DFOTAD_RC"

# what is refused
"$DFOTAD" -c "$FLEET_CONF" --set "server.state_dir=$STATE2" --restore "$T/bk" >"$T/r2.out" 2>&1
expect_eq "--restore into a non-empty state directory: refused" 1 "$?"
expect_match "... saying why" "not empty" "$(cat "$T/r2.out")"
"$DFOTAD" -c "$FLEET_CONF" --backup "$T/bk" >"$T/b2.out" 2>&1
expect_eq "--backup into a non-empty directory: refused" 1 "$?"
cp -a "$T/bk" "$T/bad"
chmod u+w "$T/bad/packages"/*
f=$(ls "$T/bad/packages" | head -1)
printf 'x' | dd of="$T/bad/packages/$f" bs=1 seek=1000 conv=notrunc status=none
"$DFOTAD" -c "$FLEET_CONF" --set "server.state_dir=$T/state3" --restore "$T/bad" >"$T/r3.out" 2>&1
expect_eq "--restore of a damaged backup: refused" 1 "$?"
expect_match "... naming the damaged file" "$f.*manifest" "$(cat "$T/r3.out")"
check "... and nothing written" test ! -e "$T/state3"
rm -f "$T/bad/MANIFEST"
"$DFOTAD" -c "$FLEET_CONF" --set "server.state_dir=$T/state3" --restore "$T/bad" >"$T/r4.out" 2>&1
expect_eq "--restore of a backup without MANIFEST: refused" 1 "$?"
"$DFOTAD" -c "$FLEET_CONF" --set "server.state_dir=$T/nothing-here" --backup "$T/bk4" >"$T/b4.out" 2>&1
expect_eq "--backup of a directory with no database: refused" 1 "$?"
check "... creating nothing" test ! -e "$T/bk4" -a ! -e "$T/nothing-here"

# a package file damaged on disk: left out of the backup, with a warning,
# and the restored server lists that package as damaged, like the original
h=$(jq -r '.[0].sha256' <"$T/before/packages.json")
bad_id=$(jq -r '.[0].id' <"$T/before/packages.json")
chmod u+w "$STATE/packages/$h"
printf 'x' | dd of="$STATE/packages/$h" bs=1 seek=10 conv=notrunc status=none
"$DFOTAD" -c "$FLEET_CONF" --backup "$T/bk5" >"$T/b5.out" 2>&1
expect_eq "--backup with a damaged package file exits 0" 0 "$?"
expect_match "... and warns" "$h.*damaged" "$(cat "$T/b5.out")"
check_not "... leaving it out of the manifest" grep -q "packages/$h" "$T/bk5/MANIFEST"
"$DFOTAD" -c "$FLEET_CONF" --set "server.state_dir=$T/state5" --set "admin.token_file=$T/state5/admin.token" \
  --restore "$T/bk5" >"$T/r5.out" 2>&1
expect_eq "... which restores" 0 "$?"
sed -i "s|^state_dir = .*|state_dir = $T/state5|" "$T/second.conf"
start_dfotad "$T/second.conf" || bail "a server starts on the restored backup with a damaged package"
pkg_json "$bad_id"
expect_eq "... and lists that package as damaged" "200 damaged" "$STATUS $(json "$BODY" .status)"
stop_dfotad TERM

DFOTAD_PID=$FIRST_PID
stop_dfotad TERM
expect_eq "the first server stops cleanly" 0 "$DFOTAD_RC"
finish
