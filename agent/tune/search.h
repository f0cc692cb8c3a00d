/* search.h - the tuner's search strategies: which knob values to try next.
 *
 * The tuner (DESIGN.md "Safety", issue 5) looks for better settings of up to TUNE_MAX_DIMS
 * knobs at once. A candidate is a point with one value per knob; the caller applies it as a
 * canary, has the judge compare it with the incumbent (the settings in force), and reports
 * the verdict. Canaries are slow and noisy, so the search spends as few as it can and
 * trusts only the verdict: an outcome is already a statistical decision, the fitness that
 * comes with it is recorded and never compared here.
 *
 * Protocol: tune_search_init(), then repeatedly tune_search_next() (a candidate) and
 * tune_search_report() (its outcome), until next() returns -ENOENT. One candidate is
 * outstanding at a time. Pure computation: no I/O, no clock, no logging, no allocation, no
 * global state; the state is one flat struct without pointers, so it can be copied and
 * stored, and the same seed, inputs and predicate answers always give the same candidates,
 * to the last bit (own splitmix64 generator, never rand()).
 *
 * Space. Each dimension (struct tune_dim) is searched in its own units, or in log2 of them
 * when log_scale (a step of 1 doubles or halves the value). Every candidate is clamped to
 * [min, max] and, for integer dimensions, rounded (half away from zero) and kept within
 * [ceil(min), floor(max)]. Two points are the same candidate when, in every dimension, they
 * are equal or closer than half that dimension's min_step (in search units): the search
 * does not distinguish points below its resolution.
 *
 * Outcomes. BETTER makes the candidate the incumbent (with the reported fitness). WORSE and
 * SAME (inconclusive, or no measurable gain) never move it; they are failures. REFUSED
 * (the safety gate or memory would not let it run; nothing was measured) never moves it,
 * counts toward no max_trials and is no failure for the ES (its sigma stays); the hill
 * climb, which has nowhere else to go, gives up that direction as after a failure.
 *
 * Never twice. A candidate is never proposed if it is the same (above) as the start point,
 * as a reported trial of any outcome, or as one of the last TUNE_MAX_VETOED points that the
 * caller's allowed() predicate vetoed; allowed() is asked only about candidates that pass
 * this check, and each veto is counted. A generated candidate that is not proposed is an
 * attempt; after TUNE_MAX_ATTEMPTS attempts in one call the search ends (EXHAUSTED).
 *
 * TUNE_HILL, coordinate hill climb. Dimensions are climbed in turn, starting with the
 * first; a dimension's first direction is +. The candidate is the incumbent with the
 * current dimension moved by its step in the current direction. BETTER moves the incumbent
 * and the climb stays in that dimension and direction (a line search); otherwise, or when
 * the candidate is not proposed (the same as a tried point, e.g. the previous incumbent or
 * the incumbent itself at a bound, or vetoed), it tries the opposite direction; when both
 * directions failed, the step of that dimension is halved and the climb goes on with the
 * next dimension whose step is not below its min_step. A BETTER in the opposite direction
 * makes it the direction tried first. Converged when every step is below its min_step.
 *
 * TUNE_ES, (1+1) evolution strategy with the 1/5th success rule. sigma_i starts at step_i;
 * the candidate is incumbent_i + sigma_i * N(0, 1) in every dimension (search units), a
 * fresh draw per attempt. BETTER replaces the incumbent and multiplies every sigma_i by
 * exp(1/3); WORSE and SAME multiply it by exp(-1/12) (so sigma is stable at a success rate
 * of 1/5); REFUSED leaves it. A draw that is not proposed because it is the same as the
 * start or an evaluated trial is a failure known without a canary (the incumbent is at
 * least as good): it shrinks sigma like WORSE, so that a neighbourhood explored down to
 * the resolution ends in convergence; a draw vetoed, or the same only as a vetoed or
 * REFUSED point, leaves sigma. sigma_i never exceeds the larger of step_i and the
 * dimension's span (max - min, in search units). Converged when every sigma_i is below its
 * min_step.
 *
 * Budget: at most max_trials candidates are evaluated (reported BETTER, WORSE or SAME), and
 * at most TUNE_MAX_TRIALS reported in all (REFUSED included: they are remembered). The
 * search ends (next() returns -ENOENT, converged() is true) when it has converged, when
 * either budget is spent, or after TUNE_MAX_ATTEMPTS fruitless attempts; it never resumes.
 *
 * Errors: -EINVAL (NULL, an uninitialized state, a value out of range, next() while a
 * candidate is outstanding, report() without one or for another point), -ERANGE (a start
 * value outside its dimension's [min, max]), -ENOENT (the search has ended).
 */
