/* commands.c - what the daemon answers on its control socket.
 *
 * Each request type has one handler in the table below. Handlers read the daemon's state and
 * its memory and build typed tables with the proto.h builder; they never block (every query
 * is a bounded sqlite read). A profile takes seconds: its handler starts the capture and
 * defers the answer (captures.c). A request that changes something (approve, reject, pause,
 * resume, redirect apply and revert) is recorded in the audit trail before it is acknowledged,
 * and the answer carries the audit sequence number, so that an acknowledged request is never
 * lost.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "ctl/captures.h"
#include "ctl/commands.h"
#include "ctl/server.h"
#include "daemon.h"
#include "fitness/fitness.h"
#include "lib/log.h"
#include "memory/memory.h"
#include "redirect/engine.h"
#include "remediate/engine.h"
#include "remediate/runbook.h"
#include "safety/changes.h"
#include "safety/policy.h"

#define HISTORY_DEFAULT 50
#define HISTORY_MAX	10000

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void iso_time(int64_t ms, char *buf, size_t size)
{
	time_t t = ms / 1000;
	struct tm tm;

	if (ms <= 0) {
		hs_strlcpy(buf, "", size);
		return;
	}
	localtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
}

static int status_daemon(struct hs_daemon *d, struct ctl_response *r)
{
	static const char *const cols[] = {"version",	   "pid",     "mode",	  "paused",
					   "uptime_s",	   "tick_ms", "ticks",	  "overruns",
					   "last_tick_us", "policy",  "runbooks", "db",
					   "last_reload",  "redirect"};
	static const enum ctl_col_type types[] = {
	    CTL_COL_STRING, CTL_COL_INT,    CTL_COL_STRING, CTL_COL_STRING, CTL_COL_INT,
	    CTL_COL_INT,    CTL_COL_INT,    CTL_COL_INT,    CTL_COL_INT,    CTL_COL_STRING,
	    CTL_COL_INT,    CTL_COL_STRING, CTL_COL_STRING, CTL_COL_STRING};
	char when[32];
	struct timespec ts;

	_Static_assert(ARRAY_SIZE(cols) == ARRAY_SIZE(types), "columns and types");
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ctl_resp_table(r, "daemon", ARRAY_SIZE(cols), cols, types);
	ctl_resp_row(r);
	ctl_resp_cell_str(r, HS_VERSION);
	ctl_resp_cell_int(r, getpid());
	ctl_resp_cell_str(r, hs_mode_name(d));
	ctl_resp_cell_str(r, d->paused ? "yes" : "no");
	ctl_resp_cell_int(r, ts.tv_sec - (int64_t)(d->started_ms / 1000));
	ctl_resp_cell_int(r, d->opts.tick_ms);
	ctl_resp_cell_int(r, d->ticks);
	ctl_resp_cell_int(r, d->overruns);
	ctl_resp_cell_int(r, d->last_tick_us);
	ctl_resp_cell_str(r, d->opts.policy);
	ctl_resp_cell_int(r, d->runbooks ? (int64_t)d->runbooks->n : 0);
	ctl_resp_cell_str(r, d->opts.db);
	if (!d->last_reload_at) {
		ctl_resp_cell_str(r, "none");
	} else {
		iso_time((int64_t)d->last_reload_at * 1000, when, sizeof(when));
		ctl_resp_cell_strf(r, "%s at %s",
				   d->last_reload_ok ? "ok" : "refused, kept the old", when);
	}
	/* the mechanisms the redirect engine found at start (the uprobe write's probe verdict) */
	return ctl_resp_cell_str(r, rd_engine_mechanisms(d->redirect));
}

/* Each collector with its measured cost (null until the first cost window has closed). */
static int status_collectors(struct hs_daemon *d, struct ctl_response *r)
{
	static const char *const cols[] = {"collector", "state",   "runs_s",
					   "ns_run",	"cpu_pct", "detail"};
	static const enum ctl_col_type types[] = {CTL_COL_STRING, CTL_COL_STRING, CTL_COL_REAL,
						  CTL_COL_REAL,	  CTL_COL_REAL,	  CTL_COL_STRING};
	struct obs_collector_info info[OBS_MAX_COLLECTORS];
	int n = obs_collectors(d->obs, info, ARRAY_SIZE(info));

	ctl_resp_table(r, "collectors", ARRAY_SIZE(cols), cols, types);
	for (int i = 0; i < n; i++) {
		ctl_resp_row(r);
		ctl_resp_cell_str(r, info[i].name);
		ctl_resp_cell_str(r, obs_collector_state_name(info[i].state));
		if (info[i].measured) {
			ctl_resp_cell_real(r, info[i].runs_per_s);
			ctl_resp_cell_real(r, info[i].ns_per_run);
			ctl_resp_cell_real(r, info[i].cpu_pct);
		} else {
			ctl_resp_cell_null(r);
			ctl_resp_cell_null(r);
			ctl_resp_cell_null(r);
		}
		ctl_resp_cell_str(r, info[i].state == OBS_RUNNING ? info[i].why : info[i].reason);
	}
	return r->err;
}

static void errno_list(const struct obs_target_snap *t, double secs, char *buf, size_t size)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; i < t->n_errnos && off < size; i++) {
		const char *name = strerrorname_np(t->top_errnos[i].err);
		int n = snprintf(buf + off, size - off, "%s%s %.0f/s", i ? ", " : "",
				 name ? name : "?", secs > 0 ? t->top_errnos[i].count / secs : 0.0);

		off += n > 0 ? (size_t)n : 0;
	}
}

