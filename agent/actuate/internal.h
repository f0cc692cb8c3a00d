/* internal.h - what the files of agent/actuate/ share: the per-kind value operations behind the
 * generic apply / verify / revert of actuate.c, the process-identity helpers and text helpers.
 *
 * A "value" actuator (rlimit, sysctl, cgroup, nice) is four functions on text: read the
 * current value, compute the wanted value from the request and the value before, write a
 * value, and (optionally) check that the host holds a value everywhere it should (every
 * thread for nice). actuate.c builds apply, verify and revert from them once, so that the
 * order (read before, write, read back) and the admin-change check (-ESTALE) are the same for
 * every kind. Values are normalised: blanks collapsed to one space, none at either end.
 */
#ifndef HS_ACT_INTERNAL_H
#define HS_ACT_INTERNAL_H

#include "actuate/actuate.h"
#include "lib/util.h"

struct act_value_ops {
	/* Current value into value (normalised). When res is given and holds a namespace
	 * identity (set by write), the value is read only from that namespace (-ESRCH). */
	int (*read)(const struct act_request *req, const struct act_result *res, char *value,
		    size_t size);
	/* The value to write given the value before; -EINVAL with why when impossible. */
	int (*want)(const struct act_request *req, const char *before, char *value, size_t size,
		    char *why, size_t whysize);
	/* Writes value. With res: insists on res's namespace identity when it holds one, else
	 * records it; records the thread count of nice. */
	int (*write)(const struct act_request *req, struct act_result *res, const char *value);
	/* Optional: 0 when the host holds value everywhere, -ESTALE with why when not. */
	int (*holds)(const struct act_request *req, const struct act_result *res, const char *value,
		     char *why, size_t whysize);
};

extern const struct act_value_ops act_rlimit_ops, act_nice_ops, act_sysctl_ops, act_cgroup_ops,
    act_file_ops;

/* files.c */
int act_file_validate(const struct act_request *req, char *why, size_t size);

/* process.c */
int act_pid_start(pid_t pid, unsigned long long *start);
int act_pid_state(pid_t pid, char *state);
int act_signal_apply(const struct act_request *req, struct act_result *res);
int act_restart_apply(const struct act_request *req, struct act_result *res);
int act_restart_poll(struct act_result *res);
void act_restart_release(struct act_result *res);
int act_rlimit_validate(const struct act_request *req, char *why, size_t size);

/* patch.c */
int act_patch_validate(const struct act_request *req, char *why, size_t size);
int act_patch_read(const struct act_request *req, char *value, size_t size);
int act_patch_apply(const struct act_request *req, struct act_result *res);
int act_patch_verify(const struct act_request *req, const struct act_result *res);
int act_patch_revert(struct act_result *res);
/* n bytes at address at of the process whose /proc/PID/mem is fd: 0, -ESRCH, -EIO (short), or
 * -errno. A write of 0 bytes is 0. */
int act_mem_read(int fd, uint64_t at, void *buf, size_t n);
int act_mem_write(int fd, uint64_t at, const void *buf, size_t n);
/* The state letter of a thread ('?' when unreadable, 'X' when gone). */
char act_thread_state(pid_t pid, pid_t tid);

/* One line of /proc/PID/maps. */
struct act_map_line {
	uint64_t start, end, offset;
	char perms[5];
	unsigned maj, min;
	uint64_t ino;
	const char *path; /* "" for anonymous memory */
};
/* process.c: calls fn for every line of /proc/PID/maps until it returns non-zero, which is
 * returned; -ESRCH when there is no such process. */
int act_maps_each(pid_t pid, int (*fn)(const struct act_map_line *, void *), void *arg);

/* inject.c: act_inject_dlopen() with what the tools and tests look at. */
struct act_inject_info {
	/* in: dlerror() in the process; when not 0 and dlopen() returns NULL, it is called
	 * in the same thread before it is restored, and its message goes into why */
	uint64_t dlerror_addr;
	/* out */
	pid_t tid;	  /* the thread that made the call, 0 if none */
	long syscall;	  /* the system call it was stopped in, -1 when in user code */
	unsigned stops;	  /* threads stopped while looking for a safe one (tid included) */
	unsigned signals; /* signals that arrived meanwhile, handed back at the end */
	uint64_t away_ns; /* tid stopped or running our call: interrupt to detach */
	uint64_t stop_ns; /* of that, interrupt to its stop (it needs a CPU to get there) */
	uint64_t call_ns; /* of that, dlopen() itself (and dlerror() when called) */
	char canonical[ACT_INJECT_PATH_MAX]; /* the path dlopen() was given */
};
int act_inject_dlopen_info(pid_t pid, uint64_t dlopen_addr, const char *path, unsigned timeout_ms,
			   uint64_t *handle, struct act_inject_info *info, char *why, size_t size);

/* The call frame written below a thread's stack pointer rsp for a string of len bytes (its
 * NUL included): the bytes [lo, hi) are saved and overwritten, hi = rsp - 128 (the red zone
 * stays), the string at str (16-aligned), the return address 0 at sp = str - 8, so that sp + 8
 * is 16-aligned at the callee's entry as after a call. -EFAULT when rsp is too low. */
struct act_inject_frame {
	uint64_t lo, hi, str, sp;
};
int act_inject_frame(uint64_t rsp, size_t len, struct act_inject_frame *f);
/* Why a thread stopped in system call nr is no place to call dlopen() from, or NULL. */
const char *act_inject_syscall_refusal(long nr);

/* knobs.c */
int act_sysctl_validate(const struct act_request *req, char *why, size_t size);
int act_cgroup_validate(const struct act_request *req, char *why, size_t size);
/* Absolute cgroup directory of req (not resolved) into buf. */
int act_cgroup_dir(const struct act_request *req, char *buf, size_t size);

/* actuate.c */
/* Copies s into buf with blanks collapsed and trimmed; -E2BIG when it does not fit. */
int act_normalise(const char *s, char *buf, size_t size);
/* snprintf into why (may be NULL); returns err. */
int act_why(char *why, size_t size, int err, const char *fmt, ...) HS_PRINTF(4, 5);
/* Parses a decimal long long exactly (optional '-'), no blanks; -EINVAL or -ERANGE. */
int act_parse_ll(const char *s, long long *out);
/* Is the NUL within the n bytes of s? */
bool act_terminated(const char *s, size_t n);

#endif
