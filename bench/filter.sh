#!/usr/bin/env bash
# filter.sh: how fast sluice's URL filter loads and decides, against
# squidGuard on the same lists, and what it costs a proxied request.
#
#   bench/filter.sh [--quick] [--no-proxy] [--no-squidguard] [--keep]
#
# What it does:
#   1. bench/gen_lists.py writes two list trees: "big" (1,000,000
#      domains + 200,000 URL prefixes over 10 categories) and "rx"
#      (5,000 expressions in one category), plus 100,000 request URLs of
#      which 10% hit the big lists.
#   2. bench/filter_bench compiles each as the master does and decides
#      the URLs as a worker does: load time, heap, median/p99 per
#      decision, decisions per second.
#   3. squidGuard (Debian package squidguard), when installed, gets the
#      same lists: the time to build its databases (-C all) and to answer
#      the same 100,000 URLs on stdin (redirector protocol), start-up
#      subtracted.
#   4. bench/run.sh measures proxied 1 KiB req/s of sluice without and
#      with the big filter (peer "sluice-filter"), in one run.
#   5. sluice with 4 workers and the big filter: the master's and each
#      worker's memory (smaps_rollup: what is shared, what is private),
#      then a HUP under wrk load: the time to "configuration reloaded"
#      and whether any request failed.
#
# What it assumes: run from a built tree (make sluice bench/filter_bench);
# python3; for step 4 everything bench/run.sh needs, and root.  Only
# loopback is used.  Figures are printed; nothing is a pass/fail test.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$BENCH_DIR/..
SLUICE=${SLUICE:-$TOP/sluice}
FB=${FILTER_BENCH:-$TOP/bench/filter_bench}
DOMAINS=1000000 URLS=200000 EXPRS=5000 SAMPLES=100000 DECISIONS=300000
PROXY=1 SG=1 KEEP=0 QUICK=

while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=--quick; DECISIONS=100000 ;;
	--no-proxy) PROXY=0 ;;
	--no-squidguard) SG=0 ;;
	--keep) KEEP=1 ;;
	*) echo "usage: $0 [--quick] [--no-proxy] [--no-squidguard] [--keep]" >&2; exit 1 ;;
	esac
	shift
done
[ -x "$FB" ] || { echo "no $FB: run 'make bench/filter_bench'" >&2; exit 1; }

TMP=$(mktemp -d /tmp/sluice-filter-bench.XXXXXX)
chmod 755 "$TMP"
cleanup() { [ "$KEEP" = 1 ] && echo "kept $TMP" || rm -rf "$TMP"; }
trap cleanup EXIT

echo "== generating lists"
python3 "$BENCH_DIR/gen_lists.py" "$TMP/big" --domains $DOMAINS --urls $URLS \
	--expressions 0 --categories 10 --seed 1 --sample-urls "$TMP/urls.txt" $SAMPLES \
	--hit-ratio 0.1 >/dev/null
python3 "$BENCH_DIR/gen_lists.py" "$TMP/rx" --domains 10 --urls 10 \
	--expressions $EXPRS --categories 1 --seed 2 >/dev/null
# the rx tree is about its expressions alone
for f in "$TMP"/rx/*/domains "$TMP"/rx/*/urls; do : >"$f"; done
chmod -R a+rX "$TMP"

write_conf() {	# write_conf FILE LISTS CATEGORIES...: a config deny-ing each category
	local f=$1 lists=$2 rules="" c
	shift 2
	for c in "$@"; do
		rules="$rules    { action = \"deny\"; when = [ \"category:$c\" ]; },"$'\n'
	done
	cat >"$f" <<EOF
listen = ( { address = "127.0.0.1"; port = 1; } );
filter = {
  lists = "$lists";
  rules = (
$rules    { action = "allow"; when = [ "all" ]; }
  );
};
EOF
}
cats_of() { (cd "$1" && ls -d */ | tr -d /); }
write_conf "$TMP/big.conf" "$TMP/big" $(cats_of "$TMP/big")
write_conf "$TMP/rx.conf" "$TMP/rx" $(cats_of "$TMP/rx")
# the filter section alone, for run.sh's sluice-filter peer
sed -n '/^filter = {/,$p' "$TMP/big.conf" >"$TMP/filter-section.conf"

echo "== sluice: ${DOMAINS} domains + ${URLS} URL prefixes (10 categories)"
"$FB" -f "$TMP/big.conf" -u "$TMP/urls.txt" -n $DECISIONS | sed 's/^/   /'
echo "== sluice: ${EXPRS} expressions (one category)"
"$FB" -f "$TMP/rx.conf" -u "$TMP/urls.txt" -n $((DECISIONS / 3)) | sed 's/^/   /'

