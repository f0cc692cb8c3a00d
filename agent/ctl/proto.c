/* proto.c - encoding and exact decoding of control messages (the format is in proto.h).
 *
 * Pure functions on buffers: no I/O, no logging, so that every refusal is unit-tested. The
 * builder checks the same rules as the decoder, so the daemon cannot send what the CLI would
 * refuse. Invariant of a decoded response: every count is within the limits, every string is
 * NUL-terminated with no NUL inside, every cell has its column's type or is null.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/proto.h"

/* One row a request type: its wire value, its name (the CLI command), its argument. */
const struct ctl_req_desc ctl_req_descs[] = {
    {.type = CTL_REQ_STATUS, .name = "status", .arg = CTL_ARG_NONE},
    {.type = CTL_REQ_HISTORY,
     .name = "history",
     .arg = CTL_ARG_LIMIT,
     .payload_min = 4,
     .payload_max = 4},
    {.type = CTL_REQ_APPROVE,
     .name = "approve",
     .arg = CTL_ARG_ID,
     .payload_min = 8,
     .payload_max = 8},
    {.type = CTL_REQ_REJECT,
     .name = "reject",
     .arg = CTL_ARG_ID,
     .payload_min = 8,
     .payload_max = 8},
    {.type = CTL_REQ_ROLLBACK,
     .name = "rollback",
     .arg = CTL_ARG_ID,
     .payload_min = 8,
     .payload_max = 8},
    {.type = CTL_REQ_PAUSE, .name = "pause", .arg = CTL_ARG_NONE},
    {.type = CTL_REQ_RESUME, .name = "resume", .arg = CTL_ARG_NONE},
    {.type = CTL_REQ_PROFILE,
     .name = "profile",
     .arg = CTL_ARG_PROFILE,
     .payload_min = CTL_PROFILE_PAYLOAD_MIN,
     .payload_max = CTL_PROFILE_PAYLOAD_MAX},
    {.type = CTL_REQ_EXPLAIN,
     .name = "explain",
     .arg = CTL_ARG_ID,
     .payload_min = 8,
     .payload_max = 8},
    /* Subcommands of the CLI's "redirect": their names are its two words. */
    {.type = CTL_REQ_REDIRECT_LIST, .name = "redirect list", .arg = CTL_ARG_NONE},
    {.type = CTL_REQ_REDIRECT_APPLY,
     .name = "redirect apply",
     .arg = CTL_ARG_REDIRECT,
     .payload_min = CTL_REDIRECT_PAYLOAD_MIN,
     .payload_max = CTL_REDIRECT_PAYLOAD_MAX},
    {.type = CTL_REQ_REDIRECT_REVERT,
     .name = "redirect revert",
     .arg = CTL_ARG_ID,
     .payload_min = 8,
     .payload_max = 8},
};
const size_t ctl_req_ndescs = ARRAY_SIZE(ctl_req_descs);

const struct ctl_req_desc *ctl_req_desc(uint16_t type)
{
	for (size_t i = 0; i < ARRAY_SIZE(ctl_req_descs); i++)
		if (ctl_req_descs[i].type == type)
			return &ctl_req_descs[i];
	return NULL;
}

const struct ctl_req_desc *ctl_req_desc_by_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(ctl_req_descs); i++)
		if (streq(ctl_req_descs[i].name, name))
			return &ctl_req_descs[i];
	return NULL;
}

/* Little-endian, byte by byte. */

static void put_u16(uint8_t *p, uint16_t v)
{
	p[0] = v;
	p[1] = v >> 8;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = v >> (8 * i);
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = v >> (8 * i);
}

static uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
	return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static void put_hdr(uint8_t *p, uint16_t type, uint32_t len)
{
	put_u32(p, CTL_MAGIC);
	put_u16(p + 4, CTL_VERSION);
	put_u16(p + 6, type);
	put_u32(p + 8, len);
}

