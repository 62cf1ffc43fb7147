#!/usr/bin/env python3
"""
t_memcached.py - the memcached tier of sluice, end to end.

What it checks: with real memcached servers (started here on free
loopback ports) and real sluice instances: spill (objects evicted from a
small shm come back from memcached, not from the origin), a farm (two
sluice nodes in shared mode: what one fetched the other serves without
an origin request; a purge through one is seen by the other), chunked
objects (10 MiB byte-exact), poisoning (items planted straight into
memcached under sluice's key with a wrong HMAC, a wrong embedded key, a
truncated value, or not ours at all are never served), and faults
(memcached killed, restarted, all stopped, or accepting and never
answering: no request fails, none waits long).  Each case reads the
origin's request count, the bytes the client got and the memcached_*
counters of /stats.

What it assumes: /usr/bin/memcached (skips otherwise, and when sluice
was built --without-memcached); the harness picks ports; memcached runs
as nobody when the tests run as root.

Why this way: a cache tier bug hides behind a 200 (a stale body, another
URL's bytes, a forged item); so every case compares bytes and counts
what reached the origin.
"""
import hashlib
import hmac
import os
import random
import socket
import struct
import subprocess
import threading
import time
from harness import *
from origin import *

MEMCACHED = "/usr/bin/memcached"
SECRET = "e2e-secret-0123456789"
S = {}


# ---------------------------------------------------------------------------
# memcached servers and a tiny text-protocol client

class Memcached:
    def __init__(self, port=None, mem_mb=64):
        self.port = port or free_port()
        self.mem_mb = mem_mb
        self.p = None
        self.start()
        on_exit(self.kill)

    def start(self):
        args = [MEMCACHED, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0",
                "-m", str(self.mem_mb), "-c", "1024"]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]
        self.p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False
        expect(poll(up, timeout=5), "memcached did not start on %d" % self.port)

    def kill(self):
        if self.p and self.p.poll() is None:
            try:
                os.kill(self.p.pid, 18)   # SIGCONT, in case it was stopped
            except OSError:
                pass
            self.p.kill()
            self.p.wait()

    def stop(self):
        os.kill(self.p.pid, 19)          # SIGSTOP: accepts, never answers

    def cont(self):
        os.kill(self.p.pid, 18)

    def addr(self):
        return "127.0.0.1:%d" % self.port

    def cmd(self, data, until=b"\r\n"):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(data)
        buf = b""
        while not buf.endswith(until):
            d = s.recv(1 << 20)
            if not d:
                break
            buf += d
        s.close()
        return buf

    def set(self, key, value):
        return self.cmd(b"set %s 0 0 %d\r\n%s\r\n" % (key.encode(), len(value), value))

    def get(self, key):
        r = self.cmd(b"get %s\r\n" % key.encode(), until=b"END\r\n")
        if not r.startswith(b"VALUE "):
            return None
        head, rest = r.split(b"\r\n", 1)
        n = int(head.split()[3])
        return rest[:n]

    def stats(self):
        r = self.cmd(b"stats\r\n", until=b"END\r\n")
        out = {}
        for ln in r.decode().splitlines():
            p = ln.split()
            if len(p) == 3 and p[0] == "STAT":
                out[p[1]] = p[2]
        return out

    def flush(self):
        return self.cmd(b"flush_all\r\n")


def mckey(cache_key, secret=SECRET):
    return "sluice:" + hmac.new(secret.encode(), b"sluice key v1\n" + cache_key.encode(),
                                hashlib.sha256).hexdigest()


def cache_key(url):
    """The primary cache key of an http://127.0.0.1:PORT/path URL."""
    return "G " + url


def envelope(key, payload, kind=1, body_len=0, meta_len=0, secret=SECRET, count=0,
             chunk_size=0, nonce=b"\0" * 16):
    """An item in sluice's format (mc_item.h), sealed with secret."""
    k = key.encode()
    h = (b"SLMC" + bytes([1, kind]) + struct.pack(">H", 0) + struct.pack(">I", len(k)) +
         struct.pack(">Q", body_len) + struct.pack(">I", meta_len) + struct.pack(">I", count) +
         struct.pack(">I", chunk_size) + nonce + struct.pack(">I", len(payload)))
    b = h + k + payload
    return b + hmac.new(secret.encode(), b, hashlib.sha256).digest()


