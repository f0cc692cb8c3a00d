/* policy.c - the policy schema and loader of policy.h.
 *
 * The file format is these tables: each section of the YAML file is one struct sch_struct,
 * each key one row with its type, default, range and doc line (docs/config.md says the same
 * in prose; keep both in step). Checks that involve more than one key (unique names, min <=
 * max, at least one selector) are the check hooks at the end of each table.
 *
 * Invariants of a loaded policy: names of targets and action classes are unique and match
 * [a-z0-9_-]+; every target has a selector; protected paths are absolute; sysctl ranges have
 * min <= max; fitness weights sum to more than zero. Tuning jobs have unique names, name a
 * target and a class of the policy, and 1..8 knobs; each knob has exactly one kind, a name
 * the actuator takes (sysctl syntax, cgroup file of its table, rlimit), min < max within what
 * the actuator and protected.sysctl_* allow, a valid step, is not on a protected path, and is
 * not tuned twice in one place; a knob that needs a restart has a target that can restart.
 * The section's checks against the rest of the file run in policy_check, once all is read.
 */
#include <ctype.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>

#include "safety/policy.h"
#include "actuate/actuate.h"
#include "lib/yamltree.h"

const char *const safe_mode_names[] = {"enforce", "dry_run", "observe", NULL};
const char *const safe_approval_names[] = {"none", "notify", "require", NULL};

#define MS_MIN	60000LL
#define MS_HOUR 3600000LL
#define MS_DAY	86400000LL

/* ---- checks shared by the hooks ---- */

static bool name_valid(const char *s)
{
	return *s && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == strlen(s);
}

static int check_name(struct sch_ctx *ctx, const struct yt_node *map, const char *field,
		      const char *value)
{
	if (!value || !sch_ok(ctx, field) || name_valid(value))
		return 0;
	return sch_error(ctx, yt_map_get(map, field), "'%s' must match [a-z0-9_-]+, not '%s'",
			 field, value);
}

/* Reports a name used twice among the mappings of list (by their key "name"). */
static void check_unique(struct sch_ctx *ctx, const struct yt_node *list, const char *what)
{
	if (!list || list->kind != YT_SEQUENCE)
		return;
	for (size_t i = 0; i < list->n; i++) {
		const struct yt_node *a = yt_map_get(list->items[i], "name");

		if (!a || a->kind != YT_SCALAR || yt_is_null(a))
			continue;
		for (size_t j = 0; j < i; j++) {
			const struct yt_node *b = yt_map_get(list->items[j], "name");

			if (b && b->kind == YT_SCALAR && streq(a->str, b->str)) {
				sch_error(ctx, a,
					  "duplicate %s name '%s', first at line %u column %u",
					  what, a->str, b->line, b->col);
				break;
			}
		}
	}
}

static void check_abs_paths(struct sch_ctx *ctx, const struct yt_node *list, const char *field)
{
	if (!list || list->kind != YT_SEQUENCE)
		return;
	for (size_t i = 0; i < list->n; i++) {
		const struct yt_node *it = list->items[i];

		if (it->kind == YT_SCALAR && it->len && it->str[0] != '/')
			sch_error(ctx, it, "each item of '%s' must be an absolute path, not '%s'",
				  field, it->str);
	}
}

static bool sysctl_name_valid(const char *s)
{
	return *s && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_.-/*") == strlen(s);
}

/* "vm/swappiness" -> "vm.swappiness" */
static void sysctl_norm(const char *in, char *out, size_t size)
{
	hs_strlcpy(out, in, size);
	for (char *c = out; *c; c++)
		if (*c == '/')
			*c = '.';
}

/* Is path equal to prefix or below it (on a component boundary)? */
static bool path_under(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);

	while (n > 1 && prefix[n - 1] == '/')
		n--;
	if (strncmp(path, prefix, n))
		return false;
	return path[n] == '\0' || path[n] == '/' || (n == 1 && prefix[0] == '/');
}

/* ---- protected ---- */

static int sysctl_range_check(struct sch_ctx *ctx, void *obj, const struct yt_node *map)
{
	struct safe_sysctl_range *r = obj;

	if (r->name && sch_ok(ctx, "name") && !sysctl_name_valid(r->name))
		sch_error(ctx, yt_map_get(map, "name"), "'name' is not a sysctl name: '%s'",
			  r->name);
	if (sch_ok(ctx, "min") && sch_ok(ctx, "max") && r->min > r->max)
		sch_error(ctx, yt_map_get(map, "min"),
			  "'min' (%lld) must not be greater than 'max' (%lld)", (long long)r->min,
			  (long long)r->max);
	return 0;
}

static const struct sch_field sysctl_range_fields[] = {
    {.name = "name",
     .type = SCH_STRING,
     .offset = offsetof(struct safe_sysctl_range, name),
     .required = true,
     .min = 1,
     .max = 256,
     .doc = "sysctl name, dotted (vm.swappiness) or with slashes (vm/swappiness)"},
    {.name = "min",
     .type = SCH_INT,
     .offset = offsetof(struct safe_sysctl_range, min),
     .required = true,
     .doc = "smallest value the agent may write"},
    {.name = "max",
     .type = SCH_INT,
     .offset = offsetof(struct safe_sysctl_range, max),
     .required = true,
     .doc = "largest value the agent may write"},
};

static const struct sch_struct sysctl_range_schema = {
    .name = "sysctl_range",
    .size = sizeof(struct safe_sysctl_range),
    .fields = sysctl_range_fields,
    .nfields = ARRAY_SIZE(sysctl_range_fields),
    .check = sysctl_range_check,
};

static int protected_check(struct sch_ctx *ctx, void *obj, const struct yt_node *map)
{
	const struct yt_node *deny = yt_map_get(map, "sysctl_deny");

	check_abs_paths(ctx, yt_map_get(map, "paths"), "paths");
	for (size_t i = 0; deny && deny->kind == YT_SEQUENCE && i < deny->n; i++) {
		const struct yt_node *it = deny->items[i];

		if (it->kind == YT_SCALAR && it->len && !sysctl_name_valid(it->str))
			sch_error(ctx, it,
				  "each item of 'sysctl_deny' must be a sysctl name or "
				  "pattern such as kernel.*, not '%s'",
				  it->str);
	}
	return 0;
}

#define PROT(f) offsetof(struct safe_protected, f)
static const struct sch_field protected_fields[] = {
    {.name = "paths",
     .type = SCH_STRING_LIST,
     .offset = PROT(paths),
     .count_offset = PROT(n_paths),
     .max = PATH_MAX - 1,
     .max_items = SAFE_MAX_PROTECTED,
     .doc = "absolute paths of files and directory trees the agent never changes"},
    {.name = "units",
     .type = SCH_STRING_LIST,
     .offset = PROT(units),
     .count_offset = PROT(n_units),
     .max = 256,
     .max_items = SAFE_MAX_PROTECTED,
     .doc = "systemd units never restarted, signalled or reconfigured"},
    {.name = "processes",
     .type = SCH_STRING_LIST,
     .offset = PROT(processes),
     .count_offset = PROT(n_processes),
     .max = SAFE_COMM_MAX,
     .max_items = SAFE_MAX_PROTECTED,
     .doc = "process names (comm, at most 15 bytes) never signalled, reniced or restarted"},
    {.name = "sysctl_deny",
     .type = SCH_STRING_LIST,
     .offset = PROT(sysctl_deny),
     .count_offset = PROT(n_sysctl_deny),
     .max = 256,
     .max_items = SAFE_MAX_PROTECTED,
     .doc = "sysctls never written; a trailing .* covers a subtree (kernel.*)"},
    {.name = "sysctl_ranges",
     .type = SCH_STRUCT_LIST,
     .offset = PROT(sysctl_ranges),
     .count_offset = PROT(n_sysctl_ranges),
     .sub = &sysctl_range_schema,
     .max_items = SAFE_MAX_PROTECTED,
     .doc = "integer sysctls the agent may write only within [min, max]"},
};
#undef PROT

static const struct sch_struct protected_schema = {
    .name = "protected",
    .size = sizeof(struct safe_protected),
    .fields = protected_fields,
    .nfields = ARRAY_SIZE(protected_fields),
    .check = protected_check,
};

/* ---- budgets ---- */

static const struct sch_field blast_fields[] = {
    {.name = "processes",
     .type = SCH_INT,
     .offset = offsetof(struct safe_blast_radius, processes),
     .def = "16",
     .min = 1,
     .max = 100000,
     .doc = "processes one change may touch"},
    {.name = "targets",
     .type = SCH_INT,
     .offset = offsetof(struct safe_blast_radius, targets),
     .def = "1",
     .min = 1,
     .max = SAFE_MAX_TARGETS,
     .doc = "targets one change may touch"},
};

static const struct sch_struct blast_schema = {
    .name = "blast_radius",
    .size = sizeof(struct safe_blast_radius),
    .fields = blast_fields,
    .nfields = ARRAY_SIZE(blast_fields),
};

