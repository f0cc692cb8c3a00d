// SPDX-License-Identifier: GPL-2.0
/* redirect.bpf.c - mechanism a of the redirect: a uprobe that sends calls elsewhere.
 *
 * What: redirect_entry runs at a uprobe on a function's entry. It looks up its target by the
 * link's attach cookie, decides (see redirect.h) and, when the call is chosen, sets ctx->ip to
 * the alternative. The caller's return address is still on the stack and the arguments still
 * in their registers, so the alternative runs as if it had been called and returns to the
 * caller. Decisions are counted per CPU. Rollback deletes the entry (the next call goes to the
 * original), then detaches.
 *
 * Why it works where it does: since Linux 6.18 (commit 7384893d970e, "bpf: Allow uprobe
 * program to change context registers") kprobe_prog_is_valid_access() accepts writes to
 * struct pt_regs and marks the program; __perf_event_set_bpf_prog() then refuses to attach
 * such a program to anything but a uprobe. Commit 4363264111e1 ("uprobe: Do not emulate/sstep
 * original instruction when ip is changed") makes handle_swbp() skip the probed instruction
 * when a handler moved ip. Older kernels, and the development hosts' kernel, refuse the write
 * in the verifier ("invalid bpf_context access off=128 size=8").
 *
 * redirect_probe is the feature probe: it writes ctx->ip back unchanged, so its load succeeds
 * exactly where the write is allowed. It is never attached. Both programs write ctx->ip, so
 * the agent loads one or the other (bpf_program__set_autoload()), never both; a kernel that
 * refuses the write refuses both, and no other object is affected.
 *
 * Not exercised on the development hosts: their kernel refuses the write.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "redirect.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, REDIRECT_MAX_TARGETS);
	/* Updates replace the element under RCU: a running probe sees the old or the new. */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct redirect_target);
} redirect_targets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, REDIRECT_MAX_TARGETS);
	__type(key, __u32);
	__type(value, struct redirect_counts);
} redirect_counts SEC(".maps");

SEC("uprobe")
int redirect_probe(struct pt_regs *ctx)
{
	/* volatile: the compiler would drop a store of the value just loaded */
	*(volatile unsigned long *)&ctx->ip = ctx->ip;
	return 0;
}

SEC("uprobe")
int redirect_entry(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 slot = (__u32)cookie, draw;
	struct redirect_target *t;
	struct redirect_counts *c;

	if (cookie >= REDIRECT_MAX_TARGETS)
		return 0;
	c = bpf_map_lookup_elem(&redirect_counts, &slot);
	if (!c)
		return 0;
	t = bpf_map_lookup_elem(&redirect_targets, &cookie);
	if (!t || t->tgid != (__u32)(pid_tgid >> 32)) {
		c->missing++;
		return 0;
	}
	if (t->flags & REDIRECT_STICKY)
		draw = redirect_thread_draw((__u32)pid_tgid, t->seed);
	else
		draw = bpf_get_prandom_u32() & 0xffff;
	if (!redirect_chosen(draw, t->fraction)) {
		c->passed++;
		return 0;
	}
	ctx->ip = t->alt_addr;
	c->redirected++;
	return 0;
}
