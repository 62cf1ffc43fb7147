#!/usr/bin/env python3
"""
t_admin.py - the admin (stats) listener and `sluice -s stats`.

One sluice with `admin { address = "127.0.0.1"; port = P; }` and one
origin.  The cases check what an operator and a scraper rely on: /stats
is JSON whose `requests` total moves by exactly the number of proxied
requests; /metrics is Prometheus text whose samples equal the JSON
totals; HEAD, 404, 405, 400 and the 5 s head timeout; the admin port is
not a proxy (an absolute-form request there is never forwarded, and a
request reaching it through the proxy is refused); `sluice -s stats`
prints the same document and fails clearly without an admin section or
a listener; the listener survives a HUP reload on the same port; a
wildcard admin address is refused at start.

Assumptions: loopback only; the admin requests themselves move no
counter, so with no proxy traffic in between two documents agree.
"""
import json
import os
import re
import signal
import socket
import time
from harness import *
from origin import *

S = {}


def setup():
    S["o"] = Origin()
    S["sl"] = admin_sluice()


def admin(raw, timeout=10):
    """Send raw bytes to the admin port; the response, after checking
    the framing every admin answer has (Connection: close, exact
    Content-Length, the connection closed)."""
    r = request(S["sl"].admin_port, raw, timeout=timeout, close_wait=3)
    expect(r.status is not None, "no answer from the admin listener", r, S["sl"].diag())
    expect(r.conn_close(), "no Connection: close", r)
    expect(r.closed, "admin connection not closed after the answer", r)
    return r


def stats():
    r = admin(b"GET /stats HTTP/1.1\r\nHost: a\r\n\r\n")
    expect_eq(r.status, 200, "GET /stats status", r)
    expect_eq(r.header("Content-Type"), "application/json", "Content-Type")
    expect_eq(int(r.header("Content-Length")), len(r.body), "Content-Length")
    return json.loads(r.body.decode("ascii"))


