/* captures.c - on-demand profiles for the control socket, and status's top CPU functions.
 *
 * `homeostat profile` asks for a CPU, allocation or function-latency profile of a target over
 * N seconds. The handler picks the processes (CPU: every live member, through the sampler's
 * tgid filter; ALLOC and FUNC: one process, the --pid given or the lowest live member, since
 * their uprobes are per process), starts the capture and defers its answer. hs_tick() calls
 * ctl_captures_tick(), which polls each capture (the probes' overhead budget may stop it
 * early) and, once its window ended, collects, symbolizes and answers with tables: "capture"
 * (what was measured and what was lost), "top" and "stacks" (CPU, ALLOC), "latency" and
 * "histogram" (FUNC). What differs between kinds is in the table kinds[].
 *
 * Invariants: at most CTL_CAPTURES_MAX captures at once; an active capture holds its
 * profiler and the token of a deferred client; a capture whose client went away is stopped
 * at the next tick, so that probes never outlive the question; ctl_captures_close() stops
 * them all. The answer stays under CTL_MSG_MAX: top rows and stack bytes are bounded.
 *
 * Status's top_cpu is computed only when asked, from the always-on 49 Hz sampler's recent
 * leaf windows (obs_cpuprof_recent()) of at most TOP_CPU_MEMBERS members: no work otherwise.
 */
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/captures.h"
#include "ctl/server.h"
#include "daemon.h"
#include "lib/log.h"
#include "observe/allocprof.h"
#include "observe/cpuprof.h"
#include "observe/funclat.h"
#include "observe/profile.h"
#include "observe/symbolize.h"

#define CAPTURE_CPU_HZ	    99	 /* short windows need samples; 99 stays off the timers' beat */
#define CAPTURE_MAX_PIDS    1024 /* the CPU sampler's tgid filter holds this many */
#define CAPTURE_GRACE_MS    5000 /* a client waits this long past its window */
#define CAPTURE_TOP_ROWS    100	 /* the CLI shows --top K of them */
#define CAPTURE_STACK_BYTES (512 * 1024) /* of folded text in "stacks", under CTL_MSG_MAX */
#define CAPTURE_PIDS_SHOWN  16

#define TOP_CPU_MEMBERS 64 /* members read for status's top_cpu */
#define TOP_CPU_FUNCS	2
/* The always-on sampler closes a window every 10 s (at a tick): 15 s always takes the last
 * closed window, and at most two. */
#define TOP_CPU_SECONDS 15

struct capture;

/* What one kind of profile does and answers. */
struct capture_kind {
	unsigned kind; /* enum ctl_profile_kind */
	enum obs_profile_kind obs_kind;
	bool one_process;   /* uprobes: one process, not every member */
	const char *count;  /* the capture's count: "samples", "allocations", "calls" */
	const char *weight; /* the weight of "top" and "stacks": "samples", "bytes"; NULL: none */
	const char *enoent; /* what -ENOENT from start means */
	int (*start)(struct capture *c);
	int (*poll)(struct capture *c, uint64_t now_ms); /* 1 running, 0 stopped early, -errno */
	int (*collect)(struct capture *c, struct obs_symbolizer *sym, struct obs_profile *out);
	void (*stop)(struct capture *c);
};

struct capture {
	const struct capture_kind *k; /* NULL: a free slot */
	uint64_t token;		      /* of the deferred client */
	char target[CTL_TARGET_MAX + 1];
	char func[CTL_FUNC_MAX + 1];
	unsigned seconds;
	uint64_t end_ms;
	uint32_t *pids;
	unsigned npids;
	unsigned nlive; /* live members of the target when it started */
	bool pid_given;
	struct obs_cpuprof *cp;
	struct obs_allocprof *ap;
	struct obs_funclat *fl;
};

struct ctl_captures {
	struct capture c[CTL_CAPTURES_MAX];
	struct obs_symbolizer *sym;
};

/* The profilers behind each kind. */

