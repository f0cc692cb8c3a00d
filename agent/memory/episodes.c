/* episodes.c - episodes (one firing of a runbook on a target, from detection to its end) and
 * the diagnoses captured during them.
 *
 * Why: a change says what was done to the host; an episode says why anything was looked at,
 * what was found (the diagnoses: an fd table, an allocation profile), what was done or refused,
 * and how it ended, also when nothing was changed (cleared by itself, refused, dry run). That
 * is what `homeostat explain` tells, and what a daemon restarted after a crash must close:
 * an episode of a previous run cannot go on (mem_episodes_abort_open()).
 *
 * Invariants:
 * - Every write is one BEGIN IMMEDIATE transaction with its audit row (actor
 *   "runbook:<runbook>" of the episode, or "homeostatd" for the abort at start; no change
 *   id; the detail names the episode).
 * - An episode ends once: ended_at and a state other than OPEN are set together (a CHECK),
 *   and a trigger refuses any UPDATE of an ended episode; its identity (runbook, target, pid,
 *   started_at, why) never changes.
 * - The summary never grows past MEM_TEXT_MAX: a note that would overflow it is refused
 *   (-ENOSPC), but an ending never is: the older summary is cut, marked "…", so that the
 *   final note fits and the episode can always be closed.
 * - Diagnoses are append-only and stored as one zlib stream (compress2, level 6) with the
 *   size of the text; reading one checks that it decompresses to exactly that size
 *   (-EBADMSG). Compression is done before the transaction, so that it does not hold the
 *   write lock.
 * - Walks read every row before the first callback, so callbacks may write.
 */
#include <ctype.h>
#include <zlib.h>

#include "lib/log.h"
#include "memory/internal.h"

#define EPISODE_COLUMNS                                                                            \
	"e.id, e.runbook, e.target, e.pid, e.started_at, e.updated_at, e.ended_at, e.state, "      \
	"e.why, e.summary"

/* zlib level of the diagnoses: most of the gain of 9 for a fraction of its time. */
#define DIAGNOSIS_ZLEVEL 6

static const char ellipsis[] = "…";

static const char *col_text(sqlite3_stmt *st, int col)
{
	const char *s = (const char *)sqlite3_column_text(st, col);

	return s ? s : "";
}

static int check_text(struct mem *m, const char *what, const char *s, bool required)
{
	size_t n = s ? strlen(s) : 0;

	if (required && n == 0)
		return mem_error(m, -EINVAL, "%s must not be empty", what);
	if (n > MEM_TEXT_MAX)
		return mem_error(m, -E2BIG, "%s of %zu bytes, the most is %d", what, n,
				 MEM_TEXT_MAX);
	return 0;
}

/* "episode.<name in lowercase>" */
static const char *event_name(char *buf, size_t size, enum mem_episode_state s)
{
	snprintf(buf, size, "episode.%s", mem_episode_state_name(s));
	for (char *p = buf; *p; p++)
		*p = tolower((unsigned char)*p);
	return buf;
}

/* A list of heap rows, read before the callbacks run. */
struct ptrs {
	void **v;
	size_t n, cap;
};

static int ptrs_push(struct ptrs *p, void *x)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		void **v = realloc(p->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		p->v = v;
		p->cap = cap;
	}
	p->v[p->n++] = x;
	return 0;
}

static void ptrs_free(struct ptrs *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i]);
	free(p->v);
	*p = (struct ptrs){0};
}

/* Episodes */

/* A heap copy (one allocation) of the EPISODE_COLUMNS of st; NULL if out of memory or the
 * row holds an unknown state. */
static struct mem_episode *episode_from_row(sqlite3_stmt *st)
{
	static const struct {
		size_t off;
		int col;
	} strs[] = {
	    {offsetof(struct mem_episode, runbook), 1},
	    {offsetof(struct mem_episode, target), 2},
	    {offsetof(struct mem_episode, why), 8},
	    {offsetof(struct mem_episode, summary), 9},
	};
	const char *srcs[ARRAY_SIZE(strs)];
	int state = mem_episode_state_from_name(col_text(st, 7));
	size_t total = sizeof(struct mem_episode);
	struct mem_episode *e;
	char *p;

