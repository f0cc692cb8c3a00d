/* test_proto.c - the control protocol: round trips, every refusal with its exact error, and
 * the exact text and JSON the CLI prints.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/proto.h"
#include "ctl/render.h"

/* A hand-made message, to say on the wire what the encoder never would. */
struct msg {
	uint8_t b[1 << 17];
	size_t n;
};

static void m_u8(struct msg *m, uint8_t v)
{
	m->b[m->n++] = v;
}

static void m_u16(struct msg *m, uint16_t v)
{
	m_u8(m, v & 0xff);
	m_u8(m, v >> 8);
}

static void m_u32(struct msg *m, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		m_u8(m, (v >> (8 * i)) & 0xff);
}

static void m_u64(struct msg *m, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		m_u8(m, (v >> (8 * i)) & 0xff);
}

static void m_bytes(struct msg *m, const void *p, size_t n)
{
	memcpy(m->b + m->n, p, n);
	m->n += n;
}

static void m_str(struct msg *m, const char *s)
{
	m_u32(m, strlen(s));
	m_bytes(m, s, strlen(s));
}

static void m_hdr(struct msg *m, uint32_t magic, uint16_t version, uint16_t type, uint32_t len)
{
	m->n = 0;
	m_u32(m, magic);
	m_u16(m, version);
	m_u16(m, type);
	m_u32(m, len);
}

/* Starts a response to STATUS; m_end() sets the payload length. */
static void m_resp(struct msg *m, int32_t status, const char *message)
{
	m_hdr(m, CTL_MAGIC, CTL_VERSION, CTL_RESP_BIT | CTL_REQ_STATUS, 0);
	m_u32(m, (uint32_t)status);
	m_str(m, message);
}

static void m_end(struct msg *m)
{
	uint32_t len = m->n - CTL_HDR_SIZE;

	for (int i = 0; i < 4; i++)
		m->b[8 + i] = (len >> (8 * i)) & 0xff;
}

static int decode(const struct msg *m)
{
	struct ctl_response resp;
	int r = ctl_resp_decode(m->b, m->n, &resp);

	if (r == 0)
		ctl_resp_free(&resp);
	else
		assert_int_equal(resp.ntables, 0);
	return r;
}

/* Requests. */

static void test_req_table(void **state)
{
	for (size_t i = 0; i < ctl_req_ndescs; i++) {
		const struct ctl_req_desc *d = &ctl_req_descs[i];
		uint32_t size = d->arg == CTL_ARG_ID ? 8 : d->arg == CTL_ARG_LIMIT ? 4 : 0;

		if (d->arg == CTL_ARG_PROFILE) {
			assert_int_equal(d->payload_min, 17);
			assert_int_equal(d->payload_max, 17 + 64 + 128);
		} else if (d->arg == CTL_ARG_REDIRECT) {
			assert_int_equal(d->payload_min, 8);
			assert_int_equal(d->payload_max, 8 + 32 + 127);
		} else {
			assert_int_equal(d->payload_min, size);
			assert_int_equal(d->payload_max, size);
		}
		assert_ptr_equal(ctl_req_desc(d->type), d);
		assert_ptr_equal(ctl_req_desc_by_name(d->name), d);
		assert_true(CTL_HDR_SIZE + d->payload_max <= CTL_REQ_BUF_SIZE);
	}
	assert_null(ctl_req_desc(0));
	assert_null(ctl_req_desc_by_name("reboot"));

	/* The wire values never change: a new type takes the next one. */
	static const char *const names[] = {NULL,
					    "status",
					    "history",
					    "approve",
					    "reject",
					    "rollback",
					    "pause",
					    "resume",
					    "profile",
					    "explain",
					    "redirect list",
					    "redirect apply",
					    "redirect revert"};
	assert_int_equal(ctl_req_ndescs, ARRAY_SIZE(names) - 1);
	for (uint16_t t = 1; t < ARRAY_SIZE(names); t++)
		assert_string_equal(ctl_req_desc(t)->name, names[t]);
	assert_int_equal(CTL_REQ_EXPLAIN, 9);
	assert_int_equal(ctl_req_desc(CTL_REQ_EXPLAIN)->arg, CTL_ARG_ID);
	assert_int_equal(CTL_REQ_REDIRECT_LIST, 10);
	assert_int_equal(ctl_req_desc(CTL_REQ_REDIRECT_LIST)->arg, CTL_ARG_NONE);
	assert_int_equal(CTL_REQ_REDIRECT_APPLY, 11);
	assert_int_equal(ctl_req_desc(CTL_REQ_REDIRECT_APPLY)->arg, CTL_ARG_REDIRECT);
	assert_int_equal(CTL_REQ_REDIRECT_REVERT, 12);
	assert_int_equal(ctl_req_desc(CTL_REQ_REDIRECT_REVERT)->arg, CTL_ARG_ID);
	/* The CLI reaches the redirect ones by two words, never by "redirect" alone. */
	assert_null(ctl_req_desc_by_name("redirect"));
}

static void test_req_round_trip(void **state)
{
	for (size_t i = 0; i < ctl_req_ndescs; i++) {
		const struct ctl_req_desc *d = &ctl_req_descs[i];
		struct ctl_request in = {.type = d->type}, out;
		uint8_t buf[CTL_REQ_BUF_SIZE];
		size_t len, need;

		if (d->arg == CTL_ARG_ID)
			in.id = 0x0102030405060708ull;
		if (d->arg == CTL_ARG_LIMIT)
			in.limit = 0xa0b0c0d0u;
		if (d->arg == CTL_ARG_PROFILE) {
			strcpy(in.target, "web-1");
			in.seconds = 3;
			in.kind = CTL_PROFILE_CPU;
		}
		if (d->arg == CTL_ARG_REDIRECT) {
			strcpy(in.redirect, "fast-path_2");
			strcpy(in.alternative, "hash__alt_simd");
		}
		assert_int_equal(ctl_req_encode(&in, buf, sizeof(buf), &len), 0);
		assert_int_equal(len, CTL_HDR_SIZE + d->payload_min + strlen(in.target) +
					  strlen(in.redirect) + strlen(in.alternative));
		assert_int_equal(ctl_req_size(buf, 3, &need), 0);
		assert_int_equal(need, CTL_HDR_SIZE);
		assert_int_equal(ctl_req_size(buf, CTL_HDR_SIZE, &need), 0);
		assert_int_equal(need, len);
		memset(&out, 0xff, sizeof(out));
		assert_int_equal(ctl_req_decode(buf, len, &out), 0);
		assert_int_equal(out.type, in.type);
		assert_int_equal(out.id, in.id);
		assert_int_equal(out.limit, in.limit);
		assert_string_equal(out.target, in.target);
		assert_int_equal(out.seconds, in.seconds);
		assert_int_equal(out.kind, in.kind);
		assert_string_equal(out.func, in.func);
		assert_int_equal(out.pid, in.pid);
		assert_string_equal(out.redirect, in.redirect);
		assert_string_equal(out.alternative, in.alternative);
		assert_int_equal(out.token, 0);
	}
}

