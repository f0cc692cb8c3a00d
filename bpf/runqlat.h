/* runqlat.h - shared between bpf/runqlat.bpf.c and agent/observe/runqlat.c.
 *
 * Run-queue latency (from wakeup, or from preemption, to running on a CPU) as a log2
 * histogram per target, in a per-CPU array indexed by target.
 */
#ifndef HS_BPF_RUNQLAT_H
#define HS_BPF_RUNQLAT_H

#define RQ_SLOTS 32 /* log2 ns */

struct rq_hist {
	__u64 slots[RQ_SLOTS];
	__u64 sum_ns;
	__u64 count;
};

#endif
