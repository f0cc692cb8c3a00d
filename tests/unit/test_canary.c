/* test_canary.c - unit tests of agent/safety/canary.c: the canary run on synthetic ticks.
 *
 * Time is synthetic (a tick every TICK ms), noise comes from a fixed-seed xorshift, and the
 * simulated system in the switchback tests follows the run's SWITCH_ON / SWITCH_OFF, so
 * every run is exactly reproducible. Statistics are judge.c's (test_judge.c checks them);
 * here the verdicts, which samples reached which arm, the rollback_on rule tick by tick, and
 * the exact breach reasons.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "safety/canary.h"

#define TICK 1000 /* ms */

/* ---- helpers ---- */

/* Uniform in [-1, 1) from xorshift64*. */
static double noise(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0 * 2 - 1;
}

static struct safe_canary_sample lat(double p99_ms, uint64_t errors, uint64_t events)
{
	struct safe_canary_sample s = SAFE_CANARY_SAMPLE_UNKNOWN;

	s.p99_ms = p99_ms;
	s.errors = errors;
	s.events = events;
	return s;
}

/* 60 s, 10 s blocks, 20 samples per arm; the policy defaults otherwise. */
static struct safe_canary_cfg cfg_of(enum safe_canary_mode mode)
{
	struct safe_canary_cfg c;

	safe_canary_cfg_init(&c, NULL, mode);
	c.duration_ms = 60000;
	c.block_ms = 10000;
	c.min_samples = 20;
	return c;
}

static struct safe_canary_run *start(const struct safe_canary_cfg *c)
{
	struct safe_canary_run *run = NULL;

	assert_int_equal(safe_canary_new(c, 0, NULL, 0, &run), 0);
	assert_non_null(run);
	return run;
}

static const struct safe_result *result_of(const struct safe_canary_step *st, const char *name)
{
	for (size_t i = 0; i < st->n_results; i++)
		if (strcmp(st->results[i].metric, name) == 0)
			return &st->results[i];
	return NULL;
}

/* After BREACH or DONE every tick returns the same step and records nothing. */
static void assert_over(struct safe_canary_run *run, const struct safe_canary_step *last)
{
	struct safe_canary_sample s = lat(1, 0, 1);
	struct safe_canary_step again;

	assert_int_equal(safe_canary_tick(run, last->elapsed_ms + 99 * TICK, &s, NULL, &again), 0);
	assert_int_equal(again.action, last->action);
	assert_int_equal(again.verdict, last->verdict);
	assert_int_equal(again.ticks, last->ticks);
	assert_int_equal(again.n_canary, last->n_canary);
	assert_string_equal(again.reason, last->reason);
	assert_ptr_equal(again.results, last->results);
}

/* ---- a tiny JSON validator: RFC 8259 grammar, no semantics; never reads past the NUL ---- */

struct jp {
	const char *s;
	int depth;
};

static bool jp_value(struct jp *p);

static void jp_ws(struct jp *p)
{
	while (*p->s == ' ' || *p->s == '\n' || *p->s == '\t' || *p->s == '\r')
		p->s++;
}

/* Consumes c if it is next (never the NUL). */
static bool jp_eat(struct jp *p, char c)
{
	if (!c || *p->s != c)
		return false;
	p->s++;
	return true;
}

static bool jp_lit(struct jp *p, const char *lit)
{
	size_t n = strlen(lit);

	if (strncmp(p->s, lit, n))
		return false;
	p->s += n;
	return true;
}

static bool jp_hex(struct jp *p)
{
	if (!*p->s || !strchr("0123456789abcdefABCDEF", *p->s))
		return false;
	p->s++;
	return true;
}

static bool jp_string(struct jp *p)
{
	if (!jp_eat(p, '"'))
		return false;
	for (;;) {
		unsigned char c = (unsigned char)*p->s;

		if (c < 0x20)
			return false; /* the NUL included: unterminated */
		p->s++;
		if (c == '"')
			return true;
		if (c != '\\')
			continue;
		c = (unsigned char)*p->s;
		if (!c || !strchr("\"\\/bfnrtu", c))
			return false;
		p->s++;
		if (c == 'u' && !(jp_hex(p) && jp_hex(p) && jp_hex(p) && jp_hex(p)))
			return false;
	}
}

static bool jp_digits(struct jp *p)
{
	const char *b = p->s;

	while (*p->s >= '0' && *p->s <= '9')
		p->s++;
	return p->s > b;
}

static bool jp_number(struct jp *p)
{
	jp_eat(p, '-');
	if (!jp_eat(p, '0') && !jp_digits(p))
		return false;
	if (jp_eat(p, '.') && !jp_digits(p))
		return false;
	if (jp_eat(p, 'e') || jp_eat(p, 'E')) {
		if (!jp_eat(p, '+'))
			jp_eat(p, '-');
		if (!jp_digits(p))
			return false;
	}
	return true;
}

static bool jp_seq(struct jp *p, char close, bool object)
{
	p->s++; /* the opening bracket */
	jp_ws(p);
	if (jp_eat(p, close))
		return true;
	for (;;) {
		jp_ws(p);
		if (object) {
			if (!jp_string(p))
				return false;
			jp_ws(p);
			if (!jp_eat(p, ':'))
				return false;
		}
		if (!jp_value(p))
			return false;
		jp_ws(p);
		if (jp_eat(p, close))
			return true;
		if (!jp_eat(p, ','))
			return false;
	}
}

static bool jp_value(struct jp *p)
{
	bool ok;

	jp_ws(p);
	if (++p->depth > 32)
		return false;
	switch (*p->s) {
	case '{':
		ok = jp_seq(p, '}', true);
		break;
	case '[':
		ok = jp_seq(p, ']', false);
		break;
	case '"':
		ok = jp_string(p);
		break;
	case 't':
		ok = jp_lit(p, "true");
		break;
	case 'f':
		ok = jp_lit(p, "false");
		break;
	case 'n':
		ok = jp_lit(p, "null");
		break;
	default:
		ok = jp_number(p);
	}
	p->depth--;
	return ok;
}

/* The whole of s is one JSON value. */
static bool jp_valid(const char *s, const char **stop)
{
	struct jp p = {s, 0};
	bool ok = jp_value(&p);

	if (ok)
		jp_ws(&p);
	*stop = p.s;
	return ok && !*p.s;
}

static void assert_json(const char *s)
{
	const char *stop;

	if (!jp_valid(s, &stop))
		fail_msg("invalid JSON at offset %td: %s", stop - s, s);
}

static void test_json_validator(void **state)
{
	const char *good[] = {"{}", "[]",
			      "{\"a\":[1,-2.5e+3,0.5E-2,true,false,null,\"x\\\"\\u00e9\"]}",
			      " {\"a\" : {\"b\":[]}} "};
	const char *bad[] = {"",	  "{",	   "{\"a\":}", "[1,]",	      "{\"a\" 1}",
			     "\"abc",	  "[01x]", "{} x",     "[nan]",	      "{\"a\":1,}",
			     "[\"\\x\"]", "[1.]",  "{a:1}",    "[\"\\u12\"]", "[\"\\u12"};
	const char *stop;

	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		assert_json(good[i]);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (jp_valid(bad[i], &stop))
			fail_msg("accepted %s", bad[i]);
}

/* ---- configuration ---- */

