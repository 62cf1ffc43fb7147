#!/usr/bin/env python3
"""
t_cache_ops.py - the cache against HOSTILE.md: F2 (a worker hangs), F20
(the wall clock jumps), case 50 (odd response heads: huge heads come back
byte-identical, broken dates mean expired, Vary: * and a Vary of 1000
names are not stored, a 206 is never stored) and the cache-poisoning
property (unkeyed inputs, Host confusion, HEAD, GET with a body).

Every case counts the origin's requests: a hit must not reach it, a
response that must not be stored must reach it every time.
"""
import os
import signal
import threading
import time
from harness import *
from origin import *

S = {}
FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def setup():
    S["sl"] = Sluice(workers=2)


def counting(fn):
    """An origin answering fn(req, n) where n counts its requests."""
    box = {"n": 0}

    def h(req, conn):
        box["n"] += 1
        return fn(req, box["n"])
    o = new_origin(serve(h))
    o.count = lambda: box["n"]
    return o


def twice(o, path, headers=(), sl=None):
    sl = sl or S["sl"]
    a = get(sl.port, o.url(path), headers=headers)
    b = get(sl.port, o.url(path), headers=headers)
    return a, b


def fresh(body=b"x", extra=()):
    return lambda req, n: response(200, body + (b"%d" % n),
                                   headers=[("Cache-Control", "max-age=600")] + list(extra))


# ---- HOSTILE #50: odd response heads ------------------------------------------

@case("#50 a stored head of 56 KiB (80 fields of 700 bytes) comes back byte-identical on a hit")
def _():
    fields = [("X-F%03d" % i, "v" * 700 + "%03d" % i) for i in range(80)]
    o = counting(lambda req, n: response(200, b"big-head", headers=[("Cache-Control", "max-age=600")] + fields))
    a, b = twice(o, "/bighead")
    expect_eq((a.status, b.status), (200, 200), "status", a, b)
    expect_eq(o.count(), 1, "origin requests (the second must be a hit)")
    strip = {"age", "cache-status", "x-cache"}
    ha = [h for h in a.headers if h[0].lower() not in strip]
    hb = [h for h in b.headers if h[0].lower() not in strip]
    expect_eq(hb, ha, "header fields of the hit")
    expect_eq(b.body, b"big-head", "body")


@case("#50 broken Expires / Date: treated as already expired, never fresher")
def _():
    for i, (name, value) in enumerate([("Expires", "Thu, 01 Ja"), ("Expires", "-1"),
                                       ("Expires", "Thu, 01 Jan 10000 00:00:00 GMT"),
                                       ("Date", "-1")]):
        o = counting(lambda req, n, name=name, value=value:
                     response(200, b"d%d" % n, headers=[(name, value)]))
        a, b = twice(o, "/date%d" % i)
        expect_eq((a.status, b.status), (200, 200), "status", a, b)
        expect_eq(o.count(), 2, "origin requests for %s: %s" % (name, value))


@case("#50 Vary: * and a Vary of 1000 names are not stored; Vary: Other is")
def _():
    o = counting(lambda req, n: response(200, b"v%d" % n, headers=[("Cache-Control", "max-age=600"),
                                                                     ("Vary", "*")]))
    twice(o, "/vstar")
    expect_eq(o.count(), 2, "origin requests for Vary: *")
    names = ", ".join("X-N%d" % i for i in range(1000))
    o = counting(lambda req, n: response(200, b"v%d" % n, headers=[("Cache-Control", "max-age=600"),
                                                                     ("Vary", names)]))
    a, b = twice(o, "/v1000")
    expect_eq((a.status, b.status), (200, 200), "status")
    expect_eq(o.count(), 2, "origin requests for a 1000-name Vary")
    o = counting(lambda req, n: response(200, b"v%d" % n, headers=[("Cache-Control", "max-age=600"),
                                                                     ("Vary", "Other")]))
    a, b = twice(o, "/vother")
    expect_eq(o.count(), 1, "origin requests for Vary: Other")
    expect_eq(b.body, b"v1", "body of the hit")


@case("#50 206 and a bad Content-Range from the origin are passed on, never stored")
def _():
    for i, cr in enumerate(["bytes 0-3/10", "bytes 5-1/10", "bytes 0-99/50", None]):
        hdrs = [("Cache-Control", "max-age=600")]
        if cr:
            hdrs.append(("Content-Range", cr))
        o = counting(lambda req, n, hdrs=hdrs: response(206, b"part", headers=hdrs,
                                                          reason="Partial Content"))
        a, b = twice(o, "/p%d" % i)
        expect_eq((a.status, b.status), (206, 206), "status", a)
        expect_eq(o.count(), 2, "origin requests (206 %r)" % cr)


