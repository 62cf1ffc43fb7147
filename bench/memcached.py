#!/usr/bin/env python3
"""
memcached.py - benchmark of sluice's memcached tier on this machine.

What it does: an nginx origin serves N objects per size (1 KiB, 16 KiB,
256 KiB, all Cache-Control: max-age=3600); a memcached server holds
them after a filling sluice node (shared mode, a segment big enough for
all of them) fetched each once.  Then, with wrk over the N URLs picked
at random (bench/wrk-many.lua, 64 keep-alive connections), per size:

  shm-hit        the filling node: every object is in its segment
  memcached-hit  a second node, shared mode, whose segment holds about a
                 tenth of the objects: most requests are shm misses that
                 memcached answers (the share is read from its /stats)
  origin         a third node with the cache off: every request goes to
                 nginx

and prints req/s, p50/p99 and the ratio to shm-hit.  A farm run then
sends the same random mix (16 KiB objects) for DURATION seconds to node
A and then to node B of a two-node farm (shared mode, fresh memcached)
and reports each node's share of requests answered without the origin.
Raw figures go to bench/out/memcached-<stamp>.json.

What it assumes: root (sluice drops to nobody), nginx, memcached, wrk,
taskset, 2 CPUs; $SLUICE (default ./sluice) built with memcached, and
an optimized build for figures worth quoting.  Only loopback.

Why it is built this way: the tier only works when the working set is
larger than shm, so one hot URL cannot measure it; the conventions are
bench/cache.sh's (servers on CPU 0, wrk on CPU 1, free ports picked at
run time, every process stopped at exit), so figures compare.
"""
import argparse
import atexit
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SLUICE = os.environ.get("SLUICE", os.path.join(HERE, "..", "sluice"))
CPU_SERVER, CPU_CLIENT = "0", "1"
# memcached is another machine in a farm: it runs beside wrk, not on the
# CPU whose time sluice's figures measure (--memcached-cpu to change)
CPU_MEMCACHED = "1"
SECRET = "bench-secret-for-the-memcached-tier"

# size name: (bytes, objects, segment of the memcached-hit node)
SIZES = {"1k": (1024, 20000, "4M"), "16k": (16384, 4000, "8M"),
         "256k": (262144, 800, "24M")}

procs = []


def log(msg):
    print("[mc-bench] " + msg, file=sys.stderr, flush=True)


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def start(args, logf, cpu=CPU_SERVER):
    p = subprocess.Popen(["taskset", "-c", cpu] + args, stdout=logf,
                         stderr=subprocess.STDOUT, start_new_session=True)
    procs.append(p)
    return p


def stop(p):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except OSError:
            pass
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def stop_all():
    for p in procs:
        stop(p)


def wait_port(port, what, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("%s not listening on %d" % (what, port))


class Node:
    """A sluice instance with an admin listener."""

    def __init__(self, tmp, name, mc_port, shm, mode="shared", cache=True):
        self.port, self.admin = free_ports(2)
        d = os.path.join(tmp, name)
        os.makedirs(d)
        os.chmod(d, 0o777)
        conf = os.path.join(d, "sluice.conf")
        mc = ""
        if mc_port:
            mc = ('memcached = { servers = [ "127.0.0.1:%d" ]; mode = "%s"; '
                  'secret = "%s"; timeout_ms = 100; };\n' % (mc_port, mode, SECRET))
        with open(conf, "w") as f:
            f.write('workers = 2;\npidfile = "%s/pid";\nerror_log = "%s/error.log";\n'
                    'access_log = { path = ""; };\n'
                    'listen = ( { address = "127.0.0.1"; port = %d; } );\n'
                    'admin = { address = "127.0.0.1"; port = %d; };\n'
                    'clients = [ "127.0.0.0/8" ];\nblocked_destinations = [];\n'
                    'cache = { shm_name = "/sluice-mcbench-%d-%s"; size = "%s"; '
                    'max_object_size = "1M"; enabled = %s; };\n%s'
                    % (d, d, self.port, self.admin, os.getpid(), name, shm,
                       "true" if cache else "false", mc))
        self.p = start([SLUICE, "-d", "-f", conf], open(os.path.join(d, "stderr"), "w"))
        wait_port(self.port, "sluice " + name)

    def stats(self):
        c = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=10)
        c.request("GET", "/stats")
        d = json.loads(c.getresponse().read())
        c.close()
        return d

    def stop(self):
        stop(self.p)


def fill(node, origin_port, size_name, n):
    """Fetch every object once through node (keep-alive)."""
    c = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
    for i in range(1, n + 1):
        url = "http://127.0.0.1:%d/%s/%d" % (origin_port, size_name, i)
        c.request("GET", url, headers={"Host": "127.0.0.1:%d" % origin_port})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            sys.exit("fill: %s answered %d" % (url, r.status))
    c.close()


