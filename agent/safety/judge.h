/* judge.h - the canary judge: is a change better, worse, or not measurably different?
 *
 * Shared by self-healing and self-tuning (DESIGN.md "Safety"). The caller collects samples
 * of one metric from the canary (the changed process, cgroup or switchback block) and from
 * its baseline, and asks for a verdict on each metric; safe_judge_combine() then turns the
 * per-metric verdicts into the verdict on the change. Every result carries the statistics
 * it rests on and a one-line reason, and safe_result_json() writes them for memory's
 * stats_json. Pure computation: no I/O, no logging, no global state.
 *
 * Latency, throughput, cost (safe_judge_samples): Mann-Whitney U, two-sided.
 *   - U is the canary's: pairs (canary, baseline) with canary > baseline, plus half the ties
 *     (midranks). p is exact (the null distribution of U by dynamic programming) when
 *     neither arm has more than opts.exact_max samples and no value occurs twice; otherwise
 *     the normal approximation with tie and continuity corrections (R's wilcox.test).
 *   - shift: the Hodges-Lehmann estimate, the median of the n1*n2 differences
 *     canary - baseline, found by selection over the two sorted arms without storing the
 *     differences (O(n1 + n2) memory, expected O((n1 + n2) log(n1 n2)) time).
 *   - ci: the distribution-free (Moses) confidence interval at 1 - alpha: order statistics
 *     C and n1*n2 + 1 - C of the differences, C from the exact distribution of U (as R's
 *     wilcox.test(conf.int = TRUE)) or floor(n1 n2 / 2 - z sigma), at least 1.
 *   - effect: the rank-biserial correlation 2U / (n1 n2) - 1, in [-1, 1]; positive when the
 *     canary tends to be higher. rel_shift: shift / |baseline median|.
 *
 * Error rates (safe_judge_errors): counts of failed and total events per arm. One-sided,
 * in the direction the rate moved (greater: harm, less: improvement), each direction at
 * level alpha: Fisher's exact test when an expected cell of the 2x2 table is below 5, the
 * pooled two-proportion z-test otherwise. No error in either arm: p = 1, no evidence of
 * harm. shift: canary rate - baseline rate, ci: Newcombe's hybrid score interval at
 * 1 - alpha, effect: Cohen's h, rel_shift: shift / baseline rate.
 *
 * Verdict rules for one metric, in this order:
 *   1. fewer than opts.min_samples samples (events, for error rates) in either arm:
 *      INCONCLUSIVE ("too few samples");
 *   2. p >= alpha: INCONCLUSIVE ("no significant change");
 *   3. significant and worse (shift > 0 when lower is better, < 0 when higher is better) by
 *      at least opts.min_effect relative to the baseline median, or by at least
 *      opts.max_worse in the metric's unit when that is > 0: ROLLBACK. For error rates:
 *      worse by at least opts.error_rate_increase (absolute);
 *   4. significant and better by at least the same thresholds: KEEP (opts.max_worse does
 *      not make a gain count);
 *   5. otherwise INCONCLUSIVE ("below the effect threshold": no measurable gain).
 * With a baseline median of 0 the relative shift is undefined (null) and any nonzero shift
 * counts as beyond opts.min_effect. Constant identical samples give p = 1, U = n1 n2 / 2,
 * shift 0: INCONCLUSIVE, and no NaN.
 *
 * Combined (safe_judge_combine): any ROLLBACK wins; KEEP needs at least one KEEP and no
 * ROLLBACK; otherwise (also for no metric at all) INCONCLUSIVE. DESIGN.md: a final
 * INCONCLUSIVE means roll back; the caller does that.
 *
 * Invariants: every field of a result that the test did not produce is NAN, and only
 * those; the JSON writers print NAN and infinities as null, never as nan or inf. A result
 * is filled in whole on success; on error it holds the metric's name, NANs and verdict
 * INCONCLUSIVE. The same inputs always give the same result, to the last bit.
 * Errors: -EINVAL (NULL, a sample that is NaN, infinite or beyond +-1e300, errors > total,
 * an option out of range),
 * -EOVERFLOW (n1 * n2 too large), -ENOMEM, -ENAMETOOLONG (JSON buffer too small).
 */
#ifndef HS_SAFE_JUDGE_H
#define HS_SAFE_JUDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "safety/policy.h"

#define SAFE_METRIC_MAX 48  /* metric name, with its NUL */
#define SAFE_UNIT_MAX	16  /* unit, with its NUL */
#define SAFE_REASON_MAX 256 /* one-line reason, with its NUL */

/* Same order and names as enum mem_verdict, whose first three values they are. */
enum safe_verdict {
	SAFE_VERDICT_KEEP,
	SAFE_VERDICT_ROLLBACK,
	SAFE_VERDICT_INCONCLUSIVE,
	SAFE_VERDICT_COUNT,
};

/* Which way is good for the metric. */
enum safe_better {
	SAFE_BETTER_LOWER,  /* latency, cost, error rate */
	SAFE_BETTER_HIGHER, /* throughput */
	SAFE_BETTER_COUNT,
};

enum safe_test {
	SAFE_TEST_NONE,	      /* an arm was empty: nothing computed */
	SAFE_TEST_MWU_EXACT,  /* Mann-Whitney U, exact null distribution */
	SAFE_TEST_MWU_NORMAL, /* Mann-Whitney U, normal approximation */
	SAFE_TEST_FISHER,     /* Fisher's exact test, one-sided */
	SAFE_TEST_TWO_PROP_Z, /* pooled two-proportion z-test, one-sided */
	SAFE_TEST_NO_ERRORS,  /* no error in either arm: p = 1 without a test */
	SAFE_TEST_COUNT,
};

