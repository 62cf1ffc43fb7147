#!/usr/bin/env python3
"""
t_cache.py - the shared-memory HTTP cache of sluice, end to end.

What it checks: for every cache rule (hit, key, Vary, revalidation,
client conditionals, what is not stored, invalidation, ranges, PURGE,
collapsed forwarding, cut origins, size limits, eviction,
stale-if-error, access log codes) three things: what the origin
received (request count and the exact fields forwarded), what the client
got (status, Cache-Status / X-Cache / Age, body byte for byte), and
which `cache_*` counters of the admin /stats document moved.

What it assumes: the harness gives each Sluice its own cache segment
(32M); one shared instance with an admin listener and a fake DNS server
serves most cases, each case on its own origin so its recording is its
own; cases that need another configuration start their own instance.
Freshness is in whole seconds (max-age=1), so expiry is a short sleep.

Why it is built this way: a cache bug is usually invisible to a client
that only looks at status codes (a stale body, a leaked private answer,
a forwarded Range), so every case compares bytes on both sides and
counter deltas, each case reading as data: requests and expectations.
"""
import os
import random
import socket
import threading
import time
from harness import *
from origin import *

S = {}
VIA = "sluice-test"


def setup():
    S["dns"] = fakedns({"h.test": "A:127.0.0.1"})
    S["sl"] = admin_sluice(dns_port=S["dns"].port)


# ---------------------------------------------------------------------------
# helpers: stats, requests, origins

def stats(sl=None):
    return admin_stats(sl or S["sl"])


class Counters:
    """Snapshot of the totals; check() polls until the deltas match
    (counters are bumped as requests end, maybe after the response)."""

    def __init__(self, sl=None):
        self.sl = sl or S["sl"]
        self.t0 = stats(self.sl)["totals"]

    def delta(self):
        t = stats(self.sl)["totals"]
        return {k: t[k] - self.t0.get(k, 0) for k in t if k.startswith("cache_")}

    def check(self, **want):
        """want: name=n (exact) or name=(">=", n)."""
        def ok(d):
            for k, w in want.items():
                if isinstance(w, tuple):
                    if not d.get(k, 0) >= w[1]:
                        return False
                elif d.get(k, 0) != w:
                    return False
            return True
        last = {}

        def probe():
            last["d"] = self.delta()
            return ok(last["d"])
        if not poll(probe, timeout=3):
            d = last["d"]
            raise Fail("cache counters moved wrong: want %r\ngot %r" %
                       (want, {k: d.get(k, 0) for k in sorted(d) if d[k] or k in want}))


def port_of(sl=None):
    return (sl or S["sl"]).port


def cget(url, headers=(), method="GET", sl=None, body=None):
    return get(port_of(sl), url, headers=headers, method=method, body=body)


class Seq:
    """Requests on one kept-alive connection: one worker, so the access
    log lines of a sequence keep their order."""

    def __init__(self, sl=None):
        self.c = Client(port_of(sl))
        on_exit(self.c.close)

    def get(self, url, headers=(), method="GET"):
        self.c.send(build(method, url, headers))
        return self.c.read_response(method=method)


def cs(r):
    return r.header("Cache-Status") or ""


def expect_miss(r, body=None, stored=True, what="miss"):
    expect_eq(r.status, 200, what + " status", r)
    st = cs(r)
    expect(st.startswith("sluice; fwd="), "%s: Cache-Status %r" % (what, st), r)
    if stored:
        expect(st.endswith("; stored"), "%s: not stored: Cache-Status %r" % (what, st), r)
    else:
        expect("stored" not in st, "%s: stored: Cache-Status %r" % (what, st), r)
    expect_eq(r.header("X-Cache"), "MISS from " + VIA, what + " X-Cache", r)
    if body is not None:
        expect(r.body == body, "%s: body differs (%d bytes, want %d)" % (what, len(r.body), len(body)),
               r)


def expect_hit(r, body=None, what="hit"):
    expect_eq(r.status, 200, what + " status", r)
    st = cs(r)
    expect(st.startswith("sluice; hit"), "%s: Cache-Status %r" % (what, st), r)
    expect_eq(r.header("X-Cache"), "HIT from " + VIA, what + " X-Cache", r)
    age = r.header("Age")
    expect(age is not None and age.isdigit(), "%s: Age %r" % (what, age), r)
    if body is not None:
        expect(r.body == body, "%s: body differs (%d bytes, want %d)" % (what, len(r.body), len(body)),
               r)


def nreq(o, n, what="origin requests"):
    """The origin received exactly n requests (waits a little for n,
    then makes sure no more arrive)."""
    o.wait_requests(n, timeout=3)
    time.sleep(0.05)
    expect_eq(o.nreq, n, what, o.summary())


def asan_build():
    with open(SLUICE, "rb") as f:
        return b"__asan_init" in f.read()


def blob(n, seed):
    return random.Random(seed).randbytes(n)


def fixed(status=200, body=b"", headers=()):
    """An origin answering every request the same way."""
    return new_origin(serve(lambda req, c: response(status, body, list(headers))))


def by_path(table):
    """An origin answering by path: table[path] = (status, body, headers)
    or a function req -> bytes."""
    def fn(req, c):
        v = table[req.target]
        if callable(v):
            return v(req)
        st, body, hdrs = v
        return response(st, body, list(hdrs))
    return new_origin(serve(fn))


def log_lines(sl=None):
    with open((sl or S["sl"]).access_log, "rb") as f:
        return [ln.decode("latin-1").split() for ln in f.read().splitlines() if ln.strip()]


def log_codes(url, n, sl=None):
    """The access log codes (e.g. TCP_HIT/200) of the requests for url,
    in order, once n of them are written."""
    def probe():
        got = [f[3] for f in log_lines(sl) if len(f) > 6 and f[6] == url]
        return got if len(got) >= n else None
    got = poll(probe, timeout=3)
    expect(got is not None, "access log: fewer than %d lines for %s" % (n, url),
           "\n".join(" ".join(f) for f in log_lines(sl)[-20:]))
    return got


