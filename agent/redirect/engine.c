/* engine.c - the redirect engine (see engine.h): each policy redirect as a state machine that
 * tries the function's alternatives one canary at a time through the safety layer.
 *
 * Each tick: every redirect samples its target (struct safe_canary_sample from the snapshot
 * and the fitness), checks that the processes it redirected are alive, then advances by at
 * most one phase that waits. Everything it does is logged with the change ids that `homeostat
 * history`, `explain`, `rollback` and `redirect revert` take, and audited ("redirect.*").
 */
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "fitness/fitness.h"
#include "lib/log.h"
#include "lib/util.h"
#include "memory/memory.h"
#include "observe/cpuprof.h"
#include "observe/profile.h"
#include "observe/symbolize.h"
#include "observe/targets.h"
#include "redirect/engine.h"
#include "redirect/measure.h"
#include "redirect/uprobe.h"
#include "safety/canary.h"
#include "safety/changes.h"
#include "safety/policy.h"

#define RD_MAX		   SAFE_MAX_REDIRECTS
#define RD_ALTS		   SAFE_MAX_ALTERNATIVES
#define RD_PROCS	   32	/* processes one redirect holds at most */
#define HOT_PERIOD_MS	   5000 /* how often a waiting redirect looks at the CPU profile */
#define HOT_SECONDS	   30	/* over the last 30 s of samples */
#define HOT_MEMBERS	   4	/* of at most 4 of the target's processes */
#define CRASH_MEMORY_TICKS 5	/* fatal signals seen this recently explain a death */
#define GONE_WAIT_TICKS	   3	/* a death without a known cause waits this long for one */
#define VERIFY_PERIOD_MS   5000 /* kept redirects are read back this often */
#define NOTE_MAX	   512
#define WHY_MAX		   2048
#define SOURCE_PREFIX	   "redirect:"

enum phase { RP_WAIT, RP_PROPOSE, RP_APPROVAL, RP_CANARY, RP_KEPT, RP_DONE };

static const char *const phase_names[] = {"wait", "propose", "approval", "canary", "kept", "done"};

/* One process redirected by a change of the redirect. */
struct proc {
	pid_t pid;
	unsigned long long start; /* of pid at apply: a reused pid is another process */
	int64_t id;		  /* the change */
	uint64_t gone_ms;	  /* first seen gone without a known cause */
};

struct job {
	bool used, seen;
	struct safe_redirect def; /* strings point into the policy: refreshed at configure */
	char name[SAFE_NAME_MAX + 1], target[SAFE_NAME_MAX + 1];
	char function[RD_NAME_MAX], object[512], library[512], class[SAFE_NAME_MAX + 1];
	char source[SAFE_SOURCE_MAX];
	enum phase phase;
	uint64_t phase_ms;
	/* the alternatives: the policy's, or found by the naming convention at the first trial */
	char alts[RD_ALTS][RD_NAME_MAX];
	size_t nalts, next; /* next: the one the next trial takes */
	bool listed;
	bool adopt_done; /* looked for what a previous daemon kept */
	bool discover;	 /* the policy names no function: the hottest with alternatives */
	uint64_t discover_ms;
	char forced[RD_NAME_MAX]; /* an operator's `redirect apply NAME ALT` */
	bool force, was_forced;
	/* how hot the function is */
	double hot_share;
	uint64_t hot_checked_ms;
	/* the trial, or what was kept */
	char alt[RD_NAME_MAX];
	struct proc procs[RD_PROCS];
	size_t nprocs;
	size_t ncanary; /* procs[0..ncanary) are the trial's canary processes */
	bool notify;
	int64_t not_before_ms;
	struct safe_canary_run *run;
	uint64_t fatal_seen_ms; /* the target's last fatal signal during the trial */
	int fatal_sig;
	struct rd_measure measure; /* the function's latency in the canary (measure.h) */
	bool promoted;		   /* kept: every process of the target at the time got it */
	uint64_t verified_ms;
	unsigned tried;
	char note[NOTE_MAX];
};

struct rd_engine {
	struct job jobs[RD_MAX];
	int busy; /* the job in approval or canary, -1: none */
	struct obs_symbolizer *sym;
	char mechanisms[400];
};

struct ctx {
	struct rd_engine *e;
	const struct rd_env *env;
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
	log_info("redirect %s: %s", c->j->name, c->j->note);
}

static void set_phase(struct ctx *c, enum phase p)
{
	c->j->phase = p;
	c->j->phase_ms = c->env->mono_ms;
	if (p == RP_APPROVAL || p == RP_CANARY)
		c->e->busy = c->index;
	else if (c->e->busy == c->index)
		c->e->busy = -1;
}

/* ---- the target ---- */

static const struct obs_members *members_of(const struct rd_env *env, const char *target)
{
	const struct obs_targets *t = env->obs ? obs_targets(env->obs) : NULL;
	int idx = t ? obs_targets_index(t, target) : -1;

	return idx > 0 ? &t->members[idx] : NULL;
}

/* The tick's sample of the target: its fitness, counted errors, syscall rate (a request is a
 * few syscalls: the rate follows the throughput), RSS. p99 is left out: the syscall latency
 * window spans several switchback blocks. False when the target has no process. */
static bool sample_of(const struct rd_env *env, const char *target, struct safe_canary_sample *s)
{
	const struct obs_target_snap *t = obs_snapshot_target(env->snap, target);
	const struct fit_score *f = env->fit ? fit_lookup(env->fit, target) : NULL;

	*s = SAFE_CANARY_SAMPLE_UNKNOWN;
	if (!t || t->nprocs == 0)
		return false;
	fit_error_counts(t, &s->errors, &s->events);
	s->fitness = f && !fit_learning(f, &env->policy->fitness) ? f->score : NAN;
	s->throughput = t->sc_rate;
	s->rss_bytes = t->rss_bytes;
	return true;
}

/* Calls fn for every row of the CPU profile (functions by self samples) of up to HOT_MEMBERS
 * of the target's processes over the last HOT_SECONDS. Returns the total weight of those
 * profiles, or -1 when the always-on profile is not running. */
static int64_t profile_rows(struct ctx *c, const struct obs_members *m,
			    void (*fn)(const struct obs_profile_fn *row, void *ud), void *ud)
{
	struct obs_cpuprof *cp = obs_cpuprof_host();
	uint64_t all = 0;

	if (!cp || !c->e->sym)
		return -1;
	for (size_t i = 0; i < m->n && i < HOT_MEMBERS; i++) {
		struct obs_profile p;
		struct obs_profile_fn *rows;
		int n;

		if (obs_cpuprof_recent(cp, c->e->sym, (uint32_t)m->pids[i], HOT_SECONDS,
				       c->env->mono_ms, &p))
			continue;
		all += obs_profile_weight(&p, 0);
		n = obs_profile_top(&p, 0, &rows);
		for (int k = 0; k < n; k++)
			fn(&rows[k], ud);
		if (n >= 0)
			free(rows);
		obs_profile_reset(&p);
	}
	return (int64_t)all;
}

struct hot_sum {
	const char *function;
	uint64_t mine;
};

static void hot_row(const struct obs_profile_fn *row, void *ud)
{
	struct hot_sum *h = ud;

	if (row->func && !strcmp(row->func, h->function))
		h->mine += row->self;
}

