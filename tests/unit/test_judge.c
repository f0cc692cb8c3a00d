/* test_judge.c - unit tests of agent/safety/judge.c: the canary judge on known samples.
 *
 * Every reference value is independent of judge.c: quoted from R's documentation, worked
 * out by hand in the comment beside it, computed by brute force inside the test (every
 * subset of ranks, every pairwise difference), or computed with python3 (math.erfc,
 * fractions, math.comb; scipy is not installed) from R's wilcox.test formulas; the script's
 * lines are quoted with the values. Floats are compared with explicit tolerances.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "safety/judge.h"

#define EPS 1e-12

static const struct safe_metric LAT = {"p99 latency", "ms", SAFE_BETTER_LOWER};
static const struct safe_metric TPUT = {"throughput", "req/s", SAFE_BETTER_HIGHER};

static void assert_close(double got, double want, double tol)
{
	if (!(fabs(got - want) <= tol))
		fail_msg("got %.17g, want %.17g (tolerance %g)", got, want, tol);
}

/* No field that the test produced may be NaN or infinite. */
static void assert_all_finite(const struct safe_result *r)
{
	const double v[] = {r->statistic,	r->p,	      r->shift,	    r->ci_low,
			    r->ci_high,		r->effect,    r->rel_shift, r->canary_center,
			    r->baseline_center, r->confidence};

	for (size_t i = 0; i < ARRAY_SIZE(v); i++)
		if (!isfinite(v[i]))
			fail_msg("field %zu is %g", i, v[i]);
}

static struct safe_judge_opts opts_min(size_t min_samples)
{
	struct safe_judge_opts o = SAFE_JUDGE_OPTS_DEFAULT;

	o.min_samples = min_samples;
	return o;
}

/* ---- brute force references ---- */

static int cmp_d(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return (a > b) - (a < b);
}

/* All n1*n2 differences canary - baseline, sorted. */
static double *all_diffs(const double *a, size_t n1, const double *b, size_t n2)
{
	double *d = malloc(n1 * n2 * sizeof(*d));

	assert_non_null(d);
	for (size_t i = 0; i < n1; i++)
		for (size_t j = 0; j < n2; j++)
			d[i * n2 + j] = a[i] - b[j];
	qsort(d, n1 * n2, sizeof(*d), cmp_d);
	return d;
}

/* U of the canary by counting pairs: > counts 1, == counts 1/2. */
static double pairs_u(const double *a, size_t n1, const double *b, size_t n2)
{
	double u = 0;

	for (size_t i = 0; i < n1; i++)
		for (size_t j = 0; j < n2; j++)
			u += a[i] > b[j] ? 1 : a[i] == b[j] ? 0.5 : 0;
	return u;
}

/* Exact two-sided p of U = u for arms of m and n without ties: every subset of m of the
 * m + n ranks, its U = rank sum - m (m + 1) / 2. */
static double brute_exact_p(unsigned m, unsigned n, double u)
{
	unsigned total = 0, lower = 0, upper = 0;

	for (unsigned mask = 0; mask < 1u << (m + n); mask++) {
		unsigned s = 0;

		if ((unsigned)__builtin_popcount(mask) != m)
			continue;
		for (unsigned r = 0; r < m + n; r++)
			if (mask & (1u << r))
				s += r + 1;
		total++;
		lower += s - m * (m + 1) / 2 <= u;
		upper += s - m * (m + 1) / 2 >= u;
	}
	return fmin(1, 2.0 * (lower < upper ? lower : upper) / total);
}

/* ---- Mann-Whitney U ---- */

/* R's ?wilcox.test, "Two-sample test. Hollander & Wolfe (1973), 69f.": x (10) against y
 * (5), alternative "greater", prints W = 35, p-value = 0.1272. Two-sided: 764/3003 (python3
 * over R's cwilcox recursion, and brute_exact_p() here). HL estimate and 95% CI from every
 * difference with qwilcox(0.025, 10, 5) = 9: 0.305, [-0.15, 0.76]. */
static void test_mwu_r_example(void **state)
{
	const double x[] = {0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46};
	const double y[] = {1.15, 0.88, 0.90, 0.74, 1.21};
	struct safe_judge_opts o = opts_min(5);
	struct safe_result r;
	double *d;

	assert_int_equal(safe_judge_samples(&LAT, x, 10, y, 5, &o, &r), 0);
	assert_int_equal(r.test, SAFE_TEST_MWU_EXACT);
	assert_int_equal(r.alternative, SAFE_ALT_TWO_SIDED);
	assert_close(r.statistic, 35, 0);
	assert_close(r.p / 2, 0.1272, 5e-5);
	assert_close(r.p, 764.0 / 3003, EPS);
	assert_close(r.p, brute_exact_p(10, 5, 35), EPS);
	assert_true(isnan(r.z));
	d = all_diffs(x, 10, y, 5);
	assert_close(r.shift, 0.5 * d[24] + 0.5 * d[25], 0);
	assert_close(r.ci_low, d[9 - 1], 0);
	assert_close(r.ci_high, d[50 - 9], 0);
	free(d);
	assert_close(r.shift, 0.305, 1e-12);
	assert_close(r.ci_low, -0.15, 1e-12);
	assert_close(r.ci_high, 0.76, 1e-12);
	assert_close(r.effect, 2 * 35.0 / 50 - 1, EPS);
	assert_close(r.canary_center, (1.38 + 1.45) / 2, EPS);
	assert_close(r.baseline_center, 0.90, 0);
	assert_int_equal(r.verdict, SAFE_VERDICT_INCONCLUSIVE);
	assert_string_equal(r.reason,
			    "p99 latency: no significant change (HL shift 0.305 ms, 95% CI "
			    "[-0.15, 0.76]), p=0.25");
}

