/* search.c - the tuner's search strategies of search.h: a coordinate hill climb and a (1+1)
 * evolution strategy, both driven by canary verdicts.
 *
 * Why these two: the hill climb moves one knob at a time by a step that halves, which is
 * the easiest to explain in `homeostat explain` and needs few canaries when the knobs are
 * nearly independent; the (1+1)-ES moves every knob at once and adapts its step sizes
 * from its own success rate, which copes with coupled knobs and recovers from a false
 * BETTER (one bad move, then sigma shrinks around it). Neither compares fitness values:
 * the judge has already decided, with statistics, whether a canary was better, and a
 * difference the judge could not see is not a reason to move.
 *
 * Invariants: the incumbent is the start or the point of the last BETTER trial; every
 * point stored or proposed is clamped and rounded (value_fix()); no proposed point is the
 * same (same_point()) as the start, a trial or a remembered veto; every step or sigma is
 * finite and > 0; once stats.stop is not TUNE_RUNNING nothing changes any more; a call
 * that fails with -EINVAL changes nothing. The state depends only on the seed, the
 * dimensions, the start and the sequence of outcomes and allowed() answers.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "tune/search.h"

/* ---- names ---- */

static const char *const strategy_names[TUNE_STRATEGY_COUNT] = {
    [TUNE_HILL] = "hill",
    [TUNE_ES] = "es",
};

static const char *const outcome_names[TUNE_OUTCOME_COUNT] = {
    [TUNE_BETTER] = "BETTER",
    [TUNE_WORSE] = "WORSE",
    [TUNE_SAME] = "SAME",
    [TUNE_REFUSED] = "REFUSED",
};

static const char *const stop_names[TUNE_STOP_COUNT] = {
    [TUNE_RUNNING] = "running",
    [TUNE_CONVERGED] = "converged",
    [TUNE_BUDGET] = "budget",
    [TUNE_EXHAUSTED] = "exhausted",
};

const char *tune_strategy_name(enum tune_strategy st)
{
	return (unsigned)st < TUNE_STRATEGY_COUNT ? strategy_names[st] : NULL;
}

const char *tune_outcome_name(enum tune_outcome o)
{
	return (unsigned)o < TUNE_OUTCOME_COUNT ? outcome_names[o] : NULL;
}

const char *tune_stop_name(enum tune_stop r)
{
	return (unsigned)r < TUNE_STOP_COUNT ? stop_names[r] : NULL;
}

int tune_strategy_from_name(const char *name)
{
	if (!name)
		return -EINVAL;
	for (int i = 0; i < TUNE_STRATEGY_COUNT; i++)
		if (strcmp(name, strategy_names[i]) == 0)
			return i;
	return -EINVAL;
}

/* ---- the generator: splitmix64 (Steele, Lea and Flood, 2014) ---- */

/* Any seed, 0 included, gives a full-period sequence; one word of state. */
static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in (0, 1], from 53 random bits (never 0, for the log below). */
static double uniform(uint64_t *state)
{
	return (double)((splitmix64(state) >> 11) + 1) * 0x1.0p-53;
}

