/* spec.c - a change's actuator state as one line of text, and back.
 *
 * Why: a change applied by one daemon may have to be reverted by the next (reconciliation
 * after kill -9, `homeostat rollback ID` after a restart). The database keeps before and
 * after already; this line keeps the rest of struct act_result that revert needs: the typed
 * request, the identity of the process (start time) and of the network namespace, the
 * thread count of a nice change, the address and the bytes of a text patch (orig and new in
 * hex, so that a patch can be reverted after kill -9 even if before and after are lost). It is also
 * how an approved change is applied later exactly as it was proposed.
 *
 * Format: "v=1 kind=KIND key=value ...", blank-separated; in values, '%', '=', blanks and
 * control characters are written %XX. Unknown keys are refused, so that a line written by a
 * newer homeostat is never half understood.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>

#include "actuate/internal.h"

struct spec_buf {
	char *buf;
	size_t size, len;
	int err;
};

static void put_raw(struct spec_buf *b, const char *s)
{
	size_t n = strlen(s);

	if (b->err)
		return;
	if (b->len + n + 1 > b->size) {
		b->err = -ENAMETOOLONG;
		return;
	}
	memcpy(b->buf + b->len, s, n + 1);
	b->len += n;
}

static void put_str(struct spec_buf *b, const char *key, const char *v)
{
	char enc[4];

	put_raw(b, b->len ? " " : "");
	put_raw(b, key);
	put_raw(b, "=");
	for (; *v; v++) {
		unsigned char c = (unsigned char)*v;

		if (c <= ' ' || c == '%' || c == '=' || c == 0x7f) {
			snprintf(enc, sizeof(enc), "%%%02X", c);
			put_raw(b, enc);
		} else {
			enc[0] = (char)c;
			enc[1] = '\0';
			put_raw(b, enc);
		}
	}
}

static void put_num(struct spec_buf *b, const char *key, unsigned long long v)
{
	char num[24];

	snprintf(num, sizeof(num), "%llu", v);
	put_str(b, key, num);
}

static void put_hex(struct spec_buf *b, const char *key, uint64_t v)
{
	char num[24];

	snprintf(num, sizeof(num), "0x%llx", (unsigned long long)v);
	put_str(b, key, num);
}

static void put_bytes(struct spec_buf *b, const char *key, const uint8_t *v, size_t n)
{
	char hex[2 * ACT_PATCH_MAX + 1];

	if (act_hex_format(v, n, hex, sizeof(hex)))
		b->err = -ENAMETOOLONG;
	put_str(b, key, hex);
}

static void put_int(struct spec_buf *b, const char *key, long long v)
{
	char num[24];

	snprintf(num, sizeof(num), "%lld", v);
	put_str(b, key, num);
}

int act_spec_format(const struct act_result *res, char *buf, size_t size)
{
	const struct act_request *q = &res->req;
	struct spec_buf b = {.buf = buf, .size = size};

	if (!buf || !size)
		return -EINVAL;
	buf[0] = '\0';
	if (!act_kind_name(q->kind))
		return -EINVAL;
	put_num(&b, "v", 1);
	put_str(&b, "kind", act_kind_name(q->kind));
	if (q->pid)
		put_int(&b, "pid", q->pid);
	if (res->pid_start)
		put_num(&b, "start", res->pid_start);
	switch (q->kind) {
	case ACT_KIND_RLIMIT:
		put_str(&b, "resource", act_rlimit_name(q->rlimit.resource) ?: "?");
		put_num(&b, "soft", q->rlimit.soft);
		if (q->rlimit.set_hard)
			put_num(&b, "hard", q->rlimit.hard);
		break;
	case ACT_KIND_NICE:
		put_int(&b, "value", q->nice.value);
		if (q->nice.idle)
			put_int(&b, "idle", 1);
		put_int(&b, "threads", res->nthreads);
		break;
	case ACT_KIND_CGROUP:
		put_str(&b, "path", q->cgroup.path);
		put_str(&b, "file", q->cgroup.file);
		put_str(&b, "value", q->cgroup.value);
		break;
	case ACT_KIND_SYSCTL:
		put_str(&b, "name", q->sysctl.name);
		put_str(&b, "value", q->sysctl.value);
		if (q->sysctl.netns_pid)
			put_int(&b, "netns_pid", q->sysctl.netns_pid);
		if (q->sysctl.netns_path[0])
			put_str(&b, "netns_path", q->sysctl.netns_path);
		if (res->netns_ino) {
			put_num(&b, "netns_dev", res->netns_dev);
			put_num(&b, "netns_ino", res->netns_ino);
		}
		break;
	case ACT_KIND_SIGNAL:
		put_int(&b, "signo", q->signal.signo);
		break;
	case ACT_KIND_FILE:
		put_str(&b, "path", q->file.path);
		put_str(&b, "value", q->file.value);
		break;
	case ACT_KIND_RESTART:
		put_str(&b, "command", q->restart.command);
		if (q->restart.timeout_ms)
			put_num(&b, "timeout_ms", q->restart.timeout_ms);
		break;
	case ACT_KIND_PATCH:
		if (res->patch_len > ACT_PATCH_MAX)
			return -EINVAL;
		put_hex(&b, "addr", q->patch.addr);
		put_hex(&b, "to", q->patch.to);
		put_num(&b, "size", q->patch.size);
		put_str(&b, "function", q->patch.function);
		put_str(&b, "alternative", q->patch.alternative);
		if (q->patch.library[0]) {
			put_str(&b, "library", q->patch.library);
			put_hex(&b, "dlopen", q->patch.dlopen_addr);
			put_hex(&b, "to_offset", q->patch.to_offset);
		}
		if (!res->patch_len) /* not applied yet (an intent, an approval): no state */
			break;
		put_hex(&b, "at", res->patch_at);
		put_num(&b, "len", res->patch_len);
		put_bytes(&b, "orig", res->patch_orig, res->patch_len);
		put_bytes(&b, "new", res->patch_new, res->patch_len);
		put_int(&b, "layout", res->patch_layout);
		break;
	default:
		return -EOPNOTSUPP;
	}
	return b.err;
}

