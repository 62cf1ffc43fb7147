#!/usr/bin/env python3
"""
t_accesslog.py - the access log: one line per request, Squid native
format (TCP_MISS, TCP_DENIED, TCP_TUNNEL, NONE/400) and combined
format, and log injection (control bytes, '"' and '\\' escaped as \\xHH,
never a second line).
"""
import re
from harness import *
from origin import *

S = {}
T = []

SQUID = re.compile(r"^(\d+)\.(\d{3}) +(\d+) (\S+) ([A-Z_]+)/(\d{3}) (\d+) (\S+) (\S+) (\S+) ([A-Z_]+)/(\S+) (\S+)$")
COMBINED = re.compile(r'^(\S+) (\S+) (\S+) \[(\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] '
                      r'"([^"]*)" (\d{3}) (\d+|-) "([^"]*)" "([^"]*)"$')


def new_lines(sl, before, n=1):
    lines = sl.wait_log_lines(before + n)
    return [ln.decode("latin-1") for ln in lines[before:]]


def squid_line(req_fn, want_code, want_status, want_method, want_url):
    def fn():
        sl = S["sq"]
        before = len(sl.access_log_lines())
        url = req_fn()
        lines = new_lines(sl, before)
        expect_eq(len(lines), 1, "new log lines", lines)
        m = SQUID.match(lines[0])
        expect(m, "not Squid native format: %r" % lines[0])
        expect(abs(int(m.group(1)) - time.time()) < 60, "timestamp %s" % m.group(1))
        expect_eq(m.group(4), "127.0.0.1", "client")
        expect_eq((m.group(5), m.group(6)), (want_code, want_status), "code/status")
        expect(int(m.group(7)) > 0, "bytes %s" % m.group(7))
        expect_eq(m.group(8), want_method, "method")
        expect_eq(m.group(9), want_url or url, "URL")
        expect_eq(m.group(10), "-", "ident")
    return fn


def miss():
    r = get(S["sq"].port, S["o"].url("/logged?q=1"))
    expect_eq(r.status, 200, "status")
    return S["o"].url("/logged?q=1")


T.append(("squid: TCP_MISS/200 line", squid_line(miss, "TCP_MISS", "200", "GET", None)))


def miss_hier():
    sl = S["sq"]
    before = len(sl.access_log_lines())
    get(sl.port, S["o"].url("/hier"))
    ln = new_lines(sl, before)[0]
    m = SQUID.match(ln)
    expect(m, "format %r" % ln)
    expect_eq(m.group(11), "HIER_DIRECT", "hierarchy code")
    expect_eq(m.group(12), "127.0.0.1", "peer")


T.append(("squid: HIER_DIRECT/peer for a forwarded request", miss_hier))


def bad():
    request(S["sq"].port, b"GET http://x/ HTTP/1.1\r\nHost: x\r\nBad Field\r\n\r\n")
    return None


def bad_case():
    sl = S["sq"]
    before = len(sl.access_log_lines())
    bad()
    lines = new_lines(sl, before)
    expect_eq(len(lines), 1, "lines", lines)
    m = SQUID.match(lines[0])
    expect(m, "format %r" % lines[0])
    expect_eq((m.group(5), m.group(6)), ("NONE", "400"), "code/status")


T.append(("squid: NONE/400 for a malformed request", bad_case))


def denied():
    request(S["sq"].port, b"CONNECT 127.0.0.1:25 HTTP/1.1\r\nHost: 127.0.0.1:25\r\n\r\n")
    return "127.0.0.1:25"


T.append(("squid: TCP_DENIED/403 for a refused CONNECT", squid_line(denied, "TCP_DENIED", "403", "CONNECT",
                                                                     "127.0.0.1:25")))


def tunnel():
    e = S["echo"]
    c = Client(S["sq"].port)
    c.send(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (e.port, e.port))
    r = c.read_response(method="CONNECT")
    expect_eq(r.status, 200, "CONNECT")
    c.send(b"ping")
    expect_eq(c.recv_some(4, 5), b"ping", "echo")
    c.close()
    return "127.0.0.1:%d" % e.port


T.append(("squid: TCP_TUNNEL/200 for a tunnel", squid_line(tunnel, "TCP_TUNNEL", "200", "CONNECT", None)))