/* Checks what every message shares; *type and *len are the header's. */
static int check_hdr(const uint8_t *p, uint16_t *type, uint32_t *len)
{
	if (get_u32(p) != CTL_MAGIC)
		return -EPROTO;
	if (get_u16(p + 4) != CTL_VERSION)
		return -EPROTONOSUPPORT;
	*type = get_u16(p + 6);
	*len = get_u32(p + 8);
	if (*len > CTL_MSG_MAX - CTL_HDR_SIZE)
		return -EMSGSIZE;
	return 0;
}

static int check_req_hdr(const uint8_t *p, const struct ctl_req_desc **desc, uint32_t *len)
{
	uint16_t type;
	int r;

	r = check_hdr(p, &type, len);
	if (r < 0)
		return r;
	*desc = ctl_req_desc(type);
	if (!*desc)
		return -EOPNOTSUPP;
	if (*len < (*desc)->payload_min || *len > (*desc)->payload_max)
		return -EBADMSG;
	return 0;
}

static int check_resp_hdr(const uint8_t *p, uint16_t *req_type, uint32_t *len)
{
	uint16_t type;
	int r;

	r = check_hdr(p, &type, len);
	if (r < 0)
		return r;
	if (!(type & CTL_RESP_BIT))
		return -EOPNOTSUPP;
	*req_type = type & ~CTL_RESP_BIT;
	if (*req_type != 0 && !ctl_req_desc(*req_type))
		return -EOPNOTSUPP;
	return 0;
}

int ctl_req_size(const void *buf, size_t have, size_t *need)
{
	const struct ctl_req_desc *desc;
	uint32_t len;
	int r;

	if (have < CTL_HDR_SIZE) {
		*need = CTL_HDR_SIZE;
		return 0;
	}
	r = check_req_hdr(buf, &desc, &len);
	if (r < 0)
		return r;
	*need = CTL_HDR_SIZE + (size_t)len;
	return 0;
}

int ctl_resp_size(const void *buf, size_t have, size_t *need)
{
	uint16_t req_type;
	uint32_t len;
	int r;

	if (have < CTL_HDR_SIZE) {
		*need = CTL_HDR_SIZE;
		return 0;
	}
	r = check_resp_hdr(buf, &req_type, &len);
	if (r < 0)
		return r;
	*need = CTL_HDR_SIZE + (size_t)len;
	return 0;
}

/* Readers for both decoders: every read is checked against the bytes left. */

struct rd {
	const uint8_t *p;
	size_t left;
};

static int rd_u8(struct rd *r, uint8_t *v)
{
	if (r->left < 1)
		return -EBADMSG;
	*v = r->p[0];
	r->p++;
	r->left--;
	return 0;
}

static int rd_u32(struct rd *r, uint32_t *v)
{
	if (r->left < 4)
		return -EBADMSG;
	*v = get_u32(r->p);
	r->p += 4;
	r->left -= 4;
	return 0;
}

static int rd_u64(struct rd *r, uint64_t *v)
{
	if (r->left < 8)
		return -EBADMSG;
	*v = get_u64(r->p);
	r->p += 8;
	r->left -= 8;
	return 0;
}

/* A string of 0..max bytes into buf (max + 1 bytes), each byte accepted by ok(). */
static int rd_fixed_str(struct rd *r, size_t max, bool (*ok)(unsigned char), char *buf)
{
	uint32_t n;
	int err;

	err = rd_u32(r, &n);
	if (err < 0)
		return err;
	if (n > max)
		return -E2BIG;
	if (n > r->left)
		return -EBADMSG;
	memcpy(buf, r->p, n);
	buf[n] = '\0';
	r->p += n;
	r->left -= n;
	for (uint32_t i = 0; i < n; i++)
		if (!ok((unsigned char)buf[i]))
			return -EBADMSG;
	return 0;
}

/* PROFILE's argument. */

static bool target_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static bool func_char(unsigned char c)
{
	return c > ' ' && c < 0x7f;
}

/* REDIRECT's argument: a policy name, a symbol name. */

