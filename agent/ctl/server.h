/* server.h - the daemon's side of the control socket, for its single epoll loop.
 *
 * The server registers its listening socket and its clients with the daemon's epoll fd. Their
 * events carry a tag in epoll_event.data.u64 (CTL_EPOLL_TAG in the top 16 bits, which no
 * user-space pointer and no zero-extended fd has), so the loop routes them:
 *
 *	n = epoll_wait(epfd, evs, ARRAY_SIZE(evs), timeout);
 *	for (i = 0; i < n; i++) {
 *		if (ctl_server_owns(&evs[i])) {
 *			ctl_server_handle(srv, &evs[i]);
 *			continue;
 *		}
 *		...
 *	}
 *	ctl_server_expire(srv, ctl_now_ms());	(once a tick)
 *
 * or, with the data alone: ctl_server_dispatch(srv, evs[i].data.u64, evs[i].events), which
 * returns -EINVAL for an event that is not the server's.
 *
 * Nothing blocks: a client is read and written in as many pieces as the socket gives, one
 * request and one response, then closed. A client that is not done within
 * CTL_SERVER_TIMEOUT_MS (or the deadline its handler set) is dropped by ctl_server_expire().
 *
 * Deferred answers, for requests that take a while (a profile over N seconds): the handler
 * keeps req->token, sets the client's deadline with ctl_server_extend() and returns
 * CTL_DEFERRED; the client then waits, watched only for hanging up, until the daemon calls
 * ctl_server_reply() with the token, or the deadline passes (it gets ETIMEDOUT), or it goes
 * away (the reply then returns -ENOENT and the daemon drops the result).
 *
 * Only root and the daemon's own effective uid may talk to it (SO_PEERCRED); others get an
 * EPERM response, and a WARNING in the log. Past CTL_SERVER_MAX_CLIENTS, new clients get
 * EBUSY.
 */
#ifndef HS_CTL_SERVER_H
#define HS_CTL_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "ctl/proto.h"

#define CTL_EPOLL_TAG	       0x4354u /* "CT" */
#define CTL_SERVER_TIMEOUT_MS  5000
#define CTL_SERVER_MAX_CLIENTS 16

struct ctl_server;

/* Returned by a handler that will answer later with ctl_server_reply(srv, req->token, ...). */
#define CTL_DEFERRED 1

/* Answers one request: fills resp (initialized with resp->req_type = req->type, status 0)
 * with a message and tables. Returns 0 to send resp; a negative errno to send an error with
 * that status and resp's message (strerror when it has none), without its tables:
 * `return ctl_resp_error(resp, -ENOENT, "change %" PRIu64 " not found", req->id);`
 * or CTL_DEFERRED to answer later (resp is then dropped). */
typedef int (*ctl_handler_fn)(void *ud, const struct ctl_request *req, struct ctl_response *resp);

/* Creates path's directory if missing (0700), replaces a stale socket (a socket nobody
 * answers on; anything else there is -EEXIST, a live daemon -EADDRINUSE), binds with mode
 * 0600, listens, and registers with epfd. Returns 0 or -errno. */
int ctl_server_open(const char *path, int epfd, ctl_handler_fn handler, void *ud,
		    struct ctl_server **out);
/* Closes every client and the socket, unlinks path (if it is still ours). NULL is fine. */
void ctl_server_close(struct ctl_server *srv);

int ctl_server_fd(const struct ctl_server *srv); /* the listening socket */
unsigned ctl_server_nclients(const struct ctl_server *srv);

static inline bool ctl_server_owns(const struct epoll_event *ev)
{
	return ev->data.u64 >> 48 == CTL_EPOLL_TAG;
}

/* Handles one event of ours: accepts, reads, dispatches, writes, closes. Problems with one
 * client are that client's (it is answered or closed); returns 0, -EINVAL for an event that
 * is not ours, or -errno when the listening socket itself failed (accept: EMFILE...).
 * ctl_server_dispatch() is the same with the event's data.u64 and events. */
int ctl_server_handle(struct ctl_server *srv, const struct epoll_event *ev);
int ctl_server_dispatch(struct ctl_server *srv, uint64_t data, uint32_t events);

/* Drops clients whose deadline is at or before now_ms (CLOCK_MONOTONIC, in ms); returns how
 * many. Also watches the listener again if accept() ran out of fds. Call it once a tick. */
unsigned ctl_server_expire(struct ctl_server *srv, uint64_t now_ms);
uint64_t ctl_now_ms(void);

/* Sets the deadline (CLOCK_MONOTONIC ms) of the client that sent the request with this token,
 * from its handler or while its answer is deferred. Returns 0 or -ENOENT (no such client). */
int ctl_server_extend(struct ctl_server *srv, uint64_t token, uint64_t deadline_ms);
/* Sends resp (left to the caller to free) to the deferred client of token, as a handler's
 * answer is sent: an error status goes without tables. Returns 0 (sent or being sent), or
 * -ENOENT when that client is gone (expired, hung up, or the server closed). */
int ctl_server_reply(struct ctl_server *srv, uint64_t token, const struct ctl_response *resp);
/* True while the deferred client of token still waits for its answer. */
bool ctl_server_waiting(const struct ctl_server *srv, uint64_t token);

#endif
