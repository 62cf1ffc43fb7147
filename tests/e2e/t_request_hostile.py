#!/usr/bin/env python3
"""
t_request_hostile.py - HOSTILE.md section A and B (cases 1-38): what
sluice does with request bytes that are ambiguous, malformed or abusive.

sluice picks the strict answer everywhere: its own HTML error page with
the stated status, Connection: close and a closed connection, and the
origin never sees a byte of the rejected request.  Errors found in a
body (chunk syntax) can only be seen after the head went upstream, so
for those the assertion is that the origin never received a complete
request.  After every case a new connection must still get a 200.

The table is data: (case name, raw bytes, allowed statuses, level),
with a few cases that need their own script written as functions.
"""
import os
from harness import *
from origin import *

S = {}
O = new_origin()
OP = O.port
OH = b"127.0.0.1:%d" % OP
U = b"http://" + OH


def msg(*lines, body=b""):
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


RL = b"POST " + U + b"/a HTTP/1.1"
GL = b"GET " + U + b"/a HTTP/1.1"
HOST = b"Host: " + OH
CHUNKED = b"Transfer-Encoding: chunked"
HELLO_CH = b"5\r\nhello\r\n0\r\n\r\n"
SMUGGLE = b"GET " + U + b"/SMUGGLED HTTP/1.1\r\nHost: " + OH + b"\r\n\r\n"


def settle(o, timeout=0.15):
    """Give an (incorrectly) forwarded request a moment to arrive."""
    o.wait_requests(1, timeout)


def rejected(raw, statuses, level="head", close=True):
    def fn():
        o, sl = S["o"], S["sl"]
        o.clear()
        r = request(sl.port, raw)
        expect_error_page(r, statuses, close=close)
        expect(b"SECRETCOOKIE" not in r.raw, "Cookie reflected", r.raw)
        settle(o)
        if level == "head":
            expect(o.received() == b"", "origin received bytes of a rejected request", o.summary())
        else:
            expect(o.nreq == 0, "origin received a complete request", o.summary())
        expect(not any(q.target.endswith("SMUGGLED") for q in o.requests), "smuggled", o.summary())
        still_serving(sl, o)
    return fn


T = []


def rej(name, raw, statuses=(400,), level="head", close=True):
    T.append((name, rejected(raw, statuses, level, close)))


# --- A. request framing --------------------------------------------------
rej("#1 CL 5 + CL 6", msg(RL, HOST, b"Content-Length: 5", b"Content-Length: 6", body=b"hello!"))
rej("#2 CL 5 twice", msg(RL, HOST, b"Content-Length: 5", b"Content-Length: 5", body=b"hello"))
rej("#2 CL '5, 5'", msg(RL, HOST, b"Content-Length: 5, 5", body=b"hello"))
for v in (b"+5", b"-1", b"0x5", b"5x", b"5 5", b"1_0", b""):
    rej("#3 CL %r" % v, msg(RL, HOST, b"Content-Length: " + v, body=b"hello"))
for v in (b"18446744073709551621", b"99999999999999999999"):
    rej("#4 CL overflow %s" % v.decode(), msg(RL, HOST, b"Content-Length: " + v, body=b"hello"))
rej("#5 CL + TE chunked", msg(RL, HOST, b"Content-Length: 4", CHUNKED, body=HELLO_CH))
rej("#5 TE chunked + CL", msg(RL, HOST, CHUNKED, b"Content-Length: 4", body=HELLO_CH))
for v in (b"chunked, identity", b"identity", b"gzip", b"gzip, identity"):
    rej("#6 TE %r" % v, msg(RL, HOST, b"Transfer-Encoding: " + v, body=HELLO_CH), (400, 501))
rej("#6 TE identity + CL carrying a request",
    msg(RL, HOST, b"Transfer-Encoding: identity", b"Content-Length: %d" % len(SMUGGLE), body=SMUGGLE),
    (400, 501))
for ln in (b"Transfer-Encoding: xchunked", b"Transfer-Encoding: ,chunked",
           b"Transfer-Encoding : chunked", b"Transfer-Encoding:\x0bchunked",
           b"Transfer-Encoding: chunked\x0c", b"Transfer-Encoding: \xa0chunked"):
    rej("#7 obfuscated %r" % ln, msg(RL, HOST, ln, body=HELLO_CH), (400, 501))
