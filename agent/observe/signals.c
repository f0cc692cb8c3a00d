/* signals.c - the signal table of signals.h.
 *
 * Invariant: names are unique, lowercase [a-z0-9_]; every entry allows at least one
 * aggregation. Runbooks refer to these names, so a rename is a configuration change.
 */
#include <stddef.h>
#include <string.h>

#include "observe/signals.h"

const char *const obs_agg_names[] = {
    [OBS_AGG_RATE] = "rate", [OBS_AGG_DELTA] = "delta", [OBS_AGG_P50] = "p50",
    [OBS_AGG_P90] = "p90",   [OBS_AGG_P99] = "p99",	[OBS_AGG_MAX] = "max",
    [OBS_AGG_AVG] = "avg",   [OBS_AGG_SLOPE] = "slope", [OBS_AGG_COUNT_] = NULL,
};

static const struct obs_signal_desc signals[] = {
    {"syscall_rate", OBS_UNIT_EVENTS, "events", OBS_AGGS_COUNTER, OBS_SEL_SYSCALL,
     "sys_enter tracepoint, per target and syscall",
     "load and busy loops: a process spinning on a failing call shows here first"},
    {"syscall_errors", OBS_UNIT_EVENTS, "events", OBS_AGGS_COUNTER, OBS_SEL_ERRNO | OBS_SEL_SYSCALL,
     "sys_exit tracepoint, negative return by errno",
     "resource exhaustion and misconfiguration: EMFILE, ENOMEM, EAGAIN, ECONNREFUSED"},
    {"syscall_latency", OBS_UNIT_TIME, "ms", OBS_AGGS_HISTOGRAM, OBS_SEL_SYSCALL,
     "sys_enter/sys_exit, log2 histogram per target and syscall",
     "slow storage, lock contention in the kernel, blocked I/O"},
    {"runq_latency", OBS_UNIT_TIME, "ms", OBS_AGGS_HISTOGRAM, 0,
     "sched_wakeup/sched_switch, log2 histogram per target",
     "CPU starvation: runnable but not running, noisy neighbours, too low a weight"},
    {"rss", OBS_UNIT_BYTES, "bytes", OBS_AGGS_GAUGE, 0,
     "rss_stat tracepoint, summed over the target's processes",
     "memory leaks (slope) and memory pressure ahead of the OOM killer"},
    {"cpu_usage", OBS_UNIT_RATIO, "ratio", OBS_AGGS_GAUGE, 0,
     "utime + stime of the target's processes (/proc/PID/stat) each tick, as a fraction of one CPU",
     "runaway loops and saturation; the cost term of fitness"},
    {"fd_usage", OBS_UNIT_RATIO, "ratio", OBS_AGGS_GAUGE, 0,
     "open descriptors over the soft RLIMIT_NOFILE, per process (highest)",
     "descriptor leaks before they turn into EMFILE"},
    {"listen_overflows", OBS_UNIT_EVENTS, "events", OBS_AGGS_COUNTER, 0,
     "TcpExt ListenOverflows of the network namespaces of the target's processes",
     "a full accept queue: SYNs dropped, clients wait a second or more to connect"},
    {"page_faults", OBS_UNIT_EVENTS, "events", OBS_AGGS_COUNTER, 0,
     "page fault tracepoints, per target", "thrashing and working sets above memory.high"},
    {"fatal_signals", OBS_UNIT_EVENTS, "events", OBS_AGGS_COUNTER, 0,
     "signal_generate for SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE, SIGKILL",
     "crashes and OOM kills"},
    {"exits", OBS_UNIT_EVENTS, "events", OBS_AGGS_COUNTER, 0, "sched_process_exit",
     "processes of the target going away"},
    {"restarts", OBS_UNIT_EVENTS, "events", OBS_AGGS_COUNTER, 0,
     "sched_process_exec of a target process after an exit of one",
     "crash loops: a supervisor restarting a failing service"},
};

const struct obs_signal_desc *obs_signal_lookup(const char *name)
{
	for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
		if (strcmp(signals[i].name, name) == 0)
			return &signals[i];
	return NULL;
}

const struct obs_signal_desc *obs_signals(unsigned *n)
{
	*n = sizeof(signals) / sizeof(signals[0]);
	return signals;
}
