/* approvals.c - changes that wait for an operator: request, decide, expire, list.
 *
 * Why: some action classes need a human's yes (policy). The request, the decision and the
 * change's state move together in one transaction, so that a change is never APPROVED without
 * an approval row that says by whom and when.
 *
 * Invariants: one approval per change (UNIQUE change_id), so the id an operator types is the
 * change id. Only a PENDING approval whose expires_at is still ahead can be decided; one that
 * expired is denied (approval EXPIRED, change DENIED), never approved late.
 */
#include "lib/log.h"
#include "memory/internal.h"

static const char *col_text(sqlite3_stmt *st, int col)
{
	const char *s = (const char *)sqlite3_column_text(st, col);

	return s ? s : "";
}

int64_t mem_approval_request(struct mem *m, int64_t change_id, int64_t expires_at)
{
	static const char sql_state[] = "SELECT state FROM changes WHERE id = ?1";
	static const char sql_insert[] = "INSERT INTO approvals (change_id, state, requested_at,"
					 " expires_at) VALUES (?1, 'PENDING', ?2, ?3)";
	_cleanup_stmt_ sqlite3_stmt *st = NULL, *ins = NULL;
	char note[96];
	int64_t id, now;
	int rc, r;

	if (!m)
		return -EINVAL;
	st = mem_stmt(m, sql_state);
	ins = mem_stmt(m, sql_insert);
	if (!st || !ins)
		return mem_stmt_error(m);
	r = mem_tx_begin(m);
	if (r < 0)
		return r;
	now = mem_now(m);
	if (expires_at <= now) {
		r = mem_error(m, -EINVAL, "approval of %" PRId64 " would expire before it is asked",
			      change_id);
		goto fail;
	}
	sqlite3_bind_int64(st, 1, change_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = mem_error(m, -ENOENT, "no change %" PRId64, change_id);
		goto fail;
	}
	if (rc != SQLITE_ROW) {
		r = mem_sql_error(m, rc, "cannot read change state");
		goto fail;
	}
	if (!streq(col_text(st, 0), "PROPOSED")) {
		r = mem_error(m, -EINVAL,
			      "change %" PRId64 " is %s: only a PROPOSED change can await approval",
			      change_id, col_text(st, 0));
		goto fail;
	}
	sqlite3_reset(st);
	sqlite3_bind_int64(ins, 1, change_id);
	sqlite3_bind_int64(ins, 2, now);
	sqlite3_bind_int64(ins, 3, expires_at);
	r = mem_step_done(m, ins, "cannot insert approval");
	if (r < 0)
		goto fail;
	id = sqlite3_last_insert_rowid(m->db);
	snprintf(note, sizeof(note), "approval %" PRId64 " expires in %" PRId64 " s", id,
		 (expires_at - now) / 1000);
	r = mem_change_move(m, change_id, MEM_STATE_PROPOSED, MEM_STATE_PENDING_APPROVAL,
			    "homeostatd", note);
	if (r < 0)
		goto fail;
	r = mem_tx_commit(m);
	if (r < 0)
		return r;
	return id;
fail:
	mem_tx_rollback(m);
	return r;
}

int mem_approval_decide(struct mem *m, int64_t change_id, bool approve, const char *by)
{
	static const char sql_get[] =
	    "SELECT id, state, expires_at FROM approvals WHERE change_id = ?1";
	static const char sql_set[] = "UPDATE approvals SET state = ?1, decided_at = ?2,"
				      " decided_by = ?3 WHERE id = ?4 AND state = 'PENDING'";
	_cleanup_stmt_ sqlite3_stmt *st = NULL, *upd = NULL;
	int64_t aid, now;
	int rc, r;

	if (!m)
		return -EINVAL;
	if (!by || !*by)
		return mem_error(m, -EINVAL, "decision on %" PRId64 " needs who decided",
				 change_id);
	if (strlen(by) > 256)
		return mem_error(m, -E2BIG, "decider name longer than 256 bytes");
	st = mem_stmt(m, sql_get);
	upd = mem_stmt(m, sql_set);
	if (!st || !upd)
		return mem_stmt_error(m);
	r = mem_tx_begin(m);
	if (r < 0)
		return r;
	now = mem_now(m);
	sqlite3_bind_int64(st, 1, change_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = mem_error(m, -ENOENT, "no approval for change %" PRId64, change_id);
		goto fail;
	}
	if (rc != SQLITE_ROW) {
		r = mem_sql_error(m, rc, "cannot read approval");
		goto fail;
	}
	aid = sqlite3_column_int64(st, 0);
	if (!streq(col_text(st, 1), "PENDING")) {
		r = mem_error(m, -EALREADY, "approval of change %" PRId64 " is already %s",
			      change_id, col_text(st, 1));
		goto fail;
	}
	if (sqlite3_column_int64(st, 2) <= now) {
		r = mem_error(m, -ETIMEDOUT, "approval of change %" PRId64 " has expired",
			      change_id);
		goto fail;
	}
	sqlite3_reset(st);
	sqlite3_bind_text(upd, 1, approve ? "APPROVED" : "REJECTED", -1, SQLITE_STATIC);
	sqlite3_bind_int64(upd, 2, now);
	sqlite3_bind_text(upd, 3, by, -1, SQLITE_STATIC);
	sqlite3_bind_int64(upd, 4, aid);
	r = mem_step_done(m, upd, "cannot update approval");
	if (r < 0)
		goto fail;
	r = mem_change_move(m, change_id, MEM_STATE_PENDING_APPROVAL,
			    approve ? MEM_STATE_APPROVED : MEM_STATE_DENIED, by,
			    approve ? "approved" : "rejected");
	if (r < 0)
		goto fail;
	return mem_tx_commit(m);
fail:
	mem_tx_rollback(m);
	return r;
}

