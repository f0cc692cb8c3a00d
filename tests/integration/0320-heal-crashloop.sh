#!/usr/bin/env bash
# 0320-heal-crashloop.sh - a crash loop is diagnosed and reported, and homeostat backs off.
#
# supervise restarts crasher whenever it dies; crasher spins in crash_soon_work() for 1.5 s
# and dies of SIGSEGV. (Processes that live less than a tick can be missed by the crash
# report's CPU profile, which follows the target's members tick by tick; their signals are
# counted all the same.) The crash-loop runbook (remediations/) must open an episode for the
# target, store a crash report that names SIGSEGV and the function the processes died in
# (profiled host-wide and symbolized from maps read while they lived), alert once, and change nothing: the
# supervisor keeps restarting it (homeostat never fights the service manager) and no change
# is recorded. Core dumps are off for the workload.
# hs-asan: yes
. "$(dirname "$0")/lib.sh"

SUPERVISE=$HS_TOP/$HS_BUILD/workloads/supervise
CRASHER=$HS_TOP/$HS_BUILD/workloads/crasher
[ -x "$SUPERVISE" ] && [ -x "$CRASHER" ] || { echo "missing workloads: run make check-tests"; exit 1; }

t_config
t_add_target crashy comm crasher
t_start
sleep 2
(ulimit -c 0; exec "$SUPERVISE" --delay 200 -- "$CRASHER" --after 1500 --signal SEGV) \
	>"$T_DIR/supervise.log" 2>&1 &
SUP=$!
on_exit "kill $SUP 2>/dev/null; wait $SUP 2>/dev/null"

check "an episode opens for the crash loop" \
	t_wait_for 30 t_q_is "SELECT runbook || ' ' || target FROM episodes WHERE runbook = 'crash-loop'" "crash-loop crashy"
check "the episode ends: a human was alerted" \
	t_wait_for 15 t_q_is "SELECT state FROM episodes WHERE runbook = 'crash-loop'" UNRESOLVED
check "the alert is in the log" t_log_has 'ALERT runbook crash-loop on crashy'
check "the crash report names SIGSEGV" \
	t_q_is "SELECT kind || ': ' || (summary LIKE '%SIGSEGV%') FROM diagnoses" "crash_report: 1"
check "and the function the dead processes spent their CPU in" python3 - "$T_DB" <<'PY'
import sqlite3, sys, zlib
db = sqlite3.connect(sys.argv[1])
text = zlib.decompress(db.execute("SELECT data FROM diagnoses").fetchone()[0]).decode()
top = [l for l in text.splitlines() if l.strip().endswith("(crasher)")]
assert top and "crash_soon_work" in top[0], text
PY
t_q "SELECT summary FROM diagnoses"
python3 - "$T_DB" <<'PY'
import sqlite3, sys, zlib
db = sqlite3.connect(sys.argv[1])
for kind, data in db.execute("SELECT kind, data FROM diagnoses"):
    print("--- %s\n%s" % (kind, zlib.decompress(data).decode()))
PY
starts_then=$(grep -c '^start' "$T_DIR/supervise.log")
sleep 10
starts_now=$(grep -c '^start' "$T_DIR/supervise.log")
check "the supervisor keeps restarting it ($starts_then, then $starts_now starts)" [ "$starts_now" -gt "$starts_then" ]
check "no change was proposed or made" t_q_is "SELECT count(*) FROM changes" 0
check "one alert only while the loop goes on (cooldown)" [ "$(grep -c 'ALERT runbook crash-loop' "$T_LOG")" -eq 1 ]
check "one episode only" t_q_is "SELECT count(*) FROM episodes WHERE runbook = 'crash-loop'" 1
"$HSC" --socket "$T_SOCK" history
kill "$SUP"
wait "$SUP" 2>/dev/null
check "the daemon stops cleanly" t_stop
t_done
