/* history.c - fitness across ticks: each target's baselines, its last score, and the buckets
 * that downsample the scores into the memory database (see fitness.h, "History").
 *
 * Why: the formulas (fitness.c) are pure; this file owns what must outlive a tick. Targets are
 * found by name, not by index, so that a reload that reorders or renames targets keeps the
 * baselines of those that stayed, and a target that leaves has its open bucket written.
 *
 * Invariants: at most one slot per name; a slot's bucket covers consecutive ticks with one
 * basis, start_at <= end_at, and is written exactly once (when it closes, or at fit_close());
 * at most FIT_SLOTS slots, the least recently seen one is reused when all are taken.
 */
#include <math.h>

#include "fitness/fitness.h"
#include "lib/util.h"
#include "memory/memory.h"
#include "safety/policy.h"

/* The host, the policy's targets, the rest, and as many again for names that left. */
#define FIT_SLOTS (2 * (HS_NTARGETS + 1))

struct fit_bucket {
	bool open;
	int64_t start_at, end_at;
	int64_t samples, scored;
	double first, min, max, sum;
	double part_sum[FIT_PART_COUNT];
	int64_t part_n[FIT_PART_COUNT];
	enum fit_basis basis;
};

struct fit_slot {
	bool used;
	char name[FIT_NAME_MAX + 1];
	uint64_t seen; /* the fit tick that last scored it */
	struct fit_baseline base[FIT_SIG_COUNT];
	struct fit_bucket bucket;
	struct fit_score last;
};

/* The rows that closed in one tick, with copies of their names (a slot may be reused in the
 * same tick). Each slot closes at most twice a tick: evicted, and its own bucket. */
struct fit_rows {
	struct mem_fitness_row row[2 * FIT_SLOTS];
	char name[2 * FIT_SLOTS][FIT_NAME_MAX + 1];
	size_t n;
};

struct fit {
	struct fit_slot slot[FIT_SLOTS];
	uint64_t ticks;
	int64_t last_prune; /* wall ms; 0: not yet */
	bool prune_more;    /* the last prune hit its batch limit */
};

