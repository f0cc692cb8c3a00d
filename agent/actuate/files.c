/* files.c - the file actuator: an application knob that is a value in a file of its own.
 *
 * Why: many services read a setting from a small file (a worker count, a cache size, a
 * feature flag) at start or when told to reload. Tuning such a knob is writing one line to
 * that file, with the same apply / verify / revert discipline as a sysctl: read the value
 * before, write, read back, and revert only if the file still holds what homeostat wrote.
 *
 * Choices: the value is the file's first line, blanks normalised (the knob is one value; a
 * file holding more is refused at read, rather than half rewritten). Writing replaces the
 * file atomically (a temporary file in the same directory, renamed over it) with the old
 * file's owner and mode, so that a reader never sees a half-written value. Paths must be
 * absolute, without '.', '..' or empty components, not under /proc, /sys or /dev (those
 * have actuators of their own), and are opened without following a symbolic link at the
 * end. Protected paths are the gate's business (safety/gate.c), not this file's.
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "actuate/internal.h"

int act_file_validate(const struct act_request *req, char *why, size_t size)
{
	const struct act_file *f = &req->file;
	const char *s, *end;

	if (req->pid != 0)
		return act_why(why, size, -EINVAL, "a file change takes no pid");
	if (!act_terminated(f->path, sizeof(f->path)) ||
	    !act_terminated(f->value, sizeof(f->value)))
		return act_why(why, size, -EINVAL, "file path or value too long");
	if (f->path[0] != '/')
		return act_why(why, size, -EINVAL, "file path '%s' is not absolute", f->path);
	for (s = f->path + 1; *s; s = *end ? end + 1 : end) {
		end = strchrnul(s, '/');
		if (end == s || (end - s == 1 && s[0] == '.') ||
		    (end - s == 2 && s[0] == '.' && s[1] == '.'))
			return act_why(why, size, -EINVAL,
				       "file path '%s' may not hold '.', '..' or empty components",
				       f->path);
	}
	if (!strncmp(f->path, "/proc/", 6) || !strncmp(f->path, "/sys/", 5) ||
	    !strncmp(f->path, "/dev/", 5))
		return act_why(why, size, -EINVAL,
			       "file path '%s' is under /proc, /sys or /dev: use the sysctl or "
			       "cgroup actuator",
			       f->path);
	for (const char *c = f->value; *c; c++)
		if (((unsigned char)*c < 0x20 && *c != '\t') || (unsigned char)*c >= 0x7f)
			return act_why(why, size, -EINVAL,
				       "file value holds a character that is not printable ASCII "
				       "(0x%02x)",
				       (unsigned char)*c);
	return 0;
}

static int file_read(const struct act_request *req, const struct act_result *res, char *value,
		     size_t size)
{
	char raw[ACT_VALUE_MAX + 2], *nl;
	_cleanup_close_ int fd = -1;
	ssize_t n;

	(void)res;
	fd = open(req->file.path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	n = read(fd, raw, sizeof(raw) - 1);
	if (n < 0)
		return -errno;
	raw[n] = '\0';
	nl = strchr(raw, '\n');
	if (nl && nl[1])
		return -EMEDIUMTYPE; /* more than one line: not a one-value knob file */
	if (!nl && (size_t)n == sizeof(raw) - 1)
		return -E2BIG;
	if (nl)
		*nl = '\0';
	return act_normalise(raw, value, size);
}

static int file_want(const struct act_request *req, const char *before, char *value, size_t size,
		     char *why, size_t whysize)
{
	(void)before;
	if (act_normalise(req->file.value, value, size) || !value[0])
		return act_why(why, whysize, -EINVAL, "file value is empty");
	return 0;
}

static int file_write(const struct act_request *req, struct act_result *res, const char *value)
{
	char tmp[ACT_PATH_MAX + 32];
	_cleanup_close_ int fd = -1;
	struct stat st;
	size_t len = strlen(value);
	int r = 0;

	(void)res;
	if (lstat(req->file.path, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (snprintf(tmp, sizeof(tmp), "%s.homeostat-%d", req->file.path, (int)getpid()) >=
	    (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (fchown(fd, st.st_uid, st.st_gid) < 0 || fchmod(fd, st.st_mode & 07777) < 0 ||
	    write(fd, value, len) != (ssize_t)len || write(fd, "\n", 1) != 1 || fsync(fd) < 0)
		r = errno ? -errno : -EIO;
	if (!r && rename(tmp, req->file.path) < 0)
		r = -errno;
	if (r)
		unlink(tmp);
	return r;
}

const struct act_value_ops act_file_ops = {
    .read = file_read,
    .want = file_want,
    .write = file_write,
};
