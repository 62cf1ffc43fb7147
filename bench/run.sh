#!/usr/bin/env bash
# run.sh: side-by-side benchmark of sluice against other proxies on this
# machine, one core each.
#
# What it does: starts an origin (nginx, plain HTTP plus a TLS server
# with a certificate made at run time), then, one peer at a time, starts
# the proxy under test, checks it forwards, warms it up, measures
#   1k, 256k  GET of a 1 KiB / 256 KiB no-store object with wrk in
#             forward-proxy form (absolute-form request lines),
#   connect   4 MiB downloads over TLS through a CONNECT tunnel (curl -p),
# stops it, and goes on with the next.  "direct" is wrk/curl against the
# origin itself: the ceiling.  It prints a table per test with ratios to
# sluice and writes the raw figures to bench/out/results-<stamp>.json.
#
# What it assumes: Linux, bash >= 5, 2+ CPUs, run as root (Squid refuses
# otherwise; every peer drops to the "proxy" user), wrk, curl, openssl,
# taskset, python3, nginx; squid and tinyproxy are optional (a peer that
# is missing or cannot start is reported and skipped).  sluice is taken
# from $SLUICE (default: the tree's ./sluice); if it is absent the peers
# are still measured.  Only loopback addresses are used.
#
# Why it is built this way: the origin and the proxy under test are
# pinned to CPU 0 and the load generator to CPU 1, so each proxy gets
# exactly one core and the client never steals from it.  Ports are picked
# free at run time, readiness is polled with a deadline rather than
# slept for, every process started here runs in its own process group so
# the EXIT trap can stop it (and its children) by id and nothing is left
# behind.  Arithmetic and JSON live in report.py.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SLUICE=${SLUICE:-$BENCH_DIR/../sluice}

DURATION=10		# seconds per measurement
WARMUP=1		# seconds of load before each measurement
CONNS=64		# wrk connections
PARALLEL=4		# concurrent curls in the CONNECT test
PER_TUNNEL=16		# downloads per CONNECT tunnel (one curl process)
PEERS="sluice nginx squid tinyproxy direct"
TESTS="1k 256k connect connect-plain"
KEEP=0
CPU_SERVER=0
CPU_CLIENT=1

usage() {
	cat <<EOF
usage: $0 [options]
  --quick              3 s measurements (default ${DURATION} s)
  --duration S         seconds per measurement
  --connections N      wrk connections (default $CONNS)
  --parallel N         concurrent curls for CONNECT (default $PARALLEL)
  --per-tunnel N       4 MiB downloads per CONNECT tunnel (default $PER_TUNNEL)
  --peers "a b"        subset of: $PEERS
  --tests "a b"        subset of: $TESTS
  --keep               keep the temporary directory (configs, logs)
environment: SLUICE=/path/to/sluice (default $BENCH_DIR/../sluice);
  SLUICE_FILTER_CONF=FILE adds the peer "sluice-filter": sluice with
  FILE (a filter section) appended to its config (bench/filter.sh)
EOF
}

while [ $# -gt 0 ]; do
	case $1 in
	--quick) DURATION=3 ;;
	--duration) DURATION=$2; shift ;;
	--connections) CONNS=$2; shift ;;
	--parallel) PARALLEL=$2; shift ;;
	--per-tunnel) PER_TUNNEL=$2; shift ;;
	--peers) PEERS=$2; shift ;;
	--tests) TESTS=$2; shift ;;
	--keep) KEEP=1 ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

for tool in wrk curl openssl taskset python3 nginx setsid; do
	command -v "$tool" >/dev/null || die "$tool is required"
done
[ "$(id -u)" = 0 ] || die "run as root (the peers drop to user proxy)"
if [ "$(nproc)" -lt 2 ]; then
	log "only one CPU: client and server share it, figures are not comparable"
	CPU_CLIENT=0
fi

# Process bookkeeping (start_bg, stop_pid, cleanup on exit).
# shellcheck source=bench/procs.sh
. "$BENCH_DIR/procs.sh"

# ---------------------------------------------------------------------
# Scratch space, ports, content, certificate.

