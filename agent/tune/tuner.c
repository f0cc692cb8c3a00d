/* tuner.c - the tuning engine (see tuner.h): each policy tuning job as a state machine that
 * runs its search one canary trial at a time through the safety layer.
 *
 * Each tick: every job samples its target (struct safe_canary_sample from the snapshot and
 * the fitness), then advances by at most one phase that waits. Everything a job does is
 * logged with the change ids that `homeostat history`, `explain` and `rollback` take, and
 * audited in memory ("tune.*" events).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fitness/fitness.h"
#include "lib/log.h"
#include "lib/util.h"
#include "memory/memory.h"
#include "observe/targets.h"
#include "safety/canary.h"
#include "safety/changes.h"
#include "tune/knobs.h"
#include "tune/tuner.h"

#define BEFORE_MAX	   SAFE_CANARY_MAX_SAMPLES
#define ADMIN_CHECK_MS	   5000 /* kept values are checked this often */
#define RESTART_WARMUP	   3	/* ticks discarded after a restart: the target comes back */
#define NOTE_MAX	   512
#define WHY_MAX		   2048
#define ERROR_REPEAT_MS	   60000
#define TUNE_SOURCE_PREFIX "tune:"

enum phase { TP_WAIT, TP_BASELINE, TP_PROPOSE, TP_APPROVAL, TP_CANARY, TP_DONE, TP_BACKED_OFF };

static const char *const phase_names[] = {"wait",   "baseline", "propose",   "approval",
					  "canary", "done",	"backed_off"};

struct job {
	bool used, seen;
	struct tune_job def; /* the registry's, flat */
	char source[SAFE_SOURCE_MAX];
	enum phase phase;
	uint64_t phase_ms;
	/* the search; cur[] is what the host holds for each knob as far as the job knows */
	bool started;
	struct tune_search search;
	int64_t max[TUNE_MAX_KNOBS];
	double cur[TUNE_MAX_KNOBS];
	double fit_start; /* median fitness of the first baseline */
	uint64_t started_ms;
	/* the before window: samples of the settings in force, oldest first */
	struct safe_canary_sample *before;
	size_t nbefore;
	size_t nscored; /* of which with a fitness */
	/* the trial */
	double x[TUNE_MAX_KNOBS];
	bool have_cand; /* x came from the search and is not yet proposed */
	size_t first;	/* the first knob x moves: its change goes through the gate */
	unsigned trial;
	int64_t ids[TUNE_MAX_KNOBS]; /* its changes; ids[0] went through the gate */
	int knob_of[TUNE_MAX_KNOBS]; /* which knob each change sets */
	size_t nids;
	int64_t restart_id;
	bool notify;
	int64_t not_before_ms;
	struct safe_canary_run *run;
	/* what it kept: change ids still live and kept, per knob (0: none) */
	int64_t kept[TUNE_MAX_KNOBS];
	unsigned trials, nkept;
	uint64_t last_admin_ms, last_error_ms;
	char note[NOTE_MAX];
};

struct tune_engine {
	struct job jobs[TUNE_MAX_JOBS];
	struct tune_registry *reg;
	int busy; /* the job in approval or canary, -1: none */
};

struct ctx {
	struct tune_engine *e;
	const struct tune_env *env;
	struct job *j;
	int index;
};

static void note(struct ctx *c, const char *fmt, ...) HS_PRINTF(2, 3);
static void note(struct ctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->j->note, sizeof(c->j->note), fmt, ap);
	va_end(ap);
	log_info("tuning job %s: %s", c->j->def.name, c->j->note);
}

static void set_phase(struct ctx *c, enum phase p)
{
	c->j->phase = p;
	c->j->phase_ms = c->env->mono_ms;
	if (p == TP_APPROVAL || p == TP_CANARY)
		c->e->busy = c->index;
	else if (c->e->busy == c->index)
		c->e->busy = -1;
}

static const char *knob_text(const struct tune_knob *k, char *buf, size_t size)
{
	if (tune_knob_describe(k, buf, size))
		snprintf(buf, size, "%s", k->name[0] ? k->name : k->file);
	return buf;
}

/* ---- the target ---- */

/* A process of the target (the first member), 0 when it has none. */
static pid_t target_pid(const struct tune_env *env, const char *target)
{
	const struct obs_targets *t = env->obs ? obs_targets(env->obs) : NULL;
	pid_t self = getpid();
	int idx = t ? obs_targets_index(t, target) : -1;

	if (!t || idx <= 0)
		return 0;
	for (size_t i = 0; i < t->members[idx].n; i++)
		if (t->members[idx].pids[i] != self)
			return t->members[idx].pids[i];
	return 0;
}

/* The tick's sample of the job: the weighted mean of its objective's fitness (unknown unless
 * every term has one), the errors of every term, the RSS of its target, and as p99 the worst
 * run-queue delay of the tick (p99, ms) among the terms with a latency SLO: the delay a
 * trade-off protects, per tick (the fitness's latencies are over a 60 s window, longer than a
 * canary's blocks, and syscall latency is timed one second in five). False when its target
 * has no process. */
static bool sample_of(const struct tune_env *env, const struct tune_job *job,
		      struct safe_canary_sample *s)
{
	const struct obs_target_snap *t = obs_snapshot_target(env->snap, job->target);
	double num = 0, den = 0;

