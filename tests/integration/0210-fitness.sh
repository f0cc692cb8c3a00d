#!/usr/bin/env bash
# 0210-fitness.sh - the fitness score against a real workload: a target whose SLO allows 1 %
# of failed calls scores idle before it has members, healthy while it only sleeps, far below
# healthy while half its calls fail (close(-1): EBADF), healthy again once they stop; status
# shows the score and its parts, and the history rows land in the sqlite database.
# hs-asan: yes
. "$(dirname "$0")/lib.sh"

W=$HS_TOP/build/workloads/sysfail
command -v sqlite3 >/dev/null || skip_all "the sqlite3 CLI is not installed"
t_config
# The workload runs under the target's name: a copy of sysfail called fitsvc.
cp "$W" "$T_DIR/fitsvc"
t_add_target fitsvc comm fitsvc
sed -i 's/^    comm: fitsvc$/    comm: fitsvc\n    slo:\n      error_rate: 1%/' "$T_DIR/etc/policy.yaml"
check "the policy gives fitsvc an error SLO of 1%" grep -q '^      error_rate: 1%$' "$T_DIR/etc/policy.yaml"
check "daemon starts with the target" t_start --tick 500

# Prints fields of one row of the fitness table: fit TARGET FIELD...
fit() {
	"$HSC" --socket "$T_SOCK" status --json | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
for row in d.get("fitness", []):
    if row["target"] == sys.argv[1]:
        print(" ".join("null" if row[f] is None else str(row[f]) for f in sys.argv[2:]))' "$@"
}
# Waits up to 10 s for a python condition on score s, errors e and basis b of fitsvc.
wait_fit() { # condition
	local i row
	for i in $(seq 40); do
		row=$(fit fitsvc score errors basis)
		if python3 -c "
s, e, b = '$row'.split() if len('$row'.split()) == 3 else ('null', 'null', '')
s = None if s == 'null' else float(s)
e = None if e == 'null' else float(e)
exit(0 if ($1) else 1)" 2>/dev/null; then
			echo "fitsvc: score, errors, basis = $row"
			return 0
		fi
		sleep 0.25
	done
	echo "fitsvc: score, errors, basis = $row (condition: $1)"
	return 1
}

# 1. No member yet: idle, no score, not failing.
check "a target without members is idle, without a score" wait_fit "b == 'idle' and s is None"
host=$(fit host basis)
check "the host has a row: basis '$host' (learning for its first 30 s of data)" \
	test "$host" = learning -o "$host" = baseline

# 2. It only sleeps (1 ms a call, ~900 calls/s, none failing): healthy against its SLO.
"$T_DIR/fitsvc" sleep 30000 1 >/dev/null &
sleeper=$!
on_exit "kill $sleeper 2>/dev/null"
check "sleeping only: healthy (score >= 0.9, errors 1, basis slo)" \
	wait_fit "b == 'slo' and s is not None and s >= 0.9 and e == 1"

# 3. Half its calls fail: as many close(-1) as sleeps.
"$T_DIR/fitsvc" ebadf 8000 900 >/dev/null &
failer=$!
on_exit "kill $failer 2>/dev/null"
check "half the calls failing: errors far below healthy (< 0.1)" \
	wait_fit "b == 'slo' and e is not None and e < 0.1"
row=$(fit fitsvc score latency errors throughput cost)
echo "fitsvc while failing: score latency errors throughput cost = $row"
check "half the calls failing: the score drops well below healthy (< 0.75)" \
	python3 -c "import sys; s = '$row'.split()[0]; sys.exit(not (s != 'null' and float(s) < 0.75))"
status_text=$("$HSC" --socket "$T_SOCK" status)
check "status shows a fitness table with its columns" \
	grep -qE '^ *TARGET +SCORE +LATENCY +ERRORS +THROUGHPUT +COST +BASIS' <<<"$status_text"
wait $failer

# 4. The failures stop, the sleeps go on: healthy again.
check "only sleeping again: healthy (score >= 0.9)" \
	wait_fit "b == 'slo' and s is not None and s >= 0.9 and e == 1"
kill $sleeper 2>/dev/null
wait $sleeper 2>/dev/null
check "daemon stops cleanly" t_stop

# 5. The history: downsampled rows in the database, written at the latest at the stop.
q() { timeout 60 sqlite3 "$T_DB" "$1" 2>&1; }
check "schema version 3" test "$(q 'PRAGMA user_version')" = 3
rows=$(q "SELECT count(*) FROM fitness WHERE target = 'fitsvc'")
echo "fitness rows of fitsvc: $rows"
q "SELECT start_at, end_at, samples, scored, round(score_min, 3), round(score_avg, 3),
	round(score_max, 3), round(errors, 3), basis FROM fitness WHERE target = 'fitsvc'
	ORDER BY start_at" | sed 's/^/    /'
check "fitsvc has rows that were idle, healthy and failing" test \
	"$(q "SELECT (SELECT count(*) FROM fitness WHERE target = 'fitsvc' AND basis = 'idle') > 0
	AND (SELECT max(score_max) FROM fitness WHERE target = 'fitsvc' AND basis = 'slo') >= 0.9
	AND (SELECT min(score_min) FROM fitness WHERE target = 'fitsvc' AND basis = 'slo') < 0.75
	AND (SELECT min(errors) FROM fitness WHERE target = 'fitsvc') < 0.1")" = 1
check "rows for the host and the rest of the host too" test \
	"$(q "SELECT count(DISTINCT target) FROM fitness WHERE target IN ('host', 'other')")" = 2
check "no row longer than 10 s, none out of order" test \
	"$(q "SELECT count(*) FROM fitness WHERE end_at - start_at >= 10000 OR end_at < start_at
	OR scored > samples")" = 0
check "a row per target per 10 s at most, or on a change" test \
	"$(q "SELECT count(*) <= 2 * (max(end_at) - min(start_at)) / 10000 + 8 FROM fitness
	WHERE target = 'fitsvc'")" = 1
t_done
