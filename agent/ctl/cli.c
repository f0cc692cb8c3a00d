/* cli.c - homeostat, the command-line client of homeostatd.
 *
 * Sends one request over the control socket, waits for the answer with a deadline, and
 * prints it as tables (render.c) or JSON. Arguments are checked before anything is sent: a
 * change id is a positive decimal integer and nothing else. Exit status, for scripts:
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

enum cli_exit {
	CLI_EXIT_OK = 0,
	CLI_EXIT_REFUSED = 1,
	CLI_EXIT_UNREACHABLE = 2,
	CLI_EXIT_USAGE = 64,
};

/* The commands, in the order of --help; each is the request of the same name (proto.c). */
static const struct cli_cmd {
	const char *name;
	const char *args;
	const char *help;
} cli_cmds[] = {
    {"status", "", "state of the daemon, pending approvals, recent changes"},
    {"history", "[--limit N]", "past changes and their outcomes, newest first"},
    {"approve", "ID", "approve the pending change ID"},
    {"reject", "ID", "reject the pending change ID"},
    {"rollback", "ID", "roll back the change ID"},
    {"pause", "", "stop making changes until resume"},
    {"resume", "", "make changes again"},
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
		fprintf(f, "  %-22s %s\n", head, cli_cmds[i].help);
	}
	fprintf(f, "\n"
		   "options:\n"
		   "  -s, --socket PATH      control socket (default " DEFAULT_SOCKET ")\n"
		   "  -j, --json             print JSON instead of tables\n"
		   "  -t, --timeout S        give up after S seconds (default 5)\n"
		   "  -n, --limit N          history: at most N changes (default: the daemon's)\n"
		   "  -h, --help             print this help and exit\n"
		   "  -V, --version          print the version and exit\n"
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

static int run(const char *path, double timeout, bool json, const struct ctl_request *req)
{
	uint64_t deadline = now_ms() + (uint64_t)(timeout * 1000);
	_cleanup_close_ int fd = -1;
	_cleanup_free_ uint8_t *in = NULL;
	uint8_t out[CTL_REQ_BUF_SIZE];
	struct ctl_response resp;
	size_t len, in_len = 0;
	int r, send_err, status;

	r = ctl_req_encode(req, out, sizeof(out), &len);
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
	send_err = send_all(fd, out, len, deadline);
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
	r = json ? ctl_render_json(stdout, &resp) : 0;
	if (status == 0 && !json)
		r = ctl_render_text(stdout, &resp);
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

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'},
	    {"timeout", required_argument, NULL, 't'},
	    {"limit", required_argument, NULL, 'n'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {0},
	};
	const char *path = DEFAULT_SOCKET, *limit_arg = NULL;
	const struct ctl_req_desc *desc;
	struct ctl_request req = {0};
	double timeout = DEFAULT_TIMEOUT;
	bool json = false;
	uint64_t v;
	int c;

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
			json = true;
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
		case ':':
			return usage_error("option '%s' needs an argument", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}

	if (optind >= argc)
		return usage_error("no command given");
	desc = ctl_req_desc_by_name(argv[optind]);
	if (!desc)
		return usage_error("unknown command '%s'", argv[optind]);
	req.type = desc->type;
	argc -= optind + 1;
	argv += optind + 1;
	if (limit_arg && desc->arg != CTL_ARG_LIMIT)
		return usage_error("--limit applies to 'history' only");

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
	}
	return run(path, timeout, json, &req);
}
