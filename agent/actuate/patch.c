/* patch.c - the text-patch actuator: a function of a running process jumps to an alternative
 * in the same address space (mechanism b of issue 6, every kernel).
 *
 * Why this way: a running program's calls can only be sent elsewhere by changing its code,
 * and the one place every call passes through is the function's entry. The entry's first
 * whole instructions are replaced by a jump (e9 rel32 when the alternative is within 2 GiB,
 * else ff 25 00000000 <abs64>); the rest of the last instruction replaced is filled with int3,
 * so that anything that ever landed there would trap at once rather than run half a
 * prologue. A leading endbr64 is kept. Functions built with -fpatchable-function-entry=N,M
 * (M >= 5 NOPs before the entry, a 2-byte NOP at it) get the libpulp layout instead: the
 * jump is written into the NOPs before the entry and the entry's NOP becomes `eb XX` back to
 * it, so the only instruction changed on the path of a running thread is one 2-byte NOP.
 *
 * The planner (act_patch_plan) is pure: it decodes the function with capstone and refuses,
 * naming the instruction and its offset, what cannot be replaced safely: a function shorter
 * than the jump, an undecodable instruction, a branch, call, ret, int or syscall, or a
 * RIP-relative operand in the bytes replaced (conservative: a return address or a restarted
 * system call could point into them, and such an entry is not the plain prologue a redirect
 * expects), a branch anywhere in the function into them (a branch to the entry itself is
 * fine: it becomes a call of the alternative), an entry that already holds a jump (someone
 * else patched it).
 *
 * The write: every thread of the process is seized with ptrace and interrupted, rescanning
 * /proc/PID/task until no new thread appears (a stopped thread creates none). Under the stop
 * the bytes must still be what we expect (the original for apply, ours for revert), and no
 * thread may be inside them (nor, for a thread in a syscall, 2 bytes on, where a restart
 * rewinds it); else everything is resumed and tried again 1 ms later, ACT_PATCH_TRIES times,
 * then -EBUSY. The bytes are written with pwrite() on /proc/PID/mem (as root it writes
 * read-only text: the kernel breaks copy-on-write, the file is never touched), read back and
 * compared, and every thread is detached. With the layout the pre-entry jump is written
 * before the entry's short jump, and on revert after it, so that every intermediate state
 * is consistent code. Once all are stopped and until the last is resumed, the caller runs
 * SCHED_FIFO (see boost()): without it a resumed thread preempts it and the others stay
 * stopped for a tick. The pause (first interrupt to last detach) is in res->patch_pause_ns.
 *
 * Invariants: every thread seized is detached on every path. If homeostatd dies while
 * threads are stopped, the kernel detaches them itself (exit_ptrace) and they run on, with
 * the old bytes, the new ones, or (layout only) the harmless state between the two writes.
 * Nothing is ever unmapped: code a thread may still be running (the alternative, after a
 * revert) stays. Revert writes the original bytes back only if the process still holds ours.
 * Nothing here logs.
 */
#include <capstone/capstone.h>
#include <dirent.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>

#include "actuate/internal.h"

#define JMP_REL32_LEN	5
#define JMP_ABS_LEN	14
#define JMP_SHORT_LEN	2
#define ENDBR64_LEN	4
#define STOP_TIMEOUT_NS 2000000000LL /* for every thread to reach its stop */
#define RETRY_DELAY_NS	1000000L     /* between two stops while a thread is inside */
#define MAX_THREADS	65536

static const uint8_t endbr64[ENDBR64_LEN] = {0xf3, 0x0f, 0x1e, 0xfa};

/* ---- hex ---- */

