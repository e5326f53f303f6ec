#!/usr/bin/env python3
"""adm_flood.py: loopback floods for admission.sh, each bounded in count
and time. Source addresses come from 127.0.0.0/8 (every one is local on
Linux's lo).

  ftp-fails PORT FIRST_OCTET COUNT   one failed login (USER xN, PASS of 24
                                     x) from each of COUNT addresses
                                     127.FIRST.a.b; prints "sent N"
  ftp-pending PORT ADDR N SECONDS    N connections from ADDR that never log
                                     in, renewed when closed; prints the
                                     first reply line of each, counted
  no-suite PORT ADDR N               N handshakes from ADDR that return the
                                     cookie but offer no usable suite;
                                     prints "verified N" (cookies returned)
  hellos PORT FIRST_OCTET COUNT SECONDS
                                     cookie-less DTLS ClientHellos from COUNT
                                     addresses 127.FIRST.a.b (one socket,
                                     the source set per datagram with
                                     IP_PKTINFO), resent every 2 s
"""
import collections
import os
import selectors
import socket
import struct
import sys
import time


def addr(first, i):
    return "127.%d.%d.%d" % (first, (i >> 8) & 255, (i & 255))


def ftp_fails(port, first, count):
    deadline = time.time() + 120
    sent = 0
    line = b""
    for i in range(count):
        if time.time() > deadline:
            break
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.bind((addr(first, i), 0))
            s.connect(("127.0.0.1", port))
            line = b"USER x%d\r\nPASS %s\r\n" % (i, b"x" * 24)
            s.sendall(line)
            # the login is read before the end: no reset before the PASS
            s.shutdown(socket.SHUT_WR)
            sent += 1
        except OSError as e:
            print("error", addr(first, i), e, file=sys.stderr)
        finally:
            s.close()
    print("sent", sent)


def ftp_pending(port, src, n, seconds):
    sel = selectors.DefaultSelector()
    replies = collections.Counter()
    end = time.time() + seconds

    def open_one():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((src, 0))
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        sel.register(s, selectors.EVENT_READ, bytearray())

    for _ in range(n):
        open_one()
    while time.time() < end:
        for key, _ in sel.select(timeout=0.2):
            s, buf = key.fileobj, key.data
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if data:
                buf += data
                if b"\n" in buf and not buf.startswith(b"#"):
                    replies[bytes(buf.split(b"\n")[0][:60]).decode(errors="replace").strip()] += 1
                    buf[:0] = b"#"
                continue
            sel.unregister(s)
            s.close()
            if time.time() < end:
                open_one()
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    for text, k in sorted(replies.items()):
        print(k, text)


def client_hello(cookie=b"", suites=b"\x00\xa8\x00\xae", random=None, seq=0):
    body = (b"\xfe\xfd" + (random or os.urandom(32)) + b"\x00"  # version, random, no session id
            + bytes([len(cookie)]) + cookie
            + struct.pack("!H", len(suites)) + suites
            + b"\x01\x00")  # null compression
    n = struct.pack("!I", len(body))[1:]
    hs = b"\x01" + n + struct.pack("!H", seq) + b"\x00\x00\x00" + n + body
    return (b"\x16\xfe\xff" + b"\x00\x00" + struct.pack("!Q", seq)[2:]
            + struct.pack("!H", len(hs)) + hs)


def no_suite(port, src, n):
    """Cookie exchanges completed, then nothing usable offered (RC4-SHA)."""
    verified = 0
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((src, 0))
        s.settimeout(3)
        rnd = os.urandom(32)
        try:
            s.sendto(client_hello(suites=b"\x00\x05", random=rnd), ("127.0.0.1", port))
            hvr = s.recv(2048)
            # record header 13, handshake header 12, server_version 2, cookie
            if len(hvr) < 28 or hvr[0] != 22 or hvr[13] != 3:
                print("no HelloVerifyRequest", hvr[:16].hex(), file=sys.stderr)
                continue
            cookie = hvr[28:28 + hvr[27]]
            s.sendto(client_hello(cookie, b"\x00\x05", rnd, 1), ("127.0.0.1", port))
            verified += 1
            try:
                s.recv(2048)  # an alert, or nothing
            except socket.timeout:
                pass
        finally:
            s.close()
    print("verified", verified)


def hellos(port, first, count, seconds):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rec = client_hello()
    end = time.time() + seconds
    rounds = sent = 0
    while time.time() < end:
        for i in range(count):
            src = socket.inet_aton(addr(first, i + 1))
            info = struct.pack("=I4s4s", 0, src, b"\0\0\0\0")
            try:
                s.sendmsg([rec], [(socket.IPPROTO_IP, getattr(socket, "IP_PKTINFO", 8), info)], 0,
                           ("127.0.0.1", port))
                sent += 1
            except OSError as e:
                print("error", e, file=sys.stderr)
                return 1
        rounds += 1
        time.sleep(max(0.0, min(2.0, end - time.time())))
    print("sent", sent, "rounds", rounds)
    return 0


def main():
    cmd = sys.argv[1]
    if cmd == "ftp-fails":
        ftp_fails(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "ftp-pending":
        ftp_pending(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    elif cmd == "no-suite":
        no_suite(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    elif cmd == "hellos":
        return hellos(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