FRESH = ("Cache-Control", "max-age=60")


# ---------------------------------------------------------------------------
# 1. hits

@case("hit: 3 GETs reach the origin once; Cache-Status, X-Cache, Age; HEAD after GET is a hit")
def _():
    body = blob(3000, 1)
    o = fixed(200, body, [FRESH, ("ETag", '"h1"')])
    k = Counters()
    r1 = cget(o.url("/one"))
    expect_miss(r1, body, what="first GET")
    expect_eq(cs(r1), "sluice; fwd=uri-miss; stored", "first Cache-Status")
    expect_eq(r1.header("Age"), "0", "Age on the miss", r1)
    for i in (2, 3):
        r = cget(o.url("/one"))
        expect_hit(r, body, "GET %d" % i)
        ttl = cs(r).split("ttl=")[-1]
        expect(ttl.isdigit() and 57 <= int(ttl) <= 60, "ttl %r" % cs(r))
        expect_eq(r.header("ETag"), '"h1"', "stored ETag")
        expect_eq(r.header("Content-Length"), "3000", "Content-Length")
    nreq(o, 1)
    req = o.requests[0]
    expect_eq(req.raw_head.split(b"\r\n")[0], b"GET /one HTTP/1.1", "request line at the origin")
    expect_eq([k for k, _ in req.headers], ["Host", "Via", "X-Forwarded-For"], "fields at the origin",
              req.headers)
    # HEAD after GET: from the entry, no body (the next response parses).
    c = Client(port_of())
    c.send(build("HEAD", o.url("/one")))
    r = c.read_response(method="HEAD")
    expect_eq((r.status, r.header("Content-Length")), (200, "3000"), "HEAD status/CL", r)
    expect(cs(r).startswith("sluice; hit"), "HEAD Cache-Status %r" % cs(r))
    c.send(build("GET", o.url("/one")))
    r = c.read_response()
    expect_hit(r, body, "GET after HEAD on the same connection (a HEAD body would corrupt it)")
    c.close()
    nreq(o, 1)
    # HEAD miss: forwarded as HEAD, creates nothing.
    r = cget(o.url("/headmiss"), method="HEAD")
    expect_eq(r.status, 200, "HEAD miss status", r)
    expect("stored" not in cs(r) and "hit" not in cs(r), "HEAD miss Cache-Status %r" % cs(r))
    nreq(o, 2)
    expect_eq(o.requests[1].method, "HEAD", "method at the origin")
    expect_miss(cget(o.url("/headmiss")), body, what="GET after a HEAD miss")
    nreq(o, 3)
    k.check(cache_hits=4, cache_misses=3, cache_stored=2, cache_collapsed=0)


# ---------------------------------------------------------------------------
# 2. keys

def origin_on_port_80():
    """An origin on 127.a.b.c:80 (needs root), or None."""
    o = new_origin()
    for _ in range(5):
        host = "127.%d.%d.%d" % (random.randint(1, 254), random.randint(1, 254), random.randint(2, 254))
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, 80))
        except OSError:
            s.close()
            continue
        s.listen(128)
        old = o.ls
        o.ls, o.host, o.port = s, host, 80
        old.close()          # ends the first accept loop
        threading.Thread(target=o._accept_loop, daemon=True).start()
        return o
    return None


@case("key: http://h:80/x, http://H:80/x, http://h/x are one entry; ?a=1 and ?a=2 two; fragment 400")
def _():
    o = origin_on_port_80()
    if o is None:
        raise Skip("cannot bind port 80 on 127/8")
    S["dns"].add("h.test", "A:" + o.host)
    body = b"key body"
    o.handler = serve(lambda req, c: response(200, body + req.target.encode(), [FRESH]))
    k = Counters()
    expect_miss(cget("http://h.test:80/x"), body + b"/x", what="http://h.test:80/x")
    expect_hit(cget("http://H.TEST:80/x"), body + b"/x", "http://H.TEST:80/x")
    expect_hit(cget("http://h.test/x"), body + b"/x", "http://h.test/x")
    expect_hit(cget("http://h.Test/x"), body + b"/x", "http://h.Test/x")
    nreq(o, 1)
    expect_miss(cget("http://h.test/x?a=1"), body + b"/x?a=1", what="?a=1")
    expect_miss(cget("http://h.test/x?a=2"), body + b"/x?a=2", what="?a=2")
    expect_hit(cget("http://h.test/x?a=1"), body + b"/x?a=1", "?a=1 again")
    expect_hit(cget("http://h.test/x?a=2"), body + b"/x?a=2", "?a=2 again")
    nreq(o, 3)
    expect_eq([q.target for q in o.requests], ["/x", "/x?a=1", "/x?a=2"], "targets at the origin")
    r = request(port_of(), b"GET http://h.test/x#frag HTTP/1.1\r\nHost: h.test\r\n\r\n", close_wait=3)
    expect_error_page(r, (400,))
    nreq(o, 3)
    k.check(cache_hits=5, cache_misses=3, cache_stored=3)


# ---------------------------------------------------------------------------
# 3. Vary

def vary_origin():
    def fn(req, c):
        if req.target == "/star":
            return response(200, b"star %d" % len(c.origin.requests), [FRESH, ("Vary", "*")])
        return response(200, b"enc=" + (req.header("Accept-Encoding") or "none").encode(),
                        [FRESH, ("Vary", "Accept-Encoding")])
    return new_origin(serve(fn))


