/* measure.h - the latency of a redirected function and of its alternative during a redirect's
 * canary (issue 6, item 4): the alternative in a canary process and the original in a process
 * of the same target without the redirect, during the same canary, by uprobe and uretprobe
 * (observe/funclat.c).
 *
 * Why: the canary judges the target (its errors, requests, fitness), which says whether the
 * service is better; the function's own latency says why, and shows an operator what the
 * alternative does to the call itself. It is shown and stored with the verdict, not judged.
 *
 * Cost and safety: a probe hit costs microseconds, so each capture runs under the probe
 * budget of observe (2% of a CPU by default) and stops by itself when a hot function exceeds
 * it, having measured what it could. Each probe is attached to one process only (a uprobe
 * with a pid is installed in that process alone), never at a patched entry: the alternative's
 * entry is not patched, and the original is probed only where no redirect is. Both captures
 * end before the trial concludes, so that no probe is left where a promotion will patch.
 */
#ifndef HS_REDIRECT_MEASURE_H
#define HS_REDIRECT_MEASURE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct obs_funclat;

enum { RD_MEASURE_ORIG, RD_MEASURE_ALT, RD_MEASURE_N };

struct rd_measure {
	struct obs_funclat *fl[RD_MEASURE_N]; /* NULL: not measured */
	pid_t pid[RD_MEASURE_N];
	char func[RD_MEASURE_N][128];
	char why[RD_MEASURE_N][160]; /* why one is not measured */
};

/* Starts both captures (either may fail alone: its why says so). binary: the ELF holding the
 * function, NULL for the process's executable. pid 0: not measured, for no_pid_why. */
void rd_measure_start(struct rd_measure *m, pid_t orig_pid, const char *orig_binary, const char *fn,
		      pid_t alt_pid, const char *alt_binary, const char *alt,
		      const char *no_pid_why);
/* Every tick of the canary: applies the probe budget. */
void rd_measure_poll(struct rd_measure *m, uint64_t mono_ms);
/* Ends the captures: a one-line summary into summary and, when json is a JSON object, a
 * "function_latency" member appended to it ({"summary", "original", "alternative"}, each
 * with function, pid, calls, p50_ns, p90_ns, p99_ns, mean_ns, stopped_early). */
void rd_measure_end(struct rd_measure *m, char *json, size_t jsize, char *summary, size_t ssize);
/* Ends the captures without a report (a trial abandoned). */
void rd_measure_stop(struct rd_measure *m);

#endif
