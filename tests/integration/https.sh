#!/bin/sh
# https.sh: the HTTPS listener: SNI picks the certificate, clients without
# SNI get the default one, downloads are byte-identical, client
# certificates (required/optional) are checked against client_ca, TLS
# below 1.2 is refused. Certificates are made here, at test time.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null 2>&1 || { echo "https.sh: needs openssl" >&2; exit 77; }

# --- throwaway PKI ----------------------------------------------------------------
P="$T/pki"
mkdir -p "$P"

# new_ca NAME CN
new_ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$P/$1.key" -out "$P/$1.crt" -days 2 -subj "/CN=$2" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    >/dev/null 2>&1
}

# new_cert NAME CN CA EXTFILE-TEXT
new_cert() {
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$P/$1.key" -out "$P/$1.csr" -subj "/CN=$2" >/dev/null 2>&1 &&
    printf '%b\n' "$4" >"$P/$1.ext" &&
    openssl x509 -req -in "$P/$1.csr" -CA "$P/$3.crt" -CAkey "$P/$3.key" \
      -CAcreateserial -days 2 -extfile "$P/$1.ext" -out "$P/$1.crt" >/dev/null 2>&1
}

srv_ext() { echo "subjectAltName=DNS:$1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature"; }
cli_ext="extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature"

new_ca ca "dfotad test server CA" &&
  new_cert default default.test ca "$(srv_ext default.test)" &&
  new_cert a a.test ca "$(srv_ext a.test)" &&
  new_cert b b.test ca "$(srv_ext b.test)" &&
  new_ca clientca "dfotad test client CA" &&
  new_cert client module-1 clientca "$cli_ext" &&
  new_ca otherca "some other CA" &&
  new_cert intruder intruder otherca "$cli_ext" ||
  bail "test certificates generated with openssl"
chmod 600 "$P"/*.key

# --- daemon with http + https, default cert and two SNI names ------------------
pick_ports
CONF="$T/https.conf"
base_config "$CONF"
cat >>"$CONF" <<EOF
[https]
listen = $HTTPS
cert = $P/default.crt
key = $P/default.key
sni = a.test $P/a.crt $P/a.key
sni = b.test $P/b.crt $P/b.key
EOF
run_check=$(timeout 10 "$DFOTAD" -t -c "$CONF" 2>&1)
expect_eq "-t accepts the https config" 0 "$?"
start_dfotad "$CONF" || bail "dfotad starts with https" "$run_check"
check "log shows listening: https $HTTPS" grep -q "listening: https $HTTPS" "$DFOTAD_LOG"

SIZE=3145728
PKG="$T/pkg.bin"
random_file "$PKG" $SIZE
upload "$PKG" BG95-M3 A03 A04
expect_eq "upload: 201" 201 "$STATUS"
ID=$PKG_ID
[ -n "$ID" ] || bail "upload returned an id"
expect_eq "package has https_url" "https://$HTTPS/p/$ID" "$(json "$BODY" .https_url)"
expect_eq "package has url (http)" "http://$HTTP/p/$ID" "$(json "$BODY" .url)"

# https_dl NAME PATH [CURL-ARGS...]: GET https://NAME:PORT/PATH, NAME resolved to
# 127.0.0.1, the server checked against our CA.
https_dl() {
  local name=$1 p=$2
  shift 2
  _curl --cacert "$P/ca.crt" --resolve "$name:$HTTPS_PORT:127.0.0.1" "$@" \
    "https://$name:$HTTPS_PORT$p"
}

# subject_for SERVERNAME|-: subject of the certificate the server presents
# ("-": no SNI at all).
subject_for() {
  local sn
  if [ "$1" = - ]; then sn=-noservername; else sn="-servername $1"; fi
  # shellcheck disable=SC2086
  timeout 10 openssl s_client -connect "$HTTPS" $sn </dev/null 2>/dev/null |
    openssl x509 -noout -subject 2>/dev/null | sed 's/^subject= *//; s/ //g'
}

