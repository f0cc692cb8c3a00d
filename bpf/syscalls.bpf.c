// SPDX-License-Identifier: GPL-2.0
/* syscalls.bpf.c - syscall counts, errors by errno and sampled latency, per target.
 *
 * The exit program is always on, on every syscall of the host, so its hot path is kept to
 * what cannot be avoided: one inlined lookup of the CPU's entry in hs_cpu, which holds both
 * the running task's target and the counts (one page of data for the rest of the host, two
 * for a target member; see struct hs_cpu), and an increment. Errors and timed syscalls take
 * slower paths. The entry program only picks 1 in (sample_mask + 1) syscalls to time, and
 * the agent attaches it only during latency windows. Two variants of each: tp_btf (direct
 * reads, preferred) and raw_tp (CO-RE probe reads), chosen at load.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "syscalls.h"
#include "hs_targets.bpf.h"
#include "hs_log2.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* 1 in (sample_mask + 1) syscalls has its latency measured; a power of two minus one. */
const volatile __u32 sample_mask = 15;

/* Failed syscalls by target x SC_NR_MAX + number; the counts of all are in hs_cpu. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HS_NTARGETS *SC_NR_MAX);
	__type(key, __u32);
	__type(value, __u64);
} sc_failed SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SC_ERR_ENTRIES);
	__type(key, struct sc_err_key);
	__type(value, __u64);
} sc_errors SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SC_LAT_ENTRIES);
	__type(key, struct sc_lat_key);
	__type(value, struct sc_hist);
} sc_latency SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sc_stats);
} sc_stats SEC(".maps");

static __always_inline struct sc_stats *stats(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sc_stats, &zero);
}

/* Attached only during latency windows (the agent attaches and detaches it). */
static __always_inline int on_enter(void)
{
	struct hs_cpu *c = hs_this_cpu();

	if (!c || (c->tick++ & sample_mask))
		return 0;
	c->sample_id = bpf_get_current_pid_tgid();
	c->sample_ts = bpf_ktime_get_ns();
	return 0;
}

static __noinline void on_error(__u32 target, __u32 nr, long ret)
{
	struct sc_err_key k = {.target = target, .nr = nr, .err = -ret};
	__u32 idx = target * SC_NR_MAX + nr;
	__u64 one = 1, *v;
	struct sc_stats *s;

	v = bpf_map_lookup_elem(&sc_failed, &idx);
	if (v)
		(*v)++;
	v = bpf_map_lookup_elem(&sc_errors, &k);
	if (v) {
		__sync_fetch_and_add(v, 1);
		return;
	}
	if (bpf_map_update_elem(&sc_errors, &k, &one, BPF_NOEXIST) == 0)
		return;
	v = bpf_map_lookup_elem(&sc_errors, &k); /* another CPU created it meanwhile */
	if (v) {
		__sync_fetch_and_add(v, 1);
		return;
	}
	s = stats();
	if (s)
		s->err_map_full++;
}

static __noinline void on_latency(__u32 target, __u32 nr, __u64 ns)
{
	struct sc_lat_key k = {.target = target, .nr = nr};
	static const struct sc_hist zero;
	struct sc_hist *h;
	struct sc_stats *s;
	__u32 slot;

	h = bpf_map_lookup_elem(&sc_latency, &k);
	if (!h) {
		bpf_map_update_elem(&sc_latency, &k, &zero, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&sc_latency, &k);
		if (!h) {
			s = stats();
			if (s)
				s->lat_map_full++;
			return;
		}
	}
	slot = hs_log2_slot(ns, SC_SLOTS);
	__sync_fetch_and_add(&h->slots[slot], 1);
	__sync_fetch_and_add(&h->sum_ns, ns);
	__sync_fetch_and_add(&h->count, 1);
}

/* The hot path: one inlined array lookup and an increment, unless the syscall failed or is
 * being timed. The target is the one lifecycle's sched_switch program left in hs_cpu. */
static __always_inline int on_exit(long id, long ret)
{
	struct hs_cpu *c = hs_this_cpu();
	__u32 target, nr = id;
	struct sc_stats *s;
	__u64 start;

	if (!c)
		return 0;
	target = c->target;
	if (nr >= SC_NR_MAX || target >= HS_NTARGETS) {
		s = stats();
		if (s)
			s->nr_out_of_range++;
		return 0;
	}
	c->sc_exits[target][nr]++;
	if (ret < 0 && ret >= -SC_ERRNO_MAX)
		on_error(target, nr, ret);
	if (c->sample_ts) {
		start = c->sample_ts;
		c->sample_ts = 0;
		if (c->sample_id == bpf_get_current_pid_tgid())
			on_latency(target, nr, bpf_ktime_get_ns() - start);
	}
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(sc_enter_btf, struct pt_regs *regs, long id)
{
	return on_enter();
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sc_exit_btf, struct pt_regs *regs, long ret)
{
	return on_exit(regs->orig_ax, ret);
}

SEC("raw_tp/sys_enter")
int BPF_PROG(sc_enter_raw, struct pt_regs *regs, long id)
{
	return on_enter();
}

SEC("raw_tp/sys_exit")
int BPF_PROG(sc_exit_raw, struct pt_regs *regs, long ret)
{
	return on_exit(BPF_CORE_READ(regs, orig_ax), ret);
}
