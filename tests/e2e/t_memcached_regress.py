#!/usr/bin/env python3
"""
t_memcached_regress.py - regressions of the memcached tier found by
review: each case failed on the first wired-in version.

What it checks: purges and replacements stay gone across a farm (a
delete never overtaken by a slow set; a no-store refresh and a Vary
change delete the memcached copy; a purge goes to another server's log
while its own is down, and waits while all are; a burst of log records read at full speed; a node that
spills a purged object before it read the purge does not bring it back),
and a worker's memory for chunked lookups is bounded.

What it assumes: the helpers of t_memcached.py (imported without its
cases); memcached at /usr/bin/memcached.

Why this way: each case is the reviewer's reproduction, kept as data.
"""
import sys
import threading
import time

import harness
from harness import *
from origin import *

_n0 = len(harness._registry)
import t_memcached as T        # helpers; its own cases are not run here
del harness._registry[_n0:]
import socket

import fakemc


class Throttle:
    """A TCP proxy in front of memcached whose client->server direction
    runs at `bps` bytes/s (a busy link): a 900 KB set takes a while, a
    small delete on another connection does not."""

    def __init__(self, target_port, bps):
        self.target, self.bps = target_port, bps
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def addr(self):
        return "127.0.0.1:%d" % self.port

    def _pipe(self, a, b, slow):
        try:
            while True:
                d = a.recv(16384)
                if not d:
                    break
                b.sendall(d)
                if slow:
                    time.sleep(len(d) / self.bps)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _accept(self):
        while True:
            c, _ = self.ls.accept()
            s = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(c, s, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(s, c, False), daemon=True).start()


def versioned_origin(objs, cc="max-age=3600"):
    """objs[path] = (body, cache-control) or body; changeable while running."""
    def fn(req, c):
        path = req.target.split("://", 1)[-1]
        path = path[path.find("/"):]
        v = objs.get(path)
        if v is None:
            return response(404, b"no", [("Cache-Control", "no-store")])
        body, hdrs = (v, [("Cache-Control", cc)]) if isinstance(v, bytes) else v
        return response(200, body, hdrs)
    return new_origin(serve(fn))


@case("r1 PURGE while a large set is still on a slow link: the delete lands last, never the set")
def _():
    T.need()
    m = T.Memcached()
    thr = Throttle(m.port, 2 * 1024 * 1024)       # 2 MB/s towards memcached
    conf = {"memcached": {"timeout_ms": 2000}}
    a = T.node([thr], workers=1, extra=conf)
    b = T.node([thr], workers=1, extra=conf)
    v1 = T.blob(900 * 1024, 1)
    objs = {"/x": v1}
    o = versioned_origin(objs)
    u = o.url("/x")
    T.expect_body(T.fetch(a, u), v1, "A fills v1")
    objs["/x"] = b"version two"
    r = T.fetch(a, u, method="PURGE")          # while the set is on the wire
    expect_eq(r.status, 200, "PURGE", r)
    T.wait_counter(a, "memcached_stores", 1, timeout=10)
    time.sleep(2.5)                             # purge log applied everywhere
    r = T.fetch(b, u)
    expect(r.body == b"version two",
           "B after the PURGE got %d bytes (v1 resurrected), Cache-Status %r" %
           (len(r.body), r.header("Cache-Status")))


@case("r2 a no-cache reload answered no-store: the replaced object does not come back from memcached")
def _():
    T.need()
    m = T.Memcached()
    a = T.node([m], workers=1)
    objs = {"/r": b"old secret v1"}
    o = versioned_origin(objs)
    u = o.url("/r")
    T.expect_body(T.fetch(a, u), b"old secret v1", "fill")
    T.wait_counter(a, "memcached_stores", 1)
    objs["/r"] = (b"new v2", [("Cache-Control", "no-store")])
    r = T.fetch(a, u, headers=[("Cache-Control", "no-cache")])
    T.expect_body(r, b"new v2", "reload")
    r = T.fetch(a, u)
    expect(r.body == b"new v2", "next GET served %r (Cache-Status %r): the replaced "
           "object came back" % (r.body, r.header("Cache-Status")))


