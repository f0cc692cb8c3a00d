/* schema.c - the table-driven converter of schema.h.
 *
 * Two passes over each mapping: first the keys in file order (unknown keys, wrong types and
 * ranges are reported where they are written), then the table (missing required keys at the
 * mapping, defaults for the rest). A field is written once, so defaults never leak. Recursion
 * follows the static tables, never the input: nested structs are at most as deep as the
 * schema, and the YAML tree below is already bounded by YT_MAX_DEPTH.
 */
#include <math.h>
#include <stdarg.h>

#include "schema.h"

#define FIELD_PTR(obj, off) ((void *)((char *)(obj) + (off)))

int sch_error(struct sch_ctx *ctx, const struct yt_node *at, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	yt_sanitize(msg);
	if (at)
		r = hs_errors_add(ctx->errs, ctx->path, at->line, at->col, "%s", msg);
	else
		r = hs_errors_add_file(ctx->errs, ctx->path, "%s", msg);
	if (r < 0 && !ctx->syserr)
		ctx->syserr = r;
	ctx->nerr++;
	return -EINVAL;
}

bool sch_ok(const struct sch_ctx *ctx, const char *name)
{
	if (!ctx->cur)
		return false;
	for (size_t i = 0; i < ctx->cur->nfields; i++)
		if (streq(ctx->cur->fields[i].name, name))
			return ctx->cur_ok & (1ULL << i);
	return false;
}

/* ---- scalar syntax ---- */

int sch_parse_int(const char *s, int64_t *out)
{
	const char *p = s;
	int64_t v = 0;
	bool neg = false;

	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	if (!*p)
		return -EINVAL;
	for (; *p; p++) {
		int d;

		if (*p < '0' || *p > '9')
			return -EINVAL;
		d = *p - '0';
		if (v > (INT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*out = neg ? -v : v;
	return 0;
}

int sch_parse_number(const char *s, double *out)
{
	char *end;
	double v;

	if (!*s || strspn(s, "0123456789+-.eE") != strlen(s))
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (*end || end == s)
		return -EINVAL;
	if (errno == ERANGE || !isfinite(v))
		return -ERANGE;
	*out = v;
	return 0;
}

int sch_parse_bool(const char *s, bool *out)
{
	if (streq(s, "true")) {
		*out = true;
		return 0;
	}
	if (streq(s, "false")) {
		*out = false;
		return 0;
	}
	return -EINVAL;
}

static const struct {
	const char *unit;
	int64_t ns;
} duration_units[] = {
    {"ns", 1LL},
    {"us", 1000LL},
    {"ms", 1000000LL},
    {"s", 1000000000LL},
    {"m", 60LL * 1000000000LL},
    {"h", 3600LL * 1000000000LL},
    {"d", 86400LL * 1000000000LL},
};

/* "1h30m", "500ms", "0" into nanoseconds. */
static int parse_duration_ns(const char *s, int64_t *out)
{
	const char *p = s;
	int64_t total = 0;

	if (streq(s, "0")) {
		*out = 0;
		return 0;
	}
	if (!*p)
		return -EINVAL;
	while (*p) {
		int64_t v = 0, mult = 0;
		size_t ulen = 0;

		if (*p < '0' || *p > '9')
			return -EINVAL;
		for (; *p >= '0' && *p <= '9'; p++) {
			if (v > (INT64_MAX - 9) / 10)
				return -ERANGE;
			v = v * 10 + (*p - '0');
		}
		while (p[ulen] >= 'a' && p[ulen] <= 'z')
			ulen++;
		for (size_t i = 0; i < ARRAY_SIZE(duration_units); i++) {
			if (strlen(duration_units[i].unit) == ulen &&
			    !strncmp(p, duration_units[i].unit, ulen)) {
				mult = duration_units[i].ns;
				break;
			}
		}
		if (!mult)
			return -EINVAL;
		p += ulen;
		if (v > (INT64_MAX - total) / mult)
			return -ERANGE;
		total += v * mult;
	}
	*out = total;
	return 0;
}

int sch_parse_duration(const char *s, int64_t *ms)
{
	int64_t ns;
	int r = parse_duration_ns(s, &ns);

	if (r < 0)
		return r;
	if (ns % 1000000)
		return -EINVAL;
	*ms = ns / 1000000;
	return 0;
}

int sch_parse_duration_ms(const char *s, double *ms)
{
	int64_t ns;
	int r = parse_duration_ns(s, &ns);

	if (r < 0)
		return r;
	*ms = (double)ns / 1e6;
	return 0;
}

int sch_parse_percent(const char *s, double *fraction)
{
	size_t n = strlen(s);
	char num[64];
	double v;
	int r;

	if (n < 2 || n >= sizeof(num) || s[n - 1] != '%')
		return -EINVAL;
	memcpy(num, s, n - 1);
	num[n - 1] = '\0';
	r = sch_parse_number(num, &v);
	if (r < 0)
		return r;
	*fraction = v / 100.0;
	return 0;
}

static const struct {
	const char *unit;
	uint64_t mult;
} byte_units[] = {
    {"", 1ULL},	       {"B", 1ULL},	    {"K", 1ULL << 10}, {"KiB", 1ULL << 10},
    {"M", 1ULL << 20}, {"MiB", 1ULL << 20}, {"G", 1ULL << 30}, {"GiB", 1ULL << 30},
    {"T", 1ULL << 40}, {"TiB", 1ULL << 40},
};

int sch_parse_bytes(const char *s, uint64_t *out)
{
	const char *p = s;
	uint64_t v = 0;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	for (size_t i = 0; i < ARRAY_SIZE(byte_units); i++) {
		if (streq(p, byte_units[i].unit)) {
			if (v > UINT64_MAX / byte_units[i].mult)
				return -ERANGE;
			*out = v * byte_units[i].mult;
			return 0;
		}
	}
	return -EINVAL;
}

const char *sch_format_duration(int64_t ms, char *buf, size_t size)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};

	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (ms != 0 && ms % units[i].ms == 0) {
			snprintf(buf, size, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
			return buf;
		}
	}
	snprintf(buf, size, ms ? "%lldms" : "%lld", (long long)ms);
	return buf;
}

const char *sch_format_bytes(uint64_t v, char *buf, size_t size)
{
	static const char *const units[] = {"TiB", "GiB", "MiB", "KiB"};

	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		uint64_t m = 1ULL << (10 * (4 - i));

		if (v != 0 && v % m == 0) {
			snprintf(buf, size, "%llu%s", (unsigned long long)(v / m), units[i]);
			return buf;
		}
	}
	snprintf(buf, size, "%llu", (unsigned long long)v);
	return buf;
}

