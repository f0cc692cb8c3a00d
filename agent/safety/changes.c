/* changes.c - the life of every change through the safety layer (see changes.h).
 *
 * The order is the contract: gate, memory's should_attempt, record, then act. The actuator
 * spec (actuate/spec.c) is stored with the INTENT row before the actuator runs, with the
 * value before and the value wanted, so that a daemon killed between intent and apply can be
 * reverted by the next one: act_revert() writes the value before back only if the host holds
 * the value wanted, so a change that never happened is left alone.
 */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "memory/memory.h"
#include "safety/canary.h"
#include "safety/changes.h"

static int64_t now_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* snprintf into why (may be NULL); returns err. */
static int HS_PRINTF(4, 5) say(char *why, size_t size, int err, const char *fmt, ...)
{
	va_list ap;

	if (why && size) {
		va_start(ap, fmt);
		vsnprintf(why, size, fmt, ap);
		va_end(ap);
	}
	return err;
}

void safe_changes_init(struct safe_changes *sc, struct mem *mem)
{
	memset(sc, 0, sizeof(*sc));
	sc->mem = mem;
	safe_gate_init(&sc->gate, NULL);
}

/* The knob a change is remembered by: what an SRE would call the thing changed. */
void safe_change_knob(const struct act_request *q, char *buf, size_t size)
{
	switch (q->kind) {
	case ACT_KIND_RLIMIT:
		snprintf(buf, size, "RLIMIT_%s", act_rlimit_name(q->rlimit.resource) ?: "?");
		for (char *c = buf; *c; c++)
			*c = (char)toupper((unsigned char)*c);
		break;
	case ACT_KIND_SYSCTL:
		snprintf(buf, size, "%s", q->sysctl.name);
		break;
	case ACT_KIND_CGROUP:
		snprintf(buf, size, "%s/%s", q->cgroup.path, q->cgroup.file);
		break;
	case ACT_KIND_NICE:
		snprintf(buf, size, "nice");
		break;
	case ACT_KIND_SIGNAL:
		snprintf(buf, size, "SIG%s", sigabbrev_np(q->signal.signo) ?: "?");
		break;
	case ACT_KIND_RESTART:
		snprintf(buf, size, "restart");
		break;
	case ACT_KIND_FILE:
		snprintf(buf, size, "%s", q->file.path);
		break;
	case ACT_KIND_PATCH:
		snprintf(buf, size, "%s", q->patch.function);
		break;
	default:
		snprintf(buf, size, "%s", act_kind_name(q->kind) ?: "?");
	}
}

/* The value memory buckets: the soft limit alone for rlimits ("1024:4096" would be text). */
static void candidate_value(const struct act_request *q, const char *want, char *buf, size_t size)
{
	if (q->kind == ACT_KIND_RLIMIT)
		snprintf(buf, size, "%llu", (unsigned long long)q->rlimit.soft);
	else
		snprintf(buf, size, "%s", want);
}

/* Before and wanted values of q, as text; "" when the kind has no value. */
static int read_values(const struct act_request *q, char *before, char *want, char *why,
		       size_t whysize)
{
	int r;

	before[0] = want[0] = '\0';
	if (q->kind == ACT_KIND_PATCH) { /* what memory and the records compare: the names */
		snprintf(before, ACT_VALUE_MAX, "%s", q->patch.function);
		snprintf(want, ACT_VALUE_MAX, "%s", q->patch.alternative);
		return 0;
	}
	if (!act_desc(q->kind) || !act_desc(q->kind)->read)
		return 0;
	r = act_read(q, before, ACT_VALUE_MAX);
	if (r)
		return say(why, whysize, r, "cannot read the value before");
	return act_want(q, before, want, ACT_VALUE_MAX, why, whysize);
}