/* Exact p against every subset of ranks, for several shapes without ties. */
static void test_mwu_exact_brute_force(void **state)
{
	struct safe_judge_opts o = opts_min(1);
	unsigned seed = 7;

	for (unsigned m = 1; m <= 8; m++) {
		for (unsigned n = 1; n <= 8; n++) {
			double a[8], b[8];
			struct safe_result r;

			/* distinct values: a permutation of 0..m+n-1 split into the arms */
			double all[16];
			for (unsigned i = 0; i < m + n; i++)
				all[i] = i * 1.5;
			for (unsigned i = m + n - 1; i > 0; i--) {
				unsigned k = (seed = seed * 1103515245 + 12345) % (i + 1);
				double t = all[i];

				all[i] = all[k];
				all[k] = t;
			}
			memcpy(a, all, m * sizeof(double));
			memcpy(b, all + m, n * sizeof(double));
			assert_int_equal(safe_judge_samples(&LAT, a, m, b, n, &o, &r), 0);
			assert_int_equal(r.test, SAFE_TEST_MWU_EXACT);
			assert_close(r.statistic, pairs_u(a, m, b, n), 0);
			assert_close(r.p, brute_exact_p(m, n, r.statistic), 1e-12);
		}
	}
}

/* Tiny, by hand: canary {1,2,3} below baseline {4,5,6}. U = 0; P(U <= 0) = 1/C(6,3) = 1/20,
 * two-sided p = 0.1. Differences: -5 -4 -4 -3 -3 -3 -2 -2 -1, median -3. qwilcox(0.025, 3,
 * 3) = 0 (P(U = 0) = 0.05 >= 0.025), taken as 1: CI [d(1), d(9)] = [-5, -1]. */
static void test_mwu_tiny_by_hand(void **state)
{
	const double c[] = {3, 1, 2}, b[] = {6, 4, 5};
	struct safe_judge_opts o = opts_min(3);
	struct safe_result r;

	assert_int_equal(safe_judge_samples(&LAT, c, 3, b, 3, &o, &r), 0);
	assert_int_equal(r.test, SAFE_TEST_MWU_EXACT);
	assert_close(r.statistic, 0, 0);
	assert_close(r.p, 0.1, EPS);
	assert_close(r.shift, -3, 0);
	assert_close(r.ci_low, -5, 0);
	assert_close(r.ci_high, -1, 0);
	assert_close(r.effect, -1, 0);
	assert_close(r.rel_shift, -0.6, EPS);
	assert_int_equal(r.verdict, SAFE_VERDICT_INCONCLUSIVE);

	/* n = 3 per arm with the default minimum (20): too few, whatever the data */
	assert_int_equal(safe_judge_samples(&LAT, c, 3, b, 3, NULL, &r), 0);
	assert_int_equal(r.verdict, SAFE_VERDICT_INCONCLUSIVE);
	assert_close(r.statistic, 0, 0);
	assert_string_equal(r.reason,
			    "p99 latency: too few samples (3 canary, 3 baseline; need 20 each)");
}

/* Ties: normal approximation with tie and continuity corrections. python3, R's formulas:
 *   x = [1,2,2,3,3,3,4,6]; y = [3,4,4,5,5,6,7,7,8]; midranks -> W = 9
 *   sigma = sqrt(72/12 * (18 - sum(t^3 - t)/(17*16))) = 10.277044665604189
 *   z = (9 - 36 + 0.5)/sigma = -2.5785623067973757, p = erfc(|z|/sqrt 2) = 0.0099212405973993379
 *   C = floor(36 - 1.959963984540054 * sigma) = 15: HL -2, CI [d(15), d(58)] = [-4, -1]
 * By hand, the tie groups: 3 (x3 + y1 = 4), 4 (1 + 2 = 3), 6 (1 + 1 = 2), 2 (2), 5 (2), 7 (2). */
static void test_mwu_ties(void **state)
{
	const double x[] = {1, 2, 2, 3, 3, 3, 4, 6};
	const double y[] = {3, 4, 4, 5, 5, 6, 7, 7, 8};
	struct safe_judge_opts o = opts_min(8);
	struct safe_result r;
	double *d;

	assert_int_equal(safe_judge_samples(&LAT, x, 8, y, 9, &o, &r), 0);
	assert_int_equal(r.test, SAFE_TEST_MWU_NORMAL);
	assert_close(r.statistic, 9, 0);
	assert_close(r.statistic, pairs_u(x, 8, y, 9), 0);
	assert_close(r.z, -2.5785623067973757, 1e-12);
	assert_close(r.p, 0.0099212405973993379, 1e-14);
	d = all_diffs(x, 8, y, 9);
	assert_close(r.shift, d[36], 0);
	assert_close(r.ci_low, d[15 - 1], 0);
	assert_close(r.ci_high, d[72 - 15], 0);
	free(d);
	assert_close(r.shift, -2, 0);
	assert_close(r.ci_low, -4, 0);
	assert_close(r.ci_high, -1, 0);
	assert_close(r.effect, 2 * 9.0 / 72 - 1, EPS);
	/* baseline median 5: -2 / 5 = 40% lower, significant: KEEP */
	assert_close(r.rel_shift, -0.4, EPS);
	assert_int_equal(r.verdict, SAFE_VERDICT_KEEP);
	assert_string_equal(r.reason, "p99 latency 40% lower (HL shift -2 ms, 95% CI [-4, -1]), "
				      "p=0.0099");
}

