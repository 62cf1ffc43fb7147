#!/usr/bin/env python3
"""
t_memcached_fake.py - sluice's memcached tier against a lying server.

What it checks (HOSTILE F9, "memcached trust"): one sluice node in
shared mode whose only memcached is fakemc.py.  Every URL has a valid
item planted under sluice's key (sealed with our secret, a body the
origin never sends), so an item that reaches the client from the tier
is recognisable.  For each misbehaviour of the server on a lookup
(lying body length either way, a truncated reply, a wrong magic,
garbage, a trickle, a stall, a late reply, another key's value, a 2^31
body length, an RST, a wrong opaque) the client gets the origin's bytes
(status 200, exact body) within 2 s, the origin saw the request, the
worker is the same process with bounded fds, and memcached_* counters
moved.  Then the server behaves again and the tier recovers: the same
node serves another planted item from memcached, and a second, fresh
node serves what the first stored after its origin fetch (Cache-Status
"detail=memcached", no origin request).  Also: which opcodes sluice
actually sends, server-wide misbehaviour under load, and two trickling
replies holding both client threads.

What it assumes: sluice built with the tier (skips otherwise); nothing
but loopback; the fake runs in this process.  memcached.timeout_ms is
100, so a lookup gives up after ~120 ms (timeout + slack).

Why this way: a tier bug hides behind a 200; each case compares bytes,
counts origin requests and names the counter that moved.  A fresh fake
and node per case keep one case's broken connection out of the next.
"""
import os
import time
from harness import *
from origin import *
from fakemc import FakeMC
import harness as _harness
from t_memcached import (mckey, cache_key, item_object, store_origin, totals, servers_up,
                         fetch, expect_body, wait_counter, fd_count, tier_built, node)

FRESH = ("/fresh0", "/fresh1", "/fresh2")   # never planted: A fills them after a heal
NPROBE = 24         # planted URLs /p0.. kept for recovery probes
_mine = len(_harness._registry)       # t_memcached's cases registered on import
LIMIT = 2.0          # seconds: no request may take longer, whatever the server does
OPS_ALL = ("get", "getq", "getk", "getkq", "set", "setq", "delete", "deleteq", "incr", "incrq",
           "noop", "version")
MC = ("memcached_hits", "memcached_misses", "memcached_errors", "memcached_rejected",
      "memcached_stores")


def need():
    need_sluice()
    if not tier_built():
        raise Skip("sluice built --without-memcached")


def fake():
    f = FakeMC()
    on_exit(f.stop)
    return f


