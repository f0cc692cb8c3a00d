/* util.h - small helpers shared by every module of homeostat.
 *
 * Cleanup attributes for locals (systemd style), array sizes, and string helpers that
 * never overflow. Header-only so that unit tests and both binaries share it freely.
 */
#ifndef HS_UTIL_H
#define HS_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define HS_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define HS_UNUSED	__attribute__((unused))

static inline void hs_freep(void *p)
{
	free(*(void **)p);
}

static inline void hs_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

static inline void hs_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

#define _cleanup_(f)	 __attribute__((cleanup(f)))
#define _cleanup_free_	 _cleanup_(hs_freep)
#define _cleanup_close_	 _cleanup_(hs_closep)
#define _cleanup_fclose_ _cleanup_(hs_fclosep)

/* Take ownership away from a _cleanup_ local. */
#define TAKE_PTR(p)                                                                                \
	({                                                                                         \
		__typeof__(p) _p = (p);                                                            \
		(p) = NULL;                                                                        \
		_p;                                                                                \
	})
#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _fd = (fd);                                                                    \
		(fd) = -1;                                                                         \
		_fd;                                                                               \
	})

/* Copy at most size-1 bytes and always terminate; returns -ENAMETOOLONG on truncation. */
static inline int hs_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);

	if (size == 0)
		return -ENAMETOOLONG;
	if (n >= size) {
		memcpy(dst, src, size - 1);
		dst[size - 1] = '\0';
		return -ENAMETOOLONG;
	}
	memcpy(dst, src, n + 1);
	return 0;
}

static inline bool streq(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

#endif
