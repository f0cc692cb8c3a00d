/* knobs.h - the registry of tunable knobs: what each tuning job of the policy may change.
 *
 * Why: the search (search.h) sees numbers in a box; the host has sysctls (per network
 * namespace for net.*), cgroup files, resource limits and application settings, each with its
 * own place, syntax and limits. This is the one translation between the two: a knob of the
 * policy's `tuning:` section becomes a struct tune_knob, which gives the search its dimension
 * (tune_knob_dim), reads where the search starts (tune_knob_read), narrows its range by what
 * the host allows now (tune_knob_effective_max), and turns a value into the typed actuator
 * request that changes it (tune_knob_request). Nothing here changes the host: requests go
 * through the safety gate and agent/actuate/.
 *
 * Invariants: the registry is built only from a policy that loaded (every knob valid: one
 * kind, min < max, a valid step, allowed by the protected section), so a struct tune_knob
 * always holds min < max, step >= 1 (an increment) or 1 < step <= 16 with min >= 1 (a
 * factor). It is flat (no pointers), like struct act_request, so that it can be copied into
 * the memory's records as it is. Values are integers; unlimited (rlimit "unlimited", a
 * cgroup's "max") reads as INFINITY.
 *
 * Places: a sysctl net.* knob with netns: target is set in the network namespace of the
 * target's process (act_sysctl.netns_pid); other sysctls host-wide. A cgroup_file knob acts on
 * its own `cgroup:` or else on the target's cgroup directory the caller passes. An rlimit
 * knob sets the soft limit of one process of the target (the caller loops over them). A file
 * knob names an application's file: no actuator writes those yet (agent/actuate/ has no file
 * kind), so its requests are -EOPNOTSUPP; it can be read.
 *
 * Library code: no logging; every failure returns -errno with a sentence in why.
 */
#ifndef HS_TUNE_KNOBS_H
#define HS_TUNE_KNOBS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "actuate/actuate.h"
#include "safety/policy.h"
#include "tune/search.h"

#define TUNE_MAX_JOBS  SAFE_MAX_TUNE_JOBS
#define TUNE_MAX_KNOBS SAFE_MAX_TUNE_KNOBS /* == TUNE_MAX_DIMS (knobs.c asserts it) */

struct tune_knob {
	int kind;	   /* enum safe_knob_kind */
	enum act_kind act; /* ACT_KIND_SYSCTL, _CGROUP or _RLIMIT; ACT_KIND_COUNT for a file */
	char name[ACT_NAME_MAX]; /* sysctl (dotted), cgroup file or rlimit ("nofile"); "": file */
	int field;		 /* sysctl of several numbers: which one (1-based); 0: the value */
	bool netns_target;	 /* net.* sysctl set in the target's network namespace */
	char cgroup[ACT_PATH_MAX];     /* cgroup_file: absolute directory; "": the target's */
	int resource;		       /* rlimit: RLIMIT_* */
	char file[ACT_PATH_MAX];       /* file: absolute path */
	int64_t min, max;	       /* max as the policy says; see tune_knob_effective_max() */
	bool step_factor;	       /* step multiplies (log scale), else it adds */
	double step;		       /* the factor (2 for "2x") or the increment */
	bool restart;		       /* the target must restart for a new value to take effect */
	char bounded_by[ACT_NAME_MAX]; /* sysctl (dotted) capping max; "": none */
};

#define TUNE_MAX_TERMS SAFE_MAX_TUNE_TERMS

/* A target whose fitness counts in the job's objective. */
struct tune_term {
	char target[SAFE_NAME_MAX + 1];
	double weight; /* relative, > 0 */
};

struct tune_job {
	char name[SAFE_NAME_MAX + 1];
	char target[SAFE_NAME_MAX + 1]; /* a target of the policy */
	char class[SAFE_NAME_MAX + 1];	/* an action class of the policy */
	enum tune_strategy strategy;
	unsigned max_trials; /* 1..TUNE_MAX_TRIALS */
	bool reapply;
	size_t n_knobs; /* 1..TUNE_MAX_KNOBS */
	struct tune_knob knobs[TUNE_MAX_KNOBS];
	/* the objective: the weighted mean of these targets' fitness (policy objective, else
	 * the job's target alone) */
	size_t n_terms; /* 1..TUNE_MAX_TERMS */
	struct tune_term terms[TUNE_MAX_TERMS];
};

