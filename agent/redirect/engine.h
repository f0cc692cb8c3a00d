/* engine.h - the redirect engine: sends the calls of a hot function of a running program to an
 * alternative in the same address space, keeps it only when a canary shows it better, and
 * undoes it at once when it hurts (the self-evolving part of DESIGN.md, issue 6).
 *
 * Why: an alternative implementation (faster, or cheaper on this host) often exists next to
 * the function a service spends its CPU in: a vectorised variant, a cached one, one built for
 * another CPU. Whether it is better on this host, under this load, is a question for a canary,
 * not for the programmer; and a wrong or crashing variant must cost at most one process for a
 * few seconds.
 *
 * Each policy redirect (safe_redirect), each tick, in one of these phases:
 *   wait      the target has no process, the function is not hot yet (its share of the
 *             target's CPU samples in the always-on CPU profile is below hot_share), a weighted
 *             fitness part is still learning, or another trial runs (one trial on the host at
 *             a time: the tuner's or another redirect's)
 *   propose   the next alternative (the policy's list, else every FUNCTION__alt_* symbol of the
 *             same ELF), skipped when memory says it failed before; symbols are resolved in
 *             each process (PIE/ASLR and shared libraries through /proc/PID/maps); one change
 *             per canary process (canary_processes of the target's N; the rest are left alone)
 *             of kind patch, the first through the gate, the others as parts of it; an
 *             alternative in a patch library the process does not map is loaded by the
 *             change's apply (ptrace dlopen), so only once the gate admits it
 *   approval  the redirect's class asks for it (notify or require)
 *   canary    switchback blocks (off, on, off, ...) on the canary processes: each switch is an
 *             apply or revert of the entry patch, a pause of a few hundred microseconds (the
 *             gate applies the change and the first block switches it off at once: a process
 *             that dies in that moment died of the alternative, and is handled as below).
 *             Samples are the target's (its fitness, counted errors, syscall rate as
 *             throughput, RSS); the policy's rollback_on is watched every tick; a canary
 *             process that dies while redirected (a fatal signal) ends the trial at once as a
 *             failure: every process is reverted, the crashed one restarted where
 *             restart_on_crash says so, and memory refuses that alternative from then on.
 *             The function's own latency (the alternative in a canary process, the original
 *             in one without the redirect) is measured meanwhile and stored with the verdict
 *             (measure.h). DONE's verdict: KEEP promotes the redirect, anything else rolls
 *             it back and the next alternative is tried
 *   kept      the alternative stays: with promote, every process of the target is redirected
 *             (and, with new_processes, every process that starts later), each a change of its
 *             own that is part of the kept one; a crash of any redirected process rolls the
 *             redirect back in every process at once and is recorded as a failure; an entry
 *             someone else changed since is left to them (abandoned, as the tuner does);
 *             what a previous daemon kept is found in memory at the first tick and watched
 *             the same way (adopt(): its processes still run the alternative)
 *   done      every alternative was tried and none kept, or an operator reverted it
 *
 * Mechanism: the entry patch of actuate/patch.c (ptrace stop, a jump written over whole
 * instructions at the entry, read back, resumed) on every kernel. The uprobe register write
 * (redirect/uprobe.h) is probed at start and reported in `homeostat status`; it is not used
 * for trials yet.
 *
 * Invariants: nothing here touches a process except through safe_changes_*(); every change
 * says why (redirect, function, alternative, pid, how hot) and its outcome holds the canary's
 * statistics; at most one redirect is in approval or canary at a time.
 */
#ifndef HS_REDIRECT_ENGINE_H
#define HS_REDIRECT_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct safe_policy;
struct safe_changes;
struct mem;
struct obs;
struct obs_snapshot;
struct fit;
struct rd_engine;

#define RD_NAME_MAX 128 /* symbol names, as ACT_NAME_MAX */
#define RD_HEX_MAX  65	/* ACT_PATCH_MAX bytes in hex */

