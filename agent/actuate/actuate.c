/* actuate.c - the actuator table and the one apply / verify / revert sequence of every value
 * actuator.
 *
 * Why: the order of a change is the same whatever it changes, and it is where safety lives:
 * validate the request exactly, read the value before, write, read back what the kernel
 * holds, and build the command that undoes it. Revert writes the value before back only if
 * the host still holds what homeostat wrote: a different value means an admin changed it,
 * and homeostat backs off (-ESTALE, bpftune's sysctl_tuner does the same) rather than
 * overwrite the admin's choice.
 *
 * Invariants: nothing is written before the request passed act_validate() and the value
 * before was read; res is fully initialised by act_apply() whatever it returns; no function
 * here logs above debug.
 */
#include <signal.h>

#include "actuate/internal.h"
#include "memory/memory.h"

_Static_assert((int)ACT_KIND_RLIMIT == (int)MEM_KIND_RLIMIT &&
		   (int)ACT_KIND_SYSCTL == (int)MEM_KIND_SYSCTL &&
		   (int)ACT_KIND_CGROUP == (int)MEM_KIND_CGROUP &&
		   (int)ACT_KIND_NICE == (int)MEM_KIND_NICE &&
		   (int)ACT_KIND_SIGNAL == (int)MEM_KIND_SIGNAL &&
		   (int)ACT_KIND_RESTART == (int)MEM_KIND_RESTART &&
		   (int)ACT_KIND_PATCH == (int)MEM_KIND_PATCH &&
		   (int)ACT_KIND_FILE == (int)MEM_KIND_FILE &&
		   (int)ACT_KIND_COUNT == (int)MEM_KIND_COUNT,
	       "enum act_kind must match enum mem_kind");

static int value_apply(const struct act_request *req, struct act_result *res);
static int value_verify(const struct act_request *req, const struct act_result *res);
static int value_revert(struct act_result *res);
static int event_verify(const struct act_request *req, const struct act_result *res);
static int event_revert(struct act_result *res);
static int value_read(const struct act_request *req, char *value, size_t size);
static int nice_validate(const struct act_request *req, char *why, size_t size);
static int signal_validate(const struct act_request *req, char *why, size_t size);
static int restart_validate(const struct act_request *req, char *why, size_t size);

static const struct act_desc descs[ACT_KIND_COUNT] = {
    [ACT_KIND_RLIMIT] = {ACT_KIND_RLIMIT, "rlimit",
			 "a process runs out of a per-process resource (file descriptors, "
			 "processes, locked memory): raise its soft limit with prlimit(2), up to "
			 "the hard limit unless raising that is asked",
			 true, NULL, act_rlimit_validate, value_read, value_apply, value_verify,
			 value_revert},
    [ACT_KIND_SYSCTL] = {ACT_KIND_SYSCTL, "sysctl",
			 "a kernel default is wrong for this load (accept queue, buffers): write "
			 "/proc/sys, for net.* optionally inside a target's network namespace",
			 true, NULL, act_sysctl_validate, value_read, value_apply, value_verify,
			 value_revert},
    [ACT_KIND_CGROUP] = {ACT_KIND_CGROUP, "cgroup",
			 "one service starves or crowds out the others: change its CPU weight or "
			 "quota, memory high mark or pids limit (cgroup v1 or v2 files)",
			 true, NULL, act_cgroup_validate, value_read, value_apply, value_verify,
			 value_revert},
    [ACT_KIND_NICE] = {ACT_KIND_NICE, "nice",
		       "a batch process delays a latency-sensitive one on a busy CPU: change the "
		       "nice value of every thread of a process",
		       true, NULL, nice_validate, value_read, value_apply, value_verify,
		       value_revert},
    [ACT_KIND_SIGNAL] = {ACT_KIND_SIGNAL, "signal",
			 "a process must reload (SIGHUP), dump state (SIGUSR1) or stop (SIGTERM): "
			 "send one signal through a pidfd",
			 false, "a signal cannot be taken back once it was sent", signal_validate,
			 NULL, act_signal_apply, event_verify, event_revert},
    [ACT_KIND_RESTART] = {ACT_KIND_RESTART, "restart",
			  "a process is wedged beyond repair: run the target's restart command "
			  "with a timeout, without blocking the daemon",
			  false, "a restart cannot be undone: the old process is gone",
			  restart_validate, NULL, act_restart_apply, event_verify, event_revert},
    [ACT_KIND_PATCH] = {ACT_KIND_PATCH, "patch",
			"a hot function of a running program has a better alternative: replace "
			"the first instructions of its entry with a jump to it, every thread "
			"stopped (patch.c)",
			true, NULL, act_patch_validate, act_patch_read, act_patch_apply,
			act_patch_verify, act_patch_revert},
    [ACT_KIND_FILE] = {ACT_KIND_FILE, "file",
		       "an application reads a setting from a file of its own (workers, cache "
		       "size): write its one value, atomically, keeping owner and mode",
		       true, NULL, act_file_validate, value_read, value_apply, value_verify,
		       value_revert},
};

