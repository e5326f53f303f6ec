#!/usr/bin/env python3
"""dfotasim: simulated Quectel modules (and their host MCUs) against dfotad.

A Device behaves like a module plus the host MCU that drives it:

  host:   GET /v1/update?device=ID&version=V  (X-Device-Token), JSON answer
  module: AT+QFOTADL=<url>[,<breakpoint>[,<request_size>]]  -> GET /f/TOKEN
          whole file, from a breakpoint (Range: bytes=N-), or in segments
          (Range: bytes=N-(N+rs-1), a fresh connection each, HTTPEND,712)
  host:   POST /v1/report?device=ID  the URC lines the module printed
  module: HTTPEND,0 -> START, UPDATING,<pct>, END,0 -> reboot onto "to"
  host:   check-in again with the new version, until 204

Faults per device: drop (connection cut mid-transfer, HTTPEND,711, resume
later), 511 (the device's real firmware is not the version it reported:
END,511, then check-in with the real version), 710 (HTTPEND,710), 506
(END,506), silence (after the download it never reports nor checks in).

Python 3 standard library only. Importable (import dfotasim) and a CLI:

  dfotasim.py --server http://127.0.0.1:PORT --devices FILE.json \
      [--concurrency N] [--mode whole|breakpoint|segments|mixed] \
      [--request-size 10240] [--faults SPEC] [--max-seconds S] [--summary]

  dfotasim.py checkin  --server URL --device ID --secret S --version V
  dfotasim.py download --url URL --out FILE [--breakpoint N|auto]
                       [--request-size RS] [--stop-at FRACTION|--stop-bytes N]
  dfotasim.py report   --server URL --device ID --secret S LINE...

Run "dfotasim.py --help" (and "dfotasim.py download --help") for the rest;
tests/sim/README.md describes it.

Every network call has a timeout; only loopback addresses are contacted;
the whole run is bounded by --max-seconds.
"""

import argparse
import hashlib
import heapq
import ipaddress
import json
import os
import random
import re
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse

__all__ = [
    "Device", "Fault", "Fleet", "SimError", "parse_faults", "assign_faults",
    "load_devices", "module_download", "main",
]

VERSION = "1.0"

MODES = ("whole", "breakpoint", "segments")
FAULT_KINDS = ("drop", "511", "710", "506", "silence")
# faults after which the device is not expected to reach the target
TERMINAL_FAULTS = ("511", "710", "506", "silence")

RETRYABLE = (701, 702, 703, 704, 709, 711)

# a module's idea of HTTP failures, as HTTPEND codes
E_UNKNOWN = 701
E_CONNECT = 702
E_REQUEST = 703
E_TIMEOUT = 704
E_URL = 705
E_NOFILE = 706
E_CHECK = 710
E_DISCONNECT = 711
E_SEGMENT = 712

MAX_HEAD = 32768          # response header block bound
MAX_BODY = 256 << 20      # bodies of check-in/report/admin answers: far less
MAX_LIST = 20             # errors/anomalies kept per device


class SimError(Exception):
    """A problem the simulator cannot work around (bad arguments, a URL
    that is not on loopback, ...)."""


# ---------------------------------------------------------------------------
# Small helpers

def _now():
    return time.monotonic()


