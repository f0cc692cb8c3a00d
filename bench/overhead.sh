#!/usr/bin/env bash
# bench/overhead.sh - what homeostatd costs the host it watches, against a floor and syscount.
#
# 1. Syscall cost. The same syscall-heavy loop (build/bench/sysloop: getppid() through
#    syscall(2), pinned to one CPU, ~1 s a run) is timed with:
#      baseline          nothing attached
#      floor             empty raw_tp programs on sys_enter and sys_exit (build/bench/floor):
#                        what any hook on every syscall costs before it does any work
#      floor (exit)      the empty sys_exit program alone (floor --exit-only): the floor of
#                        homeostat's design, which counts on sys_exit and hooks sys_enter
#                        only in its latency windows
#      homeostatd        the daemon with its default collectors, on policies/default.yaml,
#                        between two latency windows (the policy's windows turned off): the
#                        always-on cost
#      homeostatd (latency window)  the same while a latency window is open (sys_enter
#                        attached: 1 in 16 syscalls timed)
#      syscount -L -P    libbpf-tools syscount, counting and timing every syscall per process
#    in ROUNDS rounds; each round runs every configuration, each just after a baseline run
#    (their order rotates from round to round) and before another, so that drift affects all
#    alike. Added cost = ns/call of the configuration - the mean of the two baseline runs around
#    it. Medians over the rounds, with min..max; the baseline figure is the median of all the
#    baseline runs.
#    homeostatd's cost on the default schedule (observe.syscall_latency in the policy: a
#    window of W every E) is, per round, the always-on cost + W/E x (the window's cost - the
#    always-on cost): that is the figure compared with syscount.
#    Two clocks per run: CLOCK_MONOTONIC (wall) and the loop thread's CPU time, which stays
#    right when another process shares the CPU and the wall clock does not.
#    Then, once per configuration, the BPF programs' own run time per call (bpf_stats, turned
#    on only for that run): where the cost goes, with less noise than the clocks above, since
#    it leaves out the tracepoint dispatch and the syscall's slow path, the same for all.
# Environment: BENCH_ROUNDS (default 15, at least 5), BENCH_IDLE_SECONDS (default 60),
# BENCH_RUN_SECONDS (length of one timed run, default 1), HS_BUILD (default build),
# SYSCOUNT (default: syscount from PATH or /usr/sbin/syscount).
#
# Needs root. syscount attaches through tracefs: when tracefs is not mounted it runs in a
# private mount namespace that mounts it, so the host's mounts are left alone. Every process
# it starts is stopped and every pin directory and temporary file removed on exit, Ctrl-C
# included. Figures only: nothing here passes or fails on a time.

set -u
cd "$(dirname "$0")/.." || exit 1
. bench/lib.sh

BUILD=${HS_BUILD:-build}
ROUNDS=${BENCH_ROUNDS:-15}
IDLE_SECONDS=${BENCH_IDLE_SECONDS:-60}
RUN_SECONDS=${BENCH_RUN_SECONDS:-1}
HSD=$BUILD/homeostatd
HSC=$BUILD/homeostat
SYSLOOP=$BUILD/bench/sysloop
FLOOR=$BUILD/bench/floor
SYSCOUNT=${SYSCOUNT:-$(command -v syscount || echo /usr/sbin/syscount)}

die() { echo "overhead: $*" >&2; exit 1; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

if ! is_uint "$ROUNDS" || [ "$ROUNDS" -lt 5 ]; then
	die "BENCH_ROUNDS must be a whole number, at least 5"
fi
if ! is_uint "$IDLE_SECONDS" || [ "$IDLE_SECONDS" -lt 1 ]; then
	die "BENCH_IDLE_SECONDS must be a whole number, at least 1"
fi
[[ $RUN_SECONDS =~ ^[0-9]*\.?[0-9]+$ ]] || die "BENCH_RUN_SECONDS must be a number of seconds"
if [ "$(id -u)" -ne 0 ]; then
	echo "overhead: skipped: needs root (BPF programs, a daemon that runs as root)"
	exit 0
fi
for f in "$HSD" "$HSC" "$SYSLOOP" "$FLOOR"; do
	[ -x "$f" ] || die "missing '$f': run make bench"
done

TMP=$(mktemp -d /tmp/hs-bench.XXXXXX) || die "cannot create a temporary directory"
chmod 0755 "$TMP"
PIN=/sys/fs/bpf/homeostat-bench-$$
SOCK=$TMP/control.sock
DB=$TMP/memory.db
LOG=$TMP/daemon.log
DAEMON_PID='' FLOOR_PID='' SYSCOUNT_PID='' LOAD_PID=''
CPU=$(($(nproc) - 1))
STATS_WAS=$(sysctl -n kernel.bpf_stats_enabled 2>/dev/null || echo '')

# The daemon's policies: the default one with its latency windows off (the always-on cost) and
# with one window that stays open (the cost while one is open). W/E: the default schedule.
POLICY=policies/default.yaml
LAT_WINDOW=$(bench_latency_key "$POLICY" window)
LAT_EVERY=$(bench_latency_key "$POLICY" every)
seconds() { # a policy duration (500ms, 1s, 2m) in seconds
	awk -v d="$1" 'BEGIN { n = d + 0; u = d; sub(/^[0-9.]+/, "", u)
		print (u == "ms" ? n / 1000 : u == "s" ? n : u == "m" ? n * 60 : u == "h" ? n * 3600 : -1) }'
}
DUTY=$(awk -v w="$(seconds "${LAT_WINDOW:-1s}")" -v e="$(seconds "${LAT_EVERY:-20s}")" \
	'BEGIN { print (e > 0 && w > 0 ? w / e : 0) }')

