/* memory.c - opening the database, errors, the statement cache, transactions, the audit trail
 * and the names of the enums.
 *
 * Why this way: the file is created by us with mode 0600 (O_NOFOLLOW, so a symlink planted in
 * its place is refused) before sqlite opens it; sqlite gives its -wal and -shm files the same
 * mode. WAL with synchronous=FULL makes every COMMIT durable before it returns, which is what
 * write-ahead intent needs. Statements are prepared once (SQLITE_PREPARE_PERSISTENT) and
 * looked up by the address of their static SQL string, so that the SQL stays next to the code
 * that runs it and no SQL is ever built from data.
 *
 * Invariants: after a failed call last_error holds its reason; a struct mem never has an open
 * transaction between calls.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include "lib/log.h"
#include "memory/internal.h"

static const char *const kind_names[MEM_KIND_COUNT] = {
    [MEM_KIND_RLIMIT] = "rlimit", [MEM_KIND_SYSCTL] = "sysctl", [MEM_KIND_CGROUP] = "cgroup",
    [MEM_KIND_NICE] = "nice",	  [MEM_KIND_SIGNAL] = "signal", [MEM_KIND_RESTART] = "restart",
    [MEM_KIND_PATCH] = "patch",	  [MEM_KIND_FILE] = "file",
};

static const char *const state_names[MEM_STATE_COUNT] = {
    [MEM_STATE_PROPOSED] = "PROPOSED",	     [MEM_STATE_PENDING_APPROVAL] = "PENDING_APPROVAL",
    [MEM_STATE_APPROVED] = "APPROVED",	     [MEM_STATE_INTENT] = "INTENT",
    [MEM_STATE_APPLIED] = "APPLIED",	     [MEM_STATE_KEPT] = "KEPT",
    [MEM_STATE_ROLLED_BACK] = "ROLLED_BACK", [MEM_STATE_FAILED] = "FAILED",
    [MEM_STATE_DENIED] = "DENIED",
};

static const char *const verdict_names[MEM_VERDICT_COUNT] = {
    [MEM_VERDICT_KEEP] = "KEEP",
    [MEM_VERDICT_ROLLBACK] = "ROLLBACK",
    [MEM_VERDICT_INCONCLUSIVE] = "INCONCLUSIVE",
    [MEM_VERDICT_NONE] = "NONE",
};

static const char *const result_names[MEM_RESULT_COUNT] = {
    [MEM_RESULT_DEPLOYED] = "DEPLOYED",
    [MEM_RESULT_ROLLED_BACK] = "ROLLED_BACK",
    [MEM_RESULT_FAILED] = "FAILED",
};

static const char *const approval_names[MEM_APPROVAL_COUNT] = {
    [MEM_APPROVAL_PENDING] = "PENDING",
    [MEM_APPROVAL_APPROVED] = "APPROVED",
    [MEM_APPROVAL_REJECTED] = "REJECTED",
    [MEM_APPROVAL_EXPIRED] = "EXPIRED",
};

static const char *const episode_names[MEM_EPISODE_COUNT] = {
    [MEM_EPISODE_OPEN] = "OPEN",
    [MEM_EPISODE_RESOLVED] = "RESOLVED",
    [MEM_EPISODE_UNRESOLVED] = "UNRESOLVED",
    [MEM_EPISODE_CLEARED] = "CLEARED",
    [MEM_EPISODE_REFUSED] = "REFUSED",
    [MEM_EPISODE_DRY_RUN] = "DRY_RUN",
    [MEM_EPISODE_ABORTED] = "ABORTED",
};

/* transitions[from] is the set of states mem_change_set_state() may move a change to.
 * PENDING_APPROVAL is absent on both sides: only approvals.c moves a change in or out. */
#define S(x) (1u << MEM_STATE_##x)
static const unsigned transitions[MEM_STATE_COUNT] = {
    [MEM_STATE_PROPOSED] = S(INTENT) | S(DENIED),
    [MEM_STATE_PENDING_APPROVAL] = 0,
    [MEM_STATE_APPROVED] = S(INTENT) | S(DENIED),
    [MEM_STATE_INTENT] = S(APPLIED) | S(FAILED) | S(ROLLED_BACK),
    [MEM_STATE_APPLIED] = S(KEPT) | S(ROLLED_BACK) | S(FAILED),
    [MEM_STATE_KEPT] = S(ROLLED_BACK),
    [MEM_STATE_ROLLED_BACK] = 0,
    [MEM_STATE_FAILED] = 0,
    [MEM_STATE_DENIED] = 0,
};
#undef S