static const struct act_value_ops *const value_ops[ACT_KIND_COUNT] = {
    [ACT_KIND_RLIMIT] = &act_rlimit_ops, [ACT_KIND_SYSCTL] = &act_sysctl_ops,
    [ACT_KIND_CGROUP] = &act_cgroup_ops, [ACT_KIND_NICE] = &act_nice_ops,
    [ACT_KIND_FILE] = &act_file_ops,
};

const struct act_desc *act_desc(enum act_kind kind)
{
	if ((unsigned)kind >= ACT_KIND_COUNT)
		return NULL;
	return &descs[kind];
}

const char *act_kind_name(enum act_kind kind)
{
	const struct act_desc *d = act_desc(kind);

	return d ? d->name : NULL;
}

int act_kind_from_name(const char *name)
{
	for (unsigned i = 0; i < ACT_KIND_COUNT; i++)
		if (streq(descs[i].name, name))
			return (int)i;
	return -EINVAL;
}

void act_request_init(struct act_request *req, enum act_kind kind)
{
	memset(req, 0, sizeof(*req));
	req->kind = kind;
}

/* ---- text helpers ---- */

int act_why(char *why, size_t size, int err, const char *fmt, ...)
{
	va_list ap;

	if (!why || size == 0)
		return err;
	va_start(ap, fmt);
	vsnprintf(why, size, fmt, ap);
	va_end(ap);
	return err;
}

bool act_terminated(const char *s, size_t n)
{
	return memchr(s, '\0', n) != NULL;
}

int act_normalise(const char *s, char *buf, size_t size)
{
	size_t n = 0;
	bool blank = false;

	if (size == 0)
		return -E2BIG;
	for (; *s; s++) {
		if (*s == ' ' || *s == '\t' || *s == '\n') {
			blank = n > 0;
			continue;
		}
		if (n + (blank ? 2 : 1) >= size) {
			buf[0] = '\0';
			return -E2BIG;
		}
		if (blank)
			buf[n++] = ' ';
		blank = false;
		buf[n++] = *s;
	}
	buf[n] = '\0';
	return 0;
}

int act_parse_ll(const char *s, long long *out)
{
	char *end;
	long long v;

	if (!s || !*s || (*s != '-' && (*s < '0' || *s > '9')))
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end)
		return -EINVAL;
	if (errno == ERANGE)
		return -ERANGE;
	*out = v;
	return 0;
}

/* Safe to paste into a shell as it is? */
static bool shell_plain(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!strchr(
			"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:/=+,@%-",
			*s))
			return false;
	return true;
}

/* Appends s to buf at *n, single-quoted for the shell when it needs it. */
static int put_word(char *buf, size_t size, size_t *n, const char *s)
{
	size_t need;

	if (shell_plain(s)) {
		need = strlen(s);
		if (*n + need >= size)
			return -ENAMETOOLONG;
		memcpy(buf + *n, s, need);
		*n += need;
	} else {
		if (*n + 2 >= size)
			return -ENAMETOOLONG;
		buf[(*n)++] = '\'';
		for (; *s; s++) {
			if (*s == '\'') {
				if (*n + 4 >= size)
					return -ENAMETOOLONG;
				memcpy(buf + *n, "'\\''", 4);
				*n += 4;
			} else {
				if (*n + 1 >= size)
					return -ENAMETOOLONG;
				buf[(*n)++] = *s;
			}
		}
		if (*n + 1 >= size)
			return -ENAMETOOLONG;
		buf[(*n)++] = '\'';
	}
	buf[*n] = '\0';
	return 0;
}

