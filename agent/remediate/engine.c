/* engine.c - the runbook engine (see engine.h): one state machine per (runbook, target).
 *
 * Each tick: every target some runbook watches gets the tick's sample in its series (by
 * target name, so that a reload that renumbers targets keeps the history), then every
 * instance advances by at most one phase that waits (a capture window, an approval, a
 * verification) and through any number that do not (alerts, refused steps). Everything an
 * instance does is said in its episode (mem_episode_note) and in the log, with the change
 * ids that `homeostat history` and `homeostat rollback` take.
 *
 * Invariants: an instance has an open episode exactly while it is in DIAGNOSE, ACT, WAIT or
 * VERIFY; a change id in WAIT is PENDING_APPROVAL or APPROVED in memory until the instance
 * moves on; kept changes with a revert rule are watched in watches[] until undone.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "memory/memory.h"
#include "observe/targets.h"
#include "remediate/conditions.h"
#include "remediate/engine.h"
#include "remediate/internal.h"
#include "safety/changes.h"

#define INST_MAX	  128
#define SERIES_MAX	  (HS_NTARGETS)
#define WATCH_MAX	  4
#define IDLE_FRACTION	  0.05	/* a CPU hog below 5% of a CPU ... */
#define IDLE_FOR_MS	  10000 /* ... for 10 s is gone */
#define FATAL_TICKS	  120	/* crash_report looks this many ticks back */
#define ERROR_REPEAT_MS	  60000
#define COOLDOWN_MAX_MS	  (7LL * 24 * 3600 * 1000)
#define CPU_PICK_AFTER_MS 900 /* a CPU hog is picked over at least this long */
#define HOG_MIN_FRACTION  0.3 /* a process outside the target using less is no hog */

enum phase { PH_IDLE, PH_DIAGNOSE, PH_ACT, PH_WAIT, PH_VERIFY, PH_HOLD };

static const char *const phase_names[] = {"idle", "diagnose", "act", "approval", "verify", "hold"};

struct series_slot {
	bool used;
	bool seen; /* watched by a runbook this tick */
	char name[OBS_TARGET_NAME_MAX];
	struct heal_series *s;
	uint64_t (*fatal)[64]; /* FATAL_TICKS rings of fatal signals by number */
	unsigned fatal_next;
};

struct watch {
	int64_t change_id;
	int revert; /* enum heal_revert */
	pid_t pid;
	unsigned long long start;
	uint64_t last_ticks, last_ms, idle_since;
};

struct inst {
	bool used;
	bool seen;
	char runbook[HEAL_NAME_MAX + 1];
	char target[OBS_TARGET_NAME_MAX];
	struct heal_detect_state det;
	enum phase phase;
	uint64_t phase_ms;
	int64_t episode;
	/* diagnose */
	size_t capture;
	struct heal_capture_run *run;
	struct heal_cpu_snap cpu;
	bool picked;
	struct heal_subject_pick self, hog;
	/* remediate */
	size_t step;
	int attempts, failures;
	int64_t change_id;
	int64_t restart_id; /* the restart that makes change_id take effect; 0: none */
	bool notify;
	int64_t not_before_ms;
	uint64_t deadline;
	uint64_t cooldown_until;
	bool said_wait;
	uint64_t last_error_ms;
	char note[HEAL_NOTE_MAX];
	char fired_why[HEAL_WHY_MAX]; /* the detect conditions when the episode started */
	struct watch watches[WATCH_MAX];
};

struct heal_engine {
	struct series_slot series[SERIES_MAX];
	struct inst inst[INST_MAX];
};

struct ctx {
	struct heal_engine *e;
	const struct heal_env *env;
	const struct heal_runbook *rb;
	struct inst *in;
	struct series_slot *slot;
};

