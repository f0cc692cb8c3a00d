/* test_search.c - unit tests of agent/tune/search.c: the tuner's hill climb and (1+1)-ES on
 * synthetic objectives, judged by a fake canary judge.
 *
 * The fake judge (judge_verdict()) measures the true cost of the candidate and of the
 * incumbent, each with optional, nearly normal measurement noise (sd), and says SAME when the
 * measured difference is below a threshold (noise), else BETTER or WORSE by its sign: like
 * the real judge, it only sees differences larger than the noise, and with sd > 0 it is
 * sometimes wrong. Its generator (xorshift64*, Irwin-Hall normals) is not the search's.
 *
 * run() drives every search of this file and checks on each step what must always hold:
 * candidates inside [min, max], integers where integer, never -0, never the same as the
 * start or an earlier candidate (by this file's own notion of "same", written from the
 * header), the incumbent moving exactly on BETTER, and -ENOENT for good at the end.
 *
 * Trial counts that vary with the seed are checked for 100 seeds against a stated bound
 * and printed (median and worst) with cmocka's print_message.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tune/search.h"
#include "lib/util.h"

#define SEEDS 100

/* ---- objectives ---- */

struct objective {
	const char *name;
	size_t n;
	struct tune_dim dim[TUNE_MAX_DIMS];
	double start[TUNE_MAX_DIMS];
	double (*cost)(const double *x); /* true cost, lower is better */
	bool (*near)(const double *x);	 /* in the optimum's neighbourhood */
};

/* 1-D, a listen backlog: latency-like cost 4096/x + x/4096, minimum 2 at x = 4096, on
 * [128, 65535] in log2 scale, integer. cost(4096 * 2^(+-1/8)) = 2.0075. */
static double backlog_cost(const double *x)
{
	return 4096 / x[0] + x[0] / 4096;
}

/* Within a factor 2^(1/4) (19%) of 4096: [3444, 4871]. */
static bool backlog_near(const double *x)
{
	return fabs(log2(x[0]) - 12) <= 0.25;
}

#define BACKLOG_DIMS                                                                               \
	{                                                                                          \
		{                                                                                  \
			.min = 128, .max = 65535, .log_scale = true, .integer = true, .step = 1,   \
			.min_step = 0.125                                                          \
		}                                                                                  \
	}

static const struct objective BACKLOG = {
    .name = "1-D log-scale unimodal, optimum 4096 on [128, 65535]",
    .n = 1,
    .dim = BACKLOG_DIMS,
    .start = {128},
    .cost = backlog_cost,
    .near = backlog_near,
};

/* For a judge blind below 0.02: cost within 4 x 0.02 of the minimum: [3090, 5429]. */
static bool backlog_near_noisy(const double *x)
{
	return backlog_cost(x) <= 2.08;
}

static const struct objective BACKLOG_NOISY = {
    .name = "1-D log-scale unimodal, optimum 4096 on [128, 65535] (cost <= 2.08)",
    .n = 1,
    .dim = BACKLOG_DIMS,
    .start = {128},
    .cost = backlog_cost,
    .near = backlog_near_noisy,
};

/* 2-D quadratic with a cross term (not separable): minimum 0 at (30, -20); x integer. */
static double quad_cost(const double *x)
{
	double a = x[0] - 30, b = x[1] + 20;

	return a * a + 2 * b * b + a * b;
}

static bool quad_near(const double *x)
{
	return fabs(x[0] - 30) <= 2 && fabs(x[1] + 20) <= 2;
}

#define QUAD_DIMS                                                                                  \
	{                                                                                          \
		{.min = -100, .max = 100, .integer = true, .step = 16, .min_step = 1},             \
		{                                                                                  \
			.min = -100, .max = 100, .step = 16, .min_step = 0.5                       \
		}                                                                                  \
	}

static const struct objective QUAD = {
    .name = "2-D quadratic with cross term, optimum (30, -20) on [-100, 100]^2",
    .n = 2,
    .dim = QUAD_DIMS,
    .start = {0, 0},
    .cost = quad_cost,
    .near = quad_near,
};

/* For a judge blind below 3: cost within 4 x 3 of the minimum. */
static bool quad_near_noisy(const double *x)
{
	return quad_cost(x) <= 12;
}

static const struct objective QUAD_NOISY = {
    .name = "2-D quadratic with cross term, optimum (30, -20) on [-100, 100]^2 (cost <= 12)",
    .n = 2,
    .dim = QUAD_DIMS,
    .start = {0, 0},
    .cost = quad_cost,
    .near = quad_near_noisy,
};

/* 1-D, for the fitness of scripted judges: |x - 7|. */
static double line_cost(const double *x)
{
	return fabs(x[0] - 7);
}

/* 8-D sphere, the most dimensions: minimum 0 at c_i = 6 i - 20. */
static double sphere_cost(const double *x)
{
	double f = 0;

	for (int i = 0; i < 8; i++)
		f += (x[i] - (6 * i - 20)) * (x[i] - (6 * i - 20));
	return f;
}

static bool sphere_near(const double *x)
{
	for (int i = 0; i < 8; i++)
		if (fabs(x[i] - (6 * i - 20)) > 2)
			return false;
	return true;
}

#define SPHERE_DIM                                                                                 \
	{                                                                                          \
		.min = -50, .max = 50, .step = 8, .min_step = 0.1                                  \
	}
static const struct objective SPHERE = {
    .name = "8-D sphere, optimum (-20, -14, ..., 22) on [-50, 50]^8",
    .n = 8,
    .dim = {SPHERE_DIM, SPHERE_DIM, SPHERE_DIM, SPHERE_DIM, SPHERE_DIM, SPHERE_DIM, SPHERE_DIM,
	    SPHERE_DIM},
    .start = {0},
    .cost = sphere_cost,
    .near = sphere_near,
};

/* ---- the fake judge ---- */

struct judge {
	const struct objective *obj;
	double noise; /* |measured difference| below this: SAME */
	double sd;    /* standard deviation of the measurement noise; 0: none */
	uint64_t rng; /* xorshift64* state, nonzero */
	/* NULL: judge_verdict(); else a scripted judge */
	enum tune_outcome (*verdict)(struct judge *j, const double *x, double *fitness);
};

static uint64_t xorshift64s(uint64_t *st)
{
	*st ^= *st >> 12;
	*st ^= *st << 25;
	*st ^= *st >> 27;
	return *st * 0x2545f4914f6cdd1dULL;
}

static double test_uniform(uint64_t *st)
{
	return (double)(xorshift64s(st) >> 11) * 0x1.0p-53;
}

