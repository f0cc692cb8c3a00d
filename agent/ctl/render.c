/* render.c - text and JSON output of a control response (formats described in render.h).
 *
 * The response comes from another process: its strings are treated as untrusted bytes. Text
 * output replaces control characters and invalid UTF-8 with '?', so a process name cannot
 * move the cursor or retitle the terminal; JSON output is always valid UTF-8 JSON.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/render.h"

/* Decodes one UTF-8 sequence at s (NUL-terminated): its length, or 0 when it is invalid
 * (overlong, surrogate, above U+10FFFF, truncated, or a stray continuation byte). */
static size_t utf8_next(const unsigned char *s, uint32_t *cp)
{
	size_t n;
	uint32_t c, min;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0) {
		n = 2, c = s[0] & 0x1f, min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3, c = s[0] & 0x0f, min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4, c = s[0] & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

static bool is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp < 0xa0);
}

void ctl_text_string(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)(str ? str : "");
	uint32_t cp;
	size_t n;

	while (*s) {
		n = utf8_next(s, &cp);
		if (n == 0 || is_control(cp)) {
			fputc('?', f);
			s += n ? n : 1;
			continue;
		}
		fwrite(s, 1, n, f);
		s += n;
	}
}

size_t ctl_text_width(const char *str)
{
	const unsigned char *s = (const unsigned char *)(str ? str : "");
	size_t width = 0, n;
	uint32_t cp;

	while (*s) {
		n = utf8_next(s, &cp);
		s += n ? n : 1;
		width++;
	}
	return width;
}

void ctl_json_string(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)(str ? str : "");
	uint32_t cp;
	size_t n;

	fputc('"', f);
	while (*s) {
		n = utf8_next(s, &cp);
		if (n == 0) {
			fputs("\\ufffd", f);
			s++;
			continue;
		}
		switch (cp) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\b':
			fputs("\\b", f);
			break;
		case '\f':
			fputs("\\f", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (cp < 0x20 || cp == 0x7f)
				fprintf(f, "\\u%04x", (unsigned)cp);
			else
				fwrite(s, 1, n, f);
		}
		s += n;
	}
	fputc('"', f);
}

void ctl_format_real(char *buf, size_t size, double v)
{
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, size, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			return;
	}
}

/* A cell as text, in buf; NULL cells are "-". */
static const char *cell_text(const struct ctl_cell *c, char *buf, size_t size)
{
	switch (c->type) {
	case CTL_COL_STRING:
		return c->s;
	case CTL_COL_INT:
		snprintf(buf, size, "%" PRId64, c->i);
		return buf;
	case CTL_COL_REAL:
		if (isnan(c->r))
			return "nan";
		if (isinf(c->r))
			return c->r > 0 ? "inf" : "-inf";
		snprintf(buf, size, "%.6g", c->r);
		return buf;
	case CTL_COL_NULL:
		break;
	}
	return "-";
}

static void pad(FILE *f, size_t n)
{
	while (n--)
		fputc(' ', f);
}

static void text_kv(FILE *f, const struct ctl_table *t)
{
	size_t kw = 0;
	char buf[64];

	for (uint32_t c = 0; c < t->ncols; c++)
		if (ctl_text_width(t->cols[c]) > kw)
			kw = ctl_text_width(t->cols[c]);
	for (uint32_t c = 0; c < t->ncols; c++) {
		fputs("  ", f);
		ctl_text_string(f, t->cols[c]);
		pad(f, kw - ctl_text_width(t->cols[c]) + 2);
		ctl_text_string(f, cell_text(ctl_table_cell(t, 0, c), buf, sizeof(buf)));
		fputc('\n', f);
	}
}

static void text_cell(FILE *f, const char *s, size_t width, bool right, bool last)
{
	size_t w = ctl_text_width(s);

	if (right)
		pad(f, width - w);
	ctl_text_string(f, s);
	if (!right && !last)
		pad(f, width - w);
}

