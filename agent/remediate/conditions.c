/* conditions.c - runbook conditions over a target's recent ticks (see conditions.h).
 *
 * Each signal of the observation table maps, through extractors[], to what one tick holds of
 * it: a count (counters), a histogram (latencies) or a gauge. A signal of the table that has
 * no extractor here yet is refused with -EOPNOTSUPP, never evaluated as zero. The errno
 * selector sums the tick's top errnos (OBS_TOP_ERRNOS of them): an errno outside a tick's top
 * is not counted in that tick. The syscall selector needs per-syscall values, which the
 * snapshot does not carry yet: -EOPNOTSUPP.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "remediate/conditions.h"

enum sig_kind {
	SIG_COUNTER,
	SIG_HIST,
	SIG_GAUGE,
};

struct sig_extractor {
	const char *name;
	enum sig_kind kind;
	/* counters: the tick's count; gauges: the tick's value. */
	double (*value)(const struct heal_condition *c, const struct heal_sample *t);
	/* histograms: the tick's histogram. */
	const struct obs_hist *(*hist)(const struct heal_sample *t);
};

static double x_syscalls(const struct heal_condition *c, const struct heal_sample *t)
{
	return (double)t->sc_count;
}

static double x_errors(const struct heal_condition *c, const struct heal_sample *t)
{
	uint64_t sum = 0;

	if (!c->n_errnos)
		return (double)t->sc_errors;
	for (int i = 0; i < t->n_errnos; i++)
		for (size_t j = 0; j < c->n_errnos; j++)
			if (t->top_errnos[i].err == c->errnos[j])
				sum += t->top_errnos[i].count;
	return (double)sum;
}

static double x_faults(const struct heal_condition *c, const struct heal_sample *t)
{
	return (double)t->faults;
}

static double x_fatal(const struct heal_condition *c, const struct heal_sample *t)
{
	return (double)t->fatal;
}

static double x_exits(const struct heal_condition *c, const struct heal_sample *t)
{
	return (double)t->exits;
}

static double x_listen_overflows(const struct heal_condition *c, const struct heal_sample *t)
{
	return (double)t->listen_overflows;
}

static double x_cpu(const struct heal_condition *c, const struct heal_sample *t)
{
	return t->cpu_usage;
}

static double x_rss(const struct heal_condition *c, const struct heal_sample *t)
{
	return (double)t->rss_bytes;
}

static const struct obs_hist *h_sc_lat(const struct heal_sample *t)
{
	return &t->sc_lat;
}

static const struct obs_hist *h_rq_lat(const struct heal_sample *t)
{
	return &t->rq_lat;
}

/* fd_usage and restarts are in the signal table but not in obs_target_snap yet. */
static const struct sig_extractor extractors[] = {
    {"syscall_rate", SIG_COUNTER, x_syscalls, NULL},
    {"syscall_errors", SIG_COUNTER, x_errors, NULL},
    {"syscall_latency", SIG_HIST, NULL, h_sc_lat},
    {"runq_latency", SIG_HIST, NULL, h_rq_lat},
    {"rss", SIG_GAUGE, x_rss, NULL},
    {"cpu_usage", SIG_GAUGE, x_cpu, NULL},
    {"page_faults", SIG_COUNTER, x_faults, NULL},
    {"fatal_signals", SIG_COUNTER, x_fatal, NULL},
    {"exits", SIG_COUNTER, x_exits, NULL},
    {"listen_overflows", SIG_COUNTER, x_listen_overflows, NULL},
};

static const struct sig_extractor *extractor_lookup(const char *name)
{
	for (size_t i = 0; i < sizeof(extractors) / sizeof(extractors[0]); i++)
		if (strcmp(extractors[i].name, name) == 0)
			return &extractors[i];
	return NULL;
}

static bool op_gt(double a, double b)
{
	return a > b;
}
static bool op_ge(double a, double b)
{
	return a >= b;
}
static bool op_lt(double a, double b)
{
	return a < b;
}
static bool op_le(double a, double b)
{
	return a <= b;
}
static bool op_eq(double a, double b)
{
	return a == b;
}
static bool op_ne(double a, double b)
{
	return a != b;
}

static bool (*const ops[])(double, double) = {
    [HEAL_OP_GT] = op_gt, [HEAL_OP_GE] = op_ge, [HEAL_OP_LT] = op_lt,
    [HEAL_OP_LE] = op_le, [HEAL_OP_EQ] = op_eq, [HEAL_OP_NE] = op_ne,
};

