#!/bin/sh
# ftp.sh: the FTP(S) front with real clients. A device whose transport is
# ftp checks in and gets ftp://DEVICE:TOKEN@HOST:PORT/NAME; curl downloads
# it over plain FTP, explicit TLS (--ssl-reqd) and implicit ftps://, each
# byte-identical; curl -C - resumes a cut download; lftp (ftp:ssl-force,
# pget -n 4) and Python's ftplib.FTP_TLS download too. Wrong, expired and
# other devices' tokens fail and record nothing; writes, climbing above the
# root, PORT, a data connection from another address, TLS data without the
# control connection's session, commands injected with AUTH TLS, overlong
# lines: refused with their codes (tests/integration/ftp_probe.py).
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fleet_lib.sh"

PROBE="$LIB_DIR/ftp_probe.py"
command -v lftp >/dev/null 2>&1 || HAVE_LFTP=0

# --- certificates: a CA and a server certificate for 127.0.0.1 ----------------
P="$T/pki"
mkdir -p "$P"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=test-ca -keyout "$P/ca.key" -out "$P/ca.crt" >/dev/null 2>&1 &&
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj /CN=localhost -keyout "$P/srv.key" -out "$P/srv.csr" >/dev/null 2>&1 &&
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$P/ext" &&
  openssl x509 -req -in "$P/srv.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial \
    -days 2 -extfile "$P/ext" -out "$P/srv.crt" >/dev/null 2>&1 ||
  bail "test certificates generated with openssl"
