#!/usr/bin/env bash
# 0030-daemon.sh - the daemon's life: start as root, answer the CLI, keep its configuration
# when a bad one is sent on reload, take a good one, refuse a second daemon on the same
# state, refuse to run unprivileged, stop cleanly with every BPF object detached and unpinned.
# hs-asan: yes
. "$(dirname "$0")/lib.sh"

t_config
check "daemon starts and answers status" t_start --tick 200
out=$("$HSC" --socket "$T_SOCK" status 2>&1)
echo "$out" | head -30
check "status shows the mode" grep -q 'enforce' <<<"$out"
check "status lists the lifecycle collector as running" bash -c "'$HSC' --socket '$T_SOCK' status --json |
	python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); assert {\"collector\": \"lifecycle\", \"state\": \"running\"}.items() <= [c for c in d[\"collectors\"] if c[\"collector\"] == \"lifecycle\"][0].items()'"
json=$("$HSC" --socket "$T_SOCK" status --json)
check "status --json is valid JSON" python3 -c 'import json,sys; json.loads(sys.stdin.read())' <<<"$json"
check "status --json holds the tick period" python3 -c '
import json,sys; d=json.loads(sys.stdin.read()); assert d["daemon"][0]["tick_ms"] == 200, d' <<<"$json"

# Pinned objects: typed values through bpftool, while the daemon runs.
check "lifecycle map is pinned with BTF" bash -c "bpftool map dump pinned '$T_PIN/lifecycle_counts' | grep -q execs"
check "lifecycle programs are pinned" test -e "$T_PIN/lifecycle_exec"
prog_ids=$(for p in "$T_PIN"/*; do bpftool prog show pinned "$p" 2>/dev/null | sed -n 's/^\([0-9]*\):.*/\1/p'; done)
echo "our program ids: $(echo $prog_ids)"
check "bpftool shows the pinned programs" test -n "$prog_ids"
( for i in $(seq 200); do /bin/true; done ) &
loop=$!
sleep 0.6
check "status counts execs on the host (real BPF)" bash -c "'$HSC' --socket '$T_SOCK' status --json | python3 -c '
import json,sys; d=json.loads(sys.stdin.read()); assert d[\"targets\"][0][\"execs\"] > 0, d'"
wait "$loop"

# A second daemon on the same state directory is refused, and the first one goes on.
"$HSD" --foreground --policy "$T_DIR/etc/policy.yaml" --runbooks "$T_DIR/etc/remediations" \
	--db "$T_DB" --socket "$T_DIR/other.sock" --pin-dir "$T_PIN-2" >"$T_DIR/second.log" 2>&1
rc=$?
on_exit "rm -rf '$T_PIN-2'"
check "second daemon on the same state directory exits 1" test $rc -eq 1
check "second daemon says why" grep -q "is in use by another homeostatd (pid $T_PID)" "$T_DIR/second.log"
check "first daemon still answers" "$HSC" --socket "$T_SOCK" status

# Without privileges the daemon refuses to run, with a clear message.
setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all "$HSD" --foreground \
	--policy "$T_DIR/etc/policy.yaml" --db "$T_DIR/nobody/memory.db" >"$T_DIR/nobody.log" 2>&1
rc=$?
check "unprivileged daemon exits 1" test $rc -eq 1
check "unprivileged daemon says it must run as root" grep -q 'must run as root' "$T_DIR/nobody.log"

# A bad policy on SIGHUP is refused with path:line:col and the running one stays.
cp "$T_DIR/etc/policy.yaml" "$T_DIR/good.yaml"
printf 'mode: sometimes\nbudgets:\n  changes_per_hour: -3\n' >"$T_DIR/etc/policy.yaml"
kill -HUP "$T_PID"
sleep 0.5
check "daemon survives a bad reload" t_alive
check "reload errors carry path:line:col" t_log_has "$T_DIR/etc/policy.yaml:1:7: "
check "reload refusal is logged" t_log_has 'configuration reload refused'
out=$("$HSC" --socket "$T_SOCK" status 2>&1)
check "status still shows the old mode" grep -q 'enforce' <<<"$out"
check "status shows the refused reload" grep -qi 'refused' <<<"$out"

# A good one is taken.
sed 's/^mode: enforce/mode: observe/' "$T_DIR/good.yaml" >"$T_DIR/etc/policy.yaml"
kill -HUP "$T_PID"
sleep 0.5
out=$("$HSC" --socket "$T_SOCK" status 2>&1)
check "good reload takes the new mode" grep -q 'observe' <<<"$out"

# pause and resume are recorded in the audit trail.
check "pause answers" "$HSC" --socket "$T_SOCK" pause
check "status shows paused" bash -c "'$HSC' --socket '$T_SOCK' status | grep -qi 'paused.*yes'"
check "resume answers" "$HSC" --socket "$T_SOCK" resume
check "history answers" "$HSC" --socket "$T_SOCK" history
check "approve of an unknown id fails with exit 1" bash -c "'$HSC' --socket '$T_SOCK' approve 999999; test \$? -eq 1"

# Clean stop: exit 0, no pin left, no program of ours left attached.
check "daemon stops cleanly on SIGTERM" t_stop
check "pin directory removed" test ! -e "$T_PIN"
# The kernel frees programs after an RCU grace period: give it up to 3 s.
progs_gone() {
	local id i
	for i in $(seq 30); do
		for id in $prog_ids; do bpftool prog show id "$id" >/dev/null 2>&1 && break; done
		bpftool prog show id "$id" >/dev/null 2>&1 || return 0
		sleep 0.1
	done
	return 1
}
check "every program we loaded is gone" progs_gone
check "socket removed" test ! -e "$T_SOCK"
check "CLI says the daemon is not running" bash -c "'$HSC' --socket '$T_SOCK' status 2>&1 | grep -q 'not running'"
check "audit trail holds start, reload_refused, reload, pause, resume, stop" bash -c "
	test \"\$(sqlite3 '$T_DB' 'select group_concat(event, \",\") from (select event from audit order by seq)')\" = \
	'start,reload_refused,reload,pause,resume,stop'"
t_done