/* Decodes %XX in place; -EINVAL on a bad escape. */
static int decode(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (*r != '%') {
			*w++ = *r;
			continue;
		}
		if (!isxdigit((unsigned char)r[1]) || !isxdigit((unsigned char)r[2]))
			return -EINVAL;
		char hex[3] = {r[1], r[2], '\0'};

		*w++ = (char)strtoul(hex, NULL, 16);
		r += 2;
	}
	*w = '\0';
	return 0;
}

static int get_ull(const char *v, unsigned long long *out)
{
	long long x;
	int err = act_parse_ll(v, &x);

	if (err)
		return err;
	if (x < 0)
		return -EINVAL;
	*out = (unsigned long long)x;
	return 0;
}

/* "0x" and hex digits, exactly. */
static int get_hex(const char *v, uint64_t *out)
{
	char *end;

	if (strncmp(v, "0x", 2) || !isxdigit((unsigned char)v[2]))
		return -EINVAL;
	errno = 0;
	*out = strtoull(v + 2, &end, 16);
	return *end || errno ? -EINVAL : 0;
}

/* Hex bytes, exactly res->patch_len of them (len is written, and must come, first). */
static int get_bytes(const struct act_result *res, const char *v, uint8_t *out)
{
	size_t n = 0;
	int err = act_hex_parse(v, out, ACT_PATCH_MAX, &n);

	if (err)
		return err;
	return n == res->patch_len && n ? 0 : -EINVAL;
}

static int get_int(const char *v, long long min, long long max, long long *out)
{
	int err = act_parse_ll(v, out);

	if (err)
		return err;
	return *out < min || *out > max ? -ERANGE : 0;
}

static int copy(char *dst, size_t size, const char *v)
{
	if (strlen(v) >= size)
		return -ENAMETOOLONG;
	strcpy(dst, v);
	return 0;
}