def meta(head, lifetime=3600, now=None):
    now = int(now or time.time())
    fixed = struct.pack(">IIII", 1, 0, len(head), 0) + struct.pack(
        ">qqqqqqqq", now, now, now, 0, lifetime, -1, -1, -1)
    return fixed + head


def item_object(url, body, head=None, secret=SECRET, key=None):
    head = head or b"HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nX-Planted: yes\r\n"
    m = meta(head)
    return envelope(key or cache_key(url), m + body, body_len=len(body), meta_len=len(m),
                    secret=secret)


# ---------------------------------------------------------------------------
# sluice instances and helpers

def tier_built():
    out = subprocess.run([SLUICE, "-V"], capture_output=True, text=True)
    return "memcached=yes" in out.stdout


def need():
    need_sluice()
    if not os.access(MEMCACHED, os.X_OK):
        raise Skip("no %s" % MEMCACHED)
    if not tier_built():
        raise Skip("sluice built --without-memcached")


def node(servers, mode="shared", size="32M", max_object="1M", timeout_ms=100, workers=2,
         extra=None, no_quarantine=False):
    """A sluice node on these memcached servers; no_quarantine: an ASan
    build keeps no freed memory back (for cases that measure memory)."""
    conf = {"cache": {"size": size, "max_object_size": max_object},
            "memcached": {"servers": [m.addr() for m in servers], "mode": mode,
                          "timeout_ms": timeout_ms, "secret": SECRET}}
    if extra:
        conf = merge(conf, extra)
    sl = admin_sluice(conf=conf, workers=workers, start=False)
    if no_quarantine:
        sl.env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "detect_leaks=1") +
                      ":quarantine_size_mb=0")
    sl.start()
    on_exit(sl.stop)
    return sl


def totals(sl):
    return admin_stats(sl)["totals"]


def servers_up(sl):
    return admin_stats(sl)["memcached"]["servers_up"]


def fetch(sl, url, headers=(), method="GET", timeout=20):
    return get(sl.port, url, headers=headers, method=method, timeout=timeout)


def blob(n, seed):
    return random.Random(seed).randbytes(n)


def store_origin(objs, cc="max-age=3600", etag=False):
    """An origin serving objs[path] = body with Cache-Control cc (and an
    ETag per body, for conditionals)."""
    def fn(req, c):
        path = req.target.split("://", 1)[-1]
        path = path[path.find("/"):]
        b = objs.get(path)
        if b is None:
            return response(404, b"no", [("Cache-Control", "no-store")])
        h = [("Cache-Control", cc), ("Content-Type", "application/x-test")]
        if etag:
            h.append(("ETag", '"%s"' % hashlib.sha1(b).hexdigest()[:16]))
        return response(200, b, h)
    return new_origin(serve(fn))


def wait_counter(sl, name, n, timeout=5):
    ok = poll(lambda: totals(sl).get(name, 0) >= n, timeout=timeout)
    expect(ok, "counter %s did not reach %d: %r" % (name, n, totals(sl).get(name)))


def expect_body(r, body, what):
    expect_eq(r.status, 200, what + " status", r)
    expect(r.body == body, "%s: body differs (%d bytes, want %d)" % (what, len(r.body), len(body)))


# ---------------------------------------------------------------------------
# cases

@case("shared farm: node B serves what node A fetched, no origin request; byte-exact")
def _():
    need()
    m1, m2 = Memcached(), Memcached()
    a, b = node([m1, m2]), node([m1, m2])
    objs = {"/f%d" % i: blob(1000 + 997 * i, i) for i in range(20)}
    o = store_origin(objs)
    for p, body in objs.items():
        expect_body(fetch(a, o.url(p)), body, "A " + p)
    expect_eq(o.nreq, 20, "origin requests after A")
    wait_counter(a, "memcached_stores", 20)
    for p, body in objs.items():
        r = fetch(b, o.url(p))
        expect_body(r, body, "B " + p)
        cs = r.header("Cache-Status") or ""
        expect("detail=memcached" in cs, "B %s: Cache-Status %r" % (p, cs), r)
    time.sleep(0.1)
    expect_eq(o.nreq, 20, "origin requests after B (none more)")
    t = totals(b)
    expect_eq(t["memcached_hits"], 20, "B memcached_hits")
    # both servers got some of the items (ketama over two)
    n1, n2 = int(m1.stats()["curr_items"]), int(m2.stats()["curr_items"])
    expect(n1 > 0 and n2 > 0 and n1 + n2 == 20, "items per server %d/%d" % (n1, n2))
    # promoted: B's next request is a plain shm hit
    r = fetch(b, o.url("/f3"))
    expect_body(r, objs["/f3"], "B again")
    expect("detail=memcached" not in (r.header("Cache-Status") or ""), "B again from shm", r)
    expect_eq(totals(b)["memcached_hits"], 20, "B memcached_hits after a shm hit")


