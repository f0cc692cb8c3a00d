/* allocprof.h - allocation profiles: outstanding bytes by user stack over a bounded window.
 *
 * On demand only: uprobes on the target's libc malloc, calloc, realloc and free cost
 * microseconds a call, so a capture is short and governed. obs_allocprof_start() attaches,
 * obs_allocprof_poll() (call it every tick) stops the probes early when their hits exceed the
 * overhead budget, obs_allocprof_collect() ends the window and returns the allocations still
 * outstanding, by stack, symbolized. Nothing here sleeps.
 */
#ifndef HS_OBS_ALLOCPROF_H
#define HS_OBS_ALLOCPROF_H

#include <stdint.h>

#include "observe/profile.h"

struct obs_allocprof;
struct obs_symbolizer;

struct obs_allocprof_opts {
	int pid;		 /* the target process */
	double budget_pct;	 /* 0: OBS_PROBE_BUDGET_PCT of one CPU */
	unsigned cost_ns;	 /* 0: OBS_PROBE_COST_NS a probe hit */
	uint64_t max_hits_per_s; /* not 0: overrides the two above */
};

/*
 * Finds the libc that pid maps and attaches the probes there, for pid only. Returns 0,
 * -ESRCH (no such process), -ENOENT (it maps no libc: static binary) or -errno.
 */
int obs_allocprof_start(const struct obs_allocprof_opts *opts, struct obs_allocprof **out);
/* Returns 1 while capturing, 0 once stopped (by the budget, or after collect), or -errno. */
int obs_allocprof_poll(struct obs_allocprof *ap, uint64_t now_ms);
/* Ends the window (detaches) and fills out (initialized here; obs_profile_reset() it). */
int obs_allocprof_collect(struct obs_allocprof *ap, struct obs_symbolizer *sym,
			  struct obs_profile *out);
void obs_allocprof_stop(struct obs_allocprof *ap);

/* The libc mapped by pid, as a path usable from here (through /proc/PID/root). */
int obs_find_libc(int pid, char *path, size_t len);

#endif
