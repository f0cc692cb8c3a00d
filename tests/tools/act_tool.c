/* act_tool.c - drives the actuators of agent/actuate/ from the command line.
 *
 *   act_tool apply    KIND OPTIONS [--state FILE]   apply; the result is saved in FILE
 *   act_tool read     KIND OPTIONS                  the current value, nothing changes
 *   act_tool validate KIND OPTIONS                  only act_validate()
 *   act_tool verify   --state FILE                  does the host hold what apply set?
 *   act_tool revert   --state FILE                  put the value before back
 *
 *   KIND rlimit   --pid P --resource NAME --soft N [--hard N]   (N: a number or unlimited)
 *        nice     --pid P --value N
 *        cgroup   --path DIR --file NAME --value V
 *        sysctl   --name NAME --value V [--netns-pid P | --netns /run/netns/NAME]
 *        signal   --pid P --signal TERM|SIGTERM|15
 *        restart  --command CMD [--timeout MS] [--pid P]   (waits for the command)
 *   --pid-start N  insist on the process's start time
 *
 * Why: tests/integration/0200-actuators.sh exercises the actuators on real processes,
 * cgroups and namespaces exactly as the daemon will, across separate invocations (the result
 * is flat, so it is saved as it is: what a privileged actuator process would send back).
 * Prints "= KEY VALUE" lines: rc (0 or -ENAME), before, after, revert, why, value. Exit 0,
 * 1 when the call failed, 2 on usage.
 */
#include <getopt.h>
#include <poll.h>
#include <signal.h>

#include "actuate/actuate.h"
#include "lib/util.h"

static void usage(void)
{
	fprintf(stderr, "usage: act_tool apply|read|validate KIND OPTIONS [--state FILE]\n"
			"       act_tool verify|revert --state FILE\n");
	exit(2);
}

static void print_rc(int rc)
{
	if (rc == 0)
		printf("= rc 0\n");
	else
		printf("= rc -%s\n", strerrorname_np(-rc) ? strerrorname_np(-rc) : "?");
}

static void print_result(int rc, const struct act_result *res)
{
	print_rc(rc);
	printf("= before %s\n= after %s\n= revert %s\n= why %s\n", res->before, res->after,
	       res->revert_cmd, res->why);
}

static int parse_rlim(const char *s, rlim_t *out)
{
	char *end;

	if (streq(s, "unlimited")) {
		*out = RLIM_INFINITY;
		return 0;
	}
	errno = 0;
	*out = strtoull(s, &end, 10);
	return *s && !*end && !errno ? 0 : -EINVAL;
}

static int parse_signal(const char *s)
{
	const char *name = strncmp(s, "SIG", 3) ? s : s + 3;
	char *end;
	long v;

	v = strtol(s, &end, 10);
	if (*s && !*end)
		return (int)v;
	for (int i = 1; i < SIGRTMIN; i++)
		if (sigabbrev_np(i) && streq(sigabbrev_np(i), name))
			return i;
	return -1;
}

static int save(const char *path, const struct act_result *res)
{
	FILE *f = fopen(path, "w");
	int r = 0;

	if (!f)
		return -errno;
	if (fwrite(res, sizeof(*res), 1, f) != 1)
		r = -EIO;
	if (fclose(f))
		r = -errno;
	return r;
}

static int load(const char *path, struct act_result *res)
{
	_cleanup_fclose_ FILE *f = fopen(path, "r");

	if (!f)
		return -errno;
	if (fread(res, sizeof(*res), 1, f) != 1)
		return -EIO;
	res->pidfd = -1;
	return 0;
}

