/* hs_targets.bpf.h - the kernel side of target membership (see hs_targets.h), included by every
 * collector. Each object declares the same maps; the agent creates them with the first
 * collector it loads and hands the same fds to the others (bpf_map__reuse_fd), so one
 * classification serves all of them.
 */
#ifndef HS_TARGETS_BPF_H
#define HS_TARGETS_BPF_H

#include <bpf/bpf_core_read.h>
#include "hs_targets.h"

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct hs_task);
} hs_tasks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HS_MAX_PROCS);
	__type(key, __u32);
	__type(value, __u32);
} hs_proc_target SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HS_MAX_TARGETS * 4);
	__type(key, struct hs_comm_key);
	__type(value, __u32);
} hs_comm_target SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HS_MAX_TARGETS * 4);
	__type(key, __u64);
	__type(value, __u32);
} hs_cgrp_target SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hs_cfg);
} hs_cfg SEC(".maps");

/* One entry per possible CPU: the agent sets max_entries before it creates the map. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hs_cpu);
} hs_cpu SEC(".maps");

/* The running CPU's entry: bpf_get_smp_processor_id() and the array lookup are both inlined
 * by the verifier, and neither reads the map's structure (see struct hs_cpu). */
static __always_inline struct hs_cpu *hs_this_cpu(void)
{
	__u32 cpu = bpf_get_smp_processor_id();

	return bpf_map_lookup_elem(&hs_cpu, &cpu);
}

#ifndef E2BIG
#define E2BIG 7
#endif

static __always_inline void hs_count_proc_full(void)
{
	struct hs_cpu *c = hs_this_cpu();

	if (c)
		c->proc_full++;
}

/* The target of task (a BTF pointer, current or not): its process's entry, else its comm,
 * else its cgroup v2; a comm or cgroup match is remembered for the process. */
static __always_inline __u32 hs_classify(struct task_struct *task)
{
	struct hs_comm_key ck = {};
	__u32 *t, target = 0, tgid = task->tgid;
	__u64 cg;

	t = bpf_map_lookup_elem(&hs_proc_target, &tgid);
	if (t)
		return *t < HS_NTARGETS ? *t : 0;
	bpf_probe_read_kernel(ck.comm, sizeof(ck.comm), task->comm);
	t = bpf_map_lookup_elem(&hs_comm_target, &ck);
	if (!t) {
		cg = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
		t = bpf_map_lookup_elem(&hs_cgrp_target, &cg);
	}
	if (t && *t < HS_NTARGETS) {
		target = *t;
		/* Remembered so that the agent sees every member and children inherit it. */
		if (bpf_map_update_elem(&hs_proc_target, &tgid, &target, BPF_NOEXIST) == -E2BIG)
			hs_count_proc_full();
	}
	return target;
}

/* task's storage, classified for the current generation and the program it runs now (a
 * new exec id: it exec'd since, even if its exec event was missed); NULL when the kernel
 * cannot give storage (counted): the caller then classifies it with hs_classify(). */
static __always_inline struct hs_task *hs_task_of(struct task_struct *task)
{
	__u32 zero = 0, exec_id = BPF_CORE_READ(task, self_exec_id);
	struct hs_task *t;
	struct hs_cfg *cfg;

	t = bpf_task_storage_get(&hs_tasks, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	cfg = bpf_map_lookup_elem(&hs_cfg, &zero);
	if (!t) {
		struct hs_cpu *c = hs_this_cpu();

		if (c)
			c->no_storage++;
		return 0;
	}
	if (!cfg)
		return 0;
	if (t->gen != cfg->gen || t->exec_id != exec_id) {
		t->target = hs_classify(task);
		t->gen = cfg->gen;
		t->exec_id = exec_id;
	}
	return t;
}

static __always_inline struct hs_task *hs_current(void)
{
	return hs_task_of(bpf_get_current_task_btf());
}

#endif
