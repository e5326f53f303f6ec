#!/bin/sh
# ftp_limits.sh: the FTP front's settings and limits: require_tls,
# anonymous_packages, port_enable (PORT only to the client's own address),
# pasv_address, sessions per address, logins in progress, the login
# timeout, and a reload (SIGHUP) that lets a transfer in flight finish.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

PROBE="$LIB_DIR/ftp_probe.py"
P="$T/pki"
mkdir -p "$P"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$P/srv.key" -out "$P/srv.crt" >/dev/null 2>&1 || bail "certificate generated"
chmod 600 "$P/srv.key"

pick_ports
CONF="$T/dfotad.conf"
base_config "$CONF"
cat >>"$CONF" <<EOF
[ftp]
cert = $P/srv.crt
key = $P/srv.key
require_tls = yes
anonymous_packages = yes
port_enable = yes
pasv_address = 192.0.2.7
per_ip_limit = 3
login_limit = 2
login_timeout = 2
EOF
start_dfotad "$CONF" || bail "dfotad starts"
load_token || bail "token readable"
random_file "$T/pkg.bin" 2000000
upload "$T/pkg.bin" LIM v1 v2 lim.bin
expect_eq "upload: 201" 201 "$STATUS"
ID=$PKG_ID
SHA=$(sha "$T/pkg.bin")
CURLF=(curl -sS --max-time 30)

# --- require_tls ----------------------------------------------------------------------
"${CURLF[@]}" -o "$T/a.bin" "ftp://anonymous:x@$FTP/p/$ID" 2>"$T/err"
expect_eq "require_tls: a plain login is refused (curl: login denied)" 67 "$?"
"${CURLF[@]}" --ssl-reqd --cacert "$P/srv.crt" -o "$T/a.bin" "ftp://anonymous:x@$FTP/p/$ID"
expect_eq "require_tls: anonymous /p/ID over AUTH TLS: byte-identical" "$SHA" "$(sha "$T/a.bin")"
python3 - "$FTP_PORT" "$P/srv.crt" >"$T/tls.out" 2>&1 <<'EOF'
import socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
f = s.makefile("rb")
def cmd(t):
    s.sendall(t.encode() + b"\r\n")
    l = f.readline()
    while l[3:4] == b"-":
        l = f.readline()
    return l.decode().strip()
f.readline()
print("USER", cmd("USER anonymous")[:3])
print("AUTH", cmd("AUTH TLS")[:3])
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(s, server_hostname="localhost")
f = s.makefile("rb")
print("LOGIN", cmd("USER anonymous")[:3], cmd("PASS x")[:3])
print("PROTC", cmd("PBSZ 0")[:3], cmd("PROT C")[:3])
print("RETR", cmd("RETR /p/x")[:3])
print("PASV", cmd("PASV"))
print("PORT", cmd("PORT 127,0,0,2,200,1")[:3], cmd("PORT 127,0,0,1,0,80")[:3])
EOF
expect_match "require_tls: USER before AUTH TLS: 530" "USER 530" "$(cat "$T/tls.out")"
expect_match "require_tls: PROT C refused (534)" "PROTC 200 534" "$(cat "$T/tls.out")"
expect_match "without PROT P, RETR is refused (522)" "RETR 522" "$(cat "$T/tls.out")"
expect_match "PASV announces pasv_address 192.0.2.7" "PASV 227 .*\(192,0,2,7," "$(cat "$T/tls.out")"
expect_match "port_enable: PORT to another address or port 80 refused (500)" "PORT 500 500" \
  "$(cat "$T/tls.out")"

# --- per address: sessions, logins in progress, login timeout ---------------------------
python3 - "$FTP_PORT" >"$T/lim.out" 2>&1 <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
def conn(src="127.0.0.1"):
    s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(src, 0))
    return s, s.recv(200).decode()
