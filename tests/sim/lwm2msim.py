#!/usr/bin/env python3
"""lwm2msim.py: simulated LwM2M devices for dfotad's LwM2M server (raw
CoAP over UDP; the encoding helpers of tests/integration/coap_raw.py).

Each device is a thread with its own UDP socket. It registers
(POST /rd?ep=&lt=&lwm2m=&b=), sends registration Updates, and answers the
server's Read, Write, Execute and Observe of /3/0/3 and the Firmware
Update object /5 with the real /5 state machine:

  idle (0) -> Write /5/0/1 URI -> downloading (1) -> downloaded (2)
  -> Execute /5/0/2 -> updating (3) -> idle (0) with Update Result 1,
  the new firmware version, and a new registration (a reboot).

The Package URI is fetched out of band, over HTTP(S) (urllib) or CoAP
(block-wise, our own client). Failures on demand (--fail ID=RESULT: that
Update Result once, e.g. 5 for an integrity failure after the download;
--slow ID=S: a download that starts only after S seconds, to be cancelled);
queue mode (--queue ID,...: b=UQ, the device listens only for a few
seconds after each message it sends (its Updates, its answers) and drops
what comes while it sleeps);
--nap ID=N: a queue-mode device that falls asleep as the first N Package
URI writes arrive (it never hears them nor their retransmissions);
--formats ID=FMT: a device that takes only that Content-Format (11542 TLV,
110 SenML JSON, 112 SenML CBOR): 4.15 to a Write in another, 4.06 to a Read
whose Accept is not it.
--push IDS: devices that take firmware only pushed (/5/0/9 = 1): the server
writes the package into /5/0/0 (Package) block by block (Block1): the
first block moves State to 1 (Downloading), each is acknowledged 2.31
Continue (2.04 Changed the last, then State 2 once its size matches Size1),
a block that does not follow the bytes held gets 4.08 Request Entity
Incomplete;
--push-szx ID=N: that device takes blocks of at most 16 << N bytes (4.13
Request Entity Too Large with its size to a larger first block, its size in
the Block1 answers after);
--push-nap ID=K: a queue-mode device that falls asleep as block K arrives
(it keeps the blocks it has, and takes the push up again at its next wake).

  lwm2msim.py --server HOST:PORT --devices FILE.json --chain V0,V1,V2
              --target VN [--queue IDS] [--fail ID=R ...] [--tlv IDS]
              [--push IDS] [--push-szx ID=N] [--push-nap ID=K]
              [--update-interval S] [--awake S] [--max-seconds S]
              [--out summary.json]

FILE.json: [{"id": ..., "endpoint": ... (optional), "version": ...}].
Exit 0 when every device reached --target (or --expect-fail devices
reported their failure), 1 otherwise."""
import argparse
import hashlib
import json
import os
import random
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from coap_raw import build, parse, uint, ival  # noqa: E402

CON, NON, ACK, RST = 0, 1, 2, 3
GET, POST, PUT, DELETE = 1, 2, 3, 4
CREATED, DELETED, CHANGED, CONTENT = 0x41, 0x42, 0x44, 0x45
BAD_REQUEST, NOT_FOUND, NOT_ALLOWED = 0x80, 0x84, 0x85
CONTINUE, INCOMPLETE, TOO_LARGE = 0x5F, 0x88, 0x8D  # 2.31, 4.08, 4.13
TLV = 11542
SENML_JSON, SENML_CBOR = 110, 112
NOT_ACCEPTABLE, UNSUPPORTED_FORMAT = 0x86, 0x8F


def cbor_head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for ai, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | ai]) + n.to_bytes(size, "big")
    raise ValueError(n)


