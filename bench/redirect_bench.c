/* redirect_bench.c - what a redirect by entry patch (issue 6, mechanism b) costs: per call,
 * and as a pause of the target's threads.
 *
 *   redirect_bench          (root, or at least allowed to ptrace its own child)
 *
 * The target is a child of the benchmark (a fork: the same code at the same addresses), so
 * nothing else on the host is touched. Its functions are resolved by name in the child with
 * obs_sym_find() and patched through act_apply() / act_revert(), as the daemon does.
 * Prints:
 * - the cost of one call of a tiny function (5 bytes and a ret) called in a tight loop by one
 *   thread: direct, and redirected to an identical alternative (the entry jumps to it:
 *   one e9 jump; with the patchable-entry layout, a short jump then the e9); the median over
 *   RUNS runs of CALLS calls, ns per call, and the ratio;
 * - the pause each apply and each revert imposes on the child while BUSY threads call the
 *   function continuously: median, 99th percentile and maximum over CYCLES cycles, the threads
 *   stopped and the stops that found a thread inside the bytes (and so were tried again).
 * Figures only: nothing timed fails. Exit 1 when the child cannot be patched at all.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

#include "actuate/actuate.h"
#include "lib/util.h"
#include "observe/symbolize.h"

#define RUNS   7
#define CALLS  20000000L
#define CYCLES 200
#define BUSY   4

/* The functions the child calls; noipa: called, never inlined, merged or cloned. */
#define TINY __attribute__((noipa, used))

TINY long bench_fn(long x)
{
	return x * 3 + 7;
}

TINY long bench_fn__alt_same(long x)
{
	return x * 3 + 7;
}

TINY __attribute__((patchable_function_entry(16, 14))) long bench_pfe(long x)
{
	return x * 3 + 7;
}

TINY long bench_pfe__alt_same(long x)
{
	return x * 3 + 7;
}

enum { CMD_NONE, CMD_MEASURE_FN, CMD_MEASURE_PFE, CMD_BUSY, CMD_EXIT };

/* Shared with the child: the parent sets cmd and bumps seq, the child answers with done = seq. */
struct ctl {
	_Atomic int seq, done, cmd;
	double ns_per_call;
	_Atomic long busy_calls;
};

static struct ctl *ctl;

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static __attribute__((noinline)) double measure_fn(void)
{
	long acc = 0;
	double t0 = now_ns();

	for (long i = 0; i < CALLS; i++)
		acc += bench_fn(i);
	__asm__ volatile("" : : "r"(acc));
	return (now_ns() - t0) / CALLS;
}

static __attribute__((noinline)) double measure_pfe(void)
{
	long acc = 0;
	double t0 = now_ns();

	for (long i = 0; i < CALLS; i++)
		acc += bench_pfe(i);
	__asm__ volatile("" : : "r"(acc));
	return (now_ns() - t0) / CALLS;
}

static void *busy(void *arg)
{
	long acc = 0;

	for (;;) {
		for (int i = 0; i < 1000; i++)
			acc += bench_fn(i) + bench_pfe(i);
		atomic_fetch_add_explicit(&ctl->busy_calls, 2000, memory_order_relaxed);
	}
	return (void *)acc;
}

static void child(void)
{
	int seen = 0;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (;;) {
		int seq = atomic_load(&ctl->seq);

		if (seq == seen) {
			usleep(200);
			continue;
		}
		seen = seq;
		switch (atomic_load(&ctl->cmd)) {
		case CMD_MEASURE_FN:
			ctl->ns_per_call = measure_fn();
			break;
		case CMD_MEASURE_PFE:
			ctl->ns_per_call = measure_pfe();
			break;
		case CMD_BUSY:
			for (int i = 0; i < BUSY; i++) {
				pthread_t t;

				pthread_create(&t, NULL, busy, NULL);
			}
			break;
		case CMD_EXIT:
			_exit(0);
		}
		atomic_store(&ctl->done, seq);
	}
}