	*s = SAFE_CANARY_SAMPLE_UNKNOWN;
	if (!t || t->nprocs == 0)
		return false;
	s->errors = s->events = 0;
	for (size_t i = 0; i < job->n_terms; i++) {
		const char *name = job->terms[i].target;
		const struct obs_target_snap *tt = obs_snapshot_target(env->snap, name);
		const struct fit_score *f = env->fit ? fit_lookup(env->fit, name) : NULL;
		uint64_t errors, events;

		if (tt) {
			fit_error_counts(tt, &errors, &events);
			s->errors += errors;
			s->events += events;
		}
		num += job->terms[i].weight *
		       (f && !fit_learning(f, &env->policy->fitness) ? f->score : NAN);
		den += job->terms[i].weight;
		{
			const struct safe_target *pt = safe_policy_target(env->policy, name);

			if (tt && pt && pt->slo.p99_latency_ms > 0 && tt->rq_lat.count) {
				double ms = obs_hist_quantile(&tt->rq_lat, 0.99) / 1e6;

				s->p99_ms = isnan(s->p99_ms) || ms > s->p99_ms ? ms : s->p99_ms;
			}
		}
	}
	s->fitness = den > 0 ? num / den : NAN;
	s->rss_bytes = t->rss_bytes;
	return true;
}

static void before_reset(struct job *j)
{
	j->nbefore = 0;
	j->nscored = 0;
}

static void before_push(struct job *j, const struct safe_canary_sample *s)
{
	if (j->nbefore == BEFORE_MAX) {
		if (!isnan(j->before[0].fitness))
			j->nscored--;
		memmove(j->before, j->before + 1, (BEFORE_MAX - 1) * sizeof(*j->before));
		j->nbefore--;
	}
	j->before[j->nbefore++] = *s;
	if (!isnan(s->fitness))
		j->nscored++;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The median fitness of the before window, NAN if none. */
static double before_fitness(const struct job *j)
{
	double *v = malloc((j->nbefore ? j->nbefore : 1) * sizeof(*v)), m;
	size_t n = 0;

	if (!v)
		return NAN;
	for (size_t i = 0; i < j->nbefore; i++)
		if (!isnan(j->before[i].fitness))
			v[n++] = j->before[i].fitness;
	qsort(v, n, sizeof(*v), cmp_double);
	m = n ? (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2) : NAN;
	free(v);
	return m;
}

/* ---- requests ---- */

/* The request that sets knob i of the job to value. 0 or -errno with why. */
static int knob_request(struct ctx *c, size_t i, double value, struct act_request *req, char *why,
			size_t n)
{
	const struct tune_knob *k = &c->j->def.knobs[i];
	pid_t pid = target_pid(c->env, c->j->def.target);

	return tune_knob_request(k, value, pid, NULL, req, why, n);
}

struct veto_ctx {
	struct ctx *c;
};

/* The search's allowed(): memory refuses values like ones that failed. */
static bool allowed(const double *x, size_t n, void *ud)
{
	struct ctx *c = ((struct veto_ctx *)ud)->c;
	struct job *j = c->j;
	char why[MEM_WHY_MAX], kb[256];

	for (size_t i = 0; i < n; i++) {
		struct act_request req;
		int r;

		if (tune_knob_round(&j->def.knobs[i], x[i], j->max[i]) ==
		    tune_knob_round(&j->def.knobs[i], j->cur[i], j->max[i]))
			continue;
		if (knob_request(c, i, x[i], &req, why, sizeof(why)))
			return false;
		r = safe_changes_should_attempt(c->env->changes, j->def.target, &req, why,
						sizeof(why));
		if (r == 0) {
			log_info("tuning job %s: %s = %.0f not tried: %s", j->def.name,
				 knob_text(&j->def.knobs[i], kb, sizeof(kb)), x[i], why);
			return false;
		}
	}
	return true;
}

/* ---- start: the search from what the host holds ---- */

static void fill_in(struct ctx *c, struct safe_change_in *ci, const char *why);
static int restart_target(struct ctx *c, const char *why);

/* The newest change of the job to each knob (any state): what memory says the job left. */
struct newest_ctx {
	const char *source;
	size_t n;
	char knob[TUNE_MAX_KNOBS][ACT_NAME_MAX + ACT_PATH_MAX];
	int64_t id[TUNE_MAX_KNOBS];
	enum mem_state state[TUNE_MAX_KNOBS];
	bool abandoned[TUNE_MAX_KNOBS]; /* given up to an administrator (safe_changes_abandon) */
	char after[TUNE_MAX_KNOBS][ACT_VALUE_MAX];
};

static int newest_cb(const struct mem_change *ch, const struct mem_outcome *o, void *ud)
{
	struct newest_ctx *r = ud;

	if (!ch->source || strcmp(ch->source, r->source) || ch->kind == MEM_KIND_RESTART)
		return 0;
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->knob[i], ch->knob ?: "") && !r->id[i]) {
			r->id[i] = ch->id;
			r->state[i] = ch->state;
			r->abandoned[i] = o && o->failure_reason &&
					  !strncmp(o->failure_reason, "abandoned: ", 11);
			hs_strlcpy(r->after[i], ch->after ?: "", sizeof(r->after[i]));
		}
	return 0;
}

/* reapply: true: the values a previous daemon kept, which the host no longer holds (a
 * reboot, a restarted service), are applied again at once, through the gate like any
 * change but without a canary: they were judged when they were kept. Only when the job's
 * newest change to the knob is that KEPT one: a value rolled back or abandoned since stays
 * gone. */
