/* runbook.h - runbooks: one failure pattern each, detect -> diagnose -> remediate -> verify.
 *
 * A runbook file (remediations/NAME.yaml) says how to recognise a failure from signals
 * (conditions that must all hold, for a while, with hysteresis), what to capture to explain
 * it, a ladder of actions to try in order (each in an action class of the policy, which
 * decides approval), how to tell that it worked, and how often it may be tried. Every name a
 * runbook uses is checked against a table: signals (observe/signals.h), aggregations, errno
 * and signal names, captures and actions with their parameters. heal_runbooks_check_policy()
 * then checks what a runbook needs from the policy: its target, its action classes, sysctls
 * it may write.
 *
 * Units as in policy.h: durations in milliseconds, percentages as fractions, bytes.
 */
#ifndef HS_HEAL_RUNBOOK_H
#define HS_HEAL_RUNBOOK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/errors.h"
#include "lib/schema.h"
#include "observe/signals.h"
#include "safety/policy.h"

#define HEAL_NAME_MAX	    64
#define HEAL_MAX_ERRNOS	    8
#define HEAL_MAX_CONDITIONS 8
#define HEAL_MAX_STEPS	    8
#define HEAL_MAX_CAPTURES   8
#define HEAL_MAX_FILES	    256

/* Where something was written, for errors found after the file was parsed. */
struct heal_pos {
	unsigned line, col;
};

enum heal_op {
	HEAL_OP_GT,
	HEAL_OP_GE,
	HEAL_OP_LT,
	HEAL_OP_LE,
	HEAL_OP_EQ,
	HEAL_OP_NE,
};

struct heal_condition {
	char *signal;
	const struct obs_signal_desc *desc; /* the signal's table entry */
	char *syscall;			    /* NULL: every syscall */
	int errnos[HEAL_MAX_ERRNOS];	    /* errno values; none: every error */
	size_t n_errnos;
	int aggregation; /* enum obs_agg */
	int64_t window_ms;
	int op; /* enum heal_op */
	/* In the signal's unit (enum obs_unit): events (per second for rate), milliseconds,
	 * bytes or a fraction; per second for slope. */
	double threshold;
	struct heal_pos window_pos; /* of 'window', or of the condition when it is left out */
};

struct heal_detect {
	struct heal_condition *when; /* all must hold */
	size_t n_when;
	int64_t for_ms;		      /* ... for this long before the runbook fires */
	struct heal_condition *clear; /* all must hold to clear; none: when no longer holds */
	size_t n_clear;
};

enum heal_capture_kind {
	HEAL_CAPTURE_CPU_PROFILE,
	HEAL_CAPTURE_ALLOC_PROFILE,
	HEAL_CAPTURE_FUNC_LATENCY,
	HEAL_CAPTURE_CRASH_REPORT, /* fatal signals and exits of the window, last CPU profile */
	HEAL_CAPTURE_FD_TABLE,
};

struct heal_capture {
	int capture; /* enum heal_capture_kind */
	int64_t duration_ms;
	char *symbol; /* func_latency: the function (symbol or binary:symbol) */
};

enum heal_action_kind {
	HEAL_ACT_RLIMIT_NOFILE,
	HEAL_ACT_NICE,
	HEAL_ACT_CGROUP_CPU_WEIGHT,
	HEAL_ACT_CGROUP_CPU_QUOTA,
	HEAL_ACT_CGROUP_MEMORY_HIGH,
	HEAL_ACT_SYSCTL,
	HEAL_ACT_SIGNAL,
	HEAL_ACT_RESTART,
	HEAL_ACT_ALERT,
};

/* Raise the soft RLIMIT_NOFILE to value, or to factor x the current soft limit; never above
 * max nor the hard limit. */
struct heal_rlimit_params {
	double factor; /* 0 when value is given */
	int64_t value;
	int64_t max;
};

struct heal_nice_params {
	int64_t value; /* -20..19 */
	bool idle;     /* SCHED_IDLE instead of a nice value */
};

struct heal_cpu_weight_params {
	int64_t weight; /* cpu.weight 1..10000 */
};

struct heal_cpu_quota_params {
	double cpus; /* cpu.max as CPUs: 0.5 is half a CPU */
	int64_t period_ms;
};

struct heal_memory_high_params {
	uint64_t bytes; /* memory.high */
};

struct heal_sysctl_params {
	char *name;
	char *value;
	bool raise_only; /* an integer already at or above value is left alone (step skipped) */
	bool restart;	 /* takes effect when the target restarts: restart it after writing */
};

struct heal_signal_params {
	int signal; /* index into heal_signal_names; heal_signal_number() gives SIGxxx */
};

