/* lserver.c - a slow TCP server and a bursty client, for the listen-overflow runbook.
 *
 *   lserver serve --port P [--delay MS]
 *       listen(backlog 4096, capped by net.core.somaxconn at that moment), then accept one
 *       connection every MS milliseconds (default 20) and close it
 *   lserver burst --port P [--n N] [--every MS] [--seconds T]
 *       every MS milliseconds (default 1000) open N connections to 127.0.0.1:P at once
 *       (default 64), non-blocking, and time each until it is established or 3 s passed
 *
 * Output on stdout, line-buffered: "ready" once listening or starting; the client prints, per
 * burst, "burst n N p50_ms X p99_ms Y slow S failed F": S connections took over 500 ms (a
 * dropped SYN is retransmitted after 1 s), F did not connect within 3 s.
 *
 * Why: with a small somaxconn the burst overflows the accept queue, the kernel counts
 * TcpExt ListenOverflows and clients wait a second for their SYN to be retransmitted; once
 * somaxconn is raised and the server restarted (the cap is read at listen()), no burst
 * overflows. Run the client under another name (a copy of this binary) so that it is not a
 * member of the server's target.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BURST 1024

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void sleep_ms(double ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)((ms - (time_t)(ms / 1000) * 1000) * 1e6)};

	nanosleep(&ts, NULL);
}

static int serve(int port, double delay)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4096) < 0) {
		perror("lserver: listen");
		return 1;
	}
	printf("ready\n");
	for (;;) {
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

		if (c >= 0)
			close(c);
		sleep_ms(delay);
	}
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return (a > b) - (a < b);
}

static void burst(int port, int n)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	static struct pollfd pfd[MAX_BURST];
	static double done[MAX_BURST], lat[MAX_BURST];
	double t0 = now_ms();
	int left = 0, nlat = 0, slow = 0, failed = 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

		done[i] = -1;
		pfd[i].fd = fd;
		pfd[i].events = POLLOUT;
		if (fd < 0)
			continue;
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			done[i] = now_ms() - t0;
		else if (errno == EINPROGRESS)
			left++;
	}
	while (left > 0 && now_ms() - t0 < 3000) {
		int r = poll(pfd, n, 50);

		for (int i = 0; r > 0 && i < n; i++) {
			if (done[i] >= 0 || pfd[i].fd < 0 || !pfd[i].revents)
				continue;
			int err = 0;
			socklen_t len = sizeof(err);

			getsockopt(pfd[i].fd, SOL_SOCKET, SO_ERROR, &err, &len);
			done[i] = err ? -2 : now_ms() - t0;
			pfd[i].fd = -pfd[i].fd - 1; /* poll ignores negative fds */
			left--;
		}
	}
	for (int i = 0; i < n; i++) {
		int fd = pfd[i].fd < -1 ? -pfd[i].fd - 1 : pfd[i].fd;

		if (done[i] >= 0) {
			lat[nlat++] = done[i];
			slow += done[i] > 500;
		} else {
			failed++;
		}
		if (fd >= 0)
			close(fd);
	}
	qsort(lat, nlat, sizeof(lat[0]), cmp_double);
	printf("burst n %d p50_ms %.1f p99_ms %.1f slow %d failed %d\n", n,
	       nlat ? lat[nlat / 2] : -1.0, nlat ? lat[(nlat * 99 + 99) / 100 - 1] : -1.0, slow,
	       failed);
}

int main(int argc, char **argv)
{
	int port = 0, n = 64;
	double delay = 20, every = 1000, seconds = 0, t0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		goto usage;
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--port") && i + 1 < argc)
			port = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--delay") && i + 1 < argc)
			delay = atof(argv[++i]);
		else if (!strcmp(argv[i], "--n") && i + 1 < argc)
			n = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--every") && i + 1 < argc)
			every = atof(argv[++i]);
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = atof(argv[++i]);
		else
			goto usage;
	}
	if (port <= 0 || port > 65535 || n < 1 || n > MAX_BURST)
		goto usage;
	if (!strcmp(argv[1], "serve"))
		return serve(port, delay);
	if (strcmp(argv[1], "burst"))
		goto usage;
	printf("ready\n");
	t0 = now_ms();
	while (seconds <= 0 || now_ms() - t0 < seconds * 1000) {
		double start = now_ms();

		burst(port, n);
		if (now_ms() - start < every)
			sleep_ms(every - (now_ms() - start));
	}
	return 0;
usage:
	fprintf(stderr, "usage: lserver serve --port P [--delay MS] | burst --port P [--n N] "
			"[--every MS] [--seconds T]\n");
	return 64;
}
