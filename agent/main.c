/* main.c - homeostatd: arguments, start-up, the event loop and the periodic tick.
 *
 * One epoll loop (redis' serverCron shape): a timerfd drives hs_tick() every --tick ms, a
 * signalfd turns SIGINT/SIGTERM into a clean stop and SIGHUP into a reload, and the control
 * socket's fds are served without ever blocking. Slow work is throttled inside the tick.
 *
 * Start-up order matters: configuration is validated before anything is touched; the state
 * directory is locked before the database is opened, and the database is opened before any
 * collector, so that a second daemon fails early and changes nothing.
 */
#include <bpf/libbpf.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>

#include "ctl/captures.h"
#include "ctl/commands.h"
#include "ctl/server.h"
#include "daemon.h"
#include "fitness/fitness.h"
#include "lib/errors.h"
#include "lib/log.h"
#include "memory/memory.h"
#include "observe/observe.h"
#include "redirect/engine.h"
#include "remediate/engine.h"
#include "remediate/runbook.h"
#include "safety/changes.h"
#include "safety/policy.h"
#include "tune/tuner.h"

#define DEFAULT_POLICY	 "/etc/homeostat/policy.yaml"
#define DEFAULT_RUNBOOKS "/etc/homeostat/remediations"
#define DEFAULT_DB	 "/var/lib/homeostat/memory.db"
#define DEFAULT_SOCKET	 "/run/homeostat/control.sock"
#define DEFAULT_TICK_MS	 1000
#define EXPIRE_PERIOD_MS 5000

enum { EV_TIMER = 1, EV_SIGNAL = 2 };

static void usage(FILE *f)
{
	fprintf(f, "usage: homeostatd [options]\n"
		   "  --policy FILE        safety policy (default " DEFAULT_POLICY ")\n"
		   "  --runbooks DIR       runbook directory (default " DEFAULT_RUNBOOKS ")\n"
		   "  --db FILE            memory database (default " DEFAULT_DB ")\n"
		   "  --socket PATH        control socket (default " DEFAULT_SOCKET ")\n"
		   "  --pin-dir DIR        BPF pin directory (default " OBS_PIN_DIR_DEFAULT ")\n"
		   "  --tick MS            tick period in milliseconds, 10..60000 (default 1000)\n"
		   "  --dry-run            log what would be done, change nothing\n"
		   "  --foreground         stay in the foreground and log to stderr\n"
		   "  --check-config       validate the policy (and --runbooks if given) and exit\n"
		   "  -v, --verbose        debug logging (libbpf's output included)\n"
		   "  -h, --help           this help\n"
		   "  --version            print the version\n");
}

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_args(int argc, char **argv, struct hs_opts *o, bool *runbooks_given)
{
	enum {
		O_POLICY = 256,
		O_RUNBOOKS,
		O_DB,
		O_SOCKET,
		O_PIN,
		O_TICK,
		O_DRY,
		O_FG,
		O_CHECK,
		O_VERSION
	};
	static const struct option longopts[] = {
	    {"policy", required_argument, NULL, O_POLICY},
	    {"runbooks", required_argument, NULL, O_RUNBOOKS},
	    {"db", required_argument, NULL, O_DB},
	    {"socket", required_argument, NULL, O_SOCKET},
	    {"pin-dir", required_argument, NULL, O_PIN},
	    {"tick", required_argument, NULL, O_TICK},
	    {"dry-run", no_argument, NULL, O_DRY},
	    {"foreground", no_argument, NULL, O_FG},
	    {"check-config", no_argument, NULL, O_CHECK},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, O_VERSION},
	    {},
	};
	int c;

	while ((c = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		switch (c) {
		case O_POLICY:
			o->policy = optarg;
			break;
		case O_RUNBOOKS:
			o->runbooks = optarg;
			*runbooks_given = true;
			break;
		case O_DB:
			o->db = optarg;
			break;
		case O_SOCKET:
			o->socket = optarg;
			break;
		case O_PIN:
			o->pin_dir = optarg;
			break;
		case O_TICK:
			if (parse_uint(optarg, 10, 60000, &o->tick_ms)) {
				fprintf(stderr,
					"homeostatd: invalid --tick '%s': must be between "
					"10 and 60000 milliseconds\n",
					optarg);
				return -EINVAL;
			}
			break;
		case O_DRY:
			o->dry_run = true;
			break;
		case O_FG:
			o->foreground = true;
			break;
		case O_CHECK:
			o->check_config = true;
			break;
		case 'v':
			o->verbose++;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case O_VERSION:
			printf("homeostatd %s\n", HS_VERSION);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "homeostatd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return -EINVAL;
	}
	return 0;
}

/* Loads policy and runbooks into *policy and *runbooks, or fills errs and returns -EINVAL. */
static int load_config(const char *policy_path, const char *runbook_dir,
		       struct safe_policy **policy, struct heal_runbooks **runbooks,
		       struct hs_errors *errs)
{
	struct safe_policy *p = NULL;
	struct heal_runbooks *r = NULL;

	safe_policy_load(policy_path, 0, &p, errs);
	if (runbook_dir)
		heal_runbooks_load(runbook_dir, 0, &r, errs);
	if (p && r)
		heal_runbooks_check_policy(r, p, errs);
	if (errs->n) {
		safe_policy_free(p);
		heal_runbooks_free(r);
		return -EINVAL;
	}
	*policy = p;
	*runbooks = r;
	return 0;
}

static int check_config(const struct hs_opts *o, bool runbooks_given)
{
	struct hs_errors errs = {0};
	struct safe_policy *p = NULL;
	struct heal_runbooks *r = NULL;
	int err;

	err = load_config(o->policy, runbooks_given ? o->runbooks : NULL, &p, &r, &errs);
	if (err) {
		hs_errors_print(&errs, stderr);
		hs_errors_clear(&errs);
		return 1;
	}
	safe_policy_free(p);
	heal_runbooks_free(r);
	printf("configuration OK\n");
	return 0;
}

/* Root, or at least CAP_SYS_ADMIN or CAP_BPF: the agent loads BPF and changes the host. */
static bool privileged(void)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2] = {};

	if (geteuid() == 0)
		return true;
	if (syscall(SYS_capget, &hdr, data) < 0)
		return false;
	return (data[CAP_SYS_ADMIN / 32].effective & (1u << (CAP_SYS_ADMIN % 32))) ||
	       (data[CAP_BPF / 32].effective & (1u << (CAP_BPF % 32)));
}