@case("Vary: Accept-Encoding gzip / identity / absent are three variants, each fetched once")
def _():
    o = vary_origin()
    k = Counters()
    variants = [("gzip", [("Accept-Encoding", "gzip")]), ("identity", [("Accept-Encoding", "identity")]),
                ("none", [])]
    failures = []
    for i, (name, h) in enumerate(variants):
        r1 = cget(o.url("/v"), h)
        r2 = cget(o.url("/v"), h)
        want = b"enc=" + name.encode()
        if (r1.status, r1.body, r2.status, r2.body) != (200, want, 200, want):
            failures.append("%s: bodies %r / %r" % (name, r1.body, r2.body))
        if not cs(r1).endswith("; stored"):
            failures.append("%s: first Cache-Status %r (want ...; stored)" % (name, cs(r1)))
        if not cs(r2).startswith("sluice; hit"):
            failures.append("%s: second Cache-Status %r (want hit)" % (name, cs(r2)))
    for name, h in variants:
        r = cget(o.url("/v"), h)
        if r.body != b"enc=" + name.encode() or not cs(r).startswith("sluice; hit"):
            failures.append("%s: third request %r %r" % (name, cs(r), r.body))
    o.wait_requests(3, timeout=2)
    time.sleep(0.05)
    ae = [q.header_all("Accept-Encoding") for q in o.requests]
    if ae != [["gzip"], ["identity"], []]:
        failures.append("Accept-Encoding at the origin per request: %r (want one fetch per variant)" % ae)
    expect(not failures, "\n".join(failures))
    k.check(cache_hits=6, cache_misses=3, cache_stored=3)


@case("Vary: * is never stored")
def _():
    o = vary_origin()
    k = Counters()
    r1 = cget(o.url("/star"))
    r2 = cget(o.url("/star"))
    for r in (r1, r2):
        expect_miss(r, stored=False, what="Vary: *")
        expect("detail=vary-star" in cs(r), "Cache-Status %r" % cs(r))
    expect_eq((r1.body, r2.body), (b"star 1", b"star 2"), "Vary: * bodies")
    nreq(o, 2)
    k.check(cache_hits=0, cache_misses=2, cache_stored=0, cache_uncacheable=2)


# ---------------------------------------------------------------------------
# 4. revalidation

LM = "Tue, 01 Oct 2024 10:00:00 GMT"


@case("revalidation: ETag -> If-None-Match, 304 freshens; 200 replaces; Last-Modified -> If-Modified-Since")
def _():
    def fn(req, c):
        inm, ims = req.header("If-None-Match"), req.header("If-Modified-Since")
        if req.target == "/e":          # ETag; the origin confirms it (304)
            if inm is None:
                return response(200, b"body A", [("Cache-Control", "max-age=1"), ("ETag", '"v1"')])
            return b"HTTP/1.1 304 Not Modified\r\nCache-Control: max-age=60\r\nETag: \"v1\"\r\n\r\n"
        if req.target == "/m":          # ETag; the origin has a new version (200)
            if inm is None:
                return response(200, b"old M", [("Cache-Control", "max-age=1"), ("ETag", '"m1"')])
            return response(200, b"new M, longer", [("Cache-Control", "max-age=60"), ("ETag", '"m2"')])
        if ims is None:                 # /l: Last-Modified only
            return response(200, b"lm body", [("Cache-Control", "max-age=1"), ("Last-Modified", LM)])
        return b"HTTP/1.1 304 Not Modified\r\nCache-Control: max-age=60\r\n\r\n"
    o = new_origin(serve(fn))
    k = Counters()
    q4 = Seq()
    expect_miss(q4.get(o.url("/e")), b"body A", what="ETag fill")
    expect_miss(q4.get(o.url("/m")), b"old M", what="second ETag fill")
    expect_miss(q4.get(o.url("/l")), b"lm body", what="Last-Modified fill")
    expect_hit(q4.get(o.url("/e")), b"body A", "ETag hit while fresh")
    nreq(o, 3)
    time.sleep(1.1)
    # 304: the stored body, freshened
    r = q4.get(o.url("/e"))
    expect_eq((r.status, r.body, r.header("ETag")), (200, b"body A", '"v1"'), "revalidated (304) answer", r)
    expect_eq(cs(r), "sluice; fwd=stale; fwd-status=304", "Cache-Status after a 304")
    nreq(o, 4)
    q = o.requests[3]
    expect_eq(q.header_all("If-None-Match"), ['"v1"'], "If-None-Match at the origin", q.headers)
    expect(not q.has("If-Modified-Since"), "If-Modified-Since without a Last-Modified", q.headers)
    # 200: replaces the entry
    r = q4.get(o.url("/m"))
    expect_eq((r.status, r.body, r.header("ETag")), (200, b"new M, longer", '"m2"'), "modified answer", r)
    expect_eq(cs(r), "sluice; fwd=stale; stored", "Cache-Status of a replacing 200")
    nreq(o, 5)
    expect_eq(o.requests[4].header_all("If-None-Match"), ['"m1"'], "If-None-Match for /m")
    # Last-Modified only: If-Modified-Since with the stored value
    r = q4.get(o.url("/l"))
    expect_eq((r.status, r.body), (200, b"lm body"), "Last-Modified revalidated answer", r)
    nreq(o, 6)
    q = o.requests[5]
    expect_eq(q.header_all("If-Modified-Since"), [LM], "If-Modified-Since at the origin", q.headers)
    expect(not q.has("If-None-Match"), "If-None-Match without an ETag", q.headers)
    # all three are fresh now (max-age=60)
    expect_hit(q4.get(o.url("/e")), b"body A", "hit after the 304 freshened it")
    r = q4.get(o.url("/m"))
    expect_hit(r, b"new M, longer", "hit after the replacement")
    expect_eq(r.header("ETag"), '"m2"', "new ETag")
    expect_hit(q4.get(o.url("/l")), b"lm body", "Last-Modified hit after its 304")
    nreq(o, 6)
    k.check(cache_revalidated=2, cache_hits=4, cache_stored=4, cache_misses=3)
    expect_eq(log_codes(o.url("/e"), 4),
              ["TCP_MISS/200", "TCP_HIT/200", "TCP_REFRESH_UNMODIFIED/200", "TCP_HIT/200"], "log for /e")
    expect_eq(log_codes(o.url("/m"), 3), ["TCP_MISS/200", "TCP_REFRESH_MODIFIED/200", "TCP_HIT/200"],
              "log for /m")


# ---------------------------------------------------------------------------
# 5. client conditionals