static const struct sch_field flapping_fields[] = {
    {.name = "changes",
     .type = SCH_INT,
     .offset = offsetof(struct safe_flapping, changes),
     .def = "3",
     .min = 1,
     .max = 1000,
     .doc = "this many changes to one target ..."},
    {.name = "within",
     .type = SCH_DURATION,
     .offset = offsetof(struct safe_flapping, within_ms),
     .def = "2m",
     .min = 1000,
     .max = MS_DAY,
     .doc = "... within this long are flapping: the next change to it is denied"},
};

static const struct sch_struct flapping_schema = {
    .name = "flapping",
    .size = sizeof(struct safe_flapping),
    .fields = flapping_fields,
    .nfields = ARRAY_SIZE(flapping_fields),
};

static const struct sch_field budgets_fields[] = {
    {.name = "changes_per_hour",
     .type = SCH_INT,
     .offset = offsetof(struct safe_budgets, changes_per_hour),
     .def = "6",
     .min = 0,
     .max = 3600,
     .doc = "changes applied in any sliding hour, all targets together"},
    {.name = "concurrent_changes",
     .type = SCH_INT,
     .offset = offsetof(struct safe_budgets, concurrent_changes),
     .def = "1",
     .min = 1,
     .max = 64,
     .doc = "changes under canary at the same time"},
    {.name = "blast_radius",
     .type = SCH_STRUCT,
     .offset = offsetof(struct safe_budgets, blast_radius),
     .sub = &blast_schema,
     .doc = "how much one change may touch"},
    {.name = "cooldown",
     .type = SCH_DURATION,
     .offset = offsetof(struct safe_budgets, cooldown_ms),
     .def = "5m",
     .min = 0,
     .max = MS_DAY,
     .doc = "wait after a change by one runbook or tuning job on one target before its "
	    "next; doubled after each failure in a row, at most 1h"},
    {.name = "flapping",
     .type = SCH_STRUCT,
     .offset = offsetof(struct safe_budgets, flapping),
     .sub = &flapping_schema,
     .doc = "changes to one target too close together are refused"},
};

static const struct sch_struct budgets_schema = {
    .name = "budgets",
    .size = sizeof(struct safe_budgets),
    .fields = budgets_fields,
    .nfields = ARRAY_SIZE(budgets_fields),
};

/* ---- action classes and approvals ---- */

static int class_check(struct sch_ctx *ctx, void *obj, const struct yt_node *map)
{
	struct safe_action_class *c = obj;

	check_name(ctx, map, "name", c->name);
	if (!sch_ok(ctx, "approval"))
		return 0;
	if (c->approval != SAFE_APPROVAL_NOTIFY && yt_map_get(map, "delay"))
		sch_error(ctx, yt_map_get(map, "delay"),
			  "'delay' applies only to approval notify, not %s",
			  safe_approval_names[c->approval]);
	if (c->approval != SAFE_APPROVAL_REQUIRE && yt_map_get(map, "ttl"))
		sch_error(ctx, yt_map_get(map, "ttl"),
			  "'ttl' applies only to approval require, not %s",
			  safe_approval_names[c->approval]);
	return 0;
}

#define CLS(f) offsetof(struct safe_action_class, f)
static const struct sch_field class_fields[] = {
    {.name = "name",
     .type = SCH_STRING,
     .offset = CLS(name),
     .required = true,
     .min = 1,
     .max = SAFE_NAME_MAX,
     .doc = "what runbook actions refer to as their class"},
    {.name = "description",
     .type = SCH_STRING,
     .offset = CLS(description),
     .max = 512,
     .doc = "what the class is for, shown with pending approvals"},
    {.name = "approval",
     .type = SCH_ENUM,
     .offset = CLS(approval),
     .required = true,
     .names = safe_approval_names,
     .doc = "none: apply at once; notify: announce and apply after delay unless rejected; "
	    "require: wait for homeostat approve"},
    {.name = "delay",
     .type = SCH_DURATION,
     .offset = CLS(delay_ms),
     .def = "5m",
     .min = 0,
     .max = MS_DAY,
     .doc = "notify only: how long a rejection is awaited"},
    {.name = "ttl",
     .type = SCH_DURATION,
     .offset = CLS(ttl_ms),
     .min = 0,
     .max = 7 * MS_DAY,
     .doc = "require only: a pending approval expires (rejected) after this; default "
	    "approvals.ttl"},
};
#undef CLS

static const struct sch_struct class_schema = {
    .name = "action_class",
    .size = sizeof(struct safe_action_class),
    .fields = class_fields,
    .nfields = ARRAY_SIZE(class_fields),
    .check = class_check,
};

static const struct sch_field approvals_fields[] = {
    {.name = "ttl",
     .type = SCH_DURATION,
     .offset = offsetof(struct safe_approvals, ttl_ms),
     .def = "1h",
     .min = MS_MIN,
     .max = 7 * MS_DAY,
     .doc = "a pending approval is rejected after this long"},
};

static const struct sch_struct approvals_schema = {
    .name = "approvals",
    .size = sizeof(struct safe_approvals),
    .fields = approvals_fields,
    .nfields = ARRAY_SIZE(approvals_fields),
};

/* ---- canary, rollback, fitness ---- */

#define CAN(f) offsetof(struct safe_canary, f)
static const struct sch_field canary_fields[] = {
    {.name = "duration",
     .type = SCH_DURATION,
     .offset = CAN(duration_ms),
     .def = "5m",
     .min = 10000,
     .max = MS_DAY,
     .doc = "how long a change is watched before the verdict"},
    {.name = "min_samples",
     .type = SCH_INT,
     .offset = CAN(min_samples),
     .def = "30",
     .min = 5,
     .max = 1000000,
     .doc = "fewer samples per side is INCONCLUSIVE (rolled back)"},
    {.name = "alpha",
     .type = SCH_NUMBER,
     .offset = CAN(alpha),
     .def = "0.05",
     .fmin = 0.001,
     .fmax = 0.2,
     .doc = "significance level of the statistical tests"},
    {.name = "effect_size",
     .type = SCH_PERCENT,
     .offset = CAN(effect_size),
     .def = "5%",
     .fmin = 0.001,
     .fmax = 1.0,
     .doc = "smallest relative shift that counts as a change"},
    {.name = "switchback_block",
     .type = SCH_DURATION,
     .offset = CAN(switchback_block_ms),
     .def = "30s",
     .min = 1000,
     .max = MS_HOUR,
     .doc = "block length when judging by switching the change on and off"},
};
#undef CAN

static const struct sch_struct canary_schema = {
    .name = "canary",
    .size = sizeof(struct safe_canary),
    .fields = canary_fields,
    .nfields = ARRAY_SIZE(canary_fields),
};

#define RB(f) offsetof(struct safe_rollback_on, f)
static const struct sch_field rollback_fields[] = {
    {.name = "error_rate_increase",
     .type = SCH_PERCENT,
     .offset = RB(error_rate_increase),
     .def = "0.1%",
     .fmin = 0,
     .fmax = 1.0,
     .doc = "roll back when the error fraction rises by this much (absolute)"},
    {.name = "p99_latency_increase",
     .type = SCH_DURATION,
     .offset = RB(p99_latency_increase_ms),
     .def = "50ms",
     .min = 1,
     .max = MS_HOUR,
     .doc = "roll back when p99 latency rises by this much"},
    {.name = "rss_increase",
     .type = SCH_BYTES_OR_PERCENT,
     .offset = RB(rss_increase),
     .def = "20%",
     .min = 1,
     .max = 1LL << 40,
     .fmin = 0.01,
     .fmax = 10.0,
     .doc = "roll back when memory grows by this many bytes or this fraction"},
    {.name = "throughput_decrease",
     .type = SCH_PERCENT,
     .offset = RB(throughput_decrease),
     .def = "10%",
     .fmin = 0,
     .fmax = 1.0,
     .doc = "roll back when throughput falls by this fraction"},
    {.name = "fitness_decrease",
     .type = SCH_PERCENT,
     .offset = RB(fitness_decrease),
     .def = "5%",
     .fmin = 0,
     .fmax = 1.0,
     .doc = "roll back when the fitness score falls by this fraction"},
};
#undef RB

static const struct sch_struct rollback_schema = {
    .name = "rollback_on",
    .size = sizeof(struct safe_rollback_on),
    .fields = rollback_fields,
    .nfields = ARRAY_SIZE(rollback_fields),
};

static int fitness_check(struct sch_ctx *ctx, void *obj, const struct yt_node *map)
{
	struct safe_fitness *f = obj;

	if (sch_ok(ctx, "latency") && sch_ok(ctx, "errors") && sch_ok(ctx, "throughput") &&
	    sch_ok(ctx, "cost") && f->latency + f->errors + f->throughput + f->cost <= 0)
		sch_error(ctx, map, "fitness weights must not all be 0");
	return 0;
}

