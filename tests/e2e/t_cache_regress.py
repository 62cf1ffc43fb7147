#!/usr/bin/env python3
"""
t_cache_regress.py - regression tests for the cache bugs found in review.

What it checks: one case per reproduction the reviewer wrote, each the
bug's trigger followed by assertions on both sides of the proxy (what
the origin received and how often, what the client got byte for byte):
  g1   a revalidation answered by a 200 that now carries Vary
  g1b  a variant revalidated while its Vary names grew
  g2   a cache append that fails halfway (fault point cache_block)
  g3   Authorization / Vary fields placed after the 128th field
  g4   collapsed followers of a chunked object outgrowing max_object_size
  g5   HEAD of a stale entry (must-revalidate, no-cache, request no-cache)
  g6   collapsed transfers that outlast timeouts.idle, with and without
       the leader's client resetting
  g7   a fill whose leader's client resets still completes and is stored
  g8   a cached 204 carries no Content-Length

What it assumes: the harness and origin of the other e2e files; the
fault-injection hook SLUICE_FAULTS of a test build; freshness is in
whole seconds, so expiry is a sleep of a little over max-age.

Why it is built this way: each of these bugs was invisible to a status
code check (another user's page, bytes past Content-Length, a truncated
follower), so every case asserts bodies and origin request counts, the
two things the bugs got wrong.  Cases that share the default
configuration share one instance, each on its own origin (own keys).
"""
import os
import socket
import threading
import time
from harness import *
from origin import *

S = {}


def setup():
    S["sl"] = Sluice()


def cs(r):
    return r.header("Cache-Status") or ""


def nreq(o, n, what="origin requests"):
    """The origin received exactly n requests (waits a little for n,
    then makes sure no more arrive)."""
    o.wait_requests(n, timeout=3)
    time.sleep(0.05)
    expect_eq(o.nreq, n, what, o.summary())


def lines(n):
    """n distinct 8-byte lines: a misplaced or repeated block shows."""
    return b"".join(b"%07d\n" % i for i in range(n))


def expect_body(r, body, what):
    expect_eq(r.status, 200, what + " status", r)
    expect(r.complete, what + ": response incomplete", r)
    if r.body != body:
        i = next((i for i in range(min(len(r.body), len(body))) if r.body[i] != body[i]),
                 min(len(r.body), len(body)))
        raise Fail("%s: body differs: %d bytes, want %d; first difference at %d: %r, want %r"
                   % (what, len(r.body), len(body), i, r.body[i:i + 16], body[i:i + 16]))


# ---------------------------------------------------------------------------
# g1: revalidation whose 200 now varies

@case("g1 reval + Vary: a stale plain entry replaced by a varying 200 -> each language its own body")
def _():
    state = {"phase": 1}

    def fn(req, conn):
        if state["phase"] == 1:
            return response(200, b"plain-v1", [("Cache-Control", "max-age=1"), ("ETag", '"v1"')])
        lang = req.header("Accept-Language") or "none"
        return response(200, ("body-for-" + lang).encode(),
                        [("Cache-Control", "max-age=100"), ("ETag", '"v2-' + lang + '"'),
                         ("Vary", "Accept-Language")])
    o = new_origin(serve(fn))
    port, url = S["sl"].port, o.url("/rv")
    r = get(port, url)
    expect_body(r, b"plain-v1", "first fill")
    r = get(port, url)
    expect_body(r, b"plain-v1", "hit")
    expect(cs(r).startswith("sluice; hit"), "second GET not a hit: %r" % cs(r), r)
    nreq(o, 1, "origin requests before expiry")
    time.sleep(2.2)
    state["phase"] = 2
    # fr revalidates the plain entry and gets a 200 that varies: stored
    # under the plain key without a Vary marker, en would get fr's body
    r = get(port, url, headers=[("Accept-Language", "fr")])
    expect_body(r, b"body-for-fr", "fr after revalidation")
    r = get(port, url, headers=[("Accept-Language", "en")])
    expect_body(r, b"body-for-en", "en")
    nreq(o, 3, "origin requests (fill, fr, en)")
    expect_eq(o.requests[2].header("Accept-Language"), "en", "en forwarded with its language")
    # and each variant is now served from the cache to its own language
    for lang in ("fr", "en"):
        r = get(port, url, headers=[("Accept-Language", lang)])
        expect_body(r, b"body-for-" + lang.encode(), lang + " again")
        expect(cs(r).startswith("sluice; hit"), "%s again not a hit: %r" % (lang, cs(r)), r)
    r = get(port, url)
    expect_body(r, b"body-for-none", "no Accept-Language")
    nreq(o, 4, "origin requests after the variant hits")


