/* actuate.h - the only code that changes the host: rlimit, sysctl, cgroup, nice, signal,
 * restart, file, text patch. Each actuator reads, applies, verifies and reverts.
 *
 * Why: every change homeostat makes goes through this one narrow, typed interface, so that it
 * can be audited in one place and later move into a separate privileged process (privilege
 * separation, OpenNTPD style). struct act_request and struct act_result are therefore flat:
 * no pointers, only fixed-size fields (and, for a running restart, a pidfd), so that they can
 * be copied through a socket or a file as they are.
 *
 * Contract:
 * - act_validate() checks a request exactly before anything is read: names, ranges, paths
 *   (sysctl names [a-z0-9_.-]+, no component starting with - or empty, cgroup paths under
 * /sys/fs/cgroup without "." or ".." components, cgroup files from a fixed table with their value
 * syntax). Every other function validates again; a bad request is -EINVAL and nothing is touched.
 * - act_apply() reads the value before, writes, reads the value back: result->before and
 *   result->after are what the kernel held, as text, and result->revert_cmd is the shell
 *   command a human would type to undo it. When the kernel adjusted the value (cpu.shares 1
 *   becomes 2), apply still returns 0 and says so in result->why.
 * - act_verify() is 0 when the host still holds result->after, -ESTALE when not.
 * - act_revert() writes result->before back, but only if the host still holds result->after:
 *   if someone (an admin) changed the value meanwhile, it returns -ESTALE, changes nothing
 *   and says in result->why what it found. Signals and restarts cannot be reverted:
 *   -EOPNOTSUPP, with the reason in result->why.
 * - Process identity: apply records the start time of req.pid (and, for a sysctl in a
 *   network namespace, the namespace's inode); verify and revert refuse with -ESRCH when the
 *   pid now names another process or the namespace is gone.
 * - Library code: nothing is logged above debug; the caller logs every change at NOTICE with
 *   before -> after and revert_cmd, and records them in agent/memory/ (the kinds match
 *   enum mem_kind one for one).
 *
 * Choices (see actuate.c for details):
 * - nice: setpriority(PRIO_PROCESS) on every thread in /proc/PID/task (on Linux a nice value
 *   belongs to a thread); before is the main thread's value, and revert sets every thread
 *   back to it. Verify checks every thread. With idle, every thread moves to SCHED_IDLE
 *   (value "idle"); a number moves a SCHED_IDLE thread back to SCHED_OTHER.
 * - sysctl in a network namespace (net.* only): a short-lived child process enters the
 *   namespace with setns() and reads or writes one /proc/sys file, so the daemon's own
 *   namespace never changes; the child is killed after 2 s.
 * - restart: the command runs as /bin/sh -c COMMAND, in its own session, with stdin, stdout
 *   and stderr on /dev/null, a clean environment, no inherited descriptors. act_apply()
 *   starts it and returns at once with result->pidfd, which the caller polls (epoll: readable
 *   when the command exits) and then calls act_poll(); act_poll() kills the command's process
 *   group with SIGKILL once its timeout has passed. act_result_release() frees it.
 * - patch: every thread of the process is stopped with ptrace for the write (microseconds to
 *   a millisecond), no thread may be inside the bytes replaced; before and after are those
 *   bytes in hex, and revert_cmd a dd into /proc/PID/mem. Nothing is ever unmapped.
 * - patch libraries (inject.c, outside the act_request table: nothing to read or revert): one
 *   thread of the process calls dlopen() under ptrace while the others run on; the library
 *   stays loaded for good.
 */
#ifndef HS_ACTUATE_H
#define HS_ACTUATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#define ACT_NAME_MAX	128  /* sysctl names */
#define ACT_VALUE_MAX	256  /* values as text, before and after */
#define ACT_PATH_MAX	512  /* cgroup directories, namespace paths */
#define ACT_FILE_MAX	64   /* cgroup file names */
#define ACT_CMD_MAX	1024 /* restart commands */
#define ACT_REVERT_MAX	1536 /* revert commands */
#define ACT_WHY_MAX	512  /* reasons and notes */
#define ACT_CGROUP_ROOT "/sys/fs/cgroup"

#define ACT_RESTART_TIMEOUT_MS	   10000 /* when the request says 0 */
#define ACT_RESTART_TIMEOUT_MAX_MS 120000
#define ACT_NETNS_TIMEOUT_MS	   2000 /* the setns child of a namespaced sysctl */

