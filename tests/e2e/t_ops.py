#!/usr/bin/env python3
"""
t_ops.py - operating sluice: what an administrator relies on beyond the
forwarding contract.

Reverse listeners next to forward ones, an IPv6 listener and an IPv6
origin, several listeners in one instance, log rotation (USR1 and
`-s reopen`), `-V`, the privilege drop as seen in /proc, the real
daemon mode (no -d: detach, pidfile, `-s quit`), an access log that
cannot be written (/dev/full), a WebSocket upgrade tunnel, and `-t` on
the shipped sample config.

Assumptions: Linux /proc; loopback only (127.0.0.1 and, when it can be
bound, ::1).  The harness's Sluice knows one listener; ExtraSluice below
adds more to the same config, because the harness polls readiness on
its own port only and the extra ports are bound by the same master in
the same startup, before the workers are forked.
"""
import grp
import os
import pwd
import signal
import socket
import subprocess
from harness import *
from origin import *


class ExtraSluice(Sluice):
    """A Sluice whose config lists further listeners after the harness's
    own 127.0.0.1 one (used for readiness)."""

    def __init__(self, extra, conf=None, **kw):
        self.extra = extra
        self.base = conf or {}
        super().__init__(conf=self.base, **kw)

    def config(self, port=None):
        port = port or self.port
        self.overrides = merge(self.base, {
            "listen": [{"address": "127.0.0.1", "port": port}] + self.extra})
        return Sluice.config(self, port)


def fetch(port, url, host="127.0.0.1", headers=()):
    """One GET on its own connection (closed afterwards)."""
    c = Client(port, host=host)
    try:
        c.send(build("GET", url, list(headers)))
        return c.read_response()
    finally:
        c.close()


