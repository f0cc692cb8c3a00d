/* memory_bench.c - how fast the memory database records changes, durably.
 *
 *   memory_bench [DIR]     DIR holds the scratch database (default: $TMPDIR or /tmp); use a
 *                          directory on the disk the daemon will write to, not a tmpfs
 *
 * Prints, each the median of RUNS runs on a fresh database (WAL, synchronous=FULL):
 * - full change cycles per second: mem_change_intent() + mem_change_set_state(APPLIED) +
 *   mem_outcome_record(KEEP), i.e. three committed transactions with their audit rows;
 * - the latency of one mem_change_intent() (the write-ahead point the actuator waits for):
 *   median and p99 over every intent of every run;
 * - mem_should_attempt() per second against the resulting history.
 * Figures only: no assertions, nothing timed fails.
 */
#include <inttypes.h>
#include <sys/statfs.h>
#include <time.h>

#include "memory/memory.h"

#define RUNS   5
#define CYCLES 1000

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double percentile(double *v, size_t n, double p)
{
	size_t i;

	qsort(v, n, sizeof(*v), cmp_double);
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

static void remove_db(const char *path)
{
	char p[4200];

	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
}

/* One run: returns cycles per second, stores intent latencies (seconds) in lat. */
static int run(const char *path, double *lat, double *cycles_per_s, double *checks_per_s)
{
	struct mem *m = NULL;
	char after[32];
	double t0, t1;
	int r;

	remove_db(path);
	r = mem_open(path, &m);
	if (r < 0) {
		fprintf(stderr, "memory_bench: cannot open '%s': %s\n", path, strerror(-r));
		return r;
	}
	t0 = now_s();
	for (int i = 0; i < CYCLES; i++) {
		struct mem_change c = {
		    .kind = MEM_KIND_SYSCTL,
		    .target = "bench",
		    .knob = "net.core.somaxconn",
		    .before = "4096",
		    .after = after,
		    .why = "memory_bench",
		    .source = "bench:memory",
		    .revert = "sysctl -w net.core.somaxconn=4096",
		};
		struct mem_outcome o = {
		    .fitness_before = 0.5,
		    .fitness_after = 0.6,
		    .verdict = i % 2 ? MEM_VERDICT_KEEP : MEM_VERDICT_ROLLBACK,
		    .stats_json = "{\"test\":\"mann-whitney-u\",\"n_canary\":120,\"p\":0.01}",
		    .result = i % 2 ? MEM_RESULT_DEPLOYED : MEM_RESULT_ROLLED_BACK,
		};
		double a;
		int64_t id;

		snprintf(after, sizeof(after), "%d", 1 << (i % 20));
		a = now_s();
		id = mem_change_intent(m, &c);
		lat[i] = now_s() - a;
		if (id < 0)
			goto fail;
		o.change_id = id;
		r = mem_change_set_state(m, id, MEM_STATE_APPLIED, "bench", NULL);
		if (r < 0 || (id = mem_outcome_record(m, &o, "bench")) < 0)
			goto fail;
	}
	t1 = now_s();
	*cycles_per_s = CYCLES / (t1 - t0);

	{
		char kernel[MEM_KERNEL_MAX], class[MEM_HOST_CLASS_MAX], why[MEM_WHY_MAX];
		struct mem_candidate cand = {
		    .kind = MEM_KIND_SYSCTL,
		    .target = "bench",
		    .knob = "net.core.somaxconn",
		    .value = after,
		    .kernel = kernel,
		    .host_class = class,
		};
		int n = 20000;

		mem_host_kernel(kernel, sizeof(kernel));
		mem_host_class(class, sizeof(class));
		t0 = now_s();
		for (int i = 0; i < n; i++) {
			snprintf(after, sizeof(after), "%d", 1 << (i % 24));
			if (mem_should_attempt(m, &cand, why, sizeof(why)) < 0)
				goto fail;
		}
		*checks_per_s = n / (now_s() - t0);
	}
	mem_close(m);
	remove_db(path);
	return 0;
fail:
	fprintf(stderr, "memory_bench: write failed: %s\n", mem_last_error(m));
	mem_close(m);
	remove_db(path);
	return -EIO;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : getenv("TMPDIR") ?: "/tmp";
	static double lat[RUNS * CYCLES];
	double cps[RUNS], chk[RUNS];
	char path[4096];
	struct statfs sfs;

	if (snprintf(path, sizeof(path), "%s/memory_bench.%d.db", dir, (int)getpid()) >=
	    (int)sizeof(path)) {
		fprintf(stderr, "memory_bench: directory name too long\n");
		return 1;
	}
	for (int r = 0; r < RUNS; r++)
		if (run(path, lat + r * CYCLES, &cps[r], &chk[r]) < 0)
			return 1;

	printf("memory_bench: %s (fs magic 0x%lx), WAL, synchronous=FULL, %d runs x %d cycles\n",
	       dir, statfs(dir, &sfs) == 0 ? (unsigned long)sfs.f_type : 0ul, RUNS, CYCLES);
	printf("  change cycles/s (intent + applied + outcome, 3 commits): median %.0f"
	       " (min %.0f, max %.0f)\n",
	       percentile(cps, RUNS, 0.5), percentile(cps, RUNS, 0.0), percentile(cps, RUNS, 1.0));
	printf("  commits/s: median %.0f\n", 3 * percentile(cps, RUNS, 0.5));
	printf("  mem_change_intent latency: median %.1f us, p99 %.1f us, max %.1f us\n",
	       percentile(lat, RUNS * CYCLES, 0.5) * 1e6,
	       percentile(lat, RUNS * CYCLES, 0.99) * 1e6,
	       percentile(lat, RUNS * CYCLES, 1.0) * 1e6);
	printf("  mem_should_attempt/s (history of %d changes): median %.0f\n", CYCLES,
	       percentile(chk, RUNS, 0.5));
	return 0;
}
