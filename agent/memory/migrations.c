/* migrations.c - the versioned schema of the memory database and the code that migrates it.
 *
 * Why: the database outlives the binary; an old database must be brought forward, and a new
 * one must never be written by old code (it could not know the new invariants): -EPROTO.
 *
 * Invariants:
 * - PRAGMA user_version is the number of the last migration applied; 0 is an empty file.
 * - Migration N runs in its own BEGIN IMMEDIATE transaction with "PRAGMA user_version = N",
 *   which re-reads the version first: two processes opening a fresh file migrate it once.
 *   A migration that fails leaves the database exactly at version N - 1.
 * - Migrations are never edited once released: add migration N + 1 instead.
 * - Tables are STRICT; closed vocabularies (states, verdicts, results) are CHECKed; the
 *   history cannot be erased: audit and outcomes refuse UPDATE and DELETE, changes and
 *   approvals refuse DELETE (RAISE(ABORT), which sqlite reports as a constraint error).
 *   The fitness history (2) is measurements, downsampled, and pruned after its retention.
 *   Episodes (3) refuse DELETE, and UPDATE once ended; diagnoses refuse UPDATE and DELETE.
 */
#include "lib/log.h"
#include "memory/internal.h"

static const char migration_1[] =
    /* Ids are AUTOINCREMENT: never reused, so an id printed once names one change forever. */
    "CREATE TABLE changes ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  acted_at INTEGER," /* entered INTENT: the budget's 'changes per hour' */
    "  kind TEXT NOT NULL,"
    "  target TEXT NOT NULL CHECK (target <> ''),"
    "  knob TEXT NOT NULL CHECK (knob <> ''),"
    "  before TEXT NOT NULL DEFAULT '',"
    "  after TEXT NOT NULL DEFAULT '',"
    "  why TEXT NOT NULL DEFAULT '',"
    "  source TEXT NOT NULL DEFAULT '',"
    "  fingerprint TEXT NOT NULL,"
    "  revert TEXT NOT NULL DEFAULT '',"
    "  state TEXT NOT NULL CHECK (state IN ('PROPOSED', 'PENDING_APPROVAL', 'APPROVED',"
    "    'INTENT', 'APPLIED', 'KEPT', 'ROLLED_BACK', 'FAILED', 'DENIED'))"
    ") STRICT;"
    "CREATE INDEX changes_fingerprint ON changes (fingerprint);"
    "CREATE INDEX changes_state ON changes (state);"
    "CREATE INDEX changes_acted_at ON changes (acted_at);"
    "CREATE TRIGGER changes_no_delete BEFORE DELETE ON changes"
    "  BEGIN SELECT RAISE(ABORT, 'changes are never deleted'); END;"

    "CREATE TABLE outcomes ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  change_id INTEGER NOT NULL REFERENCES changes (id),"
    "  at INTEGER NOT NULL,"
    "  fitness_before REAL,"
    "  fitness_after REAL,"
    "  verdict TEXT NOT NULL CHECK (verdict IN ('KEEP', 'ROLLBACK', 'INCONCLUSIVE', 'NONE')),"
    "  stats TEXT NOT NULL DEFAULT '{}'," /* JSON, checked by mem_outcome_record() */
    "  result TEXT NOT NULL CHECK (result IN ('DEPLOYED', 'ROLLED_BACK', 'FAILED')),"
    "  failure_reason TEXT NOT NULL DEFAULT ''"
    ") STRICT;"
    "CREATE INDEX outcomes_change ON outcomes (change_id, id);"
    "CREATE TRIGGER outcomes_no_update BEFORE UPDATE ON outcomes"
    "  BEGIN SELECT RAISE(ABORT, 'outcomes are append-only'); END;"
    "CREATE TRIGGER outcomes_no_delete BEFORE DELETE ON outcomes"
    "  BEGIN SELECT RAISE(ABORT, 'outcomes are append-only'); END;"

    /* One approval per change: `homeostat approve ID` takes the change id. */
    "CREATE TABLE approvals ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  change_id INTEGER NOT NULL UNIQUE REFERENCES changes (id),"
    "  state TEXT NOT NULL CHECK (state IN ('PENDING', 'APPROVED', 'REJECTED', 'EXPIRED')),"
    "  requested_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL,"
    "  decided_at INTEGER,"
    "  decided_by TEXT NOT NULL DEFAULT ''"
    ") STRICT;"
    "CREATE INDEX approvals_state ON approvals (state, expires_at);"
    "CREATE TRIGGER approvals_no_delete BEFORE DELETE ON approvals"
    "  BEGIN SELECT RAISE(ABORT, 'approvals are never deleted'); END;"

    "CREATE TABLE audit ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  at INTEGER NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  event TEXT NOT NULL,"
    "  change_id INTEGER REFERENCES changes (id),"
    "  detail TEXT NOT NULL DEFAULT ''"
    ") STRICT;"
    "CREATE INDEX audit_change ON audit (change_id);"
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
    "  BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;"
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
    "  BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;";

