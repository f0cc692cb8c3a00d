/* judge.c - the canary judge of judge.h: Mann-Whitney U with Hodges-Lehmann shift, error-rate
 * tests, verdicts and their JSON.
 *
 * Why these tests: latency and cost samples are skewed and heavy-tailed, so rank tests (no
 * normality assumed) and a median-based shift; error counts are binomial and often sparse,
 * so an exact test when counts are small. R's wilcox.test is the reference for U, p and the
 * confidence interval; the tests quote or recompute its values.
 *
 * Invariants: no function here allocates more than O(n1 + n2) (samples) or
 * O(min(n1, n2) * n1 * n2) doubles (the exact null distribution, only for arms of at most
 * exact_max <= SAFE_EXACT_LIMIT samples); every double stored in a result is finite or NAN;
 * results depend on the inputs only (the selection's pivots come from a fixed-seed
 * generator), so the same samples always give the same JSON.
 */
#include <inttypes.h>
#include <limits.h>
#include <math.h>

#include "safety/judge.h"
#include "lib/util.h"

/* Largest exact_max accepted: the exact distribution of U for 100 x 100 takes 8 MB of doubles
 * and about 10^8 additions; beyond that the normal approximation is as good. */
#define SAFE_EXACT_LIMIT 100
/* Largest magnitude of a sample, so that every difference of two is finite. */
#define SAFE_SAMPLE_MAX 1e300
/* Fisher's exact test when an expected cell of the 2x2 table is below this. */
#define FISHER_MIN_EXPECTED 5.0

/* ---- names ---- */

static const char *const verdict_names[SAFE_VERDICT_COUNT] = {
    [SAFE_VERDICT_KEEP] = "KEEP",
    [SAFE_VERDICT_ROLLBACK] = "ROLLBACK",
    [SAFE_VERDICT_INCONCLUSIVE] = "INCONCLUSIVE",
};

static const char *const better_names[SAFE_BETTER_COUNT] = {
    [SAFE_BETTER_LOWER] = "lower",
    [SAFE_BETTER_HIGHER] = "higher",
};

static const char *const test_names[SAFE_TEST_COUNT] = {
    [SAFE_TEST_NONE] = "none",
    [SAFE_TEST_MWU_EXACT] = "mann-whitney-u-exact",
    [SAFE_TEST_MWU_NORMAL] = "mann-whitney-u",
    [SAFE_TEST_FISHER] = "fisher-exact",
    [SAFE_TEST_TWO_PROP_Z] = "two-proportion-z",
    [SAFE_TEST_NO_ERRORS] = "no-errors",
};

static const char *const alternative_names[SAFE_ALT_COUNT] = {
    [SAFE_ALT_TWO_SIDED] = "two-sided",
    [SAFE_ALT_GREATER] = "greater",
    [SAFE_ALT_LESS] = "less",
};

const char *safe_verdict_name(enum safe_verdict v)
{
	return (unsigned)v < SAFE_VERDICT_COUNT ? verdict_names[v] : NULL;
}

const char *safe_better_name(enum safe_better b)
{
	return (unsigned)b < SAFE_BETTER_COUNT ? better_names[b] : NULL;
}

const char *safe_test_name(enum safe_test t)
{
	return (unsigned)t < SAFE_TEST_COUNT ? test_names[t] : NULL;
}

const char *safe_alternative_name(enum safe_alternative a)
{
	return (unsigned)a < SAFE_ALT_COUNT ? alternative_names[a] : NULL;
}

/* ---- options ---- */

void safe_judge_opts_init(struct safe_judge_opts *o, const struct safe_policy *p)
{
	*o = (struct safe_judge_opts)SAFE_JUDGE_OPTS_DEFAULT;
	if (!p)
		return;
	o->alpha = p->canary.alpha;
	o->min_samples = p->canary.min_samples > 0 ? (size_t)p->canary.min_samples : 1;
	o->min_effect = p->canary.effect_size;
	o->error_rate_increase = p->rollback_on.error_rate_increase;
}

static int opts_check(const struct safe_judge_opts *o)
{
	if (!(o->alpha > 0 && o->alpha <= 0.5) || o->min_samples < 1 ||
	    !(o->min_effect >= 0 && isfinite(o->min_effect)) ||
	    !(o->max_worse >= 0 && isfinite(o->max_worse)) ||
	    !(o->error_rate_increase >= 0 && o->error_rate_increase <= 1) ||
	    o->exact_max > SAFE_EXACT_LIMIT)
		return -EINVAL;
	return 0;
}

