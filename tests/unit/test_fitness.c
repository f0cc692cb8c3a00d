/* test_fitness.c - unit tests of agent/fitness/ and the fitness history of agent/memory/: the
 * formulas on constructed snapshots with exact expected scores (SLO met, SLO breached by 2x,
 * a baseline learning then breached, an idle target, weights normalised, errnos that are not
 * errors), the downsampling into rows, the time-range query and pruning, targets that keep
 * their baselines across a reload, and migration 1 -> 2 of an existing database.
 *
 * Latencies are built so that their p99 is exact: 99 samples in log2 slot k and one in slot
 * 25 put the 99th percentile at the top of slot k, 2^(k+1) ns.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "fitness/fitness.h"
#include "memory/internal.h"
#include "memory/memory.h"
#include "safety/policy.h"

#define EPS 1e-12
#define MIB 1048576ull

/* Asserts a == b within EPS, printing both when not (cmocka's float assert rounds). */
#define assert_score(a, b)                                                                         \
	do {                                                                                       \
		double _a = (a), _b = (b);                                                         \
		if (!(fabs(_a - _b) <= EPS)) {                                                     \
			print_error("%.17g != %.17g\n", _a, _b);                                   \
			fail();                                                                    \
		}                                                                                  \
	} while (0)
#define assert_nan(a) assert_true(isnan(a))

/* What one target does in one tick. lat_slot/rq_slot: p99 at 2^(slot+1) ns; 0: no samples. */
struct load {
	int lat_slot, rq_slot;
	uint64_t calls;
	uint64_t ebadf, enoent; /* failures by errno */
	double rate;		/* syscalls per second */
	uint64_t rss;
};

static const struct load healthy = {
    .lat_slot = 20, .rq_slot = 10, .calls = 1000, .rate = 1000, .rss = 100 * MIB};

static void put_p99(struct obs_hist *h, int slot)
{
	memset(h, 0, sizeof(*h));
	if (!slot)
		return;
	h->slots[slot] = 99;
	h->slots[25] = 1;
	h->count = 100;
}

static void fill(struct obs_target_snap *t, int index, const char *name, uint32_t nprocs,
		 const struct load *l)
{
	memset(t, 0, sizeof(*t));
	t->index = index;
	t->name = name;
	t->nprocs = nprocs;
	put_p99(&t->sc_lat_window, l->lat_slot);
	put_p99(&t->rq_lat_window, l->rq_slot);
	t->sc_count = l->calls;
	t->sc_errors = l->ebadf + l->enoent;
	t->sc_rate = l->rate;
	if (l->ebadf)
		t->top_errnos[t->n_errnos++] = (struct obs_errno_count){EBADF, l->ebadf};
	if (l->enoent)
		t->top_errnos[t->n_errnos++] = (struct obs_errno_count){ENOENT, l->enoent};
	t->rss_bytes = l->rss;
}

static const struct safe_fitness weights = {
    .latency = 0.4, .errors = 0.3, .throughput = 0.2, .cost = 0.1};

/* Formulas */

static void test_normalize(void **state)
{
	assert_score(fit_normalize_lower(1, 1), 1);
	assert_score(fit_normalize_lower(0.5, 1), 1);
	assert_score(fit_normalize_lower(2, 1), 0.5);
	assert_score(fit_normalize_lower(10, 1), 0.1);
	assert_score(fit_normalize_lower(1, 0), 0);
	assert_score(fit_normalize_lower(0, 0), 1);
	assert_nan(fit_normalize_lower(NAN, 1));
	assert_score(fit_normalize_higher(1000, 1000), 1);
	assert_score(fit_normalize_higher(2000, 1000), 1);
	assert_score(fit_normalize_higher(500, 1000), 0.5);
	assert_score(fit_normalize_higher(0, 1000), 0);
	assert_score(fit_normalize_higher(0, 0), 1);
	assert_nan(fit_normalize_higher(NAN, 1));
	assert_string_equal(fit_basis_name(FIT_BASIS_SLO), "slo");
	assert_string_equal(fit_basis_name(FIT_BASIS_BASELINE), "baseline");
	assert_string_equal(fit_basis_name(FIT_BASIS_LEARNING), "learning");
	assert_string_equal(fit_basis_name(FIT_BASIS_IDLE), "idle");
	assert_null(fit_basis_name(FIT_BASIS_COUNT));
	assert_string_equal(fit_part_name(FIT_PART_THROUGHPUT), "throughput");
	assert_string_equal(fit_signal_name(FIT_SIG_ERRORS), "error_ratio");
}