const char *sch_join_names(const char *const *names, char *buf, size_t size)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; names[i] && o < size; i++)
		o += (size_t)snprintf(buf + o, size - o, "%s%s", i ? ", " : "", names[i]);
	return buf;
}

/* ---- conversion ---- */

static const char *type_phrase(const struct sch_field *f, char *buf, size_t size)
{
	switch (f->type) {
	case SCH_STRING:
		return "a string";
	case SCH_INT:
		return "an integer";
	case SCH_NUMBER:
		return "a number";
	case SCH_BOOL:
		return "true or false";
	case SCH_ENUM: {
		char names[512];

		snprintf(buf, size, "one of %s", sch_join_names(f->names, names, sizeof(names)));
		return buf;
	}
	case SCH_DURATION:
		return "a duration such as 500ms, 30s, 5m or 1h";
	case SCH_PERCENT:
		return "a percentage such as 0.1% or 20%";
	case SCH_BYTES:
		return "a byte size such as 4096, 64KiB, 512MiB or 1GiB";
	case SCH_BYTES_OR_PERCENT:
		return "a byte size such as 512MiB or a percentage such as 20%";
	case SCH_STRING_LIST:
	case SCH_STRUCT_LIST:
		return "a list";
	case SCH_STRUCT:
		return "a mapping";
	case SCH_CUSTOM:
		break;
	}
	return "a value";
}

static int type_error(struct sch_ctx *ctx, const struct sch_field *f, const struct yt_node *n,
		      const char *subject)
{
	char tb[600], db[64];

	return sch_error(ctx, n, "%s must be %s, not %s", subject, type_phrase(f, tb, sizeof(tb)),
			 yt_describe(n, db, sizeof(db)));
}

static bool has_range(const struct sch_field *f)
{
	return f->max > f->min;
}

static bool has_frange(const struct sch_field *f)
{
	return f->fmax > f->fmin;
}

