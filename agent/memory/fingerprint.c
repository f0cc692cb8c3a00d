/* fingerprint.c - what makes two changes "the same", and should_attempt().
 *
 * Why: the daemon must never retry what already failed. Two changes are the same when they do
 * the same kind of thing to the same knob of the same target, to a value of the same order of
 * magnitude, on the same kernel (major.minor) and the same class of host; a kernel upgrade or
 * a bigger machine earns a new try.
 *
 * Invariants: a fingerprint is a pure function of its candidate (no clock, no database), so
 * one written years ago still matches today; changing its format means a migration that
 * recomputes the column. Fields are separated by '|' and escaped (%XX), so no field can
 * forge a separator.
 */
#include <ctype.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <time.h>

#include "lib/log.h"
#include "memory/internal.h"

struct sbuf {
	char *p;
	size_t size, len;
	bool overflow;
};

static void sb_putc(struct sbuf *b, char c)
{
	if (b->len + 1 >= b->size) {
		b->overflow = true;
		return;
	}
	b->p[b->len++] = c;
	b->p[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
	while (*s)
		sb_putc(b, *s++);
}

/* Writes s with '|', '%' and control characters as %XX. */
static void sb_put_escaped(struct sbuf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '|' || c == '%' || c < 0x20 || c == 0x7f) {
			sb_putc(b, '%');
			sb_putc(b, hex[c >> 4]);
			sb_putc(b, hex[c & 0xf]);
		} else {
			sb_putc(b, (char)c);
		}
	}
}

/* Parses one decimal integer token [start, end): optional sign, digits only. */
static bool parse_int(const char *start, const char *end, bool *neg, uint64_t *mag)
{
	uint64_t v = 0;
	const char *p = start;

	*neg = false;
	if (p < end && (*p == '+' || *p == '-'))
		*neg = *p++ == '-';
	if (p == end)
		return false;
	for (; p < end; p++) {
		if (!isdigit((unsigned char)*p))
			return false;
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return false; /* too big for a number: it stays text */
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*mag = v;
	return true;
}

/* Visits the blank-separated tokens of value; with b == NULL only checks that all are
 * integers. */
static bool bucket_value(const char *value, struct sbuf *b)
{
	const char *p = value;
	bool first = true;

	if (b)
		sb_putc(b, 'v');
	for (;;) {
		const char *start;
		uint64_t mag;
		bool neg;

		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		start = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		if (!parse_int(start, p, &neg, &mag))
			return false;
		if (!b) {
			first = false;
			continue;
		}
		if (!first)
			sb_putc(b, ',');
		first = false;
		if (mag == 0) {
			sb_putc(b, '0');
		} else {
			char tmp[16];

			/* k = floor(log2(mag)): the bucket holds 2^k <= |n| < 2^(k+1). */
			snprintf(tmp, sizeof(tmp), "%s2^%d", neg ? "-" : "",
				 63 - __builtin_clzll(mag));
			sb_puts(b, tmp);
		}
	}
	return !first; /* an empty or all-blank value is not a number */
}

int mem_fingerprint(const struct mem_candidate *c, char *buf, size_t size)
{
	struct sbuf b = {.p = buf, .size = size};
	const char *kind;

	if (!c || !buf || size == 0)
		return -EINVAL;
	buf[0] = '\0';
	kind = mem_kind_name(c->kind);
	if (!kind || !c->target || !c->knob || !c->value || !c->kernel || !c->host_class)
		return -EINVAL;
	sb_puts(&b, kind);
	sb_putc(&b, '|');
	sb_put_escaped(&b, c->target);
	sb_putc(&b, '|');
	sb_put_escaped(&b, c->knob);
	sb_putc(&b, '|');
	if (bucket_value(c->value, NULL)) {
		bucket_value(c->value, &b);
	} else {
		sb_putc(&b, '=');
		sb_put_escaped(&b, c->value);
	}
	sb_putc(&b, '|');
	sb_put_escaped(&b, c->kernel);
	sb_putc(&b, '|');
	sb_put_escaped(&b, c->host_class);
	return b.overflow ? -ENAMETOOLONG : 0;
}

int mem_change_fingerprint(struct mem *m, const struct mem_change *c, char *buf, size_t size)
{
	struct mem_candidate cand = {
	    .kind = c->kind,
	    .target = c->target ?: "",
	    .knob = c->knob ?: "",
	    .value = c->after ?: "",
	    .kernel = m->kernel,
	    .host_class = m->host_class,
	};

	return mem_fingerprint(&cand, buf, size);
}

static void format_utc(int64_t ms, char *buf, size_t size)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, size, "%" PRId64 " ms", ms);
}

