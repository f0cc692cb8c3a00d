/* fitness.c - the formulas of the fitness score: signals, references, normalisation, weights,
 * and the baselines that are learned where the policy gives no SLO (see fitness.h).
 *
 * Why tables: what each signal is, which part it scores, its SLO, tolerance and slack, and
 * which errnos are not errors are decisions a reader should find in one place with their
 * reasons, not spread over branches.
 *
 * Invariants: pure functions of their arguments (no clock, no I/O), so that the unit test can
 * assert exact scores; every score is in [0, 1] or NAN.
 */
#include <math.h>

#include "fitness/fitness.h"
#include "safety/policy.h"

/* Kernel-internal restart codes (include/linux/errno.h), visible at sys_exit only. */
#define FIT_ERESTARTSYS		  512
#define FIT_ERESTARTNOINTR	  513
#define FIT_ERESTARTNOHAND	  514
#define FIT_ERESTART_RESTARTBLOCK 516

struct fit_errno_desc {
	int err;
	const char *why;
};

/* Failures that are how programs normally work: they do not count as errors. Every other
 * errno does (EBADF, EFAULT, EINVAL, EIO, ENOMEM, ENOSPC, EMFILE, EACCES, EPERM, EPIPE,
 * ECONNRESET, ECONNREFUSED, ...). */
static const struct fit_errno_desc normal_errnos[] = {
    {EAGAIN, "non-blocking I/O with nothing ready: how event loops work (EWOULDBLOCK)"},
    {EINTR, "a signal interrupted a blocking call, which the program retries"},
    {ENOENT, "lookups of files that may be missing: loader paths, caches, config search"},
    {ENODATA, "getxattr of an attribute that is not set (ls, security labels)"},
    {ENOTTY, "isatty() and terminal ioctls on files, pipes and sockets"},
    {ETIMEDOUT, "the normal end of a timed wait (futex, pthread_cond_timedwait); a slow "
		"peer shows in latency"},
    {EINPROGRESS, "a non-blocking connect() has started"},
    {EEXIST, "create-if-missing: mkdir -p, O_CREAT|O_EXCL lock files"},
    {ECHILD, "wait() with no child left: the end of a reaping loop"},
    {ENOSYS, "feature probes of newer syscalls (clone3, rseq, ...)"},
    {FIT_ERESTARTSYS, "kernel-internal restart, never returned to the program"},
    {FIT_ERESTARTNOINTR, "kernel-internal restart, never returned to the program"},
    {FIT_ERESTARTNOHAND, "kernel-internal restart, never returned to the program"},
    {FIT_ERESTART_RESTARTBLOCK, "kernel-internal restart, never returned to the program"},
};

static double slo_latency(const struct safe_slo *s)
{
	return (double)s->p99_latency_ms;
}

static double slo_errors(const struct safe_slo *s)
{
	return s->error_rate;
}

static double slo_throughput(const struct safe_slo *s)
{
	return s->throughput;
}

static double slo_cpu(const struct safe_slo *s)
{
	return s->cpu;
}

struct fit_signal_desc {
	const char *name;
	enum fit_part part;
	bool higher_better;
	/* The SLO in the signal's unit, 0 when not set; NULL: no SLO exists for it. */
	double (*slo)(const struct safe_slo *s);
	/* Baseline reference: max(b * (1 + tol), b + slack), or b * (1 - tol) if higher is
	 * better. */
	double tol, slack;
	const char *why;
	bool slo_only; /* scored only against an SLO: without one its baseline says nothing */
};

static const struct fit_signal_desc signals[FIT_SIG_COUNT] = {
    [FIT_SIG_SYSCALL_P99] = {"syscall_p99_ms", FIT_PART_LATENCY, false, slo_latency, 1.0, 0.1,
			     "2x: p99 from log2 histograms moves by up to a slot; 0.1 ms: below "
			     "that it is noise"},
    [FIT_SIG_RUNQ_P99] = {"runq_p99_ms", FIT_PART_LATENCY, false, NULL, 1.0, 1.0,
			  "2x or 1 ms: a scheduler hiccup is not starvation"},
    [FIT_SIG_ERRORS] = {"error_ratio", FIT_PART_ERRORS, false, slo_errors, 1.0, 0.001,
			"2x or 0.1 %: a healthy service's errors are mostly 0, and a few "
			"failures in a thousand are noise"},
    [FIT_SIG_RATE] = {"syscalls_s", FIT_PART_THROUGHPUT, true, slo_throughput, 0.9, 0,
		      "a tenth: load follows demand and varies tenfold (night, idle hosts); "
		      "less than a tenth of the usual work is a stall"},
    [FIT_SIG_RSS] = {"rss_bytes", FIT_PART_COST, false, NULL, 0.5, 16.0 * 1048576,
		     "1.5x or 16 MiB: allocators and caches breathe"},
    [FIT_SIG_CPU] = {"cpu_cpus", FIT_PART_THROUGHPUT, true, slo_cpu, 0.9, 0,
		     "only with slo.cpu: a service's CPU follows its demand and idles between "
		     "requests, so only a declared batch job's CPU is its throughput",
		     true},
};