int act_hex_format(const uint8_t *b, size_t n, char *buf, size_t size)
{
	static const char digits[] = "0123456789abcdef";

	if (size < 2 * n + 1) {
		if (size)
			buf[0] = '\0';
		return -ENAMETOOLONG;
	}
	for (size_t i = 0; i < n; i++) {
		buf[2 * i] = digits[b[i] >> 4];
		buf[2 * i + 1] = digits[b[i] & 0xf];
	}
	buf[2 * n] = '\0';
	return 0;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int act_hex_parse(const char *s, uint8_t *b, size_t max, size_t *n)
{
	size_t len = strlen(s);

	if (len % 2)
		return -EINVAL;
	if (len / 2 > max)
		return -E2BIG;
	for (size_t i = 0; i < len / 2; i++) {
		int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		b[i] = (uint8_t)(hi << 4 | lo);
	}
	*n = len / 2;
	return 0;
}

/* ---- the planner ---- */

static bool rel32_reaches(uint64_t next, uint64_t to)
{
	int64_t d = (int64_t)(to - next);

	return d >= INT32_MIN && d <= INT32_MAX;
}

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The jump at address at to `to` into buf; its length. */
static unsigned put_jump(uint8_t *buf, uint64_t at, uint64_t to, bool absolute)
{
	if (!absolute) {
		buf[0] = 0xe9;
		put_le(buf + 1, (uint64_t)(to - (at + JMP_REL32_LEN)), 4);
		return JMP_REL32_LEN;
	}
	buf[0] = 0xff; /* jmp *0(%rip): the target is the 8 bytes that follow */
	buf[1] = 0x25;
	put_le(buf + 2, 0, 4);
	put_le(buf + 6, to, 8);
	return JMP_ABS_LEN;
}

/*
 * Is x strictly inside the bytes replaced [at, at + len), at a point a thread must not be?
 * With the layout the entry (and, after a kept endbr64, the 2-byte NOP) is one instruction
 * both before and after: a thread there runs either the whole NOP or the whole short jump.
 */
static bool patch_inside(uint64_t at, unsigned len, bool layout, uint64_t entry, unsigned skip,
			 uint64_t x)
{
	if (x <= at || x >= at + len)
		return false;
	return !(layout && (x == entry || x == entry + skip));
}

/* "+0x1c", or "-0x5" before the entry. */
static const char *off_str(char *buf, size_t size, uint64_t entry, uint64_t x)
{
	if (x >= entry)
		snprintf(buf, size, "+0x%" PRIx64, x - entry);
	else
		snprintf(buf, size, "-0x%" PRIx64, entry - x);
	return buf;
}

/* What makes an instruction unfit to be replaced, or NULL. */
static const char *insn_refusal(const cs_insn *in)
{
	const cs_detail *d = in->detail;
	const cs_x86 *x = &d->x86;

	for (unsigned i = 0; i < d->groups_count; i++) {
		switch (d->groups[i]) {
		case CS_GRP_CALL:
			return "a call";
		case CS_GRP_RET:
			return "a return";
		case CS_GRP_JUMP:
		case CS_GRP_BRANCH_RELATIVE:
			return "a branch";
		case CS_GRP_INT:
		case CS_GRP_IRET:
			return "an interrupt or system call";
		case CS_GRP_PRIVILEGE:
			return "a privileged instruction";
		default:
			break;
		}
	}
	switch (in->id) {
	case X86_INS_SYSCALL:
	case X86_INS_SYSENTER:
		return "an interrupt or system call";
	case X86_INS_UD2:
	case X86_INS_UD2B:
		return "a trap";
	default:
		break;
	}
	for (unsigned i = 0; i < x->op_count; i++)
		if (x->operands[i].type == X86_OP_MEM && (x->operands[i].mem.base == X86_REG_RIP ||
							  x->operands[i].mem.base == X86_REG_EIP))
			return "a RIP-relative operand";
	return NULL;
}

/* The target of a direct branch or call, if in is one. */
static bool insn_target(const cs_insn *in, uint64_t *target)
{
	const cs_detail *d = in->detail;
	bool branch = false;

	for (unsigned i = 0; i < d->groups_count; i++)
		if (d->groups[i] == CS_GRP_JUMP || d->groups[i] == CS_GRP_CALL ||
		    d->groups[i] == CS_GRP_BRANCH_RELATIVE)
			branch = true;
	if (!branch)
		return false;
	for (unsigned i = 0; i < d->x86.op_count; i++)
		if (d->x86.operands[i].type == X86_OP_IMM) {
			*target = (uint64_t)d->x86.operands[i].imm;
			return true;
		}
	return false;
}

static void insn_text(const cs_insn *in, char *buf, size_t size)
{
	snprintf(buf, size, "%s%s%s", in->mnemonic, in->op_str[0] ? " " : "", in->op_str);
}

/* Decodes the instruction at code[off]; false when it cannot be. */
static bool decode(csh cs, const uint8_t *code, size_t n, uint64_t addr, size_t off, cs_insn *in)
{
	const uint8_t *p = code + off;
	size_t left = n - off;
	uint64_t a = addr + off;

	return off < n && cs_disasm_iter(cs, &p, &left, &a, in);
}

static int undecodable(const uint8_t *code, size_t n, size_t off, const char *what, char *why,
		       size_t size)
{
	char hex[2 * 8 + 1];

	act_hex_format(code + off, n - off < 8 ? n - off : 8, hex, sizeof(hex));
	return act_why(why, size, -EOPNOTSUPP, "cannot decode the instruction at +0x%zx (%s)%s",
		       off, hex, what);
}

static int plan(csh cs, cs_insn *in, const uint8_t *code, size_t n, uint64_t addr, uint64_t to,
		const uint8_t *pre, size_t npre, struct act_patch_plan *out, char *why, size_t size)
{
	char text[200], o1[24], o2[24], o3[24];
	unsigned skip = 0, jlen, k = 0;
	size_t off;

	if (n >= ENDBR64_LEN && !memcmp(code, endbr64, ENDBR64_LEN))
		skip = ENDBR64_LEN;
	out->skip = skip;
	if (!decode(cs, code, n, addr, skip, in))
		return undecodable(code, n, skip, "", why, size);
	if (in->id == X86_INS_JMP || in->id == X86_INS_LJMP) {
		insn_text(in, text, sizeof(text));
		return act_why(why, size, -EALREADY,
			       "the entry already holds a jump ('%s' at +0x%x): patched by someone "
			       "else?",
			       text, skip);
	}

	/* the libpulp layout: a 2-byte NOP at the entry, enough 0x90 before it */
	if (n >= skip + JMP_SHORT_LEN && (code[skip] == 0x66 || code[skip] == 0x90) &&
	    code[skip + 1] == 0x90) {
		bool absolute = !rel32_reaches(addr, to);

		jlen = absolute ? JMP_ABS_LEN : JMP_REL32_LEN;
		while (k < npre && pre[npre - 1 - k] == 0x90)
			k++;
		if (k >= jlen) {
			out->layout = true;
			out->absolute = absolute;
			out->at = addr - jlen;
			out->len = jlen + skip + JMP_SHORT_LEN;
			memcpy(out->orig, pre + npre - jlen, jlen);
			memcpy(out->orig + jlen, code, skip + JMP_SHORT_LEN);
			memcpy(out->bytes, out->orig, out->len);
			put_jump(out->bytes, out->at, to, absolute);
			out->bytes[jlen + skip] = 0xeb;
			out->bytes[jlen + skip + 1] = (uint8_t)(int8_t)(-(int)out->len);
			goto branches;
		}
	}

	/* whole instructions covering the jump */
	out->at = addr + skip;
	out->absolute = !rel32_reaches(out->at + JMP_REL32_LEN, to);
	jlen = out->absolute ? JMP_ABS_LEN : JMP_REL32_LEN;
	if (n < skip + jlen) {
		if (skip)
			return act_why(why, size, -EOPNOTSUPP,
				       "the function is %zu bytes, %zu after its endbr64, shorter "
				       "than the %u-byte jump",
				       n, n - skip, jlen);
		return act_why(why, size, -EOPNOTSUPP,
			       "the function is %zu bytes, shorter than the %u-byte jump", n, jlen);
	}
	for (off = skip; off < skip + jlen; off += in->size) {
		const char *no;

		if (!decode(cs, code, n, addr, off, in))
			return undecodable(code, n, off, "", why, size);
		no = insn_refusal(in);
		if (no) {
			insn_text(in, text, sizeof(text));
			return act_why(why, size, -EOPNOTSUPP,
				       "'%s' at +0x%zx: %s in the bytes the %u-byte jump replaces",
				       text, off, no, jlen);
		}
	}
	out->len = (unsigned)(off - skip);
	if (out->len > ACT_PATCH_MAX)
		return act_why(why, size, -EOPNOTSUPP, "%u bytes to replace, more than %d",
			       out->len, ACT_PATCH_MAX);
	memcpy(out->orig, code + skip, out->len);
	memset(out->bytes, 0xcc, out->len);
	put_jump(out->bytes, out->at, to, out->absolute);

branches:
	/* no branch of the function may land inside what is replaced */
	for (off = 0; off < n; off += in->size) {
		uint64_t t;

		if (!decode(cs, code, n, addr, off, in))
			return undecodable(code, n, off,
					   ": the branches of the function cannot be "
					   "checked",
					   why, size);
		if (!insn_target(in, &t) ||
		    !patch_inside(out->at, out->len, out->layout, addr, skip, t))
			continue;
		insn_text(in, text, sizeof(text));
		return act_why(why, size, -EOPNOTSUPP,
			       "'%s' at +0x%zx jumps to %s, inside the bytes replaced [%s, %s)",
			       text, off, off_str(o1, sizeof(o1), addr, t),
			       off_str(o2, sizeof(o2), addr, out->at),
			       off_str(o3, sizeof(o3), addr, out->at + out->len));
	}
	return 0;
}

int act_patch_plan(const uint8_t *code, size_t n, uint64_t addr, uint64_t to, const uint8_t *pre,
		   size_t npre, struct act_patch_plan *out, char *why, size_t size)
{
	cs_insn *in;
	csh cs;
	int r;

	memset(out, 0, sizeof(*out));
	if (why && size)
		why[0] = '\0';
	if (!code || !n)
		return act_why(why, size, -EINVAL, "no code to patch");
	if (!addr || !to)
		return act_why(why, size, -EINVAL, "the function or the alternative is at 0");
	if (to >= addr && to - addr < n)
		return act_why(why, size, -EINVAL,
			       "the alternative 0x%" PRIx64 " is inside the function", to);
	if (!pre)
		npre = 0;
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK)
		return act_why(why, size, -ENOMEM, "cannot open the capstone disassembler");
	cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
	in = cs_malloc(cs);
	if (!in) {
		cs_close(&cs);
		return act_why(why, size, -ENOMEM, "cannot allocate a capstone instruction");
	}
	r = plan(cs, in, code, n, addr, to, pre, npre, out, why, size);
	cs_free(in, 1);
	cs_close(&cs);
	if (r)
		memset(out, 0, sizeof(*out));
	return r;
}

