/* internal.h - what the files of agent/remediate/ share: choosing the process a step acts on
 * (subject.c), turning a step into an actuator request (actions.c) and running the captures
 * of a diagnosis (diagnose.c).
 */
#ifndef HS_HEAL_INTERNAL_H
#define HS_HEAL_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "actuate/actuate.h"
#include "lib/util.h"
#include "observe/observe.h"
#include "remediate/runbook.h"
#include "safety/policy.h"

#define HEAL_NOTE_MAX 512

/* snprintf into why (size > 0); returns err. For the sentences of refusals. */
int heal_say(char *why, size_t size, int err, const char *fmt, ...) HS_PRINTF(4, 5);

/* ---- subject.c: which process ---- */

/* The processes of snapshot index idx: members of a policy target (1..n), or every process
 * of the host that is in no policy target (0); never homeostatd itself. *out is malloc'ed. */
int heal_procs(struct obs *obs, int idx, pid_t **out, size_t *n);

struct heal_subject_pick {
	pid_t pid;
	unsigned long long start; /* field 22 of /proc/PID/stat */
	char comm[16];
	double cpu; /* heal_pick_cpu(): fraction of one CPU it used over the interval */
	char why[HEAL_NOTE_MAX]; /* "pid 42 (fdhog) holds 256 of 256 descriptors" */
};

/* CPU time of every process of the host, to pick a CPU hog over an interval. */
struct heal_cpu_snap {
	pid_t *pids;
	uint64_t *ticks; /* utime + stime, clock ticks */
	size_t n;
	uint64_t at_ms;
};

int heal_cpu_snap_take(struct heal_cpu_snap *s, uint64_t now_ms);
void heal_cpu_snap_free(struct heal_cpu_snap *s);

/* The process of procs with the most descriptors open relative to its soft RLIMIT_NOFILE. */
int heal_pick_fd(const pid_t *procs, size_t n, struct heal_subject_pick *out);
/* The process of procs with the largest resident set. */
int heal_pick_rss(const pid_t *procs, size_t n, struct heal_subject_pick *out);
/* The process using the most CPU between before and now: among procs when inside, else
 * outside them (every process of the host but procs, homeostatd and the policy's protected
 * processes). -ENOENT when none used any. */
int heal_pick_cpu(const struct heal_cpu_snap *before, const pid_t *procs, size_t n, bool inside,
		  const struct safe_policy *policy, uint64_t now_ms, struct heal_subject_pick *out);
/* The CPU a process used over the last interval_ms, as a fraction of one CPU, by sampling
 * its /proc stat between calls: *last keeps the previous reading. -ESRCH when gone. */
int heal_proc_cpu(pid_t pid, unsigned long long start, uint64_t now_ms, uint64_t *last_ticks,
		  uint64_t *last_ms, double *frac);
/* Start time of pid, 0 when gone. */
unsigned long long heal_proc_start(pid_t pid);
/* comm of pid into buf ("" when gone). */
void heal_proc_comm(pid_t pid, char *buf, size_t size);

/* ---- actions.c: step -> request ---- */

/* Fills req for step s on subject (may be NULL for actions without a process) of target
 * (the policy's, NULL for "other"). Returns 0, or -errno with why (e.g. "no restart command
 * for target 'web'", "soft limit already at the hard limit 4096"). */
int heal_step_request(const struct heal_step *s, const struct heal_subject_pick *subject,
		      const struct safe_target *target, struct act_request *req, char *why,
		      size_t whysize);

/* ---- diagnose.c: captures ---- */

struct heal_capture_run;

struct heal_capture_ctx {
	const struct heal_capture *c;
	pid_t subject;	    /* 0: none */
	const pid_t *procs; /* the target's processes (CPU profile) */
	size_t nprocs;
	const char *target;
	const struct heal_series *series; /* crash_report */
	const uint64_t *fatal_by_sig;	  /* crash_report: per signal over the window */
	uint64_t window_ms;
};

/* Starts a capture. Returns 0, or -errno with why (then nothing runs). */
int heal_capture_start(const struct heal_capture_ctx *ctx, uint64_t now_ms,
		       struct heal_capture_run **out, char *why, size_t whysize);
/* crash_report: the target's processes now, primed so that they can be symbolized after they
 * died; the engine calls it every tick of the capture. */
void heal_capture_members(struct heal_capture_run *r, const pid_t *pids, size_t n);
/* 1 while it runs, 0 when its text is ready (heal_capture_result), -errno when it failed. */
int heal_capture_poll(struct heal_capture_run *r, uint64_t now_ms);
/* The capture's text (malloc'ed, NUL-terminated) and one-line summary. */
int heal_capture_result(struct heal_capture_run *r, char **text, size_t *len, char *summary,
			size_t sumsize);
void heal_capture_free(struct heal_capture_run *r);

#endif
