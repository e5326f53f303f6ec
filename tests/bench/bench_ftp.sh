#!/bin/bash
# bench_ftp.sh: dfotad's FTP(S) front against Debian's vsftpd, serving the
# same file.
#
# Usage: tests/bench/bench_ftp.sh [path/to/dfotad]      (default ./server/dfotad)
#
# Environment:
#   BENCH_ROUNDS=5       timed rounds per metric and server (1..50)
#   BENCH_SIZE_MIB=10    size of the random file served (1..1024)
#   BENCH_PARALLEL=16    parallel whole-file downloads per round (1..256)
#   BENCH_IDLE=2000      idle logged-in sessions for the memory figure (0: skip)
#   BENCH_KEEP=1         keep the temporary directory
#
# What it does: writes a random file; starts vsftpd (anonymous, read-only,
# TLS with require_ssl_reuse=YES, its own configuration in a temporary
# directory) and dfotad ([ftp] with AUTH TLS and anonymous_packages, the
# file uploaded through the admin API), both on free 127.0.0.1 ports;
# checks that both serve the identical file (sha256), plain and over TLS;
# then, round by round and alternating which server goes first:
#   a) MB/s (1 MB = 10^6 bytes) of BENCH_PARALLEL parallel curl downloads of
#      the whole file over plain FTP (passive),
#   b) the same with explicit TLS (AUTH TLS, PROT P, data session reused),
# and prints per-round figures, medians and the ratios dfotad/vsftpd.
# Then it opens BENCH_IDLE logged-in sessions to each and reports memory:
# dfotad's RSS (one process) against vsftpd's (two processes per session:
# the sum of their RSS, which counts shared pages once per process, and the
# sum of their private anonymous memory, RssAnon).
# Only loopback addresses; every step is bounded in time; servers and the
# temporary directory are removed on exit.

set -u
umask 022

