/* test_memory.c - unit tests of agent/memory/: schema and migrations, the change state
 * machine, the audit trail, approvals, fingerprints and should_attempt, history, episodes and
 * their diagnoses, a change's episode and act, an outcome's metrics and summary.
 *
 * No root needed: each test gets a fresh directory under /tmp and a fake clock, so that every
 * id, state, timestamp and audit row can be asserted exactly. A second, raw sqlite connection
 * plays the part of someone tampering with the file.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <cmocka.h>

#include "memory/internal.h"
#include "memory/memory.h"

struct fixture {
	char dir[64];
	char path[128];
	struct mem *m;
	int64_t now;
};

static int64_t fake_clock(void *ud)
{
	return ((struct fixture *)ud)->now;
}

static void remove_db(struct fixture *f)
{
	char p[160];

	unlink(f->path);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->path);
	unlink(p);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_memory.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/memory.db", f->dir);
	f->now = 1000;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	mem_close(f->m);
	remove_db(f);
	rmdir(f->dir);
	free(f);
	return 0;
}

static struct mem *open_db(struct fixture *f)
{
	assert_int_equal(mem_open(f->path, &f->m), 0);
	mem_set_clock(f->m, fake_clock, f);
	return f->m;
}

/* Runs sql on a raw connection; returns the sqlite result code and copies the message. */
static int raw_exec(const char *path, const char *sql, char *msg, size_t size)
{
	sqlite3 *db;
	char *err = NULL;
	int rc;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	rc = sqlite3_exec(db, sql, NULL, NULL, &err);
	if (msg)
		snprintf(msg, size, "%s", err ? err : "");
	sqlite3_free(err);
	sqlite3_close(db);
	return rc;
}