/* The function's share of the CPU samples of (up to HOT_MEMBERS of) the target's processes
 * over the last HOT_SECONDS, NAN when the always-on profile is not running. */
static double hot_share(struct ctx *c, const struct obs_members *m)
{
	struct hot_sum h = {.function = c->j->function};
	int64_t all = profile_rows(c, m, hot_row, &h);

	if (all < 0)
		return NAN;
	return all ? (double)h.mine / (double)all : 0;
}

/* ---- processes ---- */

static bool proc_alive(const struct proc *p)
{
	return act_same_process(p->pid, p->start);
}

static bool redirected(const struct job *j, pid_t pid)
{
	for (size_t i = 0; i < j->nprocs; i++)
		if (j->procs[i].pid == pid)
			return true;
	return false;
}

/* The request that redirects the function of pid to alt. 0 or -errno with why. */
static int patch_request(struct ctx *c, pid_t pid, const char *alt, struct act_request *req,
			 char *comm, size_t commsize, char *why, size_t size)
{
	struct obs_sym_addr fn, to;
	const char *object = c->j->object[0] ? c->j->object : NULL;
	int r;

	act_request_init(req, ACT_KIND_PATCH);
	req->pid = pid;
	r = act_pid_identity(pid, &req->pid_start, comm, commsize);
	if (r)
		return snprintf(why, size, "process %d is gone", (int)pid), r;
	obs_sym_forget_procs(c->e->sym); /* maps change: a restarted process, a dlopen */
	r = obs_sym_find(c->e->sym, pid, object, c->j->function, &fn);
	if (r)
		return snprintf(why, size, "function %s not found in process %d%s%.200s: %s",
				c->j->function, (int)pid, object ? " in " : "", object ?: "",
				strerror(-r)),
		       r;
	r = obs_sym_find(c->e->sym, pid, c->j->library[0] ? c->j->library : object, alt, &to);
	if (r == -ENXIO && c->j->library[0]) {
		/* not loaded yet: the apply loads it (act_patch, library) */
		struct obs_sym_addr dl;
		uint64_t off, osize;

		r = obs_sym_file_find(c->e->sym, c->j->library, alt, &off, &osize);
		if (r)
			return snprintf(why, size, "alternative %s not found in library %.200s: %s",
					alt, c->j->library, strerror(-r)),
			       r;
		r = obs_sym_find(c->e->sym, pid, "libc.so.6", "dlopen", &dl);
		if (r)
			return snprintf(why, size,
					"library %.200s is not loaded in process %d, and the "
					"process has no dlopen in libc.so.6 to load it with (%s): "
					"preload it (LD_PRELOAD)",
					c->j->library, (int)pid, strerror(-r)),
			       r;
		hs_strlcpy(req->patch.library, c->j->library, sizeof(req->patch.library));
		req->patch.dlopen_addr = dl.addr;
		req->patch.to_offset = off;
		to.addr = 0;
	} else if (r) {
		return snprintf(why, size, "alternative %s not found in process %d: %s", alt,
				(int)pid, strerror(-r)),
		       r;
	}
	req->patch.addr = fn.addr;
	req->patch.size = fn.size;
	req->patch.to = to.addr;
	hs_strlcpy(req->patch.function, c->j->function, sizeof(req->patch.function));
	hs_strlcpy(req->patch.alternative, alt, sizeof(req->patch.alternative));
	return 0;
}

static void fill_in(struct ctx *c, struct safe_change_in *ci, const char *why, const char *comm,
		    int processes)
{
	memset(ci, 0, sizeof(*ci));
	ci->p.source = c->j->source;
	ci->p.target = c->j->target;
	ci->p.action_class = c->j->class;
	ci->p.comm = comm;
	ci->p.now_ms = c->env->now_ms;
	ci->p.processes = processes;
	ci->p.targets = 1;
	ci->force_dry_run = c->env->force_dry_run;
	ci->why = why;
}

/* A part of a change already admitted (another canary process, a promotion): applied at once.
 * Adds it to procs[]. 0 or -errno with why. */
static int apply_part(struct ctx *c, pid_t pid, const char *why, int64_t *id, char *rwhy,
		      size_t size)
{
	struct job *j = c->j;
	struct safe_change_in ci;
	struct safe_change_out out;
	char comm[32];
	int r;

	if (j->nprocs == RD_PROCS)
		return snprintf(rwhy, size, "redirect holds %d processes already", RD_PROCS),
		       -ENOSPC;
	fill_in(c, &ci, why, NULL, 1);
	r = patch_request(c, pid, j->alt, &ci.p.req, comm, sizeof(comm), rwhy, size);
	if (r)
		return r;
	ci.p.comm = comm;
	ci.p.part_of_change = true;
	ci.p.approved = true;
	r = safe_changes_propose(c->env->changes, c->env->policy, &ci, &out);
	if (!r && (out.d.decision != SAFE_ALLOW || out.err)) {
		snprintf(rwhy, size, "%.200s", out.err ? out.why : out.d.reason);
		r = out.err ? out.err : -EPERM;
	}
	if (r)
		return r;
	j->procs[j->nprocs++] =
	    (struct proc){.pid = pid, .start = ci.p.req.pid_start, .id = out.change_id};
	*id = out.change_id;
	return 0;
}

/* ---- trials ---- */

static void trial_release(struct job *j)
{
	rd_measure_stop(&j->measure);
	safe_canary_free(j->run);
	j->run = NULL;
	j->nprocs = 0;
	j->ncanary = 0;
	j->fatal_seen_ms = 0;
	j->fatal_sig = 0;
	j->promoted = false;
}

/* Concludes every change of the redirect (the trial's, or the kept ones' when an operator or a
 * crash ends them). keep: the trial's changes stay. */
static void conclude_all(struct ctx *c, bool keep, enum safe_verdict v, const char *json,
			 const char *reason)
{
	struct job *j = c->j;

	for (size_t i = 0; i < j->nprocs; i++) {
		struct safe_live *l = safe_changes_live(c->env->changes, j->procs[i].id);
		int r;

		if (!l)
			continue;
		if (l->kept) {
			char why[256];

			r = safe_changes_rollback(c->env->changes, j->procs[i].id, "homeostat", why,
						  sizeof(why));
		} else {
			r = safe_changes_conclude(c->env->changes, j->procs[i].id, keep, (int)v,
						  json, reason);
		}
		if (r && r != -ENOENT)
			log_warn_errno(r, "redirect %s: concluding change %" PRId64, j->name,
				       j->procs[i].id);
	}
}