/* Sends cmd to the child and waits for its answer. */
static void ask(int cmd)
{
	int seq = atomic_load(&ctl->seq) + 1;

	atomic_store(&ctl->cmd, cmd);
	atomic_store(&ctl->seq, seq);
	while (atomic_load(&ctl->done) != seq)
		usleep(100);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
	size_t i;

	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

static int request(struct obs_symbolizer *s, pid_t pid, const char *fn, const char *alt,
		   struct act_request *req)
{
	struct obs_sym_addr a, b;
	int r;

	r = obs_sym_find(s, pid, NULL, fn, &a);
	if (!r)
		r = obs_sym_find(s, pid, NULL, alt, &b);
	if (r) {
		fprintf(stderr, "redirect_bench: cannot find %s or %s: %s\n", fn, alt,
			strerror(-r));
		return r;
	}
	act_request_init(req, ACT_KIND_PATCH);
	req->pid = pid;
	req->patch.addr = a.addr;
	req->patch.size = a.size;
	req->patch.to = b.addr;
	hs_strlcpy(req->patch.function, fn, sizeof(req->patch.function));
	hs_strlcpy(req->patch.alternative, alt, sizeof(req->patch.alternative));
	return 0;
}

static int apply(const struct act_request *req, struct act_result *res)
{
	int r;

	for (int t = 0; t < 100; t++) {
		r = act_apply(req, res);
		if (r != -EBUSY)
			break;
	}
	if (r)
		fprintf(stderr, "redirect_bench: cannot patch %s: %s\n", req->patch.function,
			res->why);
	return r;
}

static int revert(struct act_result *res)
{
	int r;

	for (int t = 0; t < 100; t++) {
		r = act_revert(res);
		if (r != -EBUSY)
			break;
	}
	if (r)
		fprintf(stderr, "redirect_bench: cannot revert %s: %s\n", res->req.patch.function,
			res->why);
	return r;
}

/* Per-call cost of fn, direct and redirected to alt: medians over RUNS. */
static int per_call(const struct act_request *req, int cmd, const char *name)
{
	double direct[RUNS], redirected[RUNS], d, rd;
	struct act_result res;

	for (int i = 0; i < RUNS; i++) {
		ask(cmd);
		direct[i] = ctl->ns_per_call;
		if (apply(req, &res))
			return -1;
		ask(cmd);
		redirected[i] = ctl->ns_per_call;
		if (revert(&res))
			return -1;
	}
	d = pct(direct, RUNS, 0.5);
	rd = pct(redirected, RUNS, 0.5);
	printf("  %-6s %-32s %10.2f %12.2f %7.2f  %s\n", name, req->patch.function, d, rd, rd / d,
	       res.patch_layout ? "short jump + jmp rel32" : "jmp rel32");
	return 0;
}

/* The pauses of CYCLES apply/revert cycles. */
static int pauses(const struct act_request *req, const char *name)
{
	static double ap[CYCLES], rp[CYCLES];
	struct act_result res;
	unsigned retries = 0, threads = 0;

	for (int i = 0; i < CYCLES; i++) {
		if (apply(req, &res))
			return -1;
		ap[i] = res.patch_pause_ns / 1e3;
		retries += res.patch_retries;
		threads = res.patch_threads;
		usleep(500);
		res.patch_retries = 0;
		if (revert(&res))
			return -1;
		rp[i] = res.patch_pause_ns / 1e3;
		retries += res.patch_retries;
	}
	printf("  %-6s %-7s %9.1f %9.1f %9.1f %8u\n", name, "apply", pct(ap, CYCLES, 0.5),
	       pct(ap, CYCLES, 0.99), pct(ap, CYCLES, 1), threads);
	printf("  %-6s %-7s %9.1f %9.1f %9.1f %8u   stops retried (a thread inside): %u\n", name,
	       "revert", pct(rp, CYCLES, 0.5), pct(rp, CYCLES, 0.99), pct(rp, CYCLES, 1), threads,
	       retries);
	return 0;
}

int main(void)
{
	struct act_request fn, pfe;
	struct obs_symbolizer *s = NULL;
	int status, err = 1;
	long c0;
	pid_t pid;

	ctl = mmap(NULL, sizeof(*ctl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ctl == MAP_FAILED)
		return 1;
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0)
		child();
	if (obs_sym_new(NULL, &s))
		goto out;
	if (request(s, pid, "bench_fn", "bench_fn__alt_same", &fn) ||
	    request(s, pid, "bench_pfe", "bench_pfe__alt_same", &pfe))
		goto out;

	printf("redirected calls: ns per call, median of %d runs of %ld calls (one thread)\n", RUNS,
	       CALLS);
	printf("  %-6s %-32s %10s %12s %7s  %s\n", "entry", "function", "direct", "redirected",
	       "ratio", "path");
	if (per_call(&fn, CMD_MEASURE_FN, "plain") || per_call(&pfe, CMD_MEASURE_PFE, "pfe"))
		goto out;

	ask(CMD_BUSY);
	c0 = atomic_load(&ctl->busy_calls);
	usleep(200000);
	printf("\npause of the target per operation, us, over %d apply/revert cycles (%d busy "
	       "threads calling the function, %.0f M calls/s, and the main thread)\n",
	       CYCLES, BUSY, (atomic_load(&ctl->busy_calls) - c0) / 0.2 / 1e6);
	printf("  %-6s %-7s %9s %9s %9s %8s\n", "entry", "op", "median", "p99", "max", "threads");
	if (pauses(&fn, "plain") || pauses(&pfe, "pfe"))
		goto out;
	err = 0;
out:
	obs_sym_free(s);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return err;
}
