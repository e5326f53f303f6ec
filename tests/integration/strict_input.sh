#!/bin/bash
# strict_input.sh (issue 7): requests another parser could read differently
# are refused with 400 and the connection closed (conflicting lengths,
# hidden or folded headers, control characters, a missing Host); a Range in
# an odd form is never ignored; targets and bodies over their bounds are
# refused at once; %00 cuts no id short; admin bodies refuse floats for
# integers, unknown fields and out-of-range numbers. Nothing changes.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"

# a short header deadline, for the keep-alive case below
fleet_start "[http]" "header_timeout = 3" || bail "dfotad starts"
mkpkg "$VA" "$VC" 300000 || bail "upload" "status $STATUS"
PID=$PKG_ID

# raw REQUEST-TEXT (printf escapes): the status line of the answer, and
# "closed" when the server closed the connection after it
raw() {
  python3 - "$HTTP_PORT" "$1" <<'PY'
import socket, sys
port, text = int(sys.argv[1]), sys.argv[2].encode().decode('unicode_escape').encode('latin-1')
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(5)
s.sendall(text)
data = b""
try:
    while b"\r\n\r\n" not in data:
        d = s.recv(65536)
        if not d: break
        data += d
    head = data.split(b"\r\n")[0].decode()
    # closed after the answer?
    closed = False
    try:
        while True:
            d = s.recv(65536)
            if not d: closed = True; break
    except socket.timeout:
        pass
    print(head + (" closed" if closed else " open"))
except socket.timeout:
    print("timeout")
PY
}

expect_refused() { # DESC REQUEST CODE
  local got
  got=$(raw "$2")
  expect_match "$1: $3 and closed" "^HTTP/1.1 $3 .* closed$" "$got"
}

G="GET /p/$PID HTTP/1.1\r\nHost: x\r\n"
expect_refused "blank before the colon (Range : )" "${G}Range : bytes=0-1\r\n\r\n" 400
expect_refused "tab before the colon" "${G}Range\t: bytes=0-1\r\n\r\n" 400
expect_refused "a folded Range line" "${G}Range:\r\n bytes=0-1\r\n\r\n" 400
expect_refused "HTTP/1.1 without Host" "GET /p/$PID HTTP/1.1\r\nRange: bytes=0-1\r\n\r\n" 400
expect_refused "two Host fields" "${G}Host: y\r\n\r\n" 400
expect_refused "a control character in a value" "${G}X-A: a\x01b\r\n\r\n" 400
expect_refused "a bare CR in a value" "${G}X-A: a\rb\r\n\r\n" 400
R="POST /v1/report?device=a HTTP/1.1\r\nHost: x\r\n"
expect_refused "conflicting Content-Length" "${R}Content-Length: 3\r\nContent-Length: 5\r\n\r\nabcde" 400
expect_refused "Content-Length with Transfer-Encoding" \
  "${R}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" 400
expect_refused "Transfer-Encoding: identity" "${R}Transfer-Encoding: identity\r\n\r\nabc" 400
expect_refused "a report over 16 KiB, refused before its body" "${R}Content-Length: 100000\r\n\r\n" 413
args=$(python3 -c 'print("&".join(f"a{i}=1" for i in range(3000)))')
expect_refused "3000 query arguments" "GET /v1/update?$args HTTP/1.1\r\nHost: x\r\n\r\n" 414
got=$(raw "${G}Range: bytes=0-1\r\n\r\n")
expect_match "a plain Range still gives 206, kept alive" "^HTTP/1.1 206 .* open$" "$got"

# keep-alive slowloris (issue 12): after one complete request, the next
# request's headers dribbled a byte every 0.5 s are cut by header_timeout
# (3 s here) counted from their first byte, while a connection that only
# idles that long between two requests is still served.
ka=$(python3 - "$HTTP_PORT" "$PID" <<'PY'
import socket, sys, threading, time, select
port, pid = int(sys.argv[1]), sys.argv[2]
req = ("GET /p/%s HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n\r\n" % pid).encode()
out = {}
def one(s):  # a complete request and its whole answer; the status line
    s.sendall(req)
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(4096)
        if not d: return "closed"
        data += d
    head, body = data.split(b"\r\n\r\n", 1)
    n = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
    while len(body) < n:
        d = s.recv(4096)
        if not d: return "closed"
        body += d
    return head.split(b"\r\n")[0].decode()
def dribble():
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(5)
    out["first"] = one(s)
    t0 = time.monotonic()
    for i in range(len(req)):
        try:
            s.send(req[i:i + 1])
        except OSError:
            break
        r, _, _ = select.select([s], [], [], 0.5)
        if r:
            try:
                if s.recv(4096) == b"": break
            except OSError:
                break
        if time.monotonic() - t0 > 20: break
    else:
        out["dribble"] = "open"; return
    out["dribble"] = "%.1f" % (time.monotonic() - t0)
def idle():
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(5)
    one(s)
    time.sleep(4.5)
    out["idle"] = one(s)
ts = [threading.Thread(target=f) for f in (dribble, idle)]
for t in ts: t.start()
for t in ts: t.join()
print("|".join(str(out.get(k)) for k in ("first", "dribble", "idle")))
PY
)
IFS='|' read -r ka_first ka_closed ka_idle <<<"$ka"
echo "# keep-alive: first request '$ka_first', dribbled second request closed after $ka_closed s, idle then asked: '$ka_idle'"
expect_match "keep-alive: the first request answered 206" "^HTTP/1.1 206" "$ka_first"
check "keep-alive: a dribbled second request is closed by header_timeout ($ka_closed s, 3 s + up to 3 s of checks)" \
  awk -v t="$ka_closed" 'BEGIN { exit !(t != "open" && t + 0 >= 2.5 && t + 0 <= 8) }'
