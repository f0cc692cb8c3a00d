#!/usr/bin/env bash
# 0050-make-run.sh - the README's first command: `make run` starts the daemon in the
# foreground on the repo's policy and runbooks, and `build/homeostat --socket
# var/control.sock status` answers. Uses the default pin directory, so it is skipped when
# another homeostatd holds it.
. "$(dirname "$0")/lib.sh"

[ "$HS_BUILD" = build ] || skip_all "make run uses the plain build"
[ ! -e /sys/fs/bpf/homeostat ] || skip_all "/sys/fs/bpf/homeostat exists: another homeostatd may run here"
[ ! -e var/control.sock ] || skip_all "var/control.sock exists: a make run may be going on"
on_exit "rm -f var/control.sock"
make --no-print-directory run >"$T_LOG" 2>&1 &
make_pid=$!
on_exit "kill $make_pid 2>/dev/null"
answered=
for i in $(seq 300); do
	if "$HSC" --socket var/control.sock status >"$T_DIR/status" 2>&1; then answered=1; break; fi
	kill -0 "$make_pid" 2>/dev/null || break
	sleep 0.1
done
check "make run: build/homeostat --socket var/control.sock status answers" test -n "$answered"
check "status names the repo's policy" grep -q "policies/default.yaml" "$T_DIR/status"
check "the daemon logs to stderr in the foreground" t_log_has 'homeostatd .* started: pid'
pid=$(sed -n 's/^ *pid  *\([0-9][0-9]*\)$/\1/p' "$T_DIR/status")
check "status gives the daemon's pid" test -n "$pid"
[ -n "$pid" ] && kill -INT "$pid"
wait "$make_pid"
check "Ctrl-C (SIGINT) stops make run cleanly" test $? -eq 0
check "the socket is gone" test ! -e var/control.sock
check "the pins are gone" test ! -e /sys/fs/bpf/homeostat
t_done