static int range_error_i(struct sch_ctx *ctx, const struct sch_field *f, const struct yt_node *n,
			 const char *subject)
{
	char a[32], b[32], db[64];
	const char *desc = yt_describe(n, db, sizeof(db));

	switch (f->type) {
	case SCH_DURATION:
		return sch_error(ctx, n, "%s must be between %s and %s, not %s", subject,
				 sch_format_duration(f->min, a, sizeof(a)),
				 sch_format_duration(f->max, b, sizeof(b)), desc);
	case SCH_BYTES:
	case SCH_BYTES_OR_PERCENT:
		return sch_error(ctx, n, "%s must be between %s and %s, not %s", subject,
				 sch_format_bytes((uint64_t)f->min, a, sizeof(a)),
				 sch_format_bytes((uint64_t)f->max, b, sizeof(b)), desc);
	default:
		return sch_error(ctx, n, "%s must be between %lld and %lld, not %s", subject,
				 (long long)f->min, (long long)f->max, desc);
	}
}

static int range_error_f(struct sch_ctx *ctx, const struct sch_field *f, const struct yt_node *n,
			 const char *subject)
{
	char db[64];
	const char *desc = yt_describe(n, db, sizeof(db));

	if (f->type == SCH_NUMBER)
		return sch_error(ctx, n, "%s must be between %g and %g, not %s", subject, f->fmin,
				 f->fmax, desc);
	return sch_error(ctx, n, "%s must be between %g%% and %g%%, not %s", subject,
			 f->fmin * 100.0, f->fmax * 100.0, desc);
}

/* Converts the scalar text of n (or of a default when n is NULL) into dst. */
static int convert_scalar(struct sch_ctx *ctx, const struct sch_field *f, const struct yt_node *n,
			  const char *text, const char *subject, void *dst)
{
	int64_t i64 = 0;
	uint64_t u64 = 0;
	double d = 0;
	int r;

	switch (f->type) {
	case SCH_STRING: {
		size_t len = strlen(text), max = f->max > 0 ? (size_t)f->max : YT_MAX_SCALAR;
		char *s;

		if (len == 0 && (f->min > 0 || f->required))
			return sch_error(ctx, n, "%s must not be empty", subject);
		if (len < (size_t)(f->min > 0 ? f->min : 0))
			return sch_error(ctx, n, "%s is too short (%zu bytes), at least %lld",
					 subject, len, (long long)f->min);
		if (len > max)
			return sch_error(ctx, n, "%s is too long (%zu bytes), at most %zu", subject,
					 len, max);
		s = strdup(text);
		if (!s) {
			ctx->syserr = -ENOMEM;
			return -ENOMEM;
		}
		free(*(char **)dst);
		*(char **)dst = s;
		return 0;
	}
	case SCH_INT:
		r = sch_parse_int(text, &i64);
		if (r == -EINVAL)
			return type_error(ctx, f, n, subject);
		if (r < 0 || (has_range(f) && (i64 < f->min || i64 > f->max)))
			return range_error_i(ctx, f, n, subject);
		*(int64_t *)dst = i64;
		return 0;
	case SCH_NUMBER:
		r = sch_parse_number(text, &d);
		if (r == -EINVAL)
			return type_error(ctx, f, n, subject);
		if (r < 0 || (has_frange(f) && (d < f->fmin || d > f->fmax)))
			return range_error_f(ctx, f, n, subject);
		*(double *)dst = d;
		return 0;
	case SCH_BOOL:
		if (sch_parse_bool(text, (bool *)dst) < 0)
			return type_error(ctx, f, n, subject);
		return 0;
	case SCH_ENUM:
		for (int k = 0; f->names[k]; k++) {
			if (streq(f->names[k], text)) {
				*(int *)dst = k;
				return 0;
			}
		}
		return type_error(ctx, f, n, subject);
	case SCH_DURATION:
		r = sch_parse_duration(text, &i64);
		if (r == -EINVAL)
			return type_error(ctx, f, n, subject);
		if (r < 0 || (has_range(f) && (i64 < f->min || i64 > f->max)))
			return range_error_i(ctx, f, n, subject);
		*(int64_t *)dst = i64;
		return 0;
	case SCH_PERCENT:
		r = sch_parse_percent(text, &d);
		if (r == -EINVAL)
			return type_error(ctx, f, n, subject);
		if (r < 0 || (has_frange(f) && (d < f->fmin || d > f->fmax)))
			return range_error_f(ctx, f, n, subject);
		*(double *)dst = d;
		return 0;
	case SCH_BYTES:
		r = sch_parse_bytes(text, &u64);
		if (r == -EINVAL)
			return type_error(ctx, f, n, subject);
		if (r < 0 || (has_range(f) && (u64 < (uint64_t)f->min || u64 > (uint64_t)f->max)))
			return range_error_i(ctx, f, n, subject);
		*(uint64_t *)dst = u64;
		return 0;
	case SCH_BYTES_OR_PERCENT: {
		struct sch_amount *a = dst;

		if (strchr(text, '%')) {
			r = sch_parse_percent(text, &d);
			if (r == -EINVAL)
				return type_error(ctx, f, n, subject);
			if (r < 0 || (has_frange(f) && (d < f->fmin || d > f->fmax)))
				return range_error_f(ctx, f, n, subject);
			a->relative = true;
			a->fraction = d;
			a->bytes = 0;
			return 0;
		}
		r = sch_parse_bytes(text, &u64);
		if (r == -EINVAL)
			return type_error(ctx, f, n, subject);
		if (r < 0 || (has_range(f) && (u64 < (uint64_t)f->min || u64 > (uint64_t)f->max)))
			return range_error_i(ctx, f, n, subject);
		a->relative = false;
		a->fraction = 0;
		a->bytes = u64;
		return 0;
	}
	default:
		return type_error(ctx, f, n, subject);
	}
}

