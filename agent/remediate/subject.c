/* subject.c - which process a runbook step acts on, from /proc.
 *
 * Why: signals are per target (the kernel aggregates them so), but actions are per process:
 * the one near its descriptor limit, the one eating the CPU. The choice is made from what
 * the kernel says now (/proc/PID/fd, limits, stat, statm), once per episode, and explained
 * in a sentence that goes into the episode. homeostatd never picks itself, and the CPU hog
 * outside a target is never a protected process (the gate would refuse it anyway, but the
 * episode should name the real hog it is allowed to touch).
 */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lib/util.h"
#include "observe/targets.h"
#include "remediate/internal.h"

static int cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return (x > y) - (x < y);
}

static bool pid_in(const pid_t *sorted, size_t n, pid_t pid)
{
	return n && bsearch(&pid, sorted, n, sizeof(pid), cmp_pid);
}

/* Every process of the host (tgids), sorted. */
static int all_procs(pid_t **out, size_t *n)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t *v = NULL;
	size_t cap = 0, len = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		if (len == cap) {
			size_t nc = cap ? cap * 2 : 256;
			pid_t *nv = realloc(v, nc * sizeof(*v));

			if (!nv) {
				free(v);
				closedir(d);
				return -ENOMEM;
			}
			v = nv;
			cap = nc;
		}
		v[len++] = (pid_t)atoi(e->d_name);
	}
	closedir(d);
	qsort(v, len, sizeof(*v), cmp_pid);
	*out = v;
	*n = len;
	return 0;
}