class Setup:
    """A fake server, node A on it, an origin serving "origin <path>"
    and, in the fake, a valid item "planted <path>" for every path."""

    def __init__(self, paths=("/m",), workers=1):
        paths = tuple(paths) + tuple("/p%d" % i for i in range(NPROBE))
        self.f = fake()
        self.a = node([self.f], workers=workers)
        self.objs = {p: ("origin " + p).encode() for p in paths + FRESH}
        self.o = store_origin(self.objs)
        for p in paths:
            self.f.put(self.key(p), item_object(self.url(p), b"planted " + p.encode()))
        self.pids = self.a.worker_pids()
        expect(self.pids, "no worker")
        self.fd0 = fd_count(self.pids[0])

    def url(self, p):
        return self.o.url(p)

    def key(self, p):
        return mckey(cache_key(self.url(p)))

    def timed(self, sl, p):
        t = time.monotonic()
        r = fetch(sl, self.url(p), timeout=10)
        return r, time.monotonic() - t

    def stored(self, p):
        """Does the fake hold sluice's own item for p (the origin's body)?"""
        v = self.f.get(self.key(p)) or b""
        return v.startswith(b"SLMC") and self.objs[p] in v

    def tier_hit(self, p):
        """A's answer for planted p: True if it came from memcached
        (any answer must be right, and bounded)."""
        r, dt = self.timed(self.a, p)
        expect(dt < LIMIT, "%s took %.2f s" % (p, dt))
        if r.body == b"planted " + p.encode():
            expect("detail=memcached" in (r.header("Cache-Status") or ""), "Cache-Status", r)
            return True
        expect_body(r, self.objs[p], p + " from the origin")
        return False

    def survived(self):
        expect_eq(self.a.worker_pids(), self.pids, "worker pids (a worker died?)",
                  self.a.stderr_text()[-3000:])
        fd1 = fd_count(self.pids[0])
        # fd0 was taken before any memcached or origin connection was
        # opened: the slack covers those (two client threads, pooled
        # upstream connections), not a leak per request
        expect(fd1 <= self.fd0 + 16, "worker fds grew from %d to %d" % (self.fd0, fd1))

    def recovered(self, stored=("/m",)):
        """The server behaves (heal() was called): A serves a planted
        item from memcached; A stores a new fill; a fresh node B serves
        that fill, and the objects in `stored` (which A fetched from the
        origin while the server misbehaved), from memcached."""
        f, a, o = self.f, self.a, self.o
        expect(poll(lambda: servers_up(a) == 1, timeout=5), "servers_up %r" % servers_up(a))
        # A connection the server dropped while healing fails its next
        # operation (one per client thread; two in a row open the
        # breaker for 2 s), and a client thread may still be finishing
        # the bad reply: probe with fresh planted URLs until three in a
        # row are tier hits.
        probes = ["/p%d" % i for i in range(NPROBE)]
        streak, t = [0], time.monotonic()

        def three():
            if not probes:
                return True
            streak[0] = streak[0] + 1 if self.tier_hit(probes.pop(0)) else 0
            return streak[0] >= 3
        expect(poll(three, timeout=6, interval=0.05) and streak[0] >= 3,
               "A: no three planted items in a row from memcached within 6 s (%d probes)"
               % (NPROBE - len(probes)))
        if NPROBE - len(probes) > 3:
            print("# recovered after %d probes, %.1f s" % (NPROBE - len(probes),
                                                         time.monotonic() - t))
        n = o.nreq
        # Stores are best effort (a set that waits past timeout_ms in a
        # busy queue is dropped): one of a few fresh fills must land.
        fresh = None
        for p in FRESH:
            expect_body(fetch(a, self.url(p)), self.objs[p], "A fills " + p)
            if poll(lambda: self.stored(p), timeout=3):
                fresh = p
                break
            print("# %s not stored: %r" % (p, f.ops_on(self.key(p))))
        expect(fresh, "A stored none of %s after the heal" % (FRESH,))
        nfill = FRESH.index(fresh) + 1
        expect_eq(o.nreq, n + nfill, "origin requests for the fresh fills")
        b = node([f], workers=1)
        for p in (fresh,) + tuple(stored):
            expect(poll(lambda: self.stored(p), timeout=5),
                   "A never stored %s into memcached: %r" % (p, (f.get(self.key(p)) or b"")[:40]))
            r, dt = self.timed(b, p)
            expect_body(r, self.objs[p], "fresh node B " + p)
            expect("detail=memcached" in (r.header("Cache-Status") or ""),
                   "B %s: Cache-Status %r" % (p, r.header("Cache-Status")), r)
        expect_eq(o.nreq, n + nfill, "origin requests after B (none more)")


def delta(t0, t1):
    return {k: t1[k] - t0[k] for k in MC if t1[k] != t0[k]}