/* The alternative hypothesis about canary - baseline that p belongs to. */
enum safe_alternative {
	SAFE_ALT_TWO_SIDED,
	SAFE_ALT_GREATER,
	SAFE_ALT_LESS,
	SAFE_ALT_COUNT,
};

/* The thresholds. From the policy: alpha = canary.alpha, min_samples = canary.min_samples,
 * min_effect = canary.effect_size, error_rate_increase = rollback_on.error_rate_increase,
 * and per metric max_worse = rollback_on.p99_latency_increase_ms (latency in ms),
 * throughput_decrease times the baseline median (throughput), 0 for none. */
struct safe_judge_opts {
	double alpha;		    /* significance level, in (0, 0.5]; 0.05 */
	size_t min_samples;	    /* per arm, at least 1; 20 */
	double min_effect;	    /* smallest relative shift that counts, >= 0; 0.05 */
	double max_worse;	    /* absolute worsening that is enough for ROLLBACK; 0: none */
	double error_rate_increase; /* absolute, fraction of events, in [0, 1]; 0.001 */
	size_t exact_max;	    /* exact U test when both arms have <= this; 50 */
};

#define SAFE_JUDGE_OPTS_DEFAULT                                                                    \
	{                                                                                          \
		.alpha = 0.05, .min_samples = 20, .min_effect = 0.05, .max_worse = 0,              \
		.error_rate_increase = 0.001, .exact_max = 50,                                     \
	}

/* What the metric is, for the reason and the direction of "worse". */
struct safe_metric {
	const char *name; /* "p99 latency"; truncated to SAFE_METRIC_MAX - 1 bytes */
	const char *unit; /* "ms"; NULL or "" for none */
	enum safe_better better;
};

/* One metric's verdict and its statistics. NAN marks what was not computed. */
struct safe_result {
	char metric[SAFE_METRIC_MAX];
	char unit[SAFE_UNIT_MAX];
	enum safe_better better;
	bool rate; /* from safe_judge_errors() */
	enum safe_test test;
	enum safe_alternative alternative;
	enum safe_verdict verdict;
	uint64_t n_canary, n_baseline;		 /* samples, or events for error rates */
	uint64_t errors_canary, errors_baseline; /* error rates only, else 0 */
	double statistic;			 /* U of the canary; z; Fisher: canary errors */
	double z;				 /* the normal statistic (NAN for exact tests) */
	double p;				 /* p-value of the alternative */
	double shift;				 /* HL shift; rate difference */
	double ci_low, ci_high;			 /* CI of the shift at confidence */
	double confidence;			 /* 1 - alpha */
	double effect;				 /* rank-biserial r; Cohen's h */
	double rel_shift;			 /* shift / |baseline median|; / baseline rate */
	double canary_center;			 /* median; error rate */
	double baseline_center;			 /* median; error rate */
	char reason[SAFE_REASON_MAX];
};

/* Fills o with SAFE_JUDGE_OPTS_DEFAULT, then, if p is not NULL, with the policy's canary
 * and rollback_on values named above (max_worse stays 0: it is per metric). */
void safe_judge_opts_init(struct safe_judge_opts *o, const struct safe_policy *p);

/* Judges samples of one metric (canary against baseline) by the rules above. opts NULL:
 * the defaults. Either count may be 0 (then INCONCLUSIVE, test NONE). 0 or -errno. */
int safe_judge_samples(const struct safe_metric *m, const double *canary, size_t n_canary,
		       const double *baseline, size_t n_baseline,
		       const struct safe_judge_opts *opts, struct safe_result *out);

/* Judges an error rate: errors out of total events per arm. name: "error rate" if NULL.
 * Lower is better. 0 or -errno. */
int safe_judge_errors(const char *name, uint64_t canary_errors, uint64_t canary_total,
		      uint64_t baseline_errors, uint64_t baseline_total,
		      const struct safe_judge_opts *opts, struct safe_result *out);

/* The verdict on a change from its per-metric results (any ROLLBACK wins; KEEP needs a
 * KEEP; else INCONCLUSIVE). r may be NULL when n is 0. */
enum safe_verdict safe_judge_combine(const struct safe_result *r, size_t n);

/* Writes r as one JSON object into buf, e.g.
 *   {"metric":"p99 latency","unit":"ms","better":"lower","test":"mann-whitney-u",
 *    "alternative":"two-sided","n_canary":40,"n_baseline":40,"statistic":112,"z":-5.1,
 *    "p":3.2e-07,"shift":-12.1,"ci":[-15,-9.2],"confidence":0.95,"effect":-0.86,
 *    "rel_shift":-0.38,"canary_median":20,"baseline_median":32,"verdict":"KEEP",
 *    "reason":"..."}
 * Numbers are the shortest text that reads back as the same double; NAN and infinities are
 * null ("ci":null when both ends are). Error rates add "errors_canary", "errors_baseline"
 * and name the centers "canary_rate" and "baseline_rate". Returns the length written (without
 * the NUL) or -ENAMETOOLONG (buf then holds a terminated prefix if size > 0). */
int safe_result_json(const struct safe_result *r, char *buf, size_t size);

/* {"verdict":"...","metrics":[<safe_result_json of each>]}, the stats_json of a change. */
int safe_results_json(const struct safe_result *r, size_t n, char *buf, size_t size);

/* "KEEP", "ROLLBACK", "INCONCLUSIVE"; "lower"/"higher"; "mann-whitney-u-exact",
 * "mann-whitney-u", "fisher-exact", "two-proportion-z", "no-errors", "none";
 * "two-sided", "greater", "less". NULL if out of range. */
const char *safe_verdict_name(enum safe_verdict v);
const char *safe_better_name(enum safe_better b);
const char *safe_test_name(enum safe_test t);
const char *safe_alternative_name(enum safe_alternative a);

#endif