static bool symbol_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '$' || c == '@';
}

static const char *const profile_kind_names[] = {
    [CTL_PROFILE_CPU] = "cpu",
    [CTL_PROFILE_ALLOC] = "alloc",
    [CTL_PROFILE_FUNC] = "func",
};

const char *ctl_profile_kind_name(unsigned kind)
{
	return kind < ARRAY_SIZE(profile_kind_names) ? profile_kind_names[kind] : NULL;
}

static int name_check(const char *s, size_t max, bool (*ok)(unsigned char), bool empty_ok)
{
	size_t n = strnlen(s, max + 1);

	if (n > max)
		return -E2BIG;
	if (n == 0 && !empty_ok)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++)
		if (!ok((unsigned char)s[i]))
			return -EBADMSG;
	return 0;
}

int ctl_profile_check(const struct ctl_request *req)
{
	bool func = req->kind == CTL_PROFILE_FUNC;
	int err;

	err = name_check(req->target, CTL_TARGET_MAX, target_char, false);
	if (!err)
		err = name_check(req->func, CTL_FUNC_MAX, func_char, !func);
	if (err)
		return err;
	if (!ctl_profile_kind_name(req->kind) || (!func && req->func[0]))
		return -EBADMSG;
	if (req->seconds < 1 || req->seconds > CTL_PROFILE_SECONDS_MAX || req->pid > INT32_MAX)
		return -ERANGE;
	return 0;
}

int ctl_redirect_check(const struct ctl_request *req)
{
	int err;

	err = name_check(req->redirect, CTL_REDIRECT_NAME_MAX, target_char, false);
	if (!err)
		err = name_check(req->alternative, CTL_SYMBOL_MAX, symbol_char, true);
	return err;
}

static size_t payload_len(const struct ctl_req_desc *desc, const struct ctl_request *req)
{
	if (desc->arg == CTL_ARG_PROFILE)
		return CTL_PROFILE_PAYLOAD_MIN + strlen(req->target) + strlen(req->func);
	if (desc->arg == CTL_ARG_REDIRECT)
		return CTL_REDIRECT_PAYLOAD_MIN + strlen(req->redirect) + strlen(req->alternative);
	return desc->payload_min;
}

/* A str: u32 length, the bytes; returns where the next field goes. */
static uint8_t *put_str(uint8_t *p, const char *s)
{
	size_t n = strlen(s);

	put_u32(p, n);
	memcpy(p + 4, s, n);
	return p + 4 + n;
}

int ctl_req_encode(const struct ctl_request *req, void *buf, size_t size, size_t *len)
{
	const struct ctl_req_desc *desc = ctl_req_desc(req->type);
	uint8_t *p = buf;
	size_t plen;
	int err;

	if (!desc)
		return -EOPNOTSUPP;
	if (desc->arg == CTL_ARG_ID && req->id == 0)
		return -ERANGE;
	if (desc->arg == CTL_ARG_PROFILE)
		err = ctl_profile_check(req);
	else if (desc->arg == CTL_ARG_REDIRECT)
		err = ctl_redirect_check(req);
	else
		err = 0;
	if (err)
		return err;
	plen = payload_len(desc, req);
	if (size < CTL_HDR_SIZE + plen)
		return -ENOBUFS;
	put_hdr(p, desc->type, plen);
	p += CTL_HDR_SIZE;
	switch (desc->arg) {
	case CTL_ARG_NONE:
		break;
	case CTL_ARG_LIMIT:
		put_u32(p, req->limit);
		break;
	case CTL_ARG_ID:
		put_u64(p, req->id);
		break;
	case CTL_ARG_PROFILE:
		p = put_str(p, req->target);
		put_u32(p, req->seconds);
		p[4] = req->kind;
		p = put_str(p + 5, req->func);
		put_u32(p, req->pid);
		break;
	case CTL_ARG_REDIRECT:
		p = put_str(p, req->redirect);
		put_str(p, req->alternative);
		break;
	}
	*len = CTL_HDR_SIZE + plen;
	return 0;
}

