/* syscalls.c - user side of bpf/syscalls.bpf.c: counts, errors by errno, sampled latency.
 *
 * Each tick reads the counts from hs_cpu (mapped by observe.c: no syscall), the per-CPU
 * failure array in one batch, the errno hash and the latency hash, and turns them into
 * per-target deltas: rates, error rates, the top errnos, and the tick's latency histogram
 * (also pushed into a sliding window). Cumulative readings of the previous tick are kept
 * here; nothing in the kernel is ever cleared, so that a reader such as bpftool sees totals
 * since start.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "syscalls.h"
#include "syscalls.skel.h"
#include "lib/log.h"
#include "lib/util.h"
#include "observe/observe.h"
#include "safety/policy.h"

#define ERR_SLOTS 8192 /* open addressing table of previous errno counts: 2 x SC_ERR_ENTRIES */

struct err_prev {
	struct sc_err_key key;
	uint64_t value;
	bool used;
};

struct sc_state {
	struct obs *obs;
	struct syscalls_bpf *skel;
	int ncpus;
	bool btf;	  /* tp_btf programs, else raw_tp */
	uint64_t *failed; /* sc_failed: HS_NTARGETS * SC_NR_MAX * ncpus */
	uint64_t prev_count[HS_NTARGETS], prev_failed[HS_NTARGETS]; /* sums over syscalls */
	struct obs_hist lat_prev[HS_NTARGETS];
	struct obs_window lat_window[HS_NTARGETS];
	struct err_prev *errs;
	uint64_t overflow_reported;
	struct bpf_program *enter, *exit;
	struct bpf_link *enter_link, *exit_link;
	uint64_t window_start_ms; /* of the current or last latency window; 0: none yet */
};

static void sc_close(void *p)
{
	struct sc_state *s = p;

	if (!s)
		return;
	bpf_link__destroy(s->enter_link);
	bpf_link__destroy(s->exit_link);
	syscalls_bpf__destroy(s->skel);
	free(s->failed);
	free(s->errs);
	free(s);
}

/* Opens and loads with one pair of programs: tp_btf (btf true) or raw_tp. */
static int sc_load(struct obs *obs, struct sc_state *s, bool btf)
{
	struct bpf_program *prog;
	int err;

	s->skel = syscalls_bpf__open();
	if (!s->skel)
		return -errno;
	s->skel->rodata->sample_mask = OBS_SC_SAMPLE_RATE - 1;
	bpf_object__for_each_program(prog, s->skel->obj)
	{
		const char *name = bpf_program__name(prog);
		bool is_btf = strstr(name, "_btf") != NULL;

		bpf_program__set_autoload(prog, is_btf == btf);
	}
	err = obs_share_maps(obs, s->skel->obj);
	if (!err)
		err = syscalls_bpf__load(s->skel);
	if (err) {
		syscalls_bpf__destroy(s->skel);
		s->skel = NULL;
		return err;
	}
	s->btf = btf;
	s->enter = btf ? s->skel->progs.sc_enter_btf : s->skel->progs.sc_enter_raw;
	s->exit = btf ? s->skel->progs.sc_exit_btf : s->skel->progs.sc_exit_raw;
	return 0;
}