/* The crashed process comes back through the target's restart command (restart_on_crash). */
static void restart_crashed(struct ctx *c, pid_t pid)
{
	const struct safe_target *t = safe_policy_target(c->env->policy, c->j->target);
	struct safe_change_in ci;
	struct safe_change_out out;
	char why[512], rwhy[256];

	if (!c->j->def.restart_on_crash)
		return;
	snprintf(why, sizeof(why),
		 "redirect %s: process %d of target %s crashed while %s was redirected to %s; "
		 "restart_on_crash",
		 c->j->name, (int)pid, c->j->target, c->j->function, c->j->alt);
	fill_in(c, &ci, why, NULL, 1);
	ci.p.part_of_change = true;
	ci.p.approved = true;
	if (safe_restart_request(t, 10000, &ci.p.req, rwhy, sizeof(rwhy))) {
		note(c, "the crashed process cannot be restarted: %s", rwhy);
		return;
	}
	if (safe_changes_propose(c->env->changes, c->env->policy, &ci, &out) ||
	    out.d.decision != SAFE_ALLOW || out.err) {
		note(c, "the crashed process was not restarted: %s",
		     out.err ? out.why : out.d.reason);
		return;
	}
	safe_changes_conclude(c->env->changes, out.change_id, true, MEM_VERDICT_NONE, NULL,
			      "the restart ran");
	log_notice("redirect %s: restarted the crashed process (change %" PRId64 ")", c->j->name,
		   out.change_id);
}

/* The alternative next_alt() gave must wait: the next call gives it again. */
static void again(struct job *j)
{
	if (j->was_forced)
		j->force = true;
	else
		j->next--;
}

/* The next alternative, or false when every one was tried. */
static bool next_alt(struct ctx *c)
{
	struct job *j = c->j;

	if (j->force) {
		hs_strlcpy(j->alt, j->forced, sizeof(j->alt));
		j->force = false;
		j->was_forced = true;
		return true;
	}
	j->was_forced = false;
	if (j->next >= j->nalts)
		return false;
	hs_strlcpy(j->alt, j->alts[j->next++], sizeof(j->alt));
	return true;
}

/* The alternatives of the policy, or every FUNCTION__alt_* of the ELF. 0 or -errno. */
/* The alternatives by name (fn__alt_*) of fn where the redirect looks for them, at most
 * RD_ALTS into names: the patch library's file when there is one (loaded or not), else the
 * object or executable as the process maps it. How many, or -errno. */
static int alts_by_name(struct ctx *c, pid_t pid, const char *fn, char names[][RD_NAME_MAX])
{
	struct job *j = c->j;

	if (j->library[0])
		return obs_sym_file_alternatives(c->e->sym, j->library, fn, names, RD_ALTS);
	return obs_sym_alternatives(c->e->sym, pid, j->object[0] ? j->object : NULL, fn, names,
				    RD_ALTS);
}

static int list_alts(struct ctx *c, pid_t pid)
{
	struct job *j = c->j;
	int n;

	if (j->listed)
		return 0;
	if (j->def.n_alternatives) {
		for (size_t i = 0; i < j->def.n_alternatives && i < RD_ALTS; i++)
			hs_strlcpy(j->alts[i], j->def.alternatives[i], sizeof(j->alts[i]));
		j->nalts = j->def.n_alternatives;
	} else {
		n = alts_by_name(c, pid, j->function, j->alts);
		if (n < 0) {
			note(c, "cannot list the alternatives of %s in process %d: %s", j->function,
			     (int)pid, strerror(-n));
			return n;
		}
		j->nalts = (size_t)n;
		if (n)
			note(c, "found %d alternatives of %s by name (%s__alt_*)", n, j->function,
			     j->function);
	}
	j->listed = true;
	return 0;
}

/* The function's latency during the canary: the alternative in the first canary process, the
 * original in a process of the target without the redirect (measure.h). */
static void measure_start(struct ctx *c)
{
	struct job *j = c->j;
	const struct obs_members *m = members_of(c->env, j->target);
	const char *obj = j->object[0] == '/' ? j->object : NULL;
	pid_t orig = 0, self = getpid();

	for (size_t i = 0; m && i < m->n && !orig; i++)
		if (m->pids[i] != self && !redirected(j, m->pids[i]))
			orig = m->pids[i];
	if (j->object[0] && !obj) {
		rd_measure_start(&j->measure, 0, NULL, j->function, 0, NULL, j->alt,
				 "the object is named by its file name, not its path");
		return;
	}
	rd_measure_start(&j->measure, orig, obj, j->function, j->procs[0].pid,
			 j->library[0] ? j->library : obj, j->alt,
			 "every process of the target is redirected: no process runs the original");
}

static void canary_start(struct ctx *c)
{
	struct job *j = c->j;
	const struct safe_canary *pc = &c->env->policy->canary;
	struct safe_canary_cfg cfg;
	bool sw = pc->switchback_block_ms > 0 && pc->duration_ms >= 2 * pc->switchback_block_ms;
	int64_t ids[RD_PROCS];
	int r;

	safe_canary_cfg_init(&cfg, c->env->policy,
			     sw ? SAFE_CANARY_SWITCHBACK : SAFE_CANARY_BEFORE_AFTER);
	for (size_t i = 0; i < j->ncanary; i++)
		ids[i] = j->procs[i].id;
	r = sw ? safe_changes_switch_all(c->env->changes, ids, j->ncanary, false) : -EOPNOTSUPP;
	for (size_t i = 0; r && sw && i < j->ncanary; i++)
		if (!proc_alive(&j->procs[i]))
			r = 0; /* died in the moment it was redirected: the canary's death watch
				* says how, and rolls it back */
	if (!r)
		r = safe_canary_new(&cfg, (int64_t)c->env->mono_ms, NULL, 0, &j->run);
	if (r) {
		note(c, "%s: the canary could not start (%s); rolled back",
		     sw ? "switchback"
			: "the policy's canary is shorter than two switchback blocks",
		     strerror(-r));
		conclude_all(c, false, SAFE_VERDICT_INCONCLUSIVE, NULL,
			     "the canary could not start");
		trial_release(j);
		set_phase(c, RP_PROPOSE);
		return;
	}
	measure_start(c);
	note(c,
	     "trial of %s: %zu of %zu processes redirected (change %" PRId64 "), switchback "
	     "canary for %lld s in blocks of %lld s (off first)",
	     j->alt, j->ncanary,
	     members_of(c->env, j->target) ? members_of(c->env, j->target)->n : 0, j->procs[0].id,
	     (long long)(cfg.duration_ms / 1000), (long long)(cfg.block_ms / 1000));
	set_phase(c, RP_CANARY);
}

/* The first canary process is redirected: the others join as parts of the change. */
static void on_applied(struct ctx *c, const struct safe_change_out *out, pid_t pid,
		       unsigned long long start, const char *why)
{
	struct job *j = c->j;
	const struct obs_members *m = members_of(c->env, j->target);
	pid_t self = getpid();

	j->procs[0] = (struct proc){.pid = pid, .start = start, .id = out->change_id};
	j->nprocs = j->ncanary = 1;
	for (size_t i = 0;
	     m && i < m->n && j->ncanary < (size_t)j->def.canary_processes && j->ncanary + 1 < m->n;
	     i++) {
		char rwhy[256];
		int64_t id;

		if (m->pids[i] == self || redirected(j, m->pids[i]))
			continue;
		if (apply_part(c, m->pids[i], why, &id, rwhy, sizeof(rwhy))) {
			note(c, "process %d not in the canary: %s", (int)m->pids[i], rwhy);
			continue;
		}
		j->ncanary = j->nprocs;
	}
	canary_start(c);
}

