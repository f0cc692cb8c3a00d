/* gate.c - the decision core of gate.h: the rules, in order, each with its reason.
 *
 * The rules are the table rules[] below, run in order; each returns 1 when it decided (and
 * filled in out), 0 to pass on. What a kind of change touches (paths, units, processes)
 * and how a dry run describes it are the table kinds[], one row per enum act_kind.
 *
 * Invariants: safe_gate_check() reads the state and never writes it; every decision has a
 * reason that names its rule; every string copied into the state fits, or is refused.
 */
#include <fnmatch.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "lib/schema.h"
#include "lib/util.h"
#include "safety/gate.h"

#define MS_HOUR 3600000LL

const char *const safe_decision_names[] = {
    "allow", "dry_run", "need_approval", "notify_then_allow", "deny", NULL,
};

const char *const safe_rule_names[] = {
    "none",	  "request",	  "mode",	  "path",  "unit",
    "process",	  "sysctl_deny",  "sysctl_range", "storm", "changes_per_hour",
    "concurrent", "blast_radius", "cooldown",	  "flap",  "class",
    NULL,
};

_Static_assert(ARRAY_SIZE(safe_rule_names) == SAFE_RULE_COUNT + 1, "one name per rule");

static const struct safe_gate_limits default_limits = {
    .storm_runbooks = 5,
    .storm_window_ms = 60000,
    .flap_changes = 3,
    .flap_window_ms = 120000,
    .cooldown_ms = 300000,
    .backoff = 2,
    .cooldown_max_ms = MS_HOUR,
};

/* ---- wording ---- */

static HS_PRINTF(4, 5) int decide(struct safe_decision_out *out, enum safe_decision d,
				  enum safe_rule rule, const char *fmt, ...)
{
	va_list ap;

	out->decision = d;
	out->rule = rule;
	va_start(ap, fmt);
	vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
	va_end(ap);
	return 1;
}

static const char *plural(int64_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

/* "15 min", "2 h", "90 s", "250 ms": the largest unit that divides ms exactly. */
static const char *fmt_duration(int64_t ms, char *buf, size_t size)
{
	static const struct {
		int64_t ms;
		const char *unit;
	} units[] = {{MS_HOUR, "h"}, {60000, "min"}, {1000, "s"}, {1, "ms"}};

	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (ms % units[i].ms == 0 || i == ARRAY_SIZE(units) - 1) {
			snprintf(buf, size, "%lld %s", (long long)(ms / units[i].ms),
				 units[i].unit);
			break;
		}
	}
	return buf;
}

/* "12:03:10", UTC. */
static const char *fmt_clock(int64_t ms, char *buf, size_t size)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, size, "%H:%M:%S", &tm))
		snprintf(buf, size, "%lld ms", (long long)ms);
	return buf;
}

static const char *fmt_rlim(rlim_t v, char *buf, size_t size)
{
	if (v == RLIM_INFINITY)
		snprintf(buf, size, "unlimited");
	else
		snprintf(buf, size, "%llu", (unsigned long long)v);
	return buf;
}

/* ---- what each kind of change touches, and how a dry run says it ---- */

static void describe_rlimit(const struct safe_proposal *p, char *buf, size_t size)
{
	const char *name = act_rlimit_name(p->req.rlimit.resource);
	char upper[32] = "", soft[32], hard[32];

	for (size_t i = 0; name && name[i] && i < sizeof(upper) - 1; i++)
		upper[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 'a' + 'A' : name[i]);
	fmt_rlim(p->req.rlimit.soft, soft, sizeof(soft));
	fmt_rlim(p->req.rlimit.hard, hard, sizeof(hard));
	snprintf(buf, size, "set RLIMIT_%s soft %s%s%s%s%s on pid %d", upper,
		 p->before ? p->before : "", p->before ? " -> " : "to ", soft,
		 p->req.rlimit.set_hard ? ", hard " : "", p->req.rlimit.set_hard ? hard : "",
		 (int)p->req.pid);
}

