#!/usr/bin/env bash
# 0540-redirect-discover.sh - discovery (issue 6, item 1): a policy redirect that names no
# function finds it, the hottest function of the target's CPU profile that has alternatives by
# the naming convention (FUNCTION__alt_*).
#
# Two evolve processes (a copy named evolve-disc; 4 threads calling hot_fn) are the target.
# The redirect names only the target, class approve and hot_share 20%. Checked: the daemon
# says it discovered hot_fn (its share of the target's CPU samples, 3 alternatives), and
# proposes the first alternative by name (hot_fn__alt_crash) for approval, nothing applied;
# `redirect list` shows the function; `homeostat redirect apply` before anything was found is
# refused with the reason (a second policy redirect on a target whose hot function has no
# alternatives: cpuhog). Rejected, nothing was changed.
# hs-asan: no (the engine runs under ASan in 0530; 42 s saved of make test)
. "$(dirname "$0")/lib.sh"

EVOLVE=$T_DIR/evolve-disc
HOG=$HS_TOP/$HS_BUILD/workloads/cpuhog
[ -x "$HS_TOP/$HS_BUILD/workloads/evolve" ] && [ -x "$HOG" ] ||
	{ echo "missing workloads: run make check-tests"; exit 1; }
cp "$HS_TOP/$HS_BUILD/workloads/evolve" "$EVOLVE"

t_config
t_tune_policy errors_only
P=$T_DIR/etc/policy.yaml
t_add_target evolve comm evolve-disc
t_add_target hog comm cpuhog
cat >>"$P" <<EOF
redirects:
  - name: found
    target: evolve
    class: approve
    hot_share: 20%
  - name: nothing
    target: hog
    class: approve
    hot_share: 20%
EOF
check "the test policy is valid (no function named)" "$HSD" --check-config --policy "$P"

for n in 0 1; do
	setsid "$EVOLVE" -t 4 -s "$T_DIR/stats-$n.log" >/dev/null 2>&1 </dev/null &
	echo $! >>"$T_DIR/pids"
done
setsid "$HOG" >/dev/null 2>&1 </dev/null &
echo $! >>"$T_DIR/pids"
on_exit 'kill $(cat "$T_DIR/pids") 2>/dev/null'
t_wait_for 10 bash -c "grep -q '^t=' '$T_DIR/stats-0.log' && grep -q '^t=' '$T_DIR/stats-1.log'" ||
	{ echo "evolve did not start"; exit 1; }
t_start

check "hot_fn is discovered from the CPU profile, with its 3 alternatives" \
	t_wait_for 60 t_log_has "redirect found: discovered hot_fn: [0-9]+% of the target's CPU samples, with 3 alternatives by name"
check "its first alternative by name waits for approval" \
	t_wait_for 30 t_log_has "redirect found: change [0-9]+ \\(hot_fn -> hot_fn__alt_crash in process [0-9]+\\)"
id=$(t_q "SELECT id FROM changes WHERE source = 'redirect:found' AND kind = 'patch' ORDER BY id LIMIT 1")
check "the change (knob hot_fn) is pending, nothing applied" \
	t_q_is "SELECT knob || ' ' || state FROM changes WHERE id = $id" "hot_fn PENDING_APPROVAL"
"$HSC" --socket "$T_SOCK" redirect list >"$T_DIR/list.txt" 2>&1
sed 's/^/    /' "$T_DIR/list.txt" | head -12
check "redirect list names the discovered function" grep -qE "found +evolve +hot_fn" "$T_DIR/list.txt"
check "a target whose hot function has no alternatives waits, saying which is hottest" \
	t_wait_for 30 t_log_has "redirect nothing: waiting: no function of cpuhog with 20.0% of the target's CPU samples or more has FUNCTION__alt_\\* alternatives; the hottest is hot_spin_function"
check "and 'redirect apply' of it is refused with the reason" \
	bash -c "! '$HSC' --socket '$T_SOCK' redirect apply nothing 2>&1 | tee '$T_DIR/apply.txt' >/dev/null; grep -q 'has not found its function yet' '$T_DIR/apply.txt'"
"$HSC" --socket "$T_SOCK" reject "$id" >/dev/null
check "rejected: nothing was ever applied" \
	t_wait_for 10 t_q_is "SELECT count(*) FROM changes WHERE kind = 'patch' AND state IN ('APPLIED', 'KEPT')" 0
check "the daemon stops cleanly" t_stop
t_done
