/* schema.h - typed conversion of a YAML tree by static field tables.
 *
 * A configuration section is described by a struct sch_struct: a table of fields, each with
 * its key, type, place in the C struct, default, range and a plain-English doc line. One
 * generic converter walks a mapping against the table: unknown keys, missing required keys,
 * wrong types and out-of-range values are all reported ("'tick' must be a duration such as
 * 500ms, 30s, 5m or 1h, not 'soon'"), with the allowed range, and conversion goes on so that
 * every error is found. Adding a setting is adding a row, not a branch.
 *
 * Storage by type (all owned by the converted struct, released by sch_free()):
 *   SCH_STRING      char *                        (NULL when absent without default)
 *   SCH_INT         int64_t
 *   SCH_NUMBER      double
 *   SCH_BOOL        bool
 *   SCH_ENUM        int, index into names[]
 *   SCH_DURATION    int64_t milliseconds          ("500ms", "30s", "5m", "1h", "1h30m", "0")
 *   SCH_PERCENT     double fraction               ("0.1%" -> 0.001)
 *   SCH_BYTES       uint64_t                      ("4096", "64KiB", "64MiB", "1GiB", "2TiB")
 *   SCH_BYTES_OR_PERCENT struct sch_amount        ("512MiB" or "20%")
 *   SCH_STRING_LIST char ** at offset, size_t count at count_offset
 *   SCH_STRUCT      nested struct at offset (by value)
 *   SCH_STRUCT_LIST sub->size-sized array at offset, size_t count at count_offset
 *   SCH_CUSTOM      nothing: the struct's check hook reads the node itself
 *
 * Ranges: min..max for SCH_INT, SCH_DURATION (ms), SCH_BYTES and the length of SCH_STRING
 * (and of each SCH_STRING_LIST item); fmin..fmax for SCH_NUMBER and SCH_PERCENT (fractions).
 * A range applies when max > min (string length: when max > 0; else at most YT_MAX_SCALAR).
 */
#ifndef HS_SCHEMA_H
#define HS_SCHEMA_H

#include <stdbool.h>
#include <stdint.h>

#include "errors.h"
#include "yamltree.h"

#define SCH_MAX_FIELDS 64

enum sch_type {
	SCH_STRING,
	SCH_INT,
	SCH_NUMBER,
	SCH_BOOL,
	SCH_ENUM,
	SCH_DURATION,
	SCH_PERCENT,
	SCH_BYTES,
	SCH_BYTES_OR_PERCENT,
	SCH_STRING_LIST,
	SCH_STRUCT,
	SCH_STRUCT_LIST,
	SCH_CUSTOM,
};

struct sch_amount {
	bool relative;	 /* fraction is set, else bytes */
	double fraction; /* 0.2 for "20%" */
	uint64_t bytes;
};

struct sch_ctx;
struct sch_struct;

struct sch_field {
	const char *name;
	enum sch_type type;
	size_t offset;
	size_t count_offset; /* lists: where the size_t item count goes */
	bool required;
	const char *def; /* default, written as in the file; NULL: zero / empty */
	int64_t min, max;
	double fmin, fmax;
	const char *const *names;     /* SCH_ENUM: NULL-terminated */
	const struct sch_struct *sub; /* SCH_STRUCT, SCH_STRUCT_LIST */
	size_t max_items;	      /* lists; 0: no limit but the node count */
	const char *doc;
};

/* Called after a mapping was converted into obj (only for mappings present in the file):
 * cross-field checks. sch_ok() says which fields hold a valid value. Returns 0 or -errno
 * for a failure other than a configuration error (those are added with sch_error()). */
typedef int (*sch_check_fn)(struct sch_ctx *ctx, void *obj, const struct yt_node *map);

struct sch_struct {
	const char *name; /* for docs and tests */
	size_t size;
	const struct sch_field *fields;
	size_t nfields; /* at most SCH_MAX_FIELDS */
	sch_check_fn check;
	/* Frees what check allocated (SCH_CUSTOM parts), after the fields; may be NULL. */
	void (*release)(void *obj);
};

struct sch_ctx {
	const char *path; /* file, for messages */
	struct hs_errors *errs;
	size_t nerr; /* errors this context added */
	int syserr;  /* first -errno that was not a configuration error (ENOMEM) */
	void *user;  /* for check hooks */
	/* During a check hook: the struct and which of its fields hold a valid value. */
	const struct sch_struct *cur;
	uint64_t cur_ok;
};

/* Converts map (a mapping node, or NULL: defaults only) into obj, which the caller zeroed.
 * Returns 0 when no error was added, -EINVAL when some were, or another -errno. */
int sch_convert(struct sch_ctx *ctx, const struct sch_struct *s, const struct yt_node *map,
		void *obj);
/* Converts the root of a document, which must be a mapping. */
int sch_convert_root(struct sch_ctx *ctx, const struct sch_struct *s, const struct yt_doc *doc,
		     void *obj);
/* Frees what sch_convert() allocated inside obj (not obj itself). */
void sch_free(const struct sch_struct *s, void *obj);

/* Adds "path:line:col: message" at node (1:1 without one). Returns -EINVAL. */
int sch_error(struct sch_ctx *ctx, const struct yt_node *at, const char *fmt, ...) HS_PRINTF(3, 4);
/* In a check hook: does field name hold a valid value (converted or default)? */
bool sch_ok(const struct sch_ctx *ctx, const char *name);

/* Scalar syntax, shared with hooks and tests. Each returns 0 or -EINVAL (-ERANGE on
 * overflow). */
int sch_parse_int(const char *s, int64_t *out);
int sch_parse_number(const char *s, double *out);
int sch_parse_bool(const char *s, bool *out);
int sch_parse_duration(const char *s, int64_t *ms);
/* Like sch_parse_duration() but also "us"/"ns" units, as a double of milliseconds. */
int sch_parse_duration_ms(const char *s, double *ms);
int sch_parse_percent(const char *s, double *fraction);
int sch_parse_bytes(const char *s, uint64_t *out);

/* "500ms", "30s", "5m", "1h", "2d": the largest unit that divides ms exactly. */
const char *sch_format_duration(int64_t ms, char *buf, size_t size);
/* "64MiB", "1GiB", "1000": the largest binary unit that divides exactly. */
const char *sch_format_bytes(uint64_t v, char *buf, size_t size);
/* "a, b or c" of a NULL-terminated list, for messages. */
const char *sch_join_names(const char *const *names, char *buf, size_t size);

#endif
