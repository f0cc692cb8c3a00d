/* changes.h - the life of every change through the safety layer: gate, memory, actuator.
 *
 * Why: a runbook (and later a tuner) only says what it wants changed and why. Whether, when
 * and how it happens is decided here, always in the same order, so that every change is
 * explainable and reversible the same way (DESIGN.md "Safety"):
 *
 *   propose   read the value before; the gate (gate.h) decides; memory refuses what failed
 *             before (mem_should_attempt); the decision is recorded:
 *               deny          DENIED, with the rule's reason
 *               dry_run       PROPOSED, "dry run: would ..." (nothing is touched)
 *               approval      PROPOSED -> PENDING_APPROVAL, expiring after the class ttl
 *               notify        the same, but approved by homeostat itself once the class
 *                             delay passed (safe_changes_notify_due) unless an operator
 *                             rejected it first
 *               allow         applied at once (below)
 *   apply     write-ahead intent (INTENT, with the actuator spec of actuate.h so that a
 *             later daemon can revert it), act_apply(), then APPLIED with what the kernel
 *             holds, or FAILED with the reason; the gate accounts it
 *   conclude  KEEP: outcome DEPLOYED (the change stays, still revertible by an operator);
 *             ROLLBACK: act_revert(), outcome ROLLED_BACK; the statistics go with it
 *   rollback  an operator's `homeostat rollback ID`, also after a daemon restart (the
 *             actuator state is rebuilt from the stored spec)
 *   reconcile at start: every change left in INTENT or APPLIED is reverted (only if the
 *             host still holds what homeostat wrote), every APPROVED change that nobody can
 *             apply any more is denied
 *
 * Invariants: nothing reaches an actuator without a committed INTENT row; a change that is
 * applied and not concluded is in live[] (at most SAFE_LIVE_MAX: beyond that the gate's
 * concurrent budget has refused long before), and so is one concluded KEEP that can still be
 * reverted (a kept signal or restart leaves live[] at once: nothing is left to answer for but
 * a restart command still running, which reap[] waits for); every function logs each change at
 * NOTICE with before -> after and the command that reverts it.
 */
#ifndef HS_SAFE_CHANGES_H
#define HS_SAFE_CHANGES_H

#include <stdbool.h>
#include <stdint.h>

#include "actuate/actuate.h"
#include "safety/gate.h"

struct mem;

#define SAFE_LIVE_MAX 64
#define SAFE_REAP_MAX 16 /* restarts concluded while their command still runs */
#define SAFE_WHY_MAX  1024

/* A change applied by this daemon that it still answers for. */
struct safe_live {
	int64_t id;
	bool kept; /* concluded KEEP: stays until an operator (or its runbook) reverts it */
	char source[SAFE_SOURCE_MAX];
	char target[SAFE_NAME_MAX + 1];
	int64_t applied_ms;
	struct act_result res;
};

struct safe_changes {
	struct mem *mem;
	struct safe_state gate;
	struct safe_live live[SAFE_LIVE_MAX];
	unsigned nlive;
	/* Concluded changes whose restart command still runs: polled by safe_changes_poll()
	 * until it exits (or is killed at its deadline), so that no live slot is held for a
	 * change nobody can revert and no command is left unreaped. */
	struct act_result reap[SAFE_REAP_MAX];
	int64_t reap_id[SAFE_REAP_MAX];
	unsigned nreap;
};

/* What a runbook or tuner asks for. p.req is the typed change; the strings are copied. */
struct safe_change_in {
	struct safe_proposal p;
	const char *why;    /* the signal and the explanation, stored with the change */
	int64_t episode_id; /* 0: none */
	bool force_dry_run; /* homeostatd --dry-run: dry_run whatever the policy says */
};

struct safe_change_out {
	struct safe_decision_out d; /* the decision and its reason */
	int64_t change_id;	    /* 0 when nothing could be recorded */
	int err;		    /* ALLOW: what the apply returned (0: applied) */
	char before[ACT_VALUE_MAX];
	char after[ACT_VALUE_MAX];
	char why[ACT_WHY_MAX]; /* the actuator's reason when the apply failed */
};

