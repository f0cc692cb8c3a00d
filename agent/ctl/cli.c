/* cli.c - homeostat, the command-line client of homeostatd.
 *
 * Sends one request over the control socket, waits for the answer with a deadline, and
 * prints it as tables (render.c) or JSON. Arguments are checked before anything is sent: a
 * change id is a positive decimal integer and nothing else; a profile's and a redirect's
 * arguments follow the protocol's rules (ctl_profile_check(), ctl_redirect_check()). A command
 * is one word, or two for "redirect" and its subcommand. A profile is answered when its window
 * ends: its deadline is the window plus --timeout. Exit status, for scripts:
 *   0   done
 *   1   the daemon answered with an error (its message is on stderr), or output failed
 *   2   cannot reach the daemon, or no valid answer from it in time
 *   64  usage error (EX_USAGE)
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl/proto.h"
#include "ctl/render.h"

#include "lib/version.h"

#define DEFAULT_SOCKET	"/run/homeostat/control.sock"
#define DEFAULT_TIMEOUT 5.0
#define MAX_TIMEOUT	3600.0
#define DEFAULT_SECONDS 5  /* profile window */
#define DEFAULT_TOP	10 /* profile: functions shown */

enum cli_exit {
	CLI_EXIT_OK = 0,
	CLI_EXIT_REFUSED = 1,
	CLI_EXIT_UNREACHABLE = 2,
	CLI_EXIT_USAGE = 64,
};

/* The commands, in the order of --help; each is the request of the same name (proto.c): one
 * word, or "redirect" and its subcommand. */
static const struct cli_cmd {
	const char *name;
	const char *args;
	const char *help;
} cli_cmds[] = {
    {"status", "", "state of the daemon, pending approvals, recent changes"},
    {"history", "[--limit N]", "past changes and their outcomes, newest first"},
    {"explain", "ID", "why change ID was made, how it was judged, how to revert it"},
    {"approve", "ID", "approve the pending change ID"},
    {"reject", "ID", "reject the pending change ID"},
    {"rollback", "ID", "roll back the change ID"},
    {"pause", "", "stop making changes until resume"},
    {"resume", "", "make changes again"},
    {"profile", "--target T ...", "CPU, allocation or latency profile of target T"},
    {"redirect list", "", "the policy's redirects and the processes redirected now"},
    {"redirect apply", "NAME [ALTERNATIVE]", "try redirect NAME now: ALTERNATIVE, else its next"},
    {"redirect revert", "ID", "revert the redirect of change ID in every process"},
};

/* How to print the answer. */
enum cli_format {
	CLI_TEXT,   /* aligned tables */
	CLI_JSON,   /* every table as JSON */
	CLI_FOLDED, /* profile: only the folded stacks, "a;b;c N" lines */
};

struct cli_out {
	enum cli_format format;
	unsigned top; /* profile: rows of "top" shown */
};