/* ---- the process's memory ---- */

/* [start, end) of the executable mapping of pid holding addr; -EFAULT when there is none. */
struct exec_at {
	uint64_t addr, start, end;
	bool x;
};

static int exec_at_line(const struct act_map_line *l, void *arg)
{
	struct exec_at *a = arg;

	if (a->addr < l->start || a->addr >= l->end)
		return 0;
	a->start = l->start;
	a->end = l->end;
	a->x = l->perms[2] == 'x';
	return 1;
}

static int exec_mapping(pid_t pid, uint64_t addr, uint64_t *start, uint64_t *end)
{
	struct exec_at a = {.addr = addr};
	int r = act_maps_each(pid, exec_at_line, &a);

	if (r < 0)
		return r;
	if (!r || !a.x)
		return -EFAULT;
	*start = a.start;
	*end = a.end;
	return 0;
}

int act_mem_read(int fd, uint64_t at, void *buf, size_t n)
{
	ssize_t r = pread(fd, buf, n, (off_t)at);

	if (r < 0)
		return errno == ESRCH ? -ESRCH : -errno;
	return (size_t)r == n ? 0 : -EIO;
}

int act_mem_write(int fd, uint64_t at, const void *buf, size_t n)
{
	ssize_t r;

	if (!n)
		return 0;
	r = pwrite(fd, buf, n, (off_t)at);
	if (r < 0)
		return -errno;
	return (size_t)r == n ? 0 : -EIO;
}

