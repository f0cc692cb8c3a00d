#!/usr/bin/env bash
# 0130-func-latency.sh - on-demand function latency through a uprobe and a uretprobe.
#
# cpuhog --sleepy calls sleepy_function(), which sleeps 3 ms (usleep(3000): 3.05 to 3.2 ms
# with timer slack), in a loop. profile_tool attaches obs_funclat to it for 3 s: the p50 must
# fall in the 2-4 ms bucket of the log2 histogram ([2097152, 4194304) ns), the call count must
# match 3 s of 3 ms calls, and the governor must have counted two hits a call.
# hs-asan: yes
. "$(dirname "$0")/lib.sh"

TOOL=$HS_TOP/$HS_BUILD/tests/profile_tool
HOG=$HS_TOP/$HS_BUILD/workloads/cpuhog
[ -x "$TOOL" ] && [ -x "$HOG" ] || { echo "missing $TOOL or $HOG: run make check-tests"; exit 1; }
val() { awk -v k="$1" '$1 == "=" && $2 == k { print $3 }' "$T_DIR/out"; }

"$HOG" --sleepy --seconds 30 &
HOG_PID=$!
on_exit "kill $HOG_PID 2>/dev/null; wait $HOG_PID 2>/dev/null"
sleep 0.3

timeout 30 "$TOOL" func --pid "$HOG_PID" --func sleepy_function --seconds 3 >"$T_DIR/out" 2>&1
rc=$?
cat "$T_DIR/out"
check "profile_tool func exits 0" [ "$rc" -eq 0 ]
p50=$(val p50_ns)
calls=$(val calls)
hits=$(val hits)
check "p50 of sleepy_function in the 2-4 ms bucket (got $p50 ns)" \
	awk -v p="${p50:-0}" 'BEGIN { exit !(p >= 2097152 && p < 4194304) }'
check "about 900 calls in 3 s (got $calls)" \
	awk -v n="${calls:-0}" 'BEGIN { exit !(n >= 500 && n <= 1000) }'
# Calls cut by the window's edges and those during the detach add a few hits more.
check "two probe hits a call ($hits hits)" \
	awk -v h="${hits:-0}" -v n="${calls:-0}" 'BEGIN { exit !(n > 0 && h >= 2 * n && h <= 2.1 * n + 10) }'

timeout 30 "$TOOL" func --pid "$HOG_PID" --binary "$HOG" --func hot_spin_function --seconds 1 \
	>"$T_DIR/out" 2>&1
check "an explicit binary path works too (a function never called: 0 calls)" \
	[ "$(val calls)" = 0 ]
check "an unknown function is refused" \
	bash -c "! timeout 10 '$TOOL' func --pid $HOG_PID --func no_such_function --seconds 1"
t_done