static int rd_profile(struct rd *r, struct ctl_request *req)
{
	int err;

	err = rd_fixed_str(r, CTL_TARGET_MAX, target_char, req->target);
	if (!err)
		err = rd_u32(r, &req->seconds);
	if (!err)
		err = rd_u8(r, &req->kind);
	if (!err)
		err = rd_fixed_str(r, CTL_FUNC_MAX, func_char, req->func);
	if (!err)
		err = rd_u32(r, &req->pid);
	if (err)
		return err;
	if (r->left != 0)
		return -EBADMSG;
	return ctl_profile_check(req);
}

static int rd_redirect(struct rd *r, struct ctl_request *req)
{
	int err;

	err = rd_fixed_str(r, CTL_REDIRECT_NAME_MAX, target_char, req->redirect);
	if (!err)
		err = rd_fixed_str(r, CTL_SYMBOL_MAX, symbol_char, req->alternative);
	if (err)
		return err;
	if (r->left != 0)
		return -EBADMSG;
	return ctl_redirect_check(req);
}

int ctl_req_decode(const void *buf, size_t len, struct ctl_request *req)
{
	const struct ctl_req_desc *desc;
	const uint8_t *p = buf;
	uint32_t plen;
	struct rd r;
	int err;

	if (len < CTL_HDR_SIZE)
		return -ENODATA;
	err = check_req_hdr(p, &desc, &plen);
	if (err < 0)
		return err;
	if (len < CTL_HDR_SIZE + (size_t)plen)
		return -ENODATA;
	if (len > CTL_HDR_SIZE + (size_t)plen)
		return -EBADMSG;
	*req = (struct ctl_request){.type = desc->type};
	r = (struct rd){.p = p + CTL_HDR_SIZE, .left = plen};
	switch (desc->arg) {
	case CTL_ARG_NONE:
		break;
	case CTL_ARG_LIMIT:
		req->limit = get_u32(r.p);
		break;
	case CTL_ARG_ID:
		req->id = get_u64(r.p);
		if (req->id == 0)
			return -ERANGE;
		break;
	case CTL_ARG_PROFILE:
		return rd_profile(&r, req);
	case CTL_ARG_REDIRECT:
		return rd_redirect(&r, req);
	}
	return 0;
}

/* Rules shared by the builder and the decoder. */

