/* conditions.h - runbook conditions evaluated over a target's recent ticks.
 *
 * A heal_series keeps, per target, a ring of the last HEAL_SERIES_TICKS per-tick samples of
 * what the signals of observe/signals.h need: counts of counters (and the tick's top errnos
 * for the errno selector), latency histograms, gauges. heal_condition_eval() aggregates one
 * signal over a condition's window and compares it with the threshold, in the signal's unit
 * as runbook.c stores it (ms, bytes, fraction, events; per second for rate and slope).
 * heal_detect_step() runs a runbook's detect block tick by tick: debounce (detect.for) before
 * it fires, hysteresis (detect.clear) before it clears.
 *
 * Invariants: samples are pushed in increasing time; a sample counts what happened in
 * (previous sample, at_ms]. A window (now - window, now] has enough data only when a sample
 * at or before its start exists and one inside it, so a condition never holds on a partly
 * covered window (ticks missing inside a window count as nothing happened), with one
 * exception: a count (rate, delta) compared with > or >= that already passes over the part
 * covered holds, since more coverage can only add to it (a crash loop is reported a minute
 * earlier after a start). The explanation then says how much was covered.
 */
#ifndef HS_HEAL_CONDITIONS_H
#define HS_HEAL_CONDITIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "observe/observe.h"
#include "remediate/runbook.h"

/* A 10 minute window at the default 1 s tick (600 ticks and the one at its start); a longer
 * window never has enough data. */
#define HEAL_SERIES_TICKS 601
#define HEAL_EXPLAIN_MAX  256
#define HEAL_WHY_MAX	  (HEAL_EXPLAIN_MAX * HEAL_MAX_CONDITIONS)

/* One tick of one target: what the extractors of conditions.c read. */
struct heal_sample {
	uint64_t at_ms;
	uint64_t sc_count, sc_errors;
	struct obs_errno_count top_errnos[OBS_TOP_ERRNOS]; /* only the tick's top errnos */
	int n_errnos;
	struct obs_hist sc_lat, rq_lat; /* this tick's histograms, not the windows */
	uint64_t rss_bytes;
	uint64_t faults, execs, exits, fatal;
	uint64_t listen_overflows;
	double cpu_usage; /* NAN when unknown */
};

struct heal_series {
	struct heal_sample ring[HEAL_SERIES_TICKS];
	unsigned next, filled;
};

struct heal_eval {
	double value; /* the aggregate, in the unit of the threshold */
	bool holds;   /* enough_data and value op threshold */
	bool enough_data;
	char explain[HEAL_EXPLAIN_MAX];
};

enum heal_detect_result {
	HEAL_DETECT_UNCHANGED,
	HEAL_DETECT_FIRED,
	HEAL_DETECT_CLEARED,
};

struct heal_detect_state {
	bool fired;
	bool holding;	   /* every when condition held at the last step */
	uint64_t since_ms; /* start of the current run of steps where they held */
	uint64_t fired_ms;
	char why[HEAL_WHY_MAX]; /* the conditions of the last step, "; "-separated */
};

void heal_series_reset(struct heal_series *s);
/* Appends a tick of snap taken at at_ms; -EINVAL unless at_ms is after the last sample. */
int heal_series_push(struct heal_series *s, const struct obs_target_snap *snap, uint64_t at_ms);

/* Evaluates c over the window ending at now_ms into out (explain always set). Returns 0 (also
 * when there is not enough data: out->holds is then false); -EOPNOTSUPP for a signal or
 * selector that is not extracted yet, -EINVAL for an aggregation the signal does not take. */
int heal_condition_eval(const struct heal_condition *c, const struct heal_series *s,
			uint64_t now_ms, struct heal_eval *out);

/* One step of d at now_ms. Returns enum heal_detect_result, or -errno of a condition (st->why
 * then says which). st starts zeroed. */
int heal_detect_step(const struct heal_detect *d, const struct heal_series *s, uint64_t now_ms,
		     struct heal_detect_state *st);

#endif
