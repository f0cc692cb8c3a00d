/* canary.h - one canary run: per-tick measurements of a change in, a decision out.
 *
 * Why: the tuner and the runbook engine both try a change, watch it for a while, roll it back
 * at once when the policy's rollback_on thresholds are crossed, and otherwise ask the judge
 * (judge.h) whether it helped (DESIGN.md "Safety"). This is that loop's logic, shared. Pure
 * and time-driven: no I/O, no clock (the caller passes now_ms, any monotonic milliseconds),
 * no logging, no global state; the same ticks always give the same steps and the same JSON.
 *
 * Modes (how the baseline is obtained):
 *   CONCURRENT    a control measured at the same time (1 of N processes or cgroups changed,
 *                 the rest are the baseline). The caller applies the change to the canary
 *                 just before safe_canary_new() and passes both arms each tick.
 *   SWITCHBACK    no concurrent control: the change is switched on and off in blocks of
 *                 cfg.block_ms. The run starts with the change OFF (block 0 measures the
 *                 baseline before any exposure), and says SWITCH_ON / SWITCH_OFF when the
 *                 caller must apply / remove it: blocks alternate OFF, ON, OFF, ... with
 *                 block b = (now_ms - start_ms) / block_ms, ON when b is odd.
 *   BEFORE_AFTER  the window just before the change is the baseline: the caller hands those
 *                 samples to safe_canary_new(), applies the change, and passes the canary
 *                 arm each tick.
 * In SWITCHBACK and BEFORE_AFTER the one measurement of the target goes in `canary` and
 * `baseline` must be NULL; the run files it under the arm of the block it was taken in.
 *
 * Ticks. safe_canary_tick(run, now_ms, canary, baseline, &step): a sample given at now_ms
 * describes the interval since the previous tick, so it belongs to the state the change was
 * in before this call (a SWITCH_x returned by this call affects the next tick's sample).
 * Either sample may be NULL (nothing measured this tick: the clock still advances). The
 * first cfg.warmup_ticks ticks after each change of state are discarded (both arms): after
 * the start in CONCURRENT and BEFORE_AFTER (the change was applied just before), after every
 * SWITCH_ON and SWITCH_OFF in SWITCHBACK. A sample counts for its arm (step.n_canary,
 * step.n_baseline) when at least one of its fields is known.
 *
 * Each tick, in this order: the samples are recorded; the rollback_on rule below is checked
 * (when the canary arm received a sample): BREACH; the run is DONE when now_ms - start_ms >=
 * cfg.duration_ms, or early when an arm this tick wrote to holds SAFE_CANARY_MAX_SAMPLES
 * samples (step.truncated, and the reason says so); else in SWITCHBACK SWITCH_ON or
 * SWITCH_OFF when the block's parity changed; else CONTINUE. After BREACH or DONE the run is
 * over: later ticks record nothing and return the same step again. step.change_on says
 * whether the change is applied at that point: a SWITCHBACK run may end in an OFF block, and
 * then KEEP means applying the change again.
 *
 * The rollback_on rule (checked on every tick on which the canary arm received a sample; K =
 * cfg.smooth_ticks, B = cfg.breach_min_baseline; a threshold of 0 is not watched):
 *   smoothed canary c = the median of the canary arm's last K values of the metric (the last
 *                       K samples in which it was known, warm-up ticks excluded); no check
 *                       before the canary arm has K of them. With K = 3, one noisy tick
 *                       never breaches: two of the last three must be beyond the limit.
 *   baseline b        = the median of every baseline value of the metric recorded so far
 *                       (all of the before window; in SWITCHBACK the OFF blocks); for the
 *                       error rate, the pooled fraction (errors / events over every baseline
 *                       sample). No check before the baseline has B values (error rate: B
 *                       samples with events > 0).
 *   per tick error fraction = errors / events of that sample; samples with events = 0 have
 *                       none. rss_bytes 0 is unknown.
 *   breach, the first in this order wins:
 *     error rate    c >= b + error_rate_increase              (absolute fraction)
 *     p99 latency   c >= b + p99_latency_increase_ms
 *     throughput    c <= b * (1 - throughput_decrease)        (only when b > 0)
 *     fitness       c <= b * (1 - fitness_decrease)           (only when b > 0)
 *     rss           c >= b + rss_increase.bytes, or c >= b * (1 + rss_increase.fraction)
 *                   when relative (only when b > 0)
 *   step.breach_metric, breach_canary (c), breach_baseline (b) and breach_limit (the
 *   right-hand side) and the reason give the numbers, e.g.
 *   "p99 latency 210 ms (median of the last 3 canary ticks) >= limit 150 ms (baseline median
 *   100 ms + 50 ms)". Verdict ROLLBACK; the judge's statistics on the samples so far are in
 *   step.results for the record (a failure to judge them does not stop the BREACH).
 *
 * Verdict at DONE: the judge (judge.h) on each metric that has data in both arms, in this
 * order: error rate (safe_judge_errors on the summed errors and events), p99 latency (ms,
 * lower is better, max_worse = p99_latency_increase_ms), throughput (higher, max_worse =
 * throughput_decrease times the baseline median), cost (lower), fitness (higher, max_worse
 * = fitness_decrease times the baseline median); RSS is watched, not judged. The verdict is
 * safe_judge_combine() of those, except INCONCLUSIVE when an arm has fewer than
 * cfg.min_samples samples, or when a metric could not be judged (-ENOMEM). INCONCLUSIVE is
 * to be rolled back by the caller (DESIGN.md).
 *
 * Memory: at most SAFE_CANARY_MAX_SAMPLES values per arm per metric, grown as needed; a
 * before window longer than that is cut to its last SAFE_CANARY_MAX_SAMPLES samples.
 *
 * Errors: -EINVAL (NULL, a configuration out of range, time going backwards, a sample value
 * that is infinite or beyond +-1e300, errors > events, a baseline sample outside CONCURRENT,
 * before samples outside BEFORE_AFTER), -ENOMEM. A tick that fails changes nothing and may
 * be retried; once a tick's samples are accepted it always returns a decision (a metric the
 * judge cannot judge makes the verdict INCONCLUSIVE, never an error).
 */