static int convert_string_list(struct sch_ctx *ctx, const struct sch_field *f,
			       const struct yt_node *n, void *obj)
{
	char ***arr = FIELD_PTR(obj, f->offset);
	size_t *count = FIELD_PTR(obj, f->count_offset);
	char subject[160];
	int err = 0;

	snprintf(subject, sizeof(subject), "each item of '%s'", f->name);
	*arr = calloc(n->n ? n->n : 1, sizeof(char *));
	if (!*arr) {
		ctx->syserr = -ENOMEM;
		return -ENOMEM;
	}
	*count = 0;
	for (size_t i = 0; i < n->n; i++) {
		const struct yt_node *it = n->items[i];
		struct sch_field sf = *f;
		char *s = NULL;

		sf.type = SCH_STRING;
		if (it->kind == YT_INVALID) {
			err = -EINVAL;
			continue;
		}
		if (it->kind != YT_SCALAR) {
			err = type_error(ctx, &sf, it, subject);
			continue;
		}
		sf.required = true; /* an item may not be empty */
		if (convert_scalar(ctx, &sf, it, it->str, subject, &s) < 0) {
			err = -EINVAL;
			continue;
		}
		(*arr)[(*count)++] = s;
	}
	return err;
}

static int convert_struct_list(struct sch_ctx *ctx, const struct sch_field *f,
			       const struct yt_node *n, void *obj)
{
	void **arr = FIELD_PTR(obj, f->offset);
	size_t *count = FIELD_PTR(obj, f->count_offset);
	int err = 0;

	*arr = calloc(n->n ? n->n : 1, f->sub->size);
	if (!*arr) {
		ctx->syserr = -ENOMEM;
		return -ENOMEM;
	}
	*count = n->n;
	for (size_t i = 0; i < n->n; i++) {
		const struct yt_node *it = n->items[i];
		void *elem = (char *)*arr + i * f->sub->size;
		char db[64];

		if (it->kind == YT_INVALID) {
			err = -EINVAL;
			continue;
		}
		if (it->kind != YT_MAPPING) {
			err = sch_error(ctx, it, "each item of '%s' must be a mapping, not %s",
					f->name, yt_describe(it, db, sizeof(db)));
			continue;
		}
		if (sch_convert(ctx, f->sub, it, elem) < 0)
			err = -EINVAL;
	}
	return err;
}

/* Converts the node n of field f into obj. */
static int convert_field(struct sch_ctx *ctx, const struct sch_field *f, const struct yt_node *n,
			 void *obj)
{
	char subject[160];
	bool null = yt_is_null(n);

	snprintf(subject, sizeof(subject), "'%s'", f->name);
	if (n->kind == YT_INVALID)
		return -EINVAL; /* reported by the parser */

	switch (f->type) {
	case SCH_CUSTOM:
		return 0;
	case SCH_STRUCT:
		if (null)
			return sch_convert(ctx, f->sub, NULL, FIELD_PTR(obj, f->offset));
		if (n->kind != YT_MAPPING)
			return type_error(ctx, f, n, subject);
		return sch_convert(ctx, f->sub, n, FIELD_PTR(obj, f->offset));
	case SCH_STRING_LIST:
	case SCH_STRUCT_LIST:
		if (null)
			return 0;
		if (n->kind != YT_SEQUENCE)
			return type_error(ctx, f, n, subject);
		if (f->max_items && n->n > f->max_items)
			return sch_error(ctx, n, "'%s' has too many items (%zu), at most %zu",
					 f->name, n->n, f->max_items);
		if (f->type == SCH_STRING_LIST)
			return convert_string_list(ctx, f, n, obj);
		return convert_struct_list(ctx, f, n, obj);
	default:
		if (n->kind != YT_SCALAR)
			return type_error(ctx, f, n, subject);
		if (null && f->type == SCH_STRING && !f->required && f->min <= 0)
			return 0;
		if (null && f->type != SCH_STRING)
			return type_error(ctx, f, n, subject);
		return convert_scalar(ctx, f, n, null ? "" : n->str, subject,
				      FIELD_PTR(obj, f->offset));
	}
}

