/* faults.c - user side of bpf/faults.bpf.c: user page faults per target and tick.
 *
 * Needs the x86 exceptions:page_fault_user tracepoint through tp_btf; on other kernels or
 * architectures the collector is unavailable and says so.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>

#include "faults.h"
#include "faults.skel.h"
#include "lib/util.h"
#include "observe/observe.h"

struct faults_state {
	struct faults_bpf *skel;
	int ncpus;
	struct faults_count *percpu;
	uint64_t prev[HS_NTARGETS];
};

static void faults_close(void *p)
{
	struct faults_state *s = p;

	if (!s)
		return;
	faults_bpf__destroy(s->skel);
	free(s->percpu);
	free(s);
}

static int faults_open(struct obs *obs, void **out, char *reason, size_t reason_len)
{
	static const struct obs_pin pins[] = {
	    {"faults_counts", "faults_counts"},
	    {"faults_user", "faults_user"},
	};
	const struct obs_features *f = obs_features(obs);
	struct faults_state *s;
	int err;

	if (!f->tp_btf) {
		snprintf(reason, reason_len, "needs BTF-typed tracepoints");
		return -EOPNOTSUPP;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ncpus = libbpf_num_possible_cpus();
	s->percpu = calloc(s->ncpus > 0 ? s->ncpus : 1, sizeof(*s->percpu));
	s->skel = faults_bpf__open();
	if (s->ncpus <= 0 || !s->percpu || !s->skel) {
		err = -ENOMEM;
		goto cleanup;
	}
	err = obs_share_maps(obs, s->skel->obj);
	if (!err)
		err = faults_bpf__load(s->skel);
	if (err) {
		/* No such tracepoint (another architecture, an older kernel) is not a failure. */
		snprintf(reason, reason_len, "page_fault_user tracepoint not usable: %s",
			 strerror(-err));
		err = -EOPNOTSUPP;
		goto cleanup;
	}
	err = obs_finish_object(obs, s->skel->obj, s->skel->skeleton, pins, ARRAY_SIZE(pins),
				reason, reason_len);
	if (err)
		goto cleanup;
	*out = s;
	return 0;
cleanup:
	faults_close(s);
	return err;
}

static int faults_sample(void *p, struct obs_snapshot *snap, uint64_t elapsed_ms)
{
	struct faults_state *s = p;
	int fd = bpf_map__fd(s->skel->maps.faults_counts);

	for (__u32 idx = 0; idx < (__u32)snap->ntargets; idx++) {
		uint64_t sum = 0;

		if (bpf_map_lookup_elem(fd, &idx, s->percpu))
			return -errno;
		for (int cpu = 0; cpu < s->ncpus; cpu++)
			sum += s->percpu[cpu].faults;
		snap->t[idx].faults = sum - s->prev[idx];
		s->prev[idx] = sum;
	}
	return 0;
}

const struct obs_collector_ops obs_faults_ops = {
    .name = "faults",
    .why = "user page faults per target (memory growth)",
    .open = faults_open,
    .sample = faults_sample,
    .close = faults_close,
};
