#!/usr/bin/env python3
"""
t_forward.py - the forwarding contract of sluice 0.1, byte by byte.

What the origin must receive for a well-formed client request (request
line in origin-form, Host rebuilt from the absolute URL, hop-by-hop
fields removed, Via and X-Forwarded-For), how request and response
bodies are framed on each side (CL kept, chunked re-chunked, close-
delimited turned into chunked for HTTP/1.1 clients), keep-alive,
pipelining, upstream reuse, HTTP/1.0 clients and Expect: 100-continue.
"""
import os
from harness import *
from origin import *

S = {}


def setup():
    S["o"] = Origin()
    S["sl"] = Sluice()


def last_req(o, n=1):
    expect(o.wait_requests(n), "origin did not receive %d request(s)" % n, o.summary())
    return o.requests[n - 1]


def fresh(handler=None):
    """A new origin for a case that needs its own recording."""
    return new_origin(handler)


@case("request line rewritten to origin-form, query kept")
def _():
    o = fresh()
    r = get(S["sl"].port, o.url("/a/b%20c?x=1&y=%2F"))
    expect_eq(r.status, 200, "status")
    req = last_req(o)
    expect_eq(req.raw_head.split(b"\r\n")[0], b"GET /a/b%20c?x=1&y=%2F HTTP/1.1", "request line")


