#!/bin/sh
# lwm2m_steps.sh: how dfotad's LwM2M server paces a rollout's steps (issue
# 15), with simulated devices (tests/sim/lwm2msim.py) on [coap]:
# - a rollout's start wakes its registered LwM2M devices: the Package URI
#   goes out at once (a queue-mode device gets it at its next Update), not
#   at the next lwm2m_poll (set to 300 s here, far past the test);
# - a device that refuses a Content-Format (4.15 to a Write, 4.06 to a
#   Read's Accept) gets the next: TLV, SenML JSON, SenML CBOR;
# - a queue-mode device that sleeps through a Write gets it again once it
#   listens (at its next Update, or libcoap's retransmission); one that
#   never hears it is given up after LWM2M_RETRIES
#   sends, reported as 703 (a failed request) and ends failed;
# - Update (/5/0/2) is executed only while the rollout runs: a device that
#   finishes its download while the rollout is paused waits for the
#   resume (the rollout's time window holds it the same way).
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"
. "$(dirname "$0")/coap_lib.sh"

lwm2m_start || bail "dfotad starts with [coap] lwm2m = yes"
mkpkg "$VA" "$VB" 20480 || bail "package A -> B"

# lwsim IDS OUT SECONDS ARGS...: the simulator over devices IDS (comma
# separated, all on A), in the background (LWPID).
lwsim() {
  local ids=$1 out=$2 secs=$3
  shift 3
  jq -nc --arg ids "$ids" --arg v "$VA" '$ids | split(",") | map({id: ., version: $v})' >"$out.devices"
  timeout -k 5 $((secs + 20)) "$PYTHON" "$LWSIM" --server "$COAP" --devices "$out.devices" \
    --chain "$VA,$VB" --target "$VB" --update-interval 1 --queue-interval 3 --awake 2 \
    --lifetime 30 --max-seconds "$secs" --linger 2 --out "$out" "$@" >"$out.stdout" 2>"$out.log" &
  LWPID=$!
}
# registered ID...: every one registered, its /5 State read
registered() {
  local d
  for d in "$@"; do
    [ "$(dev_field "$d" .lwm2m.fw_state)" = 0 ] || return 1
  done
}
has_event() { dev_events "$1" "$T/ev-$1.json" && jq -e --arg k "$2" 'any(.events[]; .kind == $k)' <"$T/ev-$1.json" >/dev/null; }
show() {
  local d
  for d in "$@"; do
    dev_get "$d"
    echo "# $d: $(jq -c '{state, reason, version, last_result, lwm2m: (.lwm2m | {fw_state, fw_update_result, firmware_version})}' <"$BODY")"
    dev_events "$d" "$T/ev-$d.json"
    echo "# $d: $(jq -c '[.events[] | [.kind, .detail]]' <"$T/ev-$d.json" | tail -c 1200)"
  done
}

# ---- a start wakes the wave; formats; a queue-mode device's missed Write ----
IDS="st0,st1,st2,st3,st4,st5"
for d in ${IDS//,/ }; do
  dev_put "$d" "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"trigger\":\"lwm2m\",\"transport\":\"http\"}"
done
lwsim "$IDS" "$T/steps.json" 90 --queue st1,st5 --nap st5=1 \
  --formats st2=11542 --formats st3=110 --formats st4=112
wait_until 30 registered st0 st1 st2 st3 st4 st5
expect_eq "6 devices registered, /5 State read (in TLV, SenML JSON, SenML CBOR too)" \
  "0 0 0 0 0 0" "$(for d in ${IDS//,/ }; do dev_field "$d" .lwm2m.fw_state; done | xargs)"
sleep 1 # their first check-in (no rollout yet) is behind them: the next is 300 s away
rollout_create "{\"name\":\"wake\",\"model\":\"$MODEL\",\"target_version\":\"$VB\",
  \"selector\":{\"devices\":$(jq -c . <<<"\"$IDS\"" | jq -c 'split(",")')},\"waves\":[100]}" ||
  bail "rollout created" "$(cat "$BODY")"
rollout_action "$RID" start
START=$(date +%s.%N)
wait_rollout_state "$RID" completed 75
expect_eq "the start wakes the devices: the rollout completes long before lwm2m_poll (300 s)" \
  completed "$(rollout_field "$RID" .state)"
echo "# completed after $(elapsed_since "$START") s"
wait "$LWPID"
expect_eq "the simulator: all 6 on B" 0 $?
[ "$(rollout_field "$RID" .state)" = completed ] || show st0 st1 st2 st3 st4 st5
expect_eq "every device succeeded on B" 6 \
  "$(for d in ${IDS//,/ }; do echo "$(dev_field "$d" .state) $(dev_field "$d" .version)"; done | grep -c "^succeeded $VB$")"
