/* allocprof.c - user side of bpf/allocprof.bpf.c: attach to a process's libc, govern, report.
 *
 * The probes go on the libc file the target maps, reached through /proc/PID/root so that a
 * process in another mount namespace is probed in its own libc, and carry the target's pid
 * (uprobes filter by address space: every thread of it, nothing else). The governor compares
 * the probe hits with the budget at every poll and detaches as soon as it is exceeded; the
 * result then says so, with the figures, and covers the shorter window.
 *
 * Invariants: the window is [attach, detach]; outstanding means allocated inside it and not
 * freed before its end. Allocations the bounded maps could not record are counted as drops.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <time.h>

#include "../../bpf/allocprof.h" /* not observe/allocprof.h, which a plain include finds */
#include "allocprof.skel.h"
#include "lib/log.h"
#include "lib/util.h"
#include "observe/allocprof.h"
#include "observe/symbolize.h"

#define AP_NLINKS 7

struct obs_allocprof {
	struct allocprof_bpf *skel;
	struct bpf_link *links[AP_NLINKS];
	int nlinks;
	int pid;
	int ncpus;
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

static bool is_libc(const char *base)
{
	/* libc.so.6 (glibc 2.34+, musl's libc.so), libc-2.31.so (older glibc) */
	return !strncmp(base, "libc.so", 7) || (!strncmp(base, "libc-", 5) && strstr(base, ".so") &&
						isdigit((unsigned char)base[5]));
}

int obs_find_libc(int pid, char *path, size_t len)
{
	char maps[64], *line = NULL;
	size_t cap = 0;
	_cleanup_fclose_ FILE *f = NULL;
	int err = -ENOENT;

	snprintf(maps, sizeof(maps), "/proc/%d/maps", pid);
	f = fopen(maps, "re");
	if (!f)
		return errno == ENOENT ? -ESRCH : -errno;
	while (getline(&line, &cap, f) > 0) {
		char *file = strchr(line, '/'), *nl, *base;

		if (!file || !strstr(line, " r-xp "))
			continue;
		nl = strchr(file, '\n');
		if (nl)
			*nl = '\0';
		base = strrchr(file, '/') + 1;
		if (!is_libc(base))
			continue;
		if (snprintf(path, len, "/proc/%d/root%s", pid, file) >= (int)len)
			err = -ENAMETOOLONG;
		else
			err = 0;
		break;
	}
	free(line);
	return err;
}

/* The window ends when detaching starts: unregistering uprobes takes a while. */
static void detach(struct obs_allocprof *ap)
{
	if (!ap->stopped) {
		ap->stopped = true;
		ap->stopped_ms = now_ms();
	}
	for (int i = 0; i < ap->nlinks; i++)
		bpf_link__destroy(ap->links[i]);
	ap->nlinks = 0;
}

void obs_allocprof_stop(struct obs_allocprof *ap)
{
	if (!ap)
		return;
	detach(ap);
	allocprof_bpf__destroy(ap->skel);
	free(ap);
}

static int attach(struct obs_allocprof *ap, struct bpf_program *prog, const char *libc,
		  const char *func, bool ret)
{
	LIBBPF_OPTS(bpf_uprobe_opts, uo, .func_name = func, .retprobe = ret);
	struct bpf_link *link;

	if (ap->nlinks >= AP_NLINKS)
		return -ENOSPC;
	link = bpf_program__attach_uprobe_opts(prog, ap->pid, libc, 0, &uo);
	if (!link) {
		int err = -errno;

		log_debug("cannot attach %s to '%s' in '%s': %s", ret ? "uretprobe" : "uprobe",
			  func, libc, strerror(-err));
		return err;
	}
	ap->links[ap->nlinks++] = link;
	return 0;
}

int obs_allocprof_start(const struct obs_allocprof_opts *opts, struct obs_allocprof **out)
{
	struct obs_allocprof *ap;
	char libc[PATH_MAX];
	int err;

	if (opts->pid <= 0)
		return -EINVAL;
	err = obs_find_libc(opts->pid, libc, sizeof(libc));
	if (err)
		return err;
	ap = calloc(1, sizeof(*ap));
	if (!ap)
		return -ENOMEM;
	ap->pid = opts->pid;
	ap->ncpus = libbpf_num_possible_cpus();
	if (ap->ncpus <= 0) {
		err = -EINVAL;
		goto cleanup;
	}
	obs_probe_budget_init(&ap->budget, opts->budget_pct, opts->cost_ns, opts->max_hits_per_s);
	ap->skel = allocprof_bpf__open();
	if (!ap->skel) {
		err = -errno;
		goto cleanup;
	}
	ap->skel->rodata->target_tgid = (__u32)opts->pid;
	err = allocprof_bpf__load(ap->skel);
	if (err)
		goto cleanup;
	/* Returns first: an entry seen without its return would leave a stale pending size. */
	err = attach(ap, ap->skel->progs.ap_alloc_ret, libc, "malloc", true);
	if (!err)
		err = attach(ap, ap->skel->progs.ap_alloc_ret, libc, "calloc", true);
	if (!err)
		err = attach(ap, ap->skel->progs.ap_alloc_ret, libc, "realloc", true);
	if (!err)
		err = attach(ap, ap->skel->progs.ap_malloc, libc, "malloc", false);
	if (!err)
		err = attach(ap, ap->skel->progs.ap_calloc, libc, "calloc", false);
	if (!err)
		err = attach(ap, ap->skel->progs.ap_realloc, libc, "realloc", false);
	if (!err)
		err = attach(ap, ap->skel->progs.ap_free, libc, "free", false);
	if (err)
		goto cleanup;
	ap->started_ms = now_ms();
	*out = ap;
	return 0;
cleanup:
	obs_allocprof_stop(ap);
	return err;
}

static int read_counts(struct obs_allocprof *ap, struct allocprof_counts *sum)
{
	_cleanup_free_ struct allocprof_counts *v = calloc(ap->ncpus, sizeof(*v));
	__u32 zero = 0;

	if (!v)
		return -ENOMEM;
	if (bpf_map_lookup_elem(bpf_map__fd(ap->skel->maps.allocprof_counts), &zero, v))
		return -errno;
	memset(sum, 0, sizeof(*sum));
	for (int i = 0; i < ap->ncpus; i++) {
		sum->hits += v[i].hits;
		sum->allocs += v[i].allocs;
		sum->frees += v[i].frees;
		sum->untracked_free += v[i].untracked_free;
		sum->pending_full += v[i].pending_full;
		sum->allocs_full += v[i].allocs_full;
		sum->stacks_full += v[i].stacks_full;
	}
	return 0;
}

int obs_allocprof_poll(struct obs_allocprof *ap, uint64_t now)
{
	struct allocprof_counts c;
	int err;

	if (ap->stopped)
		return 0;
	err = read_counts(ap, &c);
	if (err)
		return err;
	if (obs_probe_budget_exceeded(&ap->budget, c.hits, now - ap->started_ms, ap->note,
				      sizeof(ap->note))) {
		detach(ap);
		ap->stopped_early = true;
		return 0;
	}
	return 1;
}

static int add_stack(struct obs_allocprof *ap, struct obs_symbolizer *sym, struct obs_profile *p,
		     __s32 id, const struct allocprof_outstanding *o, uint64_t *ips,
		     struct obs_frame *frames)
{
	unsigned n = 0;
	int err;