static void describe_sysctl(const struct safe_proposal *p, char *buf, size_t size)
{
	const struct act_sysctl *s = &p->req.sysctl;
	char ns[ACT_PATH_MAX + 48] = "";

	if (s->netns_pid > 0)
		snprintf(ns, sizeof(ns), " in the network namespace of pid %d", (int)s->netns_pid);
	else if (s->netns_path[0])
		snprintf(ns, sizeof(ns), " in the network namespace %s", s->netns_path);
	snprintf(buf, size, "set sysctl %s %s%s%s%s", s->name, p->before ? p->before : "",
		 p->before ? " -> " : "to ", s->value, ns);
}

static void describe_cgroup(const struct safe_proposal *p, char *buf, size_t size)
{
	const struct act_cgroup *c = &p->req.cgroup;

	snprintf(buf, size, "write %s/%s %s%s%s", c->path, c->file, p->before ? p->before : "",
		 p->before ? " -> " : "as ", c->value);
}

static void describe_nice(const struct safe_proposal *p, char *buf, size_t size)
{
	snprintf(buf, size, "renice pid %d %s%s%d", (int)p->req.pid, p->before ? p->before : "",
		 p->before ? " -> " : "to ", p->req.nice.value);
}

static void describe_signal(const struct safe_proposal *p, char *buf, size_t size)
{
	const char *abbrev = sigabbrev_np(p->req.signal.signo);

	if (abbrev)
		snprintf(buf, size, "send SIG%s to pid %d", abbrev, (int)p->req.pid);
	else
		snprintf(buf, size, "send signal %d to pid %d", p->req.signal.signo,
			 (int)p->req.pid);
}

static void describe_restart(const struct safe_proposal *p, char *buf, size_t size)
{
	snprintf(buf, size, "run '%s'", p->req.restart.command);
}

static void describe_patch(const struct safe_proposal *p, char *buf, size_t size)
{
	snprintf(buf, size, "redirect %s to %s in process %d (entry patch at 0x%llx)",
		 p->req.patch.function, p->req.patch.alternative, (int)p->req.pid,
		 (unsigned long long)p->req.patch.addr);
}

static int protect_cgroup(const struct safe_policy *pol, const struct safe_proposal *p,
			  struct safe_decision_out *out);
static int protect_sysctl(const struct safe_policy *pol, const struct safe_proposal *p,
			  struct safe_decision_out *out);
static int protect_restart(const struct safe_policy *pol, const struct safe_proposal *p,
			   struct safe_decision_out *out);
static int protect_file(const struct safe_policy *pol, const struct safe_proposal *p,
			struct safe_decision_out *out);

static void describe_file(const struct safe_proposal *p, char *buf, size_t size)
{
	snprintf(buf, size, "write %s %s%s%s", p->req.file.path, p->before ? p->before : "",
		 p->before ? " -> " : "as ", p->req.file.value);
}

struct gate_kind {
	/* Paths and units the change itself names (NULL: none); returns 1 when refused. */
	int (*protect)(const struct safe_policy *pol, const struct safe_proposal *p,
		       struct safe_decision_out *out);
	void (*describe)(const struct safe_proposal *p, char *buf, size_t size);
};

static const struct gate_kind kinds[ACT_KIND_COUNT] = {
    [ACT_KIND_RLIMIT] = {NULL, describe_rlimit},
    [ACT_KIND_SYSCTL] = {protect_sysctl, describe_sysctl},
    [ACT_KIND_CGROUP] = {protect_cgroup, describe_cgroup},
    [ACT_KIND_NICE] = {NULL, describe_nice},
    [ACT_KIND_SIGNAL] = {NULL, describe_signal},
    [ACT_KIND_RESTART] = {protect_restart, describe_restart},
    [ACT_KIND_PATCH] = {NULL, describe_patch},
    [ACT_KIND_FILE] = {protect_file, describe_file},
};

