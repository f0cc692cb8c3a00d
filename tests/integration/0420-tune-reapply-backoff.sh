#!/usr/bin/env bash
# 0420-tune-reapply-backoff.sh - a kept tuning value is re-applied after a restart where the
# policy says so (reapply: true), and an administrator who changes a knob homeostat manages
# wins: homeostat notices, backs off that knob, records why, and does not take it back, not
# even after its own restart.
#
# knobapp (target "app") reads its setting from $K/workers; below 6 half of its syscalls fail
# (EBADF). The job app-workers (one trial) raises it 4 -> 8: errors stop, KEEP. The daemon
# stops; the setting goes back to 4 as after a reboot. A second daemon re-applies 8 at once
# (a new change, KEPT without a canary: it was judged before). Then the administrator writes
# 5: within the 5 s check the job backs off, the change is recorded ROLLED_BACK as
# "abandoned: ...", and 5 stays. A third daemon neither re-applies nor tunes the knob.
# hs-asan: no (0400 and 0410 run the tuner under the sanitizers; this one adds time, not paths)
. "$(dirname "$0")/lib.sh"

APP=$HS_TOP/$HS_BUILD/workloads/knobapp
[ -x "$APP" ] || { echo "missing $APP: run make check-tests"; exit 1; }

t_config
t_tune_policy errors_only
P=$T_DIR/etc/policy.yaml
K=$T_DIR/app
mkdir -p "$K"
echo 4 >"$K/workers"
t_add_target app comm knobapp
sed -i "s|^    comm: knobapp\$|&\n    slo: {error_rate: 1%}|" "$P"
cat >>"$P" <<EOF
tuning:
  jobs:
    - name: app-workers
      target: app
      max_trials: 1
      reapply: true
      class: auto
      knobs:
        - {file: $K/workers, min: 1, max: 8, step: 2x, restart: false}
EOF
check "the test policy is valid" "$HSD" --check-config --policy "$P"

"$APP" "$K/workers" 100 6 >"$T_DIR/app.log" 2>&1 &
APID=$!
on_exit "kill $APID 2>/dev/null"
t_start
check "the trial 4 -> 8 is KEPT (the errors stopped)" \
	t_wait_for 120 t_q_is "SELECT before || ' ' || after || ' ' || state FROM changes WHERE id = 1" "4 8 KEPT"
check "its verdict is KEEP" t_q_is "SELECT verdict FROM outcomes WHERE change_id = 1" KEEP
check "the first daemon stops cleanly, the kept value stays" t_stop
check "the file holds 8 after the stop" grep -qx 8 "$K/workers"

# a reboot: the application's setting is back to its default
echo 4 >"$K/workers"
t_start
check "the second daemon re-applies 8 (reapply: true)" \
	t_wait_for 90 t_q_is "SELECT before || ' ' || after || ' ' || state FROM changes WHERE id = 2" "4 8 KEPT"
check "the change says it re-applies change 1" \
	bash -c "sqlite3 '$T_DB' 'SELECT why FROM changes WHERE id = 2' | grep -q 're-applies .* kept by change 1 (reapply: true)'"
check "the file holds 8 again" grep -qx 8 "$K/workers"

# the administrator takes the knob over
echo 5 >"$K/workers"
check "homeostat notices and backs off" t_wait_for 15 t_log_has "tuning job app-workers backs off: file $K/workers was set to 8 by change [0-9]+ and now holds 5"
check "the change is recorded as abandoned, rolled back without touching the host" \
	t_q_is "SELECT c.state || ' ' || (o.failure_reason LIKE 'abandoned: %') FROM changes c JOIN outcomes o ON o.change_id = c.id WHERE c.id = (SELECT max(id) FROM changes) ORDER BY o.id DESC LIMIT 1" "ROLLED_BACK 1"
check "the back-off is in the audit trail" \
	t_q_is "SELECT count(*) > 0 FROM audit WHERE event = 'tune.backoff'" 1
sleep 6
check "the administrator's 5 stays" grep -qx 5 "$K/workers"
check "the second daemon stops cleanly" t_stop
n=$(t_q "SELECT count(*) FROM changes")

t_start
check "a third daemon keeps off the knob and says why" \
	t_wait_for 90 t_log_has "tuning job app-workers: file $K/workers was changed by someone else while homeostat held it"
check "no change was made by the third daemon" t_q_is "SELECT count(*) FROM changes" "$n"
check "the administrator's 5 still stands" grep -qx 5 "$K/workers"
check "the third daemon stops cleanly" t_stop
t_done
