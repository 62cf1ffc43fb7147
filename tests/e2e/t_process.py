#!/usr/bin/env python3
"""
t_process.py - the process model under faults and signals (F1 without
the cache, F17, F21): a SIGKILLed worker is respawned and loses at most
the requests it was serving; a HUP with a broken config keeps the old
workers and names file:line; a HUP with a good config changes behaviour
without failing a request; QUIT lets a 50 MB download finish; -t checks
a config; a second instance refuses the same pidfile; -s stop works.

"Failed requests" are counted carefully: a load thread opens a new
connection per request, and a request counts against the proxy only if
it started after the killed worker was gone (in-flight ones on the dead
worker may fail).
"""
import os
import signal
import subprocess
import threading
from harness import *
from origin import *

T = []


class Load:
    """Threads sending GETs in a loop, each on a new connection."""

    def __init__(self, port, url_fn, nthreads=4):
        self.port, self.url_fn = port, url_fn
        self.results = []          # (t_start, t_end, ok, detail)
        self.lock = threading.Lock()
        self.stop_flag = False
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(nthreads)]
        for t in self.threads:
            t.start()

    def run(self):
        while not self.stop_flag:
            t0 = time.monotonic()
            try:
                r = get(self.port, self.url_fn(), headers=[("Connection", "close")], timeout=5)
                ok, det = r.status == 200, "status %s eof=%s raw=%r" % (r.status, r.eof, r.raw[:80])
                if r.client:
                    r.client.close()
            except Exception as e:
                ok, det = False, repr(e)
            with self.lock:
                self.results.append((t0, time.monotonic(), ok, det))

    def stop(self):
        self.stop_flag = True
        for t in self.threads:
            t.join(10)
        return self.results

    def count(self):
        with self.lock:
            return len(self.results)


def kill_worker():
    o = new_origin()
    sl = Sluice()
    expect(sl.wait_workers(2), "workers never reached 2", sl.worker_pids(), sl.diag())
    before = sl.worker_pids()
    load = Load(sl.port, lambda: o.url("/load"))
    expect(poll(lambda: load.count() > 50, 10), "load did not start")
    victim = before[0]
    os.kill(victim, signal.SIGKILL)
    expect(poll(lambda: not pid_alive(victim), 5), "victim still alive")
    t_dead = time.monotonic()
    respawned = poll(lambda: len(sl.worker_pids()) == 2 and victim not in sl.worker_pids(), 10)
    n_at = load.count()
    poll(lambda: load.count() > n_at + 50, 5)
    res = load.stop()
    expect(respawned, "worker not respawned: %r (was %r)" % (sl.worker_pids(), before), sl.diag())
    late_fail = [r for r in res if r[0] > t_dead and not r[2]]
    early_fail = [r for r in res if r[0] <= t_dead and not r[2]]
    expect(not late_fail, "%d requests started after the kill failed: %r" % (len(late_fail), late_fail[:5]))
    expect(len(early_fail) <= 4, "%d in-flight failures (at most one per load thread)" % len(early_fail))
    sl.stop()


T.append(("F1 SIGKILL a worker under load: respawned, only in-flight requests may fail", kill_worker))


def hup_broken():
    o = new_origin()
    sl = Sluice()
    expect(sl.wait_workers(2), "workers", sl.diag())
    before = sl.worker_pids()
    good = sl.config()
    lines = good.count("\n")
    with open(sl.conf_path, "w") as f:
        f.write(good + "workers = \"many\";\n")
    bad_line = lines + 1
    load = Load(sl.port, lambda: o.url("/hup"))
    sl.reload()
    found = poll(lambda: "sluice.conf:%d" % bad_line in sl.stderr_text(), 5)
    n = load.count()
    poll(lambda: load.count() > n + 20, 5)
    res = load.stop()
    expect(found, "stderr does not name sluice.conf:%d" % bad_line, sl.diag())
    expect_eq(sl.worker_pids(), before, "worker pids after a failed reload")
    fails = [r for r in res if not r[2]]
    expect(not fails, "%d requests failed" % len(fails), fails[:5])
    expect(sl.alive(), "master died")
    sl.stop()


T.append(("F17 HUP with a broken config: old workers keep serving, error names file:line", hup_broken))