static int newest_changes(struct ctx *c, struct newest_ctx *r)
{
	struct job *j = c->j;
	struct act_request req;
	char rwhy[256];
	int err;

	memset(r, 0, sizeof(*r));
	r->source = j->source;
	for (size_t i = 0; i < j->def.n_knobs; i++) {
		double at = j->cur[i] > (double)j->def.knobs[i].min ? j->cur[i]
								    : (double)j->def.knobs[i].min;

		if (isinf(at))
			at = (double)j->max[i];
		err = knob_request(c, i, at, &req, rwhy, sizeof(rwhy));
		if (err)
			return err;
		safe_change_knob(&req, r->knob[i], sizeof(r->knob[i]));
	}
	r->n = j->def.n_knobs;
	err = mem_history(c->env->mem, 0, newest_cb, r);
	return err < 0 ? err : 0;
}

static void reapply(struct ctx *c, const struct newest_ctx *rr)
{
	struct job *j = c->j;
	const struct newest_ctx r = *rr;
	char why[WHY_MAX], rwhy[256], kb[256];

	for (size_t i = 0; i < j->def.n_knobs; i++) {
		struct safe_change_in ci;
		struct safe_change_out out;
		long long v;

		if (!r.id[i] || r.state[i] != MEM_STATE_KEPT ||
		    sscanf(r.after[i], "%lld", &v) != 1 || (double)v == j->cur[i])
			continue;
		snprintf(why, sizeof(why),
			 "tuning job %s re-applies %s = %lld, kept by change %" PRId64
			 " (reapply: true); the host held %.0f",
			 j->def.name, knob_text(&j->def.knobs[i], kb, sizeof(kb)), v, r.id[i],
			 j->cur[i]);
		fill_in(c, &ci, why);
		rwhy[0] = '\0';
		if (knob_request(c, i, (double)v, &ci.p.req, rwhy, sizeof(rwhy)) ||
		    safe_changes_propose(c->env->changes, c->env->policy, &ci, &out)) {
			note(c, "cannot re-apply %s = %lld: %s",
			     knob_text(&j->def.knobs[i], kb, sizeof(kb)), v, rwhy);
			continue;
		}
		if (out.d.decision != SAFE_ALLOW || out.err) {
			note(c, "%s = %lld not re-applied: %s",
			     knob_text(&j->def.knobs[i], kb, sizeof(kb)), v,
			     out.err ? out.why : out.d.reason);
			continue;
		}
		snprintf(rwhy, sizeof(rwhy), "{\"reapplied_from\":%" PRId64 "}", r.id[i]);
		safe_changes_conclude(c->env->changes, out.change_id, true, MEM_VERDICT_KEEP, rwhy,
				      "re-applied: kept before");
		j->kept[i] = out.change_id;
		j->cur[i] = (double)v;
		note(c, "re-applied %s = %lld (change %" PRId64 ", kept by change %" PRId64 ")",
		     knob_text(&j->def.knobs[i], kb, sizeof(kb)), v, out.change_id, r.id[i]);
		if (j->def.knobs[i].restart) {
			restart_target(c, "the re-applied value takes effect when the target "
					  "restarts");
			if (j->restart_id)
				safe_changes_conclude(c->env->changes, j->restart_id, true,
						      MEM_VERDICT_NONE, NULL, "the restart ran");
			j->restart_id = 0;
		}
	}
}

/* Reads every knob and starts the search there. 0, or -errno with a note. */
static int search_start(struct ctx *c)
{
	struct job *j = c->j;
	struct tune_dim dims[TUNE_MAX_KNOBS];
	double start[TUNE_MAX_KNOBS];
	pid_t pid = target_pid(c->env, j->def.target);
	char why[512], kb[256];
	int r;

	for (size_t i = 0; i < j->def.n_knobs; i++) {
		const struct tune_knob *k = &j->def.knobs[i];
		double v;

		r = tune_knob_effective_max(k, pid, &j->max[i], why, sizeof(why));
		if (!r)
			r = tune_knob_dim(k, j->max[i], &dims[i]);
		if (!r)
			r = tune_knob_read(k, pid, NULL, &v, why, sizeof(why));
		if (r) {
			note(c, "cannot tune %s: %s", knob_text(k, kb, sizeof(kb)), why);
			return r;
		}
		j->cur[i] = v;
	}
	{
		struct newest_ctx last;

		if (!newest_changes(c, &last)) {
			for (size_t i = 0; i < j->def.n_knobs; i++)
				if (last.abandoned[i]) {
					note(c,
					     "%s was changed by someone else while homeostat held "
					     "it (change %" PRId64 "); homeostat does not tune it "
					     "again (rename the job in the policy to start over)",
					     knob_text(&j->def.knobs[i], kb, sizeof(kb)),
					     last.id[i]);
					set_phase(c, TP_BACKED_OFF);
					return -EPERM;
				}
			if (j->def.reapply)
				reapply(c, &last);
		}
	}
	for (size_t i = 0; i < j->def.n_knobs; i++) {
		double v = j->cur[i];

		start[i] = v < (double)j->def.knobs[i].min ? (double)j->def.knobs[i].min
			   : v > (double)j->max[i]	   ? (double)j->max[i]
							   : v;
	}
	r = tune_search_init(&j->search, (enum tune_strategy)j->def.strategy, dims, j->def.n_knobs,
			     start, (uint64_t)c->env->now_ms, (unsigned)j->def.max_trials);
	if (r) {
		note(c, "cannot start the search: %s", strerror(-r));
		return r;
	}
	j->started = true;
	j->started_ms = c->env->mono_ms;
	j->fit_start = before_fitness(j);
	return 0;
}

/* ---- trials ---- */