# logins in progress: 2 at once; the third connection is turned away
a = [conn("127.0.0.5"), conn("127.0.0.6")]
s, g = conn("127.0.0.7")
print("third-login", g[:3])
s.close()
time.sleep(3.5)  # login_timeout 2 s: both are closed with 421
for s, g in a:
    print("timeout", s.recv(200).decode()[:3])
    s.close()
EOF
expect_match "login_limit 2: the third pending login gets 421" "third-login 421" "$(cat "$T/lim.out")"
expect_eq "login_timeout: 421 to both" 2 "$(grep -c 'timeout 421' "$T/lim.out")"

# --- reload with a transfer in flight ------------------------------------------------------
sed -i 's/^require_tls = yes/require_tls = no/' "$CONF"
# the configuration on disk turns require_tls off; a TLS session starts a
# slow transfer, and SIGHUP comes in the middle of it
python3 - "$FTP_PORT" "$ID" "$P/srv.crt" "$DFOTAD_PID" >"$T/slow.out" 2>&1 <<'EOF'
import hashlib, os, signal, socket, ssl, sys, time
port, pid, ca, dpid = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
s = socket.create_connection(("127.0.0.1", port), timeout=20)
f = s.makefile("rb")
def cmd(t):
    s.sendall(t.encode() + b"\r\n")
    return reply()
def reply():
    l = f.readline()
    while l[3:4] == b"-":
        l = f.readline()
    return l.decode().strip()
f.readline()
cmd("AUTH TLS")
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(s, server_hostname="localhost")
f = s.makefile("rb")
cmd("USER anonymous"); cmd("PASS x"); cmd("PBSZ 0"); cmd("PROT P"); cmd("TYPE I")
p = int(cmd("EPSV").split("|||")[1].split("|")[0])
d = socket.socket()
d.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
d.settimeout(20)
d.connect(("127.0.0.1", p))
print("RETR", cmd("RETR /p/" + pid)[:3], flush=True)
d = ctx.wrap_socket(d, server_hostname="localhost", session=s.session)
h = hashlib.sha256()
n = 0
hup = False
while True:
    b = d.recv(16384)
    if not b:
        break
    h.update(b)
    n += len(b)
    if n > 300000 and not hup:
        os.kill(dpid, signal.SIGHUP)
        hup = True
    time.sleep(0.002)
print("bytes", n, "sha", h.hexdigest(), flush=True)
print("end", reply()[:3], flush=True)
print("after", reply()[:3], flush=True)
EOF
expect_match "reload mid-transfer: the transfer completes, byte-identical" "bytes 2000000 sha $SHA" \
  "$(cat "$T/slow.out")"
expect_match "reload mid-transfer: 226, then 421 (the old instance closes the session)" \
  "end 226.*after 421" "$(tr '\n' ' ' <"$T/slow.out")"
wait_log_since 0 "reload(ed)?|configuration reloaded" 10 || true
"${CURLF[@]}" -o "$T/b.bin" "ftp://anonymous:x@$FTP/p/$ID"
expect_eq "after the reload (require_tls off): plain anonymous download" "$SHA" "$(sha "$T/b.bin")"

# per address: 3 sessions (logged in, so that login_limit is not what counts)
python3 - "$FTP_PORT" >"$T/perip.out" 2>&1 <<'EOF'
import socket, sys
port = int(sys.argv[1])
def conn():
    s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=("127.0.0.8", 0))
    f = s.makefile("rb")
    g = f.readline().decode()
    if g.startswith("220"):
        for c in (b"USER anonymous", b"PASS x"):
            s.sendall(c + b"\r\n")
            f.readline()
    return s, g
held = [conn() for _ in range(3)]
s, g = conn()
print("per-ip", " ".join(x[1][:3] for x in held), g[:3])
EOF
expect_match "per_ip_limit 3: the fourth session from one address gets 421" "per-ip 220 220 220 421" \
  "$(cat "$T/perip.out")"

stop_dfotad
expect_eq "SIGTERM: exit 0" 0 "$DFOTAD_RC"
finish
