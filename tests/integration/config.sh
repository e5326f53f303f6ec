#!/bin/sh
# config.sh: dfotad -t (configuration check), errors naming FILE:LINE,
# --set overrides, cross-option checks, -V/-h.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

# run_t ARGS...: dfotad -t ARGS, bounded; sets RC, ERR (stderr text).
run_t() {
  timeout 10 "$DFOTAD" -t "$@" >"$T/t.out" 2>"$T/t.err"
  RC=$?
  ERR=$(cat "$T/t.err")
}

# line_of FILE ERE: line number of the first line matching ERE.
line_of() { grep -En -- "$2" "$1" | head -n 1 | cut -d: -f1; }

# ere_quote TEXT: TEXT as a literal extended regular expression.
ere_quote() { printf '%s' "$1" | sed 's/[][\.*^$+?(){}|/]/\\&/g'; }

pick_ports
GOOD="$T/good.conf"
base_config "$GOOD"
cat >>"$GOOD" <<EOF
; a semicolon comment
   # an indented comment

[admin]
max_upload_size = 16M
EOF

run_t -c "$GOOD"
expect_eq "-t on a good config exits 0" 0 "$RC"
expect_eq "-t on a good config prints no FILE:LINE error" "" \
  "$(grep -E "$(ere_quote "$GOOD"):[0-9]+:" "$T/t.err")"

run_t -c "$GOOD" --set http.timeout=5 --set store.flush_interval=1000 --set admin.max_upload_size=2G
expect_eq "-t with valid --set overrides exits 0" 0 "$RC"

# bad_file NAME DESC LINE [SECTION]: a good config plus "[SECTION]" and one
# bad LINE; expects exit 1 with stderr naming FILE:LINE of the bad line.
bad_file() {
  local name=$1 desc=$2 line=$3 section=${4:-http} f n
  f="$T/$name.conf"
  base_config "$f"
  printf '\n[%s]\n%s\n' "$section" "$line" >>"$f"
  n=$(line_of "$f" "^$(ere_quote "$line")\$")
  run_t -c "$f"
  expect_eq "$desc: exit status 1" 1 "$RC"
  expect_match "$desc: stderr names FILE:$n" "$(ere_quote "$f"):$n:" "$ERR"
}

bad_file unknown_key "unknown key" "bogus_key = 1" http
expect_match "unknown key: message names the key" "bogus_key" "$ERR"
bad_file unknown_section "unknown section" "[nosuchsection]" server
expect_match "unknown section: message names the section" "nosuchsection" "$ERR"
bad_file timeout_abc "[http] timeout = abc" "timeout = abc" http
bad_file timeout_neg "[http] timeout = -1" "timeout = -1" http
bad_file listen_nonsense "[http] listen = nonsense" "listen = nonsense" http
bad_file listen_noport "[http] listen without port" "listen = 127.0.0.1" http
bad_file listen_badport "[http] listen port 70000" "listen = 127.0.0.1:70000" http
bad_file admin_listen_bad "[admin] listen = nonsense" "listen = nonsense" admin
bad_file ftp_pasv_reversed "[ftp] pasv_ports 5100-5000" "pasv_ports = 5100-5000" ftp
bad_file ftp_pasv_low "[ftp] pasv_ports below 1024" "pasv_ports = 20-30" ftp
bad_file ftp_bool "[ftp] require_tls = maybe" "require_tls = maybe" ftp
bad_file loglevel "log_level = loud" "log_level = loud" server
bad_file shutdown_abc "shutdown_timeout = soon" "shutdown_timeout = soon" server
bad_file flush_small "flush_interval = 5 (below 10)" "flush_interval = 5" store
bad_file flush_big "flush_interval = 5000 (above 1000)" "flush_interval = 5000" store
bad_file maxup "max_upload_size = 10X" "max_upload_size = 10X" admin
bad_file clientauth "client_auth = sometimes" "client_auth = sometimes" https
bad_file publicurl_noport "public_url without port" "public_url = http://fota.example.com/" http
bad_file publicurl_scheme "public_url ftp://" "public_url = ftp://fota.example.com:21" http
bad_file noeq "line without =" "just some words" http
bad_file sni_short "sni with 2 words" "sni = a.test /nonexistent.pem" https

# a key before any section
f="$T/nosection.conf"
printf 'state_dir = %s\n' "$STATE" >"$f"
base_config "$T/tail.conf"
cat "$T/tail.conf" >>"$f"
run_t -c "$f"
expect_eq "key outside any section: exit 1" 1 "$RC"
expect_match "key outside any section: names FILE:1" "$(ere_quote "$f"):1:" "$ERR"

