# bench/lib.sh - shared by the benchmark scripts (sourced, not run: bench/run.sh runs only
# executable files).

# bench_stop PID SIGNAL: signals PID, waits up to 5 s for it to exit, then kills it.
bench_stop() {
	local pid=$1 sig=$2 i
	[ -n "$pid" ] || return 0
	kill -"$sig" "$pid" 2>/dev/null
	for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

# bench_latency_key POLICY KEY: observe.syscall_latency.KEY (window, every) as written there.
bench_latency_key() {
	awk -v k="$2:" '/^  syscall_latency:/ { s = 1; next } s && $1 == k { print $2; exit }' "$1"
}

# bench_latency_policy SRC WINDOW EVERY DST [SED]: SRC with that latency schedule (and the
# sed script SED applied too) as DST, mode 0644 as the daemon wants.
bench_latency_policy() {
	sed -E "/^  syscall_latency:/,/^[^ ]/{s/^(    window:).*/\1 $2/; s/^(    every:).*/\1 $3/}
		${5:-}" "$1" >"$4" && chmod 0644 "$4"
}
