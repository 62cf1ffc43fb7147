#!/usr/bin/env python3
"""gen_lists.py - writes squidGuard-style category lists for sluice's
filter benchmark and end-to-end tests.

    bench/gen_lists.py DIR --domains N --urls M --expressions K \\
        --categories C --seed S [--sample-urls FILE COUNT] [--hit-ratio R]

writes DIR/cat0 ... DIR/cat<C-1>, each with `domains`, `urls` and
`expressions`, entries dealt round-robin over the categories.  Entries
are deterministic for a seed, distinct after the loader's normalisation
(lower case, punycode, leading "." / "www." dropped), and look like real
lists: names built from syllables of realistic lengths, 2-3 labels plus
a TLD from a weighted list, about 2% IDN names, about 10% with
squidGuard's leading ".", URL entries with 1-3 path segments, some with
a scheme, a "www." or a trailing slash.

--sample-urls FILE COUNT writes COUNT request URLs (http://host/path, one
a line, IDN hosts in punycode as a client sends them) of which about
--hit-ratio (default 0.1) name a listed domain (itself or a subdomain)
or fall under a listed URL prefix; the others are fresh names that match
no domain or URL entry (expressions are not considered).

Python 3 standard library only; a few seconds per million domains.
"""

import argparse
import os
import random
import sys

SYLLABLES = (
    "ba be bi bo bu ca co cu da de di do du fa fe fi fo ga ge go gu ha he "
    "hi ho ja jo ka ke ki ko ku la le li lo lu ma me mi mo mu na ne ni no "
    "nu pa pe pi po pu ra re ri ro ru sa se si so su ta te ti to tu va ve "
    "vi vo za zo an en in on ar er or ex al el il ol bet win top net web "
    "hot max pro sex bet play club shop land star city zone live news "
    "porn game slot cash tube cam chat mail link best free "
).split()
IDN_SYLLABLES = "bü mü kö lä sé fé ñu ça på ør ré dö".split()
TLDS = (["com"] * 30 + ["net"] * 8 + ["org"] * 6 + ["de"] * 5 +
        ["ru"] * 5 + ["info"] * 3 + ["fr"] * 3 + ["nl"] * 2 +
        ["co.uk"] * 3 + ["com.br"] * 2 + ["io", "biz", "xyz", "top",
                                           "pl", "it", "es", "jp"])
PATH_WORDS = ("index.html home img images video videos gallery forum "
              "download files pics tag cat page view watch live p "
              "member login search archive 2023 2024 hd free").split()


NSYL = (1, 2, 2, 2, 3, 3, 4, 2)  # syllables per label, by 3 random bits


def label(rnd, idn=False):
    """One DNS label of 1-4 syllables (3-14 bytes), now and then a
    digit run or a hyphen, as names in real lists look.  One 40-bit
    draw per label: random.choice would make a million names slow."""
    r = rnd.getrandbits(40)
    n = NSYL[r & 7]
    parts = [SYLLABLES[(r >> (3 + 7 * i) & 127) % len(SYLLABLES)]
             for i in range(n)]
    if idn:
        parts[0] = IDN_SYLLABLES[(r >> 31 & 15) % len(IDN_SYLLABLES)]
    extra = (r >> 35) % 32
    if extra < 3:
        parts.append(str(rnd.randrange(1, 1000)))
    elif extra < 4 and n > 1:
        parts.insert(1, "-")
    s = "".join(parts)
    return s if len(s) >= 3 else s + SYLLABLES[(r >> 24 & 127) % 64]


class Names:
    """Host names from a pool of labels made once: drawing two pool
    indexes and a TLD is several times faster than building labels
    afresh, and a pool of up to 2^18 labels still gives hundreds of
    millions of distinct names."""

    def __init__(self, rnd, size):
        self.rnd = rnd
        self.pool = [label(rnd) for _ in range(size)]

    def host(self, idn=False):
        """2-3 labels plus a TLD; IDN names get one non-ASCII label."""
        pool, n = self.pool, len(self.pool)
        r = self.rnd.getrandbits(80)
        labels = [pool[(r & 0xFFFFFF) % n]]
        if (r >> 24 & 0xFF) < 90:          # about 35% have 3 labels
            labels.append(pool[(r >> 32 & 0xFFFFFF) % n])
        if idn:
            labels[-1] = label(self.rnd, idn=True)
        labels.append(TLDS[(r >> 56 & 0xFFFF) % len(TLDS)])
        return ".".join(labels)


def ace(name):
    """What a client sends (and what the loader stores): punycode."""
    return name.encode("idna").decode("ascii")


def strip_www(host):
    """The loader's www./wwwN./webN. rule (kept when a TLD would be
    left)."""
    first, _, rest = host.partition(".")
    if "." not in rest:
        return host
    if first.startswith("www") and first[3:].isdigit() or first == "www":
        return rest
    if first.startswith("web") and first[3:].isdigit() and len(first) > 3:
        return rest
    return host


def listed_suffix(host, domains):
    """Does host or a parent of it appear in the domain set?"""
    parts = host.split(".")
    return any(".".join(parts[i:]) in domains for i in range(len(parts)))


