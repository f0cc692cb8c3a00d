/* profile.c - the shared profile result: interned strings, stacks, top functions, output.
 *
 * Strings are interned in a pool owned by the profile (an open-addressing set over chunks of
 * memory), so aggregation by function compares pointers and the profile needs nothing from
 * the symbolizer once built. Weights are samples for CPU profiles and outstanding bytes for
 * allocation profiles; the total of a function counts it once per stack, however deep it
 * recurses.
 */
#include <inttypes.h>
#include <math.h>

#include "lib/util.h"
#include "observe/profile.h"
#include "observe/symbolize.h"

#define POOL_CHUNK 65536

struct pool_chunk {
	struct pool_chunk *next;
	size_t used, cap;
	char data[];
};

struct obs_profile_pool {
	const char **set;
	size_t cap, n;
	struct pool_chunk *chunks;
};

static const char unknown_func[] = "[unknown]";

void obs_profile_init(struct obs_profile *p, enum obs_profile_kind kind)
{
	memset(p, 0, sizeof(*p));
	p->kind = kind;
}

static void pool_free(struct obs_profile_pool *pool)
{
	if (!pool)
		return;
	while (pool->chunks) {
		struct pool_chunk *c = pool->chunks;

		pool->chunks = c->next;
		free(c);
	}
	free(pool->set);
	free(pool);
}