def accepts(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(0.5)
    try:
        s.connect((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def v6_bindable():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        s.bind(("::1", 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


def children(pid):
    out = set()
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                out.update(int(x) for x in f.read().split())
    except OSError:
        pass
    return sorted(out)


def proc_status(pid):
    """/proc/PID/status as {field: value string}."""
    d = {}
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            k, _, v = ln.partition(":")
            d[k] = v.strip()
    return d


def fds_to(pid, path):
    """How many fds of pid point at path (by readlink)."""
    n = 0
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == path:
                    n += 1
            except OSError:
                pass
    except OSError:
        pass
    return n


def read_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().splitlines()
    except OSError:
        return []


T = []


# ---------------------------------------------------------------------------
# 1. reverse mode next to a forward listener

def reverse_mode():
    o = new_origin()
    rport = free_port()
    sl = ExtraSluice([{"address": "127.0.0.1", "port": rport, "mode": "reverse",
                       "origin": "http://127.0.0.1:%d" % o.port}])
    expect(poll(lambda: accepts("127.0.0.1", rport), 5), "reverse port not accepting", sl.diag())
    raw = b"GET /path?q HTTP/1.1\r\nHost: www.example.test\r\n\r\n"
    r = request(rport, raw, close_wait=None)
    r.client.close()
    expect_eq((r.status, r.body), (200, b"ok GET /path?q"), "reverse response", r, o.summary())
    expect(o.wait_requests(1), "origin got nothing", o.summary())
    req = o.requests[0]
    expect_eq(req.raw_head.split(b"\r\n")[0], b"GET /path?q HTTP/1.1", "request line at the origin")
    expect_eq(req.header_all("Host"), ["www.example.test"], "Host at the origin", req.headers)
    nreq, nconns = o.nreq, o.nconns
    # the same origin-form request on the forward listener: 400, nothing sent
    r = request(sl.port, raw, close_wait=3)
    expect_error_page(r, (400,))
    # CONNECT on the reverse listener: 405, no tunnel opened
    r = request(rport, b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                % (o.port, o.port), close_wait=3)
    expect_eq(r.status, 405, "CONNECT on a reverse listener", r)
    expect_eq((o.nreq, o.nconns), (nreq, nconns), "origin (requests, connections) after 400/405",
              o.summary())
    sl.stop()


T.append(("reverse listener: origin-form kept with Host; forward port 400; CONNECT 405", reverse_mode))


# ---------------------------------------------------------------------------
# 2. IPv6 listener, IPv6 origin

def ipv6():
    if not v6_bindable():
        raise Skip("::1 cannot be bound here")
    o = new_origin(family=socket.AF_INET6)
    p6 = free_port("::1")
    sl = ExtraSluice([{"address": "::1", "port": p6}])
    expect(poll(lambda: accepts("::1", p6), 5), "[::1]:%d not accepting" % p6, sl.diag())
    r = fetch(p6, "http://[::1]:%d/x" % o.port, host="::1")
    expect_eq((r.status, r.body), (200, b"ok GET /x"), "response over IPv6", r, sl.diag())
    expect(o.wait_requests(1), "origin got nothing", o.summary())
    expect_eq(o.requests[0].header_all("Host"), ["[::1]:%d" % o.port], "Host at the origin")
    expect_eq(o.requests[0].target, "/x", "target")
    sl.stop()


T.append(("IPv6: listener on ::1, origin on [::1], Host [::1]:port", ipv6))


# ---------------------------------------------------------------------------
# 3. several forward listeners

def several_listeners():
    o = new_origin()
    p2 = free_port()
    sl = ExtraSluice([{"address": "127.0.0.1", "port": p2, "mode": "forward"}])
    expect(poll(lambda: accepts("127.0.0.1", p2), 5), "second port not accepting", sl.diag())
    for i, p in enumerate((sl.port, p2)):
        r = fetch(p, o.url("/l%d" % i))
        expect_eq((r.status, r.body), (200, b"ok GET /l%d" % i), "port %d" % p, r)
    expect(o.wait_requests(2), "origin requests", o.summary())
    expect_eq(sorted(q.target for q in o.requests), ["/l0", "/l1"], "targets at the origin")
    sl.stop()


T.append(("two forward listeners in one instance both serve", several_listeners))


# ---------------------------------------------------------------------------
# 4. log rotation

def rotate_once(sl, o, suffix, trigger, tag):
    """Rename access.log to access.log.SUFFIX, trigger a reopen, check
    that new lines go to a fresh access.log and the old file is kept."""
    log = sl.access_log
    old = log + suffix
    before = read_lines(log)
    expect(before, "no lines before rotation (%s)" % tag)
    os.rename(log, old)
    workers = sl.worker_pids()
    trigger()
    # every worker has let go of the renamed file and holds the new one
    ok = poll(lambda: os.path.exists(log) and all(fds_to(w, old) == 0 and fds_to(w, log) >= 1
                                                  for w in workers), 5)
    expect(ok, "%s: workers did not reopen: %r" % (
        tag, [(w, fds_to(w, old), fds_to(w, log)) for w in workers]), sl.diag())
    paths = ["/rot-%s-%d" % (tag, i) for i in range(4)]
    for p in paths:
        expect_eq(fetch(sl.port, o.url(p)).status, 200, "status " + p)
    got = poll(lambda: all(any(p.encode() in ln for ln in read_lines(log)) for p in paths), 5)
    expect(got, "%s: new lines not in the fresh access.log" % tag, read_lines(log), read_lines(old))
    expect_eq(len(read_lines(log)), len(paths), "%s: lines in the fresh access.log" % tag,
              read_lines(log))
    expect_eq(read_lines(old), before, "%s: the rotated file changed" % tag)


def log_rotation():
    o = new_origin()
    sl = Sluice()
    expect(sl.wait_workers(2), "workers", sl.diag())
    for i in range(3):
        expect_eq(fetch(sl.port, o.url("/pre%d" % i)).status, 200, "status")
    expect(len(sl.wait_log_lines(3)) == 3, "access log lines before rotation", sl.access_log_lines())
    rotate_once(sl, o, ".1", lambda: os.kill(sl.pid, signal.SIGUSR1), "usr1")

    def via_s():
        rc, out = run_sluice(["-s", "reopen", "-f", sl.conf_path])
        expect_eq(rc, 0, "sluice -s reopen exit code", out)
    rotate_once(sl, o, ".2", via_s, "reopen")
    expect(sl.alive(), "master died")
    sl.stop()


T.append(("log rotation: USR1 and -s reopen write to a fresh access.log", log_rotation))


# ---------------------------------------------------------------------------
# 5. -V

def version():
    rc, out = run_sluice(["-V"])
    expect_eq(rc, 0, "exit code", out)
    lines = out.splitlines()
    expect(lines and lines[0] == "sluice 0.1.0", "first line %r" % (lines[:1],), out)
    for lib in ("libconfig", "PCRE2", "OpenSSL", "c-ares"):
        expect(any(ln.startswith(lib) for ln in lines[1:]), "no line naming %s" % lib, out)


T.append(("sluice -V: version line and library lines", version))


# ---------------------------------------------------------------------------
# 6. privilege drop

def privileges():
    if os.geteuid() != 0:
        raise Skip("not running as root: no privilege drop to observe")
    uid = pwd.getpwnam("nobody").pw_uid
    gid = grp.getgrnam("nogroup").gr_gid
    sl = Sluice()
    expect(sl.wait_workers(2), "workers", sl.diag())
    pids = [sl.pid] + sl.worker_pids()
    for pid in pids:
        st = proc_status(pid)
        who = "pid %d (%s)" % (pid, "master" if pid == sl.pid else "worker")
        expect_eq(st["Uid"].split(), [str(uid)] * 4, who + " Uid")
        expect_eq(st["Gid"].split(), [str(gid)] * 4, who + " Gid")
        expect_eq(st["Groups"], "", who + " Groups")
        expect_eq(st["CapEff"], "0000000000000000", who + " CapEff")
        expect_eq(st.get("NoNewPrivs"), "1", who + " NoNewPrivs")
    sl.stop()


T.append(("privilege drop: master and workers nobody/nogroup, no groups, no caps, NoNewPrivs",
          privileges))


# ---------------------------------------------------------------------------
# 7. daemon mode

def daemon_mode():
    o = new_origin()
    sl = Sluice(start=False)
    errlog = os.path.join(sl.tmp, "error.log")
    sl.overrides = {"error_log": errlog}
    sl.stderr_path = errlog          # the final sanitizer check reads it
    sl.port = free_port()
    conf = sl.write_config()
    open(sl.access_log, "a").close()
    os.chmod(sl.access_log, 0o666)
    out_path = os.path.join(sl.tmp, "start.out")
    state = {"pid": None}

    def cleanup():
        pid = state["pid"]
        if pid and pid_alive(pid):
            kids = children(pid)
            for p in [pid] + kids:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
    on_exit(cleanup)
    # a file, not a pipe: a daemon that kept the pipe open would hang us
    with open(out_path, "wb") as out:
        p = subprocess.Popen([SLUICE, "-f", conf], stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        try:
            rc = p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise Fail("sluice without -d did not return within 15s")
    with open(out_path, "rb") as f:
        start_out = f.read().decode("utf-8", "replace")
    expect_eq(rc, 0, "exit code of the starting command", start_out, read_lines(errlog))
    txt = open(sl.pidfile).read().strip() if os.path.exists(sl.pidfile) else ""
    expect(txt.isdigit(), "pidfile content %r" % txt)
    pid = state["pid"] = int(txt)
    expect(pid_alive(pid), "pid %d from the pidfile is not running" % pid)
    expect(pid != p.pid, "the daemon did not detach (pid %d)" % pid)
    # the command returned once the daemon was up: accepting right away
    expect(accepts("127.0.0.1", sl.port), "daemon not accepting when the command returned")
    r = fetch(sl.port, o.url("/daemon"))
    expect_eq((r.status, r.body), (200, b"ok GET /daemon"), "request through the daemon", r)
    workers = children(pid)
    rc, out = run_sluice(["-s", "quit", "-f", conf])
    expect_eq(rc, 0, "sluice -s quit exit code", out)
    expect(poll(lambda: not pid_alive(pid), 15), "daemon %d still running after -s quit" % pid)
    expect(poll(lambda: not any(pid_alive(w) for w in workers), 5), "workers survived", workers)
    gone = poll(lambda: not os.path.exists(sl.pidfile) or open(sl.pidfile).read().strip() == "", 3)
    expect(gone, "pidfile still holds %r" % (open(sl.pidfile).read() if os.path.exists(sl.pidfile)
                                             else None))


T.append(("daemon mode: detaches, pidfile, serves, -s quit stops it and clears the pidfile",
          daemon_mode))


# ---------------------------------------------------------------------------
# 8. access log on a full disk

def full_disk():
    o = new_origin()
    sl = Sluice({"access_log": {"path": "/dev/full", "format": "squid"}})
    expect(sl.wait_workers(2), "workers", sl.diag())
    before = sl.worker_pids()
    statuses = [fetch(sl.port, o.url("/full%d" % i)).status for i in range(20)]
    expect_eq(statuses, [200] * 20, "statuses", sl.diag())
    expect(o.wait_requests(20), "origin requests", o.summary())
    expect_eq(sl.worker_pids(), before, "worker pids")
    expect(poll(lambda: "dropped" in sl.stderr_text(), 5), "error log does not mention dropped lines",
           sl.diag())
    sl.stop()


T.append(("access log on /dev/full: requests succeed, workers live, drops reported", full_disk))


# ---------------------------------------------------------------------------
# 9. WebSocket tunnel

def ws_origin(conn):
    req = conn.read_request()
    if req is None:
        return
    conn.ws_req = req
    conn.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
    pending = conn.buf            # bytes that arrived with the head
    conn.buf = b""
    if pending:
        conn.sock.sendall(pending)
    conn.sock.settimeout(20)
    while True:
        d = conn.sock.recv(65536)
        if not d:
            break
        conn.sock.sendall(d)
    conn.ws_eof = True
    conn.shutdown_write()


def websocket():
    o = new_origin(ws_origin)
    sl = Sluice()
    c = Client(sl.port)
    c.send(build("GET", o.url("/chat"), [("Connection", "Upgrade"), ("Upgrade", "websocket"),
                                          ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                          ("Sec-WebSocket-Version", "13")]))
    r = c.read_response(timeout=10)
    expect_eq(r.status, 101, "status", r, sl.diag())
    expect_eq((r.header("Upgrade") or "").lower(), "websocket", "Upgrade", r.headers)
    expect("upgrade" in (r.header("Connection") or "").lower(), "Connection", r.headers)
    expect_eq(c.buf, b"", "bytes after the 101 head")
    payload = os.urandom(10240)
    c.send(payload)
    back = c._exact(len(payload), time.monotonic() + 10)
    expect(back == payload, "echo differs: got %d bytes" % len(back))
    c.shutdown_write()
    # read straight from the socket: a reset must not pass for a close
    c.sock.settimeout(5)
    extra = b""
    try:
        while True:
            d = c.sock.recv(65536)
            if not d:
                break
            extra += d
    except ConnectionResetError:
        raise Fail("connection reset instead of closed")
    except socket.timeout:
        raise Fail("proxy did not close after the half-close (origin saw EOF: %s)" % (
            o.conns and getattr(o.conns[0], "ws_eof", False)))
    expect_eq(extra, b"", "bytes after the echo")
    c.close()
    expect(o.wait_conns(1) and getattr(o.conns[0], "ws_eof", False), "origin never saw the EOF")
    req = o.conns[0].ws_req
    expect_eq(req.header_all("Upgrade"), ["websocket"], "Upgrade at the origin", req.headers)
    expect_eq(o.conns[0].errors, [], "origin errors")
    sl.stop()


T.append(("WebSocket: 101 relayed, 10 KB echoed byte-exact, half-close then clean close",
          websocket))


# ---------------------------------------------------------------------------
# 10. the shipped sample config loads

def signal_foreign_pid():
    """-s never signals a process that is not the sluice master holding
    the pidfile: a pid planted in a locked pidfile, and one that only
    matches after truncation to 32 bits (2^32 + pid), are refused."""
    tmp = tempdir()
    pidfile = os.path.join(tmp, "x.pid")
    conf = os.path.join(tmp, "x.conf")
    with open(conf, "w") as f:
        f.write('listen = ({ address = "127.0.0.1"; port = %d; });\npidfile = "%s";\n'
                % (free_port(), pidfile))
    victim = subprocess.Popen(["sleep", "60"])
    try:
        for planted in (victim.pid, (1 << 32) + victim.pid):
            with open(pidfile, "w") as f:
                f.write("%d\n" % planted)
            # hold the lock as a running instance would
            holder = subprocess.Popen(["flock", pidfile, "sleep", "30"])
            try:
                expect(poll(lambda: subprocess.run(["flock", "-n", pidfile, "true"]).returncode != 0, 5),
                       "lock not taken")
                rc, out = run_sluice(["-f", conf, "-s", "stop"])
                expect_eq(rc, 1, "exit code of -s stop", out)
                expect(victim.poll() is None, "the planted pid %d was signalled" % planted)
            finally:
                holder.kill()
                holder.wait()
    finally:
        victim.kill()
        victim.wait()


T.append(("-s refuses a pid that is not the master holding the pidfile (also 2^32 + pid)",
          signal_foreign_pid))


def log_symlink():
    """The error log is opened as root: a symlink planted in the log
    folder (which the run user may own) is not followed."""
    if os.geteuid() != 0:
        raise Skip("needs root")
    tmp = tempdir()
    logdir = os.path.join(tmp, "log")
    os.mkdir(logdir)
    victim = os.path.join(tmp, "victim")
    with open(victim, "w") as f:
        f.write("secret\n")
    os.chmod(victim, 0o600)
    os.symlink(victim, os.path.join(logdir, "error.log"))
    conf = os.path.join(tmp, "s.conf")
    with open(conf, "w") as f:
        f.write('listen = ({ address = "127.0.0.1"; port = %d; });\npidfile = "%s/s.pid";\n'
                'error_log = "%s/error.log";\nuser = "nobody"; group = "nogroup";\n'
                'access_log = { path = ""; };\n' % (free_port(), tmp, logdir))
    rc, out = run_sluice(["-f", conf], timeout=20)
    if rc == 0:
        run_sluice(["-f", conf, "-s", "stop"])
    expect(rc != 0, "started with a symlinked error log", out)
    with open(victim) as f:
        expect_eq(f.read(), "secret\n", "the symlink's target")


T.append(("error log: a planted symlink is not followed (startup fails, target untouched)", log_symlink))


def sample_config():
    path = os.path.join(SRCDIR, "conf", "sluice.conf")
    expect(os.path.exists(path), "no %s" % path)
    rc, out = run_sluice(["-t", "-f", path])
    expect_eq(rc, 0, "sluice -t conf/sluice.conf", out)


T.append(("sluice -t accepts the shipped conf/sluice.conf", sample_config))

main(T)