static void propose_step(struct ctx *c)
{
	struct job *j = c->j;
	const struct obs_members *m = members_of(c->env, j->target);
	struct safe_change_in ci;
	struct safe_change_out out;
	struct act_request req;
	struct safe_decision_out pre;
	char why[WHY_MAX], rwhy[512], comm[32], hot[64];
	pid_t pid = 0, self = getpid();
	size_t n = 0, ncan;
	int r;

	for (size_t i = 0; m && i < m->n; i++)
		if (m->pids[i] != self) {
			n++;
			if (!pid)
				pid = m->pids[i];
		}
	if (!pid)
		return;
	if (list_alts(c, pid))
		return;
	if (!next_alt(c)) {
		note(c, "every alternative of %s was tried (%u), none kept: %s stays as it is",
		     j->function, j->tried, j->function);
		mem_audit(c->env->mem, "homeostat", "redirect.done", 0, "redirect %s: %s", j->name,
			  j->note);
		set_phase(c, RP_DONE);
		return;
	}
	r = patch_request(c, pid, j->alt, &req, comm, sizeof(comm), rwhy, sizeof(rwhy));
	if (r) {
		note(c, "%s not tried: %s", j->alt, rwhy);
		j->tried++;
		return;
	}
	r = safe_changes_should_attempt(c->env->changes, j->target, &req, rwhy, sizeof(rwhy));
	if (r == 0) {
		note(c, "%s not tried: %s", j->alt, rwhy);
		j->tried++;
		return;
	}
	ncan = (size_t)j->def.canary_processes < n ? (size_t)j->def.canary_processes : n;
	if (isnan(j->hot_share))
		snprintf(hot, sizeof(hot), "hot: unknown, no CPU profile");
	else
		snprintf(hot, sizeof(hot), "%.0f%% of the target's CPU samples",
			 j->hot_share * 100);
	snprintf(why, sizeof(why),
		 "redirect %s: %s of target %s (%s) to %s, in %zu of its %zu processes (process "
		 "%d first) through an entry patch%s%.300s%s; kept only if a switchback canary "
		 "shows the target better, rolled back at once on a rollback_on breach or a crash",
		 j->name, j->function, j->target, hot, j->alt, ncan, n, (int)pid,
		 req.patch.library[0] ? ", after loading the patch library " : "",
		 req.patch.library,
		 req.patch.library[0] ? " into the process (ptrace dlopen)" : "");
	fill_in(c, &ci, why, comm, (int)ncan);
	ci.p.req = req;
	/* cooldowns, budgets and storms pass: wait for them without a record a tick */
	if (safe_changes_must_wait(c->env->changes, c->env->policy, &ci.p, &pre)) {
		if (strcmp(j->note, pre.reason))
			note(c, "%s", pre.reason);
		again(j);
		return;
	}
	r = safe_changes_propose(c->env->changes, c->env->policy, &ci, &out);
	if (r) {
		note(c, "%s not proposed: memory failed (%s)", j->alt, strerror(-r));
		again(j); /* next tick */
		return;
	}
	switch (out.d.decision) {
	case SAFE_ALLOW:
		if (out.err) {
			note(c, "%s: change %" PRId64 " failed: %s", j->alt, out.change_id,
			     out.why);
			j->tried++;
			return;
		}
		note(c, "change %" PRId64 ": %s redirected to %s in process %d%s%.300s",
		     out.change_id, j->function, j->alt, (int)pid, out.why[0] ? "; " : "", out.why);
		on_applied(c, &out, pid, ci.p.req.pid_start, why);
		return;
	case SAFE_DRY_RUN:
		note(c, "change %" PRId64 " recorded, not made (%s); a dry run measures nothing",
		     out.change_id, out.d.reason);
		set_phase(c, RP_DONE);
		return;
	case SAFE_NEED_APPROVAL:
	case SAFE_NOTIFY_THEN_ALLOW:
		j->procs[0] =
		    (struct proc){.pid = pid, .start = ci.p.req.pid_start, .id = out.change_id};
		j->nprocs = j->ncanary = 0;
		j->notify = out.d.decision == SAFE_NOTIFY_THEN_ALLOW;
		j->not_before_ms = out.d.not_before_ms;
		note(c,
		     "change %" PRId64 " (%s -> %s in process %d): %s; 'homeostat %s %" PRId64 "'",
		     out.change_id, j->function, j->alt, (int)pid, out.d.reason,
		     j->notify ? "reject" : "approve", out.change_id);
		set_phase(c, RP_APPROVAL);
		return;
	case SAFE_DENY:
	default:
		if (safe_rule_transient(out.d.rule)) {
			again(j); /* a budget: the same alternative later */
			if (strcmp(j->note, out.d.reason))
				note(c, "%s", out.d.reason);
			set_phase(c, RP_WAIT);
			return;
		}
		note(c, "%s: change %" PRId64 " refused: %s", j->alt, out.change_id, out.d.reason);
		j->tried++;
		return;
	}
}

static void approval_step(struct ctx *c)
{
	struct job *j = c->j;
	struct safe_change_in ci;
	struct safe_change_out out;
	char why[512];
	struct proc first = j->procs[0];

	fill_in(c, &ci, NULL, NULL, 1);
	switch (safe_changes_await(c->env->changes, c->env->policy, first.id, j->notify,
				   j->not_before_ms, c->env->now_ms, &ci, &out, why, sizeof(why))) {
	case SAFE_AWAIT_WAITING:
		return;
	case SAFE_AWAIT_APPLIED:
		if (out.err) {
			note(c, "change %" PRId64 " approved, and failed: %s", first.id, out.why);
			j->tried++;
			set_phase(c, RP_PROPOSE);
			return;
		}
		note(c, "change %" PRId64 " approved%s%.300s", first.id, out.why[0] ? "; " : "",
		     out.why);
		on_applied(c, &out, first.pid, first.start, ci.why);
		return;
	default:
		note(c, "change %" PRId64 " %s; the next alternative", first.id, why);
		j->tried++;
		set_phase(c, RP_PROPOSE);
		return;
	}
}

/* Fatal signals of the target this tick: remembered a few ticks to explain a death. */
static void watch_fatal(struct ctx *c)
{
	const struct obs_target_snap *t = obs_snapshot_target(c->env->snap, c->j->target);

	if (!t || !t->fatal)
		return;
	for (int s = 1; s < 64; s++)
		if (t->fatal_by_sig[s]) {
			c->j->fatal_sig = s;
			c->j->fatal_seen_ms = c->env->mono_ms;
		}
}

/* A redirected process that died: which one, and was it a crash? The cause is its wait
 * status while it is a zombie, else a fatal signal the target saw lately; a process already
 * reaped without either is given GONE_WAIT_TICKS for the signal to show in a snapshot. */
static struct proc *dead_proc(struct ctx *c, char *how, size_t size)
{
	struct job *j = c->j;
	uint64_t tick = c->env->snap && c->env->snap->elapsed_ms ? c->env->snap->elapsed_ms : 1000;