static void target_row(struct hs_daemon *d, struct ctl_response *r, const struct obs_target_snap *t,
		       double secs)
{
	char errs[160], top[160];

	errno_list(t, secs, errs, sizeof(errs));
	ctl_resp_row(r);
	ctl_resp_cell_str(r, t->name);
	if (t->index > 0)
		ctl_resp_cell_int(r, t->nprocs);
	else
		ctl_resp_cell_null(r);
	ctl_resp_cell_real(r, t->sc_rate);
	ctl_resp_cell_real(r, t->sc_error_rate);
	ctl_resp_cell_str(r, errs);
	ctl_resp_cell_real(r, obs_hist_quantile(&t->sc_lat_window, 0.50) / 1000.0);
	ctl_resp_cell_real(r, obs_hist_quantile(&t->sc_lat_window, 0.99) / 1000.0);
	ctl_resp_cell_real(r, obs_hist_quantile(&t->rq_lat_window, 0.99) / 1000.0);
	if (isnan(t->cpu_usage))
		ctl_resp_cell_null(r);
	else
		ctl_resp_cell_real(r, round(t->cpu_usage * 1000) / 10);
	if (t->index != 0) {
		ctl_resp_cell_real(r, t->rss_bytes / 1048576.0);
		ctl_resp_cell_real(r, t->rss_slope / 1024.0);
	} else {
		ctl_resp_cell_null(r);
		ctl_resp_cell_null(r);
	}
	ctl_resp_cell_int(r, t->execs);
	ctl_resp_cell_int(r, t->exits);
	ctl_resp_cell_int(r, t->fatal);
	/* Symbolized only now, for the policy's targets: nothing is spent unless asked. */
	if (t->index > 0 && ctl_captures_top_cpu(d, t->index, top, sizeof(top)) == 0)
		ctl_resp_cell_str(r, top);
	else
		ctl_resp_cell_null(r);
}

/* One row for the whole host, then one per policy target, then the rest of the host. */
static int status_targets(struct hs_daemon *d, struct ctl_response *r)
{
	static const char *const cols[] = {
	    "target",	       "procs",	     "syscalls_s",  "errors_s",	     "top_errnos",
	    "p50_sys_us",      "p99_sys_us", "p99_runq_us", "cpu_pct",	     "rss_mib",
	    "rss_slope_kib_s", "execs",	     "exits",	    "fatal_signals", "top_cpu"};
	static const enum ctl_col_type types[] = {
	    CTL_COL_STRING, CTL_COL_INT,  CTL_COL_REAL, CTL_COL_REAL, CTL_COL_STRING,
	    CTL_COL_REAL,   CTL_COL_REAL, CTL_COL_REAL, CTL_COL_REAL, CTL_COL_REAL,
	    CTL_COL_REAL,   CTL_COL_INT,  CTL_COL_INT,	CTL_COL_INT,  CTL_COL_STRING};
	const struct obs_snapshot *s = &d->snap;
	double secs = s->elapsed_ms / 1000.0;

	_Static_assert(ARRAY_SIZE(cols) == ARRAY_SIZE(types), "columns and types");
	if (!s->tick && !s->at_ms)
		return 0;
	ctl_resp_table(r, "targets", ARRAY_SIZE(cols), cols, types);
	target_row(d, r, &s->host, secs);
	for (int i = 1; i < s->ntargets; i++)
		target_row(d, r, &s->t[i], secs);
	if (s->ntargets > 1)
		target_row(d, r, &s->t[0], secs);
	return r->err;
}

/* A score to three decimals (what a person reads), or null when not scored (NAN). */
static int score_cell(struct ctl_response *r, double v)
{
	return isnan(v) ? ctl_resp_cell_null(r) : ctl_resp_cell_real(r, round(v * 1000) / 1000);
}

static void fitness_row(struct hs_daemon *d, struct ctl_response *r, const char *name)
{
	const struct fit_score *f = fit_lookup(d->fit, name);

	if (!f)
		return;
	ctl_resp_row(r);
	ctl_resp_cell_str(r, name);
	score_cell(r, f->score);
	for (int p = 0; p < FIT_PART_COUNT; p++)
		score_cell(r, f->part[p].score);
	ctl_resp_cell_str(r, fit_basis_name(f->basis));
}

/* The fitness of each target and its parts (fitness.h): null where nothing was scored. */
static int status_fitness(struct hs_daemon *d, struct ctl_response *r)
{
	static const char *const cols[] = {"target",	 "score", "latency", "errors",
					   "throughput", "cost",  "basis"};
	static const enum ctl_col_type types[] = {CTL_COL_STRING, CTL_COL_REAL, CTL_COL_REAL,
						  CTL_COL_REAL,	  CTL_COL_REAL, CTL_COL_REAL,
						  CTL_COL_STRING};
	const struct obs_snapshot *s = &d->snap;

	_Static_assert(ARRAY_SIZE(cols) == ARRAY_SIZE(types), "columns and types");
	_Static_assert(ARRAY_SIZE(cols) == FIT_PART_COUNT + 3, "one column per part");
	if (!d->fit || (!s->tick && !s->at_ms))
		return 0;
	ctl_resp_table(r, "fitness", ARRAY_SIZE(cols), cols, types);
	fitness_row(d, r, s->host.name);
	for (int i = 1; i < s->ntargets; i++)
		fitness_row(d, r, s->t[i].name);
	if (s->ntargets > 1)
		fitness_row(d, r, s->t[0].name);
	return r->err;
}