/* ---- protected things ---- */

/* Is path equal to prefix or below it, on a component boundary? */
static bool path_under(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);

	while (n > 1 && prefix[n - 1] == '/')
		n--;
	if (n == 0 || strncmp(path, prefix, n))
		return false;
	return path[n] == '\0' || path[n] == '/' || (n == 1 && prefix[0] == '/');
}

static int protect_path(const struct safe_policy *pol, const char *path,
			struct safe_decision_out *out)
{
	for (size_t i = 0; i < pol->n_self_paths; i++)
		if (path_under(path, pol->self_paths[i]))
			return decide(out, SAFE_DENY, SAFE_RULE_PATH,
				      "denied: '%s' is protected (the agent's own file)", path);
	if (pol->path && pol->path[0] == '/' && path_under(path, pol->path))
		return decide(out, SAFE_DENY, SAFE_RULE_PATH,
			      "denied: '%s' is protected (the agent's own file)", path);
	for (size_t i = 0; i < pol->protect.n_paths; i++)
		if (path_under(path, pol->protect.paths[i]))
			return decide(out, SAFE_DENY, SAFE_RULE_PATH,
				      "denied: '%s' is protected (protected.paths has '%s')", path,
				      pol->protect.paths[i]);
	return 0;
}

/* Unit names compare without a ".service" suffix: "sshd" names sshd.service. */
static bool unit_same(const char *a, size_t alen, const char *b)
{
	static const char suffix[] = ".service";
	size_t sl = sizeof(suffix) - 1, blen = strlen(b);

	if (alen > sl && !memcmp(a + alen - sl, suffix, sl))
		alen -= sl;
	if (blen > sl && streq(b + blen - sl, suffix))
		blen -= sl;
	return alen == blen && !memcmp(a, b, alen);
}

static const char *unit_protected(const struct safe_policy *pol, const char *name, size_t len)
{
	for (size_t i = 0; i < pol->protect.n_units; i++)
		if (unit_same(name, len, pol->protect.units[i]))
			return pol->protect.units[i];
	return NULL;
}

static int protect_unit(const struct safe_policy *pol, const char *name, size_t len,
			struct safe_decision_out *out)
{
	const char *unit = unit_protected(pol, name, len);

	if (!unit)
		return 0;
	return decide(out, SAFE_DENY, SAFE_RULE_UNIT, "denied: unit '%s' is protected", unit);
}

static int protect_process(const struct safe_policy *pol, const char *comm,
			   struct safe_decision_out *out)
{
	if (!comm || !*comm)
		return 0;
	for (size_t i = 0; i < pol->protect.n_processes; i++)
		if (streq(comm, pol->protect.processes[i]))
			return decide(out, SAFE_DENY, SAFE_RULE_PROCESS,
				      "denied: process '%s' is protected", comm);
	return 0;
}

static int protect_cgroup(const struct safe_policy *pol, const struct safe_proposal *p,
			  struct safe_decision_out *out)
{
	const struct act_cgroup *c = &p->req.cgroup;
	char dir[ACT_PATH_MAX + 32], file[ACT_PATH_MAX + ACT_FILE_MAX + 32];
	const char *s, *end;

	if (!strncmp(c->path, ACT_CGROUP_ROOT, strlen(ACT_CGROUP_ROOT)))
		snprintf(dir, sizeof(dir), "%s", c->path);
	else
		snprintf(dir, sizeof(dir), "%s/%s", ACT_CGROUP_ROOT, c->path);
	snprintf(file, sizeof(file), "%s/%s", dir, c->file);
	if (protect_path(pol, file, out))
		return 1;
	for (s = dir; *s; s = *end ? end + 1 : end) {
		end = strchrnul(s, '/');
		if (end > s && protect_unit(pol, s, (size_t)(end - s), out))
			return 1;
	}
	return 0;
}

