/* policy.h - the safety policy: what the agent may change, how often, and with whose consent.
 *
 * Loaded once from a root-owned YAML file that group and others cannot write (DESIGN.md
 * "Safety"), fully validated, every error reported as "path:line:col: message". The loaded
 * struct is read-only to the rest of the agent except for safe_policy_protect_path(), with
 * which the daemon adds its own files (binary, policy, runbooks, database) to the protected
 * paths: those may never be changed, whatever the file says.
 *
 * Units: durations are milliseconds (int64_t), percentages are fractions (double, 0.001 for
 * "0.1%"), byte sizes are bytes. docs/config.md describes every key.
 */
#ifndef HS_SAFE_POLICY_H
#define HS_SAFE_POLICY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/errors.h"
#include "lib/schema.h"

#define SAFE_NAME_MAX	   32 /* target and action class names */
#define SAFE_COMM_MAX	   15 /* TASK_COMM_LEN - 1 */
#define SAFE_MAX_TARGETS   15 /* HS_MAX_TARGETS of bpf/targets.h: the kernel counts per target */
#define SAFE_MAX_CLASSES   32
#define SAFE_MAX_PROTECTED 256

/* The tuning section (tune/knobs.h, tune/search.h hold the same limits). */
#define SAFE_MAX_TUNE_JOBS   16
#define SAFE_MAX_TUNE_KNOBS  8	 /* TUNE_MAX_DIMS: knobs searched together */
#define SAFE_MAX_TUNE_TRIALS 256 /* TUNE_MAX_TRIALS */

enum safe_mode {
	SAFE_MODE_ENFORCE, /* changes are applied */
	SAFE_MODE_DRY_RUN, /* everything but the change: proposals are logged and stored */
	SAFE_MODE_OBSERVE, /* watch and score only: no proposals */
};

enum safe_approval {
	SAFE_APPROVAL_NONE,    /* apply at once */
	SAFE_APPROVAL_NOTIFY,  /* announce, apply after delay unless rejected */
	SAFE_APPROVAL_REQUIRE, /* wait for `homeostat approve ID`; expire after ttl */
};

struct safe_blast_radius {
	int64_t processes; /* processes one change may touch */
	int64_t targets;   /* targets one change may touch */
};

struct safe_flapping {
	int64_t changes;   /* this many changes to one target ... */
	int64_t within_ms; /* ... within this long are flapping: the next is denied */
};

struct safe_budgets {
	int64_t changes_per_hour;
	int64_t concurrent_changes;
	struct safe_blast_radius blast_radius;
	int64_t cooldown_ms; /* after a change of a (source, target) pair, x2 per failure */
	struct safe_flapping flapping;
};

struct safe_sysctl_range {
	char *name;
	int64_t min, max;
};

struct safe_protected {
	char **paths; /* files and directory trees (prefix match) never changed */
	size_t n_paths;
	char **units; /* systemd units never restarted or changed */
	size_t n_units;
	char **processes; /* comm names never signalled, reniced or restarted */
	size_t n_processes;
	char **sysctl_deny; /* sysctl names (or "prefix.*") never written */
	size_t n_sysctl_deny;
	struct safe_sysctl_range *sysctl_ranges; /* allowed values of integer sysctls */
	size_t n_sysctl_ranges;
};

struct safe_action_class {
	char *name;
	char *description;
	int approval;	  /* enum safe_approval */
	int64_t delay_ms; /* NOTIFY: wait this long for a rejection */
	int64_t ttl_ms;	  /* REQUIRE: a pending approval expires (approvals.ttl if not set) */
};

struct safe_approvals {
	int64_t ttl_ms; /* default life of a pending approval */
};

struct safe_canary {
	int64_t duration_ms;	     /* how long a change is judged */
	int64_t min_samples;	     /* fewer samples is INCONCLUSIVE */
	double alpha;		     /* significance level of the tests */
	double effect_size;	     /* smallest relative change that counts */
	int64_t switchback_block_ms; /* on/off block length without a concurrent baseline */
};

struct safe_rollback_on {
	double error_rate_increase; /* absolute increase of the error fraction */
	int64_t p99_latency_increase_ms;
	struct sch_amount rss_increase; /* bytes or fraction of the baseline */
	double throughput_decrease;	/* fraction of the baseline */
	double fitness_decrease;	/* fraction of the baseline */
};

struct safe_fitness {
	double latency, errors, throughput, cost; /* relative weights, each 0..1, sum > 0 */
};