# ---------------------------------------------------------------------------
# g1b: a variant whose Vary names grew

@case("g1b variant whose Vary grew to Accept-Language, Cookie: Bob never gets Alice's page")
def _():
    state = {"phase": 1}

    def fn(req, conn):
        lang = req.header("Accept-Language") or "none"
        if state["phase"] == 1:
            return response(200, ("lang=" + lang).encode(),
                            [("Cache-Control", "max-age=1"), ("Vary", "Accept-Language")])
        who = req.header("Cookie") or "nobody"
        return response(200, ("lang=%s page of %s" % (lang, who)).encode(),
                        [("Cache-Control", "max-age=100"), ("Vary", "Accept-Language, Cookie")])
    o = new_origin(serve(fn))
    port, url = S["sl"].port, o.url("/v")
    r = get(port, url, headers=[("Accept-Language", "fr")])
    expect_body(r, b"lang=fr", "phase 1 fr")
    time.sleep(2.2)
    state["phase"] = 2
    alice = [("Accept-Language", "fr"), ("Cookie", "user=alice")]
    bob = [("Accept-Language", "fr"), ("Cookie", "user=bob")]
    r = get(port, url, headers=alice)
    expect_body(r, b"lang=fr page of user=alice", "Alice")
    # stored under the old (Accept-Language only) variant key, Alice's
    # page would be a hit for Bob
    r = get(port, url, headers=bob)
    expect_body(r, b"lang=fr page of user=bob", "Bob")
    nreq(o, 3, "origin requests (fill, Alice, Bob)")
    expect_eq(o.requests[2].header("Cookie"), "user=bob", "Bob's request forwarded with his cookie")
    for who, h in (("bob", bob), ("alice", alice), ("bob", bob)):
        r = get(port, url, headers=h)
        expect_body(r, ("lang=fr page of user=%s" % who).encode(), who + " again")


# ---------------------------------------------------------------------------
# g2: a cache append that fails halfway

@case("g2 failed append (SLUICE_FAULTS=cache_block:20): body byte-exact, nothing past CL, next keep-alive response intact")
def _():
    if not has_faults():
        raise Skip("built without --enable-fault-injection")
    body = lines(30000)    # 240000 bytes
    o = new_origin(serve(lambda req, c: response(200, body, [("Cache-Control", "max-age=100")])))
    sl = Sluice(workers=1, start=False)
    sl.env = dict(os.environ, SLUICE_FAULTS="cache_block:20")
    sl.start()
    c = Client(sl.port, timeout=15)
    on_exit(c.close)
    for i in range(3):
        what = "response %d on the connection" % (i + 1)
        c.send(build("GET", o.url("/big")))
        r = c.read_response()
        expect_eq(r.header("Content-Length"), str(len(body)), what + " Content-Length", r)
        expect_body(r, body, what)
        expect(not r.eof, what + ": connection closed", r)
        # every fill needs ~60 blocks, so every fill meets a failing
        # allocation and is abandoned: a published part would be a hit
        expect(not cs(r).startswith("sluice; hit"), what + ": a hit on a failed fill: %r" % cs(r), r)
        # a partial append that still counted its bytes sent them again
        # after the body: nothing may follow it
        more = c.recv_some(65536, timeout=0.5)
        expect_eq(more, b"", what + ": bytes after the Content-Length body")
    nreq(o, 3, "origin requests (each fill abandoned)")
    expect(sl.alive(), "sluice died", sl.diag())


# ---------------------------------------------------------------------------
# g3: fields past the 128th

@case("g3 header_fields=300, 130 junk fields: Authorization and Vary's field past field 128 still honoured")
def _():
    def fn(req, conn):
        who = req.header("Authorization") or "anonymous"
        lang = req.header("Accept-Language") or "none"
        hdrs = [("Cache-Control", "max-age=100")]
        if req.target.startswith("/vary"):
            hdrs.append(("Vary", "Accept-Language"))
            return response(200, ("lang=" + lang).encode(), hdrs)
        return response(200, ("secret page of " + who).encode(), hdrs)
    o = new_origin(serve(fn))
    sl = Sluice(conf={"limits": {"header_fields": 300}})
    junk = [("X-Junk-%d" % i, "j") for i in range(130)]
    r = get(sl.port, o.url("/acct"), headers=junk + [("Authorization", "Bearer alice-token")])
    expect_body(r, b"secret page of Bearer alice-token", "Alice")
    expect("stored" not in cs(r), "an answer to Authorization stored: %r" % cs(r), r)
    r = get(sl.port, o.url("/acct"))
    expect_body(r, b"secret page of anonymous", "anonymous")
    nreq(o, 2, "origin requests for /acct")
    expect_eq(o.requests[0].header("Authorization"), "Bearer alice-token", "Authorization forwarded")
    expect_eq(len([k for k, v in o.requests[0].headers if k.startswith("X-Junk-")]), 130,
              "junk fields forwarded")
    r = get(sl.port, o.url("/vary"), headers=junk + [("Accept-Language", "fr")])
    expect_body(r, b"lang=fr", "attacker fr")
    r = get(sl.port, o.url("/vary"))
    expect_body(r, b"lang=none", "victim without Accept-Language")
    nreq(o, 4, "origin requests (2 for /acct, 2 for /vary)")
    expect_eq(o.requests[3].header("Accept-Language"), None, "victim's request has no Accept-Language")
    # each variant is stored under its own key: fr still hits fr
    r = get(sl.port, o.url("/vary"), headers=[("Accept-Language", "fr")])
    expect_body(r, b"lang=fr", "fr again")
    nreq(o, 4, "origin requests after fr again")