static int protect_file(const struct safe_policy *pol, const struct safe_proposal *p,
			struct safe_decision_out *out)
{
	return protect_path(pol, p->req.file.path, out);
}

static int protect_sysctl(const struct safe_policy *pol, const struct safe_proposal *p,
			  struct safe_decision_out *out)
{
	char path[ACT_NAME_MAX + 16];

	snprintf(path, sizeof(path), "/proc/sys/%s", p->req.sysctl.name);
	for (char *c = path + strlen("/proc/sys/"); *c; c++)
		if (*c == '.')
			*c = '/';
	return protect_path(pol, path, out);
}

/* Every word of the command: an absolute path must not be protected, nor a word name a
 * protected unit. A shell command cannot be parsed for sure; this errs on the safe side. */
static int protect_restart(const struct safe_policy *pol, const struct safe_proposal *p,
			   struct safe_decision_out *out)
{
	static const char seps[] = " \t\n;&|<>()'\"`=$";
	const char *s = p->req.restart.command;

	while (*s) {
		size_t n = strcspn(s, seps);
		char word[ACT_CMD_MAX];

		if (n) {
			memcpy(word, s, n);
			word[n] = '\0';
			if (word[0] == '/' && protect_path(pol, word, out))
				return 1;
			if (protect_unit(pol, word, n, out))
				return 1;
		}
		s += n;
		s += strspn(s, seps);
	}
	return 0;
}

/* ---- the rules ---- */

struct gate_ctx {
	const struct safe_policy *pol;
	const struct safe_state *st;
	const struct safe_proposal *p;
	struct safe_decision_out *out;
};

static int rule_request(struct gate_ctx *g)
{
	char why[ACT_WHY_MAX];

	if (!g->p->source || !*g->p->source || strlen(g->p->source) >= SAFE_SOURCE_MAX)
		return decide(g->out, SAFE_DENY, SAFE_RULE_REQUEST,
			      "denied: the source must be a runbook or tuner id of 1 to %d bytes",
			      SAFE_SOURCE_MAX - 1);
	if (!g->p->target || !*g->p->target || strlen(g->p->target) > SAFE_NAME_MAX)
		return decide(g->out, SAFE_DENY, SAFE_RULE_REQUEST,
			      "denied: the target must be a name of 1 to %d bytes", SAFE_NAME_MAX);
	if (act_validate(&g->p->req, why, sizeof(why)) < 0)
		return decide(g->out, SAFE_DENY, SAFE_RULE_REQUEST, "denied: invalid request: %s",
			      why);
	return 0;
}

static int rule_mode(struct gate_ctx *g)
{
	if (g->pol->mode == SAFE_MODE_OBSERVE)
		return decide(g->out, SAFE_DENY, SAFE_RULE_MODE, "denied: mode is observe");
	return 0;
}

static int rule_protected(struct gate_ctx *g)
{
	const struct safe_target *t = safe_policy_target(g->pol, g->p->target);
	const struct gate_kind *k = &kinds[g->p->req.kind];

	if (t && t->unit && protect_unit(g->pol, t->unit, strlen(t->unit), g->out))
		return 1;
	if (t && protect_process(g->pol, t->comm, g->out))
		return 1;
	if (protect_process(g->pol, g->p->comm, g->out))
		return 1;
	return k->protect ? k->protect(g->pol, g->p, g->out) : 0;
}

/* "4096 87380 6291456": every number within min..max; 1 when refused. */
static int range_refuses(const struct safe_sysctl_range *r, const char *value, const char *name,
			 struct safe_decision_out *out)
{
	const char *s = value + strspn(value, " \t");