/* Syscall latency is timed (1 in 16 syscalls) while the sys_enter program is attached:
 * window_ms out of every every_ms; every_ms 0: never. */
struct safe_sc_latency {
	int64_t window_ms, every_ms;
};

/* What the observation layer does beyond its always-on counts. */
struct safe_observe {
	struct safe_sc_latency sc_latency;
};

struct safe_slo {
	int64_t p99_latency_ms; /* 0: not set */
	double error_rate;	/* fraction of calls that may fail; 0: not set */
	double throughput;	/* events per second expected at least; 0: not set */
	double cpu;		/* CPUs it should get at least (batch work); 0: not set */
};

struct safe_target {
	char *name;
	/* Selectors, at least one; a process matches when it matches every one given. */
	char *unit;    /* systemd unit */
	char *cgroup;  /* cgroup v2 path, absolute, under /sys/fs/cgroup or relative to it */
	char *comm;    /* at most SAFE_COMM_MAX bytes */
	char *exe;     /* absolute path of the executable */
	int64_t pid;   /* 0: not set */
	char *restart; /* command that restarts it when there is no unit; NULL: none */
	struct safe_slo slo;
};

/* What a tuning knob changes: which of the keys sysctl, cgroup_file, rlimit, file it has. */
enum safe_knob_kind {
	SAFE_KNOB_SYSCTL,      /* a sysctl; net.* in the target's network namespace by default */
	SAFE_KNOB_CGROUP_FILE, /* a cgroup file of the actuator table (safe_tune_cgroup_files) */
	SAFE_KNOB_RLIMIT,      /* the soft resource limit of the target's processes */
	SAFE_KNOB_FILE,	       /* an application knob: an integer written to a file */
	SAFE_KNOB_KIND_COUNT,
};

enum safe_knob_netns {
	SAFE_NETNS_TARGET, /* the network namespace of the target's processes */
	SAFE_NETNS_HOST,   /* the daemon's (the host's) namespace */
};

/* One knob of a tuning job: a range of integers searched in steps. */
struct safe_tune_knob {
	/* Exactly one of these four is set; kind says which. */
	char *sysctl;	   /* dotted or with slashes, as written */
	char *cgroup_file; /* cpu.weight, ... */
	char *rlimit;	   /* prlimit's name: nofile, ... */
	char *file;	   /* absolute path of an application's setting */
	int netns;	   /* enum safe_knob_netns: net.* sysctls only */
	int64_t field;	   /* sysctl holding several numbers: which one (1-based); 0: the value */
	char *cgroup;	   /* cgroup_file: this cgroup; NULL: the target's own */
	int64_t min, max;  /* min < max */
	char *step;	   /* as written: "2x" or "16" */
	bool restart;	   /* the target must restart for a new value to take effect */
	char *bounded_by;  /* sysctl whose current value caps max at run time; NULL: none */
	/* Derived by the loader. */
	int kind;	  /* enum safe_knob_kind */
	bool step_factor; /* step multiplies ("2x"), else it adds */
	double step_by;	  /* the factor (> 1) or the increment (>= 1) */
	int resource;	  /* rlimit: RLIMIT_* */
};

/* One target whose fitness counts in a job's objective, with its relative weight. */
struct safe_tune_term {
	char *target;
	double weight; /* > 0 */
};

#define SAFE_MAX_TUNE_TERMS 4

/* A search over up to SAFE_MAX_TUNE_KNOBS knobs against the fitness of one target, or the
 * weighted mean of the fitness of several (objective). */
struct safe_tune_job {
	char *name;
	char *target;	    /* a target of the policy: its fitness, processes, cgroup, netns */
	int strategy;	    /* index of safe_tune_strategy_names: enum tune_strategy */
	int64_t max_trials; /* canaries at most */
	bool reapply;	    /* kept values are applied again after a daemon restart */
	char *class;	    /* action class of the policy: the approval rule of its changes */
	struct safe_tune_knob *knobs;
	size_t n_knobs;
	struct safe_tune_term *objective; /* none: the job's target alone */
	size_t n_objective;
};

struct safe_tuning {
	struct safe_tune_job *jobs;
	size_t n_jobs;
};

#define SAFE_MAX_REDIRECTS    16
#define SAFE_MAX_ALTERNATIVES 8
#define SAFE_SYMBOL_MAX	      127 /* ACT_NAME_MAX - 1: function names */

/* One function of a target's processes that homeostat may redirect to an alternative in the
 * same address space (redirect/engine.h, issue 6). */
