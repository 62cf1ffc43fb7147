#!/usr/bin/env python3
"""
t_faults.py - fault scenarios F12, F13, F15 and F19 of HOSTILE.md: a
client that aborts a download leaves no descriptor behind; one host
cannot hold more than limits.client_connections; a worker out of file
descriptors (RLIMIT_NOFILE 64) does not spin on accept() and recovers;
hostile DNS answers (SERVFAIL, a broken answer, junk, silence) give
502/504 and never crash a worker, and a negative answer is cached.
"""
import resource
import socket
from harness import *
from origin import *

T = []
S = {}
BLOCK = b"z" * 65536


def big(size):
    def h(conn):
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        try:
            for _ in range(size // len(BLOCK)):
                conn.sock.sendall(BLOCK)
        except OSError:
            pass
    return new_origin(h)


def nfds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


def client_abort():
    sl = Sluice(workers=1)
    expect(sl.wait_workers(1), "no worker", sl.diag())
    w = sl.worker_pids()[0]
    base = nfds(w)
    o = big(10 << 20)
    for _ in range(5):
        c = Client(sl.port)
        c.send(build("GET", o.url("/10M")))
        expect(len(c.recv_some(1000, 5)) == 1000, "no data")
        c.close()
    ok = poll(lambda: nfds(w) <= base + 2, 10)
    expect(ok, "worker fds %d, baseline %d" % (nfds(w), base))
    still_serving(sl, new_origin())
    sl.stop()


T.append(("F12 clients abort 10 MB downloads: worker fds return to baseline", client_abort))


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    fields = st[st.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def fd_exhaustion():
    sl = Sluice(workers=1, start=False)
    sl.preexec = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    sl.start()
    expect(sl.wait_workers(1), "no worker", sl.diag())
    w = sl.worker_pids()[0]
    socks = []
    for _ in range(100):
        try:
            socks.append(socket.create_connection(("127.0.0.1", sl.port), timeout=2))
        except OSError:
            break
    # the measurement window: CPU used by the worker while it is out of fds
    t0, c0 = time.monotonic(), cpu_ticks(w)
    poll(lambda: time.monotonic() - t0 >= 1.0, 2)
    used = (cpu_ticks(w) - c0) / os.sysconf("SC_CLK_TCK")
    for s in socks:
        s.close()
    expect(used < 0.3, "worker used %.2fs CPU in 1s while out of fds (busy accept loop?)" % used)
    o = new_origin()
    ok = poll(lambda: get(sl.port, o.url("/after"), headers=[("Connection", "close")]).status == 200, 10)
    expect(ok, "service did not recover after the idle connections closed", sl.diag())
    expect(sl.alive() and pid_alive(w), "a process died")


T.append(("F15 fd exhaustion: no busy loop, recovers", fd_exhaustion))


def dns_case(name, statuses):
    def fn():
        r = get(S["sl"].port, "http://%s:%d/x" % (name, S["o"].port), timeout=20)
        expect_in(r.status, statuses, "status", r)
        if r.status >= 400:
            expect((r.header("Content-Type") or "").startswith("text/html"), "page", r)
        still_serving(S["sl"], S["o"])
        expect(len(S["sl"].worker_pids()) == 1 and S["sl"].alive(), "a process died")
    return fn


T.append(("F19 SERVFAIL -> 502", dns_case("servfail.test", (502,))))
T.append(("F19 malformed answer -> 502", dns_case("garbage.test", (502,))))
T.append(("F19 junk replies with a wrong id -> 502/504", dns_case("junk.test", (502, 504))))
T.append(("F19 REFUSED -> 502", dns_case("refused.test", (502,))))
T.append(("F19 CNAME to an A record -> 200", dns_case("alias.test", (200,))))


def negative_cache():
    d, sl = S["dns"], S["sl"]
    r1 = get(sl.port, "http://nxcache.test:%d/" % S["o"].port)
    expect_eq(r1.status, 502, "first")
    n1 = d.count("nxcache.test")
    expect(n1 >= 1, "no query reached the fake DNS")
    r2 = get(sl.port, "http://nxcache.test:%d/" % S["o"].port)
    expect_eq(r2.status, 502, "second")
    expect_eq(d.count("nxcache.test"), n1, "queries after a second request (negative answer not cached)")


T.append(("F19 NXDOMAIN cached for dns.negative_ttl", negative_cache))


def client_cap():
    """limits.client_connections = 5 in one worker: five idle connections
    from 127.0.0.1 are held, the sixth is closed at once, another address
    is not affected, and a slot freed is usable again."""
    sl = Sluice({"limits": {"client_connections": 5}}, workers=1)
    held = []
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", sl.port), timeout=5)
        held.append(s)
    # the five are open and served: one request on the first
    held[0].sendall(build("GET", S["o"].url("/cap")))
    expect(held[0].recv(100).startswith(b"HTTP/1.1 200"), "held connection not served")
    extra = socket.create_connection(("127.0.0.1", sl.port), timeout=5)
    extra.settimeout(5)
    try:
        got = extra.recv(100)
    except ConnectionResetError:
        got = b""
    expect_eq(got, b"", "sixth connection from the same address (should be closed)")
    extra.close()
    c = Client(sl.port, bind="127.0.0.2")
    c.send(build("GET", S["o"].url("/other"), [("Connection", "close")]))
    expect_eq(c.read_response().status, 200, "another address (127.0.0.2) is not capped")
    held.pop().close()
    def fresh_ok():
        try:
            r = get(sl.port, S["o"].url("/again"), headers=[("Connection", "close")], timeout=2)
            return r.status == 200
        except Exception:
            return False
    expect(poll(fresh_ok, timeout=5), "a freed slot is not usable again")
    expect("client_connections" in sl.stderr_text(), "no log line about the cap", sl.stderr_text()[-500:])
    for s in held:
        s.close()


T.append(("F13 limits.client_connections closes a host's extra connections", client_cap))


def setup():
    S["o"] = new_origin()
    S["dns"] = fakedns({"servfail.test": "SERVFAIL", "garbage.test": "GARBAGE", "junk.test": "JUNK",
                        "refused.test": "REFUSED", "alias.test": "CNAME:real.test",
                        "real.test": "A:127.0.0.1"})
    S["sl"] = Sluice({"timeouts": {"connect": 3}}, workers=1, dns_port=S["dns"].port)


main(T, setup=setup)
