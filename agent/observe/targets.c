/* targets.c - target definitions, the /proc scan, and members read back from the kernel.
 *
 * Invariant: hs_proc_target holds what the scan found for scanned targets and what the
 * kernel found (comm, cgroup v2, fork) for the others; the scan only writes tgids it matched
 * and removes the scanned-target entries of tgids that no longer match, so that it never
 * undoes the kernel's work. Every change to the rules bumps the generation in hs_cfg.
 */
#include <bpf/bpf.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>

#include "lib/log.h"
#include "lib/util.h"
#include "observe/targets.h"
#include "safety/policy.h"

#define CGROUP2_ROOTS "/sys/fs/cgroup/unified", "/sys/fs/cgroup"

void obs_targets_init(struct obs_targets *t, int fd_proc, int fd_comm, int fd_cgrp, int fd_cfg)
{
	memset(t, 0, sizeof(*t));
	t->fd_proc = fd_proc;
	t->fd_comm = fd_comm;
	t->fd_cgrp = fd_cgrp;
	t->fd_cfg = fd_cfg;
}

static void def_free(struct obs_target_def *d)
{
	free(d->comm);
	free(d->exe);
	free(d->cgroup);
	free(d->unit);
	memset(d, 0, sizeof(*d));
}

void obs_targets_free(struct obs_targets *t)
{
	for (int i = 0; i < t->n; i++)
		def_free(&t->def[i]);
	for (int i = 0; i < HS_NTARGETS; i++)
		free(t->members[i].pids);
	t->n = 0;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* The cgroup v2 id of a path (absolute, or relative to the v2 mount): its inode number on a
 * cgroup2 file system, which is what bpf_get_current_cgroup_id() returns. */
static int cgroup2_id(const char *path, uint64_t *id)
{
	static const char *const roots[] = {CGROUP2_ROOTS};
	char full[PATH_MAX];
	struct statfs sfs;
	struct stat st;

	for (size_t i = 0; i < ARRAY_SIZE(roots); i++) {
		if (!strncmp(path, "/sys/fs/cgroup", 14))
			snprintf(full, sizeof(full), "%s", path);
		else
			snprintf(full, sizeof(full), "%s/%s", roots[i],
				 path[0] == '/' ? path + 1 : path);
		if (stat(full, &st) == 0 && S_ISDIR(st.st_mode) && statfs(full, &sfs) == 0 &&
		    sfs.f_type == CGROUP2_SUPER_MAGIC) {
			*id = st.st_ino;
			return 0;
		}
	}
	return -ENOENT;
}

static void clear_map(int fd, size_t key_size)
{
	char key[64], next[64];
	void *prev = NULL;

	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		memcpy(key, next, key_size);
		bpf_map_delete_elem(fd, key);
		prev = NULL; /* restart: deleting may reorder the walk */
	}
}

int obs_targets_configure(struct obs_targets *t, const struct safe_policy *p)
{
	struct hs_cfg cfg = {0};
	__u32 zero = 0;
	int n = p ? (int)p->n_targets : 0;

	for (int i = 0; i < t->n; i++)
		def_free(&t->def[i]);
	t->n = 0;
	t->need_scan = false;
	clear_map(t->fd_comm, sizeof(struct hs_comm_key));
	clear_map(t->fd_cgrp, sizeof(__u64));
	clear_map(t->fd_proc, sizeof(__u32));
	if (n > HS_MAX_TARGETS) {
		log_warn("policy names %d targets, only the first %d are observed", n,
			 HS_MAX_TARGETS);
		n = HS_MAX_TARGETS;
	}
	for (int i = 0; i < n; i++) {
		const struct safe_target *st = &p->targets[i];
		struct obs_target_def *d = &t->def[i];
		int selectors = !!st->comm + !!st->exe + !!st->cgroup + !!st->unit + !!st->pid;
		__u32 index = i + 1;

		hs_strlcpy(d->name, st->name, sizeof(d->name));
		d->comm = dup_or_null(st->comm);
		d->exe = dup_or_null(st->exe);
		d->cgroup = dup_or_null(st->cgroup);
		d->unit = dup_or_null(st->unit);
		d->pid = st->pid;
		t->n = i + 1;
		if (selectors == 1 && d->comm) {
			struct hs_comm_key k = {0};

			strncpy(k.comm, d->comm, sizeof(k.comm) - 1);
			/* The first target in policy order wins. */
			bpf_map_update_elem(t->fd_comm, &k, &index, BPF_NOEXIST);
			d->in_kernel = true;
		} else if (selectors == 1 && d->cgroup &&
			   cgroup2_id(d->cgroup, &d->cgroup_id) == 0) {
			bpf_map_update_elem(t->fd_cgrp, &d->cgroup_id, &index, BPF_NOEXIST);
			d->in_kernel = true;
		} else {
			t->need_scan = true;
		}
		log_debug("target %u '%s': matched %s", index, d->name,
			  d->in_kernel ? "in the kernel" : "by the /proc scan");
	}
	t->gen++;
	if (t->gen == 0)
		t->gen = 1;
	cfg.gen = t->gen;
	cfg.ntargets = t->n;
	if (bpf_map_update_elem(t->fd_cfg, &zero, &cfg, BPF_ANY) < 0)
		return -errno;
	t->last_scan_ms = 0;
	return 0;
}