def wrk(node, origin_port, size_name, n, duration, conns):
    prefix = "http://127.0.0.1:%d/%s/" % (origin_port, size_name)
    args = ["taskset", "-c", CPU_CLIENT, "wrk", "-t1", "-c%d" % conns, "-d%ds" % duration,
            "--latency", "-s", os.path.join(HERE, "wrk-many.lua"),
            "http://127.0.0.1:%d/" % node.port, "--", prefix, str(n)]
    out = subprocess.run(args, capture_output=True, text=True).stdout
    m = re.search(r"BENCH_RESULT (.*)", out)
    if not m:
        sys.exit("wrk said: " + out[-500:])
    return {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}


def worker_pids(master):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == master:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


def thread_cpu(node):
    """CPU seconds so far of the workers' event loops (their main threads)
    and of their other threads (the memcached client threads)."""
    tick = os.sysconf("SC_CLK_TCK")
    loop = other = 0.0
    for pid in worker_pids(node.p.pid):
        try:
            for tid in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                    st = f.read().rsplit(")", 1)[1].split()
                t = (int(st[11]) + int(st[12])) / tick
                if int(tid) == pid:
                    loop += t
                else:
                    other += t
        except OSError:
            pass
    return loop, other


def measured(node, fn):
    """fn()'s wrk result, with the CPU microseconds per request spent in
    the event loops and in the client threads."""
    c0 = thread_cpu(node)
    r = fn()
    c1 = thread_cpu(node)
    n = max(r["requests"], 1)
    r["loop_us"] = (c1[0] - c0[0]) * 1e6 / n
    r["threads_us"] = (c1[1] - c0[1]) * 1e6 / n
    return r


def origin_lines(tmp):
    with open(os.path.join(tmp, "origin", "access.log"), "rb") as f:
        return f.read().count(b"\n")


