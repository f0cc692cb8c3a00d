/* knobs.c - the actuators that write a kernel file: sysctl (/proc/sys) and cgroup interface
 * files (v1 and v2, under /sys/fs/cgroup).
 *
 * Why: both are a value in a file, so both are read before, written and read back by the one
 * sequence of actuate.c; what differs is how the file is found safely.
 *
 * sysctl: names are [a-z0-9_.]+ with no empty component, so "/proc/sys/" + the name with
 * '.' as '/' can only name a file under /proc/sys. For net.* names a value can be set inside
 * another network namespace (a target's, or one `ip netns add` made): a short-lived child
 * process setns()es into it, opens and reads or writes the one file, sends back the result on
 * a pipe and exits. /proc/sys/net follows the network namespace of the task that opens it, so
 * this is exact, and the daemon's own namespace never changes (a thread could setns too, but
 * a child that dies cannot leave the daemon in the wrong namespace). The child is killed after
 * ACT_NETNS_TIMEOUT_MS. The namespace's inode is recorded at apply: verify and revert refuse
 * (-ESRCH) when the pid or path now names another namespace.
 *
 * cgroup: the file name must be one of the table below, which says whether it is a v1 or a
 * v2 file and exactly what values it takes. The directory must resolve (realpath, so every
 * symlink is followed) under /sys/fs/cgroup, and the opened directory must be on a cgroup
 * file system of the file's version (fstatfs): a symlink or a bind mount that leads
 * elsewhere is -EXDEV.
 */
#include <dirent.h>
#include <limits.h>
#include <linux/magic.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>

#include "actuate/internal.h"

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

/* ---- shared ---- */

/* Reads (wval NULL) or writes one whole file; raw text, at most size-1 bytes. */
static int file_io(int dirfd, const char *path, const char *wval, char *out, size_t size)
{
	_cleanup_close_ int fd = -1;
	size_t len, got = 0;
	ssize_t n;

	fd = openat(dirfd, path, (wval ? O_WRONLY : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (wval) {
		len = strlen(wval);
		n = write(fd, wval, len);
		if (n < 0)
			return -errno;
		return (size_t)n == len ? 0 : -EIO;
	}
	for (;;) {
		if (got + 1 >= size)
			return -E2BIG;
		n = read(fd, out + got, size - 1 - got);
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	out[got] = '\0';
	return 0;
}

static int value_text_check(const char *what, const char *value, size_t cap, char *why, size_t size)
{
	char norm[ACT_VALUE_MAX];

	if (!act_terminated(value, cap))
		return act_why(why, size, -EINVAL, "%s value is longer than %zu bytes", what,
			       cap - 1);
	for (const char *c = value; *c; c++)
		if (((unsigned char)*c < 0x20 && *c != '\t') || (unsigned char)*c >= 0x7f)
			return act_why(why, size, -EINVAL,
				       "%s value holds a character that is not printable ASCII "
				       "(0x%02x)",
				       what, (unsigned char)*c);
	if (act_normalise(value, norm, sizeof(norm)) || !norm[0])
		return act_why(why, size, -EINVAL, "%s value is empty", what);
	return 0;
}

/* ---- sysctl ---- */

int act_sysctl_validate(const struct act_request *req, char *why, size_t size)
{
	const struct act_sysctl *s = &req->sysctl;
	const char *c, *name;
	size_t len;
	int r;

	if (req->pid != 0)
		return act_why(why, size, -EINVAL,
			       "sysctl takes no pid (netns_pid names a network namespace)");
	if (!act_terminated(s->name, sizeof(s->name)))
		return act_why(why, size, -EINVAL, "sysctl name is longer than %d bytes",
			       ACT_NAME_MAX - 1);
	if (!s->name[0])
		return act_why(why, size, -EINVAL, "sysctl name is empty");
	for (c = s->name; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' ||
		      *c == '.' ||
		      /* fs.file-max; never a component's first byte (an option to sysctl) */
		      (*c == '-' && c > s->name && c[-1] != '.')))
			return act_why(
			    why, size, -EINVAL,
			    "sysctl name '%s' may hold only a-z, 0-9, '_', '.' and '-' (not "
			    "first in a component)",
			    s->name);
	len = strlen(s->name);
	if (s->name[0] == '.' || s->name[len - 1] == '.' || strstr(s->name, ".."))
		return act_why(why, size, -EINVAL, "sysctl name '%s' has an empty component",
			       s->name);
	if (!strchr(s->name, '.'))
		return act_why(why, size, -EINVAL, "sysctl name '%s' has no directory (e.g. net.)",
			       s->name);
	r = value_text_check("sysctl", s->value, sizeof(s->value), why, size);
	if (r)
		return r;
	if (s->netns_pid < 0)
		return act_why(why, size, -EINVAL, "sysctl netns_pid %d must be a process or 0",
			       (int)s->netns_pid);
	if (!act_terminated(s->netns_path, sizeof(s->netns_path)))
		return act_why(why, size, -EINVAL, "sysctl netns path is longer than %d bytes",
			       ACT_PATH_MAX - 1);
	if (s->netns_pid > 0 && s->netns_path[0])
		return act_why(why, size, -EINVAL,
			       "sysctl takes a netns pid or a netns path, not both");
	if ((s->netns_pid > 0 || s->netns_path[0]) && strncmp(s->name, "net.", 4))
		return act_why(why, size, -EINVAL,
			       "sysctl '%s' is not per network namespace: only net.* may take one",
			       s->name);
	if (s->netns_path[0]) {
		if (!strncmp(s->netns_path, "/run/netns/", 11))
			name = s->netns_path + 11;
		else if (!strncmp(s->netns_path, "/var/run/netns/", 15))
			name = s->netns_path + 15;
		else
			return act_why(why, size, -EINVAL,
				       "netns path '%s' must be /run/netns/NAME or "
				       "/var/run/netns/NAME",
				       s->netns_path);
		for (c = name; *c; c++)
			if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			      (*c >= '0' && *c <= '9') || *c == '_' || *c == '-' || *c == '.'))
				break;
		if (!*name || *c || streq(name, ".") || streq(name, ".."))
			return act_why(why, size, -EINVAL,
				       "netns name '%s' may hold only A-Z, a-z, 0-9, '_', '-' and "
				       "'.'",
				       name);
	}
	return 0;
}