/* First column of the first row of sql, as text ("" if none). */
static void raw_query(const char *path, const char *sql, char *out, size_t size)
{
	sqlite3 *db;
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	out[0] = '\0';
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(out, size, "%s", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* All audit rows as "seq|at|actor|event|change_id|detail" lines. */
static void audit_dump(const char *path, char *out, size_t size)
{
	raw_query(path,
		  "SELECT group_concat(seq || '|' || at || '|' || actor || '|' || event || '|' ||"
		  " coalesce(change_id, '-') || '|' || detail, char(10)) FROM"
		  " (SELECT * FROM audit ORDER BY seq)",
		  out, size);
}

static const struct mem_change somaxconn = {
    .kind = MEM_KIND_SYSCTL,
    .target = "web",
    .knob = "net.core.somaxconn",
    .before = "4096",
    .after = "1000",
    .why = "listen queue overflows 120/s; runbook accept-queue: raise the backlog",
    .source = "runbook:accept-queue",
    .revert = "sysctl -w net.core.somaxconn=4096",
};

/* Schema */

static void test_open_creates_schema(void **state)
{
	struct fixture *f = *state;
	char out[256];
	struct stat stb;
	sqlite3_stmt *st;
	mode_t old = umask(0);

	open_db(f);
	umask(old);
	assert_int_equal(mem_schema_version(f->m), MEM_SCHEMA_VERSION);
	assert_int_equal(MEM_SCHEMA_VERSION, 3);
	assert_string_equal(mem_last_error(f->m), "");
	assert_int_equal(stat(f->path, &stb), 0);
	assert_int_equal(stb.st_mode & 07777, 0600);
	raw_query(f->path, "PRAGMA journal_mode", out, sizeof(out));
	assert_string_equal(out, "wal");
	/* Per-connection settings, read on the library's own connection: FULL (2), ON (1). */
	assert_int_equal(sqlite3_prepare_v2(f->m->db,
					    "SELECT synchronous || ',' || foreign_keys"
					    " FROM pragma_synchronous, pragma_foreign_keys",
					    -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "2,1");
	sqlite3_finalize(st);
	raw_query(f->path,
		  "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master"
		  " WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name)",
		  out, sizeof(out));
	assert_string_equal(out, "approvals,audit,changes,diagnoses,episodes,fitness,outcomes");
	raw_query(f->path,
		  "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master"
		  " WHERE type = 'trigger' ORDER BY name)",
		  out, sizeof(out));
	assert_string_equal(out, "approvals_no_delete,audit_no_delete,audit_no_update,"
				 "changes_no_delete,diagnoses_no_delete,diagnoses_no_update,"
				 "episodes_ended_final,episodes_identity,episodes_no_delete,"
				 "outcomes_no_delete,outcomes_no_update");

	/* Reopening keeps the version and the data. */
	assert_int_equal(mem_change_intent(f->m, &somaxconn), 1);
	mem_close(f->m);
	open_db(f);
	assert_int_equal(mem_schema_version(f->m), MEM_SCHEMA_VERSION);
	assert_int_equal(mem_change_intent(f->m, &somaxconn), 2);
}

static void test_newer_database_refused(void **state)
{
	struct fixture *f = *state;
	struct mem *m = (struct mem *)0x1;

	open_db(f);
	mem_close(f->m);
	f->m = NULL;
	assert_int_equal(raw_exec(f->path, "PRAGMA user_version = 4", NULL, 0), SQLITE_OK);
	assert_int_equal(mem_open(f->path, &m), -EPROTO);
	assert_null(m);
}

static void test_open_refuses_symlink(void **state)
{
	struct fixture *f = *state;
	struct mem *m = NULL;
	char link[160];

	snprintf(link, sizeof(link), "%s/link.db", f->dir);
	assert_int_equal(symlink("/tmp/nonexistent-homeostat.db", link), 0);
	assert_int_equal(mem_open(link, &m), -ELOOP);
	assert_null(m);
	unlink(link);
}

static void test_migration_mechanism(void **state)
{
	struct fixture *f = *state;
	const struct mem_migration four[] = {
	    mem_migrations[0],
	    mem_migrations[1],
	    mem_migrations[2],
	    {4, "CREATE TABLE later (at INTEGER NOT NULL, target TEXT, value REAL)"},
	};
	const struct mem_migration broken[] = {
	    mem_migrations[0],
	    {2, "CREATE TABLE half (a INTEGER); CREATE TABL oops (b)"},
	};
	const struct mem_migration gap[] = {mem_migrations[0], {3, "SELECT 1"}};
	struct mem *m = NULL;
	char out[64];

	/* A failing migration leaves the database exactly at the version before it. */
	assert_int_equal(mem_open_migrations(f->path, broken, 2, &m), -EIO);
	assert_null(m);
	raw_query(f->path, "PRAGMA user_version", out, sizeof(out));
	assert_string_equal(out, "1");
	raw_query(f->path, "SELECT count(*) FROM sqlite_master WHERE name = 'half'", out,
		  sizeof(out));
	assert_string_equal(out, "0");

	assert_int_equal(mem_open_migrations(f->path, gap, 2, &m), -EINVAL);
	assert_null(m);

	/* Version 1 -> 4 by the newer list, then the older code refuses it. */
	assert_int_equal(mem_open_migrations(f->path, four, 4, &m), 0);
	assert_int_equal(mem_schema_version(m), 4);
	mem_close(m);
	raw_query(f->path, "SELECT count(*) FROM sqlite_master WHERE name = 'later'", out,
		  sizeof(out));
	assert_string_equal(out, "1");
	assert_int_equal(mem_open(f->path, &m), -EPROTO);
	assert_null(m);
	/* The same list again migrates nothing. */
	assert_int_equal(mem_open_migrations(f->path, four, 4, &m), 0);
	assert_int_equal(mem_schema_version(m), 4);
	mem_close(m);
}

/* Changes */

static void test_intent_applied_kept(void **state)
{
	struct fixture *f = *state;
	_cleanup_(mem_change_freep) struct mem_change *c = NULL;
	_cleanup_free_ struct mem_outcome *latest = NULL;
	struct mem_outcome o = {
	    .change_id = 1,
	    .fitness_before = 0.5,
	    .fitness_after = 0.75,
	    .verdict = MEM_VERDICT_KEEP,
	    .stats_json = "{\"test\":\"mann-whitney-u\",\"n_canary\":120,\"p\":0.003}",
	    .result = MEM_RESULT_DEPLOYED,
	};
	char expect[256], kernel[MEM_KERNEL_MAX], class[MEM_HOST_CLASS_MAX];
	char audit[2048];

	open_db(f);
	assert_int_equal(mem_change_intent(f->m, &somaxconn), 1);
	assert_int_equal(mem_change_get(f->m, 1, &c), 0);
	assert_int_equal(c->id, 1);
	assert_int_equal(c->state, MEM_STATE_INTENT);
	assert_int_equal(c->kind, MEM_KIND_SYSCTL);
	assert_int_equal(c->created_at, 1000);
	assert_int_equal(c->updated_at, 1000);
	assert_int_equal(c->acted_at, 1000);
	assert_string_equal(c->target, "web");
	assert_string_equal(c->knob, "net.core.somaxconn");
	assert_string_equal(c->before, "4096");
	assert_string_equal(c->after, "1000");
	assert_string_equal(c->source, "runbook:accept-queue");
	assert_string_equal(c->revert, "sysctl -w net.core.somaxconn=4096");
	assert_string_equal(c->why, somaxconn.why);
	assert_int_equal(mem_host_kernel(kernel, sizeof(kernel)), 0);
	assert_int_equal(mem_host_class(class, sizeof(class)), 0);
	snprintf(expect, sizeof(expect), "sysctl|web|net.core.somaxconn|v2^9|%s|%s", kernel, class);
	assert_string_equal(c->fingerprint, expect);
	mem_change_free(TAKE_PTR(c));

	f->now = 2000;
	assert_int_equal(
	    mem_change_set_state(f->m, 1, MEM_STATE_APPLIED, "homeostatd", "canary started, 60 s"),
	    0);
	assert_int_equal(mem_outcome_latest(f->m, 1, &latest), -ENOENT);
	f->now = 3000;
	assert_int_equal(mem_outcome_record(f->m, &o, "judge"), 1);
	assert_int_equal(mem_change_get(f->m, 1, &c), 0);
	assert_int_equal(c->state, MEM_STATE_KEPT);
	assert_int_equal(c->created_at, 1000);
	assert_int_equal(c->updated_at, 3000);
	assert_int_equal(c->acted_at, 1000);

	assert_int_equal(mem_outcome_latest(f->m, 1, &latest), 0);
	assert_int_equal(latest->id, 1);
	assert_int_equal(latest->change_id, 1);
	assert_int_equal(latest->at, 3000);
	assert_true(latest->fitness_before == 0.5);
	assert_true(latest->fitness_after == 0.75);
	assert_int_equal(latest->verdict, MEM_VERDICT_KEEP);
	assert_int_equal(latest->result, MEM_RESULT_DEPLOYED);
	assert_string_equal(latest->stats_json, o.stats_json);
	assert_string_equal(latest->failure_reason, "");

	audit_dump(f->path, audit, sizeof(audit));
	assert_string_equal(audit,
			    "1|1000|runbook:accept-queue|change.intent|1|sysctl net.core.somaxconn "
			    "of 'web': '4096' -> '1000' (revert: sysctl -w "
			    "net.core.somaxconn=4096)\n"
			    "2|2000|homeostatd|change.applied|1|canary started, 60 s\n"
			    "3|3000|judge|change.kept|1|verdict KEEP, result DEPLOYED, fitness 0.5 "
			    "-> 0.75");
}

static void test_illegal_transitions(void **state)
{
	struct fixture *f = *state;
	struct mem_outcome o = {
	    .change_id = 1,
	    .fitness_before = NAN,
	    .fitness_after = NAN,
	    .verdict = MEM_VERDICT_KEEP,
	    .result = MEM_RESULT_DEPLOYED,
	};
	_cleanup_(mem_change_freep) struct mem_change *c = NULL;
	char out[64];

	open_db(f);
	assert_int_equal(mem_change_intent(f->m, &somaxconn), 1);
	assert_int_equal(mem_change_set_state(f->m, 1, MEM_STATE_APPLIED, "homeostatd", NULL), 0);
	assert_int_equal(mem_outcome_record(f->m, &o, "judge"), 1);

	assert_int_equal(mem_change_set_state(f->m, 1, MEM_STATE_INTENT, "homeostatd", NULL),
			 -EINVAL);
	assert_string_equal(mem_last_error(f->m), "change 1 cannot go from KEPT to INTENT");
	assert_int_equal(mem_change_set_state(f->m, 1, MEM_STATE_APPLIED, "homeostatd", NULL),
			 -EINVAL);
	assert_int_equal(mem_change_set_state(f->m, 99, MEM_STATE_APPLIED, "homeostatd", NULL),
			 -ENOENT);
	assert_string_equal(mem_last_error(f->m), "no change 99");
	assert_int_equal(mem_change_set_state(f->m, 1, MEM_STATE_ROLLED_BACK, "", NULL), -EINVAL);
	assert_int_equal(mem_change_get(f->m, 1, &c), 0);
	assert_int_equal(c->state, MEM_STATE_KEPT);
	raw_query(f->path, "SELECT count(*) FROM audit", out, sizeof(out));
	assert_string_equal(out, "3");

	/* An operator may still roll a KEPT change back; then it is final. */
	assert_int_equal(
	    mem_change_set_state(f->m, 1, MEM_STATE_ROLLED_BACK, "uid:0", "operator rollback"), 0);
	assert_int_equal(mem_change_set_state(f->m, 1, MEM_STATE_KEPT, "homeostatd", NULL),
			 -EINVAL);

	/* Only the approval functions move a change into PENDING_APPROVAL. */
	assert_int_equal(mem_change_record(f->m, &somaxconn, MEM_STATE_PROPOSED, "dry run"), 2);
	assert_int_equal(
	    mem_change_set_state(f->m, 2, MEM_STATE_PENDING_APPROVAL, "homeostatd", NULL), -EINVAL);
	assert_int_equal(mem_change_record(f->m, &somaxconn, MEM_STATE_KEPT, NULL), -EINVAL);
	/* An outcome for a change that never started is refused. */
	o.change_id = 2;
	assert_int_equal(mem_outcome_record(f->m, &o, "judge"), -EINVAL);
	assert_string_equal(mem_last_error(f->m),
			    "change 2 in state PROPOSED cannot take result DEPLOYED");
	o.change_id = 42;
	assert_int_equal(mem_outcome_record(f->m, &o, "judge"), -ENOENT);

	assert_true(mem_transition_allowed(MEM_STATE_INTENT, MEM_STATE_APPLIED));
	assert_false(mem_transition_allowed(MEM_STATE_KEPT, MEM_STATE_INTENT));
	assert_false(mem_transition_allowed(MEM_STATE_PENDING_APPROVAL, MEM_STATE_APPROVED));
	assert_false(mem_transition_allowed(MEM_STATE_COUNT, MEM_STATE_INTENT));
}

static void test_bad_input(void **state)
{
	struct fixture *f = *state;
	struct mem_change c = somaxconn;
	struct mem_outcome o = {
	    .change_id = 1,
	    .verdict = MEM_VERDICT_KEEP,
	    .result = MEM_RESULT_DEPLOYED,
	    .stats_json = "{not json",
	};
	char out[64];

	open_db(f);
	c.target = "";
	assert_int_equal(mem_change_intent(f->m, &c), -EINVAL);
	assert_string_equal(mem_last_error(f->m), "change needs a non-empty target");
	c = somaxconn;
	c.kind = MEM_KIND_COUNT;
	assert_int_equal(mem_change_intent(f->m, &c), -EINVAL);
	assert_int_equal(mem_change_intent(f->m, &somaxconn), 1);
	assert_int_equal(mem_change_set_state(f->m, 1, MEM_STATE_APPLIED, "homeostatd", NULL), 0);
	/* Stats that are not a JSON object are refused, and nothing of the outcome is written. */
	assert_int_equal(mem_outcome_record(f->m, &o, "judge"), -EINVAL);
	assert_string_equal(mem_last_error(f->m),
			    "outcome stats are not a JSON object: '{not json'");
	o.stats_json = "[1, 2]";
	assert_int_equal(mem_outcome_record(f->m, &o, "judge"), -EINVAL);
	raw_query(f->path, "SELECT state FROM changes WHERE id = 1", out, sizeof(out));
	assert_string_equal(out, "APPLIED");
	raw_query(f->path, "SELECT count(*) FROM outcomes", out, sizeof(out));
	assert_string_equal(out, "0");
	/* The explicit fingerprint is kept as given. */
	c = somaxconn;
	c.fingerprint = "custom|fp";
	assert_int_equal(mem_change_intent(f->m, &c), 2);
	raw_query(f->path, "SELECT fingerprint FROM changes WHERE id = 2", out, sizeof(out));
	assert_string_equal(out, "custom|fp");
}

/* Audit */

static void test_audit_append_only(void **state)
{
	struct fixture *f = *state;
	char msg[256], out[256];

	open_db(f);
	assert_int_equal(mem_audit(f->m, "homeostatd", "daemon.start", 0, "version %d", 1), 1);
	assert_int_equal(mem_change_intent(f->m, &somaxconn), 1);
	f->now = 1500;
	assert_int_equal(mem_audit(f->m, "uid:0", "ctl.pause", 1, "paused by '%s'", "root"), 3);
	assert_int_equal(mem_audit(f->m, "uid:0", "ctl.pause", 77, "no such change"), -EINVAL);
	assert_int_equal(mem_audit(f->m, "", "x", 0, "no actor"), -EINVAL);

	assert_int_equal(
	    raw_exec(f->path, "UPDATE audit SET actor = 'mallory' WHERE seq = 1", msg, sizeof(msg)),
	    SQLITE_CONSTRAINT);
	assert_string_equal(msg, "audit is append-only");
	assert_int_equal(raw_exec(f->path, "DELETE FROM audit", msg, sizeof(msg)),
			 SQLITE_CONSTRAINT);
	assert_string_equal(msg, "audit is append-only");
	assert_int_equal(raw_exec(f->path, "DELETE FROM changes", msg, sizeof(msg)),
			 SQLITE_CONSTRAINT);
	assert_string_equal(msg, "changes are never deleted");
	raw_query(f->path, "SELECT count(*) || ':' || max(seq) FROM audit", out, sizeof(out));
	assert_string_equal(out, "3:3");
	audit_dump(f->path, out, sizeof(out));
	assert_string_equal(strrchr(out, '\n') + 1, "3|1500|uid:0|ctl.pause|1|paused by 'root'");
	assert_int_equal(strncmp(out, "1|1000|homeostatd|daemon.start|-|version 1\n", 41), 0);
}

/* Approvals */

static int64_t propose(struct fixture *f)
{
	return mem_change_record(f->m, &somaxconn, MEM_STATE_PROPOSED, "needs approval");
}

struct pending_seen {
	int n;
	int64_t ids[8];
	int64_t expires[8];
};

static int on_pending(const struct mem_approval *a, const struct mem_change *c, void *ud)
{
	struct pending_seen *s = ud;

	assert_int_equal(a->change_id, c->id);
	assert_int_equal(a->state, MEM_APPROVAL_PENDING);
	assert_int_equal(c->state, MEM_STATE_PENDING_APPROVAL);
	s->ids[s->n] = c->id;
	s->expires[s->n++] = a->expires_at;
	return 0;
}

static void test_approvals(void **state)
{
	struct fixture *f = *state;
	_cleanup_(mem_change_freep) struct mem_change *c = NULL;
	struct pending_seen seen = {0};
	struct mem_counts counts;
	char out[1024];

	open_db(f);
	assert_int_equal(propose(f), 1);
	assert_int_equal(propose(f), 2);
	assert_int_equal(propose(f), 3);
	assert_int_equal(mem_change_intent(f->m, &somaxconn), 4);
	assert_int_equal(mem_approval_request(f->m, 1, 10000), 1);
	assert_int_equal(mem_approval_request(f->m, 2, 10000), 2);
	assert_int_equal(mem_approval_request(f->m, 3, 5000), 3);
	assert_int_equal(mem_approval_request(f->m, 3, 5000), -EINVAL);
	assert_string_equal(
	    mem_last_error(f->m),
	    "change 3 is PENDING_APPROVAL: only a PROPOSED change can await approval");
	assert_int_equal(mem_approval_request(f->m, 4, 5000), -EINVAL);
	assert_int_equal(mem_approval_request(f->m, 9, 5000), -ENOENT);

	assert_int_equal(mem_approvals_pending(f->m, on_pending, &seen), 3);
	assert_int_equal(seen.ids[0], 1);
	assert_int_equal(seen.ids[2], 3);
	assert_int_equal(seen.expires[2], 5000);
	assert_int_equal(mem_counts(f->m, f->now, &counts), 0);
	assert_int_equal(counts.pending_approvals, 3);

	/* approve */
	f->now = 2000;
	assert_int_equal(mem_approval_decide(f->m, 1, true, "alice"), 0);
	assert_int_equal(mem_change_get(f->m, 1, &c), 0);
	assert_int_equal(c->state, MEM_STATE_APPROVED);
	mem_change_free(TAKE_PTR(c));
	raw_query(f->path,
		  "SELECT state || '|' || decided_at || '|' || decided_by FROM approvals"
		  " WHERE change_id = 1",
		  out, sizeof(out));
	assert_string_equal(out, "APPROVED|2000|alice");
	assert_int_equal(mem_approval_decide(f->m, 1, false, "bob"), -EALREADY);
	assert_string_equal(mem_last_error(f->m), "approval of change 1 is already APPROVED");
	assert_int_equal(mem_change_set_state(f->m, 1, MEM_STATE_INTENT, "homeostatd", NULL), 0);

	/* reject */
	assert_int_equal(mem_approval_decide(f->m, 2, false, "bob"), 0);
	assert_int_equal(mem_change_get(f->m, 2, &c), 0);
	assert_int_equal(c->state, MEM_STATE_DENIED);
	mem_change_free(TAKE_PTR(c));
	assert_int_equal(mem_approval_decide(f->m, 2, true, "alice"), -EALREADY);
	assert_int_equal(mem_approval_decide(f->m, 4, true, "alice"), -ENOENT);
	assert_int_equal(mem_approval_decide(f->m, 3, true, ""), -EINVAL);

	/* expire: too late to approve, then the sweep denies it */
	f->now = 5000;
	assert_int_equal(mem_approval_decide(f->m, 3, true, "alice"), -ETIMEDOUT);
	assert_string_equal(mem_last_error(f->m), "approval of change 3 has expired");
	assert_int_equal(mem_approvals_expire(f->m, 4999), 0);
	assert_int_equal(mem_approvals_expire(f->m, 5000), 1);
	assert_int_equal(mem_approvals_expire(f->m, 5000), 0);
	assert_int_equal(mem_change_get(f->m, 3, &c), 0);
	assert_int_equal(c->state, MEM_STATE_DENIED);
	raw_query(f->path,
		  "SELECT state || '|' || decided_at || '|' || decided_by FROM approvals"
		  " WHERE change_id = 3",
		  out, sizeof(out));
	assert_string_equal(out, "EXPIRED|5000|");
	assert_int_equal(mem_approval_decide(f->m, 3, true, "alice"), -EALREADY);
	assert_string_equal(mem_last_error(f->m), "approval of change 3 is already EXPIRED");

	seen.n = 0;
	assert_int_equal(mem_approvals_pending(f->m, on_pending, &seen), 0);
	raw_query(f->path,
		  "SELECT group_concat(actor || ' ' || event || ' ' || change_id || ' ' || detail,"
		  " ';') FROM (SELECT * FROM audit WHERE change_id = 3 ORDER BY seq)",
		  out, sizeof(out));
	assert_string_equal(out, "runbook:accept-queue change.proposed 3 sysctl net.core.somaxconn "
				 "of 'web': '4096' -> '1000' (revert: sysctl -w "
				 "net.core.somaxconn=4096): needs approval;homeostatd "
				 "change.pending_approval 3 approval 3 expires in 4 s;"
				 "homeostatd change.denied 3 approval expired");
}

/* Fingerprints and should_attempt */

static void assert_fp(const char *value, const char *bucket)
{
	struct mem_candidate c = {
	    .kind = MEM_KIND_SYSCTL,
	    .target = "web",
	    .knob = "net.core.somaxconn",
	    .value = value,
	    .kernel = "6.1",
	    .host_class = "x86_64-2cpu-8g",
	};
	char buf[256], expect[256];

	snprintf(expect, sizeof(expect), "sysctl|web|net.core.somaxconn|%s|6.1|x86_64-2cpu-8g",
		 bucket);
	assert_int_equal(mem_fingerprint(&c, buf, sizeof(buf)), 0);
	assert_string_equal(buf, expect);
}

static void test_fingerprint_buckets(void **state)
{
	struct mem_candidate c = {
	    .kind = MEM_KIND_SIGNAL,
	    .target = "a|b",
	    .knob = "SIGHUP",
	    .value = "",
	    .kernel = "6.1",
	    .host_class = "x86_64-2cpu-8g",
	};
	char buf[64];

	assert_fp("1000", "v2^9");
	assert_fp("1023", "v2^9");
	assert_fp("512", "v2^9");
	assert_fp("1024", "v2^10");
	assert_fp("1025", "v2^10");
	assert_fp("2047", "v2^10");
	assert_fp("1", "v2^0");
	assert_fp("0", "v0");
	assert_fp("+8", "v2^3");
	assert_fp("-5", "v-2^2");
	assert_fp("-20", "v-2^4");
	assert_fp("4096 87380 6291456", "v2^12,2^16,2^22");
	assert_fp("  4096\t87380 ", "v2^12,2^16");
	assert_fp("18446744073709551615", "v2^63");
	assert_fp("18446744073709551616", "=18446744073709551616");
	assert_fp("cubic", "=cubic");
	assert_fp("0.5", "=0.5");
	assert_fp("4096 max", "=4096 max");
	assert_fp("a|b%c\n", "=a%7Cb%25c%0A");
	assert_fp("", "=");
	assert_fp("-", "=-");

	assert_int_equal(mem_fingerprint(&c, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "signal|a%7Cb|SIGHUP|=|6.1|x86_64-2cpu-8g");
	assert_int_equal(mem_fingerprint(&c, buf, 20), -ENAMETOOLONG);
	assert_int_equal(strlen(buf), 19);
	c.kernel = NULL;
	assert_int_equal(mem_fingerprint(&c, buf, sizeof(buf)), -EINVAL);
	c.kernel = "6.1";
	c.kind = MEM_KIND_COUNT;
	assert_int_equal(mem_fingerprint(&c, buf, sizeof(buf)), -EINVAL);
}

static void test_should_attempt(void **state)
{
	struct fixture *f = *state;
	struct mem_candidate cand = {
	    .kind = MEM_KIND_SYSCTL,
	    .target = "web",
	    .knob = "net.core.somaxconn",
	    .value = "1023",
	};
	struct mem_outcome o = {
	    .change_id = 1,
	    .fitness_before = 0.8,
	    .fitness_after = 0.6,
	    .verdict = MEM_VERDICT_ROLLBACK,
	    .stats_json = "{\"test\":\"mann-whitney-u\",\"p\":0.001}",
	    .result = MEM_RESULT_ROLLED_BACK,
	    .failure_reason = "p99 latency +80ms",
	};
	struct mem_change c = somaxconn;
	char why[MEM_WHY_MAX], expect[MEM_WHY_MAX], fp[256];

	open_db(f);
	cand.kernel = f->m->kernel;
	cand.host_class = f->m->host_class;
	assert_int_equal(mem_fingerprint(&cand, fp, sizeof(fp)), 0);
	assert_int_equal(mem_should_attempt(f->m, &cand, why, sizeof(why)), 1);
	assert_string_equal(why, "");

	/* A change that is still running or was kept does not block. */
	assert_int_equal(mem_change_intent(f->m, &somaxconn), 1);
	assert_int_equal(mem_should_attempt(f->m, &cand, why, sizeof(why)), 1);
	assert_int_equal(mem_change_set_state(f->m, 1, MEM_STATE_APPLIED, "homeostatd", NULL), 0);
	f->now = 86400000 + 3000;
	assert_int_equal(mem_outcome_record(f->m, &o, "judge"), 1);

	assert_int_equal(mem_should_attempt(f->m, &cand, why, sizeof(why)), 0);
	snprintf(expect, sizeof(expect),
		 "change 1 (%s) failed on 1970-01-02 00:00:03 UTC: ROLLED_BACK, verdict "
		 "ROLLBACK: p99 latency +80ms",
		 fp);
	assert_string_equal(why, expect);
	assert_int_equal(mem_should_attempt(f->m, &cand, NULL, 0), 0);
	/* NULL kernel and host class mean this host's. */
	cand.kernel = NULL;
	cand.host_class = NULL;
	assert_int_equal(mem_should_attempt(f->m, &cand, why, sizeof(why)), 0);
	assert_string_equal(why, expect);
	cand.kernel = f->m->kernel;
	cand.host_class = f->m->host_class;

	/* Another bucket, another kernel, another target: go. */
	cand.value = "1025";
	assert_int_equal(mem_should_attempt(f->m, &cand, why, sizeof(why)), 1);
	cand.value = "1000";
	cand.kernel = "9.9";
	assert_int_equal(mem_should_attempt(f->m, &cand, why, sizeof(why)), 1);
	cand.kernel = f->m->kernel;
	cand.target = "db";
	assert_int_equal(mem_should_attempt(f->m, &cand, why, sizeof(why)), 1);

	/* A FAILED change without outcome blocks too, and the newest failure is named. */
	c.target = "db";
	c.after = "600";
	assert_int_equal(mem_change_intent(f->m, &c), 2);
	f->now = 86400000 + 60000;
	assert_int_equal(
	    mem_change_set_state(f->m, 2, MEM_STATE_FAILED, "actuator", "write: Permission denied"),
	    0);
	assert_int_equal(mem_should_attempt(f->m, &cand, why, sizeof(why)), 0);
	cand.value = "1000";
	assert_int_equal(mem_fingerprint(&cand, fp, sizeof(fp)), 0);
	snprintf(expect, sizeof(expect), "change 2 (%s) failed on 1970-01-02 00:01:00 UTC: FAILED",
		 fp);
	assert_string_equal(why, expect);

	/* INCONCLUSIVE counts as a failure. */
	c.target = "cache";
	assert_int_equal(mem_change_intent(f->m, &c), 3);
	assert_int_equal(mem_change_set_state(f->m, 3, MEM_STATE_APPLIED, "homeostatd", NULL), 0);
	o.change_id = 3;
	o.verdict = MEM_VERDICT_INCONCLUSIVE;
	o.failure_reason = "";
	assert_int_equal(mem_outcome_record(f->m, &o, "judge"), 2);
	cand.target = "cache";
	assert_int_equal(mem_should_attempt(f->m, &cand, why, sizeof(why)), 0);
	assert_non_null(strstr(why, ": ROLLED_BACK, verdict INCONCLUSIVE"));
	assert_int_equal(strncmp(why, "change 3 (sysctl|cache|", 23), 0);

	/* A tiny reason buffer is still terminated. */
	assert_int_equal(mem_should_attempt(f->m, &cand, why, 8), 0);
	assert_string_equal(why, "change ");
}

/* History, reconciliation, counts */

struct seen {
	int n;
	int64_t ids[16];
	int64_t outcome_ids[16];
	struct mem *m;
	int stop_after;
};

static int on_history(const struct mem_change *c, const struct mem_outcome *o, void *ud)
{
	struct seen *s = ud;

	s->ids[s->n] = c->id;
	s->outcome_ids[s->n++] = o ? o->id : 0;
	if (s->stop_after && s->n == s->stop_after)
		return -42;
	return 0;
}

static int on_unconcluded(const struct mem_change *c, void *ud)
{
	struct seen *s = ud;

	s->ids[s->n++] = c->id;
	/* Callbacks may write: the reconciliation rolls the change back from here. */
	if (s->m)
		assert_int_equal(mem_change_set_state(s->m, c->id, MEM_STATE_ROLLED_BACK,
						      "homeostatd", "reconciled at start"),
				 0);
	return 0;
}

static void test_history_and_reconcile(void **state)
{
	struct fixture *f = *state;
	struct mem_outcome o = {
	    .fitness_before = NAN,
	    .fitness_after = NAN,
	    .verdict = MEM_VERDICT_KEEP,
	    .result = MEM_RESULT_DEPLOYED,
	};
	struct seen s = {0};
	struct mem_counts counts;

	open_db(f);
	for (int i = 1; i <= 5; i++) {
		f->now = 1000 * i;
		assert_int_equal(mem_change_intent(f->m, &somaxconn), i);
	}
	assert_int_equal(mem_change_record(f->m, &somaxconn, MEM_STATE_PROPOSED, NULL), 6);
	/* 1: KEPT with two outcomes (the newest is shown); 2: APPLIED; 3: FAILED; 4, 5: INTENT */
	assert_int_equal(mem_change_set_state(f->m, 1, MEM_STATE_APPLIED, "homeostatd", NULL), 0);
	o.change_id = 1;
	assert_int_equal(mem_outcome_record(f->m, &o, "judge"), 1);
	o.verdict = MEM_VERDICT_NONE;
	o.result = MEM_RESULT_ROLLED_BACK;
	assert_int_equal(mem_outcome_record(f->m, &o, "uid:0"), 2);
	assert_int_equal(mem_change_set_state(f->m, 2, MEM_STATE_APPLIED, "homeostatd", NULL), 0);
	o.change_id = 3;
	o.result = MEM_RESULT_FAILED;
	assert_int_equal(mem_outcome_record(f->m, &o, "actuator"), 3);

	assert_int_equal(mem_history(f->m, 3, on_history, &s), 3);
	assert_int_equal(s.ids[0], 6);
	assert_int_equal(s.ids[1], 5);
	assert_int_equal(s.ids[2], 4);
	assert_int_equal(s.outcome_ids[0], 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(mem_history(f->m, 0, on_history, &s), 6);
	assert_int_equal(s.ids[5], 1);
	assert_int_equal(s.outcome_ids[5], 2);
	assert_int_equal(s.outcome_ids[3], 3);
	memset(&s, 0, sizeof(s));
	s.stop_after = 2;
	assert_int_equal(mem_history(f->m, 10, on_history, &s), -42);
	assert_int_equal(s.n, 2);

	f->now = 3600 * 1000 + 2500;
	assert_int_equal(mem_counts(f->m, f->now, &counts), 0);
	assert_int_equal(counts.changes_last_hour, 3); /* acted at 3000, 4000, 5000 */
	assert_int_equal(counts.active, 3);	       /* 2 APPLIED, 4 and 5 INTENT */
	assert_int_equal(counts.pending_approvals, 0);
	assert_int_equal(counts.total, 6);

	/* Reconciliation: newest first, and the callback may write. */
	memset(&s, 0, sizeof(s));
	s.m = f->m;
	assert_int_equal(mem_changes_unconcluded(f->m, on_unconcluded, &s), 3);
	assert_int_equal(s.ids[0], 5);
	assert_int_equal(s.ids[1], 4);
	assert_int_equal(s.ids[2], 2);
	memset(&s, 0, sizeof(s));
	assert_int_equal(mem_changes_unconcluded(f->m, on_unconcluded, &s), 0);
	assert_int_equal(mem_counts(f->m, f->now, &counts), 0);
	assert_int_equal(counts.active, 0);
}

/* Episodes */

struct ep_seen {
	int n;
	int64_t ids[16];
	enum mem_episode_state states[16];
	struct mem *m; /* if set, the callback writes a note */
	int stop_after;
};

static int on_episode(const struct mem_episode *e, void *ud)
{
	struct ep_seen *s = ud;

	s->ids[s->n] = e->id;
	s->states[s->n++] = e->state;
	assert_int_equal(e->ended_at == 0, e->state == MEM_EPISODE_OPEN);
	if (s->m)
		assert_int_equal(mem_episode_note(s->m, e->id, 9000, "seen by the walk"), 0);
	if (s->stop_after && s->n == s->stop_after)
		return -42;
	return 0;
}

static void test_episode_lifecycle(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ struct mem_episode *e = NULL;
	char audit[2048], msg[256], out[256];

	open_db(f);
	assert_int_equal(
	    mem_episode_open(f->m, "fd-exhaustion", "web", 4242, "fds 1010 of 1024 for 30 s", 1500),
	    1);
	assert_int_equal(mem_episode_get(f->m, 1, &e), 0);
	assert_int_equal(e->id, 1);
	assert_string_equal(e->runbook, "fd-exhaustion");
	assert_string_equal(e->target, "web");
	assert_int_equal(e->pid, 4242);
	assert_int_equal(e->started_at, 1500);
	assert_int_equal(e->updated_at, 1500);
	assert_int_equal(e->ended_at, 0);
	assert_int_equal(e->state, MEM_EPISODE_OPEN);
	assert_string_equal(e->why, "fds 1010 of 1024 for 30 s");
	assert_string_equal(e->summary, "");
	free(TAKE_PTR(e));

	f->now = 2000;
	assert_int_equal(mem_episode_note(f->m, 1, 2100, "captured %s (%d fds)", "fd_table", 1010),
			 0);
	assert_int_equal(mem_episode_note(f->m, 1, 2200, "raised RLIMIT_NOFILE to %d", 4096), 0);
	assert_int_equal(mem_episode_note(f->m, 1, 2300, "%s", ""), -EINVAL);
	assert_string_equal(mem_last_error(f->m), "note on episode 1 is empty");
	assert_int_equal(mem_episode_note(f->m, 7, 2300, "x"), -ENOENT);
	assert_string_equal(mem_last_error(f->m), "no episode 7");
	assert_int_equal(mem_episode_get(f->m, 1, &e), 0);
	assert_string_equal(e->summary,
			    "captured fd_table (1010 fds); raised RLIMIT_NOFILE to 4096");
	assert_int_equal(e->updated_at, 2200);
	free(TAKE_PTR(e));

	/* OPEN is not an ending; unknown states neither. */
	assert_int_equal(mem_episode_close(f->m, 1, MEM_EPISODE_OPEN, 3000, NULL), -EINVAL);
	assert_string_equal(mem_last_error(f->m), "episode 1 cannot end in state OPEN");
	assert_int_equal(mem_episode_close(f->m, 1, MEM_EPISODE_COUNT, 3000, NULL), -EINVAL);
	assert_int_equal(mem_episode_close(f->m, 9, MEM_EPISODE_RESOLVED, 3000, NULL), -ENOENT);

	f->now = 3000;
	assert_int_equal(mem_episode_close(f->m, 1, MEM_EPISODE_RESOLVED, 3100, "fds back to 40"),
			 0);
	assert_int_equal(mem_episode_get(f->m, 1, &e), 0);
	assert_int_equal(e->state, MEM_EPISODE_RESOLVED);
	assert_int_equal(e->ended_at, 3100);
	assert_int_equal(e->updated_at, 3100);
	assert_int_equal(e->started_at, 1500);
	assert_string_equal(e->summary, "captured fd_table (1010 fds); raised RLIMIT_NOFILE to "
					"4096; fds back to 40");
	free(TAKE_PTR(e));

	/* An episode ends once, and then nothing of it changes. */
	assert_int_equal(mem_episode_note(f->m, 1, 4000, "late"), -EINVAL);
	assert_string_equal(mem_last_error(f->m), "episode 1 has already ended (RESOLVED)");
	assert_int_equal(mem_episode_close(f->m, 1, MEM_EPISODE_ABORTED, 4000, NULL), -EINVAL);
	assert_int_equal(raw_exec(f->path, "UPDATE episodes SET summary = 'rewritten' WHERE id = 1",
				  msg, sizeof(msg)),
			 SQLITE_CONSTRAINT);
	assert_string_equal(msg, "an ended episode is final");
	assert_int_equal(raw_exec(f->path, "DELETE FROM episodes", msg, sizeof(msg)),
			 SQLITE_CONSTRAINT);
	assert_string_equal(msg, "episodes are never deleted");
	/* While open, only summary, updated_at, ended_at and state may change. */
	assert_int_equal(mem_episode_open(f->m, "fd-exhaustion", "db", 0, NULL, 5000), 2);
	assert_int_equal(raw_exec(f->path, "UPDATE episodes SET target = 'other' WHERE id = 2", msg,
				  sizeof(msg)),
			 SQLITE_CONSTRAINT);
	assert_string_equal(msg, "the identity of an episode never changes");
	/* ended_at and state go together. */
	assert_int_equal(
	    raw_exec(f->path, "UPDATE episodes SET ended_at = 1 WHERE id = 2", msg, sizeof(msg)),
	    SQLITE_CONSTRAINT);
	raw_query(f->path, "SELECT summary FROM episodes WHERE id = 1", out, sizeof(out));
	assert_string_equal(out, "captured fd_table (1010 fds); raised RLIMIT_NOFILE to 4096; "
				 "fds back to 40");

	/* Bad input writes nothing. */
	assert_int_equal(mem_episode_open(f->m, "", "web", 0, NULL, 1), -EINVAL);
	assert_string_equal(mem_last_error(f->m), "episode runbook must not be empty");
	assert_int_equal(mem_episode_open(f->m, "fd-exhaustion", NULL, 0, NULL, 1), -EINVAL);
	assert_int_equal(mem_episode_open(f->m, "fd-exhaustion", "web", -1, NULL, 1), -EINVAL);
	assert_string_equal(mem_last_error(f->m), "episode of 'web' has a negative pid -1");
	assert_int_equal(mem_episode_get(f->m, 3, &e), -ENOENT);
	assert_null(e);

	audit_dump(f->path, audit, sizeof(audit));
	assert_string_equal(
	    audit, "1|1000|runbook:fd-exhaustion|episode.open|-|episode 1 on web: fds "
		   "1010 of 1024 for 30 s\n"
		   "2|2000|runbook:fd-exhaustion|episode.note|-|episode 1: captured "
		   "fd_table (1010 fds)\n"
		   "3|2000|runbook:fd-exhaustion|episode.note|-|episode 1: raised "
		   "RLIMIT_NOFILE to 4096\n"
		   "4|3000|runbook:fd-exhaustion|episode.resolved|-|episode 1: fds back to "
		   "40\n"
		   "5|3000|runbook:fd-exhaustion|episode.open|-|episode 2 on db");
}

static void test_episodes_list_and_abort(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ struct mem_episode *e = NULL;
	struct ep_seen s = {0};
	char out[1024];

	open_db(f);
	for (int i = 1; i <= 5; i++)
		assert_int_equal(mem_episode_open(f->m, "oom", "web", i, "rss", 1000 * i), i);
	assert_int_equal(mem_episode_close(f->m, 2, MEM_EPISODE_CLEARED, 6000, NULL), 0);
	assert_int_equal(mem_episode_close(f->m, 4, MEM_EPISODE_DRY_RUN, 6000, "proposed 7"), 0);

	assert_int_equal(mem_episodes(f->m, 0, false, on_episode, &s), 5);
	assert_int_equal(s.ids[0], 5);
	assert_int_equal(s.ids[4], 1);
	assert_int_equal(s.states[1], MEM_EPISODE_DRY_RUN);
	assert_int_equal(s.states[3], MEM_EPISODE_CLEARED);
	memset(&s, 0, sizeof(s));
	assert_int_equal(mem_episodes(f->m, 2, false, on_episode, &s), 2);
	assert_int_equal(s.ids[1], 4);
	memset(&s, 0, sizeof(s));
	assert_int_equal(mem_episodes(f->m, 2, true, on_episode, &s), 2);
	assert_int_equal(s.ids[0], 5);
	assert_int_equal(s.ids[1], 3);
	memset(&s, 0, sizeof(s));
	s.stop_after = 1;
	assert_int_equal(mem_episodes(f->m, 0, true, on_episode, &s), -42);
	assert_int_equal(s.n, 1);
	/* The callback may write. */
	memset(&s, 0, sizeof(s));
	s.m = f->m;
	assert_int_equal(mem_episodes(f->m, 0, true, on_episode, &s), 3);
	assert_int_equal(mem_episodes(f->m, 0, true, NULL, NULL), -EINVAL);

	/* At start: every open episode is aborted, in one go, with the note. */
	f->now = 10000;
	assert_int_equal(mem_episodes_abort_open(f->m, 10000, "homeostatd restarted"), 3);
	assert_int_equal(mem_episodes_abort_open(f->m, 10001, "homeostatd restarted"), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(mem_episodes(f->m, 0, true, on_episode, &s), 0);
	assert_int_equal(mem_episode_get(f->m, 3, &e), 0);
	assert_int_equal(e->state, MEM_EPISODE_ABORTED);
	assert_int_equal(e->ended_at, 10000);
	assert_string_equal(e->summary, "seen by the walk; homeostatd restarted");
	free(TAKE_PTR(e));
	assert_int_equal(mem_episode_get(f->m, 4, &e), 0);
	assert_int_equal(e->state, MEM_EPISODE_DRY_RUN);
	assert_int_equal(e->ended_at, 6000);
	assert_string_equal(e->summary, "proposed 7");
	raw_query(f->path,
		  "SELECT group_concat(actor || ' ' || event || ' ' || detail, ';') FROM"
		  " (SELECT * FROM audit WHERE event = 'episode.aborted' ORDER BY seq)",
		  out, sizeof(out));
	assert_string_equal(out, "homeostatd episode.aborted episode 1: homeostatd restarted;"
				 "homeostatd episode.aborted episode 3: homeostatd restarted;"
				 "homeostatd episode.aborted episode 5: homeostatd restarted");
	raw_query(f->path,
		  "SELECT group_concat(id || state || coalesce(ended_at, '-'), ',') FROM"
		  " (SELECT * FROM episodes ORDER BY id)",
		  out, sizeof(out));
	assert_string_equal(out, "1ABORTED10000,2CLEARED6000,3ABORTED10000,4DRY_RUN6000,"
				 "5ABORTED10000");

	for (int i = 0; i < MEM_EPISODE_COUNT; i++)
		assert_int_equal(mem_episode_state_from_name(mem_episode_state_name(i)), i);
	assert_string_equal(mem_episode_state_name(MEM_EPISODE_DRY_RUN), "DRY_RUN");
	assert_null(mem_episode_state_name(MEM_EPISODE_COUNT));
	assert_int_equal(mem_episode_state_from_name("open"), -EINVAL);
}

/* A note that would overflow the summary is refused; an ending never is. */
static void test_episode_summary_full(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ struct mem_episode *e = NULL;
	_cleanup_free_ char *big = malloc(MEM_TEXT_MAX + 2);
	char audit_before[32], audit_after[32];
	size_t n;

	assert_non_null(big);
	open_db(f);
	assert_int_equal(mem_episode_open(f->m, "oom", "web", 0, NULL, 1), 1);
	/* 30000 two-byte characters: 60000 bytes */
	for (n = 0; n < 60000; n += 2)
		memcpy(big + n, "\xc3\xa9", 2);
	big[n] = '\0';
	assert_int_equal(mem_episode_note(f->m, 1, 2, "%s", big), 0);
	memset(big, 'y', 6000);
	big[6000] = '\0';
	raw_query(f->path, "SELECT count(*) FROM audit", audit_before, sizeof(audit_before));
	assert_int_equal(mem_episode_note(f->m, 1, 3, "%s", big), -ENOSPC);
	assert_string_equal(mem_last_error(f->m),
			    "summary of episode 1 would grow past 65536 bytes: note refused");
	raw_query(f->path, "SELECT count(*) FROM audit", audit_after, sizeof(audit_after));
	assert_string_equal(audit_before, audit_after);
	assert_int_equal(mem_episode_get(f->m, 1, &e), 0);
	assert_int_equal(e->updated_at, 2);
	assert_int_equal(strlen(e->summary), 60000);
	free(TAKE_PTR(e));

	/* The close cuts the older summary at a character boundary and keeps the note whole. */
	assert_int_equal(mem_episode_close(f->m, 1, MEM_EPISODE_UNRESOLVED, 4, big), 0);
	assert_int_equal(mem_episode_get(f->m, 1, &e), 0);
	n = strlen(e->summary);
	assert_true(n <= MEM_TEXT_MAX);
	/* 59531 bytes of the old summary would fit, but that cuts an é: 59530, "…; ", the note. */
	assert_int_equal(n, 59530 + 5 + 6000);
	assert_int_equal(strncmp(e->summary + n - 6000 - 5, "\xe2\x80\xa6; yyy", 8), 0);
	assert_int_equal(strcmp(e->summary + n - 6000, big), 0);
	assert_int_equal(memcmp(e->summary + n - 6000 - 7, "\xc3\xa9", 2), 0);
	free(TAKE_PTR(e));

	/* A note that alone nearly fills the summary is cut itself; over the maximum: -E2BIG. */
	assert_int_equal(mem_episode_open(f->m, "oom", "db", 0, NULL, 1), 2);
	assert_int_equal(mem_episode_note(f->m, 2, 2, "first"), 0);
	memset(big, 'z', MEM_TEXT_MAX + 1);
	big[MEM_TEXT_MAX + 1] = '\0';
	assert_int_equal(mem_episodes_abort_open(f->m, 5, big), -E2BIG);
	assert_string_equal(mem_last_error(f->m), "episode note of 65537 bytes, the most is 65536");
	big[MEM_TEXT_MAX] = '\0';
	assert_int_equal(mem_episodes_abort_open(f->m, 5, big), 1);
	assert_int_equal(mem_episode_get(f->m, 2, &e), 0);
	assert_int_equal(e->state, MEM_EPISODE_ABORTED);
	assert_int_equal(strlen(e->summary), MEM_TEXT_MAX);
	assert_string_equal(e->summary + MEM_TEXT_MAX - 4, "z\xe2\x80\xa6");
}

/* Diagnoses */

struct diag_seen {
	int n;
	int64_t ids[8];
	size_t raw[8], stored[8];
	char kinds[8][32];
};

static int on_diagnosis(int64_t id, int64_t at, const char *kind, const char *summary,
			size_t raw_size, size_t stored_size, void *ud)
{
	struct diag_seen *s = ud;

	s->ids[s->n] = id;
	s->raw[s->n] = raw_size;
	s->stored[s->n] = stored_size;
	snprintf(s->kinds[s->n++], sizeof(s->kinds[0]), "%s", kind);
	return 0;
}

/* With its trigger dropped on a raw connection, runs sql on diagnoses, then restores it. */
static void raw_tamper(const char *path, const char *sql)
{
	char q[512], msg[256];

	snprintf(q, sizeof(q),
		 "DROP TRIGGER diagnoses_no_update; %s;"
		 " CREATE TRIGGER diagnoses_no_update BEFORE UPDATE ON diagnoses"
		 " BEGIN SELECT RAISE(ABORT, 'diagnoses are append-only'); END;",
		 sql);
	assert_int_equal(raw_exec(path, q, msg, sizeof(msg)), SQLITE_OK);
}

/* Flips one byte in the middle of the stored data of diagnosis id. */
static void raw_flip_byte(const char *path, int64_t id)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	unsigned char *data;
	int n;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP TRIGGER diagnoses_no_update", NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(
	    sqlite3_prepare_v2(db, "SELECT data FROM diagnoses WHERE id = ?1", -1, &st, NULL),
	    SQLITE_OK);
	sqlite3_bind_int64(st, 1, id);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_bytes(st, 0);
	data = malloc(n);
	assert_non_null(data);
	memcpy(data, sqlite3_column_blob(st, 0), n);
	sqlite3_finalize(st);
	data[n / 2] ^= 0x5a;
	assert_int_equal(
	    sqlite3_prepare_v2(db, "UPDATE diagnoses SET data = ?1 WHERE id = ?2", -1, &st, NULL),
	    SQLITE_OK);
	sqlite3_bind_blob(st, 1, data, n, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, id);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	free(data);
	assert_int_equal(
	    sqlite3_exec(db,
			 "CREATE TRIGGER diagnoses_no_update BEFORE UPDATE ON diagnoses"
			 " BEGIN SELECT RAISE(ABORT, 'diagnoses are append-only'); END",
			 NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
}

static void test_diagnoses(void **state)
{
	struct fixture *f = *state;
	const size_t mib = 1 << 20;
	_cleanup_free_ char *big = malloc(mib), *bin = malloc(4096);
	_cleanup_free_ char *text = NULL, *kind = NULL, *summary = NULL;
	struct diag_seen s = {0};
	char out[512], expect[512], msg[256];
	size_t len, n = 0;
	uint32_t x = 12345;

	assert_non_null(big);
	assert_non_null(bin);
	/* An fd table: lines that differ by their numbers, as a real one. */
	for (int fd = 0; n < mib; fd++) {
		char line[64];
		int k = snprintf(line, sizeof(line), "%d -> socket:[%d] TCP 10.0.0.1:%d\n", fd,
				 100000 + fd * 7, 1024 + fd % 50000);

		memcpy(big + n, line, n + k <= mib ? (size_t)k : mib - n);
		n += k;
	}
	/* Any byte, NUL included. */
	for (size_t i = 0; i < 4096; i++) {
		x = x * 1103515245 + 12345;
		bin[i] = (char)(i < 256 ? i : x >> 16);
	}

	open_db(f);
	assert_int_equal(mem_episode_open(f->m, "fd-exhaustion", "web", 77, "fds", 1), 1);
	f->now = 2000;
	assert_int_equal(
	    mem_diagnosis_add(f->m, 1, 1500, "fd_table", "1010 fds, 990 sockets", big, mib), 1);
	assert_int_equal(mem_diagnosis_add(f->m, 1, 1600, "alloc_profile", NULL, bin, 4096), 2);
	assert_int_equal(mem_diagnosis_add(f->m, 1, 1700, "empty", "nothing", NULL, 0), 3);

	assert_int_equal(mem_diagnoses(f->m, 1, on_diagnosis, &s), 3);
	assert_int_equal(s.ids[0], 1);
	assert_int_equal(s.ids[2], 3);
	assert_string_equal(s.kinds[0], "fd_table");
	assert_string_equal(s.kinds[1], "alloc_profile");
	assert_int_equal(s.raw[0], mib);
	assert_true(s.stored[0] < mib / 4);
	assert_int_equal(s.raw[1], 4096);
	assert_true(s.stored[1] > 0);
	assert_int_equal(s.raw[2], 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(mem_diagnoses(f->m, 2, on_diagnosis, &s), 0);
	assert_int_equal(mem_diagnoses(f->m, 1, on_diagnosis, &s), 3);
	raw_query(f->path, "SELECT length(data) FROM diagnoses WHERE id = 1", out, sizeof(out));
	assert_int_equal(strtoul(out, NULL, 10), s.stored[0]);

	assert_int_equal(mem_diagnosis_get(f->m, 1, &text, &len, &kind, &summary), 0);
	assert_int_equal(len, mib);
	assert_int_equal(memcmp(text, big, mib), 0);
	assert_int_equal(text[mib], '\0');
	assert_string_equal(kind, "fd_table");
	assert_string_equal(summary, "1010 fds, 990 sockets");
	free(TAKE_PTR(text));
	free(TAKE_PTR(kind));
	free(TAKE_PTR(summary));
	assert_int_equal(mem_diagnosis_get(f->m, 2, &text, &len, NULL, &summary), 0);
	assert_int_equal(len, 4096);
	assert_int_equal(memcmp(text, bin, 4096), 0);
	assert_string_equal(summary, "");
	free(TAKE_PTR(text));
	free(TAKE_PTR(summary));
	assert_int_equal(mem_diagnosis_get(f->m, 3, &text, &len, NULL, NULL), 0);
	assert_int_equal(len, 0);
	assert_string_equal(text, "");
	free(TAKE_PTR(text));
	assert_int_equal(mem_diagnosis_get(f->m, 4, &text, &len, &kind, NULL), -ENOENT);
	assert_null(text);
	assert_null(kind);
	assert_int_equal(len, 0);

	raw_query(f->path, "SELECT detail FROM audit WHERE event = 'diagnosis.add' ORDER BY seq",
		  out, sizeof(out));
	snprintf(expect, sizeof(expect),
		 "diagnosis 1 of episode 1: fd_table: 1010 fds, 990 sockets (1048576 bytes, %zu "
		 "stored)",
		 s.stored[0]);
	assert_string_equal(out, expect);
	raw_query(f->path,
		  "SELECT group_concat(actor || ' ' || (change_id IS NULL), ',') FROM audit"
		  " WHERE event = 'diagnosis.add'",
		  out, sizeof(out));
	assert_string_equal(out, "runbook:fd-exhaustion 1,runbook:fd-exhaustion 1,"
				 "runbook:fd-exhaustion 1");

	/* Refused: unknown episode, too big, no kind, no text. Nothing is written. */
	assert_int_equal(mem_diagnosis_add(f->m, 9, 1, "fd_table", NULL, "x", 1), -ENOENT);
	assert_string_equal(mem_last_error(f->m), "no episode 9");
	assert_int_equal(
	    mem_diagnosis_add(f->m, 1, 1, "fd_table", NULL, big, (size_t)MEM_DIAGNOSIS_MAX + 1),
	    -E2BIG);
	assert_string_equal(mem_last_error(f->m),
			    "diagnosis 'fd_table' of 16777217 bytes, the most is 16777216");
	assert_int_equal(mem_diagnosis_add(f->m, 1, 1, "", NULL, "x", 1), -EINVAL);
	assert_int_equal(mem_diagnosis_add(f->m, 1, 1, "fd_table", NULL, NULL, 1), -EINVAL);
	raw_query(f->path, "SELECT count(*) FROM diagnoses", out, sizeof(out));
	assert_string_equal(out, "3");

	/* An episode that has ended still takes the capture that finished late. */
	assert_int_equal(mem_episode_close(f->m, 1, MEM_EPISODE_RESOLVED, 3000, NULL), 0);
	assert_int_equal(mem_diagnosis_add(f->m, 1, 3100, "fd_table", "late", "7 -> pipe\n", 10),
			 4);

	/* Append-only. */
	assert_int_equal(
	    raw_exec(f->path, "UPDATE diagnoses SET kind = 'x' WHERE id = 1", msg, sizeof(msg)),
	    SQLITE_CONSTRAINT);
	assert_string_equal(msg, "diagnoses are append-only");
	assert_int_equal(raw_exec(f->path, "DELETE FROM diagnoses", msg, sizeof(msg)),
			 SQLITE_CONSTRAINT);
	assert_string_equal(msg, "diagnoses are append-only");

	/* Tampered data or size: -EBADMSG, never a wrong text. */
	mem_close(f->m);
	f->m = NULL;
	raw_flip_byte(f->path, 1);
	raw_tamper(f->path, "UPDATE diagnoses SET raw_size = raw_size + 1 WHERE id = 2");
	raw_tamper(f->path, "UPDATE diagnoses SET raw_size = raw_size - 1 WHERE id = 4");
	raw_tamper(f->path, "UPDATE diagnoses SET data = X'789c' WHERE id = 3");
	open_db(f);
	assert_int_equal(mem_diagnosis_get(f->m, 1, &text, &len, &kind, &summary), -EBADMSG);
	assert_null(text);
	assert_null(kind);
	assert_null(summary);
	assert_int_equal(strncmp(mem_last_error(f->m),
				 "diagnosis 1 does not decompress to its 1048576 bytes (zlib ", 58),
			 0);
	assert_int_equal(mem_diagnosis_get(f->m, 2, &text, &len, NULL, NULL), -EBADMSG);
	assert_string_equal(
	    mem_last_error(f->m),
	    "diagnosis 2 does not decompress to its 4097 bytes (zlib 0, 4096 bytes)");
	assert_int_equal(mem_diagnosis_get(f->m, 4, &text, &len, NULL, NULL), -EBADMSG);
	assert_int_equal(mem_diagnosis_get(f->m, 3, &text, &len, NULL, NULL), -EBADMSG);
	assert_null(text);
}

/* Changes: episode and act */

struct change_seen {
	int n;
	int64_t ids[16];
	int64_t episodes[16];
	char acts[16][64];
	struct mem *m; /* if set, the callback moves each change to INTENT */
	int stop_after;
};

static int on_change(const struct mem_change *c, void *ud)
{
	struct change_seen *s = ud;

	s->ids[s->n] = c->id;
	s->episodes[s->n] = c->episode_id;
	snprintf(s->acts[s->n++], sizeof(s->acts[0]), "%s", c->act);
	if (s->m)
		assert_int_equal(mem_change_set_state(s->m, c->id, MEM_STATE_INTENT, "homeostatd",
						      "approved, applying"),
				 0);
	if (s->stop_after && s->n == s->stop_after)
		return -42;
	return 0;
}

static int on_change_history(const struct mem_change *c, const struct mem_outcome *o, void *ud)
{
	return on_change(c, ud);
}

static int on_change_pending(const struct mem_approval *a, const struct mem_change *c, void *ud)
{
	return on_change(c, ud);
}

static void test_change_episode_and_act(void **state)
{
	struct fixture *f = *state;
	_cleanup_(mem_change_freep) struct mem_change *c = NULL;
	struct mem_change in = somaxconn;
	struct change_seen s = {0};
	char out[256];

	open_db(f);
	assert_int_equal(mem_episode_open(f->m, "accept-queue", "web", 0, "overflows", 1), 1);
	in.episode_id = 1;
	in.act = "sysctl net.core.somaxconn 4096 1000";
	assert_int_equal(mem_change_intent(f->m, &in), 1);
	assert_int_equal(mem_change_intent(f->m, &somaxconn), 2);
	assert_int_equal(mem_change_record(f->m, &in, MEM_STATE_PROPOSED, NULL), 3);

	assert_int_equal(mem_change_get(f->m, 1, &c), 0);
	assert_int_equal(c->episode_id, 1);
	assert_string_equal(c->act, "sysctl net.core.somaxconn 4096 1000");
	assert_string_equal(c->revert, somaxconn.revert); /* the fields around it are intact */
	assert_string_equal(c->knob, "net.core.somaxconn");
	mem_change_free(TAKE_PTR(c));
	assert_int_equal(mem_change_get(f->m, 2, &c), 0);
	assert_int_equal(c->episode_id, 0);
	assert_string_equal(c->act, "");
	raw_query(f->path, "SELECT episode_id IS NULL FROM changes WHERE id = 2", out, sizeof(out));
	assert_string_equal(out, "1");

	assert_int_equal(mem_history(f->m, 0, on_change_history, &s), 3);
	assert_int_equal(s.ids[0], 3);
	assert_int_equal(s.episodes[0], 1);
	assert_int_equal(s.episodes[1], 0);
	assert_string_equal(s.acts[1], "");
	assert_int_equal(s.episodes[2], 1);
	assert_string_equal(s.acts[2], "sysctl net.core.somaxconn 4096 1000");
	memset(&s, 0, sizeof(s));
	assert_int_equal(mem_changes_unconcluded(f->m, on_change, &s), 2);
	assert_int_equal(s.episodes[0], 0);
	assert_int_equal(s.episodes[1], 1);
	assert_string_equal(s.acts[1], "sysctl net.core.somaxconn 4096 1000");
	memset(&s, 0, sizeof(s));
	assert_int_equal(mem_approval_request(f->m, 3, 5000), 1);
	assert_int_equal(mem_approvals_pending(f->m, on_change_pending, &s), 1);
	assert_int_equal(s.episodes[0], 1);
	assert_string_equal(s.acts[0], "sysctl net.core.somaxconn 4096 1000");

	/* An episode that does not exist, or a negative one, is refused. */
	in.episode_id = 99;
	assert_int_equal(mem_change_intent(f->m, &in), -EINVAL);
	in.episode_id = -1;
	assert_int_equal(mem_change_intent(f->m, &in), -EINVAL);
	assert_string_equal(mem_last_error(f->m), "change has a negative episode id -1");
	raw_query(f->path, "SELECT count(*) FROM changes", out, sizeof(out));
	assert_string_equal(out, "3");
}

static void test_changes_by_state(void **state)
{
	struct fixture *f = *state;
	struct change_seen s = {0};
	struct mem_change in = somaxconn;

	open_db(f);
	for (int i = 1; i <= 4; i++) {
		in.episode_id = 0;
		assert_int_equal(mem_change_record(f->m, &in, MEM_STATE_PROPOSED, NULL), i);
		assert_int_equal(mem_approval_request(f->m, i, 100000), i);
	}
	assert_int_equal(mem_approval_decide(f->m, 3, true, "alice"), 0);
	assert_int_equal(mem_approval_decide(f->m, 1, true, "alice"), 0);
	assert_int_equal(mem_approval_decide(f->m, 2, false, "bob"), 0);

	assert_int_equal(mem_changes_by_state(f->m, MEM_STATE_PENDING_APPROVAL, on_change, &s), 1);
	assert_int_equal(s.ids[0], 4);
	memset(&s, 0, sizeof(s));
	s.stop_after = 1;
	assert_int_equal(mem_changes_by_state(f->m, MEM_STATE_APPROVED, on_change, &s), -42);
	assert_int_equal(s.n, 1);
	/* Oldest first, and the callback may move them on. */
	memset(&s, 0, sizeof(s));
	s.m = f->m;
	assert_int_equal(mem_changes_by_state(f->m, MEM_STATE_APPROVED, on_change, &s), 2);
	assert_int_equal(s.ids[0], 1);
	assert_int_equal(s.ids[1], 3);
	memset(&s, 0, sizeof(s));
	assert_int_equal(mem_changes_by_state(f->m, MEM_STATE_APPROVED, on_change, &s), 0);
	assert_int_equal(mem_changes_by_state(f->m, MEM_STATE_INTENT, on_change, &s), 2);
	assert_int_equal(mem_changes_by_state(f->m, MEM_STATE_DENIED, on_change, &s), 1);
	assert_int_equal(s.ids[2], 2);
	assert_int_equal(mem_changes_by_state(f->m, MEM_STATE_COUNT, on_change, &s), -EINVAL);
	assert_int_equal(mem_changes_by_state(f->m, MEM_STATE_KEPT, NULL, NULL), -EINVAL);
}

/* Migration 2 -> 3 on an existing version 2 database keeps its rows. */
static void test_migration_2_to_3(void **state)
{
	struct fixture *f = *state;
	_cleanup_(mem_change_freep) struct mem_change *c = NULL;
	struct mem_change in = somaxconn;
	struct change_seen s = {0};
	struct mem *m = NULL;
	char out[256];

	assert_int_equal(mem_open_migrations(f->path, mem_migrations, 2, &m), 0);
	assert_int_equal(mem_schema_version(m), 2);
	/* This code writes columns a version 2 database does not have. */
	assert_int_equal(mem_change_intent(m, &somaxconn), -EIO);
	assert_int_equal(mem_episode_open(m, "oom", "web", 0, NULL, 1), -EIO);
	mem_close(m);
	/* The rows as version 2 code wrote them. */
	assert_int_equal(
	    raw_exec(
		f->path,
		"INSERT INTO changes (created_at, updated_at, acted_at, kind, target, knob,"
		" before, after, why, source, fingerprint, revert, state) VALUES"
		" (1000, 1000, 1000, 'sysctl', 'web', 'net.core.somaxconn', '4096', '1000',"
		"  'overflows', 'runbook:accept-queue', 'sysctl|web|net.core.somaxconn|v2^9|6.1|x',"
		"  'sysctl -w net.core.somaxconn=4096', 'INTENT'),"
		" (1000, 1000, NULL, 'sysctl', 'web', 'net.core.somaxconn', '4096', '1000',"
		"  'overflows', 'runbook:accept-queue', 'sysctl|web|net.core.somaxconn|v2^9|6.1|x',"
		"  'sysctl -w net.core.somaxconn=4096', 'PENDING_APPROVAL');"
		"INSERT INTO approvals (change_id, state, requested_at, expires_at)"
		" VALUES (2, 'PENDING', 1000, 5000);"
		"INSERT INTO audit (at, actor, event, change_id, detail) VALUES"
		" (1000, 'runbook:accept-queue', 'change.intent', 1, ''),"
		" (1000, 'runbook:accept-queue', 'change.proposed', 2, ''),"
		" (1000, 'homeostatd', 'change.pending_approval', 2, '')",
		NULL, 0),
	    SQLITE_OK);

	open_db(f);
	assert_int_equal(mem_schema_version(f->m), 3);
	assert_int_equal(mem_change_get(f->m, 1, &c), 0);
	assert_int_equal(c->state, MEM_STATE_INTENT);
	assert_string_equal(c->knob, "net.core.somaxconn");
	assert_string_equal(c->revert, somaxconn.revert);
	assert_int_equal(c->episode_id, 0);
	assert_string_equal(c->act, "");
	mem_change_free(TAKE_PTR(c));
	raw_query(f->path,
		  "SELECT group_concat(id || ':' || coalesce(episode_id, '-') || ':' || act || ':'"
		  " || state, ',') FROM changes",
		  out, sizeof(out));
	assert_string_equal(out, "1:-::INTENT,2:-::PENDING_APPROVAL");
	raw_query(f->path, "SELECT count(*) FROM audit", out, sizeof(out));
	assert_string_equal(out, "3");
	assert_int_equal(mem_approvals_pending(f->m, on_change_pending, &s), 1);
	assert_int_equal(s.ids[0], 2);

	/* The new schema works on the old rows' database. */
	assert_int_equal(mem_episode_open(f->m, "oom", "web", 0, NULL, 1), 1);
	in.episode_id = 1;
	in.act = "signal 4242 SIGHUP";
	assert_int_equal(mem_change_intent(f->m, &in), 3);
	memset(&s, 0, sizeof(s));
	assert_int_equal(mem_history(f->m, 0, on_change_history, &s), 3);
	assert_int_equal(s.episodes[0], 1);
	assert_string_equal(s.acts[0], "signal 4242 SIGHUP");
	assert_int_equal(s.episodes[2], 0);
}

/* Outcomes: the judged metrics and the canary's summary, read from the stats JSON. */

/* The canary's stats (safe_canary_json()): a rate metric with a null ci, a median metric
 * with a ci, and an element that is not an object (skipped). */
static const char canary_stats[] =
    "{\"mode\":\"before_after\",\"outcome\":\"done\",\"duration_ms\":60000,"
    "\"elapsed_ms\":61500,\"ticks\":61,\"discarded\":1,\"min_samples\":30,"
    "\"samples\":{\"canary\":60,\"baseline\":58},\"truncated\":false,\"breach\":null,"
    "\"verdict\":\"KEEP\",\"reason\":\"no metric is worse\",\"metrics\":["
    "{\"metric\":\"error rate\",\"unit\":\"\",\"better\":\"lower\","
    "\"test\":\"two-proportion-z\",\"alternative\":\"greater\",\"n_canary\":6000,"
    "\"n_baseline\":5800,\"errors_canary\":3,\"errors_baseline\":4,\"statistic\":-0.5,"
    "\"z\":-0.5,\"p\":0.69,\"shift\":-0.0002,\"ci\":null,\"confidence\":0.95,"
    "\"effect\":null,\"rel_shift\":-0.25,\"canary_rate\":0.0005,\"baseline_rate\":0.0007,"
    "\"verdict\":\"KEEP\",\"reason\":\"error rate not higher\"},"
    "{\"metric\":\"fitness\",\"unit\":\"score\",\"better\":\"higher\","
    "\"test\":\"mann-whitney-u\",\"alternative\":\"less\",\"n_canary\":60,"
    "\"n_baseline\":58,\"statistic\":1900.5,\"z\":1.25,\"p\":0.125,\"shift\":0.02,"
    "\"ci\":[-0.01,0.05],\"confidence\":0.95,\"effect\":0.125,\"rel_shift\":0.025,"
    "\"canary_median\":0.82,\"baseline_median\":0.8,\"verdict\":\"KEEP\","
    "\"reason\":\"fitness not lower\"},"
    "7]}";

struct metrics_seen {
	int n;
	struct mem_metric_row rows[4];
	char strs[4][5][64]; /* metric, unit, test, verdict, reason */
	int stop_after;
};

static int on_metric(const struct mem_metric_row *row, void *ud)
{
	struct metrics_seen *s = ud;
	const char *src[] = {row->metric, row->unit, row->test, row->verdict, row->reason};
	const char **dst[] = {&s->rows[s->n].metric, &s->rows[s->n].unit, &s->rows[s->n].test,
			      &s->rows[s->n].verdict, &s->rows[s->n].reason};

	assert_true(s->n < 4);
	s->rows[s->n] = *row;
	for (size_t i = 0; i < ARRAY_SIZE(src); i++) {
		snprintf(s->strs[s->n][i], sizeof(s->strs[0][0]), "%s", src[i]);
		*dst[i] = s->strs[s->n][i];
	}
	s->n++;
	return s->stop_after && s->n == s->stop_after ? -42 : 0;
}

static void test_outcome_metrics(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ struct mem_outcome_summary *sum = NULL;
	struct mem_outcome o = {
	    .change_id = 1,
	    .fitness_before = NAN,
	    .fitness_after = NAN,
	    .verdict = MEM_VERDICT_KEEP,
	    .stats_json = canary_stats,
	    .result = MEM_RESULT_DEPLOYED,
	};
	struct metrics_seen s = {0};
	const struct mem_metric_row *r;

	open_db(f);
	for (int i = 1; i <= 4; i++) {
		assert_int_equal(mem_change_intent(f->m, &somaxconn), i);
		assert_int_equal(
		    mem_change_set_state(f->m, i, MEM_STATE_APPLIED, "homeostatd", "canary"), 0);
	}
	assert_int_equal(mem_outcome_record(f->m, &o, "judge"), 1);

	assert_int_equal(mem_outcome_metrics(f->m, 1, on_metric, &s), 2);
	assert_int_equal(s.n, 2);
	r = &s.rows[0];
	assert_string_equal(r->metric, "error rate");
	assert_string_equal(r->unit, "");
	assert_string_equal(r->test, "two-proportion-z");
	assert_int_equal(r->n_canary, 6000);
	assert_int_equal(r->n_baseline, 5800);
	assert_true(r->statistic == -0.5);
	assert_true(r->p == 0.69);
	assert_true(r->shift == -0.0002);
	assert_true(isnan(r->ci_low) && isnan(r->ci_high)); /* "ci": null */
	assert_true(isnan(r->effect));			    /* "effect": null */
	assert_true(r->rel_shift == -0.25);
	assert_true(r->canary == 0.0005); /* canary_rate */
	assert_true(r->baseline == 0.0007);
	assert_string_equal(r->verdict, "KEEP");
	assert_string_equal(r->reason, "error rate not higher");
	r = &s.rows[1];
	assert_string_equal(r->metric, "fitness");
	assert_string_equal(r->unit, "score");
	assert_string_equal(r->test, "mann-whitney-u");
	assert_int_equal(r->n_canary, 60);
	assert_int_equal(r->n_baseline, 58);
	assert_true(r->statistic == 1900.5);
	assert_true(r->p == 0.125);
	assert_true(r->shift == 0.02);
	assert_true(r->ci_low == -0.01);
	assert_true(r->ci_high == 0.05);
	assert_true(r->effect == 0.125);
	assert_true(r->rel_shift == 0.025);
	assert_true(r->canary == 0.82); /* canary_median */
	assert_true(r->baseline == 0.8);
	assert_string_equal(r->reason, "fitness not lower");

	/* The callback's negative value stops the walk. */
	memset(&s, 0, sizeof(s));
	s.stop_after = 1;
	assert_int_equal(mem_outcome_metrics(f->m, 1, on_metric, &s), -42);
	assert_int_equal(s.n, 1);
	assert_int_equal(mem_outcome_metrics(f->m, 1, NULL, NULL), -EINVAL);

	/* The summary of the same outcome. */
	assert_int_equal(mem_outcome_summary(f->m, 1, &sum), 0);
	assert_string_equal(sum->mode, "before_after");
	assert_string_equal(sum->outcome, "done");
	assert_int_equal(sum->duration_ms, 60000);
	assert_int_equal(sum->elapsed_ms, 61500);
	assert_int_equal(sum->samples_canary, 60);
	assert_int_equal(sum->samples_baseline, 58);
	assert_false(sum->truncated);
	assert_string_equal(sum->verdict, "KEEP");
	assert_string_equal(sum->reason, "no metric is worse");
	assert_false(sum->breach);
	assert_string_equal(sum->breach_metric, "");
	assert_true(isnan(sum->breach_canary) && isnan(sum->breach_limit));
	free(TAKE_PTR(sum));

	/* No outcome, or no such change: no metric, no summary. */
	memset(&s, 0, sizeof(s));
	assert_int_equal(mem_outcome_metrics(f->m, 2, on_metric, &s), 0);
	assert_int_equal(mem_outcome_metrics(f->m, 99, on_metric, &s), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(mem_outcome_summary(f->m, 2, &sum), -ENOENT);
	assert_null(sum);

	/* A runbook's verify: other keys, no "metrics"; and "metrics" that is not an array. */
	o.change_id = 2;
	o.stats_json = "{\"verify\":\"errors_s < 1\",\"value\":0.2,\"ok\":true}";
	assert_int_equal(mem_outcome_record(f->m, &o, "runbook:fd"), 2);
	assert_int_equal(mem_outcome_metrics(f->m, 2, on_metric, &s), 0);
	assert_int_equal(mem_outcome_summary(f->m, 2, &sum), 0);
	assert_string_equal(sum->mode, "");
	assert_int_equal(sum->samples_canary, -1);
	assert_int_equal(sum->elapsed_ms, -1);
	assert_false(sum->breach);
	free(TAKE_PTR(sum));
	o.change_id = 3;
	o.stats_json = "{\"metrics\":{\"metric\":\"error rate\"}}";
	assert_int_equal(mem_outcome_record(f->m, &o, "judge"), 3);
	assert_int_equal(mem_outcome_metrics(f->m, 3, on_metric, &s), 0);
	assert_int_equal(s.n, 0);

	/* A breach, with nulls and a count that is not one. */
	o.change_id = 4;
	o.verdict = MEM_VERDICT_ROLLBACK;
	o.result = MEM_RESULT_ROLLED_BACK;
	o.stats_json =
	    "{\"mode\":\"before_after\",\"outcome\":\"breach\",\"elapsed_ms\":9000,"
	    "\"samples\":{\"canary\":9,\"baseline\":60},\"truncated\":true,"
	    "\"breach\":{\"metric\":\"error rate\",\"canary\":0.25,\"baseline\":0.01,"
	    "\"limit\":0.05,\"smooth_ticks\":3},\"verdict\":\"ROLLBACK\",\"reason\":null,"
	    "\"metrics\":[{\"metric\":\"error rate\",\"n_canary\":\"many\",\"p\":null,"
	    "\"ci\":[null,0.5],\"canary_rate\":0.25,\"verdict\":\"ROLLBACK\"}]}";
	assert_int_equal(mem_outcome_record(f->m, &o, "judge"), 4);
	assert_int_equal(mem_outcome_summary(f->m, 4, &sum), 0);
	assert_string_equal(sum->outcome, "breach");
	assert_int_equal(sum->duration_ms, -1);
	assert_int_equal(sum->samples_canary, 9);
	assert_true(sum->truncated);
	assert_string_equal(sum->reason, "");
	assert_true(sum->breach);
	assert_string_equal(sum->breach_metric, "error rate");
	assert_true(sum->breach_canary == 0.25);
	assert_true(sum->breach_baseline == 0.01);
	assert_true(sum->breach_limit == 0.05);
	free(TAKE_PTR(sum));
	assert_int_equal(mem_outcome_metrics(f->m, 4, on_metric, &s), 1);
	r = &s.rows[0];
	assert_string_equal(r->metric, "error rate");
	assert_string_equal(r->test, "");
	assert_string_equal(r->reason, "");
	assert_int_equal(r->n_canary, -1);
	assert_int_equal(r->n_baseline, -1);
	assert_true(isnan(r->p));
	assert_true(isnan(r->ci_low));
	assert_true(r->ci_high == 0.5);
	assert_true(r->canary == 0.25);
	assert_true(isnan(r->baseline));

	/* Only the newest outcome counts: an operator's rollback of change 1 has no metrics. */
	o = (struct mem_outcome){.change_id = 1,
				 .fitness_before = NAN,
				 .fitness_after = NAN,
				 .verdict = MEM_VERDICT_NONE,
				 .result = MEM_RESULT_ROLLED_BACK,
				 .failure_reason = "rolled back by operator"};
	assert_int_equal(mem_outcome_record(f->m, &o, "operator"), 5);
	memset(&s, 0, sizeof(s));
	assert_int_equal(mem_outcome_metrics(f->m, 1, on_metric, &s), 0);
	assert_int_equal(mem_outcome_summary(f->m, 1, &sum), 0);
	assert_string_equal(sum->mode, "");
}

/* Host helpers and names */

static void test_host_and_names(void **state)
{
	char kernel[MEM_KERNEL_MAX], class[MEM_HOST_CLASS_MAX], expect[32];
	struct utsname u;
	unsigned a, b;

	assert_int_equal(mem_host_kernel(kernel, sizeof(kernel)), 0);
	assert_int_equal(uname(&u), 0);
	assert_int_equal(sscanf(u.release, "%u.%u", &a, &b), 2);
	snprintf(expect, sizeof(expect), "%u.%u", a, b);
	assert_string_equal(kernel, expect);
	assert_int_equal(mem_host_kernel(kernel, 2), -ENAMETOOLONG);
	assert_int_equal(mem_host_class(class, sizeof(class)), 0);
	assert_int_equal(strncmp(class, u.machine, strlen(u.machine)), 0);
	assert_non_null(strstr(class, "cpu-"));
	assert_int_equal(class[strlen(class) - 1], 'g');

	assert_string_equal(mem_kind_name(MEM_KIND_RLIMIT), "rlimit");
	assert_string_equal(mem_kind_name(MEM_KIND_PATCH), "patch");
	assert_null(mem_kind_name(MEM_KIND_COUNT));
	assert_int_equal(mem_kind_from_name("cgroup"), MEM_KIND_CGROUP);
	assert_int_equal(mem_kind_from_name("CGROUP"), -EINVAL);
	for (int s = 0; s < MEM_STATE_COUNT; s++)
		assert_int_equal(mem_state_from_name(mem_state_name(s)), s);
	assert_string_equal(mem_state_name(MEM_STATE_PENDING_APPROVAL), "PENDING_APPROVAL");
	assert_int_equal(mem_verdict_from_name("INCONCLUSIVE"), MEM_VERDICT_INCONCLUSIVE);
	assert_int_equal(mem_result_from_name("ROLLED_BACK"), MEM_RESULT_ROLLED_BACK);
	assert_int_equal(mem_approval_state_from_name("EXPIRED"), MEM_APPROVAL_EXPIRED);
	assert_int_equal(mem_state_from_name(NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_creates_schema, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_newer_database_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_refuses_symlink, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migration_mechanism, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_intent_applied_kept, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_illegal_transitions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_audit_append_only, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_approvals, setup, teardown),
	    cmocka_unit_test(test_fingerprint_buckets),
	    cmocka_unit_test_setup_teardown(test_should_attempt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_history_and_reconcile, setup, teardown),
	    cmocka_unit_test(test_host_and_names),
	    cmocka_unit_test_setup_teardown(test_episode_lifecycle, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_episodes_list_and_abort, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_episode_summary_full, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_diagnoses, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_change_episode_and_act, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_changes_by_state, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migration_2_to_3, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outcome_metrics, setup, teardown),
	};

	return cmocka_run_group_tests_name("memory", tests, NULL, NULL);
}
