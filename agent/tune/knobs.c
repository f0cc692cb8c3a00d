/* knobs.c - the knob registry of knobs.h: policy knobs to search dimensions and requests.
 *
 * One function per question the tuner asks of a knob (where is it, what does it hold, how far
 * may it go, what request sets it), each a switch over the four kinds, so that a new kind is
 * one case in each. Reads go through act_read() (the same place and syntax as the writes),
 * except a file knob's file, which no actuator handles yet. Values cross as integers in
 * decimal; a sysctl of several numbers ("4096 131072 6291456") is read and written whole with
 * one number replaced.
 */
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include "tune/knobs.h"
#include "lib/util.h"

_Static_assert(TUNE_MAX_KNOBS == TUNE_MAX_DIMS, "a job searches all its knobs at once");
_Static_assert(SAFE_MAX_TUNE_TRIALS == TUNE_MAX_TRIALS, "max_trials is the search's budget");
_Static_assert(TUNE_STRATEGY_COUNT == 2, "safe_tune_strategy_names follows enum tune_strategy");

#define WORDS_MAX 8 /* numbers of one sysctl value (field is 1..8) */

static int why_set(char *why, size_t n, int err, const char *fmt, ...) HS_PRINTF(4, 5);

static int why_set(char *why, size_t n, int err, const char *fmt, ...)
{
	va_list ap;

	if (why && n) {
		va_start(ap, fmt);
		vsnprintf(why, n, fmt, ap);
		va_end(ap);
	}
	return err;
}

static void sysctl_dotted(const char *in, char *out, size_t size)
{
	hs_strlcpy(out, in, size);
	for (char *c = out; *c; c++)
		if (*c == '/')
			*c = '.';
}

/* ---- the registry ---- */

int tune_knob_from_policy(const struct safe_tune_knob *sk, struct tune_knob *k, char *why, size_t n)
{
	const char *root = ACT_CGROUP_ROOT;
	size_t rl = strlen(root);
	int w;

	memset(k, 0, sizeof(*k));
	k->kind = sk->kind;
	switch (sk->kind) {
	case SAFE_KNOB_SYSCTL:
		if (!sk->sysctl)
			break;
		k->act = ACT_KIND_SYSCTL;
		sysctl_dotted(sk->sysctl, k->name, sizeof(k->name));
		k->field = (int)sk->field;
		k->netns_target = sk->netns == SAFE_NETNS_TARGET && !strncmp(k->name, "net.", 4);
		break;
	case SAFE_KNOB_CGROUP_FILE:
		if (!sk->cgroup_file)
			break;
		k->act = ACT_KIND_CGROUP;
		hs_strlcpy(k->name, sk->cgroup_file, sizeof(k->name));
		if (sk->cgroup) {
			if (!strncmp(sk->cgroup, root, rl) &&
			    (!sk->cgroup[rl] || sk->cgroup[rl] == '/'))
				w = snprintf(k->cgroup, sizeof(k->cgroup), "%s", sk->cgroup);
			else
				w = snprintf(k->cgroup, sizeof(k->cgroup), "%s%s", root,
					     sk->cgroup);
			if (w < 0 || (size_t)w >= sizeof(k->cgroup))
				return why_set(why, n, -EINVAL, "cgroup '%s' is too long",
					       sk->cgroup);
		}
		break;
	case SAFE_KNOB_RLIMIT:
		if (!sk->rlimit)
			break;
		k->act = ACT_KIND_RLIMIT;
		hs_strlcpy(k->name, sk->rlimit, sizeof(k->name));
		k->resource = act_rlimit_from_name(sk->rlimit);
		if (k->resource < 0)
			return why_set(why, n, -EINVAL, "unknown rlimit '%s'", sk->rlimit);
		break;
	case SAFE_KNOB_FILE:
		if (!sk->file)
			break;
		k->act = ACT_KIND_FILE;
		if (hs_strlcpy(k->file, sk->file, sizeof(k->file)) < 0 || k->file[0] != '/')
			return why_set(why, n, -EINVAL, "file '%s' is not an absolute path",
				       sk->file);
		break;
	default:
		return why_set(why, n, -EINVAL, "knob of unknown kind %d", sk->kind);
	}
	if (!k->name[0] && !k->file[0])
		return why_set(why, n, -EINVAL, "knob without a name");
	k->min = sk->min;
	k->max = sk->max;
	k->step_factor = sk->step_factor;
	k->step = sk->step_by;
	k->restart = sk->restart;
	if (sk->bounded_by)
		sysctl_dotted(sk->bounded_by, k->bounded_by, sizeof(k->bounded_by));
	if (k->min >= k->max || !(k->step >= 1) || (k->step_factor && (k->step <= 1 || k->min < 1)))
		return why_set(why, n, -EINVAL,
			       "knob '%s' has no valid range and step: the policy "
			       "was not checked",
			       k->name[0] ? k->name : k->file);
	return 0;
}