/* ---- the normal distribution ---- */

/* P(Z > z) and P(Z < z), accurate in the tails (erfc, not 1 - erf). */
static double norm_upper(double z)
{
	return 0.5 * erfc(z / M_SQRT2);
}

static double norm_lower(double z)
{
	return 0.5 * erfc(-z / M_SQRT2);
}

/* z with P(Z > z) = q, 0 < q < 1, by bisection: 200 halvings of [-40, 40] reach the last
 * bit, and alpha is a parameter, so no table of quantiles. */
static double norm_upper_quantile(double q)
{
	double lo = -40, hi = 40;

	for (int i = 0; i < 200 && lo < hi; i++) {
		double mid = 0.5 * (lo + hi);

		if (mid == lo || mid == hi)
			break;
		if (norm_upper(mid) > q)
			lo = mid;
		else
			hi = mid;
	}
	return 0.5 * (lo + hi);
}

/* ---- Mann-Whitney U ---- */

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return (a > b) - (a < b);
}

static double median_sorted(const double *v, size_t n)
{
	return n % 2 ? v[n / 2] : 0.5 * v[n / 2 - 1] + 0.5 * v[n / 2];
}

struct mwu_ranks {
	double u;	 /* U of the canary */
	double tie_frac; /* sum (t^3 - t) / (N (N - 1)) over groups of t equal values */
	bool ties;	 /* some value occurs more than once */
	bool all_equal;	 /* every value is the same */
};

/* U and the tie term by merging the sorted arms: for each distinct value v with ca canary
 * and cb baseline samples, the canary gains ca * (baseline samples below v) + ca * cb / 2
 * (midranks). */
static void mwu_ranks(const double *a, size_t n1, const double *b, size_t n2, struct mwu_ranks *r)
{
	double big_n = (double)n1 + (double)n2;
	size_t i = 0, j = 0;

	*r = (struct mwu_ranks){0};
	while (i < n1 || j < n2) {
		double v = i < n1 && (j >= n2 || a[i] <= b[j]) ? a[i] : b[j];
		size_t ca = 0, cb = 0;

		while (i < n1 && a[i] == v)
			i++, ca++;
		while (j < n2 && b[j] == v)
			j++, cb++;
		r->u += (double)ca * (double)(j - cb) + 0.5 * (double)ca * (double)cb;
		if (ca + cb > 1) {
			double t = (double)(ca + cb);

			r->ties = true;
			r->tie_frac += (t - 1) / big_n * t * (t + 1) / (big_n - 1);
		}
	}
	r->all_equal = a[0] == a[n1 - 1] && b[0] == b[n2 - 1] && a[0] == b[0];
}

/* The null distribution of U for arms of m and n samples, as counts: cnt[u], u = 0..m*n,
 * sums to C(m + n, m). Dynamic programming over the ranks 1..m+n: choosing rank t as the
 * j-th smallest of the chosen set adds t - j to U. Doubles: the counts overflow 64 bits
 * (C(200, 100) ~ 9e58) and only ratios are needed. */
static double *mwu_null_counts(size_t m, size_t n)
{
	size_t w = m * n + 1;
	double *dp = calloc((m + 1) * w, sizeof(*dp));
	double *cnt;

	if (!dp)
		return NULL;
	dp[0] = 1;
	for (size_t t = 1; t <= m + n; t++) {
		for (size_t j = t < m ? t : m; j >= 1; j--) {
			const double *from = dp + (j - 1) * w;
			double *to = dp + j * w + (t - j);
			size_t umax = (j - 1) * (t - j); /* largest U of j-1 ranks out of t-1 */

			for (size_t u = 0; u <= umax; u++)
				to[u] += from[u];
		}
	}
	cnt = malloc(w * sizeof(*cnt));
	if (cnt)
		memcpy(cnt, dp + m * w, w * sizeof(*cnt));
	free(dp);
	return cnt;
}

/* The k-th smallest (0-based) of the n1*n2 differences a[i] - b[j] of two sorted arrays,
 * without storing them. Row i, column j holds a[i] - b[n2 - 1 - j], increasing along both;
 * each row keeps a window [lo, hi) of columns that may still hold the answer. A random
 * candidate is the pivot; two-pointer walks count the differences below and up to it and
 * every window shrinks past it. Each round is O(n1 + n2) and removes a random share of the
 * candidates, so about log(n1 n2) rounds. */