@case("r3 a Vary change: the old marker in memcached goes too, the new variants are cached")
def _():
    T.need()
    m = T.Memcached()
    a = T.node([m], workers=1)
    state = {"vary": "Accept-Encoding"}

    def fn(req, c):
        return response(200, b"body " + (req.header("Accept-Encoding") or "-").encode(),
                        [("Cache-Control", "max-age=3600"), ("Vary", state["vary"])])
    o = new_origin(serve(fn))
    u = o.url("/v")
    T.fetch(a, u, headers=[("Accept-Encoding", "gzip")])
    T.wait_counter(a, "memcached_stores", 2)
    state["vary"] = "Accept-Language"
    for i in range(6):
        T.fetch(a, u, headers=[("Accept-Encoding", "e%d" % i), ("Accept-Language", "en")])
    n = o.nreq
    for i in range(4):
        T.fetch(a, u, headers=[("Accept-Encoding", "e%d" % i), ("Accept-Language", "en")])
    expect_eq(o.nreq, n, "origin requests for a now-cacheable Vary: Accept-Language "
              "object (every one goes to the origin)")


@case("r4 a purge log per server: with the server of a key's log down, the purge goes to the "
      "other server's log and reaches the other node while the first is still down")
def _():
    T.need()
    m1, m2 = T.Memcached(), T.Memcached()
    a, b = T.node([m1, m2]), T.node([m1, m2])
    objs = {"/q": b"v1"}
    o = versioned_origin(objs)
    u = o.url("/q")
    # a first purge of /q creates the counter of /q's log: find its server
    T.fetch(a, u, method="PURGE")
    seq = T.mckey("P seq")
    ok = poll(lambda: m1.get(seq) is not None or m2.get(seq) is not None, timeout=5)
    expect(ok, "no counter")
    expect(not (m1.get(seq) is not None and m2.get(seq) is not None),
           "one purge made counters on both servers")
    holder, other = (m1, m2) if m1.get(seq) is not None else (m2, m1)
    T.expect_body(T.fetch(a, u), b"v1", "A")
    T.expect_body(T.fetch(b, u), b"v1", "B")
    T.expect_body(T.fetch(b, u), b"v1", "B shm")
    holder.kill()
    objs["/q"] = b"v2"
    t0 = time.monotonic()
    r = T.fetch(a, u, method="PURGE")
    expect_eq(r.status, 200, "PURGE via A", r)
    ok = poll(lambda: T.fetch(b, u).body == b"v2", timeout=8, interval=0.3)
    dt = time.monotonic() - t0
    print("# purge reached B in %.1f s with the key's log server down" % dt)
    expect(ok, "B still serves the purged v1 8 s after the PURGE (one server of two down)")
    expect(other.get(seq) is not None, "the other server holds no counter")
    # both back: a purge is logged and applied again
    holder.start()
    expect(poll(lambda: T.servers_up(a) == 2 and T.servers_up(b) == 2, timeout=10),
           "servers_up did not return to 2")
    objs["/q"] = b"v3"
    T.expect_body(T.fetch(b, u), b"v2", "B still v2 before the next purge")
    # (the farm purge is logged whether A's shm held the URL or not)
    expect_in(T.fetch(a, u, method="PURGE").status, (200, 404), "second PURGE")
    ok = poll(lambda: T.fetch(b, u).body == b"v3", timeout=8, interval=0.3)
    expect(ok, "the second purge did not reach B")


@case("r4b every memcached down: a purge waits, and is logged and applied once one is back")
def _():
    T.need()
    m1, m2 = T.Memcached(), T.Memcached()
    a, b = T.node([m1, m2]), T.node([m1, m2])
    objs = {"/w": b"v1", "/dummy": b"d"}
    o = versioned_origin(objs)
    u = o.url("/w")
    T.fetch(a, o.url("/dummy"), method="PURGE")	# counters exist, B synced
    time.sleep(1.5)
    T.expect_body(T.fetch(a, u), b"v1", "A")
    T.expect_body(T.fetch(b, u), b"v1", "B")
    m1.kill()
    m2.kill()
    objs["/w"] = b"v2"
    expect_eq(T.fetch(a, u, method="PURGE").status, 200, "PURGE via A")
    time.sleep(2.5)
    T.expect_body(T.fetch(b, u), b"v1", "B keeps v1 while no server is up (no channel)")
    m1.start()
    m2.start()
    ok = poll(lambda: T.fetch(b, u).body == b"v2", timeout=10, interval=0.5)
    expect(ok, "B still serves the purged v1 10 s after the servers came back")