def gen_domains(rnd, names, n):
    seen, out = set(), []
    while len(out) < n:
        idn = rnd.random() < 0.02
        name = names.host(idn)
        key = ace(name) if idn else name
        if key in seen:
            continue
        seen.add(key)
        out.append(("." + name) if rnd.random() < 0.10 else name)
    return out, seen


def gen_urls(rnd, names, m, domains):
    seen, out, canon = set(), [], []
    while len(out) < m:
        host = names.host()
        if listed_suffix(host, domains):
            continue
        path = "/".join(rnd.choice(PATH_WORDS) if rnd.random() < 0.5
                        else label(rnd)
                        for _ in range(rnd.choice((1, 1, 2, 2, 3))))
        key = strip_www(host) + "/" + path
        if key in seen:
            continue
        seen.add(key)
        text = host + "/" + path
        r = rnd.random()
        if r < 0.10:
            text = "www." + text
        elif r < 0.15:
            text = "http://" + text
        if rnd.random() < 0.1:
            # "h/p/" matches "h/p/" and below only: samples must follow.
            text += "/"
            key += "/"
        out.append(text)
        canon.append(key)
    return out, canon, {k.split("/", 1)[0] for k in seen}


def gen_exprs(rnd, k):
    seen, out = set(), []
    forms = (
        r"(^|\.){w}[0-9]*\.(com|net|org)/",
        r"/({w}|{v})[-_]?[0-9]+/",
        r"^[^/]*{w}{v}[^/]*/",
        r"\.(?:{w}|{v})\.[a-z]{{2,3}}/.*\?id=[0-9]+",
        r"/{w}/{v}\.(?:jpe?g|gif|png)$",
    )
    while len(out) < k:
        p = rnd.choice(forms).format(w=label(rnd), v=label(rnd))
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def write_lists(root, cats, kinds):
    for i in range(cats):
        d = os.path.join(root, "cat%d" % i)
        os.makedirs(d, exist_ok=True)
        for fname, entries in kinds.items():
            with open(os.path.join(d, fname), "w", encoding="utf-8",
                      newline="\n") as f:
                f.write("# %s of cat%d, written by bench/gen_lists.py\n"
                        % (fname, i))
                chunk = entries[i::cats]
                if chunk:
                    f.write("\n".join(chunk))
                    f.write("\n")


def write_samples(path, count, ratio, rnd, names, domains, dom_set,
                  url_canon, url_hosts):
    lines = []
    for _ in range(count):
        if rnd.random() < ratio and (domains or url_canon):
            use_dom = url_canon == [] or (domains and rnd.random() < 0.5)
            if use_dom:
                d = ace(rnd.choice(domains).lstrip("."))
                host = d if rnd.random() < 0.5 else "www." + d
                lines.append("http://%s/%s" % (host, rnd.choice(PATH_WORDS)))
            else:
                u = rnd.choice(url_canon)
                tail = rnd.choice(("", "/" + rnd.choice(PATH_WORDS),
                                   "?id=%d" % rnd.randrange(100000)))
                if u.endswith("/") and tail.startswith("/"):
                    tail = tail[1:]
                elif u.endswith("/") and tail.startswith("?"):
                    tail = "x" + tail
                lines.append("http://" + u + tail)
            continue
        while True:
            host = names.host()
            if rnd.random() < 0.3:
                host = "www." + host
            if (not listed_suffix(host, dom_set) and
                    strip_www(host) not in url_hosts):
                break
        lines.append("http://%s/%s/%s" % (host, rnd.choice(PATH_WORDS),
                                          label(rnd)))
    with open(path, "w", encoding="ascii") as f:
        f.write("\n".join(lines))
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--domains", type=int, default=1000)
    ap.add_argument("--urls", type=int, default=100)
    ap.add_argument("--expressions", type=int, default=10)
    ap.add_argument("--categories", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sample-urls", nargs=2, metavar=("FILE", "COUNT"))
    ap.add_argument("--hit-ratio", type=float, default=0.1)
    a = ap.parse_args()
    if a.categories < 1 or min(a.domains, a.urls, a.expressions) < 0:
        ap.error("counts must be >= 0 and --categories >= 1")
    if not 0.0 <= a.hit_ratio <= 1.0:
        ap.error("--hit-ratio must be within 0..1")

    rnd = random.Random(a.seed)
    names = Names(rnd, max(1024, min(1 << 18, a.domains + a.urls)))
    domains, dom_set = gen_domains(rnd, names, a.domains)
    urls, url_canon, url_hosts = gen_urls(rnd, names, a.urls, dom_set)
    exprs = gen_exprs(rnd, a.expressions)
    write_lists(a.dir, a.categories, {"domains": domains, "urls": urls,
                                      "expressions": exprs})
    if a.sample_urls:
        srnd = random.Random(a.seed + 1)
        write_samples(a.sample_urls[0], int(a.sample_urls[1]),
                      a.hit_ratio, srnd, Names(srnd, 4096), domains,
                      dom_set, url_canon, url_hosts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
