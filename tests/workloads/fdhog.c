/* fdhog.c - a program that runs out of file descriptors, for the descriptor-exhaustion runbook.
 *
 *   fdhog [--want N] [--soft S] [--rate R] [--seconds T]
 *
 * It lowers its own soft RLIMIT_NOFILE to S (default 256; the hard limit is untouched), then
 * tries to hold N descriptors of its own open (default 2*S): /dev/null, and a socket pair on
 * every 4th attempt so that it looks like a server. It opens as fast as it can while that
 * works; once an open fails it retries at R attempts per second (default 200). Every open that
 * fails with EMFILE is counted. When it holds N it keeps them and sleeps, with no more failing
 * calls. It runs forever, or T seconds.
 *
 * Output on stdout, line-buffered:
 *   ready
 *   first_emfile MS                 the first open that failed with EMFILE (CLOCK_REALTIME, ms)
 *   satisfied MS errors E           it holds N descriptors (CLOCK_REALTIME ms, EMFILE count)
 *   limit S                         its soft limit changed (re-read every second, and at once
 *                                   when an open succeeds again after failures)
 *   status held H errors E          every second
 *
 * Why: the runbook must see the EMFILE errors, raise the soft limit from outside (prlimit),
 * and the test must see the program recover: "limit" then "satisfied" tell it when.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};

	if (s > 0)
		nanosleep(&ts, NULL);
}

static long soft_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return -1;
	return rl.rlim_cur == RLIM_INFINITY ? -1 : (long)rl.rlim_cur;
}

/* Prints "limit S" if the soft limit is no longer *limit. */
static void check_limit(long *limit)
{
	long l = soft_limit();

	if (l != *limit) {
		*limit = l;
		printf("limit %ld\n", l);
	}
}

/* One attempt: 1 or 2 new descriptors stored in fds[], or -errno. */
static int open_some(unsigned long attempt, long room, int *fds)
{
	if (attempt % 4 == 3 && room >= 2) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds))
			return -errno;
		return 2;
	}
	fds[0] = open("/dev/null", O_RDONLY);
	if (fds[0] < 0)
		return -errno;
	return 1;
}

int main(int argc, char **argv)
{
	long want = -1, soft = 256, held = 0, errors = 0, limit;
	double rate = 200, seconds = 0, start, next_tick, next_try = 0;
	unsigned long attempt = 0;
	int first_emfile = 1, satisfied = 0, failing = 0;
	struct rlimit rl;
	int *fds;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--want") && i + 1 < argc) {
			want = atol(argv[++i]);
		} else if (!strcmp(argv[i], "--soft") && i + 1 < argc) {
			soft = atol(argv[++i]);
		} else if (!strcmp(argv[i], "--rate") && i + 1 < argc) {
			rate = atof(argv[++i]);
		} else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
			seconds = atof(argv[++i]);
		} else {
			fprintf(stderr,
				"usage: fdhog [--want N] [--soft S] [--rate R] [--seconds T]\n");
			return 2;
		}
	}
	if (want < 0)
		want = 2 * soft;
	if (soft < 4 || want < 1 || rate <= 0) {
		fprintf(stderr, "fdhog: --soft must be at least 4, --want and --rate positive\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (getrlimit(RLIMIT_NOFILE, &rl)) {
		perror("fdhog: getrlimit");
		return 1;
	}
	rl.rlim_cur = (rlim_t)soft;
	if (setrlimit(RLIMIT_NOFILE, &rl)) {
		fprintf(stderr, "fdhog: cannot set soft RLIMIT_NOFILE to %ld: %s\n", soft,
			strerror(errno));
		return 1;
	}
	fds = calloc((size_t)want + 1, sizeof(*fds));
	if (!fds) {
		perror("fdhog: calloc");
		return 1;
	}
	limit = soft_limit();
	start = now();
	next_tick = start + 1;
	printf("ready\n");
	for (;;) {
		double t = now();
		int r;

		if (t >= next_tick) {
			check_limit(&limit);
			printf("status held %ld errors %ld\n", held, errors);
			next_tick += 1;
			if (next_tick < t)
				next_tick = t + 1;
		}
		if (seconds > 0 && t - start >= seconds)
			break;
		if (satisfied) {
			/* Holding all N: idle until the next tick. */
			sleep_s(next_tick - now());
			continue;
		}
		r = open_some(attempt++, want - held, fds + held);

		if (r > 0) {
			/* Succeeding after a failure: someone raised the limit; say so first. */
			if (failing) {
				failing = 0;
				check_limit(&limit);
			}
			held += r;
			if (held >= want) {
				satisfied = 1;
				printf("satisfied %lld errors %ld\n", realtime_ms(), errors);
			}
			continue;
		}
		/* Paced on absolute times, so that the rate is R whatever the calls cost. */
		if (!failing)
			next_try = t;
		next_try += 1 / rate;
		failing = 1;
		if (r == -EMFILE) {
			errors++;
			if (first_emfile) {
				first_emfile = 0;
				printf("first_emfile %lld\n", realtime_ms());
			}
		} else {
			fprintf(stderr, "fdhog: open failed: %s\n", strerror(-r));
		}
		sleep_s(next_try - now());
	}
	printf("status held %ld errors %ld\n", held, errors);
	return 0;
}