/* Constant identical samples: no test can tell them apart, and nothing is NaN. */
static void test_constant_samples(void **state)
{
	double c[30], b[40];
	struct safe_result r;
	char json[1024];

	for (size_t i = 0; i < 30; i++)
		c[i] = 5;
	for (size_t i = 0; i < 40; i++)
		b[i] = 5;
	assert_int_equal(safe_judge_samples(&LAT, c, 30, b, 40, NULL, &r), 0);
	assert_int_equal(r.test, SAFE_TEST_MWU_NORMAL);
	assert_int_equal(r.verdict, SAFE_VERDICT_INCONCLUSIVE);
	assert_all_finite(&r);
	assert_close(r.statistic, 600, 0);
	assert_close(r.z, 0, 0);
	assert_close(r.p, 1, 0);
	assert_close(r.shift, 0, 0);
	assert_close(r.ci_low, 0, 0);
	assert_close(r.ci_high, 0, 0);
	assert_close(r.effect, 0, 0);
	assert_close(r.rel_shift, 0, 0);
	assert_string_equal(r.reason, "p99 latency: no change (all 70 samples 5 ms)");
	assert_true(safe_result_json(&r, json, sizeof(json)) > 0);
	assert_null(strstr(json, "null"));
	assert_null(strstr(json, "nan"));
	assert_null(strstr(json, "inf"));

	/* all zeros: the baseline median is 0, yet the relative shift is 0, not NaN */
	memset(c, 0, sizeof(c));
	memset(b, 0, sizeof(b));
	assert_int_equal(safe_judge_samples(&LAT, c, 30, b, 40, NULL, &r), 0);
	assert_all_finite(&r);
	assert_int_equal(r.verdict, SAFE_VERDICT_INCONCLUSIVE);

	/* constant but different: 30 x 7 against 40 x 5, clearly worse */
	for (size_t i = 0; i < 30; i++)
		c[i] = 7;
	for (size_t i = 0; i < 40; i++)
		b[i] = 5;
	assert_int_equal(safe_judge_samples(&LAT, c, 30, b, 40, NULL, &r), 0);
	assert_all_finite(&r);
	assert_close(r.statistic, 1200, 0);
	assert_close(r.shift, 2, 0);
	assert_close(r.ci_low, 2, 0);
	assert_close(r.ci_high, 2, 0);
	assert_true(r.p < 1e-10);
	assert_int_equal(r.verdict, SAFE_VERDICT_ROLLBACK);
}

/* Deterministic spread: base + (i * 37 mod 20), values base..base+19. */
static void spread(double *v, size_t n, double base)
{
	for (size_t i = 0; i < n; i++)
		v[i] = base + (double)((i * 37) % 20);
}

/* Clear shifts both ways, for both directions of "better". python3, R's formulas: canary
 * base + 40 against base: W = 1600, z = 7.694996345028372, p = 1.4149821894308033e-14,
 * C = 596: HL 40, CI [37, 43]; canary base - 40: W = 0, z = -7.69..., HL -40, CI [-43, -37]. */
static void test_clear_shifts(void **state)
{
	double lowc[40], highc[40], base[40];
	struct safe_result r;

	spread(base, 40, 100); /* median 109.5 */
	spread(lowc, 40, 60);  /* 40 lower: every canary sample below every baseline sample */
	spread(highc, 40, 140);

	/* lower is better */
	assert_int_equal(safe_judge_samples(&LAT, lowc, 40, base, 40, NULL, &r), 0);
	assert_int_equal(r.test, SAFE_TEST_MWU_NORMAL); /* ties: values repeat */
	assert_close(r.statistic, 0, 0);
	assert_close(r.effect, -1, 0);
	assert_close(r.shift, -40, 0);
	assert_close(r.rel_shift, -40 / 109.5, EPS);
	assert_true(r.p < 1e-10);
	assert_true(r.ci_low <= -40 && r.ci_high >= -40 && r.ci_high < 0);
	assert_int_equal(r.verdict, SAFE_VERDICT_KEEP);
	assert_int_equal(safe_judge_samples(&LAT, highc, 40, base, 40, NULL, &r), 0);
	assert_close(r.statistic, 1600, 0);
	assert_close(r.z, 7.694996345028372, 1e-12);
	assert_close(r.p, 1.4149821894308033e-14, 1e-26);
	assert_close(r.effect, 1, 0);
	assert_close(r.shift, 40, 0);
	assert_close(r.ci_low, 37, 0);
	assert_close(r.ci_high, 43, 0);
	assert_int_equal(r.verdict, SAFE_VERDICT_ROLLBACK);
	assert_string_equal(r.reason, "p99 latency 37% higher (HL shift 40 ms, 95% CI [37, 43]), "
				      "p=1.4e-14");

	/* higher is better: the same samples, the opposite verdicts */
	assert_int_equal(safe_judge_samples(&TPUT, lowc, 40, base, 40, NULL, &r), 0);
	assert_int_equal(r.verdict, SAFE_VERDICT_ROLLBACK);
	assert_string_equal(r.reason,
			    "throughput 37% lower (HL shift -40 req/s, 95% CI [-43, -37]), "
			    "p=1.4e-14");
	assert_int_equal(safe_judge_samples(&TPUT, highc, 40, base, 40, NULL, &r), 0);
	assert_int_equal(r.verdict, SAFE_VERDICT_KEEP);

	/* the same arm against itself: no change */
	assert_int_equal(safe_judge_samples(&LAT, base, 40, base, 40, NULL, &r), 0);
	assert_close(r.statistic, 800, 0);
	assert_close(r.p, 1, 0);
	assert_close(r.shift, 0, 0);
	assert_int_equal(r.verdict, SAFE_VERDICT_INCONCLUSIVE);
}