int safe_restart_request(const struct safe_target *t, int64_t timeout_ms, struct act_request *req,
			 char *why, size_t whysize)
{
	act_request_init(req, ACT_KIND_RESTART);
	/* The target's own command first; else its unit, where systemd is the service manager
	 * (sd_booted(): /run/systemd/system exists). */
	if (t && t->restart) {
		if (snprintf(req->restart.command, sizeof(req->restart.command), "%s",
			     t->restart) >= (int)sizeof(req->restart.command))
			return say(why, whysize, -ENAMETOOLONG, "restart command too long");
	} else if (t && t->unit && access("/run/systemd/system", F_OK) == 0) {
		if (strspn(t->unit, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "0123456789:_.@-") != strlen(t->unit))
			return say(why, whysize, -EINVAL, "unit name '%s' is not plain", t->unit);
		if (snprintf(req->restart.command, sizeof(req->restart.command),
			     "systemctl restart -- '%s'",
			     t->unit) >= (int)sizeof(req->restart.command))
			return say(why, whysize, -ENAMETOOLONG, "unit name too long");
	} else {
		return say(why, whysize, -ENOENT,
			   "target '%s' declares no restart command in the policy "
			   "(targets[].restart)%s",
			   t ? t->name : "other",
			   t && t->unit ? ", and systemd does not run here for its unit" : "");
	}
	req->restart.timeout_ms =
	    (unsigned)(timeout_ms > ACT_RESTART_TIMEOUT_MAX_MS ? ACT_RESTART_TIMEOUT_MAX_MS
							       : timeout_ms);
	return 0;
}

int safe_changes_should_attempt(struct safe_changes *sc, const char *target,
				const struct act_request *req, char *why, size_t whysize)
{
	char before[ACT_VALUE_MAX], want[ACT_VALUE_MAX], knob[ACT_NAME_MAX + ACT_PATH_MAX];
	char value[ACT_VALUE_MAX];
	struct mem_candidate cand = {.kind = (enum mem_kind)req->kind, .target = target};
	int r;

	r = read_values(req, before, want, why, whysize);
	if (r)
		return r;
	safe_change_knob(req, knob, sizeof(knob));
	candidate_value(req, want, value, sizeof(value));
	cand.knob = knob;
	cand.value = value;
	return mem_should_attempt(sc->mem, &cand, why, whysize);
}

static struct safe_live *live_add(struct safe_changes *sc)
{
	if (sc->nlive == SAFE_LIVE_MAX)
		return NULL;
	memset(&sc->live[sc->nlive], 0, sizeof(sc->live[0]));
	return &sc->live[sc->nlive++];
}

void safe_changes_refresh_counts(struct safe_changes *sc)
{
	struct mem_counts mc;

	if (mem_counts(sc->mem, now_wall_ms(), &mc) == 0) {
		sc->gate.mem.changes_last_hour = mc.changes_last_hour;
		sc->gate.mem.active = mc.active;
	}
}

bool safe_rule_transient(enum safe_rule r)
{
	return r == SAFE_RULE_STORM || r == SAFE_RULE_CHANGES_PER_HOUR ||
	       r == SAFE_RULE_CONCURRENT || r == SAFE_RULE_COOLDOWN || r == SAFE_RULE_FLAP;
}

bool safe_changes_must_wait(struct safe_changes *sc, const struct safe_policy *policy,
			    const struct safe_proposal *p, struct safe_decision_out *pre)
{
	safe_changes_refresh_counts(sc);
	safe_gate_use_policy(&sc->gate, policy);
	safe_gate_check(policy, &sc->gate, p, pre);
	return pre->decision == SAFE_DENY && safe_rule_transient(pre->rule);
}

struct safe_live *safe_changes_live(struct safe_changes *sc, int64_t id)
{
	for (unsigned i = 0; i < sc->nlive; i++)
		if (sc->live[i].id == id)
			return &sc->live[i];
	return NULL;
}

static void live_remove(struct safe_changes *sc, struct safe_live *l)
{
	act_result_release(&l->res);
	*l = sc->live[--sc->nlive];
}

/* The proposal the gate accounts a stored change as. */
static void gate_proposal(const struct safe_live *l, struct safe_proposal *p)
{
	memset(p, 0, sizeof(*p));
	p->source = l->source;
	p->target = l->target;
	p->req = l->res.req;
	p->now_ms = now_wall_ms();
}

/* INTENT, act, APPLIED or FAILED. id is the change in PROPOSED/APPROVED state, or 0 for a
 * new one described by c. */
