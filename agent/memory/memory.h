/* memory.h - homeostat's memory: every proposal, decision, change and outcome, in sqlite.
 *
 * Why: nothing the daemon did may be lost, not even across kill -9, and the daemon must never
 * retry what already failed. Every change is written here *before* the actuator touches the
 * host (write-ahead intent) and its outcome after; at start the daemon rolls back whatever
 * mem_changes_unconcluded() returns.
 *
 * Invariants:
 * - Every function that writes does so in one committed transaction (BEGIN IMMEDIATE ...
 *   COMMIT) together with its audit row: when it returns 0 (or an id) the record is durable
 *   (WAL, synchronous=FULL); when it returns -errno nothing was written.
 * - The audit trail, the outcomes and the changes are append-only: triggers refuse UPDATE
 *   and DELETE of audit, outcomes and diagnoses rows, DELETE of changes, approvals and
 *   episodes rows, and any UPDATE of an episode once it has ended.
 * - The fitness history is a measurement, not a decision: it has no audit rows, and old rows
 *   are pruned (mem_fitness_prune()); every other rule above holds for it.
 * - A change moves only along the state machine below; anything else is -EINVAL.
 * - Times are milliseconds since the Unix epoch (CLOCK_REALTIME), as int64_t.
 * - Strings handed to callbacks are valid only during the callback; copy what you keep.
 * - One struct mem is used by one thread. Several processes may open the same file.
 *
 * Change states (stored as their UPPER_CASE names) and the only transitions allowed:
 *
 *   PROPOSED          -> PENDING_APPROVAL (mem_approval_request), INTENT, DENIED
 *   PENDING_APPROVAL  -> APPROVED, DENIED (mem_approval_decide, mem_approvals_expire only)
 *   APPROVED          -> INTENT, DENIED
 *   INTENT            -> APPLIED, FAILED, ROLLED_BACK
 *   APPLIED           -> KEPT, ROLLED_BACK, FAILED
 *   KEPT              -> ROLLED_BACK
 *   ROLLED_BACK, FAILED, DENIED are final.
 *
 *   PROPOSED          recorded, not acted on (dry run, or waiting for the policy gate)
 *   PENDING_APPROVAL  waiting for an operator: only the mem_approval_* functions move it
 *   APPROVED          an operator approved it; the daemon has not started it yet
 *   INTENT            about to be applied (the write-ahead point)
 *   APPLIED           applied, canary running
 *   KEPT              canary concluded KEEP; may still be rolled back by an operator
 *   ROLLED_BACK       reverted (canary verdict, reconciliation after a crash, or operator)
 *   FAILED            applying or reverting failed
 *   DENIED            refused by the policy, an operator, or an approval that expired
 *
 * Episodes: one firing of a runbook on a target, from detection to its end. An episode is
 * OPEN while the runbook works on it and ends exactly once, in one of the other states; the
 * changes it made (mem_change.episode_id) and the diagnoses captured (mem_diagnosis_add())
 * name it. At start the daemon aborts the episodes of the previous run
 * (mem_episodes_abort_open()): nothing can carry them on.
 *
 * Errors: -EINVAL (bad argument, illegal transition, constraint), -EEXIST (unique
 * constraint), -ENOENT (no such row), -E2BIG (a string or text over its maximum), -EBUSY
 * (database locked past the busy timeout), -ENOMEM, -ENOSPC (disk full, or an episode's
 * summary full), -EBADMSG (a stored diagnosis does not decompress to its size), -EPROTO
 * (database written by a newer homeostat), -EIO (anything else from sqlite).
 * mem_last_error() then says what failed, for the caller to log.
 */
#ifndef HS_MEMORY_H
#define HS_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/util.h"

struct mem;

/* Schema version this code writes (PRAGMA user_version). */
#define MEM_SCHEMA_VERSION 3
/* Longest string field accepted (target, knob, before, after, why, ...), in bytes. */
#define MEM_TEXT_MAX 65536
/* Buffer sizes that always suffice for mem_host_kernel() and mem_host_class(). */
#define MEM_KERNEL_MAX	   32
#define MEM_HOST_CLASS_MAX 64
/* Buffer size that suffices for mem_should_attempt()'s reason. */
#define MEM_WHY_MAX 1024
/* Longest diagnosis text accepted by mem_diagnosis_add(), in bytes (before compression). */
#define MEM_DIAGNOSIS_MAX (16 * 1024 * 1024)