/* The same kinds, in the same order, as enum mem_kind (actuate.c asserts it). */
enum act_kind {
	ACT_KIND_RLIMIT,
	ACT_KIND_SYSCTL,
	ACT_KIND_CGROUP,
	ACT_KIND_NICE,
	ACT_KIND_SIGNAL,
	ACT_KIND_RESTART,
	ACT_KIND_PATCH, /* redirect a function of a running process to an alternative (patch.c) */
	ACT_KIND_FILE,	/* an application knob: one value in a file of its own (files.c) */
	ACT_KIND_COUNT,
};

/* Set a resource limit of a running process with prlimit(2). The soft limit must not exceed
 * the hard limit (the new one if set_hard, else the current one). The hard limit changes only
 * when set_hard asks for it; raising it needs CAP_SYS_RESOURCE. */
struct act_rlimit {
	int resource; /* RLIMIT_NOFILE, ... (act_rlimit_name() gives prlimit's option name) */
	rlim_t soft;  /* RLIM_INFINITY for unlimited */
	bool set_hard;
	rlim_t hard;
};

struct act_nice {
	int value; /* -20..19 */
	bool idle; /* SCHED_IDLE instead (value "idle"); value is then unused */
};

/* Write one cgroup interface file. path is absolute under /sys/fs/cgroup or relative to it;
 * file is one of the table in actuate.c, which also says whether it is a v1 or a v2 file and
 * what values it takes. */
struct act_cgroup {
	char path[ACT_PATH_MAX];
	char file[ACT_FILE_MAX];
	char value[ACT_VALUE_MAX];
};

/* Write /proc/sys/NAME. For net.* names only, the value may be set in another network
 * namespace: that of netns_pid (when > 0), or the namespace file netns_path
 * (/run/netns/NAME or /var/run/netns/NAME, as `ip netns add` makes). Never both. */
struct act_sysctl {
	char name[ACT_NAME_MAX];
	char value[ACT_VALUE_MAX]; /* blanks separate several numbers: "4096 131072 6291456" */
	pid_t netns_pid;
	char netns_path[ACT_PATH_MAX];
};

/* Write one value as the only line of an existing regular file (an application's knob).
 * path is absolute, not under /proc, /sys or /dev; the file is replaced atomically. */
struct act_file {
	char path[ACT_PATH_MAX];
	char value[ACT_VALUE_MAX];
};

struct act_signal {
	int signo; /* 1..SIGRTMAX; the process must be > 1 */
};

struct act_restart {
	char command[ACT_CMD_MAX]; /* run with /bin/sh -c */
	unsigned timeout_ms; /* 0: ACT_RESTART_TIMEOUT_MS; at most ACT_RESTART_TIMEOUT_MAX_MS */
};

/* Redirect a function of a running process to an alternative in the same address space by
 * replacing whole instructions at its entry with a jump (patch.c, mechanism b of issue 6):
 * every thread stopped with ptrace, no thread inside the bytes replaced, written through
 * /proc/PID/mem, read back, resumed. Functions built with -fpatchable-function-entry=N,M
 * (M >= 5 NOPs before the entry, 2 at it) get the libpulp-style layout: the jump goes into
 * the NOPs before the entry and a 2-byte short jump at the entry reaches it. */
#define ACT_PATCH_MAX		  32	      /* bytes replaced at most */
#define ACT_PATCH_CODE_MAX	  (64u << 10) /* a function's bytes checked for branches, at most */
#define ACT_PATCH_PRE_MAX	  16	      /* bytes before the entry looked at for the layout */
#define ACT_PATCH_TRIES		  20   /* stops while a thread is inside the bytes, then -EBUSY */
#define ACT_PATCH_LOAD_TIMEOUT_MS 5000 /* a patch library's dlopen() in the process, at most */
struct act_patch {
	uint64_t addr; /* the function's entry in req.pid's address space */
	uint64_t to;   /* the alternative's entry, in the same address space */
	uint64_t size; /* the function's size (ELF st_size); branches into the replaced bytes
			* are looked for in [addr, addr + size). 0: unknown, refused */
	char function[ACT_NAME_MAX];	/* names, for messages and records: "hot_fn" */
	char alternative[ACT_NAME_MAX]; /* "hot_fn__alt_fast" */
	/* Optional: the alternative lives in a patch library (issue 6, item 3). With library
	 * set (an absolute path) and to 0, the apply first loads the library into the process
	 * unless it maps it already (act_inject_dlopen() through dlopen_addr, the process's
	 * dlopen), then finds the alternative at to_offset, its offset in the file, through the
	 * process's executable mapping of it, and patches as above. The library stays loaded
	 * after a revert (code a thread may still run is never unmapped). */
	char library[ACT_PATH_MAX];
	uint64_t dlopen_addr;
	uint64_t to_offset;
};

