/* test_profile.c - the shared profile result: interning, top functions (self and total, once
 * per stack), folded output, latency quantiles, frame text and the probe budget's verdicts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "observe/profile.h"

static struct obs_frame fr(struct obs_profile *p, const char *func, const char *module)
{
	return (struct obs_frame){.func = obs_profile_intern(p, func),
				  .module = obs_profile_intern(p, module)};
}

/* main -> work -> hot (x90), main -> work -> cold (x10), and a recursion rec -> rec (x5). */
static void build(struct obs_profile *p)
{
	struct obs_frame a[3] = {fr(p, "hot", "app"), fr(p, "work", "app"), fr(p, "main", "app")};
	struct obs_frame b[3] = {fr(p, "cold", "app"), fr(p, "work", "app"), fr(p, "main", "app")};
	struct obs_frame c[3] = {fr(p, "rec", "app"), fr(p, "rec", "app"), fr(p, "main", "app")};

	assert_int_equal(obs_profile_add(p, 42, 90, 0, a, 3), 0);
	assert_int_equal(obs_profile_add(p, 42, 10, 0, b, 3), 0);
	assert_int_equal(obs_profile_add(p, 7, 5, 0, c, 3), 0);
	obs_profile_finish(p);
}

static void test_intern(void **state)
{
	struct obs_profile p;
	char buf[8] = "work";

	obs_profile_init(&p, OBS_PROFILE_CPU);
	const char *a = obs_profile_intern(&p, "work");

	assert_ptr_equal(obs_profile_intern(&p, buf), a);
	assert_ptr_not_equal(obs_profile_intern(&p, "other"), a);
	assert_null(obs_profile_intern(&p, NULL));
	/* Enough strings to grow the set several times. */
	for (int i = 0; i < 5000; i++) {
		snprintf(buf, sizeof(buf), "f%d", i);
		assert_string_equal(obs_profile_intern(&p, buf), buf);
	}
	assert_ptr_equal(obs_profile_intern(&p, "work"), a);
	obs_profile_reset(&p);
}

static void test_top(void **state)
{
	struct obs_profile p;
	struct obs_profile_fn *rows;
	int n;

	obs_profile_init(&p, OBS_PROFILE_CPU);
	build(&p);
	assert_int_equal(obs_profile_weight(&p, 0), 105);
	assert_int_equal(obs_profile_weight(&p, 42), 100);
	n = obs_profile_top(&p, 42, &rows);
	assert_int_equal(n, 4);
	assert_string_equal(rows[0].func, "hot");
	assert_int_equal(rows[0].self, 90);
	assert_true(rows[0].self_pct > 89.99 && rows[0].self_pct < 90.01);
	assert_string_equal(rows[1].func, "cold");
	/* work and main: no self time, all of the total. */
	assert_int_equal(rows[2].self, 0);
	assert_int_equal(rows[2].total, 100);
	free(rows);
	/* A recursive function counts once per stack in its total. */
	n = obs_profile_top(&p, 7, &rows);
	assert_int_equal(n, 2);
	assert_string_equal(rows[0].func, "rec");
	assert_int_equal(rows[0].self, 5);
	assert_int_equal(rows[0].total, 5);
	free(rows);
	obs_profile_reset(&p);
}

static void test_folded(void **state)
{
	struct obs_profile p;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct obs_frame k[2];

	obs_profile_init(&p, OBS_PROFILE_CPU);
	k[0] = fr(&p, "do_sys; open", "[kernel]");
	k[0].kernel = true;
	k[1] = (struct obs_frame){.addr = 0x1234};
	build(&p);
	assert_int_equal(obs_profile_add(&p, 9, 1, 0, k, 2), 0);
	assert_int_equal(obs_profile_write_folded(&p, f, 0), 0);
	fclose(f);
	assert_string_equal(buf, "main;work;hot 90\n"
				 "main;work;cold 10\n"
				 "main;rec;rec 5\n"
				 "[unknown];do_sys__open_[k] 1\n");
	free(buf);
	f = open_memstream(&buf, &len);
	assert_int_equal(obs_profile_write_folded(&p, f, OBS_FOLDED_TGID), 0);
	fclose(f);
	assert_true(strncmp(buf, "pid-42;main;work;hot 90\n", 24) == 0);
	free(buf);
	obs_profile_reset(&p);
}