static int cpu_start(struct capture *c)
{
	struct obs_cpuprof_opts o = {.hz = CAPTURE_CPU_HZ, .tgids = c->pids, .ntgids = c->npids};

	return obs_cpuprof_start(&o, &c->cp);
}

static int cpu_collect(struct capture *c, struct obs_symbolizer *sym, struct obs_profile *out)
{
	return obs_cpuprof_collect(c->cp, sym, out);
}

static void cpu_stop(struct capture *c)
{
	obs_cpuprof_stop(c->cp);
	c->cp = NULL;
}

static int alloc_start(struct capture *c)
{
	struct obs_allocprof_opts o = {.pid = (int)c->pids[0]};

	return obs_allocprof_start(&o, &c->ap);
}

static int alloc_poll(struct capture *c, uint64_t now_ms)
{
	return obs_allocprof_poll(c->ap, now_ms);
}

static int alloc_collect(struct capture *c, struct obs_symbolizer *sym, struct obs_profile *out)
{
	return obs_allocprof_collect(c->ap, sym, out);
}

static void alloc_stop(struct capture *c)
{
	obs_allocprof_stop(c->ap);
	c->ap = NULL;
}

static int func_start(struct capture *c)
{
	struct obs_funclat_opts o = {.pid = (int)c->pids[0], .func = c->func};

	return obs_funclat_start(&o, &c->fl);
}

static int func_poll(struct capture *c, uint64_t now_ms)
{
	return obs_funclat_poll(c->fl, now_ms);
}

static int func_collect(struct capture *c, struct obs_symbolizer *sym, struct obs_profile *out)
{
	return obs_funclat_collect(c->fl, out);
}

static void func_stop(struct capture *c)
{
	obs_funclat_stop(c->fl);
	c->fl = NULL;
}

static const struct capture_kind kinds[] = {
    {.kind = CTL_PROFILE_CPU,
     .obs_kind = OBS_PROFILE_CPU,
     .count = "samples",
     .weight = "samples",
     .enoent = "no CPU-clock perf event on this host",
     .start = cpu_start,
     .collect = cpu_collect,
     .stop = cpu_stop},
    {.kind = CTL_PROFILE_ALLOC,
     .obs_kind = OBS_PROFILE_ALLOC,
     .one_process = true,
     .count = "allocations",
     .weight = "bytes",
     .enoent = "it maps no libc (a static binary?)",
     .start = alloc_start,
     .poll = alloc_poll,
     .collect = alloc_collect,
     .stop = alloc_stop},
    {.kind = CTL_PROFILE_FUNC,
     .obs_kind = OBS_PROFILE_FUNC,
     .one_process = true,
     .count = "calls",
     .enoent = "no such function in its executable",
     .start = func_start,
     .poll = func_poll,
     .collect = func_collect,
     .stop = func_stop},
};

static const struct capture_kind *kind_find(unsigned kind)
{
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
		if (kinds[i].kind == kind)
			return &kinds[i];
	return NULL;
}

static const char *kind_name(const struct capture_kind *k)
{
	return ctl_profile_kind_name(k->kind);
}

static int captures_get(struct hs_daemon *d, struct ctl_captures **out)
{
	struct ctl_captures *cs = d->captures;
	int err;

	if (!cs) {
		cs = calloc(1, sizeof(*cs));
		if (!cs)
			return -ENOMEM;
		err = obs_sym_new(NULL, &cs->sym);
		if (err) {
			free(cs);
			return err;
		}
		d->captures = cs;
	}
	*out = cs;
	return 0;
}

static void capture_free(struct capture *c)
{
	if (c->k)
		c->k->stop(c);
	free(c->pids);
	*c = (struct capture){0};
}

static double round1(double v)
{
	return round(v * 10) / 10;
}

/* "1234, 1240" (at most CAPTURE_PIDS_SHOWN, then "... (N in all)"). */
static void pid_list(const struct capture *c, char *buf, size_t size)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < c->npids && i < CAPTURE_PIDS_SHOWN && off < size; i++) {
		int n = snprintf(buf + off, size - off, "%s%" PRIu32, i ? ", " : "", c->pids[i]);

		off += n > 0 ? (size_t)n : 0;
	}
	if (c->npids > CAPTURE_PIDS_SHOWN && off < size)
		snprintf(buf + off, size - off, ", ... (%u in all)", c->npids);
}

