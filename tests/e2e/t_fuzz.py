#!/usr/bin/env python3
"""
t_fuzz.py - mutated requests and responses against the running proxy.

A seeded (repeatable) mutation run: valid requests and origin responses
are cut, spliced, bit-flipped and padded with hostile bytes, sent
through sluice, and afterwards:
  - no worker died (the same worker pids, none respawned),
  - every answer sluice generated was a well-formed status line,
  - nothing the origin received was a second request smuggled out of
    one client request (the origin sees at most one request per client
    connection here, since clients send exactly one),
  - a normal request still succeeds,
  - the sanitizers (ASan/UBSan builds) reported nothing.
SEED and ROUNDS can be set in the environment to explore further.
"""
import os
import random
import socket
import time

from harness import *
from origin import *

SEED = int(os.environ.get("SEED", "20261127"))
ROUNDS = int(os.environ.get("ROUNDS", "2000"))

S = {}
T = []

HOSTILE = [b"\r", b"\n", b"\x00", b" ", b"\t", b"\x0b", b"\x7f", b"\xff", b":",
           b"\r\n", b"\r\n\r\n", b";", b",", b"chunked", b"Content-Length: 5\r\n",
           b"Transfer-Encoding: chunked\r\n", b"0\r\n\r\n", b"GET / HTTP/1.1\r\n",
           b"ffffffffffffffff", b"%00", b"@", b"#", b"[", b"]", b"HTTP/1.1 200 OK\r\n"]


def mutate(rng, data):
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        pos = rng.randrange(len(b) + 1)
        if op == 0 and b:                       # flip a byte
            b[min(pos, len(b) - 1)] = rng.randrange(256)
        elif op == 1:                           # insert a hostile token
            b[pos:pos] = rng.choice(HOSTILE)
        elif op == 2 and b:                     # delete a run
            del b[pos:pos + rng.randint(1, 8)]
        elif op == 3:                           # duplicate a run
            run = b[pos:pos + rng.randint(1, 40)]
            b[pos:pos] = run
        elif op == 4:                           # truncate
            del b[pos:]
        else:                                   # pad with junk
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 30)))
    return bytes(b)


def requests(url, host):
    return [
        b"GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: fuzz\r\nAccept: */*\r\n\r\n" % (url, host),
        b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\n\r\nhello" % (url, host),
        b"POST %s HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: v\r\n\r\n" % (url, host),
        b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (host, host),
        b"GET %s HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n\r\n" % url,
    ]


RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\nclose-delimited body",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
]


def status_ok(raw):
    """sluice's own answers and forwarded heads start with a valid status line."""
    if not raw:
        return True     # closed without answering: allowed for garbage
    line = raw.split(b"\r\n", 1)[0]
    return (line.startswith(b"HTTP/1.1 ") and len(line) >= 12 and line[9:12].isdigit()
            and all(0x20 <= c < 0x7f or c == 0x09 or c >= 0x80 for c in line))


def exchange(port, data, timeout=3.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        out = b""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not d:
                break
            out += d
        return out
    finally:
        s.close()


@case("mutated client requests: no crash, well-formed answers, no smuggling")
def fuzz_requests():
    rng = random.Random(SEED)
    sl, o = S["sl"], S["o"]
    expect(sl.wait_workers(), "workers did not start")
    pids = sorted(sl.worker_pids())
    url = o.url("/f").encode()
    host = ("127.0.0.1:%d" % o.port).encode()
    bad = []
    for i in range(ROUNDS):
        seeds = requests(url, host)
        data = mutate(rng, rng.choice(seeds))
        before = len(o.requests)
        raw = exchange(sl.port, data, timeout=2.0)
        if not status_ok(raw):
            bad.append((i, data[:120], raw[:120]))
        got = len(o.requests) - before
        if got > 1:
            bad.append((i, data[:120], "origin got %d requests from one client request" % got))
    expect(not bad, "%d bad exchanges, first: %r" % (len(bad), bad[:3]))
    expect_eq(sorted(sl.worker_pids()), pids, "worker pids (a worker died?)")
    still_serving(sl, o)


@case("mutated origin responses: no crash, clients get a status or a cut")
def fuzz_responses():
    rng = random.Random(SEED + 1)
    sl = S["sl"]
    expect(sl.wait_workers(), "workers did not start")
    pids = sorted(sl.worker_pids())
    bad = []
    for i in range(ROUNDS // 3):
        resp = mutate(rng, rng.choice(RESPONSES))
        o = new_origin(canned(resp, close=True))
        url = o.url("/r").encode()
        raw = exchange(sl.port, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % url, timeout=2.0)
        o.stop()
        if not status_ok(raw):
            bad.append((i, resp[:120], raw[:120]))
    expect(not bad, "%d bad exchanges, first: %r" % (len(bad), bad[:3]))
    expect_eq(sorted(sl.worker_pids()), pids, "worker pids (a worker died?)")
    still_serving(sl, S["o"])


def setup():
    S["o"] = new_origin()
    S["sl"] = Sluice({"connect_ports": [S["o"].port],
                      "timeouts": {"client_header": 2, "upstream": 2, "idle": 2}})


main(setup=setup)
