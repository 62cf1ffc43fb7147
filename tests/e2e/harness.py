"""
harness.py - the end-to-end test harness of sluice.

A test file is data: a list of named cases, each a function that starts
nothing it does not need, sends real bytes over loopback and asserts on
what the client got and what the origin received.  This module gives:

  TAP      TAP output ("1..N", "ok n - name", "# diag"); run(cases) runs
           every case, an exception is "not ok" with its traceback and
           the next case runs anyway.
  Sluice   writes a libconfig config into a private temp dir, starts
           `$SLUICE -d -f CONF`, waits until the port accepts, and knows
           the master pid, worker pids, access log and stderr.
  Client   raw-socket HTTP client: send any bytes, read one response
           (status, fields, body by CL / chunked / close), tell whether
           the proxy closed the connection.
  curl()   runs curl through the proxy.

Assumptions: Linux /proc; tests may run as root (then sluice is told to
drop to nobody/nogroup and the temp dir is made world-writable); several
test files run in parallel, so every port is picked at run time and each
instance gets its own temp dir; nothing sleeps a fixed time to wait for
readiness: poll() is the one waiting primitive.

Environment: SLUICE (binary), SRCDIR (source tree), KEEP=1 keeps temp
dirs, VERBOSE=1 prints sluice's stderr as diagnostics on failure.
"""

import atexit
import os
import re
import shutil
import signal as _signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

SRCDIR = os.environ.get("SRCDIR", os.path.dirname(os.path.dirname(HERE)))
SLUICE = os.environ.get("SLUICE", os.path.join(SRCDIR, "sluice"))

_cleanups = []


def _run_cleanups():
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception:
            pass


atexit.register(_run_cleanups)


# ---------------------------------------------------------------------------
# TAP

class Fail(AssertionError):
    """A failed expectation inside a case."""


class Skip(Exception):
    """Raised inside a case to report it as skipped."""


def expect(cond, msg="expectation failed", *diag):
    """Fail the current case with msg (and diagnostics) unless cond."""
    if not cond:
        raise Fail("\n".join([msg] + [str(d) for d in diag]))


def expect_eq(got, want, what="value", *diag):
    if got != want:
        raise Fail("\n".join(["%s: got %r, want %r" % (what, got, want)] + [str(d) for d in diag]))


def expect_in(got, allowed, what="value", *diag):
    if got not in allowed:
        raise Fail("\n".join(["%s: got %r, want one of %r" % (what, got, allowed)] + [str(d) for d in diag]))


class TAP:
    """TAP producer.  Either declare a plan and call check()/ok(), or
    hand a list of (name, fn) to run()."""

    def __init__(self):
        self.n = 0
        self.failed = 0
        self.planned = None

    def plan(self, n):
        self.planned = n
        print("1..%d" % n, flush=True)

    def diag(self, msg):
        for ln in str(msg).splitlines() or [""]:
            print("# " + ln, flush=True)

    def ok(self, cond, name, diag=None):
        self.n += 1
        name = re.sub(r"#(\d)", r"H\1", name)      # "#1" would read as a TAP directive
        name = re.sub(r"[#\r\n]", "_", name)
        print("%s %d - %s" % ("ok" if cond else "not ok", self.n, name), flush=True)
        if not cond:
            self.failed += 1
            if diag:
                self.diag(diag)
        return cond

    def check(self, name, cond, diag=None):
        return self.ok(cond, name, diag)

    def skip(self, name, reason):
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, name, reason), flush=True)

    def run(self, cases, setup_error=None):
        """Run [(name, fn)]; fn() raises Fail/Skip/anything.  A final
        case checks that no sluice instance reported a sanitizer error."""
        self.plan(len(cases) + 1)
        for name, fn in cases:
            if setup_error:
                self.ok(False, name, "setup failed: " + setup_error)
                continue
            t0 = time.monotonic()
            try:
                fn()
            except Skip as e:
                self.skip(name, str(e))
                continue
            except Fail as e:
                self.ok(False, name, "%s\n(%.2fs)" % (e, time.monotonic() - t0))
                continue
            except Exception:
                self.ok(False, name, traceback.format_exc())
                continue
            self.ok(True, name)
        bad = []
        for s in Sluice.instances:
            txt = s.stderr_text()
            for pat in ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                        "UndefinedBehaviorSanitizer"):
                if pat in txt:
                    bad.append("%s: %s" % (s.tmp, pat))
        self.ok(not bad, "no sanitizer report in any sluice stderr",
                "\n".join(bad + [s.stderr_text()[-3000:] for s in Sluice.instances if bad]))


