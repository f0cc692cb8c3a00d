/* diagnose.c - the captures of a runbook's diagnose block, as text for the episode.
 *
 * Why: an SRE reading an episode afterwards needs the evidence, not only the verdict: which
 * descriptors a process held, which function allocated what leaked, where the CPU went
 * before a crash. Each capture runs for its window across ticks (never blocking the loop),
 * then becomes a text (a table and, for profiles, folded stacks for flame-graph tools) and a
 * one-line summary; the engine stores the text zlib-compressed in memory
 * (mem_diagnosis_add) and the summary in the episode.
 *
 * Uprobe-based captures (alloc_profile, func_latency) carry the profilers' overhead budget:
 * when it stops them early, the text says so. error_stacks is not a capture of this build.
 */
#include <dirent.h>
#include <limits.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "observe/allocprof.h"
#include "observe/cpuprof.h"
#include "observe/funclat.h"
#include "observe/profile.h"
#include "observe/symbolize.h"
#include "remediate/conditions.h"
#include "remediate/internal.h"

#define CAPTURE_CPU_HZ	 99
#define CAPTURE_MAX_PIDS 1024
#define CAPTURE_TOP	 20
#define FD_KINDS_MAX	 64

struct heal_capture_run {
	int kind; /* enum heal_capture_kind */
	uint64_t end_ms;
	pid_t subject;
	struct obs_cpuprof *cp;
	struct obs_allocprof *ap;
	struct obs_funclat *fl;
	struct obs_symbolizer *sym;
	uint32_t *pids;
	unsigned npids;
	char *text;
	size_t len;
	char summary[HEAL_NOTE_MAX];
	bool done;
	/* crash_report */
	uint32_t seen[CAPTURE_MAX_PIDS];
	unsigned nseen;
	uint64_t fatal;
	char sigs[256];
	char target[64];
	uint64_t window_ms;
};

/* ---- fd_table: instant ---- */

struct fd_kind {
	char name[128];
	unsigned n;
};

static void fd_classify(const char *link, char *kind, size_t size)
{
	const char *br = strchr(link, '[');

	if (!strncmp(link, "socket:", 7) || !strncmp(link, "pipe:", 5))
		snprintf(kind, size, "%.*s", (int)strcspn(link, ":"), link);
	else if (!strncmp(link, "anon_inode:", 11) || (br && br == link))
		snprintf(kind, size, "%.100s", link);
	else
		snprintf(kind, size, "file %.100s", link);
}

static int fd_table(pid_t pid, char **text, size_t *len, char *summary, size_t sumsize)
{
	struct fd_kind kinds[FD_KINDS_MAX];
	unsigned nkinds = 0, total = 0, other = 0;
	char path[64], comm[16], link[PATH_MAX], kind[128];
	struct rlimit rl = {0};
	struct dirent *e;
	FILE *f;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		char p[PATH_MAX];
		ssize_t n;
		unsigned i;

		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
		n = readlink(p, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = '\0';
		total++;
		fd_classify(link, kind, sizeof(kind));
		for (i = 0; i < nkinds && !streq(kinds[i].name, kind); i++)
			;
		if (i == nkinds) {
			if (nkinds == FD_KINDS_MAX) {
				other++;
				continue;
			}
			hs_strlcpy(kinds[nkinds].name, kind, sizeof(kinds[0].name));
			kinds[nkinds++].n = 0;
		}
		kinds[i].n++;
	}
	closedir(d);
	prlimit(pid, RLIMIT_NOFILE, NULL, &rl);
	heal_proc_comm(pid, comm, sizeof(comm));
	/* heaviest first */
	for (unsigned i = 1; i < nkinds; i++)
		for (unsigned j = i; j > 0 && kinds[j].n > kinds[j - 1].n; j--) {
			struct fd_kind t = kinds[j];

			kinds[j] = kinds[j - 1];
			kinds[j - 1] = t;
		}
	f = open_memstream(text, len);
	if (!f)
		return -ENOMEM;
	fprintf(f, "pid %d (%s): %u descriptors open; RLIMIT_NOFILE soft %llu, hard %llu\n\n",
		(int)pid, comm, total, (unsigned long long)rl.rlim_cur,
		(unsigned long long)rl.rlim_max);
	fprintf(f, "%8s  %s\n", "count", "kind");
	for (unsigned i = 0; i < nkinds; i++)
		fprintf(f, "%8u  %s\n", kinds[i].n, kinds[i].name);
	if (other)
		fprintf(f, "%8u  (other kinds, not listed)\n", other);
	fclose(f);
	snprintf(summary, sumsize, "pid %d (%s): %u open of soft limit %llu; most: %u %s", (int)pid,
		 comm, total, (unsigned long long)rl.rlim_cur, nkinds ? kinds[0].n : 0,
		 nkinds ? kinds[0].name : "-");
	return 0;
}

