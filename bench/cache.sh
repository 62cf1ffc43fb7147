#!/usr/bin/env bash
# cache.sh: side-by-side benchmark of sluice's cache HIT path against
# other caching proxies on this machine.
#
# What it does: starts an origin (nginx) whose objects /1k, /16k, /256k
# carry Cache-Control: max-age=3600, then, one peer at a time, starts the
# cache under test, fetches each object until the peer says it served it
# from its cache (X-Cache / X-Cache-Status: HIT, two ids in X-Varnish),
# warms it up, and measures hits with wrk (64 keep-alive connections):
# req/s and p99 latency.  The origin's access log is counted around each
# measurement; a peer that reached the origin while being measured gets a
# note (and the count in the JSON).  "direct" is wrk against the origin
# itself (no cache: every request is a file read).  It prints one table
# per object size with ratios to sluice and writes the raw figures to
# bench/out/cache-<stamp>.json.
#
# What it assumes: Linux, bash >= 5, 2+ CPUs, root (Squid and Varnish
# drop privileges themselves), wrk, curl, taskset, python3, nginx; squid
# and varnishd are optional (missing or failing peers are reported and
# skipped).  sluice is taken from $SLUICE (default: the tree's ./sluice,
# which may be a sanitizer build: benchmark an optimized one).  Only
# loopback addresses are used.
#
# Why it is built this way: the conventions of run.sh, so the two sets of
# figures compare: origin and proxy pinned to CPU 0, wrk to CPU 1, free
# ports picked at run time, readiness polled with a deadline, every
# process in its own process group and stopped by the EXIT trap.  Forward
# proxies get absolute-form requests (wrk-proxy.lua); Varnish, a reverse
# proxy, gets origin-form requests on the same objects.  Arithmetic and
# JSON live in report.py.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SLUICE=${SLUICE:-$BENCH_DIR/../sluice}

DURATION=10		# seconds per measurement
WARMUP=1		# seconds of load before each measurement
CONNS=64		# wrk connections
PEERS="sluice nginx squid varnish direct"
TESTS="1k 16k 256k"
KEEP=0
PERF=
CPU_SERVER=0
CPU_CLIENT=1

usage() {
	cat <<USAGE
usage: $0 [options]
  --quick              3 s measurements (default ${DURATION} s)
  --duration S         seconds per measurement
  --connections N      wrk connections (default $CONNS)
  --peers "a b"        subset of: $PEERS
  --tests "a b"        subset of: $TESTS
  --perf PEER          record a call-graph profile (perf record -g) of
                       PEER's processes during each of its measurements;
                       the reports are kept in bench/out/
  --keep               keep the temporary directory (configs, logs)
environment: SLUICE=/path/to/sluice (default $BENCH_DIR/../sluice)
USAGE
}

while [ $# -gt 0 ]; do
	case $1 in
	--quick) DURATION=3 ;;
	--duration) DURATION=$2; shift ;;
	--connections) CONNS=$2; shift ;;
	--peers) PEERS=$2; shift ;;
	--tests) TESTS=$2; shift ;;
	--perf) PERF=$2; shift ;;
	--keep) KEEP=1 ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done

log() { printf '[cache-bench] %s\n' "$*" >&2; }
die() { printf '[cache-bench] error: %s\n' "$*" >&2; exit 1; }

for tool in wrk curl taskset python3 nginx setsid; do
	command -v "$tool" >/dev/null || die "$tool is required"
done
[ -z "$PERF" ] || command -v perf >/dev/null || die "--perf needs perf"
[ "$(id -u)" = 0 ] || die "run as root (the peers drop privileges themselves)"
if [ "$(nproc)" -lt 2 ]; then
	log "only one CPU: client and server share it, figures are not comparable"
	CPU_CLIENT=0
fi

# Process bookkeeping (start_bg, stop_pid, cleanup on exit).
# shellcheck source=bench/procs.sh
. "$BENCH_DIR/procs.sh"

# ---------------------------------------------------------------------
# Scratch space, ports, content.

TMP=$(mktemp -d /tmp/sluice-cache-bench.XXXXXX)
# The peers' workers run unprivileged: they must reach their files.
chmod 755 "$TMP"
mkdir -p "$TMP/www" "$TMP/origin" "$TMP/nginx" "$TMP/squid" "$TMP/sluice" \
	"$TMP/varnish" "$TMP/run"
chown proxy:proxy "$TMP/squid" "$TMP/sluice"