#define FIT(f) offsetof(struct safe_fitness, f)
static const struct sch_field fitness_fields[] = {
    {.name = "latency",
     .type = SCH_NUMBER,
     .offset = FIT(latency),
     .def = "0.4",
     .fmin = 0,
     .fmax = 1,
     .doc = "weight of p99 latency"},
    {.name = "errors",
     .type = SCH_NUMBER,
     .offset = FIT(errors),
     .def = "0.3",
     .fmin = 0,
     .fmax = 1,
     .doc = "weight of the error rate"},
    {.name = "throughput",
     .type = SCH_NUMBER,
     .offset = FIT(throughput),
     .def = "0.2",
     .fmin = 0,
     .fmax = 1,
     .doc = "weight of throughput"},
    {.name = "cost",
     .type = SCH_NUMBER,
     .offset = FIT(cost),
     .def = "0.1",
     .fmin = 0,
     .fmax = 1,
     .doc = "weight of resource cost (CPU, memory)"},
};
#undef FIT

static const struct sch_struct fitness_schema = {
    .name = "fitness",
    .size = sizeof(struct safe_fitness),
    .fields = fitness_fields,
    .nfields = ARRAY_SIZE(fitness_fields),
    .check = fitness_check,
};

/* ---- observation ---- */

static int sc_latency_check(struct sch_ctx *ctx, void *obj, const struct yt_node *map)
{
	const struct safe_sc_latency *l = obj;

	if (sch_ok(ctx, "window") && sch_ok(ctx, "every") && l->every_ms &&
	    l->window_ms >= l->every_ms)
		sch_error(ctx, yt_map_get(map, "window") ?: map,
			  "window (%" PRId64 " ms) must be shorter than every (%" PRId64 " ms)",
			  l->window_ms, l->every_ms);
	return 0;
}

#define SCL(f) offsetof(struct safe_sc_latency, f)
static const struct sch_field sc_latency_fields[] = {
    {.name = "window",
     .type = SCH_DURATION,
     .offset = SCL(window_ms),
     .def = "1s",
     .min = 100,
     .max = MS_MIN,
     .doc = "how long the sys_enter program stays attached each time"},
    {.name = "every",
     .type = SCH_DURATION,
     .offset = SCL(every_ms),
     .def = "20s",
     .min = 0,
     .max = MS_HOUR,
     .doc = "how often a window opens; 0s: never (no syscall latency, nothing on sys_enter)"},
};
#undef SCL

static const struct sch_struct sc_latency_schema = {
    .name = "syscall_latency",
    .size = sizeof(struct safe_sc_latency),
    .fields = sc_latency_fields,
    .nfields = ARRAY_SIZE(sc_latency_fields),
    .check = sc_latency_check,
};

static const struct sch_field observe_fields[] = {
    {.name = "syscall_latency",
     .type = SCH_STRUCT,
     .offset = offsetof(struct safe_observe, sc_latency),
     .sub = &sc_latency_schema,
     .doc = "when syscall latency is timed: the sys_enter program costs every syscall of the "
	    "host while attached"},
};

static const struct sch_struct observe_schema = {
    .name = "observe",
    .size = sizeof(struct safe_observe),
    .fields = observe_fields,
    .nfields = ARRAY_SIZE(observe_fields),
};

/* ---- targets ---- */

static const struct sch_field slo_fields[] = {
    {.name = "p99_latency",
     .type = SCH_DURATION,
     .offset = offsetof(struct safe_slo, p99_latency_ms),
     .min = 1,
     .max = MS_HOUR,
     .doc = "p99 latency the service should stay under"},
    {.name = "error_rate",
     .type = SCH_PERCENT,
     .offset = offsetof(struct safe_slo, error_rate),
     .fmin = 0.000001,
     .fmax = 1.0,
     .doc = "fraction of failed calls it should stay under"},
    {.name = "throughput",
     .type = SCH_NUMBER,
     .offset = offsetof(struct safe_slo, throughput),
     .fmin = 0,
     .fmax = 1e9,
     .doc = "events per second it should sustain at least"},
    {.name = "cpu",
     .type = SCH_NUMBER,
     .offset = offsetof(struct safe_slo, cpu),
     .fmin = 0,
     .fmax = 4096,
     .doc = "CPUs it should get at least (batch work: its CPU is its throughput), e.g. 1.5"},
};

static const struct sch_struct slo_schema = {
    .name = "slo",
    .size = sizeof(struct safe_slo),
    .fields = slo_fields,
    .nfields = ARRAY_SIZE(slo_fields),
};

static int target_check(struct sch_ctx *ctx, void *obj, const struct yt_node *map)
{
	static const char *const selectors[] = {"unit", "cgroup", "comm", "exe", "pid"};
	struct safe_target *t = obj;
	bool any = false;

	check_name(ctx, map, "name", t->name);
	for (size_t i = 0; i < ARRAY_SIZE(selectors); i++)
		any |= yt_map_get(map, selectors[i]) != NULL;
	if (!any)
		sch_error(ctx, map, "target needs at least one of unit, cgroup, comm, exe, pid");
	if (t->exe && sch_ok(ctx, "exe") && t->exe[0] != '/')
		sch_error(ctx, yt_map_get(map, "exe"), "'exe' must be an absolute path, not '%s'",
			  t->exe);
	if (t->cgroup && sch_ok(ctx, "cgroup") && t->cgroup[0] != '/')
		sch_error(
		    ctx, yt_map_get(map, "cgroup"),
		    "'cgroup' must be an absolute cgroup path such as /system.slice/x.service, "
		    "not '%s'",
		    t->cgroup);
	if (t->unit && sch_ok(ctx, "unit") && strchr(t->unit, '/'))
		sch_error(ctx, yt_map_get(map, "unit"), "'unit' must be a unit name, not '%s'",
			  t->unit);
	return 0;
}

#define TGT(f) offsetof(struct safe_target, f)
static const struct sch_field target_fields[] = {
    {.name = "name",
     .type = SCH_STRING,
     .offset = TGT(name),
     .required = true,
     .min = 1,
     .max = SAFE_NAME_MAX,
     .doc = "how runbooks and the CLI refer to the target"},
    {.name = "unit",
     .type = SCH_STRING,
     .offset = TGT(unit),
     .max = 256,
     .doc = "systemd unit whose processes are the target; also how it is restarted"},
    {.name = "cgroup",
     .type = SCH_STRING,
     .offset = TGT(cgroup),
     .max = PATH_MAX - 1,
     .doc = "cgroup v2 path below /sys/fs/cgroup"},
    {.name = "comm",
     .type = SCH_STRING,
     .offset = TGT(comm),
     .max = SAFE_COMM_MAX,
     .doc = "process name as in /proc/PID/comm"},
    {.name = "exe",
     .type = SCH_STRING,
     .offset = TGT(exe),
     .max = PATH_MAX - 1,
     .doc = "absolute path of the executable"},
    {.name = "pid",
     .type = SCH_INT,
     .offset = TGT(pid),
     .min = 1,
     .max = 4194304,
     .doc = "one process (for tests and one-off services)"},
    {.name = "restart",
     .type = SCH_STRING,
     .offset = TGT(restart),
     .min = 1,
     .max = 4096,
     .doc = "command (run without a shell, split on spaces) that restarts the target when "
	    "it has no unit"},
    {.name = "slo",
     .type = SCH_STRUCT,
     .offset = TGT(slo),
     .sub = &slo_schema,
     .doc = "service level objectives; fitness is normalised against them"},
};
#undef TGT

static const struct sch_struct target_schema = {
    .name = "target",
    .size = sizeof(struct safe_target),
    .fields = target_fields,
    .nfields = ARRAY_SIZE(target_fields),
    .check = target_check,
};

/* ---- tuning ---- */

const char *const safe_tune_strategy_names[] = {"hill", "es", NULL};
const char *const safe_knob_kind_names[] = {"sysctl", "cgroup_file", "rlimit", "file", NULL};
const char *const safe_knob_netns_names[] = {"target", "host", NULL};
const char *const safe_tune_cgroup_files[] = {
    "cpu.weight",
    "cpu.weight.nice",
    "cpu.max",
    "cpu.idle",
    "memory.high",
    "memory.max",
    "memory.low",
    "memory.min",
    "memory.swap.max",
    "pids.max",
    "cgroup.max.descendants",
    "cgroup.max.depth",
    "cpu.shares",
    "cpu.cfs_quota_us",
    "cpu.cfs_period_us",
    "memory.limit_in_bytes",
    "memory.soft_limit_in_bytes",
    NULL,
};

#define STEP_FACTOR_MAX 16
#define CGROUP_PATH_MAX (ACT_PATH_MAX - 1 - (int)sizeof(ACT_CGROUP_ROOT) + 1)

/* 0 when the actuator would write sysctl name (dots or slashes); else -EINVAL with why. */
static int sysctl_writable(const char *name, char *why, size_t size)
{
	struct act_request req;

	act_request_init(&req, ACT_KIND_SYSCTL);
	sysctl_norm(name, req.sysctl.name, sizeof(req.sysctl.name));
	hs_strlcpy(req.sysctl.value, "0", sizeof(req.sysctl.value));
	return act_validate(&req, why, size);
}

/* The cgroup directory of a knob's "cgroup" as an absolute path under /sys/fs/cgroup:
 * "/batch" and "/sys/fs/cgroup/batch" are the same cgroup. */