	for (size_t i = 0; i < j->nprocs; i++) {
		struct proc *p = &j->procs[i];
		int st;

		if (proc_alive(p))
			continue;
		st = act_pid_exit_status(p->pid, p->start);
		if (st >= 0 && WIFSIGNALED(st)) {
			snprintf(how, size, "crashed (SIG%s%s)", sigabbrev_np(WTERMSIG(st)) ?: "?",
				 WCOREDUMP(st) ? ", core dumped" : "");
			return p;
		}
		if (st >= 0) {
			snprintf(how, size, "exited (status %d)", WEXITSTATUS(st));
			return p;
		}
		if (j->fatal_sig &&
		    c->env->mono_ms - j->fatal_seen_ms <= CRASH_MEMORY_TICKS * tick) {
			snprintf(how, size, "crashed (SIG%s)", sigabbrev_np(j->fatal_sig) ?: "?");
			return p;
		}
		if (!p->gone_ms)
			p->gone_ms = c->env->mono_ms;
		if (c->env->mono_ms - p->gone_ms >= GONE_WAIT_TICKS * tick) {
			snprintf(how, size, "exited");
			return p;
		}
	}
	return NULL;
}

/* Ends the latency captures; what they measured goes into the verdict's JSON and the log. */
static void measure_end(struct ctx *c, char *json, size_t size)
{
	char summary[600];

	rd_measure_end(&c->j->measure, json, size, summary, sizeof(summary));
	log_info("redirect %s: function latency during the canary of change %" PRId64 ": %s",
		 c->j->name, c->j->procs[0].id, summary);
}

static void canary_step(struct ctx *c, const struct safe_canary_sample *s, bool have)
{
	struct job *j = c->j;
	struct safe_canary_step step;
	char json[16384], how[64], reason[SAFE_REASON_MAX + 128];
	int64_t ids[RD_PROCS];
	struct proc *dead;
	bool breach;

	watch_fatal(c);
	rd_measure_poll(&j->measure, c->env->mono_ms);
	dead = dead_proc(c, how, sizeof(how));
	if (dead) {
		pid_t pid = dead->pid;
		bool crash = !strncmp(how, "crashed", 7);

		snprintf(reason, sizeof(reason),
			 "process %d %s while %s was redirected to %s: rolled back in every "
			 "process",
			 (int)pid, how, j->function, j->alt);
		if (safe_canary_json(j->run, json, sizeof(json)) < 0)
			snprintf(json, sizeof(json), "{}");
		measure_end(c, json, sizeof(json));
		note(c, "change %" PRId64 ": %s", j->procs[0].id, reason);
		conclude_all(c, false, crash ? SAFE_VERDICT_ROLLBACK : SAFE_VERDICT_INCONCLUSIVE,
			     json, reason);
		mem_audit(c->env->mem, "homeostat", crash ? "redirect.crash" : "redirect.exit",
			  j->procs[0].id, "redirect %s: %s", j->name, reason);
		j->tried++;
		trial_release(j);
		set_phase(c, RP_PROPOSE);
		if (crash)
			restart_crashed(c, pid);
		return;
	}
	for (size_t i = 0; i < j->ncanary; i++)
		ids[i] = j->procs[i].id;
	switch (safe_changes_canary_tick(c->env->changes, j->run, (int64_t)c->env->mono_ms,
					 have ? s : NULL, ids, j->ncanary, &step, json,
					 sizeof(json))) {
	case SAFE_TRIAL_SWITCH_FAILED:
		note(c, "a switchback block could not be set; rolled back");
		conclude_all(c, false, SAFE_VERDICT_INCONCLUSIVE, NULL,
			     "the switchback canary could not switch the redirect");
		j->tried++;
		trial_release(j);
		set_phase(c, RP_PROPOSE);
		return;
	case SAFE_TRIAL_OVER:
		break;
	default:
		return;
	}
	breach = step.action == SAFE_CANARY_BREACH;
	measure_end(c, json, sizeof(json));
	note(c, "%s (change %" PRId64 "): %s%s, %" PRIu64 " samples against %" PRIu64 ": %s",
	     j->alt, j->procs[0].id, breach ? "rollback_on breached: " : "verdict ",
	     breach ? step.breach_metric : safe_verdict_name(step.verdict), step.n_canary,
	     step.n_baseline, step.reason);
	j->tried++;
	if (breach || step.verdict != SAFE_VERDICT_KEEP) {
		conclude_all(c, false, step.verdict, json, step.reason);
		trial_release(j);
		set_phase(c, RP_PROPOSE);
		return;
	}
	for (size_t i = 0; i < j->nprocs; i++)
		safe_changes_conclude(c->env->changes, j->procs[i].id, true, (int)step.verdict,
				      json, step.reason);
	safe_canary_free(j->run);
	j->run = NULL;
	mem_audit(c->env->mem, "homeostat", "redirect.kept", j->procs[0].id,
		  "redirect %s: %s -> %s kept", j->name, j->function, j->alt);
	set_phase(c, RP_KEPT);
}

/* Kept: every process of the target gets the redirect (promote), crashes undo it everywhere,
 * exited processes are forgotten. */
static void kept_step(struct ctx *c)
{
	struct job *j = c->j;
	const struct obs_members *m = members_of(c->env, j->target);
	struct proc *dead;
	char how[64], why[WHY_MAX], rwhy[256];
	pid_t self = getpid();

	watch_fatal(c);
	while ((dead = dead_proc(c, how, sizeof(how)))) {
		if (!strncmp(how, "crashed", 7)) {
			pid_t pid = dead->pid;

			snprintf(why, sizeof(why),
				 "process %d %s while %s was redirected to %s (kept by change "
				 "%" PRId64 "): rolled back in every process",
				 (int)pid, how, j->function, j->alt, j->procs[0].id);
			note(c, "%s", why);
			mem_audit(c->env->mem, "homeostat", "redirect.crash", j->procs[0].id,
				  "redirect %s: %s", j->name, why);
			conclude_all(c, false, SAFE_VERDICT_ROLLBACK, NULL, why);
			trial_release(j);
			set_phase(c, RP_PROPOSE);
			restart_crashed(c, pid);
			return;
		}
		safe_changes_forget(c->env->changes, dead->id, "the process exited");
		*dead = j->procs[--j->nprocs];
	}
	/* text someone else changed (another patcher, a debugger) is theirs: left alone */
	if (c->env->mono_ms - j->verified_ms >= VERIFY_PERIOD_MS) {
		j->verified_ms = c->env->mono_ms;
		for (size_t i = 0; i < j->nprocs;) {
			struct safe_live *l = safe_changes_live(c->env->changes, j->procs[i].id);

			if (l && act_verify(&l->res.req, &l->res) == -ESTALE) {
				snprintf(
				    why, sizeof(why),
				    "the entry of %s in process %d no longer holds the jump "
				    "homeostat wrote (%.200s): changed by someone else, left alone",
				    j->function, (int)j->procs[i].pid, l->res.why);
				note(c, "%s", why);
				safe_changes_abandon(c->env->changes, j->procs[i].id, why);
				j->procs[i] = j->procs[--j->nprocs];
				continue;
			}
			i++;
		}
	}
	if (!j->def.promote || !m)
		return;
	for (size_t i = 0; i < m->n; i++) {
		int64_t id;

		if (m->pids[i] == self || redirected(j, m->pids[i]))
			continue;
		if (j->promoted && !j->def.new_processes)
			continue;
		snprintf(why, sizeof(why),
			 "redirect %s: %s -> %s was kept (change %" PRId64 "): promoted to process "
			 "%d of target %s",
			 j->name, j->function, j->alt, j->procs[0].id, (int)m->pids[i], j->target);
		if (apply_part(c, m->pids[i], why, &id, rwhy, sizeof(rwhy))) {
			log_warn("redirect %s: process %d not redirected: %s", j->name,
				 (int)m->pids[i], rwhy);
			continue;
		}
		snprintf(rwhy, sizeof(rwhy), "{\"promoted_from\":%" PRId64 "}", j->procs[0].id);
		safe_changes_conclude(c->env->changes, id, true, MEM_VERDICT_KEEP, rwhy,
				      "promoted: the redirect was kept");
		note(c, "promoted to process %d (change %" PRId64 ")", (int)m->pids[i], id);
	}
	j->promoted = true;
}