/* Creates DIR (one level) with mode 0700 if missing. */
static int ensure_dir(const char *dir)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return log_errno(-errno, "cannot create directory '%s'", dir);
	return 0;
}

/* Turns *path into an absolute path (the daemon chdirs to / when it detaches). */
static int absolutize(char **path)
{
	char cwd[PATH_MAX], *abs;

	if ((*path)[0] == '/') {
		abs = strdup(*path);
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return -errno;
		if (asprintf(&abs, "%s/%s", cwd, *path) < 0)
			abs = NULL;
	}
	if (!abs)
		return -ENOMEM;
	*path = abs;
	return 0;
}

static int lock_state_dir(struct hs_daemon *d)
{
	_cleanup_free_ char *path = NULL;
	char buf[32];
	int fd, n;

	if (asprintf(&path, "%s/homeostatd.lock", d->opts.state_dir) < 0)
		return -ENOMEM;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return log_errno(-errno, "cannot open lock file '%s'", path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int err = -errno;

		n = pread(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		close(fd);
		if (err == -EWOULDBLOCK) {
			log_err("state directory '%s' is in use by another homeostatd (pid %s)",
				d->opts.state_dir, buf[0] ? buf : "unknown");
			return -EBUSY;
		}
		return log_errno(err, "cannot lock '%s'", path);
	}
	n = snprintf(buf, sizeof(buf), "%d\n", getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, n, 0) != n)
		log_warn_errno(-errno, "cannot write pid to '%s', ignoring", path);
	d->lock_fd = fd;
	return 0;
}

static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char buf[1024];
	size_t n;

	if (log_get_max_level() < LOG_DEBUG)
		return 0;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	log_debug("libbpf: %s", buf);
	return 0;
}

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *hs_mode_name(const struct hs_daemon *d)
{
	if (d->opts.dry_run)
		return "dry_run";
	return d->policy ? safe_mode_names[d->policy->mode] : "observe";
}

