#!/bin/sh
# upload_abort.sh: an upload whose client dies midway leaves nothing: no
# package listed, nothing in STATE/packages, STATE/tmp emptied; the daemon
# keeps working and the same model/from/to can then be uploaded.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

CONF="$T/dfotad.conf"
base_config "$CONF"
start_dfotad "$CONF" || bail "dfotad starts"
load_token || bail "token readable"


URL="http://$ADMIN/api/v1/packages?model=ABORT&from=v1&to=v2"

# A package stored before, to see it is not disturbed.
random_file "$T/keep.bin" 200000
upload "$T/keep.bin" KEEP v1 v2
expect_eq "upload of a small package: 201" 201 "$STATUS"
KEEP_ID=$PKG_ID
KEEP_SHA=$(sha "$T/keep.bin")

# --- 1: Content-Length upload, client killed midway ------------------------------
BIG="$T/big.bin"
random_file "$BIG" $((50 * 1024 * 1024))
start_slow_post "$ADMIN" "/api/v1/packages?model=ABORT&from=v1&to=v2" "$BIG" 4000000 "$TOKEN"
CURL_PID=$SLOW_PID
if wait_until 15 tmp_over $((2 * 1024 * 1024)); then
  pass "upload in progress is streamed to STATE/tmp ($(tmp_bytes) bytes so far)"
else
  fail "upload in progress is streamed to STATE/tmp" "STATE/tmp has $(tmp_bytes) bytes" \
    "$(ls -la "$STATE/tmp" 2>&1)"
fi
check "client still uploading when killed" kill -0 "$CURL_PID"
{
  kill -9 "$CURL_PID"
  wait "$CURL_PID"
} 2>/dev/null
check "killed Content-Length upload: STATE/tmp emptied within 5 s" wait_until 5 dir_empty "$STATE/tmp"
expect_eq "killed Content-Length upload: no ABORT package listed" 0 "$(pkg_count model=ABORT)"
expect_eq "killed Content-Length upload: only the earlier package listed" 1 "$(pkg_count)"
expect_eq "killed Content-Length upload: STATE/packages holds only the earlier content" \
  "$KEEP_SHA" "$(ls "$STATE/packages" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')"

# --- 2: chunked upload from a slow pipe, client killed midway -------------------
mkfifo "$T/fifo"
"$PYTHON" -c '
import os, sys, time
out = open(sys.argv[1], "wb")
for i in range(6):
    out.write(os.urandom(1 << 20)); out.flush()
time.sleep(60)' "$T/fifo" &
WRITER_PID=$!
BG_PIDS+=("$WRITER_PID")
curl -sS --max-time 120 -o "$T/abort2.out" -X POST \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/octet-stream' \
  -T "$T/fifo" "$URL" 2>/dev/null &
CURL_PID=$!
BG_PIDS+=("$CURL_PID")
if wait_until 15 tmp_over $((4 * 1024 * 1024)); then
  pass "chunked upload in progress is streamed to STATE/tmp"
else
  fail "chunked upload in progress is streamed to STATE/tmp" "STATE/tmp has $(tmp_bytes) bytes" \
    "curl output: $(cat "$T/abort2.out" 2>/dev/null)"
fi
{
  kill -9 "$CURL_PID" "$WRITER_PID"
  wait "$CURL_PID" "$WRITER_PID"
} 2>/dev/null
check "killed chunked upload: STATE/tmp emptied within 5 s" wait_until 5 dir_empty "$STATE/tmp"
expect_eq "killed chunked upload: no ABORT package listed" 0 "$(pkg_count model=ABORT)"
expect_eq "killed chunked upload: STATE/packages holds only the earlier content" \
  "$KEEP_SHA" "$(ls "$STATE/packages" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')"

# --- 3: a client that closes its connection right after the headers ---------------
python3 - "$ADMIN_PORT" "$TOKEN" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(("POST /api/v1/packages?model=ABORT&from=v1&to=v2 HTTP/1.1\r\n"
           "Host: x\r\nAuthorization: Bearer %s\r\n"
           "Content-Type: application/octet-stream\r\n"
           "Content-Length: 10000000\r\n\r\n" % sys.argv[2]).encode() + b"x" * 300000)
s.close()
EOF
check "client gone after 300 kB: STATE/tmp emptied within 5 s" wait_until 5 dir_empty "$STATE/tmp"
expect_eq "client gone after 300 kB: no ABORT package listed" 0 "$(pkg_count model=ABORT)"

# --- the daemon still works, and the same model/from/to can be uploaded ----------
api_noauth GET /healthz
expect_eq "/healthz after the aborted uploads: 200" 200 "$STATUS"
random_file "$T/ok.bin" $((3 * 1024 * 1024))
upload "$T/ok.bin" ABORT v1 v2
expect_eq "full upload of the same model/from/to: 201" 201 "$STATUS"
ID=$PKG_ID
dl "/p/$ID"
check "it downloads byte-identical" cmp -s "$T/ok.bin" "$BODY"
dl "/p/$KEEP_ID"
check "the earlier package still downloads byte-identical" cmp -s "$T/keep.bin" "$BODY"
check "STATE/tmp empty at the end" dir_empty "$STATE/tmp"

stop_dfotad
expect_eq "SIGTERM: exit 0" 0 "$DFOTAD_RC"
finish
