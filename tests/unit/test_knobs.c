/* test_knobs.c - the tuning section of the policy and the knob registry (agent/tune/knobs.h).
 *
 * Policies with tuning jobs load into exact values and an exact registry; every validation
 * error of the section comes out with its exact message and position; each kind of knob
 * gives the exact actuator request; reads go through act_read() against the real host
 * (vm.swappiness, net.core.somaxconn, the test's own rlimits; nothing is written), and
 * bounded_by clamps to what a real sysctl holds. No root needed: sysctls are read in the
 * host namespace, which any user may read. Run from the repository root (or set HS_SRCDIR)
 * for the good fixture.
 */
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "actuate/actuate.h"
#include "lib/errors.h"
#include "safety/policy.h"
#include "tune/knobs.h"
#include "tune/search.h"

#define SKIP(msg)                                                                                  \
	do {                                                                                       \
		print_message("skipped: %s\n", msg);                                               \
		skip();                                                                            \
	} while (0)

/* Asserts that errs holds exactly the given lines, in order; then clears it. */
static void expect_errors(struct hs_errors *e, ...)
{
	const char *want;
	size_t i = 0;
	va_list ap;

	va_start(ap, e);
	while ((want = va_arg(ap, const char *))) {
		if (i >= e->n)
			fail_msg("missing error %zu: %s", i, want);
		assert_string_equal(e->msgs[i], want);
		i++;
	}
	va_end(ap);
	if (i != e->n)
		fail_msg("unexpected error: %s", e->msgs[i]);
	hs_errors_clear(e);
}

static int parse_policy(const char *text, struct safe_policy **p, struct hs_errors *e)
{
	return safe_policy_parse("p.yaml", text, strlen(text), p, e);
}