	if (!*s)
		return decide(out, SAFE_DENY, SAFE_RULE_SYSCTL_RANGE,
			      "denied: %s='' is not an integer (allowed range %lld..%lld)", name,
			      (long long)r->min, (long long)r->max);
	while (*s) {
		size_t n = strcspn(s, " \t");
		char num[32];
		int64_t v;

		if (n >= sizeof(num) || (memcpy(num, s, n), num[n] = '\0', sch_parse_int(num, &v)))
			return decide(out, SAFE_DENY, SAFE_RULE_SYSCTL_RANGE,
				      "denied: %s='%s' is not an integer (allowed range "
				      "%lld..%lld)",
				      name, value, (long long)r->min, (long long)r->max);
		if (v < r->min || v > r->max)
			return decide(out, SAFE_DENY, SAFE_RULE_SYSCTL_RANGE,
				      "denied: %s=%s is outside the allowed range %lld..%lld", name,
				      value, (long long)r->min, (long long)r->max);
		s += n;
		s += strspn(s, " \t");
	}
	return 0;
}

static void sysctl_dots(const char *in, char *out, size_t size)
{
	hs_strlcpy(out, in, size);
	for (char *c = out; *c; c++)
		if (*c == '/')
			*c = '.';
}

static int rule_sysctl(struct gate_ctx *g)
{
	const struct act_sysctl *s = &g->p->req.sysctl;
	char name[ACT_NAME_MAX], m[ACT_NAME_MAX + 160];

	if (g->p->req.kind != ACT_KIND_SYSCTL)
		return 0;
	sysctl_dots(s->name, name, sizeof(name));
	for (size_t i = 0; i < g->pol->protect.n_sysctl_deny; i++) {
		sysctl_dots(g->pol->protect.sysctl_deny[i], m, sizeof(m));
		if (!fnmatch(m, name, 0))
			return decide(g->out, SAFE_DENY, SAFE_RULE_SYSCTL_DENY,
				      "denied: sysctl '%s' is on the deny list", name);
	}
	for (size_t i = 0; i < g->pol->protect.n_sysctl_ranges; i++) {
		const struct safe_sysctl_range *r = &g->pol->protect.sysctl_ranges[i];

		sysctl_dots(r->name, m, sizeof(m));
		if (streq(m, name) && range_refuses(r, s->value, name, g->out))
			return 1;
	}
	return 0;
}

static int rule_storm(struct gate_ctx *g)
{
	if (!g->st->frozen)
		return 0;
	return decide(g->out, SAFE_DENY, SAFE_RULE_STORM,
		      "frozen: %d runbooks fired within %lld s (storm); no action until an "
		      "operator resumes",
		      g->st->frozen_runbooks, (long long)(g->st->limits.storm_window_ms / 1000));
}

int64_t safe_gate_changes_last_hour(const struct safe_state *st, int64_t now_ms)
{
	int64_t n = 0;

	for (unsigned i = 0; i < st->n_changes; i++) {
		const struct safe_change *c = &st->changes[i];

		if (c->budget && now_ms - c->at_ms < MS_HOUR)
			n++;
	}
	return n;
}

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

static int rule_budgets(struct gate_ctx *g)
{
	const struct safe_budgets *b = &g->pol->budgets;
	int64_t hour =
	    max64(safe_gate_changes_last_hour(g->st, g->p->now_ms), g->st->mem.changes_last_hour);
	int64_t active = max64(g->st->active, g->st->mem.active);
	if (g->p->part_of_change)
		return 0;

	if (hour >= b->changes_per_hour)
		return decide(g->out, SAFE_DENY, SAFE_RULE_CHANGES_PER_HOUR,
			      "denied: budget of %lld %s per hour used (%lld in the last hour)",
			      (long long)b->changes_per_hour,
			      plural(b->changes_per_hour, "change", "changes"), (long long)hour);
	if (active >= b->concurrent_changes)
		return decide(g->out, SAFE_DENY, SAFE_RULE_CONCURRENT,
			      "denied: %lld concurrent %s already (at most %lld)",
			      (long long)active, plural(active, "change", "changes"),
			      (long long)b->concurrent_changes);
	return 0;
}

