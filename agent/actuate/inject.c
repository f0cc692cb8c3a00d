/* inject.c - loads a patch library into a running process: one of its threads calls
 * dlopen(path, RTLD_NOW | RTLD_NODELETE) under ptrace (issue 6, item 3).
 *
 * Why this way: the alternative of a redirect may live in a library the operator supplies.
 * Only the process's own loader can map it, relocate it against what is already loaded and
 * run its constructors with its bookkeeping in order, so the process itself must call
 * dlopen(); with ptrace we make one of its threads do it, between two of its own instructions.
 *
 * One thread, the others run on. If every thread were stopped (as patch.c does for a write),
 * a thread stopped while holding the loader's lock or a malloc arena lock would block the
 * call for ever. So only the thread making the call is seized (PTRACE_SEIZE) and interrupted
 * (PTRACE_INTERRUPT); the others never notice, and a lock one of them holds is released in
 * its own time while dlopen() waits for it.
 *
 * Which thread: a safe point. The thread making the call must not itself hold a lock the
 * call needs (it would wait for itself, or re-enter the loader's recursive lock in the middle
 * of a load). Under its stop its registers are checked:
 * - first choice, a thread blocked in a system call (state S, and orig_rax >= 0 under the
 *   stop): it is between two operations of the C library, except in the system calls that
 *   malloc and the loader make holding their locks (mmap, munmap, mremap, mprotect, madvise,
 *   brk), those of a process changing (clone, fork, vfork, execve, exit), and any made by the
 *   loader itself (rip in ld.so): refused (act_inject_syscall_refusal(), unsafe_code[]);
 * - after half of the rounds, a thread running user code too, but only outside the loader,
 *   the C library and known allocators (it may be inside malloc), and outside a restartable
 *   sequence (rseq: its critical section would be resumed on another CPU unchecked);
 * - either way its stack pointer must be in writable memory with 64 KiB below the frame
 *   (the main thread's [stack] grows and is not counted).
 * The thread pid names is asked first, then the others in /proc/PID/task order, at most 8 a
 * round; a thread refused is detached at once (stopped for some microseconds). After 50
 * rounds 1 ms apart: -EBUSY with the last reason. Accepted residual risk: a thread blocked in
 * a system call made from a signal handler that interrupted malloc, or from a callback called
 * under a lock of the C library; the timeout below bounds what that costs.
 *
 * The call. Its registers (PTRACE_GETREGS) and its whole FP/SIMD state (PTRACE_GETREGSET
 * NT_X86_XSTATE; PTRACE_GETFPREGS without XSAVE) are saved. Below its stack pointer, past the
 * 128-byte red zone, go the path and a return address 0 (act_inject_frame()), the bytes there
 * saved first. Then rip = dlopen, rdi = the path, rsi = RTLD_NOW | RTLD_NODELETE, rax = 0,
 * rsp = the return-address slot (rsp + 8 16-aligned, as after a call), DF clear, the x87
 * stack emptied (the ABI's state at a call; control words kept), and orig_rax = -1 (with
 * rax 0) so that the kernel sees no system call to restart, as it would otherwise do for the
 * one the thread was stopped in, at our rip. PTRACE_CONT. When dlopen() returns to 0, fetching
 * there faults: a SIGSEGV signal-delivery-stop with rip 0 and rsp just above the slot, rax the
 * handle. That SIGSEGV is never delivered. When dlopen() returns NULL and the caller gave
 * dlerror()'s address (internal.h), dlerror() is called the same way for the message (which also
 * clears it).
 *
 * Putting it back: at that stop the stack bytes, the FP/SIMD state and the registers, with
 * the original orig_rax and rax, are written back and the thread detached. The kernel then
 * finishes the interrupted system call as after any signal without a handler: -ERESTARTSYS
 * and the like restart it, -ERESTART_RESTARTBLOCK (nanosleep, poll with a timeout) goes
 * through restart_syscall() and the thread's restart block, which the call leaves alone
 * (unless a signal interrupted a timed sleep inside the call itself). A system call that
 * answers any interruption with EINTR (epoll_wait) does so, as under strace or gdb.
 *
 * Signals meanwhile. A fault in the call (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP or SIGSYS
 * raised by the kernel) abandons it (below). Any other signal-delivery-stop is noted and
 * suppressed; after the restore the first one is delivered at the detach with its siginfo as
 * received (PTRACE_SETSIGINFO), as if it had arrived then; the others are sent again with
 * tgkill() (their sender and value are lost, and three or more of one signal become two). A
 * group stop (SIGSTOP to the process) is let through: the thread finishes the call and joins
 * the stop at the detach. SIGKILL needs nothing: the process is gone (-ESRCH).
 *
 * Timeout and faults. dlopen() cannot be cut short safely: it holds the loader's lock and may
 * be half-way through its link maps. Leaving it to run is not safe either: a detached thread
 * returning to 0 kills the process, and one in a deadlock never returns. So at the timeout
 * the thread is interrupted and, unless it has just returned, the call is abandoned: the
 * thread gets its registers, FP state and stack back and goes on with its own work; what the
 * call did stays (mappings, maybe the loader's lock held for good by that thread, which
 * would block the other threads' dlopen() and dlclose()): -ETIMEDOUT, or -EFAULT for a fault,
 * and why says to restart the process. Should the thread not stop within 2 s even then
 * (uninterruptible sleep), it is left traced and running the call, and why says that too.
 *
 * Before anything: the file (absolute, resolved, regular, ELF, root's and not writable by
 * group or others, in directories that are root's and not writable by group or others or
 * sticky) since the library runs with the service's privileges; the process (not homeostat,
 * the same mount namespace and root so that the path names the same file, not stopped, no
 * shadow stack, on which our fake return would be a control-protection fault); dlopen's
 * address in executable memory; and whether the process already maps the file (device and
 * inode, or path, in /proc/PID/maps): then nothing is done, *handle 0, why "already loaded".
 *
 * Measured: the time the thread was away from its own code, from its interrupt to its
 * detach, and of that, the wait for its stop (it needs a CPU to get there) and the call
 * (struct act_inject_info, and the note in why).
 *
 * Not revertible: RTLD_NODELETE, so that no dlclose() ever unmaps code a thread may still
 * be running (an alternative a redirect sent calls to).
 *
 * Invariants: a thread is seized only after the checks, and only one at a time; once
 * detached it never keeps our registers, FP state or stack bytes, except in the -ETIMEDOUT
 * case named above; the SIGSEGV of the return is never delivered. If homeostat dies during
 * the call, the kernel detaches the thread and its return to 0 kills the process: the price
 * of an injected call, kept short by the timeout. Nothing here logs.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>

#include "actuate/internal.h"

#define RED_ZONE	128
#define STACK_NEED	(64u << 10)  /* below the frame, on a stack that does not grow */
#define STOP_TIMEOUT_NS 2000000000LL /* for a thread to reach a stop once interrupted */
#define DLERROR_MS	1000	     /* for the call of dlerror() */
#define PICK_ROUNDS	50
#define PICK_PER_ROUND	8	    /* threads stopped and looked at in one round, at most */
#define PICK_DELAY_NS	1000000L    /* between two rounds */
#define POLL_MAX_NS	100000L	    /* longest sleep between two waitpid() polls */
#define XSTATE_MAX	(64u << 10) /* the kernel says how much of it the XSAVE area takes */
#define XSTATE_BV_OFF	512	    /* the XSAVE header's XSTATE_BV */
#define ERRMSG_MAX	200	    /* bytes of dlerror()'s message read */
#define MAX_THREADS	65536
#define DLOPEN_FLAGS	(RTLD_NOW | RTLD_NODELETE)
#define EFLAGS_TF	0x100
#define EFLAGS_DF	0x400
#define SAVED_MAX	(ACT_INJECT_PATH_MAX + 32) /* the frame: the path, alignment, 8 bytes */

