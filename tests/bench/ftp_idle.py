#!/usr/bin/env python3
"""ftp_idle.py HOST PORT USER PASS COUNT [--tls CAFILE]: opens COUNT control
connections, logs each in, prints "ready N" and holds them until stdin
closes (or 120 s pass). For the RSS of idle logged-in sessions."""
import resource
import select
import socket
import ssl
import sys

host, port, user, pw, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
ctx = None
if "--tls" in sys.argv:
    ctx = ssl.create_default_context(cafile=sys.argv[sys.argv.index("--tls") + 1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 100), hard))


def reply(f):
    line = f.readline()
    while line[3:4] == b"-":
        line = f.readline()
    return line[:3]


socks = []
ok = 0
for i in range(count):
    try:
        s = socket.create_connection((host, port), timeout=20)
        f = s.makefile("rb")
        if reply(f) != b"220":
            break
        if ctx is not None:
            s.sendall(b"AUTH TLS\r\n")
            if reply(f) != b"234":
                break
            s = ctx.wrap_socket(s, server_hostname="localhost")
            f = s.makefile("rb")
        s.sendall(b"USER %s\r\n" % user.encode())
        reply(f)
        s.sendall(b"PASS %s\r\n" % pw.encode())
        if reply(f) != b"230":
            break
        socks.append((s, f))
        ok += 1
    except OSError as e:
        print("stopped at %d: %s" % (i, e), file=sys.stderr)
        break
print("ready %d" % ok, flush=True)
select.select([sys.stdin], [], [], 120)