/* Starting. */

static int unknown_target(const struct obs_targets *t, const char *name, struct ctl_response *r)
{
	char known[512];
	size_t off = 0;

	known[0] = '\0';
	for (int i = 0; i < t->n && off < sizeof(known); i++) {
		int n = snprintf(known + off, sizeof(known) - off, "%s%s", i ? ", " : "",
				 t->def[i].name);

		off += n > 0 ? (size_t)n : 0;
	}
	if (!t->n)
		return ctl_resp_error(r, -ENOENT, "unknown target '%s' (the policy has none)",
				      name);
	return ctl_resp_error(r, -ENOENT, "unknown target '%s' (known: %s)", name, known);
}

static bool alive(pid_t pid)
{
	return kill(pid, 0) == 0 || errno == EPERM;
}

static int pid_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Fills c->pids with the processes to profile, or says why there are none. */
static int choose_pids(struct capture *c, const struct obs_members *m, uint32_t pid,
		       struct ctl_response *r)
{
	bool member = false;

	c->pids = calloc(m->n ? m->n : 1, sizeof(*c->pids));
	if (!c->pids)
		return ctl_resp_error(r, -ENOMEM, "out of memory");
	for (size_t i = 0; i < m->n; i++) {
		member |= (uint32_t)m->pids[i] == pid;
		if (alive(m->pids[i]))
			c->pids[c->nlive++] = (uint32_t)m->pids[i];
	}
	qsort(c->pids, c->nlive, sizeof(*c->pids), pid_cmp);
	if (pid) {
		if (!member)
			return ctl_resp_error(r, -EINVAL,
					      "pid %" PRIu32 " is not a member of target '%s'", pid,
					      c->target);
		if (!alive((pid_t)pid))
			return ctl_resp_error(r, -ESRCH, "pid %" PRIu32 " of target '%s' is gone",
					      pid, c->target);
		c->pids[0] = pid;
		c->npids = 1;
		c->pid_given = true;
		return 0;
	}
	if (!c->nlive)
		return ctl_resp_error(r, -ESRCH, "target '%s' has no live process", c->target);
	c->npids = c->k->one_process ? 1 : c->nlive;
	if (c->npids > CAPTURE_MAX_PIDS)
		c->npids = CAPTURE_MAX_PIDS;
	return 0;
}

static int start_error(const struct capture *c, int err, struct ctl_response *r)
{
	const char *why;

	switch (err) {
	case -ESRCH:
		why = "the process is gone";
		break;
	case -ENOENT:
		why = c->k->enoent;
		break;
	case -EOPNOTSUPP:
		why = "this kernel does not support it";
		break;
	default:
		why = strerror(-err);
	}
	if (c->k->kind == CTL_PROFILE_FUNC && err == -ENOENT)
		return ctl_resp_error(r, err,
				      "cannot trace '%s' in pid %" PRIu32 " of target '%s': %s",
				      c->func, c->pids[0], c->target, why);
	if (c->k->one_process)
		return ctl_resp_error(
		    r, err, "cannot start the %s profile of pid %" PRIu32 " of target '%s': %s",
		    kind_name(c->k), c->pids[0], c->target, why);
	return ctl_resp_error(r, err, "cannot start the %s profile of target '%s': %s",
			      kind_name(c->k), c->target, why);
}

static int busy(const struct ctl_captures *cs, struct ctl_response *r)
{
	char running[256];
	size_t off = 0;

	for (size_t i = 0; i < ARRAY_SIZE(cs->c) && off < sizeof(running); i++) {
		int n = snprintf(running + off, sizeof(running) - off, "%s%s of '%s'",
				 i ? ", " : "", kind_name(cs->c[i].k), cs->c[i].target);

		off += n > 0 ? (size_t)n : 0;
	}
	return ctl_resp_error(r, -EBUSY,
			      "%d profiles are running already (%s), at most %d at once: try "
			      "again when one ends",
			      CTL_CAPTURES_MAX, running, CTL_CAPTURES_MAX);
}