static const uint8_t elf_magic[4] = {0x7f, 'E', 'L', 'F'};

/* System calls a thread must not be taken from (act_inject_syscall_refusal()). */
static const struct {
	long nr;
	const char *why;
} unsafe_syscalls[] = {
    {SYS_mmap, "mmap(2), which malloc and the loader call holding their locks"},
    {SYS_munmap, "munmap(2), which malloc and the loader call holding their locks"},
    {SYS_mremap, "mremap(2), which malloc calls holding an arena lock"},
    {SYS_mprotect, "mprotect(2), which malloc and the loader call holding their locks"},
    {SYS_madvise, "madvise(2), which malloc calls holding an arena lock"},
    {SYS_brk, "brk(2), which malloc calls holding the main arena's lock"},
    {SYS_clone, "clone(2): fork() holds every malloc lock, vfork() waits for its child"},
    {SYS_clone3, "clone3(2): fork() holds every malloc lock, vfork() waits for its child"},
    {SYS_fork, "fork(2), which the C library calls holding every malloc lock"},
    {SYS_vfork, "vfork(2): the thread waits for its child, on a shared stack"},
    {SYS_execve, "execve(2): the process is replacing its program"},
    {SYS_execveat, "execveat(2): the process is replacing its program"},
    {SYS_exit, "exit(2): the thread is ending"},
    {SYS_exit_group, "exit_group(2): the process is ending"},
};

/* Code a thread must not be taken from, by the basename of the file it is in. */
static const struct {
	const char *prefix;
	bool in_syscall; /* refused in a system call too */
	const char *why;
} unsafe_code[] = {
    {"ld-linux", true,
     "the dynamic loader: a load may be under way, and its lock is recursive, a nested "
     "dlopen() would run inside it"},
    {"libc.so", false, "the C library: it may be inside malloc, holding an arena lock"},
    {"libc-", false, "the C library: it may be inside malloc, holding an arena lock"},
    {"libjemalloc", false, "an allocator: it may hold one of its locks"},
    {"libtcmalloc", false, "an allocator: it may hold one of its locks"},
    {"libmimalloc", false, "an allocator: it may hold one of its locks"},
};

const char *act_inject_syscall_refusal(long nr)
{
	for (size_t i = 0; i < ARRAY_SIZE(unsafe_syscalls); i++)
		if (unsafe_syscalls[i].nr == nr)
			return unsafe_syscalls[i].why;
	return NULL;
}

int act_inject_frame(uint64_t rsp, size_t len, struct act_inject_frame *f)
{
	memset(f, 0, sizeof(*f));
	if (!len || len > ACT_INJECT_PATH_MAX || rsp < RED_ZONE + len + 32)
		return -EFAULT;
	f->hi = rsp - RED_ZONE;
	f->str = (f->hi - len) & ~(uint64_t)15;
	f->sp = f->str - 8;
	f->lo = f->sp;
	return 0;
}

