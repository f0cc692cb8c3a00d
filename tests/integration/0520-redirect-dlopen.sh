#!/usr/bin/env bash
# 0520-redirect-dlopen.sh - patch libraries (issue 6, item 3): a shared library loaded into a
# running multi-threaded process by a ptrace-driven dlopen() (act_inject_dlopen), while the
# process keeps working.
#
# Through tests/tools/dlinject (dlopen and dlerror resolved in the process with obs_sym_find,
# then act_inject_dlopen_info) against tests/workloads/dlhost, whose main thread blocks in
# read(2) on a FIFO (the thread taken first: its read must restart) while three others compute
# and check, churn malloc, and sleep in clock_nanosleep:
# - the library appears in /proc/PID/maps; the process goes on (its statistics advance, no
#   wrong result, no failed read) and its reader answers a ping written after the injection;
#   no thread is left traced;
# - the same file again: "already loaded", nothing done;
# - refused, nothing done: a copy writable by others, one not owned by root, a relative path;
# - a load that fails (a PIE executable): dlerror()'s message, the process unharmed;
# - the stats thread named by its tid: taken in clock_nanosleep, which goes on through
#   restart_syscall(); its lines keep coming;
# - a constructor that sleeps 400 ms (ALTLIB_SLEEP_MS): two SIGUSR1 sent during the call reach
#   the process's handler twice; a SIGSTOP sent during the call stops the process once the
#   call is over, SIGCONT resumes it; a 100 ms timeout abandons the call, the thread restored;
# - a constructor that faults (ALTLIB_CRASH): the call abandoned, the fault not delivered;
# - 10 freshly started processes, one after the other, one injection each: all loaded by
#   their main thread, alive and answering; the median and maximum time the thread was away
#   are printed.
# The library is copied to root-owned 0644 files under the test's directory (the checkout may
# not be root's).
# hs-asan: yes
. "$(dirname "$0")/lib.sh"

DLHOST=$HS_TOP/$HS_BUILD/workloads/dlhost
ALTLIB=$HS_TOP/$HS_BUILD/workloads/libaltlib.so
TOOL=$HS_TOP/$HS_BUILD/tests/dlinject
for f in "$DLHOST" "$ALTLIB" "$TOOL"; do
	[ -e "$f" ] || { echo "missing $f: run make check-tests"; exit 1; }
done
LIBDIR=$T_DIR/lib
install -d -m 0755 -o root -g root "$LIBDIR"
# lib NAME [MODE [OWNER]]: a copy of the library, its path in $LIBDIR
lib() {
	install -m "${2:-0644}" -o "${3:-root}" -g root "$ALTLIB" "$LIBDIR/$1"
	echo "$LIBDIR/$1"
}

