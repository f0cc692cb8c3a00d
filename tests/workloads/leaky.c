/* leaky.c - a program that leaks in a known function, for the allocation-profile test.
 *
 *   leaky [--seconds N] [--churn N]
 *
 * Every 100 ms: leak_some_memory() allocates 64 KiB and never frees it, then churn_memory()
 * allocates and frees N blocks (default 50) of varied sizes. After each leak it prints
 * "leaked TOTAL" (bytes leaked so far) on stdout, flushed, so that
 * tests/integration/0120-alloc-profile.sh can tell how much leaked during its window and
 * compare with the outstanding bytes the profiler attributes to leak_some_memory. The
 * functions are noinline so that they exist as symbols and as frames.
 */
#pragma GCC optimize("no-omit-frame-pointer")
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LEAK_BYTES (64 * 1024)

static void **leaked;
static size_t nleaked, leaked_cap;
static volatile unsigned char sink;

__attribute__((noinline)) size_t leak_some_memory(void)
{
	void *p = malloc(LEAK_BYTES);

	if (!p)
		return 0;
	memset(p, 0xab, LEAK_BYTES);
	/* Kept reachable only so that nothing can free it; never freed. */
	if (nleaked == leaked_cap) {
		size_t cap = leaked_cap ? leaked_cap * 2 : 1024;
		void **v = realloc(leaked, cap * sizeof(*v));

		if (!v)
			return 0;
		leaked = v;
		leaked_cap = cap;
	}
	leaked[nleaked++] = p;
	return LEAK_BYTES;
}

__attribute__((noinline)) void churn_memory(unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		size_t size = 16 + (size_t)(rand() % 4096);
		unsigned char *p = malloc(size);

		if (!p)
			continue;
		p[0] = (unsigned char)i;
		sink = p[size - 1];
		free(p);
	}
}

int main(int argc, char **argv)
{
	double seconds = 0;
	unsigned churn = 50;
	size_t total = 0;
	struct timespec start, now;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
			seconds = atof(argv[++i]);
		} else if (!strcmp(argv[i], "--churn") && i + 1 < argc) {
			churn = (unsigned)atoi(argv[++i]);
		} else {
			fprintf(stderr, "usage: leaky [--seconds N] [--churn N]\n");
			return 2;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		total += leak_some_memory();
		printf("leaked %zu\n", total);
		fflush(stdout);
		churn_memory(churn);
		usleep(100 * 1000);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (seconds > 0 &&
		    (now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 > seconds)
			break;
	}
	return 0;
}