static int apply_now(struct safe_changes *sc, int64_t id, struct mem_change *c,
		     const struct safe_change_in *in, struct safe_change_out *out)
{
	struct act_result res, pre = {.req = in->p.req, .pid_start = in->p.req.pid_start};
	char spec[ACT_CMD_MAX + 512], revert[ACT_REVERT_MAX];
	struct mem_outcome o = {.fitness_before = NAN, .fitness_after = NAN};
	struct safe_live *l;
	int r;

	pre.pidfd = -1;
	if (act_spec_format(&pre, spec, sizeof(spec)) < 0)
		spec[0] = '\0';
	revert[0] = '\0';
	act_revert_command(&in->p.req, NULL, out->before, revert, sizeof(revert));
	if (id > 0) {
		r = mem_change_set_state(sc->mem, id, MEM_STATE_INTENT, "homeostat",
					 "approved: applying");
	} else {
		c->act = spec;
		c->revert = revert;
		id = mem_change_intent(sc->mem, c);
		r = id < 0 ? (int)id : 0;
	}
	if (r < 0)
		return log_errno(r, "cannot record the intent of %s, not applying it: %s",
				 in->p.source, mem_last_error(sc->mem));
	out->change_id = id;

	r = act_apply(&in->p.req, &res);
	out->err = r;
	hs_strlcpy(out->why, res.why, sizeof(out->why));
	if (r) {
		if (res.applied && act_revert(&res) == 0)
			log_notice("change %" PRId64 ": reverted the partial apply", id);
		o.change_id = id;
		o.verdict = MEM_VERDICT_NONE;
		o.result = MEM_RESULT_FAILED;
		o.failure_reason = res.why[0] ? res.why : strerror(-r);
		if (mem_outcome_record(sc->mem, &o, "homeostat") < 0)
			log_warn("cannot record the failure of change %" PRId64 ": %s", id,
				 mem_last_error(sc->mem));
		safe_gate_record(&sc->gate, &in->p, SAFE_OUTCOME_FAILED);
		log_warn("change %" PRId64 " (%s on %s) failed: %s", id,
			 act_kind_name(in->p.req.kind), in->p.target, o.failure_reason);
		act_result_release(&res);
		return 0;
	}
	hs_strlcpy(out->before, res.before, sizeof(out->before));
	hs_strlcpy(out->after, res.after, sizeof(out->after));
	if (act_spec_format(&res, spec, sizeof(spec)) < 0)
		spec[0] = '\0';
	/* the actuator's note, if any: a value the kernel adjusted, a patch library loaded */
	r = mem_change_applied(sc->mem, id, res.before, res.after, res.revert_cmd, spec,
			       res.why[0] ? res.why : NULL);
	if (r)
		log_warn("change %" PRId64 " is applied but memory could not record it: %s", id,
			 mem_last_error(sc->mem));
	safe_gate_record(&sc->gate, &in->p, SAFE_OUTCOME_APPLIED);
	log_notice("change %" PRId64 " applied by %s on %s: %s %s -> %s (revert: %s)", id,
		   in->p.source, in->p.target, act_kind_name(in->p.req.kind),
		   res.before[0] ? res.before : "-", res.after[0] ? res.after : "-",
		   res.revert_cmd[0] ? res.revert_cmd : "not revertible");
	l = live_add(sc);
	if (!l) {
		log_warn("change %" PRId64 ": too many live changes, concluding it at once", id);
		act_result_release(&res);
		return 0;
	}
	l->id = id;
	l->applied_ms = now_wall_ms();
	hs_strlcpy(l->source, in->p.source, sizeof(l->source));
	hs_strlcpy(l->target, in->p.target, sizeof(l->target));
	l->res = res;
	return 0;
}

