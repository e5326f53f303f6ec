#!/bin/sh
# crash.sh: kill -9 of dfotad during a 50 MiB upload (and during
# downloads); a restart on the same state dir lists no partial package,
# the database passes PRAGMA integrity_check, and what was stored before
# the crash is still listed and downloads byte-identical.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

CONF="$T/dfotad.conf"
base_config "$CONF"
start_dfotad "$CONF" || bail "dfotad starts"
load_token || bail "token readable"


# integrity DESC: PRAGMA integrity_check says ok.
integrity() {
  if ! command -v sqlite3 >/dev/null 2>&1; then
    skip "$1" "sqlite3 CLI not installed"
    return
  fi
  local out
  out=$(timeout 20 sqlite3 "$STATE/dfotad.db" 'PRAGMA integrity_check' 2>&1)
  expect_eq "$1" ok "$out"
}

# A package stored before the crash, downloaded a few times.
KEEP="$T/keep.bin"
random_file "$KEEP" $((3 * 1024 * 1024))
KEEP_SHA=$(sha "$KEEP")
upload "$KEEP" CRASH-KEEP v1 v2 keep.bin
expect_eq "upload before the crash: 201" 201 "$STATUS"
KEEP_ID=$PKG_ID
[ -n "$KEEP_ID" ] || bail "upload before the crash returned an id"
for i in 1 2 3; do dl "/p/$KEEP_ID"; done
pkg_json "$KEEP_ID"
REQ_BEFORE=$(json "$BODY" .stats.requests)
expect_eq "stats before the crash: 3 requests" 3 "$REQ_BEFORE"
check "dfotad.db exists" test -f "$STATE/dfotad.db"

# --- kill -9 during a 50 MiB upload --------------------------------------------
BIG="$T/big.bin"
random_file "$BIG" $((50 * 1024 * 1024))
start_slow_post "$ADMIN" "/api/v1/packages?model=CRASH&from=v1&to=v2" "$BIG" 4000000 "$TOKEN"
CURL_PID=$SLOW_PID
if wait_until 15 tmp_over $((4 * 1024 * 1024)); then
  pass "upload in progress (STATE/tmp has $(tmp_bytes) bytes)"
else
  fail "upload in progress" "STATE/tmp has $(tmp_bytes) bytes"
fi
kill9_dfotad
{
  kill -9 "$CURL_PID"
  wait "$CURL_PID"
} 2>/dev/null

start_dfotad "$CONF" || bail "dfotad restarts on the same state dir after kill -9"
integrity "after kill -9 during upload: PRAGMA integrity_check ok"
api GET /api/v1/packages
expect_eq "after restart: list 200" 200 "$STATUS"
expect_eq "after restart: only the package from before the crash is listed" "$KEEP_ID" \
  "$(jq -r '[.packages[].id] | join(" ")' <"$BODY")"
expect_eq "after restart: no CRASH package" 0 "$(pkg_count model=CRASH)"
expect_eq "after restart: STATE/packages holds only the earlier content" "$KEEP_SHA" \
  "$(ls "$STATE/packages" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')"
check "after restart: the partial upload is gone from STATE/tmp" wait_until 5 dir_empty "$STATE/tmp"
pkg_json "$KEEP_ID"
expect_eq "after restart: package status ok" ok "$(json "$BODY" .status)"
expect_eq "after restart: sha256 kept" "$KEEP_SHA" "$(json "$BODY" .sha256)"
check "after restart: flushed stats kept (requests >= $REQ_BEFORE)" \
  test "$(json "$BODY" .stats.requests)" -ge "$REQ_BEFORE"
dl "/p/$KEEP_ID"
expect_eq "after restart: GET 200" 200 "$STATUS"
check "after restart: byte-identical" cmp -s "$KEEP" "$BODY"
dl "/p/$KEEP_ID" -H "Range: bytes=1000000-1010239"
head -c 1010240 "$KEEP" | tail -c 10240 >"$T/seg.exp"
check "after restart: a segment is exact" cmp -s "$T/seg.exp" "$BODY"

# the interrupted model/from/to can be uploaded now
random_file "$T/crash.bin" 500000
upload "$T/crash.bin" CRASH v1 v2
expect_eq "upload of the interrupted model/from/to after restart: 201" 201 "$STATUS"
CRASH_ID=$PKG_ID

# --- kill -9 during downloads (statistics being written) ----------------------
pids=()
for i in 1 2 3 4; do
  (
    for ((off = 0; off < 3145728; off += 10240)); do
      curl -s --max-time 5 -o /dev/null -H "Range: bytes=$off-$((off + 10239))" \
        "http://$HTTP/p/$KEEP_ID" || exit 0
    done
  ) &
  pids+=($!)
  BG_PIDS+=($!)
done
# let some requests happen, and at least one statistics flush
sleep_until_requests() {
  pkg_json "$KEEP_ID"
  [ "$(json "$BODY" .stats.requests)" -ge $((REQ_BEFORE + 50)) ] 2>/dev/null
}
check "downloads running (>= 50 more requests counted)" wait_until 15 sleep_until_requests
kill9_dfotad
for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done

integrity "after kill -9 during downloads: PRAGMA integrity_check ok"
start_dfotad "$CONF" || bail "dfotad restarts after the second kill -9"
integrity "after the second restart: PRAGMA integrity_check ok (daemon running)"
api GET /api/v1/packages
expect_eq "after the second restart: both packages listed, oldest first" "$KEEP_ID $CRASH_ID" \
  "$(jq -r '[.packages[].id] | join(" ")' <"$BODY")"
dl "/p/$KEEP_ID"
check "after the second restart: byte-identical" cmp -s "$KEEP" "$BODY"
dl "/p/$CRASH_ID"
check "after the second restart: the other package byte-identical" cmp -s "$T/crash.bin" "$BODY"

stop_dfotad
expect_eq "SIGTERM: exit 0" 0 "$DFOTAD_RC"
integrity "after a clean stop: PRAGMA integrity_check ok"
finish
