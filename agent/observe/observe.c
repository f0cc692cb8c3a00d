/* observe.c - feature probes, the collector table, pins and the per-tick snapshot.
 *
 * Collectors are a static table (obs_lifecycle_ops, ...). A collector that the kernel cannot
 * run is reported as unavailable with the reason and the agent goes on without it; nothing
 * assumes kprobes, fentry or a mounted tracefs. The pin directory is locked (flock on the
 * directory) so that two daemons never share it; what a crashed daemon left there is removed
 * at start, and everything pinned is unpinned again by obs_close().
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>

#include "lib/log.h"
#include "lib/util.h"
#include "observe/cpuprof.h"
#include "observe/observe.h"
#include "safety/policy.h"

#define OBS_MAX_PINS 64

/* lifecycle first: it owns target membership and creates the shared target maps. */
static const struct obs_collector_ops *const collectors[] = {
    &obs_lifecycle_ops, &obs_syscalls_ops, &obs_runqlat_ops, &obs_cpuprof_ops, &obs_faults_ops,
};

/* Maps every collector shares (bpf/hs_targets.bpf.h), by name. */
static const char *const shared_maps[] = {"hs_tasks",	    "hs_proc_target", "hs_comm_target",
					  "hs_cgrp_target", "hs_cfg",	      "hs_cpu"};
enum { SHARED_TASKS, SHARED_PROC, SHARED_COMM, SHARED_CGRP, SHARED_CFG, SHARED_CPU, SHARED_N };

struct rss_ring {
	double t[OBS_WINDOW_TICKS], v[OBS_WINDOW_TICKS];
	unsigned next, filled;
};

struct obs {
	char pin_dir[256];
	int pin_dir_fd;
	struct obs_features features;
	struct {
		const struct obs_collector_ops *ops;
		void *state;
		enum obs_collector_state st;
		char reason[160];
		bool measured;
		double runs_per_s, ns_per_run, cpu_pct;
	} col[ARRAY_SIZE(collectors)];
	char *pins[OBS_MAX_PINS];
	int npins;
	int shared_fd[SHARED_N];
	struct safe_sc_latency sc_latency;
	const struct hs_cpu *cpus; /* hs_cpu mapped read-only, ncpus entries; NULL: not yet */
	size_t cpus_len;
	int ncpus;
	int opening; /* the collector being opened: its programs are its cost */
	struct {
		int fd;
		int col;
		uint64_t run_cnt, run_ns; /* at the start of the cost window */
	} progs[OBS_MAX_PINS];
	int nprogs;
	int stats_fd;		/* bpf_enable_stats() while a cost window is open, else -1 */
	uint64_t target_losses; /* hs_cpu's loss counters, as last reported */
	uint64_t cost_start_ms, next_cost_ms;
	bool targets_ready;
	struct obs_targets targets;
	const struct safe_policy *policy;     /* until the targets are ready */
	struct rss_ring rss[HS_NTARGETS + 1]; /* the last one: the host */
	struct obs_netns_watch netns[HS_NTARGETS];
	struct obs_cputime *cputime; /* NULL: could not be allocated, cpu_usage stays NAN */
	uint64_t last_ms;
	uint64_t ticks;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *obs_collector_state_name(enum obs_collector_state s)
{
	switch (s) {
	case OBS_RUNNING:
		return "running";
	case OBS_UNAVAILABLE:
		return "unavailable";
	case OBS_FAILED:
		return "failed";
	}
	return "?";
}

static void probe_features(struct obs *obs)
{
	obs->features.btf = access("/sys/kernel/btf/vmlinux", R_OK) == 0;
	obs->features.raw_tp = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_RAW_TRACEPOINT, NULL) == 1;
	/* tp_btf needs BTF; whether the kernel takes the program is learnt at load. */
	obs->features.tp_btf = obs->features.btf;
	obs->features.task_storage =
	    libbpf_probe_bpf_map_type(BPF_MAP_TYPE_TASK_STORAGE, NULL) == 1;
	if (!obs->features.task_storage)
		log_warn("task storage maps not supported by this kernel: collectors that need "
			 "per-task state are unavailable");
	if (!obs->features.btf)
		log_warn(
		    "kernel BTF missing (/sys/kernel/btf/vmlinux): CO-RE collectors unavailable");
	if (!obs->features.raw_tp)
		log_warn("raw tracepoints not supported by this kernel: lifecycle collector "
			 "unavailable");
}