static void test_req_wire_bytes(void **state)
{
	static const uint8_t expect[] = {'H', 'C', 'T', 'L', 1, 0, 3, 0, 8, 0,
					 0,   0,   8,	7,   6, 5, 4, 3, 2, 1};
	struct ctl_request req = {.type = CTL_REQ_APPROVE, .id = 0x0102030405060708ull};
	uint8_t buf[CTL_REQ_BUF_SIZE];
	size_t len;

	assert_int_equal(ctl_req_encode(&req, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, sizeof(expect));
	assert_memory_equal(buf, expect, sizeof(expect));
	assert_int_equal(ctl_req_encode(&req, buf, 19, &len), -ENOBUFS);
	req.id = 0;
	assert_int_equal(ctl_req_encode(&req, buf, sizeof(buf), &len), -ERANGE);
	req.type = 99;
	assert_int_equal(ctl_req_encode(&req, buf, sizeof(buf), &len), -EOPNOTSUPP);

	/* EXPLAIN: the same argument, type 9. */
	req = (struct ctl_request){.type = CTL_REQ_EXPLAIN, .id = 0x0102030405060708ull};
	assert_int_equal(ctl_req_encode(&req, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, sizeof(expect));
	assert_int_equal(buf[6], 9);
	assert_memory_equal(buf + 7, expect + 7, sizeof(expect) - 7);
	req.id = 0;
	assert_int_equal(ctl_req_encode(&req, buf, sizeof(buf), &len), -ERANGE);
}

static void test_req_refused(void **state)
{
	struct ctl_request req;
	struct msg m;
	size_t need;

	m_hdr(&m, CTL_MAGIC ^ 1, CTL_VERSION, CTL_REQ_STATUS, 0);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), -EPROTO);
	assert_int_equal(ctl_req_size(m.b, m.n, &need), -EPROTO);

	m_hdr(&m, CTL_MAGIC, CTL_VERSION + 1, CTL_REQ_STATUS, 0);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), -EPROTONOSUPPORT);
	assert_int_equal(ctl_req_size(m.b, m.n, &need), -EPROTONOSUPPORT);

	static const uint16_t unknown[] = {0, 13, 0x7fff, CTL_RESP_BIT | CTL_REQ_STATUS, 0xffff};
	for (size_t i = 0; i < ARRAY_SIZE(unknown); i++) {
		m_hdr(&m, CTL_MAGIC, CTL_VERSION, unknown[i], 0);
		assert_int_equal(ctl_req_decode(m.b, m.n, &req), -EOPNOTSUPP);
		assert_int_equal(ctl_req_size(m.b, m.n, &need), -EOPNOTSUPP);
	}

	m_hdr(&m, CTL_MAGIC, CTL_VERSION, CTL_REQ_STATUS, CTL_MSG_MAX - CTL_HDR_SIZE + 1);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), -EMSGSIZE);
	assert_int_equal(ctl_req_size(m.b, m.n, &need), -EMSGSIZE);
	m_hdr(&m, CTL_MAGIC, CTL_VERSION, CTL_REQ_STATUS, 0xffffffffu);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), -EMSGSIZE);

	/* Wrong payload size, for every type, in both directions, the bytes present. */
	for (size_t i = 0; i < ctl_req_ndescs; i++) {
		const struct ctl_req_desc *d = &ctl_req_descs[i];
		uint32_t wrong[] = {d->payload_max + 1, d->payload_max + 4,
				    d->payload_min ? d->payload_min - 1 : 8};

		for (size_t k = 0; k < ARRAY_SIZE(wrong); k++) {
			m_hdr(&m, CTL_MAGIC, CTL_VERSION, d->type, wrong[k]);
			for (uint32_t b = 0; b < wrong[k]; b++)
				m_u8(&m, 1);
			assert_int_equal(ctl_req_decode(m.b, m.n, &req), -EBADMSG);
			assert_int_equal(ctl_req_size(m.b, m.n, &need), -EBADMSG);
		}
	}

	/* Truncated header, truncated payload, trailing bytes. */
	m_hdr(&m, CTL_MAGIC, CTL_VERSION, CTL_REQ_APPROVE, 8);
	m_u64(&m, 12);
	for (size_t n = 0; n < m.n; n++)
		assert_int_equal(ctl_req_decode(m.b, n, &req), -ENODATA);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), 0);
	assert_int_equal(req.id, 12);
	m_u8(&m, 0);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), -EBADMSG);

	m_hdr(&m, CTL_MAGIC, CTL_VERSION, CTL_REQ_ROLLBACK, 8);
	m_u64(&m, 0);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), -ERANGE);
	m_hdr(&m, CTL_MAGIC, CTL_VERSION, CTL_REQ_EXPLAIN, 8);
	m_u64(&m, 0);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), -ERANGE);
	m_hdr(&m, CTL_MAGIC, CTL_VERSION, CTL_REQ_REDIRECT_REVERT, 8);
	m_u64(&m, 0);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), -ERANGE);
	m_hdr(&m, CTL_MAGIC, CTL_VERSION, CTL_REQ_REDIRECT_REVERT, 8);
	m_u64(&m, 77);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), 0);
	assert_int_equal(req.type, CTL_REQ_REDIRECT_REVERT);
	assert_int_equal(req.id, 77);

	m_hdr(&m, CTL_MAGIC, CTL_VERSION, CTL_REQ_HISTORY, 4);
	m_u32(&m, 0);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), 0);
	assert_int_equal(req.type, CTL_REQ_HISTORY);
	assert_int_equal(req.limit, 0);
}

/* PROFILE: a variable-size argument, still decoded exactly. */

static void m_profile(struct msg *m, const char *target, uint32_t seconds, uint8_t kind,
		      const char *func, uint32_t pid)
{
	m_hdr(m, CTL_MAGIC, CTL_VERSION, CTL_REQ_PROFILE, 0);
	m_str(m, target);
	m_u32(m, seconds);
	m_u8(m, kind);
	m_str(m, func);
	m_u32(m, pid);
	m_end(m);
}

static struct ctl_request profile_req(const char *target, uint32_t seconds, uint8_t kind,
				      const char *func, uint32_t pid)
{
	struct ctl_request req = {
	    .type = CTL_REQ_PROFILE, .seconds = seconds, .kind = kind, .pid = pid};

	strcpy(req.target, target);
	strcpy(req.func, func);
	return req;
}