static bool name_valid(const char *s, size_t n)
{
	if (n == 0 || n > CTL_NAME_MAX || s[0] < 'a' || s[0] > 'z')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

static bool table_name_ok(const struct ctl_response *resp, const char *name)
{
	if (!name_valid(name, strlen(name)) || streq(name, "status") || streq(name, "message"))
		return false;
	return !ctl_resp_find_table(resp, name);
}

static bool col_type_valid(uint32_t t)
{
	return t == CTL_COL_STRING || t == CTL_COL_INT || t == CTL_COL_REAL;
}

static bool status_valid(int64_t s)
{
	return s <= 0 && s >= -4095;
}

/* Builder. */

void ctl_resp_init(struct ctl_response *resp, uint16_t req_type)
{
	*resp = (struct ctl_response){.req_type = req_type};
}

static void table_free(struct ctl_table *t)
{
	for (uint32_t c = 0; c < t->ncols && t->cols; c++)
		free(t->cols[c]);
	for (size_t i = 0; i < t->ncells; i++)
		if (t->cells[i].type == CTL_COL_STRING)
			free(t->cells[i].s);
	free(t->name);
	free(t->cols);
	free(t->types);
	free(t->cells);
}

void ctl_resp_free(struct ctl_response *resp)
{
	for (uint32_t i = 0; i < resp->ntables; i++)
		table_free(&resp->tables[i]);
	free(resp->tables);
	free(resp->message);
	ctl_resp_init(resp, resp->req_type);
}

static int fail(struct ctl_response *resp, int err)
{
	if (!resp->err)
		resp->err = err;
	return err;
}

HS_PRINTF(2, 0) static int set_message(struct ctl_response *resp, const char *fmt, va_list ap)
{
	char *m;

	if (vasprintf(&m, fmt, ap) < 0)
		return fail(resp, -ENOMEM);
	if (strlen(m) > CTL_STR_MAX)
		m[CTL_STR_MAX] = '\0';
	free(resp->message);
	resp->message = m;
	return 0;
}

int ctl_resp_message(struct ctl_response *resp, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = set_message(resp, fmt, ap);
	va_end(ap);
	return r;
}

int ctl_resp_error(struct ctl_response *resp, int err, const char *fmt, ...)
{
	va_list ap;

	if (!status_valid(err) || err == 0)
		err = -EINVAL;
	resp->status = err;
	va_start(ap, fmt);
	set_message(resp, fmt, ap);
	va_end(ap);
	return err;
}

int ctl_resp_table(struct ctl_response *resp, const char *name, uint32_t ncols,
		   const char *const *cols, const enum ctl_col_type *types)
{
	struct ctl_table *tables, *t;

	if (resp->err)
		return resp->err;
	if (resp->ntables >= CTL_MAX_TABLES || ncols > CTL_MAX_COLS)
		return fail(resp, -E2BIG);
	if (ncols == 0 || !table_name_ok(resp, name))
		return fail(resp, -EINVAL);
	if (resp->ntables > 0) {
		t = &resp->tables[resp->ntables - 1];
		if (t->ncells != (size_t)t->nrows * t->ncols)
			return fail(resp, -EINVAL);
	}
	for (uint32_t c = 0; c < ncols; c++) {
		if (!name_valid(cols[c], strlen(cols[c])) || !col_type_valid(types[c]))
			return fail(resp, -EINVAL);
		for (uint32_t d = 0; d < c; d++)
			if (streq(cols[c], cols[d]))
				return fail(resp, -EINVAL);
	}

	tables = reallocarray(resp->tables, resp->ntables + 1, sizeof(*tables));
	if (!tables)
		return fail(resp, -ENOMEM);
	resp->tables = tables;
	t = &tables[resp->ntables];
	*t = (struct ctl_table){.ncols = ncols};
	t->name = strdup(name);
	t->cols = calloc(ncols, sizeof(*t->cols));
	t->types = calloc(ncols, sizeof(*t->types));
	if (!t->name || !t->cols || !t->types) {
		table_free(t);
		return fail(resp, -ENOMEM);
	}
	for (uint32_t c = 0; c < ncols; c++) {
		t->cols[c] = strdup(cols[c]);
		if (!t->cols[c]) {
			table_free(t);
			return fail(resp, -ENOMEM);
		}
		t->types[c] = types[c];
	}
	resp->ntables++;
	return 0;
}

int ctl_resp_row(struct ctl_response *resp)
{
	struct ctl_table *t;

	if (resp->err)
		return resp->err;
	if (resp->ntables == 0)
		return fail(resp, -EINVAL);
	t = &resp->tables[resp->ntables - 1];
	if (t->ncells != (size_t)t->nrows * t->ncols)
		return fail(resp, -EINVAL);
	if (t->nrows >= CTL_MAX_ROWS)
		return fail(resp, -E2BIG);
	t->nrows++;
	return 0;
}

/* The next cell of the current row, if it may hold a value of this type. */
static struct ctl_cell *next_cell(struct ctl_response *resp, enum ctl_col_type type)
{
	struct ctl_table *t;
	struct ctl_cell *cells;

	if (resp->err)
		return NULL;
	if (resp->ntables == 0) {
		fail(resp, -EINVAL);
		return NULL;
	}
	t = &resp->tables[resp->ntables - 1];
	if (t->ncells >= (size_t)t->nrows * t->ncols ||
	    (type != CTL_COL_NULL && t->types[t->ncells % t->ncols] != type)) {
		fail(resp, -EINVAL);
		return NULL;
	}
	if (t->ncells == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 16;

		cells = reallocarray(t->cells, cap, sizeof(*cells));
		if (!cells) {
			fail(resp, -ENOMEM);
			return NULL;
		}
		t->cells = cells;
		t->cap = cap;
	}
	t->cells[t->ncells] = (struct ctl_cell){.type = type};
	return &t->cells[t->ncells];
}

/* Counts the cell in once it holds its value, so that a failure leaves nothing to free. */
static int cell_done(struct ctl_response *resp)
{
	resp->tables[resp->ntables - 1].ncells++;
	return 0;
}

int ctl_resp_cell_str(struct ctl_response *resp, const char *s)
{
	struct ctl_cell *c;

	if (!s)
		return ctl_resp_cell_null(resp);
	if (strlen(s) > CTL_STR_MAX)
		return fail(resp, -E2BIG);
	c = next_cell(resp, CTL_COL_STRING);
	if (!c)
		return resp->err;
	c->s = strdup(s);
	if (!c->s)
		return fail(resp, -ENOMEM);
	return cell_done(resp);
}

int ctl_resp_cell_strf(struct ctl_response *resp, const char *fmt, ...)
{
	_cleanup_free_ char *s = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		s = NULL;
		return fail(resp, -ENOMEM);
	}
	return ctl_resp_cell_str(resp, s);
}