/* ---- time ---- */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void nap(long ns)
{
	struct timespec ts = {0, ns};

	nanosleep(&ts, NULL);
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* A snapshot of the mappings a safe point is judged by. */
struct mapping {
	uint64_t start, end;
	bool w;
	bool grows; /* [stack], the main thread's: the kernel extends it */
	int code;   /* index in unsafe_code[], else -1 */
	char name[64];
};

struct maps {
	struct mapping *m;
	size_t n, cap;
};

static int maps_add(const struct act_map_line *l, void *arg)
{
	struct maps *m = arg;
	struct mapping *p;
	const char *b = base_name(l->path);

	if (m->n == m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 256;
		struct mapping *v = realloc(m->m, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		m->m = v;
		m->cap = cap;
	}
	p = &m->m[m->n++];
	*p =
	    (struct mapping){.start = l->start, .end = l->end, .w = l->perms[1] == 'w', .code = -1};
	p->grows = streq(l->path, "[stack]");
	hs_strlcpy(p->name, *b ? b : "anonymous memory", sizeof(p->name));
	if (l->perms[2] == 'x' && l->path[0] == '/')
		for (size_t i = 0; i < ARRAY_SIZE(unsafe_code); i++)
			if (!strncmp(b, unsafe_code[i].prefix, strlen(unsafe_code[i].prefix)))
				p->code = (int)i;
	return 0;
}

static const struct mapping *maps_at(const struct maps *m, uint64_t addr)
{
	for (size_t i = 0; i < m->n; i++)
		if (addr >= m->m[i].start && addr < m->m[i].end)
			return &m->m[i];
	return NULL;
}

struct file_id {
	const struct stat *st;
	const char *path;
	bool exec_only; /* for an address: only executable mappings */
	uint64_t addr;
};

/* 1 when the line maps the file (its device and inode, or its path). */
static int maps_file(const struct act_map_line *l, void *arg)
{
	const struct file_id *id = arg;

	return (l->ino == id->st->st_ino && l->maj == major(id->st->st_dev) &&
		l->min == minor(id->st->st_dev)) ||
	       streq(l->path, id->path);
}

/* 1 when the line holds the address in executable memory. */
static int maps_exec(const struct act_map_line *l, void *arg)
{
	const struct file_id *id = arg;

	return id->addr >= l->start && id->addr < l->end && l->perms[2] == 'x';
}

/* ---- the checks before ---- */

static int refuse_file(char *why, size_t size, const char *what, const char *path,
		       const char *problem, unsigned value)
{
	return act_why(why, size, -EPERM,
		       "%s '%s' %s%u), refusing: a library loaded into a service runs with its "
		       "privileges",
		       what, path, problem, value);
}

/* The owner and mode of the file or directory at path (resolved, no links). */
static int check_owner(const char *what, const char *path, const struct stat *st, bool dir,
		       char *why, size_t size)
{
	if (st->st_uid != 0)
		return refuse_file(why, size, what, path, "is not owned by root (owner uid ",
				   (unsigned)st->st_uid);
	/* a sticky directory (/tmp): only root renames or removes root's entries in it */
	if ((st->st_mode & (S_IWGRP | S_IWOTH)) && !(dir && (st->st_mode & S_ISVTX)))
		return act_why(why, size, -EPERM,
			       "%s '%s' is writable by group or others (mode %04o), refusing: a "
			       "library loaded into a service runs with its privileges",
			       what, path, (unsigned)(st->st_mode & 07777));
	return 0;
}

/* Resolves path into canon and checks the file and every directory above it. */
static int check_library(const char *path, char *canon, struct stat *st, char *why, size_t size)
{
	char dir[ACT_INJECT_PATH_MAX];
	uint8_t magic[sizeof(elf_magic)];
	_cleanup_close_ int fd = -1;
	struct stat ds;
	char *slash;
	int r;

	if (!realpath(path, canon))
		return act_why(why, size, -errno,
			       errno == ENOENT ? "library '%s' does not exist"
					       : "cannot resolve the library path '%s'",
			       path);
	fd = open(canon, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return act_why(why, size, -errno, "cannot open library '%s'", canon);
	if (fstat(fd, st) < 0)
		return act_why(why, size, -errno, "cannot stat library '%s'", canon);
	if (!S_ISREG(st->st_mode))
		return act_why(why, size, -EINVAL, "library '%s' is not a regular file", canon);
	r = check_owner("library", canon, st, false, why, size);
	if (r)
		return r;
	if (pread(fd, magic, sizeof(magic), 0) != (ssize_t)sizeof(magic) ||
	    memcmp(magic, elf_magic, sizeof(magic)))
		return act_why(why, size, -ENOEXEC, "library '%s' is not an ELF file", canon);
	hs_strlcpy(dir, canon, sizeof(dir));
	while ((slash = strrchr(dir, '/'))) {
		slash[slash == dir] = '\0'; /* "/a/b" -> "/a" -> "/" */
		if (lstat(dir, &ds) < 0)
			return act_why(why, size, -errno, "cannot stat directory '%s'", dir);
		r = check_owner("directory", dir, &ds, true, why, size);
		if (r)
			return r;
		if (streq(dir, "/"))
			break;
	}
	return 0;
}

/* A field of /proc/PID/status, the blanks after the colon skipped; "" when absent. */
static void status_field(const char *status, const char *key, char *buf, size_t size)
{
	size_t n = strlen(key);
	const char *p = status;

	buf[0] = '\0';
	for (; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, key, n) && p[n] == ':') {
			p += n + 1;
			p += strspn(p, " \t");
			snprintf(buf, size, "%.*s", (int)strcspn(p, "\n"), p);
			return;
		}
}

static bool same_file(const char *a, const char *b)
{
	struct stat x, y;

	return !stat(a, &x) && !stat(b, &y) && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

static int check_process(pid_t pid, pid_t *tgid, char *why, size_t size)
{
	char path[64], buf[8192], v[256];
	_cleanup_close_ int fd = -1;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return act_why(why, size, errno == ENOENT || n == 0 ? -ESRCH : -errno,
			       "no process %d", (int)pid);
	buf[n] = '\0';
	status_field(buf, "Tgid", v, sizeof(v));
	*tgid = (pid_t)atoi(v);
	if (*tgid <= 0)
		return act_why(why, size, -ESRCH, "no process %d", (int)pid);
	if (*tgid == getpid())
		return act_why(why, size, -EINVAL,
			       "homeostat does not load libraries into itself (pid %d)", (int)pid);
	status_field(buf, "State", v, sizeof(v));
	if (v[0] == 'T' || v[0] == 't')
		return act_why(why, size, -EAGAIN,
			       "process %d is stopped (%s): its threads may hold the locks dlopen "
			       "needs",
			       (int)*tgid, v);
	if (v[0] == 'Z' || v[0] == 'X')
		return act_why(why, size, -ESRCH, "process %d is exiting (%s)", (int)*tgid, v);
	status_field(buf, "x86_Thread_features", v, sizeof(v));
	if (strstr(v, "shstk"))
		return act_why(why, size, -EOPNOTSUPP,
			       "process %d runs with shadow stacks (%s): the return of an injected "
			       "call would be a control-protection fault",
			       (int)*tgid, v);
	snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)pid);
	if (!same_file("/proc/self/ns/mnt", path))
		return act_why(why, size, -EXDEV,
			       "process %d is in another mount namespace: the path may name "
			       "another file there",
			       (int)*tgid);
	snprintf(path, sizeof(path), "/proc/%d/root", (int)pid);
	if (!same_file("/", path))
		return act_why(why, size, -EXDEV,
			       "process %d has another root directory: the path may name another "
			       "file there",
			       (int)*tgid);
	return 0;
}

/* The threads of tgid, first (when one of them) first. */
static int list_threads(pid_t tgid, pid_t first, pid_t **out, size_t *count)
{
	char path[64];
	pid_t *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)tgid);
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? -ESRCH : -errno;
	while ((e = readdir(d))) {
		pid_t tid = (pid_t)atoi(e->d_name);

		if (tid <= 0)
			continue;
		if (n == cap) {
			pid_t *w = cap < MAX_THREADS ? realloc(v, (cap ? 2 * cap : 64) * sizeof(*v))
						     : NULL;

			if (!w) {
				free(v);
				closedir(d);
				return -ENOMEM;
			}
			v = w;
			cap = cap ? 2 * cap : 64;
		}
		v[n++] = tid;
		if (tid == first && n > 1) {
			v[n - 1] = v[0];
			v[0] = tid;
		}
	}
	closedir(d);
	*out = v;
	*count = n;
	return 0;
}