static int spec_key(struct act_result *res, const char *k, const char *v)
{
	struct act_request *q = &res->req;
	unsigned long long u = 0;
	long long i = 0;
	int err;

	if (streq(k, "pid")) {
		err = get_int(v, 1, INT32_MAX, &i);
		q->pid = (pid_t)i;
		return err;
	}
	if (streq(k, "start")) {
		err = get_ull(v, &res->pid_start);
		q->pid_start = res->pid_start;
		return err;
	}
	switch (q->kind) {
	case ACT_KIND_RLIMIT:
		if (streq(k, "resource")) {
			q->rlimit.resource = act_rlimit_from_name(v);
			return q->rlimit.resource < 0 ? -EINVAL : 0;
		}
		if (streq(k, "soft")) {
			err = get_ull(v, &u);
			q->rlimit.soft = u;
			return err;
		}
		if (streq(k, "hard")) {
			err = get_ull(v, &u);
			q->rlimit.hard = u;
			q->rlimit.set_hard = true;
			return err;
		}
		break;
	case ACT_KIND_NICE:
		if (streq(k, "value")) {
			err = get_int(v, -20, 19, &i);
			q->nice.value = (int)i;
			return err;
		}
		if (streq(k, "idle")) {
			err = get_int(v, 0, 1, &i);
			q->nice.idle = i != 0;
			return err;
		}
		if (streq(k, "threads")) {
			err = get_int(v, 0, INT32_MAX, &i);
			res->nthreads = (int)i;
			return err;
		}
		break;
	case ACT_KIND_CGROUP:
		if (streq(k, "path"))
			return copy(q->cgroup.path, sizeof(q->cgroup.path), v);
		if (streq(k, "file"))
			return copy(q->cgroup.file, sizeof(q->cgroup.file), v);
		if (streq(k, "value"))
			return copy(q->cgroup.value, sizeof(q->cgroup.value), v);
		break;
	case ACT_KIND_SYSCTL:
		if (streq(k, "name"))
			return copy(q->sysctl.name, sizeof(q->sysctl.name), v);
		if (streq(k, "value"))
			return copy(q->sysctl.value, sizeof(q->sysctl.value), v);
		if (streq(k, "netns_pid")) {
			err = get_int(v, 1, INT32_MAX, &i);
			q->sysctl.netns_pid = (pid_t)i;
			return err;
		}
		if (streq(k, "netns_path"))
			return copy(q->sysctl.netns_path, sizeof(q->sysctl.netns_path), v);
		if (streq(k, "netns_dev"))
			return get_ull(v, &res->netns_dev);
		if (streq(k, "netns_ino"))
			return get_ull(v, &res->netns_ino);
		break;
	case ACT_KIND_FILE:
		if (streq(k, "path"))
			return copy(q->file.path, sizeof(q->file.path), v);
		if (streq(k, "value"))
			return copy(q->file.value, sizeof(q->file.value), v);
		break;
	case ACT_KIND_SIGNAL:
		if (streq(k, "signo")) {
			err = get_int(v, 1, 64, &i);
			q->signal.signo = (int)i;
			return err;
		}
		break;
	case ACT_KIND_RESTART:
		if (streq(k, "command"))
			return copy(q->restart.command, sizeof(q->restart.command), v);
		if (streq(k, "timeout_ms")) {
			err = get_int(v, 0, ACT_RESTART_TIMEOUT_MAX_MS, &i);
			q->restart.timeout_ms = (unsigned)i;
			return err;
		}
		break;
	case ACT_KIND_PATCH:
		if (streq(k, "addr"))
			return get_hex(v, &q->patch.addr);
		if (streq(k, "to"))
			return get_hex(v, &q->patch.to);
		if (streq(k, "size")) {
			err = get_ull(v, &u);
			q->patch.size = u;
			return err;
		}
		if (streq(k, "function"))
			return copy(q->patch.function, sizeof(q->patch.function), v);
		if (streq(k, "alternative"))
			return copy(q->patch.alternative, sizeof(q->patch.alternative), v);
		if (streq(k, "library"))
			return copy(q->patch.library, sizeof(q->patch.library), v);
		if (streq(k, "dlopen"))
			return get_hex(v, &q->patch.dlopen_addr);
		if (streq(k, "to_offset"))
			return get_hex(v, &q->patch.to_offset);
		if (streq(k, "at"))
			return get_hex(v, &res->patch_at);
		if (streq(k, "len")) {
			err = get_int(v, 1, ACT_PATCH_MAX, &i);
			res->patch_len = (unsigned)i;
			return err;
		}
		if (streq(k, "orig"))
			return get_bytes(res, v, res->patch_orig);
		if (streq(k, "new"))
			return get_bytes(res, v, res->patch_new);
		if (streq(k, "layout")) {
			err = get_int(v, 0, 1, &i);
			res->patch_layout = i != 0;
			return err;
		}
		break;
	default:
		break;
	}
	return -EINVAL;
}

/* A patch's bytes must all be there, and agree with before and after when those are given
 * (else before and after are made from them). */