# ---- cache poisoning -----------------------------------------------------------

@case("poisoning: a forged Host never changes the entry used (#29)")
def _():
    o = counting(lambda req, n: response(200, ("for " + req.header("Host")).encode(),
                                           headers=[("Cache-Control", "max-age=600")]))
    a = get(S["sl"].port, o.url("/host"), headers=[("Host", "evil.test")])
    b = get(S["sl"].port, o.url("/host"))
    want = ("for 127.0.0.1:%d" % o.port).encode()
    expect_eq(a.body, want, "first body (Host rebuilt from the URL)")
    expect_eq(b.body, want, "hit body")
    expect_eq(o.count(), 1, "origin requests")


@case("poisoning: unkeyed fields (X-Forwarded-Host, garbage Accept-Encoding) do not split or bypass")
def _():
    o = counting(lambda req, n: response(200, b"same%d" % n, headers=[("Cache-Control", "max-age=600")]))
    get(S["sl"].port, o.url("/unkeyed"))
    for h in [("X-Forwarded-Host", "evil.test"), ("Accept-Encoding", "garbage;;q=x,,, ;q="),
              ("Accept-Encoding", "gzip, br"), ("Cookie", "a=1")]:
        r = get(S["sl"].port, o.url("/unkeyed"), headers=[h])
        expect_eq(r.body, b"same1", "body with %s" % (h,))
        expect_eq(r.header("X-Cache", "").split()[0], "HIT", "X-Cache with %s" % (h,))
    expect_eq(o.count(), 1, "origin requests")


@case("poisoning: a HEAD miss stores nothing; a GET with a body is neither served nor stored")
def _():
    o = counting(lambda req, n: response(200, b"g%d" % n, headers=[("Cache-Control", "max-age=600")]))
    r = get(S["sl"].port, o.url("/head-first"), method="HEAD")
    expect_eq(r.status, 200, "HEAD status")
    r = get(S["sl"].port, o.url("/head-first"))
    expect_eq(r.body, b"g2", "GET after HEAD goes to the origin")
    r = get(S["sl"].port, o.url("/head-first"), body=b"payload")
    expect_eq(r.body, b"g3", "a GET with a body reaches the origin")
    r = get(S["sl"].port, o.url("/head-first"))
    expect_eq(r.body, b"g2", "the stored GET is still the first one")
    expect_eq(o.count(), 3, "origin requests")


@case("poisoning: Authorization is not stored unless public; responses stay per request")
def _():
    o = counting(lambda req, n: response(200, ("u=%s n=%d" % (req.header("Authorization"), n)).encode(),
                                           headers=[("Cache-Control", "max-age=600")]))
    a = get(S["sl"].port, o.url("/auth"), headers=[("Authorization", "Basic YTpi")])
    b = get(S["sl"].port, o.url("/auth"))
    expect(b"YTpi" not in b.body, "another user's response served from the cache", b)
    expect_eq(o.count(), 2, "origin requests")


# ---- F20: the wall clock jumps ------------------------------------------------

def set_clock(stamp_file, offset):
    """Move the fake clock: write the offset atomically (rename), so
    libfaketime never reads a half-written file."""
    tmp = stamp_file + ".new"
    with open(tmp, "w") as f:
        f.write(offset + "\n")
    os.rename(tmp, stamp_file)


def faketime_sluice(stamp_file):
    sl = Sluice(workers=1, start=False)
    env = dict(os.environ)
    env.update({"LD_PRELOAD": FAKETIME, "FAKETIME_TIMESTAMP_FILE": stamp_file,
                "FAKETIME_NO_CACHE": "1", "DONT_FAKE_MONOTONIC": "1",
                "ASAN_OPTIONS": (env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":")})
    sl.env = env
    sl.start()
    return sl


@case("F20 the clock jumps a day forward and back: stale means revalidate, Age never negative")
def _():
    if not os.path.exists(FAKETIME):
        raise Skip("libfaketime is not installed")
    stamp = os.path.join(tempdir(), "faketime")
    set_clock(stamp, "+0")
    o = counting(lambda req, n: (response(304, b"", headers=[("ETag", '"e1"'), ("Cache-Control", "max-age=600")], cl=False)
                                   if req.header("If-None-Match") == '"e1"' else
                                   response(200, b"clock", headers=[("ETag", '"e1"'), ("Cache-Control", "max-age=600")])))
    sl = faketime_sluice(stamp)
    try:
        a, b = twice(o, "/clock", sl=sl)
        expect_eq(o.count(), 1, "origin requests before the jump")
        set_clock(stamp, "+1d")
        # libfaketime may take a moment to see the new offset: ask until
        # the entry is seen stale (and revalidated), at most a few times
        for _ in range(10):
            r = get(sl.port, o.url("/clock"))
            expect_eq((r.status, r.body), (200, b"clock"), "after +1 day", r)
            if o.count() == 2:
                break
            time.sleep(0.3)
        expect_eq(o.count(), 2, "origin requests after +1 day (a revalidation)")
        expect_eq(o.requests[-1].header("If-None-Match"), '"e1"', "conditional sent")
        set_clock(stamp, "-1d")
        r = get(sl.port, o.url("/clock"))
        expect_eq((r.status, r.body), (200, b"clock"), "after -1 day", r)
        age = int(r.header("Age", "-1"))
        expect(0 <= age <= 600, "Age %d after the clock went back" % age, r)
    finally:
        sl.stop()


