#!/usr/bin/env bash
# 0315-heal-approvals.sh - the approval classes of the policy, end to end, on a real fault.
#
# fdhog runs out of descriptors each time; the fd-exhaustion step is moved to another class:
#   notify, delay 3 s       announced (PENDING_APPROVAL), then applied by homeostat itself
#                           once the notice period is over, recorded as approved by it
#   notify, delay 1 m       an operator rejects it meanwhile: nothing changes, the episode
#                           ends UNRESOLVED (homeostat does not go past a human's no)
#   require, ttl 5 s        nobody answers: the approval expires, which is a denial
# hs-asan: yes
. "$(dirname "$0")/lib.sh"

FDHOG=$HS_TOP/$HS_BUILD/workloads/fdhog
[ -x "$FDHOG" ] || { echo "missing $FDHOG: run make check-tests"; exit 1; }
soft_limit() { awk '/^Max open files/ { print $4 }' "/proc/$1/limits"; }
start() { # name class
	T_DB=$T_DIR/$1/memory.db
	sed -i "s/^    class: .*\$/    class: $2/" "$T_DIR/etc/remediations/fd-exhaustion.yaml"
	t_start
	sleep 6
	"$FDHOG" --soft 64 --want 100 >"$T_DIR/$1.fd" 2>&1 &
	FDHOG_PID=$!
	on_exit "kill $FDHOG_PID 2>/dev/null"
	t_wait_for 15 t_q_is "SELECT state FROM changes" PENDING_APPROVAL
}
stop() {
	kill "$FDHOG_PID" 2>/dev/null
	wait "$FDHOG_PID" 2>/dev/null
	check "$1: the daemon stops cleanly" t_stop
}

t_config
sed -i 's/^action_classes:$/action_classes:\n  - {name: tell, approval: notify, delay: 3s}\n  - {name: slow-tell, approval: notify, delay: 1m}\n  - {name: short, approval: require, ttl: 5s}/' \
	"$T_DIR/etc/policy.yaml"

start notify tell
check "notify: the change is announced first (PENDING_APPROVAL)" t_q_is "SELECT state FROM changes" PENDING_APPROVAL
check "notify: applied by homeostat once the notice period is over" \
	t_wait_for 10 t_q_is "SELECT state FROM changes" APPLIED
check "notify: recorded as approved by homeostat" \
	t_q_is "SELECT actor FROM audit WHERE event = 'change.approved'" "homeostat (notice period over)"
check "notify: the limit was raised" [ "$(soft_limit "$FDHOG_PID")" = 128 ]
stop notify

start reject slow-tell
id=$(t_q "SELECT id FROM changes")
"$HSC" --socket "$T_SOCK" reject "$id"
check "reject: homeostat reject $id exits 0" [ $? -eq 0 ]
check "reject: the episode ends UNRESOLVED" t_wait_for 5 t_q_is "SELECT state FROM episodes" UNRESOLVED
check "reject: the change is DENIED" t_q_is "SELECT state FROM changes" DENIED
sleep 2
check "reject: nothing changed" [ "$(soft_limit "$FDHOG_PID")" = 64 ]
check "reject: no other change was tried" t_q_is "SELECT count(*) FROM changes" 1
stop reject

start expire short
check "expire: the approval expires and the change is DENIED" \
	t_wait_for 15 t_q_is "SELECT state FROM changes" DENIED
check "expire: recorded as expired" t_q_is "SELECT state FROM approvals" EXPIRED
check "expire: the episode ends UNRESOLVED" t_wait_for 5 t_q_is "SELECT state FROM episodes" UNRESOLVED
check "expire: nothing changed" [ "$(soft_limit "$FDHOG_PID")" = 64 ]
stop expire
t_done
