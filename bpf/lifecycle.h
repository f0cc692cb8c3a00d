/* lifecycle.h - shared between bpf/lifecycle.bpf.c and agent/observe/lifecycle.c.
 *
 * Process lifecycle counters per target (see targets.h): execs, process exits and fatal
 * signals by signal number. Kept in a per-CPU array indexed by target so that the hot path
 * is a plain increment; the agent sums the CPUs once per tick.
 */
#ifndef HS_BPF_LIFECYCLE_H
#define HS_BPF_LIFECYCLE_H

#define LC_NSIG 64

struct lifecycle_counts {
	__u64 execs;
	__u64 exits;	      /* whole processes: the last thread of a group */
	__u64 forks;	      /* new processes (not threads) */
	__u64 fatal[LC_NSIG]; /* SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE, SIGSYS delivered */
};

#endif
