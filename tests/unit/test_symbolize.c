/* test_symbolize.c - addresses of this very test (a PIE) and of its libc back to their names,
 * the errors for what cannot be resolved, and the bounded cache (sharing and eviction).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "observe/symbolize.h"

__attribute__((noinline)) static int sym_test_static_target(int x)
{
	return x * 3 + 1;
}

__attribute__((noinline)) int sym_test_global_target(int x)
{
	return sym_test_static_target(x) + 2;
}

static int setup(void **state)
{
	struct obs_symbolizer *s;

	assert_int_equal(obs_sym_new(NULL, &s), 0);
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	obs_sym_free(*state);
	return 0;
}

static void test_static_function(void **state)
{
	struct obs_sym sym;
	uint64_t addr = (uint64_t)(uintptr_t)&sym_test_static_target;

	assert_int_equal(sym_test_global_target(1), 6);
	assert_int_equal(obs_sym_user(*state, getpid(), addr + 3, &sym), 0);
	assert_non_null(sym.func);
	assert_string_equal(sym.func, "sym_test_static_target");
	assert_int_equal(sym.offset, 3);
	assert_string_equal(sym.module, "test_symbolize");
}

static void test_global_function(void **state)
{
	struct obs_sym sym;
	uint64_t addr = (uint64_t)(uintptr_t)&sym_test_global_target;

	assert_int_equal(obs_sym_user(*state, getpid(), addr, &sym), 0);
	assert_string_equal(sym.func, "sym_test_global_target");
	assert_int_equal(sym.offset, 0);
}

static void test_libc_function(void **state)
{
	struct obs_sym sym;
	uint64_t addr = (uint64_t)(uintptr_t)&getppid;

	assert_int_equal(obs_sym_user(*state, getpid(), addr + 1, &sym), 0);
	assert_non_null(sym.func);
	/* libc's .dynsym: aliases at one address resolve to the plain global name. */
	assert_string_equal(sym.func, "getppid");
	assert_int_equal(sym.offset, 1);
	assert_true(strncmp(sym.module, "libc", 4) == 0);
}

static void test_unmapped_and_gone(void **state)
{
	struct obs_sym sym;

	assert_int_equal(obs_sym_user(*state, getpid(), 0x10, &sym), -ENOENT);
	assert_null(sym.func);
	assert_int_equal(obs_sym_user(*state, INT_MAX, 0x400000, &sym), -ESRCH);
	/* A vanished pid is remembered as such, not re-read. */
	assert_int_equal(obs_sym_user(*state, INT_MAX, 0x400000, &sym), -ESRCH);
}

static void test_cache_shares_tables(void **state)
{
	struct obs_symbolizer *s = *state;
	struct obs_sym_stats st;
	struct obs_sym sym;
	uint64_t a = (uint64_t)(uintptr_t)&sym_test_static_target;
	uint64_t b = (uint64_t)(uintptr_t)&sym_test_global_target;

	assert_int_equal(obs_sym_user(s, getpid(), a, &sym), 0);
	assert_int_equal(obs_sym_user(s, getpid(), b, &sym), 0);
	obs_sym_stats(s, &st);
	assert_int_equal(st.elf_loads, 1);
	assert_int_equal(st.elfs, 1);
	assert_int_equal(st.procs, 1);
	obs_sym_forget_procs(s);
	obs_sym_stats(s, &st);
	assert_int_equal(st.procs, 0);
	assert_int_equal(st.elfs, 1);
	/* The maps are read again; the file is recognized, not parsed again. */
	assert_int_equal(obs_sym_user(s, getpid(), a, &sym), 0);
	assert_string_equal(sym.func, "sym_test_static_target");
	obs_sym_stats(s, &st);
	assert_int_equal(st.elf_loads, 1);
	assert_int_equal(st.elf_hits, 1);
}

static void test_cache_budget(void **state)
{
	struct obs_sym_limits lim = {.max_cache_bytes = 1, .max_procs = 1};
	struct obs_symbolizer *s;
	struct obs_sym_stats st;
	struct obs_sym sym;

	assert_int_equal(obs_sym_new(&lim, &s), 0);
	assert_int_equal(obs_sym_user(s, getpid(), (uintptr_t)&sym_test_static_target, &sym), 0);
	assert_int_equal(obs_sym_user(s, getpid(), (uintptr_t)&getppid, &sym), 0);
	/* Both tables are in use by the cached maps: over budget, but not evicted. */
	obs_sym_stats(s, &st);
	assert_int_equal(st.elfs, 2);
	assert_int_equal(st.evictions, 0);
	obs_sym_forget_procs(s);
	obs_sym_stats(s, &st);
	assert_int_equal(st.elfs, 0);
	assert_int_equal(st.cache_bytes, 0);
	assert_int_equal(st.evictions, 2);
	/* A third process slot is not kept beyond max_procs: the second pid replaces the first. */
	assert_int_equal(obs_sym_user(s, getpid(), (uintptr_t)&sym_test_static_target, &sym), 0);
	assert_int_equal(obs_sym_user(s, INT_MAX, 0x1000, &sym), -ESRCH);
	obs_sym_stats(s, &st);
	assert_int_equal(st.procs, 1);
	assert_int_equal(obs_sym_user(s, getpid(), (uintptr_t)&sym_test_static_target, &sym), 0);
	assert_string_equal(sym.func, "sym_test_static_target");
	obs_sym_free(s);
}

static void test_kernel_below_everything(void **state)
{
	struct obs_sym sym;

	/* Address 0 is below every kernel symbol, and without root kallsyms shows no address. */
	assert_int_equal(obs_sym_kernel(*state, 0, &sym), -ENOENT);
	assert_null(sym.func);
	assert_string_equal(sym.module, "[kernel]");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_static_function, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_global_function, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_libc_function, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unmapped_and_gone, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cache_shares_tables, setup, teardown),
	    cmocka_unit_test(test_cache_budget),
	    cmocka_unit_test_setup_teardown(test_kernel_below_everything, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
