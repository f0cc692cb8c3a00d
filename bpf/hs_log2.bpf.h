/* hs_log2.bpf.h - the log2 slot of a value, for every histogram the collectors keep.
 *
 * Slot k holds values in [2^k, 2^(k+1)) (slot 0 also holds 0), capped at slots - 1; the
 * agent's agent/observe/hist.c reads the slots with the same convention. Branch-free, so
 * that its cost does not depend on the value.
 */
#ifndef HS_LOG2_BPF_H
#define HS_LOG2_BPF_H

static __always_inline __u32 hs_log2_slot(__u64 v, __u32 slots)
{
	__u32 r, shift;

	shift = (v > 0xffffffffull) << 5;
	v >>= shift;
	r = shift;
	shift = (v > 0xffff) << 4;
	v >>= shift;
	r |= shift;
	shift = (v > 0xff) << 3;
	v >>= shift;
	r |= shift;
	shift = (v > 0xf) << 2;
	v >>= shift;
	r |= shift;
	shift = (v > 0x3) << 1;
	v >>= shift;
	r |= shift;
	r |= (v >> 1);
	return r < slots ? r : slots - 1;
}

#endif
