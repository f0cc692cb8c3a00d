/* yamltree.c - safe open and event-driven YAML parsing of yamltree.h.
 *
 * Why events and not yaml_parser_load(): the document loader recurses once per nesting level
 * and keeps anchors, so a hostile file controls its stack and memory. Here the tree is built
 * with an explicit stack of at most YT_MAX_DEPTH open collections; deeper input is skipped
 * by counting, and every node is also kept in one flat array so that freeing never recurses.
 *
 * Invariants: doc->root, when set, is the only document of the file; every mapping key is a
 * plain scalar and unique within its mapping; no scalar is longer than YT_MAX_SCALAR bytes or
 * holds a NUL byte; there are at most YT_MAX_NODES nodes.
 */
#include <ctype.h>
#include <yaml.h>

#include "yamltree.h"

struct yt_builder {
	struct yt_doc *doc;
	struct hs_errors *errs;
	const char *buf;
	size_t len;
	struct yt_node *stack[YT_MAX_DEPTH];
	/* Per open mapping: its pending key, or NULL when a key is expected next. */
	struct yt_node *key[YT_MAX_DEPTH];
	bool key_bad[YT_MAX_DEPTH];
	int depth;
	int skip; /* > 0: inside a subtree refused for depth */
	bool fatal;
	bool have_doc;
};

static int yt_err(struct yt_builder *b, unsigned line, unsigned col, const char *fmt, ...)
    HS_PRINTF(4, 5);

static int yt_err(struct yt_builder *b, unsigned line, unsigned col, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	yt_sanitize(msg);
	return hs_errors_add(b->errs, b->doc->path, line, col, "%s", msg);
}

void yt_sanitize(char *msg)
{
	for (unsigned char *c = (unsigned char *)msg; *c; c++)
		if (*c < 0x20 || *c == 0x7f)
			*c = '?';
}

int yt_check_stat(const struct stat *st, const char *display, uid_t owner, bool dir,
		  struct hs_errors *errs)
{
	int err = 0;

	if (dir && !S_ISDIR(st->st_mode)) {
		hs_errors_add_file(errs, display, "not a directory");
		return -ENOTDIR;
	}
	if (!dir && !S_ISREG(st->st_mode)) {
		hs_errors_add_file(errs, display, "not a regular file");
		return -EPERM;
	}
	if (st->st_uid != owner) {
		if (owner == 0)
			hs_errors_add_file(errs, display, "not owned by root (owner uid %u)",
					   (unsigned)st->st_uid);
		else
			hs_errors_add_file(errs, display, "not owned by uid %u (owner uid %u)",
					   (unsigned)owner, (unsigned)st->st_uid);
		err = -EPERM;
	}
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		hs_errors_add_file(errs, display,
				   "writable by group or others (mode %04o), refusing: the agent "
				   "acts as root on what it says",
				   (unsigned)(st->st_mode & 07777));
		err = -EPERM;
	}
	return err;
}

int yt_open_checked(int dirfd, const char *name, const char *display, uid_t owner, bool dir,
		    struct hs_errors *errs)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	int err;

	fd = openat(dirfd, name,
		    O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK |
			(dir ? O_DIRECTORY : 0));
	if (fd < 0) {
		err = -errno;
		if (err == -ELOOP)
			hs_errors_add_file(errs, display, "is a symbolic link, refusing");
		else if (err == -ENOTDIR && dir)
			hs_errors_add_file(errs, display, "not a directory");
		else
			hs_errors_add_file(errs, display, "cannot open: %s", strerror(-err));
		return err;
	}
	if (fstat(fd, &st) < 0) {
		err = -errno;
		hs_errors_add_file(errs, display, "cannot stat: %s", strerror(-err));
		return err;
	}
	err = yt_check_stat(&st, display, owner, dir, errs);
	if (err < 0)
		return err;
	return TAKE_FD(fd);
}