def cbor(v):
    """The few CBOR items SenML needs: ints, text, lists, dicts."""
    if isinstance(v, bool):
        return bytes([0xF5 if v else 0xF4])
    if isinstance(v, int):
        return cbor_head(0, v) if v >= 0 else cbor_head(1, -1 - v)
    if isinstance(v, str):
        b = v.encode()
        return cbor_head(3, len(b)) + b
    if isinstance(v, list):
        return cbor_head(4, len(v)) + b"".join(cbor(x) for x in v)
    if isinstance(v, dict):
        return cbor_head(5, len(v)) + b"".join(cbor(k) + cbor(x) for k, x in v.items())
    raise TypeError(v)


def uncbor(b, i=0):
    """(item, next index): ints, text, bytes, lists, dicts."""
    major, ai = b[i] >> 5, b[i] & 31
    i += 1
    if ai < 24:
        n = ai
    else:
        size = 1 << (ai - 24)
        n = int.from_bytes(b[i:i + size], "big")
        i += size
    if major == 0:
        return n, i
    if major == 1:
        return -1 - n, i
    if major in (2, 3):
        v = b[i:i + n]
        return (v.decode() if major == 3 else v), i + n
    if major == 4:
        out = []
        for _ in range(n):
            x, i = uncbor(b, i)
            out.append(x)
        return out, i
    if major == 5:
        out = {}
        for _ in range(n):
            k, i = uncbor(b, i)
            out[k], i = uncbor(b, i)
        return out, i
    raise ValueError("major %d" % major)


def senml_value(obj, res, val, fmt):
    """A resource's value as SenML JSON (110) or CBOR (112)."""
    base = "/%d/0/%d" % (obj, res)
    if isinstance(val, list):
        recs = [{"bn": base + "/", "n": "0", "v": val[0]}] + [{"n": str(k), "v": x} for k, x in enumerate(val) if k]
    elif isinstance(val, str):
        recs = [{"bn": base, "vs": val}]
    else:
        recs = [{"bn": base, "v": val}]
    if fmt == SENML_JSON:
        return json.dumps(recs).encode()
    labels = {"bn": -2, "n": 0, "v": 2, "vs": 3}
    return cbor([{labels[k]: x for k, x in r.items()} for r in recs])


def written_text(payload, fmt):
    """The string a Write carries, by its Content-Format."""
    if fmt == SENML_JSON:
        return json.loads(payload)[0].get("vs", "")
    if fmt == SENML_CBOR:
        return uncbor(payload)[0][0].get(3, "")
    if fmt == TLV:
        h = payload[0]
        i = 3 if h & 0x20 else 2
        lt = (h >> 3) & 3
        n = h & 7 if lt == 0 else int.from_bytes(payload[i:i + lt], "big")
        i += lt
        return payload[i:i + n].decode(errors="replace")
    return payload.decode(errors="replace")


def code_byte(text):
    c, d = text.split(".")
    return (int(c) << 5) | int(d)


def tlv_resource(rid, value, multiple=False):
    """One TLV: a resource with its value, or a multiple resource of ints."""
    if multiple:
        inner = b"".join(tlv_item(1, i, int_bytes(v)) for i, v in enumerate(value))
        return tlv_item(2, rid, inner)
    return tlv_item(3, rid, value if isinstance(value, bytes) else int_bytes(value))


def int_bytes(v):
    for n in (1, 2, 4, 8):
        try:
            return v.to_bytes(n, "big", signed=True)
        except OverflowError:
            continue
    raise ValueError(v)


def tlv_item(typ, ident, value):
    t = typ << 6
    idb = bytes([ident]) if ident < 256 else struct.pack("!H", ident)
    if ident >= 256:
        t |= 0x20
    n = len(value)
    if n < 8:
        t |= n
        lb = b""
    elif n < 256:
        t |= 0x08
        lb = bytes([n])
    else:
        t |= 0x10
        lb = struct.pack("!H", n)
    return bytes([t]) + idb + lb + value


