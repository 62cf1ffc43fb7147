#!/usr/bin/env python3
"""
t_security.py - the security properties of HOSTILE.md section 5 and
case 55: no open proxy (ACL on the socket peer, never on X-Forwarded-
For), SSRF protection checked on the resolved address for every numeric
spelling of loopback and for a DNS name, loop protection (own address,
Via), credentials never reflected in error pages, URLs HTML-escaped,
percent-encoded CR/LF kept encoded.
"""
from harness import *
from origin import *

S = {}
BLOCKED = ["127.0.0.0/8", "::1/128", "0.0.0.0/8", "::ffff:127.0.0.0/104", "169.254.0.0/16"]
T = []


# -- clients ACL --------------------------------------------------------------
def acl_case(forged):
    def fn():
        o, sl = S["o"], S["acl"]
        o.clear()
        hdrs = [("X-Forwarded-For", "127.0.0.1")] if forged else []
        r = request(sl.port, build("GET", o.url("/acl"), hdrs), bind="127.0.0.2")
        expect_error_page(r, (403,))
        expect_eq(o.received(), b"", "origin received")
        ok = request(sl.port, build("GET", o.url("/acl-ok")), bind="127.0.0.1")
        expect_eq(ok.status, 200, "allowed client")
    return fn


T.append(("client outside clients -> 403", acl_case(False)))
T.append(("client outside clients with forged X-Forwarded-For -> 403", acl_case(True)))


def acl_curl():
    rc, code, body, err = curl(S["acl"].port, S["o"].url("/c"), bind="127.0.0.2")
    expect_eq(code, 403, "curl --interface 127.0.0.2", err)


T.append(("curl --interface 127.0.0.2 -> 403", acl_curl))


# -- SSRF ------------------------------------------------------------------------
def ssrf(host, statuses):
    def fn():
        o, sl = S["o"], S["ssrf"]
        o.clear()
        url = "http://%s:%d/ssrf" % (host, o.port)
        r = request(sl.port, build("GET", url))
        expect_error_page(r, statuses, close=False)
        o.wait_requests(1, 0.1)
        expect_eq(o.received(), b"", "origin received (forwarded to a blocked destination)")
    return fn


for h in ("127.0.0.1", "0.0.0.0", "[::1]", "[::ffff:127.0.0.1]", "127.0.0.2"):
    T.append(("blocked destination %s -> 403" % h, ssrf(h, (403,))))
for h in ("127.1", "0x7f.1", "2130706433", "0177.0.0.1", "017700000001", "0x7f000001", "localhost"):
    T.append(("blocked destination %s not forwarded" % h, ssrf(h, (400, 403, 502))))


def ssrf_dns():
    o, sl = S["o"], S["ssrf"]
    if not S.get("dns"):
        raise Skip("no fake DNS")
    o.clear()
    r = request(sl.port, build("GET", "http://loop.test:%d/x" % o.port))
    expect_error_page(r, (403,), close=False)
    expect_eq(o.received(), b"", "origin received")


T.append(("name resolving to 127.0.0.1 (fake DNS) -> 403", ssrf_dns))


def connect_blocked(target):
    def fn():
        r = request(S["ssrf"].port, b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target))
        expect_error_page(r, (403,), close=False)
    return fn


for tgt in (b"127.0.0.1:443", b"[::1]:443", b"169.254.169.254:443"):
    T.append(("#55 CONNECT %s -> 403" % tgt.decode(), connect_blocked(tgt)))


def own_address():
    sl = S["sl"]
    t0 = time.monotonic()
    r = request(sl.port, build("GET", "http://127.0.0.1:%d/loop" % sl.port))
    expect_in(r.status, (403, 508), "status")
    expect(time.monotonic() - t0 < 5, "took %.1fs (recursion?)" % (time.monotonic() - t0))
    still_serving(sl, S["o"])


T.append(("request to the proxy's own address:port -> 403/508, no recursion", own_address))


def via_loop():
    o, sl = S["o"], S["sl"]
    o.clear()
    r = request(sl.port, build("GET", o.url("/v"), [("Via", "1.1 other, 1.1 sluice-test (sluice)")]))
    expect_error_page(r, (508,), close=False)
    expect_eq(o.received(), b"", "origin received")


T.append(("Via naming sluice-test -> 508", via_loop))


def no_credentials():
    sl = S["sl"]
    p = free_port()
    r = request(sl.port, build("GET", "http://127.0.0.1:%d/x" % p,
                               [("Authorization", "Bearer SECRETTOKEN42"), ("Cookie", "c=COOKIEVAL42"),
                                ("Proxy-Authorization", "Basic UFJPWFlTRUNSRVQ=")]))
    expect_eq(r.status, 502, "status")
    for s in (b"SECRETTOKEN42", b"COOKIEVAL42", b"UFJPWFlTRUNSRVQ"):
        expect(s not in r.raw, "%s reflected in the error answer" % s, r.raw)


T.append(("#39 error page never contains Authorization/Cookie values", no_credentials))


def escaped():
    sl = S["sl"]
    p = free_port()
    r = request(sl.port, b"GET http://127.0.0.1:%d/<script>alert(1)</script> HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                % (p, p))
    expect(r.status in (400, 502), "status %r" % r.status)
    expect(b"<script>" not in r.body, "unescaped <script> in the page", r.body)
    if r.status == 502:
        expect(b"&lt;script&gt;" in r.body, "URL not shown escaped", r.body)


T.append(("error page HTML-escapes the URL", escaped))


def crlf_encoded():
    o, sl = S["o"], S["sl"]
    o.clear()
    r = get(sl.port, o.url("/a%0d%0aX-Injected:%20y"))
    expect_eq(r.status, 200, "status")
    expect(o.wait_requests(1), "not forwarded")
    q = o.requests[0]
    expect_eq(q.target, "/a%0d%0aX-Injected:%20y", "target")
    expect(not q.has("X-Injected"), "header injected", q.headers)


T.append(("percent-encoded CR/LF stays encoded", crlf_encoded))


def setup():
    S["o"] = new_origin()
    S["sl"] = Sluice()
    S["acl"] = Sluice({"clients": ["127.0.0.1/32"]})
    dns = None
    try:
        dns = fakedns({"loop.test": "A:127.0.0.1"})
    except Exception:
        dns = None
    S["dns"] = dns
    S["ssrf"] = Sluice({"blocked_destinations": BLOCKED}, dns_port=dns.port if dns else None)


main(T, setup=setup)