def _loopback_addrs(host, port):
    """getaddrinfo for host, keeping only loopback addresses; SimError when
    the name resolves to anything else (or nothing)."""
    h = host.strip("[]")
    try:
        infos = socket.getaddrinfo(h, port, 0, socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise SimError("cannot resolve %r: %s" % (host, e))
    out = []
    for fam, typ, proto, _, addr in infos:
        try:
            ip = ipaddress.ip_address(addr[0].split("%")[0])
        except ValueError:
            continue
        if not ip.is_loopback:
            raise SimError("refusing non-loopback address %s for %r" % (addr[0], host))
        out.append((fam, typ, proto, addr))
    if not out:
        raise SimError("no address for %r" % host)
    return out


def _split_url(url):
    """(scheme, host, port, path+query) of an http(s) or ftp(s) URL with a host."""
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("http", "https", "ftp", "ftps") or not u.hostname:
        raise SimError("not an http(s) or ftp(s) URL: %r" % url)
    port = u.port or {"https": 443, "ftp": 21, "ftps": 990}.get(u.scheme, 80)
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    host = u.hostname
    return u.scheme, host, port, path


def _hostport(host, port):
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def _connect(host, port, timeout, rcvbuf=0):
    """A TCP connection to a loopback address of host."""
    last = None
    for fam, typ, proto, addr in _loopback_addrs(host, port):
        s = socket.socket(fam, typ, proto)
        try:
            s.settimeout(timeout)
            if rcvbuf:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            s.connect(addr)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return s
        except OSError as e:
            last = e
            s.close()
    raise last or OSError("connect failed")


def _abort(sock):
    """Closes a socket abruptly (RST), like a module losing its data call."""
    try:
        raw = sock
        if isinstance(sock, ssl.SSLSocket):
            # the TLS layer would try a close_notify; cut the TCP below it
            raw = socket.socket(fileno=os.dup(sock.fileno()))
            sock.close()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raw.close()
    except OSError:
        try:
            sock.close()
        except OSError:
            pass


def _read_head(sock, deadline):
    """Reads an HTTP response head; returns (status, reason, headers, rest)
    where headers maps lower-case names to lists of values."""
    data = b""
    while b"\r\n\r\n" not in data:
        if deadline is not None and _now() > deadline:
            raise socket.timeout("deadline")
        b = sock.recv(8192)
        if not b:
            raise ConnectionError("connection closed in the response head (%d bytes)" % len(data))
        data += b
        if len(data) > MAX_HEAD and b"\r\n\r\n" not in data[:MAX_HEAD + 4]:
            raise ConnectionError("response head over %d bytes" % MAX_HEAD)
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/(\d)\.(\d) (\d{3})(?: (.*))?$", lines[0])
    if not m:
        raise ConnectionError("bad status line %r" % lines[0][:100])
    hdrs = {}
    for line in lines[1:]:
        k, sep, v = line.partition(":")
        if not sep:
            raise ConnectionError("bad header line %r" % line[:100])
        hdrs.setdefault(k.strip().lower(), []).append(v.strip())
    return int(m.group(3)), m.group(4) or "", hdrs, rest


def _h1(hdrs, name):
    v = hdrs.get(name.lower())
    return v[-1] if v else None


def _ssl_context(cafile=None, insecure=False, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
    # modules send no SNI by default: no name to check against
    ctx.check_hostname = False
    if insecure:
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


class _Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> [values]
        self.body = body

    def header(self, name):
        return _h1(self.headers, name)

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None


def http_call(method, url, headers=None, body=None, timeout=10.0, ssl_context=None,
              deadline=None):
    """One request on a fresh connection (Connection: close), only to
    loopback. Returns a _Resp; raises OSError/ConnectionError/SimError."""
    scheme, host, port, path = _split_url(url)
    t = timeout
    if deadline is not None:
        t = max(0.05, min(t, deadline - _now()))
    sock = _connect(host, port, t)
    try:
        if scheme == "https":
            ctx = ssl_context or _ssl_context(insecure=True)
            sock = ctx.wrap_socket(sock, server_hostname=None)
        hdrs = {"Host": _hostport(host, port), "User-Agent": "dfotasim/" + VERSION,
                "Connection": "close"}
        hdrs.update(headers or {})
        if body is not None:
            hdrs["Content-Length"] = str(len(body))
        req = "%s %s HTTP/1.1\r\n" % (method, path)
        req += "".join("%s: %s\r\n" % kv for kv in hdrs.items()) + "\r\n"
        sock.sendall(req.encode("latin-1") + (body or b""))
        status, _, rh, rest = _read_head(sock, deadline)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return _Resp(status, rh, b"")
        cl = _h1(rh, "content-length")
        te = _h1(rh, "transfer-encoding")
        data = bytearray(rest)
        if te and "chunked" in te.lower():
            data = _read_chunked(sock, data, deadline)
        elif cl is not None:
            n = int(cl)
            if n > MAX_BODY:
                raise ConnectionError("body of %d bytes" % n)
            while len(data) < n:
                b = sock.recv(min(65536, n - len(data)))
                if not b:
                    raise ConnectionError("body cut short: %d of %d bytes" % (len(data), n))
                data += b
            del data[n:]
        else:
            while True:
                b = sock.recv(65536)
                if not b:
                    break
                data += b
                if len(data) > MAX_BODY:
                    raise ConnectionError("body too large")
        return _Resp(status, rh, bytes(data))
    finally:
        try:
            sock.close()
        except OSError:
            pass


def _read_chunked(sock, buf, deadline):
    out = bytearray()

    def need(n):
        while len(buf) < n:
            b = sock.recv(65536)
            if not b:
                raise ConnectionError("chunked body cut short")
            buf.extend(b)

    while True:
        while b"\r\n" not in buf:
            need(len(buf) + 1)
        line, _, rest = bytes(buf).partition(b"\r\n")
        del buf[:len(line) + 2]
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return out
        need(size + 2)
        out += buf[:size]
        del buf[:size + 2]
        if len(out) > MAX_BODY:
            raise ConnectionError("body too large")


# ---------------------------------------------------------------------------
# The module's HTTP client: one AT+QFOTADL request

class Fetch:
    """What one module request did."""

    def __init__(self):
        self.status = None
        self.code = None          # HTTPEND code this request ends with (None: fine)
        self.error = None         # text, when it failed
        self.anomalies = []       # server behaviour a module would not expect
        self.received = 0         # body bytes read
        self.total = None         # package size the server told
        self.aborted = False      # we cut the connection on purpose


def _ftp_request(url, start, end, sink, *, timeout=10.0, deadline=None, stop_after=None,
                 stop_fraction=None, ssl_context=None, rcvbuf=32768, expect_total=None):
    """module_request for ftp:// and ftps:// (implicit TLS) URLs, as a module
    does AT+QFOTADL="ftp://USER:PASS@HOST:PORT/PATH": log in, TYPE I, SIZE,
    EPSV, REST start (when > 0), RETR; over ftps PBSZ 0 and PROT P, the data
    connection resuming the control connection's TLS session. status is
    200 (206 with a REST) once the data flows, as for HTTP; end (a segment)
    is read and then the data connection is dropped."""
    f = Fetch()
    u = urllib.parse.urlsplit(url)
    scheme, host, port, _ = _split_url(url)
    user = urllib.parse.unquote(u.username or "anonymous")
    pw = urllib.parse.unquote(u.password or "")
    name = urllib.parse.unquote(u.path.lstrip("/"))
    t = timeout if deadline is None else max(0.05, min(timeout, deadline - _now()))
    ctl = data = None
    ctx = ssl_context or _ssl_context(insecure=True)

    def reply(fh):
        line = fh.readline(1024)
        if not line:
            raise ConnectionError("control connection closed")
        code = line[:3]
        while line[3:4] == b"-":
            line = fh.readline(1024)
            if not line:
                raise ConnectionError("control connection closed")
        return int(code), line.decode("latin-1").strip()

    def cmd(fh, text):
        ctl.sendall(text.encode("latin-1") + b"\r\n")
        return reply(fh)

    try:
        try:
            ctl = _connect(host, port, t)
            if scheme == "ftps":
                ctl = ctx.wrap_socket(ctl, server_hostname=None)
        except socket.timeout as e:
            f.code, f.error = E_TIMEOUT, "connect: timeout (%s)" % e
            return f
        except OSError as e:
            f.code, f.error = E_CONNECT, "connect: %s" % e
            return f
        fh = ctl.makefile("rb")
        reply(fh)
        cmd(fh, "USER " + user)
        code, text = cmd(fh, "PASS " + pw)
        if code != 230:
            f.status = code
            f.code, f.error = E_REQUEST, "login refused: %s" % text
            return f
        cmd(fh, "TYPE I")
        code, text = cmd(fh, "SIZE " + name)
        if code != 213:
            f.status = code
            f.code, f.error = E_NOFILE, "SIZE: %s" % text
            return f
        f.total = int(text.split()[1])
        if expect_total is not None and f.total != expect_total:
            f.anomalies.append("package size %d, check-in said %d" % (f.total, expect_total))
        if scheme == "ftps":
            cmd(fh, "PBSZ 0")
            cmd(fh, "PROT P")
        code, text = cmd(fh, "EPSV")
        if code != 229:
            f.code, f.error = E_REQUEST, "EPSV: %s" % text
            return f
        dport = int(text.split("|||")[1].split("|")[0])
        data = _connect(host, dport, t, rcvbuf)
        if start > 0:
            code, text = cmd(fh, "REST %d" % start)
            if code != 350:
                f.code, f.error = E_REQUEST, "REST: %s" % text
                return f
        code, text = cmd(fh, "RETR " + name)
        if code != 150:
            f.status = code
            f.code, f.error = (E_NOFILE if code == 550 else E_REQUEST), "RETR: %s" % text
            return f
        f.status = 206 if start > 0 else 200
        if scheme == "ftps":
            data = ctx.wrap_socket(data, server_hostname=None, session=ctl.session)
        length = f.total - start
        if stop_fraction is not None and stop_after is None and f.total:
            stop_after = max(0, int(f.total * stop_fraction) - start)
        limit = length if end is None else min(length, end - start + 1)
        if stop_after is not None:
            limit = min(limit, stop_after)
        off, got = start, 0
        while got < limit:
            if deadline is not None and _now() > deadline:
                raise socket.timeout("run deadline")
            b = data.recv(min(65536, limit - got))
            if not b:
                f.received = got
                f.code, f.error = E_DISCONNECT, "data closed after %d of %d bytes" % (got, length)
                return f
            sink(off, b)
            off += len(b)
            got += len(b)
        f.received = got
        if got < length:
            # a cut (or the end of a segment): the data connection goes
            # abruptly, like a module's data call
            f.aborted = stop_after is not None
            _abort(data)
            data = None
            return f
        # the end of the file is the end of the data connection, then 226
        while data.recv(4096):
            pass
        code, text = reply(fh)
        if code != 226:
            f.code, f.error = E_DISCONNECT, "after the data: %s" % text
        return f
    except socket.timeout as e:
        f.code, f.error = E_TIMEOUT, "timeout: %s" % e
        return f
    except (OSError, ConnectionError, ValueError, IndexError) as e:
        f.code, f.error = E_DISCONNECT, "%s: %s" % (type(e).__name__, e)
        return f
    finally:
        for sock in (data, ctl):
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass


def module_request(url, start, end, sink, *, timeout=10.0, deadline=None, stop_after=None,
                   stop_fraction=None, headers=None, ssl_context=None, rcvbuf=32768,
                   expect_total=None):
    """Does what a module does for AT+QFOTADL=url,start[,rs]: one GET on a
    fresh connection, "Range: bytes=start-[end]" when start > 0 or end is
    set, nothing else. sink(offset, bytes) gets the body at the offset the
    module asked for (like a module, it does not trust anything else).
    stop_after: cut the connection (RST) after that many body bytes;
    stop_fraction: ... once the body reaches that fraction of the package
    (its size taken from the response). Returns a Fetch. ftp:// and
    ftps:// URLs go to _ftp_request."""
    if url.startswith(("ftp://", "ftps://")):
        return _ftp_request(url, start, end, sink, timeout=timeout, deadline=deadline,
                            stop_after=stop_after, stop_fraction=stop_fraction,
                            ssl_context=ssl_context, rcvbuf=rcvbuf, expect_total=expect_total)
    f = Fetch()
    scheme, host, port, path = _split_url(url)
    t = timeout if deadline is None else max(0.05, min(timeout, deadline - _now()))
    try:
        sock = _connect(host, port, t, rcvbuf)
    except socket.timeout as e:
        f.code, f.error = E_TIMEOUT, "connect: timeout (%s)" % e
        return f
    except OSError as e:
        f.code, f.error = E_CONNECT, "connect: %s" % e
        return f
    try:
        if scheme == "https":
            ctx = ssl_context or _ssl_context(insecure=True)
            sock = ctx.wrap_socket(sock, server_hostname=None)
        req = "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: QUECTEL_MODULE\r\nAccept: */*\r\n" % (
            path, _hostport(host, port))
        ranged = start > 0 or end is not None
        if ranged:
            req += "Range: bytes=%d-%s\r\n" % (start, "" if end is None else str(end))
        for k, v in (headers or {}).items():
            req += "%s: %s\r\n" % (k, v)
        req += "Connection: close\r\n\r\n"
        sock.sendall(req.encode("latin-1"))
        status, _, hdrs, rest = _read_head(sock, deadline)
        f.status = status
        cl_all = hdrs.get("content-length", [])
        te = _h1(hdrs, "transfer-encoding")
        if len(cl_all) > 1 and len(set(cl_all)) > 1:
            f.anomalies.append("%d: several Content-Length headers %r" % (status, cl_all))
        if te:
            f.anomalies.append("%d: Transfer-Encoding %r (modules fail on chunked)" % (status, te))
            f.code, f.error = E_REQUEST, "Transfer-Encoding %s" % te
            return f
        if status == 404:
            f.code, f.error = E_NOFILE, "HTTP 404"
            return f
        if status not in (200, 206):
            f.code, f.error = E_REQUEST, "HTTP %d" % status
            if status == 416:
                f.error += " (Content-Range %r)" % _h1(hdrs, "content-range")
            return f
        if not cl_all:
            f.anomalies.append("%d without Content-Length" % status)
            f.code, f.error = E_REQUEST, "no Content-Length"
            return f
        try:
            length = int(cl_all[-1])
        except ValueError:
            f.code, f.error = E_REQUEST, "bad Content-Length %r" % cl_all[-1]
            return f
        # what we expect to get
        if status == 206:
            cr = _h1(hdrs, "content-range") or ""
            m = re.match(r"bytes (\d+)-(\d+)/(\d+)$", cr)
            if not m:
                f.anomalies.append("206 with Content-Range %r" % cr)
                f.code, f.error = E_REQUEST, "bad Content-Range"
                return f
            s, e, tot = int(m.group(1)), int(m.group(2)), int(m.group(3))
            f.total = tot
            want_end = tot - 1 if end is None else min(end, tot - 1)
            if not ranged:
                f.anomalies.append("206 to a request without Range")
            if s != start or e != want_end:
                f.anomalies.append("asked bytes=%d-%s, got Content-Range %s" % (
                    start, "" if end is None else end, cr))
            if length != e - s + 1:
                f.anomalies.append("Content-Length %d but Content-Range %s" % (length, cr))
        else:
            f.total = length if not ranged else None
            if ranged:
                f.anomalies.append("200 (whole body) to Range: bytes=%d-%s; a module writes it at "
                                   "offset %d and corrupts its image" % (
                                       start, "" if end is None else end, start))
        if expect_total is not None and f.total is not None and f.total != expect_total:
            f.anomalies.append("package size %d, check-in said %d" % (f.total, expect_total))
        if stop_fraction is not None and stop_after is None and f.total:
            stop_after = max(0, int(f.total * stop_fraction) - start)
        # the body, written at the offset the module asked for
        off = start
        got = 0
        limit = length if stop_after is None else min(length, stop_after)
        chunk = rest[:limit]
        while True:
            if chunk:
                sink(off, chunk)
                off += len(chunk)
                got += len(chunk)
            if got >= limit:
                break
            if deadline is not None and _now() > deadline:
                raise socket.timeout("run deadline")
            b = sock.recv(min(65536, limit - got))
            if not b:
                f.received = got
                f.code, f.error = E_DISCONNECT, "server closed after %d of %d body bytes" % (got, length)
                return f
            chunk = b
        f.received = got
        if stop_after is not None and got < length:
            f.aborted = True
            _abort(sock)
            sock = None
        return f
    except socket.timeout as e:
        f.code, f.error = E_TIMEOUT, "timeout: %s" % e
        return f
    except (OSError, ConnectionError, ValueError) as e:
        f.code, f.error = E_DISCONNECT, "%s: %s" % (type(e).__name__, e)
        return f
    finally:
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


# ---------------------------------------------------------------------------
# CoAP (RFC 7252, Block2 of RFC 7959): what AT+QFOTADL="coap://..." does.
# Plain CoAP is spoken here; coaps:// goes through libcoap's client
# (coap-client-openssl) with the device's pre-shared key, since the
# standard library has no DTLS.

def _coap_uint(v):
    b = b""
    while v:
        b = bytes([v & 0xFF]) + b
        v >>= 8
    return b


def _coap_get(path, num, szx, mid, token):
    opts = [(11, seg.encode()) for seg in path.strip("/").split("/") if seg]
    opts.append((23, _coap_uint((num << 4) | szx)))
    out, last = b"", 0
    for n, v in opts:
        d = n - last
        last = n
        dh, dx = (d, b"") if d < 13 else (13, bytes([d - 13]))
        lh, lx = (len(v), b"") if len(v) < 13 else (13, bytes([len(v) - 13]))
        out += bytes([(dh << 4) | lh]) + dx + lx + v
    return bytes([0x40 | len(token), 1]) + struct.pack("!H", mid) + token + out


def _coap_parse(data):
    """(code "2.05", {number: [values]}, payload, mid, token)"""
    if len(data) < 4 or data[0] >> 6 != 1:
        raise ValueError("not CoAP")
    tkl = data[0] & 15
    i, num, opts, payload = 4 + tkl, 0, {}, b""
    while i < len(data):
        if data[i] == 0xFF:
            payload = data[i + 1:]
            break
        d, l = data[i] >> 4, data[i] & 15
        i += 1
        for which in (0, 1):
            v = d if which == 0 else l
            if v == 13:
                v = data[i] + 13
                i += 1
            elif v == 14:
                v = struct.unpack("!H", data[i:i + 2])[0] + 269
                i += 2
            if which == 0:
                d = v
            else:
                l = v
        num += d
        opts.setdefault(num, []).append(data[i:i + l])
        i += l
    return ("%d.%02d" % (data[1] >> 5, data[1] & 31), opts, payload,
            struct.unpack("!H", data[2:4])[0], data[4:4 + tkl])


def coap_download(url, start, sink, *, timeout=10.0, deadline=None, stop_at=None, szx=6):
    """Fetches coap://HOST:PORT/PATH block by block from byte start (a
    multiple of the block size), sink(off, data) per block, as a module:
    CON requests, 4 retransmissions (1 s, doubling). stop_at: stop before
    the block holding that byte. Returns (received, total or None, code or
    None: an E_* when it failed)."""
    u = urllib.parse.urlsplit(url)
    if u.scheme != "coap" or not u.hostname or not u.port:
        raise SimError("not a coap://HOST:PORT URL: %r" % url)
    host, port, path = u.hostname, u.port, u.path
    if not ipaddress.ip_address(host).is_loopback:
        raise SimError("only loopback addresses: %r" % url)
    bs = 16 << szx
    num, received, total = start // bs, 0, None
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    mid = random.randint(0, 0xFFFF)
    try:
        s.connect((host, port))
        while True:
            if stop_at is not None and num * bs >= stop_at:
                return received, total, None
            if deadline is not None and _now() > deadline:
                return received, total, E_TIMEOUT
            mid = (mid + 1) & 0xFFFF
            token = os.urandom(4)
            req = _coap_get(path, num, szx, mid, token)
            wait, answer = 1.0, None
            for _ in range(5):
                s.settimeout(min(wait, timeout))
                s.send(req)
                try:
                    while True:
                        code, opts, payload, rmid, rtok = _coap_parse(s.recv(2048))
                        if rtok == token:
                            answer = (code, opts, payload)
                            break
                except (socket.timeout, ValueError):
                    wait *= 2
                    continue
                break
            if answer is None:
                return received, total, E_TIMEOUT
            code, opts, payload = answer
            if code == "4.04":
                return received, total, E_NOFILE
            if code != "2.05" or 23 not in opts:
                return received, total, E_REQUEST
            v = int.from_bytes(opts[23][0], "big")
            bnum, more, bszx = v >> 4, (v >> 3) & 1, v & 7
            if 28 in opts:
                total = int.from_bytes(opts[28][0], "big")
            off = bnum << (bszx + 4)
            sink(off, payload)
            received += len(payload)
            if not more:
                return received, total, None
            num = (off + len(payload)) // bs
    except OSError:
        return received, total, E_CONNECT
    finally:
        s.close()


def coaps_download(url, sink, identity, key, *, timeout=60.0):
    """coaps:// through coap-client-openssl (PSK). Returns (received,
    total, code)."""
    import subprocess
    import tempfile
    with tempfile.NamedTemporaryFile() as out:
        try:
            r = subprocess.run(["coap-client-openssl", "-B", str(int(timeout)), "-u", identity,
                                "-k", key, "-b", "1024", "-o", out.name, url],
                               capture_output=True, timeout=timeout + 10)
        except (OSError, subprocess.TimeoutExpired):
            return 0, None, E_CONNECT
        data = open(out.name, "rb").read()
    if r.returncode != 0 or not data:
        return 0, None, E_CONNECT
    sink(0, data)
    return len(data), len(data), None


def module_download(url, out, *, breakpoint=0, request_size=None, stop_at=None, stop_bytes=None,
                    timeout=10.0, headers=None, ssl_context=None, max_seconds=300.0):
    """AT+QFOTADL=url[,breakpoint[,request_size]] into the file `out`
    (written at offsets). breakpoint "auto" = the file's current size.
    With request_size, loops over segments (fresh connection each) like a
    host re-issuing the command after each HTTPEND,712. stop_at (fraction
    of the package) or stop_bytes (absolute offset): cut the connection
    abruptly there. Returns a dict with the URC lines the module would
    print, bytes, status codes, anomalies and the file's sha256."""
    deadline = _now() + max_seconds
    if breakpoint == "auto":
        breakpoint = os.path.getsize(out) if os.path.exists(out) else 0
    breakpoint = int(breakpoint)
    mode = "r+b" if os.path.exists(out) else "w+b"
    res = {"url": url, "breakpoint": breakpoint, "requests": 0, "statuses": [], "bytes": 0,
           "urcs": ['+QIND: "FOTA","HTTPSTART"'], "anomalies": [], "errors": [], "complete": False,
           "aborted": False}
    with open(out, mode) as fh:
        def sink(off, data):
            fh.seek(off)
            fh.write(data)

        pos = breakpoint
        total = None
        stop_abs = None if stop_bytes is None else int(stop_bytes)
        while True:
            end = None if not request_size else pos + request_size - 1
            stop_after = None
            frac = None
            if stop_abs is None and stop_at is not None and total is not None:
                stop_abs = int(total * float(stop_at))
            if stop_abs is not None:
                if end is None or pos + request_size > stop_abs:
                    stop_after = max(0, stop_abs - pos)
            elif stop_at is not None:
                frac = float(stop_at)   # size unknown yet: from the response
            f = module_request(url, pos, end, sink, timeout=timeout, deadline=deadline,
                               stop_after=stop_after, stop_fraction=frac, headers=headers,
                               ssl_context=ssl_context)
            res["requests"] += 1
            res["statuses"].append(f.status)
            res["bytes"] += f.received
            res["anomalies"] += f.anomalies
            if f.total is not None:
                total = f.total
            if f.code is not None:
                res["errors"].append(f.error)
                res["urcs"].append('+QIND: "FOTA","HTTPEND",%d' % f.code)
                break
            pos += f.received
            if f.aborted:
                # cut on purpose: reported as the data call lost
                res["aborted"] = True
                res["urcs"].append('+QIND: "FOTA","HTTPEND",%d' % E_DISCONNECT)
                break
            if total is not None and total:
                res["urcs"].append('+QIND: "FOTA","DOWNLOADING",%d' % (100 * pos // total))
            if total is not None and pos >= total:
                res["urcs"].append('+QIND: "FOTA","HTTPEND",0')
                res["complete"] = True
                break
            if not request_size:
                res["urcs"].append('+QIND: "FOTA","HTTPEND",0')
                res["complete"] = True
                break
            res["urcs"].append('+QIND: "FOTA","HTTPEND",712')
            if stop_abs is not None and pos >= stop_abs:
                break
            res["urcs"].append('+QIND: "FOTA","HTTPSTART"')
            if _now() > deadline:
                res["errors"].append("max_seconds reached")
                break
        fh.flush()
        if res["complete"] and total is not None:
            fh.truncate(total)
    res["size"] = total
    res["position"] = pos
    h = hashlib.sha256()
    with open(out, "rb") as fh:
        for b in iter(lambda: fh.read(1 << 20), b""):
            h.update(b)
    res["sha256"] = h.hexdigest()
    return res


# ---------------------------------------------------------------------------
# Faults

class Fault:
    """One injected fault. kind: drop | 511 | 710 | 506 | silence.
    param: drop: fraction of the package where the connection is cut
    (default: random 0.2..0.8); 511: the device's real version (default
    "<version>-actual")."""

    def __init__(self, kind, param=None):
        kind = str(kind)
        if kind not in FAULT_KINDS:
            raise SimError("unknown fault %r (known: %s)" % (kind, ", ".join(FAULT_KINDS)))
        self.kind = kind
        self.param = param
        if kind == "drop" and param is not None:
            try:
                v = float(param)
            except ValueError:
                raise SimError("drop@FRACTION: %r is not a number" % param)
            if not 0.0 < v < 1.0:
                raise SimError("drop@FRACTION must be in (0, 1), got %r" % param)

    @property
    def terminal(self):
        return self.kind in TERMINAL_FAULTS

    def __repr__(self):
        return self.kind + ("@%s" % self.param if self.param is not None else "")

    @classmethod
    def parse(cls, text):
        text = str(text).strip()
        kind, sep, param = text.partition("@")
        return cls(kind.strip(), param.strip() if sep else None)


def parse_faults(spec):
    """'drop:5%,511@B:2,710:1%,506,silence:3' -> [(Fault, amount, is_percent)].
    ITEM = KIND[@PARAM][:AMOUNT], AMOUNT = N devices or P% of them (default 1)."""
    out = []
    if not spec:
        return out
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        head, sep, amount = item.rpartition(":")
        if not sep:
            head, amount = item, "1"
        pct = amount.endswith("%")
        try:
            n = float(amount[:-1]) if pct else int(amount)
        except ValueError:
            raise SimError("fault %r: amount %r is not N or P%%" % (item, amount))
        if n < 0 or (pct and n > 100):
            raise SimError("fault %r: amount out of range" % item)
        out.append((Fault.parse(head), n, pct))
    return out


def assign_faults(device_ids, parsed, seed=1):
    """Chooses, deterministically from seed, which devices get which fault:
    {id: [Fault]}; distinct devices while there are enough."""
    rng = random.Random(seed)
    order = list(device_ids)
    rng.shuffle(order)
    result = {}
    i = 0
    for fault, n, pct in parsed:
        count = int(round(len(order) * n / 100.0)) if pct else int(n)
        for _ in range(count):
            if not order:
                break
            dev = order[i % len(order)]
            i += 1
            result.setdefault(dev, []).append(fault)
    return result


# ---------------------------------------------------------------------------
# The device

class Device:
    """A module and its host MCU. Drive it with run() (blocking), step()
    (one action, returns the seconds until the next one or None when
    finished: used by Fleet), or the single actions checkin(), download(),
    report(), install()."""

    # phases of step()
    CHECKIN, DOWNLOAD, INSTALL, FINISH_INSTALL, DONE = range(5)

    def __init__(self, server, id, secret, version, *, mode="whole", breakpoint=None,
                 request_size=None, faults=(), target=None, timeout=10.0,
                 token_header="X-Device-Token", progress=True, progress_step=None,
                 truncated_rate=0.05, batch_rate=0.5, noise_rate=0.05, resetting=None,
                 seed=None, poll_interval=1.0, max_retry_after=30.0, retry_delay=1.0,
                 install_seconds=0.1, max_rounds=20, ssl_context=None, rcvbuf=32768,
                 token_on_download=False, log=None, fleet=None, psk_identity=None, psk=None):
        if mode not in MODES:
            raise SimError("mode %r: one of %s" % (mode, ", ".join(MODES)))
        if request_size is not None and (request_size <= 0 or request_size % 2048):
            raise SimError("request_size must be a positive multiple of 2048")
        # several nodes behind no load balancer: a comma-separated list of
        # base URLs, each request (check-in, report, download segment) to
        # the next one, round-robin over the whole fleet (_Spread)
        self._spread = _Spread(server)
        self.id = str(id)
        self.secret = secret
        self.start_version = version
        self.version = version            # what the host reports
        self.actual_version = version     # what the firmware really is
        self.mode = mode
        self.rng = random.Random(seed if seed is not None else self.id)
        self.breakpoint = breakpoint      # fraction for mode breakpoint (None: random)
        self.request_size = request_size  # None: the server's suggestion, else 10240
        self.faults = [f if isinstance(f, Fault) else Fault.parse(f) for f in faults]
        for f in self.faults:
            if f.kind == "511":
                # the firmware really is another version than the one reported
                real = f.param if f.param and f.param != version else "%s-actual" % version
                self.actual_version = real
        self.target = target
        self.timeout = timeout
        self.token_header = token_header
        self.progress = progress
        self.progress_step = progress_step or self.rng.choice((5, 10, 20, 25))
        self.truncated_rate = truncated_rate
        self.batch_rate = batch_rate
        self.noise_rate = noise_rate
        self.resetting = self.rng.random() < 0.5 if resetting is None else resetting
        self.poll_interval = poll_interval
        self.max_retry_after = max_retry_after
        self.retry_delay = retry_delay
        self.install_seconds = install_seconds
        self.max_rounds = max_rounds
        self.ssl_context = ssl_context
        self.rcvbuf = rcvbuf
        self.token_on_download = token_on_download
        self.psk_identity = psk_identity  # coaps:// (text key, as coap-client takes it)
        self.psk = psk
        self.log = log
        self.fleet = fleet
        self.deadline = None

        self.phase = self.CHECKIN
        self.outcome = None               # see result()
        self.fault_triggered = None
        self.offer = None
        self.data = None                  # bytearray of the package being fetched
        self.data_key = None              # (sha256, size) the data belongs to
        self.have = 0                     # contiguous bytes we hold (the breakpoint)
        self.pending_urcs = []
        self.server_state = None
        self.rounds = 0                   # offers acted upon
        self.consecutive_errors = 0
        self.used = set()                 # fault kinds already used
        self.completed_hops = []          # (from, to) confirmed by our reboot
        # statistics
        self.bytes = 0
        self.req = {"checkin": 0, "download": 0, "report": 0}
        self.statuses = {}                # "checkin 204" -> n
        self.resumes = 0
        self.segments = 0
        self.hops = []
        self.errors = []
        self.anomalies = []
        self.report_lines = 0
        self.retry_afters = {}            # Retry-After value as sent -> count
        self.last_end = None
        self.first_at = None
        self.done_at = None

    # -- bookkeeping ---------------------------------------------------------

    def _log(self, msg):
        if self.log:
            self.log("%s: %s" % (self.id, msg))

    def _err(self, msg):
        self._log("ERROR " + msg)
        if len(self.errors) < MAX_LIST:
            self.errors.append(msg)
        if self.fleet:
            self.fleet.note("errors")

    def _anomaly(self, msg):
        self._log("ANOMALY " + msg)
        if len(self.anomalies) < MAX_LIST:
            self.anomalies.append(msg)
        if self.fleet:
            self.fleet.note_anomaly(msg)

    def _count(self, kind, status):
        self.req[kind] += 1
        k = "%s %s" % (kind, status)
        self.statuses[k] = self.statuses.get(k, 0) + 1
        if self.fleet:
            self.fleet.note("requests")
            self.fleet.note(k)

    def _fault(self, kind):
        for f in self.faults:
            if f.kind == kind and kind not in self.used:
                return f
        return None

    def _trigger(self, f):
        self.used.add(f.kind)
        if f.terminal and self.fault_triggered is None:
            self.fault_triggered = f.kind
        self._log("fault %r" % f)

    @property
    def faulty(self):
        return any(f.terminal for f in self.faults)

    def _timeout(self):
        if self.deadline is None:
            return self.timeout
        return max(0.05, min(self.timeout, self.deadline - _now()))

    def _past_deadline(self):
        return self.deadline is not None and _now() >= self.deadline

    def _auth(self):
        # no secret: the device is known by its client certificate (HTTPS)
        return {self.token_header: self.secret} if self.secret else {}

    @property
    def server(self):
        return self._spread.next()

    # -- check-in ------------------------------------------------------------

    def checkin(self, version=None, accept_json=True):
        """GET /v1/update. Returns {"status": 200, "offer": {...}} |
        {"status": 204} | {"status": 429, "retry_after": s} | {"status": N,
        "error": ...}. The offer is validated; problems become anomalies."""
        v = self.version if version is None else version
        q = urllib.parse.urlencode({"device": self.id, "version": v})
        url = "%s/v1/update?%s" % (self.server, q)
        hdrs = self._auth()
        if accept_json:
            hdrs["Accept"] = "application/json"
        try:
            r = http_call("GET", url, hdrs, timeout=self._timeout(), ssl_context=self.ssl_context,
                          deadline=self.deadline)
        except (OSError, ConnectionError) as e:
            self._count("checkin", "neterr")
            self._spread.down(url)
            return {"status": None, "error": "%s: %s" % (type(e).__name__, e)}
        self._count("checkin", r.status)
        if self.first_at is None:
            self.first_at = time.time()
        if r.status == 200:
            offer = self._parse_offer(r, accept_json)
            if offer is None:
                return {"status": 200, "error": "unusable offer", "body": r.body[:300].decode("latin-1")}
            return {"status": 200, "offer": offer}
        if r.status == 204:
            if r.body:
                self._anomaly("204 with a body")
            return {"status": 204}
        if r.status == 429:
            ra = r.header("retry-after")
            try:
                secs = float(ra)
                if secs < 0:
                    raise ValueError
            except (TypeError, ValueError):
                self._anomaly("429 with Retry-After %r" % ra)
                secs = None
            k = ra if ra is not None else "none"
            self.retry_afters[k] = self.retry_afters.get(k, 0) + 1
            return {"status": 429, "retry_after": secs}
        return {"status": r.status, "error": r.body[:300].decode("latin-1", "replace")}

    def _parse_offer(self, r, accept_json):
        ctype = (r.header("content-type") or "").lower()
        if not accept_json:
            if "text/plain" not in ctype:
                self._anomaly("plain check-in: Content-Type %r" % ctype)
            text = r.body.decode("latin-1")
            url = text.strip()
            if "\n" in text.rstrip("\r\n"):
                self._anomaly("plain check-in body is more than one line: %r" % text[:200])
            offer = {"url": url}
        else:
            if "json" not in ctype:
                self._anomaly("JSON check-in: Content-Type %r" % ctype)
            offer = r.json()
            if not isinstance(offer, dict):
                self._anomaly("JSON check-in: not an object: %r" % r.body[:200])
                return None
            for k in ("url", "size", "sha256", "from", "to"):
                if k not in offer:
                    self._anomaly("JSON offer without %r: %s" % (k, r.body[:300]))
            if not isinstance(offer.get("url"), str):
                return None
            if not isinstance(offer.get("size"), int) or offer["size"] < 0:
                self._anomaly("offer size %r" % (offer.get("size"),))
                offer["size"] = None
            sha = offer.get("sha256")
            if not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
                self._anomaly("offer sha256 %r" % (sha,))
                offer["sha256"] = None
            rs = offer.get("request_size")
            if rs is not None and (not isinstance(rs, int) or rs < 0 or rs % 2048):
                self._anomaly("offer request_size %r is not a multiple of 2048" % (rs,))
            if offer.get("from") is not None and offer.get("from") != self.version:
                self._anomaly("offered %s->%s but the device reported %s" % (
                    offer.get("from"), offer.get("to"), self.version))
        url = offer["url"]
        if len(url.encode()) > 255:
            self._anomaly("URL longer than 255 bytes (%d)" % len(url.encode()))
        try:
            if not url.startswith(("coap://", "coaps://")):
                _split_url(url)
            if urllib.parse.urlsplit(url).port is None:
                self._anomaly("URL without an explicit port: %s" % url)
        except (SimError, ValueError) as e:
            self._anomaly("bad URL %r: %s" % (url, e))
            return None
        return offer

    # -- URC reports ---------------------------------------------------------

    def urc(self, stage, number=None):
        line = '+QIND: "FOTA","%s"' % stage
        if number is not None:
            line += ",%d" % number
        self.pending_urcs.append(line)
        return line

    def flush(self, force=True):
        """Posts the pending URC lines (with the occasional truncated line or
        noise mixed in). force=False posts only sometimes (batching)."""
        if not self.pending_urcs:
            return None
        if not force and self.rng.random() < self.batch_rate:
            return None
        lines = self.pending_urcs
        self.pending_urcs = []
        body = []
        for line in lines:
            if self.rng.random() < self.truncated_rate:
                body.append(self._truncated(line))
            if self.rng.random() < self.noise_rate:
                body.append(self.rng.choice(("OK", "", "+CREG: 1", "+QIND: SMS DONE",
                                             "+CEREG: 1,\"1A2B\",\"01C3D4E5\",9")))
            body.append(line)
        text = "\r\n".join(body) + ("\r\n" if self.rng.random() < 0.8 else "")
        return self.report(text, expect=lines)

    def _truncated(self, line):
        # cut inside the quoted stage name (or "FOTA"): never a usable line
        i = line.index('","') + 3
        j = line.index('"', i)
        k = self.rng.randint(i, j - 1) if j > i else i
        if self.rng.random() < 0.2:
            k = self.rng.randint(len("+QIND: \""), line.index('"FOTA"') + 4)
        return line[:k]

    def report(self, body, content_type="text/plain", expect=None):
        """POST /v1/report. body: str (URC text) or dict (JSON). Returns
        {"status", "json"}; a server state in the answer is remembered.
        expect: the usable lines in body (for checking the answer)."""
        url = "%s/v1/report?%s" % (self.server, urllib.parse.urlencode({"device": self.id}))
        if isinstance(body, dict):
            data = json.dumps(body).encode()
            content_type = "application/json"
        else:
            data = body.encode("latin-1")
        hdrs = self._auth()
        hdrs["Content-Type"] = content_type
        last = None
        for attempt in range(3):
            try:
                r = http_call("POST", url, hdrs, data, timeout=self._timeout(),
                              ssl_context=self.ssl_context, deadline=self.deadline)
            except (OSError, ConnectionError) as e:
                self._count("report", "neterr")
                self._spread.down(url)
                url = "%s/v1/report?%s" % (self.server, urllib.parse.urlencode({"device": self.id}))
                last = "%s: %s" % (type(e).__name__, e)
                if self._past_deadline():
                    break
                time.sleep(0.2 * (attempt + 1))
                continue
            self._count("report", r.status)
            if expect:
                self.report_lines += len(expect)
            j = r.json()
            if r.status == 200:
                if isinstance(j, dict):
                    st = j.get("state")
                    if st is not None:
                        self.server_state = st
                    if expect is not None and isinstance(j.get("accepted"), int) and \
                            j["accepted"] != len(expect):
                        self._anomaly("report of %d usable lines: accepted %r (%s)" % (
                            len(expect), j.get("accepted"), ", ".join(_short(x) for x in expect)))
                    if expect:
                        self._check_state(expect, st)
                else:
                    self._anomaly("report 200 without a JSON object: %r" % r.body[:200])
            elif r.status >= 500:
                last = "HTTP %d" % r.status
                time.sleep(0.2 * (attempt + 1))
                continue
            else:
                self._err("report %s: HTTP %d %s" % (
                    "; ".join(_short(x) for x in expect or [str(body)[:60]]), r.status,
                    r.body[:200].decode("latin-1", "replace")))
            return {"status": r.status, "json": j}
        self._err("report failed: %s" % last)
        return {"status": None, "error": last}

    def _check_state(self, lines, state):
        """Compares the server's state after a report with what the spec says."""
        m = re.search(r'"([A-Z]+)"(?:,(\d+))?$', lines[-1])
        if not m or state is None:
            return
        stage, code = m.group(1), m.group(2)
        code = int(code) if code is not None else None
        want = None
        if stage in ("HTTPSTART", "DOWNLOADING"):
            want = ("offered", "downloading")
        elif stage == "HTTPEND" and code == E_SEGMENT:
            want = ("downloading",)
        elif stage == "HTTPEND" and code == 0:
            want = ("downloaded",)
        elif stage in ("START", "UPDATING") or (stage == "END" and code == 0):
            want = ("updating",)
        elif code in (511, 506, 710, 705, 706):
            want = ("failed",)
        elif code in RETRYABLE:
            want = ("offered", "failed", "pending")
        if want and state not in want:
            self._anomaly("after %s the server state is %r (spec: %s)" % (
                _short(lines[-1]), state, "/".join(want)))

    # -- download ------------------------------------------------------------

    def _sink(self, off, chunk):
        end = off + len(chunk)
        if end > len(self.data):
            # a module writes past the end too (a 200 to a Range, say); the
            # package check later fails
            self.data.extend(b"\0" * (end - len(self.data)))
        self.data[off:end] = chunk

    def download(self, offer, stop_at=None, mode=None, request_size=None, report=True):
        """Fetches offer["url"] like the module, continuing from the bytes
        already held for the same package (the breakpoint). stop_at: cut
        the connection at that fraction (None: to the end). Returns
        {"complete", "code" (HTTPEND code), "bytes", "sha_ok"}. URC lines go
        to the pending report (posted when report=True)."""
        if offer.get("url", "").startswith(("coap://", "coaps://")):
            return self._download_coap(offer, stop_at, report)
        mode = mode or self.mode
        size = offer.get("size")
        key = (offer.get("sha256"), size)
        if self.data is None or self.data_key != key:
            self.data = bytearray()
            self.data_key = key
            self.have = 0
        rs = None
        if mode == "segments":
            rs = request_size or self.request_size or offer.get("request_size") or 10240
            if rs % 2048 or rs <= 0:
                rs = 10240
        hdrs = self._auth() if self.token_on_download else None
        stop_abs = None
        if stop_at is not None and size:
            stop_abs = max(1, int(size * stop_at))
        start_bytes = self.bytes
        requests = 0
        resumed = self.have > 0
        if resumed:
            self.resumes += 1
        result = {"complete": False, "code": None, "bytes": 0, "sha_ok": None}
        last_pct = -1
        failover = 0
        self.urc("HTTPSTART")
        while True:
            if self._past_deadline():
                result["code"] = None
                result["error"] = "deadline"
                break
            pos = self.have
            end = None if rs is None else pos + rs - 1
            stop_after = None
            if stop_abs is not None and stop_abs > pos and (end is None or end >= stop_abs):
                stop_after = stop_abs - pos
            frac = stop_at if (stop_at is not None and stop_abs is None) else None
            seg_url = self._spread.url(offer["url"])
            f = module_request(seg_url, pos, end, self._sink, timeout=self.timeout,
                               deadline=self.deadline, stop_after=stop_after,
                               stop_fraction=frac, headers=hdrs,
                               ssl_context=self.ssl_context, rcvbuf=self.rcvbuf,
                               expect_total=size)
            requests += 1
            self._count("download", f.status if f.status is not None else "neterr")
            if f.status is None:
                self._spread.down(seg_url)
            if rs is not None:
                self.segments += 1
            for a in f.anomalies:
                self._anomaly("GET %s: %s" % (_short_url(offer["url"]), a))
            self.bytes += f.received
            if f.status in (200, 206) and (f.status == 206 or pos == 0):
                self.have = pos + f.received
            elif f.status == 200 and pos > 0:
                # module semantics: written at pos anyway; the image is bad now
                self.have = min(pos + f.received, size or pos + f.received)
            if size is None and f.total is not None:
                size = f.total
            if f.code in (E_CONNECT, E_DISCONNECT) and len(self._spread.bases) > 1 \
                    and failover < 3:
                # a node gone (kill -9): a load balancer sends the next
                # connection to one that answers, from where this one
                # stopped; the module never knows
                self._spread.down(seg_url)
                failover += 1
                continue
            if f.code is not None:
                self._err("download %s at %d: %s" % (_short_url(offer["url"]), pos, f.error))
                result["code"] = f.code
                self.urc("HTTPEND", f.code)
                break
            if self.progress and size:
                pct = 100 * self.have // size
                if 0 < pct < 100 and pct // self.progress_step > last_pct // self.progress_step:
                    last_pct = pct
                    self.urc("DOWNLOADING", pct)
                    if report:
                        self.flush(force=False)
            if f.aborted:
                result["aborted_at"] = self.have
                break
            if size is not None and self.have >= size:
                if self.progress and last_pct < 100:
                    self.urc("DOWNLOADING", 100)
                result["complete"] = True
                break
            if rs is None:
                # a whole response that ended early without an error
                self._err("download ended at %d of %s bytes" % (self.have, size))
                result["code"] = E_DISCONNECT
                self.urc("HTTPEND", E_DISCONNECT)
                break
            # one segment done: HTTPEND,712, the host issues the next command
            self.urc("HTTPEND", E_SEGMENT)
            if report:
                self.flush(force=False)
            if stop_abs is not None and self.have >= stop_abs:
                result["aborted_at"] = self.have
                break
            self.urc("HTTPSTART")
        result["bytes"] = self.bytes - start_bytes
        result["requests"] = requests
        result["resumed"] = resumed
        if result["complete"]:
            del self.data[size:]
            digest = hashlib.sha256(self.data).hexdigest()
            want = offer.get("sha256")
            result["sha256"] = digest
            result["sha_ok"] = None if not want else digest == want
            if want and digest != want:
                self._err("package sha256 %s, check-in said %s" % (digest[:16], want[:16]))
        return result

    def _download_coap(self, offer, stop_at, report):
        """AT+QFOTADL="coap(s)://...": block by block from the breakpoint
        (coap://), or whole through libcoap's client (coaps://). The module
        prints COAPSTART and COAPEND,<err>, no percentage."""
        size = offer.get("size")
        key = (offer.get("sha256"), size)
        if self.data is None or self.data_key != key:
            self.data, self.data_key, self.have = bytearray(), key, 0
        resumed = self.have > 0
        if resumed:
            self.resumes += 1
        self.have -= self.have % 1024
        start = self.have
        self.urc("COAPSTART")
        if offer["url"].startswith("coaps://"):
            got, total, code = coaps_download(offer["url"], self._sink, self.psk_identity or self.id,
                                              self.psk or "", timeout=self.timeout * 6)
            self.have = got
        else:
            stop_abs = int(size * stop_at) if (stop_at is not None and size) else None
            got, total, code = coap_download(offer["url"], start, self._sink, timeout=self.timeout,
                                             deadline=self.deadline, stop_at=stop_abs)
            self.have = start + got
        self._count("download", "coap" if code is None else "neterr")
        self.bytes += got
        result = {"complete": False, "code": code, "bytes": got, "sha_ok": None,
                  "requests": 1, "resumed": resumed}
        size = size or total
        if code is None and size is not None and self.have >= size:
            result["complete"] = True
            del self.data[size:]
            digest = hashlib.sha256(self.data).hexdigest()
            result["sha256"] = digest
            want = offer.get("sha256")
            result["sha_ok"] = None if not want else digest == want
            self.urc("COAPEND", 0)
        elif code is None:
            result["aborted_at"] = self.have
            result["code"] = E_DISCONNECT
            self.urc("COAPEND", E_DISCONNECT)
        else:
            self._err("coap download %s at %d: %d" % (_short_url(offer["url"]), self.have, code))
            self.urc("COAPEND", code)
        if report:
            self.flush(force=False)
        return result

    # -- update --------------------------------------------------------------

    def install(self, offer):
        """START, UPDATING, END,<code> and the reboot, blocking (the code is
        511 when the package's "from" is not the real firmware version, 506
        with that fault, else 0). Returns the END code."""
        self.offer = offer
        time.sleep(self._step_install())
        self._step_finish_install()
        return self.last_end

    def _reboot(self, offer, code):
        if code == 0:
            self.completed_hops.append((offer.get("from"), offer.get("to")))
            self.actual_version = offer.get("to")
            self.version = self.actual_version
        elif code == 511:
            # the host reads the real revision (AT+CGMR) and reports that
            self.version = self.actual_version

    # -- the whole flow, one action at a time -------------------------------

    def _finish(self, outcome):
        self.outcome = outcome
        self.phase = self.DONE
        self.done_at = time.time()
        self.data = None
        self._log("finished: %s on %s" % (outcome, self.version))
        return None

    def _retry_after(self, secs):
        if secs is None:
            secs = self.retry_delay
        secs = min(max(secs, 0.0), self.max_retry_after)
        if secs < 0.05:
            secs = 0.05
        return secs * (1.0 + 0.1 * self.rng.random())

    def step(self):
        """Does the next action; returns seconds until the next step, or
        None when the device is finished (see self.outcome)."""
        if self.phase == self.DONE:
            return None
        if self._past_deadline():
            return self._finish("timeout")
        try:
            if self.phase == self.CHECKIN:
                return self._step_checkin()
            if self.phase == self.DOWNLOAD:
                return self._step_download()
            if self.phase == self.INSTALL:
                return self._step_install()
            if self.phase == self.FINISH_INSTALL:
                return self._step_finish_install()
        except SimError as e:
            self._err(str(e))
            return self._finish("error")
        return None

    def _stop_polling(self):
        """True when the fleet says to stop waiting (rollout over/paused)."""
        return self.fleet is not None and self.fleet.stop_polling()

    def _step_checkin(self):
        r = self.checkin()
        st = r.get("status")
        if st is None:
            self.consecutive_errors += 1
            self._err("check-in: %s" % r.get("error"))
            if self.consecutive_errors >= 10:
                return self._finish("error")
            return self._retry_after(self.retry_delay * min(self.consecutive_errors, 5))
        if st == 200 and "offer" in r:
            self.consecutive_errors = 0
            self.offer = r["offer"]
            self.rounds += 1
            if self.rounds > self.max_rounds:
                self._err("more than %d offers; giving up" % self.max_rounds)
                return self._finish("error")
            hop = (self.offer.get("from"), self.offer.get("to"))
            if hop in self.completed_hops and self.version != hop[0]:
                self._anomaly("offered hop %s->%s again after confirming it" % hop)
            self._log("offer %s->%s %s (%s bytes)" % (hop[0], hop[1], self.offer.get("url"),
                                                      self.offer.get("size")))
            self.phase = self.DOWNLOAD
            return 0
        if st == 204:
            self.consecutive_errors = 0
            if self.target is not None and self.version == self.target:
                return self._finish("on_target")
            if self.fault_triggered:
                return self._finish("faulted")
            if self.target is None:
                return self._finish("done")
            if self._stop_polling():
                return self._finish("stopped")
            return self._retry_after(self.poll_interval)
        if st == 429:
            self.consecutive_errors = 0
            if self._stop_polling():
                return self._finish("faulted" if self.fault_triggered else "stopped")
            return self._retry_after(r.get("retry_after"))
        if st == 403:
            self._err("check-in: 403 (credential refused)")
            return self._finish("error")
        self.consecutive_errors += 1
        self._err("check-in: HTTP %s %s" % (st, (r.get("error") or "")[:120]))
        if st == 404 or self.consecutive_errors >= 10:
            return self._finish("error")
        return self._retry_after(self.retry_delay * min(self.consecutive_errors, 5))

    def _step_download(self):
        offer = self.offer
        size = offer.get("size")
        stop_at = None
        drop = self._fault("drop")
        if drop is not None:
            stop_at = float(drop.param) if drop.param is not None else self.rng.uniform(0.2, 0.8)
        hop = {"from": offer.get("from"), "to": offer.get("to"), "size": size,
               "url": offer.get("url"), "mode": self.mode, "started": round(time.time(), 3)}
        if self.mode == "breakpoint" and drop is None:
            key = (offer.get("sha256"), size)
            if self.data_key != key or self.have == 0:
                # first part, cut abruptly, then resume from the breakpoint
                frac = self.breakpoint if self.breakpoint is not None else self.rng.uniform(0.2, 0.8)
                first = self.download(offer, stop_at=frac)
                hop["cut_at"] = first.get("aborted_at")
                if first.get("error") == "deadline":
                    return self._finish("timeout")
                if first.get("code") is not None:
                    return self._download_failed(offer, first, hop)
                if first["complete"]:
                    res = first
                else:
                    self.flush()
                    res = None
            else:
                res = None
        else:
            res = None
        if res is None:
            res = self.download(offer, stop_at=stop_at)
        if drop is not None and res.get("aborted_at") is not None:
            self._trigger(drop)
            hop["dropped_at"] = res["aborted_at"]
            res["code"] = E_DISCONNECT
            self.urc("HTTPEND", E_DISCONNECT)
        hop["bytes"] = self.bytes
        if res.get("code") is not None or not res["complete"]:
            if res.get("error") == "deadline":
                return self._finish("timeout")
            return self._download_failed(offer, res, hop)
        hop["sha_ok"] = res["sha_ok"]
        # downloaded
        if self._fault("silence") is not None:
            self._trigger(self._fault("silence"))
            self.pending_urcs = [u for u in self.pending_urcs if "HTTPEND" not in u]
            self.flush()   # what it said before going quiet
            self.pending_urcs = []
            self._add_hop(hop, "silent")
            return self._finish("silent")
        f710 = self._fault("710")
        if f710 is not None or res["sha_ok"] is False:
            if f710 is not None:
                self._trigger(f710)
            self.urc("HTTPEND", E_CHECK)
            self.flush()
            self._add_hop(hop, "710")
            self.data = None
            self.phase = self.CHECKIN
            return self._retry_after(self.retry_delay)
        self.urc("HTTPEND", 0)
        self.flush()
        self._add_hop(hop, "downloaded")
        self.data = None
        self.data_key = None
        self.have = 0
        self.phase = self.INSTALL
        return 0.01 + self.install_seconds * self.rng.random()

    def _download_failed(self, offer, res, hop):
        code = res.get("code") or E_UNKNOWN
        if not any("HTTPEND" in u for u in self.pending_urcs[-1:]):
            self.urc("HTTPEND", code)
        self.flush()
        self._add_hop(hop, "HTTPEND,%d" % code)
        self.phase = self.CHECKIN
        if code in (E_URL, E_NOFILE):
            # our URL is wrong: the host asks again (server should 204 / new URL)
            self.data = None
        return self._retry_after(self.retry_delay)

    def _add_hop(self, hop, result):
        hop["result"] = result
        hop["bytes"] = self.bytes - sum(h.get("bytes", 0) for h in self.hops)
        self.hops.append(hop)

    def _step_install(self):
        if self.resetting:
            self.urc("RESETTING")
        self.urc("START")
        if self.progress:
            self.urc("UPDATING", self.rng.randint(1, 40))
        self.flush(force=self.rng.random() < 0.5)
        self.phase = self.FINISH_INSTALL
        return self.install_seconds * (0.5 + self.rng.random())

    def _step_finish_install(self):
        offer = self.offer
        code = 0
        if offer.get("from") is not None and offer.get("from") != self.actual_version:
            code = 511
            f = self._fault("511")
            if f is not None:
                self._trigger(f)
            else:
                self._anomaly("END,511: offered %s->%s, firmware is %s" % (
                    offer.get("from"), offer.get("to"), self.actual_version))
        elif self._fault("506") is not None:
            code = 506
            self._trigger(self._fault("506"))
        if self.progress and code == 0:
            self.urc("UPDATING", 100)
        self.urc("END", code)
        self.flush()
        if self.hops:
            self.hops[-1]["end"] = code
        self.last_end = code
        self._reboot(offer, code)
        self.offer = None
        self.phase = self.CHECKIN
        return 0.01 + self.install_seconds * self.rng.random()   # reboot time

    def run(self, max_seconds=60.0):
        """Steps until finished or max_seconds; returns result()."""
        self.deadline = _now() + max_seconds
        while True:
            d = self.step()
            if d is None:
                break
            if d > 0:
                time.sleep(min(d, max(0.0, self.deadline - _now())))
        return self.result()

    def result(self):
        return {
            "id": self.id,
            "start_version": self.start_version,
            "version": self.version,
            "actual_version": self.actual_version,
            "outcome": self.outcome or "unfinished",
            "server_state": self.server_state,
            "mode": self.mode,
            "faults": [repr(f) for f in self.faults],
            "fault_triggered": self.fault_triggered,
            "bytes": self.bytes,
            "requests": dict(self.req),
            "statuses": dict(self.statuses),
            "resumes": self.resumes,
            "segments": self.segments,
            "report_lines": self.report_lines,
            "retry_after": self.retry_afters,
            "seconds": round(self.done_at - self.first_at, 3)
            if self.done_at and self.first_at else None,
            "hops": self.hops,
            "errors": self.errors,
            "anomalies": self.anomalies,
        }


def _short(line):
    return line.replace('+QIND: "FOTA",', "").replace('"', "")


def _short_url(url):
    return url if len(url) <= 60 else url[:57] + "..."


# ---------------------------------------------------------------------------
# The fleet: many devices, a bounded number of them active at once

class Fleet:
    """Runs devices with `concurrency` worker threads. A device waiting
    (Retry-After, poll interval, install) holds no worker."""

    def __init__(self, devices, concurrency=50, max_seconds=600.0, admin=None, token=None,
                 rollout=None, stop_on_pause=True, log=None, progress_every=0):
        self.devices = devices
        self.concurrency = max(1, int(concurrency))
        self.max_seconds = max_seconds
        self.admin = admin.rstrip("/") if admin else None
        self.token = token
        self.rollout = rollout
        self.rollout_state = None
        self.rollout_json = None
        self._wave = None
        self.timeline = []
        self.stop_on_pause = stop_on_pause
        self.log = log
        self.progress_every = progress_every
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.heap = []
        self.seq = 0
        self.active = 0
        self.finished = 0
        self.counters = {}
        self.anomaly_counts = {}
        self.started = None
        self.elapsed = None
        self._stop = False
        self._final = False

    def note(self, key, n=1):
        with self.lock:
            self.counters[key] = self.counters.get(key, 0) + n

    def note_anomaly(self, msg):
        key = re.sub(r"\b[0-9a-f]{12,}\b|/f/\S+|\b\d+\b", "#", msg)[:160]
        with self.lock:
            self.anomaly_counts[key] = self.anomaly_counts.get(key, 0) + 1

    def stop_polling(self):
        return self._final

    def _admin_get(self, path):
        r = http_call("GET", self.admin + path, {"Authorization": "Bearer %s" % self.token},
                      timeout=10.0)
        return r.status, r.json()

    def _watch_rollout(self):
        while not self._stop:
            try:
                st, j = self._admin_get("/api/v1/rollouts/%s" % urllib.parse.quote(str(self.rollout)))
                if st == 200 and isinstance(j, dict):
                    self.rollout_json = j
                    s = j.get("state")
                    if (s, j.get("wave")) != (self.rollout_state, self._wave):
                        self.timeline.append({"t": round(_now() - self.started, 1), "state": s,
                                              "wave": j.get("wave"), "counts": j.get("counts")})
                    if (s, j.get("wave")) != (self.rollout_state, self._wave) and self.log:
                        self.log("rollout %s: %s (wave %s) %s" % (self.rollout, s, j.get("wave"),
                                                                  json.dumps(j.get("counts"))))
                    self.rollout_state = s
                    self._wave = j.get("wave")
                    if s in ("completed", "cancelled") or (s == "paused" and self.stop_on_pause):
                        self._final = True
            except (OSError, ConnectionError, SimError):
                pass
            for _ in range(20):
                if self._stop:
                    return
                time.sleep(0.1)

    def _progress(self):
        while not self._stop:
            for _ in range(int(self.progress_every * 10)):
                if self._stop:
                    return
                time.sleep(0.1)
            with self.lock:
                c = dict(self.counters)
                fin, act = self.finished, self.active
            self.log("t=%.0fs finished %d/%d, active %d, requests %d, errors %d" % (
                _now() - self.started, fin, len(self.devices), act, c.get("requests", 0),
                c.get("errors", 0)))

    def run(self):
        self.started = _now()
        deadline = self.started + self.max_seconds
        for i, d in enumerate(self.devices):
            d.fleet = self
            d.deadline = deadline
            heapq.heappush(self.heap, (self.started, i, d))
        self.seq = len(self.devices)
        helpers = []
        if self.admin and self.rollout is not None:
            helpers.append(threading.Thread(target=self._watch_rollout, daemon=True))
        if self.log and self.progress_every:
            helpers.append(threading.Thread(target=self._progress, daemon=True))
        for t in helpers:
            t.start()
        workers = [threading.Thread(target=self._worker, args=(deadline,), daemon=True)
                   for _ in range(min(self.concurrency, len(self.devices)) or 1)]
        for t in workers:
            t.start()
        try:
            for t in workers:
                # bounded: each step is bounded by the deadline and socket timeouts
                t.join(timeout=max(1.0, deadline - _now()) + 30.0)
        except KeyboardInterrupt:
            if self.log:
                self.log("interrupted: summary of what was done so far")
        self._stop = True
        with self.cond:
            self.cond.notify_all()
        for d in self.devices:
            if d.outcome is None:
                d.outcome = "timeout"
        self.elapsed = _now() - self.started
        return self.summary()

    def _worker(self, deadline):
        while True:
            with self.cond:
                while True:
                    if self._stop or self.finished >= len(self.devices):
                        self.cond.notify_all()
                        return
                    now = _now()
                    if now >= deadline:
                        self.cond.notify_all()
                        return
                    if self.heap and self.heap[0][0] <= now:
                        _, _, dev = heapq.heappop(self.heap)
                        self.active += 1
                        break
                    wait = (self.heap[0][0] - now) if self.heap else 0.5
                    self.cond.wait(min(wait, 0.5, deadline - now))
            try:
                delay = dev.step()
            except Exception as e:  # a bug in the simulator: keep the others running
                dev._err("simulator exception %s: %s" % (type(e).__name__, e))
                delay = dev._finish("error")
            with self.cond:
                self.active -= 1
                if delay is None:
                    self.finished += 1
                else:
                    self.seq += 1
                    heapq.heappush(self.heap, (_now() + delay, self.seq, dev))
                self.cond.notify()

    def server_states(self, workers=8):
        """GET /api/v1/devices/{id} for every device (admin needed)."""
        out = {}
        if not self.admin:
            return out
        ids = [d.id for d in self.devices]
        lock = threading.Lock()

        def work():
            while True:
                with lock:
                    if not ids:
                        return
                    i = ids.pop()
                try:
                    st, j = self._admin_get("/api/v1/devices/%s" % urllib.parse.quote(i, safe=""))
                    val = j if st == 200 else {"http": st}
                except (OSError, ConnectionError, SimError) as e:
                    val = {"error": str(e)}
                with lock:
                    out[i] = val

        ts = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout=120)
        return out

    def summary(self, details=True, server_states=None):
        devs = [d.result() for d in self.devices]
        outcomes, versions, states = {}, {}, {}
        nonfaulty_bad = []
        for d, r in zip(self.devices, devs):
            if server_states is not None and d.id in server_states:
                s = server_states[d.id]
                r["server"] = {k: s.get(k) for k in ("state", "version", "reason", "attempts",
                                                      "progress", "last_result")} \
                    if isinstance(s, dict) and "state" in s else s
                if isinstance(s, dict) and "state" in s:
                    r["server_state"] = s.get("state")
            outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
            versions[r["version"]] = versions.get(r["version"], 0) + 1
            k = str(r["server_state"])
            states[k] = states.get(k, 0) + 1
            if not d.faulty and r["outcome"] not in ("on_target", "done"):
                nonfaulty_bad.append(d.id)
        with self.lock:
            c = dict(self.counters)
            anomalies = sorted(self.anomaly_counts.items(), key=lambda kv: -kv[1])
        ra = {}
        for r in devs:
            for k, v in r["retry_after"].items():
                ra[k] = ra.get(k, 0) + v
        secs = sorted(r["seconds"] for r in devs if r["outcome"] == "on_target" and r["seconds"] is not None)

        def pct(q):
            return secs[min(len(secs) - 1, int(q * len(secs)))] if secs else None
        totals = {
            "devices": len(devs),
            "faulty": sum(1 for d in self.devices if d.faulty),
            "outcomes": outcomes,
            "final_versions": versions,
            "server_states": states,
            "bytes_downloaded": sum(r["bytes"] for r in devs),
            "hops_downloaded": sum(1 for r in devs for h in r["hops"] if h["result"] == "downloaded"),
            "requests": c.get("requests", 0),
            "statuses": {k: v for k, v in sorted(c.items()) if " " in k},
            "resumes": sum(r["resumes"] for r in devs),
            "segments": sum(r["segments"] for r in devs),
            "errors": c.get("errors", 0),
            "anomalies": sum(v for _, v in anomalies),
            "nonfaulty_not_done": len(nonfaulty_bad),
            "retry_after": dict(sorted(ra.items(), key=lambda kv: -kv[1])),
            "seconds_to_target": {"p50": pct(0.5), "p90": pct(0.9), "max": secs[-1] if secs else None},
        }
        out = {
            "elapsed": round(self.elapsed if self.elapsed is not None else _now() - self.started, 3),
            "ok": not nonfaulty_bad,
            "totals": totals,
            "anomaly_kinds": [{"count": v, "what": k} for k, v in anomalies[:30]],
            "nonfaulty_not_done": nonfaulty_bad[:50],
        }
        if self.rollout is not None:
            out["rollout"] = self.rollout_json
            out["rollout_timeline"] = self.timeline
        if details:
            out["devices"] = devs
        return out


# ---------------------------------------------------------------------------
# CLI

def load_devices(path):
    """[{"id","secret","version"[,"faults","mode","cert","key","psk_identity","psk"]}...] from a
    JSON file ("-": stdin). Also accepts {"devices": [...]}."""
    if path == "-":
        data = json.load(sys.stdin)
    else:
        with open(path) as fh:
            data = json.load(fh)
    if isinstance(data, dict) and "devices" in data:
        data = data["devices"]
    if not isinstance(data, list):
        raise SimError("%s: not a JSON list of devices" % path)
    for i, d in enumerate(data):
        if not isinstance(d, dict) or not all(k in d for k in ("id", "version")) or \
                not (d.get("secret") or d.get("cert")):
            raise SimError("%s: entry %d lacks id/version/secret (or cert)" % (path, i))
    return data


class _Spread:
    """Base URLs of several nodes (comma-separated), taken round-robin by
    every request of every device, as a load balancer would spread them; an
    offer URL that names one of the nodes is sent to the next one."""
    _lock = threading.Lock()
    _n = 0
    _down = {}  # netloc -> monotonic time until which it is left out
    DOWN_SECONDS = 3.0  # a load balancer's health check

    def __init__(self, servers):
        self.bases = [b.strip().rstrip("/") for b in servers.split(",") if b.strip()]
        if not self.bases:
            raise SimError("no server URL")
        for b in self.bases:
            _split_url(b)
        self.netlocs = {urllib.parse.urlsplit(b).netloc for b in self.bases}

    def next(self):
        if len(self.bases) == 1:
            return self.bases[0]
        now = time.monotonic()
        with _Spread._lock:
            for _ in range(len(self.bases)):
                _Spread._n += 1
                b = self.bases[_Spread._n % len(self.bases)]
                if _Spread._down.get(urllib.parse.urlsplit(b).netloc, 0) <= now:
                    return b
            return b  # all down: try anyway

    def down(self, url):
        """A node did not answer: left out for a few seconds, as a load
        balancer's health check would."""
        if len(self.bases) > 1:
            with _Spread._lock:
                _Spread._down[urllib.parse.urlsplit(url).netloc] = (
                    time.monotonic() + self.DOWN_SECONDS)

    def url(self, url):
        if len(self.bases) == 1:
            return url
        u = urllib.parse.urlsplit(url)
        if u.netloc not in self.netlocs:
            return url
        n = urllib.parse.urlsplit(self.next())
        return urllib.parse.urlunsplit((n.scheme, n.netloc, u.path, u.query, u.fragment))


def _check_server(url):
    for one in url.split(","):
        scheme, host, port, _ = _split_url(one.strip())
        _loopback_addrs(host, port)


def _stderr_log(msg):
    sys.stderr.write("%s dfotasim: %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def _fleet_main(argv):
    p = argparse.ArgumentParser(
        prog="dfotasim.py",
        description="Simulated Quectel modules (with their host MCUs) against dfotad's fleet "
                    "protocol. Subcommands for single steps: checkin, download, report "
                    "(dfotasim.py SUBCOMMAND --help).")
    p.add_argument("--server", required=True,
                   help="device-facing base URL, http://127.0.0.1:PORT; several nodes: URLs "
                        "separated by commas, taken round-robin by every request")
    p.add_argument("--devices", action="append", default=[],
                   help='JSON file: [{"id","secret","version"[,"faults":[...],"mode"]}...] ("-": stdin)')
    p.add_argument("--device", action="append", default=[], metavar="ID:SECRET:VERSION",
                   help="one more device (repeatable)")
    p.add_argument("--concurrency", type=int, default=50, help="devices acting at once (50)")
    p.add_argument("--mode", default="whole", choices=MODES + ("mixed",),
                   help="download: whole (one GET), breakpoint (cut, then Range: bytes=N-), "
                        "segments (Range N-(N+rs-1), fresh connection each), mixed (per device)")
    p.add_argument("--request-size", type=int, default=None,
                   help="segment size, multiple of 2048 (default: the check-in's request_size, "
                        "else 10240)")
    p.add_argument("--breakpoint", type=float, default=None,
                   help="breakpoint mode: fraction where the first transfer is cut (default "
                        "random 0.2..0.8)")
    p.add_argument("--faults", default="",
                   help="KIND[@PARAM][:N|:P%%],... kinds: drop[@FRACTION] 511[@REALVERSION] 710 "
                        "506 silence, e.g. 'drop:5%%,511:2,506:1%%'")
    p.add_argument("--seed", type=int, default=1, help="random seed (fault choice, modes, ...)")
    p.add_argument("--target", default=None,
                   help="target version: a device is done when on it and answered 204; "
                        "without, the first 204 ends a device")
    p.add_argument("--max-seconds", type=float, default=300.0, help="bound on the whole run (300)")
    p.add_argument("--timeout", type=float, default=10.0, help="per network operation (10 s)")
    p.add_argument("--poll-interval", type=float, default=1.0,
                   help="check-in period while there is nothing to do yet (1 s)")
    p.add_argument("--max-retry-after", type=float, default=30.0,
                   help="cap on honoured Retry-After (30 s)")
    p.add_argument("--retry-delay", type=float, default=1.0,
                   help="host's wait after a failed download before checking in again (1 s)")
    p.add_argument("--install-seconds", type=float, default=0.1,
                   help="time between START and END (0.1 s)")
    p.add_argument("--max-rounds", type=int, default=20, help="offers per device at most (20)")
    p.add_argument("--no-progress-rate", type=float, default=None,
                   help="share of devices printing no DOWNLOADING/UPDATING (default 0, mixed 0.3)")
    p.add_argument("--truncated-rate", type=float, default=0.05,
                   help="chance of a truncated URC line before a real one (0.05)")
    p.add_argument("--token-header", default="X-Device-Token")
    p.add_argument("--token-on-download", action="store_true",
                   help="also send the credential on /f/ requests (AT+QCFGEXT=\"fota_http_header\")")
    p.add_argument("--rcvbuf", type=int, default=32768,
                   help="download socket receive buffer (32768; 0 = system default)")
    p.add_argument("--cacert", help="CA for https URLs (default: no verification)")
    p.add_argument("--admin", help="admin base URL: final per-device server state, rollout watch")
    p.add_argument("--token", help="admin bearer token")
    p.add_argument("--token-file", help="file whose first line is the admin token")
    p.add_argument("--rollout", help="rollout id to watch (needs --admin): stop waiting once it is "
                                     "completed/cancelled (or paused, unless --no-stop-on-pause)")
    p.add_argument("--no-stop-on-pause", action="store_true")
    p.add_argument("--summary", action="store_true",
                   help="print the full JSON summary (per device); default: totals only")
    p.add_argument("--out", help="write the full JSON summary to this file")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log to stderr (-v progress every 5 s, -vv every device event)")
    a = p.parse_args(argv)

    _check_server(a.server)
    if a.request_size is not None and (a.request_size <= 0 or a.request_size % 2048):
        p.error("--request-size must be a positive multiple of 2048")
    if a.admin:
        _check_server(a.admin)
    token = a.token
    if a.token_file:
        with open(a.token_file) as fh:
            token = fh.readline().strip()
    if a.rollout and not (a.admin and token):
        p.error("--rollout needs --admin and --token/--token-file")

    entries = []
    for path in a.devices:
        entries += load_devices(path)
    for spec in a.device:
        parts = spec.split(":", 2)
        if len(parts) != 3:
            p.error("--device wants ID:SECRET:VERSION")
        entries.append({"id": parts[0], "secret": parts[1], "version": parts[2]})
    if not entries:
        p.error("no devices (--devices FILE or --device ID:SECRET:VERSION)")
    ids = [str(e["id"]) for e in entries]
    if len(set(ids)) != len(ids):
        p.error("duplicate device ids")

    assigned = assign_faults(ids, parse_faults(a.faults), a.seed)
    rng = random.Random(a.seed)
    npr = a.no_progress_rate if a.no_progress_rate is not None else (0.3 if a.mode == "mixed" else 0.0)
    ctx = None
    if a.cacert or a.server.startswith("https"):
        ctx = _ssl_context(cafile=a.cacert, insecure=not a.cacert)
    log = _stderr_log if a.verbose >= 2 else None
    devices = []
    for e in entries:
        mode = e.get("mode") or (rng.choice(MODES) if a.mode == "mixed" else a.mode)
        faults = [Fault.parse(f) for f in e.get("faults", [])] + assigned.get(str(e["id"]), [])
        dctx = ctx
        if e.get("cert"):
            dctx = _ssl_context(cafile=a.cacert, insecure=not a.cacert, cert=e["cert"],
                                key=e.get("key"))
        devices.append(Device(
            a.server, e["id"], e.get("secret"), e["version"], mode=mode, breakpoint=a.breakpoint,
            request_size=a.request_size, faults=faults, target=a.target, timeout=a.timeout,
            token_header=a.token_header, progress=rng.random() >= npr,
            truncated_rate=a.truncated_rate, seed=rng.getrandbits(32),
            poll_interval=a.poll_interval, max_retry_after=a.max_retry_after,
            retry_delay=a.retry_delay, install_seconds=a.install_seconds,
            max_rounds=a.max_rounds, ssl_context=dctx, rcvbuf=a.rcvbuf,
            token_on_download=a.token_on_download, log=log,
            psk_identity=e.get("psk_identity"), psk=e.get("psk")))
    fleet = Fleet(devices, a.concurrency, a.max_seconds, admin=a.admin, token=token,
                  rollout=a.rollout, stop_on_pause=not a.no_stop_on_pause,
                  log=_stderr_log if a.verbose else None, progress_every=5 if a.verbose else 0)
    fleet.run()
    if a.rollout:
        try:
            st, j = fleet._admin_get("/api/v1/rollouts/%s" % urllib.parse.quote(str(a.rollout)))
            if st == 200 and isinstance(j, dict):
                fleet.rollout_json = j
        except (OSError, ConnectionError, SimError):
            pass
    states = fleet.server_states() if a.admin and token else None
    full = fleet.summary(details=True, server_states=states)
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(full, fh, indent=1)
            fh.write("\n")
    if a.summary:
        json.dump(full, sys.stdout, indent=1)
    else:
        short = {k: v for k, v in full.items() if k != "devices"}
        json.dump(short, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0 if full["ok"] else 1


def _tls_args(p):
    p.add_argument("--cacert", help="CA for https (default: no verification)")
    p.add_argument("--cert", help="client certificate (PEM), CN = device id")
    p.add_argument("--key", help="its key (PEM)")


def _tls_context(a):
    if not (a.cacert or a.cert or a.server.startswith("https")):
        return None
    return _ssl_context(cafile=a.cacert, insecure=not a.cacert, cert=a.cert, key=a.key)


def _checkin_main(argv):
    p = argparse.ArgumentParser(prog="dfotasim.py checkin",
                                description="One check-in; prints {status, offer|retry_after}.")
    p.add_argument("--server", required=True)
    p.add_argument("--device", required=True)
    p.add_argument("--secret", default=None, help="credential (omit with --cert over HTTPS)")
    p.add_argument("--version", required=True)
    p.add_argument("--plain", action="store_true", help="text/plain check-in, as a module's host")
    _tls_args(p)
    p.add_argument("--token-header", default="X-Device-Token")
    p.add_argument("--timeout", type=float, default=10.0)
    a = p.parse_args(argv)
    _check_server(a.server)
    d = Device(a.server, a.device, a.secret, a.version, token_header=a.token_header,
               timeout=a.timeout, ssl_context=_tls_context(a))
    r = d.checkin(accept_json=not a.plain)
    if d.anomalies:
        r["anomalies"] = d.anomalies
    print(json.dumps(r))
    return 0 if r.get("status") in (200, 204, 429) and "error" not in r else 1


def _download_main(argv):
    p = argparse.ArgumentParser(
        prog="dfotasim.py download",
        description="AT+QFOTADL=<url>[,<breakpoint>[,<request_size>]] into a file (written at "
                    "offsets, like the module). Prints a JSON result with the URC lines.")
    p.add_argument("--url", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--breakpoint", default="0", help="byte offset, or 'auto' = the file's size")
    p.add_argument("--request-size", type=int, default=None)
    p.add_argument("--stop-at", type=float, default=None,
                   help="cut the connection (RST) at this fraction of the package")
    p.add_argument("--stop-bytes", type=int, default=None, help="... or at this byte offset")
    p.add_argument("--sha256", help="expected sha256: exit 1 on mismatch of a complete file")
    p.add_argument("--header", action="append", default=[], help="NAME: VALUE (repeatable)")
    _tls_args(p)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--max-seconds", type=float, default=300.0)
    a = p.parse_args(argv)
    a.server = a.url
    if a.request_size is not None and (a.request_size <= 0 or a.request_size % 2048):
        p.error("--request-size must be a positive multiple of 2048")
    hdrs = {}
    for h in a.header:
        k, _, v = h.partition(":")
        hdrs[k.strip()] = v.strip()
    bp = a.breakpoint if a.breakpoint == "auto" else int(a.breakpoint)
    r = module_download(a.url, a.out, breakpoint=bp, request_size=a.request_size,
                        stop_at=a.stop_at, stop_bytes=a.stop_bytes, timeout=a.timeout,
                        headers=hdrs, ssl_context=_tls_context(a), max_seconds=a.max_seconds)
    if a.sha256 and r["complete"]:
        r["sha_ok"] = r["sha256"] == a.sha256
    print(json.dumps(r))
    if r["errors"] or (a.sha256 and r["complete"] and not r["sha_ok"]):
        return 1
    return 0


def _report_main(argv):
    p = argparse.ArgumentParser(prog="dfotasim.py report",
                                description="POST URC lines (or --json) to /v1/report.")
    p.add_argument("--server", required=True)
    p.add_argument("--device", required=True)
    p.add_argument("--secret", default=None, help="credential (omit with --cert over HTTPS)")
    p.add_argument("--json", help='JSON body, e.g. \'{"stage":"HTTPEND","code":702}\'')
    _tls_args(p)
    p.add_argument("--token-header", default="X-Device-Token")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("lines", nargs="*", help="URC lines (joined with CRLF)")
    a = p.parse_args(argv)
    _check_server(a.server)
    d = Device(a.server, a.device, a.secret, "?", token_header=a.token_header, timeout=a.timeout,
               truncated_rate=0, ssl_context=_tls_context(a))
    body = json.loads(a.json) if a.json else "\r\n".join(a.lines) + "\r\n"
    r = d.report(body)
    print(json.dumps(r))
    return 0 if r.get("status") == 200 else 1


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] == "checkin":
            return _checkin_main(argv[1:])
        if argv and argv[0] == "download":
            return _download_main(argv[1:])
        if argv and argv[0] == "report":
            return _report_main(argv[1:])
        return _fleet_main(argv)
    except SimError as e:
        sys.stderr.write("dfotasim: %s\n" % e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