https_dl a.test "/p/$ID"
expect_eq "https://a.test/p/ID: 200 (server cert verified for a.test)" 200 "$STATUS"
check "https://a.test/p/ID: byte-identical" cmp -s "$PKG" "$BODY"
expect_eq "https: Content-Length" "$SIZE" "$(hdr Content-Length "$HDRS")"
https_dl b.test "/p/$ID/any.bin"
expect_eq "https://b.test/p/ID/any.bin: 200" 200 "$STATUS"
check "https://b.test/p/ID/any.bin: byte-identical" cmp -s "$PKG" "$BODY"
https_dl default.test "/p/$ID"
expect_eq "https://default.test/p/ID (default cert): 200" 200 "$STATUS"

https_dl a.test "/p/$ID" -H "Range: bytes=20480-30719"
expect_eq "https segment: 206" 206 "$STATUS"
expect_eq "https segment: Content-Range" "bytes 20480-30719/$SIZE" "$(hdr Content-Range "$HDRS")"
head -c 30720 "$PKG" | tail -c 10240 >"$T/seg.exp"
check "https segment: exact bytes" cmp -s "$T/seg.exp" "$BODY"
https_dl a.test "/p/$ID" -H "Range: bytes=$SIZE-"
expect_eq "https bytes=SIZE-: 416 Content-Range */SIZE" "416 bytes */$SIZE" \
  "$STATUS $(hdr Content-Range "$HDRS")"
https_dl a.test "/p/aaaaaaaaaaaa"
expect_eq "https unknown id: 404" 404 "$STATUS"
expect_eq "https: no Transfer-Encoding" 0 "$(hdr_count Transfer-Encoding "$T/all.hdrs")"

expect_eq "SNI a.test gets the a.test certificate" "CN=a.test" "$(subject_for a.test)"
expect_eq "SNI b.test gets the b.test certificate" "CN=b.test" "$(subject_for b.test)"
expect_eq "SNI A.TEST (case) gets the a.test certificate" "CN=a.test" "$(subject_for A.TEST)"
expect_eq "no SNI gets the default certificate" "CN=default.test" "$(subject_for -)"
expect_eq "unknown SNI name gets the default certificate" "CN=default.test" "$(subject_for c.test)"

# a client without SNI (curl sends none to an IP address) downloads
_curl --cacert "$P/ca.crt" -k "https://$HTTPS/p/$ID"
expect_eq "no-SNI client (https://127.0.0.1:PORT): 200" 200 "$STATUS"
check "no-SNI client: byte-identical" cmp -s "$PKG" "$BODY"

# the http listener works next to it
dl "/p/$ID"
check "http listener next to https: byte-identical" cmp -s "$PKG" "$BODY"

# --- protocol versions ----------------------------------------------------------
tls_ok() { # tls_ok S_CLIENT-ARGS...: handshake completes
  timeout 10 openssl s_client -connect "$HTTPS" -servername a.test "$@" </dev/null \
    >"$T/sc.out" 2>&1 && grep -Eq '^ *(New|Protocol *:).*TLSv1' "$T/sc.out" &&
    ! grep -q 'Cipher is (NONE)' "$T/sc.out"
}
check "TLS 1.2 accepted" tls_ok -tls1_2
check "TLS 1.3 accepted" tls_ok -tls1_3

# Is this openssl able to speak TLS 1.1 at all? Try it against its own server.
tls11_testable() {
  openssl s_client -help 2>&1 | grep -q -- '-tls1_1' || return 1
  local port pid rc=1
  port=$(free_port)
  rm -f "$T/s_server.in"
  mkfifo "$T/s_server.in" || return 1
  # s_server stops at EOF on its stdin: feed it from a fifo we hold open
  openssl s_server -accept "127.0.0.1:$port" -cert "$P/default.crt" -key "$P/default.key" \
    -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' -quiet <"$T/s_server.in" \
    >"$T/s_server.out" 2>&1 &
  pid=$!
  BG_PIDS+=("$pid")
  exec 7>"$T/s_server.in"
  if wait_until 5 python3 -c "
import socket, sys
s = socket.socket(); s.settimeout(1)
sys.exit(0 if s.connect_ex(('127.0.0.1', $port)) == 0 else 1)"; then
    timeout 10 openssl s_client -connect "127.0.0.1:$port" -tls1_1 \
      -cipher 'DEFAULT:@SECLEVEL=0' </dev/null >"$T/sc11.out" 2>&1 &&
      grep -q 'Protocol *: *TLSv1.1' "$T/sc11.out" && ! grep -q 'Cipher is (NONE)' "$T/sc11.out" &&
      rc=0
  fi
  exec 7>&-
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return $rc
}
if tls11_testable; then
  check_not "TLS 1.1 refused" tls_ok -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0'
  check_not "TLS 1.0 refused" tls_ok -tls1 -cipher 'DEFAULT:@SECLEVEL=0'