static const char *const basis_names[FIT_BASIS_COUNT] = {
    [FIT_BASIS_IDLE] = "idle",
    [FIT_BASIS_LEARNING] = "learning",
    [FIT_BASIS_BASELINE] = "baseline",
    [FIT_BASIS_SLO] = "slo",
};

static const char *const part_names[FIT_PART_COUNT] = {
    [FIT_PART_LATENCY] = "latency",
    [FIT_PART_ERRORS] = "errors",
    [FIT_PART_THROUGHPUT] = "throughput",
    [FIT_PART_COST] = "cost",
};

/* The policy's defaults (docs/config.md), when there is no policy. */
static const struct safe_fitness default_weights = {
    .latency = 0.4, .errors = 0.3, .throughput = 0.2, .cost = 0.1};

const char *fit_basis_name(enum fit_basis b)
{
	return (unsigned)b < FIT_BASIS_COUNT ? basis_names[b] : NULL;
}

const char *fit_part_name(enum fit_part p)
{
	return (unsigned)p < FIT_PART_COUNT ? part_names[p] : NULL;
}

const char *fit_signal_name(enum fit_signal s)
{
	return (unsigned)s < FIT_SIG_COUNT ? signals[s].name : NULL;
}

bool fit_errno_is_error(int err)
{
	for (size_t i = 0; i < ARRAY_SIZE(normal_errnos); i++)
		if (normal_errnos[i].err == err)
			return false;
	return true;
}

double fit_normalize_lower(double x, double ref)
{
	if (isnan(x))
		return NAN;
	if (x <= ref)
		return 1.0;
	return ref > 0 ? ref / x : 0.0;
}

double fit_normalize_higher(double x, double ref)
{
	if (isnan(x))
		return NAN;
	if (x >= ref || ref <= 0)
		return 1.0;
	return x > 0 ? x / ref : 0.0;
}

static double normalize(const struct fit_signal_desc *d, double x, double ref)
{
	return d->higher_better ? fit_normalize_higher(x, ref) : fit_normalize_lower(x, ref);
}

static double baseline_ref(const struct fit_signal_desc *d, double b)
{
	if (d->higher_better)
		return b * (1 - d->tol);
	return fmax(b * (1 + d->tol), b + d->slack);
}

static bool warm(const struct fit_baseline *b)
{
	return b->learned_s * 1000 >= FIT_WARMUP_MS;
}

static bool hist_empty(const struct obs_hist *h)
{
	for (int i = 0; i < OBS_HIST_SLOTS; i++)
		if (h->slots[i])
			return false;
	return true;
}

void fit_error_counts(const struct obs_target_snap *t, uint64_t *errors, uint64_t *events)
{
	uint64_t normal = 0, failed;

	/* Only the top errnos are known by name: failures beyond them count as errors. */
	for (int i = 0; i < t->n_errnos && i < OBS_TOP_ERRNOS; i++)
		if (!fit_errno_is_error(t->top_errnos[i].err))
			normal += t->top_errnos[i].count;
	failed = t->sc_errors - (normal < t->sc_errors ? normal : t->sc_errors);
	/* a connection dropped by a full listen queue is a request that failed */
	*errors = failed + t->listen_overflows;
	*events = t->sc_count + t->listen_overflows;
}

void fit_signal_values(const struct obs_target_snap *t, double v[FIT_SIG_COUNT])
{
	uint64_t errors, events;

	v[FIT_SIG_SYSCALL_P99] =
	    hist_empty(&t->sc_lat_window) ? NAN : obs_hist_quantile(&t->sc_lat_window, 0.99) / 1e6;
	v[FIT_SIG_RUNQ_P99] =
	    hist_empty(&t->rq_lat_window) ? NAN : obs_hist_quantile(&t->rq_lat_window, 0.99) / 1e6;
	fit_error_counts(t, &errors, &events);
	if (events < FIT_MIN_CALLS && t->listen_overflows == 0)
		v[FIT_SIG_ERRORS] = NAN;
	else
		v[FIT_SIG_ERRORS] = (double)errors / (double)events;
	v[FIT_SIG_RATE] = t->sc_rate;
	v[FIT_SIG_RSS] = t->rss_bytes ? (double)t->rss_bytes : NAN;
	v[FIT_SIG_CPU] = t->cpu_usage; /* NAN at the first tick */
}

