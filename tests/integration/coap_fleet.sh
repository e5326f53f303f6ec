#!/bin/sh
# coap_fleet.sh: a rollout over simulated CoAP(S) devices (tests/sim):
# 20 devices, 14 with transport coap (block-wise from their breakpoint,
# some cut mid-way and resumed) and 6 with transport coaps (DTLS PSK,
# through coap-client-openssl). Every device ends on the target, every
# download recorded at 100 % with protocol coap or coaps, and the rollout
# completes.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"
. "$(dirname "$0")/coap_lib.sh"

coap_start || bail "dfotad starts with [coap] and [coaps]"
mkpkg "$VA" "$VC" 61440 || bail "package uploaded"

N=20
python3 - "$N" "$VA" "$MODEL" >"$T/bulk.json" <<'PYEOF'
import json, sys
n, va, model = int(sys.argv[1]), sys.argv[2], sys.argv[3]
out = []
for i in range(n):
    d = {"id": "coapdev%02d" % i, "model": model, "version": va,
         "transport": "coaps" if i < 6 else "coap"}
    if i < 6:
        key = "sim-psk-key-%02d-0123456" % i
        d["psk"] = key.encode().hex()
    out.append(d)
json.dump(out, sys.stdout)
PYEOF
api_json_file POST /api/v1/devices "$T/bulk.json"
expect_eq "bulk import with PSKs: 200" 200 "$STATUS"
# the keys as text again (the simulator hands them to coap-client as text)
python3 - "$T/bulk.json" "$BODY" >"$T/devices.json" <<'PYEOF'
import json, sys
devs = json.load(open(sys.argv[1]))
res = json.load(open(sys.argv[2]))
out = []
for d in devs:
    e = {"id": d["id"], "version": d["version"], "secret": res["secrets"][d["id"]]}
    if "psk" in d:
        e["psk"] = bytes.fromhex(d["psk"]).decode()
        e["psk_identity"] = d["id"]
    out.append(e)
json.dump(out, sys.stdout)
PYEOF
rollout_create "{\"name\":\"coap fleet\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"devices\":$(jq -c '[.[].id]' <"$T/devices.json")},\"waves\":[100],
  \"retry_backoff\":1}" ||
  bail "rollout created" "$(cat "$BODY")"
rollout_action "$RID" start

SIM_TIMEOUT=100 sim --server "$DEV_URL" --devices "$T/devices.json" --concurrency 10 \
  --faults "drop:30%" --target "$VC" --admin "$ADMIN_URL" --token "$TOKEN" --rollout "$RID" \
  --poll-interval 0.3 --retry-delay 0.3 --max-retry-after 2 --install-seconds 0.1 \
  --max-seconds 80 --seed 5 --out "$T/summary.json" >"$T/sim.out" 2>"$T/sim.log"
SIM_RC=$?
echo "# simulator: exit $SIM_RC: $(jq -c '.totals | {outcomes, requests, resumes}' <"$T/summary.json" 2>/dev/null)"
expect_eq "simulator exit status" 0 "$SIM_RC"
expect_eq "simulator: every device on the target" "$N" \
  "$(jq '[.devices[] | select(.outcome == "on_target")] | length' <"$T/summary.json" 2>/dev/null)"
wait_rollout_state "$RID" completed 10
expect_eq "the rollout completes" completed "$(rollout_field "$RID" .state)"
devices_all "$T/all.json" "rollout=$RID" || fail "list the rollout's devices"
expect_eq "14 coap devices: succeeded at 100 % over coap" 14 \
  "$(jq '[.[] | select(.state == "succeeded" and .progress.percent == 100 and .progress.protocol == "coap")] | length' <"$T/all.json")"
expect_eq "6 coaps devices: succeeded at 100 % over coaps" 6 \
  "$(jq '[.[] | select(.state == "succeeded" and .progress.percent == 100 and .progress.protocol == "coaps")] | length' <"$T/all.json")"
stop_dfotad TERM 15
finish