# start NAME [VAR=VALUE...]: one dlhost reading $T_DIR/NAME.fifo, its output in
# $T_DIR/NAME.stats, its pid in $T_DIR/NAME.pid
start() {
	local name=$1
	shift
	mkfifo -m 0600 "$T_DIR/$name.fifo"
	env "$@" "$DLHOST" -p "$T_DIR/$name.fifo" -s "$T_DIR/$name.stats" >/dev/null 2>&1 &
	echo $! >"$T_DIR/$name.pid"
	on_exit "kill -CONT $! 2>/dev/null; kill $! 2>/dev/null"
	t_wait_for 10 grep -qs '^ready ' "$T_DIR/$name.stats"
}
pid_of() { cat "$T_DIR/$1.pid"; }
ready() { sed -n "s/^ready .*\\b$2=\\([0-9]*\\).*/\\1/p" "$T_DIR/$1.stats"; } # NAME THREAD
# stat NAME KEY: KEY of the last statistics line
stat() { grep '^t=' "$T_DIR/$1.stats" | tail -n 1 | tr ' ' '\n' | sed -n "s/^$2=//p"; }
lines() { grep -c '^t=' "$T_DIR/$1.stats"; }
# inject NAME PATH [ARGS...]: dlinject on the workload NAME (on its thread $TID when set);
# its result line in RESULT, its note or reason in WHY
inject() {
	local name=$1 path=$2 rc
	shift 2
	timeout 60 "$TOOL" "$@" "${TID:-$(pid_of "$name")}" "$path" >"$T_DIR/out" 2>&1
	rc=$?
	sed 's/^/    /' "$T_DIR/out"
	RESULT=$(grep '^result ' "$T_DIR/out")
	WHY=$(sed -n 's/^why //p' "$T_DIR/out")
	return $rc
}
field() { tr ' ' '\n' <<<"$RESULT" | sed -n "s/^$1=//p"; }
is() { [ -n "$1" ] && [ "$1" = "$2" ]; }
not() { ! "$@"; }
has() { grep -qF -- "$2" <<<"$1"; } # TEXT SUBSTRING
mapped() { grep -qF " $2" "/proc/$(pid_of "$1")/maps"; } # NAME PATH
untraced() { # NAME: no thread of it has a tracer
	! grep -h '^TracerPid:' /proc/"$(pid_of "$1")"/task/*/status | grep -qv '[[:space:]]0$'
}
more_lines() { [ "$(lines "$1")" -ge "$2" ]; } # NAME N: N statistics lines at least
advancing() { # NAME: a new statistics line, with more calls and allocations
	local snap n a b
	snap=$(grep '^t=' "$T_DIR/$1.stats") # one snapshot: the count and the last line agree
	n=$(grep -c . <<<"$snap")
	a=$(tail -n 1 <<<"$snap" | tr ' ' '\n' | sed -n 's/^total_calls=//p')
	b=$(tail -n 1 <<<"$snap" | tr ' ' '\n' | sed -n 's/^total_allocs=//p')
	t_wait_for 4 more_lines "$1" $((n + 1)) &&
		[ "$(stat "$1" total_calls)" -gt "${a:-0}" ] && [ "$(stat "$1" total_allocs)" -gt "${b:-0}" ]
}
ping_() { # NAME N: the reader answers "pong N"
	timeout 5 sh -c "echo 'ping $2' >'$T_DIR/$1.fifo'" &&
		t_wait_for 5 grep -qx "pong $2" "$T_DIR/$1.stats"
}
healthy() { # NAME N: alive, answering, no error, not traced
	kill -0 "$(pid_of "$1")" || { echo "    $1 is gone"; return 1; }
	ping_ "$1" "$2" || { echo "    $1 does not answer ping $2"; return 1; }
	advancing "$1" || { echo "    $1 does not advance: $(tail -n 1 "$T_DIR/$1.stats")"; return 1; }
	is "$(stat "$1" total_errors)" 0 || { echo "    $1 made errors"; return 1; }
	untraced "$1" || { echo "    a thread of $1 is traced"; return 1; }
}

# ---- one process, one library ----
start main || { not_ok "dlhost did not start"; t_done; }
PID=$(pid_of main)
LIB=$(lib libaltlib.so)
check "the library is loaded" inject main "$LIB"
check "a handle is returned ($(field handle))" not is "$(field handle)" 0x0
check "by the main thread, blocked in read(2) (tid $(field tid), syscall $(field syscall))" \
	is "$(field tid):$(field syscall)" "$PID:0"
check "the library is in /proc/PID/maps" mapped main "$LIB"
check "the process goes on: its reader answers, no error, no thread traced" healthy main 1
echo "  away $(field away_us) us, dlopen $(field call_us) us"

check "the same file again is done already" inject main "$LIB"
check "it says so" is "$WHY" "already loaded"
check "with no handle and no thread stopped" is "$(field handle):$(field stops)" "0x0:0"

# ---- refusals: nothing done ----
BAD=$(lib writable.so 0666)
check "a library writable by others is refused" not inject main "$BAD"
check "with the reason" is "$WHY" "library '$BAD' is writable by group or others (mode 0666), refusing: a library loaded into a service runs with its privileges"
NOBODY=$(lib nobody.so 0644 nobody)
check "a library not owned by root is refused" not inject main "$NOBODY"
check "with the reason" has "$WHY" "library '$NOBODY' is not owned by root (owner uid"
check "a relative path is refused" not inject main lib/libaltlib.so
check "with the reason" is "$WHY" "library path 'lib/libaltlib.so' must be absolute"
check "nothing of them was loaded, no thread stopped" \
	not grep -qE 'writable.so|nobody.so' /proc/"$PID"/maps

# ---- a load that fails ----
install -m 0644 -o root -g root "$DLHOST" "$LIBDIR/pie"
check "a PIE executable does not load" not inject main "$LIBDIR/pie"
check "dlerror() says why" has "$WHY" "cannot dynamically load position-independent executable"
check "the process is unharmed" healthy main 2

# ---- the stats thread, in clock_nanosleep ----
STATS_TID=$(ready main stats)
n=$(lines main)
check "a library loaded through the stats thread's tid" eval 'TID=$STATS_TID inject main "$(lib stats.so)"'
check "by that thread ($(field tid))" is "$(field tid)" "$STATS_TID"
check "taken in clock_nanosleep(2) ($(field syscall))" is "$(field syscall)" 230
check "its lines keep coming" t_wait_for 4 more_lines main $((n + 2))
check "none late" is "$(stat main late)" 0
check "the process is unharmed" healthy main 3

# ---- a slow constructor: signals, a stop, a timeout ----
start slow ALTLIB_SLEEP_MS=400 || not_ok "the slow dlhost did not start"
SLOW=$(pid_of slow)
# while the library is mapped, its constructor sleeping: the call is under way
during() { # PATH COMMAND...
	local path=$1
	shift
	t_wait_for 20 mapped slow "$path" && "$@"
}
during "$LIBDIR/slow1.so" sh -c "kill -USR1 $SLOW; sleep 0.1; kill -USR1 $SLOW" &
sender=$!
check "a slow load, two SIGUSR1 meanwhile" inject slow "$(lib slow1.so)"
wait $sender
check "the call took the 400 ms ($(field call_us) us)" \
	awk -v v="$(field call_us)" 'BEGIN { exit !(v >= 400000) }'
check "the signals arrived during the call ($(field signals))" is "$(field signals)" 2
usr1_twice() { is "$(stat slow usr1)" 2; }
check "the handler ran twice" t_wait_for 3 usr1_twice
check "the process is unharmed" healthy slow 1
during "$LIBDIR/slow2.so" kill -STOP "$SLOW" &
sender=$!
check "a slow load, SIGSTOP meanwhile" inject slow "$(lib slow2.so)"
wait $sender
stopped() { is "$(cut -d' ' -f3 "/proc/$SLOW/stat")" T; }
check "the process is stopped after the call" t_wait_for 3 stopped
kill -CONT "$SLOW"
check "and SIGCONT resumes it" healthy slow 2
check "a 100 ms timeout abandons the call" not inject slow "$(lib slow3.so)" -t 100
check "with the reason" has "$WHY" "did not return within 100 ms: abandoned, the thread restored"
check "the process is unharmed" healthy slow 3

# ---- a constructor that faults ----
start crash ALTLIB_CRASH=1 || not_ok "the crashing dlhost did not start"
check "a library that faults while it loads" not inject crash "$(lib crash.so)"
check "the call is abandoned" has "$WHY" "faulted: signal 11"
check "the fault is not delivered: the process is unharmed" healthy crash 1

# ---- 10 fresh processes, one after the other, alone on the host's CPUs ----
for name in main slow crash; do kill "$(pid_of $name)" 2>/dev/null; done
AWAY=()
bad=0
for i in $(seq 10); do
	start "p$i" || { not_ok "dlhost p$i did not start"; continue; }
	if inject "p$i" "$LIB" && mapped "p$i" "$LIB" && [ "$(field tid)" = "$(pid_of "p$i")" ]; then
		AWAY+=("$(field away_us)")
	else
		echo "    p$i: not loaded, or not by its main thread"
	fi
	healthy "p$i" 1 || bad=$((bad + 1))
	kill "$(pid_of "p$i")"
done
check "loaded into all 10 by their main thread" is "${#AWAY[@]}" 10
check "all 10 alive, answering, without error, untraced" is "$bad" 0
sorted=$(printf '%s\n' "${AWAY[@]}" | sort -g)
echo "  time away over ${#AWAY[@]} injections: median $(sed -n 5p <<<"$sorted")-$(sed -n 6p <<<"$sorted") us," \
	"max $(tail -n 1 <<<"$sorted") us ($(nproc) CPUs, 2 of them kept busy by each dlhost)"
t_done