rej("#7 leading-space TE as first field", msg(RL, b" " + CHUNKED, HOST, body=HELLO_CH), (400, 501))
rej("#8 TE chunked twice", msg(RL, HOST, CHUNKED, CHUNKED, body=HELLO_CH))
rej("#8 TE 'chunked, chunked'", msg(RL, HOST, b"Transfer-Encoding: chunked, chunked", body=HELLO_CH))
rej("#9 HTTP/1.0 + TE chunked", msg(b"POST " + U + b"/a HTTP/1.0", HOST, CHUNKED, body=HELLO_CH))


def chunked_req(body):
    return msg(RL, HOST, CHUNKED, body=body)


for sz in (b"10000000000000005", b"FFFFFFFFFFFFFFED", b"111111111111111111111"):
    rej("#10 chunk-size overflow %s" % sz.decode(), chunked_req(sz + b"\r\nhello\r\n0\r\n\r\n"),
        level="body")
for sz in (b"0x5", b"+5", b"-5", b" 5", b"5 ", b"", b"z"):
    rej("#11 chunk-size %r" % sz, chunked_req(sz + b"\r\nhello\r\n0\r\n\r\n"), level="body")
for b in (b"5;a\nb\r\nhello\r\n0\r\n\r\n", b"2\r\r;a\r\nhi\r\n0\r\n\r\n",
          b"5;\x00x\r\nhello\r\n0\r\n\r\n", b"5;\r\nhello\r\n0\r\n\r\n",
          b'5;a="x\r\ny"\r\nhello\r\n0\r\n\r\n'):
    rej("#12 chunk-ext %r" % b[:12], chunked_req(b), level="body")
rej("#12 chunk-ext 64 KiB", chunked_req(b"5;" + b"a" * 65536 + b"\r\nhello\r\n0\r\n\r\n"), level="body")
rej("#13 chunk data without CRLF", chunked_req(b"5\r\nhelloXX0\r\n\r\n"), level="body")
rej("#14 bare-LF chunk lines", chunked_req(b"5\nhello\n0\n\n"), level="body")
rej("#15 trailer with a bare LF", chunked_req(b"5\r\nhello\r\n0\r\nX: y\n\r\n"), level="body")


def trailer_case(trailer):
    def fn():
        o, sl = S["o"], S["sl"]
        o.clear()
        r = request(sl.port, chunked_req(b"5\r\nhello\r\n0\r\n" + trailer + b"\r\n\r\n"))
        if r.status == 400:
            expect_error_page(r, (400,))
        else:
            expect_eq(r.status, 200, "status")
            expect(o.wait_requests(1), "not forwarded", o.summary())
            q = o.requests[0]
            expect_eq(q.body, b"hello", "body")
            expect(not q.has("Content-Length") or q.header("Content-Length") == "5",
                   "trailer merged into the header", q.headers)
            expect_eq(q.trailers, [], "trailers forwarded")
        still_serving(sl, o)
    return fn


for tr in (b"Content-Length: 50", b"Transfer-Encoding: chunked"):
    T.append(("#15 trailer %r dropped or rejected" % tr, trailer_case(tr)))


def body_forwarded(method):
    def fn():
        o, sl = S["o"], S["sl"]
        o.clear()
        body = b"GET /x HTTP/1.1\r\nHost: e\r\nX-Y: 1234\r\n\r\n"
        expect_eq(len(body), 39, "test body size")
        c = Client(sl.port)
        c.send(msg(method.encode() + b" " + U + b"/a HTTP/1.1", HOST, b"Content-Length: 39", body=body))
        r = c.read_response(method=method)
        expect_eq(r.status, 200, "status")
        expect(o.wait_requests(1), "not forwarded", o.summary())
        q = o.requests[0]
        expect_eq((q.method, q.header("Content-Length"), q.body), (method, "39", body), "forwarded")
        # the next request on the same connection gets its own answer
        c.send(msg(b"GET " + U + b"/sentinel HTTP/1.1", HOST))
        r2 = c.read_response()
        if not r2.eof:
            expect_eq((r2.status, r2.body), (200, b"ok GET /sentinel"), "next response")
        expect(not any(q.target == "/x" for q in o.requests), "body parsed as a request", o.summary())
        c.close()
        still_serving(sl, o)
    return fn