int safe_changes_propose(struct safe_changes *sc, const struct safe_policy *policy,
			 const struct safe_change_in *in, struct safe_change_out *out)
{
	struct safe_policy dry;
	const struct safe_policy *pol = policy;
	char want[ACT_VALUE_MAX], knob[ACT_NAME_MAX + ACT_PATH_MAX], value[ACT_VALUE_MAX];
	char reason[SAFE_REASON_MAX + MEM_WHY_MAX];
	struct safe_proposal p = in->p;
	struct mem_change c = {0};
	int64_t id;
	int r;

	memset(out, 0, sizeof(*out));
	if (in->force_dry_run && policy->mode == SAFE_MODE_ENFORCE) {
		dry = *policy;
		dry.mode = SAFE_MODE_DRY_RUN;
		pol = &dry;
	}
	r = read_values(&p.req, out->before, want, out->why, sizeof(out->why));
	p.before = out->before[0] ? out->before : NULL;
	safe_changes_refresh_counts(sc);
	safe_gate_use_policy(&sc->gate, policy);
	safe_gate_check(pol, &sc->gate, &p, &out->d);
	if (r && out->d.decision != SAFE_DENY) {
		out->d.decision = SAFE_DENY;
		out->d.rule = SAFE_RULE_REQUEST;
		snprintf(out->d.reason, sizeof(out->d.reason), "denied: %.240s", out->why);
	}
	hs_strlcpy(out->after, want, sizeof(out->after));
	if (pol->mode == SAFE_MODE_OBSERVE)
		return 0; /* observe: not even recorded */

	safe_change_knob(&p.req, knob, sizeof(knob));
	candidate_value(&p.req, want, value, sizeof(value));
	if (out->d.decision != SAFE_DENY) {
		struct mem_candidate cand = {.kind = (enum mem_kind)p.req.kind,
					     .target = p.target,
					     .knob = knob,
					     .value = value};
		char mwhy[MEM_WHY_MAX];

		r = mem_should_attempt(sc->mem, &cand, mwhy, sizeof(mwhy));
		if (r == 0) {
			out->d.decision = SAFE_DENY;
			out->d.rule = SAFE_RULE_REQUEST;
			snprintf(out->d.reason, sizeof(out->d.reason), "denied: %.240s", mwhy);
		} else if (r < 0) {
			log_warn_errno(r, "should_attempt failed, going on: %s",
				       mem_last_error(sc->mem));
		}
	}

	c.kind = (enum mem_kind)p.req.kind;
	c.target = p.target;
	c.knob = knob;
	c.before = out->before;
	c.after = want;
	c.why = in->why;
	c.source = p.source;
	c.episode_id = in->episode_id;
	snprintf(reason, sizeof(reason), "%s", out->d.reason);

	switch (out->d.decision) {
	case SAFE_ALLOW:
		return apply_now(sc, 0, &c, in, out);
	case SAFE_DENY:
		id = mem_change_record(sc->mem, &c, MEM_STATE_DENIED, reason);
		break;
	case SAFE_DRY_RUN:
		id = mem_change_record(sc->mem, &c, MEM_STATE_PROPOSED, reason);
		break;
	case SAFE_NEED_APPROVAL:
	case SAFE_NOTIFY_THEN_ALLOW: {
		struct act_result pre = {.req = p.req, .pid_start = p.req.pid_start};
		char spec[ACT_CMD_MAX + 512], revert[ACT_REVERT_MAX];
		int64_t expires = out->d.decision == SAFE_NEED_APPROVAL
				      ? out->d.expires_at_ms
				      : out->d.not_before_ms + policy->approvals.ttl_ms;

		pre.pidfd = -1;
		if (act_spec_format(&pre, spec, sizeof(spec)) < 0)
			spec[0] = '\0';
		revert[0] = '\0';
		act_revert_command(&p.req, NULL, out->before, revert, sizeof(revert));
		c.act = spec;
		c.revert = revert;
		id = mem_change_record(sc->mem, &c, MEM_STATE_PROPOSED, reason);
		if (id > 0) {
			int64_t a = mem_approval_request(sc->mem, id, expires);

			if (a < 0)
				id = a;
		}
		break;
	}
	default:
		return -EINVAL;
	}
	if (id < 0)
		return log_errno((int)id, "cannot record a proposal of %s: %s", p.source,
				 mem_last_error(sc->mem));
	out->change_id = id;
	return 0;
}

int safe_changes_apply_approved(struct safe_changes *sc, const struct safe_policy *policy,
				int64_t id, const struct safe_change_in *in,
				struct safe_change_out *out)
{
	_cleanup_(mem_change_freep) struct mem_change *c = NULL;
	struct safe_change_in again = *in;
	struct act_result stored;
	char why[ACT_WHY_MAX];
	int r;

	memset(out, 0, sizeof(*out));
	r = mem_change_get(sc->mem, id, &c);
	if (r)
		return r;
	if (c->state != MEM_STATE_APPROVED)
		return -EALREADY;
	r = act_spec_parse(c->act, c->before, c->after, &stored, why, sizeof(why));
	if (r) {
		snprintf(out->d.reason, sizeof(out->d.reason),
			 "denied: stored request unusable: %.200s", why);
		out->d.decision = SAFE_DENY;
		mem_change_set_state(sc->mem, id, MEM_STATE_DENIED, "homeostat", out->d.reason);
		out->change_id = id;
		return 0;
	}
	again.p.req = stored.req;
	again.p.approved = true;
	again.p.now_ms = now_wall_ms();
	safe_changes_refresh_counts(sc);
	safe_gate_use_policy(&sc->gate, policy);
	safe_gate_check(policy, &sc->gate, &again.p, &out->d);
	out->change_id = id;
	if (out->d.decision != SAFE_ALLOW) {
		/* Approved, but the host moved on (budget, storm, protection): not now, and
		 * not later behind the operator's back either. */
		mem_change_set_state(sc->mem, id, MEM_STATE_DENIED, "homeostat", out->d.reason);
		return 0;
	}
	r = read_values(&again.p.req, out->before, out->after, out->why, sizeof(out->why));
	return apply_now(sc, id, NULL, &again, out);
}