/* Makes sure /sys/fs/bpf (the parent of the pin directory) is a bpf filesystem. */
static int ensure_bpffs(struct obs *obs)
{
	_cleanup_free_ char *parent = strdup(obs->pin_dir);
	struct statfs sfs;
	char *slash;

	if (!parent)
		return -ENOMEM;
	slash = strrchr(parent, '/');
	if (slash && slash != parent)
		*slash = '\0';
	if (statfs(parent, &sfs) == 0 && sfs.f_type == BPF_FS_MAGIC)
		return 0;
	if (mount("bpf", parent, "bpf", 0, "mode=0700") < 0)
		return log_errno(-errno, "cannot mount bpffs on '%s'", parent);
	obs->features.bpffs_mounted = true;
	log_info("mounted bpffs on '%s'", parent);
	return 0;
}

static int remove_stale_pins(struct obs *obs)
{
	DIR *d = fdopendir(dup(obs->pin_dir_fd));
	struct dirent *de;
	int n = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		if (unlinkat(obs->pin_dir_fd, de->d_name, 0) < 0) {
			log_warn_errno(-errno, "cannot remove stale pin '%s/%s', ignoring",
				       obs->pin_dir, de->d_name);
			continue;
		}
		n++;
	}
	closedir(d);
	if (n)
		log_info("removed %d stale pins from '%s' (an earlier daemon did not stop cleanly)",
			 n, obs->pin_dir);
	return 0;
}