if [ "$SG" = 1 ]; then
	if ! command -v squidGuard >/dev/null; then
		echo "== squidGuard: not installed (apt-get install squidguard); skipped"
	else
		echo "== squidGuard $(squidGuard -v 2>&1 | head -n1 | sed 's/.*squidGuard: *//')"
		sg_tree() {	# sg_tree NAME: a squidGuard copy of a list tree and its config
			local name=$1 d=$TMP/sg-$1 c dests="" pass=""
			mkdir -p "$d/db" "$d/log"
			for c in $(cats_of "$TMP/$name"); do
				mkdir -p "$d/db/$c"
				# squidGuard takes neither "." nor "*." prefixes nor IDN
				sed -e 's/^\*\?\.//' "$TMP/$name/$c/domains" >"$d/db/$c/domains"
				sed -e 's|^https\?://||' "$TMP/$name/$c/urls" >"$d/db/$c/urls"
				# POSIX ERE, not PCRE: the same patterns in ERE spelling
				sed -e '/^#/d' -e 's/(?:/(/g' -e 's/\\d/[0-9]/g' \
					-e 's/\\w/[[:alnum:]_]/g' -e 's/\\s/[[:space:]]/g' \
					-e 's/\\b//g' -e '/(?/d' \
					"$TMP/$name/$c/expressions" >"$d/db/$c/expressions"
				dests="$dests"$'\n'"dest $c { domainlist $c/domains"$'\n'"urllist $c/urls"
				[ -s "$d/db/$c/expressions" ] && dests="$dests"$'\n'"expressionlist $c/expressions"
				dests="$dests"$'\n'"}"
				pass="$pass !$c"
			done
			cat >"$d/sg.conf" <<EOF
dbhome $d/db
logdir $d/log
$dests
acl {
  default {
    pass $pass all
    redirect http://blocked.invalid/
  }
}
EOF
			chmod -R a+rwX "$d"
		}
		sg_run() {	# sg_run NAME [N]: build dbs, then time the first N URLs
			local name=$1 d=$TMP/sg-$1 t0 t1 t2 n max=${2:-$SAMPLES}
			t0=$(date +%s.%N)
			squidGuard -c "$d/sg.conf" -C all >/dev/null 2>&1 || true
			t1=$(date +%s.%N)
			head -n "$max" "$TMP/urls.txt" | awk '{ print $0 " 10.1.2.3/- - GET" }' >"$d/in.txt"
			# start-up alone: one line
			head -n1 "$d/in.txt" >"$d/one.txt"
			local s0 s1
			s0=$(date +%s.%N)
			if ! squidGuard -c "$d/sg.conf" <"$d/one.txt" >/dev/null 2>&1; then
				echo "   squidGuard failed on these lists (exit $?); see $d/log"
				return 0
			fi
			s1=$(date +%s.%N)
			t2=$(date +%s.%N)
			squidGuard -c "$d/sg.conf" <"$d/in.txt" >"$d/out.txt" 2>/dev/null ||
				{ echo "   squidGuard failed (exit $?)"; return 0; }
			local t3
			t3=$(date +%s.%N)
			n=$(wc -l <"$d/in.txt")
			python3 - "$t0" "$t1" "$s0" "$s1" "$t2" "$t3" "$n" "$d/out.txt" <<'PY'
import sys
t0, t1, s0, s1, t2, t3 = map(float, sys.argv[1:7])
n = int(sys.argv[7])
out = open(sys.argv[8]).read().splitlines()
blocked = sum(1 for l in out if "blocked.invalid" in l)
run = (t3 - t2) - (s1 - s0)
print("   db build (-C all) %.2f s; start-up %.2f s" % (t1 - t0, s1 - s0))
print("   %d URLs in %.2f s after start-up: %.0f per s, %.1f us each (blocked %.1f%%)"
      % (n, run, n / run if run > 0 else 0, 1e6 * run / n, 100.0 * blocked / max(1, len(out))))
PY
		}
		sg_tree big
		echo "   -- ${DOMAINS} domains + ${URLS} URL prefixes"
		sg_run big
		sg_tree rx
		# ~2 ms a URL: a tenth of the URLs is plenty
		echo "   -- ${EXPRS} expressions (first $((SAMPLES / 10)) URLs)"
		sg_run rx $((SAMPLES / 10))
	fi
fi

