/* sysloop.c - the syscall-heavy loop of bench/overhead.sh: what one getppid() costs.
 *
 *   sysloop [-n CALLS] [-s SEGMENTS] [-c CPU] [-w WARMUP]   time CALLS getppid() calls
 *   sysloop -t SECONDS [-c CPU]       print the CALLS that take about SECONDS here
 *
 * getppid() goes through syscall(SYS_getppid) so that no libc cache can answer it, and it
 * does nearly nothing in the kernel: the figure is the syscall entry and exit path, which is
 * where sys_enter/sys_exit programs add their cost. The process is pinned to one CPU (default:
 * the last one) so that migrations do not add noise, and WARMUP calls (default CALLS / 10)
 * run first to warm caches and let the CPU settle before the timed loop.
 *
 * The timed loop is cut into SEGMENTS (default 10) equal parts, each timed with
 * clock_gettime() on two clocks: CLOCK_MONOTONIC (wall) and CLOCK_THREAD_CPUTIME_ID (the time
 * this thread ran, its syscalls and the BPF programs they run included; it stays right when
 * another process shares the CPU and the wall clock does not). The figures are the median
 * segment, so that a burst of interference in one segment does not move them, and the mean
 * over the whole loop. One line:
 *   ns_per_call 98.1 cpu_ns_per_call 97.9 mean_ns_per_call 99.0 mean_cpu_ns_per_call 98.2
 *   calls 10000000 seconds 0.990 cpu 1
 * A helper of bench/overhead.sh, not a benchmark of its own (bench/run.sh skips it).
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_SEGMENTS 1000

static double now_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void loop(long calls)
{
	for (long i = 0; i < calls; i++)
		syscall(SYS_getppid);
}

static int pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0) {
		if (sched_getaffinity(0, sizeof(set), &set) < 0)
			return -errno;
		for (cpu = CPU_SETSIZE - 1; cpu > 0 && !CPU_ISSET(cpu, &set); cpu--)
			;
	}
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		return -errno;
	return cpu;
}

static long parse_long(const char *s, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0' || v < 0) {
		fprintf(stderr, "sysloop: invalid %s '%s'\n", what, s);
		exit(64);
	}
	return v;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	long calls = 10000000, warmup = -1, segments = 10;
	double seconds = 0, t0, t1, c0, c1, wall[MAX_SEGMENTS], cpu_time[MAX_SEGMENTS];
	double wall_sum = 0, cpu_sum = 0;
	int cpu = -1, opt;

	while ((opt = getopt(argc, argv, "n:s:c:w:t:")) != -1) {
		switch (opt) {
		case 'n':
			calls = parse_long(optarg, "number of calls");
			break;
		case 's':
			segments = parse_long(optarg, "number of segments");
			if (segments < 1 || segments > MAX_SEGMENTS) {
				fprintf(stderr, "sysloop: segments must be between 1 and %d\n",
					MAX_SEGMENTS);
				return 64;
			}
			break;
		case 'c':
			cpu = parse_long(optarg, "cpu");
			break;
		case 'w':
			warmup = parse_long(optarg, "number of warm-up calls");
			break;
		case 't':
			seconds = atof(optarg);
			if (seconds <= 0) {
				fprintf(stderr, "sysloop: invalid seconds '%s'\n", optarg);
				return 64;
			}
			break;
		default:
			fprintf(stderr,
				"usage: sysloop [-n CALLS] [-s SEGMENTS] [-c CPU] [-w WARMUP] | "
				"-t SECONDS [-c CPU]\n");
			return 64;
		}
	}
	if (calls < segments) {
		fprintf(stderr, "sysloop: number of calls must be at least %ld\n", segments);
		return 64;
	}
	cpu = pin(cpu);
	if (cpu < 0) {
		fprintf(stderr, "sysloop: cannot pin to a cpu: %s\n", strerror(-cpu));
		return 1;
	}

	if (seconds > 0) {
		/* Calibration: warm up for ~0.2 s, then time 1/4 s worth and scale. */
		long n = 100000;

		loop(n);
		for (;;) {
			t0 = now_ns(CLOCK_MONOTONIC);
			loop(n);
			t1 = now_ns(CLOCK_MONOTONIC);
			if (t1 - t0 > 0.25e9)
				break;
			n *= 2;
		}
		printf("%ld\n", (long)(n * seconds * 1e9 / (t1 - t0)));
		return 0;
	}

	loop(warmup >= 0 ? warmup : calls / 10);
	calls -= calls % segments;
	for (int i = 0; i < segments; i++) {
		c0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
		t0 = now_ns(CLOCK_MONOTONIC);
		loop(calls / segments);
		t1 = now_ns(CLOCK_MONOTONIC);
		c1 = now_ns(CLOCK_THREAD_CPUTIME_ID);
		wall[i] = (t1 - t0) / (calls / segments);
		cpu_time[i] = (c1 - c0) / (calls / segments);
		wall_sum += t1 - t0;
		cpu_sum += c1 - c0;
	}
	printf("ns_per_call %.3f cpu_ns_per_call %.3f mean_ns_per_call %.3f "
	       "mean_cpu_ns_per_call %.3f calls %ld seconds %.3f cpu %d\n",
	       median(wall, segments), median(cpu_time, segments), wall_sum / calls,
	       cpu_sum / calls, calls, wall_sum / 1e9, cpu);
	return 0;
}