_registry = []


def case(name):
    """Decorator: register fn as a named case of this file."""
    def deco(fn):
        _registry.append((name, fn))
        return fn
    return deco


def main(cases=None, setup=None):
    """Run the registered cases (or the given list); exit 0 unless the
    harness itself crashed."""
    t = TAP()
    err = None
    if not os.access(SLUICE, os.X_OK):
        err = "no executable sluice at %s (set SLUICE)" % SLUICE
    elif setup:
        try:
            setup()
        except Exception:
            err = traceback.format_exc()
    try:
        t.run(cases if cases is not None else _registry, setup_error=err)
    finally:
        _run_cleanups()
    sys.exit(0)


# ---------------------------------------------------------------------------
# waiting, ports, temp dirs

def poll(fn, timeout=10.0, interval=0.02):
    """Call fn until it returns a true value; return that value, or the
    last (false) value after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)
        interval = min(interval * 1.5, 0.2)


def free_port(host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((host, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def tempdir(prefix="sluice-e2e-"):
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o777)
    if not os.environ.get("KEEP"):
        _cleanups.append(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


# ---------------------------------------------------------------------------
# libconfig rendering

def _lc_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _lc_value(v, ind):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return _lc_str(v)
    if isinstance(v, dict):
        inner = "".join("%s  %s = %s;\n" % (ind, k, _lc_value(x, ind + "  "))
                        for k, x in v.items() if x is not None)
        return "{\n" + inner + ind + "}"
    if isinstance(v, (list, tuple)):
        if any(isinstance(x, dict) for x in v):
            return "(\n" + ",\n".join(ind + "  " + _lc_value(x, ind + "  ") for x in v) + "\n" + ind + ")"
        return "[" + ", ".join(_lc_value(x, ind) for x in v) + "]"
    raise TypeError("cannot render %r" % (v,))


def render_config(d):
    """A python dict as libconfig text (dict = group, list of dicts =
    list, other lists = array; None drops the key)."""
    return "".join("%s = %s;\n" % (k, _lc_value(v, "")) for k, v in d.items() if v is not None)


def merge(base, over):
    """Deep-merge dict over into a copy of base (None deletes)."""
    out = dict(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


# ---------------------------------------------------------------------------
# the daemon

class StartError(Exception):
    pass


class Sluice:
    """One sluice instance in its own temp dir."""

    instances = []

    def __init__(self, conf=None, raw="", workers=2, dns_port=None, start=True, tmp=None):
        self.tmp = tmp or tempdir()
        self.conf_path = os.path.join(self.tmp, "sluice.conf")
        self.stderr_path = os.path.join(self.tmp, "stderr.log")
        self.stdout_path = os.path.join(self.tmp, "stdout.log")
        self.access_log = os.path.join(self.tmp, "access.log")
        self.pidfile = os.path.join(self.tmp, "sluice.pid")
        self.proc = None
        self.port = None
        self.workers = workers
        self.dns_port = dns_port
        self.overrides = conf or {}
        self.raw = raw
        self.preexec = None        # e.g. a setrlimit for the daemon
        self.env = None            # environment of sluice (None: inherit)
        # one shm segment per instance, kept across its restarts
        self.shm_name = "/sluice-test-%d-%d" % (os.getpid(), len(Sluice.instances))
        Sluice.instances.append(self)
        _cleanups.append(self._kill_all)
        if start:
            self.start()

    def config(self, port=None):
        port = port or self.port
        d = {
            "workers": self.workers,
            "pidfile": self.pidfile,
            "error_log": "stderr",
            "access_log": {"path": self.access_log, "format": "squid"},
            "listen": [{"address": "127.0.0.1", "port": port}],
            "clients": ["127.0.0.0/8", "::1/128"],
            "blocked_destinations": [],
            "visible_hostname": "sluice-test",
            "cache": {"shm_name": self.shm_name, "size": "32M"},
            "timeouts": {"client_header": 10, "keepalive": 30, "connect": 5,
                         "upstream": 20, "idle": 30, "shutdown": 10},
        }
        if os.geteuid() == 0:
            d["user"] = "nobody"
            d["group"] = "nogroup"
        if self.dns_port:
            d["dns"] = {"servers": ["127.0.0.1:%d" % self.dns_port]}
        d = merge(d, self.overrides)
        return render_config(d) + self.raw

    def write_config(self, conf=None, raw=None, path=None):
        """(Re)write the config file; conf/raw replace the overrides."""
        if conf is not None:
            self.overrides = conf
        if raw is not None:
            self.raw = raw
        path = path or self.conf_path
        with open(path, "w") as f:
            f.write(self.config())
        os.chmod(path, 0o644)
        return path

    def start(self, timeout=10):
        last = ""
        for attempt in range(3):
            self.port = free_port()
            self.write_config()
            for p in (self.access_log,):
                # the workers may run as nobody: let them create/append
                open(p, "a").close()
                os.chmod(p, 0o666)
            self._err = open(self.stderr_path, "ab")
            self._out = open(self.stdout_path, "ab")
            self.proc = subprocess.Popen([SLUICE, "-d", "-f", self.conf_path],
                                         stdout=self._out, stderr=self._err,
                                         stdin=subprocess.DEVNULL, preexec_fn=self.preexec,
                                         env=self.env)
            if poll(lambda: self.proc.poll() is not None or self._accepts(), timeout):
                if self.proc.poll() is None:
                    # The master listens before it forks: wait for the
                    # workers too, so a test that records worker pids
                    # sees them all (not fatal: some tests kill them).
                    self.wait_workers(timeout=5)
                    return self
            rc = self.proc.poll()
            last = self.stderr_text()[-2000:]
            if rc is None:
                self._kill_all()
                raise StartError("sluice did not accept on port %d within %ss\n%s"
                                 % (self.port, timeout, last))
            if "in use" not in last:
                break
        raise StartError("sluice exited with %r at start:\n%s" % (self.proc.returncode, last))

    def _accepts(self):
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=0.5)
            s.close()
            return True
        except OSError:
            return False

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def worker_pids(self):
        """Live children of the master (the workers)."""
        if not self.alive():
            return []
        pid = self.pid
        pids = set()
        try:
            for t in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                    pids.update(int(x) for x in f.read().split())
            return sorted(pids)
        except OSError:
            pass
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open("/proc/%s/stat" % d) as f:
                        st = f.read()
                    if int(st[st.rindex(")") + 2:].split()[1]) == pid:
                        pids.add(int(d))
                except (OSError, ValueError):
                    pass
        return sorted(pids)

    def wait_workers(self, n=None, timeout=10):
        n = self.workers if n is None else n
        return poll(lambda: len(self.worker_pids()) == n, timeout)

    def access_log_lines(self):
        try:
            with open(self.access_log, "rb") as f:
                return f.read().splitlines()
        except OSError:
            return []

    def wait_log_lines(self, n, timeout=5):
        """Wait until the access log has at least n lines; return them."""
        poll(lambda: len(self.access_log_lines()) >= n, timeout)
        return self.access_log_lines()

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def reload(self):
        self.signal(_signal.SIGHUP)

    def stop(self, sig=_signal.SIGTERM, timeout=15):
        """Signal the master and wait for it; returns its exit code."""
        if not self.proc:
            return None
        workers = self.worker_pids()
        if self.proc.poll() is None:
            os.kill(self.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_all()
        for w in workers:
            # a worker outliving the master is a finding; clean up only ours
            if poll(lambda: not _pid_alive(w), 3) is False or _pid_alive(w):
                try:
                    os.kill(w, _signal.SIGKILL)
                except OSError:
                    pass
        return self.proc.returncode

    def _kill_all(self):
        shm = "/dev/shm" + self.shm_name
        if not self.proc:
            if os.path.exists(shm) and not self.shm_kept():
                os.unlink(shm)
            return
        workers = self.worker_pids()
        if self.proc.poll() is None:
            try:
                self.proc.kill()
                self.proc.wait(5)
            except Exception:
                pass
        for w in workers:
            try:
                os.kill(w, _signal.SIGKILL)
            except OSError:
                pass
        # a killed master leaves its segment: never leak one from a test
        try:
            os.unlink(shm)
        except OSError:
            pass

    def shm_kept(self):
        return False

    def diag(self):
        return "sluice stderr (tail):\n" + self.stderr_text()[-1500:]

    def url_port(self):
        return self.port


def _pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
        return st[st.rindex(")") + 2] != "Z"
    except OSError:
        return False


def rss_kb(pid):
    """VmRSS of pid in kB (None if gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    return int(ln.split()[1])
    except OSError:
        return None
    return None


def run_sluice(args, timeout=20):
    """Run $SLUICE with args to completion: (rc, stdout+stderr text)."""
    p = subprocess.run([SLUICE] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


# ---------------------------------------------------------------------------
# raw client

class Response:
    def __init__(self):
        self.version = None
        self.status = None
        self.reason = None
        self.headers = []
        self.raw = b""
        self.raw_head = b""
        self.body = b""
        self.chunked = False
        self.complete = False      # body framing completed (CL reached / last-chunk / EOF for close)
        self.eof = False           # the proxy closed (FIN or RST) while/after we read
        self.timed_out = False
        self.interim = []          # 1xx responses before this one

    def header(self, name, default=None):
        v = self.header_all(name)
        return v[0] if v else default

    def header_all(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def conn_close(self):
        return any("close" in v.lower() for v in self.header_all("connection"))

    def __repr__(self):
        return "<Response %s %s headers=%r body=%r%s%s>" % (
            self.status, self.reason, self.headers, self.body[:300],
            " EOF" if self.eof else "", " TIMEOUT" if self.timed_out else "")


class Client:
    """One raw TCP connection to the proxy."""

    def __init__(self, port, host="127.0.0.1", bind=None, timeout=10):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        if bind:
            self.sock.bind((bind, 0))
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = b""
        self.eof = False
        self.timeout = timeout
        self.all = b""             # the bytes received (first 4 MiB)
        self.nbytes = 0            # how many bytes were received

    def send(self, data):
        self.sock.sendall(data)
        return self

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def _more(self, deadline):
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout()
        self.sock.settimeout(left)
        try:
            d = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        self.nbytes += len(d)
        if len(self.all) < (4 << 20):   # a transcript for assertions, bounded
            self.all += d
        return True

    def _line(self, deadline):
        while b"\n" not in self.buf:
            if not self._more(deadline):
                return None
        i = self.buf.index(b"\n")
        ln, self.buf = self.buf[:i + 1], self.buf[i + 1:]
        return ln

    def _exact(self, n, deadline):
        while len(self.buf) < n and self._more(deadline):
            pass
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_some(self, n, timeout=None):
        """Up to n bytes of raw data (returns what arrived by timeout)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            while len(self.buf) < n and self._more(deadline):
                pass
        except socket.timeout:
            pass
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, method="GET", timeout=None, stop_at_1xx=False):
        """Read one response (skipping 1xx into .interim unless
        stop_at_1xx).  Never raises on timeout: .timed_out is set."""
        deadline = time.monotonic() + (timeout or self.timeout)
        r = Response()
        try:
            while True:
                head = b""
                while True:
                    ln = self._line(deadline)
                    if ln is None:
                        r.raw += head + self.buf
                        r.eof = True
                        return r
                    head += ln
                    if ln in (b"\r\n", b"\n"):
                        break
                r.raw += head
                lines = head.rstrip(b"\r\n").split(b"\n")
                sl = lines[0].rstrip(b"\r").decode("latin-1").split(" ", 2)
                status = int(sl[1]) if len(sl) > 1 and sl[1].isdigit() else None
                hdrs = []
                for ln in lines[1:]:
                    ln = ln.rstrip(b"\r").decode("latin-1")
                    if ":" in ln:
                        k, v = ln.split(":", 1)
                        hdrs.append((k, v.strip()))
                if status is not None and 100 <= status < 200 and status != 101 and not stop_at_1xx:
                    ir = Response()
                    ir.version, ir.status, ir.headers, ir.raw_head = sl[0], status, hdrs, head
                    ir.reason = sl[2] if len(sl) > 2 else ""
                    r.interim.append(ir)
                    continue
                r.version = sl[0]
                r.status = status
                r.reason = sl[2] if len(sl) > 2 else ""
                r.headers = hdrs
                r.raw_head = head
                break
            if method == "HEAD" or r.status in (204, 304) or (r.status and r.status < 200) \
                    or (method == "CONNECT" and r.status and 200 <= r.status < 300):
                r.complete = True
                return r
            te = r.header("transfer-encoding")
            cl = r.header("content-length")
            if te and "chunked" in te.lower():
                r.chunked = True
                while True:
                    ln = self._line(deadline)
                    if ln is None:
                        r.eof = True
                        return r
                    r.raw += ln
                    size = ln.split(b";")[0].strip()
                    try:
                        n = int(size, 16)
                    except ValueError:
                        return r
                    if n == 0:
                        while True:
                            t = self._line(deadline)
                            if t is None:
                                r.eof = True
                                return r
                            r.raw += t
                            if t in (b"\r\n", b"\n"):
                                break
                        r.complete = True
                        return r
                    d = self._exact(n + 2, deadline)
                    r.raw += d
                    r.body += d[:n]
                    if len(d) < n + 2:
                        r.eof = True
                        return r
            elif cl is not None and cl.strip().isdigit():
                n = int(cl)
                d = self._exact(n, deadline)
                r.raw += d
                r.body = d
                r.complete = len(d) == n
                if not r.complete:
                    r.eof = True
                return r
            else:
                while self._more(deadline):
                    pass
                r.body, self.buf = self.buf, b""
                r.raw += r.body
                r.eof = r.complete = True
                return r
        except socket.timeout:
            r.timed_out = True
            r.raw += self.buf
            return r

    def wait_closed(self, timeout=3):
        """True if the proxy closes the connection within timeout
        (bytes arriving meanwhile are kept in .extra)."""
        deadline = time.monotonic() + timeout
        try:
            while self._more(deadline):
                pass
        except socket.timeout:
            return False
        return True

    @property
    def extra(self):
        return self.buf

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def request(port, raw, method=None, timeout=10, bind=None, close_wait=None):
    """Send raw on a new connection, read one response.  With
    close_wait, also wait that long for the proxy to close (.closed)."""
    if method is None:
        method = raw.split(b" ", 1)[0].decode("latin-1")
    c = Client(port, bind=bind, timeout=timeout)
    try:
        try:
            c.send(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass    # the proxy may answer and close before reading it all
        r = c.read_response(method=method, timeout=timeout)
        r.closed = None
        if close_wait is not None:
            r.closed = r.eof or c.wait_closed(close_wait)
        r.client = c
        return r
    finally:
        if close_wait is not None:
            c.close()


def get(port, url, headers=(), version="HTTP/1.1", method="GET", body=None, timeout=10):
    """A well-formed absolute-form request through the proxy."""
    return request(port, build(method, url, headers, version, body), method=method, timeout=timeout)


def build(method, url, headers=(), version="HTTP/1.1", body=None, host=True):
    """Request bytes: request line, Host (from the URL) unless given or
    host=False, the headers, Content-Length for a body."""
    out = ("%s %s %s\r\n" % (method, url, version)).encode("latin-1")
    names = [h[0].lower() for h in headers]
    if host and "host" not in names:
        m = re.match(r"^[a-z]+://([^/?#]*)", url)
        if m:
            out += b"Host: " + m.group(1).encode("latin-1") + b"\r\n"
    for k, v in headers:
        out += (k if isinstance(k, bytes) else k.encode("latin-1")) + b": " + \
            (v if isinstance(v, bytes) else str(v).encode("latin-1")) + b"\r\n"
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        out += b"Content-Length: %d\r\n" % len(body)
    out += b"\r\n"
    if body is not None:
        out += body
    return out


def admin_sluice(conf=None, **kw):
    """A Sluice with an admin listener on a free loopback port
    (sl.admin_port), for /stats."""
    port = free_port()
    sl = Sluice(conf=merge({"admin": {"address": "127.0.0.1", "port": port}}, conf or {}),
                **kw)
    sl.admin_port = port
    return sl


def admin_stats(sl, timeout=10):
    """The parsed /stats document of sl's admin listener."""
    import json
    r = request(sl.admin_port, b"GET /stats HTTP/1.1\r\nHost: a\r\n\r\n",
                timeout=timeout, close_wait=3)
    expect_eq(r.status, 200, "admin /stats status", r)
    return json.loads(r.body.decode("ascii"))


def proc_age(pid):
    """Seconds since pid started (0 if unknown)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
        start = int(st[st.rindex(")") + 2:].split()[19])
        with open("/proc/uptime") as f:
            up = float(f.read().split()[0])
        return up - start / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0


_faults = None


def has_faults():
    """Is this sluice a fault-injection build (SLUICE_FAULTS works)?"""
    global _faults
    if _faults is None:
        out = subprocess.run([SLUICE, "-V"], capture_output=True, text=True).stdout
        _faults = "fault-injection=yes" in out
    return _faults


def expect_error_page(r, statuses, close=True):
    """r is one of sluice's own error answers: status in statuses, a
    short text/html page, Connection: close and a closed connection."""
    expect_in(r.status, statuses, "status")
    ct = r.header("Content-Type") or ""
    expect(ct.startswith("text/html"), "Content-Type %r" % ct, r)
    if close:
        expect(r.conn_close(), "no Connection: close", r)
        closed = r.eof or r.client.wait_closed(3)
        expect(closed, "connection not closed after %s" % r.status)


def still_serving(sl, origin, path="/still-serving"):
    """After a hostile case: a fresh connection still gets a 200."""
    r = get(sl.port, origin.url(path), headers=[("Connection", "close")])
    expect(r.status == 200, "proxy stopped serving after the case: %r" % r, sl.diag())


def curl(port, url, *args, timeout=30, bind=None):
    """curl through the proxy: (exit code, http status, body, stderr)."""
    cmd = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-x", "http://127.0.0.1:%d" % port,
           "--max-time", str(timeout)]
    if bind:
        cmd += ["--interface", bind]
    cmd += list(args) + [url]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout + 5)
    out = p.stdout
    i = out.rfind(b"\n")
    code = out[i + 1:].decode() if i >= 0 else ""
    return p.returncode, int(code) if code.isdigit() else None, out[:max(i, 0)], \
        p.stderr.decode("utf-8", "replace")


def fakedns(records):
    """Start the fake DNS server (fakedns.py) with records such as
    {"a.test": "A:127.0.0.1", "slow.test": "DROP"}; returns the
    running server (.port, .count(name)); stopped at exit."""
    import fakedns as fd
    d = fd.FakeDNS(records).start()
    on_exit(d.stop)
    return d


def need_sluice():
    if not os.access(SLUICE, os.X_OK):
        raise Skip("no sluice binary at %s" % SLUICE)


pid_alive = _pid_alive


def on_exit(fn):
    """Run fn when the test file ends (origins, extra daemons)."""
    _cleanups.append(fn)


def new_origin(handler=None, **kw):
    """An Origin stopped automatically at exit."""
    import origin as _o
    o = _o.Origin(handler, **kw)
    on_exit(o.stop)
    return o
