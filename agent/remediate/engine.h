/* engine.h - the runbook engine: detect -> diagnose -> remediate -> verify, tick by tick.
 *
 * Why: runbooks (runbook.h) say what a failure looks like and what to do about it; this is
 * what does it, as a state machine per (runbook, target) that advances once a tick and never
 * blocks the loop (captures run for their window across ticks, approvals are waited for).
 * Every change goes through the safety layer (safety/changes.h), every step is written to
 * the episode in memory, so `homeostat history` and the audit trail tell the whole story.
 *
 * One episode (memory.h) is one firing of a runbook on a target:
 *
 *   IDLE --detect fired--> DIAGNOSE --captures stored--> ACT (rung k of the ladder)
 *   ACT: alert          -> told a human; next rung at once (the last: UNRESOLVED)
 *        allowed        -> VERIFY until verify.within: holds -> KEEP, RESOLVED;
 *                          deadline -> revert, ROLLBACK, next rung (escalation)
 *        approval       -> WAIT (operator's approve/reject; notify: approved by homeostat
 *                          after the class delay); rejected or expired -> UNRESOLVED
 *        dry run        -> DRY_RUN (what would have been done is recorded)
 *        denied         -> budgets, cooldowns, storm: wait quietly (said once);
 *                          protected, out of range, not allowed: REFUSED
 *   then HOLD until the detect block clears; the next episode waits for the runbook's
 *   cooldown (times backoff^failures).
 *
 * Mode observe: detection is logged, nothing is proposed or recorded. Paused: no new
 * episode starts; running ones are verified and concluded. Kept changes whose step says
 * revert: when_cleared / when_idle are watched after their episode and undone then.
 */
#ifndef HS_HEAL_ENGINE_H
#define HS_HEAL_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

struct heal_engine;
struct heal_runbooks;
struct safe_policy;
struct safe_changes;
struct mem;
struct obs;
struct obs_snapshot;

/* What the engine reads from the daemon each tick. */
struct heal_env {
	const struct safe_policy *policy;
	const struct heal_runbooks *runbooks;
	struct safe_changes *changes;
	struct mem *mem;
	struct obs *obs;
	const struct obs_snapshot *snap;
	bool force_dry_run; /* homeostatd --dry-run */
	bool paused;	    /* homeostat pause */
	int64_t now_ms;	    /* wall clock (memory, the gate) */
	uint64_t mono_ms;   /* CLOCK_MONOTONIC (series, deadlines) */
};

/* One row of `homeostat status`'s episodes table. */
struct heal_status {
	const char *runbook;
	const char *target;
	const char *phase; /* "diagnose", "act", "approval", "verify", "hold", ... */
	int64_t episode;
	int64_t change_id; /* 0: none */
	int pid;	   /* subject, 0: none */
	uint64_t since_ms; /* mono ms the phase started */
	const char *note;  /* the last thing that happened */
};

int heal_engine_open(struct heal_engine **out);
/* One tick: samples the snapshot into the series and advances every instance. After a
 * reload, instances of runbooks or targets that no longer exist end (ABORTED) here. */
void heal_engine_tick(struct heal_engine *e, const struct heal_env *env);
/* Calls cb for every instance that is not idle; returns the count. */
int heal_engine_status(const struct heal_engine *e,
		       int (*cb)(const struct heal_status *s, void *ud), void *ud);
/* Change ids waiting for approval (for safe_changes_deny_orphans()); returns the count. */
size_t heal_engine_waiting(const struct heal_engine *e, int64_t *ids, size_t max);
/* Ends every episode (ABORTED: the daemon stops) and frees e. Kept changes stay. */
void heal_engine_close(struct heal_engine *e, const struct heal_env *env);

#endif