static void test_req_profile(void **state)
{
	static const uint8_t expect[] = {
	    'H',  'C',	'T', 'L', 1,   0,   8,	 0,   25,  0, 0, 0, /* header: PROFILE, 25 bytes */
	    3,	  0,	0,   0,	  'h', 'o', 'g',		    /* target */
	    5,	  0,	0,   0,					    /* seconds */
	    3,							    /* kind: FUNC */
	    5,	  0,	0,   0,	  'm', 'a', 'i', 'n', '2',	    /* func */
	    0x39, 0x30, 0,   0,					    /* pid 12345 */
	};
	struct ctl_request in = profile_req("hog", 5, CTL_PROFILE_FUNC, "main2", 12345), out;
	uint8_t buf[CTL_REQ_BUF_SIZE];
	size_t len, need;

	assert_int_equal(ctl_req_encode(&in, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, sizeof(expect));
	assert_memory_equal(buf, expect, sizeof(expect));
	assert_int_equal(ctl_req_size(buf, CTL_HDR_SIZE, &need), 0);
	assert_int_equal(need, len);
	memset(&out, 0xff, sizeof(out));
	assert_int_equal(ctl_req_decode(buf, len, &out), 0);
	assert_int_equal(out.type, CTL_REQ_PROFILE);
	assert_string_equal(out.target, "hog");
	assert_int_equal(out.seconds, 5);
	assert_int_equal(out.kind, CTL_PROFILE_FUNC);
	assert_string_equal(out.func, "main2");
	assert_int_equal(out.pid, 12345);
	assert_int_equal(out.id, 0);
	assert_int_equal(out.token, 0);
	assert_int_equal(ctl_req_encode(&in, buf, sizeof(expect) - 1, &len), -ENOBUFS);

	/* Truncated anywhere: ENODATA. */
	for (size_t n = 0; n < sizeof(expect); n++)
		assert_int_equal(ctl_req_decode(expect, n, &out), -ENODATA);

	/* The longest one fits the server's buffer. */
	char target[CTL_TARGET_MAX + 2], func[CTL_FUNC_MAX + 2];

	memset(target, 'a', sizeof(target));
	memset(func, 'f', sizeof(func));
	target[CTL_TARGET_MAX] = func[CTL_FUNC_MAX] = '\0';
	in = profile_req(target, CTL_PROFILE_SECONDS_MAX, CTL_PROFILE_FUNC, func, INT32_MAX);
	assert_int_equal(ctl_req_encode(&in, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, CTL_HDR_SIZE + CTL_PROFILE_PAYLOAD_MAX);
	assert_int_equal(ctl_req_decode(buf, len, &out), 0);
	assert_string_equal(out.target, target);
	assert_string_equal(out.func, func);

	/* Kinds by name, for the CLI and the daemon's messages. */
	assert_string_equal(ctl_profile_kind_name(CTL_PROFILE_CPU), "cpu");
	assert_string_equal(ctl_profile_kind_name(CTL_PROFILE_ALLOC), "alloc");
	assert_string_equal(ctl_profile_kind_name(CTL_PROFILE_FUNC), "func");
	assert_null(ctl_profile_kind_name(0));
	assert_null(ctl_profile_kind_name(4));
}

static void test_req_profile_refused(void **state)
{
	char long_target[CTL_TARGET_MAX + 2], long_func[CTL_FUNC_MAX + 2];
	static const struct {
		const char *target;
		uint32_t seconds;
		uint8_t kind;
		const char *func;
		uint32_t pid;
		int err;
	} bad[] = {
	    {"", 3, CTL_PROFILE_CPU, "", 0, -EBADMSG},	  /* no target */
	    {"Web", 3, CTL_PROFILE_CPU, "", 0, -EBADMSG}, /* not [a-z0-9_-] */
	    {"a b", 3, CTL_PROFILE_CPU, "", 0, -EBADMSG},
	    {"a\n", 3, CTL_PROFILE_CPU, "", 0, -EBADMSG},
	    {"hog", 0, CTL_PROFILE_CPU, "", 0, -ERANGE}, /* seconds */
	    {"hog", 301, CTL_PROFILE_CPU, "", 0, -ERANGE},
	    {"hog", 0xffffffffu, CTL_PROFILE_CPU, "", 0, -ERANGE},
	    {"hog", 3, 0, "", 0, -EBADMSG}, /* kind */
	    {"hog", 3, 4, "", 0, -EBADMSG},
	    {"hog", 3, 0xff, "", 0, -EBADMSG},
	    {"hog", 3, CTL_PROFILE_CPU, "main", 0, -EBADMSG}, /* func only for FUNC */
	    {"hog", 3, CTL_PROFILE_ALLOC, "main", 0, -EBADMSG},
	    {"hog", 3, CTL_PROFILE_FUNC, "", 0, -EBADMSG}, /* and then needed */
	    {"hog", 3, CTL_PROFILE_FUNC, "a b", 0, -EBADMSG},
	    {"hog", 3, CTL_PROFILE_FUNC, "a\x7f", 0, -EBADMSG},
	    {"hog", 3, CTL_PROFILE_FUNC, "\xc3\xa9t\xc3\xa9", 0, -EBADMSG},
	    {"hog", 3, CTL_PROFILE_CPU, "", 0x80000000u, -ERANGE}, /* pid */
	    {"hog", 3, CTL_PROFILE_CPU, "", 0xffffffffu, -ERANGE},
	};
	struct ctl_request req;
	uint8_t buf[CTL_REQ_BUF_SIZE];
	struct msg m;
	size_t len, need;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		m_profile(&m, bad[i].target, bad[i].seconds, bad[i].kind, bad[i].func, bad[i].pid);
		assert_int_equal(ctl_req_size(m.b, m.n, &need), 0); /* the header is fine */
		assert_int_equal(ctl_req_decode(m.b, m.n, &req), bad[i].err);
		/* The encoder refuses what the decoder would, with the same error. */
		req = profile_req(bad[i].target, bad[i].seconds, bad[i].kind, bad[i].func,
				  bad[i].pid);
		assert_int_equal(ctl_profile_check(&req), bad[i].err);
		assert_int_equal(ctl_req_encode(&req, buf, sizeof(buf), &len), bad[i].err);
	}

	/* Names too long: E2BIG, on the wire and in the encoder. */
	memset(long_target, 'a', sizeof(long_target));
	long_target[CTL_TARGET_MAX + 1] = '\0';
	m_profile(&m, long_target, 3, CTL_PROFILE_CPU, "", 0);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), -E2BIG);
	memset(long_func, 'f', sizeof(long_func));
	long_func[CTL_FUNC_MAX + 1] = '\0';
	m_profile(&m, "hog", 3, CTL_PROFILE_FUNC, long_func, 0);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), -E2BIG);
	req = profile_req("hog", 3, CTL_PROFILE_FUNC, "", 0);
	memcpy(req.func, long_func, CTL_FUNC_MAX + 1); /* not terminated in its array */
	assert_int_equal(ctl_req_encode(&req, buf, sizeof(buf), &len), -E2BIG);

	/* A NUL inside a string. */
	m_hdr(&m, CTL_MAGIC, CTL_VERSION, CTL_REQ_PROFILE, 0);
	m_u32(&m, 3);
	m_bytes(&m, "h\0g", 3);
	m_u32(&m, 3);
	m_u8(&m, CTL_PROFILE_CPU);
	m_u32(&m, 0);
	m_u32(&m, 0);
	m_end(&m);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), -EBADMSG);

	/* A string length running past the payload, then one leaving bytes over. */
	m_hdr(&m, CTL_MAGIC, CTL_VERSION, CTL_REQ_PROFILE, 0);
	m_u32(&m, 60);
	m_bytes(&m, "hog", 3);
	m_u32(&m, 3);
	m_u8(&m, CTL_PROFILE_CPU);
	m_u32(&m, 0);
	m_u32(&m, 0);
	m_end(&m);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), -EBADMSG);
	m_profile(&m, "hog", 3, CTL_PROFILE_CPU, "", 0);
	m_u8(&m, 0);
	m_end(&m);
	assert_int_equal(ctl_req_size(m.b, m.n, &need), 0);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), -EBADMSG);

	/* Payload sizes outside [min, max] are refused from the header alone. */
	m_hdr(&m, CTL_MAGIC, CTL_VERSION, CTL_REQ_PROFILE, CTL_PROFILE_PAYLOAD_MIN - 1);
	assert_int_equal(ctl_req_size(m.b, m.n, &need), -EBADMSG);
	m_hdr(&m, CTL_MAGIC, CTL_VERSION, CTL_REQ_PROFILE, CTL_PROFILE_PAYLOAD_MAX + 1);
	assert_int_equal(ctl_req_size(m.b, m.n, &need), -EBADMSG);
	for (uint32_t b = 0; b < CTL_PROFILE_PAYLOAD_MAX + 1; b++)
		m_u8(&m, 0);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), -EBADMSG);

	/* A response to a profile is a response like the others. */
	m_hdr(&m, CTL_MAGIC, CTL_VERSION, CTL_RESP_BIT | CTL_REQ_PROFILE, 0);
	m_u32(&m, (uint32_t)-EBUSY);
	m_str(&m, "busy");
	m_u32(&m, 0);
	m_end(&m);
	assert_int_equal(decode(&m), 0);
}

/* REDIRECT (redirect apply): two strings, the second possibly empty. */

static void m_redirect(struct msg *m, const char *name, const char *alt)
{
	m_hdr(m, CTL_MAGIC, CTL_VERSION, CTL_REQ_REDIRECT_APPLY, 0);
	m_str(m, name);
	m_str(m, alt);
	m_end(m);
}

static struct ctl_request redirect_req(const char *name, const char *alt)
{
	struct ctl_request req = {.type = CTL_REQ_REDIRECT_APPLY};

	strcpy(req.redirect, name);
	strcpy(req.alternative, alt);
	return req;
}