@case("spill: a 4 MiB shm and 64 MiB of objects; evicted objects come back from memcached")
def _():
    need()
    m = Memcached(mem_mb=256)
    sl = node([m], mode="spill", size="4M", max_object="512K", workers=1)
    objs = {"/s%d" % i: blob(256 * 1024, 100 + i) for i in range(256)}
    o = store_origin(objs)
    for p, body in objs.items():
        expect_body(fetch(sl, o.url(p)), body, "fill " + p)
    expect_eq(o.nreq, 256, "origin requests for the fill")
    t = totals(sl)
    expect(t["memcached_spilled"] > 200, "spilled %d" % t["memcached_spilled"])
    wait_counter(sl, "memcached_stores", t["memcached_spilled"])
    # the first ones were evicted long ago: memcached has them
    for i in range(40):
        p = "/s%d" % i
        expect_body(fetch(sl, o.url(p)), objs[p], "again " + p)
    time.sleep(0.1)
    expect_eq(o.nreq, 256, "origin requests after the re-reads (none more)")
    expect(totals(sl)["memcached_hits"] >= 40, "memcached_hits %r" % totals(sl)["memcached_hits"])


@case("chunked: a 10 MiB object round-trips byte-exact through memcached")
def _():
    need()
    m1, m2 = Memcached(mem_mb=128), Memcached(mem_mb=128)
    a = node([m1, m2], size="64M", max_object="16M", extra={"memcached": {"max_object_size": "16M"}})
    b = node([m1, m2], size="64M", max_object="16M", extra={"memcached": {"max_object_size": "16M"}})
    big = blob(10 * 1024 * 1024 + 12345, 7)
    o = store_origin({"/big": big})
    expect_body(fetch(a, o.url("/big")), big, "A")
    wait_counter(a, "memcached_stores", 1)
    r = fetch(b, o.url("/big"))
    expect_body(r, big, "B")
    expect_eq(o.nreq, 1, "origin requests")
    expect_eq(totals(b)["memcached_hits"], 1, "B memcached_hits")
    n = int(m1.stats()["curr_items"]) + int(m2.stats()["curr_items"])
    expect(n >= 11, "items (manifest + chunks): %d" % n)


def big_nodes(servers, mode):
    mx = {"memcached": {"max_object_size": "16M"}}
    return [node(servers, mode=mode, size="32M", max_object="1M", extra=mx)
            for _ in range(2)]