# ---------------------------------------------------------------------------
# g4: followers of an object that outgrows max_object_size

@case("g4 max_object_size 256K, 800 kB chunked, 3 collapsed clients: all get 800000 bytes, 1 origin request, nothing stored")
def _():
    body = lines(100000)   # 800000 bytes

    def handler(conn):
        while True:
            req = conn.read_request(timeout=30)
            if req is None:
                return
            conn.send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=100\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n")
            time.sleep(0.5)    # the followers join while only the head is known
            for i in range(0, len(body), 16384):
                part = body[i:i + 16384]
                conn.send(b"%x\r\n" % len(part) + part + b"\r\n")
                time.sleep(0.01)
            conn.send(b"0\r\n\r\n")
    o = new_origin(handler)
    sl = Sluice(conf={"cache": {"max_object_size": "256K"}})
    res = {}

    def go(i):
        try:
            res[i] = get(sl.port, o.url("/big"), timeout=20)
        except Exception as e:
            res[i] = e
    ts = [threading.Thread(target=go, args=(i,)) for i in range(3)]
    for t in ts:
        t.start()
        time.sleep(0.1)
    for t in ts:
        t.join(30)
    for i in range(3):
        r = res.get(i)
        expect(isinstance(r, Response), "client %d: %r" % (i, r))
        expect_body(r, body, "client %d" % i)
    nreq(o, 1, "origin requests for 3 collapsed clients")
    ncoll = sum(1 for i in range(3) if cs(res[i]).endswith("collapsed"))
    expect(ncoll >= 1, "no client was a collapsed follower: %r" % [cs(res[i]) for i in range(3)])
    # the object outgrew the limit: nothing may be stored
    r = get(sl.port, o.url("/big"), timeout=20)
    expect_body(r, body, "the next request")
    expect(not cs(r).startswith("sluice; hit"), "the next request is a hit: %r" % cs(r), r)
    nreq(o, 2, "origin requests after the next request")


# ---------------------------------------------------------------------------
# g5: HEAD of a stale entry

@case("g5 HEAD of a stale entry (must-revalidate, no-cache, request no-cache) is forwarded")
def _():
    n = {"v": 0}

    def fn(req, conn):
        n["v"] += 1
        h = [("ETag", '"v%d"' % n["v"]), ("X-Version", str(n["v"]))]
        if req.target == "/mr":
            h += [("Cache-Control", "max-age=1, must-revalidate")]
        elif req.target == "/nc":
            h += [("Cache-Control", "no-cache")]
        else:
            h += [("Cache-Control", "max-age=100")]
        return response(200, b"v%d" % n["v"], h)
    o = new_origin(serve(fn))
    port = S["sl"].port
    r = get(port, o.url("/mr"))
    r = get(port, o.url("/nc"))
    r = get(port, o.url("/fresh"))
    nreq(o, 3, "origin requests for the fills")
    time.sleep(2.2)     # /mr stale; /nc stale by no-cache; /fresh fresh
    for path, hdrs in (("/mr", []), ("/nc", []), ("/fresh", [("Cache-Control", "no-cache")])):
        before = o.nreq
        r = get(port, o.url(path), method="HEAD", headers=hdrs)
        expect_eq(r.status, 200, path + " HEAD status", r)
        # answered from the stale entry, it would carry the fill's version
        nreq(o, before + 1, path + ": origin requests after the HEAD")
        q = o.requests[-1]
        expect_eq((q.method, q.target), ("HEAD", path), path + ": what the origin saw")
        expect_eq(r.header("X-Version"), str(before + 1), path + " HEAD X-Version", r)
        expect_eq(r.body, b"", path + " HEAD body", r)
    # /fresh was fresh: a plain HEAD is still a hit, the origin not asked
    before = o.nreq
    r = get(port, o.url("/fresh"), method="HEAD")
    expect_eq(r.status, 200, "/fresh plain HEAD status", r)
    nreq(o, before, "origin requests after a plain HEAD of a fresh entry")


