#!/usr/bin/env bash
# 0140-profile-cli.sh - `homeostat profile` through the daemon, and status's top_cpu.
#
# The daemon watches two targets: "hog" (cpuhog, 90% of its CPU in hot_spin_function) and
# "leaky" (64 KiB leaked every 100 ms in leak_some_memory), plus "sleepy" (cpuhog --sleepy,
# sleepy_function sleeps 3 ms a call). Through the CLI: a 3 s CPU profile names
# hot_spin_function first, --folded prints "frame;...;frame N" lines, --json parses; an
# allocation profile of leaky names leak_some_memory; a function-latency profile of
# sleepy_function puts p50 in the 2-4 ms log2 bucket. Meanwhile status answers at once (the
# capture does not block the loop), a third capture is refused (EBUSY), an unknown target
# gives exit 1 with the known ones, and status's top_cpu for "hog" names hot_spin_function.
# Finally a capture abandoned by its client, and one running when the daemon stops, leave
# no uprobe behind.
# hs-asan: yes
. "$(dirname "$0")/lib.sh"

HOG=$HS_TOP/$HS_BUILD/workloads/cpuhog
LEAKY=$HS_TOP/$HS_BUILD/workloads/leaky
[ -x "$HOG" ] && [ -x "$LEAKY" ] || { echo "missing $HOG or $LEAKY: run make check-tests"; exit 1; }
hsc() { timeout 60 "$HSC" --socket "$T_SOCK" "$@"; }
uprobes() { # uprobes with a BPF program attached, host-wide, as the kernel lists them
	bpftool -j perf show 2>/dev/null | python3 -c '
import json, sys
try:
    events = json.load(sys.stdin)
except ValueError:
    events = []
print(sum(1 for e in events if e.get("fd_type") in ("uprobe", "uretprobe")))'
}
UPROBES0=$(uprobes)

t_config
# The default policy has a "leaky" target (comm leaky) already.
grep -q 'name: leaky$' "$T_DIR/etc/policy.yaml" || t_add_target leaky comm leaky
cp "$HOG" "$T_DIR/sleepyhog" # another comm, so that it is a target of its own
t_add_target sleepy comm sleepyhog
t_add_target hog comm cpuhog

check "daemon starts with the hog, leaky and sleepy targets" t_start
# Started after the daemon: targets chosen by comm are matched in the kernel at a process's
# first event, and a spinning cpuhog makes no syscall once it runs (its clock is the vDSO).
"$HOG" --seconds 120 &
HOG_PID=$!
on_exit "kill $HOG_PID 2>/dev/null; wait $HOG_PID 2>/dev/null"
"$LEAKY" --seconds 120 >/dev/null &
LEAKY_PID=$!
on_exit "kill $LEAKY_PID 2>/dev/null; wait $LEAKY_PID 2>/dev/null"
"$T_DIR/sleepyhog" --sleepy --seconds 120 &
SLEEPY_PID=$!
on_exit "kill $SLEEPY_PID 2>/dev/null; wait $SLEEPY_PID 2>/dev/null"
t0=$(date +%s)
# Members are known once the kernel classified them (first event) and the tick read them.
for i in $(seq 50); do
	[ "$(t_target_field hog procs)" = 1 ] && [ "$(t_target_field leaky procs)" = 1 ] &&
		[ "$(t_target_field sleepy procs)" = 1 ] && break
	sleep 0.2
done
check "each target has its process" \
	[ "$(t_target_field hog procs):$(t_target_field leaky procs):$(t_target_field sleepy procs)" = 1:1:1 ]

# 1. CPU profile, with status asked while it runs.
hsc profile --target hog --seconds 3 --cpu >"$T_DIR/cpu.out" 2>&1 &
CPU_JOB=$!
sleep 0.5
s0=$(date +%s%N)
hsc status >/dev/null
rc=$?
s1=$(date +%s%N)
check "status answers while a capture runs (exit $rc, $(((s1 - s0) / 1000000)) ms)" \
	[ "$rc" -eq 0 -a $(((s1 - s0) / 1000000)) -lt 1000 ]
