#!/bin/bash
# fleet_report.sh: URC text posted to /v1/report changes the device's state
# and appears in its events (noise, partial and repeated lines tolerated,
# JSON reports too); a body with no usable line gets 400 and changes
# nothing: same device record, same events.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"

fleet_start || bail "dfotad starts"
mkpkg "$VA" "$VC" 32768 || bail "upload A -> C" "status $STATUS"
S1='secret-u1-0123456789'
dev_put u1 "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"secret\":\"$S1\"}"
expect_eq "PUT u1: 201" 201 "$STATUS"
dev_put idle1 "{\"model\":\"other-model\",\"version\":\"X1\",\"secret\":\"secret-idle1-0123456789\"}"
expect_eq "PUT idle1: 201" 201 "$STATUS"
rollout_create "{\"name\":\"urc\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"devices\":[\"u1\"]},\"waves\":[100],\"retry_backoff\":1}" ||
  bail "create the rollout" "status $STATUS" "$(cat "$BODY")"
rollout_action "$RID" start
checkin u1 "$S1" "$VA"
expect_eq "u1 gets an offer" 200 "$STATUS"
expect_eq "u1 offered" offered "$(dev_field u1 .state)"

# unchanged ID DESC: the device record and its events are as in the last
# snapshot (snap ID)
snap() {
  dev_get "$1" "$T/snap-dev.json"
  dev_events "$1" "$T/snap-ev.json"
}
unchanged() {
  dev_get "$1" "$T/now-dev.json"
  dev_events "$1" "$T/now-ev.json"
  expect_eq "$2: device record unchanged" "$(jq -S -c . <"$T/snap-dev.json")" "$(jq -S -c . <"$T/now-dev.json")"
  expect_eq "$2: events unchanged" "$(jq '.events | length' <"$T/snap-ev.json")" "$(jq '.events | length' <"$T/now-ev.json")"
}
# reports_since N: the report events after the first N events
reports_since() {
  dev_events u1 "$T/ev.json"
  jq -c --argjson n "$1" '[.events[$n:][] | select(.kind == "report") | [.stage, .value]]' <"$T/ev.json"
}
# states_since N: the state changes after the first N events
states_since() {
  dev_events u1 "$T/ev.json"
  jq -c --argjson n "$1" '[.events[$n:][] | select(.kind == "state") | .from + ">" + .to]' <"$T/ev.json"
}

# ---------------------------------------------------------------------------
# nothing usable: 400, nothing changes
sleep 1.1 # last_seen has a resolution of one second
snap u1
report u1 "$S1" "$(urcs 'OK' '+CREG: 1' '+QIND: SMS DONE' '+QIND: "FOTA","HTTPST' '+QIND: "FO')"
expect_eq "noise and partial lines only: 400" 400 "$STATUS"
expect_match "400 says why" 'URC|FOTA' "$(cat "$BODY")"
unchanged u1 "noise-only report"
report u1 "$S1" ""
expect_eq "empty body: 400" 400 "$STATUS"
unchanged u1 "empty report"
report u1 "$S1" '+QIND: "FOTA","HTTPEND"'$'\r\n''garbage "FOTA"'
expect_eq "HTTPEND without its code and garbage: 400" 400 "$STATUS"
report u1 "$S1" '{"code": 0}' application/json
expect_eq "JSON without a stage: 400" 400 "$STATUS"
report u1 "$S1" '{"stage": ' application/json
expect_eq "broken JSON: 400" 400 "$STATUS"
unchanged u1 "after the bad reports"