/* Irwin-Hall: the sum of 12 uniforms minus 6, close enough to N(0, 1) for noise. */
static double test_normal(uint64_t *st)
{
	double z = -6;

	for (int i = 0; i < 12; i++)
		z += test_uniform(st);
	return z;
}

static enum tune_outcome judge_verdict(struct judge *j, const double *x, const double *inc,
				       double *fitness)
{
	double fc = j->obj->cost(x), fi = j->obj->cost(inc), diff;

	if (j->sd > 0) {
		fc += j->sd * test_normal(&j->rng);
		fi += j->sd * test_normal(&j->rng);
	}
	diff = fc - fi;
	*fitness = fc;
	if (fabs(diff) < j->noise)
		return TUNE_SAME;
	return diff < 0 ? TUNE_BETTER : TUNE_WORSE;
}

static enum tune_outcome judge_same(struct judge *j, const double *x, double *fitness)
{
	*fitness = j->obj->cost(x);
	return TUNE_SAME;
}

static enum tune_outcome judge_random(struct judge *j, const double *x, double *fitness)
{
	*fitness = j->obj->cost(x);
	return (enum tune_outcome)(xorshift64s(&j->rng) % TUNE_OUTCOME_COUNT);
}

static enum tune_outcome judge_refuse(struct judge *j, const double *x, double *fitness)
{
	*fitness = NAN;
	return TUNE_REFUSED;
}

/* ---- the driver ---- */

/* The header's "same candidate": equal, or closer than min_step / 2 in search units, in
 * every dimension; written again here so that the test does not trust search.c. */
static bool same(const struct tune_search *s, const double *a, const double *b)
{
	for (uint32_t i = 0; i < s->n; i++) {
		const struct tune_dim *d = &s->dim[i];
		double da = d->log_scale ? log2(a[i]) : a[i], db = d->log_scale ? log2(b[i]) : b[i];

		if (a[i] != b[i] && !(fabs(da - db) < d->min_step / 2))
			return false;
	}
	return true;
}

static void check_point(const struct tune_search *s, const double *x)
{
	for (uint32_t i = 0; i < s->n; i++) {
		const struct tune_dim *d = &s->dim[i];

		if (!(x[i] >= d->min && x[i] <= d->max))
			fail_msg("x[%u] = %.17g outside [%g, %g]", i, x[i], d->min, d->max);
		if (d->integer && x[i] != round(x[i]))
			fail_msg("x[%u] = %.17g is not an integer", i, x[i]);
		if (x[i] == 0 && signbit(x[i]))
			fail_msg("x[%u] is -0", i);
	}
}

struct run {
	unsigned evaluated; /* BETTER, WORSE or SAME */
	unsigned reached;   /* evaluated trials when the incumbent was first near; 0: never */
	unsigned proposed;
	double x[TUNE_MAX_TRIALS][TUNE_MAX_DIMS]; /* the proposals, in order */
	struct tune_stats st;
};

static void run(struct tune_search *s, struct judge *j,
		bool (*allowed)(const double *x, size_t n, void *ud), void *ud, struct run *r)
{
	double x[TUNE_MAX_DIMS], prev[TUNE_MAX_DIMS], fit;
	const double *inc;
	int rc;

	memset(r, 0, sizeof(*r));
	for (;;) {
		bool ended = tune_search_converged(s); /* the last report may have ended it */
		enum tune_outcome o;

		rc = tune_search_next(s, x, allowed, ud);
		if (ended)
			assert_int_equal(rc, -ENOENT);
		if (rc == -ENOENT)
			break;
		assert_int_equal(rc, 0);
		check_point(s, x);
		if (same(s, x, s->start))
			fail_msg("candidate %u is the start point", r->proposed);
		for (unsigned k = 0; k < r->proposed; k++)
			if (same(s, x, r->x[k]))
				fail_msg("candidate %u is the same as candidate %u", r->proposed,
					 k);
		assert_true(r->proposed < TUNE_MAX_TRIALS);
		memcpy(r->x[r->proposed++], x, sizeof(x));

		inc = tune_search_incumbent(s, NULL);
		memcpy(prev, inc, s->n * sizeof(*prev));
		o = j->verdict ? j->verdict(j, x, &fit) : judge_verdict(j, x, inc, &fit);
		assert_int_equal(tune_search_report(s, x, o, fit), 0);
		inc = tune_search_incumbent(s, NULL);
		/* only BETTER moves the incumbent, and then to the candidate */
		assert_memory_equal(inc, o == TUNE_BETTER ? x : prev, s->n * sizeof(*inc));
		if (o != TUNE_REFUSED)
			r->evaluated++;
		if (!r->reached && j->obj->near && j->obj->near(inc))
			r->reached = r->evaluated;
	}
	assert_true(tune_search_converged(s));
	assert_int_equal(tune_search_next(s, x, allowed, ud), -ENOENT);
	assert_int_equal(tune_search_stats(s, &r->st), 0);
	assert_int_not_equal(r->st.stop, TUNE_RUNNING);
	assert_int_equal(r->st.proposed, r->proposed);
	assert_int_equal(r->st.evaluated, r->evaluated);
	assert_int_equal(tune_search_trials(s, NULL, 0), r->proposed);
}

static void start(struct tune_search *s, const struct objective *obj, enum tune_strategy st,
		  uint64_t seed, unsigned max_trials)
{
	assert_int_equal(tune_search_init(s, st, obj->dim, obj->n, obj->start, seed, max_trials),
			 0);
}

static int cmp_unsigned(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return (x > y) - (x < y);
}

/* Runs strategy st on obj from SEEDS seeds (of the ES and of the judge's noise; the hill
 * climb draws nothing, so without noise once): every run must have its incumbent near
 * the optimum within bound evaluated trials, and end there. Prints the median and worst
 * numbers of trials to get near and to the end. */
static void seeds(enum tune_strategy st, const struct objective *obj, double noise, double sd,
		  unsigned bound)
{
	static struct tune_search s;
	static struct run r;
	unsigned reached[SEEDS], total[SEEDS], runs = st == TUNE_HILL && sd == 0 ? 1 : SEEDS;

	for (unsigned seed = 0; seed < runs; seed++) {
		struct judge j = {.obj = obj, .noise = noise, .sd = sd, .rng = 1000 + seed};

		start(&s, obj, st, seed, 0);
		run(&s, &j, NULL, NULL, &r);
		if (!r.reached || r.reached > bound)
			fail_msg("%s %s, seed %u: near after %u trials, bound %u",
				 tune_strategy_name(st), obj->name, seed, r.reached, bound);
		if (!obj->near(tune_search_incumbent(&s, NULL)))
			fail_msg("%s %s, seed %u: ended away from the optimum",
				 tune_strategy_name(st), obj->name, seed);
		reached[seed] = r.reached;
		total[seed] = r.evaluated;
	}
	qsort(reached, runs, sizeof(*reached), cmp_unsigned);
	qsort(total, runs, sizeof(*total), cmp_unsigned);
	print_message("%-4s %s, SAME below %g, sd %g, %u run%s: near after median %u, worst %u "
		      "(bound %u); ended after median %u, worst %u\n",
		      tune_strategy_name(st), obj->name, noise, sd, runs, runs > 1 ? "s" : "",
		      reached[runs / 2], reached[runs - 1], bound, total[runs / 2],
		      total[runs - 1]);
}

