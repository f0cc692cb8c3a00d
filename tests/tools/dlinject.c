/* dlinject.c - loads a shared library into a running process with act_inject_dlopen().
 *
 *   dlinject [-t TIMEOUT_MS] PID PATH
 *
 * dlopen and dlerror are resolved in the process with obs_sym_find() in libc.so.6 (glibc 2.34
 * and later export both from there), as the daemon does; dlerror's address lets the actuator
 * report why a load failed. Prints one line of figures and the actuator's note or reason:
 *   result rc=R handle=0xH tid=T syscall=N stops=S signals=G away_us=A stop_us=P call_us=C
 *   why TEXT
 * (syscall -1: the thread was running user code; away: the thread's absence from its own
 * code, interrupt to detach; stop: of that, until it reached its stop; call: dlopen()
 * itself). Exit 0 when act_inject_dlopen() returned
 * 0 (loaded, or already loaded), 1 on any failure, 2 on usage.
 */
#include <getopt.h>
#include <inttypes.h>

#include "actuate/actuate.h"
#include "actuate/internal.h"
#include "lib/util.h"
#include "observe/symbolize.h"

static void usage(void)
{
	fprintf(stderr, "usage: dlinject [-t TIMEOUT_MS] PID PATH\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct act_inject_info info = {0};
	struct obs_symbolizer *sym = NULL;
	struct obs_sym_addr a, e;
	char why[ACT_WHY_MAX];
	unsigned timeout_ms = 0;
	uint64_t handle = 0;
	pid_t pid;
	int opt, r;

	while ((opt = getopt(argc, argv, "t:")) != -1) {
		if (opt == 't')
			timeout_ms = (unsigned)strtoul(optarg, NULL, 10);
		else
			usage();
	}
	if (argc - optind != 2)
		usage();
	pid = (pid_t)atoi(argv[optind]);
	r = obs_sym_new(NULL, &sym);
	if (r) {
		fprintf(stderr, "dlinject: cannot make a symbolizer: %s\n", strerror(-r));
		return 1;
	}
	r = obs_sym_find(sym, pid, "libc.so.6", "dlopen", &a);
	if (r) {
		fprintf(stderr, "dlinject: cannot find dlopen in libc.so.6 of process %d: %s\n",
			(int)pid, strerror(-r));
		obs_sym_free(sym);
		return 1;
	}
	if (!obs_sym_find(sym, pid, "libc.so.6", "dlerror", &e))
		info.dlerror_addr = e.addr;
	obs_sym_free(sym);

	r = act_inject_dlopen_info(pid, a.addr, argv[optind + 1], timeout_ms, &handle, &info, why,
				   sizeof(why));
	printf("result rc=%d handle=0x%" PRIx64 " tid=%d syscall=%ld stops=%u signals=%u "
	       "away_us=%.1f stop_us=%.1f call_us=%.1f\n",
	       r, handle, (int)info.tid, info.syscall, info.stops, info.signals,
	       info.away_ns / 1000.0, info.stop_ns / 1000.0, info.call_ns / 1000.0);
	printf("why %s\n", why);
	return r ? 1 : 0;
}