TMP=$(mktemp -d /tmp/sluice-bench.XXXXXX)
# The peers' workers run as nobody/proxy: they must reach their files.
chmod 755 "$TMP"
mkdir -p "$TMP/www" "$TMP/tls" "$TMP/origin" "$TMP/nginx" "$TMP/squid" \
	"$TMP/tinyproxy" "$TMP/sluice" "$TMP/run"
chown proxy:proxy "$TMP/squid" "$TMP/tinyproxy" "$TMP/sluice"

# All ports are bound at once so they are distinct, then released.
read -r ORIGIN_PORT TLS_PORT SLUICE_PORT NGINX_PORT SQUID_PORT TINY_PORT < <(
	python3 -c '
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')

head -c 1024 /dev/urandom >"$TMP/www/1k"
head -c 262144 /dev/urandom >"$TMP/www/256k"
head -c 4194304 /dev/urandom >"$TMP/www/4m"
chmod 644 "$TMP/www/"*

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
	-nodes -days 2 -subj /CN=localhost \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
	-keyout "$TMP/tls/key.pem" -out "$TMP/tls/cert.pem" >/dev/null 2>&1 ||
	die "openssl could not make a certificate"
chmod 644 "$TMP/tls/"*.pem

# render TEMPLATE OUT PROXY_PORT: fill a bench/conf/*.in template.
render() {
	sed -e "s|@TMP@|$TMP|g" -e "s|@ORIGIN_PORT@|$ORIGIN_PORT|g" \
		-e "s|@TLS_PORT@|$TLS_PORT|g" -e "s|@PROXY_PORT@|$3|g" \
		-e "s|@SHM_NAME@|$SHM_NAME|g" "$BENCH_DIR/conf/$1" >"$2"
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
		code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 2 "$@" || true)
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
record_http() { # test peer status rps p50 p99 max requests errors note
	printf 'http\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RECORDS"
}
record_connect() { # test peer status gbps bytes wall downloads failures note
	printf 'connect\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RECORDS"
}

# ---------------------------------------------------------------------
# The origin.

render origin-nginx.conf.in "$TMP/origin/nginx.conf" -
start_bg "$TMP/origin/stderr.log" taskset -c "$CPU_SERVER" \
	nginx -p "$TMP/origin" -e "$TMP/origin/error.log" -c "$TMP/origin/nginx.conf"
ORIGIN_PID=$LAST_PID
wait_ready origin "$ORIGIN_PID" 15 "http://127.0.0.1:$ORIGIN_PORT/1k" ||
	die "$READY_WHY: $(log_tail "$TMP/origin/error.log") $(log_tail "$TMP/origin/stderr.log")"
wait_ready origin-tls "$ORIGIN_PID" 15 "https://127.0.0.1:$TLS_PORT/4m" ||
	die "$READY_WHY: $(log_tail "$TMP/origin/error.log")"
log "origin on 127.0.0.1:$ORIGIN_PORT (tls $TLS_PORT), pid $ORIGIN_PID"

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
meta stamp "$STAMP"
meta cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
meta nproc "$(nproc)"
meta kernel "$(uname -r)"
meta duration_s "$DURATION"
meta warmup_s "$WARMUP"
meta connections "$CONNS"
meta connect_parallel "$PARALLEL"
meta connect_per_tunnel "$PER_TUNNEL"
meta pinning "origin+proxy on cpu $CPU_SERVER, client on cpu $CPU_CLIENT"
meta wrk "$(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)"
meta nginx "$(nginx -v 2>&1 | sed 's/^.*\///')"
command -v squid >/dev/null && meta squid "$(squid -v | head -n1 | sed 's/^.*Version //')"
command -v tinyproxy >/dev/null && meta tinyproxy "$(tinyproxy -v 2>&1 | cut -d' ' -f2)"
meta sluice "$(readlink -f "$SLUICE" 2>/dev/null || echo "$SLUICE")"
# Other load on the machine skews every figure: keep it with the results.
meta loadavg_at_start "$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------------
# Peers.  start_peer sets PEER_PID, PEER_PORT, PEER_PIDFILE, or returns 1
# with START_WHY.

start_peer() {
	local peer=$1 conf
	PEER_PID='' PEER_PIDFILE='' START_WHY=''
	case $peer in
	direct)
		PEER_PORT=$ORIGIN_PORT
		return 0 ;;
	sluice|sluice-filter)
		[ -x "$SLUICE" ] || { START_WHY="no binary at $SLUICE"; return 1; }
		PEER_PORT=$SLUICE_PORT
		conf=$TMP/sluice/sluice.conf
		render sluice.conf.in "$conf" "$PEER_PORT"
		# sluice-filter: the same sluice with a filter section (bench/filter.sh)
		if [ "$peer" = sluice-filter ]; then
			[ -r "${SLUICE_FILTER_CONF:-}" ] ||
				{ START_WHY="SLUICE_FILTER_CONF not set"; return 1; }
			cat "$SLUICE_FILTER_CONF" >>"$conf"
		fi
		PEER_PIDFILE=$TMP/sluice/sluice.pid
		start_bg "$TMP/sluice/stderr.log" taskset -c "$CPU_SERVER" \
			"$SLUICE" -d -f "$conf" ;;
	nginx)
		PEER_PORT=$NGINX_PORT
		conf=$TMP/nginx/nginx.conf
		render nginx-proxy.conf.in "$conf" "$PEER_PORT"
		start_bg "$TMP/nginx/stderr.log" taskset -c "$CPU_SERVER" \
			nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$conf" ;;
	squid)
		command -v squid >/dev/null || { START_WHY="squid not installed"; return 1; }
		PEER_PORT=$SQUID_PORT
		conf=$TMP/squid/squid.conf
		render squid.conf.in "$conf" "$PEER_PORT"
		if ! squid -k parse -f "$conf" >"$TMP/squid/parse.log" 2>&1; then
			START_WHY="config rejected: $(grep -iE 'error|fatal' "$TMP/squid/parse.log" | head -n2 | tr '\n' ' ')"
			return 1
		fi
		start_bg "$TMP/squid/stderr.log" taskset -c "$CPU_SERVER" \
			squid -N -f "$conf" ;;
	tinyproxy)
		command -v tinyproxy >/dev/null || { START_WHY="tinyproxy not installed"; return 1; }
		PEER_PORT=$TINY_PORT
		conf=$TMP/tinyproxy/tinyproxy.conf
		render tinyproxy.conf.in "$conf" "$PEER_PORT"
		start_bg "$TMP/tinyproxy/stderr.log" taskset -c "$CPU_SERVER" \
			tinyproxy -d -c "$conf" ;;
	*)
		START_WHY="unknown peer"
		return 1 ;;
	esac
	PEER_PID=$LAST_PID
	if ! wait_ready "$peer" "$PEER_PID" 20 -x "http://127.0.0.1:$PEER_PORT" \
		"http://127.0.0.1:$ORIGIN_PORT/1k"; then
		START_WHY="$READY_WHY; $(log_tail "$TMP/$peer/stderr.log")"
		case $peer in
		squid) START_WHY="$START_WHY $(log_tail "$TMP/squid/cache.log")" ;;
		sluice|sluice-filter) START_WHY="$START_WHY $(log_tail "$TMP/sluice/error.log")" ;;
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