enum mem_kind {
	MEM_KIND_RLIMIT,
	MEM_KIND_SYSCTL,
	MEM_KIND_CGROUP,
	MEM_KIND_NICE,
	MEM_KIND_SIGNAL,
	MEM_KIND_RESTART,
	MEM_KIND_PATCH,
	MEM_KIND_FILE,
	MEM_KIND_COUNT,
};

enum mem_state {
	MEM_STATE_PROPOSED,
	MEM_STATE_PENDING_APPROVAL,
	MEM_STATE_APPROVED,
	MEM_STATE_INTENT,
	MEM_STATE_APPLIED,
	MEM_STATE_KEPT,
	MEM_STATE_ROLLED_BACK,
	MEM_STATE_FAILED,
	MEM_STATE_DENIED,
	MEM_STATE_COUNT,
};

/* The canary judge's verdict. NONE: no verdict was reached (apply failed, crash, operator). */
enum mem_verdict {
	MEM_VERDICT_KEEP,
	MEM_VERDICT_ROLLBACK,
	MEM_VERDICT_INCONCLUSIVE,
	MEM_VERDICT_NONE,
	MEM_VERDICT_COUNT,
};

/* What became of the change; recording it moves the change to KEPT, ROLLED_BACK or FAILED. */
enum mem_result {
	MEM_RESULT_DEPLOYED,
	MEM_RESULT_ROLLED_BACK,
	MEM_RESULT_FAILED,
	MEM_RESULT_COUNT,
};

enum mem_approval_state {
	MEM_APPROVAL_PENDING,
	MEM_APPROVAL_APPROVED,
	MEM_APPROVAL_REJECTED,
	MEM_APPROVAL_EXPIRED,
	MEM_APPROVAL_COUNT,
};

/* One change to the host. As input (mem_change_record/intent) only kind, target, knob,
 * before, after, why, source, revert, fingerprint, episode_id and act are read; NULL strings
 * are stored as "", except target and knob, which must not be empty. A NULL or empty
 * fingerprint is computed by mem_fingerprint() from kind, target, knob, after and this host's
 * kernel and class. episode_id 0 is none; any other must name an episode (else -EINVAL). As
 * output (mem_change_get() and every walk) all fields are set, act to "" when there is none. */
struct mem_change {
	int64_t id;
	int64_t created_at;
	int64_t updated_at;
	int64_t acted_at; /* when it entered INTENT; 0 if it never did */
	enum mem_kind kind;
	enum mem_state state;
	const char *target;	 /* service or "host" */
	const char *knob;	 /* sysctl name, rlimit, cgroup file, or action (e.g. "SIGHUP") */
	const char *before;	 /* value before the change, as text */
	const char *after;	 /* value after the change, as text */
	const char *why;	 /* the signal and the runbook's or tuner's explanation */
	const char *source;	 /* runbook or tuner id, e.g. "runbook:fd-exhaustion" */
	const char *fingerprint; /* see mem_fingerprint() */
	const char *revert;	 /* the command that reverts it, for humans */
	int64_t episode_id;	 /* the episode that made it; 0 if none */
	const char *act;	 /* the actuator's request as text, for a later process to rebuild
				  * and revert it; opaque here, "" if none */
};

/* The statistics of the verdict go in stats_json as one JSON object, e.g.
 * {"test":"mann-whitney-u","n_canary":120,"n_baseline":118,"statistic":5012.5,
 *  "p":0.003,"ci":[12.1,40.7],"effect":0.31}. NULL is stored as "{}". Fitness values that
 * are unknown are NAN (stored as NULL). */
struct mem_outcome {
	int64_t id;
	int64_t change_id;
	int64_t at;
	double fitness_before;
	double fitness_after;
	enum mem_verdict verdict;
	const char *stats_json;
	enum mem_result result;
	const char *failure_reason; /* "" when none */
};

struct mem_approval {
	int64_t id;
	int64_t change_id;
	enum mem_approval_state state;
	int64_t requested_at;
	int64_t expires_at;
	int64_t decided_at;	/* 0 while pending */
	const char *decided_by; /* "" while pending or when expired */
};

