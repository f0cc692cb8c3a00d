/* fitness.c - the fitness history: downsampled rows per target, a time-range query, pruning.
 *
 * Why: a change is explained by the fitness before and after it (the judge, `homeostat
 * explain`), long after the ticks are gone. agent/fitness/ writes one row per target and
 * bucket (min/avg/max), so the table grows by a bounded amount per target and hour, and
 * mem_fitness_prune() keeps it to its retention.
 *
 * Invariants: rows are checked here before they are written (the table's CHECKs repeat it);
 * a record of n rows is one transaction, all or nothing. The range query reads every row
 * before the first callback, so a callback may use m. NAN is NULL in the table and back.
 */
#include <math.h>

#include "lib/log.h"
#include "memory/internal.h"

static const char *const basis_names[] = {"slo", "baseline", "learning", "idle"};

/* The static name equal to s, or NULL if s is not a basis. */
static const char *basis_static(const char *s)
{
	for (size_t i = 0; s && i < ARRAY_SIZE(basis_names); i++)
		if (streq(basis_names[i], s))
			return basis_names[i];
	return NULL;
}

static int bind_real(sqlite3_stmt *st, int idx, double v)
{
	return isfinite(v) ? sqlite3_bind_double(st, idx, v) : sqlite3_bind_null(st, idx);
}

static double col_real(sqlite3_stmt *st, int col)
{
	return sqlite3_column_type(st, col) == SQLITE_NULL ? NAN : sqlite3_column_double(st, col);
}

static int check_row(struct mem *m, const struct mem_fitness_row *r)
{
	if (!r->target || !*r->target || strlen(r->target) > MEM_TEXT_MAX)
		return mem_error(m, -EINVAL, "fitness row without a target");
	if (r->end_at < r->start_at || r->samples < 1 || r->scored < 0 || r->scored > r->samples)
		return mem_error(m, -EINVAL,
				 "fitness row of '%s' is malformed: %" PRId64 "..%" PRId64
				 ", %" PRId64 " of %" PRId64 " samples scored",
				 r->target, r->start_at, r->end_at, r->scored, r->samples);
	if (!basis_static(r->basis))
		return mem_error(m, -EINVAL, "fitness row of '%s' has an unknown basis '%s'",
				 r->target, r->basis ? r->basis : "(null)");
	return 0;
}

int mem_fitness_record(struct mem *m, const struct mem_fitness_row *rows, size_t n)
{
	static const char sql[] =
	    "INSERT INTO fitness (target, start_at, end_at, samples, scored, score_min, score_avg,"
	    " score_max, latency, errors, throughput, cost, basis)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (!m || (n && !rows))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		r = check_row(m, &rows[i]);
		if (r < 0)
			return r;
	}
	if (!n)
		return 0;
	st = mem_stmt(m, sql);
	if (!st)
		return mem_stmt_error(m);
	r = mem_tx_begin(m);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		const struct mem_fitness_row *w = &rows[i];

		sqlite3_clear_bindings(st);
		mem_bind_text(st, 1, w->target);
		sqlite3_bind_int64(st, 2, w->start_at);
		sqlite3_bind_int64(st, 3, w->end_at);
		sqlite3_bind_int64(st, 4, w->samples);
		sqlite3_bind_int64(st, 5, w->scored);
		bind_real(st, 6, w->score_min);
		bind_real(st, 7, w->score_avg);
		bind_real(st, 8, w->score_max);
		bind_real(st, 9, w->latency);
		bind_real(st, 10, w->errors);
		bind_real(st, 11, w->throughput);
		bind_real(st, 12, w->cost);
		mem_bind_text(st, 13, w->basis);
		r = mem_step_done(m, st, "cannot insert fitness row");
		if (r < 0) {
			mem_tx_rollback(m);
			return r;
		}
	}
	return mem_tx_commit(m);
}

struct fit_rows {
	struct mem_fitness_row *v;
	size_t n, cap;
};

static int rows_push(struct fit_rows *rs, const struct mem_fitness_row *row)
{
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 64;
		struct mem_fitness_row *v = reallocarray(rs->v, cap, sizeof(*v));

		if (!v)
			return -ENOMEM;
		rs->v = v;
		rs->cap = cap;
	}
	rs->v[rs->n++] = *row;
	return 0;
}