static char *read_fixture(const char *rel, size_t *len)
{
	const char *src = getenv("HS_SRCDIR");
	char path[PATH_MAX];
	char *buf;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/%s", src ? src : ".", rel);
	f = fopen(path, "r");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* The first line of a file, without its newline; false if it cannot be read. */
static bool read_line(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");
	bool ok;

	if (!f)
		return false;
	ok = fgets(buf, (int)size, f) != NULL;
	fclose(f);
	if (ok)
		buf[strcspn(buf, "\n")] = '\0';
	return ok;
}

/* The last number of a /proc/sys file ("4096\t131072\t6291456" -> 6291456). */
static long long sysctl_last(const char *path)
{
	char buf[256], *p;

	if (!read_line(path, buf, sizeof(buf)))
		return -1;
	p = buf + strlen(buf);
	while (p > buf && (p[-1] == ' ' || p[-1] == '\t'))
		*--p = '\0';
	while (p > buf && p[-1] != ' ' && p[-1] != '\t')
		p--;
	return atoll(p);
}

/* A knob as tune_knob_from_policy() makes it, from one policy knob in flow style. */
static void knob_of(const char *flow, struct tune_knob *k)
{
	char text[1024], why[256] = "";
	struct hs_errors e = {0};
	struct safe_policy *p = NULL;

	snprintf(text, sizeof(text),
		 "mode: enforce\naction_classes: [{name: auto, approval: none}]\n"
		 "targets: [{name: web, comm: web, restart: /bin/true}]\n"
		 "tuning: {jobs: [{name: j, target: web, class: auto, knobs: [%s]}]}\n",
		 flow);
	if (parse_policy(text, &p, &e)) {
		hs_errors_print(&e, stderr);
		fail_msg("policy with knob %s did not load", flow);
	}
	assert_int_equal(tune_knob_from_policy(&p->tuning.jobs[0].knobs[0], k, why, sizeof(why)),
			 0);
	safe_policy_free(p);
}

/* ---- the tables agree with the search and the actuator ---- */

static void test_tables(void **state)
{
	struct act_request req;
	char why[ACT_WHY_MAX];
	size_t n = 0;

	for (int i = 0; i < TUNE_STRATEGY_COUNT; i++)
		assert_string_equal(safe_tune_strategy_names[i], tune_strategy_name(i));
	assert_null(safe_tune_strategy_names[TUNE_STRATEGY_COUNT]);
	assert_int_equal(SAFE_MAX_TUNE_KNOBS, TUNE_MAX_DIMS);
	assert_int_equal(SAFE_MAX_TUNE_TRIALS, TUNE_MAX_TRIALS);

	/* Every cgroup file a knob may name is one the actuator changes (a value out of a
	 * file's range is another complaint); and the probe tells the difference. */
	for (const char *const *f = safe_tune_cgroup_files; *f; f++, n++) {
		act_request_init(&req, ACT_KIND_CGROUP);
		snprintf(req.cgroup.path, sizeof(req.cgroup.path), "x");
		snprintf(req.cgroup.file, sizeof(req.cgroup.file), "%s", *f);
		snprintf(req.cgroup.value, sizeof(req.cgroup.value), "1000");
		why[0] = '\0';
		if (act_validate(&req, why, sizeof(why)) &&
		    strstr(why, "is not one homeostat changes"))
			fail_msg("the actuator does not change cgroup file %s: %s", *f, why);
	}
	assert_int_equal(n, 17);
	snprintf(req.cgroup.file, sizeof(req.cgroup.file), "cpu.stat");
	assert_int_equal(act_validate(&req, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "cgroup file 'cpu.stat' is not one homeostat changes");
}

/* ---- loading ---- */

static void test_policy_without_tuning(void **state)
{
	struct hs_errors e = {0};
	struct safe_policy *p = NULL;
	struct tune_registry *r = NULL;
	char why[256];
	size_t len;
	char *text = read_fixture("policies/default.yaml", &len);

	assert_int_equal(parse_policy("mode: enforce\n", &p, &e), 0);
	assert_int_equal(p->tuning.n_jobs, 0);
	assert_null(p->tuning.jobs);
	assert_int_equal(tune_registry_build(p, &r, why, sizeof(why)), 0);
	assert_int_equal(r->n_jobs, 0);
	assert_null(tune_registry_job(r, "web-backlog"));
	tune_registry_free(r);
	safe_policy_free(p);

	assert_int_equal(parse_policy("mode: enforce\ntuning:\n", &p, &e), 0);
	assert_int_equal(p->tuning.n_jobs, 0);
	safe_policy_free(p);
	assert_int_equal(parse_policy("mode: enforce\ntuning: {jobs: []}\n", &p, &e), 0);
	assert_int_equal(p->tuning.n_jobs, 0);
	safe_policy_free(p);

	/* The shipped policy tunes nothing: its example is a comment. */
	if (!text)
		SKIP("policies/default.yaml not found: run from the repository root");
	assert_non_null(strstr(text, "# tuning:"));
	assert_int_equal(safe_policy_parse("default.yaml", text, len, &p, &e), 0);
	free(text);
	assert_int_equal(p->tuning.n_jobs, 0);
	safe_policy_free(p);
}

static void test_good_fixture(void **state)
{
	struct hs_errors e = {0};
	struct safe_policy *p = NULL;
	const struct safe_tune_job *sj;
	const struct tune_job *j;
	const struct tune_knob *k;
	struct tune_registry *r = NULL;
	char why[256] = "", d[128];
	size_t len;
	char *text = read_fixture("tests/config/good/policy.yaml", &len);

	if (!text)
		SKIP("tests/config/good/policy.yaml not found: run from the repository root");
	assert_int_equal(safe_policy_parse("good.yaml", text, len, &p, &e), 0);
	free(text);

	/* The policy as written. */
	assert_int_equal(p->tuning.n_jobs, 2);
	sj = safe_policy_tune_job(p, "web-backlog");
	assert_non_null(sj);
	assert_string_equal(sj->target, "web");
	assert_int_equal(sj->strategy, TUNE_ES);
	assert_int_equal(sj->max_trials, 10);
	assert_true(sj->reapply);
	assert_string_equal(sj->class, "approve");
	assert_int_equal(sj->n_knobs, 3);
	assert_int_equal(sj->knobs[0].kind, SAFE_KNOB_SYSCTL);
	assert_string_equal(sj->knobs[0].sysctl, "net.core.somaxconn");
	assert_int_equal(sj->knobs[0].netns, SAFE_NETNS_HOST);
	assert_string_equal(sj->knobs[0].step, "2x");
	assert_true(sj->knobs[0].step_factor);
	assert_true(sj->knobs[0].step_by == 2.0);
	assert_string_equal(sj->knobs[1].sysctl, "net/ipv4/tcp_rmem");
	assert_int_equal(sj->knobs[1].field, 3);
	assert_true(sj->knobs[1].step_by == 1.5);
	assert_int_equal(sj->knobs[2].kind, SAFE_KNOB_RLIMIT);
	assert_int_equal(sj->knobs[2].resource, RLIMIT_NOFILE);
	sj = safe_policy_tune_job(p, "leaky-cpu");
	assert_int_equal(sj->strategy, TUNE_HILL); /* the defaults */
	assert_int_equal(sj->max_trials, 20);
	assert_false(sj->reapply);
	assert_null(safe_policy_tune_job(p, "nope"));

	/* The registry. */
	assert_int_equal(tune_registry_build(p, &r, why, sizeof(why)), 0);
	assert_int_equal(r->n_jobs, 2);
	j = tune_registry_job(r, "web-backlog");
	assert_ptr_equal(j, &r->jobs[0]);
	assert_string_equal(j->target, "web");
	assert_string_equal(j->class, "approve");
	assert_int_equal(j->strategy, TUNE_ES);
	assert_int_equal(j->max_trials, 10);
	assert_true(j->reapply);
	assert_int_equal(j->n_knobs, 3);

	k = &j->knobs[0];
	assert_int_equal(k->kind, SAFE_KNOB_SYSCTL);
	assert_int_equal(k->act, ACT_KIND_SYSCTL);
	assert_string_equal(k->name, "net.core.somaxconn");
	assert_false(k->netns_target); /* netns: host */
	assert_int_equal(k->field, 0);
	assert_int_equal(k->min, 128);
	assert_int_equal(k->max, 65535);
	assert_true(k->step_factor);
	assert_true(k->step == 2.0);
	assert_true(k->restart);
	assert_string_equal(k->bounded_by, "net.ipv4.tcp_max_syn_backlog");
	assert_int_equal(tune_knob_describe(k, d, sizeof(d)), 0);
	assert_string_equal(d, "sysctl net.core.somaxconn");

	k = &j->knobs[1];
	assert_string_equal(k->name, "net.ipv4.tcp_rmem"); /* slashes become dots */
	assert_true(k->netns_target);
	assert_int_equal(k->field, 3);
	assert_int_equal(k->min, 131072);
	assert_int_equal(k->max, 16777216);
	assert_true(k->step == 1.5);
	assert_false(k->restart);
	assert_string_equal(k->bounded_by, "net.core.rmem_max");
	assert_int_equal(tune_knob_describe(k, d, sizeof(d)), 0);
	assert_string_equal(d, "sysctl net.ipv4.tcp_rmem[3] (target netns)");

	k = &j->knobs[2];
	assert_int_equal(k->kind, SAFE_KNOB_RLIMIT);
	assert_int_equal(k->act, ACT_KIND_RLIMIT);
	assert_string_equal(k->name, "nofile");
	assert_int_equal(k->resource, RLIMIT_NOFILE);
	assert_int_equal(tune_knob_describe(k, d, sizeof(d)), 0);
	assert_string_equal(d, "rlimit nofile (soft)");

	j = tune_registry_job(r, "leaky-cpu");
	assert_string_equal(j->target, "leaky");
	assert_string_equal(j->class, "auto");
	assert_int_equal(j->strategy, TUNE_HILL);
	assert_int_equal(j->max_trials, 20);
	assert_false(j->reapply);
	assert_int_equal(j->n_knobs, 3);
	k = &j->knobs[0];
	assert_int_equal(k->kind, SAFE_KNOB_CGROUP_FILE);
	assert_int_equal(k->act, ACT_KIND_CGROUP);
	assert_string_equal(k->name, "cpu.weight");
	assert_string_equal(k->cgroup, "/sys/fs/cgroup/batch.slice");
	assert_int_equal(tune_knob_describe(k, d, sizeof(d)), 0);
	assert_string_equal(d, "cgroup cpu.weight of /sys/fs/cgroup/batch.slice");
	k = &j->knobs[1];
	assert_string_equal(k->name, "cpu.max");
	assert_string_equal(k->cgroup, "");
	assert_false(k->step_factor);
	assert_true(k->step == 50000);
	assert_int_equal(tune_knob_describe(k, d, sizeof(d)), 0);
	assert_string_equal(d, "cgroup cpu.max (target cgroup)");
	k = &j->knobs[2];
	assert_int_equal(k->kind, SAFE_KNOB_FILE);
	assert_int_equal(k->act, ACT_KIND_FILE);
	assert_string_equal(k->file, "/etc/leaky/workers");
	assert_string_equal(k->name, "");
	assert_false(k->restart); /* restart: false */
	assert_int_equal(tune_knob_describe(k, d, sizeof(d)), 0);
	assert_string_equal(d, "file /etc/leaky/workers");
	tune_registry_free(r);

	/* The agent's own files are protected once the daemon added them. */
	assert_int_equal(safe_policy_protect_path(p, "/etc/leaky"), 0);
	assert_int_equal(tune_registry_build(p, &r, why, sizeof(why)), -EPERM);
	assert_null(r);
	assert_string_equal(why,
			    "tuning job 'leaky-cpu': knob file /etc/leaky/workers is protected");
	safe_policy_free(p);
}

static void test_defaults_and_forms(void **state)
{
	struct hs_errors e = {0};
	struct safe_policy *p = NULL;
	struct tune_knob k;

	/* A file knob restarts its target unless told otherwise; the others do not. */
	knob_of("{file: /etc/web/workers, min: 1, max: 64, step: 1}", &k);
	assert_true(k.restart);
	knob_of("{file: /etc/web/workers, min: 1, max: 64, step: 1, restart: false}", &k);
	assert_false(k.restart);
	knob_of("{sysctl: vm.swappiness, min: 0, max: 100, step: 10}", &k);
	assert_false(k.restart);
	assert_false(k.netns_target); /* not net.*: host-wide */
	knob_of("{sysctl: net.core.somaxconn, min: 128, max: 4096, step: 2x}", &k);
	assert_true(k.netns_target); /* net.*: the target's by default */
	knob_of("{cgroup_file: cpu.shares, cgroup: /sys/fs/cgroup/cpu/batch, min: 2, max: 4096, "
		"step: 4x}",
		&k);
	assert_string_equal(k.cgroup, "/sys/fs/cgroup/cpu/batch");
	assert_true(k.step == 4.0);
	knob_of("{sysctl: net.ipv4.tcp_fin_timeout, min: 5, max: 60, step: 55}", &k);
	assert_true(k.step == 55); /* max - min at most */
	knob_of("{rlimit: nofile, min: 1, max: 10, step: 1.25x}", &k);
	assert_true(k.step == 1.25);

	/* A job in block style, every key given. */
	assert_int_equal(parse_policy("mode: enforce\n"
				      "action_classes: [{name: auto, approval: none}]\n"
				      "targets: [{name: web, unit: web.service}]\n"
				      "tuning:\n"
				      "  jobs:\n"
				      "    - name: a_b-1\n"
				      "      target: web\n"
				      "      strategy: hill\n"
				      "      max_trials: 256\n"
				      "      reapply: false\n"
				      "      class: auto\n"
				      "      knobs:\n"
				      "        - sysctl: net/ipv4/tcp_wmem\n"
				      "          netns: target\n"
				      "          field: 2\n"
				      "          min: 16384\n"
				      "          max: 4194304\n"
				      "          step: 2x\n"
				      "          restart: false\n"
				      "          bounded_by: net/ipv4/tcp_wmem\n",
				      &p, &e),
			 0);
	assert_int_equal(p->tuning.jobs[0].max_trials, 256);
	assert_int_equal(p->tuning.jobs[0].knobs[0].field, 2);
	assert_string_equal(p->tuning.jobs[0].knobs[0].bounded_by, "net/ipv4/tcp_wmem");
	assert_int_equal(tune_knob_from_policy(&p->tuning.jobs[0].knobs[0], &k, NULL, 0), 0);
	assert_string_equal(k.bounded_by, "net.ipv4.tcp_wmem");
	safe_policy_free(p);
}

/* ---- every error of the section, exactly where it is ---- */

/* Each case is the base policy and one or more jobs, with every error it must give; each
 * position was computed from the token the error is about (the value of the key, or the
 * mapping), not copied from the output. */
#define BASE                                                                                       \
	"mode: enforce\n"                                                                          \
	"protected:\n"                                                                             \
	"  paths: [/etc/homeostat, /sys/fs/cgroup/system.slice]\n"                                 \
	"  sysctl_deny: [kernel.*]\n"                                                              \
	"  sysctl_ranges: [{name: vm.swappiness, min: 0, max: 100}]\n"                             \
	"action_classes: [{name: auto, approval: none}]\n"                                         \
	"targets: [{name: web, comm: nginx}, {name: svc, unit: svc.service}]\n"                    \
	"tuning:\n"                                                                                \
	"  jobs:\n"

static const struct err_case {
	const char *what;
	const char *text;
	const char *errs[8];
} err_cases[] = {
    {"no kind",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{min: 1, max: 2, step: 1}]}\n",
     {"p.yaml:10:51: knob needs one of sysctl, cgroup_file, rlimit, file"}},
    {"two kinds",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: net.core.somaxconn, rlimit: "
	  "nofile, file: /x, min: 128, max: 4096, step: 2x}]}\n",
     {"p.yaml:10:80: knob has both 'sysctl' and 'rlimit': give exactly one of sysctl, cgroup_file, "
      "rlimit, file",
      "p.yaml:10:96: knob has both 'sysctl' and 'file': give exactly one of sysctl, cgroup_file, "
      "rlimit, file"}},
    {"sysctl name",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: 'net.core.*', min: 1, max: "
	  "2, step: 1}]}\n",
     {"p.yaml:10:60: 'sysctl' is not a sysctl homeostat can write: sysctl name 'net.core.*' may "
      "hold only a-z, 0-9, '_', '.' and '-' (not first in a component)"}},
    {"sysctl no dir",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: swappiness, min: 1, max: 2, "
	  "step: 1}]}\n",
     {"p.yaml:10:60: 'sysctl' is not a sysctl homeostat can write: sysctl name 'swappiness' has no "
      "directory (e.g. net.)"}},
    {"cgroup file",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{cgroup_file: cpu.stat, min: 1, max: "
	  "2, step: 1}]}\n",
     {"p.yaml:10:65: 'cgroup_file' must be one of cpu.weight, cpu.weight.nice, cpu.max, cpu.idle, "
      "memory.high, memory.max, memory.low, memory.min, memory.swap.max, pids.max, "
      "cgroup.max.descendants, cgroup.max.depth, cpu.shares, cpu.cfs_quota_us, cpu.cfs_period_us, "
      "memory.limit_in_bytes, memory.soft_limit_in_bytes, not 'cpu.stat'"}},
    {"rlimit name",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{rlimit: files, min: 1, max: 2, step: "
	  "1}]}\n",
     {"p.yaml:10:60: 'rlimit' must be one of as, core, cpu, data, fsize, locks, memlock, msgqueue, "
      "nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack, not 'files'"}},
    {"file relative",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{file: etc/web/workers, min: 1, max: "
	  "2, step: 1}]}\n",
     {"p.yaml:10:58: 'file' must be an absolute path, not 'etc/web/workers'"}},
    {"file dots",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{file: /srv/../etc/shadow, min: 1, "
	  "max: 2, step: 1}]}\n",
     {"p.yaml:10:58: 'file' must not hold '.' or '..' components, not '/srv/../etc/shadow'"}},
    {"file kernel",
     BASE
     "    - {name: j, target: svc, class: auto, knobs: [{file: "
     "/sys/kernel/mm/transparent_hugepage/khugepaged/pages_to_scan, min: 1, max: 2, step: 1}]}\n",
     {"p.yaml:10:58: 'file' must not be under /proc, /sys or /dev, not "
      "'/sys/kernel/mm/transparent_hugepage/khugepaged/pages_to_scan': use a sysctl or cgroup_file "
      "knob"}},
    {"file protected",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{file: /etc/homeostat/workers, min: "
	  "1, max: 2, step: 1}]}\n",
     {"p.yaml:10:58: file '/etc/homeostat/workers' is not allowed: protected by protected.paths "
      "'/etc/homeostat'"}},
    {"netns non-net",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: vm.swappiness, netns: host, "
	  "min: 1, max: 2, step: 1}]}\n",
     {"p.yaml:10:82: 'netns' applies only to net.* sysctls, not 'vm.swappiness'"}},
    {"netns rlimit",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{rlimit: nofile, netns: target, min: "
	  "1, max: 2, step: 1}]}\n",
     {"p.yaml:10:75: 'netns' applies only to net.* sysctls, not rlimit"}},
    {"netns value",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: net.core.somaxconn, netns: "
	  "guest, min: 128, max: 256, step: 2x}]}\n",
     {"p.yaml:10:87: 'netns' must be one of target, host, not 'guest'"}},
    {"field",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{file: /srv/w, field: 1, min: 1, max: "
	  "2, step: 1}]}\n",
     {"p.yaml:10:73: 'field' applies only to sysctl knobs, not file"}},
    {"bounded_by",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{rlimit: nofile, bounded_by: "
	  "fs.nr_open, min: 1024, max: 4096, step: 2x}]}\n",
     {"p.yaml:10:80: 'bounded_by' applies only to sysctl knobs, not rlimit"}},
    {"bounded_by name",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: net.core.somaxconn, "
	  "bounded_by: 'fs.-file', min: 128, max: 256, step: 2x}]}\n",
     {"p.yaml:10:92: 'bounded_by' is not a sysctl name: sysctl name 'fs.-file' may hold only "
      "a-z, 0-9, '_', '.' and '-' (not first in a component)"}},
    {"cgroup rlimit",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{rlimit: nofile, cgroup: /batch, min: "
	  "1024, max: 4096, step: 2x}]}\n",
     {"p.yaml:10:76: 'cgroup' applies only to cgroup_file knobs, not rlimit"}},
    {"cgroup relative",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{cgroup_file: cpu.weight, cgroup: "
	  "batch, min: 1, max: 100, step: 2x}]}\n",
     {"p.yaml:10:85: 'cgroup' must be an absolute cgroup path such as /batch or "
      "/sys/fs/cgroup/batch, not 'batch'"}},
    {"cgroup dots",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{cgroup_file: cpu.weight, cgroup: "
	  "/a/../b, min: 1, max: 100, step: 2x}]}\n",
     {"p.yaml:10:85: 'cgroup' is not a cgroup homeostat can write: cgroup path "
      "'/sys/fs/cgroup/a/../b' may not hold '.' or '..'"}},
    {"cgroup protected",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{cgroup_file: cpu.weight, cgroup: "
	  "/system.slice/ssh.service, min: 1, max: 100, step: 2x}]}\n",
     {"p.yaml:10:85: cgroup '/sys/fs/cgroup/system.slice/ssh.service' is not allowed: protected by "
      "protected.paths '/sys/fs/cgroup/system.slice'"}},
    {"min > max",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: net.core.somaxconn, min: "
	  "4096, max: 128, step: 2x}]}\n",
     {"p.yaml:10:85: 'min' (4096) must be less than 'max' (128)"}},
    {"min = max",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: net.core.somaxconn, min: "
	  "128, max: 128, step: 2x}]}\n",
     {"p.yaml:10:85: 'min' (128) must be less than 'max' (128)"}},
    {"min missing",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: net.core.somaxconn, max: "
	  "128, step: 2x}]}\n",
     {"p.yaml:10:51: missing required key 'min'"}},
    {"step 0",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: net.ipv4.tcp_fin_timeout, "
	  "min: 5, max: 60, step: 0}]}\n",
     {"p.yaml:10:109: 'step' must be at least 1, not '0'"}},
    {"step -3",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: net.ipv4.tcp_fin_timeout, "
	  "min: 5, max: 60, step: -3}]}\n",
     {"p.yaml:10:109: 'step' must be at least 1, not '-3'"}},
    {"step 1x",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: net.core.somaxconn, min: "
	  "128, max: 4096, step: 1x}]}\n",
     {"p.yaml:10:107: 'step' factor must be greater than 1x and at most 16x, not '1x'"}},
    {"step 0.5x",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: net.core.somaxconn, min: "
	  "128, max: 4096, step: 0.5x}]}\n",
     {"p.yaml:10:107: 'step' factor must be greater than 1x and at most 16x, not '0.5x'"}},
    {"step 17x",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: net.core.somaxconn, min: "
	  "128, max: 4096, step: 17x}]}\n",
     {"p.yaml:10:107: 'step' factor must be greater than 1x and at most 16x, not '17x'"}},
    {"step fast",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: net.core.somaxconn, min: "
	  "128, max: 4096, step: 'fast'}]}\n",
     {"p.yaml:10:107: 'step' must be an integer such as 16 or a factor such as 2x, not 'fast'"}},
    {"step 2.5",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: net.core.somaxconn, min: "
	  "128, max: 4096, step: '2.5'}]}\n",
     {"p.yaml:10:107: 'step' must be an integer such as 16 or a factor such as 2x, not '2.5'"}},
    {"step x",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: net.core.somaxconn, min: "
	  "128, max: 4096, step: 'x'}]}\n",
     {"p.yaml:10:107: 'step' must be an integer such as 16 or a factor such as 2x, not 'x'"}},
    {"step 2X",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: net.core.somaxconn, min: "
	  "128, max: 4096, step: '2X'}]}\n",
     {"p.yaml:10:107: 'step' must be an integer such as 16 or a factor such as 2x, not '2X'"}},
    {"step 2 x",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: net.core.somaxconn, min: "
	  "128, max: 4096, step: '2 x'}]}\n",
     {"p.yaml:10:107: 'step' must be an integer such as 16 or a factor such as 2x, not '2 x'"}},
    {"step x2",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: net.core.somaxconn, min: "
	  "128, max: 4096, step: 'x2'}]}\n",
     {"p.yaml:10:107: 'step' must be an integer such as 16 or a factor such as 2x, not 'x2'"}},
    {"factor min 0",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: net.ipv4.tcp_fin_timeout, "
	  "min: 0, max: 60, step: 2x}]}\n",
     {"p.yaml:10:109: a 'step' factor (2x) needs 'min' of at least 1, not 0: use an integer step"}},
    {"step > span",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: net.ipv4.tcp_fin_timeout, "
	  "min: 5, max: 60, step: 56}]}\n",
     {"p.yaml:10:109: 'step' (56) must not be greater than 'max' - 'min' (55)"}},
    {"cgroup range",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{cgroup_file: cpu.weight, min: 0, "
	  "max: 20000, step: 100}]}\n",
     {"p.yaml:10:82: 'min' (0) is out of range: cgroup cpu.weight value '0' must be an integer "
      "between 1 and 10000",
      "p.yaml:10:90: 'max' (20000) is out of range: cgroup cpu.weight value '20000' must be an "
      "integer between 1 and 10000"}},
    {"rlimit negative",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{rlimit: nofile, min: -1, max: 4096, "
	  "step: 64}]}\n",
     {"p.yaml:10:73: 'min' of an rlimit must be at least 0, not -1"}},
    {"sysctl range",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: vm.swappiness, min: -1, max: "
	  "200, step: 10}]}\n",
     {"p.yaml:10:80: 'min' (-1) of sysctl 'vm.swappiness' is not allowed: outside "
      "protected.sysctl_ranges 0..100",
      "p.yaml:10:89: 'max' (200) of sysctl 'vm.swappiness' is not allowed: outside "
      "protected.sysctl_ranges 0..100"}},
    {"sysctl range slashes",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: vm/swappiness, min: 10, max: "
	  "101, step: 10}]}\n",
     {"p.yaml:10:89: 'max' (101) of sysctl 'vm/swappiness' is not allowed: outside "
      "protected.sysctl_ranges 0..100"}},
    {"sysctl range field",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: vm.swappiness, field: 1, "
	  "min: 10, max: 100, step: 10}]}\n",
     {"p.yaml:10:82: sysctl 'vm.swappiness' is not allowed: protected.sysctl_ranges limits it to "
      "one integer, and 'field' picks one of several"}},
    {"sysctl deny",
     BASE "    - {name: j, target: svc, class: auto, knobs: [{sysctl: kernel.sched_rt_runtime_us, "
	  "min: 1000, max: 950000, step: 2x}]}\n",
     {"p.yaml:10:60: sysctl 'kernel.sched_rt_runtime_us' is not allowed: denied by "
      "protected.sysctl_deny 'kernel.*'"}},
    {"unknown target and class",
     BASE "    - {name: j, target: api, class: automatic, knobs: [{rlimit: nofile, min: 1, max: 2, "
	  "step: 1}]}\n",
     {"p.yaml:10:25: unknown target 'api'; the policy defines web, svc",
      "p.yaml:10:37: unknown action class 'automatic'; the policy defines auto"}},
    {"no targets, no classes",
     "mode: enforce\n"
     "tuning:\n"
     "  jobs:\n"
     "    - {name: j, target: web, class: auto, knobs: [{rlimit: nofile, min: 1, max: 2, step: "
     "1}]}\n",
     {"p.yaml:4:25: unknown target 'web'; the policy defines no targets",
      "p.yaml:4:37: unknown action class 'auto'; the policy defines no classes"}},
    {"knobs empty",
     BASE "    - {name: j, target: web, class: auto, knobs: []}\n",
     {"p.yaml:10:50: 'knobs' must not be empty"}},
    {"knobs null",
     BASE "    - name: j\n"
	  "      target: web\n"
	  "      class: auto\n"
	  "      knobs:\n",
     {"p.yaml:13:13: 'knobs' must not be empty"}},
    {"knobs missing",
     BASE "    - {name: j, target: web, class: auto}\n",
     {"p.yaml:10:7: missing required key 'knobs'"}},
    {"nine knobs",
     BASE "    - name: j\n"
	  "      target: web\n"
	  "      class: auto\n"
	  "      knobs: [{sysctl: net.ipv4.tcp_fin_timeout, min: 5, max: 60, step: 5}, {sysctl: "
	  "net.ipv4.tcp_fin_timeout, min: 5, max: 60, step: 5}, {sysctl: net.ipv4.tcp_fin_timeout, "
	  "min: 5, max: 60, step: 5}, {sysctl: net.ipv4.tcp_fin_timeout, min: 5, max: 60, step: "
	  "5}, {sysctl: net.ipv4.tcp_fin_timeout, min: 5, max: 60, step: 5}, {sysctl: "
	  "net.ipv4.tcp_fin_timeout, min: 5, max: 60, step: 5}, {sysctl: net.ipv4.tcp_fin_timeout, "
	  "min: 5, max: 60, step: 5}, {sysctl: net.ipv4.tcp_fin_timeout, min: 5, max: 60, step: "
	  "5}, {sysctl: net.ipv4.tcp_fin_timeout, min: 5, max: 60, step: 5}]\n",
     {"p.yaml:13:14: 'knobs' has too many items (9), at most 8"}},
    {"names",
     BASE "    - {name: Big Job, target: web, class: auto, strategy: anneal, max_trials: 0, knobs: "
	  "[{sysctl: net.ipv4.tcp_fin_timeout, min: 5, max: 60, step: 5}]}\n"
	  "    - {name: j, target: web, class: auto, max_trials: 257, knobs: [{sysctl: "
	  "net.ipv4.tcp_fin_timeout, min: 5, max: 60, step: 5}]}\n"
	  "    - {name: j, target: svc, class: auto, knobs: [{sysctl: net.ipv4.tcp_keepalive_time, "
	  "min: 5, max: 60, step: 5}]}\n",
     {"p.yaml:10:59: 'strategy' must be one of hill, es, not 'anneal'",
      "p.yaml:10:79: 'max_trials' must be between 1 and 256, not '0'",
      "p.yaml:10:14: 'name' must match [a-z0-9_-]+, not 'Big Job'",
      "p.yaml:11:55: 'max_trials' must be between 1 and 256, not '257'",
      "p.yaml:12:14: duplicate tuning job name 'j', first at line 11 column 14",
      "p.yaml:11:77: duplicate knob sysctl 'net.ipv4.tcp_fin_timeout', first at line 10 column "
      "99"}},
    {"duplicate knobs",
     BASE "    - {name: a, target: web, class: auto, knobs: [{sysctl: vm.dirty_ratio, min: 5, max: "
	  "50, step: 5}, {sysctl: vm/dirty_ratio, min: 5, max: 40, step: 5}]}\n"
	  "    - {name: b, target: svc, class: auto, knobs: [{sysctl: vm.dirty_ratio, min: 5, max: "
	  "50, step: 5}, {sysctl: net.core.somaxconn, min: 128, max: 256, step: 2x}, {rlimit: "
	  "nofile, min: 1, max: 2, step: 1}]}\n"
	  "    - {name: c, target: web, class: auto, knobs: [{sysctl: net.core.somaxconn, min: "
	  "128, max: 256, step: 2x}, {rlimit: nofile, min: 1, max: 2, step: 1}, {cgroup_file: "
	  "cpu.weight, cgroup: /b, min: 1, max: 2, step: 1}, {sysctl: net.core.somaxconn, netns: "
	  "host, min: 128, max: 256, step: 2x}]}\n"
	  "    - {name: d, target: svc, class: auto, knobs: [{cgroup_file: cpu.weight, cgroup: "
	  "/sys/fs/cgroup/b, min: 1, max: 2, step: 1}, {cgroup_file: cpu.weight, min: 1, max: 2, "
	  "step: 1}, {sysctl: net.core.somaxconn, netns: host, min: 128, max: 256, step: 2x}]}\n",
     {"p.yaml:10:112: duplicate knob sysctl 'vm/dirty_ratio', first at line 10 column 60",
      "p.yaml:11:60: duplicate knob sysctl 'vm.dirty_ratio', first at line 10 column 60",
      "p.yaml:13:65: duplicate knob cgroup_file 'cpu.weight', first at line 12 column 168",
      "p.yaml:13:190: duplicate knob sysctl 'net.core.somaxconn', first at line 12 column 227"}},
    {"restart",
     BASE "    - {name: j, target: web, class: auto, knobs: [{sysctl: net.core.somaxconn, min: "
	  "128, max: 256, step: 2x, restart: true}, {file: /srv/web/workers, min: 1, max: 2, step: "
	  "1}, {file: /srv/web/threads, min: 1, max: 2, step: 1, restart: false}]}\n"
	  "    - {name: k, target: svc, class: auto, knobs: [{file: /srv/svc/workers, min: 1, max: "
	  "2, step: 1}]}\n",
     {"p.yaml:10:119: knob sysctl 'net.core.somaxconn' needs a restart, and target 'web' has no "
      "unit, cgroup or restart command to restart it with",
      "p.yaml:10:133: knob file '/srv/web/workers' needs a restart, and target 'web' has no unit, "
      "cgroup or restart command to restart it with"}},
};

static void test_errors(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(err_cases); i++) {
		const struct err_case *c = &err_cases[i];
		struct hs_errors e = {0};
		struct safe_policy *p = NULL;
		size_t n = 0;

		if (parse_policy(c->text, &p, &e) != -EINVAL || p)
			fail_msg("%s: the policy loaded", c->what);
		for (; n < ARRAY_SIZE(c->errs) && c->errs[n]; n++) {
			if (n >= e.n)
				fail_msg("%s: missing error %zu: %s", c->what, n, c->errs[n]);
			if (!streq(e.msgs[n], c->errs[n]))
				fail_msg("%s: error %zu is\n  %s\nnot\n  %s", c->what, n, e.msgs[n],
					 c->errs[n]);
		}
		if (n != e.n)
			fail_msg("%s: unexpected error: %s", c->what, e.msgs[n]);
		hs_errors_clear(&e);
	}
}

/* Several mistakes in one job: every one is reported, those against the rest of the policy
 * last. */
static void test_errors_all_reported(void **state)
{
	struct hs_errors e = {0};
	struct safe_policy *p = NULL;

	assert_int_equal(
	    parse_policy("mode: enforce\n"
			 "tuning:\n"
			 "  jobs:\n"
			 "    - name: x\n"
			 "      target: web\n"
			 "      class: auto\n"
			 "      knobs:\n"
			 "        - {sysctl: vm.swappiness, file: /a, min: 9, max: 1, step: 1x}\n",
			 &p, &e),
	    -EINVAL);
	expect_errors(
	    &e,
	    "p.yaml:8:35: knob has both 'sysctl' and 'file': give exactly one of sysctl, "
	    "cgroup_file, rlimit, file",
	    "p.yaml:8:50: 'min' (9) must be less than 'max' (1)",
	    "p.yaml:8:67: 'step' factor must be greater than 1x and at most 16x, not '1x'",
	    "p.yaml:5:15: unknown target 'web'; the policy defines no targets",
	    "p.yaml:6:14: unknown action class 'auto'; the policy defines no classes", NULL);
}

/* ---- requests ---- */

static void test_request_sysctl(void **state)
{
	struct act_request req;
	struct tune_knob k;
	char why[ACT_WHY_MAX], cur[256];
	long long a, b, c;

	knob_of("{sysctl: net.core.somaxconn, min: 128, max: 65535, step: 2x, restart: true}", &k);
	assert_int_equal(tune_knob_request(&k, 4096, 4242, NULL, &req, why, sizeof(why)), 0);
	assert_int_equal(req.kind, ACT_KIND_SYSCTL);
	assert_string_equal(req.sysctl.name, "net.core.somaxconn");
	assert_string_equal(req.sysctl.value, "4096");
	assert_int_equal(req.sysctl.netns_pid, 4242); /* netns: target */
	assert_string_equal(req.sysctl.netns_path, "");
	assert_int_equal(req.pid, 0);
	/* Search points are rounded half away from zero; outside the range is refused. */
	assert_int_equal(tune_knob_request(&k, 4095.5, 4242, NULL, &req, why, sizeof(why)), 0);
	assert_string_equal(req.sysctl.value, "4096");
	assert_int_equal(tune_knob_request(&k, 65536, 4242, NULL, &req, why, sizeof(why)), -ERANGE);
	assert_string_equal(why, "value 65536 is outside 128..65535");
	assert_int_equal(tune_knob_request(&k, 127.4, 4242, NULL, &req, why, sizeof(why)), -ERANGE);
	assert_int_equal(tune_knob_request(&k, NAN, 4242, NULL, &req, why, sizeof(why)), -ERANGE);
	assert_int_equal(tune_knob_request(&k, 4096, 0, NULL, &req, why, sizeof(why)), -ESRCH);
	assert_string_equal(why, "sysctl net.core.somaxconn is set in the target's network "
				 "namespace, and no process of the target was given");

	knob_of("{sysctl: net/core/somaxconn, netns: host, min: 128, max: 65535, step: 2x}", &k);
	assert_int_equal(tune_knob_request(&k, 1024, 4242, NULL, &req, why, sizeof(why)), 0);
	assert_string_equal(req.sysctl.name, "net.core.somaxconn");
	assert_int_equal(req.sysctl.netns_pid, 0); /* netns: host */

	knob_of("{sysctl: vm.swappiness, min: 0, max: 100, step: 10}", &k);
	assert_int_equal(tune_knob_request(&k, 30, 4242, NULL, &req, why, sizeof(why)), 0);
	assert_string_equal(req.sysctl.value, "30");
	assert_int_equal(req.sysctl.netns_pid, 0); /* not net.*: host-wide */

	/* One number of several: the others as the host holds them now (read, not written). */
	if (!read_line("/proc/sys/net/ipv4/tcp_rmem", cur, sizeof(cur)) ||
	    sscanf(cur, "%lld %lld %lld", &a, &b, &c) != 3)
		SKIP("no /proc/sys/net/ipv4/tcp_rmem");
	knob_of("{sysctl: net.ipv4.tcp_rmem, netns: host, field: 3, min: 131072, max: 67108864, "
		"step: 2x}",
		&k);
	assert_int_equal(tune_knob_request(&k, 8388608, 0, NULL, &req, why, sizeof(why)), 0);
	snprintf(cur, sizeof(cur), "%lld %lld 8388608", a, b);
	assert_string_equal(req.sysctl.value, cur);
	knob_of("{sysctl: net.ipv4.tcp_rmem, netns: host, field: 4, min: 1, max: 2, step: 1}", &k);
	assert_int_equal(tune_knob_request(&k, 2, 0, NULL, &req, why, sizeof(why)), -EPROTO);
	assert_string_equal(why, "sysctl net.ipv4.tcp_rmem holds 3 numbers, not 4");
}

static void test_request_cgroup_rlimit_file(void **state)
{
	struct act_request req;
	struct tune_knob k;
	char why[ACT_WHY_MAX];

	/* The target's cgroup, as the caller resolves it. */
	knob_of("{cgroup_file: cpu.weight, min: 1, max: 10000, step: 2x}", &k);
	assert_int_equal(tune_knob_request(&k, 400, 4242, "/sys/fs/cgroup/system.slice/web.service",
					   &req, why, sizeof(why)),
			 0);
	assert_int_equal(req.kind, ACT_KIND_CGROUP);
	assert_int_equal(req.pid, 0);
	assert_string_equal(req.cgroup.path, "/sys/fs/cgroup/system.slice/web.service");
	assert_string_equal(req.cgroup.file, "cpu.weight");
	assert_string_equal(req.cgroup.value, "400");
	assert_int_equal(
	    tune_knob_request(&k, 400, 4242, "system.slice/web.service", &req, why, sizeof(why)),
	    0);
	assert_string_equal(req.cgroup.path, "system.slice/web.service");
	assert_int_equal(tune_knob_request(&k, 400, 4242, NULL, &req, why, sizeof(why)), -ENOENT);
	assert_string_equal(
	    why, "cgroup cpu.weight is set in the target's cgroup, and the target has none");
	assert_int_equal(
	    tune_knob_request(&k, 400, 4242, "/sys/fs/cgroup/../etc", &req, why, sizeof(why)),
	    -EINVAL);
	assert_string_equal(why, "cgroup path '/sys/fs/cgroup/../etc' may not hold '.' or '..'");

	/* Its own cgroup, whatever the target's is. */
	knob_of(
	    "{cgroup_file: cpu.max, cgroup: /batch.slice, min: 10000, max: 400000, step: 10000}",
	    &k);
	assert_int_equal(
	    tune_knob_request(&k, 50000, 0, "/sys/fs/cgroup/web", &req, why, sizeof(why)), 0);
	assert_string_equal(req.cgroup.path, "/sys/fs/cgroup/batch.slice");
	assert_string_equal(req.cgroup.file, "cpu.max");
	assert_string_equal(req.cgroup.value, "50000");

	/* The soft limit of one process; the hard limit stays. */
	knob_of("{rlimit: nofile, min: 1024, max: 65536, step: 2x}", &k);
	assert_int_equal(tune_knob_request(&k, 2048, 4242, NULL, &req, why, sizeof(why)), 0);
	assert_int_equal(req.kind, ACT_KIND_RLIMIT);
	assert_int_equal(req.pid, 4242);
	assert_int_equal(req.rlimit.resource, RLIMIT_NOFILE);
	assert_int_equal(req.rlimit.soft, 2048);
	assert_false(req.rlimit.set_hard);
	assert_int_equal(tune_knob_request(&k, 2048, 0, NULL, &req, why, sizeof(why)), -ESRCH);
	assert_string_equal(why,
			    "rlimit nofile is set on a process of the target, and none was given");

	/* An application file: the file actuator writes its one value. */
	knob_of("{file: /etc/web/workers, min: 1, max: 64, step: 1}", &k);
	assert_int_equal(tune_knob_request(&k, 8, 4242, NULL, &req, why, sizeof(why)), 0);
	assert_int_equal(req.kind, ACT_KIND_FILE);
	assert_string_equal(req.file.path, "/etc/web/workers");
	assert_string_equal(req.file.value, "8");
	assert_int_equal(req.pid, 0);
}

/* ---- reads, through act_read(), of the real host ---- */

static void test_read(void **state)
{
	static const struct {
		const char *file, *dir;
	} cgroups[] = {
	    {"cpu.shares", "/sys/fs/cgroup/cpu"},
	    {"pids.max", "/sys/fs/cgroup/pids"},
	    {"memory.max", "/sys/fs/cgroup/unified"},
	    {"pids.max", "/sys/fs/cgroup/unified"},
	};
	char why[ACT_WHY_MAX], buf[256], path[PATH_MAX], tmp[] = "/tmp/hs-test-knobs.XXXXXX";
	struct tune_knob k;
	struct rlimit rl;
	double v;
	bool cg = false;
	int fd;

	/* vm.swappiness, as /proc/sys says. */
	assert_true(read_line("/proc/sys/vm/swappiness", buf, sizeof(buf)));
	knob_of("{sysctl: vm.swappiness, min: 0, max: 100, step: 10}", &k);
	assert_int_equal(tune_knob_read(&k, 0, NULL, &v, why, sizeof(why)), 0);
	assert_true(v == atof(buf));
	knob_of("{sysctl: vm/swappiness, min: 0, max: 100, step: 10}", &k);
	assert_int_equal(tune_knob_read(&k, 0, NULL, &v, why, sizeof(why)), 0);
	assert_true(v == atof(buf));

	/* One number of several; the whole of several is not a number. */
	knob_of("{sysctl: net.ipv4.tcp_rmem, netns: host, field: 3, min: 4096, max: 67108864, "
		"step: 2x}",
		&k);
	assert_int_equal(tune_knob_read(&k, 0, NULL, &v, why, sizeof(why)), 0);
	assert_true(v == (double)sysctl_last("/proc/sys/net/ipv4/tcp_rmem"));
	knob_of("{sysctl: net.ipv4.tcp_rmem, netns: host, min: 4096, max: 67108864, step: 2x}", &k);
	assert_int_equal(tune_knob_read(&k, 0, NULL, &v, why, sizeof(why)), -EPROTO);
	assert_string_equal(why,
			    "sysctl net.ipv4.tcp_rmem holds 3 numbers: the knob needs a field");
	knob_of("{sysctl: vm.no_such_sysctl, min: 0, max: 100, step: 10}", &k);
	assert_int_equal(tune_knob_read(&k, 0, NULL, &v, why, sizeof(why)), -ENOENT);
	assert_string_equal(why, "cannot read sysctl vm.no_such_sysctl: No such file or directory");

	/* The soft limit of this process. */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	knob_of("{rlimit: nofile, min: 64, max: 65536, step: 2x}", &k);
	assert_int_equal(tune_knob_read(&k, getpid(), NULL, &v, why, sizeof(why)), 0);
	assert_true(v == (rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur));
	assert_int_equal(tune_knob_read(&k, 0, NULL, &v, why, sizeof(why)), -ESRCH);

	/* An application's file: its first integer. */
	fd = mkstemp(tmp);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "  8\n# workers\n", 14), 14);
	close(fd);
	snprintf(buf, sizeof(buf), "{file: %s, min: 1, max: 64, step: 1}", tmp);
	knob_of(buf, &k);
	assert_int_equal(tune_knob_read(&k, 0, NULL, &v, why, sizeof(why)), 0);
	assert_true(v == 8);
	fd = open(tmp, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "many\n", 5), 5);
	close(fd);
	assert_int_equal(tune_knob_read(&k, 0, NULL, &v, why, sizeof(why)), -EPROTO);
	snprintf(buf, sizeof(buf), "%s does not start with an integer", tmp);
	assert_string_equal(why, buf);
	unlink(tmp);
	assert_int_equal(tune_knob_read(&k, 0, NULL, &v, why, sizeof(why)), -ENOENT);

	/* A cgroup file that this host has, read both ways. */
	for (size_t i = 0; i < ARRAY_SIZE(cgroups) && !cg; i++) {
		snprintf(path, sizeof(path), "%s/%s", cgroups[i].dir, cgroups[i].file);
		if (!read_line(path, buf, sizeof(buf)))
			continue;
		cg = true;
		snprintf(path, sizeof(path), "{cgroup_file: %s, min: 2, max: 4096, step: 2x}",
			 cgroups[i].file);
		knob_of(path, &k);
		assert_int_equal(tune_knob_read(&k, 0, cgroups[i].dir, &v, why, sizeof(why)), 0);
		if (streq(buf, "max"))
			assert_true(isinf(v));
		else
			assert_true(v == atof(buf));
	}
	if (!cg)
		SKIP("no cgroup file of the list to read on this host");
}

/* ---- bounds at run time ---- */

static void test_effective_max(void **state)
{
	char why[ACT_WHY_MAX], want[256];
	struct tune_knob k;
	struct rlimit rl;
	long long somaxconn = sysctl_last("/proc/sys/net/core/somaxconn");
	long long rmem_max = sysctl_last("/proc/sys/net/core/rmem_max");
	long long tcp_rmem = sysctl_last("/proc/sys/net/ipv4/tcp_rmem");
	int64_t max;

	if (somaxconn < 2 || rmem_max < 2 || tcp_rmem < 2)
		SKIP("cannot read net.core.somaxconn, net.core.rmem_max or net.ipv4.tcp_rmem");

	/* Clamped to what net.core.somaxconn holds now. */
	knob_of("{sysctl: net.ipv4.tcp_max_syn_backlog, netns: host, min: 1, max: 1073741824, "
		"step: 2x, bounded_by: net.core.somaxconn}",
		&k);
	assert_int_equal(tune_knob_effective_max(&k, 0, &max, why, sizeof(why)), 0);
	assert_int_equal(max, somaxconn);
	/* A max below the bound stays. */
	knob_of("{sysctl: net.ipv4.tcp_max_syn_backlog, netns: host, min: 1, max: 2, step: 1, "
		"bounded_by: net.core.somaxconn}",
		&k);
	assert_int_equal(tune_knob_effective_max(&k, 0, &max, why, sizeof(why)), 0);
	assert_int_equal(max, 2);
	/* Nothing left above min. */
	snprintf(
	    want, sizeof(want),
	    "{sysctl: net.ipv4.tcp_max_syn_backlog, netns: host, min: %lld, max: %lld, step: 1, "
	    "bounded_by: net.core.somaxconn}",
	    somaxconn, somaxconn + 10);
	knob_of(want, &k);
	assert_int_equal(tune_knob_effective_max(&k, 0, &max, why, sizeof(why)), -ERANGE);
	snprintf(
	    want, sizeof(want),
	    "net.core.somaxconn is %lld, which leaves nothing above the knob's min %lld to try",
	    somaxconn, somaxconn);
	assert_string_equal(why, want);
	/* The bound is read in the target's namespace when the knob is: it needs a process. */
	knob_of("{sysctl: net.ipv4.tcp_max_syn_backlog, min: 1, max: 1073741824, step: 2x, "
		"bounded_by: net.core.somaxconn}",
		&k);
	assert_int_equal(tune_knob_effective_max(&k, 0, &max, why, sizeof(why)), -ESRCH);

	/* The last number of several: tcp_rmem's maximum caps net.core.rmem_default. */
	knob_of("{sysctl: net.core.rmem_default, netns: host, min: 1, max: 1073741824, step: 2x, "
		"bounded_by: net.ipv4.tcp_rmem}",
		&k);
	assert_int_equal(tune_knob_effective_max(&k, 0, &max, why, sizeof(why)), 0);
	assert_int_equal(max, tcp_rmem);
	/* tcp_rmem's maximum (field 3) capped by net.core.rmem_max. */
	knob_of("{sysctl: net.ipv4.tcp_rmem, netns: host, field: 3, min: 1, max: 1073741824, "
		"step: 2x, bounded_by: net.core.rmem_max}",
		&k);
	assert_int_equal(tune_knob_effective_max(&k, 0, &max, why, sizeof(why)), 0);
	assert_int_equal(max, rmem_max);

	/* A soft limit is capped by the process's hard limit. */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	knob_of("{rlimit: nofile, min: 1, max: 1073741824, step: 2x}", &k);
	assert_int_equal(tune_knob_effective_max(&k, getpid(), &max, why, sizeof(why)), 0);
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 1073741824)
		assert_int_equal(max, 1073741824);
	else
		assert_int_equal(max, (int64_t)rl.rlim_max);
	assert_int_equal(tune_knob_effective_max(&k, 0, &max, why, sizeof(why)), 0);
	assert_int_equal(max, 1073741824); /* no process: the policy's max */
}

/* ---- the search's dimension ---- */

static void test_dim(void **state)
{
	struct tune_search s;
	struct tune_knob k;
	struct tune_dim d;
	double start, x;

	knob_of("{sysctl: net.core.somaxconn, min: 128, max: 65535, step: 2x}", &k);
	assert_int_equal(tune_knob_dim(&k, k.max, &d), 0);
	assert_true(d.min == 128 && d.max == 65535);
	assert_true(d.log_scale && d.integer);
	assert_true(d.step == 1.0);
	assert_true(d.min_step == 0.125);
	/* The effective max narrows it; nothing above min is an error. */
	assert_int_equal(tune_knob_dim(&k, 4096, &d), 0);
	assert_true(d.max == 4096);
	assert_int_equal(tune_knob_dim(&k, 128, &d), -ERANGE);
	assert_int_equal(tune_knob_dim(&k, 100000, &d), 0);
	assert_true(d.max == 65535);

	knob_of("{sysctl: net.core.somaxconn, min: 128, max: 65535, step: 1.5x}", &k);
	assert_int_equal(tune_knob_dim(&k, k.max, &d), 0);
	assert_true(fabs(d.step - log2(1.5)) < 1e-12);
	assert_true(fabs(d.min_step - log2(1.5) / 8) < 1e-12);

	knob_of("{cgroup_file: cpu.max, min: 10000, max: 400000, step: 50000}", &k);
	assert_int_equal(tune_knob_dim(&k, k.max, &d), 0);
	assert_false(d.log_scale);
	assert_true(d.integer);
	assert_true(d.step == 50000 && d.min_step == 6250);
	knob_of("{file: /srv/w, min: 1, max: 64, step: 4}", &k);
	assert_int_equal(tune_knob_dim(&k, k.max, &d), 0);
	assert_true(d.step == 4 && d.min_step == 1); /* never below one unit */

	/* The search takes it, and its candidates become valid requests. */
	knob_of("{sysctl: net.core.somaxconn, min: 128, max: 65535, step: 2x}", &k);
	assert_int_equal(tune_knob_dim(&k, k.max, &d), 0);
	start = 4096;
	assert_int_equal(tune_search_init(&s, TUNE_HILL, &d, 1, &start, 1, 10), 0);
	assert_int_equal(tune_search_next(&s, &x, NULL, NULL), 0);
	assert_true(x == 8192); /* hill: + first, one step of 2x */
	assert_int_equal(tune_knob_round(&k, x, k.max), 8192);

	/* Rounding and clamping of search points. */
	assert_int_equal(tune_knob_round(&k, 1000.5, k.max), 1001);
	assert_int_equal(tune_knob_round(&k, 1.0, k.max), 128);
	assert_int_equal(tune_knob_round(&k, 1e9, k.max), 65535);
	assert_int_equal(tune_knob_round(&k, 1e9, 4096), 4096);
	assert_int_equal(tune_knob_round(&k, NAN, 4096), 128);
	assert_int_equal(tune_knob_round(&k, INFINITY, 4096), 4096);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tables),
	    cmocka_unit_test(test_policy_without_tuning),
	    cmocka_unit_test(test_good_fixture),
	    cmocka_unit_test(test_defaults_and_forms),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_errors_all_reported),
	    cmocka_unit_test(test_request_sysctl),
	    cmocka_unit_test(test_request_cgroup_rlimit_file),
	    cmocka_unit_test(test_read),
	    cmocka_unit_test(test_effective_max),
	    cmocka_unit_test(test_dim),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
