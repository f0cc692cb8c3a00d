/* test_inject.c - unit tests of the patch-library loader (agent/actuate/inject.c): every
 * refusal with its exact reason, the call frame below a stack pointer, the system calls a
 * thread is not taken from, and, on a forked child of this test whose main thread blocks in
 * read(2) while two others work, a real load of a root-owned system library (libanl.so.1, a
 * glibc stub this test does not link), "already loaded" for it and for libc, the child's read
 * restarting with the bytes written afterwards; and a child with no thread in a system call,
 * taken in user code, whose general and SIMD registers (ymm0 with AVX2) hold constants it
 * compares all the time. A child may be traced without root; where
 * ptrace is not allowed at all, the live tests are skipped and say so.
 */
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "actuate/actuate.h"
#include "actuate/internal.h"
#include "observe/symbolize.h"

#define LIBC	   "/usr/lib/x86_64-linux-gnu/libc.so.6"
#define STUB	   "/usr/lib/x86_64-linux-gnu/libanl.so.1"
#define NO_SUCH	   1073741823 /* a pid no process has */
#define PRIVILEGES "refusing: a library loaded into a service runs with its privileges"

static char why[ACT_WHY_MAX];

static int inject(pid_t pid, uint64_t addr, const char *path, unsigned timeout_ms, uint64_t *handle)
{
	return act_inject_dlopen(pid, addr, path, timeout_ms, handle, why, sizeof(why));
}

static void test_argument_refusals(void **state)
{
	char longpath[ACT_INJECT_PATH_MAX + 2];
	uint64_t h = 1;

	assert_int_equal(inject(1, 0x1000, LIBC, 0, &h), -EINVAL);
	assert_string_equal(why,
			    "loading a library needs a process other than init (pid > 1), not 1");
	assert_int_equal(h, 0); /* always set */
	assert_int_equal(inject(0, 0x1000, LIBC, 0, &h), -EINVAL);
	assert_int_equal(inject(NO_SUCH, 0, LIBC, 0, &h), -EINVAL);
	assert_string_equal(why, "the address of dlopen is 0");
	assert_int_equal(inject(NO_SUCH, 0x1000, "lib/libaltlib.so", 0, &h), -EINVAL);
	assert_string_equal(why, "library path 'lib/libaltlib.so' must be absolute");
	assert_int_equal(inject(NO_SUCH, 0x1000, NULL, 0, &h), -EINVAL);
	assert_string_equal(why, "library path '' must be absolute");
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(inject(NO_SUCH, 0x1000, longpath, 0, &h), -EINVAL);
	assert_string_equal(why, "library path is 4096 bytes or longer");
	assert_int_equal(inject(NO_SUCH, 0x1000, LIBC, 60001, &h), -EINVAL);
	assert_string_equal(why, "timeout 60001 ms must be between 0 and 60000");
	assert_int_equal(act_inject_dlopen(NO_SUCH, 0x1000, LIBC, 0, NULL, why, sizeof(why)),
			 -EINVAL);
	assert_string_equal(why, "no place for the handle");
	/* why may be NULL */
	assert_int_equal(act_inject_dlopen(1, 0x1000, LIBC, 0, &h, NULL, 0), -EINVAL);
}

