/* allocprof.h - shared between bpf/allocprof.bpf.c and agent/observe/allocprof.c.
 *
 * Outstanding allocations of one process during a window: malloc, calloc and realloc
 * remember {size, user stack} by returned address, free and realloc forget it; the bytes
 * and count still outstanding are kept per user stack. Every map is bounded; what does not
 * fit is counted in struct allocprof_counts.
 */
#ifndef HS_BPF_ALLOCPROF_H
#define HS_BPF_ALLOCPROF_H

#define ALLOCPROF_MAX_DEPTH   127
#define ALLOCPROF_MAX_STACKS  4096  /* distinct allocation stacks */
#define ALLOCPROF_MAX_ALLOCS  65536 /* allocations outstanding at once */
#define ALLOCPROF_MAX_PENDING 4096  /* threads inside malloc at once */

struct allocprof_alloc {
	__u64 size;
	__s32 stack_id; /* negative: bpf_get_stackid() failed */
	__u32 pad;
};

struct allocprof_pending {
	__u64 size;
	__u64 old_ptr; /* realloc: the block it replaces */
};

struct allocprof_outstanding {
	__s64 bytes; /* signed: updates from several CPUs may cross */
	__s64 count;
};

struct allocprof_counts {
	__u64 hits;	      /* probe runs (entries and returns), what the governor counts */
	__u64 allocs;	      /* allocations recorded */
	__u64 frees;	      /* frees of recorded allocations */
	__u64 untracked_free; /* frees of blocks allocated before the window: expected */
	__u64 pending_full;   /* a call not followed: too many threads in malloc */
	__u64 allocs_full;    /* an allocation not recorded: too many outstanding */
	__u64 stacks_full;    /* an allocation recorded without its stack */
};

#endif