struct netns_reply {
	int err;
	char value[ACT_VALUE_MAX];
};

/* Opens the namespace of req; its identity into dev and ino. */
static int netns_open(const struct act_request *req, unsigned long long *dev,
		      unsigned long long *ino)
{
	char path[ACT_PATH_MAX];
	struct statfs sfs;
	struct stat st;
	int fd;

	if (req->sysctl.netns_pid > 0)
		snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)req->sysctl.netns_pid);
	else
		snprintf(path, sizeof(path), "%s", req->sysctl.netns_path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	if (fstatfs(fd, &sfs) < 0 || fstat(fd, &st) < 0) {
		close(fd);
		return -errno;
	}
	if (sfs.f_type != NSFS_MAGIC) {
		close(fd);
		return -EINVAL;
	}
	*dev = st.st_dev;
	*ino = st.st_ino;
	return fd;
}

/* A namespace outlives the process that named it (a server restarted inside it): any
 * process still in the namespace (dev, ino) gives a way in. Its fd, or -ESRCH. */
static int netns_find(unsigned long long dev, unsigned long long ino)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int fd = -ESRCH;

	if (!d)
		return -errno;
	while (fd < 0 && (e = readdir(d))) {
		char path[64];
		struct stat st;
		int f;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%.16s/ns/net", e->d_name);
		f = open(path, O_RDONLY | O_CLOEXEC);
		if (f < 0)
			continue;
		if (fstat(f, &st) == 0 && st.st_ino == ino && st.st_dev == dev)
			fd = f;
		else
			close(f);
	}
	closedir(d);
	return fd;
}

/* file_io() on path inside the network namespace nsfd, from a short-lived child. */
static int netns_io(int nsfd, const char *path, const char *wval, char *out, size_t size)
{
	struct netns_reply reply = {.err = -EIO};
	struct pollfd pfd;
	int p[2], status;
	ssize_t n = -1;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -errno;
	}
	if (pid == 0) {
		close(p[0]);
		if (setns(nsfd, CLONE_NEWNET) < 0)
			reply.err = -errno;
		else
			reply.err = file_io(AT_FDCWD, path, wval, reply.value, sizeof(reply.value));
		n = write(p[1], &reply, sizeof(reply));
		_exit(n == sizeof(reply) ? 0 : 1);
	}
	close(p[1]);
	pfd = (struct pollfd){.fd = p[0], .events = POLLIN};
	if (poll(&pfd, 1, ACT_NETNS_TIMEOUT_MS) == 1)
		n = read(p[0], &reply, sizeof(reply));
	close(p[0]);
	if (n != sizeof(reply)) {
		kill(pid, SIGKILL);
		reply.err = -ETIMEDOUT;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (reply.err)
		return reply.err;
	if (!wval && hs_strlcpy(out, reply.value, size))
		return -E2BIG;
	return 0;
}

