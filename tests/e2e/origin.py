"""
origin.py - scriptable origin servers for sluice's end-to-end tests.

An Origin listens on 127.0.0.1:0 (a free port picked by the kernel) and
runs one thread per accepted connection.  Every connection is recorded:
the exact bytes received with their arrival times, the requests parsed
from them, and whether the peer closed.  What the origin answers is a
per-test script: a function handler(conn) that uses the helpers on
OriginConn (read_request, send, close, rst, trickle, ...), or one of the
canned handlers built by serve() / canned().

Assumptions: tests talk to it over loopback only; a request is parsed
strictly (CRLF lines, Content-Length or chunked body) because the point
of these tests is to see exactly what the proxy forwarded - anything
the strict parser rejects is recorded as a parse error on the
connection, never silently tolerated.

Standard library only (STYLE 16).
"""

import os
import socket
import ssl
import struct
import subprocess
import threading
import time


class ParseError(Exception):
    """The bytes the origin received are not a well-formed request."""


class Request:
    """One request as the origin received it (the proxy's output)."""

    def __init__(self):
        self.method = None
        self.target = None
        self.version = None
        self.headers = []          # [(name, value)] in order, as bytes decoded latin-1
        self.raw_head = b""        # request line + fields + CRLFCRLF, exact
        self.body = b""            # decoded body (dechunked)
        self.raw_body = b""        # body bytes exactly as received
        self.chunked = False
        self.trailers = []
        self.chunk_ext_seen = False

    def header(self, name, default=None):
        """The value of the one field called name, or default."""
        vals = self.header_all(name)
        return vals[0] if vals else default

    def header_all(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def has(self, name):
        return bool(self.header_all(name))

    def __repr__(self):
        return "<Request %s %s %s %r body=%d>" % (
            self.method, self.target, self.version, self.headers, len(self.body))


class OriginConn:
    """One accepted connection and its recording."""

    def __init__(self, origin, sock, peer, idx):
        self.origin = origin
        self.sock = sock
        self.peer = peer
        self.idx = idx
        self.t_accept = time.monotonic()
        self.chunks = []           # [(monotonic time, bytes)]
        self.buf = b""             # received, not yet consumed by a parser
        self.requests = []
        self.eof = False           # the peer closed (FIN) or reset
        self.reset = False
        self.errors = []           # parse errors, exceptions in the handler
        self.closed = False

    # -- receiving ------------------------------------------------------
    @property
    def data(self):
        """Every byte received on this connection so far."""
        return b"".join(c for _, c in self.chunks)

    def _recv_more(self, deadline):
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("origin read timed out")
        self.sock.settimeout(left)
        try:
            d = self.sock.recv(65536)
        except ConnectionResetError:
            self.eof = self.reset = True
            return False
        except OSError as e:
            if isinstance(e, socket.timeout):
                raise
            self.eof = True
            return False
        if not d:
            self.eof = True
            return False
        with self.origin.lock:
            self.chunks.append((time.monotonic(), d))
        self.buf += d
        return True

    def _read_until(self, delim, deadline, limit=1 << 20):
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = self.buf[:i + len(delim)]
                self.buf = self.buf[i + len(delim):]
                return out
            if len(self.buf) > limit:
                raise ParseError("line too long")
            if not self._recv_more(deadline):
                return None

    def _read_exact(self, n, deadline):
        while len(self.buf) < n:
            if not self._recv_more(deadline):
                out, self.buf = self.buf, b""
                return out
        out = self.buf[:n]
        self.buf = self.buf[n:]
        return out

    def read_head(self, timeout=10):
        """Bytes up to and including CRLFCRLF, or None on EOF first."""
        return self._read_until(b"\r\n\r\n", time.monotonic() + timeout)

    def read_request(self, timeout=10, body=True):
        """Parse one request strictly; None when the peer closed cleanly
        before sending anything.  Raises ParseError on bad bytes."""
        deadline = time.monotonic() + timeout
        head = self._read_until(b"\r\n\r\n", deadline)
        if head is None:
            if self.buf:
                self.errors.append("EOF inside a request head: %r" % self.buf[:200])
                raise ParseError("EOF inside head")
            return None
        req = Request()
        req.raw_head = head
        lines = head[:-4].split(b"\r\n")
        for ln in lines:
            if b"\n" in ln or b"\r" in ln or b"\0" in ln:
                raise ParseError("bare CR/LF/NUL in head: %r" % ln)
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            raise ParseError("bad request line %r" % lines[0])
        req.method, req.target, req.version = (p.decode("latin-1") for p in parts)
        for ln in lines[1:]:
            if b":" not in ln or ln[:1] in (b" ", b"\t"):
                raise ParseError("bad field line %r" % ln)
            k, v = ln.split(b":", 1)
            if k != k.strip() or not k:
                raise ParseError("bad field name %r" % ln)
            req.headers.append((k.decode("latin-1"), v.strip(b" \t").decode("latin-1")))
        if body:
            self._read_body(req, deadline)
        with self.origin.lock:
            self.requests.append(req)
            self.origin.requests.append(req)
        self.origin._notify()
        return req

    def _read_body(self, req, deadline):
        te = req.header_all("transfer-encoding")
        cl = req.header_all("content-length")
        if te:
            if cl:
                raise ParseError("both TE and CL forwarded")
            if len(te) != 1 or te[0].lower() != "chunked":
                raise ParseError("non-canonical TE forwarded: %r" % te)
            req.chunked = True
            raw = b""
            data = b""
            while True:
                ln = self._read_until(b"\r\n", deadline)
                if ln is None:
                    raise ParseError("EOF in chunked body")
                raw += ln
                size_s = ln[:-2]
                if b";" in size_s:
                    req.chunk_ext_seen = True
                    size_s = size_s.split(b";", 1)[0]
                if not size_s or any(c not in b"0123456789abcdefABCDEF" for c in size_s):
                    raise ParseError("bad chunk size %r" % ln)
                n = int(size_s, 16)
                if n == 0:
                    break
                d = self._read_exact(n + 2, deadline)
                raw += d
                if len(d) != n + 2 or d[-2:] != b"\r\n":
                    raise ParseError("bad chunk data")
                data += d[:-2]
            while True:
                ln = self._read_until(b"\r\n", deadline)
                if ln is None:
                    raise ParseError("EOF in trailers")
                raw += ln
                if ln == b"\r\n":
                    break
                req.trailers.append(ln[:-2])
            req.raw_body = raw
            req.body = data
        elif cl:
            if len(cl) != 1 or not cl[0].isdigit():
                raise ParseError("bad Content-Length forwarded: %r" % cl)
            n = int(cl[0])
            d = self._read_exact(n, deadline)
            req.raw_body = req.body = d
            if len(d) != n:
                raise ParseError("short body: %d of %d" % (len(d), n))

    def wait_eof(self, timeout=5):
        """True when the peer closed within timeout (data is recorded)."""
        deadline = time.monotonic() + timeout
        try:
            while self._recv_more(deadline):
                pass
        except socket.timeout:
            return False
        return True

    # -- answering ------------------------------------------------------
    def send(self, data):
        self.sock.sendall(data)

    def trickle(self, data, delay=0.05, step=1):
        """Send data step bytes at a time, delay seconds apart."""
        for i in range(0, len(data), step):
            self.sock.sendall(data[i:i + step])
            time.sleep(delay)

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass

    def shutdown_write(self):
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def rst(self):
        """Close with a TCP RST (SO_LINGER 0)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()


def response(status=200, body=b"", headers=None, reason=None, version="HTTP/1.1",
             cl=True):
    """Build a simple response: status line, headers, Content-Length."""
    reason = reason if reason is not None else {200: "OK", 204: "No Content", 304: "Not Modified",
                                               404: "Not Found"}.get(status, "X")
    if isinstance(body, str):
        body = body.encode()
    out = ("%s %d %s\r\n" % (version, status, reason)).encode()
    for k, v in (headers or []):
        out += ("%s: %s\r\n" % (k, v)).encode("latin-1")
    if cl:
        out += b"Content-Length: %d\r\n" % len(body)
    return out + b"\r\n" + body


def serve(fn=None, keepalive=True):
    """A handler that answers every request on a connection with
    fn(req, conn) -> bytes (None: the function answered itself).
    Default fn: 200 with body "ok METHOD TARGET"."""
    def default(req, conn):
        return response(200, ("ok %s %s" % (req.method, req.target)).encode())
    fn = fn or default

    def handler(conn):
        while True:
            req = conn.read_request(timeout=30)
            if req is None:
                return
            out = fn(req, conn)
            if out:
                conn.send(out)
            if conn.closed or not keepalive:
                return
    return handler


def echo(seconds=60):
    """A handler for tunnel tests: echo every byte back until the client
    closes or `seconds` pass."""
    def handler(conn):
        deadline = time.monotonic() + seconds
        while conn._recv_more(deadline):
            d, conn.buf = conn.buf, b""
            conn.send(d)
    return handler


def canned(data, close=False):
    """A handler that answers each request with the same raw bytes (or,
    with a list, the i-th request with data[i]); close after answering."""
    def handler(conn):
        i = 0
        while True:
            req = conn.read_request(timeout=30)
            if req is None:
                return
            d = data[min(i, len(data) - 1)] if isinstance(data, list) else data
            i += 1
            conn.send(d)
            if close:
                conn.close()
                return
    return handler


def make_cert(tmpdir):
    """A self-signed certificate for CN=localhost in tmpdir."""
    crt = os.path.join(tmpdir, "origin.crt")
    key = os.path.join(tmpdir, "origin.key")
    if not os.path.exists(crt):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-subj", "/CN=localhost", "-days", "1",
                        "-keyout", key, "-out", crt],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return crt, key


class Origin:
    """A threaded TCP (or TLS) server on 127.0.0.1:0 (or ::1)."""

    def __init__(self, handler=None, tls_dir=None, family=socket.AF_INET):
        self.handler = handler or serve()
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.conns = []
        self.requests = []
        self.errors = []
        host = "127.0.0.1" if family == socket.AF_INET else "::1"
        self.ls = socket.socket(family, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((host, 0))
        self.ls.listen(128)
        self.host = host
        self.port = self.ls.getsockname()[1]
        self.ctx = None
        if tls_dir:
            crt, key = make_cert(tls_dir)
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(crt, key)
            self.cert = crt
        self._stop = False
        self.t = threading.Thread(target=self._accept_loop, daemon=True)
        self.t.start()

    @property
    def hostport(self):
        return ("[%s]:%d" if ":" in self.host else "%s:%d") % (self.host, self.port)

    def url(self, path="/"):
        return "http://%s%s" % (self.hostport, path)

    def _notify(self):
        with self.cond:
            self.cond.notify_all()

    def _accept_loop(self):
        while not self._stop:
            try:
                s, peer = self.ls.accept()
            except OSError:
                return
            if self._stop:
                s.close()
                return
            with self.lock:
                c = OriginConn(self, s, peer, len(self.conns))
                self.conns.append(c)
            threading.Thread(target=self._run, args=(c,), daemon=True).start()
            self._notify()

    def _run(self, c):
        try:
            if self.ctx:
                c.sock.settimeout(10)
                c.sock = self.ctx.wrap_socket(c.sock, server_side=True)
            self.handler(c)
        except Exception as e:  # recorded, the test decides
            c.errors.append("%s: %s" % (type(e).__name__, e))
            with self.lock:
                self.errors.append("conn %d: %s: %s" % (c.idx, type(e).__name__, e))
        finally:
            c.close()
            self._notify()

    # -- what happened ----------------------------------------------------
    def received(self):
        """All bytes received on all connections, in connection order."""
        with self.lock:
            return b"".join(c.data for c in self.conns)

    @property
    def nconns(self):
        with self.lock:
            return len(self.conns)

    @property
    def nreq(self):
        with self.lock:
            return len(self.requests)

    def wait_requests(self, n, timeout=5):
        """Wait until n requests were parsed; True if they were."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def wait_conns(self, n, timeout=5):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.conns) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def clear(self):
        """Forget what was recorded (open connections keep running)."""
        with self.lock:
            for c in self.conns:
                c.chunks = []
            self.requests = []
            self.errors = []
            self.conns = [c for c in self.conns if not c.closed]

    def summary(self):
        with self.lock:
            return "origin: %d conns, %d requests, errors=%r, bytes=%r" % (
                len(self.conns), len(self.requests), self.errors,
                b"".join(c.data for c in self.conns)[:600])

    def stop(self):
        self._stop = True
        # shutdown first: a close() alone leaves the socket listening while
        # the accept thread is blocked in accept() on it, and connections
        # would then hang in the backlog instead of being refused
        try:
            self.ls.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.ls.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            # shutdown first: a handler thread blocked in recv() on it
            # would otherwise keep the connection open after close()
            if not c.closed:
                try:
                    c.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            c.close()


if __name__ == "__main__":
    # Manual use: python3 origin.py  -> serves "ok ..." and prints its port.
    o = Origin()
    print("PORT %d" % o.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