static int status_changes(struct hs_daemon *d, struct ctl_response *r)
{
	static const char *const cols[] = {"last_hour", "active", "pending_approvals", "total"};
	static const enum ctl_col_type types[] = {CTL_COL_INT, CTL_COL_INT, CTL_COL_INT,
						  CTL_COL_INT};
	struct mem_counts c;
	int err = mem_counts(d->mem, now_ms(), &c);

	if (err)
		return ctl_resp_error(r, err, "cannot read the memory database: %s",
				      mem_last_error(d->mem));
	ctl_resp_table(r, "changes", ARRAY_SIZE(cols), cols, types);
	ctl_resp_row(r);
	ctl_resp_cell_int(r, c.changes_last_hour);
	ctl_resp_cell_int(r, c.active);
	ctl_resp_cell_int(r, c.pending_approvals);
	return ctl_resp_cell_int(r, c.total);
}

static int approval_row(const struct mem_approval *a, const struct mem_change *c, void *ud)
{
	struct ctl_response *r = ud;
	char req[32], exp[32];

	iso_time(a->requested_at, req, sizeof(req));
	iso_time(a->expires_at, exp, sizeof(exp));
	ctl_resp_row(r);
	ctl_resp_cell_int(r, c->id);
	ctl_resp_cell_str(r, mem_kind_name(c->kind));
	ctl_resp_cell_str(r, c->target);
	ctl_resp_cell_str(r, c->knob);
	ctl_resp_cell_strf(r, "%s -> %s", c->before, c->after);
	ctl_resp_cell_str(r, req);
	ctl_resp_cell_str(r, exp);
	ctl_resp_cell_str(r, c->why);
	return r->err;
}

static int status_approvals(struct hs_daemon *d, struct ctl_response *r)
{
	static const char *const cols[] = {"id",     "kind",	  "target",  "knob",
					   "change", "requested", "expires", "why"};
	static const enum ctl_col_type types[] = {CTL_COL_INT,	  CTL_COL_STRING, CTL_COL_STRING,
						  CTL_COL_STRING, CTL_COL_STRING, CTL_COL_STRING,
						  CTL_COL_STRING, CTL_COL_STRING};
	int n;

	ctl_resp_table(r, "approvals", ARRAY_SIZE(cols), cols, types);
	n = mem_approvals_pending(d->mem, approval_row, r);
	if (n < 0 && !r->err)
		return ctl_resp_error(r, n, "cannot read pending approvals: %s",
				      mem_last_error(d->mem));
	return r->err;
}

static int episode_status_row(const struct heal_status *s, void *ud)
{
	struct ctl_response *r = ud;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ctl_resp_row(r);
	ctl_resp_cell_int(r, s->episode);
	ctl_resp_cell_str(r, s->runbook);
	ctl_resp_cell_str(r, s->target);
	ctl_resp_cell_str(r, s->phase);
	if (s->change_id)
		ctl_resp_cell_int(r, s->change_id);
	else
		ctl_resp_cell_null(r);
	if (s->pid)
		ctl_resp_cell_int(r, s->pid);
	else
		ctl_resp_cell_null(r);
	ctl_resp_cell_int(r, s->since_ms ? ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 -
					    (int64_t)s->since_ms) /
					       1000
					 : 0);
	ctl_resp_cell_str(r, s->note);
	return r->err ? -1 : 0;
}

/* Runbooks at work now: detected, diagnosing, acting, waiting, verifying, holding. */
static int status_episodes(struct hs_daemon *d, struct ctl_response *r)
{
	static const char *const cols[] = {"episode", "runbook", "target",  "phase",
					   "change",  "pid",	 "phase_s", "last"};
	static const enum ctl_col_type types[] = {CTL_COL_INT,	  CTL_COL_STRING, CTL_COL_STRING,
						  CTL_COL_STRING, CTL_COL_INT,	  CTL_COL_INT,
						  CTL_COL_INT,	  CTL_COL_STRING};

	ctl_resp_table(r, "episodes", ARRAY_SIZE(cols), cols, types);
	if (d->heal)
		heal_engine_status(d->heal, episode_status_row, r);
	return r->err;
}

static int cmd_status(struct hs_daemon *d, const struct ctl_request *req, struct ctl_response *r)
{
	int (*const parts[])(struct hs_daemon *, struct ctl_response *) = {
	    status_daemon,  status_collectors, status_targets,	status_fitness,
	    status_changes, status_approvals,  status_episodes,
	};

	for (size_t i = 0; i < ARRAY_SIZE(parts); i++)
		if (parts[i](d, r) || r->status)
			return r->status ? r->status : r->err;
	return 0;
}

static int history_row(const struct mem_change *c, const struct mem_outcome *o, void *ud)
{
	struct ctl_response *r = ud;
	char when[32];

	iso_time(c->created_at, when, sizeof(when));
	ctl_resp_row(r);
	ctl_resp_cell_int(r, c->id);
	ctl_resp_cell_str(r, when);
	ctl_resp_cell_str(r, mem_kind_name(c->kind));
	ctl_resp_cell_str(r, c->target);
	ctl_resp_cell_str(r, c->knob);
	ctl_resp_cell_str(r, c->before);
	ctl_resp_cell_str(r, c->after);
	ctl_resp_cell_str(r, mem_state_name(c->state));
	ctl_resp_cell_str(r, o ? mem_verdict_name(o->verdict) : NULL);
	ctl_resp_cell_str(r, o ? o->stats_json : NULL);
	ctl_resp_cell_str(r, c->why);
	ctl_resp_cell_str(r, c->source);
	if (c->episode_id)
		ctl_resp_cell_int(r, c->episode_id);
	else
		ctl_resp_cell_null(r);
	ctl_resp_cell_str(r,
			  o && o->failure_reason && *o->failure_reason ? o->failure_reason : NULL);
	ctl_resp_cell_str(r, c->revert);
	return r->err;
}