/* 2: the fitness history, one row per target per bucket (agent/fitness/). Not append-only:
 * rows past their retention are deleted. Read by target and time (the judge, explain) and
 * pruned by time, hence the two indexes on end_at. */
static const char migration_2[] =
    "CREATE TABLE fitness ("
    "  id INTEGER PRIMARY KEY,"
    "  target TEXT NOT NULL CHECK (target <> ''),"
    "  start_at INTEGER NOT NULL,"
    "  end_at INTEGER NOT NULL CHECK (end_at >= start_at),"
    "  samples INTEGER NOT NULL CHECK (samples > 0),"
    "  scored INTEGER NOT NULL CHECK (scored BETWEEN 0 AND samples),"
    "  score_min REAL,"
    "  score_avg REAL,"
    "  score_max REAL,"
    "  latency REAL,"
    "  errors REAL,"
    "  throughput REAL,"
    "  cost REAL,"
    "  basis TEXT NOT NULL CHECK (basis IN ('slo', 'baseline', 'learning', 'idle'))"
    ") STRICT;"
    "CREATE INDEX fitness_target_end ON fitness (target, end_at);"
    "CREATE INDEX fitness_end ON fitness (end_at);";

/* 3: episodes (one firing of a runbook on a target, from detection to its end), the
 * diagnoses captured during them (zlib-compressed text), and two columns of changes: the
 * episode a change belongs to and the actuator's request as opaque text (act), so that a
 * later process can rebuild the request and revert the change. An episode is written while
 * it runs (summary, updated_at) and is final once ended_at is set; its identity (runbook,
 * target, pid, started_at, why) never changes. CHECK: ended_at is set exactly when the state
 * is not OPEN. ADD COLUMN ... REFERENCES needs a NULL default: NULL is "no episode". */
