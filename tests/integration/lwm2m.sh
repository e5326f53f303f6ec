#!/bin/sh
# lwm2m.sh: dfotad as the LwM2M server of a rollout (issue 15). 30
# simulated LwM2M devices (tests/sim/lwm2msim.py: raw CoAP, the real /5
# state machine, out-of-band downloads over HTTP or CoAP) registered on
# [coap] with lwm2m = yes, mixed with 6 check-in devices (dfotasim over
# HTTP) in one rollout along a two-hop path A -> B -> C. Five LwM2M devices
# report Update Result 5 (integrity) after their download: the package is
# re-checked (intact), the failure rate pauses the rollout, the operator
# resumes it, and every other device ends on C. Five are in queue mode
# (b=UQ: they hear nothing while asleep), five answer in TLV. Also:
# unknown endpoints refused 4.03 and counted, bounds on lifetime and the
# link-format payload, de-registration, expiry, and the registration shown
# on the device.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"
. "$(dirname "$0")/coap_lib.sh"

LWSIM="$LIB_DIR/../sim/lwm2msim.py"
read -r COAP_PORT COAPS_PORT <<<"$(udp_ports 2 | tr '\n' ' ')"
COAP="127.0.0.1:$COAP_PORT"
COAPS="127.0.0.1:$COAPS_PORT"
fleet_start "[coap]" "listen = $COAP" "lwm2m = yes" "lwm2m_insecure = yes" "lwm2m_poll = 1" \
  "lwm2m_lifetime_min = 2" "lwm2m_queue_awake = 2" "lwm2m_registrations = 100" \
  "[coaps]" "listen = $COAPS" "lwm2m = yes" "[fleet]" "recheck_interval = 0" ||
  bail "dfotad starts with [coap] lwm2m = yes"
mkpkg "$VA" "$VB" 20480 || bail "package A -> B"
mkpkg "$VB" "$VC" 30720 || bail "package B -> C"

# ---- the registration interface, by hand ------------------------------
dev_put lwx "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"lwm2m_endpoint\":\"urn:imei:490154203237518\"}"
expect_eq "a device with an lwm2m_endpoint: 201" 201 "$STATUS"
dev_put lwy "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"trigger\":\"sometimes\"}"
expect_eq "a bad trigger: 400" 400 "$STATUS"
dev_put lwy "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"lwm2m_endpoint\":\"a b\"}"
expect_eq "an endpoint with a space: 400" 400 "$STATUS"
LIB_DIR="$LIB_DIR" "$PYTHON" - "$COAP_PORT" >"$T/rd.out" <<'PYEOF'
import os, socket, sys
sys.path.insert(0, os.path.join(os.environ["LIB_DIR"]))
from coap_raw import build, parse
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
def ask(path, code=2, payload=b""):
    data, mid, tok = build(path, code=code, payload=payload)
    s.sendto(data, ("127.0.0.1", port))
    while True:  # the server's own requests to a registered client are not answers
        r = parse(s.recv(4096))
        if r["type"] == 2 and r["mid"] == mid:
            return r
links = b"</1/0>,</3/0>,</5/0>"
print("unknown", ask("/rd?ep=nosuchdevice&lt=60&lwm2m=1.1&b=U", payload=links)["code"])
print("shortlt", ask("/rd?ep=urn:imei:490154203237518&lt=1", payload=links)["code"])
print("badlinks", ask("/rd?ep=urn:imei:490154203237518&lt=60", payload=b"</1/0>,junk")["code"])
print("toolong", ask("/rd?ep=urn:imei:490154203237518&lt=60",
                     payload=b",".join(b"</%d/0>" % i for i in range(80)))["code"])
