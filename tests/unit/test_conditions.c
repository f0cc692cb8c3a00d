/* test_conditions.c - runbook conditions over synthetic ticks.
 *
 * Runbooks are parsed from YAML text as an operator writes them; series are built from
 * obs_target_snap values filled by hand, one tick a second. Values and explanations are
 * asserted exactly: the EMFILE rate over a window, not enough data at the start, debounce
 * (detect.for), hysteresis (detect.clear), a p99 from merged histograms, the RSS slope, and a
 * signal of the table that is not extracted yet.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/errors.h"
#include "observe/observe.h"
#include "remediate/conditions.h"
#include "remediate/runbook.h"

#define RB_TAIL                                                                                    \
	"remediate:\n  - {action: alert, class: auto}\n"                                           \
	"verify:\n  when:\n    - {signal: exits, aggregation: rate, op: '==', threshold: 0}\n"

static void parse(const char *detect, struct heal_runbook *rb)
{
	struct hs_errors e = {0};
	char text[2048];
	int r;

	snprintf(text, sizeof(text), "name: t\ndetect:\n%s" RB_TAIL, detect);
	r = heal_runbook_parse("t.yaml", text, strlen(text), rb, &e);
	if (r)
		hs_errors_print(&e, stderr);
	assert_int_equal(r, 0);
	hs_errors_clear(&e);
}

static struct heal_series *series_new(void)
{
	struct heal_series *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	return s;
}

/* A tick with emfile EMFILE failures and 5 EAGAIN ones. */
static void push_errors(struct heal_series *s, uint64_t at_ms, uint64_t emfile)
{
	struct obs_target_snap snap = {.name = "web", .index = 1};

	snap.top_errnos[0] = (struct obs_errno_count){EAGAIN, 5};
	snap.n_errnos = 1;
	if (emfile)
		snap.top_errnos[snap.n_errnos++] = (struct obs_errno_count){EMFILE, emfile};
	snap.sc_errors = 5 + emfile;
	snap.sc_count = 100;
	assert_int_equal(heal_series_push(s, &snap, at_ms), 0);
}

static void test_emfile_rate(void **state)
{
	struct heal_series *s = series_new();
	struct heal_runbook rb;
	struct heal_eval e;

	parse("  when:\n    - {signal: syscall_errors, errno: EMFILE, aggregation: rate, "
	      "window: 5s, op: '>', threshold: 0}\n",
	      &rb);
	for (uint64_t t = 1000; t <= 5000; t += 1000)
		push_errors(s, t, 12);

	/* (0, 5000] has no sample at or before its start, but the count over the 4 s covered
	 * is above the threshold already: more coverage could only add to it. */
	assert_int_equal(heal_condition_eval(&rb.detect.when[0], s, 5000, &e), 0);
	assert_true(e.enough_data);
	assert_true(e.holds);
	assert_string_equal(e.explain, "syscall_errors{errno=EMFILE} rate 12.0/s over 5 s (4 s "
				       "covered, already) > 0");
	/* Not so for a threshold the part covered does not reach. */
	rb.detect.when[0].threshold = 100;
	assert_int_equal(heal_condition_eval(&rb.detect.when[0], s, 5000, &e), 0);
	assert_false(e.enough_data);
	assert_false(e.holds);
	assert_string_equal(e.explain, "syscall_errors{errno=EMFILE} rate over 5 s: not enough "
				       "data (4 s covered)");
	rb.detect.when[0].threshold = 0;

	push_errors(s, 6000, 12);
	assert_int_equal(heal_condition_eval(&rb.detect.when[0], s, 6000, &e), 0);
	assert_true(e.enough_data);
	assert_true(e.holds);
	assert_true(e.value == 12.0);
	assert_string_equal(e.explain, "syscall_errors{errno=EMFILE} rate 12.0/s over 5 s > 0");

	/* The failures stop: the window drains tick by tick; EAGAIN is not counted. */
	for (uint64_t t = 7000; t <= 11000; t += 1000)
		push_errors(s, t, 0);
	assert_int_equal(heal_condition_eval(&rb.detect.when[0], s, 10000, &e), 0);
	assert_true(e.value == 12.0 / 5);
	assert_int_equal(heal_condition_eval(&rb.detect.when[0], s, 11000, &e), 0);
	assert_true(e.value == 0.0);
	assert_false(e.holds);
	assert_string_equal(e.explain, "syscall_errors{errno=EMFILE} rate 0.0/s over 5 s not > 0");
	/* Pushing back in time is refused. */
	assert_int_equal(heal_series_push(s, &(struct obs_target_snap){0}, 11000), -EINVAL);

	heal_runbook_release(&rb);
	free(s);
}