@case("r5 after a burst of 1500 POSTs (log records) a PURGE still reaches another node in seconds")
def _():
    T.need()
    m = T.Memcached()
    a, b = T.node([m], workers=1), T.node([m], workers=1)

    def fn(req, c):
        if req.method == "POST":
            return response(200, b"ok", [("Cache-Control", "no-store")])
        return response(200, b"v%d" % state["v"], [("Cache-Control", "max-age=3600")])
    state = {"v": 1}
    o = new_origin(serve(fn))
    u = o.url("/item")
    T.fetch(a, u)
    T.fetch(b, u)
    expect_eq(T.fetch(b, u).body, b"v1", "B cached")
    # 1500 POSTs to other URLs (an ordinary write-heavy API)
    c = Client(a.port)
    for i in range(1500):
        c.send(build("POST", o.url("/api/%d" % i), body=b"x"))
        c.read_response(method="POST")
    state["v"] = 2
    t0 = time.monotonic()
    T.fetch(a, u, method="PURGE")
    ok = poll(lambda: T.fetch(b, u).body == b"v2", timeout=30, interval=0.5)
    dt = time.monotonic() - t0
    print("# purge seen by B after %.1f s" % dt)
    expect(ok and dt < 3, "purge reached B after %.1f s (ok=%r)" % (dt, ok))


@case("r6 spill farm: a node that spills a purged object before it read the purge does not bring it back")
def _():
    T.need()
    m = T.Memcached(mem_mb=256)
    a = T.node([m], mode="spill", size="4M", max_object="512K", workers=1)
    b = T.node([m], mode="spill", size="4M", max_object="512K", workers=1)
    objs = {"/f%d" % i: T.blob(256 * 1024, 300 + i) for i in range(40)}
    hits = 0
    tries = 4
    for t in range(tries):
        x = "/x%d" % t
        objs[x] = b"X v1 " + T.blob(1000, t)
        o = versioned_origin(objs)
        ux = o.url(x)
        T.fetch(a, ux)
        T.fetch(b, ux)
        objs[x] = b"X v2"
        T.fetch(a, ux, method="PURGE")
        for i in range(20):                      # B needs room: X goes
            T.fetch(b, o.url("/f%d" % i))
        time.sleep(2.5)                          # every node read the purge log
        r = T.fetch(a, ux)
        if r.body != b"X v2":
            hits += 1
            print("# try %d: A serves purged v1 (%s)" % (t, r.header("Cache-Status")))
    expect(hits == 0, "%d/%d tries: the purged object came back via B's spill" % (hits, tries))


def hwm(pid):
    for ln in open("/proc/%d/status" % pid):
        if ln.startswith("VmHWM"):
            return int(ln.split()[1]) // 1024


@case("r8 24 concurrent misses on 12 MiB objects in memcached: the worker's peak memory is bounded")
def _():
    T.need()
    m = T.Memcached(mem_mb=512)
    big = {"memcached": {"max_object_size": "16M", "timeout_ms": 3000}}
    a = T.node([m], size="256M", max_object="16M", workers=1, extra=big)
    b = T.node([m], size="32M", max_object="16M", workers=1, extra=big, no_quarantine=True)
    objs = {"/b%d" % i: T.blob(12 << 20, i) for i in range(24)}
    o = versioned_origin(objs)
    for p in objs:
        T.fetch(a, o.url(p))
    T.wait_counter(a, "memcached_stores", 24, timeout=60)
    w = b.worker_pids()[0]
    h0 = hwm(w)
    res = {}

    def one(p):
        r = T.fetch(b, o.url(p), timeout=60)
        res[p] = r.status == 200 and r.body == objs[p]
    ths = [threading.Thread(target=one, args=(p,)) for p in objs]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    h1 = hwm(w)
    print("# worker VmHWM %d MiB -> %d MiB (shm 32 MiB, lookup budget 64 MiB)" % (h0, h1))
    expect(all(res.values()) and len(res) == 24, "bodies: %r" % res)
    # 288 MiB of bodies asked for at once; the lookup budget holds 64 MiB
    # of them in memory (the rest go to the origin), and shm is 32 MiB
    expect(h1 - h0 < 140, "worker peak grew by %d MiB" % (h1 - h0))


# ---------------------------------------------------------------------------
# the second review: big objects shared in memory, and the purge logs

