#!/bin/sh
# ftp_rollout.sh: a rollout whose devices download over FTP(S). A download
# cut at about 40 % shows a percent near 40 (what TCP acknowledged on the
# data connection), then 100 % after a resume (REST); a simulated fleet of
# ftp and ftps devices completes the rollout.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"

P="$T/pki"
mkdir -p "$P"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$P/srv.key" -out "$P/srv.crt" >/dev/null 2>&1 || bail "certificate generated"
chmod 600 "$P/srv.key"

pick_ports
fleet_start "[ftp]" "data_timeout = 10" \
  "[ftps]" "listen = $FTPS" "cert = $P/srv.crt" "key = $P/srv.key" ||
  bail "dfotad starts with [ftp] and [ftps]"
load_token || bail "token readable"
SIZE=1048576
mkpkg "$VA" "$VC" $SIZE || bail "upload A -> C" "status $STATUS"
PKG_SHA=$(sha "$T/pkg-$VA-$VC.bin")

N=8
python3 - "$N" "$MODEL" "$VA" >"$T/devices.json" <<'EOF'
import json, sys
n, model, va = int(sys.argv[1]), sys.argv[2], sys.argv[3]
print(json.dumps([{"id": "d%02d" % i, "version": va, "secret": "secret-d%02d-0123456789" % i,
                   "transport": "ftp" if i % 2 else "ftps"} for i in range(n)]))
EOF
for i in $(seq 0 $((N - 1))); do
  id=$(printf 'd%02d' "$i")
  tr=$([ $((i % 2)) = 1 ] && echo ftp || echo ftps)
  dev_put "$id" "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"group\":\"g\",\"transport\":\"$tr\",
    \"secret\":\"secret-$id-0123456789\"}"
done
dev_put r1 "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"group\":\"g\",\"transport\":\"ftp\",
  \"secret\":\"secret-r1-0123456789\"}"
expect_eq "PUT r1 (transport ftp): 201" 201 "$STATUS"
ids=$(jq -c '[.[].id] + ["r1"]' <"$T/devices.json")
rollout_create "{\"name\":\"ftp\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"devices\":$ids},\"waves\":[100],\"max_attempts\":5,\"timeout\":300,
  \"retry_backoff\":1}" || bail "create the rollout" "status $STATUS" "$(cat "$BODY")"
rollout_action "$RID" start
expect_eq "rollout running" running "$(json "$BODY" .state)"

# ---------------------------------------------------------------------------
# r1: cut at 40 %, then resumed with REST
checkin r1 secret-r1-0123456789 "$VA" -H 'Accept: application/json'
URL=$(json "$BODY" .url)
expect_match "r1: offered an ftp:// URL" "^ftp://r1:[a-z2-7]{24}@127\.0\.0\.1:$FTP_PORT/" "$URL"
sim download --url "$URL" --out "$T/r1.bin" --stop-at 0.4 --max-seconds 30 >"$T/r1-cut.json"
expect_eq "r1: download cut at 40 %" true "$(jq -r .aborted <"$T/r1-cut.json")"
_served_nonzero() { [ "$(dev_field r1 .progress.bytes_served)" -gt 0 ] 2>/dev/null; }
check "r1: the interrupted transfer is recorded" wait_until 5 _served_nonzero
dev_get r1 "$T/r1-cut-dev.json"
pct=$(json "$T/r1-cut-dev.json" .progress.percent)
echo "# r1: the client kept $(jq .position <"$T/r1-cut.json") bytes; the server: $(jq -c .progress <"$T/r1-cut-dev.json")"
check "r1: percent near 40 after a cut at 40 % (30..55: $pct)" test "${pct:-0}" -ge 30 -a "${pct:-0}" -le 55
expect_eq "r1: protocol ftp" ftp "$(json "$T/r1-cut-dev.json" .progress.protocol)"
expect_eq "r1: state downloading" downloading "$(json "$T/r1-cut-dev.json" .state)"

sim download --url "$URL" --out "$T/r1.bin" --breakpoint auto --sha256 "$PKG_SHA" \
  --max-seconds 30 >"$T/r1-resume.json"
expect_eq "r1: resumed (REST) download complete, sha256 right" "true true" \
  "$(jq -r '"\(.complete) \(.sha_ok)"' <"$T/r1-resume.json")"
_percent_100() { [ "$(dev_field r1 .progress.percent)" = 100 ]; }
check "r1: progress reaches 100 % (recorded within 5 s)" wait_until 5 _percent_100
dev_get r1 "$T/r1-done.json"
echo "# r1 after the resume: $(jq -c .progress <"$T/r1-done.json")"
check "r1: at least one resume" test "$(json "$T/r1-done.json" .progress.resumes)" -ge 1
report r1 secret-r1-0123456789 "$(urcs '+QIND: "FOTA","FTPEND",0' '+QIND: "FOTA","START"' '+QIND: "FOTA","END",0')"
expect_eq "r1: FTPEND,0 then END,0 -> updating" updating "$(json "$BODY" .state)"
checkin r1 secret-r1-0123456789 "$VC"
expect_eq "r1: on the new version: 204" 204 "$STATUS"

# ---------------------------------------------------------------------------
# the simulated fleet: ftp and ftps devices, whole and breakpoint downloads
SIM_TIMEOUT=70 sim --server "$DEV_URL" --devices "$T/devices.json" --concurrency "$N" \
  --mode whole --target "$VC" --admin "$ADMIN_URL" --token "$TOKEN" --rollout "$RID" \
  --poll-interval 0.3 --retry-delay 0.3 --max-retry-after 2 --install-seconds 0.1 \
  --max-seconds 45 --seed 3 --out "$T/summary.json" >"$T/sim.out" 2>"$T/sim.log"
SIM_RC=$?
echo "# simulator: exit $SIM_RC: $(jq -c '.totals | {outcomes, requests, statuses}' <"$T/summary.json" 2>/dev/null)"
expect_eq "simulator exit status" 0 "$SIM_RC"
expect_eq "simulator: every device on the target" "$N" \
  "$(jq '[.devices[] | select(.outcome == "on_target")] | length' <"$T/summary.json" 2>/dev/null)"
expect_eq "simulator saw no protocol anomalies" 0 "$(jq .totals.anomalies <"$T/summary.json" 2>/dev/null)"
wait_rollout_state "$RID" completed 10
rollout_get "$RID" "$T/rollout.json"
expect_eq "rollout completed" completed "$(json "$T/rollout.json" .state)"
expect_eq "rollout counts: all succeeded" $((N + 1)) "$(json "$T/rollout.json" .counts.succeeded)"
api GET /metrics
expect_match "/metrics: ftp downloads counted" 'dfotad_downloads_total\{protocol="ftp"\} [1-9]' "$(cat "$BODY")"
expect_match "/metrics: ftps downloads counted" 'dfotad_downloads_total\{protocol="ftps"\} [1-9]' "$(cat "$BODY")"

stop_dfotad
expect_eq "SIGTERM: exit 0" 0 "$DFOTAD_RC"
finish