print("noep", ask("/rd?lt=60", payload=links)["code"])
r = ask("/rd?ep=urn:imei:490154203237518&lt=3&lwm2m=1.0&b=U", payload=links)
loc = "/".join(p.decode() for p in r["opts"].get(8, []))
print("register", r["code"], loc)
print("update", ask("/" + loc + "?lt=3")["code"])
print("otherloc", ask("/rd/AAAAAAAAAA")["code"])
print("delete", ask("/" + loc, code=4)["code"])
print("again", ask("/" + loc)["code"])
r = ask("/rd?ep=urn:imei:490154203237518&lt=2&lwm2m=1.2&b=U", payload=links)
print("register2", r["code"])
PYEOF
expect_eq "unknown endpoint: 4.03" "unknown 4.03" "$(grep ^unknown "$T/rd.out")"
expect_eq "lifetime under lwm2m_lifetime_min: 4.00" "shortlt 4.00" "$(grep ^shortlt "$T/rd.out")"
expect_eq "malformed link-format: 4.00" "badlinks 4.00" "$(grep ^badlinks "$T/rd.out")"
expect_eq "80 object instances (over 64): 4.00" "toolong 4.00" "$(grep ^toolong "$T/rd.out")"
expect_eq "no ep: 4.00" "noep 4.00" "$(grep ^noep "$T/rd.out")"
expect_match "register by lwm2m_endpoint: 2.01 with a location" "^register 2\.01 rd/[a-z2-7]{10}$" \
  "$(grep ^register "$T/rd.out" | head -1)"
expect_eq "update: 2.04" "update 2.04" "$(grep ^update "$T/rd.out")"
expect_eq "another location: 4.04" "otherloc 4.04" "$(grep ^otherloc "$T/rd.out")"
expect_eq "de-register: 2.02" "delete 2.02" "$(grep ^delete "$T/rd.out")"
expect_eq "update after de-register: 4.04" "again 4.04" "$(grep ^again "$T/rd.out")"
expect_eq "metric: unknown endpoints counted" 1 "$(metric dfotad_lwm2m_refused_unknown_total)"
expect_eq "metric: de-registrations" 1 "$(metric dfotad_lwm2m_deregistrations_total)"
dev_get lwx
expect_eq "the device shows its registration's endpoint" "urn:imei:490154203237518" "$(json "$BODY" .lwm2m.endpoint)"
expect_eq "... and its LwM2M version" "1.2" "$(json "$BODY" .lwm2m.lwm2m)"
_expired() { [ "$(metric dfotad_lwm2m_expiries_total)" = 1 ]; }
wait_until 10 _expired
expect_eq "a registration past its lifetime expires" 1 "$(metric dfotad_lwm2m_expiries_total)"
dev_get lwx
expect_eq "... and the device shows it no longer registered" false "$(jq -r .lwm2m.registered <"$BODY")"
api DELETE /api/v1/devices/lwx

# ---- over CoAPS: the PSK identity must be the registering device's ---------
dev_put lwg "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"psk\":\"generate\"}"
expect_match "a generated PSK is 16 bytes by default" '^[0-9a-f]{32}$' "$(json "$BODY" .psk)"
KEY=lwm2m-psk-16byte
dev_put lwp "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"psk\":\"$(hexof "$KEY")\"}"
dev_put lwq "{\"model\":\"$MODEL\",\"version\":\"$VA\"}"
OUT=$(CC_WAIT=5 cc -m post -u lwp -k "$KEY" "coaps://$COAPS/rd?ep=lwq&lt=60&lwm2m=1.1" -e '</3/0>' 2>&1)
expect_match "lwp's PSK registering as lwq: 4.03" '4\.03' "$OUT"
OUT=$(CC_WAIT=5 cc -m post -u lwp -k "$KEY" "coaps://$COAPS/rd?ep=lwp&lt=60&lwm2m=1.1" -e '</3/0>' 2>&1)
expect_no_match "lwp's PSK registering as lwp: no error" '4\.0' "$OUT"
dev_get lwp
expect_eq "... registered over coaps" "true coaps" "$(jq -r '"\(.lwm2m.registered) \(.lwm2m.protocol)"' <"$BODY")"
expect_eq "metric: identity refusals counted" 1 "$(metric dfotad_lwm2m_refused_identity_total)"
for d in lwg lwp lwq; do api DELETE "/api/v1/devices/$d"; done