/* What a change would be, for mem_should_attempt() and mem_fingerprint(). All strings
 * non-NULL (except kernel and host_class for mem_should_attempt(), where NULL means this
 * host's); value may be "" (e.g. for a restart). */
struct mem_candidate {
	enum mem_kind kind;
	const char *target;
	const char *knob;
	const char *value;
	const char *kernel;	/* mem_host_kernel() */
	const char *host_class; /* mem_host_class() */
};

/* How an episode ended (stored as the UPPER_CASE names). OPEN: it has not. */
enum mem_episode_state {
	MEM_EPISODE_OPEN,
	MEM_EPISODE_RESOLVED,	/* the runbook acted and the condition cleared */
	MEM_EPISODE_UNRESOLVED, /* the runbook did what it could; the condition stayed */
	MEM_EPISODE_CLEARED,	/* the condition cleared by itself before anything was done */
	MEM_EPISODE_REFUSED,	/* the policy, an operator or the memory refused the action */
	MEM_EPISODE_DRY_RUN,	/* the action was only recorded (PROPOSED) */
	MEM_EPISODE_ABORTED,	/* the daemon stopped (or crashed) while it was open */
	MEM_EPISODE_COUNT,
};

/* One episode. ended_at is 0 while state is OPEN. why is the detection's explanation;
 * summary is what happened, the notes joined by "; " ("" before the first). */
struct mem_episode {
	int64_t id;
	const char *runbook; /* runbook id, e.g. "fd-exhaustion" */
	const char *target;  /* service or "host" */
	int64_t pid;	     /* the process concerned; 0 if none */
	int64_t started_at;
	int64_t updated_at;
	int64_t ended_at;
	enum mem_episode_state state;
	const char *why;
	const char *summary;
};

/* For `homeostat status` and the policy budgets. */
struct mem_counts {
	int64_t changes_last_hour; /* changes that entered INTENT in the hour before now */
	int64_t active;		   /* changes in INTENT or APPLIED */
	int64_t pending_approvals; /* approvals in PENDING, expired or not */
	int64_t total;		   /* all changes ever recorded */
};

/* Opens (creating it with mode 0600 if missing) and migrates the database at path. WAL,
 * synchronous=FULL, foreign_keys=ON, a busy timeout of 5 s. Refuses symlinks (-ELOOP) and a
 * database newer than this code (-EPROTO). On error *out is NULL and nothing is leaked. */
int mem_open(const char *path, struct mem **out);
void mem_close(struct mem *m);
/* PRAGMA user_version of the open database, or -errno. */
int mem_schema_version(struct mem *m);
/* What the last failing call failed on ("" if nothing failed yet). Never NULL. */
const char *mem_last_error(const struct mem *m);

/* Records a new change in state initial (PROPOSED, INTENT or DENIED) with its audit row, in
 * one committed transaction. Returns the new change id (> 0) or -errno. */
int64_t mem_change_record(struct mem *m, const struct mem_change *c, enum mem_state initial,
			  const char *note);
/* The write-ahead intent: mem_change_record(m, c, MEM_STATE_INTENT, NULL). Call it before
 * the actuator acts, and act only if it returned an id. */
int64_t mem_change_intent(struct mem *m, const struct mem_change *c);
/* Moves change id to state to, with an audit row (actor, event "change.<state>", the note)
 * in the same transaction. -ENOENT: no such change; -EINVAL: illegal transition (including
 * any into or out of PENDING_APPROVAL: use the mem_approval_* functions). */
int mem_change_set_state(struct mem *m, int64_t id, enum mem_state to, const char *actor,
			 const char *note);
/* INTENT -> APPLIED, replacing before, after, revert and act with what the actuator found and
 * left (the intent holds what was read and wanted before acting), with an audit row (actor
 * "homeostat", the note or "applied"), in one transaction. -EINVAL unless INTENT. */
int mem_change_applied(struct mem *m, int64_t id, const char *before, const char *after,
		       const char *revert, const char *act, const char *note);
