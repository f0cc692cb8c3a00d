/* funclat.c - user side of bpf/funclat.bpf.c: attach by symbol, govern, report percentiles.
 *
 * libbpf resolves the function's file offset from the ELF symbol table. The executable is
 * reached through /proc/PID/root + its path so that a process in another mount namespace is
 * probed in its own file. Percentiles come from the log2 histogram, interpolated linearly
 * inside the bucket, so they are exact to the bucket (a factor of two) and no better.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <time.h>

#include "../../bpf/funclat.h" /* not observe/funclat.h, which a plain include finds */
#include "funclat.skel.h"
#include "lib/log.h"
#include "lib/util.h"
#include "observe/funclat.h"

struct obs_funclat {
	struct funclat_bpf *skel;
	struct bpf_link *entry, *ret;
	int pid;
	int ncpus;
	char func[128];
	struct obs_probe_budget budget;
	uint64_t started_ms, stopped_ms;
	bool stopped, stopped_early;
	char note[200];
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The window ends when detaching starts: unregistering uprobes takes a while. */
static void detach(struct obs_funclat *fl)
{
	if (!fl->stopped) {
		fl->stopped = true;
		fl->stopped_ms = now_ms();
	}
	bpf_link__destroy(fl->entry);
	bpf_link__destroy(fl->ret);
	fl->entry = fl->ret = NULL;
}

void obs_funclat_stop(struct obs_funclat *fl)
{
	if (!fl)
		return;
	detach(fl);
	funclat_bpf__destroy(fl->skel);
	free(fl);
}

static int exe_path(int pid, char *path, size_t len)
{
	char link[64], target[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/%d/exe", pid);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	target[n] = '\0';
	/* A replaced executable: its old inode is still reachable through the link itself. */
	if (n > 10 && streq(target + n - 10, " (deleted)"))
		return snprintf(path, len, "%s", link) >= (int)len ? -ENAMETOOLONG : 0;
	return snprintf(path, len, "/proc/%d/root%s", pid, target) >= (int)len ? -ENAMETOOLONG : 0;
}

int obs_funclat_start(const struct obs_funclat_opts *opts, struct obs_funclat **out)
{
	LIBBPF_OPTS(bpf_uprobe_opts, uo);
	char binary[PATH_MAX + 64];
	struct obs_funclat *fl;
	int err;

	if (opts->pid <= 0 || !opts->func || !*opts->func)
		return -EINVAL;
	if (kill(opts->pid, 0) < 0 && errno == ESRCH)
		return -ESRCH;
	if (opts->binary)
		err = hs_strlcpy(binary, opts->binary, sizeof(binary));
	else
		err = exe_path(opts->pid, binary, sizeof(binary));
	if (err)
		return err;
	fl = calloc(1, sizeof(*fl));
	if (!fl)
		return -ENOMEM;
	fl->pid = opts->pid;
	fl->ncpus = libbpf_num_possible_cpus();
	if (fl->ncpus <= 0) {
		err = -EINVAL;
		goto cleanup;
	}
	hs_strlcpy(fl->func, opts->func, sizeof(fl->func));
	obs_probe_budget_init(&fl->budget, opts->budget_pct, opts->cost_ns, opts->max_hits_per_s);
	fl->skel = funclat_bpf__open();
	if (!fl->skel) {
		err = -errno;
		goto cleanup;
	}
	fl->skel->rodata->target_tgid = (__u32)opts->pid;
	err = funclat_bpf__load(fl->skel);
	if (err)
		goto cleanup;
	/* The return probe first, so that no measured entry lacks its return. */
	uo.func_name = opts->func;
	uo.retprobe = true;
	fl->ret =
	    bpf_program__attach_uprobe_opts(fl->skel->progs.fl_return, fl->pid, binary, 0, &uo);
	if (fl->ret) {
		uo.retprobe = false;
		fl->entry = bpf_program__attach_uprobe_opts(fl->skel->progs.fl_entry, fl->pid,
							    binary, 0, &uo);
	}
	if (!fl->ret || !fl->entry) {
		err = -errno;
		log_debug("cannot attach to '%s' in '%s': %s", opts->func, binary, strerror(-err));
		goto cleanup;
	}
	fl->started_ms = now_ms();
	*out = fl;
	return 0;
cleanup:
	obs_funclat_stop(fl);
	return err;
}

static int read_hist(struct obs_funclat *fl, struct funclat_hist *sum)
{
	_cleanup_free_ struct funclat_hist *v = calloc(fl->ncpus, sizeof(*v));
	__u32 zero = 0;

	if (!v)
		return -ENOMEM;
	if (bpf_map_lookup_elem(bpf_map__fd(fl->skel->maps.funclat_hist), &zero, v))
		return -errno;
	memset(sum, 0, sizeof(*sum));
	for (int i = 0; i < fl->ncpus; i++) {
		for (int s = 0; s < FUNCLAT_SLOTS; s++)
			sum->slots[s] += v[i].slots[s];
		sum->count += v[i].count;
		sum->sum_ns += v[i].sum_ns;
		sum->hits += v[i].hits;
		sum->start_full += v[i].start_full;
		sum->unmatched += v[i].unmatched;
	}
	return 0;
}

int obs_funclat_poll(struct obs_funclat *fl, uint64_t now)
{
	struct funclat_hist h;
	int err;

	if (fl->stopped)
		return 0;
	err = read_hist(fl, &h);
	if (err)
		return err;
	if (obs_probe_budget_exceeded(&fl->budget, h.hits, now - fl->started_ms, fl->note,
				      sizeof(fl->note))) {
		detach(fl);
		fl->stopped_early = true;
		return 0;
	}
	return 1;
}

int obs_funclat_collect(struct obs_funclat *fl, struct obs_profile *out)
{
	struct funclat_hist h;
	int err;

	obs_profile_init(out, OBS_PROFILE_FUNC);
	detach(fl);
	err = read_hist(fl, &h);
	if (err)
		return err;
	_Static_assert(FUNCLAT_SLOTS == OBS_LAT_SLOTS, "histogram sizes differ");
	memcpy(out->hist, h.slots, sizeof(out->hist));
	hs_strlcpy(out->func, fl->func, sizeof(out->func));
	out->total = h.count;
	out->sum_ns = h.sum_ns;
	out->hits = h.hits;
	out->duration_ms = fl->stopped_ms - fl->started_ms;
	out->drops = h.start_full;
	if (h.start_full || h.unmatched)
		snprintf(out->drop_detail, sizeof(out->drop_detail),
			 "%" PRIu64 " calls not timed (too many threads inside), %" PRIu64
			 " returns without their entry (recursion or entered before the window)",
			 (uint64_t)h.start_full, (uint64_t)h.unmatched);
	out->stopped_early = fl->stopped_early;
	if (fl->stopped_early)
		hs_strlcpy(out->note, fl->note, sizeof(out->note));
	obs_profile_finish(out);
	return 0;
}
