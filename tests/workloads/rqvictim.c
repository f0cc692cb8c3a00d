/* rqvictim.c - a latency-sensitive periodic task that measures its own wakeup delay.
 *
 *   rqvictim [--period MS] [--work MS] [--seconds T]
 *
 * Loop: sleep until the next absolute deadline (clock_nanosleep, CLOCK_MONOTONIC,
 * TIMER_ABSTIME; deadlines PERIOD ms apart, default 5), then spin WORK ms of wall-clock time
 * (default 1). The wakeup delay is the time it actually woke minus the deadline it asked for: on an
 * idle CPU a few tens of microseconds, on a CPU whose run queue a hog occupies up to several ms. If
 * a wakeup is so late that the next deadline has passed, the deadlines restart from now, so that
 * only wakeup delay is measured, never a backlog. Timer slack is set to 1 ns.
 *
 * Output on stdout, line-buffered: "ready", then every second over that second's wakeups
 *   p50_us X p99_us Y n N max_us M
 * (nearest-rank percentiles, microseconds). It runs forever, or T seconds.
 *
 * Why: the runaway-CPU runbook must see the victim's run-queue latency rise when a hog shares
 * its CPU, and fall again once it has lowered the hog's priority; this is the ground truth.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

static long long ts_ns(const struct timespec *ts)
{
	return ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

static long long mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts_ns(&ts);
}

static struct timespec ns_ts(long long ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL)};

	return ts;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of the n sorted values v. */
static long long percentile(const long long *v, size_t n, int p)
{
	size_t rank = (n * (size_t)p + 99) / 100;

	return v[rank ? rank - 1 : 0];
}

int main(int argc, char **argv)
{
	double period_ms = 5, work_ms = 1, seconds = 0;
	long long period, work, start, deadline, next_report;
	long long *delays;
	size_t n = 0, cap = 4096;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--period") && i + 1 < argc) {
			period_ms = atof(argv[++i]);
		} else if (!strcmp(argv[i], "--work") && i + 1 < argc) {
			work_ms = atof(argv[++i]);
		} else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
			seconds = atof(argv[++i]);
		} else {
			fprintf(stderr,
				"usage: rqvictim [--period MS] [--work MS] [--seconds T]\n");
			return 2;
		}
	}
	if (period_ms <= 0 || work_ms < 0) {
		fprintf(stderr, "rqvictim: --period must be positive, --work not negative\n");
		return 2;
	}
	period = (long long)(period_ms * 1e6);
	work = (long long)(work_ms * 1e6);
	delays = malloc(cap * sizeof(*delays));
	if (!delays) {
		perror("rqvictim: malloc");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	printf("ready\n");
	start = mono_ns();
	deadline = start;
	next_report = start + 1000000000LL;
	for (;;) {
		struct timespec ts;
		long long woke;

		deadline += period;
		ts = ns_ts(deadline);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL))
			;
		woke = mono_ns();
		if (n == cap) {
			long long *v = realloc(delays, 2 * cap * sizeof(*v));

			if (!v) {
				perror("rqvictim: realloc");
				return 1;
			}
			delays = v;
			cap *= 2;
		}
		delays[n++] = woke - deadline;
		while (mono_ns() - woke < work)
			;
		if (woke >= next_report) {
			qsort(delays, n, sizeof(*delays), cmp_ll);
			printf("p50_us %lld p99_us %lld n %zu max_us %lld\n",
			       percentile(delays, n, 50) / 1000, percentile(delays, n, 99) / 1000,
			       n, delays[n - 1] / 1000);
			n = 0;
			next_report += 1000000000LL;
			if (next_report <= woke)
				next_report = woke + 1000000000LL;
		}
		if (seconds > 0 && woke - start >= (long long)(seconds * 1e9))
			break;
		if (mono_ns() >= deadline + period)
			deadline = mono_ns();
	}
	return 0;
}
