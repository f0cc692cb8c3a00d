/* cpuprof.c - user side of bpf/cpuprof.bpf.c: perf events, draining, profiles, leaf windows.
 *
 * One software CPU-clock event (frequency mode) per CPU online at start, each with the BPF
 * program attached (a CPU brought online later is not sampled until the next start). A drain
 * walks the counts map, takes each entry with lookup-and-delete (so a sample is counted once
 * even while the program runs), reads the stacks it names and finally deletes those stack
 * ids. A sample that lands between the read and the delete of its stack loses its stack, and
 * is reported as a drop at the next drain.
 *
 * The always-on collector keeps, for each 10 s window, only {tgid, leaf address, count}
 * sorted and merged: at most CPUPROF_MAX_COUNTS rows a window, symbolized only when
 * obs_cpuprof_recent() is asked.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <inttypes.h>
#include <linux/perf_event.h>
#include <sys/syscall.h>
#include <time.h>

#include "../../bpf/cpuprof.h" /* not observe/cpuprof.h, which a plain "cpuprof.h" finds */
#include "cpuprof.skel.h"
#include "lib/log.h"
#include "lib/util.h"
#include "observe/cpuprof.h"
#include "observe/observe.h"
#include "observe/symbolize.h"

#define CPUPROF_MAX_CPUS 4096

struct leaf {
	uint32_t tgid;
	uint32_t kernel;
	uint64_t ip;
	uint64_t count;
};

struct window {
	uint64_t end_ms;
	struct leaf *v;
	size_t n;
};

struct obs_cpuprof {
	struct cpuprof_bpf *skel;
	struct bpf_link **links;
	int nlinks;
	int ncpus; /* possible CPUs, for the per-CPU drops */
	struct cpuprof_drops prev_drops;
	uint64_t lost_stacks; /* counted entries whose stack was gone at the drain */
	bool keep_procs;      /* collect keeps the symbolizer's process maps (primed) */
	uint64_t started_ms, last_collect_ms;
	/* always-on */
	unsigned window_s;
	struct window *windows;
	unsigned nwindows, next_window;
	uint64_t window_start_ms;
	struct leaf *cur;
	size_t ncur, cur_cap;
	/* scratch for a drain */
	struct cpuprof_key *keys;
	uint64_t *ustack, *kstack;
	uint32_t *stack_ids;
	size_t nstack_ids;
};

static struct obs_cpuprof *host_sampler;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Parses /sys/devices/system/cpu/online ("0-3,6"): sets online[cpu]. Returns 0 or -errno. */
static int online_cpus(bool *online, int max)
{
	_cleanup_fclose_ FILE *f = fopen("/sys/devices/system/cpu/online", "re");
	char buf[4096], *p, *tok, *save = NULL;

	if (!f)
		return -errno;
	if (!fgets(buf, sizeof(buf), f))
		return -EIO;
	for (p = buf; (tok = strtok_r(p, ",\n", &save)); p = NULL) {
		int a, b;

		if (sscanf(tok, "%d-%d", &a, &b) == 2)
			;
		else if (sscanf(tok, "%d", &a) == 1)
			b = a;
		else
			return -EINVAL;
		for (int c = a; c <= b && c < max; c++)
			if (c >= 0)
				online[c] = true;
	}
	return 0;
}