static int job_from_policy(const struct safe_policy *p, const struct safe_tune_job *sj,
			   struct tune_job *j, char *why, size_t n)
{
	int r;

	if (!sj->name || !sj->target || !sj->class || sj->n_knobs == 0 ||
	    sj->n_knobs > TUNE_MAX_KNOBS || sj->strategy < 0 ||
	    sj->strategy >= TUNE_STRATEGY_COUNT || sj->max_trials < 1 ||
	    sj->max_trials > TUNE_MAX_TRIALS)
		return why_set(why, n, -EINVAL,
			       "tuning job '%s' is incomplete: the policy was not "
			       "checked",
			       sj->name ? sj->name : "?");
	if (!safe_policy_target(p, sj->target) || !safe_policy_class(p, sj->class))
		return why_set(why, n, -EINVAL, "tuning job '%s': unknown target or class",
			       sj->name);
	hs_strlcpy(j->name, sj->name, sizeof(j->name));
	hs_strlcpy(j->target, sj->target, sizeof(j->target));
	hs_strlcpy(j->class, sj->class, sizeof(j->class));
	j->strategy = (enum tune_strategy)sj->strategy;
	j->max_trials = (unsigned)sj->max_trials;
	j->reapply = sj->reapply;
	if (sj->n_objective > TUNE_MAX_TERMS)
		return why_set(why, n, -EINVAL, "tuning job '%s': too many objective terms",
			       sj->name);
	for (size_t i = 0; i < sj->n_objective; i++) {
		if (!sj->objective[i].target || !safe_policy_target(p, sj->objective[i].target))
			return why_set(why, n, -EINVAL, "tuning job '%s': unknown objective target",
				       sj->name);
		hs_strlcpy(j->terms[i].target, sj->objective[i].target, sizeof(j->terms[i].target));
		j->terms[i].weight = sj->objective[i].weight;
	}
	j->n_terms = sj->n_objective;
	if (j->n_terms == 0) {
		hs_strlcpy(j->terms[0].target, sj->target, sizeof(j->terms[0].target));
		j->terms[0].weight = 1;
		j->n_terms = 1;
	}
	j->n_knobs = sj->n_knobs;
	for (size_t i = 0; i < sj->n_knobs; i++) {
		struct tune_knob *k = &j->knobs[i];
		char d[128];

		r = tune_knob_from_policy(&sj->knobs[i], k, why, n);
		if (r)
			return r;
		/* The agent's own files are protected after the policy was loaded. */
		if ((k->file[0] && safe_policy_path_protected(p, k->file)) ||
		    (k->cgroup[0] && safe_policy_path_protected(p, k->cgroup))) {
			tune_knob_describe(k, d, sizeof(d));
			return why_set(why, n, -EPERM, "tuning job '%s': knob %s is protected",
				       j->name, d);
		}
	}
	return 0;
}

