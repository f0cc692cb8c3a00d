/* altlib.c - the patch library of the dlopen-injection test (issue 6, item 3): what an operator
 * would supply, an alternative of dlhost's hot_fn by the naming convention FN__alt_NAME.
 *
 * Built by the Makefile as build/workloads/libaltlib.so (gcc -shared -fPIC), not as a
 * program. Its constructor allocates and frees, so that the injected dlopen() runs code of
 * the library that takes malloc's locks while dlhost's own allocator thread churns. When the
 * process's environment holds ALTLIB_SLEEP_MS=N, the constructor then sleeps N ms (however
 * often a signal interrupts it), so that a test can send signals during the call or let it
 * outlast the injector's timeout; with ALTLIB_CRASH=1 it writes through a null pointer (a
 * library that faults while it loads).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

volatile int altlib_loaded, altlib_byte;
static int *volatile nowhere; /* NULL */

__attribute__((constructor)) static void altlib_init(void)
{
	const char *s = getenv("ALTLIB_SLEEP_MS");
	char *p = malloc(4096);

	if (p) {
		memset(p, 1, 4096);
		altlib_byte = p[4095];
		free(p);
	}
	if (getenv("ALTLIB_CRASH"))
		*nowhere = 1;
	if (s) {
		long ms = strtol(s, NULL, 10);
		struct timespec t = {ms / 1000, ms % 1000 * 1000000};

		while (nanosleep(&t, &t) && errno == EINTR)
			;
	}
	altlib_loaded = 1;
}

/* The same result as dlhost's hot_fn, two bytes a step. */
uint64_t hot_fn__alt_lib(const uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t h = 0xcbf29ce484222325ull ^ seed;
	size_t i = 0;

	for (; i + 2 <= n; i += 2) {
		h = (h ^ p[i]) * 0x100000001b3ull;
		h = (h ^ p[i + 1]) * 0x100000001b3ull;
	}
	for (; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}