int ctl_captures_start(struct hs_daemon *d, const struct ctl_request *req, struct ctl_response *r)
{
	const struct capture_kind *k = kind_find(req->kind);
	const struct obs_targets *t = obs_targets(d->obs);
	struct ctl_captures *cs;
	struct capture *c = NULL;
	char pids[256];
	int index, err;

	if (!k)
		return ctl_resp_error(r, -EINVAL, "unknown profile kind %u", req->kind);
	index = obs_targets_index(t, req->target);
	if (index < 0)
		return unknown_target(t, req->target, r);
	err = captures_get(d, &cs);
	if (err)
		return ctl_resp_error(r, err, "cannot set up profiling: %s", strerror(-err));
	for (size_t i = 0; i < ARRAY_SIZE(cs->c) && !c; i++)
		if (!cs->c[i].k)
			c = &cs->c[i];
	if (!c)
		return busy(cs, r);

	*c = (struct capture){.k = k, .token = req->token, .seconds = req->seconds};
	hs_strlcpy(c->target, req->target, sizeof(c->target));
	hs_strlcpy(c->func, req->func, sizeof(c->func));
	err = choose_pids(c, &t->members[index], req->pid, r);
	if (!err) {
		err = k->start(c);
		if (err)
			start_error(c, err, r);
	}
	if (!err) {
		err = ctl_server_extend(d->ctl, req->token,
					ctl_now_ms() + (uint64_t)req->seconds * 1000 +
					    CAPTURE_GRACE_MS);
		if (err)
			ctl_resp_error(r, err, "cannot defer the answer: %s", strerror(-err));
	}
	if (err) {
		if (c->cp || c->ap || c->fl)
			k->stop(c);
		c->k = NULL;
		capture_free(c);
		return r->status;
	}
	c->end_ms = ctl_now_ms() + (uint64_t)req->seconds * 1000;
	pid_list(c, pids, sizeof(pids));
	log_info("profiling target '%s' for %u s: %s%s%s of pid%s %s", c->target, c->seconds,
		 kind_name(k), c->func[0] ? " " : "", c->func, c->npids > 1 ? "s" : "", pids);
	return CTL_DEFERRED;
}

/* Answering. */

static int table_capture(const struct capture *c, const struct obs_profile *p, size_t omitted,
			 struct ctl_response *r)
{
	const char *cols[] = {"kind",	 "target",	"pids",		 "chosen",
			      "seconds", "duration_ms", c->k->count,	 "bytes",
			      "hits",	 "drops",	"stopped_early", "note"};
	static const enum ctl_col_type types[] = {CTL_COL_STRING, CTL_COL_STRING, CTL_COL_STRING,
						  CTL_COL_STRING, CTL_COL_INT,	  CTL_COL_INT,
						  CTL_COL_INT,	  CTL_COL_INT,	  CTL_COL_INT,
						  CTL_COL_INT,	  CTL_COL_STRING, CTL_COL_STRING};
	char pids[256], note[600];
	size_t off = 0;

	_Static_assert(ARRAY_SIZE(cols) == ARRAY_SIZE(types), "columns and types");
	pid_list(c, pids, sizeof(pids));
	note[0] = '\0';
	if (p->stopped_early)
		off += snprintf(note + off, sizeof(note) - off, "%s", p->note);
	if (p->drop_detail[0] && off < sizeof(note))
		off += snprintf(note + off, sizeof(note) - off, "%s%s", off ? "; " : "",
				p->drop_detail);
	if (omitted && off < sizeof(note))
		snprintf(note + off, sizeof(note) - off,
			 "%s%zu lighter stacks left out of the answer", off ? "; " : "", omitted);

