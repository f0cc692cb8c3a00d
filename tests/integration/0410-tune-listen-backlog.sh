#!/usr/bin/env bash
# 0410-tune-listen-backlog.sh - self-tuning scenario a: the tuner raises net.core.somaxconn in
# a server's network namespace, restarts the server as the knob requires, through the approval
# class the policy gives the job, and keeps the value because the canary shows it better.
#
# In a network namespace made here, net.core.somaxconn is 8; lserver listens (backlog capped
# at 8 at listen()) and accepts one connection every 20 ms; a client (a copy named lclient,
# outside the target) opens 64 connections at once every 2 s: most wait ~1 s for a
# retransmitted SYN, and the namespace counts ListenOverflows, which the fitness counts as
# errors of the target (SLO error rate 1%). No runbook is loaded: only the tuner acts.
# The job (class "tune": approval notify, 1 s) searches somaxconn in 128..4096 by 4x from 8
# (below the range, so the search starts at 128): trial 1 sets 512 in that namespace and
# restarts the server: overflows stop, the client's connect p99 drops, verdict KEEP with its
# statistics. Trial 2 (2048) gains nothing more: INCONCLUSIVE, rolled back to 512 with a
# restart. The host's own somaxconn never moves; deleting the namespace leaves nothing.
# hs-asan: yes
. "$(dirname "$0")/lib.sh"

host_before=$(cat /proc/sys/net/core/somaxconn)
p99_of() { # file first last: median of the bursts' p99_ms over lines first..last
	sed -n "$2,$3p" "$1" | awk '$1 == "burst" { print $7 }' | sort -n |
		awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : -1) }'
}
t_lserver_netns

t_config
t_tune_policy errors_only
P=$T_DIR/etc/policy.yaml
sed -i 's/^action_classes:$/&\n  - name: tune\n    description: tuning trials, announced a second before\n    approval: notify\n    delay: 1s/' "$P"
t_add_target web comm lserver restart "/bin/sh $T_DIR/restart-lserver.sh"
sed -i "s|^    restart: /bin/sh $T_DIR/restart-lserver.sh\$|&\n    slo: {error_rate: 1%}|" "$P"
cat >>"$P" <<EOF
tuning:
  jobs:
    - name: web-backlog
      target: web
      max_trials: ${TUNE_TRIALS:-2}
      class: tune
      knobs:
        - {sysctl: net.core.somaxconn, min: 128, max: 4096, step: 4x, restart: true}
EOF
check "the test policy is valid" "$HSD" --check-config --policy "$P"

t_lserver_start
first=$(cat "$T_DIR/lserver.pid")
sleep 0.5
ip netns exec "$NS" "$T_DIR/lclient" burst --port 8080 --every 2000 >"$T_DIR/client.log" 2>&1 &
CLIENT=$!
on_exit "kill $CLIENT 2>/dev/null"
t_start

check "trial 1 is announced: somaxconn 8 -> 512, notify" \
	t_wait_for 90 t_q_is "SELECT knob || ' ' || before || ' ' || after FROM changes WHERE source = 'tune:web-backlog' AND kind = 'sysctl' ORDER BY id LIMIT 1" \
	"net.core.somaxconn 8 512"
check "clients wait for retransmitted SYNs before it" \
	bash -c "awk '\$9 > 0 { slow++ } END { exit !(slow >= 2) }' '$T_DIR/client.log'"
check "somaxconn is 512 in the server's namespace" t_wait_for 10 bash -c "[ \"\$(ip netns exec $NS cat /proc/sys/net/core/somaxconn)\" = 512 ]"
applied_line=$(wc -l <"$T_DIR/client.log")
check "the host's somaxconn did not move ($host_before)" [ "$(cat /proc/sys/net/core/somaxconn)" = "$host_before" ]
check "the server was restarted for it" t_wait_for 10 bash -c "[ \"\$(cat '$T_DIR/lserver.pid')\" != $first ]"
check "trial 1 is KEPT" \
	t_wait_for 60 t_q_is "SELECT state FROM changes WHERE source = 'tune:web-backlog' AND kind = 'sysctl' ORDER BY id LIMIT 1" KEPT
id=$(t_q "SELECT id FROM changes WHERE source = 'tune:web-backlog' AND kind = 'sysctl' ORDER BY id LIMIT 1")
kept_line=$(wc -l <"$T_DIR/client.log")
t_q "SELECT o.verdict, json_extract(o.stats, '$.reason') FROM outcomes o WHERE o.change_id = $id"
check "its verdict is KEEP, judged on both arms" \
	t_q_is "SELECT o.verdict || ' ' || (json_extract(o.stats, '$.samples.canary') >= 10) || (json_extract(o.stats, '$.samples.baseline') >= 10) FROM outcomes o WHERE o.change_id = $id" \
	"KEEP 11"
check "the error rate is judged better (canary rate < baseline rate)" \
	t_q_is "SELECT json_extract(m.value, '$.canary_rate') < json_extract(m.value, '$.baseline_rate') FROM outcomes o, json_each(o.stats, '$.metrics') m WHERE o.change_id = $id AND json_extract(m.value, '$.metric') = 'error rate'" 1
before=$(p99_of "$T_DIR/client.log" 1 "$applied_line")
after=$(p99_of "$T_DIR/client.log" $((applied_line + 2)) "$kept_line")
echo "client connect p99 (median of bursts): before ${before} ms, during the canary ${after} ms"
check "client connect p99 dropped (${before} ms -> ${after} ms, under 100 ms)" \
	awk -v b="$before" -v a="$after" 'BEGIN { exit !(b > 500 && a < 100) }'
check "trial 2 (2048) is tried and rolled back: no gain over 512" \
	t_wait_for 90 t_q_is "SELECT after || ' ' || state FROM changes WHERE source = 'tune:web-backlog' AND kind = 'sysctl' ORDER BY id DESC LIMIT 1" "2048 ROLLED_BACK"
check "the search ends with somaxconn = 512" \
	t_wait_for 300 t_log_has "tuning job web-backlog: search [a-z]+ after [0-9]+ trials .*net.core.somaxconn .* = 512"
grep -E "tuning job web-backlog: (search|trial)" "$T_LOG" | sed 's/^/    /'
check "512 holds in the namespace after the rollback" [ "$(ns_somaxconn)" = 512 ]
"$HSC" --socket "$T_SOCK" history | sed -n '/^history:/,/^episodes:/p' | cut -c1-200
check "the host's somaxconn never moved ($host_before)" [ "$(cat /proc/sys/net/core/somaxconn)" = "$host_before" ]
kill "$CLIENT"
check "the daemon stops cleanly" t_stop
t_done