# ---------------------------------------------------------------------------
# g6 / g7: collapsed transfers slower than timeouts.idle

SLOW_N = 40
SLOW_BODY = lines(SLOW_N * 1000)    # 320000 bytes in 40 pieces, 0.1 s apart


def slow_origin(done=None):
    """An origin sending SLOW_BODY over ~4 s, always moving; done is set
    after the last byte of each response."""
    def handler(conn):
        while True:
            req = conn.read_request(timeout=30)
            if req is None:
                return
            conn.send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=100\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(SLOW_BODY))
            step = len(SLOW_BODY) // SLOW_N
            for i in range(SLOW_N):
                conn.send(SLOW_BODY[i * step:(i + 1) * step])
                time.sleep(0.1)
            if done:
                done.set()
    return new_origin(handler)


def rst(c):
    """Close a client connection with a RST (SO_LINGER 0)."""
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()


def slow_collapse(leader_resets):
    o = slow_origin()
    sl = Sluice(workers=1, conf={"timeouts": {"idle": 2}})
    lead = Client(sl.port, timeout=20)
    on_exit(lead.close)
    lead.send(build("GET", o.url("/slow")))
    expect(o.wait_requests(1, timeout=5), "the leader's request did not reach the origin", o.summary())
    time.sleep(0.3)
    res = {}

    def follower():
        res["f"] = get(sl.port, o.url("/slow"), timeout=20)
    t = threading.Thread(target=follower)
    t.start()
    r_lead = None
    if leader_resets:
        time.sleep(0.3)
        rst(lead)
    else:
        r_lead = lead.read_response(timeout=20)
    t.join(25)
    f = res.get("f")
    expect(f is not None, "the follower got no response")
    expect_body(f, SLOW_BODY, "follower")
    expect(cs(f).endswith("collapsed"), "follower not collapsed: %r" % cs(f), f)
    if r_lead is not None:
        expect_body(r_lead, SLOW_BODY, "leader")
    nreq(o, 1, "origin requests")
    # the fill completed: the next request is a hit with the whole body
    r = get(sl.port, o.url("/slow"))
    expect_body(r, SLOW_BODY, "after the transfer")
    expect(cs(r).startswith("sluice; hit"), "after the transfer not a hit: %r" % cs(r), r)
    nreq(o, 1, "origin requests after the hit")


@case("g6 collapsed transfer of 4 s with timeouts.idle 2: leader and follower get everything")
def _():
    slow_collapse(leader_resets=False)


@case("g6 collapsed transfer of 4 s with timeouts.idle 2, leader's client resets: the follower gets everything")
def _():
    slow_collapse(leader_resets=True)


@case("g7 a fill whose leader's client resets completes and is stored: next request a hit, 1 origin request")
def _():
    done = threading.Event()
    o = slow_origin(done)
    sl = Sluice(workers=1, conf={"timeouts": {"idle": 2}})
    lead = Client(sl.port)
    on_exit(lead.close)
    lead.send(build("GET", o.url("/slow2")))
    expect(o.wait_requests(1, timeout=5), "the leader's request did not reach the origin", o.summary())
    time.sleep(0.5)
    rst(lead)
    expect(done.wait(15), "the origin did not finish sending")
    time.sleep(0.5)     # the proxy reads the last piece and publishes
    r = get(sl.port, o.url("/slow2"), timeout=20)
    expect_body(r, SLOW_BODY, "after the leader left")
    expect(cs(r).startswith("sluice; hit"), "not a hit after the leader left: %r" % cs(r), r)
    nreq(o, 1, "origin requests")


# ---------------------------------------------------------------------------
# g8: a cached 204

