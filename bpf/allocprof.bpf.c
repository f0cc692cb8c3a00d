// SPDX-License-Identifier: GPL-2.0
/* allocprof.bpf.c - malloc/calloc/realloc/free uprobes: outstanding bytes by user stack.
 *
 * Attached on demand, for a bounded window, to the libc of one process (the uprobes carry
 * its pid; target_tgid checks it again). Entry probes remember the size per thread; the
 * return probe records the block with the user stack of the caller: at the return, the
 * instruction pointer is back in the caller, so the stack's first frame is the function that
 * allocated even when libc has no frame pointers.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "allocprof.h"

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 target_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, ALLOCPROF_MAX_STACKS);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, ALLOCPROF_MAX_DEPTH * sizeof(__u64));
} allocprof_stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ALLOCPROF_MAX_PENDING);
	__type(key, __u32);
	__type(value, struct allocprof_pending);
} allocprof_pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ALLOCPROF_MAX_ALLOCS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct allocprof_alloc);
} allocprof_allocs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ALLOCPROF_MAX_STACKS + 1);
	__type(key, __s32);
	__type(value, struct allocprof_outstanding);
} allocprof_by_stack SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct allocprof_counts);
} allocprof_counts SEC(".maps");

/* The counters of this CPU, NULL when the caller is not the target. */
static __always_inline struct allocprof_counts *hit(void)
{
	__u32 zero = 0;
	struct allocprof_counts *c;

	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return NULL;
	c = bpf_map_lookup_elem(&allocprof_counts, &zero);
	if (c)
		c->hits++;
	return c;
}

static __always_inline void account(__s32 stack_id, __s64 bytes, __s64 count)
{
	struct allocprof_outstanding *o, zero = {};

	o = bpf_map_lookup_elem(&allocprof_by_stack, &stack_id);
	if (!o) {
		bpf_map_update_elem(&allocprof_by_stack, &stack_id, &zero, BPF_NOEXIST);
		o = bpf_map_lookup_elem(&allocprof_by_stack, &stack_id);
		if (!o)
			return;
	}
	__sync_fetch_and_add(&o->bytes, bytes);
	__sync_fetch_and_add(&o->count, count);
}

static __always_inline void release(struct allocprof_counts *c, __u64 ptr)
{
	struct allocprof_alloc *a = bpf_map_lookup_elem(&allocprof_allocs, &ptr);
	struct allocprof_alloc copy;

	if (!a) {
		c->untracked_free++;
		return;
	}
	copy = *a;
	if (bpf_map_delete_elem(&allocprof_allocs, &ptr))
		return; /* another thread freed it first */
	account(copy.stack_id, -(__s64)copy.size, -1);
	c->frees++;
}

static __always_inline int enter(__u64 size, __u64 old_ptr)
{
	struct allocprof_counts *c = hit();
	struct allocprof_pending p = {.size = size, .old_ptr = old_ptr};
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	if (c && bpf_map_update_elem(&allocprof_pending, &tid, &p, BPF_ANY))
		c->pending_full++;
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(ap_malloc, __u64 size)
{
	return enter(size, 0);
}

SEC("uprobe")
int BPF_KPROBE(ap_calloc, __u64 nmemb, __u64 size)
{
	return enter(nmemb * size, 0);
}

SEC("uprobe")
int BPF_KPROBE(ap_realloc, __u64 ptr, __u64 size)
{
	return enter(size, ptr);
}

SEC("uretprobe")
int BPF_KRETPROBE(ap_alloc_ret, __u64 ret)
{
	struct allocprof_counts *c = hit();
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct allocprof_pending *pp, p;
	struct allocprof_alloc a = {};

	if (!c)
		return 0;
	pp = bpf_map_lookup_elem(&allocprof_pending, &tid);
	if (!pp)
		return 0;
	p = *pp;
	bpf_map_delete_elem(&allocprof_pending, &tid);
	/* realloc moved or freed the old block, unless it failed (NULL for a non-zero size). */
	if (p.old_ptr && (ret || !p.size))
		release(c, p.old_ptr);
	if (!ret)
		return 0;
	/* The address may still be recorded when its free was missed: forget the old block. */
	if (bpf_map_lookup_elem(&allocprof_allocs, &ret))
		release(c, ret);
	a.size = p.size;
	a.stack_id = bpf_get_stackid(ctx, &allocprof_stacks, BPF_F_USER_STACK);
	if (a.stack_id < 0) {
		c->stacks_full++;
		a.stack_id = -1;
	}
	if (bpf_map_update_elem(&allocprof_allocs, &ret, &a, BPF_NOEXIST)) {
		c->allocs_full++;
		return 0;
	}
	account(a.stack_id, (__s64)a.size, 1);
	c->allocs++;
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(ap_free, __u64 ptr)
{
	struct allocprof_counts *c = hit();

	if (c && ptr)
		release(c, ptr);
	return 0;
}