/* ---- convergence on the objectives ---- */

/* Worked out by hand: doubling from 128 reaches 4096 in 5 BETTER; 8192 is WORSE (2.5 > 2)
 * and 2048 is the previous incumbent (not proposed): step 1/2. 4096 * 2^(+-1/2) = 5793,
 * 2896 (2.1213): WORSE; step 1/4: 4871, 3444 (2.0301): WORSE; step 1/8: 4467, 3756
 * (2.0075, below the noise 0.01): SAME; step 1/16 < min_step: converged after 12. */
static void test_hill_backlog_exact(void **state)
{
	static const double want[] = {256,  512,  1024, 2048, 4096, 8192,
				      5793, 2896, 4871, 3444, 4467, 3756};
	static const enum tune_outcome want_o[] = {
	    TUNE_BETTER, TUNE_BETTER, TUNE_BETTER, TUNE_BETTER, TUNE_BETTER, TUNE_WORSE,
	    TUNE_WORSE,	 TUNE_WORSE,  TUNE_WORSE,  TUNE_WORSE,	TUNE_SAME,   TUNE_SAME};
	static struct tune_search s;
	static struct run r;
	struct tune_trial t[16];
	struct judge j = {.obj = &BACKLOG, .noise = 0.01};
	double fit;

	start(&s, &BACKLOG, TUNE_HILL, 0, 0);
	run(&s, &j, NULL, NULL, &r);
	assert_int_equal(tune_search_trials(&s, t, ARRAY_SIZE(t)), ARRAY_SIZE(want));
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		if (t[i].x[0] != want[i])
			fail_msg("trial %zu: got %.17g, want %g", i, t[i].x[0], want[i]);
		assert_int_equal(t[i].outcome, want_o[i]);
		assert_true(t[i].fitness == backlog_cost(t[i].x));
	}
	assert_true(tune_search_incumbent(&s, &fit)[0] == 4096);
	assert_true(fit == 2);
	assert_int_equal(r.reached, 5);
	assert_int_equal(r.st.stop, TUNE_CONVERGED);
	assert_int_equal(r.st.better, 5);
	assert_int_equal(r.st.worse, 5);
	assert_int_equal(r.st.same, 2);
	assert_int_equal(r.st.duplicates, 1); /* 2048 */
	assert_true(s.step[0] == 0.0625);
}

/* Noiseless judges say SAME only below 0.01 (1-D) or never (2-D, 8-D). Noisy ones measure
 * each arm with Gaussian noise of sd half their SAME threshold, so that they sometimes
 * err; their neighbourhood is the cost within 4 times their threshold of the minimum. */
static void test_hill_objectives(void **state)
{
	seeds(TUNE_HILL, &BACKLOG, 0.01, 0, 5);
	seeds(TUNE_HILL, &BACKLOG_NOISY, 0.02, 0.01, 8);
	seeds(TUNE_HILL, &QUAD, 0, 0, 15);
	seeds(TUNE_HILL, &QUAD_NOISY, 3, 1.5, 20);
	seeds(TUNE_HILL, &SPHERE, 0, 0, 40);
}

static void test_es_objectives(void **state)
{
	seeds(TUNE_ES, &BACKLOG, 0.01, 0, 48);
	seeds(TUNE_ES, &BACKLOG_NOISY, 0.02, 0.01, 48);
	seeds(TUNE_ES, &QUAD, 0, 0, 100);
	seeds(TUNE_ES, &QUAD_NOISY, 3, 1.5, 100);
	seeds(TUNE_ES, &SPHERE, 0, 0, 240);
}

/* ---- outcomes ---- */

/* SAME never moves the incumbent; the search still ends, by its steps or sigmas. */
static void test_same_never_moves(void **state)
{
	static struct tune_search s;
	static struct run r;

	/* hill: two SAME per step, x at steps 16, 8, 4, 2, 1 (1/2 is below min_step 1), y at
	 * 16 .. 1/2 (1/4 is below 1/2): 10 + 12 trials. ES: each SAME multiplies sigma by
	 * exp(-1/12); from 16 to below 1 (x) takes ceil(12 ln 16) = 34 failures, to below
	 * 1/2 (y) ceil(12 ln 32) = 42 */
	static const unsigned want[TUNE_STRATEGY_COUNT] = {[TUNE_HILL] = 22, [TUNE_ES] = 42};

	for (int st = 0; st < TUNE_STRATEGY_COUNT; st++) {
		struct judge j = {.obj = &QUAD, .verdict = judge_same};

		start(&s, &QUAD, st, 7, 0);
		run(&s, &j, NULL, NULL, &r);
		assert_memory_equal(tune_search_incumbent(&s, NULL), QUAD.start,
				    2 * sizeof(double));
		assert_int_equal(r.st.same, r.evaluated);
		/* ES: a draw the same as the start (or a SAME trial) is a failure known without a
		 * canary, and shrinks sigma too */
		assert_int_equal(r.evaluated + (st == TUNE_ES ? r.st.duplicates : 0), want[st]);
		assert_int_equal(r.st.stop, TUNE_CONVERGED);
		assert_true(isnan(s.incumbent_fitness));
	}
	assert_true(s.step[1] < 0.5 && s.step[1] * exp(1.0 / 12) >= 0.5);
}

/* Random verdicts: run() checks that only BETTER moves; here the counts add up. */
static void test_random_verdicts(void **state)
{
	static struct tune_search s;
	static struct run r;

	for (int st = 0; st < TUNE_STRATEGY_COUNT; st++) {
		for (uint64_t seed = 1; seed <= 20; seed++) {
			struct judge j = {.obj = &QUAD, .verdict = judge_random, .rng = seed};

			start(&s, &QUAD, st, seed, 100);
			run(&s, &j, NULL, NULL, &r);
			assert_int_equal(r.st.better + r.st.worse + r.st.same, r.st.evaluated);
			assert_int_equal(r.st.evaluated + r.st.refused, r.proposed);
			assert_true(r.st.evaluated <= 100);
		}
	}
}

