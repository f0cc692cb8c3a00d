/* test_symbolize.c - addresses of this very test (a PIE) and of its libc back to their names,
 * the errors for what cannot be resolved, and the bounded cache (sharing and eviction); and
 * back: names to the addresses and sizes a redirect patches (obs_sym_find), and the
 * alternatives of a function by issue 6's naming convention (obs_sym_alternatives).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"
#include "observe/symbolize.h"

__attribute__((noinline)) static int sym_test_static_target(int x)
{
	return x * 3 + 1;
}

__attribute__((noinline)) int sym_test_global_target(int x)
{
	return sym_test_static_target(x) + 2;
}

/* A function and its alternatives, each different (identical code could be folded). */
__attribute__((noipa)) long sym_test_hot(long x)
{
	return x * 5 + 1;
}

__attribute__((noipa)) long sym_test_hot__alt_fast(long x)
{
	return x * 5 + 2;
}

__attribute__((noipa)) long sym_test_hot__alt_b(long x)
{
	return x * 5 + 3;
}

/* only the prefix: not an alternative */
__attribute__((noipa)) long sym_test_hot__alt_(long x)
{
	return x * 5 + 4;
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

static void test_find_by_name(void **state)
{
	struct obs_symbolizer *s = *state;
	struct obs_sym_addr a;
	char exe[PATH_MAX];
	ssize_t n;

	assert_int_equal(sym_test_hot(1) + sym_test_hot__alt_fast(1) + sym_test_hot__alt_b(1) +
			     sym_test_hot__alt_(1),
			 6 + 7 + 8 + 9);
	/* the main executable: a PIE, placed through its mapping */
	assert_int_equal(obs_sym_find(s, getpid(), NULL, "sym_test_hot", &a), 0);
	assert_int_equal(a.addr, (uintptr_t)&sym_test_hot);
	assert_true(a.size > 0 && a.size < 64);
	assert_string_equal(a.object, "test_symbolize");
	assert_int_equal(obs_sym_find(s, getpid(), NULL, "sym_test_static_target", &a), 0);
	assert_int_equal(a.addr, (uintptr_t)&sym_test_static_target);
	/* by basename and by path */
	assert_int_equal(obs_sym_find(s, getpid(), "test_symbolize", "sym_test_hot__alt_b", &a), 0);
	assert_int_equal(a.addr, (uintptr_t)&sym_test_hot__alt_b);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	assert_int_equal(obs_sym_find(s, getpid(), exe, "sym_test_hot__alt_fast", &a), 0);
	assert_int_equal(a.addr, (uintptr_t)&sym_test_hot__alt_fast);
	/* a shared library, at its load address */
	assert_int_equal(obs_sym_find(s, getpid(), "libc.so.6", "getppid", &a), 0);
	assert_int_equal(a.addr, (uintptr_t)&getppid);
	assert_string_equal(a.object, "libc.so.6");
	/* memcpy@@GLIBC_2.14 is an IFUNC (memcpy@GLIBC_2.2.5, a plain FUNC, is not the
	 * default version) */
	assert_int_equal(obs_sym_find(s, getpid(), "libc.so.6", "memcpy", &a), -EOPNOTSUPP);
	/* what is not there */
	assert_int_equal(obs_sym_find(s, getpid(), NULL, "sym_test_nothing", &a), -ENOENT);
	assert_int_equal(a.addr, 0);
	assert_int_equal(obs_sym_find(s, getpid(), NULL, "getppid", &a), -ENOENT);
	assert_int_equal(obs_sym_find(s, getpid(), "libnothing.so.1", "getppid", &a), -ENXIO);
	assert_int_equal(obs_sym_find(s, getpid(), NULL, "", &a), -EINVAL);
	assert_int_equal(obs_sym_find(s, INT_MAX, NULL, "sym_test_hot", &a), -ESRCH);
}

static void test_alternatives(void **state)
{
	struct obs_symbolizer *s = *state;
	char names[4][OBS_SYM_NAME_MAX];

	assert_int_equal(obs_sym_alternatives(s, getpid(), NULL, "sym_test_hot", names, 4), 2);
	assert_string_equal(names[0], "sym_test_hot__alt_b");
	assert_string_equal(names[1], "sym_test_hot__alt_fast");
	assert_int_equal(obs_sym_alternatives(s, getpid(), NULL, "sym_test_hot", names, 1), 1);
	assert_string_equal(names[0], "sym_test_hot__alt_b");
	assert_int_equal(
	    obs_sym_alternatives(s, getpid(), "test_symbolize", "sym_test_hot__alt_b", names, 4),
	    0);
	assert_int_equal(obs_sym_alternatives(s, getpid(), "libc.so.6", "sym_test_hot", names, 4),
			 0);
	assert_int_equal(obs_sym_alternatives(s, getpid(), "libnothing.so", "f", names, 4), -ENXIO);
	assert_int_equal(obs_sym_alternatives(s, INT_MAX, NULL, "sym_test_hot", names, 4), -ESRCH);
}

/* In a file no process need map: the offset where a mapping of the file puts the function,
 * checked against where this process's mapping of its own executable put it. */
static void test_file_find(void **state)
{
	struct obs_symbolizer *s = *state;
	char exe[PATH_MAX], names[4][OBS_SYM_NAME_MAX];
	uint64_t off, size;
	struct obs_sym_addr a;
	ssize_t n;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	assert_int_equal(obs_sym_file_find(s, exe, "sym_test_hot__alt_fast", &off, &size), 0);
	assert_int_equal(obs_sym_find(s, getpid(), NULL, "sym_test_hot__alt_fast", &a), 0);
	assert_int_equal(size, a.size);
	assert_true(off > 0);
	{
		_cleanup_fclose_ FILE *f = fopen("/proc/self/maps", "re");
		char line[PATH_MAX + 128], perms[8], path[PATH_MAX];
		unsigned long long b, e, o;
		bool seen = false;

		assert_non_null(f);
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "%llx-%llx %7s %llx %*s %*s %4095s", &b, &e, perms, &o,
				   path) == 5 &&
			    !strcmp(path, exe) && perms[2] == 'x' && off >= o && off - o < e - b) {
				assert_int_equal(b + off - o, a.addr);
				seen = true;
			}
		assert_true(seen);
	}
	assert_int_equal(obs_sym_file_alternatives(s, exe, "sym_test_hot", names, 4), 2);
	assert_string_equal(names[0], "sym_test_hot__alt_b");
	assert_int_equal(obs_sym_file_find(s, exe, "sym_test_nothing", &off, &size), -ENOENT);
	assert_int_equal(obs_sym_file_find(s, "/nonexistent/libx.so", "f", &off, &size), -ENOENT);
	assert_int_equal(obs_sym_file_find(s, "/proc/self/status", "f", &off, &size), -ENOEXEC);
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
	    cmocka_unit_test_setup_teardown(test_find_by_name, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_alternatives, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_find, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