def response(req, code, payload=b"", opts=()):
    """A piggybacked ACK for a CON request, or a NON answer."""
    mtype = ACK if req["type"] == CON else NON
    mid = req["mid"] if req["type"] == CON else random.randint(0, 0xFFFF)
    token = req["token"]
    options = sorted(opts, key=lambda o: o[0])
    hdr = bytes([0x40 | (mtype << 4) | len(token), code]) + struct.pack("!H", mid) + token
    from coap_raw import opt_bytes
    data = hdr + opt_bytes(options)
    if payload:
        data += b"\xff" + payload
    return data


def coap_fetch(url, timeout=60):
    """GET coap://host:port/path block by block; the body."""
    rest = url[len("coap://"):]
    hostport, path = rest.split("/", 1)
    host, port = hostport.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2.0)
    body = b""
    num = 0
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            data, mid, tok = build("/" + path, block=(num, 6))
            try:
                s.sendto(data, (host, int(port)))
                r = parse(s.recv(2048))
            except socket.timeout:
                continue
            if r["code"] != "2.05":
                raise IOError("CoAP %s" % r["code"])
            body += r["payload"]
            b2 = ival(r["opts"].get(23, [b""])[0])
            if not (b2 & 8):
                return body
            num += 1
        raise IOError("CoAP download timed out")
    finally:
        s.close()


def http_fetch(url, timeout=60):
    ctx = ssl._create_unverified_context() if url.startswith("https") else None
    with urllib.request.urlopen(url, timeout=timeout, context=ctx) as r:
        return r.read()


