/* canary.c - the canary run of canary.h: samples per arm, the rollback_on watch, the verdict.
 *
 * Why this shape: the run is a small state machine driven by the caller's ticks, so that the
 * tuner and the runbook engine share every rule (arms, warm-up, smoothing, verdict) and the
 * tests drive it with synthetic time. Statistics are judge.c's; this file only decides which
 * samples go where and when to ask.
 *
 * Invariants: every series holds finite values only, at most SAFE_CANARY_MAX_SAMPLES of them,
 * and never more than its arm's sample count; all memory a tick needs is reserved before the
 * tick changes anything, so a failed tick leaves the run as it was; once over (BREACH or
 * DONE) the run never changes again; nothing depends on anything but the inputs.
 */
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "safety/canary.h"
#include "lib/util.h"

#define SAMPLE_MAX 1e300 /* judge.c's limit on a sample's magnitude */
#define FIRST_CAP  64	 /* first allocation of a series */

enum metric_id {
	M_ERRORS, /* per-sample error fraction; judged on the summed counts */
	M_P99,
	M_THROUGHPUT,
	M_COST,
	M_FITNESS,
	M_RSS, /* watched by rollback_on, not judged */
	M_COUNT,
};

enum arm_id {
	ARM_CANARY,
	ARM_BASELINE,
	ARM_COUNT,
};

/* The metrics, in the order of the verdict's results. */
static const struct metric_desc {
	const char *name;
	const char *unit; /* "" for none */
	enum safe_better better;
	bool judged;
} metrics[M_COUNT] = {
    [M_ERRORS] = {"error rate", "", SAFE_BETTER_LOWER, true},
    [M_P99] = {"p99 latency", "ms", SAFE_BETTER_LOWER, true},
    [M_THROUGHPUT] = {"throughput", "events/s", SAFE_BETTER_HIGHER, true},
    [M_COST] = {"cost", "", SAFE_BETTER_LOWER, true},
    [M_FITNESS] = {"fitness", "", SAFE_BETTER_HIGHER, true},
    [M_RSS] = {"rss", "bytes", SAFE_BETTER_LOWER, false},
};

/* The order in which rollback_on thresholds are checked (canary.h). */
static const enum metric_id breach_order[] = {M_ERRORS, M_P99, M_THROUGHPUT, M_FITNESS, M_RSS};

static const char *const mode_names[SAFE_CANARY_MODE_COUNT] = {
    [SAFE_CANARY_CONCURRENT] = "concurrent",
    [SAFE_CANARY_SWITCHBACK] = "switchback",
    [SAFE_CANARY_BEFORE_AFTER] = "before_after",
};

static const char *const action_names[SAFE_CANARY_ACTION_COUNT] = {
    [SAFE_CANARY_CONTINUE] = "continue",
    [SAFE_CANARY_SWITCH_ON] = "switch_on",
    [SAFE_CANARY_SWITCH_OFF] = "switch_off",
    [SAFE_CANARY_BREACH] = "breach",
    [SAFE_CANARY_DONE] = "done",
};

struct series {
	double *v;
	size_t n, cap;
	double median; /* cached; valid when median_ok */
	bool median_ok;
};

struct arm {
	struct series s[M_COUNT];
	uint64_t errors, events; /* summed over the arm's samples */
	uint64_t n;		 /* samples with at least one known field */
};

struct safe_canary_run {
	struct safe_canary_cfg cfg;
	int64_t start_ms, last_ms;
	bool on;	      /* the change is applied */
	unsigned warmup_left; /* ticks still to discard */
	uint64_t ticks, discarded, blocks;
	struct arm arm[ARM_COUNT];
	double *scratch; /* for medians: as large as the largest series */
	size_t scratch_cap;
	bool over;
	struct safe_canary_step final; /* the BREACH or DONE step, once over */
	struct safe_result results[SAFE_CANARY_METRICS];
	size_t n_results;
};

const char *safe_canary_mode_name(enum safe_canary_mode m)
{
	return (unsigned)m < SAFE_CANARY_MODE_COUNT ? mode_names[m] : NULL;
}

