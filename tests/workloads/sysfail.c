/* sysfail.c - a workload with known syscall behaviour, the ground truth of the collectors.
 *
 *   sysfail ebadf N RATE   N calls of close(-1) (each fails with EBADF) at RATE per second
 *   sysfail sleep N MS     N calls of nanosleep(MS milliseconds)
 *   sysfail spin SECONDS   burn one CPU in a loop without syscalls
 *   sysfail mix SECONDS    for SECONDS, syscalls of known latencies in a fixed pseudo-random
 *                          order: getppid() (40%), nanosleep of 50 us (30%), 500 us (25%)
 *                          and 5 ms (5%), so that p50, p90 and p99 fall well inside one
 *                          kind each; times each one and ends with
 *                          "truth calls N p50_us X p90_us Y p99_us Z", the exact quantiles
 *
 * It prints "ready" before it starts and "done N" after, so tests can line up with it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The mix: each call's latency from user space (it includes the syscall's entry and exit,
 * which the collector's sys_enter..sys_exit does not: under a microsecond). */
static int mix(double seconds)
{
	size_t n = 0, cap = 1 << 16;
	double *lat = malloc(cap * sizeof(*lat)), end = now() + seconds;
	unsigned seed = 12345;

	if (!lat)
		return 1;
	while (now() < end) {
		long ns = 0;
		double t0;

		seed = seed * 1103515245u + 12345u;
		switch ((seed >> 16) % 20) {
		case 0 ... 7:
			break;
		case 8 ... 13:
			ns = 50000;
			break;
		case 14 ... 18:
			ns = 500000;
			break;
		default:
			ns = 5000000;
		}
		t0 = now();
		if (ns) {
			struct timespec ts = {0, ns};

			nanosleep(&ts, NULL);
		} else {
			syscall(SYS_getppid);
		}
		if (n == cap) {
			double *p = realloc(lat, 2 * cap * sizeof(*lat));

			if (!p)
				break;
			lat = p;
			cap *= 2;
		}
		lat[n++] = (now() - t0) * 1e6;
	}
	if (!n) {
		free(lat);
		return 1;
	}
	qsort(lat, n, sizeof(*lat), cmp_double);
	printf("truth calls %zu p50_us %.1f p90_us %.1f p99_us %.1f\n", n, lat[n / 2],
	       lat[(size_t)(n * 0.9)], lat[(size_t)(n * 0.99)]);
	free(lat);
	return 0;
}

int main(int argc, char **argv)
{
	long n, i;

	if (argc < 3) {
		fprintf(stderr,
			"usage: sysfail ebadf N RATE | sleep N MS | spin SECONDS | mix SECONDS\n");
		return 64;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	n = atol(argv[2]);
	printf("ready\n");
	if (!strcmp(argv[1], "ebadf") && argc == 4) {
		double rate = atof(argv[3]), t0 = now();

		for (i = 0; i < n; i++) {
			syscall(SYS_close, -1);
			/* Pace in batches of 100 so that the pacing adds few syscalls. */
			if (rate > 0 && i % 100 == 99) {
				double ahead = (i + 1) / rate - (now() - t0);

				if (ahead > 0) {
					struct timespec ts = {
					    (time_t)ahead, (long)((ahead - (time_t)ahead) * 1e9)};
					nanosleep(&ts, NULL);
				}
			}
		}
	} else if (!strcmp(argv[1], "sleep") && argc == 4) {
		long ms = atol(argv[3]);
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

		for (i = 0; i < n; i++)
			nanosleep(&ts, NULL);
	} else if (!strcmp(argv[1], "mix")) {
		if (mix(atof(argv[2])))
			return 1;
	} else if (!strcmp(argv[1], "spin")) {
		double end = now() + n;
		volatile unsigned long x = 0;

		while (now() < end)
			for (int k = 0; k < 100000; k++)
				x += k;
	} else {
		fprintf(stderr, "sysfail: unknown mode '%s'\n", argv[1]);
		return 64;
	}
	printf("done %ld\n", n);
	return 0;
}
