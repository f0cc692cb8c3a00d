/* proto.h - the control socket protocol between homeostatd and the homeostat CLI.
 *
 * One connection carries one request and one response, then the daemon closes it. Both are
 * messages: a 12-byte header and a payload. Every integer on the wire is little-endian
 * (explicitly, byte by byte), so the format does not depend on the host although both ends
 * run on the same one.
 *
 *   header   u32 magic (CTL_MAGIC), u16 version (CTL_VERSION), u16 type, u32 payload length
 *   request  type is a request type below; its payload is its argument (enum ctl_arg), whose
 *            size is exact, or for PROFILE and REDIRECT within [payload_min, payload_max] and
 *            then exact once its strings' lengths are read:
 *              PROFILE   str target, u32 seconds, u8 kind, str func, u32 pid (0: none)
 *              REDIRECT  str name, str alternative ("": the redirect's next one)
 *   response type is CTL_RESP_BIT | the request type answered (CTL_RESP_BIT alone when the
 *            request could not be parsed); payload:
 *              i32 status (0 or -errno), str message, u32 ntables, then per table:
 *              str name, u32 ncols, ncols * (str name, u8 type), u32 nrows,
 *              nrows * ncols cells, row by row: u8 tag (0: null, else the column's type),
 *              then for STRING a str, for INT an i64, for REAL a double as its 64 bits
 *   str      u32 length, then that many bytes, no NUL among them, no terminator
 *
 * Decoders check everything exactly (OpenNTPD dispatch_imsg): lengths against the bytes left,
 * counts against the limits below, names, types, and that nothing is left over. They return
 * 0 or one of these errors (ctl_strerror() turns them into words):
 *   -ENODATA          fewer bytes than the header or its payload length announce
 *   -EPROTO           bad magic: not a homeostat control message
 *   -EPROTONOSUPPORT  another protocol version
 *   -EMSGSIZE         announced length above CTL_MSG_MAX
 *   -EOPNOTSUPP       unknown message type
 *   -EBADMSG          malformed: wrong payload size for the type, trailing bytes, a length
 *                     running past the end, NUL in a string, bad name, symbol, type or tag
 *   -E2BIG            a count or string length above the limits below
 *   -ERANGE           an argument out of range (change id 0, profile seconds outside
 *                     1..CTL_PROFILE_SECONDS_MAX, a pid above INT32_MAX)
 *
 * Adding a request type: a value in enum ctl_req_type, a row in the table in proto.c, and, if
 * its argument is new, an enum ctl_arg value with its field in struct ctl_request.
 */
#ifndef HS_CTL_PROTO_H
#define HS_CTL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define CTL_MAGIC	 0x4c544348u /* "HCTL" on the wire */
#define CTL_VERSION	 1
#define CTL_HDR_SIZE	 12
#define CTL_MSG_MAX	 (1024 * 1024) /* a whole message, header included */
#define CTL_REQ_BUF_SIZE 256	       /* enough for any encoded request */
#define CTL_RESP_BIT	 0x8000

#define CTL_NAME_MAX   64    /* table and column names: [a-z][a-z0-9_]* */
#define CTL_STR_MAX    65536 /* any string, message included, in bytes */
#define CTL_MAX_TABLES 16
#define CTL_MAX_COLS   32
#define CTL_MAX_ROWS   100000

/* PROFILE's argument. A target name is 1-64 bytes of [a-z0-9_-] (the policy's rule); a
 * function is 1-128 printable ASCII bytes without blanks, for FUNC and only for FUNC. */
#define CTL_TARGET_MAX		64
#define CTL_FUNC_MAX		128
#define CTL_PROFILE_SECONDS_MAX 300
#define CTL_PROFILE_PAYLOAD_MIN 17 /* 4 + 4 + 1 + 4 + 4, both strings empty */
#define CTL_PROFILE_PAYLOAD_MAX (CTL_PROFILE_PAYLOAD_MIN + CTL_TARGET_MAX + CTL_FUNC_MAX)

/* REDIRECT's argument. A redirect's name is 1-32 bytes of [a-z0-9_-] (the policy's rule for
 * names, SAFE_NAME_MAX); an alternative is 0-127 bytes of [A-Za-z0-9_.$@] (a symbol name as
 * the policy accepts it, SAFE_SYMBOL_MAX), none meaning the redirect's next alternative. */
