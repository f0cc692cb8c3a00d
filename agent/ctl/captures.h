/* captures.h - on-demand profiles for `homeostat profile`, and the top CPU functions of each
 * target for `homeostat status`.
 *
 * A PROFILE request starts a capture and defers its answer (server.h); the daemon's tick
 * polls the captures and answers each when its window ends. Nothing here blocks the loop.
 */
#ifndef HS_CTL_CAPTURES_H
#define HS_CTL_CAPTURES_H

#include <stddef.h>
#include <stdint.h>

#include "ctl/proto.h"

#define CTL_CAPTURES_MAX 2 /* captures running at once; more are refused with EBUSY */

struct hs_daemon;

/* The PROFILE handler: starts the capture and returns CTL_DEFERRED, or fills resp with the
 * error and returns it (-ENOENT unknown target, -ESRCH no live process, -EBUSY too many
 * captures, -EINVAL a pid outside the target, or what the profiler said). */
int ctl_captures_start(struct hs_daemon *d, const struct ctl_request *req,
		       struct ctl_response *resp);
/* Once a tick: polls the captures, answers those whose window ended or that stopped early,
 * and stops those whose client went away. */
void ctl_captures_tick(struct hs_daemon *d, uint64_t now_ms);
/* Stops every capture (probes detached), tells their clients, frees everything. */
void ctl_captures_close(struct hs_daemon *d);

/* The top CPU functions of target index (1..n) over the always-on sampler's recent windows,
 * as "hot_spin_function 93%, main 5%" in buf. Returns 0, -ENODATA (no sample of its
 * members), -EOPNOTSUPP (no always-on sampler) or -errno. */
int ctl_captures_top_cpu(struct hs_daemon *d, int index, char *buf, size_t size);

#endif
