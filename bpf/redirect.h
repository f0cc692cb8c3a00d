/* redirect.h - shared between bpf/redirect.bpf.c and agent/redirect/uprobe.c.
 *
 * Mechanism a of the redirect (issue 6): a uprobe at a function's entry sets ctx->ip to an
 * alternative, for a fraction of the calls. The fraction is in 1/65536 (REDIRECT_FRACTION_ONE
 * is every call); a call goes to the alternative when a 16-bit draw is below it. The draw is
 * bpf_get_prandom_u32() per call, or, when sticky, a hash of the thread id, so that a thread
 * keeps its choice and raising the fraction only adds threads. The hash lives here so that
 * the agent and its unit test compute exactly what the kernel side decides.
 *
 * Not exercised on the development hosts: their kernel refuses the write to ctx->ip.
 */
#ifndef HS_BPF_REDIRECT_H
#define HS_BPF_REDIRECT_H

#define REDIRECT_FRACTION_ONE 65536u /* fraction: every call */
#define REDIRECT_MAX_TARGETS  16     /* attach cookies 0..15 */

#define REDIRECT_STICKY 0x1u /* choose per thread, not per call */

/* Value of redirect_targets, keyed by the link's attach cookie (__u64). */
struct redirect_target {
	__u64 alt_addr; /* virtual address of the alternative in the target process */
	__u32 tgid;	/* the only process whose calls are redirected */
	__u32 fraction; /* 0..REDIRECT_FRACTION_ONE */
	__u32 seed;	/* mixes into the thread hash: another function, other threads */
	__u32 flags;	/* REDIRECT_STICKY */
};

/* Per-CPU decision counters, indexed by attach cookie. */
struct redirect_counts {
	__u64 redirected; /* calls sent to the alternative */
	__u64 passed;	  /* calls left to the original */
	__u64 missing;	  /* hits without an entry (rolled back) or from another process */
};

/* The thread's draw in 0..65535: murmur3's 32-bit finaliser of tid ^ seed, top 16 bits. */
static inline __u32 redirect_thread_draw(__u32 tid, __u32 seed)
{
	__u32 h = tid ^ seed;

	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h >> 16;
}

/* Whether a call whose draw (0..65535) is `draw` goes to the alternative. */
static inline int redirect_chosen(__u32 draw, __u32 fraction)
{
	return draw < fraction;
}

#endif