def hup_good():
    o = new_origin()
    sl = Sluice()
    expect(sl.wait_workers(2), "workers", sl.diag())
    load = Load(sl.port, lambda: o.url("/reload"))
    expect(poll(lambda: load.count() > 20, 10), "load did not start")
    # three reloads (delete, add, delete): each must switch behaviour
    ok, dt = True, 0.0
    for mode in ("delete", "add", "delete"):
        sl.write_config(conf={"x_forwarded_for": mode})
        n_before = o.nreq
        sl.reload()
        t0 = time.monotonic()

        def switched():
            with o.lock:
                reqs = o.requests[n_before:]
            return any(q.has("X-Forwarded-For") == (mode == "add") for q in reqs[-3:])
        ok = ok and bool(poll(switched, 10))
        dt = max(dt, time.monotonic() - t0)
    n = load.count()
    poll(lambda: load.count() > n + 20, 5)
    res = load.stop()
    expect(ok, "new x_forwarded_for not in effect after %.1fs" % dt, sl.diag())
    expect(dt < 5, "reload took %.1fs" % dt)
    fails = [r for r in res if not r[2]]
    expect(not fails, "%d requests failed across the reload" % len(fails), fails[:5])
    # all new requests now use the new config
    o2 = new_origin()
    get(sl.port, o2.url("/after"))
    expect(o2.wait_requests(1) and not o2.requests[0].has("X-Forwarded-For"), "old behaviour still seen")
    sl.stop()


T.append(("F17 HUP with a good config: new behaviour within seconds, no failed request", hup_good))


def hup_keepalive():
    """Clients that keep their connections alive and send back to back
    (a load generator, a busy browser): a response whose head promised
    keep-alive is followed by the client's next request at once, also
    when a reload began meanwhile.  Every request must get a complete
    200; a connection may only end after a response that said close."""
    o = new_origin()
    sl = Sluice()
    expect(sl.wait_workers(2), "workers", sl.diag())
    stop = [False]
    stats = {"ok": 0, "bad": [], "closes": 0}
    lock = threading.Lock()

    def client():
        c = None
        while not stop[0]:
            if c is None:
                c = Client(sl.port, timeout=10)
            try:
                c.send(build("GET", o.url("/ka")))
                r = c.read_response()
                good = r.status == 200 and r.body == b"ok GET /ka"
            except Exception as e:  # a lost request
                good, r = False, e
            with lock:
                if good:
                    stats["ok"] += 1
                else:
                    stats["bad"].append(repr(r)[:200])
            if not good or r.conn_close():
                with lock:
                    stats["closes"] += good
                c.close()
                c = None
        if c:
            c.close()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    expect(poll(lambda: stats["ok"] > 200, 10), "load did not start")
    for _ in range(2):
        sl.reload()
        time.sleep(1.5)
    stop[0] = True
    for t in threads:
        t.join(15)
    expect(not stats["bad"], "%d requests failed across the reloads (%d ok)" % (
        len(stats["bad"]), stats["ok"]), stats["bad"][:3])
    expect(stats["closes"] >= 8, "no Connection: close from the old workers", stats)
    sl.stop()


T.append(("F17 HUP under keep-alive load: every request answered, connections end only after Connection: close",
          hup_keepalive))


def quit_and_trickle(sl, c, data, what):
    """QUIT sl, then send data to c one byte every 0.5 s: sluice must
    exit within 8 s (timeouts are 30 s)."""
    t0 = time.monotonic()
    sl.signal(signal.SIGQUIT)
    stop = [False]

    def trickle():
        for b in data:
            if stop[0]:
                return
            try:
                c.send(bytes([b]))
            except OSError:
                return
            time.sleep(0.5)
    th = threading.Thread(target=trickle, daemon=True)
    th.start()
    exited = poll(lambda: not sl.alive(), 15)
    stop[0] = True
    dt = time.monotonic() - t0
    expect(exited, "sluice still running %.1fs after QUIT" % dt, sl.diag())
    expect(dt < 8, "the stop took %.1fs (%s is 30)" % (dt, what))


def quit_slow_clients():
    """After QUIT, neither a kept-alive connection that starts a head and
    trickles it nor a fresh connection that never sends can hold the
    worker for timeouts.shutdown: both end within a few seconds."""
    o = new_origin()
    sl = Sluice(conf={"timeouts": {"shutdown": 30, "client_header": 30}}, workers=1)
    expect(sl.wait_workers(1), "workers", sl.diag())
    ka = Client(sl.port, timeout=10)
    ka.send(build("GET", o.url("/one")))
    expect_eq(ka.read_response().status, 200, "first request")
    fresh = Client(sl.port, timeout=10)
    time.sleep(0.3)
    quit_and_trickle(sl, ka, b"GET " + o.url("/slow").encode() + b" HTTP/1.1\r\n",
                     "timeouts.shutdown")
    ka.close()
    fresh.close()


T.append(("QUIT with a trickling keep-alive client and a silent new connection: the worker exits in seconds",
          quit_slow_clients))


def quit_head_begun():
    """A head begun before the QUIT (the first bytes are in, the rest
    trickles) gets the stop's short while too, not the rest of
    timeouts.client_header (30 s here)."""
    o = new_origin()
    sl = Sluice(conf={"timeouts": {"shutdown": 30, "client_header": 30}}, workers=1)
    expect(sl.wait_workers(1), "workers", sl.diag())
    c = Client(sl.port, timeout=10)
    line = b"GET " + o.url("/slow").encode() + b" HTTP/1.1\r\n"
    c.send(line[:10])
    time.sleep(0.5)                 # the worker has read them: state C_HEAD
    quit_and_trickle(sl, c, line[10:], "timeouts.client_header")
    c.close()


