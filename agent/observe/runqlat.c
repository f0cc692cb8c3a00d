/* runqlat.c - user side of bpf/runqlat.bpf.c: run-queue latency per target.
 *
 * Each tick sums the per-CPU histograms of every target, turns them into the tick's
 * histogram (cumulative minus the previous reading) and pushes it into a sliding window.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>

#include "runqlat.h"
#include "runqlat.skel.h"
#include "lib/util.h"
#include "observe/observe.h"

struct rq_state {
	struct runqlat_bpf *skel;
	int ncpus;
	struct rq_hist *percpu;
	struct obs_hist prev[HS_NTARGETS];
	struct obs_window window[HS_NTARGETS];
};

static void rq_close(void *p)
{
	struct rq_state *s = p;

	if (!s)
		return;
	runqlat_bpf__destroy(s->skel);
	free(s->percpu);
	free(s);
}

static int rq_open(struct obs *obs, void **out, char *reason, size_t reason_len)
{
	const struct obs_features *f = obs_features(obs);
	static const struct obs_pin pins[] = {
	    {"rq_hist", "runqlat_hist"},
	    {"rq_wakeup", "runqlat_wakeup"},
	    {"rq_wakeup_new", "runqlat_wakeup_new"},
	    {"rq_switch", "runqlat_switch"},
	};
	struct rq_state *s;
	int err;

	if (!f->tp_btf || !f->task_storage) {
		snprintf(reason, reason_len, "needs %s",
			 !f->tp_btf ? "BTF-typed tracepoints" : "task storage");
		return -EOPNOTSUPP;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ncpus = libbpf_num_possible_cpus();
	s->percpu = calloc(s->ncpus > 0 ? s->ncpus : 1, sizeof(*s->percpu));
	s->skel = runqlat_bpf__open();
	if (s->ncpus <= 0 || !s->percpu || !s->skel) {
		err = -ENOMEM;
		goto cleanup;
	}
	err = obs_share_maps(obs, s->skel->obj);
	if (!err)
		err = runqlat_bpf__load(s->skel);
	if (err) {
		snprintf(reason, reason_len, "load failed: %s", strerror(-err));
		goto cleanup;
	}
	err = obs_finish_object(obs, s->skel->obj, s->skel->skeleton, pins, ARRAY_SIZE(pins),
				reason, reason_len);
	if (err)
		goto cleanup;
	*out = s;
	return 0;
cleanup:
	rq_close(s);
	return err;
}

static int rq_sample(void *p, struct obs_snapshot *snap, uint64_t elapsed_ms)
{
	struct rq_state *s = p;
	int fd = bpf_map__fd(s->skel->maps.rq_hist);

	for (__u32 idx = 0; idx < (__u32)snap->ntargets; idx++) {
		struct obs_hist cum = {0};

		if (bpf_map_lookup_elem(fd, &idx, s->percpu))
			return -errno;
		for (int cpu = 0; cpu < s->ncpus; cpu++) {
			for (int i = 0; i < RQ_SLOTS; i++)
				cum.slots[i] += s->percpu[cpu].slots[i];
			cum.count += s->percpu[cpu].count;
			cum.sum_ns += s->percpu[cpu].sum_ns;
		}
		obs_hist_delta(&snap->t[idx].rq_lat, &cum, &s->prev[idx]);
		s->prev[idx] = cum;
		obs_window_push(&s->window[idx], &snap->t[idx].rq_lat);
		snap->t[idx].rq_lat_window = s->window[idx].sum;
	}
	snap->runq_valid = true;
	return 0;
}

const struct obs_collector_ops obs_runqlat_ops = {
    .name = "runqlat",
    .why = "run-queue latency (wakeup to running) per target",
    .open = rq_open,
    .sample = rq_sample,
    .close = rq_close,
};