static void why_of(struct ctx *c, char *buf, size_t size)
{
	struct job *j = c->j;
	char kb[256];
	size_t n;

	n = (size_t)snprintf(buf, size, "tuning job %s, trial %u (%s search): ", j->def.name,
			     j->trial, tune_strategy_name(j->search.strategy) ?: "?");
	for (size_t i = 0; i < j->def.n_knobs && n < size; i++)
		n += (size_t)snprintf(
		    buf + n, size - n, "%s%s %.0f -> %lld", i ? ", " : "",
		    knob_text(&j->def.knobs[i], kb, sizeof(kb)), j->cur[i],
		    (long long)tune_knob_round(&j->def.knobs[i], j->x[i], j->max[i]));
	if (n < size)
		snprintf(buf + n, size - n,
			 "; fitness of the objective (%s) now %.3f (median of %zu ticks); kept "
			 "only if the canary "
			 "shows it better",
			 j->def.target, before_fitness(j), j->nbefore);
}

static void fill_in(struct ctx *c, struct safe_change_in *ci, const char *why)
{
	memset(ci, 0, sizeof(*ci));
	ci->p.source = c->j->source;
	ci->p.target = c->j->def.target;
	ci->p.action_class = c->j->def.class;
	ci->p.now_ms = c->env->now_ms;
	ci->p.processes = 1;
	ci->p.targets = 1;
	ci->force_dry_run = c->env->force_dry_run;
	ci->why = why;
}

static bool needs_restart(const struct ctx *c)
{
	for (size_t i = 0; i < c->j->nids; i++)
		if (c->j->def.knobs[c->j->knob_of[i]].restart)
			return true;
	return false;
}

/* The restart that makes a restart: true knob take effect (or its old value again). */
static int restart_target(struct ctx *c, const char *why)
{
	const struct safe_target *t = safe_policy_target(c->env->policy, c->j->def.target);
	struct safe_change_in ci;
	struct safe_change_out out;
	int err;

	char rwhy[256];

	fill_in(c, &ci, why);
	ci.p.part_of_change = true;
	ci.p.approved = true;
	err = safe_restart_request(t, 10000, &ci.p.req, rwhy, sizeof(rwhy));
	if (err) {
		note(c, "the value cannot take effect: %s", rwhy);
		return err;
	}
	err = safe_changes_propose(c->env->changes, c->env->policy, &ci, &out);
	if (err)
		return err;
	if (out.d.decision != SAFE_ALLOW || out.err) {
		note(c, "restart %" PRId64 " not made: %s", out.change_id,
		     out.err ? out.why : out.d.reason);
		return out.err ? out.err : -EPERM;
	}
	if (c->j->restart_id)
		safe_changes_conclude(c->env->changes, c->j->restart_id, true, MEM_VERDICT_NONE,
				      NULL, "the restart ran");
	c->j->restart_id = out.change_id;
	return 0;
}

static void trial_release(struct job *j)
{
	safe_canary_free(j->run);
	j->run = NULL;
	j->nids = 0;
	j->restart_id = 0;
}

/* Concludes every change of the trial; a rolled back restart knob restarts the target
 * again. */
static void trial_conclude(struct ctx *c, bool keep, enum safe_verdict v, const char *json,
			   const char *reason)
{
	struct job *j = c->j;
	bool restart = needs_restart(c);

	for (size_t i = 0; i < j->nids; i++) {
		int r =
		    safe_changes_conclude(c->env->changes, j->ids[i], keep, (int)v, json, reason);

		if (r && r != -ENOENT)
			log_warn_errno(r, "tuning job %s: concluding change %" PRId64, j->def.name,
				       j->ids[i]);
		if (keep) {
			int64_t *k = &j->kept[j->knob_of[i]];

			if (*k && *k != j->ids[i])
				safe_changes_forget(c->env->changes, *k,
						    "superseded by a later trial");
			*k = j->ids[i];
		}
	}
	if (keep)
		for (size_t i = 0; i < j->def.n_knobs; i++)
			j->cur[i] = (double)tune_knob_round(&j->def.knobs[i], j->x[i], j->max[i]);
	if (j->restart_id)
		safe_changes_conclude(c->env->changes, j->restart_id, true, MEM_VERDICT_NONE, NULL,
				      "the restart ran");
	j->restart_id = 0;
	if (!keep && restart)
		restart_target(c, "the old value takes effect when the target restarts");
	if (j->restart_id) {
		safe_changes_conclude(c->env->changes, j->restart_id, true, MEM_VERDICT_NONE, NULL,
				      "the restart ran");
		j->restart_id = 0;
	}
	j->trials++;
	if (keep)
		j->nkept++;
}

/* The search's outcome for a verdict. */
static enum tune_outcome outcome_of(bool breach, enum safe_verdict v)
{
	if (breach || v == SAFE_VERDICT_ROLLBACK)
		return TUNE_WORSE;
	return v == SAFE_VERDICT_KEEP ? TUNE_BETTER : TUNE_SAME;
}

static void report(struct ctx *c, enum tune_outcome o, double fitness)
{
	int r = tune_search_report(&c->j->search, c->j->x, o, fitness);

	if (r)
		log_warn_errno(r, "tuning job %s: the search refused the outcome", c->j->def.name);
}

/* The trial's changes are applied: the canary starts. A knob that takes effect at once is
 * judged in switchback blocks (off, on, off, ...: both arms see the same drift of the
 * workload), when the policy's canary is long enough for two blocks; one that needs a
 * restart, or a short canary, against the window before. */