/* A heap copy of change id (one allocation: free() it, or mem_change_free()). -ENOENT. */
int mem_change_get(struct mem *m, int64_t id, struct mem_change **out);
void mem_change_free(struct mem_change *c);
static inline void mem_change_freep(struct mem_change **c)
{
	mem_change_free(*c);
}

/* Records the outcome of change o->change_id and moves the change to the state its result
 * implies (DEPLOYED: KEPT, ROLLED_BACK: ROLLED_BACK, FAILED: FAILED; a change already in
 * that state stays), with an audit row, in one transaction. -EINVAL if that transition is
 * illegal or stats_json is not a JSON object. Returns the outcome id (> 0) or -errno. */
int64_t mem_outcome_record(struct mem *m, const struct mem_outcome *o, const char *actor);
/* A heap copy of the newest outcome of change_id (free() it); -ENOENT if it has none. */
int mem_outcome_latest(struct mem *m, int64_t change_id, struct mem_outcome **out);

/* One judged metric of an outcome, for `homeostat explain`: an object of the "metrics" array
 * of the stats as the canary writes them (safe_canary_json(), one object per metric as
 * safe_result_json() writes it). Numbers that are absent, null or not numbers are NAN;
 * strings that are absent or null are "". canary and baseline are the arms' centers: the
 * medians (canary_median, baseline_median) or, for a rate metric, the rates (canary_rate,
 * baseline_rate). */
struct mem_metric_row {
	const char *metric; /* e.g. "error rate" */
	const char *unit;
	const char *test;	      /* e.g. "mann-whitney-u" */
	int64_t n_canary, n_baseline; /* samples; -1 when absent or not a count */
	double statistic, p, shift;   /* the test's statistic, its p-value, the shift */
	double ci_low, ci_high;	      /* the shift's confidence interval ("ci") */
	double effect, rel_shift;     /* effect size, shift relative to the baseline */
	double canary, baseline;      /* the arms' centers */
	const char *verdict, *reason; /* "KEEP", "ROLLBACK", "INCONCLUSIVE"; and why */
};

/* Calls cb once per judged metric of the newest outcome of change_id, in the order of its
 * "metrics" array, read with sqlite's JSON functions; elements that are not objects are
 * skipped. The rows are read before the first call, so cb may write. Returns the number of
 * calls: 0 when the change has no outcome (or does not exist), or its stats have no
 * "metrics" array (the runbooks' verify outcomes); cb's first negative value, which stops
 * the walk; or -errno. */
int mem_outcome_metrics(struct mem *m, int64_t change_id,
			int (*cb)(const struct mem_metric_row *row, void *ud), void *ud);

/* The canary's summary of an outcome (the top-level keys safe_canary_json() writes), for
 * `homeostat explain`. Strings absent or null are "", counts and times -1, numbers NAN:
 * stats written by something else (a runbook's verify) leave mode "". */
struct mem_outcome_summary {
	const char *mode;			  /* "before_after", "switchback" */
	const char *outcome;			  /* "done", "breach" */
	int64_t duration_ms, elapsed_ms;	  /* planned, and how long it ran */
	int64_t samples_canary, samples_baseline; /* samples judged in each arm */
	bool truncated;				  /* ended early, at the sample cap */
	const char *verdict, *reason;		  /* the combined verdict and why */
	bool breach;				  /* "breach" is an object: a guard tripped */
	const char *breach_metric;
	double breach_canary, breach_baseline, breach_limit;
	const char *function_latency; /* a redirect's: "function_latency": {"summary": ...} */
};

/* A heap copy (one allocation: free() it) of the summary of the newest outcome of
 * change_id. -ENOENT if it has none. Stats that are not valid JSON read as {}. */
int mem_outcome_summary(struct mem *m, int64_t change_id, struct mem_outcome_summary **out);

/* Asks an operator to approve change_id, which must be PROPOSED: creates the approval
 * (PENDING, expiring at expires_at, which must be ahead) and moves the change to
 * PENDING_APPROVAL. One approval per change: asking again is -EINVAL, as the change is no
 * longer PROPOSED; -ENOENT: no such change. Returns the approval id (> 0) or -errno. */