int mem_fitness_range(struct mem *m, const char *target, int64_t from, int64_t to,
		      int (*cb)(const struct mem_fitness_row *r, void *ud), void *ud)
{
	static const char sql[] =
	    "SELECT start_at, end_at, samples, scored, score_min, score_avg, score_max, latency,"
	    " errors, throughput, cost, basis FROM fitness"
	    " WHERE target = ?1 AND end_at >= ?2 AND start_at <= ?3 ORDER BY start_at, id";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ struct mem_fitness_row *keep = NULL;
	struct fit_rows rs = {0};
	int rc, r = 0;

	if (!m || !target || !cb)
		return -EINVAL;
	st = mem_stmt(m, sql);
	if (!st)
		return mem_stmt_error(m);
	mem_bind_text(st, 1, target);
	sqlite3_bind_int64(st, 2, from);
	sqlite3_bind_int64(st, 3, to);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct mem_fitness_row row = {
		    .target = target,
		    .start_at = sqlite3_column_int64(st, 0),
		    .end_at = sqlite3_column_int64(st, 1),
		    .samples = sqlite3_column_int64(st, 2),
		    .scored = sqlite3_column_int64(st, 3),
		    .score_min = col_real(st, 4),
		    .score_avg = col_real(st, 5),
		    .score_max = col_real(st, 6),
		    .latency = col_real(st, 7),
		    .errors = col_real(st, 8),
		    .throughput = col_real(st, 9),
		    .cost = col_real(st, 10),
		    .basis = basis_static((const char *)sqlite3_column_text(st, 11)),
		};

		if (!row.basis)
			row.basis = "idle"; /* the CHECK makes this unreachable */
		r = rows_push(&rs, &row);
		if (r < 0)
			break;
	}
	keep = rs.v;
	if (r == 0 && rc != SQLITE_DONE)
		r = mem_sql_error(m, rc, "cannot read fitness rows");
	else if (r < 0)
		mem_error(m, r, "cannot read fitness rows: out of memory");
	sqlite3_reset(st);
	for (size_t i = 0; r == 0 && i < rs.n; i++) {
		int k = cb(&rs.v[i], ud);

		if (k < 0)
			r = k;
	}
	return r < 0 ? r : (int)rs.n;
}

int mem_fitness_summary(struct mem *m, const char *target, int64_t from, int64_t to,
			struct mem_fitness_summary *out)
{
	static const char sql[] =
	    "SELECT count(*), coalesce(sum(samples), 0), coalesce(sum(scored), 0), min(score_min),"
	    " sum(score_avg * scored) / nullif(sum(CASE WHEN score_avg IS NOT NULL"
	    "  THEN scored END), 0), max(score_max) FROM fitness"
	    " WHERE target = ?1 AND end_at >= ?2 AND start_at <= ?3";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int rc;

	if (!m || !target || !out)
		return -EINVAL;
	st = mem_stmt(m, sql);
	if (!st)
		return mem_stmt_error(m);
	mem_bind_text(st, 1, target);
	sqlite3_bind_int64(st, 2, from);
	sqlite3_bind_int64(st, 3, to);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return mem_sql_error(m, rc, "cannot summarise fitness rows");
	out->rows = sqlite3_column_int64(st, 0);
	out->samples = sqlite3_column_int64(st, 1);
	out->scored = sqlite3_column_int64(st, 2);
	out->min = col_real(st, 3);
	out->avg = col_real(st, 4);
	out->max = col_real(st, 5);
	return 0;
}

int mem_fitness_prune(struct mem *m, int64_t before, int limit)
{
	static const char sql[] = "DELETE FROM fitness WHERE id IN (SELECT id FROM fitness"
				  " WHERE end_at < ?1 ORDER BY end_at LIMIT ?2)";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (!m || limit < 1)
		return -EINVAL;
	st = mem_stmt(m, sql);
	if (!st)
		return mem_stmt_error(m);
	sqlite3_bind_int64(st, 1, before);
	sqlite3_bind_int(st, 2, limit);
	r = mem_step_done(m, st, "cannot prune fitness rows");
	if (r < 0)
		return r;
	return sqlite3_changes(m->db);
}