/* The daemon's own files are protected from every action, whatever the policy says. */
static void protect_own_files(struct hs_daemon *d, struct safe_policy *p)
{
	const char *own[] = {d->opts.policy, d->opts.runbooks,	d->opts.db,
			     d->opts.socket, d->opts.state_dir, "/proc/self/exe"};
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n > 0) {
		exe[n] = '\0';
		own[ARRAY_SIZE(own) - 1] = exe;
	}
	for (size_t i = 0; i < ARRAY_SIZE(own); i++)
		if (safe_policy_protect_path(p, own[i]))
			log_warn("cannot protect '%s', ignoring", own[i]);
}

static void tune_configure(struct hs_daemon *d);

static void reload(struct hs_daemon *d)
{
	struct hs_errors errs = {0};
	struct safe_policy *p = NULL;
	struct heal_runbooks *r = NULL;
	int err;

	d->last_reload_at = time(NULL);
	if (load_config(d->opts.policy, d->opts.runbooks, &p, &r, &errs)) {
		for (size_t i = 0; i < errs.n; i++)
			log_err("%s", errs.msgs[i]);
		log_err("configuration reload refused (%zu errors), keeping the running "
			"configuration",
			errs.n);
		mem_audit(d->mem, "daemon", "reload_refused", 0, "%zu errors, first: %s", errs.n,
			  errs.n ? errs.msgs[0] : "");
		hs_errors_clear(&errs);
		d->reloads_refused++;
		d->last_reload_ok = false;
		return;
	}
	protect_own_files(d, p);
	err = obs_reconfigure(d->obs, p);
	if (err)
		log_warn_errno(err, "cannot observe the new targets, ignoring");
	safe_policy_free(d->policy);
	heal_runbooks_free(d->runbooks);
	d->policy = p;
	d->runbooks = r;
	tune_configure(d);
	d->reloads++;
	d->last_reload_ok = true;
	log_info("configuration reloaded: mode %s, %zu runbooks", hs_mode_name(d), r->n);
	mem_audit(d->mem, "daemon", "reload", 0, "mode %s, %zu runbooks", hs_mode_name(d), r->n);
}

static void heal_env_fill(struct hs_daemon *d, struct heal_env *env, uint64_t mono_ms)
{
	*env = (struct heal_env){.policy = d->policy,
				 .runbooks = d->runbooks,
				 .changes = d->changes,
				 .mem = d->mem,
				 .obs = d->obs,
				 .snap = &d->snap,
				 .force_dry_run = d->opts.dry_run,
				 .paused = d->paused,
				 .now_ms = (int64_t)wall_ms(),
				 .mono_ms = mono_ms};
}

static void tune_env_fill(struct hs_daemon *d, struct tune_env *env, uint64_t mono_ms)
{
	*env = (struct tune_env){.policy = d->policy,
				 .changes = d->changes,
				 .mem = d->mem,
				 .obs = d->obs,
				 .snap = &d->snap,
				 .fit = d->fit,
				 .force_dry_run = d->opts.dry_run,
				 .paused = d->paused,
				 .host_busy = rd_engine_busy(d->redirect),
				 .now_ms = (int64_t)wall_ms(),
				 .mono_ms = mono_ms};
}

static void rd_env_fill(struct hs_daemon *d, struct rd_env *env, uint64_t mono_ms)
{
	*env = (struct rd_env){.policy = d->policy,
			       .changes = d->changes,
			       .mem = d->mem,
			       .obs = d->obs,
			       .snap = &d->snap,
			       .fit = d->fit,
			       .force_dry_run = d->opts.dry_run,
			       .paused = d->paused,
			       .host_busy = tune_engine_busy(d->tune),
			       .now_ms = (int64_t)wall_ms(),
			       .mono_ms = mono_ms};
}

void hs_rd_env(struct hs_daemon *d, struct rd_env *env)
{
	rd_env_fill(d, env, d->snap.at_ms ? d->snap.at_ms : mono_us() / 1000);
}

static void tune_configure(struct hs_daemon *d)
{
	struct tune_env env;
	struct rd_env renv;

	tune_env_fill(d, &env, mono_us() / 1000);
	tune_engine_configure(d->tune, &env);
	rd_env_fill(d, &renv, mono_us() / 1000);
	rd_engine_configure(d->redirect, &renv);
}

static void heal_tick(struct hs_daemon *d, uint64_t now_ms)
{
	struct heal_env env;

	heal_env_fill(d, &env, d->snap.at_ms ? d->snap.at_ms : now_ms);
	heal_engine_tick(d->heal, &env);
}

