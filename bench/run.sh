#!/usr/bin/env bash
# bench/run.sh - runs every benchmark of build/bench/ and prints their figures.
# Benchmarks measure and print; they never pass or fail on a time.
set -u
cd "$(dirname "$0")/.."
for b in build/bench/*; do
	[ -x "$b" ] || continue
	echo "== $b"
	"$b" || echo "benchmark $b failed (exit $?)"
done