# the Content-Formats of the writes each device took
fmts() { jq -c --arg d "$1" '.devices[] | select(.id == $d) | .write_formats | unique' <"$T/steps.json"; }
expect_eq "st0's Package URI written in text/plain" "[0]" "$(fmts st0)"
expect_eq "st2 refused text/plain: written in TLV" "[11542]" "$(fmts st2)"
expect_eq "st3: in SenML JSON" "[110]" "$(fmts st3)"
expect_eq "st4: in SenML CBOR" "[112]" "$(fmts st4)"
jq -c '.devices[] | [.id, .write_formats, .log]' <"$T/steps.json" | sed 's/^/# /'
expect_eq "Write-Attributes on State and Update Result before they are observed: pmin 1, pmax the lifetime" \
  '{"5/0/3":["pmax=30","pmin=1"],"5/0/5":["pmax=30","pmin=1"]}' \
  "$(jq -c '.devices[] | select(.id == "st0") | .attrs | map_values(unique)' <"$T/steps.json")"
for d in st2 st3 st4; do
  expect_eq "$d's firmware version read in its format" "$VB" "$(dev_field "$d" .lwm2m.firmware_version)"
  check "$d: an lwm2m_format event" has_event "$d" lwm2m_format
done
expect_ne "the devices refused formats" 0 "$(jq .totals.refused_format <"$T/steps.json")"
expect_eq "st5 slept through one write" 1 "$(jq .totals.napped <"$T/steps.json")"
# it hears the write again once it listens: dfotad's copy at its next
# Update (lwm2m_retry) when that Update comes MISSED_MS after the write or
# later, else libcoap's own retransmission (either may come first)
expect_eq "st5: the write reached it after its nap" true \
  "$(jq '.devices[] | select(.id == "st5") | .log | (index("slept through a write") // 99) < (map(startswith("write ")) | rindex(true) // -1)' <"$T/steps.json")"
echo "# st5: the write sent again at its next Update: $(has_event st5 lwm2m_retry && echo yes || echo "no (libcoap's retransmission came first)")"
expect_eq "st5 succeeded all the same" succeeded "$(dev_field st5 .state)"

# ---- a queue-mode device that never hears the Write: given up ------------
dev_put gu0 "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"trigger\":\"lwm2m\",\"transport\":\"http\"}"
lwsim gu0 "$T/giveup.json" 25 --queue gu0 --nap gu0=100
wait_until 20 registered gu0
rollout_create "{\"name\":\"giveup\",\"model\":\"$MODEL\",\"target_version\":\"$VB\",
  \"selector\":{\"devices\":[\"gu0\"]},\"waves\":[100],\"max_attempts\":1}" || fail "give-up rollout"
rollout_action "$RID" start
_gu_failed() { [ "$(dev_field gu0 .state)" = failed ]; }
wait_until 40 _gu_failed
expect_eq "a write never heard: the device ends failed" "failed 703" \
  "$(dev_field gu0 .state) $(dev_field gu0 .last_result.code)"
check "... with an lwm2m_gave_up event" has_event gu0 lwm2m_gave_up
expect_eq "... after 1 + 3 sends" 3 \
  "$(jq '[.events[] | select(.kind == "lwm2m_retry")] | length' <"$T/ev-gu0.json")"
wait "$LWPID" 2>/dev/null
# (libcoap's retransmissions of each are slept through too: 4 or more)
expect_match "... none of which it heard" '^([4-9]|[1-9][0-9])$' "$(jq .totals.napped <"$T/giveup.json")"

# ---- Update only while the rollout runs ---------------------------------
dev_put hd0 "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"trigger\":\"lwm2m\",\"transport\":\"http\"}"
lwsim hd0 "$T/hold.json" 60 --slow hd0=4
wait_until 20 registered hd0
rollout_create "{\"name\":\"hold\",\"model\":\"$MODEL\",\"target_version\":\"$VB\",
  \"selector\":{\"devices\":[\"hd0\"]},\"waves\":[100]}" || fail "hold rollout"
rollout_action "$RID" start
_hd_state() { [ "$(dev_field hd0 .lwm2m.fw_state)" = "$1" ]; }
wait_until 15 _hd_state 1
expect_eq "hd0 downloads (State 1)" 1 "$(dev_field hd0 .lwm2m.fw_state)"
rollout_action "$RID" pause
expect_eq "the rollout pauses" paused "$(rollout_field "$RID" .state)"
wait_until 20 _hd_state 2
expect_eq "hd0 finished its download while paused (State 2)" 2 "$(dev_field hd0 .lwm2m.fw_state)"
sleep 3
expect_eq "... and is not told to update while paused" "2 downloaded" \
  "$(dev_field hd0 .lwm2m.fw_state) $(dev_field hd0 .state)"
check "... an lwm2m_execute_held event" has_event hd0 lwm2m_execute_held
check_not "... no lwm2m_execute" has_event hd0 lwm2m_execute
rollout_action "$RID" resume
wait_rollout_state "$RID" completed 30
expect_eq "the resume lets it update: the rollout completes" completed "$(rollout_field "$RID" .state)"
expect_eq "hd0 succeeded on B" "succeeded $VB" "$(dev_field hd0 .state) $(dev_field hd0 .version)"
wait "$LWPID" 2>/dev/null
stop_dfotad TERM 15
finish