@case("empty path becomes /")
def _():
    o = fresh()
    r = request(S["sl"].port, b"GET http://127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                % (o.port, o.port))
    expect_eq(r.status, 200, "status")
    expect_eq(last_req(o).target, "/", "target")


@case("Host replaced by the URL authority (HOSTILE #29)")
def _():
    o = fresh()
    r = get(S["sl"].port, o.url("/h"), headers=[("Host", "b.test")])
    expect_eq(r.status, 200, "status")
    expect_eq(last_req(o).header_all("Host"), ["127.0.0.1:%d" % o.port], "Host")


@case("hop-by-hop request fields removed")
def _():
    o = fresh()
    hdrs = [("Connection", "keep-alive, X-Hop"), ("X-Hop", "1"), ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"), ("Proxy-Authorization", "Basic c2VjcmV0"),
            ("TE", "trailers"), ("Trailer", "X-T"), ("Upgrade", "h2c"), ("X-Keep", "yes")]
    r = get(S["sl"].port, o.url("/hop"), headers=hdrs)
    expect_eq(r.status, 200, "status")
    req = last_req(o)
    for n in ("X-Hop", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "TE",
              "Trailer", "Upgrade"):
        expect(not req.has(n), "%s forwarded" % n, req.headers)
    expect(all("x-hop" not in v.lower() for v in req.header_all("Connection")),
           "Connection still names X-Hop", req.headers)
    expect_eq(req.header_all("X-Keep"), ["yes"], "end-to-end field")


@case("Upgrade: websocket is forwarded (the one Upgrade kept)")
def _():
    o = fresh()
    r = get(S["sl"].port, o.url("/ws"), headers=[("Connection", "Upgrade"), ("Upgrade", "websocket"),
                                               ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                               ("Sec-WebSocket-Version", "13")])
    expect_eq(r.status, 200, "status")
    req = last_req(o)
    expect_eq(req.header_all("Upgrade"), ["websocket"], "Upgrade", req.headers)
    expect(any("upgrade" in v.lower() for v in req.header_all("Connection")), "Connection: Upgrade",
           req.headers)


@case("existing Via kept, ours appended")
def _():
    o = fresh()
    r = get(S["sl"].port, o.url("/via"), headers=[("Via", "1.0 other")])
    expect_eq(r.status, 200, "status")
    via = ", ".join(last_req(o).header_all("Via"))
    expect(via.startswith("1.0 other") and via.endswith("1.1 sluice-test (sluice)"), "Via: %r" % via)


@case("X-Forwarded-For add appends the client")
def _():
    o = fresh()
    r = get(S["sl"].port, o.url("/xff"), headers=[("X-Forwarded-For", "10.9.8.7")])
    expect_eq(r.status, 200, "status")
    xff = ", ".join(last_req(o).header_all("X-Forwarded-For"))
    expect_eq(xff.replace(" ", ""), "10.9.8.7,127.0.0.1", "X-Forwarded-For")


@case("x_forwarded_for transparent / delete")
def _():
    for mode, want_none, want_given in (("transparent", [], ["10.9.8.7"]), ("delete", [], [])):
        sl = Sluice({"x_forwarded_for": mode})
        o = fresh()
        get(sl.port, o.url("/a"))
        get(sl.port, o.url("/b"), headers=[("X-Forwarded-For", "10.9.8.7")])
        expect_eq(last_req(o, 1).header_all("X-Forwarded-For"), want_none, mode + " without XFF")
        expect_eq(last_req(o, 2).header_all("X-Forwarded-For"), want_given, mode + " with XFF")
        sl.stop()


@case("Content-Length request body forwarded byte-exact")
def _():
    o = fresh(serve(lambda req, c: response(200, b"got %d" % len(req.body))))
    body = os.urandom(200000)
    r = get(S["sl"].port, o.url("/post"), method="POST", body=body)
    expect_eq((r.status, r.body), (200, b"got 200000"), "response")
    req = last_req(o)
    expect_eq(req.header_all("Content-Length"), ["200000"], "CL")
    expect(not req.has("Transfer-Encoding"), "TE added")
    expect(req.body == body, "body differs")


@case("chunked request body forwarded chunked, data exact, no ext, no trailers")
def _():
    o = fresh()
    data = os.urandom(5000)
    body = b"10;ext=1\r\n" + data[:16] + b"\r\n" + b"%x\r\n" % (len(data) - 16) + data[16:] + \
        b"\r\n0\r\nX-Trailer: t\r\n\r\n"
    raw = build("POST", o.url("/chunked"), [("Transfer-Encoding", "chunked")]) + body
    r = request(S["sl"].port, raw)
    expect_eq(r.status, 200, "status")
    req = last_req(o)
    expect(req.chunked and not req.has("Content-Length"), "framing", req.headers)
    expect(req.body == data, "data differs")
    expect(not req.chunk_ext_seen, "chunk extension re-emitted", req.raw_body[:100])
    expect_eq(req.trailers, [], "trailers")


@case("CL response forwarded with CL, body exact")
def _():
    body = os.urandom(1 << 20)
    o = fresh(canned(response(200, body)))
    r = get(S["sl"].port, o.url("/big"))
    expect_eq((r.status, r.header("Content-Length")), (200, str(len(body))), "status/CL")
    expect(r.body == body, "body differs (%d bytes)" % len(r.body))


@case("chunked response re-chunked, data exact")
def _():
    o = fresh(canned(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5;e=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n"))
    r = get(S["sl"].port, o.url("/c"))
    expect_eq((r.status, r.chunked, r.complete, r.body), (200, True, True, b"hello world"), "response")
    expect(b";e=1" not in r.raw, "chunk extension relayed", r.raw)


@case("close-delimited response -> chunked to an HTTP/1.1 client, kept alive")
def _():
    o = fresh(canned(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil-close body", close=True))
    c = Client(S["sl"].port)
    c.send(build("GET", o.url("/close")))
    r = c.read_response()
    expect_eq((r.status, r.body), (200, b"until-close body"), "response")
    expect(r.chunked and r.complete, "not chunked", r.raw)
    o2 = fresh()
    c.send(build("GET", o2.url("/after")))
    r2 = c.read_response()
    expect_eq((r2.status, r2.body), (200, b"ok GET /after"), "second request on the same connection")


@case("close-delimited response -> close-delimited to an HTTP/1.0 client")
def _():
    o = fresh(canned(b"HTTP/1.1 200 OK\r\n\r\nuntil-close body", close=True))
    r = request(S["sl"].port, b"GET %s HTTP/1.0\r\n\r\n" % o.url("/c10").encode(), close_wait=3)
    expect_eq((r.status, r.body), (200, b"until-close body"), "response")
    expect(r.header("Transfer-Encoding") is None, "chunked sent to HTTP/1.0 client", r.raw)
    expect(r.closed, "not closed")


@case("HEAD response: CL kept, no body, connection reusable")
def _():
    o = fresh(serve(lambda req, c: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
                    if req.method == "HEAD" else response(200, b"after-head")))
    c = Client(S["sl"].port)
    c.send(build("HEAD", o.url("/head")))
    r = c.read_response(method="HEAD")
    expect_eq((r.status, r.header("Content-Length")), (200, "10"), "HEAD")
    c.send(build("GET", o.url("/x")))
    r2 = c.read_response()
    expect_eq((r2.status, r2.body), (200, b"after-head"), "next response")


@case("204 and 304 have no body")
def _():
    o = fresh(serve(lambda req, c: b"HTTP/1.1 204 No Content\r\n\r\n" if req.target == "/204"
                    else b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n" if req.target == "/304"
                    else response(200, b"fine")))
    c = Client(S["sl"].port)
    for p, st in (("/204", 204), ("/304", 304), ("/ok", 200)):
        c.send(build("GET", o.url(p)))
        r = c.read_response()
        expect_eq(r.status, st, p)
        expect(r.body == (b"fine" if st == 200 else b""), "body for %s: %r" % (p, r.body))


@case("pipelined requests answered in order")
def _():
    o = fresh()
    raw = b"".join(build("GET", o.url("/p%d" % i)) for i in range(5))
    c = Client(S["sl"].port)
    c.send(raw)
    for i in range(5):
        r = c.read_response()
        expect_eq((r.status, r.body), (200, b"ok GET /p%d" % i), "response %d" % i)


@case("upstream connection reused for sequential requests")
def _():
    o = fresh()
    c = Client(S["sl"].port)
    for p in ("/r1", "/r2"):
        c.send(build("GET", o.url(p)))
        expect_eq(c.read_response().status, 200, p)
    expect_eq((o.nreq, o.nconns), (2, 1), "(origin requests, origin connections)")


@case("HTTP/1.0 client: response then close")
def _():
    o = fresh()
    r = request(S["sl"].port, b"GET %s HTTP/1.0\r\n\r\n" % o.url("/ten").encode(), close_wait=3)
    expect_eq((r.status, r.body), (200, b"ok GET /ten"), "response")
    expect(r.version in ("HTTP/1.1", "HTTP/1.0"), "version %r" % r.version)
    expect(r.closed, "not closed")


@case("HTTP/1.0 client with keep-alive keeps the connection")
def _():
    o = fresh()
    c = Client(S["sl"].port)
    for p in ("/k1", "/k2"):
        c.send(b"GET %s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % o.url(p).encode())
        r = c.read_response()
        expect_eq((r.status, r.body), (200, b"ok GET " + p.encode()), p)


@case("Expect: 100-continue: origin's 100 relayed, body flows")
def _():
    def h(conn):
        req = conn.read_request(body=False)
        conn.expect_seen = req.header("Expect")
        conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        conn._read_body(req, time.monotonic() + 10)
        conn.send(response(200, b"got " + req.body))
    o = fresh(h)
    c = Client(S["sl"].port)
    c.send(build("POST", o.url("/expect"), [("Expect", "100-continue"), ("Content-Length", "5")]))
    r = c.read_response(stop_at_1xx=True, timeout=5)
    expect_eq(r.status, 100, "interim status")
    c.send(b"hello")
    r = c.read_response()
    expect_eq((r.status, r.body), (200, b"got hello"), "final")
    expect(o.wait_conns(1) and getattr(o.conns[0], "expect_seen", None) == "100-continue",
           "Expect not forwarded")


@case("response hop-by-hop fields removed")
def _():
    o = fresh(canned(b"HTTP/1.1 200 OK\r\nConnection: X-Resp-Hop\r\nX-Resp-Hop: 1\r\n"
                     b"Keep-Alive: timeout=5\r\nX-E2E: 1\r\nContent-Length: 2\r\n\r\nok"))
    r = get(S["sl"].port, o.url("/rh"))
    expect_eq((r.status, r.body), (200, b"ok"), "response")
    expect(r.header("X-Resp-Hop") is None and r.header("Keep-Alive") is None, "hop-by-hop relayed",
           r.headers)
    expect_eq(r.header("X-E2E"), "1", "end-to-end field")


@case("OPTIONS with Max-Forwards: 0 is answered by sluice, never forwarded")
def _():
    o = fresh()
    r = get(S["sl"].port, o.url("/mf"), method="OPTIONS", headers=[("Max-Forwards", "0")])
    expect_eq(r.status, 200, "status")
    expect("OPTIONS" in (r.header("Allow") or ""), "Allow header", r.headers)
    expect_eq(len(o.requests), 0, "requests at the origin")


@case("OPTIONS with Max-Forwards: 3 reaches the origin with 2")
def _():
    o = fresh()
    r = get(S["sl"].port, o.url("/mf"), method="OPTIONS", headers=[("Max-Forwards", "3")])
    expect_eq(r.status, 200, "status")
    req = last_req(o)
    expect_eq(req.header_all("Max-Forwards"), ["2"], "Max-Forwards", req.headers)


@case("Max-Forwards on GET is forwarded untouched")
def _():
    o = fresh()
    get(S["sl"].port, o.url("/mfg"), headers=[("Max-Forwards", "0")])
    req = last_req(o)
    expect_eq(req.header_all("Max-Forwards"), ["0"], "Max-Forwards", req.headers)


@case("OPTIONS with a malformed Max-Forwards gets 400, origin untouched")
def _():
    o = fresh()
    r = get(S["sl"].port, o.url("/mf"), method="OPTIONS", headers=[("Max-Forwards", "1x")])
    expect_error_page(r, (400,), close=True)
    expect_eq(len(o.requests), 0, "requests at the origin")


@case("framing is regenerated: Content-Length 0005 reaches the origin as 5")
def _():
    o = fresh()
    c = Client(S["sl"].port)
    c.send(b"POST " + o.url("/cl").encode() + b" HTTP/1.1\r\nHost: x\r\n"
           b"Content-Length: 0005\r\n\r\nhello")
    r = c.read_response()
    expect_eq(r.status, 200, "status")
    req = last_req(o)
    expect_eq(req.header_all("Content-Length"), ["5"], "Content-Length at the origin", req.headers)
    expect_eq(req.body, b"hello", "body")


@case("a response with Content-Length: 5, 5 reaches the client with one field")
def _():
    o = fresh(canned(b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello"))
    r = get(S["sl"].port, o.url("/cl2"))
    expect_eq((r.status, r.body), (200, b"hello"), "response")
    expect_eq(r.header_all("Content-Length"), ["5"], "Content-Length fields", r.headers)


main(setup=setup)
