#!/usr/bin/env bash
# bench/run.sh - runs every benchmark and prints their figures.
# Benchmarks measure and print; they never pass or fail on a time.
#
# A benchmark is a build/bench/*_bench binary (bench/<name>_bench.c) or a bench/*.sh script
# other than this one. The other binaries of build/bench/ are helpers the scripts run
# (sysloop and floor for overhead.sh), and are not run on their own.
set -u
cd "$(dirname "$0")/.." || exit 1
for b in build/bench/*_bench bench/*.sh; do
	if [ ! -f "$b" ] || [ ! -x "$b" ] || [ "$b" = bench/run.sh ]; then continue; fi
	echo "== $b"
	"$b" || echo "benchmark $b failed (exit $?)"
done