/* ---- profiles ---- */

static int profile_text(struct heal_capture_run *r, struct obs_profile *p)
{
	struct obs_profile_fn *rows = NULL;
	FILE *f = open_memstream(&r->text, &r->len);
	size_t o = 0;
	int n;

	if (!f)
		return -ENOMEM;
	obs_profile_write_table(p, f, CAPTURE_TOP);
	if (p->kind != OBS_PROFILE_FUNC) {
		fprintf(f, "\n# folded stacks (flamegraph.pl, speedscope)\n");
		obs_profile_write_folded(p, f, OBS_FOLDED_TGID);
	}
	fclose(f);
	if (p->kind == OBS_PROFILE_FUNC) {
		snprintf(r->summary, sizeof(r->summary),
			 "%s: %llu calls, p50 %.3f ms, p99 %.3f ms%s", p->func,
			 (unsigned long long)p->total, p->p50_ns / 1e6, p->p99_ns / 1e6,
			 p->stopped_early ? " (stopped early by its overhead budget)" : "");
		return 0;
	}
	n = obs_profile_top(p, 0, &rows);
	o = (size_t)snprintf(r->summary, sizeof(r->summary), "%s",
			     p->kind == OBS_PROFILE_ALLOC ? "outstanding bytes: " : "CPU: ");
	for (int i = 0; i < n && i < 3 && o < sizeof(r->summary); i++)
		o += (size_t)snprintf(r->summary + o, sizeof(r->summary) - o, "%s%s %.0f%%",
				      i ? ", " : "", rows[i].func,
				      p->kind == OBS_PROFILE_ALLOC ? rows[i].total_pct
								   : rows[i].self_pct);
	if (n <= 0 && o < sizeof(r->summary))
		snprintf(r->summary + o, sizeof(r->summary) - o, "no samples");
	else if (o < sizeof(r->summary))
		snprintf(
		    r->summary + o, sizeof(r->summary) - o, " of %llu %s%s",
		    (unsigned long long)(p->kind == OBS_PROFILE_ALLOC ? p->total_bytes : p->total),
		    p->kind == OBS_PROFILE_ALLOC ? "bytes" : "samples",
		    p->stopped_early ? " (stopped early by its overhead budget)" : "");
	free(rows);
	return 0;
}

/* crash_report: the fatal signals of the window, and a host-wide CPU profile over the
 * capture kept to the target's processes, which are primed in the symbolizer each tick while
 * they live: a crash loop's processes are dead by the time the profile is read. */
static void crash_header(const struct heal_capture_ctx *ctx, struct heal_capture_run *r)
{
	size_t o = 0;

	r->fatal = 0;
	r->sigs[0] = '\0';
	for (int s = 1; s < 64; s++) {
		if (!ctx->fatal_by_sig[s])
			continue;
		r->fatal += ctx->fatal_by_sig[s];
		o += (size_t)snprintf(r->sigs + o, sizeof(r->sigs) - o, "%sSIG%s x%llu",
				      o ? ", " : "", sigabbrev_np(s) ?: "?",
				      (unsigned long long)ctx->fatal_by_sig[s]);
		if (o >= sizeof(r->sigs))
			break;
	}
	snprintf(r->target, sizeof(r->target), "%s", ctx->target);
	r->window_ms = ctx->window_ms;
}

static bool seen(const struct heal_capture_run *r, uint32_t tgid)
{
	for (unsigned i = 0; i < r->nseen; i++)
		if (r->seen[i] == tgid)
			return true;
	return false;
}

