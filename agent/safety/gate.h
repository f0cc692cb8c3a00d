/* gate.h - the one gate every proposed change passes: may it be made now, and how?
 *
 * Why: runbooks and tuners propose changes; the policy (policy.h) says what may change, how
 * often and with whose consent. This is the one place that says yes or no, so that every
 * refusal has one wording and one rule behind it (DESIGN.md "Safety").
 *
 * Pure logic over explicit inputs: no clock, no database, no I/O, no logging. The caller
 * passes the time (proposal.now_ms, wall-clock milliseconds since the epoch) and keeps a
 * struct safe_state across ticks; it feeds the counts of agent/memory (mem_counts) into
 * state.mem so that budgets survive a restart of the daemon, and tells the gate what it did
 * with safe_gate_record() and which runbooks fired with safe_gate_storm_note().
 *
 * safe_gate_check() applies these rules in this order; the first that refuses decides, and
 * out.reason names it in plain English (out.rule says which, for counters and tests):
 *   1. request   act_validate() must accept the act_request, and source and target be set
 *   2. mode      observe: nothing is proposed ("denied: mode is observe"); dry_run: every
 *                rule below still runs, but what would be allowed is SAFE_DRY_RUN instead
 *   3. protected the agent's own files (policy->self_paths, and policy->path when it is
 *                absolute, whatever the file says), protected.paths (a prefix on a
 *                path-component boundary: /etc/homeostat covers /etc/homeostat/x, not
 *                /etc/homeostatx), units and processes (comm), as applicable to the kind:
 *                  cgroup   the cgroup file and directory; a directory component named like
 *                           a protected unit (system.slice/sshd.service)
 *                  sysctl   /proc/sys/NAME as a path
 *                  restart  every absolute path and every unit named in the command
 *                  all      the target's unit and comm selectors (policy targets), and the
 *                           comm of the process acted on (proposal.comm)
 *   4. sysctl    protected.sysctl_deny (names, or patterns such as kernel.*), then
 *                protected.sysctl_ranges: every number of the value within min..max
 *   5. storm     frozen since safe_gate_storm_note() saw too many distinct runbooks fire
 *                within the storm window; only safe_gate_unfreeze() (an operator) lifts it
 *   6. budgets   changes per hour and concurrent changes: the larger of the gate's own
 *                account and state.mem (rules 6 to 8 pass p.part_of_change: the second
 *                half of a change they admitted already)
 *   7. blast     processes and targets one change touches
 *   8. cooldown  per (source, target): after a change the pair waits cooldown_ms, after a
 *                failure cooldown_ms * backoff^failures (at most cooldown_max_ms); then
 *      flapping  at most flap_changes changes (rollbacks included) to one target within
 *                flap_window_ms
 *   9. class     the proposal's action class must be in the policy: approval none, or a
 *                proposal already approved (p.approved), is SAFE_ALLOW, notify
 * SAFE_NOTIFY_THEN_ALLOW (out.not_before_ms), require SAFE_NEED_APPROVAL (out.expires_at_ms: the
 * class ttl, else approvals.ttl)
 *
 * Invariants: the state is a flat struct without pointers (zeroed, then safe_gate_init());
 * a check never changes it; times shown in reasons are UTC (HH:MM:SS).
 */
#ifndef HS_SAFE_GATE_H
#define HS_SAFE_GATE_H

#include <stdbool.h>
#include <stdint.h>

#include "actuate/actuate.h"
#include "safety/policy.h"

#define SAFE_REASON_MAX	 256
#define SAFE_SOURCE_MAX	 64   /* runbook and tuner ids, with the terminating NUL */
#define SAFE_HISTORY_MAX 1024 /* changes remembered for budgets and flapping */
#define SAFE_KEYS_MAX	 128  /* (source, target) pairs remembered for cooldowns */
#define SAFE_STORM_MAX	 64   /* runbook firings remembered for storm detection */

enum safe_decision {
	SAFE_ALLOW,		/* make the change now */
	SAFE_DRY_RUN,		/* log it, store it, do not make it (mode dry_run) */
	SAFE_NEED_APPROVAL,	/* ask an operator; expires at out.expires_at_ms */
	SAFE_NOTIFY_THEN_ALLOW, /* announce now; make it at out.not_before_ms unless rejected */
	SAFE_DENY,		/* do not make it; out.reason says why */
};

/* Which rule decided (safe_rule_names[] in gate.c spells them). */
enum safe_rule {
	SAFE_RULE_NONE, /* every rule passed, approval none */
	SAFE_RULE_REQUEST,
	SAFE_RULE_MODE,
	SAFE_RULE_PATH,
	SAFE_RULE_UNIT,
	SAFE_RULE_PROCESS,
	SAFE_RULE_SYSCTL_DENY,
	SAFE_RULE_SYSCTL_RANGE,
	SAFE_RULE_STORM,
	SAFE_RULE_CHANGES_PER_HOUR,
	SAFE_RULE_CONCURRENT,
	SAFE_RULE_BLAST_RADIUS,
	SAFE_RULE_COOLDOWN,
	SAFE_RULE_FLAP,
	SAFE_RULE_CLASS,
	SAFE_RULE_COUNT,
};

/* What became of a change, for safe_gate_record(). */
enum safe_outcome {
	SAFE_OUTCOME_APPLIED,	  /* made and now under canary: counts, and is active */
	SAFE_OUTCOME_FAILED,	  /* the apply failed, nothing stays changed: counts, backs off */
	SAFE_OUTCOME_KEPT,	  /* the canary kept it: no longer active, failures forgotten */
	SAFE_OUTCOME_ROLLED_BACK, /* reverted: no longer active, backs off, a change for flaps */
	SAFE_OUTCOME_COUNT,
};