static void usage(FILE *f)
{
	fprintf(f, "usage: homeostat [--socket PATH] [--json] [--timeout S] COMMAND\n"
		   "\n"
		   "Talks to homeostatd through its control socket.\n"
		   "\n"
		   "commands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(cli_cmds); i++) {
		char head[64];

		snprintf(head, sizeof(head), "%s %s", cli_cmds[i].name, cli_cmds[i].args);
		if (strlen(head) > 22)
			fprintf(f, "  %s\n  %-22s %s\n", head, "", cli_cmds[i].help);
		else
			fprintf(f, "  %-22s %s\n", head, cli_cmds[i].help);
	}
	fprintf(f, "\n"
		   "options:\n"
		   "  -s, --socket PATH      control socket (default " DEFAULT_SOCKET ")\n"
		   "  -j, --json             print JSON instead of tables\n"
		   "  -t, --timeout S        give up after S seconds, past the profile's window\n"
		   "                         (default 5)\n"
		   "  -n, --limit N          history: at most N changes (default: the daemon's)\n"
		   "  -h, --help             print this help and exit\n"
		   "  -V, --version          print the version and exit\n"
		   "\n"
		   "profile options (one kind: --cpu, --alloc or --func SYM):\n"
		   "  --target T             the policy's target T\n"
		   "  --cpu                  CPU samples of all its processes, by stack\n"
		   "  --alloc                outstanding allocations of one process, by stack\n"
		   "  --func SYM             latency of function SYM of one process\n"
		   "  --seconds N            window, 1 to 300 seconds (default 5)\n"
		   "  --pid P                only process P of the target (default: all for\n"
		   "                         --cpu, the lowest pid for --alloc and --func)\n"
		   "  --top K                functions shown (default 10)\n"
		   "  --folded               print only the folded stacks, for flame-graph tools\n"
		   "\n");
	fprintf(f, "redirect arguments:\n"
		   "  NAME                   a redirect of the policy (1 to 32 of [a-z0-9_-])\n"
		   "  ALTERNATIVE            a symbol of the function's object, 1 to 127 of\n"
		   "                         [A-Za-z0-9_.$@] (default: the redirect's next one)\n"
		   "  ID                     any change of the redirect (see 'redirect list')\n"
		   "\n"
		   "exit status: 0 done, 1 the daemon answered with an error, 2 cannot reach the\n"
		   "daemon or no valid answer, 64 usage error\n");
}

static int usage_error(const char *fmt, ...) HS_PRINTF(1, 2);
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("homeostat: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\ntry 'homeostat --help'\n", stderr);
	return CLI_EXIT_USAGE;
}