/* ---- one thread under ptrace ---- */

struct inj {
	pid_t tgid, tid;
	int mem;		      /* /proc/PID/mem, read-write */
	size_t len;		      /* of the path, its NUL included */
	struct user_regs_struct regs; /* as found */
	uint8_t *xstate;	      /* as found (XSAVE layout, xlen bytes), or NULL */
	size_t xlen;
	struct user_fpregs_struct fp; /* as found, without XSAVE */
	bool have_fp;
	struct act_inject_frame f;
	uint8_t saved[SAVED_MAX]; /* [f.lo, f.hi) as found */
	bool frame_written;
	bool stopped;	/* in a ptrace-stop: may be restored and detached */
	bool at_signal; /* a signal-delivery-stop: a signal can be handed back */
	bool gone;	/* exited: nothing to detach */
	int sig;	/* the first signal that arrived, handed back at the detach */
	siginfo_t info;
	uint64_t more; /* others (bit n - 1 for signal n), sent again with tgkill */
	unsigned nsignals;
	int64_t t_int;	/* when tid was interrupted */
	int64_t t_stop; /* when it was seen stopped */
};

/* Waits until tid reports a stop or its end: 0 (*st set), -ETIMEDOUT, -ESRCH. */
static int wait_stop(pid_t tid, int64_t deadline, int *st)
{
	long ns = 10000;

	for (;;) {
		pid_t r = waitpid(tid, st, __WALL | WNOHANG);

		if (r == tid)
			return 0;
		if (r < 0 && errno != EINTR)
			return errno == ECHILD ? -ESRCH : -errno;
		if (now_ns() >= deadline)
			return -ETIMEDOUT;
		nap(ns);
		ns = ns * 2 > POLL_MAX_NS ? POLL_MAX_NS : ns * 2;
	}
}

/* A fault raised by the kernel, as opposed to a signal someone sent. */
static bool is_fault(int sig, const siginfo_t *si)
{
	return si->si_code > 0 && (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL ||
				   sig == SIGFPE || sig == SIGTRAP || sig == SIGSYS);
}

static void note_signal(struct inj *j, int sig, const siginfo_t *si)
{
	j->nsignals++;
	if (!j->sig) {
		j->sig = sig;
		j->info = *si;
	} else if (sig >= 1 && sig <= 64) {
		j->more |= 1ull << (sig - 1); /* a second one of the first too */
	}
}

