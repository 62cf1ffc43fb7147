#!/usr/bin/env python3
"""fakemc.py - a scripted memcached (binary protocol) for sluice's tests.

What it does: listens on 127.0.0.1 at a free port and speaks the
memcached binary protocol (request magic 0x80, response magic 0x81):
GET/GETQ/GETK/GETKQ, SET/SETQ, DELETE/DELETEQ, INCREMENT/INCREMENTQ,
NOOP, VERSION, QUIT/QUITQ.  By default it stores values like a real
memcached.  On request it misbehaves, for one key or for every key,
when it answers a get (or any opcode, see rule()):

    long      the body length field says 100 bytes more than is sent;
              then the connection is closed
    short     the body length field says less than is sent (it does
              not even cover extras and key); the rest follows as junk
    truncate  a correct header, half of the value, then close
    opaque    a correct reply carrying another request's opaque
    magic     a correct reply whose magic is 0x80 (a request), not 0x81
    garbage   200 random bytes (never starting with 0x81)
    trickle   the correct reply, one byte every 50 ms
    stall     read the request, never answer (the connection stays open)
    late      the request is applied and answered after `delay` seconds
    swap      the value stored under another key (rule arg `other`)
    huge      a header claiming a 2^31-byte body, then stall
    bigkey    a reply whose key length field is 1000 (a client key
              buffer holds 250)
    reset     close with a TCP RST on receipt of the request

heal() drops every rule and closes the connections that are stalled or
trickling, so the server behaves again.  Counters: requests per opcode
name (`counts`), unknown opcodes (`unknown`, also logged to stderr),
misbehaviours applied per mode (`applied`), and the operations applied
to the store in order (`log`, `ops_on(key)`), which shows how a client
ordered its sets and deletes.

What it assumes: Python 3 standard library only (STYLE 16); one test
drives it from the main thread while its own threads serve; clients are
trusted to send well-formed requests (this is the hostile *server*).

Why it is built this way: a memcached that lies can only be produced by
a fake one (HOSTILE F9); a thread per connection keeps a stalled reply
from blocking the others, which is what a real server's slow or broken
connection looks like to a client's handle.
"""

import random
import socket
import struct
import sys
import threading
import time

REQ, RES = 0x80, 0x81
HDR = struct.Struct(">BBHBBHIIQ")          # magic op keylen extlen dtype vb/status bodylen opaque cas

OPS = {0x00: "get", 0x01: "set", 0x04: "delete", 0x05: "incr", 0x07: "quit",
       0x09: "getq", 0x0a: "noop", 0x0b: "version", 0x0c: "getk", 0x0d: "getkq",
       0x11: "setq", 0x14: "deleteq", 0x15: "incrq", 0x17: "quitq"}
GETS = ("get", "getq", "getk", "getkq")
QUIET = ("getq", "getkq", "setq", "deleteq", "incrq", "quitq")

ST_OK, ST_ENOENT, ST_EINVAL, ST_UNKNOWN = 0x0000, 0x0001, 0x0004, 0x0081

MODES = ("long", "short", "truncate", "opaque", "magic", "garbage", "trickle", "stall",
         "late", "swap", "huge", "bigkey", "reset", "enomem")


class _Abort(Exception):
    """heal() or stop() ended a stalled or trickling connection."""