def main():
    global CPU_MEMCACHED
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="3 s measurements")
    ap.add_argument("--sizes", default="1k 16k 256k")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--memcached-cpu", default=CPU_MEMCACHED,
                    help="CPU for memcached (default %s, wrk's)" % CPU_MEMCACHED)
    ap.add_argument("--perf", action="store_true",
                    help="record CPU %s (perf -g) during each memcached-hit run" % CPU_SERVER)
    a = ap.parse_args()
    dur = 3 if a.quick else a.duration
    CPU_MEMCACHED = a.memcached_cpu
    for tool in ("nginx", "memcached", "wrk", "taskset"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            sys.exit(tool + " is required")
    tmp = tempfile.mkdtemp(prefix="sluice-mcbench-")
    os.chmod(tmp, 0o755)
    atexit.register(lambda: shutil.rmtree(tmp, ignore_errors=True))
    atexit.register(stop_all)

    # the origin: N hard links per size to one random file
    origin_port = free_ports(1)[0]
    www = os.path.join(tmp, "www")
    for name, (nbytes, n, _) in SIZES.items():
        os.makedirs(os.path.join(www, name))
        src = os.path.join(www, name, "1")
        with open(src, "wb") as f:
            f.write(os.urandom(nbytes))
        for i in range(2, n + 1):
            os.link(src, os.path.join(www, name, str(i)))
    od = os.path.join(tmp, "origin")
    os.makedirs(od)
    with open(os.path.join(od, "nginx.conf"), "w") as f:
        f.write("worker_processes 1;\ndaemon off;\npid %s/nginx.pid;\nerror_log %s/error.log warn;\n"
                "events { worker_connections 8192; }\n"
                "http { access_log %s/access.log; default_type application/octet-stream;\n"
                " sendfile on; keepalive_requests 100000; etag off;\n"
                " client_body_temp_path %s/body; proxy_temp_path %s/proxy;\n"
                " server { listen 127.0.0.1:%d reuseport backlog=4096; root %s;\n"
                "  add_header Cache-Control \"max-age=3600\" always; } }\n"
                % (od, od, od, od, od, origin_port, www))
    start(["nginx", "-p", od, "-c", os.path.join(od, "nginx.conf")], open(os.path.join(od, "out"), "w"))
    wait_port(origin_port, "origin")

    results = {"meta": {"duration_s": dur, "connections": a.connections,
                        "cpu": open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": "),
                        "sluice": os.path.realpath(SLUICE),
                        "loadavg": open("/proc/loadavg").read().split()[:3]},
               "sizes": {}, "farm": {}}
    for name in a.sizes.split():
        nbytes, n, small = SIZES[name]
        mc_port = free_ports(1)[0]
        mc = start(["memcached", "-l", "127.0.0.1", "-p", str(mc_port), "-U", "0", "-m", "1024",
                    "-t", "1", "-c", "4096", "-u", "nobody"], open(os.path.join(tmp, "memcached-" + name + ".log"), "w"),
                   cpu=CPU_MEMCACHED)
        wait_port(mc_port, "memcached")
        rows = {}
        filler = Node(tmp, "fill-" + name, mc_port, "512M")
        t0 = time.monotonic()
        fill(filler, origin_port, name, n)
        end = time.monotonic() + 30
        while filler.stats()["totals"]["memcached_stores"] < n and time.monotonic() < end:
            time.sleep(0.1)
        log("%s: %d objects filled in %.1f s, %d stored in memcached" % (
            name, n, time.monotonic() - t0, filler.stats()["totals"]["memcached_stores"]))
        wrk(filler, origin_port, name, n, 1, a.connections)
        rows["shm-hit"] = measured(filler, lambda: wrk(filler, origin_port, name, n, dur,
                                                       a.connections))
        filler.stop()

        mnode = Node(tmp, "mc-" + name, mc_port, small)
        wrk(mnode, origin_port, name, n, 1, a.connections)
        s0 = mnode.stats()["totals"]
        o0 = origin_lines(tmp)
        perf = None
        if a.perf:
            os.makedirs(os.path.join(HERE, "out"), exist_ok=True)
            pout = os.path.join(HERE, "out", "perf-memcached-hit-%s.data" % name)
            perf = subprocess.Popen(["perf", "record", "-q", "-g", "-C", CPU_SERVER, "-o", pout,
                                     "--", "sleep", str(dur)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        rows["memcached-hit"] = measured(mnode, lambda: wrk(mnode, origin_port, name, n, dur,
                                                            a.connections))
        if perf:
            perf.wait()
            log("profile in %s (perf report -i)" % pout)
        s1 = mnode.stats()["totals"]
        reqs = s1["requests"] - s0["requests"]
        rows["memcached-hit"]["share_memcached"] = (s1["memcached_hits"] - s0["memcached_hits"]) / max(reqs, 1)
        rows["memcached-hit"]["share_origin"] = (origin_lines(tmp) - o0) / max(reqs, 1)
        mnode.stop()

        pnode = Node(tmp, "pass-" + name, None, "1M", cache=False)
        wrk(pnode, origin_port, name, n, 1, a.connections)
        rows["origin"] = wrk(pnode, origin_port, name, n, dur, a.connections)
        pnode.stop()
        stop(mc)
        results["sizes"][name] = rows
        base = rows["shm-hit"]["rps"]
        print("%-5s %-14s %10s %9s %9s %7s  %s" % ("size", "path", "req/s", "p50 ms", "p99 ms", "ratio", "note"))
        for k, r in rows.items():
            note = ""
            if k == "memcached-hit":
                note = "%.0f%% of requests answered by memcached, %.1f%% by the origin" % (
                    100 * r["share_memcached"], 100 * r["share_origin"])
            errs = sum(r[e] for e in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
            if errs:
                note += " wrk errors %d" % errs
            print("%-5s %-14s %10.0f %9.2f %9.2f %7.2f  %s" % (
                name, k, r["rps"], r["p50_us"] / 1000, r["p99_us"] / 1000, r["rps"] / base, note))
        sh, mh = rows["shm-hit"], rows["memcached-hit"]
        print("%-5s CPU per request: shm-hit %.1f us in the event loops; memcached-hit %.1f us "
              "in the event loops + %.1f us in the client threads (HMAC check, memcached I/O)"
              % (name, sh["loop_us"], mh["loop_us"], mh["threads_us"]))
        print("%-5s event-loop capacity, memcached-hit / shm-hit: %.2f (the req/s ratio where the "
              "client threads have cores of their own)" % (name, sh["loop_us"] / max(mh["loop_us"], 1e-9)))
        sys.stdout.flush()

    # the farm: node A takes the mix first, then node B
    nbytes, n, _ = SIZES["16k"]
    mc_port = free_ports(1)[0]
    mc = start(["memcached", "-l", "127.0.0.1", "-p", str(mc_port), "-U", "0", "-m", "1024",
                "-t", "1", "-c", "4096", "-u", "nobody"], open(os.path.join(tmp, "memcached-farm.log"), "w"),
               cpu=CPU_MEMCACHED)
    wait_port(mc_port, "memcached")
    na, nb = Node(tmp, "farm-a", mc_port, "64M"), Node(tmp, "farm-b", mc_port, "64M")
    for label, node in (("A (cold farm)", na), ("B (after A)", nb)):
        s0, o0 = node.stats()["totals"], origin_lines(tmp)
        r = wrk(node, origin_port, "16k", n, dur, a.connections)
        s1, o1 = node.stats()["totals"], origin_lines(tmp)
        reqs = s1["requests"] - s0["requests"]
        r["hit_rate"] = 1 - (o1 - o0) / max(reqs, 1)
        r["memcached_hits"] = s1["memcached_hits"] - s0["memcached_hits"]
        r["origin_requests"] = o1 - o0
        results["farm"][label] = r
        print("farm  node %-14s %8.0f req/s, %d requests, %.1f%% without the origin "
              "(%d memcached hits, %d origin requests)" % (
                  label, r["rps"], reqs, 100 * r["hit_rate"], r["memcached_hits"], o1 - o0))
    na.stop()
    nb.stop()
    os.makedirs(os.path.join(HERE, "out"), exist_ok=True)
    out = os.path.join(HERE, "out", "memcached-%s.json" % time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    log("raw figures in " + out)


if __name__ == "__main__":
    main()