static void test_errno_table(void **state)
{
	static const int normal[] = {EAGAIN, EWOULDBLOCK, EINTR,       ENOENT, ENODATA,
				     ENOTTY, ETIMEDOUT,	  EINPROGRESS, EEXIST, ECHILD,
				     ENOSYS, 512,	  513,	       514,    516};
	static const int errors[] = {
	    EBADF,  EFAULT, EINVAL, EIO,	ENOMEM,	      ENOSPC,	    EMFILE,	ENFILE,
	    EACCES, EPERM,  EPIPE,  ECONNRESET, ECONNREFUSED, EHOSTUNREACH, EOPNOTSUPP, ESRCH};

	for (size_t i = 0; i < ARRAY_SIZE(normal); i++)
		assert_false(fit_errno_is_error(normal[i]));
	for (size_t i = 0; i < ARRAY_SIZE(errors); i++)
		assert_true(fit_errno_is_error(errors[i]));
}

static void test_signal_values(void **state)
{
	struct obs_target_snap t;
	struct load l = healthy;
	double v[FIT_SIG_COUNT];

	l.ebadf = 20;
	l.enoent = 300; /* not errors: only the 20 EBADF count */
	fill(&t, 1, "web", 1, &l);
	fit_signal_values(&t, v);
	assert_score(v[FIT_SIG_SYSCALL_P99], 2.097152); /* 2^21 ns */
	assert_score(v[FIT_SIG_RUNQ_P99], 0.002048);	/* 2^11 ns */
	assert_true(v[FIT_SIG_ERRORS] == 0.02);
	assert_true(v[FIT_SIG_RATE] == 1000);
	assert_true(v[FIT_SIG_RSS] == 100.0 * MIB);

	/* No samples, too few calls, no memory: no data, which is not 0. */
	l = (struct load){.calls = FIT_MIN_CALLS - 1, .ebadf = 5, .rate = 9.5};
	fill(&t, 1, "web", 1, &l);
	fit_signal_values(&t, v);
	assert_nan(v[FIT_SIG_SYSCALL_P99]);
	assert_nan(v[FIT_SIG_RUNQ_P99]);
	assert_nan(v[FIT_SIG_ERRORS]);
	assert_true(v[FIT_SIG_RATE] == 9.5);
	assert_nan(v[FIT_SIG_RSS]);
	l.calls = FIT_MIN_CALLS;
	fill(&t, 1, "web", 1, &l);
	fit_signal_values(&t, v);
	assert_score(v[FIT_SIG_ERRORS], 0.25);
}

static void test_slo_met(void **state)
{
	const struct safe_slo slo = {.p99_latency_ms = 3, .error_rate = 0.01, .throughput = 1000};
	struct fit_baseline base[FIT_SIG_COUNT] = {0};
	struct obs_target_snap t;
	struct load l = healthy;
	struct fit_score s;

	l.ebadf = 10; /* 1 %: exactly the SLO still meets it */
	fill(&t, 1, "web", 2, &l);
	fit_score_target(base, &t, &slo, &weights, 1000, &s);
	assert_true(s.score == 1.0);
	assert_int_equal(s.basis, FIT_BASIS_SLO);
	assert_true(s.part[FIT_PART_LATENCY].score == 1.0);
	assert_int_equal(s.part[FIT_PART_LATENCY].basis, FIT_BASIS_SLO);
	assert_true(s.sig[FIT_SIG_SYSCALL_P99].ref == 3.0);
	assert_int_equal(s.sig[FIT_SIG_RUNQ_P99].basis, FIT_BASIS_LEARNING);
	assert_true(s.part[FIT_PART_ERRORS].score == 1.0);
	assert_true(s.part[FIT_PART_THROUGHPUT].score == 1.0);
	/* RSS has no SLO: its baseline is still learning, so cost is left out. */
	assert_nan(s.part[FIT_PART_COST].score);
	assert_int_equal(s.part[FIT_PART_COST].basis, FIT_BASIS_LEARNING);
	assert_true(base[FIT_SIG_RSS].learned_s == 1.0);
	assert_true(base[FIT_SIG_RSS].mean == 100.0 * MIB);
}

