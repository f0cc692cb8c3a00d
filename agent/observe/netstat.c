/* netstat.c - TCP listen-queue overflows per target, from the network namespaces it lives in.
 *
 * Why: a server whose accept queue is full drops SYNs and clients wait a second or more for
 * a retransmission; the kernel counts each drop in TcpExt ListenOverflows of the server's
 * network namespace (netstat -s: "times the listen queue of a socket overflowed"). There is
 * no tracepoint for it on every kernel, and the counter is exact, so it is read from
 * /proc/PID/net/netstat once per namespace per tick: the namespaces of a policy target's
 * members (stat of /proc/PID/ns/net tells them apart), and the init namespace (PID 1's) for
 * the rest of the host. The first reading of a namespace is the baseline, never a delta.
 *
 * Cost: a stat per member and a read per namespace per tick; at most OBS_NETNS_MAX
 * namespaces per target are followed (more are counted in snap->overflows, never silent).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/log.h"
#include "observe/observe.h"
#include "observe/targets.h"

/* ListenOverflows of the namespace of pid; -errno when unreadable. */
static int read_overflows(pid_t pid, uint64_t *out)
{
	char path[64], keys[4096], vals[4096];
	FILE *f;
	int err = -ENOENT;

	snprintf(path, sizeof(path), "/proc/%d/net/netstat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	/* Pairs of lines: "TcpExt: Name Name ..." then "TcpExt: value value ...". */
	while (fgets(keys, sizeof(keys), f) && fgets(vals, sizeof(vals), f)) {
		char *ks, *vs, *k, *v;

		if (strncmp(keys, "TcpExt:", 7))
			continue;
		k = strtok_r(keys + 7, " \n", &ks);
		v = strtok_r(vals + 7, " \n", &vs);
		while (k && v) {
			if (streq(k, "ListenOverflows")) {
				*out = strtoull(v, NULL, 10);
				err = 0;
				break;
			}
			k = strtok_r(NULL, " \n", &ks);
			v = strtok_r(NULL, " \n", &vs);
		}
		break;
	}
	fclose(f);
	return err;
}

static int netns_of(pid_t pid, uint64_t *ino)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	if (stat(path, &st) < 0)
		return -errno;
	*ino = st.st_ino;
	return 0;
}

/* Adds the delta of the namespace of pid (inode ino) to *sum; remembers it in w. */
static void account(struct obs_netns_watch *w, pid_t pid, uint64_t ino, uint64_t *sum,
		    uint64_t *lost)
{
	struct obs_netns_seen *s = NULL;
	uint64_t v;

	for (unsigned i = 0; i < w->n; i++)
		if (w->ns[i].ino == ino)
			s = &w->ns[i];
	if (s && s->gen == w->gen)
		return; /* this namespace was read this tick already */
	if (read_overflows(pid, &v))
		return;
	if (!s) {
		if (w->n == OBS_NETNS_MAX) {
			(*lost)++;
			return;
		}
		s = &w->ns[w->n++];
		s->ino = ino;
		s->last = v; /* a baseline, not a delta */
	}
	if (v >= s->last)
		*sum += v - s->last;
	s->last = v;
	s->gen = w->gen;
}

/* Forgets namespaces not seen this tick (their last member left). */
static void prune(struct obs_netns_watch *w)
{
	unsigned k = 0;

	for (unsigned i = 0; i < w->n; i++)
		if (w->ns[i].gen == w->gen)
			w->ns[k++] = w->ns[i];
	w->n = k;
}

void obs_netstat_sample(struct obs_netns_watch *watch, const struct obs_targets *t,
			struct obs_snapshot *snap)
{
	uint64_t lost = 0, ino;

	for (int idx = 0; idx < snap->ntargets && idx < HS_NTARGETS; idx++) {
		struct obs_netns_watch *w = &watch[idx];
		uint64_t sum = 0;

		w->gen++;
		if (idx == 0) {
			/* the rest of the host: the init namespace */
			if (netns_of(1, &ino) == 0)
				account(w, 1, ino, &sum, &lost);
		} else {
			const struct obs_members *m = &t->members[idx];

			for (size_t i = 0; i < m->n; i++)
				if (netns_of(m->pids[i], &ino) == 0)
					account(w, m->pids[i], ino, &sum, &lost);
		}
		prune(w);
		snap->t[idx].listen_overflows = sum;
	}
	if (lost) {
		snap->overflows += lost;
		log_debug("netstat: %" PRIu64 " namespaces not followed (more than %d a target)",
			  lost, OBS_NETNS_MAX);
	}
}