void fit_evaluate(const double v[FIT_SIG_COUNT], bool idle, const struct safe_slo *slo,
		  const struct safe_fitness *w, const struct fit_baseline base[FIT_SIG_COUNT],
		  struct fit_score *out)
{
	double weight[FIT_PART_COUNT], num = 0, den = 0;

	if (!w)
		w = &default_weights;
	weight[FIT_PART_LATENCY] = w->latency;
	weight[FIT_PART_ERRORS] = w->errors;
	weight[FIT_PART_THROUGHPUT] = w->throughput;
	weight[FIT_PART_COST] = w->cost;

	for (int i = 0; i < FIT_SIG_COUNT; i++) {
		const struct fit_signal_desc *d = &signals[i];
		struct fit_signal_score *sc = &out->sig[i];
		double target = slo && d->slo ? d->slo(slo) : 0;

		sc->value = v[i];
		sc->ref = NAN;
		sc->score = NAN;
		if (idle || isnan(v[i])) {
			sc->basis = FIT_BASIS_IDLE;
			continue;
		}
		if (target > 0) {
			sc->ref = target;
			sc->basis = FIT_BASIS_SLO;
		} else if (d->slo_only) {
			sc->basis = FIT_BASIS_IDLE;
			continue;
		} else if (warm(&base[i])) {
			sc->ref = baseline_ref(d, base[i].mean);
			sc->basis = FIT_BASIS_BASELINE;
		} else {
			sc->basis = FIT_BASIS_LEARNING;
			continue;
		}
		sc->score = normalize(d, v[i], sc->ref);
	}

	for (int p = 0; p < FIT_PART_COUNT; p++) {
		struct fit_part_score *ps = &out->part[p];

		ps->score = NAN;
		ps->basis = FIT_BASIS_IDLE;
		for (int i = 0; i < FIT_SIG_COUNT; i++) {
			const struct fit_signal_score *sc = &out->sig[i];

			if (signals[i].part != (enum fit_part)p)
				continue;
			if (sc->basis > ps->basis)
				ps->basis = sc->basis;
			if (!isnan(sc->score) && (isnan(ps->score) || sc->score < ps->score))
				ps->score = sc->score;
		}
	}

	out->basis = FIT_BASIS_IDLE;
	for (int p = 0; p < FIT_PART_COUNT; p++) {
		const struct fit_part_score *ps = &out->part[p];

		if (!(weight[p] > 0))
			continue;
		if (ps->basis > out->basis)
			out->basis = ps->basis;
		if (isnan(ps->score))
			continue;
		num += weight[p] * ps->score;
		den += weight[p];
	}
	out->score = den > 0 ? fmin(1.0, fmax(0.0, num / den)) : NAN;
}

void fit_learn(struct fit_baseline base[FIT_SIG_COUNT], const struct fit_score *s, uint64_t dt_ms)
{
	double dt = (double)(dt_ms < FIT_MAX_DT_MS ? dt_ms : FIT_MAX_DT_MS) / 1000.0;

	if (dt <= 0)
		return;
	for (int i = 0; i < FIT_SIG_COUNT; i++) {
		const struct fit_signal_desc *d = &signals[i];
		struct fit_baseline *b = &base[i];
		double x = s->sig[i].value;

		if (isnan(x) || s->sig[i].basis == FIT_BASIS_IDLE)
			continue;
		if (!warm(b)) {
			/* Warm-up: the time-weighted mean of everything seen. */
			b->mean += (x - b->mean) * dt / (b->learned_s + dt);
		} else {
			/* Warm: follow healthy values only, with time constant tau. */
			if (normalize(d, x, baseline_ref(d, b->mean)) < 1.0)
				continue;
			b->mean += (x - b->mean) * -expm1(-dt * 1000.0 / FIT_BASELINE_TAU_MS);
		}
		b->learned_s += dt;
	}
}

void fit_score_target(struct fit_baseline base[FIT_SIG_COUNT], const struct obs_target_snap *t,
		      const struct safe_slo *slo, const struct safe_fitness *w, uint64_t dt_ms,
		      struct fit_score *out)
{
	double v[FIT_SIG_COUNT];

	fit_signal_values(t, v);
	fit_evaluate(v, t->index > 0 && t->nprocs == 0, slo, w, base, out);
	fit_learn(base, out, dt_ms);
}

bool fit_learning(const struct fit_score *f, const struct safe_fitness *w)
{
	const struct safe_fitness *u = w ? w : &default_weights;
	const double weight[FIT_PART_COUNT] = {u->latency, u->errors, u->throughput, u->cost};

	for (int p = 0; p < FIT_PART_COUNT; p++)
		if (weight[p] > 0 && f->part[p].basis == FIT_BASIS_LEARNING)
			return true;
	return false;
}
