/* cpuprof.h - shared between bpf/cpuprof.bpf.c and agent/observe/cpuprof.c.
 *
 * CPU-clock samples counted by {tgid, user stack id, kernel stack id}. A negative stack id is
 * the error bpf_get_stackid() gave (-EFAULT: no user stack, a kernel thread; -ENOMEM or
 * -EEXIST: the stack map is full or the bucket taken, counted in stack_full). Both maps are
 * bounded; whatever they cannot hold is counted in cpuprof_drops, never silently lost.
 */
#ifndef HS_BPF_CPUPROF_H
#define HS_BPF_CPUPROF_H

#define CPUPROF_MAX_DEPTH  127	 /* frames a stack, the kernel's PERF_MAX_STACK_DEPTH */
#define CPUPROF_MAX_STACKS 16384 /* distinct stacks (user and kernel) */
#define CPUPROF_MAX_COUNTS 16384 /* distinct {tgid, stacks} keys between two drains */
#define CPUPROF_MAX_FILTER 1024	 /* tgids of an on-demand capture */

struct cpuprof_key {
	__u32 tgid;
	__s32 user_stack;
	__s32 kernel_stack;
	__u32 pad;
};

struct cpuprof_drops {
	__u64 samples;	   /* samples of the processes sampled (after the filter) */
	__u64 stack_full;  /* a stack could not be stored: the sample is kept without it */
	__u64 counts_full; /* the counts map was full: the sample is lost */
};

#endif