expect_match "keep-alive: idle 4.5 s between two requests is no header timeout (206)" "^HTTP/1.1 206" "$ka_idle"

# %00 cuts nothing short
_curl "http://$HTTP/p/$PID%00zzz"
expect_eq "/p/ID%00zzz: 404" 404 "$STATUS"
dev_put 'ab%00cd' "{\"model\":\"$MODEL\",\"version\":\"$VA\"}"
expect_eq "PUT /api/v1/devices/ab%00cd: 400" 400 "$STATUS"
dev_get ab "$T/ab.json"
expect_eq "no device ab was written" 404 "$STATUS"
for id in . ..; do
  api_json PUT "/api/v1/devices/$id" "{\"model\":\"$MODEL\"}"
  expect_ne "device id '$id' refused" 201 "$STATUS"
done

# admin numbers and fields
ro() { # DESC JSON
  api_json POST /api/v1/rollouts "$2"
  expect_eq "$1: 400" 400 "$STATUS"
}
base="\"name\":\"r\",\"model\":\"$MODEL\",\"target_version\":\"$VC\""
ro "waves beyond 32 bits" "{$base,\"waves\":[4294967346,100]}"
ro "timeout 1.5" "{$base,\"timeout\":1.5}"
ro "max_concurrent -1" "{$base,\"max_concurrent\":-1}"
ro "a numeric start_at" "{$base,\"start_at\":1700000000}"
ro "a string window" "{$base,\"window\":\"night\"}"
ro "a mistyped field (max_concurent)" "{$base,\"max_concurent\":5}"
expect_match "the error names the field" "max_concurent" "$(cat "$BODY")"
api GET /api/v1/rollouts
expect_eq "no rollout was stored" 0 "$(jq '.rollouts | length' <"$BODY")"
dev_put dd "{\"model\":\"$MODEL\",\"versoin\":\"$VA\"}"
expect_eq "device with a mistyped field: 400" 400 "$STATUS"
long=$(head -c 20000 /dev/zero | tr '\0' 'x')
dev_put d1 "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"secret\":\"0123456789abcdef0\"}"
checkin d1 0123456789abcdef0 "$long"
expect_eq "a 20,000-byte version at check-in: 400 (or 414)" 1 "$([ "$STATUS" = 400 ] || [ "$STATUS" = 414 ] && echo 1)"
checkin d1 0123456789abcdef0 "$(printf 'A\033B')"
expect_eq "a version with ESC at check-in: 400" 400 "$STATUS"
expect_eq "the version stayed" "$VA" "$(dev_field d1 .version)"

# a query parameter a listing does not take (a typo in a filter's name),
# one given twice or empty, is a 400 naming it: never a filter left out,
# which would list the whole fleet
for qp in "devices?modle=$MODEL modle" "devices?model=$MODEL&model=x model" "devices?state= state" \
  "devices/d1/events?limt=5 limt" "packages?modle=$MODEL modle" "rollouts?limt=1 limt" \
  "paths?model=$MODEL&from=$VA&too=$VC too" "events?rolout=x rolout"; do
  q=${qp% *} p=${qp##* }
  api GET "/api/v1/$q"
  expect_eq "GET /api/v1/$q: 400" 400 "$STATUS"
  expect_match "... the error names '$p'" "'$p'" "$(json "$BODY" .error.message)"
done
api GET "/api/v1/devices?model=$MODEL&state=idle&limit=5"
expect_eq "the same listing spelt right: 200" 200 "$STATUS"
api GET "/api/v1/devices?&limit=5&&state=idle&"
expect_eq "empty pieces of a query (&&, a leading &) name nothing: 200" 200 "$STATUS"
api GET "/api/v1/devices?=$MODEL&limit=5"
expect_eq "a value without a name (?=X): 400, not a filter left out" 400 "$STATUS"
api POST "/api/v1/packages?model=$MODEL&from=X1&to=X2&nmae=fw.bin" --data-binary "x"
expect_eq "an upload with a mistyped name=: 400" 400 "$STATUS"
api GET "/api/v1/packages?model=$MODEL&from=X1"
expect_eq "... nothing stored" 0 "$(jq '.packages | length' <"$BODY")"

finish
