#!/usr/bin/env python3
"""
t_timeouts.py - client- and origin-side timeouts (HOSTILE #18, #40,
F10, F13): a client that never finishes its head gets 408 and a close,
also when it trickles bytes (the header timeout is a deadline, not an
idle timer); a body that pauses past the idle timeout closes the
connection and the late bytes are never parsed as a request (pause-
based desync); an origin that sends no head within timeouts.upstream
gives 504; an idle keep-alive connection is closed; other clients are
served meanwhile.  All timeouts are 2 s here.
"""
import threading
from harness import *
from origin import *

S = {}
T = []


def header_timeout():
    sl, o = S["sl"], S["o"]
    o.clear()
    c = Client(sl.port, timeout=10)
    t0 = time.monotonic()
    c.send(b"GET " + o.url("/slow").encode() + b" HTTP/1.1\r\nHost: x\r\n")
    r = c.read_response(timeout=8)
    dt = time.monotonic() - t0
    r.client = c
    expect_error_page(r, (408,))
    expect(1.5 <= dt <= 6, "408 after %.1fs (client_header = 2)" % dt)
    expect_eq(o.received(), b"", "origin received")


T.append(("F13 client_header: incomplete head -> 408 + close", header_timeout))


def slowloris():
    sl, o = S["sl"], S["o"]
    c = Client(sl.port, timeout=10)
    head = b"GET " + o.url("/loris").encode() + b" HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 200
    t0 = time.monotonic()
    result = {}

    def other():
        time.sleep(0.5)
        t = time.monotonic()
        result["r"] = get(sl.port, o.url("/other"))
        result["t"] = time.monotonic() - t
    th = threading.Thread(target=other)
    th.start()
    closed = False
    for i in range(len(head)):
        try:
            c.send(head[i:i + 1])
        except OSError:
            closed = True
            break
        if c.wait_closed(0.25):
            closed = True
            break
        if time.monotonic() - t0 > 8:
            break
    dt = time.monotonic() - t0
    th.join(10)
    expect(closed or c.eof, "trickling client not cut off after %.1fs" % dt)
    expect(dt < 6, "cut off only after %.1fs" % dt)
    expect(b"408" in c.all.split(b"\r\n", 1)[0] or c.all == b"", "answer %r" % c.all[:80])
    expect(result.get("r") is not None and result["r"].status == 200, "concurrent client failed")
    expect(result["t"] < 1.5, "concurrent client took %.2fs" % result["t"])


T.append(("#40 slowloris trickle cut off by the header deadline, others served", slowloris))


def pause_desync():
    sl, o = S["sl"], S["o"]
    o.clear()
    c = Client(sl.port, timeout=15)
    c.send(build("POST", o.url("/pause"), [("Content-Length", "2")]) + b"a")
    t0 = time.monotonic()
    r = c.read_response(method="POST", timeout=10)   # a 408/400 or just a close
    dt = time.monotonic() - t0
    expect(dt < 9, "nothing happened for %.1fs after the pause" % dt)
    late = b"b" + build("GET", o.url("/late"))
    try:
        c.send(late)
        r2 = c.read_response(timeout=3)
        expect(r2.status is None, "late bytes answered as a request: %r" % r2)
    except OSError:
        pass
    expect(c.eof or c.wait_closed(3), "connection left open after the body timeout")
    o.wait_requests(10, 0.1)
    expect(not any(q.target == "/late" for q in o.requests), "late request reached the origin", o.summary())
    expect(not any(q.target == "/pause" for q in o.requests), "incomplete body forwarded as complete",
           o.summary())
    still_serving(sl, o)


T.append(("#18 pause mid-body: connection closed, late bytes never a request", pause_desync))


def upstream_timeout():
    def h(conn):
        conn.read_request()
        conn.wait_eof(30)
    o = new_origin(h)
    t0 = time.monotonic()
    r = get(S["sl"].port, o.url("/never"), timeout=15)
    dt = time.monotonic() - t0
    expect_eq(r.status, 504, "status", r)
    expect(1.5 <= dt <= 7, "504 after %.1fs (upstream = 2)" % dt)
    expect((r.header("Content-Type") or "").startswith("text/html"), "page", r)


T.append(("F10 origin sends no head within timeouts.upstream -> 504", upstream_timeout))


def keepalive_timeout():
    sl, o = S["sl"], S["o"]
    c = Client(sl.port)
    c.send(build("GET", o.url("/ka")))
    expect_eq(c.read_response().status, 200, "status")
    t0 = time.monotonic()
    expect(c.wait_closed(8), "idle keep-alive connection never closed")
    dt = time.monotonic() - t0
    expect(1.5 <= dt <= 6, "closed after %.1fs (keepalive = 2)" % dt)


T.append(("idle keep-alive connection closed after timeouts.keepalive", keepalive_timeout))


def setup():
    S["o"] = new_origin()
    S["sl"] = Sluice({"timeouts": {"client_header": 2, "keepalive": 2, "upstream": 2, "idle": 2,
                                   "connect": 2}})


main(T, setup=setup)