#ifndef HS_TUNE_SEARCH_H
#define HS_TUNE_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TUNE_MAX_DIMS	  8	      /* knobs searched together */
#define TUNE_MAX_TRIALS	  256	      /* trials remembered, and the largest max_trials */
#define TUNE_MAX_VETOED	  64	      /* vetoed points remembered (the newest) */
#define TUNE_MAX_ATTEMPTS 256	      /* candidates generated by one tune_search_next() call */
#define TUNE_SEARCH_MAGIC 0x54554e01u /* "TUN" and the layout version of struct tune_search */

enum tune_strategy {
	TUNE_HILL, /* coordinate hill climb with step halving */
	TUNE_ES,   /* (1+1) evolution strategy, 1/5th success rule */
	TUNE_STRATEGY_COUNT,
};

/* The verdict on a candidate, from the caller's canary and judge. */
enum tune_outcome {
	TUNE_BETTER,  /* measurably better than the incumbent: KEEP */
	TUNE_WORSE,   /* measurably worse: ROLLBACK */
	TUNE_SAME,    /* inconclusive, or no measurable gain */
	TUNE_REFUSED, /* the safety gate or memory refused it: not evaluated */
	TUNE_OUTCOME_COUNT,
};

/* Why the search ended. */
enum tune_stop {
	TUNE_RUNNING,	/* it has not */
	TUNE_CONVERGED, /* every step (hill) or sigma (es) is below its min_step */
	TUNE_BUDGET,	/* max_trials evaluated, or TUNE_MAX_TRIALS reported */
	TUNE_EXHAUSTED, /* TUNE_MAX_ATTEMPTS candidates of one call were all tried or vetoed */
	TUNE_STOP_COUNT,
};

/* One knob. step and min_step are in log2 units when log_scale (1 = x2), else in the
 * knob's unit. Requires finite min < max, min > 0 when log_scale, and
 * 0 < min_step <= step, all finite; an integer dimension needs an integer in [min, max]. */
struct tune_dim {
	double min, max;
	bool log_scale;
	bool integer;
	double step;	 /* initial step (hill) or sigma (es) */
	double min_step; /* converged below this; also the resolution (see "Space") */
};

/* A reported candidate. */
struct tune_trial {
	double x[TUNE_MAX_DIMS]; /* n values; the rest 0 */
	enum tune_outcome outcome;
	double fitness; /* as reported; NAN if none */
};

struct tune_stats {
	unsigned proposed;   /* candidates returned by tune_search_next() */
	unsigned evaluated;  /* reported BETTER, WORSE or SAME */
	unsigned better;     /* reported BETTER: moves of the incumbent */
	unsigned worse;	     /* reported WORSE */
	unsigned same;	     /* reported SAME */
	unsigned refused;    /* reported REFUSED */
	unsigned vetoed;     /* refused by allowed() before being proposed */
	unsigned duplicates; /* generated but the same as a tried or vetoed point */
	enum tune_stop stop;
};

/* The state: flat, no pointers, fixed size (about 25 KB). Read it through the functions
 * below; tests and explain may read step[] (the current steps or sigmas). */