struct safe_proposal {
	const char *source;	  /* runbook or tuner id, e.g. "fd-exhaustion" */
	const char *target;	  /* policy target name, e.g. "web" */
	const char *action_class; /* policy action class, e.g. "restart" */
	const char *comm;	  /* comm of the process acted on (req.pid); NULL or "": none */
	const char *before;	  /* current value as text, for the dry-run reason; NULL: unknown */
	struct act_request req;	  /* the typed change */
	int64_t now_ms;		  /* wall clock, ms since the epoch */
	int processes;		  /* blast radius: processes the change touches */
	int targets;		  /* blast radius: targets the change touches (0 counts as 1) */
	/* the second half of a change already admitted (the restart that makes a knob take
	 * effect): budgets, blast radius, cooldown and flapping counted the first half */
	bool part_of_change;
	bool approved; /* approved (by an operator, or the notify delay passed): the class rule
			* allows; every other rule still applies */
};

struct safe_decision_out {
	enum safe_decision decision;
	enum safe_rule rule;
	int64_t not_before_ms; /* SAFE_NOTIFY_THEN_ALLOW: now + the class delay; else 0 */
	int64_t expires_at_ms; /* SAFE_NEED_APPROVAL: now + the approval ttl; else 0 */
	char reason[SAFE_REASON_MAX];
};

/* Thresholds that are not (yet) policy keys; safe_gate_init() sets the defaults. */
struct safe_gate_limits {
	int storm_runbooks;	 /* this many distinct runbooks firing ... (5) */
	int64_t storm_window_ms; /* ... within this long freeze the gate (60 s) */
	int flap_changes;	 /* this many changes to one target ... (3) */
	int64_t flap_window_ms;	 /* ... within this long are flapping (120 s) */
	int64_t cooldown_ms;	 /* wait after a change of a (source, target) pair (5 min) */
	int backoff;		 /* cooldown factor per failure in a row (2) */
	int64_t cooldown_max_ms; /* longest cooldown (1 h) */
};

/* The counts agent/memory knows (struct mem_counts), refreshed by the caller each tick. */
struct safe_counts {
	int64_t changes_last_hour;
	int64_t active;
};

struct safe_change {
	int64_t at_ms;
	bool budget; /* counts against changes_per_hour (rollbacks do not) */
	char target[SAFE_NAME_MAX + 1];
};

struct safe_key {
	char source[SAFE_SOURCE_MAX];
	char target[SAFE_NAME_MAX + 1];
	int failures;		/* in a row; 0 after a kept change */
	int64_t cooldown_until; /* ms; 0: none */
	int64_t last_ms;	/* last record, to pick an entry to reuse */
};

struct safe_firing {
	char source[SAFE_SOURCE_MAX];
	int64_t at_ms;
};

struct safe_state {
	struct safe_gate_limits limits;
	struct safe_counts mem;
	int64_t active; /* changes APPLIED and not yet KEPT or ROLLED_BACK */
	struct safe_change changes[SAFE_HISTORY_MAX]; /* ring, oldest at changes_head */
	unsigned n_changes, changes_head;
	struct safe_key keys[SAFE_KEYS_MAX];
	struct safe_firing firings[SAFE_STORM_MAX];
	unsigned n_firings;
	bool frozen;
	int frozen_runbooks; /* distinct runbooks seen when it froze */
	int64_t frozen_at_ms;
};

/* Zeroes state and sets limits (NULL: the defaults). */
void safe_gate_init(struct safe_state *state, const struct safe_gate_limits *limits);
/* Takes the limits the policy sets (budgets.cooldown, budgets.flapping) into state; called
 * before each check, so that a reload applies at once. */
void safe_gate_use_policy(struct safe_state *state, const struct safe_policy *policy);

/* Decides on p. Returns 0 with the decision in *out (SAFE_DENY is a decision, not an
 * error); -EINVAL when an argument is NULL (out, when given, then says SAFE_DENY with the
 * reason). Never changes state. */
int safe_gate_check(const struct safe_policy *policy, const struct safe_state *state,
		    const struct safe_proposal *p, struct safe_decision_out *out);

/* Accounts what became of a change proposed as p (at p->now_ms). Returns 0, -EINVAL (NULL,
 * no source or target, a name too long, bad outcome) or -ENOSPC (every (source, target)
 * entry is cooling down: the change is counted, its cooldown is not kept). */
int safe_gate_record(struct safe_state *state, const struct safe_proposal *p,
		     enum safe_outcome outcome);

/* Notes that runbook source fired at now_ms. Returns 1 when this note froze the gate (a
 * storm: limits.storm_runbooks distinct runbooks within limits.storm_window_ms), 0 when
 * not, -EINVAL for a NULL or too long source. */
int safe_gate_storm_note(struct safe_state *state, const char *source, int64_t now_ms);
/* Lifts a storm freeze (an operator resumed) and forgets the firings that caused it. */
void safe_gate_unfreeze(struct safe_state *state);

/* Changes counted against the hour budget in the hour before now_ms (the gate's own). */
int64_t safe_gate_changes_last_hour(const struct safe_state *state, int64_t now_ms);

extern const char *const safe_decision_names[]; /* "allow", "dry_run", ... */
extern const char *const safe_rule_names[];	/* "none", "request", "mode", ... */

#endif
