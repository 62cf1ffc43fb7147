#!/usr/bin/env python3
"""
t_filter.py - the URL filter end to end (issue 4).

One sluice with groups (students 127.0.0.2, teachers 127.0.0.3, anyone
else on loopback), category folders built by bench/gen_lists.py plus
hand-written entries, and rules: students are denied adult, everyone
is denied gambling, a url_regex and a catastrophic pattern, the rest is
allowed.  Names resolve through the fake DNS server to 127.0.0.1, where
an origin counts what reaches it.  The cases check the bytes the
client got (status, block page, placeholders escaped), the bytes the
origin received (nothing, for a denial), the access log (TCP_DENIED
with rule= and category=), the counters, CONNECT on the host and on
the TLS server name (openssl s_client through the proxy), the evasion
matrix, a denied client never getting a cached object, sluice -T and
-t, a reload with a broken list (old lists keep serving) and a fixed
one (new lists apply), and that workers share the compiled lists.
"""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from harness import *
from origin import *

def accepts(host, port):
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False

S = {}
HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(HERE, "..", "..", "bench", "gen_lists.py")
STUDENT, TEACHER, OTHER = "127.0.0.2", "127.0.0.3", "127.0.0.1"
NAMES = ["adult.test", "www.adult.test", "casino.test", "ok.test", "good.test",
         "news.test", "xn--bcher-kva.test", "later.test"]


