/* signals.h - the table of signals the observation layer provides per target.
 *
 * Runbooks name signals in their detect, clear and verify conditions; the configuration is
 * checked against this table so that a runbook cannot wait for a signal nobody measures.
 * Each entry says its unit (which also decides how a threshold is written), which
 * aggregations over a window make sense for it, which selectors narrow it (an errno, a
 * syscall) and why it is watched. The collectors in bpf/ and agent/observe/ are built to
 * provide exactly these names; adding a signal is adding a row here and a collector there.
 */
#ifndef HS_OBS_SIGNALS_H
#define HS_OBS_SIGNALS_H

#include <stdbool.h>

enum obs_unit {
	OBS_UNIT_EVENTS, /* a count of events; thresholds are plain numbers */
	OBS_UNIT_TIME,	 /* milliseconds; thresholds are durations ("50ms", "250us") */
	OBS_UNIT_BYTES,	 /* bytes; thresholds are byte sizes ("512MiB") */
	OBS_UNIT_RATIO,	 /* a fraction; thresholds are percentages ("80%") */
};

/* Aggregation of a signal over a condition's window. rate is per second, slope is the
 * least-squares trend per second, percentiles come from log2 histograms. */
enum obs_agg {
	OBS_AGG_RATE,
	OBS_AGG_DELTA,
	OBS_AGG_P50,
	OBS_AGG_P90,
	OBS_AGG_P99,
	OBS_AGG_MAX,
	OBS_AGG_AVG,
	OBS_AGG_SLOPE,
	OBS_AGG_COUNT_,
};

#define OBS_AGG_BIT(a)	 (1u << (a))
#define OBS_AGGS_COUNTER (OBS_AGG_BIT(OBS_AGG_RATE) | OBS_AGG_BIT(OBS_AGG_DELTA))
#define OBS_AGGS_HISTOGRAM                                                                         \
	(OBS_AGG_BIT(OBS_AGG_P50) | OBS_AGG_BIT(OBS_AGG_P90) | OBS_AGG_BIT(OBS_AGG_P99) |          \
	 OBS_AGG_BIT(OBS_AGG_MAX) | OBS_AGG_BIT(OBS_AGG_AVG))
#define OBS_AGGS_GAUGE                                                                             \
	(OBS_AGG_BIT(OBS_AGG_MAX) | OBS_AGG_BIT(OBS_AGG_AVG) | OBS_AGG_BIT(OBS_AGG_DELTA) |        \
	 OBS_AGG_BIT(OBS_AGG_SLOPE))

/* Selectors that narrow a signal. */
#define OBS_SEL_ERRNO	(1u << 0) /* syscall failures with these errno values */
#define OBS_SEL_SYSCALL (1u << 1) /* this syscall only */

struct obs_signal_desc {
	const char *name;
	enum obs_unit unit;
	const char *unit_name; /* "events", "ms", "bytes", "ratio" */
	unsigned aggs;	       /* OBS_AGG_BIT()s that are allowed */
	unsigned selectors;    /* OBS_SEL_* that are allowed */
	const char *source;    /* where it comes from */
	const char *why;       /* what failure it reveals */
};

/* NULL-terminated names of enum obs_agg, in order. */
extern const char *const obs_agg_names[];

/* The descriptor of a signal, or NULL. */
const struct obs_signal_desc *obs_signal_lookup(const char *name);
/* The whole table, for documentation and messages. */
const struct obs_signal_desc *obs_signals(unsigned *n);

#endif