#define DISCOVER_MAX 64 /* candidate functions looked at */

struct candidate {
	char func[RD_NAME_MAX];
	uint64_t self;
};

static int cand_cmp(const void *a, const void *b)
{
	const struct candidate *x = a, *y = b;

	return (x->self < y->self) - (x->self > y->self);
}

/* The file name of the ELF the redirect's function would live in, for pid: the object's,
 * else the executable's. */
static void module_of(const struct job *j, pid_t pid, char *buf, size_t size)
{
	char link[64], path[PATH_MAX];
	const char *slash;
	ssize_t n;

	buf[0] = '\0';
	if (j->object[0]) {
		slash = strrchr(j->object, '/');
		hs_strlcpy(buf, slash ? slash + 1 : j->object, size);
		return;
	}
	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		return;
	path[n] = '\0';
	slash = strrchr(path, '/');
	hs_strlcpy(buf, slash ? slash + 1 : path, size);
}

/* The candidates of discover(): functions of the module, by self samples. */
struct cands {
	const char *module;
	struct candidate v[DISCOVER_MAX];
	size_t n;
};

static void cand_row(const struct obs_profile_fn *row, void *ud)
{
	struct cands *cs = ud;
	size_t x;

	if (row->kernel || !row->func || !row->module || strcmp(row->module, cs->module) ||
	    strstr(row->func, "__alt_") || strlen(row->func) >= RD_NAME_MAX)
		return;
	for (x = 0; x < cs->n && strcmp(cs->v[x].func, row->func); x++)
		;
	if (x == cs->n) {
		if (cs->n == DISCOVER_MAX)
			return;
		hs_strlcpy(cs->v[x].func, row->func, sizeof(cs->v[x].func));
		cs->v[cs->n++].self = 0;
	}
	cs->v[x].self += row->self;
}

/* A redirect that names no function (issue 6, item 1): the hottest function of the target's
 * always-on CPU profile (self samples of up to HOT_MEMBERS of its processes over the last
 * HOT_SECONDS, in the object or the executable) that has FUNCTION__alt_* alternatives, with at
 * least hot_share of the samples. Sets j->function and returns true when one is found. */
static bool discover(struct ctx *c, const struct obs_members *m)
{
	struct job *j = c->j;
	char module[NAME_MAX + 1], names[RD_ALTS][RD_NAME_MAX];
	struct cands cs = {.module = module};
	const struct candidate *cand = cs.v;
	int64_t all;

	if (j->discover_ms && c->env->mono_ms - j->discover_ms < HOT_PERIOD_MS)
		return false;
	j->discover_ms = c->env->mono_ms;
	module_of(j, m->pids[0], module, sizeof(module));
	all = profile_rows(c, m, cand_row, &cs);
	if (all < 0) {
		note(c, "waiting: the CPU profile is not running, so no hot function can be found");
		set_phase(c, RP_WAIT);
		return false;
	}
	qsort(cs.v, cs.n, sizeof(*cs.v), cand_cmp);
	for (size_t i = 0; i < cs.n && all > 0; i++) {
		double share = (double)cand[i].self / (double)all;
		int n;

		if (share < j->def.hot_share || !cand[i].self)
			break;
		n = alts_by_name(c, m->pids[0], cand[i].func, names);
		if (n <= 0)
			continue;
		hs_strlcpy(j->function, cand[i].func, sizeof(j->function));
		j->hot_share = share;
		j->hot_checked_ms = c->env->mono_ms;
		note(c,
		     "discovered %s: %.0f%% of the target's CPU samples, with %d alternatives by "
		     "name (%s__alt_*)",
		     j->function, share * 100, n, j->function);
		return true;
	}
	{
		char msg[NOTE_MAX];

		snprintf(msg, sizeof(msg),
			 "waiting: no function of %s with %.1f%% of the target's CPU samples or "
			 "more has FUNCTION__alt_* alternatives%s%s",
			 module, j->def.hot_share * 100, cs.n ? "; the hottest is " : "",
			 cs.n ? cand[0].func : "");
		if (strcmp(msg, j->note))
			note(c, "%s", msg);
	}
	set_phase(c, RP_WAIT);
	return false;
}

struct kept_ids {
	const struct job *j;
	int64_t id[RD_PROCS];
	size_t n;
};

static int kept_of_job(const struct mem_change *mc, void *ud)
{
	struct kept_ids *k = ud;

	if (mc->kind == MEM_KIND_PATCH && !strcmp(mc->source, k->j->source) &&
	    (!k->j->function[0] || !strcmp(mc->knob, k->j->function)) && k->n < RD_PROCS)
		k->id[k->n++] = mc->id;
	return 0;
}

/* Once, at the first tick: a redirect a previous daemon kept is still in its processes (the
 * text of a process outlives the daemon). Those processes are watched again as if this daemon
 * had kept it: a crash rolls it back everywhere, an exit forgets the process, text someone
 * else changed is abandoned, and promotion goes on where the policy says so. */
static void adopt(struct ctx *c)
{
	struct job *j = c->j;
	struct kept_ids k = {.j = j};
	char why[256];

	j->adopt_done = true;
	if (j->phase != RP_WAIT && j->phase != RP_PROPOSE)
		return;
	if (mem_changes_by_state(c->env->mem, MEM_STATE_KEPT, kept_of_job, &k) < 0) {
		log_warn("redirect %s: cannot read the kept changes: %s", j->name,
			 mem_last_error(c->env->mem));
		return;
	}
	for (size_t i = 0; i < k.n && j->nprocs < RD_PROCS; i++) {
		struct safe_live *l;

		if (safe_changes_adopt(c->env->changes, k.id[i], why, sizeof(why))) {
			log_warn("redirect %s: kept change %" PRId64 " not watched: %s", j->name,
				 k.id[i], why);
			continue;
		}
		l = safe_changes_live(c->env->changes, k.id[i]);
		if (j->nprocs && (strcmp(l->res.req.patch.alternative, j->alt) ||
				  strcmp(l->res.req.patch.function, j->function)))
			continue; /* another alternative: its own record stands */
		if (!act_same_process(l->res.req.pid, l->res.pid_start)) {
			safe_changes_forget(c->env->changes, k.id[i],
					    "the process exited while no daemon watched it");
			continue;
		}
		if (act_verify(&l->res.req, &l->res) == -ESTALE) {
			snprintf(
			    why, sizeof(why),
			    "the entry of %s in process %d no longer holds the jump homeostat "
			    "wrote: changed by someone else while no daemon watched, left alone",
			    j->function, (int)l->res.req.pid);
			safe_changes_abandon(c->env->changes, k.id[i], why);
			continue;
		}
		hs_strlcpy(j->alt, l->res.req.patch.alternative, sizeof(j->alt));
		hs_strlcpy(j->function, l->res.req.patch.function, sizeof(j->function));
		j->procs[j->nprocs++] =
		    (struct proc){.pid = l->res.req.pid, .start = l->res.pid_start, .id = k.id[i]};
	}
	if (!j->nprocs)
		return;
	j->promoted = true;
	j->verified_ms = c->env->mono_ms;
	note(c,
	     "%s -> %s, kept by a previous daemon (change %" PRId64 "), is in %zu processes: "
	     "watched again",
	     j->function, j->alt, j->procs[0].id, j->nprocs);
	mem_audit(c->env->mem, "homeostat", "redirect.adopted", j->procs[0].id, "redirect %s: %s",
		  j->name, j->note);
	set_phase(c, RP_KEPT);
}

