/* test_gate.c - the safety gate: every rule, its order, and the exact reason it gives.
 *
 * Policies are parsed from YAML text with safe_policy_parse(); time is passed in, so every
 * test runs the clock it needs (T0 is 12:00:00 UTC of some day). Nothing here needs root.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "lib/errors.h"
#include "lib/util.h"
#include "safety/gate.h"
#include "safety/policy.h"

#define SEC  1000LL
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)
#define T0   (19000LL * 24 * HOUR + 12 * HOUR) /* 12:00:00 UTC */

static const char policy_fmt[] = "mode: %s\n"
				 "budgets:\n"
				 "  changes_per_hour: 6\n"
				 "  concurrent_changes: 2\n"
				 "  blast_radius: {processes: 10, targets: 1}\n"
				 "protected:\n"
				 "  paths: [/srv/data, /sys/fs/cgroup/critical.slice, "
				 "/proc/sys/net/ipv4/]\n"
				 "  units: [sshd.service]\n"
				 "  processes: [sshd]\n"
				 "  sysctl_deny: [kernel.*, vm.overcommit_memory]\n"
				 "  sysctl_ranges:\n"
				 "    - {name: net.core.somaxconn, min: 128, max: 65535}\n"
				 "    - {name: net/core/rmem_max, min: 4096, max: 16777216}\n"
				 "action_classes:\n"
				 "  - {name: auto, approval: none}\n"
				 "  - {name: tell, approval: notify, delay: 90s}\n"
				 "  - {name: restart, approval: require, ttl: 15m}\n"
				 "  - {name: approve-default, approval: require}\n"
				 "approvals:\n"
				 "  ttl: 30m\n"
				 "targets:\n"
				 "  - {name: web, comm: nginx}\n"
				 "  - {name: db, comm: postgres}\n"
				 "  - {name: ssh, unit: sshd.service}\n"
				 "  - {name: daemon, comm: sshd}\n";

static struct safe_policy *policy_named(const char *path, const char *mode)
{
	struct hs_errors e = {0};
	struct safe_policy *p = NULL;
	char text[sizeof(policy_fmt) + 16];

	snprintf(text, sizeof(text), policy_fmt, mode);
	if (safe_policy_parse(path, text, strlen(text), &p, &e) < 0) {
		hs_errors_print(&e, stderr);
		fail_msg("the test policy does not parse");
	}
	hs_errors_clear(&e);
	return p;
}

static struct safe_policy *policy(const char *mode)
{
	return policy_named("gate.yaml", mode);
}

static struct safe_state st;

static int setup(void **state)
{
	safe_gate_init(&st, NULL);
	return 0;
}

/* A proposal that passes every rule of the test policy: raise nginx's RLIMIT_NOFILE. */
static struct safe_proposal rlimit_prop(const char *source, const char *target, int64_t now)
{
	struct safe_proposal p = {
	    .source = source,
	    .target = target,
	    .action_class = "auto",
	    .comm = "nginx",
	    .before = "1024",
	    .now_ms = now,
	    .processes = 1,
	};

	act_request_init(&p.req, ACT_KIND_RLIMIT);
	p.req.pid = 1234;
	p.req.rlimit.resource = RLIMIT_NOFILE;
	p.req.rlimit.soft = 4096;
	return p;
}

static struct safe_proposal sysctl_prop(const char *name, const char *value)
{
	struct safe_proposal p = rlimit_prop("tuner-net", "web", T0);

	act_request_init(&p.req, ACT_KIND_SYSCTL);
	hs_strlcpy(p.req.sysctl.name, name, sizeof(p.req.sysctl.name));
	hs_strlcpy(p.req.sysctl.value, value, sizeof(p.req.sysctl.value));
	p.comm = NULL;
	p.before = NULL;
	return p;
}

static struct safe_proposal restart_prop(const char *target, const char *command)
{
	struct safe_proposal p = rlimit_prop("crash-loop", target, T0);

	act_request_init(&p.req, ACT_KIND_RESTART);
	hs_strlcpy(p.req.restart.command, command, sizeof(p.req.restart.command));
	p.action_class = "restart";
	p.comm = NULL;
	p.before = NULL;
	return p;
}

static struct safe_proposal cgroup_prop(const char *path, const char *file, const char *value)
{
	struct safe_proposal p = rlimit_prop("mem-pressure", "db", T0);

	act_request_init(&p.req, ACT_KIND_CGROUP);
	hs_strlcpy(p.req.cgroup.path, path, sizeof(p.req.cgroup.path));
	hs_strlcpy(p.req.cgroup.file, file, sizeof(p.req.cgroup.file));
	hs_strlcpy(p.req.cgroup.value, value, sizeof(p.req.cgroup.value));
	p.comm = NULL;
	p.before = NULL;
	return p;
}

/* Asserts decision, rule and exact reason of pol on p (with the file's state st). */
#define expect(pol, p, want_decision, want_rule, want_reason)                                      \
	do {                                                                                       \
		struct safe_decision_out o_;                                                       \
		struct safe_proposal p_ = (p);                                                     \
		assert_int_equal(safe_gate_check((pol), &st, &p_, &o_), 0);                        \
		assert_string_equal(o_.reason, (want_reason));                                     \
		assert_int_equal(o_.decision, (want_decision));                                    \
		assert_int_equal(o_.rule, (want_rule));                                            \
	} while (0)