static int knob_cgroup_dir(const char *cgroup, char *buf, size_t size)
{
	size_t root = strlen(ACT_CGROUP_ROOT);
	int w;

	if (!strncmp(cgroup, ACT_CGROUP_ROOT, root) && (!cgroup[root] || cgroup[root] == '/'))
		w = snprintf(buf, size, "%s", cgroup);
	else
		w = snprintf(buf, size, "%s%s", ACT_CGROUP_ROOT, cgroup);
	return w < 0 || (size_t)w >= size ? -ENAMETOOLONG : 0;
}

/* 0 when the actuator takes value for cgroup file file, else -EINVAL with why. */
static int cgroup_value_ok(const char *file, int64_t value, const char *dir, char *why, size_t size)
{
	struct act_request req;

	act_request_init(&req, ACT_KIND_CGROUP);
	hs_strlcpy(req.cgroup.path, dir, sizeof(req.cgroup.path));
	hs_strlcpy(req.cgroup.file, file, sizeof(req.cgroup.file));
	snprintf(req.cgroup.value, sizeof(req.cgroup.value), "%lld", (long long)value);
	return act_validate(&req, why, size);
}

static bool name_in(const char *const *names, const char *s)
{
	for (size_t i = 0; names[i]; i++)
		if (streq(names[i], s))
			return true;
	return false;
}

/* The knob's name as its kind key holds it, for messages: "sysctl 'net.core.somaxconn'". */
static const char *knob_name(const struct safe_tune_knob *k)
{
	switch (k->kind) {
	case SAFE_KNOB_SYSCTL:
		return k->sysctl;
	case SAFE_KNOB_CGROUP_FILE:
		return k->cgroup_file;
	case SAFE_KNOB_RLIMIT:
		return k->rlimit;
	case SAFE_KNOB_FILE:
		return k->file;
	}
	return NULL;
}

/* The kind key of the knob mapping map, or the mapping itself. */
static const struct yt_node *knob_node(const struct safe_tune_knob *k, const struct yt_node *map)
{
	const struct yt_node *n = NULL;

	if (k->kind >= 0 && k->kind < SAFE_KNOB_KIND_COUNT)
		n = yt_map_get(map, safe_knob_kind_names[k->kind]);
	return n ? n : map;
}

static void check_knob_file(struct sch_ctx *ctx, const struct yt_node *at, const char *file)
{
	static const char *const kernel_trees[] = {"/proc", "/sys", "/dev"};
	const char *p = file;

	if (file[0] != '/') {
		sch_error(ctx, at, "'file' must be an absolute path, not '%s'", file);
		return;
	}
	for (; *p; p++) {
		size_t n;

		while (*p == '/')
			p++;
		n = strcspn(p, "/");
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
			sch_error(ctx, at, "'file' must not hold '.' or '..' components, not '%s'",
				  file);
			return;
		}
		p += n;
		if (!*p)
			break;
	}
	for (size_t i = 0; i < ARRAY_SIZE(kernel_trees); i++)
		if (path_under(file, kernel_trees[i]))
			sch_error(ctx, at,
				  "'file' must not be under /proc, /sys or /dev, not '%s': use a "
				  "sysctl or cgroup_file knob",
				  file);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "as, core, cpu, ..." : the rlimit names the actuator knows, sorted. */
static const char *rlimit_names(char *buf, size_t size)
{
	const char *names[RLIMIT_NLIMITS + 1];
	size_t n = 0;

	for (int r = 0; r < RLIMIT_NLIMITS; r++)
		if (act_rlimit_name(r))
			names[n++] = act_rlimit_name(r);
	qsort(names, n, sizeof(names[0]), cmp_str);
	names[n] = NULL;
	return sch_join_names(names, buf, size);
}

/* Parses step: "2x" (a factor) or "16" (an increment). */
static void check_knob_step(struct sch_ctx *ctx, struct safe_tune_knob *k,
			    const struct yt_node *map)
{
	const struct yt_node *at = yt_map_get(map, "step");
	size_t len = strlen(k->step);
	bool ranges = sch_ok(ctx, "min") && sch_ok(ctx, "max") && k->min < k->max;
	char num[33];
	double f;
	int64_t v;

	if (len > 1 && k->step[len - 1] == 'x' && len <= sizeof(num)) {
		memcpy(num, k->step, len - 1);
		num[len - 1] = '\0';
		if (sch_parse_number(num, &f) < 0)
			goto malformed;
		if (!(f > 1) || f > STEP_FACTOR_MAX) {
			sch_error(ctx, at,
				  "'step' factor must be greater than 1x and at most %dx, "
				  "not '%s'",
				  STEP_FACTOR_MAX, k->step);
			return;
		}
		if (sch_ok(ctx, "min") && k->min < 1) {
			sch_error(ctx, at,
				  "a 'step' factor (%s) needs 'min' of at least 1, not %lld: use "
				  "an integer step",
				  k->step, (long long)k->min);
			return;
		}
		k->step_factor = true;
		k->step_by = f;
		return;
	}
	if (sch_parse_int(k->step, &v) == -EINVAL)
		goto malformed;
	if (sch_parse_int(k->step, &v) < 0 || v < 1) {
		sch_error(ctx, at, "'step' must be at least 1, not '%s'", k->step);
		return;
	}
	if (ranges && (uint64_t)v > (uint64_t)k->max - (uint64_t)k->min) {
		sch_error(ctx, at, "'step' (%lld) must not be greater than 'max' - 'min' (%llu)",
			  (long long)v, (unsigned long long)((uint64_t)k->max - (uint64_t)k->min));
		return;
	}
	k->step_factor = false;
	k->step_by = (double)v;
	return;
malformed:
	sch_error(ctx, at, "'step' must be an integer such as 16 or a factor such as 2x, not '%s'",
		  k->step);
}

/* Checks of one knob by itself; those against the rest of the policy are in policy_check. */
static int knob_check(struct sch_ctx *ctx, void *obj, const struct yt_node *map)
{
	struct safe_tune_knob *k = obj;
	const char *first = NULL, *name = NULL, *kind;
	const struct yt_node *n;
	char why[ACT_WHY_MAX], list[512], dir[ACT_PATH_MAX];
	bool range_ok;

	k->kind = -1;
	for (size_t i = 0; i < map->n; i++) {
		const char *key = map->pairs[i].key->str;

		if (!name_in(safe_knob_kind_names, key))
			continue;
		if (first) {
			sch_error(ctx, map->pairs[i].key,
				  "knob has both '%s' and '%s': give exactly one of sysctl, "
				  "cgroup_file, rlimit, file",
				  first, key);
			continue;
		}
		first = key;
		for (int j = 0; safe_knob_kind_names[j]; j++)
			if (streq(safe_knob_kind_names[j], key))
				k->kind = j;
	}
	if (k->kind < 0)
		return sch_error(ctx, map, "knob needs one of sysctl, cgroup_file, rlimit, file");
	kind = safe_knob_kind_names[k->kind];
	if (sch_ok(ctx, kind))
		name = knob_name(k);
	n = yt_map_get(map, kind);

	/* The knob's name: what the actuator can change. */
	switch (name ? k->kind : -1) {
	case SAFE_KNOB_SYSCTL:
		if (sysctl_writable(name, why, sizeof(why)))
			sch_error(ctx, n, "'sysctl' is not a sysctl homeostat can write: %s", why);
		break;
	case SAFE_KNOB_CGROUP_FILE:
		if (!name_in(safe_tune_cgroup_files, name))
			sch_error(ctx, n, "'cgroup_file' must be one of %s, not '%s'",
				  sch_join_names(safe_tune_cgroup_files, list, sizeof(list)), name);
		break;
	case SAFE_KNOB_RLIMIT:
		k->resource = act_rlimit_from_name(name);
		if (k->resource < 0)
			sch_error(ctx, n, "'rlimit' must be one of %s, not '%s'",
				  rlimit_names(list, sizeof(list)), name);
		break;
	case SAFE_KNOB_FILE:
		check_knob_file(ctx, n, name);
		break;
	}

	/* Keys that belong to one kind only. */
	if ((n = yt_map_get(map, "netns"))) {
		if (k->kind != SAFE_KNOB_SYSCTL)
			sch_error(ctx, n, "'netns' applies only to net.* sysctls, not %s", kind);
		else if (name && strncmp(name, "net.", 4) && strncmp(name, "net/", 4))
			sch_error(ctx, n, "'netns' applies only to net.* sysctls, not '%s'", name);
	}
	if ((n = yt_map_get(map, "field")) && k->kind != SAFE_KNOB_SYSCTL)
		sch_error(ctx, n, "'field' applies only to sysctl knobs, not %s", kind);
	if ((n = yt_map_get(map, "bounded_by"))) {
		if (k->kind != SAFE_KNOB_SYSCTL)
			sch_error(ctx, n, "'bounded_by' applies only to sysctl knobs, not %s",
				  kind);
		else if (k->bounded_by && sch_ok(ctx, "bounded_by") &&
			 sysctl_writable(k->bounded_by, why, sizeof(why)))
			sch_error(ctx, n, "'bounded_by' is not a sysctl name: %s", why);
	}
	if ((n = yt_map_get(map, "cgroup"))) {
		if (k->kind != SAFE_KNOB_CGROUP_FILE)
			sch_error(ctx, n, "'cgroup' applies only to cgroup_file knobs, not %s",
				  kind);
		else if (k->cgroup && sch_ok(ctx, "cgroup") && k->cgroup[0] != '/')
			sch_error(ctx, n,
				  "'cgroup' must be an absolute cgroup path such as /batch or "
				  "/sys/fs/cgroup/batch, not '%s'",
				  k->cgroup);
		else if (k->cgroup && sch_ok(ctx, "cgroup") &&
			 (knob_cgroup_dir(k->cgroup, dir, sizeof(dir)) ||
			  cgroup_value_ok("cpu.weight", 1, dir, why, sizeof(why))))
			sch_error(ctx, n, "'cgroup' is not a cgroup homeostat can write: %s", why);
	}

	/* The range, and what the actuator accepts in it. */
	range_ok = sch_ok(ctx, "min") && sch_ok(ctx, "max");
	if (range_ok && k->min >= k->max) {
		sch_error(ctx, yt_map_get(map, "min"),
			  "'min' (%lld) must be less than 'max' (%lld)", (long long)k->min,
			  (long long)k->max);
		range_ok = false;
	}
	if (k->kind == SAFE_KNOB_RLIMIT && sch_ok(ctx, "min") && k->min < 0)
		sch_error(ctx, yt_map_get(map, "min"),
			  "'min' of an rlimit must be at least 0, not %lld", (long long)k->min);
	if (k->kind == SAFE_KNOB_CGROUP_FILE && name && name_in(safe_tune_cgroup_files, name)) {
		static const char *const ends[] = {"min", "max"};

		for (size_t i = 0; i < ARRAY_SIZE(ends); i++) {
			int64_t v = i ? k->max : k->min;

			if (sch_ok(ctx, ends[i]) &&
			    cgroup_value_ok(name, v, "homeostat", why, sizeof(why)))
				sch_error(ctx, yt_map_get(map, ends[i]),
					  "'%s' (%lld) is out of range: %s", ends[i], (long long)v,
					  why);
		}
	}
	if (k->step && sch_ok(ctx, "step"))
		check_knob_step(ctx, k, map);

	/* An application reads its file when it starts, unless told otherwise. */
	if (k->kind == SAFE_KNOB_FILE && !yt_map_get(map, "restart"))
		k->restart = true;
	return 0;
}