void heal_capture_members(struct heal_capture_run *r, const pid_t *pids, size_t n)
{
	if (!r || r->kind != HEAL_CAPTURE_CRASH_REPORT || r->done)
		return;
	log_debug("crash_report: %zu live processes of the target", n);
	for (size_t i = 0; i < n; i++) {
		/* again for a process seen before: its maps may have been read mid-exec */
		if (seen(r, (uint32_t)pids[i])) {
			obs_sym_prime(r->sym, (int)pids[i]);
			continue;
		}
		if (r->nseen < CAPTURE_MAX_PIDS) {
			obs_sym_prime(r->sym, (int)pids[i]);
			r->seen[r->nseen++] = (uint32_t)pids[i];
		}
	}
}

static int crash_text(struct heal_capture_run *r, struct obs_profile *p)
{
	struct obs_profile_fn *rows = NULL;
	size_t w = 0;
	uint64_t total = 0;
	FILE *f;
	int n;

	/* Keep the target's processes only. */
	for (size_t i = 0; i < p->nstacks; i++) {
		if (seen(r, p->stacks[i].tgid)) {
			total += p->stacks[i].count;
			p->stacks[w++] = p->stacks[i];
		} else {
			free(p->stacks[i].frames);
		}
	}
	p->nstacks = w;
	p->total = total;
	f = open_memstream(&r->text, &r->len);
	if (!f)
		return -ENOMEM;
	fprintf(f, "target %s, over the last %llu s\n", r->target,
		(unsigned long long)(r->window_ms / 1000));
	fprintf(f, "fatal signals: %s\n", r->fatal ? r->sigs : "none");
	fprintf(f, "processes of the target seen during the capture: %u\n\n", r->nseen);
	obs_profile_write_table(p, f, CAPTURE_TOP);
	fprintf(f, "\n# folded stacks (flamegraph.pl, speedscope)\n");
	obs_profile_write_folded(p, f, OBS_FOLDED_TGID);
	fclose(f);
	n = obs_profile_top(p, 0, &rows);
	snprintf(r->summary, sizeof(r->summary),
		 "%llu fatal signals (%s) in %llu s; CPU before: %s %.0f%% of %llu samples",
		 (unsigned long long)r->fatal, r->fatal ? r->sigs : "none",
		 (unsigned long long)(r->window_ms / 1000), n > 0 ? rows[0].func : "no samples",
		 n > 0 ? rows[0].self_pct : 0.0, (unsigned long long)total);
	free(rows);
	return 0;
}

int heal_capture_start(const struct heal_capture_ctx *ctx, uint64_t now_ms,
		       struct heal_capture_run **out, char *why, size_t whysize)
{
	struct heal_capture_run *r = calloc(1, sizeof(*r));
	int err = 0;

