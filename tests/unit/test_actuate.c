/* test_actuate.c - unit tests of agent/actuate/: the actuator table, exact validation of every
 * kind (bad names, path escapes, out-of-range values), the revert command of every kind, and
 * apply / verify / revert on what any user may change: this process's own RLIMIT_NOFILE soft
 * limit, the nice value of its own children (raising it), signals to its own children, and
 * restart commands.
 *
 * No root needed; where root could do more (lowering a nice value back) the test accepts
 * exactly the refusal an unprivileged user gets. Real cgroups, sysctls and network
 * namespaces are in tests/integration/0200-actuators.sh.
 */
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

#include "actuate/actuate.h"
#include "actuate/internal.h"
#include "memory/memory.h"

static char why[ACT_WHY_MAX];

static int validate(const struct act_request *req)
{
	return act_validate(req, why, sizeof(why));
}

static void test_table(void **state)
{
	static const char *const names[] = {"rlimit", "sysctl",	 "cgroup", "nice",
					    "signal", "restart", "patch",  "file"};

	for (int k = 0; k < ACT_KIND_COUNT; k++) {
		const struct act_desc *d = act_desc((enum act_kind)k);

		assert_non_null(d);
		assert_int_equal(d->kind, k);
		assert_string_equal(d->name, names[k]);
		assert_string_equal(act_kind_name((enum act_kind)k), names[k]);
		assert_string_equal(mem_kind_name((enum mem_kind)k), names[k]);
		assert_int_equal(act_kind_from_name(names[k]), k);
		assert_true(strlen(d->why) > 20);
		assert_int_equal(d->revertible,
				 k <= ACT_KIND_NICE || k == ACT_KIND_PATCH || k == ACT_KIND_FILE);
		if (!d->revertible)
			assert_non_null(d->not_revertible);
	}
	assert_null(act_desc(ACT_KIND_COUNT));
	assert_null(act_kind_name((enum act_kind) - 1));
	assert_int_equal(act_kind_from_name("reboot"), -EINVAL);
	assert_string_equal(act_rlimit_name(RLIMIT_NOFILE), "nofile");
	assert_string_equal(act_rlimit_name(RLIMIT_MEMLOCK), "memlock");
	assert_int_equal(act_rlimit_from_name("nproc"), RLIMIT_NPROC);
	assert_int_equal(act_rlimit_from_name("files"), -EINVAL);
	assert_null(act_rlimit_name(9999));
}