#define KNOB(f) offsetof(struct safe_tune_knob, f)
static const struct sch_field knob_fields[] = {
    {.name = "sysctl",
     .type = SCH_STRING,
     .offset = KNOB(sysctl),
     .min = 1,
     .max = ACT_NAME_MAX - 1,
     .doc = "a sysctl, dotted or with slashes; net.* ones in the target's network namespace"},
    {.name = "cgroup_file",
     .type = SCH_STRING,
     .offset = KNOB(cgroup_file),
     .min = 1,
     .max = ACT_FILE_MAX - 1,
     .doc = "a cgroup file of the actuator table, in the target's cgroup unless cgroup says"},
    {.name = "rlimit",
     .type = SCH_STRING,
     .offset = KNOB(rlimit),
     .min = 1,
     .max = 32,
     .doc = "the soft resource limit of the target's processes, as prlimit names it"},
    {.name = "file",
     .type = SCH_STRING,
     .offset = KNOB(file),
     .min = 1,
     .max = ACT_PATH_MAX - 1,
     .doc = "an application knob: the absolute path of a file holding one integer"},
    {.name = "netns",
     .type = SCH_ENUM,
     .offset = KNOB(netns),
     .def = "target",
     .names = safe_knob_netns_names,
     .doc = "net.* sysctls: target, the namespace of the target's processes; host, the "
	    "daemon's"},
    {.name = "field",
     .type = SCH_INT,
     .offset = KNOB(field),
     .min = 1,
     .max = 8,
     .doc = "sysctls of several numbers (net.ipv4.tcp_rmem): which one is the knob; the "
	    "others are kept"},
    {.name = "cgroup",
     .type = SCH_STRING,
     .offset = KNOB(cgroup),
     .min = 1,
     .max = CGROUP_PATH_MAX,
     .doc = "cgroup_file: this cgroup (/batch or /sys/fs/cgroup/batch) instead of the "
	    "target's"},
    {.name = "min",
     .type = SCH_INT,
     .offset = KNOB(min),
     .required = true,
     .doc = "smallest value tried"},
    {.name = "max",
     .type = SCH_INT,
     .offset = KNOB(max),
     .required = true,
     .doc = "largest value tried"},
    {.name = "step",
     .type = SCH_STRING,
     .offset = KNOB(step),
     .required = true,
     .min = 1,
     .max = 32,
     .doc = "first step of the search: a factor (2x: log scale) or an integer (linear)"},
    {.name = "restart",
     .type = SCH_BOOL,
     .offset = KNOB(restart),
     .def = "false",
     .doc = "a new value takes effect only when the target restarts; default true for file"},
    {.name = "bounded_by",
     .type = SCH_STRING,
     .offset = KNOB(bounded_by),
     .min = 1,
     .max = ACT_NAME_MAX - 1,
     .doc = "sysctl knobs: a sysctl whose current value (the last number of several) caps "
	    "max"},
};
#undef KNOB

static const struct sch_struct knob_schema = {
    .name = "knob",
    .size = sizeof(struct safe_tune_knob),
    .fields = knob_fields,
    .nfields = ARRAY_SIZE(knob_fields),
    .check = knob_check,
};

static int job_check(struct sch_ctx *ctx, void *obj, const struct yt_node *map)
{
	struct safe_tune_job *j = obj;
	const struct yt_node *knobs = yt_map_get(map, "knobs");

	check_name(ctx, map, "name", j->name);
	if (knobs && sch_ok(ctx, "knobs") && j->n_knobs == 0)
		sch_error(ctx, knobs, "'knobs' must not be empty");
	return 0;
}

static const struct sch_field term_fields[] = {
    {.name = "target",
     .type = SCH_STRING,
     .offset = offsetof(struct safe_tune_term, target),
     .required = true,
     .min = 1,
     .max = SAFE_NAME_MAX,
     .doc = "a target of the policy"},
    {.name = "weight",
     .type = SCH_NUMBER,
     .offset = offsetof(struct safe_tune_term, weight),
     .def = "1",
     .fmin = 0.001,
     .fmax = 1000,
     .doc = "its relative weight in the objective"},
};

static const struct sch_struct term_schema = {
    .name = "objective_term",
    .size = sizeof(struct safe_tune_term),
    .fields = term_fields,
    .nfields = ARRAY_SIZE(term_fields),
};

#define JOB(f) offsetof(struct safe_tune_job, f)
static const struct sch_field job_fields[] = {
    {.name = "name",
     .type = SCH_STRING,
     .offset = JOB(name),
     .required = true,
     .min = 1,
     .max = SAFE_NAME_MAX,
     .doc = "names the job in history, explain and memory"},
    {.name = "target",
     .type = SCH_STRING,
     .offset = JOB(target),
     .required = true,
     .min = 1,
     .max = SAFE_NAME_MAX,
     .doc = "a target of the policy: its fitness is the objective, its processes, cgroup and "
	    "network namespace are where the knobs apply"},
    {.name = "strategy",
     .type = SCH_ENUM,
     .offset = JOB(strategy),
     .def = "hill",
     .names = safe_tune_strategy_names,
     .doc = "hill: coordinate hill climb with step halving; es: (1+1) evolution strategy"},
    {.name = "max_trials",
     .type = SCH_INT,
     .offset = JOB(max_trials),
     .def = "20",
     .min = 1,
     .max = SAFE_MAX_TUNE_TRIALS,
     .doc = "canaries the search may run at most"},
    {.name = "reapply",
     .type = SCH_BOOL,
     .offset = JOB(reapply),
     .def = "false",
     .doc = "kept values are applied again after a daemon restart"},
    {.name = "class",
     .type = SCH_STRING,
     .offset = JOB(class),
     .required = true,
     .min = 1,
     .max = SAFE_NAME_MAX,
     .doc = "action class of the policy: the approval rule of each trial"},
    {.name = "knobs",
     .type = SCH_STRUCT_LIST,
     .offset = JOB(knobs),
     .count_offset = JOB(n_knobs),
     .sub = &knob_schema,
     .required = true,
     .max_items = SAFE_MAX_TUNE_KNOBS,
     .doc = "the knobs searched together"},
    {.name = "objective",
     .type = SCH_STRUCT_LIST,
     .offset = JOB(objective),
     .count_offset = JOB(n_objective),
     .sub = &term_schema,
     .max_items = SAFE_MAX_TUNE_TERMS,
     .doc = "the targets whose fitness the search improves, weighted (a trade-off: a "
	    "server's latency against a batch job's CPU); default: the job's target"},
};
#undef JOB

static const struct sch_struct job_schema = {
    .name = "tuning_job",
    .size = sizeof(struct safe_tune_job),
    .fields = job_fields,
    .nfields = ARRAY_SIZE(job_fields),
    .check = job_check,
};

