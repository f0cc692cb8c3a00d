/* funclat.h - function latency: a log2 histogram of one user function of one process.
 *
 * On demand only (a uprobe and a uretprobe cost microseconds a call): obs_funclat_start()
 * attaches to the function by name in the target's binary or a library it maps,
 * obs_funclat_poll() (every tick) applies the overhead budget, obs_funclat_collect() ends the
 * window and returns the histogram with p50, p90 and p99. Nothing here sleeps.
 */
#ifndef HS_OBS_FUNCLAT_H
#define HS_OBS_FUNCLAT_H

#include <stdint.h>

#include "observe/profile.h"

struct obs_funclat;

struct obs_funclat_opts {
	int pid;		 /* the target process */
	const char *binary;	 /* ELF holding func; NULL: the process's executable */
	const char *func;	 /* symbol name */
	double budget_pct;	 /* 0: OBS_PROBE_BUDGET_PCT of one CPU */
	unsigned cost_ns;	 /* 0: OBS_PROBE_COST_NS a probe hit */
	uint64_t max_hits_per_s; /* not 0: overrides the two above */
};

/* Returns 0, -ESRCH (no such process), -ENOENT (no such function) or -errno. */
int obs_funclat_start(const struct obs_funclat_opts *opts, struct obs_funclat **out);
/* Returns 1 while capturing, 0 once stopped (by the budget, or after collect), or -errno. */
int obs_funclat_poll(struct obs_funclat *fl, uint64_t now_ms);
/* Ends the window (detaches) and fills out (initialized here; obs_profile_reset() it). */
int obs_funclat_collect(struct obs_funclat *fl, struct obs_profile *out);
void obs_funclat_stop(struct obs_funclat *fl);

#endif
