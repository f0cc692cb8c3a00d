#!/bin/bash
# 0010-check-config-corpus.sh - `homeostatd --check-config` against the configuration corpus.
# hs-asan: yes
#
# Every tests/config/bad/NN-name.yaml is a policy and every tests/config/bad/NN-name/ a
# runbook directory (checked with tests/config/good/policy.yaml); each must exit 1 and print
# to stderr exactly tests/config/bad/NN-name.expected, every line shaped path:line:col: msg.
# The good configurations (tests/config/good, policies/default.yaml with remediations/) must
# print "configuration OK" and exit 0. Cases that depend on the file system (a huge file,
# wrong owner, group-writable file or directory, symbolic link, missing file, directory as
# policy) are made here, in a temporary directory removed on exit.
#
# The daemon accepts only root-owned configuration that group and others cannot write, so
# the corpus is copied into a root-owned temporary tree with those modes and checked there,
# from its root, with the same relative paths as in the .expected files.
#
# Usage (from the repository root, as root): tests/integration/0010-check-config-corpus.sh
# HS_BUILD selects the build (default build; build/asan for the sanitized one).
set -u

HS_BUILD=${HS_BUILD:-build}
case $HS_BUILD in /*) ;; *) HS_BUILD=$PWD/$HS_BUILD ;; esac
HSD=$HS_BUILD/homeostatd

if [ "$(id -u)" != 0 ]; then
	echo "0010-check-config-corpus: skipped: needs root (the daemon accepts only root-owned configuration)"
	exit 77
fi
if [ ! -x "$HSD" ]; then
	echo "0010-check-config-corpus: $HSD not built" >&2
	echo "0 passed, 1 failed"
	exit 1
fi

tmp=$(mktemp -d /tmp/hs-check-config.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

# run_check NAME EXPECTED_RC EXPECTED_STDERR_FILE ARGS...: runs from $tmp/tree.
run_check() {
	local name=$1 want_rc=$2 want=$3 rc bad_line
	shift 3
	(cd "$tmp/tree" && timeout 30 "$HSD" --check-config "$@" >"$tmp/out" 2>"$tmp/err")
	rc=$?
	bad_line=$(grep -Ev '^[^:]+:[0-9]+:[0-9]+: ' "$tmp/err" | head -n 1)
	if [ "$want_rc" = 0 ]; then
		if [ "$rc" = 0 ] && [ "$(cat "$tmp/out")" = "configuration OK" ] && [ ! -s "$tmp/err" ]; then
			passed=$((passed + 1))
			return
		fi
		echo "FAIL $name: exit $rc, stdout '$(cat "$tmp/out")', stderr:"
		sed 's/^/    /' "$tmp/err"
		failed=$((failed + 1))
		return
	fi
	if [ "$rc" != "$want_rc" ]; then
		echo "FAIL $name: exit $rc, expected $want_rc; stderr:"
		sed 's/^/    /' "$tmp/err"
		failed=$((failed + 1))
	elif [ ! -s "$tmp/err" ] || [ -n "$bad_line" ]; then
		echo "FAIL $name: stderr empty or not path:line:col: message: '$bad_line'"
		failed=$((failed + 1))
	elif ! diff -u "$want" "$tmp/err" >"$tmp/diff"; then
		echo "FAIL $name: stderr differs from $(basename "$want"):"
		sed 's/^/    /' "$tmp/diff"
		failed=$((failed + 1))
	else
		passed=$((passed + 1))
	fi
}

# The corpus and the repo's configuration, root-owned, not writable by group or others.
mkdir -p "$tmp/tree/tests" "$tmp/gen"
cp -a tests/config "$tmp/tree/tests/" && cp -a policies remediations "$tmp/tree/" || exit 1
chown -R 0:0 "$tmp/tree" && chmod -R go-w "$tmp/tree"

good_policy=tests/config/good/policy.yaml

run_check good-policy 0 /dev/null --policy $good_policy
run_check good-runbooks 0 /dev/null --policy $good_policy --runbooks tests/config/good/runbooks
run_check default-policy 0 /dev/null --policy policies/default.yaml --runbooks remediations

for f in tests/config/bad/*.yaml; do
	run_check "$f" 1 "${f%.yaml}.expected" --policy "$f"
done
for d in tests/config/bad/*/; do
	d=${d%/}
	run_check "$d/" 1 "$d.expected" --policy $good_policy --runbooks "$d"
done

# Generated cases, in $tmp/tree/gen so that the relative paths stay short.
g=$tmp/tree/gen
mkdir -p "$g" && chmod 0755 "$g"
gen_case() { # NAME EXPECTED_LINE ARGS...
	local name=$1
	printf '%s\n' "$2" >"$tmp/expected"
	shift 2
	run_check "$name" 1 "$tmp/expected" "$@"
}

{ echo "mode: enforce"; echo "protected:"; echo "  paths:"
  yes "    - /some/path/that/is/long/enough/to/fill/the/file/quickly" | head -n 20000; } >"$g/huge.yaml"
size=$(stat -c %s "$g/huge.yaml")
gen_case huge-file "gen/huge.yaml:1:1: file too large ($size bytes), at most 1048576" \
	--policy gen/huge.yaml

cp $good_policy "$g/owner.yaml" && chown 65534:0 "$g/owner.yaml"
gen_case wrong-owner "gen/owner.yaml:1:1: not owned by root (owner uid 65534)" --policy gen/owner.yaml

cp $good_policy "$g/mode.yaml" && chmod 0664 "$g/mode.yaml"
gen_case group-writable "gen/mode.yaml:1:1: writable by group or others (mode 0664), refusing: the agent acts as root on what it says" \
	--policy gen/mode.yaml

cp $good_policy "$g/mode2.yaml" && chmod 0646 "$g/mode2.yaml" && chown 65534:0 "$g/mode2.yaml"
printf '%s\n' "gen/mode2.yaml:1:1: not owned by root (owner uid 65534)" \
	"gen/mode2.yaml:1:1: writable by group or others (mode 0646), refusing: the agent acts as root on what it says" \
	>"$tmp/expected2"
run_check owner-and-mode 1 "$tmp/expected2" --policy gen/mode2.yaml

ln -s ../$good_policy "$g/link.yaml"
gen_case symlink "gen/link.yaml:1:1: is a symbolic link, refusing" --policy gen/link.yaml

gen_case missing-file "gen/missing.yaml:1:1: cannot open: No such file or directory" \
	--policy gen/missing.yaml

mkdir -p "$g/dir.yaml" && chmod 0755 "$g/dir.yaml"
gen_case policy-is-directory "gen/dir.yaml:1:1: not a regular file" --policy gen/dir.yaml

mkdir -p "$g/rb-mode" && cp tests/config/good/runbooks/*.yaml "$g/rb-mode/" && chmod 0775 "$g/rb-mode"
gen_case runbook-dir-writable "gen/rb-mode:1:1: writable by group or others (mode 0775), refusing: the agent acts as root on what it says" \
	--policy $good_policy --runbooks gen/rb-mode

mkdir -p "$g/rb-owner" && cp tests/config/good/runbooks/fd-exhaustion.yaml "$g/rb-owner/" &&
	chmod 0755 "$g/rb-owner" && chown 65534:0 "$g/rb-owner/fd-exhaustion.yaml"
gen_case runbook-file-owner "gen/rb-owner/fd-exhaustion.yaml:1:1: not owned by root (owner uid 65534)" \
	--policy $good_policy --runbooks gen/rb-owner

gen_case runbook-dir-missing "gen/no-such-dir:1:1: cannot open: No such file or directory" \
	--policy $good_policy --runbooks gen/no-such-dir

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