	if (state < 0)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(strs); i++) {
		srcs[i] = col_text(st, strs[i].col);
		total += strlen(srcs[i]) + 1;
	}
	e = calloc(1, total);
	if (!e)
		return NULL;
	p = (char *)(e + 1);
	for (size_t i = 0; i < ARRAY_SIZE(strs); i++) {
		size_t len = strlen(srcs[i]) + 1;

		memcpy(p, srcs[i], len);
		*(const char **)((char *)e + strs[i].off) = p;
		p += len;
	}
	e->id = sqlite3_column_int64(st, 0);
	e->pid = sqlite3_column_int64(st, 3);
	e->started_at = sqlite3_column_int64(st, 4);
	e->updated_at = sqlite3_column_int64(st, 5);
	e->ended_at = sqlite3_column_int64(st, 6); /* NULL reads as 0 */
	e->state = state;
	return e;
}

int mem_episode_get(struct mem *m, int64_t id, struct mem_episode **out)
{
	static const char sql[] = "SELECT " EPISODE_COLUMNS " FROM episodes e WHERE e.id = ?1";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int rc;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!m)
		return -EINVAL;
	st = mem_stmt(m, sql);
	if (!st)
		return mem_stmt_error(m);
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return mem_error(m, -ENOENT, "no episode %" PRId64, id);
	if (rc != SQLITE_ROW)
		return mem_sql_error(m, rc, "cannot read episode");
	*out = episode_from_row(st);
	if (!*out)
		return mem_error(m, -ENOMEM, "cannot copy episode %" PRId64, id);
	return 0;
}

/* Episode id, still open, inside the caller's transaction. -ENOENT, -EINVAL if it ended. */
static int read_open(struct mem *m, int64_t id, struct mem_episode **out)
{
	int r = mem_episode_get(m, id, out);

	if (r < 0)
		return r;
	if ((*out)->state != MEM_EPISODE_OPEN) {
		r = mem_error(m, -EINVAL, "episode %" PRId64 " has already ended (%s)", id,
			      mem_episode_state_name((*out)->state));
		free(*out);
		*out = NULL;
	}
	return r;
}