static const struct sch_field tuning_fields[] = {
    {.name = "jobs",
     .type = SCH_STRUCT_LIST,
     .offset = offsetof(struct safe_tuning, jobs),
     .count_offset = offsetof(struct safe_tuning, n_jobs),
     .sub = &job_schema,
     .max_items = SAFE_MAX_TUNE_JOBS,
     .doc = "searches over knobs, each against one target's fitness"},
};

static const struct sch_struct tuning_schema = {
    .name = "tuning",
    .size = sizeof(struct safe_tuning),
    .fields = tuning_fields,
    .nfields = ARRAY_SIZE(tuning_fields),
};

/* ---- redirects ---- */

/* A symbol name as the ELF has it: C identifiers, C++/Rust mangled names, versions (@). */
static bool symbol_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("_.$@", *s))
			return false;
	return true;
}

static int redirect_check(struct sch_ctx *ctx, void *obj, const struct yt_node *map)
{
	struct safe_redirect *r = obj;

	check_name(ctx, map, "name", r->name);
	if (r->function && !symbol_ok(r->function))
		sch_error(ctx, yt_map_get(map, "function"),
			  "'%s' is not a symbol name (letters, digits, _ . $ @)", r->function);
	for (size_t i = 0; i < r->n_alternatives; i++) {
		const struct yt_node *l = yt_map_get(map, "alternatives");
		const struct yt_node *at =
		    l && l->kind == YT_SEQUENCE && i < l->n ? l->items[i] : l;

		if (!symbol_ok(r->alternatives[i]))
			sch_error(ctx, at, "'%s' is not a symbol name (letters, digits, _ . $ @)",
				  r->alternatives[i]);
		else if (r->function && !strcmp(r->alternatives[i], r->function))
			sch_error(ctx, at, "the alternative is the function itself");
	}
	if (!r->function && r->n_alternatives)
		sch_error(ctx, yt_map_get(map, "alternatives"),
			  "alternatives need the 'function' they replace (without one, the hottest "
			  "function with FUNCTION__alt_* alternatives is discovered)");
	if (r->object && !*r->object)
		sch_error(ctx, yt_map_get(map, "object"), "'object' must not be empty");
	if (r->library && r->library[0] != '/')
		sch_error(ctx, yt_map_get(map, "library"), "'library' must be an absolute path");
	if (!r->promote && r->new_processes)
		sch_error(ctx, yt_map_get(map, "new_processes"),
			  "new_processes needs promote: true (a redirect kept for every process)");
	return 0;
}

#define RD(f) offsetof(struct safe_redirect, f)
static const struct sch_field redirect_fields[] = {
    {.name = "name",
     .type = SCH_STRING,
     .offset = RD(name),
     .required = true,
     .min = 1,
     .max = SAFE_NAME_MAX,
     .doc = "names the redirect in history, explain and memory"},
    {.name = "target",
     .type = SCH_STRING,
     .offset = RD(target),
     .required = true,
     .min = 1,
     .max = SAFE_NAME_MAX,
     .doc = "a target of the policy: its processes are redirected, its fitness judges"},
    {.name = "function",
     .type = SCH_STRING,
     .offset = RD(function),
     .min = 1,
     .max = SAFE_SYMBOL_MAX,
     .doc = "the function (an ELF FUNC symbol) whose calls go to an alternative; default: "
	    "discovered, the hottest function of the target's CPU profile that has "
	    "FUNCTION__alt_* alternatives"},
    {.name = "object",
     .type = SCH_STRING,
     .offset = RD(object),
     .max = 511,
     .doc = "the executable or shared library holding it, as a path or a file name; "
	    "default: the target's executable"},
    {.name = "library",
     .type = SCH_STRING,
     .offset = RD(library),
     .max = 511,
     .doc = "the shared library holding the alternatives, an absolute path (the operator's "
	    "patch library, preloaded or loaded by homeostat into each process it redirects); "
	    "default: the function's object"},
    {.name = "alternatives",
     .type = SCH_STRING_LIST,
     .offset = RD(alternatives),
     .count_offset = RD(n_alternatives),
     .max = SAFE_SYMBOL_MAX,
     .max_items = SAFE_MAX_ALTERNATIVES,
     .doc = "the alternatives, tried in this order; default: every FUNCTION__alt_NAME of "
	    "the same object"},
    {.name = "class",
     .type = SCH_STRING,
     .offset = RD(class),
     .required = true,
     .min = 1,
     .max = SAFE_NAME_MAX,
     .doc = "action class of the policy: the approval rule of each trial"},
    {.name = "hot_share",
     .type = SCH_PERCENT,
     .offset = RD(hot_share),
     .def = "5%",
     .fmin = 0,
     .fmax = 1.0,
     .doc = "share of the target's CPU samples the function must have before it is tried "
	    "(0%: whether hot or not)"},
    {.name = "canary_processes",
     .type = SCH_INT,
     .offset = RD(canary_processes),
     .def = "1",
     .min = 1,
     .max = 64,
     .doc = "processes redirected during a canary; the others are left alone"},
    {.name = "restart_on_crash",
     .type = SCH_BOOL,
     .offset = RD(restart_on_crash),
     .def = "false",
     .doc = "a process that crashes while redirected is restarted with the target's "
	    "restart command"},
    {.name = "promote",
     .type = SCH_BOOL,
     .offset = RD(promote),
     .def = "true",
     .doc = "after KEEP every process of the target is redirected"},
    {.name = "new_processes",
     .type = SCH_BOOL,
     .offset = RD(new_processes),
     .def = "true",
     .doc = "after KEEP processes that start later are redirected too"},
};
#undef RD

static const struct sch_struct redirect_schema = {
    .name = "redirect",
    .size = sizeof(struct safe_redirect),
    .fields = redirect_fields,
    .nfields = ARRAY_SIZE(redirect_fields),
    .check = redirect_check,
};

/* "the policy defines web, leaky" for a message about an unknown name. */
static const char *defined_names(const struct safe_policy *p, bool targets, char *buf, size_t size)
{
	size_t n = targets ? p->n_targets : p->n_classes, o;

	if (n == 0)
		return targets ? "the policy defines no targets" : "the policy defines no classes";
	o = (size_t)snprintf(buf, size, "the policy defines ");
	for (size_t i = 0; i < n && o < size; i++)
		o += (size_t)snprintf(buf + o, size - o, "%s%s", i ? ", " : "",
				      targets ? p->targets[i].name : p->classes[i].name);
	return buf;
}

/* Does the knob's place depend on the target (its netns, cgroup or processes)? */
static bool knob_per_target(const struct safe_tune_knob *k)
{
	switch (k->kind) {
	case SAFE_KNOB_SYSCTL:
		return k->netns == SAFE_NETNS_TARGET && k->sysctl &&
		       (!strncmp(k->sysctl, "net.", 4) || !strncmp(k->sysctl, "net/", 4));
	case SAFE_KNOB_CGROUP_FILE:
		return !k->cgroup;
	case SAFE_KNOB_RLIMIT:
		return true;
	}
	return false;
}

static bool opt_streq(const char *a, const char *b)
{
	return a == b || (a && b && streq(a, b));
}

/* Are a (of target ta) and b (of target tb) the same knob of the same place? */
static bool knob_same(const struct safe_tune_knob *a, const char *ta,
		      const struct safe_tune_knob *b, const char *tb)
{
	char na[ACT_PATH_MAX], nb[ACT_PATH_MAX];

	if (a->kind != b->kind || a->kind < 0 || !knob_name(a) || !knob_name(b))
		return false;
	if (knob_per_target(a) != knob_per_target(b) || (knob_per_target(a) && !opt_streq(ta, tb)))
		return false;
	if (a->kind == SAFE_KNOB_SYSCTL) {
		sysctl_norm(a->sysctl, na, sizeof(na));
		sysctl_norm(b->sysctl, nb, sizeof(nb));
		return streq(na, nb) && a->field == b->field;
	}
	if (a->kind == SAFE_KNOB_CGROUP_FILE && a->cgroup && b->cgroup &&
	    (knob_cgroup_dir(a->cgroup, na, sizeof(na)) ||
	     knob_cgroup_dir(b->cgroup, nb, sizeof(nb)) || !streq(na, nb)))
		return false;
	return streq(knob_name(a), knob_name(b));
}