# ---- a rollout over LwM2M and check-in devices --------------------------
N=30
python3 - "$N" "$VA" "$MODEL" >"$T/bulk.json" <<'PYEOF'
import json, sys
n, va, model = int(sys.argv[1]), sys.argv[2], sys.argv[3]
out = []
for i in range(n):
    d = {"id": "lw%02d" % i, "model": model, "version": va, "trigger": "lwm2m"}
    if i % 10 == 3:
        d["lwm2m_endpoint"] = "urn:dev:lw%02d" % i
    if i % 10 == 7:
        d["transport"] = "coap"  # downloads over CoAP, the others over HTTP
    out.append(d)
for i in range(6):
    out.append({"id": "ck%02d" % i, "model": model, "version": va})
json.dump(out, sys.stdout)
PYEOF
api_json_file POST /api/v1/devices "$T/bulk.json"
expect_eq "bulk import: 200" 200 "$STATUS"
python3 - "$T/bulk.json" "$BODY" "$T/lw.json" "$T/ck.json" <<'PYEOF'
import json, sys
devs = json.load(open(sys.argv[1])); res = json.load(open(sys.argv[2]))
lw = [{"id": d["id"], "endpoint": d.get("lwm2m_endpoint", d["id"]), "version": d["version"]}
      for d in devs if d["id"].startswith("lw")]
ck = [{"id": d["id"], "version": d["version"], "secret": res["secrets"][d["id"]]}
      for d in devs if d["id"].startswith("ck")]
json.dump(lw, open(sys.argv[3], "w")); json.dump(ck, open(sys.argv[4], "w"))
PYEOF
dev_get lw03
expect_eq "trigger shown" lwm2m "$(json "$BODY" .trigger)"
expect_eq "lwm2m_endpoint shown" "urn:dev:lw03" "$(json "$BODY" .lwm2m_endpoint)"

rollout_create "{\"name\":\"lwm2m\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"devices\":$(jq -c '[.[].id]' <"$T/bulk.json")},\"waves\":[30,100],\"max_failure_rate\":10,\"success_threshold\":50}" ||
  bail "rollout created" "$(cat "$BODY")"
rollout_action "$RID" start