static void job_step(struct ctx *c)
{
	struct job *j = c->j;
	struct safe_canary_sample s;
	const struct obs_members *m = members_of(c->env, j->target);
	bool have;

	if (!j->adopt_done)
		adopt(c);
	have = sample_of(c->env, j->target, &s);

	switch (j->phase) {
	case RP_CANARY:
		canary_step(c, &s, have);
		return;
	case RP_KEPT:
		kept_step(c);
		return;
	case RP_APPROVAL:
		approval_step(c);
		return;
	case RP_DONE:
		if (!j->force)
			return;
		set_phase(c, RP_WAIT);
		/* fall through */
	case RP_WAIT:
	case RP_PROPOSE: {
		const struct fit_score *f = c->env->fit ? fit_lookup(c->env->fit, j->target) : NULL;

		if (!have || !m || c->env->paused)
			return;
		if (c->env->host_busy || (c->e->busy >= 0 && c->e->busy != c->index))
			return;
		if (!f || fit_learning(f, &c->env->policy->fitness))
			return; /* the fitness would move under the canary */
		if (!j->function[0] && !discover(c, m))
			return;
		if (!j->force && j->def.hot_share > 0) {
			if (c->env->mono_ms - j->hot_checked_ms < HOT_PERIOD_MS &&
			    j->hot_checked_ms)
				return;
			j->hot_checked_ms = c->env->mono_ms;
			j->hot_share = hot_share(c, m);
			if (isnan(j->hot_share)) {
				if (j->phase != RP_WAIT || !j->note[0])
					note(c,
					     "waiting: the CPU profile is not running, so whether "
					     "%s is hot is unknown (hot_share: 0%% tries anyway)",
					     j->function);
				set_phase(c, RP_WAIT);
				return;
			}
			if (j->hot_share < j->def.hot_share) {
				if (j->phase != RP_WAIT)
					note(c,
					     "waiting: %s has %.1f%% of the target's CPU samples, "
					     "below hot_share %.1f%%",
					     j->function, j->hot_share * 100,
					     j->def.hot_share * 100);
				set_phase(c, RP_WAIT);
				return;
			}
		} else if (j->hot_checked_ms == 0 ||
			   c->env->mono_ms - j->hot_checked_ms >= HOT_PERIOD_MS) {
			j->hot_checked_ms = c->env->mono_ms;
			j->hot_share = hot_share(c, m);
		}
		if (j->phase == RP_WAIT)
			set_phase(c, RP_PROPOSE);
		propose_step(c);
		return;
	}
	}
}

int rd_engine_open(struct rd_engine **out)
{
	struct rd_engine *e = calloc(1, sizeof(*e));
	char why[300];
	int r;

	if (!e)
		return -ENOMEM;
	e->busy = -1;
	r = obs_sym_new(NULL, &e->sym);
	if (r) {
		free(e);
		return r;
	}
	r = redir_uprobe_probe(why, sizeof(why));
	snprintf(e->mechanisms, sizeof(e->mechanisms),
		 "entry patch (ptrace): available; uprobe register write: %s%s%s",
		 r > 0	  ? "available (not used yet)"
		 : r == 0 ? "refused by this kernel"
			  : "unknown",
		 why[0] ? ": " : "", why);
	log_info("redirects: %s", e->mechanisms);
	*out = e;
	return 0;
}

const char *rd_engine_mechanisms(const struct rd_engine *e)
{
	return e ? e->mechanisms : "none";
}

bool rd_engine_busy(const struct rd_engine *e)
{
	return e && e->busy >= 0;
}

/* Ends a job: a trial in progress is rolled back; kept redirects stay. */
static void job_end(struct rd_engine *e, int index, const struct rd_env *env, const char *why)
{
	struct job *j = &e->jobs[index];
	struct ctx c = {.e = e, .env = env, .j = j, .index = index};
	char reason[256];

	if (j->phase == RP_CANARY) {
		snprintf(reason, sizeof(reason), MEM_INTERRUPTED "%s", why);
		conclude_all(&c, false, SAFE_VERDICT_INCONCLUSIVE, NULL, reason);
	}
	trial_release(j);
	if (e->busy == index)
		e->busy = -1;
	memset(j, 0, sizeof(*j));
}

static bool same_def(const struct job *j, const struct safe_redirect *d)
{
	if (strcmp(j->target, d->target) || j->discover != !d->function ||
	    (d->function && strcmp(j->function, d->function)) ||
	    strcmp(j->object, d->object ?: "") || strcmp(j->library, d->library ?: "") ||
	    j->def.n_alternatives != d->n_alternatives || strcmp(j->class, d->class) ||
	    j->def.canary_processes != d->canary_processes ||
	    j->def.restart_on_crash != d->restart_on_crash || j->def.promote != d->promote ||
	    j->def.new_processes != d->new_processes || j->def.hot_share != d->hot_share)
		return false;
	for (size_t i = 0; i < d->n_alternatives; i++)
		if (strcmp(j->alts[i], d->alternatives[i]))
			return false;
	return true;
}

void rd_engine_configure(struct rd_engine *e, const struct rd_env *env)
{
	const struct safe_policy *p = env->policy;

	for (int i = 0; i < RD_MAX; i++)
		e->jobs[i].seen = false;
	for (size_t k = 0; p && k < p->n_redirects; k++) {
		const struct safe_redirect *d = &p->redirects[k];
		int slot = -1;

		for (int i = 0; i < RD_MAX; i++)
			if (e->jobs[i].used && !strcmp(e->jobs[i].name, d->name))
				slot = i;
		if (slot >= 0 && !same_def(&e->jobs[slot], d)) {
			job_end(e, slot, env, "the redirect changed in the policy");
			slot = -1;
		}
		for (int i = 0; slot < 0 && i < RD_MAX; i++)
			if (!e->jobs[i].used)
				slot = i;
		if (slot < 0)
			break;
		if (!e->jobs[slot].used) {
			struct job *j = &e->jobs[slot];

			j->used = true;
			hs_strlcpy(j->name, d->name, sizeof(j->name));
			hs_strlcpy(j->target, d->target, sizeof(j->target));
			hs_strlcpy(j->function, d->function ?: "", sizeof(j->function));
			j->discover = !d->function;
			hs_strlcpy(j->object, d->object ?: "", sizeof(j->object));
			hs_strlcpy(j->library, d->library ?: "", sizeof(j->library));
			hs_strlcpy(j->class, d->class, sizeof(j->class));
			snprintf(j->source, sizeof(j->source), SOURCE_PREFIX "%s", d->name);
			for (size_t i = 0; i < d->n_alternatives && i < RD_ALTS; i++)
				hs_strlcpy(j->alts[i], d->alternatives[i], sizeof(j->alts[i]));
			j->hot_share = NAN;
			j->phase = RP_WAIT;
			log_info("redirect %s: %s of target %s, %zu alternatives%s, class %s",
				 d->name, d->function ?: "the hottest function with alternatives",
				 d->target, d->n_alternatives,
				 d->n_alternatives ? "" : " (found by name)", d->class);
		}
		/* the policy's strings of this load */
		e->jobs[slot].def = *d;
		e->jobs[slot].seen = true;
	}
	for (int i = 0; i < RD_MAX; i++)
		if (e->jobs[i].used && !e->jobs[i].seen)
			job_end(e, i, env, "the redirect was removed from the policy");
}

