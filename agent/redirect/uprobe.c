/* uprobe.c - user side of bpf/redirect.bpf.c: the feature probe and mechanism a.
 *
 * What: redir_uprobe_probe() loads redirect_probe, a uprobe program that writes ctx->ip back
 * unchanged, with its own verifier log, and turns the outcome into a verdict with a one-line
 * reason. redir_uprobe_attach() loads redirect_entry, attaches it at a function's entry in one
 * process with the attach cookie as its key, then inserts the map entry; from then on a
 * fraction of the calls goes to the alternative. redir_uprobe_detach() is the rollback:
 * delete the entry (the next call runs the original), then detach.
 *
 * Why a load is enough to probe: the gate is kprobe_prog_is_valid_access() in the verifier,
 * which refuses BPF_WRITE to struct pt_regs on kernels before 6.18 (and on the development
 * hosts' 6.18, which disables it). Where it accepts, __perf_event_set_bpf_prog() allows the
 * attach to uprobes only, which is all we do. The probe creates no map and is never attached.
 *
 * Invariants: one loaded object per redirect, one link, cookie 0; the entry exists only while
 * the link does. The alternative must have the original's signature: it runs on the caller's
 * stack frame with the caller's arguments and returns to the caller.
 *
 * Not exercised on the development hosts: their kernel refuses the write, so attach fails
 * there with -EOPNOTSUPP and the probe's reason.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <ctype.h>
#include <inttypes.h>
#include <linux/types.h>

#include "../../bpf/redirect.h"
#include "lib/log.h"
#include "lib/util.h"
#include "redirect.skel.h"
#include "redirect/uprobe.h"

#define PROBE_LOG_SIZE 16384
#define REDIR_COOKIE   0

_Static_assert(REDIR_FRACTION_ONE == REDIRECT_FRACTION_ONE, "fraction scales differ");

struct redir_uprobe {
	struct redirect_bpf *skel;
	struct bpf_link *link;
	struct redirect_target target;
	int ncpus;
};

int redir_fraction_from_ratio(double ratio, uint32_t *fraction)
{
	if (!(ratio >= 0.0 && ratio <= 1.0))
		return -ERANGE;
	*fraction = (uint32_t)(ratio * REDIR_FRACTION_ONE + 0.5);
	return 0;
}

uint32_t redir_thread_draw(uint32_t tid, uint32_t seed)
{
	return redirect_thread_draw(tid, seed);
}

static bool is_stats_line(const char *s, size_t n)
{
	static const char *const stats[] = {"processed ", "verification time", "stack depth"};

	for (size_t i = 0; i < ARRAY_SIZE(stats); i++)
		if (n >= strlen(stats[i]) && !strncmp(s, stats[i], strlen(stats[i])))
			return true;
	return false;
}

void redir_verifier_reason(const char *log, char *line, size_t size)
{
	const char *p = log ? log : "", *best = NULL;
	size_t best_len = 0;

	if (!size)
		return;
	while (*p) {
		const char *end = strchrnul(p, '\n'), *s = p, *e = end;

		while (s < e && isspace((unsigned char)*s))
			s++;
		while (e > s && isspace((unsigned char)e[-1]))
			e--;
		if (e > s && is_stats_line(s, e - s)) {
			if (best)
				break;
		} else if (e > s) {
			best = s;
			best_len = e - s;
		}
		p = *end ? end + 1 : end;
	}
	if (best_len >= size)
		best_len = size - 1;
	if (best_len)
		memcpy(line, best, best_len);
	line[best_len] = '\0';
}

int redir_uprobe_verdict(int err, const char *log, char *why, size_t size)
{
	char reason[256];

	if (!err) {
		snprintf(why, size, "write to ctx->ip accepted");
		return 1;
	}
	redir_verifier_reason(log, reason, sizeof(reason));
	if ((err == -EACCES || err == -EINVAL) && reason[0]) {
		snprintf(why, size, "write to ctx->ip refused: %s", reason);
		return 0;
	}
	snprintf(why, size, "cannot load a uprobe program: %s", strerror(err < 0 ? -err : err));
	return err < 0 ? err : -err;
}

int redir_uprobe_probe(char *why, size_t size)
{
	_cleanup_free_ char *log = calloc(1, PROBE_LOG_SIZE);
	struct redirect_bpf *skel;
	int err;

	if (!log)
		return -ENOMEM;
	skel = redirect_bpf__open();
	if (!skel) {
		err = -errno;
		snprintf(why, size, "cannot open the probe: %s", strerror(-err));
		return err;
	}
	bpf_program__set_autoload(skel->progs.redirect_entry, false);
	bpf_map__set_autocreate(skel->maps.redirect_targets, false);
	bpf_map__set_autocreate(skel->maps.redirect_counts, false);
	bpf_program__set_log_buf(skel->progs.redirect_probe, log, PROBE_LOG_SIZE);
	bpf_program__set_log_level(skel->progs.redirect_probe, 1);
	err = redirect_bpf__load(skel);
	redirect_bpf__destroy(skel);
	err = redir_uprobe_verdict(err, log, why, size);
	log_debug("uprobe ctx->ip write probe: %s", why);
	return err;
}

static int check_opts(const struct redir_uprobe_opts *o, char *why, size_t size)
{
	if (o->pid <= 0)
		snprintf(why, size, "pid %d must be positive", o->pid);
	else if (!o->binary || !*o->binary)
		snprintf(why, size, "binary is empty");
	else if (!o->alt_addr)
		snprintf(why, size, "alternative address is 0");
	else if (o->fraction > REDIR_FRACTION_ONE)
		snprintf(why, size, "fraction %" PRIu32 " must be between 0 and %u", o->fraction,
			 REDIR_FRACTION_ONE);
	else
		return 0;
	return -EINVAL;
}

static void destroy(struct redir_uprobe *ru)
{
	bpf_link__destroy(ru->link);
	redirect_bpf__destroy(ru->skel);
	free(ru);
}

int redir_uprobe_attach(const struct redir_uprobe_opts *opts, struct redir_uprobe **out, char *why,
			size_t size)
{
	LIBBPF_OPTS(bpf_uprobe_opts, uo, .bpf_cookie = REDIR_COOKIE);
	__u64 key = REDIR_COOKIE;
	struct redir_uprobe *ru;
	int err;

	err = check_opts(opts, why, size);
	if (err)
		return err;
	err = redir_uprobe_probe(why, size);
	if (err <= 0)
		return err < 0 ? err : -EOPNOTSUPP;
	ru = calloc(1, sizeof(*ru));
	if (!ru)
		return -ENOMEM;
	ru->ncpus = libbpf_num_possible_cpus();
	ru->target = (struct redirect_target){
	    .alt_addr = opts->alt_addr,
	    .tgid = (__u32)opts->pid,
	    .fraction = opts->fraction,
	    .seed = (__u32)opts->pid ^ (__u32)opts->func_offset,
	    .flags = opts->sticky ? REDIRECT_STICKY : 0,
	};
	ru->skel = redirect_bpf__open();
	if (!ru->skel) {
		err = -errno;
		snprintf(why, size, "cannot open redirect_entry: %s", strerror(-err));
		goto cleanup;
	}
	bpf_program__set_autoload(ru->skel->progs.redirect_probe, false);
	err = redirect_bpf__load(ru->skel);
	if (err) {
		snprintf(why, size, "cannot load redirect_entry: %s", strerror(-err));
		goto cleanup;
	}
	/* The link first: without its entry the probe lets every call through. */
	ru->link = bpf_program__attach_uprobe_opts(ru->skel->progs.redirect_entry, opts->pid,
						   opts->binary, opts->func_offset, &uo);
	if (!ru->link) {
		err = -errno;
		snprintf(why, size, "cannot attach a uprobe at offset 0x%" PRIx64 " of '%s': %s",
			 opts->func_offset, opts->binary, strerror(-err));
		goto cleanup;
	}
	if (bpf_map_update_elem(bpf_map__fd(ru->skel->maps.redirect_targets), &key, &ru->target,
				BPF_NOEXIST)) {
		err = -errno;
		snprintf(why, size, "cannot insert the redirect entry: %s", strerror(-err));
		goto cleanup;
	}
	log_debug("uprobe redirect of pid %d '%s'+0x%" PRIx64 " to 0x%" PRIx64 ": %" PRIu32
		  "/65536 of the %s",
		  opts->pid, opts->binary, opts->func_offset, opts->alt_addr, opts->fraction,
		  opts->sticky ? "threads" : "calls");
	*out = ru;
	return 0;
