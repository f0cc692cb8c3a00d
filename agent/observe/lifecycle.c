/* lifecycle.c - user side of bpf/lifecycle.bpf.c: exec, fork, exit and fatal signals.
 *
 * The BPF side keeps per-CPU counters per target; each tick sums the CPUs and turns the
 * difference with the previous tick into per-target deltas. This collector also owns target
 * membership in the kernel (fork inherits, exec and exit forget), so it loads first and
 * creates the shared target maps. Needs raw tracepoints, BTF and task storage.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>

#include "lifecycle.h"
#include "lifecycle.skel.h"
#include "lib/log.h"
#include "lib/util.h"
#include "observe/observe.h"

struct lc_state {
	struct lifecycle_bpf *skel;
	int ncpus;
	struct lifecycle_counts *percpu;
	struct lifecycle_counts prev[HS_NTARGETS];
	bool has_switch;
};

static void lc_close(void *p)
{
	struct lc_state *s = p;

	if (!s)
		return;
	lifecycle_bpf__destroy(s->skel);
	free(s->percpu);
	free(s);
}

/* Opens and loads, with the tp_btf sched_switch program that keeps hs_cpu or without it. */
static int lc_load(struct obs *obs, struct lc_state *s, bool with_switch)
{
	int err;

	lifecycle_bpf__destroy(s->skel);
	s->skel = lifecycle_bpf__open();
	if (!s->skel)
		return -errno;
	bpf_program__set_autoload(s->skel->progs.lc_switch, with_switch);
	err = obs_share_maps(obs, s->skel->obj);
	if (!err)
		err = lifecycle_bpf__load(s->skel);
	if (!err)
		s->has_switch = with_switch;
	return err;
}

static int lc_open(struct obs *obs, void **out, char *reason, size_t reason_len)
{
	const struct obs_features *f = obs_features(obs);
	static const struct obs_pin pins[] = {
	    {"lifecycle_counts", "lifecycle_counts"},
	    {"lc_exec", "lifecycle_exec"},
	    {"lc_fork", "lifecycle_fork"},
	    {"lc_exit", "lifecycle_exit"},
	    {"lc_signal", "lifecycle_signal"},
	    {"lc_switch", "lifecycle_switch"},
	};
	struct lc_state *s;
	int err;

	if (!f->raw_tp || !f->btf || !f->task_storage) {
		snprintf(reason, reason_len, "needs %s",
			 !f->btf      ? "kernel BTF"
			 : !f->raw_tp ? "raw tracepoints"
				      : "task storage");
		return -EOPNOTSUPP;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ncpus = libbpf_num_possible_cpus();
	if (s->ncpus <= 0) {
		err = s->ncpus ? s->ncpus : -EINVAL;
		snprintf(reason, reason_len, "cannot count possible cpus");
		goto cleanup;
	}
	s->percpu = calloc(s->ncpus, sizeof(*s->percpu));
	if (!s->percpu) {
		err = -ENOMEM;
		goto cleanup;
	}
	err = lc_load(obs, s, f->tp_btf);
	if (err && f->tp_btf) {
		log_warn("lifecycle: the sched_switch program was refused (%s): syscalls are "
			 "counted for the whole host only, not per target",
			 strerror(-err));
		err = lc_load(obs, s, false);
	}
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
	lc_close(s);
	return err;
}

static int lc_sample(void *p, struct obs_snapshot *snap, uint64_t elapsed_ms)
{
	struct lc_state *s = p;
	int fd = bpf_map__fd(s->skel->maps.lifecycle_counts);

	for (__u32 idx = 0; idx < (__u32)snap->ntargets; idx++) {
		struct lifecycle_counts sum = {0}, *prev = &s->prev[idx];
		struct obs_target_snap *t = &snap->t[idx];

		if (bpf_map_lookup_elem(fd, &idx, s->percpu))
			return -errno;
		for (int cpu = 0; cpu < s->ncpus; cpu++) {
			sum.execs += s->percpu[cpu].execs;
			sum.exits += s->percpu[cpu].exits;
			sum.forks += s->percpu[cpu].forks;
			for (int i = 0; i < LC_NSIG; i++)
				sum.fatal[i] += s->percpu[cpu].fatal[i];
		}
		t->execs = sum.execs - prev->execs;
		t->exits = sum.exits - prev->exits;
		t->forks = sum.forks - prev->forks;
		t->fatal = 0;
		for (int i = 0; i < LC_NSIG; i++) {
			t->fatal_by_sig[i] = sum.fatal[i] - prev->fatal[i];
			t->fatal += t->fatal_by_sig[i];
		}
		*prev = sum;
	}
	snap->lifecycle_valid = true;
	return 0;
}

const struct obs_collector_ops obs_lifecycle_ops = {
    .name = "lifecycle",
    .why = "process execs, forks, exits and fatal signals per target; target membership",
    .open = lc_open,
    .sample = lc_sample,
    .close = lc_close,
};