/* Significant but small: 2 ms on a median of 1002 is 0.2%, under the 5% effect threshold;
 * the policy's absolute limit (max_worse) makes a worsening count, never a gain. */
static void test_effect_threshold(void **state)
{
	double base[60], worse[60], better[60];
	struct safe_judge_opts o = SAFE_JUDGE_OPTS_DEFAULT;
	struct safe_result r;

	for (size_t i = 0; i < 60; i++) {
		base[i] = 1000 + (double)((i * 7) % 5); /* 1000..1004, median 1002 */
		worse[i] = base[i] + 2;
		better[i] = base[i] - 2;
	}
	assert_int_equal(safe_judge_samples(&LAT, worse, 60, base, 60, &o, &r), 0);
	assert_true(r.p < 0.05);
	assert_close(r.shift, 2, 0);
	assert_int_equal(r.verdict, SAFE_VERDICT_INCONCLUSIVE);
	assert_non_null(strstr(r.reason, "0.2% higher, below the 5% effect threshold"));

	o.max_worse = 2; /* e.g. rollback_on.p99_latency_increase: 2ms */
	assert_int_equal(safe_judge_samples(&LAT, worse, 60, base, 60, &o, &r), 0);
	assert_int_equal(r.verdict, SAFE_VERDICT_ROLLBACK);
	assert_non_null(strstr(r.reason, "0.2% higher, beyond the 2 ms limit (HL shift 2 ms"));
	assert_int_equal(safe_judge_samples(&LAT, better, 60, base, 60, &o, &r), 0);
	assert_int_equal(r.verdict, SAFE_VERDICT_INCONCLUSIVE);

	o.max_worse = 3; /* the shift is below the limit: no rollback */
	assert_int_equal(safe_judge_samples(&LAT, worse, 60, base, 60, &o, &r), 0);
	assert_int_equal(r.verdict, SAFE_VERDICT_INCONCLUSIVE);

	o.max_worse = 0;
	o.min_effect = 0.001; /* 0.1%: now 0.2% counts */
	assert_int_equal(safe_judge_samples(&LAT, better, 60, base, 60, &o, &r), 0);
	assert_int_equal(r.verdict, SAFE_VERDICT_KEEP);
}

/* Baseline median 0: the relative shift is undefined (null), any shift counts. */
static void test_zero_baseline_median(void **state)
{
	double c[30], b[30];
	struct safe_result r;
	char json[2048];

	for (size_t i = 0; i < 30; i++) {
		b[i] = i < 20 ? 0 : 1; /* median 0 */
		c[i] = 5 + (double)(i % 3);
	}
	assert_int_equal(safe_judge_samples(&LAT, c, 30, b, 30, NULL, &r), 0);
	assert_close(r.baseline_center, 0, 0);
	assert_true(isnan(r.rel_shift));
	assert_int_equal(r.verdict, SAFE_VERDICT_ROLLBACK);
	assert_non_null(strstr(r.reason, "p99 latency higher than a zero baseline median"));
	assert_true(safe_result_json(&r, json, sizeof(json)) > 0);
	assert_non_null(strstr(json, "\"rel_shift\":null,"));
}

/* Baseline 1..50, canary = baseline + 10: every difference is i - j + 10, symmetric about 10,
 * so HL = 10 exactly. Ties across the arms (11..50): normal approximation. python3, R's
 * formulas: W = 1700, z = 3.0991439908112963, p = 0.0019408067072591562; C = floor(1250 -
 * 1.959963984540054 sigma) = 965: CI [d(965), d(1536)] = [4, 16]. With + 10.5 there is no
 * tie: exact (R's cwilcox recursion in python3) p = 0.0010550164711136758, qwilcox(0.025, 50,
 * 50) = 966, HL 10.5, CI [4.5, 16.5]. */
static void test_hl_known_shift(void **state)
{
	double b[50], c[50];
	struct safe_result r;

	for (size_t i = 0; i < 50; i++) {
		b[i] = (double)i + 1;
		c[i] = b[i] + 10;
	}
	assert_int_equal(safe_judge_samples(&LAT, c, 50, b, 50, NULL, &r), 0);
	assert_int_equal(r.test, SAFE_TEST_MWU_NORMAL);
	assert_close(r.shift, 10, 0);
	assert_close(r.statistic, 1700, 0);
	assert_close(r.z, 3.0991439908112963, 1e-12);
	assert_close(r.p, 0.0019408067072591562, 1e-15);
	assert_close(r.ci_low, 4, 0);
	assert_close(r.ci_high, 16, 0);
	assert_close(r.rel_shift, 10 / 25.5, EPS);
	assert_int_equal(r.verdict, SAFE_VERDICT_ROLLBACK);

	for (size_t i = 0; i < 50; i++)
		c[i] = b[i] + 10.5;
	assert_int_equal(safe_judge_samples(&LAT, c, 50, b, 50, NULL, &r), 0);
	assert_int_equal(r.test, SAFE_TEST_MWU_EXACT);
	assert_close(r.statistic, 1720, 0);
	assert_close(r.p, 0.0010550164711136758, 1e-13);
	assert_close(r.shift, 10.5, 0);
	assert_close(r.ci_low, 4.5, 0);
	assert_close(r.ci_high, 16.5, 0);

	/* exact_max 0 forces the normal approximation on the same data */
	struct safe_judge_opts o = SAFE_JUDGE_OPTS_DEFAULT;

	o.exact_max = 0;
	assert_int_equal(safe_judge_samples(&LAT, c, 50, b, 50, &o, &r), 0);
	assert_int_equal(r.test, SAFE_TEST_MWU_NORMAL);
	assert_close(r.p, 0.0010550164711136758, 2e-4);
}