static bool read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return false;
	buf[n] = '\0';
	return true;
}

/* Whether process pid matches every selector of d. */
static bool matches(const struct obs_target_def *d, pid_t pid)
{
	char path[64], buf[4096];

	if (d->pid && d->pid != pid)
		return false;
	if (d->comm) {
		snprintf(path, sizeof(path), "/proc/%d/comm", pid);
		if (!read_small(path, buf, sizeof(buf)))
			return false;
		buf[strcspn(buf, "\n")] = '\0';
		if (!streq(buf, d->comm))
			return false;
	}
	if (d->exe) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/%d/exe", pid);
		n = readlink(path, buf, sizeof(buf) - 1);
		if (n < 0)
			return false;
		buf[n] = '\0';
		if (!streq(buf, d->exe))
			return false;
	}
	if (d->cgroup || d->unit) {
		const char *want = d->cgroup ? d->cgroup : d->unit;
		char *line, *save = NULL;
		bool found = false;

		snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
		if (!read_small(path, buf, sizeof(buf)))
			return false;
		/* Lines are "id:controllers:/path"; a member is in the cgroup or below it. */
		for (line = strtok_r(buf, "\n", &save); line && !found;
		     line = strtok_r(NULL, "\n", &save)) {
			char *cg = strchr(line, ':');

			cg = cg ? strchr(cg + 1, ':') : NULL;
			if (!cg)
				continue;
			cg++;
			if (d->unit) {
				const char *base = strrchr(cg, '/');

				found = base && streq(base + 1, want);
			} else {
				const char *rel = want;
				size_t len;

				/* A path may be given under a mount point: keep the cgroup part. */
				if (!strncmp(rel, "/sys/fs/cgroup/", 15)) {
					rel = strchr(rel + 15, '/');
					rel = rel ? rel : "/";
				}
				len = strlen(rel);
				found =
				    !strncmp(cg, rel, len) && (cg[len] == '\0' || cg[len] == '/');
			}
		}
		if (!found)
			return false;
	}
	return true;
}

static int scan(struct obs_targets *t)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int changed = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		__u32 tgid, cur, want = 0;
		char *end;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		tgid = strtoul(de->d_name, &end, 10);
		if (*end)
			continue;
		for (int i = 0; i < t->n && !want; i++)
			if (!t->def[i].in_kernel && matches(&t->def[i], tgid))
				want = i + 1;
		if (bpf_map_lookup_elem(t->fd_proc, &tgid, &cur) == 0) {
			if (cur == want)
				continue;
			/* Leave what the kernel decided for its own targets alone. */
			if (!want && cur >= 1 && cur <= (__u32)t->n && t->def[cur - 1].in_kernel)
				continue;
			if (!want) {
				bpf_map_delete_elem(t->fd_proc, &tgid);
				changed++;
				continue;
			}
		} else if (!want) {
			continue;
		}
		if (bpf_map_update_elem(t->fd_proc, &tgid, &want, BPF_ANY) == 0)
			changed++;
		else if (errno == E2BIG)
			t->scan_full++;
	}
	closedir(d);
	return changed;
}

static int members_add(struct obs_members *m, pid_t pid)
{
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		pid_t *p = realloc(m->pids, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		m->pids = p;
		m->cap = cap;
	}
	m->pids[m->n++] = pid;
	return 0;
}

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int obs_targets_refresh(struct obs_targets *t, uint64_t now_ms)
{
	__u32 key, next, value;
	__u32 *prev = NULL;

	if (t->need_scan &&
	    (t->last_scan_ms == 0 || now_ms - t->last_scan_ms >= OBS_SCAN_PERIOD_MS)) {
		uint64_t t0 = mono_us();
		int changed = scan(t);

		t->scan_us = mono_us() - t0;
		if (t->scan_full > t->scan_full_reported) {
			log_warn("targets: %" PRIu64
				 " processes matched by the /proc scan could not "
				 "be remembered: hs_proc_target is full (%d), ignoring",
				 t->scan_full, HS_MAX_PROCS);
			t->scan_full_reported = t->scan_full;
		}
		t->last_scan_ms = now_ms;
		if (changed > 0) {
			/* Tasks already classified must look again. */
			__u32 zero = 0;
			struct hs_cfg cfg;

			if (++t->gen == 0)
				t->gen = 1;
			cfg.gen = t->gen;
			cfg.ntargets = t->n;

			bpf_map_update_elem(t->fd_cfg, &zero, &cfg, BPF_ANY);
		}
	}
	for (int i = 0; i < HS_NTARGETS; i++)
		t->members[i].n = 0;
	if (!t->n)
		return 0;
	while (bpf_map_get_next_key(t->fd_proc, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(t->fd_proc, &key, &value) == 0 && value >= 1 &&
		    value <= (__u32)t->n)
			members_add(&t->members[value], key);
	}
	return 0;
}

int obs_targets_index(const struct obs_targets *t, const char *name)
{
	for (int i = 0; i < t->n; i++)
		if (streq(t->def[i].name, name))
			return i + 1;
	return -ENOENT;
}

const char *obs_targets_name(const struct obs_targets *t, int index)
{
	if (index == 0)
		return "other";
	if (index < 1 || index > t->n)
		return "?";
	return t->def[index - 1].name;
}