T.append(("#16 GET with a body: forwarded with its CL", body_forwarded("GET")))
T.append(("#16 HEAD with a body: forwarded with its CL", body_forwarded("HEAD")))


def pipelined_garbage():
    o, sl = S["o"], S["sl"]
    o.clear()
    c = Client(sl.port)
    c.send(msg(GL, HOST) + b"\x01garbage that is no request\r\n\r\n")
    r = c.read_response()
    expect_eq((r.status, r.body), (200, b"ok GET /a"), "first response")
    r2 = c.read_response()
    r2.client = c
    expect_error_page(r2, (400,))
    still_serving(sl, o)


T.append(("#17 valid request then garbage: 200, then 400 + close", pipelined_garbage))

# --- B. request line, target, fields ---------------------------------------------
rej("#19 obs-fold in X-Foo", msg(GL, HOST, b"X-Foo: a", b" b"))
rej("#19 obs-fold in Host", msg(GL, b"Host: 127.0.0.1", b" :%d" % OP))
rej("#19 obs-fold in CL", msg(RL, HOST, b"Content-Length:", b" 5", body=b"hello"))
rej("#20 'Host : x'", msg(GL, b"Host : " + OH))
rej("#20 'Content-Length : 5'", msg(RL, HOST, b"Content-Length : 5", body=b"hello"))
rej("#21 whitespace-led first field", msg(GL, b" Host: evil", HOST))
rej("#22 bare CR in a value", msg(GL, HOST, b"X-A: a\rb"))
rej("#22 bare CR hiding a TE", msg(RL, HOST, b"X: a\rTransfer-Encoding: chunked", body=HELLO_CH))
rej("#23 NUL in a value", msg(GL, HOST, b"X-A: a\x00b"))
rej("#23 NUL in Host", msg(GL, b"Host: good.test\x00.evil.test"))
rej("#23 NUL in a name", msg(GL, HOST, b"X\x00A: b"))
rej("#24 bare-LF header section", GL + b"\n" + HOST + b"\nX: y\n\n")
for nm in [b"Header\x85", b"X\x7fY"] + [b"X" + bytes([c]) + b"Y" for c in b'(),/;<=>?@[\\]{}"']:
    rej("#25 field name %r" % nm, msg(GL, HOST, nm + b": v"))
rej("#25 empty field name", msg(GL, HOST, b": v"))
rej("#25 line without colon", msg(GL, HOST, b"XA b"))
for rl, st in ((b"GET  " + U + b"/a HTTP/1.1", (400,)),
               (b"GET\t" + U + b"/a HTTP/1.1", (400,)),
               (b"GET " + U + b"/a\tHTTP/1.1", (400,)),
               (b"GET\x0b" + U + b"/a HTTP/1.1", (400,)),
               (b"GET " + U + b"/a http/1.1", (400,)),
               (b"GET " + U + b"/a HTTP/1.32", (400,)),
               (b"GET " + U + b"/a HTTP/1.2", (400, 505)),
               (b"GET " + U + b"/a HTTP/2.0", (505,)),
               (b"GET " + U + b"/a HTTP/3.0", (505,)),
               (b"G(T " + U + b"/a HTTP/1.1", (400,)),
               (b"get " + U + b"/a HTTP/1.1", (400, 501)),
               (b"GET " + U + b"/a HTTP/1.1 ", (400,)),
               (b"GET " + U + b"/a", (400,))):
    rej("#26 request line %r" % rl.replace(U, b"U"), msg(rl, HOST), st)
rej("#26 HTTP/0.9 simple request", b"GET " + U + b"/a\r\n", (400,))
rej("#27 whitespace inside the target", msg(b"GET " + U + b"/a b HTTP/1.1", HOST))
rej("#28 no Host in HTTP/1.1", msg(GL))
rej("#28 two Host lines", msg(GL, HOST, HOST))
for hv in (b"a b", b"x@y", b"[::1"):
    rej("#28 Host %r" % hv, msg(GL, b"Host: " + hv))
for url in (b"http://user:pw@" + OH + b"/", b"http://allowed.test@" + OH + b"/",
            b"http://evil.test#@" + OH + b"/"):
    rej("#30 userinfo %r" % url.replace(OH, b"O"), msg(b"GET " + url + b" HTTP/1.1", HOST))