static int read_all(int fd, const char *display, char **out, size_t *outlen, struct hs_errors *errs)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = 64 * 1024;
	struct stat st;

	if (fstat(fd, &st) == 0 && st.st_size > YT_MAX_FILE_SIZE) {
		hs_errors_add_file(errs, display, "file too large (%lld bytes), at most %d",
				   (long long)st.st_size, YT_MAX_FILE_SIZE);
		return -EFBIG;
	}
	buf = malloc(cap + 1);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t r;

		if (len == cap) {
			char *nb;

			if (cap > YT_MAX_FILE_SIZE) {
				hs_errors_add_file(
				    errs, display,
				    "file too large (more than %d bytes), at most %d",
				    YT_MAX_FILE_SIZE, YT_MAX_FILE_SIZE);
				return -EFBIG;
			}
			cap *= 2;
			nb = realloc(buf, cap + 1);
			if (!nb)
				return -ENOMEM;
			buf = nb;
		}
		r = read(fd, buf + len, cap - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			hs_errors_add_file(errs, display, "cannot read: %s", strerror(errno));
			return -errno;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (len > YT_MAX_FILE_SIZE) {
		hs_errors_add_file(errs, display, "file too large (%zu bytes), at most %d", len,
				   YT_MAX_FILE_SIZE);
		return -EFBIG;
	}
	buf[len] = '\0';
	*out = TAKE_PTR(buf);
	*outlen = len;
	return 0;
}

int yt_load_at(int dirfd, const char *name, const char *display, uid_t owner, struct yt_doc **out,
	       struct hs_errors *errs)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int err;

	*out = NULL;
	fd = yt_open_checked(dirfd, name, display, owner, false, errs);
	if (fd < 0)
		return fd;
	err = read_all(fd, display, &buf, &len, errs);
	if (err < 0)
		return err;
	if (len == 0) {
		hs_errors_add_file(errs, display, "empty file");
		return -EINVAL;
	}
	return yt_parse(display, buf, len, out, errs);
}

int yt_load_file(const char *path, uid_t owner, struct yt_doc **out, struct hs_errors *errs)
{
	return yt_load_at(AT_FDCWD, path, path, owner, out, errs);
}

void yt_doc_free(struct yt_doc *doc)
{
	if (!doc)
		return;
	for (size_t i = 0; i < doc->nall; i++) {
		free(doc->all[i]->str);
		free(doc->all[i]->items);
		free(doc->all[i]->pairs);
		free(doc->all[i]);
	}
	free(doc->all);
	free(doc->path);
	free(doc);
}

static struct yt_node *node_new(struct yt_builder *b, enum yt_kind kind, const yaml_mark_t *m)
{
	struct yt_doc *doc = b->doc;
	struct yt_node *n;

	if (doc->nall >= YT_MAX_NODES) {
		yt_err(b, m->line + 1, m->column + 1, "too many nodes, at most %d", YT_MAX_NODES);
		b->fatal = true;
		return NULL;
	}
	if (doc->nall == doc->capall) {
		size_t cap = doc->capall ? doc->capall * 2 : 64;
		struct yt_node **a = realloc(doc->all, cap * sizeof(*a));

		if (!a) {
			b->fatal = true;
			return NULL;
		}
		doc->all = a;
		doc->capall = cap;
	}
	n = calloc(1, sizeof(*n));
	if (!n) {
		b->fatal = true;
		return NULL;
	}
	n->kind = kind;
	n->line = m->line + 1;
	n->col = m->column + 1;
	doc->all[doc->nall++] = n;
	return n;
}

static int grow(void **p, size_t *cap, size_t n, size_t size)
{
	void *np;
	size_t ncap;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 4;
	np = realloc(*p, ncap * size);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = ncap;
	return 0;
}

/* Places a new node under the open collection: a sequence item, a mapping key or value. */
static void attach(struct yt_builder *b, struct yt_node *n)
{
	struct yt_node *top;
	int d = b->depth - 1;

	if (d < 0) {
		b->doc->root = n;
		return;
	}
	top = b->stack[d];
	if (top->kind == YT_SEQUENCE) {
		if (grow((void **)&top->items, &top->cap, top->n, sizeof(*top->items)) < 0) {
			b->fatal = true;
			return;
		}
		top->items[top->n++] = n;
		return;
	}
	if (top->kind != YT_MAPPING)
		return; /* under an invalid node: dropped */
	if (!b->key[d]) {
		/* n is a key. */
		b->key[d] = n;
		b->key_bad[d] = false;
		if (n->kind == YT_INVALID) {
			b->key_bad[d] = true;
		} else if (n->kind != YT_SCALAR || !n->plain) {
			yt_err(b, n->line, n->col, "mapping keys must be plain scalars");
			b->key_bad[d] = true;
		} else {
			for (size_t i = 0; i < top->n; i++) {
				const struct yt_node *k = top->pairs[i].key;

				if (streq(k->str, n->str)) {
					yt_err(b, n->line, n->col,
					       "duplicate key '%s', first at line %u column %u",
					       n->str, k->line, k->col);
					b->key_bad[d] = true;
					break;
				}
			}
		}
		return;
	}
	/* n is the value of the pending key. */
	if (!b->key_bad[d]) {
		if (grow((void **)&top->pairs, &top->cap, top->n, sizeof(*top->pairs)) < 0) {
			b->fatal = true;
			return;
		}
		top->pairs[top->n].key = b->key[d];
		top->pairs[top->n].value = n;
		top->n++;
	}
	b->key[d] = NULL;
}

