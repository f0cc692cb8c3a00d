#!/usr/bin/env bash
# 0510-redirect-evolve.sh - self-evolving (issue 6), mechanism b (entry patch) on every kernel:
# the three alternatives of a hot function of a running multi-threaded server, each judged by
# a canary in one of the target's processes.
#
# Two evolve processes (a copy named evolve-canary; target "evolve"), 4 worker threads each,
# calling hot_fn continuously, one write(2) per request (EBADF when the result is wrong). One
# policy redirect of hot_fn,
# its alternatives found by name (hot_fn__alt_*), tried in the order the test gives:
#   (ii)  hot_fn__alt_wrong: in the first on block of the switchback canary the target's error
#         rate jumps; rollback_on (error rate +5%) rolls it back at once: ROLLED_BACK/ROLLBACK;
#   (iii) hot_fn__alt_crash: the canary process dies of SIGSEGV in its first on block: the
#         redirect is rolled back, recorded as a failure with the signal, the crashed process
#         restarted with the target's restart command (restart_on_crash); the other process
#         never noticed (same pid, its requests go on, no error);
#   (i)   hot_fn__alt_fast: the whole 30 s canary runs; more requests per second in the on
#         blocks: KEEP, with the statistics; then promoted to every process of the target;
#         the workloads' own clock shows the call latency drop, and so does homeostat's own
#         measure during the canary (uprobe/uretprobe: the alternative in the canary process,
#         the original in the other).
# Then: `homeostat redirect list` shows the live redirects (addresses, bytes written); the
# daemon stops, and a second one on the same memory watches the kept redirect again: the other
# process, killed with SIGSEGV, rolls it back in every process at once (every byte restored)
# and is restarted; that daemon never tries wrong or crash again. (`homeostat redirect revert`:
# 0530.)
# hs-asan: no
. "$(dirname "$0")/lib.sh"

[ -x "$HS_TOP/$HS_BUILD/workloads/evolve" ] || { echo "missing evolve: run make check-tests"; exit 1; }
# a copy under a name of its own: the target (comm) never matches anyone else's evolve
EVOLVE=$T_DIR/evolve-canary
cp "$HS_TOP/$HS_BUILD/workloads/evolve" "$EVOLVE"

t_config
t_tune_policy errors_only
P=$T_DIR/etc/policy.yaml
sed -i 's/^  error_rate_increase: 0.1%$/  error_rate_increase: 5%/' "$P"
cat >"$T_DIR/start-evolve.sh" <<SH
#!/bin/sh
# starts one more evolve process, as a service manager would
n=\$(ls "$T_DIR"/stats-*.log 2>/dev/null | wc -l)
setsid "$EVOLVE" -t 4 -s "$T_DIR/stats-\$n.log" >/dev/null 2>&1 </dev/null &
echo \$! >>"$T_DIR/evolve.pids"
SH
chmod 0755 "$T_DIR/start-evolve.sh"
on_exit 'kill $(cat "$T_DIR/evolve.pids" 2>/dev/null) 2>/dev/null'
t_add_target evolve comm evolve-canary
sed -i "s|^    comm: evolve-canary\$|&\n    restart: $T_DIR/start-evolve.sh\n    slo: {error_rate: 1%}|" "$P"
cat >>"$P" <<EOF
redirects:
  - name: checksum
    target: evolve
    function: hot_fn
    alternatives: [hot_fn__alt_wrong, hot_fn__alt_crash, hot_fn__alt_fast]
    class: auto
    hot_share: 50%
    canary_processes: 1
    restart_on_crash: true
EOF
check "the test policy is valid" "$HSD" --check-config --policy "$P"

"$T_DIR/start-evolve.sh"
sleep 0.2
"$T_DIR/start-evolve.sh"
t_wait_for 10 bash -c "grep -q '^t=' '$T_DIR/stats-0.log' && grep -q '^t=' '$T_DIR/stats-1.log'" ||
	{ echo "evolve did not start"; exit 1; }
read -r PID0 PID1 < <(tr '\n' ' ' <"$T_DIR/evolve.pids")
echo "evolve processes: $PID0 $PID1"
t_start
q() { t_q "SELECT $1 FROM changes WHERE source = 'redirect:checksum' AND kind = 'patch' AND knob = 'hot_fn' AND why LIKE '%to $2,%' ORDER BY id LIMIT 1"; }
oq() { t_q "SELECT $1 FROM outcomes o JOIN changes c ON c.id = o.change_id WHERE c.source = 'redirect:checksum' AND c.why LIKE '%to $2,%' ORDER BY c.id LIMIT 1"; }

check "hot_fn is found hot in the CPU profile and the first trial starts" \
	t_wait_for 60 t_log_has "redirect checksum: change [0-9]+: hot_fn redirected to hot_fn__alt_wrong"
