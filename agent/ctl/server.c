/* server.c - the control socket in the daemon's epoll loop (contract in server.h).
 *
 * Each client is a slot with a small state machine: READ (header then payload, in as many
 * pieces as they come, refused as soon as the header is wrong), then, when the handler
 * defers its answer, DEFERRED (watched for EPOLLRDHUP only, until ctl_server_reply() names
 * its token), then WRITE (the encoded response, in as many pieces as the socket takes,
 * waiting for EPOLLOUT in between), then closed. Invariants: a token names one request of
 * this server's lifetime and is never reused, so a late reply cannot reach another client; every
 * open client fd is in epfd with a tag of its slot and a generation, so a stale event for a closed
 * client (same fd, already reused) is ignored; a client never holds more than CTL_REQ_BUF_SIZE
 * bytes of input; no call blocks.
 */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl/server.h"
#include "log.h"

enum ctl_client_state {
	CTL_CLIENT_FREE,
	CTL_CLIENT_READ,
	CTL_CLIENT_DEFERRED,
	CTL_CLIENT_WRITE,
};

struct ctl_client {
	enum ctl_client_state state;
	int fd;
	uint16_t gen;
	bool want_out; /* registered for EPOLLOUT instead of EPOLLIN */
	pid_t pid;
	uint64_t deadline_ms;
	uint64_t token;	   /* of its request, once read */
	uint16_t req_type; /* of its request, once read */
	uint8_t in[CTL_REQ_BUF_SIZE];
	size_t have;
	uint8_t *out;
	size_t out_len;
	size_t out_off;
};

struct ctl_server {
	int fd;
	int epfd;
	char *path;
	dev_t dev;
	ino_t ino;
	ctl_handler_fn handler;
	void *ud;
	uint16_t gen;
	uint64_t tokens; /* the last token given */
	bool accept_off; /* out of fds: not watching the listener until the next expire */
	struct ctl_client clients[CTL_SERVER_MAX_CLIENTS];
};

uint64_t ctl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t ev_data(uint16_t gen, int fd)
{
	return (uint64_t)CTL_EPOLL_TAG << 48 | (uint64_t)gen << 32 | (uint32_t)fd;
}

static int epoll_set(struct ctl_server *srv, int op, int fd, uint16_t gen, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.u64 = ev_data(gen, fd)};

	return epoll_ctl(srv->epfd, op, fd, &ev) < 0 ? -errno : 0;
}

static void client_close(struct ctl_server *srv, struct ctl_client *c)
{
	epoll_ctl(srv->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->out);
	*c = (struct ctl_client){.state = CTL_CLIENT_FREE, .fd = -1};
}

/* Encodes an error response; NULL when even that fails (out of memory). */
static uint8_t *error_msg(uint16_t req_type, int err, const char *msg, size_t *len)
{
	struct ctl_response resp;
	void *buf = NULL;
	int r;

	ctl_resp_init(&resp, req_type);
	ctl_resp_error(&resp, err, "%s", msg);
	r = ctl_resp_encode(&resp, &buf, len);
	ctl_resp_free(&resp);
	return r < 0 ? NULL : buf;
}

/* One attempt to send a short error to a socket about to be closed; its send buffer is
 * empty, so a few hundred bytes go through or nothing does. */
static void send_now(int fd, int err, const char *msg)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;

	buf = error_msg(0, err, msg, &len);
	if (buf && send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("cannot send control error to fd %d: %m", fd);
}

static void client_write(struct ctl_server *srv, struct ctl_client *c)
{
	ssize_t n;

	while (c->out_off < c->out_len) {
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
			 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			c->out_off += n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!c->want_out) {
				if (epoll_set(srv, EPOLL_CTL_MOD, c->fd, c->gen, EPOLLOUT) < 0)
					break;
				c->want_out = true;
			}
			return;
		}
		log_debug("cannot write control response to pid %d: %m", c->pid);
		break;
	}
	client_close(srv, c);
}