struct act_request {
	enum act_kind kind;
	/* RLIMIT, NICE, SIGNAL, PATCH: the process (> 0; > 1 for SIGNAL and PATCH). RESTART:
	 * optionally the process being replaced (0: none), only reported. SYSCTL, CGROUP,
	 * FILE: must be 0. */
	pid_t pid;
	/* Optional: the start time of pid (field 22 of /proc/PID/stat); when not 0 the action
	 * is refused with -ESRCH unless pid still has it. */
	unsigned long long pid_start;
	struct act_rlimit rlimit;
	struct act_nice nice;
	struct act_cgroup cgroup;
	struct act_sysctl sysctl;
	struct act_signal signal;
	struct act_restart restart;
	struct act_file file;
	struct act_patch patch; /* PATCH: pid > 1 is the process */
};

struct act_result {
	struct act_request req; /* a copy: revert needs nothing else */
	bool applied;		/* apply succeeded (for RESTART: the command was started) */
	bool reverted;		/* revert succeeded; a second revert is -EALREADY */
	bool adjusted;		/* the kernel holds another value than the one asked for */
	char before[ACT_VALUE_MAX];
	char after[ACT_VALUE_MAX];
	char revert_cmd[ACT_REVERT_MAX]; /* "" when the kind is not revertible */
	char why[ACT_WHY_MAX];		 /* the reason of the last failure, or a note; "" if none */
	/* typed state */
	unsigned long long pid_start;		 /* of req.pid at apply, 0 if no process */
	int nthreads;				 /* NICE: threads reniced */
	unsigned long long netns_dev, netns_ino; /* SYSCTL in a namespace: which one */
	/* RESTART */
	pid_t child;	     /* the /bin/sh process, also its process group and session */
	int pidfd;	     /* -1 when none (every other kind, or reaped) */
	int64_t deadline;    /* CLOCK_MONOTONIC ms after which act_poll() kills the command */
	int exit_status;     /* wait status once done */
	int restart_rc;	     /* act_poll()'s answer once done: 0, -EIO, -ETIMEDOUT */
	bool restart_done;   /* reaped */
	bool restart_killed; /* past its deadline: SIGKILL sent to its process group */
	/* PATCH: before and after are the replaced bytes in hex ("f30f1efa55...") */
	uint64_t patch_at;		   /* first byte written: addr, or before it (layout) */
	unsigned patch_len;		   /* bytes written, at most ACT_PATCH_MAX */
	uint8_t patch_orig[ACT_PATCH_MAX]; /* what was there */
	uint8_t patch_new[ACT_PATCH_MAX];  /* what was written */
	bool patch_layout;		   /* the -fpatchable-function-entry layout was used */
	unsigned patch_threads;		   /* threads stopped for the last apply or revert */
	uint64_t patch_pause_ns;	   /* how long they were stopped (the last stop) */
	unsigned patch_retries;		   /* stops given up because a thread was inside */
};

/* One row of the actuator table (bpftune style: what it changes and why it exists). */
struct act_desc {
	enum act_kind kind;
	const char *name; /* "rlimit", ... as mem_kind_name() */
	const char *why;
	bool revertible;
	const char *not_revertible; /* why not, when !revertible */
	int (*validate)(const struct act_request *req, char *why, size_t size);
	int (*read)(const struct act_request *req, char *value, size_t size);
	int (*apply)(const struct act_request *req, struct act_result *res);
	int (*verify)(const struct act_request *req, const struct act_result *res);
	int (*revert)(struct act_result *res);
};

/* Is pid still the process that had start time start (field 22 of /proc/PID/stat), and not a
 * zombie? */
bool act_same_process(pid_t pid, unsigned long long start);
/* How the process pid (with start time start) ended, while it is a zombie nobody reaped yet:
 * its wait status (field 52 of /proc/PID/stat); -EAGAIN while it runs, -ESRCH once gone. */
int act_pid_exit_status(pid_t pid, unsigned long long start);
/* The start time and the comm (may be NULL) of pid. 0, -ESRCH or -errno. */
int act_pid_identity(pid_t pid, unsigned long long *start, char *comm, size_t size);