def misbehave(mode, moved, stored=("/m",), **rule):
    """One lookup meets mode; the client gets the origin's bytes in
    time; `moved` (counter names) must grow; then recovery."""
    need()
    s = Setup(paths=("/m", "/q1", "/q2"))
    if mode == "swap":
        rule["other"] = s.key("/q1")      # a valid item, of another URL
    s.f.rule(s.key("/m"), mode, **rule)
    t0 = totals(s.a)
    r, dt = s.timed(s.a, "/m")
    expect_body(r, b"origin /m", mode)
    expect(dt < LIMIT, "%s: the request took %.2f s" % (mode, dt))
    expect_eq(s.o.nreq, 1, "origin requests (the tier served nothing)")
    expect(s.f.napplied(mode) >= 1, "the fake never misbehaved (%r)" % s.f.counts)
    expect("detail=memcached" not in (r.header("Cache-Status") or ""), "Cache-Status", r)
    ok = poll(lambda: any(totals(s.a)[k] > t0[k] for k in moved), timeout=3)
    expect(ok, "%s: none of %s moved: %r" % (mode, moved, delta(t0, totals(s.a))))
    expect_eq(totals(s.a)["memcached_hits"], t0["memcached_hits"], "memcached_hits")
    print("# %s: %.0f ms, %r" % (mode, dt * 1000, delta(t0, totals(s.a))))
    s.survived()
    s.f.heal()
    s.recovered(stored)
    s.survived()
    return s


# ---------------------------------------------------------------------------
# the control: the fake is a memcached as far as sluice can tell

@case("control: the fake stores and serves; opcodes sluice sends are all known (GET, SET, DELETE, INCREMENT)")
def _():
    need()
    s = Setup()
    r, dt = s.timed(s.a, "/p2")
    expect_body(r, b"planted /p2", "planted item")
    expect_eq(r.header("X-Planted"), "yes", "planted field", r)
    expect_eq(s.o.nreq, 0, "origin requests")
    # a fill is stored (SET); a PURGE deletes and logs (DELETE, INCREMENT)
    s.f.delete(s.key("/m"))
    expect_body(fetch(s.a, s.url("/m")), b"origin /m", "fill")
    wait_counter(s.a, "memcached_stores", 1)
    expect_eq(fetch(s.a, s.url("/m"), method="PURGE").status, 200, "PURGE")
    expect(poll(lambda: s.f.count("incr", "incrq") >= 1 and s.f.count("delete", "deleteq") >= 1,
                timeout=5), "no delete/incr seen: %r" % s.f.counts)
    expect(s.f.count("get") >= 2 and s.f.count("set") >= 1, "gets/sets: %r" % s.f.counts)
    expect_eq(s.f.unknown, [], "unknown opcodes")
    print("# opcodes seen: %r" % sorted(s.f.counts.items()))
    s.survived()


# ---------------------------------------------------------------------------
# one lying reply to a lookup

@case("body length says 100 bytes more than sent, then close: origin bytes, counted, recovers")
def _():
    misbehave("long", ("memcached_misses", "memcached_errors"))


@case("body length shorter than extras+key (the rest arrives as junk): origin bytes, recovers")
def _():
    # stored=(): the client computes extras+key minus 2 as a ~4 GiB
    # value length and reallocs for it; in the sanitizer build the
    # fill's SET that follows times out before it is sent
    misbehave("short", ("memcached_misses", "memcached_errors"), stored=())


@case("reply truncated mid-value, then close: origin bytes, recovers")
def _():
    misbehave("truncate", ("memcached_misses", "memcached_errors"))


@case("reply with a request's magic (0x80): origin bytes, recovers")
def _():
    misbehave("magic", ("memcached_misses", "memcached_errors"))


@case("200 bytes of garbage for a reply: origin bytes, recovers")
def _():
    misbehave("garbage", ("memcached_misses", "memcached_errors"))


@case("reply trickled one byte per 50 ms: the lookup gives up in time, origin bytes, recovers")
def _():
    misbehave("trickle", ("memcached_misses", "memcached_errors"))


@case("request read, never answered (stall): bounded, origin bytes, recovers")
def _():
    misbehave("stall", ("memcached_misses", "memcached_errors"))