	ctl_resp_table(r, "capture", ARRAY_SIZE(cols), cols, types);
	ctl_resp_row(r);
	ctl_resp_cell_str(r, kind_name(c->k));
	ctl_resp_cell_str(r, c->target);
	ctl_resp_cell_str(r, pids);
	if (c->pid_given)
		ctl_resp_cell_str(r, "given (--pid)");
	else if (c->nlive == 1)
		ctl_resp_cell_str(r, "the only live member");
	else if (c->k->one_process)
		ctl_resp_cell_strf(r, "the first (lowest pid) of %u live members", c->nlive);
	else if (c->npids < c->nlive)
		ctl_resp_cell_strf(r, "the first %u of %u live members", c->npids, c->nlive);
	else
		ctl_resp_cell_strf(r, "all %u live members", c->nlive);
	ctl_resp_cell_int(r, c->seconds);
	ctl_resp_cell_int(r, (int64_t)p->duration_ms);
	ctl_resp_cell_int(r, (int64_t)p->total);
	if (c->k->kind == CTL_PROFILE_ALLOC)
		ctl_resp_cell_int(r, (int64_t)p->total_bytes);
	else
		ctl_resp_cell_null(r);
	if (c->k->one_process)
		ctl_resp_cell_int(r, (int64_t)p->hits);
	else
		ctl_resp_cell_null(r);
	ctl_resp_cell_int(r, (int64_t)p->drops);
	ctl_resp_cell_str(r, p->stopped_early ? "yes" : "no");
	return ctl_resp_cell_str(r, note[0] ? note : NULL);
}

static int table_top(const struct capture *c, const struct obs_profile *p, struct ctl_response *r)
{
	char self[32], total[32];
	const char *cols[] = {"function", "module", self, "self_pct", total, "total_pct"};
	static const enum ctl_col_type types[] = {CTL_COL_STRING, CTL_COL_STRING, CTL_COL_INT,
						  CTL_COL_REAL,	  CTL_COL_INT,	  CTL_COL_REAL};
	bool samples = streq(c->k->weight, "samples");
	struct obs_profile_fn *rows;
	int n;

	/* "self" and "total" for samples, "self_bytes" and "total_bytes" for bytes. */
	snprintf(self, sizeof(self), "self%s%s", samples ? "" : "_", samples ? "" : c->k->weight);
	snprintf(total, sizeof(total), "total%s%s", samples ? "" : "_",
		 samples ? "" : c->k->weight);
	n = obs_profile_top(p, 0, &rows);
	if (n < 0)
		return ctl_resp_error(r, n, "cannot rank the functions: %s", strerror(-n));
	ctl_resp_table(r, "top", ARRAY_SIZE(cols), cols, types);
	for (int i = 0; i < n && i < CAPTURE_TOP_ROWS; i++) {
		ctl_resp_row(r);
		ctl_resp_cell_str(r, rows[i].func);
		ctl_resp_cell_str(r, rows[i].module);
		ctl_resp_cell_int(r, (int64_t)rows[i].self);
		ctl_resp_cell_real(r, round1(rows[i].self_pct));
		ctl_resp_cell_int(r, (int64_t)rows[i].total);
		ctl_resp_cell_real(r, round1(rows[i].total_pct));
	}
	free(rows);
	return r->err;
}

/* Root first, ';' between frames, as flame-graph tools read them (obs_profile_write_folded's
 * rules: ';' and blanks in names become '_', kernel frames get "_[k]"). */
static int folded(const struct obs_profile_stack *s, char **out, size_t *len)
{
	FILE *f = open_memstream(out, len);

	if (!f)
		return -ENOMEM;
	for (uint32_t j = s->nframes; j-- > 0;) {
		const char *name = s->frames[j].func ? s->frames[j].func : "[unknown]";

		if (j + 1 < s->nframes)
			fputc(';', f);
		for (; *name; name++)
			fputc(*name == ';' || *name == ' ' ? '_' : *name, f);
		if (s->frames[j].kernel)
			fputs("_[k]", f);
	}
	return fclose(f) ? -ENOMEM : 0;
}