/* Appends a format to buf at *n, as is (no quoting). */
static int put_raw(char *buf, size_t size, size_t *n, const char *fmt, ...) HS_PRINTF(4, 5);
static int put_raw(char *buf, size_t size, size_t *n, const char *fmt, ...)
{
	va_list ap;
	int w;

	if (*n >= size)
		return -ENAMETOOLONG;
	va_start(ap, fmt);
	w = vsnprintf(buf + *n, size - *n, fmt, ap);
	va_end(ap);
	if (w < 0 || (size_t)w >= size - *n)
		return -ENAMETOOLONG;
	*n += (size_t)w;
	return 0;
}

/* printf (octal escapes: dash's printf has no \x) piped into dd at the patch's address. */
static int patch_revert_command(const struct act_request *req, const struct act_result *res,
				const char *value, char *buf, size_t size, size_t *n)
{
	uint8_t b[ACT_PATCH_MAX];
	size_t len;
	int r;

	if (!res || !res->patch_at || act_hex_parse(value, b, sizeof(b), &len) || !len)
		return -EINVAL;
	r = put_raw(buf, size, n, "printf '");
	for (size_t i = 0; i < len && !r; i++)
		r = put_raw(buf, size, n, "\\%03o", b[i]);
	if (!r)
		r = put_raw(buf, size, n,
			    "' | dd of=/proc/%d/mem bs=%zu count=1 seek=$((0x%llx)) "
			    "oflag=seek_bytes iflag=fullblock conv=notrunc status=none",
			    (int)req->pid, len, (unsigned long long)res->patch_at);
	return r;
}

int act_revert_command(const struct act_request *req, const struct act_result *res,
		       const char *value, char *buf, size_t size)
{
	char word[ACT_NAME_MAX + ACT_VALUE_MAX + 2], path[ACT_PATH_MAX + ACT_FILE_MAX + 32];
	const char *opt;
	size_t n = 0;
	int r = 0;

	if (size == 0)
		return -ENAMETOOLONG;
	buf[0] = '\0';
	switch (req->kind) {
	case ACT_KIND_RLIMIT:
		opt = act_rlimit_name(req->rlimit.resource);
		if (!opt)
			return -EINVAL;
		r = put_raw(buf, size, &n, "prlimit --pid %d --%s=", (int)req->pid, opt);
		if (!r)
			r = put_word(buf, size, &n, value);
		break;
	case ACT_KIND_SYSCTL:
		if (req->sysctl.netns_pid > 0) {
			r = put_raw(buf, size, &n, "nsenter --net=/proc/%d/ns/net ",
				    (int)req->sysctl.netns_pid);
		} else if (req->sysctl.netns_path[0]) {
			r = put_raw(buf, size, &n, "nsenter --net=");
			if (!r)
				r = put_word(buf, size, &n, req->sysctl.netns_path);
			if (!r)
				r = put_raw(buf, size, &n, " ");
		}
		if (!r)
			r = put_raw(buf, size, &n, "sysctl -w ");
		snprintf(word, sizeof(word), "%s=%s", req->sysctl.name, value);
		if (!r)
			r = put_word(buf, size, &n, word);
		break;
	case ACT_KIND_CGROUP:
		r = act_cgroup_dir(req, path, sizeof(path) - ACT_FILE_MAX - 1);
		if (r)
			return r;
		strcat(path, "/");
		strcat(path, req->cgroup.file);
		r = put_raw(buf, size, &n, "echo ");
		if (!r)
			r = put_word(buf, size, &n, value);
		if (!r)
			r = put_raw(buf, size, &n, " > ");
		if (!r)
			r = put_word(buf, size, &n, path);
		break;
	case ACT_KIND_FILE:
		r = put_raw(buf, size, &n, "echo ");
		if (!r)
			r = put_word(buf, size, &n, value);
		if (!r)
			r = put_raw(buf, size, &n, " > ");
		if (!r)
			r = put_word(buf, size, &n, req->file.path);
		break;
	case ACT_KIND_NICE:
		/* chrt -a changes every thread; renice -p one: name them all when there are
		 * several */
		if (streq(value, "idle")) {
			r = put_raw(buf, size, &n, "chrt -a -i -p 0 %d", (int)req->pid);
			break;
		}
		if (req->nice.idle)
			r = put_raw(buf, size, &n, "chrt -a -o -p 0 %d && ", (int)req->pid);
		if (!r)
			r = put_raw(buf, size, &n, "renice -n ");
		if (!r)
			r = put_word(buf, size, &n, value);
		if (!r && res && res->nthreads > 1)
			r = put_raw(buf, size, &n, " -p $(ls /proc/%d/task)", (int)req->pid);
		else if (!r)
			r = put_raw(buf, size, &n, " -p %d", (int)req->pid);
		break;
	case ACT_KIND_PATCH:
		r = patch_revert_command(req, res, value, buf, size, &n);
		break;
	default:
		return -EOPNOTSUPP;
	}
	if (r)
		buf[0] = '\0';
	return r;
}