static void test_normalise(void **state)
{
	char buf[16];

	assert_int_equal(act_normalise("  4096\t131072 \n 6291456\n", buf, sizeof(buf)), -E2BIG);
	assert_int_equal(act_normalise(" 4096\t87380 \n", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "4096 87380");
	assert_int_equal(act_normalise("\n", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
}

static void sysctl_req(struct act_request *req, const char *name, const char *value)
{
	act_request_init(req, ACT_KIND_SYSCTL);
	strcpy(req->sysctl.name, name);
	strcpy(req->sysctl.value, value);
}

static void test_validate_sysctl(void **state)
{
	struct act_request req;

	sysctl_req(&req, "net.core.somaxconn", "4096");
	assert_int_equal(validate(&req), 0);
	assert_string_equal(why, "");
	sysctl_req(&req, "net.ipv4.tcp_rmem", " 4096\t131072  6291456 ");
	assert_int_equal(validate(&req), 0);

	static const struct {
		const char *name, *value, *why;
	} bad[] = {
	    {"", "1", "sysctl name is empty"},
	    {"net.core..somaxconn", "1",
	     "sysctl name 'net.core..somaxconn' has an empty component"},
	    {".net.core", "1", "sysctl name '.net.core' has an empty component"},
	    {"net.core.", "1", "sysctl name 'net.core.' has an empty component"},
	    {"net/core/somaxconn", "1",
	     "sysctl name 'net/core/somaxconn' may hold only a-z, 0-9, '_', '.' and '-' (not first "
	     "in a component)"},
	    {"net.core.../../x", "1",
	     "sysctl name 'net.core.../../x' may hold only a-z, 0-9, '_', '.' and '-' (not first "
	     "in a component)"},
	    {"Net.core.somaxconn", "1",
	     "sysctl name 'Net.core.somaxconn' may hold only a-z, 0-9, '_', '.' and '-' (not first "
	     "in a component)"},
	    {"net.ipv4.conf.-x.forwarding", "1",
	     "sysctl name 'net.ipv4.conf.-x.forwarding' may hold only a-z, 0-9, '_', '.' and '-' "
	     "(not first in a component)"},
	    {"somaxconn", "1", "sysctl name 'somaxconn' has no directory (e.g. net.)"},
	    {"net.core.somaxconn", "", "sysctl value is empty"},
	    {"net.core.somaxconn", " \t ", "sysctl value is empty"},
	    {"net.core.somaxconn", "1\n2",
	     "sysctl value holds a character that is not printable ASCII (0x0a)"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		sysctl_req(&req, bad[i].name, bad[i].value);
		assert_int_equal(validate(&req), -EINVAL);
		assert_string_equal(why, bad[i].why);
	}

	sysctl_req(&req, "net.core.somaxconn", "1");
	memset(req.sysctl.name, 'a', sizeof(req.sysctl.name));
	assert_int_equal(validate(&req), -EINVAL);
	assert_string_equal(why, "sysctl name is longer than 127 bytes");

	sysctl_req(&req, "net.core.somaxconn", "1");
	req.pid = 42;
	assert_int_equal(validate(&req), -EINVAL);
	assert_string_equal(why, "sysctl takes no pid (netns_pid names a network namespace)");

	sysctl_req(&req, "kernel.pid_max", "65536");
	req.sysctl.netns_pid = 42;
	assert_int_equal(validate(&req), -EINVAL);
	assert_string_equal(
	    why, "sysctl 'kernel.pid_max' is not per network namespace: only net.* may take one");

	sysctl_req(&req, "net.core.somaxconn", "1");
	req.sysctl.netns_pid = 42;
	strcpy(req.sysctl.netns_path, "/run/netns/x");
	assert_int_equal(validate(&req), -EINVAL);
	assert_string_equal(why, "sysctl takes a netns pid or a netns path, not both");

	req.sysctl.netns_pid = -1;
	req.sysctl.netns_path[0] = '\0';
	assert_int_equal(validate(&req), -EINVAL);
	assert_string_equal(why, "sysctl netns_pid -1 must be a process or 0");

	req.sysctl.netns_pid = 0;
	strcpy(req.sysctl.netns_path, "/tmp/netns/x");
	assert_int_equal(validate(&req), -EINVAL);
	assert_string_equal(
	    why, "netns path '/tmp/netns/x' must be /run/netns/NAME or /var/run/netns/NAME");
	strcpy(req.sysctl.netns_path, "/run/netns/../../proc/1/ns/net");
	assert_int_equal(validate(&req), -EINVAL);
	assert_string_equal(why, "netns name '../../proc/1/ns/net' may hold only A-Z, a-z, 0-9, "
				 "'_', '-' and '.'");
	strcpy(req.sysctl.netns_path, "/var/run/netns/..");
	assert_int_equal(validate(&req), -EINVAL);
	strcpy(req.sysctl.netns_path, "/var/run/netns/");
	assert_int_equal(validate(&req), -EINVAL);
	strcpy(req.sysctl.netns_path, "/var/run/netns/hs-test.1_A");
	assert_int_equal(validate(&req), 0);
}

static void cgroup_req(struct act_request *req, const char *path, const char *file,
		       const char *value)
{
	act_request_init(req, ACT_KIND_CGROUP);
	strcpy(req->cgroup.path, path);
	strcpy(req->cgroup.file, file);
	strcpy(req->cgroup.value, value);
}

static void test_validate_cgroup(void **state)
{
	struct act_request req;

	static const struct {
		const char *path, *file, *value;
	} good[] = {
	    {"/sys/fs/cgroup/system.slice/web.service", "cpu.weight", "100"},
	    {"cpu/hs-test", "cpu.shares", "2"},
	    {"cpu/hs-test", "cpu.shares", "262144"},
	    {"cpu/hs-test", "cpu.cfs_quota_us", "-1"},
	    {"cpu/hs-test", "cpu.cfs_quota_us", "50000"},
	    {"web", "cpu.max", "max"},
	    {"web", "cpu.max", "50000 100000"},
	    {"web", "cpu.max", "max 100000"},
	    {"web", "memory.high", "max"},
	    {"web", "memory.high", "536870912"},
	    {"web", "pids.max", " 512 "},
	    {"unified/hs", "cgroup.max.descendants", "4"},
	    {"a b/c", "cpu.weight", "10000"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		cgroup_req(&req, good[i].path, good[i].file, good[i].value);
		assert_int_equal(validate(&req), 0);
	}

	static const struct {
		const char *path, *file, *value, *why;
	} bad[] = {
	    {"/sys/fs/cgroup/../../etc", "cpu.weight", "100",
	     "cgroup path '/sys/fs/cgroup/../../etc' may not hold '.' or '..'"},
	    {"cpu/../../../etc", "cpu.shares", "100",
	     "cgroup path 'cpu/../../../etc' may not hold '.' or '..'"},
	    {"cpu/./x", "cpu.shares", "100", "cgroup path 'cpu/./x' may not hold '.' or '..'"},
	    {"/etc/passwd", "cpu.weight", "100",
	     "cgroup path '/etc/passwd' is not under /sys/fs/cgroup"},
	    {"/sys/fs/cgroupx/a", "cpu.weight", "100",
	     "cgroup path '/sys/fs/cgroupx/a' is not under /sys/fs/cgroup"},
	    {"/sys/fs/cgroup", "cpu.weight", "100", "cgroup path '/sys/fs/cgroup' names no cgroup"},
	    {"/sys/fs/cgroup/", "cpu.weight", "100",
	     "cgroup path '/sys/fs/cgroup/' names no cgroup"},
	    {"", "cpu.weight", "100", "cgroup path '' names no cgroup"},
	    {"cpu//x", "cpu.shares", "100", "cgroup path 'cpu//x' has an empty component"},
	    {"cpu/x/", "cpu.shares", "100", "cgroup path 'cpu/x/' has an empty component"},
	    {"cpu/x\ny", "cpu.shares", "100", "cgroup path holds a control character (0x0a)"},
	    {"web", "cgroup.procs", "1", "cgroup file 'cgroup.procs' is not one homeostat changes"},
	    {"web", "../cpu.weight", "1",
	     "cgroup file '../cpu.weight' is not one homeostat changes"},
	    {"web", "cpu.weight", "0",
	     "cgroup cpu.weight value '0' must be an integer between 1 "
	     "and 10000"},
	    {"web", "cpu.weight", "10001",
	     "cgroup cpu.weight value '10001' must be an integer "
	     "between 1 and 10000"},
	    {"web", "cpu.weight", "1e3",
	     "cgroup cpu.weight value '1e3' must be an integer between "
	     "1 and 10000"},
	    {"web", "cpu.weight", "max",
	     "cgroup cpu.weight value 'max' must be an integer between "
	     "1 and 10000"},
	    {"cpu/x", "cpu.shares", "1",
	     "cgroup cpu.shares value '1' must be an integer between 2 "
	     "and 262144"},
	    {"cpu/x", "cpu.cfs_quota_us", "999",
	     "cgroup cpu.cfs_quota_us value '999' must be -1 or an integer between 1000 and "
	     "17592186044415"},
	    {"cpu/x", "cpu.cfs_quota_us", "-2",
	     "cgroup cpu.cfs_quota_us value '-2' must be -1 or an integer between 1000 and "
	     "17592186044415"},
	    {"web", "memory.high", "512M",
	     "cgroup memory.high value '512M' must be 'max' or an integer between 0 and "
	     "9223372036854775807"},
	    {"web", "memory.high", "-1",
	     "cgroup memory.high value '-1' must be 'max' or an integer between 0 and "
	     "9223372036854775807"},
	    {"web", "memory.high", "99999999999999999999",
	     "cgroup memory.high value '99999999999999999999' must be 'max' or an integer between "
	     "0 and 9223372036854775807"},
	    {"web", "cpu.max", "50000 100",
	     "cgroup cpu.max value '50000 100' must be 'max' or a quota between 1000 and "
	     "17592186044415 us, optionally followed by a period between 1000 and 1000000 us"},
	    {"web", "cpu.max", "50000 100000 3",
	     "cgroup cpu.max value '50000 100000 3' must be 'max' or a quota between 1000 and "
	     "17592186044415 us, optionally followed by a period between 1000 and 1000000 us"},
	    {"web", "pids.max", "", "cgroup value is empty"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		cgroup_req(&req, bad[i].path, bad[i].file, bad[i].value);
		assert_int_equal(validate(&req), -EINVAL);
		assert_string_equal(why, bad[i].why);
	}

	cgroup_req(&req, "web", "cpu.weight", "100");
	req.pid = 1;
	assert_int_equal(validate(&req), -EINVAL);
	assert_string_equal(why, "cgroup takes no pid");
}

static void test_validate_process(void **state)
{
	struct act_request req;

	act_request_init(&req, ACT_KIND_RLIMIT);
	req.rlimit.resource = RLIMIT_NOFILE;
	req.rlimit.soft = 1024;
	assert_int_equal(validate(&req), -EINVAL);
	assert_string_equal(why, "rlimit needs a process (pid > 0), not 0");
	req.pid = 1234;
	assert_int_equal(validate(&req), 0);
	req.rlimit.resource = 9999;
	assert_int_equal(validate(&req), -EINVAL);
	assert_string_equal(why, "unknown resource limit 9999");
	req.rlimit.resource = RLIMIT_NOFILE;
	req.rlimit.set_hard = true;
	req.rlimit.hard = 512;
	assert_int_equal(validate(&req), -EINVAL);
	assert_string_equal(why, "soft limit 1024 is above the hard limit 512");
	req.rlimit.soft = RLIM_INFINITY;
	req.rlimit.hard = RLIM_INFINITY;
	assert_int_equal(validate(&req), 0);

	act_request_init(&req, ACT_KIND_NICE);
	req.pid = -5;
	assert_int_equal(validate(&req), -EINVAL);
	assert_string_equal(why, "nice needs a process (pid > 0), not -5");
	req.pid = 1234;
	req.nice.value = 20;
	assert_int_equal(validate(&req), -EINVAL);
	assert_string_equal(why, "nice value 20 must be between -20 and 19");
	req.nice.value = -21;
	assert_int_equal(validate(&req), -EINVAL);
	req.nice.value = -20;
	assert_int_equal(validate(&req), 0);

	act_request_init(&req, ACT_KIND_SIGNAL);
	req.signal.signo = SIGTERM;
	for (pid_t p = -1; p <= 1; p++) { /* -1: every process; 0: our group; 1: init */
		req.pid = p;
		assert_int_equal(validate(&req), -EINVAL);
	}
	assert_string_equal(why, "a signal needs one process other than init (pid > 1), not 1");
	req.pid = 1234;
	assert_int_equal(validate(&req), 0);
	req.signal.signo = 0;
	assert_int_equal(validate(&req), -EINVAL);
	snprintf(why + 100, 100, "signal 0 must be between 1 and %d", SIGRTMAX);
	assert_string_equal(why, why + 100);
	req.signal.signo = SIGRTMAX + 1;
	assert_int_equal(validate(&req), -EINVAL);

	act_request_init(&req, ACT_KIND_RESTART);
	assert_int_equal(validate(&req), -EINVAL);
	assert_string_equal(why, "restart command is empty");
	strcpy(req.restart.command, "systemctl restart x\nrm -rf /");
	assert_int_equal(validate(&req), -EINVAL);
	assert_string_equal(why, "restart command holds a control character (0x0a)");
	strcpy(req.restart.command, "/usr/sbin/service web restart");
	assert_int_equal(validate(&req), 0);
	req.restart.timeout_ms = ACT_RESTART_TIMEOUT_MAX_MS + 1;
	assert_int_equal(validate(&req), -EINVAL);
	assert_string_equal(why,
			    "restart timeout 120001 ms must be between 1 and 120000 (0: 10000)");
	req.restart.timeout_ms = 0;
	memset(req.restart.command, 'x', sizeof(req.restart.command));
	assert_int_equal(validate(&req), -EINVAL);
	assert_string_equal(why, "restart command is longer than 1023 bytes");

	/* the patch's own cases are in test_patch.c */
	act_request_init(&req, ACT_KIND_PATCH);
	assert_int_equal(validate(&req), -EINVAL);
	assert_string_equal(why, "a patch needs one process other than init (pid > 1), not 0");
	req.kind = ACT_KIND_COUNT;
	assert_int_equal(validate(&req), -EINVAL);
	assert_string_equal(why, "unknown actuator kind 8");
}

static void test_revert_command(void **state)
{
	struct act_request req;
	struct act_result res = {.nthreads = 1};
	char buf[ACT_REVERT_MAX];

	act_request_init(&req, ACT_KIND_RLIMIT);
	req.pid = 1234;
	req.rlimit.resource = RLIMIT_NOFILE;
	assert_int_equal(act_revert_command(&req, NULL, "1024:4096", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "prlimit --pid 1234 --nofile=1024:4096");
	req.rlimit.resource = RLIMIT_MEMLOCK;
	assert_int_equal(act_revert_command(&req, NULL, "65536:unlimited", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "prlimit --pid 1234 --memlock=65536:unlimited");

	sysctl_req(&req, "net.core.somaxconn", "1");
	assert_int_equal(act_revert_command(&req, NULL, "4096", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "sysctl -w net.core.somaxconn=4096");
	sysctl_req(&req, "net.ipv4.tcp_rmem", "1");
	assert_int_equal(act_revert_command(&req, NULL, "4096 131072 6291456", buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "sysctl -w 'net.ipv4.tcp_rmem=4096 131072 6291456'");
	req.sysctl.netns_pid = 77;
	assert_int_equal(act_revert_command(&req, NULL, "4096 131072 6291456", buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "nsenter --net=/proc/77/ns/net sysctl -w "
				 "'net.ipv4.tcp_rmem=4096 131072 6291456'");
	sysctl_req(&req, "net.core.somaxconn", "1");
	strcpy(req.sysctl.netns_path, "/run/netns/hs-test");
	assert_int_equal(act_revert_command(&req, NULL, "4096", buf, sizeof(buf)), 0);
	assert_string_equal(buf,
			    "nsenter --net=/run/netns/hs-test sysctl -w net.core.somaxconn=4096");
	/* a quote in a value cannot break out of the shell word */
	sysctl_req(&req, "kernel.core_pattern", "1");
	assert_int_equal(act_revert_command(&req, NULL, "|/bin/x '%p'", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "sysctl -w 'kernel.core_pattern=|/bin/x '\\''%p'\\'''");

	cgroup_req(&req, "cpu/hs-test", "cpu.shares", "1");
	assert_int_equal(act_revert_command(&req, NULL, "1024", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "echo 1024 > /sys/fs/cgroup/cpu/hs-test/cpu.shares");
	cgroup_req(&req, "/sys/fs/cgroup/system.slice/web.service", "cpu.max", "1");
	assert_int_equal(act_revert_command(&req, NULL, "max 100000", buf, sizeof(buf)), 0);
	assert_string_equal(buf,
			    "echo 'max 100000' > /sys/fs/cgroup/system.slice/web.service/cpu.max");
	cgroup_req(&req, "my app/x", "cpu.weight", "1");
	assert_int_equal(act_revert_command(&req, NULL, "100", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "echo 100 > '/sys/fs/cgroup/my app/x/cpu.weight'");

	act_request_init(&req, ACT_KIND_NICE);
	req.pid = 1234;
	assert_int_equal(act_revert_command(&req, &res, "0", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "renice -n 0 -p 1234");
	res.nthreads = 3;
	assert_int_equal(act_revert_command(&req, &res, "-5", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "renice -n -5 -p $(ls /proc/1234/task)");

	assert_int_equal(act_revert_command(&req, &res, "-5", buf, 10), -ENAMETOOLONG);
	assert_string_equal(buf, "");
	/* SCHED_IDLE: chrt -a changes every thread; back to a number leaves SCHED_IDLE first */
	req.nice.idle = true;
	assert_int_equal(act_revert_command(&req, &res, "idle", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "chrt -a -i -p 0 1234");
	assert_int_equal(act_revert_command(&req, &res, "0", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "chrt -a -o -p 0 1234 && renice -n 0 -p $(ls /proc/1234/task)");

	act_request_init(&req, ACT_KIND_SIGNAL);
	assert_int_equal(act_revert_command(&req, NULL, "", buf, sizeof(buf)), -EOPNOTSUPP);
	act_request_init(&req, ACT_KIND_RESTART);
	assert_int_equal(act_revert_command(&req, NULL, "", buf, sizeof(buf)), -EOPNOTSUPP);
}

static rlim_t nofile_soft(void)
{
	struct rlimit rl;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	return rl.rlim_cur;
}

static void set_nofile_soft(rlim_t soft)
{
	struct rlimit rl;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = soft;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

static void test_rlimit_self(void **state)
{
	struct act_request req;
	struct act_result res;
	struct rlimit orig;
	char expect[ACT_WHY_MAX], cur[ACT_VALUE_MAX];
	rlim_t want;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &orig), 0);
	want = orig.rlim_cur == 200 ? 300 : 200;
	act_request_init(&req, ACT_KIND_RLIMIT);
	req.pid = getpid();
	req.rlimit.resource = RLIMIT_NOFILE;
	req.rlimit.soft = want;

	assert_int_equal(act_apply(&req, &res), 0);
	assert_int_equal(nofile_soft(), want);
	snprintf(expect, sizeof(expect), "%llu:%llu", (unsigned long long)orig.rlim_cur,
		 (unsigned long long)orig.rlim_max);
	assert_string_equal(res.before, expect);
	snprintf(expect, sizeof(expect), "%llu:%llu", (unsigned long long)want,
		 (unsigned long long)orig.rlim_max);
	assert_string_equal(res.after, expect);
	assert_int_equal(act_read(&req, cur, sizeof(cur)), 0);
	assert_string_equal(cur, expect);
	snprintf(expect, sizeof(expect), "prlimit --pid %d --nofile=%s", (int)getpid(), res.before);
	assert_string_equal(res.revert_cmd, expect);
	assert_true(res.applied);
	assert_false(res.adjusted);
	assert_string_equal(res.why, "");
	assert_int_equal(act_verify(&req, &res), 0);
	assert_int_equal(act_poll(&res), 0);

	/* an admin changes it meanwhile: verify sees it, revert leaves it alone */
	set_nofile_soft(want + 1);
	assert_int_equal(act_verify(&req, &res), -ESTALE);
	assert_int_equal(act_revert(&res), -ESTALE);
	assert_int_equal(nofile_soft(), want + 1);
	snprintf(expect, sizeof(expect),
		 "the host holds '%llu:%llu', not '%s': changed by someone else since homeostat "
		 "set it, left alone",
		 (unsigned long long)want + 1, (unsigned long long)orig.rlim_max, res.after);
	assert_string_equal(res.why, expect);

	/* back to what homeostat set: revert restores the value before, once */
	set_nofile_soft(want);
	assert_int_equal(act_revert(&res), 0);
	assert_string_equal(res.why, "");
	assert_int_equal(nofile_soft(), orig.rlim_cur);
	assert_int_equal(act_revert(&res), -EALREADY);
	assert_string_equal(res.why, "already reverted");

	/* above the hard limit without asking to raise it: refused, nothing changed */
	if (orig.rlim_max != RLIM_INFINITY) {
		req.rlimit.soft = orig.rlim_max + 1;
		assert_int_equal(act_apply(&req, &res), -EINVAL);
		snprintf(expect, sizeof(expect),
			 "soft limit %llu is above the hard limit %llu (raising the hard limit "
			 "was not asked)",
			 (unsigned long long)orig.rlim_max + 1, (unsigned long long)orig.rlim_max);
		assert_string_equal(res.why, expect);
		assert_false(res.applied);
		assert_int_equal(act_revert(&res), -ENOTCONN);
		assert_int_equal(nofile_soft(), orig.rlim_cur);
	}

	/* another process's start time: refused before anything is read */
	req.rlimit.soft = want;
	req.pid_start = 1;
	assert_int_equal(act_apply(&req, &res), -ESRCH);
	assert_int_equal(nofile_soft(), orig.rlim_cur);
	/* no such process */
	req.pid_start = 0;
	req.pid = 0x3fffffff;
	assert_int_equal(act_apply(&req, &res), -ESRCH);
	assert_string_equal(res.why, "no process 1073741823");
}

static void *idle_thread(void *arg)
{
	for (;;)
		pause();
	return NULL;
}

/* The threads of pid other than pid itself: how many, and one of them. */
static int other_threads(pid_t pid, pid_t *other)
{
	char task[64];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(task, sizeof(task), "/proc/%d/task", (int)pid);
	d = opendir(task);
	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (atoi(e->d_name) > 0 && atoi(e->d_name) != pid) {
			*other = atoi(e->d_name);
			n++;
		}
	closedir(d);
	return n;
}

/* A child (with a second thread if asked) that waits to be killed. */
static pid_t spawn_child(bool second_thread)
{
	pthread_t t;
	pid_t pid = fork(), other;

	assert_true(pid >= 0);
	if (pid == 0) {
		if (second_thread)
			pthread_create(&t, NULL, idle_thread, NULL);
		for (;;)
			pause();
	}
	for (int i = 0; i < 400 && second_thread && other_threads(pid, &other) < 1; i++)
		usleep(5000);
	return pid;
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void test_nice_child(void **state)
{
	struct act_request req;
	struct act_result res;
	char expect[128];
	pid_t pid = spawn_child(true);
	int before, r;

	errno = 0;
	before = getpriority(PRIO_PROCESS, (id_t)pid);
	assert_int_equal(errno, 0);
	act_request_init(&req, ACT_KIND_NICE);
	req.pid = pid;
	req.nice.value = before + 5 > 19 ? 19 : before + 5;

	assert_int_equal(act_apply(&req, &res), 0);
	snprintf(expect, sizeof(expect), "%d", before);
	assert_string_equal(res.before, expect);
	snprintf(expect, sizeof(expect), "%d", req.nice.value);
	assert_string_equal(res.after, expect);
	assert_int_equal(res.nthreads, 2);
	snprintf(expect, sizeof(expect), "renice -n %d -p $(ls /proc/%d/task)", before, (int)pid);
	assert_string_equal(res.revert_cmd, expect);
	assert_int_equal(act_verify(&req, &res), 0);

	/* lowering a nice value needs CAP_SYS_NICE (or RLIMIT_NICE) */
	r = act_revert(&res);
	if (geteuid() == 0) {
		assert_int_equal(r, 0);
		errno = 0;
		assert_int_equal(getpriority(PRIO_PROCESS, (id_t)pid), before);
	} else {
		assert_true(r == 0 || r == -EACCES || r == -EPERM);
	}

	/* one thread changed by someone else: the process no longer holds the value, and
	 * revert leaves it alone (raising a nice value needs no privilege) */
	errno = 0;
	before = getpriority(PRIO_PROCESS, (id_t)pid);
	assert_int_equal(errno, 0);
	req.nice.value = before + 1;
	assert_true(req.nice.value < 19);
	assert_int_equal(act_apply(&req, &res), 0);
	assert_int_equal(act_verify(&req, &res), 0);
	{
		pid_t other = 0;

		assert_int_equal(other_threads(pid, &other), 1);
		assert_int_equal(setpriority(PRIO_PROCESS, (id_t)other, 19), 0);
	}
	assert_int_equal(act_verify(&req, &res), -ESTALE);
	assert_int_equal(act_revert(&res), -ESTALE);
	assert_string_equal(res.why, "1 of 2 threads hold another nice value: changed by someone "
				     "else since homeostat set it, left alone");
	reap(pid);
	/* the process is gone: verify and revert say so */
	assert_int_equal(act_verify(&req, &res), -ESRCH);
}

/* the scheduling policy of a thread, as /proc/PID/task/TID/stat says it */
static int policy_of(pid_t tid)
{
	return sched_getscheduler(tid);
}

static void test_nice_idle_child(void **state)
{
	struct act_request req;
	struct act_result res;
	char expect[128];
	pid_t pid = spawn_child(true), other = 0;
	int before;

	errno = 0;
	before = getpriority(PRIO_PROCESS, (id_t)pid);
	assert_int_equal(errno, 0);
	assert_int_equal(other_threads(pid, &other), 1);
	act_request_init(&req, ACT_KIND_NICE);
	req.pid = pid;
	req.nice.idle = true;

	assert_int_equal(act_apply(&req, &res), 0);
	snprintf(expect, sizeof(expect), "%d", before);
	assert_string_equal(res.before, expect);
	assert_string_equal(res.after, "idle");
	assert_int_equal(res.nthreads, 2);
	assert_int_equal(policy_of(pid), SCHED_IDLE);
	assert_int_equal(policy_of(other), SCHED_IDLE);
	snprintf(expect, sizeof(expect),
		 "chrt -a -o -p 0 %d && renice -n %d -p $(ls /proc/%d/task)", (int)pid, before,
		 (int)pid);
	assert_string_equal(res.revert_cmd, expect);
	assert_int_equal(act_verify(&req, &res), 0);

	/* leaving SCHED_IDLE needs CAP_SYS_NICE unless RLIMIT_NICE allows the nice value */
	if (geteuid() == 0) {
		assert_int_equal(act_revert(&res), 0);
		assert_int_equal(policy_of(pid), SCHED_OTHER);
		assert_int_equal(policy_of(other), SCHED_OTHER);
		errno = 0;
		assert_int_equal(getpriority(PRIO_PROCESS, (id_t)other), before);

		/* one thread moved back by someone else: no longer held, revert leaves it */
		assert_int_equal(act_apply(&req, &res), 0);
		{
			struct sched_param sp = {0};

			assert_int_equal(sched_setscheduler(other, SCHED_OTHER, &sp), 0);
		}
		assert_int_equal(act_verify(&req, &res), -ESTALE);
		assert_int_equal(act_revert(&res), -ESTALE);
		assert_string_equal(res.why,
				    "1 of 2 threads hold another scheduling policy: changed by "
				    "someone else since homeostat set it, left alone");
		assert_int_equal(policy_of(pid), SCHED_IDLE);
	}
	reap(pid);
}

static void test_signal_child(void **state)
{
	struct act_request req;
	struct act_result res;
	pid_t pid = spawn_child(false);
	int status;

	act_request_init(&req, ACT_KIND_SIGNAL);
	req.pid = pid;
	req.signal.signo = SIGTERM;
	assert_int_equal(act_read(&req, why, sizeof(why)), -EOPNOTSUPP);
	assert_int_equal(act_apply(&req, &res), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGTERM);
	assert_string_equal(res.after, "SIGTERM sent");
	assert_string_equal(res.revert_cmd, "");
	assert_int_equal(act_verify(&req, &res), 0);
	assert_int_equal(act_revert(&res), -EOPNOTSUPP);
	assert_string_equal(res.why, "a signal cannot be taken back once it was sent");

	/* the process is gone (pid reaped): refused */
	assert_int_equal(act_apply(&req, &res), -ESRCH);
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_poll(struct act_result *res)
{
	int r;

	for (int i = 0; i < 500; i++) {
		r = act_poll(res);
		if (r != -EINPROGRESS)
			return r;
		usleep(10000);
	}
	return r;
}

/* Processes of process group pgid that are not zombies. */
static int live_in_group(pid_t pgid)
{
	char path[64], buf[512], state;
	struct dirent *e;
	int n = 0, pg;
	DIR *d = opendir("/proc");
	FILE *f;

	assert_non_null(d);
	while ((e = readdir(d))) {
		if (atoi(e->d_name) <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", atoi(e->d_name));
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f) && strrchr(buf, ')') &&
		    sscanf(strrchr(buf, ')') + 2, "%c %*d %d", &state, &pg) == 2 && pg == pgid &&
		    state != 'Z')
			n++;
		fclose(f);
	}
	closedir(d);
	return n;
}

static void test_restart(void **state)
{
	struct act_request req;
	struct act_result res;
	int64_t t0;

	act_request_init(&req, ACT_KIND_RESTART);
	strcpy(req.restart.command, "test \"$PATH\" = /usr/local/sbin:/usr/local/bin:/usr/sbin:"
				    "/usr/bin:/sbin:/bin && test ! -e /proc/self/fd/3");
	assert_int_equal(act_apply(&req, &res), 0);
	assert_true(res.pidfd >= 0);
	assert_int_equal(act_verify(&req, &res) == -EINPROGRESS || act_verify(&req, &res) == 0, 1);
	assert_int_equal(wait_poll(&res), 0);
	assert_string_equal(res.after, "exit 0");
	assert_int_equal(res.pidfd, -1);
	assert_int_equal(act_verify(&req, &res), 0);
	assert_int_equal(act_revert(&res), -EOPNOTSUPP);
	assert_string_equal(res.why, "a restart cannot be undone: the old process is gone");
	act_result_release(&res);

	strcpy(req.restart.command, "exit 3");
	assert_int_equal(act_apply(&req, &res), 0);
	assert_int_equal(wait_poll(&res), -EIO);
	assert_string_equal(res.after, "exit 3");
	assert_string_equal(res.why, "restart command failed with exit status 3");
	assert_int_equal(act_verify(&req, &res), -EIO);

	strcpy(req.restart.command, "kill -SEGV $$");
	assert_int_equal(act_apply(&req, &res), 0);
	assert_int_equal(wait_poll(&res), -EIO);
	assert_string_equal(res.after, "killed by SIGSEGV");

	/* never blocks the caller; killed at its deadline, with what it started */
	strcpy(req.restart.command, "sleep 30 & sleep 30");
	req.restart.timeout_ms = 200;
	t0 = mono_ms();
	assert_int_equal(act_apply(&req, &res), 0);
	assert_true(mono_ms() - t0 < 100);
	assert_int_equal(act_poll(&res), -EINPROGRESS);
	assert_int_equal(act_verify(&req, &res), -EINPROGRESS);
	assert_int_equal(wait_poll(&res), -ETIMEDOUT);
	assert_true(mono_ms() - t0 < 2000);
	assert_string_equal(res.after, "killed after 200 ms");
	assert_string_equal(res.why, "restart command did not finish within 200 ms: killed");
	/* nothing alive left in its process group (pid 1 here may reap the zombies late) */
	for (int i = 0; i < 100 && live_in_group(res.child) > 0; i++)
		usleep(10000);
	assert_int_equal(live_in_group(res.child), 0);

	/* released while running: killed and reaped */
	assert_int_equal(act_apply(&req, &res), 0);
	act_result_release(&res);
	assert_int_equal(res.pidfd, -1);
	assert_int_equal(waitpid(res.child, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

static void test_read(void **state)
{
	struct act_request req;
	char value[ACT_VALUE_MAX], raw[ACT_VALUE_MAX], norm[ACT_VALUE_MAX];
	FILE *f;

	sysctl_req(&req, "kernel.pid_max", "1");
	assert_int_equal(act_read(&req, value, sizeof(value)), 0);
	f = fopen("/proc/sys/kernel/pid_max", "r");
	assert_non_null(f);
	assert_non_null(fgets(raw, sizeof(raw), f));
	fclose(f);
	act_normalise(raw, norm, sizeof(norm));
	assert_string_equal(value, norm);

	sysctl_req(&req, "kernel.no_such_knob_here", "1");
	assert_int_equal(act_read(&req, value, sizeof(value)), -ENOENT);
	sysctl_req(&req, "kernel..pid_max", "1");
	assert_int_equal(act_read(&req, value, sizeof(value)), -EINVAL);

	cgroup_req(&req, "hs-no-such-group-here", "cpu.weight", "100");
	assert_int_equal(act_read(&req, value, sizeof(value)), -ENOENT);
	if (access("/sys/fs/cgroup/cpu/cpu.shares", R_OK) == 0) {
		cgroup_req(&req, "cpu", "cpu.shares", "100");
		assert_int_equal(act_read(&req, value, sizeof(value)), 0);
		assert_string_equal(value, "1024");
		/* a v2 file in a v1 hierarchy is not there */
		cgroup_req(&req, "cpu", "cpu.weight", "100");
		assert_int_equal(act_read(&req, value, sizeof(value)), -ENOENT);
	}

	act_request_init(&req, ACT_KIND_RESTART);
	strcpy(req.restart.command, "true");
	assert_int_equal(act_read(&req, value, sizeof(value)), -EOPNOTSUPP);
	act_request_init(&req, ACT_KIND_PATCH);
	assert_int_equal(act_read(&req, value, sizeof(value)), -EINVAL);
}

/* The file actuator on a real file: apply keeps owner and mode, verify, an admin's edit
 * makes revert back off (-ESTALE), revert puts the value back, bad paths are refused. */
static void test_file(void **state)
{
	char dir[] = "/tmp/hs-test-file.XXXXXX", path[128], msg[ACT_WHY_MAX], line[64];
	struct act_request req;
	struct act_result res;
	struct stat st;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/workers", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("4\n", f);
	fclose(f);
	assert_int_equal(chmod(path, 0640), 0);

	act_request_init(&req, ACT_KIND_FILE);
	strcpy(req.file.path, path);
	strcpy(req.file.value, " 8 ");
	assert_int_equal(act_validate(&req, msg, sizeof(msg)), 0);
	assert_int_equal(act_read(&req, line, sizeof(line)), 0);
	assert_string_equal(line, "4");
	assert_int_equal(act_apply(&req, &res), 0);
	assert_string_equal(res.before, "4");
	assert_string_equal(res.after, "8");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(act_verify(&req, &res), 0);
	snprintf(msg, sizeof(msg), "echo 4 > %s", path);
	assert_string_equal(res.revert_cmd, msg);

	/* an admin writes 16: homeostat leaves it alone */
	f = fopen(path, "w");
	fputs("16\n", f);
	fclose(f);
	assert_int_equal(act_verify(&req, &res), -ESTALE);
	assert_int_equal(act_revert(&res), -ESTALE);
	assert_int_equal(act_read(&req, line, sizeof(line)), 0);
	assert_string_equal(line, "16");

	/* back to what homeostat wrote: revert restores 4 */
	f = fopen(path, "w");
	fputs("8\n", f);
	fclose(f);
	assert_int_equal(act_revert(&res), 0);
	assert_int_equal(act_read(&req, line, sizeof(line)), 0);
	assert_string_equal(line, "4");

	/* a file of several lines is not a one-value knob */
	f = fopen(path, "w");
	fputs("4\nmore\n", f);
	fclose(f);
	assert_int_equal(act_read(&req, line, sizeof(line)), -EMEDIUMTYPE);

	strcpy(req.file.path, "relative/x");
	assert_int_equal(act_validate(&req, msg, sizeof(msg)), -EINVAL);
	assert_string_equal(msg, "file path 'relative/x' is not absolute");
	strcpy(req.file.path, "/etc/../etc/passwd");
	assert_int_equal(act_validate(&req, msg, sizeof(msg)), -EINVAL);
	strcpy(req.file.path, "/proc/sys/vm/swappiness");
	assert_int_equal(act_validate(&req, msg, sizeof(msg)), -EINVAL);
	strcpy(req.file.path, path);
	strcpy(req.file.value, "a\nb");
	assert_int_equal(act_validate(&req, msg, sizeof(msg)), -EINVAL);

	unlink(path);
	rmdir(dir);
}

static void test_patch(void **state)
{
	struct act_request req;
	struct act_result res;

	/* the patch actuator itself is tested in test_patch.c and 0500-redirect-patch.sh */
	act_request_init(&req, ACT_KIND_PATCH);
	assert_int_equal(act_apply(&req, &res), -EINVAL);
	assert_string_equal(res.why, "a patch needs one process other than init (pid > 1), not 0");
	assert_false(res.applied);
	assert_int_equal(act_revert(&res), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_normalise),
	    cmocka_unit_test(test_validate_sysctl),
	    cmocka_unit_test(test_validate_cgroup),
	    cmocka_unit_test(test_validate_process),
	    cmocka_unit_test(test_revert_command),
	    cmocka_unit_test(test_rlimit_self),
	    cmocka_unit_test(test_nice_child),
	    cmocka_unit_test(test_nice_idle_child),
	    cmocka_unit_test(test_signal_child),
	    cmocka_unit_test(test_restart),
	    cmocka_unit_test(test_read),
	    cmocka_unit_test(test_file),
	    cmocka_unit_test(test_patch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
