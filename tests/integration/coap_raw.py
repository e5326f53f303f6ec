#!/usr/bin/env python3
"""coap_raw.py: hand-made CoAP datagrams for the CoAP front's tests, where
coap-client cannot be made to misbehave: duplicates, NON requests, bad
Block2 options, malformed PDUs, and answer sizes (amplification).

  coap_raw.py get HOST PORT PATH [--non] [--block NUM,SZX] [--mid N]
  coap_raw.py dup HOST PORT PATH         the same CON datagram twice
  coap_raw.py badblock HOST PORT PATH    SZX 7, past the end, huge NUM, two Block2
  coap_raw.py malformed HOST PORT PATH   broken datagrams, then a good request
  coap_raw.py amp HOST PORT              error answers no larger than 3x the request
  coap_raw.py order HOST PORT PATH FILE  blocks in random order and sizes, against FILE
  coap_raw.py fetch HOST PORT PATH OUT [--from N] [--upto N] [--szx S] [--non]
                                         block by block (a client that is not libcoap)
Prints one line per check; exits 1 on the first failure."""
import hashlib
import os
import random
import socket
import struct
import sys

GET, POST = 1, 2
CON, NON, ACK, RST = 0, 1, 2, 3


def opt_bytes(options):
    out = b""
    last = 0
    for num, val in sorted(options, key=lambda o: o[0]):
        delta = num - last
        last = num
        length = len(val)

        def ext(v):
            if v < 13:
                return v, b""
            if v < 269:
                return 13, bytes([v - 13])
            return 14, struct.pack("!H", v - 269)

        d, dext = ext(delta)
        l, lext = ext(length)
        out += bytes([(d << 4) | l]) + dext + lext + val
    return out


def uint(v):
    b = b""
    while v:
        b = bytes([v & 0xFF]) + b
        v >>= 8
    return b


def build(path, mtype=CON, code=GET, mid=None, token=None, block=None, extra=(), payload=b""):
    mid = random.randint(0, 0xFFFF) if mid is None else mid
    token = os.urandom(4) if token is None else token
    options = [(11, seg.encode()) for seg in path.strip("/").split("/") if seg]
    if "?" in path:
        p, q = path.split("?", 1)
        options = [(11, seg.encode()) for seg in p.strip("/").split("/") if seg]
        options += [(15, kv.encode()) for kv in q.split("&")]
    if block is not None:
        num, szx = block
        options.append((23, uint((num << 4) | szx)))
    options += list(extra)
    hdr = bytes([0x40 | (mtype << 4) | len(token), code]) + struct.pack("!H", mid) + token
    data = hdr + opt_bytes(options)
    if payload:
        data += b"\xff" + payload
    return data, mid, token


def parse(data):
    if len(data) < 4:
        raise ValueError("short")
    tkl = data[0] & 15
    mtype = (data[0] >> 4) & 3
    code = data[1]
    mid = struct.unpack("!H", data[2:4])[0]
    i = 4 + tkl
    token = data[4:i]
    opts = {}
    num = 0
    payload = b""
    while i < len(data):
        if data[i] == 0xFF:
            payload = data[i + 1:]
            break
        d, l = data[i] >> 4, data[i] & 15
        i += 1
        if d == 13:
            d = data[i] + 13
            i += 1
        elif d == 14:
            d = struct.unpack("!H", data[i:i + 2])[0] + 269
            i += 2
        if l == 13:
            l = data[i] + 13
            i += 1
        elif l == 14:
            l = struct.unpack("!H", data[i:i + 2])[0] + 269
            i += 2
        num += d
        opts.setdefault(num, []).append(data[i:i + l])
        i += l
    return {"type": mtype, "code": "%d.%02d" % (code >> 5, code & 31), "mid": mid,
            "token": token, "opts": opts, "payload": payload}


def ival(b):
    v = 0
    for x in b:
        v = (v << 8) | x
    return v


class Peer:
    def __init__(self, host, port):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.s = socket.socket(fam, socket.SOCK_DGRAM)
        self.s.settimeout(2.0)
        self.addr = (host, int(port))

    def ask(self, data, expect=True):
        self.s.sendto(data, self.addr)
        if not expect:
            return None
        return parse(self.s.recv(4096))

    def raw(self, data):
        self.s.sendto(data, self.addr)
        try:
            return self.s.recv(4096)
        except socket.timeout:
            return None


def fail(msg):
    print("FAIL " + msg)
    sys.exit(1)


def ok(msg):
    print("ok " + msg)


def block_of(r):
    v = ival(r["opts"][23][0])
    return v >> 4, (v >> 3) & 1, v & 7


