#!/usr/bin/env bash
# 0200-actuators.sh - every actuator applies, verifies and reverts on real processes, cgroups
# and network namespaces, and backs off when an admin changed the value meanwhile.
#
# Through tests/tools/act_tool (the API from the command line; the result is saved between
# invocations, as a privileged actuator process would hand it back):
# - rlimit: raise a sleeping process's RLIMIT_NOFILE soft limit, check /proc/PID/limits,
#   revert; raising the hard limit works with CAP_SYS_RESOURCE and is refused without it;
#   an admin change between apply and revert makes revert refuse (-ESTALE) and keep it.
# - nice: renice every thread of a multi-threaded process up and down, revert.
# - cgroup: in test groups made here, v1 cpu.shares and cpu.cfs_quota_us under
#   /sys/fs/cgroup/cpu, and v2 files under /sys/fs/cgroup/unified (cpu.weight when the cpu
#   controller is there, the core cgroup.max.descendants always); a symlink that leads out
#   of /sys/fs/cgroup is refused.
# - sysctl: net.core.somaxconn inside a network namespace made here (by a process in it and
#   by its /run/netns path); the host's value must not move; a namespace that is gone is
#   -ESRCH.
# - signal (SIGTERM) and restart commands (success, failure, timeout); neither reverts.
# Every revert command printed for humans is also run once, to show it really undoes it.
# Everything made here is removed and every host value restored even on failure (on_exit).
# hs-asan: yes
. "$(dirname "$0")/lib.sh"

TOOL=$HS_TOP/$HS_BUILD/tests/act_tool
[ -x "$TOOL" ] || { echo "missing $TOOL: run make check-tests"; exit 1; }
for cmd in ip nsenter sysctl prlimit renice python3; do
	command -v "$cmd" >/dev/null || skip_all "needs $cmd"