T.append(("QUIT while a head is half read and trickling: the worker exits in seconds",
          quit_head_begun))


SIZE = 50 * 1024 * 1024
BLOCK = bytes(range(256)) * 256   # 64 KiB pattern


def big_origin(size):
    def h(conn):
        req = conn.read_request()
        if req is None:
            return
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        left = size
        conn.sent = 0
        while left > 0:
            n = min(left, len(BLOCK))
            conn.sock.sendall(BLOCK[:n])
            left -= n
            conn.sent += n
            time.sleep(0.002)   # pacing: the download must outlast the QUIT
    return new_origin(h)


def quit_during_download():
    o = big_origin(SIZE)
    sl = Sluice({"timeouts": {"shutdown": 30}})
    c = Client(sl.port, timeout=60)
    c.send(build("GET", o.url("/big")))
    deadline = time.monotonic() + 10
    while b"\r\n\r\n" not in c.buf:
        expect(c._more(deadline), "no response head", c.buf)
    head, body0 = c.buf.split(b"\r\n\r\n", 1)
    expect(b" 200 " in head.split(b"\r\n")[0], "status line %r" % head[:60])
    n = len(body0)
    first = body0
    while n < (1 << 20):
        d = c.sock.recv(1 << 16)
        expect(d, "EOF before 1 MB")
        if len(first) < 65536:
            first += d
        n += len(d)
    sent_at_quit = getattr(o.conns[0], "sent", 0)
    sl.signal(signal.SIGQUIT)
    c.sock.settimeout(10)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        try:
            d = c.sock.recv(1 << 20)
        except OSError:
            break
        if not d:
            break
        n += len(d)
    expect(sent_at_quit < SIZE, "the origin had already sent everything before the QUIT")
    expect_eq(n, SIZE, "body bytes received after QUIT")
    expect(first[:65536] == BLOCK, "body content")
    try:
        rc = sl.proc.wait(30)
    except subprocess.TimeoutExpired:
        rc = None
    expect(rc is not None, "master did not exit after QUIT and the download", sl.diag())
    expect_eq(rc, 0, "master exit code")


T.append(("F21 QUIT during a 50 MB download: completes, then the master exits", quit_during_download))


def config_test():
    sl = Sluice(start=False)
    sl.port = free_port()
    good = sl.write_config()
    rc, out = run_sluice(["-t", "-f", good])
    expect_eq(rc, 0, "exit code for a good config", out)
    bad = os.path.join(sl.tmp, "bad.conf")
    text = sl.config()
    with open(bad, "w") as f:
        f.write(text + "timeouts = { upstream = -5; };\n")
    rc, out = run_sluice(["-t", "-f", bad])
    expect_eq(rc, 1, "exit code for a bad config", out)
    expect("bad.conf:%d" % (text.count("\n") + 1) in out, "no file:line in %r" % out)


T.append(("sluice -t: 0 for a good config, 1 and file:line for a bad one", config_test))


def pidfile_lock():
    sl = Sluice()
    other = Sluice(start=False, tmp=tempdir())
    other.pidfile = sl.pidfile
    other.port = free_port()
    conf = other.write_config()
    p = subprocess.Popen([SLUICE, "-d", "-f", conf], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise Fail("second instance with the same pidfile kept running")
    expect_eq(p.returncode, 1, "exit code", out)
    expect(out.strip(), "no message")
    expect(sl.alive() and request(sl.port, build("GET", new_origin().url("/"))).status == 200,
           "first instance harmed")
    sl.stop()


T.append(("a second instance with the same pidfile refuses to start", pidfile_lock))


def stop_via_pidfile():
    sl = Sluice()
    expect(poll(lambda: os.path.exists(sl.pidfile) and open(sl.pidfile).read().strip() == str(sl.pid), 5),
           "pidfile does not hold the master pid")
    workers = sl.worker_pids()
    rc, out = run_sluice(["-s", "stop", "-f", sl.conf_path])
    expect_eq(rc, 0, "sluice -s stop exit code", out)
    try:
        mrc = sl.proc.wait(15)
    except subprocess.TimeoutExpired:
        raise Fail("master still running after -s stop")
    expect_eq(mrc, 0, "master exit code")
    expect(poll(lambda: not any(pid_alive(w) for w in workers), 5), "workers survived")
    expect(poll(lambda: not os.path.exists(sl.pidfile), 3), "pidfile left behind")


T.append(("sluice -s stop stops the instance via the pidfile", stop_via_pidfile))

main(T)
