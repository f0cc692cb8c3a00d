/* yamltree.h - a configuration file read safely into a small tree of YAML nodes.
 *
 * The file is opened without following symbolic links and refused unless it is a regular
 * file owned by the expected uid and not writable by group or others: the agent acts as
 * root on what it says. It is parsed with libyaml's event API into scalars, sequences and
 * mappings that keep their 1-based line and column, so that every later error can point at
 * its place. Input cannot make anything unbounded: file size, nesting depth, scalar length
 * and node count have hard limits, anchors, aliases, tags and multiple documents are
 * refused, and mapping keys must be unique plain scalars.
 *
 * Errors go to a struct hs_errors as "path:line:col: message", every one of them. A node
 * that was refused (too long, too deep, an alias) stays in the tree as YT_INVALID so that
 * the typed conversion can go on without reporting it twice.
 */
#ifndef HS_YAMLTREE_H
#define HS_YAMLTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "errors.h"

#define YT_MAX_FILE_SIZE (1024 * 1024)
#define YT_MAX_DEPTH	 16
#define YT_MAX_SCALAR	 4096
#define YT_MAX_NODES	 10000

enum yt_kind {
	YT_SCALAR,
	YT_SEQUENCE,
	YT_MAPPING,
	YT_INVALID, /* refused, already reported */
};

struct yt_pair {
	struct yt_node *key; /* always a plain YT_SCALAR */
	struct yt_node *value;
};

struct yt_node {
	enum yt_kind kind;
	unsigned line; /* 1-based */
	unsigned col;  /* 1-based */
	/* YT_SCALAR: NUL-terminated text without NUL bytes inside. */
	char *str;
	size_t len;
	bool plain; /* not quoted, not a block scalar */
	/* YT_SEQUENCE: items[n]; YT_MAPPING: pairs[n], in file order, keys unique. */
	struct yt_node **items;
	struct yt_pair *pairs;
	size_t n;
	size_t cap;
};

struct yt_doc {
	char *path;	      /* as given, for messages */
	struct yt_node *root; /* NULL when the file held no usable document */
	struct yt_node **all; /* every node, for freeing without recursion */
	size_t nall;
	size_t capall;
};

/* Opens name (relative to dirfd, or AT_FDCWD) with O_NOFOLLOW and checks it like
 * yt_check_stat(). Returns the descriptor, or -errno with the reason added to errs. */
int yt_open_checked(int dirfd, const char *name, const char *display, uid_t owner, bool dir,
		    struct hs_errors *errs);
/* Refuses what is not a regular file (or directory when dir), not owned by owner, or
 * writable by group or others. Returns 0 or -EPERM with the reason added to errs. */
int yt_check_stat(const struct stat *st, const char *display, uid_t owner, bool dir,
		  struct hs_errors *errs);

/* Reads and parses a file. Returns 0 with *out set when a document could be read (errors may
 * still have been added for parts of it: compare errs->n), or -errno with no tree when the
 * file could not be read or parsed at all. */
int yt_load_at(int dirfd, const char *name, const char *display, uid_t owner, struct yt_doc **out,
	       struct hs_errors *errs);
int yt_load_file(const char *path, uid_t owner, struct yt_doc **out, struct hs_errors *errs);
/* Parses a buffer; path is only used in messages. Same return as yt_load_at(). */
int yt_parse(const char *path, const char *buf, size_t len, struct yt_doc **out,
	     struct hs_errors *errs);
void yt_doc_free(struct yt_doc *doc);

/* The value of key in a mapping, or NULL. */
const struct yt_node *yt_map_get(const struct yt_node *map, const char *key);
/* An empty plain scalar, "~" or "null": a key written without a value. */
bool yt_is_null(const struct yt_node *node);
/* Replaces control characters (newlines of multi-line scalars too) with '?', so that every
 * diagnostic stays one line. */
void yt_sanitize(char *msg);
/* "a mapping", "a list", "empty" or the scalar quoted and shortened, for messages. */
const char *yt_describe(const struct yt_node *node, char *buf, size_t size);

#endif
