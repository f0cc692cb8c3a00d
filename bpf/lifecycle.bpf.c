// SPDX-License-Identifier: GPL-2.0
/* lifecycle.bpf.c - process lifecycle and fatal signals per target; target membership.
 *
 * Besides counting, these hooks keep hs_proc_target true: a forked process inherits its
 * parent's target, an exec forgets it (the new program is classified again), an exit
 * removes it. raw tracepoints need no tracefs; arguments are read with CO-RE.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "lifecycle.h"
#include "hs_targets.bpf.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HS_NTARGETS);
	__type(key, __u32);
	__type(value, struct lifecycle_counts);
} lifecycle_counts SEC(".maps");

static __always_inline struct lifecycle_counts *counts(__u32 target)
{
	return bpf_map_lookup_elem(&lifecycle_counts, &target);
}

SEC("raw_tp/sched_process_exec")
int BPF_PROG(lc_exec)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32, target;
	struct lifecycle_counts *c;
	struct hs_cpu *cpu;
	struct hs_task *t;

	/* A new program: whatever made the old one a member no longer holds, so its entry
	 * goes and it is classified again here, which remembers a match in hs_proc_target.
	 * Its storage may have been classified already, by a context switch between the exec
	 * id's change and this event (the exec id is no longer new then): it gets the same
	 * answer. No storage (counted): classified anyway, never charged to the rest. */
	bpf_map_delete_elem(&hs_proc_target, &tgid);
	target = hs_classify(bpf_get_current_task_btf());
	t = hs_current();
	if (t)
		t->target = target;
	c = counts(target);
	if (c)
		c->execs++;
	cpu = hs_this_cpu();
	if (cpu)
		cpu->target = target;
	return 0;
}

/* Keeps hs_cpu true: the target of whoever runs here, and a timed syscall follows its task
 * when it blocks, so that it is finished on whichever CPU the task wakes up on. */
SEC("tp_btf/sched_switch")
int BPF_PROG(lc_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct hs_cpu *c = hs_this_cpu();
	struct hs_task *t;

	if (!c)
		return 0;
	if (c->sample_ts) {
		if (prev->pid && c->sample_id == ((__u64)prev->tgid << 32 | (__u32)prev->pid)) {
			t = bpf_task_storage_get(&hs_tasks, prev, 0,
						 BPF_LOCAL_STORAGE_GET_F_CREATE);
			if (t)
				t->sc_start = c->sample_ts;
		}
		c->sample_ts = 0;
	}
	if (!next->pid) { /* the idle task */
		c->target = 0;
		return 0;
	}
	t = hs_task_of(next);
	if (!t) { /* no storage (counted): classified anyway, never charged to the rest */
		c->target = hs_classify(next);
		return 0;
	}
	c->target = t->target;
	if (t->sc_start) {
		c->sample_id = (__u64)next->tgid << 32 | (__u32)next->pid;
		c->sample_ts = t->sc_start;
		t->sc_start = 0;
	}
	return 0;
}

SEC("raw_tp/sched_process_fork")
int BPF_PROG(lc_fork, struct task_struct *parent, struct task_struct *child)
{
	struct lifecycle_counts *c;
	struct hs_task *t;
	__u32 tgid;

	/* sched_process_fork fires for threads too; a new process is its own group leader. */
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	t = hs_current();
	if (!t)
		return 0;
	if (t->target) {
		tgid = BPF_CORE_READ(child, tgid);
		if (bpf_map_update_elem(&hs_proc_target, &tgid, &t->target, BPF_ANY) == -E2BIG)
			hs_count_proc_full();
	}
	c = counts(t->target);
	if (c)
		c->forks++;
	return 0;
}

SEC("raw_tp/sched_process_exit")
int BPF_PROG(lc_exit, struct task_struct *task)
{
	struct lifecycle_counts *c;
	struct hs_task *t;
	__u32 tgid;

	/* do_exit() drops signal->live before this tracepoint: zero means the group is dead. */
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	t = hs_current();
	c = counts(t ? t->target : 0);
	if (c)
		c->exits++;
	tgid = BPF_CORE_READ(task, tgid);
	bpf_map_delete_elem(&hs_proc_target, &tgid);
	return 0;
}

SEC("raw_tp/signal_generate")
int BPF_PROG(lc_signal, int sig, struct kernel_siginfo *info, struct task_struct *task, int group,
	     int result)
{
	struct lifecycle_counts *c;
	__u32 target = 0, tgid, *t;

	/* result 0 is TRACE_SIGNAL_DELIVERED; ignored or blocked signals kill nobody. */
	if (result != 0)
		return 0;
	if (sig != 4 && sig != 6 && sig != 7 && sig != 8 && sig != 11 && sig != 31)
		return 0;
	/* The victim, not the sender, is the one that dies. */
	tgid = BPF_CORE_READ(task, tgid);
	t = bpf_map_lookup_elem(&hs_proc_target, &tgid);
	if (t && *t < HS_NTARGETS)
		target = *t;
	c = counts(target);
	if (c)
		c->fatal[sig & (LC_NSIG - 1)]++;
	return 0;
}