/* ---- validation ---- */

static int nice_validate(const struct act_request *req, char *why, size_t size)
{
	if (req->pid <= 0)
		return act_why(why, size, -EINVAL, "nice needs a process (pid > 0), not %d",
			       (int)req->pid);
	if (!req->nice.idle && (req->nice.value < -20 || req->nice.value > 19))
		return act_why(why, size, -EINVAL, "nice value %d must be between -20 and 19",
			       req->nice.value);
	return 0;
}

static int signal_validate(const struct act_request *req, char *why, size_t size)
{
	if (req->pid <= 1)
		return act_why(why, size, -EINVAL,
			       "a signal needs one process other than init (pid > 1), not %d",
			       (int)req->pid);
	if (req->signal.signo < 1 || req->signal.signo > SIGRTMAX)
		return act_why(why, size, -EINVAL, "signal %d must be between 1 and %d",
			       req->signal.signo, SIGRTMAX);
	return 0;
}

static int restart_validate(const struct act_request *req, char *why, size_t size)
{
	const char *c = req->restart.command;

	if (req->pid < 0)
		return act_why(why, size, -EINVAL, "restart pid %d must be 0 (none) or a process",
			       (int)req->pid);
	if (!act_terminated(c, sizeof(req->restart.command)))
		return act_why(why, size, -EINVAL, "restart command is longer than %d bytes",
			       ACT_CMD_MAX - 1);
	if (!*c)
		return act_why(why, size, -EINVAL, "restart command is empty");
	for (; *c; c++)
		if ((unsigned char)*c < 0x20 && *c != '\t')
			return act_why(why, size, -EINVAL,
				       "restart command holds a control character (0x%02x)",
				       (unsigned char)*c);
	if (req->restart.timeout_ms > ACT_RESTART_TIMEOUT_MAX_MS)
		return act_why(
		    why, size, -EINVAL, "restart timeout %u ms must be between 1 and %d (0: %d)",
		    req->restart.timeout_ms, ACT_RESTART_TIMEOUT_MAX_MS, ACT_RESTART_TIMEOUT_MS);
	return 0;
}

int act_validate(const struct act_request *req, char *why, size_t size)
{
	const struct act_desc *d;

	if (why && size)
		why[0] = '\0';
	if (!req)
		return act_why(why, size, -EINVAL, "no request");
	d = act_desc(req->kind);
	if (!d)
		return act_why(why, size, -EINVAL, "unknown actuator kind %d", (int)req->kind);
	return d->validate(req, why, size);
}

/* ---- the value sequence ---- */