int ctl_resp_cell_int(struct ctl_response *resp, int64_t v)
{
	struct ctl_cell *c = next_cell(resp, CTL_COL_INT);

	if (!c)
		return resp->err;
	c->i = v;
	return cell_done(resp);
}

int ctl_resp_cell_real(struct ctl_response *resp, double v)
{
	struct ctl_cell *c = next_cell(resp, CTL_COL_REAL);

	if (!c)
		return resp->err;
	c->r = v;
	return cell_done(resp);
}

int ctl_resp_cell_null(struct ctl_response *resp)
{
	struct ctl_cell *c = next_cell(resp, CTL_COL_NULL);

	if (!c)
		return resp->err;
	return cell_done(resp);
}

const struct ctl_table *ctl_resp_find_table(const struct ctl_response *resp, const char *name)
{
	for (uint32_t i = 0; i < resp->ntables; i++)
		if (streq(resp->tables[i].name, name))
			return &resp->tables[i];
	return NULL;
}

/* Encoder: one pass to size, one to write. */

struct wr {
	uint8_t *p; /* NULL while sizing */
	size_t len;
};

static void wr_bytes(struct wr *w, const void *b, size_t n)
{
	if (w->p && n)
		memcpy(w->p + w->len, b, n);
	w->len += n;
}

static void wr_u8(struct wr *w, uint8_t v)
{
	wr_bytes(w, &v, 1);
}

static void wr_u32(struct wr *w, uint32_t v)
{
	uint8_t b[4];

	put_u32(b, v);
	wr_bytes(w, b, 4);
}

static void wr_u64(struct wr *w, uint64_t v)
{
	uint8_t b[8];

	put_u64(b, v);
	wr_bytes(w, b, 8);
}

static void wr_str(struct wr *w, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	wr_u32(w, n);
	wr_bytes(w, s, n);
}

static void wr_resp(struct wr *w, const struct ctl_response *resp, bool tables)
{
	wr_u32(w, (uint32_t)resp->status);
	wr_str(w, resp->message);
	wr_u32(w, tables ? resp->ntables : 0);
	for (uint32_t i = 0; tables && i < resp->ntables; i++) {
		const struct ctl_table *t = &resp->tables[i];

		wr_str(w, t->name);
		wr_u32(w, t->ncols);
		for (uint32_t c = 0; c < t->ncols; c++) {
			wr_str(w, t->cols[c]);
			wr_u8(w, t->types[c]);
		}
		wr_u32(w, t->nrows);
		for (size_t k = 0; k < t->ncells; k++) {
			const struct ctl_cell *cell = &t->cells[k];
			uint64_t bits;

			wr_u8(w, cell->type);
			switch (cell->type) {
			case CTL_COL_NULL:
				break;
			case CTL_COL_STRING:
				wr_str(w, cell->s);
				break;
			case CTL_COL_INT:
				wr_u64(w, (uint64_t)cell->i);
				break;
			case CTL_COL_REAL:
				memcpy(&bits, &cell->r, sizeof(bits));
				wr_u64(w, bits);
				break;
			}
		}
	}
}

