/* supervise.c - a tiny service manager that restarts a command whenever it exits.
 *
 *   supervise [--delay MS] [--max N] -- CMD ARGS...
 *
 * It starts CMD, waits for it, and starts it again MS milliseconds (default 200) after each
 * exit, forever or until N starts. Per child it prints, line-buffered:
 *   start PID
 *   exit PID signal NAME            killed by a signal (NAME as in SEGV, ABRT, TERM)
 *   exit PID status N               exited with status N
 * On SIGTERM (or SIGINT) it forwards the signal to the running child, waits for it, prints its
 * exit and exits 0.
 *
 * Why: with crasher it makes a crash loop, the way systemd's Restart=always would. It is the
 * service manager the agent must not fight: the crash runbook must notice that something
 * restarts the process and leave the restarting to it. Written in C rather than shell so that
 * the pids and the timing are deterministic.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t child_pid, stopping;

static void on_stop(int sig)
{
	stopping = sig;
	if (child_pid > 0)
		kill(child_pid, sig);
}

/* Sleeps ms milliseconds, or less if a stop signal arrives. */
static void delay_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (!stopping && nanosleep(&ts, &ts) && errno == EINTR)
		;
}

int main(int argc, char **argv)
{
	long delay = 200, max = 0, starts = 0;
	struct sigaction sa;
	sigset_t stop_set, old_set;
	char **cmd = NULL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--delay") && i + 1 < argc) {
			delay = atol(argv[++i]);
		} else if (!strcmp(argv[i], "--max") && i + 1 < argc) {
			max = atol(argv[++i]);
		} else if (!strcmp(argv[i], "--") && i + 1 < argc) {
			cmd = argv + i + 1;
			break;
		} else {
			break;
		}
	}
	if (!cmd || delay < 0 || max < 0) {
		fprintf(stderr, "usage: supervise [--delay MS] [--max N] -- CMD ARGS...\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigemptyset(&stop_set);
	sigaddset(&stop_set, SIGTERM);
	sigaddset(&stop_set, SIGINT);

	while (!stopping && (!max || starts < max)) {
		int status;
		pid_t pid;

		/* Blocked across fork so that a stop signal is never lost between fork and exec. */
		sigprocmask(SIG_BLOCK, &stop_set, &old_set);
		fflush(stdout);
		pid = fork();
		if (pid < 0) {
			perror("supervise: fork");
			return 1;
		}
		if (pid == 0) {
			signal(SIGTERM, SIG_DFL);
			signal(SIGINT, SIG_DFL);
			sigprocmask(SIG_SETMASK, &old_set, NULL);
			execvp(cmd[0], cmd);
			fprintf(stderr, "supervise: cannot run '%s': %s\n", cmd[0],
				strerror(errno));
			_exit(127);
		}
		child_pid = pid;
		starts++;
		printf("start %d\n", (int)pid);
		sigprocmask(SIG_SETMASK, &old_set, NULL);
		if (stopping)
			kill(pid, stopping);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		child_pid = 0;
		if (WIFSIGNALED(status)) {
			const char *name = sigabbrev_np(WTERMSIG(status));

			if (name)
				printf("exit %d signal %s\n", (int)pid, name);
			else
				printf("exit %d signal %d\n", (int)pid, WTERMSIG(status));
		} else {
			printf("exit %d status %d\n", (int)pid, WEXITSTATUS(status));
		}
		if (stopping || (max && starts >= max))
			break;
		delay_ms(delay);
	}
	return 0;
}