struct tune_search {
	uint32_t magic; /* TUNE_SEARCH_MAGIC once initialized, with the layout version */
	enum tune_strategy strategy;
	uint32_t n;
	uint32_t max_trials;
	struct tune_dim dim[TUNE_MAX_DIMS];
	double start[TUNE_MAX_DIMS];
	double incumbent[TUNE_MAX_DIMS];
	double incumbent_fitness;	 /* of the last BETTER; NAN before one */
	double step[TUNE_MAX_DIMS];	 /* hill: step; es: sigma; in search units */
	int32_t dir[TUNE_MAX_DIMS];	 /* hill: +1 or -1, the direction tried first */
	uint32_t cur;			 /* hill: the dimension being climbed */
	uint32_t phase;			 /* hill: 0 first direction, 1 the opposite */
	uint64_t rng;			 /* splitmix64 state */
	bool pending;			 /* a candidate is outstanding */
	double candidate[TUNE_MAX_DIMS]; /* the outstanding candidate */
	struct tune_stats stats;
	uint32_t ntrials;
	struct tune_trial trials[TUNE_MAX_TRIALS];
	double vetoed[TUNE_MAX_VETOED][TUNE_MAX_DIMS]; /* ring, by stats.vetoed */
};

/* Starts a search of n (1..TUNE_MAX_DIMS) dimensions from start (the settings in force,
 * the first incumbent; integer dimensions rounded), with strategy st. seed: any value,
 * the ES draws from it (the hill climb does not draw). max_trials: the most candidates
 * evaluated, 1..TUNE_MAX_TRIALS, or 0 for TUNE_MAX_TRIALS. The dimensions are copied.
 * 0, -EINVAL (NULL, st, n, max_trials, a dimension or start value not finite or out of
 * the rules of struct tune_dim) or -ERANGE (start outside [min, max]); on error *s is
 * left uninitialized (every other function refuses it). */
int tune_search_init(struct tune_search *s, enum tune_strategy st, const struct tune_dim *dims,
		     size_t n, const double *start, uint64_t seed, unsigned max_trials);

/* Writes the next candidate's n values into x and returns 0; the candidate is then
 * outstanding until tune_search_report(). allowed: NULL, or a predicate asked about each
 * candidate before it is proposed (with ud); false vetoes it and the search generates
 * another (see "Never twice"). -ENOENT when the search has ended (it may end inside this
 * call: converged, budget spent, or TUNE_MAX_ATTEMPTS attempts without a candidate);
 * -EINVAL for NULL s or x, an uninitialized state, or a candidate already outstanding.
 * x is written only on success. */
int tune_search_next(struct tune_search *s, double *x,
		     bool (*allowed)(const double *x, size_t n, void *ud), void *ud);

/* Reports the outcome o of the outstanding candidate x (its n values exactly as returned)
 * with the fitness measured for it (NAN if none), records the trial, applies the outcome
 * (see "Outcomes" and each strategy) and checks for the end. 0, or -EINVAL (NULL, an
 * uninitialized state, no outstanding candidate, x not equal to it, o out of range); on
 * error nothing changes and the candidate stays outstanding. */
int tune_search_report(struct tune_search *s, const double *x, enum tune_outcome o, double fitness);

/* True once the search has ended (tune_search_next() returns -ENOENT): converged, budget
 * spent or exhausted; tune_search_stats() says which. False for NULL or uninitialized. */
bool tune_search_converged(const struct tune_search *s);

/* The incumbent's n values (the start until a BETTER), valid as long as *s is; its
 * fitness (NAN before a BETTER) into *fitness_out unless NULL. NULL if s is NULL or
 * uninitialized. */
const double *tune_search_incumbent(const struct tune_search *s, double *fitness_out);

/* Copies the first min(count, max) reported trials, in order, into out (which may be NULL
 * when max is 0) and returns count, the number of trials reported; 0 for NULL or
 * uninitialized s. */
size_t tune_search_trials(const struct tune_search *s, struct tune_trial *out, size_t max);

/* Copies the counters and the stop reason into *out. 0 or -EINVAL. */
int tune_search_stats(const struct tune_search *s, struct tune_stats *out);

/* "hill", "es"; "BETTER", "WORSE", "SAME", "REFUSED"; "running", "converged", "budget",
 * "exhausted". NULL if out of range. */
const char *tune_strategy_name(enum tune_strategy st);
const char *tune_outcome_name(enum tune_outcome o);
const char *tune_stop_name(enum tune_stop r);

/* The strategy named name (exact, as tune_strategy_name() spells it), or -EINVAL. */
int tune_strategy_from_name(const char *name);

#endif