struct safe_redirect {
	char *name;	     /* names it in history, explain and memory */
	char *target;	     /* a target of the policy: its processes, fitness and restart */
	char *function;	     /* the function's symbol (ELF FUNC); NULL: discovered, the hottest
			      * function of the target's CPU profile with FUNCTION__alt_* ones */
	char *object;	     /* the ELF that holds it: a path or a library's file name; NULL:
			      * the target's executable */
	char *library;	     /* the shared library holding the alternatives (absolute path);
			      * NULL: the function's object */
	char **alternatives; /* tried in this order; none: every FUNCTION__alt_* of the ELF */
	size_t n_alternatives;
	char *class;		  /* action class: the approval rule of each trial */
	double hot_share;	  /* the function's share of the target's CPU samples before it is
				   * tried; 0: whether hot or not */
	int64_t canary_processes; /* processes redirected during a canary (1 of N) */
	bool restart_on_crash;	  /* a process that crashed redirected is restarted (target's
				   * restart command) */
	bool promote;		  /* after KEEP every process of the target gets it, and ... */
	bool new_processes;	  /* ... processes that start later too */
};

struct safe_policy {
	int64_t version;
	int mode; /* enum safe_mode */
	int64_t tick_ms;
	struct safe_budgets budgets;
	struct safe_protected protect;
	struct safe_action_class *classes;
	size_t n_classes;
	struct safe_approvals approvals;
	struct safe_canary canary;
	struct safe_rollback_on rollback_on;
	struct safe_fitness fitness;
	struct safe_observe observe;
	struct safe_target *targets;
	size_t n_targets;
	struct safe_tuning tuning;	 /* no jobs: nothing is tuned */
	struct safe_redirect *redirects; /* none: nothing is redirected */
	size_t n_redirects;
	/* The agent's own files, added by the daemon with safe_policy_protect_path(). */
	char **self_paths;
	size_t n_self_paths;
	char *path; /* the file it was loaded from */
};

/* Loads and validates the policy file at path, which must be owned by owner (the daemon
 * passes 0). Returns 0 and sets *out when no error was found; else -EINVAL (or another
 * -errno) with every error added to errs and *out NULL. */
int safe_policy_load(const char *path, uid_t owner, struct safe_policy **out,
		     struct hs_errors *errs);
/* Same from a buffer (path only names it in messages); for tests and reloads. */
int safe_policy_parse(const char *path, const char *buf, size_t len, struct safe_policy **out,
		      struct hs_errors *errs);
void safe_policy_free(struct safe_policy *p);

/* Adds path (made absolute and without trailing '/') to the agent's own protected files.
 * Returns 0, -EINVAL for an empty path or -ENOMEM. */
int safe_policy_protect_path(struct safe_policy *p, const char *path);
/* Is path, or a directory above it, protected (by the file or as one of the agent's own)? */
bool safe_policy_path_protected(const struct safe_policy *p, const char *path);
/* May sysctl name (dotted or with slashes) be set to value? Denied names never; names with a
 * range only to an integer within it. Returns 0, or -EPERM with *why a static reason. */
int safe_policy_sysctl_allowed(const struct safe_policy *p, const char *name, const char *value,
			       const char **why);

const struct safe_target *safe_policy_target(const struct safe_policy *p, const char *name);
const struct safe_action_class *safe_policy_class(const struct safe_policy *p, const char *name);
const struct safe_tune_job *safe_policy_tune_job(const struct safe_policy *p, const char *name);
const struct safe_redirect *safe_policy_redirect(const struct safe_policy *p, const char *name);

extern const char *const safe_mode_names[];	/* "enforce", "dry_run", "observe" */
extern const char *const safe_approval_names[]; /* "none", "notify", "require" */
/* "hill", "es": the order of enum tune_strategy (tune/search.h). */
extern const char *const safe_tune_strategy_names[];
/* "sysctl", "cgroup_file", "rlimit", "file": the keys, by enum safe_knob_kind. */
extern const char *const safe_knob_kind_names[];
/* "target", "host": enum safe_knob_netns. */
extern const char *const safe_knob_netns_names[];
/* The cgroup files a knob may name: the files of the actuator table (agent/actuate/knobs.c)
 * that take an integer; NULL-terminated. test_knobs checks that the actuator takes each. */
extern const char *const safe_tune_cgroup_files[];
extern const struct sch_struct safe_policy_schema;

#endif