@case("client If-None-Match / If-Modified-Since answered from a fresh entry, origin not contacted")
def _():
    body = blob(2000, 5)
    o = fixed(200, body, [FRESH, ("ETag", '"c5"'), ("Last-Modified", LM)])
    k = Counters()
    # The fill itself carries a conditional: it must not reach the origin.
    r = cget(o.url("/c"), [("If-None-Match", '"c5"')])
    expect_in(r.status, (200, 304), "conditional fill status", r)
    if r.status == 200:
        expect(r.body == body, "fill body differs")
    nreq(o, 1)
    q = o.requests[0]
    expect(not q.has("If-None-Match") and not q.has("If-Modified-Since"),
           "client conditional forwarded on a fill", q.headers)
    grid = [
        ("If-None-Match", '"c5"', 304),
        ("If-None-Match", 'W/"c5"', 304),
        ("If-None-Match", '"x", "c5"', 304),
        ("If-None-Match", "*", 304),
        ("If-None-Match", '"other"', 200),
        ("If-Modified-Since", LM, 304),
        ("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT", 200),
    ]
    c = Client(port_of())
    n304 = 0
    for name, val, want in grid:
        c.send(build("GET", o.url("/c"), [(name, val)]))
        r = c.read_response()
        what = "%s: %s" % (name, val)
        expect_eq(r.status, want, what, r)
        if want == 304:
            n304 += 1
            expect_eq(r.header("ETag"), '"c5"', what + " ETag on the 304", r)
            expect(r.body == b"" and r.header("Content-Length") in (None, "2000"),
                   what + ": 304 with a body", r)
            expect_eq(r.header("X-Cache"), "HIT from " + VIA, what + " X-Cache")
        else:
            expect_hit(r, body, what)
    # the connection is still in step: a 304 carried no body bytes
    c.send(build("GET", o.url("/c")))
    expect_hit(c.read_response(), body, "plain GET after the conditionals")
    c.close()
    nreq(o, 1)
    k.check(cache_not_modified=(">=", n304), cache_hits=(">=", len(grid) + 1))
    codes = log_codes(o.url("/c"), len(grid) + 2)[1:]
    want = [("TCP_INM_HIT/304" if n == "If-None-Match" else "TCP_IMS_HIT/304") if st == 304
            else "TCP_HIT/200" for n, _, st in grid] + ["TCP_HIT/200"]
    expect_eq(codes, want, "access log codes")


# ---------------------------------------------------------------------------
# 6. what is not stored

@case("not stored: no-store, private, Set-Cookie, Authorization, request no-store; Authorization+public stored")
def _():
    auth = ("Authorization", "Basic dXNlcjpwdw==")
    grid = [
        # name, response fields, request fields, origin requests after two GETs, detail
        ("response no-store", [("Cache-Control", "no-store, max-age=60")], [], 2, "no-store"),
        ("private", [("Cache-Control", "private, max-age=60")], [], 2, "private"),
        ("Set-Cookie", [FRESH, ("Set-Cookie", "id=1")], [], 2, "set-cookie"),
        ("Authorization", [FRESH], [auth], 2, "auth"),
        ("request no-store", [FRESH], [("Cache-Control", "no-store")], 2, None),
        ("Authorization + public", [("Cache-Control", "public, max-age=60")], [auth], 1, None),
        ("Authorization + s-maxage", [("Cache-Control", "s-maxage=60")], [auth], 1, None),
        ("no validator, no freshness", [], [], 2, None),
    ]
    failures = []
    k = Counters()
    for name, rh, qh, want_n, detail in grid:
        o = new_origin(serve(lambda req, c, rh=rh: response(
            200, b"%s #%d" % (req.target.encode(), len(c.origin.requests)), rh)))
        r1 = cget(o.url("/ns"), qh)
        r2 = cget(o.url("/ns"), qh)
        o.wait_requests(want_n, timeout=3)
        time.sleep(0.05)
        got = (r1.status, r1.body, r2.status, r2.body, o.nreq)
        want = (200, b"/ns #1", 200, b"/ns #%d" % want_n, want_n)
        if got != want:
            failures.append("%s: got %r, want %r; Cache-Status %r / %r" % (name, got, want, cs(r1), cs(r2)))
            continue
        if want_n == 2 and detail and ("detail=" + detail) not in cs(r1):
            failures.append("%s: Cache-Status %r lacks detail=%s" % (name, cs(r1), detail))
        if want_n == 2 and "stored" in cs(r1) + cs(r2):
            failures.append("%s: Cache-Status says stored: %r" % (name, cs(r1)))
        if qh and qh[0][0] == "Authorization":
            if o.requests[0].header_all("Authorization") != [auth[1]]:
                failures.append("%s: Authorization at the origin %r" % (name, o.requests[0].headers))
    expect(not failures, "\n".join(failures))
    # two stored (public, s-maxage); each of the 5 response-side refusals twice
    k.check(cache_stored=2, cache_hits=2, cache_uncacheable=(">=", 10))


# ---------------------------------------------------------------------------
# 7. invalidation

