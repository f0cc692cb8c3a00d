#!/usr/bin/env bash
# 0350-heal-listen-overflow.sh - a server's accept queue overflows inside a network
# namespace; homeostat raises net.core.somaxconn there and restarts the server, after
# approval; clients connect at once again; the host's own value never moves.
#
# In a network namespace made here, net.core.somaxconn is 8; lserver listens (backlog capped
# at 8) and accepts one connection every 20 ms; a client (a copy of lserver named lclient,
# outside the target) opens 64 connections at once every second and times them: most wait
# ~1 s for a retransmitted SYN. The listen-overflow runbook of remediations/ must see
# ListenOverflows of the server's namespace, propose somaxconn 4096 together with the
# server's restart (class approve under the default policy), and after `homeostat approve`
# write it in that namespace only, restart the server through its target's restart command,
# verify that overflows stopped and keep the change. Deleting the namespace at the end
# leaves nothing changed.
# hs-asan: yes
. "$(dirname "$0")/lib.sh"

host_before=$(cat /proc/sys/net/core/somaxconn)
t_lserver_netns

t_config
t_add_target web comm lserver restart "/bin/sh $T_DIR/restart-lserver.sh"
t_start
t_lserver_start
first=$(cat "$T_DIR/lserver.pid")
sleep 0.5
ip netns exec "$NS" "$T_DIR/lclient" burst --port 8080 >"$T_DIR/client.log" 2>&1 &
CLIENT=$!
on_exit "kill $CLIENT 2>/dev/null"

check "a listen-overflow episode opens for web" \
	t_wait_for 30 t_q_is "SELECT runbook || ' ' || target FROM episodes" "listen-overflow web"
check "somaxconn 4096 with a restart waits for approval" \
	t_wait_for 10 t_q_is "SELECT kind || ' ' || knob || ' ' || after || ' ' || state FROM changes" \
	"sysctl net.core.somaxconn 4096 PENDING_APPROVAL"
id=$(t_q "SELECT id FROM changes WHERE kind = 'sysctl'")
check "clients wait for retransmitted SYNs meanwhile" t_wait_for 10 \
	bash -c "awk '\$9 > 0 { slow++ } END { exit !(slow >= 2) }' '$T_DIR/client.log'"
check "nothing changed before the approval" [ "$(ns_somaxconn)" = 8 ] && [ "$(cat "$T_DIR/lserver.pid")" = "$first" ]

"$HSC" --socket "$T_SOCK" approve "$id"
check "homeostat approve $id exits 0" [ $? -eq 0 ]
check "somaxconn is 4096 in the server's namespace" t_wait_for 10 bash -c "[ \"\$(ip netns exec $NS cat /proc/sys/net/core/somaxconn)\" = 4096 ]"
check "the host's somaxconn did not move ($host_before)" [ "$(cat /proc/sys/net/core/somaxconn)" = "$host_before" ]
check "the server was restarted" t_wait_for 10 bash -c "[ \"\$(cat '$T_DIR/lserver.pid')\" != $first ]"
check "both halves are kept after verify" \
	t_wait_for 40 t_q_is "SELECT group_concat(kind || ':' || state, ' ') FROM changes" "sysctl:KEPT restart:KEPT"
check "the episode is RESOLVED" t_wait_for 5 t_q_is "SELECT state FROM episodes" RESOLVED
check "clients connect at once again (no slow connection in the last 3 bursts)" \
	bash -c "tail -n 3 '$T_DIR/client.log' | awk '{ slow += \$9 } END { exit !(NR == 3 && slow == 0) }'"
tail -n 4 "$T_DIR/client.log"
"$HSC" --socket "$T_SOCK" history | sed -n '/^history:/,/^episodes:/p'
check "the sysctl change names the namespace's revert" \
	bash -c "sqlite3 '$T_DB' \"SELECT revert FROM changes WHERE id = $id\" | grep -q 'nsenter'"
"$HSC" --socket "$T_SOCK" rollback "$id"
check "rollback $id puts 8 back in the namespace, though the server it was read from is gone" \
	[ "$(ns_somaxconn)" = 8 ]
kill "$CLIENT"
check "the daemon stops cleanly" t_stop
t_done
