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

#include "lib/util.h"
#include "observe/allocprof.h"
#include "observe/cpuprof.h"
#include "observe/funclat.h"
#include "observe/profile.h"
#include "observe/symbolize.h"
#include "remediate/conditions.h"
#include "remediate/internal.h"

#define CAPTURE_CPU_HZ	  99
#define CAPTURE_MAX_PIDS  1024
#define CAPTURE_TOP	  20
#define FD_KINDS_MAX	  64
#define CRASH_CPU_SECONDS 30

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
};

static int say(char *why, size_t size, int err, const char *fmt, ...) HS_PRINTF(4, 5);
static int say(char *why, size_t size, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, size, fmt, ap);
	va_end(ap);
	return err;
}

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

static int crash_report(const struct heal_capture_ctx *ctx, struct heal_capture_run *r,
			uint64_t now_ms)
{
	struct obs_cpuprof *host = obs_cpuprof_host();
	char sigs[256] = "";
	size_t o = 0;
	uint64_t fatal = 0;
	FILE *f;

	for (int s = 1; s < 64; s++) {
		if (!ctx->fatal_by_sig[s])
			continue;
		fatal += ctx->fatal_by_sig[s];
		o += (size_t)snprintf(sigs + o, sizeof(sigs) - o, "%sSIG%s x%llu", o ? ", " : "",
				      sigabbrev_np(s) ?: "?",
				      (unsigned long long)ctx->fatal_by_sig[s]);
		if (o >= sizeof(sigs))
			break;
	}
	f = open_memstream(&r->text, &r->len);
	if (!f)
		return -ENOMEM;
	fprintf(f, "target %s, over the last %llu s\n", ctx->target,
		(unsigned long long)(ctx->window_ms / 1000));
	fprintf(f, "fatal signals: %s\n", fatal ? sigs : "none");
	fprintf(f, "live processes now: %zu\n", ctx->nprocs);
	if (!host) {
		fprintf(f, "\nno CPU profile: the always-on sampler is not running\n");
	} else {
		fprintf(f,
			"\ntop CPU functions of the live processes, last %d s (49 Hz sampler):\n",
			CRASH_CPU_SECONDS);
		for (size_t i = 0; i < ctx->nprocs && i < 16; i++) {
			struct obs_profile p;

			if (obs_cpuprof_recent(host, r->sym, (uint32_t)ctx->procs[i],
					       CRASH_CPU_SECONDS, now_ms, &p) == 0) {
				fprintf(f, "pid %d:\n", (int)ctx->procs[i]);
				obs_profile_write_table(&p, f, 5);
				obs_profile_reset(&p);
			}
		}
	}
	fclose(f);
	snprintf(r->summary, sizeof(r->summary), "%llu fatal signals (%s) in %llu s",
		 (unsigned long long)fatal, fatal ? sigs : "none",
		 (unsigned long long)(ctx->window_ms / 1000));
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
		return say(why, whysize, err, "no symbolizer");
	}
	switch (r->kind) {
	case HEAL_CAPTURE_FD_TABLE:
		if (!r->subject) {
			err = say(why, whysize, -ESRCH, "fd_table needs a process");
			break;
		}
		err = fd_table(r->subject, &r->text, &r->len, r->summary, sizeof(r->summary));
		if (err)
			say(why, whysize, err, "cannot read the descriptors of pid %d",
			    (int)r->subject);
		r->done = true;
		break;
	case HEAL_CAPTURE_CRASH_REPORT:
		err = crash_report(ctx, r, now_ms);
		r->done = true;
		break;
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
			err = say(why, whysize, -ESRCH, "no live process to profile");
			break;
		}
		o.tgids = r->pids;
		o.ntgids = r->npids;
		err = obs_cpuprof_start(&o, &r->cp);
		if (err)
			say(why, whysize, err, "CPU profiler: %s", strerror(-err));
		break;
	}
	case HEAL_CAPTURE_ALLOC_PROFILE: {
		struct obs_allocprof_opts o = {.pid = (int)r->subject};

		if (!r->subject) {
			err = say(why, whysize, -ESRCH, "alloc_profile needs a process");
			break;
		}
		err = obs_allocprof_start(&o, &r->ap);
		if (err)
			say(why, whysize, err, "allocation profiler on pid %d: %s", (int)r->subject,
			    strerror(-err));
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
			err = say(why, whysize, -ESRCH, "func_latency needs a process");
			break;
		}
		err = obs_funclat_start(&o, &r->fl);
		if (err)
			say(why, whysize, err, "function latency of %s in pid %d: %s", o.func,
			    (int)r->subject, strerror(-err));
		break;
	}
	default:
		err = say(why, whysize, -EOPNOTSUPP, "unknown capture");
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
	err = profile_text(r, &p);
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
