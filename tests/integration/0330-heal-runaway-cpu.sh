#!/usr/bin/env bash
# 0330-heal-runaway-cpu.sh - a CPU hog delays a service; homeostat lowers the hog's priority,
# the service recovers, and the change is undone once the hog has gone quiet.
#
# rqvictim (target "victim") wakes every 5 ms to work 1 ms and prints its own wakeup delay;
# cpuhog with 2 threads shares its CPU (both pinned to CPU 1, in this shell's session so that
# they share an autogroup). The runaway-cpu runbook must see the victim's run-queue p99 rise,
# pick cpuhog as the hog (the most CPU outside the target), move every thread of it to
# SCHED_IDLE, verify that the victim's p99 fell, and keep the change. Then the hog is stopped
# (SIGSTOP: no CPU): after 10 s quiet the runbook reverts it, every thread back to
# SCHED_OTHER at nice 0. The victim's own measurements must show the delay before and the
# recovery after.
# hs-asan: yes
. "$(dirname "$0")/lib.sh"

VICTIM=$HS_TOP/$HS_BUILD/workloads/rqvictim
HOG=$HS_TOP/$HS_BUILD/workloads/cpuhog
[ -x "$VICTIM" ] && [ -x "$HOG" ] || { echo "missing workloads: run make check-tests"; exit 1; }
[ "$(nproc)" -ge 2 ] || skip_all "needs 2 CPUs"
scheds() { # pid: "policy/nice" of every thread, sorted and unique (policy 0 other, 5 idle)
	for t in /proc/"$1"/task/*/stat; do awk '{ sub(/^.*\) /, ""); print $39 "/" $17 }' "$t"; done | sort -u | tr '\n' ' '
}
median_p99() { # file first last: median of the victim's per-second p99 over lines first..last
	sed -n "$2,$3p" "$1" | awk '$1 == "p50_us" { print $4 }' | sort -n |
		awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : -1) }'
}

t_config
t_add_target victim comm rqvictim
t_start
taskset -c 1 "$VICTIM" >"$T_DIR/victim.log" 2>&1 &
VPID=$!
on_exit "kill $VPID 2>/dev/null"
sleep 6
taskset -c 1 "$HOG" --threads 2 >/dev/null 2>&1 &
HPID=$!
on_exit "kill -KILL $HPID 2>/dev/null"
hog_line=$(wc -l <"$T_DIR/victim.log")

check "a runaway-cpu episode opens for the victim" \
	t_wait_for 40 t_q_is "SELECT runbook || ' ' || target FROM episodes" "runaway-cpu victim"
check "the hog is lowered: change applied to cpuhog" \
	t_wait_for 15 t_q_is "SELECT kind || ' ' || after FROM changes WHERE state IN ('APPLIED', 'KEPT')" "nice idle"
applied_line=$(wc -l <"$T_DIR/victim.log")
check "every thread of the hog is SCHED_IDLE ($(scheds $HPID))" [ "$(scheds $HPID)" = "5/0 " ]
check "the change is verified and kept" t_wait_for 35 t_q_is "SELECT state FROM changes" KEPT
check "the episode is RESOLVED" t_wait_for 5 t_q_is "SELECT state FROM episodes" RESOLVED
t_q "SELECT why FROM changes"
check "the change names the hog and why" \
	bash -c "sqlite3 '$T_DB' 'SELECT why FROM changes' | grep -q 'pid $HPID (cpuhog) used'"
sleep 5
now_line=$(wc -l <"$T_DIR/victim.log")
before=$(median_p99 "$T_DIR/victim.log" $((hog_line + 2)) "$applied_line")
after=$(median_p99 "$T_DIR/victim.log" $((applied_line + 2)) "$now_line")
echo "victim p99 wakeup delay (median of seconds): with the hog ${before} us, after the change ${after} us"
check "the victim suffered before (median p99 ${before} us > 3000 us)" [ "$before" -gt 3000 ]
check "and recovered after (median p99 ${after} us: under half, and < 2500 us)" \
	[ $((after * 2)) -lt "$before" ] && [ "$after" -lt 2500 ]

# The hog goes quiet: the runbook reverts the change.
kill -STOP "$HPID"
check "once the hog is quiet for 10 s the change is reverted" \
	t_wait_for 30 t_q_is "SELECT state FROM changes" ROLLED_BACK
check "every thread of the hog is back to SCHED_OTHER at nice 0 ($(scheds $HPID))" [ "$(scheds $HPID)" = "0/0 " ]
t_q "SELECT failure_reason FROM outcomes ORDER BY id DESC LIMIT 1"
check "the rollback says why" \
	bash -c "sqlite3 '$T_DB' 'SELECT failure_reason FROM outcomes ORDER BY id DESC LIMIT 1' | grep -q 'runaway-cpu (pid $HPID used under 5% of a CPU for 10 s): value restored'"
kill -KILL "$HPID"
kill "$VPID"
check "the daemon stops cleanly" t_stop
t_done