/* Detaches the stopped thread, handing back the signals that arrived meanwhile. */
static int detach(struct inj *j)
{
	int r = 0;

	if (j->stopped) {
		if (j->sig && j->at_signal) {
			/* delivered as received: the kernel keeps a siginfo whose si_signo
			 * is the signal it is resumed with */
			ptrace(PTRACE_SETSIGINFO, j->tid, 0, &j->info);
			r = ptrace(PTRACE_DETACH, j->tid, 0, (void *)(long)j->sig);
		} else {
			/* a signal cannot be injected at an event stop */
			r = ptrace(PTRACE_DETACH, j->tid, 0, 0);
			if (j->sig)
				j->more |= 1ull << (j->sig - 1);
		}
		r = r < 0 && errno != ESRCH ? -errno : 0;
	}
	for (int s = 1; s <= 64; s++)
		if (j->more & (1ull << (s - 1)))
			syscall(SYS_tgkill, j->tgid, j->tid, s);
	j->stopped = j->at_signal = false;
	j->sig = 0;
	j->more = 0;
	return r;
}

/* Seizes and interrupts tid; 0 once it is stopped (regs read), -ESRCH when it is gone. */
static int stop_thread(struct inj *j, pid_t tid, char *why, size_t size)
{
	int st = 0, r;

	j->tid = tid;
	j->stopped = j->at_signal = j->gone = false;
	j->sig = 0;
	j->more = 0;
	j->nsignals = 0;
	if (ptrace(PTRACE_SEIZE, tid, 0, 0) < 0) {
		int err = errno;

		if (err == ESRCH || (err == EPERM && strchr("ZXx", act_thread_state(j->tgid, tid))))
			return -ESRCH;
		return act_why(why, size, -err, "cannot trace thread %d of process %d%s", (int)tid,
			       (int)j->tgid, err == EPERM ? " (traced by another process?)" : "");
	}
	j->t_int = now_ns();
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0 && errno == ESRCH)
		return -ESRCH;
	r = wait_stop(tid, j->t_int + STOP_TIMEOUT_NS, &st);
	if (r == -ETIMEDOUT)
		return act_why(why, size, r,
			       "thread %d of process %d did not stop within %lld ms (state %c); it "
			       "stays traced until it does",
			       (int)tid, (int)j->tgid, STOP_TIMEOUT_NS / 1000000,
			       act_thread_state(j->tgid, tid));
	if (r || !WIFSTOPPED(st))
		return -ESRCH;
	j->t_stop = now_ns();
	j->stopped = true;
	if ((st >> 16) == 0) {
		siginfo_t si = {0};

		j->at_signal = true;
		ptrace(PTRACE_GETSIGINFO, tid, 0, &si);
		note_signal(j, WSTOPSIG(st), &si);
	}
	if (ptrace(PTRACE_GETREGS, tid, 0, &j->regs) < 0) {
		r = errno == ESRCH ? -ESRCH : -errno;
		detach(j);
		return r == -ESRCH ? r
				   : act_why(why, size, r, "cannot read the registers of thread %d",
					     (int)tid);
	}
	return 0;
}

/* Is rip inside the thread's current restartable sequence? (unreadable: yes) */
static bool in_rseq(const struct inj *j, uint64_t rip)
{
	struct __ptrace_rseq_configuration c = {0};
	struct {
		uint32_t version, flags;
		uint64_t start_ip, post_commit_offset, abort_ip;
	} cs;
	uint64_t p = 0;

	if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, j->tid, sizeof(c), &c) <= 0 ||
	    !c.rseq_abi_pointer)
		return false;
	/* struct rseq: u32 cpu_id_start, u32 cpu_id, u64 rseq_cs */
	if (act_mem_read(j->mem, c.rseq_abi_pointer + 8, &p, sizeof(p)) || !p)
		return false;
	if (act_mem_read(j->mem, p, &cs, sizeof(cs)))
		return true;
	return rip - cs.start_ip < cs.post_commit_offset;
}

/* Why the stopped thread is no place to call from (into buf), or NULL. */
static const char *refusal(struct inj *j, const struct maps *m, char *buf, size_t size)
{
	const struct user_regs_struct *r = &j->regs;
	const struct mapping *code = maps_at(m, r->rip), *stack = maps_at(m, r->rsp);
	long nr = (long)r->orig_rax;
	struct act_inject_frame f;
	const char *no;

	if (j->sig && is_fault(j->sig, &j->info)) {
		snprintf(buf, size, "is taking a fault (signal %d)", j->sig);
		return buf;
	}
	if (nr >= 0) {
		no = act_inject_syscall_refusal(nr);
		if (no) {
			snprintf(buf, size, "is in %s", no);
			return buf;
		}
		if (code && code->code >= 0 && unsafe_code[code->code].in_syscall) {
			snprintf(buf, size, "is in a system call of %s (%s)", code->name,
				 unsafe_code[code->code].why);
			return buf;
		}
	} else {
		if (code && code->code >= 0) {
			snprintf(buf, size, "runs code of %s at 0x%llx (%s)", code->name,
				 (unsigned long long)r->rip, unsafe_code[code->code].why);
			return buf;
		}
		if (in_rseq(j, r->rip)) {
			snprintf(buf, size, "is inside a restartable sequence (rseq) at 0x%llx",
				 (unsigned long long)r->rip);
			return buf;
		}
	}
	if (!stack || !stack->w) {
		snprintf(buf, size, "has its stack pointer 0x%llx outside writable memory",
			 (unsigned long long)r->rsp);
		return buf;
	}
	if (act_inject_frame(r->rsp, j->len, &f) || f.lo < stack->start ||
	    (!stack->grows && f.lo - stack->start < STACK_NEED)) {
		snprintf(buf, size, "has %llu bytes of stack left, less than %u",
			 (unsigned long long)(r->rsp - stack->start), STACK_NEED);
		return buf;
	}
	return NULL;
}