static int check_identity(const struct act_request *req, unsigned long long want, char *why,
			  size_t size)
{
	unsigned long long start;
	int r;

	if (req->kind == ACT_KIND_SYSCTL || req->kind == ACT_KIND_CGROUP ||
	    req->kind == ACT_KIND_FILE || want == 0)
		return 0;
	r = act_pid_start(req->pid, &start);
	if (r == -ENOENT || r == -ESRCH)
		return act_why(why, size, -ESRCH, "process %d is gone", (int)req->pid);
	if (r)
		return act_why(why, size, r, "cannot read /proc/%d/stat", (int)req->pid);
	if (start != want)
		return act_why(why, size, -ESRCH,
			       "process %d is another process now (started at %llu, not %llu)",
			       (int)req->pid, start, want);
	return 0;
}

static int value_read(const struct act_request *req, char *value, size_t size)
{
	int r = act_validate(req, NULL, 0);

	if (r)
		return r;
	if (req->pid_start) {
		r = check_identity(req, req->pid_start, NULL, 0);
		if (r)
			return r;
	}
	return value_ops[req->kind]->read(req, NULL, value, size);
}

int act_want(const struct act_request *req, const char *before, char *value, size_t size, char *why,
	     size_t whysize)
{
	int r = act_validate(req, why, whysize);

	if (r)
		return r;
	if (!value_ops[req->kind])
		return act_why(why, whysize, -EOPNOTSUPP, "%s has no value",
			       act_kind_name(req->kind));
	return value_ops[req->kind]->want(req, before, value, size, why, whysize);
}

static void result_init(const struct act_request *req, struct act_result *res)
{
	memset(res, 0, sizeof(*res));
	if (req)
		res->req = *req;
	res->pidfd = -1;
}

static int value_apply(const struct act_request *req, struct act_result *res)
{
	const struct act_value_ops *ops = value_ops[req->kind];
	char want[ACT_VALUE_MAX];
	int r;

	if (req->kind != ACT_KIND_SYSCTL && req->kind != ACT_KIND_CGROUP &&
	    req->kind != ACT_KIND_FILE) {
		r = act_pid_start(req->pid, &res->pid_start);
		if (r == -ENOENT || r == -ESRCH)
			return act_why(res->why, sizeof(res->why), -ESRCH, "no process %d",
				       (int)req->pid);
		if (r)
			return act_why(res->why, sizeof(res->why), r, "cannot read /proc/%d/stat",
				       (int)req->pid);
		if (req->pid_start) {
			r = check_identity(req, req->pid_start, res->why, sizeof(res->why));
			if (r)
				return r;
		}
	}
	r = ops->read(req, res, res->before, sizeof(res->before));
	if (r == -EXDEV)
		return act_why(res->why, sizeof(res->why), r,
			       "cgroup '%s' resolves outside %s or not to a cgroup file system",
			       req->cgroup.path, ACT_CGROUP_ROOT);
	if (r)
		return act_why(res->why, sizeof(res->why), r, "cannot read the value before");
	r = ops->want(req, res->before, want, sizeof(want), res->why, sizeof(res->why));
	if (r)
		return r;
	r = ops->write(req, res, want);
	if (r)
		return act_why(res->why, sizeof(res->why), r, "cannot write '%s'", want);
	res->applied = true;
	r = act_revert_command(req, res, res->before, res->revert_cmd, sizeof(res->revert_cmd));
	if (r)
		return act_why(res->why, sizeof(res->why), r, "cannot build the revert command");
	r = ops->read(req, res, res->after, sizeof(res->after));
	if (r) {
		/* written but not read back: assume what was written, so that revert can run */
		hs_strlcpy(res->after, want, sizeof(res->after));
		return act_why(res->why, sizeof(res->why), r, "cannot read the value back");
	}
	if (!streq(res->after, want)) {
		res->adjusted = true;
		act_why(res->why, sizeof(res->why), 0, "the kernel holds '%s' for '%s'", res->after,
			want);
	}
	return 0;
}

/* 0 when the host holds value; -ESTALE with why when it does not. */
static int value_holds(const struct act_result *res, const char *value, char *why, size_t size)
{
	const struct act_request *req = &res->req;
	const struct act_value_ops *ops = value_ops[req->kind];
	char now[ACT_VALUE_MAX];
	int r;

	r = check_identity(req, res->pid_start, why, size);
	if (r)
		return r;
	r = ops->read(req, res, now, sizeof(now));
	if (r)
		return act_why(why, size, r, "cannot read the current value");
	if (!streq(now, value))
		return act_why(why, size, -ESTALE, "the host holds '%s', not '%s'", now, value);
	if (ops->holds)
		return ops->holds(req, res, value, why, size);
	return 0;
}