chmod 600 "$P"/*.key

# passive ports: a small range, so that a leak would show
PASV_LO=$(free_port)
PASV_LO=$((PASV_LO > 65000 ? 40000 : PASV_LO))
PASV_HI=$((PASV_LO + 15))

pick_ports
fleet_start "[ftp]" "cert = $P/srv.crt" "key = $P/srv.key" "pasv_ports = $PASV_LO-$PASV_HI" \
  "data_timeout = 10" \
  "[ftps]" "listen = $FTPS" "cert = $P/srv.crt" "key = $P/srv.key" \
  "pasv_ports = $PASV_LO-$PASV_HI" || bail "dfotad starts with [ftp] and [ftps]"
load_token || bail "token readable"
expect_match "log: listening: ftp $FTP" "listening: ftp $FTP" "$(cat "$DFOTAD_LOG")"
expect_match "log: listening: ftps $FTPS" "listening: ftps $FTPS" "$(cat "$DFOTAD_LOG")"

SIZE=3000000
mkpkg "$VA" "$VC" $SIZE || bail "upload A -> C" "status $STATUS"
PKG="$T/pkg-$VA-$VC.bin"
PKG_SHA=$(sha "$PKG")
for id in f1 f2 f3; do
  dev_put $id "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"group\":\"g\",\"transport\":\"ftp\",
    \"secret\":\"secret-$id-0123456789\"}"
  expect_eq "PUT $id (transport ftp): 201" 201 "$STATUS"
done
dev_put s1 "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"group\":\"g\",\"transport\":\"ftps\",
  \"secret\":\"secret-s1-0123456789\"}"
rollout_create "{\"name\":\"ftp\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"devices\":[\"f1\",\"f2\",\"f3\",\"s1\"]},\"waves\":[100],\"max_attempts\":3,
  \"timeout\":300,\"retry_backoff\":1}" || bail "create the rollout" "status $STATUS"
rollout_action "$RID" start

# offer ID: checks the device in; URL, USER, PASS, NAME of its offer
offer() {
  URL= OUSER= OPASS= ONAME=
  checkin "$1" "secret-$1-0123456789" "$VA" -H 'Accept: application/json'
  [ "$STATUS" = 200 ] || return 1
  URL=$(json "$BODY" .url)
  [[ $URL =~ ^ftps?://([^:]+):([^@]+)@[^/]+/(.+)$ ]] || return 1
  OUSER=${BASH_REMATCH[1]} OPASS=${BASH_REMATCH[2]} ONAME=${BASH_REMATCH[3]}
}
offer f1 || bail "f1 gets an offer" "status $STATUS" "$(cat "$BODY")"
expect_match "offer URL: ftp://f1:TOKEN@127.0.0.1:$FTP_PORT/NAME" \
  "^ftp://f1:[a-z2-7]{24}@127\.0\.0\.1:$FTP_PORT/$VA-$VC\.bin$" "$URL"
F1_URL=$URL F1_PASS=$OPASS NAME=$ONAME
CURLF=(curl -sS --max-time 60)

# --- curl: plain, explicit TLS, implicit TLS ---------------------------------------
"${CURLF[@]}" -o "$T/plain.bin" "$URL"
expect_eq "curl ftp://: byte-identical" "$PKG_SHA" "$(sha "$T/plain.bin")"
"${CURLF[@]}" --ssl-reqd --cacert "$P/ca.crt" -o "$T/explicit.bin" "$URL"
expect_eq "curl ftp:// --ssl-reqd (AUTH TLS, PROT P): byte-identical" "$PKG_SHA" \
  "$(sha "$T/explicit.bin")"
"${CURLF[@]}" --cacert "$P/ca.crt" -o "$T/implicit.bin" \
  "ftps://f1:$F1_PASS@$FTPS/$NAME"
expect_eq "curl ftps:// (implicit TLS): byte-identical" "$PKG_SHA" "$(sha "$T/implicit.bin")"
offer s1 || bail "s1 gets an offer" "status $STATUS"
expect_match "transport ftps: ftps://s1:TOKEN@127.0.0.1:$FTPS_PORT/NAME" \
  "^ftps://s1:[a-z2-7]{24}@127\.0\.0\.1:$FTPS_PORT/" "$URL"
"${CURLF[@]}" --cacert "$P/ca.crt" -o "$T/s1.bin" "$URL"
expect_eq "s1 over its ftps:// URL: byte-identical" "$PKG_SHA" "$(sha "$T/s1.bin")"

# the progress the server measured, by protocol
_f1_done() { [ "$(dev_field f1 .progress.percent)" = 100 ]; }
check "f1: progress 100 % (recorded by TCP settle)" wait_until 5 _f1_done
dev_get f1 "$T/f1.json"
expect_match "f1: protocol ftp or ftps" '^ftps?$' "$(json "$T/f1.json" .progress.protocol)"
expect_match "f1: client address" '127\.0\.0\.1' "$(json "$T/f1.json" .progress.client_address)"
api GET /metrics
expect_match "/metrics counts ftp requests" 'protocol="ftp"[^0-9]*[1-9]' "$(grep -E 'ftp' "$BODY")"

# --- resume: curl -C - after a cut -------------------------------------------------
offer f2 || bail "f2 gets an offer"
F2_URL=$URL F2_PASS=$OPASS
head -c 1000000 "$PKG" >"$T/resume.bin"
"${CURLF[@]}" -C - -o "$T/resume.bin" "$F2_URL"
expect_eq "curl -C - (REST 1000000): matches the SHA-256" "$PKG_SHA" "$(sha "$T/resume.bin")"
"${CURLF[@]}" -r 0-99 -o "$T/range.bin" "$F2_URL"
expect_eq "curl -r 0-99: 100 bytes" 100 "$(fsize "$T/range.bin")"

# --- lftp: ssl-force, pget of several segments ---------------------------------------
if [ "${HAVE_LFTP:-1}" = 1 ]; then
  timeout 60 lftp -c "set ssl:ca-file $P/ca.crt; set ftp:ssl-force yes;
    set ftp:ssl-protect-data yes; set net:max-retries 1; set net:timeout 10;
    open -u f2,$F2_PASS ftp://$FTP; pget -n 4 $NAME -o $T/lftp.bin" >"$T/lftp.out" 2>&1
  expect_eq "lftp ftp:ssl-force pget -n 4: matches" "$PKG_SHA" "$(sha "$T/lftp.bin")"
  timeout 30 lftp -c "set ssl:ca-file $P/ca.crt; set ftp:ssl-force yes; set net:max-retries 1;
    open -u f2,$F2_PASS ftp://$FTP; cls -l" >"$T/lftp.ls" 2>&1
  expect_match "lftp ls shows the one file" "$NAME" "$(cat "$T/lftp.ls")"
  # the README's recipe as written: the offer URL's server opened, its file fetched
  URL=$F2_URL
  rm -f pkg.bin
  (cd "$T" && timeout 60 lftp -c "set ssl:ca-file $P/ca.crt; set ftp:ssl-force yes; set ftp:ssl-protect-data yes;
  open ${URL%/*}; pget -n 4 ${URL##*/} -o pkg.bin") >"$T/lftp-readme.out" 2>&1
  expect_eq "README lftp recipe: matches" "$PKG_SHA" "$(sha "$T/pkg.bin")"
  expect_eq "README lftp recipe: prints nothing (no false 550)" "" "$(cat "$T/lftp-readme.out")"
else
  skip "lftp downloads" "lftp is not installed (tests/deps.sh installs it)"
fi

# --- Python's ftplib.FTP_TLS --------------------------------------------------------
cat >"$T/ftplib_dl.py" <<'EOF'
import ftplib, ssl, sys
host, port, user, pw, name, out, ca, mode = sys.argv[1:9]

class Reuse(ftplib.FTP_TLS):
    # stock FTP_TLS opens each data connection with a fresh TLS session,
    # which servers requiring the control connection's session refuse
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host,
                                            session=self.sock.session)
        return conn, size