# several errors in one file: each one reported with its line
f="$T/multi.conf"
base_config "$f"
cat >>"$f" <<'EOF'
[http]
timeout = abc
[server]
log_level = loud
EOF
n1=$(line_of "$f" '^timeout = abc$')
n2=$(line_of "$f" '^log_level = loud$')
run_t -c "$f"
expect_eq "two errors: exit 1" 1 "$RC"
expect_match "two errors: first reported (FILE:$n1)" "$(ere_quote "$f"):$n1:" "$ERR"
expect_match "two errors: second reported (FILE:$n2)" "$(ere_quote "$f"):$n2:" "$ERR"

# missing file
run_t -c "$T/does-not-exist.conf"
expect_eq "missing config file: exit 1" 1 "$RC"
expect_match "missing config file: named" "does-not-exist\.conf" "$ERR"

# --set errors
run_t -c "$GOOD" --set http.timeout=abc
expect_eq "--set http.timeout=abc: exit 1" 1 "$RC"
expect_match "--set http.timeout=abc: stderr names --set http.timeout" "--set http\.timeout" "$ERR"
run_t -c "$GOOD" --set nosuch.key=1
expect_eq "--set nosuch.key=1: exit 1" 1 "$RC"
expect_match "--set nosuch.key=1: named" "nosuch\.key" "$ERR"
run_t -c "$GOOD" --set http.nosuchkey=1
expect_eq "--set http.nosuchkey=1: exit 1" 1 "$RC"
expect_match "--set http.nosuchkey=1: named" "nosuchkey" "$ERR"
run_t -c "$GOOD" --set garbage
expect_eq "--set garbage (no SECTION.KEY=VALUE): exit 1" 1 "$RC"
run_t -c "$GOOD" --set http.listen=nonsense
expect_eq "--set http.listen=nonsense: exit 1" 1 "$RC"
expect_match "--set http.listen=nonsense: named" "--set http\.listen" "$ERR"
run_t -c "$GOOD" --set store.flush_interval=1
expect_eq "--set store.flush_interval=1 (out of bounds): exit 1" 1 "$RC"
run_t -c "$GOOD" --set "http.listen=127.0.0.1:$(free_port)"
expect_eq "--set http.listen=valid: exit 0" 0 "$RC"
# --set works without -c too (embedded defaults)
run_t --set "server.state_dir=$T/nocfg" --set "http.listen=127.0.0.1:$(free_port)" \
  --set "admin.listen=127.0.0.1:$(free_port)"
expect_eq "-t without -c, with --set: exit 0" 0 "$RC"

# https listen without cert/key
f="$T/https_nocert.conf"
base_config "$f"
printf '[https]\nlisten = %s\n' "$HTTPS" >>"$f"
run_t -c "$f"
expect_eq "https listen without cert: exit 1" 1 "$RC"
expect_match "https listen without cert: message mentions cert" "cert" "$ERR"
expect_match "https listen without cert: message names the file" "$(ere_quote "$f")" "$ERR"
run_t -c "$GOOD" --set "https.listen=$HTTPS"
expect_eq "--set https.listen without cert: exit 1" 1 "$RC"

# https listen with a cert file that does not exist (-t loads certificates)
f="$T/https_missingcert.conf"
base_config "$f"
printf '[https]\nlisten = %s\ncert = %s\nkey = %s\n' "$HTTPS" "$T/nope.crt" "$T/nope.key" >>"$f"
run_t -c "$f"
expect_eq "https cert file missing: exit 1" 1 "$RC"
expect_match "https cert file missing: names the file" "nope\.(crt|key)" "$ERR"