DFOTAD=${1:-./server/dfotad}
case $DFOTAD in /*) ;; *) DFOTAD="$PWD/${DFOTAD#./}" ;; esac
ROUNDS=${BENCH_ROUNDS:-5}
SIZE_MIB=${BENCH_SIZE_MIB:-10}
PAR=${BENCH_PARALLEL:-16}
IDLE=${BENCH_IDLE:-2000}
HERE=$(cd "$(dirname "$0")" && pwd)

T=$(mktemp -d /tmp/dfotad-bench-ftp.XXXXXX) || exit 1
CURL=(curl -sS --max-time 120)
. "$HERE/common.sh"

int_in "$ROUNDS" 1 50 || die "BENCH_ROUNDS must be 1..50"
int_in "$SIZE_MIB" 1 1024 || die "BENCH_SIZE_MIB must be 1..1024"
int_in "$PAR" 1 256 || die "BENCH_PARALLEL must be 1..256"
int_in "$IDLE" 0 20000 || die "BENCH_IDLE must be 0..20000"
[ -x "$DFOTAD" ] || die "no dfotad at $DFOTAD (build it first)"
VSFTPD=$(command -v vsftpd || echo /usr/sbin/vsftpd)
[ -x "$VSFTPD" ] || die "vsftpd is not installed (sh tests/deps.sh --bench)"
command -v python3 >/dev/null || die "needs python3"

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_ports() { # N: distinct free TCP ports on 127.0.0.1
  python3 -c 'import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}
read -r HTTP_PORT ADMIN_PORT FTP_PORT VS_PORT <<<"$(free_ports 4)"
PASV_D=$((40000 + RANDOM % 5000)) PASV_V=$((46000 + RANDOM % 5000))

# --- the file and a certificate -------------------------------------------------------
head -c $((SIZE_MIB * 1048576)) /dev/urandom >"$T/pkg.bin" || die "random file"
SHA=$(sha256sum "$T/pkg.bin" | cut -d' ' -f1)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1 || die "certificate"
chmod 600 "$T/key.pem"

# --- vsftpd ------------------------------------------------------------------------------
mkdir -p "$T/vs/root" "$T/vs/empty" && cp "$T/pkg.bin" "$T/vs/root/pkg.bin" &&
  chmod 755 "$T" "$T/vs" "$T/vs/root" && chmod 644 "$T/vs/root/pkg.bin" || die "vsftpd root"
cat >"$T/vsftpd.conf" <<CONF
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$VS_PORT
background=NO
anonymous_enable=YES
anon_root=$T/vs/root
no_anon_password=YES
local_enable=NO
write_enable=NO
pasv_enable=YES
pasv_min_port=$PASV_V
pasv_max_port=$((PASV_V + 999))
max_clients=0
max_per_ip=0
seccomp_sandbox=NO
xferlog_enable=NO
dirmessage_enable=NO
secure_chroot_dir=$T/vs/empty
ssl_enable=YES
allow_anon_ssl=YES
rsa_cert_file=$T/cert.pem
rsa_private_key_file=$T/key.pem
require_ssl_reuse=YES
CONF
"$VSFTPD" "$T/vsftpd.conf" >"$T/vsftpd.log" 2>&1 &
VS_PID=$!
PIDS+=("$VS_PID")

# --- dfotad ---------------------------------------------------------------------------
mkdir -p "$T/state"
cat >"$T/dfotad.conf" <<CONF
[server]
state_dir = $T/state
log_level = warn
[http]
listen = 127.0.0.1:$HTTP_PORT
[ftp]
listen = 127.0.0.1:$FTP_PORT
cert = $T/cert.pem
key = $T/key.pem
anonymous_packages = yes
pasv_ports = $PASV_D-$((PASV_D + 999))
connection_limit = 20000
login_limit = 20000
timeout = 600
[admin]
listen = 127.0.0.1:$ADMIN_PORT
CONF
"$DFOTAD" -c "$T/dfotad.conf" >"$T/dfotad.out" 2>"$T/dfotad.log" &
DFOTAD_PID=$!
PIDS+=("$DFOTAD_PID")
wait_until 15 http_ok "http://127.0.0.1:$ADMIN_PORT/healthz" 200 ||
  { tail -n 20 "$T/dfotad.log" >&2; die "dfotad did not come up"; }
wait_until 5 test -s "$T/state/admin.token" || die "no admin token"
TOKEN=$(head -n 1 "$T/state/admin.token")
ID=$("${CURL[@]}" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/octet-stream' \
  --data-binary "@$T/pkg.bin" \
  "http://127.0.0.1:$ADMIN_PORT/api/v1/packages?model=BENCH&from=a&to=b&name=pkg.bin" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])') || die "upload to dfotad"

D_URL="ftp://anonymous:x@127.0.0.1:$FTP_PORT/p/$ID"
V_URL="ftp://anonymous:x@127.0.0.1:$VS_PORT/pkg.bin"
TLS=(--ssl-reqd --cacert "$T/cert.pem")
for u in "$D_URL" "$V_URL"; do
  for mode in plain tls; do
    opts=()
    [ $mode = tls ] && opts=("${TLS[@]}")
    rm -f "$T/check.bin"
    wait_until 5 "${CURL[@]}" "${opts[@]}" -o "$T/check.bin" "$u" 2>/dev/null
    [ "$(sha256sum "$T/check.bin" 2>/dev/null | cut -d' ' -f1)" = "$SHA" ] ||
      die "$u ($mode) does not serve the identical file"
  done
done

# round URL [CURL-OPTS...]: MB/s of $PAR parallel whole-file downloads
round() {
  local url=$1 t0 t1 i fail=0 pids=()
  shift
  t0=$(date +%s.%N)
  for i in $(seq "$PAR"); do
    "${CURL[@]}" "$@" -o /dev/null "$url" 2>>"$T/curl.err" &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || fail=1; done
  t1=$(date +%s.%N)
  [ $fail = 0 ] || { echo "FAILED"; echo "$url: $(tail -n 1 "$T/curl.err")" >&2; return; }
  awk -v a="$t0" -v b="$t1" -v n="$PAR" -v s="$SIZE_MIB" \
    'BEGIN { printf "%.1f", n * s * 1048576 / 1e6 / (b - a) }'
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END {
  if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2];
  else printf "%.1f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "== $PAR parallel downloads of a $SIZE_MIB MiB file, $ROUNDS rounds (MB/s)"
for mode in plain tls; do
  opts=()
  [ $mode = tls ] && opts=("${TLS[@]}")
  d_all='' v_all=''
  for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then
      d=$(round "$D_URL" "${opts[@]}") v=$(round "$V_URL" "${opts[@]}")
    else
      v=$(round "$V_URL" "${opts[@]}") d=$(round "$D_URL" "${opts[@]}")
    fi
    echo "  $mode round $r: dfotad $d  vsftpd $v"
    d_all="$d_all $d" v_all="$v_all $v"
  done
  dm=$(echo "$d_all" | median) vm=$(echo "$v_all" | median)
  ratio=$(awk -v a="$dm" -v b="$vm" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
  echo "  $mode median: dfotad $dm MB/s, vsftpd $vm MB/s, ratio $ratio"
  eval "MED_${mode}_D=\$dm MED_${mode}_V=\$vm RATIO_${mode}=\$ratio"
done

# --- idle sessions -----------------------------------------------------------------------
rss_of() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
vs_mem() { # sum of VmRSS and of RssAnon over vsftpd's processes, and their count
  local r=0 a=0 n=0 p x y
  for p in $(pgrep -x vsftpd); do
    read -r x y < <(awk '/^VmRSS/ { r = $2 } /^RssAnon/ { a = $2 } END { print r + 0, a + 0 }' \
      "/proc/$p/status" 2>/dev/null)
    r=$((r + ${x:-0})) a=$((a + ${y:-0})) n=$((n + 1))
  done
  echo "$r $a $n"
}
# hold URL-PORT USER PASS: $IDLE idle logged-in sessions until hold_end
hold() {
  rm -f "$T/hold.fifo" && mkfifo "$T/hold.fifo"
  python3 "$HERE/ftp_idle.py" 127.0.0.1 "$1" "$2" "$3" "$IDLE" <"$T/hold.fifo" >"$T/hold.out" &
  HOLD_PID=$!
  exec 9>"$T/hold.fifo"
  wait_until 120 grep -q ready "$T/hold.out"
}
hold_end() { exec 9>&-; wait "$HOLD_PID" 2>/dev/null; }
if [ "$IDLE" -gt 0 ]; then
  echo "== $IDLE idle logged-in sessions"
  d0=$(rss_of "$DFOTAD_PID")
  hold "$FTP_PORT" anonymous x
  d1=$(rss_of "$DFOTAD_PID")
  echo "  dfotad: $(cat "$T/hold.out"); RSS $d0 kB before, $d1 kB with them ($(((d1 - d0) * 1024 / IDLE)) bytes per session)"
  hold_end
  read -r v0 a0 n0 <<<"$(vs_mem)"
  hold "$VS_PORT" anonymous x
  read -r v1 a1 n1 <<<"$(vs_mem)"
  echo "  vsftpd: $(cat "$T/hold.out"); $n1 processes; RSS sum $v0 kB before, $v1 kB with them; RssAnon sum $a0 -> $a1 kB"
  hold_end
fi

echo "== summary (for BENCHMARKS.md)"
echo "  whole-file MB/s, $PAR parallel, $SIZE_MIB MiB: plain dfotad $MED_plain_D / vsftpd $MED_plain_V = $RATIO_plain;" \
  "TLS dfotad $MED_tls_D / vsftpd $MED_tls_V = $RATIO_tls"
[ "$IDLE" -gt 0 ] && echo "  $IDLE idle sessions: dfotad RSS $d1 kB (+$((d1 - d0)) kB); vsftpd $n1 processes, RSS sum $v1 kB, RssAnon sum $a1 kB"
echo "  machine: $(nproc) CPUs, $(uname -r), $(awk '/MemTotal/ { print $2 " kB" }' /proc/meminfo); peak RSS of dfotad $(awk '/VmHWM/ { print $2 }' "/proc/$DFOTAD_PID/status") kB"
exit 0