/* Opens /proc/PID/mem and makes sure it is the process identified at apply (start time read
 * after the open: the file is bound to the address space it was opened on). */
static int mem_open(const struct act_request *req, unsigned long long want,
		    unsigned long long *start, int flags, char *why, size_t size)
{
	char path[64];
	unsigned long long s = 0;
	int fd, r;

	snprintf(path, sizeof(path), "/proc/%d/mem", (int)req->pid);
	fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		return act_why(why, size, errno == ENOENT ? -ESRCH : -errno, "cannot open %s",
			       path);
	r = act_pid_start(req->pid, &s);
	if (!r && want && s != want)
		r = -ESRCH;
	if (r) {
		close(fd);
		return act_why(why, size, r == -ENOENT || r == -ESRCH ? -ESRCH : r,
			       "no process %d%s", (int)req->pid,
			       want && r == -ESRCH ? " with that start time" : "");
	}
	if (start)
		*start = s;
	return fd;
}

/* Reads the function and the bytes before it and plans. */
static int load_and_plan(const struct act_request *req, int fd, struct act_patch_plan *p, char *why,
			 size_t size)
{
	const struct act_patch *q = &req->patch;
	uint8_t pre[ACT_PATCH_PRE_MAX];
	_cleanup_free_ uint8_t *code = NULL;
	uint64_t start, end, s2, e2;
	size_t npre;
	int r;

	r = exec_mapping(req->pid, q->addr, &start, &end);
	if (r == -ESRCH)
		return act_why(why, size, r, "no process %d", (int)req->pid);
	if (r || q->addr + q->size > end)
		return act_why(why, size, -EFAULT,
			       "'%s' [0x%" PRIx64 ", +%" PRIu64
			       ") is not in one executable mapping "
			       "of process %d",
			       q->function, q->addr, q->size, (int)req->pid);
	if (exec_mapping(req->pid, q->to, &s2, &e2))
		return act_why(why, size, -EFAULT,
			       "the alternative '%s' at 0x%" PRIx64 " is not in executable memory "
			       "of process %d",
			       q->alternative, q->to, (int)req->pid);
	code = malloc(q->size);
	if (!code)
		return -ENOMEM;
	r = act_mem_read(fd, q->addr, code, q->size);
	if (r)
		return act_why(why, size, r, "cannot read '%s' from /proc/%d/mem", q->function,
			       (int)req->pid);
	npre = q->addr - start < ACT_PATCH_PRE_MAX ? q->addr - start : ACT_PATCH_PRE_MAX;
	if (npre && act_mem_read(fd, q->addr - npre, pre, npre))
		npre = 0;
	return act_patch_plan(code, q->size, q->addr, q->to, pre, npre, p, why, size);
}

/* ---- stopping the world ---- */

struct thread {
	pid_t tid;
	bool stopped; /* in a ptrace-stop: may be read and detached */
	bool gone;    /* exited (or a zombie leader): nothing to detach */
	int sig;      /* a signal caught by its stop, handed back at detach */
};

struct world {
	pid_t pid;
	struct thread *t;
	size_t n, cap;
	struct timespec t0; /* just before the first interrupt */
	bool started;
};

static int64_t ns_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - t0->tv_sec) * 1000000000 + (now.tv_nsec - t0->tv_nsec);
}

static bool world_has(const struct world *w, pid_t tid)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->t[i].tid == tid)
			return true;
	return false;
}

/* The state letter of a thread ('?' when unreadable, 'X' when gone). */
char act_thread_state(pid_t pid, pid_t tid)
{
	char path[64], buf[512], *p;
	_cleanup_close_ int fd = -1;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 'X' : '?';
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return 'X';
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

/* Waits (polling, at most STOP_TIMEOUT_NS) until every thread seized is stopped or gone. It
 * sleeps between polls rather than yield: a thread may need this very CPU to reach its stop. */
static int world_wait(struct world *w, char *why, size_t size)
{
	struct timespec t0, nap = {0, 10000};
	pid_t late = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned round = 0;; round++) {
		size_t left = 0;

		for (size_t i = 0; i < w->n; i++) {
			struct thread *t = &w->t[i];
			int st = 0;
			pid_t r;

			if (t->stopped || t->gone)
				continue;
			r = waitpid(t->tid, &st, __WALL | WNOHANG);
			if (r == 0 || (r < 0 && errno == EINTR)) {
				/* a leader that called pthread_exit() is a zombie until the
				 * others exit: it never stops */
				if (round && round % 64 == 0 &&
				    act_thread_state(w->pid, t->tid) == 'Z') {
					t->gone = true;
				} else {
					left++;
					late = t->tid;
				}
				continue;
			}
			if (r < 0 || WIFEXITED(st) || WIFSIGNALED(st)) {
				t->gone = true;
				continue;
			}
			if (WIFSTOPPED(st)) {
				t->stopped = true;
				/* the interrupt or a group stop report PTRACE_EVENT_STOP; any
				 * other stop is the delivery of a signal, handed back later */
				t->sig = (st >> 16) == PTRACE_EVENT_STOP ? 0 : WSTOPSIG(st);
			}
		}
		if (!left)
			return 0;
		if (ns_since(&t0) > STOP_TIMEOUT_NS)
			return act_why(
			    why, size, -ETIMEDOUT,
			    "thread %d of process %d did not stop within %lld ms (state %c)",
			    (int)late, (int)w->pid, STOP_TIMEOUT_NS / 1000000,
			    act_thread_state(w->pid, late));
		nanosleep(&nap, NULL);
	}
}