static int rule_blast(struct gate_ctx *g)
{
	const struct safe_blast_radius *br = &g->pol->budgets.blast_radius;
	int targets = g->p->targets > 0 ? g->p->targets : 1;
	if (g->p->part_of_change)
		return 0;

	if (g->p->processes > br->processes)
		return decide(g->out, SAFE_DENY, SAFE_RULE_BLAST_RADIUS,
			      "denied: blast radius %d processes (at most %lld)", g->p->processes,
			      (long long)br->processes);
	if (targets > br->targets)
		return decide(g->out, SAFE_DENY, SAFE_RULE_BLAST_RADIUS,
			      "denied: blast radius %d targets (at most %lld)", targets,
			      (long long)br->targets);
	return 0;
}

static const struct safe_key *key_find(const struct safe_state *st, const char *source,
				       const char *target)
{
	for (size_t i = 0; i < SAFE_KEYS_MAX; i++) {
		const struct safe_key *k = &st->keys[i];

		if (k->source[0] && streq(k->source, source) && streq(k->target, target))
			return k;
	}
	return NULL;
}

static int64_t backoff_of(const struct safe_gate_limits *l, int failures)
{
	int64_t f = 1;

	for (int i = 0; i < failures && f < MS_HOUR * 24; i++)
		f *= l->backoff;
	return f;
}

static int rule_cooldown(struct gate_ctx *g)
{
	const struct safe_key *k = key_find(g->st, g->p->source, g->p->target);
	const struct safe_gate_limits *l = &g->st->limits;
	int64_t n = 0;
	char clock[32];
	if (g->p->part_of_change)
		return 0;

	if (k && g->p->now_ms < k->cooldown_until)
		return decide(g->out, SAFE_DENY, SAFE_RULE_COOLDOWN,
			      "denied: cooldown for %s on %s until %s (attempt %d, backoff x%lld)",
			      g->p->source, g->p->target,
			      fmt_clock(k->cooldown_until, clock, sizeof(clock)), k->failures + 1,
			      (long long)backoff_of(l, k->failures));
	for (unsigned i = 0; i < g->st->n_changes; i++) {
		const struct safe_change *c = &g->st->changes[i];

		if (streq(c->target, g->p->target) && g->p->now_ms - c->at_ms < l->flap_window_ms)
			n++;
	}
	if (n >= l->flap_changes)
		return decide(g->out, SAFE_DENY, SAFE_RULE_FLAP,
			      "denied: flapping: %lld changes to %s within %lld s", (long long)n,
			      g->p->target, (long long)(l->flap_window_ms / 1000));
	return 0;
}

static int rule_class(struct gate_ctx *g)
{
	const char *name = g->p->action_class;
	const struct safe_action_class *c = name ? safe_policy_class(g->pol, name) : NULL;
	bool dry = g->pol->mode == SAFE_MODE_DRY_RUN;
	char what[SAFE_REASON_MAX], dur[32];
	int64_t ttl;

	if (!name || !*name)
		return decide(g->out, SAFE_DENY, SAFE_RULE_CLASS,
			      "denied: the proposal names no action class");
	if (!c)
		return decide(g->out, SAFE_DENY, SAFE_RULE_CLASS,
			      "denied: action class '%s' is not in the policy", name);
	kinds[g->p->req.kind].describe(g->p, what, sizeof(what));
	if (g->p->approved && c->approval != SAFE_APPROVAL_NONE)
		return decide(g->out, SAFE_ALLOW, SAFE_RULE_NONE, "allowed: %s (approved)", what);
	switch (c->approval) {
	case SAFE_APPROVAL_NOTIFY:
		fmt_duration(c->delay_ms, dur, sizeof(dur));
		if (dry)
			return decide(g->out, SAFE_DRY_RUN, SAFE_RULE_MODE,
				      "dry run: would %s (after %s notice, class '%s')", what, dur,
				      name);
		g->out->not_before_ms = g->p->now_ms + c->delay_ms;
		return decide(g->out, SAFE_NOTIFY_THEN_ALLOW, SAFE_RULE_CLASS,
			      "notify: class '%s' will %s in %s unless rejected", name, what, dur);
	case SAFE_APPROVAL_REQUIRE:
		ttl = c->ttl_ms > 0 ? c->ttl_ms : g->pol->approvals.ttl_ms;
		fmt_duration(ttl, dur, sizeof(dur));
		if (dry)
			return decide(g->out, SAFE_DRY_RUN, SAFE_RULE_MODE,
				      "dry run: would %s (after approval, class '%s')", what, name);
		g->out->expires_at_ms = g->p->now_ms + ttl;
		return decide(g->out, SAFE_NEED_APPROVAL, SAFE_RULE_CLASS,
			      "approval required by class '%s' (expires in %s)", name, dur);
	default:
		if (dry)
			return decide(g->out, SAFE_DRY_RUN, SAFE_RULE_MODE, "dry run: would %s",
				      what);
		return decide(g->out, SAFE_ALLOW, SAFE_RULE_NONE, "allowed: %s", what);
	}
}