#define CTL_REDIRECT_NAME_MAX	 32
#define CTL_SYMBOL_MAX		 127
#define CTL_REDIRECT_PAYLOAD_MIN 8 /* 4 + 4, both strings empty */
#define CTL_REDIRECT_PAYLOAD_MAX (CTL_REDIRECT_PAYLOAD_MIN + CTL_REDIRECT_NAME_MAX + CTL_SYMBOL_MAX)

enum ctl_req_type {
	CTL_REQ_STATUS = 1,
	CTL_REQ_HISTORY = 2,  /* limit */
	CTL_REQ_APPROVE = 3,  /* id */
	CTL_REQ_REJECT = 4,   /* id */
	CTL_REQ_ROLLBACK = 5, /* id */
	CTL_REQ_PAUSE = 6,
	CTL_REQ_RESUME = 7,
	CTL_REQ_PROFILE = 8, /* target, seconds, kind, func, pid: answered when the window ends */
	CTL_REQ_EXPLAIN = 9, /* id */
	CTL_REQ_REDIRECT_LIST = 10,
	CTL_REQ_REDIRECT_APPLY = 11,  /* name, alternative */
	CTL_REQ_REDIRECT_REVERT = 12, /* id */
};

enum ctl_profile_kind {
	CTL_PROFILE_CPU = 1,   /* CPU-clock samples of every member, by stack */
	CTL_PROFILE_ALLOC = 2, /* outstanding allocations of one process, by stack */
	CTL_PROFILE_FUNC = 3,  /* latency of one function of one process */
};

/* The argument a request type carries, which bounds its payload size. */
enum ctl_arg {
	CTL_ARG_NONE,	  /* 0 bytes */
	CTL_ARG_LIMIT,	  /* u32 limit */
	CTL_ARG_ID,	  /* u64 id, > 0 */
	CTL_ARG_PROFILE,  /* str target, u32 seconds, u8 kind, str func, u32 pid */
	CTL_ARG_REDIRECT, /* str name, str alternative */
};

struct ctl_req_desc {
	uint16_t type;	  /* enum ctl_req_type */
	const char *name; /* "status", "history", "redirect list", ...: the CLI command too */
	enum ctl_arg arg;
	uint32_t payload_min, payload_max; /* equal for a fixed-size argument */
};

struct ctl_request {
	uint16_t type;	/* enum ctl_req_type */
	uint32_t limit; /* HISTORY: rows wanted, 0 for the daemon's default */
	uint64_t id; /* APPROVE, REJECT, ROLLBACK, EXPLAIN, REDIRECT_REVERT: the change id, > 0 */
	/* PROFILE */
	char target[CTL_TARGET_MAX + 1]; /* NUL-terminated */
	uint32_t seconds;		 /* 1..CTL_PROFILE_SECONDS_MAX */
	uint8_t kind;			 /* enum ctl_profile_kind */
	char func[CTL_FUNC_MAX + 1];	 /* FUNC: the symbol; "" for the others */
	uint32_t pid;			 /* 0: the daemon chooses */
	/* REDIRECT_APPLY */
	char redirect[CTL_REDIRECT_NAME_MAX + 1]; /* the policy redirect's name, NUL-terminated */
	char alternative[CTL_SYMBOL_MAX + 1];	  /* "": the redirect's next alternative */
	/* Not on the wire: set by the server before the handler runs, so that a handler can
	 * answer later (ctl_server_reply() in server.h). */
	uint64_t token;
};

enum ctl_col_type {
	CTL_COL_NULL = 0, /* a cell's type only: no value */
	CTL_COL_STRING = 1,
	CTL_COL_INT = 2,  /* int64_t */
	CTL_COL_REAL = 3, /* double */
};

struct ctl_cell {
	enum ctl_col_type type; /* the column's type, or CTL_COL_NULL */
	union {
		char *s;
		int64_t i;
		double r;
	};
};

struct ctl_table {
	char *name;
	uint32_t ncols;
	char **cols;
	enum ctl_col_type *types;
	uint32_t nrows;
	struct ctl_cell *cells; /* nrows * ncols, row by row: use ctl_table_cell() */
	size_t ncells;		/* cells filled, nrows * ncols once the last row is complete */
	size_t cap;
};