/* Reads or writes the sysctl of req. With res: in the namespace res recorded (-ESRCH if it
 * is another one now), or records it (rec). */
static int sysctl_io(const struct act_request *req, const struct act_result *res,
		     struct act_result *rec, const char *wval, char *out, size_t size)
{
	char path[16 + ACT_NAME_MAX], raw[ACT_VALUE_MAX];
	unsigned long long dev = 0, ino = 0;
	int nsfd, r;

	snprintf(path, sizeof(path), "/proc/sys/%s", req->sysctl.name);
	for (char *c = path + 10; *c; c++)
		if (*c == '.')
			*c = '/';
	if (req->sysctl.netns_pid > 0 || req->sysctl.netns_path[0]) {
		nsfd = netns_open(req, &dev, &ino);
		if (res && res->netns_ino &&
		    (nsfd < 0 ? nsfd == -ESRCH : res->netns_ino != ino || res->netns_dev != dev)) {
			/* the process that named it is gone: the namespace may not be */
			if (nsfd >= 0)
				close(nsfd);
			nsfd = netns_find(res->netns_dev, res->netns_ino);
			dev = res->netns_dev;
			ino = res->netns_ino;
		}
		if (nsfd < 0)
			return nsfd;
		r = netns_io(nsfd, path, wval, raw, sizeof(raw));
		close(nsfd);
		if (!r && rec && !rec->netns_ino) {
			rec->netns_dev = dev;
			rec->netns_ino = ino;
		}
	} else {
		r = file_io(AT_FDCWD, path, wval, raw, sizeof(raw));
	}
	if (r)
		return r;
	return wval ? 0 : act_normalise(raw, out, size);
}

static int sysctl_read(const struct act_request *req, const struct act_result *res, char *value,
		       size_t size)
{
	return sysctl_io(req, res, NULL, NULL, value, size);
}

static int sysctl_want(const struct act_request *req, const char *before, char *value, size_t size,
		       char *why, size_t whysize)
{
	return act_normalise(req->sysctl.value, value, size);
}

static int sysctl_write(const struct act_request *req, struct act_result *res, const char *value)
{
	return sysctl_io(req, res, res, value, NULL, 0);
}

const struct act_value_ops act_sysctl_ops = {
    .read = sysctl_read,
    .want = sysctl_want,
    .write = sysctl_write,
};

/* ---- cgroup ---- */

#define CG_V1 1u
#define CG_V2 2u

enum cg_syntax {
	CG_INT,		 /* min..max */
	CG_INT_OR_MAX,	 /* "max" or min..max */
	CG_INT_OR_MINUS, /* -1 or min..max */
	CG_CPU_MAX,	 /* "max" or a quota min..max, optionally a period 1000..1000000 */
};