static void tune_tick(struct hs_daemon *d, uint64_t now_ms)
{
	struct tune_env env;

	tune_env_fill(d, &env, d->snap.at_ms ? d->snap.at_ms : now_ms);
	tune_engine_tick(d->tune, &env);
}

static void rd_tick(struct hs_daemon *d, uint64_t now_ms)
{
	struct rd_env env;

	rd_env_fill(d, &env, d->snap.at_ms ? d->snap.at_ms : now_ms);
	rd_engine_tick(d->redirect, &env);
}

/* Approved changes nobody waits for any more are denied, not applied behind anyone's back. */
static void deny_orphans(struct hs_daemon *d)
{
	int64_t ids[64];
	size_t n = heal_engine_waiting(d->heal, ids, ARRAY_SIZE(ids));
	int r;

	n += tune_engine_waiting(d->tune, ids + n, ARRAY_SIZE(ids) - n);
	n += rd_engine_waiting(d->redirect, ids + n, ARRAY_SIZE(ids) - n);
	r = safe_changes_deny_orphans(d->changes, ids, n);

	if (r < 0)
		log_warn_errno(r, "cannot check approved changes, ignoring");
}

/* The periodic routine. Slow jobs run every N ticks, never blocking the loop. */
static void hs_tick(struct hs_daemon *d, uint64_t now_ms)
{
	uint64_t t0 = mono_us();
	int err;

	err = obs_sample(d->obs, &d->snap);
	if (err)
		log_debug("observation sample incomplete: %s", strerror(-err));
	/* Scores every target; a failing database is said at most once a minute. */
	err = fit_tick(d->fit, &d->snap, d->policy, d->mem, (int64_t)wall_ms());
	if (err && (!d->last_fit_warn_ms || now_ms - d->last_fit_warn_ms >= 60000)) {
		log_warn_errno(err, "cannot record fitness, ignoring: %s", mem_last_error(d->mem));
		d->last_fit_warn_ms = now_ms;
	}
	if (now_ms - d->last_expire_ms >= EXPIRE_PERIOD_MS) {
		int n = mem_approvals_expire(d->mem, (int64_t)time(NULL) * 1000);

		if (n > 0)
			log_notice("%d pending approvals expired, their changes are denied", n);
		else if (n < 0)
			log_warn_errno(n, "cannot expire approvals, ignoring");
		deny_orphans(d);
		d->last_expire_ms = now_ms;
	}
	safe_changes_poll(d->changes); /* restart commands of concluded changes */
	heal_tick(d, now_ms);
	tune_tick(d, now_ms);
	rd_tick(d, now_ms);
	ctl_captures_tick(d, now_ms);
	ctl_server_expire(d->ctl, now_ms);
	d->ticks++;
	d->last_tick_us = mono_us() - t0;
}

static int setup_loop(struct hs_daemon *d)
{
	struct itimerspec its = {
	    .it_interval = {d->opts.tick_ms / 1000, (d->opts.tick_ms % 1000) * 1000000L},
	    .it_value = {d->opts.tick_ms / 1000, (d->opts.tick_ms % 1000) * 1000000L},
	};
	struct epoll_event ev = {.events = EPOLLIN};
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return log_errno(-errno, "cannot block signals");
	signal(SIGPIPE, SIG_IGN);
	d->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (d->signal_fd < 0)
		return log_errno(-errno, "cannot create signalfd");
	d->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (d->timer_fd < 0)
		return log_errno(-errno, "cannot create timerfd");
	if (timerfd_settime(d->timer_fd, 0, &its, NULL) < 0)
		return log_errno(-errno, "cannot arm timerfd");
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d->epfd < 0)
		return log_errno(-errno, "cannot create epoll instance");
	ev.data.u64 = EV_TIMER;
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->timer_fd, &ev) < 0)
		return log_errno(-errno, "cannot watch timerfd");
	ev.data.u64 = EV_SIGNAL;
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->signal_fd, &ev) < 0)
		return log_errno(-errno, "cannot watch signalfd");
	return 0;
}

static void handle_signals(struct hs_daemon *d)
{
	struct signalfd_siginfo si;

	while (read(d->signal_fd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGHUP:
			log_info("SIGHUP from pid %u: reloading configuration", si.ssi_pid);
			reload(d);
			break;
		case SIGINT:
		case SIGTERM:
			log_info("%s from pid %u: stopping", strsignal(si.ssi_signo), si.ssi_pid);
			d->stopping = true;
			break;
		}
	}
}