for _mode in ("shared", "spill"):
    @case("%s: objects over cache.max_object_size (within memcached's) are stored and served "
          "from memcached, byte-exact, on both nodes; Range and conditionals answered" % _mode)
    def _(mode=_mode):
        need()
        m1, m2 = Memcached(mem_mb=128), Memcached(mem_mb=128)
        a, b = big_nodes([m1, m2], mode)
        big = blob(10 * 1024 * 1024 + 4321, 11)
        mid = blob(3 * 1024 * 1024 + 17, 12)	# one chunked size, one
        one = blob(900 * 1024, 13)		# under the shm limit: in shm
        objs = {"/big": big, "/mid": mid, "/one": one}
        o = store_origin(objs, etag=True)
        for p, body in objs.items():
            r = fetch(a, o.url(p))
            expect_body(r, body, "A first " + p)
        expect_eq(o.nreq, 3, "origin requests after A")
        # two stored via the tee (shm cannot hold them); /one is in shm,
        # and in memcached too in shared mode
        wait_counter(a, "memcached_stores", 3 if mode == "shared" else 2)
        r = fetch(a, o.url("/big"))
        expect_body(r, big, "A again /big")
        cs = r.header("Cache-Status") or ""
        expect("hit" in cs and "detail=memcached" in cs, "A again: Cache-Status %r" % cs, r)
        expect_eq(r.header("Age") is not None, True, "Age on a memcached hit")
        for p in ("/big", "/mid"):
            expect_body(fetch(b, o.url(p)), objs[p], "B " + p)
        expect_eq(o.nreq, 3, "origin requests after the hits (none more)")
        t = totals(b)
        expect_eq(t["memcached_hits"], 2, "B memcached_hits")
        # Range from memory
        r = fetch(b, o.url("/big"), headers=[("Range", "bytes=5000000-5000099")])
        expect_eq(r.status, 206, "Range status", r)
        expect(r.body == big[5000000:5000100], "Range bytes differ")
        expect_eq(r.header("Content-Range"), "bytes 5000000-5000099/%d" % len(big), "Content-Range")
        r = fetch(b, o.url("/big"), headers=[("Range", "bytes=1000000-4000000")])
        expect_eq(r.status, 206, "Range over several chunks", r)
        expect(r.body == big[1000000:4000001], "Range over several chunks: bytes differ")
        r = fetch(b, o.url("/mid"), headers=[("Range", "bytes=-10")])
        expect_eq(r.status, 206, "suffix Range status", r)
        expect(r.body == mid[-10:], "suffix Range bytes differ")
        r = fetch(b, o.url("/big"), headers=[("Range", "bytes=%d-" % (len(big) + 5))])
        expect_eq(r.status, 416, "unsatisfiable Range", r)
        # conditionals
        tag = '"%s"' % hashlib.sha1(big).hexdigest()[:16]
        r = fetch(b, o.url("/big"), headers=[("If-None-Match", tag)])
        expect_eq(r.status, 304, "If-None-Match", r)
        expect_eq(r.body, b"", "304 body")
        r = fetch(b, o.url("/big"), headers=[("If-None-Match", '"other"')])
        expect_body(r, big, "If-None-Match other")
        # HEAD is not looked up in memcached: the origin answers it
        expect_eq(o.nreq, 3, "origin requests after Range and conditionals")
        # the big objects never went into either shm
        for sl in (a, b):
            st = admin_stats(sl)
            expect(st["cache"]["objects"] <= 1, "shm objects %r" % st["cache"]["objects"])


@case("big objects: a stale copy in memcached is fetched again and replaced; a purge drops it")
def _():
    need()
    m = Memcached(mem_mb=128)
    a, b = big_nodes([m], "shared")
    big = blob(3 * 1024 * 1024, 21)
    objs = {"/x": big}
    o = store_origin(objs, cc="max-age=3", etag=True)
    expect_body(fetch(a, o.url("/x")), big, "first")
    wait_counter(a, "memcached_stores", 1)
    expect_body(fetch(b, o.url("/x")), big, "B fresh")
    expect_eq(o.nreq, 1, "origin after the fresh hit")
    time.sleep(4.2)	# ages count in whole seconds: stale for sure
    objs["/x"] = big2 = blob(3 * 1024 * 1024, 22)
    expect_body(fetch(b, o.url("/x")), big2, "B after max-age")
    expect_eq(o.nreq, 2, "origin after the stale copy")
    wait_counter(b, "memcached_stores", 1)
    # the new copy (fresh for two seconds at least) is what A gets now
    r = fetch(a, o.url("/x"))
    expect_body(r, big2, "A the new copy")
    expect_eq(o.nreq, 2, "origin after A's hit on the new copy")
    # PURGE through A: B must not serve it from memcached any more
    objs["/x"] = big3 = blob(3 * 1024 * 1024, 23)
    r = fetch(a, o.url("/x"), method="PURGE")
    expect_in(r.status, (200, 404), "PURGE", r)
    n = o.nreq
    r = fetch(b, o.url("/x"))
    expect_body(r, big3, "B after PURGE")
    expect_eq(o.nreq, n + 1, "B went to the origin after the purge")


@case("big objects: a client that leaves or an origin that closes early "
      "stores nothing; the next request gets the whole object")
