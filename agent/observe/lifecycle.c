/* lifecycle.c - user side of bpf/lifecycle.bpf.c: exec, fork, exit and fatal signals.
 *
 * The BPF side keeps per-CPU counters; each tick sums the CPUs and turns the difference with
 * the previous tick into rates. Needs raw tracepoints and BTF (CO-RE reads of task_struct).
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>

#include "lifecycle.h"
#include "lifecycle.skel.h"
#include "lib/util.h"
#include "observe/observe.h"

struct lc_state {
	struct lifecycle_bpf *skel;
	int ncpus;
	struct lifecycle_counts *percpu;
	struct lifecycle_counts prev;
	bool have_prev;
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

static int lc_open(struct obs *obs, void **out, char *reason, size_t reason_len)
{
	const struct obs_features *f = obs_features(obs);
	struct lc_state *s;
	int err;

	if (!f->raw_tp || !f->btf) {
		snprintf(reason, reason_len, "needs %s",
			 !f->btf ? "kernel BTF" : "raw tracepoints");
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
	s->skel = lifecycle_bpf__open_and_load();
	if (!s->skel) {
		err = -errno;
		snprintf(reason, reason_len, "load failed: %s", strerror(errno));
		goto cleanup;
	}
	err = lifecycle_bpf__attach(s->skel);
	if (err) {
		snprintf(reason, reason_len, "attach failed: %s", strerror(-err));
		goto cleanup;
	}
	err = obs_pin_map(obs, s->skel->maps.lifecycle_counts, "lifecycle_counts");
	if (!err)
		err = obs_pin_prog(obs, s->skel->progs.lc_exec, "lifecycle_exec");
	if (!err)
		err = obs_pin_prog(obs, s->skel->progs.lc_fork, "lifecycle_fork");
	if (!err)
		err = obs_pin_prog(obs, s->skel->progs.lc_exit, "lifecycle_exit");
	if (!err)
		err = obs_pin_prog(obs, s->skel->progs.lc_signal, "lifecycle_signal");
	if (err) {
		snprintf(reason, reason_len, "pin failed: %s", strerror(-err));
		goto cleanup;
	}
	*out = s;
	return 0;
cleanup:
	lc_close(s);
	return err;
}

static double per_second(uint64_t delta, uint64_t elapsed_ms)
{
	return elapsed_ms ? (double)delta * 1000.0 / (double)elapsed_ms : 0.0;
}

static int lc_sample(void *p, struct obs_snapshot *snap, uint64_t elapsed_ms)
{
	struct lc_state *s = p;
	struct lifecycle_counts sum = {0};
	struct obs_lifecycle *l = &snap->lifecycle;
	__u32 zero = 0;
	uint64_t prev_fatal = 0;
	int err;

	err = bpf_map_lookup_elem(bpf_map__fd(s->skel->maps.lifecycle_counts), &zero, s->percpu);
	if (err)
		return -errno;
	for (int cpu = 0; cpu < s->ncpus; cpu++) {
		sum.execs += s->percpu[cpu].execs;
		sum.exits += s->percpu[cpu].exits;
		sum.forks += s->percpu[cpu].forks;
		for (int i = 0; i < LC_NSIG; i++)
			sum.fatal[i] += s->percpu[cpu].fatal[i];
	}
	l->execs = sum.execs;
	l->exits = sum.exits;
	l->forks = sum.forks;
	l->fatal_total = 0;
	for (int i = 0; i < LC_NSIG; i++) {
		l->fatal_by_sig[i] = sum.fatal[i];
		l->fatal_total += sum.fatal[i];
		prev_fatal += s->prev.fatal[i];
	}
	if (s->have_prev) {
		l->exec_rate = per_second(sum.execs - s->prev.execs, elapsed_ms);
		l->exit_rate = per_second(sum.exits - s->prev.exits, elapsed_ms);
		l->fork_rate = per_second(sum.forks - s->prev.forks, elapsed_ms);
		l->fatal_rate = per_second(l->fatal_total - prev_fatal, elapsed_ms);
	}
	s->prev = sum;
	s->have_prev = true;
	snap->lifecycle_valid = true;
	return 0;
}

const struct obs_collector_ops obs_lifecycle_ops = {
    .name = "lifecycle",
    .why = "process execs, forks, exits and fatal signals, host-wide",
    .open = lc_open,
    .sample = lc_sample,
    .close = lc_close,
};