int mem_should_attempt(struct mem *m, const struct mem_candidate *c, char *why, size_t whylen)
{
	/* The newest failed change of this fingerprint, with its failing outcome if any. */
	static const char sql[] =
	    "SELECT c.id, c.state, c.updated_at, o.at, o.verdict, o.result, o.failure_reason"
	    " FROM changes c LEFT JOIN outcomes o ON o.change_id = c.id"
	    " WHERE c.fingerprint = ?1 AND (c.state IN ('FAILED', 'ROLLED_BACK')"
	    "  OR o.result = 'ROLLED_BACK' OR o.verdict IN ('ROLLBACK', 'INCONCLUSIVE'))"
	    /* undone because the daemon stopped, not because it failed (memory.h) */
	    " AND NOT EXISTS (SELECT 1 FROM outcomes i WHERE i.change_id = c.id"
	    "  AND i.verdict = 'NONE' AND i.result = 'ROLLED_BACK'"
	    "  AND i.failure_reason LIKE '" MEM_INTERRUPTED "%')"
	    " ORDER BY c.id DESC,"
	    "  (o.result = 'ROLLED_BACK' OR o.verdict IN ('ROLLBACK', 'INCONCLUSIVE')) DESC,"
	    "  o.id DESC"
	    " LIMIT 1";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	char fp[1024], when[48];
	const char *state, *verdict, *reason;
	struct mem_candidate cand;
	int64_t id;
	int rc, r;

	if (why && whylen)
		why[0] = '\0';
	if (!m || !c)
		return -EINVAL;
	cand = *c;
	if (!cand.kernel)
		cand.kernel = m->kernel;
	if (!cand.host_class)
		cand.host_class = m->host_class;
	r = mem_fingerprint(&cand, fp, sizeof(fp));
	if (r < 0)
		return mem_error(m, r, "cannot compute the fingerprint of the candidate");
	st = mem_stmt(m, sql);
	if (!st)
		return mem_stmt_error(m);
	sqlite3_bind_text(st, 1, fp, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return 1;
	if (rc != SQLITE_ROW)
		return mem_sql_error(m, rc, "cannot look for failed changes");
	if (!why || !whylen)
		return 0;
	format_utc(sqlite3_column_type(st, 3) == SQLITE_NULL ? sqlite3_column_int64(st, 2)
							     : sqlite3_column_int64(st, 3),
		   when, sizeof(when));
	id = sqlite3_column_int64(st, 0);
	state = (const char *)sqlite3_column_text(st, 1);
	verdict = (const char *)sqlite3_column_text(st, 4);
	reason = (const char *)sqlite3_column_text(st, 6);
	if (!verdict)
		snprintf(why, whylen, "change %" PRId64 " (%s) failed on %s: %s", id, fp, when,
			 state);
	else
		snprintf(why, whylen, "change %" PRId64 " (%s) failed on %s: %s, verdict %s%s%s",
			 id, fp, when, state, verdict, reason && *reason ? ": " : "",
			 reason ? reason : "");
	return 0;
}

int mem_host_kernel(char *buf, size_t size)
{
	struct utsname u;
	unsigned major, minor;

	if (uname(&u) < 0)
		return -errno;
	if (sscanf(u.release, "%u.%u", &major, &minor) != 2)
		return -EINVAL;
	if ((size_t)snprintf(buf, size, "%u.%u", major, minor) >= size)
		return -ENAMETOOLONG;
	return 0;
}

int mem_host_class(char *buf, size_t size)
{
	struct utsname u;
	struct sysinfo si;
	uint64_t gib, pow = 1;
	long ncpu;

	if (uname(&u) < 0 || sysinfo(&si) < 0)
		return -errno;
	ncpu = sysconf(_SC_NPROCESSORS_CONF);
	if (ncpu < 1)
		ncpu = 1;
	/* MemTotal is a little below the installed RAM: round up to a power of two GiB. */
	gib = ((uint64_t)si.totalram * si.mem_unit + (1ull << 30) - 1) >> 30;
	while (pow < gib)
		pow <<= 1;
	if ((size_t)snprintf(buf, size, "%s-%ldcpu-%" PRIu64 "g", u.machine, ncpu, pow) >= size)
		return -ENAMETOOLONG;
	return 0;
}