static void test_cfg_init(void **state)
{
	struct safe_policy p = {0};
	struct safe_canary_cfg c;

	safe_canary_cfg_init(&c, NULL, SAFE_CANARY_SWITCHBACK);
	assert_int_equal(c.mode, SAFE_CANARY_SWITCHBACK);
	assert_int_equal(c.duration_ms, 300000);
	assert_int_equal(c.block_ms, 30000);
	assert_int_equal(c.min_samples, 30);
	assert_int_equal(c.warmup_ticks, 1);
	assert_int_equal(c.smooth_ticks, 3);
	assert_int_equal(c.breach_min_baseline, 5);
	assert_true(c.judge.alpha == 0.05);
	assert_true(c.judge.min_effect == 0.05);
	assert_true(c.rollback_on.error_rate_increase == 0.001);
	assert_int_equal(c.rollback_on.p99_latency_increase_ms, 50);
	assert_true(c.rollback_on.rss_increase.relative);
	assert_true(c.rollback_on.rss_increase.fraction == 0.2);
	assert_true(c.rollback_on.throughput_decrease == 0.1);
	assert_true(c.rollback_on.fitness_decrease == 0.05);

	p.canary = (struct safe_canary){.duration_ms = 120000,
					.min_samples = 40,
					.alpha = 0.01,
					.effect_size = 0.1,
					.switchback_block_ms = 15000};
	p.rollback_on = (struct safe_rollback_on){.error_rate_increase = 0.002,
						  .p99_latency_increase_ms = 20,
						  .rss_increase = {.bytes = 1 << 20},
						  .throughput_decrease = 0.3,
						  .fitness_decrease = 0.1};
	safe_canary_cfg_init(&c, &p, SAFE_CANARY_CONCURRENT);
	assert_int_equal(c.mode, SAFE_CANARY_CONCURRENT);
	assert_int_equal(c.duration_ms, 120000);
	assert_int_equal(c.block_ms, 15000);
	assert_int_equal(c.min_samples, 40);
	assert_true(c.judge.alpha == 0.01);
	assert_true(c.judge.min_effect == 0.1);
	assert_true(c.judge.error_rate_increase == 0.002);
	assert_int_equal(c.rollback_on.p99_latency_increase_ms, 20);
	assert_false(c.rollback_on.rss_increase.relative);
	assert_int_equal(c.rollback_on.rss_increase.bytes, 1 << 20);
	assert_true(c.rollback_on.throughput_decrease == 0.3);
	assert_true(c.rollback_on.fitness_decrease == 0.1);
}

static void test_cfg_invalid(void **state)
{
	struct safe_canary_sample before[3] = {lat(1, 0, 1), lat(1, 0, 1), lat(1, 0, 1)};
	struct safe_canary_run *run = (struct safe_canary_run *)&run;
	struct safe_canary_cfg c;

	c = cfg_of(SAFE_CANARY_SWITCHBACK);
	c.block_ms = 30001; /* less than two blocks in 60 s */
	assert_int_equal(safe_canary_new(&c, 0, NULL, 0, &run), -EINVAL);
	assert_null(run);
	c.block_ms = 0;
	assert_int_equal(safe_canary_new(&c, 0, NULL, 0, &run), -EINVAL);
	c = cfg_of(SAFE_CANARY_CONCURRENT);
	c.block_ms = 0; /* not used outside switchback */
	assert_int_equal(safe_canary_new(&c, 0, NULL, 0, &run), 0);
	safe_canary_free(run);

	c = cfg_of(SAFE_CANARY_CONCURRENT);
	c.duration_ms = 0;
	assert_int_equal(safe_canary_new(&c, 0, NULL, 0, &run), -EINVAL);
	c = cfg_of(SAFE_CANARY_CONCURRENT);
	c.min_samples = 0;
	assert_int_equal(safe_canary_new(&c, 0, NULL, 0, &run), -EINVAL);
	c.min_samples = SAFE_CANARY_MAX_SAMPLES + 1;
	assert_int_equal(safe_canary_new(&c, 0, NULL, 0, &run), -EINVAL);
	c = cfg_of(SAFE_CANARY_CONCURRENT);
	c.smooth_ticks = 0;
	assert_int_equal(safe_canary_new(&c, 0, NULL, 0, &run), -EINVAL);
	c.smooth_ticks = SAFE_CANARY_SMOOTH_MAX + 1;
	assert_int_equal(safe_canary_new(&c, 0, NULL, 0, &run), -EINVAL);
	c = cfg_of(SAFE_CANARY_CONCURRENT);
	c.breach_min_baseline = 0;
	assert_int_equal(safe_canary_new(&c, 0, NULL, 0, &run), -EINVAL);
	c = cfg_of(SAFE_CANARY_CONCURRENT);
	c.judge.alpha = 0; /* the judge's own check */
	assert_int_equal(safe_canary_new(&c, 0, NULL, 0, &run), -EINVAL);
	c = cfg_of(SAFE_CANARY_CONCURRENT);
	c.rollback_on.throughput_decrease = -0.1;
	assert_int_equal(safe_canary_new(&c, 0, NULL, 0, &run), -EINVAL);
	c = cfg_of(SAFE_CANARY_CONCURRENT);
	c.rollback_on.error_rate_increase = NAN;
	assert_int_equal(safe_canary_new(&c, 0, NULL, 0, &run), -EINVAL);
	c = cfg_of(SAFE_CANARY_CONCURRENT);
	c.mode = SAFE_CANARY_MODE_COUNT;
	assert_int_equal(safe_canary_new(&c, 0, NULL, 0, &run), -EINVAL);

	/* before samples only in BEFORE_AFTER, and valid ones */
	c = cfg_of(SAFE_CANARY_CONCURRENT);
	assert_int_equal(safe_canary_new(&c, 0, before, 3, &run), -EINVAL);
	c = cfg_of(SAFE_CANARY_BEFORE_AFTER);
	assert_int_equal(safe_canary_new(&c, 0, NULL, 3, &run), -EINVAL);
	before[1].errors = 2;
	assert_int_equal(safe_canary_new(&c, 0, before, 3, &run), -EINVAL);
	before[1].errors = 0;
	before[2].cost = INFINITY;
	assert_int_equal(safe_canary_new(&c, 0, before, 3, &run), -EINVAL);
	assert_int_equal(safe_canary_new(NULL, 0, NULL, 0, &run), -EINVAL);
	assert_int_equal(safe_canary_new(&c, 0, NULL, 0, NULL), -EINVAL);
	safe_canary_free(NULL);
}

static void test_names(void **state)
{
	assert_string_equal(safe_canary_mode_name(SAFE_CANARY_CONCURRENT), "concurrent");
	assert_string_equal(safe_canary_mode_name(SAFE_CANARY_SWITCHBACK), "switchback");
	assert_string_equal(safe_canary_mode_name(SAFE_CANARY_BEFORE_AFTER), "before_after");
	assert_null(safe_canary_mode_name(SAFE_CANARY_MODE_COUNT));
	assert_string_equal(safe_canary_action_name(SAFE_CANARY_CONTINUE), "continue");
	assert_string_equal(safe_canary_action_name(SAFE_CANARY_SWITCH_ON), "switch_on");
	assert_string_equal(safe_canary_action_name(SAFE_CANARY_SWITCH_OFF), "switch_off");
	assert_string_equal(safe_canary_action_name(SAFE_CANARY_BREACH), "breach");
	assert_string_equal(safe_canary_action_name(SAFE_CANARY_DONE), "done");
	assert_null(safe_canary_action_name(SAFE_CANARY_ACTION_COUNT));
}

/* ---- concurrent: verdicts at DONE ---- */

