#!/usr/bin/env bash
# 0340-heal-memleak.sh - a leaking service is profiled, restarted only after approval, and
# its memory comes back.
#
# leaky leaks 64 KiB every 100 ms in leak_some_memory(). The target "leaky" declares a
# restart command (a script that stops it and starts a new one). The memory-leak runbook of
# remediations/ is used with its thresholds scaled down to seconds (a real leak is watched
# over minutes): steady growth over 10 s and more than 16 MiB. It must capture an allocation
# profile that names leak_some_memory, alert, then propose the restart, which under the
# default policy (class approve) waits for `homeostat approve`: nothing restarts before.
# Once approved the restart runs, the new process is small, verify holds, the change is kept.
# hs-asan: yes
. "$(dirname "$0")/lib.sh"

LEAKY=$HS_TOP/$HS_BUILD/workloads/leaky
[ -x "$LEAKY" ] || { echo "missing $LEAKY: run make check-tests"; exit 1; }

cat >"$T_DIR/restart-leaky.sh" <<SH
#!/bin/sh
# stops the running leaky and starts a new one, the way a service manager would
kill \$(cat "$T_DIR/leaky.pid") 2>/dev/null
sleep 0.2
setsid "$LEAKY" --seconds 120 >/dev/null 2>&1 </dev/null &
echo \$! >"$T_DIR/leaky.pid"
SH
chmod 0755 "$T_DIR/restart-leaky.sh"
on_exit 'kill $(cat "$T_DIR/leaky.pid" 2>/dev/null) 2>/dev/null'

t_config
sed -i '/^  - name: leaky$/,/^      error_rate/d' "$T_DIR/etc/policy.yaml" # the default's example
t_add_target leaky comm leaky restart "/bin/sh $T_DIR/restart-leaky.sh"
R=$T_DIR/etc/remediations/memory-leak.yaml
# this runbook alone: on a loaded machine another (runaway-cpu on leaky's run queue) may open
# an episode of its own, which is not what this test is about
find "$T_DIR/etc/remediations" -name '*.yaml' ! -name memory-leak.yaml -delete
sed -i 's/window: 10m/window: 10s/; s/threshold: 1MiB /threshold: 256KiB /; s/window: 1m/window: 5s/;
	s/threshold: 256MiB/threshold: 16MiB/; s/for: 2m/for: 2s/; s/duration: 30s/duration: 3s/;
	s/within: 5m/within: 60s/' "$R"
cat "$R" | grep -E 'window|threshold|for:|duration|within'
t_start

setsid "$LEAKY" --seconds 120 >/dev/null 2>&1 </dev/null &
echo $! >"$T_DIR/leaky.pid"
first=$(cat "$T_DIR/leaky.pid")

check "a memory-leak episode opens" t_wait_for 60 t_q_is "SELECT runbook FROM episodes" memory-leak
check "the allocation profile names leak_some_memory" \
	t_wait_for 20 t_q_is "SELECT kind || ' ' || (summary LIKE '%leak_some_memory%') FROM diagnoses" "alloc_profile 1"
t_q "SELECT summary FROM diagnoses"
check "a human is alerted" t_wait_for 5 t_log_has 'ALERT runbook memory-leak on leaky'
check "the restart waits for approval" \
	t_wait_for 10 t_q_is "SELECT kind || ' ' || state FROM changes" "restart PENDING_APPROVAL"
id=$(t_q "SELECT id FROM changes WHERE kind = 'restart'")
"$HSC" --socket "$T_SOCK" status >"$T_DIR/status.txt"
sed -n '/^approvals:/,/^$/p' "$T_DIR/status.txt"
check "status lists the pending approval" grep -q "^  id *$id\$" "$T_DIR/status.txt"
sleep 3
check "nothing restarted before the approval" [ "$(cat "$T_DIR/leaky.pid")" = "$first" ] && kill -0 "$first"
rss_before=$(awk '{ print $2 * 4 }' "/proc/$first/statm")

"$HSC" --socket "$T_SOCK" approve "$id"
check "homeostat approve $id exits 0" [ $? -eq 0 ]
check "the restart ran: a new leaky" t_wait_for 20 bash -c "[ \"\$(cat '$T_DIR/leaky.pid')\" != $first ]"
check "the old one is gone" t_wait_for 5 bash -c "! kill -0 $first 2>/dev/null"
new=$(cat "$T_DIR/leaky.pid")
rss_after=$(awk '{ print $2 * 4 }' "/proc/$new/statm")
echo "RSS before the restart ${rss_before} KiB, after ${rss_after} KiB"
check "the memory came back (${rss_before} KiB -> ${rss_after} KiB)" [ $((rss_after * 2)) -lt "$rss_before" ]
check "verify holds: the change is kept" t_wait_for 20 t_q_is "SELECT state FROM changes WHERE id = $id" KEPT
check "the episode is RESOLVED" t_wait_for 5 t_q_is "SELECT state FROM episodes" RESOLVED
"$HSC" --socket "$T_SOCK" history
check "history says who approved it" \
	t_q_is "SELECT count(*) FROM audit WHERE change_id = $id AND event = 'change.approved' AND actor LIKE 'operator%'" 1
"$HSC" --socket "$T_SOCK" rollback "$id" >"$T_DIR/rb.txt" 2>&1
rc=$?
cat "$T_DIR/rb.txt"
check "a restart cannot be rolled back, and says so" [ $rc -eq 1 ] && grep -q "cannot be undone" "$T_DIR/rb.txt"
check "the daemon stops cleanly" t_stop
t_done