struct rd_env {
	const struct safe_policy *policy;
	struct safe_changes *changes;
	struct mem *mem;
	struct obs *obs;
	const struct obs_snapshot *snap;
	const struct fit *fit;
	bool force_dry_run; /* homeostatd --dry-run */
	bool paused;	    /* homeostat pause: no new trial */
	bool host_busy;	    /* another engine runs a trial: none starts here */
	int64_t now_ms;	    /* wall clock (memory, the gate) */
	uint64_t mono_ms;   /* CLOCK_MONOTONIC (canary time) */
};

/* One row of `homeostat redirect list` (and of status). */
struct rd_status {
	const char *name;
	const char *target;
	const char *function;
	const char *phase;	 /* "wait", "propose", "approval", "canary", "kept", "done" */
	const char *alternative; /* tried or kept now; "" */
	unsigned tried;		 /* alternatives concluded */
	unsigned processes;	 /* processes redirected now */
	double hot_share;	 /* the function's share of the target's CPU samples; NAN */
	int64_t change_id;	 /* the trial's first change, or the kept one; 0: none */
	const char *note;	 /* the last thing that happened */
};

/* One process redirected now (a live patch change). */
struct rd_live {
	const char *name; /* the policy redirect */
	pid_t pid;
	const char *function, *alternative;
	uint64_t addr, to, patch_at;
	unsigned len;
	bool layout;		 /* -fpatchable-function-entry layout */
	bool on;		 /* a switchback canary may have it off */
	bool kept;		 /* concluded KEEP (else: in its canary) */
	char before[RD_HEX_MAX]; /* the bytes replaced and the bytes written, hex */
	char after[RD_HEX_MAX];
	int64_t change_id;
};

int rd_engine_open(struct rd_engine **out);
/* Takes the policy's redirects (after a load or reload): one that kept its name and its
 * definition goes on; a changed or removed one ends (a trial in progress is rolled back, a
 * kept redirect stays until an operator reverts it). */
void rd_engine_configure(struct rd_engine *e, const struct rd_env *env);
void rd_engine_tick(struct rd_engine *e, const struct rd_env *env);
/* Is a redirect in approval or canary? (the tuner waits for it, and the other way round) */
bool rd_engine_busy(const struct rd_engine *e);
int rd_engine_status(const struct rd_engine *e, int (*cb)(const struct rd_status *s, void *ud),
		     void *ud);
int rd_engine_live(const struct rd_engine *e, const struct rd_env *env,
		   int (*cb)(const struct rd_live *l, void *ud), void *ud);
/* An operator's `homeostat redirect apply NAME [ALTERNATIVE]`: the redirect's next trial starts
 * now, whether the function is hot or not, with that alternative (NULL: the next one). It
 * still goes through the gate, approvals and the canary. 0, or -errno with why. */
int rd_engine_apply(struct rd_engine *e, const struct rd_env *env, const char *name,
		    const char *alternative, char *why, size_t size);
/* An operator's `homeostat redirect revert ID`: ID is any change of a redirect (a trial's or a
 * kept one's); every process of that redirect is reverted at once and the redirect is done
 * (a later `redirect apply` starts it again). 0, or -errno with why. */
int rd_engine_revert(struct rd_engine *e, const struct rd_env *env, int64_t id, char *why,
		     size_t size);
/* Change ids waiting for approval (for safe_changes_deny_orphans()); returns the count. */
size_t rd_engine_waiting(const struct rd_engine *e, int64_t *ids, size_t max);
/* The mechanisms this kernel offers, for status: "entry patch (ptrace)" and the uprobe
 * register write's probe verdict with its reason. */
const char *rd_engine_mechanisms(const struct rd_engine *e);
/* Ends every redirect: a trial in progress is rolled back ("interrupted: the daemon
 * stopped"); kept redirects stay in their processes (reconcile after a crash reverts only
 * what was not concluded). Frees e. */
void rd_engine_close(struct rd_engine *e, const struct rd_env *env);

#endif