#define ALLOWED_RLIMIT "allowed: set RLIMIT_NOFILE soft 1024 -> 4096 on pid 1234"

/* ---- mode ---- */

static void test_mode_enforce(void **state)
{
	struct safe_policy *pol = policy("enforce");
	struct safe_decision_out o;
	struct safe_proposal p = rlimit_prop("fd-exhaustion", "web", T0);

	assert_int_equal(safe_gate_check(pol, &st, &p, &o), 0);
	assert_int_equal(o.decision, SAFE_ALLOW);
	assert_int_equal(o.rule, SAFE_RULE_NONE);
	assert_string_equal(o.reason, ALLOWED_RLIMIT);
	assert_int_equal(o.not_before_ms, 0);
	assert_int_equal(o.expires_at_ms, 0);
	p.before = NULL;
	p.req.rlimit.set_hard = true;
	p.req.rlimit.hard = RLIM_INFINITY;
	expect(pol, p, SAFE_ALLOW, SAFE_RULE_NONE,
	       "allowed: set RLIMIT_NOFILE soft to 4096, hard unlimited on pid 1234");
	safe_policy_free(pol);
}

static void test_mode_dry_run(void **state)
{
	struct safe_policy *pol = policy("dry_run");
	struct safe_proposal p = rlimit_prop("fd-exhaustion", "web", T0);

	expect(pol, p, SAFE_DRY_RUN, SAFE_RULE_MODE,
	       "dry run: would set RLIMIT_NOFILE soft 1024 -> 4096 on pid 1234");
	/* Every other rule still runs: a dry run says what enforce would refuse. */
	p.comm = "sshd";
	expect(pol, p, SAFE_DENY, SAFE_RULE_PROCESS, "denied: process 'sshd' is protected");
	p.comm = "nginx";
	p.action_class = "tell";
	expect(pol, p, SAFE_DRY_RUN, SAFE_RULE_MODE,
	       "dry run: would set RLIMIT_NOFILE soft 1024 -> 4096 on pid 1234 (after 90 s notice, "
	       "class 'tell')");
	p.action_class = "restart";
	expect(pol, p, SAFE_DRY_RUN, SAFE_RULE_MODE,
	       "dry run: would set RLIMIT_NOFILE soft 1024 -> 4096 on pid 1234 (after approval, "
	       "class 'restart')");
	safe_policy_free(pol);
}

static void test_mode_observe(void **state)
{
	struct safe_policy *pol = policy("observe");
	struct safe_proposal p = rlimit_prop("fd-exhaustion", "web", T0);

	expect(pol, p, SAFE_DENY, SAFE_RULE_MODE, "denied: mode is observe");
	/* Mode comes first: a protected process is not even looked at. */
	p.comm = "sshd";
	expect(pol, p, SAFE_DENY, SAFE_RULE_MODE, "denied: mode is observe");
	safe_policy_free(pol);
}

/* Each kind as a dry run describes it. */
static void test_dry_run_kinds(void **state)
{
	struct safe_policy *pol = policy("dry_run");
	struct safe_proposal p;

	p = sysctl_prop("net.core.somaxconn", "4096");
	p.before = "128";
	expect(pol, p, SAFE_DRY_RUN, SAFE_RULE_MODE,
	       "dry run: would set sysctl net.core.somaxconn 128 -> 4096");
	p.req.sysctl.netns_pid = 77;
	p.before = NULL;
	expect(pol, p, SAFE_DRY_RUN, SAFE_RULE_MODE,
	       "dry run: would set sysctl net.core.somaxconn to 4096 in the network namespace of "
	       "pid 77");
	p = cgroup_prop("system.slice/db.service", "memory.high", "1073741824");
	expect(pol, p, SAFE_DRY_RUN, SAFE_RULE_MODE,
	       "dry run: would write system.slice/db.service/memory.high as 1073741824");
	p = rlimit_prop("cpu-hog", "web", T0);
	act_request_init(&p.req, ACT_KIND_NICE);
	p.req.pid = 1234;
	p.req.nice.value = 5;
	p.before = "0";
	expect(pol, p, SAFE_DRY_RUN, SAFE_RULE_MODE, "dry run: would renice pid 1234 0 -> 5");
	act_request_init(&p.req, ACT_KIND_SIGNAL);
	p.req.pid = 1234;
	p.req.signal.signo = SIGHUP;
	expect(pol, p, SAFE_DRY_RUN, SAFE_RULE_MODE, "dry run: would send SIGHUP to pid 1234");
	p = restart_prop("web", "systemctl restart nginx.service");
	expect(pol, p, SAFE_DRY_RUN, SAFE_RULE_MODE,
	       "dry run: would run 'systemctl restart nginx.service' (after approval, class "
	       "'restart')");
	safe_policy_free(pol);
}