enum safe_await safe_changes_await(struct safe_changes *sc, const struct safe_policy *policy,
				   int64_t id, bool notify, int64_t not_before_ms, int64_t now_ms,
				   struct safe_change_in *in, struct safe_change_out *out,
				   char *why, size_t whysize)
{
	_cleanup_(mem_change_freep) struct mem_change *ch = NULL;
	int err;

	say(why, whysize, 0, "%s", "");
	if (mem_change_get(sc->mem, id, &ch))
		return SAFE_AWAIT_WAITING;
	switch (ch->state) {
	case MEM_STATE_PENDING_APPROVAL:
		if (notify && now_ms >= not_before_ms && safe_changes_notify_due(sc, id) == 0)
			log_info("change %" PRId64 ": notice period over, applying", id);
		return SAFE_AWAIT_WAITING;
	case MEM_STATE_APPROVED:
		if (!in->why)
			in->why = ch->why ?: "";
		err = safe_changes_apply_approved(sc, policy, id, in, out);
		if (err) {
			say(why, whysize, err, "approved, not applied: %s", strerror(-err));
			return SAFE_AWAIT_REFUSED;
		}
		if (out->d.decision != SAFE_ALLOW) {
			say(why, whysize, 0, "approved, then refused: %s", out->d.reason);
			return SAFE_AWAIT_REFUSED;
		}
		return SAFE_AWAIT_APPLIED;
	case MEM_STATE_DENIED:
		say(why, whysize, 0, "rejected, or its approval expired");
		return SAFE_AWAIT_DENIED;
	default:
		say(why, whysize, 0, "%s: no longer waiting", mem_state_name(ch->state));
		return SAFE_AWAIT_GONE;
	}
}

int safe_changes_notify_due(struct safe_changes *sc, int64_t id)
{
	int r = mem_approval_decide(sc->mem, id, true, "homeostat (notice period over)");

	return r == -ETIMEDOUT ? -EALREADY : r;
}

int safe_changes_conclude(struct safe_changes *sc, int64_t id, bool keep, int verdict,
			  const char *stats_json, const char *reason)
{
	struct safe_live *l = safe_changes_live(sc, id);
	struct mem_outcome o = {.change_id = id,
				.fitness_before = NAN,
				.fitness_after = NAN,
				.verdict = (enum mem_verdict)verdict,
				.stats_json = stats_json};
	struct safe_proposal p;
	int r = 0;

	if (!l)
		return -ENOENT;
	gate_proposal(l, &p);
	if (keep) {
		o.result = MEM_RESULT_DEPLOYED;
		o.failure_reason = "";
		l->kept = true;
		safe_gate_record(&sc->gate, &p, SAFE_OUTCOME_KEPT);
		log_notice("change %" PRId64 " kept: %s", id, reason ?: "");
	} else {
		/* a change a switchback canary left switched off holds nothing to undo */
		r = l->res.reverted ? 0 : act_revert(&l->res);
		if (r == 0 || r == -ESRCH || r == -EOPNOTSUPP) {
			o.result = MEM_RESULT_ROLLED_BACK;
			o.failure_reason = reason ?: "";
			log_notice("change %" PRId64 " rolled back (%s): %s", id,
				   r == 0	 ? "value restored"
				   : r == -ESRCH ? "the process is gone"
						 : "nothing to undo",
				   reason ?: "");
			r = 0;
		} else {
			o.result = MEM_RESULT_FAILED;
			o.failure_reason = l->res.why;
			log_warn("change %" PRId64 ": revert failed: %s", id, l->res.why);
		}
		safe_gate_record(&sc->gate, &p, SAFE_OUTCOME_ROLLED_BACK);
	}
	if (mem_outcome_record(sc->mem, &o, "homeostat") < 0)
		log_warn("cannot record the outcome of change %" PRId64 ": %s", id,
			 mem_last_error(sc->mem));
	if (!keep) {
		live_remove(sc, l);
	} else if (act_desc(l->res.req.kind) && !act_desc(l->res.req.kind)->revertible) {
		/* kept and not revertible: nothing to answer for but a command still running */
		if (l->res.req.kind != ACT_KIND_RESTART || l->res.pidfd < 0 ||
		    l->res.restart_done) {
			live_remove(sc, l);
		} else if (sc->nreap < SAFE_REAP_MAX) {
			sc->reap_id[sc->nreap] = id;
			sc->reap[sc->nreap++] = l->res;
			*l = sc->live[--sc->nlive]; /* moved, not released: it still runs */
		}
	}
	return r;
}