static void test_slo_breached_2x(void **state)
{
	const struct safe_slo slo = {.p99_latency_ms = 1, .error_rate = 0.01, .throughput = 1000};
	struct fit_baseline base[FIT_SIG_COUNT] = {0};
	struct obs_target_snap t;
	struct load l = healthy;
	struct fit_score s;

	l.ebadf = 20;	/* 2 % against 1 % */
	l.enoent = 500; /* not errors */
	l.rate = 500;	/* half of 1000/s */
	fill(&t, 1, "web", 2, &l);
	fit_score_target(base, &t, &slo, &weights, 1000, &s);
	assert_true(s.part[FIT_PART_ERRORS].score == 0.5);
	assert_true(s.part[FIT_PART_THROUGHPUT].score == 0.5);
	/* p99 2.097152 ms against 1 ms */
	assert_score(s.part[FIT_PART_LATENCY].score, 0.476837158203125);
	assert_score(s.score, (0.4 * 0.476837158203125 + 0.3 * 0.5 + 0.2 * 0.5) / 0.9);
	assert_int_equal(s.basis, FIT_BASIS_SLO);

	/* Ten times the error SLO is 0.1. */
	l.ebadf = 100;
	fill(&t, 1, "web", 2, &l);
	fit_score_target(base, &t, &slo, &weights, 1000, &s);
	assert_score(s.part[FIT_PART_ERRORS].score, 0.1);
}

/* Feeds n ticks of 1 s of l to the baselines of one target without SLO. */
static void feed(struct fit_baseline *base, const struct load *l, int n, struct fit_score *s)
{
	struct obs_target_snap t;

	for (int i = 0; i < n; i++) {
		fill(&t, 1, "web", 1, l);
		fit_score_target(base, &t, NULL, &weights, 1000, s);
	}
}