/* The table row of kind, or NULL when out of range. */
const struct act_desc *act_desc(enum act_kind kind);
/* "rlimit", "sysctl", "cgroup", "nice", "signal", "restart", "patch"; NULL out of range. */
const char *act_kind_name(enum act_kind kind);
/* The kind named name, or -EINVAL. */
int act_kind_from_name(const char *name);
/* prlimit's option name of an RLIMIT_* ("nofile"), NULL if not one; and back (-EINVAL). */
const char *act_rlimit_name(int resource);
int act_rlimit_from_name(const char *name);

/* Initialises a request of kind (everything else zero). */
void act_request_init(struct act_request *req, enum act_kind kind);

/* 0, or -EINVAL with the reason in why (e.g. "sysctl name 'a..b' has an empty component").
 * Only the syntax: paths are resolved by read and apply (-EXDEV when a cgroup path resolves
 * outside /sys/fs/cgroup or not on a cgroup file system). */
int act_validate(const struct act_request *req, char *why, size_t size);
/* The current value as text, the way before and after are written; nothing changes.
 * PATCH: the bytes apply would replace, in hex (the plan's refusal when it would refuse).
 * -EOPNOTSUPP for SIGNAL and RESTART. */
int act_read(const struct act_request *req, char *value, size_t size);
/* The value apply would write given the value before (as act_read() gives it), without
 * touching anything: what a dry run reports and what memory fingerprints. -EOPNOTSUPP for
 * SIGNAL, RESTART and PATCH; -EINVAL with why when impossible (above the hard limit). */
int act_want(const struct act_request *req, const char *before, char *value, size_t size, char *why,
	     size_t whysize);
/* Applies req; res is always initialised (pidfd -1) and holds the reason of a failure. When
 * it fails after the write (res->applied is true), res->after is what was written and the
 * caller should act_revert().
 * 0, -EINVAL (with why), -ESRCH (no such process), -EPERM/-EACCES, -EXDEV (cgroup path
 * escapes), -ENOENT (no such sysctl or cgroup file), or what the kernel said. */
int act_apply(const struct act_request *req, struct act_result *res);
/* 0 when the host holds res->after; -ESTALE when it does not; -ESRCH when the process or
 * namespace is gone. RESTART: act_poll()'s answer; SIGNAL: 0 once it was sent. */
int act_verify(const struct act_request *req, const struct act_result *res);
/* Puts res->before back. -ESTALE (nothing written, res->why says what the host holds) when
 * the host no longer holds res->after; -EOPNOTSUPP for kinds that cannot be reverted;
 * -EALREADY when already reverted; -ENOTCONN when res was never applied. */
int act_revert(struct act_result *res);
/* RESTART: 0 when the command exited 0, -EINPROGRESS while it runs, -EIO when it failed
 * (why says how), -ETIMEDOUT when it was killed at its deadline. Other kinds: 0. */
int act_poll(struct act_result *res);
/* Closes res->pidfd; a restart still running is killed (its process group) and reaped. */
void act_result_release(struct act_result *res);

/* The command that sets value back, as a human would type it, for req (res gives the thread
 * count of NICE; may be NULL). 0 or -ENAMETOOLONG / -EOPNOTSUPP. */
int act_revert_command(const struct act_request *req, const struct act_result *res,
		       const char *value, char *buf, size_t size);

/* ---- text patches (patch.c) ---- */

/* What act_patch_plan() decided: the bytes [at, at + len) of the process are replaced by
 * bytes[0..len). orig is what the caller's buffers hold there. */
struct act_patch_plan {
	uint64_t at;
	unsigned len;
	uint8_t orig[ACT_PATCH_MAX];
	uint8_t bytes[ACT_PATCH_MAX];
	bool layout;   /* -fpatchable-function-entry: jump before the entry, short jump at it */
	bool absolute; /* ff 25 00000000 <abs64> (14 bytes) instead of e9 <rel32> (5 bytes) */
	unsigned skip; /* a leading endbr64 kept as it is: 4, else 0 */
};

/* Plans the entry patch of the function at addr (code: its first n bytes, n its ELF size or
 * ACT_PATCH_CODE_MAX if less) to jump to `to`; pre: the npre bytes just before addr (0 when
 * unknown). Pure: decodes with capstone, touches nothing.
 * - A leading endbr64 stays; the jump follows it.
 * - Layout: when the entry (after endbr64) holds a 2-byte NOP (66 90, or 90 90) and pre ends
 *   with at least as many 0x90 as the jump needs, the jump goes there and the entry gets
 *   `eb XX` back to it.
 * - Else whole instructions covering the jump are replaced; the rest of the last one is
 *   filled with int3 (0xcc), so that anything that ever lands there traps at once instead of
 *   sliding into the next instruction.
 * Refusals, with the instruction and its offset in why: -EOPNOTSUPP (shorter than the jump,
 * an undecodable instruction, a branch, call, ret, int or syscall, or a RIP-relative operand
 * in the bytes replaced, a branch of the function into them), -EALREADY (the entry already
 * holds a jump), -EINVAL (no code, addr or to 0, addr == to). */