def write(path, text, mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(text)
    os.chmod(path, 0o644)


def build_lists(d, port):
    # generated bulk: 20,000 domains, 2,000 URLs, 200 expressions in 4 folders
    subprocess.run(["python3", GEN, d, "--domains", "20000", "--urls", "2000",
                    "--expressions", "200", "--categories", "4", "--seed", "7"],
                   check=True, stdout=subprocess.DEVNULL)
    write(os.path.join(d, "adult", "domains"),
          "\ufeff# adult sites\r\nadult.test\r\n\r\n127.9.9.9\r\nb\u00fccher.test\r\n")
    write(os.path.join(d, "adult", "urls"), "good.test:%d/bad/\n" % port)
    write(os.path.join(d, "adult", "expressions"), "(^|[-./])sexcam\n")
    write(os.path.join(d, "gambling", "domains"), ".casino.test\n")
    for root, dirs, files in os.walk(d):
        os.chmod(root, 0o755)


def make_conf(lists, page=None, extra_rules=()):
    rules = [
        {"name": "students-adult", "action": "deny", "when": ["students", "category:adult"]},
        {"name": "no-gambling", "action": "deny", "when": ["category:gambling"]},
        {"name": "no-exe", "action": "deny", "when": ["exe"]},
        {"name": "redos", "action": "deny", "when": ["evil"]},
    ] + list(extra_rules) + [
        {"name": "staff", "action": "allow", "when": ["teachers"]},
        {"name": "rest", "action": "allow", "when": ["loopback"]},
    ]
    f = {
        "lists": lists,
        "regex_match_limit": 20000,
        "acls": [
            {"name": "students", "src": [STUDENT + "/32"]},
            {"name": "teachers", "src": [TEACHER + "/32"]},
            {"name": "loopback", "src": ["127.0.0.0/8"]},
            {"name": "exe", "urlpath_regex": ["\\.exe$"]},
            {"name": "evil", "url_regex": ["/redos/(a+)+$"]},
        ],
        "rules": rules,
    }
    if page:
        f["block_page"] = page
    return {"filter": f, "connect_ports": [443, S["tls"].port, S["echo"].port],
            "limits": {"uri_size": "128K"}}


def echo(conn):
    deadline = time.monotonic() + 30
    while conn._recv_more(deadline):
        d, conn.buf = conn.buf, b""
        conn.send(d)
    conn.close()


def setup():
    S["o"] = new_origin()
    S["tls_dir"] = tempdir()
    S["tls"] = new_origin(tls_dir=S["tls_dir"])
    S["echo"] = new_origin(echo)
    S["dns"] = fakedns({n: "A:127.0.0.1" for n in NAMES})
    S["dir"] = tempdir()
    S["lists"] = os.path.join(S["dir"], "lists")
    build_lists(S["lists"], S["o"].port)
    S["page"] = os.path.join(S["dir"], "block.html")
    write(S["page"], "<html><body><h1>Blocked by %{host}</h1>\n<p id=u>%{url}</p>"
          "<p id=c>%{category}</p><p id=r>%{rule}</p><p id=a>%{client}</p>"
          "<p id=t>%{time}</p><p>100%% sure</p></body></html>\n")
    S["sl"] = admin_sluice(make_conf(S["lists"], S["page"]), dns_port=S["dns"].port)


def url(host, path="/"):
    return "http://%s:%d%s" % (host, S["o"].port, path)


def fetch(u, bind=OTHER, headers=(), method="GET"):
    return request(S["sl"].port, build(method, u, headers), bind=bind, close_wait=3)


def origin_paths():
    return [r.target for r in S["o"].requests] if hasattr(S["o"], "requests") else []


def origin_count():
    return len(S["o"].received())


def denied(r, rule, category=None):
    expect_eq(r.status, 403, "status", r)
    body = r.body.decode("utf-8", "replace")
    expect("id=r>%s<" % rule in body, "rule %s not on the block page" % rule, body[:600])
    if category:
        expect("id=c>%s<" % category in body, "category not on the page", body[:600])
    expect(r.conn_close(), "no Connection: close", r)
    expect_eq(r.header("Cache-Control"), "no-store", "Cache-Control")
    return body


def log_line_for(path_part, timeout=5):
    def find():
        for ln in S["sl"].access_log_lines():
            if isinstance(ln, bytes):
                ln = ln.decode("utf-8", "replace")
            if path_part in ln:
                return ln
        return None
    return poll(find, timeout)


@case("allowed request reaches the origin, a denied one does not; counters move by one each")
def allowed_basic():
    n0 = origin_count()
    c0 = admin_stats_filter()
    r = fetch(url("ok.test", "/allowed-1"))
    expect_eq(r.status, 200, "status", r)
    expect(b"GET /allowed-1" in S["o"].received()[n0:], "origin did not get it")
    r = fetch(url("casino.test", "/denied-1"))
    expect_eq(r.status, 403, "status", r)
    c1 = admin_stats_filter()
    expect_eq(c1["filter_allowed"] - c0["filter_allowed"], 1, "filter_allowed moved by")
    expect_eq(c1["filter_denied"] - c0["filter_denied"], 1, "filter_denied moved by")
    expect_eq(c1["denied"] - c0["denied"], 1, "denied moved by")


@case("student denied adult: 403 block page with URL, category, rule, client; origin untouched")
def student_denied():
    n0 = origin_count()
    u = url("www.adult.test", "/page?<script>alert(1)</script>")
    r = fetch(u.replace("<", "%3C").replace(">", "%3E"), bind=STUDENT)
    body = denied(r, "students-adult", "adult")
    expect("id=a>%s<" % STUDENT in body, "client not on the page", body)
    expect("Blocked by sluice-test" in body, "host placeholder", body)
    expect("100% sure" in body, "%% not rendered", body)
    expect(re.search(r"id=t>\d{4}-\d\d-\d\d \d\d:\d\d", body), "time placeholder", body)
    expect(origin_count() == n0, "the origin received a denied request")
    # a raw '<' cannot be sent (400), but the escaped form must not be decoded into HTML
    expect("<script>" not in body, "unescaped script in the page", body)
    ln = log_line_for("www.adult.test")
    expect(ln and "TCP_DENIED/403" in ln and "rule=students-adult" in ln and
           "category=adult" in ln, "access log line", ln)


@case("block page escapes what the request controls (quotes, ampersands, tags in the path)")
def page_escaping():
    r = fetch(url("adult.test", "/a\"b'c&d%3Cx%3E"), bind=STUDENT)
    body = denied(r, "students-adult", "adult")
    m = re.search(r"<p id=u>(.*?)</p>", body)
    expect(m, "no url paragraph", body)
    expect("&quot;" in m.group(1) and "&amp;" in m.group(1) and '"' not in m.group(1),
           "url not HTML-escaped", m.group(1))


@case("teacher and others get the same adult URL (rules per group)")
def teacher_allowed():
    r = fetch(url("adult.test", "/for-teacher"), bind=TEACHER)
    expect_eq(r.status, 200, "teacher", r)
    r = fetch(url("adult.test", "/for-other"), bind=OTHER)
    expect_eq(r.status, 200, "other", r)


@case("gambling denied for everyone, subdomains too; URL prefix entry; expression entry")
def categories():
    for u, rule, cat in ((url("casino.test"), "no-gambling", "gambling"),
                         (url("www.casino.test", "/x"), "no-gambling", "gambling"),
                         (url("good.test", "/bad/page"), "students-adult", "adult"),
                         (url("ok.test", "/free-sexcam-now"), "students-adult", "adult")):
        who = STUDENT if cat == "adult" else TEACHER
        denied(fetch(u, bind=who), rule, cat)
    # a URL-prefix entry stops at the path boundary
    expect_eq(fetch(url("good.test", "/badger"), bind=STUDENT).status, 200, "/badger")


@case("urlpath_regex ACL: .exe denied for everyone")
def exe():
    denied(fetch(url("ok.test", "/setup.exe"), bind=TEACHER), "no-exe")
    expect_eq(fetch(url("ok.test", "/setup.exe.txt"), bind=TEACHER).status, 200, "not .exe")


@case("evasion matrix: every spelling of a blocked URL is denied and never reaches an origin")
def evasion():
    p = S["o"].port
    ip = "127.9.9.9"
    dec = str((127 << 24) | (9 << 16) | (9 << 8) | 9)
    spellings = [
        "http://ADULT.TEST:%d/" % p,
        "http://AdUlT.tEsT:%d/" % p,
        "http://adult.test.:%d/" % p,
        "http://good.test@adult.test:%d/" % p,
        "http://good.test:%d@adult.test:%d/" % (p, p),
        "http://%s:%d/" % (ip, p),
        "http://%s:%d/" % (dec, p),
        "http://0x7f.0x9.0x9.0x9:%d/" % p,
        "http://0177.011.011.011:%d/" % p,
        "http://127.9.2313:%d/" % p,
        "http://0x7f090909:%d/" % p,
        "http://[::ffff:127.9.9.9]:%d/" % p,
        "http://xn--bcher-kva.test:%d/" % p,
        "http://ok.test:%d/free-%%73excam" % p,
        "http://ok.test:%d/x/%%2e%%2e/sexcam" % p,
        "http://ok.test:%d/x/../SEXCAM" % p,
        "http://ok.test:%d//sexcam" % p,
        "http://good.test:%d/x/../bad/y" % p,
        "http://good.test:%d/%%62ad/y" % p,
        "http://good.test:%d//bad//y" % p,
        "http://www.good.test:%d/bad/y" % p,
    ]
    n0 = origin_count()
    bad = []
    for u in spellings:
        r = fetch(u, bind=STUDENT)
        # userinfo is refused outright (400) before any decision
        if r.status != 403 and not ("@" in u and r.status == 400):
            bad.append("%s -> %s" % (u, r.status))
    expect(not bad, "spellings not denied", bad)
    expect_eq(origin_count(), n0, "bytes that reached the origin")


@case("IDN host in UTF-8 on the request line is refused or denied, never forwarded")
def idn_raw():
    n0 = origin_count()
    raw = ("GET http://b\u00fccher.test:%d/ HTTP/1.1\r\nHost: x\r\n\r\n" % S["o"].port).encode("utf-8")
    r = request(S["sl"].port, raw, bind=STUDENT, close_wait=3)
    expect_in(r.status, (400, 403), "status", r)
    expect_eq(origin_count(), n0, "origin bytes")


@case("rules apply before the cache: a cached object is never served to a denied client")
def before_cache():
    o = new_origin(serve(lambda req, conn: response(
        200, b"cached-adult", [("Cache-Control", "max-age=600")])))
    u = "http://adult.test:%d/cached" % o.port
    r = fetch(u, bind=TEACHER)
    expect_eq((r.status, r.body), (200, b"cached-adult"), "teacher fill", r)
    r = fetch(u, bind=TEACHER)
    expect_eq(r.status, 200, "teacher hit")
    expect("HIT" in (r.header("X-Cache") or ""), "not a hit", r.headers)
    r = fetch(u, bind=STUDENT)
    expect_eq(r.status, 403, "student", r)
    expect(b"cached-adult" not in r.body, "cached body leaked")


@case("CONNECT decided on the host: 403 and a log line naming the rule")
def connect_host():
    r = request(S["sl"].port, b"CONNECT www.casino.test:443 HTTP/1.1\r\nHost: www.casino.test:443\r\n\r\n",
                bind=TEACHER, close_wait=3)
    expect_eq(r.status, 403, "status", r)
    ln = log_line_for("www.casino.test:443")
    expect(ln and "TCP_DENIED/403" in ln and "rule=no-gambling" in ln, "log", ln)


def s_client(target, servername, bind, extra=()):
    """openssl s_client through the proxy; returns (rc, output)."""
    cmd = ["openssl", "s_client", "-proxy", "127.0.0.1:%d" % S["sl"].port,
           "-connect", target, "-brief"] + list(extra)
    if servername:
        cmd += ["-servername", servername]
    else:
        cmd += ["-noservername"]
    # s_client cannot bind; the student group is matched on 127.0.0.1 below
    p = subprocess.run(cmd, input=b"Q\n", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=20)
    return p.returncode, p.stdout.decode("utf-8", "replace")


@case("CONNECT to an IP: the TLS server name is peeked; a denied name gets a TLS alert, an allowed one a tunnel")
def connect_sni():
    t = S["tls"]
    target = "127.0.0.1:%d" % t.port
    c0 = admin_stats_filter()
    rc, out = s_client(target, "www.casino.test", OTHER)
    expect(rc != 0 and "CONNECTION ESTABLISHED" not in out, "denied SNI got a TLS session", out)
    expect("access denied" in out.lower() or "alert" in out.lower(), "no TLS alert seen", out)
    ln = log_line_for("127.0.0.1:%d" % t.port)
    expect(ln and "TCP_DENIED/403" in ln and "rule=no-gambling" in ln, "log", ln)
    rc, out = s_client(target, "ok.test", OTHER)
    expect("CONNECTION ESTABLISHED" in out or "Protocol version" in out, "allowed SNI", out)
    n_tls = t.nconns
    expect(n_tls >= 1, "TLS origin never reached by the allowed tunnel")
    c1 = admin_stats_filter()
    expect_eq(c1["filter_sni_peeks"] - c0["filter_sni_peeks"], 2, "peek counter")
    expect_eq(c1["filter_denied"] - c0["filter_denied"], 1, "denied counter")


@case("CONNECT to an IP with no ClientHello (plain bytes): closed by the sni_default (deny)")
def connect_not_tls():
    e = S["echo"]
    n0 = e.nconns
    c = Client(S["sl"].port, timeout=10)
    c.send(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\nHELLO-NOT-TLS" % e.port)
    r = c.read_response(method="CONNECT")
    expect_eq(r.status, 200, "our 200 comes before the peek")
    expect(c.wait_closed(5), "tunnel not closed")
    expect_eq(e.nconns, n0, "the echo origin was contacted")
    ln = log_line_for("127.0.0.1:%d" % e.port)
    expect(ln and "TCP_DENIED/403" in ln and "rule=sni_default" in ln, "log", ln)


def client_hello(name):
    """The ClientHello Python's TLS stack sends for server name `name`
    (None: no server_name extension)."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def reframe(hello, size):
    """The same handshake bytes cut into TLS records of `size` bytes."""
    body = hello[5:5 + int.from_bytes(hello[3:5], "big")]
    out = b""
    for i in range(0, len(body), size):
        chunk = body[i:i + size]
        out += b"\x16" + hello[1:3] + len(chunk).to_bytes(2, "big") + chunk
    return out


def peek_tunnel(target_port, data_parts, gap=0.05, port=None):
    """CONNECT 127.0.0.1:target_port, then send data_parts with gaps;
    returns (client, our 200 response)."""
    c = Client(port or S["sl"].port, timeout=10)
    c.send(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % target_port)
    r = c.read_response(method="CONNECT")
    for p in data_parts:
        c.send(p)
        time.sleep(gap)
    return c, r


@case("SNI peek: a ClientHello cut into 40-byte TLS records and sent in pieces is reassembled; denied name -> TLS alert, nothing reaches the origin")
def sni_fragmented_denied():
    e = S["echo"]
    n0 = e.nconns
    rec = reframe(client_hello("www.casino.test"), 40)
    parts = [rec[i:i + 97] for i in range(0, len(rec), 97)]
    c, r = peek_tunnel(e.port, parts)
    expect_eq(r.status, 200, "our 200")
    got = c.recv_some(7, timeout=5)
    expect(got[:1] == b"\x15" and got[5:7] == b"\x02\x31", "no access_denied alert", got)
    expect(c.wait_closed(5), "not closed")
    expect_eq(e.nconns, n0, "the origin was contacted")


@case("SNI peek: an allowed name in a fragmented hello opens the tunnel and the hello reaches the origin byte-exact")
def sni_fragmented_allowed():
    e = S["echo"]
    n0 = e.nconns
    rec = reframe(client_hello("ok.test"), 64)
    c, r = peek_tunnel(e.port, [rec[:10], rec[10:300], rec[300:]])
    expect_eq(r.status, 200, "our 200")
    got = c.recv_some(len(rec), timeout=10)
    expect_eq(got, rec, "echoed hello")
    expect_eq(e.nconns, n0 + 1, "origin connections")
    c.close()


@case("SNI peek: a ClientHello without a server name is closed by sni_default (deny)")
def sni_none():
    e = S["echo"]
    n0 = e.nconns
    c, r = peek_tunnel(e.port, [client_hello(None)])
    expect_eq(r.status, 200, "our 200")
    expect(c.wait_closed(5), "not closed")
    expect_eq(e.nconns, n0, "the origin was contacted")


@case("sni_peek always: CONNECT to an allowed name with a denied SNI is refused; a silent client is closed after client_header; sni_default allow lets plain bytes through")
def sni_always():
    e = S["echo"]
    conf = make_conf(S["lists"])
    conf["filter"]["sni_peek"] = "always"
    conf["filter"]["sni_default"] = "allow"
    conf["timeouts"] = {"client_header": 2}
    sl = Sluice(conf, dns_port=S["dns"].port)
    n0 = e.nconns
    c = Client(sl.port, timeout=10)
    c.send(b"CONNECT ok.test:%d HTTP/1.1\r\nHost: ok.test\r\n\r\n" % e.port)
    r = c.read_response(method="CONNECT")
    expect_eq(r.status, 200, "our 200")
    c.send(client_hello("www.casino.test"))
    expect(c.wait_closed(5), "domain-fronted tunnel not closed")
    expect_eq(e.nconns, n0, "the origin was contacted")
    # a client that sends nothing: the peek times out, sni_default=allow
    t0 = time.monotonic()
    c = Client(sl.port, timeout=10)
    c.send(b"CONNECT ok.test:%d HTTP/1.1\r\nHost: ok.test\r\n\r\n" % e.port)
    r = c.read_response(method="CONNECT")
    expect(poll(lambda: e.nconns == n0 + 1, 6), "not connected after the peek timeout")
    expect(time.monotonic() - t0 >= 1.5, "connected before client_header")
    c.send(b"late-bytes")
    expect_eq(c.recv_some(10, timeout=5), b"late-bytes", "tunnel after timeout")
    c.close()
    # plain bytes (no TLS) with sni_default allow: relayed
    c = Client(sl.port, timeout=10)
    c.send(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\nPLAIN" % e.port)
    r = c.read_response(method="CONNECT")
    expect_eq(c.recv_some(5, timeout=5), b"PLAIN", "plain bytes relayed")
    c.close()
    sl.stop()


@case("curl https through the proxy to an allowed name works (CONNECT by name, no peek)")
def curl_https_allowed():
    t = S["tls"]
    rc, code, body, err = curl(S["sl"].port, "https://ok.test:%d/tls" % t.port, "-p", "-k",
                               "--resolve", "ok.test:%d:127.0.0.1" % t.port)
    expect_eq((rc, code), (0, 200), "curl", err)


@case("ReDoS pattern on a 60 KiB URL: denied within bounded time, logged once, other clients unaffected")
def redos():
    long = "/redos/" + "a" * 60000 + "!"
    done = {}

    def victim():
        t0 = time.monotonic()
        r = fetch(url("ok.test", "/victim"), bind=TEACHER)
        done["t"] = time.monotonic() - t0
        done["s"] = r.status
    t0 = time.monotonic()
    r = fetch(url("ok.test", long), bind=TEACHER)
    dt = time.monotonic() - t0
    th = threading.Thread(target=victim)
    th.start()
    r2 = fetch(url("ok.test", long), bind=TEACHER)
    th.join(10)
    expect_eq(r.status, 403, "status", r)
    expect_eq(r2.status, 403, "status 2", r2)
    expect(dt < 2.0, "took %.2fs" % dt)
    expect_eq(done.get("s"), 200, "victim", done)
    txt = S["sl"].stderr_text()
    expect_eq(txt.count("hit the PCRE2 match or depth limit"), min(2, txt.count("hit the PCRE2")),
              "limit log lines")
    # once per pattern and worker: two requests, at most one line per worker
    expect(1 <= txt.count("hit the PCRE2 match") <= 2, "logged %d times" % txt.count("hit the PCRE2 match"), txt[-2000:])


class ReverseSluice(Sluice):
    """A Sluice with a reverse listener next to its forward one."""

    def __init__(self, rport, origin_port, conf, **kw):
        self.rport, self.oport, self.base = rport, origin_port, conf
        super().__init__(conf=conf, **kw)

    def config(self, port=None):
        port = port or self.port
        self.overrides = merge(self.base, {"listen": [
            {"address": "127.0.0.1", "port": port},
            {"address": "127.0.0.1", "port": self.rport, "mode": "reverse",
             "origin": "http://127.0.0.1:%d" % self.oport}]})
        return Sluice.config(self, port)


@case("reverse listener: path rules see the origin-form path (GET /secret/x is denied, /public/x allowed)")
def reverse_paths():
    o = S["o"]
    rport = free_port()
    conf = {"filter": {"acls": [{"name": "secret", "urlpath_regex": ["^/secret/"]},
                                {"name": "any", "src": ["127.0.0.0/8"]}],
                       "rules": [{"name": "no-secret", "action": "deny", "when": ["secret"]},
                                 {"action": "allow", "when": ["any"]}]}}
    sl = ReverseSluice(rport, o.port, conf)
    expect(poll(lambda: accepts("127.0.0.1", rport), 5), "reverse port not accepting", sl.diag())
    n0 = origin_count()
    for path in (b"/secret/plans", b"/public/../secret/plans", b"/secret/%2e/plans",
                 b"/x/../secret/plans", b"/x/..;/secret/plans"):
        r = request(rport, b"GET " + path + b" HTTP/1.1\r\nHost: www.example.test\r\n\r\n",
                    close_wait=3)
        expect_eq(r.status, 403, "status for %r" % path, r)
    expect_eq(origin_count(), n0, "origin bytes")
    r = request(rport, b"GET /public/x HTTP/1.1\r\nHost: www.example.test\r\n\r\n", close_wait=3)
    expect_eq(r.status, 200, "public", r)
    sl.stop()


@case("paths with dot segments are forwarded resolved (the rest byte for byte); %2F, backslash and ;params cannot hide a listed path")
def dot_segments_forwarded():
    o = S["o"]
    n0 = len(o.requests)
    for raw, want in ((b"/x//../y", b"/x/y"), (b"/a/%2e%2e/b?q=/../z", b"/b?q=/../z"),
                      (b"/a/..;/c", b"/c"), (b"/keep//double", b"/keep//double")):
        r = fetch(url("ok.test", raw.decode()))
        expect_eq(r.status, 200, "status", r)
        expect(o.wait_requests(n0 + 1), "origin got nothing")
        got = o.requests[n0].raw_head.split(b"\r\n")[0]
        expect_eq(got, b"GET " + want + b" HTTP/1.1", "request line at the origin")
        n0 += 1
    # the //.. trick against a URL-prefix entry: /bad/ is listed for good.test
    r = fetch(url("good.test", "/bad//../y"), bind=STUDENT)
    expect_eq(r.status, 403, "good.test/bad//../y (RFC 3986: /bad/y)", r)
    # spellings some origins read as /bad/y: decoded slashes, backslashes,
    # servlet path parameters
    for p in ("/bad%2Fy", "/bad%2fy", "/x/..%2Fbad/y", "/x%2F..%2Fbad/y", "/bad%5Cy",
              "/bad\\y", "/x\\..\\bad\\y", "/bad;jsessionid=1/y"):
        r = fetch(url("good.test", p), bind=STUDENT)
        expect_eq(r.status, 403, "good.test%s" % p, r)
    # a path without dot segments goes byte for byte, query included
    n0 = len(o.requests)
    for raw in (b"/.well-known/x?a=[1]&b=%7e&c=%2f", b"/.git/HEAD?sig=a%2fb", b"/.x/%c3%a9/%41"):
        r = fetch(url("ok.test", raw.decode()))
        expect_eq(r.status, 200, "status", r)
        expect(o.wait_requests(n0 + 1), "origin got nothing")
        expect_eq(o.requests[n0].raw_head.split(b"\r\n")[0], b"GET " + raw + b" HTTP/1.1",
                  "forwarded byte for byte")
        n0 += 1


@case("IPv4-mapped IPv6 hosts are the IPv4 host for URL entries and url_regex too")
def v4mapped_urls():
    p = S["o"].port
    for u in ("http://[::ffff:127.9.9.9]:%d/" % p, "http://[::ffff:7f09:909]:%d/" % p):
        expect_eq(fetch(u, bind=STUDENT).status, 403, u)
    rc, out = run_sluice(["-f", S["sl"].conf_path, "-T", "http://[::ffff:127.9.9.9]/", "-c", STUDENT])
    expect(rc == 2 and "canonical: http://127.9.9.9/" in out, "-T", out)


@case("a CONNECT to a 253-byte name with a regex rule: decided, no overflow")
def connect_long_name():
    name = ".".join(["a" * 63] * 3 + ["b" * 61])
    r = request(S["sl"].port, b"CONNECT %s:443 HTTP/1.1\r\nHost: x\r\n\r\n" % name.encode(),
                bind=TEACHER, close_wait=3)
    expect_in(r.status, (403, 502, 504), "status", r)


@case("sluice -T with an IPv6 CONNECT decides like a worker")
def dash_T_v6():
    rc, out = run_sluice(["-f", S["sl"].conf_path, "-T", "https://[2001:db8::1]/x"])
    expect("canonical: [2001:db8::1]:443" in out, "canonical", out)


@case("sluice -T: decision, rule, category and list entry; exit 2 denied, 0 allowed")
def dash_T():
    cp = S["sl"].conf_path
    rc, out = run_sluice(["-f", cp, "-T", "http://WWW.Adult.test/x", "-c", STUDENT])
    expect_eq(rc, 2, "exit", out)
    for want in ("decision:  DENY", "rule:      students-adult", "category:  adult",
                 "matched:   domain adult.test", "canonical: http://www.adult.test/x"):
        expect(want in out, "missing %r" % want, out)
    expect(os.path.join("lists", "adult") in out, "list folder not named", out)
    rc, out = run_sluice(["-f", cp, "-T", "http://www.adult.test/x", "-c", TEACHER])
    expect_eq(rc, 0, "exit", out)
    expect("rule:      staff" in out, "teacher rule", out)
    rc, out = run_sluice(["-f", cp, "-T", "https://www.casino.test/deep/path"])
    expect_eq(rc, 2, "https exit", out)
    expect("CONNECT www.casino.test:443" in out and "rule:      no-gambling" in out, "https", out)
    rc, out = run_sluice(["-f", cp, "-T", "http://ok.test/free-sexcam", "-c", STUDENT])
    expect("matched:   expression (^|[-./])sexcam" in out, "expression", out)
    rc, out = run_sluice(["-f", cp, "-T", "http://x.test/", "-c", "not-an-ip"])
    expect_eq(rc, 1, "bad -c", out)
    rc, out = run_sluice(["-f", cp, "-T", "http://x.test/", "-c", "192.0.2.1"])
    expect_eq(rc, 2, "no rule matched", out)
    expect("none matched" in out, "default deny", out)


@case("sluice -t fails on a broken list, naming file:line")
def dash_t_broken():
    d = tempdir()
    lists = os.path.join(d, "lists")
    write(os.path.join(lists, "adult", "domains"), "ok.example\nbad domain.example\n")
    sl = Sluice(make_conf(lists), start=False)
    sl.port = free_port()
    cp = sl.write_config()
    rc, out = run_sluice(["-t", "-f", cp])
    expect(rc != 0, "sluice -t passed", out)
    expect(os.path.join(lists, "adult", "domains") + ":2" in out, "file:line", out)
    write(os.path.join(lists, "adult", "domains"), "ok.example\n")
    write(os.path.join(lists, "adult", "expressions"), "fine\n(unclosed\n")
    rc, out = run_sluice(["-t", "-f", cp])
    expect(rc != 0 and os.path.join(lists, "adult", "expressions") + ":2" in out and
           "offset" in out, "expression error", out)


@case("reload with a broken list keeps the old lists serving; a fixed list then applies; a request in flight completes")
def reload_lists():
    sl = S["sl"]
    dom = os.path.join(S["lists"], "adult", "domains")
    with open(dom, encoding="utf-8-sig") as f:
        good = f.read()
    # later.test is allowed now
    expect_eq(fetch(url("later.test", "/before"), bind=STUDENT).status, 200, "before")
    # a slow response in flight across both reloads must complete
    def slow(req, conn):
        time.sleep(3)
        return response(200, b"slow-body" * 1000)
    so = new_origin(serve(slow))
    inflight = {}

    def slow_fetch():
        r = fetch("http://ok.test:%d/slow" % so.port, bind=STUDENT)
        inflight["r"] = (r.status, r.body)
    th = threading.Thread(target=slow_fetch)
    th.start()
    time.sleep(0.5)
    write(dom, good + "later.test\nthis is \x00 junk\n")
    sl.reload()
    expect(poll(lambda: "reload failed" in sl.stderr_text(), 10), "no reload failure logged",
           sl.stderr_text()[-2000:])
    expect("adult/domains:" in sl.stderr_text(), "file:line not logged", sl.stderr_text()[-1500:])
    # old lists still serve: adult denied, later.test still allowed
    expect_eq(fetch(url("adult.test", "/after-bad"), bind=STUDENT).status, 403, "old list")
    expect_eq(fetch(url("later.test", "/after-bad"), bind=STUDENT).status, 200, "new entry leaked")
    write(dom, good + "later.test\n")
    sl.reload()
    expect(poll(lambda: fetch(url("later.test", "/after-fix"), bind=STUDENT).status == 403, 10),
           "fixed list not applied")
    expect_eq(fetch(url("adult.test", "/still"), bind=STUDENT).status, 403, "adult after reload")
    th.join(15)
    expect_eq(inflight.get("r"), (200, b"slow-body" * 1000), "the request in flight across the reloads")
    write(dom, good)


@case("workers share the compiled lists copy-on-write (memory does not grow with workers)")
def cow_memory():
    S["sl"].wait_workers()
    pids = [p for p in S["sl"].worker_pids() if os.path.exists("/proc/%d/smaps_rollup" % p)]
    expect(len(pids) >= 2, "workers", pids)

    def rollup(pid):
        d = {}
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for ln in f:
                parts = ln.split()
                if len(parts) >= 3 and parts[-1] == "kB":
                    d[parts[0].rstrip(":")] = int(parts[1])
        return d
    # make every worker decide a few requests first
    for i in range(20):
        fetch(url("ok.test", "/warm-%d" % i))
    r = [rollup(p) for p in pids]
    master = rollup(S["sl"].pid)
    for x in r:
        # the lists (20,000+ domains, 200 regexes: several MB in the
        # master) are shared; a worker's own dirty pages stay small
        expect(x["Private_Dirty"] < 24 * 1024, "worker private dirty %d kB" % x["Private_Dirty"], x)
    diag("master RSS %d kB; workers Private_Dirty %s kB, Shared_Dirty %s kB" % (
        master["Rss"], [x["Private_Dirty"] for x in r], [x.get("Shared_Dirty") for x in r]))


def admin_stats_filter():
    return admin_stats(S["sl"])["totals"]


def diag(msg):
    print("# " + msg.replace("\n", "\n# "))


if __name__ == "__main__":
    main(setup=setup)