struct hl_work {
	size_t *lo, *hi, *lt, *le; /* n1 each */
	uint64_t rng;
};

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Counts differences < p (strict) or <= p, with each row's count in pos[]. */
static uint64_t hl_count(const double *a, size_t n1, const double *b, size_t n2, double p,
			 bool strict, size_t *pos)
{
	uint64_t total = 0;
	size_t j = n2;

	for (size_t i = 0; i < n1; i++) {
		while (j > 0) {
			double d = a[i] - b[n2 - j];

			if (strict ? d < p : d <= p)
				break;
			j--;
		}
		pos[i] = j;
		total += j;
	}
	return total;
}

static double hl_select(const double *a, size_t n1, const double *b, size_t n2, uint64_t k,
			struct hl_work *w)
{
	for (size_t i = 0; i < n1; i++) {
		w->lo[i] = 0;
		w->hi[i] = n2;
	}
	for (;;) {
		uint64_t rem = 0, r, below, upto;
		double pivot = 0;

		for (size_t i = 0; i < n1; i++)
			rem += w->hi[i] - w->lo[i];
		/* rem > 0: the answer's value is never excluded */
		r = splitmix64(&w->rng) % rem;
		for (size_t i = 0; i < n1; i++) {
			uint64_t width = w->hi[i] - w->lo[i];

			if (r < width) {
				pivot = a[i] - b[n2 - 1 - (w->lo[i] + r)];
				break;
			}
			r -= width;
		}
		below = hl_count(a, n1, b, n2, pivot, true, w->lt);
		upto = hl_count(a, n1, b, n2, pivot, false, w->le);
		if (k < below) {
			for (size_t i = 0; i < n1; i++)
				if (w->lt[i] < w->hi[i])
					w->hi[i] = w->lt[i];
		} else if (k >= upto) {
			for (size_t i = 0; i < n1; i++)
				if (w->le[i] > w->lo[i])
					w->lo[i] = w->le[i];
		} else {
			return pivot;
		}
	}
}

/* ---- text ---- */

