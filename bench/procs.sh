# procs.sh: process bookkeeping shared by bench/run.sh and bench/cache.sh
# (sourced, not run).  Expects log(), KEEP and a later TMP from the
# caller; defines PIDS, TMP, SHM_NAME, alive, start_bg, stop_pid,
# cleanup, and installs the EXIT/INT/TERM/HUP traps.

# ---------------------------------------------------------------------
# Process bookkeeping.  Every daemon is started through start_bg, which
# makes it a session (and process group) leader so stop_pid can signal
# the group: an nginx worker whose master died is still caught.

PIDS=()
TMP=
SHM_NAME=/sluice-bench-$$

forget_pid() {
	local keep=() p
	for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

# alive PID: true while PID runs (a zombie awaiting wait does not count).
alive() {
	local state
	[ -r "/proc/$1/stat" ] || return 1
	state=$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

# start_bg LOG CMD...: start CMD in its own session; sets LAST_PID.
start_bg() {
	local logf=$1
	shift
	setsid "$@" >"$logf" 2>&1 </dev/null &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
}

# stop_pid PID [PIDFILE]: TERM the group, KILL what is left after 5 s.
# PIDFILE covers a daemon that forked itself out of our process group.
stop_pid() {
	local pid=$1 pidfile=${2:-} i other=
	if [ -n "$pidfile" ] && [ -r "$pidfile" ]; then
		other=$(tr -dc 0-9 <"$pidfile")
		[ "$other" = "$pid" ] && other=
	fi
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
	[ -n "$other" ] && kill -TERM "$other" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		alive "$pid" || { [ -n "$other" ] && alive "$other"; } || break
		sleep 0.05
	done
	kill -KILL -- "-$pid" 2>/dev/null || true
	[ -n "$other" ] && alive "$other" && kill -KILL "$other" 2>/dev/null
	wait "$pid" 2>/dev/null || true
	# Leftover group members (children of a leader that died first).
	for ((i = 0; i < 40; i++)); do
		kill -0 -- "-$pid" 2>/dev/null || break
		kill -KILL -- "-$pid" 2>/dev/null || true
		sleep 0.05
	done
	forget_pid "$pid"
}

cleanup() {
	local rc=$? p
	set +e
	trap - EXIT INT TERM HUP
	for p in "${PIDS[@]}"; do stop_pid "$p"; done
	rm -f "/dev/shm$SHM_NAME"
	if [ -n "$TMP" ] && [ -d "$TMP" ]; then
		if [ "$KEEP" = 1 ]; then
			log "kept $TMP"
		else
			rm -rf "$TMP"
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