f = (Reuse if mode == "reuse" else ftplib.FTP_TLS)(
    context=ssl.create_default_context(cafile=ca), timeout=20)
f.connect(host, int(port))
f.login(user, pw)
f.prot_p()
assert f.size(name) > 0
try:
    with open(out, "wb") as o:
        f.retrbinary("RETR " + name, o.write)
except (ftplib.error_perm, ftplib.error_temp, ssl.SSLError, OSError) as e:
    print("refused:", e)
    sys.exit(3)
f.quit()
EOF
timeout 60 "$PYTHON" "$T/ftplib_dl.py" 127.0.0.1 "$FTP_PORT" f2 "$F2_PASS" "$NAME" "$T/py.bin" \
  "$P/ca.crt" reuse >"$T/py.out" 2>&1
expect_eq "ftplib.FTP_TLS (session reused on data): matches" "$PKG_SHA" "$(sha "$T/py.bin")"
timeout 60 "$PYTHON" "$T/ftplib_dl.py" 127.0.0.1 "$FTP_PORT" f2 "$F2_PASS" "$NAME" "$T/py2.bin" \
  "$P/ca.crt" fresh >"$T/py2.out" 2>&1
check_not "stock ftplib.FTP_TLS (fresh TLS session on data): refused" \
  test "$(sha "$T/py2.bin")" = "$PKG_SHA"
expect_match "log: data connection without the control connection's TLS session" \
  "without the control connection's TLS session" "$(cat "$DFOTAD_LOG")"