static const char *name_of(const char *const *names, int count, int v)
{
	return v >= 0 && v < count ? names[v] : NULL;
}

static int value_of(const char *const *names, int count, const char *name)
{
	if (!name)
		return -EINVAL;
	for (int i = 0; i < count; i++)
		if (names[i] && streq(names[i], name))
			return i;
	return -EINVAL;
}

const char *mem_kind_name(enum mem_kind k)
{
	return name_of(kind_names, MEM_KIND_COUNT, k);
}

const char *mem_state_name(enum mem_state s)
{
	return name_of(state_names, MEM_STATE_COUNT, s);
}

const char *mem_verdict_name(enum mem_verdict v)
{
	return name_of(verdict_names, MEM_VERDICT_COUNT, v);
}

const char *mem_result_name(enum mem_result r)
{
	return name_of(result_names, MEM_RESULT_COUNT, r);
}

const char *mem_approval_state_name(enum mem_approval_state s)
{
	return name_of(approval_names, MEM_APPROVAL_COUNT, s);
}

const char *mem_episode_state_name(enum mem_episode_state s)
{
	return name_of(episode_names, MEM_EPISODE_COUNT, s);
}

int mem_kind_from_name(const char *name)
{
	return value_of(kind_names, MEM_KIND_COUNT, name);
}

int mem_state_from_name(const char *name)
{
	return value_of(state_names, MEM_STATE_COUNT, name);
}

int mem_verdict_from_name(const char *name)
{
	return value_of(verdict_names, MEM_VERDICT_COUNT, name);
}

int mem_result_from_name(const char *name)
{
	return value_of(result_names, MEM_RESULT_COUNT, name);
}

int mem_approval_state_from_name(const char *name)
{
	return value_of(approval_names, MEM_APPROVAL_COUNT, name);
}

int mem_episode_state_from_name(const char *name)
{
	return value_of(episode_names, MEM_EPISODE_COUNT, name);
}

bool mem_transition_allowed(enum mem_state from, enum mem_state to)
{
	if ((unsigned)from >= MEM_STATE_COUNT || (unsigned)to >= MEM_STATE_COUNT)
		return false;
	return transitions[from] & (1u << to);
}

/* Errors */

static int errno_of_sqlite(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_CONSTRAINT:
		if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
			return -EEXIST;
		return -EINVAL;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	default:
		return -EIO;
	}
}

int mem_error(struct mem *m, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m->last_error, sizeof(m->last_error), fmt, ap);
	va_end(ap);
	m->last_err = err;
	log_debug("memory: %s", m->last_error);
	return err;
}

int mem_sql_error(struct mem *m, int rc, const char *what)
{
	int err = errno_of_sqlite(rc);

	if (err == 0)
		err = -EIO; /* an unexpected row or DONE where the other was due */
	return mem_error(m, err, "%s: %s (sqlite %d)", what,
			 m->db ? sqlite3_errmsg(m->db) : sqlite3_errstr(rc), rc);
}

const char *mem_last_error(const struct mem *m)
{
	return m ? m->last_error : "no database";
}

/* Clock */

static int64_t wall_clock_ms(void *ud)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mem_set_clock(struct mem *m, int64_t (*clock)(void *ud), void *ud)
{
	m->clock = clock ? clock : wall_clock_ms;
	m->clock_ud = ud;
}

int64_t mem_now(struct mem *m)
{
	return m->clock(m->clock_ud);
}

/* Statements and transactions */