static void test_baseline_learning_then_breach(void **state)
{
	struct fit_baseline base[FIT_SIG_COUNT] = {0};
	struct load l = healthy;
	struct fit_score s;

	/* 29 s of data: still learning, no score, and that is not a failure. */
	feed(base, &healthy, FIT_WARMUP_MS / 1000 - 1, &s);
	assert_nan(s.score);
	assert_int_equal(s.basis, FIT_BASIS_LEARNING);
	for (int p = 0; p < FIT_PART_COUNT; p++) {
		assert_nan(s.part[p].score);
		assert_int_equal(s.part[p].basis, FIT_BASIS_LEARNING);
	}
	/* 30 s: the last tick of the warm-up, judged before it is learned. */
	feed(base, &healthy, 1, &s);
	assert_int_equal(s.basis, FIT_BASIS_LEARNING);
	assert_true(base[FIT_SIG_SYSCALL_P99].learned_s == 30.0);
	assert_score(base[FIT_SIG_SYSCALL_P99].mean, 2.097152);
	/* Warm: every part against its baseline, all healthy. */
	feed(base, &healthy, 1, &s);
	assert_true(s.score == 1.0);
	assert_int_equal(s.basis, FIT_BASIS_BASELINE);
	assert_score(s.sig[FIT_SIG_SYSCALL_P99].ref, 4.194304); /* 2x */
	assert_score(s.sig[FIT_SIG_RUNQ_P99].ref, 1.002048);	/* + 1 ms */
	assert_score(s.sig[FIT_SIG_ERRORS].ref, 0.001);		/* + 0.1 % */
	assert_score(s.sig[FIT_SIG_RATE].ref, 100);		/* a tenth */
	assert_score(s.sig[FIT_SIG_RSS].ref, 150.0 * MIB);	/* 1.5x */
	assert_true(base[FIT_SIG_SYSCALL_P99].learned_s == 31.0);

	/* Breach: p99 4x (8.388608 ms), errors 0.4 %, a twentieth of the rate, RSS 3x. */
	l.lat_slot = 22;
	l.ebadf = 4;
	l.rate = 50;
	l.rss = 300 * MIB;
	feed(base, &l, 1, &s);
	assert_int_equal(s.basis, FIT_BASIS_BASELINE);
	assert_true(s.part[FIT_PART_LATENCY].score == 0.5);
	assert_score(s.part[FIT_PART_ERRORS].score, 0.25);
	assert_score(s.part[FIT_PART_THROUGHPUT].score, 0.5);
	assert_true(s.part[FIT_PART_COST].score == 0.5);
	assert_score(s.score, 0.4 * 0.5 + 0.3 * 0.25 + 0.2 * 0.5 + 0.1 * 0.5);
	/* A breach is never learned: the baselines stay where they were. */
	assert_true(base[FIT_SIG_SYSCALL_P99].learned_s == 31.0);
	assert_score(base[FIT_SIG_SYSCALL_P99].mean, 2.097152);
	assert_true(base[FIT_SIG_RSS].mean == 100.0 * MIB);
	assert_true(base[FIT_SIG_ERRORS].mean == 0);

	/* Run-queue starvation alone: latency is the worse of the two. */
	l = healthy;
	l.rq_slot = 21; /* 4.194304 ms against 1.002048 */
	feed(base, &l, 1, &s);
	assert_score(s.part[FIT_PART_LATENCY].score, 1.002048 / 4.194304);
	assert_true(s.sig[FIT_SIG_SYSCALL_P99].score == 1.0);

	/* A healthy value within the tolerance is learned with the EWMA. */
	l = healthy;
	l.rss = 110 * MIB;
	feed(base, &l, 1, &s);
	assert_true(s.part[FIT_PART_COST].score == 1.0);
	assert_score(base[FIT_SIG_RSS].mean,
		     100.0 * MIB + 10.0 * MIB * -expm1(-1000.0 / FIT_BASELINE_TAU_MS));
}

static void test_idle_target(void **state)
{
	const struct safe_slo slo = {.error_rate = 0.01};
	struct fit_baseline base[FIT_SIG_COUNT] = {0};
	struct obs_target_snap t;
	struct load l = healthy;
	struct fit_score s;

	/* A policy target without members: idle, whatever else the snapshot says. */
	l.ebadf = 500;
	fill(&t, 3, "batch", 0, &l);
	fit_score_target(base, &t, &slo, &weights, 1000, &s);
	assert_nan(s.score);
	assert_int_equal(s.basis, FIT_BASIS_IDLE);
	for (int p = 0; p < FIT_PART_COUNT; p++) {
		assert_nan(s.part[p].score);
		assert_int_equal(s.part[p].basis, FIT_BASIS_IDLE);
	}
	for (int i = 0; i < FIT_SIG_COUNT; i++)
		assert_true(base[i].learned_s == 0);

	/* Nothing at all (no calls, no samples, no memory) is idle for the host too, but a
	 * throughput of 0 is data. */
	fill(&t, -1, "host", 0, &(struct load){0});
	fit_score_target(base, &t, &slo, &weights, 1000, &s);
	assert_int_equal(s.part[FIT_PART_ERRORS].basis, FIT_BASIS_IDLE);
	assert_int_equal(s.part[FIT_PART_LATENCY].basis, FIT_BASIS_IDLE);
	assert_int_equal(s.part[FIT_PART_THROUGHPUT].basis, FIT_BASIS_LEARNING);
	assert_int_equal(s.basis, FIT_BASIS_LEARNING);
}

