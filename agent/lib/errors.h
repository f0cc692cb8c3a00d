/* errors.h - a list of "path:line:col: message" diagnostics.
 *
 * Configuration loaders report every error, not the first (OpenNTPD parse.y): they append
 * here and go on. The caller prints the list, in order, and refuses the file when it is not
 * empty. Messages follow STYLE.md: lowercase, the failure first, the subject in quotes.
 */
#ifndef HS_ERRORS_H
#define HS_ERRORS_H

#include <stddef.h>

#include "util.h"

struct hs_errors {
	char **msgs;
	size_t n;
	size_t cap;
};

/* Appends "path:line:col: message"; line and col are 1-based. Returns 0 or -ENOMEM. */
int hs_errors_add(struct hs_errors *e, const char *path, unsigned line, unsigned col,
		  const char *fmt, ...) HS_PRINTF(5, 6);
/* For errors of the whole file (open, owner, mode, empty): "path:1:1: message", so that
 * every diagnostic has the one shape editors and scripts parse. */
int hs_errors_add_file(struct hs_errors *e, const char *path, const char *fmt, ...) HS_PRINTF(3, 4);
void hs_errors_print(const struct hs_errors *e, FILE *f);
void hs_errors_clear(struct hs_errors *e);

#endif