int tune_registry_build(const struct safe_policy *p, struct tune_registry **out, char *why,
			size_t n)
{
	struct tune_registry *reg;
	int r = 0;

	*out = NULL;
	if (!p)
		return why_set(why, n, -EINVAL, "no policy");
	reg = calloc(1, sizeof(*reg));
	if (!reg)
		return -ENOMEM;
	if (p->tuning.n_jobs) {
		reg->jobs = calloc(p->tuning.n_jobs, sizeof(*reg->jobs));
		if (!reg->jobs) {
			free(reg);
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < p->tuning.n_jobs && !r; i++) {
		r = job_from_policy(p, &p->tuning.jobs[i], &reg->jobs[i], why, n);
		reg->n_jobs = i + 1;
	}
	if (r) {
		tune_registry_free(reg);
		return r;
	}
	*out = reg;
	return 0;
}

void tune_registry_free(struct tune_registry *r)
{
	if (!r)
		return;
	free(r->jobs);
	free(r);
}

const struct tune_job *tune_registry_job(const struct tune_registry *r, const char *name)
{
	for (size_t i = 0; r && i < r->n_jobs; i++)
		if (streq(r->jobs[i].name, name))
			return &r->jobs[i];
	return NULL;
}

int tune_knob_describe(const struct tune_knob *k, char *buf, size_t size)
{
	char field[16] = "";
	int w = -1;

	if (k->field)
		snprintf(field, sizeof(field), "[%d]", k->field);
	switch (k->kind) {
	case SAFE_KNOB_SYSCTL:
		w = snprintf(buf, size, "sysctl %s%s%s", k->name, field,
			     k->netns_target ? " (target netns)" : "");
		break;
	case SAFE_KNOB_CGROUP_FILE:
		if (k->cgroup[0])
			w = snprintf(buf, size, "cgroup %s of %s", k->name, k->cgroup);
		else
			w = snprintf(buf, size, "cgroup %s (target cgroup)", k->name);
		break;
	case SAFE_KNOB_RLIMIT:
		w = snprintf(buf, size, "rlimit %s (soft)", k->name);
		break;
	case SAFE_KNOB_FILE:
		w = snprintf(buf, size, "file %s", k->file);
		break;
	}
	return w < 0 || (size_t)w >= size ? -ENAMETOOLONG : 0;
}

int64_t tune_knob_round(const struct tune_knob *k, double value, int64_t max)
{
	double r;

	if (max > k->max || max < k->min)
		max = k->max;
	if (isnan(value) || value <= (double)k->min)
		return k->min;
	if (value >= (double)max)
		return max;
	r = round(value);
	return r < (double)k->min ? k->min : r > (double)max ? max : (int64_t)r;
}

/* ---- where a knob is ---- */

/* A request of k's actuator for its place, with value as its value (a read needs one that
 * passes act_validate(): the knob's min). */
static int knob_place(const struct tune_knob *k, pid_t pid, const char *cgdir, const char *value,
		      struct act_request *req, char *why, size_t n)
{
	const char *dir;

	switch (k->kind) {
	case SAFE_KNOB_SYSCTL:
		act_request_init(req, ACT_KIND_SYSCTL);
		hs_strlcpy(req->sysctl.name, k->name, sizeof(req->sysctl.name));
		hs_strlcpy(req->sysctl.value, value, sizeof(req->sysctl.value));
		if (k->netns_target) {
			if (pid <= 0)
				return why_set(
				    why, n, -ESRCH,
				    "sysctl %s is set in the target's network namespace, "
				    "and no process of the target was given",
				    k->name);
			req->sysctl.netns_pid = pid;
		}
		return 0;
	case SAFE_KNOB_CGROUP_FILE:
		act_request_init(req, ACT_KIND_CGROUP);
		dir = k->cgroup[0] ? k->cgroup : cgdir;
		if (!dir || !*dir)
			return why_set(
			    why, n, -ENOENT,
			    "cgroup %s is set in the target's cgroup, and the target has "
			    "none",
			    k->name);
		if (hs_strlcpy(req->cgroup.path, dir, sizeof(req->cgroup.path)) < 0)
			return why_set(why, n, -ENAMETOOLONG, "cgroup path '%s' is too long", dir);
		hs_strlcpy(req->cgroup.file, k->name, sizeof(req->cgroup.file));
		hs_strlcpy(req->cgroup.value, value, sizeof(req->cgroup.value));
		return 0;
	case SAFE_KNOB_RLIMIT:
		act_request_init(req, ACT_KIND_RLIMIT);
		if (pid <= 0)
			return why_set(why, n, -ESRCH,
				       "rlimit %s is set on a process of the target, and none was "
				       "given",
				       k->name);
		req->pid = pid;
		req->rlimit.resource = k->resource;
		req->rlimit.soft = (rlim_t)strtoull(value, NULL, 10);
		return 0;
	case SAFE_KNOB_FILE:
		act_request_init(req, ACT_KIND_FILE);
		hs_strlcpy(req->file.path, k->file, sizeof(req->file.path));
		hs_strlcpy(req->file.value, value, sizeof(req->file.value));
		return 0;
	}
	return why_set(why, n, -EINVAL, "knob of unknown kind %d", k->kind);
}

/* Splits a normalised value ("4096 131072 6291456") into at most WORDS_MAX words. */
static size_t split_words(char *s, char **words)
{
	char *save = NULL;
	size_t n = 0;

	for (char *tok = strtok_r(s, " \t", &save); tok && n < WORDS_MAX;
	     tok = strtok_r(NULL, " \t", &save))
		words[n++] = tok;
	return n;
}

/* A decimal integer, "unlimited" or "max" (INFINITY). */
static int parse_number(const char *s, double *v)
{
	long long x;
	char *end;

	if (streq(s, "unlimited") || streq(s, "max")) {
		*v = INFINITY;
		return 0;
	}
	errno = 0;
	x = strtoll(s, &end, 10);
	if (end == s || *end || errno)
		return -EPROTO;
	*v = (double)x;
	return 0;
}

/* The sysctl name (dotted) as text, read in the namespace of pid when > 0. */
static int sysctl_text(const char *name, pid_t pid, char *value, size_t size, char *why, size_t n)
{
	struct act_request req;
	int r;

	act_request_init(&req, ACT_KIND_SYSCTL);
	hs_strlcpy(req.sysctl.name, name, sizeof(req.sysctl.name));
	hs_strlcpy(req.sysctl.value, "0", sizeof(req.sysctl.value));
	req.sysctl.netns_pid = pid > 0 ? pid : 0;
	r = act_read(&req, value, size);
	if (r)
		return why_set(why, n, r, "cannot read sysctl %s: %s", name, strerror(-r));
	return 0;
}

/* ---- the questions of the tuner ---- */

int tune_knob_request(const struct tune_knob *k, double value, pid_t target_pid,
		      const char *target_cgroup_dir, struct act_request *req, char *why, size_t n)
{
	char text[ACT_VALUE_MAX], cur[ACT_VALUE_MAX], *words[WORDS_MAX];
	double v = round(value);
	size_t nw, o = 0;
	int r;

	if (!isfinite(value) || v < (double)k->min || v > (double)k->max)
		return why_set(why, n, -ERANGE, "value %g is outside %lld..%lld", value,
			       (long long)k->min, (long long)k->max);
	snprintf(text, sizeof(text), "%lld", (long long)v);
	r = knob_place(k, target_pid, target_cgroup_dir, text, req, why, n);
	if (r)
		return r;
	if (k->kind == SAFE_KNOB_SYSCTL && k->field) {
		/* Replace one number of several, in the place it is written. */
		r = act_read(req, cur, sizeof(cur));
		if (r)
			return why_set(why, n, r, "cannot read sysctl %s: %s", k->name,
				       strerror(-r));
		nw = split_words(cur, words);
		if ((size_t)k->field > nw)
			return why_set(why, n, -EPROTO, "sysctl %s holds %zu numbers, not %d",
				       k->name, nw, k->field);
		words[k->field - 1] = text;
		req->sysctl.value[0] = '\0';
		for (size_t i = 0; i < nw; i++)
			o += (size_t)snprintf(req->sysctl.value + o, sizeof(req->sysctl.value) - o,
					      "%s%s", i ? " " : "", words[i]);
		if (o >= sizeof(req->sysctl.value))
			return why_set(why, n, -E2BIG, "sysctl %s value is too long", k->name);
	}
	return act_validate(req, why, n);
}

/* The first integer of a file knob's file. */
static int file_read(const struct tune_knob *k, double *value, char *why, size_t n)
{
	char buf[ACT_VALUE_MAX], *words[WORDS_MAX];
	ssize_t len;
	int fd, r;

	fd = open(k->file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return why_set(why, n, -errno, "cannot open %s: %s", k->file, strerror(errno));
	len = read(fd, buf, sizeof(buf) - 1);
	r = len < 0 ? -errno : 0;
	close(fd);
	if (r)
		return why_set(why, n, r, "cannot read %s: %s", k->file, strerror(-r));
	buf[len] = '\0';
	for (char *c = buf; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	if (split_words(buf, words) == 0 || parse_number(words[0], value) || isinf(*value))
		return why_set(why, n, -EPROTO, "%s does not start with an integer", k->file);
	return 0;
}

int tune_knob_read(const struct tune_knob *k, pid_t target_pid, const char *target_cgroup_dir,
		   double *value, char *why, size_t n)
{
	static const char *const minus_one_unlimited[] = {
	    "cpu.cfs_quota_us", "memory.limit_in_bytes", "memory.soft_limit_in_bytes"};
	char text[ACT_VALUE_MAX], cur[ACT_VALUE_MAX], *words[WORDS_MAX], *colon;
	struct act_request req;
	size_t nw;
	int r;

	if (k->kind == SAFE_KNOB_FILE)
		return file_read(k, value, why, n);
	snprintf(text, sizeof(text), "%lld", (long long)k->min);
	r = knob_place(k, target_pid, target_cgroup_dir, text, &req, why, n);
	if (r)
		return r;
	r = act_read(&req, cur, sizeof(cur));
	if (r) {
		char d[ACT_PATH_MAX + 64];

		tune_knob_describe(k, d, sizeof(d));
		return why_set(why, n, r, "cannot read %s: %s", d, strerror(-r));
	}
	if (k->kind == SAFE_KNOB_RLIMIT && (colon = strchr(cur, ':')))
		*colon = '\0'; /* "soft:hard" */
	nw = split_words(cur, words);
	if (nw == 0)
		return why_set(why, n, -EPROTO, "%s holds nothing", k->name);
	if (k->kind == SAFE_KNOB_SYSCTL && (k->field ? (size_t)k->field > nw : nw > 1))
		return why_set(why, n, -EPROTO, "sysctl %s holds %zu numbers%s", k->name, nw,
			       k->field ? ", fewer than its field" : ": the knob needs a field");
	if (parse_number(words[k->field ? k->field - 1 : 0], value))
		return why_set(why, n, -EPROTO, "%s holds '%s', not a number", k->name,
			       words[k->field ? k->field - 1 : 0]);
	if (k->kind == SAFE_KNOB_CGROUP_FILE && *value == -1)
		for (size_t i = 0; i < ARRAY_SIZE(minus_one_unlimited); i++)
			if (streq(k->name, minus_one_unlimited[i]))
				*value = INFINITY;
	return 0;
}

int tune_knob_effective_max(const struct tune_knob *k, pid_t target_pid, int64_t *max, char *why,
			    size_t n)
{
	char cur[ACT_VALUE_MAX], *words[WORDS_MAX];
	const char *by = NULL;
	int64_t m = k->max;
	double b;
	size_t nw;
	int r;

	if (k->bounded_by[0]) {
		bool ns = k->netns_target && !strncmp(k->bounded_by, "net.", 4);

		if (ns && target_pid <= 0)
			return why_set(
			    why, n, -ESRCH,
			    "%s is read in the target's network namespace, and no process "
			    "of the target was given",
			    k->bounded_by);
		r = sysctl_text(k->bounded_by, ns ? target_pid : 0, cur, sizeof(cur), why, n);
		if (r)
			return r;
		nw = split_words(cur, words);
		if (nw == 0 || parse_number(words[nw - 1], &b))
			return why_set(why, n, -EPROTO, "sysctl %s holds '%s', not a number",
				       k->bounded_by, nw ? words[nw - 1] : "");
		if (b < (double)m) {
			m = (int64_t)b;
			by = k->bounded_by;
		}
	}
	if (k->kind == SAFE_KNOB_RLIMIT && target_pid > 0) {
		struct act_request req;
		char *colon;

		r = knob_place(k, target_pid, NULL, "0", &req, why, n);
		if (!r)
			r = act_read(&req, cur, sizeof(cur));
		if (r)
			return why_set(why, n, r, "cannot read rlimit %s of %d: %s", k->name,
				       (int)target_pid, strerror(-r));
		colon = strchr(cur, ':');
		if (!colon || parse_number(colon + 1, &b))
			return why_set(why, n, -EPROTO, "rlimit %s reads '%s'", k->name, cur);
		if (b < (double)m) {
			m = (int64_t)b;
			by = "the hard limit";
		}
	}
	if (m <= k->min)
		return why_set(why, n, -ERANGE,
			       "%s is %lld, which leaves nothing above the knob's min %lld to try",
			       by ? by : "max", (long long)m, (long long)k->min);
	*max = m;
	return 0;
}

int tune_knob_dim(const struct tune_knob *k, int64_t max, struct tune_dim *d)
{
	if (max <= k->min)
		return -ERANGE;
	memset(d, 0, sizeof(*d));
	d->min = (double)k->min;
	d->max = (double)(max < k->max ? max : k->max);
	d->integer = true;
	d->log_scale = k->step_factor;
	d->step = k->step_factor ? log2(k->step) : k->step;
	d->min_step = d->step / 8;
	if (!d->log_scale && d->min_step < 1)
		d->min_step = 1;
	return 0;
}