static int open_pin_dir(struct obs *obs)
{
	int err = ensure_bpffs(obs);

	if (err)
		return err;
	if (mkdir(obs->pin_dir, 0700) < 0 && errno != EEXIST)
		return log_errno(-errno, "cannot create pin directory '%s'", obs->pin_dir);
	obs->pin_dir_fd = open(obs->pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (obs->pin_dir_fd < 0)
		return log_errno(-errno, "cannot open pin directory '%s'", obs->pin_dir);
	if (flock(obs->pin_dir_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK) {
			log_err("pin directory '%s' is in use by another homeostatd", obs->pin_dir);
			return -EBUSY;
		}
		return log_errno(-errno, "cannot lock pin directory '%s'", obs->pin_dir);
	}
	return remove_stale_pins(obs);
}

static int record_pin(struct obs *obs, const char *name, char **path)
{
	if (obs->npins >= OBS_MAX_PINS)
		return -ENOSPC;
	if (asprintf(path, "%s/%s", obs->pin_dir, name) < 0)
		return -ENOMEM;
	return 0;
}

int obs_pin_map(struct obs *obs, struct bpf_map *map, const char *name)
{
	char *path;
	int err = record_pin(obs, name, &path);

	if (err)
		return err;
	err = bpf_map__pin(map, path);
	if (err) {
		free(path);
		return err;
	}
	obs->pins[obs->npins++] = path;
	return 0;
}

int obs_pin_prog(struct obs *obs, struct bpf_program *prog, const char *name)
{
	char *path;
	int err = record_pin(obs, name, &path);

	if (err)
		return err;
	err = bpf_program__pin(prog, path);
	if (err) {
		free(path);
		return err;
	}
	obs->pins[obs->npins++] = path;
	/* Every program is pinned once: keep its fd to measure what it costs. */
	if (obs->nprogs < OBS_MAX_PINS) {
		int fd = fcntl(bpf_program__fd(prog), F_DUPFD_CLOEXEC, 3);

		if (fd >= 0) {
			obs->progs[obs->nprogs].fd = fd;
			obs->progs[obs->nprogs].col = obs->opening;
			obs->nprogs++;
		}
	}
	return 0;
}

static int prog_stats(int fd, uint64_t *cnt, uint64_t *ns)
{
	struct bpf_prog_info info = {0};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	*cnt = info.run_cnt;
	*ns = info.run_time_ns;
	return 0;
}

/* Opens or closes the cost window; on close, each running collector gets runs per second,
 * nanoseconds per run and its share of one core. */
static void cost_tick(struct obs *obs, uint64_t now)
{
	uint64_t runs[ARRAY_SIZE(collectors)] = {0}, ns[ARRAY_SIZE(collectors)] = {0};
	double secs;

	if (obs->stats_fd < 0) {
		if (now < obs->next_cost_ms || !obs->nprogs)
			return;
		obs->stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
		if (obs->stats_fd < 0) {
			log_warn_errno(obs->stats_fd,
				       "cannot enable BPF run-time statistics, collector "
				       "costs are not measured");
			obs->stats_fd = -1;
			obs->next_cost_ms = UINT64_MAX;
			return;
		}
		for (int i = 0; i < obs->nprogs; i++)
			prog_stats(obs->progs[i].fd, &obs->progs[i].run_cnt, &obs->progs[i].run_ns);
		obs->cost_start_ms = now;
		return;
	}
	if (now - obs->cost_start_ms < OBS_COST_WINDOW_MS)
		return;
	for (int i = 0; i < obs->nprogs; i++) {
		uint64_t c = 0, n = 0;
		int col = obs->progs[i].col;

		if (prog_stats(obs->progs[i].fd, &c, &n) || col < 0 ||
		    col >= (int)ARRAY_SIZE(collectors))
			continue;
		runs[col] += c - obs->progs[i].run_cnt;
		ns[col] += n - obs->progs[i].run_ns;
	}
	close(obs->stats_fd);
	obs->stats_fd = -1;
	secs = (now - obs->cost_start_ms) / 1000.0;
	for (size_t i = 0; i < ARRAY_SIZE(collectors); i++) {
		if (obs->col[i].st != OBS_RUNNING)
			continue;
		obs->col[i].measured = true;
		obs->col[i].runs_per_s = runs[i] / secs;
		obs->col[i].ns_per_run = runs[i] ? (double)ns[i] / (double)runs[i] : 0;
		obs->col[i].cpu_pct = ns[i] / secs / 1e9 * 100.0;
		log_debug("collector '%s': %.0f runs/s, %.0f ns a run, %.3f%% of a core",
			  obs->col[i].ops->name, obs->col[i].runs_per_s, obs->col[i].ns_per_run,
			  obs->col[i].cpu_pct);
	}
	obs->next_cost_ms = now + OBS_COST_PERIOD_MS;
}

_Static_assert(sizeof(struct hs_cpu) % HS_PAGE == 0, "each CPU's hs_cpu entry is whole pages");

int obs_share_maps(struct obs *obs, struct bpf_object *obj)
{
	for (int i = 0; i < SHARED_N; i++) {
		struct bpf_map *m = bpf_object__find_map_by_name(obj, shared_maps[i]);
		int err;

		if (!m)
			continue;
		if (obs->shared_fd[i] < 0) {
			/* This object creates it: hs_cpu has one entry per possible CPU. */
			err = i == SHARED_CPU ? bpf_map__set_max_entries(m, obs->ncpus) : 0;
		} else {
			err = bpf_map__reuse_fd(m, obs->shared_fd[i]);
		}
		if (err)
			return err;
	}
	return 0;
}

const struct hs_cpu *obs_cpus(const struct obs *obs, int *ncpus)
{
	*ncpus = obs->cpus ? obs->ncpus : 0;
	return obs->cpus;
}

/* Maps hs_cpu once it exists: the agent reads every CPU's counts without a syscall. */
static int map_cpus(struct obs *obs)
{
	size_t len = (size_t)obs->ncpus * sizeof(struct hs_cpu);
	void *p;

	if (obs->cpus || obs->shared_fd[SHARED_CPU] < 0)
		return 0;
	p = mmap(NULL, len, PROT_READ, MAP_SHARED, obs->shared_fd[SHARED_CPU], 0);
	if (p == MAP_FAILED)
		return -errno;
	obs->cpus = p;
	obs->cpus_len = len;
	return 0;
}

int obs_adopt_maps(struct obs *obs, struct bpf_object *obj)
{
	bool shares = false;
	int err;

	for (int i = 0; i < SHARED_N; i++) {
		struct bpf_map *m = bpf_object__find_map_by_name(obj, shared_maps[i]);

		shares |= m != NULL;
		if (!m || obs->shared_fd[i] >= 0)
			continue;
		obs->shared_fd[i] = fcntl(bpf_map__fd(m), F_DUPFD_CLOEXEC, 3);
		if (obs->shared_fd[i] < 0)
			return -errno;
		/* Task storage is keyed by pidfd: bpftool cannot walk it, so it is not pinned. */
		if (bpf_map__type(m) == BPF_MAP_TYPE_TASK_STORAGE)
			continue;
		err = obs_pin_map(obs, m, shared_maps[i]);
		if (err)
			return err;
	}
	err = map_cpus(obs);
	if (err)
		return err;
	if (obs->targets_ready || !shares)
		return 0;
	for (int i = 0; i < SHARED_N; i++)
		if (obs->shared_fd[i] < 0)
			return -ENOENT;
	obs_targets_init(&obs->targets, obs->shared_fd[SHARED_PROC], obs->shared_fd[SHARED_COMM],
			 obs->shared_fd[SHARED_CGRP], obs->shared_fd[SHARED_CFG]);
	obs->targets_ready = true;
	/* Before any program is attached, so that the first events are classified right. */
	return obs_targets_configure(&obs->targets, obs->policy);
}

int obs_finish_object(struct obs *obs, struct bpf_object *obj, struct bpf_object_skeleton *skel,
		      const struct obs_pin *pins, size_t npins, char *reason, size_t reason_len)
{
	int err = obs_adopt_maps(obs, obj);

	if (err) {
		snprintf(reason, reason_len, "cannot share target maps: %s", strerror(-err));
		return err;
	}
	if (skel) {
		err = bpf_object__attach_skeleton(skel);
		if (err) {
			snprintf(reason, reason_len, "attach failed: %s", strerror(-err));
			return err;
		}
	}
	for (size_t i = 0; i < npins && !err; i++) {
		struct bpf_map *m = bpf_object__find_map_by_name(obj, pins[i].name);
		struct bpf_program *p = bpf_object__find_program_by_name(obj, pins[i].name);

		if (m)
			err = obs_pin_map(obs, m, pins[i].pin);
		else if (p && bpf_program__autoload(p))
			err = obs_pin_prog(obs, p, pins[i].pin);
		else if (!p)
			err = -ENOENT;
		if (err)
			snprintf(reason, reason_len, "cannot pin '%s': %s", pins[i].name,
				 strerror(-err));
	}
	return err;
}

static void set_policy(struct obs *obs, const struct safe_policy *policy)
{
	obs->policy = policy;
	/* The schema gives the defaults; without a policy, no latency windows. */
	obs->sc_latency = policy ? policy->observe.sc_latency : (struct safe_sc_latency){0};
}

struct safe_sc_latency obs_sc_latency(const struct obs *obs)
{
	return obs->sc_latency;
}

int obs_reconfigure(struct obs *obs, const struct safe_policy *policy)
{
	set_policy(obs, policy);
	if (!obs->targets_ready)
		return 0;
	return obs_targets_configure(&obs->targets, policy);
}

const struct obs_targets *obs_targets(const struct obs *obs)
{
	return obs->targets_ready ? &obs->targets : NULL;
}

const struct obs_target_snap *obs_snapshot_target(const struct obs_snapshot *s, const char *name)
{
	if (streq(name, "host"))
		return &s->host;
	for (int i = 0; i < s->ntargets; i++)
		if (s->t[i].name && streq(s->t[i].name, name))
			return &s->t[i];
	return NULL;
}

int obs_open(const char *pin_dir, const struct safe_policy *policy, struct obs **out)
{
	struct obs *obs = calloc(1, sizeof(*obs));
	int err, running = 0;

	if (!obs)
		return -ENOMEM;
	obs->pin_dir_fd = -1;
	set_policy(obs, policy);
	if (obs_cputime_open(&obs->cputime))
		log_warn("no memory to follow CPU time per target: cpu_usage is unknown");
	obs->stats_fd = -1;
	for (int i = 0; i < SHARED_N; i++)
		obs->shared_fd[i] = -1;
	obs->ncpus = libbpf_num_possible_cpus();
	if (obs->ncpus <= 0) {
		err = obs->ncpus < 0 ? obs->ncpus : -EINVAL;
		log_errno(err, "cannot count the possible CPUs");
		goto cleanup;
	}
	err = hs_strlcpy(obs->pin_dir, pin_dir, sizeof(obs->pin_dir));
	if (err) {
		log_err("pin directory '%s' is too long", pin_dir);
		goto cleanup;
	}
	probe_features(obs);
	err = open_pin_dir(obs);
	if (err)
		goto cleanup;
	for (size_t i = 0; i < ARRAY_SIZE(collectors); i++) {
		const struct obs_collector_ops *ops = collectors[i];

		obs->col[i].ops = ops;
		obs->opening = i;
		err = ops->open(obs, &obs->col[i].state, obs->col[i].reason,
				sizeof(obs->col[i].reason));
		if (err == -EOPNOTSUPP) {
			obs->col[i].st = OBS_UNAVAILABLE;
			log_warn("collector '%s' unavailable: %s, ignoring", ops->name,
				 obs->col[i].reason);
		} else if (err) {
			obs->col[i].st = OBS_FAILED;
			log_warn("collector '%s' failed to start: %s, ignoring", ops->name,
				 obs->col[i].reason[0] ? obs->col[i].reason : strerror(-err));
		} else {
			obs->col[i].st = OBS_RUNNING;
			running++;
			log_info("collector '%s' running: %s", ops->name, ops->why);
		}
	}
	log_info("%d of %zu collectors running, pinned under '%s'", running, ARRAY_SIZE(collectors),
		 obs->pin_dir);
	obs->last_ms = now_ms();
	obs->next_cost_ms = obs->last_ms + OBS_COST_FIRST_MS;
	*out = obs;
	return 0;
cleanup:
	obs_close(obs);
	return err;
}

void obs_close(struct obs *obs)
{
	if (!obs)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(collectors); i++)
		if (obs->col[i].st == OBS_RUNNING && obs->col[i].ops)
			obs->col[i].ops->close(obs->col[i].state);
	obs_cputime_close(obs->cputime);
	for (int i = 0; i < obs->npins; i++) {
		if (unlink(obs->pins[i]) < 0 && errno != ENOENT)
			log_warn_errno(-errno, "cannot unpin '%s', ignoring", obs->pins[i]);
		free(obs->pins[i]);
	}
	if (obs->cpus)
		munmap((void *)obs->cpus, obs->cpus_len);
	for (int i = 0; i < SHARED_N; i++)
		if (obs->shared_fd[i] >= 0)
			close(obs->shared_fd[i]);
	for (int i = 0; i < obs->nprogs; i++)
		close(obs->progs[i].fd);
	if (obs->stats_fd >= 0)
		close(obs->stats_fd);
	if (obs->targets_ready)
		obs_targets_free(&obs->targets);
	if (obs->pin_dir_fd >= 0) {
		/* Only an empty directory goes: whatever else is there is not ours. */
		if (rmdir(obs->pin_dir) < 0 && errno != ENOENT && errno != ENOTEMPTY)
			log_warn_errno(-errno, "cannot remove '%s', ignoring", obs->pin_dir);
		close(obs->pin_dir_fd);
	}
	free(obs);
}