static void test_weights_normalised(void **state)
{
	const struct safe_slo slo = {.p99_latency_ms = 1, .error_rate = 0.01, .throughput = 1000};
	const struct safe_fitness doubled = {0.8, 0.6, 0.4, 0.2};
	const struct safe_fitness errors_only = {0, 1, 0, 0};
	struct fit_baseline base[FIT_SIG_COUNT] = {0};
	struct obs_target_snap t;
	struct load l = healthy;
	struct fit_score a, b, c, d;
	double v[FIT_SIG_COUNT];

	l.ebadf = 20;
	l.rate = 500;
	fill(&t, 1, "web", 1, &l);
	fit_signal_values(&t, v);
	fit_evaluate(v, false, &slo, &weights, base, &a);
	fit_evaluate(v, false, &slo, &doubled, base, &b);
	fit_evaluate(v, false, &slo, NULL, base, &c); /* the policy's defaults */
	assert_score(a.score, (0.4 * 0.476837158203125 + 0.3 * 0.5 + 0.2 * 0.5) / 0.9);
	assert_score(b.score, a.score);
	assert_score(c.score, a.score);
	fit_evaluate(v, false, &slo, &errors_only, base, &d);
	assert_true(d.score == 0.5);
	/* Parts of weight 0 are still computed, for explain, but not part of the score. */
	assert_score(d.part[FIT_PART_LATENCY].score, 0.476837158203125);
	/* Without an SLO for it, a weight-0 part's learning does not make the target learn. */
	fit_evaluate(v, false, &(struct safe_slo){.error_rate = 0.01}, &errors_only, base, &d);
	assert_int_equal(d.basis, FIT_BASIS_SLO);
	assert_int_equal(d.part[FIT_PART_LATENCY].basis, FIT_BASIS_LEARNING);
}

/* History: buckets in the memory database */

struct fixture {
	char dir[64];
	char path[128];
	struct mem *m;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_fitness.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/memory.db", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char p[160];

	mem_close(f->m);
	unlink(f->path);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->path);
	unlink(p);
	rmdir(f->dir);
	free(f);
	return 0;
}

#define T0 1700000000000LL /* wall clock of the first tick */

struct rows {
	struct mem_fitness_row v[16];
	int n;
};

static int collect(const struct mem_fitness_row *r, void *ud)
{
	struct rows *rs = ud;

	if (rs->n == (int)ARRAY_SIZE(rs->v))
		return -E2BIG;
	rs->v[rs->n++] = *r;
	return 0;
}

static void assert_row(const struct mem_fitness_row *r, int first, int last, int64_t scored,
		       double min, double avg, double max, const char *basis)
{
	assert_int_equal(r->start_at, T0 + first * 1000);
	assert_int_equal(r->end_at, T0 + last * 1000);
	assert_int_equal(r->samples, last - first + 1);
	assert_int_equal(r->scored, scored);
	if (isnan(avg)) {
		assert_nan(r->score_min);
		assert_nan(r->score_avg);
		assert_nan(r->score_max);
	} else {
		assert_score(r->score_min, min);
		assert_score(r->score_avg, avg);
		assert_score(r->score_max, max);
	}
	assert_string_equal(r->basis, basis);
}

/* One tick at T0 + k s: the host, "web" (1 % error SLO) with load l, "batch" without
 * members, and the rest of the host. */
static void tick(struct fit *fit, struct mem *m, const struct safe_policy *p, int k,
		 const struct load *l)
{
	static struct obs_snapshot s;

	memset(&s, 0, sizeof(s));
	s.at_ms = 5000 + k * 1000;
	s.tick = k;
	s.elapsed_ms = 1000;
	s.ntargets = 3;
	s.syscalls_valid = s.runq_valid = s.lifecycle_valid = true;
	fill(&s.host, -1, "host", 0, &healthy);
	fill(&s.t[0], 0, "other", 0, &healthy);
	fill(&s.t[1], 1, p->targets[0].name, 1, l);
	fill(&s.t[2], 2, p->targets[1].name, 0, &(struct load){0});
	assert_int_equal(fit_tick(fit, &s, p, m, T0 + k * 1000), 0);
}