# ---------------------------------------------------------------------
# HTTP forwarding test: wrk, one thread, pinned to the client CPU.

run_http() {
	local test=$1 peer=$2 port=$3 target size got out line
	case $test in 1k) size=1024 ;; 256k) size=262144 ;; esac
	if [ "$peer" = direct ]; then
		target=/$test
	else
		target=http://127.0.0.1:$ORIGIN_PORT/$test
	fi
	# A wrong answer served fast is not a result: check one response.
	local via=()
	[ "$peer" = direct ] || via=(-x "http://127.0.0.1:$port")
	got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' --max-time 5 \
		"${via[@]}" "http://127.0.0.1:$ORIGIN_PORT/$test" || true)
	if [ "$got" != "200 $size" ]; then
		record_http "$test" "$peer" failed - - - - - - "check answered '$got'"
		log "$peer $test: check answered '$got'"
		return 0
	fi
	taskset -c "$CPU_CLIENT" wrk -t1 -c"$CONNS" -d"${WARMUP}s" \
		-s "$BENCH_DIR/wrk-proxy.lua" "http://127.0.0.1:$port/" -- "$target" \
		>/dev/null 2>&1 || true
	out=$TMP/run/wrk-$peer-$test.txt
	taskset -c "$CPU_CLIENT" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency \
		-s "$BENCH_DIR/wrk-proxy.lua" "http://127.0.0.1:$port/" -- "$target" \
		>"$out" 2>&1 || true
	line=$(grep '^BENCH_RESULT ' "$out" | tail -n1 || true)
	if [ -z "$line" ]; then
		record_http "$test" "$peer" failed - - - - - - "wrk: $(log_tail "$out")"
		return 0
	fi
	# Fields are key=value; pick them by name.
	local rps p50 p99 max reqs errs
	field() { printf '%s\n' "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
	rps=$(field rps) p50=$(field p50_us) p99=$(field p99_us) max=$(field max_us)
	reqs=$(field requests)
	errs=$(($(field err_connect) + $(field err_read) + $(field err_write) +
		$(field err_status) + $(field err_timeout)))
	# Name the kinds of error: a peer that closes the connection after
	# every response shows up as read errors, one per request.
	local kind note=
	for kind in connect read write status timeout; do
		[ "$(field "err_$kind")" = 0 ] || note+="${note:+ }$kind=$(field "err_$kind")"
	done
	[ -z "$note" ] || note="wrk errors: $note"
	record_http "$test" "$peer" ok "$rps" "$p50" "$p99" "$max" "$reqs" "$errs" "$note"
	log "$peer $test: $rps req/s, p99 $p99 us, $errs errors"
}

