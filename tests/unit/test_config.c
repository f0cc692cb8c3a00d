/* test_config.c - the configuration layer: YAML tree, typed schema, policy and runbooks.
 *
 * Good files load into exact values; each scalar syntax converts exactly; bad input gives
 * exactly the expected "path:line:col: message" lines, all of them. File safety (owner, mode,
 * symbolic links) is checked on files made here, owned by the test's own uid. The good
 * fixtures are read from tests/config/good (run from the repository root, or set
 * HS_SRCDIR to it).
 */
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "lib/errors.h"
#include "lib/schema.h"
#include "lib/yamltree.h"
#include "observe/signals.h"
#include "remediate/runbook.h"
#include "safety/policy.h"

/* A test that cannot run says why (cmocka 1.1 has skip() but no message). */
#define SKIP(msg)                                                                                  \
	do {                                                                                       \
		print_message("skipped: %s\n", msg);                                               \
		skip();                                                                            \
	} while (0)

static char tmpdir[64];

static int setup_tmp(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/hs-test-config.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	return 0;
}

static int teardown_tmp(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Writes tmpdir/name with mode and returns its path (static buffer). */
static const char *write_file(const char *name, const char *text, mode_t mode)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static char *read_fixture(const char *rel, size_t *len)
{
	const char *src = getenv("HS_SRCDIR");
	char path[PATH_MAX];
	char *buf;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/%s", src ? src : ".", rel);
	f = fopen(path, "r");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* Asserts that errs holds exactly the given lines, in order; then clears it. */
static void expect_errors(struct hs_errors *e, ...)
{
	const char *want;
	size_t i = 0;
	va_list ap;

	va_start(ap, e);
	while ((want = va_arg(ap, const char *))) {
		if (i >= e->n)
			fail_msg("missing error %zu: %s", i, want);
		assert_string_equal(e->msgs[i], want);
		i++;
	}
	va_end(ap);
	if (i != e->n)
		fail_msg("unexpected error: %s", e->msgs[i]);
	hs_errors_clear(e);
}

static int parse_policy(const char *text, struct safe_policy **p, struct hs_errors *e)
{
	return safe_policy_parse("p.yaml", text, strlen(text), p, e);
}

/* ---- scalar syntax ---- */

static void test_parse_duration(void **state)
{
	int64_t ms;
	double d;

	assert_int_equal(sch_parse_duration("500ms", &ms), 0);
	assert_int_equal(ms, 500);
	assert_int_equal(sch_parse_duration("30s", &ms), 0);
	assert_int_equal(ms, 30000);
	assert_int_equal(sch_parse_duration("5m", &ms), 0);
	assert_int_equal(ms, 300000);
	assert_int_equal(sch_parse_duration("1h", &ms), 0);
	assert_int_equal(ms, 3600000);
	assert_int_equal(sch_parse_duration("1h30m", &ms), 0);
	assert_int_equal(ms, 5400000);
	assert_int_equal(sch_parse_duration("2d", &ms), 0);
	assert_int_equal(ms, 172800000);
	assert_int_equal(sch_parse_duration("0", &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(sch_parse_duration("5", &ms), -EINVAL);
	assert_int_equal(sch_parse_duration("1.5s", &ms), -EINVAL);
	assert_int_equal(sch_parse_duration("-1s", &ms), -EINVAL);
	assert_int_equal(sch_parse_duration("10us", &ms), -EINVAL);
	assert_int_equal(sch_parse_duration("1 s", &ms), -EINVAL);
	assert_int_equal(sch_parse_duration("", &ms), -EINVAL);
	assert_int_equal(sch_parse_duration("s", &ms), -EINVAL);
	assert_int_equal(sch_parse_duration("99999999999999999999d", &ms), -ERANGE);
	assert_int_equal(sch_parse_duration("9999999999d", &ms), -ERANGE);
	assert_int_equal(sch_parse_duration_ms("250us", &d), 0);
	assert_true(d == 0.25);
	assert_int_equal(sch_parse_duration_ms("1s", &d), 0);
	assert_true(d == 1000.0);
}

static void test_parse_percent_bytes_numbers(void **state)
{
	uint64_t b;
	int64_t i;
	double d;
	bool t;

	assert_int_equal(sch_parse_percent("0.1%", &d), 0);
	assert_true(fabs(d - 0.001) < 1e-15);
	assert_int_equal(sch_parse_percent("20%", &d), 0);
	assert_true(d == 0.2);
	assert_int_equal(sch_parse_percent("20", &d), -EINVAL);
	assert_int_equal(sch_parse_percent("%", &d), -EINVAL);
	assert_int_equal(sch_parse_percent("abc%", &d), -EINVAL);

	assert_int_equal(sch_parse_bytes("4096", &b), 0);
	assert_int_equal(b, 4096);
	assert_int_equal(sch_parse_bytes("64KiB", &b), 0);
	assert_int_equal(b, 65536);
	assert_int_equal(sch_parse_bytes("64MiB", &b), 0);
	assert_int_equal(b, 64ULL << 20);
	assert_int_equal(sch_parse_bytes("1G", &b), 0);
	assert_int_equal(b, 1ULL << 30);
	assert_int_equal(sch_parse_bytes("2TiB", &b), 0);
	assert_int_equal(b, 2ULL << 40);
	assert_int_equal(sch_parse_bytes("1GB", &b), -EINVAL);
	assert_int_equal(sch_parse_bytes("-1", &b), -EINVAL);
	assert_int_equal(sch_parse_bytes("99999999999TiB", &b), -ERANGE);

	assert_int_equal(sch_parse_int("-20", &i), 0);
	assert_int_equal(i, -20);
	assert_int_equal(sch_parse_int("9223372036854775807", &i), 0);
	assert_int_equal(i, INT64_MAX);
	assert_int_equal(sch_parse_int("9223372036854775808", &i), -ERANGE);
	assert_int_equal(sch_parse_int("0x10", &i), -EINVAL);
	assert_int_equal(sch_parse_int("1.0", &i), -EINVAL);
	assert_int_equal(sch_parse_int("-", &i), -EINVAL);

	assert_int_equal(sch_parse_number("2.5", &d), 0);
	assert_true(d == 2.5);
	assert_int_equal(sch_parse_number("1e3", &d), 0);
	assert_true(d == 1000.0);
	assert_int_equal(sch_parse_number("inf", &d), -EINVAL);
	assert_int_equal(sch_parse_number("nan", &d), -EINVAL);
	assert_int_equal(sch_parse_number("0x1p3", &d), -EINVAL);
	assert_int_equal(sch_parse_number("1e999", &d), -ERANGE);

	assert_int_equal(sch_parse_bool("true", &t), 0);
	assert_true(t);
	assert_int_equal(sch_parse_bool("false", &t), 0);
	assert_false(t);
	assert_int_equal(sch_parse_bool("yes", &t), -EINVAL);
}

static void test_format(void **state)
{
	char buf[32];

	assert_string_equal(sch_format_duration(500, buf, sizeof(buf)), "500ms");
	assert_string_equal(sch_format_duration(60000, buf, sizeof(buf)), "1m");
	assert_string_equal(sch_format_duration(90000, buf, sizeof(buf)), "90s");
	assert_string_equal(sch_format_duration(86400000, buf, sizeof(buf)), "1d");
	assert_string_equal(sch_format_duration(0, buf, sizeof(buf)), "0");
	assert_string_equal(sch_format_bytes(1ULL << 20, buf, sizeof(buf)), "1MiB");
	assert_string_equal(sch_format_bytes(1000, buf, sizeof(buf)), "1000");
}

/* ---- a schema of every type, independent of the policy ---- */

struct all_types {
	char *s;
	int64_t i;
	double n;
	bool b;
	int e;
	int64_t d;
	double pct;
	uint64_t bytes;
	struct sch_amount amt;
	char **list;
	size_t n_list;
	struct {
		int64_t x;
	} sub;
	struct all_item {
		char *name;
	} * items;
	size_t n_items;
};

static const char *const colours[] = {"red", "green", NULL};

static const struct sch_field item_fields[] = {
    {.name = "name",
     .type = SCH_STRING,
     .offset = offsetof(struct all_item, name),
     .required = true,
     .max = 4},
};
static const struct sch_struct item_schema = {
    .name = "item",
    .size = sizeof(struct all_item),
    .fields = item_fields,
    .nfields = 1,
};
static const struct sch_field sub_fields[] = {
    {.name = "x", .type = SCH_INT, .offset = 0, .def = "7", .min = 1, .max = 64},
};
static const struct sch_struct sub_schema = {
    .name = "sub",
    .size = sizeof(int64_t),
    .fields = sub_fields,
    .nfields = 1,
};

#define AT(f) offsetof(struct all_types, f)
static const struct sch_field all_fields[] = {
    {.name = "s", .type = SCH_STRING, .offset = AT(s), .def = "dflt", .max = 8},
    {.name = "i", .type = SCH_INT, .offset = AT(i), .required = true, .min = 1, .max = 64},
    {.name = "n", .type = SCH_NUMBER, .offset = AT(n), .fmin = 0, .fmax = 1},
    {.name = "b", .type = SCH_BOOL, .offset = AT(b), .def = "true"},
    {.name = "e", .type = SCH_ENUM, .offset = AT(e), .names = colours, .def = "green"},
    {.name = "d", .type = SCH_DURATION, .offset = AT(d), .def = "1s", .min = 100, .max = 60000},
    {.name = "pct", .type = SCH_PERCENT, .offset = AT(pct), .fmin = 0, .fmax = 1},
    {.name = "bytes", .type = SCH_BYTES, .offset = AT(bytes), .min = 1, .max = 1LL << 30},
    {.name = "amt",
     .type = SCH_BYTES_OR_PERCENT,
     .offset = AT(amt),
     .min = 1,
     .max = 1LL << 30,
     .fmin = 0,
     .fmax = 1},
    {.name = "list",
     .type = SCH_STRING_LIST,
     .offset = AT(list),
     .count_offset = AT(n_list),
     .max = 3,
     .max_items = 2},
    {.name = "sub", .type = SCH_STRUCT, .offset = AT(sub), .sub = &sub_schema},
    {.name = "items",
     .type = SCH_STRUCT_LIST,
     .offset = AT(items),
     .count_offset = AT(n_items),
     .sub = &item_schema},
};
static const struct sch_struct all_schema = {
    .name = "all",
    .size = sizeof(struct all_types),
    .fields = all_fields,
    .nfields = ARRAY_SIZE(all_fields),
};

static int convert_all(const char *text, struct all_types *out, struct hs_errors *e)
{
	struct sch_ctx ctx = {.path = "t.yaml", .errs = e};
	struct yt_doc *doc = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	r = yt_parse("t.yaml", text, strlen(text), &doc, e);
	if (r < 0)
		return r;
	r = sch_convert_root(&ctx, &all_schema, doc, out);
	yt_doc_free(doc);
	return r;
}

static void test_schema_types(void **state)
{
	struct hs_errors e = {0};
	struct all_types a;

	assert_int_equal(convert_all("i: 3\nn: 0.25\nb: false\ne: red\nd: 250ms\npct: 12.5%\n"
				     "bytes: 2MiB\namt: 64KiB\nlist: [a, bb]\nsub: {x: 9}\n"
				     "items: [{name: x}, {name: yz}]\ns: hello\n",
				     &a, &e),
			 0);
	assert_int_equal(e.n, 0);
	assert_string_equal(a.s, "hello");
	assert_int_equal(a.i, 3);
	assert_true(a.n == 0.25);
	assert_false(a.b);
	assert_int_equal(a.e, 0);
	assert_int_equal(a.d, 250);
	assert_true(a.pct == 0.125);
	assert_int_equal(a.bytes, 2ULL << 20);
	assert_false(a.amt.relative);
	assert_int_equal(a.amt.bytes, 65536);
	assert_int_equal(a.n_list, 2);
	assert_string_equal(a.list[0], "a");
	assert_string_equal(a.list[1], "bb");
	assert_int_equal(a.sub.x, 9);
	assert_int_equal(a.n_items, 2);
	assert_string_equal(a.items[1].name, "yz");
	sch_free(&all_schema, &a);

	/* Defaults. */
	assert_int_equal(convert_all("i: 64\namt: 50%\n", &a, &e), 0);
	assert_string_equal(a.s, "dflt");
	assert_true(a.b);
	assert_int_equal(a.e, 1);
	assert_int_equal(a.d, 1000);
	assert_int_equal(a.sub.x, 7);
	assert_true(a.amt.relative);
	assert_true(a.amt.fraction == 0.5);
	assert_int_equal(a.n_list, 0);
	assert_null(a.list);
	sch_free(&all_schema, &a);

	/* Every kind of error, all of them. */
	assert_int_equal(convert_all("s: too-long-string\ni: 65\nn: 2\nb: yes\ne: blue\nd: 2m\n"
				     "pct: 5\nbytes: 0\namt: 200%\nlist: [a, b, c]\nsub: {x: 0}\n"
				     "items: [{name: toolong}, 3, {}]\nzz: 1\n",
				     &a, &e),
			 -EINVAL);
	expect_errors(&e, "t.yaml:1:4: 's' is too long (15 bytes), at most 8",
		      "t.yaml:2:4: 'i' must be between 1 and 64, not '65'",
		      "t.yaml:3:4: 'n' must be between 0 and 1, not '2'",
		      "t.yaml:4:4: 'b' must be true or false, not 'yes'",
		      "t.yaml:5:4: 'e' must be one of red, green, not 'blue'",
		      "t.yaml:6:4: 'd' must be between 100ms and 1m, not '2m'",
		      "t.yaml:7:6: 'pct' must be a percentage such as 0.1% or 20%, not '5'",
		      "t.yaml:8:8: 'bytes' must be between 1 and 1GiB, not '0'",
		      "t.yaml:9:6: 'amt' must be between 0% and 100%, not '200%'",
		      "t.yaml:10:7: 'list' has too many items (3), at most 2",
		      "t.yaml:11:10: 'x' must be between 1 and 64, not '0'",
		      "t.yaml:12:16: 'name' is too long (7 bytes), at most 4",
		      "t.yaml:12:26: each item of 'items' must be a mapping, not '3'",
		      "t.yaml:12:29: missing required key 'name'", "t.yaml:13:1: unknown key 'zz'",
		      NULL);
	sch_free(&all_schema, &a);

	/* Missing required and wrong container types. */
	assert_int_equal(convert_all("list: {a: 1}\nsub: [1]\nitems: x\n", &a, &e), -EINVAL);
	expect_errors(&e, "t.yaml:1:7: 'list' must be a list, not a mapping",
		      "t.yaml:2:6: 'sub' must be a mapping, not a list",
		      "t.yaml:3:8: 'items' must be a list, not 'x'",
		      "t.yaml:1:1: missing required key 'i'", NULL);
	sch_free(&all_schema, &a);
}

/* ---- the YAML tree ---- */

static void test_yamltree_limits(void **state)
{
	struct hs_errors e = {0};
	struct yt_doc *doc = NULL;
	char *big;
	size_t n;

	/* Depth: 16 levels are fine, 17 are not. */
	big = malloc(64 * 1024);
	assert_non_null(big);
	n = 0;
	for (int i = 0; i < 16; i++)
		big[n++] = '[';
	for (int i = 0; i < 16; i++)
		big[n++] = ']';
	assert_int_equal(yt_parse("d.yaml", big, n, &doc, &e), 0);
	assert_int_equal(e.n, 0);
	yt_doc_free(doc);
	n = 0;
	for (int i = 0; i < 1000; i++)
		big[n++] = '[';
	for (int i = 0; i < 1000; i++)
		big[n++] = ']';
	assert_int_equal(yt_parse("d.yaml", big, n, &doc, &e), 0);
	expect_errors(&e, "d.yaml:1:17: nesting too deep, at most 16 levels", NULL);
	yt_doc_free(doc);

	/* Node count. */
	n = 0;
	big[n++] = '[';
	for (int i = 0; i < YT_MAX_NODES + 10; i++) {
		big[n++] = '1';
		big[n++] = ',';
	}
	big[n++] = ']';
	assert_int_equal(yt_parse("n.yaml", big, n, &doc, &e), -EINVAL);
	assert_null(doc);
	expect_errors(&e, "n.yaml:1:20000: too many nodes, at most 10000", NULL);
	free(big);

	/* A large scalar: exactly the limit is fine. */
	big = malloc(YT_MAX_SCALAR + 16);
	assert_non_null(big);
	memset(big, 'x', YT_MAX_SCALAR);
	assert_int_equal(yt_parse("s.yaml", big, YT_MAX_SCALAR, &doc, &e), 0);
	assert_int_equal(doc->root->len, YT_MAX_SCALAR);
	yt_doc_free(doc);
	big[YT_MAX_SCALAR] = 'x';
	assert_int_equal(yt_parse("s.yaml", big, YT_MAX_SCALAR + 1, &doc, &e), 0);
	expect_errors(&e, "s.yaml:1:1: value too long (4097 bytes), at most 4096", NULL);
	assert_int_equal(doc->root->kind, YT_INVALID);
	yt_doc_free(doc);
	free(big);
}

static void test_yamltree_tree(void **state)
{
	const char *text = "a: 1\nb:\n  - x\n  - 'y'\nc: {d: e}\n";
	struct hs_errors e = {0};
	struct yt_doc *doc = NULL;
	const struct yt_node *b, *c;

	assert_int_equal(yt_parse("t.yaml", text, strlen(text), &doc, &e), 0);
	assert_int_equal(e.n, 0);
	assert_int_equal(doc->root->kind, YT_MAPPING);
	assert_int_equal(doc->root->n, 3);
	b = yt_map_get(doc->root, "b");
	assert_int_equal(b->kind, YT_SEQUENCE);
	assert_int_equal(b->n, 2);
	assert_int_equal(b->items[1]->line, 4);
	assert_int_equal(b->items[1]->col, 5);
	assert_false(b->items[1]->plain);
	assert_true(b->items[0]->plain);
	c = yt_map_get(doc->root, "c");
	assert_string_equal(yt_map_get(c, "d")->str, "e");
	assert_null(yt_map_get(doc->root, "zz"));
	yt_doc_free(doc);

	text = "a: 1\n--- \nb: 2\n";
	assert_int_equal(yt_parse("m.yaml", text, strlen(text), &doc, &e), 0);
	expect_errors(&e, "m.yaml:2:1: multiple documents are not supported", NULL);
	yt_doc_free(doc);

	text = "a: &x 1\nb: *x\nc: !!int 3\n";
	assert_int_equal(yt_parse("a.yaml", text, strlen(text), &doc, &e), 0);
	expect_errors(&e, "a.yaml:1:4: anchors are not supported",
		      "a.yaml:2:4: aliases are not supported", "a.yaml:3:4: tags are not supported",
		      NULL);
	yt_doc_free(doc);

	assert_int_equal(yt_parse("z.yaml", "\xff\xfe", 2, &doc, &e), -EINVAL);
	expect_errors(&e, "z.yaml:1:1: invalid leading UTF-8 octet (byte 0xff)", NULL);
	assert_int_equal(yt_parse("z.yaml", "# x\n", 4, &doc, &e), -EINVAL);
	expect_errors(&e, "z.yaml:1:1: empty file", NULL);
}

/* ---- file safety ---- */

static void test_file_safety(void **state)
{
	struct hs_errors e = {0};
	struct safe_policy *p = NULL;
	const char *path;
	char expect[1024], link[128];

	path = write_file("ok.yaml", "mode: observe\n", 0644);
	assert_int_equal(safe_policy_load(path, getuid(), &p, &e), 0);
	assert_non_null(p);
	assert_int_equal(p->mode, SAFE_MODE_OBSERVE);
	assert_string_equal(p->path, path);
	safe_policy_free(p);

	path = write_file("gw.yaml", "mode: observe\n", 0664);
	assert_int_equal(safe_policy_load(path, getuid(), &p, &e), -EINVAL);
	assert_null(p);
	snprintf(expect, sizeof(expect),
		 "%s:1:1: writable by group or others (mode 0664), refusing: the agent acts as "
		 "root on what it says",
		 path);
	expect_errors(&e, expect, NULL);

	path = write_file("owner.yaml", "mode: observe\n", 0600);
	assert_int_equal(safe_policy_load(path, getuid() + 1, &p, &e), -EINVAL);
	snprintf(expect, sizeof(expect), "%s:1:1: not owned by uid %u (owner uid %u)", path,
		 getuid() + 1, getuid());
	expect_errors(&e, expect, NULL);

	snprintf(link, sizeof(link), "%s/link.yaml", tmpdir);
	assert_int_equal(symlink("ok.yaml", link), 0);
	assert_int_equal(safe_policy_load(link, getuid(), &p, &e), -EINVAL);
	snprintf(expect, sizeof(expect), "%s:1:1: is a symbolic link, refusing", link);
	expect_errors(&e, expect, NULL);

	assert_int_equal(safe_policy_load(tmpdir, getuid(), &p, &e), -EINVAL);
	snprintf(expect, sizeof(expect), "%s:1:1: not a regular file", tmpdir);
	expect_errors(&e, expect, NULL);

	path = write_file("empty.yaml", "", 0600);
	assert_int_equal(safe_policy_load(path, getuid(), &p, &e), -EINVAL);
	snprintf(expect, sizeof(expect), "%s:1:1: empty file", path);
	expect_errors(&e, expect, NULL);
}

/* ---- policy ---- */

static void test_policy_defaults(void **state)
{
	struct hs_errors e = {0};
	struct safe_policy *p = NULL;

	assert_int_equal(parse_policy("mode: enforce\n", &p, &e), 0);
	assert_int_equal(p->mode, SAFE_MODE_ENFORCE);
	assert_int_equal(p->tick_ms, 1000);
	assert_int_equal(p->budgets.changes_per_hour, 6);
	assert_int_equal(p->budgets.concurrent_changes, 1);
	assert_int_equal(p->budgets.blast_radius.processes, 16);
	assert_int_equal(p->budgets.blast_radius.targets, 1);
	assert_int_equal(p->protect.n_paths, 0);
	assert_int_equal(p->n_classes, 0);
	assert_int_equal(p->approvals.ttl_ms, 3600000);
	assert_int_equal(p->canary.duration_ms, 300000);
	assert_int_equal(p->canary.min_samples, 30);
	assert_true(p->canary.alpha == 0.05);
	assert_true(p->canary.effect_size == 0.05);
	assert_int_equal(p->canary.switchback_block_ms, 30000);
	assert_true(fabs(p->rollback_on.error_rate_increase - 0.001) < 1e-15);
	assert_int_equal(p->rollback_on.p99_latency_increase_ms, 50);
	assert_true(p->rollback_on.rss_increase.relative);
	assert_true(p->rollback_on.rss_increase.fraction == 0.2);
	assert_true(p->rollback_on.throughput_decrease == 0.1);
	assert_true(p->rollback_on.fitness_decrease == 0.05);
	assert_true(p->fitness.latency == 0.4);
	assert_true(p->fitness.errors == 0.3);
	assert_true(p->fitness.throughput == 0.2);
	assert_true(p->fitness.cost == 0.1);
	assert_int_equal(p->observe.sc_latency.window_ms, 1000);
	assert_int_equal(p->observe.sc_latency.every_ms, 20000);
	assert_int_equal(p->n_targets, 0);
	safe_policy_free(p);
}

static void test_policy_good_fixture(void **state)
{
	struct hs_errors e = {0};
	struct safe_policy *p = NULL;
	const struct safe_action_class *c;
	const struct safe_target *t;
	const char *why;
	size_t len;
	char *text = read_fixture("tests/config/good/policy.yaml", &len);

	if (!text)
		SKIP("tests/config/good/policy.yaml not found: run from the repository root");
	assert_int_equal(safe_policy_parse("good.yaml", text, len, &p, &e), 0);
	free(text);
	assert_int_equal(e.n, 0);
	assert_int_equal(p->mode, SAFE_MODE_DRY_RUN);
	assert_int_equal(p->tick_ms, 500);
	assert_int_equal(p->budgets.changes_per_hour, 12);
	assert_int_equal(p->budgets.concurrent_changes, 2);
	assert_int_equal(p->budgets.blast_radius.processes, 8);
	assert_int_equal(p->budgets.blast_radius.targets, 2);
	assert_int_equal(p->protect.n_paths, 2);
	assert_string_equal(p->protect.paths[0], "/etc/homeostat");
	assert_string_equal(p->protect.paths[1], "/srv/data/");
	assert_int_equal(p->protect.n_units, 1);
	assert_string_equal(p->protect.units[0], "sshd.service");
	assert_int_equal(p->protect.n_processes, 2);
	assert_string_equal(p->protect.processes[1], "systemd");
	assert_int_equal(p->protect.n_sysctl_deny, 2);
	assert_string_equal(p->protect.sysctl_deny[0], "kernel.*");
	assert_int_equal(p->protect.n_sysctl_ranges, 2);
	assert_string_equal(p->protect.sysctl_ranges[0].name, "net.core.somaxconn");
	assert_int_equal(p->protect.sysctl_ranges[0].min, 128);
	assert_int_equal(p->protect.sysctl_ranges[0].max, 65535);
	assert_int_equal(p->protect.sysctl_ranges[1].min, -1);

	assert_int_equal(p->n_classes, 4);
	c = safe_policy_class(p, "auto");
	assert_int_equal(c->approval, SAFE_APPROVAL_NONE);
	assert_null(c->description);
	c = safe_policy_class(p, "tell");
	assert_int_equal(c->approval, SAFE_APPROVAL_NOTIFY);
	assert_string_equal(c->description, "announce, then do");
	assert_int_equal(c->delay_ms, 90000);
	c = safe_policy_class(p, "approve");
	assert_int_equal(c->approval, SAFE_APPROVAL_REQUIRE);
	assert_int_equal(c->ttl_ms, 7200000);
	c = safe_policy_class(p, "approve-default");
	assert_int_equal(c->ttl_ms, 1800000); /* approvals.ttl */
	assert_null(safe_policy_class(p, "nope"));
	assert_int_equal(p->approvals.ttl_ms, 1800000);

	assert_int_equal(p->canary.duration_ms, 600000);
	assert_int_equal(p->canary.min_samples, 50);
	assert_true(p->canary.alpha == 0.01);
	assert_true(p->canary.effect_size == 0.025);
	assert_int_equal(p->canary.switchback_block_ms, 60000);
	assert_int_equal(p->rollback_on.p99_latency_increase_ms, 25);
	assert_false(p->rollback_on.rss_increase.relative);
	assert_int_equal(p->rollback_on.rss_increase.bytes, 512ULL << 20);
	assert_true(p->rollback_on.throughput_decrease == 0.15);
	assert_true(p->rollback_on.fitness_decrease == 0.03);
	assert_true(p->fitness.latency == 0.5);
	assert_true(p->fitness.cost == 0);
	assert_int_equal(p->observe.sc_latency.window_ms, 2000);
	assert_int_equal(p->observe.sc_latency.every_ms, 60000);

	assert_int_equal(p->n_targets, 3);
	t = safe_policy_target(p, "web");
	assert_string_equal(t->unit, "nginx.service");
	assert_string_equal(t->comm, "nginx");
	assert_null(t->exe);
	assert_int_equal(t->pid, 0);
	assert_int_equal(t->slo.p99_latency_ms, 150);
	assert_true(t->slo.error_rate == 0.005);
	assert_true(t->slo.throughput == 1000);
	t = safe_policy_target(p, "leaky");
	assert_string_equal(t->exe, "/usr/local/bin/leaky");
	assert_string_equal(t->cgroup, "/system.slice/leaky.service");
	assert_string_equal(t->restart, "/usr/local/bin/leaky --restart");
	assert_int_equal(t->slo.p99_latency_ms, 0);
	assert_int_equal(safe_policy_target(p, "one_pid")->pid, 4242);

	/* Protection helpers. */
	assert_true(safe_policy_path_protected(p, "/etc/homeostat"));
	assert_true(safe_policy_path_protected(p, "/etc/homeostat/policy.yaml"));
	assert_true(safe_policy_path_protected(p, "/srv/data/x"));
	assert_false(safe_policy_path_protected(p, "/etc/homeostatx"));
	assert_false(safe_policy_path_protected(p, "/usr/local/bin/homeostatd"));
	assert_int_equal(safe_policy_protect_path(p, "/usr/local/bin/homeostatd"), 0);
	assert_int_equal(safe_policy_protect_path(p, "/var/lib/homeostat/"), 0);
	assert_int_equal(safe_policy_protect_path(p, ""), -EINVAL);
	assert_true(safe_policy_path_protected(p, "/usr/local/bin/homeostatd"));
	assert_true(safe_policy_path_protected(p, "/var/lib/homeostat/memory.db"));
	assert_string_equal(p->self_paths[1], "/var/lib/homeostat");
	assert_int_equal(safe_policy_sysctl_allowed(p, "kernel.panic", "1", &why), -EPERM);
	assert_string_equal(why, "denied by protected.sysctl_deny");
	assert_int_equal(safe_policy_sysctl_allowed(p, "vm/overcommit_memory", "1", &why), -EPERM);
	assert_int_equal(safe_policy_sysctl_allowed(p, "net.core.somaxconn", "4096", &why), 0);
	assert_int_equal(safe_policy_sysctl_allowed(p, "net/core/somaxconn", "100", &why), -EPERM);
	assert_string_equal(why, "outside protected.sysctl_ranges");
	assert_int_equal(safe_policy_sysctl_allowed(p, "vm.swappiness", "x", &why), -EPERM);
	assert_int_equal(
	    safe_policy_sysctl_allowed(p, "net.ipv4.tcp_congestion_control", "bbr", &why), 0);
	safe_policy_free(p);
}

static void test_policy_errors(void **state)
{
	struct hs_errors e = {0};
	struct safe_policy *p = NULL;

	assert_int_equal(parse_policy("mode: enforce\nbudgets:\n  changes_per_hour: abc\n"
				      "  max_delta: 3\n",
				      &p, &e),
			 -EINVAL);
	assert_null(p);
	expect_errors(&e, "p.yaml:3:21: 'changes_per_hour' must be an integer, not 'abc'",
		      "p.yaml:4:3: unknown key 'max_delta'", NULL);

	assert_int_equal(parse_policy("tick: 1s\n", &p, &e), -EINVAL);
	expect_errors(&e, "p.yaml:1:1: missing required key 'mode'", NULL);

	assert_int_equal(parse_policy("mode: fast\nbudgets: {concurrent_changes: 65}\n", &p, &e),
			 -EINVAL);
	expect_errors(&e, "p.yaml:1:7: 'mode' must be one of enforce, dry_run, observe, not 'fast'",
		      "p.yaml:2:31: 'concurrent_changes' must be between 1 and 64, not '65'", NULL);

	assert_int_equal(parse_policy("mode: enforce\nmode: observe\n", &p, &e), -EINVAL);
	expect_errors(&e, "p.yaml:2:1: duplicate key 'mode', first at line 1 column 1", NULL);

	assert_int_equal(parse_policy("mode: enforce\nprotected:\n  sysctl_ranges:\n"
				      "    - {name: vm.swappiness, min: 60, max: 10}\n",
				      &p, &e),
			 -EINVAL);
	expect_errors(&e, "p.yaml:4:34: 'min' (60) must not be greater than 'max' (10)", NULL);

	assert_int_equal(parse_policy("mode: enforce\ntargets:\n  - {name: a, comm: x}\n"
				      "  - {name: a, pid: 1}\n  - {name: b}\n",
				      &p, &e),
			 -EINVAL);
	expect_errors(&e, "p.yaml:5:5: target needs at least one of unit, cgroup, comm, exe, pid",
		      "p.yaml:4:12: duplicate target name 'a', first at line 3 column 12", NULL);

	assert_int_equal(parse_policy("mode: enforce\nobserve:\n  syscall_latency:\n"
				      "    window: 30s\n    every: 20s\n",
				      &p, &e),
			 -EINVAL);
	expect_errors(&e, "p.yaml:4:13: window (30000 ms) must be shorter than every (20000 ms)",
		      NULL);
	assert_int_equal(
	    parse_policy("mode: enforce\nobserve: {syscall_latency: {every: 0s}}\n", &p, &e), 0);
	assert_int_equal(p->observe.sc_latency.every_ms, 0);
	safe_policy_free(p);
	p = NULL;

	assert_int_equal(parse_policy("mode: [enforce\n", &p, &e), -EINVAL);
	expect_errors(&e,
		      "p.yaml:2:1: did not find expected ',' or ']' while parsing a flow "
		      "sequence",
		      NULL);
}

/* ---- runbooks ---- */

static void test_runbook_fixture(void **state)
{
	struct hs_errors e = {0};
	struct heal_runbook rb;
	const struct heal_condition *c;
	const struct heal_step *s;
	size_t len;
	char *text = read_fixture("tests/config/good/runbooks/cpu-starvation.yaml", &len);

	if (!text)
		SKIP("tests/config/good/runbooks not found: run from the repository root");
	assert_int_equal(heal_runbook_parse("cpu.yaml", text, len, &rb, &e), 0);
	free(text);
	assert_string_equal(rb.name, "cpu-starvation");
	assert_int_equal(rb.name_pos.line, 2);
	assert_int_equal(rb.name_pos.col, 7);
	assert_string_equal(rb.description, "run-queue latency of the web target is high");
	assert_false(rb.enabled);
	assert_string_equal(rb.applies_to.target, "web");
	assert_null(rb.applies_to.comm);

	assert_int_equal(rb.detect.n_when, 3);
	c = &rb.detect.when[0];
	assert_string_equal(c->signal, "runq_latency");
	assert_ptr_equal(c->desc, obs_signal_lookup("runq_latency"));
	assert_int_equal(c->aggregation, OBS_AGG_P99);
	assert_int_equal(c->window_ms, 30000);
	assert_int_equal(c->op, HEAL_OP_GE);
	assert_true(c->threshold == 0.25);
	c = &rb.detect.when[1];
	assert_int_equal(c->aggregation, OBS_AGG_AVG);
	assert_true(c->threshold == 0.9);
	c = &rb.detect.when[2];
	assert_string_equal(c->syscall, "read");
	assert_int_equal(c->window_ms, 120000);
	assert_int_equal(c->op, HEAL_OP_LT);
	assert_true(c->threshold == 1000.0);
	assert_int_equal(rb.detect.for_ms, 20000);
	assert_int_equal(rb.detect.n_clear, 0);

	assert_int_equal(rb.n_diagnose, 2);
	assert_int_equal(rb.diagnose[0].capture, HEAL_CAPTURE_CPU_PROFILE);
	assert_int_equal(rb.diagnose[0].duration_ms, 15000);
	assert_int_equal(rb.diagnose[1].capture, HEAL_CAPTURE_FUNC_LATENCY);
	assert_int_equal(rb.diagnose[1].duration_ms, 10000);
	assert_string_equal(rb.diagnose[1].symbol, "/usr/sbin/nginx:ngx_http_process_request");

	assert_int_equal(rb.n_remediate, 8);
	s = rb.remediate;
	assert_int_equal(s[0].action, HEAL_ACT_NICE);
	assert_string_equal(s[0].class_name, "auto");
	assert_int_equal(s[0].params.nice.value, -5);
	assert_int_equal(s[1].action, HEAL_ACT_CGROUP_CPU_WEIGHT);
	assert_int_equal(s[1].params.cpu_weight.weight, 400);
	assert_int_equal(s[2].action, HEAL_ACT_CGROUP_CPU_QUOTA);
	assert_true(s[2].params.cpu_quota.cpus == 1.5);
	assert_int_equal(s[2].params.cpu_quota.period_ms, 50);
	assert_int_equal(s[3].params.memory_high.bytes, 2ULL << 30);
	assert_string_equal(s[4].params.sysctl.name, "net.core.somaxconn");
	assert_string_equal(s[4].params.sysctl.value, "4096");
	assert_int_equal(heal_signal_number(s[5].params.signal.signal), SIGHUP);
	assert_int_equal(s[6].action, HEAL_ACT_RESTART);
	assert_int_equal(s[6].params.restart.grace_ms, 10000);
	assert_string_equal(s[6].class_name, "approve-default");
	assert_int_equal(s[6].class_pos.line, 51);
	assert_int_equal(s[6].class_pos.col, 12);
	assert_int_equal(s[7].action, HEAL_ACT_ALERT);
	assert_null(s[7].params.alert.message);

	assert_int_equal(rb.verify.n_when, 1);
	assert_true(rb.verify.when[0].threshold == 5.0);
	assert_int_equal(rb.verify.within_ms, 120000);
	assert_int_equal(rb.limits.cooldown_ms, 1800000);
	assert_int_equal(rb.limits.max_attempts, 5);
	assert_true(rb.limits.backoff == 1.5);
	heal_runbook_release(&rb);
}

static void test_runbook_fd_exhaustion(void **state)
{
	struct hs_errors e = {0};
	struct heal_runbook rb;
	size_t len;
	char *text = read_fixture("remediations/fd-exhaustion.yaml", &len);

	if (!text)
		SKIP("remediations/fd-exhaustion.yaml not found: run from the repository root");
	assert_int_equal(heal_runbook_parse("fd.yaml", text, len, &rb, &e), 0);
	free(text);
	assert_string_equal(rb.name, "fd-exhaustion");
	assert_true(rb.enabled);
	assert_null(rb.applies_to.target);
	assert_int_equal(rb.detect.n_when, 1);
	assert_int_equal(rb.detect.when[0].n_errnos, 2);
	assert_int_equal(rb.detect.when[0].errnos[0], EMFILE);
	assert_int_equal(rb.detect.when[0].errnos[1], ENFILE);
	assert_int_equal(rb.detect.when[0].aggregation, OBS_AGG_RATE);
	assert_int_equal(rb.detect.when[0].op, HEAL_OP_GT);
	assert_true(rb.detect.when[0].threshold == 1.0);
	assert_int_equal(rb.detect.for_ms, 0);
	assert_int_equal(rb.detect.n_clear, 1);
	assert_int_equal(rb.detect.clear[0].op, HEAL_OP_EQ);
	assert_int_equal(rb.remediate[0].action, HEAL_ACT_RLIMIT_NOFILE);
	assert_true(rb.remediate[0].params.rlimit_nofile.factor == 2.0);
	assert_int_equal(rb.remediate[0].params.rlimit_nofile.value, 0);
	assert_int_equal(rb.remediate[0].params.rlimit_nofile.max, 65536);
	assert_int_equal(rb.verify.within_ms, 30000);
	assert_int_equal(rb.limits.max_attempts, 3);
	heal_runbook_release(&rb);
}

static int parse_runbook(const char *text, struct heal_runbook *rb, struct hs_errors *e)
{
	return heal_runbook_parse("r.yaml", text, strlen(text), rb, e);
}

#define RB_TAIL                                                                                    \
	"remediate:\n  - {action: alert, class: auto}\n"                                           \
	"verify:\n  when:\n    - {signal: exits, aggregation: rate, op: '==', threshold: 0}\n"

static void test_runbook_errors(void **state)
{
	struct hs_errors e = {0};
	struct heal_runbook rb;

	assert_int_equal(parse_runbook("name: x\ndetect:\n  when:\n"
				       "    - {signal: nope, aggregation: rate, op: '>', "
				       "threshold: 1}\n" RB_TAIL,
				       &rb, &e),
			 -EINVAL);
	expect_errors(&e,
		      "r.yaml:4:16: unknown signal 'nope'; known signals: syscall_rate, "
		      "syscall_errors, syscall_latency, runq_latency, rss, cpu_usage, "
		      "fd_usage, listen_overflows, page_faults, fatal_signals, exits, restarts",
		      NULL);

	assert_int_equal(parse_runbook("name: x\ndetect:\n  when:\n"
				       "    - {signal: syscall_errors, errno: [EMFILE, ENOPE], "
				       "aggregation: p99, op: '>', threshold: 1}\n" RB_TAIL,
				       &rb, &e),
			 -EINVAL);
	expect_errors(&e, "r.yaml:4:48: unknown errno 'ENOPE'",
		      "r.yaml:4:69: aggregation 'p99' does not apply to signal 'syscall_errors'; "
		      "use one of rate, delta",
		      NULL);

	assert_int_equal(
	    parse_runbook("name: x\ndetect:\n  when:\n"
			  "    - {signal: exits, aggregation: rate, op: '>', threshold: "
			  "1}\nremediate:\n  - {action: reboot, class: auto}\n"
			  "  - {action: nice, class: auto, params: {value: -21}}\n"
			  "verify: {}\n",
			  &rb, &e),
	    -EINVAL);
	expect_errors(
	    &e,
	    "r.yaml:6:14: 'action' must be one of rlimit_nofile, nice, cgroup_cpu_weight, "
	    "cgroup_cpu_quota, cgroup_memory_high, sysctl, signal, restart, alert, not "
	    "'reboot'",
	    "r.yaml:7:49: 'value' must be between -20 and 19, not '-21'",
	    "r.yaml:8:9: missing required key 'when'", NULL);
}

/* A syscall_latency condition must see the policy's latency windows. */
static void test_runbooks_latency_windows(void **state)
{
	static const char rb[] =
	    "name: slow\ndetect:\n  when:\n"
	    "    - {signal: syscall_latency, aggregation: p99, window: 1m, op: '>', threshold: "
	    "1s}\n"
	    "remediate:\n  - {action: alert, class: auto}\n"
	    "verify:\n  when:\n    - {signal: exits, aggregation: rate, op: '==', threshold: 0}\n";
	struct hs_errors e = {0};
	struct heal_runbooks *rbs = NULL;
	struct safe_policy *p = NULL;
	char dir[128], expect[1024];

	(void)state;
	snprintf(dir, sizeof(dir), "%s/rbl", tmpdir);
	assert_int_equal(mkdir(dir, 0755), 0);
	write_file("rbl/a.yaml", rb, 0644);
	assert_int_equal(heal_runbooks_load(dir, getuid(), &rbs, &e), 0);

	/* The default schedule (every 20s): a 1m window holds three. */
	assert_int_equal(
	    parse_policy("mode: enforce\naction_classes: [{name: auto, approval: none}]\n", &p, &e),
	    0);
	assert_int_equal(heal_runbooks_check_policy(rbs, p, &e), 0);
	safe_policy_free(p);

	assert_int_equal(
	    parse_policy("mode: enforce\naction_classes: [{name: auto, approval: none}]\n"
			 "observe: {syscall_latency: {every: 0s}}\n",
			 &p, &e),
	    0);
	assert_int_equal(heal_runbooks_check_policy(rbs, p, &e), -EINVAL);
	snprintf(expect, sizeof(expect),
		 "%s/a.yaml:4:59: signal 'syscall_latency' is never measured: the policy turns "
		 "syscall latency off (observe.syscall_latency.every: 0s)",
		 dir);
	expect_errors(&e, expect, NULL);
	safe_policy_free(p);

	assert_int_equal(
	    parse_policy("mode: enforce\naction_classes: [{name: auto, approval: none}]\n"
			 "observe: {syscall_latency: {every: 5m}}\n",
			 &p, &e),
	    0);
	assert_int_equal(heal_runbooks_check_policy(rbs, p, &e), -EINVAL);
	snprintf(expect, sizeof(expect),
		 "%s/a.yaml:4:59: a window of 1m on 'syscall_latency' would often hold no latency "
		 "sample: the policy times syscalls 1s out of every 5m (observe.syscall_latency); "
		 "use a window of at least 5m",
		 dir);
	expect_errors(&e, expect, NULL);
	safe_policy_free(p);
	heal_runbooks_free(rbs);
}

static void test_runbooks_dir_and_policy(void **state)
{
	static const char rb_a[] =
	    "name: a\napplies_to: {target: web}\ndetect:\n  when:\n"
	    "    - {signal: exits, aggregation: rate, op: '>', threshold: 1}\n"
	    "remediate:\n  - {action: restart, class: approve}\n"
	    "  - {action: sysctl, class: auto, params: {name: kernel.panic, value: '0'}}\n"
	    "verify:\n  when:\n    - {signal: exits, aggregation: rate, op: '==', threshold: "
	    "0}\n";
	struct hs_errors e = {0};
	struct heal_runbooks *rbs = NULL;
	struct safe_policy *p = NULL;
	char dir[128], expect[1024], expect2[1024], expect3[1024];

	snprintf(dir, sizeof(dir), "%s/rb", tmpdir);
	assert_int_equal(mkdir(dir, 0755), 0);
	write_file("rb/b.yaml", rb_a, 0644);
	write_file("rb/notes.txt", "ignored", 0644);
	assert_int_equal(heal_runbooks_load(dir, getuid(), &rbs, &e), 0);
	assert_int_equal(rbs->n, 1);
	assert_string_equal(rbs->v[0].name, "a");
	snprintf(expect, sizeof(expect), "%s/b.yaml", dir);
	assert_string_equal(rbs->v[0].path, expect);

	assert_int_equal(parse_policy("mode: enforce\n", &p, &e), 0);
	assert_int_equal(heal_runbooks_check_policy(rbs, p, &e), -EINVAL);
	snprintf(expect, sizeof(expect),
		 "%s/b.yaml:2:22: unknown target 'web'; the policy defines no targets", dir);
	snprintf(expect2, sizeof(expect2),
		 "%s/b.yaml:7:30: unknown action class 'approve'; the policy defines no classes",
		 dir);
	snprintf(expect3, sizeof(expect3),
		 "%s/b.yaml:8:29: unknown action class 'auto'; the policy defines no classes", dir);
	expect_errors(&e, expect, expect2, expect3, NULL);
	safe_policy_free(p);

	assert_int_equal(parse_policy("mode: enforce\naction_classes:\n"
				      "  - {name: auto, approval: none}\n"
				      "  - {name: approve, approval: require}\n"
				      "protected: {sysctl_deny: [kernel.*]}\n"
				      "targets: [{name: web, pid: 1}]\n",
				      &p, &e),
			 0);
	assert_int_equal(heal_runbooks_check_policy(rbs, p, &e), -EINVAL);
	snprintf(expect, sizeof(expect),
		 "%s/b.yaml:7:5: action 'restart' needs target 'web' to have a unit, a cgroup or "
		 "a restart command",
		 dir);
	snprintf(expect2, sizeof(expect2),
		 "%s/b.yaml:8:5: sysctl 'kernel.panic' = '0' is not allowed: denied by "
		 "protected.sysctl_deny",
		 dir);
	expect_errors(&e, expect, expect2, NULL);
	safe_policy_free(p);
	heal_runbooks_free(rbs);

	/* The same name twice, and a group-writable directory. */
	write_file("rb/a.yaml", rb_a, 0644);
	assert_int_equal(heal_runbooks_load(dir, getuid(), &rbs, &e), -EINVAL);
	assert_null(rbs);
	snprintf(expect, sizeof(expect),
		 "%s/b.yaml:1:7: duplicate runbook name 'a', first in %s/a.yaml:1:7", dir, dir);
	expect_errors(&e, expect, NULL);

	assert_int_equal(chmod(dir, 0775), 0);
	assert_int_equal(heal_runbooks_load(dir, getuid(), &rbs, &e), -EINVAL);
	snprintf(expect, sizeof(expect),
		 "%s:1:1: writable by group or others (mode 0775), refusing: the agent acts as "
		 "root on what it says",
		 dir);
	expect_errors(&e, expect, NULL);
}

/* Every prefix and random mutations of good files: no crash, no leak, errors or success. */
static void test_garbage(void **state)
{
	struct hs_errors e = {0};
	unsigned seed = 12345;
	size_t len;
	char *text = read_fixture("tests/config/good/runbooks/cpu-starvation.yaml", &len);
	char *buf;

	if (!text)
		SKIP("tests/config/good/runbooks not found: run from the repository root");
	buf = malloc(len + 1);
	assert_non_null(buf);
	for (size_t cut = 0; cut <= len; cut += 7) {
		struct heal_runbook rb;

		if (heal_runbook_parse("g.yaml", text, cut, &rb, &e) == 0)
			heal_runbook_release(&rb);
		hs_errors_clear(&e);
	}
	for (int round = 0; round < 2000; round++) {
		struct safe_policy *p = NULL;
		struct heal_runbook rb;

		memcpy(buf, text, len);
		for (int k = 0; k < 1 + round % 8; k++) {
			seed = seed * 1103515245 + 12345;
			buf[(seed >> 8) % len] = (char)(seed >> 20);
		}
		if (heal_runbook_parse("g.yaml", buf, len, &rb, &e) == 0)
			heal_runbook_release(&rb);
		if (safe_policy_parse("g.yaml", buf, len, &p, &e) == 0)
			safe_policy_free(p);
		for (size_t i = 0; i < e.n; i++)
			assert_non_null(strstr(e.msgs[i], "g.yaml:"));
		hs_errors_clear(&e);
	}
	free(buf);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_duration),
	    cmocka_unit_test(test_parse_percent_bytes_numbers),
	    cmocka_unit_test(test_format),
	    cmocka_unit_test(test_schema_types),
	    cmocka_unit_test(test_yamltree_limits),
	    cmocka_unit_test(test_yamltree_tree),
	    cmocka_unit_test(test_file_safety),
	    cmocka_unit_test(test_policy_defaults),
	    cmocka_unit_test(test_policy_good_fixture),
	    cmocka_unit_test(test_policy_errors),
	    cmocka_unit_test(test_runbook_fixture),
	    cmocka_unit_test(test_runbook_fd_exhaustion),
	    cmocka_unit_test(test_runbook_errors),
	    cmocka_unit_test(test_runbooks_latency_windows),
	    cmocka_unit_test(test_runbooks_dir_and_policy),
	    cmocka_unit_test(test_garbage),
	};

	return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
