/* process.c - the actuators that act on one process: rlimit (prlimit(2)), nice (setpriority(2)
 * on every thread), signal (pidfd_send_signal(2)) and restart (a command, run asynchronously
 * with a timeout).
 *
 * Why each choice:
 * - rlimit: prlimit(2) changes a running process's limits without its cooperation; soft and
 *   hard are set together, so a limit is never half changed. Values are "soft:hard" with
 *   "unlimited", as prlimit(1) writes and reads them.
 * - nice: on Linux a nice value belongs to a thread, and setpriority(PRIO_PROCESS, pid)
 *   changes only the thread pid. We set every thread listed in /proc/PID/task (threads born
 *   later inherit from their creator, so they get the new value too). If one thread refuses,
 *   the threads already changed are set back and the error returned: never half reniced.
 *   The value before is the main thread's; revert sets every thread back to it.
 *   With idle, the threads move to SCHED_IDLE instead (value "idle"): a waking thread of any
 *   other policy preempts them at once, where a nice-19 thread under EEVDF may still finish
 *   its slice first (milliseconds of wakeup delay for the service). Writing a number moves a
 *   SCHED_IDLE thread back to SCHED_OTHER before setting its nice value.
 * - signal: sent through a pidfd opened between two reads of the process's start time, so a
 *   recycled pid can never receive it.
 * - restart: /bin/sh -c COMMAND (the policy's restart line is a shell command), in its own
 *   session with a clean environment, /dev/null for stdio, no inherited descriptors, default
 *   signal dispositions and an empty signal mask (the daemon blocks signals for signalfd and
 *   exec would keep the mask). Never waited for: the caller polls result->pidfd and calls
 *   act_poll(), which reaps it, and kills its process group past the deadline.
 */
#include <dirent.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "actuate/internal.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

/* ---- process identity ---- */

static int read_stat(pid_t pid, char *buf, size_t size, const char **rest)
{
	char path[64];
	_cleanup_close_ int fd = -1;
	ssize_t n;
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	n = read(fd, buf, size - 1);
	if (n < 0)
		return errno == ESRCH ? -ESRCH : -errno;
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* comm may hold anything, ')' included */
	if (!p || p[1] != ' ')
		return -EIO;
	*rest = p + 2; /* field 3, the state */
	return 0;
}

int act_pid_start(pid_t pid, unsigned long long *start)
{
	char buf[1024];
	const char *p;
	int r;

	if (pid <= 0)
		return -ESRCH;
	r = read_stat(pid, buf, sizeof(buf), &p);
	if (r)
		return r;
	/* field 22, starttime: 19 fields after the state */
	for (int i = 0; i < 19; i++) {
		p = strchr(p, ' ');
		if (!p)
			return -EIO;
		p++;
	}
	if (sscanf(p, "%llu", start) != 1)
		return -EIO;
	return 0;
}

int act_pid_state(pid_t pid, char *state)
{
	char buf[1024];
	const char *p;
	int r;

	r = read_stat(pid, buf, sizeof(buf), &p);
	if (r)
		return r;
	*state = *p;
	return 0;
}

bool act_same_process(pid_t pid, unsigned long long start)
{
	unsigned long long now;
	char state;

	return act_pid_start(pid, &now) == 0 && now == start && act_pid_state(pid, &state) == 0 &&
	       state != 'Z' && state != 'X' && state != 'x';
}

int act_pid_exit_status(pid_t pid, unsigned long long start)
{
	unsigned long long now;
	char buf[1024], state;
	const char *p;
	int status;

	if (act_pid_start(pid, &now) || now != start || read_stat(pid, buf, sizeof(buf), &p))
		return -ESRCH;
	state = *p;
	if (state != 'Z' && state != 'X' && state != 'x')
		return -EAGAIN;
	/* field 52, exit_code: 49 fields after the state */
	for (int i = 0; i < 49; i++) {
		p = strchr(p, ' ');
		if (!p)
			return -ESRCH;
		p++;
	}
	if (sscanf(p, "%d", &status) != 1 || status < 0)
		return -ESRCH;
	return status;
}

