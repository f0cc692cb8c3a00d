/* runbook.c - runbook schema, name tables and loader of runbook.h.
 *
 * The tables are the vocabulary of runbooks: actions with the schema of their params, errno
 * names, signal names for the signal action, captures, comparison operators. A runbook file
 * is one struct sch_struct tree; check hooks resolve names against the tables (and the
 * signal table of observe/signals.c), and record positions that the policy cross-check needs
 * after the YAML tree is gone.
 *
 * Invariants of a loaded set: every runbook converted without error; names unique across
 * files; every condition's desc is set and its aggregation, selectors and threshold fit the
 * signal; every step's params were converted with its action's schema (params_set).
 */
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>

#include "remediate/runbook.h"
#include "lib/yamltree.h"

#define MS_MIN	60000LL
#define MS_HOUR 3600000LL
#define MS_DAY	86400000LL

const char *const heal_op_names[] = {">", ">=", "<", "<=", "==", "!=", NULL};
const char *const heal_subject_names[] = {"self", "cpu_hog", NULL};
const char *const heal_revert_names[] = {"never", "when_cleared", "when_idle", NULL};
const char *const heal_capture_names[] = {
    "cpu_profile", "alloc_profile", "func_latency", "crash_report", "fd_table", NULL,
};
const char *const heal_action_names[] = {
    "rlimit_nofile",
    "nice",
    "cgroup_cpu_weight",
    "cgroup_cpu_quota",
    "cgroup_memory_high",
    "sysctl",
    "signal",
    "restart",
    "alert",
    NULL,
};
const char *const heal_signal_names[] = {
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGTERM", "SIGKILL", "SIGCONT", NULL,
};
static const int heal_signal_numbers[] = {
    SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGTERM, SIGKILL, SIGCONT,
};

int heal_signal_number(int index)
{
	if (index < 0 || (size_t)index >= ARRAY_SIZE(heal_signal_numbers))
		return 0;
	return heal_signal_numbers[index];
}

/* errno names a syscall_errors condition may select: those a failing service shows. */
#define E(x)                                                                                       \
	{                                                                                          \
#x, x                                                                              \
	}
static const struct {
	const char *name;
	int value;
} errno_table[] = {
    E(EPERM),	   E(ENOENT),	     E(ESRCH),	   E(EINTR),	    E(EIO),
    E(ENXIO),	   E(E2BIG),	     E(ENOEXEC),   E(EBADF),	    E(ECHILD),
    E(EAGAIN),	   E(EWOULDBLOCK),   E(ENOMEM),	   E(EACCES),	    E(EFAULT),
    E(EBUSY),	   E(EEXIST),	     E(EXDEV),	   E(ENODEV),	    E(ENOTDIR),
    E(EISDIR),	   E(EINVAL),	     E(ENFILE),	   E(EMFILE),	    E(ENOTTY),
    E(ETXTBSY),	   E(EFBIG),	     E(ENOSPC),	   E(ESPIPE),	    E(EROFS),
    E(EMLINK),	   E(EPIPE),	     E(ERANGE),	   E(EDEADLK),	    E(ENAMETOOLONG),
    E(ENOLCK),	   E(ENOSYS),	     E(ENOTEMPTY), E(ELOOP),	    E(ENOBUFS),
    E(EADDRINUSE), E(EADDRNOTAVAIL), E(ENETDOWN),  E(ENETUNREACH),  E(ECONNABORTED),
    E(ECONNRESET), E(ENOTCONN),	     E(ETIMEDOUT), E(ECONNREFUSED), E(EHOSTUNREACH),
    E(EALREADY),   E(EINPROGRESS),   E(EDQUOT),	   E(ECANCELED),    E(EOVERFLOW),
    E(EOPNOTSUPP), E(ENOTSUP),	     E(EPROTO),	   E(EMSGSIZE),	    E(ENODATA),
};
#undef E

int heal_errno_lookup(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(errno_table); i++)
		if (streq(errno_table[i].name, name))
			return errno_table[i].value;
	return 0;
}

/* ---- action params ---- */

static int rlimit_check(struct sch_ctx *ctx, void *obj, const struct yt_node *map)
{
	struct heal_rlimit_params *p = obj;
	const struct yt_node *value = yt_map_get(map, "value");

	if (value && yt_map_get(map, "factor"))
		return sch_error(ctx, value, "'value' and 'factor' exclude each other");
	if (value && sch_ok(ctx, "value")) {
		p->factor = 0;
		if (sch_ok(ctx, "max") && p->value > p->max)
			sch_error(ctx, value,
				  "'value' (%lld) must not be greater than 'max' (%lld)",
				  (long long)p->value, (long long)p->max);
	}
	return 0;
}

static const struct sch_field rlimit_fields[] = {
    {.name = "factor",
     .type = SCH_NUMBER,
     .offset = offsetof(struct heal_rlimit_params, factor),
     .def = "2",
     .fmin = 1.1,
     .fmax = 64,
     .doc = "multiply the current soft limit by this"},
    {.name = "value",
     .type = SCH_INT,
     .offset = offsetof(struct heal_rlimit_params, value),
     .min = 1,
     .max = 1073741816,
     .doc = "set the soft limit to this (instead of factor)"},
    {.name = "max",
     .type = SCH_INT,
     .offset = offsetof(struct heal_rlimit_params, max),
     .required = true,
     .min = 1,
     .max = 1073741816,
     .doc = "never raise the soft limit above this (nor above the hard limit)"},
};

static const struct sch_struct rlimit_schema = {
    .name = "rlimit_nofile",
    .size = sizeof(struct heal_rlimit_params),
    .fields = rlimit_fields,
    .nfields = ARRAY_SIZE(rlimit_fields),
    .check = rlimit_check,
};