static void test_not_enough_data(void **state)
{
	struct heal_series *s = series_new();
	struct heal_runbook rb;
	struct heal_eval e;

	parse("  when:\n    - {signal: syscall_errors, aggregation: delta, window: 10s, op: '>=', "
	      "threshold: 0}\n",
	      &rb);
	/* Empty series: even ">= 0" does not hold. */
	assert_int_equal(heal_condition_eval(&rb.detect.when[0], s, 60000, &e), 0);
	assert_false(e.enough_data);
	assert_false(e.holds);
	assert_string_equal(e.explain,
			    "syscall_errors delta over 10 s: not enough data (0 s covered)");
	push_errors(s, 100000, 1);
	push_errors(s, 101000, 1);
	/* Before the agent's clock reached the window length. */
	assert_int_equal(heal_condition_eval(&rb.detect.when[0], s, 5000, &e), 0);
	assert_false(e.enough_data);
	/* (100 s, 110 s] starts at a sample: the tick at 101 s is all there is in it. */
	assert_int_equal(heal_condition_eval(&rb.detect.when[0], s, 110000, &e), 0);
	assert_true(e.enough_data);
	assert_true(e.value == 6.0); /* 5 EAGAIN + 1 EMFILE */
	assert_string_equal(e.explain, "syscall_errors delta 6.0 over 10 s >= 0");
	/* No sample inside (101 s, 111 s]: the target stopped reporting. */
	assert_int_equal(heal_condition_eval(&rb.detect.when[0], s, 111000, &e), 0);
	assert_false(e.enough_data);
	assert_string_equal(e.explain, "syscall_errors delta over 10 s: not enough data (no "
				       "sample in the window)");
	heal_runbook_release(&rb);
	free(s);
}

static const char *const fd_detect =
    "  when:\n    - {signal: syscall_errors, errno: [EMFILE, ENFILE], aggregation: rate, "
    "window: 1s, op: '>', threshold: 1}\n"
    "  for: 3s\n"
    "  clear:\n    - {signal: syscall_errors, errno: [EMFILE, ENFILE], aggregation: delta, "
    "window: 3s, op: '==', threshold: 0}\n";

static void test_debounce_and_hysteresis(void **state)
{
	struct heal_series *s = series_new();
	struct heal_detect_state st = {0};
	struct heal_runbook rb;
	/* EMFILE per tick from t = 1 s; the detect step runs after each push. */
	static const struct {
		uint64_t emfile;
		int want;
	} ticks[] = {
	    {0, HEAL_DETECT_UNCHANGED}, /* 1 s: not enough data */
	    {0, HEAL_DETECT_UNCHANGED}, /* 2 s */
	    {5, HEAL_DETECT_UNCHANGED}, /* 3 s: holds since 3 s */
	    {5, HEAL_DETECT_UNCHANGED}, /* 4 s */
	    {0, HEAL_DETECT_UNCHANGED}, /* 5 s: a gap restarts the debounce */
	    {5, HEAL_DETECT_UNCHANGED}, /* 6 s: holds since 6 s */
	    {5, HEAL_DETECT_UNCHANGED}, /* 7 s */
	    {5, HEAL_DETECT_UNCHANGED}, /* 8 s */
	    {5, HEAL_DETECT_FIRED},	/* 9 s: 3 s since 6 s */
	    {5, HEAL_DETECT_UNCHANGED}, /* 10 s */
	    {0, HEAL_DETECT_UNCHANGED}, /* 11 s: when no longer holds, clear does not yet */
	    {0, HEAL_DETECT_UNCHANGED}, /* 12 s */
	    {0, HEAL_DETECT_CLEARED},	/* 13 s: no failure over (10 s, 13 s] */
	    {0, HEAL_DETECT_UNCHANGED}, /* 14 s */
	};

	parse(fd_detect, &rb);
	assert_int_equal(rb.detect.for_ms, 3000);
	for (size_t i = 0; i < sizeof(ticks) / sizeof(ticks[0]); i++) {
		uint64_t at = 1000 * (i + 1);

		push_errors(s, at, ticks[i].emfile);
		assert_int_equal(heal_detect_step(&rb.detect, s, at, &st), ticks[i].want);
		if (at == 1000)
			assert_string_equal(st.why, "syscall_errors{errno=EMFILE|ENFILE} rate over "
						    "1 s: not enough data (0 s covered)");
		if (at == 9000) {
			assert_true(st.fired);
			assert_int_equal(st.fired_ms, 9000);
			assert_string_equal(st.why,
					    "syscall_errors{errno=EMFILE|ENFILE} rate 5.0/s over "
					    "1 s > 1");
		}
		if (at == 12000)
			assert_string_equal(st.why, "syscall_errors{errno=EMFILE|ENFILE} delta "
						    "5.0 over 3 s not == 0");
		if (at == 13000) {
			assert_false(st.fired);
			assert_string_equal(st.why, "syscall_errors{errno=EMFILE|ENFILE} delta "
						    "0.0 over 3 s == 0");
		}
	}
	heal_runbook_release(&rb);
	free(s);
}

