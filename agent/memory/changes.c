/* changes.c - changes, their state machine and their outcomes; history and reconciliation.
 *
 * Why: the write-ahead intent is what makes kill -9 safe. mem_change_intent() commits the
 * change in state INTENT before the actuator acts; at start the daemon rolls back every change
 * still in INTENT or APPLIED. Recording an outcome moves the change to its final state in the
 * same transaction, so that "concluded" and "has its outcome" can never disagree.
 *
 * Invariants: every state change is checked against mem_transition_allowed() inside the
 * transaction that makes it (BEGIN IMMEDIATE, so no other writer can slip in between the read
 * and the write), and writes its audit row in that transaction. Walks read every row into
 * memory before calling back, so callbacks may write to the database. The episode and the
 * actuator's request (act, opaque text) are stored with the change and read back as given.
 * An outcome's stats are stored as the judge wrote them; what `homeostat explain` shows of
 * them (its metrics, the canary's summary) is read with sqlite's JSON functions, and stats of
 * another shape read as having none.
 */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>

#include "lib/log.h"
#include "memory/internal.h"

/* Rows into heap structs */

static const char *col_text(sqlite3_stmt *st, int col)
{
	const char *s = (const char *)sqlite3_column_text(st, col);

	return s ? s : "";
}

struct mem_change *mem_change_from_row(sqlite3_stmt *st, int col)
{
	struct mem_change *c;
	int kind = mem_kind_from_name(col_text(st, col + 4));
	int state = mem_state_from_name(col_text(st, col + 5));
	/* The string fields and their columns (see MEM_CHANGE_COLUMNS). */
	static const struct {
		size_t off;
		int col;
	} strs[] = {
	    {offsetof(struct mem_change, target), 6},
	    {offsetof(struct mem_change, knob), 7},
	    {offsetof(struct mem_change, before), 8},
	    {offsetof(struct mem_change, after), 9},
	    {offsetof(struct mem_change, why), 10},
	    {offsetof(struct mem_change, source), 11},
	    {offsetof(struct mem_change, fingerprint), 12},
	    {offsetof(struct mem_change, revert), 13},
	    {offsetof(struct mem_change, act), 15},
	};
	const char *srcs[ARRAY_SIZE(strs)];
	size_t total = sizeof(*c);
	char *p;

	if (kind < 0 || state < 0)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(strs); i++) {
		srcs[i] = col_text(st, col + strs[i].col);
		total += strlen(srcs[i]) + 1;
	}
	c = calloc(1, total);
	if (!c)
		return NULL;
	p = (char *)(c + 1);
	for (size_t i = 0; i < ARRAY_SIZE(strs); i++) {
		size_t len = strlen(srcs[i]) + 1;

		memcpy(p, srcs[i], len);
		*(const char **)((char *)c + strs[i].off) = p;
		p += len;
	}
	c->id = sqlite3_column_int64(st, col);
	c->created_at = sqlite3_column_int64(st, col + 1);
	c->updated_at = sqlite3_column_int64(st, col + 2);
	c->acted_at = sqlite3_column_int64(st, col + 3);    /* NULL reads as 0 */
	c->episode_id = sqlite3_column_int64(st, col + 14); /* NULL reads as 0 */
	c->kind = kind;
	c->state = state;
	return c;
}

static double col_double_or_nan(sqlite3_stmt *st, int col)
{
	return sqlite3_column_type(st, col) == SQLITE_NULL ? NAN : sqlite3_column_double(st, col);
}

struct mem_outcome *mem_outcome_from_row(sqlite3_stmt *st, int col)
{
	struct mem_outcome *o;
	int verdict, result;
	const char *stats, *reason;
	size_t ls, lr;

	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return NULL;
	verdict = mem_verdict_from_name(col_text(st, col + 5));
	result = mem_result_from_name(col_text(st, col + 7));
	if (verdict < 0 || result < 0)
		return NULL;
	stats = col_text(st, col + 6);
	reason = col_text(st, col + 8);
	ls = strlen(stats) + 1;
	lr = strlen(reason) + 1;
	o = calloc(1, sizeof(*o) + ls + lr);
	if (!o)
		return NULL;
	o->stats_json = memcpy((char *)(o + 1), stats, ls);
	o->failure_reason = memcpy((char *)(o + 1) + ls, reason, lr);
	o->id = sqlite3_column_int64(st, col);
	o->change_id = sqlite3_column_int64(st, col + 1);
	o->at = sqlite3_column_int64(st, col + 2);
	o->fitness_before = col_double_or_nan(st, col + 3);
	o->fitness_after = col_double_or_nan(st, col + 4);
	o->verdict = verdict;
	o->result = result;
	return o;
}

