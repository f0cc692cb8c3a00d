/* actions.c - a runbook step, its subject and target, as a typed actuator request.
 *
 * Why: runbooks speak of intentions ("double the soft descriptor limit, at most 65536",
 * "half a CPU"); actuators take exact values. The translation reads what it needs from the
 * host (the current limit, the process's cgroup) and refuses with a sentence when the step
 * cannot apply (already at the hard limit, no restart command, no cgroup v2 CPU controller
 * and no v1 one either). Nothing here changes the host.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"
#include "remediate/internal.h"
#include "safety/changes.h"

int heal_say(char *why, size_t size, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, size, fmt, ap);
	va_end(ap);
	return err;
}

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* The cgroup directory of pid, relative to /sys/fs/cgroup, that holds file: the v2 one
 * (mounted at /sys/fs/cgroup or /sys/fs/cgroup/unified) when the file is there, else the v1
 * hierarchy of controller. Returns 0 with *v1 set accordingly, or -ENOENT. */
static int proc_cgroup(pid_t pid, const char *v2_file, const char *v1_controller,
		       const char *v1_file, char *dir, size_t size, bool *v1)
{
	char path[64], line[1024], try[PATH_MAX];
	const char *v2_root = exists("/sys/fs/cgroup/cgroup.controllers") ? "" : "unified";
	FILE *f;
	int err = -ENOENT;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -ESRCH;
	while (fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;

		if (!c2)
			continue;
		*c1 = *c2 = '\0';
		c2[1 + strcspn(c2 + 1, "\n")] = '\0';
		if (streq(line, "0") && !c1[1]) {
			snprintf(try, sizeof(try), "/sys/fs/cgroup/%s%s/%s", v2_root, c2 + 1,
				 v2_file);
			if (exists(try)) {
				snprintf(dir, size, "%s%s", v2_root, c2 + 1);
				*v1 = false;
				err = 0;
				break;
			}
		} else if (v1_controller && strstr(c1 + 1, v1_controller)) {
			snprintf(try, sizeof(try), "/sys/fs/cgroup/%s%s/%s", c1 + 1, c2 + 1,
				 v1_file);
			if (exists(try)) {
				snprintf(dir, size, "%s%s", c1 + 1, c2 + 1);
				*v1 = true;
				err = 0;
			}
		}
	}
	fclose(f);
	return err;
}

static int rlimit_request(const struct heal_step *s, const struct heal_subject_pick *sub,
			  struct act_request *req, char *why, size_t size)
{
	const struct heal_rlimit_params *p = &s->params.rlimit_nofile;
	struct rlimit rl;
	double want;

	if (prlimit(sub->pid, RLIMIT_NOFILE, NULL, &rl) < 0)
		return heal_say(why, size, -errno, "cannot read the limits of pid %d: %s",
				(int)sub->pid, strerror(errno));
	want = p->value ? (double)p->value : (double)rl.rlim_cur * (p->factor ? p->factor : 2);
	if (p->max && want > (double)p->max)
		want = (double)p->max;
	if (rl.rlim_max != RLIM_INFINITY && want > (double)rl.rlim_max)
		want = (double)rl.rlim_max;
	if (want <= (double)rl.rlim_cur)
		return heal_say(
		    why, size, -ERANGE,
		    "the soft limit of pid %d is %llu already; the step may raise it to "
		    "%.0f at most (its max %lld, the hard limit %llu)",
		    (int)sub->pid, (unsigned long long)rl.rlim_cur, want, (long long)p->max,
		    (unsigned long long)rl.rlim_max);
	req->rlimit.resource = RLIMIT_NOFILE;
	req->rlimit.soft = (rlim_t)want;
	return 0;
}

static int cgroup_request(const struct heal_step *s, const struct heal_subject_pick *sub,
			  const struct safe_target *t, struct act_request *req, char *why,
			  size_t size)
{
	struct act_cgroup *cg = &req->cgroup;
	bool v1 = false;
	int err;

	req->pid = 0;
	req->pid_start = 0;
	switch (s->action) {
	case HEAL_ACT_CGROUP_CPU_WEIGHT:
		err = proc_cgroup(sub->pid, "cpu.weight", "cpu", "cpu.shares", cg->path,
				  sizeof(cg->path), &v1);
		if (!err && v1) {
			snprintf(cg->file, sizeof(cg->file), "cpu.shares");
			/* cpu.weight 100 is cpu.shares 1024 */
			snprintf(cg->value, sizeof(cg->value), "%lld",
				 (long long)(s->params.cpu_weight.weight * 1024 / 100) ?: 2);
		} else if (!err) {
			snprintf(cg->file, sizeof(cg->file), "cpu.weight");
			snprintf(cg->value, sizeof(cg->value), "%lld",
				 (long long)s->params.cpu_weight.weight);
		}
		break;
	case HEAL_ACT_CGROUP_CPU_QUOTA: {
		long long period = s->params.cpu_quota.period_ms * 1000;

		err = proc_cgroup(sub->pid, "cpu.max", "cpu", "cpu.cfs_quota_us", cg->path,
				  sizeof(cg->path), &v1);
		if (!err && v1) {
			snprintf(cg->file, sizeof(cg->file), "cpu.cfs_quota_us");
			/* v1 keeps its period (cpu.cfs_period_us, 100 ms by default) */
			snprintf(cg->value, sizeof(cg->value), "%lld",
				 (long long)(s->params.cpu_quota.cpus * 100000));
		} else if (!err) {
			snprintf(cg->file, sizeof(cg->file), "cpu.max");
			snprintf(cg->value, sizeof(cg->value), "%lld %lld",
				 (long long)(s->params.cpu_quota.cpus * (double)period), period);
		}
		break;
	}
	default:
		err = proc_cgroup(sub->pid, "memory.high", NULL, NULL, cg->path, sizeof(cg->path),
				  &v1);
		snprintf(cg->file, sizeof(cg->file), "memory.high");
		snprintf(cg->value, sizeof(cg->value), "%llu",
			 (unsigned long long)s->params.memory_high.bytes);
	}
	if (err == -ESRCH)
		return heal_say(why, size, err, "pid %d is gone", (int)sub->pid);
	if (err)
		return heal_say(why, size, err,
				"pid %d is in no cgroup with the %s controller (v2, or v1 where it "
				"has one)",
				(int)sub->pid,
				s->action == HEAL_ACT_CGROUP_MEMORY_HIGH ? "memory" : "cpu");
	if (streq(cg->path, "") || streq(cg->path, "unified") || streq(cg->path, "unified/") ||
	    cg->path[strlen(cg->path) - 1] == '/')
		return heal_say(
		    why, size, -EPERM,
		    "pid %d is in a root cgroup (%s): homeostat does not change the root's "
		    "knobs",
		    (int)sub->pid, cg->path[0] ? cg->path : "/");
	(void)t;
	return 0;
}

