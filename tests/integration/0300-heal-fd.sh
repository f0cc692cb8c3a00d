#!/usr/bin/env bash
# 0300-heal-fd.sh - descriptor exhaustion is healed under the default policy, explained,
# reversible, and reconciled after kill -9.
#
# fdhog lowers its own soft RLIMIT_NOFILE to 64 and wants 100 descriptors: its opens fail with
# EMFILE until someone raises the limit. Under policies/default.yaml and remediations/, the
# fd-exhaustion runbook must raise the soft limit automatically (class auto) within 3 ticks of
# the first EMFILE, verify that the errors stopped and keep the change; history explains it
# (why, before -> after, verdict, the revert command) and `homeostat rollback` puts the old
# limit back. Then a daemon killed with SIGKILL while a change is still being verified: the
# next daemon reverts it at start, and memory does not hold that interruption against the fix.
# hs-asan: yes
. "$(dirname "$0")/lib.sh"

FDHOG=$HS_TOP/$HS_BUILD/workloads/fdhog
[ -x "$FDHOG" ] || { echo "missing $FDHOG: run make check-tests"; exit 1; }
soft_limit() { awk '/^Max open files/ { print $4 }' "/proc/$1/limits"; }
limit_is() { [ "$(soft_limit "$1")" = "$2" ]; }
field() { awk -v k="$1" '$1 == k { print $2 }' "$2" | head -n 1; }
start_fdhog() { # log
	"$FDHOG" --soft 64 --want 100 >"$1" 2>&1 &
	FDHOG_PID=$!
	on_exit "kill $FDHOG_PID 2>/dev/null"
}

t_config
t_start
sleep 6 # the detect window (5 s) needs a tick before it starts

start_fdhog "$T_DIR/fd1.log"
check "fdhog gets its descriptors after homeostat raises its limit" \
	t_wait_for 20 grep -q '^satisfied' "$T_DIR/fd1.log"
first=$(field first_emfile "$T_DIR/fd1.log")
id=$(t_q "SELECT id FROM changes WHERE kind = 'rlimit' ORDER BY id LIMIT 1")
acted=$(t_q "SELECT acted_at FROM changes WHERE id = ${id:-0}")
echo "first EMFILE at $first, change $id acted at $acted: $((${acted:-0} - ${first:-0})) ms"
check "the change was made within 3 ticks of the first EMFILE" \
	[ -n "$acted" ] && [ $((acted - first)) -ge 0 ] && [ $((acted - first)) -le 3000 ]
check "it raised the soft limit to 128 (factor 2), hard limit untouched" \
	[ "$(soft_limit "$FDHOG_PID")" = 128 ]
check "the change is verified and kept" t_wait_for 20 t_q_is "SELECT state FROM changes WHERE id = $id" KEPT
"$HSC" --socket "$T_SOCK" history >"$T_DIR/history.txt"
cat "$T_DIR/history.txt"
"$HSC" --socket "$T_SOCK" history --json >"$T_DIR/history.json"
check "history explains it: why, before -> after, verdict, revert command" python3 - "$T_DIR/history.json" "$FDHOG_PID" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
c = [r for r in d["history"] if r["kind"] == "rlimit"][0]
assert c["knob"] == "RLIMIT_NOFILE" and c["state"] == "KEPT" and c["verdict"] == "KEEP", c
assert c["before"].startswith("64:") and c["after"].startswith("128:"), c
assert "EMFILE" in c["why"] and "fdhog" in c["why"], c["why"]
assert c["revert"].startswith("prlimit --pid %s --nofile=64:" % sys.argv[2]), c["revert"]
assert json.loads(c["stats"])["conditions"][0]["holds"] is True, c["stats"]
e = [r for r in d["episodes"] if r["runbook"] == "fd-exhaustion"][0]
assert e["state"] == "RESOLVED" and e["target"] == "other", e
assert "fd_table" in e["summary"], e["summary"]
PY
check "the fd table diagnosis is stored compressed and names /dev/null" python3 - "$T_DB" <<'PY'
import sqlite3, sys, zlib
db = sqlite3.connect(sys.argv[1])
kind, raw, data = db.execute("SELECT kind, raw_size, data FROM diagnoses ORDER BY id LIMIT 1").fetchone()
text = zlib.decompress(data).decode()
assert kind == "fd_table" and len(text) == raw and "/dev/null" in text and "socket" in text, text
PY
check "the audit trail has the episode and the change" \
	[ "$(t_q "SELECT count(*) FROM audit WHERE event IN ('episode.open', 'diagnosis.add', 'change.intent', 'change.applied', 'change.kept', 'episode.resolved')")" -ge 6 ]

"$HSC" --socket "$T_SOCK" rollback "$id" >"$T_DIR/rb.txt" 2>&1
rc=$?
cat "$T_DIR/rb.txt"
check "homeostat rollback $id exits 0" [ "$rc" -eq 0 ]
check "the soft limit is 64 again" [ "$(soft_limit "$FDHOG_PID")" = 64 ]
check "the change is ROLLED_BACK" [ "$(t_q "SELECT state FROM changes WHERE id = $id")" = ROLLED_BACK ]
"$HSC" --socket "$T_SOCK" rollback "$id" >"$T_DIR/rb2.txt" 2>&1
rc=$?
check "a second rollback is refused (exit 1): $(cat "$T_DIR/rb2.txt")" [ $rc -eq 1 ]
kill "$FDHOG_PID"
wait "$FDHOG_PID" 2>/dev/null
check "the daemon stops cleanly" t_stop

# kill -9 while the change is under verification: the next daemon reverts it.
T_DB=$T_DIR/state2/memory.db
t_start
sleep 6
start_fdhog "$T_DIR/fd2.log"
check "a second change is applied" t_wait_for 20 t_q_is "SELECT group_concat(state) FROM changes WHERE kind = 'rlimit'" APPLIED
check "fdhog #2 has 128" [ "$(soft_limit "$FDHOG_PID")" = 128 ]
kill -KILL "$T_PID"
wait "$T_PID" 2>/dev/null
T_PID=
t_start
check "the restarted daemon reverted the unconcluded change" t_wait_for 10 limit_is "$FDHOG_PID" 64
check "recorded as ROLLED_BACK, interrupted" \
	[ "$(t_q "SELECT c.state || ' ' || substr(o.failure_reason, 1, 12) FROM changes c JOIN outcomes o ON o.change_id = c.id WHERE c.kind = 'rlimit'")" = "ROLLED_BACK interrupted:" ]
check "the episode of the killed daemon is ABORTED" \
	[ "$(t_q "SELECT state FROM episodes ORDER BY id LIMIT 1")" = ABORTED ]
kill "$FDHOG_PID"
wait "$FDHOG_PID" 2>/dev/null
sleep 5 # a full detect window of the new daemon
start_fdhog "$T_DIR/fd3.log"
check "the same fix is made again for a new process (an interruption is not a failure)" \
	t_wait_for 20 grep -q '^satisfied' "$T_DIR/fd3.log"
kill "$FDHOG_PID"
wait "$FDHOG_PID" 2>/dev/null
check "the daemon stops cleanly" t_stop
check "nothing was logged at error level" bash -c "! grep -E ' (err|crit|alert) ' '$T_LOG'"
t_done
