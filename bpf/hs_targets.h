/* hs_targets.h - target membership, shared by every collector and the agent.
 *
 * A target is a set of processes named in the policy; its index here is 1 + its position
 * in the policy's targets list, and 0 stands for "no target" (the rest of the host). The
 * host is the sum over every index. Membership is decided once per task and cached in task
 * local storage, so that a collector's hot path pays one storage lookup, not a hash lookup:
 *
 *   hs_proc_target  tgid -> target, written by the agent (its /proc scan resolves exe,
 *                   cgroup v1 and combined selectors) and by the kernel (fork inherits,
 *                   exec and exit forget; comm and cgroup v2 matches are remembered)
 *   hs_comm_target  comm -> target, for targets chosen by comm alone
 *   hs_cgrp_target  cgroup v2 id -> target, for targets chosen by a cgroup alone
 *   hs_cfg          the generation: the agent bumps it when membership rules change, and a
 *                   task whose cached generation differs is classified again
 *   hs_cpu          per CPU: the target of the task running there, set at every context
 *                   switch (and exec), so that the hottest paths (sys_exit) read it with one
 *                   inlined array lookup and no helper call; and the syscall being timed
 */
#ifndef HS_BPF_TARGETS_H
#define HS_BPF_TARGETS_H

#define HS_MAX_TARGETS 15 /* targets in a policy; index 0 is the rest of the host */
#define HS_NTARGETS    (HS_MAX_TARGETS + 1)
#define HS_MAX_PROCS   16384 /* tgids remembered in hs_proc_target */
#define HS_COMM_LEN    16

struct hs_task {
	__u32 gen;	/* hs_cfg generation this classification belongs to; 0: never */
	__u32 target;	/* 0..HS_MAX_TARGETS */
	__u64 sc_start; /* syscalls: entry time of a sampled syscall in flight, 0 if none */
	__u64 wakeup;	/* runqlat: when the task was woken, 0 if not runnable-waiting */
};

struct hs_cpu {
	__u32 target;	 /* of the task running on this CPU */
	__u32 tick;	 /* syscalls seen here: picks the sampled ones */
	__u64 sample_id; /* pid_tgid of the task whose syscall is being timed, 0 if none */
	__u64 sample_ts; /* its entry time */
	/* Losses, counted here and reported by the agent, never silent: */
	__u64 proc_full;  /* a member could not be added to hs_proc_target (map full) */
	__u64 no_storage; /* no task storage for a task: its events went to target 0 */
};

struct hs_cfg {
	__u32 gen;
	__u32 ntargets;
};

struct hs_comm_key {
	char comm[HS_COMM_LEN];
};

#endif
