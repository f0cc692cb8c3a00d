#!/usr/bin/env bash
# tests/run.sh - runs every test of homeostat and ends with one line "N passed, N failed".
#
# Unit tests (cmocka, TAP output) run from the plain and the sanitized build. Integration
# tests (tests/integration/NNNN-*.sh, root) run from the plain build, and those whose header
# holds the line "# hs-asan: yes" run again from build/asan. A script exits 0 (pass), 77
# (skipped, with the reason on its output) or anything else (fail); when its last line is
# "N passed, N failed" its subtests are counted.
set -u
cd "$(dirname "$0")/.."

passed=0 failed=0 skipped=0
failures=()
TEST_TIMEOUT=${TEST_TIMEOUT:-600}

count_tap() { # name file
	local ok notok
	ok=$(grep -c '^ok ' "$2")
	notok=$(grep -c '^not ok ' "$2")
	passed=$((passed + ok))
	failed=$((failed + notok))
	[ "$notok" -eq 0 ] || failures+=("$1")
	echo "$ok passed, $notok failed"
}

run_unit() { # build dir
	local t out rc
	for t in "$1"/tests/test_*; do
		[ -x "$t" ] || continue
		out=$(mktemp)
		CMOCKA_MESSAGE_OUTPUT=TAP timeout "$TEST_TIMEOUT" "$t" >"$out" 2>&1
		rc=$?
		printf '%-40s ' "$t"
		count_tap "$t" "$out"
		if [ $rc -ne 0 ] && ! grep -q '^not ok ' "$out"; then
			# crashed, or a sanitizer report: one failure more
			failed=$((failed + 1))
			failures+=("$t (exit $rc)")
		fi
		if [ $rc -ne 0 ]; then sed 's/^/    /' "$out" | grep -v '^    ok ' | head -60; fi
		rm -f "$out"
	done
}

run_integration() { # script build
	local s=$1 b=$2 out rc last p f name t0=$SECONDS
	name="$s [$b]"
	out=$(mktemp)
	HS_BUILD=$b timeout --kill-after=10 "$TEST_TIMEOUT" bash "$s" >"$out" 2>&1
	rc=$?
	last=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
	printf '%-52s %4ds  ' "$name" $((SECONDS - t0))
	if [ $rc -eq 77 ]; then
		skipped=$((skipped + 1))
		echo "skipped: $(tail -n 1 "$out")"
	elif [ -n "$last" ]; then
		p=${last%% passed*}
		f=${last#*, }; f=${f%% failed*}
		passed=$((passed + p))
		failed=$((failed + f))
		if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); fi
		echo "$last"
		if [ $rc -ne 0 ] || [ "$f" -ne 0 ]; then failures+=("$name"); sed 's/^/    /' "$out" | tail -n 80; fi
	elif [ $rc -eq 0 ]; then
		passed=$((passed + 1)); echo "passed"
	else
		failed=$((failed + 1)); failures+=("$name"); echo "failed (exit $rc)"
		sed 's/^/    /' "$out" | tail -n 80
	fi
	rm -f "$out"
}

echo "== unit tests (build)"
run_unit build
echo "== unit tests (build/asan: AddressSanitizer + UBSan)"
run_unit build/asan
echo "== integration tests"
if [ "$(id -u)" -ne 0 ]; then
	echo "integration tests skipped: they need root (sudo make test)"
	skipped=$((skipped + 1))
else
	for s in tests/integration/[0-9]*.sh; do
		[ -f "$s" ] || continue
		run_integration "$s" build
		if grep -q '^# hs-asan: yes' "$s"; then run_integration "$s" build/asan; fi
	done
fi

echo
for f in "${failures[@]+"${failures[@]}"}"; do echo "FAILED: $f"; done
echo "$passed passed, $failed failed, $skipped skipped ($((SECONDS / 60)) min $((SECONDS % 60)) s)"
[ "$failed" -eq 0 ]