/* Quantile of each histogram aggregation; max is the top of the highest slot in use. */
static const double agg_quantile[OBS_AGG_COUNT_] = {
    [OBS_AGG_P50] = 0.5, [OBS_AGG_P90] = 0.9, [OBS_AGG_P99] = 0.99, [OBS_AGG_MAX] = 1.0};

void heal_series_reset(struct heal_series *s)
{
	s->next = s->filled = 0;
}

static const struct heal_sample *series_at(const struct heal_series *s, unsigned age)
{
	return &s->ring[(s->next + HEAL_SERIES_TICKS - 1 - age) % HEAL_SERIES_TICKS];
}

int heal_series_push(struct heal_series *s, const struct obs_target_snap *snap, uint64_t at_ms)
{
	struct heal_sample *t;
	int n;

	if (s->filled && at_ms <= series_at(s, 0)->at_ms)
		return -EINVAL;
	t = &s->ring[s->next];
	memset(t, 0, sizeof(*t));
	t->at_ms = at_ms;
	t->sc_count = snap->sc_count;
	t->sc_errors = snap->sc_errors;
	n = snap->n_errnos < 0		      ? 0
	    : snap->n_errnos > OBS_TOP_ERRNOS ? OBS_TOP_ERRNOS
					      : snap->n_errnos;
	memcpy(t->top_errnos, snap->top_errnos, (size_t)n * sizeof(t->top_errnos[0]));
	t->n_errnos = n;
	t->sc_lat = snap->sc_lat;
	t->rq_lat = snap->rq_lat;
	t->rss_bytes = snap->rss_bytes;
	t->faults = snap->faults;
	t->execs = snap->execs;
	t->exits = snap->exits;
	t->fatal = snap->fatal;
	t->listen_overflows = snap->listen_overflows;
	t->cpu_usage = snap->cpu_usage;
	s->next = (s->next + 1) % HEAL_SERIES_TICKS;
	if (s->filled < HEAL_SERIES_TICKS)
		s->filled++;
	return 0;
}

/* "syscall_errors{errno=EMFILE|ENFILE,syscall=accept4}" */
static void label(char *buf, size_t len, const struct heal_condition *c)
{
	size_t o = (size_t)snprintf(buf, len, "%s", c->signal);

	if (!c->n_errnos && !c->syscall)
		return;
	o += (size_t)snprintf(buf + o, o < len ? len - o : 0, "{");
	for (size_t i = 0; i < c->n_errnos; i++) {
		const char *name = strerrorname_np(c->errnos[i]);

		o += (size_t)snprintf(buf + o, o < len ? len - o : 0, "%s%s",
				      i ? "|" : "errno=", name ? name : "?");
	}
	if (c->syscall)
		o += (size_t)snprintf(buf + o, o < len ? len - o : 0, "%ssyscall=%s",
				      c->n_errnos ? "," : "", c->syscall);
	snprintf(buf + o, o < len ? len - o : 0, "}");
}

/* A value in the unit of the threshold: value with one decimal (two for ms), threshold as
 * written (%g); bytes in the largest binary unit not above it, ratios as percentages. */
static void fmt_value(char *buf, size_t len, const struct heal_condition *c, double v,
		      bool threshold)
{
	static const char *const byte_units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	const char *per = c->aggregation == OBS_AGG_SLOPE ? "/s" : "";
	unsigned u = 0;

	switch (c->desc->unit) {
	case OBS_UNIT_EVENTS:
		if (threshold)
			snprintf(buf, len, "%g", v);
		else
			snprintf(buf, len, "%.1f%s", v,
				 c->aggregation == OBS_AGG_RATE ? "/s" : per);
		break;
	case OBS_UNIT_TIME:
		snprintf(buf, len, threshold ? "%g ms%s" : "%.2f ms%s", v, per);
		break;
	case OBS_UNIT_BYTES:
		while (u + 1 < sizeof(byte_units) / sizeof(byte_units[0]) &&
		       (v >= 1024.0 || v <= -1024.0)) {
			v /= 1024.0;
			u++;
		}
		snprintf(buf, len, threshold ? "%g %s%s" : "%.1f %s%s", v, byte_units[u], per);
		break;
	case OBS_UNIT_RATIO:
		snprintf(buf, len, threshold ? "%g%%%s" : "%.1f%%%s", v * 100.0, per);
		break;
	}
}

struct window_acc {
	unsigned n;		     /* samples in the window */
	double sum, max, last, base; /* counters and gauges */
	double sx, sy, sxx, sxy;     /* least squares, x in seconds before now */
	struct obs_hist hist;	     /* histograms */
	bool have_base;		     /* a sample at or before the window's start */
	uint64_t oldest_ms;	     /* the oldest sample, for "covered" */
};

