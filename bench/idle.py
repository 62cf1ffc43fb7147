#!/usr/bin/env python3
"""bench/idle.py - what an idle keep-alive client connection costs.

Opens N client connections to a proxy, sends one request through each
(absolute-form, to a local origin, in batches so buffers are reused the
way they are on a real server), then leaves every connection open and
idle.  Prints the growth of the proxy worker's resident memory
(VmRSS) and of its anonymous private memory, divided by N.

Runs sluice (workers = 1) and, for comparison, nginx as a proxy
(worker_processes 1) in the same run.  Loopback only.

usage: bench/idle.py [--conns 10000] [--sluice ./sluice]
"""
import argparse
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, deadline=10.0):
    end = time.time() + deadline
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


class Origin(threading.Thread):
    """A tiny keep-alive origin: answers every request with 'ok'."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]

    def run(self):
        while True:
            c, _ = self.sock.accept()
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    @staticmethod
    def serve(c):
        buf = b""
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
                while b"\r\n\r\n" in buf:
                    _, buf = buf.split(b"\r\n\r\n", 1)
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                              b"Cache-Control: no-store\r\n\r\nok")
        except OSError:
            pass


def mem(pid):
    """(VmRSS kB, anonymous private kB) of a process."""
    rss = anon = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Anonymous:"):
                anon = int(line.split()[1])
    return rss, anon


def children(pid):
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(p))
            except (OSError, IndexError, ValueError):
                pass
    return out


def measure(name, port, worker_pid, origin_port, n):
    url = f"http://127.0.0.1:{origin_port}/idle"
    req = (f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1:{origin_port}\r\n\r\n").encode()
    # Warm up: the first requests allocate the buffers every later request reuses.
    for _ in range(200):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req)
        s.recv(4096)
        s.close()
    time.sleep(0.3)
    before = mem(worker_pid)
    socks = []
    batch = 50
    for i in range(0, n, batch):
        group = []
        for _ in range(min(batch, n - i)):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(req)
            group.append(s)
        for s in group:
            got = b""
            while b"ok" not in got:
                d = s.recv(4096)
                if not d:
                    raise SystemExit(f"{name}: connection closed early")
                got += d
        socks.extend(group)
    time.sleep(0.5)
    after = mem(worker_pid)
    res = {
        "peer": name, "conns": n,
        "rss_kb": after[0] - before[0], "anon_kb": after[1] - before[1],
    }
    res["rss_per_conn"] = res["rss_kb"] * 1024 / n
    res["anon_per_conn"] = res["anon_kb"] * 1024 / n
    for s in socks:
        s.close()
    return res


def run_sluice(binary, tmp, origin_port, n):
    port = free_port()
    conf = os.path.join(tmp, "sluice.conf")
    with open(conf, "w") as f:
        f.write(f"""workers = 1;
pidfile = "{tmp}/sluice.pid";
error_log = "{tmp}/sluice-error.log";
access_log = {{ path = ""; }};
listen = ( {{ address = "127.0.0.1"; port = {port}; }} );
clients = [ "127.0.0.0/8" ];
blocked_destinations = [];
timeouts = {{ keepalive = 600; client_header = 600; }};
limits = {{ client_connections = 0; }};
user = "root"; group = "root";
""")
    p = subprocess.Popen([binary, "-d", "-f", conf], stderr=subprocess.DEVNULL)
    try:
        if not wait_port(port):
            raise SystemExit("sluice did not start")
        time.sleep(0.2)
        w = children(p.pid)[0]
        return measure("sluice", port, w, origin_port, n)
    finally:
        p.terminate()
        p.wait()


def run_nginx(tmp, origin_port, n):
    if not shutil.which("nginx"):
        return None
    port = free_port()
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
worker_rlimit_nofile {n + 1000};
events {{ worker_connections {n + 1000}; }}
http {{
  access_log off;
  keepalive_timeout 600;
  keepalive_requests 100000;
  upstream o {{ server 127.0.0.1:{origin_port}; keepalive 16; }}
  server {{ listen 127.0.0.1:{port};
    location / {{ proxy_pass http://o; proxy_http_version 1.1;
                 proxy_set_header Connection ""; }} }}
}}
""")
    p = subprocess.Popen(["nginx", "-c", conf, "-p", tmp], stderr=subprocess.DEVNULL)
    try:
        if not wait_port(port):
            return None
        time.sleep(0.2)
        w = children(p.pid)[0]
        return measure("nginx", port, w, origin_port, n)
    finally:
        p.terminate()
        p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--sluice", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "sluice"))
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < a.conns + 200:
        sys.exit(f"open file limit {hard} too low for {a.conns} connections")
    origin = Origin()
    origin.start()
    tmp = tempfile.mkdtemp(prefix="sluice-idle-")
    os.chmod(tmp, 0o777)
    rows = [run_sluice(os.path.abspath(a.sluice), tmp, origin.port, a.conns)]
    ng = run_nginx(tmp, origin.port, a.conns)
    if ng:
        rows.append(ng)
    print(f"{'peer':8} {'conns':>6} {'RSS growth':>12} {'per conn':>10} "
          f"{'anon growth':>12} {'per conn':>10}")
    for r in rows:
        print(f"{r['peer']:8} {r['conns']:6d} {r['rss_kb']:9d} kB {r['rss_per_conn']:8.0f} B "
              f"{r['anon_kb']:9d} kB {r['anon_per_conn']:8.0f} B")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