# All ports are bound at once so they are distinct, then released.
read -r ORIGIN_PORT SLUICE_PORT NGINX_PORT SQUID_PORT VARNISH_PORT < <(
	python3 -c '
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')

head -c 1024 /dev/urandom >"$TMP/www/1k"
head -c 16384 /dev/urandom >"$TMP/www/16k"
head -c 262144 /dev/urandom >"$TMP/www/256k"
chmod 644 "$TMP/www/"*

# render TEMPLATE OUT PROXY_PORT: fill a bench/conf/*.in template.
render() {
	sed -e "s|@TMP@|$TMP|g" -e "s|@ORIGIN_PORT@|$ORIGIN_PORT|g" \
		-e "s|@PROXY_PORT@|$3|g" -e "s|@SHM_NAME@|$SHM_NAME|g" \
		"$BENCH_DIR/conf/$1" >"$2"
}

# wait_ready NAME PID SECONDS CURL-ARGS...: poll until a request through
# the peer answers 200, the peer dies, or the deadline passes.
wait_ready() {
	local name=$1 pid=$2 limit=$3 code end
	shift 3
	end=$((SECONDS + limit))
	while :; do
		if ! alive "$pid"; then
			READY_WHY="$name exited during startup"
			return 1
		fi
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" || true)
		[ "$code" = 200 ] && return 0
		if [ "$SECONDS" -ge "$end" ]; then
			READY_WHY="$name not answering 200 after ${limit}s (last: $code)"
			return 1
		fi
		sleep 0.05
	done
}

# Last lines of a log, flattened for a one-line note.
log_tail() { [ -r "$1" ] && tail -n 3 "$1" | tr '\t\n' '  ' | cut -c1-300; }

RECORDS=$TMP/records.tsv
: >"$RECORDS"
meta() { printf 'meta\t%s\t%s\n' "$1" "$2" >>"$RECORDS"; }
# test peer status rps p50 p99 max requests errors origin_requests note
record_cache() {
	printf 'cache\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RECORDS"
}

# Requests the origin has logged so far.
origin_count() { wc -l <"$TMP/origin/access.log" 2>/dev/null || echo 0; }

# ---------------------------------------------------------------------
# The origin.

render origin-cache-nginx.conf.in "$TMP/origin/nginx.conf" -
: >"$TMP/origin/access.log"
start_bg "$TMP/origin/stderr.log" taskset -c "$CPU_SERVER" \
	nginx -p "$TMP/origin" -e "$TMP/origin/error.log" -c "$TMP/origin/nginx.conf"
ORIGIN_PID=$LAST_PID
wait_ready origin "$ORIGIN_PID" 15 "http://127.0.0.1:$ORIGIN_PORT/1k" ||
	die "$READY_WHY: $(log_tail "$TMP/origin/error.log") $(log_tail "$TMP/origin/stderr.log")"
log "origin on 127.0.0.1:$ORIGIN_PORT, pid $ORIGIN_PID"

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
meta stamp "$STAMP"
meta bench cache
meta cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
meta nproc "$(nproc)"
meta kernel "$(uname -r)"
meta duration_s "$DURATION"
meta warmup_s "$WARMUP"
meta connections "$CONNS"
meta pinning "origin+proxy on cpu $CPU_SERVER, client on cpu $CPU_CLIENT"
meta wrk "$(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)"
meta nginx "$(nginx -v 2>&1 | sed 's/^.*\///')"
command -v squid >/dev/null && meta squid "$(squid -v | head -n1 | sed 's/^.*Version //')"
command -v varnishd >/dev/null && meta varnish "$(varnishd -V 2>&1 | head -n1 | sed 's/^varnishd (//; s/ revision.*//')"
meta sluice "$(readlink -f "$SLUICE" 2>/dev/null || echo "$SLUICE")"
# Other load on the machine skews every figure: keep it with the results.
meta loadavg_at_start "$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------------
# Peers.  start_peer sets PEER_PID, PEER_PORT, PEER_PIDFILE, or returns 1
# with START_WHY.

# A reverse proxy is asked for /object, a forward proxy for the absolute
# URL of the object at the origin.
reverse_peer() { [ "$1" = varnish ] || [ "$1" = direct ]; }

start_peer() {
	local peer=$1 conf ready=()
	PEER_PID='' PEER_PIDFILE='' START_WHY=''
	case $peer in
	direct)
		PEER_PORT=$ORIGIN_PORT
		return 0 ;;
	sluice)
		[ -x "$SLUICE" ] || { START_WHY="no binary at $SLUICE"; return 1; }
		PEER_PORT=$SLUICE_PORT
		conf=$TMP/sluice/sluice.conf
		render sluice-cache.conf.in "$conf" "$PEER_PORT"
		PEER_PIDFILE=$TMP/sluice/sluice.pid
		start_bg "$TMP/sluice/stderr.log" taskset -c "$CPU_SERVER" \
			"$SLUICE" -d -f "$conf" ;;
	nginx)
		PEER_PORT=$NGINX_PORT
		conf=$TMP/nginx/nginx.conf
		render nginx-cache.conf.in "$conf" "$PEER_PORT"
		start_bg "$TMP/nginx/stderr.log" taskset -c "$CPU_SERVER" \
			nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$conf" ;;
	squid)
		command -v squid >/dev/null || { START_WHY="squid not installed"; return 1; }
		PEER_PORT=$SQUID_PORT
		conf=$TMP/squid/squid.conf
		render squid-cache.conf.in "$conf" "$PEER_PORT"
		if ! squid -k parse -f "$conf" >"$TMP/squid/parse.log" 2>&1; then
			START_WHY="config rejected: $(grep -iE 'error|fatal' "$TMP/squid/parse.log" | head -n2 | tr '\n' ' ')"
			return 1
		fi
		start_bg "$TMP/squid/stderr.log" taskset -c "$CPU_SERVER" \
			squid -N -f "$conf" ;;
	varnish)
		command -v varnishd >/dev/null || { START_WHY="varnishd not installed"; return 1; }
		PEER_PORT=$VARNISH_PORT
		conf=$TMP/varnish/bench.vcl
		render varnish.vcl.in "$conf" "$PEER_PORT"
		# -n: a working directory of its own, so a system instance (if
		# any) is never touched; -T none: no management port.
		start_bg "$TMP/varnish/stderr.log" taskset -c "$CPU_SERVER" \
			varnishd -F -n "$TMP/varnish/work" -a "127.0.0.1:$PEER_PORT" \
			-f "$conf" -s malloc,256m -T none ;;
	*)
		START_WHY="unknown peer"
		return 1 ;;
	esac
	PEER_PID=$LAST_PID
	if reverse_peer "$peer"; then
		ready=("http://127.0.0.1:$PEER_PORT/1k")
	else
		ready=(-x "http://127.0.0.1:$PEER_PORT" "http://127.0.0.1:$ORIGIN_PORT/1k")
	fi
	if ! wait_ready "$peer" "$PEER_PID" 20 "${ready[@]}"; then
		START_WHY="$READY_WHY; $(log_tail "$TMP/$peer/stderr.log")"
		case $peer in
		squid) START_WHY="$START_WHY $(log_tail "$TMP/squid/cache.log")" ;;
		sluice) START_WHY="$START_WHY $(log_tail "$TMP/sluice/error.log")" ;;
		nginx) START_WHY="$START_WHY $(log_tail "$TMP/nginx/error.log")" ;;
		esac
		stop_pid "$PEER_PID" "$PEER_PIDFILE"
		PEER_PID=
		return 1
	fi
	return 0
}