wait $CPU_JOB
rc=$?
cat "$T_DIR/cpu.out"
check "profile --cpu exits 0" [ "$rc" -eq 0 ]
first=$(awk '/^top:/ { getline; getline; print $1; exit }' "$T_DIR/cpu.out")
check "the first top function is hot_spin_function (got '$first')" [ "$first" = hot_spin_function ]
check "the capture names the hog's pid" grep -Eq "^  pids +$HOG_PID\$" "$T_DIR/cpu.out"
check "the text output has no stacks table" bash -c "! grep -q '^stacks:' '$T_DIR/cpu.out'"

# 2. Folded stacks, for flame-graph tools.
hsc profile --target hog --seconds 2 --cpu --folded >"$T_DIR/folded" 2>&1
rc=$?
head -3 "$T_DIR/folded"
check "profile --folded exits 0" [ "$rc" -eq 0 ]
check "folded output is not empty" [ -s "$T_DIR/folded" ]
check "every folded line is 'frame;...;frame count'" \
	bash -c "! grep -Evq '^[^; ]+(;[^; ]+)* [0-9]+\$' '$T_DIR/folded'"
check "folded stacks end in hot_spin_function" \
	grep -Eq '(^|;)hot_spin_function [0-9]+$' "$T_DIR/folded"

# 3. JSON: every table, "top" cut to --top.
hsc profile --target hog --seconds 2 --cpu --json --top 3 >"$T_DIR/cpu.json" 2>&1
rc=$?
check "profile --json exits 0" [ "$rc" -eq 0 ]
check "the JSON parses, with capture, top (3 rows at most) and stacks" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["status"] == 0, d
c = d["capture"][0]
assert c["kind"] == "cpu" and c["target"] == "hog" and c["samples"] > 0, c
assert 1 <= len(d["top"]) <= 3 and d["top"][0]["function"] == "hot_spin_function", d["top"]
assert d["top"][0]["self_pct"] >= 50, d["top"][0]
assert len(d["stacks"]) > 0 and all(s["samples"] > 0 for s in d["stacks"])
' "$T_DIR/cpu.json"

# 4. Allocation profile of leaky, alongside a CPU one (two captures at once).
hsc profile --target leaky --seconds 3 --alloc --json >"$T_DIR/alloc.json" 2>&1 &
ALLOC_JOB=$!
hsc profile --target hog --seconds 3 --cpu >/dev/null 2>&1 &
CPU_JOB=$!
sleep 0.5
hsc profile --target hog --seconds 1 --cpu >"$T_DIR/busy.out" 2>&1
rc=$?
cat "$T_DIR/busy.out"
check "a third capture is refused with exit 1" [ "$rc" -eq 1 ]
check "and says why" grep -q 'profiles are running already .* at most 2 at once' "$T_DIR/busy.out"
wait $ALLOC_JOB
rc=$?
wait $CPU_JOB
check "profile --alloc exits 0" [ "$rc" -eq 0 ]
check "the alloc profile names leak_some_memory first, of leaky's pid" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
c = d["capture"][0]
assert c["kind"] == "alloc" and c["pids"] == sys.argv[2], c
assert c["bytes"] > 0 and c["stopped_early"] == "no", c
assert d["top"][0]["function"] == "leak_some_memory", d["top"][:3]
assert d["stacks"][0]["stack"].endswith("leak_some_memory"), d["stacks"][0]
' "$T_DIR/alloc.json" "$LEAKY_PID"

# 5. Function latency: usleep(3000) is 3.05-3.2 ms, in the [2097152, 4194304) ns bucket.
hsc profile --target sleepy --seconds 3 --func sleepy_function >"$T_DIR/func.out" 2>&1
rc=$?
cat "$T_DIR/func.out"
check "profile --func exits 0" [ "$rc" -eq 0 ]
p50=$(awk '$1 == "p50_us" { print $2 }' "$T_DIR/func.out")
calls=$(awk '$1 == "calls" { print $2; exit }' "$T_DIR/func.out")
ms=$(awk '$1 == "duration_ms" { print $2 }' "$T_DIR/func.out")
check "p50 of sleepy_function in the 2-4 ms bucket (got $p50 us)" \
	awk -v p="${p50:-0}" 'BEGIN { exit !(p >= 2097.152 && p < 4194.304) }'