/* The selection against every difference sorted, on random samples with ties and uneven
 * arms, with both CI rules: U, HL and the CI order statistics must be exactly the brute
 * force ones. */
static void test_hl_selection_brute_force(void **state)
{
	static const size_t sizes[][2] = {{1, 1},   {1, 7},   {7, 1},	  {2, 2},
					  {13, 31}, {60, 45}, {200, 150}, {301, 77}};
	unsigned seed = 12345;

	for (size_t t = 0; t < ARRAY_SIZE(sizes); t++) {
		size_t n1 = sizes[t][0], n2 = sizes[t][1], nn = n1 * n2, c;
		double *a = malloc(n1 * sizeof(*a)), *b = malloc(n2 * sizeof(*b)), *d, med;
		struct safe_judge_opts o = opts_min(1);
		struct safe_result r;

		assert_non_null(a);
		assert_non_null(b);
		for (size_t i = 0; i < n1; i++)
			a[i] = (double)((seed = seed * 1103515245 + 12345) >> 16 & 63) / 4;
		for (size_t i = 0; i < n2; i++)
			b[i] = (double)((seed = seed * 1103515245 + 12345) >> 16 & 63) / 4 - 1;
		o.exact_max = 0;
		assert_int_equal(safe_judge_samples(&LAT, a, n1, b, n2, &o, &r), 0);
		d = all_diffs(a, n1, b, n2);
		med = nn % 2 ? d[nn / 2] : 0.5 * d[nn / 2 - 1] + 0.5 * d[nn / 2];
		assert_close(r.statistic, pairs_u(a, n1, b, n2), 0);
		assert_close(r.shift, med, 0);
		/* the CI must be a pair of order statistics d(C), d(N + 1 - C) */
		for (c = 1; c <= (nn + 1) / 2; c++)
			if (d[c - 1] == r.ci_low && d[nn - c] == r.ci_high)
				break;
		assert_true(c <= (nn + 1) / 2);
		assert_true(r.ci_low <= r.shift && r.shift <= r.ci_high);
		free(d);
		free(a);
		free(b);
	}
}

/* Large arms: 200000 x 150000 = 3e10 differences, never stored. Canary = baseline + 3
 * (ties everywhere), so the HL shift is exactly 3. */
static void test_hl_large(void **state)
{
	size_t n1 = 200000, n2 = 150000;
	double *a = malloc(n1 * sizeof(*a)), *b = malloc(n2 * sizeof(*b));
	struct safe_result r;

	assert_non_null(a);
	assert_non_null(b);
	for (size_t i = 0; i < n1; i++)
		a[i] = 3 + (double)((i * 7919) % 1000);
	for (size_t i = 0; i < n2; i++)
		b[i] = (double)((i * 104729) % 1000);
	assert_int_equal(safe_judge_samples(&LAT, a, n1, b, n2, NULL, &r), 0);
	assert_close(r.shift, 3, 0);
	assert_true(r.ci_low <= 3 && r.ci_high >= 3 && r.ci_high - r.ci_low <= 4);
	assert_true(r.p < 0.05);
	assert_int_equal(r.verdict, SAFE_VERDICT_INCONCLUSIVE); /* 0.6% < 5% */
	free(a);
	free(b);
}

static void test_samples_errors(void **state)
{
	const double ok[] = {1, 2, 3};
	const double bad[] = {1, NAN, 3};
	const double inf[] = {1, INFINITY, 3};
	const double huge[] = {1, -1e301, 3};
	struct safe_judge_opts o = SAFE_JUDGE_OPTS_DEFAULT;
	struct safe_metric m = LAT;
	struct safe_result r;

	assert_int_equal(safe_judge_samples(&LAT, bad, 3, ok, 3, NULL, &r), -EINVAL);
	assert_int_equal(r.verdict, SAFE_VERDICT_INCONCLUSIVE);
	assert_true(isnan(r.p));
	assert_int_equal(safe_judge_samples(&LAT, ok, 3, inf, 3, NULL, &r), -EINVAL);
	assert_int_equal(safe_judge_samples(&LAT, huge, 3, ok, 3, NULL, &r), -EINVAL);
	assert_int_equal(safe_judge_samples(&LAT, NULL, 3, ok, 3, NULL, &r), -EINVAL);
	assert_int_equal(safe_judge_samples(NULL, ok, 3, ok, 3, NULL, &r), -EINVAL);
	assert_int_equal(safe_judge_samples(&LAT, ok, 3, ok, 3, NULL, NULL), -EINVAL);
	m.better = SAFE_BETTER_COUNT;
	assert_int_equal(safe_judge_samples(&m, ok, 3, ok, 3, NULL, &r), -EINVAL);
	o.alpha = 0;
	assert_int_equal(safe_judge_samples(&LAT, ok, 3, ok, 3, &o, &r), -EINVAL);
	o.alpha = NAN;
	assert_int_equal(safe_judge_samples(&LAT, ok, 3, ok, 3, &o, &r), -EINVAL);
	o = (struct safe_judge_opts)SAFE_JUDGE_OPTS_DEFAULT;
	o.min_samples = 0;
	assert_int_equal(safe_judge_samples(&LAT, ok, 3, ok, 3, &o, &r), -EINVAL);
	o = (struct safe_judge_opts)SAFE_JUDGE_OPTS_DEFAULT;
	o.exact_max = 1000;
	assert_int_equal(safe_judge_samples(&LAT, ok, 3, ok, 3, &o, &r), -EINVAL);

	/* an empty arm is not an error: INCONCLUSIVE, nothing computed */
	assert_int_equal(safe_judge_samples(&LAT, ok, 3, NULL, 0, NULL, &r), 0);
	assert_int_equal(r.test, SAFE_TEST_NONE);
	assert_int_equal(r.verdict, SAFE_VERDICT_INCONCLUSIVE);
	assert_true(isnan(r.p) && isnan(r.shift) && isnan(r.baseline_center));
	assert_close(r.canary_center, 2, 0);
	assert_string_equal(r.reason,
			    "p99 latency: too few samples (3 canary, 0 baseline; need 20 each)");
}