static void test_history(void **state)
{
	struct fixture *f = *state;
	struct safe_target targets[] = {
	    {.name = "web", .comm = "web", .slo = {.error_rate = 0.01}},
	    {.name = "batch", .comm = "batch"},
	};
	struct safe_policy p = {.fitness = weights, .targets = targets, .n_targets = 2};
	struct load failing = healthy;
	struct mem_fitness_summary sum;
	struct rows rs = {0};
	struct fit *fit;
	const struct fit_score *sc;

	failing.ebadf = 20; /* 2 %: errors 0.5, the only part scored yet */
	assert_int_equal(mem_open(f->path, &f->m), 0);
	assert_int_equal(fit_open(&fit), 0);
	for (int k = 0; k < 15; k++)
		tick(fit, f->m, &p, k, &healthy);
	sc = fit_lookup(fit, "web");
	assert_non_null(sc);
	assert_true(sc->score == 1.0);
	assert_int_equal(sc->basis, FIT_BASIS_SLO);
	assert_null(fit_lookup(fit, "nosuch"));
	assert_int_equal(fit_lookup(fit, "batch")->basis, FIT_BASIS_IDLE);
	assert_int_equal(fit_lookup(fit, "host")->basis, FIT_BASIS_LEARNING);
	/* The first bucket closed at 10 s. */
	assert_int_equal(mem_fitness_range(f->m, "web", 0, INT64_MAX, collect, &rs), 1);
	assert_row(&rs.v[0], 0, 9, 10, 1, 1, 1, "slo");
	assert_score(rs.v[0].errors, 1);
	assert_nan(rs.v[0].latency); /* learning: no score */

	/* The score drops by more than FIT_BUCKET_DELTA: a new row at once, not at 20 s. */
	for (int k = 15; k < 20; k++)
		tick(fit, f->m, &p, k, &failing);
	assert_score(fit_lookup(fit, "web")->score, 0.5);
	for (int k = 20; k < 25; k++)
		tick(fit, f->m, &p, k, &healthy);
	fit_close(fit, f->m);

	rs.n = 0;
	assert_int_equal(mem_fitness_range(f->m, "web", 0, INT64_MAX, collect, &rs), 4);
	assert_row(&rs.v[0], 0, 9, 10, 1, 1, 1, "slo");
	assert_row(&rs.v[1], 10, 14, 5, 1, 1, 1, "slo");
	assert_row(&rs.v[2], 15, 19, 5, 0.5, 0.5, 0.5, "slo");
	assert_score(rs.v[2].errors, 0.5);
	assert_row(&rs.v[3], 20, 24, 5, 1, 1, 1, "slo");
	assert_string_equal(rs.v[3].target, "web");
	/* Idle and learning targets have rows too, without scores. */
	rs.n = 0;
	assert_int_equal(mem_fitness_range(f->m, "batch", 0, INT64_MAX, collect, &rs), 3);
	assert_row(&rs.v[0], 0, 9, 0, NAN, NAN, NAN, "idle");
	assert_row(&rs.v[2], 20, 24, 0, NAN, NAN, NAN, "idle");
	rs.n = 0;
	assert_int_equal(mem_fitness_range(f->m, "host", 0, INT64_MAX, collect, &rs), 3);
	assert_row(&rs.v[1], 10, 19, 0, NAN, NAN, NAN, "learning");

	/* The range query: rows that overlap [12 s, 16 s], oldest first. */
	rs.n = 0;
	assert_int_equal(mem_fitness_range(f->m, "web", T0 + 12000, T0 + 16000, collect, &rs), 2);
	assert_row(&rs.v[0], 10, 14, 5, 1, 1, 1, "slo");
	assert_row(&rs.v[1], 15, 19, 5, 0.5, 0.5, 0.5, "slo");
	rs.n = 0;
	assert_int_equal(mem_fitness_range(f->m, "web", T0 + 14001, T0 + 14999, collect, &rs), 0);
	assert_int_equal(mem_fitness_summary(f->m, "web", T0 + 15000, T0 + 19000, &sum), 0);
	assert_int_equal(sum.rows, 1);
	assert_true(sum.avg == 0.5);
	assert_int_equal(mem_fitness_summary(f->m, "web", 0, INT64_MAX, &sum), 0);
	assert_int_equal(sum.rows, 4);
	assert_int_equal(sum.samples, 25);
	assert_int_equal(sum.scored, 25);
	assert_true(sum.min == 0.5);
	assert_true(sum.max == 1.0);
	assert_score(sum.avg, (20 * 1.0 + 5 * 0.5) / 25);
	assert_int_equal(mem_fitness_summary(f->m, "batch", 0, INT64_MAX, &sum), 0);
	assert_int_equal(sum.rows, 3);
	assert_int_equal(sum.scored, 0);
	assert_nan(sum.avg);
	assert_nan(sum.min);
	assert_int_equal(mem_fitness_summary(f->m, "nosuch", 0, INT64_MAX, &sum), 0);
	assert_int_equal(sum.rows, 0);
	assert_nan(sum.avg);

	/* Pruning: rows that ended before 15 s, in batches. web 2, batch, host, other 1 each. */
	assert_int_equal(mem_fitness_prune(f->m, T0 + 15000, 1), 1);
	assert_int_equal(mem_fitness_prune(f->m, T0 + 15000, 100), 4);
	assert_int_equal(mem_fitness_prune(f->m, T0 + 15000, 100), 0);
	rs.n = 0;
	assert_int_equal(mem_fitness_range(f->m, "web", 0, INT64_MAX, collect, &rs), 2);
	assert_row(&rs.v[0], 15, 19, 5, 0.5, 0.5, 0.5, "slo");
	assert_int_equal(mem_fitness_prune(f->m, 0, 0), -EINVAL);
}

