#!/usr/bin/env python3
"""
t_stream.py - bodies are streamed, never buffered (DESIGN "a 4 GiB
download uses the same memory as a 4 KiB one"), scaled down: a 200 MB
download and a 100 MB upload through sluice while the workers' VmRSS
is sampled; it must stay under 16 MB (a sanitizer build gets more room,
since its shadow memory counts too).
"""
import threading
from harness import *
from origin import *

T = []
S = {}
BLOCK = bytes(range(256)) * 256     # 64 KiB
DOWN = 200 * 1024 * 1024
UP = 100 * 1024 * 1024


def rss_limit_kb(sl):
    try:
        with open("/proc/%d/maps" % sl.pid) as f:
            if "libasan" in f.read():
                return 400 * 1024
    except OSError:
        pass
    return 16 * 1024


class Sampler:
    def __init__(self, sl):
        self.sl, self.max, self.stop_flag = sl, 0, False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.samples = 0
        while not self.stop_flag:
            for w in self.sl.worker_pids():
                v = rss_kb(w) or 0
                self.max = max(self.max, v)
                self.samples += 1 if v else 0
            time.sleep(0.01)

    def stop(self):
        self.stop_flag = True
        self.t.join()
        expect(self.samples > 0, "no worker RSS sample taken (workers: %r)" % self.sl.worker_pids())
        print("# max worker VmRSS %d kB over %d samples" % (self.max, self.samples), flush=True)
        return self.max


def download():
    def h(conn):
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % DOWN)
        for _ in range(DOWN // len(BLOCK)):
            conn.sock.sendall(BLOCK)
    o = new_origin(h)
    sl = S["sl"]
    smp = Sampler(sl)
    c = Client(sl.port, timeout=60)
    c.send(build("GET", o.url("/200M")))
    head = b""
    deadline = time.monotonic() + 10
    while b"\r\n\r\n" not in head:
        expect(c._more(deadline), "no head")
        head, c.buf = head + c.buf, b""
    i = head.index(b"\r\n\r\n") + 4
    n, first = len(head) - i, head[i:]
    ok_pattern = BLOCK.startswith(first[:len(BLOCK)])
    t0 = time.monotonic()
    while n < DOWN and time.monotonic() - t0 < 50:
        try:
            d = c.sock.recv(1 << 20)
        except OSError:
            break
        if not d:
            break
        n += len(d)
    mx = smp.stop()
    expect(head.startswith(b"HTTP/1.1 200"), "status %r" % head[:40])
    expect_eq(n, DOWN, "bytes received")
    expect(ok_pattern, "content")
    lim = rss_limit_kb(sl)
    expect(mx < lim, "worker VmRSS reached %d kB (limit %d kB)" % (mx, lim))
    S.setdefault("rss", []).append(mx)


T.append(("200 MB download: complete, worker RSS bounded", download))


def upload():
    def h(conn):
        req = conn.read_request(body=False)
        n = int(req.header("Content-Length"))
        got = len(conn.buf)
        conn.buf = b""
        conn.sock.settimeout(60)
        while got < n:
            d = conn.sock.recv(1 << 20)
            if not d:
                break
            got += len(d)
        conn.send(response(200, b"%d" % got))
    o = new_origin(h)
    sl = S["sl"]
    smp = Sampler(sl)
    c = Client(sl.port, timeout=60)
    c.send(build("POST", o.url("/up"), [("Content-Length", str(UP))]))
    for _ in range(UP // len(BLOCK)):
        c.sock.sendall(BLOCK)
    r = c.read_response(method="POST", timeout=60)
    mx = smp.stop()
    expect_eq((r.status, r.body), (200, b"%d" % UP), "origin received")
    lim = rss_limit_kb(sl)
    expect(mx < lim, "worker VmRSS reached %d kB (limit %d kB)" % (mx, lim))


T.append(("100 MB upload: complete, worker RSS bounded", upload))


def setup():
    S["sl"] = Sluice(workers=1)


main(T, setup=setup)
