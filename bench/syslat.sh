#!/usr/bin/env bash
# bench/syslat.sh - how far homeostat's sampled syscall latency is from the truth.
#
# Syscall latency is not measured for every syscall: the sys_enter program it needs costs
# every syscall of the host, so it times 1 in 16 syscalls during the policy's windows
# (observe.syscall_latency: a window of W every E), into log2 histograms. This measures the
# error that sampling and the histogram make together, on a workload whose truth is known:
# build/workloads/sysfail mix, syscalls of four known latencies (getppid, and nanosleeps of
# 50 us, 500 us and 5 ms) in a fixed pseudo-random order, each timed by the workload itself.
# homeostatd watches it as a target (by comm) and `homeostat status --json` gives its p50
# and p99 over the last 60 ticks, read just before the workload ends; the workload prints the
# exact quantiles of the same calls. Two schedules: the default one (policies/default.yaml)
# and windows of 1 s every 2 s. Figures only: nothing here passes or fails.
#
# Environment: HS_BUILD (default build), BENCH_SYSLAT_SECONDS (workload length, default 60).
set -u
cd "$(dirname "$0")/.." || exit 1
. bench/lib.sh

BUILD=${HS_BUILD:-build}
SECONDS_RUN=${BENCH_SYSLAT_SECONDS:-60}
HSD=$BUILD/homeostatd
HSC=$BUILD/homeostat
MIX=$BUILD/workloads/sysfail

die() { echo "syslat: $*" >&2; exit 1; }
[[ $SECONDS_RUN =~ ^[0-9]+$ ]] && [ "$SECONDS_RUN" -ge 10 ] ||
	die "BENCH_SYSLAT_SECONDS must be a whole number, at least 10"
if [ "$(id -u)" -ne 0 ]; then
	echo "syslat: skipped: needs root (BPF programs, a daemon that runs as root)"
	exit 0
fi
for f in "$HSD" "$HSC" "$MIX"; do
	[ -x "$f" ] || die "missing '$f': run make bench"
done

TMP=$(mktemp -d /tmp/hs-syslat.XXXXXX) || die "cannot create a temporary directory"
chmod 0755 "$TMP"
PIN=/sys/fs/bpf/homeostat-syslat-$$
DAEMON_PID='' WORK_PID=''

stop() { bench_stop "$1" TERM; }
cleanup() {
	trap - EXIT INT TERM
	stop "$WORK_PID"
	stop "$DAEMON_PID"
	rm -rf "$PIN" "$TMP"
}
trap cleanup EXIT
trap 'echo "syslat: interrupted"; exit 130' INT
trap 'exit 143' TERM

# The workload runs under its own name, so that it is the only member of its target.
cp "$MIX" "$TMP/sysfail_mix"

# policy WINDOW EVERY: the default policy with that schedule and a target for the workload.
policy() {
	bench_latency_policy policies/default.yaml "$1" "$2" "$TMP/policy.yaml" \
		's/^targets:$/targets:\n  - name: mix\n    comm: sysfail_mix/'
}

# measure WINDOW EVERY: one run; prints the truth, the reported quantiles and their errors.
measure() {
	local i row
	policy "$1" "$2" || die "cannot write the policy"
	rm -f "$TMP/memory.db"
	"$HSD" --foreground --policy "$TMP/policy.yaml" --runbooks remediations \
		--db "$TMP/memory.db" --socket "$TMP/control.sock" --pin-dir "$PIN" \
		>"$TMP/daemon.log" 2>&1 &
	DAEMON_PID=$!
	for i in $(seq 100); do
		"$HSC" --socket "$TMP/control.sock" status >/dev/null 2>&1 && break
		kill -0 "$DAEMON_PID" 2>/dev/null || { sed 's/^/  /' "$TMP/daemon.log"; die "homeostatd died"; }
		sleep 0.1
	done
	"$TMP/sysfail_mix" mix "$SECONDS_RUN" >"$TMP/truth" &
	WORK_PID=$!
	sleep $((SECONDS_RUN - 1))
	row=$("$HSC" --socket "$TMP/control.sock" status --json) || die "status failed"
	wait "$WORK_PID"
	WORK_PID=
	stop "$DAEMON_PID"
	DAEMON_PID=
	rm -rf "$PIN"
	python3 - "$1" "$2" "$SECONDS_RUN" "$(grep "^truth " "$TMP/truth")" "$row" <<'EOF'
import json, math, sys
window, every, secs, truth, row = sys.argv[1:6]
t = dict(zip(truth.split()[1::2], truth.split()[2::2]))
calls = int(t["calls"])
mine = [r for r in json.loads(row)["targets"] if r["target"] == "mix"][0]
print(f"windows of {window} every {every}, {secs} s, {calls} calls "
      f"({calls / float(secs):.0f}/s; the sliding window of 60 ticks holds the last 60 s):")
for q in ("p50", "p99"):
    true, got = float(t[q + "_us"]), float(mine[q + "_sys_us"] or 0)
    err = (got - true) / true * 100
    same = got > 0 and math.floor(math.log2(got * 1000)) == math.floor(math.log2(true * 1000))
    print(f"  {q}: true {true:9.1f} us  reported {got:9.1f} us  error {err:+6.1f}%  "
          f"({'same' if same else 'another'} log2 slot)")
EOF
}

echo "sampled syscall latency against the truth (build/workloads/sysfail mix: 40% getppid," \
	"30% 50 us, 25% 500 us, 5% 5 ms nanosleeps; 1 in 16 syscalls timed in each window)"
win=$(bench_latency_key policies/default.yaml window)
every=$(bench_latency_key policies/default.yaml every)
measure "${win:-1s}" "${every:-20s}"
measure 1s 2s