done
OUT=$T_DIR/out
val() { awk -v k="$1" '$1 == "=" && $2 == k { sub(/^= [^ ]+ ?/, ""); print; exit }' "$OUT"; }
# act ARGS...: runs act_tool, shows its output, returns its exit status
act() {
	timeout 30 "$TOOL" "$@" >"$OUT" 2>&1
	local rc=$?
	sed 's/^/    /' "$OUT"
	return $rc
}
rc_is() { [ "$(val rc)" = "$1" ]; }
nofile() { awk '/^Max open files/ { print $4 ":" $5 }' "/proc/$1/limits"; }
nice_of() { ps -o ni= -p "$1" | tr -d ' '; }
# the nice value of every thread of $1, sorted and unique: one line when they all agree
thread_nices() {
	local t
	for t in /proc/"$1"/task/*; do awk '{ sub(/.*\) /, ""); print $17 }' "$t/stat"; done | sort -u
}
spawn_sleep() { # VAR [prefix command...]: starts "sleep 300" and its cleanup
	local var=$1
	shift
	"$@" sleep 300 &
	printf -v "$var" '%s' $!
	on_exit "kill -KILL ${!var} 2>/dev/null; wait ${!var} 2>/dev/null"
}

# ---------------------------------------------------------------- rlimit
spawn_sleep P prlimit --nofile=1024:4096
sleep 0.2
S=$T_DIR/rlimit.state
act apply rlimit --pid "$P" --resource nofile --soft 4096 --state "$S"
check "rlimit apply exits 0" rc_is 0
check "before is 1024:4096" [ "$(val before)" = 1024:4096 ]
check "after is 4096:4096" [ "$(val after)" = 4096:4096 ]
check "/proc/$P/limits says 4096 4096" [ "$(nofile "$P")" = 4096:4096 ]
check "revert command is prlimit" [ "$(val revert)" = "prlimit --pid $P --nofile=1024:4096" ]
act verify --state "$S"
check "rlimit verify exits 0" rc_is 0
act revert --state "$S"
check "rlimit revert exits 0" rc_is 0
check "/proc/$P/limits is back to 1024 4096" [ "$(nofile "$P")" = 1024:4096 ]
act revert --state "$S"
check "a second revert is -EALREADY" rc_is -EALREADY

act apply rlimit --pid "$P" --resource nofile --soft 2048 --state "$S"
check "rlimit apply again" [ "$(nofile "$P")" = 2048:4096 ]
prlimit --pid "$P" --nofile=3000:4096
act verify --state "$S"
check "verify sees the admin's change (-ESTALE)" rc_is -ESTALE
act revert --state "$S"
check "revert after an admin change is -ESTALE" rc_is -ESTALE
check "and says why" bash -c "grep -q \"^= why the host holds '3000:4096', not '2048:4096': changed by someone else since homeostat set it, left alone\$\" '$OUT'"
check "the admin's value stays" [ "$(nofile "$P")" = 3000:4096 ]

act apply rlimit --pid "$P" --resource nofile --soft 1500 --state "$S"
eval "$(val revert)"
check "the printed revert command restores the limit" [ "$(nofile "$P")" = 3000:4096 ]

capeff=$(awk '/^CapEff/ { print $2 }' /proc/self/status)
if (((0x$capeff >> 24) & 1)); then
	act apply rlimit --pid "$P" --resource nofile --soft 8192 --hard 8192 --state "$S"
	check "raising the hard limit with CAP_SYS_RESOURCE" [ "$(nofile "$P")" = 8192:8192 ]
	act revert --state "$S"
	check "and reverting it" [ "$(nofile "$P")" = 3000:4096 ]
else
	act apply rlimit --pid "$P" --resource nofile --soft 8192 --hard 8192 --state "$S"
	check "raising the hard limit without CAP_SYS_RESOURCE is -EPERM" rc_is -EPERM
	check "and changes nothing" [ "$(nofile "$P")" = 3000:4096 ]
fi
act apply rlimit --pid "$P" --resource nofile --soft 8192
check "a soft limit above the hard one is refused (-EINVAL)" rc_is -EINVAL
start=$(awk '{ sub(/.*\) /, ""); print $20 }' "/proc/$P/stat")
act apply rlimit --pid "$P" --pid-start $((start + 1)) --resource nofile --soft 100
check "another process's start time is refused (-ESRCH)" rc_is -ESRCH
check "and changes nothing" [ "$(nofile "$P")" = 3000:4096 ]

# ---------------------------------------------------------------- nice
python3 -c 'import threading, time
for _ in range(3): threading.Thread(target=time.sleep, args=(300,), daemon=True).start()
time.sleep(300)' &
N=$!
on_exit "kill -KILL $N 2>/dev/null; wait $N 2>/dev/null"
for _ in $(seq 50); do [ "$(ls /proc/$N/task | wc -l)" -ge 4 ] && break; sleep 0.1; done
n0=$(nice_of "$N")
S=$T_DIR/nice.state
act apply nice --pid "$N" --value 10 --state "$S"
check "nice apply exits 0" rc_is 0
check "every thread has nice 10" [ "$(thread_nices "$N")" = 10 ]
check "revert command names every thread" [ "$(val revert)" = "renice -n $n0 -p \$(ls /proc/$N/task)" ]
act verify --state "$S"
check "nice verify exits 0" rc_is 0
act revert --state "$S"
check "nice revert exits 0" rc_is 0
check "every thread is back to $n0" [ "$(thread_nices "$N")" = "$n0" ]
act apply nice --pid "$N" --value -5 --state "$S"
check "lowering nice to -5 (CAP_SYS_NICE)" [ "$(thread_nices "$N")" = -5 ]
eval "$(val revert)" >/dev/null
check "the printed revert command restores every thread" [ "$(thread_nices "$N")" = "$n0" ]
act apply nice --pid "$N" --value 3 --state "$S"
renice -n 7 -p "$N" >/dev/null
act revert --state "$S"
check "nice revert after an admin change is -ESTALE" rc_is -ESTALE
check "the admin's value stays" [ "$(nice_of "$N")" = 7 ]

# ---------------------------------------------------------------- cgroup v1
V1=/sys/fs/cgroup/cpu/hs-test-$$
if [ -f /sys/fs/cgroup/cpu/cpu.shares ]; then
	mkdir "$V1"
	on_exit "rmdir $V1 2>/dev/null"
	S=$T_DIR/cg.state
	act apply cgroup --path "cpu/hs-test-$$" --file cpu.shares --value 512 --state "$S"
	check "v1 cpu.shares apply exits 0" rc_is 0
	check "cpu.shares is 512" [ "$(cat "$V1/cpu.shares")" = 512 ]
	check "revert command is an echo" [ "$(val revert)" = "echo 1024 > $V1/cpu.shares" ]
	act verify --state "$S"
	check "cpu.shares verify exits 0" rc_is 0
	act revert --state "$S"
	check "cpu.shares is back to 1024" [ "$(cat "$V1/cpu.shares")" = 1024 ]

	act apply cgroup --path "$V1" --file cpu.cfs_quota_us --value 50000 --state "$S"
	check "v1 cpu.cfs_quota_us apply exits 0" rc_is 0
	check "cpu.cfs_quota_us is 50000" [ "$(cat "$V1/cpu.cfs_quota_us")" = 50000 ]
	act verify --state "$S"
	check "cpu.cfs_quota_us verify exits 0" rc_is 0
	act revert --state "$S"
	check "cpu.cfs_quota_us is back to -1" [ "$(cat "$V1/cpu.cfs_quota_us")" = -1 ]
	act apply cgroup --path "$V1" --file cpu.cfs_quota_us --value 20000 --state "$S"
	eval "$(val revert)"
	check "the printed revert command restores the quota" [ "$(cat "$V1/cpu.cfs_quota_us")" = -1 ]

	act apply cgroup --path "$V1" --file cpu.shares --value 256 --state "$S"
	echo 300 >"$V1/cpu.shares"
	act revert --state "$S"
	check "cgroup revert after an admin change is -ESTALE" rc_is -ESTALE
	check "the admin's cpu.shares stays" [ "$(cat "$V1/cpu.shares")" = 300 ]
	act apply cgroup --path "$V1" --file cpu.shares --value 1
	check "cpu.shares 1 is out of range (-EINVAL)" rc_is -EINVAL
	act apply cgroup --path "$V1" --file cpu.weight --value 100
	check "a v2 file in a v1 group is not there (-ENOENT)" rc_is -ENOENT
else
	echo "skip - cgroup v1: no cpu hierarchy at /sys/fs/cgroup/cpu"
fi

# a symlink under /sys/fs/cgroup that leads elsewhere (only where /sys/fs/cgroup is a tmpfs)
LINK=/sys/fs/cgroup/hs-link-$$
if ln -s /etc "$LINK" 2>/dev/null; then
	on_exit "rm -f $LINK"
	act apply cgroup --path "hs-link-$$" --file cpu.shares --value 100
	check "a symlink out of /sys/fs/cgroup is refused (-EXDEV)" rc_is -EXDEV
	if [ -d "$V1" ]; then
		ln -s "$V1" "$LINK-in"
		on_exit "rm -f $LINK-in"
		act apply cgroup --path "hs-link-$$-in" --file cpu.shares --value 128 --state "$S"
		check "a symlink to a cgroup under /sys/fs/cgroup is followed" \
			[ "$(cat "$V1/cpu.shares")" = 128 ]
		act revert --state "$S"
	fi
else
	echo "skip - symlink escape: /sys/fs/cgroup takes no symlinks here"
fi

# ---------------------------------------------------------------- cgroup v2
V2ROOT=/sys/fs/cgroup/unified
[ -f /sys/fs/cgroup/cgroup.controllers ] && V2ROOT=/sys/fs/cgroup
V2=$V2ROOT/hs-test-$$
if [ -f "$V2ROOT/cgroup.controllers" ]; then
	mkdir "$V2"
	on_exit "rmdir $V2 2>/dev/null"
	S=$T_DIR/cg2.state
	act apply cgroup --path "$V2" --file cgroup.max.descendants --value 5 --state "$S"
	check "v2 cgroup.max.descendants apply exits 0" rc_is 0
	check "cgroup.max.descendants is 5" [ "$(cat "$V2/cgroup.max.descendants")" = 5 ]
	check "before was max" [ "$(val before)" = max ]
	act verify --state "$S"
	check "v2 verify exits 0" rc_is 0
	act revert --state "$S"
	check "cgroup.max.descendants is back to max" [ "$(cat "$V2/cgroup.max.descendants")" = max ]
	act apply cgroup --path "$V2" --file cpu.shares --value 512
	check "a v1 file in a v2 group is not there (-ENOENT)" rc_is -ENOENT
	if grep -qw cpu "$V2/cgroup.controllers"; then
		act apply cgroup --path "$V2" --file cpu.weight --value 50 --state "$S"
		check "v2 cpu.weight apply" [ "$(cat "$V2/cpu.weight")" = 50 ]
		act revert --state "$S"
		check "cpu.weight is back to 100" [ "$(cat "$V2/cpu.weight")" = 100 ]
	else
		echo "skip - v2 cpu.weight: the cpu controller is not enabled in $V2ROOT" \
			"($(cat "$V2ROOT/cgroup.subtree_control"))"
	fi
else
	echo "skip - cgroup v2: no cgroup2 hierarchy"
fi

# ---------------------------------------------------------------- sysctl in a netns
NS=hs-test-$$
host0=$(cat /proc/sys/net/core/somaxconn)
on_exit "[ \"\$(cat /proc/sys/net/core/somaxconn)\" = $host0 ] || sysctl -qw net.core.somaxconn=$host0"
ip netns add "$NS"
on_exit "ip netns del $NS 2>/dev/null"
spawn_sleep NP ip netns exec "$NS"
for _ in $(seq 50); do
	[ "$(readlink /proc/$NP/ns/net)" != "$(readlink /proc/self/ns/net)" ] && break
	sleep 0.1
done
if [ "$(readlink /proc/$NP/ns/net)" = "$(readlink /proc/self/ns/net)" ]; then
	not_ok "the netns process did not enter $NS: sysctl tests not run (the host is untouched)"
else
	ns0=$(ip netns exec "$NS" cat /proc/sys/net/core/somaxconn)
	want=$((ns0 == 1234 ? 1235 : 1234))
	S=$T_DIR/sysctl.state
	act apply sysctl --name net.core.somaxconn --value $want --netns-pid "$NP" --state "$S"
	check "netns sysctl apply exits 0" rc_is 0
	check "inside $NS somaxconn is $want" \
		[ "$(ip netns exec "$NS" cat /proc/sys/net/core/somaxconn)" = $want ]
	check "the host's somaxconn did not move" [ "$(cat /proc/sys/net/core/somaxconn)" = "$host0" ]
	check "revert command enters the namespace" \
		[ "$(val revert)" = "nsenter --net=/proc/$NP/ns/net sysctl -w net.core.somaxconn=$ns0" ]
	act verify --state "$S"
	check "netns sysctl verify exits 0" rc_is 0
	act revert --state "$S"
	check "netns sysctl revert exits 0" rc_is 0
	check "inside $NS somaxconn is back to $ns0" \
		[ "$(ip netns exec "$NS" cat /proc/sys/net/core/somaxconn)" = "$ns0" ]
	check "the host's somaxconn still did not move" \
		[ "$(cat /proc/sys/net/core/somaxconn)" = "$host0" ]

	act apply sysctl --name net.core.somaxconn --value $want --netns "/run/netns/$NS" \
		--state "$S"
	check "by /run/netns path: applied inside" \
		[ "$(ip netns exec "$NS" cat /proc/sys/net/core/somaxconn)" = $want ]
	check "by /run/netns path: host unchanged" \
		[ "$(cat /proc/sys/net/core/somaxconn)" = "$host0" ]
	eval "$(val revert)" >/dev/null
	check "the printed revert command restores it" \
		[ "$(ip netns exec "$NS" cat /proc/sys/net/core/somaxconn)" = "$ns0" ]

	act apply sysctl --name net.core.somaxconn --value $want --netns "/run/netns/$NS" \
		--state "$S"
	ip netns exec "$NS" sysctl -qw net.core.somaxconn=777
	act revert --state "$S"
	check "sysctl revert after an admin change is -ESTALE" rc_is -ESTALE
	check "the admin's value stays" \
		[ "$(ip netns exec "$NS" cat /proc/sys/net/core/somaxconn)" = 777 ]

	act apply sysctl --name net.core.somaxconn --value $want --netns-pid "$NP" --state "$S"
	kill -KILL "$NP"
	wait "$NP" 2>/dev/null
	act revert --state "$S"
	check "a namespace whose process is gone is -ESRCH" rc_is -ESRCH
	act apply sysctl --name kernel.pid_max --value 65536 --netns "/run/netns/$NS"
	check "a sysctl that is not per namespace takes no netns (-EINVAL)" rc_is -EINVAL
fi
check "the host's somaxconn is $host0 at the end" [ "$(cat /proc/sys/net/core/somaxconn)" = "$host0" ]

# ---------------------------------------------------------------- signal
spawn_sleep G
act apply signal --pid "$G" --signal TERM --state "$T_DIR/sig.state"
check "signal apply exits 0" rc_is 0
check "after says SIGTERM sent" [ "$(val after)" = "SIGTERM sent" ]
wait "$G" 2>/dev/null
check "the workload died of SIGTERM (status 143)" [ $? -eq 143 ]
act revert --state "$T_DIR/sig.state"
check "a signal cannot be reverted (-EOPNOTSUPP)" rc_is -EOPNOTSUPP
check "and says why" [ "$(val why)" = "a signal cannot be taken back once it was sent" ]
spawn_sleep G2
start=$(awk '{ sub(/.*\) /, ""); print $20 }' "/proc/$G2/stat")
act apply signal --pid "$G2" --pid-start $((start + 1)) --signal KILL
check "a signal to another process's start time is refused (-ESRCH)" rc_is -ESRCH
check "and the process lives" kill -0 "$G2"
act apply signal --pid 1 --signal TERM
check "init is never signalled (-EINVAL)" rc_is -EINVAL

# ---------------------------------------------------------------- restart
spawn_sleep OLD
PIDFILE=$T_DIR/new.pid
on_exit "[ -s $PIDFILE ] && kill -KILL \$(cat $PIDFILE) 2>/dev/null"
act apply restart --pid "$OLD" \
	--command "kill $OLD && (sleep 300 >/dev/null 2>&1 & echo \$! > $PIDFILE)" \
	--state "$T_DIR/restart.state"
check "restart exits 0" rc_is 0
check "after says exit 0" [ "$(val after)" = "exit 0" ]
wait "$OLD" 2>/dev/null
check "the old process is gone" bash -c "! kill -0 $OLD 2>/dev/null"
check "the new process runs" kill -0 "$(cat "$PIDFILE")"
act revert --state "$T_DIR/restart.state"
check "a restart cannot be reverted (-EOPNOTSUPP)" rc_is -EOPNOTSUPP
act apply restart --command "exit 4"
check "a failing restart command is -EIO" rc_is -EIO
check "with its exit status" [ "$(val after)" = "exit 4" ]
t0=$(date +%s%N)
act apply restart --command "sleep 60" --timeout 300
t1=$(date +%s%N)
check "a restart past its timeout is killed (-ETIMEDOUT)" rc_is -ETIMEDOUT
check "within 3 s ($(((t1 - t0) / 1000000)) ms)" [ $(((t1 - t0) / 1000000)) -lt 3000 ]

# text patches: tests/integration/0500-redirect-patch.sh
act apply patch
check "a patch without a process is refused (-EINVAL)" rc_is -EINVAL
t_done