static int episode_row(const struct mem_episode *e, void *ud)
{
	struct ctl_response *r = ud;
	char start[32], end[32];

	iso_time(e->started_at, start, sizeof(start));
	iso_time(e->ended_at, end, sizeof(end));
	ctl_resp_row(r);
	ctl_resp_cell_int(r, e->id);
	ctl_resp_cell_str(r, start);
	ctl_resp_cell_str(r, e->ended_at ? end : NULL);
	ctl_resp_cell_str(r, e->runbook);
	ctl_resp_cell_str(r, e->target);
	ctl_resp_cell_str(r, mem_episode_state_name(e->state));
	ctl_resp_cell_str(r, e->why);
	ctl_resp_cell_str(r, e->summary);
	return r->err;
}

static int cmd_history(struct hs_daemon *d, const struct ctl_request *req, struct ctl_response *r)
{
	static const char *const cols[] = {"id",     "time",   "kind",	  "target",  "knob",
					   "before", "after",  "state",	  "verdict", "stats",
					   "why",    "source", "episode", "outcome", "revert"};
	static const enum ctl_col_type types[] = {
	    CTL_COL_INT,    CTL_COL_STRING, CTL_COL_STRING, CTL_COL_STRING, CTL_COL_STRING,
	    CTL_COL_STRING, CTL_COL_STRING, CTL_COL_STRING, CTL_COL_STRING, CTL_COL_STRING,
	    CTL_COL_STRING, CTL_COL_STRING, CTL_COL_INT,    CTL_COL_STRING, CTL_COL_STRING};
	static const char *const ecols[] = {"id",     "started", "ended", "runbook",
					    "target", "state",	 "why",	  "summary"};
	static const enum ctl_col_type etypes[] = {CTL_COL_INT,	   CTL_COL_STRING, CTL_COL_STRING,
						   CTL_COL_STRING, CTL_COL_STRING, CTL_COL_STRING,
						   CTL_COL_STRING, CTL_COL_STRING};
	int limit = req->limit ? (int)(req->limit > HISTORY_MAX ? HISTORY_MAX : req->limit)
			       : HISTORY_DEFAULT;
	int n;

	ctl_resp_table(r, "history", ARRAY_SIZE(cols), cols, types);
	n = mem_history(d->mem, limit, history_row, r);
	if (n < 0 && !r->err)
		return ctl_resp_error(r, n, "cannot read history: %s", mem_last_error(d->mem));
	ctl_resp_table(r, "episodes", ARRAY_SIZE(ecols), ecols, etypes);
	n = mem_episodes(d->mem, limit, false, episode_row, r);
	if (n < 0 && !r->err)
		return ctl_resp_error(r, n, "cannot read episodes: %s", mem_last_error(d->mem));
	return r->err;
}

/* explain: one change in full, as a "change" table of field-value rows and a "metrics" table
 * with the judge's statistics for each metric it weighed. */

static void explain_field(struct ctl_response *r, const char *field, const char *value)
{
	ctl_resp_row(r);
	ctl_resp_cell_str(r, field);
	ctl_resp_cell_str(r, value);
}

HS_PRINTF(3, 4)
static void explain_fieldf(struct ctl_response *r, const char *field, const char *fmt, ...)
{
	_cleanup_free_ char *s = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		s = NULL;
		if (!r->err)
			r->err = -ENOMEM;
		return;
	}
	explain_field(r, field, s);
}

/* A number as %.4g, or "-" when unknown (NAN). */
static const char *num_text(double v, char *buf, size_t size)
{
	if (isnan(v))
		return "-";
	snprintf(buf, size, "%.4g", v);
	return buf;
}

/* A count, or "?" when unknown (-1). */
static const char *count_text(int64_t v, char *buf, size_t size)
{
	if (v < 0)
		return "?";
	snprintf(buf, size, "%" PRId64, v);
	return buf;
}

/* Milliseconds as seconds, or "?" when unknown (-1). */
static const char *secs_text(int64_t ms, char *buf, size_t size)
{
	if (ms < 0)
		return "?";
	snprintf(buf, size, "%.1f", ms / 1000.0);
	return buf;
}

static void explain_episode(struct hs_daemon *d, struct ctl_response *r, int64_t id)
{
	_cleanup_free_ struct mem_episode *e = NULL;

	if (mem_episode_get(d->mem, id, &e) < 0) {
		explain_fieldf(r, "episode", "%" PRId64, id);
		return;
	}
	explain_fieldf(r, "episode", "%" PRId64 ": %s on %s, %s", id, e->runbook, e->target,
		       mem_episode_state_name(e->state) ?: "?");
}

/* What the canary said (mode, samples, time, its reason, a breach), or the raw stats when
 * something else judged the change (a runbook's verify). */
static int explain_stats(struct hs_daemon *d, struct ctl_response *r, int64_t id,
			 const struct mem_outcome *o)
{
	_cleanup_free_ struct mem_outcome_summary *s = NULL;
	char a[32], b[32], c[32], e[32];
	int err = mem_outcome_summary(d->mem, id, &s);

	if (err < 0)
		return err;
	if (!*s->mode) {
		if (*o->stats_json && !streq(o->stats_json, "{}"))
			explain_field(r, "stats", o->stats_json);
		return 0;
	}
	explain_fieldf(
	    r, "canary", "%s, %s: %s canary and %s baseline samples in %s s (planned %s s)%s",
	    s->mode, *s->outcome ? s->outcome : "?", count_text(s->samples_canary, a, sizeof(a)),
	    count_text(s->samples_baseline, b, sizeof(b)), secs_text(s->elapsed_ms, c, sizeof(c)),
	    secs_text(s->duration_ms, e, sizeof(e)),
	    s->truncated ? ", ended at the sample cap" : "");
	if (*s->reason)
		explain_field(r, "judged", s->reason);
	if (s->breach)
		explain_fieldf(r, "breach", "%s: canary %s, baseline %s, limit %s",
			       *s->breach_metric ? s->breach_metric : "?",
			       num_text(s->breach_canary, a, sizeof(a)),
			       num_text(s->breach_baseline, b, sizeof(b)),
			       num_text(s->breach_limit, c, sizeof(c)));
	if (*s->function_latency)
		explain_field(r, "function latency", s->function_latency);
	return 0;
}