sqlite3_stmt *mem_stmt(struct mem *m, const char *sql)
{
	struct mem_stmt_slot *free_slot = NULL;
	int rc;

	for (size_t i = 0; i < ARRAY_SIZE(m->stmts); i++) {
		struct mem_stmt_slot *s = &m->stmts[i];

		if (s->sql == sql) {
			sqlite3_reset(s->stmt);
			sqlite3_clear_bindings(s->stmt);
			return s->stmt;
		}
		if (!s->sql && !free_slot)
			free_slot = s;
	}
	if (!free_slot) {
		mem_error(m, -ENOMEM, "statement cache full (%d), raise MEM_STMT_CACHE",
			  MEM_STMT_CACHE);
		return NULL;
	}
	rc = sqlite3_prepare_v3(m->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &free_slot->stmt, NULL);
	if (rc != SQLITE_OK) {
		mem_sql_error(m, rc, "cannot prepare statement");
		return NULL;
	}
	free_slot->sql = sql;
	return free_slot->stmt;
}

int mem_step_done(struct mem *m, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	int r = rc == SQLITE_DONE ? 0 : mem_sql_error(m, rc, what);

	sqlite3_reset(st);
	return r;
}

static const char sql_begin[] = "BEGIN IMMEDIATE";
static const char sql_commit[] = "COMMIT";
static const char sql_rollback[] = "ROLLBACK";

int mem_tx_begin(struct mem *m)
{
	sqlite3_stmt *st = mem_stmt(m, sql_begin);

	if (!st)
		return mem_stmt_error(m);
	return mem_step_done(m, st, "cannot begin transaction");
}

int mem_tx_commit(struct mem *m)
{
	sqlite3_stmt *st = mem_stmt(m, sql_commit);
	int r;

	if (!st)
		return mem_stmt_error(m);
	r = mem_step_done(m, st, "cannot commit transaction");
	if (r < 0)
		mem_tx_rollback(m);
	return r;
}

void mem_tx_rollback(struct mem *m)
{
	sqlite3_stmt *st;

	if (sqlite3_get_autocommit(m->db))
		return; /* no transaction open (or sqlite already rolled it back) */
	st = mem_stmt(m, sql_rollback);
	if (st)
		sqlite3_step(st), sqlite3_reset(st);
}

int mem_bind_text(sqlite3_stmt *st, int idx, const char *s)
{
	return sqlite3_bind_text(st, idx, s ? s : "", -1, SQLITE_STATIC);
}

int mem_bind_id(sqlite3_stmt *st, int idx, int64_t id)
{
	return id > 0 ? sqlite3_bind_int64(st, idx, id) : sqlite3_bind_null(st, idx);
}

/* Opening */

static int exec_pragma(struct mem *m, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(m->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		int err = errno_of_sqlite(rc);

		mem_error(m, err ? err : -EIO, "cannot run '%s': %s", sql, msg ? msg : "?");
		sqlite3_free(msg);
		return err ? err : -EIO;
	}
	return 0;
}