static void test_req_redirect(void **state)
{
	static const uint8_t expect[] = {
	    'H', 'C', 'T', 'L', 1,   0,	  11,  0,   18,	 0,   0,
	    0,				       /* header: REDIRECT_APPLY, 18 bytes */
	    3,	 0,   0,   0,	'h', 'o', 't', /* name */
	    7,	 0,   0,   0,	'f', '_', '_', 'a', 'l', 't', '2', /* alternative */
	};
	static const uint8_t expect_next[] = {
	    'H', 'C', 'T', 'L', 1,   0,	  11,  0, 11, 0, 0, 0, /* 11 bytes */
	    3,	 0,   0,   0,	'h', 'o', 't', 0, 0,  0, 0,    /* name, no alternative */
	};
	struct ctl_request in = redirect_req("hot", "f__alt2"), out;
	uint8_t buf[CTL_REQ_BUF_SIZE];
	size_t len, need;

	assert_int_equal(ctl_req_encode(&in, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, sizeof(expect));
	assert_memory_equal(buf, expect, sizeof(expect));
	assert_int_equal(ctl_req_size(buf, CTL_HDR_SIZE, &need), 0);
	assert_int_equal(need, len);
	memset(&out, 0xff, sizeof(out));
	assert_int_equal(ctl_req_decode(buf, len, &out), 0);
	assert_int_equal(out.type, CTL_REQ_REDIRECT_APPLY);
	assert_string_equal(out.redirect, "hot");
	assert_string_equal(out.alternative, "f__alt2");
	assert_int_equal(out.id, 0);
	assert_string_equal(out.target, "");
	assert_int_equal(out.token, 0);
	assert_int_equal(ctl_req_encode(&in, buf, sizeof(expect) - 1, &len), -ENOBUFS);
	for (size_t n = 0; n < sizeof(expect); n++)
		assert_int_equal(ctl_req_decode(expect, n, &out), -ENODATA);

	/* No alternative: the redirect's next one. */
	in = redirect_req("hot", "");
	assert_int_equal(ctl_req_encode(&in, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, sizeof(expect_next));
	assert_memory_equal(buf, expect_next, sizeof(expect_next));
	memset(&out, 0xff, sizeof(out));
	assert_int_equal(ctl_req_decode(buf, len, &out), 0);
	assert_string_equal(out.redirect, "hot");
	assert_string_equal(out.alternative, "");

	/* Every character each may hold; the longest ones fit the server's buffer. */
	in = redirect_req("abcdefghijklmnopqrstuvwxyz0123_-",
			  "_ZN3foo3barEv.cold$x@GLIBC_2.2.5ABCDEFGHIJKLMNOPQRSTUVWXYZ");
	assert_int_equal(ctl_redirect_check(&in), 0);
	assert_int_equal(ctl_req_encode(&in, buf, sizeof(buf), &len), 0);
	assert_int_equal(ctl_req_decode(buf, len, &out), 0);
	assert_string_equal(out.redirect, in.redirect);
	assert_string_equal(out.alternative, in.alternative);

	char name[CTL_REDIRECT_NAME_MAX + 1], alt[CTL_SYMBOL_MAX + 1];

	memset(name, 'n', sizeof(name));
	memset(alt, 'A', sizeof(alt));
	name[CTL_REDIRECT_NAME_MAX] = alt[CTL_SYMBOL_MAX] = '\0';
	in = redirect_req(name, alt);
	assert_int_equal(ctl_req_encode(&in, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, CTL_HDR_SIZE + CTL_REDIRECT_PAYLOAD_MAX);
	assert_int_equal(CTL_REDIRECT_PAYLOAD_MAX, 167);
	memset(&out, 0, sizeof(out));
	assert_int_equal(ctl_req_decode(buf, len, &out), 0);
	assert_string_equal(out.redirect, name);
	assert_string_equal(out.alternative, alt);
}

static void test_req_redirect_refused(void **state)
{
	char long_name[CTL_REDIRECT_NAME_MAX + 2], long_alt[CTL_SYMBOL_MAX + 2];
	static const struct {
		const char *name, *alt;
		int err;
	} bad[] = {
	    {"", "", -EBADMSG},					/* no name */
	    {"", "f__alt", -EBADMSG},	 {"Hot", "", -EBADMSG}, /* a name is [a-z0-9_-] */
	    {"h t", "", -EBADMSG},	 {"h.t", "", -EBADMSG},
	    {"hot\n", "", -EBADMSG},	 {"h\xc3\xa9", "", -EBADMSG},
	    {"hot", "f-alt", -EBADMSG}, /* an alternative is [A-Za-z0-9_.$@] */
	    {"hot", "f alt", -EBADMSG},	 {"hot", "f/alt", -EBADMSG},
	    {"hot", "f(int)", -EBADMSG}, {"hot", "f\x7f", -EBADMSG},
	    {"hot", "f\t", -EBADMSG},	 {"hot", "\xc3\xa9t\xc3\xa9", -EBADMSG},
	};
	struct ctl_request req;
	uint8_t buf[CTL_REQ_BUF_SIZE];
	struct msg m;
	size_t len, need;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		m_redirect(&m, bad[i].name, bad[i].alt);
		assert_int_equal(ctl_req_size(m.b, m.n, &need), 0); /* the header is fine */
		assert_int_equal(ctl_req_decode(m.b, m.n, &req), bad[i].err);
		/* The encoder refuses what the decoder would, with the same error. */
		req = redirect_req(bad[i].name, bad[i].alt);
		assert_int_equal(ctl_redirect_check(&req), bad[i].err);
		assert_int_equal(ctl_req_encode(&req, buf, sizeof(buf), &len), bad[i].err);
	}

	/* Too long by one: E2BIG, on the wire and in the encoder. */
	memset(long_name, 'a', sizeof(long_name));
	long_name[CTL_REDIRECT_NAME_MAX + 1] = '\0';
	m_redirect(&m, long_name, "");
	assert_int_equal(ctl_req_size(m.b, m.n, &need), 0);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), -E2BIG);
	memset(long_alt, 'f', sizeof(long_alt));
	long_alt[CTL_SYMBOL_MAX + 1] = '\0';
	m_redirect(&m, "hot", long_alt);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), -E2BIG);
	req = redirect_req("hot", "");
	memcpy(req.redirect, long_name, CTL_REDIRECT_NAME_MAX + 1); /* not terminated */
	assert_int_equal(ctl_redirect_check(&req), -E2BIG);
	assert_int_equal(ctl_req_encode(&req, buf, sizeof(buf), &len), -E2BIG);
	req = redirect_req("hot", "");
	memcpy(req.alternative, long_alt, CTL_SYMBOL_MAX + 1);
	assert_int_equal(ctl_redirect_check(&req), -E2BIG);
	assert_int_equal(ctl_req_encode(&req, buf, sizeof(buf), &len), -E2BIG);

	/* A NUL inside either string. */
	m_hdr(&m, CTL_MAGIC, CTL_VERSION, CTL_REQ_REDIRECT_APPLY, 0);
	m_u32(&m, 3);
	m_bytes(&m, "h\0t", 3);
	m_u32(&m, 0);
	m_end(&m);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), -EBADMSG);
	m_hdr(&m, CTL_MAGIC, CTL_VERSION, CTL_REQ_REDIRECT_APPLY, 0);
	m_str(&m, "hot");
	m_u32(&m, 3);
	m_bytes(&m, "f\0g", 3);
	m_end(&m);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), -EBADMSG);

	/* A length running past the payload; the second string missing; bytes left over. */
	m_hdr(&m, CTL_MAGIC, CTL_VERSION, CTL_REQ_REDIRECT_APPLY, 0);
	m_u32(&m, 5);
	m_bytes(&m, "hot", 3);
	m_u32(&m, 0);
	m_end(&m);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), -EBADMSG);
	m_hdr(&m, CTL_MAGIC, CTL_VERSION, CTL_REQ_REDIRECT_APPLY, 0);
	m_str(&m, "hot");
	m_u32(&m, 4);
	m_bytes(&m, "f", 1);
	m_end(&m);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), -EBADMSG);
	m_hdr(&m, CTL_MAGIC, CTL_VERSION, CTL_REQ_REDIRECT_APPLY, 0);
	m_str(&m, "hot");
	m_u32(&m, 0);
	m_u32(&m, 0);
	m_u32(&m, 0); /* 15 bytes: within the bounds, one u32 too many */
	m_end(&m);
	assert_int_equal(ctl_req_size(m.b, m.n, &need), 0);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), -EBADMSG);
	m_redirect(&m, "hot", "f");
	m_u8(&m, 0);
	m_end(&m);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), -EBADMSG);

	/* Payload sizes outside [min, max] are refused from the header alone. */
	m_hdr(&m, CTL_MAGIC, CTL_VERSION, CTL_REQ_REDIRECT_APPLY, CTL_REDIRECT_PAYLOAD_MIN - 1);
	assert_int_equal(ctl_req_size(m.b, m.n, &need), -EBADMSG);
	for (uint32_t b = 0; b < CTL_REDIRECT_PAYLOAD_MIN - 1; b++)
		m_u8(&m, 0);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), -EBADMSG);
	m_hdr(&m, CTL_MAGIC, CTL_VERSION, CTL_REQ_REDIRECT_APPLY, CTL_REDIRECT_PAYLOAD_MAX + 1);
	assert_int_equal(ctl_req_size(m.b, m.n, &need), -EBADMSG);
	for (uint32_t b = 0; b < CTL_REDIRECT_PAYLOAD_MAX + 1; b++)
		m_u8(&m, 0);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), -EBADMSG);

	/* The list takes nothing, the revert a change id > 0. */
	req = (struct ctl_request){.type = CTL_REQ_REDIRECT_REVERT};
	assert_int_equal(ctl_req_encode(&req, buf, sizeof(buf), &len), -ERANGE);
	m_hdr(&m, CTL_MAGIC, CTL_VERSION, CTL_REQ_REDIRECT_LIST, 1);
	m_u8(&m, 0);
	assert_int_equal(ctl_req_decode(m.b, m.n, &req), -EBADMSG);
}