/* ---- error rates ---- */

static void test_errors_sparse(void **state)
{
	struct safe_result r;

	/* 0/1000 vs 0/1000: no evidence of harm */
	assert_int_equal(safe_judge_errors(NULL, 0, 1000, 0, 1000, NULL, &r), 0);
	assert_int_equal(r.test, SAFE_TEST_NO_ERRORS);
	assert_int_not_equal(r.verdict, SAFE_VERDICT_ROLLBACK);
	assert_int_equal(r.verdict, SAFE_VERDICT_INCONCLUSIVE);
	assert_close(r.p, 1, 0);
	assert_close(r.shift, 0, 0);
	assert_close(r.rel_shift, 0, 0);
	assert_close(r.effect, 0, 0);
	assert_string_equal(r.reason, "error rate: no errors in either arm (0 of 1000, 0 of 1000): "
				      "no evidence of harm");

	/* 5/1000 vs 0/1000: Fisher one-sided, P(X >= 5) = C(1000,5)/C(2000,5)
	 * = prod_{i<5} (1000 - i)/(2000 - i) = 0.031093789258174406 (python3 fractions) < 0.05,
	 * and +0.5 pp >= 0.1 pp: ROLLBACK. Newcombe 95% CI (python3, Wilson score intervals):
	 * [0.00022111065580109925, 0.011650955373375113]. */
	assert_int_equal(safe_judge_errors(NULL, 5, 1000, 0, 1000, NULL, &r), 0);
	assert_int_equal(r.test, SAFE_TEST_FISHER);
	assert_int_equal(r.alternative, SAFE_ALT_GREATER);
	assert_close(r.p, 1000.0 / 2000 * 999 / 1999 * 998 / 1998 * 997 / 1997 * 996 / 1996, 1e-12);
	assert_close(r.p, 0.031093789258174406, 1e-12);
	assert_close(r.statistic, 5, 0);
	assert_close(r.shift, 0.005, EPS);
	assert_close(r.ci_low, 0.00022111065580109925, 1e-12);
	assert_close(r.ci_high, 0.011650955373375113, 1e-12);
	assert_true(isnan(r.rel_shift));
	assert_int_equal(r.verdict, SAFE_VERDICT_ROLLBACK);
	assert_string_equal(r.reason, "error rate higher (0.5% vs 0%, +0.5 pp, 95% CI [0.0221, "
				      "1.17] pp), p=0.031");

	/* 1/1000 vs 0/1000: P(X >= 1) = 1/2 */
	assert_int_equal(safe_judge_errors(NULL, 1, 1000, 0, 1000, NULL, &r), 0);
	assert_int_equal(r.test, SAFE_TEST_FISHER);
	assert_close(r.p, 0.5, 1e-12);
	assert_int_equal(r.verdict, SAFE_VERDICT_INCONCLUSIVE);

	/* 0/1000 vs 8/1000: the improvement side, P(X <= 0) = prod_{i<8} (1000 - i)/(2000 - i)
	 * = 0.0038517404255419487 (python3): KEEP */
	assert_int_equal(safe_judge_errors(NULL, 0, 1000, 8, 1000, NULL, &r), 0);
	assert_int_equal(r.test, SAFE_TEST_FISHER);
	assert_int_equal(r.alternative, SAFE_ALT_LESS);
	assert_close(r.p, 0.0038517404255419487, 1e-12);
	assert_int_equal(r.verdict, SAFE_VERDICT_KEEP);

	/* 3/40 vs 0/40: P(X >= 3) = C(40,3)/C(80,3) = 0.12025316455696203 */
	struct safe_judge_opts o = opts_min(20);

	assert_int_equal(safe_judge_errors("errors", 3, 40, 0, 40, &o, &r), 0);
	assert_close(r.p, 40.0 * 39 * 38 / (80 * 79 * 78), 1e-12);
	assert_int_equal(r.verdict, SAFE_VERDICT_INCONCLUSIVE);
	assert_string_equal(r.metric, "errors");

	/* too few events */
	assert_int_equal(safe_judge_errors(NULL, 5, 10, 0, 1000, NULL, &r), 0);
	assert_int_equal(r.verdict, SAFE_VERDICT_INCONCLUSIVE);
	assert_string_equal(r.reason,
			    "error rate: too few events (10 canary, 1000 baseline; need 20 each)");
}

/* 60/1000 vs 30/1000, counts large enough for the z-test. python3: pooled 0.045,
 * z = 0.03 / sqrt(0.045 * 0.955 * 2/1000) = 3.2359240084528675, p = 0.00060624829307710998;
 * Newcombe [0.011888186350376733, 0.048724790862155656]; h = 0.14676810506793464. */
