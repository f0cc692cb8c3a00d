/* daemon.h - the state of one homeostatd, shared by main.c and the control commands.
 *
 * One instance, owned by main.c. Everything here is touched only from the event loop, so
 * nothing is locked. Configuration is swapped whole on a good reload and kept on a bad one.
 */
#ifndef HS_DAEMON_H
#define HS_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "observe/observe.h"

#include "lib/version.h"

struct safe_policy;
struct heal_runbooks;
struct mem;
struct ctl_server;
struct ctl_captures;
struct fit;
struct safe_changes;
struct heal_engine;
struct tune_engine;
struct rd_engine;
struct rd_env;

struct hs_opts {
	char *policy; /* absolute paths once main() has resolved them */
	char *runbooks;
	char *db;
	char *socket;
	char *pin_dir;
	char *state_dir; /* directory of the database: holds the lock */
	unsigned tick_ms;
	bool dry_run; /* forces dry_run whatever the policy says */
	bool foreground;
	int verbose;
	bool check_config;
};

struct hs_daemon {
	struct hs_opts opts;
	struct safe_policy *policy;
	struct heal_runbooks *runbooks;
	struct mem *mem;
	struct obs *obs;
	struct fit *fit; /* fitness per target: baselines and history (agent/fitness/) */
	struct ctl_server *ctl;
	struct ctl_captures *captures; /* on-demand profiles (ctl/captures.c); NULL until used */
	struct safe_changes *changes;  /* every change's life: gate, memory, actuators */
	struct heal_engine *heal;      /* the runbook engine (agent/remediate/engine.c) */
	struct tune_engine *tune;      /* the tuning jobs (agent/tune/tuner.c) */
	struct rd_engine *redirect;    /* the redirects (agent/redirect/engine.c) */
	int epfd, timer_fd, signal_fd, lock_fd;
	bool paused;
	bool stopping;
	uint64_t started_ms; /* CLOCK_MONOTONIC */
	time_t started_at;   /* wall clock, for humans */
	uint64_t ticks;
	uint64_t overruns;	   /* ticks missed because one took longer than the period */
	uint64_t last_tick_us;	   /* how long the last tick took */
	uint64_t last_expire_ms;   /* slow jobs of the tick: when they last ran */
	uint64_t last_fit_warn_ms; /* a failing fitness write is said once a minute */
	uint64_t reloads, reloads_refused;
	time_t last_reload_at;
	bool last_reload_ok;
	struct obs_snapshot snap;
};

/* Effective mode name: "dry_run" when forced by --dry-run, else the policy's. */
const char *hs_mode_name(const struct hs_daemon *d);
/* The redirect engine's view of the daemon now (for the control commands). */
void hs_rd_env(struct hs_daemon *d, struct rd_env *env);

#endif