	if (id >= 0 && !bpf_map_lookup_elem(bpf_map__fd(ap->skel->maps.allocprof_stacks), &id, ips))
		while (n < ALLOCPROF_MAX_DEPTH && ips[n])
			n++;
	/* Every frame is a return address: the first is in the function that allocated. */
	err = obs_profile_symbolize(p, sym, (uint32_t)ap->pid, ips, n, false, false, frames);
	if (err)
		return err;
	return obs_profile_add(p, (uint32_t)ap->pid, (uint64_t)o->count, (uint64_t)o->bytes, frames,
			       n);
}

int obs_allocprof_collect(struct obs_allocprof *ap, struct obs_symbolizer *sym,
			  struct obs_profile *out)
{
	int fd = bpf_map__fd(ap->skel->maps.allocprof_by_stack);
	_cleanup_free_ uint64_t *ips = calloc(ALLOCPROF_MAX_DEPTH, sizeof(*ips));
	_cleanup_free_ struct obs_frame *frames = calloc(ALLOCPROF_MAX_DEPTH, sizeof(*frames));
	struct allocprof_counts c;
	__s32 key, *prev = NULL;
	int err;

	obs_profile_init(out, OBS_PROFILE_ALLOC);
	if (!ips || !frames)
		return -ENOMEM;
	detach(ap);
	err = read_counts(ap, &c);
	if (err)
		return err;
	obs_sym_forget_procs(sym);
	while (!err && bpf_map_get_next_key(fd, prev, &key) == 0) {
		struct allocprof_outstanding o;

		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &o) || o.bytes <= 0 || o.count <= 0)
			continue;
		out->total += (uint64_t)o.count;
		out->total_bytes += (uint64_t)o.bytes;
		err = add_stack(ap, sym, out, key, &o, ips, frames);
	}
	if (err) {
		obs_profile_reset(out);
		return err;
	}
	out->duration_ms = ap->stopped_ms - ap->started_ms;
	out->hits = c.hits;
	out->drops = c.pending_full + c.allocs_full + c.stacks_full;
	if (out->drops)
		snprintf(out->drop_detail, sizeof(out->drop_detail),
			 "%" PRIu64 " calls not followed (too many threads in malloc), %" PRIu64
			 " allocations not recorded (too many outstanding), %" PRIu64
			 " recorded without a stack",
			 (uint64_t)c.pending_full, (uint64_t)c.allocs_full,
			 (uint64_t)c.stacks_full);
	out->stopped_early = ap->stopped_early;
	if (ap->stopped_early)
		hs_strlcpy(out->note, ap->note, sizeof(out->note));
	obs_profile_finish(out);
	return 0;
}
