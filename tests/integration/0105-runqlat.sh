#!/usr/bin/env bash
# 0105-runqlat.sh - run-queue latency against ground truth. A CPU-bound process alone on
# CPU 1 hardly ever waits for it; two CPU-bound processes on CPU 1 each wait for the
# other's time slice (about a millisecond or more) every time they are preempted. The
# target's p99 must be under 1 ms alone (on a quiet host; under half the shared figure on a
# busy one; the best of up to three tries, each with a fresh daemon) and over 1 ms when two
# share the CPU.
# hs-asan: yes
. "$(dirname "$0")/lib.sh"

[ "$(nproc)" -ge 2 ] || skip_all "needs 2 CPUs"
# This shell and everything it starts (the CLI, python) stay on CPU 0; only the hogs run on
# CPU 1, so that nothing of the test itself delays them there.
taskset -p -c 0 $$ >/dev/null
cp "$HS_TOP/build/workloads/sysfail" "$T_DIR/hog"
t_config
t_add_target hog comm hog
# Keep the daemon itself (slower under ASan) off the CPU being measured.
pin_daemon() { taskset -a -p -c 0 "$T_PID" >/dev/null; }

p99() {
	"$HSC" --socket "$T_SOCK" status --json | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
print([r for r in d["targets"] if r["target"] == "hog"][0]["p99_runq_us"])'
}

# Alone: up to three tries, each with a fresh daemon (the window is 60 ticks, 30 s), so that a
# burst of other work on CPU 1 (a kernel thread, another process of the machine) during one
# try does not decide the test; the best try counts.
alone=
for try in 1 2 3; do
	check "daemon starts (alone, try $try)" t_start --tick 500
	check "daemon pinned to CPU 0" pin_daemon
	taskset -c 1 "$T_DIR/hog" spin 3 >/dev/null &
	h1=$!
	on_exit "kill $h1 2>/dev/null"
	sleep 2.5
	a=$(p99)
	wait $h1
	echo "one hog alone on CPU 1, try $try: run-queue p99 ${a} us"
	check "daemon stops" t_stop
	if [ -z "$alone" ] || python3 -c "import sys; sys.exit(not float('$a') < float('$alone'))"; then alone=$a; fi
	python3 -c "import sys; sys.exit(not float('$alone') < 1000)" && break
done
check "daemon starts for the shared phase" t_start --tick 500
check "daemon pinned to CPU 0" pin_daemon
taskset -c 1 "$T_DIR/hog" spin 3 >/dev/null &
h1=$!
taskset -c 1 "$T_DIR/hog" spin 3 >/dev/null &
h2=$!
on_exit "kill $h1 $h2 2>/dev/null"
sleep 2.5
shared=$(p99)
wait $h1 $h2
echo "two hogs sharing CPU 1: run-queue p99 ${shared} us"
# On a quiet CPU the lone hog waits microseconds; when the host is busy (other work migrates
# onto CPU 1) it may wait longer, but still well under the time it waits when sharing.
check "alone, the hog's p99 is under 1 ms or under half the shared p99" python3 -c "
import sys; a, s = float('$alone'), float('$shared'); sys.exit(not (a < 1000 or a < s / 2))"
check "sharing, the hogs' p99 is over 1 ms" python3 -c "import sys; sys.exit(not float('$shared') > 1000)"
check "and over the alone figure" python3 -c "import sys; sys.exit(not float('$shared') > float('$alone'))"
check "daemon stops cleanly" t_stop
t_done