static int text_rows(FILE *f, const struct ctl_table *t)
{
	_cleanup_free_ size_t *width = calloc(t->ncols, sizeof(*width));
	char buf[64], head[CTL_NAME_MAX + 1];

	if (!width)
		return -ENOMEM;
	for (uint32_t c = 0; c < t->ncols; c++) {
		width[c] = ctl_text_width(t->cols[c]);
		for (uint32_t r = 0; r < t->nrows; r++) {
			size_t w =
			    ctl_text_width(cell_text(ctl_table_cell(t, r, c), buf, sizeof(buf)));

			if (w > width[c])
				width[c] = w;
		}
	}
	fputs("  ", f);
	for (uint32_t c = 0; c < t->ncols; c++) {
		size_t i;

		for (i = 0; t->cols[c][i] && i < CTL_NAME_MAX; i++)
			head[i] = t->cols[c][i] >= 'a' && t->cols[c][i] <= 'z' ? t->cols[c][i] - 32
									       : t->cols[c][i];
		head[i] = '\0';
		if (c)
			fputs("  ", f);
		text_cell(f, head, width[c], t->types[c] != CTL_COL_STRING, c + 1 == t->ncols);
	}
	fputc('\n', f);
	for (uint32_t r = 0; r < t->nrows; r++) {
		fputs("  ", f);
		for (uint32_t c = 0; c < t->ncols; c++) {
			if (c)
				fputs("  ", f);
			text_cell(f, cell_text(ctl_table_cell(t, r, c), buf, sizeof(buf)), width[c],
				  t->types[c] != CTL_COL_STRING, c + 1 == t->ncols);
		}
		fputc('\n', f);
	}
	return 0;
}

int ctl_render_text(FILE *f, const struct ctl_response *resp)
{
	bool first = true;
	int r;

	if (resp->message && resp->message[0]) {
		ctl_text_string(f, resp->message);
		fputc('\n', f);
		first = false;
	}
	for (uint32_t i = 0; i < resp->ntables; i++) {
		const struct ctl_table *t = &resp->tables[i];

		if (!first)
			fputc('\n', f);
		first = false;
		ctl_text_string(f, t->name);
		if (t->nrows == 0) {
			fputs(": none\n", f);
			continue;
		}
		fputs(":\n", f);
		if (t->nrows == 1) {
			text_kv(f, t);
			continue;
		}
		r = text_rows(f, t);
		if (r < 0)
			return r;
	}
	return ferror(f) ? -EIO : 0;
}

static void json_cell(FILE *f, const struct ctl_cell *c)
{
	char buf[64];

	switch (c->type) {
	case CTL_COL_STRING:
		ctl_json_string(f, c->s);
		return;
	case CTL_COL_INT:
		fprintf(f, "%" PRId64, c->i);
		return;
	case CTL_COL_REAL:
		if (!isfinite(c->r))
			break;
		ctl_format_real(buf, sizeof(buf), c->r);
		fputs(buf, f);
		return;
	case CTL_COL_NULL:
		break;
	}
	fputs("null", f);
}

int ctl_render_json(FILE *f, const struct ctl_response *resp)
{
	fprintf(f, "{\n  \"status\": %" PRId32 ",\n  \"message\": ", resp->status);
	ctl_json_string(f, resp->message);
	for (uint32_t i = 0; i < resp->ntables; i++) {
		const struct ctl_table *t = &resp->tables[i];

		fputs(",\n  ", f);
		ctl_json_string(f, t->name);
		fputs(": [", f);
		for (uint32_t r = 0; r < t->nrows; r++) {
			fputs(r ? ",\n    {" : "\n    {", f);
			for (uint32_t c = 0; c < t->ncols; c++) {
				if (c)
					fputs(", ", f);
				ctl_json_string(f, t->cols[c]);
				fputs(": ", f);
				json_cell(f, ctl_table_cell(t, r, c));
			}
			fputc('}', f);
		}
		fputs(t->nrows ? "\n  ]" : "]", f);
	}
	fputs("\n}\n", f);
	return ferror(f) ? -EIO : 0;
}
