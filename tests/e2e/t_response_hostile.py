#!/usr/bin/env python3
"""
t_response_hostile.py - HOSTILE.md section C (cases 41-51) and faults
F10, F11, F22: a broken or hostile origin.

sluice's contract: a malformed response head is answered with 502;
a body that breaks mid-way reaches the client truncated (no fake
last-chunk, fewer bytes than the CL, then a close); a response whose
framing leaves doubt (extra bytes, bodies on 204/304/HEAD, TE+CL) never
leaves its origin connection in the pool, so bytes an origin smuggled
after a response never become the next client's response.

One worker, so a second request on the same client connection is known
to reach the same upstream pool: "not reused" is then a real check.
"""
import threading
from harness import *
from origin import *

S = {}


def hostile_origin(first, keep_open=True, after=None):
    """Answer the first request of the run with raw bytes `first` (a
    callable gets the conn); later requests get "ok TARGET"."""
    state = {"n": 0}
    lock = threading.Lock()

    def h(conn):
        while True:
            req = conn.read_request(timeout=30)
            if req is None:
                return
            with lock:
                state["n"] += 1
                n = state["n"]
            if n == 1:
                if callable(first):
                    first(conn)
                else:
                    conn.send(first)
                if not keep_open:
                    conn.close()
                    return
            else:
                conn.send(response(200, b"ok " + req.target.encode()))
    return new_origin(h)


def first_then_second(first, method="GET", keep_open=True):
    """Run the hostile exchange; return (first response, client, origin)."""
    o = hostile_origin(first, keep_open)
    c = Client(S["sl"].port)
    c.send(build(method, o.url("/first")))
    r = c.read_response(method=method, timeout=5)
    r.client = c
    return r, c, o


def second_is_clean(c, o, reuse_ok=False):
    """A second request (same client connection when it is still open)
    gets its own fresh answer, on a new origin connection unless the
    first response was a valid one (reuse_ok)."""
    if c.eof or c.wait_closed(0.05):
        c = Client(S["sl"].port)
    c.send(build("GET", o.url("/second")))
    r = c.read_response(timeout=10)
    expect_eq((r.status, r.body), (200, b"ok /second"), "second response", r)
    if not reuse_ok:
        expect_eq(len(o.conns[0].requests), 1, "requests on the hostile origin connection (reused?)")
    c.close()


T = []


def bad_head(name, raw, statuses=(502,)):
    def fn():
        r, c, o = first_then_second(raw)
        expect_in(r.status, statuses, "status")
        expect((r.header("Content-Type") or "").startswith("text/html"), "not an error page", r)
        second_is_clean(c, o)
    T.append((name, fn))


