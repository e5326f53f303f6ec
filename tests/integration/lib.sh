# lib.sh: sourced by every integration test (bash).
#
# A test script starts with:
#   [ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
#   . "$(dirname "$0")/lib.sh"
# and ends with `finish`.
#
# Environment (set by `make check` through AM_TESTS_ENVIRONMENT):
#   DFOTAD       the daemon binary (default: ../../server/dfotad from here)
#   top_srcdir   top_builddir (informational)
#   DFOTAD_KEEP=1  keep the temporary directory (its path is printed)
#
# Everything here talks to loopback addresses only, and every wait is
# bounded in time.

if [ -z "${BASH_VERSION:-}" ]; then
  echo "lib.sh: needs bash" >&2
  exit 99
fi

set -u
umask 022

LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TEST_NAME=$(basename "$0" .sh)

: "${DFOTAD:=$LIB_DIR/../../server/dfotad}"
case $DFOTAD in
/*) ;;
*) DFOTAD="$PWD/$DFOTAD" ;;
esac
export DFOTAD
if [ ! -x "$DFOTAD" ]; then
  echo "$TEST_NAME: daemon binary $DFOTAD not found or not executable (set DFOTAD)" >&2
  exit 99
fi

# python3 for small helpers (prefer the system one: version-manager shims
# are slow to start).
if [ -z "${PYTHON:-}" ]; then
  if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi
python3() { "$PYTHON" "$@"; }

for _tool in curl "$PYTHON" jq sha256sum; do
  if ! command -v "$_tool" >/dev/null 2>&1; then
    echo "$TEST_NAME: needs $_tool" >&2
    exit 99
  fi
done

# Upper bound for every single HTTP request a test makes (seconds).
CURL_MAX_TIME=${CURL_MAX_TIME:-30}

# ---------------------------------------------------------------------------
# Temporary directory, cleanup

T=$(mktemp -d "${TMPDIR:-/tmp}/dfotad-$TEST_NAME.XXXXXX") || exit 99
STATE="$T/state"
DFOTAD_PIDS=()      # every daemon we started (killed on exit)
BG_PIDS=()          # other background jobs (curl, ...) killed on exit
DFOTAD_PID=
DFOTAD_LOG="$T/dfotad.log"
CHECKS=0
FAILED=0
FAILED_LIST=()

_cleanup() {
  local rc=$? p
  # disowned jobs are not reported ("Killed") when they die
  disown -a 2>/dev/null
  for p in ${BG_PIDS[@]+"${BG_PIDS[@]}"} ${DFOTAD_PIDS[@]+"${DFOTAD_PIDS[@]}"}; do
    kill -9 "$p" 2>/dev/null
  done
  for p in ${DFOTAD_PIDS[@]+"${DFOTAD_PIDS[@]}"}; do
    wait_until 5 _pid_gone "$p"
  done
  if [ "${DFOTAD_KEEP:-0}" = 1 ]; then
    echo "# kept $T" >&2
  else
    rm -rf "$T"
  fi
  return $rc
}
trap _cleanup EXIT
trap 'echo "# interrupted" >&2; exit 99' INT TERM HUP

# ---------------------------------------------------------------------------
# Checks

# pass DESC / fail DESC [DETAIL...]
pass() {
  CHECKS=$((CHECKS + 1))
  echo "ok $CHECKS - $1"
}
fail() {
  local desc=$1
  shift
  CHECKS=$((CHECKS + 1))
  FAILED=$((FAILED + 1))
  FAILED_LIST+=("$desc")
  echo "not ok $CHECKS - $desc"
  local l
  for l in "$@"; do
    printf '#   %s\n' "$l"
  done
}

# check DESC CMD...: passes when CMD exits 0.
check() {
  local desc=$1
  shift
  if "$@"; then
    pass "$desc"
  else
    fail "$desc" "command failed: $*"
  fi
}

# check_not DESC CMD...: passes when CMD exits non-zero.
check_not() {
  local desc=$1
  shift
  if "$@"; then
    fail "$desc" "command unexpectedly succeeded: $*"
  else
    pass "$desc"
  fi
}

# expect_eq DESC EXPECTED ACTUAL
expect_eq() {
  if [ "$2" = "$3" ]; then
    pass "$1"
  else
    fail "$1" "expected: '$2'" "actual:   '$3'"
  fi
}

# expect_ne DESC UNEXPECTED ACTUAL
expect_ne() {
  if [ "$2" != "$3" ]; then
    pass "$1"
  else
    fail "$1" "did not expect: '$2'"
  fi
}

# expect_match DESC ERE ACTUAL
expect_match() {
  if printf '%s' "$3" | grep -Eq -- "$2"; then
    pass "$1"
  else
    fail "$1" "expected to match: /$2/" "actual: '$3'"
  fi
}

# expect_no_match DESC ERE ACTUAL
expect_no_match() {
  if printf '%s' "$3" | grep -Eq -- "$2"; then
    fail "$1" "expected not to match: /$2/" "actual: '$3'"
  else
    pass "$1"
  fi
}

# skip DESC REASON: reported, not counted as a failure.
skip() {
  echo "ok - $1 # SKIP $2"
}

# finish: exit 0 when every check passed, 1 otherwise.
finish() {
  local f
  if [ "$FAILED" -gt 0 ]; then
    echo "# $TEST_NAME: $FAILED of $CHECKS checks failed:"
    for f in "${FAILED_LIST[@]}"; do
      echo "#   FAILED: $f"
    done
    if [ -n "$DFOTAD_LOG" ] && [ -f "$DFOTAD_LOG" ]; then
      echo "# last lines of $DFOTAD_LOG:"
      tail -n 40 "$DFOTAD_LOG" | sed 's/^/#   /'
    fi
    exit 1
  fi
  echo "# $TEST_NAME: all $CHECKS checks passed"
  exit 0
}

# bail MESSAGE: a precondition failed; stop here (counts as failure).
bail() {
  fail "$1" "${@:2}"
  finish
}

# ---------------------------------------------------------------------------
# Small utilities

# free_port [N]: N (1) distinct TCP ports on 127.0.0.1 the kernel says are
# free right now, one per line.
free_port() {
  python3 -c 'import socket, sys
socks = []
for i in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
for s in socks:
    s.close()' "${1:-1}"
}

# wait_until SECONDS CMD...: polls CMD every 0.1 s; 0 once it succeeds,
# 1 on timeout.
wait_until() {
  local limit=$1 i=0 n
  shift
  n=$((limit * 10))
  while [ $i -lt $n ]; do
    if "$@"; then
      return 0
    fi
    sleep 0.1
    i=$((i + 1))
  done
  "$@"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }
fsize() { if [ -f "$1" ]; then wc -c <"$1" | tr -d ' '; else echo 0; fi; }

# random_file PATH BYTES
random_file() { head -c "$2" /dev/urandom >"$1"; }

# hdr NAME HEADERFILE: value of the last occurrence of header NAME in a
# curl -D dump (case-insensitive name, CR stripped).
hdr() {
  tr -d '\r' <"$2" | awk -v n="$(printf '%s' "$1" | tr 'A-Z' 'a-z')" '
    { i = index($0, ":"); if (i == 0) next
      k = tolower(substr($0, 1, i - 1))
      if (k == n) { v = substr($0, i + 1); sub(/^[ \t]+/, "", v); last = v } }
    END { if (last != "") print last }'
}

# hdr_count NAME HEADERFILE: how many times header NAME appears.
hdr_count() {
  tr -d '\r' <"$2" | grep -ci "^$1:" || true
}

# responses_without NAME HEADERFILE: the status lines of the responses in a
# dump of several that lack header NAME (with their Allow/Content-Type).
responses_without() {
  tr -d '\r' <"$2" | awk -v n="$(printf '%s' "$1" | tr 'A-Z' 'a-z')" '
    function done_one() { if (st != "" && !seen) print st " (" ct ")" }
    /^HTTP\/[0-9.]+ 1[0-9][0-9]/ { done_one(); st = ""; next }  # interim
    /^HTTP\// { done_one(); st = $0; seen = 0; ct = ""; next }
    { i = index($0, ":"); if (i == 0) next
      k = tolower(substr($0, 1, i - 1))
      if (k == n) seen = 1
      if (k == "content-type") ct = $0 }
    END { done_one() }'
}

# json FILE JQ-EXPR: jq -r on a file ("" when absent/null).
json() { jq -r "$2 // empty" <"$1" 2>/dev/null; }

# file_mode PATH: octal permission bits (e.g. 600).
file_mode() { stat -c %a "$1"; }

# tmp_bytes: bytes under STATE/tmp (uploads in progress); tmp_over N: more than N.
tmp_bytes() { du -sb "$STATE/tmp" 2>/dev/null | cut -f1 || echo 0; }
tmp_over() { [ "$(tmp_bytes)" -gt "$1" ]; }

# dir_empty DIR: true if DIR has no entries (or does not exist).
dir_empty() { [ -z "$(ls -A "$1" 2>/dev/null)" ]; }

# ---------------------------------------------------------------------------
# Configuration and daemon control

# pick_ports: chooses HTTP_PORT and ADMIN_PORT (and HTTPS_PORT, FTP_PORT,
# FTPS_PORT), all free now.
pick_ports() {
  local ports
  ports=$(free_port 5 | tr '\n' ' ')
  read -r HTTP_PORT ADMIN_PORT HTTPS_PORT FTP_PORT FTPS_PORT <<<"$ports"
  HTTP="127.0.0.1:$HTTP_PORT"
  ADMIN="127.0.0.1:$ADMIN_PORT"
  HTTPS="127.0.0.1:$HTTPS_PORT"
  FTP="127.0.0.1:$FTP_PORT"
  FTPS="127.0.0.1:$FTPS_PORT"
}

# base_config FILE: writes a minimal config (state in $STATE, http, ftp and
# admin on the ports from pick_ports, fast statistics flushes, short
# shutdown). The [ftp] front is on by default, so it gets a free port too.
# Tests append further lines/sections with cat >>FILE.
base_config() {
  [ -n "${HTTP_PORT:-}" ] || pick_ports
  cat >"$1" <<EOF
# written by $TEST_NAME
[server]
state_dir = $STATE
log_level = info
shutdown_timeout = 5

[store]
flush_interval = 20

[http]
listen = $HTTP
timeout = 30

[ftp]
listen = $FTP

[admin]
listen = $ADMIN
EOF
}

# log_mark [LOG]: current size of the log, for wait_log_since.
log_mark() {
  local f=${1:-$DFOTAD_LOG}
  if [ -f "$f" ]; then wc -c <"$f" | tr -d ' '; else echo 0; fi
}

# log_since MARK [LOG]: what the log got after MARK.
log_since() { tail -c +"$(($1 + 1))" "${2:-$DFOTAD_LOG}" 2>/dev/null; }

_log_has_since() { log_since "$1" "$3" | grep -Eq -- "$2"; }

# wait_log_since MARK ERE [SECONDS] [LOG]
wait_log_since() {
  wait_until "${3:-10}" _log_has_since "$1" "$2" "${4:-$DFOTAD_LOG}"
}

_healthz_ok() {
  curl -s -o /dev/null --max-time 2 -w '%{http_code}' "http://$1/healthz" 2>/dev/null |
    grep -q '^200$'
}

_ready_or_dead() {
  # ready: log line, or /healthz answers; dead: process gone
  if ! kill -0 "$DFOTAD_PID" 2>/dev/null; then
    return 0
  fi
  if log_since "$_start_mark" | grep -q 'dfotad ready'; then
    return 0
  fi
  if [ -n "${ADMIN:-}" ] && _healthz_ok "$ADMIN"; then
    return 0
  fi
  return 1
}

# start_dfotad CONFIG [ARGS...]: runs "$DFOTAD" -c CONFIG ARGS in the
# background, stderr appended to $DFOTAD_LOG, and waits (10 s at most)
# until it is ready. Sets DFOTAD_PID. Returns 1 (and prints the log) when
# the daemon died or did not get ready. CONFIG "-" runs without -c.
start_dfotad() {
  local conf=$1
  shift
  _start_mark=$(log_mark)
  if [ "$conf" = - ]; then
    "$DFOTAD" "$@" >>"$T/dfotad.out" 2>>"$DFOTAD_LOG" &
  else
    "$DFOTAD" -c "$conf" "$@" >>"$T/dfotad.out" 2>>"$DFOTAD_LOG" &
  fi
  DFOTAD_PID=$!
  DFOTAD_PIDS+=("$DFOTAD_PID")
  wait_until 10 _ready_or_dead
  if ! kill -0 "$DFOTAD_PID" 2>/dev/null; then
    wait "$DFOTAD_PID" 2>/dev/null
    DFOTAD_RC=$?
    echo "# dfotad exited at start (status $DFOTAD_RC); log:" >&2
    log_since "$_start_mark" | sed 's/^/#   /' >&2
    DFOTAD_PID=
    return 1
  fi
  if ! log_since "$_start_mark" | grep -q 'dfotad ready' &&
    ! { [ -n "${ADMIN:-}" ] && _healthz_ok "$ADMIN"; }; then
    echo "# dfotad not ready after 10 s; log:" >&2
    log_since "$_start_mark" | sed 's/^/#   /' >&2
    return 1
  fi
  # The token file is written before "ready"; read it when it is ours.
  load_token 2>/dev/null || true
  return 0
}

# stop_dfotad [SIGNAL] [SECONDS]: sends SIGNAL (TERM) to the daemon and
# waits for it (SECONDS, default 15); sets DFOTAD_RC. Returns 1 when it did
# not exit in time (it is then killed with SIGKILL, DFOTAD_RC=timeout).
stop_dfotad() {
  local sig=${1:-TERM} limit=${2:-15} pid=$DFOTAD_PID
  DFOTAD_RC=
  [ -n "$pid" ] || return 0
  kill -s "$sig" "$pid" 2>/dev/null
  if ! wait_until "$limit" _pid_gone "$pid"; then
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    DFOTAD_RC=timeout
    DFOTAD_PID=
    return 1
  fi
  wait "$pid" 2>/dev/null
  DFOTAD_RC=$?
  DFOTAD_PID=
  return 0
}

# kill9_dfotad: SIGKILL, reaped.
kill9_dfotad() {
  [ -n "$DFOTAD_PID" ] || return 0
  {
    kill -9 "$DFOTAD_PID"
    wait "$DFOTAD_PID"
  } 2>/dev/null
  DFOTAD_PID=
}

# A child that exited but was not reaped yet is a zombie: kill -0 still
# succeeds on it, so look at its state too.
_pid_gone() {
  local st
  kill -0 "$1" 2>/dev/null || return 0
  if [ -r "/proc/$1/stat" ]; then
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
  else
    st=$(ps -o stat= -p "$1" 2>/dev/null)
  fi
  case $st in Z* | X* | "") return 0 ;; esac
  return 1
}

# load_token [FILE]: TOKEN from the token file (first line).
load_token() {
  local f=${1:-$STATE/admin.token}
  [ -r "$f" ] || return 1
  TOKEN=$(head -n 1 "$f" | tr -d '\r\n')
  [ -n "$TOKEN" ]
}

# ---------------------------------------------------------------------------
# HTTP helpers. Each sets STATUS (HTTP code, 000 on transport failure),
# and writes the body to $BODY and the response headers to $HDRS.
BODY="$T/last.body"
HDRS="$T/last.hdrs"

_curl() {
  rm -f "$BODY" "$HDRS"
  : >"$BODY"
  : >"$HDRS"
  STATUS=$(curl -sS --max-time "$CURL_MAX_TIME" -o "$BODY" -D "$HDRS" \
    -w '%{http_code}' "$@" 2>"$T/last.curlerr")
  CURL_RC=$?
  [ -n "$STATUS" ] || STATUS=000
  cat "$HDRS" >>"$T/all.hdrs" 2>/dev/null
  return 0
}

# api METHOD PATH [CURL-ARGS...]: admin request with the bearer token.
api() {
  local m=$1 p=$2
  shift 2
  _curl -X "$m" -H "Authorization: Bearer $TOKEN" "$@" "http://$ADMIN$p"
}

# api_noauth METHOD PATH [CURL-ARGS...]
api_noauth() {
  local m=$1 p=$2
  shift 2
  _curl -X "$m" "$@" "http://$ADMIN$p"
}

# uri TEXT: TEXT percent-encoded for a query string.
uri() { jq -rn --arg v "$1" '$v | @uri'; }

# upload FILE MODEL FROM TO [NAME]: POST a package (values are
# percent-encoded here); STATUS, $BODY; sets PKG_ID on 201.
upload() {
  local q
  q="model=$(uri "$2")&from=$(uri "$3")&to=$(uri "$4")"
  [ $# -ge 5 ] && q="$q&name=$(uri "$5")"
  PKG_ID=
  api POST "/api/v1/packages?$q" -H 'Content-Type: application/octet-stream' \
    --data-binary "@$1"
  if [ "$STATUS" = 201 ]; then
    PKG_ID=$(json "$BODY" .id)
  fi
}

# pkg_json ID: GET /api/v1/packages/ID into $BODY.
pkg_json() { api GET "/api/v1/packages/$1"; }

# pkg_count [QUERY]: number of listed packages ("ERR" on failure).
pkg_count() {
  api GET "/api/v1/packages${1:+?$1}"
  if [ "$STATUS" = 200 ]; then
    jq '.packages | length' <"$BODY"
  else
    echo "ERR$STATUS"
  fi
}

# dl PATH [CURL-ARGS...]: device GET on the http listener (PATH like /p/ID).
dl() {
  local p=$1
  shift
  _curl "$@" "http://$HTTP$p"
}

# segments URL SIZE SEG OUT [HEADER...]: downloads URL as a module doing a
# custom segmented download does: one request "Range: bytes=N-(N+SEG-1)"
# per segment, each on a fresh connection, appending to OUT. Checks every
# response: 206, Content-Range "bytes N-E/SIZE", Content-Length and body
# length E-N+1, no Transfer-Encoding. Prints "OK <count>" or the first
# problem; exit 0 when all segments were right.
segments() {
  python3 - "$@" <<'PYEOF'
import http.client, sys, urllib.parse
url, size, seg, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
extra = [h.split(":", 1) for h in sys.argv[5:]]
u = urllib.parse.urlsplit(url)
n = 0
with open(out, "wb") as f:
    for off in range(0, size, seg):
        end = off + seg - 1
        exp_end = min(end, size - 1)
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        hdrs = {"Range": "bytes=%d-%d" % (off, end), "Connection": "close"}
        for k, v in extra:
            hdrs[k.strip()] = v.strip()
        c.request("GET", u.path, headers=hdrs)
        r = c.getresponse()
        body = r.read()
        c.close()
        n += 1
        cr = r.getheader("Content-Range")
        cl = r.getheader("Content-Length")
        te = r.getheader("Transfer-Encoding")
        want = "bytes %d-%d/%d" % (off, exp_end, size)
        if (r.status != 206 or cr != want or cl != str(exp_end - off + 1)
                or len(body) != exp_end - off + 1 or te is not None):
            print("bytes=%d-%d: status %d, Content-Range %r (want %r), Content-Length %r, "
                  "%d body bytes, Transfer-Encoding %r" % (off, end, r.status, cr, want, cl,
                                                          len(body), te))
            sys.exit(1)
        f.write(body)
print("OK %d" % n)
PYEOF
}

# raw_head_body_len PORT PATH: sends HEAD PATH on a raw connection and
# prints how many bytes followed the response headers.
raw_head_body_len() {
  python3 - "$1" "$2" <<'PYEOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(("HEAD %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % sys.argv[2]).encode())
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
head, _, rest = data.partition(b"\r\n\r\n")
print(len(rest))
PYEOF
}

# A slow HTTP client (curl's --limit-rate is unreliable in some versions).
#   get HOST:PORT PATH OUT BYTES_PER_S [GOFILE]
#     GET with a small receive buffer, reading at that rate (at full speed
#     once GOFILE exists), body to OUT.
#     Exit 0 when the response was 200 and the body as long as its
#     Content-Length; 1 otherwise (a cut transfer).
#   post HOST:PORT PATH FILE BYTES_PER_S TOKEN [chunked]
#     POST FILE (Content-Length, or chunked) at that rate; prints the status.
cat >"$T/slowclient.py" <<'PYEOF'
import socket, sys, time

def connect(hp):
    host, port = hp.rsplit(":", 1)
    s = socket.socket(socket.AF_INET6 if host.startswith("[") else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.settimeout(30)
    s.connect((host.strip("[]"), int(port)))
    return s

def read_head(s):
    data = b""
    while b"\r\n\r\n" not in data:
        b = s.recv(4096)
        if not b:
            raise EOFError("connection closed in headers")
        data += b
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, rest

def slow_get(hp, path, out, rate, gofile=None):
    import os
    s = connect(hp)
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, hp)).encode())
    status, hdrs, body = read_head(s)
    want = int(hdrs.get("content-length", "-1"))
    got = len(body)
    t0 = time.monotonic()
    with open(out, "wb") as f:
        f.write(body); f.flush()
        while True:
            ahead = got / rate - (time.monotonic() - t0)
            if ahead > 0 and not (gofile and os.path.exists(gofile)):
                time.sleep(min(ahead, 0.05))
                continue
            try:
                b = s.recv(8192)
            except OSError:
                break
            if not b:
                break
            f.write(b); f.flush()
            got += len(b)
    sys.exit(0 if status == 200 and got == want else 1)

def slow_post(hp, path, fname, rate, token, chunked):
    s = connect(hp)
    import os
    size = os.path.getsize(fname)
    h = "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n" \
        "Content-Type: application/octet-stream\r\n" % (path, hp, token)
    h += "Transfer-Encoding: chunked\r\n" if chunked else "Content-Length: %d\r\n" % size
    s.sendall((h + "\r\n").encode())
    sent = 0
    t0 = time.monotonic()
    with open(fname, "rb") as f:
        while True:
            b = f.read(65536)
            if not b:
                break
            s.sendall(b"%x\r\n%s\r\n" % (len(b), b) if chunked else b)
            sent += len(b)
            ahead = sent / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
    if chunked:
        s.sendall(b"0\r\n\r\n")
    status, hdrs, body = read_head(s)
    print(status)

if sys.argv[1] == "get":
    slow_get(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]),
             sys.argv[6] if len(sys.argv) > 6 else None)
else:
    slow_post(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), sys.argv[6],
              len(sys.argv) > 7 and sys.argv[7] == "chunked")
PYEOF
# start_slow_get HOST:PORT PATH OUT BYTES_PER_S [GOFILE]: in the background;
# SLOW_PID is the client's own pid (kill it to cut the connection).
start_slow_get() {
  "$PYTHON" "$T/slowclient.py" get "$@" 2>>"$T/slowclient.err" &
  SLOW_PID=$!
  BG_PIDS+=("$SLOW_PID")
}
# start_slow_post HOST:PORT PATH FILE BYTES_PER_S TOKEN [chunked]: in the
# background, its output (the status) to $T/slow_post.out; SLOW_PID.
start_slow_post() {
  "$PYTHON" "$T/slowclient.py" post "$@" >"$T/slow_post.out" 2>>"$T/slowclient.err" &
  SLOW_PID=$!
  BG_PIDS+=("$SLOW_PID")
}