# ---- F2: a worker hangs --------------------------------------------------------

@case("F2 a stopped worker is killed by the watchdog and replaced; the other keeps serving hits")
def _():
    sl = Sluice(workers=2)
    o = counting(fresh(b"wd"))
    get(sl.port, o.url("/wd"))
    expect(sl.wait_workers(2), "workers", sl.diag())
    victim = sl.worker_pids()[0]
    os.kill(victim, signal.SIGSTOP)
    t0 = time.monotonic()
    # connections the stopped worker accepted before it stopped are lost;
    # new ones must keep being served by the other worker meanwhile
    ok = 0
    while time.monotonic() - t0 < 3:
        r = get(sl.port, o.url("/wd"), timeout=2)
        ok += r.status == 200
    expect(ok > 0, "no hit served while a worker was stopped")
    gone = poll(lambda: victim not in sl.worker_pids(), timeout=20)
    expect(gone, "the stopped worker was not killed within 20 s", sl.diag())
    expect(sl.wait_workers(2), "the worker was not replaced", sl.diag())
    expect("has not run for" in sl.stderr_text(), "no watchdog log line", sl.diag())
    r = get(sl.port, o.url("/wd"))
    expect_eq((r.status, r.body), (200, b"wd1"), "hit after the kill")
    expect_eq(o.count(), 1, "origin requests")
    sl.stop()


# ---- the cache across reloads, stale-while-revalidate, slow leaders ----------

@case("the cache survives a HUP reload: a hit after the new generation started")
def _():
    sl = Sluice(workers=2)
    o = counting(fresh(b"hup"))
    a = get(sl.port, o.url("/hup"))
    old = set(sl.worker_pids())
    sl.reload()
    expect(poll(lambda: not (set(sl.worker_pids()) & old) and
                len(sl.worker_pids()) == 2, timeout=20), "no new generation", sl.diag())
    b = get(sl.port, o.url("/hup"))
    expect_eq((a.body, b.body), (b"hup1", b"hup1"), "bodies")
    expect_eq(b.header("X-Cache", "").split()[0], "HIT", "X-Cache after the reload", b)
    expect_eq(o.count(), 1, "origin requests")
    sl.stop()


@case("stale-while-revalidate: stale served at once, one background revalidation, then fresh")
def _():
    def h(req, n):
        hdrs = [("Cache-Control", "max-age=1, stale-while-revalidate=60"), ("ETag", '"s1"')]
        if req.header("If-None-Match") == '"s1"':
            time.sleep(0.5)       # a slow revalidation must not delay the client
            return response(304, b"", headers=[("Cache-Control", "max-age=600"),
                                                ("ETag", '"s1"')], cl=False)
        return response(200, b"swr-body", headers=hdrs)
    o = counting(h)
    get(S["sl"].port, o.url("/swr"))
    time.sleep(1.2)              # let max-age=1 run out
    t0 = time.monotonic()
    rs = [get(S["sl"].port, o.url("/swr")) for _ in range(3)]
    took = time.monotonic() - t0
    for r in rs:
        expect_eq((r.status, r.body), (200, b"swr-body"), "stale body", r)
    expect("stale-while-revalidate" in rs[0].header("Cache-Status", ""),
           "first stale answer not marked", rs[0])
    expect(took < 0.45, "stale answers waited for the revalidation (%.2fs)" % took)
    expect(o.wait_requests(2, timeout=5), "no background revalidation", o.summary())
    time.sleep(0.3)
    expect_eq(o.count(), 2, "origin requests (exactly one revalidation)")
    expect_eq(o.requests[1].header("If-None-Match"), '"s1"', "conditional")
    r = poll(lambda: "hit; ttl" in get(S["sl"].port, o.url("/swr")).header("Cache-Status", ""),
             timeout=5)
    expect(r, "the entry was not freshened by the background 304")
    expect_eq(o.count(), 2, "origin requests after freshening")


