/* cpuhog.c - a CPU-bound program with a known hot function, for the profiling tests.
 *
 *   cpuhog [--seconds N]          spin: about 90% of the CPU time in hot_spin_function(),
 *                                 10% in cold_function(), both called from work_loop()
 *   cpuhog --sleepy [--seconds N] call sleepy_function() (usleep(3000): 3.05-3.2 ms a call)
 *                                 in a loop, for the function-latency test
 *   --threads N                   N threads do the same (default 1): one process that
 *                                 takes N CPUs' worth of time, for the runaway-CPU runbook
 *
 * Why: tests/integration/0110-cpu-profile.sh checks that a CPU profile names
 * hot_spin_function as the top function of this process; 0130-func-latency.sh checks the
 * latency percentiles of sleepy_function. The functions are noinline so that they exist as
 * symbols, and frame pointers are kept so that user stacks unwind past the leaf.
 */
#pragma GCC optimize("no-omit-frame-pointer")
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile unsigned long sink;

__attribute__((noinline)) void hot_spin_function(unsigned long n)
{
	unsigned long x = sink;

	for (unsigned long i = 0; i < n; i++)
		x = x * 6364136223846793005ul + 1442695040888963407ul;
	sink = x;
}

__attribute__((noinline)) void cold_function(unsigned long n)
{
	unsigned long x = sink;

	for (unsigned long i = 0; i < n; i++)
		x ^= x << 13 | i;
	sink = x;
}

__attribute__((noinline)) void sleepy_function(void)
{
	usleep(3000);
}

__attribute__((noinline)) static void work_loop(double seconds, int sleepy)
{
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		if (sleepy) {
			sleepy_function();
		} else {
			hot_spin_function(900000);
			cold_function(100000);
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (seconds > 0 &&
		    (now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 > seconds)
			break;
	}
}

static double opt_seconds;
static int opt_sleepy;

static void *thread_main(void *arg)
{
	(void)arg;
	work_loop(opt_seconds, opt_sleepy);
	return NULL;
}

int main(int argc, char **argv)
{
	double seconds = 0;
	int sleepy = 0, threads = 1;
	pthread_t tid;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--sleepy")) {
			sleepy = 1;
		} else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
			seconds = atof(argv[++i]);
		} else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
			threads = atoi(argv[++i]);
		} else {
			fprintf(stderr, "usage: cpuhog [--sleepy] [--seconds N] [--threads N]\n");
			return 2;
		}
	}
	opt_seconds = seconds;
	opt_sleepy = sleepy;
	for (int i = 1; i < threads; i++)
		if (pthread_create(&tid, NULL, thread_main, NULL) == 0)
			pthread_detach(tid);
	work_loop(seconds, sleepy);
	return 0;
}
