#!/usr/bin/env python3
"""
t_alloc.py - HOSTILE F16 (memory limits) and the fallbacks for running
out of pipes and sockets, driven by sluice's test-only fault points
(./configure --enable-fault-injection; SLUICE_FAULTS="name:N" makes the
named operation fail every Nth time).

  req_alloc        the per-request allocation fails: that request gets
                   503, every other request is served, no worker dies
  buf_alloc        buffer allocations fail now and then: each exchange
                   ends in a status or a cut, never a crash or a hang
  upstream_socket  socket() for the origin fails with EMFILE: 503
  pipe             a CONNECT tunnel cannot get its splice pipes: it
                   relays through buffers instead, byte-exact

When the binary was built without fault points, every case is a TAP
skip naming the configure option (the README's test command enables
them, so CI runs them).
"""
import os
import socket
import subprocess
import threading
import time

from harness import *
from origin import *

S = {}
T = []


def has_faults():
    out = subprocess.run([SLUICE, "-V"], capture_output=True, text=True).stdout
    return "fault-injection=yes" in out


def faulty(spec, conf=None, workers=1):
    if not S["faults"]:
        raise Skip("built without --enable-fault-injection")
    sl = Sluice(conf or {}, workers=workers, start=False)
    sl.env = dict(os.environ, SLUICE_FAULTS=spec)
    sl.start()
    return sl


def req_alloc():
    sl = faulty("req_alloc:3")
    pids = sorted(sl.worker_pids())
    statuses = []
    for i in range(12):
        r = get(sl.port, S["o"].url("/r%d" % i), headers=[("Connection", "close")])
        statuses.append(r.status)
    expect_eq(statuses.count(503), 4, "503 answers (every 3rd request)", statuses)
    expect_eq(statuses.count(200), 8, "200 answers", statuses)
    expect_eq(sorted(sl.worker_pids()), pids, "worker pids")


T.append(("F16 request allocation fails: 503 for that request, others served", req_alloc))


def buf_alloc():
    sl = faulty("buf_alloc:7")
    pids = sorted(sl.worker_pids())
    codes = {}
    for i in range(60):
        try:
            r = get(sl.port, S["o"].url("/b%d" % i), headers=[("Connection", "close")], timeout=5)
            codes[r.status] = codes.get(r.status, 0) + 1
        except Exception as e:      # a cut connection is an allowed outcome
            codes[type(e).__name__] = codes.get(type(e).__name__, 0) + 1
    expect(codes.get(200, 0) > 0, "no request succeeded", codes)
    # None: closed without an answer (no memory even for the error page)
    bad = {k: v for k, v in codes.items() if k not in (200, 503, None) and not isinstance(k, str)}
    expect(not bad, "statuses other than 200/503", codes)
    expect_eq(sorted(sl.worker_pids()), pids, "worker pids (a worker died?)")


T.append(("F16 buffer allocations fail: 200, 503 or a cut, no crash, no hang", buf_alloc))


def upstream_socket():
    sl = faulty("upstream_socket:1")
    o = new_origin()
    r = get(sl.port, o.url("/s"))
    expect_error_page(r, (503,), close=True)
    expect("descriptors" in r.body.decode("latin-1"), "page says why", r.body[:300])
    expect_eq(len(o.requests), 0, "origin requests")


T.append(("socket() for the origin fails with EMFILE: 503 with a reason", upstream_socket))


def pipe_fallback():
    e = S["echo"]
    sl = faulty("pipe:1", {"connect_ports": [e.port]})
    c = Client(sl.port, timeout=10)
    hp = ("127.0.0.1:%d" % e.port).encode()
    c.send(b"CONNECT " + hp + b" HTTP/1.1\r\nHost: " + hp + b"\r\n\r\n")
    r = c.read_response(method="CONNECT")
    expect_eq(r.status, 200, "CONNECT status")
    data = os.urandom(1 << 20)
    th = threading.Thread(target=lambda: c.send(data))
    th.start()
    got = c.recv_some(len(data), timeout=20)
    th.join()
    expect(got == data, "echoed bytes differ (%d of %d)" % (len(got), len(data)))


T.append(("no pipes for a tunnel: relayed through buffers, byte-exact", pipe_fallback))


def setup():
    S["faults"] = has_faults()
    S["o"] = new_origin()
    S["echo"] = new_origin(echo())


main(T, setup=setup)
