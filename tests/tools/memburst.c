/* memburst.c - writes to the memory database as fast as it can, for the kill -9 test.
 *
 *   memburst DB [--seconds N]        burst: one line on stdout per committed transaction
 *   memburst --verify DB LOG...      check that every line of the logs is in DB
 *
 * Why: tests/integration/0020-memory-crash.sh kills the burst with SIGKILL, at a different
 * moment each round, and then checks that nothing reported as committed was lost and that the
 * file is intact.
 *
 * Invariants: a line is printed (and flushed) only after the transaction it names returned
 * from COMMIT, so every complete line is a promise the database must keep. A line cut short
 * by the kill has no '\n' and promises nothing; --verify ignores it. Lines:
 *   change ID            mem_change_intent() committed change ID (state INTENT)
 *   applied ID           mem_change_set_state(ID, APPLIED) committed
 *   outcome OID ID       mem_outcome_record() committed outcome OID, change ID now KEPT
 *   audit SEQ            mem_audit() committed audit row SEQ
 */
#include <inttypes.h>
#include <sqlite3.h>
#include <time.h>

#include "memory/memory.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One cycle: intent, applied, outcome, audit; a line after each commit. 0 or -errno. */
static int cycle(struct mem *m, unsigned i)
{
	char after[32];
	struct mem_change c = {
	    .kind = MEM_KIND_SYSCTL,
	    .target = "burst",
	    .knob = "net.core.somaxconn",
	    .before = "4096",
	    .after = after,
	    .why = "memburst: crash-safety test",
	    .source = "test:memburst",
	    .revert = "sysctl -w net.core.somaxconn=4096",
	};
	struct mem_outcome o = {
	    .fitness_before = 0.5,
	    .fitness_after = 0.6,
	    .verdict = MEM_VERDICT_KEEP,
	    .stats_json = "{\"test\":\"memburst\"}",
	    .result = MEM_RESULT_DEPLOYED,
	};
	int64_t id, oid, seq;
	int r;

	snprintf(after, sizeof(after), "%u", 1024 + i);
	id = mem_change_intent(m, &c);
	if (id < 0)
		return (int)id;
	printf("change %" PRId64 "\n", id);
	fflush(stdout);

	r = mem_change_set_state(m, id, MEM_STATE_APPLIED, "test:memburst", "canary");
	if (r < 0)
		return r;
	printf("applied %" PRId64 "\n", id);
	fflush(stdout);

	o.change_id = id;
	oid = mem_outcome_record(m, &o, "test:memburst");
	if (oid < 0)
		return (int)oid;
	printf("outcome %" PRId64 " %" PRId64 "\n", oid, id);
	fflush(stdout);

	seq = mem_audit(m, "test:memburst", "burst.tick", id, "iteration %u", i);
	if (seq < 0)
		return (int)seq;
	printf("audit %" PRId64 "\n", seq);
	fflush(stdout);
	return 0;
}

static int burst(const char *path, int seconds)
{
	struct mem *m = NULL;
	int64_t end = now_ms() + (int64_t)seconds * 1000;
	int r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	r = mem_open(path, &m);
	if (r < 0) {
		fprintf(stderr, "memburst: cannot open '%s': %s\n", path, strerror(-r));
		return 1;
	}
	for (unsigned i = 0; now_ms() < end; i++) {
		r = cycle(m, i);
		if (r < 0) {
			fprintf(stderr, "memburst: write failed: %s: %s\n", strerror(-r),
				mem_last_error(m));
			break;
		}
	}
	mem_close(m);
	return r < 0;
}

struct verifier {
	sqlite3 *db;
	sqlite3_stmt *change, *outcome, *audit;
	long checked, missing, torn;
};

static int64_t query_one(sqlite3_stmt *st, int64_t a, bool *found, const char **text)
{
	static char buf[64];
	int64_t v = 0;

	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, a);
	*found = sqlite3_step(st) == SQLITE_ROW;
	if (*found) {
		v = sqlite3_column_int64(st, 0);
		if (text) {
			snprintf(buf, sizeof(buf), "%s",
				 (const char *)sqlite3_column_text(st, 1) ?: "");
			*text = buf;
		}
	}
	sqlite3_reset(st);
	return v;
}