struct heal_restart_params {
	int64_t grace_ms; /* between SIGTERM (or the unit's stop) and SIGKILL */
};

struct heal_alert_params {
	char *message;
};

/* Which process a step acts on. */
enum heal_subject {
	HEAL_SUBJECT_SELF,    /* the target's process the action's rule picks (runbook.c) */
	HEAL_SUBJECT_CPU_HOG, /* the process using the most CPU outside the target */
};

/* When a kept step is undone. */
enum heal_revert {
	HEAL_REVERT_NEVER,	  /* stays until an operator rolls it back */
	HEAL_REVERT_WHEN_CLEARED, /* once the detect block clears */
	HEAL_REVERT_WHEN_IDLE,	  /* once its process uses little CPU (the hog is gone) */
};

struct heal_step {
	int action;  /* enum heal_action_kind */
	int subject; /* enum heal_subject */
	int revert;  /* enum heal_revert */
	char *class_name;
	struct heal_pos class_pos;
	char *why;
	union {
		struct heal_rlimit_params rlimit_nofile;
		struct heal_nice_params nice;
		struct heal_cpu_weight_params cpu_weight;
		struct heal_cpu_quota_params cpu_quota;
		struct heal_memory_high_params memory_high;
		struct heal_sysctl_params sysctl;
		struct heal_signal_params signal;
		struct heal_restart_params restart;
		struct heal_alert_params alert;
	} params;
	bool params_set; /* the union holds converted params of action (freed by them) */
	struct heal_pos pos;
};

struct heal_applies_to {
	bool policy_targets; /* every target of the policy, not the rest of the host */
	char *target;	     /* a target of the policy; excludes the selectors below */
	struct heal_pos target_pos;
	char *unit;
	char *cgroup;
	char *comm;
	char *exe;
};

struct heal_verify {
	struct heal_condition *when; /* all must hold within the deadline */
	size_t n_when;
	int64_t within_ms;
};

struct heal_limits {
	int64_t cooldown_ms;  /* after an attempt, per target */
	int64_t max_attempts; /* per episode; then only alert */
	double backoff;	      /* cooldown multiplier after each failed attempt */
};

struct heal_runbook {
	char *name;
	struct heal_pos name_pos;
	char *description;
	bool enabled;
	struct heal_applies_to applies_to; /* nothing set: every process */
	struct heal_detect detect;
	struct heal_capture *diagnose;
	size_t n_diagnose;
	struct heal_step *remediate; /* the ladder, tried in order */
	size_t n_remediate;
	struct heal_verify verify;
	struct heal_limits limits;
	char *path; /* the file it came from */
};

struct heal_runbooks {
	struct heal_runbook *v; /* sorted by file name */
	size_t n;
	char *dir;
};

/* Loads every *.yaml file (not starting with '.') of dir in sorted order. dir and each file
 * must be owned by owner and not writable by group or others. Returns 0 and sets *out when
 * no error was found; else -EINVAL (or another -errno) with every error in errs. */
int heal_runbooks_load(const char *dir, uid_t owner, struct heal_runbooks **out,
		       struct hs_errors *errs);
/* One runbook from a buffer (path names it in messages); for tests. */
int heal_runbook_parse(const char *path, const char *buf, size_t len, struct heal_runbook *out,
		       struct hs_errors *errs);
void heal_runbook_release(struct heal_runbook *rb);
void heal_runbooks_free(struct heal_runbooks *rbs);

/* What the runbooks need from the policy: targets, action classes, allowed sysctls.
 * Returns 0, or -EINVAL with the errors in errs. */
int heal_runbooks_check_policy(const struct heal_runbooks *rbs, const struct safe_policy *pol,
			       struct hs_errors *errs);

struct heal_action_desc {
	const char *name;
	enum heal_action_kind kind;
	const struct sch_struct *params;
	const char *why;
};

const struct heal_action_desc *heal_action_lookup(const char *name);
const struct heal_action_desc *heal_action_desc(enum heal_action_kind kind);
/* The errno value of "EMFILE", or 0. */
int heal_errno_lookup(const char *name);
/* SIGxxx of a heal_signal_params.signal index. */
int heal_signal_number(int index);

extern const char *const heal_op_names[];      /* ">", ">=", "<", "<=", "==", "!=" */
extern const char *const heal_capture_names[]; /* "cpu_profile", ... */
extern const char *const heal_action_names[];  /* "rlimit_nofile", ... */
extern const char *const heal_signal_names[];  /* "SIGHUP", ... */
extern const char *const heal_subject_names[]; /* "self", "cpu_hog" */
extern const char *const heal_revert_names[];  /* "never", "when_cleared", "when_idle" */
extern const struct sch_struct heal_runbook_schema;

#endif