void mem_change_free(struct mem_change *c)
{
	free(c);
}

/* Recording */

static int check_text(struct mem *m, const char *what, const char *s, bool required)
{
	size_t n = s ? strlen(s) : 0;

	if (required && n == 0)
		return mem_error(m, -EINVAL, "change needs a non-empty %s", what);
	if (n > MEM_TEXT_MAX)
		return mem_error(m, -E2BIG, "change %s of %zu bytes, the most is %d", what, n,
				 MEM_TEXT_MAX);
	return 0;
}

static int check_change(struct mem *m, const struct mem_change *c)
{
	static const char *const names[] = {"before",	   "after",  "why", "source",
					    "fingerprint", "revert", "act"};
	const char *vals[] = {c->before,      c->after,	 c->why, c->source,
			      c->fingerprint, c->revert, c->act};
	int r;

	if (!mem_kind_name(c->kind))
		return mem_error(m, -EINVAL, "change has unknown kind %d", (int)c->kind);
	if (c->episode_id < 0)
		return mem_error(m, -EINVAL, "change has a negative episode id %" PRId64,
				 c->episode_id);
	r = check_text(m, "target", c->target, true);
	if (r < 0)
		return r;
	r = check_text(m, "knob", c->knob, true);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		r = check_text(m, names[i], vals[i], false);
		if (r < 0)
			return r;
	}
	return 0;
}

static char *event_name(char *buf, size_t size, const char *prefix, const char *name)
{
	size_t n;

	snprintf(buf, size, "%s%s", prefix, name);
	for (n = strlen(prefix); buf[n]; n++)
		buf[n] = tolower((unsigned char)buf[n]);
	return buf;
}

int64_t mem_change_record(struct mem *m, const struct mem_change *c, enum mem_state initial,
			  const char *note)
{
	static const char sql[] =
	    "INSERT INTO changes (created_at, updated_at, acted_at, kind, target, knob, before,"
	    " after, why, source, fingerprint, revert, state, episode_id, act)"
	    " VALUES (?1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	char fp[1024], event[64];
	_cleanup_free_ char *detail = NULL;
	const char *fingerprint = c ? c->fingerprint : NULL;
	int64_t now, id, seq;
	int r;

	if (!m || !c)
		return -EINVAL;
	if (initial != MEM_STATE_PROPOSED && initial != MEM_STATE_INTENT &&
	    initial != MEM_STATE_DENIED)
		return mem_error(m, -EINVAL, "a change cannot start in state %s",
				 mem_state_name(initial) ?: "?");
	r = check_change(m, c);
	if (r < 0)
		return r;
	if (!fingerprint || !*fingerprint) {
		r = mem_change_fingerprint(m, c, fp, sizeof(fp));
		if (r < 0)
			return mem_error(m, r, "cannot compute the fingerprint of the change");
		fingerprint = fp;
	}
	if (asprintf(&detail, "%s %s of '%s': '%s' -> '%s'%s%s%s%s%s", mem_kind_name(c->kind),
		     c->knob, c->target, c->before ?: "", c->after ?: "",
		     c->revert && *c->revert ? " (revert: " : "", c->revert ?: "",
		     c->revert && *c->revert ? ")" : "", note && *note ? ": " : "",
		     note ?: "") < 0) {
		detail = NULL;
		return mem_error(m, -ENOMEM, "cannot format audit detail");
	}
	st = mem_stmt(m, sql);
	if (!st)
		return mem_stmt_error(m);

	r = mem_tx_begin(m);
	if (r < 0)
		return r;
	now = mem_now(m);
	sqlite3_bind_int64(st, 1, now);
	if (initial == MEM_STATE_INTENT)
		sqlite3_bind_int64(st, 2, now);
	else
		sqlite3_bind_null(st, 2);
	mem_bind_text(st, 3, mem_kind_name(c->kind));
	mem_bind_text(st, 4, c->target);
	mem_bind_text(st, 5, c->knob);
	mem_bind_text(st, 6, c->before);
	mem_bind_text(st, 7, c->after);
	mem_bind_text(st, 8, c->why);
	mem_bind_text(st, 9, c->source);
	mem_bind_text(st, 10, fingerprint);
	mem_bind_text(st, 11, c->revert);
	mem_bind_text(st, 12, mem_state_name(initial));
	mem_bind_id(st, 13, c->episode_id);
	mem_bind_text(st, 14, c->act);
	r = mem_step_done(m, st, "cannot insert change");
	if (r < 0)
		goto fail;
	id = sqlite3_last_insert_rowid(m->db);
	seq = mem_audit_insert(m, c->source && *c->source ? c->source : "homeostatd",
			       event_name(event, sizeof(event), "change.", mem_state_name(initial)),
			       id, detail);
	if (seq < 0) {
		r = (int)seq;
		goto fail;
	}
	r = mem_tx_commit(m);
	if (r < 0)
		return r;
	return id;
fail:
	mem_tx_rollback(m);
	return r;
}

