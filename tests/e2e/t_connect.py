#!/usr/bin/env python3
"""
t_connect.py - CONNECT tunnels (HOSTILE 52-56).

A tunnel to an allowed port answers 200 without CL/TE, then relays
bytes exactly in both directions and propagates a half-close; a port
outside connect_ports is 403; a target that is not authority-form with
a port is 400; CONNECT carrying CL or TE is 400; bytes pipelined right
after the CONNECT head are tunnel data, never parsed as HTTP.

The echo origin records what it received and echoes it back; on EOF
it sends "BYE" and closes, which shows the half-close in both ways.
"""
import os
import threading
from harness import *
from origin import *

S = {}


def echo(conn):
    deadline = time.monotonic() + 60
    while conn._recv_more(deadline):
        d, conn.buf = conn.buf, b""
        conn.send(d)
    conn.got_eof = True
    conn.send(b"BYE")
    conn.close()


def connect_head(hostport, extra=b""):
    hp = hostport.encode() if isinstance(hostport, str) else hostport
    return b"CONNECT " + hp + b" HTTP/1.1\r\nHost: " + hp + b"\r\n" + extra + b"\r\n"


def open_tunnel(port):
    c = Client(S["sl"].port, timeout=10)
    c.send(connect_head("127.0.0.1:%d" % port))
    r = c.read_response(method="CONNECT")
    expect_eq(r.status, 200, "CONNECT status", r, S["sl"].diag())
    expect(r.header("Content-Length") is None and r.header("Transfer-Encoding") is None,
           "2xx to CONNECT with CL/TE", r.headers)
    return c


T = []


def relay():
    e = S["echo"]
    n0 = e.nconns
    c = open_tunnel(e.port)
    data = os.urandom(1 << 20)
    th = threading.Thread(target=lambda: c.send(data))
    th.start()
    got = c.recv_some(len(data), timeout=20)
    th.join()
    expect(got == data, "echoed bytes differ (%d of %d)" % (len(got), len(data)))
    c.shutdown_write()
    rest = b""
    deadline = time.monotonic() + 10
    while not c.eof and time.monotonic() < deadline:
        rest += c.recv_some(1 << 16, timeout=1)
    rest += c.buf
    expect_eq(rest, b"BYE", "bytes after the client's half-close")
    expect(c.eof, "tunnel not closed after the origin closed")
    oc = e.conns[n0]
    expect(oc.data == data, "origin received different bytes (%d)" % len(oc.data))
    expect(getattr(oc, "got_eof", False), "client FIN not propagated to the origin")


T.append(("#52 tunnel: 200, byte-exact relay both ways, half-close propagated", relay))


def curl_tls():
    t = S["tls"]
    rc, code, body, err = curl(S["sl"].port, "https://127.0.0.1:%d/tls" % t.port, "-p", "-k")
    expect_eq((rc, code, body), (0, 200, b"ok GET /tls"), "curl through the tunnel", err)


T.append(("#52 curl -p https through the tunnel", curl_tls))


def rejected(raw, statuses):
    def fn():
        r = request(S["sl"].port, raw)
        expect_error_page(r, statuses)
        expect_eq(S["echo"].received().count(b"SHOULD-NOT-ARRIVE"), 0, "bytes reached the echo origin")
    return fn


for p in (25, 22, 6379, 11211):
    T.append(("#53 CONNECT to port %d -> 403" % p, rejected(connect_head("127.0.0.1:%d" % p), (403,))))
for tgt in (b"o.test", b"http://o:443", b"/", b"127.0.0.1:", b"127.0.0.1:0", b"127.0.0.1:99999"):
    T.append(("#54 CONNECT %r -> 400" % tgt, rejected(connect_head(tgt), (400,))))


def connect_with(extra):
    def fn():
        e = S["echo"]
        raw = connect_head("127.0.0.1:%d" % e.port, extra) + b"SHOULD-NOT-ARRIVE"
        r = request(S["sl"].port, raw)
        expect_error_page(r, (400,))
        o_bytes = e.received()
        expect(b"SHOULD-NOT-ARRIVE" not in o_bytes, "body relayed", o_bytes[-100:])
    return fn


T.append(("#56 CONNECT with Content-Length -> 400", connect_with(b"Content-Length: 17\r\n")))
T.append(("#56 CONNECT with Transfer-Encoding -> 400", connect_with(b"Transfer-Encoding: chunked\r\n")))


def pipelined():
    e = S["echo"]
    n0 = e.nconns
    early = b"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n"
    c = Client(S["sl"].port)
    c.send(connect_head("127.0.0.1:%d" % e.port) + early)
    r = c.read_response(method="CONNECT")
    expect_eq(r.status, 200, "status")
    got = c.recv_some(len(early), timeout=5)
    expect_eq(got, early, "early bytes echoed through the tunnel")
    expect(e.wait_conns(n0 + 1), "no tunnel connection")
    expect_eq(e.conns[n0].data, early, "origin received")
    c.close()


T.append(("#56 bytes pipelined after CONNECT are relayed, not parsed", pipelined))


def refused():
    p = free_port()
    sl = Sluice({"connect_ports": [p]})
    r = request(sl.port, connect_head("127.0.0.1:%d" % p))
    expect_error_page(r, (502,), close=False)
    sl.stop()


T.append(("CONNECT to a closed port -> 502", refused))


def tunnel_keeps_proxy():
    still_serving(S["sl"], new_origin())


T.append(("proxy still serves plain HTTP after the tunnel cases", tunnel_keeps_proxy))


def setup():
    S["echo"] = new_origin(echo)
    S["tls"] = new_origin(tls_dir=tempdir())
    S["sl"] = Sluice({"connect_ports": [S["echo"].port, S["tls"].port]})


main(T, setup=setup)