@case("invalidation: POST/PUT/DELETE drop the URL and same-origin Location/Content-Location; 4xx/5xx do not")
def _():
    other = fixed(200, b"far", [FRESH])

    def fn(req, c):
        if req.method == "GET":
            return response(200, b"%s %s" % (req.target.encode(), b"x" * len(c.origin.requests)), [FRESH])
        if req.target == "/fail404":
            return response(404, b"no")
        if req.target == "/fail500":
            return response(500, b"err")
        if req.target == "/form":
            return response(201, b"made", [("Location", c.origin.url("/loc1")),
                                           ("Content-Location", c.origin.url("/loc2"))])
        if req.target == "/away":
            return response(201, b"made", [("Location", other.url("/far"))])
        return response(200, b"done")
    o = new_origin(serve(fn))
    paths = ["/inv", "/put", "/del", "/loc1", "/loc2", "/fail404", "/fail500"]
    for p in paths:
        expect_miss(cget(o.url(p)), what="fill " + p)
        expect_hit(cget(o.url(p)), what="hit " + p)
    expect_miss(cget(other.url("/far")), what="fill far")
    nreq(o, len(paths))
    k = Counters()
    unsafe = [("POST", "/inv"), ("PUT", "/put"), ("DELETE", "/del"), ("POST", "/form"),
              ("POST", "/fail404"), ("POST", "/fail500"), ("POST", "/away")]
    for m, p in unsafe:
        r = cget(o.url(p), method=m, body=b"data" if m != "DELETE" else None)
        expect(r.status in (200, 201, 404, 500), "%s %s: %r" % (m, p, r))
        expect(cs(r).startswith("sluice; fwd=method"), "%s Cache-Status %r" % (m, cs(r)))
    nreq(o, len(paths) + len(unsafe))
    expect_eq([(q.method, q.target) for q in o.requests[len(paths):]], unsafe, "unsafe requests at the origin")
    for p in ("/inv", "/put", "/del", "/loc1", "/loc2"):
        expect_miss(cget(o.url(p)), what="after invalidation " + p)
    for p in ("/fail404", "/fail500"):
        expect_hit(cget(o.url(p)), what="after a failed POST " + p)
    expect_hit(cget(other.url("/far")), what="cross-origin Location untouched")
    k.check(cache_invalidated=5, cache_hits=3, cache_misses=5)


# ---------------------------------------------------------------------------
# 8. ranges

@case("ranges on a 10 KiB entry: 206 / 416 / 200, HOSTILE #38 abuse, no Range on the fill")
def _():
    body = blob(10240, 8)
    o = fixed(200, body, [FRESH, ("ETag", '"r8"')])
    # The fill itself carries a Range: the origin must see none.
    r = cget(o.url("/r"), [("Range", "bytes=0-9")])
    expect_in(r.status, (200, 206), "ranged fill status", r)
    expect(r.body == (body if r.status == 200 else body[:10]), "ranged fill body", r)
    nreq(o, 1)
    expect(not o.requests[0].has("Range") and not o.requests[0].has("If-Range"),
           "Range forwarded on a fill", o.requests[0].headers)
    full = ("200", None, body)
    grid = [
        ("bytes=0-9", ("206", "bytes 0-9/10240", body[:10])),
        ("bytes=100-", ("206", "bytes 100-10239/10240", body[100:])),
        ("bytes=-5", ("206", "bytes 10235-10239/10240", body[-5:])),
        ("bytes=10239-20000", ("206", "bytes 10239-10239/10240", body[-1:])),
        ("bytes=10240-", ("416", "bytes */10240", None)),
        ("bytes=20000-30000", ("416", "bytes */10240", None)),
        ("bytes=0-0," * 1999 + "0-0", full),
        ("bytes=-1,-1", full),
        ("bytes=0-9,20-29", full),
        ("bytes=abc", full),
        ("bytes=5-1", full),
        ("items=0-9", full),
        ("bytes=0-18446744073709551615", [("206", "bytes 0-10239/10240", body), full]),
        ("bytes=0-18446744073709551616", [("206", "bytes 0-10239/10240", body), full]),
        ("bytes=99999999999999999999-", [("416", "bytes */10240", None), full]),
        ("bytes=-99999999999999999999", [("206", "bytes 0-10239/10240", body), full]),
    ]
    failures = []
    c = Client(port_of())
    for rng, want in grid:
        wants = want if isinstance(want, list) else [want]
        try:
            c.send(build("GET", o.url("/r"), [("Range", rng)]))
        except OSError as e:
            failures.append("%s: send failed %s" % (rng[:40], e))
            c = Client(port_of())
            continue
        r = c.read_response()
        got = (str(r.status), r.header("Content-Range"), r.body)
        ok = False
        for st, crange, data in wants:
            if got[0] == st and got[1] == crange and (data is None or got[2] == data):
                ok = True
                if st == "206" and r.header("Content-Length") != str(len(data)):
                    failures.append("%s: Content-Length %r" % (rng[:40], r.header("Content-Length")))
        if not ok:
            failures.append("%s: got %s %r body %d bytes, want one of %r" % (
                rng[:40], got[0], got[1], len(got[2]), [(w[0], w[1]) for w in wants]))
        if r.eof or r.status is None:
            c = Client(port_of())
    c.close()
    still_serving(S["sl"], o, "/r")
    nreq(o, 1)      # every range, and still_serving's GET, came from the entry
    expect(not failures, "\n".join(failures))


# ---------------------------------------------------------------------------
# 9. PURGE

def purge(url, sl=None):
    return request(port_of(sl), build("PURGE", url), method="PURGE", close_wait=None)


@case("PURGE from loopback: 200 then a miss; absent URL 404; purge_clients elsewhere: 403")
def _():
    o = new_origin(serve(lambda req, c: response(200, b"p%d" % len(c.origin.requests), [FRESH])))
    expect_miss(cget(o.url("/p")), b"p1", what="fill")
    expect_hit(cget(o.url("/p")), b"p1", "hit before PURGE")
    k = Counters()
    r = purge(o.url("/p"))
    expect_eq(r.status, 200, "PURGE status", r)
    expect(b"Purged." in r.body, "PURGE body %r" % r.body)
    expect_miss(cget(o.url("/p")), b"p2", what="GET after PURGE")
    r = purge(o.url("/absent"))
    expect_eq(r.status, 404, "PURGE of an absent URL", r)
    nreq(o, 2)
    expect(all(q.method == "GET" for q in o.requests), "PURGE reached the origin",
           [q.method for q in o.requests])
    k.check(cache_invalidated=1, cache_misses=1)
    sl = Sluice({"cache": {"purge_clients": ["10.0.0.0/8"]}})
    expect_miss(cget(o.url("/q"), sl=sl), b"p3", what="fill on the second sluice")
    r = purge(o.url("/q"), sl=sl)
    expect_eq(r.status, 403, "PURGE from outside purge_clients", r)
    expect_hit(cget(o.url("/q"), sl=sl), b"p3", "entry still there after a 403 PURGE")
    nreq(o, 3)