static void canary_start(struct ctx *c)
{
	struct job *j = c->j;
	const struct safe_canary *pc = &c->env->policy->canary;
	bool restart = needs_restart(c);
	bool sw = !restart && pc->switchback_block_ms > 0 &&
		  pc->duration_ms >= 2 * pc->switchback_block_ms;
	struct safe_canary_cfg cfg;
	int r;

	safe_canary_cfg_init(&cfg, c->env->policy,
			     sw ? SAFE_CANARY_SWITCHBACK : SAFE_CANARY_BEFORE_AFTER);
	if (restart) {
		cfg.warmup_ticks = RESTART_WARMUP;
		if (restart_target(c, "the value takes effect when the target restarts")) {
			trial_conclude(c, false, SAFE_VERDICT_INCONCLUSIVE, NULL,
				       "the restart that makes it take effect failed");
			report(c, TUNE_REFUSED, NAN);
			before_reset(j);
			set_phase(c, TP_BASELINE);
			return;
		}
	}
	if (!sw && cfg.min_samples > j->nbefore)
		cfg.min_samples = j->nbefore ? j->nbefore : 1;
	r = sw ? safe_changes_switch_all(c->env->changes, j->ids, j->nids, false)
	       : 0; /* a switchback run starts with an off block */
	if (!r)
		r = safe_canary_new(&cfg, (int64_t)c->env->mono_ms, sw ? NULL : j->before,
				    sw ? 0 : j->nbefore, &j->run);
	if (r) {
		trial_conclude(c, false, SAFE_VERDICT_INCONCLUSIVE, NULL,
			       "the canary could not start");
		report(c, TUNE_REFUSED, NAN);
		before_reset(j);
		set_phase(c, TP_BASELINE);
		return;
	}
	if (sw)
		note(c,
		     "trial %u: change %" PRId64 " applied, switchback canary for %lld s in "
		     "blocks of %lld s (off first)",
		     j->trial, j->ids[0], (long long)(cfg.duration_ms / 1000),
		     (long long)(cfg.block_ms / 1000));
	else
		note(c,
		     "trial %u: change %" PRId64 " applied, canary for %lld s against %zu ticks "
		     "before",
		     j->trial, j->ids[0], (long long)(cfg.duration_ms / 1000), j->nbefore);
	set_phase(c, TP_CANARY);
}

/* The other knobs of the trial, as parts of the change the gate admitted. 0 or -errno. */
static int apply_rest(struct ctx *c, const char *why)
{
	struct job *j = c->j;
	char rwhy[256];

	for (size_t i = (size_t)j->knob_of[0] + 1; i < j->def.n_knobs; i++) {
		struct safe_change_in ci;
		struct safe_change_out out;
		int r;

		if (tune_knob_round(&j->def.knobs[i], j->x[i], j->max[i]) ==
		    tune_knob_round(&j->def.knobs[i], j->cur[i], j->max[i]))
			continue;
		fill_in(c, &ci, why);
		ci.p.part_of_change = true;
		ci.p.approved = true;
		r = knob_request(c, i, j->x[i], &ci.p.req, rwhy, sizeof(rwhy));
		if (!r)
			r = safe_changes_propose(c->env->changes, c->env->policy, &ci, &out);
		if (!r && (out.d.decision != SAFE_ALLOW || out.err))
			r = out.err ? out.err : -EPERM;
		if (r)
			return r;
		j->ids[j->nids] = out.change_id;
		j->knob_of[j->nids++] = (int)i;
	}
	return 0;
}

static void on_applied(struct ctx *c, const struct safe_change_out *out, const char *why)
{
	struct job *j = c->j;
	int r;

	j->ids[0] = out->change_id;
	j->nids = 1;
	r = apply_rest(c, why);
	if (r) {
		note(c, "trial %u: another knob could not be set (%s); rolled back", j->trial,
		     strerror(-r));
		trial_conclude(c, false, SAFE_VERDICT_INCONCLUSIVE, NULL,
			       "another knob of the trial could not be set");
		report(c, TUNE_REFUSED, NAN);
		before_reset(j);
		set_phase(c, TP_BASELINE);
		return;
	}
	canary_start(c);
}

/* An administrator changed a knob of the job: stop tuning it. */
static void back_off(struct ctx *c, const char *fmt, ...) HS_PRINTF(2, 3);
static void back_off(struct ctx *c, const char *fmt, ...)
{
	struct job *j = c->j;
	char why[NOTE_MAX];
	int64_t cid = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);

	for (size_t i = 0; i < j->def.n_knobs; i++)
		if (j->kept[i])
			cid = j->kept[i];
	log_notice("tuning job %s backs off: %s", j->def.name, why);
	mem_audit(c->env->mem, "homeostat", "tune.backoff", cid, "job %s: %s", j->def.name, why);
	for (size_t i = 0; i < j->def.n_knobs; i++)
		if (j->kept[i]) {
			safe_changes_abandon(c->env->changes, j->kept[i], why);
			j->kept[i] = 0;
		}
	hs_strlcpy(j->note, why, sizeof(j->note));
	set_phase(c, TP_BACKED_OFF);
}

