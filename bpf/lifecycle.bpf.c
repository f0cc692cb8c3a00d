// SPDX-License-Identifier: GPL-2.0
/* lifecycle.bpf.c - process lifecycle and fatal signals, host-wide.
 *
 * raw tracepoints need no tracefs and exist since 4.17; arguments are read with CO-RE so
 * the object loads unchanged on other kernels. No event leaves the kernel: counters only.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "lifecycle.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lifecycle_counts);
} lifecycle_counts SEC(".maps");

static __always_inline struct lifecycle_counts *counts(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&lifecycle_counts, &zero);
}

SEC("raw_tp/sched_process_exec")
int BPF_PROG(lc_exec)
{
	struct lifecycle_counts *c = counts();

	if (c)
		c->execs++;
	return 0;
}

SEC("raw_tp/sched_process_fork")
int BPF_PROG(lc_fork, struct task_struct *parent, struct task_struct *child)
{
	struct lifecycle_counts *c = counts();

	/* sched_process_fork fires for threads too; a new process is its own group leader. */
	if (c && BPF_CORE_READ(child, pid) == BPF_CORE_READ(child, tgid))
		c->forks++;
	return 0;
}

SEC("raw_tp/sched_process_exit")
int BPF_PROG(lc_exit, struct task_struct *task)
{
	struct lifecycle_counts *c = counts();

	/* do_exit() drops signal->live before this tracepoint: zero means the group is dead. */
	if (c && BPF_CORE_READ(task, signal, live.counter) == 0)
		c->exits++;
	return 0;
}

SEC("raw_tp/signal_generate")
int BPF_PROG(lc_signal, int sig, struct kernel_siginfo *info, struct task_struct *task, int group,
	     int result)
{
	struct lifecycle_counts *c;

	/* result 0 is TRACE_SIGNAL_DELIVERED; ignored or blocked signals kill nobody. */
	if (result != 0)
		return 0;
	if (sig != 4 && sig != 6 && sig != 7 && sig != 8 && sig != 11 && sig != 31)
		return 0;
	c = counts();
	if (c)
		c->fatal[sig & 63]++;
	return 0;
}