# ---------------------------------------------------------------------------
# 10. collapsed forwarding

def slow_origin(body, first_wait, half_wait, all_sent, marks, headers=(FRESH,), chunked=False):
    """An origin that waits for all_sent (then first_wait), sends the head
    and the first half, waits half_wait, notes marks["second"] and sends
    the rest."""
    def handler(conn):
        while True:
            req = conn.read_request(timeout=30)
            if req is None:
                return
            all_sent.wait(10)
            time.sleep(first_wait)
            h = b"HTTP/1.1 200 OK\r\n" + b"".join(b"%s: %s\r\n" % (k.encode(), v.encode())
                                                  for k, v in headers)
            half = len(body) // 2
            if chunked:
                conn.send(h + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % half + body[:half] + b"\r\n")
            else:
                conn.send(h + b"Content-Length: %d\r\n\r\n" % len(body) + body[:half])
            time.sleep(half_wait)
            marks["second"] = time.monotonic()
            if chunked:
                conn.send(b"%x\r\n" % (len(body) - half) + body[half:] + b"\r\n0\r\n\r\n")
            else:
                conn.send(body[half:])
    return new_origin(handler)


def sampling_client(url, out, i, started, stop, headers=()):
    """GET url; record (monotonic, bytes received) until stop is set,
    then read the whole response into out[i] = (response, samples)."""
    try:
        c = Client(port_of(), timeout=20)
        c.send(build("GET", url, headers))
        started.release()
        samples = []
        while not stop.is_set() and not c.eof:
            try:
                if c._more(time.monotonic() + 0.05):
                    samples.append((time.monotonic(), len(c.buf)))
            except socket.timeout:
                pass
        r = c.read_response(timeout=20)
        c.close()
        out[i] = (r, samples)
    except Exception as e:  # reported by the case
        started.release()
        out[i] = (None, repr(e))


def run_clients(n, url_for, stop, headers_for=lambda i: ()):
    """n concurrent sampling clients; returns (results, all_sent event)
    where all_sent is set once every request was written."""
    out = [None] * n
    started = threading.Semaphore(0)
    all_sent = threading.Event()
    ts = [threading.Thread(target=sampling_client, args=(url_for(i), out, i, started, stop, headers_for(i)),
                           daemon=True) for i in range(n)]

    def waiter():
        for t in ts:
            t.start()
        for _ in ts:
            started.acquire(timeout=10)
        all_sent.set()
    threading.Thread(target=waiter, daemon=True).start()
    return out, ts, all_sent


@case("collapsed forwarding: 100 concurrent clients, 2 workers, 1 origin request, followers stream early")
def _():
    body = blob(65536, 10)
    stop = threading.Event()
    marks = {}
    all_sent = threading.Event()
    o = slow_origin(body, 0.5, 1.0, all_sent, marks)
    k = Counters()
    w0 = {w["slot"]: w["requests"] for w in stats()["workers"]}
    url = o.url("/cf")
    out, ts, sent = run_clients(100, lambda i: url, stop)
    expect(sent.wait(10), "clients did not all send")
    all_sent.set()
    expect(poll(lambda: "second" in marks, timeout=10), "origin never sent the second half", o.summary())
    time.sleep(0.1)
    stop.set()
    for t in ts:
        t.join(25)
    bad = [(i, x) for i, x in enumerate(out) if x is None or x[0] is None]
    expect(not bad, "clients failed: %r" % bad[:3])
    wrong = [(i, r) for i, (r, _) in enumerate(out) if r.status != 200 or r.body != body or not r.complete]
    expect(not wrong, "%d of 100 bodies wrong; first: %r" % (len(wrong), wrong[:1]))
    nreq(o, 1)
    statuses = sorted(cs(r) for r, _ in out)
    expect_eq(statuses.count("sluice; fwd=uri-miss; stored"), 1, "leaders", statuses[:3])
    expect_eq(statuses.count("sluice; fwd=uri-miss; collapsed"), 99, "collapsed followers",
              sorted(set(statuses)))
    # Streaming: some follower held the first half before the origin
    # sent the second (the bytes before marks["second"] can only be head
    # and first half).
    early = max(max([n for t, n in s if t < marks["second"]] or [0]) for r, s in out
                if cs(r).endswith("collapsed"))
    expect(early >= 32768, "followers got only %d bytes before the second half was sent" % early)
    k.check(cache_collapsed=99, cache_stored=1, cache_misses=1)
    per = [w["requests"] - w0.get(w["slot"], 0) for w in stats()["workers"]]
    expect(len(per) == 2 and min(per) > 0, "the 100 clients did not reach both workers: %r" % per)
    codes = log_codes(url, 100)
    expect_eq(sorted(set(codes)), ["TCP_CF_MISS/200", "TCP_MISS/200"], "access log codes")
    expect_eq(codes.count("TCP_CF_MISS/200"), 99, "TCP_CF_MISS lines")


@case("collapsed + chunked origin: 20 followers get the exact body, 1 origin request")
def _():
    body = blob(65536, 101)
    stop = threading.Event()
    marks = {}
    all_sent = threading.Event()
    o = slow_origin(body, 0.3, 0.3, all_sent, marks, chunked=True)
    url = o.url("/cfc")
    out, ts, sent = run_clients(20, lambda i: url, stop)
    expect(sent.wait(10), "clients did not all send")
    all_sent.set()
    poll(lambda: "second" in marks, timeout=10)
    stop.set()
    for t in ts:
        t.join(25)
    wrong = [(i, x) for i, x in enumerate(out)
             if x is None or x[0] is None or x[0].status != 200 or x[0].body != body or not x[0].complete]
    expect(not wrong, "%d of 20 wrong; first: %r" % (len(wrong), wrong[:1]))
    nreq(o, 1)


# ---------------------------------------------------------------------------
# 11. collapsed + uncacheable

