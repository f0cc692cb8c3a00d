/* internal.h - what the files of agent/memory/ share, and the hooks the unit test uses.
 *
 * Not for the rest of the agent: include memory/memory.h there.
 *
 * Invariants: a statement from mem_stmt() is reset and has no bindings; the caller resets it
 * again after use (the _cleanup_stmt_ local does it), so that no read transaction stays open
 * between calls. Writes go between mem_tx_begin() and mem_tx_commit(); any error path calls
 * mem_tx_rollback(), which is harmless when no transaction is open.
 */
#ifndef HS_MEMORY_INTERNAL_H
#define HS_MEMORY_INTERNAL_H

#include <inttypes.h>
#include <sqlite3.h>

#include "memory/memory.h"

#define MEM_STMT_CACHE	    64
#define MEM_BUSY_TIMEOUT_MS 5000

struct mem_stmt_slot {
	const char *sql; /* the key: the address of a static SQL string */
	sqlite3_stmt *stmt;
};

struct mem {
	sqlite3 *db;
	struct mem_stmt_slot stmts[MEM_STMT_CACHE];
	int64_t (*clock)(void *ud);
	void *clock_ud;
	char kernel[MEM_KERNEL_MAX];
	char host_class[MEM_HOST_CLASS_MAX];
	char last_error[512];
	int last_err; /* the -errno of last_error */
};

/* One versioned migration: the SQL that takes the schema from version - 1 to version. */
struct mem_migration {
	int version;
	const char *sql;
};

/* The migrations of this code, in order, versions 1..n. */
extern const struct mem_migration mem_migrations[];
extern const size_t mem_migrations_count;

/* mem_open() with another migration list (the unit test checks the mechanism with it). */
int mem_open_migrations(const char *path, const struct mem_migration *list, size_t n,
			struct mem **out);
/* Runs every migration of list newer than the database, each in its own transaction with
 * the new PRAGMA user_version. -EPROTO if the database is newer than list. */
int mem_migrate(struct mem *m, const struct mem_migration *list, size_t n);
/* Replaces the wall clock (milliseconds since the epoch) for tests; NULL restores it. */
void mem_set_clock(struct mem *m, int64_t (*clock)(void *ud), void *ud);
int64_t mem_now(struct mem *m);

/* The cached statement for sql (a static string: its address is the key), or NULL with
 * last_error set. */
sqlite3_stmt *mem_stmt(struct mem *m, const char *sql);
/* The -errno of the mem_stmt() that returned NULL. */
static inline int mem_stmt_error(struct mem *m)
{
	return m->last_err < 0 ? m->last_err : -EIO;
}
static inline void mem_stmt_resetp(sqlite3_stmt **st)
{
	if (*st) {
		sqlite3_reset(*st);
		sqlite3_clear_bindings(*st);
	}
}
#define _cleanup_stmt_ _cleanup_(mem_stmt_resetp)

int mem_tx_begin(struct mem *m);
int mem_tx_commit(struct mem *m);
void mem_tx_rollback(struct mem *m);

/* Maps a sqlite result code to -errno and records "what: sqlite's message" as last error. */
int mem_sql_error(struct mem *m, int rc, const char *what);
/* Records the formatted message as last error, logs it at debug and returns err. */
int mem_error(struct mem *m, int err, const char *fmt, ...) HS_PRINTF(3, 4);
/* Steps a statement that returns no row; resets it. 0 or -errno. */
int mem_step_done(struct mem *m, sqlite3_stmt *st, const char *what);

/* Binds s, or "" for NULL, as text (SQLITE_STATIC: s must outlive the step). */
int mem_bind_text(sqlite3_stmt *st, int idx, const char *s);
/* Binds id, or NULL for 0. */
int mem_bind_id(sqlite3_stmt *st, int idx, int64_t id);

/* Appends an audit row inside the caller's transaction (or as its own). Returns seq. */
int64_t mem_audit_insert(struct mem *m, const char *actor, const char *event, int64_t change_id,
			 const char *detail);

/* Moves change id from state from to state to (updated_at, acted_at when to is INTENT) and
 * appends its audit row "change.<to>", inside the caller's transaction. Checks nothing about
 * the transition: the callers do. */
int mem_change_move(struct mem *m, int64_t id, enum mem_state from, enum mem_state to,
		    const char *actor, const char *note);

/* Column list of a change, for SELECT ... and mem_change_from_row(). */
#define MEM_CHANGE_COLUMNS                                                                         \
	"c.id, c.created_at, c.updated_at, c.acted_at, c.kind, c.state, c.target, c.knob, "        \
	"c.before, c.after, c.why, c.source, c.fingerprint, c.revert, c.episode_id, c.act"
#define MEM_CHANGE_NCOLUMNS 16
#define MEM_OUTCOME_COLUMNS                                                                        \
	"o.id, o.change_id, o.at, o.fitness_before, o.fitness_after, o.verdict, o.stats, "         \
	"o.result, o.failure_reason"
#define MEM_OUTCOME_NCOLUMNS 9
/* Heap copies (one allocation each) of the row's columns starting at col; NULL if out of
 * memory or the row holds an unknown name. mem_outcome_from_row() also returns NULL when the
 * outcome columns are NULL (a LEFT JOIN without outcome): check the id column first. */
struct mem_change *mem_change_from_row(sqlite3_stmt *st, int col);
struct mem_outcome *mem_outcome_from_row(sqlite3_stmt *st, int col);

/* The fingerprint of a change on this host (kind, target, knob, after, kernel, class). */
int mem_change_fingerprint(struct mem *m, const struct mem_change *c, char *buf, size_t size);

#endif