int act_patch_plan(const uint8_t *code, size_t n, uint64_t addr, uint64_t to, const uint8_t *pre,
		   size_t npre, struct act_patch_plan *out, char *why, size_t size);
/* n bytes as lowercase hex, "f30f1efa"; -ENAMETOOLONG when buf is too small. */
int act_hex_format(const uint8_t *b, size_t n, char *buf, size_t size);
/* Hex (either case, even length, nothing else) into b; *n its length. -EINVAL, -E2BIG. */
int act_hex_parse(const char *s, uint8_t *b, size_t max, size_t *n);

/* The actuator state of an applied change (request, process and namespace identity, thread
 * count, bytes of a patch) as one line, "v=1 kind=rlimit pid=42 start=123 resource=nofile
 * soft=2048", for the memory's changes.act column. 0, -ENAMETOOLONG, -EINVAL. */
int act_spec_format(const struct act_result *res, char *buf, size_t size);
/* Rebuilds res from such a line and the stored before and after values: applied, pidfd -1,
 * revert_cmd set, ready for act_verify() or act_revert(). -EPROTO (another version),
 * -EINVAL with why (malformed, unknown key, request refused by act_validate()). */
int act_spec_parse(const char *spec, const char *before, const char *after, struct act_result *res,
		   char *why, size_t whysize);

/* ---- patch libraries (inject.c) ---- */

#define ACT_INJECT_PATH_MAX	  4096 /* PATH_MAX: the path and its NUL */
#define ACT_INJECT_TIMEOUT_MS	  5000 /* when the caller says 0 */
#define ACT_INJECT_TIMEOUT_MAX_MS 60000

/*
 * Loads the shared library at path into the running process pid with a call of dlopen(path,
 * RTLD_NOW | RTLD_NODELETE) made by one of its threads under ptrace, while its other threads
 * run on; that thread's registers, FP/SIMD state and stack are then put back as they were,
 * and a system call it was stopped in restarts as after any signal (inject.c tells how).
 * dlopen_addr is dlopen's address in the process (glibc >= 2.34 exports it from libc.so.6:
 * obs_sym_find(sym, pid, "libc.so.6", "dlopen", &a)). pid may name one of the process's
 * threads (a tid): that thread is then asked first. timeout_ms: 0 for ACT_INJECT_TIMEOUT_MS,
 * at most ACT_INJECT_TIMEOUT_MAX_MS.
 *
 * The library runs with the process's privileges: path must be absolute (shorter than
 * ACT_INJECT_PATH_MAX), name a regular ELF file owned by root and not writable by group or
 * others, in directories owned by root and not writable by group or others (or sticky, like
 * /tmp), and the process must see the same file (same mount namespace and root). Symbolic
 * links are resolved; dlopen() gets the resolved path.
 *
 * Not revertible: the library is never unloaded (RTLD_NODELETE), since a thread may still be
 * running its code; a second call for a file the process already maps does nothing.
 *
 * 0 with *handle the handle dlopen() returned, and a note in why ("loaded by thread 42 (in
 * system call 0), away 812 us, dlopen 640 us"); 0 with *handle 0 and why "already loaded"
 * when the process already maps that file. Failures, nothing loaded unless said, the reason
 * in why: -EINVAL (arguments, not a regular file, dlopen_addr not in executable memory of
 * the process), -ENOENT, -EPERM (owner or mode of the file or a directory), -ENOEXEC (not
 * ELF), -ESRCH (no such process, or it exited meanwhile), -EXDEV (another mount
 * namespace or root), -EAGAIN (the process is stopped), -EOPNOTSUPP (shadow stacks),
 * -EBUSY (no thread stopped at a safe point, see inject.c), -ELIBBAD (dlopen() returned
 * NULL: why holds dlerror()'s message when known), and, the call abandoned and the thread
 * restored, the process possibly left with its loader locked: -ETIMEDOUT, -EFAULT (a fault
 * in the call). Never logs.
 */
int act_inject_dlopen(pid_t pid, uint64_t dlopen_addr, const char *path, unsigned timeout_ms,
		      uint64_t *handle, char *why, size_t size);

#endif