/* A positive decimal integer no larger than max: digits only, no sign, no blanks. */
static int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s[0] || s[0] < '0' || s[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	if (v == 0 || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

static int parse_timeout(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v <= 0 || v > MAX_TIMEOUT)
		return -EINVAL;
	*out = v;
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline: 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	uint64_t now;
	int r;

	for (;;) {
		now = now_ms();
		if (now >= deadline)
			return -ETIMEDOUT;
		r = poll(&pfd, 1, (int)(deadline - now));
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

static int connect_to(const char *path, uint64_t deadline, int *out)
{
	_cleanup_close_ int fd = -1;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timespec pause = {.tv_nsec = 10 * 1000 * 1000};

	if (hs_strlcpy(sa.sun_path, path, sizeof(sa.sun_path)) < 0)
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A unix socket connects at once, or says EAGAIN while its backlog is full. */
	while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		nanosleep(&pause, NULL);
	}
	*out = TAKE_FD(fd);
	return 0;
}

/* Sends what it can: a daemon that refuses us may have answered and closed already, and
 * that answer is still there to read. */
static int send_all(int fd, const uint8_t *buf, size_t len, uint64_t deadline)
{
	ssize_t n;
	int r;

	while (len > 0) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n > 0) {
			buf += n;
			len -= n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return -errno;
		r = wait_fd(fd, POLLOUT, deadline);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Reads one whole response message into a malloc'ed *out; -ECONNRESET if the daemon closed
 * the connection before it was complete. */
static int recv_msg(int fd, uint64_t deadline, uint8_t **out, size_t *out_len)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t have = 0, need = CTL_HDR_SIZE;
	uint8_t *nbuf;
	ssize_t n;
	int r;

	buf = malloc(need);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		r = ctl_resp_size(buf, have, &need);
		if (r < 0)
			return r;
		if (have >= CTL_HDR_SIZE && have == need)
			break;
		if (have == CTL_HDR_SIZE) {
			nbuf = realloc(buf, need);
			if (!nbuf)
				return -ENOMEM;
			buf = nbuf;
		}
		n = recv(fd, buf + have, need - have, 0);
		if (n > 0) {
			have += n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		r = wait_fd(fd, POLLIN, deadline);
		if (r < 0)
			return r;
	}
	*out = TAKE_PTR(buf);
	*out_len = have;
	return 0;
}

static int cannot_reach(const char *path, double timeout, int err)
{
	const char *why;

	switch (err) {
	case -ENOENT:
		why = "daemon not running (no such file)";
		break;
	case -ECONNREFUSED:
		why = "daemon not running (connection refused)";
		break;
	case -EACCES:
	case -EPERM:
		why = "permission denied (the control socket is root's: try sudo)";
		break;
	case -ETIMEDOUT:
		fprintf(stderr, "homeostat: no answer from '%s' within %g s\n", path, timeout);
		return CLI_EXIT_UNREACHABLE;
	default:
		why = strerror(-err);
	}
	fprintf(stderr, "homeostat: cannot connect to '%s': %s\n", path, why);
	return CLI_EXIT_UNREACHABLE;
}

/* A profile's answer as shown: "stacks" only in JSON, "top" cut to out->top rows. The view
 * shares resp's cells; free only view->tables. */
static int profile_view(const struct ctl_response *resp, const struct cli_out *out,
			struct ctl_response *view)
{
	*view = *resp;
	view->ntables = 0;
	view->tables = calloc(resp->ntables ? resp->ntables : 1, sizeof(*view->tables));
	if (!view->tables)
		return -ENOMEM;
	for (uint32_t i = 0; i < resp->ntables; i++) {
		struct ctl_table t = resp->tables[i];

		if (streq(t.name, "stacks") && out->format != CLI_JSON)
			continue;
		if (streq(t.name, "top") && t.nrows > out->top)
			t.nrows = out->top;
		view->tables[view->ntables++] = t;
	}
	return 0;
}

/* "stack weight" lines from the "stacks" table: its second column is the weight. */
static int print_folded(FILE *f, const struct ctl_response *resp)
{
	const struct ctl_table *t = ctl_resp_find_table(resp, "stacks");

	for (uint32_t r = 0; t && t->ncols >= 2 && r < t->nrows; r++) {
		const struct ctl_cell *stack = ctl_table_cell(t, r, 0);
		const struct ctl_cell *weight = ctl_table_cell(t, r, 1);

		if (stack->type != CTL_COL_STRING || weight->type != CTL_COL_INT)
			continue;
		ctl_text_string(f, stack->s);
		fprintf(f, " %" PRId64 "\n", weight->i);
	}
	return ferror(f) ? -EIO : 0;
}

static int print_answer(const struct ctl_response *resp, const struct cli_out *out,
			uint16_t req_type)
{
	struct ctl_response view;
	int r;

	if (resp->status == 0 && out->format == CLI_FOLDED)
		return print_folded(stdout, resp);
	if (resp->status != 0 || req_type != CTL_REQ_PROFILE)
		view = *resp;
	else if (profile_view(resp, out, &view) < 0)
		return -ENOMEM;
	if (out->format == CLI_JSON)
		r = ctl_render_json(stdout, &view);
	else
		r = resp->status == 0 ? ctl_render_text(stdout, &view) : 0;
	if (view.tables != resp->tables)
		free(view.tables);
	return r;
}

static int run(const char *path, double timeout, const struct cli_out *out,
	       const struct ctl_request *req)
{
	uint64_t deadline = now_ms() + (uint64_t)(timeout * 1000);
	_cleanup_close_ int fd = -1;
	_cleanup_free_ uint8_t *in = NULL;
	uint8_t buf[CTL_REQ_BUF_SIZE];
	struct ctl_response resp;
	size_t len, in_len = 0;
	int r, send_err, status;

	r = ctl_req_encode(req, buf, sizeof(buf), &len);
	if (r < 0) {
		fprintf(stderr, "homeostat: cannot encode the request: %s\n", ctl_strerror(r));
		return CLI_EXIT_USAGE;
	}
	r = connect_to(path, deadline, &fd);
	if (r == -ENAMETOOLONG)
		return usage_error("socket path '%s' is too long (at most %zu bytes)", path,
				   sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	if (r < 0)
		return cannot_reach(path, timeout, r);
	send_err = send_all(fd, buf, len, deadline);
	if (send_err == -ETIMEDOUT)
		return cannot_reach(path, timeout, send_err);
	r = recv_msg(fd, deadline, &in, &in_len);
	if (r == -ETIMEDOUT)
		return cannot_reach(path, timeout, r);
	if (r == -ECONNRESET || (r < 0 && send_err < 0)) {
		fprintf(stderr,
			"homeostat: the daemon at '%s' closed the connection without an answer\n",
			path);
		return CLI_EXIT_UNREACHABLE;
	}
	if (r == 0)
		r = ctl_resp_decode(in, in_len, &resp);
	if (r == 0 && resp.req_type != 0 && resp.req_type != req->type) {
		ctl_resp_free(&resp);
		r = -EBADMSG;
	}
	if (r < 0) {
		fprintf(stderr, "homeostat: bad answer from the daemon at '%s': %s\n", path,
			ctl_strerror(r));
		return CLI_EXIT_UNREACHABLE;
	}

	status = resp.status;
	r = print_answer(&resp, out, req->type);
	if (status < 0) {
		fputs("homeostat: ", stderr);
		ctl_text_string(stderr,
				resp.message && resp.message[0] ? resp.message : strerror(-status));
		fputc('\n', stderr);
	}
	ctl_resp_free(&resp);
	if (fflush(stdout) != 0 || r < 0) {
		fprintf(stderr, "homeostat: cannot write the output: %m\n");
		return CLI_EXIT_REFUSED;
	}
	return status < 0 ? CLI_EXIT_REFUSED : CLI_EXIT_OK;
}

/* Profile options, kept as given until the command is known. */
struct profile_args {
	const char *target, *seconds, *func, *pid, *top;
	unsigned kinds; /* how many of --cpu, --alloc, --func */
	unsigned kind;
	bool folded;
	bool any; /* some profile option was given */
};

/* Checks one field by the protocol's rules: a request good in all but that field. */
static bool profile_field_ok(const char *target, unsigned kind, const char *func)
{
	struct ctl_request req = {.type = CTL_REQ_PROFILE, .seconds = 1, .kind = kind};

	if (strlen(target) > CTL_TARGET_MAX || strlen(func) > CTL_FUNC_MAX)
		return false;
	strcpy(req.target, target);
	strcpy(req.func, func);
	return ctl_profile_check(&req) == 0;
}

/* REDIRECT_APPLY's arguments, checked by the protocol's rules; alt NULL when not given. */
static int redirect_request(const char *name, const char *alt, struct ctl_request *req)
{
	struct ctl_request check = {.type = CTL_REQ_REDIRECT_APPLY};

	if (hs_strlcpy(check.redirect, name, sizeof(check.redirect)) < 0 ||
	    ctl_redirect_check(&check) != 0)
		return usage_error("invalid redirect name '%s': must be 1 to %d of [a-z0-9_-]",
				   name, CTL_REDIRECT_NAME_MAX);
	/* Given, it is not empty: the empty one on the wire means "not given". */
	if (alt && (!alt[0] || hs_strlcpy(check.alternative, alt, sizeof(check.alternative)) < 0 ||
		    ctl_redirect_check(&check) != 0))
		return usage_error("invalid alternative '%s': must be a symbol name, 1 to %d of "
				   "[A-Za-z0-9_.$@]",
				   alt, CTL_SYMBOL_MAX);
	strcpy(req->redirect, check.redirect);
	strcpy(req->alternative, check.alternative);
	return 0;
}

/* The request the command's words name: *words is 1, or 2 for "redirect SUBCOMMAND". */
static int find_command(int argc, char **argv, const struct ctl_req_desc **desc, int *words)
{
	char name[32];

	*desc = NULL;
	if (streq(argv[0], "redirect")) {
		if (argc < 2)
			return usage_error("'redirect' needs a subcommand: list, apply NAME "
					   "[ALTERNATIVE] or revert ID");
		if (strlen(argv[1]) < sizeof(name) - strlen("redirect ")) {
			snprintf(name, sizeof(name), "redirect %s", argv[1]);
			*desc = ctl_req_desc_by_name(name);
		}
		if (!*desc)
			return usage_error(
			    "unknown subcommand 'redirect %s': must be list, apply or "
			    "revert",
			    argv[1]);
		*words = 2;
		return 0;
	}
	/* Two-word names are reached only as two words. */
	if (!strchr(argv[0], ' '))
		*desc = ctl_req_desc_by_name(argv[0]);
	if (!*desc)
		return usage_error("unknown command '%s'", argv[0]);
	*words = 1;
	return 0;
}

static int profile_request(const struct profile_args *a, struct ctl_request *req,
			   struct cli_out *out, double *timeout)
{
	uint64_t v;

	if (!a->target)
		return usage_error("'profile' needs --target T");
	if (a->kinds != 1)
		return usage_error("'profile' needs exactly one of --cpu, --alloc, --func SYM");
	if (!profile_field_ok(a->target, CTL_PROFILE_CPU, ""))
		return usage_error("invalid target name '%s': must be 1 to %d of [a-z0-9_-]",
				   a->target, CTL_TARGET_MAX);
	if (a->func && !profile_field_ok("x", CTL_PROFILE_FUNC, a->func))
		return usage_error("invalid function name '%s': must be 1 to %d printable "
				   "characters without blanks",
				   a->func, CTL_FUNC_MAX);
	strcpy(req->target, a->target);
	req->kind = a->kind;
	if (a->func)
		strcpy(req->func, a->func);
	req->seconds = DEFAULT_SECONDS;
	if (a->seconds) {
		if (parse_uint(a->seconds, CTL_PROFILE_SECONDS_MAX, &v) < 0)
			return usage_error("invalid seconds '%s': must be an integer between 1 and "
					   "%d",
					   a->seconds, CTL_PROFILE_SECONDS_MAX);
		req->seconds = (uint32_t)v;
	}
	if (a->pid) {
		if (parse_uint(a->pid, INT32_MAX, &v) < 0)
			return usage_error("invalid pid '%s': must be a positive integer", a->pid);
		req->pid = (uint32_t)v;
	}
	if (a->top) {
		if (parse_uint(a->top, CTL_MAX_ROWS, &v) < 0)
			return usage_error("invalid top '%s': must be an integer between 1 and %d",
					   a->top, CTL_MAX_ROWS);
		out->top = (unsigned)v;
	}
	if (a->folded && out->format == CLI_JSON)
		return usage_error("--folded and --json exclude each other");
	if (a->folded)
		out->format = CLI_FOLDED;
	/* The answer comes when the window ends: wait that long, plus the timeout. */
	*timeout += req->seconds;
	return 0;
}

int main(int argc, char **argv)
{
	enum {
		O_TARGET = 256,
		O_SECONDS,
		O_CPU,
		O_ALLOC,
		O_FUNC,
		O_PID,
		O_TOP,
		O_FOLDED,
	};
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'},
	    {"timeout", required_argument, NULL, 't'},
	    {"limit", required_argument, NULL, 'n'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {"target", required_argument, NULL, O_TARGET},
	    {"seconds", required_argument, NULL, O_SECONDS},
	    {"cpu", no_argument, NULL, O_CPU},
	    {"alloc", no_argument, NULL, O_ALLOC},
	    {"func", required_argument, NULL, O_FUNC},
	    {"pid", required_argument, NULL, O_PID},
	    {"top", required_argument, NULL, O_TOP},
	    {"folded", no_argument, NULL, O_FOLDED},
	    {0},
	};
	const char *path = DEFAULT_SOCKET, *limit_arg = NULL;
	const struct ctl_req_desc *desc;
	struct ctl_request req = {0};
	struct cli_out out = {.format = CLI_TEXT, .top = DEFAULT_TOP};
	struct profile_args prof = {0};
	double timeout = DEFAULT_TIMEOUT;
	uint64_t v;
	int c, r, words;

	opterr = 0;
	/* GNU getopt permutes: options may follow the command ("history --json"). */
	while ((c = getopt_long(argc, argv, ":s:jt:n:hV", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (!optarg[0])
				return usage_error("--socket needs a path");
			path = optarg;
			break;
		case 'j':
			out.format = CLI_JSON;
			break;
		case 't':
			if (parse_timeout(optarg, &timeout) < 0)
				return usage_error(
				    "invalid timeout '%s': must be a number of seconds "
				    "above 0 and at most %g",
				    optarg, MAX_TIMEOUT);
			break;
		case 'n':
			limit_arg = optarg;
			break;
		case 'h':
			usage(stdout);
			return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_REFUSED;
		case 'V':
			printf("homeostat %s\n", HS_VERSION);
			return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_REFUSED;
		case O_TARGET:
			prof.target = optarg;
			break;
		case O_SECONDS:
			prof.seconds = optarg;
			break;
		case O_CPU:
		case O_ALLOC:
		case O_FUNC:
			prof.kinds++;
			prof.kind = c == O_CPU	   ? CTL_PROFILE_CPU
				    : c == O_ALLOC ? CTL_PROFILE_ALLOC
						   : CTL_PROFILE_FUNC;
			if (c == O_FUNC)
				prof.func = optarg;
			break;
		case O_PID:
			prof.pid = optarg;
			break;
		case O_TOP:
			prof.top = optarg;
			break;
		case O_FOLDED:
			prof.folded = true;
			break;
		case ':':
			return usage_error("option '%s' needs an argument", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
		if (c >= O_TARGET)
			prof.any = true;
	}

	if (optind >= argc)
		return usage_error("no command given");
	r = find_command(argc - optind, argv + optind, &desc, &words);
	if (r)
		return r;
	req.type = desc->type;
	argc -= optind + words;
	argv += optind + words;
	if (limit_arg && desc->arg != CTL_ARG_LIMIT)
		return usage_error("--limit applies to 'history' only");
	if (prof.any && desc->arg != CTL_ARG_PROFILE)
		return usage_error("--target, --seconds, --cpu, --alloc, --func, --pid, --top and "
				   "--folded apply to 'profile' only");

	switch (desc->arg) {
	case CTL_ARG_NONE:
		if (argc > 0)
			return usage_error("'%s' takes no argument, got '%s'", desc->name, argv[0]);
		break;
	case CTL_ARG_LIMIT:
		if (argc > 0)
			return usage_error("'%s' takes no argument, got '%s' (use --limit N)",
					   desc->name, argv[0]);
		if (limit_arg) {
			if (parse_uint(limit_arg, CTL_MAX_ROWS, &v) < 0)
				return usage_error("invalid limit '%s': must be an integer between "
						   "1 and %d",
						   limit_arg, CTL_MAX_ROWS);
			req.limit = (uint32_t)v;
		}
		break;
	case CTL_ARG_ID:
		if (argc != 1)
			return usage_error("'%s' takes one change id, got %d arguments", desc->name,
					   argc);
		if (parse_uint(argv[0], INT64_MAX, &v) < 0)
			return usage_error("invalid change id '%s': must be a positive integer",
					   argv[0]);
		req.id = v;
		break;
	case CTL_ARG_PROFILE:
		if (argc > 0)
			return usage_error("'%s' takes options only, got '%s'", desc->name,
					   argv[0]);
		r = profile_request(&prof, &req, &out, &timeout);
		if (r)
			return r;
		break;
	case CTL_ARG_REDIRECT:
		if (argc < 1 || argc > 2)
			return usage_error(
			    "'%s' takes a redirect name and an optional alternative, "
			    "got %d arguments",
			    desc->name, argc);
		r = redirect_request(argv[0], argc > 1 ? argv[1] : NULL, &req);
		if (r)
			return r;
		break;
	}
	return run(path, timeout, &out, &req);
}