/* Anchors and tags are refused on every node; returns true when the node is acceptable. */
static bool check_props(struct yt_builder *b, const yaml_mark_t *m, const yaml_char_t *anchor,
			const yaml_char_t *tag, bool implicit)
{
	bool ok = true;

	if (anchor) {
		yt_err(b, m->line + 1, m->column + 1, "anchors are not supported");
		ok = false;
	}
	if (tag && !implicit) {
		yt_err(b, m->line + 1, m->column + 1, "tags are not supported");
		ok = false;
	}
	return ok;
}

static void on_scalar(struct yt_builder *b, const yaml_event_t *ev)
{
	const yaml_mark_t *m = &ev->start_mark;
	size_t len = ev->data.scalar.length;
	const char *v = (const char *)ev->data.scalar.value;
	bool implicit = ev->data.scalar.plain_implicit || ev->data.scalar.quoted_implicit;
	struct yt_node *n;
	bool ok;

	ok = check_props(b, m, ev->data.scalar.anchor, ev->data.scalar.tag, implicit);
	if (ok && len > YT_MAX_SCALAR) {
		yt_err(b, m->line + 1, m->column + 1, "value too long (%zu bytes), at most %d", len,
		       YT_MAX_SCALAR);
		ok = false;
	}
	if (ok && memchr(v, '\0', len)) {
		yt_err(b, m->line + 1, m->column + 1, "value holds a NUL character");
		ok = false;
	}
	n = node_new(b, ok ? YT_SCALAR : YT_INVALID, m);
	if (!n)
		return;
	if (ok) {
		n->str = strndup(v, len);
		if (!n->str) {
			b->fatal = true;
			return;
		}
		n->len = len;
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	}
	attach(b, n);
}

static void on_start(struct yt_builder *b, const yaml_event_t *ev, enum yt_kind kind)
{
	const yaml_mark_t *m = &ev->start_mark;
	const yaml_char_t *anchor, *tag;
	struct yt_node *n;
	bool implicit;

	if (b->skip) {
		b->skip++;
		return;
	}
	if (kind == YT_SEQUENCE) {
		anchor = ev->data.sequence_start.anchor;
		tag = ev->data.sequence_start.tag;
		implicit = ev->data.sequence_start.implicit;
	} else {
		anchor = ev->data.mapping_start.anchor;
		tag = ev->data.mapping_start.tag;
		implicit = ev->data.mapping_start.implicit;
	}
	if (b->depth >= YT_MAX_DEPTH) {
		yt_err(b, m->line + 1, m->column + 1, "nesting too deep, at most %d levels",
		       YT_MAX_DEPTH);
		n = node_new(b, YT_INVALID, m);
		if (n)
			attach(b, n);
		b->skip = 1;
		return;
	}
	if (!check_props(b, m, anchor, tag, implicit))
		kind = YT_INVALID; /* its content is still walked, then dropped */
	n = node_new(b, kind, m);
	if (!n)
		return;
	attach(b, n);
	b->stack[b->depth] = n;
	b->key[b->depth] = NULL;
	b->key_bad[b->depth] = false;
	b->depth++;
}

static void on_end(struct yt_builder *b)
{
	if (b->skip) {
		b->skip--;
		return;
	}
	if (b->depth > 0)
		b->depth--;
}

/* Line and column of a byte offset, for reader errors that have no mark. */
static void offset_pos(const char *buf, size_t len, size_t off, unsigned *line, unsigned *col)
{
	const char *p, *nl = NULL;
	unsigned l = 1;

	if (off > len)
		off = len;
	for (p = buf; p < buf + off; p++) {
		if (*p == '\n') {
			l++;
			nl = p;
		}
	}
	*line = l;
	*col = (unsigned)(off - (nl ? (size_t)(nl - buf) + 1 : 0)) + 1;
}