def _():
    need()
    m = Memcached(mem_mb=128)
    a, b = big_nodes([m], "shared")
    big = blob(8 * 1024 * 1024, 31)

    # an origin that sends half the body, then closes
    def short(req, c):
        return response(200, big, [("Cache-Control", "max-age=3600")])[:4 * 1024 * 1024]
    o = new_origin(serve(short, keepalive=False))
    r = fetch(a, o.url("/short"))
    expect(len(r.body) < len(big), "a cut body reached the client whole?")
    time.sleep(0.3)
    expect_eq(totals(a)["memcached_stores"], 0, "stores after a cut body")

    # a client that reads a little and leaves
    o2 = store_origin({"/left": big})
    s = socket.create_connection(("127.0.0.1", a.port))
    s.sendall(build("GET", o2.url("/left")))
    s.recv(65536)
    s.close()
    time.sleep(0.5)
    expect_eq(totals(a)["memcached_stores"], 0, "stores after a client left")
    r = fetch(b, o2.url("/left"))
    expect_body(r, big, "B after A's client left")
    cs = r.header("Cache-Status") or ""
    expect("hit" not in cs and "detail=memcached-store" in cs, "not from memcached: %r" % cs, r)
    wait_counter(b, "memcached_stores", 1)
    r = fetch(a, o2.url("/left"))
    expect_body(r, big, "A from memcached")
    expect("hit; ttl=" in (r.header("Cache-Status") or "") and
           "detail=memcached" in (r.header("Cache-Status") or ""), "A: from memcached", r)


def range_origin(objs):
    """An origin that answers Range (one range, "bytes=a-b") with 206."""
    def fn(req, c):
        path = req.target.split("://", 1)[-1]
        path = path[path.find("/"):]
        b = objs[path]
        h = [("Cache-Control", "max-age=3600"), ("ETag", '"e1"')]
        rg = req.header("Range")
        if rg and rg.startswith("bytes=") and "," not in rg:
            a, _, z = rg[6:].partition("-")
            if a.isdigit() and z.isdigit() and int(a) <= int(z) < len(b):
                return response(206, b[int(a):int(z) + 1], h + [
                    ("Content-Range", "bytes %s-%s/%d" % (a, z, len(b)))], reason="Partial Content")
        return response(200, b, h)
    return new_origin(serve(fn))


@case("big objects whose copy cannot be stored (no server up; a Range client left) leave a "
      "hit-for-pass marker: later Range requests reach the origin with their Range")
def _():
    need()
    m = Memcached(mem_mb=128)
    a, = big_nodes([m], "shared")[:1]
    big = blob(8 * 1024 * 1024, 41)	# more than the socket buffers hold
    objs = {"/down": big, "/left": big}
    o = range_origin(objs)
    # memcached down: nothing is copied
    m.kill()
    expect(poll(lambda: servers_up(a) == 0, timeout=5), "servers_up did not drop")
    expect_body(fetch(a, o.url("/down")), big, "first")
    r = fetch(a, o.url("/down"), headers=[("Range", "bytes=100-199")])
    expect_eq(r.status, 206, "Range with memcached down", r)
    expect(r.body == big[100:200], "Range bytes")
    expect_eq(o.requests[-1].header("Range"), "bytes=100-199", "Range at the origin")
    # memcached up; a client asks for a range, reads a little and leaves
    m.start()
    expect(poll(lambda: servers_up(a) == 1, timeout=8), "servers_up did not return")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.connect(("127.0.0.1", a.port))
    s.sendall(build("GET", o.url("/left"), [("Range", "bytes=0-99")]))
    s.recv(400)
    s.close()
    time.sleep(0.5)
    expect_eq(totals(a)["memcached_stores"], 0, "stores after the client left")
    for i in range(3):
        r = fetch(a, o.url("/left"), headers=[("Range", "bytes=%d-%d" % (i, i + 9))])
        expect_eq(r.status, 206, "Range %d after the client left" % i, r)
        expect(r.body == big[i:i + 10], "Range %d bytes" % i)
        expect_eq(o.requests[-1].header("Range"), "bytes=%d-%d" % (i, i + 9),
                  "Range %d at the origin" % i)


@case("big objects: concurrent requests for one in memcached are all served from memcached "
      "(none goes to the origin)")