/* A sysctl knob against protected.sysctl_deny and protected.sysctl_ranges. */
static void check_knob_sysctl(struct sch_ctx *ctx, const struct safe_policy *p,
			      const struct safe_tune_knob *k, const struct yt_node *map)
{
	char n[257], m[257];

	sysctl_norm(k->sysctl, n, sizeof(n));
	for (size_t i = 0; i < p->protect.n_sysctl_deny; i++) {
		sysctl_norm(p->protect.sysctl_deny[i], m, sizeof(m));
		if (fnmatch(m, n, 0) == 0) {
			sch_error(
			    ctx, yt_map_get(map, "sysctl"),
			    "sysctl '%s' is not allowed: denied by protected.sysctl_deny '%s'",
			    k->sysctl, p->protect.sysctl_deny[i]);
			return;
		}
	}
	for (size_t i = 0; i < p->protect.n_sysctl_ranges; i++) {
		const struct safe_sysctl_range *r = &p->protect.sysctl_ranges[i];

		sysctl_norm(r->name, m, sizeof(m));
		if (!streq(m, n))
			continue;
		if (k->field) {
			sch_error(ctx, yt_map_get(map, "field"),
				  "sysctl '%s' is not allowed: protected.sysctl_ranges limits it "
				  "to one integer, and 'field' picks one of several",
				  k->sysctl);
			return;
		}
		if (k->min < r->min || k->min > r->max)
			sch_error(ctx, yt_map_get(map, "min"),
				  "'min' (%lld) of sysctl '%s' is not allowed: outside "
				  "protected.sysctl_ranges %lld..%lld",
				  (long long)k->min, k->sysctl, (long long)r->min,
				  (long long)r->max);
		if (k->max < r->min || k->max > r->max)
			sch_error(ctx, yt_map_get(map, "max"),
				  "'max' (%lld) of sysctl '%s' is not allowed: outside "
				  "protected.sysctl_ranges %lld..%lld",
				  (long long)k->max, k->sysctl, (long long)r->min,
				  (long long)r->max);
	}
}

/* Reports path under a protected path (of the file: the agent's own come later). */
static void check_protected(struct sch_ctx *ctx, const struct safe_policy *p,
			    const struct yt_node *at, const char *what, const char *path)
{
	for (size_t i = 0; i < p->protect.n_paths; i++) {
		if (path_under(path, p->protect.paths[i])) {
			sch_error(ctx, at,
				  "%s '%s' is not allowed: protected by protected.paths '%s'", what,
				  path, p->protect.paths[i]);
			return;
		}
	}
}

/* Checks of the tuning jobs against the rest of the policy. */
static void check_tuning(struct sch_ctx *ctx, const struct safe_policy *p,
			 const struct yt_node *tuning)
{
	const struct yt_node *jobs = tuning ? yt_map_get(tuning, "jobs") : NULL;
	char buf[1024], dir[ACT_PATH_MAX];

	if (!jobs || jobs->kind != YT_SEQUENCE || jobs->n != p->tuning.n_jobs)
		return;
	check_unique(ctx, jobs, "tuning job");
	for (size_t i = 0; i < p->tuning.n_jobs; i++) {
		const struct safe_tune_job *j = &p->tuning.jobs[i];
		const struct yt_node *jmap = jobs->items[i], *knobs;
		const struct safe_target *t = NULL;

		if (jmap->kind != YT_MAPPING)
			continue;
		if (j->target && !(t = safe_policy_target(p, j->target)))
			sch_error(ctx, yt_map_get(jmap, "target"), "unknown target '%s'; %s",
				  j->target, defined_names(p, true, buf, sizeof(buf)));
		if (j->class && !safe_policy_class(p, j->class))
			sch_error(ctx, yt_map_get(jmap, "class"), "unknown action class '%s'; %s",
				  j->class, defined_names(p, false, buf, sizeof(buf)));
		{
			const struct yt_node *obj = yt_map_get(jmap, "objective");

			for (size_t o = 0; obj && obj->kind == YT_SEQUENCE &&
					   obj->n == j->n_objective && o < j->n_objective;
			     o++)
				if (j->objective[o].target &&
				    !safe_policy_target(p, j->objective[o].target))
					sch_error(ctx, yt_map_get(obj->items[o], "target"),
						  "unknown target '%s'; %s", j->objective[o].target,
						  defined_names(p, true, buf, sizeof(buf)));
		}
		knobs = yt_map_get(jmap, "knobs");
		if (!knobs || knobs->kind != YT_SEQUENCE || knobs->n != j->n_knobs)
			continue;
		for (size_t k = 0; k < j->n_knobs; k++) {
			const struct safe_tune_knob *kb = &j->knobs[k];
			const struct yt_node *kmap = knobs->items[k];
			const struct yt_node *at;
			bool dup = false;

			if (kmap->kind != YT_MAPPING || kb->kind < 0 || !knob_name(kb))
				continue;
			at = knob_node(kb, kmap);
			if (kb->kind == SAFE_KNOB_SYSCTL)
				check_knob_sysctl(ctx, p, kb, kmap);
			if (kb->kind == SAFE_KNOB_FILE && kb->file[0] == '/')
				check_protected(ctx, p, at, "file", kb->file);
			if (kb->kind == SAFE_KNOB_CGROUP_FILE && kb->cgroup &&
			    !knob_cgroup_dir(kb->cgroup, dir, sizeof(dir)))
				check_protected(ctx, p, yt_map_get(kmap, "cgroup"), "cgroup", dir);
			if (kb->restart && t && !t->unit && !t->cgroup && !t->restart)
				sch_error(
				    ctx,
				    yt_map_get(kmap, "restart") ? yt_map_get(kmap, "restart") : at,
				    "knob %s '%s' needs a restart, and target '%s' has no unit, "
				    "cgroup or restart command to restart it with",
				    safe_knob_kind_names[kb->kind], knob_name(kb), t->name);
			/* The same knob of the same place, earlier in this job or another. */
			for (size_t i2 = 0; i2 <= i && !dup; i2++) {
				const struct safe_tune_job *j2 = &p->tuning.jobs[i2];
				const struct yt_node *k2s =
				    jobs->items[i2]->kind == YT_MAPPING
					? yt_map_get(jobs->items[i2], "knobs")
					: NULL;

				if (!k2s || k2s->kind != YT_SEQUENCE || k2s->n != j2->n_knobs)
					continue;
				for (size_t k2 = 0; k2 < (i2 == i ? k : j2->n_knobs) && !dup;
				     k2++) {
					const struct yt_node *first;

					if (!knob_same(&j2->knobs[k2], j2->target, kb, j->target))
						continue;
					first = knob_node(&j2->knobs[k2], k2s->items[k2]);
					sch_error(
					    ctx, at,
					    "duplicate knob %s '%s', first at line %u column %u",
					    safe_knob_kind_names[kb->kind], knob_name(kb),
					    first->line, first->col);
					dup = true;
				}
			}
		}
	}
}

/* Checks of the redirects against the rest of the policy. */
static void check_redirects(struct sch_ctx *ctx, const struct safe_policy *p,
			    const struct yt_node *list)
{
	char buf[1024];

	if (!list || list->kind != YT_SEQUENCE || list->n != p->n_redirects)
		return;
	check_unique(ctx, list, "redirect");
	for (size_t i = 0; i < p->n_redirects; i++) {
		const struct safe_redirect *r = &p->redirects[i];
		const struct yt_node *m = list->items[i];
		const struct safe_target *t = NULL;

		if (m->kind != YT_MAPPING)
			continue;
		if (r->target && !(t = safe_policy_target(p, r->target)))
			sch_error(ctx, yt_map_get(m, "target"), "unknown target '%s'; %s",
				  r->target, defined_names(p, true, buf, sizeof(buf)));
		if (r->class && !safe_policy_class(p, r->class))
			sch_error(ctx, yt_map_get(m, "class"), "unknown action class '%s'; %s",
				  r->class, defined_names(p, false, buf, sizeof(buf)));
		if (r->restart_on_crash && t && !t->unit && !t->restart)
			sch_error(ctx, yt_map_get(m, "restart_on_crash"),
				  "target '%s' has no unit or restart command to restart a crashed "
				  "process with",
				  t->name);
		if (r->object && r->object[0] == '/')
			check_protected(ctx, p, yt_map_get(m, "object"), "object", r->object);
		for (size_t k = 0; k < i; k++)
			if (r->target && r->function && p->redirects[k].target &&
			    p->redirects[k].function &&
			    !strcmp(r->target, p->redirects[k].target) &&
			    !strcmp(r->function, p->redirects[k].function) &&
			    !strcmp(r->object ?: "", p->redirects[k].object ?: "")) {
				const struct yt_node *first =
				    yt_map_get(list->items[k], "function");

				sch_error(ctx, yt_map_get(m, "function"),
					  "function '%s' of target '%s' is redirected already, at "
					  "line %u column %u",
					  r->function, r->target, first ? first->line : 0,
					  first ? first->col : 0);
			}
	}
}

/* ---- the file ---- */

static int policy_check(struct sch_ctx *ctx, void *obj, const struct yt_node *map)
{
	check_unique(ctx, yt_map_get(map, "action_classes"), "action class");
	check_unique(ctx, yt_map_get(map, "targets"), "target");
	check_tuning(ctx, obj, yt_map_get(map, "tuning"));
	check_redirects(ctx, obj, yt_map_get(map, "redirects"));
	return 0;
}