t_log_has "of the target's CPU samples" && grep -o "hot_fn of target evolve ([0-9]*% of the target's CPU samples)" "$T_DIR/daemon.log" | head -1

# (ii) wrong results: rollback_on
check "(ii) wrong: rolled back at once on the error rate" \
	t_wait_for 30 bash -c "[ \"\$(sqlite3 -cmd '.timeout 5000' '$T_DB' \"SELECT state FROM changes WHERE why LIKE '%to hot_fn__alt_wrong,%'\")\" = ROLLED_BACK ]"
check "(ii) its verdict is ROLLBACK on the error rate, with the breach" \
	[ "$(oq "o.verdict || ' ' || json_extract(o.stats, '$.breach.metric')" hot_fn__alt_wrong)" = "ROLLBACK error rate" ]
wrong_id=$(q id hot_fn__alt_wrong)
"$HSC" --socket "$T_SOCK" explain "$wrong_id" >"$T_DIR/explain-wrong.txt" 2>&1
cat "$T_DIR/explain-wrong.txt"
check "(ii) explain names the function, the bytes written and the breach" \
	bash -c "grep -q 'hot_fn' '$T_DIR/explain-wrong.txt' && grep -qE 'breach +error rate' '$T_DIR/explain-wrong.txt' && grep -qE '^ *after +e9' '$T_DIR/explain-wrong.txt'"

# (iii) crash
check "(iii) crash: the trial starts" \
	t_wait_for 30 t_log_has "hot_fn redirected to hot_fn__alt_crash in process"
check "(iii) the canary process crashed with SIGSEGV and the redirect is rolled back" \
	t_wait_for 30 t_log_has "process [0-9]+ crashed \\(SIGSEGV\\) while hot_fn was redirected to hot_fn__alt_crash"
check "(iii) recorded as a failure: ROLLED_BACK, verdict ROLLBACK, the reason names the signal" \
	t_wait_for 5 bash -c "[ \"\$(sqlite3 -cmd '.timeout 5000' '$T_DB' \"SELECT c.state || ' ' || o.verdict FROM changes c JOIN outcomes o ON o.change_id = c.id WHERE c.why LIKE '%to hot_fn__alt_crash,%'\")\" = 'ROLLED_BACK ROLLBACK' ]"
crash_pid=$(q "CAST(substr(why, instr(why, '(process ') + 9) AS INTEGER)" hot_fn__alt_crash)
if [ "$crash_pid" = "$PID0" ]; then other=$PID1; else other=$PID0; fi
echo "crashed: $crash_pid; the other: $other"
check "(iii) the crashed process is restarted through the target's restart command" \
	t_wait_for 20 bash -c "[ \$(wc -l <'$T_DIR/evolve.pids') -ge 3 ] && grep -q '^t=' '$T_DIR/stats-2.log'"
check "(iii) the restart is recorded as a change" \
	t_wait_for 5 t_q_is "SELECT count(*) > 0 FROM changes WHERE source = 'redirect:checksum' AND kind = 'restart'" 1
check "(iii) the other process is unaffected: alive" kill -0 "$other"
if [ "$other" = "$PID0" ]; then ostats=$T_DIR/stats-0.log; else ostats=$T_DIR/stats-1.log; fi
check "(iii) and its requests go on, right" \
	bash -c "tail -n 1 '$ostats' | grep -qE ' calls=[1-9][0-9]* errors=0 '"

# (i) fast: KEEP, promoted
check "(i) fast: the trial starts" t_wait_for 30 t_log_has "hot_fn redirected to hot_fn__alt_fast in process"
check "(i) after its whole canary: KEEP" \
	t_wait_for 60 bash -c "[ \"\$(sqlite3 -cmd '.timeout 5000' '$T_DB' \"SELECT o.verdict FROM outcomes o JOIN changes c ON c.id = o.change_id WHERE c.why LIKE '%to hot_fn__alt_fast,%'\")\" = KEEP ]"
oq "json_extract(o.stats, '$.reason')" hot_fn__alt_fast
check "(i) the statistics hold both arms and the throughput test" \
	[ "$(oq "json_extract(o.stats, '$.samples.canary') >= 10 AND json_extract(o.stats, '$.samples.baseline') >= 10 AND o.stats LIKE '%throughput%'" hot_fn__alt_fast)" = 1 ]
fast_id=$(q id hot_fn__alt_fast)
oq "json_extract(o.stats, '$.function_latency.summary')" hot_fn__alt_fast | sed 's/^/    /'
check "(i) homeostat measured both functions during the canary (uprobe/uretprobe)" \
	[ "$(oq "json_extract(o.stats, '$.function_latency.original.calls') > 0 AND json_extract(o.stats, '$.function_latency.alternative.calls') > 0" hot_fn__alt_fast)" = 1 ]