if command -v openssl >/dev/null 2>&1; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/ok.key" -out "$T/ok.crt" \
    -days 2 -subj /CN=default.test >/dev/null 2>&1
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
    -out "$T/other.key" >/dev/null 2>&1
  echo "not a certificate" >"$T/garbage.crt"

  f="$T/https_good.conf"
  base_config "$f"
  printf '[https]\nlisten = %s\ncert = %s\nkey = %s\n' "$HTTPS" "$T/ok.crt" "$T/ok.key" >>"$f"
  run_t -c "$f"
  expect_eq "https with valid cert/key: -t exits 0" 0 "$RC"

  f="$T/https_garbagecert.conf"
  base_config "$f"
  printf '[https]\nlisten = %s\ncert = %s\nkey = %s\n' "$HTTPS" "$T/garbage.crt" "$T/ok.key" >>"$f"
  run_t -c "$f"
  expect_eq "https cert not PEM: exit 1" 1 "$RC"

  f="$T/https_mismatch.conf"
  base_config "$f"
  printf '[https]\nlisten = %s\ncert = %s\nkey = %s\n' "$HTTPS" "$T/ok.crt" "$T/other.key" >>"$f"
  run_t -c "$f"
  expect_eq "https cert/key that do not match: exit 1" 1 "$RC"

  f="$T/https_sni_missing.conf"
  base_config "$f"
  printf '[https]\nlisten = %s\ncert = %s\nkey = %s\nsni = a.test %s %s\n' \
    "$HTTPS" "$T/ok.crt" "$T/ok.key" "$T/missing-a.crt" "$T/ok.key" >>"$f"
  run_t -c "$f"
  expect_eq "sni cert file missing: exit 1" 1 "$RC"
  expect_match "sni cert file missing: named" "missing-a\.crt" "$ERR"

  # -t builds each TLS section for its library: what it refuses is said now
  run_t -c "$T/https_good.conf" --set "https.priorities=NORMAL:+NO-SUCH-THING"
  expect_eq "[https] priorities GnuTLS refuses: -t exits 1" 1 "$RC"
  expect_match "[https] priorities GnuTLS refuses: named" "\[https\] priorities: .*NO-SUCH-THING" \
    "$ERR"
  run_t -c "$T/https_good.conf" --set "ftps.listen=$FTPS" --set "ftps.cert=$T/ok.crt" \
    --set "ftps.key=$T/ok.key" --set "ftps.priorities=NO-SUCH-CIPHER"
  expect_eq "[ftps] priorities OpenSSL refuses: -t exits 1" 1 "$RC"
  expect_match "[ftps] priorities OpenSSL refuses: named" "ciphers" "$ERR"
  run_t -c "$T/https_good.conf" --set "ftp.tls_session_reuse=off"
  expect_eq "[ftp] tls_session_reuse = off: -t exits 0" 0 "$RC"
  run_t -c "$T/https_good.conf" --set "ftp.tls_session_reuse=sometimes"
  expect_match "[ftp] tls_session_reuse = sometimes: its choices named" "one of off, required" \
    "$ERR"
else
  skip "certificate loading checks" "no openssl"
fi

# client_auth needs client_ca
f="$T/clientauth_noca.conf"
base_config "$f"
printf '[https]\nclient_auth = required\n' >>"$f"
run_t -c "$f"
expect_eq "client_auth = required without client_ca: exit 1" 1 "$RC"

# [ftp]: require_tls needs a certificate (AUTH TLS); pasv_address is IPv4
run_t -c "$GOOD" --set ftp.require_tls=yes
expect_eq "[ftp] require_tls without cert: exit 1" 1 "$RC"
expect_match "[ftp] require_tls without cert: named" "require_tls needs cert" "$ERR"
run_t -c "$GOOD" --set ftp.pasv_address=fota.example.com
expect_eq "[ftp] pasv_address not an IPv4 address: exit 1" 1 "$RC"
run_t -c "$GOOD" --set ftps.listen=127.0.0.1:1
expect_eq "[ftps] listen without cert: exit 1" 1 "$RC"

# no listener at all ([coap] and [ftp] are on by default too)
run_t -c "$GOOD" --set http.listen= --set coap.listen= --set ftp.listen=
expect_eq "no http, https, coap nor ftp listener: exit 1" 1 "$RC"
run_t -c "$GOOD" --set http.listen=
expect_eq "ftp alone is a device front: exit 0" 0 "$RC"

# same address for http and admin
run_t -c "$GOOD" --set "admin.listen=$HTTP"
expect_eq "admin and http on the same address: exit 1" 1 "$RC"

# -t does not bind anything nor stay running
check "-t did not leave the http port bound" python3 -c "
import socket, sys
s = socket.socket(); s.settimeout(1)
sys.exit(0 if s.connect_ex(('127.0.0.1', $HTTP_PORT)) != 0 else 1)"

# version and help
timeout 10 "$DFOTAD" -V >"$T/v.out" 2>&1
expect_eq "-V exits 0" 0 "$?"
expect_match "-V prints 0.1.0" "0\.1\.0" "$(cat "$T/v.out")"
timeout 10 "$DFOTAD" --version >"$T/v.out" 2>&1
expect_eq "--version exits 0" 0 "$?"
# the libraries it was built with (issue 17), libpq when built in
libs="libmicrohttpd GnuTLS libcoap OpenSSL libevent SQLite jansson"
grep -q '^PQ_LIBS = .' "${top_builddir:-$LIB_DIR/../..}/Makefile" 2>/dev/null && libs="$libs libpq"
for lib in $libs; do
  check "--version names $lib" grep -q "^  $lib [0-9]" "$T/v.out"
done
timeout 10 "$DFOTAD" -h >"$T/h.out" 2>&1
expect_eq "-h exits 0" 0 "$?"
expect_match "-h mentions -c" "-c" "$(cat "$T/h.out")"
timeout 10 "$DFOTAD" --no-such-option >"$T/h.out" 2>&1
expect_ne "unknown command line option: non-zero exit" 0 "$?"

finish