#ifndef HS_SAFE_CANARY_H
#define HS_SAFE_CANARY_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "safety/judge.h"
#include "safety/policy.h"

#define SAFE_CANARY_MAX_SAMPLES 4096 /* per arm per metric */
#define SAFE_CANARY_SMOOTH_MAX	15   /* largest cfg.smooth_ticks */
#define SAFE_CANARY_METRICS	5 /* judged metrics: error rate, p99, throughput, cost, fitness */

enum safe_canary_mode {
	SAFE_CANARY_CONCURRENT,
	SAFE_CANARY_SWITCHBACK,
	SAFE_CANARY_BEFORE_AFTER,
	SAFE_CANARY_MODE_COUNT,
};

enum safe_canary_action {
	SAFE_CANARY_CONTINUE,
	SAFE_CANARY_SWITCH_ON,	/* switchback: apply the change now */
	SAFE_CANARY_SWITCH_OFF, /* switchback: remove the change now */
	SAFE_CANARY_BREACH,	/* a rollback_on threshold was crossed: roll back at once */
	SAFE_CANARY_DONE,	/* the run is over: act on step.verdict */
	SAFE_CANARY_ACTION_COUNT,
};

/* One tick's measurement of one arm. NAN (or 0 for the counters) for what is unknown. */
struct safe_canary_sample {
	double fitness;	    /* [0, 1], higher is better */
	double p99_ms;	    /* p99 latency, ms */
	double throughput;  /* events per second */
	double cost;	    /* lower is better */
	uint64_t errors;    /* failed events of the tick, at most events */
	uint64_t events;    /* events of the tick; 0: no error fraction */
	uint64_t rss_bytes; /* 0: unknown */
};

#define SAFE_CANARY_SAMPLE_UNKNOWN                                                                 \
	((struct safe_canary_sample){.fitness = NAN, .p99_ms = NAN, .throughput = NAN, .cost = NAN})