#define POL(f) offsetof(struct safe_policy, f)
static const struct sch_field policy_fields[] = {
    {.name = "mode",
     .type = SCH_ENUM,
     .offset = POL(mode),
     .required = true,
     .names = safe_mode_names,
     .doc = "enforce: apply changes; dry_run: propose and record only; observe: watch only"},
    {.name = "tick",
     .type = SCH_DURATION,
     .offset = POL(tick_ms),
     .def = "1s",
     .min = 100,
     .max = MS_MIN,
     .doc = "period of the main loop (--tick overrides)"},
    {.name = "budgets",
     .type = SCH_STRUCT,
     .offset = POL(budgets),
     .sub = &budgets_schema,
     .doc = "how many changes, how fast, how wide"},
    {.name = "protected",
     .type = SCH_STRUCT,
     .offset = POL(protect),
     .sub = &protected_schema,
     .doc = "what is never changed"},
    {.name = "action_classes",
     .type = SCH_STRUCT_LIST,
     .offset = POL(classes),
     .count_offset = POL(n_classes),
     .sub = &class_schema,
     .max_items = SAFE_MAX_CLASSES,
     .doc = "approval rule per class of action; runbook actions name their class"},
    {.name = "approvals",
     .type = SCH_STRUCT,
     .offset = POL(approvals),
     .sub = &approvals_schema,
     .doc = "defaults of pending approvals"},
    {.name = "canary",
     .type = SCH_STRUCT,
     .offset = POL(canary),
     .sub = &canary_schema,
     .doc = "how a change is judged"},
    {.name = "rollback_on",
     .type = SCH_STRUCT,
     .offset = POL(rollback_on),
     .sub = &rollback_schema,
     .doc = "regressions that roll a change back at once"},
    {.name = "fitness",
     .type = SCH_STRUCT,
     .offset = POL(fitness),
     .sub = &fitness_schema,
     .doc = "weights of the fitness score"},
    {.name = "observe",
     .type = SCH_STRUCT,
     .offset = POL(observe),
     .sub = &observe_schema,
     .doc = "what the observation layer measures beyond its always-on counts"},
    {.name = "targets",
     .type = SCH_STRUCT_LIST,
     .offset = POL(targets),
     .count_offset = POL(n_targets),
     .sub = &target_schema,
     .max_items = SAFE_MAX_TARGETS,
     .doc = "the services the agent looks after by name"},
    {.name = "tuning",
     .type = SCH_STRUCT,
     .offset = POL(tuning),
     .sub = &tuning_schema,
     .doc = "what the agent may tune by itself, and how; nothing without it"},
    {.name = "redirects",
     .type = SCH_STRUCT_LIST,
     .offset = POL(redirects),
     .count_offset = POL(n_redirects),
     .sub = &redirect_schema,
     .max_items = SAFE_MAX_REDIRECTS,
     .doc = "functions of running programs the agent may redirect to alternatives; "
	    "nothing without it"},
};
#undef POL

const struct sch_struct safe_policy_schema = {
    .name = "policy",
    .size = sizeof(struct safe_policy),
    .fields = policy_fields,
    .nfields = ARRAY_SIZE(policy_fields),
    .check = policy_check,
};

/* ---- loading ---- */

static int policy_from_doc(const char *path, const struct yt_doc *doc, struct safe_policy **out,
			   struct hs_errors *errs, size_t nerr_before)
{
	struct sch_ctx ctx = {.path = path, .errs = errs};
	struct safe_policy *p;
	int r;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	r = sch_convert_root(&ctx, &safe_policy_schema, doc, p);
	if (r == 0 && errs->n != nerr_before)
		r = -EINVAL;
	if (r == 0) {
		p->path = strdup(path);
		if (!p->path)
			r = -ENOMEM;
	}
	if (r < 0) {
		safe_policy_free(p);
		return r;
	}
	/* A class that requires approval without its own ttl takes the default. */
	for (size_t i = 0; i < p->n_classes; i++)
		if (p->classes[i].approval == SAFE_APPROVAL_REQUIRE && !p->classes[i].ttl_ms)
			p->classes[i].ttl_ms = p->approvals.ttl_ms;
	*out = p;
	return 0;
}

int safe_policy_parse(const char *path, const char *buf, size_t len, struct safe_policy **out,
		      struct hs_errors *errs)
{
	struct yt_doc *doc = NULL;
	size_t nerr = errs->n;
	int r;

	*out = NULL;
	r = yt_parse(path, buf, len, &doc, errs);
	if (r < 0)
		return r;
	r = policy_from_doc(path, doc, out, errs, nerr);
	yt_doc_free(doc);
	return r;
}

int safe_policy_load(const char *path, uid_t owner, struct safe_policy **out,
		     struct hs_errors *errs)
{
	struct yt_doc *doc = NULL;
	size_t nerr = errs->n;
	int r;

	*out = NULL;
	r = yt_load_file(path, owner, &doc, errs);
	if (r < 0)
		return r == -ENOMEM ? r : -EINVAL;
	r = policy_from_doc(path, doc, out, errs, nerr);
	yt_doc_free(doc);
	return r;
}

void safe_policy_free(struct safe_policy *p)
{
	if (!p)
		return;
	sch_free(&safe_policy_schema, p);
	for (size_t i = 0; i < p->n_self_paths; i++)
		free(p->self_paths[i]);
	free(p->self_paths);
	free(p->path);
	free(p);
}

static int add_self_path(struct safe_policy *p, const char *abs)
{
	char **a;
	char *s;

	for (size_t i = 0; i < p->n_self_paths; i++)
		if (streq(p->self_paths[i], abs))
			return 0;
	s = strdup(abs);
	if (!s)
		return -ENOMEM;
	a = realloc(p->self_paths, (p->n_self_paths + 1) * sizeof(*a));
	if (!a) {
		free(s);
		return -ENOMEM;
	}
	p->self_paths = a;
	p->self_paths[p->n_self_paths++] = s;
	return 0;
}

int safe_policy_protect_path(struct safe_policy *p, const char *path)
{
	char abs[PATH_MAX], real[PATH_MAX];
	size_t n;
	int r;

	if (!path || !*path)
		return -EINVAL;
	if (path[0] == '/') {
		if (hs_strlcpy(abs, path, sizeof(abs)) < 0)
			return -ENAMETOOLONG;
	} else {
		char cwd[PATH_MAX];

		if (!getcwd(cwd, sizeof(cwd)))
			return -errno;
		if ((size_t)snprintf(abs, sizeof(abs), "%s/%s", streq(cwd, "/") ? "" : cwd, path) >=
		    sizeof(abs))
			return -ENAMETOOLONG;
	}
	n = strlen(abs);
	while (n > 1 && abs[n - 1] == '/')
		abs[--n] = '\0';
	r = add_self_path(p, abs);
	if (r < 0)
		return r;
	/* The file may be reached through a symbolic link: protect what it resolves to too. */
	if (realpath(abs, real) && !streq(real, abs))
		r = add_self_path(p, real);
	return r;
}

bool safe_policy_path_protected(const struct safe_policy *p, const char *path)
{
	for (size_t i = 0; i < p->n_self_paths; i++)
		if (path_under(path, p->self_paths[i]))
			return true;
	for (size_t i = 0; i < p->protect.n_paths; i++)
		if (path_under(path, p->protect.paths[i]))
			return true;
	return false;
}

int safe_policy_sysctl_allowed(const struct safe_policy *p, const char *name, const char *value,
			       const char **why)
{
	char n[257], m[257];

	sysctl_norm(name, n, sizeof(n));
	for (size_t i = 0; i < p->protect.n_sysctl_deny; i++) {
		sysctl_norm(p->protect.sysctl_deny[i], m, sizeof(m));
		if (fnmatch(m, n, 0) == 0) {
			*why = "denied by protected.sysctl_deny";
			return -EPERM;
		}
	}
	for (size_t i = 0; i < p->protect.n_sysctl_ranges; i++) {
		const struct safe_sysctl_range *r = &p->protect.sysctl_ranges[i];
		int64_t v;

		sysctl_norm(r->name, m, sizeof(m));
		if (!streq(m, n))
			continue;
		if (sch_parse_int(value, &v) < 0) {
			*why = "not an integer, and protected.sysctl_ranges limits it";
			return -EPERM;
		}
		if (v < r->min || v > r->max) {
			*why = "outside protected.sysctl_ranges";
			return -EPERM;
		}
	}
	*why = NULL;
	return 0;
}

const struct safe_target *safe_policy_target(const struct safe_policy *p, const char *name)
{
	for (size_t i = 0; i < p->n_targets; i++)
		if (p->targets[i].name && streq(p->targets[i].name, name))
			return &p->targets[i];
	return NULL;
}

const struct safe_action_class *safe_policy_class(const struct safe_policy *p, const char *name)
{
	for (size_t i = 0; i < p->n_classes; i++)
		if (p->classes[i].name && streq(p->classes[i].name, name))
			return &p->classes[i];
	return NULL;
}

const struct safe_redirect *safe_policy_redirect(const struct safe_policy *p, const char *name)
{
	for (size_t i = 0; i < p->n_redirects; i++)
		if (p->redirects[i].name && streq(p->redirects[i].name, name))
			return &p->redirects[i];
	return NULL;
}

const struct safe_tune_job *safe_policy_tune_job(const struct safe_policy *p, const char *name)
{
	for (size_t i = 0; i < p->tuning.n_jobs; i++)
		if (p->tuning.jobs[i].name && streq(p->tuning.jobs[i].name, name))
			return &p->tuning.jobs[i];
	return NULL;
}