/* Canary p99 around canary_ms, baseline around 100 ms (+-5 ms), 1 error in 1000 events in
 * both; one tick a second for 60 s. Returns the DONE step. */
static void run_concurrent(double canary_ms, uint64_t seed, struct safe_canary_step *st,
			   struct safe_canary_run **out)
{
	struct safe_canary_cfg c = cfg_of(SAFE_CANARY_CONCURRENT);
	struct safe_canary_run *run = start(&c);
	uint64_t rng = seed;

	for (int t = 1; t <= 60; t++) {
		struct safe_canary_sample cs = lat(canary_ms + 5 * noise(&rng), 1, 1000);
		struct safe_canary_sample bs = lat(100 + 5 * noise(&rng), 1, 1000);

		assert_int_equal(safe_canary_tick(run, t * TICK, &cs, &bs, st), 0);
		assert_int_equal(st->action, t < 60 ? SAFE_CANARY_CONTINUE : SAFE_CANARY_DONE);
		assert_true(st->change_on);
	}
	*out = run;
}

static void test_concurrent_keep(void **state)
{
	struct safe_canary_run *run;
	struct safe_canary_step st;
	const struct safe_result *r;

	run_concurrent(80, 1, &st, &run);
	assert_int_equal(st.verdict, SAFE_VERDICT_KEEP);
	assert_false(st.truncated);
	assert_int_equal(st.elapsed_ms, 60000);
	assert_int_equal(st.ticks, 60);
	assert_int_equal(st.discarded, 1); /* the first tick after the change */
	assert_int_equal(st.n_canary, 59);
	assert_int_equal(st.n_baseline, 59);
	assert_null(st.breach_metric);
	assert_int_equal(st.n_results, 2); /* error rate, p99: nothing else was measured */
	assert_string_equal(st.results[0].metric, "error rate");
	assert_string_equal(st.results[1].metric, "p99 latency");
	r = result_of(&st, "error rate");
	assert_int_equal(r->verdict, SAFE_VERDICT_INCONCLUSIVE);
	assert_int_equal(r->n_canary, 59000);
	assert_int_equal(r->errors_canary, 59);
	r = result_of(&st, "p99 latency");
	assert_int_equal(r->verdict, SAFE_VERDICT_KEEP);
	assert_int_equal(r->n_canary, 59);
	assert_true(r->shift < -15 && r->shift > -25);
	assert_string_equal(st.reason, r->reason);
	assert_memory_equal(st.reason, "p99 latency ", 12);
	assert_non_null(strstr(st.reason, "% lower (HL shift -"));
	assert_over(run, &st);
	safe_canary_free(run);
}

/* 20 ms worse: below the 50 ms breach limit, so no BREACH, but a ROLLBACK at DONE. */
static void test_concurrent_rollback_at_done(void **state)
{
	struct safe_canary_run *run;
	struct safe_canary_step st;
	const struct safe_result *r;

	run_concurrent(120, 2, &st, &run);
	assert_int_equal(st.action, SAFE_CANARY_DONE);
	assert_int_equal(st.verdict, SAFE_VERDICT_ROLLBACK);
	r = result_of(&st, "p99 latency");
	assert_int_equal(r->verdict, SAFE_VERDICT_ROLLBACK);
	assert_true(r->shift > 15 && r->shift < 25);
	assert_string_equal(st.reason, r->reason);
	safe_canary_free(run);
}

static void test_no_effect_inconclusive(void **state)
{
	struct safe_canary_run *run;
	struct safe_canary_step st;

	run_concurrent(100, 3, &st, &run);
	assert_int_equal(st.verdict, SAFE_VERDICT_INCONCLUSIVE);
	assert_int_equal(st.n_results, 2);
	assert_int_equal(result_of(&st, "p99 latency")->verdict, SAFE_VERDICT_INCONCLUSIVE);
	assert_int_equal(result_of(&st, "error rate")->verdict, SAFE_VERDICT_INCONCLUSIVE);
	assert_string_equal(st.reason, "no metric changed measurably (2 judged)");
	safe_canary_free(run);
}

/* A 50% improvement over 15 s: 14 samples per arm, fewer than the 20 asked for. */
static void test_too_few_samples(void **state)
{
	struct safe_canary_cfg c = cfg_of(SAFE_CANARY_CONCURRENT);
	struct safe_canary_step st;
	struct safe_canary_run *run;
	uint64_t rng = 4;

	for (int pass = 0; pass < 2; pass++) {
		c.duration_ms = 15000;
		c.min_samples = pass ? 10 : 20;
		run = start(&c);
		for (int t = 1; t <= 15; t++) {
			struct safe_canary_sample cs = lat(50 + noise(&rng), 0, 100);
			struct safe_canary_sample bs = lat(100 + noise(&rng), 0, 100);

			assert_int_equal(safe_canary_tick(run, t * TICK, &cs, &bs, &st), 0);
		}
		assert_int_equal(st.action, SAFE_CANARY_DONE);
		assert_int_equal(st.n_canary, 14);
		if (pass == 0) {
			assert_int_equal(st.verdict, SAFE_VERDICT_INCONCLUSIVE);
			assert_string_equal(
			    st.reason, "too few samples (14 canary, 14 baseline; need 20 each)");
			assert_int_equal(result_of(&st, "p99 latency")->verdict,
					 SAFE_VERDICT_INCONCLUSIVE);
		} else {
			/* the same data with min_samples 10 is a clear gain */
			assert_int_equal(st.verdict, SAFE_VERDICT_KEEP);
		}
		safe_canary_free(run);
	}
}

/* ---- rollback_on during the run ---- */

/* p99 100 ms in both arms, the canary jumps to 200 ms at tick 21 and stays: median of
 * [100, 100, 200] is 100, of [100, 200, 200] 200: BREACH at tick 22, the second bad tick. */
static void test_breach_latency_jump(void **state)
{
	struct safe_canary_cfg c = cfg_of(SAFE_CANARY_CONCURRENT);
	struct safe_canary_run *run = start(&c);
	struct safe_canary_step st;
	char json[8192];
	int t;

	for (t = 1; t <= 60; t++) {
		struct safe_canary_sample cs = lat(t < 21 ? 100 : 200, 0, 1000);
		struct safe_canary_sample bs = lat(100, 0, 1000);

		assert_int_equal(safe_canary_tick(run, t * TICK, &cs, &bs, &st), 0);
		if (st.action != SAFE_CANARY_CONTINUE)
			break;
	}
	assert_int_equal(t, 22);
	assert_int_equal(st.action, SAFE_CANARY_BREACH);
	assert_int_equal(st.verdict, SAFE_VERDICT_ROLLBACK);
	assert_true(st.change_on);
	assert_string_equal(st.breach_metric, "p99 latency");
	assert_true(st.breach_canary == 200);
	assert_true(st.breach_baseline == 100);
	assert_true(st.breach_limit == 150);
	assert_string_equal(st.reason, "p99 latency 200 ms (median of the last 3 canary ticks) >= "
				       "limit 150 ms (baseline median 100 ms + 50 ms)");
	/* the judge's statistics on the 21 samples so far, for the record */
	assert_int_equal(st.n_results, 2);
	assert_int_equal(result_of(&st, "p99 latency")->n_canary, 21);
	assert_over(run, &st);
	assert_true(safe_canary_json(run, json, sizeof(json)) > 0);
	assert_json(json);
	assert_non_null(strstr(json, "\"outcome\":\"breach\""));
	assert_non_null(strstr(json, "\"breach\":{\"metric\":\"p99 latency\",\"canary\":200,"
				     "\"baseline\":100,\"limit\":150,\"smooth_ticks\":3}"));
	assert_non_null(strstr(json, "\"verdict\":\"ROLLBACK\""));
	safe_canary_free(run);
}