static void test_errors_z(void **state)
{
	struct safe_judge_opts o = SAFE_JUDGE_OPTS_DEFAULT;
	struct safe_result r;

	assert_int_equal(safe_judge_errors(NULL, 60, 1000, 30, 1000, NULL, &r), 0);
	assert_int_equal(r.test, SAFE_TEST_TWO_PROP_Z);
	assert_int_equal(r.alternative, SAFE_ALT_GREATER);
	assert_close(r.z, 3.2359240084528675, 1e-12);
	assert_close(r.statistic, r.z, 0);
	assert_close(r.p, 0.00060624829307710998, 1e-15);
	assert_close(r.ci_low, 0.011888186350376733, 1e-12);
	assert_close(r.ci_high, 0.048724790862155656, 1e-12);
	assert_close(r.effect, 0.14676810506793464, 1e-12);
	assert_close(r.rel_shift, 1, EPS);
	assert_int_equal(r.verdict, SAFE_VERDICT_ROLLBACK);

	/* the same, the other way round: an improvement */
	assert_int_equal(safe_judge_errors(NULL, 30, 1000, 60, 1000, NULL, &r), 0);
	assert_int_equal(r.alternative, SAFE_ALT_LESS);
	assert_close(r.z, -3.2359240084528675, 1e-12);
	assert_close(r.p, 0.00060624829307710998, 1e-15);
	assert_int_equal(r.verdict, SAFE_VERDICT_KEEP);

	/* significant but under the absolute threshold (5 pp) */
	o.error_rate_increase = 0.05;
	assert_int_equal(safe_judge_errors(NULL, 60, 1000, 30, 1000, &o, &r), 0);
	assert_int_equal(r.verdict, SAFE_VERDICT_INCONCLUSIVE);
	assert_string_equal(r.reason, "error rate higher, below the 5 pp threshold (6% vs 3%, +3 "
				      "pp, 95% CI [1.19, 4.87] pp), p=0.00061");

	/* equal rates: nothing */
	assert_int_equal(safe_judge_errors(NULL, 30, 1000, 30, 1000, NULL, &r), 0);
	assert_close(r.z, 0, 0);
	assert_close(r.p, 0.5, EPS);
	assert_int_equal(r.verdict, SAFE_VERDICT_INCONCLUSIVE);

	/* every event failed on both sides: p = 1, no NaN */
	assert_int_equal(safe_judge_errors(NULL, 100, 100, 100, 100, NULL, &r), 0);
	assert_close(r.p, 1, EPS);
	assert_int_equal(r.verdict, SAFE_VERDICT_INCONCLUSIVE);

	assert_int_equal(safe_judge_errors(NULL, 11, 10, 0, 10, NULL, &r), -EINVAL);
	assert_int_equal(safe_judge_errors(NULL, 0, 10, 0, 10, NULL, NULL), -EINVAL);
}

/* ---- combined verdict ---- */

static void test_combine(void **state)
{
	static const struct {
		enum safe_verdict in[3];
		size_t n;
		enum safe_verdict want;
	} cases[] = {
	    {{SAFE_VERDICT_KEEP}, 1, SAFE_VERDICT_KEEP},
	    {{SAFE_VERDICT_ROLLBACK}, 1, SAFE_VERDICT_ROLLBACK},
	    {{SAFE_VERDICT_INCONCLUSIVE}, 1, SAFE_VERDICT_INCONCLUSIVE},
	    {{0}, 0, SAFE_VERDICT_INCONCLUSIVE},
	    {{SAFE_VERDICT_KEEP, SAFE_VERDICT_INCONCLUSIVE, SAFE_VERDICT_INCONCLUSIVE},
	     3,
	     SAFE_VERDICT_KEEP},
	    {{SAFE_VERDICT_KEEP, SAFE_VERDICT_KEEP, SAFE_VERDICT_ROLLBACK},
	     3,
	     SAFE_VERDICT_ROLLBACK},
	    {{SAFE_VERDICT_INCONCLUSIVE, SAFE_VERDICT_ROLLBACK, SAFE_VERDICT_KEEP},
	     3,
	     SAFE_VERDICT_ROLLBACK},
	    {{SAFE_VERDICT_INCONCLUSIVE, SAFE_VERDICT_INCONCLUSIVE}, 2, SAFE_VERDICT_INCONCLUSIVE},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct safe_result r[3] = {0};

		for (size_t j = 0; j < cases[i].n; j++)
			r[j].verdict = cases[i].in[j];
		assert_int_equal(safe_judge_combine(r, cases[i].n), cases[i].want);
	}
	assert_int_equal(safe_judge_combine(NULL, 0), SAFE_VERDICT_INCONCLUSIVE);

	/* real results: latency better, error rate unchanged, throughput worse */
	double base[40], low[40];
	struct safe_result r[3];

	spread(base, 40, 100);
	spread(low, 40, 60);
	assert_int_equal(safe_judge_samples(&LAT, low, 40, base, 40, NULL, &r[0]), 0);
	assert_int_equal(safe_judge_errors(NULL, 0, 1000, 0, 1000, NULL, &r[1]), 0);
	assert_int_equal(safe_judge_combine(r, 2), SAFE_VERDICT_KEEP);
	assert_int_equal(safe_judge_samples(&TPUT, low, 40, base, 40, NULL, &r[2]), 0);
	assert_int_equal(safe_judge_combine(r, 3), SAFE_VERDICT_ROLLBACK);
}

/* ---- JSON ---- */

