#!/usr/bin/env python3
"""
t_te_grid.py - the Transfer-Encoding obfuscation grid (HOSTILE 1.2).

13 bytes x 10 positions around "Transfer-Encoding: chunked", plus the
classic fixed obfuscations.  Every variant is a POST that carries both a
Content-Length covering the whole body and the obfuscated TE, and the
body starts with a last-chunk followed by a complete smuggled request:
a proxy and an origin that disagree about the framing would turn it
into a second request.

Each variant passes when either
  (a) sluice answers 400 or 501 with Connection: close, closes, and the
      origin received none of its bytes; or
  (b) it was forwarded with exactly one canonical framing (the origin's
      strict parser accepts it), and the origin never received the
      smuggled request - checked by a sentinel request sent after it on
      the same client connection, which must get its own answer.
One sluice, one origin, one fresh connection per variant: fast.
"""
from harness import *
from origin import *

S = {}
O = new_origin()
OH = b"127.0.0.1:%d" % O.port
BYTES = (0x01, 0x04, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1f, 0x20, 0x7f, 0xa0, 0xff)
TE = b"Transfer-Encoding: chunked"


def positions(c):
    b = bytes([c])
    return [
        ("mid", [b"Transfer-Encoding:" + b + b"chunked"]),
        ("post-name", [b"Transfer-Encoding" + b + b": chunked"]),
        ("pre-name", [b + TE]),
        ("end", [TE + b]),
        ("X-before", [b"X: X" + b + TE]),
        ("X-after", [TE + b + b"X: X"]),
        ("CR-x-before", [b"X: X\r" + b + TE]),
        ("x-LF-before", [b"X: X" + b + b"\n" + TE]),
        ("CR-x-after", [TE + b"\r" + b + b"X: X"]),
        ("x-LF-after", [TE + b + b"\nX: X"]),
    ]


FIXED = [
    ("xchunked", [b"Transfer-Encoding: xchunked"]),
    ("space before colon", [b"Transfer-Encoding : chunked"]),
    ("TE plus junk TE", [TE, b"Transfer-Encoding: x"]),
    ("TE LF colon", [b"Transfer-Encoding\n: chunked"]),
    ("TE tab", [b"Transfer-Encoding:\tchunked"]),
    ("X LF TE", [b"X: X\nTransfer-Encoding: chunked"]),
]


def variant(idx, lines):
    smuggled = b"GET http://" + OH + b"/smuggled/%d HTTP/1.1\r\nHost: " % idx + OH + b"\r\n\r\n"
    body = b"0\r\n\r\n" + smuggled
    head = b"POST http://" + OH + b"/grid/%d HTTP/1.1\r\nHost: " % idx + OH + b"\r\n"
    head += b"Content-Length: %d\r\n" % len(body)
    for ln in lines:
        head += ln + b"\r\n"
    return head + b"\r\n" + body


def check_variant(idx, lines):
    def fn():
        o, sl = S["o"], S["sl"]
        raw = variant(idx, lines)
        c = Client(sl.port, timeout=5)
        c.send(raw)
        r = c.read_response(method="POST", timeout=5)
        r.client = c
        mine = lambda: [q for q in o.requests if q.target.endswith("/%d" % idx)]
        if r.status in (400, 501):
            expect_error_page(r, (400, 501))
            o.wait_requests(10 ** 9, 0.05)
            expect_eq(mine(), [], "origin received requests for a rejected variant")
            print("# variant %d: rejected %d" % (idx, r.status), flush=True)
        else:
            expect_eq(r.status, 200, "status (neither rejected nor forwarded)", r, o.summary())
            got = mine()
            expect_eq([q.target for q in got], ["/grid/%d" % idx], "origin requests", o.summary())
            if not (r.eof or c.wait_closed(0.01)):
                c.send(b"GET http://" + OH + b"/sentinel/%d HTTP/1.1\r\nHost: " % idx + OH + b"\r\n\r\n")
                r2 = c.read_response(timeout=5)
                if r2.status is not None:
                    expect_eq(r2.body, b"ok GET /sentinel/%d" % idx, "answer after the variant")
            expect(not any("smuggled" in q.target for q in o.requests), "SMUGGLED request reached the origin",
                   o.summary())
            q = got[0]
            print("# variant %d: forwarded with %s, body %d bytes" % (
                idx, "chunked" if q.chunked else "CL %s" % q.header("Content-Length"), len(q.body)), flush=True)
        c.close()
    return fn


def cases():
    out = []
    idx = 0
    for c in BYTES:
        for pos, lines in positions(c):
            idx += 1
            out.append(("TE grid 0x%02x %s" % (c, pos), check_variant(idx, lines)))
    for name, lines in FIXED:
        idx += 1
        out.append(("TE fixed %s" % name, check_variant(idx, lines)))

    def alive():
        still_serving(S["sl"], S["o"])
        expect(not any("smuggled" in q.target for q in S["o"].requests), "smuggled", S["o"].summary())
    out.append(("proxy still serving after the grid, nothing smuggled", alive))
    return out


def setup():
    S["o"] = O
    S["sl"] = Sluice()


main(cases(), setup=setup)
