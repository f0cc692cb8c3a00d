#!/usr/bin/env bash
# 0040-daemon-crash.sh - SIGKILL the daemon during a burst of memory-store writes (each
# pause/resume through the control socket is an audit row, acknowledged only after commit).
# After the crash: integrity_check is ok, every acknowledged row is there, and a new daemon
# starts on the same state, replacing the stale pins, and stops cleanly.
. "$(dirname "$0")/lib.sh"

t_config
check "daemon starts" t_start
acks=$T_DIR/acks
for w in 1 2 3 4; do
	( while true; do
		"$HSC" --socket "$T_SOCK" --json pause 2>/dev/null || break
		"$HSC" --socket "$T_SOCK" --json resume 2>/dev/null || break
	done >>"$acks.$w" ) &
	on_exit "kill $! 2>/dev/null"
done
sleep 2
kill -KILL "$T_PID"
wait "$T_PID" 2>/dev/null
T_PID=
sleep 0.3
cat "$acks".* >"$acks"
# Each acknowledged request printed one JSON object holding the audit seq it committed.
python3 -c '
import json, sys
text, dec, i, seqs = open(sys.argv[1]).read(), json.JSONDecoder(), 0, []
while True:
    while i < len(text) and text[i].isspace():
        i += 1
    if i == len(text):
        break
    obj, i = dec.raw_decode(text, i)
    if obj.get("status") == 0 and "result" in obj:
        seqs.append(obj["result"][0]["audit_seq"])
print("\n".join(map(str, seqs)))' "$acks" >"$T_DIR/seqs"
n=$(wc -l <"$T_DIR/seqs")
echo "acknowledged writes before the kill: $n"
check "every acknowledgement parsed" test "$n" -eq "$(grep -c audit_seq "$acks")"
check "burst wrote something before the kill" test "$n" -gt 20
check "integrity_check ok after SIGKILL" test "$(sqlite3 "$T_DB" 'PRAGMA integrity_check')" = ok
sqlite3 "$T_DB" 'select seq from audit' | sort >"$T_DIR/have"
missing=$(sort "$T_DIR/seqs" | comm -23 - "$T_DIR/have" | wc -l)
forged=$( (cat "$T_DIR/seqs"; echo 999999999) | sort | comm -23 - "$T_DIR/have" | wc -l)
check "the comparison sees a forged acknowledgement as missing" test "$forged" -eq 1
check "no acknowledged row lost ($missing missing)" test "$missing" -eq 0
check "stale pins are still there after the kill" test -e "$T_PIN/lifecycle_counts"
check "a new daemon starts on the same state after the crash" t_start
check "it replaced the stale pins" t_log_has 'removed [0-9]+ stale pins'
check "it stops cleanly" t_stop
check "no pin left" test ! -e "$T_PIN"
t_done