def one_line_per_request():
    sl = S["sq"]
    before = len(sl.access_log_lines())
    c = Client(sl.port)
    for i in range(5):
        c.send(build("GET", S["o"].url("/n%d" % i)))
        c.read_response()
    c.close()
    lines = new_lines(sl, before, 5)
    expect_eq(len(lines), 5, "lines for 5 keep-alive requests", lines)


T.append(("squid: one line per request on a keep-alive connection", one_line_per_request))


def combined():
    sl = S["co"]
    before = len(sl.access_log_lines())
    url = S["o"].url("/comb")
    r = get(sl.port, url, headers=[("Referer", "http://ref.test/"), ("User-Agent", "e2e-agent/1.0")])
    expect_eq(r.status, 200, "status")
    lines = new_lines(sl, before)
    expect_eq(len(lines), 1, "lines", lines)
    m = COMBINED.match(lines[0])
    expect(m, "not combined format: %r" % lines[0])
    expect_eq((m.group(1), m.group(2), m.group(3)), ("127.0.0.1", "-", "-"), "client, ident, user")
    expect_eq(m.group(5), "GET %s HTTP/1.1" % url, "request")
    expect_eq(m.group(6), "200", "status")
    expect_eq((m.group(8), m.group(9)), ("http://ref.test/", "e2e-agent/1.0"), "referer, agent")


T.append(("combined: line format", combined))


def injection():
    # ESC is a CTL, so a strict parser may refuse the request (400); either
    # way the request is logged as exactly one line with no raw control byte
    sl = S["co"]
    before = len(sl.access_log_lines())
    raw = build("GET", S["o"].url("/inj%0d%0aX"), [("User-Agent", b'a\x1b[31mred"q')])
    r = request(sl.port, raw)
    expect_in(r.status, (200, 400), "status")
    lines = sl.wait_log_lines(before + 1)
    poll(lambda: False, 0.1)
    lines = sl.access_log_lines()
    new = b"\n".join(lines[before:])
    expect_eq(len(lines) - before, 1, "lines for one request", new)
    expect(b"\x1b" not in new, "raw ESC in the log", new)
    if b"red" in new:
        expect(b"a\\x1b[31mred\\x22q" in new, "UA not escaped as \\xHH", new)
    if r.status == 200:
        expect(b"/inj%0d%0aX" in new, "URL changed", new)


def quote_escape():
    sl = S["co"]
    before = len(sl.access_log_lines())
    raw = build("GET", S["o"].url("/q%0d%0a"), [("User-Agent", b'a"q\\z\xe9'), ("Referer", b"r\\s")])
    r = request(sl.port, raw)
    expect_eq(r.status, 200, "status")
    lines = sl.wait_log_lines(before + 1)
    new = b"\n".join(lines[before:])
    expect_eq(len(lines) - before, 1, "lines", new)
    expect(b'a\\x22q\\x5cz\\xe9' in new, "UA '\"', '\\\\', 0xe9 not escaped as \\xHH", new)
    expect(b"r\\x5cs" in new, "Referer backslash not escaped", new)
    expect(b"/q%0d%0a" in new, "URL changed", new)
    expect(COMBINED.match(new.decode("latin-1")), "line no longer parses as combined", new)


T.append(("log injection: UA with ESC -> one line, no raw control byte", injection))
T.append(("log escaping: '\"', '\\\\' and 0xe9 in UA/Referer as \\xHH, one line", quote_escape))


def truncated():
    """An origin that promises 100 bytes, sends 10 and closes: the
    request still gets exactly one line, marked aborted, with the status
    the client saw and the bytes it got."""
    sl = S["sq"]
    before = len(sl.access_log_lines())
    c = Client(sl.port)
    c.send(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % S["short"].url("/cut")).encode())
    c.wait_closed()
    lines = new_lines(sl, before)
    expect_eq(len(lines), 1, "new log lines", lines)
    m = SQUID.match(lines[0])
    expect(m, "not Squid native format: %r" % lines[0])
    expect_eq((m.group(5), m.group(6)), ("TCP_MISS_ABORTED", "200"), "code/status")
    expect(int(m.group(7)) > 10, "bytes %s" % m.group(7))


T.append(("squid: TCP_MISS_ABORTED/200 for a response the origin cut short", truncated))


def setup():
    S["o"] = new_origin()
    S["short"] = new_origin(canned(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
                                   close=True))
    S["echo"] = new_origin(echo(30))
    S["sq"] = Sluice({"connect_ports": [S["echo"].port]})
    S["co"] = Sluice({"access_log": {"format": "combined"}})


main(T, setup=setup)