/* snprintf that may truncate: reasons are for people, a cut one is still useful. */
static void say(char *buf, size_t size, const char *fmt, ...) HS_PRINTF(3, 4);
static void say(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

/* A number for people: 3 significant digits, whole numbers from 1000 up. */
static const char *num(char *buf, size_t size, double x)
{
	if (!isfinite(x))
		snprintf(buf, size, "%s", "n/a");
	else if (fabs(x) >= 1000 && fabs(x) < 1e15)
		snprintf(buf, size, "%.0f", x);
	else
		snprintf(buf, size, "%.3g", x == 0 ? 0.0 : x);
	return buf;
}

static const char *pct(char *buf, size_t size, double frac)
{
	double x = fabs(frac) * 100;

	if (x >= 10)
		snprintf(buf, size, "%.0f", x);
	else
		snprintf(buf, size, "%.2g", x);
	return buf;
}

static void result_reset(struct safe_result *r, const char *name, const char *unit,
			 enum safe_better better)
{
	*r = (struct safe_result){0};
	hs_strlcpy(r->metric, name ? name : "", sizeof(r->metric));
	hs_strlcpy(r->unit, unit ? unit : "", sizeof(r->unit));
	r->better = better;
	r->test = SAFE_TEST_NONE;
	r->alternative = SAFE_ALT_TWO_SIDED;
	r->verdict = SAFE_VERDICT_INCONCLUSIVE;
	r->statistic = r->z = r->p = r->shift = NAN;
	r->ci_low = r->ci_high = r->effect = r->rel_shift = NAN;
	r->canary_center = r->baseline_center = NAN;
}

/* ---- samples ---- */

/* Verdict and reason of a sample result whose statistics are filled in. */
static void samples_verdict(struct safe_result *r, const struct safe_judge_opts *o, bool all_equal)
{
	char sh[32], lo[32], hi[32], pc[32], th[32], conf[16], pv[32], what[64];
	const char *sp = r->unit[0] ? " " : "";
	double worse = r->better == SAFE_BETTER_LOWER ? r->shift : -r->shift;
	bool beyond = isnan(r->rel_shift) ? r->shift != 0 : fabs(r->rel_shift) >= o->min_effect;
	bool over_limit = o->max_worse > 0 && worse >= o->max_worse;
	char stats[160];

	if (r->n_canary < o->min_samples || r->n_baseline < o->min_samples) {
		say(r->reason, sizeof(r->reason),
		    "%s: too few samples (%" PRIu64 " canary, %" PRIu64 " baseline; need %zu each)",
		    r->metric, r->n_canary, r->n_baseline, o->min_samples);
		return;
	}
	num(sh, sizeof(sh), r->shift);
	num(lo, sizeof(lo), r->ci_low);
	num(hi, sizeof(hi), r->ci_high);
	say(conf, sizeof(conf), "%.3g", r->confidence * 100);
	say(pv, sizeof(pv), "%.2g", r->p);
	say(stats, sizeof(stats), "HL shift %s%s%s, %s%% CI [%s, %s]", sh, sp, r->unit, conf, lo,
	    hi);
	if (all_equal) {
		say(r->reason, sizeof(r->reason), "%s: no change (all %" PRIu64 " samples %s%s%s)",
		    r->metric, r->n_canary + r->n_baseline, num(sh, sizeof(sh), r->baseline_center),
		    sp, r->unit);
		return;
	}
	if (!(r->p < o->alpha)) {
		say(r->reason, sizeof(r->reason), "%s: no significant change (%s), p=%s", r->metric,
		    stats, pv);
		return;
	}
	if (isnan(r->rel_shift))
		say(what, sizeof(what), "%s %s than a zero baseline median", r->metric,
		    r->shift > 0 ? "higher" : "lower");
	else
		say(what, sizeof(what), "%s %s%% %s", r->metric, pct(pc, sizeof(pc), r->rel_shift),
		    r->shift > 0 ? "higher" : "lower");
	if (worse > 0 && (beyond || over_limit)) {
		r->verdict = SAFE_VERDICT_ROLLBACK;
		if (beyond)
			say(r->reason, sizeof(r->reason), "%s (%s), p=%s", what, stats, pv);
		else
			say(r->reason, sizeof(r->reason), "%s, beyond the %s%s%s limit (%s), p=%s",
			    what, num(th, sizeof(th), o->max_worse), sp, r->unit, stats, pv);
	} else if (worse < 0 && beyond) {
		r->verdict = SAFE_VERDICT_KEEP;
		say(r->reason, sizeof(r->reason), "%s (%s), p=%s", what, stats, pv);
	} else if (r->shift == 0) {
		say(r->reason, sizeof(r->reason), "%s: no shift (%s), p=%s", r->metric, stats, pv);
	} else {
		say(r->reason, sizeof(r->reason), "%s, below the %s%% effect threshold (%s), p=%s",
		    what, pct(pc, sizeof(pc), o->min_effect), stats, pv);
	}
}

static int sorted_copy(const double *v, size_t n, double **out)
{
	double *c;

	*out = NULL;
	if (n == 0)
		return 0;
	c = malloc(n * sizeof(*c));
	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(v[i]) || fabs(v[i]) > SAFE_SAMPLE_MAX) {
			free(c);
			return -EINVAL;
		}
		c[i] = v[i];
	}
	qsort(c, n, sizeof(*c), cmp_double);
	*out = c;
	return 0;
}