static int set_wal(struct mem *m)
{
	sqlite3_stmt *st = NULL;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(m->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return mem_sql_error(m, rc, "cannot set journal_mode=WAL");
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		r = mem_sql_error(m, rc, "cannot set journal_mode=WAL");
	else if (!streq((const char *)sqlite3_column_text(st, 0), "wal"))
		r = mem_error(m, -EIO, "database refused WAL mode (journal_mode is '%s')",
			      (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return r;
}

/* Creates path with mode 0600 if it is missing; refuses a symlink and anything not a regular
 * file. */
static int create_file(struct mem *m, const char *path)
{
	_cleanup_close_ int fd = -1;
	struct stat stb;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (fd < 0)
		return mem_error(m, -errno, "cannot open '%s': %s", path, strerror(errno));
	if (fstat(fd, &stb) < 0)
		return mem_error(m, -errno, "cannot stat '%s': %s", path, strerror(errno));
	if (!S_ISREG(stb.st_mode))
		return mem_error(m, -EINVAL, "'%s' is not a regular file", path);
	return 0;
}

int mem_open_migrations(const char *path, const struct mem_migration *list, size_t n,
			struct mem **out)
{
	struct mem *m;
	int rc, r;

	*out = NULL;
	if (!path || !*path)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	mem_set_clock(m, NULL, NULL);

	r = create_file(m, path);
	if (r < 0)
		goto fail;
	rc = sqlite3_open_v2(
	    path, &m->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		r = mem_sql_error(m, rc, "cannot open database");
		goto fail;
	}
	sqlite3_extended_result_codes(m->db, 1);
	sqlite3_busy_timeout(m->db, MEM_BUSY_TIMEOUT_MS);

	r = set_wal(m);
	if (r < 0)
		goto fail;
	r = exec_pragma(m, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; "
			   "PRAGMA trusted_schema=OFF");
	if (r < 0)
		goto fail;
	r = mem_migrate(m, list, n);
	if (r < 0)
		goto fail;

	/* The host does not change under a running daemon; unknown parts stay "?". */
	if (mem_host_kernel(m->kernel, sizeof(m->kernel)) < 0)
		hs_strlcpy(m->kernel, "?", sizeof(m->kernel));
	if (mem_host_class(m->host_class, sizeof(m->host_class)) < 0)
		hs_strlcpy(m->host_class, "?", sizeof(m->host_class));
	m->last_error[0] = '\0';
	m->last_err = 0;
	*out = m;
	return 0;
fail:
	log_debug("memory: cannot open '%s': %s", path, m->last_error);
	mem_close(m);
	return r;
}

int mem_open(const char *path, struct mem **out)
{
	return mem_open_migrations(path, mem_migrations, mem_migrations_count, out);
}

void mem_close(struct mem *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(m->stmts); i++)
		sqlite3_finalize(m->stmts[i].stmt);
	if (m->db) {
		sqlite3_exec(m->db, "PRAGMA optimize", NULL, NULL, NULL);
		sqlite3_close_v2(m->db);
	}
	free(m);
}

int mem_schema_version(struct mem *m)
{
	static const char sql[] = "PRAGMA user_version";
	_cleanup_stmt_ sqlite3_stmt *st = mem_stmt(m, sql);
	int rc;

	if (!st)
		return mem_stmt_error(m);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return mem_sql_error(m, rc, "cannot read user_version");
	return sqlite3_column_int(st, 0);
}

/* Audit */

int64_t mem_audit_insert(struct mem *m, const char *actor, const char *event, int64_t change_id,
			 const char *detail)
{
	static const char sql[] =
	    "INSERT INTO audit (at, actor, event, change_id, detail) VALUES (?1, ?2, ?3, ?4, ?5)";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (!actor || !*actor || !event || !*event)
		return mem_error(m, -EINVAL, "audit row needs an actor and an event");
	st = mem_stmt(m, sql);
	if (!st)
		return mem_stmt_error(m);
	sqlite3_bind_int64(st, 1, mem_now(m));
	mem_bind_text(st, 2, actor);
	mem_bind_text(st, 3, event);
	mem_bind_id(st, 4, change_id);
	mem_bind_text(st, 5, detail);
	r = mem_step_done(m, st, "cannot append audit row");
	if (r < 0)
		return r;
	return sqlite3_last_insert_rowid(m->db);
}

int64_t mem_audit(struct mem *m, const char *actor, const char *event, int64_t change_id,
		  const char *fmt, ...)
{
	_cleanup_free_ char *detail = NULL;
	va_list ap;
	int n;

	if (!m || !fmt)
		return -EINVAL;
	va_start(ap, fmt);
	n = vasprintf(&detail, fmt, ap);
	va_end(ap);
	if (n < 0) {
		detail = NULL;
		return mem_error(m, -ENOMEM, "cannot format audit detail");
	}
	if (n > MEM_TEXT_MAX)
		return mem_error(m, -E2BIG, "audit detail of %d bytes, the most is %d", n,
				 MEM_TEXT_MAX);
	/* One INSERT outside a transaction commits by itself. */
	return mem_audit_insert(m, actor, event, change_id, detail);
}

int mem_audit_last_of(struct mem *m, const char *event_a, const char *event_b, char *out,
		      size_t size)
{
	static const char sql[] =
	    "SELECT event FROM audit WHERE event IN (?1, ?2) ORDER BY seq DESC LIMIT 1";
	_cleanup_stmt_ sqlite3_stmt *st = mem_stmt(m, sql);
	int rc;

	if (!st)
		return mem_stmt_error(m);
	mem_bind_text(st, 1, event_a);
	mem_bind_text(st, 2, event_b);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return mem_sql_error(m, rc, "cannot read the audit trail");
	if (hs_strlcpy(out, (const char *)sqlite3_column_text(st, 0), size))
		return -ENAMETOOLONG;
	return 0;
}