/*
 * Once every thread is stopped, until the last is resumed, the caller runs SCHED_FIFO
 * (priority 1): a thread it resumes would otherwise preempt it on its CPU (wakeup preemption)
 * and keep the threads not yet resumed stopped for a whole tick (4 ms at HZ=250). Not while
 * threads are still on their way to their stop: some may need the caller's CPU to get there.
 * Without the privilege the caller runs as it is.
 */
struct boost {
	int policy;
	struct sched_param param;
	bool on;
};

static void boost(struct boost *b)
{
	struct sched_param rt = {.sched_priority = 1};

	b->policy = sched_getscheduler(0);
	b->on = b->policy >= 0 && b->policy != SCHED_FIFO && b->policy != SCHED_RR &&
		!sched_getparam(0, &b->param) &&
		!sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &rt);
}

static void unboost(struct boost *b)
{
	if (b->on)
		sched_setscheduler(0, b->policy, &b->param);
	b->on = false;
}

/* Detaches every thread seized, interrupting first those not stopped yet (a running tracee
 * cannot be detached; the caller must not be boosted meanwhile). Returns how many could not
 * be. */
static unsigned world_release(struct world *w, struct boost *b)
{
	unsigned stuck = 0;
	bool running = false;

	for (size_t i = 0; i < w->n; i++)
		if (!w->t[i].stopped && !w->t[i].gone) {
			ptrace(PTRACE_INTERRUPT, w->t[i].tid, 0, 0);
			running = true;
		}
	if (running) {
		unboost(b);
		world_wait(w, NULL, 0);
	}
	for (size_t i = 0; i < w->n; i++) {
		struct thread *t = &w->t[i];

		if (t->gone)
			continue;
		if (ptrace(PTRACE_DETACH, t->tid, 0, (void *)(long)t->sig) < 0 && errno != ESRCH)
			stuck++;
	}
	free(w->t);
	w->t = NULL;
	w->n = w->cap = 0;
	return stuck;
}

/* Seizes and interrupts every thread of the process, again while new ones appear. */
static int world_stop(struct world *w, char *why, size_t size)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/task", (int)w->pid);
	for (unsigned round = 0; round < 1000; round++) {
		size_t first = w->n;
		struct dirent *e;
		DIR *d = opendir(path);
		int r;

		if (!d)
			return act_why(why, size, errno == ENOENT ? -ESRCH : -errno,
				       "cannot list the threads of process %d", (int)w->pid);
		while ((e = readdir(d))) {
			pid_t tid = (pid_t)atoi(e->d_name);

			if (tid <= 0 || world_has(w, tid))
				continue;
			if (w->n == w->cap) {
				size_t cap = w->cap ? 2 * w->cap : 64;
				struct thread *v =
				    cap <= MAX_THREADS ? realloc(w->t, cap * sizeof(*v)) : NULL;

				if (!v) {
					closedir(d);
					return act_why(why, size, -ENOMEM,
						       "too many threads in process %d",
						       (int)w->pid);
				}
				w->t = v;
				w->cap = cap;
			}
			if (ptrace(PTRACE_SEIZE, tid, 0, 0) < 0) {
				int err = errno;

				/* exited meanwhile; or a zombie: a leader that called
				 * pthread_exit() cannot be traced, and runs nothing */
				if (err == ESRCH ||
				    (err == EPERM && strchr("ZXx", act_thread_state(w->pid, tid))))
					continue;
				closedir(d);
				return act_why(why, size, -err,
					       "cannot trace thread %d of process %d%s", (int)tid,
					       (int)w->pid,
					       err == EPERM ? " (traced by another process?)" : "");
			}
			w->t[w->n++] = (struct thread){.tid = tid};
		}
		closedir(d);
		if (first == w->n)
			return round ? 0
				     : act_why(why, size, -ESRCH, "process %d has no threads",
					       (int)w->pid);
		/* seized first, interrupted together: the pause starts here */
		if (!w->started) {
			clock_gettime(CLOCK_MONOTONIC, &w->t0);
			w->started = true;
		}
		for (size_t i = first; i < w->n; i++)
			if (ptrace(PTRACE_INTERRUPT, w->t[i].tid, 0, 0) < 0 && errno == ESRCH)
				w->t[i].gone = true;
		r = world_wait(w, why, size);
		if (r)
			return r;
	}
	return act_why(why, size, -EAGAIN, "process %d keeps creating threads", (int)w->pid);
}