/* Stops one thread at a safe point, leaving the others alone; counts the stops in *stops. */
static int pick(struct inj *j, pid_t first, unsigned *stops, char *why, size_t size)
{
	char last[400] = "", reason[300];

	for (int round = 0; round < PICK_ROUNDS; round++) {
		_cleanup_free_ pid_t *tids = NULL;
		struct maps m = {0};
		size_t n = 0;
		unsigned tried = 0;
		int r;

		if (round)
			nap(PICK_DELAY_NS);
		r = list_threads(j->tgid, first, &tids, &n);
		if (!r)
			r = act_maps_each(j->tgid, maps_add, &m);
		if (r) {
			free(m.m);
			return act_why(why, size, r,
				       r == -ESRCH ? "process %d exited"
						   : "cannot "
						     "read the threads and mappings of process %d",
				       (int)j->tgid);
		}
		for (size_t i = 0; i < n && tried < PICK_PER_ROUND; i++) {
			char state = act_thread_state(j->tgid, tids[i]);
			const char *no;

			/* blocked in a system call first; running threads later on */
			if (state != 'S' && (state != 'R' || round < PICK_ROUNDS / 2))
				continue;
			tried++;
			r = stop_thread(j, tids[i], why, size);
			if (r == -ESRCH)
				continue;
			if (r) {
				free(m.m);
				return r;
			}
			(*stops)++;
			no = refusal(j, &m, reason, sizeof(reason));
			if (!no) {
				free(m.m);
				return 0;
			}
			snprintf(last, sizeof(last), "thread %d %s", (int)tids[i], no);
			detach(j);
		}
		free(m.m);
	}
	return act_why(why, size, -EBUSY,
		       "no thread of process %d was at a safe point for the call in %d rounds "
		       "(last: %s)",
		       (int)j->tgid, PICK_ROUNDS,
		       last[0] ? last : "no thread was sleeping in a system call or running");
}

/* Saves the FP/SIMD state of the stopped thread and gives it an empty x87 stack. */
static int fp_save_and_clear(struct inj *j)
{
	struct iovec iov;
	uint8_t *x;

	j->xstate = malloc(XSTATE_MAX);
	if (!j->xstate)
		return -ENOMEM;
	iov = (struct iovec){j->xstate, XSTATE_MAX};
	if (!ptrace(PTRACE_GETREGSET, j->tid, (void *)(long)NT_X86_XSTATE, &iov) &&
	    iov.iov_len > XSTATE_BV_OFF + 8) {
		_cleanup_free_ uint8_t *call = malloc(iov.iov_len);
		uint64_t bv;

		j->xlen = iov.iov_len;
		if (!call)
			return -ENOMEM;
		memcpy(call, j->xstate, j->xlen);
		memcpy(&bv, call + XSTATE_BV_OFF, sizeof(bv));
		if (!(bv & 1)) /* x87 in its initial state: empty already */
			return 0;
		x = call; /* FXSAVE layout: fcw @0, fsw @2, abridged ftw @4 */
		x[2] = x[3] = 0;
		x[4] = 0;
		iov = (struct iovec){call, j->xlen};
		return ptrace(PTRACE_SETREGSET, j->tid, (void *)(long)NT_X86_XSTATE, &iov) < 0
			   ? -errno
			   : 0;
	}
	free(j->xstate);
	j->xstate = NULL;
	if (ptrace(PTRACE_GETFPREGS, j->tid, 0, &j->fp) < 0)
		return -errno;
	j->have_fp = true;
	{
		struct user_fpregs_struct call = j->fp;

		call.swd = 0;
		call.ftw = 0;
		return ptrace(PTRACE_SETFPREGS, j->tid, 0, &call) < 0 ? -errno : 0;
	}
}

/* Writes back the stack bytes, FP state and registers, and detaches. */
static int restore(struct inj *j)
{
	int r = 0;

	if (j->frame_written && act_mem_write(j->mem, j->f.lo, j->saved, j->f.hi - j->f.lo))
		r = -EIO;
	if (j->xstate) {
		struct iovec iov = {j->xstate, j->xlen};

		if (ptrace(PTRACE_SETREGSET, j->tid, (void *)(long)NT_X86_XSTATE, &iov) < 0)
			r = -errno;
	} else if (j->have_fp && ptrace(PTRACE_SETFPREGS, j->tid, 0, &j->fp) < 0) {
		r = -errno;
	}
	if (ptrace(PTRACE_SETREGS, j->tid, 0, &j->regs) < 0)
		r = -errno;
	return detach(j) ?: r;
}

/*
 * Makes the stopped thread call fn(a0, a1) on the frame and waits for the return to 0:
 * 0 with *ret its rax, the thread stopped at the SIGSEGV of the return. Else -ETIMEDOUT or
 * -EFAULT with the thread stopped (to be restored; -ETIMEDOUT with it running when it would
 * not stop), -ESRCH when it is gone; the reason in why.
 */