static void test_file_refusals(void **state)
{
	char dir[] = "/tmp/test_inject.XXXXXX", file[64], expect[ACT_WHY_MAX];
	uint64_t h;
	int fd;

	assert_int_equal(inject(NO_SUCH, 0x1000, "/nonexistent/x.so", 0, &h), -ENOENT);
	assert_string_equal(why, "library '/nonexistent/x.so' does not exist");
	assert_int_equal(inject(NO_SUCH, 0x1000, "/dev/null", 0, &h), -EINVAL);
	assert_string_equal(why, "library '/dev/null' is not a regular file");
	assert_int_equal(inject(NO_SUCH, 0x1000, "/etc/passwd", 0, &h), -ENOEXEC);
	assert_string_equal(why, "library '/etc/passwd' is not an ELF file");
	/* links are resolved: /lib is /usr/lib on Debian 12; then the process is looked at */
	assert_int_equal(inject(NO_SUCH, 0x1000, "/lib/x86_64-linux-gnu/libc.so.6", 0, &h), -ESRCH);
	assert_string_equal(why, "no process 1073741823");
	assert_int_equal(inject(getpid(), 0x1000, LIBC, 0, &h), -EINVAL);
	snprintf(expect, sizeof(expect), "homeostat does not load libraries into itself (pid %d)",
		 (int)getpid());
	assert_string_equal(why, expect);

	/* a copy of a real ELF file in a directory of ours */
	assert_non_null(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/lib.so", dir);
	fd = open(file, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "\177ELF", 4), 4);
	close(fd);
	if (getuid() != 0) {
		assert_int_equal(inject(NO_SUCH, 0x1000, file, 0, &h), -EPERM);
		snprintf(expect, sizeof(expect),
			 "library '%s' is not owned by root (owner uid %u), " PRIVILEGES, file,
			 (unsigned)getuid());
		assert_string_equal(why, expect);
	} else {
		assert_int_equal(chmod(file, 0664), 0);
		assert_int_equal(inject(NO_SUCH, 0x1000, file, 0, &h), -EPERM);
		snprintf(expect, sizeof(expect),
			 "library '%s' is writable by group or others (mode 0664), " PRIVILEGES,
			 file);
		assert_string_equal(why, expect);
		assert_int_equal(chmod(file, 0644), 0);
		assert_int_equal(chmod(dir, 0777), 0);
		assert_int_equal(inject(NO_SUCH, 0x1000, file, 0, &h), -EPERM);
		snprintf(expect, sizeof(expect),
			 "directory '%s' is writable by group or others (mode 0777), " PRIVILEGES,
			 dir);
		assert_string_equal(why, expect);
		/* sticky, like /tmp: only root renames root's entries */
		assert_int_equal(chmod(dir, 01777), 0);
		assert_int_equal(inject(NO_SUCH, 0x1000, file, 0, &h), -ESRCH);
		assert_int_equal(chown(file, 65534, 0), 0);
		assert_int_equal(inject(NO_SUCH, 0x1000, file, 0, &h), -EPERM);
		snprintf(expect, sizeof(expect),
			 "library '%s' is not owned by root (owner uid 65534), " PRIVILEGES, file);
		assert_string_equal(why, expect);
	}
	unlink(file);
	rmdir(dir);
}

static void test_frame(void **state)
{
	struct act_inject_frame f;

	assert_int_equal(act_inject_frame(0x7ffc1000, 10, &f), 0);
	assert_int_equal(f.hi, 0x7ffc1000 - 128); /* the red zone stays */
	assert_int_equal(f.str, 0x7ffc0f70);	  /* (0x7ffc0f80 - 10) & ~15 */
	assert_int_equal(f.sp, 0x7ffc0f68);	  /* the return address */
	assert_int_equal(f.lo, f.sp);
	/* whatever the stack pointer and the length: the alignment of a call */
	for (uint64_t rsp = 0x7ffc1000; rsp < 0x7ffc1010; rsp++)
		for (size_t len = 1; len <= ACT_INJECT_PATH_MAX; len += 333) {
			assert_int_equal(act_inject_frame(rsp, len, &f), 0);
			assert_int_equal(f.str % 16, 0);
			assert_int_equal((f.sp + 8) % 16, 0);
			assert_true(f.str + len <= f.hi);
			assert_true(f.hi - f.lo <= ACT_INJECT_PATH_MAX + 32);
		}
	assert_int_equal(act_inject_frame(100, 10, &f), -EFAULT);
	assert_int_equal(act_inject_frame(0x7ffc1000, 0, &f), -EFAULT);
	assert_int_equal(act_inject_frame(0x7ffc1000, ACT_INJECT_PATH_MAX + 1, &f), -EFAULT);
}

static void test_syscall_refusal(void **state)
{
	assert_string_equal(act_inject_syscall_refusal(SYS_mmap),
			    "mmap(2), which malloc and the loader call holding their locks");
	assert_string_equal(act_inject_syscall_refusal(SYS_brk),
			    "brk(2), which malloc calls holding the main arena's lock");
	assert_string_equal(act_inject_syscall_refusal(SYS_vfork),
			    "vfork(2): the thread waits for its child, on a shared stack");
	assert_null(act_inject_syscall_refusal(SYS_read));
	assert_null(act_inject_syscall_refusal(SYS_futex));
	assert_null(act_inject_syscall_refusal(SYS_clock_nanosleep));
	assert_null(act_inject_syscall_refusal(SYS_epoll_wait));
	assert_null(act_inject_syscall_refusal(-1));
}

/* ---- a live child ---- */

struct shared {
	volatile uint64_t work; /* the child's threads' progress */
};
static struct shared *sh;
static int to_child[2], from_child[2];

static void *worker(void *arg)
{
	for (;;) {
		void *p = malloc(64 + (sh->work & 4095));

		__atomic_fetch_add(&sh->work, 1, __ATOMIC_RELAXED);
		free(p);
	}
	return arg;
}