/* One noisy tick (p99 1 s, then half the events failing) never breaches; two bad ticks
 * among the last three do. */
static void test_single_noisy_tick(void **state)
{
	struct safe_canary_cfg c = cfg_of(SAFE_CANARY_CONCURRENT);
	struct safe_canary_run *run = start(&c);
	struct safe_canary_step st;
	int t;

	for (t = 1; t <= 60; t++) {
		struct safe_canary_sample cs =
		    lat(t == 10 || t == 30 || t == 32 ? 1000 : 100, t == 15 ? 500 : 1, 1000);
		struct safe_canary_sample bs = lat(100, 1, 1000);

		assert_int_equal(safe_canary_tick(run, t * TICK, &cs, &bs, &st), 0);
		if (st.action != SAFE_CANARY_CONTINUE)
			break;
	}
	assert_int_equal(t, 32); /* [1000, 100, 1000]: median 1000 */
	assert_int_equal(st.action, SAFE_CANARY_BREACH);
	assert_string_equal(st.reason, "p99 latency 1000 ms (median of the last 3 canary ticks) >= "
				       "limit 150 ms (baseline median 100 ms + 50 ms)");
	safe_canary_free(run);

	/* with smooth_ticks 1, the first noisy tick is enough */
	c.smooth_ticks = 1;
	run = start(&c);
	for (t = 1; t <= 60; t++) {
		struct safe_canary_sample cs = lat(t == 10 ? 1000 : 100, 0, 1000);
		struct safe_canary_sample bs = lat(100, 0, 1000);

		assert_int_equal(safe_canary_tick(run, t * TICK, &cs, &bs, &st), 0);
		if (st.action != SAFE_CANARY_CONTINUE)
			break;
	}
	assert_int_equal(t, 10);
	assert_string_equal(st.reason, "p99 latency 1000 ms (the last canary tick) >= limit 150 ms "
				       "(baseline median 100 ms + 50 ms)");
	safe_canary_free(run);
}

/* 0.1% errors in both arms, then 5% in the canary from tick 11: BREACH at tick 12. */
static void test_breach_error_rate(void **state)
{
	struct safe_canary_cfg c = cfg_of(SAFE_CANARY_CONCURRENT);
	struct safe_canary_run *run = start(&c);
	struct safe_canary_step st;
	int t;

	for (t = 1; t <= 60; t++) {
		struct safe_canary_sample cs = lat(100, t < 11 ? 1 : 50, 1000);
		struct safe_canary_sample bs = lat(100, 1, 1000);

		assert_int_equal(safe_canary_tick(run, t * TICK, &cs, &bs, &st), 0);
		if (st.action != SAFE_CANARY_CONTINUE)
			break;
	}
	assert_int_equal(t, 12);
	assert_int_equal(st.action, SAFE_CANARY_BREACH);
	assert_string_equal(st.breach_metric, "error rate");
	assert_true(st.breach_canary == 0.05);
	assert_true(st.breach_baseline == 0.001);
	assert_true(st.breach_limit == 0.001 + 0.001);
	assert_string_equal(st.reason, "error rate 5% (median of the last 3 canary ticks) >= limit "
				       "0.2% (baseline 0.1% + 0.1 pp)");
	safe_canary_free(run);
}

/* A canary bad from its first tick: no check before the canary has 3 values and the
 * baseline 5; the first warm-up tick is discarded, so the first check is at tick 6. */
static void test_breach_needs_baseline(void **state)
{
	struct safe_canary_cfg c = cfg_of(SAFE_CANARY_CONCURRENT);
	struct safe_canary_run *run = start(&c);
	struct safe_canary_step st;
	int t;

	for (t = 1; t <= 60; t++) {
		struct safe_canary_sample cs = lat(500, 0, 1000);
		struct safe_canary_sample bs = lat(100, 0, 1000);

		assert_int_equal(safe_canary_tick(run, t * TICK, &cs, &bs, &st), 0);
		if (st.action != SAFE_CANARY_CONTINUE)
			break;
	}
	assert_int_equal(t, 6);
	assert_int_equal(st.n_baseline, 5);
	assert_int_equal(st.action, SAFE_CANARY_BREACH);
	safe_canary_free(run);

	/* a before window of 3 samples never allows a breach; the verdict is INCONCLUSIVE */
	c = cfg_of(SAFE_CANARY_BEFORE_AFTER);
	{
		struct safe_canary_sample before[3] = {lat(100, 0, 1000), lat(100, 0, 1000),
						       lat(100, 0, 1000)};

		assert_int_equal(safe_canary_new(&c, 0, before, 3, &run), 0);
	}
	for (t = 1; t <= 60; t++) {
		struct safe_canary_sample cs = lat(500, 900, 1000);

		assert_int_equal(safe_canary_tick(run, t * TICK, &cs, NULL, &st), 0);
		if (st.action != SAFE_CANARY_CONTINUE)
			break;
	}
	assert_int_equal(t, 60);
	assert_int_equal(st.action, SAFE_CANARY_DONE);
	assert_int_equal(st.verdict, SAFE_VERDICT_INCONCLUSIVE);
	assert_string_equal(st.reason, "too few samples (59 canary, 3 baseline; need 20 each)");
	safe_canary_free(run);
}

/* Every other rollback_on threshold, the canary worse from tick 11 on; the limits are the
 * policy defaults (throughput -10%, fitness -5%, RSS +20%) or 10 MiB. */
