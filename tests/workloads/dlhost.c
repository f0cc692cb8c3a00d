/* dlhost.c - a multi-threaded process that must keep working while a library is loaded into it
 * by a ptrace-driven dlopen() (issue 6, item 3; tests/integration/0520-redirect-dlopen.sh).
 *
 *   dlhost [-p FIFO] [-s STATSFILE]
 *       -p  the main thread reads lines from FIFO, opened read-write so that it blocks in
 *           read(2) when nobody writes and never sees end of file (default: a pipe of its
 *           own that nobody writes)
 *       -s  append the output to STATSFILE (default: stdout)
 *
 * Four threads, each exercising what an injected call may disturb:
 *   main     blocked in read(2) on the FIFO, the thread an injection takes first: the read
 *            must restart and return the bytes written later. For every line "ping N" it
 *            writes "pong N" at once. A failed read (EINTR: a restart that did not happen) is
 *            an error.
 *   compute  calls hot_fn() over a 4 KiB buffer with 16 seeds in turn and checks every result
 *            against the table computed at start (registers or stack clobbered would show).
 *   alloc    malloc/free churn on 64 live blocks of 16 bytes to 256 KiB (above the mmap
 *            threshold too, so malloc takes its locks and calls mmap/munmap), each filled with
 *            a pattern checked before it is freed.
 *   stats    sleeps 1 s in clock_nanosleep(2) (an interrupted sleep goes on through
 *            restart_syscall()), then appends a line; a sleep that ends 1.5 s or more after it
 *            began counts as late.
 * SIGUSR1 is counted by a handler installed with SA_RESTART, in the main thread only (the
 * others block it): a signal sent to the process during an injection into the main thread
 * is its, and must be handed back, once per signal sent, and the read must go on.
 * Output, line-buffered:
 *   ready pid=P main=TID compute=TID alloc=TID stats=TID
 *   pong N
 *   t=UNIX_S calls=C allocs=A reads=R last_ping=N usr1=U late=L errors=E total_calls=TC
 *     total_allocs=TA total_errors=TE
 * (one line), where C and A count the last second, R, N, U, L and the totals since start, E
 * the errors of the last second and TE all of them. SIGTERM: the default action. Exit 64 for
 * a usage error, 1 for a system error.
 */
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
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE  4096
#define NSEEDS	  16
#define NBLOCKS	  64
#define BLOCK_MAX (256u << 10)

static uint8_t buf[BUF_SIZE];
static uint64_t expected[NSEEDS];
static FILE *out;
static int in_fd = -1;
static _Atomic uint64_t calls, allocs, reads, last_ping, late, errors, usr1;
static _Atomic pid_t tid_compute, tid_alloc, tid_stats;