/* The child: two workers; the main thread echoes every byte it reads. */
static void child(void)
{
	pthread_t t;
	char c;

	prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion leaves no child behind */
	for (int i = 0; i < 2; i++)
		pthread_create(&t, NULL, worker, NULL);
	for (;;) {
		ssize_t n = read(to_child[0], &c, 1);

		if (n == 1)
			n = write(from_child[1], &c, 1);
		if (n != 1)
			_exit(1); /* an EINTR here would be a restart that did not happen */
	}
}

static bool maps_hold(pid_t pid, const char *path)
{
	char name[64], line[1024];
	bool found = false;
	FILE *f;

	snprintf(name, sizeof(name), "/proc/%d/maps", (int)pid);
	f = fopen(name, "r");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, path) != NULL;
	fclose(f);
	return found;
}

static bool advances(void)
{
	uint64_t w = sh->work;

	for (int i = 0; i < 2000 && sh->work == w; i++)
		usleep(1000);
	return sh->work != w;
}

static void test_live_child(void **state)
{
	struct act_inject_info info = {0};
	struct obs_symbolizer *s;
	struct obs_sym_addr a, e;
	struct pollfd echo;
	uint64_t h = 0;
	char c = 'x';
	pid_t pid;
	int r;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(sh != MAP_FAILED);
	assert_int_equal(pipe(to_child), 0);
	assert_int_equal(pipe(from_child), 0);
	echo = (struct pollfd){.fd = from_child[0], .events = POLLIN};
	assert_false(maps_hold(getpid(), "libanl.so.1")); /* else pick another stub */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		child();
	assert_true(advances());
	/* the main thread blocked in read(2) */
	for (int i = 0; i < 2000 && act_thread_state(pid, pid) != 'S'; i++)
		usleep(1000);

	assert_int_equal(obs_sym_new(NULL, &s), 0);
	assert_int_equal(obs_sym_find(s, pid, "libc.so.6", "dlopen", &a), 0);
	assert_int_equal(obs_sym_find(s, pid, "libc.so.6", "dlerror", &e), 0);
	obs_sym_free(s);

	/* libc is there already: nothing is done */
	assert_int_equal(inject(pid, a.addr, "/lib/x86_64-linux-gnu/libc.so.6", 0, &h), 0);
	assert_string_equal(why, "already loaded");
	assert_int_equal(h, 0);

	info.dlerror_addr = e.addr;
	r = act_inject_dlopen_info(pid, a.addr, STUB, 0, &h, &info, why, sizeof(why));
	if (r == -EPERM && strstr(why, "cannot trace")) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		skip(); /* ptrace is not allowed here at all */
	}
	assert_int_equal(r, 0);
	assert_true(h != 0);
	assert_non_null(strstr(why, "loaded by thread "));
	assert_int_equal(info.tid, pid);
	assert_int_equal(info.syscall, SYS_read);
	assert_int_equal(info.stops, 1);
	assert_int_equal(info.signals, 0);
	assert_string_equal(info.canonical, STUB);
	assert_true(info.call_ns > 0 && info.call_ns < info.away_ns);
	assert_true(info.stop_ns < info.away_ns);
	assert_true(info.away_ns < 5000000000ull);
	assert_true(maps_hold(pid, STUB));
	/* the read restarted: it returns what is written now (a child that got the kernel's
	 * -ERESTARTSYS instead has exited) */
	assert_int_equal(write(to_child[1], &c, 1), 1);
	c = 0;
	assert_int_equal(poll(&echo, 1, 5000), 1);
	assert_int_equal(read(from_child[0], &c, 1), 1);
	assert_int_equal(c, 'x');
	assert_true(advances());

	/* the same file again, by the symbolic link */
	assert_int_equal(inject(pid, a.addr, "/lib/x86_64-linux-gnu/libanl.so.1", 0, &h), 0);
	assert_string_equal(why, "already loaded");
	assert_int_equal(h, 0);
	/* dlopen's address must be code of the process */
	assert_int_equal(inject(pid, (uintptr_t)sh, "/usr/lib/x86_64-linux-gnu/libdl.so.2", 0, &h),
			 -EINVAL);
	assert_non_null(strstr(why, "dlopen's address is not in executable memory of process"));

	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	munmap(sh, sizeof(*sh));
	close(to_child[0]);
	close(to_child[1]);
	close(from_child[0]);
	close(from_child[1]);
}

/* ---- a live child in user code, its SIMD registers live ---- */

struct simd_shared {
	volatile uint64_t iters, bad;
};
static const uint64_t simd_k[4] __attribute__((aligned(32))) = {
    0x0123456789abcdefull, 0xfedcba9876543210ull, 0x1122334455667788ull, 0x99aabbccddeeff00ull};

