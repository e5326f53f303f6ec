#!/usr/bin/env python3
"""ftp_probe.py: the FTP front's refusals and edge cases, spoken over raw
sockets (what curl and lftp will not send): writes, climbing above the
root, PORT bounces, a stolen passive connection, TLS data without the
control connection's session, commands injected along with AUTH TLS,
overlong lines, NUL bytes, ABOR, REST, the passive port pool, failed-login
delays. Every socket is on loopback and every wait bounded.

usage: ftp_probe.py HOST PORT USER TOKEN NAME SIZE CAFILE CHECK...
Prints "ok CHECK" per check and exits 1 at the first failure."""
import hashlib
import socket
import ssl
import sys
import time

HOST, PORT, USER, TOKEN, NAME, SIZE, CAFILE = sys.argv[1:8]
PORT, SIZE = int(PORT), int(SIZE)
CHECKS = sys.argv[8:]
TIMEOUT = 10
CTX = ssl.create_default_context(cafile=CAFILE)


def fail(msg):
    print("FAIL", msg)
    sys.exit(1)


class Ctl:
    """A control connection that reads whole replies (multi-line too)."""

    def __init__(self, port=PORT, implicit=False, src=None, timeout=TIMEOUT):
        self.sock = socket.create_connection((HOST, port), timeout=timeout,
                                             source_address=(src, 0) if src else None)
        self.buf = b""
        self.session = None
        if implicit:
            self.tls()
        self.greeting = self.reply()

    def tls(self):
        self.ctx = CTX
        self.sock = CTX.wrap_socket(self.sock, server_hostname="localhost")

    def line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(4096)
            if not data:
                raise EOFError("control connection closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def reply(self):
        first = self.line()
        code = first[:3]
        text = [first]
        if first[3:4] == "-":
            while True:
                l = self.line()
                text.append(l)
                if l[:3] == code and l[3:4] == " ":
                    break
        return int(code), "\n".join(text)

    def cmd(self, text, expect=None):
        self.sock.sendall(text.encode("latin-1") + b"\r\n")
        code, msg = self.reply()
        if expect is not None and code != expect:
            fail("%r: expected %d, got %r" % (text, expect, msg))
        return code, msg

    def login(self, user=USER, token=TOKEN):
        self.cmd("USER " + user, 331)
        return self.cmd("PASS " + token)

    def pasv_port(self):
        code, msg = self.cmd("EPSV", 229)
        return int(msg.split("|||")[1].split("|")[0])

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def logged_in(**kw):
    c = Ctl(**kw)
    code, msg = c.login()
    if code != 230:
        fail("login: %r" % msg)
    return c


def check_writes():
    c = logged_in()
    for cmd, code in (("STOR x.bin", 550), ("DELE " + NAME, 550), ("MKD d", 550),
                      ("RMD d", 550), ("RNFR " + NAME, 550), ("APPE " + NAME, 550),
                      ("STOU", 550), ("SITE CHMOD 777 " + NAME, 502)):
        c.cmd(cmd, code)
    c.cmd("SIZE " + NAME, 213)
    c.close()


def check_root():
    c = logged_in()
    c.cmd("CWD ..", 550)
    c.cmd("CDUP", 550)
    c.cmd("CWD /../..", 550)
    c.cmd("CWD /etc", 550)
    c.cmd("SIZE ../../etc/passwd", 550)
    c.cmd("SIZE /etc/passwd", 550)
    c.cmd("PWD", 257)
    c.cmd("CWD /", 250)
    code, msg = c.cmd("SIZE /" + NAME, 213)
    if msg != "213 %d" % SIZE:
        fail("SIZE: %r" % msg)
    c.close()


def check_port_disabled():
    c = logged_in()
    c.cmd("PORT 127,0,0,1,200,10", 502)
    c.cmd("EPRT |1|127.0.0.1|51210|", 502)
    c.close()


def check_port_enabled():
    c = logged_in()
    c.cmd("PORT 127,0,0,2,200,10", 500)      # another address: a bounce
    c.cmd("PORT 10,1,2,3,200,10", 500)
    c.cmd("PORT 127,0,0,1,0,21", 500)        # a privileged port
    c.cmd("EPRT |1|127.0.0.2|51210|", 500)
    c.cmd("PORT 127,0,0,1,300,1", 501)       # not an address
    # to its own address: accepted, and the transfer arrives
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    p = ls.getsockname()[1]
    c.cmd("PORT 127,0,0,1,%d,%d" % (p >> 8, p & 255), 200)
    c.cmd("TYPE I", 200)
    c.sock.sendall(b"RETR " + NAME.encode() + b"\r\n")
    ls.settimeout(TIMEOUT)
    d, _ = ls.accept()
    code, msg = c.reply()
    if code != 150:
        fail("active RETR: %r" % msg)
    got = read_all(d)
    c.cmd("NOOP") if False else None
    code, msg = c.reply()
    if code != 226 or len(got) != SIZE:
        fail("active RETR: %r, %d bytes" % (msg, len(got)))
    c.close()


def read_all(s, limit=None):
    s.settimeout(TIMEOUT)
    out = bytearray()
    while limit is None or len(out) < limit:
        b = s.recv(65536)
        if not b:
            break
        out += b
    return bytes(out)


def check_thief():
    c = logged_in()
    c.cmd("TYPE I", 200)
    port = c.pasv_port()
    # the thief: another local address, racing for the announced port
    t = socket.socket()
    t.bind(("127.0.0.2", 0))
    t.settimeout(TIMEOUT)
    t.connect((HOST, port))
    stolen = read_all(t)
    t.close()
    if stolen:
        fail("the thief got %d bytes" % len(stolen))
    # the rightful client still gets its file on the same port
    d = socket.create_connection((HOST, port), timeout=TIMEOUT)
    c.cmd("RETR " + NAME, 150)
    got = read_all(d)
    c_code, msg = c.reply()
    if c_code != 226 or len(got) != SIZE:
        fail("after the thief: %r, %d bytes" % (msg, len(got)))
    c.close()


def check_pasv_once():
    """A passive port takes one connection, then is gone."""
    c = logged_in()
    port = c.pasv_port()
    d = socket.create_connection((HOST, port), timeout=TIMEOUT)
    time.sleep(0.2)
    try:
        e = socket.create_connection((HOST, port), timeout=2)
        e.settimeout(2)
        if e.recv(1) != b"" or True:
            pass
        fail("a second connection to the passive port was accepted")
    except (ConnectionRefusedError, socket.timeout, ConnectionResetError):
        pass
    d.close()
    c.close()


def check_pasv_loop():
    """PASV in a loop never holds more than one port per session."""
    c = logged_in()
    for _ in range(300):
        c.pasv_port()
    c2 = logged_in()
    c2.pasv_port()
    c.cmd("QUIT", 221)
    c2.cmd("QUIT", 221)


def check_lines():
    c = Ctl()
    c.sock.sendall(b"NOOP " + b"A" * 600 + b"\r\n")
    code, msg = c.reply()
    if code != 500:
        fail("overlong line: %r" % msg)
    c.cmd("NOOP", 200)
    c.sock.sendall(b"NO\x00OP\r\n")
    code, msg = c.reply()
    if code != 500:
        fail("NUL: %r" % msg)
    c.sock.sendall(b"X" * 5000)  # no line end at all
    code, msg = c.reply()
    if code != 500:
        fail("endless line: %r" % msg)
    c.sock.sendall(b"\r\n")
    c.cmd("NOOP", 200)
    c.cmd("RETR " + NAME, 530)  # before the login
    c.cmd("LIST", 530)
    c.cmd("FOO", 500)
    c.close()


def check_auth_injection():
    """USER sent with AUTH TLS in one packet must not run inside TLS."""
    c = Ctl()
    c.sock.sendall(("AUTH TLS\r\nUSER %s\r\n" % USER).encode())
    code, msg = c.reply()
    if code != 234:
        fail("AUTH TLS: %r" % msg)
    c.tls()
    code, msg = c.cmd("PASS " + TOKEN)
    if code != 503:
        fail("the injected USER ran: PASS answered %r" % msg)
    c.login()
    c.close()


def retr_tls(c, session):
    """EPSV, connect, RETR, 150, then TLS on the data connection."""
    port = c.pasv_port()
    d = socket.create_connection((HOST, port), timeout=TIMEOUT)
    c.sock.sendall(("RETR %s\r\n" % NAME).encode())
    code, msg = c.reply()
    if code != 150:
        fail("RETR: %r" % msg)
    try:
        d = c.ctx.wrap_socket(d, server_hostname="localhost", session=session)
        return d, read_all(d)
    except (ssl.SSLError, OSError):
        return None, b""


def check_tls_reuse():
    c = Ctl()
    c.cmd("AUTH TLS", 234)
    c.tls()
    c.login()
    c.cmd("PBSZ 0", 200)
    c.cmd("PROT P", 200)
    c.cmd("TYPE I", 200)
    # a fresh TLS session on the data connection: refused
    d, got = retr_tls(c, None)
    code, msg = c.reply()
    if code != 522 or got:
        fail("TLS data without reuse: %r, %d bytes" % (msg, len(got)))
    # with the control connection's session: served
    d, got = retr_tls(c, c.sock.session)
    code, msg = c.reply()
    if code != 226 or len(got) != SIZE or not d.session_reused:
        fail("TLS data with reuse: %r, %d bytes" % (msg, len(got)))
    c.close()


def check_tls_other_session():
    """The TLS session of another login does not open this one's data."""
    a = Ctl()
    a.cmd("AUTH TLS", 234)
    a.tls()
    a.login()
    b = Ctl()
    b.cmd("AUTH TLS", 234)
    b.tls()
    b.login()
    b.cmd("PBSZ 0", 200)
    b.cmd("PROT P", 200)
    a.cmd("NOOP", 200)  # a's session ticket has arrived
    d, got = retr_tls(b, a.sock.session)
    code, msg = b.reply()
    if code != 522 or got:
        fail("another login's TLS session: %r, %d bytes" % (msg, len(got)))
    a.close()
    b.close()


def check_rest_abor():
    c = logged_in()
    c.cmd("TYPE I", 200)
    off = SIZE // 2
    port = c.pasv_port()
    c.cmd("REST %d" % off, 350)
    d = socket.create_connection((HOST, port), timeout=TIMEOUT)
    c.cmd("RETR " + NAME, 150)
    got = read_all(d)
    code, msg = c.reply()
    if code != 226 or len(got) != SIZE - off:
        fail("REST: %r, %d bytes" % (msg, len(got)))
    c.cmd("REST %d" % (SIZE + 1), 350)
    c.pasv_port()
    c.cmd("RETR " + NAME, 554)
    # ABOR while the data flows: 426 then 226
    port = c.pasv_port()
    d = socket.create_connection((HOST, port), timeout=TIMEOUT)
    d.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.cmd("RETR " + NAME, 150)
    d.recv(1000)
    c.sock.sendall(b"ABOR\r\n")
    code, msg = c.reply()
    code2, msg2 = c.reply() if code == 426 else (code, msg)
    if code != 426 or code2 != 226:
        fail("ABOR: %r then %r" % (msg, msg2))
    d.close()
    c.cmd("ABOR", 225)
    c.close()


def check_facts():
    c = logged_in()
    c.cmd("SYST", 215)
    code, msg = c.cmd("FEAT", 211)
    for f in ("SIZE", "REST STREAM", "EPSV", "MDTM", "MLST"):
        if f not in msg:
            fail("FEAT lacks %s" % f)
    c.cmd("MDTM " + NAME, 213)
    c.cmd("TYPE A", 200)
    c.cmd("TYPE I", 200)
    c.cmd("TYPE E", 504)
    c.cmd("MODE S", 200)
    c.cmd("MODE B", 504)
    c.cmd("STRU F", 200)
    c.cmd("STRU R", 504)
    c.cmd("OPTS UTF8 ON", 200)
    c.cmd("CCC", 502)
    c.cmd("MLST " + NAME, 250)
    c.cmd("STAT", 211)
    c.cmd("HELP", 214)
    c.cmd("REST abc", 501)
    c.cmd("PBSZ 0", 503)  # not under TLS
    c.cmd("QUIT", 221)


def check_bad_logins():
    """Wrong token, a token for another device, an overlong user: 530,
    each later than the one before. From an address of its own (127.0.0.3),
    whose failures nothing else has counted."""
    t0 = time.time()
    c = Ctl(src="127.0.0.3", timeout=40)
    times = []
    for user, token in ((USER, "x" * len(TOKEN)), ("other-device", TOKEN), ("u" * 300, TOKEN)):
        s = time.time()
        code, msg = c.login(user, token)
        times.append(time.time() - s)
        if code != 530:
            fail("bad login %s: %r" % (user[:20], msg))
    # the third failure ends the session
    try:
        c.cmd("NOOP")
        fail("the session outlived three failed logins")
    except (EOFError, ConnectionResetError, BrokenPipeError):
        pass
    if not (times[0] >= 0.3 and times[1] > times[0] and times[2] > times[1]):
        fail("failed-login delays do not grow: %r" % times)
    del t0


def check_list():
    c = logged_in()
    for cmd in ("LIST", "NLST", "MLSD", "LIST -la"):
        port = c.pasv_port()
        d = socket.create_connection((HOST, port), timeout=TIMEOUT)
        c.cmd(cmd, 150)
        text = read_all(d).decode()
        code, msg = c.reply()
        if code != 226 or NAME not in text:
            fail("%s: %r %r" % (cmd, msg, text))
    c.close()


def check_login_timeout():
    c = Ctl()
    time.sleep(float(CHECK_ARG.get("login_timeout", 2)) + 1)
    try:
        code, msg = c.reply()
    except (EOFError, ConnectionResetError):
        fail("closed without 421")
    if code != 421:
        fail("login timeout: %r" % msg)


CHECK_ARG = {}
for name in CHECKS:
    if "=" in name:
        k, v = name.split("=", 1)
        CHECK_ARG[k] = v
        continue
    globals()["check_" + name]()
    print("ok", name)