void safe_changes_poll(struct safe_changes *sc)
{
	for (unsigned i = 0; i < sc->nreap;) {
		int r = act_poll(&sc->reap[i]);

		if (r == -EINPROGRESS) {
			i++;
			continue;
		}
		if (r)
			log_warn("change %" PRId64 ": the restart command %s: %s", sc->reap_id[i],
				 r == -ETIMEDOUT ? "was killed at its deadline" : "failed",
				 sc->reap[i].why);
		else
			log_info("change %" PRId64 ": the restart command exited 0",
				 sc->reap_id[i]);
		act_result_release(&sc->reap[i]);
		sc->reap_id[i] = sc->reap_id[--sc->nreap];
		sc->reap[i] = sc->reap[sc->nreap];
	}
}

int safe_changes_switch(struct safe_changes *sc, int64_t id, bool on, const char *why)
{
	struct safe_live *l = safe_changes_live(sc, id);
	struct act_result res;
	int r;

	if (!l || l->kept)
		return -ENOENT;
	if (on == !l->res.reverted)
		return 0;
	if (on) {
		r = act_apply(&l->res.req, &res);
		if (r) {
			act_result_release(&res);
		} else {
			act_result_release(&l->res);
			l->res = res;
		}
	} else {
		r = act_revert(&l->res);
	}
	mem_audit(sc->mem, "homeostat", on ? "change.switch_on" : "change.switch_off", id, "%s%s%s",
		  why, r ? ": failed: " : "", r ? l->res.why : "");
	if (r)
		log_warn("change %" PRId64 ": switching it %s failed: %s", id, on ? "on" : "off",
			 l->res.why);
	return r;
}

int safe_changes_switch_all(struct safe_changes *sc, const int64_t *ids, size_t n, bool on)
{
	int r = 0;

	for (size_t i = 0; i < n && !r; i++)
		r = safe_changes_switch(sc, ids[i], on,
					on ? "switchback canary: an on block"
					   : "switchback canary: an off block");
	return r;
}

enum safe_trial safe_changes_canary_tick(struct safe_changes *sc, struct safe_canary_run *run,
					 int64_t now_ms, const struct safe_canary_sample *s,
					 const int64_t *ids, size_t n,
					 struct safe_canary_step *step, char *json, size_t jsonsize)
{
	int r = safe_canary_tick(run, now_ms, s, NULL, step);

	if (r) {
		log_warn_errno(r, "change %" PRId64 ": canary tick", n ? ids[0] : 0);
		return SAFE_TRIAL_ERROR;
	}
	if (step->action == SAFE_CANARY_SWITCH_ON || step->action == SAFE_CANARY_SWITCH_OFF)
		return safe_changes_switch_all(sc, ids, n, step->action == SAFE_CANARY_SWITCH_ON)
			   ? SAFE_TRIAL_SWITCH_FAILED
			   : SAFE_TRIAL_RUNS;
	if (step->action != SAFE_CANARY_BREACH && step->action != SAFE_CANARY_DONE)
		return SAFE_TRIAL_RUNS;
	/* kept: the change stays, so it must be on (a switchback run may end in an off block) */
	if (step->action == SAFE_CANARY_DONE && step->verdict == SAFE_VERDICT_KEEP &&
	    safe_changes_switch_all(sc, ids, n, true)) {
		step->verdict = SAFE_VERDICT_INCONCLUSIVE;
		snprintf(step->reason, sizeof(step->reason),
			 "kept by the judge, but it could not be switched on again");
	}
	if (safe_canary_json(run, json, jsonsize) < 0)
		snprintf(json, jsonsize, "{}");
	return SAFE_TRIAL_OVER;
}

bool safe_changes_is_on(struct safe_changes *sc, int64_t id)
{
	struct safe_live *l = safe_changes_live(sc, id);

	return l && !l->res.reverted;
}