static int call(struct inj *j, uint64_t fn, uint64_t a0, uint64_t a1, unsigned timeout_ms,
		uint64_t *ret, char *why, size_t size)
{
	struct user_regs_struct r = j->regs;
	int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000;
	bool interrupted = false;

	r.rip = fn;
	r.rsp = j->f.sp;
	r.rdi = a0;
	r.rsi = a1;
	r.rax = 0;
	r.orig_rax = (unsigned long long)-1; /* no restart of a system call into our call */
	r.eflags &= ~(unsigned long long)(EFLAGS_DF | EFLAGS_TF);
	if (ptrace(PTRACE_SETREGS, j->tid, 0, &r) < 0)
		return act_why(why, size, -errno, "could not be set up: PTRACE_SETREGS: %s",
			       strerror(errno));
	if (ptrace(PTRACE_CONT, j->tid, 0, 0) < 0)
		return act_why(why, size, -errno, "could not be resumed: %s", strerror(errno));
	j->stopped = false;
	for (;;) {
		struct user_regs_struct now;
		siginfo_t si = {0};
		int st = 0, sig, e;
		bool back;

		e = wait_stop(j->tid, deadline, &st);
		if (e == -ETIMEDOUT && !interrupted) {
			ptrace(PTRACE_INTERRUPT, j->tid, 0, 0);
			interrupted = true;
			deadline = now_ns() + STOP_TIMEOUT_NS;
			continue;
		}
		if (e == -ETIMEDOUT)
			return act_why(why, size, e,
				       "did not return within %u ms, and the thread did not stop "
				       "either (state %c): it runs the call still, traced by this "
				       "process",
				       timeout_ms, act_thread_state(j->tgid, j->tid));
		if (e || !WIFSTOPPED(st)) {
			j->gone = true;
			return act_why(why, size, -ESRCH, "process %d exited during the call",
				       (int)j->tgid);
		}
		j->stopped = true;
		j->at_signal = (st >> 16) == 0;
		if (ptrace(PTRACE_GETREGS, j->tid, 0, &now) < 0)
			return act_why(why, size, -errno,
				       "could not be followed: PTRACE_GETREGS: %s",
				       strerror(errno));
		back = now.rip == 0 && now.rsp == j->f.sp + 8;
		sig = WSTOPSIG(st);
		if (!j->at_signal) {
			/* a group stop, the rest of an earlier interrupt, or ours */
			if (interrupted && !back)
				return act_why(why, size, -ETIMEDOUT, "did not return within %u ms",
					       timeout_ms);
			/* a SIGSEGV for the return may be queued: its stop comes next */
		} else if (sig == SIGSEGV && back) {
			*ret = now.rax;
			return 0;
		} else {
			ptrace(PTRACE_GETSIGINFO, j->tid, 0, &si);
			if (is_fault(sig, &si))
				return act_why(why, size, -EFAULT,
					       "faulted: signal %d (code %d, address %p) at 0x%llx",
					       sig, si.si_code, si.si_addr,
					       (unsigned long long)now.rip);
			note_signal(j, sig, &si);
		}
		if (ptrace(PTRACE_CONT, j->tid, 0, 0) < 0)
			return act_why(why, size, -errno, "could not be resumed: %s",
				       strerror(errno));
		j->stopped = false;
	}
}

/* Reads a NUL-terminated string of the process at addr into buf. */
static void read_string(int mem, uint64_t addr, char *buf, size_t size)
{
	ssize_t n = addr ? pread(mem, buf, size - 1, (off_t)addr) : -1;

	buf[n > 0 ? n : 0] = '\0';
}