/* The 1/5th rule: BETTER x exp(1/3), WORSE and SAME x exp(-1/12), REFUSED x 1. */
static void test_es_sigma_rule(void **state)
{
	static struct tune_search s;
	static const enum tune_outcome seq[] = {TUNE_REFUSED, TUNE_WORSE,   TUNE_SAME,
						TUNE_REFUSED, TUNE_BETTER,  TUNE_REFUSED,
						TUNE_WORSE,   TUNE_REFUSED, TUNE_REFUSED};
	double x[TUNE_MAX_DIMS], before[2];

	start(&s, &QUAD, TUNE_ES, 3, 0);
	for (size_t i = 0; i < ARRAY_SIZE(seq); i++) {
		double f = seq[i] == TUNE_BETTER    ? exp(1.0 / 3)
			   : seq[i] == TUNE_REFUSED ? 1
						    : exp(-1.0 / 12);

		assert_int_equal(tune_search_next(&s, x, NULL, NULL), 0);
		memcpy(before, s.step, sizeof(before));
		assert_int_equal(tune_search_report(&s, x, seq[i], 1), 0);
		assert_true(s.step[0] == before[0] * f);
		assert_true(s.step[1] == before[1] * f);
	}
	/* and sigma never exceeds the span: 200 */
	for (int i = 0; i < 40; i++) {
		assert_int_equal(tune_search_next(&s, x, NULL, NULL), 0);
		assert_int_equal(tune_search_report(&s, x, TUNE_BETTER, -i), 0);
	}
	assert_true(s.step[0] == 200 && s.step[1] == 200);
}

/* REFUSED counts neither as a failure nor as an evaluated trial: an ES refused every time
 * keeps its sigma, and ends when TUNE_MAX_TRIALS points have been reported. (A continuous
 * space with a fine resolution, so that no draw is the same as the start: that would be a
 * known failure.) */
static void test_refused_all(void **state)
{
	static struct tune_search s;
	static struct run r;
	struct judge j = {.obj = &QUAD, .verdict = judge_refuse};
	struct objective fine = QUAD;

	fine.dim[0].integer = false;
	fine.dim[0].min_step = fine.dim[1].min_step = 1e-6;
	start(&s, &fine, TUNE_ES, 11, 10);
	run(&s, &j, NULL, NULL, &r);
	assert_int_equal(r.st.stop, TUNE_BUDGET);
	assert_int_equal(r.st.refused, TUNE_MAX_TRIALS);
	assert_int_equal(r.st.evaluated, 0);
	assert_int_equal(r.st.duplicates, 0);
	assert_true(s.step[0] == 16 && s.step[1] == 16);
	assert_memory_equal(tune_search_incumbent(&s, NULL), QUAD.start, 2 * sizeof(double));

	/* hill: REFUSED fails a direction like WORSE (both directions: halve) */
	start(&s, &QUAD, TUNE_HILL, 0, 0);
	run(&s, &j, NULL, NULL, &r);
	assert_int_equal(r.st.stop, TUNE_CONVERGED);
	assert_int_equal(r.st.refused, 22);
}

/* A refused point is never proposed again, even when the search comes back to it: the
 * hill climb refused at 256 comes back towards it after halving only at other points. */
static void test_refused_not_reproposed(void **state)
{
	static struct tune_search s;
	double x[TUNE_MAX_DIMS];
	int rc;

	start(&s, &BACKLOG, TUNE_HILL, 0, 0);
	assert_int_equal(tune_search_next(&s, x, NULL, NULL), 0);
	assert_true(x[0] == 256);
	assert_int_equal(tune_search_report(&s, x, TUNE_REFUSED, NAN), 0);
	/* - : 64 clamps to 128, the start: not proposed; step 1/2: 181 */
	assert_int_equal(tune_search_next(&s, x, NULL, NULL), 0);
	assert_true(x[0] == 181);
	assert_int_equal(tune_search_report(&s, x, TUNE_BETTER, 24), 0);
	/* + again: 181 * 2^(1/2) = 256: refused before, not proposed; - : 128, the start;
	 * step 1/4: 181 * 2^(1/4) = 215 */
	assert_int_equal(tune_search_next(&s, x, NULL, NULL), 0);
	assert_true(x[0] == 215);
	assert_int_equal(tune_search_report(&s, x, TUNE_BETTER, 20), 0);
	while ((rc = tune_search_next(&s, x, NULL, NULL)) == 0) {
		assert_true(x[0] != 256 && x[0] != 181 && x[0] != 215 && x[0] != 128);
		assert_int_equal(tune_search_report(&s, x, TUNE_WORSE, 30), 0);
	}
	assert_int_equal(rc, -ENOENT);
}

/* ---- vetoes ---- */

struct veto {
	double limit;	/* veto x[0] >= limit */
	bool alternate; /* instead, veto every second new point, and allow it if asked again */
	unsigned asked, vetoed;
	double seen[1024][TUNE_MAX_DIMS]; /* points vetoed */
};

static bool veto_pred(const double *x, size_t n, void *ud)
{
	struct veto *v = ud;

	v->asked++;
	if (v->alternate) {
		for (unsigned k = 0; k < v->vetoed; k++)
			if (memcmp(v->seen[k], x, n * sizeof(*x)) == 0)
				return true;
		if (v->asked % 2)
			return true;
	} else if (x[0] < v->limit) {
		return true;
	}
	if (v->vetoed < ARRAY_SIZE(v->seen))
		memcpy(v->seen[v->vetoed], x, n * sizeof(*x));
	v->vetoed++;
	return false;
}