/* Queues out (owned) and starts writing it. */
static void client_respond(struct ctl_server *srv, struct ctl_client *c, uint8_t *out, size_t len)
{
	if (!out) {
		client_close(srv, c);
		return;
	}
	c->state = CTL_CLIENT_WRITE;
	c->out = out;
	c->out_len = len;
	c->out_off = 0;
	client_write(srv, c);
}

static void client_refuse(struct ctl_server *srv, struct ctl_client *c, int err)
{
	char msg[128];
	uint8_t *out;
	size_t len = 0;

	log_debug("refused control request from pid %d: %s", c->pid, ctl_strerror(err));
	snprintf(msg, sizeof(msg), "bad request: %s", ctl_strerror(err));
	out = error_msg(0, err, msg, &len);
	client_respond(srv, c, out, len);
}

/* Encodes a handler's answer r (0 or -errno) with resp; NULL when even an error cannot be
 * encoded (out of memory). */
static uint8_t *encode_answer(uint16_t req_type, int r, const struct ctl_response *resp,
			      size_t *len)
{
	struct ctl_response err_resp, *send_resp = NULL;
	int built = resp->err;
	void *out = NULL;
	int e;

	if (r >= 0 && built < 0)
		r = built;
	if (r < 0) {
		/* An error carries no table: keep the handler's message only. */
		if (r < -4095)
			r = -EIO;
		ctl_resp_init(&err_resp, req_type);
		if (built < 0)
			ctl_resp_error(&err_resp, r, "cannot build the response: %s", strerror(-r));
		else if (resp->message && resp->message[0])
			ctl_resp_error(&err_resp, r, "%s", resp->message);
		else
			ctl_resp_error(&err_resp, r, "%s", strerror(-r));
		send_resp = &err_resp;
	}
	if (send_resp) {
		e = ctl_resp_encode(send_resp, &out, len);
		ctl_resp_free(send_resp);
	} else {
		struct ctl_response view = *resp;

		view.req_type = req_type;
		e = ctl_resp_encode(&view, &out, len);
	}
	if (e < 0) {
		char text[128];

		snprintf(text, sizeof(text), "cannot encode the response: %s", ctl_strerror(e));
		out = error_msg(req_type, e, text, len);
	}
	return out;
}

static void client_dispatch(struct ctl_server *srv, struct ctl_client *c, struct ctl_request *req)
{
	const struct ctl_req_desc *desc = ctl_req_desc(req->type);
	struct ctl_response resp;
	uint8_t *out;
	size_t len = 0;
	int r;

	if (++srv->tokens == 0)
		srv->tokens = 1;
	c->token = req->token = srv->tokens;
	c->req_type = req->type;
	ctl_resp_init(&resp, req->type);
	r = srv->handler(srv->ud, req, &resp);
	if (r == CTL_DEFERRED) {
		ctl_resp_free(&resp);
		log_debug("control request '%s' from pid %d: answer deferred", desc->name, c->pid);
		/* Only a hang-up matters now; bytes after the request were refused already. */
		if (epoll_set(srv, EPOLL_CTL_MOD, c->fd, c->gen, EPOLLRDHUP) < 0) {
			client_close(srv, c);
			return;
		}
		c->state = CTL_CLIENT_DEFERRED;
		return;
	}
	out = encode_answer(req->type, r, &resp, &len);
	log_debug("control request '%s' from pid %d: status %d", desc->name, c->pid,
		  r < 0 ? r : resp.err);
	ctl_resp_free(&resp);
	client_respond(srv, c, out, len);
}

/* A deferred client woke us: it hung up (or broke the protocol by sending more). */
static void client_deferred_event(struct ctl_server *srv, struct ctl_client *c)
{
	uint8_t extra;
	ssize_t n = recv(c->fd, &extra, 1, MSG_DONTWAIT | MSG_PEEK);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	log_debug("control client pid %d %s before its deferred answer", c->pid,
		  n == 0  ? "hung up"
		  : n > 0 ? "sent more bytes"
			  : "failed");
	client_close(srv, c);
}