/* Responses. */

static const char *const change_cols[] = {"id", "kind", "score", "note"};
static const enum ctl_col_type change_types[] = {CTL_COL_INT, CTL_COL_STRING, CTL_COL_REAL,
						 CTL_COL_STRING};

static void build_sample(struct ctl_response *resp)
{
	static const char *const kv_cols[] = {"mode", "paused", "uptime_s"};
	static const enum ctl_col_type kv_types[] = {CTL_COL_STRING, CTL_COL_INT, CTL_COL_REAL};
	static const char *const empty_cols[] = {"id"};
	static const enum ctl_col_type empty_types[] = {CTL_COL_INT};

	ctl_resp_init(resp, CTL_REQ_STATUS);
	assert_int_equal(ctl_resp_message(resp, "running, %d changes", 3), 0);
	assert_int_equal(ctl_resp_table(resp, "daemon", 3, kv_cols, kv_types), 0);
	assert_int_equal(ctl_resp_row(resp), 0);
	assert_int_equal(ctl_resp_cell_str(resp, "enforce"), 0);
	assert_int_equal(ctl_resp_cell_int(resp, 0), 0);
	assert_int_equal(ctl_resp_cell_real(resp, 12.5), 0);

	assert_int_equal(ctl_resp_table(resp, "changes", 4, change_cols, change_types), 0);
	assert_int_equal(ctl_resp_row(resp), 0);
	assert_int_equal(ctl_resp_cell_int(resp, 7), 0);
	assert_int_equal(ctl_resp_cell_str(resp, "sysctl"), 0);
	assert_int_equal(ctl_resp_cell_real(resp, 0.1), 0);
	assert_int_equal(ctl_resp_cell_strf(resp, "vm.swappiness %d -> %d", 60, 10), 0);
	assert_int_equal(ctl_resp_row(resp), 0);
	assert_int_equal(ctl_resp_cell_int(resp, 12), 0);
	assert_int_equal(ctl_resp_cell_str(resp, "restart"), 0);
	assert_int_equal(ctl_resp_cell_real(resp, NAN), 0);
	assert_int_equal(ctl_resp_cell_null(resp), 0);
	assert_int_equal(ctl_resp_row(resp), 0);
	assert_int_equal(ctl_resp_cell_int(resp, INT64_MIN), 0);
	assert_int_equal(ctl_resp_cell_str(resp, NULL), 0);
	assert_int_equal(ctl_resp_cell_real(resp, -1e300), 0);
	assert_int_equal(ctl_resp_cell_str(resp, "caf\xc3\xa9 \"q\"\n"), 0);

	assert_int_equal(ctl_resp_table(resp, "pending", 1, empty_cols, empty_types), 0);
	assert_int_equal(resp->err, 0);
}

static void assert_tables_equal(const struct ctl_response *a, const struct ctl_response *b)
{
	assert_int_equal(a->req_type, b->req_type);
	assert_int_equal(a->status, b->status);
	assert_string_equal(a->message ? a->message : "", b->message ? b->message : "");
	assert_int_equal(a->ntables, b->ntables);
	for (uint32_t i = 0; i < a->ntables; i++) {
		const struct ctl_table *x = &a->tables[i], *y = &b->tables[i];

		assert_string_equal(x->name, y->name);
		assert_int_equal(x->ncols, y->ncols);
		assert_int_equal(x->nrows, y->nrows);
		assert_int_equal(x->ncells, y->ncells);
		for (uint32_t c = 0; c < x->ncols; c++) {
			assert_string_equal(x->cols[c], y->cols[c]);
			assert_int_equal(x->types[c], y->types[c]);
		}
		for (size_t k = 0; k < x->ncells; k++) {
			const struct ctl_cell *p = &x->cells[k], *q = &y->cells[k];

			assert_int_equal(p->type, q->type);
			if (p->type == CTL_COL_STRING)
				assert_string_equal(p->s, q->s);
			if (p->type == CTL_COL_INT)
				assert_int_equal(p->i, q->i);
			if (p->type == CTL_COL_REAL)
				assert_memory_equal(&p->r, &q->r, sizeof(double));
		}
	}
}

static void test_resp_round_trip(void **state)
{
	struct ctl_response in, out;
	void *buf;
	size_t len, need;

	build_sample(&in);
	assert_int_equal(ctl_resp_encode(&in, &buf, &len), 0);
	assert_int_equal(ctl_resp_size(buf, 5, &need), 0);
	assert_int_equal(need, CTL_HDR_SIZE);
	assert_int_equal(ctl_resp_size(buf, CTL_HDR_SIZE, &need), 0);
	assert_int_equal(need, len);
	assert_int_equal(ctl_resp_decode(buf, len, &out), 0);
	assert_tables_equal(&in, &out);
	assert_ptr_equal(ctl_resp_find_table(&out, "pending"), &out.tables[2]);
	assert_null(ctl_resp_find_table(&out, "nope"));
	assert_int_equal(ctl_table_cell(&out.tables[1], 2, 0)->i, INT64_MIN);
	assert_int_equal(ctl_table_cell(&out.tables[1], 2, 1)->type, CTL_COL_NULL);
	assert_true(isnan(ctl_table_cell(&out.tables[1], 1, 2)->r));
	free(buf);
	ctl_resp_free(&in);
	ctl_resp_free(&out);

	/* An empty answer, and an answer to a request that could not be parsed. */
	ctl_resp_init(&in, 0);
	assert_int_equal(ctl_resp_encode(&in, &buf, &len), 0);
	assert_int_equal(len, CTL_HDR_SIZE + 12);
	assert_int_equal(ctl_resp_decode(buf, len, &out), 0);
	assert_int_equal(out.req_type, 0);
	assert_string_equal(out.message, "");
	free(buf);
	ctl_resp_free(&out);
}