int ctl_resp_encode(const struct ctl_response *resp, void **buf, size_t *len)
{
	struct wr w = {0};
	bool tables = resp->status == 0;
	uint16_t type = CTL_RESP_BIT | resp->req_type;

	if (resp->err)
		return resp->err;
	if (!status_valid(resp->status) || (resp->req_type && !ctl_req_desc(resp->req_type)))
		return -EINVAL;
	for (uint32_t i = 0; tables && i < resp->ntables; i++)
		if (resp->tables[i].ncells != (size_t)resp->tables[i].nrows * resp->tables[i].ncols)
			return -EINVAL;
	wr_resp(&w, resp, tables);
	if (w.len > CTL_MSG_MAX - CTL_HDR_SIZE)
		return -EMSGSIZE;
	w.p = malloc(CTL_HDR_SIZE + w.len);
	if (!w.p)
		return -ENOMEM;
	put_hdr(w.p, type, w.len);
	w.len = CTL_HDR_SIZE;
	wr_resp(&w, resp, tables);
	*buf = w.p;
	*len = w.len;
	return 0;
}

/* Response decoder. */

/* A string of at most max bytes, NUL-free, copied and terminated into *s. */
static int rd_str(struct rd *r, size_t max, char **s)
{
	uint32_t n;
	int err;

	err = rd_u32(r, &n);
	if (err < 0)
		return err;
	if (n > max)
		return -E2BIG;
	if (n > r->left)
		return -EBADMSG;
	if (memchr(r->p, '\0', n))
		return -EBADMSG;
	*s = strndup((const char *)r->p, n);
	if (!*s)
		return -ENOMEM;
	r->p += n;
	r->left -= n;
	return 0;
}

static int rd_name(struct rd *r, char **s)
{
	int err = rd_str(r, CTL_NAME_MAX, s);

	if (err == -E2BIG)
		return -EBADMSG;
	if (err < 0)
		return err;
	return name_valid(*s, strlen(*s)) ? 0 : -EBADMSG;
}

static int rd_table(struct rd *r, struct ctl_response *resp)
{
	struct ctl_table *t = &resp->tables[resp->ntables];
	_cleanup_free_ char *name = NULL;
	uint32_t ncols, nrows;
	int err;

	err = rd_name(r, &name);
	if (err < 0)
		return err;
	if (!table_name_ok(resp, name))
		return -EBADMSG;
	err = rd_u32(r, &ncols);
	if (err < 0)
		return err;
	if (ncols == 0)
		return -EBADMSG;
	if (ncols > CTL_MAX_COLS)
		return -E2BIG;

	*t = (struct ctl_table){0};
	t->cols = calloc(ncols, sizeof(*t->cols));
	t->types = calloc(ncols, sizeof(*t->types));
	t->name = TAKE_PTR(name);
	resp->ntables++; /* from here on ctl_resp_free() frees what is filled */
	if (!t->cols || !t->types)
		return -ENOMEM;
	t->ncols = ncols;
	for (uint32_t c = 0; c < ncols; c++) {
		uint8_t type;

		err = rd_name(r, &t->cols[c]);
		if (err < 0)
			return err;
		for (uint32_t d = 0; d < c; d++)
			if (streq(t->cols[c], t->cols[d]))
				return -EBADMSG;
		err = rd_u8(r, &type);
		if (err < 0)
			return err;
		if (!col_type_valid(type))
			return -EBADMSG;
		t->types[c] = type;
	}

	err = rd_u32(r, &nrows);
	if (err < 0)
		return err;
	if (nrows > CTL_MAX_ROWS)
		return -E2BIG;
	/* Every cell takes at least its tag byte: more cells than bytes is a lie. */
	if ((size_t)nrows * ncols > r->left)
		return -EBADMSG;
	t->nrows = nrows;
	t->cap = (size_t)nrows * ncols;
	if (t->cap) {
		t->cells = calloc(t->cap, sizeof(*t->cells));
		if (!t->cells)
			return -ENOMEM;
	}
	for (size_t k = 0; k < t->cap; k++) {
		struct ctl_cell *cell = &t->cells[k];
		uint8_t tag;
		uint64_t bits;

		err = rd_u8(r, &tag);
		if (err < 0)
			return err;
		if (tag != CTL_COL_NULL && tag != t->types[k % ncols])
			return -EBADMSG;
		switch (tag) {
		case CTL_COL_NULL:
			break;
		case CTL_COL_STRING:
			err = rd_str(r, CTL_STR_MAX, &cell->s);
			break;
		case CTL_COL_INT:
			err = rd_u64(r, &bits);
			cell->i = (int64_t)bits;
			break;
		case CTL_COL_REAL:
			err = rd_u64(r, &bits);
			memcpy(&cell->r, &bits, sizeof(bits));
			break;
		}
		if (err < 0)
			return err;
		cell->type = tag;
		t->ncells++;
	}
	return 0;
}