int64_t mem_change_intent(struct mem *m, const struct mem_change *c)
{
	return mem_change_record(m, c, MEM_STATE_INTENT, NULL);
}

/* Reads the state of change id inside the caller's transaction. */
static int read_state(struct mem *m, int64_t id)
{
	static const char sql[] = "SELECT state FROM changes WHERE id = ?1";
	_cleanup_stmt_ sqlite3_stmt *st = mem_stmt(m, sql);
	int rc, s;

	if (!st)
		return mem_stmt_error(m);
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return mem_error(m, -ENOENT, "no change %" PRId64, id);
	if (rc != SQLITE_ROW)
		return mem_sql_error(m, rc, "cannot read change state");
	s = mem_state_from_name(col_text(st, 0));
	if (s < 0)
		return mem_error(m, -EIO, "change %" PRId64 " has unknown state '%s'", id,
				 col_text(st, 0));
	return s;
}

int mem_change_move(struct mem *m, int64_t id, enum mem_state from, enum mem_state to,
		    const char *actor, const char *note)
{
	static const char sql[] = "UPDATE changes SET state = ?1, updated_at = ?2,"
				  " acted_at = CASE WHEN ?1 = 'INTENT' THEN ?2 ELSE acted_at END"
				  " WHERE id = ?3 AND state = ?4";
	_cleanup_stmt_ sqlite3_stmt *st = mem_stmt(m, sql);
	char event[64];
	int64_t seq;
	int r;

	if (!st)
		return mem_stmt_error(m);
	sqlite3_bind_text(st, 1, mem_state_name(to), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, mem_now(m));
	sqlite3_bind_int64(st, 3, id);
	sqlite3_bind_text(st, 4, mem_state_name(from), -1, SQLITE_STATIC);
	r = mem_step_done(m, st, "cannot update change state");
	if (r < 0)
		return r;
	if (sqlite3_changes(m->db) != 1)
		return mem_error(m, -EIO, "change %" PRId64 " was not in state %s", id,
				 mem_state_name(from));
	seq = mem_audit_insert(
	    m, actor, event_name(event, sizeof(event), "change.", mem_state_name(to)), id, note);
	return seq < 0 ? (int)seq : 0;
}

int mem_change_set_state(struct mem *m, int64_t id, enum mem_state to, const char *actor,
			 const char *note)
{
	int from, r;

	if (!m)
		return -EINVAL;
	if (!mem_state_name(to))
		return mem_error(m, -EINVAL, "unknown state %d", (int)to);
	if (!actor || !*actor)
		return mem_error(m, -EINVAL, "state change of %" PRId64 " needs an actor", id);
	r = check_text(m, "note", note, false);
	if (r < 0)
		return r;
	r = mem_tx_begin(m);
	if (r < 0)
		return r;
	from = read_state(m, id);
	if (from < 0) {
		r = from;
		goto fail;
	}
	if (!mem_transition_allowed(from, to)) {
		r = mem_error(m, -EINVAL, "change %" PRId64 " cannot go from %s to %s", id,
			      mem_state_name(from), mem_state_name(to));
		goto fail;
	}
	r = mem_change_move(m, id, from, to, actor, note);
	if (r < 0)
		goto fail;
	return mem_tx_commit(m);
fail:
	mem_tx_rollback(m);
	return r;
}