/* A thread of the stopped world inside the bytes of res, or 0. */
static pid_t world_inside(const struct world *w, const struct act_result *res, uint64_t *rip,
			  int *err)
{
	const struct act_patch *q = &res->req.patch;
	unsigned skip = 0;

	/* a kept endbr64 sits between the pre-entry jump and the entry's NOP */
	if (res->patch_layout && q->addr - res->patch_at + ENDBR64_LEN <= res->patch_len &&
	    !memcmp(res->patch_orig + (q->addr - res->patch_at), endbr64, ENDBR64_LEN))
		skip = ENDBR64_LEN;
	*err = 0;
	for (size_t i = 0; i < w->n; i++) {
		struct user_regs_struct regs;
		bool in;

		if (!w->t[i].stopped || w->t[i].gone)
			continue;
		if (ptrace(PTRACE_GETREGS, w->t[i].tid, 0, &regs) < 0) {
			if (errno == ESRCH)
				continue;
			*err = -errno;
			return w->t[i].tid;
		}
		*rip = regs.rip;
		in = patch_inside(res->patch_at, res->patch_len, res->patch_layout, q->addr, skip,
				  regs.rip);
		/* in a system call, a restart rewinds rip by the 2 bytes of `syscall` */
		if ((long long)regs.orig_rax >= 0)
			in = in || patch_inside(res->patch_at, res->patch_len, res->patch_layout,
						q->addr, skip, regs.rip - 2);
		if (in)
			return w->t[i].tid;
	}
	return 0;
}

static int nap(long ns)
{
	struct timespec ts = {0, ns};

	return nanosleep(&ts, NULL);
}

/*
 * Under one stop of every thread: checks that [patch_at, +patch_len) holds `expect` and that
 * no thread is inside it, writes `put` (the part before the entry first when `pre_first`,
 * else last), reads it back. Retries while a thread is inside; -EBUSY after ACT_PATCH_TRIES.
 * On a failed write the bytes are put back to `expect` before the threads resume.
 */
static int patch_swap(struct act_result *res, int fd, const uint8_t *expect, const uint8_t *put,
		      bool pre_first)
{
	const struct act_patch *q = &res->req.patch;
	unsigned len = res->patch_len, split = (unsigned)(q->addr - res->patch_at);
	uint8_t now[ACT_PATCH_MAX];
	char hex[2 * ACT_PATCH_MAX + 1], o[24];
	uint64_t rip = 0;
	pid_t tid = 0;

	if (!res->patch_layout || split > len)
		split = 0;
	for (int attempt = 0; attempt < ACT_PATCH_TRIES; attempt++) {
		struct world w = {.pid = res->req.pid};
		unsigned long long start = 0;
		unsigned stopped = 0;
		struct boost b;
		int r, err;

		if (attempt)
			nap(RETRY_DELAY_NS);
		b.on = false;
		r = world_stop(&w, res->why, sizeof(res->why));
		if (!r)
			boost(&b);
		if (!r && res->pid_start &&
		    (act_pid_start(w.pid, &start) || start != res->pid_start))
			r = act_why(res->why, sizeof(res->why), -ESRCH,
				    "process %d exited meanwhile", (int)w.pid);
		if (!r) {
			r = act_mem_read(fd, res->patch_at, now, len);
			if (r)
				act_why(res->why, sizeof(res->why), r, "cannot read /proc/%d/mem",
					(int)w.pid);
			else if (memcmp(now, expect, len)) {
				act_hex_format(now, len, hex, sizeof(hex));
				r = act_why(res->why, sizeof(res->why), -ESTALE,
					    "the bytes at 0x%" PRIx64 " changed meanwhile: %s",
					    res->patch_at, hex);
			}
		}
		if (!r) {
			tid = world_inside(&w, res, &rip, &err);
			if (err)
				r = act_why(res->why, sizeof(res->why), err,
					    "cannot read the registers of thread %d", (int)tid);
		}
		if (!r && tid) {
			res->patch_retries++;
			world_release(&w, &b);
			unboost(&b);
			continue;
		}
		if (!r) {
			/* all stopped: the order matters only if we die between the writes */
			if (pre_first)
				r = act_mem_write(fd, res->patch_at, put, split)
					?: act_mem_write(fd, res->patch_at + split, put + split,
							 len - split);
			else
				r = act_mem_write(fd, res->patch_at + split, put + split,
						  len - split)
					?: act_mem_write(fd, res->patch_at, put, split);
			if (!r)
				r = act_mem_read(fd, res->patch_at, now, len);
			if (!r && memcmp(now, put, len))
				r = -EIO;
			if (r) {
				act_why(res->why, sizeof(res->why), r,
					"cannot write %u bytes at 0x%" PRIx64 " of process %d", len,
					res->patch_at, (int)w.pid);
				/* put back what was there; if even that fails, say so */
				if (act_mem_write(fd, res->patch_at, expect, len) ||
				    act_mem_read(fd, res->patch_at, now, len) ||
				    memcmp(now, expect, len)) {
					size_t n = strlen(res->why);

					r = -EIO;
					snprintf(res->why + n, sizeof(res->why) - n,
						 ", and cannot restore it");
				}
			}
		}
		for (size_t i = 0; i < w.n; i++)
			stopped += w.t[i].stopped && !w.t[i].gone;
		if (world_release(&w, &b) && !r)
			r = act_why(res->why, sizeof(res->why), -EIO,
				    "written, but some threads of process %d could not be detached",
				    (int)res->req.pid);
		res->patch_pause_ns = w.started ? (uint64_t)ns_since(&w.t0) : 0;
		unboost(&b);
		res->patch_threads = stopped;
		return r;
	}
	return act_why(res->why, sizeof(res->why), -EBUSY,
		       "thread %d was inside the bytes replaced (at %s) in each of %d stops",
		       (int)tid, off_str(o, sizeof(o), q->addr, rip), ACT_PATCH_TRIES);
}