for _down in (False, True):
    @case("r9 a PURGE through one worker: another worker of the node that shares the big "
          "object in memory stops serving it (memcached %s)" % ("down" if _down else "up"))
    def _(down=_down):
        T.need()
        m = T.Memcached(mem_mb=256)
        mx = {"memcached": {"max_object_size": "16M"}}
        a = T.node([m], size="32M", max_object="1M", extra=mx, workers=1)
        b = T.node([m], size="32M", max_object="1M", extra=mx, workers=2)
        v1 = T.blob(8 * 1024 * 1024, 1)
        objs = {"/o": v1}
        o = T.store_origin(objs)
        u = o.url("/o")
        T.expect_body(T.fetch(a, u), v1, "A fill")
        T.wait_counter(a, "memcached_stores", 1)
        slow = []
        for _i in range(8):                  # both workers hold a copy
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            s.connect(("127.0.0.1", b.port))
            s.sendall(build("GET", u))
            s.recv(1000)
            slow.append(s)
        if down:
            m.kill()
            expect(poll(lambda: T.servers_up(b) == 0, timeout=5), "servers_up did not drop")
        objs["/o"] = T.blob(8 * 1024 * 1024, 2)
        expect_in(T.fetch(b, u, method="PURGE").status, (200, 404), "PURGE")
        t0 = time.monotonic()
        old = n = 0
        while time.monotonic() - t0 < (4 if down else 0.8):
            n += 1
            old += T.fetch(b, u).body == v1
        for s in slow:
            s.close()
        print("# %d of %d GETs after the PURGE got the purged body" % (old, n))
        expect(old == 0, "%d/%d GETs on the purging node got the purged object" % (old, n))


@case("r10 a no-cache reload stores v2: a worker that shares v1 in memory serves v2 after it")
def _():
    T.need()
    m = T.Memcached(mem_mb=256)
    mx = {"memcached": {"max_object_size": "16M"}}
    b = T.node([m], size="32M", max_object="1M", extra=mx, workers=1)
    v1 = T.blob(6 * 1024 * 1024, 1)
    objs = {"/o": v1}
    o = T.store_origin(objs)
    u = o.url("/o")
    T.expect_body(T.fetch(b, u), v1, "fill")
    T.wait_counter(b, "memcached_stores", 1)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.connect(("127.0.0.1", b.port))
    s.sendall(build("GET", u))
    s.recv(1000)                      # the worker holds v1 for this slow client
    objs["/o"] = v2 = T.blob(6 * 1024 * 1024, 2)
    time.sleep(1.1)                   # (not in the second of a purge)
    T.expect_body(T.fetch(b, u, headers=[("Cache-Control", "no-cache")]), v2, "reload")
    T.wait_counter(b, "memcached_stores", 2)
    bad = sum(T.fetch(b, u).body == v1 for _i in range(5))
    s.close()
    expect(bad == 0, "the replaced v1 was served %d/5 times after v2 was stored" % bad)


def post_origin(state):
    def fn(req, c):
        if req.method == "POST":
            return response(200, b"ok", [("Cache-Control", "no-store")])
        return response(200, b"v%d" % state["v"], [("Cache-Control", "max-age=3600")])
    return new_origin(serve(fn))


