/* funclat.h - shared between bpf/funclat.bpf.c and agent/observe/funclat.c.
 *
 * The latency of one user function of one process: a log2 histogram in nanoseconds, kept
 * per CPU, with the probe hits the overhead governor counts and the calls not measured.
 */
#ifndef HS_BPF_FUNCLAT_H
#define HS_BPF_FUNCLAT_H

#define FUNCLAT_SLOTS	    64
#define FUNCLAT_MAX_THREADS 10240 /* threads inside the function at once */

struct funclat_hist {
	__u64 slots[FUNCLAT_SLOTS]; /* slots[i]: [2^i, 2^(i+1)) ns; slots[0] also 0 ns */
	__u64 count;
	__u64 sum_ns;
	__u64 hits;	  /* probe runs, entries and returns */
	__u64 start_full; /* entries not recorded: too many threads inside */
	__u64 unmatched;  /* returns without their entry (entered before the window, recursion) */
};

#endif