static void window_collect(const struct sig_extractor *x, const struct heal_condition *c,
			   const struct heal_series *s, uint64_t now_ms, struct window_acc *a)
{
	uint64_t start = now_ms >= (uint64_t)c->window_ms ? now_ms - (uint64_t)c->window_ms : 0;

	memset(a, 0, sizeof(*a));
	for (unsigned age = 0; age < s->filled; age++) {
		const struct heal_sample *t = series_at(s, age);
		double y, xs;

		if (t->at_ms > now_ms)
			continue;
		a->oldest_ms = t->at_ms;
		if (t->at_ms <= start && now_ms >= (uint64_t)c->window_ms) {
			a->have_base = true;
			if (x->value)
				a->base = x->value(c, t);
			break;
		}
		if (x->hist) {
			a->n++;
			obs_hist_add(&a->hist, x->hist(t));
			continue;
		}
		y = x->value(c, t);
		if (isnan(y))
			continue; /* not measured that tick (a gauge's first reading) */
		a->n++;
		xs = ((double)t->at_ms - (double)now_ms) / 1000.0;
		if (a->n == 1) {
			a->last = y;
			a->max = y;
		}
		a->sum += y;
		a->max = y > a->max ? y : a->max;
		a->sx += xs;
		a->sy += y;
		a->sxx += xs * xs;
		a->sxy += xs * y;
	}
}

/* The aggregate of a's window; false with why set when it cannot be computed. */
static bool window_value(const struct sig_extractor *x, const struct heal_condition *c,
			 const struct window_acc *a, double *v, const char **why)
{
	double n = a->n, den;

	switch (x->kind) {
	case SIG_COUNTER:
		*v = c->aggregation == OBS_AGG_RATE ? a->sum / ((double)c->window_ms / 1000.0)
						    : a->sum;
		return true;
	case SIG_HIST:
		if (!a->hist.count) {
			*why = "no latency samples";
			return false;
		}
		*v = (c->aggregation == OBS_AGG_AVG
			  ? obs_hist_mean(&a->hist)
			  : obs_hist_quantile(&a->hist, agg_quantile[c->aggregation])) /
		     1e6;
		return true;
	case SIG_GAUGE:
		break;
	}
	switch (c->aggregation) {
	case OBS_AGG_MAX:
		*v = a->max;
		return true;
	case OBS_AGG_AVG:
		*v = a->sum / n;
		return true;
	case OBS_AGG_DELTA:
		*v = a->last - a->base;
		return true;
	default: /* OBS_AGG_SLOPE */
		den = n * a->sxx - a->sx * a->sx;
		if (a->n < 2 || den == 0) {
			*why = "fewer than 2 samples";
			return false;
		}
		*v = (n * a->sxy - a->sx * a->sy) / den;
		return true;
	}
}