/* Folded stacks: equal texts merged (stacks that differ only by addresses inside the same
 * functions), heaviest first, as many as fit in CAPTURE_STACK_BYTES. */
struct folded {
	char *text;
	uint64_t weight; /* samples or bytes */
	uint64_t count;	 /* alloc: allocations */
};

struct folded_set {
	struct folded *v;
	size_t n, omitted;
};

static void folded_free(struct folded_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		free(set->v[i].text);
	free(set->v);
	*set = (struct folded_set){0};
}

static int folded_cmp_text(const void *a, const void *b)
{
	return strcmp(((const struct folded *)a)->text, ((const struct folded *)b)->text);
}

static int folded_cmp_weight(const void *a, const void *b)
{
	const struct folded *x = a, *y = b;

	if (x->weight != y->weight)
		return x->weight > y->weight ? -1 : 1;
	return strcmp(x->text, y->text);
}

static int fold_stacks(const struct capture *c, const struct obs_profile *p, struct folded_set *set)
{
	bool alloc = c->k->kind == CTL_PROFILE_ALLOC;
	size_t bytes = 0, n = 0;

	*set = (struct folded_set){0};
	if (!p->nstacks)
		return 0;
	set->v = calloc(p->nstacks, sizeof(*set->v));
	if (!set->v)
		return -ENOMEM;
	for (size_t i = 0; i < p->nstacks; i++) {
		const struct obs_profile_stack *s = &p->stacks[i];
		struct folded *f = &set->v[set->n];
		size_t len;

		f->weight = alloc ? s->bytes : s->count;
		f->count = s->count;
		if (!s->nframes || !f->weight)
			continue;
		if (folded(s, &f->text, &len) < 0) {
			folded_free(set);
			return -ENOMEM;
		}
		set->n++;
	}
	if (!set->n)
		return 0;
	qsort(set->v, set->n, sizeof(*set->v), folded_cmp_text);
	for (size_t i = 0; i < set->n; i++) {
		if (n && streq(set->v[n - 1].text, set->v[i].text)) {
			set->v[n - 1].weight += set->v[i].weight;
			set->v[n - 1].count += set->v[i].count;
			free(set->v[i].text);
		} else {
			set->v[n++] = set->v[i];
		}
	}
	set->n = n;
	qsort(set->v, set->n, sizeof(*set->v), folded_cmp_weight);
	for (n = 0; n < set->n; n++) {
		bytes += strlen(set->v[n].text);
		if (bytes > CAPTURE_STACK_BYTES)
			break;
	}
	set->omitted = set->n - n;
	for (size_t i = n; i < set->n; i++)
		free(set->v[i].text);
	set->n = n;
	return 0;
}

static int table_stacks(const struct capture *c, const struct folded_set *set,
			struct ctl_response *r)
{
	bool alloc = c->k->kind == CTL_PROFILE_ALLOC;
	const char *cols[] = {"stack", c->k->weight, "allocations"};
	static const enum ctl_col_type types[] = {CTL_COL_STRING, CTL_COL_INT, CTL_COL_INT};

	ctl_resp_table(r, "stacks", alloc ? 3 : 2, cols, types);
	for (size_t i = 0; i < set->n; i++) {
		ctl_resp_row(r);
		ctl_resp_cell_str(r, set->v[i].text);
		ctl_resp_cell_int(r, (int64_t)set->v[i].weight);
		if (alloc)
			ctl_resp_cell_int(r, (int64_t)set->v[i].count);
	}
	return r->err;
}