int64_t mem_approval_request(struct mem *m, int64_t change_id, int64_t expires_at);
/* Decides the pending approval of change_id (the id `homeostat approve ID` takes):
 * approve moves it to APPROVED and the change to APPROVED; reject to REJECTED and DENIED.
 * -ENOENT: no approval for that change; -EALREADY: already decided or expired;
 * -ETIMEDOUT: past expires_at (mem_approvals_expire() will deny it); -EINVAL: by empty. */
int mem_approval_decide(struct mem *m, int64_t change_id, bool approve, const char *by);
/* Expires every pending approval with expires_at <= now: approval EXPIRED, change DENIED
 * (expired means denied). Returns how many expired, or -errno (then none did). */
int mem_approvals_expire(struct mem *m, int64_t now);
/* Calls cb for every PENDING approval, oldest first. Returns the number of calls, or the
 * first negative value cb returned (which stops the walk), or -errno. */
int mem_approvals_pending(struct mem *m,
			  int (*cb)(const struct mem_approval *a, const struct mem_change *c,
				    void *ud),
			  void *ud);

/* Appends an audit row. change_id 0 means none. Returns the new seq (> 0) or -errno. */
int64_t mem_audit(struct mem *m, const char *actor, const char *event, int64_t change_id,
		  const char *fmt, ...) HS_PRINTF(5, 6);

/* Copies into out the newest audit event that is event_a or event_b (e.g. "pause" and
 * "resume": the daemon starts paused if the operator paused it last). -ENOENT if neither. */
int mem_audit_last_of(struct mem *m, const char *event_a, const char *event_b, char *out,
		      size_t size);

/* For reconciliation at start: calls cb for every change in INTENT or APPLIED (its canary
 * was not concluded, so the daemon rolls it back), newest first so that stacked changes are
 * undone in reverse order. The rows are read before the first call, so cb may write (e.g.
 * mem_change_set_state()). Returns the number of calls, cb's first negative value, or
 * -errno. */
int mem_changes_unconcluded(struct mem *m, int (*cb)(const struct mem_change *c, void *ud),
			    void *ud);
/* Calls cb for every change in state, oldest first (e.g. APPROVED: the daemon applies what
 * operators approved, in the order they were proposed). Same return and re-entrancy rules
 * as above: cb may move the change (mem_change_set_state()). -EINVAL: unknown state. */
int mem_changes_by_state(struct mem *m, enum mem_state state,
			 int (*cb)(const struct mem_change *c, void *ud), void *ud);
/* Calls cb for the newest limit changes (all if limit <= 0), newest first, each with its
 * latest outcome (NULL if none). Same return and re-entrancy rules as above. */
int mem_history(struct mem *m, int limit,
		int (*cb)(const struct mem_change *c, const struct mem_outcome *o, void *ud),
		void *ud);
int mem_counts(struct mem *m, int64_t now, struct mem_counts *out);

/* Episodes. now is the episode's time (started_at, updated_at, ended_at); the audit rows have
 * the time they were written, like every other. The actor of the audit rows is
 * "runbook:<runbook>" (mem_episodes_abort_open(): "homeostatd"), their change_id none, and
 * their detail begins "episode N".
 *
 * Opens an episode of runbook on target (both non-empty) for process pid (0: none, never
 * negative), with the detection's explanation why (may be NULL), and its audit row
 * "episode.open" ("episode N on TARGET: WHY", or without ": WHY" when why is empty). -E2BIG: a
 * string longer than MEM_TEXT_MAX. Returns the id (> 0) or -errno. */
int64_t mem_episode_open(struct mem *m, const char *runbook, const char *target, int64_t pid,
			 const char *why, int64_t now);
/* Appends the formatted text (non-empty) to the summary of episode id ("; " between notes)
 * and sets its updated_at, with the audit row "episode.note" ("episode N: TEXT").
 * -ENOENT: no such episode; -EINVAL: it has ended, or the text is empty; -ENOSPC: the
 * summary would grow past MEM_TEXT_MAX (nothing is written: the episode can still be
 * closed). */