/* Do the kept values still hold? Someone else changing one is an administrator's decision. */
static bool kept_hold(struct ctx *c)
{
	struct job *j = c->j;
	char kb[256];

	if (c->env->mono_ms - j->last_admin_ms < ADMIN_CHECK_MS)
		return true;
	j->last_admin_ms = c->env->mono_ms;
	for (size_t i = 0; i < j->def.n_knobs; i++) {
		struct safe_live *l =
		    j->kept[i] ? safe_changes_live(c->env->changes, j->kept[i]) : NULL;
		char now[ACT_VALUE_MAX];

		if (!l)
			continue;
		if (act_verify(&l->res.req, &l->res) == -ESTALE) {
			if (act_read(&l->res.req, now, sizeof(now)))
				snprintf(now, sizeof(now), "?");
			back_off(
			    c,
			    "%s was set to %s by change %" PRId64 " and now holds %s: changed "
			    "by someone else, so homeostat stops tuning it and leaves it alone",
			    knob_text(&j->def.knobs[i], kb, sizeof(kb)), l->res.after, j->kept[i],
			    now);
			return false;
		}
	}
	return true;
}

/* The search is over: the report. */
static void search_done(struct ctx *c)
{
	struct job *j = c->j;
	struct tune_stats st;
	const double *inc = tune_search_incumbent(&j->search, NULL);
	char vals[512], kb[256];
	size_t n = 0;

	tune_search_stats(&j->search, &st);
	vals[0] = '\0';
	for (size_t i = 0; inc && i < j->def.n_knobs && n < sizeof(vals); i++)
		n += (size_t)snprintf(
		    vals + n, sizeof(vals) - n, "%s%s = %lld", i ? ", " : "",
		    knob_text(&j->def.knobs[i], kb, sizeof(kb)),
		    (long long)tune_knob_round(&j->def.knobs[i], inc[i], j->max[i]));
	note(c,
	     "search %s after %u trials (%u kept, %u worse, %u no gain, %u refused, %u vetoed by "
	     "memory) in %.0f s: %s; fitness %.3f -> %.3f",
	     tune_stop_name(st.stop), st.evaluated, st.better, st.worse, st.same, st.refused,
	     st.vetoed, (double)(c->env->mono_ms - j->started_ms) / 1000.0, vals, j->fit_start,
	     before_fitness(j));
	mem_audit(c->env->mem, "homeostat", "tune.done", 0, "job %s: %s", j->def.name, j->note);
	set_phase(c, TP_DONE);
}

/* The candidate is settled (reported, or under way): the next one comes from the search. */
static void refused(struct ctx *c)
{
	report(c, TUNE_REFUSED, NAN);
	c->j->have_cand = false;
}

static void propose_step(struct ctx *c)
{
	struct job *j = c->j;
	struct veto_ctx vc = {c};
	struct safe_change_in ci;
	struct safe_change_out out;
	struct safe_decision_out pre;
	char why[WHY_MAX], rwhy[256];
	int r;

	if (c->env->paused)
		return;
	if (!j->have_cand) {
		r = tune_search_next(&j->search, j->x, allowed, &vc);
		if (r == -ENOENT) {
			search_done(c);
			return;
		}
		if (r) {
			note(c, "the search failed: %s", strerror(-r));
			set_phase(c, TP_DONE);
			return;
		}
		j->have_cand = true;
		j->trial++;
		j->first = 0;
		while (j->first < j->def.n_knobs &&
		       tune_knob_round(&j->def.knobs[j->first], j->x[j->first], j->max[j->first]) ==
			   tune_knob_round(&j->def.knobs[j->first], j->cur[j->first],
					   j->max[j->first]))
			j->first++;
		if (j->first == j->def.n_knobs) { /* nothing moves: the host already holds it */
			refused(c);
			return;
		}
	}
	why_of(c, why, sizeof(why));
	fill_in(c, &ci, why);
	r = knob_request(c, j->first, j->x[j->first], &ci.p.req, rwhy, sizeof(rwhy));
	if (r) {
		note(c, "trial %u not possible: %s", j->trial, rwhy);
		refused(c);
		return;
	}
	/* cooldowns, budgets and storms pass: wait for them without a record a tick */
	if (safe_changes_must_wait(c->env->changes, c->env->policy, &ci.p, &pre)) {
		if (strcmp(j->note, pre.reason))
			note(c, "%s", pre.reason);
		return;
	}
	r = safe_changes_propose(c->env->changes, c->env->policy, &ci, &out);
	if (r) {
		note(c, "trial %u not proposed: memory failed (%s)", j->trial, strerror(-r));
		return; /* again next tick */
	}
	j->knob_of[0] = (int)j->first;
	j->have_cand = false;
	switch (out.d.decision) {
	case SAFE_ALLOW:
		if (out.err) {
			note(c, "trial %u: change %" PRId64 " failed: %s", j->trial, out.change_id,
			     out.why);
			report(c, TUNE_REFUSED, NAN);
			return;
		}
		on_applied(c, &out, why);
		return;
	case SAFE_DRY_RUN:
		note(c,
		     "trial %u: change %" PRId64 " recorded, not made (%s); a dry run measures "
		     "nothing, the job stops here",
		     j->trial, out.change_id, out.d.reason);
		set_phase(c, TP_DONE);
		return;
	case SAFE_NEED_APPROVAL:
	case SAFE_NOTIFY_THEN_ALLOW:
		j->ids[0] = out.change_id;
		j->nids = 0;
		j->notify = out.d.decision == SAFE_NOTIFY_THEN_ALLOW;
		j->not_before_ms = out.d.not_before_ms;
		note(c, "trial %u: change %" PRId64 " (%s -> %s): %s; 'homeostat %s %" PRId64 "'",
		     j->trial, out.change_id, out.before[0] ? out.before : "-",
		     out.after[0] ? out.after : "-", out.d.reason, j->notify ? "reject" : "approve",
		     out.change_id);
		set_phase(c, TP_APPROVAL);
		return;
	case SAFE_DENY:
	default:
		note(c, "trial %u: change %" PRId64 " refused: %s", j->trial, out.change_id,
		     out.d.reason);
		report(c, TUNE_REFUSED, NAN);
		return;
	}
}

