/* tuner.h - the tuning engine: runs the policy's tuning jobs, one canary trial at a time.
 *
 * Why: the search (search.h) says which values to try and the knob registry (knobs.h) how to
 * set them; this is the loop that turns them into changes on the host, each one a trial
 * through the one safety layer the runbooks use (safety/changes.h: gate, approvals, memory,
 * actuators), watched by a canary (safety/canary.h) and concluded by the judge's verdict
 * (DESIGN.md "Safety", issue 5).
 *
 * One job, each tick, in one of these phases:
 *   wait       its target has no process yet, or another job is in a trial (one trial on the
 *              host at a time: two canaries would measure each other)
 *   baseline   collects the target's samples (fitness, errors, RSS) of the settings in force
 *              until it has canary.min_samples of them: the "before" arm of the next trial.
 *              The first time, the search starts from the values the host holds (clamped to
 *              the knob's range) and, when the job says reapply, re-applies what a previous
 *              daemon kept
 *   propose    the search's next candidate (vetoed beforehand when memory says a change like
 *              it failed, so that the search looks elsewhere); one change per knob that
 *              moves, the first through the gate, the others and the restart a knob needs
 *              (restart: true) as parts of it
 *   approval   the job's class asks for it (notify or require), as for a runbook
 *   canary     BEFORE_AFTER against the baseline window (a knob that needs a restart cannot
 *              be switched back and forth, and the tuner has no concurrent control yet);
 *              the policy's rollback_on breach rolls back at once; at the end the verdict
 *              concludes every change of the trial: KEEP (the search moves there), ROLLBACK
 *              or INCONCLUSIVE (rolled back; the search counts a failure). A rolled back
 *              knob that needs a restart restarts the target again, so the old value is the
 *              one in force
 *   done       the search converged or spent its budget: the report (points explored,
 *              verdicts, the best values, fitness before and after) is logged and audited
 *   backed_off an administrator changed a knob of the job (a kept value no longer holds, or
 *              the host holds another value than the search put there): homeostat stops
 *              tuning that job, forgets the change without touching it, and records why
 *
 * Every trial's change says why (job, trial, strategy, knob, before -> after), and its outcome
 * holds the canary's JSON (samples per arm, U, p, Hodges-Lehmann shift, confidence interval,
 * effect size, verdict): `homeostat history` and `homeostat explain ID` show them.
 *
 * Invariants: at most one job is in approval or canary at a time; a trial's changes are live
 * in safety/changes.c from apply to conclusion; nothing here touches the host except through
 * safe_changes_*().
 */
#ifndef HS_TUNE_TUNER_H
#define HS_TUNE_TUNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct safe_policy;
struct safe_changes;
struct mem;
struct obs;
struct obs_snapshot;
struct fit;
struct tune_engine;

struct tune_env {
	const struct safe_policy *policy;
	struct safe_changes *changes;
	struct mem *mem;
	struct obs *obs;
	const struct obs_snapshot *snap;
	const struct fit *fit;
	bool force_dry_run; /* homeostatd --dry-run */
	bool paused;	    /* homeostat pause: no new trial */
	bool host_busy;	    /* another engine runs a trial (a redirect): none starts here */
	int64_t now_ms;	    /* wall clock (memory, the gate) */
	uint64_t mono_ms;   /* CLOCK_MONOTONIC (canary time) */
};

/* One row of `homeostat status`'s tuning table. */
struct tune_status {
	const char *job;
	const char *target;
	const char *phase; /* "wait", "baseline", "propose", "approval", "canary", "done", ... */
	unsigned trials;   /* trials concluded */
	unsigned kept;	   /* of which kept */
	int64_t change_id; /* the trial's first change; 0: none */
	const char *note;  /* the last thing that happened */
};

int tune_engine_open(struct tune_engine **out);
/* Takes the policy's jobs (after a load or reload): a job that kept its name and its knobs
 * goes on; a new or changed one starts over; one that is gone ends (a trial in progress is
 * rolled back). */
void tune_engine_configure(struct tune_engine *e, const struct tune_env *env);
void tune_engine_tick(struct tune_engine *e, const struct tune_env *env);
int tune_engine_status(const struct tune_engine *e,
		       int (*cb)(const struct tune_status *s, void *ud), void *ud);
/* Is a job in approval or canary? (redirects wait for it, and the other way round) */
bool tune_engine_busy(const struct tune_engine *e);
/* Change ids waiting for approval (for safe_changes_deny_orphans()); returns the count. */
size_t tune_engine_waiting(const struct tune_engine *e, int64_t *ids, size_t max);
/* Ends every job: a trial in progress is rolled back ("interrupted: the daemon stopped"), kept
 * values stay. Frees e. */
void tune_engine_close(struct tune_engine *e, const struct tune_env *env);

#endif