int act_pid_identity(pid_t pid, unsigned long long *start, char *comm, size_t size)
{
	char path[64];
	ssize_t n;
	int fd, r;

	r = act_pid_start(pid, start);
	if (r || !comm || !size)
		return r;
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno == -ENOENT ? -ESRCH : -errno;
	n = read(fd, comm, size - 1);
	close(fd);
	if (n < 0)
		return -EIO;
	comm[n] = '\0';
	comm[strcspn(comm, "\n")] = '\0';
	return 0;
}

/* ---- rlimit ---- */

static const struct {
	int resource;
	const char *name; /* prlimit(1)'s option */
	const char *why;
} rlimits[] = {
    {RLIMIT_AS, "as", "address space: mmap fails beyond it"},
    {RLIMIT_CORE, "core", "core file size: 0 loses the post-mortem"},
    {RLIMIT_CPU, "cpu", "CPU seconds before SIGXCPU"},
    {RLIMIT_DATA, "data", "data segment and private mappings"},
    {RLIMIT_FSIZE, "fsize", "largest file it may write (SIGXFSZ)"},
    {RLIMIT_LOCKS, "locks", "file locks"},
    {RLIMIT_MEMLOCK, "memlock", "locked memory (mlock, io_uring, BPF maps on old kernels)"},
    {RLIMIT_MSGQUEUE, "msgqueue", "POSIX message queue bytes"},
    {RLIMIT_NICE, "nice", "lowest nice value it may set itself"},
    {RLIMIT_NOFILE, "nofile", "open file descriptors: EMFILE beyond it"},
    {RLIMIT_NPROC, "nproc", "processes of its user: EAGAIN from fork beyond it"},
    {RLIMIT_RSS, "rss", "ignored by Linux"},
    {RLIMIT_RTPRIO, "rtprio", "highest real-time priority"},
    {RLIMIT_RTTIME, "rttime", "real-time CPU microseconds without a blocking call"},
    {RLIMIT_SIGPENDING, "sigpending", "queued signals"},
    {RLIMIT_STACK, "stack", "main thread stack size"},
};

const char *act_rlimit_name(int resource)
{
	for (size_t i = 0; i < ARRAY_SIZE(rlimits); i++)
		if (rlimits[i].resource == resource)
			return rlimits[i].name;
	return NULL;
}

int act_rlimit_from_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(rlimits); i++)
		if (streq(rlimits[i].name, name))
			return rlimits[i].resource;
	return -EINVAL;
}

static void rlim_text(rlim_t v, char *buf, size_t size)
{
	if (v == RLIM_INFINITY)
		snprintf(buf, size, "unlimited");
	else
		snprintf(buf, size, "%llu", (unsigned long long)v);
}

