/* profile_tool.c - drives the on-demand profilers of agent/observe/ from the command line.
 *
 *   profile_tool cpu   --pid P [--pid P...] [--seconds N] [--hz H] [--folded FILE] [--top N]
 *   profile_tool alloc --pid P [--seconds N] [--budget-pct X] [--max-hits N] [--top N]
 *   profile_tool func  --pid P [--binary PATH] --func NAME [--seconds N] [--budget-pct X]
 *   profile_tool recent --pid P [--seconds N]   the always-on path: host-wide sampling, 1 s
 *                                               windows, top functions of P from the windows
 *
 * Why: the integration tests (0110, 0120, 0130) exercise obs_cpuprof, obs_allocprof and
 * obs_funclat exactly as the daemon will (start, poll every 100 ms, collect when the window
 * ends), without depending on the daemon's wiring. It prints the human-readable table, then
 * machine-readable lines "= KEY VALUE" that the tests parse. Exit 0, 1 on failure, 2 on usage.
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <time.h>

#include "lib/log.h"
#include "lib/util.h"
#include "observe/allocprof.h"
#include "observe/cpuprof.h"
#include "observe/funclat.h"
#include "observe/profile.h"
#include "observe/symbolize.h"

#define MAX_PIDS 64

static volatile sig_atomic_t interrupted;

struct args {
	const char *mode;
	uint32_t pids[MAX_PIDS];
	unsigned npids;
	double seconds;
	unsigned hz;
	const char *folded;
	unsigned top;
	double budget_pct;
	uint64_t max_hits;
	const char *binary;
	const char *func;
};

static void on_signal(int sig)
{
	interrupted = 1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: profile_tool cpu --pid P [--pid P...] [--seconds N] [--hz H] "
		"[--folded FILE] [--top N]\n"
		"       profile_tool alloc --pid P [--seconds N] [--budget-pct X] "
		"[--max-hits N] [--top N]\n"
		"       profile_tool func --pid P [--binary PATH] --func NAME [--seconds N] "
		"[--budget-pct X]\n");
	return 2;
}

/* Sleeps in 100 ms steps until the window ends; poll (may be NULL) returns 0 to stop early. */
static void wait_window(double seconds, int (*poll)(void *, uint64_t), void *ctx)
{
	uint64_t end = now_ms() + (uint64_t)(seconds * 1000);

	while (!interrupted && now_ms() < end) {
		usleep(100 * 1000);
		if (poll && poll(ctx, now_ms()) <= 0)
			break;
	}
}

static int run_cpu(const struct args *a, struct obs_symbolizer *sym)
{
	struct obs_cpuprof_opts o = {.hz = a->hz, .tgids = a->pids, .ntgids = a->npids};
	struct obs_cpuprof *cp;
	struct obs_profile p;
	struct obs_profile_fn *rows;
	int err, n;

	err = obs_cpuprof_start(&o, &cp);
	if (err)
		return log_errno(err, "cannot start the CPU profiler");
	wait_window(a->seconds, NULL, NULL);
	err = obs_cpuprof_collect(cp, sym, &p);
	obs_cpuprof_stop(cp);
	if (err)
		return log_errno(err, "cannot collect the CPU profile");
	obs_profile_write_table(&p, stdout, a->top);
	if (a->folded) {
		FILE *f = fopen(a->folded, "we");

		if (!f) {
			err = log_errno(-errno, "cannot write '%s'", a->folded);
		} else {
			err = obs_profile_write_folded(&p, f, 0);
			if (fclose(f) && !err)
				err = -errno;
			if (err)
				log_errno(err, "cannot write '%s'", a->folded);
		}
	}
	printf("= samples %" PRIu64 "\n= drops %" PRIu64 "\n", p.total, p.drops);
	printf("= pid_samples %" PRIu64 "\n", obs_profile_weight(&p, a->pids[0]));
	n = obs_profile_top(&p, a->pids[0], &rows);
	if (n > 0)
		printf("= top_function %s\n= top_self_pct %.1f\n", rows[0].func, rows[0].self_pct);
	if (n >= 0)
		free(rows);
	obs_profile_reset(&p);
	return err;
}

/* What the "cpuprof" collector does: every process, leaf windows, top functions on demand. */
static int run_recent(const struct args *a, struct obs_symbolizer *sym)
{
	struct obs_cpuprof_opts o = {.hz = a->hz, .window_s = 1, .windows = 60};
	uint64_t end = now_ms() + (uint64_t)(a->seconds * 1000);
	struct obs_profile_fn *rows;
	struct obs_cpuprof *cp;
	struct obs_profile p;
	int err = 0, n;

	err = obs_cpuprof_start(&o, &cp);
	if (err)
		return log_errno(err, "cannot start the CPU profiler");
	while (!interrupted && now_ms() < end + 1100 && !err) {
		usleep(100 * 1000);
		err = obs_cpuprof_tick(cp, now_ms());
	}
	if (!err)
		err = obs_cpuprof_recent(cp, sym, a->pids[0], (unsigned)a->seconds, now_ms(), &p);
	obs_cpuprof_stop(cp);
	if (err)
		return log_errno(err, "cannot read the recent CPU samples");
	obs_profile_write_table(&p, stdout, a->top);
	printf("= samples %" PRIu64 "\n", p.total);
	n = obs_profile_top(&p, a->pids[0], &rows);
	if (n > 0)
		printf("= top_function %s\n= top_self_pct %.1f\n", rows[0].func, rows[0].self_pct);
	if (n >= 0)
		free(rows);
	obs_profile_reset(&p);
	return 0;
}