static void test_invalid(void **state)
{
	struct safe_policy *pol = policy("enforce");
	struct safe_proposal p = rlimit_prop("fd-exhaustion", "web", T0);
	struct safe_decision_out o;

	p.req.pid = 0;
	expect(pol, p, SAFE_DENY, SAFE_RULE_REQUEST,
	       "denied: invalid request: rlimit needs a process (pid > 0), not 0");
	p = rlimit_prop(NULL, "web", T0);
	expect(pol, p, SAFE_DENY, SAFE_RULE_REQUEST,
	       "denied: the source must be a runbook or tuner id of 1 to 63 bytes");
	p = rlimit_prop("fd-exhaustion", "", T0);
	expect(pol, p, SAFE_DENY, SAFE_RULE_REQUEST,
	       "denied: the target must be a name of 1 to 32 bytes");
	assert_int_equal(safe_gate_check(NULL, &st, &p, &o), -EINVAL);
	assert_int_equal(o.decision, SAFE_DENY);
	assert_string_equal(o.reason, "denied: no policy, state or proposal");
	assert_int_equal(safe_gate_check(pol, &st, &p, NULL), -EINVAL);
	p = rlimit_prop("fd-exhaustion", "web", T0);
	p.req.kind = ACT_KIND_COUNT;
	assert_int_equal(safe_gate_check(pol, &st, &p, &o), -EINVAL);
	assert_string_equal(o.reason, "denied: unknown kind of change 8");
	assert_int_equal(safe_gate_record(&st, &p, SAFE_OUTCOME_COUNT), -EINVAL);
	p.source = "";
	assert_int_equal(safe_gate_record(&st, &p, SAFE_OUTCOME_APPLIED), -EINVAL);
	assert_int_equal(safe_gate_storm_note(&st, NULL, T0), -EINVAL);
	safe_policy_free(pol);
}

/* ---- protected things ---- */

static void test_self_paths(void **state)
{
	/* The file names none of the agent's files: the policy file itself and what the daemon
	 * adds are protected anyway. */
	struct safe_policy *pol = policy_named("/etc/homeostat/policy.yaml", "enforce");

	assert_int_equal(safe_policy_protect_path(pol, "/var/lib/homeostat"), 0);
	expect(pol, restart_prop("web", "cp /tmp/evil /etc/homeostat/policy.yaml"), SAFE_DENY,
	       SAFE_RULE_PATH,
	       "denied: '/etc/homeostat/policy.yaml' is protected (the agent's own file)");
	expect(pol, restart_prop("web", "rm -f /var/lib/homeostat/homeostat.db"), SAFE_DENY,
	       SAFE_RULE_PATH,
	       "denied: '/var/lib/homeostat/homeostat.db' is protected (the agent's own file)");
	expect(pol, restart_prop("web", "x --db=/var/lib/homeostat"), SAFE_DENY, SAFE_RULE_PATH,
	       "denied: '/var/lib/homeostat' is protected (the agent's own file)");
	/* A component boundary: /var/lib/homeostatx is another directory. */
	expect(pol, restart_prop("web", "/usr/bin/touch /var/lib/homeostatx/y"), SAFE_NEED_APPROVAL,
	       SAFE_RULE_CLASS, "approval required by class 'restart' (expires in 15 min)");
	safe_policy_free(pol);
}

static void test_protected_paths(void **state)
{
	struct safe_policy *pol = policy("enforce");

	expect(
	    pol, restart_prop("web", "/srv/data/bin/restart-web"), SAFE_DENY, SAFE_RULE_PATH,
	    "denied: '/srv/data/bin/restart-web' is protected (protected.paths has '/srv/data')");
	expect(pol, restart_prop("web", "/srv/database/restart"), SAFE_NEED_APPROVAL,
	       SAFE_RULE_CLASS, "approval required by class 'restart' (expires in 15 min)");
	/* cgroup files: relative and absolute spellings, and the boundary. */
	expect(pol, cgroup_prop("critical.slice/x.service", "memory.high", "max"), SAFE_DENY,
	       SAFE_RULE_PATH,
	       "denied: '/sys/fs/cgroup/critical.slice/x.service/memory.high' is protected "
	       "(protected.paths has '/sys/fs/cgroup/critical.slice')");
	expect(pol, cgroup_prop("/sys/fs/cgroup/critical.slice", "pids.max", "100"), SAFE_DENY,
	       SAFE_RULE_PATH,
	       "denied: '/sys/fs/cgroup/critical.slice/pids.max' is protected "
	       "(protected.paths has '/sys/fs/cgroup/critical.slice')");
	expect(pol, cgroup_prop("critical.slicex/x.service", "memory.high", "max"), SAFE_ALLOW,
	       SAFE_RULE_NONE, "allowed: write critical.slicex/x.service/memory.high as max");
	/* sysctls as /proc/sys paths (a trailing '/' in the policy changes nothing). */
	expect(pol, sysctl_prop("net.ipv4.tcp_syncookies", "1"), SAFE_DENY, SAFE_RULE_PATH,
	       "denied: '/proc/sys/net/ipv4/tcp_syncookies' is protected (protected.paths has "
	       "'/proc/sys/net/ipv4/')");
	expect(pol, sysctl_prop("net.ipv4x", "1"), SAFE_ALLOW, SAFE_RULE_NONE,
	       "allowed: set sysctl net.ipv4x to 1");
	safe_policy_free(pol);
}