static const char migration_3[] =
    "CREATE TABLE episodes ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  runbook TEXT NOT NULL CHECK (runbook <> ''),"
    "  target TEXT NOT NULL CHECK (target <> ''),"
    "  pid INTEGER NOT NULL DEFAULT 0 CHECK (pid >= 0)," /* 0: none */
    "  started_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  ended_at INTEGER,"
    "  state TEXT NOT NULL CHECK (state IN ('OPEN', 'RESOLVED', 'UNRESOLVED', 'CLEARED',"
    "    'REFUSED', 'DRY_RUN', 'ABORTED')),"
    "  why TEXT NOT NULL DEFAULT '',"
    "  summary TEXT NOT NULL DEFAULT '',"
    "  CHECK ((state = 'OPEN') = (ended_at IS NULL))"
    ") STRICT;"
    "CREATE INDEX episodes_open ON episodes (id) WHERE ended_at IS NULL;"
    "CREATE TRIGGER episodes_no_delete BEFORE DELETE ON episodes"
    "  BEGIN SELECT RAISE(ABORT, 'episodes are never deleted'); END;"
    "CREATE TRIGGER episodes_ended_final BEFORE UPDATE ON episodes"
    "  WHEN OLD.ended_at IS NOT NULL"
    "  BEGIN SELECT RAISE(ABORT, 'an ended episode is final'); END;"
    "CREATE TRIGGER episodes_identity BEFORE UPDATE ON episodes"
    "  WHEN NEW.id IS NOT OLD.id OR NEW.runbook IS NOT OLD.runbook"
    "    OR NEW.target IS NOT OLD.target OR NEW.pid IS NOT OLD.pid"
    "    OR NEW.started_at IS NOT OLD.started_at OR NEW.why IS NOT OLD.why"
    "  BEGIN SELECT RAISE(ABORT, 'the identity of an episode never changes'); END;"

    "CREATE TABLE diagnoses ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  episode_id INTEGER NOT NULL REFERENCES episodes (id),"
    "  at INTEGER NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind <> ''),"
    "  summary TEXT NOT NULL DEFAULT '',"
    "  raw_size INTEGER NOT NULL CHECK (raw_size >= 0)," /* bytes of the text */
    "  data BLOB NOT NULL"				 /* zlib (compress2) of the text */
    ") STRICT;"
    "CREATE INDEX diagnoses_episode ON diagnoses (episode_id, id);"
    "CREATE TRIGGER diagnoses_no_update BEFORE UPDATE ON diagnoses"
    "  BEGIN SELECT RAISE(ABORT, 'diagnoses are append-only'); END;"
    "CREATE TRIGGER diagnoses_no_delete BEFORE DELETE ON diagnoses"
    "  BEGIN SELECT RAISE(ABORT, 'diagnoses are append-only'); END;"

    "ALTER TABLE changes ADD COLUMN episode_id INTEGER REFERENCES episodes (id);"
    "ALTER TABLE changes ADD COLUMN act TEXT NOT NULL DEFAULT '';"
    "CREATE INDEX changes_episode ON changes (episode_id);";

const struct mem_migration mem_migrations[] = {
    {1, migration_1},
    {2, migration_2},
    {3, migration_3},
};
const size_t mem_migrations_count = ARRAY_SIZE(mem_migrations);

static int read_version(struct mem *m)
{
	return mem_schema_version(m);
}

static int apply_one(struct mem *m, const struct mem_migration *mig)
{
	char pragma[64];
	char *msg = NULL;
	int rc, v, r;

	r = mem_tx_begin(m);
	if (r < 0)
		return r;
	v = read_version(m);
	if (v < 0) {
		r = v;
		goto fail;
	}
	if (v >= mig->version) {
		/* another process migrated while we waited for the lock */
		mem_tx_rollback(m);
		return 0;
	}
	if (v != mig->version - 1) {
		r = mem_error(m, -EIO, "schema version %d cannot be migrated to %d", v,
			      mig->version);
		goto fail;
	}
	/* Static SQL of this file only: no data is ever part of it. */
	rc = sqlite3_exec(m->db, mig->sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		r = mem_error(m, -EIO, "migration %d failed: %s", mig->version, msg ? msg : "?");
		sqlite3_free(msg);
		goto fail;
	}
	snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", mig->version);
	rc = sqlite3_exec(m->db, pragma, NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		r = mem_sql_error(m, rc, "cannot set user_version");
		goto fail;
	}
	r = mem_tx_commit(m);
	if (r < 0)
		return r;
	log_debug("memory: migrated schema to version %d", mig->version);
	return 0;
fail:
	mem_tx_rollback(m);
	return r;
}

int mem_migrate(struct mem *m, const struct mem_migration *list, size_t n)
{
	int v, r;

	for (size_t i = 0; i < n; i++)
		if (list[i].version != (int)i + 1 || !list[i].sql)
			return mem_error(m, -EINVAL, "migration %zu has version %d, expected %zu",
					 i, list[i].version, i + 1);
	v = read_version(m);
	if (v < 0)
		return v;
	if ((size_t)v > n)
		return mem_error(m, -EPROTO,
				 "database schema version %d is newer than this homeostat's %zu", v,
				 n);
	for (size_t i = (size_t)v; i < n; i++) {
		r = apply_one(m, &list[i]);
		if (r < 0)
			return r;
	}
	/* A newer homeostat may have migrated past us while we waited for the lock. */
	v = read_version(m);
	if (v < 0)
		return v;
	if ((size_t)v > n)
		return mem_error(m, -EPROTO,
				 "database schema version %d is newer than this homeostat's %zu", v,
				 n);
	return 0;
}