/* For ever: ymm0 (xmm0 without AVX2) and r12 hold constants, compared with memory at every
 * iteration; a difference is counted and the registers loaded again. Registers a call of
 * dlopen() clobbers and that only a restore of the whole XSAVE state gives back. */
__attribute__((noreturn)) static void simd_spin(struct simd_shared *p, bool avx2)
{
	if (avx2)
		__asm__ volatile("vmovdqu (%[k]), %%ymm0\n\t"
				 "movabs $0x5a5a5a5a5a5a5a5a, %%r12\n\t"
				 "1:\n\t"
				 "vmovdqu (%[k]), %%ymm1\n\t"
				 "vpcmpeqd %%ymm0, %%ymm1, %%ymm1\n\t"
				 "vpmovmskb %%ymm1, %%eax\n\t"
				 "cmp $-1, %%eax\n\t"
				 "jne 3f\n\t"
				 "movabs $0x5a5a5a5a5a5a5a5a, %%rax\n\t"
				 "cmp %%rax, %%r12\n\t"
				 "jne 3f\n\t"
				 "2:\n\t"
				 "incq (%[iters])\n\t"
				 "jmp 1b\n\t"
				 "3:\n\t"
				 "incq (%[bad])\n\t"
				 "vmovdqu (%[k]), %%ymm0\n\t"
				 "movabs $0x5a5a5a5a5a5a5a5a, %%r12\n\t"
				 "jmp 2b\n\t"
				 :
				 : [k] "r"(simd_k), [iters] "r"(&p->iters), [bad] "r"(&p->bad)
				 : "rax", "r12", "xmm0", "xmm1", "memory", "cc");
	__asm__ volatile("movdqu (%[k]), %%xmm0\n\t"
			 "movabs $0x5a5a5a5a5a5a5a5a, %%r12\n\t"
			 "1:\n\t"
			 "movdqu (%[k]), %%xmm1\n\t"
			 "pcmpeqd %%xmm0, %%xmm1\n\t"
			 "pmovmskb %%xmm1, %%eax\n\t"
			 "cmp $0xffff, %%eax\n\t"
			 "jne 3f\n\t"
			 "movabs $0x5a5a5a5a5a5a5a5a, %%rax\n\t"
			 "cmp %%rax, %%r12\n\t"
			 "jne 3f\n\t"
			 "2:\n\t"
			 "incq (%[iters])\n\t"
			 "jmp 1b\n\t"
			 "3:\n\t"
			 "incq (%[bad])\n\t"
			 "movdqu (%[k]), %%xmm0\n\t"
			 "movabs $0x5a5a5a5a5a5a5a5a, %%r12\n\t"
			 "jmp 2b\n\t"
			 :
			 : [k] "r"(simd_k), [iters] "r"(&p->iters), [bad] "r"(&p->bad)
			 : "rax", "r12", "xmm0", "xmm1", "memory", "cc");
	__builtin_unreachable();
}

static bool spins(struct simd_shared *p)
{
	uint64_t n = p->iters;

	for (int i = 0; i < 2000 && p->iters < n + 1000000; i++)
		usleep(1000);
	return p->iters >= n + 1000000;
}

/* No thread blocked in a system call: the call is made from user code, whose registers and
 * SIMD state must come back whole. */
static void test_live_user_code(void **state)
{
	struct act_inject_info info = {0};
	struct simd_shared *p;
	struct obs_symbolizer *s;
	struct obs_sym_addr a;
	uint64_t h = 0;
	pid_t pid;
	int r;

	p = mmap(NULL, sizeof(*p), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(p != MAP_FAILED);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		simd_spin(p, __builtin_cpu_supports("avx2"));
	}
	assert_true(spins(p));
	assert_int_equal(obs_sym_new(NULL, &s), 0);
	assert_int_equal(obs_sym_find(s, pid, "libc.so.6", "dlopen", &a), 0);
	obs_sym_free(s);
	r = act_inject_dlopen_info(pid, a.addr, STUB, 0, &h, &info, why, sizeof(why));
	if (r == -EPERM && strstr(why, "cannot trace")) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		skip();
	}
	assert_int_equal(r, 0);
	assert_true(h != 0);
	assert_int_equal(info.tid, pid);
	assert_int_equal(info.syscall, -1);
	assert_non_null(strstr(why, "(in user code)"));
	assert_true(maps_hold(pid, STUB));
	assert_true(spins(p));
	assert_int_equal(p->bad, 0);

	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	munmap(p, sizeof(*p));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_argument_refusals),
	    cmocka_unit_test(test_file_refusals),
	    cmocka_unit_test(test_frame),
	    cmocka_unit_test(test_syscall_refusal),
	    cmocka_unit_test(test_live_child),
	    cmocka_unit_test(test_live_user_code),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
