/* sysfail.c - a workload with known syscall behaviour, the ground truth of the collectors.
 *
 *   sysfail ebadf N RATE   N calls of close(-1) (each fails with EBADF) at RATE per second
 *   sysfail sleep N MS     N calls of nanosleep(MS milliseconds)
 *   sysfail spin SECONDS   burn one CPU in a loop without syscalls
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

int main(int argc, char **argv)
{
	long n, i;

	if (argc < 3) {
		fprintf(stderr, "usage: sysfail ebadf N RATE | sleep N MS | spin SECONDS\n");
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