static int nice_check(struct sch_ctx *ctx, void *obj, const struct yt_node *map)
{
	struct heal_nice_params *p = obj;
	const struct yt_node *value = yt_map_get(map, "value");

	if (value && p->idle)
		return sch_error(ctx, value, "'value' and 'idle: true' exclude each other");
	if (!value && !p->idle && sch_ok(ctx, "idle"))
		return sch_error(ctx, map, "nice needs 'value' or 'idle: true'");
	return 0;
}

static const struct sch_field nice_fields[] = {
    {.name = "value",
     .type = SCH_INT,
     .offset = offsetof(struct heal_nice_params, value),
     .min = -20,
     .max = 19,
     .doc = "the nice value to set"},
    {.name = "idle",
     .type = SCH_BOOL,
     .offset = offsetof(struct heal_nice_params, idle),
     .doc = "move every thread to SCHED_IDLE instead: it runs only when nothing else wants "
	    "the CPU, and a waking thread preempts it at once (a nice-19 thread may first "
	    "finish its slice)"},
};

static const struct sch_struct nice_schema = {
    .name = "nice",
    .size = sizeof(struct heal_nice_params),
    .fields = nice_fields,
    .nfields = ARRAY_SIZE(nice_fields),
    .check = nice_check,
};

static const struct sch_field cpu_weight_fields[] = {
    {.name = "weight",
     .type = SCH_INT,
     .offset = offsetof(struct heal_cpu_weight_params, weight),
     .required = true,
     .min = 1,
     .max = 10000,
     .doc = "cgroup v2 cpu.weight (default of a cgroup: 100)"},
};

static const struct sch_struct cpu_weight_schema = {
    .name = "cgroup_cpu_weight",
    .size = sizeof(struct heal_cpu_weight_params),
    .fields = cpu_weight_fields,
    .nfields = ARRAY_SIZE(cpu_weight_fields),
};

static const struct sch_field cpu_quota_fields[] = {
    {.name = "cpus",
     .type = SCH_NUMBER,
     .offset = offsetof(struct heal_cpu_quota_params, cpus),
     .required = true,
     .fmin = 0.01,
     .fmax = 1024,
     .doc = "CPUs the cgroup may use (cpu.max)"},
    {.name = "period",
     .type = SCH_DURATION,
     .offset = offsetof(struct heal_cpu_quota_params, period_ms),
     .def = "100ms",
     .min = 1,
     .max = 1000,
     .doc = "cpu.max period"},
};

static const struct sch_struct cpu_quota_schema = {
    .name = "cgroup_cpu_quota",
    .size = sizeof(struct heal_cpu_quota_params),
    .fields = cpu_quota_fields,
    .nfields = ARRAY_SIZE(cpu_quota_fields),
};

static const struct sch_field memory_high_fields[] = {
    {.name = "value",
     .type = SCH_BYTES,
     .offset = offsetof(struct heal_memory_high_params, bytes),
     .required = true,
     .min = 1LL << 20,
     .max = 1LL << 50,
     .doc = "cgroup v2 memory.high"},
};

static const struct sch_struct memory_high_schema = {
    .name = "cgroup_memory_high",
    .size = sizeof(struct heal_memory_high_params),
    .fields = memory_high_fields,
    .nfields = ARRAY_SIZE(memory_high_fields),
};

static int sysctl_check(struct sch_ctx *ctx, void *obj, const struct yt_node *map)
{
	struct heal_sysctl_params *p = obj;

	if (p->name && sch_ok(ctx, "name") &&
	    strspn(p->name, "abcdefghijklmnopqrstuvwxyz0123456789_.-/") != strlen(p->name))
		sch_error(ctx, yt_map_get(map, "name"), "'name' is not a sysctl name: '%s'",
			  p->name);
	return 0;
}

static const struct sch_field sysctl_fields[] = {
    {.name = "name",
     .type = SCH_STRING,
     .offset = offsetof(struct heal_sysctl_params, name),
     .required = true,
     .min = 1,
     .max = 256,
     .doc = "sysctl name (net.core.somaxconn)"},
    {.name = "value",
     .type = SCH_STRING,
     .offset = offsetof(struct heal_sysctl_params, value),
     .required = true,
     .min = 1,
     .max = 256,
     .doc = "value to write"},
    {.name = "raise_only",
     .type = SCH_BOOL,
     .offset = offsetof(struct heal_sysctl_params, raise_only),
     .def = "true",
     .doc = "an integer already at or above value is left alone, and the step skipped"},
    {.name = "restart",
     .type = SCH_BOOL,
     .offset = offsetof(struct heal_sysctl_params, restart),
     .def = "false",
     .doc = "the value takes effect when the target restarts (net.core.somaxconn is read at "
	    "listen()): run the target's restart command after writing it, as part of the same "
	    "change and approval"},
};

static const struct sch_struct sysctl_schema = {
    .name = "sysctl",
    .size = sizeof(struct heal_sysctl_params),
    .fields = sysctl_fields,
    .nfields = ARRAY_SIZE(sysctl_fields),
    .check = sysctl_check,
};

static const struct sch_field signal_fields[] = {
    {.name = "signal",
     .type = SCH_ENUM,
     .offset = offsetof(struct heal_signal_params, signal),
     .required = true,
     .names = heal_signal_names,
     .doc = "signal to send"},
};

static const struct sch_struct signal_schema = {
    .name = "signal",
    .size = sizeof(struct heal_signal_params),
    .fields = signal_fields,
    .nfields = ARRAY_SIZE(signal_fields),
};

static const struct sch_field restart_fields[] = {
    {.name = "grace",
     .type = SCH_DURATION,
     .offset = offsetof(struct heal_restart_params, grace_ms),
     .def = "10s",
     .min = 0,
     .max = 5 * MS_MIN,
     .doc = "time between the polite stop and SIGKILL"},
};

static const struct sch_struct restart_schema = {
    .name = "restart",
    .size = sizeof(struct heal_restart_params),
    .fields = restart_fields,
    .nfields = ARRAY_SIZE(restart_fields),
};