/* The command that reverts it, and whether `homeostat rollback` can do it now. */
static void explain_revert(struct ctl_response *r, const struct mem_change *c)
{
	const struct act_desc *ad = act_desc((enum act_kind)c->kind);
	bool revertible = ad && ad->revertible;

	if (*c->revert)
		explain_field(r, "revert", c->revert);
	else if (!revertible && ad && ad->not_revertible)
		explain_fieldf(r, "revert", "not revertible: %s", ad->not_revertible);
	else
		explain_field(r, "revert", "not revertible");
	switch (c->state) {
	case MEM_STATE_APPLIED:
	case MEM_STATE_KEPT:
		if (revertible)
			explain_fieldf(r, "rollback", "homeostat rollback %" PRId64, c->id);
		else
			explain_field(r, "rollback", "not possible: the kind cannot be reverted");
		break;
	case MEM_STATE_INTENT:
		explain_field(r, "rollback", "not yet: the change is being applied");
		break;
	case MEM_STATE_ROLLED_BACK:
		explain_field(r, "rollback", "done already: the change was rolled back");
		break;
	case MEM_STATE_FAILED:
		explain_field(r, "rollback",
			      "not by homeostat (FAILED): if the host still holds "
			      "the change, use the revert command");
		break;
	case MEM_STATE_PENDING_APPROVAL:
		explain_fieldf(r, "rollback",
			       "nothing to undo: not applied (homeostat reject %" PRId64
			       " refuses it)",
			       c->id);
		break;
	default:
		explain_field(r, "rollback", "nothing to undo: never applied");
	}
}

static int explain_change(struct hs_daemon *d, struct ctl_response *r, const struct mem_change *c,
			  const struct mem_outcome *o)
{
	static const char *const cols[] = {"field", "value"};
	static const enum ctl_col_type types[] = {CTL_COL_STRING, CTL_COL_STRING};
	char when[32];
	int err = 0;

	ctl_resp_table(r, "change", ARRAY_SIZE(cols), cols, types);
	explain_fieldf(r, "id", "%" PRId64, c->id);
	iso_time(c->created_at, when, sizeof(when));
	explain_field(r, "time", when);
	explain_field(r, "source", c->source);
	explain_field(r, "target", c->target);
	explain_field(r, "kind", mem_kind_name(c->kind));
	explain_field(r, "knob", c->knob);
	explain_field(r, "before", c->before);
	explain_field(r, "after", c->after);
	explain_field(r, "state", mem_state_name(c->state));
	explain_field(r, "why", c->why);
	if (c->episode_id)
		explain_episode(d, r, c->episode_id);
	if (!o) {
		explain_field(r, "verdict", "none yet");
	} else {
		iso_time(o->at, when, sizeof(when));
		explain_field(r, "concluded", when);
		explain_field(r, "verdict", mem_verdict_name(o->verdict));
		explain_field(r, "result", mem_result_name(o->result));
		if (*o->failure_reason)
			explain_field(r, "outcome", o->failure_reason);
		if (!isnan(o->fitness_before) || !isnan(o->fitness_after)) {
			char a[32], b[32];

			explain_fieldf(r, "fitness", "%s -> %s",
				       num_text(o->fitness_before, a, sizeof(a)),
				       num_text(o->fitness_after, b, sizeof(b)));
		}
		err = explain_stats(d, r, c->id, o);
	}
	explain_revert(r, c);
	return err;
}

static int explain_metric_row(const struct mem_metric_row *m, void *ud)
{
	struct ctl_response *r = ud;
	char buf[8][32];

	ctl_resp_row(r);
	ctl_resp_cell_str(r, m->metric);
	ctl_resp_cell_str(r, m->test);
	if (m->n_canary >= 0)
		ctl_resp_cell_int(r, m->n_canary);
	else
		ctl_resp_cell_null(r);
	if (m->n_baseline >= 0)
		ctl_resp_cell_int(r, m->n_baseline);
	else
		ctl_resp_cell_null(r);
	ctl_resp_cell_str(r, num_text(m->statistic, buf[0], sizeof(buf[0])));
	ctl_resp_cell_str(r, num_text(m->p, buf[1], sizeof(buf[1])));
	ctl_resp_cell_str(r, num_text(m->shift, buf[2], sizeof(buf[2])));
	if (isnan(m->ci_low) && isnan(m->ci_high))
		ctl_resp_cell_str(r, "-");
	else
		ctl_resp_cell_strf(r, "[%s, %s]", num_text(m->ci_low, buf[3], sizeof(buf[3])),
				   num_text(m->ci_high, buf[4], sizeof(buf[4])));
	ctl_resp_cell_str(r, num_text(m->effect, buf[5], sizeof(buf[5])));
	ctl_resp_cell_str(r, num_text(m->canary, buf[6], sizeof(buf[6])));
	ctl_resp_cell_str(r, num_text(m->baseline, buf[7], sizeof(buf[7])));
	ctl_resp_cell_str(r, m->verdict);
	ctl_resp_cell_str(r, m->reason);
	return r->err;
}