static int value_verify(const struct act_request *req, const struct act_result *res)
{
	if (!res->applied)
		return -ENOTCONN;
	return value_holds(res, res->after, NULL, 0);
}

static int value_revert(struct act_result *res)
{
	const struct act_value_ops *ops = value_ops[res->req.kind];
	char back[ACT_VALUE_MAX], why[ACT_WHY_MAX];
	int r;

	r = value_holds(res, res->after, why, sizeof(why));
	if (r == -ESTALE)
		return act_why(res->why, sizeof(res->why), r,
			       "%s: changed by someone else since homeostat set it, left alone",
			       why);
	if (r)
		return act_why(res->why, sizeof(res->why), r, "%s", why);
	r = ops->write(&res->req, res, res->before);
	if (r)
		return act_why(res->why, sizeof(res->why), r, "cannot write back '%s'",
			       res->before);
	res->reverted = true;
	r = ops->read(&res->req, res, back, sizeof(back));
	if (r)
		return act_why(res->why, sizeof(res->why), r, "cannot read the value back");
	if (!streq(back, res->before))
		return act_why(res->why, sizeof(res->why), 0, "the kernel holds '%s' for '%s'",
			       back, res->before);
	res->why[0] = '\0';
	return 0;
}

static int event_verify(const struct act_request *req, const struct act_result *res)
{
	if (!res->applied)
		return -ENOTCONN;
	if (req->kind == ACT_KIND_RESTART)
		return res->restart_done ? res->restart_rc : -EINPROGRESS;
	return 0;
}

static int event_revert(struct act_result *res)
{
	return act_why(res->why, sizeof(res->why), -EOPNOTSUPP, "%s",
		       descs[res->req.kind].not_revertible);
}

/* ---- the public entry points ---- */

int act_read(const struct act_request *req, char *value, size_t size)
{
	const struct act_desc *d = req ? act_desc(req->kind) : NULL;

	if (!d)
		return -EINVAL;
	if (!d->read)
		return -EOPNOTSUPP;
	return d->read(req, value, size);
}

int act_apply(const struct act_request *req, struct act_result *res)
{
	const struct act_desc *d;
	int r;

	result_init(req, res);
	r = act_validate(req, res->why, sizeof(res->why));
	if (r)
		return r;
	d = act_desc(req->kind);
	if (!d->apply)
		return act_why(res->why, sizeof(res->why), -EOPNOTSUPP, "%s", d->not_revertible);
	return d->apply(req, res);
}

int act_verify(const struct act_request *req, const struct act_result *res)
{
	const struct act_desc *d;

	if (!req || !res || req->kind != res->req.kind || act_validate(req, NULL, 0))
		return -EINVAL;
	d = act_desc(req->kind);
	if (!d->verify)
		return -EOPNOTSUPP;
	return d->verify(req, res);
}

int act_revert(struct act_result *res)
{
	const struct act_desc *d;
	int r;

	if (!res)
		return -EINVAL;
	r = act_validate(&res->req, res->why, sizeof(res->why));
	if (r)
		return r;
	d = act_desc(res->req.kind);
	if (!d->revertible || !d->revert)
		return event_revert(res);
	if (!res->applied)
		return act_why(res->why, sizeof(res->why), -ENOTCONN, "nothing was applied");
	if (res->reverted)
		return act_why(res->why, sizeof(res->why), -EALREADY, "already reverted");
	return d->revert(res);
}

int act_poll(struct act_result *res)
{
	if (!res)
		return -EINVAL;
	if (res->req.kind != ACT_KIND_RESTART)
		return 0;
	return act_restart_poll(res);
}

void act_result_release(struct act_result *res)
{
	if (res && res->req.kind == ACT_KIND_RESTART)
		act_restart_release(res);
}