int mem_change_applied(struct mem *m, int64_t id, const char *before, const char *after,
		       const char *revert, const char *act, const char *note)
{
	static const char sql[] = "UPDATE changes SET before = ?1, after = ?2, revert = ?3,"
				  " act = ?4 WHERE id = ?5 AND state = 'INTENT'";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int from, r;

	if (!m)
		return -EINVAL;
	if ((r = check_text(m, "before", before, false)) < 0 ||
	    (r = check_text(m, "after", after, false)) < 0 ||
	    (r = check_text(m, "revert", revert, false)) < 0 ||
	    (r = check_text(m, "act", act, false)) < 0 ||
	    (r = check_text(m, "note", note, false)) < 0)
		return r;
	r = mem_tx_begin(m);
	if (r < 0)
		return r;
	from = read_state(m, id);
	if (from < 0) {
		r = from;
		goto fail;
	}
	if (from != MEM_STATE_INTENT) {
		r = mem_error(m, -EINVAL, "change %" PRId64 " is %s, not INTENT", id,
			      mem_state_name(from));
		goto fail;
	}
	st = mem_stmt(m, sql);
	if (!st) {
		r = mem_stmt_error(m);
		goto fail;
	}
	sqlite3_bind_text(st, 1, before ? before : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, after ? after : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, revert ? revert : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, act ? act : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, id);
	r = mem_step_done(m, st, "cannot record what was applied");
	if (r < 0)
		goto fail;
	r = mem_change_move(m, id, MEM_STATE_INTENT, MEM_STATE_APPLIED, "homeostat",
			    note && *note ? note : "applied");
	if (r < 0)
		goto fail;
	return mem_tx_commit(m);
fail:
	mem_tx_rollback(m);
	return r;
}

int mem_change_get(struct mem *m, int64_t id, struct mem_change **out)
{
	static const char sql[] = "SELECT " MEM_CHANGE_COLUMNS " FROM changes c WHERE c.id = ?1";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int rc;

	*out = NULL;
	st = mem_stmt(m, sql);
	if (!st)
		return mem_stmt_error(m);
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return mem_error(m, -ENOENT, "no change %" PRId64, id);
	if (rc != SQLITE_ROW)
		return mem_sql_error(m, rc, "cannot read change");
	*out = mem_change_from_row(st, 0);
	if (!*out)
		return mem_error(m, -ENOMEM, "cannot copy change %" PRId64, id);
	return 0;
}

/* Outcomes */

static enum mem_state state_of_result(enum mem_result r)
{
	switch (r) {
	case MEM_RESULT_DEPLOYED:
		return MEM_STATE_KEPT;
	case MEM_RESULT_ROLLED_BACK:
		return MEM_STATE_ROLLED_BACK;
	default:
		return MEM_STATE_FAILED;
	}
}

static void bind_double_or_null(sqlite3_stmt *st, int idx, double v)
{
	if (isnan(v))
		sqlite3_bind_null(st, idx);
	else
		sqlite3_bind_double(st, idx, v);
}

/* 1 if s is valid JSON, 0 if not, or -errno. Asked of sqlite, not of the schema: with
 * trusted_schema=OFF json_valid() may not appear in a CHECK constraint. */