static void test_resp_error(void **state)
{
	struct ctl_response in, out;
	void *buf;
	size_t len;

	build_sample(&in);
	assert_int_equal(ctl_resp_error(&in, -ENOENT, "change %d not found", 12), -ENOENT);
	assert_int_equal(ctl_resp_encode(&in, &buf, &len), 0);
	assert_int_equal(ctl_resp_decode(buf, len, &out), 0);
	assert_int_equal(out.status, -ENOENT);
	assert_string_equal(out.message, "change 12 not found");
	assert_int_equal(out.ntables, 0); /* an error carries no table */
	free(buf);
	ctl_resp_free(&in);
	ctl_resp_free(&out);

	ctl_resp_init(&in, CTL_REQ_PAUSE);
	assert_int_equal(ctl_resp_error(&in, 5, "positive"), -EINVAL);
	assert_int_equal(in.status, -EINVAL);
	ctl_resp_free(&in);
}

static void test_builder_refused(void **state)
{
	static const char *const one[] = {"a"};
	static const char *const dup[] = {"a", "a"};
	static const char *const bad[] = {"A"};
	static const enum ctl_col_type ints[CTL_MAX_COLS + 1] = {
	    [0 ... CTL_MAX_COLS] = CTL_COL_INT,
	};
	static const enum ctl_col_type nul[] = {CTL_COL_NULL};
	const char *many[CTL_MAX_COLS + 1];
	char names[CTL_MAX_COLS + 1][8];
	struct ctl_response resp;
	void *buf;
	size_t len;

	for (int i = 0; i <= CTL_MAX_COLS; i++) {
		snprintf(names[i], sizeof(names[i]), "c%d", i);
		many[i] = names[i];
	}
#define REFUSED(call, want)                                                                        \
	do {                                                                                       \
		ctl_resp_init(&resp, CTL_REQ_STATUS);                                              \
		assert_int_equal(call, want);                                                      \
		assert_int_equal(resp.err, want);                                                  \
		assert_int_equal(ctl_resp_encode(&resp, &buf, &len), want);                        \
		ctl_resp_free(&resp);                                                              \
	} while (0)

	REFUSED(ctl_resp_table(&resp, "status", 1, one, ints), -EINVAL);
	REFUSED(ctl_resp_table(&resp, "message", 1, one, ints), -EINVAL);
	REFUSED(ctl_resp_table(&resp, "Big", 1, one, ints), -EINVAL);
	REFUSED(ctl_resp_table(&resp, "1st", 1, one, ints), -EINVAL);
	REFUSED(ctl_resp_table(&resp, "", 1, one, ints), -EINVAL);
	REFUSED(ctl_resp_table(&resp, "t", 0, one, ints), -EINVAL);
	REFUSED(ctl_resp_table(&resp, "t", 2, dup, ints), -EINVAL);
	REFUSED(ctl_resp_table(&resp, "t", 1, bad, ints), -EINVAL);
	REFUSED(ctl_resp_table(&resp, "t", 1, one, nul), -EINVAL);
	REFUSED(ctl_resp_table(&resp, "t", CTL_MAX_COLS + 1, many, ints), -E2BIG);
	REFUSED(ctl_resp_row(&resp), -EINVAL);
	REFUSED(ctl_resp_cell_int(&resp, 1), -EINVAL);

	/* Twice the same table name; a cell of the wrong type; a cell too many; a short row. */
	REFUSED(
	    (ctl_resp_table(&resp, "t", 1, one, ints), ctl_resp_table(&resp, "t", 1, one, ints)),
	    -EINVAL);
	REFUSED((ctl_resp_table(&resp, "t", 1, one, ints), ctl_resp_row(&resp),
		 ctl_resp_cell_str(&resp, "x")),
		-EINVAL);
	REFUSED((ctl_resp_table(&resp, "t", 1, one, ints), ctl_resp_row(&resp),
		 ctl_resp_cell_int(&resp, 1), ctl_resp_cell_int(&resp, 2)),
		-EINVAL);
	REFUSED((ctl_resp_table(&resp, "t", 2, many, ints), ctl_resp_row(&resp),
		 ctl_resp_cell_int(&resp, 1), ctl_resp_row(&resp)),
		-EINVAL);
	REFUSED((ctl_resp_table(&resp, "t", 2, many, ints), ctl_resp_row(&resp),
		 ctl_resp_cell_int(&resp, 1), ctl_resp_table(&resp, "u", 1, one, ints)),
		-EINVAL);

	/* The first error stays. */
	ctl_resp_init(&resp, CTL_REQ_STATUS);
	ctl_resp_table(&resp, "t", 1, one, ints);
	ctl_resp_cell_int(&resp, 1);
	assert_int_equal(ctl_resp_row(&resp), -EINVAL);
	assert_int_equal(ctl_resp_table(&resp, "u", 1, one, ints), -EINVAL);
	assert_int_equal(ctl_resp_encode(&resp, &buf, &len), -EINVAL);
	ctl_resp_free(&resp);

	/* A row started but not finished when encoding. */
	ctl_resp_init(&resp, CTL_REQ_STATUS);
	ctl_resp_table(&resp, "t", 2, many, ints);
	ctl_resp_row(&resp);
	ctl_resp_cell_int(&resp, 1);
	assert_int_equal(resp.err, 0);
	assert_int_equal(ctl_resp_encode(&resp, &buf, &len), -EINVAL);
	ctl_resp_free(&resp);

	/* Too large for one message. */
	ctl_resp_init(&resp, CTL_REQ_HISTORY);
	ctl_resp_table(&resp, "t", 1, one, (const enum ctl_col_type[]){CTL_COL_STRING});
	char *big = malloc(CTL_STR_MAX + 2);
	memset(big, 'x', CTL_STR_MAX + 1);
	big[CTL_STR_MAX + 1] = '\0';
	for (int i = 0; i < 20; i++) {
		ctl_resp_row(&resp);
		big[CTL_STR_MAX] = '\0';
		assert_int_equal(ctl_resp_cell_str(&resp, big), 0);
	}
	assert_int_equal(ctl_resp_encode(&resp, &buf, &len), -EMSGSIZE);
	ctl_resp_row(&resp);
	big[CTL_STR_MAX] = 'x';
	assert_int_equal(ctl_resp_cell_str(&resp, big), -E2BIG);
	free(big);
	ctl_resp_free(&resp);
#undef REFUSED
}

static void test_resp_refused_header(void **state)
{
	struct ctl_response resp;
	struct msg m;
	void *buf;
	size_t len, need;

	ctl_resp_init(&resp, CTL_REQ_STATUS);
	ctl_resp_message(&resp, "ok");
	assert_int_equal(ctl_resp_encode(&resp, &buf, &len), 0);
	ctl_resp_free(&resp);
	memcpy(m.b, buf, len);
	m.n = len;
	free(buf);
	assert_int_equal(decode(&m), 0);

	for (size_t n = 0; n < len; n++) {
		struct msg t = m;

		t.n = n;
		assert_int_equal(decode(&t), -ENODATA);
	}
	m.b[m.n++] = 0;
	assert_int_equal(decode(&m), -EBADMSG); /* a byte after the message */
	m_end(&m);
	assert_int_equal(decode(&m), -EBADMSG); /* a byte after the payload's content */
	m.n--;
	m_end(&m);
	assert_int_equal(decode(&m), 0);

	m.b[0] ^= 0xff;
	assert_int_equal(decode(&m), -EPROTO);
	assert_int_equal(ctl_resp_size(m.b, m.n, &need), -EPROTO);
	m.b[0] ^= 0xff;
	m.b[4] = 2;
	assert_int_equal(decode(&m), -EPROTONOSUPPORT);
	m.b[4] = 1;
	m.b[6] = CTL_REQ_STATUS, m.b[7] = 0; /* a request's type */
	assert_int_equal(decode(&m), -EOPNOTSUPP);
	m.b[6] = 99, m.b[7] = 0x80; /* an answer to an unknown request */
	assert_int_equal(decode(&m), -EOPNOTSUPP);
	assert_int_equal(ctl_resp_size(m.b, m.n, &need), -EOPNOTSUPP);
	m.b[6] = 0; /* an answer to a request that could not be parsed */
	assert_int_equal(decode(&m), 0);

	m_hdr(&m, CTL_MAGIC, CTL_VERSION, CTL_RESP_BIT, CTL_MSG_MAX - CTL_HDR_SIZE + 1);
	assert_int_equal(decode(&m), -EMSGSIZE);
	assert_int_equal(ctl_resp_size(m.b, m.n, &need), -EMSGSIZE);
}

