#!/usr/bin/env python3
"""lwm2m_load.py: many simulated LwM2M devices in one process, for
tests/bench/lwm2m.sh (plain CoAP, one UDP socket per device, one epoll
loop; the CoAP encoding of tests/integration/coap_raw.py).

Each device registers (POST /rd, at most --window registrations in
flight, retried after 2 s), answers the server's Reads of /3/0/3, /5/0/8,
/5/0/9 and Observes of /5/0/3, /5/0/5, acknowledges a Write of Package
URI (/5/0/1) with 2.04 and goes to State 1 (Downloading, notified to the
observer; no download is made), and refuses Execute (4.05). Once all are
registered, the devices send registration Updates at --update-rate per
second in total (round robin), each timed from its send to its ACK's
arrival at the device's socket (the kernel's time stamp), and to the
moment this loop took it (which adds the loop's own delays).

  lwm2m_load.py --server HOST:PORT --devices N --prefix P --version V
                --status FILE --out FILE [--update-rate R] [--window W]
                [--lifetime S] [--max-seconds S]

The device ids are P%06d. --status is rewritten every second with the
counts; the process ends on SIGTERM/SIGINT or after --max-seconds and
writes --out: each Update's send time and round trips, each Package URI
write's arrival time."""
import argparse
import json
import os
import random
import resource
import selectors
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from coap_raw import build, parse, opt_bytes, uint  # noqa: E402

CON, NON, ACK, RST = 0, 1, 2, 3
CONTENT, CHANGED, NOT_FOUND, NOT_ALLOWED = 0x45, 0x44, 0x84, 0x85
TLV = 11542
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # also SCM_TIMESTAMPNS
LINKS = b'</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>,</5/0>'


def tlv_multi_int(rid, values):
    inner = b"".join(bytes([0x40 | 1, i, v]) for i, v in enumerate(values))  # 1-byte ints
    return bytes([0x80 | 0x08, rid, len(inner)]) + inner


def answer(req, code, payload=b"", opts=()):
    mtype = ACK if req["type"] == CON else NON
    mid = req["mid"] if req["type"] == CON else random.randint(0, 0xFFFF)
    tok = req["token"]
    data = bytes([0x40 | (mtype << 4) | len(tok), code]) + struct.pack("!H", mid) + tok
    data += opt_bytes(sorted(opts, key=lambda o: o[0]))
    return data + (b"\xff" + payload if payload else b"")


