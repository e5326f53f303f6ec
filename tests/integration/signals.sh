#!/bin/sh
# signals.sh: SIGHUP reloads (a valid new config is applied and logged
# "reload done", its certificates read once; a broken one, or one changing
# a key only a restart applies, is logged "reload refused" and the old one
# kept), a download in flight survives reloads byte-identical, SIGTERM and
# SIGINT stop with status 0 within shutdown_timeout, and the daemon starts
# again on the same state dir.
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

HAVE_TLS=0
if command -v openssl >/dev/null 2>&1; then
  HAVE_TLS=1
  P="$T/pki"
  mkdir -p "$P"
  for c in default a1 a2; do
    case $c in default) cn=default.test ;; *) cn=a.test ;; esac
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout "$P/$c.key" -out "$P/$c.crt" -days 2 -subj "/O=$c/CN=$cn" \
      -addext "subjectAltName=DNS:$cn" >/dev/null 2>&1 || HAVE_TLS=0
  done
  chmod 600 "$P"/*.key 2>/dev/null
fi

SHUTDOWN_TIMEOUT=4
CONF="$T/dfotad.conf"
pick_ports

# write_conf MAX_UPLOAD SNI_CERT_NAME [BAD-LINE]: the daemon's config.
write_conf() {
  base_config "$CONF.new"
  sed -i "s/^shutdown_timeout = .*/shutdown_timeout = $SHUTDOWN_TIMEOUT/" "$CONF.new"
  printf '[admin]\nmax_upload_size = %s\n' "$1" >>"$CONF.new"
  if [ $HAVE_TLS = 1 ]; then
    printf '[https]\nlisten = %s\ncert = %s\nkey = %s\nsni = a.test %s %s\n' "$HTTPS" \
      "$P/default.crt" "$P/default.key" "$P/$2.crt" "$P/$2.key" >>"$CONF.new"
  fi
  if [ $# -ge 3 ]; then
    printf '[http]\n%s\n' "$3" >>"$CONF.new"
  fi
  mv "$CONF.new" "$CONF"
}

# a_cert_org: the O= of the certificate served for SNI a.test.
a_cert_org() {
  timeout 10 openssl s_client -connect "$HTTPS" -servername a.test </dev/null 2>/dev/null |
    openssl x509 -noout -subject 2>/dev/null | sed -n 's/.*O *= *\([^,]*\).*/\1/p'
}

serving() { # serving DESC: healthz, and an exact segment of the package
  api_noauth GET /healthz
  expect_eq "$1: /healthz 200" 200 "$STATUS"
  dl "/p/$ID" -H "Range: bytes=10240-20479"
  head -c 20480 "$PKG" | tail -c 10240 >"$T/seg.exp"
  check "$1: a segment downloads exact" cmp -s "$T/seg.exp" "$BODY"
}

write_conf 1G a1
start_dfotad "$CONF" || bail "dfotad starts"
load_token || bail "token readable"
TOKEN_BEFORE=$TOKEN

# The package is larger than what the kernel buffers on a loopback
# connection (a few MiB), so that a slow client keeps the transfer in
# flight in the daemon itself, not only in socket buffers.
SIZE=$((12 * 1024 * 1024))
PKG="$T/pkg.bin"
random_file "$PKG" $SIZE
upload "$PKG" SIG v1 v2
expect_eq "upload: 201" 201 "$STATUS"
ID=$PKG_ID
[ -n "$ID" ] || bail "upload returned an id"
random_file "$T/2k.bin" 2048

# --- a slow download in flight across the reloads ------------------------------
# 200 kB/s until $T/go1 exists, then full speed.
start_slow_get "$HTTP" "/p/$ID" "$T/slow.bin" 200000 "$T/go1"
SLOW1=$SLOW_PID
slow_started() { [ "$(fsize "$T/slow.bin")" -gt 50000 ]; }
check "slow download started" wait_until 10 slow_started

# --- SIGHUP with a valid, changed config -----------------------------------------
if [ $HAVE_TLS = 1 ]; then
  expect_eq "before reload: a.test gets the first certificate" a1 "$(a_cert_org)"
fi
upload "$T/2k.bin" SIG v2 v3
expect_eq "before reload: a 2 KiB upload is accepted" 201 "$STATUS"
write_conf 1K a2
sed -i 's/^log_level = info/log_level = debug/' "$CONF"
mark=$(log_mark)
kill -HUP "$DFOTAD_PID"
check "valid config: \"reload done\" logged" wait_log_since "$mark" 'reload done' 10
check "valid config: daemon still running" kill -0 "$DFOTAD_PID"
serving "after a valid reload"
upload "$T/2k.bin" SIG v3 v4
expect_eq "after reload: max_upload_size = 1K applies (2 KiB upload: 413)" 413 "$STATUS"
if [ $HAVE_TLS = 1 ]; then
  expect_eq "after reload: a.test gets the new sni certificate" a2 "$(a_cert_org)"
  _curl -k "https://$HTTPS/p/$ID" -H "Range: bytes=0-9"
  expect_eq "after reload: https still serves" 206 "$STATUS"
