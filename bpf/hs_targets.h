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
 *                   inlined array lookup and no helper call; the syscall being timed; and
 *                   the syscall counts (see struct hs_cpu for why they live here)
 */
#ifndef HS_BPF_TARGETS_H
#define HS_BPF_TARGETS_H

#define HS_MAX_TARGETS 15 /* targets in a policy; index 0 is the rest of the host */
#define HS_NTARGETS    (HS_MAX_TARGETS + 1)
#define HS_MAX_PROCS   16384 /* tgids remembered in hs_proc_target */
#define HS_COMM_LEN    16
#define HS_SC_NR       512 /* syscall numbers counted per target (syscalls.h: SC_NR_MAX) */
#define HS_PAGE	       4096

struct hs_task {
	__u32 gen;     /* hs_cfg generation this classification belongs to; 0: never */
	__u32 target;  /* 0..HS_MAX_TARGETS */
	__u32 exec_id; /* the task's self_exec_id (low 32 bits) when it was classified */
	__u32 pad;
	__u64 sc_start; /* syscalls: entry time of a sampled syscall in flight, 0 if none */
	__u64 wakeup;	/* runqlat: when the task was woken, 0 if not runnable-waiting */
};

/* One per CPU, in an mmapable array indexed by CPU (hs_cpu), so that a program finds its
 * CPU's entry without a helper call or a read of the map's structure, and the agent reads
 * every CPU through one mapping.
 *
 * Why the syscall counts are here and not in the syscalls collector's own map: the sys_exit
 * program runs on every syscall of the host, and what it costs is mostly the pages of data it
 * touches. On a kernel with page-table isolation and no PCID every syscall flushes the TLB,
 * so each page costs a page walk on every syscall (~30 ns measured on a VM, against ~100 ns
 * for the syscall itself). Here the header and the first HS_SC_NR - 8 counts of target 0 (the
 * rest of the host, where most syscalls come from) share the entry's first page: a syscall of
 * a process outside every target touches one page of data, a target member's two.
 */
struct hs_cpu {
	__u32 target;	 /* of the task running on this CPU */
	__u32 tick;	 /* syscalls seen here: picks the sampled ones */
	__u64 sample_id; /* pid_tgid of the task whose syscall is being timed, 0 if none */
	__u64 sample_ts; /* its entry time */
	/* Losses, counted here and reported by the agent, never silent: */
	__u64 proc_full;  /* a member could not be added to hs_proc_target (map full) */
	__u64 no_storage; /* no task storage for a task: its events went to target 0 */
	__u64 pad[3];	  /* the header is 64 bytes */
	/* syscalls.bpf.c: syscalls completed here, by target and syscall number (their errors
	 * are counted apart, on the error path: sc_failed). */
	__u64 sc_exits[HS_NTARGETS][HS_SC_NR];
	/* Each CPU's entry starts on a page of its own. */
	__u8 page_pad[HS_PAGE - 64];
};

struct hs_cfg {
	__u32 gen;
	__u32 ntargets;
};

struct hs_comm_key {
	char comm[HS_COMM_LEN];
};

#endif