static void client_read(struct ctl_server *srv, struct ctl_client *c)
{
	struct ctl_request req;
	size_t need;
	ssize_t n;
	uint8_t extra;
	int r;

	for (;;) {
		r = ctl_req_size(c->in, c->have, &need);
		if (r == 0 && need > sizeof(c->in))
			r = -EMSGSIZE;
		if (r < 0)
			goto refuse;
		if (c->have >= CTL_HDR_SIZE && c->have == need)
			break;
		n = recv(c->fd, c->in + c->have, need - c->have, MSG_DONTWAIT);
		if (n > 0) {
			c->have += n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n == 0)
			log_debug("control client pid %d closed before its request was complete",
				  c->pid);
		else
			log_debug("cannot read control request from pid %d: %m", c->pid);
		client_close(srv, c);
		return;
	}
	/* One request a connection: bytes after it are refused, not left for later. */
	r = -EBADMSG;
	if (recv(c->fd, &extra, 1, MSG_DONTWAIT | MSG_PEEK) > 0)
		goto refuse;
	r = ctl_req_decode(c->in, c->have, &req);
	if (r < 0)
		goto refuse;
	client_dispatch(srv, c, &req);
	return;

refuse:
	client_refuse(srv, c, r);
}

static struct ctl_client *client_find(struct ctl_server *srv, int fd, uint16_t gen)
{
	for (size_t i = 0; i < ARRAY_SIZE(srv->clients); i++)
		if (srv->clients[i].state != CTL_CLIENT_FREE && srv->clients[i].fd == fd &&
		    srv->clients[i].gen == gen)
			return &srv->clients[i];
	return NULL;
}

static void accept_one(struct ctl_server *srv, int fd)
{
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct ctl_client *c = NULL;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 || clen != sizeof(cred)) {
		log_debug("cannot get the credentials of a control client: %m");
		close(fd);
		return;
	}
	if (cred.uid != 0 && cred.uid != geteuid()) {
		log_warn(
		    "refused control connection from pid %d uid %u on '%s': not root, ignoring",
		    cred.pid, cred.uid, srv->path);
		send_now(fd, -EPERM, "permission denied: only root may control homeostat");
		close(fd);
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(srv->clients) && !c; i++)
		if (srv->clients[i].state == CTL_CLIENT_FREE)
			c = &srv->clients[i];
	if (!c) {
		log_debug("refused control client pid %d: %d clients already", cred.pid,
			  CTL_SERVER_MAX_CLIENTS);
		send_now(fd, -EBUSY, "busy: too many control clients, try again");
		close(fd);
		return;
	}
	if (++srv->gen == 0)
		srv->gen = 1;
	*c = (struct ctl_client){
	    .state = CTL_CLIENT_READ,
	    .fd = fd,
	    .gen = srv->gen,
	    .pid = cred.pid,
	    .deadline_ms = ctl_now_ms() + CTL_SERVER_TIMEOUT_MS,
	};
	if (epoll_set(srv, EPOLL_CTL_ADD, fd, c->gen, EPOLLIN) < 0) {
		log_debug("cannot watch control client pid %d: %m", cred.pid);
		close(fd);
		*c = (struct ctl_client){.state = CTL_CLIENT_FREE, .fd = -1};
	}
}

static int accept_all(struct ctl_server *srv)
{
	int fd, r;

	/* A bounded batch, so that a flood does not starve the rest of the loop. */
	for (int i = 0; i < CTL_SERVER_MAX_CLIENTS; i++) {
		fd = accept4(srv->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			r = -errno;
			/* Out of fds or memory: the listener would wake the loop for nothing until
			 * then, so it is left alone until the next ctl_server_expire(). */
			if ((r == -EMFILE || r == -ENFILE || r == -ENOBUFS || r == -ENOMEM) &&
			    epoll_set(srv, EPOLL_CTL_MOD, srv->fd, 0, 0) == 0)
				srv->accept_off = true;
			return r;
		}
		accept_one(srv, fd);
	}
	return 0;
}