static void test_veto(void **state)
{
	static struct tune_search s;
	static struct run r;
	static struct veto v;
	struct tune_trial t[32];
	double sigma;

	/* hill, veto >= 6000: 8192 is not proposed (a failed direction, not a trial) */
	memset(&v, 0, sizeof(v));
	v.limit = 6000;
	start(&s, &BACKLOG, TUNE_HILL, 0, 0);
	{
		struct judge j = {.obj = &BACKLOG, .noise = 0.01};

		run(&s, &j, veto_pred, &v, &r);
	}
	assert_int_equal(tune_search_trials(&s, t, ARRAY_SIZE(t)), 11);
	assert_true(t[5].x[0] == 5793); /* after 4096: 8192 vetoed, 2048 the old incumbent */
	assert_int_equal(r.st.vetoed, 1);
	assert_int_equal(v.vetoed, 1);
	assert_true(v.seen[0][0] == 8192);
	assert_true(tune_search_incumbent(&s, NULL)[0] == 4096);

	/* ES, veto >= 6000: never proposed, counted, and they are no failures */
	for (uint64_t seed = 0; seed < 20; seed++) {
		struct judge j = {.obj = &BACKLOG, .noise = 0.01};

		memset(&v, 0, sizeof(v));
		v.limit = 6000;
		start(&s, &BACKLOG, TUNE_ES, seed, 0);
		run(&s, &j, veto_pred, &v, &r);
		for (unsigned k = 0; k < r.proposed; k++)
			assert_true(r.x[k][0] < 6000);
		assert_int_equal(r.st.vetoed, v.vetoed);
		assert_true(backlog_near(tune_search_incumbent(&s, NULL)));
	}

	/* a predicate that vetoes every second point, but would allow it if asked again: the
	 * search remembers its vetoes, so no vetoed point is ever proposed, and it still
	 * converges */
	for (int st = 0; st < TUNE_STRATEGY_COUNT; st++) {
		struct judge j = {.obj = &QUAD};

		memset(&v, 0, sizeof(v));
		v.alternate = true;
		start(&s, &QUAD, st, 5, 0);
		run(&s, &j, veto_pred, &v, &r);
		assert_true(r.st.vetoed > 0);
		assert_int_equal(r.st.vetoed, v.vetoed);
		for (unsigned k = 0; k < r.proposed; k++)
			for (unsigned m = 0; m < v.vetoed && m < TUNE_MAX_VETOED; m++)
				assert_false(same(&s, r.x[k], v.seen[m]));
		assert_int_equal(r.st.stop, TUNE_CONVERGED);
	}

	/* ES: a veto changes no sigma */
	memset(&v, 0, sizeof(v));
	v.alternate = true;
	v.asked = 1; /* veto the first point asked about */
	start(&s, &QUAD, TUNE_ES, 5, 0);
	sigma = s.step[0];
	{
		double x[TUNE_MAX_DIMS];

		assert_int_equal(tune_search_next(&s, x, veto_pred, &v), 0);
	}
	assert_int_equal(v.vetoed, 1);
	assert_int_equal(v.asked, 3);
	assert_true(s.step[0] == sigma);
}

static bool veto_all(const double *x, size_t n, void *ud)
{
	(*(unsigned *)ud)++;
	return false;
}

static void test_veto_all(void **state)
{
	static struct tune_search s;
	struct tune_stats st;
	double x[TUNE_MAX_DIMS] = {-1};
	unsigned asked = 0;

	/* ES: TUNE_MAX_ATTEMPTS attempts, then exhausted; x untouched */
	start(&s, &QUAD, TUNE_ES, 1, 0);
	assert_int_equal(tune_search_next(&s, x, veto_all, &asked), -ENOENT);
	assert_true(x[0] == -1);
	assert_int_equal(tune_search_stats(&s, &st), 0);
	assert_int_equal(st.stop, TUNE_EXHAUSTED);
	assert_int_equal(st.vetoed + st.duplicates, TUNE_MAX_ATTEMPTS);
	assert_int_equal(st.vetoed, asked);
	assert_int_equal(st.proposed, 0);
	assert_true(tune_search_converged(&s));
	assert_int_equal(tune_search_next(&s, x, NULL, NULL), -ENOENT);

	/* hill: every direction fails, the steps halve until converged, nothing proposed */
	asked = 0;
	start(&s, &QUAD, TUNE_HILL, 0, 0);
	assert_int_equal(tune_search_next(&s, x, veto_all, &asked), -ENOENT);
	assert_int_equal(tune_search_stats(&s, &st), 0);
	assert_int_equal(st.stop, TUNE_CONVERGED);
	assert_int_equal(st.vetoed, asked);
	assert_int_equal(st.vetoed + st.duplicates, 22);
	assert_int_equal(st.proposed, 0);
}

/* ---- the space ---- */

static void test_clamp_round(void **state)
{
	static struct tune_search s;
	double x[TUNE_MAX_DIMS], y;

	/* integer, linear: 9 + 4 = 13 clamps to 10; then 9 - 4 = 5 */
	{
		struct tune_dim d = {
		    .min = 0, .max = 10, .integer = true, .step = 4, .min_step = 1};
		double st = 9;

		assert_int_equal(tune_search_init(&s, TUNE_HILL, &d, 1, &st, 0, 0), 0);
		assert_int_equal(tune_search_next(&s, x, NULL, NULL), 0);
		assert_true(x[0] == 10);
		assert_int_equal(tune_search_report(&s, x, TUNE_WORSE, 1), 0);
		assert_int_equal(tune_search_next(&s, x, NULL, NULL), 0);
		assert_true(x[0] == 5);
	}
	/* integer with fractional bounds: start 9.4 rounds to 9; 13 clamps to floor(9.5) = 9,
	 * the start: not proposed; 5 */
	{
		struct tune_dim d = {
		    .min = 0.5, .max = 9.5, .integer = true, .step = 4, .min_step = 1};
		double st = 9.4;

		assert_int_equal(tune_search_init(&s, TUNE_HILL, &d, 1, &st, 0, 0), 0);
		assert_true(tune_search_incumbent(&s, NULL)[0] == 9);
		assert_int_equal(tune_search_next(&s, x, NULL, NULL), 0);
		assert_true(x[0] == 5);
		assert_int_equal(tune_search_report(&s, x, TUNE_BETTER, 1), 0);
		/* 1: step 4 from 5 is 1 = ceil(0.5) */
		assert_int_equal(tune_search_next(&s, x, NULL, NULL), 0);
		assert_true(x[0] == 1);
		assert_int_equal(tune_search_report(&s, x, TUNE_BETTER, 0.5), 0);
		/* -3 clamps to 1, the incumbent; 5 was tried; step 2: -1 clamps to 1, then 3 */
		assert_int_equal(tune_search_next(&s, x, NULL, NULL), 0);
		assert_true(x[0] == 3);
	}
	/* integer, log: 128 * 2^(1/2) = 181.02 rounds to 181; 128 / 2^(1/2) clamps to 128 */
	{
		struct tune_dim d = {.min = 100,
				     .max = 200,
				     .log_scale = true,
				     .integer = true,
				     .step = 0.5,
				     .min_step = 0.125};
		double st = 128;

		assert_int_equal(tune_search_init(&s, TUNE_HILL, &d, 1, &st, 0, 0), 0);
		assert_int_equal(tune_search_next(&s, x, NULL, NULL), 0);
		assert_true(x[0] == 181);
		assert_int_equal(tune_search_report(&s, x, TUNE_WORSE, 1), 0);
		assert_int_equal(tune_search_next(&s, x, NULL, NULL), 0);
		assert_true(x[0] == 100);
	}
	/* continuous, log: exact powers */
	{
		struct tune_dim d = {
		    .min = 1, .max = 1e6, .log_scale = true, .step = 0.5, .min_step = 0.01};
		double st = 1000;

		assert_int_equal(tune_search_init(&s, TUNE_HILL, &d, 1, &st, 0, 0), 0);
		assert_int_equal(tune_search_next(&s, x, NULL, NULL), 0);
		y = exp2(log2(1000.0) + 0.5);
		assert_true(x[0] == y);
		assert_true(fabs(x[0] - 1000 * M_SQRT2) < 1e-9);
	}
	/* never -0: 1 - 1.4 = -0.4 rounds to 0, not -0 */
	{
		struct tune_dim d = {
		    .min = -10, .max = 10, .integer = true, .step = 1.4, .min_step = 1};
		double st = 1;

		assert_int_equal(tune_search_init(&s, TUNE_HILL, &d, 1, &st, 0, 0), 0);
		assert_int_equal(tune_search_next(&s, x, NULL, NULL), 0);
		assert_true(x[0] == 2);
		assert_int_equal(tune_search_report(&s, x, TUNE_WORSE, 1), 0);
		assert_int_equal(tune_search_next(&s, x, NULL, NULL), 0);
		assert_true(x[0] == 0 && !signbit(x[0]));
	}
	/* ES: every candidate inside and integer (run() checks), from a start at a bound */
	{
		static struct run r;
		struct objective o = BACKLOG;
		struct judge j = {.obj = &o, .noise = 0.01};

		o.start[0] = 65535;
		for (uint64_t seed = 0; seed < 20; seed++) {
			start(&s, &o, TUNE_ES, seed, 0);
			run(&s, &j, NULL, NULL, &r);
			assert_true(backlog_near(tune_search_incumbent(&s, NULL)));
		}
	}
}

