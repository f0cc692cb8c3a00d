# tests/integration/lib.sh - shared by the integration scripts (sourced, not run).
#
# Gives each test its own state directory, socket and BPF pin directory, so that a test never
# touches /etc, /var/lib or /run, and a trap that stops what the test started and removes
# what it made, even on failure. Counts checks and prints "N passed, N failed" at the end.

set -u
HS_BUILD=${HS_BUILD:-build}
HS_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$HS_TOP" || exit 1
HSD=$HS_TOP/$HS_BUILD/homeostatd
HSC=$HS_TOP/$HS_BUILD/homeostat
T_PASSED=0
T_FAILED=0
T_DIR=$(mktemp -d /tmp/hs-test.XXXXXX)
chmod 0755 "$T_DIR"
T_PIN=/sys/fs/bpf/homeostat-test-$$
T_SOCK=$T_DIR/control.sock
T_DB=$T_DIR/state/memory.db
T_LOG=$T_DIR/daemon.log
T_PID=
T_CLEANUPS=()
# Sanitized builds: fail on any report, and keep LeakSanitizer quiet about nothing.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1:exitcode=66}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

ok() { T_PASSED=$((T_PASSED + 1)); echo "ok - $*"; }
not_ok() { T_FAILED=$((T_FAILED + 1)); echo "not ok - $*"; }
check() { # description command...
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}
skip_all() { echo "skipped: $*"; exit 77; }
on_exit() { T_CLEANUPS+=("$*"); }