int ctl_server_dispatch(struct ctl_server *srv, uint64_t data, uint32_t events)
{
	int fd = (int)(uint32_t)data;
	uint16_t gen = (uint16_t)(data >> 32);
	struct ctl_client *c;

	if (data >> 48 != CTL_EPOLL_TAG)
		return -EINVAL;
	if (gen == 0 && fd == srv->fd)
		return accept_all(srv);
	c = client_find(srv, fd, gen);
	if (!c)
		return 0; /* a stale event of a client closed earlier in this batch */
	if (c->state == CTL_CLIENT_READ)
		client_read(srv, c);
	else if (c->state == CTL_CLIENT_DEFERRED)
		client_deferred_event(srv, c);
	else if (c->state == CTL_CLIENT_WRITE)
		client_write(srv, c);
	return 0;
}

int ctl_server_handle(struct ctl_server *srv, const struct epoll_event *ev)
{
	return ctl_server_dispatch(srv, ev->data.u64, ev->events);
}

unsigned ctl_server_expire(struct ctl_server *srv, uint64_t now_ms)
{
	unsigned n = 0;

	if (srv->accept_off && epoll_set(srv, EPOLL_CTL_MOD, srv->fd, 0, EPOLLIN) == 0)
		srv->accept_off = false;
	for (size_t i = 0; i < ARRAY_SIZE(srv->clients); i++) {
		struct ctl_client *c = &srv->clients[i];

		if (c->state == CTL_CLIENT_FREE || c->deadline_ms > now_ms)
			continue;
		log_debug("dropped control client pid %d: not done by its deadline", c->pid);
		if (c->state == CTL_CLIENT_READ)
			send_now(c->fd, -ETIMEDOUT, "timed out waiting for the request");
		else if (c->state == CTL_CLIENT_DEFERRED)
			send_now(c->fd, -ETIMEDOUT, "timed out waiting for the answer");
		client_close(srv, c);
		n++;
	}
	return n;
}

static struct ctl_client *client_by_token(const struct ctl_server *srv, uint64_t token,
					  bool deferred_only)
{
	for (size_t i = 0; token && i < ARRAY_SIZE(srv->clients); i++) {
		const struct ctl_client *c = &srv->clients[i];

		if (c->token != token || c->state == CTL_CLIENT_FREE)
			continue;
		if (c->state == CTL_CLIENT_DEFERRED ||
		    (!deferred_only && c->state == CTL_CLIENT_READ))
			return (struct ctl_client *)c;
	}
	return NULL;
}

int ctl_server_extend(struct ctl_server *srv, uint64_t token, uint64_t deadline_ms)
{
	struct ctl_client *c = srv ? client_by_token(srv, token, false) : NULL;

	if (!c)
		return -ENOENT;
	c->deadline_ms = deadline_ms;
	return 0;
}

int ctl_server_reply(struct ctl_server *srv, uint64_t token, const struct ctl_response *resp)
{
	struct ctl_client *c = srv ? client_by_token(srv, token, true) : NULL;
	uint8_t *out;
	size_t len = 0;

	if (!c)
		return -ENOENT;
	out = encode_answer(c->req_type, resp->status, resp, &len);
	log_debug("deferred answer to pid %d: status %d", c->pid, resp->status);
	/* Back to the usual events for writing: client_write() asks for EPOLLOUT if needed. */
	if (epoll_set(srv, EPOLL_CTL_MOD, c->fd, c->gen, EPOLLIN) < 0) {
		free(out);
		client_close(srv, c);
		return 0;
	}
	client_respond(srv, c, out, len);
	return 0;
}

