#!/usr/bin/env bash
# 0530-redirect-library.sh - a patch library loaded by the redirect engine (issue 6, item 3):
# the alternative lives in a library the operator supplies, which the target's process does
# not map; homeostat loads it as part of the patch change, and only once the change is
# admitted (here: approved by a human).
#
# tests/workloads/dlhost (4 threads; its compute thread calls hot_fn and checks every result)
# is the target; the policy's redirect names hot_fn and `library:` a root-owned copy of
# libaltlib.so, which holds hot_fn__alt_lib (same results, two bytes a step). No alternative
# is named: the engine finds it by name in the library's file, not loaded yet.
# Checked: the trial waits for approval and nothing is loaded meanwhile; after `homeostat
# approve ID` the library appears in the process's maps, the change is applied (a jump written
# at hot_fn) with the load noted in its audit trail, and the process goes on with right results;
# `homeostat redirect revert` puts every byte of hot_fn back while the library stays mapped
# (code a thread may still run is never unmapped); explain shows the trial.
# hs-asan: yes
. "$(dirname "$0")/lib.sh"

DLHOST=$HS_TOP/$HS_BUILD/workloads/dlhost
ALTLIB=$HS_TOP/$HS_BUILD/workloads/libaltlib.so
for f in "$DLHOST" "$ALTLIB"; do
	[ -e "$f" ] || { echo "missing $f: run make check-tests"; exit 1; }
done
LIBDIR=$T_DIR/lib
install -d -m 0755 -o root -g root "$LIBDIR"
install -m 0644 -o root -g root "$ALTLIB" "$LIBDIR/libaltlib.so"
LIB=$LIBDIR/libaltlib.so

t_config
t_tune_policy errors_only
P=$T_DIR/etc/policy.yaml
t_add_target dl comm dlhost
cat >>"$P" <<EOF
redirects:
  - name: libfn
    target: dl
    function: hot_fn
    library: $LIB
    class: approve
    hot_share: 0%
    canary_processes: 1
EOF
check "the test policy is valid" "$HSD" --check-config --policy "$P"

setsid "$DLHOST" -s "$T_DIR/stats.log" >"$T_DIR/dlhost.out" 2>&1 </dev/null &
PID=$!
on_exit "kill $PID 2>/dev/null"
t_wait_for 10 grep -q '^t=' "$T_DIR/stats.log" || { echo "dlhost did not start"; exit 1; }
t_start

check "the trial of hot_fn__alt_lib (found in the library's file) waits for approval" \
	t_wait_for 60 t_log_has "redirect libfn: change [0-9]+ \\(hot_fn -> hot_fn__alt_lib in process $PID\\)"
id=$(t_q "SELECT id FROM changes WHERE source = 'redirect:libfn' AND kind = 'patch' ORDER BY id LIMIT 1")
echo "change: $id"
check "nothing is loaded before the approval" bash -c "! grep -q '$LIB' /proc/$PID/maps"
check "the stored request names the library" \
	t_q_is "SELECT act LIKE '%library=%libaltlib.so%' FROM changes WHERE id = $id" 1
"$HSC" --socket "$T_SOCK" approve "$id"
check "approved: the library is loaded and the change applied" \
	t_wait_for 30 t_log_has "redirect libfn: change $id approved; patch library .*libaltlib.so loaded"
check "the process maps the library now" grep -q "$LIB" "/proc/$PID/maps"
check "a jump is written at hot_fn (after: e9... or ff25...)" \
	t_q_is "SELECT after LIKE 'e9%' OR after LIKE 'ff25%' OR after LIKE 'f30f1efa%' FROM changes WHERE id = $id" 1
check "the load is in the change's audit trail" \
	t_q_is "SELECT count(*) > 0 FROM audit WHERE change_id = $id AND detail LIKE 'patch library %loaded%'" 1
calls0=$(tail -n 1 "$T_DIR/stats.log" | sed -E 's/.* total_calls=([0-9]+).*/\1/')
sleep 3
check "dlhost goes on computing right through the library's code" \
	bash -c "tail -n 1 '$T_DIR/stats.log' | grep -qE ' errors=0 ' && [ \$(tail -n 1 '$T_DIR/stats.log' | sed -E 's/.* total_calls=([0-9]+).*/\1/') -gt $calls0 ]"
check "no error at all so far" bash -c "tail -n 1 '$T_DIR/stats.log' | grep -q ' total_errors=0'"
"$HSC" --socket "$T_SOCK" redirect list | sed 's/^/    /'

"$HSC" --socket "$T_SOCK" redirect revert "$id"
check "redirect revert $id: the change is rolled back" \
	t_wait_for 10 t_q_is "SELECT state FROM changes WHERE id = $id" ROLLED_BACK
check "every byte of hot_fn is restored (the process's text equals the file's)" \
	t_text_restored "$DLHOST" hot_fn "$PID"
check "the library stays mapped after the revert" grep -q "$LIB" "/proc/$PID/maps"
check "dlhost is alive and right" bash -c "kill -0 $PID && tail -n 1 '$T_DIR/stats.log' | grep -q ' total_errors=0'"
"$HSC" --socket "$T_SOCK" explain "$id" >"$T_DIR/explain.txt" 2>&1
sed 's/^/    /' "$T_DIR/explain.txt" | head -40
check "explain $id shows the function, the bytes and the library load" \
	bash -c "grep -q hot_fn '$T_DIR/explain.txt' && grep -q 'patch library' '$T_DIR/explain.txt'"
check "the daemon stops cleanly" t_stop
t_done