/* ---- the actuator ---- */

static int check_name(const char *what, const char *s, char *why, size_t size)
{
	if (!act_terminated(s, ACT_NAME_MAX))
		return act_why(why, size, -EINVAL, "%s name is longer than %d bytes", what,
			       ACT_NAME_MAX - 1);
	if (!*s)
		return act_why(why, size, -EINVAL, "%s name is empty", what);
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return act_why(why, size, -EINVAL,
				       "%s name holds a blank or non-printable character (0x%02x)",
				       what, (unsigned char)*s);
	return 0;
}

int act_patch_validate(const struct act_request *req, char *why, size_t size)
{
	const struct act_patch *q = &req->patch;
	bool lib = q->library[0] && !q->to;
	int r;

	if (req->pid <= 1)
		return act_why(why, size, -EINVAL,
			       "a patch needs one process other than init (pid > 1), not %d",
			       (int)req->pid);
	if (req->pid == getpid())
		return act_why(why, size, -EINVAL, "homeostat does not patch itself (pid %d)",
			       (int)req->pid);
	r = check_name("function", q->function, why, size);
	if (!r)
		r = check_name("alternative", q->alternative, why, size);
	if (r)
		return r;
	if (q->library[0] && (q->library[0] != '/' || !memchr(q->library, 0, sizeof(q->library))))
		return act_why(why, size, -EINVAL, "the patch library must be an absolute path");
	if (lib && (!q->dlopen_addr || !q->to_offset))
		return act_why(why, size, -EINVAL,
			       "a patch library needs the process's dlopen and the offset of '%s'",
			       q->alternative);
	if (!q->addr || (!q->to && !lib))
		return act_why(why, size, -EINVAL, "the address of '%s' is 0",
			       q->addr ? q->alternative : q->function);
	if (!q->size || q->size > ACT_PATCH_CODE_MAX)
		return act_why(why, size, -EINVAL,
			       "the size of '%s', %" PRIu64 ", must be between 1 and %u",
			       q->function, q->size, ACT_PATCH_CODE_MAX);
	if (q->addr + q->size < q->addr)
		return act_why(why, size, -EINVAL, "'%s' wraps around the address space",
			       q->function);
	if (q->to >= q->addr && q->to < q->addr + q->size)
		return act_why(why, size, -EINVAL, "the alternative '%s' is inside '%s'",
			       q->alternative, q->function);
	return 0;
}

int act_patch_read(const struct act_request *req, char *value, size_t size)
{
	struct act_patch_plan p;
	_cleanup_close_ int fd = -1;
	int r = act_patch_validate(req, NULL, 0);

	if (r)
		return r;
	fd = mem_open(req, req->pid_start, NULL, O_RDONLY, NULL, 0);
	if (fd < 0)
		return fd;
	r = load_and_plan(req, fd, &p, NULL, 0);
	if (r)
		return r;
	return act_hex_format(p.orig, p.len, value, size);
}

struct file_at {
	const char *path;
	uint64_t off, addr;
};

static int file_at_line(const struct act_map_line *l, void *arg)
{
	struct file_at *a = arg;

	if (l->perms[2] != 'x' || strcmp(l->path, a->path) || a->off < l->offset ||
	    a->off - l->offset >= l->end - l->start)
		return 0;
	a->addr = l->start + (a->off - l->offset);
	return 1;
}

/* The address where pid maps file offset off of the file path (canonical) executable: 0 or
 * -ENOENT, -ESRCH. */
static int file_offset_addr(pid_t pid, const char *path, uint64_t off, uint64_t *addr)
{
	struct file_at a = {.path = path, .off = off};
	int r = act_maps_each(pid, file_at_line, &a);

	if (r < 0)
		return r;
	if (!r)
		return -ENOENT;
	*addr = a.addr;
	return 0;
}

/* A patch library: loads it into the process unless it maps it already, and finds the
 * alternative in it. 0 with *to, a note in note; or -errno with why. */