# ---------------------------------------------------------------------------
# usable lines among noise: HTTPSTART -> downloading
n0=$(jq '.events | length' <"$T/snap-ev.json")
report u1 "$S1" "$(urcs 'OK' '+QIND: "FOTA","HTTPSTART"' '+CEREG: 1,"1A2B","01C3D4E5",9')"
expect_eq "HTTPSTART among noise: 200" 200 "$STATUS"
expect_eq "answer: state downloading" downloading "$(json "$BODY" .state)"
expect_eq "answer: 1 line accepted" 1 "$(json "$BODY" .accepted)"
expect_eq "device: downloading" downloading "$(dev_field u1 .state)"
expect_eq "the report is in the events" '[["HTTPSTART",null]]' "$(reports_since "$n0")"
expect_eq "the state change is in the events" '["offered>downloading"]' "$(states_since "$n0")"
expect_eq "last_result stage HTTPSTART" HTTPSTART "$(dev_field u1 .last_result.stage)"
check "last_seen set by the report" test -n "$(dev_field u1 .progress.last_seen)"

# several lines, a truncated one first, a repeated one, no final newline
n1=$(events_count u1)
report u1 "$S1" '+QIND: "FOTA","DOWNL'$'\r\n''+QIND: "FOTA","DOWNLOADING",50'$'\r\n''+QIND: "FOTA","DOWNLOADING",100'$'\n''+QIND: "FOTA","HTTPEND",0'$'\r\n''+QIND: "FOTA","HTTPEND",0'
expect_eq "progress and HTTPEND,0 (a partial and a repeated line): 200" 200 "$STATUS"
expect_eq "answer: 4 lines accepted" 4 "$(json "$BODY" .accepted)"
expect_eq "answer: downloaded" downloaded "$(json "$BODY" .state)"
expect_eq "reports in the events, in order" '[["DOWNLOADING",50],["DOWNLOADING",100],["HTTPEND",0],["HTTPEND",0]]' \
  "$(reports_since "$n1")"
expect_eq "one state change: downloading>downloaded" '["downloading>downloaded"]' "$(states_since "$n1")"
dev_get u1
expect_eq "device_percent from DOWNLOADING" 100 "$(json "$BODY" .progress.device_percent)"
expect_eq "last_result: HTTPEND 0 success" "HTTPEND 0 success" \
  "$(jq -r '"\(.last_result.stage) \(.last_result.code) \(.last_result.class)"' <"$BODY")"

# JSON report: START -> updating
n2=$(events_count u1)
report u1 "$S1" '{"stage": "START"}' application/json
expect_eq "JSON {stage: START}: 200" 200 "$STATUS"
expect_eq "JSON report: updating" updating "$(json "$BODY" .state)"
expect_eq "JSON report in the events" '[["START",null]]' "$(reports_since "$n2")"
report u1 "$S1" '{"stage": "UPDATING", "percent": 60}' application/json
expect_eq "JSON {stage: UPDATING, percent}: 200" 200 "$STATUS"

# a bad body now still changes nothing
sleep 1.1
snap u1
report u1 "$S1" "$(urcs '+QIND: "FOTA",' 'RDY' '+CFUN: 1')"
expect_eq "bad body while updating: 400" 400 "$STATUS"
unchanged u1 "bad body while updating"

# END,0 keeps it updating until the new version is seen
n3=$(events_count u1)
report u1 "$S1" "$(urcs '+QIND: "FOTA","UPDATING",100' '+QIND: "FOTA","END",0')"
expect_eq "END,0: 200" 200 "$STATUS"
expect_eq "END,0: still updating (waits for the version)" updating "$(json "$BODY" .state)"
expect_eq "END,0 in the events" '[["UPDATING",100],["END",0]]' "$(reports_since "$n3")"
checkin u1 "$S1" "$VC"
expect_eq "check-in on the new version: 204" 204 "$STATUS"
expect_eq "u1 succeeded" succeeded "$(dev_field u1 .state)"
dev_events u1 "$T/ev.json"
expect_eq "u1: the whole path in its state events" \
  '["idle>pending","pending>offered","offered>downloading","downloading>downloaded","downloaded>updating","updating>succeeded"]' \
  "$(jq -c '[.events[] | select(.kind == "state") | .from + ">" + .to]' <"$T/ev.json")"