# The window ends at the first tick after 3 s: duration_ms says how long it really ran.
check "a call every 3.1 ms or so over $ms ms (got $calls)" \
	awk -v n="${calls:-0}" -v ms="${ms:-0}" 'BEGIN { exit !(ms >= 3000 && ms < 4500 && n >= ms / 3.4 * 0.8 && n <= ms / 3.0) }'
hsc profile --target sleepy --seconds 1 --func no_such_function >"$T_DIR/nofunc.out" 2>&1
rc=$?
cat "$T_DIR/nofunc.out"
check "an unknown function is refused with exit 1 and the reason" \
	bash -c "[ $rc -eq 1 ] && grep -q \"cannot trace 'no_such_function' in pid $SLEEPY_PID\" '$T_DIR/nofunc.out'"

# 6. Refusals, before anything is attached.
hsc profile --target nosuch --seconds 1 --cpu >"$T_DIR/unknown.out" 2>&1
rc=$?
cat "$T_DIR/unknown.out"
check "an unknown target gives exit 1" [ "$rc" -eq 1 ]
check "with the known targets" \
	grep -q "homeostat: unknown target 'nosuch' (known: hog, sleepy, leaky)" "$T_DIR/unknown.out"
hsc profile --target hog --seconds 1 --alloc --pid "$LEAKY_PID" >"$T_DIR/notmember.out" 2>&1
rc=$?
check "a pid outside the target is refused (exit $rc)" \
	bash -c "[ $rc -eq 1 ] && grep -q 'pid $LEAKY_PID is not a member of target .hog.' '$T_DIR/notmember.out'"
hsc profile --target hog --seconds 301 --cpu >/dev/null 2>&1
check "seconds above 300 is a usage error" [ $? -eq 64 ]
hsc profile --target hog --cpu --alloc >/dev/null 2>&1
check "two kinds at once is a usage error" [ $? -eq 64 ]

# 7. status's top_cpu: the always-on sampler closes a window every 10 s.
top=
while [ $(($(date +%s) - t0)) -lt 40 ]; do
	top=$(t_target_field hog top_cpu)
	[ -n "$top" ] && break
	sleep 1
done
echo "top_cpu of hog: $top"
check "status's top_cpu for hog names hot_spin_function first" \
	bash -c "[[ '$top' == hot_spin_function\ [0-9]*%* ]]"
check "the host row has no top_cpu" [ -z "$(t_target_field host top_cpu 2>/dev/null)" ]

# 8. A client that goes away: its capture stops at the next tick, its probes go.
timeout 1 "$HSC" --socket "$T_SOCK" profile --target leaky --seconds 60 --alloc >/dev/null 2>&1
sleep 2.5
check "an abandoned capture is stopped" t_log_has "profile of target 'leaky' stopped: its client went away"
check "and leaves no uprobe attached ($(uprobes), $UPROBES0 before)" [ "$(uprobes)" = "$UPROBES0" ]

# 9. A capture running when the daemon stops: its client hears why, nothing stays attached.
hsc profile --target leaky --seconds 60 --alloc >"$T_DIR/stop.out" 2>&1 &
STOP_JOB=$!
sleep 1
check "uprobes are attached while it runs ($(uprobes))" [ "$(uprobes)" -gt "$UPROBES0" ]
check "the daemon stops cleanly during a capture" t_stop
wait $STOP_JOB
rc=$?
cat "$T_DIR/stop.out"
check "the client got exit 1 and the reason" \
	bash -c "[ $rc -eq 1 ] && grep -q 'the daemon is stopping' '$T_DIR/stop.out'"
check "no uprobe left after the stop ($(uprobes))" [ "$(uprobes)" = "$UPROBES0" ]
check "the daemon's log has no sanitizer report" bash -c "! grep -q 'Sanitizer' '$T_LOG'"
t_done