int64_t mem_episode_open(struct mem *m, const char *runbook, const char *target, int64_t pid,
			 const char *why, int64_t now)
{
	static const char sql[] =
	    "INSERT INTO episodes (runbook, target, pid, started_at, updated_at, state, why)"
	    " VALUES (?1, ?2, ?3, ?4, ?4, 'OPEN', ?5)";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ char *actor = NULL, *detail = NULL;
	int64_t id, seq;
	int r;

	if (!m)
		return -EINVAL;
	r = check_text(m, "episode runbook", runbook, true);
	if (r == 0)
		r = check_text(m, "episode target", target, true);
	if (r == 0)
		r = check_text(m, "episode why", why, false);
	if (r < 0)
		return r;
	if (pid < 0)
		return mem_error(m, -EINVAL, "episode of '%s' has a negative pid %" PRId64, target,
				 pid);
	if (asprintf(&actor, "runbook:%s", runbook) < 0) {
		actor = NULL;
		return mem_error(m, -ENOMEM, "cannot format audit actor");
	}
	st = mem_stmt(m, sql);
	if (!st)
		return mem_stmt_error(m);

	r = mem_tx_begin(m);
	if (r < 0)
		return r;
	mem_bind_text(st, 1, runbook);
	mem_bind_text(st, 2, target);
	sqlite3_bind_int64(st, 3, pid);
	sqlite3_bind_int64(st, 4, now);
	mem_bind_text(st, 5, why);
	r = mem_step_done(m, st, "cannot insert episode");
	if (r < 0)
		goto fail;
	id = sqlite3_last_insert_rowid(m->db);
	if (asprintf(&detail, "episode %" PRId64 " on %s%s%s", id, target, why && *why ? ": " : "",
		     why ?: "") < 0) {
		detail = NULL;
		r = mem_error(m, -ENOMEM, "cannot format audit detail");
		goto fail;
	}
	seq = mem_audit_insert(m, actor, "episode.open", 0, detail);
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

/* Bytes of s to keep so that at most n remain and no UTF-8 character is cut; n < strlen(s). */
static size_t utf8_floor(const char *s, size_t n)
{
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}

/* *out = old and note joined by "; " (note alone when old is empty). Past MEM_TEXT_MAX:
 * -ENOSPC, or if cut, old is cut and marked "…" so that note fits whole (and when note alone
 * nearly fills MEM_TEXT_MAX, only note is kept, cut and marked). */
static int summary_join(const char *old, const char *note, bool cut, char **out)
{
	size_t lo = strlen(old), ln = strlen(note), le = strlen(ellipsis);
	int n;

	*out = NULL;
	if (lo + (lo ? 2 : 0) + ln <= MEM_TEXT_MAX)
		n = asprintf(out, "%s%s%s", old, lo ? "; " : "", note);
	else if (!cut)
		return -ENOSPC;
	else if (le + 2 + ln <= MEM_TEXT_MAX)
		n = asprintf(out, "%.*s%s; %s", (int)utf8_floor(old, MEM_TEXT_MAX - le - 2 - ln),
			     old, ellipsis, note);
	else
		n = asprintf(out, "%.*s%s", (int)utf8_floor(note, MEM_TEXT_MAX - le), note,
			     ellipsis);
	if (n < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Inside the caller's transaction: appends note (may be NULL or "") to the summary of open
 * episode e, sets updated_at and, unless to is OPEN, ends it in state to; then its audit row
 * ("episode.note" when to is OPEN, else "episode.<to>"). */
static int episode_update(struct mem *m, const struct mem_episode *e, enum mem_episode_state to,
			  int64_t now, const char *actor, const char *note)
{
	static const char sql[] = "UPDATE episodes SET summary = ?1, updated_at = ?2,"
				  " ended_at = ?3, state = ?4 WHERE id = ?5 AND ended_at IS NULL";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ char *summary = NULL, *detail = NULL;
	bool has_note = note && *note;
	char event[64];
	int64_t seq;
	int r;

	if (has_note) {
		r = summary_join(e->summary, note, to != MEM_EPISODE_OPEN, &summary);
		if (r == -ENOSPC)
			return mem_error(m, r,
					 "summary of episode %" PRId64
					 " would grow past %d bytes: note refused",
					 e->id, MEM_TEXT_MAX);
		if (r < 0)
			return mem_error(m, r, "cannot join the summary of episode %" PRId64,
					 e->id);
	}
	if (asprintf(&detail, "episode %" PRId64 "%s%s", e->id, has_note ? ": " : "",
		     has_note ? note : "") < 0) {
		detail = NULL;
		return mem_error(m, -ENOMEM, "cannot format audit detail");
	}
	st = mem_stmt(m, sql);
	if (!st)
		return mem_stmt_error(m);
	mem_bind_text(st, 1, summary ?: e->summary);
	sqlite3_bind_int64(st, 2, now);
	if (to == MEM_EPISODE_OPEN)
		sqlite3_bind_null(st, 3);
	else
		sqlite3_bind_int64(st, 3, now);
	mem_bind_text(st, 4, mem_episode_state_name(to));
	sqlite3_bind_int64(st, 5, e->id);
	r = mem_step_done(m, st, "cannot update episode");
	if (r < 0)
		return r;
	if (sqlite3_changes(m->db) != 1)
		return mem_error(m, -EIO, "episode %" PRId64 " was not open", e->id);
	seq = mem_audit_insert(m, actor,
			       to == MEM_EPISODE_OPEN ? "episode.note"
						      : event_name(event, sizeof(event), to),
			       0, detail);
	return seq < 0 ? (int)seq : 0;
}

/* mem_episode_note() and mem_episode_close(): one episode, its runbook as the actor. */
static int episode_change(struct mem *m, int64_t id, enum mem_episode_state to, int64_t now,
			  const char *note)
{
	_cleanup_free_ struct mem_episode *e = NULL;
	_cleanup_free_ char *actor = NULL;
	int r;

	r = mem_tx_begin(m);
	if (r < 0)
		return r;
	r = read_open(m, id, &e);
	if (r < 0)
		goto fail;
	if (asprintf(&actor, "runbook:%s", e->runbook) < 0) {
		actor = NULL;
		r = mem_error(m, -ENOMEM, "cannot format audit actor");
		goto fail;
	}
	r = episode_update(m, e, to, now, actor, note);
	if (r < 0)
		goto fail;
	return mem_tx_commit(m);
fail:
	mem_tx_rollback(m);
	return r;
}

int mem_episode_note(struct mem *m, int64_t id, int64_t now, const char *fmt, ...)
{
	_cleanup_free_ char *text = NULL;
	va_list ap;
	int n;

	if (!m || !fmt)
		return -EINVAL;
	va_start(ap, fmt);
	n = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (n < 0) {
		text = NULL;
		return mem_error(m, -ENOMEM, "cannot format episode note");
	}
	if (n == 0)
		return mem_error(m, -EINVAL, "note on episode %" PRId64 " is empty", id);
	return episode_change(m, id, MEM_EPISODE_OPEN, now, text);
}

int mem_episode_close(struct mem *m, int64_t id, enum mem_episode_state state, int64_t now,
		      const char *note)
{
	int r;

	if (!m)
		return -EINVAL;
	if (state == MEM_EPISODE_OPEN || !mem_episode_state_name(state))
		return mem_error(m, -EINVAL, "episode %" PRId64 " cannot end in state %s", id,
				 mem_episode_state_name(state) ?: "?");
	r = check_text(m, "episode note", note, false);
	if (r < 0)
		return r;
	return episode_change(m, id, state, now, note);
}

int mem_episodes_abort_open(struct mem *m, int64_t now, const char *note)
{
	static const char sql[] = "SELECT " EPISODE_COLUMNS " FROM episodes e"
				  " WHERE e.ended_at IS NULL ORDER BY e.id";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	struct ptrs open = {0};
	int rc, r;

	if (!m)
		return -EINVAL;
	r = check_text(m, "episode note", note, false);
	if (r < 0)
		return r;
	st = mem_stmt(m, sql);
	if (!st)
		return mem_stmt_error(m);
	r = mem_tx_begin(m);
	if (r < 0)
		return r;
	/* Read them all first: the updates below must not run under an open SELECT. */
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct mem_episode *e = episode_from_row(st);

		if (!e || ptrs_push(&open, e) < 0) {
			free(e);
			r = mem_error(m, -ENOMEM, "cannot copy open episodes");
			goto fail;
		}
	}
	if (rc != SQLITE_DONE) {
		r = mem_sql_error(m, rc, "cannot read open episodes");
		goto fail;
	}
	sqlite3_reset(st);
	for (size_t i = 0; i < open.n; i++) {
		r = episode_update(m, open.v[i], MEM_EPISODE_ABORTED, now, "homeostatd", note);
		if (r < 0)
			goto fail;
	}
	r = mem_tx_commit(m);
	if (r == 0)
		r = (int)open.n;
	ptrs_free(&open);
	return r;
fail:
	mem_tx_rollback(m);
	ptrs_free(&open);
	return r;
}

int mem_episodes(struct mem *m, int limit, bool open_only,
		 int (*cb)(const struct mem_episode *e, void *ud), void *ud)
{
	/* Two statements, so that the open ones come from their partial index. */
	static const char sql_all[] =
	    "SELECT " EPISODE_COLUMNS " FROM episodes e ORDER BY e.id DESC LIMIT ?1";
	static const char sql_open[] = "SELECT " EPISODE_COLUMNS " FROM episodes e"
				       " WHERE e.ended_at IS NULL ORDER BY e.id DESC LIMIT ?1";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	struct ptrs rows = {0};
	int rc, r = 0;

	if (!m || !cb)
		return -EINVAL;
	st = mem_stmt(m, open_only ? sql_open : sql_all);
	if (!st)
		return mem_stmt_error(m);
	sqlite3_bind_int(st, 1, limit > 0 ? limit : -1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct mem_episode *e = episode_from_row(st);

		if (!e || ptrs_push(&rows, e) < 0) {
			free(e);
			r = mem_error(m, -ENOMEM, "cannot copy episode");
			break;
		}
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = mem_sql_error(m, rc, "cannot read episodes");
	sqlite3_reset(st);
	for (size_t i = 0; r == 0 && i < rows.n; i++) {
		int k = cb(rows.v[i], ud);

		if (k < 0)
			r = k;
	}
	if (r == 0)
		r = (int)rows.n;
	ptrs_free(&rows);
	return r;
}

/* Diagnoses */

int64_t mem_diagnosis_add(struct mem *m, int64_t episode_id, int64_t now, const char *kind,
			  const char *summary, const void *text, size_t len)
{
	static const char sql_episode[] = "SELECT runbook FROM episodes WHERE id = ?1";
	static const char sql[] = "INSERT INTO diagnoses (episode_id, at, kind, summary,"
				  " raw_size, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
	_cleanup_stmt_ sqlite3_stmt *ep = NULL, *st = NULL;
	_cleanup_free_ Bytef *z = NULL;
	_cleanup_free_ char *detail = NULL, *actor = NULL;
	uLongf zlen;
	int64_t id, seq;
	int rc, zr, r;

	if (!m)
		return -EINVAL;
	if (!text && len)
		return mem_error(m, -EINVAL, "diagnosis of %zu bytes without text", len);
	r = check_text(m, "diagnosis kind", kind, true);
	if (r == 0)
		r = check_text(m, "diagnosis summary", summary, false);
	if (r < 0)
		return r;
	if (len > MEM_DIAGNOSIS_MAX)
		return mem_error(m, -E2BIG, "diagnosis '%s' of %zu bytes, the most is %d", kind,
				 len, MEM_DIAGNOSIS_MAX);
	zlen = compressBound(len);
	z = malloc(zlen);
	if (!z)
		return mem_error(m, -ENOMEM, "cannot allocate %lu bytes to compress a diagnosis",
				 (unsigned long)zlen);
	zr = compress2(z, &zlen, text ? text : (const void *)"", len, DIAGNOSIS_ZLEVEL);
	if (zr != Z_OK)
		return mem_error(m, zr == Z_MEM_ERROR ? -ENOMEM : -EIO,
				 "cannot compress diagnosis '%s': zlib error %d", kind, zr);
	ep = mem_stmt(m, sql_episode);
	st = mem_stmt(m, sql);
	if (!ep || !st)
		return mem_stmt_error(m);

	r = mem_tx_begin(m);
	if (r < 0)
		return r;
	sqlite3_bind_int64(ep, 1, episode_id);
	rc = sqlite3_step(ep);
	if (rc == SQLITE_DONE) {
		r = mem_error(m, -ENOENT, "no episode %" PRId64, episode_id);
		goto fail;
	}
	if (rc != SQLITE_ROW) {
		r = mem_sql_error(m, rc, "cannot read episode");
		goto fail;
	}
	if (asprintf(&actor, "runbook:%s", col_text(ep, 0)) < 0) {
		actor = NULL;
		r = mem_error(m, -ENOMEM, "cannot format audit actor");
		goto fail;
	}
	sqlite3_reset(ep);
	sqlite3_bind_int64(st, 1, episode_id);
	sqlite3_bind_int64(st, 2, now);
	mem_bind_text(st, 3, kind);
	mem_bind_text(st, 4, summary);
	sqlite3_bind_int64(st, 5, (int64_t)len);
	sqlite3_bind_blob(st, 6, z, (int)zlen, SQLITE_STATIC);
	r = mem_step_done(m, st, "cannot insert diagnosis");
	if (r < 0)
		goto fail;
	id = sqlite3_last_insert_rowid(m->db);
	if (asprintf(&detail,
		     "diagnosis %" PRId64 " of episode %" PRId64 ": %s%s%s (%zu bytes, %lu stored)",
		     id, episode_id, kind, summary && *summary ? ": " : "", summary ?: "", len,
		     (unsigned long)zlen) < 0) {
		detail = NULL;
		r = mem_error(m, -ENOMEM, "cannot format audit detail");
		goto fail;
	}
	seq = mem_audit_insert(m, actor, "diagnosis.add", 0, detail);
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

int mem_diagnosis_get(struct mem *m, int64_t id, char **text, size_t *len, char **kind,
		      char **summary)
{
	static const char sql[] =
	    "SELECT kind, summary, raw_size, data FROM diagnoses WHERE id = ?1";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ char *buf = NULL, *k = NULL, *s = NULL;
	const void *blob;
	int64_t raw;
	uLongf dlen;
	int rc, zr;

	if (kind)
		*kind = NULL;
	if (summary)
		*summary = NULL;
	if (!text || !len)
		return -EINVAL;
	*text = NULL;
	*len = 0;
	if (!m)
		return -EINVAL;
	st = mem_stmt(m, sql);
	if (!st)
		return mem_stmt_error(m);
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return mem_error(m, -ENOENT, "no diagnosis %" PRId64, id);
	if (rc != SQLITE_ROW)
		return mem_sql_error(m, rc, "cannot read diagnosis");
	raw = sqlite3_column_int64(st, 2);
	if (raw < 0 || raw > MEM_DIAGNOSIS_MAX)
		return mem_error(m, -EBADMSG, "diagnosis %" PRId64 " has a size of %" PRId64, id,
				 raw);
	buf = malloc((size_t)raw + 1);
	k = strdup(col_text(st, 0));
	s = strdup(col_text(st, 1));
	if (!buf || !k || !s)
		return mem_error(m, -ENOMEM, "cannot allocate diagnosis %" PRId64, id);
	blob = sqlite3_column_blob(st, 3);
	dlen = (uLongf)raw;
	zr = uncompress((Bytef *)buf, &dlen, blob ? blob : (const void *)"",
			(uLong)sqlite3_column_bytes(st, 3));
	if (zr == Z_MEM_ERROR)
		return mem_error(m, -ENOMEM, "cannot decompress diagnosis %" PRId64, id);
	if (zr != Z_OK || dlen != (uLongf)raw)
		return mem_error(m, -EBADMSG,
				 "diagnosis %" PRId64 " does not decompress to its %" PRId64
				 " bytes (zlib %d, %lu bytes)",
				 id, raw, zr, (unsigned long)dlen);
	buf[raw] = '\0';
	*text = TAKE_PTR(buf);
	*len = (size_t)raw;
	if (kind)
		*kind = TAKE_PTR(k);
	if (summary)
		*summary = TAKE_PTR(s);
	return 0;
}

/* One row of mem_diagnoses(), its two strings after it in the same allocation. */
struct diag_row {
	int64_t id, at;
	size_t raw_size, stored_size;
	const char *kind, *summary;
};

int mem_diagnoses(struct mem *m, int64_t episode_id,
		  int (*cb)(int64_t id, int64_t at, const char *kind, const char *summary,
			    size_t raw_size, size_t stored_size, void *ud),
		  void *ud)
{
	static const char sql[] = "SELECT id, at, kind, summary, raw_size, length(data)"
				  " FROM diagnoses WHERE episode_id = ?1 ORDER BY id";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	struct ptrs rows = {0};
	int rc, r = 0;

	if (!m || !cb)
		return -EINVAL;
	st = mem_stmt(m, sql);
	if (!st)
		return mem_stmt_error(m);
	sqlite3_bind_int64(st, 1, episode_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *kind = col_text(st, 2), *summary = col_text(st, 3);
		size_t lk = strlen(kind) + 1, ls = strlen(summary) + 1;
		struct diag_row *d = calloc(1, sizeof(*d) + lk + ls);

		if (!d || ptrs_push(&rows, d) < 0) {
			free(d);
			r = mem_error(m, -ENOMEM, "cannot copy diagnosis");
			break;
		}
		d->id = sqlite3_column_int64(st, 0);
		d->at = sqlite3_column_int64(st, 1);
		d->kind = memcpy((char *)(d + 1), kind, lk);
		d->summary = memcpy((char *)(d + 1) + lk, summary, ls);
		d->raw_size = (size_t)sqlite3_column_int64(st, 4);
		d->stored_size = (size_t)sqlite3_column_int64(st, 5);
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = mem_sql_error(m, rc, "cannot read diagnoses");
	sqlite3_reset(st);
	for (size_t i = 0; r == 0 && i < rows.n; i++) {
		const struct diag_row *d = rows.v[i];
		int k = cb(d->id, d->at, d->kind, d->summary, d->raw_size, d->stored_size, ud);

		if (k < 0)
			r = k;
	}
	if (r == 0)
		r = (int)rows.n;
	ptrs_free(&rows);
	return r;
}