/* Without detect.clear, the episode ends when `when` is refuted by data. */
static void test_clear_without_list(void **state)
{
	struct heal_series *s = series_new();
	struct heal_detect_state st = {0};
	struct heal_runbook rb;

	parse("  when:\n    - {signal: syscall_errors, errno: EMFILE, aggregation: rate, "
	      "window: 1s, op: '>', threshold: 1}\n",
	      &rb);
	assert_int_equal(rb.detect.for_ms, 0);
	push_errors(s, 1000, 5);
	/* 5 errors in the first tick are more than 1/s over 1 s whatever came before. */
	assert_int_equal(heal_detect_step(&rb.detect, s, 1000, &st), HEAL_DETECT_FIRED);
	push_errors(s, 2000, 5);
	assert_int_equal(heal_detect_step(&rb.detect, s, 2000, &st), HEAL_DETECT_UNCHANGED);
	push_errors(s, 3000, 2);
	assert_int_equal(heal_detect_step(&rb.detect, s, 3000, &st), HEAL_DETECT_UNCHANGED);
	push_errors(s, 4000, 1);
	assert_int_equal(heal_detect_step(&rb.detect, s, 4000, &st), HEAL_DETECT_CLEARED);
	assert_string_equal(st.why, "syscall_errors{errno=EMFILE} rate 1.0/s over 1 s not > 1");
	heal_runbook_release(&rb);
	free(s);
}

static void test_p99_latency(void **state)
{
	struct heal_series *s = series_new();
	struct heal_runbook rb;
	struct heal_eval e;

	parse("  when:\n    - {signal: syscall_latency, aggregation: p99, window: 2s, op: '>', "
	      "threshold: 1ms}\n"
	      "    - {signal: runq_latency, aggregation: avg, window: 2s, op: '<', "
	      "threshold: 250us}\n",
	      &rb);
	for (uint64_t t = 1000; t <= 3000; t += 1000) {
		struct obs_target_snap snap = {0};

		/* Per tick: 90 syscalls in [1024, 2048) ns and 10 in [1 Mi, 2 Mi) ns; the
		 * tick at 1 s is before the window and much slower. */
		snap.sc_lat.slots[10] = 90;
		snap.sc_lat.slots[t == 1000 ? 25 : 20] = 10;
		snap.sc_lat.count = 100;
		snap.rq_lat.slots[12] = 4;
		snap.rq_lat.count = 4;
		snap.rq_lat.sum_ns = 4 * 5000;
		/* The cumulative window must not be read: it holds the slow tick. */
		snap.sc_lat_window.slots[25] = 1000;
		snap.sc_lat_window.count = 1000;
		assert_int_equal(heal_series_push(s, &snap, t), 0);
	}
	/* Merged: 180 in slot 10, 20 in slot 20; rank 198 is 90% into slot 20. */
	assert_int_equal(heal_condition_eval(&rb.detect.when[0], s, 3000, &e), 0);
	assert_true(e.holds);
	assert_float_equal(e.value, (1048576.0 + 0.9 * 1048576.0) / 1e6, 1e-9);
	assert_string_equal(e.explain, "syscall_latency p99 1.99 ms over 2 s > 1 ms");
	assert_int_equal(heal_condition_eval(&rb.detect.when[1], s, 3000, &e), 0);
	assert_true(e.holds);
	assert_float_equal(e.value, 0.005, 1e-12);
	assert_string_equal(e.explain, "runq_latency avg 0.01 ms over 2 s < 0.25 ms");

	/* A window with no latency sample is not enough data. */
	heal_series_reset(s);
	for (uint64_t t = 1000; t <= 3000; t += 1000)
		assert_int_equal(heal_series_push(s, &(struct obs_target_snap){0}, t), 0);
	assert_int_equal(heal_condition_eval(&rb.detect.when[0], s, 3000, &e), 0);
	assert_false(e.enough_data);
	assert_false(e.holds);
	assert_string_equal(e.explain,
			    "syscall_latency p99 over 2 s: not enough data (no latency samples)");
	heal_runbook_release(&rb);
	free(s);
}