expect_match "stock ftplib.FTP_TLS with required reuse: 522" "^refused: 522" "$(cat "$T/py2.out")"
# [ftp] tls_session_reuse = off (a reload): the stock client downloads
reload_ftp() { # CONFIG-LINE...: appended to [ftp] (none: back to the file as it was), SIGHUP
  local mark
  [ -f "$FLEET_CONF.orig" ] || cp "$FLEET_CONF" "$FLEET_CONF.orig"
  cp "$FLEET_CONF.orig" "$FLEET_CONF"
  [ $# -gt 0 ] && printf '%s\n' "[ftp]" "$@" >>"$FLEET_CONF"
  mark=$(log_mark)
  kill -HUP "$DFOTAD_PID"
  wait_log_since "$mark" 'reload (done|refused)' 10
  log_since "$mark" | grep -q 'reload done'
}
check "reload with [ftp] tls_session_reuse = off" reload_ftp "tls_session_reuse = off"
timeout 60 "$PYTHON" "$T/ftplib_dl.py" 127.0.0.1 "$FTP_PORT" f2 "$F2_PASS" "$NAME" "$T/py3.bin" \
  "$P/ca.crt" fresh >"$T/py3.out" 2>&1
expect_eq "stock ftplib.FTP_TLS with tls_session_reuse = off: matches" "$PKG_SHA" \
  "$(sha "$T/py3.bin")"
check "reload back to tls_session_reuse = required (the default)" reload_ftp

# --- refusals: tokens --------------------------------------------------------------
offer f3 || bail "f3 gets an offer"
F3_PASS=$OPASS
EV_F3=$(events_count f3)
ftp_login_fails() { # USER PASS: curl's login is refused
  "${CURLF[@]}" -o "$T/none.bin" "ftp://$1:$2@$FTP/$NAME" 2>"$T/login.err"
  [ $? = 67 ] # CURLE_LOGIN_DENIED
}
check "wrong token: login denied" ftp_login_fails f3 "$(printf 'x%.0s' $(seq 24))"
check "f2's token as f3: login denied" ftp_login_fails f3 "$F2_PASS"
check "f3's token as another device: login denied" ftp_login_fails f1 "$F3_PASS"
expect_eq "f3: refused logins recorded nothing" "$EV_F3" "$(events_count f3)"
expect_eq "f3: still offered" offered "$(dev_field f3 .state)"
check_not "PASS is never logged" grep -q "$F3_PASS" "$DFOTAD_LOG"
expect_match "failed logins are logged (without the password)" "failed FTP login: device f3 from" \
  "$(cat "$DFOTAD_LOG")"
# an expired token: the offer of f2 is replaced by cancelling its rollout
api POST "/api/v1/rollouts/$RID/cancel"
check "after the rollout's cancel, f2's token no longer logs in" ftp_login_fails f2 "$F2_PASS"

# --- refusals and edge cases over raw sockets ------------------------------------------
offer f1 >/dev/null
dev_put p1 "{\"model\":\"$MODEL\",\"version\":\"$VA\",\"group\":\"p\",\"transport\":\"ftp\",
  \"secret\":\"secret-p1-0123456789\"}"
rollout_create "{\"name\":\"probe\",\"model\":\"$MODEL\",\"target_version\":\"$VC\",
  \"selector\":{\"devices\":[\"p1\"]},\"waves\":[100],\"max_attempts\":3,\"timeout\":300}" ||
  bail "create the probe rollout" "status $STATUS" "$(cat "$BODY")"
rollout_action "$RID" start
offer p1 || bail "p1 gets an offer" "status $STATUS" "$(cat "$BODY")"
probe() { # CHECK...: ftp_probe.py against [ftp] as p1
  timeout 120 "$PYTHON" "$PROBE" 127.0.0.1 "$FTP_PORT" p1 "$OPASS" "$NAME" "$SIZE" "$P/ca.crt" \
    "$@" >"$T/probe.out" 2>&1
}
for c in writes root port_disabled thief pasv_once pasv_loop lines auth_injection tls_reuse \
  tls_other_session rest_abor facts list; do
  check "probe: $c" probe "$c"
  grep -q "^ok $c" "$T/probe.out" || cat "$T/probe.out" >&2
done
check "probe: failed logins wait longer each time, the third ends the session" probe bad_logins
expect_eq "nothing was stored: still one package" 1 "$(pkg_count)"

# --- SNI and client certificates: the data connection resumes on the name's context ------
# (every OpenSSL context, per-name ones too, has the session id context)
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=sni.test \
  -keyout "$P/sni.key" -out "$P/sni.csr" >/dev/null 2>&1 &&
  printf 'subjectAltName=DNS:sni.test\n' >"$P/sni.ext" &&
  openssl x509 -req -in "$P/sni.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial \
    -days 2 -extfile "$P/sni.ext" -out "$P/sni.crt" >/dev/null 2>&1 &&
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=test-client-ca -keyout "$P/cca.key" -out "$P/cca.crt" >/dev/null 2>&1 &&
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=p1 \
    -keyout "$P/p1.key" -out "$P/p1.csr" >/dev/null 2>&1 &&
  printf 'extendedKeyUsage=clientAuth\n' >"$P/p1.ext" &&
  openssl x509 -req -in "$P/p1.csr" -CA "$P/cca.crt" -CAkey "$P/cca.key" -CAcreateserial \
    -days 2 -extfile "$P/p1.ext" -out "$P/p1.crt" >/dev/null 2>&1 ||
  bail "SNI and client certificates generated with openssl"
chmod 600 "$P"/*.key
cat >"$T/ftplib_sni.py" <<'EOF'
import ftplib, ssl, sys
host, port, user, pw, name, out, ca, cert, key, sni, tls = sys.argv[1:12]

class Sni(ftplib.FTP_TLS):
    # the control and data connections name sni; the data one resumes
    def auth(self):
        resp = self.voidcmd("AUTH TLS")
        self.sock = self.context.wrap_socket(self.sock, server_hostname=sni)
        self.file = self.sock.makefile(mode="r", encoding=self.encoding)
        return resp
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=sni, session=self.sock.session)
        return conn, size

ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
ctx.maximum_version = ssl.TLSVersion.TLSv1_2 if tls == "1.2" else ssl.TLSVersion.TLSv1_3
f = Sni(context=ctx, timeout=20)
f.connect(host, int(port))
f.login(user, pw)
f.prot_p()
print("served:", dict(x[0] for x in f.sock.getpeercert()["subject"])["commonName"])
try:
    with open(out, "wb") as o:
        f.retrbinary("RETR " + name, o.write)
except (ftplib.error_perm, ftplib.error_temp, ssl.SSLError, OSError) as e:
    print("refused:", e)
    sys.exit(3)
f.quit()
EOF
check "reload with [ftp] sni, client_ca and client_auth = required" reload_ftp \
  "sni = sni.test $P/sni.crt $P/sni.key" "client_ca = $P/cca.crt" "client_auth = required"
for v in 1.3 1.2; do
  rm -f "$T/sni.bin"
  timeout 60 "$PYTHON" "$T/ftplib_sni.py" 127.0.0.1 "$FTP_PORT" p1 "$OPASS" "$NAME" "$T/sni.bin" \
    "$P/ca.crt" "$P/p1.crt" "$P/p1.key" sni.test $v >"$T/sni.out" 2>&1
  expect_match "TLS $v, SNI sni.test: its certificate served" "^served: sni.test" \
    "$(cat "$T/sni.out")"
  expect_eq "TLS $v, SNI + client certificate: the data connection resumes, the download matches" \
    "$(sha "$PKG")" "$(sha "$T/sni.bin" 2>/dev/null)"
  [ "$(sha "$PKG")" = "$(sha "$T/sni.bin" 2>/dev/null)" ] || cat "$T/sni.out" >&2
done

stop_dfotad
expect_eq "SIGTERM: exit 0" 0 "$DFOTAD_RC"
finish