bad_head("#41 two differing Content-Length", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
bad_head("#41 Content-Length: 5x", b"HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello")
for te in (b"chunked, chunked", b"chunked, gzip, chunked", b"gzip", b"identity"):
    bad_head("#44 response TE %r" % te, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + te +
             b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
for name, hdr in (("obs-fold", b"X-A: a\r\n b"), ("space before colon", b"X-A : b"),
                  ("bare CR", b"Set-Cookie: a\rLocation: //evil"), ("NUL", b"X-A: a\x00b"),
                  ("lone LF", b"X-A: b\nX-B: c")):
    bad_head("#47 response header %s" % name,
             b"HTTP/1.1 200 OK\r\n" + hdr + b"\r\nContent-Length: 2\r\n\r\nok")
for sl in (b"HTTP/1.1 2000 OK", b"HTTP/1.1 20 OK", b"HTTP/1.1 200 O\x01K",
           b"HTTP/1.1 200 " + b"R" * 65536, b"ICY 200 OK", b"HTTP/2.0 200 OK", b"HTTP/1.1 abc OK"):
    bad_head("#49 status line %r" % sl[:24], sl + b"\r\nContent-Length: 2\r\n\r\nok")
bad_head("#50 response head over 64 KiB",
         b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-F%d: %s\r\n" % (i, b"v" * 1000) for i in range(80)) +
         b"Content-Length: 2\r\n\r\nok")
bad_head("#50 10000 response fields",
         b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(10000)) +
         b"Content-Length: 2\r\n\r\nok")
bad_head("#48 101 without an Upgrade request",
         b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")


def valid_status(raw, want_status):
    def fn():
        r, c, o = first_then_second(raw)
        expect_eq((r.status, r.body), (want_status, b"ok"), "response")
        second_is_clean(c, o, reuse_ok=True)
    return fn


T.append(("#49 empty reason phrase is valid", valid_status(b"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok", 200)))
T.append(("#49 status line without reason is accepted",
          valid_status(b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", 200)))


def splitting():
    attack = b"HTTP/1.1 200 OK\r\nX-Attack: 1\r\nContent-Length: 7\r\n\r\nSPLIT!!"
    body = b"0\r\n\r\n" + attack
    r, c, o = first_then_second(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: %d\r\n\r\n"
                                % len(body) + body)
    if r.status == 502:
        pass
    else:
        expect_eq((r.status, r.body, r.complete), (200, b"", True), "chunked wins")
        expect(r.header("Content-Length") is None, "CL relayed with TE", r.headers)
    expect(b"SPLIT!!" not in c.all, "attack bytes reached the client", c.all)
    second_is_clean(c, o)


T.append(("#42 TE + CL response: chunked wins, trailing bytes never a response", splitting))


def http10_chunked():
    r, c, o = first_then_second(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                                keep_open=False)
    expect_eq(r.status, 200, "status")
    expect_in(r.body, (b"hello", b"5\r\nhello\r\n0\r\n\r\n"), "body (read until close)")
    second_is_clean(c, o)


T.append(("#43 HTTP/1.0 response with TE chunked: read until close", http10_chunked))


def truncated(name, first, keep_open=False, how="close"):
    def fn():
        def f(conn):
            conn.send(first)
            if how == "rst":
                conn.rst()
        r, c, o = first_then_second(f, keep_open=keep_open)
        if r.status == 502:
            pass  # detected before the head went out
        else:
            expect_eq(r.status, 200, "status")
            expect(not r.complete, "client got a complete-looking response", r.raw[-200:])
            expect(r.eof or c.wait_closed(5), "client connection not closed")
            expect(b"0\r\n\r\n" not in r.raw[len(r.raw_head):] or not r.chunked, "fake last-chunk", r.raw)
        second_is_clean(c, o)
    T.append((name, fn))


truncated("#46 CL 100, 10 bytes, FIN", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
truncated("#46 CL 100, 10 bytes, RST", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", how="rst")
truncated("#46 chunked without last-chunk, FIN",
          b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
truncated("#46 chunked without last-chunk, RST",
          b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", how="rst")
truncated("#46 close-delimited ended by RST", b"HTTP/1.1 200 OK\r\n\r\nsome bytes", how="rst")
truncated("#45 bad chunk size z", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nz\r\nxx\r\n0\r\n\r\n",
          keep_open=True)
truncated("#45 chunk size overflow", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
          b"111111111111111113\r\nxx\r\n0\r\n\r\n", keep_open=True)


def interim(n):
    def fn():
        r, c, o = first_then_second(b"HTTP/1.1 100 Continue\r\n\r\n" * n +
                                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        expect_eq((r.status, r.body), (200, b"ok"), "final response")
        expect_eq([i.status for i in r.interim], [100] * n, "interim responses forwarded")
        second_is_clean(c, o, reuse_ok=True)
    return fn


T.append(("#48 one unsolicited 100 forwarded", interim(1)))
T.append(("#48 three unsolicited 100 forwarded", interim(3)))


def body_on_nobody(status, method="GET"):
    def fn():
        line = {204: b"204 No Content", 304: b"304 Not Modified", 200: b"200 OK"}[status]
        r, c, o = first_then_second(b"HTTP/1.1 " + line + b"\r\nContent-Length: 10\r\n\r\n0123456789",
                                    method=method)
        expect_eq((r.status, r.body), (status, b""), "response")
        second_is_clean(c, o)
    return fn


T.append(("#48 204 with a body: no body, connection not reused", body_on_nobody(204)))
T.append(("#48 304 with a body: no body, connection not reused", body_on_nobody(304)))
T.append(("#48 HEAD response with body bytes: not reused", body_on_nobody(200, "HEAD")))


def straddle():
    # a field crossing the 4096-byte boundary arrives intact
    pad = b"X-Pad: " + b"p" * (4096 - len(b"HTTP/1.1 200 OK\r\n") - 7 - 2 - 10) + b"\r\n"
    raw = b"HTTP/1.1 200 OK\r\n" + pad + b"X-Straddle: " + b"s" * 100 + b"\r\nContent-Length: 2\r\n\r\nok"
    r, c, o = first_then_second(raw)
    expect_eq((r.status, r.body), (200, b"ok"), "response")
    expect_eq(r.header("X-Straddle"), "s" * 100, "straddling field")
    second_is_clean(c, o, reuse_ok=True)


T.append(("#50 field across a 4096-byte boundary intact", straddle))


def odd_dates():
    r, c, o = first_then_second(b"HTTP/1.1 200 OK\r\nExpires: Thu, 01 Ja\r\nDate: -1\r\n"
                                b"Last-Modified: Sat, 01 Jan 10000 00:00:00 GMT\r\nVary: *\r\n"
                                b"Content-Length: 2\r\n\r\nok")
    expect_eq((r.status, r.body), (200, b"ok"), "response")
    second_is_clean(c, o, reuse_ok=True)


T.append(("#50 broken dates and Vary: * passed through", odd_dates))


def extra_bytes():
    r, c, o = first_then_second(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEXTRA")
    expect_eq((r.status, r.body), (200, b"ok"), "response")
    second_is_clean(c, o)
    expect(b"EXTRA" not in c.all, "extra bytes relayed")


T.append(("#51 bytes after a complete response: connection not reused", extra_bytes))


def early_response():
    def h(conn):
        req = conn.read_request(body=False)
        conn.send(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope")
        conn.close()
    o = new_origin(h)
    c = Client(S["sl"].port)
    c.send(build("POST", o.url("/upload"), [("Content-Length", str(1 << 20))]))
    try:
        for _ in range(16):
            c.send(b"x" * 65536)
    except OSError:
        pass
    r = c.read_response()
    expect_in(r.status, (403, 502), "status")
    still_serving(S["sl"], new_origin())


T.append(("#51 early response while the body is sent", early_response))


def pool_stale():
    # F22: the origin closes an idle pooled connection; the next GET
    # must still succeed (retried on a new connection)
    def h(conn):
        req = conn.read_request()
        conn.send(response(200, b"ok " + req.target.encode()))
        conn.close()          # without Connection: close: the proxy pools it
    o = new_origin(h)
    c = Client(S["sl"].port)
    c.send(build("GET", o.url("/p1")))
    expect_eq(c.read_response().body, b"ok /p1", "first")
    expect(poll(lambda: o.conns[0].closed, 3), "origin did not close")
    c.send(build("GET", o.url("/p2")))
    r = c.read_response()
    expect_eq((r.status, r.body), (200, b"ok /p2"), "request after the pooled connection died")


T.append(("F22 pooled connection closed by the origin: GET retried", pool_stale))


def trickle():
    def h(conn):
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n")
        conn.trickle(b"abcdefghijklmnopqrst", delay=0.05)
    o = new_origin(h)
    t0 = time.monotonic()
    done = {}

    def other():
        o2 = new_origin()
        t = time.monotonic()
        done["r"] = get(S["sl"].port, o2.url("/fast"))
        done["t"] = time.monotonic() - t
    th = threading.Thread(target=other)
    c = Client(S["sl"].port)
    c.send(build("GET", o.url("/slow")))
    th.start()
    r = c.read_response()
    th.join(10)
    expect_eq((r.status, r.body), (200, b"abcdefghijklmnopqrst"), "trickled response")
    expect(done.get("r") is not None and done["r"].status == 200, "concurrent request failed")
    expect(done["t"] < 1.5, "concurrent request took %.2fs (loop blocked?)" % done["t"])


T.append(("F10 trickling origin: complete body, other clients unaffected", trickle))


def fin_while_busy():
    # F22/#51: the origin sends a complete response and closes at once
    # (no Connection: close).  The FIN arrives while the proxy is still
    # busy relaying the body to a slow client, so its event is spent on
    # a connection that is not reading.  That connection must not be
    # pooled: a later POST (never retried) would get a dead socket.
    size = 4 << 20

    def h(conn):
        req = conn.read_request()
        if req.target == "/big":
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            try:
                conn.sock.sendall(b"b" * size)
            except OSError:
                pass
            conn.close()
        else:
            conn.send(response(200, b"ok " + req.method.encode()))
    o = new_origin(h)
    sl = Sluice(workers=1)
    a = Client(sl.port)
    a.send(build("GET", o.url("/big")))
    # let the origin finish and close while the proxy waits on client A
    expect(poll(lambda: o.conns and o.conns[0].closed, 10), "origin did not close")
    r = a.read_response()
    expect_eq((r.status, len(r.body)), (200, size), "big response")
    b = Client(sl.port)
    b.send(build("POST", o.url("/post"), [("Connection", "close")], body=b"payload"))
    r = b.read_response()
    expect_eq((r.status, r.body), (200, b"ok POST"), "POST after the origin closed its connection")


T.append(("F22 origin FIN while the response is still being relayed: not pooled", fin_while_busy))


def setup():
    S["sl"] = Sluice(workers=1)


main(T, setup=setup)