/* A space of 21 points: the ES cannot propose more than the 20 others, never twice, and
 * ends (converged or exhausted) rather than loop. */
static void test_no_duplicates(void **state)
{
	static struct tune_search s;
	static struct run r;
	struct objective o = {
	    .name = "21 points",
	    .n = 1,
	    .dim = {{.min = 0, .max = 20, .integer = true, .step = 8, .min_step = 0.5}},
	    .start = {10},
	    .cost = line_cost};

	for (uint64_t seed = 0; seed < 50; seed++) {
		struct judge j = {.obj = &o, .verdict = judge_random, .rng = seed + 1};

		start(&s, &o, TUNE_ES, seed, 0);
		run(&s, &j, NULL, NULL, &r); /* checks every pair */
		assert_true(r.proposed <= 20);
		assert_true(r.st.stop == TUNE_CONVERGED || r.st.stop == TUNE_EXHAUSTED);
	}
	/* and the hill climb on the 2-D quadratic with random verdicts (run() checks pairs) */
	for (uint64_t seed = 0; seed < 50; seed++) {
		struct judge j = {.obj = &QUAD, .verdict = judge_random, .rng = seed + 1};

		start(&s, &QUAD, TUNE_HILL, seed, 0);
		run(&s, &j, NULL, NULL, &r);
	}
}

/* ---- determinism and storage ---- */

static void test_determinism(void **state)
{
	static struct tune_search a, b;
	static struct run ra, rb;
	struct judge ja = {.obj = &QUAD, .noise = 3, .sd = 1, .rng = 9};
	struct judge jb = ja;

	start(&a, &QUAD, TUNE_ES, 42, 0);
	start(&b, &QUAD, TUNE_ES, 42, 0);
	run(&a, &ja, NULL, NULL, &ra);
	run(&b, &jb, NULL, NULL, &rb);
	assert_int_equal(ra.proposed, rb.proposed);
	assert_memory_equal(ra.x, rb.x, sizeof(ra.x));
	assert_memory_equal(&a, &b, sizeof(a)); /* the whole state, to the last bit */

	jb = (struct judge){.obj = &QUAD, .noise = 3, .sd = 1, .rng = 9};
	start(&b, &QUAD, TUNE_ES, 43, 0);
	run(&b, &jb, NULL, NULL, &rb);
	assert_memory_not_equal(ra.x[0], rb.x[0], 2 * sizeof(double));
}

/* The state is flat: a copy taken mid-search (stored, read back) goes on exactly like the
 * original. */
static void test_state_copy(void **state)
{
	static struct tune_search a, b;
	double xa[TUNE_MAX_DIMS], xb[TUNE_MAX_DIMS];
	int ra, rb;

	for (int st = 0; st < TUNE_STRATEGY_COUNT; st++) {
		start(&a, &QUAD, st, 77, 0);
		for (int i = 0; i < 10; i++) {
			assert_int_equal(tune_search_next(&a, xa, NULL, NULL), 0);
			assert_int_equal(tune_search_report(&a, xa,
							    i % 3 ? TUNE_WORSE : TUNE_BETTER,
							    quad_cost(xa)),
					 0);
		}
		memcpy(&b, &a, sizeof(a));
		do {
			ra = tune_search_next(&a, xa, NULL, NULL);
			rb = tune_search_next(&b, xb, NULL, NULL);
			assert_int_equal(ra, rb);
			if (ra == 0) {
				assert_memory_equal(xa, xb, 2 * sizeof(double));
				assert_int_equal(tune_search_report(&a, xa, TUNE_SAME, 0), 0);
				assert_int_equal(tune_search_report(&b, xb, TUNE_SAME, 0), 0);
			}
		} while (ra == 0);
		assert_memory_equal(&a, &b, sizeof(a));
	}
}

/* ---- the end ---- */

