/* floor.c - loads bench/floor.bpf.c, attaches it, and holds it until SIGTERM or SIGINT.
 *
 *   floor              prints "floor: attached" once both programs are attached, then waits
 *   floor --exit-only  the same with the sys_exit program alone: the floor of a collector
 *                      that, like homeostat's syscalls collector, counts on sys_exit and
 *                      hooks sys_enter only now and then
 *
 * A helper of bench/overhead.sh (the floor configuration), not a benchmark of its own
 * (bench/run.sh skips it). Exits 0 after a clean detach, 1 if it could not attach.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <bpf/libbpf.h>

#include "floor.skel.h"

static int quiet_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	return level == LIBBPF_DEBUG ? 0 : vfprintf(stderr, fmt, args);
}

int main(int argc, char **argv)
{
	struct floor_bpf *skel = NULL;
	bool exit_only = false;
	sigset_t mask;
	int err, sig;

	if (argc == 2 && !strcmp(argv[1], "--exit-only")) {
		exit_only = true;
	} else if (argc != 1) {
		fprintf(stderr, "usage: floor [--exit-only]\n");
		return 2;
	}

	/* Block the signals first: one that arrives while loading is taken by sigwait(). */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	libbpf_set_print(quiet_print);

	skel = floor_bpf__open_and_load();
	if (!skel) {
		err = -errno;
		fprintf(stderr, "floor: cannot load the floor programs: %s\n", strerror(-err));
		goto cleanup;
	}
	if (exit_only) {
		skel->links.floor_exit = bpf_program__attach(skel->progs.floor_exit);
		err = skel->links.floor_exit ? 0 : -errno;
	} else {
		err = floor_bpf__attach(skel);
	}
	if (err) {
		fprintf(stderr, "floor: cannot attach to %s: %s\n",
			exit_only ? "'sys_exit'" : "'sys_enter'/'sys_exit'", strerror(-err));
		goto cleanup;
	}
	printf("floor: attached\n");
	fflush(stdout);

	err = sigwait(&mask, &sig);
	if (err)
		err = -err;

cleanup:
	floor_bpf__destroy(skel);
	return err ? 1 : 0;
}