static void test_breach_other_metrics(void **state)
{
	static const struct {
		const char *metric;
		double base, bad;
		bool rss_bytes;
		double limit;
		const char *reason;
	} cases[] = {
	    {"throughput", 1000, 850, false, 900,
	     "throughput 850 events/s (median of the last 3 canary ticks) <= limit 900 events/s "
	     "(baseline median 1000 events/s - 10%)"},
	    {"fitness", 0.9, 0.8, false, 0.9 * 0.95,
	     "fitness 0.8 (median of the last 3 canary ticks) <= limit 0.855 (baseline median 0.9 "
	     "- 5%)"},
	    {"rss", 100e6, 130e6, false, 120e6,
	     "rss 130000000 bytes (median of the last 3 canary ticks) >= limit 120000000 bytes "
	     "(baseline median 100000000 bytes + 20%)"},
	    {"rss", 100e6, 111e6, true, 100e6 + 10485760,
	     "rss 111000000 bytes (median of the last 3 canary ticks) >= limit 110485760 bytes "
	     "(baseline median 100000000 bytes + 10485760 bytes)"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct safe_canary_cfg c = cfg_of(SAFE_CANARY_CONCURRENT);
		struct safe_canary_run *run;
		struct safe_canary_step st;
		int t;

		if (cases[i].rss_bytes)
			c.rollback_on.rss_increase =
			    (struct sch_amount){.relative = false, .bytes = 10485760};
		run = start(&c);
		for (t = 1; t <= 60; t++) {
			struct safe_canary_sample cs = SAFE_CANARY_SAMPLE_UNKNOWN;
			struct safe_canary_sample bs = SAFE_CANARY_SAMPLE_UNKNOWN;
			double v = t < 11 ? cases[i].base : cases[i].bad;

			if (strcmp(cases[i].metric, "throughput") == 0) {
				cs.throughput = v;
				bs.throughput = cases[i].base;
			} else if (strcmp(cases[i].metric, "fitness") == 0) {
				cs.fitness = v;
				bs.fitness = cases[i].base;
			} else {
				cs.rss_bytes = (uint64_t)v;
				bs.rss_bytes = (uint64_t)cases[i].base;
			}
			assert_int_equal(safe_canary_tick(run, t * TICK, &cs, &bs, &st), 0);
			if (st.action != SAFE_CANARY_CONTINUE)
				break;
		}
		assert_int_equal(t, 12);
		assert_int_equal(st.action, SAFE_CANARY_BREACH);
		assert_string_equal(st.breach_metric, cases[i].metric);
		assert_true(st.breach_limit == cases[i].limit);
		assert_string_equal(st.reason, cases[i].reason);
		safe_canary_free(run);
	}
}

/* Just inside every limit: no breach; and a threshold of 0 is not watched. */
static void test_no_breach_within_limits(void **state)
{
	struct safe_canary_cfg c = cfg_of(SAFE_CANARY_CONCURRENT);
	struct safe_canary_run *run;
	struct safe_canary_step st;

	for (int pass = 0; pass < 2; pass++) {
		if (pass) {
			c.rollback_on = (struct safe_rollback_on){0};
		}
		run = start(&c);
		for (int t = 1; t <= 60; t++) {
			struct safe_canary_sample cs = {
			    .fitness = pass ? 0.1 : 0.86,
			    .p99_ms = pass ? 1000 : 149,
			    .throughput = pass ? 1 : 901,
			    .cost = 1,
			    .errors = pass ? 900 : 1,
			    .events = 1000,
			    .rss_bytes = pass ? 900000000 : 119000000,
			};
			struct safe_canary_sample bs = {0.9, 100, 1000, 1, 1, 1000, 100000000};

			assert_int_equal(safe_canary_tick(run, t * TICK, &cs, &bs, &st), 0);
			assert_int_equal(st.action,
					 t < 60 ? SAFE_CANARY_CONTINUE : SAFE_CANARY_DONE);
		}
		/* no breach, but worse at the verdict */
		assert_int_equal(st.verdict, SAFE_VERDICT_ROLLBACK);
		assert_int_equal(st.n_results, 5);
		assert_int_equal(result_of(&st, "cost")->verdict, SAFE_VERDICT_INCONCLUSIVE);
		assert_null(result_of(&st, "rss")); /* watched, not judged */
		safe_canary_free(run);
	}
}

/* Limits are inclusive (c >= b + 50 ms; c >= b + 0.1%), and the error baseline is the
 * pooled fraction, not the median of per-tick fractions: errors in one tick of three at 3%
 * are 1% pooled (median 0), so a steady 0.5% canary is no breach. */
static void test_breach_boundaries(void **state)
{
	static const struct {
		double canary_ms;
		uint64_t canary_errors, base_errors[3];
		int breach_at; /* 0: none */
	} cases[] = {
	    {150, 0, {0, 0, 0}, 12}, {149.9, 0, {0, 0, 0}, 0},	{100, 1, {0, 0, 0}, 12},
	    {100, 5, {30, 0, 0}, 0}, {100, 12, {30, 0, 0}, 12},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct safe_canary_cfg c = cfg_of(SAFE_CANARY_CONCURRENT);
		struct safe_canary_run *run = start(&c);
		struct safe_canary_step st;
		int t;

		for (t = 1; t <= 60; t++) {
			struct safe_canary_sample cs =
			    lat(t < 11 ? 100 : cases[i].canary_ms,
				t < 11 ? 0 : cases[i].canary_errors, 1000);
			struct safe_canary_sample bs = lat(100, cases[i].base_errors[t % 3], 1000);

			assert_int_equal(safe_canary_tick(run, t * TICK, &cs, &bs, &st), 0);
			if (st.action != SAFE_CANARY_CONTINUE)
				break;
		}
		if (cases[i].breach_at) {
			assert_int_equal(st.action, SAFE_CANARY_BREACH);
			assert_int_equal(t, cases[i].breach_at);
		} else {
			if (st.action != SAFE_CANARY_DONE)
				fail_msg("case %zu: %s", i, st.reason);
		}
		safe_canary_free(run);
	}
}

/* The rule is checked on the canary's own ticks: a baseline that falls while the canary
 * sends nothing (ticks 21-40) does not breach until the canary's next sample (tick 41). */
static void test_breach_on_canary_ticks(void **state)
{
	struct safe_canary_cfg c = cfg_of(SAFE_CANARY_CONCURRENT);
	struct safe_canary_run *run = start(&c);
	struct safe_canary_step st;
	int t;

	for (t = 1; t <= 60; t++) {
		struct safe_canary_sample cs = lat(140, 0, 1000);
		struct safe_canary_sample bs = lat(t <= 20 ? 100 : 60, 0, 1000);

		assert_int_equal(
		    safe_canary_tick(run, t * TICK, t > 20 && t <= 40 ? NULL : &cs, &bs, &st), 0);
		if (st.action != SAFE_CANARY_CONTINUE)
			break;
	}
	assert_int_equal(t, 41);
	assert_int_equal(st.action, SAFE_CANARY_BREACH);
	assert_true(st.breach_baseline == 60); /* 19 x 100, 21 x 60 */
	safe_canary_free(run);
}

/* At DONE the p99 limit counts as well as the effect size: +60 ms on 2 s is 3%, below the
 * 5% effect size, but beyond the 50 ms of rollback_on. The breach rule never ran: the
 * before window (40) is smaller than breach_min_baseline (50). */
static void test_latency_limit_at_done(void **state)
{
	struct safe_canary_cfg c = cfg_of(SAFE_CANARY_BEFORE_AFTER);
	struct safe_canary_sample before[40];
	struct safe_canary_run *run = NULL;
	struct safe_canary_step st;
	const struct safe_result *r;
	uint64_t rng = 13;

	c.duration_ms = 30000;
	c.breach_min_baseline = 50;
	for (size_t i = 0; i < ARRAY_SIZE(before); i++)
		before[i] = lat(2000 + 5 * noise(&rng), 0, 1000);
	assert_int_equal(safe_canary_new(&c, 0, before, 40, &run), 0);
	for (int t = 1; t <= 30; t++) {
		struct safe_canary_sample x = lat(2060 + 5 * noise(&rng), 0, 1000);

		assert_int_equal(safe_canary_tick(run, t * TICK, &x, NULL, &st), 0);
	}
	assert_int_equal(st.action, SAFE_CANARY_DONE);
	assert_int_equal(st.verdict, SAFE_VERDICT_ROLLBACK);
	r = result_of(&st, "p99 latency");
	assert_int_equal(r->verdict, SAFE_VERDICT_ROLLBACK);
	assert_non_null(strstr(r->reason, ", beyond the 50 ms limit ("));
	safe_canary_free(run);
}

/* ---- switchback ---- */

/* The simulated target of the switchback tests: p99 on_ms while the change is on, off_ms
 * while it is off, plus drift per second and noise; the tick right after a switch is
 * contaminated (p99 and cost 1000). Cost is 50 otherwise. */
struct sim {
	double on_ms, off_ms, drift, amp;
	uint64_t rng;
	bool on, just_switched;
};

static struct safe_canary_sample sim_sample(struct sim *s, int t)
{
	struct safe_canary_sample x = lat(0, 1, 1000);

	x.p99_ms = (s->on ? s->on_ms : s->off_ms) + s->drift * t + s->amp * noise(&s->rng);
	x.cost = 50;
	if (s->just_switched)
		x.p99_ms = x.cost = 1000;
	return x;
}

static void sim_follow(struct sim *s, const struct safe_canary_step *st)
{
	s->just_switched = false;
	if (st->action == SAFE_CANARY_SWITCH_ON || st->action == SAFE_CANARY_SWITCH_OFF) {
		assert_true(s->on == (st->action == SAFE_CANARY_SWITCH_OFF));
		s->on = st->action == SAFE_CANARY_SWITCH_ON;
		s->just_switched = true;
	}
	assert_true(st->change_on == s->on);
}

static void test_switchback_schedule(void **state)
{
	struct safe_canary_cfg c = cfg_of(SAFE_CANARY_SWITCHBACK);
	struct safe_canary_run *run = start(&c);
	struct sim sim = {.on_ms = 50, .off_ms = 100};
	struct safe_canary_step st;
	const struct safe_result *r;
	char json[8192];
	int n;

	for (int t = 1; t <= 60; t++) {
		struct safe_canary_sample x = sim_sample(&sim, t);
		enum safe_canary_action want = SAFE_CANARY_CONTINUE;

		assert_int_equal(safe_canary_tick(run, t * TICK, &x, NULL, &st), 0);
		if (t == 60)
			want = SAFE_CANARY_DONE;
		else if (t % 10 == 0)
			want = t / 10 % 2 ? SAFE_CANARY_SWITCH_ON : SAFE_CANARY_SWITCH_OFF;
		if (st.action != want)
			fail_msg("tick %d: %s, want %s", t, safe_canary_action_name(st.action),
				 safe_canary_action_name(want));
		assert_int_equal(st.blocks, t < 60 ? t / 10 + 1 : 6);
		sim_follow(&sim, &st);
	}
	/* OFF: ticks 1-10 (block 0: no warm-up, the change was never applied), 22-30, 42-50;
	 * ON: 12-20, 32-40, 52-60; warm-up: 11, 21, 31, 41, 51 */
	assert_int_equal(st.discarded, 5);
	assert_int_equal(st.n_baseline, 28);
	assert_int_equal(st.n_canary, 27);
	assert_true(st.change_on); /* DONE in an ON block: the change is applied */
	assert_int_equal(st.verdict, SAFE_VERDICT_KEEP);
	r = result_of(&st, "p99 latency");
	assert_int_equal(r->verdict, SAFE_VERDICT_KEEP);
	assert_int_equal(r->n_canary, 27);
	assert_int_equal(r->n_baseline, 28);
	assert_true(r->effect == -1); /* every ON sample below every OFF one: none misfiled */
	assert_true(r->canary_center == 50 && r->baseline_center == 100);
	/* the contaminated warm-up ticks reached no arm */
	r = result_of(&st, "cost");
	assert_string_equal(r->reason, "cost: no change (all 55 samples 50)");

	n = safe_canary_json(run, json, sizeof(json));
	assert_true(n > 0 && (size_t)n == strlen(json));
	assert_json(json);
	assert_memory_equal(json,
			    "{\"mode\":\"switchback\",\"outcome\":\"done\",\"duration_ms\":60000,"
			    "\"elapsed_ms\":60000,\"block_ms\":10000,\"blocks\":6,\"ticks\":60,"
			    "\"discarded\":5,\"min_samples\":20,\"samples\":{\"canary\":27,"
			    "\"baseline\":28},\"truncated\":false,\"breach\":null,"
			    "\"verdict\":\"KEEP\",\"reason\":\"p99 latency",
			    strlen("{\"mode\":\"switchback\",\"outcome\":\"done\",\"duration_ms\":"
				   "60000,\"elapsed_ms\":60000,\"block_ms\":10000,\"blocks\":6,"
				   "\"ticks\":60,\"discarded\":5,\"min_samples\":20,\"samples\":{"
				   "\"canary\":27,\"baseline\":28},\"truncated\":false,\"breach\":"
				   "null,\"verdict\":\"KEEP\",\"reason\":\"p99 latency"));
	assert_non_null(strstr(json, "\"metrics\":[{\"metric\":\"error rate\""));
	assert_non_null(strstr(json, "{\"metric\":\"p99 latency\""));
	safe_canary_free(run);
}

/* A shift that exists only while the change is on, under a common drift (+0.3 ms/s) and
 * noise (+-8 ms) that a before/after comparison would confuse with it. */
static void test_switchback_detects_on_shift(void **state)
{
	struct safe_canary_cfg c = cfg_of(SAFE_CANARY_SWITCHBACK);
	static const struct {
		double on_ms;
		enum safe_verdict want;
	} cases[] = {{85, SAFE_VERDICT_KEEP},
		     {115, SAFE_VERDICT_ROLLBACK},
		     {100, SAFE_VERDICT_INCONCLUSIVE}};

	c.duration_ms = 120000;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct safe_canary_run *run = start(&c);
		struct sim sim = {
		    .on_ms = cases[i].on_ms, .off_ms = 100, .drift = 0.3, .amp = 8, .rng = 42};
		struct safe_canary_step st;
		int t;

		for (t = 1; t <= 120; t++) {
			struct safe_canary_sample x = sim_sample(&sim, t);

			assert_int_equal(safe_canary_tick(run, t * TICK, &x, NULL, &st), 0);
			sim_follow(&sim, &st);
			if (st.action == SAFE_CANARY_BREACH || st.action == SAFE_CANARY_DONE)
				break;
		}
		assert_int_equal(t, 120);
		assert_int_equal(st.action, SAFE_CANARY_DONE);
		assert_int_equal(st.blocks, 12);
		if (st.verdict != cases[i].want)
			fail_msg("on %g ms: %s (%s), want %s", cases[i].on_ms,
				 safe_verdict_name(st.verdict), st.reason,
				 safe_verdict_name(cases[i].want));
		safe_canary_free(run);
	}
}