int heal_step_request(const struct heal_step *s, const struct heal_subject_pick *sub,
		      const struct safe_target *t, struct act_request *req, char *why,
		      size_t whysize)
{
	static const enum act_kind kinds[] = {
	    [HEAL_ACT_RLIMIT_NOFILE] = ACT_KIND_RLIMIT,
	    [HEAL_ACT_NICE] = ACT_KIND_NICE,
	    [HEAL_ACT_CGROUP_CPU_WEIGHT] = ACT_KIND_CGROUP,
	    [HEAL_ACT_CGROUP_CPU_QUOTA] = ACT_KIND_CGROUP,
	    [HEAL_ACT_CGROUP_MEMORY_HIGH] = ACT_KIND_CGROUP,
	    [HEAL_ACT_SYSCTL] = ACT_KIND_SYSCTL,
	    [HEAL_ACT_SIGNAL] = ACT_KIND_SIGNAL,
	    [HEAL_ACT_RESTART] = ACT_KIND_RESTART,
	};
	bool needs_process = s->action != HEAL_ACT_SYSCTL && s->action != HEAL_ACT_RESTART;

	if (s->action == HEAL_ACT_ALERT || (unsigned)s->action >= ARRAY_SIZE(kinds))
		return heal_say(why, whysize, -EINVAL, "an alert is not a change");
	act_request_init(req, kinds[s->action]);
	if (needs_process && (!sub || !sub->pid))
		return heal_say(why, whysize, -ESRCH, "no process to act on");
	if (sub && sub->pid) {
		req->pid = sub->pid;
		req->pid_start = sub->start;
	}
	switch (s->action) {
	case HEAL_ACT_RLIMIT_NOFILE:
		return rlimit_request(s, sub, req, why, whysize);
	case HEAL_ACT_NICE:
		req->nice.value = (int)s->params.nice.value;
		req->nice.idle = s->params.nice.idle;
		return 0;
	case HEAL_ACT_CGROUP_CPU_WEIGHT:
	case HEAL_ACT_CGROUP_CPU_QUOTA:
	case HEAL_ACT_CGROUP_MEMORY_HIGH:
		return cgroup_request(s, sub, t, req, why, whysize);
	case HEAL_ACT_SYSCTL:
		req->pid = 0;
		req->pid_start = 0;
		if (snprintf(req->sysctl.name, sizeof(req->sysctl.name), "%s",
			     s->params.sysctl.name) >= (int)sizeof(req->sysctl.name) ||
		    snprintf(req->sysctl.value, sizeof(req->sysctl.value), "%s",
			     s->params.sysctl.value) >= (int)sizeof(req->sysctl.value))
			return heal_say(why, whysize, -ENAMETOOLONG,
					"sysctl name or value too long");
		/* net.* belongs to a network namespace: the subject's */
		if (sub && sub->pid && !strncmp(req->sysctl.name, "net.", 4))
			req->sysctl.netns_pid = sub->pid;
		if (s->params.sysctl.raise_only) {
			char now[ACT_VALUE_MAX], *end1, *end2;
			long long cur, want;
			int err = act_read(req, now, sizeof(now));

			if (err)
				return heal_say(why, whysize, err, "cannot read %s: %s",
						req->sysctl.name, strerror(-err));
			cur = strtoll(now, &end1, 10);
			want = strtoll(req->sysctl.value, &end2, 10);
			if (!*end1 && !*end2 && end1 != now && cur >= want)
				return heal_say(why, whysize, -EALREADY,
						"%s is %lld already, not below %lld (raise_only)",
						req->sysctl.name, cur, want);
		}
		return 0;
	case HEAL_ACT_SIGNAL:
		req->signal.signo = heal_signal_number(s->params.signal.signal);
		return 0;
	case HEAL_ACT_RESTART:
		return safe_restart_request(t, s->params.restart.grace_ms + 10000, req, why,
					    whysize);
	default:
		return heal_say(why, whysize, -EINVAL, "unknown action");
	}
}