/* p and the CI's order statistics (1-based C: the CI is [d_(C), d_(N+1-C)]). */
static int mwu_p(struct safe_result *r, const struct mwu_ranks *rk, size_t n1, size_t n2,
		 const struct safe_judge_opts *o, uint64_t *c_out)
{
	double nn = (double)n1 * (double)n2, big_n = (double)n1 + (double)n2;
	uint64_t c;

	if (!rk->ties && n1 <= o->exact_max && n2 <= o->exact_max) {
		_cleanup_free_ double *cnt = mwu_null_counts(n1 < n2 ? n1 : n2, n1 < n2 ? n2 : n1);
		size_t umax = n1 * n2, u = (size_t)rk->u;
		double total = 0, lower = 0, upper = 0, cum = 0, goal;

		if (!cnt)
			return -ENOMEM;
		for (size_t i = 0; i <= umax; i++) {
			total += cnt[i];
			if (i <= u)
				lower += cnt[i];
			if (i >= u)
				upper += cnt[i];
		}
		r->test = SAFE_TEST_MWU_EXACT;
		r->p = fmin(1, 2 * fmin(lower, upper) / total);
		/* R's qwilcox(alpha / 2): the smallest q with P(U <= q) >= alpha / 2 */
		goal = o->alpha / 2 * (1 - 64 * 2.220446049250313e-16) * total;
		for (c = 0; c < umax; c++) {
			cum += cnt[c];
			if (cum >= goal)
				break;
		}
		*c_out = c > 0 ? c : 1;
		return 0;
	}
	r->test = SAFE_TEST_MWU_NORMAL;
	{
		double var = nn / 12 * ((big_n + 1) - rk->tie_frac);
		double sigma = var > 0 && !rk->all_equal ? sqrt(var) : 0;
		double d = rk->u - nn / 2, zq;
		double corr = d > 0 ? 0.5 : d < 0 ? -0.5 : 0;

		if (sigma == 0) {
			r->z = 0;
			r->p = 1;
			*c_out = 1;
			return 0;
		}
		r->z = (d - corr) / sigma;
		r->p = fmin(1, erfc(fabs(r->z) / M_SQRT2));
		zq = norm_upper_quantile(o->alpha / 2);
		d = floor(nn / 2 - zq * sigma);
		c = d >= 1 ? (uint64_t)d : 1;
		*c_out = c;
	}
	return 0;
}

int safe_judge_samples(const struct safe_metric *m, const double *canary, size_t n_canary,
		       const double *baseline, size_t n_baseline,
		       const struct safe_judge_opts *opts, struct safe_result *out)
{
	struct safe_judge_opts def = SAFE_JUDGE_OPTS_DEFAULT;
	const struct safe_judge_opts *o = opts ? opts : &def;
	_cleanup_free_ double *a = NULL;
	_cleanup_free_ double *b = NULL;
	_cleanup_free_ size_t *work = NULL;
	struct hl_work w = {.rng = 0x686f6d656f737461ULL};
	struct mwu_ranks rk;
	uint64_t nn, c;
	double bmed;
	int r;

	if (!out)
		return -EINVAL;
	result_reset(out, m ? m->name : NULL, m ? m->unit : NULL, m ? m->better : 0);
	if (!m || !m->name || (unsigned)m->better >= SAFE_BETTER_COUNT || (n_canary && !canary) ||
	    (n_baseline && !baseline) || opts_check(o) < 0)
		return -EINVAL;
	if (n_canary && n_baseline > UINT64_MAX / n_canary)
		return -EOVERFLOW;
	out->n_canary = n_canary;
	out->n_baseline = n_baseline;
	out->confidence = 1 - o->alpha;
	r = sorted_copy(canary, n_canary, &a);
	if (r == 0)
		r = sorted_copy(baseline, n_baseline, &b);
	if (r < 0)
		goto fail;
	if (n_canary)
		out->canary_center = median_sorted(a, n_canary);
	if (n_baseline)
		out->baseline_center = median_sorted(b, n_baseline);
	if (n_canary == 0 || n_baseline == 0) {
		samples_verdict(out, o, false);
		return 0;
	}

	mwu_ranks(a, n_canary, b, n_baseline, &rk);
	nn = (uint64_t)n_canary * n_baseline;
	out->statistic = rk.u;
	out->effect = 2 * rk.u / (double)nn - 1;
	r = mwu_p(out, &rk, n_canary, n_baseline, o, &c);
	if (r < 0)
		goto fail;

	work = malloc(4 * n_canary * sizeof(*work));
	if (!work) {
		r = -ENOMEM;
		goto fail;
	}
	w.lo = work;
	w.hi = work + n_canary;
	w.lt = work + 2 * n_canary;
	w.le = work + 3 * n_canary;
	if (nn % 2)
		out->shift = hl_select(a, n_canary, b, n_baseline, nn / 2, &w);
	else
		out->shift = 0.5 * hl_select(a, n_canary, b, n_baseline, nn / 2 - 1, &w) +
			     0.5 * hl_select(a, n_canary, b, n_baseline, nn / 2, &w);
	if (c > (nn + 1) / 2)
		c = (nn + 1) / 2;
	out->ci_low = hl_select(a, n_canary, b, n_baseline, c - 1, &w);
	out->ci_high = hl_select(a, n_canary, b, n_baseline, nn - c, &w);
	if (out->shift == 0)
		out->shift = 0; /* no -0 */
	bmed = out->baseline_center;
	out->rel_shift = out->shift == 0 ? 0 : bmed != 0 ? out->shift / fabs(bmed) : NAN;
	samples_verdict(out, o, rk.all_equal);
	return 0;
fail:
	result_reset(out, m->name, m->unit, m->better);
	return r;
}