t_cleanup() {
	local i
	if [ -n "$T_PID" ] && kill -0 "$T_PID" 2>/dev/null; then
		kill -TERM "$T_PID" 2>/dev/null
		for i in $(seq 50); do kill -0 "$T_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$T_PID" 2>/dev/null
	fi
	for ((i = ${#T_CLEANUPS[@]} - 1; i >= 0; i--)); do eval "${T_CLEANUPS[$i]}"; done
	rm -rf "$T_PIN" 2>/dev/null
	rm -rf "$T_DIR"
}
trap t_cleanup EXIT

t_done() {
	# On failure, what the daemon said last: the test directory is gone afterwards.
	if [ "$T_FAILED" -gt 0 ] && [ -s "$T_LOG" ]; then
		echo "daemon log, last 30 lines:"
		tail -n 30 "$T_LOG" | sed 's/^/  /'
	fi
	echo "$T_PASSED passed, $T_FAILED failed"
	[ "$T_FAILED" -eq 0 ]
	exit $?
}

[ "$(id -u)" -eq 0 ] || skip_all "needs root"
[ -x "$HSD" ] && [ -x "$HSC" ] || { echo "missing $HSD or $HSC: run make"; exit 1; }

# A copy of the repo's policy and runbooks that the test may rewrite.
t_config() {
	mkdir -p "$T_DIR/etc/remediations"
	cp "$HS_TOP/policies/default.yaml" "$T_DIR/etc/policy.yaml"
	cp "$HS_TOP"/remediations/*.yaml "$T_DIR/etc/remediations/"
	chmod 0755 "$T_DIR/etc" "$T_DIR/etc/remediations"
	chmod 0644 "$T_DIR/etc/policy.yaml" "$T_DIR"/etc/remediations/*.yaml
}

# Starts the daemon in the foreground, in the background of this shell; waits for the socket.
t_start() {
	"$HSD" --foreground --policy "$T_DIR/etc/policy.yaml" --runbooks "$T_DIR/etc/remediations" \
		--db "$T_DB" --socket "$T_SOCK" --pin-dir "$T_PIN" "$@" >>"$T_LOG" 2>&1 &
	T_PID=$!
	t_wait_socket
}

t_wait_socket() {
	local i
	for i in $(seq 100); do
		if "$HSC" --socket "$T_SOCK" status >/dev/null 2>&1; then return 0; fi
		kill -0 "$T_PID" 2>/dev/null || { echo "daemon died:"; cat "$T_LOG"; return 1; }
		sleep 0.1
	done
	echo "daemon did not answer within 10 s:"
	cat "$T_LOG"
	return 1
}

# Stops the daemon with SIGTERM and returns its exit status.
t_stop() {
	local rc
	kill -TERM "$T_PID"
	wait "$T_PID"
	rc=$?
	T_PID=
	return $rc
}

t_alive() { kill -0 "$T_PID" 2>/dev/null; }
t_log_has() { grep -qE -- "$1" "$T_LOG"; }

# Adds a target to the test policy: t_add_target NAME KEY VALUE [KEY VALUE...]
t_add_target() {
	local name=$1
	shift
	sed -i "s/^targets:\$/targets:\n  - name: $name\n    __SEL__/" "$T_DIR/etc/policy.yaml"
	local sel=""
	while [ $# -ge 2 ]; do sel="$sel$1: $2\n    "; shift 2; done
	sed -i "s|__SEL__|${sel%\\n    }|" "$T_DIR/etc/policy.yaml"
}

# Prints one field of one target from `homeostat status --json`.
t_target_field() { # target field
	"$HSC" --socket "$T_SOCK" status --json | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
for row in d.get("targets", []):
    if row["target"] == sys.argv[1]:
        v = row[sys.argv[2]]
        print("" if v is None else v)' "$1" "$2"
}

# The test daemon's memory database: t_q SQL prints what it returns; t_q_is SQL VALUE
# succeeds when it returns VALUE (for t_wait_for, which runs it again each time).
t_q() { sqlite3 -cmd '.timeout 5000' "$T_DB" "$1" 2>/dev/null; }
t_q_is() { [ "$(t_q "$1")" = "$2" ]; }

# t_wait_for SECONDS COMMAND...: runs COMMAND every 0.1 s until it succeeds, at most SECONDS.
t_wait_for() {
	local n=$(($1 * 10))
	shift
	while [ $n -gt 0 ]; do "$@" && return 0; sleep 0.1; n=$((n - 1)); done
	return 1
}

# A slow server in a network namespace of its own whose somaxconn is 8, for the listen-queue
# tests: t_lserver_netns makes $NS (removed at exit), a client binary $T_DIR/lclient (a copy
# under another name, outside the server's target) and $T_DIR/restart-lserver.sh, which stops
# the server and starts a new one in the namespace as a service manager would;
# t_lserver_start starts the server (its pid in $T_DIR/lserver.pid).
t_lserver_netns() {
	LSERVER=$HS_TOP/$HS_BUILD/workloads/lserver
	[ -x "$LSERVER" ] || { echo "missing $LSERVER: run make check-tests"; exit 1; }
	command -v ip >/dev/null || skip_all "no ip(8)"
	NS=hs-test-$$
	ip netns add "$NS" || skip_all "cannot make a network namespace"
	on_exit "ip netns pids $NS 2>/dev/null | xargs -r kill -9 2>/dev/null; sleep 0.2; ip netns del $NS"
	ip netns exec "$NS" ip link set lo up
	echo 8 | ip netns exec "$NS" tee /proc/sys/net/core/somaxconn >/dev/null
	cp "$LSERVER" "$T_DIR/lclient"
	cat >"$T_DIR/restart-lserver.sh" <<SH
#!/bin/sh
kill \$(cat "$T_DIR/lserver.pid") 2>/dev/null
sleep 0.2
ip netns exec "$NS" setsid "$LSERVER" serve --port 8080 >/dev/null 2>&1 </dev/null &
echo \$! >"$T_DIR/lserver.pid"
SH
	chmod 0755 "$T_DIR/restart-lserver.sh"
	on_exit 'kill $(cat "$T_DIR/lserver.pid" 2>/dev/null) 2>/dev/null'
}
t_lserver_start() {
	ip netns exec "$NS" setsid "$LSERVER" serve --port 8080 >/dev/null 2>&1 </dev/null &
	echo $! >"$T_DIR/lserver.pid"
}
ns_somaxconn() { ip netns exec "$NS" cat /proc/sys/net/core/somaxconn; }

# The test policy of the tuning tests: no runbooks, 30 s canaries of at least 10 samples per
# arm (switchback blocks of 5 s where a knob allows it), changes allowed close together (60 an
# hour, 1 s cooldown, no flapping limit in practice).
# With errors_only, the fitness weighs the error rate alone (the targets give it an SLO), so
# that no baseline has to be learned first.
t_tune_policy() { # [errors_only]
	local p=$T_DIR/etc/policy.yaml
	rm -f "$T_DIR"/etc/remediations/*.yaml
	sed -i -e 's/^  duration: 5m$/  duration: 30s/' -e 's/^  switchback_block: 30s$/  switchback_block: 5s/' \
		-e 's/^  min_samples: 30 .*$/  min_samples: 10/' \
		-e 's/^  changes_per_hour: 6 .*$/  changes_per_hour: 60/' \
		-e 's/^    targets: 1 .*$/&\n  cooldown: 1s\n  flapping: {changes: 100, within: 1m}/' "$p"
	if [ "${1:-}" = errors_only ]; then
		sed -i -e 's/^  latency: 0.4$/  latency: 0/' -e 's/^  throughput: 0.2$/  throughput: 0/' \
			-e 's/^  cost: 0.1$/  cost: 0/' "$p"
	fi
}

# t_text_restored EXE FUNC PID...: the text of FUNC (all its st_size bytes) in each process
# equals EXE's file, found through the program headers and each process's executable mapping
# of EXE (a redirect's every byte put back).
t_text_restored() {
	python3 - "$@" <<'PY'
import struct, subprocess, sys
exe, fn, pids = sys.argv[1], sys.argv[2], sys.argv[3:]
nm = subprocess.run(["nm", "-S", exe], capture_output=True, text=True).stdout
f = next(l.split() for l in nm.splitlines() if l.endswith(" " + fn))
vaddr, size = int(f[0], 16), int(f[1], 16)
data = open(exe, "rb").read()
phoff, = struct.unpack_from("<Q", data, 0x20)
phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
foff = None
for i in range(phnum):
    p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
    if p_type == 1 and p_vaddr <= vaddr < p_vaddr + p_filesz:
        foff = vaddr - p_vaddr + p_offset
want = data[foff:foff + size]
for pid in pids:
    got = None
    for l in open(f"/proc/{pid}/maps"):
        p = l.split()
        if len(p) >= 6 and p[5] == exe and "x" in p[1]:
            s, e = (int(x, 16) for x in p[0].split("-"))
            o = int(p[2], 16)
            if o <= foff < o + (e - s):
                with open(f"/proc/{pid}/mem", "rb") as m:
                    m.seek(s + foff - o)
                    got = m.read(size)
    if got != want:
        print(f"{pid}: {fn} is {got.hex() if got else 'not mapped'}, the file has {want.hex()}")
        sys.exit(1)
PY
}
