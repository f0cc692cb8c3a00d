#!/usr/bin/env bash
# bench/tune.sh - self-tuning scenarios a and b, run longer than the tests: fitness before and
# after, trials, time to converge, and each scenario's own ground truth.
#
# It runs the integration scenarios themselves (the same namespaces, cgroups, workloads and
# policies), with TUNE_TRIALS trials allowed (default 6) instead of the tests' 2 and 3:
#   a  tests/integration/0410-tune-listen-backlog.sh   somaxconn in a server's netns, with
#      restarts; ground truth: the clients' connect p99
#   b  tests/integration/0430-tune-cpu-tradeoff.sh     cpu.shares of a batch cgroup against a
#      server's p99 and the batch job's CPU; ground truth: the server's own wakeup delay and
#      the batch job's CPU time
# and prints, from the tuner's own report ("search <why> after N trials ... in T s: values;
# fitness A -> B"), the fitness of the objective before (the first baseline window, median)
# and after (the last one), the number of trials and the time from the search's start to its
# end. It measures; it never fails on a figure.
set -u
cd "$(dirname "$0")/.." || exit 1
[ "$(id -u)" -eq 0 ] || { echo "tune: needs root, skipped"; exit 0; }
export TUNE_TRIALS=${TUNE_TRIALS:-6}
export HS_BUILD=build

run() { # name script
	local out report
	out=$(mktemp)
	"$2" >"$out" 2>&1
	report=$(grep -E "tuning job [a-z-]+: search [a-z]+ after" "$out" | tail -n 1)
	echo "scenario $1 ($2, at most $TUNE_TRIALS trials)"
	if [ -z "$report" ]; then
		echo "  no report; the run said:"
		sed 's/^/    /' "$out" | tail -n 20
		rm -f "$out"
		return
	fi
	echo "$report" | sed -E 's/.*search ([a-z]+) after ([0-9]+) trials \(([^)]*)\) in ([0-9]+) s: (.*); fitness ([0-9.nan-]+) -> ([0-9.nan-]+).*/  fitness before \6, after \7\n  trials \2 (\3), stopped: \1\n  time to converge \4 s\n  result: \5/'
	grep -E "tuning job [a-z-]+: trial [0-9]+ \(change" "$out" | sed -E 's/^.*tuning job [a-z-]+: /  /'
	grep -E "^(client connect p99|server p99|batch CPU|objective fitness)" "$out" | sed 's/^/  /'
	grep -cE "^not ok" "$out" | awk '$1 > 0 { print "  (" $1 " checks of the test did not hold at this length)" }'
	rm -f "$out"
}

run a tests/integration/0410-tune-listen-backlog.sh
run b tests/integration/0430-tune-cpu-tradeoff.sh