@case("reply 300 ms late: bounded; the late reply is never taken for the next request's")
def _():
    s = misbehave("late", ("memcached_misses", "memcached_errors"), delay=0.3)
    # recovered() asked again right away; now ask for more, past the
    # late reply's arrival: each must be its own item (a reply read one
    # request late would belong to another key and be rejected)
    time.sleep(0.4)
    t0 = totals(s.a)
    for p in ("/q1", "/q2"):
        expect_body(fetch(s.a, s.url(p)), ("planted " + p).encode(), "after the late reply " + p)
    expect_eq(delta(t0, totals(s.a)).get("memcached_rejected", 0), 0, "rejected after the late reply")


@case("another key's (valid, sealed) value returned: rejected by the embedded key, deleted, origin bytes")
def _():
    # stored=(): the delete of the rejected item and the store of the
    # refetched object race on two client threads (see the PURGE case
    # below); when the delete lands last the store is lost
    s = misbehave("swap", ("memcached_rejected",), stored=())
    expect("delete" in s.f.ops_on(s.key("/m")), "the rejected item was not deleted: %r"
           % s.f.ops_on(s.key("/m")))
    expect(s.f.get(s.key("/q1")) is not None, "the other key's item was deleted")
    if s.f.get(s.key("/m")) is None:
        print("# the refetched /m was stored, then deleted: %r" % s.f.ops_on(s.key("/m")))


@case("PURGE while the fill's SET is applied late (after the delete): the item is deleted again, B gets the new version")
def _():
    # The fill's SET times out on sluice's side (timeout_ms 100) but the
    # server applies it 300 ms late, after the PURGE's DELETE: the purged
    # version is back in memcached for a moment.  A purge deletes the item
    # once more REDELETE_MS later (worker/mc_tier.c), so a node that asks
    # after that gets the new version.
    need()
    s = Setup(paths=("/x",))
    k = s.key("/x")
    s.f.delete(k)
    s.f.rule(k, "late", ops=("set",), delay=0.3)
    expect_body(fetch(s.a, s.url("/x")), b"origin /x", "fill")
    s.objs["/x"] = b"version two"
    expect_eq(fetch(s.a, s.url("/x"), method="PURGE").status, 200, "PURGE")
    expect(poll(lambda: "set" in s.f.ops_on(k), timeout=3), "the SET never arrived")

    def deleted_again():
        ops = s.f.ops_on(k)
        return "set" in ops and "delete" in ops[ops.index("set"):]
    expect(poll(deleted_again, timeout=6), "no delete after the late SET: %r" % s.f.ops_on(k))
    b = node([s.f], workers=1)
    r = fetch(b, s.url("/x"))
    expect_body(r, b"version two", "fresh node B after the purge (ops on the key: %r)"
                % s.f.ops_on(k))


@case("body length 2^31, then stall: bounded, origin bytes, recovers")
def _():
    # stored=(): as for "short", the client reallocs for the claimed
    # 2 GiB; in the sanitizer build under load the fill's SET may time
    # out in the queue meanwhile
    misbehave("huge", ("memcached_misses", "memcached_errors"), stored=())


@case("connection reset (RST) on the request: origin bytes, counted, recovers")
def _():
    misbehave("reset", ("memcached_misses", "memcached_errors"))


@case("wrong opaque on a correct reply: a protocol error (never taken for this request's), origin bytes, recovers")
def _():
    misbehave("opaque", ("memcached_misses", "memcached_errors"))


@case("GET reply with a 1000-byte key length: a protocol error, the worker survives, origin bytes")
def _():
    # libmemcached 1.1.4 copied such a key length into a fixed 250-byte
    # buffer (a heap overflow in the worker); sluice's own client checks
    # every header field before it reads a byte of the body.
    misbehave("bigkey", ("memcached_misses", "memcached_errors"))


# ---------------------------------------------------------------------------
# the whole server misbehaves