# ---------------------------------------------------------------------------
# a device with nothing in flight (in no rollout): its report changes
# nothing (issue 7: a credential must not grow a history at will)
n4=$(events_count idle1)
TOKEN_HEADER=X-Device-Token report idle1 secret-idle1-0123456789 "$(urcs '+QIND: "FOTA","END",505')"
expect_eq "report of a device in no rollout: 200" 200 "$STATUS"
expect_eq "it stays idle" idle "$(json "$BODY" .state)"
expect_eq "no line was applied" 0 "$(json "$BODY" .accepted)"
expect_eq "no event was added" "$n4" "$(events_count idle1)"
expect_eq "no last_result was recorded" "" "$(dev_field idle1 .last_result.code)"
# too many lines: 400, nothing applied
many=$(for i in $(seq 1 80); do printf '+QIND: "FOTA","DOWNLOADING",%d\r\n' "$i"; done)
TOKEN_HEADER=X-Device-Token report idle1 secret-idle1-0123456789 "$many"
expect_eq "a report of 80 lines (limit 64): 400" 400 "$STATUS"

# ---------------------------------------------------------------------------
# keep-alive: a range read slowly, another at once, then a check-in on the
# same connection. The check-in finds both counted (README: a check-in or
# report on the same connection settles them first): the second still in
# its connection's batch, the first measured by the tick while the device
# had not read it yet (then waiting for TCP); the device asking again has
# acknowledged both.
S2='secret-u2-0123456789'
dev_put u2 "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"secret\":\"$S2\"}"
expect_eq "PUT u2: 201" 201 "$STATUS"
rollout_create "{\"name\":\"ka\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"devices\":[\"u2\"]},\"waves\":[100]}" ||
  bail "create the rollout" "status $STATUS" "$(cat "$BODY")"
rollout_action "$RID" start
checkin u2 "$S2" "$VA" -H 'Accept: application/json'
expect_eq "u2 gets an offer" 200 "$STATUS"
U2_PATH=$(json "$BODY" .url | sed -e 's|^[a-z]*://[^/]*||')
ka_out=$(timeout 30 "$PYTHON" - "$HTTP" "$ADMIN" "$TOKEN" "$U2_PATH" "$S2" "$VA" <<'PY'
import json, socket, sys, time
dev, admin, token, path, secret, version = sys.argv[1:7]
def addr(hp):
    h, p = hp.rsplit(":", 1)
    return (h.strip("[]"), int(p))
def response(s, buf):
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, buf = buf.split(b"\r\n\r\n", 1)
    n = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
    while len(buf) < n:
        buf += s.recv(65536)
    return head, buf[:n], buf[n:]
s = socket.socket(socket.AF_INET6 if ":" in addr(dev)[0] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
s.connect(addr(dev))
s.sendall(("GET %s HTTP/1.1\r\nHost: d\r\nRange: bytes=0-8191\r\n\r\n" % path).encode())
time.sleep(0.7)  # unread meanwhile: the tick finds the range unacknowledged
head, body, rest = response(s, b"")
assert head.startswith(b"HTTP/1.1 206") and len(body) == 8192, head
s.sendall(("GET %s HTTP/1.1\r\nHost: d\r\nRange: bytes=8192-16383\r\n\r\n" % path).encode())
head, body, rest = response(s, rest)  # read at once: still in its batch at the check-in
assert head.startswith(b"HTTP/1.1 206") and len(body) == 8192, head
s.sendall(("GET /v1/update?device=u2&version=%s HTTP/1.1\r\nHost: d\r\nX-Device-Token: %s\r\n\r\n"
           % (version, secret)).encode())
head, _, rest = response(s, rest)
assert head.startswith(b"HTTP/1.1 200"), head
a = socket.create_connection(addr(admin))
a.sendall(("GET /api/v1/devices/u2 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer %s\r\n"
           "Connection: close\r\n\r\n" % token).encode())
_, doc, _ = response(a, b"")
print(json.loads(doc)["progress"]["bytes_served"])
PY
)
expect_eq "keep-alive: two ranges are counted by the time a check-in on their connection is answered" \
  16384 "$ka_out"

finish
