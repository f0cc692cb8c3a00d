/* evolve.c - a multi-threaded "server" whose hot function has alternatives, for the
 * self-evolving tests (issue 6: redirect a hot function of a running program to another
 * implementation by patching the function's entry with a jump).
 *
 *   evolve [-t THREADS] [-f plain|pfe] [-s STATSFILE] [-n BUFSIZE]
 *       -t  worker threads (default 4, 1 to 256)
 *       -f  which hot function the workers call: plain (hot_fn, default) or pfe (hot_pfe)
 *       -s  append the statistics to STATSFILE (default: stdout)
 *       -n  bytes hashed per call (default 32768, 64 to 67108864)
 *
 * The hot function hashes the whole buffer one byte at a time, h = h * P + byte, a chain of
 * dependent multiplications: tens of microseconds a call. Its alternatives, found by homeostat
 * through the naming convention FN__alt_NAME in this ELF, have exactly the same signature:
 *   FN__alt_fast   the same result for every input, computed four bytes a step with
 *                  independent multiplications: about 3-4 times faster (see "ns_per_call_*")
 *   FN__alt_wrong  as fast, but every result is off by one: every request becomes an error
 *   FN__alt_crash  writes through a NULL pointer: the process dies at once of SIGSEGV
 * for FN = hot_fn, a plain function, and FN = hot_pfe, the same code built with
 * patchable_function_entry(16, 14): 14 one-byte NOPs before the symbol and 2 at it, the
 * libpulp-style layout (a 2-byte jump at the entry to a longer jump in the 14 bytes before).
 * All are noipa (no inlining, cloning, merging, or interprocedural register assumptions in the
 * callers, so any of them can stand in for another) and used. Each begins with whole, plain
 * instructions over at least 5 bytes (hot_fn: a 10-byte movabs; no RIP-relative operand, call
 * or jump, and no branch back into them), which a patcher can replace by a 5-byte jump; check
 * with objdump -d after a compiler change. Frame pointers are kept where a frame is set up, for
 * the profiler's stacks; the leaf hot_fn and hot_pfe have none.
 *
 * At start it fills the buffer deterministically, computes the expected results for a table of
 * 64 seeds with the original function (before any redirect can happen), checks that both
 * __alt_fast functions give the same 64 results (else it exits 2; it never calls the wrong or
 * crash alternatives itself) and times the original and the fast one. Then each worker calls
 * the hot function in a loop, directly (a call to the symbol's entry, which a patch redirects),
 * over the seeds in turn, and answers every request with one syscall:
 *   result as expected   write(2) of the result to /dev/null, which succeeds
 *   result wrong         write(2) to descriptor -1, which fails with EBADF
 * So to homeostat's syscall collector the request rate is the rate of write(2) calls, the
 * error rate is their EBADF rate, and a faster hot function shows as more writes per second.
 *
 * Output, one line a second, line-buffered, appended to STATSFILE or written to stdout:
 *   ready pid=P threads=N fn=hot_fn|hot_pfe addr=0xA ns_per_call_direct=D ns_per_call_fast=F
 *   t=UNIX_S calls=C errors=E ns_per_call=M total=T total_errors=TE
 * where C and E count the calls and wrong results of the last second (C includes E), M is the
 * mean wall-clock time of one call of the hot function over that second (with more threads
 * than CPUs it includes the time a thread waited for a CPU: compare calls per second), T and TE
 * count since start.
 * SIGTERM or SIGINT: exit 0. Exit 64 for a usage error, 1 for a system error.
 */
#pragma GCC optimize("no-omit-frame-pointer")
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NSEEDS	    64
#define MAX_THREADS 256
#define HASH_P	    0x100000001b3ull /* the 64-bit FNV prime */
#define HASH_BASIS  0xcbf29ce484222325ull

/* noipa: not inlined, cloned, merged with an identical function (hot_fn and hot_pfe, the
 * __alt_fast pair), nor analysed for the callers' benefit (IPA-RA would let a caller keep values
 * in registers the original happens not to touch, and an alternative may clobber them). */
#define HOT __attribute__((noipa, noinline, noclone, used))

typedef uint64_t (*hot_func)(const uint8_t *buf, size_t n, uint64_t seed);

struct worker {
	pthread_t thread;
	int id;
	_Atomic uint64_t calls, errors, ns;
} __attribute__((aligned(64)));

static uint8_t *buf;
static size_t bufsize = 32768;
static int use_pfe;
static uint64_t seeds[NSEEDS], expected[NSEEDS];
static int devnull_fd;
static struct worker workers[MAX_THREADS];

static inline __attribute__((always_inline)) uint64_t finish(uint64_t h)
{
	return h ^ (h >> 29);
}

