/* uprobe.h - mechanism a of the redirect: a uprobe that writes ctx->ip (bpf/redirect.bpf.c).
 *
 * Where the kernel lets a uprobe program write ctx->ip (mainline 6.18 and later), a uprobe at
 * a function's entry sends a fraction of its calls, per call or sticky per thread, to an
 * alternative. redir_uprobe_probe() tells whether this kernel allows it; the daemon runs it
 * at start, reports the verdict and otherwise uses mechanism b (entry patch).
 *
 * Not exercised on the development hosts: their kernel refuses the write, so only the
 * probe's refusal and the pure helpers are tested there.
 */
#ifndef HS_REDIRECT_UPROBE_H
#define HS_REDIRECT_UPROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REDIR_FRACTION_ONE 65536u /* = REDIRECT_FRACTION_ONE of bpf/redirect.h: every call */

struct redir_uprobe;

struct redir_uprobe_opts {
	int pid;	      /* the process whose calls are redirected */
	const char *binary;   /* the ELF holding the function: executable or library */
	uint64_t func_offset; /* file offset of the function's entry in binary */
	uint64_t alt_addr;    /* virtual address of the alternative in pid (not an offset) */
	uint32_t fraction;    /* share of calls (or threads) redirected, in 1/65536 */
	bool sticky;	      /* per thread (hash of the tid) rather than per call */
};

struct redir_uprobe_stats {
	uint64_t redirected; /* calls sent to the alternative */
	uint64_t passed;     /* calls left to the original */
	uint64_t missing;    /* probe hits without an entry: after rollback, or another process */
};

/* 1 when this kernel accepts a uprobe program that writes ctx->ip, 0 when it refuses it,
 * -errno when the probe could not run (no BPF, no privilege). `why` gets one line:
 * "write to ctx->ip accepted", "write to ctx->ip refused: <verifier's reason>" or
 * "cannot load a uprobe program: <error>". Needs CAP_BPF and CAP_PERFMON. */
int redir_uprobe_probe(char *why, size_t size);

/* Probe, load, attach a uprobe at opts->func_offset of opts->binary in opts->pid, then insert
 * the map entry (calls start going to the alternative). -EOPNOTSUPP with the probe's `why`
 * when the kernel refuses the write; -EINVAL on bad options, with the reason in `why`. */
int redir_uprobe_attach(const struct redir_uprobe_opts *opts, struct redir_uprobe **out, char *why,
			size_t size);

/* Change the share of redirected calls; effective at the next call. */
int redir_uprobe_set_fraction(struct redir_uprobe *ru, uint32_t fraction, bool sticky);

int redir_uprobe_stats(struct redir_uprobe *ru, struct redir_uprobe_stats *out);

/* Rollback: delete the map entry (the next call runs the original), then detach and free.
 * Returns the first error; the uprobe is detached and `ru` freed in every case. */
int redir_uprobe_detach(struct redir_uprobe *ru);

/* Pure helpers, unit-tested. */

/* ratio in [0, 1] -> fraction in 1/65536, rounded to nearest; -ERANGE otherwise (NaN too). */
int redir_fraction_from_ratio(double ratio, uint32_t *fraction);

/* The draw in 0..65535 the kernel side compares with the fraction for thread `tid`. */
uint32_t redir_thread_draw(uint32_t tid, uint32_t seed);

/* The verdict of the probe from its load: err is the load's return (0 or -errno), log the
 * verifier's log (may be NULL or empty). Returns 1, 0 or err as redir_uprobe_probe() does,
 * and writes its `why`. A refusal is a verifier log with -EACCES or -EINVAL. */
int redir_uprobe_verdict(int err, const char *log, char *why, size_t size);

/* The essential line of a verifier log: the one before its statistics ("verification time",
 * "processed N insns"), else its last non-empty line. Copied into line, at most size-1. */
void redir_verifier_reason(const char *log, char *line, size_t size);

#endif
