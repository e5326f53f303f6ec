#!/bin/bash
# console.sh: the operator's console in a real browser (Debian's chromium,
# headless, through puppeteer-core; tests/console/browser.js): sign in,
# upload, a rollout refused at its field then created, started and watched
# to 100 % through the event stream while the simulator plays the devices,
# a failed device's timeline, device-made strings shown as text (a version
# "<svg/onload=alert(1)>", a check-in with "<script>" and a report carrying
# "<script>"). Fails on any console error, CSP violation or dialog.
# Needs tests/deps.sh --console (chromium, node, the npm packages); skipped
# (77) without them. Screenshots: $T/shots (DFOTAD_KEEP=1 keeps them).
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"
. "$(dirname "$0")/coap_lib.sh"

CONSOLE_DIR="$LIB_DIR/../console"
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if ! command -v node >/dev/null 2>&1 || [ ! -x "$CHROMIUM" ] ||
  [ ! -d "$CONSOLE_DIR/node_modules/puppeteer-core" ]; then
  echo "$TEST_NAME: needs node, $CHROMIUM and tests/console/node_modules: run tests/deps.sh --console" >&2
  exit 77
fi

COAP_PORT=$(udp_ports 1)
fleet_start "[coap]" "listen = 127.0.0.1:$COAP_PORT" "lwm2m = yes" "lwm2m_insecure = yes" ||
  bail "dfotad starts"

# eight devices on A, and one whose version is markup (no path from it)
python3 - "$MODEL" "$VA" >"$T/devices.json" <<'PY'
import json, sys
model, va = sys.argv[1], sys.argv[2]
devs = [{"id": "d%02d" % i, "model": model, "version": va, "secret": "console-secret-%02d-0123456789" % i}
        for i in range(1, 9)]
devs.append({"id": "xss1", "model": model, "version": "<svg/onload=alert(1)>",
             "secret": "console-secret-xss1-0123456789"})
print(json.dumps(devs))
PY
api_json_file POST /api/v1/devices "$T/devices.json"
expect_eq "bulk import: 200" 200 "$STATUS"
jq '[.[] | {id, secret, version}]' <"$T/devices.json" >"$T/sim.json"

# another model's device checks in with "<script>" as its version, and
# sends a report carrying "<script>" text (refused: not a FOTA line)
S2='console-secret-xss2-0123456789'
dev_put xss2 "{\"model\":\"XSS-1\",\"version\":\"V1\",\"secret\":\"$S2\"}"
expect_eq "PUT xss2: 201" 201 "$STATUS"
checkin xss2 "$S2" '<script>alert(2)</script>'
expect_eq "xss2 checks in with <script> as its version: 204" 204 "$STATUS"
report xss2 "$S2" "$(urcs '+QIND: "FOTA","<script>alert(3)</script>",0' '<script>alert(4)</script>')"
expect_eq "a report of <script> text: 400, nothing kept" 400 "$STATUS"
expect_eq "xss2's version is the text it sent" '<script>alert(2)</script>' "$(dev_field xss2 .version)"

# an LwM2M device registers (by hand, raw CoAP): its page shows the
# registration; its object links ("</5/0>") are device text, shown as text
dev_put lw1 "{\"model\":\"LW-1\",\"version\":\"V1\",\"lwm2m_endpoint\":\"urn:dev:lw1\"}"
expect_eq "PUT lw1 (an lwm2m_endpoint): 201" 201 "$STATUS"
LIB_DIR="$LIB_DIR" "$PYTHON" - "$COAP_PORT" >"$T/rd.out" 2>&1 <<'PYEOF'
import os, socket, sys
sys.path.insert(0, os.environ["LIB_DIR"])
from coap_raw import build, parse
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
data, mid, tok = build("/rd?ep=urn:dev:lw1&lt=300&lwm2m=1.1&b=U", code=2, payload=b"</1/0>,</3/0>,</5/0>")
s.sendto(data, ("127.0.0.1", int(sys.argv[1])))
while True:
    r = parse(s.recv(4096))
    if r["type"] == 2 and r["mid"] == mid:
        print("register", r["code"])
        break
PYEOF
expect_eq "lw1 registers over CoAP: 2.01" "register 2.01" "$(cat "$T/rd.out")"

random_file "$T/pkg.bin" 65536
mkdir -p "$T/shots"
SIM_CMD=$(jq -cn --arg py "$PYTHON" --arg sim "$SIM" --arg dev "$DEV_URL" --arg d "$T/sim.json" \
  --arg adm "$ADMIN_URL" --arg tok "$STATE/admin.token" --arg vc "$VC" \
  '[$py, $sim, "--server", $dev, "--devices", $d, "--concurrency", "9", "--mode", "whole",
    "--target", $vc, "--faults", "506:1", "--seed", "7", "--max-seconds", "40",
    "--install-seconds", "0.3", "--poll-interval", "0.5", "--admin", $adm, "--token-file", $tok]')
start=$(date +%s.%N)
if ADMIN_URL="$ADMIN_URL" TOKEN="$TOKEN" PKG_FILE="$T/pkg.bin" MODEL="$MODEL" FROM="$VA" TO="$VC" \
  SIM_CMD="$SIM_CMD" OUT="$T/shots" CHROMIUM="$CHROMIUM" \
  timeout -k 5 100 node "$CONSOLE_DIR/browser.js" >"$T/browser.out" 2>&1; then
  pass "the browser run ($(elapsed_since "$start") s)"
else
  fail "the browser run" "$(cat "$T/browser.out")"
fi
sed 's/^/# /' "$T/browser.out"
check "screenshots saved" test -s "$T/shots/rollout.png"
[ -n "${CONSOLE_SHOTS:-}" ] && cp "$T"/shots/*.png "$CONSOLE_SHOTS"/ 2>/dev/null
finish
