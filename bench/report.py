#!/usr/bin/env python3
"""report.py: turn bench/run.sh's raw result records into tables and JSON.

What it does: reads the tab-separated records run.sh appends while it
measures (one line per peer and test), prints one table per test with
each peer's figure and its ratio to sluice, and writes every raw field
plus the run's parameters to a JSON file.

What it assumes: Python 3 standard library only; the record layout is
the one written by run.sh's record_* functions:
  http     <test> <peer> <status> <rps> <p50_us> <p99_us> <max_us>
           <requests> <errors> <note>
  connect  <test> <peer> <status> <gbps> <bytes> <wall_s> <downloads>
           <failures> <note>
  meta     <key> <value>
and, from bench/cache.sh,
  cache    <test> <peer> <status> <rps> <p50_us> <p99_us> <max_us>
           <requests> <errors> <origin_requests> <note>

Why it is built this way: bash is a poor place for floating point and
JSON quoting, and keeping the arithmetic here keeps run.sh about
processes and ports.  Ratios are peer/sluice, so a figure below 1.0 in
the req/s and GB/s columns means sluice is ahead of that peer.
"""

import json
import sys

HTTP_FIELDS = ("rps", "p50_us", "p99_us", "max_us", "requests", "errors")
CONNECT_FIELDS = ("gbps", "bytes", "wall_s", "downloads", "failures")
# cache.sh: the http figures plus the requests the origin logged during
# the measurement (0 when every request was a hit).
CACHE_FIELDS = HTTP_FIELDS + ("origin_requests",)
FIELDS = {"http": HTTP_FIELDS, "connect": CONNECT_FIELDS,
          "cache": CACHE_FIELDS}


def num(text):
    """Parse a figure; empty or '-' (not measured) becomes None."""
    if text in ("", "-"):
        return None
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def load(path):
    meta, tests = {}, {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            kind = parts[0]
            if kind == "meta":
                meta[parts[1]] = parts[2]
                continue
            fields = FIELDS.get(kind, CONNECT_FIELDS)
            test, peer, status = parts[1], parts[2], parts[3]
            values = parts[4:4 + len(fields)]
            note = parts[4 + len(fields)] if len(parts) > 4 + len(fields) else ""
            row = {"peer": peer, "status": status, "note": note}
            row.update({k: (num(v) if status == "ok" else None)
                        for k, v in zip(fields, values)})
            tests.setdefault(test, {"kind": kind, "rows": []})["rows"].append(row)
    return meta, tests


def ratio(value, base):
    if value is None or not base:
        return None
    return value / base


def fmt(value, spec):
    """Format a figure; a missing one is a dash in the same width."""
    if value is None:
        width = "".join(ch for ch in spec.split(".")[0] if ch.isdigit())
        return "-".rjust(int(width or 1))
    return format(value, spec)


def table(name, test):
    rows = test["rows"]
    key = "gbps" if test["kind"] == "connect" else "rps"
    base = next((r[key] for r in rows if r["peer"] == "sluice"
                 and r["status"] == "ok"), None)
    for r in rows:
        r["ratio_to_sluice"] = ratio(r[key], base)
    out = []
    if test["kind"] in ("http", "cache"):
        if test["kind"] == "http":
            out.append(f"== {name}: GET through the proxy, "
                       "Cache-Control: no-store ==")
        else:
            out.append(f"== {name}: cache HIT, Cache-Control: max-age=3600 ==")
        out.append(f"{'peer':<10} {'req/s':>10} {'p99 ms':>8} "
                   f"{'peer/sluice':>11}  note")
        for r in rows:
            p99 = None if r["p99_us"] is None else r["p99_us"] / 1000.0
            note = r["note"] if r["status"] == "ok" else r["status"] + (
                ": " + r["note"] if r["note"] else "")
            out.append(f"{r['peer']:<10} {fmt(r['rps'], '10.0f')} "
                       f"{fmt(p99, '8.2f')} {fmt(r['ratio_to_sluice'], '11.2f')}"
                       f"  {note}".rstrip())
    else:
        inner = "TLS" if name == "connect" else "plain HTTP"
        out.append(f"== {name}: 4 MiB over {inner} through a CONNECT tunnel ==")
        out.append(f"{'peer':<10} {'GB/s':>8} {'downloads':>9} "
                   f"{'peer/sluice':>11}  note")
        for r in rows:
            note = r["note"] if r["status"] == "ok" else r["status"] + (
                ": " + r["note"] if r["note"] else "")
            if r["status"] == "ok" and r["failures"]:
                note = (note + " " if note else "") + f"{r['failures']} failed"
            out.append(f"{r['peer']:<10} {fmt(r['gbps'], '8.3f')} "
                       f"{fmt(r['downloads'], '9d')} "
                       f"{fmt(r['ratio_to_sluice'], '11.2f')}  {note}".rstrip())
    return "\n".join(out)


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: report.py RECORDS.tsv OUT.json\n")
        return 2
    meta, tests = load(argv[1])
    blocks = [table(name, test) for name, test in tests.items()]
    print("\n\n".join(blocks))
    doc = {"meta": meta, "tests": tests}
    with open(argv[2], "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2, sort_keys=True)
        fh.write("\n")
    print(f"\nraw results: {argv[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