static uint64_t statm_rss(pid_t pid)
{
	char path[64], buf[128];
	unsigned long size, resident;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/statm", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (sscanf(buf, "%lu %lu", &size, &resident) != 2)
		return 0;
	return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Memory in use on the host: MemTotal - MemAvailable. */
static uint64_t host_used(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	unsigned long long total = 0, avail = 0, v;
	char key[64];

	if (!f)
		return 0;
	while (fscanf(f, "%63s %llu kB\n", key, &v) == 2) {
		if (streq(key, "MemTotal:"))
			total = v;
		else if (streq(key, "MemAvailable:"))
			avail = v;
	}
	fclose(f);
	return total > avail ? (total - avail) * 1024 : 0;
}

/* Least-squares slope of the ring, in units per second. */
static double ring_slope(struct rss_ring *r, double t, double v)
{
	double st = 0, sv = 0, stt = 0, stv = 0, n;

	r->t[r->next] = t;
	r->v[r->next] = v;
	r->next = (r->next + 1) % OBS_WINDOW_TICKS;
	if (r->filled < OBS_WINDOW_TICKS)
		r->filled++;
	if (r->filled < 3)
		return 0;
	n = r->filled;
	for (unsigned i = 0; i < r->filled; i++) {
		double x = r->t[i] - t;

		st += x;
		sv += r->v[i];
		stt += x * x;
		stv += x * r->v[i];
	}
	if (n * stt - st * st == 0)
		return 0;
	return (n * stv - st * sv) / (n * stt - st * st);
}

static void sample_memory(struct obs *obs, struct obs_snapshot *snap)
{
	double now = snap->at_ms / 1000.0;

	for (int idx = 1; idx < snap->ntargets; idx++) {
		const struct obs_members *m = &obs->targets.members[idx];
		struct obs_target_snap *t = &snap->t[idx];

		t->nprocs = m->n;
		t->rss_bytes = 0;
		for (size_t i = 0; i < m->n; i++)
			t->rss_bytes += statm_rss(m->pids[i]);
		t->rss_slope = ring_slope(&obs->rss[idx], now, (double)t->rss_bytes);
	}
	snap->host.rss_bytes = host_used();
	snap->host.rss_slope =
	    ring_slope(&obs->rss[HS_NTARGETS], now, (double)snap->host.rss_bytes);
}

/* The host is the sum of every index; its top errnos are merged. */
static void sum_host(struct obs_snapshot *snap, double secs)
{
	struct obs_target_snap *h = &snap->host;

	for (int idx = 0; idx < snap->ntargets; idx++) {
		const struct obs_target_snap *t = &snap->t[idx];

		h->sc_count += t->sc_count;
		h->sc_errors += t->sc_errors;
		obs_hist_add(&h->sc_lat, &t->sc_lat);
		obs_hist_add(&h->sc_lat_window, &t->sc_lat_window);
		obs_hist_add(&h->rq_lat, &t->rq_lat);
		obs_hist_add(&h->rq_lat_window, &t->rq_lat_window);
		h->execs += t->execs;
		h->exits += t->exits;
		h->forks += t->forks;
		h->fatal += t->fatal;
		h->faults += t->faults;
		for (int i = 0; i < 64; i++)
			h->fatal_by_sig[i] += t->fatal_by_sig[i];
		for (int i = 0; i < t->n_errnos; i++) {
			int j;

			for (j = 0; j < h->n_errnos && h->top_errnos[j].err != t->top_errnos[i].err;
			     j++)
				;
			if (j == h->n_errnos && j < OBS_TOP_ERRNOS)
				h->top_errnos[h->n_errnos++].err = t->top_errnos[i].err;
			if (j < OBS_TOP_ERRNOS)
				h->top_errnos[j].count += t->top_errnos[i].count;
		}
	}
	h->sc_rate = secs > 0 ? (double)h->sc_count / secs : 0;
	h->sc_error_rate = secs > 0 ? (double)h->sc_errors / secs : 0;
	h->sc_error_ratio = h->sc_count ? (double)h->sc_errors / (double)h->sc_count : 0;
}

/* Membership losses counted in the kernel (hs_cpu): a full hs_proc_target, a task without
 * storage. Reported once each time they grow; never silent. */
static void target_losses(struct obs *obs, struct obs_snapshot *snap)
{
	uint64_t full = 0, nostore = 0;

	if (!obs->cpus)
		return;
	for (int i = 0; i < obs->ncpus; i++) {
		full += obs->cpus[i].proc_full;
		nostore += obs->cpus[i].no_storage;
	}
	snap->overflows += full + nostore;
	if (full + nostore > obs->target_losses) {
		log_warn("targets: %" PRIu64 " processes could not be remembered (hs_proc_target "
			 "full at %d) and %" PRIu64
			 " tasks had no storage (counted for the rest of "
			 "the host), ignoring",
			 full, HS_MAX_PROCS, nostore);
		obs->target_losses = full + nostore;
	}
}

int obs_sample(struct obs *obs, struct obs_snapshot *snap)
{
	uint64_t t = now_ms(), elapsed = t - obs->last_ms;
	int failed = 0;

	memset(snap, 0, sizeof(*snap));
	snap->at_ms = t;
	snap->tick = obs->ticks++;
	snap->elapsed_ms = elapsed;
	snap->ntargets = 1;
	snap->host.index = -1;
	snap->host.name = "host";
	if (obs->targets_ready) {
		obs_targets_refresh(&obs->targets, t);
		snap->ntargets = obs->targets.n + 1;
	}
	for (int i = 0; i < snap->ntargets; i++) {
		snap->t[i].index = i;
		snap->t[i].name = obs->targets_ready ? obs_targets_name(&obs->targets, i) : "other";
	}
	for (size_t i = 0; i < ARRAY_SIZE(collectors); i++) {
		if (obs->col[i].st != OBS_RUNNING)
			continue;
		int err = obs->col[i].ops->sample(obs->col[i].state, snap, elapsed);

		if (err) {
			log_debug("collector '%s' sample failed: %s", obs->col[i].ops->name,
				  strerror(-err));
			failed++;
		}
	}
	sum_host(snap, elapsed / 1000.0);
	target_losses(obs, snap);
	cost_tick(obs, t);
	if (obs->targets_ready) {
		sample_memory(obs, snap);
		obs_netstat_sample(obs->netns, &obs->targets, snap);
		for (int idx = 0; idx < snap->ntargets; idx++)
			snap->t[idx].cpu_usage = NAN;
		snap->host.cpu_usage = NAN;
		if (obs->cputime)
			obs_cputime_sample(obs->cputime, &obs->targets, snap);
		for (int idx = 0; idx < snap->ntargets; idx++)
			snap->host.listen_overflows += snap->t[idx].listen_overflows;
	}
	obs->last_ms = t;
	return failed ? -EIO : 0;
}

const struct obs_features *obs_features(const struct obs *obs)
{
	return &obs->features;
}

int obs_collectors(const struct obs *obs, struct obs_collector_info *out, int max)
{
	int n = 0;

	for (size_t i = 0; i < ARRAY_SIZE(collectors) && n < max; i++, n++) {
		out[n].name = collectors[i]->name;
		out[n].why = collectors[i]->why;
		out[n].state = obs->col[i].st;
		hs_strlcpy(out[n].reason, obs->col[i].reason, sizeof(out[n].reason));
		out[n].measured = obs->col[i].measured;
		out[n].runs_per_s = obs->col[i].runs_per_s;
		out[n].ns_per_run = obs->col[i].ns_per_run;
		out[n].cpu_pct = obs->col[i].cpu_pct;
	}
	return n;
}
