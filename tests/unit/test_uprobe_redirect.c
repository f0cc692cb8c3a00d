/* test_uprobe_redirect.c - the pure parts of redirect mechanism a (agent/redirect/uprobe.c):
 * fraction conversion, the sticky thread draw shared with bpf/redirect.bpf.c, the verdict of
 * the ctx->ip write probe from a verifier log, and the refusal of bad options. One test loads
 * the probe when run as root and checks that attach refuses with the probe's reason where the
 * kernel refuses the write; it is skipped otherwise. The redirect itself is not exercised on
 * the development hosts: their kernel refuses the write to ctx->ip.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/types.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "../../bpf/redirect.h"
#include "redirect/uprobe.h"

/* A test that cannot run says why (cmocka 1.1 has skip() but no message). */
#define SKIP(msg)                                                                                  \
	do {                                                                                       \
		print_message("skipped: %s\n", msg);                                               \
		skip();                                                                            \
	} while (0)

/* What this kernel (6.18 with the write disabled) logs at log_level 1 for redirect_probe. */
static const char refused_log[] = "0: R1=ctx() R10=fp0\n"
				  "0: (79) r2 = *(u64 *)(r1 +128)        ; R1=ctx() R2=scalar()\n"
				  "1: (7b) *(u64 *)(r1 +128) = r2\n"
				  "invalid bpf_context access off=128 size=8\n"
				  "processed 2 insns (limit 1000000) max_states_per_insn 0 "
				  "total_states 0 peak_states 0 mark_read 0\n";

static void test_fraction_from_ratio(void **state)
{
	uint32_t f = 7;

	assert_int_equal(redir_fraction_from_ratio(0.0, &f), 0);
	assert_int_equal(f, 0);
	assert_int_equal(redir_fraction_from_ratio(1.0, &f), 0);
	assert_int_equal(f, 65536);
	assert_int_equal(redir_fraction_from_ratio(0.25, &f), 0);
	assert_int_equal(f, 16384);
	assert_int_equal(redir_fraction_from_ratio(0.01, &f), 0);
	assert_int_equal(f, 655); /* 655.36 */
	assert_int_equal(redir_fraction_from_ratio(1.0 / 65536, &f), 0);
	assert_int_equal(f, 1);
	assert_int_equal(redir_fraction_from_ratio(0.4 / 65536, &f), 0);
	assert_int_equal(f, 0);
	f = 7;
	assert_int_equal(redir_fraction_from_ratio(-0.001, &f), -ERANGE);
	assert_int_equal(redir_fraction_from_ratio(1.0001, &f), -ERANGE);
	assert_int_equal(redir_fraction_from_ratio(NAN, &f), -ERANGE);
	assert_int_equal(f, 7);
}

static void test_chosen_bounds(void **state)
{
	assert_false(redirect_chosen(0, 0));
	assert_true(redirect_chosen(65535, REDIRECT_FRACTION_ONE));
	assert_true(redirect_chosen(0, 1));
	assert_false(redirect_chosen(1, 1));
	assert_false(redirect_chosen(16384, 16384));
	assert_true(redirect_chosen(16383, 16384));
}

static void test_thread_draw_values(void **state)
{
	/* murmur3 fmix32 of tid ^ seed, top 16 bits, computed independently */
	assert_int_equal(redir_thread_draw(0, 0), 0);
	assert_int_equal(redir_thread_draw(1, 0), 20814);
	assert_int_equal(redir_thread_draw(1234, 0), 3884);
	assert_int_equal(redir_thread_draw(1234, 0xdeadbeef), 16585);
	/* the agent's copy is the kernel side's inline function */
	assert_int_equal(redir_thread_draw(4242, 99), redirect_thread_draw(4242, 99));
}

static void test_thread_draw_share(void **state)
{
	unsigned chosen = 0, other_seed = 0, both = 0;

	for (uint32_t tid = 1; tid <= 100000; tid++) {
		bool a = redirect_chosen(redir_thread_draw(tid, 7), 16384);
		bool b = redirect_chosen(redir_thread_draw(tid, 8), 16384);

		assert_true(redir_thread_draw(tid, 7) < 65536);
		chosen += a;
		other_seed += b;
		both += a && b;
		/* sticky: raising the fraction keeps every chosen thread chosen */
		if (a)
			assert_true(redirect_chosen(redir_thread_draw(tid, 7), 16385));
	}
	assert_int_equal(chosen, 24801);
	/* about a quarter each, and another seed picks other threads (independent: ~1/16) */
	assert_in_range(other_seed, 24000, 26000);
	assert_in_range(both, 5500, 7000);
}