static void verify_line(struct verifier *v, const char *line, const char *log, long lineno)
{
	int64_t a, b, got;
	const char *state = "";
	bool found;
	char word[16];
	int n = sscanf(line, "%15s %" SCNd64 " %" SCNd64, word, &a, &b);

	v->checked++;
	if (n >= 2 && streq(word, "change")) {
		query_one(v->change, a, &found, &state);
		if (found)
			return;
	} else if (n >= 2 && streq(word, "applied")) {
		query_one(v->change, a, &found, &state);
		if (found && (streq(state, "APPLIED") || streq(state, "KEPT")))
			return;
	} else if (n == 3 && streq(word, "outcome")) {
		got = query_one(v->outcome, a, &found, &state);
		if (found && got == b && streq(state, "KEPT"))
			return;
	} else if (n >= 2 && streq(word, "audit")) {
		query_one(v->audit, a, &found, NULL);
		if (found)
			return;
	}
	v->missing++;
	fprintf(stderr, "%s:%ld: committed but missing or wrong: '%s' (state '%s')\n", log, lineno,
		line, state);
}

static int verify_log(struct verifier *v, const char *log)
{
	FILE *f = fopen(log, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	long lineno = 0;

	if (!f) {
		fprintf(stderr, "memburst: cannot open '%s': %m\n", log);
		return -1;
	}
	while ((len = getline(&line, &cap, f)) > 0) {
		lineno++;
		if (line[len - 1] != '\n') {
			v->torn++; /* cut short by the kill: promises nothing */
			continue;
		}
		line[len - 1] = '\0';
		verify_line(v, line, log, lineno);
	}
	free(line);
	fclose(f);
	return 0;
}

static int verify(const char *path, char **logs, int nlogs)
{
	struct verifier v = {0};
	struct mem *m = NULL;
	sqlite3_stmt *st;
	int r, bad = 0;

	/* Through the library first: the schema must still open and be current. */
	r = mem_open(path, &m);
	if (r < 0) {
		fprintf(stderr, "memburst: cannot open '%s' after the crashes: %s\n", path,
			strerror(-r));
		return 1;
	}
	printf("schema version %d\n", mem_schema_version(m));
	mem_close(m);

	if (sqlite3_open_v2(path, &v.db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		fprintf(stderr, "memburst: cannot open '%s': %s\n", path, sqlite3_errmsg(v.db));
		return 1;
	}
	if (sqlite3_prepare_v2(v.db, "SELECT id, state FROM changes WHERE id = ?1", -1, &v.change,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(v.db,
			       "SELECT o.change_id, c.state FROM outcomes o"
			       " JOIN changes c ON c.id = o.change_id WHERE o.id = ?1",
			       -1, &v.outcome, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(v.db, "SELECT seq FROM audit WHERE seq = ?1", -1, &v.audit, NULL) !=
		SQLITE_OK) {
		fprintf(stderr, "memburst: cannot prepare: %s\n", sqlite3_errmsg(v.db));
		return 1;
	}
	for (int i = 0; i < nlogs; i++)
		if (verify_log(&v, logs[i]) < 0)
			bad = 1;

	if (sqlite3_prepare_v2(v.db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK) {
		const char *res = "";

		if (sqlite3_step(st) == SQLITE_ROW)
			res = (const char *)sqlite3_column_text(st, 0) ?: "";
		printf("integrity_check %s\n", res);
		if (!streq(res, "ok"))
			bad = 1;
		sqlite3_finalize(st);
	}
	if (sqlite3_prepare_v2(v.db,
			       "SELECT count(*) FROM changes WHERE state IN ('INTENT', 'APPLIED')",
			       -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			printf("unconcluded %lld (the daemon would roll these back)\n",
			       sqlite3_column_int64(st, 0));
		sqlite3_finalize(st);
	}
	printf("checked %ld committed rows, %ld missing, %ld torn lines ignored\n", v.checked,
	       v.missing, v.torn);
	sqlite3_finalize(v.change);
	sqlite3_finalize(v.outcome);
	sqlite3_finalize(v.audit);
	sqlite3_close(v.db);
	return bad || v.missing || v.checked == 0;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && streq(argv[1], "--verify"))
		return verify(argv[2], argv + 3, argc - 3);
	if (argc == 2)
		return burst(argv[1], 30);
	if (argc == 4 && streq(argv[2], "--seconds"))
		return burst(argv[1], atoi(argv[3]));
	fprintf(stderr, "usage: memburst DB [--seconds N]\n"
			"       memburst --verify DB LOG...\n");
	return 2;
}
