#!/usr/bin/env python3
"""fakedns.py - a scripted DNS server for sluice's tests (UDP and TCP).

What it does: answers A and AAAA queries for the names it is given, and
misbehaves on request (delay, NXDOMAIN, SERVFAIL, REFUSED, a malformed
answer, random junk, no answer at all, answers too big for UDP so the
client must retry over TCP).  It counts queries per name so a test can
tell a cache hit from a miss.

What it assumes: Python 3 standard library only; it binds 127.0.0.1 and
is run by one test at a time.  Names are matched case-insensitively,
without the trailing dot; unknown names get NXDOMAIN.

Why it is built this way: resolver failures are hostile input (HOSTILE
F19), and the only way to test them hermetically is a server that
produces each failure on demand.  One selector thread serves UDP, TCP
and delayed replies, so a slow record never blocks the other names.

Command line:
    fakedns.py --port 0 [--zone FILE] [--record SPEC]... [--counts FILE]
prints "PORT <n>" as its first stdout line, then serves until killed.
With --counts, the per-name query counts are written (atomically, as
JSON {"name": count}) before each reply is sent.

Record syntax (also one per line in a --zone file, '#' comments):
    NAME=ITEM[,ITEM]...
    ITEM:  A:<ipv4>  AAAA:<ipv6>  CNAME:<name>  TTL:<seconds>  (default 60)
           DELAY:<seconds>  answer late
           NXDOMAIN | SERVFAIL | REFUSED   that rcode, no answer
           GARBAGE   valid header and question, then a broken answer RR
                     (the client must reject it: a parse error)
           JUNK      random bytes, wrong id (the client must ignore it)
           DROP      never answer
           MANYA:<n> n A records 10.x.y.z (n > 29 no longer fits 512
                     bytes of UDP: TC is set and TCP gets the full answer)

As a module:
    dns = FakeDNS({"a.test": "A:127.0.0.1", "slow.test": "DELAY:5"}).start()
    dns.port, dns.counts, dns.count("a.test"), dns.stop()
"""

import argparse
import heapq
import ipaddress
import json
import os
import selectors
import socket
import struct
import sys
import threading
import time

T_A, T_CNAME, T_AAAA = 1, 5, 28
RC_OK, RC_FORMERR, RC_SERVFAIL, RC_NXDOMAIN, RC_NOTIMP, RC_REFUSED = 0, 1, 2, 3, 4, 5
UDP_MAX = 512


class Record:
    """What to answer for one name."""

    def __init__(self):
        self.a = []          # packed 4-byte addresses
        self.aaaa = []       # packed 16-byte addresses
        self.cname = None
        self.ttl = 60
        self.delay = 0.0
        self.rcode = RC_OK
        self.mode = None     # None, "garbage", "junk", "drop"


def parse_items(items):
    """Build a Record from "A:1.2.3.4,TTL:5" or a list of such items."""
    if isinstance(items, str):
        items = [i for i in items.split(",") if i.strip()]
    r = Record()
    for item in items:
        item = item.strip()
        kind, _, val = item.partition(":")
        kind = kind.upper()
        if kind == "A":
            r.a.append(ipaddress.IPv4Address(val).packed)
        elif kind == "AAAA":
            r.aaaa.append(ipaddress.IPv6Address(val).packed)
        elif kind == "CNAME":
            r.cname = val.rstrip(".").lower()
        elif kind == "TTL":
            r.ttl = int(val)
        elif kind == "DELAY":
            r.delay = float(val)
        elif kind == "NXDOMAIN":
            r.rcode = RC_NXDOMAIN
        elif kind == "SERVFAIL":
            r.rcode = RC_SERVFAIL
        elif kind == "REFUSED":
            r.rcode = RC_REFUSED
        elif kind in ("GARBAGE", "JUNK", "DROP"):
            r.mode = kind.lower()
        elif kind == "MANYA":
            for i in range(int(val)):
                r.a.append(bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255]))
        else:
            raise ValueError("unknown record item %r" % item)
    return r


def parse_record_arg(arg):
    """Split "name=items" into (name, Record)."""
    name, sep, items = arg.partition("=")
    if not sep or not name:
        raise ValueError("record must be NAME=ITEMS: %r" % arg)
    return name.strip().rstrip(".").lower(), parse_items(items)


def encode_name(name):
    out = b""
    for label in name.split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\x00"


