#!/usr/bin/env python3
"""
t_errors.py - the statuses sluice generates itself and the shape of
its error pages: 400/405/411/413/414/417/431/501/505 for requests it
refuses (each with a short text/html page, Connection: close and a
closed connection), and 502/504 for upstream failures (refused, reset,
DNS), whose page says what went wrong.

The instance runs with small limits so the limit cases stay small.
"""
import os
from harness import *
from origin import *

S = {}
LIMITS = {"uri_size": "1K", "header_size": "4K", "header_fields": 20, "request_body": "1K"}
T = []


def status_case(raw_fn, statuses, level="head", close=True):
    def fn():
        o, sl = S["o"], S["sl"]
        o.clear()
        r = request(sl.port, raw_fn(o))
        expect_error_page(r, statuses, close=close)
        expect(len(r.body) < 4096, "error page is not short (%d bytes)" % len(r.body))
        o.wait_requests(1, 0.1)
        if level == "head":
            expect_eq(o.received(), b"", "origin received")
        else:
            expect_eq(o.nreq, 0, "origin received a complete request")
        still_serving(sl, o)
    return fn


def add(name, raw_fn, statuses, level="head", close=True):
    T.append((name, status_case(raw_fn, statuses, level, close)))


add("method of 33 characters -> 501", lambda o: build("A" * 33, o.url("/m")), (501,))
add("URI over limits.uri_size -> 414", lambda o: build("GET", o.url("/" + "u" * 2000)), (414,))
add("header block over limits.header_size -> 431",
    lambda o: build("GET", o.url("/h"), [("X-Big", "x" * 5000)]), (431,))
add("more than limits.header_fields fields -> 431",
    lambda o: build("GET", o.url("/h"), [("X-F%d" % i, "v") for i in range(30)]), (431,))
add("unknown transfer coding -> 501",
    lambda o: build("POST", o.url("/te"), [("Transfer-Encoding", "foo, chunked")]) + b"5\r\nhello\r\n0\r\n\r\n",
    (501,))
add("HTTP/2.0 -> 505", lambda o: build("GET", o.url("/v"), version="HTTP/2.0"), (505,))
add("Expect: something-else -> 417",
    lambda o: build("POST", o.url("/e"), [("Expect", "something-else")], body=b"hello"), (417,))
for m in ("POST", "PUT", "PATCH"):
    add("%s without Content-Length or Transfer-Encoding -> 411" % m,
        lambda o, m=m: build(m, o.url("/l")), (411,))
add("Content-Length over limits.request_body -> 413",
    lambda o: build("POST", o.url("/b"), body=b"b" * 2000), (413,))
add("chunked body over limits.request_body -> 413",
    lambda o: build("POST", o.url("/b"), [("Transfer-Encoding", "chunked")]) +
    b"400\r\n" + b"c" * 1024 + b"\r\n400\r\n" + b"c" * 1024 + b"\r\n0\r\n\r\n", (413,), level="body")
add("chunked body far over limits.request_body (100 KiB) -> 413",
    lambda o: build("POST", o.url("/b"), [("Transfer-Encoding", "chunked")]) +
    (b"400\r\n" + b"c" * 1024 + b"\r\n") * 100 + b"0\r\n\r\n", (413,), level="body")
add("TRACE -> 405", lambda o: build("TRACE", o.url("/t")), (405,), close=False)
add("origin-form on the forward listener -> 400",
    lambda o: b"GET /a HTTP/1.1\r\nHost: %s\r\n\r\n" % o.hostport.encode(), (400,))
add("https:// in absolute-form -> 400", lambda o: build("GET", "https://%s/" % o.hostport), (400,))
add("ftp:// in absolute-form -> 400", lambda o: build("GET", "ftp://%s/" % o.hostport), (400,))
add("userinfo in the URL -> 400", lambda o: build("GET", "http://u:p@%s/" % o.hostport), (400,))
add("fragment in the URL -> 400", lambda o: build("GET", o.url("/a#f")), (400,))
add("malformed request line -> 400", lambda o: b"GARBAGE\r\n\r\n", (400,))


def upstream_error(handler_or_port, want, word):
    def fn():
        sl = S["sl"]
        if isinstance(handler_or_port, int) or handler_or_port is None:
            url = "http://127.0.0.1:%d/x" % free_port()
        else:
            url = new_origin(handler_or_port).url("/x")
        r = get(sl.port, url)
        expect_eq(r.status, want, "status", r)
        expect((r.header("Content-Type") or "").startswith("text/html"), "Content-Type", r)
        expect(word.lower() in r.body.decode("latin-1").lower(), "page does not mention %r" % word, r.body)
        still_serving(sl, S["o"])
    return fn


def rst_before_answer(conn):
    conn.read_request()
    conn.rst()


T.append(("connection refused -> 502 mentioning 'refused'", upstream_error(None, 502, "refused")))
T.append(("origin reset before answering -> 502 mentioning 'reset'", upstream_error(rst_before_answer, 502, "reset")))


def dns_case(name, want, word):
    def fn():
        if not S.get("dns"):
            raise Skip("fake DNS unavailable")
        r = get(S["dsl"].port, "http://%s:%d/x" % (name, S["o"].port), timeout=20)
        expect_eq(r.status, want, "status", r, S["dsl"].diag())
        if word:
            expect(word.lower() in r.body.decode("latin-1").lower(), "page does not mention %r" % word, r.body)
        still_serving(S["dsl"], S["o"])
    return fn


T.append(("DNS NXDOMAIN -> 502 mentioning DNS", dns_case("nx.test", 502, "DNS")))
T.append(("DNS timeout -> 504", dns_case("slow.test", 504, None)))
T.append(("DNS name resolved through the fake server -> 200", dns_case("good.test", 200, None)))


def setup():
    S["o"] = new_origin()
    S["sl"] = Sluice({"limits": LIMITS})
    try:
        S["dns"] = fakedns({"good.test": "A:127.0.0.1", "slow.test": "DROP"})
    except Exception:
        S["dns"] = None
    if S["dns"]:
        S["dsl"] = Sluice({"timeouts": {"connect": 3, "upstream": 5}}, dns_port=S["dns"].port)


main(T, setup=setup)