def metrics():
    r = admin(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
    expect_eq(r.status, 200, "GET /metrics status", r)
    expect((r.header("Content-Type") or "").startswith("text/plain; version=0.0.4"),
           "Content-Type %r" % r.header("Content-Type"))
    expect_eq(int(r.header("Content-Length")), len(r.body), "Content-Length")
    return r.body.decode("ascii")


SAMPLE = re.compile(r"^([a-z_][a-z0-9_]*) ([0-9]+)$")


def parse_metrics(text):
    """{name: (type, value)}; fails on any line outside the grammar."""
    out, helps, types = {}, set(), {}
    expect(text.endswith("\n"), "metrics do not end in a newline")
    for ln in text[:-1].split("\n"):
        if ln.startswith("# HELP "):
            name, _, txt = ln[7:].partition(" ")
            expect(txt, "HELP without text: %r" % ln)
            helps.add(name)
        elif ln.startswith("# TYPE "):
            name, _, typ = ln[7:].partition(" ")
            expect_in(typ, ("counter", "gauge"), "TYPE of " + name)
            expect(name in helps, "TYPE before HELP for " + name)
            types[name] = typ
        else:
            m = SAMPLE.match(ln)
            expect(m, "not a sample line: %r" % ln)
            name = m.group(1)
            expect(name in types, "sample without TYPE: " + name)
            expect(name not in out, "duplicate sample: " + name)
            if types[name] == "counter":
                expect(name.endswith("_total"), "counter without _total: " + name)
            out[name] = (types[name], int(m.group(2)))
    return out


@case("/stats is JSON; `requests` moves by exactly the proxied requests")
def stats_counts():
    sl, o = S["sl"], S["o"]
    before = stats()
    n = 5
    for i in range(n):
        r = get(sl.port, o.url("/count/%d" % i), headers=[("Connection", "close")])
        expect_eq(r.status, 200, "proxied request %d" % i, r)
    # The worker counts before it answers: by now every request is in.
    after = stats()
    expect_eq(after["totals"]["requests"] - before["totals"]["requests"], n,
              "requests moved by", after["totals"])
    expect(after["totals"]["connections"] - before["totals"]["connections"] >= n,
           "connections did not move", after["totals"])
    # Once the proxied connections are done (a response is counted just
    # after its last byte is written, and closed connections linger), the
    # admin requests move nothing.
    expect(poll(lambda: stats()["totals"]["active_connections"] == 0, timeout=10),
           "active_connections did not return to 0")
    after = stats()
    expect_eq(after["totals"]["responses"] - before["totals"]["responses"], n,
              "responses moved by", after["totals"])
    again = stats()
    expect_eq(again["totals"], after["totals"], "totals after two admin requests")


@case("/stats lists the live workers and the master")
def stats_workers():
    sl = S["sl"]
    d = stats()
    expect_eq(d["version"], run_sluice(["-V"])[1].split()[1], "version")
    expect_eq(d["pid_master"], sl.pid, "pid_master")
    pids = sorted(w["pid"] for w in d["workers"])
    expect_eq(pids, sorted(sl.worker_pids()), "worker pids")
    expect_eq(d["totals"]["workers"], len(pids), "totals.workers")
    slots = [w["slot"] for w in d["workers"]]
    expect_eq(len(set(slots)), len(slots), "distinct slots")
    # Nothing ever died in this instance: the listed slots sum to the totals.
    for k, v in d["totals"].items():
        if k != "workers":
            expect_eq(sum(w[k] for w in d["workers"]), v, "sum of workers' " + k)
    if "cache" in d:
        for k in ("size", "blocks_total", "blocks_used", "objects", "evictions"):
            expect(isinstance(d["cache"].get(k), int), "cache." + k, d["cache"])


@case("/metrics parses and equals the JSON totals")
def metrics_match():
    sl, o = S["sl"], S["o"]
    get(sl.port, o.url("/m"), headers=[("Connection", "close")])
    # the closed connection lingers briefly: wait until the gauge settles
    expect(poll(lambda: stats()["totals"]["active_connections"] == 0, timeout=10),
           "active_connections did not return to 0")
    d = stats()
    m = parse_metrics(metrics())
    d2 = stats()
    expect_eq(d2["totals"], d["totals"], "no traffic between the documents")
    for k, v in d["totals"].items():
        if k == "workers":
            expect_eq(m["sluice_workers"], ("gauge", v), "sluice_workers")
        elif k == "active_connections":
            expect_eq(m["sluice_active_connections"], ("gauge", v), k)
        else:
            expect_eq(m.get("sluice_%s_total" % k), ("counter", v), k)
    for k, v in d.get("cache", {}).items():
        name = "sluice_cache_" + k
        got = m.get(name) or m.get(name + "_total")
        expect(got is not None and got[1] == v, "cache %s: %r vs %r" % (k, got, v))
    for k, v in d["memcached"].items():
        expect_eq(m.get("sluice_memcached_" + k), ("gauge", v), "memcached " + k)
    expect_eq(m["sluice_requests_total"][1] > 0, True, "requests counted")


@case("HEAD /stats and HEAD /metrics: the GET head, no body")
def head():
    for path in (b"/stats", b"/metrics"):
        g = admin(b"GET " + path + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        c = Client(S["sl"].admin_port)
        try:
            c.send(b"HEAD " + path + b" HTTP/1.1\r\nHost: a\r\n\r\n")
            r = c.read_response(method="HEAD")
            expect_eq(r.status, 200, "HEAD status", r)
            expect_eq(r.header("Content-Type"), g.header("Content-Type"), "Content-Type")
            # Sizes of two snapshots: equal while nothing moves.
            expect_eq(r.header("Content-Length"), g.header("Content-Length"),
                      "Content-Length")
            expect(c.wait_closed(3), "not closed after HEAD")
            expect_eq(c.extra, b"", "bytes after a HEAD answer")
        finally:
            c.close()


@case("other paths 404, other methods 405 with Allow, malformed 400")
def errors():
    for path in (b"/", b"/stats/", b"/statsx", b"/metric", b"/STATS", b"/x/stats"):
        r = admin(b"GET " + path + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        expect_eq(r.status, 404, "GET " + path.decode(), r)
        expect_eq(int(r.header("Content-Length")), len(r.body), "Content-Length", r)
    r = admin(b"GET /stats?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
    expect_eq(r.status, 200, "a query string is ignored", r)
    for m in (b"POST", b"PUT", b"DELETE", b"OPTIONS", b"TRACE", b"BREW"):
        body = b"Content-Length: 3\r\n\r\nabc" if m in (b"POST", b"PUT") else b"\r\n"
        r = admin(m + b" /stats HTTP/1.1\r\nHost: a\r\n" + body)
        expect_eq(r.status, 405, m.decode(), r)
        expect_eq(r.header("Allow"), "GET, HEAD", "Allow", r)
    for raw in (b"GET /stats HTTP/1.1\r\n\r\n",            # no Host
                b"GET  /stats HTTP/1.1\r\nHost: a\r\n\r\n",
                b"GET /stats http/1.1\r\nHost: a\r\n\r\n",
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
                b"GET /stats HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n"):
        r = admin(raw)
        expect_eq(r.status, 400, repr(raw), r)


@case("a head over 4 KiB gets 431; an unfinished one 408 after 5 s")
def limits():
    r = admin(b"GET /stats HTTP/1.1\r\nHost: a\r\nX-Big: " + b"x" * 5000 + b"\r\n\r\n")
    expect_in(r.status, (431,), "oversize head", r)
    c = Client(S["sl"].admin_port, timeout=10)
    try:
        c.send(b"GET /stats HTTP/1.1\r\nHost: a\r\n")
        t0 = time.monotonic()
        r = c.read_response(timeout=9)
        took = time.monotonic() - t0
        expect_eq(r.status, 408, "status after the timeout", r)
        expect(4.0 <= took <= 8.0, "answered after %.1f s, want about 5" % took)
        expect(c.wait_closed(3), "not closed after 408")
    finally:
        c.close()


@case("the admin port is not a proxy: absolute-form and CONNECT are never forwarded")
def not_a_proxy():
    o = S["o"]
    before = o.nconns
    r = admin(build("GET", o.url("/via-admin")))
    expect_in(r.status, (400, 404), "absolute-form GET on the admin port", r)
    r = admin(build("GET", "http://127.0.0.1:%d/stats" % S["sl"].admin_port))
    expect_in(r.status, (400, 404), "absolute-form GET of /stats itself", r)
    r = admin(b"CONNECT " + o.hostport.encode() + b" HTTP/1.1\r\nHost: " +
              o.hostport.encode() + b"\r\n\r\n")
    expect_in(r.status, (400, 405), "CONNECT on the admin port", r)
    expect_eq(o.nconns, before, "origin connections opened via the admin port")


@case("the stats are not served through the proxy listener")
def not_through_proxy():
    sl = S["sl"]
    # blocked_destinations is [] in these tests, so only the admin
    # side's check (Via) stands between the proxy and the stats here.
    r = get(sl.port, "http://127.0.0.1:%d/stats" % sl.admin_port,
            headers=[("Connection", "close")])
    expect_in(r.status, (403,), "GET of the admin URL through the proxy", r)
    expect(b"totals" not in r.body, "stats leaked through the proxy", r)


@case("`sluice -s stats` prints the /stats document")
def cli_stats():
    sl = S["sl"]
    rc, out = run_sluice(["-f", sl.conf_path, "-s", "stats"])
    expect_eq(rc, 0, "exit code", out)
    d = json.loads(out)
    expect_eq(d, stats(), "-s stats vs GET /stats")


@case("`sluice -s stats` without an admin section: exit 1, says what to add")
def cli_no_admin():
    sl = S["sl"]
    path = os.path.join(sl.tmp, "noadmin.conf")
    sl.write_config(path=path)
    with open(path) as f:
        text = f.read()
    text = re.sub(r"admin = \{[^}]*\};\n", "", text)
    expect("admin" not in text, "admin section still in the config", text)
    with open(path, "w") as f:
        f.write(text)
    rc, out = run_sluice(["-f", path, "-s", "stats"])
    expect_eq(rc, 1, "exit code", out)
    expect_eq(out.strip(), "sluice: -s stats needs an admin listener (admin { address = ...;"
              " port = ...; }) in " + path, "message")


@case("`sluice -s stats` with nothing listening: exit 1, names the address")
def cli_refused():
    sl = S["sl"]
    port = free_port()
    path = os.path.join(sl.tmp, "dead.conf")
    with open(path, "w") as f:
        f.write(re.sub(r"port = %d;" % sl.admin_port, "port = %d;" % port,
                       open(sl.conf_path).read()))
    rc, out = run_sluice(["-f", path, "-s", "stats"], timeout=10)
    expect_eq(rc, 1, "exit code", out)
    expect("127.0.0.1:%d" % port in out, "address not named", out)
    expect_eq(out.count("\n"), 1, "one line", out)


@case("the admin listener survives a HUP reload on the same port")
def reload_keeps_admin():
    sl, o = S["sl"], S["o"]
    before = stats()
    old = sorted(w["pid"] for w in before["workers"])
    sl.reload()
    new = poll(lambda: (lambda p: p if p and not set(p) & set(old) else None)(
        sorted(w["pid"] for w in stats()["workers"])), timeout=10)
    expect(new, "workers not replaced after HUP", stats(), sl.diag())
    expect_eq(len(new), sl.workers, "new generation size")
    d = stats()
    # The old generation's slots keep their counts.
    expect(d["totals"]["requests"] >= before["totals"]["requests"],
           "totals went back after reload", d["totals"], before["totals"])
    r = get(sl.port, o.url("/after-reload"), headers=[("Connection", "close")])
    expect_eq(r.status, 200, "proxy after reload", r)
    expect_eq(stats()["totals"]["requests"], d["totals"]["requests"] + 1,
              "counting after reload")
    # Reused, not closed and bound again (the master logs each bind).
    expect_eq(sl.stderr_text().count("listening on 127.0.0.1:%d (admin)" % sl.admin_port),
              1, "admin binds", sl.diag())


@case("a wildcard admin address is refused at start")
def wildcard_refused():
    sl = Sluice(conf={"admin": {"address": "0.0.0.0", "port": free_port()}}, start=False)
    try:
        sl.start(timeout=5)
    except StartError as e:
        expect("wildcard" in str(e), "refused for another reason", str(e))
        return
    sl.stop()
    raise Fail("sluice started with admin on 0.0.0.0")


if __name__ == "__main__":
    main(setup=setup)