for _restart in (False, True):
    @case("r11 a purge and 300 more records on a %s log all reach the other node" %
          ("restarted" if _restart else "new"))
    def _(restart=_restart):
        T.need()
        m = T.Memcached()
        a, b = T.node([m], workers=1), T.node([m], workers=1)
        state = {"v": 1}
        o = post_origin(state)
        u = o.url("/item")
        if restart:
            T.fetch(a, o.url("/warm"), method="PURGE")     # the log exists, B read it
            time.sleep(1.5)
        T.fetch(b, u)
        expect_eq(T.fetch(b, u).body, b"v1", "B cached v1")
        if restart:
            m.kill()
            m.start()
            expect(poll(lambda: T.servers_up(a) == 1 and T.servers_up(b) == 1, timeout=10),
                   "servers_up")
        time.sleep(1.5)
        state["v"] = 2
        expect_in(T.fetch(a, u, method="PURGE").status, (200, 404), "PURGE via A")

        def w(k):
            c = Client(a.port)
            for i in range(k, 300, 8):
                c.send(build("POST", o.url("/api/%d" % i), body=b"x"))
                c.read_response(method="POST")
        ths = [threading.Thread(target=w, args=(k,)) for k in range(8)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        ok = poll(lambda: T.fetch(b, u).body == b"v2", timeout=6, interval=0.3)
        expect(ok, "B still serves the purged v1 (purges applied: %d)" %
               T.totals(b)["memcached_purges"])


@case("r12 a purge record the server refuses (out of memory): the purge is logged on the "
      "other server and reaches the other node")
def _():
    T.need()
    f1, f2 = fakemc.FakeMC(), fakemc.FakeMC()
    on_exit(f1.stop)
    on_exit(f2.stop)
    a, b = T.node([f1, f2], workers=1), T.node([f1, f2], workers=1)
    state = {"v": 1}
    o = new_origin(serve(lambda req, c: response(200, b"v%d" % state["v"],
                                                   [("Cache-Control", "max-age=3600")])))
    u = o.url("/k")
    T.fetch(a, u, method="PURGE")                 # creates the counter of /k's log
    seq = T.mckey("P seq")
    expect(poll(lambda: f1.get(seq) or f2.get(seq), timeout=5), "no counter")
    h = f1 if f1.get(seq) else f2
    time.sleep(1.5)
    T.fetch(b, u)
    expect_eq(T.fetch(b, u).body, b"v1", "B cached")
    n = int(h.get(seq))
    h.rule(T.mckey("P %d" % (n + 1)), "enomem", ops=("set",))
    state["v"] = 2
    T.fetch(a, u, method="PURGE")
    ok = poll(lambda: T.fetch(b, u).body == b"v2", timeout=5, interval=0.3)
    expect(ok, "B serves the purged v1 5 s after the PURGE (the other server was up)")


@case("r13 purge records that cannot be read for 3 s (timeouts) are read later, not skipped")
def _():
    T.need()
    f = fakemc.FakeMC()
    on_exit(f.stop)
    a, b = T.node([f], workers=1), T.node([f], workers=1)
    state = {"v": 1}
    o = new_origin(serve(lambda req, c: response(200, b"v%d" % state["v"],
                                                   [("Cache-Control", "max-age=3600")])))
    u = o.url("/k")
    T.fetch(a, o.url("/warm"), method="PURGE")
    seq = T.mckey("P seq")
    expect(poll(lambda: f.get(seq), timeout=5), "no counter")
    time.sleep(1.5)
    T.fetch(b, u)
    expect_eq(T.fetch(b, u).body, b"v1", "B cached")
    n = int(f.get(seq))
    f.rule(T.mckey("P %d" % (n + 1)), "late", ops=("get",), delay=0.3)   # > timeout_ms
    state["v"] = 2
    T.fetch(a, u, method="PURGE")
    time.sleep(3.5)
    f.heal()
    ok = poll(lambda: T.fetch(b, u).body == b"v2", timeout=5, interval=0.3)
    expect(ok, "B still serves the purged v1 after the record could be read again")


@case("r14 a PURGE is answered once memcached deleted the item (no worker can read it after "
      "the answer), and within timeout_ms when memcached does not answer")
def _():
    T.need()
    f = fakemc.FakeMC()
    on_exit(f.stop)
    a = T.node([f], workers=2)
    o = T.store_origin({"/p": b"purge me"})
    u = o.url("/p")
    T.expect_body(T.fetch(a, u), b"purge me", "fill")
    T.wait_counter(a, "memcached_stores", 1)
    key = T.mckey(T.cache_key(u))
    expect(f.get(key) is not None, "the item is not in memcached")
    f.rule(key, "late", ops=("delete",), delay=0.06)
    t0 = time.monotonic()
    r = T.fetch(a, u, method="PURGE")
    dt = time.monotonic() - t0
    gone = f.get(key) is None
    expect_eq(r.status, 200, "PURGE", r)
    print("# PURGE answered after %.0f ms; item gone at the answer: %r" % (dt * 1000, gone))
    expect(gone and dt >= 0.05, "answered before the delete (%.0f ms, gone %r)" % (dt * 1000, gone))
    f.heal()
    time.sleep(1.1)		# a copy fetched in the purge's second is not stored
    T.expect_body(T.fetch(a, u), b"purge me", "refill")
    T.wait_counter(a, "memcached_stores", 2)
    f.rule(key, "stall", ops=("delete",))
    t0 = time.monotonic()
    r = T.fetch(a, u, method="PURGE")
    dt = time.monotonic() - t0
    f.heal()
    expect_eq(r.status, 200, "PURGE with a silent memcached", r)
    expect(dt < 0.5, "PURGE with a silent memcached took %.0f ms" % (dt * 1000))
    # held by memcached alone (another node fetched it): 200, not 404
    b = T.node([f], workers=1)
    o2 = T.store_origin({"/q": b"only in memcached"})
    u2 = o2.url("/q")
    T.expect_body(T.fetch(a, u2), b"only in memcached", "A")
    T.wait_counter(a, "memcached_stores", 3)
    expect_eq(T.fetch(b, u2, method="PURGE").status, 200, "PURGE via B of a memcached-only object")
    expect_eq(T.fetch(b, u2, method="PURGE").status, 404, "PURGE again: nowhere")


if __name__ == "__main__":
    main()
