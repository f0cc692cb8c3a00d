#!/usr/bin/env bash
# 0100-syscalls.sh - the syscalls collector against ground truth: a workload makes exactly
# N failing close(-1) calls (EBADF) and sleeps a known time per call; homeostat must count
# the errors exactly (kernel map, through bpftool), report the error rate within 10% and the
# sampled latency median within its log2 slot; the rest of the host must not be charged.
# hs-asan: yes
. "$(dirname "$0")/lib.sh"

W=$HS_TOP/build/workloads/sysfail
t_config
# The latency phase runs under another name so that the earlier fast failures (in the same
# 15 s window) do not move its median.
cp "$W" "$T_DIR/sysfail_sleep"
t_add_target sysfail comm sysfail
t_add_target sleeper comm sysfail_sleep
# Latency windows every 2 s instead of the default 20 s, so that phase 3 sees several.
sed -i 's/^    every: 20s$/    every: 2s/' "$T_DIR/etc/policy.yaml"
check "test policy times syscalls every 2 s" grep -q '^    every: 2s$' "$T_DIR/etc/policy.yaml"
check "daemon starts with a target chosen by comm" t_start --tick 500

# 1. Exact error count, read from the pinned map with bpftool (typed through BTF).
"$W" ebadf 20000 0 >/dev/null
sleep 0.5
ebadf=$(bpftool -j map dump pinned "$T_PIN/syscalls_errors" | python3 -c '
import json, sys
n = 0
for e in json.load(sys.stdin):
    k = e["formatted"]["key"]
    if k["target"] == 2 and k["err"] == 9 and k["nr"] == 3:
        n += e["formatted"]["value"]
print(n)')
check "exactly 20000 EBADF from close() counted for the target (got $ebadf)" test "$ebadf" = 20000
other=$(bpftool -j map dump pinned "$T_PIN/syscalls_errors" | python3 -c '
import json, sys
print(sum(e["formatted"]["value"] for e in json.load(sys.stdin)
          if e["formatted"]["key"]["target"] == 0 and e["formatted"]["key"]["err"] == 9
          and e["formatted"]["key"]["nr"] == 3))')
check "none of them charged to the rest of the host (got $other)" test "$other" -lt 100
dumped=0 failed_dumps=
for m in "$T_PIN"/*; do
	bpftool map show pinned "$m" >/dev/null 2>&1 || continue # a program
	if bpftool map dump pinned "$m" >/dev/null 2>&1; then dumped=$((dumped + 1)); else failed_dumps="$failed_dumps $m"; fi
done
check "bpftool dumps every pinned map ($dumped dumped, failed:${failed_dumps:- none})" test -z "$failed_dumps" -a "$dumped" -ge 8

# 2. Error rate: 4000/s for 3 s, read from status while it runs.
"$W" ebadf 12000 4000 >/dev/null &
wpid=$!
sleep 2
row=$("$HSC" --socket "$T_SOCK" status --json) # one snapshot for both fields
rate=$(python3 -c 'import json,sys; print([r for r in json.loads(sys.argv[1])["targets"] if r["target"] == "sysfail"][0]["errors_s"])' "$row")
errnos=$(python3 -c 'import json,sys; print([r for r in json.loads(sys.argv[1])["targets"] if r["target"] == "sysfail"][0]["top_errnos"])' "$row")
wait $wpid
echo "error rate reported: $rate/s (workload: 4000/s); top errnos: $errnos"
check "error rate within 10% of 4000/s" python3 -c "import sys; sys.exit(not 3600 <= float('$rate') <= 4400)"
check "EBADF is the top errno" grep -q '^EBADF' <<<"$errnos"

# 3. Latency: 8 ms sleeps; the sampled median must fall in the 8 ms log2 slot [4.2, 8.4] ms.
"$T_DIR/sysfail_sleep" sleep 800 8 >/dev/null &
wpid=$!
sleep 6
p50=$(t_target_field sleeper p50_sys_us)
wait $wpid
echo "p50 syscall latency reported: ${p50} us (workload: 8000 us sleeps, 1 in 16 sampled)"
check "p50 syscall latency within the 8 ms slot" python3 -c "import sys; sys.exit(not 4194 <= float('$p50') <= 8389)"

check "daemon stops cleanly" t_stop
t_done
