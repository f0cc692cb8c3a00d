#!/usr/bin/env bash
# 0500-redirect-patch.sh - the text-patch actuator (issue 6, mechanism b) on a loaded
# multi-threaded process: 1000 apply/revert cycles end with no crash and every byte restored.
#
# Through tests/tools/patchstress (act_apply / act_verify / act_revert exactly as the daemon
# calls them, both functions resolved in the running process with obs_sym_find), against
# tests/workloads/evolve, whose worker threads call the hot function continuously and check
# every result:
# - plain: hot_fn -> hot_fn__alt_fast, whole instructions at the entry replaced by a jump;
# - pfe: hot_pfe -> hot_pfe__alt_fast, the patchable-function-entry layout (a jump in the NOPs
#   before the entry, a short jump at it);
# - short calls: 64-byte requests and 8 threads on the plain entry, so that threads are often
#   caught at the entry and the actuator must wait for them (retries, never a crash);
# each: patchstress checks after every revert that the bytes around the entry are those of
# before the first apply and that the process is the same, alive; then the workload must still
# answer (its statistics advance) with no wrong result. The revert command given to humans (dd
# into /proc/PID/mem) is run once on a kept patch. Refusals on real code: libc's
# __errno_location starts with a RIP-relative load, rand with a call.
# The workload runs under a name of its own: a daemon of another test may target "evolve".
# hs-asan: no (1000 cycles take a minute; test_patch runs the actuator live under ASan)
. "$(dirname "$0")/lib.sh"

EVOLVE=$HS_TOP/$HS_BUILD/workloads/evolve
STRESS=$HS_TOP/$HS_BUILD/tests/patchstress
for f in "$EVOLVE" "$STRESS"; do
	[ -x "$f" ] || { echo "missing $f: run make check-tests"; exit 1; }
done
cp "$EVOLVE" "$T_DIR/evolve-patch"

# start NAME ARGS...: one workload, its statistics in $T_DIR/NAME.stats, its pid in $T_DIR/NAME.pid
start() {
	local name=$1
	shift
	"$T_DIR/evolve-patch" "$@" -s "$T_DIR/$name.stats" >/dev/null 2>&1 &
	echo $! >"$T_DIR/$name.pid"
	on_exit "kill $! 2>/dev/null"
	t_wait_for 20 grep -q '^t=' "$T_DIR/$name.stats"
}
pid_of() { cat "$T_DIR/$1.pid"; }
# stat NAME KEY: KEY of the last statistics line
stat() { tail -n 1 "$T_DIR/$1.stats" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
# field KEY: KEY of the last result line
field() { tr ' ' '\n' <<<"$RESULT" | sed -n "s/^$1=//p"; }
# stress NAME ARGS...: patchstress on the workload NAME; its result line in RESULT
stress() {
	local name=$1 rc
	shift
	timeout 600 "$STRESS" "$@" >"$T_DIR/out" 2>&1
	rc=$?
	sed 's/^/    /' "$T_DIR/out"
	RESULT=$(grep '^result ' "$T_DIR/out")
	return $rc
}
is() { [ -n "$1" ] && [ "$1" = "$2" ]; }
at_most() { [ -n "$1" ] && [ "$1" -le "$2" ]; }
not() { ! "$@"; }
advancing() { # NAME: the total grows over the next 2.5 s
	local a b
	a=$(stat "$1" total)
	sleep 2.5
	b=$(stat "$1" total)
	[ -n "$a" ] && [ -n "$b" ] && [ "$b" -gt "$a" ]
}

run() { # NAME FUNCTION CYCLES WORKLOAD-ARGS... -- PATCHSTRESS-ARGS...
	local name=$1 fn=$2 cycles=$3 pid
	shift 3
	local wargs=() sargs=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do wargs+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	sargs=("$@")
	start "$name" "${wargs[@]}" || { not_ok "$name: the workload did not start"; return; }
	pid=$(pid_of "$name")
	check "$name: $cycles apply/revert cycles of $fn -> ${fn}__alt_fast with no failure" \
		stress "$name" "${sargs[@]}" "$pid" "$fn" "${fn}__alt_fast" "$cycles"
	check "$name: every patch applied was reverted ($(field applied) of $cycles applied)" \
		is "$(field reverted)" "$(field applied)"
	check "$name: at most 5% of the applies gave up on a thread inside ($(field busy_apply))" \
		at_most "$(field busy_apply)" $((cycles / 20))
	check "$name: every thread of the process was stopped ($(field threads))" \
		is "$(field threads)" "$(ls /proc/"$pid"/task | wc -l)"
	check "$name: the process is alive" kill -0 "$pid"
	check "$name: it still answers" advancing "$name"
	check "$name: no wrong result ($(stat "$name" total_errors) of $(stat "$name" total))" \
		is "$(stat "$name" total_errors)" 0
	echo "  $name pauses: apply median $(field apply_median_us) us max $(field apply_max_us) us," \
		"revert median $(field revert_median_us) us max $(field revert_max_us) us," \
		"$(field threads) threads, $(field retries) stops retried"
}

run plain hot_fn 1000 -t 4 -f plain
check "plain: whole instructions at the entry" \
	grep -q '^patch: [0-9]* bytes at entry+0x0, [0-9a-f]* -> e9' "$T_DIR/out"
run pfe hot_pfe 1000 -t 4 -f pfe
check "pfe: the patchable-entry layout" grep -q 'bytes at entry-0x5 (patchable-entry layout)' \
	"$T_DIR/out"
run short hot_fn 1000 -t 8 -f plain -n 64 -- -w 200

# the revert command given to humans, on a kept patch
PID=$(pid_of plain)
check "a kept patch" stress plain -k "$PID" hot_fn hot_fn__alt_fast
at=$(sed -n 's/^kept at=\(0x[0-9a-f]*\) .*/\1/p' "$T_DIR/out")
len=$(sed -n 's/^kept .* len=\([0-9]*\) .*/\1/p' "$T_DIR/out")
before=$(sed -n 's/^kept .* before=\([0-9a-f]*\) .*/\1/p' "$T_DIR/out")
after=$(sed -n 's/^kept .* after=\([0-9a-f]*\)$/\1/p' "$T_DIR/out")
cmd=$(sed -n 's/^revert_cmd //p' "$T_DIR/out")
bytes() { dd if=/proc/"$PID"/mem bs="$len" count=1 skip=$((at)) iflag=skip_bytes status=none |
	od -An -tx1 | tr -d ' \n'; }
check "the process holds the jump ($after)" is "$(bytes)" "$after"
echo "    $cmd"
check "its revert command runs" sh -c "$cmd"
check "and puts back $before" is "$(bytes)" "$before"
check "the process is alive and answers" advancing plain
check "after it, 20 cycles more restore every byte" stress plain "$PID" hot_fn hot_fn__alt_fast 20

# refusals on real code: nothing is written
check "libc's __errno_location is refused" \
	not stress plain -o libc.so.6 "$PID" __errno_location rand 1
check "naming its RIP-relative operand" \
	grep -q "'mov rax, qword ptr \[rip + 0x[0-9a-f]*\]' at +0x0: a RIP-relative operand" \
	"$T_DIR/out"
check "libc's rand is refused" not stress plain -o libc.so.6 "$PID" rand random 1
check "naming its call" \
	grep -q "'call 0x[0-9a-f]*' at +0x[0-9a-f]*: a call in the bytes" "$T_DIR/out"
check "the process is alive and answers" advancing plain
check "with no wrong result" is "$(stat plain total_errors)" 0
t_done