/* Zeroes sc and initialises the gate's state. */
void safe_changes_init(struct safe_changes *sc, struct mem *mem);
/* Proposes in (see above). Returns 0 with the decision in out (a denial is not an error),
 * or -errno when memory cannot record it (then nothing was changed). */
int safe_changes_propose(struct safe_changes *sc, const struct safe_policy *policy,
			 const struct safe_change_in *in, struct safe_change_out *out);
/* Applies change id, which an operator approved (APPROVED), from its stored spec; the gate
 * runs again with p.approved set (budgets, cooldowns and protections still apply). Same
 * returns as safe_changes_propose(). */
int safe_changes_apply_approved(struct safe_changes *sc, const struct safe_policy *policy,
				int64_t id, const struct safe_change_in *in,
				struct safe_change_out *out);
/* The class delay of a notify proposal passed: approves it as "homeostat". 0, -EALREADY
 * (an operator decided first: mem_change_get() says how), -errno. */
int safe_changes_notify_due(struct safe_changes *sc, int64_t id);
/* Where a change waiting for an approval stands (safe_changes_await). */
enum safe_await {
	SAFE_AWAIT_WAITING, /* still pending */
	SAFE_AWAIT_APPLIED, /* approved and applied now: out says how (out.err: the apply failed) */
	SAFE_AWAIT_REFUSED, /* approved, then refused by the gate (out.d.reason), or the apply
			     * could not run (why) */
	SAFE_AWAIT_DENIED,  /* rejected, or the approval expired */
	SAFE_AWAIT_GONE,    /* it left the queue otherwise: why names its state */
};

/* One tick of a runbook's or a job's wait for change id: a notify change whose class delay
 * (not_before_ms) passed is approved as "homeostat"; an approved one is applied with in
 * (in->why NULL: the why it was proposed with). Memory unreadable this tick: WAITING. */
enum safe_await safe_changes_await(struct safe_changes *sc, const struct safe_policy *policy,
				   int64_t id, bool notify, int64_t not_before_ms, int64_t now_ms,
				   struct safe_change_in *in, struct safe_change_out *out,
				   char *why, size_t whysize);
struct safe_canary_run;
struct safe_canary_sample;
struct safe_canary_step;

/* What one tick of a trial's canary asks of its caller (safe_changes_canary_tick). */
enum safe_trial {
	SAFE_TRIAL_RUNS,	  /* nothing to do (a switchback block may have been switched) */
	SAFE_TRIAL_SWITCH_FAILED, /* a switchback block could not be set: roll the trial back */
	SAFE_TRIAL_OVER,	  /* BREACH or DONE: conclude with step->verdict, json */
	SAFE_TRIAL_ERROR,	  /* the tick failed (logged): again next tick */
};

/* One tick of the canary run of a trial made of live changes ids[0..n) (a tuner's, a
 * redirect's): the sample s (NULL: none this tick) goes to the run; a switchback block
 * switches every change on or off; at BREACH or DONE, a KEEP verdict switches every change on
 * (a run may end in an off block; when that fails the verdict becomes INCONCLUSIVE) and json
 * receives the run's statistics (safe_canary_json, "{}" if they do not fit). */
enum safe_trial safe_changes_canary_tick(struct safe_changes *sc, struct safe_canary_run *run,
					 int64_t now_ms, const struct safe_canary_sample *s,
					 const int64_t *ids, size_t n,
					 struct safe_canary_step *step, char *json,
					 size_t jsonsize);
/* Every tick: reaps the restart commands of concluded changes that have exited (their
 * outcome is logged), and kills those past their deadline. */
void safe_changes_poll(struct safe_changes *sc);
/* Concludes live change id: keep (outcome DEPLOYED, verdict KEEP) or revert (outcome
 * ROLLED_BACK with verdict, or FAILED when the revert failed), with the statistics (a JSON
 * object; NULL: "{}") and a reason. Returns 0 or -errno (-ENOENT: not live). */
int safe_changes_conclude(struct safe_changes *sc, int64_t id, bool keep, int verdict,
			  const char *stats_json, const char *reason);
/* An operator's rollback of change id (APPLIED or KEPT), by who. Returns 0 and fills why
 * with what was done, or -errno with why: -ENOENT no such change, -EALREADY already
 * concluded without a change on the host, -EOPNOTSUPP not revertible (signal, restart),
 * -ESTALE someone else changed the value since (left alone, and recorded). */