static const struct cg_file {
	const char *name;
	unsigned versions;
	enum cg_syntax syntax;
	long long min, max;
	const char *why;
} cg_files[] = {
    {"cpu.weight", CG_V2, CG_INT, 1, 10000, "share of CPU under contention (default 100)"},
    {"cpu.weight.nice", CG_V2, CG_INT, -20, 19, "cpu.weight as a nice value"},
    {"cpu.max", CG_V2, CG_CPU_MAX, 1000, (1LL << 44) - 1,
     "hard CPU cap: quota and period in microseconds"},
    {"cpu.idle", CG_V1 | CG_V2, CG_INT, 0, 1, "run only when nothing else wants the CPU"},
    {"memory.high", CG_V2, CG_INT_OR_MAX, 0, INT64_MAX,
     "throttle and reclaim above this many bytes, before the OOM killer"},
    {"memory.max", CG_V2, CG_INT_OR_MAX, 0, INT64_MAX, "the OOM killer acts above this"},
    {"memory.low", CG_V2, CG_INT_OR_MAX, 0, INT64_MAX, "memory protected from reclaim"},
    {"memory.min", CG_V2, CG_INT_OR_MAX, 0, INT64_MAX, "memory never reclaimed"},
    {"memory.swap.max", CG_V2, CG_INT_OR_MAX, 0, INT64_MAX, "swap it may use"},
    {"pids.max", CG_V1 | CG_V2, CG_INT_OR_MAX, 0, 4194304, "fork bombs stop here"},
    {"cgroup.max.descendants", CG_V2, CG_INT_OR_MAX, 0, INT_MAX,
     "how many cgroups may be created below"},
    {"cgroup.max.depth", CG_V2, CG_INT_OR_MAX, 0, INT_MAX, "how deep cgroups may nest below"},
    {"cpu.shares", CG_V1, CG_INT, 2, 262144, "v1 share of CPU under contention (default 1024)"},
    {"cpu.cfs_quota_us", CG_V1, CG_INT_OR_MINUS, 1000, (1LL << 44) - 1,
     "v1 hard CPU cap per period, in microseconds (-1: none)"},
    {"cpu.cfs_period_us", CG_V1, CG_INT, 1000, 1000000, "v1 CPU quota period"},
    {"memory.limit_in_bytes", CG_V1, CG_INT_OR_MINUS, 0, INT64_MAX, "v1 memory limit (-1: none)"},
    {"memory.soft_limit_in_bytes", CG_V1, CG_INT_OR_MINUS, 0, INT64_MAX,
     "v1 reclaim target under pressure (-1: none)"},
};

static const struct cg_file *cg_file_lookup(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(cg_files); i++)
		if (streq(cg_files[i].name, name))
			return &cg_files[i];
	return NULL;
}

static bool in_range(const char *s, long long min, long long max)
{
	long long v;

	return !act_parse_ll(s, &v) && v >= min && v <= max;
}

static int cg_value_check(const struct cg_file *f, const char *value, char *why, size_t size)
{
	char v[ACT_VALUE_MAX], *sp;
	bool ok;

	act_normalise(value, v, sizeof(v));
	switch (f->syntax) {
	case CG_INT:
		if (in_range(v, f->min, f->max))
			return 0;
		return act_why(why, size, -EINVAL,
			       "cgroup %s value '%s' must be an integer between %lld and %lld",
			       f->name, v, f->min, f->max);
	case CG_INT_OR_MAX:
		if (streq(v, "max") || in_range(v, f->min, f->max))
			return 0;
		return act_why(why, size, -EINVAL,
			       "cgroup %s value '%s' must be 'max' or an integer between %lld and "
			       "%lld",
			       f->name, v, f->min, f->max);
	case CG_INT_OR_MINUS:
		if (streq(v, "-1") || in_range(v, f->min, f->max))
			return 0;
		return act_why(
		    why, size, -EINVAL,
		    "cgroup %s value '%s' must be -1 or an integer between %lld and %lld", f->name,
		    v, f->min, f->max);
	case CG_CPU_MAX:
		sp = strchr(v, ' ');
		if (sp)
			*sp++ = '\0';
		ok = (streq(v, "max") || in_range(v, f->min, f->max)) &&
		     (!sp || in_range(sp, 1000, 1000000));
		if (sp)
			sp[-1] = ' ';
		if (ok)
			return 0;
		return act_why(
		    why, size, -EINVAL,
		    "cgroup %s value '%s' must be 'max' or a quota between %lld and %lld "
		    "us, optionally followed by a period between 1000 and 1000000 us",
		    f->name, v, f->min, f->max);
	}
	return -EINVAL;
}