static int run_loop(struct hs_daemon *d)
{
	struct epoll_event evs[32];

	while (!d->stopping) {
		int n = epoll_wait(d->epfd, evs, ARRAY_SIZE(evs), -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return log_errno(-errno, "epoll_wait failed");
		}
		for (int i = 0; i < n; i++) {
			uint64_t tag = evs[i].data.u64;

			if (tag == EV_TIMER) {
				uint64_t expirations = 0;

				if (read(d->timer_fd, &expirations, sizeof(expirations)) < 0)
					continue;
				if (expirations > 1)
					d->overruns += expirations - 1;
				hs_tick(d, mono_us() / 1000);
			} else if (tag == EV_SIGNAL) {
				handle_signals(d);
			} else {
				ctl_server_dispatch(d->ctl, tag, evs[i].events);
			}
		}
	}
	return 0;
}

/* Detaches from the terminal; the parent exits once the child says it is ready. */
static int daemonize(int *ready_fd)
{
	int pfd[2];
	pid_t pid;
	char c;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(pfd[1]);
		/* The child writes one byte when ready and nothing when it fails. */
		_exit(read(pfd[0], &c, 1) == 1 ? 0 : 1);
	}
	close(pfd[0]);
	if (setsid() < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	if (chdir("/") < 0)
		return -errno;
	umask(077);
	*ready_fd = pfd[1];
	return 0;
}

static void detach_stdio(void)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return;
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
}

static int restore_state(struct hs_daemon *d)
{
	char last[16];
	int n;

	/* What the last daemon left half done: its episodes cannot go on, its unconcluded
	 * changes are reverted (only where the host still holds what it wrote). */
	n = mem_episodes_abort_open(d->mem, (int64_t)wall_ms(),
				    "the daemon stopped before the episode ended");
	if (n > 0)
		log_notice("%d episodes of the previous run ended as ABORTED", n);
	n = safe_changes_reconcile(d->changes);
	if (n < 0)
		return log_errno(n, "cannot reconcile unconcluded changes: %s",
				 mem_last_error(d->mem));
	if (n > 0)
		log_notice("reconciled %d changes the previous run left unconcluded", n);
	if (mem_audit_last_of(d->mem, "pause", "resume", last, sizeof(last)) == 0 &&
	    streq(last, "pause")) {
		d->paused = true;
		log_notice("starting paused: the operator paused homeostat before the last stop "
			   "('homeostat resume' to go on)");
	}
	return 0;
}

static void free_opts(struct hs_opts *o)
{
	free(o->policy);
	free(o->runbooks);
	free(o->db);
	free(o->socket);
	free(o->pin_dir);
	free(o->state_dir);
}

static void shutdown_daemon(struct hs_daemon *d)
{
	ctl_captures_close(d); /* detaches their probes and tells their clients */
	if (d->heal) {
		struct heal_env env;

		heal_env_fill(d, &env, mono_us() / 1000);
		heal_engine_close(d->heal, &env);
	}
	if (d->tune) {
		struct tune_env env;

		tune_env_fill(d, &env, mono_us() / 1000);
		tune_engine_close(d->tune, &env);
		d->tune = NULL;
	}
	if (d->redirect) {
		struct rd_env env;

		rd_env_fill(d, &env, mono_us() / 1000);
		rd_engine_close(d->redirect, &env);
		d->redirect = NULL;
	}
	if (d->changes) {
		safe_changes_close(d->changes);
		free(d->changes);
	}
	ctl_server_close(d->ctl);
	obs_close(d->obs);
	fit_close(d->fit, d->mem); /* writes the open fitness buckets */
	if (d->mem) {
		mem_audit(d->mem, "daemon", "stop", 0, "pid %d after %llu ticks", getpid(),
			  (unsigned long long)d->ticks);
		mem_close(d->mem);
	}
	safe_policy_free(d->policy);
	heal_runbooks_free(d->runbooks);
	if (d->epfd >= 0)
		close(d->epfd);
	if (d->timer_fd >= 0)
		close(d->timer_fd);
	if (d->signal_fd >= 0)
		close(d->signal_fd);
	if (d->lock_fd >= 0)
		close(d->lock_fd);
}

