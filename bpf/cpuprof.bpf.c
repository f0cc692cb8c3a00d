// SPDX-License-Identifier: GPL-2.0
/* cpuprof.bpf.c - CPU-clock sampling with user and kernel stacks.
 *
 * Attached by the agent to one software CPU-clock perf event per online CPU (no hardware
 * counters needed). Each sample stores its stacks in a stack-trace map and increments a count
 * keyed {tgid, user stack, kernel stack}; the agent drains and clears both maps. The idle task
 * (tgid 0) is not sampled. With filter_tgids set, only the tgids in cpuprof_filter are.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "cpuprof.h"

char LICENSE[] SEC("license") = "GPL";

#define EFAULT 14
#define ENOMEM 12
#define EEXIST 17

const volatile bool filter_tgids = false;

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, CPUPROF_MAX_STACKS);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, CPUPROF_MAX_DEPTH * sizeof(__u64));
} cpuprof_stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CPUPROF_MAX_COUNTS);
	__type(key, struct cpuprof_key);
	__type(value, __u64);
} cpuprof_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CPUPROF_MAX_FILTER);
	__type(key, __u32);
	__type(value, __u8);
} cpuprof_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpuprof_drops);
} cpuprof_drops SEC(".maps");

static __always_inline bool stack_lost(long id)
{
	return id == -ENOMEM || id == -EEXIST;
}

SEC("perf_event")
int cpuprof_sample(struct bpf_perf_event_data *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32, zero = 0;
	struct cpuprof_key key = {.tgid = tgid};
	struct cpuprof_drops *d;
	__u64 one = 1, *n;
	long err;

	if (!tgid)
		return 0;
	if (filter_tgids && !bpf_map_lookup_elem(&cpuprof_filter, &tgid))
		return 0;
	d = bpf_map_lookup_elem(&cpuprof_drops, &zero);
	if (!d)
		return 0;
	d->samples++;
	key.user_stack = bpf_get_stackid(ctx, &cpuprof_stacks, BPF_F_USER_STACK);
	key.kernel_stack = bpf_get_stackid(ctx, &cpuprof_stacks, 0);
	if (stack_lost(key.user_stack) || stack_lost(key.kernel_stack))
		d->stack_full++;
	n = bpf_map_lookup_elem(&cpuprof_counts, &key);
	if (n) {
		__sync_fetch_and_add(n, 1);
		return 0;
	}
	err = bpf_map_update_elem(&cpuprof_counts, &key, &one, BPF_NOEXIST);
	if (err == -EEXIST) {
		n = bpf_map_lookup_elem(&cpuprof_counts, &key);
		if (n)
			__sync_fetch_and_add(n, 1);
	} else if (err) {
		d->counts_full++;
	}
	return 0;
}