bool ctl_server_waiting(const struct ctl_server *srv, uint64_t token)
{
	return srv && client_by_token(srv, token, true);
}

unsigned ctl_server_nclients(const struct ctl_server *srv)
{
	unsigned n = 0;

	for (size_t i = 0; i < ARRAY_SIZE(srv->clients); i++)
		n += srv->clients[i].state != CTL_CLIENT_FREE;
	return n;
}

int ctl_server_fd(const struct ctl_server *srv)
{
	return srv->fd;
}

static int make_dir(const char *path)
{
	_cleanup_free_ char *copy = strdup(path);
	const char *dir;
	struct stat st;

	if (!copy)
		return -ENOMEM;
	dir = dirname(copy);
	if (stat(dir, &st) == 0)
		return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
	if (errno != ENOENT)
		return -errno;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (chmod(dir, 0700) < 0)
		return -errno;
	return 0;
}

static int fill_addr(const char *path, struct sockaddr_un *sa)
{
	*sa = (struct sockaddr_un){.sun_family = AF_UNIX};
	return hs_strlcpy(sa->sun_path, path, sizeof(sa->sun_path));
}

/* Removes path if it is a socket nobody listens on. */
static int remove_stale(const char *path)
{
	struct sockaddr_un sa;
	_cleanup_close_ int fd = -1;
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	fill_addr(path, &sa);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EAGAIN)
		return -EADDRINUSE;
	if (errno != ECONNREFUSED)
		return -errno;
	log_debug("removing stale control socket '%s'", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int ctl_server_open(const char *path, int epfd, ctl_handler_fn handler, void *ud,
		    struct ctl_server **out)
{
	struct ctl_server *srv;
	struct sockaddr_un sa;
	struct stat st;
	mode_t old;
	int r;

	if (!path || !path[0] || !handler || epfd < 0)
		return -EINVAL;
	if (fill_addr(path, &sa) < 0)
		return -ENAMETOOLONG;
	r = make_dir(path);
	if (r < 0)
		return r;
	r = remove_stale(path);
	if (r < 0)
		return r;

	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->epfd = epfd;
	srv->handler = handler;
	srv->ud = ud;
	for (size_t i = 0; i < ARRAY_SIZE(srv->clients); i++)
		srv->clients[i].fd = -1;
	srv->path = strdup(path);
	srv->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (!srv->path || srv->fd < 0) {
		r = srv->path ? -errno : -ENOMEM;
		goto fail;
	}
	/* The daemon is single-threaded: the umask covers the window between bind and chmod. */
	old = umask(0177);
	r = bind(srv->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old);
	if (r < 0)
		goto fail;
	if (chmod(path, 0600) < 0 || lstat(path, &st) < 0 || listen(srv->fd, 64) < 0) {
		r = -errno;
		goto fail_unlink;
	}
	srv->dev = st.st_dev;
	srv->ino = st.st_ino;
	r = epoll_set(srv, EPOLL_CTL_ADD, srv->fd, 0, EPOLLIN);
	if (r < 0)
		goto fail_unlink;
	*out = srv;
	return 0;

fail_unlink:
	unlink(path);
fail:
	if (srv->fd >= 0)
		close(srv->fd);
	free(srv->path);
	free(srv);
	return r;
}

void ctl_server_close(struct ctl_server *srv)
{
	struct stat st;

	if (!srv)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(srv->clients); i++)
		if (srv->clients[i].state != CTL_CLIENT_FREE)
			client_close(srv, &srv->clients[i]);
	epoll_ctl(srv->epfd, EPOLL_CTL_DEL, srv->fd, NULL);
	close(srv->fd);
	/* Another daemon may have replaced the socket since: leave its socket alone. */
	if (lstat(srv->path, &st) == 0 && st.st_dev == srv->dev && st.st_ino == srv->ino)
		unlink(srv->path);
	free(srv->path);
	free(srv);
}