int mem_episode_note(struct mem *m, int64_t id, int64_t now, const char *fmt, ...) HS_PRINTF(4, 5);
/* Ends episode id in state (any but OPEN) at now, appending note (NULL or "": none) to its
 * summary, with the audit row "episode.<state in lowercase>" (e.g. "episode.resolved",
 * "episode N: NOTE"). Never fails for a full summary: past MEM_TEXT_MAX the older summary is
 * cut and marked with "…" so that the note still fits. -ENOENT: no such episode; -EINVAL:
 * state is OPEN or unknown, or the episode has already ended (an episode ends once); -E2BIG:
 * note is longer than MEM_TEXT_MAX. */
int mem_episode_close(struct mem *m, int64_t id, enum mem_episode_state state, int64_t now,
		      const char *note);
/* Calls cb for the newest limit episodes (all if limit <= 0), only the OPEN ones if
 * open_only, newest first. Returns the number of calls, cb's first negative value, or
 * -errno; the rows are read before the first call, so cb may write. */
int mem_episodes(struct mem *m, int limit, bool open_only,
		 int (*cb)(const struct mem_episode *e, void *ud), void *ud);
/* A heap copy of episode id (one allocation: free() it). -ENOENT. */
int mem_episode_get(struct mem *m, int64_t id, struct mem_episode **out);
/* Ends every OPEN episode as ABORTED at now with note (as mem_episode_close() does), in one
 * transaction: at start, as the episodes of a previous run cannot go on. Returns how many,
 * or -errno (then none was). */
int mem_episodes_abort_open(struct mem *m, int64_t now, const char *note);

/* Diagnoses: what was captured during an episode (an fd table, an allocation profile), as
 * text of up to MEM_DIAGNOSIS_MAX bytes stored zlib-compressed, with a one-line summary.
 * Append-only; the audit rows' actor is the episode's runbook. An episode that has ended may
 * still receive one (a capture may finish after the episode did).
 *
 * Stores len bytes of text (any bytes; NULL only when len is 0) of kind (non-empty, e.g.
 * "fd_table", "alloc_profile") with summary (may be NULL) for episode_id, captured at now,
 * with the audit row "diagnosis.add" (kind, summary, raw and compressed sizes). -ENOENT: no
 * such episode; -E2BIG: len over MEM_DIAGNOSIS_MAX. Returns the id (> 0) or -errno. */
int64_t mem_diagnosis_add(struct mem *m, int64_t episode_id, int64_t now, const char *kind,
			  const char *summary, const void *text, size_t len);
/* Decompresses diagnosis id into *text (len bytes, then a NUL not counted in len) and copies
 * its kind and summary; kind and summary may be NULL if unwanted. The caller frees every
 * string it got. On error every output is NULL (or 0). -ENOENT: no such diagnosis;
 * -EBADMSG: the stored data does not decompress to exactly its recorded size. */
int mem_diagnosis_get(struct mem *m, int64_t id, char **text, size_t *len, char **kind,
		      char **summary);
/* Calls cb for every diagnosis of episode_id, oldest first, with its sizes before and after
 * compression; the text itself is not read (mem_diagnosis_get()). An unknown episode has
 * none. Returns the number of calls, cb's first negative value, or -errno; cb may write. */
int mem_diagnoses(struct mem *m, int64_t episode_id,
		  int (*cb)(int64_t id, int64_t at, const char *kind, const char *summary,
			    size_t raw_size, size_t stored_size, void *ud),
		  void *ud);

/* The stable, human-readable fingerprint of a candidate, "kind|target|knob|value|kernel|class":
 *
 *   sysctl|web|net.core.somaxconn|v2^12|6.1|x86_64-2cpu-8g
 *
 * The value is bucketed. An integer n (decimal, optional sign) becomes "v0" for 0, "v2^k" for
 * 2^k <= n < 2^(k+1) (k = floor(log2 n)), and "v-2^k" for a negative n with
 * 2^k <= -n < 2^(k+1): 1000 and 1023 are both v2^9, 1024 and 1025 are v2^10. Several integers
 * separated by blanks (tcp_rmem "4096 87380 6291456") become their buckets joined by ","
 * ("v2^12,2^16,2^22"). Any other value (text, decimals, "") is "=" and the exact text.
 * '|', '%' and control characters in any field are written %XX.
 * Returns 0, -EINVAL (NULL field, bad kind) or -ENAMETOOLONG (buf too small). */