int safe_changes_abandon(struct safe_changes *sc, int64_t id, const char *why)
{
	struct safe_live *l = safe_changes_live(sc, id);
	struct mem_outcome o = {.change_id = id,
				.fitness_before = NAN,
				.fitness_after = NAN,
				.verdict = MEM_VERDICT_NONE,
				.result = MEM_RESULT_ROLLED_BACK};
	struct safe_proposal p;
	char note[SAFE_WHY_MAX];
	int64_t r;

	snprintf(note, sizeof(note), "abandoned: %s", why);
	o.failure_reason = note;
	r = mem_outcome_record(sc->mem, &o, "homeostat");
	if (r < 0)
		log_warn("cannot record that change %" PRId64 " is abandoned: %s", id,
			 mem_last_error(sc->mem));
	else
		log_notice("change %" PRId64 " %s", id, note);
	if (l) {
		gate_proposal(l, &p);
		safe_gate_record(&sc->gate, &p, SAFE_OUTCOME_ROLLED_BACK);
		live_remove(sc, l);
	}
	return r < 0 ? (int)r : 0;
}

void safe_changes_forget(struct safe_changes *sc, int64_t id, const char *why)
{
	struct safe_live *l = safe_changes_live(sc, id);

	if (!l)
		return;
	mem_audit(sc->mem, "homeostat", "change.forget", id, "%s", why);
	live_remove(sc, l);
}

/* Reverts a change from its stored record; the result's why says what happened. */
static int revert_stored(const struct mem_change *c, struct act_result *res)
{
	char why[ACT_WHY_MAX];
	int r;

	if (!c->act || !c->act[0]) {
		snprintf(res->why, sizeof(res->why), "no actuator record: revert it by hand: %s",
			 c->revert);
		return -ENODATA;
	}
	r = act_spec_parse(c->act, c->before, c->after, res, why, sizeof(why));
	if (r) {
		snprintf(res->why, sizeof(res->why),
			 "stored request unusable (%.200s): revert it by "
			 "hand: %s",
			 why, c->revert);
		return r;
	}
	return act_revert(res);
}

int safe_changes_adopt(struct safe_changes *sc, int64_t id, char *why, size_t whysize)
{
	_cleanup_(mem_change_freep) struct mem_change *c = NULL;
	struct act_result res;
	struct safe_live *l;
	char pwhy[ACT_WHY_MAX];
	int r;

	if (safe_changes_live(sc, id))
		return 0;
	r = mem_change_get(sc->mem, id, &c);
	if (r)
		return say(why, whysize, r, "no change %" PRId64, id);
	if (c->state != MEM_STATE_KEPT)
		return say(why, whysize, -EALREADY, "change %" PRId64 " is %s, not KEPT", id,
			   mem_state_name(c->state));
	r = act_spec_parse(c->act, c->before, c->after, &res, pwhy, sizeof(pwhy));
	if (r)
		return say(why, whysize, r, "its stored request is unusable: %s", pwhy);
	l = live_add(sc);
	if (!l)
		return say(why, whysize, -ENOSPC, "too many live changes");
	l->id = id;
	l->kept = true;
	hs_strlcpy(l->source, c->source, sizeof(l->source));
	hs_strlcpy(l->target, c->target, sizeof(l->target));
	l->applied_ms = c->acted_at;
	l->res = res;
	return 0;
}

int safe_changes_rollback(struct safe_changes *sc, int64_t id, const char *by, char *why,
			  size_t whysize)
{
	_cleanup_(mem_change_freep) struct mem_change *c = NULL;
	struct mem_outcome o = {.change_id = id,
				.fitness_before = NAN,
				.fitness_after = NAN,
				.verdict = MEM_VERDICT_NONE};
	struct safe_live *l = safe_changes_live(sc, id);
	struct act_result stored, *res;
	struct safe_proposal p;
	char note[ACT_WHY_MAX + 128];
	int r;

	r = mem_change_get(sc->mem, id, &c);
	if (r)
		return say(why, whysize, r, "no change %" PRId64, id);
	if (c->state != MEM_STATE_APPLIED && c->state != MEM_STATE_KEPT)
		return say(why, whysize, -EALREADY,
			   "change %" PRId64 " is %s: nothing on the host to undo", id,
			   mem_state_name(c->state));
	if (!act_desc((enum act_kind)c->kind)->revertible)
		return say(why, whysize, -EOPNOTSUPP, "%s",
			   act_desc((enum act_kind)c->kind)->not_revertible);
	if (l) {
		res = &l->res;
		r = act_revert(res);
	} else {
		res = &stored;
		r = revert_stored(c, res);
	}
	if (r == 0 || r == -ESRCH) {
		snprintf(note, sizeof(note), "rolled back by %s: %s", by,
			 r == 0 ? "value restored" : "the process is gone, nothing left to undo");
		o.result = MEM_RESULT_ROLLED_BACK;
	} else {
		snprintf(note, sizeof(note), "rollback by %s failed: %s", by, res->why);
		o.result = r == -ESTALE ? MEM_RESULT_ROLLED_BACK : MEM_RESULT_FAILED;
	}
	o.failure_reason = note;
	if (mem_outcome_record(sc->mem, &o, by) < 0)
		log_warn("cannot record the rollback of change %" PRId64 ": %s", id,
			 mem_last_error(sc->mem));
	log_notice("change %" PRId64 ": %s", id, note);
	if (l) {
		gate_proposal(l, &p);
		safe_gate_record(&sc->gate, &p, SAFE_OUTCOME_ROLLED_BACK);
		live_remove(sc, l);
	}
	hs_strlcpy(why, note, whysize);
	return r == -ESRCH ? 0 : r;
}