const char *safe_canary_action_name(enum safe_canary_action a)
{
	return (unsigned)a < SAFE_CANARY_ACTION_COUNT ? action_names[a] : NULL;
}

/* ---- text ---- */

static void say(char *buf, size_t size, const char *fmt, ...) HS_PRINTF(3, 4);
static void say(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

/* A number for people, as judge.c writes them: 3 significant digits, whole from 1000 up. */
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

/* ---- configuration ---- */

void safe_canary_cfg_init(struct safe_canary_cfg *cfg, const struct safe_policy *p,
			  enum safe_canary_mode mode)
{
	*cfg = (struct safe_canary_cfg){
	    .mode = mode,
	    .duration_ms = 300000,
	    .block_ms = 30000,
	    .min_samples = 30,
	    .warmup_ticks = 1,
	    .smooth_ticks = 3,
	    .breach_min_baseline = 5,
	    .rollback_on =
		{
		    .error_rate_increase = 0.001,
		    .p99_latency_increase_ms = 50,
		    .rss_increase = {.relative = true, .fraction = 0.2},
		    .throughput_decrease = 0.1,
		    .fitness_decrease = 0.05,
		},
	};
	safe_judge_opts_init(&cfg->judge, p);
	if (!p) {
		cfg->judge.min_samples = cfg->min_samples;
		return;
	}
	cfg->duration_ms = p->canary.duration_ms;
	cfg->block_ms = p->canary.switchback_block_ms;
	cfg->min_samples = p->canary.min_samples > 0 ? (size_t)p->canary.min_samples : 0;
	cfg->rollback_on = p->rollback_on;
}

static bool threshold_ok(double x, double max)
{
	return x >= 0 && x <= max; /* false for NaN */
}

static int cfg_check(const struct safe_canary_cfg *c)
{
	const struct safe_rollback_on *rb = &c->rollback_on;
	struct safe_judge_opts o = c->judge;
	struct safe_result tmp;

	if ((unsigned)c->mode >= SAFE_CANARY_MODE_COUNT || c->duration_ms <= 0 ||
	    c->min_samples < 1 || c->min_samples > SAFE_CANARY_MAX_SAMPLES || c->smooth_ticks < 1 ||
	    c->smooth_ticks > SAFE_CANARY_SMOOTH_MAX || c->breach_min_baseline < 1 ||
	    c->breach_min_baseline > SAFE_CANARY_MAX_SAMPLES)
		return -EINVAL;
	if (c->mode == SAFE_CANARY_SWITCHBACK &&
	    (c->block_ms <= 0 || c->block_ms > c->duration_ms / 2))
		return -EINVAL;
	if (!threshold_ok(rb->error_rate_increase, 1) || rb->p99_latency_increase_ms < 0 ||
	    !threshold_ok(rb->throughput_decrease, 1) || !threshold_ok(rb->fitness_decrease, 1) ||
	    (rb->rss_increase.relative && !threshold_ok(rb->rss_increase.fraction, SAMPLE_MAX)))
		return -EINVAL;
	/* the judge's own check of its options, on an empty comparison */
	o.min_samples = c->min_samples;
	o.max_worse = 0;
	return safe_judge_errors(NULL, 0, 0, 0, 0, &o, &tmp);
}

/* ---- samples ---- */

static bool value_ok(double x)
{
	return isnan(x) || (isfinite(x) && fabs(x) <= SAMPLE_MAX);
}

static int sample_check(const struct safe_canary_sample *s)
{
	if (!s)
		return 0;
	if (!value_ok(s->fitness) || !value_ok(s->p99_ms) || !value_ok(s->throughput) ||
	    !value_ok(s->cost) || s->errors > s->events)
		return -EINVAL;
	return 0;
}

/* The sample's value of metric m, NAN when unknown. */
static double sample_value(const struct safe_canary_sample *s, enum metric_id m)
{
	switch (m) {
	case M_ERRORS:
		return s->events ? (double)s->errors / (double)s->events : NAN;
	case M_P99:
		return s->p99_ms;
	case M_THROUGHPUT:
		return s->throughput;
	case M_COST:
		return s->cost;
	case M_FITNESS:
		return s->fitness;
	case M_RSS:
		return s->rss_bytes ? (double)s->rss_bytes : NAN;
	default:
		return NAN;
	}
}

/* Makes room for one more value in every series of arm a that s has a value for. */
static int reserve(struct safe_canary_run *run, enum arm_id a, const struct safe_canary_sample *s)
{
	struct arm *arm = &run->arm[a];

	if (!s)
		return 0;
	for (int m = 0; m < M_COUNT; m++) {
		struct series *se = &arm->s[m];
		size_t cap;
		double *v;

		if (isnan(sample_value(s, m)) || se->n < se->cap)
			continue;
		if (se->n >= SAFE_CANARY_MAX_SAMPLES)
			return -E2BIG; /* not reached: the run ends first */
		cap = se->cap ? se->cap * 2 : FIRST_CAP;
		if (cap > SAFE_CANARY_MAX_SAMPLES)
			cap = SAFE_CANARY_MAX_SAMPLES;
		v = realloc(se->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		se->v = v;
		se->cap = cap;
		if (cap > run->scratch_cap) {
			v = realloc(run->scratch, cap * sizeof(*v));
			if (!v)
				return -ENOMEM;
			run->scratch = v;
			run->scratch_cap = cap;
		}
	}
	return 0;
}

/* Appends s to arm a (reserve() made room). Returns whether s had a known field. */
static bool record(struct safe_canary_run *run, enum arm_id a, const struct safe_canary_sample *s)
{
	struct arm *arm = &run->arm[a];
	bool any = false;

	if (!s)
		return false;
	for (int m = 0; m < M_COUNT; m++) {
		struct series *se = &arm->s[m];
		double x = sample_value(s, m);

		if (isnan(x))
			continue;
		se->v[se->n++] = x;
		se->median_ok = false;
		any = true;
	}
	if (s->events) {
		arm->errors += s->errors;
		arm->events += s->events;
	}
	arm->n += any;
	return any;
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return (a > b) - (a < b);
}

/* Median of v[0..n), n > 0, sorted in place. */
static double median_of(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : 0.5 * v[n / 2 - 1] + 0.5 * v[n / 2];
}

/* Median of a whole series (n > 0), cached until it grows. */
static double series_median(struct safe_canary_run *run, struct series *se)
{
	if (!se->median_ok) {
		memcpy(run->scratch, se->v, se->n * sizeof(*se->v));
		se->median = median_of(run->scratch, se->n);
		se->median_ok = true;
	}
	return se->median;
}

/* ---- steps ---- */

static void step_fill(const struct safe_canary_run *run, struct safe_canary_step *st,
		      enum safe_canary_action action)
{
	*st = (struct safe_canary_step){
	    .action = action,
	    .change_on = run->on,
	    .verdict = SAFE_VERDICT_INCONCLUSIVE,
	    .elapsed_ms = run->last_ms - run->start_ms,
	    .ticks = run->ticks,
	    .discarded = run->discarded,
	    .blocks = run->blocks,
	    .n_canary = run->arm[ARM_CANARY].n,
	    .n_baseline = run->arm[ARM_BASELINE].n,
	    .breach_canary = NAN,
	    .breach_baseline = NAN,
	    .breach_limit = NAN,
	};
}

/* The reason of a breach of metric m: c against limit, from baseline b. */
static void breach_reason(const struct safe_canary_run *run, enum metric_id m, double c, double b,
			  double limit, char *out, size_t size)
{
	const struct safe_rollback_on *rb = &run->cfg.rollback_on;
	const struct metric_desc *d = &metrics[m];
	const char *sp = d->unit[0] ? " " : "";
	char cv[32], bv[32], lv[32], tv[32], smooth[64];

	if (run->cfg.smooth_ticks == 1)
		say(smooth, sizeof(smooth), "the last canary tick");
	else
		say(smooth, sizeof(smooth), "median of the last %u canary ticks",
		    run->cfg.smooth_ticks);
	switch (m) {
	case M_ERRORS:
		say(out, size, "%s %s%% (%s) >= limit %s%% (baseline %s%% + %s pp)", d->name,
		    num(cv, sizeof(cv), c * 100), smooth, num(lv, sizeof(lv), limit * 100),
		    num(bv, sizeof(bv), b * 100),
		    num(tv, sizeof(tv), rb->error_rate_increase * 100));
		break;
	case M_P99:
		say(out, size,
		    "%s %s ms (%s) >= limit %s ms (baseline median %s ms + %" PRId64 " ms)",
		    d->name, num(cv, sizeof(cv), c), smooth, num(lv, sizeof(lv), limit),
		    num(bv, sizeof(bv), b), rb->p99_latency_increase_ms);
		break;
	case M_THROUGHPUT:
	case M_FITNESS:
		num(tv, sizeof(tv),
		    100 * (m == M_THROUGHPUT ? rb->throughput_decrease : rb->fitness_decrease));
		say(out, size, "%s %s%s%s (%s) <= limit %s%s%s (baseline median %s%s%s - %s%%)",
		    d->name, num(cv, sizeof(cv), c), sp, d->unit, smooth,
		    num(lv, sizeof(lv), limit), sp, d->unit, num(bv, sizeof(bv), b), sp, d->unit,
		    tv);
		break;
	default: /* M_RSS */
		if (rb->rss_increase.relative)
			say(tv, sizeof(tv), "%.3g%%", rb->rss_increase.fraction * 100);
		else
			say(tv, sizeof(tv), "%" PRIu64 " bytes", rb->rss_increase.bytes);
		say(out, size, "%s %s bytes (%s) >= limit %s bytes (baseline median %s bytes + %s)",
		    d->name, num(cv, sizeof(cv), c), smooth, num(lv, sizeof(lv), limit),
		    num(bv, sizeof(bv), b), tv);
		break;
	}
}

/* The rollback_on rule of canary.h for metric m. Returns true and fills st on a breach. */
static bool breach_metric(struct safe_canary_run *run, enum metric_id m,
			  struct safe_canary_step *st)
{
	const struct safe_rollback_on *rb = &run->cfg.rollback_on;
	const struct arm *base = &run->arm[ARM_BASELINE];
	struct series *cs = &run->arm[ARM_CANARY].s[m], *bs = &run->arm[ARM_BASELINE].s[m];
	unsigned k = run->cfg.smooth_ticks;
	double win[SAFE_CANARY_SMOOTH_MAX], c, b, limit, frac;
	bool hit;

	if (cs->n < k || bs->n < run->cfg.breach_min_baseline)
		return false;
	memcpy(win, cs->v + cs->n - k, k * sizeof(*win));
	c = median_of(win, k);
	switch (m) {
	case M_ERRORS: /* bs->n >= 1: base->events > 0 */
		if (!(rb->error_rate_increase > 0))
			return false;
		b = (double)base->errors / (double)base->events;
		limit = b + rb->error_rate_increase;
		hit = c >= limit;
		break;
	case M_P99:
		if (rb->p99_latency_increase_ms <= 0)
			return false;
		b = series_median(run, bs);
		limit = b + (double)rb->p99_latency_increase_ms;
		hit = c >= limit;
		break;
	case M_THROUGHPUT:
	case M_FITNESS:
		frac = m == M_THROUGHPUT ? rb->throughput_decrease : rb->fitness_decrease;
		b = series_median(run, bs);
		if (!(frac > 0) || !(b > 0))
			return false;
		limit = b * (1 - frac);
		hit = c <= limit;
		break;
	case M_RSS: /* values are > 0: 0 is unknown */
		if (rb->rss_increase.relative ? !(rb->rss_increase.fraction > 0)
					      : rb->rss_increase.bytes == 0)
			return false;
		b = series_median(run, bs);
		limit = rb->rss_increase.relative ? b * (1 + rb->rss_increase.fraction)
						  : b + (double)rb->rss_increase.bytes;
		hit = c >= limit;
		break;
	default:
		return false;
	}
	if (!hit)
		return false;
	st->action = SAFE_CANARY_BREACH;
	st->verdict = SAFE_VERDICT_ROLLBACK;
	st->breach_metric = metrics[m].name;
	st->breach_canary = c;
	st->breach_baseline = b;
	st->breach_limit = limit;
	breach_reason(run, m, c, b, limit, st->reason, sizeof(st->reason));
	return true;
}

static bool breach(struct safe_canary_run *run, struct safe_canary_step *st)
{
	for (size_t i = 0; i < ARRAY_SIZE(breach_order); i++)
		if (breach_metric(run, breach_order[i], st))
			return true;
	return false;
}

/* The judge on every metric with data in both arms. Returns the index of the first result
 * that could not be judged, or -1. */
static int judge_all(struct safe_canary_run *run)
{
	struct arm *ca = &run->arm[ARM_CANARY], *ba = &run->arm[ARM_BASELINE];
	const struct safe_rollback_on *rb = &run->cfg.rollback_on;
	int failed = -1;

	run->n_results = 0;
	for (int m = 0; m < M_COUNT; m++) {
		const struct metric_desc *d = &metrics[m];
		struct series *cs = &ca->s[m], *bs = &ba->s[m];
		struct safe_result *res = &run->results[run->n_results];
		struct safe_metric sm = {d->name, d->unit, d->better};
		struct safe_judge_opts o = run->cfg.judge;
		int r;

		if (!d->judged || cs->n == 0 || bs->n == 0)
			continue;
		o.min_samples = run->cfg.min_samples;
		o.max_worse = 0;
		if (m == M_ERRORS) {
			r = safe_judge_errors(d->name, ca->errors, ca->events, ba->errors,
					      ba->events, &o, res);
		} else {
			double bmed = series_median(run, bs);

			if (m == M_P99)
				o.max_worse = (double)rb->p99_latency_increase_ms;
			else if (m == M_THROUGHPUT)
				o.max_worse = fmax(0, rb->throughput_decrease * bmed);
			else if (m == M_FITNESS)
				o.max_worse = rb->fitness_decrease * fabs(bmed);
			r = safe_judge_samples(&sm, cs->v, cs->n, bs->v, bs->n, &o, res);
		}
		if (r < 0) {
			say(res->reason, sizeof(res->reason), "%s: cannot judge (%s)", d->name,
			    strerror(-r));
			if (failed < 0)
				failed = (int)run->n_results;
		}
		run->n_results++;
	}
	return failed;
}

/* The DONE verdict and its reason (canary.h). */
static void done_verdict(struct safe_canary_run *run, struct safe_canary_step *st, bool truncated)
{
	const struct arm *ca = &run->arm[ARM_CANARY], *ba = &run->arm[ARM_BASELINE];
	int failed = judge_all(run);
	char why[SAFE_REASON_MAX];
	const struct safe_result *pick = NULL;

	st->action = SAFE_CANARY_DONE;
	st->truncated = truncated;
	st->verdict = safe_judge_combine(run->results, run->n_results);
	if (ca->n < run->cfg.min_samples || ba->n < run->cfg.min_samples) {
		st->verdict = SAFE_VERDICT_INCONCLUSIVE;
		say(why, sizeof(why),
		    "too few samples (%" PRIu64 " canary, %" PRIu64 " baseline; need %zu each)",
		    ca->n, ba->n, run->cfg.min_samples);
	} else if (failed >= 0) {
		st->verdict = SAFE_VERDICT_INCONCLUSIVE;
		say(why, sizeof(why), "%s", run->results[failed].reason);
	} else if (run->n_results == 0) {
		say(why, sizeof(why), "no metric measured in both arms");
	} else {
		for (size_t i = 0; i < run->n_results && !pick; i++)
			if (run->results[i].verdict == st->verdict)
				pick = &run->results[i];
		if (pick && st->verdict != SAFE_VERDICT_INCONCLUSIVE)
			say(why, sizeof(why), "%s", pick->reason);
		else
			say(why, sizeof(why), "no metric changed measurably (%zu judged)",
			    run->n_results);
	}
	if (truncated)
		say(st->reason, sizeof(st->reason), "sample limit of %d per arm reached: %s",
		    SAFE_CANARY_MAX_SAMPLES, why);
	else
		say(st->reason, sizeof(st->reason), "%s", why);
}

/* Ends the run with st (BREACH or DONE). */
static void finish(struct safe_canary_run *run, struct safe_canary_step *st)
{
	st->results = run->results;
	st->n_results = run->n_results;
	run->final = *st;
	run->over = true;
}

/* ---- the run ---- */

void safe_canary_free(struct safe_canary_run *run)
{
	if (!run)
		return;
	for (int a = 0; a < ARM_COUNT; a++)
		for (int m = 0; m < M_COUNT; m++)
			free(run->arm[a].s[m].v);
	free(run->scratch);
	free(run);
}

int safe_canary_new(const struct safe_canary_cfg *cfg, int64_t now_ms,
		    const struct safe_canary_sample *before, size_t n_before,
		    struct safe_canary_run **out)
{
	struct safe_canary_run *run;
	size_t first;
	int r;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!cfg || (n_before && !before) || cfg_check(cfg) < 0 ||
	    (n_before && cfg->mode != SAFE_CANARY_BEFORE_AFTER))
		return -EINVAL;
	for (size_t i = 0; i < n_before; i++)
		if (sample_check(&before[i]) < 0)
			return -EINVAL;
	run = calloc(1, sizeof(*run));
	if (!run)
		return -ENOMEM;
	run->cfg = *cfg;
	run->start_ms = run->last_ms = now_ms;
	run->on = cfg->mode != SAFE_CANARY_SWITCHBACK;
	run->warmup_left = run->on ? cfg->warmup_ticks : 0;
	run->blocks = cfg->mode == SAFE_CANARY_SWITCHBACK;
	first = n_before > SAFE_CANARY_MAX_SAMPLES ? n_before - SAFE_CANARY_MAX_SAMPLES : 0;
	for (size_t i = first; i < n_before; i++) {
		r = reserve(run, ARM_BASELINE, &before[i]);
		if (r < 0) {
			safe_canary_free(run);
			return r;
		}
		record(run, ARM_BASELINE, &before[i]);
	}
	*out = run;
	return 0;
}

int safe_canary_tick(struct safe_canary_run *run, int64_t now_ms,
		     const struct safe_canary_sample *canary,
		     const struct safe_canary_sample *baseline, struct safe_canary_step *step)
{
	const struct safe_canary_cfg *cfg;
	enum arm_id carm;
	bool warm, got_c = false, got_b = false, full;
	int64_t elapsed;
	int r;

	if (!run || !step)
		return -EINVAL;
	if (run->over) {
		*step = run->final;
		return 0;
	}
	cfg = &run->cfg;
	if (now_ms < run->last_ms || (baseline && cfg->mode != SAFE_CANARY_CONCURRENT) ||
	    sample_check(canary) < 0 || sample_check(baseline) < 0)
		return -EINVAL;
	warm = run->warmup_left > 0;
	carm = run->on ? ARM_CANARY : ARM_BASELINE;
	if (!warm) {
		r = reserve(run, carm, canary);
		if (r == 0)
			r = reserve(run, ARM_BASELINE, baseline);
		if (r < 0)
			return r;
	}

	run->last_ms = now_ms;
	run->ticks++;
	if (warm) {
		run->warmup_left--;
		run->discarded++;
	} else {
		got_c = record(run, carm, canary);
		got_b = record(run, ARM_BASELINE, baseline);
	}
	step_fill(run, step, SAFE_CANARY_CONTINUE);

	if (got_c && carm == ARM_CANARY && breach(run, step)) {
		judge_all(run); /* for the record: what it cannot judge does not stop the breach */
		finish(run, step);
		return 0;
	}

	elapsed = now_ms - run->start_ms;
	full = (got_c && run->arm[carm].n >= SAFE_CANARY_MAX_SAMPLES) ||
	       (got_b && run->arm[ARM_BASELINE].n >= SAFE_CANARY_MAX_SAMPLES);
	if (elapsed >= cfg->duration_ms || full) {
		done_verdict(run, step, full && elapsed < cfg->duration_ms);
		finish(run, step);
		return 0;
	}

	if (cfg->mode == SAFE_CANARY_SWITCHBACK) {
		bool want = (elapsed / cfg->block_ms) % 2 == 1;

		if (want != run->on) {
			run->on = want;
			run->blocks++;
			run->warmup_left = cfg->warmup_ticks;
			step_fill(run, step, want ? SAFE_CANARY_SWITCH_ON : SAFE_CANARY_SWITCH_OFF);
		}
	}
	return 0;
}

/* ---- JSON ---- */

struct jbuf {
	char *buf;
	size_t size, len;
	bool overflow;
};

static void jb_printf(struct jbuf *j, const char *fmt, ...) HS_PRINTF(2, 3);
static void jb_printf(struct jbuf *j, const char *fmt, ...)
{
	size_t room = j->size > j->len ? j->size - j->len : 0;
	va_list ap;
	int n;

	if (j->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(room ? j->buf + j->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room)
		j->overflow = true;
	else
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

int safe_canary_json(const struct safe_canary_run *run, char *buf, size_t size)
{
	struct jbuf j = {.buf = buf, .size = buf ? size : 0};
	const struct safe_canary_step *st;
	const char *outcome;

	if (!run)
		return -EINVAL;
	st = &run->final;
	outcome = !run->over ? "running" : st->action == SAFE_CANARY_BREACH ? "breach" : "done";
	jb_printf(&j, "{\"mode\":\"%s\",\"outcome\":\"%s\"", safe_canary_mode_name(run->cfg.mode),
		  outcome);
	jb_printf(&j, ",\"duration_ms\":%" PRId64 ",\"elapsed_ms\":%" PRId64, run->cfg.duration_ms,
		  run->last_ms - run->start_ms);
	if (run->cfg.mode == SAFE_CANARY_SWITCHBACK)
		jb_printf(&j, ",\"block_ms\":%" PRId64 ",\"blocks\":%" PRIu64, run->cfg.block_ms,
			  run->blocks);
	jb_printf(&j,
		  ",\"ticks\":%" PRIu64 ",\"discarded\":%" PRIu64 ",\"min_samples\":%zu"
		  ",\"samples\":{\"canary\":%" PRIu64 ",\"baseline\":%" PRIu64 "}",
		  run->ticks, run->discarded, run->cfg.min_samples, run->arm[ARM_CANARY].n,
		  run->arm[ARM_BASELINE].n);
	jb_printf(&j,
		  ",\"truncated\":%s,\"breach\":", run->over && st->truncated ? "true" : "false");
	if (run->over && st->action == SAFE_CANARY_BREACH) {
		jb_printf(&j, "{\"metric\":");
		jb_str(&j, st->breach_metric);
		jb_printf(&j, ",\"canary\":");
		jb_num(&j, st->breach_canary);
		jb_printf(&j, ",\"baseline\":");
		jb_num(&j, st->breach_baseline);
		jb_printf(&j, ",\"limit\":");
		jb_num(&j, st->breach_limit);
		jb_printf(&j, ",\"smooth_ticks\":%u}", run->cfg.smooth_ticks);
	} else {
		jb_printf(&j, "null");
	}
	if (!run->over) {
		jb_printf(&j, ",\"verdict\":null,\"reason\":null,\"metrics\":[]}");
	} else {
		jb_printf(&j, ",\"verdict\":\"%s\",\"reason\":", safe_verdict_name(st->verdict));
		jb_str(&j, st->reason);
		jb_printf(&j, ",\"metrics\":[");
		for (size_t i = 0; i < run->n_results && !j.overflow; i++) {
			int n;

			if (i)
				jb_printf(&j, ",");
			if (j.overflow)
				break;
			n = safe_result_json(&run->results[i], j.buf + j.len, j.size - j.len);
			if (n < 0)
				j.overflow = true;
			else
				j.len += (size_t)n;
		}
		jb_printf(&j, "]}");
	}
	if (j.overflow || j.len > INT_MAX) {
		if (j.size)
			j.buf[j.size - 1] = '\0'; /* the prefix before it is terminated already */
		return -ENAMETOOLONG;
	}
	return (int)j.len;
}
