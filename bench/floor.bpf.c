// SPDX-License-Identifier: GPL-2.0
/* floor.bpf.c - the cheapest possible syscall hook: empty programs on sys_enter and sys_exit.
 *
 * bench/overhead.sh attaches it (through bench/floor.c) to measure the floor, the cost that
 * any collector hooking every syscall pays before it does any work: the raw tracepoint
 * dispatch and the program call. Nothing is read or stored.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

SEC("raw_tp/sys_enter")
int BPF_PROG(floor_enter)
{
	return 0;
}

SEC("raw_tp/sys_exit")
int BPF_PROG(floor_exit)
{
	return 0;
}