static int apply_default(struct sch_ctx *ctx, const struct sch_field *f, void *obj)
{
	if (f->type == SCH_STRUCT)
		return sch_convert(ctx, f->sub, NULL, FIELD_PTR(obj, f->offset));
	if (!f->def)
		return 0;
	return convert_scalar(ctx, f, NULL, f->def, f->name, FIELD_PTR(obj, f->offset));
}

int sch_convert(struct sch_ctx *ctx, const struct sch_struct *s, const struct yt_node *map,
		void *obj)
{
	uint64_t present = 0, ok = 0;
	size_t nerr = ctx->nerr;
	int r;

	for (size_t i = 0; map && i < map->n; i++) {
		const struct yt_node *key = map->pairs[i].key;
		size_t k;

		for (k = 0; k < s->nfields; k++)
			if (streq(s->fields[k].name, key->str))
				break;
		if (k == s->nfields) {
			sch_error(ctx, key, "unknown key '%s'", key->str);
			continue;
		}
		present |= 1ULL << k;
		if (convert_field(ctx, &s->fields[k], map->pairs[i].value, obj) == 0)
			ok |= 1ULL << k;
	}
	for (size_t k = 0; k < s->nfields; k++) {
		const struct sch_field *f = &s->fields[k];

		if (present & (1ULL << k))
			continue;
		if (f->required && map) {
			sch_error(ctx, map, "missing required key '%s'", f->name);
			continue;
		}
		if (apply_default(ctx, f, obj) == 0)
			ok |= 1ULL << k;
	}
	if (map && s->check) {
		const struct sch_struct *save = ctx->cur;
		uint64_t save_ok = ctx->cur_ok;

		ctx->cur = s;
		ctx->cur_ok = ok;
		r = s->check(ctx, obj, map);
		ctx->cur = save;
		ctx->cur_ok = save_ok;
		if (r < 0 && r != -EINVAL && !ctx->syserr)
			ctx->syserr = r;
	}
	if (ctx->syserr)
		return ctx->syserr;
	return ctx->nerr == nerr ? 0 : -EINVAL;
}

int sch_convert_root(struct sch_ctx *ctx, const struct sch_struct *s, const struct yt_doc *doc,
		     void *obj)
{
	char db[64];

	if (doc->root->kind == YT_INVALID)
		return -EINVAL;
	if (doc->root->kind != YT_MAPPING)
		return sch_error(ctx, doc->root, "the top level must be a mapping, not %s",
				 yt_describe(doc->root, db, sizeof(db)));
	return sch_convert(ctx, s, doc->root, obj);
}

void sch_free(const struct sch_struct *s, void *obj)
{
	if (!obj)
		return;
	for (size_t k = 0; k < s->nfields; k++) {
		const struct sch_field *f = &s->fields[k];
		void *p = FIELD_PTR(obj, f->offset);

		switch (f->type) {
		case SCH_STRING:
			free(*(char **)p);
			*(char **)p = NULL;
			break;
		case SCH_STRING_LIST: {
			char **arr = *(char ***)p;
			size_t n = *(size_t *)FIELD_PTR(obj, f->count_offset);

			for (size_t i = 0; arr && i < n; i++)
				free(arr[i]);
			free(arr);
			*(char ***)p = NULL;
			break;
		}
		case SCH_STRUCT:
			sch_free(f->sub, p);
			break;
		case SCH_STRUCT_LIST: {
			char *arr = *(char **)p;
			size_t n = *(size_t *)FIELD_PTR(obj, f->count_offset);

			for (size_t i = 0; arr && i < n; i++)
				sch_free(f->sub, arr + i * f->sub->size);
			free(arr);
			*(void **)p = NULL;
			break;
		}
		default:
			break;
		}
	}
	if (s->release)
		s->release(obj);
}