/* The reference: one dependent multiply-add per byte. */
static inline __attribute__((always_inline)) uint64_t hash_bytes(const uint8_t *b, size_t n,
								 uint64_t seed)
{
	uint64_t h = seed ^ HASH_BASIS;

	for (size_t i = 0; i < n; i++)
		h = h * HASH_P + b[i];
	return finish(h);
}

/* The same polynomial four bytes a step: h*P^4 + b0*P^3 + b1*P^2 + b2*P + b3, where only the
 * multiplication of h is on the dependency chain (arithmetic modulo 2^64, so exactly equal). */
static inline __attribute__((always_inline)) uint64_t hash_words(const uint8_t *b, size_t n,
								 uint64_t seed)
{
	const uint64_t p2 = HASH_P * HASH_P, p3 = p2 * HASH_P, p4 = p3 * HASH_P;
	uint64_t h = seed ^ HASH_BASIS;
	size_t i = 0;

	for (; i + 4 <= n; i += 4)
		h = h * p4 + (b[i] * p3 + b[i + 1] * p2 + b[i + 2] * HASH_P + b[i + 3]);
	for (; i < n; i++)
		h = h * HASH_P + b[i];
	return finish(h);
}

static inline __attribute__((always_inline)) uint64_t crash(uint64_t seed)
{
	volatile uint64_t *volatile p = NULL;

	*p = seed; /* SIGSEGV */
	return seed;
}

HOT uint64_t hot_fn(const uint8_t *b, size_t n, uint64_t seed)
{
	return hash_bytes(b, n, seed);
}

HOT uint64_t hot_fn__alt_fast(const uint8_t *b, size_t n, uint64_t seed)
{
	return hash_words(b, n, seed);
}

HOT uint64_t hot_fn__alt_wrong(const uint8_t *b, size_t n, uint64_t seed)
{
	return hash_words(b, n, seed) + 1;
}

HOT uint64_t hot_fn__alt_crash(const uint8_t *b, size_t n, uint64_t seed)
{
	(void)b;
	(void)n;
	return crash(seed);
}

#define PFE __attribute__((patchable_function_entry(16, 14)))

HOT PFE uint64_t hot_pfe(const uint8_t *b, size_t n, uint64_t seed)
{
	return hash_bytes(b, n, seed);
}

HOT uint64_t hot_pfe__alt_fast(const uint8_t *b, size_t n, uint64_t seed)
{
	return hash_words(b, n, seed);
}

HOT uint64_t hot_pfe__alt_wrong(const uint8_t *b, size_t n, uint64_t seed)
{
	return hash_words(b, n, seed) + 1;
}

HOT uint64_t hot_pfe__alt_crash(const uint8_t *b, size_t n, uint64_t seed)
{
	(void)b;
	(void)n;
	return crash(seed);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Calls f for every seed, 'rounds' times; returns the mean ns a call, or -1 when a result
 * differs from expected[] (check != 0) and fills expected[] otherwise. */
static double run_table(hot_func f, int rounds, int check)
{
	uint64_t t0 = now_ns();

	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < NSEEDS; i++) {
			uint64_t v = f(buf, bufsize, seeds[i]);

			if (!check)
				expected[i] = v;
			else if (v != expected[i])
				return -1;
		}
	}
	return (double)(now_ns() - t0) / (rounds * NSEEDS);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	unsigned int k = w->id * 17;

	for (;;) {
		unsigned int i = k++ % NSEEDS;
		uint64_t t0, t1, r;
		ssize_t ret;

		t0 = now_ns();
		/* Direct calls, so that they go through the patchable entry. */
		if (use_pfe)
			r = hot_pfe(buf, bufsize, seeds[i]);
		else
			r = hot_fn(buf, bufsize, seeds[i]);
		t1 = now_ns();
		if (r == expected[i]) {
			ret = write(devnull_fd, &r, sizeof(r));
		} else {
			ret = write(-1, &r, sizeof(r)); /* EBADF: the error homeostat sees */
			atomic_fetch_add_explicit(&w->errors, 1, memory_order_relaxed);
		}
		(void)ret;
		atomic_fetch_add_explicit(&w->ns, t1 - t0, memory_order_relaxed);
		atomic_fetch_add_explicit(&w->calls, 1, memory_order_relaxed);
	}
	return NULL;
}