rej("#31 fragment", msg(b"GET " + U + b"/a#frag HTTP/1.1", HOST))
rej("#32 origin-form on the forward listener", msg(b"GET /a HTTP/1.1", HOST))
for sch in (b"https://" + OH + b"/", b"ftp://" + OH + b"/", b"gopher://" + OH + b"/",
            b"urn:isbn:1", b"cache_object://" + OH + b"/info"):
    rej("#33 scheme %r" % sch.split(b":")[0], msg(b"GET " + sch + b" HTTP/1.1", HOST))
rej("#34 20 KB URI", msg(b"GET " + U + b"/" + b"a" * 20000 + b" HTTP/1.1", HOST), (414,))
rej("#34 200 KB header", msg(GL, HOST, b"X-Big: " + b"b" * 200000), (431,))
rej("#34 5000 header fields", msg(GL, HOST, *[b"X-F%d: v" % i for i in range(5000)]), (431,))
rej("#35 Expect: 100-continue twice",
    msg(RL, HOST, b"Expect: 100-continue", b"Expect: 100-continue", b"Content-Length: 5"), (417,))
rej("#35 Expect: y 100-continue", msg(RL, HOST, b"Expect: y 100-continue", b"Content-Length: 5"), (417,))


def expect_no_body():
    o, sl = S["o"], S["sl"]
    o.clear()
    r = request(sl.port, msg(GL, HOST, b"Expect: 100-continue"))
    if r.status == 417:
        expect_error_page(r, (417,))
    else:
        expect_eq((r.status, r.body), (200, b"ok GET /a"), "response")
    still_serving(sl, o)


T.append(("#35 Expect: 100-continue with no body: 417 or answered", expect_no_body))


def conn_nominated():
    o, sl = S["o"], S["sl"]
    o.clear()
    r = request(sl.port, msg(GL, HOST, b"Connection: close, X-Secret", b"X-Secret: 1"))
    expect_eq(r.status, 200, "status")
    expect(o.wait_requests(1), "not forwarded")
    expect(not o.requests[0].has("X-Secret"), "X-Secret forwarded", o.requests[0].headers)


T.append(("#36 Connection-nominated X-Secret stripped", conn_nominated))
rej("#36 Connection: Content-Length", msg(RL, HOST, b"Connection: Content-Length", b"Content-Length: 5",
                                          body=b"hello"))


def conn_routing(field):
    def fn():
        o, sl = S["o"], S["sl"]
        o.clear()
        hdrs = [GL, HOST, b"Connection: " + field]
        if field == b"Authorization":
            hdrs.append(b"Authorization: Basic eDp5")
        r = request(sl.port, msg(*hdrs))
        if r.status == 400:
            expect_error_page(r, (400,))
        else:
            expect_eq(r.status, 200, "status")
            expect(o.wait_requests(1), "not forwarded")
            expect(o.requests[0].has(field.decode()), "%s removed by a nomination" % field,
                   o.requests[0].headers)
        still_serving(sl, o)
    return fn


T.append(("#36 Connection: Host never removes Host", conn_routing(b"Host")))
T.append(("#36 Connection: Authorization ignored or 400", conn_routing(b"Authorization")))
rej("#37 TRACE", msg(b"TRACE " + U + b"/a HTTP/1.1", HOST, b"Max-Forwards: 0",
                     b"Cookie: c=SECRETCOOKIE"), (405,), close=False)


def range_abuse():
    o, sl = S["o"], S["sl"]
    for rg in (b",".join([b"0-0"] * 2000), b"-1,-1", b"0-18446744073709551615",
               b"99999999999999999999-"):
        o.clear()
        r = request(sl.port, msg(GL, HOST, b"Range: bytes=" + rg))
        expect_eq(r.status, 200, "status for Range %r" % rg[:30])
    still_serving(sl, o)


T.append(("#38 Range abuse forwarded, proxy keeps serving", range_abuse))


def chunked_upper():
    o, sl = S["o"], S["sl"]
    o.clear()
    r = request(sl.port, msg(RL, HOST, b"Transfer-Encoding: CHUNKED", body=HELLO_CH))
    expect_eq(r.status, 200, "status")
    expect(o.wait_requests(1), "not forwarded")
    expect_eq(o.requests[0].body, b"hello", "body")


T.append(("#7 'Transfer-Encoding: CHUNKED' is valid chunked", chunked_upper))


def setup():
    S["o"] = O
    S["sl"] = Sluice()


main(T, setup=setup)