static void test_protected_units(void **state)
{
	struct safe_policy *pol = policy("enforce");
	struct safe_proposal p = rlimit_prop("fd-exhaustion", "ssh", T0);

	p.comm = "other";
	/* The target's unit selector. */
	expect(pol, p, SAFE_DENY, SAFE_RULE_UNIT, "denied: unit 'sshd.service' is protected");
	/* A unit named in a restart command, with or without ".service". */
	expect(pol, restart_prop("web", "systemctl restart sshd"), SAFE_DENY, SAFE_RULE_UNIT,
	       "denied: unit 'sshd.service' is protected");
	expect(pol, restart_prop("web", "systemctl try-restart 'sshd.service'"), SAFE_DENY,
	       SAFE_RULE_UNIT, "denied: unit 'sshd.service' is protected");
	expect(pol, restart_prop("web", "systemctl restart sshd-keygen.service"),
	       SAFE_NEED_APPROVAL, SAFE_RULE_CLASS,
	       "approval required by class 'restart' (expires in 15 min)");
	/* The cgroup of a protected unit. */
	expect(pol, cgroup_prop("system.slice/sshd.service", "cpu.weight", "50"), SAFE_DENY,
	       SAFE_RULE_UNIT, "denied: unit 'sshd.service' is protected");
	safe_policy_free(pol);
}

static void test_protected_processes(void **state)
{
	struct safe_policy *pol = policy("enforce");
	struct safe_proposal p = rlimit_prop("fd-exhaustion", "web", T0);

	/* The process acted on, by comm ... */
	p.comm = "sshd";
	expect(pol, p, SAFE_DENY, SAFE_RULE_PROCESS, "denied: process 'sshd' is protected");
	/* ... and a target whose comm selector is protected, whatever the caller passes. */
	p = rlimit_prop("fd-exhaustion", "daemon", T0);
	p.comm = NULL;
	expect(pol, p, SAFE_DENY, SAFE_RULE_PROCESS, "denied: process 'sshd' is protected");
	/* Exact names only. */
	p = rlimit_prop("fd-exhaustion", "web", T0);
	p.comm = "sshd2";
	expect(pol, p, SAFE_ALLOW, SAFE_RULE_NONE, ALLOWED_RLIMIT);
	safe_policy_free(pol);
}

static void test_sysctl(void **state)
{
	struct safe_policy *pol = policy("enforce");

	expect(pol, sysctl_prop("kernel.panic", "0"), SAFE_DENY, SAFE_RULE_SYSCTL_DENY,
	       "denied: sysctl 'kernel.panic' is on the deny list");
	expect(pol, sysctl_prop("vm.overcommit_memory", "1"), SAFE_DENY, SAFE_RULE_SYSCTL_DENY,
	       "denied: sysctl 'vm.overcommit_memory' is on the deny list");
	expect(pol, sysctl_prop("vm.overcommit_ratio", "80"), SAFE_ALLOW, SAFE_RULE_NONE,
	       "allowed: set sysctl vm.overcommit_ratio to 80");
	expect(pol, sysctl_prop("net.core.somaxconn", "70000"), SAFE_DENY, SAFE_RULE_SYSCTL_RANGE,
	       "denied: net.core.somaxconn=70000 is outside the allowed range 128..65535");
	expect(pol, sysctl_prop("net.core.somaxconn", "127"), SAFE_DENY, SAFE_RULE_SYSCTL_RANGE,
	       "denied: net.core.somaxconn=127 is outside the allowed range 128..65535");
	expect(pol, sysctl_prop("net.core.somaxconn", "65535"), SAFE_ALLOW, SAFE_RULE_NONE,
	       "allowed: set sysctl net.core.somaxconn to 65535");
	expect(pol, sysctl_prop("net.core.somaxconn", "128"), SAFE_ALLOW, SAFE_RULE_NONE,
	       "allowed: set sysctl net.core.somaxconn to 128");
	expect(pol, sysctl_prop("net.core.somaxconn", "lots"), SAFE_DENY, SAFE_RULE_SYSCTL_RANGE,
	       "denied: net.core.somaxconn='lots' is not an integer (allowed range 128..65535)");
	/* A range written with slashes applies to the dotted name. */
	expect(pol, sysctl_prop("net.core.rmem_max", "1024"), SAFE_DENY, SAFE_RULE_SYSCTL_RANGE,
	       "denied: net.core.rmem_max=1024 is outside the allowed range 4096..16777216");
	safe_policy_free(pol);
}

/* ---- storm, budgets, blast radius ---- */