fi

# --- SIGHUP with a broken config ---------------------------------------------------
write_conf 1G a1 "timeout = abc"
mark=$(log_mark)
kill -HUP "$DFOTAD_PID"
check "broken config: \"reload refused\" logged" wait_log_since "$mark" 'reload refused' 10
expect_match "broken config: the refusal names FILE:LINE" "$CONF:[0-9]+" "$(log_since "$mark")"
check_not "broken config: no \"reload done\"" _log_has_since "$mark" 'reload done' "$DFOTAD_LOG"
check "broken config: daemon still running" kill -0 "$DFOTAD_PID"
serving "after a refused reload"
upload "$T/2k.bin" SIG v3 v4
expect_eq "after a refused reload: the previous config stays (2 KiB upload: 413)" 413 "$STATUS"
if [ $HAVE_TLS = 1 ]; then
  expect_eq "after a refused reload: a.test keeps the second certificate" a2 "$(a_cert_org)"
fi

# a config whose certificate cannot be loaded is refused too
if [ $HAVE_TLS = 1 ]; then
  write_conf 1G a1
  sed -i "s#^sni = a.test .*#sni = a.test $P/missing.crt $P/a1.key#" "$CONF"
  mark=$(log_mark)
  kill -HUP "$DFOTAD_PID"
  check "missing sni cert: \"reload refused\" logged" wait_log_since "$mark" 'reload refused' 10
  expect_eq "missing sni cert: a.test keeps the second certificate" a2 "$(a_cert_org)"
  serving "after a refused certificate reload"
fi

# the config file gone altogether
mv "$CONF" "$CONF.away"
mark=$(log_mark)
kill -HUP "$DFOTAD_PID"
check "config file missing: \"reload refused\" logged" wait_log_since "$mark" 'reload refused' 10
check "config file missing: daemon still running" kill -0 "$DFOTAD_PID"
mv "$CONF.away" "$CONF"

# a valid config again
write_conf 1G a1
mark=$(log_mark)
kill -HUP "$DFOTAD_PID"
check "valid config again: \"reload done\" logged" wait_log_since "$mark" 'reload done' 10
upload "$T/2k.bin" SIG v3 v4
expect_eq "valid config again: 2 KiB upload accepted" 201 "$STATUS"
if [ $HAVE_TLS = 1 ]; then
  # one TLS set per reload: every certificate and key read once (the log
  # is still at debug), none again by a check or by the front
  expect_eq "valid config again: each certificate and key file read once (4 reads)" 4 \
    "$(log_since "$mark" | grep -c 'tls: read ')"
fi

# --- keys a reload cannot apply: refused by name, never ignored ------------------------
refused_key() { # DESC SED-EXPRESSION ERE
  write_conf 1G a1
  sed -i "$2" "$CONF"
  mark=$(log_mark)
  kill -HUP "$DFOTAD_PID"
  check "$1: \"reload refused\" logged" wait_log_since "$mark" 'reload refused' 10
  expect_match "$1: the refusal names the key" "$3" "$(log_since "$mark")"
  check_not "$1: no \"reload done\"" _log_has_since "$mark" 'reload done' "$DFOTAD_LOG"
}
refused_key "[store] flush_interval changed" 's/^flush_interval = .*/flush_interval = 500/' \
  'reload refused: .*\[store\] flush_interval cannot change on a reload \(20 -> 500\): restart'
refused_key "[server] state_dir changed" "s#^state_dir = .*#state_dir = $T/elsewhere#" \
  '\[server\] state_dir cannot change on a reload'
refused_key "[server] user changed" 's/^\[server\]$/[server]\nuser = nobody/' \
  '\[server\] user cannot change on a reload'
serving "after refused restart-only keys"
write_conf 1G a1

# several SIGHUPs in a row
mark=$(log_mark)
for i in 1 2 3 4 5; do kill -HUP "$DFOTAD_PID"; done
check "5 quick SIGHUPs: reload done logged" wait_log_since "$mark" 'reload done' 10
check "5 quick SIGHUPs: daemon still running" kill -0 "$DFOTAD_PID"
serving "after 5 quick SIGHUPs"

