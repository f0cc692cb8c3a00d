/* faults.h - shared between bpf/faults.bpf.c and agent/observe/faults.c.
 *
 * User page faults per target, in a per-CPU array indexed by target: with RSS (read from
 * /proc) and the mmap/brk counts of the syscalls collector, the memory growth signals.
 */
#ifndef HS_BPF_FAULTS_H
#define HS_BPF_FAULTS_H

struct faults_count {
	__u64 faults;
};

#endif