if [ "$PROXY" = 1 ]; then
	echo "== proxied 1 KiB no-store GETs: sluice without and with the ${DOMAINS}-domain filter"
	# twice, in both orders: the one measured second tends to gain or
	# lose a few percent from the machine alone
	for order in "sluice sluice-filter" "sluice-filter sluice"; do
		SLUICE=$SLUICE SLUICE_FILTER_CONF=$TMP/filter-section.conf \
			"$BENCH_DIR/run.sh" $QUICK --peers "$order" --tests 1k
	done
fi

[ "$PROXY" = 1 ] || exit 0
echo "== memory per worker, and a reload of the big lists under load"
PORTS=$(python3 -c 'import socket
ss=[socket.socket() for _ in range(2)]
[s.bind(("127.0.0.1",0)) for s in ss]
print(" ".join(str(s.getsockname()[1]) for s in ss))')
read -r OPORT PPORT <<<"$PORTS"
cat >"$TMP/origin.py" <<'PY'
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
BODY = b"x" * 1024
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(BODY)
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$TMP/origin.py" "$OPORT" &
OPID=$!
cat >"$TMP/reload.conf" <<CONF
workers = 4;
pidfile = "$TMP/sluice.pid";
access_log = { path = ""; };
listen = ( { address = "127.0.0.1"; port = $PPORT; } );
clients = [ "127.0.0.0/8" ];
blocked_destinations = [];
cache = { enabled = false; };
CONF
cat "$TMP/filter-section.conf" >>"$TMP/reload.conf"
"$SLUICE" -d -f "$TMP/reload.conf" 2>"$TMP/reload.err" &
SPID=$!
stop_all() { kill "$SPID" "$OPID" 2>/dev/null || true; wait 2>/dev/null || true; }
ok=0
for _ in $(seq 100); do
	if curl -s -o /dev/null -x "http://127.0.0.1:$PPORT" "http://127.0.0.1:$OPORT/1k"; then ok=1; break; fi
	sleep 0.1
done
if [ "$ok" != 1 ]; then
	echo "   sluice did not start:"; tail -5 "$TMP/reload.err"; stop_all; exit 1
fi
# every worker decides some requests before its memory is read
for i in $(seq 200); do
	curl -s -o /dev/null -x "http://127.0.0.1:$PPORT" "http://127.0.0.1:$OPORT/warm$i" &
done
wait $(jobs -p | grep -v -e "^$SPID\$" -e "^$OPID\$") 2>/dev/null || true
python3 - "$SPID" <<'PY'
import os, sys
def roll(pid):
    d = {}
    for ln in open("/proc/%d/smaps_rollup" % pid):
        p = ln.split()
        if len(p) >= 3 and p[-1] == "kB":
            d[p[0].rstrip(":")] = int(p[1])
    return d
m = int(sys.argv[1])
kids = []
for t in os.listdir("/proc/%d/task" % m):
    kids += [int(x) for x in open("/proc/%d/task/%s/children" % (m, t)).read().split()]
mr = roll(m)
print("   master: Rss %.1f MB (the compiled lists; workers inherit them)" % (mr["Rss"] / 1024))
tot = 0
for k in sorted(kids):
    r = roll(k)
    tot += r["Private_Dirty"]
    print("   worker %d: Rss %.1f MB, Pss %.1f MB, Private_Dirty %.1f MB"
          % (k, r["Rss"] / 1024, r["Pss"] / 1024, r["Private_Dirty"] / 1024))
print("   %d workers hold %.1f MB of private pages in all" % (len(kids), tot / 1024))
PY
if ! command -v wrk >/dev/null; then
	echo "   no wrk: reload under load skipped"; stop_all; exit 0
fi
wrk -t1 -c32 -d8s -s "$BENCH_DIR/wrk-proxy.lua" "http://127.0.0.1:$PPORT/" -- \
	"http://127.0.0.1:$OPORT/1k" >"$TMP/wrk.out" 2>&1 &
WPID=$!
sleep 3
t0=$(date +%s.%N)
kill -HUP "$SPID"
for _ in $(seq 250); do
	grep -q "configuration reloaded" "$TMP/reload.err" && break
	sleep 0.02
done
t1=$(date +%s.%N)
wait "$WPID" || true
python3 -c 'import sys; print("   HUP to \"configuration reloaded\" (lists compiled again, 4 workers forked): %.2f s" % (float(sys.argv[2]) - float(sys.argv[1])))' "$t0" "$t1"
grep -E 'requests in|Non-2xx|Socket errors' "$TMP/wrk.out" | sed 's/^ */   wrk: /'
grep -q 'Non-2xx\|Socket errors' "$TMP/wrk.out" ||
	echo "   wrk: no error and no non-2xx answer across the reload"
stop_all