/* ---- error rates ---- */

static double log_choose(double n, double k)
{
	return lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1);
}

/* One-sided Fisher: X ~ hypergeometric (N events, K errors, n1 of them in the canary);
 * P(X >= x) when greater, else P(X <= x). The tail is summed from x outwards and stops
 * once past the mode the terms no longer move the sum. */
static double fisher_tail(uint64_t x, uint64_t n1, uint64_t n2, uint64_t k, bool greater)
{
	double big_n = (double)n1 + (double)n2, kk = (double)k, m1 = (double)n1;
	uint64_t lo = k > n2 ? k - n2 : 0, hi = k < n1 ? k : n1;
	double mode = floor((m1 + 1) * (kk + 1) / (big_n + 2));
	double denom = log_choose(big_n, m1), sum = 0;

	for (uint64_t i = x;; i = greater ? i + 1 : i - 1) {
		double t =
		    exp(log_choose(kk, (double)i) + log_choose(big_n - kk, m1 - (double)i) - denom);

		sum += t;
		if (greater ? i >= hi : i <= lo)
			break;
		if ((greater ? (double)i > mode : (double)i < mode) && t < sum * 1e-17)
			break;
	}
	return fmin(1, sum);
}

/* Wilson score interval of e out of n at z. */
static void wilson(double e, double n, double z, double *lo, double *hi)
{
	double p = e / n, z2 = z * z, den = 1 + z2 / n;
	double c = (p + z2 / (2 * n)) / den;
	double h = z * sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / den;

	*lo = fmax(0, c - h);
	*hi = fmin(1, c + h);
}

static void errors_verdict(struct safe_result *r, const struct safe_judge_opts *o)
{
	char r1[32], r2[32], d[32], lo[32], hi[32], conf[16], pv[32], th[32], stats[128];
	double diff = r->shift;

	if (r->n_canary < o->min_samples || r->n_baseline < o->min_samples) {
		say(r->reason, sizeof(r->reason),
		    "%s: too few events (%" PRIu64 " canary, %" PRIu64 " baseline; need %zu each)",
		    r->metric, r->n_canary, r->n_baseline, o->min_samples);
		return;
	}
	if (r->test == SAFE_TEST_NO_ERRORS) {
		say(r->reason, sizeof(r->reason),
		    "%s: no errors in either arm (0 of %" PRIu64 ", 0 of %" PRIu64
		    "): no evidence of harm",
		    r->metric, r->n_canary, r->n_baseline);
		return;
	}
	num(r1, sizeof(r1), r->canary_center * 100);
	num(r2, sizeof(r2), r->baseline_center * 100);
	say(d, sizeof(d), "%s%s", diff > 0 ? "+" : "", num(th, sizeof(th), diff * 100));
	num(lo, sizeof(lo), r->ci_low * 100);
	num(hi, sizeof(hi), r->ci_high * 100);
	say(conf, sizeof(conf), "%.3g", r->confidence * 100);
	say(pv, sizeof(pv), "%.2g", r->p);
	say(stats, sizeof(stats), "%s%% vs %s%%, %s pp, %s%% CI [%s, %s] pp", r1, r2, d, conf, lo,
	    hi);
	if (!(r->p < o->alpha)) {
		say(r->reason, sizeof(r->reason), "%s: no significant change (%s), p=%s", r->metric,
		    stats, pv);
	} else if (diff > 0 && diff >= o->error_rate_increase) {
		r->verdict = SAFE_VERDICT_ROLLBACK;
		say(r->reason, sizeof(r->reason), "%s higher (%s), p=%s", r->metric, stats, pv);
	} else if (diff < 0 && -diff >= o->error_rate_increase) {
		r->verdict = SAFE_VERDICT_KEEP;
		say(r->reason, sizeof(r->reason), "%s lower (%s), p=%s", r->metric, stats, pv);
	} else {
		say(r->reason, sizeof(r->reason), "%s %s, below the %s pp threshold (%s), p=%s",
		    r->metric, diff > 0 ? "higher" : "lower",
		    num(th, sizeof(th), o->error_rate_increase * 100), stats, pv);
	}
}