static int cmd_explain(struct hs_daemon *d, const struct ctl_request *req, struct ctl_response *r)
{
	static const char *const cols[] = {
	    "metric", "test",	"n_canary", "n_baseline", "statistic", "p",	"shift",
	    "ci",     "effect", "canary",   "baseline",	  "verdict",   "reason"};
	static const enum ctl_col_type types[] = {
	    CTL_COL_STRING, CTL_COL_STRING, CTL_COL_INT,    CTL_COL_INT,    CTL_COL_STRING,
	    CTL_COL_STRING, CTL_COL_STRING, CTL_COL_STRING, CTL_COL_STRING, CTL_COL_STRING,
	    CTL_COL_STRING, CTL_COL_STRING, CTL_COL_STRING};
	_cleanup_(mem_change_freep) struct mem_change *c = NULL;
	_cleanup_free_ struct mem_outcome *o = NULL;
	int64_t id = (int64_t)req->id;
	int err, n;

	_Static_assert(ARRAY_SIZE(cols) == ARRAY_SIZE(types), "columns and types");
	err = req->id > INT64_MAX ? -ENOENT : mem_change_get(d->mem, id, &c);
	if (err == -ENOENT)
		return ctl_resp_error(r, err, "change %" PRIu64 " not found", req->id);
	if (err < 0)
		return ctl_resp_error(r, err, "cannot read change %" PRIu64 ": %s", req->id,
				      mem_last_error(d->mem));
	err = mem_outcome_latest(d->mem, id, &o);
	if (err < 0 && err != -ENOENT)
		return ctl_resp_error(r, err, "cannot read the outcome of change %" PRIu64 ": %s",
				      req->id, mem_last_error(d->mem));
	ctl_resp_message(r, "change %" PRId64 ": %s %s of %s, '%s' -> '%s', %s", c->id,
			 mem_kind_name(c->kind), c->knob, c->target, c->before, c->after,
			 mem_state_name(c->state));
	err = explain_change(d, r, c, o);
	if (err < 0 && !r->err)
		return ctl_resp_error(r, err, "cannot read the outcome of change %" PRIu64 ": %s",
				      req->id, mem_last_error(d->mem));
	ctl_resp_table(r, "metrics", ARRAY_SIZE(cols), cols, types);
	n = mem_outcome_metrics(d->mem, id, explain_metric_row, r);
	if (n < 0 && !r->err)
		return ctl_resp_error(r, n, "cannot read the metrics of change %" PRIu64 ": %s",
				      req->id, mem_last_error(d->mem));
	return r->err;
}

static int decide(struct hs_daemon *d, const struct ctl_request *req, struct ctl_response *r,
		  bool approve)
{
	const char *verb = approve ? "approved" : "rejected";
	int err = mem_approval_decide(d->mem, req->id, approve, "operator (control socket)");

	switch (err) {
	case 0:
		break;
	case -ENOENT:
		return ctl_resp_error(r, err, "change %" PRIu64 " has no approval request",
				      req->id);
	case -EALREADY:
		return ctl_resp_error(r, err, "change %" PRIu64 " was already decided", req->id);
	case -ETIMEDOUT:
		return ctl_resp_error(r, err, "the approval of change %" PRIu64 " expired",
				      req->id);
	default:
		return ctl_resp_error(r, err, "cannot record the decision: %s",
				      mem_last_error(d->mem));
	}
	log_notice("change %" PRIu64 " %s by the operator", req->id, verb);
	return ctl_resp_message(r, "change %" PRIu64 " %s", req->id, verb);
}

static int cmd_approve(struct hs_daemon *d, const struct ctl_request *req, struct ctl_response *r)
{
	return decide(d, req, r, true);
}

static int cmd_reject(struct hs_daemon *d, const struct ctl_request *req, struct ctl_response *r)
{
	return decide(d, req, r, false);
}

static int cmd_rollback(struct hs_daemon *d, const struct ctl_request *req, struct ctl_response *r)
{
	char why[ACT_WHY_MAX + 256];
	int err = safe_changes_rollback(d->changes, (int64_t)req->id, "operator (control socket)",
					why, sizeof(why));

	switch (err) {
	case 0:
		return ctl_resp_message(r, "change %" PRIu64 ": %s", req->id, why);
	case -ENOENT:
		return ctl_resp_error(r, err, "change %" PRIu64 " not found", req->id);
	default:
		return ctl_resp_error(r, err, "change %" PRIu64 ": %s", req->id, why);
	}
}

static int set_paused(struct hs_daemon *d, struct ctl_response *r, bool pause)
{
	static const char *const cols[] = {"audit_seq", "paused"};
	static const enum ctl_col_type types[] = {CTL_COL_INT, CTL_COL_STRING};
	const char *event = pause ? "pause" : "resume";
	bool was = d->paused;
	int64_t seq;

	seq = mem_audit(d->mem, "operator", event, 0, "%s by the operator (was %s)", event,
			was ? "paused" : "running");
	if (seq < 0)
		return ctl_resp_error(r, (int)seq, "cannot record '%s': %s", event,
				      mem_last_error(d->mem));
	d->paused = pause;
	if (!pause && d->changes->gate.frozen) {
		safe_gate_unfreeze(&d->changes->gate);
		log_notice("storm freeze lifted by the operator");
	}
	if (was != pause)
		log_notice("%s by the operator: %s", pause ? "paused" : "resumed",
			   pause ? "no change will be proposed until resume"
				 : "changes may be proposed again");
	ctl_resp_message(r, "%s%s", was == pause ? "already " : "", pause ? "paused" : "running");
	ctl_resp_table(r, "result", ARRAY_SIZE(cols), cols, types);
	ctl_resp_row(r);
	ctl_resp_cell_int(r, seq);
	return ctl_resp_cell_str(r, pause ? "yes" : "no");
}