int fit_open(struct fit **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

static double avg(double sum, int64_t n)
{
	return n ? sum / (double)n : NAN;
}

static void bucket_close(struct fit_slot *s, struct fit_rows *rows)
{
	struct fit_bucket *b = &s->bucket;
	struct mem_fitness_row *r;

	if (!b->open)
		return;
	b->open = false;
	if (rows->n == ARRAY_SIZE(rows->row))
		return; /* cannot happen: see struct fit_rows */
	hs_strlcpy(rows->name[rows->n], s->name, sizeof(rows->name[0]));
	r = &rows->row[rows->n];
	*r = (struct mem_fitness_row){
	    .target = rows->name[rows->n],
	    .start_at = b->start_at,
	    .end_at = b->end_at,
	    .samples = b->samples,
	    .scored = b->scored,
	    .score_min = b->scored ? b->min : NAN,
	    .score_avg = avg(b->sum, b->scored),
	    .score_max = b->scored ? b->max : NAN,
	    .latency = avg(b->part_sum[FIT_PART_LATENCY], b->part_n[FIT_PART_LATENCY]),
	    .errors = avg(b->part_sum[FIT_PART_ERRORS], b->part_n[FIT_PART_ERRORS]),
	    .throughput = avg(b->part_sum[FIT_PART_THROUGHPUT], b->part_n[FIT_PART_THROUGHPUT]),
	    .cost = avg(b->part_sum[FIT_PART_COST], b->part_n[FIT_PART_COST]),
	    .basis = fit_basis_name(b->basis),
	};
	rows->n++;
}

/* Does a score at now belong to the open bucket? */
static bool bucket_fits(const struct fit_bucket *b, const struct fit_score *sc, int64_t now)
{
	if (!b->open || now < b->end_at || now - b->start_at >= FIT_BUCKET_MS)
		return false;
	if (sc->basis != b->basis)
		return false;
	return isnan(sc->score) || isnan(b->first) ||
	       fabs(sc->score - b->first) <= FIT_BUCKET_DELTA;
}

static void bucket_add(struct fit_slot *s, const struct fit_score *sc, int64_t now,
		       struct fit_rows *rows)
{
	struct fit_bucket *b = &s->bucket;

	if (!bucket_fits(b, sc, now)) {
		bucket_close(s, rows);
		*b = (struct fit_bucket){
		    .open = true, .start_at = now, .first = NAN, .basis = sc->basis};
	}
	b->end_at = now;
	b->samples++;
	if (!isnan(sc->score)) {
		if (!b->scored++) {
			b->first = b->min = b->max = sc->score;
		} else {
			b->min = fmin(b->min, sc->score);
			b->max = fmax(b->max, sc->score);
		}
		b->sum += sc->score;
	}
	for (int p = 0; p < FIT_PART_COUNT; p++) {
		if (isnan(sc->part[p].score))
			continue;
		b->part_sum[p] += sc->part[p].score;
		b->part_n[p]++;
	}
}

static struct fit_slot *slot_find(struct fit *f, const char *name)
{
	for (size_t i = 0; i < FIT_SLOTS; i++)
		if (f->slot[i].used && streq(f->slot[i].name, name))
			return &f->slot[i];
	return NULL;
}

/* The slot of name, a new one if needed: a free one, else the least recently seen (its open
 * bucket is written first). */
static struct fit_slot *slot_get(struct fit *f, const char *name, struct fit_rows *rows)
{
	struct fit_slot *s = slot_find(f, name), *victim = NULL;

	if (s)
		return s;
	for (size_t i = 0; i < FIT_SLOTS && !victim; i++)
		if (!f->slot[i].used)
			victim = &f->slot[i];
	for (size_t i = 0; i < FIT_SLOTS; i++) {
		struct fit_slot *c = &f->slot[i];

		if (c->used && c->seen != f->ticks && (!victim || c->seen < victim->seen))
			victim = c;
	}
	if (!victim)
		return NULL; /* more names in one tick than slots: cannot happen */
	bucket_close(victim, rows);
	memset(victim, 0, sizeof(*victim));
	victim->used = true;
	hs_strlcpy(victim->name, name, sizeof(victim->name));
	return victim;
}

static void score_one(struct fit *f, const struct obs_snapshot *s, const struct obs_target_snap *t,
		      const struct safe_policy *p, int64_t now, struct fit_rows *rows)
{
	const struct safe_target *tg = p && t->index > 0 ? safe_policy_target(p, t->name) : NULL;
	struct fit_slot *slot;
	double v[FIT_SIG_COUNT];

	if (!t->name || !*t->name)
		return;
	slot = slot_get(f, t->name, rows);
	if (!slot)
		return;
	slot->seen = f->ticks;
	fit_signal_values(t, v);
	/* A collector that did not run this tick has no data, which is not a value of 0. */
	if (!s->syscalls_valid)
		v[FIT_SIG_SYSCALL_P99] = v[FIT_SIG_ERRORS] = v[FIT_SIG_RATE] = NAN;
	if (!s->runq_valid)
		v[FIT_SIG_RUNQ_P99] = NAN;
	fit_evaluate(v, t->index > 0 && t->nprocs == 0, tg ? &tg->slo : NULL,
		     p ? &p->fitness : NULL, slot->base, &slot->last);
	fit_learn(slot->base, &slot->last, s->elapsed_ms);
	bucket_add(slot, &slot->last, now, rows);
}

static int record(struct mem *m, struct fit_rows *rows)
{
	int r = 0;

	if (m && rows->n)
		r = mem_fitness_record(m, rows->row, rows->n);
	rows->n = 0;
	return r;
}

int fit_tick(struct fit *f, const struct obs_snapshot *s, const struct safe_policy *p,
	     struct mem *m, int64_t now)
{
	_cleanup_free_ struct fit_rows *rows = calloc(1, sizeof(*rows));
	int r, n;

	if (!f || !s)
		return -EINVAL;
	if (!rows)
		return -ENOMEM;
	f->ticks++;
	score_one(f, s, &s->host, p, now, rows);
	for (int i = 1; i < s->ntargets && i < HS_NTARGETS; i++)
		score_one(f, s, &s->t[i], p, now, rows);
	score_one(f, s, &s->t[0], p, now, rows);
	/* Targets that left (a reload): their last bucket is written now. */
	for (size_t i = 0; i < FIT_SLOTS; i++)
		if (f->slot[i].used && f->slot[i].seen != f->ticks)
			bucket_close(&f->slot[i], rows);
	r = record(m, rows);
	if (m && (f->prune_more || !f->last_prune || now - f->last_prune >= FIT_PRUNE_PERIOD_MS)) {
		n = mem_fitness_prune(m, now - FIT_RETENTION_MS, FIT_PRUNE_BATCH);
		f->last_prune = now;
		f->prune_more = n == FIT_PRUNE_BATCH;
		if (n < 0 && !r)
			r = n;
	}
	return r;
}

const struct fit_score *fit_lookup(const struct fit *f, const char *name)
{
	const struct fit_slot *s = f && name ? slot_find((struct fit *)f, name) : NULL;

	return s && s->seen ? &s->last : NULL;
}

void fit_close(struct fit *f, struct mem *m)
{
	_cleanup_free_ struct fit_rows *rows = NULL;

	if (!f)
		return;
	rows = calloc(1, sizeof(*rows));
	for (size_t i = 0; rows && i < FIT_SLOTS; i++)
		bucket_close(&f->slot[i], rows);
	if (rows)
		record(m, rows);
	free(f);
}