void obs_profile_reset(struct obs_profile *p)
{
	enum obs_profile_kind kind = p->kind;

	for (size_t i = 0; i < p->nstacks; i++)
		free(p->stacks[i].frames);
	free(p->stacks);
	pool_free(p->pool);
	obs_profile_init(p, kind);
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static int pool_grow(struct obs_profile_pool *pool)
{
	size_t ncap = pool->cap ? pool->cap * 2 : 1024;
	const char **nset = calloc(ncap, sizeof(*nset));

	if (!nset)
		return -ENOMEM;
	for (size_t i = 0; i < pool->cap; i++) {
		size_t j;

		if (!pool->set[i])
			continue;
		for (j = hash_str(pool->set[i]) & (ncap - 1); nset[j]; j = (j + 1) & (ncap - 1))
			;
		nset[j] = pool->set[i];
	}
	free(pool->set);
	pool->set = nset;
	pool->cap = ncap;
	return 0;
}

static char *pool_alloc(struct obs_profile_pool *pool, size_t len)
{
	struct pool_chunk *c = pool->chunks;

	if (!c || c->cap - c->used < len) {
		size_t cap = len > POOL_CHUNK ? len : POOL_CHUNK;

		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->used = 0;
		c->cap = cap;
		c->next = pool->chunks;
		pool->chunks = c;
	}
	c->used += len;
	return c->data + c->used - len;
}

const char *obs_profile_intern(struct obs_profile *p, const char *s)
{
	struct obs_profile_pool *pool;
	size_t i, len;
	char *copy;

	if (!s)
		return NULL;
	if (!p->pool) {
		p->pool = calloc(1, sizeof(*p->pool));
		if (!p->pool)
			return NULL;
	}
	pool = p->pool;
	if ((pool->n + 1) * 2 > pool->cap && pool_grow(pool))
		return NULL;
	for (i = hash_str(s) & (pool->cap - 1); pool->set[i]; i = (i + 1) & (pool->cap - 1))
		if (streq(pool->set[i], s))
			return pool->set[i];
	len = strlen(s) + 1;
	copy = pool_alloc(pool, len);
	if (!copy)
		return NULL;
	memcpy(copy, s, len);
	pool->set[i] = copy;
	pool->n++;
	return copy;
}

int obs_profile_symbolize(struct obs_profile *p, struct obs_symbolizer *sym, uint32_t tgid,
			  const uint64_t *ips, unsigned n, bool kernel, bool first_is_ip,
			  struct obs_frame *out)
{
	for (unsigned i = 0; i < n; i++) {
		/* A return address follows the call: look inside the call instead. */
		uint64_t back = (i > 0 || !first_is_ip) && ips[i] ? 1 : 0;
		struct obs_sym s;
		int err;

		out[i] = (struct obs_frame){.addr = ips[i], .kernel = kernel};
		err = kernel ? obs_sym_kernel(sym, ips[i] - back, &s)
			     : obs_sym_user(sym, (int)tgid, ips[i] - back, &s);
		if (err)
			continue;
		if (s.func) {
			out[i].func = obs_profile_intern(p, s.func);
			if (!out[i].func)
				return -ENOMEM;
			out[i].offset = s.offset + back;
		}
		if (s.module) {
			out[i].module = obs_profile_intern(p, s.module);
			if (!out[i].module)
				return -ENOMEM;
		}
	}
	return 0;
}

int obs_profile_add(struct obs_profile *p, uint32_t tgid, uint64_t count, uint64_t bytes,
		    const struct obs_frame *frames, unsigned nframes)
{
	struct obs_profile_stack *st;

	if (p->nstacks == p->stacks_cap) {
		size_t ncap = p->stacks_cap ? p->stacks_cap * 2 : 256;
		struct obs_profile_stack *v = realloc(p->stacks, ncap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		p->stacks = v;
		p->stacks_cap = ncap;
	}
	st = &p->stacks[p->nstacks];
	*st = (struct obs_profile_stack){.tgid = tgid, .count = count, .bytes = bytes};
	if (nframes) {
		st->frames = malloc(nframes * sizeof(*frames));
		if (!st->frames)
			return -ENOMEM;
		memcpy(st->frames, frames, nframes * sizeof(*frames));
		st->nframes = nframes;
	}
	p->nstacks++;
	return 0;
}

static uint64_t stack_weight(const struct obs_profile *p, const struct obs_profile_stack *s)
{
	return p->kind == OBS_PROFILE_ALLOC ? s->bytes : s->count;
}

static int stack_cmp(const void *a, const void *b, void *profile)
{
	uint64_t x = stack_weight(profile, a), y = stack_weight(profile, b);

	return x > y ? -1 : x < y;
}

uint64_t obs_lat_quantile(const uint64_t *hist, unsigned slots, double q)
{
	uint64_t total = 0, cum = 0;
	double target;

	for (unsigned i = 0; i < slots; i++)
		total += hist[i];
	if (!total)
		return 0;
	target = q * (double)total;
	for (unsigned i = 0; i < slots; i++) {
		double lo, hi, frac;

		if (!hist[i] || (double)(cum + hist[i]) < target) {
			cum += hist[i];
			continue;
		}
		lo = i ? ldexp(1.0, (int)i) : 0.0;
		hi = ldexp(1.0, (int)i + 1);
		frac = (target - (double)cum) / (double)hist[i];
		return (uint64_t)(lo + frac * (hi - lo));
	}
	return (uint64_t)ldexp(1.0, (int)slots);
}

void obs_profile_finish(struct obs_profile *p)
{
	if (p->nstacks > 1)
		qsort_r(p->stacks, p->nstacks, sizeof(*p->stacks), stack_cmp, (void *)p);
	if (p->kind == OBS_PROFILE_FUNC) {
		p->p50_ns = obs_lat_quantile(p->hist, OBS_LAT_SLOTS, 0.50);
		p->p90_ns = obs_lat_quantile(p->hist, OBS_LAT_SLOTS, 0.90);
		p->p99_ns = obs_lat_quantile(p->hist, OBS_LAT_SLOTS, 0.99);
	}
}

uint64_t obs_profile_weight(const struct obs_profile *p, uint32_t tgid)
{
	uint64_t w = 0;

	for (size_t i = 0; i < p->nstacks; i++)
		if (!tgid || p->stacks[i].tgid == tgid)
			w += stack_weight(p, &p->stacks[i]);
	return w;
}

static const char *frame_func(const struct obs_frame *f)
{
	return f->func ? f->func : unknown_func;
}

struct fn_table {
	struct obs_profile_fn *rows;
	size_t n, cap;
	int32_t *index; /* open addressing over rows, -1 empty */
	size_t icap;
};

static size_t fn_hash(const struct obs_frame *f, size_t mask)
{
	uintptr_t h = (uintptr_t)frame_func(f) * 31 + (uintptr_t)f->module * 7 + f->kernel;

	return (size_t)((h ^ (h >> 17)) * 0x9E3779B97F4A7C15ull) & mask;
}

static struct obs_profile_fn *fn_get(struct fn_table *t, const struct obs_frame *f)
{
	size_t i;

	if ((t->n + 1) * 2 > t->icap) {
		size_t ncap = t->icap ? t->icap * 2 : 256;
		int32_t *idx = malloc(ncap * sizeof(*idx));

		if (!idx)
			return NULL;
		memset(idx, 0xff, ncap * sizeof(*idx));
		for (size_t r = 0; r < t->n; r++) {
			struct obs_frame k = {.func = t->rows[r].func,
					      .module = t->rows[r].module,
					      .kernel = t->rows[r].kernel};

			for (i = fn_hash(&k, ncap - 1); idx[i] >= 0; i = (i + 1) & (ncap - 1))
				;
			idx[i] = (int32_t)r;
		}
		free(t->index);
		t->index = idx;
		t->icap = ncap;
	}
	for (i = fn_hash(f, t->icap - 1); t->index[i] >= 0; i = (i + 1) & (t->icap - 1)) {
		struct obs_profile_fn *r = &t->rows[t->index[i]];

		if (r->func == frame_func(f) && r->module == f->module && r->kernel == f->kernel)
			return r;
	}
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 128;
		struct obs_profile_fn *v = realloc(t->rows, ncap * sizeof(*v));

		if (!v)
			return NULL;
		t->rows = v;
		t->cap = ncap;
	}
	t->rows[t->n] = (struct obs_profile_fn){
	    .func = frame_func(f), .module = f->module, .kernel = f->kernel};
	t->index[i] = (int32_t)t->n;
	return &t->rows[t->n++];
}

static int fn_cmp_self(const void *a, const void *b)
{
	const struct obs_profile_fn *x = a, *y = b;

	if (x->self != y->self)
		return x->self > y->self ? -1 : 1;
	return x->total > y->total ? -1 : x->total < y->total;
}

int obs_profile_top(const struct obs_profile *p, uint32_t tgid, struct obs_profile_fn **out)
{
	struct fn_table t = {0};
	uint64_t total = obs_profile_weight(p, tgid);

	*out = NULL;
	for (size_t i = 0; i < p->nstacks; i++) {
		const struct obs_profile_stack *s = &p->stacks[i];
		uint64_t w = stack_weight(p, s);

		if ((tgid && s->tgid != tgid) || !s->nframes)
			continue;
		for (uint32_t j = 0; j < s->nframes; j++) {
			struct obs_profile_fn *r;
			bool seen = false;

			/* Count a function once per stack for its total (recursion). */
			for (uint32_t k = 0; k < j && !seen; k++)
				seen = frame_func(&s->frames[k]) == frame_func(&s->frames[j]) &&
				       s->frames[k].module == s->frames[j].module &&
				       s->frames[k].kernel == s->frames[j].kernel;
			if (seen)
				continue;
			r = fn_get(&t, &s->frames[j]);
			if (!r) {
				free(t.rows);
				free(t.index);
				return -ENOMEM;
			}
			r->total += w;
			if (j == 0)
				r->self += w;
		}
	}
	free(t.index);
	for (size_t i = 0; i < t.n; i++) {
		t.rows[i].self_pct = total ? 100.0 * (double)t.rows[i].self / (double)total : 0;
		t.rows[i].total_pct = total ? 100.0 * (double)t.rows[i].total / (double)total : 0;
	}
	if (t.n)
		qsort(t.rows, t.n, sizeof(*t.rows), fn_cmp_self);
	*out = t.rows;
	return (int)t.n;
}

int obs_frame_format(const struct obs_frame *f, bool brief, char *buf, size_t len)
{
	int n;

	if (f->func && brief)
		n = snprintf(buf, len, "%s", f->func);
	else if (f->func)
		n = snprintf(buf, len, "%s+0x%" PRIx64 " (%s)", f->func, f->offset,
			     f->module ? f->module : "?");
	else if (f->module)
		n = snprintf(buf, len, "0x%" PRIx64 " (%s)", f->addr, f->module);
	else
		n = snprintf(buf, len, "%s", unknown_func);
	return n < 0 ? -EINVAL : (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Flame-graph tools split on ';' and on the last space: keep both out of frame names. */
static void put_folded_name(FILE *f, const char *s)
{
	for (; *s; s++)
		fputc(*s == ';' || *s == ' ' ? '_' : *s, f);
}

int obs_profile_write_folded(const struct obs_profile *p, FILE *f, unsigned flags)
{
	for (size_t i = 0; i < p->nstacks; i++) {
		const struct obs_profile_stack *s = &p->stacks[i];
		bool first = true;

		if (!s->nframes || !stack_weight(p, s))
			continue;
		if (flags & OBS_FOLDED_TGID) {
			fprintf(f, "pid-%" PRIu32, s->tgid);
			first = false;
		}
		for (uint32_t j = s->nframes; j-- > 0;) {
			if (!first)
				fputc(';', f);
			first = false;
			put_folded_name(f, frame_func(&s->frames[j]));
			if (s->frames[j].kernel)
				fputs("_[k]", f);
		}
		fprintf(f, " %" PRIu64 "\n", stack_weight(p, s));
	}
	return ferror(f) ? -EIO : 0;
}

static void write_functions(const struct obs_profile *p, FILE *f, unsigned top_n)
{
	struct obs_profile_fn *rows;
	int n = obs_profile_top(p, 0, &rows);

	if (n < 0) {
		fprintf(f, "  (out of memory)\n");
		return;
	}
	fprintf(f, "  %7s %7s  %s\n", "SELF%", "TOTAL%", "FUNCTION");
	for (int i = 0; i < n && (unsigned)i < top_n; i++)
		fprintf(f, "  %6.1f%% %6.1f%%  %s%s (%s)\n", rows[i].self_pct, rows[i].total_pct,
			rows[i].func, rows[i].kernel ? " [k]" : "",
			rows[i].module ? rows[i].module : "?");
	free(rows);
}

static void write_latency(const struct obs_profile *p, FILE *f)
{
	uint64_t max = 0;
	int lo = -1, hi = -1;

	fprintf(f, "latency of '%s': %" PRIu64 " calls, p50 %.3f ms, p90 %.3f ms, p99 %.3f ms\n",
		p->func, p->total, p->p50_ns / 1e6, p->p90_ns / 1e6, p->p99_ns / 1e6);
	for (int i = 0; i < OBS_LAT_SLOTS; i++) {
		if (!p->hist[i])
			continue;
		if (lo < 0)
			lo = i;
		hi = i;
		if (p->hist[i] > max)
			max = p->hist[i];
	}
	for (int i = lo; i >= 0 && i <= hi; i++) {
		char bar[41];
		int w = max ? (int)(40 * p->hist[i] / max) : 0;

		memset(bar, '*', (size_t)w);
		bar[w] = '\0';
		fprintf(f, "  %12.0f .. %-12.0f ns %10" PRIu64 " |%-40s|\n",
			i ? ldexp(1.0, i) : 0.0, ldexp(1.0, i + 1) - 1, p->hist[i], bar);
	}
}

int obs_profile_write_table(const struct obs_profile *p, FILE *f, unsigned top_n)
{
	double secs = p->duration_ms / 1000.0;

	switch (p->kind) {
	case OBS_PROFILE_CPU:
		fprintf(f, "cpu profile: %" PRIu64 " samples over %.1f s, %zu stacks\n", p->total,
			secs, p->nstacks);
		break;
	case OBS_PROFILE_ALLOC:
		fprintf(f,
			"allocation profile: %" PRIu64 " bytes outstanding in %" PRIu64
			" allocations over %.1f s, %" PRIu64 " probe hits\n",
			p->total_bytes, p->total, secs, p->hits);
		break;
	case OBS_PROFILE_FUNC:
		write_latency(p, f);
		break;
	}
	if (p->drops)
		fprintf(f, "dropped: %" PRIu64 " (%s)\n", p->drops, p->drop_detail);
	if (p->note[0])
		fprintf(f, "%s: %s\n", p->stopped_early ? "stopped early" : "note", p->note);
	if (p->kind == OBS_PROFILE_ALLOC) {
		for (size_t i = 0; i < p->nstacks && i < top_n; i++) {
			const struct obs_profile_stack *s = &p->stacks[i];

			fprintf(f, "stack %zu: %" PRIu64 " bytes in %" PRIu64 " allocations\n",
				i + 1, s->bytes, s->count);
			for (uint32_t j = 0; j < s->nframes; j++) {
				char buf[320];

				obs_frame_format(&s->frames[j], false, buf, sizeof(buf));
				fprintf(f, "    %s\n", buf);
			}
		}
	}
	if (p->kind != OBS_PROFILE_FUNC)
		write_functions(p, f, top_n);
	return ferror(f) ? -EIO : 0;
}

void obs_probe_budget_init(struct obs_probe_budget *b, double pct, unsigned cost_ns,
			   uint64_t max_hits_per_s)
{
	b->cost_ns = cost_ns ? cost_ns : OBS_PROBE_COST_NS;
	if (max_hits_per_s) {
		b->max_hits_per_s = max_hits_per_s;
		b->pct = (double)max_hits_per_s * b->cost_ns / 1e7;
		return;
	}
	b->pct = pct > 0 ? pct : OBS_PROBE_BUDGET_PCT;
	b->max_hits_per_s = (uint64_t)(b->pct / 100.0 * 1e9 / b->cost_ns);
	if (!b->max_hits_per_s)
		b->max_hits_per_s = 1;
}

bool obs_probe_budget_exceeded(const struct obs_probe_budget *b, uint64_t hits, uint64_t elapsed_ms,
			       char *why, size_t why_len)
{
	uint64_t ms = elapsed_ms < 1000 ? 1000 : elapsed_ms;

	if (hits * 1000 <= b->max_hits_per_s * ms)
		return false;
	snprintf(why, why_len,
		 "%" PRIu64 " probe hits in %.1f s exceed the budget of %" PRIu64
		 " hits/s (%.2g%% of a CPU at %u ns a hit)",
		 hits, elapsed_ms / 1000.0, b->max_hits_per_s, b->pct, b->cost_ns);
	return true;
}
