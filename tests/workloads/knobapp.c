/* knobapp.c - an application with a setting in a file, for the tuning tests.
 *
 *   knobapp FILE BAD_ABOVE [BAD_BELOW]
 *
 * Ten times a second it reads the integer in FILE (its "workers" setting; 1 when the file is
 * missing or empty) and does 200 syscalls: getppid(), except that when the setting is above
 * BAD_ABOVE or below BAD_BELOW (default 0) half of them are close(-1), which fails with EBADF
 * (an error to homeostat's fitness). So a tuner that raises the setting past BAD_ABOVE makes
 * the application worse at once, one that raises it past BAD_BELOW makes it better, and a
 * setting in a file the application does not read has no effect at all.
 * It prints "setting N" whenever the value it read changes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long read_setting(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = 1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = 1;
		fclose(f);
	}
	return v;
}

int main(int argc, char **argv)
{
	const struct timespec period = {0, 100 * 1000 * 1000};
	long bad_above, bad_below = 0, last = -1;

	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: knobapp FILE BAD_ABOVE [BAD_BELOW]\n");
		return 64;
	}
	bad_above = atol(argv[2]);
	if (argc == 4)
		bad_below = atol(argv[3]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (;;) {
		long v = read_setting(argv[1]);

		if (v != last)
			printf("setting %ld\n", v);
		last = v;
		for (int i = 0; i < 200; i++) {
			if ((v > bad_above || v < bad_below) && i % 2)
				syscall(SYS_close, -1);
			else
				syscall(SYS_getppid);
		}
		nanosleep(&period, NULL);
	}
}