# --- the slow download completes byte-identical -------------------------------------
check "slow download still running after all the reloads" kill -0 "$SLOW1"
got=$(fsize "$T/slow.bin")
check "slow download not past SIZE - 6 MiB yet (daemon still sending: $got bytes)" \
  test "$got" -lt $((SIZE - 6 * 1024 * 1024))
touch "$T/go1"
check "slow download finished (full speed now) within 20 s" wait_until 20 _pid_gone "$SLOW1"
wait "$SLOW1"
expect_eq "slow download: complete (200, Content-Length bytes)" 0 "$?"
check "slow download across the reloads: byte-identical" cmp -s "$PKG" "$T/slow.bin"

# --- SIGTERM: transfers in flight may finish, within shutdown_timeout ---------------
start_slow_get "$HTTP" "/p/$ID" "$T/fin.bin" 200000 "$T/go2"
FIN=$SLOW_PID
fin_started() { [ "$(fsize "$T/fin.bin")" -gt 20000 ]; }
check "download in flight before SIGTERM" wait_until 10 fin_started
mark=$(log_mark)
t0=$(date +%s)
kill -TERM "$DFOTAD_PID"
check "SIGTERM: logs the transfer in flight" wait_log_since "$mark" 'stopping: [1-9][0-9]* transfers? in flight' 5
touch "$T/go2"
check "SIGTERM: the transfer in flight completes" wait_until $((SHUTDOWN_TIMEOUT + 5)) _pid_gone "$FIN"
wait "$FIN"
expect_eq "SIGTERM: the transfer in flight got all its bytes" 0 "$?"
check "SIGTERM: the transfer in flight is byte-identical" cmp -s "$PKG" "$T/fin.bin"
stop_dfotad TERM $((SHUTDOWN_TIMEOUT + 5))
t1=$(date +%s)
expect_eq "SIGTERM: exit 0" 0 "$DFOTAD_RC"
check "SIGTERM: stopped within shutdown_timeout + 2 s ($((t1 - t0)) s)" \
  test $((t1 - t0)) -le $((SHUTDOWN_TIMEOUT + 2))

# --- SIGTERM: a transfer that does not finish is cut at shutdown_timeout -------------
start_dfotad "$CONF" || bail "dfotad starts again"
start_slow_get "$HTTP" "/p/$ID" "$T/cut.bin" 100000
CUT=$SLOW_PID
cut_started() { [ "$(fsize "$T/cut.bin")" -gt 20000 ]; }
check "slow download in flight before SIGTERM" wait_until 10 cut_started
mark=$(log_mark)
t0=$(date +%s)
stop_dfotad TERM $((SHUTDOWN_TIMEOUT + 5))
t1=$(date +%s)
expect_eq "SIGTERM, transfer cut: exit 0" 0 "$DFOTAD_RC"
check "SIGTERM, transfer cut: stopped within shutdown_timeout + 2 s ($((t1 - t0)) s)" \
  test $((t1 - t0)) -le $((SHUTDOWN_TIMEOUT + 2))
check "SIGTERM, transfer cut: waited for it (>= shutdown_timeout - 1 s)" \
  test $((t1 - t0)) -ge $((SHUTDOWN_TIMEOUT - 1))
kill "$CUT" 2>/dev/null
wait "$CUT" 2>/dev/null
n=$(fsize "$T/cut.bin")
head -c "$n" "$PKG" >"$T/cut.exp"
check "the cut download got a true prefix of the package ($n bytes)" cmp -s "$T/cut.exp" "$T/cut.bin"
check "nothing listens on the http port after stop" python3 -c "
import socket, sys
s = socket.socket(); s.settimeout(1)
sys.exit(0 if s.connect_ex(('127.0.0.1', $HTTP_PORT)) != 0 else 1)"

# --- restart on the same state dir ---------------------------------------------------
start_dfotad "$CONF" || bail "second start on the same state dir"
pass "second start on the same state dir"
expect_eq "token file unchanged across restarts" "$TOKEN_BEFORE" "$TOKEN"
expect_eq "after restart: the packages are listed" 3 "$(pkg_count model=SIG)"
dl "/p/$ID"
check "after restart: byte-identical" cmp -s "$PKG" "$BODY"

# an idle daemon stops at once
t0=$(date +%s)
stop_dfotad TERM 10
t1=$(date +%s)
expect_eq "idle SIGTERM: exit 0" 0 "$DFOTAD_RC"
check "idle SIGTERM: stopped within 2 s ($((t1 - t0)) s)" test $((t1 - t0)) -le 2

# SIGINT is a graceful stop too
start_dfotad "$CONF" || bail "third start"
stop_dfotad INT 10
expect_eq "SIGINT: exit 0" 0 "$DFOTAD_RC"

finish
