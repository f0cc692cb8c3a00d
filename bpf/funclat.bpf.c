// SPDX-License-Identifier: GPL-2.0
/* funclat.bpf.c - uprobe + uretprobe on one function: a log2 latency histogram.
 *
 * Attached on demand, for a bounded window, with the target's pid; target_tgid checks it
 * again. The entry stores a timestamp per thread, the return turns it into a histogram slot.
 * A recursive call overwrites its caller's entry: the outer return is then unmatched.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "funclat.h"
#include "hs_log2.bpf.h"

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 target_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FUNCLAT_MAX_THREADS);
	__type(key, __u32);
	__type(value, __u64);
} funclat_start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct funclat_hist);
} funclat_hist SEC(".maps");

static __always_inline struct funclat_hist *hit(void)
{
	__u32 zero = 0;
	struct funclat_hist *h;

	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return NULL;
	h = bpf_map_lookup_elem(&funclat_hist, &zero);
	if (h)
		h->hits++;
	return h;
}

SEC("uprobe")
int BPF_KPROBE(fl_entry)
{
	struct funclat_hist *h = hit();
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 ts;

	if (!h)
		return 0;
	ts = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&funclat_start, &tid, &ts, BPF_ANY))
		h->start_full++;
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(fl_return)
{
	struct funclat_hist *h = hit();
	__u32 tid = (__u32)bpf_get_current_pid_tgid(), slot;
	__u64 *tsp, delta;

	if (!h)
		return 0;
	tsp = bpf_map_lookup_elem(&funclat_start, &tid);
	if (!tsp) {
		h->unmatched++;
		return 0;
	}
	delta = bpf_ktime_get_ns() - *tsp;
	bpf_map_delete_elem(&funclat_start, &tid);
	slot = hs_log2_slot(delta, FUNCLAT_SLOTS);
	h->slots[slot]++;
	h->count++;
	h->sum_ns += delta;
	return 0;
}