static int attach_cpus(struct obs_cpuprof *cp, unsigned hz)
{
	_cleanup_free_ bool *online = calloc(CPUPROF_MAX_CPUS, sizeof(bool));
	int err, first_err = 0;

	if (!online)
		return -ENOMEM;
	err = online_cpus(online, CPUPROF_MAX_CPUS);
	if (err)
		return err;
	cp->links = calloc(CPUPROF_MAX_CPUS, sizeof(*cp->links));
	if (!cp->links)
		return -ENOMEM;
	for (int cpu = 0; cpu < CPUPROF_MAX_CPUS; cpu++) {
		struct perf_event_attr attr = {
		    .type = PERF_TYPE_SOFTWARE,
		    .size = sizeof(attr),
		    .config = PERF_COUNT_SW_CPU_CLOCK,
		    .sample_freq = hz,
		    .freq = 1,
		};
		struct bpf_link *link;
		int fd;

		if (!online[cpu])
			continue;
		fd = (int)syscall(__NR_perf_event_open, &attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
		if (fd < 0) {
			/* A CPU that went offline since: skip it; anything else is fatal. */
			if (errno == ENODEV)
				continue;
			return -errno;
		}
		link = bpf_program__attach_perf_event(cp->skel->progs.cpuprof_sample, fd);
		if (!link) {
			err = -errno;
			close(fd);
			if (!first_err)
				first_err = err;
			continue;
		}
		cp->links[cp->nlinks++] = link;
	}
	return cp->nlinks ? 0 : first_err ? first_err : -ENODEV;
}

void obs_cpuprof_stop(struct obs_cpuprof *cp)
{
	if (!cp)
		return;
	if (host_sampler == cp)
		host_sampler = NULL;
	/* A perf_event link closes its event when it is destroyed. */
	for (int i = 0; i < cp->nlinks; i++)
		bpf_link__destroy(cp->links[i]);
	free(cp->links);
	cpuprof_bpf__destroy(cp->skel);
	for (unsigned i = 0; i < cp->nwindows; i++)
		free(cp->windows[i].v);
	free(cp->windows);
	free(cp->cur);
	free(cp->keys);
	free(cp->ustack);
	free(cp->kstack);
	free(cp->stack_ids);
	free(cp);
}

int obs_cpuprof_start(const struct obs_cpuprof_opts *opts, struct obs_cpuprof **out)
{
	struct obs_cpuprof *cp;
	unsigned hz = opts && opts->hz ? opts->hz : OBS_CPUPROF_DEFAULT_HZ;
	int err;

	if (opts && opts->ntgids > CPUPROF_MAX_FILTER)
		return -E2BIG;
	cp = calloc(1, sizeof(*cp));
	if (!cp)
		return -ENOMEM;
	cp->window_s = opts && opts->window_s ? opts->window_s : 10;
	cp->nwindows = opts && opts->windows ? opts->windows : 6;
	cp->ncpus = libbpf_num_possible_cpus();
	cp->windows = calloc(cp->nwindows, sizeof(*cp->windows));
	cp->keys = calloc(CPUPROF_MAX_COUNTS, sizeof(*cp->keys));
	cp->ustack = calloc(CPUPROF_MAX_DEPTH, sizeof(uint64_t));
	cp->kstack = calloc(CPUPROF_MAX_DEPTH, sizeof(uint64_t));
	cp->stack_ids = calloc(2 * CPUPROF_MAX_COUNTS, sizeof(*cp->stack_ids));
	if (cp->ncpus <= 0 || !cp->windows || !cp->keys || !cp->ustack || !cp->kstack ||
	    !cp->stack_ids) {
		err = cp->ncpus <= 0 ? -EINVAL : -ENOMEM;
		goto cleanup;
	}
	cp->skel = cpuprof_bpf__open();
	if (!cp->skel) {
		err = -errno;
		goto cleanup;
	}
	cp->skel->rodata->filter_tgids = opts && opts->tgids && opts->ntgids;
	cp->keep_procs = opts && opts->keep_procs;
	err = cpuprof_bpf__load(cp->skel);
	if (err)
		goto cleanup;
	for (unsigned i = 0; cp->skel->rodata->filter_tgids && i < opts->ntgids; i++) {
		__u8 one = 1;

		if (bpf_map_update_elem(bpf_map__fd(cp->skel->maps.cpuprof_filter), &opts->tgids[i],
					&one, BPF_ANY)) {
			err = -errno;
			goto cleanup;
		}
	}
	err = attach_cpus(cp, hz);
	if (err)
		goto cleanup;
	cp->started_ms = cp->last_collect_ms = cp->window_start_ms = now_ms();
	*out = cp;
	return 0;
cleanup:
	obs_cpuprof_stop(cp);
	return err;
}

static int read_drops(struct obs_cpuprof *cp, struct cpuprof_drops *delta)
{
	_cleanup_free_ struct cpuprof_drops *v = calloc(cp->ncpus, sizeof(*v));
	struct cpuprof_drops sum = {0};
	__u32 zero = 0;

	if (!v)
		return -ENOMEM;
	if (bpf_map_lookup_elem(bpf_map__fd(cp->skel->maps.cpuprof_drops), &zero, v))
		return -errno;
	for (int i = 0; i < cp->ncpus; i++) {
		sum.samples += v[i].samples;
		sum.stack_full += v[i].stack_full;
		sum.counts_full += v[i].counts_full;
	}
	delta->samples = sum.samples - cp->prev_drops.samples;
	delta->stack_full = sum.stack_full - cp->prev_drops.stack_full;
	delta->counts_full = sum.counts_full - cp->prev_drops.counts_full;
	cp->prev_drops = sum;
	return 0;
}

/* Reads a stack into buf; returns its depth, 0 when the id is an error or the stack is gone. */
static unsigned read_stack(struct obs_cpuprof *cp, int32_t id, uint64_t *buf)
{
	unsigned n = 0;

	if (id < 0)
		return 0;
	if (bpf_map_lookup_elem(bpf_map__fd(cp->skel->maps.cpuprof_stacks), &id, buf))
		return 0;
	while (n < CPUPROF_MAX_DEPTH && buf[n])
		n++;
	return n;
}

typedef int (*drain_fn)(struct obs_cpuprof *cp, const struct cpuprof_key *key, uint64_t count,
			unsigned un, unsigned kn, void *ctx);

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Takes every count out of the kernel, calls fn with its stacks, then frees the stacks. */
static int drain(struct obs_cpuprof *cp, drain_fn fn, void *ctx)
{
	int counts_fd = bpf_map__fd(cp->skel->maps.cpuprof_counts);
	int stacks_fd = bpf_map__fd(cp->skel->maps.cpuprof_stacks);
	struct cpuprof_key *prev = NULL;
	size_t nkeys = 0;
	int err = 0;

	while (nkeys < CPUPROF_MAX_COUNTS &&
	       bpf_map_get_next_key(counts_fd, prev, &cp->keys[nkeys]) == 0) {
		prev = &cp->keys[nkeys];
		nkeys++;
	}
	cp->nstack_ids = 0;
	for (size_t i = 0; i < nkeys; i++) {
		const struct cpuprof_key *k = &cp->keys[i];
		uint64_t count;
		unsigned un, kn;

		if (bpf_map_lookup_and_delete_elem(counts_fd, k, &count))
			continue;
		un = read_stack(cp, k->user_stack, cp->ustack);
		kn = read_stack(cp, k->kernel_stack, cp->kstack);
		if ((k->user_stack >= 0 && !un) || (k->kernel_stack >= 0 && !kn))
			cp->lost_stacks += count;
		if (k->user_stack >= 0)
			cp->stack_ids[cp->nstack_ids++] = (uint32_t)k->user_stack;
		if (k->kernel_stack >= 0)
			cp->stack_ids[cp->nstack_ids++] = (uint32_t)k->kernel_stack;
		if (!err)
			err = fn(cp, k, count, un, kn, ctx);
	}
	qsort(cp->stack_ids, cp->nstack_ids, sizeof(*cp->stack_ids), u32_cmp);
	for (size_t i = 0; i < cp->nstack_ids; i++)
		if (!i || cp->stack_ids[i] != cp->stack_ids[i - 1])
			bpf_map_delete_elem(stacks_fd, &cp->stack_ids[i]);
	return err;
}

struct collect_ctx {
	struct obs_profile *p;
	struct obs_symbolizer *sym;
	struct obs_frame *frames;
};

static int collect_one(struct obs_cpuprof *cp, const struct cpuprof_key *k, uint64_t count,
		       unsigned un, unsigned kn, void *ctx)
{
	struct collect_ctx *c = ctx;
	int err;

	c->p->total += count;
	if (!un && !kn)
		return 0;
	/* Leaf first: the kernel frames (if the sample was in the kernel), then user code. */
	err = obs_profile_symbolize(c->p, c->sym, k->tgid, cp->kstack, kn, true, true, c->frames);
	if (!err)
		err = obs_profile_symbolize(c->p, c->sym, k->tgid, cp->ustack, un, false, kn == 0,
					    c->frames + kn);
	if (!err)
		err = obs_profile_add(c->p, k->tgid, count, 0, c->frames, un + kn);
	return err;
}

static void describe_drops(struct obs_profile *p, const struct cpuprof_drops *d, uint64_t lost)
{
	p->drops = d->counts_full + d->stack_full + lost;
	if (p->drops)
		snprintf(p->drop_detail, sizeof(p->drop_detail),
			 "%" PRIu64 " samples lost (counts map full), %" PRIu64
			 " without a stack (stack map full), %" PRIu64
			 " whose stack was freed before it was read",
			 (uint64_t)d->counts_full, (uint64_t)d->stack_full, lost);
}

int obs_cpuprof_collect(struct obs_cpuprof *cp, struct obs_symbolizer *sym, struct obs_profile *out)
{
	struct collect_ctx c = {.p = out, .sym = sym};
	struct cpuprof_drops d;
	uint64_t t = now_ms();
	int err;

	obs_profile_init(out, OBS_PROFILE_CPU);
	c.frames = calloc(2 * CPUPROF_MAX_DEPTH, sizeof(*c.frames));
	if (!c.frames)
		return -ENOMEM;
	if (!cp->keep_procs)
		obs_sym_forget_procs(sym);
	cp->lost_stacks = 0;
	err = drain(cp, collect_one, &c);
	free(c.frames);
	if (!err)
		err = read_drops(cp, &d);
	if (err) {
		obs_profile_reset(out);
		return err;
	}
	describe_drops(out, &d, cp->lost_stacks);
	out->duration_ms = t - cp->last_collect_ms;
	cp->last_collect_ms = t;
	obs_profile_finish(out);
	return 0;
}

/* ---- always-on: leaf windows ---- */

static int leaf_one(struct obs_cpuprof *cp, const struct cpuprof_key *k, uint64_t count,
		    unsigned un, unsigned kn, void *ctx)
{
	struct leaf l = {.tgid = k->tgid, .count = count};

	if (kn) {
		l.kernel = 1;
		l.ip = cp->kstack[0];
	} else if (un) {
		l.ip = cp->ustack[0];
	} else {
		return 0;
	}
	if (cp->ncur == cp->cur_cap) {
		size_t ncap = cp->cur_cap ? cp->cur_cap * 2 : 1024;
		struct leaf *v;

		if (ncap > CPUPROF_MAX_COUNTS)
			return -ENOSPC;
		v = realloc(cp->cur, ncap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		cp->cur = v;
		cp->cur_cap = ncap;
	}
	cp->cur[cp->ncur++] = l;
	return 0;
}

static int leaf_cmp(const void *a, const void *b)
{
	const struct leaf *x = a, *y = b;

	if (x->tgid != y->tgid)
		return x->tgid < y->tgid ? -1 : 1;
	if (x->kernel != y->kernel)
		return x->kernel < y->kernel ? -1 : 1;
	return x->ip < y->ip ? -1 : x->ip > y->ip;
}

int obs_cpuprof_tick(struct obs_cpuprof *cp, uint64_t now)
{
	struct window *w;
	struct cpuprof_drops d;
	size_t n = 0;
	int err;

	if (now - cp->window_start_ms < (uint64_t)cp->window_s * 1000)
		return 0;
	cp->ncur = 0;
	err = drain(cp, leaf_one, NULL);
	if (err && err != -ENOSPC)
		return err;
	err = read_drops(cp, &d);
	if (err)
		return err;
	if (d.counts_full || d.stack_full)
		log_debug("cpuprof: %" PRIu64 " samples lost, %" PRIu64 " without a stack",
			  (uint64_t)d.counts_full, (uint64_t)d.stack_full);
	qsort(cp->cur, cp->ncur, sizeof(*cp->cur), leaf_cmp);
	for (size_t i = 0; i < cp->ncur; i++) {
		if (n && !leaf_cmp(&cp->cur[n - 1], &cp->cur[i]))
			cp->cur[n - 1].count += cp->cur[i].count;
		else
			cp->cur[n++] = cp->cur[i];
	}
	w = &cp->windows[cp->next_window];
	free(w->v);
	*w = (struct window){.end_ms = now, .n = n};
	if (n) {
		w->v = malloc(n * sizeof(*w->v));
		if (!w->v)
			w->n = 0;
		else
			memcpy(w->v, cp->cur, n * sizeof(*w->v));
	}
	cp->next_window = (cp->next_window + 1) % cp->nwindows;
	cp->window_start_ms = now;
	return 0;
}

int obs_cpuprof_recent(struct obs_cpuprof *cp, struct obs_symbolizer *sym, uint32_t tgid,
		       unsigned seconds, uint64_t now, struct obs_profile *out)
{
	int err = 0;

	obs_profile_init(out, OBS_PROFILE_CPU);
	obs_sym_forget_procs(sym);
	for (unsigned i = 0; i < cp->nwindows && !err; i++) {
		const struct window *w = &cp->windows[i];

		if (!w->end_ms || w->end_ms + (uint64_t)seconds * 1000 < now)
			continue;
		out->duration_ms += (uint64_t)cp->window_s * 1000;
		for (size_t j = 0; j < w->n && !err; j++) {
			const struct leaf *l = &w->v[j];
			struct obs_frame f;

			if (tgid && l->tgid != tgid)
				continue;
			out->total += l->count;
			err = obs_profile_symbolize(out, sym, l->tgid, &l->ip, 1, l->kernel, true,
						    &f);
			if (!err)
				err = obs_profile_add(out, l->tgid, l->count, 0, &f, 1);
		}
	}
	if (err) {
		obs_profile_reset(out);
		return err;
	}
	obs_profile_finish(out);
	return 0;
}

struct obs_cpuprof *obs_cpuprof_host(void)
{
	return host_sampler;
}

/* ---- the always-on collector ---- */

static int cc_open(struct obs *obs, void **state, char *reason, size_t reason_len)
{
	static const struct obs_pin pins[] = {
	    {"cpuprof_counts", "cpuprof_counts"},
	    {"cpuprof_stacks", "cpuprof_stacks"},
	    {"cpuprof_drops", "cpuprof_drops"},
	    {"cpuprof_sample", "cpuprof_sample"},
	};
	struct obs_cpuprof *cp;
	int err;

	if (host_sampler) {
		snprintf(reason, reason_len, "already running in this process");
		return -EBUSY;
	}
	err = obs_cpuprof_start(NULL, &cp);
	if (err) {
		snprintf(reason, reason_len, "cannot start CPU-clock sampling: %s", strerror(-err));
		return err == -ENOENT || err == -EOPNOTSUPP || err == -EINVAL ? -EOPNOTSUPP : err;
	}
	err =
	    obs_finish_object(obs, cp->skel->obj, NULL, pins, ARRAY_SIZE(pins), reason, reason_len);
	if (err) {
		obs_cpuprof_stop(cp);
		return err;
	}
	host_sampler = cp;
	*state = cp;
	return 0;
}

static int cc_sample(void *state, struct obs_snapshot *snap, uint64_t elapsed_ms)
{
	return obs_cpuprof_tick(state, snap->at_ms);
}

static void cc_close(void *state)
{
	obs_cpuprof_stop(state);
}

const struct obs_collector_ops obs_cpuprof_ops = {
    .name = "cpuprof",
    .why = "CPU-clock samples with stacks at 49 Hz, host-wide: top functions per process",
    .open = cc_open,
    .sample = cc_sample,
    .close = cc_close,
};