class Dev:
    __slots__ = ("i", "ep", "s", "loc", "mid", "sent", "kind", "tries", "state", "obs", "written")

    def __init__(self, i, ep):
        self.i, self.ep = i, ep
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.setblocking(False)
        # the kernel's arrival time of each datagram: a round trip ends
        # when the answer reaches the device, not when this one loop (busy
        # with the other 9,999 devices) gets round to it
        self.s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.s.bind(("127.0.0.1", 0))
        self.loc = None
        self.mid = None  # the request in flight: its message id
        self.sent = 0.0
        self.kind = None  # "reg" or "upd"
        self.tries = 0
        self.state = 0
        self.obs = {}  # 3 / 5 -> [token, seq]
        self.written = False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--devices", type=int, required=True)
    ap.add_argument("--prefix", default="lwb")
    ap.add_argument("--version", required=True)
    ap.add_argument("--status", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--update-rate", type=float, default=200.0)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--lifetime", type=int, default=86400)
    ap.add_argument("--max-seconds", type=float, default=900)
    a = ap.parse_args()
    host, port = a.server.rsplit(":", 1)
    server = (host, int(port))
    need = a.devices + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    sel = selectors.DefaultSelector()
    devs = []
    for i in range(a.devices):
        d = Dev(i, "%s%06d" % (a.prefix, i))
        sel.register(d.s, selectors.EVENT_READ, d)
        devs.append(d)
    version = a.version.encode()
    updates = []  # (send time, round trip s)
    writes = []  # arrival times of the first Package URI write of each device
    c = {"registered": 0, "reg_failed": 0, "requests": 0, "writes": 0, "updates": 0,
         "update_timeouts": 0, "notifications": 0, "reg_retries": 0}
    pending = list(range(a.devices))  # not yet registered, not in flight
    pending.reverse()
    inflight = set()
    t_start = time.time()
    t_all = None
    next_status = 0.0
    upd_next = None
    rr = 0

    def send_req(d, path, code, payload=b"", kind="upd"):
        data, mid, tok = build(path, code=code, payload=payload)
        d.mid, d.sent, d.kind = mid, time.time(), kind
        d.s.sendto(data, server)
        return data

    def notify(d, res):
        ob = d.obs.get(res)
        if ob is None:
            return
        ob[1] += 1
        tok = ob[0]
        val = d.state if res == 3 else 0
        data = bytes([0x40 | (NON << 4) | len(tok), CONTENT]) + struct.pack(
            "!H", random.randint(0, 0xFFFF)) + tok
        data += opt_bytes([(6, uint(ob[1])), (12, uint(0))]) + b"\xff" + str(val).encode()
        d.s.sendto(data, server)
        c["notifications"] += 1

    def serve(d, r):
        c["requests"] += 1
        code = r["code"]
        path = "/".join(p.decode() for p in r["opts"].get(11, []))
        if code == "0.01":
            if path == "3/0/3":
                d.s.sendto(answer(r, CONTENT, version, [(12, uint(0))]), server)
            elif path == "5/0/8":
                d.s.sendto(answer(r, CONTENT, tlv_multi_int(8, [0, 2]), [(12, uint(TLV))]), server)
            elif path == "5/0/9":
                d.s.sendto(answer(r, CONTENT, b"2", [(12, uint(0))]), server)
            elif path in ("5/0/3", "5/0/5"):
                res = int(path[-1])
                val = d.state if res == 3 else 0
                opts = [(12, uint(0))]
                if 6 in r["opts"]:
                    d.obs[res] = [r["token"], 1]
                    opts.append((6, uint(1)))
                d.s.sendto(answer(r, CONTENT, str(val).encode(), opts), server)
            else:
                d.s.sendto(answer(r, NOT_FOUND), server)
        elif code == "0.03" and path == "5/0/1":
            d.s.sendto(answer(r, CHANGED), server)
            if r["payload"] and not d.written:
                d.written = True
                writes.append(time.time())
                c["writes"] += 1
                d.state = 1
                notify(d, 3)
        else:
            d.s.sendto(answer(r, NOT_ALLOWED if path.startswith("5/") else NOT_FOUND), server)

    reg_path = "/rd?ep=%s&lt=%d&lwm2m=1.1&b=U"
    deadline = t_start + a.max_seconds
    while not stop and time.time() < deadline:
        now = time.time()
        # registrations: a window in flight
        while pending and len(inflight) < a.window:
            d = devs[pending.pop()]
            d.tries = 1
            send_req(d, reg_path % (d.ep, a.lifetime), 2, LINKS, "reg")
            inflight.add(d.i)
        # retries and timeouts
        if int(now * 10) % 5 == 0:
            for i in list(inflight):
                d = devs[i]
                if d.mid is not None and now - d.sent > 2.0 * d.tries:
                    if d.kind == "reg":
                        if d.tries >= 5:
                            inflight.discard(i)
                            d.mid = None
                            c["reg_failed"] += 1
                            continue
                        d.tries += 1
                        c["reg_retries"] += 1
                        data, mid, tok = build(reg_path % (d.ep, a.lifetime), code=2, payload=LINKS)
                        d.mid = mid
                        d.s.sendto(data, server)
                    else:
                        inflight.discard(i)
                        d.mid = None
                        c["update_timeouts"] += 1
                        updates.append((d.sent, None, None))
        # Updates, once all are registered
        if t_all is None and not pending and not inflight:
            t_all = now
            upd_next = now
        if upd_next is not None:
            while upd_next <= now:
                d = devs[rr % a.devices]
                rr += 1
                upd_next += 1.0 / a.update_rate
                if d.loc is None or d.mid is not None:
                    continue
                send_req(d, "/" + d.loc, 2, b"", "upd")
                inflight.add(d.i)
        for key, _ in sel.select(timeout=0.005):
            d = key.data
            while True:
                try:
                    data, anc, _, _ = d.s.recvmsg(4096, 64)
                except BlockingIOError:
                    break
                except OSError:
                    break
                try:
                    r = parse(data)
                except Exception:
                    continue
                if r["type"] in (ACK, RST):
                    if d.mid is not None and r["mid"] == d.mid:
                        t = time.time()
                        if d.kind == "reg":
                            if r["code"] == "2.01":
                                d.loc = "/".join(p.decode() for p in r["opts"].get(8, []))
                                c["registered"] += 1
                            else:
                                c["reg_failed"] += 1
                        else:
                            arrived = t
                            for lvl, typ, v in anc:
                                if lvl == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                                    sec, ns = struct.unpack("qq", v[:16])
                                    arrived = sec + ns / 1e9
                            updates.append((d.sent, arrived - d.sent, t - d.sent))
                            c["updates"] += 1
                        d.mid = None
                        inflight.discard(d.i)
                    continue
                serve(d, r)
        if now >= next_status:
            next_status = now + 1.0
            st = dict(c, t=now, all_registered_at=t_all, first_write=writes[0] if writes else None,
                      last_write=writes[-1] if writes else None)
            with open(a.status + ".tmp", "w") as f:
                json.dump(st, f)
            os.replace(a.status + ".tmp", a.status)
    with open(a.out, "w") as f:
        json.dump({"counts": c, "all_registered_at": t_all, "started_at": t_start,
                   "updates": updates, "writes": writes}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