def _():
    need()
    m = Memcached(mem_mb=128)
    a, b = big_nodes([m], "shared")
    big = blob(6 * 1024 * 1024, 51)	# 10 at once fit one worker's budget
    o = store_origin({"/pop": big})
    expect_body(fetch(a, o.url("/pop")), big, "A")
    wait_counter(a, "memcached_stores", 1)
    res = []

    def one():
        r = fetch(b, o.url("/pop"), timeout=60)
        res.append((r.status == 200 and r.body == big, r.header("Cache-Status") or ""))
    for _round in range(3):
        ths = [threading.Thread(target=one) for _i in range(10)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
    expect(all(ok for ok, _cs in res) and len(res) == 30, "bodies: %r" % res)
    expect_eq(o.nreq, 1, "origin requests (only A's first)")
    expect_eq(totals(b)["memcached_hits"], 30, "B memcached_hits")


@case("big objects: a stale one, or a request with no-cache, reads the manifest and no chunk")
def _():
    need()
    m = Memcached(mem_mb=128)
    a, b = big_nodes([m], "shared")
    big = blob(4 * 1024 * 1024, 61)
    o = store_origin({"/nc": big}, cc="max-age=3600")
    expect_body(fetch(a, o.url("/nc")), big, "A")
    wait_counter(a, "memcached_stores", 1)
    g0 = int(m.stats()["get_hits"])
    r = fetch(b, o.url("/nc"), headers=[("Cache-Control", "no-cache")])
    expect_body(r, big, "B no-cache")
    expect("hit" not in (r.header("Cache-Status") or ""), "no-cache served a hit", r)
    expect_eq(int(m.stats()["get_hits"]) - g0, 1, "memcached get hits (the manifest only)")
    expect_eq(o.nreq, 2, "origin requests")


@case("big objects: a PURGE while a slow client still receives the purged body: that body "
      "is never stored (also after the node forgot the purge, 60 s on)")
def _():
    need()
    m = Memcached(mem_mb=128)
    v1, v2 = blob(12 * 1024 * 1024, 71), blob(12 * 1024 * 1024, 72)
    objs = {"/slow": v1}
    # a body transfer may idle 120 s (the slow client pauses 61 s)
    a = node([m], size="32M", max_object="1M", extra={
        "memcached": {"max_object_size": "16M"}, "timeouts": {"idle": 120}})

    def patient(req, c):
        c.sock.settimeout(None)		# waits as long as the slow client
        c.send(response(200, objs["/slow"], [("Cache-Control", "max-age=3600")]))
    o = new_origin(serve(patient))
    x = socket.socket()
    x.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    x.connect(("127.0.0.1", a.port))
    x.sendall(build("GET", o.url("/slow")))
    got = x.recv(65536)
    objs["/slow"] = v2
    expect_in(fetch(a, o.url("/slow"), method="PURGE").status, (200, 404), "PURGE")
    time.sleep(1.1)		# a copy fetched in the purge's second is not stored
    r = fetch(a, o.url("/slow"))
    expect_body(r, v2, "after the PURGE")
    wait_counter(a, "memcached_stores", 1)
    time.sleep(61)
    while True:
        d = x.recv(1 << 20)
        if not d:
            break
        got += d
        if len(got) >= len(v1) + 200 and got.endswith(v1[-100:]):
            break
    x.close()
    expect(got.endswith(v1[-100:]), "the slow client did not get v1 whole")
    time.sleep(0.5)
    expect_eq(totals(a)["memcached_stores"], 1, "stores (v2 only)")
    r = fetch(a, o.url("/slow"))
    expect_body(r, v2, "after the slow client finished")


def poison_setup():
    m = Memcached()
    sl = node([m], mode="shared", workers=1)
    return m, sl


@case("poisoning: a planted item sealed with our secret and key IS served (the control)")
def _():
    need()
    m, sl = poison_setup()
    o = store_origin({"/p": b"from the origin"})
    u = o.url("/p")
    m.set(mckey(cache_key(u)), item_object(u, b"planted body"))
    r = fetch(sl, u)
    expect_body(r, b"planted body", "control")
    expect_eq(r.header("X-Planted"), "yes", "planted field", r)
    expect_eq(o.nreq, 0, "origin requests")


@case("poisoning: wrong HMAC, wrong embedded key, truncated, garbage: never served, deleted, counted")
def _():
    need()
    m, sl = poison_setup()
    paths = ["/h", "/k", "/t", "/g", "/v"]
    o = store_origin({p: ("origin " + p).encode() for p in paths})
    u = {p: o.url(p) for p in paths}
    good = item_object(u["/t"], b"planted")
    plants = {
        "/h": item_object(u["/h"], b"forged", secret="not-the-secret"),
        "/k": item_object(u["/k"], b"other url", key=cache_key(u["/h"])),
        "/t": good[:-10],
        "/g": b"hello",
        "/v": good[:4] + b"\x02" + good[5:],     # another format version
    }
    for p, v in plants.items():
        m.set(mckey(cache_key(u[p])), v)
    t0 = totals(sl)
    for p in paths:
        r = fetch(sl, u[p])
        expect_body(r, ("origin " + p).encode(), "planted " + p)
    expect_eq(o.nreq, len(paths), "origin requests (every plant refused)")
    wait_counter(sl, "memcached_rejected", t0["memcached_rejected"] + len(paths))
    # each refused item was deleted, then replaced by sluice's own store
    wait_counter(sl, "memcached_stores", t0["memcached_stores"] + len(paths))
    for p in paths:
        v = m.get(mckey(cache_key(u[p])))
        expect(v is not None and v != plants[p] and v.startswith(b"SLMC"),
               "%s: item after the fetch: %r" % (p, (v or b"")[:20]))
    log = sl.stderr_text()
    expect("rejected" in log, "no 'rejected' log line", log[-2000:])


@case("farm purge: PURGE through node A is seen by node B (its shm too) within seconds")
def _():
    need()
    m1, m2 = Memcached(), Memcached()
    a, b = node([m1, m2]), node([m1, m2])
    objs = {"/pa": b"version one", "/pb": b"other object"}
    o = store_origin(objs)
    ua, ub = o.url("/pa"), o.url("/pb")
    expect_body(fetch(a, ua), b"version one", "A fills")
    expect_body(fetch(a, ub), b"other object", "A fills b")
    wait_counter(a, "memcached_stores", 2)
    expect_body(fetch(b, ua), b"version one", "B from memcached")
    expect_body(fetch(b, ub), b"other object", "B b from memcached")
    expect_body(fetch(b, ua), b"version one", "B from its shm")
    expect_eq(o.nreq, 2, "origin requests before the purge")
    objs["/pa"] = b"version two"
    r = fetch(a, ua, method="PURGE")
    expect_eq(r.status, 200, "PURGE through A", r)
    # B drops its shm copy when it reads the purge log (once a second)
    def fresh():
        return fetch(b, ua).body == b"version two"
    expect(poll(fresh, timeout=6, interval=0.3), "B still serves the purged object")
    expect_body(fetch(b, ub), b"other object", "B b untouched")
    expect_eq(o.nreq, 3, "origin requests after the purge (one refetch)")
    expect(poll(lambda: totals(b)["memcached_purges"] >= 1, timeout=3),
           "B memcached_purges %r" % totals(b)["memcached_purges"])
    # and A: its next request is a fetch of the new version too
    expect_body(fetch(a, ua), b"version two", "A after the purge")


@case("farm purge: a forged purge-log record under the counter is ignored")
def _():
    need()
    m = Memcached()
    a = node([m], workers=1)
    objs = {"/keep": b"keep me"}
    o = store_origin(objs)
    u = o.url("/keep")
    expect_body(fetch(a, u), b"keep me", "fill")
    # plant record 1 sealed with the wrong secret, and bump the counter
    seqk = mckey("P seq")
    m.set(seqk, b"0")
    time.sleep(1.5)                       # the worker syncs to 0
    rec = envelope("P 1", cache_key(u).encode(), body_len=len(cache_key(u)),
                   secret="wrong")
    m.set(mckey("P 1"), rec)
    m.set(seqk, b"1")
    expect(poll(lambda: totals(a)["memcached_rejected"] >= 1, timeout=5),
           "forged record not rejected")
    r = fetch(a, u)
    expect_body(r, b"keep me", "still cached")
    expect_eq(o.nreq, 1, "origin requests (no purge happened)")
    expect_eq(totals(a)["memcached_purges"], 0, "purges applied")
    # the control: record 2 sealed with the secret (purge time, then the
    # key) is applied: the object is fetched again
    objs["/keep"] = b"version two"
    k = cache_key(u).encode()
    rec = envelope("P 2", struct.pack(">q", int(time.time()) + 1) + k, body_len=8 + len(k))
    m.set(mckey("P 2"), rec)
    m.set(seqk, b"2")
    expect(poll(lambda: totals(a)["memcached_purges"] >= 1, timeout=5),
           "the sealed record was not applied")
    expect_body(fetch(a, u), b"version two", "after the sealed purge record")


# ---------------------------------------------------------------------------
# faults

def load(sl, urls, objs, seconds, nthreads=4, events=()):
    """Requests from nthreads clients for `seconds`; events is a list of
    (at_seconds, fn).  Returns (latencies, failures)."""
    lat, fails = [], []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(i):
        rnd = random.Random(i)
        while time.monotonic() < stop:
            p = rnd.choice(urls)
            t = time.monotonic()
            try:
                r = fetch(sl, p[1], timeout=10)
                ok = r.status == 200 and r.body == objs[p[0]]
                why = "status %d / %d bytes" % (r.status, len(r.body))
            except Exception as e:
                ok, why = False, repr(e)
            d = time.monotonic() - t
            with lock:
                lat.append(d)
                if not ok:
                    fails.append("%s: %s" % (p[0], why))
    ths = [threading.Thread(target=worker, args=(i,)) for i in range(nthreads)]
    t0 = time.monotonic()
    for th in ths:
        th.start()
    for at, fn in events:
        time.sleep(max(0, t0 + at - time.monotonic()))
        fn()
    for th in ths:
        th.join()
    return sorted(lat), fails


def p99(lat):
    return lat[int(len(lat) * 0.99) - 1] if lat else 0


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def spill_farm(servers, workers=2):
    sl = node(servers, mode="spill", size="4M", max_object="512K", workers=workers)
    objs = {"/l%d" % i: blob(64 * 1024, 500 + i) for i in range(160)}
    o = store_origin(objs)
    urls = [(p, o.url(p)) for p in objs]
    for p, u in urls:
        expect_body(fetch(sl, u), objs[p], "warm " + p)
    return sl, o, objs, urls


@case("F6/F8: one of two memcached killed under 20 s of load, then restarted: no request fails")
def _():
    need()
    m1, m2 = Memcached(), Memcached()
    sl, o, objs, urls = spill_farm([m1, m2])
    t0 = totals(sl)
    lat, fails = load(sl, urls, objs, 20, events=[(5, m2.kill), (12, m2.start)])
    expect(not fails, "%d failed requests: %s" % (len(fails), fails[:5]))
    t = totals(sl)
    diag = "requests %d, p50 %.1f ms, p99 %.1f ms, max %.1f ms; memcached hits %d errors %d" % (
        len(lat), lat[len(lat) // 2] * 1000, p99(lat) * 1000, lat[-1] * 1000,
        t["memcached_hits"] - t0["memcached_hits"], t["memcached_errors"] - t0["memcached_errors"])
    print("# " + diag)
    expect(p99(lat) < 1.0, "p99 too high: " + diag)
    expect(t["memcached_errors"] > t0["memcached_errors"], "no errors counted: " + diag)
    expect(poll(lambda: servers_up(sl) == 2, timeout=8),
           "servers_up did not return to 2: %r" % servers_up(sl))
    # the restarted server takes items again
    for _i in range(5):
        if int(m2.stats()["curr_items"]) > 0:
            break
        load(sl, urls, objs, 1, nthreads=2)
    expect(int(m2.stats()["curr_items"]) > 0, "the restarted server got no items")


@case("F6: every memcached stopped: served from shm and the origin, bounded latency")
def _():
    need()
    m1, m2 = Memcached(), Memcached()
    sl, o, objs, urls = spill_farm([m1, m2])
    m1.kill()
    m2.kill()
    lat, fails = load(sl, urls, objs, 4)
    expect(not fails, "%d failed: %s" % (len(fails), fails[:5]))
    print("# all down: %d requests, p99 %.1f ms" % (len(lat), p99(lat) * 1000))
    expect(p99(lat) < 1.0, "p99 %.3f s" % p99(lat))
    expect(poll(lambda: servers_up(sl) == 0, timeout=5),
           "servers_up %r" % servers_up(sl))


@case("F7: a memcached that accepts and never answers: timeouts hold, fds bounded, then recovers")
def _():
    need()
    m = Memcached()
    sl, o, objs, urls = spill_farm([m], workers=1)
    w = sl.worker_pids()[0]
    fd0 = fd_count(w)
    m.stop()
    try:
        lat, fails = load(sl, urls, objs, 5)
        expect(not fails, "%d failed: %s" % (len(fails), fails[:5]))
        print("# silent server: %d requests, p99 %.1f ms, max %.1f ms" % (
            len(lat), p99(lat) * 1000, lat[-1] * 1000))
        # timeout_ms is 100: nothing waits much longer than that for it
        expect(p99(lat) < 1.0, "p99 %.3f s" % p99(lat))
        fd1 = fd_count(w)
        expect(fd1 <= fd0 + 8, "worker fds grew from %d to %d" % (fd0, fd1))
    finally:
        m.cont()
    expect(poll(lambda: servers_up(sl) == 1, timeout=8),
           "servers_up %r" % servers_up(sl))


if __name__ == "__main__":
    main()