static void test_alloc_weights_bytes(void **state)
{
	struct obs_profile p;
	struct obs_frame a[1], b[1];

	obs_profile_init(&p, OBS_PROFILE_ALLOC);
	a[0] = fr(&p, "small_many", "app");
	b[0] = fr(&p, "big_few", "app");
	assert_int_equal(obs_profile_add(&p, 1, 1000, 16000, a, 1), 0);
	assert_int_equal(obs_profile_add(&p, 1, 2, 1 << 20, b, 1), 0);
	obs_profile_finish(&p);
	assert_string_equal(p.stacks[0].frames[0].func, "big_few");
	assert_int_equal(obs_profile_weight(&p, 1), 16000 + (1 << 20));
	obs_profile_reset(&p);
}

static void test_quantiles(void **state)
{
	uint64_t h[OBS_LAT_SLOTS] = {0};

	assert_int_equal(obs_lat_quantile(h, OBS_LAT_SLOTS, 0.5), 0);
	/* 100 calls in [2^21, 2^22): the median is the middle of the bucket. */
	h[21] = 100;
	assert_int_equal(obs_lat_quantile(h, OBS_LAT_SLOTS, 0.5), 3145728);
	assert_int_equal(obs_lat_quantile(h, OBS_LAT_SLOTS, 1.0), 4194304);
	/* 90 fast calls [1024, 2048) and 10 slow [2^20, 2^21): p90 is the top of the fast. */
	memset(h, 0, sizeof(h));
	h[10] = 90;
	h[20] = 10;
	assert_int_equal(obs_lat_quantile(h, OBS_LAT_SLOTS, 0.9), 2048);
	assert_int_equal(obs_lat_quantile(h, OBS_LAT_SLOTS, 0.95), 1572864);
}

static void test_frame_format(void **state)
{
	struct obs_frame f = {.func = "hot", .module = "app", .offset = 0x1f};
	char buf[64];

	assert_int_equal(obs_frame_format(&f, false, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "hot+0x1f (app)");
	assert_int_equal(obs_frame_format(&f, true, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "hot");
	f = (struct obs_frame){.module = "libc.so.6", .addr = 0x7f0012345678};
	assert_int_equal(obs_frame_format(&f, false, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "0x7f0012345678 (libc.so.6)");
	f.module = NULL;
	assert_int_equal(obs_frame_format(&f, false, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "[unknown]");
	f = (struct obs_frame){.func = "a_rather_long_name", .module = "m"};
	assert_int_equal(obs_frame_format(&f, false, buf, 8), -ENAMETOOLONG);
}

static void test_budget(void **state)
{
	struct obs_probe_budget b;
	char why[200] = "";

	obs_probe_budget_init(&b, 0, 0, 0);
	assert_int_equal(b.max_hits_per_s, 4444);
	/* Judged over one second at least: a burst in the first 100 ms is not yet over. */
	assert_false(obs_probe_budget_exceeded(&b, 4000, 100, why, sizeof(why)));
	assert_false(obs_probe_budget_exceeded(&b, 8888, 2000, why, sizeof(why)));
	assert_true(obs_probe_budget_exceeded(&b, 8889, 2000, why, sizeof(why)));
	assert_string_equal(why, "8889 probe hits in 2.0 s exceed the budget of 4444 hits/s "
				 "(2% of a CPU at 4500 ns a hit)");
	obs_probe_budget_init(&b, 5, 1000, 0);
	assert_int_equal(b.max_hits_per_s, 50000);
	obs_probe_budget_init(&b, 5, 0, 50);
	assert_int_equal(b.max_hits_per_s, 50);
	assert_true(obs_probe_budget_exceeded(&b, 152, 100, why, sizeof(why)));
	assert_string_equal(why, "152 probe hits in 0.1 s exceed the budget of 50 hits/s "
				 "(0.022% of a CPU at 4500 ns a hit)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_intern),    cmocka_unit_test(test_top),
	    cmocka_unit_test(test_folded),    cmocka_unit_test(test_alloc_weights_bytes),
	    cmocka_unit_test(test_quantiles), cmocka_unit_test(test_frame_format),
	    cmocka_unit_test(test_budget),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