struct safe_canary_cfg {
	enum safe_canary_mode mode;
	int64_t duration_ms;	      /* > 0; SWITCHBACK: at least 2 * block_ms */
	int64_t block_ms;	      /* SWITCHBACK only, > 0 */
	size_t min_samples;	      /* per arm, 1..SAFE_CANARY_MAX_SAMPLES */
	unsigned warmup_ticks;	      /* discarded after each change of state; 1 */
	unsigned smooth_ticks;	      /* K of the rollback_on rule, 1..SAFE_CANARY_SMOOTH_MAX; 3 */
	size_t breach_min_baseline;   /* B of the rollback_on rule, >= 1; 5 */
	struct safe_judge_opts judge; /* min_samples and max_worse are set by the run */
	struct safe_rollback_on rollback_on; /* thresholds, each >= 0 */
};

/* What to do after a tick. Pointers stay valid until safe_canary_free(). */
struct safe_canary_step {
	enum safe_canary_action action;
	bool change_on;		   /* the change is applied once the caller did this step */
	bool truncated;		   /* DONE early: SAFE_CANARY_MAX_SAMPLES reached */
	enum safe_verdict verdict; /* DONE: the judge's; BREACH: ROLLBACK; else INCONCLUSIVE */
	int64_t elapsed_ms;	   /* now_ms - start_ms */
	uint64_t ticks;		   /* ticks so far, warm-up included */
	uint64_t discarded;	   /* warm-up ticks */
	uint64_t blocks;	   /* SWITCHBACK: blocks started, the current one included */
	uint64_t n_canary;	   /* samples per arm (the before window for BEFORE_AFTER) */
	uint64_t n_baseline;
	const char *breach_metric; /* BREACH: "error rate", "p99 latency", ...; else NULL */
	double breach_canary;	   /* BREACH: c, b and the limit of the rule; else NAN */
	double breach_baseline;
	double breach_limit;
	const struct safe_result *results; /* DONE and BREACH: per metric; else NULL */
	size_t n_results;
	char reason[SAFE_REASON_MAX]; /* BREACH, DONE: why, with the numbers; else "" */
};

struct safe_canary_run;

/* Fills cfg for mode: duration_ms = canary.duration_ms, block_ms = canary.switchback_block_ms,
 * min_samples = canary.min_samples, judge from safe_judge_opts_init(), rollback_on copied;
 * warmup_ticks 1, smooth_ticks 3, breach_min_baseline 5. p NULL: the defaults of
 * policies/default.yaml (5 min, 30 s blocks, 30 samples, 0.1%, 50 ms, 20%, 10%, 5%). */
void safe_canary_cfg_init(struct safe_canary_cfg *cfg, const struct safe_policy *p,
			  enum safe_canary_mode mode);

/* Starts a run at now_ms with a copy of cfg. before: BEFORE_AFTER's baseline window (oldest
 * first), else NULL and 0. 0 or -errno; *out is freed with safe_canary_free(). */
int safe_canary_new(const struct safe_canary_cfg *cfg, int64_t now_ms,
		    const struct safe_canary_sample *before, size_t n_before,
		    struct safe_canary_run **out);
void safe_canary_free(struct safe_canary_run *run);

/* One tick, as above: fills *step. 0 or -errno (then nothing changed). */
int safe_canary_tick(struct safe_canary_run *run, int64_t now_ms,
		     const struct safe_canary_sample *canary,
		     const struct safe_canary_sample *baseline, struct safe_canary_step *step);

/* The run as one JSON object for memory's stats_json, e.g.
 *   {"mode":"switchback","outcome":"done","duration_ms":300000,"elapsed_ms":300000,
 *    "block_ms":30000,"blocks":10,"ticks":300,"discarded":9,"min_samples":30,
 *    "samples":{"canary":145,"baseline":146},"truncated":false,"breach":null,
 *    "verdict":"KEEP","reason":"...","metrics":[<safe_result_json of each>]}
 * outcome "running" (verdict null, metrics []), "breach" (breach: {"metric","canary",
 * "baseline","limit","smooth_ticks"}) or "done"; block_ms and blocks only in SWITCHBACK.
 * Returns the length (without the NUL) or -ENAMETOOLONG (buf holds a terminated prefix). */
int safe_canary_json(const struct safe_canary_run *run, char *buf, size_t size);

/* "concurrent", "switchback", "before_after"; "continue", "switch_on", "switch_off",
 * "breach", "done". NULL if out of range. */
const char *safe_canary_mode_name(enum safe_canary_mode m);
const char *safe_canary_action_name(enum safe_canary_action a);

#endif