check "(i) and the alternative's p50 is below the original's" \
	[ "$(oq "json_extract(o.stats, '$.function_latency.alternative.p50_ns') < json_extract(o.stats, '$.function_latency.original.p50_ns')" hot_fn__alt_fast)" = 1 ]
check "(i) promoted to every process of the target" \
	t_wait_for 10 t_log_has "redirect checksum: promoted to process"
sleep 3
"$HSC" --socket "$T_SOCK" redirect list >"$T_DIR/list.txt" 2>&1
cat "$T_DIR/list.txt"
"$HSC" --socket "$T_SOCK" --json redirect list >"$T_DIR/list.json"
nlive=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(1 for r in d["live"] if r["kept"] in (True,"yes",1) and r["alternative"]=="hot_fn__alt_fast"))' "$T_DIR/list.json")
check "(i) redirect list shows hot_fn -> hot_fn__alt_fast kept in the 2 live processes ($nlive)" [ "$nlive" = 2 ]
# the workloads' own clock: mean call latency before the trials and now
before=$(grep '^t=' "$ostats" | head -n 5 | sed 's/.*ns_per_call=\([0-9]*\).*/\1/' | sort -n | sed -n 3p)
after=$(grep '^t=' "$ostats" | tail -n 3 | sed 's/.*ns_per_call=\([0-9]*\).*/\1/' | sort -n | sed -n 2p)
echo "hot_fn call latency of process $other: $before ns before, $after ns with the redirect"
check "(i) the measured call latency drops by half or more ($before -> $after ns)" [ $((after * 2)) -le "$before" ]
check "(i) no wrong result in the redirected processes" \
	bash -c "tail -n 1 '$ostats' | grep -q ' errors=0 ' && tail -n 1 '$T_DIR/stats-2.log' | grep -q ' errors=0 '"
check "the first daemon stops cleanly; the kept redirect stays in the processes" t_stop

# a second daemon on the same memory watches what the first kept
t_start
check "the second daemon watches the kept redirect again (adopted from memory)" \
	t_wait_for 20 t_log_has "redirect checksum: hot_fn -> hot_fn__alt_fast, kept by a previous daemon \\(change $fast_id\\), is in 2 processes: watched again"
check "redirect list shows both processes kept" \
	bash -c "'$HSC' --socket '$T_SOCK' --json redirect list | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if sum(1 for r in d[\"live\"] if r[\"alternative\"]==\"hot_fn__alt_fast\") == 2 else 1)'"
# a redirected process crashes while no trial runs: rolled back in every process at once
kill -SEGV "$other"
check "a crash of process $other rolls the kept redirect back in every process" \
	t_wait_for 20 t_log_has "process $other crashed \\(SIGSEGV\\) while hot_fn was redirected to hot_fn__alt_fast \\(kept by change $fast_id\\): rolled back in every process"
check "no patch is KEPT any more" \
	t_wait_for 10 t_q_is "SELECT count(*) FROM changes WHERE kind = 'patch' AND state = 'KEPT'" 0
# live: not gone and not a zombie (nobody reaps a crashed process whose parent went away)
alive=$(for p in $(cat "$T_DIR/evolve.pids"); do
	[ "$(awk '/^State:/ { print $2 }' "/proc/$p/status" 2>/dev/null)" = S ] ||
		[ "$(awk '/^State:/ { print $2 }' "/proc/$p/status" 2>/dev/null)" = R ] && echo "$p"
done)
check "every byte of hot_fn is restored in every live process ($(echo $alive))" \
	t_text_restored "$EVOLVE" hot_fn $alive

# never twice
"$HSC" --socket "$T_SOCK" redirect apply checksum hot_fn__alt_wrong >/dev/null 2>&1
check "a second daemon refuses wrong: memory says it failed" \
	t_wait_for 20 t_log_has "redirect checksum: hot_fn__alt_wrong not tried: .*change $wrong_id"
"$HSC" --socket "$T_SOCK" redirect apply checksum hot_fn__alt_crash >/dev/null 2>&1
check "and crash" t_wait_for 20 t_log_has "redirect checksum: hot_fn__alt_crash not tried: .*change"
check "no second trial of them was recorded" \
	t_q_is "SELECT count(*) FROM changes WHERE kind = 'patch' AND (why LIKE '%to hot_fn__alt_wrong,%' OR why LIKE '%to hot_fn__alt_crash,%')" 2
check "the second daemon stops cleanly" t_stop
echo "the redirect's log:"
grep -E "redirect checksum|change [0-9]+ (kept|rolled)" "$T_LOG" | sed 's/^/  /'
t_done