static void approval_step(struct ctx *c)
{
	struct job *j = c->j;
	struct safe_change_in ci;
	struct safe_change_out out;
	char why[512];

	fill_in(c, &ci, NULL);
	switch (safe_changes_await(c->env->changes, c->env->policy, j->ids[0], j->notify,
				   j->not_before_ms, c->env->now_ms, &ci, &out, why, sizeof(why))) {
	case SAFE_AWAIT_WAITING:
		return;
	case SAFE_AWAIT_APPLIED:
		if (out.err) {
			note(c, "trial %u: change %" PRId64 " approved, not applied: %s", j->trial,
			     j->ids[0], out.why);
			break;
		}
		note(c, "trial %u: change %" PRId64 " approved", j->trial, j->ids[0]);
		on_applied(c, &out, ci.why);
		return;
	case SAFE_AWAIT_DENIED:
		note(c,
		     "trial %u: change %" PRId64 " was rejected, or its approval expired; the "
		     "search looks elsewhere",
		     j->trial, j->ids[0]);
		break;
	default:
		note(c, "trial %u: change %" PRId64 " %s", j->trial, j->ids[0], why);
		break;
	}
	report(c, TUNE_REFUSED, NAN);
	set_phase(c, TP_PROPOSE);
}

static void canary_step(struct ctx *c, const struct safe_canary_sample *s, bool have)
{
	struct job *j = c->j;
	struct safe_canary_step step;
	char json[16384], kb[256];
	bool breach;

	/* someone else changed a knob under the canary: not ours to judge any more */
	for (size_t i = 0; i < j->nids; i++) {
		struct safe_live *l = safe_changes_live(c->env->changes, j->ids[i]);

		if (l && !l->res.reverted && act_verify(&l->res.req, &l->res) == -ESTALE) {
			char why[NOTE_MAX];

			snprintf(why, sizeof(why),
				 "%s was changed by someone else during the canary of change "
				 "%" PRId64,
				 knob_text(&j->def.knobs[j->knob_of[i]], kb, sizeof(kb)),
				 j->ids[i]);
			for (size_t k = 0; k < j->nids; k++)
				safe_changes_abandon(c->env->changes, j->ids[k], why);
			report(c, TUNE_REFUSED, NAN);
			trial_release(j);
			back_off(c, "%s; homeostat stops tuning it and leaves it alone", why);
			return;
		}
	}
	switch (safe_changes_canary_tick(c->env->changes, j->run, (int64_t)c->env->mono_ms,
					 have ? s : NULL, j->ids, j->nids, &step, json,
					 sizeof(json))) {
	case SAFE_TRIAL_SWITCH_FAILED:
		note(c, "trial %u: a switchback block could not be set; rolled back", j->trial);
		trial_conclude(c, false, SAFE_VERDICT_INCONCLUSIVE, NULL,
			       "the switchback canary could not switch the change");
		report(c, TUNE_REFUSED, NAN);
		trial_release(j);
		before_reset(j);
		set_phase(c, TP_BASELINE);
		return;
	case SAFE_TRIAL_OVER:
		break;
	default:
		return;
	}
	breach = step.action == SAFE_CANARY_BREACH;
	note(c, "trial %u (change %" PRId64 "): %s%s, %" PRIu64 " samples against %" PRIu64 ": %s",
	     j->trial, j->ids[0], breach ? "rollback_on breached: " : "verdict ",
	     breach ? step.breach_metric : safe_verdict_name(step.verdict), step.n_canary,
	     step.n_baseline, step.reason);
	trial_conclude(c, !breach && step.verdict == SAFE_VERDICT_KEEP, step.verdict, json,
		       step.reason);
	{
		double fit = NAN;

		for (size_t i = 0; i < step.n_results; i++)
			if (!strcmp(step.results[i].metric, "fitness"))
				fit = step.results[i].canary_center;
		report(c, outcome_of(breach, step.verdict), fit);
	}
	trial_release(j);
	before_reset(j);
	set_phase(c, TP_BASELINE);
}

/* ---- the job ---- */

static void job_step(struct ctx *c)
{
	struct job *j = c->j;
	struct safe_canary_sample s;
	bool have = sample_of(c->env, &j->def, &s);

	if (j->phase == TP_CANARY) {
		canary_step(c, &s, have);
		return;
	}
	if (j->phase == TP_DONE || j->phase == TP_BACKED_OFF) {
		kept_hold(c);
		return;
	}
	if (!kept_hold(c))
		return;
	if ((c->e->busy >= 0 && c->e->busy != c->index) || c->env->host_busy) {
		/* another trial changes the host: its ticks are no baseline of ours */
		before_reset(j);
		return;
	}
	if (have)
		before_push(j, &s);
	else if (j->phase != TP_APPROVAL) {
		if (j->phase != TP_WAIT)
			note(c, "waiting: target %s has no process", j->def.target);
		set_phase(c, TP_WAIT);
		return;
	}
	switch (j->phase) {
	case TP_WAIT:
		if (c->e->busy >= 0 && c->e->busy != c->index)
			return;
		set_phase(c, TP_BASELINE);
		/* fall through */
	case TP_BASELINE: {
		struct safe_canary_cfg cfg;

		safe_canary_cfg_init(&cfg, c->env->policy, SAFE_CANARY_BEFORE_AFTER);
		if (j->nscored < cfg.min_samples || j->nbefore < cfg.min_samples)
			return;
		if (c->e->busy >= 0 && c->e->busy != c->index)
			return;
		if (!j->started) {
			if (search_start(c)) {
				if (j->phase != TP_BACKED_OFF)
					set_phase(c, TP_DONE);
				return;
			}
			for (size_t i = 0; i < j->def.n_knobs; i++)
				if (j->kept[i]) { /* re-applied: the host changed, a new baseline */
					before_reset(j);
					return;
				}
		}
		set_phase(c, TP_PROPOSE);
	}
		/* fall through */
	case TP_PROPOSE:
		propose_step(c);
		return;
	case TP_APPROVAL:
		approval_step(c);
		return;
	default:
		return;
	}
}