static int rlim_parse(const char *s, size_t len, rlim_t *out)
{
	unsigned long long v = 0;

	if (len == 9 && !strncmp(s, "unlimited", 9)) {
		*out = RLIM_INFINITY;
		return 0;
	}
	if (len == 0 || len > 20)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		if (v > (~0ULL - (unsigned)(s[i] - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = (rlim_t)v;
	return 0;
}

/* "soft:hard" */
static int rlimit_parse_pair(const char *s, struct rlimit *rl)
{
	const char *colon = strchr(s, ':');
	int r;

	if (!colon)
		return -EINVAL;
	r = rlim_parse(s, (size_t)(colon - s), &rl->rlim_cur);
	if (!r)
		r = rlim_parse(colon + 1, strlen(colon + 1), &rl->rlim_max);
	return r;
}

static void rlimit_text_pair(const struct rlimit *rl, char *buf, size_t size)
{
	char soft[24], hard[24];

	rlim_text(rl->rlim_cur, soft, sizeof(soft));
	rlim_text(rl->rlim_max, hard, sizeof(hard));
	snprintf(buf, size, "%s:%s", soft, hard);
}

int act_rlimit_validate(const struct act_request *req, char *why, size_t size)
{
	char soft[24], hard[24];

	if (req->pid <= 0)
		return act_why(why, size, -EINVAL, "rlimit needs a process (pid > 0), not %d",
			       (int)req->pid);
	if (!act_rlimit_name(req->rlimit.resource))
		return act_why(why, size, -EINVAL, "unknown resource limit %d",
			       req->rlimit.resource);
	if (req->rlimit.set_hard && req->rlimit.soft > req->rlimit.hard) {
		rlim_text(req->rlimit.soft, soft, sizeof(soft));
		rlim_text(req->rlimit.hard, hard, sizeof(hard));
		return act_why(why, size, -EINVAL, "soft limit %s is above the hard limit %s", soft,
			       hard);
	}
	return 0;
}

static int rlimit_read(const struct act_request *req, const struct act_result *res, char *value,
		       size_t size)
{
	struct rlimit rl;

	if (prlimit(req->pid, req->rlimit.resource, NULL, &rl) < 0)
		return -errno;
	rlimit_text_pair(&rl, value, size);
	return 0;
}

static int rlimit_want(const struct act_request *req, const char *before, char *value, size_t size,
		       char *why, size_t whysize)
{
	struct rlimit rl;
	char soft[24], hard[24];

	if (rlimit_parse_pair(before, &rl))
		return act_why(why, whysize, -EIO, "cannot parse the limit before '%s'", before);
	rl.rlim_cur = req->rlimit.soft;
	if (req->rlimit.set_hard)
		rl.rlim_max = req->rlimit.hard;
	if (rl.rlim_cur > rl.rlim_max) {
		rlim_text(rl.rlim_cur, soft, sizeof(soft));
		rlim_text(rl.rlim_max, hard, sizeof(hard));
		return act_why(why, whysize, -EINVAL,
			       "soft limit %s is above the hard limit %s (raising the hard limit "
			       "was not asked)",
			       soft, hard);
	}
	rlimit_text_pair(&rl, value, size);
	return 0;
}

static int rlimit_write(const struct act_request *req, struct act_result *res, const char *value)
{
	struct rlimit rl;

	if (rlimit_parse_pair(value, &rl) || rl.rlim_cur > rl.rlim_max)
		return -EINVAL;
	if (prlimit(req->pid, req->rlimit.resource, &rl, NULL) < 0)
		return -errno;
	return 0;
}

const struct act_value_ops act_rlimit_ops = {
    .read = rlimit_read,
    .want = rlimit_want,
    .write = rlimit_write,
};

/* ---- nice ---- */

/* The thread ids of pid into a malloc'd array. */
static int list_threads(pid_t pid, pid_t **out, size_t *n)
{
	char path[64];
	DIR *d;
	struct dirent *e;
	pid_t *v = NULL, *nv;
	size_t cap = 0, len = 0;
	long long tid;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? -ESRCH : -errno;
	while ((e = readdir(d))) {
		if (act_parse_ll(e->d_name, &tid) || tid <= 0)
			continue;
		if (len == cap) {
			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				closedir(d);
				return -ENOMEM;
			}
			v = nv;
		}
		v[len++] = (pid_t)tid;
	}
	closedir(d);
	if (len == 0) {
		free(v);
		return -ESRCH;
	}
	*out = v;
	*n = len;
	return 0;
}

/* A thread's scheduling, as the value the nice actuator reads and writes: "idle" for
 * SCHED_IDLE, else the nice value. */
struct sched_state {
	bool idle;
	int nice;
};

static int nice_of(pid_t tid, struct sched_state *st)
{
	int v, policy;

	errno = 0;
	v = getpriority(PRIO_PROCESS, (id_t)tid);
	if (v == -1 && errno)
		return -errno;
	policy = sched_getscheduler(tid);
	if (policy < 0)
		return -errno;
	st->idle = (policy & ~SCHED_RESET_ON_FORK) == SCHED_IDLE;
	st->nice = v;
	return 0;
}

static int parse_sched(const char *value, struct sched_state *st)
{
	long long v;

	st->idle = streq(value, "idle");
	st->nice = 0;
	if (st->idle)
		return 0;
	if (act_parse_ll(value, &v) || v < -20 || v > 19)
		return -EINVAL;
	st->nice = (int)v;
	return 0;
}

static bool sched_same(const struct sched_state *a, const struct sched_state *b)
{
	return a->idle == b->idle && (a->idle || a->nice == b->nice);
}

static int set_sched(pid_t tid, const struct sched_state *want, const struct sched_state *now)
{
	struct sched_param sp = {0};

	if (want->idle)
		return sched_setscheduler(tid, SCHED_IDLE, &sp) < 0 ? -errno : 0;
	if (now->idle && sched_setscheduler(tid, SCHED_OTHER, &sp) < 0)
		return -errno;
	return setpriority(PRIO_PROCESS, (id_t)tid, want->nice) < 0 ? -errno : 0;
}

static int nice_read(const struct act_request *req, const struct act_result *res, char *value,
		     size_t size)
{
	struct sched_state st;
	int r = nice_of(req->pid, &st);

	if (r)
		return r;
	if (st.idle)
		snprintf(value, size, "idle");
	else
		snprintf(value, size, "%d", st.nice);
	return 0;
}

static int nice_want(const struct act_request *req, const char *before, char *value, size_t size,
		     char *why, size_t whysize)
{
	if (req->nice.idle)
		snprintf(value, size, "idle");
	else
		snprintf(value, size, "%d", req->nice.value);
	return 0;
}

static int nice_write(const struct act_request *req, struct act_result *res, const char *value)
{
	_cleanup_free_ pid_t *tids = NULL;
	_cleanup_free_ struct sched_state *old = NULL;
	_cleanup_free_ bool *gone = NULL;
	struct sched_state want;
	size_t n = 0, done, changed = 0;
	int r;

	if (parse_sched(value, &want))
		return -EINVAL;
	r = list_threads(req->pid, &tids, &n);
	if (r)
		return r;
	old = calloc(n, sizeof(*old));
	gone = calloc(n, sizeof(*gone));
	if (!old || !gone)
		return -ENOMEM;
	for (done = 0; done < n; done++) {
		r = nice_of(tids[done], &old[done]);
		if (r == -ESRCH) { /* the thread exited meanwhile */
			gone[done] = true;
			r = 0;
			continue;
		}
		if (r)
			break;
		r = set_sched(tids[done], &want, &old[done]);
		if (r == -ESRCH) {
			gone[done] = true;
			r = 0;
			continue;
		}
		if (r)
			break;
		changed++;
	}
	if (r) {
		/* never leave a process half changed: put back what was changed */
		for (size_t i = 0; i < done; i++)
			if (!gone[i])
				set_sched(tids[i], &old[i], &want);
		return r;
	}
	if (changed == 0)
		return -ESRCH;
	if (res)
		res->nthreads = (int)changed;
	return 0;
}

static int nice_holds(const struct act_request *req, const struct act_result *res,
		      const char *value, char *why, size_t whysize)
{
	_cleanup_free_ pid_t *tids = NULL;
	struct sched_state want, st;
	size_t n = 0, other = 0;
	int r;

	if (parse_sched(value, &want))
		return -EINVAL;
	r = list_threads(req->pid, &tids, &n);
	if (r)
		return r;
	for (size_t i = 0; i < n; i++)
		if (!nice_of(tids[i], &st) && !sched_same(&st, &want))
			other++;
	if (other)
		return act_why(why, whysize, -ESTALE, "%zu of %zu threads hold another %s", other,
			       n, want.idle ? "scheduling policy" : "nice value");
	return 0;
}

const struct act_value_ops act_nice_ops = {
    .read = nice_read,
    .want = nice_want,
    .write = nice_write,
    .holds = nice_holds,
};

/* ---- signal ---- */

static void signal_name(int signo, char *buf, size_t size)
{
	const char *abbrev = signo < SIGRTMIN ? sigabbrev_np(signo) : NULL;

	if (abbrev)
		snprintf(buf, size, "SIG%s", abbrev);
	else if (signo >= SIGRTMIN && signo <= SIGRTMAX)
		snprintf(buf, size, "SIGRTMIN+%d", signo - SIGRTMIN);
	else
		snprintf(buf, size, "signal %d", signo);
}

int act_signal_apply(const struct act_request *req, struct act_result *res)
{
	_cleanup_close_ int pidfd = -1;
	unsigned long long start2 = 0;
	char name[32], state = '?';
	int r;

	signal_name(req->signal.signo, name, sizeof(name));
	r = act_pid_start(req->pid, &res->pid_start);
	if (!r && req->pid_start && req->pid_start != res->pid_start)
		r = -ESRCH;
	if (r)
		return act_why(res->why, sizeof(res->why), r == -ESRCH ? -ESRCH : r,
			       "no process %d%s", (int)req->pid,
			       r == -ESRCH && req->pid_start ? " with that start time" : "");
	pidfd = (int)syscall(SYS_pidfd_open, req->pid, 0);
	if (pidfd < 0)
		return act_why(res->why, sizeof(res->why), -errno, "cannot open a pidfd for %d",
			       (int)req->pid);
	/* the pidfd names the process we identified only if it still has the same start time */
	r = act_pid_start(req->pid, &start2);
	if (r || start2 != res->pid_start)
		return act_why(res->why, sizeof(res->why), -ESRCH, "process %d exited meanwhile",
			       (int)req->pid);
	act_pid_state(req->pid, &state);
	snprintf(res->before, sizeof(res->before), "state %c", state);
	if (syscall(SYS_pidfd_send_signal, pidfd, req->signal.signo, NULL, 0) < 0)
		return act_why(res->why, sizeof(res->why), -errno, "cannot send %s to %d", name,
			       (int)req->pid);
	res->applied = true;
	snprintf(res->after, sizeof(res->after), "%s sent", name);
	return 0;
}

/* ---- restart ---- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *const restart_env[] = {
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG=C",
    "HOME=/",
    NULL,
};

/* In the child between fork and exec: async-signal-safe calls only. */
static void __attribute__((noreturn)) restart_exec(const char *command)
{
	const char *argv[] = {"sh", "-c", command, NULL};
	struct sigaction sa = {.sa_handler = SIG_DFL};
	sigset_t none;
	int fd;

	for (int s = 1; s < NSIG; s++)
		sigaction(s, &sa, NULL); /* SIGKILL, SIGSTOP and glibc's own fail, harmlessly */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid();
	fd = open("/dev/null", O_RDWR);
	if (fd < 0 || dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
		_exit(126);
	syscall(SYS_close_range, 3U, ~0U, 0U);
	if (chdir("/") < 0)
		_exit(126);
	execve("/bin/sh", (char *const *)argv, (char *const *)restart_env);
	_exit(127);
}

int act_restart_apply(const struct act_request *req, struct act_result *res)
{
	unsigned timeout =
	    req->restart.timeout_ms ? req->restart.timeout_ms : ACT_RESTART_TIMEOUT_MS;
	unsigned long long start;
	pid_t pid;
	int fd;

	if (req->pid > 0) {
		if (act_pid_start(req->pid, &start) == 0) {
			res->pid_start = start;
			snprintf(res->before, sizeof(res->before), "pid %d", (int)req->pid);
		} else {
			snprintf(res->before, sizeof(res->before), "pid %d (gone)", (int)req->pid);
		}
	}
	pid = fork();
	if (pid < 0)
		return act_why(res->why, sizeof(res->why), -errno, "cannot fork");
	if (pid == 0)
		restart_exec(req->restart.command);
	/* our unreaped child: its pid cannot be recycled before we wait for it */
	fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0) {
		int err = -errno;

		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return act_why(res->why, sizeof(res->why), err, "cannot open a pidfd for %d",
			       (int)pid);
	}
	res->child = pid;
	res->pidfd = fd;
	res->deadline = now_ms() + timeout;
	res->applied = true;
	snprintf(res->after, sizeof(res->after), "restart command started (pid %d)", (int)pid);
	return 0;
}

static void restart_kill(struct act_result *res)
{
	kill(-res->child, SIGKILL); /* the session's process group: what the command started */
	syscall(SYS_pidfd_send_signal, res->pidfd, SIGKILL, NULL, 0);
	res->restart_killed = true;
}

static int restart_finish(struct act_result *res, int status)
{
	unsigned timeout =
	    res->req.restart.timeout_ms ? res->req.restart.timeout_ms : ACT_RESTART_TIMEOUT_MS;
	char name[32];

	close(res->pidfd);
	res->pidfd = -1;
	res->restart_done = true;
	res->exit_status = status;
	if (res->restart_killed) {
		res->restart_rc = -ETIMEDOUT;
		snprintf(res->after, sizeof(res->after), "killed after %u ms", timeout);
		act_why(res->why, sizeof(res->why), 0,
			"restart command did not finish within %u ms: killed", timeout);
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		res->restart_rc = 0;
		snprintf(res->after, sizeof(res->after), "exit 0");
	} else if (WIFEXITED(status)) {
		res->restart_rc = -EIO;
		snprintf(res->after, sizeof(res->after), "exit %d", WEXITSTATUS(status));
		act_why(res->why, sizeof(res->why), 0, "restart command failed with exit status %d",
			WEXITSTATUS(status));
	} else {
		signal_name(WTERMSIG(status), name, sizeof(name));
		res->restart_rc = -EIO;
		snprintf(res->after, sizeof(res->after), "killed by %s", name);
		act_why(res->why, sizeof(res->why), 0, "restart command was killed by %s", name);
	}
	return res->restart_rc;
}

int act_restart_poll(struct act_result *res)
{
	siginfo_t si;

	if (!res->applied)
		return -ENOTCONN;
	if (res->restart_done)
		return res->restart_rc;
	for (int round = 0; round < 2; round++) {
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)res->child, &si, WEXITED | WNOHANG) < 0)
			return -errno;
		if (si.si_pid != 0)
			return restart_finish(res, si.si_code == CLD_EXITED
						       ? (si.si_status & 0xff) << 8
						       : si.si_status & 0x7f);
		if (res->restart_killed || now_ms() < res->deadline)
			return -EINPROGRESS;
		restart_kill(res);
	}
	return -EINPROGRESS;
}

void act_restart_release(struct act_result *res)
{
	int status = 0;

	if (res->pidfd < 0)
		return;
	if (!res->restart_done) {
		restart_kill(res);
		if (waitpid(res->child, &status, 0) == res->child) {
			restart_finish(res, status);
			return;
		}
	}
	close(res->pidfd);
	res->pidfd = -1;
}

/* ---- /proc/PID/maps ---- */

int act_maps_each(pid_t pid, int (*fn)(const struct act_map_line *, void *), void *arg)
{
	char name[64];
	_cleanup_fclose_ FILE *f = NULL;
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	int r = 0;

	snprintf(name, sizeof(name), "/proc/%d/maps", (int)pid);
	f = fopen(name, "re");
	if (!f)
		return errno == ENOENT ? -ESRCH : -errno;
	while (!r && getline(&line, &cap, f) > 0) {
		struct act_map_line l = {0};
		int n = 0;

		line[strcspn(line, "\n")] = '\0';
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %x:%x %" SCNu64 " %n",
			   &l.start, &l.end, l.perms, &l.offset, &l.maj, &l.min, &l.ino, &n) < 7 ||
		    !n)
			continue;
		l.path = line + n;
		r = fn(&l, arg);
	}
	return r;
}