static void test_budget_per_hour(void **state)
{
	struct safe_policy *pol = policy("enforce");
	char src[16];

	/* Six changes, ten minutes apart, each kept: the budget is used up for an hour. */
	for (int i = 0; i < 6; i++) {
		struct safe_proposal p;

		snprintf(src, sizeof(src), "rb%d", i);
		p = rlimit_prop(src, "web", T0 + i * 10 * MIN);
		expect(pol, p, SAFE_ALLOW, SAFE_RULE_NONE, ALLOWED_RLIMIT);
		assert_int_equal(safe_gate_record(&st, &p, SAFE_OUTCOME_APPLIED), 0);
		assert_int_equal(safe_gate_record(&st, &p, SAFE_OUTCOME_KEPT), 0);
	}
	assert_int_equal(safe_gate_changes_last_hour(&st, T0 + 55 * MIN), 6);
	expect(pol, rlimit_prop("rb9", "web", T0 + 55 * MIN), SAFE_DENY, SAFE_RULE_CHANGES_PER_HOUR,
	       "denied: budget of 6 changes per hour used (6 in the last hour)");
	expect(pol, rlimit_prop("rb9", "web", T0 + HOUR - 1), SAFE_DENY, SAFE_RULE_CHANGES_PER_HOUR,
	       "denied: budget of 6 changes per hour used (6 in the last hour)");
	/* An hour after the first change it no longer counts. */
	assert_int_equal(safe_gate_changes_last_hour(&st, T0 + HOUR), 5);
	expect(pol, rlimit_prop("rb9", "web", T0 + HOUR), SAFE_ALLOW, SAFE_RULE_NONE,
	       ALLOWED_RLIMIT);
	/* The counts of memory (after a restart of the daemon) count too. */
	st.mem.changes_last_hour = 7;
	expect(pol, rlimit_prop("rb9", "web", T0 + HOUR), SAFE_DENY, SAFE_RULE_CHANGES_PER_HOUR,
	       "denied: budget of 6 changes per hour used (7 in the last hour)");
	safe_policy_free(pol);
}

static void test_budget_failed_counts(void **state)
{
	struct safe_policy *pol = policy("enforce");
	struct safe_proposal p = rlimit_prop("rb", "web", T0);

	/* A failed apply counts against the budget; a rollback does not. */
	assert_int_equal(safe_gate_record(&st, &p, SAFE_OUTCOME_FAILED), 0);
	assert_int_equal(safe_gate_record(&st, &p, SAFE_OUTCOME_ROLLED_BACK), 0);
	assert_int_equal(safe_gate_changes_last_hour(&st, T0), 1);
	assert_int_equal(st.active, 0);
	safe_policy_free(pol);
}

static void test_concurrent(void **state)
{
	struct safe_policy *pol = policy("enforce");
	struct safe_proposal a = rlimit_prop("rb-a", "web", T0);
	struct safe_proposal b = rlimit_prop("rb-b", "db", T0);

	b.comm = "postgres";
	assert_int_equal(safe_gate_record(&st, &a, SAFE_OUTCOME_APPLIED), 0);
	expect(pol, rlimit_prop("rb-c", "web", T0 + SEC), SAFE_ALLOW, SAFE_RULE_NONE,
	       ALLOWED_RLIMIT);
	assert_int_equal(safe_gate_record(&st, &b, SAFE_OUTCOME_APPLIED), 0);
	expect(pol, rlimit_prop("rb-c", "web", T0 + SEC), SAFE_DENY, SAFE_RULE_CONCURRENT,
	       "denied: 2 concurrent changes already (at most 2)");
	assert_int_equal(safe_gate_record(&st, &a, SAFE_OUTCOME_KEPT), 0);
	expect(pol, rlimit_prop("rb-c", "web", T0 + SEC), SAFE_ALLOW, SAFE_RULE_NONE,
	       ALLOWED_RLIMIT);
	/* The larger of the gate's count and memory's. */
	st.mem.active = 3;
	expect(pol, rlimit_prop("rb-c", "web", T0 + SEC), SAFE_DENY, SAFE_RULE_CONCURRENT,
	       "denied: 3 concurrent changes already (at most 2)");
	st.mem.active = 0;
	assert_int_equal(safe_gate_record(&st, &b, SAFE_OUTCOME_ROLLED_BACK), 0);
	assert_int_equal(safe_gate_record(&st, &b, SAFE_OUTCOME_KEPT), 0);
	assert_int_equal(st.active, 0); /* never below zero */
	safe_policy_free(pol);
}

static void test_blast_radius(void **state)
{
	struct safe_policy *pol = policy("enforce");
	struct safe_proposal p = rlimit_prop("rb", "web", T0);

	p.processes = 40;
	expect(pol, p, SAFE_DENY, SAFE_RULE_BLAST_RADIUS,
	       "denied: blast radius 40 processes (at most 10)");
	p.processes = 10;
	expect(pol, p, SAFE_ALLOW, SAFE_RULE_NONE, ALLOWED_RLIMIT);
	p.targets = 2;
	expect(pol, p, SAFE_DENY, SAFE_RULE_BLAST_RADIUS,
	       "denied: blast radius 2 targets (at most 1)");
	safe_policy_free(pol);
}