static void parser_error(struct yt_builder *b, const yaml_parser_t *p)
{
	const char *problem = p->problem ? p->problem : "cannot parse";
	unsigned line, col;

	switch (p->error) {
	case YAML_MEMORY_ERROR:
		hs_errors_add_file(b->errs, b->doc->path, "out of memory while parsing");
		break;
	case YAML_READER_ERROR:
		offset_pos(b->buf, b->len, p->problem_offset, &line, &col);
		if (p->problem_value >= 0)
			yt_err(b, line, col, "%s (byte 0x%02x)", problem, p->problem_value & 0xff);
		else
			yt_err(b, line, col, "%s", problem);
		break;
	default:
		line = p->problem_mark.line + 1;
		col = p->problem_mark.column + 1;
		if (p->context)
			yt_err(b, line, col, "%s %s", problem, p->context);
		else
			yt_err(b, line, col, "%s", problem);
		break;
	}
}

int yt_parse(const char *path, const char *buf, size_t len, struct yt_doc **out,
	     struct hs_errors *errs)
{
	struct yt_builder b = {.errs = errs, .buf = buf, .len = len};
	yaml_parser_t parser;
	bool done = false;
	int err = 0;

	*out = NULL;
	b.doc = calloc(1, sizeof(*b.doc));
	if (!b.doc)
		return -ENOMEM;
	b.doc->path = strdup(path);
	if (!b.doc->path) {
		free(b.doc);
		return -ENOMEM;
	}
	if (len > YT_MAX_FILE_SIZE) {
		hs_errors_add_file(errs, path, "file too large (%zu bytes), at most %d", len,
				   YT_MAX_FILE_SIZE);
		yt_doc_free(b.doc);
		return -EFBIG;
	}
	if (!yaml_parser_initialize(&parser)) {
		yt_doc_free(b.doc);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);

	while (!done && !b.fatal) {
		yaml_event_t ev;

		if (!yaml_parser_parse(&parser, &ev)) {
			parser_error(&b, &parser);
			b.fatal = true;
			break;
		}
		switch (ev.type) {
		case YAML_DOCUMENT_START_EVENT:
			if (b.have_doc) {
				yt_err(&b, ev.start_mark.line + 1, ev.start_mark.column + 1,
				       "multiple documents are not supported");
				done = true; /* the first document is still checked */
			}
			b.have_doc = true;
			break;
		case YAML_SCALAR_EVENT:
			if (!b.skip)
				on_scalar(&b, &ev);
			break;
		case YAML_ALIAS_EVENT:
			if (!b.skip) {
				struct yt_node *n;

				yt_err(&b, ev.start_mark.line + 1, ev.start_mark.column + 1,
				       "aliases are not supported");
				n = node_new(&b, YT_INVALID, &ev.start_mark);
				if (n)
					attach(&b, n);
			}
			break;
		case YAML_SEQUENCE_START_EVENT:
			on_start(&b, &ev, YT_SEQUENCE);
			break;
		case YAML_MAPPING_START_EVENT:
			on_start(&b, &ev, YT_MAPPING);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			on_end(&b);
			break;
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);

	if (b.fatal) {
		err = -EINVAL;
	} else if (!b.have_doc || !b.doc->root) {
		hs_errors_add_file(errs, path, "empty file");
		err = -EINVAL;
	}
	if (err < 0) {
		yt_doc_free(b.doc);
		return err;
	}
	*out = b.doc;
	return 0;
}

const struct yt_node *yt_map_get(const struct yt_node *map, const char *key)
{
	if (!map || map->kind != YT_MAPPING)
		return NULL;
	for (size_t i = 0; i < map->n; i++)
		if (streq(map->pairs[i].key->str, key))
			return map->pairs[i].value;
	return NULL;
}

bool yt_is_null(const struct yt_node *node)
{
	if (!node || node->kind != YT_SCALAR || !node->plain)
		return false;
	return node->len == 0 || streq(node->str, "~") || streq(node->str, "null") ||
	       streq(node->str, "Null") || streq(node->str, "NULL");
}

const char *yt_describe(const struct yt_node *node, char *buf, size_t size)
{
	size_t o = 0, max = 40;

	if (!node || size < 8)
		return "nothing";
	switch (node->kind) {
	case YT_MAPPING:
		return "a mapping";
	case YT_SEQUENCE:
		return "a list";
	case YT_INVALID:
		return "an invalid value";
	case YT_SCALAR:
		break;
	}
	if (yt_is_null(node))
		return "empty";
	buf[o++] = '\'';
	for (size_t i = 0; i < node->len && o + 5 < size; i++) {
		unsigned char c = (unsigned char)node->str[i];

		if (i >= max && (c & 0xc0) != 0x80) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		buf[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	buf[o++] = '\'';
	buf[o] = '\0';
	return buf;
}