int act_cgroup_validate(const struct act_request *req, char *why, size_t size)
{
	const struct act_cgroup *cg = &req->cgroup;
	const struct cg_file *f;
	const char *p, *end;
	size_t root = strlen(ACT_CGROUP_ROOT);
	int r;

	if (req->pid != 0)
		return act_why(why, size, -EINVAL, "cgroup takes no pid");
	if (!act_terminated(cg->path, sizeof(cg->path)))
		return act_why(why, size, -EINVAL, "cgroup path is longer than %d bytes",
			       ACT_PATH_MAX - 1);
	p = cg->path;
	if (*p == '/') {
		if (strncmp(p, ACT_CGROUP_ROOT, root) || (p[root] && p[root] != '/'))
			return act_why(why, size, -EINVAL, "cgroup path '%s' is not under %s",
				       cg->path, ACT_CGROUP_ROOT);
		p += root;
		if (*p)
			p++;
	}
	if (!*p)
		return act_why(why, size, -EINVAL, "cgroup path '%s' names no cgroup", cg->path);
	for (; *p; p = *end ? end + 1 : end) {
		end = strchrnul(p, '/');
		if (end == p)
			return act_why(why, size, -EINVAL,
				       "cgroup path '%s' has an empty component", cg->path);
		if ((end - p == 1 && p[0] == '.') || (end - p == 2 && p[0] == '.' && p[1] == '.'))
			return act_why(why, size, -EINVAL,
				       "cgroup path '%s' may not hold '.' or '..'", cg->path);
		for (const char *c = p; c < end; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				return act_why(why, size, -EINVAL,
					       "cgroup path holds a control character (0x%02x)",
					       (unsigned char)*c);
		if (*end == '/' && !end[1])
			return act_why(why, size, -EINVAL,
				       "cgroup path '%s' has an empty component", cg->path);
	}
	if (!act_terminated(cg->file, sizeof(cg->file)))
		return act_why(why, size, -EINVAL, "cgroup file name is longer than %d bytes",
			       ACT_FILE_MAX - 1);
	f = cg_file_lookup(cg->file);
	if (!f)
		return act_why(why, size, -EINVAL, "cgroup file '%s' is not one homeostat changes",
			       cg->file);
	r = value_text_check("cgroup", cg->value, sizeof(cg->value), why, size);
	if (r)
		return r;
	return cg_value_check(f, cg->value, why, size);
}

int act_cgroup_dir(const struct act_request *req, char *buf, size_t size)
{
	const char *p = req->cgroup.path;
	int w;

	if (!strncmp(p, ACT_CGROUP_ROOT "/", strlen(ACT_CGROUP_ROOT) + 1))
		w = snprintf(buf, size, "%s", p);
	else
		w = snprintf(buf, size, "%s/%s", ACT_CGROUP_ROOT, p);
	return w < 0 || (size_t)w >= size ? -ENAMETOOLONG : 0;
}

/* Opens the cgroup directory of req after resolving it: -EXDEV when it escapes. */
static int cgroup_open_dir(const struct act_request *req)
{
	char path[ACT_PATH_MAX + 32], resolved[PATH_MAX];
	const struct cg_file *f = cg_file_lookup(req->cgroup.file);
	size_t root = strlen(ACT_CGROUP_ROOT);
	struct statfs sfs;
	unsigned version;
	int fd, r;

	if (!f)
		return -EINVAL;
	r = act_cgroup_dir(req, path, sizeof(path));
	if (r)
		return r;
	if (!realpath(path, resolved))
		return -errno;
	if (strncmp(resolved, ACT_CGROUP_ROOT, root) || resolved[root] != '/')
		return -EXDEV;
	fd = open(resolved, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstatfs(fd, &sfs) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	version = sfs.f_type == CGROUP_SUPER_MAGIC    ? CG_V1
		  : sfs.f_type == CGROUP2_SUPER_MAGIC ? CG_V2
						      : 0;
	if (!version) {
		close(fd);
		return -EXDEV;
	}
	if (!(f->versions & version)) {
		close(fd);
		return -ENOENT; /* a v1 file in a v2 group or the reverse: not there */
	}
	return fd;
}

static int cgroup_io(const struct act_request *req, const char *wval, char *out, size_t size)
{
	char raw[ACT_VALUE_MAX];
	int dfd, r;

	dfd = cgroup_open_dir(req);
	if (dfd < 0)
		return dfd;
	r = file_io(dfd, req->cgroup.file, wval, raw, sizeof(raw));
	close(dfd);
	if (r)
		return r;
	return wval ? 0 : act_normalise(raw, out, size);
}

static int cgroup_read(const struct act_request *req, const struct act_result *res, char *value,
		       size_t size)
{
	return cgroup_io(req, NULL, value, size);
}

static int cgroup_want(const struct act_request *req, const char *before, char *value, size_t size,
		       char *why, size_t whysize)
{
	return act_normalise(req->cgroup.value, value, size);
}

static int cgroup_write(const struct act_request *req, struct act_result *res, const char *value)
{
	return cgroup_io(req, value, NULL, 0);
}

const struct act_value_ops act_cgroup_ops = {
    .read = cgroup_read,
    .want = cgroup_want,
    .write = cgroup_write,
};