void rd_engine_tick(struct rd_engine *e, const struct rd_env *env)
{
	for (int i = 0; i < RD_MAX; i++) {
		struct ctx c = {.e = e, .env = env, .j = &e->jobs[i], .index = i};

		if (e->jobs[i].used)
			job_step(&c);
	}
}

int rd_engine_status(const struct rd_engine *e, int (*cb)(const struct rd_status *s, void *ud),
		     void *ud)
{
	int n = 0;

	for (int i = 0; e && i < RD_MAX; i++) {
		const struct job *j = &e->jobs[i];
		struct rd_status s;
		int r;

		if (!j->used)
			continue;
		s = (struct rd_status){.name = j->name,
				       .target = j->target,
				       .function = j->function[0] ? j->function : "(to be found)",
				       .phase = phase_names[j->phase],
				       .alternative = j->phase == RP_CANARY ||
							      j->phase == RP_KEPT ||
							      j->phase == RP_APPROVAL
							  ? j->alt
							  : "",
				       .tried = j->tried,
				       .processes = (unsigned)j->nprocs,
				       .hot_share = j->hot_share,
				       .change_id = j->phase == RP_CANARY || j->phase == RP_KEPT ||
							    j->phase == RP_APPROVAL
							? j->procs[0].id
							: 0,
				       .note = j->note};
		r = cb(&s, ud);
		if (r)
			return r;
		n++;
	}
	return n;
}

int rd_engine_live(const struct rd_engine *e, const struct rd_env *env,
		   int (*cb)(const struct rd_live *l, void *ud), void *ud)
{
	int n = 0;

	for (int i = 0; e && i < RD_MAX; i++) {
		const struct job *j = &e->jobs[i];

		for (size_t k = 0; j->used && k < j->nprocs; k++) {
			struct safe_live *l = safe_changes_live(env->changes, j->procs[k].id);
			struct rd_live v;
			int r;

			if (!l)
				continue;
			v = (struct rd_live){.name = j->name,
					     .pid = j->procs[k].pid,
					     .function =
						 j->function[0] ? j->function : "(to be found)",
					     .alternative = j->alt,
					     .addr = l->res.req.patch.addr,
					     .to = l->res.req.patch.to,
					     .patch_at = l->res.patch_at,
					     .len = l->res.patch_len,
					     .layout = l->res.patch_layout,
					     .on = !l->res.reverted,
					     .kept = l->kept,
					     .change_id = j->procs[k].id};
			act_hex_format(l->res.patch_orig, l->res.patch_len, v.before,
				       sizeof(v.before));
			act_hex_format(l->res.patch_new, l->res.patch_len, v.after,
				       sizeof(v.after));
			r = cb(&v, ud);
			if (r)
				return r;
			n++;
		}
	}
	return n;
}

int rd_engine_apply(struct rd_engine *e, const struct rd_env *env, const char *name,
		    const char *alternative, char *why, size_t size)
{
	for (int i = 0; e && i < RD_MAX; i++) {
		struct job *j = &e->jobs[i];

		if (!j->used || strcmp(j->name, name))
			continue;
		if (j->phase == RP_APPROVAL || j->phase == RP_CANARY || j->phase == RP_KEPT) {
			snprintf(why, size,
				 "redirect %s is in its %s phase (change %" PRId64 "); revert it "
				 "first",
				 name, phase_names[j->phase], j->procs[0].id);
			return -EBUSY;
		}
		if (!j->function[0]) {
			snprintf(
			    why, size,
			    "redirect %s has not found its function yet (the hottest of target "
			    "%s with alternatives): %s",
			    name, j->target, j->note[0] ? j->note : "waiting");
			return -EAGAIN;
		}
		if (alternative && *alternative) {
			hs_strlcpy(j->forced, alternative, sizeof(j->forced));
		} else {
			struct ctx c = {.e = e, .env = env, .j = j, .index = i};
			const struct obs_members *m = members_of(env, j->target);

			if (!j->listed && m && m->n)
				list_alts(&c, m->pids[0]);
			if (j->next >= j->nalts) {
				snprintf(why, size,
					 "redirect %s has no alternative left to try; name one",
					 name);
				return -ENOENT;
			}
			hs_strlcpy(j->forced, j->alts[j->next++], sizeof(j->forced));
		}
		j->force = true;
		snprintf(why, size, "redirect %s: a trial of %s starts at the next tick", name,
			 j->forced);
		log_notice("%s (homeostat redirect apply)", why);
		return 0;
	}
	snprintf(why, size, "no redirect named '%s' in the policy", name);
	return -ENOENT;
}

int rd_engine_revert(struct rd_engine *e, const struct rd_env *env, int64_t id, char *why,
		     size_t size)
{
	for (int i = 0; e && i < RD_MAX; i++) {
		struct job *j = &e->jobs[i];
		struct ctx c = {.e = e, .env = env, .j = j, .index = i};
		size_t n = j->nprocs;

		for (size_t k = 0; j->used && k < j->nprocs; k++) {
			if (j->procs[k].id != id)
				continue;
			conclude_all(&c, false, SAFE_VERDICT_ROLLBACK, NULL,
				     "reverted by an operator (homeostat redirect revert)");
			mem_audit(env->mem, "operator", "redirect.revert", id,
				  "redirect %s: %s -> %s reverted in %zu processes", j->name,
				  j->function, j->alt, n);
			trial_release(j);
			note(&c, "reverted by an operator in %zu processes (change %" PRId64 ")", n,
			     id);
			set_phase(&c, RP_DONE);
			snprintf(why, size, "redirect %s: %s -> %s reverted in %zu processes",
				 j->name, j->function, j->alt, n);
			return 0;
		}
	}
	snprintf(why, size, "change %" PRId64 " is no live redirect", id);
	return -ENOENT;
}

size_t rd_engine_waiting(const struct rd_engine *e, int64_t *ids, size_t max)
{
	size_t n = 0;

	for (int i = 0; e && i < RD_MAX && n < max; i++)
		if (e->jobs[i].used && e->jobs[i].phase == RP_APPROVAL)
			ids[n++] = e->jobs[i].procs[0].id;
	return n;
}

void rd_engine_close(struct rd_engine *e, const struct rd_env *env)
{
	if (!e)
		return;
	for (int i = 0; i < RD_MAX; i++)
		if (e->jobs[i].used)
			job_end(e, i, env, "the daemon stopped");
	obs_sym_free(e->sym);
	free(e);
}
