#!/usr/bin/env bash
# bench/heal_fd.sh - detect -> remediate latency of the descriptor-exhaustion runbook.
#
# Each run starts homeostatd (repo policy and runbooks, its own database, tick 1 s), lets the
# detection window fill, then starts fdhog (soft RLIMIT_NOFILE 64, wants 100 descriptors).
# Three times are taken on one clock (CLOCK_REALTIME, ms):
#   first   fdhog's first EMFILE
#   acted   the change's INTENT in memory (the write-ahead point just before prlimit)
#   healed  fdhog holds its 100 descriptors (it saw the raised limit)
# and the verify time (the change KEPT, needing 5 s without errors). fdhog starts at a random
# phase of the tick: the detection waits for the next tick, so acted-first spreads over 0..1 s. It prints each run and
# the medians of RUNS runs (default 7). It measures; it never fails on a time.
set -u
cd "$(dirname "$0")/.." || exit 1
RUNS=${RUNS:-7}
HSD=build/homeostatd
FDHOG=build/workloads/fdhog
[ "$(id -u)" -eq 0 ] || { echo "heal_fd: needs root, skipped"; exit 0; }
[ -x "$HSD" ] && [ -x "$FDHOG" ] || { echo "heal_fd: run make first"; exit 1; }
D=$(mktemp -d /tmp/hs-bench-heal.XXXXXX)
trap 'kill $DPID $FPID 2>/dev/null; rm -rf "$D" /sys/fs/bpf/hs-bench-heal-$$' EXIT
mkdir -p "$D/etc/rb" && cp policies/default.yaml "$D/etc/policy.yaml" && cp remediations/*.yaml "$D/etc/rb/"
chmod -R go-w "$D/etc"
DPID= FPID=
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : "-") }'; }

printf '%4s %14s %14s %14s\n' run "acted-first" "healed-first" "kept-acted"
for i in $(seq "$RUNS"); do
	db=$D/db$i/memory.db
	"$HSD" --foreground --policy "$D/etc/policy.yaml" --runbooks "$D/etc/rb" --db "$db" \
		--socket "$D/sock$i" --pin-dir /sys/fs/bpf/hs-bench-heal-$$ >"$D/log$i" 2>&1 &
	DPID=$!
	sleep "7.$((RANDOM % 10))" # a random phase against the tick
	"$FDHOG" --soft 64 --want 100 >"$D/fd$i" 2>&1 &
	FPID=$!
	for _ in $(seq 300); do
		[ "$(sqlite3 "$db" "SELECT state FROM changes" 2>/dev/null)" = KEPT ] && break
		sleep 0.1
	done
	first=$(awk '$1 == "first_emfile" { print $2 }' "$D/fd$i")
	healed=$(awk '$1 == "satisfied" { print $2 }' "$D/fd$i")
	acted=$(sqlite3 "$db" "SELECT acted_at FROM changes")
	kept=$(sqlite3 "$db" "SELECT max(at) FROM audit WHERE event = 'change.kept'")
	kill "$FPID" 2>/dev/null
	wait "$FPID" 2>/dev/null
	kill "$DPID"
	wait "$DPID" 2>/dev/null
	DPID= FPID=
	if [ -z "$first" ] || [ -z "$acted" ] || [ -z "$healed" ] || [ -z "$kept" ]; then
		echo "run $i: incomplete (first '$first' acted '$acted' healed '$healed' kept '$kept')"
		continue
	fi
	printf '%4d %11d ms %11d ms %11d ms\n' "$i" $((acted - first)) $((healed - first)) $((kept - acted))
	echo "$((acted - first)) $((healed - first)) $((kept - acted))" >>"$D/results"
done
[ -s "$D/results" ] || { echo "heal_fd: no complete run"; exit 1; }
printf '%4s %11s ms %11s ms %11s ms   (medians of %d runs; tick 1000 ms)\n' median \
	"$(awk '{ print $1 }' "$D/results" | median)" "$(awk '{ print $2 }' "$D/results" | median)" \
	"$(awk '{ print $3 }' "$D/results" | median)" "$(wc -l <"$D/results")"