/* A table "t" with one column of the given type and nrows announced. */
static void m_table(struct msg *m, const char *name, uint32_t ncols, uint8_t type, uint32_t nrows)
{
	m_str(m, name);
	m_u32(m, ncols);
	for (uint32_t c = 0; c < ncols && c < 40; c++) {
		char col[8];

		snprintf(col, sizeof(col), "c%u", c);
		m_str(m, col);
		m_u8(m, type);
	}
	m_u32(m, nrows);
}

static void test_resp_refused_payload(void **state)
{
	struct msg m;

	/* The hand-made message is right before it is made wrong. */
	m_resp(&m, 0, "ok");
	m_u32(&m, 1);
	m_table(&m, "t", 1, CTL_COL_STRING, 2);
	m_u8(&m, CTL_COL_STRING);
	m_str(&m, "x");
	m_u8(&m, CTL_COL_NULL);
	m_end(&m);
	assert_int_equal(decode(&m), 0);

	/* Status. */
	m_resp(&m, 1, "");
	m_u32(&m, 0);
	m_end(&m);
	assert_int_equal(decode(&m), -EBADMSG);
	m_resp(&m, -4096, "");
	m_u32(&m, 0);
	m_end(&m);
	assert_int_equal(decode(&m), -EBADMSG);
	m_resp(&m, -ENOENT, "no");
	m_u32(&m, 1);
	m_table(&m, "t", 1, CTL_COL_INT, 0);
	m_end(&m);
	assert_int_equal(decode(&m), -EBADMSG); /* an error with a table */

	/* Strings: overrun, too long, NUL inside. */
	m_resp(&m, 0, "");
	m.n -= 4;
	m_u32(&m, 100);
	m_bytes(&m, "abc", 3);
	m_end(&m);
	assert_int_equal(decode(&m), -EBADMSG);
	m_resp(&m, 0, "");
	m.n -= 4;
	m_u32(&m, CTL_STR_MAX + 1);
	for (int i = 0; i <= CTL_STR_MAX; i++)
		m_u8(&m, 'a');
	m_u32(&m, 0);
	m_end(&m);
	assert_int_equal(decode(&m), -E2BIG);
	m_resp(&m, 0, "");
	m.n -= 4;
	m_u32(&m, 3);
	m_bytes(&m, "a\0b", 3);
	m_u32(&m, 0);
	m_end(&m);
	assert_int_equal(decode(&m), -EBADMSG);
	m_resp(&m, 0, "");
	m_u32(&m, 1);
	m_table(&m, "t", 1, CTL_COL_STRING, 1);
	m_u8(&m, CTL_COL_STRING);
	m_u32(&m, 2);
	m_bytes(&m, "\0x", 2);
	m_end(&m);
	assert_int_equal(decode(&m), -EBADMSG);
	m_resp(&m, 0, "");
	m_u32(&m, 1);
	m_table(&m, "t", 1, CTL_COL_STRING, 1);
	m_u8(&m, CTL_COL_STRING);
	m_u32(&m, 0xffffffffu);
	m_end(&m);
	assert_int_equal(decode(&m), -E2BIG);
	m_resp(&m, 0, "");
	m_u32(&m, 1);
	m_table(&m, "t", 1, CTL_COL_STRING, 1);
	m_u8(&m, CTL_COL_STRING);
	m_u32(&m, 5);
	m_bytes(&m, "abcd", 4);
	m_end(&m);
	assert_int_equal(decode(&m), -EBADMSG);

	/* Counts. */
	static const uint32_t ntables[] = {CTL_MAX_TABLES + 1, 0xffffffffu};
	for (size_t i = 0; i < ARRAY_SIZE(ntables); i++) {
		m_resp(&m, 0, "");
		m_u32(&m, ntables[i]);
		m_end(&m);
		assert_int_equal(decode(&m), -E2BIG);
	}
	m_resp(&m, 0, "");
	m_u32(&m, 2); /* two tables announced, one there */
	m_table(&m, "t", 1, CTL_COL_INT, 0);
	m_end(&m);
	assert_int_equal(decode(&m), -EBADMSG);
	m_resp(&m, 0, "");
	m_u32(&m, 1);
	m_table(&m, "t", 0, CTL_COL_INT, 0);
	m_end(&m);
	assert_int_equal(decode(&m), -EBADMSG);
	m_resp(&m, 0, "");
	m_u32(&m, 1);
	m_table(&m, "t", CTL_MAX_COLS + 1, CTL_COL_INT, 0);
	m_end(&m);
	assert_int_equal(decode(&m), -E2BIG);
	m_resp(&m, 0, "");
	m_u32(&m, 1);
	m_table(&m, "t", 0xffffffffu, CTL_COL_INT, 0);
	m_end(&m);
	assert_int_equal(decode(&m), -E2BIG);
	m_resp(&m, 0, "");
	m_u32(&m, 1);
	m_table(&m, "t", 1, CTL_COL_INT, CTL_MAX_ROWS + 1);
	m_end(&m);
	assert_int_equal(decode(&m), -E2BIG);
	m_resp(&m, 0, "");
	m_u32(&m, 1);
	m_table(&m, "t", 1, CTL_COL_INT, 1000); /* more cells than bytes left */
	m_u8(&m, CTL_COL_NULL);
	m_end(&m);
	assert_int_equal(decode(&m), -EBADMSG);
	m_resp(&m, 0, "");
	m_u32(&m, 1);
	m_table(&m, "t", 1, CTL_COL_INT, 1); /* an INT cut short */
	m_u8(&m, CTL_COL_INT);
	m_u32(&m, 7);
	m_end(&m);
	assert_int_equal(decode(&m), -EBADMSG);

	/* Names and types. */
	static const char *const bad_names[] = {"status",
						"message",
						"T",
						"_t",
						"9",
						"a-b",
						"",
						("a234567890123456789012345678901234567890"
						 "12345678901234567890123456")};
	for (size_t i = 0; i < ARRAY_SIZE(bad_names); i++) {
		m_resp(&m, 0, "");
		m_u32(&m, 1);
		m_table(&m, bad_names[i], 1, CTL_COL_INT, 0);
		m_end(&m);
		assert_int_equal(decode(&m), -EBADMSG);
	}
	m_resp(&m, 0, "");
	m_u32(&m, 2);
	m_table(&m, "t", 1, CTL_COL_INT, 0);
	m_table(&m, "t", 1, CTL_COL_INT, 0);
	m_end(&m);
	assert_int_equal(decode(&m), -EBADMSG); /* twice the same table */
	m_resp(&m, 0, "");
	m_u32(&m, 1);
	m_str(&m, "t");
	m_u32(&m, 2);
	m_str(&m, "a");
	m_u8(&m, CTL_COL_INT);
	m_str(&m, "a");
	m_u8(&m, CTL_COL_INT);
	m_u32(&m, 0);
	m_end(&m);
	assert_int_equal(decode(&m), -EBADMSG); /* twice the same column */
	static const uint8_t bad_types[] = {CTL_COL_NULL, 4, 0xff};
	for (size_t i = 0; i < ARRAY_SIZE(bad_types); i++) {
		m_resp(&m, 0, "");
		m_u32(&m, 1);
		m_table(&m, "t", 1, bad_types[i], 0);
		m_end(&m);
		assert_int_equal(decode(&m), -EBADMSG);
	}
	m_resp(&m, 0, "");
	m_u32(&m, 1);
	m_table(&m, "t", 1, CTL_COL_INT, 1);
	m_u8(&m, CTL_COL_REAL); /* a cell not of its column's type */
	m_u64(&m, 0);
	m_end(&m);
	assert_int_equal(decode(&m), -EBADMSG);
	m_resp(&m, 0, "");
	m_u32(&m, 1);
	m_table(&m, "t", 1, CTL_COL_INT, 1);
	m_u8(&m, 9);
	m_u64(&m, 0);
	m_end(&m);
	assert_int_equal(decode(&m), -EBADMSG);
}

