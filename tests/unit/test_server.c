/* test_server.c - the control server in a hand-run epoll loop, over a real unix socket in a
 * temporary directory: good, slow, garbage, greedy and idle clients, deferred answers (late,
 * to a client that hung up, past their deadline), the socket's mode, stale sockets, and (as
 * root only) a refused non-root peer. No root needed for the rest: the server accepts its
 * own euid.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl/proto.h"
#include "ctl/server.h"

struct fixture {
	char dir[64];
	char path[128];
	int epfd;
	struct ctl_server *srv;
	int calls;
	struct ctl_request last;
	uint64_t tokens[4]; /* of the deferred requests, in order */
	int ntokens;
	int extend_err; /* what ctl_server_extend() said in the handler */
};

#define LONG_DEADLINE_MS 60000

#define ROW_BYTES 1000

static int handler(void *ud, const struct ctl_request *req, struct ctl_response *resp)
{
	static const char *const cols[] = {"id", "text"};
	static const enum ctl_col_type types[] = {CTL_COL_INT, CTL_COL_STRING};
	struct fixture *fx = ud;
	char text[ROW_BYTES + 1];

	fx->calls++;
	fx->last = *req;
	switch (req->type) {
	case CTL_REQ_PAUSE:
		ctl_resp_message(resp, "paused");
		return 0;
	case CTL_REQ_PROFILE:
		/* Answered later by the test; pid 1 asks for a long deadline. */
		assert_true(req->token != 0);
		fx->tokens[fx->ntokens++] = req->token;
		if (req->pid == 1)
			fx->extend_err =
			    ctl_server_extend(fx->srv, req->token, ctl_now_ms() + LONG_DEADLINE_MS);
		ctl_resp_message(resp, "dropped: never sent");
		return CTL_DEFERRED;
	case CTL_REQ_APPROVE:
		return ctl_resp_error(resp, -ENOENT, "change %" PRIu64 " not found", req->id);
	case CTL_REQ_REJECT:
		return -EACCES; /* no message: the server says strerror */
	case CTL_REQ_ROLLBACK:
		ctl_resp_cell_int(resp, 1); /* a cell without a table: a bug of the handler */
		return 0;
	case CTL_REQ_HISTORY:
		memset(text, 'x', ROW_BYTES);
		text[ROW_BYTES] = '\0';
		ctl_resp_table(resp, "changes", 2, cols, types);
		for (uint32_t i = 0; i < req->limit; i++) {
			ctl_resp_row(resp);
			ctl_resp_cell_int(resp, i);
			ctl_resp_cell_str(resp, text);
		}
		return 0;
	default:
		ctl_resp_message(resp, "ok");
		return 0;
	}
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/hs-test-server-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof(fx->path), "%s/run/control.sock", fx->dir);
	fx->epfd = epoll_create1(EPOLL_CLOEXEC);
	assert_true(fx->epfd >= 0);
	assert_int_equal(ctl_server_open(fx->path, fx->epfd, handler, fx, &fx->srv), 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[160];

	ctl_server_close(fx->srv);
	close(fx->epfd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

/* One turn of the daemon's loop. */
static int pump(struct fixture *fx, int timeout_ms)
{
	struct epoll_event evs[8];
	int n = epoll_wait(fx->epfd, evs, 8, timeout_ms);

	for (int i = 0; i < n; i++) {
		assert_true(ctl_server_owns(&evs[i]));
		assert_int_equal(ctl_server_handle(fx->srv, &evs[i]), 0);
	}
	return n;
}

static int client(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	strcpy(sa.sun_path, path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void send_req(int fd, uint16_t type, uint64_t id, uint32_t limit)
{
	struct ctl_request req = {.type = type, .id = id, .limit = limit};
	uint8_t buf[CTL_REQ_BUF_SIZE];
	size_t len;

	assert_int_equal(ctl_req_encode(&req, buf, sizeof(buf), &len), 0);
	assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void send_profile(int fd, uint32_t pid)
{
	struct ctl_request req = {
	    .type = CTL_REQ_PROFILE, .seconds = 3, .kind = CTL_PROFILE_CPU, .pid = pid};
	uint8_t buf[CTL_REQ_BUF_SIZE];
	size_t len;

	strcpy(req.target, "hog");
	assert_int_equal(ctl_req_encode(&req, buf, sizeof(buf), &len), 0);
	assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Runs the loop until the handler deferred the request of a new client. */
static int deferred_client(struct fixture *fx, uint32_t pid)
{
	int fd = client(fx->path), n = fx->ntokens;

	send_profile(fd, pid);
	for (int i = 0; i < 100 && fx->ntokens == n; i++)
		pump(fx, 5);
	assert_int_equal(fx->ntokens, n + 1);
	return fd;
}

/* Runs the loop until a whole response came, then checks the server closed the connection. */
static int read_resp(struct fixture *fx, int fd, struct ctl_response *resp)
{
	uint8_t *buf = malloc(CTL_MSG_MAX);
	size_t have = 0, need = CTL_HDR_SIZE;
	ssize_t n;
	int r;

	assert_non_null(buf);
	for (int i = 0; i < 2000; i++) {
		pump(fx, 1);
		n = recv(fd, buf + have, CTL_MSG_MAX - have, MSG_DONTWAIT);
		if (n > 0)
			have += n;
		else if (n == 0 || errno != EAGAIN)
			break;
		if (ctl_resp_size(buf, have, &need) == 0 && have >= CTL_HDR_SIZE && have >= need)
			break;
	}
	r = ctl_resp_decode(buf, have, resp);
	free(buf);
	pump(fx, 1);
	n = recv(fd, &need, 1, MSG_DONTWAIT);
	assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
	close(fd);
	return r;
}

static void test_good_request(void **state)
{
	struct fixture *fx = *state;
	struct ctl_response resp;
	int fd = client(fx->path);

	send_req(fd, CTL_REQ_PAUSE, 0, 0);
	assert_int_equal(read_resp(fx, fd, &resp), 0);
	assert_int_equal(resp.req_type, CTL_REQ_PAUSE);
	assert_int_equal(resp.status, 0);
	assert_string_equal(resp.message, "paused");
	assert_int_equal(fx->calls, 1);
	assert_int_equal(ctl_server_nclients(fx->srv), 0);
	ctl_resp_free(&resp);
}

static void test_slow_client(void **state)
{
	struct fixture *fx = *state;
	struct ctl_request req = {.type = CTL_REQ_APPROVE, .id = 12};
	uint8_t buf[CTL_REQ_BUF_SIZE];
	struct ctl_response resp;
	int fd = client(fx->path);
	size_t len;

	assert_int_equal(ctl_req_encode(&req, buf, sizeof(buf), &len), 0);
	for (size_t i = 0; i < len; i++) {
		assert_int_equal(send(fd, buf + i, 1, 0), 1);
		pump(fx, 5);
		assert_int_equal(fx->calls, i + 1 == len);
	}
	assert_int_equal(read_resp(fx, fd, &resp), 0);
	assert_int_equal(resp.req_type, CTL_REQ_APPROVE);
	assert_int_equal(resp.status, -ENOENT);
	assert_string_equal(resp.message, "change 12 not found");
	assert_int_equal(fx->last.id, 12);
	ctl_resp_free(&resp);
}

static void expect_refused(struct fixture *fx, const void *bytes, size_t n, int err,
			   const char *message)
{
	struct ctl_response resp;
	int fd = client(fx->path);

	assert_int_equal(send(fd, bytes, n, 0), (ssize_t)n);
	assert_int_equal(read_resp(fx, fd, &resp), 0);
	assert_int_equal(resp.req_type, 0);
	assert_int_equal(resp.status, err);
	assert_string_equal(resp.message, message);
	assert_int_equal(fx->calls, 0);
	assert_int_equal(ctl_server_nclients(fx->srv), 0);
	ctl_resp_free(&resp);
}

static void test_garbage(void **state)
{
	struct fixture *fx = *state;
	/* magic, version, type, length: little-endian */
	static const uint8_t unknown[] = {'H', 'C', 'T', 'L', 1, 0, 99, 0, 0, 0, 0, 0};
	static const uint8_t long_pause[] = {'H', 'C', 'T', 'L', 1, 0, 6, 0, 4, 0, 0, 0};
	static const uint8_t huge[] = {'H', 'C', 'T', 'L', 1, 0, 6, 0, 0, 0, 0, 1};
	static const uint8_t v2[] = {'H', 'C', 'T', 'L', 2, 0, 6, 0, 0, 0, 0, 0};
	static const uint8_t trailing[] = {'H', 'C', 'T', 'L', 1, 0, 6, 0, 0, 0, 0, 0, 0};
	static const uint8_t zero_id[20] = {'H', 'C', 'T', 'L', 1, 0, 3, 0, 8, 0, 0, 0};

	expect_refused(fx, "GET / HTTP/1.0\r\n\r\n", 18, -EPROTO,
		       "bad request: bad magic: not a homeostat control message");
	expect_refused(fx, unknown, sizeof(unknown), -EOPNOTSUPP,
		       "bad request: unknown message type");
	expect_refused(fx, long_pause, sizeof(long_pause), -EBADMSG,
		       "bad request: malformed message");
	expect_refused(fx, huge, sizeof(huge), -EMSGSIZE, "bad request: message too large");
	expect_refused(fx, v2, sizeof(v2), -EPROTONOSUPPORT,
		       "bad request: unsupported protocol version");
	expect_refused(fx, trailing, sizeof(trailing), -EBADMSG, "bad request: malformed message");
	expect_refused(fx, zero_id, sizeof(zero_id), -ERANGE, "bad request: argument out of range");
}

static void test_handler_errors(void **state)
{
	struct fixture *fx = *state;
	struct ctl_response resp;
	int fd;

	fd = client(fx->path);
	send_req(fd, CTL_REQ_REJECT, 3, 0);
	assert_int_equal(read_resp(fx, fd, &resp), 0);
	assert_int_equal(resp.status, -EACCES);
	assert_string_equal(resp.message, "Permission denied");
	ctl_resp_free(&resp);

	fd = client(fx->path);
	send_req(fd, CTL_REQ_ROLLBACK, 3, 0);
	assert_int_equal(read_resp(fx, fd, &resp), 0);
	assert_int_equal(resp.req_type, CTL_REQ_ROLLBACK);
	assert_int_equal(resp.status, -EINVAL);
	assert_string_equal(resp.message, "cannot build the response: Invalid argument");
	ctl_resp_free(&resp);

	/* Too large to send: the client hears why. */
	fd = client(fx->path);
	send_req(fd, CTL_REQ_HISTORY, 0, 1100);
	assert_int_equal(read_resp(fx, fd, &resp), 0);
	assert_int_equal(resp.status, -EMSGSIZE);
	assert_string_equal(resp.message, "cannot encode the response: message too large");
	ctl_resp_free(&resp);
}

static void test_big_response(void **state)
{
	struct fixture *fx = *state;
	struct ctl_response resp;
	int fd = client(fx->path);

	send_req(fd, CTL_REQ_HISTORY, 0, 900);
	/* The client reads nothing yet: the server fills the socket and waits for EPOLLOUT. */
	for (int i = 0; i < 5; i++)
		pump(fx, 1);
	assert_int_equal(ctl_server_nclients(fx->srv), 1);
	assert_int_equal(read_resp(fx, fd, &resp), 0);
	assert_int_equal(resp.status, 0);
	assert_int_equal(resp.ntables, 1);
	assert_int_equal(resp.tables[0].nrows, 900);
	assert_int_equal(ctl_table_cell(&resp.tables[0], 899, 0)->i, 899);
	assert_int_equal(strlen(ctl_table_cell(&resp.tables[0], 899, 1)->s), ROW_BYTES);
	assert_int_equal(ctl_server_nclients(fx->srv), 0);
	ctl_resp_free(&resp);
}

static void test_expire(void **state)
{
	struct fixture *fx = *state;
	struct ctl_response resp;
	int fd = client(fx->path);
	uint8_t half[6] = {'H', 'C', 'T', 'L', 1, 0};

	assert_int_equal(send(fd, half, sizeof(half), 0), (ssize_t)sizeof(half));
	pump(fx, 5);
	pump(fx, 5);
	assert_int_equal(ctl_server_nclients(fx->srv), 1);
	assert_int_equal(ctl_server_expire(fx->srv, ctl_now_ms()), 0);
	assert_int_equal(ctl_server_expire(fx->srv, ctl_now_ms() + CTL_SERVER_TIMEOUT_MS + 1), 1);
	assert_int_equal(ctl_server_nclients(fx->srv), 0);
	assert_int_equal(read_resp(fx, fd, &resp), 0);
	assert_int_equal(resp.status, -ETIMEDOUT);
	assert_string_equal(resp.message, "timed out waiting for the request");
	ctl_resp_free(&resp);
}

static void test_max_clients(void **state)
{
	struct fixture *fx = *state;
	int fds[CTL_SERVER_MAX_CLIENTS];
	struct ctl_response resp;
	int fd;

	for (int i = 0; i < CTL_SERVER_MAX_CLIENTS; i++)
		fds[i] = client(fx->path);
	while (pump(fx, 5) > 0)
		;
	assert_int_equal(ctl_server_nclients(fx->srv), CTL_SERVER_MAX_CLIENTS);
	fd = client(fx->path);
	assert_int_equal(read_resp(fx, fd, &resp), 0);
	assert_int_equal(resp.status, -EBUSY);
	ctl_resp_free(&resp);
	/* The others are still served. */
	send_req(fds[0], CTL_REQ_STATUS, 0, 0);
	assert_int_equal(read_resp(fx, fds[0], &resp), 0);
	assert_string_equal(resp.message, "ok");
	ctl_resp_free(&resp);
	for (int i = 1; i < CTL_SERVER_MAX_CLIENTS; i++)
		close(fds[i]);
	while (pump(fx, 5) > 0)
		;
	assert_int_equal(ctl_server_nclients(fx->srv), 0);
}

/* Out of fds: accept fails, the listener rests until the next expire, then serves. */
static void test_out_of_fds(void **state)
{
	struct fixture *fx = *state;
	struct rlimit old, low;
	struct ctl_response resp;
	struct epoll_event ev;
	int fd = client(fx->path);

	send_req(fd, CTL_REQ_STATUS, 0, 0);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = fd + 1;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	assert_int_equal(epoll_wait(fx->epfd, &ev, 1, 100), 1);
	assert_int_equal(ctl_server_handle(fx->srv, &ev), -EMFILE);
	assert_int_equal(epoll_wait(fx->epfd, &ev, 1, 10), 0);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_int_equal(ctl_server_expire(fx->srv, ctl_now_ms()), 0);
	assert_int_equal(read_resp(fx, fd, &resp), 0);
	assert_string_equal(resp.message, "ok");
	ctl_resp_free(&resp);
}

/* Closing the server with clients half-way: their connections are closed too. */
static void test_close_with_clients(void **state)
{
	struct fixture *fx = *state;
	int fd = client(fx->path);
	char c;

	pump(fx, 5);
	assert_int_equal(ctl_server_nclients(fx->srv), 1);
	ctl_server_close(fx->srv);
	fx->srv = NULL;
	assert_int_equal(recv(fd, &c, 1, 0), 0);
	close(fd);
}

static void test_stale_event(void **state)
{
	struct fixture *fx = *state;
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = 0};

	assert_false(ctl_server_owns(&ev));
	ev.data.ptr = &ev;
	assert_false(ctl_server_owns(&ev));
	/* Our tag, a generation nobody has: ignored. */
	ev.data.u64 = (uint64_t)CTL_EPOLL_TAG << 48 | (uint64_t)0x7777 << 32 | 3;
	assert_true(ctl_server_owns(&ev));
	assert_int_equal(ctl_server_handle(fx->srv, &ev), 0);
}

static void test_deferred(void **state)
{
	static const char *const cols[] = {"function", "samples"};
	static const enum ctl_col_type types[] = {CTL_COL_STRING, CTL_COL_INT};
	struct fixture *fx = *state;
	struct ctl_response resp, got;
	int fd = deferred_client(fx, 0);
	uint64_t token = fx->tokens[0];
	char c;

	/* The client waits; the loop has nothing to do for it meanwhile. */
	assert_int_equal(ctl_server_nclients(fx->srv), 1);
	assert_true(ctl_server_waiting(fx->srv, token));
	assert_int_equal(pump(fx, 20), 0);
	assert_int_equal(recv(fd, &c, 1, MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	/* Within the usual deadline it stays. */
	assert_int_equal(ctl_server_expire(fx->srv, ctl_now_ms()), 0);

	ctl_resp_init(&resp, CTL_REQ_PROFILE);
	ctl_resp_message(&resp, "cpu profile done");
	ctl_resp_table(&resp, "top", 2, cols, types);
	ctl_resp_row(&resp);
	ctl_resp_cell_str(&resp, "hot_spin_function");
	ctl_resp_cell_int(&resp, 283);
	assert_int_equal(ctl_server_reply(fx->srv, token, &resp), 0);
	/* resp stays the caller's, and is not consumed. */
	assert_int_equal(resp.ntables, 1);
	assert_false(ctl_server_waiting(fx->srv, token));
	assert_int_equal(ctl_server_reply(fx->srv, token, &resp), -ENOENT);
	ctl_resp_free(&resp);

	assert_int_equal(read_resp(fx, fd, &got), 0);
	assert_int_equal(got.req_type, CTL_REQ_PROFILE);
	assert_int_equal(got.status, 0);
	assert_string_equal(got.message, "cpu profile done");
	assert_int_equal(got.ntables, 1);
	assert_string_equal(ctl_table_cell(&got.tables[0], 0, 0)->s, "hot_spin_function");
	assert_int_equal(ctl_table_cell(&got.tables[0], 0, 1)->i, 283);
	assert_int_equal(ctl_server_nclients(fx->srv), 0);
	ctl_resp_free(&got);
}

/* A deferred error goes without its tables, like a handler's error. */
static void test_deferred_error(void **state)
{
	static const char *const cols[] = {"n"};
	static const enum ctl_col_type types[] = {CTL_COL_INT};
	struct fixture *fx = *state;
	struct ctl_response resp, got;
	int fd = deferred_client(fx, 0);

	ctl_resp_init(&resp, CTL_REQ_PROFILE);
	ctl_resp_table(&resp, "partial", 1, cols, types);
	ctl_resp_error(&resp, -ESRCH, "target 'hog' has no live process");
	assert_int_equal(ctl_server_reply(fx->srv, fx->tokens[0], &resp), 0);
	ctl_resp_free(&resp);
	assert_int_equal(read_resp(fx, fd, &got), 0);
	assert_int_equal(got.req_type, CTL_REQ_PROFILE);
	assert_int_equal(got.status, -ESRCH);
	assert_string_equal(got.message, "target 'hog' has no live process");
	assert_int_equal(got.ntables, 0);
	ctl_resp_free(&got);

	/* A response the builder refused: the client hears that, not a broken message. */
	fd = deferred_client(fx, 0);
	ctl_resp_init(&resp, CTL_REQ_PROFILE);
	ctl_resp_cell_int(&resp, 1); /* no table */
	assert_int_equal(ctl_server_reply(fx->srv, fx->tokens[1], &resp), 0);
	ctl_resp_free(&resp);
	assert_int_equal(read_resp(fx, fd, &got), 0);
	assert_int_equal(got.status, -EINVAL);
	assert_string_equal(got.message, "cannot build the response: Invalid argument");
	ctl_resp_free(&got);
}

/* A client that hangs up while it waits is closed; the late reply finds nobody. */
static void test_deferred_hangup(void **state)
{
	struct fixture *fx = *state;
	struct ctl_response resp;
	int fd = deferred_client(fx, 0);

	close(fd);
	for (int i = 0; i < 10 && ctl_server_nclients(fx->srv); i++)
		pump(fx, 5);
	assert_int_equal(ctl_server_nclients(fx->srv), 0);
	assert_false(ctl_server_waiting(fx->srv, fx->tokens[0]));
	ctl_resp_init(&resp, CTL_REQ_PROFILE);
	ctl_resp_message(&resp, "too late");
	assert_int_equal(ctl_server_reply(fx->srv, fx->tokens[0], &resp), -ENOENT);
	ctl_resp_free(&resp);
}

/* The usual deadline drops a deferred client, unless its handler set a later one. */
static void test_deferred_deadline(void **state)
{
	struct fixture *fx = *state;
	struct ctl_response resp;
	uint64_t now = ctl_now_ms();
	int plain = deferred_client(fx, 0), extended = deferred_client(fx, 1);

	assert_int_equal(fx->extend_err, 0);
	assert_int_equal(ctl_server_nclients(fx->srv), 2);
	assert_int_equal(ctl_server_expire(fx->srv, now + CTL_SERVER_TIMEOUT_MS + 100), 1);
	assert_int_equal(read_resp(fx, plain, &resp), 0);
	assert_int_equal(resp.status, -ETIMEDOUT);
	assert_string_equal(resp.message, "timed out waiting for the answer");
	ctl_resp_free(&resp);
	assert_false(ctl_server_waiting(fx->srv, fx->tokens[0]));

	assert_true(ctl_server_waiting(fx->srv, fx->tokens[1]));
	assert_int_equal(ctl_server_expire(fx->srv, now + LONG_DEADLINE_MS - 1000), 0);
	assert_int_equal(ctl_server_expire(fx->srv, ctl_now_ms() + LONG_DEADLINE_MS + 1), 1);
	assert_int_equal(read_resp(fx, extended, &resp), 0);
	assert_int_equal(resp.status, -ETIMEDOUT);
	ctl_resp_free(&resp);
	assert_int_equal(ctl_server_reply(fx->srv, fx->tokens[1], &resp), -ENOENT);

	/* Deadlines are set only for clients the server has. */
	assert_int_equal(ctl_server_extend(fx->srv, fx->tokens[1], now), -ENOENT);
	assert_int_equal(ctl_server_extend(fx->srv, 0, now), -ENOENT);
	assert_int_equal(ctl_server_extend(NULL, 1, now), -ENOENT);
}

/* Tokens name one request each: replies reach their own client in any order, and other
 * requests are served meanwhile. */
static void test_deferred_tokens(void **state)
{
	struct fixture *fx = *state;
	struct ctl_response resp;
	int a = deferred_client(fx, 0), b = deferred_client(fx, 0), c;

	assert_true(fx->tokens[0] != 0 && fx->tokens[1] != 0);
	assert_true(fx->tokens[0] != fx->tokens[1]);
	c = client(fx->path);
	send_req(c, CTL_REQ_STATUS, 0, 0);
	assert_int_equal(read_resp(fx, c, &resp), 0);
	assert_string_equal(resp.message, "ok");
	ctl_resp_free(&resp);

	for (int i = 1; i >= 0; i--) {
		ctl_resp_init(&resp, CTL_REQ_PROFILE);
		ctl_resp_message(&resp, "answer %d", i);
		assert_int_equal(ctl_server_reply(fx->srv, fx->tokens[i], &resp), 0);
		ctl_resp_free(&resp);
	}
	assert_int_equal(read_resp(fx, a, &resp), 0);
	assert_string_equal(resp.message, "answer 0");
	ctl_resp_free(&resp);
	assert_int_equal(read_resp(fx, b, &resp), 0);
	assert_string_equal(resp.message, "answer 1");
	ctl_resp_free(&resp);

	/* Tokens no client has. */
	ctl_resp_init(&resp, CTL_REQ_PROFILE);
	assert_int_equal(ctl_server_reply(fx->srv, 0, &resp), -ENOENT);
	assert_int_equal(ctl_server_reply(fx->srv, fx->tokens[1] + 100, &resp), -ENOENT);
	assert_int_equal(ctl_server_reply(NULL, fx->tokens[1], &resp), -ENOENT);
	assert_false(ctl_server_waiting(fx->srv, 0));
	assert_false(ctl_server_waiting(NULL, 1));
	ctl_resp_free(&resp);
}

/* Closing the server with a deferred client closes its connection too. */
static void test_deferred_close(void **state)
{
	struct fixture *fx = *state;
	int fd = deferred_client(fx, 1);
	char c;

	ctl_server_close(fx->srv);
	fx->srv = NULL;
	assert_int_equal(recv(fd, &c, 1, 0), 0);
	close(fd);
}

static void test_socket_file(void **state)
{
	struct fixture *fx = *state;
	char dir[128];
	struct stat st;

	assert_int_equal(lstat(fx->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	snprintf(dir, sizeof(dir), "%s/run", fx->dir);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(ctl_server_fd(fx->srv) >= 0, 1);

	/* Closing unlinks the socket. */
	ctl_server_close(fx->srv);
	fx->srv = NULL;
	assert_int_equal(lstat(fx->path, &st), -1);
	assert_int_equal(errno, ENOENT);
}

static void test_stale_socket(void **state)
{
	struct fixture *fx = *state;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct ctl_server *other = NULL;
	struct ctl_response resp;
	char file[160];
	int fd;

	/* A live server: not replaced. */
	assert_int_equal(ctl_server_open(fx->path, fx->epfd, handler, fx, &other), -EADDRINUSE);

	/* A dead one (bound, never listening, closed): replaced. */
	ctl_server_close(fx->srv);
	fx->srv = NULL;
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	strcpy(sa.sun_path, fx->path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(ctl_server_open(fx->path, fx->epfd, handler, fx, &fx->srv), 0);
	fd = client(fx->path);
	send_req(fd, CTL_REQ_STATUS, 0, 0);
	assert_int_equal(read_resp(fx, fd, &resp), 0);
	assert_string_equal(resp.message, "ok");
	ctl_resp_free(&resp);

	/* Not a socket: left alone. */
	snprintf(file, sizeof(file), "%s/file", fx->dir);
	fd = open(file, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(ctl_server_open(file, fx->epfd, handler, fx, &other), -EEXIST);
	assert_int_equal(access(file, F_OK), 0);

	/* A socket another daemon put in our place is not unlinked by our close. */
	assert_int_equal(unlink(fx->path), 0);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ctl_server_close(fx->srv);
	fx->srv = NULL;
	assert_int_equal(access(fx->path, F_OK), 0);
	close(fd);
}

static void test_bad_open(void **state)
{
	struct fixture *fx = *state;
	struct ctl_server *srv = NULL;
	char path[200];

	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	assert_int_equal(ctl_server_open(path, fx->epfd, handler, fx, &srv), -ENAMETOOLONG);
	assert_int_equal(ctl_server_open("", fx->epfd, handler, fx, &srv), -EINVAL);
	assert_int_equal(ctl_server_open(fx->path, fx->epfd, NULL, fx, &srv), -EINVAL);
	snprintf(path, sizeof(path), "%s/no/such/control.sock", fx->dir);
	assert_int_equal(ctl_server_open(path, fx->epfd, handler, fx, &srv), -ENOENT);
	assert_null(srv);
}

/* As root: a client of another uid is refused with EPERM. */
static void test_peer_refused(void **state)
{
	struct fixture *fx = *state;
	char dir[128];
	pid_t pid;
	int status;

	if (geteuid() != 0) {
		print_message("skipped: needs root to connect as another uid\n");
		skip();
	}
	snprintf(dir, sizeof(dir), "%s/run", fx->dir);
	assert_int_equal(chmod(fx->dir, 0711), 0);
	assert_int_equal(chmod(dir, 0711), 0);
	assert_int_equal(chmod(fx->path, 0666), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		uint8_t buf[4096];
		struct ctl_response resp;
		size_t have = 0;
		ssize_t n;
		int fd;

		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(10);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		strcpy(sa.sun_path, fx->path);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			_exit(11);
		while ((n = recv(fd, buf + have, sizeof(buf) - have, 0)) > 0)
			have += n;
		if (ctl_resp_decode(buf, have, &resp) < 0)
			_exit(12);
		_exit(resp.status == -EPERM ? 0 : 13);
	}
	for (int i = 0; i < 2000; i++) {
		pump(fx, 1);
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(fx->calls, 0);
	assert_int_equal(ctl_server_nclients(fx->srv), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_good_request, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_slow_client, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_handler_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_big_response, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expire, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_max_clients, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_out_of_fds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_close_with_clients, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stale_event, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deferred, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deferred_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deferred_hangup, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deferred_deadline, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deferred_tokens, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deferred_close, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_socket_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stale_socket, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_open, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_peer_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
