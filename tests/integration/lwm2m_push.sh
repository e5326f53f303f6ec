#!/bin/sh
# lwm2m_push.sh: in-band push (issue 15): a rollout over LwM2M devices of
# which some take firmware only pushed (/5/0/9 = 1) and the others pull it
# from the Package URI (/5/0/9 = 2). dfotad writes the package into the
# pushers' /5/0/0 block by block (Block1, one block in flight), from the
# package's mapping; the simulator (tests/sim/lwm2msim.py) runs the real
# /5 state machine on the blocks. Covered:
# - pushers and pullers in one rollout, every device succeeded on B, each
#   pushed package the uploaded one (SHA-256), pullers never pushed to;
# - a device that takes 256-byte blocks at most: its 4.13 to the first
#   1024-byte block is honored, the push goes on in 256-byte blocks;
# - a queue-mode device that falls asleep mid-push: the unanswered block
#   goes again once it listens (libcoap's retransmission, or dfotad's copy
#   at its next Update) and the push resumes there (one push, not two);
#   meanwhile its progress is the blocks it acknowledged;
# - progress is what the devices acknowledged: CoAP bytes sent and
#   downloads in /metrics, the device's progress.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"
. "$(dirname "$0")/coap_lib.sh"

lwm2m_start || bail "dfotad starts with [coap] lwm2m = yes"
SIZE=20480
mkpkg "$VA" "$VB" "$SIZE" || bail "package A -> B"
SHA=$(sha256sum "$T/pkg-$VA-$VB.bin" | cut -d' ' -f1)