@case("collapsed + private: N concurrent clients -> N origin requests, each its own body")
def _():
    n = 10
    all_sent = threading.Event()

    def handler(conn):
        while True:
            req = conn.read_request(timeout=30)
            if req is None:
                return
            all_sent.wait(10)
            time.sleep(0.3)
            b = (b"client=%s " % req.header("X-Client", "?").encode()) * 200
            conn.send(response(200, b, [("Cache-Control", "private, max-age=60")]))
    o = new_origin(handler)
    k = Counters()
    stop = threading.Event()
    stop.set()          # no sampling: just read
    url = o.url("/priv")
    out, ts, sent = run_clients(n, lambda i: url, stop, lambda i: [("X-Client", str(i))])
    expect(sent.wait(10), "clients did not all send")
    all_sent.set()
    for t in ts:
        t.join(25)
    nreq(o, n, "origin requests (each waiter fetches for itself)")
    expect_eq(sorted(q.header("X-Client") for q in o.requests), sorted(str(i) for i in range(n)),
              "X-Client at the origin")
    for i, x in enumerate(out):
        expect(x is not None and x[0] is not None, "client %d failed: %r" % (i, x))
        r = x[0]
        expect_eq((r.status, r.body), (200, (b"client=%d " % i) * 200), "client %d response" % i)
        expect(cs(r).startswith("sluice; fwd=") and "stored" not in cs(r), "Cache-Status %r" % cs(r))
    k.check(cache_stored=0, cache_hits=0)


# ---------------------------------------------------------------------------
# 12. the origin cuts the body

def cutting_origin(kind, full):
    """First request: head + 1000 bytes then a close / RST (kind cl,
    chunked, rst); later requests: the full response."""
    def handler(conn):
        while True:
            req = conn.read_request(timeout=30)
            if req is None:
                return
            if len(conn.origin.requests) > 1:
                conn.send(response(200, full, [FRESH]))
                continue
            time.sleep(0.5)         # let the followers join
            if kind == "chunked":
                conn.send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"3e8\r\n" + full[:1000] + b"\r\n")
            else:
                conn.send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: %d\r\n\r\n"
                          % len(full) + full[:1000])
            time.sleep(0.2)
            if kind == "rst":
                conn.rst()
            else:
                conn.close()
            return
    return new_origin(handler)


@case("origin cuts the body (CL short, chunked without last chunk, RST): short body + close, not cached")
def _():
    full = blob(100000, 12)
    failures = []
    k = Counters()
    for kind in ("cl", "chunked", "rst"):
        o = cutting_origin(kind, full)
        url = o.url("/cut")
        res = [None] * 3

        def one(i):
            try:
                res[i] = request(port_of(), build("GET", url), timeout=5)
            except Exception as e:
                res[i] = e
        ts = [threading.Thread(target=one, args=(i,)) for i in range(3)]
        ts[0].start()
        time.sleep(0.15)
        for t in ts[1:]:
            t.start()
        for t in ts:
            t.join(10)
        for i, r in enumerate(res):
            who = "%s client %d" % (kind, i)
            if not isinstance(r, Response):
                failures.append("%s: %r" % (who, r))
                continue
            if r.status != 200 or r.timed_out or r.complete or not r.eof:
                failures.append("%s: status %r timed_out %r complete %r eof %r body %d; head %r" % (
                    who, r.status, r.timed_out, r.complete, r.eof, len(r.body), r.raw_head))
            elif not (len(r.body) <= 1000 and r.body == full[:len(r.body)]):
                failures.append("%s: body %d bytes, not a prefix of the origin's" % (who, len(r.body)))
        r = cget(url)
        if (r.status, r.body) != (200, full) or not cs(r).endswith("stored"):
            failures.append("%s: GET after the cut: %r" % (kind, r))
        o.wait_requests(2, timeout=3)
        if o.nreq != 2:
            failures.append("%s: origin requests %d, want 2 (first + the GET after)" % (kind, o.nreq))
    expect(not failures, "\n".join(failures), S["sl"].diag())
    k.check(cache_fill_aborted=(">=", 3), cache_stored=3)


# ---------------------------------------------------------------------------
# 13. too large

@case("max_object_size 64K: 1 MiB CL and chunked responses streamed whole, not stored")
def _():
    sl = admin_sluice({"cache": {"max_object_size": "64K"}})
    big = blob(1 << 20, 13)

    def fn(req, c):
        if req.target == "/cl":
            return response(200, big, [FRESH])
        out = b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nTransfer-Encoding: chunked\r\n\r\n"
        for i in range(0, len(big), 65536):
            out += b"%x\r\n" % 65536 + big[i:i + 65536] + b"\r\n"
        return out + b"0\r\n\r\n"
    o = new_origin(serve(fn))
    k = Counters(sl)
    for p in ("/cl", "/chunked"):
        for i in (1, 2):
            r = cget(o.url(p), sl=sl)
            expect(r.status == 200 and r.complete and r.body == big,
                   "%s #%d: status %r complete %r body %d bytes" % (p, i, r.status, r.complete, len(r.body)))
            expect(not cs(r).startswith("sluice; hit"), "%s #%d Cache-Status %r" % (p, i, cs(r)))
    nreq(o, 4)
    k.check(cache_stored=0, cache_hits=0)
    g = stats(sl)["cache"]
    expect_eq(g["objects"], 0, "objects in the cache", g)


# ---------------------------------------------------------------------------
# 14. eviction