/* The order of gate.h; the last rule always decides. */
static int (*const rules[])(struct gate_ctx *g) = {
    rule_request, rule_mode,  rule_protected, rule_sysctl, rule_storm,
    rule_budgets, rule_blast, rule_cooldown,  rule_class,
};

int safe_gate_check(const struct safe_policy *policy, const struct safe_state *state,
		    const struct safe_proposal *p, struct safe_decision_out *out)
{
	struct gate_ctx g = {.pol = policy, .st = state, .p = p, .out = out};

	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (!policy || !state || !p) {
		decide(out, SAFE_DENY, SAFE_RULE_REQUEST, "denied: no policy, state or proposal");
		return -EINVAL;
	}
	if ((unsigned)p->req.kind >= ACT_KIND_COUNT) {
		decide(out, SAFE_DENY, SAFE_RULE_REQUEST, "denied: unknown kind of change %d",
		       (int)p->req.kind);
		return -EINVAL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(rules); i++)
		if (rules[i](&g))
			return 0;
	decide(out, SAFE_DENY, SAFE_RULE_REQUEST, "denied: no rule decided");
	return 0;
}

/* ---- accounting ---- */

void safe_gate_init(struct safe_state *state, const struct safe_gate_limits *limits)
{
	memset(state, 0, sizeof(*state));
	state->limits = limits ? *limits : default_limits;
}

void safe_gate_use_policy(struct safe_state *state, const struct safe_policy *policy)
{
	if (!state || !policy)
		return;
	state->limits.cooldown_ms = policy->budgets.cooldown_ms;
	if (policy->budgets.flapping.changes > 0) {
		state->limits.flap_changes = (int)policy->budgets.flapping.changes;
		state->limits.flap_window_ms = policy->budgets.flapping.within_ms;
	}
}

static void change_add(struct safe_state *st, const char *target, int64_t now, bool budget)
{
	struct safe_change *c;

	if (st->n_changes < SAFE_HISTORY_MAX) {
		c = &st->changes[st->n_changes++];
	} else {
		c = &st->changes[st->changes_head];
		st->changes_head = (st->changes_head + 1) % SAFE_HISTORY_MAX;
	}
	c->at_ms = now;
	c->budget = budget;
	hs_strlcpy(c->target, target, sizeof(c->target));
}

/* The entry of (source, target), else a free one, else the least recently used whose
 * cooldown is over; NULL when every entry is cooling down. */
static struct safe_key *key_get(struct safe_state *st, const char *source, const char *target,
				int64_t now)
{
	struct safe_key *k = (struct safe_key *)key_find(st, source, target), *lru = NULL;

	if (k)
		return k;
	for (size_t i = 0; i < SAFE_KEYS_MAX; i++) {
		k = &st->keys[i];
		if (!k->source[0]) {
			lru = k;
			break;
		}
		if (k->cooldown_until <= now && (!lru || k->last_ms < lru->last_ms))
			lru = k;
	}
	if (!lru)
		return NULL;
	memset(lru, 0, sizeof(*lru));
	hs_strlcpy(lru->source, source, sizeof(lru->source));
	hs_strlcpy(lru->target, target, sizeof(lru->target));
	return lru;
}