PUSH="pu0,pu1,pu2,pu3"
PULL="pl0,pl1"
IDS="$PUSH,$PULL"
for d in ${IDS//,/ }; do
  dev_put "$d" "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"trigger\":\"lwm2m\",\"transport\":\"http\"}"
done
jq -nc --arg ids "$IDS" --arg v "$VA" '$ids | split(",") | map({id: ., version: $v})' >"$T/devs.json"
timeout -k 5 110 "$PYTHON" "$LWSIM" --server "$COAP" --devices "$T/devs.json" \
  --chain "$VA,$VB" --target "$VB" --update-interval 1 --queue-interval 3 --awake 2 \
  --lifetime 30 --max-seconds 90 --linger 2 --push "$PUSH" --push-szx pu2=4 \
  --queue pu3 --push-nap pu3=5 --out "$T/push.json" >"$T/push.stdout" 2>"$T/push.log" &
LWPID=$!
registered() {
  local d
  for d in ${IDS//,/ }; do
    [ "$(dev_field "$d" .lwm2m.fw_state)" = 0 ] || return 1
  done
}
wait_until 30 registered
expect_eq "6 devices registered, /5 State read" "0 0 0 0 0 0" \
  "$(for d in ${IDS//,/ }; do dev_field "$d" .lwm2m.fw_state; done | xargs)"
expect_eq "the pushers' /5/0/9 read: push only (1)" "1 1 1 1" \
  "$(for d in ${PUSH//,/ }; do dev_field "$d" .lwm2m.fw_delivery; done | xargs)"
expect_eq "the pullers': both (2)" "2 2" \
  "$(for d in ${PULL//,/ }; do dev_field "$d" .lwm2m.fw_delivery; done | xargs)"
BYTES0=$(metric 'dfotad_bytes_sent_total{protocol="coap"}')
DL0=$(metric 'dfotad_downloads_total{protocol="coap"}')
sleep 1 # their first check-in (no rollout yet) is behind them
rollout_create "{\"name\":\"push\",\"model\":\"$MODEL\",\"target_version\":\"$VB\",
  \"selector\":{\"devices\":$(jq -c '[.[].id]' <"$T/devs.json")},\"waves\":[100]}" ||
  bail "rollout created" "$(cat "$BODY")"
rollout_action "$RID" start
START=$(date +%s.%N)
# pu3 sleeps through block 5: meanwhile its progress is the five blocks it
# acknowledged (bytes that reached it, not bytes sent)
_pu3_at() { [ "$(dev_field pu3 .progress.bytes_served)" = 5120 ]; }
wait_until 30 _pu3_at
expect_eq "pu3 asleep mid-push: its progress, the 5 blocks it acknowledged, over coap" "5120 25 coap" \
  "$(dev_field pu3 '"\(.progress.bytes_served) \(.progress.percent) \(.progress.protocol)"')"
wait_rollout_state "$RID" completed 75
expect_eq "the rollout completes" completed "$(rollout_field "$RID" .state)"
echo "# completed after $(elapsed_since "$START") s"
wait "$LWPID"
expect_eq "the simulator: all 6 on B" 0 $?
expect_eq "every device succeeded on B" 6 \
  "$(for d in ${IDS//,/ }; do echo "$(dev_field "$d" .state) $(dev_field "$d" .version)"; done | grep -c "^succeeded $VB$")"
jq -c '.devices[] | [.id, .pushes, .blocks, .downloads, .log]' <"$T/push.json" | sed 's/^/# /'
dev_events pu3 "$T/ev-pu3.json"
jq -c '[.events[] | [.kind, .detail]]' <"$T/ev-pu3.json" | sed 's/^/# pu3: /'
sim_dev() { jq -c --arg d "$1" ".devices[] | select(.id == \$d) | $2" <"$T/push.json"; }
for d in ${PUSH//,/ }; do
  expect_eq "$d: pushed once, the uploaded package (SHA-256)" "[\"$SHA\"]" "$(sim_dev "$d" .pushed_sha)"
done
for d in ${PULL//,/ }; do
  expect_eq "$d: pulled from the Package URI, never pushed to" "1 0" \
    "$(sim_dev "$d" .downloads) $(sim_dev "$d" .pushes)"
done
expect_eq "pu0: 20 blocks of 1024" 20 "$(sim_dev pu0 .blocks)"
expect_eq "pu2 (256 bytes at most): 80 blocks of 256" 80 "$(sim_dev pu2 .blocks)"
dev_events pu2 "$T/ev-pu2.json"
expect_eq "... after its 4.13 (an lwm2m_push_size event)" 1 \
  "$(jq '[.events[] | select(.kind == "lwm2m_push_size")] | length' <"$T/ev-pu2.json")"
dev_events pu3 "$T/ev-pu3.json"
expect_eq "pu3 slept through block 5" 1 "$(jq .totals.napped <"$T/push.json")"
# the block reaches it again once it listens: libcoap's retransmission,
# or dfotad's copy at its next Update (lwm2m_retry), whichever comes first
echo "# pu3: block 5 sent again at its next Update: $(jq 'any(.events[]; .kind == "lwm2m_retry")' <"$T/ev-pu3.json")"
# (the block sent again and libcoap's retransmission of the first one may
# both arrive once it listens: 20 or 21 blocks; a push started over would
# be 26 or more)
expect_match "... and the push resumed there: one push, 20 blocks taken (+1 repeated)" '^1 2[01]$' \
  "$(sim_dev pu3 .pushes) $(sim_dev pu3 .blocks)"
check "pu0: lwm2m_push and lwm2m_pushed events" \
  jq -e 'any(.events[]; .kind == "lwm2m_push") and any(.events[]; .kind == "lwm2m_pushed")' \
  <(dev_events pu0 "$T/ev-pu0.json" && cat "$T/ev-pu0.json")
# the accounting: what the pushers acknowledged, over coap
expect_eq "CoAP bytes sent: the 4 pushes" $((BYTES0 + 4 * SIZE)) "$(metric 'dfotad_bytes_sent_total{protocol="coap"}')"
expect_eq "CoAP downloads: 4" $((DL0 + 4)) "$(metric 'dfotad_downloads_total{protocol="coap"}')"
stop_dfotad TERM 15
finish
