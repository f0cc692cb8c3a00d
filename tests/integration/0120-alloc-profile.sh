#!/usr/bin/env bash
# 0120-alloc-profile.sh - an on-demand allocation profile finds the leak, and the governor stops
# a capture that costs too much.
#
# leaky leaks 64 KiB every 100 ms in leak_some_memory() and allocates and frees 50 blocks in
# churn_memory() meanwhile, printing how much it leaked so far. profile_tool attaches
# obs_allocprof (uprobes on the process's libc malloc, calloc, realloc, free) for 3 s. The top
# outstanding stack must start in leak_some_memory, and the outstanding bytes must be within
# 30% of what leaky leaked while the probes were attached. Then a capture with a budget of
# 50 probe hits a second must stop early and say so.
# hs-asan: yes
. "$(dirname "$0")/lib.sh"

TOOL=$HS_TOP/$HS_BUILD/tests/profile_tool
LEAKY=$HS_TOP/$HS_BUILD/workloads/leaky
[ -x "$TOOL" ] && [ -x "$LEAKY" ] || { echo "missing $TOOL or $LEAKY: run make check-tests"; exit 1; }
val() { awk -v k="$1" '$1 == "=" && $2 == k { print $3 }' "$T_DIR/out"; }
leaked() { tail -n 1 "$T_DIR/leaky.log" | awk '{ print $2 }'; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

"$LEAKY" --seconds 40 >"$T_DIR/leaky.log" &
LEAKY_PID=$!
on_exit "kill $LEAKY_PID 2>/dev/null; wait $LEAKY_PID 2>/dev/null"
sleep 0.5

before=$(leaked)
t0=$(now_ms)
timeout 30 "$TOOL" alloc --pid "$LEAKY_PID" --seconds 3 --top 3 >"$T_DIR/out" 2>&1
rc=$?
t1=$(now_ms)
after=$(leaked)
cat "$T_DIR/out"
check "profile_tool alloc exits 0" [ "$rc" -eq 0 ]
check "the top outstanding stack starts in leak_some_memory ($(val top_stack))" \
	bash -c "[[ '$(val top_stack)' == leak_some_memory\;* ]]"
# leaky leaks at a steady rate: what it leaked while the tool ran, scaled to the window.
bytes=$(val outstanding_bytes)
window=$(val duration_ms)
expected=$(awk -v b="$before" -v a="$after" -v w="${window:-0}" -v t=$((t1 - t0)) \
	'BEGIN { printf "%d", (a - b) * w / t }')
echo "leaked $((after - before)) bytes in $((t1 - t0)) ms; window $window ms: expected $expected, profiled $bytes"
check "outstanding bytes within 30% of the leak ($bytes vs $expected)" \
	awk -v b="${bytes:-0}" -v e="$expected" 'BEGIN { exit !(e > 0 && b >= 0.7 * e && b <= 1.3 * e) }'
check "the churn stays within the default budget" [ "$(val stopped_early)" = 0 ]
check "no allocation dropped" [ "$(val drops)" = 0 ]

timeout 30 "$TOOL" alloc --pid "$LEAKY_PID" --seconds 3 --max-hits 50 >"$T_DIR/out" 2>&1
rc=$?
cat "$T_DIR/out"
check "a capture over budget still reports (exit 0)" [ "$rc" -eq 0 ]
check "a capture over budget stops early" [ "$(val stopped_early)" = 1 ]
check "and says why" grep -q 'stopped early: .* exceed the budget of 50 hits/s' "$T_DIR/out"
check "well before its window ends ($(val duration_ms) ms)" [ "$(val duration_ms)" -lt 2000 ]

check "a process without libc is refused" bash -c "! timeout 10 '$TOOL' alloc --pid 2 --seconds 1"
t_done
