#!/usr/bin/env bash
# 0400-tune-worse-noeffect.sh - self-tuning scenarios c and d: a trial that makes things worse
# is rolled back at once by rollback_on; a trial of a knob without effect is judged
# INCONCLUSIVE and rolled back; memory keeps either from being tried again.
#
# knobapp (target "app") reads its setting from $K/workers ten times a second; above 6, half
# of its syscalls fail with EBADF. Two tuning jobs, one trial each (max_trials: 1):
#   app-workers  the file knob $K/workers (4 now, step 2x): the hill climb tries 8 first; in
#                the switchback canary's first on block the app's error rate jumps and
#                rollback_on (error rate +5%) breaches within a few ticks: ROLLED_BACK with
#                verdict ROLLBACK, the file back to 4;
#   app-unused   the file knob $K/unused, which the app never reads: 4 -> 8 changes nothing,
#                the canary runs its full 30 s (on and off blocks of 5 s) and the judge finds
#                no significant change: INCONCLUSIVE, rolled back.
# A second daemon on the same memory starts both searches again from 4: the candidate 8 is
# vetoed by memory for both knobs (the log says which change failed) and never proposed.
# Afterwards both files hold 4 again.
# hs-asan: no (118 s; 0410 runs the same tuner path - propose, canary, judge, rollback - under ASan)
. "$(dirname "$0")/lib.sh"

APP=$HS_TOP/$HS_BUILD/workloads/knobapp
[ -x "$APP" ] || { echo "missing $APP: run make check-tests"; exit 1; }

t_config
t_tune_policy errors_only
P=$T_DIR/etc/policy.yaml
K=$T_DIR/app
mkdir -p "$K"
echo 4 >"$K/workers"
echo 4 >"$K/unused"
sed -i 's/^  error_rate_increase: 0.1%$/  error_rate_increase: 5%/' "$P"
t_add_target app comm knobapp
sed -i "s|^    comm: knobapp\$|&\n    slo: {error_rate: 1%}|" "$P"
cat >>"$P" <<EOF
tuning:
  jobs:
    - name: app-workers
      target: app
      max_trials: 1
      class: auto
      knobs:
        - {file: $K/workers, min: 1, max: 64, step: 2x, restart: false}
    - name: app-unused
      target: app
      max_trials: 1
      class: auto
      knobs:
        - {file: $K/unused, min: 1, max: 64, step: 2x, restart: false}
EOF
check "the test policy is valid" "$HSD" --check-config --policy "$P"

"$APP" "$K/workers" 6 >"$T_DIR/app.log" 2>&1 &
APID=$!
on_exit "kill $APID 2>/dev/null"
t_start

# c. worse: rolled back at once
check "the workers trial is applied (4 -> 8)" \
	t_wait_for 90 t_q_is "SELECT before || ' ' || after FROM changes WHERE source = 'tune:app-workers'" "4 8"
check "the app saw setting 8 (in the first on block)" t_wait_for 12 grep -q "^setting 8" "$T_DIR/app.log"
check "rollback_on breached: the trial is ROLLED_BACK" \
	t_wait_for 15 t_q_is "SELECT state FROM changes WHERE source = 'tune:app-workers'" ROLLED_BACK
check "its verdict is ROLLBACK, with the breach in the statistics" \
	t_q_is "SELECT o.verdict || ' ' || json_extract(o.stats, '$.outcome') || ' ' || json_extract(o.stats, '$.breach.metric') FROM outcomes o JOIN changes c ON c.id = o.change_id WHERE c.source = 'tune:app-workers'" \
	"ROLLBACK breach error rate"
applied=$(t_q "SELECT acted_at FROM changes WHERE source = 'tune:app-workers'")
ended=$(t_q "SELECT o.at FROM outcomes o JOIN changes c ON c.id = o.change_id WHERE c.source = 'tune:app-workers'")
echo "breach to rollback: $((ended - applied)) ms after the apply (canary 30 s, the first 5 s off)"
check "the rollback came long before the canary's end ($((ended - applied)) ms < 20000)" \
	[ $((ended - applied)) -lt 20000 ]
check "the workers file holds 4 again" t_wait_for 2 grep -qx 4 "$K/workers"
wid=$(t_q "SELECT id FROM changes WHERE source = 'tune:app-workers'")
"$HSC" --socket "$T_SOCK" explain "$wid" >"$T_DIR/explain.txt" 2>&1
cat "$T_DIR/explain.txt"
check "explain $wid names the knob, before -> after, the breach and the error-rate test" \
	bash -c "grep -q '$K/workers' '$T_DIR/explain.txt' && grep -qE 'breach +error rate' '$T_DIR/explain.txt' && grep -qE '^ *error rate +two-proportion|^ *error rate +fisher' '$T_DIR/explain.txt'"
check "and the app went back to setting 4" t_wait_for 5 bash -c "tail -n 1 '$T_DIR/app.log' | grep -qx 'setting 4'"

# d. no effect: inconclusive, rolled back
check "the unused trial is applied (4 -> 8)" \
	t_wait_for 90 t_q_is "SELECT before || ' ' || after FROM changes WHERE source = 'tune:app-unused'" "4 8"
check "after its full canary it is ROLLED_BACK" \
	t_wait_for 50 t_q_is "SELECT state FROM changes WHERE source = 'tune:app-unused'" ROLLED_BACK
t_q "SELECT o.verdict, json_extract(o.stats, '$.reason') FROM outcomes o JOIN changes c ON c.id = o.change_id WHERE c.source = 'tune:app-unused'"
check "its verdict is INCONCLUSIVE after the whole canary" \
	t_q_is "SELECT o.verdict || ' ' || json_extract(o.stats, '$.outcome') FROM outcomes o JOIN changes c ON c.id = o.change_id WHERE c.source = 'tune:app-unused'" \
	"INCONCLUSIVE done"
check "the samples of both arms are in the statistics (>= 10 each)" \
	t_q_is "SELECT json_extract(o.stats, '$.samples.canary') >= 10 AND json_extract(o.stats, '$.samples.baseline') >= 10 FROM outcomes o JOIN changes c ON c.id = o.change_id WHERE c.source = 'tune:app-unused'" 1
check "the unused file holds 4 again" t_wait_for 2 grep -qx 4 "$K/unused"
check "both searches end (budget: one trial each)" t_wait_for 10 t_log_has "tuning job app-unused: search budget"
check "the first daemon stops cleanly" t_stop

# never twice: a new daemon on the same memory
t_start
check "the second daemon does not try workers = 8 again" \
	t_wait_for 90 t_log_has "tuning job app-workers: file $K/workers = 8 not tried: .*change 1"
check "nor unused = 8" \
	t_wait_for 90 t_log_has "tuning job app-unused: file $K/unused = 8 not tried: .*change"
check "no second change to 8 was recorded" \
	t_q_is "SELECT count(*) FROM changes WHERE source LIKE 'tune:%' AND after = '8'" 2
check "the second daemon stops cleanly" t_stop
check "both files hold 4 as before the test" bash -c "grep -qx 4 '$K/workers' && grep -qx 4 '$K/unused'"
t_done