# ---------------------------------------------------------------------
# CONNECT test: PARALLEL loops of curl (pinned to the client CPU), each
# downloading the 4 MiB object over TLS through a fresh tunnel until the
# deadline; throughput = bytes received / wall time of the whole run.

# connect_loop OUTFILE DEADLINE_US CURL-ARGS...: one client loop.
# CPU ticks (utime + stime) of a process and all its descendants: how
# much of the shared core the proxy and the origin each used.
tree_ticks() {
	local pid=$1 total=0 f c
	[ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || { echo 0; return; }
	f=$(cut -d' ' -f14,15 "/proc/$pid/stat")
	total=$((${f% *} + ${f#* }))
	for c in $(pgrep -P "$pid" 2>/dev/null); do
		total=$((total + $(tree_ticks "$c")))
	done
	echo "$total"
}

connect_loop() {
	local outf=$1 deadline=$2 n=0 bytes=0 fail=0 got b
	shift 2
	while [ "${EPOCHREALTIME/./}" -lt "$deadline" ]; do
		if got=$(curl -sk --fail --max-time 60 \
			-w '%{size_download}\n' "$@"); then
			for b in $got; do
				if [ "$b" = 4194304 ]; then
					n=$((n + 1)) bytes=$((bytes + b))
				else
					fail=$((fail + 1))
				fi
			done
		else
			fail=$((fail + 1))
		fi
	done
	echo "$n $bytes $fail" >"$outf"
}

run_connect() {
	local test=$1 peer=$2 port=$3 url args=() got i start deadline wall
	local n=0 bytes=0 fail=0 rn rb rf loops=()
	if [ "$peer" = nginx ]; then
		record_connect "$test" "$peer" n/a - - - - - "no CONNECT support"
		return 0
	fi
	[ "$peer" = direct ] || args=(-p -x "http://127.0.0.1:$port")
	if [ "$test" = connect ]; then
		url=https://127.0.0.1:$TLS_PORT/4m
	else
		# Plain HTTP inside the tunnel: the proxy relays the same opaque
		# bytes, but neither end spends CPU on TLS, so the figure shows
		# the relay itself rather than the TLS endpoints sharing its core.
		url=http://127.0.0.1:$ORIGIN_PORT/4m
	fi
	got=$(curl -sk -o /dev/null -w '%{http_code} %{size_download}' --max-time 10 \
		"${args[@]}" "$url" || true)
	if [ "$got" != "200 4194304" ]; then
		record_connect "$test" "$peer" failed - - - - - "check answered '$got'"
		log "$peer $test: check answered '$got'"
		return 0
	fi
	# Several downloads share one tunnel when PER_TUNNEL > 1 (curl reuses
	# the proxied connection for the same origin).
	if [ "$PER_TUNNEL" -gt 1 ]; then
		for ((i = 1; i <= PER_TUNNEL; i++)); do
			args+=(-o /dev/null "$url?$i")
		done
	else
		args+=(-o /dev/null "$url")
	fi
	# Warm-up: a second's worth of the same load, not counted.
	deadline=$((${EPOCHREALTIME/./} + WARMUP * 1000000))
	for ((i = 0; i < PARALLEL; i++)); do
		(taskset -pc "$CPU_CLIENT" "$BASHPID" >/dev/null
		 connect_loop "$TMP/run/warm-$i" "$deadline" "${args[@]}") &
		loops+=($!)
		PIDS+=($!)	# so an interrupted run stops the loops too
	done
	wait "${loops[@]}" || true
	for i in "${loops[@]}"; do forget_pid "$i"; done
	loops=()
	local pt0 ot0 pt1 ot1 hz
	hz=$(getconf CLK_TCK)
	pt0=$(tree_ticks "${PEER_PID:-}") ot0=$(tree_ticks "$ORIGIN_PID")
	start=${EPOCHREALTIME/./}
	deadline=$((start + DURATION * 1000000))
	for ((i = 0; i < PARALLEL; i++)); do
		(taskset -pc "$CPU_CLIENT" "$BASHPID" >/dev/null
		 connect_loop "$TMP/run/connect-$peer-$i" "$deadline" "${args[@]}") &
		loops+=($!)
		PIDS+=($!)	# so an interrupted run stops the loops too
	done
	wait "${loops[@]}" || true
	for i in "${loops[@]}"; do forget_pid "$i"; done
	wall=$((${EPOCHREALTIME/./} - start))
	for ((i = 0; i < PARALLEL; i++)); do
		read -r rn rb rf <"$TMP/run/connect-$peer-$i" || { rn=0 rb=0 rf=1; }
		n=$((n + rn)) bytes=$((bytes + rb)) fail=$((fail + rf))
	done
	local gbps wall_s
	gbps=$(awk -v b="$bytes" -v w="$wall" 'BEGIN { printf "%.4f", b / (w / 1e6) / 1e9 }')
	wall_s=$(awk -v w="$wall" 'BEGIN { printf "%.3f", w / 1e6 }')
	if [ "$n" = 0 ]; then
		record_connect "$test" "$peer" failed - - - - - "no download completed"
		return 0
	fi
	pt1=$(tree_ticks "${PEER_PID:-}") ot1=$(tree_ticks "$ORIGIN_PID")
	# CPU seconds per GB moved, for the proxy and for the origin that
	# shares its core: says which of the two sets the figure.
	local cpu
	cpu=$(awk -v p=$((pt1 - pt0)) -v o=$((ot1 - ot0)) -v hz="$hz" -v b="$bytes" \
		'BEGIN { printf "cpu s/GB: proxy %.3f, origin %.3f", p / hz / (b / 1e9), o / hz / (b / 1e9) }')
	record_connect "$test" "$peer" ok "$gbps" "$bytes" "$wall_s" "$n" "$fail" "$cpu"
	log "$peer $test: $gbps GB/s ($n downloads, $fail failed, ${wall_s}s; $cpu)"
}

# ---------------------------------------------------------------------
# Main loop: one peer at a time, all its tests, then stop it.

for peer in $PEERS; do
	if ! start_peer "$peer"; then
		log "$peer: skipped: $START_WHY"
		for t in $TESTS; do
			if [ "${t#connect}" != "$t" ]; then
				record_connect "$t" "$peer" skipped - - - - - "$START_WHY"
			else
				record_http "$t" "$peer" skipped - - - - - - "$START_WHY"
			fi
		done
		continue
	fi
	log "$peer on 127.0.0.1:$PEER_PORT${PEER_PID:+, pid $PEER_PID}"
	for t in $TESTS; do
		case $t in
		1k|256k) run_http "$t" "$peer" "$PEER_PORT" ;;
		connect|connect-plain) run_connect "$t" "$peer" "$PEER_PORT" ;;
		*) die "unknown test $t" ;;
		esac
	done
	stop_peer
done

mkdir -p "$BENCH_DIR/out"
python3 "$BENCH_DIR/report.py" "$RECORDS" "$BENCH_DIR/out/results-$STAMP.json"