static int reconcile_one(const struct mem_change *c, void *ud)
{
	struct safe_changes *sc = ud;
	struct mem_outcome o = {.change_id = c->id,
				.fitness_before = NAN,
				.fitness_after = NAN,
				.verdict = MEM_VERDICT_NONE};
	struct act_result res;
	char note[ACT_WHY_MAX + 128];
	int r;

	memset(&res, 0, sizeof(res));
	res.pidfd = -1;
	if (!act_desc((enum act_kind)c->kind)->revertible) {
		snprintf(note, sizeof(note),
			 "not concluded before the daemon stopped; %s cannot "
			 "be undone",
			 mem_kind_name(c->kind));
		o.result = MEM_RESULT_FAILED;
	} else {
		r = revert_stored(c, &res);
		if (r == 0)
			snprintf(note, sizeof(note),
				 MEM_INTERRUPTED "not concluded before the daemon stopped: "
						 "reverted to '%s'",
				 c->before);
		else if (r == -ESRCH)
			snprintf(note, sizeof(note),
				 MEM_INTERRUPTED "not concluded before the daemon stopped; "
						 "the process is gone, nothing left to undo");
		else if (r == -ESTALE)
			snprintf(note, sizeof(note),
				 MEM_INTERRUPTED "not concluded before the daemon stopped; "
						 "left alone: %s",
				 res.why);
		else
			snprintf(note, sizeof(note),
				 "not concluded before the daemon stopped; "
				 "revert failed: %s",
				 res.why);
		o.result = (r == 0 || r == -ESRCH || r == -ESTALE) ? MEM_RESULT_ROLLED_BACK
								   : MEM_RESULT_FAILED;
	}
	o.failure_reason = note;
	if (mem_outcome_record(sc->mem, &o, "daemon") < 0)
		log_warn("cannot record the reconciliation of change %" PRId64 ": %s", c->id,
			 mem_last_error(sc->mem));
	if (o.result == MEM_RESULT_FAILED)
		log_warn("change %" PRId64 " (%s %s on %s): %s", c->id, mem_kind_name(c->kind),
			 c->knob, c->target, note);
	else
		log_notice("change %" PRId64 " (%s %s on %s): %s", c->id, mem_kind_name(c->kind),
			   c->knob, c->target, note);
	return 0;
}

int safe_changes_reconcile(struct safe_changes *sc)
{
	int n = mem_changes_unconcluded(sc->mem, reconcile_one, sc);

	if (n < 0)
		return n;
	safe_changes_deny_orphans(sc, NULL, 0);
	return n;
}

struct orphans {
	struct safe_changes *sc;
	const int64_t *keep;
	size_t nkeep;
	int n;
};

static int deny_orphan(const struct mem_change *c, void *ud)
{
	struct orphans *o = ud;

	for (size_t i = 0; i < o->nkeep; i++)
		if (o->keep[i] == c->id)
			return 0;
	if (mem_change_set_state(o->sc->mem, c->id, MEM_STATE_DENIED, "homeostat",
				 "approved after the episode that proposed it ended; not applied "
				 "behind anyone's back") == 0) {
		log_notice("change %" PRId64 " was approved after its episode ended: denied, not "
			   "applied",
			   c->id);
		o->n++;
	}
	return 0;
}

int safe_changes_deny_orphans(struct safe_changes *sc, const int64_t *keep, size_t nkeep)
{
	struct orphans o = {.sc = sc, .keep = keep, .nkeep = nkeep};
	int r = mem_changes_by_state(sc->mem, MEM_STATE_APPROVED, deny_orphan, &o);

	return r < 0 ? r : o.n;
}

void safe_changes_close(struct safe_changes *sc)
{
	while (sc->nlive)
		live_remove(sc, &sc->live[sc->nlive - 1]);
	while (sc->nreap)
		act_result_release(&sc->reap[--sc->nreap]);
}