def parse_query(data):
    """Return (id, flags, qname, qtype, question_bytes) or raise ValueError."""
    if len(data) < 12:
        raise ValueError("short header")
    qid, flags, qd, _an, _ns, _ar = struct.unpack("!HHHHHH", data[:12])
    if flags & 0x8000:
        raise ValueError("not a query")
    if qd != 1:
        raise ValueError("qdcount %d" % qd)
    pos, labels = 12, []
    while True:
        if pos >= len(data):
            raise ValueError("name runs off the end")
        n = data[pos]
        pos += 1
        if n == 0:
            break
        if n & 0xC0:
            raise ValueError("compression in a question")
        if pos + n > len(data):
            raise ValueError("label runs off the end")
        labels.append(data[pos:pos + n])
        pos += n
    if pos + 4 > len(data):
        raise ValueError("no qtype/qclass")
    qtype, _qclass = struct.unpack("!HH", data[pos:pos + 4])
    pos += 4
    qname = b".".join(labels).decode("ascii", "replace").lower()
    return qid, flags, qname, qtype, data[12:pos]


class FakeDNS:
    """The server.  records: {name: Record | "items" | [items]}."""

    def __init__(self, records=None, port=0, counts_file=None, verbose=False):
        self.records = {}
        for name, spec in (records or {}).items():
            self.add(name, spec)
        self.counts = {}
        self.counts_file = counts_file
        self.verbose = verbose
        self.lock = threading.Lock()
        # UDP and TCP on the same port number.  With port 0 the UDP
        # port the kernel picks may be taken for TCP by another test
        # running in parallel: pick again until both bind, so truncated
        # answers always have their TCP retry.
        for attempt in range(50):
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", port))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind(("127.0.0.1", self.port))
                self.tcp.listen(16)
                break
            except OSError:
                self.tcp.close()
                self.udp.close()
                if port != 0 or attempt == 49:
                    raise
        self.sel = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        self.pending = []          # heap of (when, seq, send-function)
        self.seq = 0
        self.running = False
        self.thread = None

    # ---- configuration -----------------------------------------------------
    def add(self, name, spec):
        """Add or replace the record of name (usable while running)."""
        rec = spec if isinstance(spec, Record) else parse_items(spec)
        self.records[name.rstrip(".").lower()] = rec

    def count(self, name):
        with self.lock:
            return self.counts.get(name.rstrip(".").lower(), 0)

    # ---- answering ---------------------------------------------------------
    def _log(self, msg):
        if self.verbose:
            print("fakedns: " + msg, file=sys.stderr, flush=True)

    def _note(self, qname):
        with self.lock:
            self.counts[qname] = self.counts.get(qname, 0) + 1
            snapshot = dict(self.counts)
        if self.counts_file:
            tmp = self.counts_file + ".tmp"
            with open(tmp, "w") as f:
                json.dump(snapshot, f, sort_keys=True)
            os.replace(tmp, self.counts_file)

    def _rrs(self, qname, qtype, depth=0):
        """Answer records for qname/qtype (following in-zone CNAMEs)."""
        rec = self.records.get(qname)
        if rec is None or depth > 8:
            return b"", 0
        owner = b"\xc0\x0c" if depth == 0 else encode_name(qname)
        ttl = struct.pack("!I", rec.ttl)
        if rec.cname:
            target = encode_name(rec.cname)
            rr = owner + struct.pack("!HH", T_CNAME, 1) + ttl + \
                struct.pack("!H", len(target)) + target
            more, n = self._rrs(rec.cname, qtype, depth + 1)
            return rr + more, n + 1
        addrs = rec.a if qtype == T_A else rec.aaaa if qtype == T_AAAA else []
        out = b""
        for a in addrs:
            out += owner + struct.pack("!HH", qtype, 1) + ttl + \
                struct.pack("!H", len(a)) + a
        return out, len(addrs)

    def answer(self, data, tcp=False):
        """(reply bytes or None, delay seconds) for one query message."""
        try:
            qid, flags, qname, qtype, question = parse_query(data)
        except ValueError as e:
            self._log("malformed query: %s" % e)
            if len(data) < 12 or data[2] & 0x80:
                return None, 0
            # A readable header: tell the client it sent rubbish.
            qid, flags = struct.unpack("!HH", data[:4])
            hdr = struct.pack("!HHHHHH", qid, 0x8000 | (flags & 0x7900) | RC_FORMERR,
                              0, 0, 0, 0)
            return hdr, 0
        self._note(qname)
        rec = self.records.get(qname)
        self._log("query %s type %d" % (qname, qtype))
        rflags = 0x8000 | (flags & 0x7900) | 0x0400 | 0x0080  # QR, opcode, RD, AA, RA
        delay = rec.delay if rec else 0
        if rec is None:
            return struct.pack("!HHHHHH", qid, rflags | RC_NXDOMAIN, 1, 0, 0, 0) + question, 0
        if rec.mode == "drop":
            return None, 0
        if rec.mode == "junk":
            junk = os.urandom(40)
            junk = struct.pack("!H", qid ^ 0x5a5a) + junk[2:]
            return junk, delay
        if rec.mode == "garbage":
            # The answer RR claims 255 bytes of rdata and carries 4.
            rr = b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, 60, 255) + b"\x7f\x00\x00\x01"
            return struct.pack("!HHHHHH", qid, rflags, 1, 1, 0, 0) + question + rr, delay
        if rec.rcode != RC_OK:
            return struct.pack("!HHHHHH", qid, rflags | rec.rcode, 1, 0, 0, 0) + question, delay
        rrs, n = self._rrs(qname, qtype)
        reply = struct.pack("!HHHHHH", qid, rflags, 1, n, 0, 0) + question + rrs
        if not tcp and len(reply) > UDP_MAX:
            # Truncated: header and question only, TC set (RFC 1035 4.2.1).
            reply = struct.pack("!HHHHHH", qid, rflags | 0x0200, 1, 0, 0, 0) + question
        return reply, delay

    # ---- the serving thread ------------------------------------------------
    def _later(self, delay, fn):
        if delay <= 0:
            fn()
            return
        self.seq += 1
        heapq.heappush(self.pending, (time.monotonic() + delay, self.seq, fn))

    def _on_udp(self):
        try:
            data, peer = self.udp.recvfrom(65535)
        except OSError:
            return
        reply, delay = self.answer(data)
        if reply is not None:
            def send(reply=reply, peer=peer):
                try:
                    self.udp.sendto(reply, peer)
                except OSError:
                    pass
            self._later(delay, send)

    def _on_accept(self):
        try:
            conn, _ = self.tcp.accept()
        except OSError:
            return
        conn.setblocking(False)
        self.sel.register(conn, selectors.EVENT_READ, ("tcp", bytearray()))

    def _close_tcp(self, conn):
        try:
            self.sel.unregister(conn)
        except (KeyError, ValueError):
            pass
        conn.close()

    def _on_tcp(self, conn, buf):
        try:
            chunk = conn.recv(65535)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._close_tcp(conn)
            return
        buf += chunk
        while len(buf) >= 2:
            n = struct.unpack("!H", buf[:2])[0]
            if len(buf) < 2 + n:
                break
            msg = bytes(buf[2:2 + n])
            del buf[:2 + n]
            reply, delay = self.answer(msg, tcp=True)
            if reply is not None:
                def send(reply=reply, conn=conn):
                    try:
                        conn.setblocking(True)
                        conn.sendall(struct.pack("!H", len(reply)) + reply)
                        conn.setblocking(False)
                    except OSError:
                        pass
                self._later(delay, send)

    def serve(self):
        """Serve until stop(); runs in the calling thread."""
        self.sel.register(self.udp, selectors.EVENT_READ, ("udp", None))
        if self.tcp is not None:
            self.sel.register(self.tcp, selectors.EVENT_READ, ("accept", None))
        self.sel.register(self.wake_r, selectors.EVENT_READ, ("wake", None))
        self.running = True
        while self.running:
            timeout = None
            if self.pending:
                timeout = max(0.0, self.pending[0][0] - time.monotonic())
            for key, _ in self.sel.select(timeout):
                kind, buf = key.data
                if kind == "udp":
                    self._on_udp()
                elif kind == "accept":
                    self._on_accept()
                elif kind == "tcp":
                    self._on_tcp(key.fileobj, buf)
                else:
                    self.running = False
            now = time.monotonic()
            while self.pending and self.pending[0][0] <= now:
                heapq.heappop(self.pending)[2]()
        for key in list(self.sel.get_map().values()):
            if key.data[0] == "tcp":
                key.fileobj.close()
        self.sel.close()
        self.udp.close()
        if self.tcp is not None:
            self.tcp.close()
        os.close(self.wake_r)
        os.close(self.wake_w)

    def start(self):
        """Serve in a daemon thread; returns self."""
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.thread is not None:
            os.write(self.wake_w, b"x")
            self.thread.join()
            self.thread = None


def main(argv=None):
    ap = argparse.ArgumentParser(description="scripted DNS server for tests")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--zone", action="append", default=[],
                    help="file with one NAME=ITEMS per line")
    ap.add_argument("--record", action="append", default=[], metavar="NAME=ITEMS")
    ap.add_argument("--counts", help="write per-name query counts here (JSON)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    records = {}
    lines = []
    for path in args.zone:
        with open(path) as f:
            lines += [l.strip() for l in f]
    lines += args.record
    for line in lines:
        if not line or line.startswith("#"):
            continue
        name, rec = parse_record_arg(line)
        records[name] = rec

    srv = FakeDNS(records, port=args.port, counts_file=args.counts,
                  verbose=args.verbose)
    if args.counts:
        with open(args.counts, "w") as f:
            json.dump({}, f)
    print("PORT %d" % srv.port, flush=True)
    try:
        srv.serve()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