static int table_latency(const struct obs_profile *p, struct ctl_response *r)
{
	static const char *const cols[] = {"function", "calls",	 "p50_us",
					   "p90_us",   "p99_us", "mean_us"};
	static const enum ctl_col_type types[] = {CTL_COL_STRING, CTL_COL_INT,	CTL_COL_REAL,
						  CTL_COL_REAL,	  CTL_COL_REAL, CTL_COL_REAL};
	static const char *const hcols[] = {"from_ns", "to_ns", "calls"};
	static const enum ctl_col_type htypes[] = {CTL_COL_INT, CTL_COL_INT, CTL_COL_INT};
	int lo = -1, hi = -1;

	ctl_resp_table(r, "latency", ARRAY_SIZE(cols), cols, types);
	ctl_resp_row(r);
	ctl_resp_cell_str(r, p->func);
	ctl_resp_cell_int(r, (int64_t)p->total);
	ctl_resp_cell_real(r, round1(p->p50_ns / 1000.0));
	ctl_resp_cell_real(r, round1(p->p90_ns / 1000.0));
	ctl_resp_cell_real(r, round1(p->p99_ns / 1000.0));
	if (p->total)
		ctl_resp_cell_real(r, round1((double)p->sum_ns / (double)p->total / 1000.0));
	else
		ctl_resp_cell_null(r);

	for (int i = 0; i < OBS_LAT_SLOTS; i++) {
		if (!p->hist[i])
			continue;
		if (lo < 0)
			lo = i;
		hi = i;
	}
	/* Slot i counts [2^i, 2^(i+1)) ns; slot 0 holds 0 and 1 ns. */
	ctl_resp_table(r, "histogram", ARRAY_SIZE(hcols), hcols, htypes);
	for (int i = lo; i >= 0 && i <= hi; i++) {
		ctl_resp_row(r);
		ctl_resp_cell_int(r, i ? (int64_t)1 << i : 0);
		ctl_resp_cell_int(r, ((int64_t)1 << (i + 1)) - 1);
		ctl_resp_cell_int(r, (int64_t)p->hist[i]);
	}
	return r->err;
}

static int build_answer(const struct capture *c, const struct obs_profile *p,
			struct ctl_response *r)
{
	struct folded_set set = {0};
	int err = 0;

	if (c->k->weight) {
		err = fold_stacks(c, p, &set);
		if (err)
			return ctl_resp_error(r, err, "cannot fold the stacks: %s", strerror(-err));
	}
	ctl_resp_message(r, "%s profile of target '%s' over %.1f s: %" PRIu64 " %s%s",
			 kind_name(c->k), c->target, p->duration_ms / 1000.0, p->total, c->k->count,
			 p->stopped_early ? " (stopped early)" : "");
	table_capture(c, p, set.omitted, r);
	if (c->k->weight) {
		table_top(c, p, r);
		table_stacks(c, &set, r);
	} else {
		table_latency(p, r);
	}
	folded_free(&set);
	return r->status ? r->status : r->err;
}

/* Collects (unless err), answers the client if it still waits, and frees the slot. */
static void capture_finish(struct hs_daemon *d, struct capture *c, int err)
{
	struct obs_profile p;
	struct ctl_response r;
	int sent;

	obs_profile_init(&p, c->k->obs_kind);
	ctl_resp_init(&r, CTL_REQ_PROFILE);
	if (!err)
		err = c->k->collect(c, d->captures->sym, &p);
	if (err)
		ctl_resp_error(&r, err, "cannot collect the %s profile of target '%s': %s",
			       kind_name(c->k), c->target, strerror(-err));
	else
		build_answer(c, &p, &r);
	if (r.err && !r.status)
		ctl_resp_error(&r, r.err, "cannot build the answer: %s", strerror(-r.err));
	if (r.status)
		log_warn("profile of target '%s' failed: %s", c->target, r.message);
	else
		log_info("profile of target '%s' done: %s", c->target, r.message);
	sent = ctl_server_reply(d->ctl, c->token, &r);
	if (sent == -ENOENT)
		log_debug("the client of the profile of target '%s' went away: answer dropped",
			  c->target);
	ctl_resp_free(&r);
	obs_profile_reset(&p);
	capture_free(c);
}