static void test_enoent(void **state)
{
	static struct tune_search s;
	static struct run r;
	struct tune_stats st;
	double x[TUNE_MAX_DIMS];

	/* after convergence: -ENOENT every time; report has nothing to report */
	for (int k = 0; k < TUNE_STRATEGY_COUNT; k++) {
		struct judge j = {.obj = &BACKLOG, .noise = 0.01};

		start(&s, &BACKLOG, k, 1, 0);
		run(&s, &j, NULL, NULL, &r);
		assert_int_equal(r.st.stop, TUNE_CONVERGED);
		for (int i = 0; i < 3; i++)
			assert_int_equal(tune_search_next(&s, x, NULL, NULL), -ENOENT);
		assert_int_equal(tune_search_report(&s, r.x[0], TUNE_BETTER, 0), -EINVAL);
		assert_true(tune_search_converged(&s));
	}

	/* after max_trials evaluated; REFUSED ones do not count */
	for (int k = 0; k < TUNE_STRATEGY_COUNT; k++) {
		unsigned n = 0;
		int rc;

		start(&s, &SPHERE, k, 1, 5);
		while ((rc = tune_search_next(&s, x, NULL, NULL)) == 0) {
			assert_false(tune_search_converged(&s));
			assert_int_equal(
			    tune_search_report(&s, x, n % 2 ? TUNE_REFUSED : TUNE_WORSE, 1), 0);
			n++;
		}
		assert_int_equal(rc, -ENOENT);
		assert_int_equal(n, 9); /* W R W R W R W R W */
		assert_int_equal(tune_search_stats(&s, &st), 0);
		assert_int_equal(st.stop, TUNE_BUDGET);
		assert_int_equal(st.evaluated, 5);
		assert_int_equal(st.refused, 4);
		assert_true(tune_search_converged(&s));
		assert_int_equal(tune_search_next(&s, x, NULL, NULL), -ENOENT);
	}
}

static void test_trials(void **state)
{
	static struct tune_search s;
	struct tune_trial t[4];
	double x[TUNE_MAX_DIMS], fit = 0;
	static const enum tune_outcome o[] = {TUNE_WORSE, TUNE_BETTER, TUNE_SAME, TUNE_REFUSED,
					      TUNE_WORSE};

	start(&s, &QUAD, TUNE_HILL, 0, 0);
	assert_int_equal(tune_search_trials(&s, NULL, 0), 0);
	assert_non_null(tune_search_incumbent(&s, &fit));
	assert_true(isnan(fit));
	for (size_t i = 0; i < ARRAY_SIZE(o); i++) {
		assert_int_equal(tune_search_next(&s, x, NULL, NULL), 0);
		assert_int_equal(
		    tune_search_report(&s, x, o[i], o[i] == TUNE_REFUSED ? NAN : 10.0 * i), 0);
	}
	memset(t, 0xff, sizeof(t));
	assert_int_equal(tune_search_trials(&s, t, 2), 5);
	/* x: 16 WORSE, -16 BETTER, -32 SAME, then x back to 0 is the start: x's step halves and
	 * the climb goes on with y: (-16, 16) REFUSED, (-16, -16) WORSE */
	assert_true(t[0].x[0] == 16 && t[0].x[1] == 0 && t[0].outcome == TUNE_WORSE);
	assert_true(t[0].fitness == 0);
	assert_true(t[1].x[0] == -16 && t[1].outcome == TUNE_BETTER && t[1].fitness == 10);
	assert_true(t[2].x[0] != t[2].x[0]); /* untouched: NaN pattern of 0xff bytes */
	assert_int_equal(tune_search_trials(&s, t, ARRAY_SIZE(t)), 5);
	assert_true(t[2].x[0] == -32 && t[2].outcome == TUNE_SAME && t[2].fitness == 20);
	assert_true(t[3].x[0] == -16 && t[3].x[1] == 16 && t[3].outcome == TUNE_REFUSED);
	assert_true(isnan(t[3].fitness));
	assert_true(s.step[0] == 8 && s.step[1] == 8);
	assert_true(t[3].x[2] == 0); /* beyond n: 0 */
	assert_true(tune_search_incumbent(&s, &fit)[0] == -16);
	assert_true(fit == 10);
}

/* ---- misuse ---- */

static void test_misuse(void **state)
{
	static struct tune_search s, zero;
	double x[TUNE_MAX_DIMS], y[TUNE_MAX_DIMS];
	struct tune_stats st;

	/* never initialized, or a failed init */
	memset(&zero, 0, sizeof(zero));
	assert_int_equal(tune_search_next(&zero, x, NULL, NULL), -EINVAL);
	assert_int_equal(tune_search_report(&zero, x, TUNE_BETTER, 0), -EINVAL);
	assert_false(tune_search_converged(&zero));
	assert_null(tune_search_incumbent(&zero, NULL));
	assert_int_equal(tune_search_trials(&zero, NULL, 0), 0);
	assert_int_equal(tune_search_stats(&zero, &st), -EINVAL);
	assert_int_equal(tune_search_next(NULL, x, NULL, NULL), -EINVAL);
	assert_int_equal(tune_search_report(NULL, x, TUNE_BETTER, 0), -EINVAL);
	assert_false(tune_search_converged(NULL));
	assert_null(tune_search_incumbent(NULL, NULL));
	assert_int_equal(tune_search_trials(NULL, NULL, 0), 0);
	assert_int_equal(tune_search_stats(NULL, &st), -EINVAL);

	start(&s, &QUAD, TUNE_ES, 1, 0);
	assert_int_equal(tune_search_stats(&s, NULL), -EINVAL);
	assert_int_equal(tune_search_next(&s, NULL, NULL, NULL), -EINVAL);
	/* report without next */
	assert_int_equal(tune_search_report(&s, QUAD.start, TUNE_WORSE, 0), -EINVAL);
	assert_int_equal(tune_search_next(&s, x, NULL, NULL), 0);
	/* next twice */
	assert_int_equal(tune_search_next(&s, y, NULL, NULL), -EINVAL);
	/* another point, a bad outcome, NULL: refused, and the candidate stays outstanding */
	memcpy(y, x, sizeof(y));
	y[1] += 1;
	assert_int_equal(tune_search_report(&s, y, TUNE_BETTER, 0), -EINVAL);
	assert_int_equal(tune_search_report(&s, x, TUNE_OUTCOME_COUNT, 0), -EINVAL);
	assert_int_equal(tune_search_report(&s, x, (enum tune_outcome) - 1, 0), -EINVAL);
	assert_int_equal(tune_search_report(&s, NULL, TUNE_BETTER, 0), -EINVAL);
	assert_int_equal(tune_search_trials(&s, NULL, 0), 0);
	assert_int_equal(tune_search_report(&s, x, TUNE_WORSE, 0), 0);
	/* twice */
	assert_int_equal(tune_search_report(&s, x, TUNE_WORSE, 0), -EINVAL);
	assert_int_equal(tune_search_trials(&s, NULL, 0), 1);
	/* a damaged stored state */
	s.n = 9;
	assert_int_equal(tune_search_next(&s, x, NULL, NULL), -EINVAL);
}