/* Errors jump while the change is on: BREACH in the first ON block, once the ON arm has
 * 3 samples (ticks 12, 13, 14; 11 is the warm-up); OFF samples never count as canary. */
static void test_switchback_breach(void **state)
{
	struct safe_canary_cfg c = cfg_of(SAFE_CANARY_SWITCHBACK);
	struct safe_canary_run *run = start(&c);
	struct sim sim = {.on_ms = 100, .off_ms = 100};
	struct safe_canary_step st;
	int t;

	for (t = 1; t <= 60; t++) {
		struct safe_canary_sample x = sim_sample(&sim, t);

		x.errors = sim.on ? 100 : 1;
		assert_int_equal(safe_canary_tick(run, t * TICK, &x, NULL, &st), 0);
		sim_follow(&sim, &st);
		if (st.action == SAFE_CANARY_BREACH || st.action == SAFE_CANARY_DONE)
			break;
	}
	assert_int_equal(t, 14);
	assert_int_equal(st.action, SAFE_CANARY_BREACH);
	assert_true(st.change_on);
	assert_int_equal(st.n_canary, 3);
	assert_int_equal(st.n_baseline, 10);
	assert_string_equal(st.reason,
			    "error rate 10% (median of the last 3 canary ticks) >= limit "
			    "0.2% (baseline 0.1% + 0.1 pp)");
	safe_canary_free(run);
}

/* A baseline sample outside CONCURRENT is refused, and changes nothing. */
static void test_switchback_refuses_baseline(void **state)
{
	struct safe_canary_cfg c = cfg_of(SAFE_CANARY_SWITCHBACK);
	struct safe_canary_run *run = start(&c);
	struct safe_canary_sample x = lat(1, 0, 1);
	struct safe_canary_step st;

	assert_int_equal(safe_canary_tick(run, TICK, &x, &x, &st), -EINVAL);
	assert_int_equal(safe_canary_tick(run, TICK, &x, NULL, &st), 0);
	assert_int_equal(st.ticks, 1);
	assert_int_equal(st.n_baseline, 1);
	safe_canary_free(run);
}

