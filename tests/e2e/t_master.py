#!/usr/bin/env python3
"""
t_master.py - the master process under faults (HOSTILE F3, F4) and its
lifecycle edges: master SIGKILLed, a worker crash loop, SIGTERM during a
download, a reload that changes the worker count, a reload refused for
a non-reloadable directive, a listen port already taken.

Workers are the master's children (/proc/PID/task/*/children).  To show
that one particular worker serves, the others are SIGSTOPped (and the
test waits until /proc says they are stopped): a stopped process is not
sleeping in epoll_wait, so the EPOLLEXCLUSIVE wakeup for a new
connection goes to the one that is.  Every wait is a poll on /proc, a
socket or a log file; nothing sleeps a fixed time for readiness.
"""
import os
import re
import signal
import socket
import subprocess
import threading
from harness import *
from origin import *

T = []


def proc_state(pid):
    """The one-letter state of pid from /proc (None if gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
        return st[st.rindex(")") + 2]
    except (OSError, ValueError, IndexError):
        return None


def served_by_each(sl, origin, pids, path="/each"):
    """For every pid in pids: stop the others, GET through the proxy,
    expect a 200.  Returns a list of failures (empty: all served)."""
    bad = []
    for w in pids:
        others = [p for p in pids if p != w]
        try:
            for p in others:
                os.kill(p, signal.SIGSTOP)
            stopped = poll(lambda: all(proc_state(p) in ("T", "t", None) for p in others), 5)
            if not stopped:
                bad.append("pid %d: the others never stopped" % w)
                continue
            r = get(sl.port, origin.url(path), headers=[("Connection", "close")], timeout=5)
            if r.client:
                r.client.close()
            if r.status != 200:
                bad.append("pid %d: %r" % (w, r))
        finally:
            for p in others:
                try:
                    os.kill(p, signal.SIGCONT)
                except OSError:
                    pass
    return bad


def ok_request(sl, origin, path="/ok"):
    r = get(sl.port, origin.url(path), headers=[("Connection", "close")], timeout=5)
    if r.client:
        r.client.close()
    return r


# ---------------------------------------------------------------------------
# F4: the master is SIGKILLed

def master_killed():
    o = new_origin()
    sl = Sluice()
    expect(sl.wait_workers(2), "workers never reached 2", sl.worker_pids(), sl.diag())
    workers = sl.worker_pids()
    port = sl.port
    os.kill(sl.pid, signal.SIGKILL)
    sl.proc.wait(5)
    gone = poll(lambda: not any(pid_alive(w) for w in workers), 5)
    left = [w for w in workers if pid_alive(w)]
    for w in left:                       # do not let them hold the port
        try:
            os.kill(w, signal.SIGKILL)
        except OSError:
            pass
    expect(gone, "workers %r outlived the SIGKILLed master by 5 s" % left, sl.diag())

    # A new instance on the very same config file (same port, pidfile).
    s2 = Sluice(start=False, tmp=sl.tmp)
    s2.port = port
    s2.stderr_path = os.path.join(sl.tmp, "stderr2.log")
    s2._err = open(s2.stderr_path, "ab")
    s2.proc = subprocess.Popen([SLUICE, "-d", "-f", sl.conf_path], stdout=subprocess.DEVNULL,
                               stderr=s2._err, stdin=subprocess.DEVNULL)
    up = poll(lambda: s2.proc.poll() is not None or s2._accepts(), 10)
    expect(up and s2.alive(), "second instance on the same config did not start (rc %r)"
           % s2.proc.poll(), s2.diag())
    expect(poll(lambda: os.path.exists(sl.pidfile) and
                open(sl.pidfile).read().strip() == str(s2.pid), 5),
           "pidfile does not hold the new master pid")
    r = ok_request(s2, o, "/after-master-kill")
    expect_eq(r.status, 200, "status through the new instance", r, s2.diag())
    s2.stop()


T.append(("F4 master SIGKILLed: workers exit, a new instance starts on the same config and serves",
          master_killed))


# ---------------------------------------------------------------------------
# F3: crash loop

RESPAWN_RE = re.compile(r"worker (\d+) \(generation \d+, slot (\d+)\) killed by signal 9"
                        r" after (\d+) ms; respawning in (\d+) s")


def crash_loop():
    o = new_origin()
    sl = Sluice()
    expect(sl.wait_workers(2), "workers never reached 2", sl.worker_pids(), sl.diag())
    maxseen = [0]

    def count():
        n = len(sl.worker_pids())
        maxseen[0] = max(maxseen[0], n)
        return n

    current = sl.worker_pids()
    victim = current[0]
    # the first victim must look healthy (ran >= 1 s) to the backoff
    expect(poll(lambda: proc_age(victim) >= 1.2, 5), "worker age never reached 1.2 s")
    kills = [victim]
    appeared = []                        # (pid, seconds from the kill)
    os.kill(victim, signal.SIGKILL)
    for i in range(4):                   # the first replacement and three more
        t_kill = time.monotonic()
        prev = set(current)

        def replacement():
            ws = sl.worker_pids()
            count()
            new = [w for w in ws if w not in prev]
            return new[0] if new else None
        nw = poll(replacement, 12)
        expect(nw, "no replacement %d after killing %d" % (i + 1, kills[-1]),
               sl.worker_pids(), sl.diag())
        appeared.append((nw, time.monotonic() - t_kill))
        current = sl.worker_pids()
        count()
        if i == 3:
            break
        os.kill(nw, signal.SIGKILL)       # right after it appears: < 1 s old
        kills.append(nw)
    expect(maxseen[0] <= 2, "saw %d workers (configured 2)" % maxseen[0])
    restored = poll(lambda: count() == 2, 10)
    expect(restored, "worker count not restored: %r" % sl.worker_pids(), sl.diag())
    expect(maxseen[0] <= 2, "saw %d workers (configured 2)" % maxseen[0])
    # The log: one line per kill, delays growing for the quick deaths.
    def logged():
        ms = [m for m in RESPAWN_RE.findall(sl.stderr_text()) if int(m[0]) in kills]
        return ms if len(ms) == len(kills) else None
    msgs = poll(logged, 5)
    expect(msgs, "not every kill was logged with a respawn delay: %r"
           % RESPAWN_RE.findall(sl.stderr_text()), sl.diag())
    delays = [int(m[3]) for m in msgs]
    expect_eq(len(set(m[1] for m in msgs)), 1, "slots of the victims", msgs)
    # the first victim had run > 1 s: no delay; then 1, 2, 4 s
    expect_eq(delays, [0, 1, 2, 4], "respawn delays", sl.diag())
    # The respawn really waited (not just logged): replacement i came
    # at least delay i after the kill (small slack for clock rounding).
    for (pid, dt), d in zip(appeared, delays):
        expect(dt >= d - 0.2, "replacement %d appeared %.2fs after the kill, delay was %d s"
               % (pid, dt, d))
    r = ok_request(sl, o, "/after-crash-loop")
    expect_eq(r.status, 200, "status after the crash loop", r)
    bad = served_by_each(sl, o, sl.worker_pids())
    expect(not bad, "not every worker serves: %r" % bad, sl.diag())
    sl.stop()


T.append(("F3 crash loop: growing respawn delays, never more workers than configured, recovery",
          crash_loop))


# ---------------------------------------------------------------------------
# SIGTERM while a slow download is in flight

SLOW_SIZE = 10 * 1024 * 1024


def slow_origin():
    def h(conn):
        req = conn.read_request()
        if req is None:
            return
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % SLOW_SIZE)
        t_end = time.monotonic() + 40
        while time.monotonic() < t_end and not conn.closed:
            try:
                conn.sock.sendall(b"x" * 1024)
            except OSError:
                return
            time.sleep(0.05)
    return new_origin(h)


def term_during_download():
    o = slow_origin()
    sl = Sluice()
    expect(sl.wait_workers(2), "workers", sl.diag())
    c = Client(sl.port, timeout=10)
    on_exit(c.close)
    c.send(build("GET", o.url("/slow")))
    deadline = time.monotonic() + 10
    while b"\r\n\r\n" not in c.buf or len(c.buf) < 4096:
        expect(c._more(deadline), "no response head / body", c.buf[:200])
    expect(b" 200 " in c.buf.split(b"\r\n")[0], "status line %r" % c.buf[:60])
    workers = sl.worker_pids()
    t0 = time.monotonic()
    sl.signal(signal.SIGTERM)
    # the client: the connection is cut (EOF or reset), not left hanging
    cut = None
    try:
        cut = c.wait_closed(6)
    except OSError:
        cut = True
    t_cut = time.monotonic() - t0
    try:
        rc = sl.proc.wait(8)
    except subprocess.TimeoutExpired:
        rc = None
    t_exit = time.monotonic() - t0
    expect(rc is not None, "master still running %.1fs after SIGTERM" % t_exit, sl.diag())
    expect_eq(rc, 0, "master exit code", sl.diag())
    expect(t_exit < 5, "master took %.1fs to exit after SIGTERM" % t_exit, sl.diag())
    expect(cut, "client connection still open %.1fs after SIGTERM" % t_cut)
    expect(c.nbytes < SLOW_SIZE, "the whole body arrived: not a cut")
    expect("still running; killing them" not in sl.stderr_text(),
           "workers ignored TERM and had to be killed", sl.diag())
    expect(poll(lambda: not any(pid_alive(w) for w in workers), 3), "workers survived")
    pf = sl.pidfile
    expect(not os.path.exists(pf) or open(pf).read().strip() == "",
           "pidfile still holds %r" % (open(pf).read() if os.path.exists(pf) else None))


T.append(("SIGTERM during a slow download: master exits fast, client cut, pidfile gone",
          term_during_download))


# ---------------------------------------------------------------------------
# reload: workers 2 -> 3

def reload_workers():
    o = new_origin()
    sl = Sluice()
    expect(sl.wait_workers(2), "workers", sl.diag())
    old = set(sl.worker_pids())
    sl.write_config(conf=merge(sl.overrides, {"workers": 3}))
    sl.reload()
    expect(poll(lambda: "configuration reloaded" in sl.stderr_text(), 5),
           "no 'configuration reloaded' in stderr", sl.diag())
    maxseen = [0]

    def settled():
        ws = sl.worker_pids()
        maxseen[0] = max(maxseen[0], len([w for w in ws if w not in old]))
        return ws if len(ws) == 3 and not (set(ws) & old) else None
    ws = poll(settled, 15)
    expect(ws, "after HUP: workers %r (old %r)" % (sl.worker_pids(), sorted(old)), sl.diag())
    expect(maxseen[0] <= 3, "saw %d new-generation workers" % maxseen[0])
    expect(not any(pid_alive(w) for w in old), "an old worker is still alive")
    bad = served_by_each(sl, o, ws)
    expect(not bad, "not every new worker serves: %r" % bad, sl.diag())
    # and stays at 3
    expect_eq(len(sl.worker_pids()), 3, "worker count after the requests")
    sl.stop()


T.append(("HUP changing workers 2 -> 3: exactly 3 new-generation workers, each serves",
          reload_workers))


# ---------------------------------------------------------------------------
# reload refused: a non-reloadable directive changed

def reload_refused():
    o = new_origin()
    sl = Sluice()
    expect(sl.wait_workers(2), "workers", sl.diag())
    before = sl.worker_pids()
    newpid = os.path.join(sl.tmp, "other.pid")
    sl.write_config(conf=merge(sl.overrides, {"pidfile": newpid}))
    sl.reload()
    refused = poll(lambda: re.search(r"reload failed.*pidfile.*restart",
                                     sl.stderr_text()), 5)
    expect(refused, "stderr does not say the reload was refused naming pidfile", sl.diag())
    expect(sl.alive(), "master died")
    expect_eq(sl.worker_pids(), before, "worker pids after the refused reload")
    bad = served_by_each(sl, o, before)
    expect(not bad, "old workers do not serve: %r" % bad, sl.diag())
    expect_eq(sl.worker_pids(), before, "worker pids after the requests")
    expect(not os.path.exists(newpid), "the new pidfile was created")
    sl.stop()


T.append(("HUP changing pidfile is refused: same workers keep serving, stderr names pidfile",
          reload_refused))


# ---------------------------------------------------------------------------
# a listen port already in use

def port_in_use():
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    on_exit(busy.close)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    sl = Sluice(start=False)
    sl.port = port
    conf = sl.write_config()
    rc, out = run_sluice(["-d", "-f", conf], timeout=15)
    expect_eq(rc, 1, "exit code", out)
    expect("cannot listen on 127.0.0.1:%d" % port in out, "message: %r" % out)
    pf = sl.pidfile
    expect(not os.path.exists(pf) or open(pf).read().strip() == "",
           "pidfile left holding a pid")


T.append(("listen port already in use: sluice -d exits 1, 'cannot listen on 127.0.0.1:P'",
          port_in_use))

main(T)