static void test_storm(void **state)
{
	struct safe_policy *pol = policy("enforce");
	static const char *const rbs[] = {"fd-exhaustion", "oom", "crash-loop", "latency",
					  "disk-full"};
	const char *frozen = "frozen: 5 runbooks fired within 60 s (storm); no action until an "
			     "operator resumes";

	/* Four distinct runbooks, one of them three times: no storm. */
	for (int i = 0; i < 4; i++)
		assert_int_equal(safe_gate_storm_note(&st, rbs[i], T0 + i * SEC), 0);
	assert_int_equal(safe_gate_storm_note(&st, rbs[0], T0 + 5 * SEC), 0);
	assert_int_equal(safe_gate_storm_note(&st, rbs[0], T0 + 6 * SEC), 0);
	/* The fifth distinct one within 60 s freezes. */
	assert_int_equal(safe_gate_storm_note(&st, rbs[4], T0 + 50 * SEC), 1);
	expect(pol, rlimit_prop("rb", "web", T0 + 51 * SEC), SAFE_DENY, SAFE_RULE_STORM, frozen);
	/* Still frozen when the storm is long over, and before the budgets. */
	st.mem.changes_last_hour = 100;
	expect(pol, rlimit_prop("rb", "web", T0 + 2 * HOUR), SAFE_DENY, SAFE_RULE_STORM, frozen);
	st.mem.changes_last_hour = 0;
	/* Protected things are named before the freeze. */
	expect(pol, sysctl_prop("kernel.panic", "0"), SAFE_DENY, SAFE_RULE_SYSCTL_DENY,
	       "denied: sysctl 'kernel.panic' is on the deny list");
	/* An operator resumes; the old firings do not freeze again. */
	safe_gate_unfreeze(&st);
	expect(pol, rlimit_prop("rb", "web", T0 + 2 * HOUR), SAFE_ALLOW, SAFE_RULE_NONE,
	       ALLOWED_RLIMIT);
	assert_int_equal(safe_gate_storm_note(&st, rbs[0], T0 + 52 * SEC), 0);
	safe_policy_free(pol);
}

static void test_storm_spread(void **state)
{
	/* Five runbooks, but never five within one window: no freeze. */
	static const char *const rbs[] = {"a", "b", "c", "d", "e", "f", "g"};

	for (int i = 0; i < 7; i++)
		assert_int_equal(safe_gate_storm_note(&st, rbs[i], T0 + i * 20 * SEC), 0);
	assert_false(st.frozen);
	/* Many more distinct runbooks than the table holds: still counted, no overflow. */
	for (int i = 0; i < 3 * SAFE_STORM_MAX; i++) {
		char src[16];

		snprintf(src, sizeof(src), "rb%d", i);
		assert_true(safe_gate_storm_note(&st, src, T0 + HOUR + i) >= 0);
	}
	assert_true(st.frozen);
	assert_int_equal(st.frozen_runbooks, 5);
}

/* ---- cooldown and flapping ---- */

static void test_cooldown_backoff(void **state)
{
	struct safe_policy *pol = policy("enforce");
	struct safe_proposal p = rlimit_prop("fd-exhaustion", "web", T0);

	/* A change at 12:00:00: the pair waits 5 min; another runbook on web does not. */
	assert_int_equal(safe_gate_record(&st, &p, SAFE_OUTCOME_APPLIED), 0);
	expect(pol, rlimit_prop("fd-exhaustion", "web", T0 + MIN), SAFE_DENY, SAFE_RULE_COOLDOWN,
	       "denied: cooldown for fd-exhaustion on web until 12:05:00 (attempt 1, backoff x1)");
	expect(pol, rlimit_prop("other", "web", T0 + MIN), SAFE_ALLOW, SAFE_RULE_NONE,
	       ALLOWED_RLIMIT);
	/* Rolled back at 12:03:10: twice as long, from then. */
	p.now_ms = T0 + 3 * MIN + 10 * SEC;
	assert_int_equal(safe_gate_record(&st, &p, SAFE_OUTCOME_ROLLED_BACK), 0);
	expect(pol, rlimit_prop("fd-exhaustion", "web", T0 + 10 * MIN), SAFE_DENY,
	       SAFE_RULE_COOLDOWN,
	       "denied: cooldown for fd-exhaustion on web until 12:13:10 (attempt 2, backoff x2)");
	expect(pol, rlimit_prop("fd-exhaustion", "web", T0 + 13 * MIN + 10 * SEC), SAFE_ALLOW,
	       SAFE_RULE_NONE, ALLOWED_RLIMIT);
	/* A second failure: x4. */
	p.now_ms = T0 + 14 * MIN;
	assert_int_equal(safe_gate_record(&st, &p, SAFE_OUTCOME_FAILED), 0);
	expect(pol, rlimit_prop("fd-exhaustion", "web", T0 + 20 * MIN), SAFE_DENY,
	       SAFE_RULE_COOLDOWN,
	       "denied: cooldown for fd-exhaustion on web until 12:34:00 (attempt 3, backoff x4)");
	/* Failures go on (rollbacks: not against the hour budget): capped at one hour. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(safe_gate_record(&st, &p, SAFE_OUTCOME_ROLLED_BACK), 0);
	expect(pol, rlimit_prop("fd-exhaustion", "web", T0 + 20 * MIN), SAFE_DENY,
	       SAFE_RULE_COOLDOWN,
	       "denied: cooldown for fd-exhaustion on web until 13:14:00 (attempt 13, backoff "
	       "x4096)");
	/* A kept change forgets the failures. */
	p.now_ms = T0 + 2 * HOUR;
	assert_int_equal(safe_gate_record(&st, &p, SAFE_OUTCOME_KEPT), 0);
	expect(pol, rlimit_prop("fd-exhaustion", "web", T0 + 2 * HOUR + MIN), SAFE_DENY,
	       SAFE_RULE_COOLDOWN,
	       "denied: cooldown for fd-exhaustion on web until 14:05:00 (attempt 1, backoff x1)");
	safe_policy_free(pol);
}