cleanup:
	destroy(ru);
	return err;
}

int redir_uprobe_set_fraction(struct redir_uprobe *ru, uint32_t fraction, bool sticky)
{
	struct redirect_target t = ru->target;
	__u64 key = REDIR_COOKIE;

	if (fraction > REDIR_FRACTION_ONE)
		return -EINVAL;
	t.fraction = fraction;
	t.flags = sticky ? REDIRECT_STICKY : 0;
	/* BPF_EXIST: never resurrect an entry that a rollback deleted */
	if (bpf_map_update_elem(bpf_map__fd(ru->skel->maps.redirect_targets), &key, &t, BPF_EXIST))
		return -errno;
	ru->target = t;
	return 0;
}

int redir_uprobe_stats(struct redir_uprobe *ru, struct redir_uprobe_stats *out)
{
	_cleanup_free_ struct redirect_counts *v = NULL;
	__u32 slot = REDIR_COOKIE;

	if (ru->ncpus <= 0)
		return -EINVAL;
	v = calloc(ru->ncpus, sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (bpf_map_lookup_elem(bpf_map__fd(ru->skel->maps.redirect_counts), &slot, v))
		return -errno;
	memset(out, 0, sizeof(*out));
	for (int i = 0; i < ru->ncpus; i++) {
		out->redirected += v[i].redirected;
		out->passed += v[i].passed;
		out->missing += v[i].missing;
	}
	return 0;
}

int redir_uprobe_detach(struct redir_uprobe *ru)
{
	__u64 key = REDIR_COOKIE;
	int err = 0;

	if (!ru)
		return 0;
	/* First the entry: effective at the next call, even while the uprobe unregisters. */
	if (bpf_map_delete_elem(bpf_map__fd(ru->skel->maps.redirect_targets), &key) &&
	    errno != ENOENT)
		err = -errno;
	destroy(ru);
	return err;
}