int mem_approvals_expire(struct mem *m, int64_t now)
{
	static const char sql_due[] = "SELECT id, change_id FROM approvals"
				      " WHERE state = 'PENDING' AND expires_at <= ?1 ORDER BY id";
	static const char sql_set[] = "UPDATE approvals SET state = 'EXPIRED', decided_at = ?1"
				      " WHERE id = ?2 AND state = 'PENDING'";
	_cleanup_stmt_ sqlite3_stmt *st = NULL, *upd = NULL;
	_cleanup_free_ int64_t *ids = NULL;
	size_t n = 0, cap = 0;
	int rc, r;

	if (!m)
		return -EINVAL;
	st = mem_stmt(m, sql_due);
	upd = mem_stmt(m, sql_set);
	if (!st || !upd)
		return mem_stmt_error(m);
	r = mem_tx_begin(m);
	if (r < 0)
		return r;
	/* Read the due ones first: the updates below must not run under an open SELECT. */
	sqlite3_bind_int64(st, 1, now);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n + 2 > cap) {
			size_t c = cap ? cap * 2 : 16;
			int64_t *v = realloc(ids, c * sizeof(*v));

			if (!v) {
				r = mem_error(m, -ENOMEM, "cannot grow approval list");
				goto fail;
			}
			ids = v;
			cap = c;
		}
		ids[n++] = sqlite3_column_int64(st, 0);
		ids[n++] = sqlite3_column_int64(st, 1);
	}
	if (rc != SQLITE_DONE) {
		r = mem_sql_error(m, rc, "cannot read due approvals");
		goto fail;
	}
	sqlite3_reset(st);
	for (size_t i = 0; i < n; i += 2) {
		sqlite3_bind_int64(upd, 1, now);
		sqlite3_bind_int64(upd, 2, ids[i]);
		r = mem_step_done(m, upd, "cannot expire approval");
		if (r < 0)
			goto fail;
		r = mem_change_move(m, ids[i + 1], MEM_STATE_PENDING_APPROVAL, MEM_STATE_DENIED,
				    "homeostatd", "approval expired");
		if (r < 0)
			goto fail;
	}
	r = mem_tx_commit(m);
	if (r < 0)
		return r;
	return (int)(n / 2);
fail:
	mem_tx_rollback(m);
	return r;
}

struct pending {
	struct mem_approval a;
	struct mem_change *c;
};

int mem_approvals_pending(struct mem *m,
			  int (*cb)(const struct mem_approval *a, const struct mem_change *c,
				    void *ud),
			  void *ud)
{
	static const char sql[] =
	    "SELECT " MEM_CHANGE_COLUMNS ", a.id, a.requested_at, a.expires_at"
	    " FROM approvals a JOIN changes c ON c.id = a.change_id"
	    " WHERE a.state = 'PENDING' ORDER BY a.id";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	struct pending *v = NULL;
	size_t n = 0, cap = 0;
	int rc, r = 0;

	if (!m || !cb)
		return -EINVAL;
	st = mem_stmt(m, sql);
	if (!st)
		return mem_stmt_error(m);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct pending *p;
		int col = MEM_CHANGE_NCOLUMNS;

		if (n == cap) {
			size_t c = cap ? cap * 2 : 8;
			struct pending *nv = realloc(v, c * sizeof(*nv));

			if (!nv) {
				r = mem_error(m, -ENOMEM, "cannot grow approval list");
				break;
			}
			v = nv;
			cap = c;
		}
		p = &v[n];
		p->c = mem_change_from_row(st, 0);
		if (!p->c) {
			r = mem_error(m, -ENOMEM, "cannot copy change");
			break;
		}
		p->a = (struct mem_approval){
		    .id = sqlite3_column_int64(st, col),
		    .change_id = p->c->id,
		    .state = MEM_APPROVAL_PENDING,
		    .requested_at = sqlite3_column_int64(st, col + 1),
		    .expires_at = sqlite3_column_int64(st, col + 2),
		    .decided_by = "",
		};
		n++;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = mem_sql_error(m, rc, "cannot read approvals");
	sqlite3_reset(st);
	for (size_t i = 0; r == 0 && i < n; i++) {
		int k = cb(&v[i].a, v[i].c, ud);

		if (k < 0)
			r = k;
	}
	if (r == 0)
		r = (int)n;
	for (size_t i = 0; i < n; i++)
		free(v[i].c);
	free(v);
	return r;
}