static void test_rss_slope(void **state)
{
	struct heal_series *s = series_new();
	struct heal_runbook rb;
	struct heal_eval e;

	parse("  when:\n    - {signal: rss, aggregation: slope, window: 10s, op: '>', "
	      "threshold: 512KiB}\n"
	      "    - {signal: rss, aggregation: max, window: 10s, op: '>', threshold: 256MiB}\n"
	      "    - {signal: rss, aggregation: delta, window: 10s, op: '>', threshold: 0}\n",
	      &rb);
	/* 200 MiB, growing by 1 MiB a second. */
	for (uint64_t t = 1000; t <= 20000; t += 1000) {
		struct obs_target_snap snap = {.rss_bytes =
						   (200ull << 20) + (t / 1000) * (1 << 20)};

		assert_int_equal(heal_series_push(s, &snap, t), 0);
	}
	assert_int_equal(heal_condition_eval(&rb.detect.when[0], s, 20000, &e), 0);
	assert_true(e.holds);
	assert_float_equal(e.value, 1048576.0, 1e-6);
	assert_string_equal(e.explain, "rss slope 1.0 MiB/s over 10 s > 512 KiB/s");
	assert_int_equal(heal_condition_eval(&rb.detect.when[1], s, 20000, &e), 0);
	assert_false(e.holds);
	assert_true(e.value == (double)(220ull << 20));
	assert_string_equal(e.explain, "rss max 220.0 MiB over 10 s not > 256 MiB");
	assert_int_equal(heal_condition_eval(&rb.detect.when[2], s, 20000, &e), 0);
	assert_true(e.value == (double)(10ull << 20));
	assert_string_equal(e.explain, "rss delta 10.0 MiB over 10 s > 0 B");
	heal_runbook_release(&rb);
	free(s);
}

/* Every signal of the table is either evaluated or refused by name, never read as zero. */
static void test_every_signal(void **state)
{
	static const char *const not_yet[] = {"fd_usage", "restarts"};
	struct heal_series *s = series_new();
	const struct obs_signal_desc *all;
	unsigned n;

	for (uint64_t t = 1000; t <= 20000; t += 1000)
		push_errors(s, t, 1);
	all = obs_signals(&n);
	for (unsigned i = 0; i < n; i++) {
		struct heal_condition c = {
		    .signal = (char *)all[i].name, .desc = &all[i], .window_ms = 5000};
		bool refused = false;
		struct heal_eval e;
		char want[96];
		int r;

		while (!(all[i].aggs & OBS_AGG_BIT(c.aggregation)))
			c.aggregation++;
		for (size_t j = 0; j < sizeof(not_yet) / sizeof(not_yet[0]); j++)
			refused = refused || strcmp(not_yet[j], all[i].name) == 0;
		r = heal_condition_eval(&c, s, 20000, &e);
		if (refused) {
			assert_int_equal(r, -EOPNOTSUPP);
			snprintf(want, sizeof(want), "signal '%s' is not extracted yet",
				 all[i].name);
			assert_string_equal(e.explain, want);
		} else {
			assert_int_equal(r, 0);
		}
	}
	/* The syscall selector needs per-syscall values. */
	{
		struct heal_condition c = {.signal = "syscall_rate",
					   .desc = obs_signal_lookup("syscall_rate"),
					   .syscall = "accept4",
					   .window_ms = 5000};
		struct heal_eval e;

		assert_int_equal(heal_condition_eval(&c, s, 20000, &e), -EOPNOTSUPP);
		assert_string_equal(e.explain, "syscall_rate{syscall=accept4}: per-syscall values "
					       "are not collected yet");
		c.syscall = NULL;
		c.aggregation = OBS_AGG_P99;
		assert_int_equal(heal_condition_eval(&c, s, 20000, &e), -EINVAL);
		assert_string_equal(e.explain, "syscall_rate: aggregation 'p99' does not apply");
	}
	free(s);
}

/* A window longer than the ring keeps never has enough data, and says why. */
static void test_window_longer_than_series(void **state)
{
	struct heal_series *s = series_new();
	struct heal_condition c = {.signal = "rss",
				   .desc = obs_signal_lookup("rss"),
				   .aggregation = OBS_AGG_SLOPE,
				   .window_ms = 3600000};
	struct heal_eval e;
	uint64_t t;

	for (t = 1000; t <= 1000 * (HEAL_SERIES_TICKS + 10); t += 1000)
		assert_int_equal(heal_series_push(s, &(struct obs_target_snap){.rss_bytes = t}, t),
				 0);
	assert_int_equal(heal_condition_eval(&c, s, t - 1000, &e), 0);
	assert_false(e.enough_data);
	assert_string_equal(e.explain, "rss slope over 3600 s: not enough data (window longer "
				       "than the 601 ticks kept)");
	c.window_ms = 600000;
	assert_int_equal(heal_condition_eval(&c, s, t - 1000, &e), 0);
	assert_true(e.enough_data);
	assert_float_equal(e.value, 1000.0, 1e-6);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_emfile_rate),
	    cmocka_unit_test(test_not_enough_data),
	    cmocka_unit_test(test_debounce_and_hysteresis),
	    cmocka_unit_test(test_clear_without_list),
	    cmocka_unit_test(test_p99_latency),
	    cmocka_unit_test(test_rss_slope),
	    cmocka_unit_test(test_every_signal),
	    cmocka_unit_test(test_window_longer_than_series),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