int heal_condition_eval(const struct heal_condition *c, const struct heal_series *s,
			uint64_t now_ms, struct heal_eval *out)
{
	const struct sig_extractor *x;
	struct window_acc a;
	char name[96], val[48], thr[48];
	const char *why = NULL;
	double v = 0;

	memset(out, 0, sizeof(*out));
	if (!c->signal || !c->desc || c->aggregation < 0 || c->aggregation >= OBS_AGG_COUNT_ ||
	    c->op < HEAL_OP_GT || c->op > HEAL_OP_NE || c->window_ms <= 0) {
		snprintf(out->explain, sizeof(out->explain), "condition on '%s' is not checked",
			 c->signal ? c->signal : "?");
		return -EINVAL;
	}
	label(name, sizeof(name), c);
	x = extractor_lookup(c->signal);
	if (!x) {
		snprintf(out->explain, sizeof(out->explain), "signal '%s' is not extracted yet",
			 c->signal);
		return -EOPNOTSUPP;
	}
	if (c->syscall) {
		snprintf(out->explain, sizeof(out->explain),
			 "%s: per-syscall values are not collected yet", name);
		return -EOPNOTSUPP;
	}
	if (!(c->desc->aggs & OBS_AGG_BIT(c->aggregation))) {
		snprintf(out->explain, sizeof(out->explain), "%s: aggregation '%s' does not apply",
			 name, obs_agg_names[c->aggregation]);
		return -EINVAL;
	}

	window_collect(x, c, s, now_ms, &a);
	/* A count can only grow as the window fills: one already above the threshold over the
	 * part covered is above it over the whole window (rate divides by the whole window). */
	if (!a.have_base && a.n && x->kind == SIG_COUNTER &&
	    (c->op == HEAL_OP_GT || c->op == HEAL_OP_GE) && window_value(x, c, &a, &v, &why) &&
	    ops[c->op](v, c->threshold)) {
		out->value = v;
		out->enough_data = true;
		out->holds = true;
		fmt_value(val, sizeof(val), c, v, false);
		fmt_value(thr, sizeof(thr), c, c->threshold, true);
		snprintf(out->explain, sizeof(out->explain),
			 "%s %s %s over %g s (%g s covered, already) %s %s", name,
			 obs_agg_names[c->aggregation], val, (double)c->window_ms / 1000.0,
			 a.oldest_ms ? (double)(now_ms - a.oldest_ms) / 1000.0 : 0.0,
			 heal_op_names[c->op], thr);
		return 0;
	}
	if (a.have_base && !a.n)
		why = "no sample in the window";
	if (!why && !a.have_base) {
		if (s->filled == HEAL_SERIES_TICKS && !a.have_base)
			snprintf(out->explain, sizeof(out->explain),
				 "%s %s over %g s: not enough data (window longer than the %u "
				 "ticks kept)",
				 name, obs_agg_names[c->aggregation], (double)c->window_ms / 1000.0,
				 HEAL_SERIES_TICKS);
		else
			snprintf(out->explain, sizeof(out->explain),
				 "%s %s over %g s: not enough data (%g s covered)", name,
				 obs_agg_names[c->aggregation], (double)c->window_ms / 1000.0,
				 s->filled && a.oldest_ms ? (double)(now_ms - a.oldest_ms) / 1000.0
							  : 0.0);
		return 0;
	}
	if (why || !window_value(x, c, &a, &v, &why)) {
		snprintf(out->explain, sizeof(out->explain),
			 "%s %s over %g s: not enough data (%s)", name,
			 obs_agg_names[c->aggregation], (double)c->window_ms / 1000.0, why);
		return 0;
	}
	out->value = v;
	out->enough_data = true;
	out->holds = ops[c->op](v, c->threshold);
	fmt_value(val, sizeof(val), c, v, false);
	fmt_value(thr, sizeof(thr), c, c->threshold, true);
	snprintf(out->explain, sizeof(out->explain), "%s %s %s over %g s %s%s %s", name,
		 obs_agg_names[c->aggregation], val, (double)c->window_ms / 1000.0,
		 out->holds ? "" : "not ", heal_op_names[c->op], thr);
	return 0;
}

/* Evaluates every condition of v into why; *all: each holds; *refuted: one has enough data
 * and does not hold. */
static int eval_all(const struct heal_condition *v, size_t n, const struct heal_series *s,
		    uint64_t now_ms, char *why, size_t len, bool *all, bool *refuted)
{
	struct heal_eval e;
	size_t o = 0;

	*all = n > 0;
	*refuted = false;
	why[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		int r = heal_condition_eval(&v[i], s, now_ms, &e);

		o += (size_t)snprintf(why + o, o < len ? len - o : 0, "%s%s", i ? "; " : "",
				      e.explain);
		if (r < 0)
			return r;
		*all = *all && e.holds;
		*refuted = *refuted || (e.enough_data && !e.holds);
	}
	return 0;
}

int heal_detect_step(const struct heal_detect *d, const struct heal_series *s, uint64_t now_ms,
		     struct heal_detect_state *st)
{
	bool all, refuted, clears;
	int r;

	if (!st->fired) {
		r = eval_all(d->when, d->n_when, s, now_ms, st->why, sizeof(st->why), &all,
			     &refuted);
		if (r < 0)
			return r;
		if (!all) {
			st->holding = false;
			return HEAL_DETECT_UNCHANGED;
		}
		if (!st->holding) {
			st->holding = true;
			st->since_ms = now_ms;
		}
		if (now_ms - st->since_ms < (uint64_t)(d->for_ms > 0 ? d->for_ms : 0))
			return HEAL_DETECT_UNCHANGED;
		st->fired = true;
		st->fired_ms = now_ms;
		return HEAL_DETECT_FIRED;
	}
	/* Fired: with a clear list, all of it must hold; without, when must be refuted by data
	 * (a gap in the samples does not end an episode). */
	if (d->n_clear) {
		r = eval_all(d->clear, d->n_clear, s, now_ms, st->why, sizeof(st->why), &all,
			     &refuted);
		clears = all;
	} else {
		r = eval_all(d->when, d->n_when, s, now_ms, st->why, sizeof(st->why), &all,
			     &refuted);
		clears = refuted;
	}
	if (r < 0)
		return r;
	if (!clears)
		return HEAL_DETECT_UNCHANGED;
	st->fired = false;
	st->holding = false;
	return HEAL_DETECT_CLEARED;
}