static int json_ok(struct mem *m, const char *s)
{
	static const char sql[] =
	    "SELECT CASE WHEN json_valid(?1) THEN json_type(?1) = 'object' ELSE 0 END";
	_cleanup_stmt_ sqlite3_stmt *st = mem_stmt(m, sql);
	int rc;

	if (!st)
		return mem_stmt_error(m);
	sqlite3_bind_text(st, 1, s, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return mem_sql_error(m, rc, "cannot check JSON");
	return sqlite3_column_int(st, 0);
}

int64_t mem_outcome_record(struct mem *m, const struct mem_outcome *o, const char *actor)
{
	static const char sql[] =
	    "INSERT INTO outcomes (change_id, at, fitness_before, fitness_after, verdict, stats,"
	    " result, failure_reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ char *note = NULL;
	enum mem_state to;
	int64_t oid;
	int from, r;

	if (!m || !o)
		return -EINVAL;
	if (!mem_verdict_name(o->verdict) || !mem_result_name(o->result))
		return mem_error(m, -EINVAL, "outcome has unknown verdict %d or result %d",
				 (int)o->verdict, (int)o->result);
	if (!actor || !*actor)
		return mem_error(m, -EINVAL, "outcome needs an actor");
	r = check_text(m, "stats", o->stats_json, false);
	if (r == 0)
		r = check_text(m, "failure reason", o->failure_reason, false);
	if (r < 0)
		return r;
	if (o->stats_json && *o->stats_json) {
		r = json_ok(m, o->stats_json);
		if (r < 0)
			return r;
		if (r == 0)
			return mem_error(m, -EINVAL, "outcome stats are not a JSON object: '%.64s'",
					 o->stats_json);
	}
	to = state_of_result(o->result);
	if (asprintf(&note, "verdict %s, result %s, fitness %g -> %g%s%s",
		     mem_verdict_name(o->verdict), mem_result_name(o->result), o->fitness_before,
		     o->fitness_after, o->failure_reason && *o->failure_reason ? ": " : "",
		     o->failure_reason ?: "") < 0) {
		note = NULL;
		return mem_error(m, -ENOMEM, "cannot format audit detail");
	}
	st = mem_stmt(m, sql);
	if (!st)
		return mem_stmt_error(m);

	r = mem_tx_begin(m);
	if (r < 0)
		return r;
	from = read_state(m, o->change_id);
	if (from < 0) {
		r = from;
		goto fail;
	}
	if (from != (int)to && !mem_transition_allowed(from, to)) {
		r = mem_error(m, -EINVAL, "change %" PRId64 " in state %s cannot take result %s",
			      o->change_id, mem_state_name(from), mem_result_name(o->result));
		goto fail;
	}
	sqlite3_bind_int64(st, 1, o->change_id);
	sqlite3_bind_int64(st, 2, mem_now(m));
	bind_double_or_null(st, 3, o->fitness_before);
	bind_double_or_null(st, 4, o->fitness_after);
	mem_bind_text(st, 5, mem_verdict_name(o->verdict));
	mem_bind_text(st, 6, o->stats_json && *o->stats_json ? o->stats_json : "{}");
	mem_bind_text(st, 7, mem_result_name(o->result));
	mem_bind_text(st, 8, o->failure_reason);
	r = mem_step_done(m, st, "cannot insert outcome");
	if (r < 0)
		goto fail;
	oid = sqlite3_last_insert_rowid(m->db);
	if (from != (int)to)
		r = mem_change_move(m, o->change_id, from, to, actor, note);
	else
		r = (int)mem_audit_insert(m, actor, "outcome", o->change_id, note);
	if (r < 0)
		goto fail;
	r = mem_tx_commit(m);
	if (r < 0)
		return r;
	return oid;
fail:
	mem_tx_rollback(m);
	return r;
}

int mem_outcome_latest(struct mem *m, int64_t change_id, struct mem_outcome **out)
{
	static const char sql[] =
	    "SELECT " MEM_OUTCOME_COLUMNS
	    " FROM outcomes o WHERE o.change_id = ?1 ORDER BY o.id DESC LIMIT 1";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int rc;

	*out = NULL;
	st = mem_stmt(m, sql);
	if (!st)
		return mem_stmt_error(m);
	sqlite3_bind_int64(st, 1, change_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return mem_error(m, -ENOENT, "change %" PRId64 " has no outcome", change_id);
	if (rc != SQLITE_ROW)
		return mem_sql_error(m, rc, "cannot read outcome");
	*out = mem_outcome_from_row(st, 0);
	if (!*out)
		return mem_error(m, -ENOMEM, "cannot copy outcome of %" PRId64, change_id);
	return 0;
}

/* Outcome statistics, read from the stats JSON by sqlite (json_each, json_extract). */

/* A JSON number, else NAN (absent, null, text, object). */
static double col_number(sqlite3_stmt *st, int col)
{
	int t = sqlite3_column_type(st, col);

	return t == SQLITE_INTEGER || t == SQLITE_FLOAT ? sqlite3_column_double(st, col) : NAN;
}

/* A JSON count (a non-negative integer), else -1. */
static int64_t col_count(sqlite3_stmt *st, int col)
{
	double d;

	switch (sqlite3_column_type(st, col)) {
	case SQLITE_INTEGER:
		return sqlite3_column_int64(st, col) >= 0 ? sqlite3_column_int64(st, col) : -1;
	case SQLITE_FLOAT:
		d = sqlite3_column_double(st, col);
		return d >= 0 && d < 9e18 ? (int64_t)d : -1;
	default:
		return -1;
	}
}

/* Copies the text of the columns cols[] of st behind a struct of size base (one allocation),
 * and points the fields at offs[] to the copies. NULL if out of memory. */
static void *copy_with_strings(sqlite3_stmt *st, size_t base, const int *cols, const size_t *offs,
			       size_t n)
{
	size_t total = base;
	char *obj, *p;

	for (size_t i = 0; i < n; i++)
		total += strlen(col_text(st, cols[i])) + 1;
	obj = calloc(1, total);
	if (!obj)
		return NULL;
	p = obj + base;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(col_text(st, cols[i])) + 1;

		memcpy(p, col_text(st, cols[i]), len);
		*(const char **)(obj + offs[i]) = p;
		p += len;
	}
	return obj;
}

/* One row per object of the newest outcome's "metrics" array. The array is [] when the stats
 * are not valid JSON or have none: a CASE, so that no JSON function sees invalid JSON. */
static const char metrics_sql[] =
    "SELECT json_extract(e.value, '$.metric'), json_extract(e.value, '$.unit'),"
    " json_extract(e.value, '$.test'), json_extract(e.value, '$.n_canary'),"
    " json_extract(e.value, '$.n_baseline'), json_extract(e.value, '$.statistic'),"
    " json_extract(e.value, '$.p'), json_extract(e.value, '$.shift'),"
    " json_extract(e.value, '$.ci[0]'), json_extract(e.value, '$.ci[1]'),"
    " json_extract(e.value, '$.effect'), json_extract(e.value, '$.rel_shift'),"
    " coalesce(json_extract(e.value, '$.canary_median'),"
    "  json_extract(e.value, '$.canary_rate')),"
    " coalesce(json_extract(e.value, '$.baseline_median'),"
    "  json_extract(e.value, '$.baseline_rate')),"
    " json_extract(e.value, '$.verdict'), json_extract(e.value, '$.reason')"
    " FROM (SELECT CASE WHEN NOT json_valid(stats) THEN '[]'"
    "  WHEN json_type(stats, '$.metrics') = 'array' THEN json_extract(stats, '$.metrics')"
    "  ELSE '[]' END AS metrics"
    "  FROM outcomes WHERE change_id = ?1 ORDER BY id DESC LIMIT 1) o,"
    " json_each(o.metrics) e WHERE e.type = 'object' ORDER BY e.key";

static struct mem_metric_row *metric_from_row(sqlite3_stmt *st)
{
	static const int cols[] = {0, 1, 2, 14, 15};
	static const size_t offs[] = {
	    offsetof(struct mem_metric_row, metric), offsetof(struct mem_metric_row, unit),
	    offsetof(struct mem_metric_row, test),   offsetof(struct mem_metric_row, verdict),
	    offsetof(struct mem_metric_row, reason),
	};
	struct mem_metric_row *r;

	_Static_assert(ARRAY_SIZE(cols) == ARRAY_SIZE(offs), "columns and fields");
	r = copy_with_strings(st, sizeof(*r), cols, offs, ARRAY_SIZE(cols));
	if (!r)
		return NULL;
	r->n_canary = col_count(st, 3);
	r->n_baseline = col_count(st, 4);
	r->statistic = col_number(st, 5);
	r->p = col_number(st, 6);
	r->shift = col_number(st, 7);
	r->ci_low = col_number(st, 8);
	r->ci_high = col_number(st, 9);
	r->effect = col_number(st, 10);
	r->rel_shift = col_number(st, 11);
	r->canary = col_number(st, 12);
	r->baseline = col_number(st, 13);
	return r;
}

int mem_outcome_metrics(struct mem *m, int64_t change_id,
			int (*cb)(const struct mem_metric_row *row, void *ud), void *ud)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	struct mem_metric_row **rows = NULL, **v;
	size_t n = 0, cap = 0;
	int rc, r = 0;

	if (!m || !cb)
		return -EINVAL;
	st = mem_stmt(m, metrics_sql);
	if (!st)
		return mem_stmt_error(m);
	sqlite3_bind_int64(st, 1, change_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? 2 * cap : 8;
			v = reallocarray(rows, cap, sizeof(*rows));
			if (!v) {
				r = mem_error(m, -ENOMEM, "cannot grow metric list");
				goto out;
			}
			rows = v;
		}
		rows[n] = metric_from_row(st);
		if (!rows[n]) {
			r = mem_error(m, -ENOMEM, "cannot copy a metric of change %" PRId64,
				      change_id);
			goto out;
		}
		n++;
	}
	if (rc != SQLITE_DONE) {
		r = mem_sql_error(m, rc, "cannot read the metrics of an outcome");
		goto out;
	}
	sqlite3_reset(st);
	for (size_t i = 0; r == 0 && i < n; i++) {
		int k = cb(rows[i], ud);

		if (k < 0)
			r = k;
	}
	if (r == 0)
		r = (int)n;