/* ---- before/after ---- */

static void test_before_after(void **state)
{
	struct safe_canary_cfg c = cfg_of(SAFE_CANARY_BEFORE_AFTER);
	static const struct {
		double after_ms;
		enum safe_verdict want;
	} cases[] = {{70, SAFE_VERDICT_KEEP}, {130, SAFE_VERDICT_ROLLBACK}};
	struct safe_canary_sample before[40];
	uint64_t rng = 7;

	c.duration_ms = 30000;
	for (size_t i = 0; i < ARRAY_SIZE(before); i++)
		before[i] = lat(100 + 5 * noise(&rng), 1, 1000);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct safe_canary_run *run = NULL;
		struct safe_canary_step st;
		char json[8192];

		assert_int_equal(safe_canary_new(&c, 500000, before, 40, &run), 0);
		for (int t = 1; t <= 30; t++) {
			struct safe_canary_sample x =
			    lat(cases[i].after_ms + 5 * noise(&rng), 1, 1000);

			assert_int_equal(safe_canary_tick(run, 500000 + t * TICK, &x, NULL, &st),
					 0);
			assert_int_equal(st.action,
					 t < 30 ? SAFE_CANARY_CONTINUE : SAFE_CANARY_DONE);
			assert_true(st.change_on);
		}
		assert_int_equal(st.elapsed_ms, 30000);
		assert_int_equal(st.n_baseline, 40);
		assert_int_equal(st.n_canary, 29);
		assert_int_equal(st.verdict, cases[i].want);
		assert_int_equal(result_of(&st, "p99 latency")->n_baseline, 40);
		assert_int_equal(result_of(&st, "error rate")->n_baseline, 40000);
		assert_true(safe_canary_json(run, json, sizeof(json)) > 0);
		assert_json(json);
		assert_non_null(strstr(json, "{\"mode\":\"before_after\",\"outcome\":\"done\","
					     "\"duration_ms\":30000,\"elapsed_ms\":30000,\"ticks\":"
					     "30,\"discarded\":1,"));
		assert_null(strstr(json, "\"blocks\""));
		safe_canary_free(run);
	}
}

/* A before window longer than the limit keeps its last SAFE_CANARY_MAX_SAMPLES samples. */
static void test_before_window_cut(void **state)
{
	struct safe_canary_cfg c = cfg_of(SAFE_CANARY_BEFORE_AFTER);
	size_t n = SAFE_CANARY_MAX_SAMPLES + 904;
	struct safe_canary_sample *before = calloc(n, sizeof(*before));
	struct safe_canary_run *run = NULL;
	struct safe_canary_step st;

	assert_non_null(before);
	for (size_t i = 0; i < n; i++)
		before[i] = lat(i < 904 ? 1000 : 100, 0, 10); /* the oldest 904 are cut */
	c.duration_ms = 30000;
	assert_int_equal(safe_canary_new(&c, 0, before, n, &run), 0);
	free(before);
	for (int t = 1; t <= 30; t++) {
		struct safe_canary_sample x = lat(100, 0, 10);

		assert_int_equal(safe_canary_tick(run, t * TICK, &x, NULL, &st), 0);
	}
	assert_int_equal(st.action, SAFE_CANARY_DONE);
	assert_false(st.truncated);
	assert_int_equal(st.n_baseline, SAFE_CANARY_MAX_SAMPLES);
	assert_true(result_of(&st, "p99 latency")->baseline_center == 100);
	assert_int_equal(result_of(&st, "p99 latency")->verdict, SAFE_VERDICT_INCONCLUSIVE);
	safe_canary_free(run);
}

/* ---- unknown fields ---- */

static void test_nan_fields_ignored(void **state)
{
	struct safe_canary_cfg c = cfg_of(SAFE_CANARY_CONCURRENT);
	struct safe_canary_run *run = start(&c);
	struct safe_canary_step st;
	uint64_t rng = 9;

	for (int t = 1; t <= 60; t++) {
		struct safe_canary_sample cs = lat(t % 4 ? 80 + noise(&rng) : NAN, 0, 100);
		struct safe_canary_sample bs = lat(100 + noise(&rng), 0, 100);
		struct safe_canary_sample none = SAFE_CANARY_SAMPLE_UNKNOWN;

		bs.fitness = 0.9;    /* the canary has none: fitness is not judged */
		cs.throughput = NAN; /* neither has it */
		if (t % 10 == 0)
			cs = none; /* nothing known: not a sample */
		assert_int_equal(
		    safe_canary_tick(run, t * TICK, t % 20 == 5 ? NULL : &cs, &bs, &st), 0);
	}
	assert_int_equal(st.action, SAFE_CANARY_DONE);
	/* ticks 2..60: 59, less 5 unknown (10, 20, ..., 50; 60 too), less 3 NULL (5, 25, 45) */
	assert_int_equal(st.n_canary, 59 - 6 - 3);
	assert_int_equal(st.n_baseline, 59);
	assert_int_equal(st.n_results, 2);
	assert_string_equal(st.results[0].metric, "error rate");
	assert_string_equal(st.results[1].metric, "p99 latency");
	assert_null(result_of(&st, "fitness"));
	assert_null(result_of(&st, "throughput"));
	/* p99 unknown on every 4th tick as well: 20, 40, 60 are both */
	assert_int_equal(result_of(&st, "p99 latency")->n_canary, 50 - 15 + 3);
	assert_int_equal(result_of(&st, "error rate")->n_canary, 50 * 100);
	assert_int_equal(st.verdict, SAFE_VERDICT_KEEP);
	safe_canary_free(run);
}

/* ---- limits and misuse ---- */

static void test_sample_limit(void **state)
{
	struct safe_canary_cfg c = cfg_of(SAFE_CANARY_CONCURRENT);
	struct safe_canary_run *run;
	struct safe_canary_step st;
	uint64_t rng = 11;
	int t;

	c.duration_ms = 86400000;
	run = start(&c);
	for (t = 1; t <= 2 * SAFE_CANARY_MAX_SAMPLES; t++) {
		struct safe_canary_sample cs = lat(90 + noise(&rng), 0, 100);
		struct safe_canary_sample bs = lat(100 + noise(&rng), 0, 100);

		assert_int_equal(safe_canary_tick(run, t, &cs, &bs, &st), 0);
		if (st.action != SAFE_CANARY_CONTINUE)
			break;
	}
	assert_int_equal(t, SAFE_CANARY_MAX_SAMPLES + 1); /* + the warm-up tick */
	assert_int_equal(st.action, SAFE_CANARY_DONE);
	assert_true(st.truncated);
	assert_int_equal(st.n_canary, SAFE_CANARY_MAX_SAMPLES);
	assert_int_equal(st.n_baseline, SAFE_CANARY_MAX_SAMPLES);
	assert_int_equal(st.verdict, SAFE_VERDICT_KEEP);
	assert_memory_equal(st.reason,
			    "sample limit of 4096 per arm reached: p99 latency 10% lower",
			    strlen("sample limit of 4096 per arm reached: p99 latency 10% lower"));
	safe_canary_free(run);
}

