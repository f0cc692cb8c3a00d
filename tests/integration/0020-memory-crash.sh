#!/bin/sh
# 0020-memory-crash.sh - kill -9 the memory writer mid-burst; nothing it committed may be lost.
#
# Five rounds append to one database: each runs build/tests/memburst, which prints a line
# after every committed transaction, and SIGKILLs it after about a second (timeout -s KILL,
# at a different moment each round). Then the database must pass PRAGMA integrity_check and
# foreign_key_check, open with the current schema, and hold every row that was printed.
# A forged line checks that the verifier does notice a missing row.
#
# Needs no root. HS_BUILD selects the build directory (default: build).
set -u

BUILD=${HS_BUILD:-build}
MEMBURST=$BUILD/tests/memburst
ROUNDS=5
passed=0
failed=0

pass() {
	echo "ok - $1"
	passed=$((passed + 1))
}

fail() {
	echo "FAIL - $1"
	failed=$((failed + 1))
}

finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit $?
}

if [ ! -x "$MEMBURST" ]; then
	fail "memburst not built: '$MEMBURST' (make check-tests, or set HS_BUILD)"
	finish
fi
if ! command -v sqlite3 >/dev/null 2>&1; then
	echo "skipped: the sqlite3 command-line tool is not installed (make deps)"
	finish
fi

tmp=$(mktemp -d /tmp/homeostat-0020.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
db=$tmp/memory.db

round=1
while [ "$round" -le "$ROUNDS" ]; do
	# 0.8 s, 0.95 s, 1.1 s, ...: the kill lands at a different point of the loop each time.
	ms=$((650 + 150 * round))
	secs=$((ms / 1000)).$(printf '%03d' $((ms % 1000)))
	timeout -s KILL "$secs" "$MEMBURST" "$db" >"$tmp/log.$round" 2>"$tmp/err.$round"
	rc=$?
	lines=$(grep -c '' "$tmp/log.$round")
	if [ "$rc" -eq 137 ] && [ "$lines" -gt 0 ]; then
		pass "round $round: killed by SIGKILL after $secs s, $lines commits reported"
	else
		fail "round $round: exit status $rc (expected 137), $lines commits reported: $(head -c 300 "$tmp/err.$round")"
	fi
	round=$((round + 1))
done

res=$(timeout 60 sqlite3 "$db" 'PRAGMA integrity_check' 2>&1)
if [ "$res" = ok ]; then
	pass "integrity_check: ok"
else
	fail "integrity_check: $res"
fi

res=$(timeout 60 sqlite3 "$db" 'PRAGMA foreign_key_check' 2>&1)
if [ -z "$res" ]; then
	pass "foreign_key_check: no dangling references"
else
	fail "foreign_key_check: $res"
fi

res=$(timeout 60 sqlite3 "$db" 'PRAGMA journal_mode; PRAGMA user_version' 2>&1 | tr '\n' ' ')
if [ "$res" = "wal 3 " ]; then
	pass "journal_mode wal, schema version 3"
else
	fail "journal_mode and user_version: '$res', expected 'wal 3'"
fi

# Every id printed as committed, in every round, is in the database.
if timeout 120 "$MEMBURST" --verify "$db" "$tmp"/log.[0-9]* >"$tmp/verify" 2>&1; then
	pass "every committed row survived: $(tail -n 1 "$tmp/verify")"
else
	fail "committed rows lost: $(head -c 1000 "$tmp/verify")"
fi

# Ids only grow across the crashes: the newest change id of each round is above the last.
prev=0
mono=1
round=1
while [ "$round" -le "$ROUNDS" ]; do
	last=$(grep '^change [0-9]*$' "$tmp/log.$round" | tail -n 1 | cut -d' ' -f2)
	if [ -z "$last" ] || [ "$last" -le "$prev" ]; then
		mono=0
	fi
	prev=${last:-$prev}
	round=$((round + 1))
done
if [ "$mono" -eq 1 ]; then
	pass "change ids grow across crashes (last: $prev)"
else
	fail "change ids did not grow across crashes"
fi

# The verifier itself must notice a row that is not there.
printf 'change 999999999\n' >"$tmp/forged"
if timeout 120 "$MEMBURST" --verify "$db" "$tmp/forged" >"$tmp/verify-forged" 2>&1; then
	fail "the verifier accepted a forged commit"
else
	pass "the verifier catches a forged commit"
fi

finish