stop() { bench_stop "$@"; }

cleanup() {
	trap - EXIT INT TERM
	stop "$LOAD_PID" TERM
	stop "$DAEMON_PID" TERM
	stop "$FLOOR_PID" TERM
	stop "$SYSCOUNT_PID" INT
	[ -n "$STATS_WAS" ] && sysctl -q kernel.bpf_stats_enabled="$STATS_WAS"
	rm -rf "$PIN" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "overhead: interrupted"; exit 130' INT
trap 'exit 143' TERM

# --- starting and stopping each configuration; each returns non-zero if it did not start ---

start_baseline() { :; }
stop_baseline() { :; }

start_floor() {
	"$FLOOR" >"$TMP/floor.out" 2>&1 &
	FLOOR_PID=$!
	wait_for "$FLOOR_PID" "$TMP/floor.out" '^floor: attached' 10 || { FLOOR_PID=; return 1; }
}
stop_floor() { stop "$FLOOR_PID" TERM; FLOOR_PID=; }

start_floorexit() {
	"$FLOOR" --exit-only >"$TMP/floor.out" 2>&1 &
	FLOOR_PID=$!
	wait_for "$FLOOR_PID" "$TMP/floor.out" '^floor: attached' 10 || { FLOOR_PID=; return 1; }
}
stop_floorexit() { stop_floor; }

# bench_policy NAME WINDOW EVERY: the default policy with that latency schedule, as $TMP/NAME.
bench_policy() { bench_latency_policy "$POLICY" "$2" "$3" "$TMP/$1.yaml"; }

# start_daemon POLICY: starts homeostatd, returns once it answered and ticked once.
start_daemon() {
	local i
	"$HSD" --foreground --policy "$1" --runbooks remediations --db "$DB" \
		--socket "$SOCK" --pin-dir "$PIN" >"$LOG" 2>&1 &
	DAEMON_PID=$!
	for i in $(seq 100); do
		if "$HSC" --socket "$SOCK" status >/dev/null 2>&1; then
			# past the first tick: it opens a latency window if the policy has one, and
			# the start-up's cost is not the steady state
			sleep 1.5
			return 0
		fi
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "homeostatd did not answer on '$SOCK' within 10 s; its log:" >&2
	sed 's/^/  /' "$LOG" >&2
	stop "$DAEMON_PID" TERM
	DAEMON_PID=
	return 1
}
stop_daemon() { stop "$DAEMON_PID" TERM; DAEMON_PID=; rm -rf "$PIN"; }
start_homeostatd() { start_daemon "$TMP/nowindow.yaml"; }
stop_homeostatd() { stop_daemon; }
start_hswindow() { start_daemon "$TMP/window.yaml"; }
stop_hswindow() { stop_daemon; }

# syscount prints "Tracing syscalls, ..." once attached (line-buffered by stdbuf so that it can
# be seen at once), its table on SIGINT; both discarded.
start_syscount() {
	# shellcheck disable=SC2016 # expanded by the inner shell
	unshare -m --propagation private sh -c \
		'mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing &&
		exec stdbuf -oL "$0" -L -P' "$SYSCOUNT" >"$TMP/syscount.out" 2>&1 &
	SYSCOUNT_PID=$!
	wait_for "$SYSCOUNT_PID" "$TMP/syscount.out" '^Tracing syscalls' 30 || { SYSCOUNT_PID=; return 1; }
}
stop_syscount() { stop "$SYSCOUNT_PID" INT; SYSCOUNT_PID=; }

# wait_for PID FILE REGEX SECONDS: until FILE has a line matching REGEX; fails if PID exits.
wait_for() {
	local pid=$1 file=$2 re=$3 i
	for i in $(seq $(($4 * 10))); do
		grep -qE -- "$re" "$file" 2>/dev/null && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "'$re' not seen within $4 s; output:" >&2
	sed 's/^/  /' "$file" >&2
	stop "$pid" TERM
	return 1
}

# run_loop: one timed run; prints "WALL_NS CPU_NS" per call.
run_loop() {
	"$SYSLOOP" -n "$CALLS" -c "$CPU" | awk '{ print $2, $4 }'
}

# --- 1. syscall cost ---

bench_policy nowindow 1s 0s || die "cannot write the bench policies"
bench_policy window 1m 1h || die "cannot write the bench policies"
CONFIGS=(floor floorexit homeostatd hswindow syscount)
declare -A LABEL=([baseline]="baseline" [floor]="floor" [floorexit]="floor (exit)"
	[homeostatd]="homeostatd" [hswindow]="homeostatd (latency window)"
	[syscount]="syscount -L -P")
declare -A AVAILABLE=([baseline]=1)

# Check once that each configuration starts, and tell which collectors homeostatd runs.
for c in "${CONFIGS[@]}"; do
	if "start_$c"; then
		AVAILABLE[$c]=1
		if [ "$c" = homeostatd ]; then
			collectors=$(sed -nE "s/.*collector '([^']+)' running.*/\1/p" "$LOG" | paste -sd ' ')
			HSD_COLLECTORS=${collectors:-none}
		fi
		"stop_$c"
	else
		echo "overhead: '${LABEL[$c]}' cannot run here, left out"
	fi
done
[ -n "${AVAILABLE[homeostatd]:-}" ] || die "homeostatd does not start; nothing to measure"

"$SYSLOOP" -c "$CPU" -t 0.2 >/dev/null # warm-up
CALLS=$("$SYSLOOP" -c "$CPU" -t "$RUN_SECONDS") || die "sysloop cannot calibrate"

echo "homeostatd collectors: $HSD_COLLECTORS"
echo "homeostatd latency windows ($POLICY): ${LAT_WINDOW:-?} every ${LAT_EVERY:-?}, a duty of $DUTY"
echo "sysloop: $CALLS getppid() calls a run (~$RUN_SECONDS s), pinned to CPU $CPU of $(nproc);" \
	"$ROUNDS rounds"
echo "per round, ns/call wall clock (thread CPU time); a configuration's baseline is the mean of the baseline runs before and after it:"

RES=$TMP/results # lines: round position config wall_ns cpu_ns
: >"$RES"
for ((r = 1; r <= ROUNDS; r++)); do
	order=()
	for ((i = 0; i < ${#CONFIGS[@]}; i++)); do
		c=${CONFIGS[$(((i + r - 1) % ${#CONFIGS[@]}))]}
		[ -n "${AVAILABLE[$c]:-}" ] && order+=(baseline "$c")
	done
	order+=(baseline) # every configuration run sits between two baseline runs
	pos=0
	line="  round $r:"
	for c in "${order[@]}"; do
		if ! "start_$c"; then
			line+="  ${LABEL[$c]} failed to start"
			continue
		fi
		v=$(run_loop)
		"stop_$c"
		[ -n "$v" ] || die "sysloop failed"
		pos=$((pos + 1))
		echo "$r $pos $c $v" >>"$RES"
		read -r wall cpu_ns <<<"$v"
		line+=$(printf '  %s %.1f (%.1f)' "${LABEL[$c]}" "$wall" "$cpu_ns")
	done
	echo "$line"
done

# report COLUMN NAME: the summary of one clock (COLUMN 4 = wall, 5 = CPU time).
report() {
	awk -v col="$1" -v name="$2" -v rounds="$ROUNDS" -v duty="$DUTY" \
		-v lb="${LABEL[floor]}" -v le="${LABEL[floorexit]}" -v lh="${LABEL[homeostatd]}" \
		-v lw="${LABEL[hswindow]}" -v ls="${LABEL[syscount]}" \
		-v lsched="homeostatd (${LAT_WINDOW:-?} windows every ${LAT_EVERY:-?})" '
	function sort(a, n,   i, j, t) {
		for (i = 2; i <= n; i++)
			for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
	}
	function median(a, n) {
		sort(a, n)
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	# stats(config): sets MED, MIN, MAX of the values and AMED, AMIN, AMAX of the added costs
	function stats(c,   r, n, m, v, d, i) {
		n = m = 0
		for (r = 1; r <= rounds; r++) {
			if (c == "baseline") {
				for (i = 1; i <= nbase[r]; i++) v[++n] = base[r, i]
				continue
			}
			if (!((r, c) in val)) continue
			v[++n] = val[r, c]
			d[++m] = add[r, c]
		}
		N = n; M = m
		if (n) { MED = median(v, n); MIN = v[1]; MAX = v[n] }
		if (m) { AMED = median(d, m); AMIN = d[1]; AMAX = d[m] }
	}
	# ratio(c): added cost of c over that of syscount; median of per-round ratios, ratio of medians
	function ratio(c, label,   r, n, q, a, b) {
		n = 0
		for (r = 1; r <= rounds; r++) {
			if (!((r, c) in add && (r, "syscount") in add)) continue
			if (add[r, "syscount"] > 0) q[++n] = add[r, c] / add[r, "syscount"]
		}
		stats(c); a = AMED; if (!M) return
		stats("syscount"); b = AMED; if (!M) return
		printf "%s / syscount added-cost ratio (%s): ", label, name
		if (n) printf "%.3f (median of %d per-round ratios, min %.3f, max %.3f), ", \
			median(q, n), n, q[1], q[n]
		else printf "n/a (syscount added nothing in any round), "
		if (b > 0) printf "%.3f (ratio of medians)\n", a / b
		else printf "n/a (ratio of medians)\n"
	}
	{ raw[$1, $2] = $col; cfg[$1, $2] = $3; seen[$3] = 1 }
	$3 == "baseline" { base[$1, ++nbase[$1]] = $col }
	END {
		for (r = 1; r <= rounds; r++) {
			for (p = 1; (r, p) in cfg; p++) {
				c = cfg[r, p]
				if (c == "baseline") continue
				if (!((r, p - 1) in raw && (r, p + 1) in raw)) continue
				val[r, c] = raw[r, p]
				add[r, c] = raw[r, p] - (raw[r, p - 1] + raw[r, p + 1]) / 2
			}
			# the default schedule: always-on, plus the extra of a window for its share of time
			if ((r, "homeostatd") in val && (r, "hswindow") in val) {
				val[r, "sched"] = val[r, "homeostatd"] + \
					duty * (val[r, "hswindow"] - val[r, "homeostatd"])
				add[r, "sched"] = add[r, "homeostatd"] + \
					duty * (add[r, "hswindow"] - add[r, "homeostatd"])
				seen["sched"] = 1
			}
		}
		split("baseline floor floorexit homeostatd hswindow sched syscount", order, " ")
		lab["baseline"] = "baseline"; lab["floor"] = lb; lab["floorexit"] = le
		lab["homeostatd"] = lh; lab["hswindow"] = lw; lab["sched"] = lsched; lab["syscount"] = ls
		printf "syscall cost (getppid, ns/call, median of %d rounds, %s):", rounds, name
		for (i = 1; i <= 7; i++) {
			c = order[i]; if (!(c in seen)) continue
			stats(c)
			printf "  %s %.1f", lab[c], MED
			if (c != "baseline" && M) printf " (%+.1f)", AMED
		}
		printf "\n  spread (min..max):"
		for (i = 1; i <= 7; i++) {
			c = order[i]; if (!(c in seen)) continue
			stats(c)
			printf "  %s %.1f..%.1f", lab[c], MIN, MAX
			if (c != "baseline" && M) printf " (added %+.1f..%+.1f)", AMIN, AMAX
		}
		printf "\n"
		if ("syscount" in seen) {
			if ("sched" in seen) ratio("sched", lsched)
			if ("homeostatd" in seen) ratio("homeostatd", lh " (always-on)")
			if ("hswindow" in seen) ratio("hswindow", lw)
			if ("floor" in seen) ratio("floor", "floor")
			if ("floorexit" in seen) ratio("floorexit", le)
		}
	}' "$RES"
}

echo
report 4 "wall clock"
report 5 "thread CPU time"

# --- where it goes: the BPF programs' own run time per call (bpf_stats) ---

# prog_runs FILE: "id run_time_ns run_cnt name" of every loaded program, from bpftool.
prog_runs() {
	bpftool -j prog show 2>/dev/null | python3 -c '
import json, sys
for p in json.load(sys.stdin):
    print(p["id"], p.get("run_time_ns", 0), p.get("run_cnt", 0), p.get("name", "?"))' >"$1"
}

if [ -n "$STATS_WAS" ] && command -v bpftool >/dev/null; then
	echo
	echo "BPF programs' own run time per getppid() (bpf_stats on for one run; median of 3 starts" \
		"of each configuration, which place its maps and programs anew; the clock reads of" \
		"bpf_stats are counted in, ~20-30 ns a program run here):"
	for c in "${CONFIGS[@]}"; do
		[ -n "${AVAILABLE[$c]:-}" ] || continue
		: >"$TMP/runs"
		for k in 1 2 3; do
			"start_$c" || continue
			prog_runs "$TMP/before"
			sysctl -q kernel.bpf_stats_enabled=1
			"$SYSLOOP" -n "$CALLS" -c "$CPU" -w 0 >/dev/null
			sysctl -q kernel.bpf_stats_enabled="$STATS_WAS"
			prog_runs "$TMP/after"
			"stop_$c"
			awk -v calls="$CALLS" '
			NR == FNR { t[$1] = $2; n[$1] = $3; next }
			($1 in t) && $3 - n[$1] > 0 {
				ns = ($2 - t[$1]) / calls
				if (ns >= 0.5) { parts = parts sprintf(" %s %.1f", $4, ns); total += ns }
			}
			END { printf "%.1f%s\n", total, parts ? ":" parts : ": (none)" }' \
				"$TMP/before" "$TMP/after" >>"$TMP/runs"
		done
		sort -n "$TMP/runs" | awk -v label="${LABEL[$c]}" '
			{ line[NR] = $0; split($0, f, ":"); tot[NR] = f[1] }
			END { if (!NR) exit
				m = int((NR + 1) / 2); sub(/^[^:]*:/, "", line[m])
				printf "  %-28s %6.1f ns (%s):%s\n", label, tot[m],
					(NR > 1 ? sprintf("%.1f..%.1f", tot[1], tot[NR]) : "one run"), line[m] }'
	done
fi

# --- 2. homeostatd's own CPU and memory ---

CLK_TCK=$(getconf CLK_TCK)

# ticks PID: utime + stime of the whole process, in clock ticks (fields 14 and 15 of stat;
# the command name may hold spaces, so count from the closing parenthesis).
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
# runtime_ns PID: time on CPU of all its threads, from the scheduler (ns).
runtime_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
now() { echo "$EPOCHREALTIME"; }

# measure LABEL: samples the daemon for IDLE_SECONDS; prints CPU% and max RSS.
measure() {
	local label=$1 t0 t1 k0 k1 s0 s1 rss max=0 i
	t0=$(now) k0=$(ticks "$DAEMON_PID") s0=$(runtime_ns "$DAEMON_PID")
	for ((i = 1; i <= IDLE_SECONDS; i++)); do
		# to the next whole second from t0, so that the window is IDLE_SECONDS long
		sleep "$(awk -v t0="$t0" -v now="$(now)" -v i="$i" \
			'BEGIN { d = t0 + i - now; print (d > 0 ? d : 0) }')"
		rss=$(status_kb "$DAEMON_PID" VmRSS) || return 1
		[ "${rss:-0}" -gt "$max" ] && max=$rss
	done
	t1=$(now) k1=$(ticks "$DAEMON_PID") s1=$(runtime_ns "$DAEMON_PID")
	awk -v l="$label" -v t0="$t0" -v t1="$t1" -v k=$((k1 - k0)) -v hz="$CLK_TCK" -v s=$((s1 - s0)) -v max="$max" \
		-v hwm="$(status_kb "$DAEMON_PID" VmHWM)" 'BEGIN {
		t = t1 - t0
		printf "homeostatd %s %.0f s: CPU %.2f%% of one core (utime+stime %d ticks of %d ms;" \
			" scheduler run time %.1f ms = %.3f%%), max RSS %.1f MiB (VmHWM since start %.1f MiB)\n",
			l, t, 100 * k / hz / t, k, 1000 / hz, s / 1e6, 100 * s / 1e9 / t, max / 1024,
			hwm / 1024
	}'
}

echo
start_daemon "$POLICY" || die "homeostatd does not start"
sleep 2 # past its start-up: the figures are its steady state
measure "idle" || die "homeostatd exited while measured"
# The load: one sysloop, long enough to outlast the window, stopped when it closes.
load_calls=$(awk -v c="$CALLS" -v r="$RUN_SECONDS" -v s="$IDLE_SECONDS" \
	'BEGIN { printf "%d", c / r * (s + 10) }')
"$SYSLOOP" -c "$CPU" -w 0 -n "$load_calls" >/dev/null &
LOAD_PID=$!
sleep 0.5
measure "under sysloop load" || die "homeostatd exited while measured"
stop "$LOAD_PID" TERM
LOAD_PID=
stop_daemon