static void test_invalid_ticks(void **state)
{
	struct safe_canary_cfg c = cfg_of(SAFE_CANARY_CONCURRENT);
	struct safe_canary_run *run = start(&c);
	struct safe_canary_sample ok = lat(100, 0, 10), bad = ok;
	struct safe_canary_step st;

	assert_int_equal(safe_canary_tick(run, 5 * TICK, &ok, &ok, &st), 0);
	assert_int_equal(safe_canary_tick(run, 4 * TICK, &ok, &ok, &st), -EINVAL); /* backwards */
	bad.p99_ms = INFINITY;
	assert_int_equal(safe_canary_tick(run, 6 * TICK, &bad, &ok, &st), -EINVAL);
	bad.p99_ms = -1e301;
	assert_int_equal(safe_canary_tick(run, 6 * TICK, &ok, &bad, &st), -EINVAL);
	bad = ok;
	bad.errors = 11;
	assert_int_equal(safe_canary_tick(run, 6 * TICK, &bad, &ok, &st), -EINVAL);
	assert_int_equal(safe_canary_tick(NULL, 6 * TICK, &ok, &ok, &st), -EINVAL);
	assert_int_equal(safe_canary_tick(run, 6 * TICK, &ok, &ok, NULL), -EINVAL);
	/* nothing of the refused ticks was kept */
	assert_int_equal(safe_canary_tick(run, 5 * TICK, &ok, &ok, &st), 0); /* same time: ok */
	assert_int_equal(st.ticks, 2);
	assert_int_equal(st.discarded, 1);
	assert_int_equal(st.n_canary, 1);
	assert_int_equal(st.elapsed_ms, 5000);
	/* the end comes on time even when ticks bring nothing */
	assert_int_equal(safe_canary_tick(run, 60 * TICK, NULL, NULL, &st), 0);
	assert_int_equal(st.action, SAFE_CANARY_DONE);
	assert_int_equal(st.verdict, SAFE_VERDICT_INCONCLUSIVE);
	assert_string_equal(st.reason, "too few samples (1 canary, 1 baseline; need 20 each)");
	assert_over(run, &st);
	safe_canary_free(run);
}

/* ---- JSON ---- */

static void test_json(void **state)
{
	struct safe_canary_cfg c = cfg_of(SAFE_CANARY_CONCURRENT);
	struct safe_canary_run *run = start(&c);
	struct safe_canary_step st;
	char json[8192], small[64];
	int n;

	n = safe_canary_json(run, json, sizeof(json));
	assert_int_equal(n, (int)strlen(json));
	assert_string_equal(json, "{\"mode\":\"concurrent\",\"outcome\":\"running\","
				  "\"duration_ms\":60000,\"elapsed_ms\":0,\"ticks\":0,"
				  "\"discarded\":0,\"min_samples\":20,\"samples\":{\"canary\":0,"
				  "\"baseline\":0},\"truncated\":false,\"breach\":null,"
				  "\"verdict\":null,\"reason\":null,\"metrics\":[]}");
	for (int t = 1; t <= 60; t++) {
		struct safe_canary_sample cs = {0.95, 80 + t % 7, 1000 + t % 5, 3, 0, 100, 1 << 20};
		struct safe_canary_sample bs = {0.9, 100 + t % 7, 1000 + t % 3, 3, 1, 100, 1 << 20};

		assert_int_equal(safe_canary_tick(run, t * TICK, &cs, &bs, &st), 0);
	}
	assert_int_equal(st.action, SAFE_CANARY_DONE);
	n = safe_canary_json(run, json, sizeof(json));
	assert_true(n > 0);
	assert_int_equal(n, (int)strlen(json));
	assert_json(json);
	assert_non_null(strstr(json, "\"outcome\":\"done\""));
	assert_non_null(strstr(json, "\"samples\":{\"canary\":59,\"baseline\":59}"));
	assert_non_null(strstr(json, "\"verdict\":\"KEEP\""));
	for (size_t i = 0; i < st.n_results; i++) {
		char key[80];

		snprintf(key, sizeof(key), "{\"metric\":\"%s\"", st.results[i].metric);
		assert_non_null(strstr(json, key));
	}
	assert_int_equal(st.n_results, 5);
	/* too small a buffer: -ENAMETOOLONG and a terminated prefix */
	memset(small, 'x', sizeof(small));
	assert_int_equal(safe_canary_json(run, small, sizeof(small)), -ENAMETOOLONG);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_memory_equal(small, json, sizeof(small) - 1);
	assert_int_equal(safe_canary_json(run, json, (size_t)n), -ENAMETOOLONG);
	assert_int_equal(safe_canary_json(run, json, (size_t)n + 1), n);
	assert_int_equal(safe_canary_json(NULL, json, sizeof(json)), -EINVAL);
	safe_canary_free(run);
}

/* ---- determinism ---- */

static void switchback_trace(char *trace, size_t size, char *json, size_t jsize)
{
	struct safe_canary_cfg c = cfg_of(SAFE_CANARY_SWITCHBACK);
	struct safe_canary_run *run;
	struct sim sim = {.on_ms = 90, .off_ms = 100, .drift = 0.1, .amp = 10, .rng = 5};
	struct safe_canary_step st;
	size_t len = 0;

	c.duration_ms = 100000;
	run = start(&c);
	for (int t = 1; t <= 100; t++) {
		struct safe_canary_sample x = sim_sample(&sim, t);

		assert_int_equal(safe_canary_tick(run, t * TICK, &x, NULL, &st), 0);
		len += (size_t)snprintf(trace + len, size - len, "%d", st.action);
		sim_follow(&sim, &st);
	}
	snprintf(trace + len, size - len, "|%s", st.reason);
	assert_true(safe_canary_json(run, json, jsize) > 0);
	safe_canary_free(run);
}

static void test_determinism(void **state)
{
	char t1[512], t2[512], j1[8192], j2[8192];

	switchback_trace(t1, sizeof(t1), j1, sizeof(j1));
	switchback_trace(t2, sizeof(t2), j2, sizeof(j2));
	assert_string_equal(t1, t2);
	assert_string_equal(j1, j2);
	assert_json(j1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_json_validator),
	    cmocka_unit_test(test_cfg_init),
	    cmocka_unit_test(test_cfg_invalid),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_concurrent_keep),
	    cmocka_unit_test(test_concurrent_rollback_at_done),
	    cmocka_unit_test(test_no_effect_inconclusive),
	    cmocka_unit_test(test_too_few_samples),
	    cmocka_unit_test(test_breach_latency_jump),
	    cmocka_unit_test(test_single_noisy_tick),
	    cmocka_unit_test(test_breach_error_rate),
	    cmocka_unit_test(test_breach_needs_baseline),
	    cmocka_unit_test(test_breach_other_metrics),
	    cmocka_unit_test(test_no_breach_within_limits),
	    cmocka_unit_test(test_breach_boundaries),
	    cmocka_unit_test(test_breach_on_canary_ticks),
	    cmocka_unit_test(test_latency_limit_at_done),
	    cmocka_unit_test(test_switchback_schedule),
	    cmocka_unit_test(test_switchback_detects_on_shift),
	    cmocka_unit_test(test_switchback_breach),
	    cmocka_unit_test(test_switchback_refuses_baseline),
	    cmocka_unit_test(test_before_after),
	    cmocka_unit_test(test_before_window_cut),
	    cmocka_unit_test(test_nan_fields_ignored),
	    cmocka_unit_test(test_sample_limit),
	    cmocka_unit_test(test_invalid_ticks),
	    cmocka_unit_test(test_json),
	    cmocka_unit_test(test_determinism),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