static void test_verifier_reason(void **state)
{
	char line[64];

	redir_verifier_reason(refused_log, line, sizeof(line));
	assert_string_equal(line, "invalid bpf_context access off=128 size=8");
	/* bpftool's log level adds time and stack depth before the totals */
	redir_verifier_reason("1: (7b) *(u64 *)(r1 +80) = r1\n"
			      "  invalid bpf_context access off=80 size=8  \n"
			      "verification time 73 usec\nstack depth 0\n"
			      "processed 2 insns (limit 1000000)\n",
			      line, sizeof(line));
	assert_string_equal(line, "invalid bpf_context access off=80 size=8");
	/* no statistics: the last non-empty line */
	redir_verifier_reason("R1 type=ctx expected=fp\nunknown func bpf_foo#999\n\n", line,
			      sizeof(line));
	assert_string_equal(line, "unknown func bpf_foo#999");
	redir_verifier_reason("", line, sizeof(line));
	assert_string_equal(line, "");
	redir_verifier_reason(NULL, line, sizeof(line));
	assert_string_equal(line, "");
	redir_verifier_reason("processed 0 insns\n", line, sizeof(line));
	assert_string_equal(line, "");
	redir_verifier_reason(refused_log, line, 8);
	assert_string_equal(line, "invalid");
}

static void test_verdict(void **state)
{
	char why[128];

	assert_int_equal(redir_uprobe_verdict(0, "processed 4 insns\n", why, sizeof(why)), 1);
	assert_string_equal(why, "write to ctx->ip accepted");
	assert_int_equal(redir_uprobe_verdict(-EACCES, refused_log, why, sizeof(why)), 0);
	assert_string_equal(why,
			    "write to ctx->ip refused: invalid bpf_context access off=128 size=8");
	assert_int_equal(redir_uprobe_verdict(-EINVAL, refused_log, why, sizeof(why)), 0);
	/* no verifier log: the probe itself could not run */
	assert_int_equal(redir_uprobe_verdict(-EPERM, "", why, sizeof(why)), -EPERM);
	assert_string_equal(why, "cannot load a uprobe program: Operation not permitted");
	assert_int_equal(redir_uprobe_verdict(-EINVAL, NULL, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "cannot load a uprobe program: Invalid argument");
	assert_int_equal(redir_uprobe_verdict(-ENOSYS, refused_log, why, sizeof(why)), -ENOSYS);
	assert_string_equal(why, "cannot load a uprobe program: Function not implemented");
}

static void test_attach_refuses_bad_options(void **state)
{
	struct redir_uprobe_opts o = {
	    .pid = 1, .binary = "/bin/true", .func_offset = 0x1000, .alt_addr = 0x401000};
	struct redir_uprobe *ru = NULL;
	char why[128];

	o.pid = 0;
	assert_int_equal(redir_uprobe_attach(&o, &ru, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "pid 0 must be positive");
	o.pid = 1;
	o.binary = "";
	assert_int_equal(redir_uprobe_attach(&o, &ru, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "binary is empty");
	o.binary = "/bin/true";
	o.alt_addr = 0;
	assert_int_equal(redir_uprobe_attach(&o, &ru, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "alternative address is 0");
	o.alt_addr = 0x401000;
	o.fraction = 65537;
	assert_int_equal(redir_uprobe_attach(&o, &ru, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "fraction 65537 must be between 0 and 65536");
	assert_null(ru);
}

static int quiet_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return 0;
}

/* Root only: loads redirect_probe (never attaches it). */
static void test_probe_and_attach_refusal(void **state)
{
	struct redir_uprobe_opts o = {.pid = getpid(),
				      .binary = "/proc/self/exe",
				      .func_offset = 0x1000,
				      .alt_addr = 0x401000,
				      .fraction = 32768};
	struct redir_uprobe *ru = NULL;
	char why[256], why2[256];
	int r;

	if (geteuid() != 0)
		SKIP("loading the ctx->ip write probe needs root");
	libbpf_set_print(quiet_libbpf);
	r = redir_uprobe_probe(why, sizeof(why));
	print_message("probe: %d %s\n", r, why);
	assert_in_range(r, 0, 1);
	if (r == 1) {
		assert_string_equal(why, "write to ctx->ip accepted");
		SKIP("this kernel accepts the write: attach is not exercised by a unit test");
	}
	assert_int_equal(strncmp(why, "write to ctx->ip refused: ", 26), 0);
	assert_true(strlen(why) > 26);
	assert_int_equal(redir_uprobe_attach(&o, &ru, why2, sizeof(why2)), -EOPNOTSUPP);
	assert_string_equal(why2, why);
	assert_null(ru);
	assert_int_equal(redir_uprobe_detach(NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fraction_from_ratio),
	    cmocka_unit_test(test_chosen_bounds),
	    cmocka_unit_test(test_thread_draw_values),
	    cmocka_unit_test(test_thread_draw_share),
	    cmocka_unit_test(test_verifier_reason),
	    cmocka_unit_test(test_verdict),
	    cmocka_unit_test(test_attach_refuses_bad_options),
	    cmocka_unit_test(test_probe_and_attach_refusal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