int main(int argc, char **argv)
{
	struct hs_daemon d = {
	    .opts = {.policy = DEFAULT_POLICY,
		     .runbooks = DEFAULT_RUNBOOKS,
		     .db = DEFAULT_DB,
		     .socket = DEFAULT_SOCKET,
		     .pin_dir = OBS_PIN_DIR_DEFAULT,
		     .tick_ms = DEFAULT_TICK_MS},
	    .epfd = -1,
	    .timer_fd = -1,
	    .signal_fd = -1,
	    .lock_fd = -1,
	};
	struct hs_opts *o = &d.opts;
	struct hs_errors errs = {0};
	bool runbooks_given = false;
	int ready_fd = -1, err;
	char *slash;

	if (parse_args(argc, argv, o, &runbooks_given))
		return 64;
	if (o->check_config)
		return check_config(o, runbooks_given);
	if (!privileged()) {
		fprintf(stderr,
			"homeostatd: must run as root (or with CAP_BPF): it loads BPF "
			"programs and changes the host (euid %u)\n",
			geteuid());
		return 1;
	}
	if (absolutize(&o->policy) || absolutize(&o->runbooks) || absolutize(&o->db) ||
	    absolutize(&o->socket) || absolutize(&o->pin_dir)) {
		fprintf(stderr, "homeostatd: cannot resolve paths: %m\n");
		return 1;
	}
	o->state_dir = strdup(o->db);
	if (!o->state_dir)
		return 1;
	slash = strrchr(o->state_dir, '/');
	*(slash == o->state_dir ? slash + 1 : slash) = '\0';

	log_open("homeostatd", true, o->verbose ? LOG_DEBUG : LOG_INFO);
	if (load_config(o->policy, o->runbooks, &d.policy, &d.runbooks, &errs)) {
		hs_errors_print(&errs, stderr);
		fprintf(stderr, "homeostatd: configuration refused (%zu errors), not starting\n",
			errs.n);
		hs_errors_clear(&errs);
		free_opts(o);
		return 1;
	}
	protect_own_files(&d, d.policy);
	if (!o->foreground) {
		err = daemonize(&ready_fd);
		if (err) {
			fprintf(stderr, "homeostatd: cannot detach: %s\n", strerror(-err));
			shutdown_daemon(&d);
			free_opts(o);
			return 1;
		}
		log_open("homeostatd", false, o->verbose ? LOG_DEBUG : LOG_INFO);
	}
	libbpf_set_print(libbpf_log);
	d.started_at = time(NULL);
	d.started_ms = mono_us() / 1000;
	d.last_reload_ok = true;

	err = ensure_dir(o->state_dir);
	if (!err)
		err = lock_state_dir(&d);
	if (!err) {
		err = mem_open(o->db, &d.mem);
		if (err)
			log_errno(err, "cannot open memory database '%s'", o->db);
	}
	if (!err) {
		d.changes = malloc(sizeof(*d.changes));
		err = d.changes ? heal_engine_open(&d.heal) : -ENOMEM;
		if (!err)
			err = tune_engine_open(&d.tune);
		if (!err)
			err = rd_engine_open(&d.redirect);
		if (d.changes)
			safe_changes_init(d.changes, d.mem);
	}
	if (!err)
		err = restore_state(&d);
	if (!err)
		err = setup_loop(&d);
	if (!err)
		err = obs_open(o->pin_dir, d.policy, &d.obs);
	if (!err)
		err = fit_open(&d.fit);
	if (!err)
		err = ctl_server_open(o->socket, d.epfd, ctl_commands_handle, &d, &d.ctl);
	if (!err)
		tune_configure(&d);
	if (err) {
		log_err("cannot start: %s", strerror(-err));
		shutdown_daemon(&d);
		free_opts(o);
		return 1;
	}
	mem_audit(d.mem, "daemon", "start", 0, "pid %d, version %s, mode %s, policy %s", getpid(),
		  HS_VERSION, hs_mode_name(&d), o->policy);
	log_info("homeostatd %s started: pid %d, mode %s, tick %u ms, %zu runbooks, socket '%s'",
		 HS_VERSION, getpid(), hs_mode_name(&d), o->tick_ms, d.runbooks->n, o->socket);
	if (ready_fd >= 0) {
		if (write(ready_fd, "R", 1) != 1)
			log_warn("cannot signal readiness to the parent, ignoring");
		close(ready_fd);
		detach_stdio();
	}
	err = run_loop(&d);
	shutdown_daemon(&d);
	free_opts(o);
	log_info("homeostatd stopped");
	log_close();
	return err ? 1 : 0;
}