def main():
    cmd, host, port = sys.argv[1], sys.argv[2], sys.argv[3]
    peer = Peer(host, port)
    path = sys.argv[4] if len(sys.argv) > 4 else "/"
    if cmd == "get":
        args = sys.argv[5:]
        mtype = NON if "--non" in args else CON
        block = None
        mid = None
        if "--block" in args:
            n, z = args[args.index("--block") + 1].split(",")
            block = (int(n), int(z))
        if "--mid" in args:
            mid = int(args[args.index("--mid") + 1])
        r = peer.ask(build(path, mtype, block=block, mid=mid)[0])
        blk = block_of(r) if 23 in r["opts"] else None
        print(r["code"], "type=%d" % r["type"], "block=%s" % (blk,),
              "size2=%s" % (ival(r["opts"][28][0]) if 28 in r["opts"] else None),
              "etag=%s" % (r["opts"][4][0].hex() if 4 in r["opts"] else None),
              "len=%d" % len(r["payload"]), "payload=%r" % r["payload"][:60])
    elif cmd == "dup":
        for mtype, name in ((CON, "CON"), (NON, "NON")):
            data, mid, tok = build(path, mtype, block=(1, 6))
            a = peer.ask(data)
            b = peer.ask(data)
            if a["code"] != "2.05" or b["code"] != "2.05" or a["payload"] != b["payload"]:
                fail("%s duplicate answered differently: %s %s" % (name, a["code"], b["code"]))
            if mtype == CON and (a["type"] != ACK or a["mid"] != mid):
                fail("CON answered without a piggybacked ACK")
            ok("%s duplicate answered again, same block (%s)" % (name, a["code"]))
    elif cmd == "badblock":
        for label, block, want in (("SZX 7", (0, 7), "4.02"), ("past the end", (0xFFFFF, 6), "4.02")):
            r = peer.ask(build(path, block=block)[0])
            if r["code"] != want:
                fail("%s: %s, wanted %s" % (label, r["code"], want))
            ok("%s: %s %r" % (label, r["code"], r["payload"]))
        data, _, _ = build(path, block=(0, 6), extra=[(23, uint(0x16))])
        r = peer.ask(data)
        if r["code"] != "4.02":
            fail("two Block2 options: " + r["code"])
        ok("two Block2 options: " + r["code"])
        # a 4-byte Block2 is not a CoAP PDU at all: no answer or a reset
        data, _, _ = build(path, extra=[(23, b"\x01\x02\x03\x04")])
        r = peer.raw(data)
        ok("4-byte Block2: %s" % ("no answer" if r is None else parse(r)["code"] + " type %d" % parse(r)["type"]))
    elif cmd == "malformed":
        junk = [b"", b"\x40", b"\x4f\x01\x00\x01", b"\x40\x01\x00\x01\xf0",
                b"\x40\x01\x00\x01\xbd", b"\x40\x01\x00\x01\xee\xff\xff",
                b"\x80\x01\x00\x01", b"\x40\x01\x00\x01\xff",
                b"\x40\x01\x00\x01\x0d\x00" + b"x" * 20]
        junk += [os.urandom(random.randint(1, 1200)) for _ in range(200)]
        answered = 0
        for j in junk:
            peer.s.sendto(j, peer.addr)
        peer.s.settimeout(0.5)
        try:
            while True:
                peer.s.recv(4096)
                answered += 1
        except socket.timeout:
            pass
        peer.s.settimeout(2.0)
        r = peer.ask(build(path, block=(0, 6))[0])
        if r["code"] != "2.05":
            fail("after malformed datagrams: " + r["code"])
        ok("%d malformed datagrams (%d answers, resets or errors), then a good request: %s"
           % (len(junk), answered, r["code"]))
    elif cmd == "amp":
        worst = 0.0
        cases = ["/f/nosuchtoken", "/p/nosuch", "/nothing", "/v1/update?device=x",
                 "/f/" + "a" * 70, "/f/bad!chars"]
        for p in cases:
            for mtype in (CON, NON):
                data, _, _ = build(p, mtype, token=b"")
                r = peer.raw(data)
                if r is None:
                    continue
                ratio = len(r) / len(data)
                worst = max(worst, ratio)
                if ratio > 3:
                    fail("%s: %d bytes answered with %d" % (p, len(data), len(r)))
        ok("error answers at most %.2fx the request" % worst)
    elif cmd == "order":
        content = open(sys.argv[5], "rb").read()
        size = len(content)
        blocks = []
        for szx in (0, 2, 4, 6):
            n = (size + (16 << szx) - 1) // (16 << szx)
            blocks += [(i, szx) for i in random.sample(range(n), min(n, 6))]
        random.shuffle(blocks)
        etag = None
        for num, szx in blocks:
            r = peer.ask(build(path, random.choice((CON, NON)), block=(num, szx))[0])
            if r["code"] != "2.05":
                fail("block %d/%d: %s" % (num, szx, r["code"]))
            bn, m, bz = block_of(r)
            if (bn, bz) != (num, szx) or ival(r["opts"][28][0]) != size:
                fail("block %d/%d answered as %d/%d" % (num, szx, bn, bz))
            if etag is not None and r["opts"][4][0] != etag:
                fail("ETag changed")
            etag = r["opts"][4][0]
            off = num << (szx + 4)
            if r["payload"] != content[off:off + (16 << szx)] or m != (off + (16 << szx) < size):
                fail("block %d/%d: wrong bytes or M bit" % (num, szx))
        if etag != bytes.fromhex(hashlib.sha256(content).hexdigest()[:16]):
            fail("ETag is not the SHA-256's first 8 bytes")
        ok("%d blocks in random order and sizes, CON and NON, right bytes, ETag %s"
           % (len(blocks), etag.hex()))
    elif cmd == "fetch":
        args = sys.argv[6:]

        def arg(name, default):
            return int(args[args.index(name) + 1]) if name in args else default
        num, upto, szx = arg("--from", 0), arg("--upto", 1 << 20), arg("--szx", 6)
        mtype = NON if "--non" in args else CON
        out = open(sys.argv[5], "r+b" if num > 0 and os.path.exists(sys.argv[5]) else "wb")
        peer.s.settimeout(1.0)
        while num < upto:
            data = build(path, mtype, block=(num, szx))[0]
            for attempt in range(8):
                try:
                    r = peer.ask(data)
                    break
                except socket.timeout:
                    continue
            else:
                fail("block %d: no answer" % num)
            if r["code"] != "2.05":
                fail("block %d: %s %r" % (num, r["code"], r["payload"]))
            bn, m, bz = block_of(r)
            out.seek(bn << (bz + 4))
            out.write(r["payload"])
            if not m:
                break
            num += 1
        out.close()
        ok("fetched up to block %d" % num)
    else:
        fail("unknown command " + cmd)


if __name__ == "__main__":
    main()
