/* crasher.c - a program that works briefly and then dies of a signal, for the crash runbook.
 *
 *   crasher [--after MS] [--signal SEGV|ABRT|BUS|ILL]
 *
 * It prints "ready", spins for MS milliseconds (default 300) inside crash_soon_work(), then
 * dies of the signal (default SEGV) from inside that function: SEGV by a write through a NULL
 * pointer, ABRT by abort(), BUS and ILL by raise(). Run it under supervise to get a crash loop.
 *
 * Why: the crash runbook must tell a process that keeps dying from one that exits, name the
 * signal, and (from a CPU profile or the faulting stack) the function it died in. The function
 * is noinline and frame pointers are kept so that it exists as a symbol and as a frame.
 */
#pragma GCC optimize("no-omit-frame-pointer")
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile unsigned long sink;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline)) void crash_soon_work(double ms, int sig)
{
	double end = now() + ms / 1000;
	unsigned long x = sink;

	while (now() < end)
		for (int i = 0; i < 100000; i++)
			x = x * 6364136223846793005ul + 1442695040888963407ul;
	sink = x;
	if (sig == SIGSEGV) {
		/* Both volatile: the compiler can neither see the NULL nor drop the store. */
		volatile int *volatile p = NULL;

		*p = 1;
	} else if (sig == SIGABRT) {
		abort();
	}
	raise(sig);
	/* Not reached; stops raise() from being a tail call, so the frame stays on the stack. */
	sink = 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int sig;
	} sigs[] = {{"SEGV", SIGSEGV}, {"ABRT", SIGABRT}, {"BUS", SIGBUS}, {"ILL", SIGILL}};
	double after = 300;
	int sig = SIGSEGV;
	sigset_t set;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--after") && i + 1 < argc) {
			after = atof(argv[++i]);
		} else if (!strcmp(argv[i], "--signal") && i + 1 < argc) {
			const char *name = argv[++i];
			size_t k;

			if (!strncmp(name, "SIG", 3))
				name += 3;
			for (k = 0; k < sizeof(sigs) / sizeof(sigs[0]); k++)
				if (!strcmp(name, sigs[k].name))
					break;
			if (k == sizeof(sigs) / sizeof(sigs[0])) {
				fprintf(stderr, "crasher: unknown signal '%s'\n", argv[i]);
				return 2;
			}
			sig = sigs[k].sig;
		} else {
			fprintf(stderr,
				"usage: crasher [--after MS] [--signal SEGV|ABRT|BUS|ILL]\n");
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* The signal must kill us even if a parent left it ignored or blocked. */
	signal(sig, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	printf("ready\n");
	crash_soon_work(after, sig);
	fprintf(stderr, "crasher: still alive after signal %d\n", sig);
	return 1;
}