int act_inject_dlopen_info(pid_t pid, uint64_t dlopen_addr, const char *path, unsigned timeout_ms,
			   uint64_t *handle, struct act_inject_info *info, char *why, size_t size)
{
	struct act_inject_info none = {0};
	char reason[ACT_WHY_MAX], errmsg[ERRMSG_MAX];
	struct inj *j = NULL;
	struct file_id id;
	struct stat st;
	uint64_t h = 0, msg = 0, dlerror_addr;
	int64_t t_call;
	bool running;
	int r, rr;

	if (!info)
		info = &none;
	dlerror_addr = info->dlerror_addr;
	memset(info, 0, sizeof(*info));
	info->dlerror_addr = dlerror_addr;
	info->syscall = -1;
	if (why && size)
		why[0] = '\0';
	if (handle)
		*handle = 0;
	if (!handle)
		return act_why(why, size, -EINVAL, "no place for the handle");
	if (pid <= 1)
		return act_why(
		    why, size, -EINVAL,
		    "loading a library needs a process other than init (pid > 1), not %d",
		    (int)pid);
	if (!dlopen_addr)
		return act_why(why, size, -EINVAL, "the address of dlopen is 0");
	if (!path || path[0] != '/')
		return act_why(why, size, -EINVAL, "library path '%s' must be absolute",
			       path ? path : "");
	if (strnlen(path, ACT_INJECT_PATH_MAX) >= ACT_INJECT_PATH_MAX)
		return act_why(why, size, -EINVAL, "library path is %d bytes or longer",
			       ACT_INJECT_PATH_MAX);
	if (timeout_ms > ACT_INJECT_TIMEOUT_MAX_MS)
		return act_why(why, size, -EINVAL, "timeout %u ms must be between 0 and %d",
			       timeout_ms, ACT_INJECT_TIMEOUT_MAX_MS);
	if (!timeout_ms)
		timeout_ms = ACT_INJECT_TIMEOUT_MS;

	r = check_library(path, info->canonical, &st, why, size);
	if (r)
		return r;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->mem = -1;
	r = check_process(pid, &j->tgid, why, size);
	if (r)
		goto out;
	id = (struct file_id){.st = &st, .path = info->canonical, .addr = dlopen_addr};
	r = act_maps_each(j->tgid, maps_file, &id);
	if (r == 1) {
		r = 0;
		act_why(why, size, 0, "already loaded");
		goto out;
	}
	if (!r)
		r = act_maps_each(j->tgid, maps_exec, &id);
	if (r <= 0) {
		r = act_why(why, size, r ?: -EINVAL,
			    r ? "cannot read the mappings of process %d"
			      : "dlopen's address is not in executable memory of process %d",
			    (int)j->tgid);
		goto out;
	}
	{
		char p[64];

		snprintf(p, sizeof(p), "/proc/%d/mem", (int)j->tgid);
		j->mem = open(p, O_RDWR | O_CLOEXEC);
		if (j->mem < 0) {
			r = act_why(why, size, errno == ENOENT ? -ESRCH : -errno, "cannot open %s",
				    p);
			goto out;
		}
	}
	j->len = strlen(info->canonical) + 1;

	r = pick(j, pid, &info->stops, why, size);
	if (r)
		goto out;
	info->tid = j->tid;
	info->syscall = (long)j->regs.orig_rax >= 0 ? (long)j->regs.orig_rax : -1;

	/* the frame: the path and the return address 0 below the red zone */
	act_inject_frame(j->regs.rsp, j->len, &j->f);
	r = act_mem_read(j->mem, j->f.lo, j->saved, j->f.hi - j->f.lo);
	if (!r) {
		uint8_t frame[SAVED_MAX];

		memcpy(frame, j->saved, j->f.hi - j->f.lo);
		memset(frame, 0, 8);
		memcpy(frame + (j->f.str - j->f.lo), info->canonical, j->len);
		j->frame_written = true;
		r = act_mem_write(j->mem, j->f.lo, frame, j->f.hi - j->f.lo);
	}
	if (!r)
		r = fp_save_and_clear(j);
	if (r) {
		r = act_why(why, size, r, "cannot prepare the call in thread %d of process %d",
			    (int)j->tid, (int)j->tgid);
		restore(j);
		goto out;
	}

	t_call = now_ns();
	r = call(j, dlopen_addr, j->f.str, DLOPEN_FLAGS, timeout_ms, &h, reason, sizeof(reason));
	errmsg[0] = '\0';
	if (!r && !h && dlerror_addr) {
		char r2[ACT_WHY_MAX];

		if (!call(j, dlerror_addr, 0, 0, DLERROR_MS, &msg, r2, sizeof(r2)))
			read_string(j->mem, msg, errmsg, sizeof(errmsg));
		else
			snprintf(errmsg, sizeof(errmsg), "it returned NULL (dlerror(): %.150s)",
				 r2);
	}
	info->call_ns = (uint64_t)(now_ns() - t_call);
	info->signals = j->nsignals;
	running = !j->stopped && !j->gone;
	rr = j->stopped ? restore(j) : 0;
	info->away_ns = (uint64_t)(now_ns() - j->t_int);
	info->stop_ns = (uint64_t)(j->t_stop - j->t_int);

	if (r && j->gone) {
		act_why(why, size, r, "%s", reason);
	} else if (r && running) {
		/* it would not even stop: still in the call, and ours */
		act_why(why, size, r, "dlopen('%s') in thread %d of process %d %s", info->canonical,
			(int)j->tid, (int)j->tgid, reason);
	} else if (r) {
		act_why(why, size, r,
			"dlopen('%s') in thread %d of process %d %s: abandoned, the thread "
			"restored%s, but the process's loader may stay locked: restart it",
			info->canonical, (int)j->tid, (int)j->tgid, reason,
			rr ? " (not completely)" : "");
	} else if (rr) {
		r = act_why(
		    why, size, rr, "'%s' %s in process %d, but thread %d could not be restored",
		    info->canonical, h ? "loaded" : "not loaded", (int)j->tgid, (int)j->tid);
	} else if (!h) {
		r = act_why(why, size, -ELIBBAD, "dlopen('%s') in process %d failed: %s",
			    info->canonical, (int)j->tgid,
			    errmsg[0] ? errmsg : "it returned NULL (dlerror() not asked)");
	} else {
		char where[64];

		if (info->syscall >= 0)
			snprintf(where, sizeof(where), "in system call %ld", info->syscall);
		else
			snprintf(where, sizeof(where), "in user code");
		*handle = h;
		act_why(why, size, 0, "loaded by thread %d (%s), away %.0f us, dlopen %.0f us",
			(int)j->tid, where, info->away_ns / 1000.0, info->call_ns / 1000.0);
	}
out:
	if (j->mem >= 0)
		close(j->mem);
	free(j->xstate);
	free(j);
	return r;
}

int act_inject_dlopen(pid_t pid, uint64_t dlopen_addr, const char *path, unsigned timeout_ms,
		      uint64_t *handle, char *why, size_t size)
{
	return act_inject_dlopen_info(pid, dlopen_addr, path, timeout_ms, handle, NULL, why, size);
}