static int cmd_pause(struct hs_daemon *d, const struct ctl_request *req, struct ctl_response *r)
{
	return set_paused(d, r, true);
}

static int cmd_resume(struct hs_daemon *d, const struct ctl_request *req, struct ctl_response *r)
{
	return set_paused(d, r, false);
}

/* Answered later, by ctl_captures_tick(), when the window ends. */
static int cmd_profile(struct hs_daemon *d, const struct ctl_request *req, struct ctl_response *r)
{
	return ctl_captures_start(d, req, r);
}

/* redirect list|apply|revert: the redirect engine (redirect/engine.h) for the operator. */

static const char *yes_no(bool b)
{
	return b ? "yes" : "no";
}

static int redirect_row(const struct rd_status *s, void *ud)
{
	struct ctl_response *r = ud;

	ctl_resp_row(r);
	ctl_resp_cell_str(r, s->name);
	ctl_resp_cell_str(r, s->target);
	ctl_resp_cell_str(r, s->function);
	ctl_resp_cell_str(r, s->phase);
	ctl_resp_cell_str(r, s->alternative && *s->alternative ? s->alternative : NULL);
	ctl_resp_cell_int(r, s->tried);
	ctl_resp_cell_int(r, s->processes);
	if (isnan(s->hot_share))
		ctl_resp_cell_null(r);
	else
		ctl_resp_cell_real(r, round(s->hot_share * 1000) / 10);
	if (s->change_id)
		ctl_resp_cell_int(r, s->change_id);
	else
		ctl_resp_cell_null(r);
	ctl_resp_cell_str(r, s->note);
	return r->err;
}

static int live_row(const struct rd_live *l, void *ud)
{
	struct ctl_response *r = ud;

	ctl_resp_row(r);
	ctl_resp_cell_str(r, l->name);
	ctl_resp_cell_int(r, l->pid);
	ctl_resp_cell_str(r, l->function);
	ctl_resp_cell_str(r, l->alternative);
	ctl_resp_cell_strf(r, "0x%" PRIx64, l->addr);
	ctl_resp_cell_strf(r, "0x%" PRIx64, l->to);
	ctl_resp_cell_strf(r, "0x%" PRIx64, l->patch_at);
	ctl_resp_cell_int(r, l->len);
	ctl_resp_cell_str(r, l->before);
	ctl_resp_cell_str(r, l->after);
	ctl_resp_cell_str(r, yes_no(l->layout));
	ctl_resp_cell_str(r, yes_no(l->on));
	ctl_resp_cell_str(r, yes_no(l->kept));
	if (l->change_id)
		ctl_resp_cell_int(r, l->change_id);
	else
		ctl_resp_cell_null(r);
	return r->err;
}

/* Each redirect of the policy with its phase, each process redirected now with the bytes
 * written, and the mechanisms this kernel offers. No engine: empty tables, mechanisms "none". */
static int cmd_redirect_list(struct hs_daemon *d, const struct ctl_request *req,
			     struct ctl_response *r)
{
	static const char *const cols[] = {"name",	  "target", "function",	 "phase",
					   "alternative", "tried",  "processes", "hot_pct",
					   "change",	  "note"};
	static const enum ctl_col_type types[] = {
	    CTL_COL_STRING, CTL_COL_STRING, CTL_COL_STRING, CTL_COL_STRING, CTL_COL_STRING,
	    CTL_COL_INT,    CTL_COL_INT,    CTL_COL_REAL,   CTL_COL_INT,    CTL_COL_STRING};
	static const char *const lcols[] = {
	    "name",  "pid",    "function", "alternative", "addr", "to",	  "patch_at",
	    "bytes", "before", "after",	   "layout",	  "on",	  "kept", "change"};
	static const enum ctl_col_type ltypes[] = {
	    CTL_COL_STRING, CTL_COL_INT,    CTL_COL_STRING, CTL_COL_STRING, CTL_COL_STRING,
	    CTL_COL_STRING, CTL_COL_STRING, CTL_COL_INT,    CTL_COL_STRING, CTL_COL_STRING,
	    CTL_COL_STRING, CTL_COL_STRING, CTL_COL_STRING, CTL_COL_INT};
	static const char *const mcols[] = {"available"};
	static const enum ctl_col_type mtypes[] = {CTL_COL_STRING};
	struct rd_env env;
	int n;

	_Static_assert(ARRAY_SIZE(cols) == ARRAY_SIZE(types), "columns and types");
	_Static_assert(ARRAY_SIZE(lcols) == ARRAY_SIZE(ltypes), "columns and types");
	ctl_resp_table(r, "redirects", ARRAY_SIZE(cols), cols, types);
	n = d->redirect ? rd_engine_status(d->redirect, redirect_row, r) : 0;
	if (n < 0 && !r->err)
		return ctl_resp_error(r, n, "cannot list the redirects: %s", strerror(-n));
	ctl_resp_table(r, "live", ARRAY_SIZE(lcols), lcols, ltypes);
	if (d->redirect) {
		hs_rd_env(d, &env);
		n = rd_engine_live(d->redirect, &env, live_row, r);
		if (n < 0 && !r->err)
			return ctl_resp_error(r, n, "cannot list the redirected processes: %s",
					      strerror(-n));
	}
	ctl_resp_table(r, "mechanisms", ARRAY_SIZE(mcols), mcols, mtypes);
	ctl_resp_row(r);
	return ctl_resp_cell_str(r, d->redirect ? rd_engine_mechanisms(d->redirect) : "none");
}

/* Records the operator's request in the audit trail before it is carried out: its sequence
 * number, or the error, then set in r. */
