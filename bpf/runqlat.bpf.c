// SPDX-License-Identifier: GPL-2.0
/* runqlat.bpf.c - run-queue latency per target (the shape of bcc's runqlat).
 *
 * A wakeup (or a preemption that leaves the task runnable) stamps the task's storage; the
 * switch that puts it on a CPU turns the stamp into a histogram increment for its target.
 * tp_btf only: task storage of another task than current needs typed task pointers.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "runqlat.h"
#include "hs_targets.bpf.h"
#include "hs_log2.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define TASK_RUNNING 0

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HS_NTARGETS);
	__type(key, __u32);
	__type(value, struct rq_hist);
} rq_hist SEC(".maps");

/* Kernels before 5.14 call it state; CO-RE picks whichever exists. */
struct task_struct___pre514 {
	long state;
} __attribute__((preserve_access_index));

static __always_inline long task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return BPF_CORE_READ((struct task_struct___pre514 *)t, state);
}

static __always_inline void stamp(struct task_struct *p)
{
	struct hs_task *t;

	if (!p->pid)
		return;
	t = bpf_task_storage_get(&hs_tasks, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (t)
		t->wakeup = bpf_ktime_get_ns();
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(rq_wakeup, struct task_struct *p)
{
	stamp(p);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(rq_wakeup_new, struct task_struct *p)
{
	stamp(p);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(rq_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct hs_task *t;
	struct rq_hist *h;
	__u32 target = 0, tgid, *m;
	__u64 delta;

	if (task_state(prev) == TASK_RUNNING)
		stamp(prev);
	if (!next->pid)
		return 0;
	t = bpf_task_storage_get(&hs_tasks, next, 0, 0);
	if (!t || !t->wakeup)
		return 0;
	delta = bpf_ktime_get_ns() - t->wakeup;
	t->wakeup = 0;
	/* next is not current: its cached target may be stale, the process map is not. */
	tgid = next->tgid;
	m = bpf_map_lookup_elem(&hs_proc_target, &tgid);
	if (m && *m < HS_NTARGETS)
		target = *m;
	h = bpf_map_lookup_elem(&rq_hist, &target);
	if (!h)
		return 0;
	h->slots[hs_log2_slot(delta, RQ_SLOTS)]++;
	h->sum_ns += delta;
	h->count++;
	return 0;
}
