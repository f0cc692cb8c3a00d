/* fitness.h - one number per target and for the host that says how healthy it is, and why.
 *
 *   fitness = Σ wₚ · partₚ / Σ wₚ      over the parts p that have a score this tick
 *
 * Range: every part and the fitness are in [0, 1]; 1 is healthy, 0 is as bad as it gets. A
 * part without a score (no data, or its baseline still learning) is left out of both sums, so
 * that it neither helps nor hurts; a target with no part scored has no fitness (NAN). Weights
 * wₚ are the policy's `fitness` (relative: only their ratios matter).
 *
 * Parts and the signals they score (all from one obs_target_snap):
 *
 *   latency     min(score of p99 syscall latency, score of p99 run-queue latency), both over
 *               the sliding window of OBS_WINDOW_TICKS ticks, in ms. The worse of the two, so
 *               that CPU starvation shows even when the calls themselves are fast.
 *   errors      the error ratio of the tick: failed syscalls that count as errors (see
 *               fit_errno_is_error(): EAGAIN, EINTR, ENOENT, ETIMEDOUT... are how programs
 *               work, not failures) and connections dropped by a full listen queue (each a
 *               client's failed request: TcpExt ListenOverflows of the target's namespaces),
 *               over all syscalls and drops. With fewer than FIT_MIN_CALLS of them in the
 *               tick and no drop it has no score (one failure among three calls says
 *               nothing).
 *   throughput  the lower of the scores of syscalls per second in the tick and of the CPU
 *               the target used (in CPUs): batch work does few syscalls, its CPU is its
 *               throughput (judged only against slo.cpu: a service's CPU idles between
 *               requests and says nothing of its throughput).
 *   cost        RSS of the target's processes, in bytes (the host: memory in use).
 *
 * Normalisation of one signal with value x against a reference r:
 *
 *   lower is better  (latencies, errors, cost):  s = 1 if x <= r, else r / x
 *   higher is better (throughput):               s = 1 if x >= r, else x / r
 *
 * so a signal at twice its reference scores 0.5, at ten times 0.1: continuous, decreasing,
 * never negative. The reference r is, per signal:
 *
 *   basis slo       the target's SLO for it when the policy gives one: slo.p99_latency (syscall
 *                   latency), slo.error_rate, slo.throughput. x == r still scores 1.
 *   basis baseline  else its learned baseline b, with a tolerance and an absolute slack:
 *                   lower is better:  r = max(b · (1 + tol), b + slack)
 *                   higher is better: r = b · (1 - tol)
 *                   (values in signals[] of fitness.c: latency 2x or +0.1 ms, run-queue
 *                   2x or +1 ms, errors 2x or +0.1 %, throughput a tenth, RSS 1.5x or +16 MiB)
 *   basis learning  the baseline has seen less than FIT_WARMUP_MS of data: no score.
 *   basis idle      no data: no score.
 *
 * Baselines: b is the mean of the first FIT_WARMUP_MS of data (time-weighted), then an EWMA
 * with time constant FIT_BASELINE_TAU_MS. After the warm-up a value is learned only while it
 * is healthy against the baseline (s == 1 against r above, whatever the SLO says), so that a
 * breach never becomes the new normal, while a slow drift within the tolerance is followed.
 * The warm-up assumes the target starts healthy; an SLO does not need that assumption.
 *
 * Limits: syscall latency includes the calls that wait by design (epoll_wait, nanosleep, a
 * read on an idle socket), so slo.p99_latency suits services whose calls do not idle-wait;
 * the others are better judged against their baseline. Cost is memory only: the snapshot has
 * no per-target CPU time yet.
 *
 * A part's basis is the strongest among its signals (slo > baseline > learning > idle), and
 * so is the target's among its weighted parts. A policy target without members is idle as a
 * whole: no score at all, never failing; its baselines are kept for when it comes back.
 *
 * History: every tick's score goes into a bucket per target, written to the memory database
 * (mem_fitness_record) as one row with min/avg/max when the bucket closes: after
 * FIT_BUCKET_MS, or sooner when the basis changes or the score moves more than
 * FIT_BUCKET_DELTA from the bucket's first score (so that a change's before and after fall in
 * different rows). Rows older than FIT_RETENTION_MS are pruned every FIT_PRUNE_PERIOD_MS, in
 * batches of FIT_PRUNE_BATCH.
 *
 * Invariants: scores are in [0, 1] or NAN; fit_tick() never blocks on more than one sqlite
 * transaction (the closed buckets of the tick) and one bounded DELETE.
 */
#ifndef HS_FITNESS_H
#define HS_FITNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "observe/observe.h"

struct mem;
struct safe_policy;
struct safe_slo;
struct safe_fitness;

#define FIT_WARMUP_MS	    30000	     /* data a baseline learns before it judges */
#define FIT_BASELINE_TAU_MS 600000	     /* EWMA time constant of a warm baseline */
#define FIT_MAX_DT_MS	    10000	     /* one sample never weighs more than this */
#define FIT_MIN_CALLS	    20		     /* calls in a tick for an error ratio */
#define FIT_BUCKET_MS	    10000	     /* one history row per target per 10 s ... */
#define FIT_BUCKET_DELTA    0.1		     /* ... or sooner when the score moves this much */
#define FIT_RETENTION_MS    (7 * 86400000LL) /* history kept for 7 days */
#define FIT_PRUNE_PERIOD_MS 3600000	     /* pruned every hour */
#define FIT_PRUNE_BATCH	    10000	     /* rows deleted by one prune at most */
#define FIT_NAME_MAX	    32		     /* SAFE_NAME_MAX */