class Device(threading.Thread):
    def __init__(self, spec, a, stats):
        super().__init__(daemon=True)
        self.id = spec["id"]
        self.ep = spec.get("endpoint", spec["id"])
        self.version = spec["version"]
        self.a = a
        self.stats = stats
        host, port = a.server.rsplit(":", 1)
        self.server = (host, int(port))
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", 0))
        self.s.settimeout(0.2)
        self.lock = threading.Lock()
        self.queue = self.id in a.queue
        self.tlv = self.id in a.tlv
        self.only = dict(a.formats_map).get(self.id)
        self.naps = dict(a.nap_map).get(self.id, 0)
        self.push = self.id in a.push
        self.push_szx = dict(a.push_szx_map).get(self.id, 6)
        self.push_nap = dict(a.push_nap_map).get(self.id)
        self.push_buf = bytearray()  # the blocks pushed so far
        self.push_size = None  # Size1 of the push under way
        self.pushes = 0  # pushes begun (a first block)
        self.pushed_sha = []  # SHA-256 of each package pushed whole
        self.blocks = 0  # blocks taken
        self.write_formats = []  # the Content-Format of each Write it took
        self.attrs = {}  # path -> the attributes written on it
        self.fail = dict(a.fail_map).get(self.id)
        self.state, self.result, self.uri = 0, 0, ""
        self.observers = {}  # resource -> (token, seq)
        self.loc = None
        self.awake_until = 0.0
        self.outcome = "running"
        self.log = []
        self.reboots = 0
        self.downloads = 0

    # ---- the socket ------------------------------------------------------
    def send(self, data):
        self.s.sendto(data, self.server)
        if self.queue and self.awake_until > 0:
            # LwM2M 1.1, 6.5 (queue mode): the receiver stays on for a while
            # after each message the client sends, not only its Update
            self.awake_until = max(self.awake_until, time.time() + self.a.awake)

    def request(self, path, code, payload=b"", tries=5):
        """A CON request to the server; its response (other datagrams that
        arrive meanwhile are served)."""
        data, mid, tok = build(path, code=code, payload=payload)
        wait = 2.0
        for _ in range(tries):
            self.send(data)
            end = time.time() + wait
            while time.time() < end:
                r = self.recv_one()
                if r is None:
                    continue
                if r["type"] in (ACK, RST) and r["mid"] == mid and r["token"] in (tok, b""):
                    if r["type"] == RST:
                        return None
                    return r
                self.serve(r)
            wait *= 2
        return None

    def recv_one(self):
        try:
            data = self.s.recv(4096)
        except socket.timeout:
            return None
        try:
            return parse(data)
        except Exception:
            return None

    def notify(self, res):
        ob = self.observers.get(res)
        if ob is None:
            return
        tok, seq = ob
        seq += 1
        self.observers[res] = (tok, seq)
        val = self.state if res == 3 else self.result
        payload, fmt = self.value(5, res, val)
        hdr = bytes([0x40 | (NON << 4) | len(tok), CONTENT]) + struct.pack(
            "!H", random.randint(0, 0xFFFF)) + tok
        from coap_raw import opt_bytes
        data = hdr + opt_bytes([(6, uint(seq)), (12, uint(fmt))]) + b"\xff" + payload
        self.send(data)
        self.stats["notifications"] += 1

    def value(self, obj, res, val):
        if self.only in (SENML_JSON, SENML_CBOR):
            return senml_value(obj, res, val, self.only), self.only
        if self.tlv or self.only == TLV:
            if isinstance(val, list):
                return tlv_resource(res, val, multiple=True), TLV
            if isinstance(val, str):
                return tlv_resource(res, val.encode()), TLV
            return tlv_resource(res, val), TLV
        if isinstance(val, list):
            return tlv_resource(res, val, multiple=True), TLV
        return str(val).encode(), 0

    def set_fw(self, state=None, result=None):
        with self.lock:
            if result is not None and result != self.result:
                self.result = result
                self.notify(5)
            if state is not None and state != self.state:
                self.state = state
                self.notify(3)

    # ---- serving the server's requests ----------------------------------
    def serve(self, r):
        if r["type"] in (ACK, RST):
            return
        if self.queue and time.time() > self.awake_until:
            self.stats["dropped_asleep"] += 1
            return  # asleep: the radio is off
        code = r["code"]
        path = "/".join(p.decode() for p in r["opts"].get(11, []))
        observe = 6 in r["opts"]
        self.stats["requests"] += 1
        fmt = ival(r["opts"][12][0]) if 12 in r["opts"] else 0
        if self.only is not None and code == "0.01":
            accept = ival(r["opts"][17][0]) if 17 in r["opts"] else None
            if accept != self.only:
                self.stats["refused_format"] += 1
                self.send(response(r, NOT_ACCEPTABLE))
                return
        if code == "0.03" and path in ("5/0/3", "5/0/5") and not r["payload"]:
            # Write-Attributes: the Uri-Query options, no payload
            self.attrs.setdefault(path, []).extend(q.decode() for q in r["opts"].get(15, []))
            self.send(response(r, CHANGED))
            return
        if self.only is not None and code == "0.03" and fmt != self.only:
            self.stats["refused_format"] += 1
            self.send(response(r, UNSUPPORTED_FORMAT))
            return
        if code == "0.01":  # GET
            if path == "3/0/3":
                p, f = self.value(3, 3, self.version)
                self.send(response(r, CONTENT, p, [(12, uint(f))]))
            elif path == "5/0/8":
                p, f = self.value(5, 8, [0, 2])  # CoAP and HTTP 1.1
                self.send(response(r, CONTENT, p, [(12, uint(f))]))
            elif path == "5/0/9":
                p, f = self.value(5, 9, 1 if self.push else 2)  # push only, or both
                self.send(response(r, CONTENT, p, [(12, uint(f))]))
            elif path in ("5/0/3", "5/0/5"):
                res = int(path[-1])
                val = self.state if res == 3 else self.result
                p, f = self.value(5, res, val)
                opts = [(12, uint(f))]
                if observe:
                    self.observers[res] = (r["token"], 1)
                    opts.append((6, uint(1)))
                self.send(response(r, CONTENT, p, opts))
            else:
                self.send(response(r, NOT_FOUND))
        elif code == "0.03" and path == "5/0/1":  # Write Package URI
            if self.naps > 0 and r["payload"]:
                # falls asleep as it arrives: neither it nor its
                # retransmissions are heard until the next Update
                self.naps -= 1
                self.awake_until = 0.0
                self.stats["napped"] += 1
                self.log.append("slept through a write")
                return
            uri = written_text(r["payload"], fmt)
            self.write_formats.append(fmt)
            self.send(response(r, CHANGED))
            self.log.append("write " + uri)
            if uri == "":
                self.uri = ""
                self.set_fw(state=0, result=0)
                return
            if self.state != 0:
                return
            self.uri = uri
            self.set_fw(result=0, state=1)
            threading.Thread(target=self.download, args=(uri,), daemon=True).start()
        elif code == "0.03" and path == "5/0/0":  # Write Package: a pushed block
            self.take_block(r)
        elif code == "0.02" and path == "5/0/2":  # Execute Update
            if self.state != 2:
                self.send(response(r, NOT_ALLOWED))
                return
            self.send(response(r, CHANGED))
            self.log.append("execute")
            self.set_fw(state=3)
            threading.Thread(target=self.install, daemon=True).start()
        else:
            self.send(response(r, NOT_ALLOWED if path.startswith("5/") else NOT_FOUND))

    def take_block(self, r):
        """A block of the package pushed into /5/0/0 (RFC 7959 Block1)."""
        b1 = r["opts"].get(27)
        v = ival(b1[0]) if b1 else 0
        num, more, szx = v >> 4, (v >> 3) & 1, v & 7
        size = 16 << szx
        off = num * size
        if b1 is None and not r["payload"]:
            # an empty Package: the state machine back to idle
            self.push_buf = bytearray()
            self.send(response(r, CHANGED))
            self.set_fw(state=0, result=0)
            return
        if self.push_nap is not None and self.queue and num == self.push_nap:
            # falls asleep as it arrives: neither it nor its
            # retransmissions are heard until the next Update
            self.push_nap = None
            self.awake_until = 0.0
            self.stats["napped"] += 1
            self.log.append("slept through block %d" % num)
            return
        if off == 0 and szx > self.push_szx:
            # too large: the size it takes, in the Block1 of a 4.13
            self.log.append("block of %d refused: 4.13, %d" % (size, 16 << self.push_szx))
            self.send(response(r, TOO_LARGE, b"", [(27, uint(self.push_szx))]))
            return
        if off == 0:
            if self.state not in (0, 1):
                self.send(response(r, NOT_ALLOWED))
                return
            self.push_buf = bytearray()
            self.push_size = ival(r["opts"][60][0]) if 60 in r["opts"] else None
            self.pushes += 1
            self.uri = ""
            self.log.append("push begins (%s bytes)" % self.push_size)
            self.set_fw(result=0, state=1)
        elif off > len(self.push_buf) or self.state != 1:
            # a gap (or no push under way): what it had is not what follows
            self.send(response(r, INCOMPLETE))
            return
        # a block held already (sent again, or a late retransmission of a
        # block it slept through) replaces its own bytes, not what follows
        self.push_buf[off:off + len(r["payload"])] = r["payload"]
        self.blocks += 1
        self.stats["pushed_bytes"] += len(r["payload"])
        if more:
            self.send(response(r, CONTINUE, b"", [(27, uint(num << 4 | 8 | min(szx, self.push_szx)))]))
            return
        self.send(response(r, CHANGED, b"", [(27, uint(num << 4 | min(szx, self.push_szx)))]))
        body = bytes(self.push_buf)
        self.push_buf = bytearray()
        if self.push_size is not None and len(body) != self.push_size:
            self.log.append("push of %d bytes, Size1 said %d" % (len(body), self.push_size))
            self.set_fw(state=0, result=5)
            return
        self.pushed_sha.append(hashlib.sha256(body).hexdigest())
        self.downloads += 1
        self.stats["downloaded_bytes"] += len(body)
        self.log.append("pushed whole: %d bytes" % len(body))
        if self.fail == 5:
            self.fail = None
            self.log.append("integrity failure (on demand)")
            self.set_fw(state=0, result=5)
            self.outcome = "failed_5"
            return
        self.set_fw(state=2)

    def download(self, uri):
        slow = dict(self.a.slow_map).get(self.id)
        if slow:
            time.sleep(slow)  # a slow link: State stays Downloading
            if self.uri != uri:
                return  # cancelled meanwhile (an empty Package URI)
        try:
            body = coap_fetch(uri) if uri.startswith("coap://") else http_fetch(uri)
            self.downloads += 1
            self.stats["downloaded_bytes"] += len(body)
        except Exception as e:
            self.log.append("download failed: %s" % e)
            self.set_fw(state=0, result=4)  # connection lost during download
            return
        if self.fail == 5:
            self.fail = None
            self.log.append("integrity failure (on demand)")
            self.set_fw(state=0, result=5)
            self.outcome = "failed_5"
            return
        self.set_fw(state=2)

    def install(self):
        time.sleep(self.a.install_seconds)
        chain = self.a.chain
        if self.fail == 8:
            self.fail = None
            self.set_fw(state=0, result=8)
            return
        if self.version in chain and chain.index(self.version) + 1 < len(chain):
            self.version = chain[chain.index(self.version) + 1]
        self.set_fw(state=0, result=1)
        self.reboot = True

    # ---- the device's life ----------------------------------------------
    def register(self):
        q = "rd?ep=%s&lt=%d&lwm2m=1.1&b=%s" % (self.ep, self.a.lifetime, "UQ" if self.queue else "U")
        r = self.request("/" + q, POST, b"</>;rt=\"oma.lwm2m\";ct=11543,</1/0>,</3/0>,</5/0>")
        if r is None or r["code"] != "2.01":
            self.log.append("register: %s" % (r["code"] if r else "no answer"))
            return False
        self.loc = "/".join(p.decode() for p in r["opts"].get(8, []))
        self.observers = {}
        self.awake_until = time.time() + self.a.awake
        self.stats["registrations"] += 1
        return True

    def update(self):
        r = self.request("/" + self.loc, POST)
        self.awake_until = time.time() + self.a.awake
        if r is None or r["code"] != "2.04":
            return self.register()
        self.stats["updates"] += 1
        return True

    def run(self):
        end = time.time() + self.a.max_seconds
        self.reboot = False
        while not self.register():
            if time.time() > end:
                self.outcome = "not_registered"
                return
            time.sleep(1)
        interval = self.a.queue_interval if self.queue else self.a.update_interval
        next_update = time.time() + interval
        while time.time() < end:
            if self.reboot:
                self.reboot = False
                self.reboots += 1
                time.sleep(0.2)
                self.register()
                next_update = time.time() + interval
            if time.time() >= next_update:
                self.update()
                next_update = time.time() + interval
            r = self.recv_one()
            if r is not None:
                self.serve(r)
            if self.version == self.a.target and self.state == 0 and self.outcome != "on_target":
                self.outcome = "on_target"
            if self.a.stop.is_set():
                break
        if self.loc and self.a.deregister:
            self.request("/" + self.loc, DELETE, tries=2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--devices", required=True)
    ap.add_argument("--chain", required=True, help="versions in upgrade order, comma-separated")
    ap.add_argument("--target", required=True)
    ap.add_argument("--queue", default="")
    ap.add_argument("--tlv", default="")
    ap.add_argument("--fail", action="append", default=[])
    ap.add_argument("--formats", action="append", default=[],
                    help="ID=FMT: that device takes only that Content-Format")
    ap.add_argument("--nap", action="append", default=[],
                    help="ID=N: that queue-mode device sleeps through its first N Package URI writes")
    ap.add_argument("--slow", action="append", default=[],
                    help="ID=SECONDS: that device waits so long before it downloads")
    ap.add_argument("--push", default="", help="ids that take firmware only pushed (/5/0/9 = 1)")
    ap.add_argument("--push-szx", action="append", default=[],
                    help="ID=N: that device takes pushed blocks of at most 16 << N bytes")
    ap.add_argument("--push-nap", action="append", default=[],
                    help="ID=K: that queue-mode device falls asleep as pushed block K arrives")
    ap.add_argument("--lifetime", type=int, default=60)
    ap.add_argument("--update-interval", type=float, default=5.0)
    ap.add_argument("--queue-interval", type=float, default=10.0,
                    help="seconds between a queue-mode device's Updates (it sleeps between)")
    ap.add_argument("--awake", type=float, default=3.0)
    ap.add_argument("--install-seconds", type=float, default=0.3)
    ap.add_argument("--max-seconds", type=float, default=120)
    ap.add_argument("--expect-fail", default="", help="ids expected to end failed")
    ap.add_argument("--deregister", action="store_true")
    ap.add_argument("--linger", type=float, default=3.0,
                    help="seconds the devices keep answering after all are done")
    ap.add_argument("--out")
    a = ap.parse_args()
    a.chain = a.chain.split(",")
    a.queue = set(x for x in a.queue.split(",") if x)
    a.tlv = set(x for x in a.tlv.split(",") if x)
    a.fail_map = [(k, int(v)) for k, v in (f.split("=") for f in a.fail)]
    a.slow_map = [(k, float(v)) for k, v in (f.split("=") for f in a.slow)]
    a.formats_map = [(k, int(v)) for k, v in (f.split("=") for f in a.formats)]
    a.nap_map = [(k, int(v)) for k, v in (f.split("=") for f in a.nap)]
    a.push = set(x for x in a.push.split(",") if x)
    a.push_szx_map = [(k, int(v)) for k, v in (f.split("=") for f in a.push_szx)]
    a.push_nap_map = [(k, int(v)) for k, v in (f.split("=") for f in a.push_nap)]
    expect_fail = set(x for x in a.expect_fail.split(",") if x)
    a.stop = threading.Event()
    stats = {"registrations": 0, "updates": 0, "requests": 0, "notifications": 0,
             "dropped_asleep": 0, "downloaded_bytes": 0, "refused_format": 0, "napped": 0,
             "pushed_bytes": 0}
    devs = [Device(d, a, stats) for d in json.load(open(a.devices))]
    for d in devs:
        d.start()
        time.sleep(0.01)
    end = time.time() + a.max_seconds
    while time.time() < end:
        done = all(d.outcome == "on_target" or (d.id in expect_fail and d.outcome.startswith("failed"))
                   for d in devs)
        if done:
            break
        time.sleep(0.3)
    time.sleep(a.linger)  # the server reads the last versions after the last registrations
    a.stop.set()
    for d in devs:
        d.join(timeout=15)
    summary = {"totals": dict(stats, outcomes={}), "devices": []}
    for d in devs:
        summary["totals"]["outcomes"][d.outcome] = summary["totals"]["outcomes"].get(d.outcome, 0) + 1
        summary["devices"].append({"id": d.id, "outcome": d.outcome, "version": d.version,
                                   "queue": d.queue, "downloads": d.downloads,
                                   "reboots": d.reboots, "write_formats": d.write_formats,
                                   "push": d.push, "pushes": d.pushes, "blocks": d.blocks,
                                   "pushed_sha": d.pushed_sha,
                                   "attrs": d.attrs,
                                   "log": d.log[-10:]})
    if a.out:
        json.dump(summary, open(a.out, "w"), indent=1)
    ok = all(d.outcome == "on_target" or (d.id in expect_fail and d.outcome.startswith("failed"))
             for d in devs)
    print(json.dumps(summary["totals"]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