int safe_judge_errors(const char *name, uint64_t canary_errors, uint64_t canary_total,
		      uint64_t baseline_errors, uint64_t baseline_total,
		      const struct safe_judge_opts *opts, struct safe_result *out)
{
	struct safe_judge_opts def = SAFE_JUDGE_OPTS_DEFAULT;
	const struct safe_judge_opts *o = opts ? opts : &def;
	double n1 = (double)canary_total, n2 = (double)baseline_total;
	double e1 = (double)canary_errors, e2 = (double)baseline_errors;
	double big_n = n1 + n2, k = e1 + e2, p1, p2, zq, l1, u1, l2, u2;
	bool greater;

	if (!out)
		return -EINVAL;
	result_reset(out, name ? name : "error rate", NULL, SAFE_BETTER_LOWER);
	out->rate = true;
	if (canary_errors > canary_total || baseline_errors > baseline_total ||
	    canary_total > UINT64_MAX / 2 || baseline_total > UINT64_MAX / 2 - canary_total ||
	    opts_check(o) < 0)
		return -EINVAL;
	out->n_canary = canary_total;
	out->n_baseline = baseline_total;
	out->errors_canary = canary_errors;
	out->errors_baseline = baseline_errors;
	out->confidence = 1 - o->alpha;
	if (canary_total == 0 || baseline_total == 0) {
		if (canary_total)
			out->canary_center = e1 / n1;
		if (baseline_total)
			out->baseline_center = e2 / n2;
		errors_verdict(out, o);
		return 0;
	}
	p1 = out->canary_center = e1 / n1;
	p2 = out->baseline_center = e2 / n2;
	out->shift = p1 - p2;
	out->rel_shift = out->shift == 0 ? 0 : p2 > 0 ? out->shift / p2 : NAN;
	out->effect = 2 * asin(sqrt(p1)) - 2 * asin(sqrt(p2));
	zq = norm_upper_quantile(o->alpha / 2);
	wilson(e1, n1, zq, &l1, &u1);
	wilson(e2, n2, zq, &l2, &u2);
	out->ci_low = out->shift - sqrt((p1 - l1) * (p1 - l1) + (u2 - p2) * (u2 - p2));
	out->ci_high = out->shift + sqrt((u1 - p1) * (u1 - p1) + (p2 - l2) * (p2 - l2));

	greater = p1 >= p2;
	out->alternative = greater ? SAFE_ALT_GREATER : SAFE_ALT_LESS;
	if (k == 0) {
		out->test = SAFE_TEST_NO_ERRORS;
		out->p = 1;
	} else if (fmin(fmin(n1, n2) * k, fmin(n1, n2) * (big_n - k)) / big_n <
		   FISHER_MIN_EXPECTED) {
		out->test = SAFE_TEST_FISHER;
		out->statistic = e1;
		out->p = fisher_tail(canary_errors, canary_total, baseline_total,
				     canary_errors + baseline_errors, greater);
	} else {
		double pp = k / big_n, se = sqrt(pp * (1 - pp) * (1 / n1 + 1 / n2));

		out->test = SAFE_TEST_TWO_PROP_Z;
		out->z = se > 0 ? (p1 - p2) / se : 0;
		out->statistic = out->z;
		out->p = se > 0 ? (greater ? norm_upper(out->z) : norm_lower(out->z)) : 1;
	}
	errors_verdict(out, o);
	return 0;
}

/* ---- combined verdict ---- */

enum safe_verdict safe_judge_combine(const struct safe_result *r, size_t n)
{
	bool keep = false;

	for (size_t i = 0; i < n; i++) {
		if (r[i].verdict == SAFE_VERDICT_ROLLBACK)
			return SAFE_VERDICT_ROLLBACK;
		keep |= r[i].verdict == SAFE_VERDICT_KEEP;
	}
	return keep ? SAFE_VERDICT_KEEP : SAFE_VERDICT_INCONCLUSIVE;
}

/* ---- JSON ---- */

struct jbuf {
	char *buf;
	size_t size, len; /* len: what would have been written */
};

