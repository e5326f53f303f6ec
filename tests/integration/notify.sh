#!/bin/bash
# notify.sh: the sd_notify protocol the systemd unit (Type=notify,
# WatchdogSec=) relies on, against a datagram socket of our own standing in
# for systemd's: READY=1 only once every front listens (each port accepts
# at that moment), RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a
# SIGHUP reload, WATCHDOG=1 every half of WATCHDOG_USEC from the main loop,
# none for another WATCHDOG_PID, STOPPING=1 on SIGTERM; an abstract socket
# ("@name") works too, and without NOTIFY_SOCKET nothing is sent. And the
# unit itself: Type=notify with WatchdogSec, and systemd-analyze security
# rates it 1.6 or better (when systemd-analyze is here).
[ -z "${BASH_VERSION:-}" ] && exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

CONF="$T/dfotad.conf"
base_config "$CONF"
# the CoAP front off: this test looks at the TCP fronts, and a UDP port
# picked as free may be taken before the daemon binds it
printf '[coap]\nlisten =\n' >>"$CONF"

# listen SOCKET OUT: records "SECONDS MESSAGE" per datagram (newlines as
# '|'); on READY=1, whether each TCP port accepted a connection then.
listen() {
  python3 - "$1" "$2" "$HTTP_PORT" "$ADMIN_PORT" "$FTP_PORT" <<'PYEOF' &
import socket, sys, time
path, out, ports = sys.argv[1], sys.argv[2], [int(p) for p in sys.argv[3:]]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + path[1:] if path.startswith("@") else path)
open(out + ".bound", "w").close()
s.settimeout(30)
t0 = time.monotonic()
with open(out, "w", buffering=1) as f:
    while True:
        try:
            m = s.recv(4096).decode()
        except socket.timeout:
            break
        line = "%.3f %s" % (time.monotonic() - t0, m.replace("\n", "|"))
        if "READY=1" in m:
            ok = []
            for p in ports:
                c = socket.socket()
                c.settimeout(1)
                ok.append("up" if c.connect_ex(("127.0.0.1", p)) == 0 else "down")
                c.close()
            line += " ports=" + ",".join(ok)
        f.write(line + "\n")
        if "STOPPING=1" in m:
            break
PYEOF
  BG_PIDS+=($!)
  wait_until 5 test -e "$2.bound"
}
_count() { grep -c -- "$2" "$1" 2>/dev/null || true; }
_has() { grep -q -- "$2" "$1" 2>/dev/null; }
_ready_twice() { [ "$(_count "$T/n1" READY=1)" -ge 2 ]; }

# a socket path, WATCHDOG_USEC of 0.4 s
SOCK="$T/notify.sock"
listen "$SOCK" "$T/n1"
NOTIFY_SOCKET=$SOCK WATCHDOG_USEC=400000 start_dfotad "$CONF" || bail "dfotad starts"
wait_until 5 _has "$T/n1" READY=1
check "READY=1 sent" _has "$T/n1" "READY=1"
expect_match "every front listened when READY=1 came" "ports=up,up,up" "$(grep READY=1 "$T/n1" | head -1)"
expect_eq "READY=1 once at start" 1 "$(_count "$T/n1" READY=1)"
sleep 1.2
W=$(_count "$T/n1" WATCHDOG=1)
check "WATCHDOG=1 every 0.2 s or so ($W in about 1.2 s)" test "$W" -ge 3 -a "$W" -le 12

kill -HUP "$DFOTAD_PID"
wait_until 5 _ready_twice
expect_match "RELOADING=1 with MONOTONIC_USEC" "RELOADING=1\|MONOTONIC_USEC=[0-9]+" "$(cat "$T/n1")"
expect_eq "RELOADING=1 then READY=1" "RELOADING=1 READY=1" \
  "$(grep -o 'RELOADING=1\|READY=1' "$T/n1" | tail -n 2 | tr '\n' ' ' | sed 's/ $//')"

stop_dfotad TERM
expect_eq "exit 0" 0 "$DFOTAD_RC"
wait_until 5 _has "$T/n1" STOPPING=1
check "STOPPING=1 on SIGTERM" _has "$T/n1" "STOPPING=1"

# an abstract socket; the watchdog is another process's: no WATCHDOG=1
listen "@dfotad-notify-test-$$" "$T/n2"
NOTIFY_SOCKET="@dfotad-notify-test-$$" WATCHDOG_USEC=400000 WATCHDOG_PID=1 \
  start_dfotad "$CONF" || bail "dfotad starts (abstract socket)"
wait_until 5 _has "$T/n2" READY=1
check "READY=1 on an abstract socket" _has "$T/n2" "READY=1"
sleep 0.6
expect_eq "no WATCHDOG=1 for another WATCHDOG_PID" 0 "$(_count "$T/n2" WATCHDOG=1)"
stop_dfotad TERM
expect_eq "exit 0 (abstract socket)" 0 "$DFOTAD_RC"

# no NOTIFY_SOCKET: runs as before
start_dfotad "$CONF" || bail "dfotad starts without NOTIFY_SOCKET"
stop_dfotad TERM
expect_eq "exit 0 without NOTIFY_SOCKET" 0 "$DFOTAD_RC"

# the unit
SRC=${top_srcdir:-$LIB_DIR/../..}
UNIT="$SRC/systemd/dfotad.service"
check "the unit is Type=notify" grep -q '^Type=notify$' "$UNIT"
check "the unit has a watchdog" grep -Eq '^WatchdogSec=[0-9]+' "$UNIT"
if command -v systemd-analyze >/dev/null 2>&1 &&
  systemd-analyze security --offline=yes "$UNIT" >"$T/sec.out" 2>&1; then
  level=$(sed -n 's/.*Overall exposure level for dfotad.service: \([0-9.]*\).*/\1/p' "$T/sec.out")
  echo "# systemd-analyze security: $level"
  check "systemd-analyze security rates the unit 1.6 or better ($level)" \
    awk -v l="${level:-99}" 'BEGIN { exit !(l <= 1.6) }'
else
  echo "# systemd-analyze security --offline not available: not checked"
fi

finish