enum fit_part {
	FIT_PART_LATENCY,
	FIT_PART_ERRORS,
	FIT_PART_THROUGHPUT,
	FIT_PART_COST,
	FIT_PART_COUNT,
};

enum fit_signal {
	FIT_SIG_SYSCALL_P99, /* ms, p99 of syscall latency over the window */
	FIT_SIG_RUNQ_P99,    /* ms, p99 of run-queue latency over the window */
	FIT_SIG_ERRORS,	     /* fraction of the tick's calls that failed with a counted errno */
	FIT_SIG_RATE,	     /* syscalls per second */
	FIT_SIG_RSS,	     /* bytes */
	FIT_SIG_CPU,	     /* CPUs used over the tick (cputime.c) */
	FIT_SIG_COUNT,
};

/* Ordered: a larger value is a stronger basis (the strongest of several wins). */
enum fit_basis {
	FIT_BASIS_IDLE,
	FIT_BASIS_LEARNING,
	FIT_BASIS_BASELINE,
	FIT_BASIS_SLO,
	FIT_BASIS_COUNT,
};

/* The learned normal of one signal. */
struct fit_baseline {
	double mean;	  /* in the signal's unit */
	double learned_s; /* seconds of data learned; warm from FIT_WARMUP_MS on */
};

struct fit_signal_score {
	double value; /* NAN: no data */
	double ref;   /* the reference it was judged against; NAN when not judged */
	double score; /* NAN when not judged */
	enum fit_basis basis;
};

struct fit_part_score {
	double score; /* NAN when no signal of the part was judged */
	enum fit_basis basis;
};

struct fit_score {
	double score; /* the fitness, NAN when no weighted part was judged */
	enum fit_basis basis;
	struct fit_part_score part[FIT_PART_COUNT];
	struct fit_signal_score sig[FIT_SIG_COUNT];
};

/* The pure part: formulas, for the tick and for the tests. */

/* s = 1 if x <= ref, else ref / x; NAN if x is NAN. ref <= 0 scores x > 0 as 0. */
double fit_normalize_lower(double x, double ref);
/* s = 1 if x >= ref, else x / ref; NAN if x is NAN. ref <= 0 scores 1. */
double fit_normalize_higher(double x, double ref);
/* Does a syscall failing with err (positive) count as an error? See the table in fitness.c. */
bool fit_errno_is_error(int err);
/* The failures of t's tick that count as errors (syscalls failing with a counted errno, and
 * listen-queue drops) and the events they are a fraction of (syscalls and drops). */
void fit_error_counts(const struct obs_target_snap *t, uint64_t *errors, uint64_t *events);
/* The signal values of t (NAN where it has no data). */
void fit_signal_values(const struct obs_target_snap *t, double v[FIT_SIG_COUNT]);
/* Scores values v against slo (NULL: none) or the baselines, with weights w (NULL: the
 * policy defaults). idle: the target has no members (everything idle). */
void fit_evaluate(const double v[FIT_SIG_COUNT], bool idle, const struct safe_slo *slo,
		  const struct safe_fitness *w, const struct fit_baseline base[FIT_SIG_COUNT],
		  struct fit_score *out);
/* Learns the healthy values of s into the baselines; dt_ms is the time the sample covers. */
void fit_learn(struct fit_baseline base[FIT_SIG_COUNT], const struct fit_score *s, uint64_t dt_ms);
/* All three for one target of a snapshot: values, evaluate, learn. */
void fit_score_target(struct fit_baseline base[FIT_SIG_COUNT], const struct obs_target_snap *t,
		      const struct safe_slo *slo, const struct safe_fitness *w, uint64_t dt_ms,
		      struct fit_score *out);

/* Is a part weighted in w (NULL: the defaults) still learning its baseline in f? Its score
 * joins the fitness later and moves it: a canary has nothing to compare with yet. */
bool fit_learning(const struct fit_score *f, const struct safe_fitness *w);

const char *fit_basis_name(enum fit_basis b); /* "idle", "learning", "baseline", "slo" */
const char *fit_part_name(enum fit_part p);   /* "latency", "errors", "throughput", "cost" */
const char *fit_signal_name(enum fit_signal s);

/* The daemon's part: baselines and history per target, across ticks and reloads. */

struct fit;

int fit_open(struct fit **out);
/* Writes the open buckets to m (may be NULL) and frees f. */
void fit_close(struct fit *f, struct mem *m);
/* Scores every target of s (the host, the policy's targets, the rest) with policy p (NULL:
 * no SLOs, default weights), records the buckets that closed in m (NULL: none) at wall time
 * now (ms since the epoch), and prunes old history when due. Targets keep their baselines
 * across reloads by name. Returns 0 or the -errno of the memory database (the scores are
 * up to date either way; mem_last_error() says what failed). */
int fit_tick(struct fit *f, const struct obs_snapshot *s, const struct safe_policy *p,
	     struct mem *m, int64_t now);
/* The last score of target name ("host", a policy target, "other"); NULL if never scored. */
const struct fit_score *fit_lookup(const struct fit *f, const char *name);

#endif