@case("4M cache, 200 x 64 KiB objects: all byte-exact, evictions > 0, blocks bounded, RSS bounded")
def _():
    sl = admin_sluice({"cache": {"size": "4M", "max_object_size": "1M"}}, start=False)
    if asan_build():
        # The sanitizer's quarantine keeps freed buffers (up to 256 MB):
        # RSS would measure it, not sluice.
        sl.env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "detect_leaks=1") +
                      ":quarantine_size_mb=0")
    sl.start()
    o = new_origin(serve(lambda req, c: response(200, blob(65536, req.target), [FRESH])))
    rss0 = {p: rss_kb(p) for p in sl.worker_pids()}
    c = Client(sl.port)

    def fill(prefix):
        bad = []
        for i in range(200):
            p = "/%s%d" % (prefix, i)
            c.send(build("GET", o.url(p)))
            r = c.read_response()
            if r.status != 200 or r.body != blob(65536, p):
                bad.append("%s: %r" % (p, r))
        expect(not bad, "%d wrong: %s" % (len(bad), bad[:2]))
    fill("o")
    c.send(build("GET", o.url("/o199")))
    expect_hit(c.read_response(), blob(65536, "/o199"), "the last object")
    c.send(build("GET", o.url("/o0")))
    expect_miss(c.read_response(), blob(65536, "/o0"), what="the first object (evicted)")
    nreq(o, 201)
    g = stats(sl)["cache"]
    expect(g["evictions"] > 0, "no evictions", g)
    expect(g["blocks_used"] <= g["blocks_total"], "blocks_used > blocks_total", g)
    expect(g["objects"] * 16 <= g["blocks_total"], "more objects than fit", g)
    rss1 = {p: rss_kb(p) for p in rss0}
    for p, before in rss0.items():
        after = rss1[p]
        expect(after is not None and after - before <= 4096 + 6144,
               "worker %d RSS grew %s kB -> %s kB (segment 4096 kB)" % (p, before, after))
    # 200 more objects through a full cache: no growth at all.
    fill("p")
    for p, before in rss1.items():
        after = rss_kb(p)
        expect(after is not None and after - before <= 2048,
               "worker %d RSS grew %s kB -> %s kB over the second 200 objects" % (p, before, after))
    c.close()


# ---------------------------------------------------------------------------
# 15. stale-if-error

@case("stale-if-error: 503 or a dead origin -> the stale 200; without it the error reaches the client")
def _():
    state = {"down": False}

    def fn(req, c):
        if state["down"]:
            return response(503, b"origin down", [("Retry-After", "5")], reason="Service Unavailable")
        cc = "max-age=1, stale-if-error=60" if "sie" in req.target and "nosie" not in req.target \
            else "max-age=1"
        return response(200, b"fresh " + req.target.encode(), [("Cache-Control", cc), ("ETag", '"s"')])
    o = new_origin(serve(fn))
    o2 = new_origin(serve(fn))
    for org, p in ((o, "/sie"), (o, "/nosie"), (o2, "/sie2"), (o2, "/nosie2")):
        expect_miss(cget(org.url(p)), b"fresh " + p.encode(), what="fill " + p)
    k = Counters()
    time.sleep(1.1)
    state["down"] = True
    o2.stop()
    r = cget(o.url("/sie"))
    expect_eq((r.status, r.body), (200, b"fresh /sie"), "stale-if-error after a 503", r)
    expect("stale-if-error" in cs(r), "Cache-Status %r" % cs(r))
    r = cget(o.url("/nosie"))
    expect_eq((r.status, r.body), (503, b"origin down"), "no stale-if-error: the 503", r)
    r = cget(o2.url("/sie2"))
    expect_eq((r.status, r.body), (200, b"fresh /sie2"), "stale-if-error with the origin gone", r)
    r = cget(o2.url("/nosie2"))
    expect_in(r.status, (502, 503, 504), "no stale-if-error, origin gone", r)
    k.check(cache_stale_served=2, cache_hits=0, cache_stored=0)
    expect_eq(log_codes(o.url("/sie"), 2), ["TCP_MISS/200", "TCP_REFRESH_FAIL_OLD/200"], "log for /sie")
    q = o.requests[-2]
    expect_eq((q.target, q.header_all("If-None-Match")), ("/sie", ['"s"']), "revalidation of /sie")


# ---------------------------------------------------------------------------
# 16. access log codes

@case("access log codes: TCP_MISS, TCP_HIT, TCP_CF_MISS, TCP_INM_HIT, TCP_IMS_HIT, TCP_REFRESH_UNMODIFIED")
def _():
    all_sent = threading.Event()

    def handler(conn):
        while True:
            req = conn.read_request(timeout=30)
            if req is None:
                return
            if req.target == "/cf":
                all_sent.wait(10)
                time.sleep(0.3)
            if req.header("If-None-Match"):
                conn.send(b"HTTP/1.1 304 Not Modified\r\nCache-Control: max-age=60\r\n\r\n")
                continue
            cc = "max-age=1" if req.target == "/short" else "max-age=60"
            conn.send(response(200, b"log " + req.target.encode(),
                               [("Cache-Control", cc), ("ETag", '"g"'), ("Last-Modified", LM)]))
    o = new_origin(handler)
    q0 = Seq()
    q0.get(o.url("/short"))
    t0 = time.monotonic()
    q = Seq()
    q.get(o.url("/lg"))
    q.get(o.url("/lg"))
    q.get(o.url("/lg"), [("If-None-Match", '"g"')])
    q.get(o.url("/lg"), [("If-Modified-Since", LM)])
    stop = threading.Event()
    stop.set()
    out, ts, sent = run_clients(2, lambda i: o.url("/cf"), stop)
    sent.wait(10)
    all_sent.set()
    for t in ts:
        t.join(10)
    time.sleep(max(0, 1.1 - (time.monotonic() - t0)))
    q0.get(o.url("/short"))
    expect_eq(log_codes(o.url("/lg"), 4), ["TCP_MISS/200", "TCP_HIT/200", "TCP_INM_HIT/304", "TCP_IMS_HIT/304"],
              "/lg")
    expect_eq(sorted(log_codes(o.url("/cf"), 2)), ["TCP_CF_MISS/200", "TCP_MISS/200"], "/cf")
    expect_eq(log_codes(o.url("/short"), 2), ["TCP_MISS/200", "TCP_REFRESH_UNMODIFIED/200"], "/short")
    # A miss went to the origin: its hierarchy field names it, as for a
    # forwarded request.
    hier = [f[8] for f in log_lines() if len(f) > 8 and f[6] == o.url("/lg")]
    expect_eq(hier[:2], ["HIER_DIRECT/127.0.0.1", "HIER_NONE/-"], "hierarchy of the miss and the hit")


main(setup=setup)