/* N(0, 1) by Box-Muller; the pair's second value is dropped, so the state stays one word. */
static double gaussian(uint64_t *state)
{
	double u1 = uniform(state), u2 = uniform(state);

	return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

/* ---- the space ---- */

static double to_search(const struct tune_dim *d, double v)
{
	return d->log_scale ? log2(v) : v;
}

/* v clamped to the dimension and rounded when integer; never -0. */
static double value_fix(const struct tune_dim *d, double v)
{
	double lo = d->integer ? ceil(d->min) : d->min, hi = d->integer ? floor(d->max) : d->max;

	if (d->integer)
		v = round(v);
	if (!(v >= lo)) /* NaN too */
		v = lo;
	if (v > hi)
		v = hi;
	return v == 0 ? 0 : v;
}

/* The knob value at search coordinate y. */
static double to_knob(const struct tune_dim *d, double y)
{
	return value_fix(d, d->log_scale ? exp2(y) : y);
}

/* The largest sigma: the span of the dimension in search units, or its initial step if
 * that is larger. */
static double sigma_max(const struct tune_dim *d)
{
	return fmax(to_search(d, d->max) - to_search(d, d->min), d->step);
}

/* Equal, or closer than half of min_step, in every dimension. */
static bool same_point(const struct tune_search *s, const double *a, const double *b)
{
	for (uint32_t i = 0; i < s->n; i++) {
		const struct tune_dim *d = &s->dim[i];

		if (a[i] == b[i])
			continue;
		if (!(fabs(to_search(d, a[i]) - to_search(d, b[i])) < d->min_step / 2))
			return false;
	}
	return true;
}

enum seen {
	SEEN_NOT,     /* a new candidate */
	SEEN_KNOWN,   /* the same as the start or an evaluated trial: known not to be better */
	SEEN_UNTRIED, /* the same only as a REFUSED trial or a vetoed point: nothing known */
};

static enum seen seen(const struct tune_search *s, const double *x)
{
	uint32_t nv = s->stats.vetoed < TUNE_MAX_VETOED ? s->stats.vetoed : TUNE_MAX_VETOED;
	enum seen r = SEEN_NOT;

	if (same_point(s, x, s->start))
		return SEEN_KNOWN;
	for (uint32_t i = 0; i < s->ntrials; i++) {
		if (!same_point(s, x, s->trials[i].x))
			continue;
		if (s->trials[i].outcome != TUNE_REFUSED)
			return SEEN_KNOWN;
		r = SEEN_UNTRIED;
	}
	for (uint32_t i = 0; r == SEEN_NOT && i < nv; i++)
		if (same_point(s, x, s->vetoed[i]))
			r = SEEN_UNTRIED;
	return r;
}

static bool dim_ok(const struct tune_dim *d)
{
	return isfinite(d->min) && isfinite(d->max) && isfinite(d->step) && isfinite(d->min_step) &&
	       d->min < d->max && (!d->log_scale || d->min > 0) && d->min_step > 0 &&
	       d->min_step <= d->step && (!d->integer || ceil(d->min) <= floor(d->max));
}

/* Initialized, and not a stored state that was damaged. */
static bool state_ok(const struct tune_search *s)
{
	return s && s->magic == TUNE_SEARCH_MAGIC && (unsigned)s->strategy < TUNE_STRATEGY_COUNT &&
	       s->n >= 1 && s->n <= TUNE_MAX_DIMS && s->cur < s->n && s->phase <= 1 &&
	       s->ntrials <= TUNE_MAX_TRIALS && (unsigned)s->stats.stop < TUNE_STOP_COUNT;
}

static void end_check(struct tune_search *s)
{
	bool converged = true;

	if (s->stats.stop != TUNE_RUNNING)
		return;
	for (uint32_t i = 0; i < s->n; i++)
		if (s->step[i] >= s->dim[i].min_step)
			converged = false;
	if (converged)
		s->stats.stop = TUNE_CONVERGED;
	else if (s->stats.evaluated >= s->max_trials || s->ntrials >= TUNE_MAX_TRIALS)
		s->stats.stop = TUNE_BUDGET;
}

/* ---- TUNE_HILL ---- */

static int32_t hill_direction(const struct tune_search *s)
{
	return s->phase ? -s->dir[s->cur] : s->dir[s->cur];
}

static void hill_generate(struct tune_search *s, double *x)
{
	const struct tune_dim *d = &s->dim[s->cur];
	double y = to_search(d, s->incumbent[s->cur]);

	memcpy(x, s->incumbent, s->n * sizeof(*x));
	x[s->cur] = to_knob(d, y + hill_direction(s) * s->step[s->cur]);
}

/* The current direction of the current dimension failed: try the opposite one, or, when
 * both failed, halve the step and go on with the next dimension not yet converged (none:
 * the climb has converged, end_check() will say so). */
static void hill_fail(struct tune_search *s)
{
	if (s->phase == 0) {
		s->phase = 1;
		return;
	}
	s->phase = 0;
	s->step[s->cur] /= 2;
	for (uint32_t k = 1; k <= s->n; k++) {
		uint32_t i = (s->cur + k) % s->n;

		if (s->step[i] >= s->dim[i].min_step) {
			s->cur = i;
			break;
		}
	}
}

static void hill_report(struct tune_search *s, enum tune_outcome o)
{
	if (o == TUNE_BETTER) {
		s->dir[s->cur] = hill_direction(s);
		s->phase = 0;
	} else {
		hill_fail(s);
	}
}

/* ---- TUNE_ES ---- */

static void es_generate(struct tune_search *s, double *x)
{
	for (uint32_t i = 0; i < s->n; i++) {
		const struct tune_dim *d = &s->dim[i];

		x[i] = to_knob(d, to_search(d, s->incumbent[i]) + s->step[i] * gaussian(&s->rng));
	}
}

/* 1/5th success rule: sigma is stable when exp(1/3)^p * exp(-1/12)^(1-p) = 1, p = 1/5. */
static void es_adapt(struct tune_search *s, bool success)
{
	double f = success ? exp(1.0 / 3) : exp(-1.0 / 12);

	for (uint32_t i = 0; i < s->n; i++)
		s->step[i] = fmin(s->step[i] * f, sigma_max(&s->dim[i]));
}

static void es_report(struct tune_search *s, enum tune_outcome o)
{
	if (o != TUNE_REFUSED) /* REFUSED: nothing was learnt */
		es_adapt(s, o == TUNE_BETTER);
}

/* ---- the protocol ---- */

int tune_search_init(struct tune_search *s, enum tune_strategy st, const struct tune_dim *dims,
		     size_t n, const double *start, uint64_t seed, unsigned max_trials)
{
	if (!s)
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	if (!dims || !start || n < 1 || n > TUNE_MAX_DIMS || (unsigned)st >= TUNE_STRATEGY_COUNT ||
	    max_trials > TUNE_MAX_TRIALS)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!dim_ok(&dims[i]) || !isfinite(start[i]))
			return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (start[i] < dims[i].min || start[i] > dims[i].max)
			return -ERANGE;

	s->strategy = st;
	s->n = (uint32_t)n;
	s->max_trials = max_trials ? max_trials : TUNE_MAX_TRIALS;
	s->incumbent_fitness = NAN;
	s->rng = seed;
	s->stats.stop = TUNE_RUNNING;
	for (size_t i = 0; i < n; i++) {
		s->dim[i] = dims[i];
		s->start[i] = s->incumbent[i] = value_fix(&dims[i], start[i]);
		s->step[i] = dims[i].step;
		s->dir[i] = 1;
	}
	s->magic = TUNE_SEARCH_MAGIC;
	return 0;
}

