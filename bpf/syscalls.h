/* syscalls.h - shared between bpf/syscalls.bpf.c and agent/observe/syscalls.c.
 *
 * Per target x syscall: exact counts, in hs_cpu (hs_targets.h: one increment on the hot path,
 * on the page the program reads its target from) and exact failures (sc_failed, a per-CPU
 * array touched only when a syscall fails); per target x syscall x errno: failures (a hash,
 * also only on failure); per target x syscall: a log2 latency histogram of 1 in
 * (sample_mask + 1) syscalls during latency windows, chosen per CPU at entry, so that only
 * timed syscalls read the clock.
 */
#ifndef HS_BPF_SYSCALLS_H
#define HS_BPF_SYSCALLS_H

#include "hs_targets.h"

#define SC_NR_MAX      HS_SC_NR /* syscall numbers counted; above is counted as out of range */
#define SC_SLOTS       32	/* log2 ns: slot k holds latencies in [2^k, 2^(k+1)) ns */
#define SC_ERRNO_MAX   4096
#define SC_ERR_ENTRIES 4096
#define SC_LAT_ENTRIES 4096

struct sc_err_key {
	__u32 target;
	__u32 nr;
	__u32 err; /* positive errno */
	__u32 pad;
};

struct sc_lat_key {
	__u32 target;
	__u32 nr;
};

struct sc_hist {
	__u64 slots[SC_SLOTS];
	__u64 sum_ns;
	__u64 count;
};

/* Overflow and loss, counted and reported, never silent. */
struct sc_stats {
	__u64 err_map_full; /* an errno count could not be created */
	__u64 lat_map_full; /* a latency histogram could not be created */
	__u64 nr_out_of_range;
};

#endif