static const struct sch_field alert_fields[] = {
    {.name = "message",
     .type = SCH_STRING,
     .offset = offsetof(struct heal_alert_params, message),
     .min = 1,
     .max = 512,
     .doc = "text of the alert (the runbook's description if not given)"},
};

static const struct sch_struct alert_schema = {
    .name = "alert",
    .size = sizeof(struct heal_alert_params),
    .fields = alert_fields,
    .nfields = ARRAY_SIZE(alert_fields),
};

/* Indexed by enum heal_action_kind, in the order of heal_action_names. */
static const struct heal_action_desc actions[] = {
    {"rlimit_nofile", HEAL_ACT_RLIMIT_NOFILE, &rlimit_schema,
     "raise the soft descriptor limit of running processes (prlimit)"},
    {"nice", HEAL_ACT_NICE, &nice_schema, "change the scheduling priority of the processes"},
    {"cgroup_cpu_weight", HEAL_ACT_CGROUP_CPU_WEIGHT, &cpu_weight_schema,
     "change the CPU share of the target's cgroup"},
    {"cgroup_cpu_quota", HEAL_ACT_CGROUP_CPU_QUOTA, &cpu_quota_schema,
     "cap the CPU time of the target's cgroup"},
    {"cgroup_memory_high", HEAL_ACT_CGROUP_MEMORY_HIGH, &memory_high_schema,
     "throttle and reclaim the target's memory above a bound"},
    {"sysctl", HEAL_ACT_SYSCTL, &sysctl_schema, "write a kernel parameter"},
    {"signal", HEAL_ACT_SIGNAL, &signal_schema,
     "send a signal (SIGHUP to reload, SIGUSR1 to reopen logs)"},
    {"restart", HEAL_ACT_RESTART, &restart_schema,
     "restart the target through its unit or restart command"},
    {"alert", HEAL_ACT_ALERT, &alert_schema, "tell a human; changes nothing"},
};

const struct heal_action_desc *heal_action_desc(enum heal_action_kind kind)
{
	if ((size_t)kind >= ARRAY_SIZE(actions))
		return NULL;
	return &actions[kind];
}

const struct heal_action_desc *heal_action_lookup(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(actions); i++)
		if (streq(actions[i].name, name))
			return &actions[i];
	return NULL;
}

/* ---- conditions ---- */

static void pos_of(const struct yt_node *n, struct heal_pos *pos)
{
	pos->line = n ? n->line : 1;
	pos->col = n ? n->col : 1;
}

static void errnos_convert(struct sch_ctx *ctx, struct heal_condition *c, const struct yt_node *n)
{
	const struct yt_node *const *items = &n;
	size_t count = 1;
	char db[64];

	if (yt_is_null(n))
		return;
	if (n->kind == YT_SEQUENCE) {
		items = (const struct yt_node *const *)n->items;
		count = n->n;
		if (count > HEAL_MAX_ERRNOS) {
			sch_error(ctx, n, "'errno' has too many items (%zu), at most %d", count,
				  HEAL_MAX_ERRNOS);
			return;
		}
	} else if (n->kind != YT_SCALAR) {
		if (n->kind != YT_INVALID)
			sch_error(ctx, n, "'errno' must be an errno name or a list of them, not %s",
				  yt_describe(n, db, sizeof(db)));
		return;
	}
	for (size_t i = 0; i < count; i++) {
		const struct yt_node *it = items[i];
		int v;

		if (it->kind == YT_INVALID)
			continue;
		if (it->kind != YT_SCALAR) {
			sch_error(ctx, it, "each item of 'errno' must be an errno name, not %s",
				  yt_describe(it, db, sizeof(db)));
			continue;
		}
		v = heal_errno_lookup(it->str);
		if (!v) {
			sch_error(ctx, it, "unknown errno '%.64s'", it->str);
			continue;
		}
		c->errnos[c->n_errnos++] = v;
	}
}

static void threshold_convert(struct sch_ctx *ctx, struct heal_condition *c,
			      const struct yt_node *n)
{
	const struct obs_signal_desc *d = c->desc;
	const char *what = "a number such as 0, 1 or 2.5";
	char db[64];
	uint64_t u64;
	int r = -EINVAL;

	if (n->kind == YT_INVALID)
		return;
	if (n->kind == YT_SCALAR && !yt_is_null(n)) {
		switch (d->unit) {
		case OBS_UNIT_EVENTS:
			r = sch_parse_number(n->str, &c->threshold);
			break;
		case OBS_UNIT_TIME:
			what = "a duration such as 250us, 50ms or 1s";
			r = sch_parse_duration_ms(n->str, &c->threshold);
			break;
		case OBS_UNIT_BYTES:
			what = "a byte size such as 64KiB or 512MiB";
			r = sch_parse_bytes(n->str, &u64);
			c->threshold = (double)u64;
			break;
		case OBS_UNIT_RATIO:
			what = "a percentage such as 80%";
			r = sch_parse_percent(n->str, &c->threshold);
			break;
		}
	}
	if (r < 0)
		sch_error(ctx, n, "'threshold' must be %s for signal '%s', not %s", what, d->name,
			  yt_describe(n, db, sizeof(db)));
	else if (c->threshold < 0)
		sch_error(ctx, n, "'threshold' must not be negative, not %s",
			  yt_describe(n, db, sizeof(db)));
}

