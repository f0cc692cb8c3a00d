#!/usr/bin/env bash
# 0150-tracefs.sh - every collector runs with and without tracefs mounted (none of them may
# need it: raw_tp, tp_btf, perf_event and uprobes through the perf PMU). The test toggles
# the mount and puts it back as it found it.
. "$(dirname "$0")/lib.sh"

TRACEFS=/sys/kernel/tracing
mounted() { grep -q " $TRACEFS tracefs " /proc/self/mounts; }
was_mounted=no
mounted && was_mounted=yes
restore() {
	if [ "$was_mounted" = yes ] && ! mounted; then mount -t tracefs nodev "$TRACEFS"; fi
	if [ "$was_mounted" = no ] && mounted; then umount "$TRACEFS"; fi
}
on_exit restore
t_config

all_running() {
	"$HSC" --socket "$T_SOCK" status --json | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
bad = [c["collector"] + ": " + c["state"] for c in d["collectors"] if c["state"] != "running"]
print("\n".join(bad))
sys.exit(1 if bad else 0)'
}

for state in first second; do
	if mounted; then label="with tracefs"; else label="without tracefs"; fi
	check "daemon starts $label" t_start
	check "every collector runs $label" all_running
	check "daemon stops cleanly $label" t_stop
	# Toggle for the second round.
	if mounted; then umount "$TRACEFS"; else mount -t tracefs nodev "$TRACEFS" 2>/dev/null || skip_all "cannot mount tracefs here"; fi
done
t_done
