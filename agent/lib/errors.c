/* errors.c - the diagnostic list of errors.h. */
#include <stdarg.h>

#include "errors.h"

static int errors_push(struct hs_errors *e, char *msg)
{
	if (!msg)
		return -ENOMEM;
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 8;
		char **m = realloc(e->msgs, cap * sizeof(*m));

		if (!m) {
			free(msg);
			return -ENOMEM;
		}
		e->msgs = m;
		e->cap = cap;
	}
	e->msgs[e->n++] = msg;
	return 0;
}

static char *vformat(const char *prefix, const char *fmt, va_list ap)
{
	char *body = NULL, *out = NULL;

	if (vasprintf(&body, fmt, ap) < 0)
		return NULL;
	if (asprintf(&out, "%s%s", prefix, body) < 0)
		out = NULL;
	free(body);
	return out;
}

int hs_errors_add(struct hs_errors *e, const char *path, unsigned line, unsigned col,
		  const char *fmt, ...)
{
	char prefix[4096 + 32];
	va_list ap;
	char *msg;

	snprintf(prefix, sizeof(prefix), "%s:%u:%u: ", path, line, col);
	va_start(ap, fmt);
	msg = vformat(prefix, fmt, ap);
	va_end(ap);
	return errors_push(e, msg);
}

int hs_errors_add_file(struct hs_errors *e, const char *path, const char *fmt, ...)
{
	char prefix[4096 + 8];
	va_list ap;
	char *msg;

	snprintf(prefix, sizeof(prefix), "%s:1:1: ", path);
	va_start(ap, fmt);
	msg = vformat(prefix, fmt, ap);
	va_end(ap);
	return errors_push(e, msg);
}

void hs_errors_print(const struct hs_errors *e, FILE *f)
{
	for (size_t i = 0; i < e->n; i++)
		fprintf(f, "%s\n", e->msgs[i]);
}

void hs_errors_clear(struct hs_errors *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->msgs[i]);
	free(e->msgs);
	e->msgs = NULL;
	e->n = e->cap = 0;
}