@case("a leader that reads nothing does not slow the fill: a follower gets 8 MiB at once")
def _():
    body = os.urandom(1 << 20) * 8
    gate = threading.Event()

    def h(conn):
        req = conn.read_request()
        if req is None:
            return
        gate.set()
        conn.send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        conn.sock.sendall(body)
    o = new_origin(h)
    leader = Client(S["sl"].port, timeout=30)
    leader.send(build("GET", o.url("/slowleader")))
    expect(gate.wait(5), "the origin got no request")
    t0 = time.monotonic()
    r = get(S["sl"].port, o.url("/slowleader"), timeout=30)
    took = time.monotonic() - t0
    expect_eq(r.status, 200, "follower status", r)
    expect(r.body == body, "follower body differs (%d bytes)" % len(r.body))
    expect(took < 10, "the follower took %.1fs" % took)
    expect_eq(o.nreq, 1, "origin requests")
    r2 = leader.read_response(timeout=30)
    expect(r2.body == body, "leader body differs")
    leader.close()


@case("F2 a worker stopped while it holds a cache lock: the others pass through, the watchdog kills it")
def _():
    # the 3rd reference taken in each worker stops it inside the stripe lock
    if not has_faults():
        raise Skip("built without --enable-fault-injection")
    sl = Sluice(workers=2, start=False)
    env = dict(os.environ)
    env["SLUICE_FAULTS"] = "cache_stop_ref:3"
    sl.env = env
    sl.start()
    o = counting(fresh(b"lk"))
    get(sl.port, o.url("/lock"))          # stored
    t0 = time.monotonic()
    stopped = []
    statuses = []
    slow = 0.0
    while time.monotonic() - t0 < 14:
        t1 = time.monotonic()
        r = get(sl.port, o.url("/lock"), timeout=3)
        took = time.monotonic() - t1
        statuses.append(r.status)
        if r.status == 200:
            expect_eq(r.body, b"lk1" if "HIT" in r.header("X-Cache", "") else r.body, "body")
            slow = max(slow, took)
        for p in sl.worker_pids():
            try:
                with open("/proc/%d/stat" % p) as f:
                    if f.read().split(")")[1].split()[0] == "T" and p not in stopped:
                        stopped.append(p)
            except OSError:
                pass
        if stopped and "has not run for" in sl.stderr_text():
            break
    expect(stopped, "no worker stopped at the fault point", sl.diag())
    expect("has not run for" in sl.stderr_text(), "the watchdog did not act", sl.diag())
    expect(poll(lambda: not set(stopped) & set(sl.worker_pids()), timeout=15),
           "the stopped worker is still there", sl.diag())
    expect(sl.wait_workers(2), "workers not replaced", sl.diag())
    ok = sum(1 for st in statuses if st == 200)
    expect(ok >= len(statuses) // 2, "too few answers while a lock was held: %r" % statuses)
    sl.stop()


@case("a 304 replaces the stored fields it carries (RFC 9111 4.3.4); the body stays; Content-Length is never taken from it")
def _():
    def h(req, n):
        if req.header("If-None-Match") == '"r1"':
            return response(304, b"", cl=False, headers=[
                ("Cache-Control", "max-age=600"), ("ETag", '"r1"'),
                ("X-Version", "two"), ("X-Added", "yes"), ("Content-Length", "3")])
        return response(200, b"the stored body", headers=[
            ("Cache-Control", "max-age=1"), ("ETag", '"r1"'),
            ("X-Version", "one"), ("X-Kept", "kept")])
    o = counting(h)
    a = get(S["sl"].port, o.url("/merge"))
    expect_eq(a.header("X-Version"), "one", "first X-Version")
    time.sleep(1.2)
    b = get(S["sl"].port, o.url("/merge"))
    expect_eq(o.count(), 2, "origin requests (one revalidation)")
    expect_eq(b.body, b"the stored body", "body after the 304", b)
    expect_eq(b.header("X-Version"), "two", "X-Version replaced by the 304", b)
    expect_eq(b.header("X-Added"), "yes", "field added by the 304", b)
    expect_eq(b.header("X-Kept"), "kept", "field the 304 did not carry", b)
    expect_eq(b.header("Cache-Control"), "max-age=600", "Cache-Control from the 304", b)
    expect_eq(b.header_all("Content-Length"), ["15"], "Content-Length", b)
    c = get(S["sl"].port, o.url("/merge"))
    expect_eq(c.header("X-Cache", "").split()[0], "HIT", "fresh after the 304", c)
    expect_eq((c.body, c.header("X-Version")), (b"the stored body", "two"), "the hit", c)
    expect_eq(o.count(), 2, "origin requests")


if __name__ == "__main__":
    main(setup=setup)