__attribute__((noinline, noipa)) uint64_t hot_fn(const uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t h = 0xcbf29ce484222325ull ^ seed;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static pid_t gettid_(void)
{
	return (pid_t)syscall(SYS_gettid);
}

static void *compute(void *arg)
{
	(void)arg;
	tid_compute = gettid_();
	for (unsigned i = 0;; i = (i + 1) % NSEEDS) {
		if (hot_fn(buf, sizeof(buf), i) != expected[i])
			errors++;
		calls++;
	}
	return NULL;
}

static uint8_t pattern(uintptr_t slot, size_t size)
{
	return (uint8_t)(slot * 31 + size);
}

static void *alloc(void *arg)
{
	uint8_t *block[NBLOCKS] = {0};
	size_t size[NBLOCKS] = {0};
	uint64_t x = 88172645463325252ull;

	(void)arg;
	tid_alloc = gettid_();
	for (;;) {
		unsigned k;
		size_t n;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		k = (unsigned)(x % NBLOCKS);
		if (block[k]) {
			uint8_t want = pattern(k, size[k]);

			/* first, last and middle bytes: a block written over shows */
			if (block[k][0] != want || block[k][size[k] - 1] != want ||
			    block[k][size[k] / 2] != want)
				errors++;
			free(block[k]);
		}
		/* mostly small, one in 16 large */
		n = (x >> 8) % 16 ? 16 + (x >> 16) % 4096 : 16 + (x >> 16) % BLOCK_MAX;
		block[k] = malloc(n);
		if (!block[k]) {
			errors++;
			size[k] = 0;
			continue;
		}
		size[k] = n;
		memset(block[k], pattern(k, n), n);
		allocs++;
	}
	return NULL;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *stats(void *arg)
{
	uint64_t c0 = 0, a0 = 0, e0 = 0;

	(void)arg;
	tid_stats = gettid_();
	for (;;) {
		struct timespec one = {1, 0};
		int64_t t0 = mono_ms();
		uint64_t c, a, e;

		/* relative: an interruption without a handler goes on through restart_syscall();
		 * SIGUSR1's handler makes it return EINTR, and the rest is slept */
		while (clock_nanosleep(CLOCK_MONOTONIC, 0, &one, &one) == EINTR)
			;
		if (mono_ms() - t0 >= 1500)
			late++;
		c = calls, a = allocs, e = errors;
		fprintf(out,
			"t=%lld calls=%" PRIu64 " allocs=%" PRIu64 " reads=%" PRIu64
			" last_ping=%" PRIu64 " usr1=%" PRIu64 " late=%" PRIu64 " errors=%" PRIu64
			" total_calls=%" PRIu64 " total_allocs=%" PRIu64 " total_errors=%" PRIu64
			"\n",
			(long long)time(NULL), c - c0, a - a0, (uint64_t)reads, (uint64_t)last_ping,
			(uint64_t)usr1, (uint64_t)late, e - e0, c, a, e);
		c0 = c, a0 = a, e0 = e;
	}
	return NULL;
}

static void on_usr1(int sig)
{
	(void)sig;
	usr1++;
}

static void usage(void)
{
	fprintf(stderr, "usage: dlhost [-p FIFO] [-s STATSFILE]\n");
	exit(64);
}

int main(int argc, char **argv)
{
	const char *fifo = NULL, *statsfile = NULL;
	void *(*fns[])(void *) = {compute, alloc, stats};
	char line[256];
	sigset_t usr1_set;
	size_t have = 0;
	int opt, p[2];

	while ((opt = getopt(argc, argv, "p:s:")) != -1) {
		if (opt == 'p')
			fifo = optarg;
		else if (opt == 's')
			statsfile = optarg;
		else
			usage();
	}
	if (optind != argc)
		usage();
	out = statsfile ? fopen(statsfile, "ae") : stdout;
	if (!out) {
		perror(statsfile);
		return 1;
	}
	setvbuf(out, NULL, _IOLBF, 0);
	{
		struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_RESTART};

		sigemptyset(&sa.sa_mask);
		sigaction(SIGUSR1, &sa, NULL);
	}
	if (fifo) {
		in_fd = open(fifo, O_RDWR | O_CLOEXEC);
		if (in_fd < 0) {
			perror(fifo);
			return 1;
		}
	} else {
		if (pipe(p)) {
			perror("pipe");
			return 1;
		}
		in_fd = p[0];
	}
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	for (unsigned i = 0; i < NSEEDS; i++)
		expected[i] = hot_fn(buf, sizeof(buf), i);
	sigemptyset(&usr1_set);
	sigaddset(&usr1_set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1_set, NULL); /* inherited by the threads */
	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		pthread_t t;
		int r = pthread_create(&t, NULL, fns[i], NULL);

		if (r) {
			fprintf(stderr, "pthread_create: %s\n", strerror(r));
			return 1;
		}
	}
	pthread_sigmask(SIG_UNBLOCK, &usr1_set, NULL);
	while (!tid_compute || !tid_alloc || !tid_stats)
		usleep(1000);
	fprintf(out, "ready pid=%d main=%d compute=%d alloc=%d stats=%d\n", (int)getpid(),
		(int)gettid_(), (int)tid_compute, (int)tid_alloc, (int)tid_stats);

	for (;;) {
		ssize_t n = read(in_fd, line + have, sizeof(line) - 1 - have);
		char *nl;

		if (n < 0) {
			errors++;
			if (errno != EINTR) {
				perror("read");
				return 1;
			}
			continue;
		}
		if (n == 0) /* only with a pipe whose writer went away */
			pause();
		have += (size_t)n;
		line[have] = '\0';
		while ((nl = strchr(line, '\n'))) {
			unsigned long long v;

			*nl = '\0';
			reads++;
			if (sscanf(line, "ping %llu", &v) == 1) {
				last_ping = v;
				fprintf(out, "pong %llu\n", v);
			}
			have -= (size_t)(nl + 1 - line);
			memmove(line, nl + 1, have + 1);
		}
		if (have == sizeof(line) - 1)
			have = 0; /* a line too long: dropped */
	}
}