class FakeMC:
    """One fake memcached server (start() is implicit)."""

    def __init__(self, version=b"1.6.18"):
        self.lock = threading.Lock()
        self.store = {}                     # key bytes -> (flags, value bytes)
        self.rules = {}                     # key bytes or None -> dict(mode, ops, left, ...)
        self.counts = {}                    # opcode name -> requests
        self.unknown = []                   # (opcode, keylen, bodylen) not understood
        self.applied = {}                   # mode -> times applied
        self.log = []                       # (monotonic, opcode name, key) applied, last 1000
        self.version = version
        self.gen = 0                        # bumped by heal(): stalls end
        self.conns = set()
        self.nconns = 0
        self._stop = False
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(128)
        self.port = self.ls.getsockname()[1]
        threading.Thread(target=self._accept_loop, daemon=True).start()

    # -- the test's side ------------------------------------------------------
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def put(self, key, value, flags=0):
        """Store value under key, as a client's SET would."""
        with self.lock:
            self.store[_b(key)] = (flags, bytes(value))

    def delete(self, key):
        with self.lock:
            self.store.pop(_b(key), None)

    def get(self, key):
        with self.lock:
            v = self.store.get(_b(key))
        return v[1] if v else None

    def rule(self, key, mode, ops=GETS, times=None, **arg):
        """Misbehave with mode on requests for key (None: every key)
        whose opcode name is in ops; times: how often (None: always).
        arg: other=KEY (swap), delay=SECONDS (late, trickle step)."""
        if mode not in MODES:
            raise ValueError("unknown mode %r" % mode)
        with self.lock:
            self.rules[None if key is None else _b(key)] = dict(
                mode=mode, ops=tuple(ops), left=times, **arg)

    def heal(self):
        """Behave again: no rules, and stalled/trickling replies end
        (their connections are closed)."""
        with self.lock:
            self.rules.clear()
            self.gen += 1

    def ops_on(self, key):
        """The opcode names applied to key, in order."""
        with self.lock:
            return [n for _t, n, k in self.log if k == _b(key)]

    def count(self, *names):
        with self.lock:
            return sum(self.counts.get(n, 0) for n in names)

    def napplied(self, mode=None):
        with self.lock:
            return self.applied.get(mode, 0) if mode else sum(self.applied.values())

    def stop(self):
        self._stop = True
        with self.lock:
            self.gen += 1
            conns = list(self.conns)
        for s in [self.ls] + conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    # -- serving -------------------------------------------------------------
    def _accept_loop(self):
        while not self._stop:
            try:
                s, _peer = self.ls.accept()
            except OSError:
                return
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.conns.add(s)
                self.nconns += 1
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        try:
            while not self._stop:
                h = _recv_exact(s, HDR.size)
                if h is None:
                    return
                magic, op, klen, elen, _dt, _vb, blen, opaque, cas = HDR.unpack(h)
                body = _recv_exact(s, blen) if blen else b""
                if magic != REQ or body is None or klen + elen > blen:
                    return                          # not a client we understand: hang up
                ext, key, val = body[:elen], body[elen:elen + klen], body[elen + klen:]
                name = OPS.get(op)
                with self.lock:
                    self.counts[name or "0x%02x" % op] = self.counts.get(name or "0x%02x" % op, 0) + 1
                if name is None:
                    with self.lock:
                        self.unknown.append((op, klen, blen))
                    sys.stderr.write("fakemc: unknown opcode 0x%02x (key %d, body %d bytes)\n"
                                     % (op, klen, blen))
                    s.sendall(_res(op, ST_UNKNOWN, opaque, value=b"Unknown command"))
                    continue
                rule = self._rule_for(key, name)
                if rule is None:
                    out = self._answer(op, name, ext, key, val, opaque)
                    if out:
                        s.sendall(out)
                    if name in ("quit", "quitq"):
                        return
                    continue
                if not self._misbehave(s, rule, op, name, ext, key, val, opaque):
                    return
        except (OSError, _Abort):
            pass
        finally:
            with self.lock:
                self.conns.discard(s)
            try:
                s.close()
            except OSError:
                pass

    def _rule_for(self, key, name):
        with self.lock:
            r = self.rules.get(key) or self.rules.get(None)
            if r is None or name not in r["ops"] or r["left"] == 0:
                return None
            if r["left"] is not None:
                r["left"] -= 1
            self.applied[r["mode"]] = self.applied.get(r["mode"], 0) + 1
            return r

    def _answer(self, op, name, ext, key, val, opaque):
        """What a real memcached answers (b"" for a quiet success)."""
        with self.lock:
            self.log.append((time.monotonic(), name, key))
            del self.log[:-1000]
            if name in GETS:
                it = self.store.get(key)
                if it is None:
                    if name in ("getq", "getkq"):
                        return b""
                    return _res(op, ST_ENOENT, opaque, key=key if name == "getk" else b"",
                                value=b"Not found")
                return _res(op, ST_OK, opaque, ext=struct.pack(">I", it[0]),
                            key=key if name in ("getk", "getkq") else b"", value=it[1])
            if name in ("set", "setq"):
                flags = struct.unpack(">I", ext[:4])[0] if len(ext) >= 4 else 0
                self.store[key] = (flags, val)
                return b"" if name == "setq" else _res(op, ST_OK, opaque, cas=1)
            if name in ("delete", "deleteq"):
                if self.store.pop(key, None) is None:
                    return _res(op, ST_ENOENT, opaque, value=b"Not found")
                return b"" if name == "deleteq" else _res(op, ST_OK, opaque)
            if name in ("incr", "incrq"):
                if len(ext) != 20:
                    return _res(op, ST_EINVAL, opaque, value=b"Invalid arguments")
                delta, initial, exp = struct.unpack(">QQI", ext)
                it = self.store.get(key)
                if it is None:
                    if exp == 0xffffffff:
                        return _res(op, ST_ENOENT, opaque, value=b"Not found")
                    n = initial
                else:
                    try:
                        n = (int(it[1].strip() or b"0") + delta) & 0xffffffffffffffff
                    except ValueError:
                        return _res(op, ST_EINVAL, opaque,
                                    value=b"Non-numeric server-side value for incr or decr")
                self.store[key] = (it[0] if it else 0, str(n).encode())
                return b"" if name == "incrq" else _res(op, ST_OK, opaque, value=struct.pack(">Q", n))
            if name == "noop":
                return _res(op, ST_OK, opaque)
            if name == "version":
                return _res(op, ST_OK, opaque, value=self.version)
            if name == "quit":
                return _res(op, ST_OK, opaque)
            return b""

    def _misbehave(self, s, r, op, name, ext, key, val, opaque):
        """Apply rule r; False when the connection is to be dropped."""
        mode = r["mode"]
        if mode == "late":
            # held first, then applied: a request that reaches the
            # server late still takes effect (a SET the client timed
            # out on is stored anyway), as with a real memcached
            self._hold(s, r.get("delay", 0.3))
            out = self._answer(op, name, ext, key, val, opaque)
            if out:
                s.sendall(out)
            return True
        good = self._answer(op, name, ext, key, val, opaque) or _res(op, ST_OK, opaque)
        it = self.store.get(key)
        value = it[1] if it else b"x" * 64
        gkey = key if name in ("getk", "getkq") else b""
        if mode == "long":
            v = _res(op, ST_OK, opaque, ext=b"\0\0\0\0", key=gkey, value=value)
            s.sendall(_with_bodylen(v, 4 + len(gkey) + len(value) + 100))
            return False
        if mode == "short":
            v = _res(op, ST_OK, opaque, ext=b"\0\0\0\0", key=gkey, value=value)
            s.sendall(_with_bodylen(v, 2))
            return True
        if mode == "truncate":
            v = _res(op, ST_OK, opaque, ext=b"\0\0\0\0", key=gkey, value=value)
            s.sendall(v[:HDR.size + 4 + len(gkey) + len(value) // 2])
            return False
        if mode == "opaque":
            s.sendall(good[:12] + struct.pack(">I", (opaque + 0x5a5a) & 0xffffffff) + good[16:])
            return True
        if mode == "magic":
            s.sendall(bytes([REQ]) + good[1:])
            return True
        if mode == "garbage":
            rnd = random.Random(opaque)
            junk = bytes(rnd.randrange(256) for _ in range(200))
            s.sendall(bytes([0x5a]) + junk[1:])
            return True
        if mode == "trickle":
            self._trickle(s, good, r.get("delay", 0.05))
            return True
        if mode == "stall":
            self._hold(s, None)
            return False
        if mode == "swap":
            o = self.store.get(_b(r["other"]))
            ov = o[1] if o else b"not there"
            s.sendall(_res(op, ST_OK, opaque, ext=b"\0\0\0\0", key=gkey, value=ov))
            return True
        if mode == "huge":
            v = _res(op, ST_OK, opaque, ext=b"\0\0\0\0", key=gkey, value=value)
            s.sendall(_with_bodylen(v, 1 << 31)[:HDR.size + 4 + len(gkey)])
            self._hold(s, None)
            return False
        if mode == "bigkey":
            big = (gkey or b"k") * (1000 // max(len(gkey), 1) + 1)
            big = big[:1000]
            hdr = HDR.pack(RES, op, len(big), 4, 0,
                           ST_OK, 4 + len(big) + len(value), opaque, 0)
            s.sendall(hdr + b"\0\0\0\0" + big + value)
            return True
        if mode == "reset":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if mode == "enomem":
            # a well-formed refusal, not stored (memcached -M when full)
            s.sendall(_res(op, 0x0082, opaque, value=b"Out of memory"))
            return True
        raise AssertionError(mode)

    def _hold(self, s, seconds):
        """Wait seconds (None: until heal() or stop()); raise _Abort
        when heal() or stop() came first."""
        with self.lock:
            gen = self.gen
        end = None if seconds is None else time.monotonic() + seconds
        while end is None or time.monotonic() < end:
            with self.lock:
                if self.gen != gen or self._stop:
                    raise _Abort()
            time.sleep(0.01 if end is None else min(0.01, max(0, end - time.monotonic())))

    def _trickle(self, s, data, delay):
        with self.lock:
            gen = self.gen
        for i in range(len(data)):
            with self.lock:
                if self.gen != gen or self._stop:
                    raise _Abort()
            s.sendall(data[i:i + 1])
            time.sleep(delay)


def _b(k):
    return k.encode() if isinstance(k, str) else bytes(k)


def _res(op, status, opaque, ext=b"", key=b"", value=b"", cas=0):
    body = ext + key + value
    return HDR.pack(RES, op, len(key), len(ext), 0, status, len(body), opaque, cas) + body


def _with_bodylen(reply, n):
    return reply[:8] + struct.pack(">I", n & 0xffffffff) + reply[12:]


def _recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            return None
        buf += d
    return buf


if __name__ == "__main__":
    # Manual use: python3 fakemc.py [MODE [KEY]] -> prints its port, serves.
    f = FakeMC()
    if len(sys.argv) > 1:
        f.rule(sys.argv[2] if len(sys.argv) > 2 else None, sys.argv[1])
    print("PORT %d" % f.port, flush=True)
    try:
        while True:
            time.sleep(5)
            print("# counts %r applied %r unknown %r" % (f.counts, f.applied, f.unknown),
                  flush=True)
    except KeyboardInterrupt:
        f.stop()