int mem_fingerprint(const struct mem_candidate *c, char *buf, size_t size);
/* The failure_reason prefix of an outcome (verdict NONE, result ROLLED_BACK) that records a
 * change undone because the daemon stopped before concluding it, not because it failed:
 * mem_should_attempt() does not hold it against the fingerprint. */
#define MEM_INTERRUPTED "interrupted: "
/* 1: go; 0: refused, because a change with the same fingerprint failed before (state FAILED
 * or ROLLED_BACK, or an outcome with result ROLLED_BACK or verdict ROLLBACK or
 * INCONCLUSIVE), and why then names the newest such change, when and why it failed;
 * -errno on error. why may be NULL; it is always terminated when whylen > 0. A NULL kernel or
 * host_class in c means this host's (as mem_change_intent() fingerprints). */
int mem_should_attempt(struct mem *m, const struct mem_candidate *c, char *why, size_t whylen);
/* "major.minor" of the running kernel, e.g. "6.1". 0 or -errno. */
int mem_host_kernel(char *buf, size_t size);
/* "arch-Ncpu-Mg": machine, configured CPUs, RAM rounded up to a power of two GiB, e.g.
 * "x86_64-2cpu-8g". 0 or -errno. */
int mem_host_class(char *buf, size_t size);

/* Fitness history (agent/fitness/ writes it; the judge and `homeostat explain` read it).
 * One row summarises the ticks of one target from start_at to end_at (both included): the
 * minimum, mean and maximum of the fitness over the ticks that had one (scored of samples),
 * the mean of each part over the ticks where that part had a score, and the basis of the
 * scores ("slo", "baseline", "learning" or "idle"). Unknown values are NAN (stored as NULL). */
struct mem_fitness_row {
	const char *target;
	int64_t start_at, end_at;
	int64_t samples; /* ticks, > 0 */
	int64_t scored;	 /* ticks with a fitness, 0..samples */
	double score_min, score_avg, score_max;
	double latency, errors, throughput, cost;
	const char *basis;
};

/* The fitness of a target over a time range, from the rows that overlap it. */
struct mem_fitness_summary {
	int64_t rows;
	int64_t samples, scored;
	double min, avg, max; /* avg weighted by scored ticks; NAN when scored is 0 */
};

/* Appends n rows in one transaction. -EINVAL (and nothing written) if a row is malformed: an
 * empty target, end_at < start_at, samples < 1, scored outside 0..samples, an unknown basis.
 * Returns 0 or -errno. */
int mem_fitness_record(struct mem *m, const struct mem_fitness_row *rows, size_t n);
/* Calls cb for every row of target that overlaps [from, to] (end_at >= from and start_at <=
 * to), oldest first. Returns the number of calls, cb's first negative value, or -errno. */
int mem_fitness_range(struct mem *m, const char *target, int64_t from, int64_t to,
		      int (*cb)(const struct mem_fitness_row *r, void *ud), void *ud);
/* The same rows summarised. 0 or -errno; no rows is 0 with rows == 0 and NAN values. */
int mem_fitness_summary(struct mem *m, const char *target, int64_t from, int64_t to,
			struct mem_fitness_summary *out);
/* Deletes at most limit rows whose end_at is before before, oldest first. Returns how many
 * (limit means there may be more), or -errno. */
int mem_fitness_prune(struct mem *m, int64_t before, int limit);

/* UPPER_CASE names as stored in the database (kinds are lowercase: "sysctl"), NULL if out of
 * range; the _from_ functions return the value or -EINVAL. */
const char *mem_kind_name(enum mem_kind k);
const char *mem_state_name(enum mem_state s);
const char *mem_verdict_name(enum mem_verdict v);
const char *mem_result_name(enum mem_result r);
const char *mem_approval_state_name(enum mem_approval_state s);
const char *mem_episode_state_name(enum mem_episode_state s);
int mem_kind_from_name(const char *name);
int mem_state_from_name(const char *name);
int mem_verdict_from_name(const char *name);
int mem_result_from_name(const char *name);
int mem_approval_state_from_name(const char *name);
int mem_episode_state_from_name(const char *name);
/* Whether mem_change_set_state() allows from -> to. */
bool mem_transition_allowed(enum mem_state from, enum mem_state to);

#endif