/* The restart command runs asynchronously: wait as the daemon would, polling the pidfd. */
static int wait_restart(struct act_result *res)
{
	struct pollfd p;
	int r;

	for (;;) {
		r = act_poll(res);
		if (r != -EINPROGRESS)
			return r;
		p = (struct pollfd){.fd = res->pidfd, .events = POLLIN};
		poll(&p, 1, 100);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"pid", required_argument, NULL, 'p'},	{"pid-start", required_argument, NULL, 'S'},
	    {"resource", required_argument, NULL, 'R'}, {"soft", required_argument, NULL, 's'},
	    {"hard", required_argument, NULL, 'H'},	{"value", required_argument, NULL, 'v'},
	    {"path", required_argument, NULL, 'P'},	{"file", required_argument, NULL, 'f'},
	    {"name", required_argument, NULL, 'n'},	{"netns-pid", required_argument, NULL, 'N'},
	    {"netns", required_argument, NULL, 'x'},	{"signal", required_argument, NULL, 'g'},
	    {"command", required_argument, NULL, 'c'},	{"timeout", required_argument, NULL, 't'},
	    {"state", required_argument, NULL, 'o'},	{},
	};
	struct act_request req;
	struct act_result res;
	const char *mode, *state = NULL, *value = NULL;
	char why[ACT_WHY_MAX], cur[ACT_VALUE_MAX];
	int kind = -1, c, r;
	bool needs_kind;

	if (argc < 2)
		usage();
	mode = argv[1];
	needs_kind = !streq(mode, "verify") && !streq(mode, "revert");
	if (needs_kind) {
		if (argc < 3 || (kind = act_kind_from_name(argv[2])) < 0)
			usage();
		optind = 3;
	} else {
		optind = 2;
	}
	act_request_init(&req, kind < 0 ? ACT_KIND_RLIMIT : (enum act_kind)kind);
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			req.pid = atoi(optarg);
			break;
		case 'S':
			req.pid_start = strtoull(optarg, NULL, 10);
			break;
		case 'R':
			req.rlimit.resource = act_rlimit_from_name(optarg);
			break;
		case 's':
			if (parse_rlim(optarg, &req.rlimit.soft))
				usage();
			break;
		case 'H':
			if (parse_rlim(optarg, &req.rlimit.hard))
				usage();
			req.rlimit.set_hard = true;
			break;
		case 'v':
			value = optarg;
			break;
		case 'P':
			hs_strlcpy(req.cgroup.path, optarg, sizeof(req.cgroup.path));
			break;
		case 'f':
			hs_strlcpy(req.cgroup.file, optarg, sizeof(req.cgroup.file));
			break;
		case 'n':
			hs_strlcpy(req.sysctl.name, optarg, sizeof(req.sysctl.name));
			break;
		case 'N':
			req.sysctl.netns_pid = atoi(optarg);
			break;
		case 'x':
			hs_strlcpy(req.sysctl.netns_path, optarg, sizeof(req.sysctl.netns_path));
			break;
		case 'g':
			req.signal.signo = parse_signal(optarg);
			break;
		case 'c':
			hs_strlcpy(req.restart.command, optarg, sizeof(req.restart.command));
			break;
		case 't':
			req.restart.timeout_ms = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'o':
			state = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (value) {
		hs_strlcpy(req.cgroup.value, value, sizeof(req.cgroup.value));
		hs_strlcpy(req.sysctl.value, value, sizeof(req.sysctl.value));
		req.nice.value = atoi(value);
	}

	if (streq(mode, "validate")) {
		r = act_validate(&req, why, sizeof(why));
		print_rc(r);
		printf("= why %s\n", why);
	} else if (streq(mode, "read")) {
		r = act_read(&req, cur, sizeof(cur));
		print_rc(r);
		printf("= value %s\n", r ? "" : cur);
	} else if (streq(mode, "apply")) {
		r = act_apply(&req, &res);
		if (!r && req.kind == ACT_KIND_RESTART)
			r = wait_restart(&res);
		print_result(r, &res);
		act_result_release(&res);
		if (state && res.applied && save(state, &res)) {
			fprintf(stderr, "cannot write '%s'\n", state);
			return 1;
		}
	} else if (streq(mode, "verify") || streq(mode, "revert")) {
		if (!state)
			usage();
		r = load(state, &res);
		if (r) {
			fprintf(stderr, "cannot read '%s': %s\n", state, strerror(-r));
			return 1;
		}
		if (streq(mode, "verify")) {
			r = act_verify(&res.req, &res);
			print_rc(r);
		} else {
			r = act_revert(&res);
			print_result(r, &res);
			if (save(state, &res))
				return 1;
		}
	} else {
		usage();
	}
	return r ? 1 : 0;
}