static void test_cooldown_limits(void **state)
{
	struct safe_policy *pol = policy("enforce");
	struct safe_gate_limits l = {
	    .storm_runbooks = 5,
	    .storm_window_ms = MIN,
	    .flap_changes = 100,
	    .flap_window_ms = MIN,
	    .cooldown_ms = 10 * SEC,
	    .backoff = 3,
	    .cooldown_max_ms = HOUR,
	};
	struct safe_proposal p = rlimit_prop("fd-exhaustion", "web", T0);

	safe_gate_init(&st, &l);
	assert_int_equal(safe_gate_record(&st, &p, SAFE_OUTCOME_FAILED), 0);
	expect(pol, rlimit_prop("fd-exhaustion", "web", T0 + SEC), SAFE_DENY, SAFE_RULE_COOLDOWN,
	       "denied: cooldown for fd-exhaustion on web until 12:00:30 (attempt 2, backoff x3)");
	/* Every entry cooling down: the next pair cannot be remembered. */
	for (int i = 1; i < SAFE_KEYS_MAX; i++) {
		char src[16];

		snprintf(src, sizeof(src), "rb%d", i);
		p = rlimit_prop(src, "web", T0);
		assert_int_equal(safe_gate_record(&st, &p, SAFE_OUTCOME_KEPT), 0);
	}
	p = rlimit_prop("one-too-many", "web", T0);
	assert_int_equal(safe_gate_record(&st, &p, SAFE_OUTCOME_KEPT), -ENOSPC);
	/* Once cooldowns are over, entries are reused. */
	p.now_ms = T0 + 11 * SEC;
	assert_int_equal(safe_gate_record(&st, &p, SAFE_OUTCOME_KEPT), 0);
	safe_policy_free(pol);
}

static void test_flapping(void **state)
{
	struct safe_policy *pol = policy("enforce");
	struct safe_proposal a = rlimit_prop("rb-a", "web", T0);
	struct safe_proposal b = rlimit_prop("rb-b", "web", T0 + 20 * SEC);
	struct safe_proposal d = rlimit_prop("rb-c", "db", T0 + 30 * SEC);

	/* Two runbooks fighting over web: change, rollback, change. */
	assert_int_equal(safe_gate_record(&st, &a, SAFE_OUTCOME_APPLIED), 0);
	a.now_ms = T0 + 10 * SEC;
	assert_int_equal(safe_gate_record(&st, &a, SAFE_OUTCOME_ROLLED_BACK), 0);
	assert_int_equal(safe_gate_record(&st, &b, SAFE_OUTCOME_APPLIED), 0);
	expect(pol, rlimit_prop("rb-c", "web", T0 + 30 * SEC), SAFE_DENY, SAFE_RULE_FLAP,
	       "denied: flapping: 3 changes to web within 120 s");
	/* Other targets are not concerned. */
	d.comm = "postgres";
	expect(pol, d, SAFE_ALLOW, SAFE_RULE_NONE, ALLOWED_RLIMIT);
	expect(pol, rlimit_prop("rb-c", "web", T0 + 119 * SEC), SAFE_DENY, SAFE_RULE_FLAP,
	       "denied: flapping: 3 changes to web within 120 s");
	/* Once the first is older than the window, web may change again. */
	expect(pol, rlimit_prop("rb-c", "web", T0 + 120 * SEC), SAFE_ALLOW, SAFE_RULE_NONE,
	       ALLOWED_RLIMIT);
	safe_policy_free(pol);
}

/* ---- action classes ---- */

static void test_classes(void **state)
{
	struct safe_policy *pol = policy("enforce");
	struct safe_proposal p = rlimit_prop("fd-exhaustion", "web", T0);
	struct safe_decision_out o;

	p.action_class = "tell";
	assert_int_equal(safe_gate_check(pol, &st, &p, &o), 0);
	assert_int_equal(o.decision, SAFE_NOTIFY_THEN_ALLOW);
	assert_int_equal(o.rule, SAFE_RULE_CLASS);
	assert_int_equal(o.not_before_ms, T0 + 90 * SEC);
	assert_int_equal(o.expires_at_ms, 0);
	assert_string_equal(o.reason, "notify: class 'tell' will set RLIMIT_NOFILE soft 1024 -> "
				      "4096 on pid 1234 in 90 s unless rejected");
	p.action_class = "restart";
	assert_int_equal(safe_gate_check(pol, &st, &p, &o), 0);
	assert_int_equal(o.decision, SAFE_NEED_APPROVAL);
	assert_int_equal(o.expires_at_ms, T0 + 15 * MIN);
	assert_int_equal(o.not_before_ms, 0);
	assert_string_equal(o.reason, "approval required by class 'restart' (expires in 15 min)");
	p.action_class = "approve-default";
	assert_int_equal(safe_gate_check(pol, &st, &p, &o), 0);
	assert_int_equal(o.decision, SAFE_NEED_APPROVAL);
	assert_int_equal(o.expires_at_ms, T0 + 30 * MIN);
	assert_string_equal(o.reason,
			    "approval required by class 'approve-default' (expires in 30 min)");
	p.action_class = "auto";
	expect(pol, p, SAFE_ALLOW, SAFE_RULE_NONE, ALLOWED_RLIMIT);
	p.action_class = "nope";
	expect(pol, p, SAFE_DENY, SAFE_RULE_CLASS,
	       "denied: action class 'nope' is not in the policy");
	p.action_class = NULL;
	expect(pol, p, SAFE_DENY, SAFE_RULE_CLASS, "denied: the proposal names no action class");
	safe_policy_free(pol);
}