static void test_init_errors(void **state)
{
	static struct tune_search s;
	struct tune_dim ok = {.min = 1, .max = 100, .step = 2, .min_step = 1};
	struct tune_dim dims[TUNE_MAX_DIMS + 1];
	double st[TUNE_MAX_DIMS + 1];
	struct {
		struct tune_dim d;
		double start;
		int want;
	} cases[] = {
	    {ok, 50, 0},
	    {{.min = 100, .max = 100, .step = 2, .min_step = 1}, 100, -EINVAL}, /* min = max */
	    {{.min = 100, .max = 1, .step = 2, .min_step = 1}, 50, -EINVAL},
	    {{.min = NAN, .max = 1, .step = 2, .min_step = 1}, 1, -EINVAL},
	    {{.min = 0, .max = INFINITY, .step = 2, .min_step = 1}, 1, -EINVAL},
	    {{.min = 0, .max = 10, .log_scale = true, .step = 2, .min_step = 1}, 1, -EINVAL},
	    {{.min = -1, .max = 10, .log_scale = true, .step = 2, .min_step = 1}, 1, -EINVAL},
	    {{.min = 1, .max = 10, .step = 0, .min_step = 0}, 1, -EINVAL},
	    {{.min = 1, .max = 10, .step = 1, .min_step = 0}, 1, -EINVAL},
	    {{.min = 1, .max = 10, .step = 1, .min_step = 2}, 1, -EINVAL}, /* min_step > step */
	    {{.min = 1, .max = 10, .step = NAN, .min_step = 1}, 1, -EINVAL},
	    {{.min = 0.2, .max = 0.8, .integer = true, .step = 1, .min_step = 1}, 0.5, -EINVAL},
	    {ok, NAN, -EINVAL},
	    {ok, INFINITY, -EINVAL},
	    {ok, 0.5, -ERANGE},
	    {ok, 101, -ERANGE},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int rc = tune_search_init(&s, TUNE_HILL, &cases[i].d, 1, &cases[i].start, 0, 0);

		if (rc != cases[i].want)
			fail_msg("case %zu: got %d, want %d", i, rc, cases[i].want);
		assert_int_equal(tune_search_converged(&s), false);
		if (rc)
			assert_null(tune_search_incumbent(&s, NULL));
	}
	for (size_t i = 0; i < ARRAY_SIZE(dims); i++) {
		dims[i] = ok;
		st[i] = 50;
	}
	assert_int_equal(tune_search_init(NULL, TUNE_HILL, dims, 1, st, 0, 0), -EINVAL);
	assert_int_equal(tune_search_init(&s, TUNE_HILL, NULL, 1, st, 0, 0), -EINVAL);
	assert_int_equal(tune_search_init(&s, TUNE_HILL, dims, 1, NULL, 0, 0), -EINVAL);
	assert_int_equal(tune_search_init(&s, TUNE_HILL, dims, 0, st, 0, 0), -EINVAL);
	assert_int_equal(tune_search_init(&s, TUNE_HILL, dims, TUNE_MAX_DIMS + 1, st, 0, 0),
			 -EINVAL);
	assert_int_equal(tune_search_init(&s, TUNE_HILL, dims, TUNE_MAX_DIMS, st, 0, 0), 0);
	assert_int_equal(tune_search_init(&s, TUNE_STRATEGY_COUNT, dims, 1, st, 0, 0), -EINVAL);
	assert_int_equal(tune_search_init(&s, (enum tune_strategy) - 1, dims, 1, st, 0, 0),
			 -EINVAL);
	assert_int_equal(tune_search_init(&s, TUNE_ES, dims, 1, st, 0, TUNE_MAX_TRIALS + 1),
			 -EINVAL);
	assert_int_equal(tune_search_init(&s, TUNE_ES, dims, 1, st, 0, TUNE_MAX_TRIALS), 0);
	assert_int_equal(s.max_trials, TUNE_MAX_TRIALS);
	assert_int_equal(tune_search_init(&s, TUNE_ES, dims, 1, st, 0, 0), 0);
	assert_int_equal(s.max_trials, TUNE_MAX_TRIALS);
	/* the last dimension bad: nothing initialized */
	dims[2].min_step = 5;
	assert_int_equal(tune_search_init(&s, TUNE_ES, dims, 3, st, 0, 0), -EINVAL);
	assert_int_equal(tune_search_next(&s, st, NULL, NULL), -EINVAL);
}

static void test_names(void **state)
{
	assert_string_equal(tune_strategy_name(TUNE_HILL), "hill");
	assert_string_equal(tune_strategy_name(TUNE_ES), "es");
	assert_null(tune_strategy_name(TUNE_STRATEGY_COUNT));
	assert_null(tune_strategy_name((enum tune_strategy) - 1));
	assert_string_equal(tune_outcome_name(TUNE_BETTER), "BETTER");
	assert_string_equal(tune_outcome_name(TUNE_WORSE), "WORSE");
	assert_string_equal(tune_outcome_name(TUNE_SAME), "SAME");
	assert_string_equal(tune_outcome_name(TUNE_REFUSED), "REFUSED");
	assert_null(tune_outcome_name(TUNE_OUTCOME_COUNT));
	assert_string_equal(tune_stop_name(TUNE_RUNNING), "running");
	assert_string_equal(tune_stop_name(TUNE_CONVERGED), "converged");
	assert_string_equal(tune_stop_name(TUNE_BUDGET), "budget");
	assert_string_equal(tune_stop_name(TUNE_EXHAUSTED), "exhausted");
	assert_null(tune_stop_name(TUNE_STOP_COUNT));
	assert_int_equal(tune_strategy_from_name("hill"), TUNE_HILL);
	assert_int_equal(tune_strategy_from_name("es"), TUNE_ES);
	assert_int_equal(tune_strategy_from_name("ES"), -EINVAL);
	assert_int_equal(tune_strategy_from_name("hill "), -EINVAL);
	assert_int_equal(tune_strategy_from_name(""), -EINVAL);
	assert_int_equal(tune_strategy_from_name(NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hill_backlog_exact),
	    cmocka_unit_test(test_hill_objectives),
	    cmocka_unit_test(test_es_objectives),
	    cmocka_unit_test(test_same_never_moves),
	    cmocka_unit_test(test_random_verdicts),
	    cmocka_unit_test(test_es_sigma_rule),
	    cmocka_unit_test(test_refused_all),
	    cmocka_unit_test(test_refused_not_reproposed),
	    cmocka_unit_test(test_veto),
	    cmocka_unit_test(test_veto_all),
	    cmocka_unit_test(test_clamp_round),
	    cmocka_unit_test(test_no_duplicates),
	    cmocka_unit_test(test_determinism),
	    cmocka_unit_test(test_state_copy),
	    cmocka_unit_test(test_enoent),
	    cmocka_unit_test(test_trials),
	    cmocka_unit_test(test_misuse),
	    cmocka_unit_test(test_init_errors),
	    cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
