#!/usr/bin/env bash
# 0310-heal-modes.sh - dry_run and observe change nothing; protected things are refused.
#
# The same fault each time (fdhog: EMFILE at a soft limit of 64), under five policies:
#   dry_run (the policy's mode)   the episode ends DRY_RUN, the change is recorded PROPOSED
#                                 with what it would have done, and the host is unchanged
#   --dry-run (the daemon's flag) the same over an enforce policy
#   observe                       detection is logged, nothing is recorded or changed
#   fdhog protected               the change is DENIED, the episode REFUSED, nothing changed
#   a restart that names the      a runbook whose restart command would delete the agent's
#   agent's own database          database is refused, and the database is still there
# "The host" is the soft limit of the faulty process, every non-zero nice value and every
# policy other than SCHED_OTHER on the host, and the sysctls a runbook may write; it is
# compared before and after each run.
# hs-asan: yes
. "$(dirname "$0")/lib.sh"

FDHOG=$HS_TOP/$HS_BUILD/workloads/fdhog
[ -x "$FDHOG" ] || { echo "missing $FDHOG: run make check-tests"; exit 1; }
host_state() { # pid
	awk '/^Max open files/' "/proc/$1/limits"
	ps -e -o pid=,ni=,cls= | awk '($2 != 0 && $2 != "-") || $3 != "TS"' | sort -n
	sysctl -n net.core.somaxconn fs.file-max vm.swappiness
}

# run NAME [daemon flags...]: the fault under the current $T_DIR/etc, state compared.
run() {
	local name=$1
	shift
	T_DB=$T_DIR/$name/memory.db
	t_start "$@"
	sleep 6
	"$FDHOG" --soft 64 --want 100 >"$T_DIR/$name.fd" 2>&1 &
	FDHOG_PID=$!
	on_exit "kill $FDHOG_PID 2>/dev/null"
	sleep 0.5
	host_state "$FDHOG_PID" >"$T_DIR/$name.before"
	t_wait_for 15 t_log_has "$WAIT_FOR"
	sleep 2
	host_state "$FDHOG_PID" >"$T_DIR/$name.after"
	check "$name: the host is as it was" diff "$T_DIR/$name.before" "$T_DIR/$name.after"
	check "$name: fdhog never got its descriptors" bash -c "! grep -q '^satisfied' '$T_DIR/$name.fd'"
}
end_run() {
	kill "$FDHOG_PID" 2>/dev/null
	wait "$FDHOG_PID" 2>/dev/null
	check "$1: the daemon stops cleanly" t_stop
}

t_config
P=$T_DIR/etc/policy.yaml

# 1. mode dry_run
sed -i 's/^mode: enforce$/mode: dry_run/' "$P"
WAIT_FOR='episode 1 DRY_RUN'
run dry_run
check "dry_run: the episode ended DRY_RUN" t_q_is "SELECT state FROM episodes" DRY_RUN
check "dry_run: the change is recorded as a proposal, not made" \
	t_q_is "SELECT kind || ' ' || state FROM changes" "rlimit PROPOSED"
check "dry_run: and says what it would have done" \
	t_log_has 'change 1 recorded, not made: dry run: would'
check "dry_run: nothing entered INTENT" t_q_is "SELECT count(*) FROM changes WHERE acted_at IS NOT NULL" 0
end_run dry_run

# 2. --dry-run over an enforce policy
sed -i 's/^mode: dry_run$/mode: enforce/' "$P"
run dry_run_flag --dry-run
check "--dry-run: the episode ended DRY_RUN" t_q_is "SELECT state FROM episodes" DRY_RUN
check "--dry-run: nothing entered INTENT" t_q_is "SELECT count(*) FROM changes WHERE acted_at IS NOT NULL" 0
end_run dry_run_flag

# 3. mode observe
sed -i 's/^mode: enforce$/mode: observe/' "$P"
WAIT_FOR='mode observe: no action'
run observe
check "observe: the detection is logged" t_log_has 'runbook fd-exhaustion fired on other \(mode observe: no action\)'
check "observe: no episode, no change recorded" \
	t_q_is "SELECT (SELECT count(*) FROM episodes) + (SELECT count(*) FROM changes)" 0
end_run observe

# 4. the faulty process is protected
sed -i 's/^mode: observe$/mode: enforce/' "$P"
sed -i 's/^  processes:$/  processes:\n    - fdhog/' "$P"
WAIT_FOR='episode 1 REFUSED'
run protected
check "protected: the episode is REFUSED" t_q_is "SELECT state FROM episodes" REFUSED
check "protected: the change is DENIED because fdhog is protected" \
	bash -c "sqlite3 '$T_DB' \"SELECT state, (SELECT detail FROM audit WHERE change_id = c.id AND event = 'change.denied') FROM changes c\" | grep -q \"DENIED|.*protected\""
end_run protected

# 5. a restart command that would delete the agent's own database
sed -i '/^    - fdhog$/d' "$P"
T_DB=$T_DIR/own/memory.db
t_add_target hog comm fdhog restart "/bin/rm -f $T_DB"
cat >"$T_DIR/etc/remediations/zz-restart-hog.yaml" <<RB
name: restart-hog
description: a test runbook whose restart command names the agent's database
applies_to: {target: hog}
detect:
  when:
    - {signal: syscall_errors, errno: EMFILE, aggregation: rate, window: 5s, op: ">", threshold: 1}
remediate:
  - {action: restart, class: auto}
verify:
  when:
    - {signal: syscall_errors, errno: EMFILE, aggregation: delta, window: 5s, op: "==", threshold: 0}
RB
chmod 0644 "$T_DIR/etc/remediations/zz-restart-hog.yaml"
rm "$T_DIR/etc/remediations/fd-exhaustion.yaml"
WAIT_FOR='restart-hog on hog: episode 1 REFUSED'
run own
check "own files: the restart is DENIED because it names the agent's database" \
	bash -c "sqlite3 '$T_DB' \"SELECT detail FROM audit WHERE event = 'change.denied'\" | grep -q \"is protected (the agent's own file)\""
check "own files: the database is still there" test -s "$T_DB"
end_run own
check "nothing was logged at error level" bash -c "! grep -E ' (err|crit|alert) ' '$T_LOG'"
t_done