else
  skip "TLS 1.1 refused" "this openssl cannot negotiate TLS 1.1 even with itself"
fi

stop_dfotad
expect_eq "SIGTERM: exit 0" 0 "$DFOTAD_RC"

# --- client_auth = required ------------------------------------------------------------
# refused DESC: the last https request did not get the package
# (403, or a TLS failure: curl status 000).
refused() {
  case $STATUS in
  403 | 000) pass "$1 (got ${STATUS/000/TLS failure})" ;;
  *) fail "$1" "status $STATUS, curl exit $CURL_RC, $(fsize "$BODY") body bytes" ;;
  esac
  if [ "$STATUS" = 403 ]; then
    expect_ne "$1: 403 carries no package bytes" "$SIZE" "$(fsize "$BODY")"
  fi
}

CONF2="$T/mtls.conf"
base_config "$CONF2"
cat >>"$CONF2" <<EOF
[https]
listen = $HTTPS
cert = $P/default.crt
key = $P/default.key
sni = a.test $P/a.crt $P/a.key
client_ca = $P/clientca.crt
client_auth = required
EOF
start_dfotad "$CONF2" || bail "dfotad starts with client_auth = required"
https_dl a.test "/p/$ID"
refused "required: no client certificate is refused"
https_dl a.test "/p/$ID" --cert "$P/client.crt" --key "$P/client.key"
expect_eq "required: valid client certificate: 200" 200 "$STATUS"
check "required: valid client certificate: byte-identical" cmp -s "$PKG" "$BODY"
https_dl a.test "/p/$ID" --cert "$P/intruder.crt" --key "$P/intruder.key"
refused "required: client certificate from another CA is refused"
# a server certificate signed by our server CA is no client certificate of client_ca
https_dl a.test "/p/$ID" --cert "$P/b.crt" --key "$P/b.key"
refused "required: certificate from the server CA is refused"
https_dl default.test "/p/$ID" --cert "$P/client.crt" --key "$P/client.key" -H "Range: bytes=0-10239"
expect_eq "required: valid client certificate, default-cert name, one segment: 206" 206 "$STATUS"
# plain http is not subject to client_auth
dl "/p/$ID"
expect_eq "required: http listener unaffected" 200 "$STATUS"
stop_dfotad
expect_eq "SIGTERM: exit 0 (required)" 0 "$DFOTAD_RC"

# --- client_auth = optional --------------------------------------------------------------
CONF3="$T/mtls-opt.conf"
sed 's/^client_auth = required$/client_auth = optional/' "$CONF2" >"$CONF3"
start_dfotad "$CONF3" || bail "dfotad starts with client_auth = optional"
https_dl a.test "/p/$ID"
expect_eq "optional: no client certificate: 200" 200 "$STATUS"
check "optional: no client certificate: byte-identical" cmp -s "$PKG" "$BODY"
https_dl a.test "/p/$ID" --cert "$P/client.crt" --key "$P/client.key"
expect_eq "optional: valid client certificate: 200" 200 "$STATUS"
https_dl a.test "/p/$ID" --cert "$P/intruder.crt" --key "$P/intruder.key"
refused "optional: client certificate from another CA is refused"
stop_dfotad
expect_eq "SIGTERM: exit 0 (optional)" 0 "$DFOTAD_RC"

finish
