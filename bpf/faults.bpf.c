// SPDX-License-Identifier: GPL-2.0
/* faults.bpf.c - user page faults per target.
 *
 * exceptions:page_fault_user (x86) as a tp_btf program: one inlined per-CPU lookup for the
 * running task's target (hs_cpu, kept by lifecycle's sched_switch program) and one
 * increment. Page faults are frequent in a growing process, so nothing more is done here.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "faults.h"
#include "hs_targets.bpf.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HS_NTARGETS);
	__type(key, __u32);
	__type(value, struct faults_count);
} faults_counts SEC(".maps");

SEC("tp_btf/page_fault_user")
int BPF_PROG(faults_user, unsigned long address, struct pt_regs *regs, unsigned long error_code)
{
	struct hs_cpu *c = hs_this_cpu();
	struct faults_count *f;
	__u32 target;

	if (!c)
		return 0;
	target = c->target;
	f = bpf_map_lookup_elem(&faults_counts, &target);
	if (f)
		f->faults++;
	return 0;
}