/* Waits until the monotonic time 'deadline' (ns); returns the stop signal if one came. */
static int wait_until(const sigset_t *stop, uint64_t deadline)
{
	for (;;) {
		uint64_t now = now_ns();
		struct timespec ts;
		int sig;

		if (now >= deadline)
			return 0;
		ts.tv_sec = (deadline - now) / 1000000000ull;
		ts.tv_nsec = (deadline - now) % 1000000000ull;
		sig = sigtimedwait(stop, NULL, &ts);
		if (sig > 0)
			return sig;
		/* EAGAIN: time is up; EINTR: woken early (a ptrace stop, say): wait on. */
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: evolve [-t THREADS] [-f plain|pfe] [-s STATSFILE] [-n BUFSIZE]\n");
	exit(64);
}

int main(int argc, char **argv)
{
	uint64_t last_calls = 0, last_errors = 0, last_ns = 0, deadline, x = 1;
	const char *stats_path = NULL;
	double ns_direct, ns_fast;
	hot_func orig, fast;
	int nthreads = 4, opt;
	sigset_t stop;
	FILE *out = stdout;

	while ((opt = getopt(argc, argv, "t:f:s:n:")) != -1) {
		switch (opt) {
		case 't':
			nthreads = atoi(optarg);
			if (nthreads < 1 || nthreads > MAX_THREADS) {
				fprintf(stderr, "evolve: threads must be between 1 and %d\n",
					MAX_THREADS);
				return 64;
			}
			break;
		case 'f':
			if (!strcmp(optarg, "pfe"))
				use_pfe = 1;
			else if (strcmp(optarg, "plain"))
				usage();
			break;
		case 's':
			stats_path = optarg;
			break;
		case 'n':
			bufsize = strtoull(optarg, NULL, 0);
			if (bufsize < 64 || bufsize > (64u << 20)) {
				fprintf(stderr, "evolve: bufsize must be between 64 and %u\n",
					64u << 20);
				return 64;
			}
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (stats_path && !(out = fopen(stats_path, "a"))) {
		fprintf(stderr, "evolve: cannot open '%s': %s\n", stats_path, strerror(errno));
		return 1;
	}
	setvbuf(out, NULL, _IOLBF, 0);
	devnull_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	buf = malloc(bufsize);
	if (devnull_fd < 0 || !buf) {
		perror("evolve: setup");
		return 1;
	}
	for (size_t i = 0; i < bufsize; i++)
		buf[i] = splitmix64(&x);
	for (int i = 0; i < NSEEDS; i++)
		seeds[i] = splitmix64(&x);

	orig = use_pfe ? hot_pfe : hot_fn;
	fast = use_pfe ? hot_pfe__alt_fast : hot_fn__alt_fast;
	run_table(orig, 1, 0);
	ns_direct = run_table(orig, 4, 1);
	ns_fast = run_table(fast, 4, 1);
	if (ns_direct < 0 || ns_fast < 0 || run_table(use_pfe ? hot_fn : hot_pfe, 1, 1) < 0 ||
	    run_table(use_pfe ? hot_fn__alt_fast : hot_pfe__alt_fast, 1, 1) < 0) {
		fprintf(stderr, "evolve: self-test failed: the hot functions disagree\n");
		return 2;
	}

	/* Workers inherit the mask; only wait_until() takes the stop signals. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	for (int i = 0; i < nthreads; i++) {
		workers[i].id = i;
		if ((errno = pthread_create(&workers[i].thread, NULL, work, &workers[i]))) {
			perror("evolve: pthread_create");
			return 1;
		}
	}
	fprintf(out,
		"ready pid=%d threads=%d fn=%s addr=0x%" PRIxPTR
		" ns_per_call_direct=%.0f ns_per_call_fast=%.0f\n",
		getpid(), nthreads, use_pfe ? "hot_pfe" : "hot_fn", (uintptr_t)orig, ns_direct,
		ns_fast);

	deadline = now_ns();
	for (;;) {
		uint64_t calls = 0, errors = 0, ns = 0;

		deadline += 1000000000ull;
		if (wait_until(&stop, deadline))
			break;
		for (int i = 0; i < nthreads; i++) {
			calls += atomic_load_explicit(&workers[i].calls, memory_order_relaxed);
			errors += atomic_load_explicit(&workers[i].errors, memory_order_relaxed);
			ns += atomic_load_explicit(&workers[i].ns, memory_order_relaxed);
		}
		fprintf(out,
			"t=%lld calls=%" PRIu64 " errors=%" PRIu64
			" ns_per_call=%.0f total=%" PRIu64 " total_errors=%" PRIu64 "\n",
			(long long)time(NULL), calls - last_calls, errors - last_errors,
			calls > last_calls ? (double)(ns - last_ns) / (calls - last_calls) : 0.0,
			calls, errors);
		last_calls = calls;
		last_errors = errors;
		last_ns = ns;
	}
	fflush(out);
	return 0;
}