static int patch_state(struct act_result *res, char *why, size_t whysize)
{
	static const uint8_t none[ACT_PATCH_MAX];
	char orig[2 * ACT_PATCH_MAX + 1], new[2 * ACT_PATCH_MAX + 1];
	const struct act_patch *q = &res->req.patch;

	if (!res->patch_len || !res->patch_at || !memcmp(res->patch_new, none, res->patch_len))
		return act_why(why, whysize, -EINVAL, "a patch needs at, len, orig and new");
	act_hex_format(res->patch_orig, res->patch_len, orig, sizeof(orig));
	act_hex_format(res->patch_new, res->patch_len, new, sizeof(new));
	/* what patch.c writes: a jump first, and with the layout the short jump last */
	if ((res->patch_new[0] != 0xe9 &&
	     (res->patch_new[0] != 0xff || res->patch_new[1] != 0x25)) ||
	    (res->patch_layout && res->patch_new[res->patch_len - 2] != 0xeb))
		return act_why(why, whysize, -EINVAL, "the new bytes of a patch are not a jump");
	/* the layout starts before the entry and holds it; else at it or after an endbr64 */
	if (res->patch_layout
		? res->patch_at >= q->addr || q->addr - res->patch_at >= res->patch_len
		: res->patch_at != q->addr && res->patch_at != q->addr + 4)
		return act_why(why, whysize, -EINVAL, "patch bytes at 0x%llx do not hold 0x%llx",
			       (unsigned long long)res->patch_at, (unsigned long long)q->addr);
	if ((res->before[0] && !streq(res->before, orig)) ||
	    (res->after[0] && !streq(res->after, new)))
		return act_why(why, whysize, -EINVAL,
			       "before and after are not the patch's orig and new bytes");
	strcpy(res->before, orig);
	strcpy(res->after, new);
	return 0;
}

int act_spec_parse(const char *spec, const char *before, const char *after, struct act_result *res,
		   char *why, size_t whysize)
{
	_cleanup_free_ char *copy_ = NULL;
	char *save = NULL, *tok;
	bool version = false;
	int n = 0, err;

	if (!spec || !res)
		return -EINVAL;
	memset(res, 0, sizeof(*res));
	res->pidfd = -1;
	res->req.kind = ACT_KIND_COUNT;
	copy_ = strdup(spec);
	if (!copy_)
		return -ENOMEM;
	for (tok = strtok_r(copy_, " ", &save); tok; tok = strtok_r(NULL, " ", &save), n++) {
		char *eq = strchr(tok, '=');

		if (!eq)
			return act_why(why, whysize, -EINVAL, "'%s' is not key=value", tok);
		*eq = '\0';
		if (decode(eq + 1))
			return act_why(why, whysize, -EINVAL, "bad escape in '%s'", tok);
		if (n == 0) {
			if (!streq(tok, "v") || !streq(eq + 1, "1"))
				return act_why(why, whysize, -EPROTO,
					       "not a version 1 actuator spec");
			version = true;
			continue;
		}
		if (n == 1) {
			int kind = streq(tok, "kind") ? act_kind_from_name(eq + 1) : -EINVAL;

			if (kind < 0)
				return act_why(why, whysize, -EINVAL, "no kind after the version");
			act_request_init(&res->req, kind);
			continue;
		}
		err = spec_key(res, tok, eq + 1);
		if (err)
			return act_why(why, whysize, err, "bad or unknown key '%s' for %s", tok,
				       act_kind_name(res->req.kind));
	}
	if (!version || res->req.kind == ACT_KIND_COUNT)
		return act_why(why, whysize, -EINVAL, "empty actuator spec");
	if (act_validate(&res->req, why, whysize))
		return -EINVAL;
	if (copy(res->before, sizeof(res->before), before ?: "") ||
	    copy(res->after, sizeof(res->after), after ?: ""))
		return act_why(why, whysize, -ENAMETOOLONG, "value too long");
	/* a patch's state, when it was applied; an intent or an approval has none yet */
	if (res->req.kind == ACT_KIND_PATCH && (res->patch_len || res->patch_at)) {
		err = patch_state(res, why, whysize);
		if (err)
			return err;
	}
	res->applied = true;
	act_revert_command(&res->req, res, res->before, res->revert_cmd, sizeof(res->revert_cmd));
	return 0;
}