out:
	for (size_t i = 0; i < n; i++)
		free(rows[i]);
	free(rows);
	return r;
}

int mem_outcome_summary(struct mem *m, int64_t change_id, struct mem_outcome_summary **out)
{
	static const char sql[] =
	    "SELECT json_extract(s, '$.mode'), json_extract(s, '$.outcome'),"
	    " json_extract(s, '$.verdict'), json_extract(s, '$.reason'),"
	    " json_extract(s, '$.breach.metric'), json_extract(s, '$.duration_ms'),"
	    " json_extract(s, '$.elapsed_ms'), json_extract(s, '$.samples.canary'),"
	    " json_extract(s, '$.samples.baseline'), json_extract(s, '$.truncated') IS 1,"
	    " json_type(s, '$.breach') IS 'object', json_extract(s, '$.breach.canary'),"
	    " json_extract(s, '$.breach.baseline'), json_extract(s, '$.breach.limit'),"
	    " json_extract(s, '$.function_latency.summary')"
	    " FROM (SELECT CASE WHEN json_valid(stats) THEN stats ELSE '{}' END AS s"
	    "  FROM outcomes WHERE change_id = ?1 ORDER BY id DESC LIMIT 1)";
	static const int cols[] = {0, 1, 2, 3, 4, 14};
	static const size_t offs[] = {
	    offsetof(struct mem_outcome_summary, mode),
	    offsetof(struct mem_outcome_summary, outcome),
	    offsetof(struct mem_outcome_summary, verdict),
	    offsetof(struct mem_outcome_summary, reason),
	    offsetof(struct mem_outcome_summary, breach_metric),
	    offsetof(struct mem_outcome_summary, function_latency),
	};
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	struct mem_outcome_summary *s;
	int rc;

	_Static_assert(ARRAY_SIZE(cols) == ARRAY_SIZE(offs), "columns and fields");
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!m)
		return -EINVAL;
	st = mem_stmt(m, sql);
	if (!st)
		return mem_stmt_error(m);
	sqlite3_bind_int64(st, 1, change_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return mem_error(m, -ENOENT, "change %" PRId64 " has no outcome", change_id);
	if (rc != SQLITE_ROW)
		return mem_sql_error(m, rc, "cannot read the summary of an outcome");
	s = copy_with_strings(st, sizeof(*s), cols, offs, ARRAY_SIZE(cols));
	if (!s)
		return mem_error(m, -ENOMEM, "cannot copy the summary of %" PRId64, change_id);
	s->duration_ms = col_count(st, 5);
	s->elapsed_ms = col_count(st, 6);
	s->samples_canary = col_count(st, 7);
	s->samples_baseline = col_count(st, 8);
	s->truncated = sqlite3_column_int(st, 9) != 0;
	s->breach = sqlite3_column_int(st, 10) != 0;
	s->breach_canary = col_number(st, 11);
	s->breach_baseline = col_number(st, 12);
	s->breach_limit = col_number(st, 13);
	*out = s;
	return 0;
}