static void test_strerror(void **state)
{
	assert_string_equal(ctl_strerror(-EPROTO), "bad magic: not a homeostat control message");
	assert_string_equal(ctl_strerror(-EBADMSG), "malformed message");
	assert_string_equal(ctl_strerror(-ENODATA), "truncated message");
	assert_string_equal(ctl_strerror(-ENOENT), "No such file or directory");
}

/* Rendering. */

static char *render(int (*fn)(FILE *, const struct ctl_response *), const struct ctl_response *resp)
{
	char *buf;
	size_t len;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(fn(f, resp), 0);
	fclose(f);
	return buf;
}

static char *json_string(const char *s)
{
	char *buf;
	size_t len;
	FILE *f = open_memstream(&buf, &len);

	ctl_json_string(f, s);
	fclose(f);
	return buf;
}

static void test_json_escape(void **state)
{
	char *s;

	s = json_string("a\"b\\c/\n\r\t\b\f\x01\x1f\x7f");
	assert_string_equal(s, "\"a\\\"b\\\\c/\\n\\r\\t\\b\\f\\u0001\\u001f\\u007f\"");
	free(s);
	/* UTF-8 passes through; what is not UTF-8 becomes U+FFFD, byte by byte. */
	s = json_string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	assert_string_equal(s, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
	free(s);
	s = json_string("\xff|\xc0\xaf|\xed\xa0\x80|\xe2\x82|\xf4\x90\x80\x80");
	assert_string_equal(s, "\"\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|\\ufffd\\ufffd|"
			       "\\ufffd\\ufffd\\ufffd\\ufffd\"");
	free(s);
	s = json_string("");
	assert_string_equal(s, "\"\"");
	free(s);
}

static void test_format_real(void **state)
{
	char buf[64];

	ctl_format_real(buf, sizeof(buf), 0.1);
	assert_string_equal(buf, "0.1");
	ctl_format_real(buf, sizeof(buf), 1.0 / 3);
	assert_string_equal(buf, "0.3333333333333333");
	ctl_format_real(buf, sizeof(buf), -1e300);
	assert_string_equal(buf, "-1e+300");
	ctl_format_real(buf, sizeof(buf), 42);
	assert_string_equal(buf, "42");
}

static void test_render_json(void **state)
{
	struct ctl_response resp;
	char *s;

	build_sample(&resp);
	s = render(ctl_render_json, &resp);
	assert_string_equal(
	    s, "{\n"
	       "  \"status\": 0,\n"
	       "  \"message\": \"running, 3 changes\",\n"
	       "  \"daemon\": [\n"
	       "    {\"mode\": \"enforce\", \"paused\": 0, \"uptime_s\": 12.5}\n"
	       "  ],\n"
	       "  \"changes\": [\n"
	       "    {\"id\": 7, \"kind\": \"sysctl\", \"score\": 0.1, "
	       "\"note\": \"vm.swappiness 60 -> 10\"},\n"
	       "    {\"id\": 12, \"kind\": \"restart\", \"score\": null, \"note\": null},\n"
	       "    {\"id\": -9223372036854775808, \"kind\": null, \"score\": -1e+300, "
	       "\"note\": \"caf\xc3\xa9 \\\"q\\\"\\n\"}\n"
	       "  ],\n"
	       "  \"pending\": []\n"
	       "}\n");
	free(s);
	ctl_resp_free(&resp);

	ctl_resp_init(&resp, CTL_REQ_APPROVE);
	ctl_resp_error(&resp, -ENOENT, "change 12 not found");
	s = render(ctl_render_json, &resp);
	assert_string_equal(s, "{\n  \"status\": -2,\n  \"message\": \"change 12 not found\"\n}\n");
	free(s);
	ctl_resp_free(&resp);
}

static void test_render_text(void **state)
{
	struct ctl_response resp;
	char *s;

	build_sample(&resp);
	s = render(ctl_render_text, &resp);
	assert_string_equal(s, "running, 3 changes\n"
			       "\n"
			       "daemon:\n"
			       "  mode      enforce\n"
			       "  paused    0\n"
			       "  uptime_s  12.5\n"
			       "\n"
			       "changes:\n"
			       "                    ID  KIND       SCORE  NOTE\n"
			       "                     7  sysctl       0.1  vm.swappiness 60 -> 10\n"
			       "                    12  restart      nan  -\n"
			       "  -9223372036854775808  -        -1e+300  caf\xc3\xa9 \"q\"?\n"
			       "\n"
			       "pending: none\n");
	free(s);
	ctl_resp_free(&resp);

	/* Widths count characters, not bytes; control characters never reach the terminal. */
	ctl_resp_init(&resp, CTL_REQ_HISTORY);
	ctl_resp_table(&resp, "t", 2, (const char *const[]){"name", "n"},
		       (const enum ctl_col_type[]){CTL_COL_STRING, CTL_COL_INT});
	ctl_resp_row(&resp);
	ctl_resp_cell_str(&resp, "\xc3\xa9t\xc3\xa9");
	ctl_resp_cell_int(&resp, 1);
	ctl_resp_row(&resp);
	ctl_resp_cell_str(&resp, "\x1b]0;pwned\x07\xff");
	ctl_resp_cell_int(&resp, 100);
	assert_int_equal(resp.err, 0);
	s = render(ctl_render_text, &resp);
	assert_string_equal(s, "t:\n"
			       "  NAME           N\n"
			       "  \xc3\xa9t\xc3\xa9            1\n"
			       "  ?]0;pwned??  100\n");
	free(s);
	ctl_resp_free(&resp);

	ctl_resp_init(&resp, CTL_REQ_PAUSE);
	ctl_resp_message(&resp, "paused");
	s = render(ctl_render_text, &resp);
	assert_string_equal(s, "paused\n");
	free(s);
	ctl_resp_free(&resp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_req_table),
	    cmocka_unit_test(test_req_round_trip),
	    cmocka_unit_test(test_req_wire_bytes),
	    cmocka_unit_test(test_req_refused),
	    cmocka_unit_test(test_req_profile),
	    cmocka_unit_test(test_req_profile_refused),
	    cmocka_unit_test(test_req_redirect),
	    cmocka_unit_test(test_req_redirect_refused),
	    cmocka_unit_test(test_resp_round_trip),
	    cmocka_unit_test(test_resp_error),
	    cmocka_unit_test(test_builder_refused),
	    cmocka_unit_test(test_resp_refused_header),
	    cmocka_unit_test(test_resp_refused_payload),
	    cmocka_unit_test(test_strerror),
	    cmocka_unit_test(test_json_escape),
	    cmocka_unit_test(test_format_real),
	    cmocka_unit_test(test_render_json),
	    cmocka_unit_test(test_render_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
