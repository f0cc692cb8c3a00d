/* targets.h - which processes belong to which target, on both sides of the kernel boundary.
 *
 * The policy's targets get indexes 1..n (0 is the rest of the host). Targets chosen by comm
 * alone or by a cgroup v2 path alone are matched in the kernel, at a task's first event; all
 * others (exe, pid, cgroup v1, unit, several selectors at once) are matched here by a scan
 * of /proc, every OBS_SCAN_PERIOD_MS, whose results go to hs_proc_target. The first target
 * in policy order that matches wins. Members are read back from hs_proc_target each tick.
 */
#ifndef HS_OBS_TARGETS_H
#define HS_OBS_TARGETS_H

#include <stdbool.h>
#include <linux/types.h>
#include <stdint.h>
#include <sys/types.h>

#include "hs_targets.h"

#define OBS_SCAN_PERIOD_MS  2000
#define OBS_TARGET_NAME_MAX 64

struct safe_policy;

struct obs_target_def {
	char name[OBS_TARGET_NAME_MAX];
	char *comm, *exe, *cgroup, *unit;
	pid_t pid;
	bool in_kernel;	    /* comm alone or cgroup v2 alone: the kernel matches it */
	uint64_t cgroup_id; /* for a cgroup v2 path */
};

struct obs_members {
	pid_t *pids;
	size_t n, cap;
};

struct obs_targets {
	int n; /* targets defined; index i + 1 in the kernel */
	struct obs_target_def def[HS_MAX_TARGETS];
	struct obs_members members[HS_NTARGETS];
	bool need_scan; /* some target needs the /proc scan */
	uint32_t gen;
	int fd_proc, fd_comm, fd_cgrp, fd_cfg;
	uint64_t last_scan_ms;
	uint64_t scan_us;			/* how long the last scan took */
	uint64_t scan_full, scan_full_reported; /* tgids the scan could not add: map full */
};

/* Takes the shared maps' fds (borrowed, not closed). */
void obs_targets_init(struct obs_targets *t, int fd_proc, int fd_comm, int fd_cgrp, int fd_cfg);
/* Replaces the definitions with the policy's (NULL: none), fills the kernel's maps, and
 * bumps the generation so that every task is classified again. Targets past HS_MAX_TARGETS
 * are refused by the policy loader already. */
int obs_targets_configure(struct obs_targets *t, const struct safe_policy *p);
/* Periodic work: the /proc scan when due, then members from hs_proc_target. */
int obs_targets_refresh(struct obs_targets *t, uint64_t now_ms);
void obs_targets_free(struct obs_targets *t);
/* The index (1..n) of a target by name, or -ENOENT. */
int obs_targets_index(const struct obs_targets *t, const char *name);
const char *obs_targets_name(const struct obs_targets *t, int index);

#endif