void ctl_captures_tick(struct hs_daemon *d, uint64_t now_ms)
{
	struct ctl_captures *cs = d->captures;

	for (size_t i = 0; cs && i < ARRAY_SIZE(cs->c); i++) {
		struct capture *c = &cs->c[i];
		int r;

		if (!c->k)
			continue;
		if (!ctl_server_waiting(d->ctl, c->token)) {
			log_info("profile of target '%s' stopped: its client went away", c->target);
			capture_free(c);
			continue;
		}
		r = c->k->poll ? c->k->poll(c, now_ms) : 1;
		if (r <= 0 || now_ms >= c->end_ms)
			capture_finish(d, c, r < 0 ? r : 0);
	}
}

void ctl_captures_close(struct hs_daemon *d)
{
	struct ctl_captures *cs = d->captures;
	struct ctl_response r;

	if (!cs)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(cs->c); i++) {
		if (!cs->c[i].k)
			continue;
		ctl_resp_init(&r, CTL_REQ_PROFILE);
		ctl_resp_error(&r, -ESHUTDOWN,
			       "the daemon is stopping: profile of target '%s' "
			       "abandoned",
			       cs->c[i].target);
		ctl_server_reply(d->ctl, cs->c[i].token, &r);
		ctl_resp_free(&r);
		capture_free(&cs->c[i]);
	}
	obs_sym_free(cs->sym);
	free(cs);
	d->captures = NULL;
}

/* Status: top CPU functions of a target, lazily. */

/* Appends src's stacks to dst, with their strings interned in dst. */
static int profile_merge(struct obs_profile *dst, const struct obs_profile *src)
{
	struct obs_frame frames[OBS_PROFILE_MAX_FRAMES];

	for (size_t i = 0; i < src->nstacks; i++) {
		const struct obs_profile_stack *s = &src->stacks[i];
		unsigned n = s->nframes < ARRAY_SIZE(frames) ? s->nframes : ARRAY_SIZE(frames);
		int err;

		for (unsigned j = 0; j < n; j++) {
			frames[j] = s->frames[j];
			if (frames[j].func &&
			    !(frames[j].func = obs_profile_intern(dst, frames[j].func)))
				return -ENOMEM;
			if (frames[j].module &&
			    !(frames[j].module = obs_profile_intern(dst, frames[j].module)))
				return -ENOMEM;
		}
		err = obs_profile_add(dst, s->tgid, s->count, s->bytes, frames, n);
		if (err)
			return err;
	}
	dst->total += src->total;
	return 0;
}

int ctl_captures_top_cpu(struct hs_daemon *d, int index, char *buf, size_t size)
{
	struct obs_cpuprof *cp = obs_cpuprof_host();
	const struct obs_targets *t = obs_targets(d->obs);
	const struct obs_members *m;
	struct obs_profile all, one;
	struct obs_profile_fn *rows;
	struct ctl_captures *cs;
	uint64_t now = ctl_now_ms();
	size_t off = 0;
	int err = 0, n;

	buf[0] = '\0';
	if (!cp)
		return -EOPNOTSUPP;
	if (index < 1 || index >= HS_NTARGETS)
		return -EINVAL;
	err = captures_get(d, &cs);
	if (err)
		return err;
	m = &t->members[index];
	obs_profile_init(&all, OBS_PROFILE_CPU);
	for (size_t i = 0; i < m->n && i < TOP_CPU_MEMBERS && !err; i++) {
		err = obs_cpuprof_recent(cp, cs->sym, (uint32_t)m->pids[i], TOP_CPU_SECONDS, now,
					 &one);
		if (err)
			break;
		err = profile_merge(&all, &one);
		obs_profile_reset(&one);
	}
	if (err) {
		obs_profile_reset(&all);
		return err;
	}
	n = obs_profile_top(&all, 0, &rows);
	for (int i = 0; i < n && i < TOP_CPU_FUNCS && off < size; i++) {
		int w = snprintf(buf + off, size - off, "%s%s %.0f%%", i ? ", " : "", rows[i].func,
				 rows[i].self_pct);

		off += w > 0 ? (size_t)w : 0;
	}
	if (n >= 0)
		free(rows);
	obs_profile_reset(&all);
	if (n < 0)
		return n;
	return n ? 0 : -ENODATA;
}