int tune_engine_open(struct tune_engine **out)
{
	*out = calloc(1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	(*out)->busy = -1;
	return 0;
}

static void job_end(struct tune_engine *e, int index, const struct tune_env *env, const char *why)
{
	struct job *j = &e->jobs[index];
	struct ctx c = {.e = e, .env = env, .j = j, .index = index};
	char reason[256];

	if (j->phase == TP_CANARY) {
		snprintf(reason, sizeof(reason), MEM_INTERRUPTED "%s", why);
		trial_conclude(&c, false, SAFE_VERDICT_INCONCLUSIVE, NULL, reason);
	}
	trial_release(j);
	if (e->busy == index)
		e->busy = -1;
	free(j->before);
	memset(j, 0, sizeof(*j));
}

void tune_engine_configure(struct tune_engine *e, const struct tune_env *env)
{
	struct tune_registry *reg = NULL;
	char why[512];
	int r;

	r = tune_registry_build(env->policy, &reg, why, sizeof(why));
	if (r) {
		log_warn("tuning: the jobs of the policy cannot run: %s", why);
		reg = NULL;
	}
	for (int i = 0; i < TUNE_MAX_JOBS; i++)
		e->jobs[i].seen = false;
	for (size_t k = 0; reg && k < reg->n_jobs; k++) {
		const struct tune_job *d = &reg->jobs[k];
		int slot = -1;

		for (int i = 0; i < TUNE_MAX_JOBS; i++)
			if (e->jobs[i].used && !strcmp(e->jobs[i].def.name, d->name))
				slot = i;
		if (slot >= 0 && memcmp(&e->jobs[slot].def, d, sizeof(*d))) {
			job_end(e, slot, env, "the job changed in the policy");
			slot = -1;
		}
		for (int i = 0; slot < 0 && i < TUNE_MAX_JOBS; i++)
			if (!e->jobs[i].used)
				slot = i;
		if (slot < 0)
			break;
		if (!e->jobs[slot].used) {
			struct job *j = &e->jobs[slot];

			j->before = calloc(BEFORE_MAX, sizeof(*j->before));
			if (!j->before)
				continue;
			j->used = true;
			j->def = *d;
			snprintf(j->source, sizeof(j->source), TUNE_SOURCE_PREFIX "%s", d->name);
			j->phase = TP_WAIT;
			log_info("tuning job %s: %zu knobs on target %s, %s search, at most %u "
				 "trials, class %s",
				 d->name, d->n_knobs, d->target, tune_strategy_name(d->strategy),
				 d->max_trials, d->class);
		}
		e->jobs[slot].seen = true;
	}
	for (int i = 0; i < TUNE_MAX_JOBS; i++)
		if (e->jobs[i].used && !e->jobs[i].seen)
			job_end(e, i, env, "the job was removed from the policy");
	tune_registry_free(e->reg);
	e->reg = reg;
}

void tune_engine_tick(struct tune_engine *e, const struct tune_env *env)
{
	for (int i = 0; i < TUNE_MAX_JOBS; i++) {
		struct ctx c = {.e = e, .env = env, .j = &e->jobs[i], .index = i};

		if (e->jobs[i].used)
			job_step(&c);
	}
}

int tune_engine_status(const struct tune_engine *e,
		       int (*cb)(const struct tune_status *s, void *ud), void *ud)
{
	int n = 0;

	for (int i = 0; i < TUNE_MAX_JOBS; i++) {
		const struct job *j = &e->jobs[i];
		struct tune_status s;
		int r;

		if (!j->used)
			continue;
		s = (struct tune_status){
		    .job = j->def.name,
		    .target = j->def.target,
		    .phase = phase_names[j->phase],
		    .trials = j->trials,
		    .kept = j->nkept,
		    .change_id = j->phase == TP_APPROVAL || j->phase == TP_CANARY ? j->ids[0] : 0,
		    .note = j->note};
		r = cb(&s, ud);
		if (r)
			return r;
		n++;
	}
	return n;
}

bool tune_engine_busy(const struct tune_engine *e)
{
	return e && e->busy >= 0;
}

size_t tune_engine_waiting(const struct tune_engine *e, int64_t *ids, size_t max)
{
	size_t n = 0;

	for (int i = 0; i < TUNE_MAX_JOBS && n < max; i++)
		if (e->jobs[i].used && e->jobs[i].phase == TP_APPROVAL)
			ids[n++] = e->jobs[i].ids[0];
	return n;
}

void tune_engine_close(struct tune_engine *e, const struct tune_env *env)
{
	if (!e)
		return;
	for (int i = 0; i < TUNE_MAX_JOBS; i++)
		if (e->jobs[i].used)
			job_end(e, i, env, "the daemon stopped");
	tune_registry_free(e->reg);
	free(e);
}
