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
#include <linux/magic.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>

#include "lib/log.h"
#include "lib/util.h"
#include "observe/observe.h"

#define OBS_MAX_PINS 64

static const struct obs_collector_ops *const collectors[] = {
    &obs_lifecycle_ops,
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
	} col[ARRAY_SIZE(collectors)];
	char *pins[OBS_MAX_PINS];
	int npins;
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
	return 0;
}

int obs_open(const char *pin_dir, struct obs **out)
{
	struct obs *obs = calloc(1, sizeof(*obs));
	int err, running = 0;

	if (!obs)
		return -ENOMEM;
	obs->pin_dir_fd = -1;
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
	for (int i = 0; i < obs->npins; i++) {
		if (unlink(obs->pins[i]) < 0 && errno != ENOENT)
			log_warn_errno(-errno, "cannot unpin '%s', ignoring", obs->pins[i]);
		free(obs->pins[i]);
	}
	if (obs->pin_dir_fd >= 0) {
		/* Only an empty directory goes: whatever else is there is not ours. */
		if (rmdir(obs->pin_dir) < 0 && errno != ENOENT && errno != ENOTEMPTY)
			log_warn_errno(-errno, "cannot remove '%s', ignoring", obs->pin_dir);
		close(obs->pin_dir_fd);
	}
	free(obs);
}

int obs_sample(struct obs *obs, struct obs_snapshot *snap)
{
	uint64_t t = now_ms(), elapsed = t - obs->last_ms;
	int failed = 0;

	memset(snap, 0, sizeof(*snap));
	snap->at_ms = t;
	snap->tick = obs->ticks++;
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
	}
	return n;
}