stop_peer() {
	[ -n "${PEER_PID:-}" ] && stop_pid "$PEER_PID" "$PEER_PIDFILE"
	PEER_PID=
}

# is_hit PEER HEADERS-FILE: does the response head say "from the cache"?
is_hit() {
	case $1 in
	direct) return 0 ;;
	varnish) grep -qiE '^x-varnish: *[0-9]+ +[0-9]+' "$2" ;;
	*) grep -qiE '^x-cache(-status)?: *hit' "$2" ;;
	esac
}

# Every process of the peer (the process group led by PEER_PID), for perf.
peer_pids() {
	local p
	p=$(pgrep -g "$PEER_PID" 2>/dev/null | tr '\n' ',' || true)
	printf '%s' "${p%,}"
}

# ---------------------------------------------------------------------
# One measurement: check, warm until hits, load, count origin requests.

run_cache() {
	local test=$1 peer=$2 port=$3 target size got out line via=() url i
	local hdr=$TMP/run/head-$peer-$test.txt
	case $test in
	1k) size=1024 ;;
	16k) size=16384 ;;
	256k) size=262144 ;;
	*) die "unknown test $test" ;;
	esac
	if reverse_peer "$peer"; then
		target=/$test url=http://127.0.0.1:$port/$test
	else
		target=http://127.0.0.1:$ORIGIN_PORT/$test url=$target
		via=(-x "http://127.0.0.1:$port")
	fi
	# A wrong answer served fast is not a result; nor is a miss.  Ask
	# until the peer says it answered from its cache (the first request
	# fills it; some caches store only after the response completed).
	for ((i = 0; i < 40; i++)); do
		got=$(curl -s -D "$hdr" -o /dev/null -w '%{http_code} %{size_download}' \
			--max-time 5 "${via[@]}" "$url" || true)
		[ "$got" = "200 $size" ] && is_hit "$peer" "$hdr" && break
		sleep 0.05
	done
	if [ "$got" != "200 $size" ]; then
		record_cache "$test" "$peer" failed - - - - - - - "check answered '$got'"
		log "$peer $test: check answered '$got'"
		return 0
	fi
	if ! is_hit "$peer" "$hdr"; then
		record_cache "$test" "$peer" failed - - - - - - - \
			"no hit after $i requests: $(grep -iE '^(x-cache|x-varnish|age|cache-status)' "$hdr" | tr -d '\r' | tr '\n' ' ')"
		log "$peer $test: never served from its cache"
		return 0
	fi
	taskset -c "$CPU_CLIENT" wrk -t1 -c"$CONNS" -d"${WARMUP}s" \
		-s "$BENCH_DIR/wrk-proxy.lua" "http://127.0.0.1:$port/" -- "$target" \
		>/dev/null 2>&1 || true
	out=$TMP/run/wrk-$peer-$test.txt
	local o0 o1 perf_pid= pids
	if [ "$PERF" = "$peer" ] && [ -n "$PEER_PID" ]; then
		pids=$(peer_pids)
		if [ -n "$pids" ]; then
			mkdir -p "$BENCH_DIR/out"
			perf record -q -g -o "$TMP/run/perf-$peer-$test.data" -p "$pids" \
				>/dev/null 2>&1 &
			perf_pid=$!
			PIDS+=("$perf_pid")
		fi
	fi
	o0=$(origin_count)
	taskset -c "$CPU_CLIENT" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency \
		-s "$BENCH_DIR/wrk-proxy.lua" "http://127.0.0.1:$port/" -- "$target" \
		>"$out" 2>&1 || true
	o1=$(origin_count)
	if [ -n "$perf_pid" ]; then
		kill -INT "$perf_pid" 2>/dev/null || true
		wait "$perf_pid" 2>/dev/null || true
		forget_pid "$perf_pid"
		# A flat profile first (where the cycles go), then the call
		# graph (who called them).
		{
			perf report --stdio --no-children -g none --percent-limit 0.3 \
				-i "$TMP/run/perf-$peer-$test.data" 2>/dev/null
			perf report --stdio -i "$TMP/run/perf-$peer-$test.data" 2>/dev/null
		} >"$BENCH_DIR/out/perf-$peer-$test-$STAMP.txt" || true
		log "$peer $test: profile in bench/out/perf-$peer-$test-$STAMP.txt"
	fi
	line=$(grep '^BENCH_RESULT ' "$out" | tail -n1 || true)
	if [ -z "$line" ]; then
		record_cache "$test" "$peer" failed - - - - - - - "wrk: $(log_tail "$out")"
		return 0
	fi
	local rps p50 p99 max reqs errs
	field() { printf '%s\n' "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
	rps=$(field rps) p50=$(field p50_us) p99=$(field p99_us) max=$(field max_us)
	reqs=$(field requests)
	errs=$(($(field err_connect) + $(field err_read) + $(field err_write) +
		$(field err_status) + $(field err_timeout)))
	local kind note=
	for kind in connect read write status timeout; do
		[ "$(field "err_$kind")" = 0 ] || note+="${note:+ }$kind=$(field "err_$kind")"
	done
	[ -z "$note" ] || note="wrk errors: $note"
	local origin_reqs=$((o1 - o0))
	# The origin serves every request of "direct"; for a cache, any
	# origin request during the run means not all of it was hits.
	if [ "$peer" != direct ] && [ "$origin_reqs" -gt 0 ]; then
		note+="${note:+; }NOT ALL HITS: origin saw $origin_reqs requests"
	fi
	# Still a hit after the run (an object evicted or expired mid-run
	# would show here).
	curl -s -D "$hdr" -o /dev/null --max-time 5 "${via[@]}" "$url" >/dev/null || true
	is_hit "$peer" "$hdr" || note+="${note:+; }not a hit after the run"
	record_cache "$test" "$peer" ok "$rps" "$p50" "$p99" "$max" "$reqs" "$errs" \
		"$origin_reqs" "$note"
	log "$peer $test: $rps req/s, p99 $p99 us, $errs errors, origin requests $origin_reqs"
}

# ---------------------------------------------------------------------
# Main loop: one peer at a time, all its tests, then stop it.

for peer in $PEERS; do
	if ! start_peer "$peer"; then
		log "$peer: skipped: $START_WHY"
		for t in $TESTS; do
			record_cache "$t" "$peer" skipped - - - - - - - "$START_WHY"
		done
		continue
	fi
	log "$peer on 127.0.0.1:$PEER_PORT${PEER_PID:+, pid $PEER_PID}"
	for t in $TESTS; do
		run_cache "$t" "$peer" "$PEER_PORT"
	done
	stop_peer
done

mkdir -p "$BENCH_DIR/out"
python3 "$BENCH_DIR/report.py" "$RECORDS" "$BENCH_DIR/out/cache-$STAMP.json"