@case("g8 a cached 204 has no Content-Length (miss, hit, Range) and keep-alive framing holds")
def _():
    o = new_origin(serve(lambda req, c: b"HTTP/1.1 204 No Content\r\nCache-Control: max-age=100\r\n\r\n"))
    plain = new_origin(serve(lambda req, c: response(200, b"after", [("Cache-Control", "no-store")])))
    port = S["sl"].port
    c = Client(port)
    on_exit(c.close)
    for what, hdrs in (("miss", []), ("hit", []),
                       ("Range", [("Range", "bytes=0-18446744073709551615")])):
        c.send(build("GET", o.url("/nc"), hdrs))
        r = c.read_response()
        expect_eq(r.status, 204, what + " status", r)
        expect_eq(r.header_all("Content-Length"), [], what + " Content-Length fields", r.raw_head)
        expect_eq(r.header_all("Transfer-Encoding"), [], what + " Transfer-Encoding fields", r.raw_head)
        if what == "hit":
            expect(cs(r).startswith("sluice; hit"), "second 204 not a hit: %r" % cs(r), r)
        # a 204 has no body: the next response on the connection starts
        # right after the head
        c.send(build("GET", plain.url("/after")))
        r2 = c.read_response()
        expect_body(r2, b"after", what + ": the next response")
    nreq(o, 1, "origin requests for the 204")


# ---- the second review ---------------------------------------------------------

def gauges(sl):
    return admin_stats(sl)["cache"]


@case("r2-1 only-if-cached on a hit-for-pass URL: 504, the origin is not asked")
def _():
    o = new_origin(serve(lambda req, c: response(200, b"p", headers=[("Cache-Control", "private")])))
    get(S["sl"].port, o.url("/oic"))
    n0 = o.nreq
    r = get(S["sl"].port, o.url("/oic"), headers=[("Cache-Control", "only-if-cached")])
    expect_eq(r.status, 504, "status", r)
    expect_eq(o.nreq, n0, "origin requests during the only-if-cached request")


@case("r2-2 an oversize fill with a follower never evicts stored objects")
def _():
    sl = admin_sluice({"cache": {"size": "32M", "max_object_size": "256K"}}, workers=1)
    small = new_origin(serve(lambda req, c: response(200, b"s" * 100000 + req.target.encode(),
                                                        headers=[("Cache-Control", "max-age=600")])))
    for i in range(60):
        get(sl.port, small.url("/s%d" % i))
    g0 = gauges(sl)
    expect_eq(g0["objects"], 60, "stored small objects")
    chunk = b"b" * 65536
    total = 40 << 20

    def big(conn):
        req = conn.read_request()
        if req is None:
            return
        conn.send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(total // len(chunk)):
                conn.sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            conn.sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass
    o = new_origin(big)
    res = []
    ts = [threading.Thread(target=lambda: res.append(get(sl.port, o.url("/big"), timeout=60)))
          for _ in range(2)]
    for t in ts:
        t.start()
        time.sleep(0.05)
    for t in ts:
        t.join()
    for r in res:
        expect_eq(r.status, 200, "status", r)
        expect(set(r.body) <= {ord("b")}, "body bytes")
        expect(r.complete or r.eof, "neither complete nor visibly cut", r)
    g = gauges(sl)
    expect_eq(g["evictions"], 0, "evictions caused by an object that is never stored", g)
    hits = sum(1 for i in range(60)
               if "HIT" in get(sl.port, small.url("/s%d" % i)).header("X-Cache", ""))
    expect_eq(hits, 60, "small objects still hits")
    expect(poll(lambda: gauges(sl)["refs"] == 0, timeout=5), "refs did not return to 0")
    sl.stop()


@case("r2-3 a POST or PURGE during a refresh is not undone by the refresh")
def _():
    for mode in ("POST", "PURGE"):
        st = {"ver": 1}

        def handler(conn, st=st):
            while True:
                req = conn.read_request(timeout=30)
                if req is None:
                    return
                if req.method == "POST":
                    st["ver"] = 3
                    conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nupdated")
                    continue
                v = st["ver"]
                b = b"version-%d" % v
                if v == 1:
                    conn.send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=1\r\nContent-Length: %d\r\n\r\n"
                              % len(b) + b)
                    st["ver"] = 2
                    continue
                conn.send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=100\r\nContent-Length: %d\r\n\r\n"
                          % len(b))
                time.sleep(1.0)       # the refresh's body is slow
                conn.send(b)
        o = new_origin(handler)
        url = o.url("/doc-" + mode)
        get(S["sl"].port, url)
        time.sleep(1.3)
        res = {}
        t = threading.Thread(target=lambda: res.update(a=get(S["sl"].port, url, timeout=10)))
        t.start()
        time.sleep(0.4)
        if mode == "POST":
            r = get(S["sl"].port, url, method="POST", body=b"x")
        else:
            r = request(S["sl"].port, b"PURGE " + url.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            st["ver"] = 3
        expect_eq(r.status, 200, mode + " status", r)
        t.join()
        expect_eq(res["a"].body, b"version-2", "the refreshing client's body")
        r = get(S["sl"].port, url)
        expect_eq(r.body, b"version-3", "GET after the " + mode, r)


main(setup=setup)