int safe_changes_rollback(struct safe_changes *sc, int64_t id, const char *by, char *why,
			  size_t whysize);
/* Takes change id, KEPT by a previous daemon and still on the host, back into the live set
 * (a kept redirect whose processes must be watched again), its actuator state from the stored
 * request. 0 (also when it is live already), or -errno with why: -ENOENT no such change,
 * -EALREADY not KEPT, -EINVAL its stored request is unusable, -ENOSPC no live slot. */
int safe_changes_adopt(struct safe_changes *sc, int64_t id, char *why, size_t whysize);
/* At start: reverts what a previous daemon left unconcluded, denies orphaned approvals.
 * Returns the number of changes handled or -errno. */
int safe_changes_reconcile(struct safe_changes *sc);
/* Denies every APPROVED change not in keep[] (approved after its proposer went away). */
int safe_changes_deny_orphans(struct safe_changes *sc, const int64_t *keep, size_t nkeep);
/* Feeds memory's counts (changes in the last hour, active ones) to the gate's budgets, so
 * that they survive a restart; done before every gate check, never on an idle tick. */
void safe_changes_refresh_counts(struct safe_changes *sc);
/* Rules that pass with time (storm, changes per hour, concurrency, cooldown, flapping): a
 * proposal they deny is tried again later, not given up. */
bool safe_rule_transient(enum safe_rule r);
/* Would the gate deny p now for a rule that passes with time? true with the reason in pre:
 * the caller waits a tick, and nothing is recorded (memory's counts are refreshed first). */
bool safe_changes_must_wait(struct safe_changes *sc, const struct safe_policy *policy,
			    const struct safe_proposal *p, struct safe_decision_out *pre);
/* The request that restarts target t: its policy restart command, else its systemd unit
 * where systemd runs; timeout_ms for the command (capped). 0, or -errno with why (-ENOENT: no
 * way to restart it). */
int safe_restart_request(const struct safe_target *t, int64_t timeout_ms, struct act_request *req,
			 char *why, size_t whysize);
/* Would memory let req (on target) be tried: 1 go, 0 no (a change like it failed before;
 * why names it), or -errno (the value could not be read; why says so). */
int safe_changes_should_attempt(struct safe_changes *sc, const char *target,
				const struct act_request *req, char *why, size_t whysize);
/* The live change id, or NULL. */
struct safe_live *safe_changes_live(struct safe_changes *sc, int64_t id);
/* A switchback canary's blocks: sets live change id (APPLIED, not yet concluded) on (applied
 * again, the actuator's result replaced) or off (reverted), without a new record; each switch
 * is audited ("change.switch_on", "change.switch_off"). Concluding a change that is off
 * reverts nothing. 0, -ENOENT (not live, or kept) or the actuator's -errno. */
int safe_changes_switch(struct safe_changes *sc, int64_t id, bool on, const char *why);
/* Is live change id applied (not switched off)? False when it is not live. */
bool safe_changes_is_on(struct safe_changes *sc, int64_t id);
/* safe_changes_switch() of each of ids[0..n) in turn ("switchback canary: an on/off block"),
 * up to the first failure, whose -errno it returns. */
int safe_changes_switch_all(struct safe_changes *sc, const int64_t *ids, size_t n, bool on);
/* Gives change id (KEPT or APPLIED) up without touching the host: someone else changed the
 * value since, and it is theirs now. Recorded as ROLLED_BACK with "abandoned: " why, so that
 * memory does not try it again; no longer live. 0 or -errno (memory). */
int safe_changes_abandon(struct safe_changes *sc, int64_t id, const char *why);
/* The knob column of memory for a change: "net.core.somaxconn", "RLIMIT_NOFILE", "path/file"
 * of a cgroup, a file's path, "nice", "restart", ... */
void safe_change_knob(const struct act_request *q, char *buf, size_t size);
/* Forgets live change id without touching the host (its process exited: the change went
 * with it), recording why in the audit trail. */
void safe_changes_forget(struct safe_changes *sc, int64_t id, const char *why);
/* Releases every live change (restarts still running are killed); the host keeps them. */
void safe_changes_close(struct safe_changes *sc);

#endif