int heal_procs(struct obs *obs, int idx, pid_t **out, size_t *n)
{
	const struct obs_targets *t = obs_targets(obs);
	pid_t self = getpid(), *v = NULL, *in = NULL;
	size_t len = 0, nin = 0;
	int err;

	*out = NULL;
	*n = 0;
	if (idx > 0) {
		const struct obs_members *m = &t->members[idx];

		v = malloc((m->n ? m->n : 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		for (size_t i = 0; i < m->n; i++)
			if (m->pids[i] != self)
				v[len++] = m->pids[i];
		qsort(v, len, sizeof(*v), cmp_pid);
		*out = v;
		*n = len;
		return 0;
	}
	/* The rest of the host: every process in no policy target. */
	for (int i = 1; i <= t->n; i++)
		nin += t->members[i].n;
	in = malloc((nin ? nin : 1) * sizeof(*in));
	if (!in)
		return -ENOMEM;
	nin = 0;
	for (int i = 1; i <= t->n; i++)
		for (size_t j = 0; j < t->members[i].n; j++)
			in[nin++] = t->members[i].pids[j];
	qsort(in, nin, sizeof(*in), cmp_pid);
	err = all_procs(&v, &len);
	if (err) {
		free(in);
		return err;
	}
	size_t w = 0;

	for (size_t i = 0; i < len; i++)
		if (v[i] != self && !pid_in(in, nin, v[i]))
			v[w++] = v[i];
	free(in);
	*out = v;
	*n = w;
	return 0;
}

/* Fields of /proc/PID/stat after the comm: state is field 3. */
static int read_stat(pid_t pid, char *comm, size_t commsize, uint64_t *ticks,
		     unsigned long long *start)
{
	char path[64], buf[1024], *open, *close;
	unsigned long long utime, stime, st;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -ESRCH;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	open = strchr(buf, '(');
	close = strrchr(buf, ')');
	if (!open || !close || close < open)
		return -EIO;
	if (comm) {
		size_t len = (size_t)(close - open - 1);

		if (len >= commsize)
			len = commsize - 1;
		memcpy(comm, open + 1, len);
		comm[len] = '\0';
	}
	/* After ") ": field 3 (state) ... 14 utime, 15 stime, ... 22 starttime. */
	if (sscanf(close + 2,
		   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
		   "%llu",
		   &utime, &stime, &st) != 3)
		return -EIO;
	if (ticks)
		*ticks = utime + stime;
	if (start)
		*start = st;
	return 0;
}

unsigned long long heal_proc_start(pid_t pid)
{
	unsigned long long st = 0;

	if (read_stat(pid, NULL, 0, NULL, &st))
		return 0;
	return st;
}

void heal_proc_comm(pid_t pid, char *buf, size_t size)
{
	if (read_stat(pid, buf, size, NULL, NULL))
		buf[0] = '\0';
}

static void pick_fill(struct heal_subject_pick *out, pid_t pid)
{
	out->pid = pid;
	if (read_stat(pid, out->comm, sizeof(out->comm), NULL, &out->start))
		out->comm[0] = '\0';
}

static long count_fds(pid_t pid)
{
	char path[64];
	struct dirent *e;
	long n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int heal_pick_fd(const pid_t *procs, size_t n, struct heal_subject_pick *out)
{
	double best = -1;
	long best_open = 0;
	rlim_t best_soft = 0;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		struct rlimit rl;
		long open;
		double ratio;

		if (prlimit(procs[i], RLIMIT_NOFILE, NULL, &rl) < 0 || rl.rlim_cur == 0 ||
		    rl.rlim_cur == RLIM_INFINITY)
			continue;
		open = count_fds(procs[i]);
		if (open < 0)
			continue;
		ratio = (double)open / (double)rl.rlim_cur;
		if (ratio > best) {
			best = ratio;
			best_open = open;
			best_soft = rl.rlim_cur;
			out->pid = procs[i];
		}
	}
	if (!out->pid)
		return -ENOENT;
	pick_fill(out, out->pid);
	snprintf(out->why, sizeof(out->why),
		 "pid %d (%s) holds %ld descriptors of its soft limit %llu (%.0f%%), the most "
		 "of %zu processes",
		 (int)out->pid, out->comm, best_open, (unsigned long long)best_soft, best * 100, n);
	return 0;
}

static uint64_t statm_rss_pages(pid_t pid)
{
	char path[64];
	unsigned long long size, rss;
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	ok = fscanf(f, "%llu %llu", &size, &rss) == 2;
	fclose(f);
	return ok ? rss : 0;
}

int heal_pick_rss(const pid_t *procs, size_t n, struct heal_subject_pick *out)
{
	uint64_t best = 0;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		uint64_t rss = statm_rss_pages(procs[i]);

		if (rss > best) {
			best = rss;
			out->pid = procs[i];
		}
	}
	if (!out->pid)
		return -ENOENT;
	pick_fill(out, out->pid);
	snprintf(out->why, sizeof(out->why), "pid %d (%s) has the largest resident set, %.1f MiB",
		 (int)out->pid, out->comm, best * (double)sysconf(_SC_PAGESIZE) / (1 << 20));
	return 0;
}

int heal_cpu_snap_take(struct heal_cpu_snap *s, uint64_t now_ms)
{
	pid_t *v;
	size_t n;
	int err;

	heal_cpu_snap_free(s);
	err = all_procs(&v, &n);
	if (err)
		return err;
	s->ticks = calloc(n ? n : 1, sizeof(*s->ticks));
	if (!s->ticks) {
		free(v);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		if (read_stat(v[i], NULL, 0, &s->ticks[i], NULL))
			s->ticks[i] = UINT64_MAX; /* gone */
	s->pids = v;
	s->n = n;
	s->at_ms = now_ms;
	return 0;
}

void heal_cpu_snap_free(struct heal_cpu_snap *s)
{
	free(s->pids);
	free(s->ticks);
	memset(s, 0, sizeof(*s));
}

static bool protected_comm(const struct safe_policy *p, const char *comm)
{
	for (size_t i = 0; p && i < p->protect.n_processes; i++)
		if (streq(p->protect.processes[i], comm))
			return true;
	return false;
}

int heal_pick_cpu(const struct heal_cpu_snap *before, const pid_t *procs, size_t n, bool inside,
		  const struct safe_policy *policy, uint64_t now_ms, struct heal_subject_pick *out)
{
	long hz = sysconf(_SC_CLK_TCK);
	uint64_t best = 0, elapsed = now_ms > before->at_ms ? now_ms - before->at_ms : 1;
	pid_t self = getpid();

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < before->n; i++) {
		pid_t pid = before->pids[i];
		uint64_t t;
		char comm[16];

		if (before->ticks[i] == UINT64_MAX || pid == self ||
		    pid_in(procs, n, pid) != inside)
			continue;
		if (read_stat(pid, comm, sizeof(comm), &t, NULL) || t < before->ticks[i])
			continue;
		if (!inside && protected_comm(policy, comm))
			continue;
		if (t - before->ticks[i] > best) {
			best = t - before->ticks[i];
			out->pid = pid;
		}
	}
	if (!out->pid)
		return -ENOENT;
	pick_fill(out, out->pid);
	out->cpu = (double)best / (double)hz / ((double)elapsed / 1000.0);
	snprintf(out->why, sizeof(out->why),
		 "pid %d (%s) used %.0f%% of a CPU over the last %.1f s, the most %s",
		 (int)out->pid, out->comm, 100.0 * out->cpu, (double)elapsed / 1000.0,
		 inside ? "in the target" : "outside the target");
	return 0;
}

int heal_proc_cpu(pid_t pid, unsigned long long start, uint64_t now_ms, uint64_t *last_ticks,
		  uint64_t *last_ms, double *frac)
{
	unsigned long long st;
	uint64_t t;

	if (read_stat(pid, NULL, 0, &t, &st) || (start && st != start))
		return -ESRCH;
	*frac = -1;
	if (*last_ms && now_ms > *last_ms && t >= *last_ticks)
		*frac = (double)(t - *last_ticks) / (double)sysconf(_SC_CLK_TCK) /
			((double)(now_ms - *last_ms) / 1000.0);
	*last_ticks = t;
	*last_ms = now_ms;
	return 0;
}