/* Walks: rows are copied out first, then handed to the callback. */

struct row {
	struct mem_change *c;
	struct mem_outcome *o;
};

struct rows {
	struct row *v;
	size_t n, cap;
};

static void rows_free(struct rows *rs)
{
	for (size_t i = 0; i < rs->n; i++) {
		free(rs->v[i].c);
		free(rs->v[i].o);
	}
	free(rs->v);
	rs->v = NULL;
	rs->n = rs->cap = 0;
}

/* Reads every row of st (change columns first, outcome columns after them if with_outcome). */
static int rows_read(struct mem *m, sqlite3_stmt *st, bool with_outcome, struct rows *rs)
{
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct row r = {0};

		if (rs->n == rs->cap) {
			size_t cap = rs->cap ? rs->cap * 2 : 16;
			struct row *v = realloc(rs->v, cap * sizeof(*v));

			if (!v)
				return mem_error(m, -ENOMEM, "cannot grow row list");
			rs->v = v;
			rs->cap = cap;
		}
		r.c = mem_change_from_row(st, 0);
		if (!r.c)
			return mem_error(m, -ENOMEM, "cannot copy change");
		if (with_outcome && sqlite3_column_type(st, MEM_CHANGE_NCOLUMNS) != SQLITE_NULL) {
			r.o = mem_outcome_from_row(st, MEM_CHANGE_NCOLUMNS);
			if (!r.o) {
				free(r.c);
				return mem_error(m, -ENOMEM, "cannot copy outcome");
			}
		}
		rs->v[rs->n++] = r;
	}
	if (rc != SQLITE_DONE)
		return mem_sql_error(m, rc, "cannot read changes");
	return 0;
}