static void test_history_bad_rows(void **state)
{
	struct fixture *f = *state;
	struct mem_fitness_row good = {.target = "web",
				       .start_at = 1000,
				       .end_at = 2000,
				       .samples = 2,
				       .scored = 1,
				       .score_min = 0.5,
				       .score_avg = 0.5,
				       .score_max = 0.5,
				       .latency = NAN,
				       .errors = 0.5,
				       .throughput = NAN,
				       .cost = NAN,
				       .basis = "slo"};
	struct mem_fitness_row rows[2] = {good, good};
	struct mem_fitness_summary sum;

	assert_int_equal(mem_open(f->path, &f->m), 0);
	rows[1].basis = "guess";
	assert_int_equal(mem_fitness_record(f->m, rows, 2), -EINVAL);
	assert_string_equal(mem_last_error(f->m),
			    "fitness row of 'web' has an unknown basis 'guess'");
	rows[1] = good;
	rows[1].end_at = 999;
	assert_int_equal(mem_fitness_record(f->m, rows, 2), -EINVAL);
	assert_string_equal(mem_last_error(f->m),
			    "fitness row of 'web' is malformed: 1000..999, 1 of 2 samples scored");
	rows[1] = good;
	rows[1].scored = 3;
	assert_int_equal(mem_fitness_record(f->m, rows, 2), -EINVAL);
	rows[1] = good;
	rows[1].target = "";
	assert_int_equal(mem_fitness_record(f->m, rows, 2), -EINVAL);
	assert_string_equal(mem_last_error(f->m), "fitness row without a target");
	/* Nothing of a refused batch was written. */
	assert_int_equal(mem_fitness_summary(f->m, "web", 0, INT64_MAX, &sum), 0);
	assert_int_equal(sum.rows, 0);
	assert_int_equal(mem_fitness_record(f->m, rows, 0), 0);
	assert_int_equal(mem_fitness_record(f->m, &good, 1), 0);
	assert_int_equal(mem_fitness_summary(f->m, "web", 0, INT64_MAX, &sum), 0);
	assert_int_equal(sum.rows, 1);
	assert_int_equal(mem_fitness_range(f->m, "web", 0, 1, collect, NULL), 0);
	assert_int_equal(mem_fitness_range(f->m, "web", 0, INT64_MAX, NULL, NULL), -EINVAL);
}

