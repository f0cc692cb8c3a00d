/* cputime.c - CPU used per target each tick, as a fraction of one CPU.
 *
 * Why: runbooks (a runaway process) and fitness (the cost of a service, the throughput of a
 * CPU-bound batch job) need how much CPU a target used, exactly and cheaply. The kernel keeps
 * it per process (utime + stime in /proc/PID/stat, in clock ticks); reading it for the
 * members of the policy's targets once a tick is exact where sampling is not, and costs one
 * small read per member. The rest of the host is the host's busy time (/proc/stat) minus the
 * targets'.
 *
 * Invariants: a process is identified by (pid, start time), so a reused pid never yields a
 * negative or borrowed delta; a process that started since the previous tick counts all its
 * CPU; one that exited since loses its last partial tick (the kernel gives no exit-time
 * reading here), which undercounts short-lived processes by at most a tick each.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "observe/observe.h"
#include "observe/targets.h"

struct cpu_proc {
	pid_t pid;
	unsigned long long start;
	uint64_t ticks;
};

struct obs_cputime {
	struct cpu_proc *prev[HS_NTARGETS];
	size_t nprev[HS_NTARGETS];
	uint64_t host_busy, host_total; /* /proc/stat, clock ticks, all CPUs */
	uint64_t last_ms;
	long hz;
};

int obs_cputime_open(struct obs_cputime **out)
{
	*out = calloc(1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	(*out)->hz = sysconf(_SC_CLK_TCK);
	return 0;
}

void obs_cputime_close(struct obs_cputime *c)
{
	if (!c)
		return;
	for (int i = 0; i < HS_NTARGETS; i++)
		free(c->prev[i]);
	free(c);
}

static int proc_ticks(pid_t pid, unsigned long long *start, uint64_t *ticks)
{
	char path[64], buf[1024], *close_paren;
	unsigned long long ut, st, sst;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	close_paren = strrchr(buf, ')');
	if (!close_paren ||
	    sscanf(close_paren + 2,
		   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
		   "%llu",
		   &ut, &st, &sst) != 3)
		return -EIO;
	*ticks = ut + st;
	*start = sst;
	return 0;
}

/* Busy and total clock ticks of all CPUs, from the first line of /proc/stat. */
static int host_ticks(uint64_t *busy, uint64_t *total)
{
	unsigned long long v[10] = {0};
	char buf[512];
	FILE *f = fopen("/proc/stat", "re");
	int n;

	if (!f)
		return -errno;
	n = fgets(buf, sizeof(buf), f)
		? sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
			 &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9])
		: 0;
	fclose(f);
	if (n < 4)
		return -EIO;
	/* user nice system idle iowait irq softirq steal (guest time is inside user) */
	*busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
	*total = *busy + v[3] + v[4];
	return 0;
}

static const struct cpu_proc *find(const struct cpu_proc *v, size_t n, pid_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].pid == pid)
			return &v[i];
	return NULL;
}

void obs_cputime_sample(struct obs_cputime *c, const struct obs_targets *t,
			struct obs_snapshot *snap)
{
	uint64_t now = snap->at_ms, busy = 0, total = 0, sum = 0;
	double secs = c->last_ms && now > c->last_ms ? (double)(now - c->last_ms) / 1000.0 : 0;
	for (int idx = 1; idx < snap->ntargets && idx < HS_NTARGETS; idx++) {
		const struct obs_members *m = &t->members[idx];
		struct cpu_proc *cur = calloc(m->n ? m->n : 1, sizeof(*cur));
		uint64_t delta = 0;
		size_t k = 0;

		if (!cur)
			continue;
		for (size_t i = 0; i < m->n; i++) {
			const struct cpu_proc *p;
			struct cpu_proc q = {.pid = m->pids[i]};

			if (proc_ticks(q.pid, &q.start, &q.ticks))
				continue;
			cur[k++] = q;
			p = find(c->prev[idx], c->nprev[idx], q.pid);
			if (p && p->start == q.start && q.ticks >= p->ticks)
				delta += q.ticks - p->ticks;
			else if (c->last_ms &&
				 q.start * 1000 / (unsigned long long)c->hz + 1000 >= c->last_ms)
				/* started since about the previous tick: start times are clock
				 * ticks since boot, the tick's time CLOCK_MONOTONIC ms */
				delta += q.ticks;
		}
		free(c->prev[idx]);
		c->prev[idx] = cur;
		c->nprev[idx] = k;
		snap->t[idx].cpu_usage = secs > 0 ? (double)delta / (double)c->hz / secs : NAN;
		sum += delta;
	}
	if (host_ticks(&busy, &total) == 0) {
		if (c->host_total && secs > 0 && busy >= c->host_busy) {
			uint64_t host = busy - c->host_busy;

			snap->host.cpu_usage = (double)host / (double)c->hz / secs;
			snap->t[0].cpu_usage =
			    (double)(host > sum ? host - sum : 0) / (double)c->hz / secs;
		} else {
			snap->host.cpu_usage = snap->t[0].cpu_usage = NAN;
		}
		c->host_busy = busy;
		c->host_total = total;
	}
	c->last_ms = now;
}