static int sc_open(struct obs *obs, void **out, char *reason, size_t reason_len)
{
	const struct obs_features *f = obs_features(obs);
	struct sc_state *s;
	int err;

	if (!f->btf || !f->task_storage || (!f->tp_btf && !f->raw_tp)) {
		snprintf(reason, reason_len, "needs %s",
			 !f->btf	    ? "kernel BTF"
			 : !f->task_storage ? "task storage"
					    : "BTF or raw tracepoints");
		return -EOPNOTSUPP;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->obs = obs;
	s->ncpus = libbpf_num_possible_cpus();
	s->failed = calloc((size_t)HS_NTARGETS * SC_NR_MAX * (s->ncpus > 0 ? s->ncpus : 1),
			   sizeof(*s->failed));
	s->errs = calloc(ERR_SLOTS, sizeof(*s->errs));
	if (s->ncpus <= 0 || !s->failed || !s->errs) {
		err = -ENOMEM;
		goto cleanup;
	}
	err = -EOPNOTSUPP;
	if (f->tp_btf)
		err = sc_load(obs, s, true);
	if (err && f->raw_tp) {
		if (f->tp_btf)
			log_info("syscalls: tp_btf programs refused (%s), trying raw tracepoints",
				 strerror(-err));
		err = sc_load(obs, s, false);
	}
	if (err) {
		snprintf(reason, reason_len, "load failed: %s", strerror(-err));
		goto cleanup;
	}
	const struct obs_pin pins[] = {
	    {"sc_failed", "syscalls_failed"},
	    {"sc_errors", "syscalls_errors"},
	    {"sc_latency", "syscalls_latency"},
	    {"sc_stats", "syscalls_stats"},
	    {bpf_program__name(s->enter), "syscalls_enter"},
	    {bpf_program__name(s->exit), "syscalls_exit"},
	};

	/* The exit program always; the entry program only in latency windows (latency_window). */
	err =
	    obs_finish_object(obs, s->skel->obj, NULL, pins, ARRAY_SIZE(pins), reason, reason_len);
	if (err)
		goto cleanup;
	s->exit_link = bpf_program__attach(s->exit);
	if (!s->exit_link) {
		err = -errno;
		snprintf(reason, reason_len, "attach failed: %s", strerror(-err));
		goto cleanup;
	}
	log_info("syscalls: %s programs; latency of 1 in %d syscalls in windows that the "
		 "policy schedules (observe.syscall_latency)",
		 s->btf ? "tp_btf" : "raw_tp", OBS_SC_SAMPLE_RATE);
	*out = s;
	return 0;
cleanup:
	sc_close(s);
	return err;
}

static uint32_t err_hash(const struct sc_err_key *k)
{
	uint32_t h = k->target * 2654435761u ^ k->nr * 40503u ^ k->err * 2246822519u;

	return h & (ERR_SLOTS - 1);
}

/* The previous reading of key, created at 0 on first sight. */
static uint64_t *err_prev(struct sc_state *s, const struct sc_err_key *k)
{
	for (uint32_t i = err_hash(k), n = 0; n < ERR_SLOTS; i = (i + 1) & (ERR_SLOTS - 1), n++) {
		struct err_prev *e = &s->errs[i];

		if (!e->used) {
			e->used = true;
			e->key = *k;
			return &e->value;
		}
		if (!memcmp(&e->key, k, sizeof(*k)))
			return &e->value;
	}
	return NULL;
}

static void add_errno(struct obs_target_snap *t, int err, uint64_t n)
{
	int i;

	for (i = 0; i < t->n_errnos; i++)
		if (t->top_errnos[i].err == err)
			break;
	if (i == t->n_errnos) {
		if (t->n_errnos < OBS_TOP_ERRNOS) {
			t->n_errnos++;
		} else {
			/* Full: replace the smallest if this one is larger. */
			int min = 0;

			for (int j = 1; j < OBS_TOP_ERRNOS; j++)
				if (t->top_errnos[j].count < t->top_errnos[min].count)
					min = j;
			if (t->top_errnos[min].count >= n)
				return;
			i = min;
			t->top_errnos[i].count = 0;
		}
		t->top_errnos[i].err = err;
	}
	t->top_errnos[i].count += n;
	/* Keep them sorted, largest first. */
	while (i > 0 && t->top_errnos[i].count > t->top_errnos[i - 1].count) {
		struct obs_errno_count tmp = t->top_errnos[i];

		t->top_errnos[i] = t->top_errnos[i - 1];
		t->top_errnos[--i] = tmp;
	}
}

static int read_counts(struct sc_state *s, struct obs_snapshot *snap, double secs)
{
	int fd = bpf_map__fd(s->skel->maps.sc_failed), ncpus;
	__u32 n = (__u32)snap->ntargets * SC_NR_MAX, out_batch, count = n;
	const struct hs_cpu *cpus = obs_cpus(s->obs, &ncpus);

	if (!cpus || ncpus != s->ncpus)
		return -ENODATA;
	if (bpf_map_lookup_batch(fd, NULL, &out_batch, NULL, s->failed, &count, NULL) &&
	    errno != ENOENT)
		count = 0;
	/* The batch may stop early; read the rest one by one. */
	for (__u32 k = count; k < n; k++)
		if (bpf_map_lookup_elem(fd, &k, s->failed + (size_t)k * s->ncpus))
			return -errno;
	for (int idx = 0; idx < snap->ntargets; idx++) {
		uint64_t sum = 0, failed = 0;
		struct obs_target_snap *t = &snap->t[idx];

		for (int cpu = 0; cpu < ncpus; cpu++)
			for (size_t nr = 0; nr < SC_NR_MAX; nr++)
				sum += cpus[cpu].sc_exits[idx][nr];
		for (size_t k = (size_t)idx * SC_NR_MAX * ncpus;
		     k < (size_t)(idx + 1) * SC_NR_MAX * ncpus; k++)
			failed += s->failed[k];
		t->sc_count = sum - s->prev_count[idx];
		t->sc_errors = failed - s->prev_failed[idx];
		t->sc_rate = secs > 0 ? (double)t->sc_count / secs : 0;
		t->sc_error_rate = secs > 0 ? (double)t->sc_errors / secs : 0;
		t->sc_error_ratio = t->sc_count ? (double)t->sc_errors / (double)t->sc_count : 0;
		s->prev_count[idx] = sum;
		s->prev_failed[idx] = failed;
	}
	return 0;
}

static void read_errors(struct sc_state *s, struct obs_snapshot *snap)
{
	int fd = bpf_map__fd(s->skel->maps.sc_errors);
	struct sc_err_key key, next, *prev = NULL;
	uint64_t value, *last;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &value))
			continue;
		last = err_prev(s, &key);
		if (!last || key.target >= (__u32)snap->ntargets)
			continue;
		if (value > *last)
			add_errno(&snap->t[key.target], key.err, value - *last);
		*last = value;
	}
}