/* A reload that reorders targets keeps their baselines: found by name, not index. */
static void test_reload_keeps_baselines(void **state)
{
	struct safe_target before[] = {{.name = "web"}, {.name = "batch"}};
	struct safe_target after[] = {{.name = "api"}, {.name = "web"}};
	struct safe_policy p = {.fitness = weights, .targets = before, .n_targets = 2};
	static struct obs_snapshot s;
	struct fit *fit;
	struct load l = healthy;

	assert_int_equal(fit_open(&fit), 0);
	for (int k = 0; k <= FIT_WARMUP_MS / 1000; k++)
		tick(fit, NULL, &p, k, &healthy);
	assert_int_equal(fit_lookup(fit, "web")->basis, FIT_BASIS_BASELINE);
	p.targets = after;
	memset(&s, 0, sizeof(s));
	s.elapsed_ms = 1000;
	s.ntargets = 3;
	s.syscalls_valid = s.runq_valid = true;
	fill(&s.host, -1, "host", 0, &healthy);
	fill(&s.t[0], 0, "other", 0, &healthy);
	fill(&s.t[1], 1, "api", 1, &healthy);
	l.ebadf = 4; /* 0.4 % against the learned 0 + 0.1 % */
	fill(&s.t[2], 2, "web", 1, &l);
	assert_int_equal(fit_tick(fit, &s, &p, NULL, T0 + 40000), 0);
	assert_int_equal(fit_lookup(fit, "web")->basis, FIT_BASIS_BASELINE);
	assert_score(fit_lookup(fit, "web")->part[FIT_PART_ERRORS].score, 0.25);
	assert_int_equal(fit_lookup(fit, "api")->basis, FIT_BASIS_LEARNING);
	fit_close(fit, NULL);
}

/* Migration 1 -> 2 on an existing version 1 database keeps its rows. */
static void test_migration_1_to_2(void **state)
{
	struct fixture *f = *state;
	static const struct mem_change c = {
	    .kind = MEM_KIND_SYSCTL,
	    .target = "web",
	    .knob = "net.core.somaxconn",
	    .before = "4096",
	    .after = "8192",
	    .why = "listen queue overflows",
	};
	_cleanup_(mem_change_freep) struct mem_change *got = NULL;
	struct mem_fitness_row row = {.target = "web",
				      .start_at = 1,
				      .end_at = 1,
				      .samples = 1,
				      .score_min = NAN,
				      .score_avg = NAN,
				      .score_max = NAN,
				      .latency = NAN,
				      .errors = NAN,
				      .throughput = NAN,
				      .cost = NAN,
				      .basis = "learning"};
	struct mem_fitness_summary sum;
	struct mem *m;

	assert_int_equal(mem_open_migrations(f->path, mem_migrations, 1, &m), 0);
	assert_int_equal(mem_schema_version(m), 1);
	/* The change as version 1 code wrote it (this code writes columns of migration 3). */
	assert_int_equal(
	    sqlite3_exec(m->db,
			 "INSERT INTO changes (created_at, updated_at, acted_at, kind,"
			 " target, knob, before, after, why, fingerprint, state) VALUES"
			 " (1, 1, 1, 'sysctl', 'web', 'net.core.somaxconn', '4096',"
			 " '8192', 'listen queue overflows', 'fp', 'INTENT')",
			 NULL, NULL, NULL),
	    SQLITE_OK);
	assert_int_equal(mem_fitness_record(m, &row, 1), -EIO); /* no table yet */
	mem_close(m);

	assert_int_equal(mem_open(f->path, &f->m), 0);
	assert_int_equal(mem_schema_version(f->m), MEM_SCHEMA_VERSION);
	assert_int_equal(mem_change_get(f->m, 1, &got), 0);
	assert_string_equal(got->knob, "net.core.somaxconn");
	assert_int_equal(got->state, MEM_STATE_INTENT);
	assert_int_equal(mem_change_intent(f->m, &c), 2);
	assert_int_equal(mem_fitness_record(f->m, &row, 1), 0);
	assert_int_equal(mem_fitness_summary(f->m, "web", 0, 10, &sum), 0);
	assert_int_equal(sum.rows, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_normalize),
	    cmocka_unit_test(test_errno_table),
	    cmocka_unit_test(test_signal_values),
	    cmocka_unit_test(test_slo_met),
	    cmocka_unit_test(test_slo_breached_2x),
	    cmocka_unit_test(test_baseline_learning_then_breach),
	    cmocka_unit_test(test_idle_target),
	    cmocka_unit_test(test_weights_normalised),
	    cmocka_unit_test_setup_teardown(test_history, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_history_bad_rows, setup, teardown),
	    cmocka_unit_test(test_reload_keeps_baselines),
	    cmocka_unit_test_setup_teardown(test_migration_1_to_2, setup, teardown),
	};

	return cmocka_run_group_tests_name("fitness", tests, NULL, NULL);
}