	*out = NULL;
	if (!r)
		return -ENOMEM;
	r->kind = ctx->c->capture;
	r->subject = ctx->subject;
	r->end_ms = now_ms + (uint64_t)ctx->c->duration_ms;
	err = obs_sym_new(NULL, &r->sym);
	if (err) {
		free(r);
		return heal_say(why, whysize, err, "no symbolizer");
	}
	switch (r->kind) {
	case HEAL_CAPTURE_FD_TABLE:
		if (!r->subject) {
			err = heal_say(why, whysize, -ESRCH, "fd_table needs a process");
			break;
		}
		err = fd_table(r->subject, &r->text, &r->len, r->summary, sizeof(r->summary));
		if (err)
			heal_say(why, whysize, err, "cannot read the descriptors of pid %d",
				 (int)r->subject);
		r->done = true;
		break;
	case HEAL_CAPTURE_CRASH_REPORT: {
		/* every process; the target's are primed in the symbolizer while they live */
		struct obs_cpuprof_opts o = {.hz = CAPTURE_CPU_HZ, .keep_procs = true};

		crash_header(ctx, r);
		heal_capture_members(r, ctx->procs, ctx->nprocs);
		err = obs_cpuprof_start(&o, &r->cp);
		if (err)
			heal_say(why, whysize, err, "CPU profiler: %s", strerror(-err));
		break;
	}
	case HEAL_CAPTURE_CPU_PROFILE: {
		struct obs_cpuprof_opts o = {.hz = CAPTURE_CPU_HZ};

		r->npids =
		    ctx->nprocs < CAPTURE_MAX_PIDS ? (unsigned)ctx->nprocs : CAPTURE_MAX_PIDS;
		if (!r->npids && r->subject)
			r->npids = 1;
		r->pids = calloc(r->npids ? r->npids : 1, sizeof(*r->pids));
		if (!r->pids) {
			err = -ENOMEM;
			break;
		}
		for (unsigned i = 0; i < r->npids; i++)
			r->pids[i] = ctx->nprocs ? (uint32_t)ctx->procs[i] : (uint32_t)r->subject;
		if (!r->npids) {
			err = heal_say(why, whysize, -ESRCH, "no live process to profile");
			break;
		}
		o.tgids = r->pids;
		o.ntgids = r->npids;
		err = obs_cpuprof_start(&o, &r->cp);
		if (err)
			heal_say(why, whysize, err, "CPU profiler: %s", strerror(-err));
		break;
	}
	case HEAL_CAPTURE_ALLOC_PROFILE: {
		struct obs_allocprof_opts o = {.pid = (int)r->subject};

		if (!r->subject) {
			err = heal_say(why, whysize, -ESRCH, "alloc_profile needs a process");
			break;
		}
		err = obs_allocprof_start(&o, &r->ap);
		if (err)
			heal_say(why, whysize, err, "allocation profiler on pid %d: %s",
				 (int)r->subject, strerror(-err));
		break;
	}
	case HEAL_CAPTURE_FUNC_LATENCY: {
		char bin[PATH_MAX] = "";
		const char *sym = ctx->c->symbol, *colon = strrchr(sym, ':');
		struct obs_funclat_opts o = {.pid = (int)r->subject, .func = sym};

		if (colon) {
			snprintf(bin, sizeof(bin), "%.*s", (int)(colon - sym), sym);
			o.binary = bin;
			o.func = colon + 1;
		}
		if (!r->subject) {
			err = heal_say(why, whysize, -ESRCH, "func_latency needs a process");
			break;
		}
		err = obs_funclat_start(&o, &r->fl);
		if (err)
			heal_say(why, whysize, err, "function latency of %s in pid %d: %s", o.func,
				 (int)r->subject, strerror(-err));
		break;
	}
	default:
		err = heal_say(why, whysize, -EOPNOTSUPP, "unknown capture");
	}
	if (err) {
		heal_capture_free(r);
		return err;
	}
	*out = r;
	return 0;
}

int heal_capture_poll(struct heal_capture_run *r, uint64_t now_ms)
{
	struct obs_profile p;
	int running = 1, err = 0;

	if (r->done)
		return 0;
	if (r->ap)
		running = obs_allocprof_poll(r->ap, now_ms);
	else if (r->fl)
		running = obs_funclat_poll(r->fl, now_ms);
	if (running < 0)
		return running;
	if (running && now_ms < r->end_ms)
		return 1;
	if (r->cp)
		err = obs_cpuprof_collect(r->cp, r->sym, &p);
	else if (r->ap)
		err = obs_allocprof_collect(r->ap, r->sym, &p);
	else
		err = obs_funclat_collect(r->fl, &p);
	if (err)
		return err;
	obs_profile_finish(&p);
	err = r->kind == HEAL_CAPTURE_CRASH_REPORT ? crash_text(r, &p) : profile_text(r, &p);
	obs_profile_reset(&p);
	r->done = true;
	return err;
}

int heal_capture_result(struct heal_capture_run *r, char **text, size_t *len, char *summary,
			size_t sumsize)
{
	if (!r->done || !r->text)
		return -EAGAIN;
	*text = r->text;
	*len = r->len;
	r->text = NULL;
	hs_strlcpy(summary, r->summary, sumsize);
	return 0;
}

void heal_capture_free(struct heal_capture_run *r)
{
	if (!r)
		return;
	if (r->cp)
		obs_cpuprof_stop(r->cp);
	if (r->ap)
		obs_allocprof_stop(r->ap);
	if (r->fl)
		obs_funclat_stop(r->fl);
	if (r->sym)
		obs_sym_free(r->sym);
	free(r->pids);
	free(r->text);
	free(r);
}