def load_once(s, paths, planted_ok=False):
    """Each path once, sequentially: (worst latency, failures).  With
    planted_ok, the planted (valid) item is a right answer too."""
    worst, bad = 0.0, []
    for p in paths:
        r, dt = s.timed(s.a, p)
        worst = max(worst, dt)
        good = (s.objs[p], b"planted " + p.encode()) if planted_ok else (s.objs[p],)
        if r.status != 200 or r.body not in good:
            bad.append("%s: %s %r" % (p, r.status, r.body[:40]))
    return worst, bad


@case("every reply (gets, sets, deletes, incr) is garbage: all bounded origin bytes; heal: recovers")
def _():
    need()
    paths = ["/m"] + ["/g%d" % i for i in range(20)]
    s = Setup(paths=paths)
    s.f.rule(None, "garbage", ops=tuple(OPS_ALL))
    t0 = totals(s.a)
    worst, bad = load_once(s, paths)
    expect(not bad, "%d bad answers: %s" % (len(bad), bad[:5]))
    expect(worst < LIMIT, "worst %.2f s" % worst)
    expect_eq(s.o.nreq, 21, "origin requests (nothing served from the tier)")
    t1 = totals(s.a)
    print("# all garbage: worst %.0f ms, %r, servers_up %r" % (worst * 1000, delta(t0, t1),
                                                             servers_up(s.a)))
    expect(t1["memcached_errors"] + t1["memcached_misses"] >
           t0["memcached_errors"] + t0["memcached_misses"], "no error or miss counted")
    s.survived()
    s.f.heal()
    s.recovered(stored=())
    s.survived()


@case("every connection stalls (all opcodes): bounded origin bytes, breaker opens; heal: recovers")
def _():
    need()
    paths = ["/m"] + ["/s%d" % i for i in range(10)]
    s = Setup(paths=paths)
    s.f.rule(None, "stall", ops=tuple(OPS_ALL))
    t0 = totals(s.a)
    worst, bad = load_once(s, paths)
    expect(not bad, "%d bad answers: %s" % (len(bad), bad[:5]))
    expect(worst < LIMIT, "worst %.2f s" % worst)
    expect_eq(s.o.nreq, 11, "origin requests")
    t1 = totals(s.a)
    print("# all stalled: worst %.0f ms, %r, servers_up %r" % (worst * 1000, delta(t0, t1),
                                                             servers_up(s.a)))
    expect(t1["memcached_errors"] > t0["memcached_errors"], "no error counted")
    # two timeouts in a row open the breaker: later lookups are not
    # even sent (11 requests; a few gets are the purge-log poll's)
    expect(s.f.count("get") <= 5, "gets sent to a hung server: %r" % s.f.counts)
    s.survived()
    s.f.heal()
    s.recovered(stored=())
    s.survived()


@case("two trickling replies hold both client threads: other lookups stay bounded; heal: recovers")
def _():
    need()
    paths = ["/m", "/m2"] + ["/t%d" % i for i in range(8)]
    s = Setup(paths=paths)
    s.f.rule(s.key("/m"), "trickle")
    s.f.rule(s.key("/m2"), "trickle")
    worst, bad = load_once(s, ["/m", "/m2"])
    expect(not bad and worst < LIMIT, "trickled: %r, worst %.2f s" % (bad, worst))
    n0 = s.o.nreq
    worst, bad = load_once(s, ["/t%d" % i for i in range(8)], planted_ok=True)
    expect(not bad, "%d bad answers: %s" % (len(bad), bad[:5]))
    expect(worst < LIMIT, "worst %.2f s while both threads are held" % worst)
    # Planted items exist for /t*: any that came from the origin did so
    # because no client thread was free (each trickling reply holds one
    # for up to timeout_ms).
    print("# while 2 replies trickle: %d of 8 lookups went to the origin, worst %.0f ms"
          % (s.o.nreq - n0, worst * 1000))
    s.survived()
    s.f.heal()
    s.recovered(stored=())
    s.survived()


if __name__ == "__main__":
    main(cases=_harness._registry[_mine:])