/* A proposal that breaks every rule is refused by the first, in the documented order. */
static void test_order(void **state)
{
	struct safe_policy *pol = policy("enforce");
	struct safe_proposal p = rlimit_prop("fd-exhaustion", "web", T0 + MIN);
	int64_t then = T0;

	p.comm = "sshd";
	p.processes = 99;
	p.action_class = "nope";
	for (int i = 0; i < 3; i++) {
		struct safe_proposal q = rlimit_prop("fd-exhaustion", "web", then + i);

		assert_int_equal(safe_gate_record(&st, &q, SAFE_OUTCOME_APPLIED), 0);
	}
	st.mem.changes_last_hour = 6;
	for (int i = 0; i < 5; i++) {
		char src[8];

		snprintf(src, sizeof(src), "s%d", i);
		safe_gate_storm_note(&st, src, T0);
	}
	expect(pol, p, SAFE_DENY, SAFE_RULE_PROCESS, "denied: process 'sshd' is protected");
	p.comm = "nginx";
	expect(pol, p, SAFE_DENY, SAFE_RULE_STORM,
	       "frozen: 5 runbooks fired within 60 s (storm); no action until an operator "
	       "resumes");
	safe_gate_unfreeze(&st);
	expect(pol, p, SAFE_DENY, SAFE_RULE_CHANGES_PER_HOUR,
	       "denied: budget of 6 changes per hour used (6 in the last hour)");
	st.mem.changes_last_hour = 0;
	expect(pol, p, SAFE_DENY, SAFE_RULE_CONCURRENT,
	       "denied: 3 concurrent changes already (at most 2)");
	st.active = 0;
	expect(pol, p, SAFE_DENY, SAFE_RULE_BLAST_RADIUS,
	       "denied: blast radius 99 processes (at most 10)");
	p.processes = 1;
	expect(pol, p, SAFE_DENY, SAFE_RULE_COOLDOWN,
	       "denied: cooldown for fd-exhaustion on web until 12:05:00 (attempt 1, backoff x1)");
	p.source = "another";
	expect(pol, p, SAFE_DENY, SAFE_RULE_FLAP,
	       "denied: flapping: 3 changes to web within 120 s");
	p.now_ms = T0 + 3 * MIN;
	expect(pol, p, SAFE_DENY, SAFE_RULE_CLASS,
	       "denied: action class 'nope' is not in the policy");
	safe_policy_free(pol);
}

static void test_names(void **state)
{
	assert_string_equal(safe_decision_names[SAFE_NOTIFY_THEN_ALLOW], "notify_then_allow");
	assert_string_equal(safe_rule_names[SAFE_RULE_CHANGES_PER_HOUR], "changes_per_hour");
	assert_string_equal(safe_rule_names[SAFE_RULE_CLASS], "class");
	assert_null(safe_rule_names[SAFE_RULE_COUNT]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_mode_enforce, setup),
	    cmocka_unit_test_setup(test_mode_dry_run, setup),
	    cmocka_unit_test_setup(test_mode_observe, setup),
	    cmocka_unit_test_setup(test_dry_run_kinds, setup),
	    cmocka_unit_test_setup(test_invalid, setup),
	    cmocka_unit_test_setup(test_self_paths, setup),
	    cmocka_unit_test_setup(test_protected_paths, setup),
	    cmocka_unit_test_setup(test_protected_units, setup),
	    cmocka_unit_test_setup(test_protected_processes, setup),
	    cmocka_unit_test_setup(test_sysctl, setup),
	    cmocka_unit_test_setup(test_budget_per_hour, setup),
	    cmocka_unit_test_setup(test_budget_failed_counts, setup),
	    cmocka_unit_test_setup(test_concurrent, setup),
	    cmocka_unit_test_setup(test_blast_radius, setup),
	    cmocka_unit_test_setup(test_storm, setup),
	    cmocka_unit_test_setup(test_storm_spread, setup),
	    cmocka_unit_test_setup(test_cooldown_backoff, setup),
	    cmocka_unit_test_setup(test_cooldown_limits, setup),
	    cmocka_unit_test_setup(test_flapping, setup),
	    cmocka_unit_test_setup(test_classes, setup),
	    cmocka_unit_test_setup(test_order, setup),
	    cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