int mem_changes_unconcluded(struct mem *m, int (*cb)(const struct mem_change *c, void *ud),
			    void *ud)
{
	static const char sql[] = "SELECT " MEM_CHANGE_COLUMNS " FROM changes c"
				  " WHERE c.state IN ('INTENT', 'APPLIED') ORDER BY c.id DESC";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	struct rows rs = {0};
	int r;

	if (!m || !cb)
		return -EINVAL;
	st = mem_stmt(m, sql);
	if (!st)
		return mem_stmt_error(m);
	r = rows_read(m, st, false, &rs);
	sqlite3_reset(st);
	for (size_t i = 0; r == 0 && i < rs.n; i++) {
		int k = cb(rs.v[i].c, ud);

		if (k < 0)
			r = k;
	}
	if (r == 0)
		r = (int)rs.n;
	rows_free(&rs);
	return r;
}

int mem_changes_by_state(struct mem *m, enum mem_state state,
			 int (*cb)(const struct mem_change *c, void *ud), void *ud)
{
	static const char sql[] = "SELECT " MEM_CHANGE_COLUMNS " FROM changes c"
				  " WHERE c.state = ?1 ORDER BY c.id";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	struct rows rs = {0};
	int r;

	if (!m || !cb)
		return -EINVAL;
	if (!mem_state_name(state))
		return mem_error(m, -EINVAL, "unknown state %d", (int)state);
	st = mem_stmt(m, sql);
	if (!st)
		return mem_stmt_error(m);
	mem_bind_text(st, 1, mem_state_name(state));
	r = rows_read(m, st, false, &rs);
	sqlite3_reset(st);
	for (size_t i = 0; r == 0 && i < rs.n; i++) {
		int k = cb(rs.v[i].c, ud);

		if (k < 0)
			r = k;
	}
	if (r == 0)
		r = (int)rs.n;
	rows_free(&rs);
	return r;
}

int mem_history(struct mem *m, int limit,
		int (*cb)(const struct mem_change *c, const struct mem_outcome *o, void *ud),
		void *ud)
{
	static const char sql[] =
	    "SELECT " MEM_CHANGE_COLUMNS ", " MEM_OUTCOME_COLUMNS " FROM changes c"
	    " LEFT JOIN outcomes o"
	    "  ON o.id = (SELECT max(id) FROM outcomes WHERE change_id = c.id)"
	    " ORDER BY c.id DESC LIMIT ?1";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	struct rows rs = {0};
	int r;

	if (!m || !cb)
		return -EINVAL;
	st = mem_stmt(m, sql);
	if (!st)
		return mem_stmt_error(m);
	sqlite3_bind_int(st, 1, limit > 0 ? limit : -1);
	r = rows_read(m, st, true, &rs);
	sqlite3_reset(st);
	for (size_t i = 0; r == 0 && i < rs.n; i++) {
		int k = cb(rs.v[i].c, rs.v[i].o, ud);

		if (k < 0)
			r = k;
	}
	if (r == 0)
		r = (int)rs.n;
	rows_free(&rs);
	return r;
}

int mem_counts(struct mem *m, int64_t now, struct mem_counts *out)
{
	static const char sql[] =
	    "SELECT"
	    " (SELECT count(*) FROM changes WHERE acted_at > ?1 - 3600000 AND acted_at <= ?1),"
	    " (SELECT count(*) FROM changes WHERE state IN ('INTENT', 'APPLIED')),"
	    " (SELECT count(*) FROM approvals WHERE state = 'PENDING'),"
	    " (SELECT count(*) FROM changes)";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int rc;

	if (!m || !out)
		return -EINVAL;
	st = mem_stmt(m, sql);
	if (!st)
		return mem_stmt_error(m);
	sqlite3_bind_int64(st, 1, now);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return mem_sql_error(m, rc, "cannot count changes");
	out->changes_last_hour = sqlite3_column_int64(st, 0);
	out->active = sqlite3_column_int64(st, 1);
	out->pending_approvals = sqlite3_column_int64(st, 2);
	out->total = sqlite3_column_int64(st, 3);
	return 0;
}