static int condition_check(struct sch_ctx *ctx, void *obj, const struct yt_node *map)
{
	struct heal_condition *c = obj;
	const struct yt_node *errno_node = yt_map_get(map, "errno");
	const struct yt_node *syscall = yt_map_get(map, "syscall");
	const struct yt_node *threshold = yt_map_get(map, "threshold");
	const struct obs_signal_desc *d;
	char names[512];

	const struct yt_node *window = yt_map_get(map, "window") ?: map;

	if (window)
		c->window_pos = (struct heal_pos){window->line, window->col};
	if (errno_node)
		errnos_convert(ctx, c, errno_node);
	if (c->syscall && sch_ok(ctx, "syscall") &&
	    strspn(c->syscall, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(c->syscall))
		sch_error(ctx, syscall, "'syscall' is not a syscall name: '%s'", c->syscall);
	if (!c->signal || !sch_ok(ctx, "signal"))
		return 0;
	d = c->desc = obs_signal_lookup(c->signal);
	if (!d) {
		const struct obs_signal_desc *all;
		unsigned n;
		size_t o = 0;

		all = obs_signals(&n);
		names[0] = '\0';
		for (unsigned i = 0; i < n && o < sizeof(names); i++)
			o += (size_t)snprintf(names + o, sizeof(names) - o, "%s%s", i ? ", " : "",
					      all[i].name);
		return sch_error(ctx, yt_map_get(map, "signal"),
				 "unknown signal '%s'; known signals: %s", c->signal, names);
	}
	if (errno_node && !(d->selectors & OBS_SEL_ERRNO))
		sch_error(ctx, errno_node, "'errno' does not apply to signal '%s'", d->name);
	if (syscall && !(d->selectors & OBS_SEL_SYSCALL))
		sch_error(ctx, syscall, "'syscall' does not apply to signal '%s'", d->name);
	if (sch_ok(ctx, "aggregation") && !(d->aggs & OBS_AGG_BIT(c->aggregation))) {
		size_t o = 0;

		names[0] = '\0';
		for (int a = 0; a < OBS_AGG_COUNT_ && o < sizeof(names); a++)
			if (d->aggs & OBS_AGG_BIT(a))
				o += (size_t)snprintf(names + o, sizeof(names) - o, "%s%s",
						      o ? ", " : "", obs_agg_names[a]);
		sch_error(ctx, yt_map_get(map, "aggregation"),
			  "aggregation '%s' does not apply to signal '%s'; use one of %s",
			  obs_agg_names[c->aggregation], d->name, names);
	}
	if (threshold)
		threshold_convert(ctx, c, threshold);
	return 0;
}

#define CND(f) offsetof(struct heal_condition, f)
static const struct sch_field condition_fields[] = {
    {.name = "signal",
     .type = SCH_STRING,
     .offset = CND(signal),
     .required = true,
     .min = 1,
     .max = 64,
     .doc = "a signal of the observation table (docs/config.md)"},
    {.name = "errno",
     .type = SCH_CUSTOM,
     .doc = "syscall_errors: only these errno names (one or a list of at most 8)"},
    {.name = "syscall",
     .type = SCH_STRING,
     .offset = CND(syscall),
     .min = 1,
     .max = 32,
     .doc = "syscall signals: only this syscall (openat, accept4, ...)"},
    {.name = "aggregation",
     .type = SCH_ENUM,
     .offset = CND(aggregation),
     .required = true,
     .names = obs_agg_names,
     .doc = "how the window is summarised"},
    {.name = "window",
     .type = SCH_DURATION,
     .offset = CND(window_ms),
     .def = "10s",
     .min = 1000,
     .max = MS_DAY,
     .doc = "the sliding window aggregated over"},
    {.name = "op",
     .type = SCH_ENUM,
     .offset = CND(op),
     .required = true,
     .names = heal_op_names,
     .doc = "comparison of the aggregate with threshold (quote it)"},
    {.name = "threshold",
     .type = SCH_CUSTOM,
     .required = true,
     .doc = "value in the signal's unit: number, duration, byte size or percentage"},
};
#undef CND

static const struct sch_struct condition_schema = {
    .name = "condition",
    .size = sizeof(struct heal_condition),
    .fields = condition_fields,
    .nfields = ARRAY_SIZE(condition_fields),
    .check = condition_check,
};

/* ---- sections ---- */

static int nonempty_check(struct sch_ctx *ctx, const struct yt_node *map, const char *key, size_t n,
			  const char *what)
{
	const struct yt_node *v = yt_map_get(map, key);

	if (v && n == 0 && sch_ok(ctx, key))
		return sch_error(ctx, v, "'%s' must have at least one %s", key, what);
	return 0;
}

static int detect_check(struct sch_ctx *ctx, void *obj, const struct yt_node *map)
{
	struct heal_detect *d = obj;

	nonempty_check(ctx, map, "when", d->n_when, "condition");
	return 0;
}

static const struct sch_field detect_fields[] = {
    {.name = "when",
     .type = SCH_STRUCT_LIST,
     .offset = offsetof(struct heal_detect, when),
     .count_offset = offsetof(struct heal_detect, n_when),
     .required = true,
     .sub = &condition_schema,
     .max_items = HEAL_MAX_CONDITIONS,
     .doc = "conditions that must all hold"},
    {.name = "for",
     .type = SCH_DURATION,
     .offset = offsetof(struct heal_detect, for_ms),
     .def = "0",
     .min = 0,
     .max = MS_DAY,
     .doc = "how long they must hold (debounce)"},
    {.name = "clear",
     .type = SCH_STRUCT_LIST,
     .offset = offsetof(struct heal_detect, clear),
     .count_offset = offsetof(struct heal_detect, n_clear),
     .sub = &condition_schema,
     .max_items = HEAL_MAX_CONDITIONS,
     .doc = "conditions that must all hold to clear (hysteresis); default: when no longer "
	    "holds"},
};

static const struct sch_struct detect_schema = {
    .name = "detect",
    .size = sizeof(struct heal_detect),
    .fields = detect_fields,
    .nfields = ARRAY_SIZE(detect_fields),
    .check = detect_check,
};

static int capture_check(struct sch_ctx *ctx, void *obj, const struct yt_node *map)
{
	struct heal_capture *c = obj;
	const struct yt_node *symbol = yt_map_get(map, "symbol");

	if (!sch_ok(ctx, "capture"))
		return 0;
	if (c->capture == HEAL_CAPTURE_FUNC_LATENCY && !symbol)
		sch_error(ctx, map, "capture 'func_latency' needs 'symbol'");
	if (c->capture != HEAL_CAPTURE_FUNC_LATENCY && symbol)
		sch_error(ctx, symbol, "'symbol' applies only to capture func_latency");
	return 0;
}

static const struct sch_field capture_fields[] = {
    {.name = "capture",
     .type = SCH_ENUM,
     .offset = offsetof(struct heal_capture, capture),
     .required = true,
     .names = heal_capture_names,
     .doc = "what to record"},
    {.name = "duration",
     .type = SCH_DURATION,
     .offset = offsetof(struct heal_capture, duration_ms),
     .def = "10s",
     .min = 1000,
     .max = 10 * MS_MIN,
     .doc = "how long (uprobes cost: keep it short)"},
    {.name = "symbol",
     .type = SCH_STRING,
     .offset = offsetof(struct heal_capture, symbol),
     .min = 1,
     .max = 256,
     .doc = "func_latency: the function, as symbol or binary:symbol"},
};

static const struct sch_struct capture_schema = {
    .name = "capture",
    .size = sizeof(struct heal_capture),
    .fields = capture_fields,
    .nfields = ARRAY_SIZE(capture_fields),
    .check = capture_check,
};

static int step_check(struct sch_ctx *ctx, void *obj, const struct yt_node *map)
{
	struct heal_step *s = obj;
	const struct yt_node *params = yt_map_get(map, "params");
	const struct heal_action_desc *a;
	char db[64];

	pos_of(map, &s->pos);
	pos_of(yt_map_get(map, "class"), &s->class_pos);
	if (s->class_name && sch_ok(ctx, "class") &&
	    strspn(s->class_name, "abcdefghijklmnopqrstuvwxyz0123456789_-") !=
		strlen(s->class_name))
		sch_error(ctx, yt_map_get(map, "class"), "'class' must match [a-z0-9_-]+, not '%s'",
			  s->class_name);
	if (!sch_ok(ctx, "action"))
		return 0;
	a = heal_action_desc(s->action);
	if (params && params->kind == YT_INVALID)
		return 0;
	if (params && !yt_is_null(params) && params->kind != YT_MAPPING)
		return sch_error(ctx, params, "'params' must be a mapping, not %s",
				 yt_describe(params, db, sizeof(db)));
	if (!params || yt_is_null(params)) {
		if (s->action == HEAL_ACT_NICE) /* one of two, which the schema cannot say */
			return sch_error(ctx, params ? params : map,
					 "action 'nice' needs 'params' with 'value' or 'idle'");
		for (size_t i = 0; i < a->params->nfields; i++)
			if (a->params->fields[i].required)
				return sch_error(ctx, params ? params : map,
						 "action '%s' needs 'params' with '%s'", a->name,
						 a->params->fields[i].name);
		params = NULL;
	}
	s->params_set = true;
	sch_convert(ctx, a->params, params, &s->params);
	return ctx->syserr;
}

static void step_release(void *obj)
{
	struct heal_step *s = obj;

	if (s->params_set)
		sch_free(heal_action_desc(s->action)->params, &s->params);
	s->params_set = false;
}

static const struct sch_field step_fields[] = {
    {.name = "action",
     .type = SCH_ENUM,
     .offset = offsetof(struct heal_step, action),
     .required = true,
     .names = heal_action_names,
     .doc = "what to do"},
    {.name = "class",
     .type = SCH_STRING,
     .offset = offsetof(struct heal_step, class_name),
     .required = true,
     .min = 1,
     .max = SAFE_NAME_MAX,
     .doc = "action class of the policy: decides approval"},
    {.name = "params", .type = SCH_CUSTOM, .doc = "parameters of the action"},
    {.name = "subject",
     .type = SCH_ENUM,
     .offset = offsetof(struct heal_step, subject),
     .def = "self",
     .names = heal_subject_names,
     .doc = "self: the target's process the action picks (most descriptors for "
	    "rlimit_nofile, most CPU for nice, the largest for the others); cpu_hog: the "
	    "process using the most CPU outside the target (never a protected one)"},
    {.name = "revert",
     .type = SCH_ENUM,
     .offset = offsetof(struct heal_step, revert),
     .def = "never",
     .names = heal_revert_names,
     .doc = "when a kept change is undone: never (an operator may), when_cleared (the "
	    "detect block cleared), when_idle (its process uses under 5% of a CPU for 10 s, "
	    "or exited)"},
    {.name = "why",
     .type = SCH_STRING,
     .offset = offsetof(struct heal_step, why),
     .max = 512,
     .doc = "reason recorded with the change"},
};

static const struct sch_struct step_schema = {
    .name = "step",
    .size = sizeof(struct heal_step),
    .fields = step_fields,
    .nfields = ARRAY_SIZE(step_fields),
    .check = step_check,
    .release = step_release,
};

static int verify_check(struct sch_ctx *ctx, void *obj, const struct yt_node *map)
{
	struct heal_verify *v = obj;

	nonempty_check(ctx, map, "when", v->n_when, "condition");
	return 0;
}

static const struct sch_field verify_fields[] = {
    {.name = "when",
     .type = SCH_STRUCT_LIST,
     .offset = offsetof(struct heal_verify, when),
     .count_offset = offsetof(struct heal_verify, n_when),
     .required = true,
     .sub = &condition_schema,
     .max_items = HEAL_MAX_CONDITIONS,
     .doc = "conditions that must all hold for the step to count as a success"},
    {.name = "within",
     .type = SCH_DURATION,
     .offset = offsetof(struct heal_verify, within_ms),
     .def = "1m",
     .min = 1000,
     .max = MS_HOUR,
     .doc = "deadline after the step is applied"},
};

static const struct sch_struct verify_schema = {
    .name = "verify",
    .size = sizeof(struct heal_verify),
    .fields = verify_fields,
    .nfields = ARRAY_SIZE(verify_fields),
    .check = verify_check,
};

static const struct sch_field limits_fields[] = {
    {.name = "cooldown",
     .type = SCH_DURATION,
     .offset = offsetof(struct heal_limits, cooldown_ms),
     .def = "10m",
     .min = 0,
     .max = 7 * MS_DAY,
     .doc = "wait between attempts on one target"},
    {.name = "max_attempts",
     .type = SCH_INT,
     .offset = offsetof(struct heal_limits, max_attempts),
     .def = "3",
     .min = 1,
     .max = 100,
     .doc = "attempts per episode; then only alert"},
    {.name = "backoff",
     .type = SCH_NUMBER,
     .offset = offsetof(struct heal_limits, backoff),
     .def = "2",
     .fmin = 1,
     .fmax = 10,
     .doc = "cooldown multiplier after a failed attempt"},
};

static const struct sch_struct limits_schema = {
    .name = "limits",
    .size = sizeof(struct heal_limits),
    .fields = limits_fields,
    .nfields = ARRAY_SIZE(limits_fields),
};

static int applies_check(struct sch_ctx *ctx, void *obj, const struct yt_node *map)
{
	static const char *const selectors[] = {"unit", "cgroup", "comm", "exe"};
	struct heal_applies_to *a = obj;
	const struct yt_node *target = yt_map_get(map, "target");

	pos_of(target, &a->target_pos);
	if (a->policy_targets && target)
		sch_error(ctx, yt_map_get(map, "policy_targets"),
			  "'policy_targets' and 'target' exclude each other");
	for (size_t i = 0; target && i < ARRAY_SIZE(selectors); i++) {
		const struct yt_node *sel = yt_map_get(map, selectors[i]);

		if (sel)
			sch_error(ctx, sel, "'%s' and 'target' exclude each other", selectors[i]);
	}
	if (a->exe && sch_ok(ctx, "exe") && a->exe[0] != '/')
		sch_error(ctx, yt_map_get(map, "exe"), "'exe' must be an absolute path, not '%s'",
			  a->exe);
	if (a->cgroup && sch_ok(ctx, "cgroup") && a->cgroup[0] != '/')
		sch_error(ctx, yt_map_get(map, "cgroup"),
			  "'cgroup' must be an absolute cgroup path, not '%s'", a->cgroup);
	return 0;
}

#define APP(f) offsetof(struct heal_applies_to, f)
static const struct sch_field applies_fields[] = {
    {.name = "policy_targets",
     .type = SCH_BOOL,
     .offset = APP(policy_targets),
     .def = "false",
     .doc = "every target of the policy, each on its own (not the rest of the host)"},
    {.name = "target",
     .type = SCH_STRING,
     .offset = APP(target),
     .min = 1,
     .max = SAFE_NAME_MAX,
     .doc = "a target of the policy"},
    {.name = "unit",
     .type = SCH_STRING,
     .offset = APP(unit),
     .min = 1,
     .max = 256,
     .doc = "processes of this systemd unit"},
    {.name = "cgroup",
     .type = SCH_STRING,
     .offset = APP(cgroup),
     .min = 1,
     .max = PATH_MAX - 1,
     .doc = "processes of this cgroup"},
    {.name = "comm",
     .type = SCH_STRING,
     .offset = APP(comm),
     .min = 1,
     .max = SAFE_COMM_MAX,
     .doc = "processes of this name"},
    {.name = "exe",
     .type = SCH_STRING,
     .offset = APP(exe),
     .min = 1,
     .max = PATH_MAX - 1,
     .doc = "processes of this executable"},
};
#undef APP

static const struct sch_struct applies_schema = {
    .name = "applies_to",
    .size = sizeof(struct heal_applies_to),
    .fields = applies_fields,
    .nfields = ARRAY_SIZE(applies_fields),
    .check = applies_check,
};

static int runbook_check(struct sch_ctx *ctx, void *obj, const struct yt_node *map)
{
	struct heal_runbook *rb = obj;

	pos_of(yt_map_get(map, "name"), &rb->name_pos);
	if (rb->name && sch_ok(ctx, "name") &&
	    strspn(rb->name, "abcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(rb->name))
		sch_error(ctx, yt_map_get(map, "name"), "'name' must match [a-z0-9_-]+, not '%s'",
			  rb->name);
	nonempty_check(ctx, map, "remediate", rb->n_remediate, "action");
	return 0;
}

#define RBK(f) offsetof(struct heal_runbook, f)
static const struct sch_field runbook_fields[] = {
    {.name = "name",
     .type = SCH_STRING,
     .offset = RBK(name),
     .required = true,
     .min = 1,
     .max = HEAL_NAME_MAX,
     .doc = "unique among runbooks; recorded with every change"},
    {.name = "description",
     .type = SCH_STRING,
     .offset = RBK(description),
     .max = 1024,
     .doc = "the failure it heals, for humans"},
    {.name = "enabled",
     .type = SCH_BOOL,
     .offset = RBK(enabled),
     .def = "true",
     .doc = "false: loaded and checked but never run"},
    {.name = "applies_to",
     .type = SCH_STRUCT,
     .offset = RBK(applies_to),
     .sub = &applies_schema,
     .doc = "which processes; default every process"},
    {.name = "detect",
     .type = SCH_STRUCT,
     .offset = RBK(detect),
     .required = true,
     .sub = &detect_schema,
     .doc = "when the failure is present"},
    {.name = "diagnose",
     .type = SCH_STRUCT_LIST,
     .offset = RBK(diagnose),
     .count_offset = RBK(n_diagnose),
     .sub = &capture_schema,
     .max_items = HEAL_MAX_CAPTURES,
     .doc = "what to capture before acting"},
    {.name = "remediate",
     .type = SCH_STRUCT_LIST,
     .offset = RBK(remediate),
     .count_offset = RBK(n_remediate),
     .required = true,
     .sub = &step_schema,
     .max_items = HEAL_MAX_STEPS,
     .doc = "the ladder of actions, tried in order"},
    {.name = "verify",
     .type = SCH_STRUCT,
     .offset = RBK(verify),
     .required = true,
     .sub = &verify_schema,
     .doc = "how success is recognised"},
    {.name = "limits",
     .type = SCH_STRUCT,
     .offset = RBK(limits),
     .sub = &limits_schema,
     .doc = "how often it may be tried"},
};
#undef RBK

const struct sch_struct heal_runbook_schema = {
    .name = "runbook",
    .size = sizeof(struct heal_runbook),
    .fields = runbook_fields,
    .nfields = ARRAY_SIZE(runbook_fields),
    .check = runbook_check,
};

/* ---- loading ---- */

/* An error found after the YAML tree is gone, at a recorded position. */
static void rb_error(struct hs_errors *errs, const struct heal_runbook *rb,
		     const struct heal_pos *pos, const char *fmt, ...) HS_PRINTF(4, 5);

static void rb_error(struct hs_errors *errs, const struct heal_runbook *rb,
		     const struct heal_pos *pos, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	yt_sanitize(msg);
	hs_errors_add(errs, rb->path, pos->line, pos->col, "%s", msg);
}

static int runbook_from_doc(const char *path, const struct yt_doc *doc, struct heal_runbook *rb,
			    struct hs_errors *errs)
{
	struct sch_ctx ctx = {.path = path, .errs = errs};
	int r;

	memset(rb, 0, sizeof(*rb));
	rb->path = strdup(path);
	if (!rb->path)
		return -ENOMEM;
	r = sch_convert_root(&ctx, &heal_runbook_schema, doc, rb);
	return r;
}

void heal_runbook_release(struct heal_runbook *rb)
{
	if (!rb)
		return;
	sch_free(&heal_runbook_schema, rb);
	free(rb->path);
	rb->path = NULL;
}

int heal_runbook_parse(const char *path, const char *buf, size_t len, struct heal_runbook *out,
		       struct hs_errors *errs)
{
	struct yt_doc *doc = NULL;
	size_t nerr = errs->n;
	int r;

	memset(out, 0, sizeof(*out));
	r = yt_parse(path, buf, len, &doc, errs);
	if (r < 0)
		return r;
	r = runbook_from_doc(path, doc, out, errs);
	yt_doc_free(doc);
	if (r == 0 && errs->n != nerr)
		r = -EINVAL;
	if (r < 0)
		heal_runbook_release(out);
	return r;
}

void heal_runbooks_free(struct heal_runbooks *rbs)
{
	if (!rbs)
		return;
	for (size_t i = 0; i < rbs->n; i++)
		heal_runbook_release(&rbs->v[i]);
	free(rbs->v);
	free(rbs->dir);
	free(rbs);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_runbook_name(const char *n)
{
	size_t len = strlen(n);

	return n[0] != '.' && len > 5 && streq(n + len - 5, ".yaml");
}

/* The *.yaml names of dirfd, sorted. */
static int list_dir(int dirfd, const char *dir, char ***out, size_t *n, struct hs_errors *errs)
{
	char **names = NULL;
	size_t count = 0;
	struct dirent *de;
	DIR *d;
	int fd;

	fd = dup(dirfd);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	names = calloc(HEAL_MAX_FILES, sizeof(*names));
	if (!names) {
		closedir(d);
		return -ENOMEM;
	}
	while ((de = readdir(d))) {
		if (!is_runbook_name(de->d_name))
			continue;
		if (count == HEAL_MAX_FILES) {
			hs_errors_add_file(errs, dir, "too many runbook files, at most %d",
					   HEAL_MAX_FILES);
			break;
		}
		names[count] = strdup(de->d_name);
		if (!names[count])
			break;
		count++;
	}
	closedir(d);
	qsort(names, count, sizeof(*names), cmp_names);
	*out = names;
	*n = count;
	return 0;
}

int heal_runbooks_load(const char *dir, uid_t owner, struct heal_runbooks **out,
		       struct hs_errors *errs)
{
	_cleanup_close_ int dfd = -1;
	struct heal_runbooks *rbs = NULL;
	char **names = NULL;
	size_t nnames = 0, nerr = errs->n, dlen;
	int r;

	*out = NULL;
	dfd = yt_open_checked(AT_FDCWD, dir, dir, owner, true, errs);
	if (dfd < 0)
		return dfd == -ENOMEM ? dfd : -EINVAL;
	r = list_dir(dfd, dir, &names, &nnames, errs);
	if (r < 0) {
		hs_errors_add_file(errs, dir, "cannot list directory: %s", strerror(-r));
		return r;
	}
	rbs = calloc(1, sizeof(*rbs));
	if (rbs)
		rbs->v = calloc(nnames ? nnames : 1, sizeof(*rbs->v));
	if (rbs)
		rbs->dir = strdup(dir);
	if (!rbs || !rbs->v || !rbs->dir) {
		r = -ENOMEM;
		goto out;
	}
	dlen = strlen(dir);
	while (dlen > 1 && dir[dlen - 1] == '/')
		dlen--;
	for (size_t i = 0; i < nnames; i++) {
		struct heal_runbook *rb = &rbs->v[rbs->n];
		struct yt_doc *doc = NULL;
		char *display = NULL;

		if (asprintf(&display, "%.*s/%s", (int)dlen, dir, names[i]) < 0) {
			r = -ENOMEM;
			goto out;
		}
		r = yt_load_at(dfd, names[i], display, owner, &doc, errs);
		if (r == 0) {
			r = runbook_from_doc(display, doc, rb, errs);
			yt_doc_free(doc);
			rbs->n++;
		}
		free(display);
		if (r == -ENOMEM)
			goto out;
		if (r == -EFBIG || !rb->name || !rb->name_pos.line)
			continue;
		for (size_t j = 0; j + 1 < rbs->n; j++) {
			const struct heal_runbook *o = &rbs->v[j];

			if (o->name && streq(o->name, rb->name)) {
				rb_error(errs, rb, &rb->name_pos,
					 "duplicate runbook name '%s', first in %s:%u:%u", rb->name,
					 o->path, o->name_pos.line, o->name_pos.col);
				break;
			}
		}
	}
	r = errs->n == nerr ? 0 : -EINVAL;
out:
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	if (r < 0) {
		heal_runbooks_free(rbs);
		return r;
	}
	*out = rbs;
	return 0;
}

/* ---- against the policy ---- */

static const char *policy_names(const struct safe_policy *pol, bool targets, char *buf, size_t size)
{
	size_t n = targets ? pol->n_targets : pol->n_classes, o = 0;

	if (n == 0)
		return targets ? "the policy defines no targets" : "the policy defines no classes";
	o = (size_t)snprintf(buf, size, "the policy defines ");
	for (size_t i = 0; i < n && o < size; i++) {
		const char *name = targets ? pol->targets[i].name : pol->classes[i].name;

		o += (size_t)snprintf(buf + o, size - o, "%s%s", i ? ", " : "", name);
	}
	return buf;
}

static bool list_has(char **list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (streq(list[i], s))
			return true;
	return false;
}

/* A syscall_latency condition sees latency only from the policy's windows
 * (observe.syscall_latency): its own window must hold one. */
static void check_latency_conditions(const struct heal_runbook *rb, const struct heal_condition *c,
				     size_t n, const struct safe_policy *pol,
				     struct hs_errors *errs)
{
	const struct safe_sc_latency *l = &pol->observe.sc_latency;
	char w[32], lw[32], le[32];

	for (size_t i = 0; i < n; i++) {
		if (!c[i].desc || strcmp(c[i].desc->name, "syscall_latency"))
			continue;
		if (l->every_ms <= 0)
			rb_error(errs, rb, &c[i].window_pos,
				 "signal 'syscall_latency' is never measured: the policy turns "
				 "syscall latency off (observe.syscall_latency.every: 0s)");
		else if (c[i].window_ms < l->every_ms)
			rb_error(errs, rb, &c[i].window_pos,
				 "a window of %s on 'syscall_latency' would often hold no latency "
				 "sample: the policy times syscalls %s out of every %s "
				 "(observe.syscall_latency); use a window of at least %s",
				 sch_format_duration(c[i].window_ms, w, sizeof(w)),
				 sch_format_duration(l->window_ms, lw, sizeof(lw)),
				 sch_format_duration(l->every_ms, le, sizeof(le)), le);
	}
}

static void check_runbook(const struct heal_runbook *rb, const struct safe_policy *pol,
			  struct hs_errors *errs)
{
	const struct heal_applies_to *a = &rb->applies_to;
	const struct safe_target *t = NULL;
	const char *comm, *unit;
	char buf[1024];

	if (a->target) {
		t = safe_policy_target(pol, a->target);
		if (!t)
			rb_error(errs, rb, &a->target_pos, "unknown target '%s'; %s", a->target,
				 policy_names(pol, true, buf, sizeof(buf)));
	}
	check_latency_conditions(rb, rb->detect.when, rb->detect.n_when, pol, errs);
	check_latency_conditions(rb, rb->detect.clear, rb->detect.n_clear, pol, errs);
	check_latency_conditions(rb, rb->verify.when, rb->verify.n_when, pol, errs);
	comm = a->comm ? a->comm : t ? t->comm : NULL;
	unit = a->unit ? a->unit : t ? t->unit : NULL;
	for (size_t i = 0; i < rb->n_remediate; i++) {
		const struct heal_step *s = &rb->remediate[i];
		const char *why;

		if (!safe_policy_class(pol, s->class_name))
			rb_error(errs, rb, &s->class_pos, "unknown action class '%s'; %s",
				 s->class_name, policy_names(pol, false, buf, sizeof(buf)));
		if (s->action == HEAL_ACT_SYSCTL &&
		    safe_policy_sysctl_allowed(pol, s->params.sysctl.name, s->params.sysctl.value,
					       &why) < 0)
			rb_error(errs, rb, &s->pos, "sysctl '%s' = '%s' is not allowed: %s",
				 s->params.sysctl.name, s->params.sysctl.value, why);
		if (s->action == HEAL_ACT_RESTART && t && !t->unit && !t->restart && !t->cgroup)
			rb_error(errs, rb, &s->pos,
				 "action 'restart' needs target '%s' to have a unit, a cgroup "
				 "or a restart command",
				 t->name);
		if (s->action == HEAL_ACT_ALERT || s->action == HEAL_ACT_SYSCTL)
			continue;
		if (comm && list_has(pol->protect.processes, pol->protect.n_processes, comm))
			rb_error(errs, rb, &s->pos,
				 "action '%s' would change process '%s', which the policy "
				 "protects",
				 heal_action_names[s->action], comm);
		if (unit && list_has(pol->protect.units, pol->protect.n_units, unit))
			rb_error(errs, rb, &s->pos,
				 "action '%s' would change unit '%s', which the policy "
				 "protects",
				 heal_action_names[s->action], unit);
	}
}

int heal_runbooks_check_policy(const struct heal_runbooks *rbs, const struct safe_policy *pol,
			       struct hs_errors *errs)
{
	size_t nerr = errs->n;

	for (size_t i = 0; i < rbs->n; i++)
		check_runbook(&rbs->v[i], pol, errs);
	return errs->n == nerr ? 0 : -EINVAL;
}