int tune_search_next(struct tune_search *s, double *x,
		     bool (*allowed)(const double *x, size_t n, void *ud), void *ud)
{
	double cand[TUNE_MAX_DIMS] = {0};
	enum seen known;

	if (!state_ok(s) || !x || s->pending)
		return -EINVAL;
	for (unsigned attempt = 0;; attempt++) {
		end_check(s);
		if (s->stats.stop != TUNE_RUNNING)
			return -ENOENT;
		if (attempt == TUNE_MAX_ATTEMPTS) {
			s->stats.stop = TUNE_EXHAUSTED;
			return -ENOENT;
		}
		if (s->strategy == TUNE_HILL)
			hill_generate(s, cand);
		else
			es_generate(s, cand);
		known = seen(s, cand);
		if (known != SEEN_NOT) {
			s->stats.duplicates++;
			if (known == SEEN_KNOWN && s->strategy == TUNE_ES)
				es_adapt(s, false);
		} else if (allowed && !allowed(cand, s->n, ud)) {
			memcpy(s->vetoed[s->stats.vetoed % TUNE_MAX_VETOED], cand, sizeof(cand));
			s->stats.vetoed++;
		} else {
			memcpy(s->candidate, cand, sizeof(cand));
			memcpy(x, cand, s->n * sizeof(*x));
			s->pending = true;
			s->stats.proposed++;
			return 0;
		}
		if (s->strategy == TUNE_HILL)
			hill_fail(s);
	}
}

int tune_search_report(struct tune_search *s, const double *x, enum tune_outcome o, double fitness)
{
	struct tune_trial *t;

	if (!state_ok(s) || !x || !s->pending || (unsigned)o >= TUNE_OUTCOME_COUNT ||
	    s->ntrials >= TUNE_MAX_TRIALS)
		return -EINVAL;
	for (uint32_t i = 0; i < s->n; i++)
		if (x[i] != s->candidate[i])
			return -EINVAL;

	t = &s->trials[s->ntrials++];
	memcpy(t->x, s->candidate, sizeof(t->x));
	t->outcome = o;
	t->fitness = fitness;
	s->pending = false;
	switch (o) {
	case TUNE_BETTER:
		memcpy(s->incumbent, s->candidate, sizeof(s->incumbent));
		s->incumbent_fitness = fitness;
		s->stats.better++;
		break;
	case TUNE_WORSE:
		s->stats.worse++;
		break;
	case TUNE_SAME:
		s->stats.same++;
		break;
	default:
		s->stats.refused++;
		break;
	}
	if (o != TUNE_REFUSED)
		s->stats.evaluated++;
	if (s->strategy == TUNE_HILL)
		hill_report(s, o);
	else
		es_report(s, o);
	end_check(s);
	return 0;
}

bool tune_search_converged(const struct tune_search *s)
{
	return state_ok(s) && s->stats.stop != TUNE_RUNNING;
}

const double *tune_search_incumbent(const struct tune_search *s, double *fitness_out)
{
	if (!state_ok(s))
		return NULL;
	if (fitness_out)
		*fitness_out = s->incumbent_fitness;
	return s->incumbent;
}

size_t tune_search_trials(const struct tune_search *s, struct tune_trial *out, size_t max)
{
	if (!state_ok(s))
		return 0;
	if (out)
		memcpy(out, s->trials, (max < s->ntrials ? max : s->ntrials) * sizeof(*out));
	return s->ntrials;
}

int tune_search_stats(const struct tune_search *s, struct tune_stats *out)
{
	if (!state_ok(s) || !out)
		return -EINVAL;
	*out = s->stats;
	return 0;
}