struct tune_registry {
	size_t n_jobs;
	struct tune_job *jobs;
};

/* Builds the registry of the policy's tuning jobs (none: an empty registry). The policy's
 * own checks ran at load; this one adds the agent's own files, which the daemon protects
 * after loading (safe_policy_protect_path()): a file or cgroup knob on one of them is
 * -EPERM with why. 0, -EPERM, -EINVAL (a policy that did not load) or -ENOMEM. */
int tune_registry_build(const struct safe_policy *p, struct tune_registry **out, char *why,
			size_t n);
void tune_registry_free(struct tune_registry *r);
const struct tune_job *tune_registry_job(const struct tune_registry *r, const char *name);

/* The registry's knob of one knob of the policy (what tune_registry_build() does for each).
 * 0 or -EINVAL with why. */
int tune_knob_from_policy(const struct safe_tune_knob *sk, struct tune_knob *k, char *why,
			  size_t n);

/* "sysctl net.core.somaxconn (target netns)", "cgroup cpu.weight of /sys/fs/cgroup/batch",
 * "cgroup cpu.weight (target cgroup)", "rlimit nofile (soft)", "file /etc/myapp/workers",
 * "sysctl net.ipv4.tcp_rmem[3]": for logs, history and the memory's knob column. 0 or
 * -ENAMETOOLONG. */
int tune_knob_describe(const struct tune_knob *k, char *buf, size_t size);

/* The integer value for a point of the search: rounded half away from zero and clamped to
 * [k->min, max] (max: the effective max, or k->max). */
int64_t tune_knob_round(const struct tune_knob *k, double value, int64_t max);

/* The typed actuator request that sets k to value (rounded half away from zero; outside
 * [min, max] or not finite is -ERANGE):
 * a sysctl with netns_pid = target_pid when k->netns_target (a field of several numbers is
 * put into the value the sysctl holds now, read in the same place); a cgroup file in k->cgroup
 * or else target_cgroup_dir (absolute under /sys/fs/cgroup or relative to it); the soft
 * rlimit of target_pid, hard limit unchanged. The request passes act_validate().
 * 0, -ERANGE (value), -ESRCH (no target process where one is needed), -ENOENT (no cgroup
 * for a knob of the target's cgroup), -EOPNOTSUPP (a file knob: no actuator writes files),
 * -EINVAL (act_validate refused it; why is its reason) or what reading the sysctl said. */
int tune_knob_request(const struct tune_knob *k, double value, pid_t target_pid,
		      const char *target_cgroup_dir, struct act_request *req, char *why, size_t n);

/* The current value of k in the place tune_knob_request() would change, through act_read()
 * (a file knob: the first integer of its file): the search's start point. "unlimited" and
 * "max" are INFINITY; a cpu.max "quota period" is its quota. 0, or -errno with why (-ENOENT
 * no such sysctl or file, -ESRCH, -EPROTO a value that is not a number). */
int tune_knob_read(const struct tune_knob *k, pid_t target_pid, const char *target_cgroup_dir,
		   double *value, char *why, size_t n);

/* k->max narrowed by what the host allows now: the current value of bounded_by (the last
 * number when it holds several; read in the target's namespace when both are net.* and
 * k->netns_target), and for an rlimit the hard limit of target_pid (when > 0). 0 with *max
 * in (k->min, k->max]; -ERANGE with why when the bound leaves nothing above k->min to
 * search; or the error of the read. */
int tune_knob_effective_max(const struct tune_knob *k, pid_t target_pid, int64_t *max, char *why,
			    size_t n);

/* The search dimension of k over [k->min, max] (max: the effective max, or k->max):
 * integer; log_scale with step log2(factor) for a factor step, else linear with the
 * increment; min_step an eighth of the step (three halvings), at least 1 when linear.
 * 0, or -ERANGE when max <= k->min. */
int tune_knob_dim(const struct tune_knob *k, int64_t max, struct tune_dim *d);

#endif