FAILS="lw01,lw11,lw21,lw05,lw15"
QUEUE="lw02,lw12,lw22,lw08,lw18"
TLVS="lw04,lw14,lw24,lw06,lw16"
START=$(date +%s.%N)
timeout -k 5 150 "$PYTHON" "$LWSIM" --server "$COAP" --devices "$T/lw.json" --chain "$VA,$VB,$VC" \
  --target "$VC" --queue "$QUEUE" --tlv "$TLVS" $(for d in ${FAILS//,/ }; do echo --fail "$d=5"; done) \
  --expect-fail "$FAILS" --update-interval 2 --queue-interval 4 --awake 3 --lifetime 30 --max-seconds 120 \
  --out "$T/lwsum.json" >"$T/lwsim.out" 2>"$T/lwsim.log" &
LWPID=$!
SIM_TIMEOUT=130 sim --server "$DEV_URL" --devices "$T/ck.json" --concurrency 6 --target "$VC" \
  --admin "$ADMIN_URL" --token "$TOKEN" --rollout "$RID" --no-stop-on-pause --poll-interval 0.5 --retry-delay 0.5 \
  --max-retry-after 2 --install-seconds 0.1 --max-seconds 120 --seed 3 \
  --out "$T/cksum.json" >"$T/cksim.out" 2>"$T/cksim.log" &
CKPID=$!

# integrity failures: the rollout pauses on its failure rate; the operator
# resumes it (again, if the failures of the next wave pause it too)
wait_rollout_state "$RID" paused 60 || {
  devices_all "$T/stuck.json" "rollout=$RID"
  jq -c '.[] | select(.state != "succeeded") | [.id, .state, .reason, .version, .lwm2m.fw_state, .lwm2m.fw_update_result, .lwm2m.firmware_version, .lwm2m.registered]' <"$T/stuck.json" | sed 's/^/# /' | head -40
}
expect_eq "Update Result 5 reports: the rollout pauses" paused "$(rollout_field "$RID" .state)"
echo "# paused after $(elapsed_since "$START") s: $(rollout_field "$RID" .reason)"
expect_match "... on its failure rate" "max_failure_rate" "$(rollout_field "$RID" .reason)"
RESUMES=0
while kill -0 "$LWPID" 2>/dev/null || kill -0 "$CKPID" 2>/dev/null; do
  if [ "$(rollout_field "$RID" .state)" = paused ]; then
    rollout_action "$RID" resume
    RESUMES=$((RESUMES + 1))
  fi
  sleep 0.5
done
echo "# resumed $RESUMES times"
expect_ne "resumed at least once" 0 "$RESUMES"
wait "$LWPID"
LW_RC=$?
wait "$CKPID"
CK_RC=$?
echo "# lwm2m sim: exit $LW_RC $(cat "$T/lwsim.out")"
echo "# check-in sim: exit $CK_RC $(jq -c '.totals.outcomes' <"$T/cksum.json" 2>/dev/null)"
expect_eq "LwM2M simulator: 25 on the target, 5 failed" 0 "$LW_RC"
if [ "$LW_RC" != 0 ]; then
  for d in $(jq -r '.devices[] | select(.outcome == "running") | .id' <"$T/lwsum.json"); do
    dev_get "$d"
    echo "# $d: $(jq -c '{state, reason, version, lwm2m}' <"$BODY")"
    dev_events "$d" "$T/ev-$d.json"
    echo "# $d: $(jq -c '[.events[] | [.kind, .detail]]' <"$T/ev-$d.json" | tail -c 1500)"
  done
fi
expect_eq "check-in simulator: all on the target" 0 "$CK_RC"
wait_rollout_state "$RID" completed 30
expect_eq "the rollout completes" completed "$(rollout_field "$RID" .state)"
echo "# completed after $(elapsed_since "$START") s"
devices_all "$T/all.json" "rollout=$RID" || fail "list the rollout's devices"
expect_eq "25 LwM2M devices succeeded on C" 25 \
  "$(jq "[.[] | select((.id|startswith(\"lw\")) and .state == \"succeeded\" and .version == \"$VC\")] | length" <"$T/all.json")"
expect_eq "5 LwM2M devices failed with 710 (Update Result 5)" 5 \
  "$(jq '[.[] | select(.state == "failed" and .last_result.code == 710)] | length' <"$T/all.json")"
expect_eq "6 check-in devices succeeded" 6 \
  "$(jq '[.[] | select((.id|startswith("ck")) and .state == "succeeded")] | length' <"$T/all.json")"
expect_eq "queue-mode devices show binding UQ" 5 \
  "$(jq '[.[] | select(.lwm2m.binding == "UQ")] | length' <"$T/all.json")"
expect_eq "the TLV devices' version was read (/3/0/3 in TLV)" 5 \
  "$(jq "[.[] | select((.id == \"lw04\" or .id == \"lw14\" or .id == \"lw24\" or .id == \"lw06\" or .id == \"lw16\") and .lwm2m.firmware_version == \"$VC\")] | length" <"$T/all.json")"
expect_eq "/5/0/8 read: CoAP and HTTP" "[0,2]" "$(jq -c '[.[] | select(.id == "lw00")][0].lwm2m.fw_protocols' <"$T/all.json")"
expect_eq "downloads over CoAP for the transport coap devices" 3 \
  "$(jq '[.[] | select(.transport == "coap" and .state == "succeeded" and .progress.protocol == "coap")] | length' <"$T/all.json")"
dev_events lw00 "$T/ev.json"
expect_match "events: register, write, execute, hop confirmed" "lwm2m_register.*lwm2m_write.*lwm2m_execute.*hop_confirmed" \
  "$(jq -r '[.events[].kind] | join(" ")' <"$BODY" 2>/dev/null)"
expect_ne "metric: notifications counted" 0 "$(metric dfotad_lwm2m_notifications_total)"
# the one-shot coap-client registered over CoAPS is gone when dfotad reads it
expect_match "metric: no request timed out but the CoAPS one-shot client's" '^[01]$' \
  "$(metric 'dfotad_lwm2m_requests_total{result="timeout"}')"
expect_match "metric: requests answered" '^[0-9]{3,}$' "$(metric 'dfotad_lwm2m_requests_total{result="ok"}')"
expect_eq "nothing was sent to a queue-mode device asleep" 0 \
  "$(jq .totals.dropped_asleep <"$T/lwsum.json" 2>/dev/null)"
expect_eq "queue-mode devices succeeded" 5 \
  "$(jq '[.[] | select(.lwm2m.binding == "UQ" and .state == "succeeded")] | length' <"$T/all.json")"

# ---- cancel: an empty Package URI stops a download in progress -----------
dev_put lwc "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"trigger\":\"lwm2m\"}"
rollout_create "{\"name\":\"cancel\",\"model\":\"$MODEL\",\"target_version\":\"$VB\",
  \"selector\":{\"devices\":[\"lwc\"]},\"waves\":[100]}" || fail "cancel rollout created"
rollout_action "$RID" start
echo '[{"id":"lwc","version":"'"$VA"'"}]' >"$T/lwc.json"
timeout -k 5 40 "$PYTHON" "$LWSIM" --server "$COAP" --devices "$T/lwc.json" --chain "$VA,$VB" \
  --target "$VB" --slow lwc=30 --update-interval 2 --max-seconds 30 --linger 0 \
  --out "$T/lwcsum.json" >/dev/null 2>&1 &
LWCPID=$!
_lwc_downloading() { [ "$(dev_field lwc .lwm2m.fw_state)" = 1 ]; }
wait_until 20 _lwc_downloading
expect_eq "lwc is downloading (/5 State 1)" 1 "$(dev_field lwc .lwm2m.fw_state)"
rollout_action "$RID" cancel
_lwc_idle() { [ "$(dev_field lwc .lwm2m.fw_state)" = 0 ]; }
wait_until 15 _lwc_idle
expect_eq "after the rollout's cancel dfotad writes an empty Package URI: /5 back to idle" 0 \
  "$(dev_field lwc .lwm2m.fw_state)"
dev_events lwc "$T/ev-lwc.json"
expect_eq "... with an lwm2m_cancel event" 1 \
  "$(jq '[.events[] | select(.kind == "lwm2m_cancel")] | length' <"$T/ev-lwc.json")"
kill "$LWCPID" 2>/dev/null
wait "$LWCPID" 2>/dev/null

# ---- interoperability: lwm2m-node-lib's client (npm), plain CoAP ---------
npm_lwm2m() {
  local cache=${DFOTAD_NPM_CACHE:-/tmp/dfotad-npm-cache}
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || return 1
  if [ ! -d "$cache/node_modules/lwm2m-node-lib" ]; then
    mkdir -p "$cache" && (cd "$cache" && timeout 180 npm install --no-audit --no-fund --silent \
      lwm2m-node-lib >/dev/null 2>&1) || return 1
  fi
  export NODE_PATH="$cache/node_modules"
}
if npm_lwm2m; then
  dev_put nodelw "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"trigger\":\"lwm2m\",\"lwm2m_endpoint\":\"node-client-1\",\"transport\":\"http\"}"
  rollout_create "{\"name\":\"node\",\"model\":\"$MODEL\",\"target_version\":\"$VB\",
    \"selector\":{\"devices\":[\"nodelw\"]},\"waves\":[100]}" || fail "node rollout created"
  rollout_action "$RID" start
  timeout -k 5 70 node "$LIB_DIR/lwm2m_node.js" 127.0.0.1 "$COAP_PORT" node-client-1 "$VA" "$VB" \
    "$(udp_ports 1)" 60 >"$T/node.out" 2>"$T/node.err"
  NODE_RC=$?
  echo "# lwm2m-node-lib client: exit $NODE_RC $(tail -n 1 "$T/node.out")"
  expect_eq "lwm2m-node-lib client: driven through /5 onto B" 0 "$NODE_RC"
  wait_rollout_state "$RID" completed 15
  expect_eq "... its rollout completes" completed "$(rollout_field "$RID" .state)"
  expect_eq "... the device succeeded on B" "succeeded $VB" "$(dev_field nodelw .state) $(dev_field nodelw .version)"
else
  skip "lwm2m-node-lib interop" "node or npm cannot install it here"
fi
stop_dfotad TERM 15
finish
