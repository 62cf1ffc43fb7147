#!/usr/bin/env python3
"""
t_basic.py - smoke test of the forward proxy: sluice starts, forwards an
absolute-form GET to a local origin, rewrites the request line, adds Via
and X-Forwarded-For, keeps the client connection alive, answers curl,
and stops on SIGTERM.  The detailed forwarding contract is t_forward.py.
"""
from harness import *
from origin import *

S = {}


def setup():
    S["o"] = Origin()
    S["sl"] = Sluice()


@case("absolute-form GET is forwarded in origin-form with Host, Via, XFF")
def _():
    o, sl = S["o"], S["sl"]
    r = get(sl.port, o.url("/path?q=1"))
    expect_eq(r.status, 200, "status")
    expect_eq(r.body, b"ok GET /path?q=1", "body")
    expect(o.wait_requests(1), "origin got no request", o.summary())
    req = o.requests[-1]
    expect_eq((req.method, req.target, req.version), ("GET", "/path?q=1", "HTTP/1.1"), "request line")
    expect_eq(req.header_all("Host"), ["127.0.0.1:%d" % o.port], "Host")
    expect(", ".join(req.header_all("Via")).endswith("1.1 sluice-test (sluice)"), "Via", req.headers)
    expect_eq(req.header_all("X-Forwarded-For"), ["127.0.0.1"], "X-Forwarded-For")


@case("two requests on one client connection")
def _():
    o, sl = S["o"], S["sl"]
    c = Client(sl.port)
    for p in ("/one", "/two"):
        c.send(build("GET", o.url(p)))
        r = c.read_response()
        expect_eq((r.status, r.body), (200, b"ok GET " + p.encode()), "response")
    c.close()


@case("curl through the proxy")
def _():
    o, sl = S["o"], S["sl"]
    rc, code, body, err = curl(sl.port, o.url("/curl"))
    expect_eq((rc, code, body), (0, 200, b"ok GET /curl"), "curl", err)


@case("SIGTERM stops master and workers, exit 0")
def _():
    sl = S["sl"]
    expect(sl.wait_workers(), "workers never appeared", sl.worker_pids(), sl.diag())
    workers = sl.worker_pids()
    rc = sl.stop()
    expect_eq(rc, 0, "master exit code")
    expect(poll(lambda: not any(pid_alive(w) for w in workers), 5), "workers still alive", workers)


main(setup=setup)
