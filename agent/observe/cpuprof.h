/* cpuprof.h - CPU profiles: perf_event CPU-clock sampling with user and kernel stacks.
 *
 * Two uses of one sampler. On demand: obs_cpuprof_start() with the target's tgids, then
 * obs_cpuprof_collect() when the window ends (it never sleeps), obs_cpuprof_stop(). Always
 * on: the "cpuprof" collector samples every process at 49 Hz; obs_cpuprof_tick() drains the
 * kernel maps once a window (10 s) keeping only the leaf address of each stack, so that
 * obs_cpuprof_recent() can name the top functions of a tgid over the last minute without
 * symbolizing anything until it is asked.
 *
 * Invariants: an instance is used one way, collect or tick, not both (each drains the maps).
 * Samples that the bounded maps could not hold are counted and reported as drops.
 */
#ifndef HS_OBS_CPUPROF_H
#define HS_OBS_CPUPROF_H

#include <stdint.h>

#include "observe/profile.h"

#define OBS_CPUPROF_DEFAULT_HZ 49

struct obs_cpuprof;
struct obs_symbolizer;

struct obs_cpuprof_opts {
	unsigned hz;	       /* samples a second on each CPU; 0 = 49 */
	const uint32_t *tgids; /* only these processes; NULL or ntgids 0: every process */
	unsigned ntgids;       /* at most 1024 */
	unsigned window_s;     /* always-on: seconds a window; 0 = 10 */
	unsigned windows;      /* always-on: windows kept; 0 = 6 */
	/* collect keeps the process maps the symbolizer holds (the caller primed them with
	 * obs_sym_prime() while the processes lived, and knows their pids are not reused) */
	bool keep_procs;
};

/* Opens, loads and attaches one perf event a CPU. Returns 0, -EOPNOTSUPP or -errno. */
int obs_cpuprof_start(const struct obs_cpuprof_opts *opts, struct obs_cpuprof **out);
/*
 * Moves every sample since the start (or the previous collect) into out (initialized here,
 * obs_profile_reset() it when done): symbolized stacks with counts, totals and drops.
 */
int obs_cpuprof_collect(struct obs_cpuprof *cp, struct obs_symbolizer *sym,
			struct obs_profile *out);
void obs_cpuprof_stop(struct obs_cpuprof *cp);

/* Always-on: closes the current window when window_s has passed. Cheap; call every tick. */
int obs_cpuprof_tick(struct obs_cpuprof *cp, uint64_t now_ms);
/*
 * The samples of tgid (0: all) in the windows closed during the last seconds, as a profile of
 * one-frame (leaf) stacks: obs_profile_top(out, tgid, &rows) then gives the top functions.
 * out is initialized here; obs_profile_reset() it when done. Returns 0 or -errno.
 */
int obs_cpuprof_recent(struct obs_cpuprof *cp, struct obs_symbolizer *sym, uint32_t tgid,
		       unsigned seconds, uint64_t now_ms, struct obs_profile *out);

/* The always-on sampler of the "cpuprof" collector, or NULL when it is not running. */
struct obs_cpuprof *obs_cpuprof_host(void);

struct obs;
struct obs_collector_ops;
extern const struct obs_collector_ops obs_cpuprof_ops;

#endif