static void jb_printf(struct jbuf *j, const char *fmt, ...) HS_PRINTF(2, 3);
static void jb_printf(struct jbuf *j, const char *fmt, ...)
{
	size_t room = j->len < j->size ? j->size - j->len : 0;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(room ? j->buf + j->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		j->len += (size_t)n;
}

static void jb_str(struct jbuf *j, const char *s)
{
	jb_printf(j, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			jb_printf(j, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			jb_printf(j, "\\u%04x", *p);
		else
			jb_printf(j, "%c", *p);
	}
	jb_printf(j, "\"");
}

/* The shortest %.Ng (N = 15..17) that reads back as x; null for NaN and infinities. */
static void jb_num(struct jbuf *j, double x)
{
	char tmp[40];

	if (!isfinite(x)) {
		jb_printf(j, "null");
		return;
	}
	if (x == 0)
		x = 0; /* no -0 */
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, x);
		if (strtod(tmp, NULL) == x)
			break;
	}
	jb_printf(j, "%s", tmp);
}

static void jb_key_num(struct jbuf *j, const char *key, double x)
{
	jb_printf(j, ",\"%s\":", key);
	jb_num(j, x);
}

static void jb_result(struct jbuf *j, const struct safe_result *r)
{
	bool rates = r->rate;
	const char *s;

	jb_printf(j, "{\"metric\":");
	jb_str(j, r->metric);
	jb_printf(j, ",\"unit\":");
	jb_str(j, r->unit);
	s = safe_better_name(r->better);
	jb_printf(j, ",\"better\":\"%s\"", s ? s : "?");
	s = safe_test_name(r->test);
	jb_printf(j, ",\"test\":\"%s\"", s ? s : "?");
	s = safe_alternative_name(r->alternative);
	jb_printf(j, ",\"alternative\":\"%s\"", s ? s : "?");
	jb_printf(j, ",\"n_canary\":%" PRIu64 ",\"n_baseline\":%" PRIu64, r->n_canary,
		  r->n_baseline);
	if (rates)
		jb_printf(j, ",\"errors_canary\":%" PRIu64 ",\"errors_baseline\":%" PRIu64,
			  r->errors_canary, r->errors_baseline);
	jb_key_num(j, "statistic", r->statistic);
	jb_key_num(j, "z", r->z);
	jb_key_num(j, "p", r->p);
	jb_key_num(j, "shift", r->shift);
	if (!isfinite(r->ci_low) && !isfinite(r->ci_high)) {
		jb_printf(j, ",\"ci\":null");
	} else {
		jb_printf(j, ",\"ci\":[");
		jb_num(j, r->ci_low);
		jb_printf(j, ",");
		jb_num(j, r->ci_high);
		jb_printf(j, "]");
	}
	jb_key_num(j, "confidence", r->confidence);
	jb_key_num(j, "effect", r->effect);
	jb_key_num(j, "rel_shift", r->rel_shift);
	jb_key_num(j, rates ? "canary_rate" : "canary_median", r->canary_center);
	jb_key_num(j, rates ? "baseline_rate" : "baseline_median", r->baseline_center);
	s = safe_verdict_name(r->verdict);
	jb_printf(j, ",\"verdict\":\"%s\",\"reason\":", s ? s : "?");
	jb_str(j, r->reason);
	jb_printf(j, "}");
}

static int jb_finish(struct jbuf *j)
{
	if (j->len >= j->size || j->len > INT_MAX) {
		if (j->size)
			j->buf[j->size - 1] = '\0';
		return -ENAMETOOLONG;
	}
	return (int)j->len;
}

int safe_result_json(const struct safe_result *r, char *buf, size_t size)
{
	struct jbuf j = {.buf = buf, .size = buf ? size : 0};

	if (!r)
		return -EINVAL;
	jb_result(&j, r);
	return jb_finish(&j);
}

int safe_results_json(const struct safe_result *r, size_t n, char *buf, size_t size)
{
	struct jbuf j = {.buf = buf, .size = buf ? size : 0};

	if (!r && n)
		return -EINVAL;
	jb_printf(&j, "{\"verdict\":\"%s\",\"metrics\":[",
		  safe_verdict_name(safe_judge_combine(r, n)));
	for (size_t i = 0; i < n; i++) {
		if (i)
			jb_printf(&j, ",");
		jb_result(&j, &r[i]);
	}
	jb_printf(&j, "]}");
	return jb_finish(&j);
}