static int64_t redirect_audit(struct hs_daemon *d, struct ctl_response *r, const char *event,
			      const char *what)
{
	int64_t seq = mem_audit(d->mem, "operator", event, 0, "%s by the operator", what);

	if (seq < 0)
		ctl_resp_error(r, (int)seq, "cannot record '%s': %s", what, mem_last_error(d->mem));
	return seq;
}

static int cmd_redirect_apply(struct hs_daemon *d, const struct ctl_request *req,
			      struct ctl_response *r)
{
	static const char *const cols[] = {"audit_seq", "redirect", "alternative"};
	static const enum ctl_col_type types[] = {CTL_COL_INT, CTL_COL_STRING, CTL_COL_STRING};
	const char *alt = req->alternative[0] ? req->alternative : NULL;
	char why[ACT_WHY_MAX + 256] = "", what[256];
	struct rd_env env;
	int64_t seq;
	int err;

	if (!d->redirect)
		return ctl_resp_error(
		    r, -ENOENT, "redirect '%s': the daemon runs no redirect engine", req->redirect);
	snprintf(what, sizeof(what), "redirect apply %s%s%s", req->redirect, alt ? " " : "",
		 alt ?: "");
	seq = redirect_audit(d, r, "redirect apply", what);
	if (seq < 0)
		return r->status;
	hs_rd_env(d, &env);
	/* The engine's why names the redirect, and it logs the start. */
	err = rd_engine_apply(d->redirect, &env, req->redirect, alt, why, sizeof(why));
	if (err < 0 && *why)
		return ctl_resp_error(r, err, "%s", why);
	if (err < 0)
		return ctl_resp_error(r, err, "redirect '%s': %s", req->redirect, strerror(-err));
	if (*why)
		ctl_resp_message(r, "%s", why);
	else
		ctl_resp_message(r, "redirect %s: trial starts (%s%s)", req->redirect,
				 alt ? "alternative " : "its next alternative", alt ?: "");
	ctl_resp_table(r, "result", ARRAY_SIZE(cols), cols, types);
	ctl_resp_row(r);
	ctl_resp_cell_int(r, seq);
	ctl_resp_cell_str(r, req->redirect);
	return ctl_resp_cell_str(r, alt);
}

static int cmd_redirect_revert(struct hs_daemon *d, const struct ctl_request *req,
			       struct ctl_response *r)
{
	static const char *const cols[] = {"audit_seq", "change"};
	static const enum ctl_col_type types[] = {CTL_COL_INT, CTL_COL_INT};
	char why[ACT_WHY_MAX + 256] = "", what[64];
	struct rd_env env;
	int64_t seq;
	int err;

	if (!d->redirect)
		return ctl_resp_error(
		    r, -ENOENT, "change %" PRIu64 ": the daemon runs no redirect engine", req->id);
	if (req->id > INT64_MAX)
		return ctl_resp_error(r, -ENOENT, "change %" PRIu64 " not found", req->id);
	snprintf(what, sizeof(what), "redirect revert %" PRIu64, req->id);
	seq = redirect_audit(d, r, "redirect revert", what);
	if (seq < 0)
		return r->status;
	hs_rd_env(d, &env);
	/* The engine's why names the change or the redirect. */
	err = rd_engine_revert(d->redirect, &env, (int64_t)req->id, why, sizeof(why));
	if (err < 0 && *why)
		return ctl_resp_error(r, err, "%s", why);
	if (err < 0)
		return ctl_resp_error(r, err, "change %" PRIu64 ": %s", req->id, strerror(-err));
	log_notice("change %" PRIu64 ": redirect reverted by the operator", req->id);
	if (*why)
		ctl_resp_message(r, "%s", why);
	else
		ctl_resp_message(r, "change %" PRIu64 ": redirect reverted in every process",
				 req->id);
	ctl_resp_table(r, "result", ARRAY_SIZE(cols), cols, types);
	ctl_resp_row(r);
	ctl_resp_cell_int(r, seq);
	return ctl_resp_cell_int(r, (int64_t)req->id);
}

static int (*const handlers[])(struct hs_daemon *, const struct ctl_request *,
			       struct ctl_response *) = {
    [CTL_REQ_STATUS] = cmd_status,
    [CTL_REQ_HISTORY] = cmd_history,
    [CTL_REQ_APPROVE] = cmd_approve,
    [CTL_REQ_REJECT] = cmd_reject,
    [CTL_REQ_ROLLBACK] = cmd_rollback,
    [CTL_REQ_PAUSE] = cmd_pause,
    [CTL_REQ_RESUME] = cmd_resume,
    [CTL_REQ_PROFILE] = cmd_profile,
    [CTL_REQ_EXPLAIN] = cmd_explain,
    [CTL_REQ_REDIRECT_LIST] = cmd_redirect_list,
    [CTL_REQ_REDIRECT_APPLY] = cmd_redirect_apply,
    [CTL_REQ_REDIRECT_REVERT] = cmd_redirect_revert,
};

int ctl_commands_handle(void *ud, const struct ctl_request *req, struct ctl_response *resp)
{
	struct hs_daemon *d = ud;

	if (req->type >= ARRAY_SIZE(handlers) || !handlers[req->type])
		return ctl_resp_error(resp, -EOPNOTSUPP, "request type %u is not handled",
				      req->type);
	log_debug("control request '%s'", ctl_req_desc(req->type)->name);
	if (handlers[req->type](d, req, resp) == CTL_DEFERRED)
		return CTL_DEFERRED;
	if (resp->err && !resp->status)
		ctl_resp_error(resp, resp->err, "cannot build the answer: %s",
			       strerror(-resp->err));
	return resp->status;
}