int heal_engine_open(struct heal_engine **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

/* ---- series ---- */

static struct series_slot *series_get(struct heal_engine *e, const char *name, bool create)
{
	struct series_slot *free_slot = NULL;

	for (int i = 0; i < SERIES_MAX; i++) {
		if (e->series[i].used && streq(e->series[i].name, name))
			return &e->series[i];
		if (!e->series[i].used && !free_slot)
			free_slot = &e->series[i];
	}
	if (!create || !free_slot)
		return NULL;
	free_slot->s = calloc(1, sizeof(*free_slot->s));
	free_slot->fatal = calloc(FATAL_TICKS, sizeof(*free_slot->fatal));
	if (!free_slot->s || !free_slot->fatal) {
		free(free_slot->s);
		free(free_slot->fatal);
		free_slot->s = NULL;
		free_slot->fatal = NULL;
		return NULL;
	}
	heal_series_reset(free_slot->s);
	hs_strlcpy(free_slot->name, name, sizeof(free_slot->name));
	free_slot->used = true;
	free_slot->fatal_next = 0;
	return free_slot;
}

static void series_free(struct series_slot *s)
{
	free(s->s);
	free(s->fatal);
	memset(s, 0, sizeof(*s));
}

static void fatal_window(const struct series_slot *s, uint64_t out[64])
{
	memset(out, 0, 64 * sizeof(uint64_t));
	for (int t = 0; t < FATAL_TICKS; t++)
		for (int sig = 0; sig < 64; sig++)
			out[sig] += s->fatal[t][sig];
}

/* ---- episodes ---- */

static void note(struct ctx *c, const char *fmt, ...) HS_PRINTF(2, 3);
static void note(struct ctx *c, const char *fmt, ...)
{
	struct inst *in = c->in;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(in->note, sizeof(in->note), fmt, ap);
	va_end(ap);
	log_notice("runbook %s on %s: %s", in->runbook, in->target, in->note);
	if (in->episode &&
	    mem_episode_note(c->env->mem, in->episode, c->env->now_ms, "%s", in->note) < 0)
		log_warn("cannot note episode %" PRId64 ": %s", in->episode,
			 mem_last_error(c->env->mem));
}

static void set_phase(struct ctx *c, enum phase p)
{
	c->in->phase = p;
	c->in->phase_ms = c->env->mono_ms;
	c->in->said_wait = false;
}

static void episode_end(struct ctx *c, enum mem_episode_state state, const char *fmt, ...)
    HS_PRINTF(3, 4);
static void episode_end(struct ctx *c, enum mem_episode_state state, const char *fmt, ...)
{
	struct inst *in = c->in;
	double cooldown = c->rb ? (double)c->rb->limits.cooldown_ms : 0;
	char text[HEAL_NOTE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (in->run) {
		heal_capture_free(in->run);
		in->run = NULL;
	}
	heal_cpu_snap_free(&in->cpu);
	if (in->episode) {
		if (mem_episode_close(c->env->mem, in->episode, state, c->env->now_ms, text) < 0)
			log_warn("cannot close episode %" PRId64 ": %s", in->episode,
				 mem_last_error(c->env->mem));
		log_notice("runbook %s on %s: episode %" PRId64 " %s: %s", in->runbook, in->target,
			   in->episode, mem_episode_state_name(state), text);
	}
	hs_strlcpy(in->note, text, sizeof(in->note));
	in->episode = 0;
	in->change_id = 0;
	if (c->rb) {
		for (int i = 0; i < in->failures; i++)
			cooldown *= c->rb->limits.backoff;
		if (cooldown > COOLDOWN_MAX_MS)
			cooldown = COOLDOWN_MAX_MS;
		in->cooldown_until = c->env->mono_ms + (uint64_t)cooldown;
	}
	set_phase(c, PH_HOLD);
}

static const struct safe_target *policy_target(const struct ctx *c)
{
	return safe_policy_target(c->env->policy, c->in->target);
}

static int target_index(const struct ctx *c)
{
	int idx = obs_targets_index(obs_targets(c->env->obs), c->in->target);

	return idx < 0 ? 0 : idx;
}

/* ---- subject ---- */

static bool needs_cpu(const struct heal_runbook *rb, bool *hog)
{
	bool need = false;

	*hog = false;
	for (size_t i = 0; i < rb->n_remediate; i++) {
		const struct heal_step *s = &rb->remediate[i];

		if (s->subject == HEAL_SUBJECT_CPU_HOG) {
			*hog = true;
			need = true;
		}
		if (s->action == HEAL_ACT_NICE || s->action == HEAL_ACT_CGROUP_CPU_WEIGHT ||
		    s->action == HEAL_ACT_CGROUP_CPU_QUOTA)
			need = true;
	}
	return need;
}

/* The first step that changes something decides how "self" is chosen. */
static int self_rule(const struct heal_runbook *rb)
{
	for (size_t i = 0; i < rb->n_remediate; i++)
		if (rb->remediate[i].action != HEAL_ACT_ALERT)
			return rb->remediate[i].action;
	return HEAL_ACT_ALERT;
}

/* Picks the subjects; returns 1 when it must wait for a second CPU reading. */
static int pick_subjects(struct ctx *c)
{
	struct inst *in = c->in;
	bool hog, cpu = needs_cpu(c->rb, &hog);
	int rule = self_rule(c->rb), err = 0;
	pid_t *procs = NULL;
	size_t n = 0;

	if (cpu && c->env->mono_ms - in->cpu.at_ms < CPU_PICK_AFTER_MS)
		return 1;
	if (heal_procs(c->env->obs, target_index(c), &procs, &n)) {
		note(c, "cannot list the processes of the target");
		return 0;
	}
	if (rule == HEAL_ACT_RLIMIT_NOFILE)
		err = heal_pick_fd(procs, n, &in->self);
	else if (rule == HEAL_ACT_NICE || rule == HEAL_ACT_CGROUP_CPU_WEIGHT ||
		 rule == HEAL_ACT_CGROUP_CPU_QUOTA)
		err = heal_pick_cpu(&in->cpu, procs, n, true, c->env->policy, c->env->mono_ms,
				    &in->self);
	else
		err = heal_pick_rss(procs, n, &in->self);
	if (err)
		memset(&in->self, 0, sizeof(in->self));
	if (hog &&
	    (heal_pick_cpu(&in->cpu, procs, n, false, c->env->policy, c->env->mono_ms, &in->hog) ||
	     in->hog.cpu < HOG_MIN_FRACTION)) {
		if (in->hog.pid)
			note(c, "the busiest process outside the target is no hog: %s",
			     in->hog.why);
		memset(&in->hog, 0, sizeof(in->hog));
	}
	free(procs);
	if (in->self.pid)
		note(c, "subject: %s", in->self.why);
	if (hog && in->hog.pid)
		note(c, "CPU hog: %s", in->hog.why);
	if (in->self.pid && in->episode)
		mem_audit(c->env->mem, "homeostat", "episode.subject", 0,
			  "episode %" PRId64 ": pid %d", in->episode, (int)in->self.pid);
	in->picked = true;
	return 0;
}

/* ---- phases ---- */

static void start_episode(struct ctx *c)
{
	struct inst *in = c->in;
	bool hog;
	int64_t id;

	if (safe_gate_storm_note(&c->env->changes->gate, in->runbook, c->env->now_ms) == 1) {
		log_warn(
		    "storm: %d runbooks fired within %lld s; homeostat stops changing the host "
		    "until an operator resumes it ('homeostat resume')",
		    c->env->changes->gate.frozen_runbooks,
		    (long long)(c->env->changes->gate.limits.storm_window_ms / 1000));
		mem_audit(c->env->mem, "homeostat", "storm", 0,
			  "%d runbooks fired at once; frozen until an operator resumes",
			  c->env->changes->gate.frozen_runbooks);
	}
	id = mem_episode_open(c->env->mem, in->runbook, in->target, 0, in->det.why, c->env->now_ms);
	if (id < 0) {
		log_warn("runbook %s on %s fired but memory cannot record it, not acting: %s",
			 in->runbook, in->target, mem_last_error(c->env->mem));
		return;
	}
	in->episode = id;
	hs_strlcpy(in->fired_why, in->det.why, sizeof(in->fired_why));
	in->capture = 0;
	in->step = 0;
	in->attempts = 0;
	in->picked = false;
	memset(&in->self, 0, sizeof(in->self));
	memset(&in->hog, 0, sizeof(in->hog));
	log_notice("runbook %s fired on %s: episode %" PRId64 ": %s", in->runbook, in->target, id,
		   in->det.why);
	if (needs_cpu(c->rb, &hog))
		heal_cpu_snap_take(&in->cpu, c->env->mono_ms);
	set_phase(c, PH_DIAGNOSE);
}

static void act_step(struct ctx *c);

static void diagnose_step(struct ctx *c)
{
	struct inst *in = c->in;
	const struct heal_runbook *rb = c->rb;
	char why[HEAL_NOTE_MAX], summary[HEAL_NOTE_MAX];

	if (!in->picked) {
		bool hog, only_hog = true;

		if (pick_subjects(c))
			return;
		needs_cpu(rb, &hog);
		for (size_t i = 0; i < rb->n_remediate; i++)
			if (rb->remediate[i].action != HEAL_ACT_ALERT &&
			    rb->remediate[i].subject != HEAL_SUBJECT_CPU_HOG)
				only_hog = false;
		if (hog && only_hog && !in->hog.pid) {
			episode_end(c, MEM_EPISODE_UNRESOLVED,
				    "no process outside the target used %.0f%% of a CPU or more: "
				    "the delay is not a CPU hog's, nothing to do",
				    HOG_MIN_FRACTION * 100);
			return;
		}
	}
	for (;;) {
		if (!in->run) {
			struct heal_capture_ctx cc = {0};
			pid_t *procs = NULL;
			size_t n = 0;
			uint64_t fatal[64];
			int err;

			if (in->capture >= rb->n_diagnose) {
				set_phase(c, PH_ACT);
				act_step(c);
				return;
			}
			cc.c = &rb->diagnose[in->capture];
			cc.subject = in->self.pid;
			cc.target = in->target;
			cc.series = c->slot->s;
			fatal_window(c->slot, fatal);
			cc.fatal_by_sig = fatal;
			cc.window_ms = (uint64_t)FATAL_TICKS * (uint64_t)c->env->policy->tick_ms;
			heal_procs(c->env->obs, target_index(c), &procs, &n);
			cc.procs = procs;
			cc.nprocs = target_index(c) ? n : 0;
			err = heal_capture_start(&cc, c->env->mono_ms, &in->run, why, sizeof(why));
			free(procs);
			if (err) {
				note(c, "capture %s not taken: %s",
				     heal_capture_names[rb->diagnose[in->capture].capture], why);
				in->capture++;
				continue;
			}
		}
		if (rb->diagnose[in->capture].capture == HEAL_CAPTURE_CRASH_REPORT) {
			pid_t *procs = NULL;
			size_t n = 0;

			if (heal_procs(c->env->obs, target_index(c), &procs, &n) == 0 &&
			    target_index(c))
				heal_capture_members(in->run, procs, n);
			free(procs);
		}
		int r = heal_capture_poll(in->run, c->env->mono_ms);

		if (r == 1)
			return;
		if (r == 0) {
			char *text = NULL;
			size_t len = 0;

			if (heal_capture_result(in->run, &text, &len, summary, sizeof(summary)) ==
			    0) {
				const char *kind =
				    heal_capture_names[rb->diagnose[in->capture].capture];
				int64_t d =
				    mem_diagnosis_add(c->env->mem, in->episode, c->env->now_ms,
						      kind, summary, text, len);

				if (d > 0)
					note(c, "diagnosis %" PRId64 " (%s): %s", d, kind, summary);
				else
					note(c, "diagnosis %s not stored (%s): %s", kind,
					     mem_last_error(c->env->mem), summary);
				free(text);
			}
		} else {
			note(c, "capture %s failed: %s",
			     heal_capture_names[rb->diagnose[in->capture].capture], strerror(-r));
		}
		heal_capture_free(in->run);
		in->run = NULL;
		in->capture++;
	}
}

static bool transient(enum safe_rule r)
{
	return r == SAFE_RULE_STORM || r == SAFE_RULE_CHANGES_PER_HOUR ||
	       r == SAFE_RULE_CONCURRENT || r == SAFE_RULE_COOLDOWN || r == SAFE_RULE_FLAP;
}

static void alert(struct ctx *c, const struct heal_step *s)
{
	const char *msg =
	    s->params_set && s->params.alert.message ? s->params.alert.message : c->rb->description;

	log_warn("ALERT runbook %s on %s (episode %" PRId64 "): %s", c->in->runbook, c->in->target,
		 c->in->episode, msg ?: "");
	mem_audit(c->env->mem, "homeostat", "alert", 0, "runbook %s on %s, episode %" PRId64 ": %s",
		  c->in->runbook, c->in->target, c->in->episode, msg ?: "");
	note(c, "alert: %s", msg ?: "");
}

static void fill_in(struct ctx *c, const struct heal_step *s, const struct heal_subject_pick *sub,
		    struct safe_change_in *ci, char *why, size_t whysize);

/* A knob read when the target starts (somaxconn at listen()): restart it, as the second half
 * of the change the gate (and an operator, for its class) admitted. 0, or -errno. */
static int companion_restart(struct ctx *c, const struct heal_step *s)
{
	struct heal_step rs = {.action = HEAL_ACT_RESTART, .class_name = s->class_name};
	struct safe_change_in ci;
	struct safe_change_out out;
	char why[HEAL_NOTE_MAX], reason[4096];
	int err;

	rs.params.restart.grace_ms = 5000;
	rs.why = "the value takes effect when the target restarts";
	fill_in(c, &rs, &c->in->self, &ci, reason, sizeof(reason));
	ci.p.part_of_change = true;
	ci.p.approved = true;
	err = heal_step_request(&rs, &c->in->self, policy_target(c), &ci.p.req, why, sizeof(why));
	if (err) {
		note(c, "the restart that makes it take effect is not possible: %s", why);
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
	c->in->restart_id = out.change_id;
	note(c, "change %" PRId64 ": restart command started so that the value takes effect",
	     out.change_id);
	return 0;
}

static void on_applied(struct ctx *c, const struct safe_change_out *out)
{
	struct inst *in = c->in;
	const struct heal_step *s = &c->rb->remediate[in->step];

	in->attempts++;
	in->change_id = out->change_id;
	in->restart_id = 0;
	if (s->action == HEAL_ACT_SYSCTL && s->params.sysctl.restart && companion_restart(c, s))
		in->deadline = 0; /* verify concludes at once: rolled back, escalated */
	else
		in->deadline = c->env->mono_ms + (uint64_t)c->rb->verify.within_ms;
	note(c, "change %" PRId64 " applied: %s %s -> %s; verifying within %lld s", out->change_id,
	     heal_action_names[c->rb->remediate[in->step].action],
	     out->before[0] ? out->before : "-", out->after[0] ? out->after : "-",
	     (long long)(c->rb->verify.within_ms / 1000));
	set_phase(c, PH_VERIFY);
}

static void fill_in(struct ctx *c, const struct heal_step *s, const struct heal_subject_pick *sub,
		    struct safe_change_in *ci, char *why, size_t whysize)
{
	struct inst *in = c->in;

	memset(ci, 0, sizeof(*ci));
	ci->p.source = in->runbook;
	ci->p.target = in->target;
	ci->p.action_class = s->class_name;
	ci->p.comm = sub && sub->pid ? sub->comm : NULL;
	ci->p.now_ms = c->env->now_ms;
	ci->p.processes = 1;
	ci->p.targets = 1;
	ci->force_dry_run = c->env->force_dry_run;
	ci->episode_id = in->episode;
	snprintf(why, whysize, "runbook %s, episode %" PRId64 ": %.1024s%s%.400s%s%.512s",
		 in->runbook, in->episode, in->fired_why, sub && sub->pid ? "; " : "",
		 sub && sub->pid ? sub->why : "", s->why ? "; " : "", s->why ?: "");
	ci->why = why;
}

static void act_step(struct ctx *c)
{
	struct inst *in = c->in;
	const struct heal_runbook *rb = c->rb;

	for (;;) {
		struct safe_change_in ci;
		struct safe_change_out out;
		struct safe_decision_out pre;
		const struct heal_step *s;
		const struct heal_subject_pick *sub;
		struct safe_policy dry;
		const struct safe_policy *pol = c->env->policy;
		char why[HEAL_NOTE_MAX], reason[4096];
		int err;

		if (in->step >= rb->n_remediate) {
			episode_end(c, MEM_EPISODE_UNRESOLVED,
				    "every step of the ladder was tried; the failure persists");
			return;
		}
		if (in->attempts >= rb->limits.max_attempts) {
			episode_end(c, MEM_EPISODE_UNRESOLVED,
				    "%d attempts, the limit of the runbook", in->attempts);
			return;
		}
		s = &rb->remediate[in->step];
		if (s->action == HEAL_ACT_ALERT) {
			alert(c, s);
			if (++in->step == rb->n_remediate) {
				episode_end(c, MEM_EPISODE_UNRESOLVED, "a human was alerted");
				return;
			}
			continue;
		}
		sub = s->subject == HEAL_SUBJECT_CPU_HOG ? &in->hog : &in->self;
		fill_in(c, s, sub, &ci, reason, sizeof(reason));
		err = heal_step_request(s, sub, policy_target(c), &ci.p.req, why, sizeof(why));
		if (err) {
			note(c, "step %zu (%s) skipped: %s", in->step + 1,
			     heal_action_names[s->action], why);
			in->step++;
			continue;
		}
		/* Budgets, cooldowns and storms pass: wait for them without a record a tick. */
		if (c->env->force_dry_run && pol->mode == SAFE_MODE_ENFORCE) {
			dry = *pol;
			dry.mode = SAFE_MODE_DRY_RUN;
			pol = &dry;
		}
		safe_changes_refresh_counts(c->env->changes);
		safe_gate_use_policy(&c->env->changes->gate, c->env->policy);
		safe_gate_check(pol, &c->env->changes->gate, &ci.p, &pre);
		if (pre.decision == SAFE_DENY && transient(pre.rule)) {
			if (!in->said_wait)
				note(c, "step %zu (%s) waits: %s", in->step + 1,
				     heal_action_names[s->action], pre.reason);
			in->said_wait = true;
			return;
		}
		err = safe_changes_propose(c->env->changes, c->env->policy, &ci, &out);
		if (err) {
			note(c, "step %zu (%s) not proposed: memory failed (%s)", in->step + 1,
			     heal_action_names[s->action], strerror(-err));
			return; /* try again next tick */
		}
		switch (out.d.decision) {
		case SAFE_ALLOW:
			if (out.err) {
				note(c, "change %" PRId64 " (%s) failed: %s; escalating",
				     out.change_id, heal_action_names[s->action], out.why);
				in->failures++;
				in->attempts++;
				in->step++;
				continue;
			}
			on_applied(c, &out);
			return;
		case SAFE_DRY_RUN:
			note(c, "change %" PRId64 " recorded, not made: %s", out.change_id,
			     out.d.reason);
			episode_end(c, MEM_EPISODE_DRY_RUN, "dry run: nothing was changed");
			return;
		case SAFE_NEED_APPROVAL:
		case SAFE_NOTIFY_THEN_ALLOW:
			in->change_id = out.change_id;
			in->notify = out.d.decision == SAFE_NOTIFY_THEN_ALLOW;
			in->not_before_ms = out.d.not_before_ms;
			note(c, "change %" PRId64 " (%s %s -> %s): %s; 'homeostat %s %" PRId64 "'",
			     out.change_id, heal_action_names[s->action],
			     out.before[0] ? out.before : "-", out.after[0] ? out.after : "-",
			     out.d.reason, in->notify ? "reject" : "approve", out.change_id);
			set_phase(c, PH_WAIT);
			return;
		case SAFE_DENY:
		default:
			note(c, "change %" PRId64 " (%s) refused: %s", out.change_id,
			     heal_action_names[s->action], out.d.reason);
			episode_end(c, MEM_EPISODE_REFUSED, "refused by the safety policy");
			return;
		}
	}
}

static void wait_step(struct ctx *c)
{
	_cleanup_(mem_change_freep) struct mem_change *ch = NULL;
	struct inst *in = c->in;
	struct safe_change_in ci;
	struct safe_change_out out;
	char reason[4096];
	int err;

	err = mem_change_get(c->env->mem, in->change_id, &ch);
	if (err)
		return;
	switch (ch->state) {
	case MEM_STATE_PENDING_APPROVAL:
		if (in->notify && c->env->now_ms >= in->not_before_ms &&
		    safe_changes_notify_due(c->env->changes, in->change_id) == 0)
			note(c, "change %" PRId64 ": notice period over, applying", in->change_id);
		return;
	case MEM_STATE_APPROVED:
		fill_in(c, &c->rb->remediate[in->step], NULL, &ci, reason, sizeof(reason));
		err = safe_changes_apply_approved(c->env->changes, c->env->policy, in->change_id,
						  &ci, &out);
		if (err) {
			note(c, "change %" PRId64 " approved but not applied: %s", in->change_id,
			     strerror(-err));
			episode_end(c, MEM_EPISODE_UNRESOLVED, "the approved change could not run");
			return;
		}
		if (out.d.decision != SAFE_ALLOW) {
			note(c, "change %" PRId64 " approved, then refused: %s", in->change_id,
			     out.d.reason);
			episode_end(c, MEM_EPISODE_REFUSED, "refused by the safety policy");
			return;
		}
		if (out.err) {
			note(c, "change %" PRId64 " approved, and failed: %s; escalating",
			     in->change_id, out.why);
			in->failures++;
			in->attempts++;
			in->step++;
			set_phase(c, PH_ACT);
			act_step(c);
			return;
		}
		note(c, "change %" PRId64 " approved", in->change_id);
		on_applied(c, &out);
		return;
	case MEM_STATE_DENIED:
		note(c, "change %" PRId64 " was rejected, or its approval expired", in->change_id);
		episode_end(c, MEM_EPISODE_UNRESOLVED,
			    "approval refused; homeostat does not go "
			    "past a human's no");
		return;
	default:
		note(c, "change %" PRId64 " is %s: no longer waiting", in->change_id,
		     mem_state_name(ch->state));
		episode_end(c, MEM_EPISODE_ABORTED, "the change left the approval queue");
		return;
	}
}

/* The verify conditions as a JSON object (the verdict's statistics) and a sentence. */
static bool verify_eval(struct ctx *c, char *json, size_t jsize, char *text, size_t tsize)
{
	const struct heal_verify *v = &c->rb->verify;
	size_t jo, to = 0;
	bool all = true;

	jo = (size_t)snprintf(json, jsize,
			      "{\"test\":\"runbook-verify\",\"after_ms\":%llu,\"within_ms\":%lld,"
			      "\"conditions\":[",
			      (unsigned long long)(c->env->mono_ms - c->in->phase_ms),
			      (long long)v->within_ms);
	text[0] = '\0';
	for (size_t i = 0; i < v->n_when; i++) {
		struct heal_eval ev;
		const struct heal_condition *cd = &v->when[i];

		if (heal_condition_eval(cd, c->slot->s,
					c->slot->s->filled ? c->env->snap->at_ms : 0, &ev) < 0) {
			ev.holds = false;
			ev.value = NAN;
		}
		all = all && ev.holds;
		if (jo < jsize)
			jo += (size_t)snprintf(
			    json + jo, jsize - jo,
			    "%s{\"signal\":\"%s\",\"aggregation\":\"%s\",\"op\":\"%s\","
			    "\"threshold\":%.15g,\"value\":%s%.15g%s,\"holds\":%s}",
			    i ? "," : "", cd->signal, obs_agg_names[cd->aggregation],
			    heal_op_names[cd->op], cd->threshold, isfinite(ev.value) ? "" : "\"",
			    isfinite(ev.value) ? ev.value : 0, isfinite(ev.value) ? "" : "\"",
			    ev.holds ? "true" : "false");
		if (to < tsize)
			to += (size_t)snprintf(text + to, tsize - to, "%s%s", i ? "; " : "",
					       ev.explain);
	}
	if (jo < jsize)
		snprintf(json + jo, jsize - jo, "]}");
	return all;
}

static void watch_add(struct inst *in, int64_t id, int revert, const struct heal_subject_pick *s)
{
	for (int i = 0; i < WATCH_MAX; i++)
		if (!in->watches[i].change_id) {
			in->watches[i] = (struct watch){.change_id = id,
							.revert = revert,
							.pid = s ? s->pid : 0,
							.start = s ? s->start : 0};
			return;
		}
	log_warn("runbook %s on %s: too many changes to watch; change %" PRId64
		 " stays until an operator rolls it back",
		 in->runbook, in->target, id);
}

/* Polls a restart change; 1 while its command runs, 0 done well, -errno failed (why set). */
static int restart_poll(struct ctx *c, int64_t id, char *why, size_t size)
{
	struct safe_live *l = id ? safe_changes_live(c->env->changes, id) : NULL;
	int r;

	if (!l || l->res.req.kind != ACT_KIND_RESTART || l->res.restart_done)
		return 0;
	r = act_poll(&l->res);
	if (r == -EINPROGRESS)
		return 1;
	if (r)
		hs_strlcpy(why, l->res.why, size);
	return r;
}

/* Concludes the step's change (and its companion restart) and escalates to the next step. */
static void escalate(struct ctx *c, const char *json, const char *fmt, ...) HS_PRINTF(3, 4);
static void escalate(struct ctx *c, const char *json, const char *fmt, ...)
{
	struct inst *in = c->in;
	char why[HEAL_NOTE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	safe_changes_conclude(c->env->changes, in->change_id, false, MEM_VERDICT_ROLLBACK, json,
			      why);
	if (in->restart_id)
		safe_changes_conclude(c->env->changes, in->restart_id, false, MEM_VERDICT_ROLLBACK,
				      json, why);
	note(c, "change %" PRId64 " rolled back: %s; escalating", in->change_id, why);
	in->failures++;
	in->step++;
	in->change_id = in->restart_id = 0;
	set_phase(c, PH_ACT);
	act_step(c);
}

static void verify_step(struct ctx *c)
{
	struct inst *in = c->in;
	const struct heal_step *s = &c->rb->remediate[in->step];
	char json[2048], text[HEAL_WHY_MAX], why[ACT_WHY_MAX];
	bool ok;
	int r1, r2;

	if (!in->deadline) {
		escalate(c, NULL, "the restart that makes it take effect could not run");
		return;
	}
	r1 = restart_poll(c, in->change_id, why, sizeof(why));
	r2 = r1 < 0 ? 0 : restart_poll(c, in->restart_id, why, sizeof(why));
	if (r1 < 0 || r2 < 0) {
		escalate(c, NULL, "the restart command failed: %s", why);
		return;
	}
	if ((r1 == 1 || r2 == 1) && c->env->mono_ms < in->deadline)
		return;
	ok = verify_eval(c, json, sizeof(json), text, sizeof(text));
	if (ok) {
		safe_changes_conclude(c->env->changes, in->change_id, true, MEM_VERDICT_KEEP, json,
				      text);
		if (in->restart_id)
			safe_changes_conclude(c->env->changes, in->restart_id, true,
					      MEM_VERDICT_KEEP, json, text);
		note(c, "change %" PRId64 " verified after %.1f s: %s", in->change_id,
		     (double)(c->env->mono_ms - in->phase_ms) / 1000.0, text);
		if (s->revert != HEAL_REVERT_NEVER)
			watch_add(in, in->change_id, s->revert,
				  s->subject == HEAL_SUBJECT_CPU_HOG ? &in->hog : &in->self);
		in->failures = 0;
		episode_end(c, MEM_EPISODE_RESOLVED, "resolved by change %" PRId64, in->change_id);
		in->restart_id = 0;
		return;
	}
	if (c->env->mono_ms < in->deadline)
		return;
	escalate(c, json, "verify did not hold within %lld s (%s)",
		 (long long)(c->rb->verify.within_ms / 1000), text);
}

/* Kept changes with a revert rule: undo them when their rule says so. */
static void watch_step(struct ctx *c)
{
	struct inst *in = c->in;

	for (int i = 0; i < WATCH_MAX; i++) {
		struct watch *w = &in->watches[i];
		char why[ACT_WHY_MAX + 128], by[128];
		double frac;
		int r;

		if (!w->change_id)
			continue;
		if (!safe_changes_live(c->env->changes, w->change_id)) {
			w->change_id = 0; /* rolled back by an operator meanwhile */
			continue;
		}
		if (w->revert == HEAL_REVERT_WHEN_CLEARED) {
			if (in->det.fired)
				continue;
			snprintf(by, sizeof(by), "runbook %s (its condition cleared)", in->runbook);
		} else {
			r = heal_proc_cpu(w->pid, w->start, c->env->mono_ms, &w->last_ticks,
					  &w->last_ms, &frac);
			if (r == -ESRCH) {
				safe_changes_forget(c->env->changes, w->change_id,
						    "its process exited; nothing left to undo");
				log_notice("runbook %s on %s: change %" PRId64
					   ": pid %d exited, nothing left to undo",
					   in->runbook, in->target, w->change_id, (int)w->pid);
				w->change_id = 0;
				continue;
			}
			if (frac < 0 || frac >= IDLE_FRACTION) {
				w->idle_since = 0;
				continue;
			}
			if (!w->idle_since)
				w->idle_since = c->env->mono_ms;
			if (c->env->mono_ms - w->idle_since < IDLE_FOR_MS)
				continue;
			snprintf(by, sizeof(by),
				 "runbook %s (pid %d used under %.0f%% of a CPU for %d s)",
				 in->runbook, (int)w->pid, IDLE_FRACTION * 100, IDLE_FOR_MS / 1000);
		}
		r = safe_changes_rollback(c->env->changes, w->change_id, by, why, sizeof(why));
		log_notice("runbook %s on %s: change %" PRId64 ": %s", in->runbook, in->target,
			   w->change_id, why);
		(void)r;
		w->change_id = 0;
	}
}

/* ---- the tick ---- */

static struct inst *inst_get(struct heal_engine *e, const char *runbook, const char *target)
{
	struct inst *free_inst = NULL;

	for (int i = 0; i < INST_MAX; i++) {
		if (e->inst[i].used && streq(e->inst[i].runbook, runbook) &&
		    streq(e->inst[i].target, target))
			return &e->inst[i];
		if (!e->inst[i].used && !free_inst)
			free_inst = &e->inst[i];
	}
	if (!free_inst)
		return NULL;
	memset(free_inst, 0, sizeof(*free_inst));
	free_inst->used = true;
	hs_strlcpy(free_inst->runbook, runbook, sizeof(free_inst->runbook));
	hs_strlcpy(free_inst->target, target, sizeof(free_inst->target));
	return free_inst;
}

static void inst_step(struct ctx *c)
{
	struct inst *in = c->in;
	const struct safe_policy *pol = c->env->policy;
	int r;

	r = heal_detect_step(&c->rb->detect, c->slot->s, c->env->snap->at_ms, &in->det);
	if (r < 0) {
		if (!in->last_error_ms || c->env->mono_ms - in->last_error_ms >= ERROR_REPEAT_MS) {
			log_warn("runbook %s on %s cannot be evaluated: %s", in->runbook,
				 in->target, in->det.why);
			in->last_error_ms = c->env->mono_ms;
		}
		return;
	}
	if (r == HEAL_DETECT_CLEARED) {
		log_info("runbook %s on %s: cleared", in->runbook, in->target);
		if (in->phase == PH_DIAGNOSE || in->phase == PH_ACT) {
			note(c, "the condition cleared by itself before any change");
			episode_end(c, MEM_EPISODE_CLEARED, "cleared without a change");
		} else if (in->phase == PH_WAIT) {
			if (mem_approval_decide(c->env->mem, in->change_id, false,
						"homeostat (condition cleared)") == 0)
				note(c, "change %" PRId64 " withdrawn: the condition cleared",
				     in->change_id);
			episode_end(c, MEM_EPISODE_CLEARED, "cleared while waiting for approval");
		}
	}
	watch_step(c);
	switch (in->phase) {
	case PH_IDLE:
	case PH_HOLD:
		if (in->phase == PH_HOLD && !in->det.fired)
			set_phase(c, PH_IDLE);
		if (in->phase != PH_IDLE || !in->det.fired)
			return;
		if (pol->mode == SAFE_MODE_OBSERVE && !c->env->force_dry_run) {
			if (r == HEAL_DETECT_FIRED)
				log_notice("runbook %s fired on %s (mode observe: no action): %s",
					   in->runbook, in->target, in->det.why);
			return;
		}
		if (c->env->paused) {
			if (r == HEAL_DETECT_FIRED)
				log_notice("runbook %s fired on %s (paused: no action): %s",
					   in->runbook, in->target, in->det.why);
			return;
		}
		if (c->env->mono_ms < in->cooldown_until) {
			if (r == HEAL_DETECT_FIRED)
				log_notice(
				    "runbook %s fired on %s, cooling down for %llu s more: %s",
				    in->runbook, in->target,
				    (unsigned long long)(in->cooldown_until - c->env->mono_ms) /
					1000,
				    in->det.why);
			return;
		}
		start_episode(c);
		if (in->phase == PH_DIAGNOSE)
			diagnose_step(c);
		return;
	case PH_DIAGNOSE:
		diagnose_step(c);
		return;
	case PH_ACT:
		if (!c->env->paused)
			act_step(c);
		return;
	case PH_WAIT:
		wait_step(c);
		return;
	case PH_VERIFY:
		verify_step(c);
		return;
	}
}

/* The targets a runbook watches: its policy target, or every target of the snapshot. */
static bool applies(const struct heal_runbook *rb, const char *target)
{
	if (rb->applies_to.target)
		return streq(rb->applies_to.target, target);
	if (rb->applies_to.policy_targets)
		return !streq(target, "other");
	return !(rb->applies_to.unit || rb->applies_to.cgroup || rb->applies_to.comm ||
		 rb->applies_to.exe);
}

static void inst_end(struct heal_engine *e, struct inst *in, const struct heal_env *env,
		     const char *why)
{
	struct ctx c = {.e = e, .env = env, .in = in};

	if (in->phase == PH_WAIT && in->change_id)
		mem_approval_decide(env->mem, in->change_id, false, "homeostat (episode ended)");
	if (in->episode)
		episode_end(&c, MEM_EPISODE_ABORTED, "%s", why);
	heal_cpu_snap_free(&in->cpu);
	memset(in, 0, sizeof(*in));
}

void heal_engine_tick(struct heal_engine *e, const struct heal_env *env)
{
	const struct obs_snapshot *snap = env->snap;

	if (!env->runbooks || !snap)
		return;
	for (int i = 0; i < SERIES_MAX; i++)
		e->series[i].seen = false;
	for (int i = 0; i < INST_MAX; i++)
		e->inst[i].seen = false;
	for (int t = 0; t < snap->ntargets; t++) {
		const struct obs_target_snap *ts = &snap->t[t];
		struct series_slot *slot = NULL;

		if (!ts->name)
			continue;
		for (size_t r = 0; r < env->runbooks->n; r++) {
			const struct heal_runbook *rb = &env->runbooks->v[r];
			struct ctx c = {.e = e, .env = env, .rb = rb};

			if (!rb->enabled || !applies(rb, ts->name))
				continue;
			if (!slot) {
				slot = series_get(e, ts->name, true);
				if (!slot)
					break;
				slot->seen = true;
				if (heal_series_push(slot->s, ts, snap->at_ms) == 0) {
					for (int s = 0; s < 64; s++)
						slot->fatal[slot->fatal_next][s] =
						    ts->fatal_by_sig[s];
					slot->fatal_next = (slot->fatal_next + 1) % FATAL_TICKS;
				}
			}
			c.slot = slot;
			c.in = inst_get(e, rb->name, ts->name);
			if (!c.in)
				continue;
			c.in->seen = true;
			inst_step(&c);
		}
	}
	/* Runbooks or targets that went away with a reload. */
	for (int i = 0; i < INST_MAX; i++)
		if (e->inst[i].used && !e->inst[i].seen)
			inst_end(e, &e->inst[i], env,
				 "its runbook or target is no longer configured");
	for (int i = 0; i < SERIES_MAX; i++)
		if (e->series[i].used && !e->series[i].seen)
			series_free(&e->series[i]);
}

int heal_engine_status(const struct heal_engine *e,
		       int (*cb)(const struct heal_status *s, void *ud), void *ud)
{
	int n = 0;

	for (int i = 0; i < INST_MAX; i++) {
		const struct inst *in = &e->inst[i];
		struct heal_status s;

		if (!in->used || (in->phase == PH_IDLE && !in->det.fired))
			continue;
		s = (struct heal_status){.runbook = in->runbook,
					 .target = in->target,
					 .phase = in->phase == PH_IDLE ? "detected"
								       : phase_names[in->phase],
					 .episode = in->episode,
					 .change_id = in->change_id,
					 .pid = in->self.pid,
					 .since_ms = in->phase_ms,
					 .note = in->note};
		n++;
		if (cb && cb(&s, ud) < 0)
			break;
	}
	return n;
}

size_t heal_engine_waiting(const struct heal_engine *e, int64_t *ids, size_t max)
{
	size_t n = 0;

	for (int i = 0; i < INST_MAX; i++)
		if (e->inst[i].used && e->inst[i].phase == PH_WAIT && e->inst[i].change_id &&
		    n < max)
			ids[n++] = e->inst[i].change_id;
	return n;
}

void heal_engine_close(struct heal_engine *e, const struct heal_env *env)
{
	if (!e)
		return;
	for (int i = 0; i < INST_MAX; i++)
		if (e->inst[i].used)
			inst_end(e, &e->inst[i], env, "the daemon stopped");
	for (int i = 0; i < SERIES_MAX; i++)
		if (e->series[i].used)
			series_free(&e->series[i]);
	free(e);
}
