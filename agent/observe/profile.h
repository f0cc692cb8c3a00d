/* profile.h - one result type for CPU, allocation and function-latency profiles, and its output.
 *
 * A profile is a list of symbolized stacks with weights (samples, or outstanding bytes and
 * allocations), or for function latency a log2 histogram; both carry the totals, what was
 * lost (drops) and whether the capture stopped early, so that nothing is silently partial.
 * Output: folded stacks ("root;...;leaf weight", the format of flame-graph tools), a top-N
 * function table (self and total), and obs_profile_top() rows that the control layer can turn
 * into its own table.
 *
 * Invariants: every string in a profile (function and module names) is interned in the
 * profile's own pool, so equal names are equal pointers and a profile outlives the
 * symbolizer that produced it. Frames are stored leaf first; folded output reverses them.
 */
#ifndef HS_OBS_PROFILE_H
#define HS_OBS_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define OBS_PROFILE_MAX_FRAMES 127
#define OBS_LAT_SLOTS	       64

struct obs_symbolizer;
struct obs_profile_pool;

enum obs_profile_kind {
	OBS_PROFILE_CPU,
	OBS_PROFILE_ALLOC,
	OBS_PROFILE_FUNC,
};

struct obs_frame {
	const char *func;   /* NULL when no symbol covers addr */
	const char *module; /* basename of the ELF file, "[kernel]", or NULL when unmapped */
	uint64_t addr;
	uint64_t offset; /* addr - start of func */
	bool kernel;
};

struct obs_profile_stack {
	uint32_t tgid;
	uint64_t count;		  /* CPU: samples; alloc: outstanding allocations */
	uint64_t bytes;		  /* alloc: outstanding bytes */
	struct obs_frame *frames; /* leaf first: frames[0] is where the sample or call landed */
	uint32_t nframes;
};

struct obs_profile {
	enum obs_profile_kind kind;
	uint64_t duration_ms;  /* how long the capture actually ran */
	uint64_t total;	       /* CPU: samples; alloc: outstanding allocations; func: calls */
	uint64_t total_bytes;  /* alloc: outstanding bytes */
	uint64_t hits;	       /* alloc, func: probe hits, what the overhead governor counts */
	uint64_t drops;	       /* samples, allocations or calls lost; drop_detail says where */
	char drop_detail[160]; /* "" when nothing was lost */
	bool stopped_early;    /* the overhead budget ended the capture: note says why */
	char note[200];

	struct obs_profile_stack *stacks;
	size_t nstacks, stacks_cap;

	/* Function latency: hist[i] counts calls of [2^i, 2^(i+1)) ns (hist[0]: 0 and 1 ns). */
	char func[128];
	uint64_t hist[OBS_LAT_SLOTS];
	uint64_t sum_ns;
	uint64_t p50_ns, p90_ns, p99_ns;

	struct obs_profile_pool *pool;
};

/* One function over a profile: self (the leaf frame) and total (anywhere in the stack). */
struct obs_profile_fn {
	const char *func;   /* "[unknown]" when there was no symbol */
	const char *module; /* may be NULL */
	bool kernel;
	uint64_t self, total;	    /* weights: samples (CPU) or bytes (alloc) */
	double self_pct, total_pct; /* of the profile's total weight for the tgid asked */
};

void obs_profile_init(struct obs_profile *p, enum obs_profile_kind kind);
/* Frees what the profile holds and leaves it initialized again (same kind). */
void obs_profile_reset(struct obs_profile *p);

/* Returns the profile's copy of s (equal strings give equal pointers), or NULL without memory. */
const char *obs_profile_intern(struct obs_profile *p, const char *s);
/*
 * Symbolizes n instruction addresses of process tgid (kernel ones when kernel) into frames
 * whose strings are interned in p. Return addresses (every frame but the first of a stack,
 * first_is_ip false for all) are looked up one byte back, inside the call instruction.
 * Returns 0 or -ENOMEM; addresses that cannot be resolved give frames with func NULL.
 */
int obs_profile_symbolize(struct obs_profile *p, struct obs_symbolizer *sym, uint32_t tgid,
			  const uint64_t *ips, unsigned n, bool kernel, bool first_is_ip,
			  struct obs_frame *out);
/* Appends a stack (frames copied, strings must be p's). Returns 0 or -ENOMEM. */
int obs_profile_add(struct obs_profile *p, uint32_t tgid, uint64_t count, uint64_t bytes,
		    const struct obs_frame *frames, unsigned nframes);
/* Sorts stacks by weight (bytes, else count), heaviest first; computes latency percentiles. */
void obs_profile_finish(struct obs_profile *p);

/*
 * Functions of the profile for tgid (0: all), heaviest self weight first (alloc: total).
 * *out is malloc'ed (free it); returns the number of rows or -ENOMEM.
 */
int obs_profile_top(const struct obs_profile *p, uint32_t tgid, struct obs_profile_fn **out);
/* The profile's total weight for tgid (0: all). */
uint64_t obs_profile_weight(const struct obs_profile *p, uint32_t tgid);

/* "func+0x1f (module)", "func" when brief, "0x7f12... (module)" without symbol. */
int obs_frame_format(const struct obs_frame *f, bool brief, char *buf, size_t len);

enum {
	OBS_FOLDED_TGID = 1 << 0, /* first frame "pid-N", one flame per process */
};
/* Folded stacks, root first, one line a stack: "main;work;hot_spin_function 97". */
int obs_profile_write_folded(const struct obs_profile *p, FILE *f, unsigned flags);
/* Human-readable summary: totals, drops, the top_n functions (CPU), stacks (alloc), histogram. */
int obs_profile_write_table(const struct obs_profile *p, FILE *f, unsigned top_n);

/*
 * The overhead governor of the probe-based profiles: each probe hit costs the target about
 * cost_ns of CPU, and a capture may cost it at most pct percent of one CPU, that is
 * pct / 100 * 1e9 / cost_ns hits a second (2% at 4.5 us: 4444 hits/s).
 */
#define OBS_PROBE_BUDGET_PCT 2.0
#define OBS_PROBE_COST_NS    4500

struct obs_probe_budget {
	double pct;
	unsigned cost_ns;
	uint64_t max_hits_per_s;
};

/* pct 0 and cost_ns 0 take the defaults; max_hits_per_s, when not 0, overrides both. */
void obs_probe_budget_init(struct obs_probe_budget *b, double pct, unsigned cost_ns,
			   uint64_t max_hits_per_s);
/* True when hits over elapsed_ms (judged over one second at least) exceed it; says why. */
bool obs_probe_budget_exceeded(const struct obs_probe_budget *b, uint64_t hits, uint64_t elapsed_ms,
			       char *why, size_t why_len);

/* Latency at quantile q (0..1) of a log2 histogram, interpolated inside its bucket, in ns. */
uint64_t obs_lat_quantile(const uint64_t *hist, unsigned slots, double q);

#endif