static int poll_alloc(void *ap, uint64_t now)
{
	return obs_allocprof_poll(ap, now);
}

static int run_alloc(const struct args *a, struct obs_symbolizer *sym)
{
	struct obs_allocprof_opts o = {
	    .pid = (int)a->pids[0], .budget_pct = a->budget_pct, .max_hits_per_s = a->max_hits};
	struct obs_allocprof *ap;
	struct obs_profile p;
	int err;

	err = obs_allocprof_start(&o, &ap);
	if (err)
		return log_errno(err, "cannot start the allocation profiler on pid %d", o.pid);
	wait_window(a->seconds, poll_alloc, ap);
	err = obs_allocprof_collect(ap, sym, &p);
	obs_allocprof_stop(ap);
	if (err)
		return log_errno(err, "cannot collect the allocation profile");
	obs_profile_write_table(&p, stdout, a->top);
	printf("= outstanding_bytes %" PRIu64 "\n= allocations %" PRIu64 "\n", p.total_bytes,
	       p.total);
	printf("= hits %" PRIu64 "\n= drops %" PRIu64 "\n= duration_ms %" PRIu64 "\n", p.hits,
	       p.drops, p.duration_ms);
	printf("= stopped_early %d\n", p.stopped_early);
	if (p.nstacks) {
		printf("= top_stack_bytes %" PRIu64 "\n= top_stack", p.stacks[0].bytes);
		for (uint32_t i = 0; i < p.stacks[0].nframes; i++)
			printf("%s%s", i ? ";" : " ",
			       p.stacks[0].frames[i].func ? p.stacks[0].frames[i].func
							  : "[unknown]");
		printf("\n");
	}
	obs_profile_reset(&p);
	return 0;
}

static int poll_func(void *fl, uint64_t now)
{
	return obs_funclat_poll(fl, now);
}

static int run_func(const struct args *a)
{
	struct obs_funclat_opts o = {.pid = (int)a->pids[0],
				     .binary = a->binary,
				     .func = a->func,
				     .budget_pct = a->budget_pct,
				     .max_hits_per_s = a->max_hits};
	struct obs_funclat *fl;
	struct obs_profile p;
	int err;

	err = obs_funclat_start(&o, &fl);
	if (err)
		return log_errno(err, "cannot trace '%s' in pid %d", a->func, o.pid);
	wait_window(a->seconds, poll_func, fl);
	err = obs_funclat_collect(fl, &p);
	obs_funclat_stop(fl);
	if (err)
		return log_errno(err, "cannot collect the latency of '%s'", a->func);
	obs_profile_write_table(&p, stdout, a->top);
	printf("= calls %" PRIu64 "\n= p50_ns %" PRIu64 "\n= p90_ns %" PRIu64 "\n= p99_ns %" PRIu64
	       "\n",
	       p.total, p.p50_ns, p.p90_ns, p.p99_ns);
	printf("= hits %" PRIu64 "\n= stopped_early %d\n", p.hits, p.stopped_early);
	obs_profile_reset(&p);
	return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = {
	    {"pid", required_argument, NULL, 'p'},
	    {"seconds", required_argument, NULL, 's'},
	    {"hz", required_argument, NULL, 'H'},
	    {"folded", required_argument, NULL, 'f'},
	    {"top", required_argument, NULL, 't'},
	    {"budget-pct", required_argument, NULL, 'b'},
	    {"max-hits", required_argument, NULL, 'm'},
	    {"binary", required_argument, NULL, 'B'},
	    {"func", required_argument, NULL, 'F'},
	    {"verbose", no_argument, NULL, 'v'},
	    {0},
	};
	int c;

	if (argc < 2)
		return -EINVAL;
	a->mode = argv[1];
	a->seconds = 3;
	a->top = 10;
	optind = 2;
	while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (a->npids == MAX_PIDS || atoi(optarg) <= 0)
				return -EINVAL;
			a->pids[a->npids++] = (uint32_t)atoi(optarg);
			break;
		case 's':
			a->seconds = atof(optarg);
			break;
		case 'H':
			a->hz = (unsigned)atoi(optarg);
			break;
		case 'f':
			a->folded = optarg;
			break;
		case 't':
			a->top = (unsigned)atoi(optarg);
			break;
		case 'b':
			a->budget_pct = atof(optarg);
			break;
		case 'm':
			a->max_hits = strtoull(optarg, NULL, 10);
			break;
		case 'B':
			a->binary = optarg;
			break;
		case 'F':
			a->func = optarg;
			break;
		case 'v':
			log_set_max_level(LOG_DEBUG);
			break;
		default:
			return -EINVAL;
		}
	}
	if (optind != argc || !a->npids || a->seconds <= 0)
		return -EINVAL;
	if (streq(a->mode, "func") && !a->func)
		return -EINVAL;
	return 0;
}

int main(int argc, char **argv)
{
	struct args a = {0};
	struct obs_symbolizer *sym = NULL;
	int err;

	log_open("profile_tool", true, LOG_WARNING);
	if (parse_args(argc, argv, &a))
		return usage();
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	err = obs_sym_new(NULL, &sym);
	if (err) {
		log_errno(err, "cannot create the symbolizer");
		return 1;
	}
	if (streq(a.mode, "cpu"))
		err = run_cpu(&a, sym);
	else if (streq(a.mode, "alloc"))
		err = run_alloc(&a, sym);
	else if (streq(a.mode, "recent"))
		err = run_recent(&a, sym);
	else if (streq(a.mode, "func"))
		err = run_func(&a);
	else
		err = usage();
	obs_sym_free(sym);
	return err == 2 ? 2 : err ? 1 : 0;
}