static void read_latency(struct sc_state *s, struct obs_snapshot *snap)
{
	int fd = bpf_map__fd(s->skel->maps.sc_latency);
	struct obs_hist cum[HS_NTARGETS] = {0};
	struct sc_lat_key key, next, *prev = NULL;
	struct sc_hist h;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (key.target >= HS_NTARGETS || bpf_map_lookup_elem(fd, &key, &h))
			continue;
		for (int i = 0; i < SC_SLOTS; i++)
			cum[key.target].slots[i] += h.slots[i];
		cum[key.target].count += h.count;
		cum[key.target].sum_ns += h.sum_ns;
	}
	for (int idx = 0; idx < snap->ntargets; idx++) {
		struct obs_target_snap *t = &snap->t[idx];

		obs_hist_delta(&t->sc_lat, &cum[idx], &s->lat_prev[idx]);
		s->lat_prev[idx] = cum[idx];
		obs_window_push(&s->lat_window[idx], &t->sc_lat);
		t->sc_lat_window = s->lat_window[idx].sum;
	}
}

static void read_stats(struct sc_state *s, struct obs_snapshot *snap)
{
	struct sc_stats per[s->ncpus];
	__u32 zero = 0;
	uint64_t lost = 0;

	if (bpf_map_lookup_elem(bpf_map__fd(s->skel->maps.sc_stats), &zero, per))
		return;
	for (int cpu = 0; cpu < s->ncpus; cpu++)
		lost += per[cpu].err_map_full + per[cpu].lat_map_full;
	snap->overflows += lost;
	if (lost > s->overflow_reported) {
		log_warn("syscalls: %" PRIu64 " events could not be recorded (maps full or no task "
			 "storage), ignoring",
			 lost - s->overflow_reported);
		s->overflow_reported = lost;
	}
}

/* Opens and closes the latency windows: the entry program costs a tracepoint dispatch on
 * every syscall of the host, so it is attached only window_ms out of every every_ms
 * (observe.syscall_latency in the policy; a reload applies at the next window). */
static void latency_window(struct sc_state *s, uint64_t now)
{
	struct safe_sc_latency cfg = obs_sc_latency(s->obs);

	if (!s->enter_link) {
		if (cfg.every_ms <= 0 ||
		    (s->window_start_ms && now - s->window_start_ms < (uint64_t)cfg.every_ms))
			return;
		s->enter_link = bpf_program__attach(s->enter);
		if (!s->enter_link) {
			log_debug("syscalls: cannot attach the entry program: %s", strerror(errno));
			return;
		}
		s->window_start_ms = now;
		return;
	}
	if (cfg.every_ms <= 0 || now - s->window_start_ms >= (uint64_t)cfg.window_ms) {
		bpf_link__destroy(s->enter_link);
		s->enter_link = NULL;
	}
}

static int sc_sample(void *p, struct obs_snapshot *snap, uint64_t elapsed_ms)
{
	struct sc_state *s = p;
	int err = read_counts(s, snap, elapsed_ms / 1000.0);

	latency_window(s, snap->at_ms);
	if (err)
		return err;
	read_errors(s, snap);
	read_latency(s, snap);
	read_stats(s, snap);
	snap->syscalls_valid = true;
	return 0;
}

const struct obs_collector_ops obs_syscalls_ops = {
    .name = "syscalls",
    .why = "syscall counts, errors by errno and sampled latency per target",
    .open = sc_open,
    .sample = sc_sample,
    .close = sc_close,
};