static int library_place(const struct act_request *req, uint64_t *to, char *note, size_t nsize,
			 char *why, size_t size)
{
	const struct act_patch *q = &req->patch;
	char canon[PATH_MAX], iwhy[ACT_WHY_MAX];
	uint64_t handle = 0;
	int r;

	note[0] = '\0';
	if (!realpath(q->library, canon))
		return act_why(why, size, -errno, "patch library %s", q->library);
	r = file_offset_addr(req->pid, canon, q->to_offset, to);
	if (r != -ENOENT)
		return r ? act_why(why, size, r, "cannot read the maps of process %d",
				   (int)req->pid)
			 : 0;
	r = act_inject_dlopen(req->pid, q->dlopen_addr, canon, ACT_PATCH_LOAD_TIMEOUT_MS, &handle,
			      iwhy, sizeof(iwhy));
	if (r)
		return act_why(why, size, r, "cannot load the patch library %s into process %d: %s",
			       canon, (int)req->pid, iwhy);
	snprintf(note, nsize, "patch library %.200s loaded: %.200s", canon, iwhy);
	r = file_offset_addr(req->pid, canon, q->to_offset, to);
	if (r)
		return act_why(why, size, r == -ENOENT ? -ENOEXEC : r,
			       "%s is loaded in process %d, but not '%s' (offset 0x%" PRIx64
			       ") in an executable mapping of it",
			       canon, (int)req->pid, q->alternative, q->to_offset);
	return 0;
}

int act_patch_apply(const struct act_request *req0, struct act_result *res)
{
	struct act_request placed = *req0;
	const struct act_request *req = &placed;
	const struct act_patch *q = &placed.patch;
	struct act_patch_plan p;
	char why[ACT_WHY_MAX], note[ACT_WHY_MAX] = "";
	_cleanup_close_ int fd = -1;
	int r;

	fd = mem_open(req, req->pid_start, &res->pid_start, O_RDWR, res->why, sizeof(res->why));
	if (fd < 0)
		return fd;
	if (q->library[0] && !q->to) {
		r = library_place(req, &placed.patch.to, note, sizeof(note), res->why,
				  sizeof(res->why));
		if (r)
			return r;
		res->req.patch.to = placed.patch.to; /* the record names where it jumps */
	}
	r = load_and_plan(req, fd, &p, why, sizeof(why));
	if (r)
		return act_why(res->why, sizeof(res->why), r, "cannot patch '%s' of process %d: %s",
			       q->function, (int)req->pid, why);
	res->patch_at = p.at;
	res->patch_len = p.len;
	res->patch_layout = p.layout;
	memcpy(res->patch_orig, p.orig, p.len);
	memcpy(res->patch_new, p.bytes, p.len);
	act_hex_format(p.orig, p.len, res->before, sizeof(res->before));
	act_hex_format(p.bytes, p.len, res->after, sizeof(res->after));
	r = act_revert_command(req, res, res->before, res->revert_cmd, sizeof(res->revert_cmd));
	if (r)
		return act_why(res->why, sizeof(res->why), r, "cannot build the revert command");
	r = patch_swap(res, fd, p.orig, p.bytes, true);
	if (r == -EIO && strstr(res->why, "cannot restore"))
		res->applied = true; /* half written: the caller reverts */
	if (r)
		return r;
	res->applied = true;
	hs_strlcpy(res->why, note, sizeof(res->why)); /* a note, or "" */
	return 0;
}

/* Reads the bytes at patch_at into now and compares them with want: 0, -ESTALE or -errno. */
static int holds(const struct act_result *res, int fd, const uint8_t *want, uint8_t *now)
{
	int r = act_mem_read(fd, res->patch_at, now, res->patch_len);

	if (r)
		return r;
	return memcmp(now, want, res->patch_len) ? -ESTALE : 0;
}

int act_patch_verify(const struct act_request *req, const struct act_result *res)
{
	uint8_t now[ACT_PATCH_MAX];
	_cleanup_close_ int fd = -1;

	if (!res->applied)
		return -ENOTCONN;
	if (!res->patch_len || res->patch_len > ACT_PATCH_MAX)
		return -EINVAL;
	fd = mem_open(&res->req, res->pid_start, NULL, O_RDONLY, NULL, 0);
	if (fd < 0)
		return fd;
	return holds(res, fd, res->patch_new, now);
}

int act_patch_revert(struct act_result *res)
{
	uint8_t now[ACT_PATCH_MAX];
	char hex[2 * ACT_PATCH_MAX + 1];
	_cleanup_close_ int fd = -1;
	int r;

	if (!res->patch_len || res->patch_len > ACT_PATCH_MAX)
		return act_why(res->why, sizeof(res->why), -EINVAL, "no bytes to put back");
	fd = mem_open(&res->req, res->pid_start, NULL, O_RDWR, res->why, sizeof(res->why));
	if (fd < 0)
		return fd;
	r = holds(res, fd, res->patch_new, now);
	if (r == -ESTALE) {
		act_hex_format(now, res->patch_len, hex, sizeof(hex));
		return act_why(res->why, sizeof(res->why), r,
			       "the bytes at 0x%" PRIx64 " are %s, not %s: changed by someone else "
			       "since homeostat wrote them, left alone",
			       res->patch_at, hex, res->after);
	}
	if (r)
		return act_why(res->why, sizeof(res->why), r, "cannot read /proc/%d/mem",
			       (int)res->req.pid);
	r = patch_swap(res, fd, res->patch_new, res->patch_orig, false);
	if (r)
		return r;
	res->reverted = true;
	res->why[0] = '\0';
	return 0;
}