static int rd_resp(struct rd *r, struct ctl_response *resp)
{
	uint32_t status, ntables;
	int err;

	err = rd_u32(r, &status);
	if (err < 0)
		return err;
	if (!status_valid((int32_t)status))
		return -EBADMSG;
	resp->status = (int32_t)status;
	err = rd_str(r, CTL_STR_MAX, &resp->message);
	if (err < 0)
		return err;
	err = rd_u32(r, &ntables);
	if (err < 0)
		return err;
	if (ntables > CTL_MAX_TABLES)
		return -E2BIG;
	if (ntables > 0 && resp->status != 0)
		return -EBADMSG;
	if (ntables > 0) {
		resp->tables = calloc(ntables, sizeof(*resp->tables));
		if (!resp->tables)
			return -ENOMEM;
	}
	for (uint32_t i = 0; i < ntables; i++) {
		err = rd_table(r, resp);
		if (err < 0)
			return err;
	}
	if (r->left != 0)
		return -EBADMSG;
	return 0;
}

int ctl_resp_decode(const void *buf, size_t len, struct ctl_response *resp)
{
	const uint8_t *p = buf;
	uint16_t req_type;
	uint32_t plen;
	struct rd r;
	int err;

	ctl_resp_init(resp, 0);
	if (len < CTL_HDR_SIZE)
		return -ENODATA;
	err = check_resp_hdr(p, &req_type, &plen);
	if (err < 0)
		return err;
	if (len < CTL_HDR_SIZE + (size_t)plen)
		return -ENODATA;
	if (len > CTL_HDR_SIZE + (size_t)plen)
		return -EBADMSG;
	resp->req_type = req_type;
	r = (struct rd){.p = p + CTL_HDR_SIZE, .left = plen};
	err = rd_resp(&r, resp);
	if (err < 0) {
		ctl_resp_free(resp);
		ctl_resp_init(resp, 0);
	}
	return err;
}

const char *ctl_strerror(int err)
{
	switch (err) {
	case -ENODATA:
		return "truncated message";
	case -EPROTO:
		return "bad magic: not a homeostat control message";
	case -EPROTONOSUPPORT:
		return "unsupported protocol version";
	case -EMSGSIZE:
		return "message too large";
	case -EOPNOTSUPP:
		return "unknown message type";
	case -EBADMSG:
		return "malformed message";
	case -E2BIG:
		return "too many tables, columns or rows, or a string too long";
	case -ERANGE:
		return "argument out of range";
	default:
		return strerror(err < 0 ? -err : err);
	}
}