int safe_gate_record(struct safe_state *state, const struct safe_proposal *p,
		     enum safe_outcome outcome)
{
	const struct safe_gate_limits *l;
	struct safe_key *k;
	int64_t wait;

	if (!state || !p || !p->source || !p->target || !*p->source || !*p->target ||
	    strlen(p->source) >= SAFE_SOURCE_MAX || strlen(p->target) > SAFE_NAME_MAX ||
	    (unsigned)outcome >= SAFE_OUTCOME_COUNT)
		return -EINVAL;
	l = &state->limits;
	switch (outcome) {
	case SAFE_OUTCOME_APPLIED:
		state->active++;
		change_add(state, p->target, p->now_ms, true);
		break;
	case SAFE_OUTCOME_FAILED:
		change_add(state, p->target, p->now_ms, true);
		break;
	case SAFE_OUTCOME_KEPT:
		if (state->active > 0)
			state->active--;
		break;
	case SAFE_OUTCOME_ROLLED_BACK:
		if (state->active > 0)
			state->active--;
		change_add(state, p->target, p->now_ms, false);
		break;
	default:
		break;
	}
	k = key_get(state, p->source, p->target, p->now_ms);
	if (!k)
		return -ENOSPC;
	if (outcome == SAFE_OUTCOME_FAILED || outcome == SAFE_OUTCOME_ROLLED_BACK)
		k->failures++;
	else if (outcome == SAFE_OUTCOME_KEPT)
		k->failures = 0;
	wait = l->cooldown_ms * backoff_of(l, k->failures);
	if (wait > l->cooldown_max_ms || wait < 0)
		wait = l->cooldown_max_ms;
	k->cooldown_until = p->now_ms + wait;
	k->last_ms = p->now_ms;
	return 0;
}

int safe_gate_storm_note(struct safe_state *state, const char *source, int64_t now_ms)
{
	const struct safe_gate_limits *l;
	struct safe_firing *f = NULL;
	int distinct = 0;

	if (!state || !source || !*source || strlen(source) >= SAFE_SOURCE_MAX)
		return -EINVAL;
	l = &state->limits;
	/* Reuse the entry of source, else a stale one, else the oldest. */
	for (unsigned i = 0; i < state->n_firings; i++)
		if (streq(state->firings[i].source, source))
			f = &state->firings[i];
	for (unsigned i = 0; !f && i < state->n_firings; i++)
		if (now_ms - state->firings[i].at_ms >= l->storm_window_ms)
			f = &state->firings[i];
	if (!f && state->n_firings < SAFE_STORM_MAX)
		f = &state->firings[state->n_firings++];
	if (!f) {
		f = &state->firings[0];
		for (unsigned i = 1; i < state->n_firings; i++)
			if (state->firings[i].at_ms < f->at_ms)
				f = &state->firings[i];
	}
	hs_strlcpy(f->source, source, sizeof(f->source));
	f->at_ms = now_ms;
	for (unsigned i = 0; i < state->n_firings; i++)
		if (now_ms - state->firings[i].at_ms < l->storm_window_ms)
			distinct++;
	if (state->frozen || distinct < l->storm_runbooks)
		return 0;
	state->frozen = true;
	state->frozen_runbooks = distinct;
	state->frozen_at_ms = now_ms;
	return 1;
}

void safe_gate_unfreeze(struct safe_state *state)
{
	state->frozen = false;
	state->frozen_runbooks = 0;
	state->frozen_at_ms = 0;
	state->n_firings = 0;
	memset(state->firings, 0, sizeof(state->firings));
}