/* A response, as the daemon builds it and as the CLI decodes it. */
struct ctl_response {
	uint16_t req_type; /* the request answered; 0 when it could not be parsed */
	int32_t status;	   /* 0 or -errno */
	char *message;	   /* NULL reads as "" */
	uint32_t ntables;
	struct ctl_table *tables;
	int err; /* builder: the first error, kept; ctl_resp_encode() returns it */
};

/* Request types. */
const struct ctl_req_desc *ctl_req_desc(uint16_t type);
const struct ctl_req_desc *ctl_req_desc_by_name(const char *name);
extern const struct ctl_req_desc ctl_req_descs[];
extern const size_t ctl_req_ndescs;

/* Requests: encode into buf (CTL_REQ_BUF_SIZE is enough); decode exactly one whole message.
 * The encoder refuses what the decoder would, with the same error. */
int ctl_req_encode(const struct ctl_request *req, void *buf, size_t size, size_t *len);
int ctl_req_decode(const void *buf, size_t len, struct ctl_request *req);

/* PROFILE's argument rules, shared by both ends: 0, -EBADMSG (bad target or function name,
 * unknown kind, a function given to CPU or ALLOC or missing for FUNC), -E2BIG (a name too
 * long) or -ERANGE (seconds, pid). */
int ctl_profile_check(const struct ctl_request *req);
/* REDIRECT's argument rules, shared by both ends: 0, -EBADMSG (a name missing or not of
 * [a-z0-9_-], an alternative not of [A-Za-z0-9_.$@]) or -E2BIG (either too long). */
int ctl_redirect_check(const struct ctl_request *req);
/* "cpu", "alloc", "func"; NULL for an unknown kind. */
const char *ctl_profile_kind_name(unsigned kind);

/* For readers of a stream: with the first `have` bytes of a message in buf, set *need to the
 * size of the whole message (CTL_HDR_SIZE while the header is incomplete), or refuse the
 * header (magic, version, size; for requests also type and exact payload size). */
int ctl_req_size(const void *buf, size_t have, size_t *need);
int ctl_resp_size(const void *buf, size_t have, size_t *need);

/* Response builder. Every call returns 0 or -errno and keeps the first error in resp->err, so
 * a handler may make its calls and let ctl_resp_encode() report. Rules, checked here and by
 * the decoder: names are 1-64 of [a-z0-9_] starting with a letter; table names are unique and
 * neither "status" nor "message" (they become JSON keys next to those); column names are
 * unique in their table; a row gets exactly ncols cells of its columns' types (or null); an
 * error status carries no table. */
void ctl_resp_init(struct ctl_response *resp, uint16_t req_type);
void ctl_resp_free(struct ctl_response *resp); /* frees everything; resp reads as empty */
int ctl_resp_message(struct ctl_response *resp, const char *fmt, ...) HS_PRINTF(2, 3);
/* Sets status = err (< 0) and the message; returns err: `return ctl_resp_error(...);` */
int ctl_resp_error(struct ctl_response *resp, int err, const char *fmt, ...) HS_PRINTF(3, 4);
int ctl_resp_table(struct ctl_response *resp, const char *name, uint32_t ncols,
		   const char *const *cols, const enum ctl_col_type *types);
int ctl_resp_row(struct ctl_response *resp); /* starts a row of the last table */
int ctl_resp_cell_str(struct ctl_response *resp, const char *s); /* NULL: a null cell */
int ctl_resp_cell_strf(struct ctl_response *resp, const char *fmt, ...) HS_PRINTF(2, 3);
int ctl_resp_cell_int(struct ctl_response *resp, int64_t v);
int ctl_resp_cell_real(struct ctl_response *resp, double v);
int ctl_resp_cell_null(struct ctl_response *resp);

/* Encodes into a malloc'ed *buf; -EMSGSIZE above CTL_MSG_MAX. */
int ctl_resp_encode(const struct ctl_response *resp, void **buf, size_t *len);
/* Decodes one whole message into resp (ctl_resp_free() it); on error resp is left empty. */
int ctl_resp_decode(const void *buf, size_t len, struct ctl_response *resp);

static inline const struct ctl_cell *ctl_table_cell(const struct ctl_table *t, uint32_t row,
						    uint32_t col)
{
	return &t->cells[(size_t)row * t->ncols + col];
}

const struct ctl_table *ctl_resp_find_table(const struct ctl_response *resp, const char *name);

/* Words for the decoders' errors above, strerror() for the others. */
const char *ctl_strerror(int err);

#endif