static void test_json(void **state)
{
	const double c[] = {3, 1, 2}, b[] = {6, 4, 5};
	struct safe_judge_opts o = opts_min(3);
	struct safe_metric m = {"lat\"ency", "ms", SAFE_BETTER_LOWER};
	struct safe_result r[2];
	char json[2048], small[16];
	int n;
	const char *want =
	    "{\"metric\":\"lat\\\"ency\",\"unit\":\"ms\",\"better\":\"lower\","
	    "\"test\":\"mann-whitney-u-exact\",\"alternative\":\"two-sided\",\"n_canary\":3,"
	    "\"n_baseline\":3,\"statistic\":0,\"z\":null,\"p\":0.1,\"shift\":-3,\"ci\":[-5,-1],"
	    "\"confidence\":0.95,\"effect\":-1,\"rel_shift\":-0.6,\"canary_median\":2,"
	    "\"baseline_median\":5,\"verdict\":\"INCONCLUSIVE\",\"reason\":\"lat\\\"ency: no "
	    "significant change (HL shift -3 ms, 95% CI [-5, -1]), p=0.1\"}";

	assert_int_equal(safe_judge_samples(&m, c, 3, b, 3, &o, &r[0]), 0);
	assert_int_equal(safe_result_json(&r[0], json, sizeof(json)), (int)strlen(want));
	assert_string_equal(json, want);

	/* too small: -ENAMETOOLONG and a terminated prefix */
	assert_int_equal(safe_result_json(&r[0], small, sizeof(small)), -ENAMETOOLONG);
	assert_string_equal(small, "{\"metric\":\"lat\\");
	assert_int_equal(safe_result_json(&r[0], NULL, 0), -ENAMETOOLONG);

	/* an error rate: null for what was not computed */
	assert_int_equal(safe_judge_errors(NULL, 0, 1000, 0, 1000, NULL, &r[1]), 0);
	n = safe_result_json(&r[1], json, sizeof(json));
	assert_int_equal(n, (int)strlen(json));
	assert_string_equal(json,
			    "{\"metric\":\"error rate\",\"unit\":\"\",\"better\":\"lower\","
			    "\"test\":\"no-errors\",\"alternative\":\"greater\",\"n_canary\":1000,"
			    "\"n_baseline\":1000,\"errors_canary\":0,\"errors_baseline\":0,"
			    "\"statistic\":null,\"z\":null,\"p\":1,\"shift\":0,"
			    "\"ci\":[-0.0038267584855551234,0.0038267584855551234],"
			    "\"confidence\":0.95,\"effect\":0,\"rel_shift\":0,\"canary_rate\":0,"
			    "\"baseline_rate\":0,\"verdict\":\"INCONCLUSIVE\",\"reason\":\"error "
			    "rate: no errors in either arm (0 of 1000, 0 of 1000): no evidence of "
			    "harm\"}");

	/* the stats_json of a change: the combined verdict and every metric */
	assert_true(safe_results_json(r, 2, json, sizeof(json)) > 0);
	assert_memory_equal(json, "{\"verdict\":\"INCONCLUSIVE\",\"metrics\":[{\"metric\":", 47);
	assert_int_equal(json[strlen(json) - 1], '}');
	assert_int_equal(safe_results_json(NULL, 0, json, sizeof(json)), 39);
	assert_string_equal(json, "{\"verdict\":\"INCONCLUSIVE\",\"metrics\":[]}");
}

static void test_names(void **state)
{
	assert_string_equal(safe_verdict_name(SAFE_VERDICT_KEEP), "KEEP");
	assert_string_equal(safe_verdict_name(SAFE_VERDICT_ROLLBACK), "ROLLBACK");
	assert_string_equal(safe_verdict_name(SAFE_VERDICT_INCONCLUSIVE), "INCONCLUSIVE");
	assert_null(safe_verdict_name(SAFE_VERDICT_COUNT));
	assert_string_equal(safe_better_name(SAFE_BETTER_HIGHER), "higher");
	assert_string_equal(safe_test_name(SAFE_TEST_FISHER), "fisher-exact");
	assert_string_equal(safe_alternative_name(SAFE_ALT_LESS), "less");
	assert_null(safe_test_name(SAFE_TEST_COUNT));
}

static void test_opts_from_policy(void **state)
{
	struct safe_policy p = {0};
	struct safe_judge_opts o;

	safe_judge_opts_init(&o, NULL);
	assert_close(o.alpha, 0.05, 0);
	assert_int_equal(o.min_samples, 20);
	assert_close(o.min_effect, 0.05, 0);
	assert_close(o.error_rate_increase, 0.001, 0);
	assert_int_equal(o.exact_max, 50);
	p.canary.alpha = 0.01;
	p.canary.min_samples = 30;
	p.canary.effect_size = 0.1;
	p.rollback_on.error_rate_increase = 0.002;
	safe_judge_opts_init(&o, &p);
	assert_close(o.alpha, 0.01, 0);
	assert_int_equal(o.min_samples, 30);
	assert_close(o.min_effect, 0.1, 0);
	assert_close(o.error_rate_increase, 0.002, 0);
	assert_close(o.max_worse, 0, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mwu_r_example),
	    cmocka_unit_test(test_mwu_exact_brute_force),
	    cmocka_unit_test(test_mwu_tiny_by_hand),
	    cmocka_unit_test(test_mwu_ties),
	    cmocka_unit_test(test_constant_samples),
	    cmocka_unit_test(test_clear_shifts),
	    cmocka_unit_test(test_effect_threshold),
	    cmocka_unit_test(test_zero_baseline_median),
	    cmocka_unit_test(test_hl_known_shift),
	    cmocka_unit_test(test_hl_selection_brute_force),
	    cmocka_unit_test(test_hl_large),
	    cmocka_unit_test(test_samples_errors),
	    cmocka_unit_test(test_errors_sparse),
	    cmocka_unit_test(test_errors_z),
	    cmocka_unit_test(test_combine),
	    cmocka_unit_test(test_json),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_opts_from_policy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
