/* test_patch.c - unit tests of the text-patch actuator (agent/actuate/patch.c): the planner on
 * known byte sequences (a plain prologue, endbr64 first, a far target, the patchable-entry
 * layout, and every refusal with its exact reason), the hex helpers, validation, the spec
 * line of a patch and back, and apply / verify / revert on a forked child of this test that
 * calls the functions in three threads (a child may be traced and its text written without
 * root; where ptrace is not allowed at all, that test is skipped and says so).
 */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

#include "actuate/actuate.h"
#include "actuate/internal.h"
#include "observe/symbolize.h"

#define ADDR 0x401000ull
#define TO   0x402000ull

static char why[ACT_WHY_MAX];

static int plan(const uint8_t *code, size_t n, uint64_t to, const uint8_t *pre, size_t npre,
		struct act_patch_plan *p)
{
	return act_patch_plan(code, n, ADDR, to, pre, npre, p, why, sizeof(why));
}

static void assert_bytes(const uint8_t *got, const char *hex)
{
	char buf[2 * ACT_PATCH_MAX + 1];

	assert_int_equal(act_hex_format(got, strlen(hex) / 2, buf, sizeof(buf)), 0);
	assert_string_equal(buf, hex);
}

/* push rbp; mov rbp,rsp; sub rsp,0x10; mov eax,edi; leave; ret */
static const uint8_t prologue[] = {0x55, 0x48, 0x89, 0xe5, 0x48, 0x83,
				   0xec, 0x10, 0x89, 0xf8, 0xc9, 0xc3};

static void test_plain_prologue(void **state)
{
	struct act_patch_plan p;

	assert_int_equal(plan(prologue, sizeof(prologue), TO, NULL, 0, &p), 0);
	assert_string_equal(why, "");
	assert_int_equal(p.at, ADDR);
	/* 1 + 3 bytes are not enough for the jump: sub rsp is the third instruction replaced */
	assert_int_equal(p.len, 8);
	assert_false(p.layout);
	assert_false(p.absolute);
	assert_int_equal(p.skip, 0);
	assert_bytes(p.orig, "554889e54883ec10");
	/* rel32 = 0x402000 - 0x401005, the rest int3 */
	assert_bytes(p.bytes, "e9fb0f0000cccccc");
	/* backwards */
	assert_int_equal(act_patch_plan(prologue, sizeof(prologue), ADDR, 0x400000, NULL, 0, &p,
					why, sizeof(why)),
			 0);
	assert_bytes(p.bytes, "e9fbefffffcccccc");
}

static void test_endbr64_first(void **state)
{
	/* endbr64; push rbp; mov rbp,rsp; push r12; push rbx; ...; ret */
	static const uint8_t code[] = {0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x48, 0x89, 0xe5,
				       0x41, 0x54, 0x53, 0x5b, 0x41, 0x5c, 0x5d, 0xc3};
	struct act_patch_plan p;

	assert_int_equal(plan(code, sizeof(code), TO, NULL, 0, &p), 0);
	assert_int_equal(p.skip, 4);
	assert_int_equal(p.at, ADDR + 4);
	assert_int_equal(p.len, 6);
	assert_bytes(p.orig, "554889e54154");
	/* 0x402000 - 0x401009 */
	assert_bytes(p.bytes, "e9f70f0000cc");
}

static void test_far_target(void **state)
{
	/* push rbp; mov rbp,rsp; push r15; push r14; push r13; push r12; push rbx;
	 * sub rsp,0x18; ...; ret */
	static const uint8_t code[] = {0x55, 0x48, 0x89, 0xe5, 0x41, 0x57, 0x41, 0x56,
				       0x41, 0x55, 0x41, 0x54, 0x53, 0x48, 0x83, 0xec,
				       0x18, 0x48, 0x83, 0xc4, 0x18, 0x5b, 0x41, 0x5c,
				       0x41, 0x5d, 0x41, 0x5e, 0x41, 0x5f, 0x5d, 0xc3};
	struct act_patch_plan p;
	uint64_t far = 0x7f1234567890ull;

	assert_int_equal(plan(code, sizeof(code), far, NULL, 0, &p), 0);
	assert_true(p.absolute);
	assert_int_equal(p.at, ADDR);
	assert_int_equal(p.len, 17);
	assert_bytes(p.orig, "554889e54157415641554154534883ec18");
	/* jmp *0(%rip) and the address, little-endian; the last 3 bytes int3 */
	assert_bytes(p.bytes, "ff250000000090785634127f0000cccccc");
	/* just within 2 GiB is still rel32 */
	assert_int_equal(plan(code, sizeof(code), ADDR + 5 + 0x7fffffff, NULL, 0, &p), 0);
	assert_false(p.absolute);
	assert_int_equal(plan(code, sizeof(code), ADDR + 5 + 0x80000000ull, NULL, 0, &p), 0);
	assert_true(p.absolute);
}

static void test_refusals(void **state)
{
	static const uint8_t too_short[] = {0x31, 0xc0, 0xc3};
	static const uint8_t short_endbr[] = {0xf3, 0x0f, 0x1e, 0xfa, 0x31, 0xc0, 0xc3};
	/* mov rax,[rip+0x2010]; ret */
	static const uint8_t riprel[] = {0x48, 0x8b, 0x05, 0x10, 0x20, 0x00, 0x00, 0xc3};
	/* push rbp; call +0; pop rbp; ret */
	static const uint8_t call[] = {0x55, 0xe8, 0x00, 0x00, 0x00, 0x00, 0x5d, 0xc3};
	/* the prologue, then test edi,edi; jne +1 (into the replaced bytes); leave; ret */
	static const uint8_t jcc[] = {0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec,
				      0x10, 0x85, 0xff, 0x75, 0xf5, 0xc9, 0xc3};
	/* xor eax,eax; syscall; ret */
	static const uint8_t sys[] = {0x31, 0xc0, 0x0f, 0x05, 0x90, 0xc3};
	/* 06 is not an instruction in 64-bit mode */
	static const uint8_t bad[] = {0x06, 0x55, 0x48, 0x89, 0xe5, 0xc3};
	/* a good prologue, then bytes that do not decode */
	static const uint8_t bad_later[] = {0x55, 0x48, 0x89, 0xe5, 0x48, 0x83,
					    0xec, 0x10, 0x06, 0xc9, 0xc3};
	/* jmp rel32: someone patched it */
	static const uint8_t patched[] = {0xe9, 0xfb, 0x0f, 0x00, 0x00, 0xcc, 0xcc, 0xcc, 0xc3};
	struct act_patch_plan p;

	assert_int_equal(plan(too_short, sizeof(too_short), TO, NULL, 0, &p), -EOPNOTSUPP);
	assert_string_equal(why, "the function is 3 bytes, shorter than the 5-byte jump");
	assert_int_equal(p.len, 0);
	assert_int_equal(plan(short_endbr, sizeof(short_endbr), TO, NULL, 0, &p), -EOPNOTSUPP);
	assert_string_equal(why,
			    "the function is 7 bytes, 3 after its endbr64, shorter than the 5-byte "
			    "jump");
	assert_int_equal(plan(riprel, sizeof(riprel), TO, NULL, 0, &p), -EOPNOTSUPP);
	assert_string_equal(why, "'mov rax, qword ptr [rip + 0x2010]' at +0x0: a RIP-relative "
				 "operand in the bytes the 5-byte jump replaces");
	assert_int_equal(plan(call, sizeof(call), TO, NULL, 0, &p), -EOPNOTSUPP);
	assert_string_equal(why, "'call 0x401006' at +0x1: a call in the bytes the 5-byte jump "
				 "replaces");
	assert_int_equal(plan(jcc, sizeof(jcc), TO, NULL, 0, &p), -EOPNOTSUPP);
	assert_string_equal(why, "'jne 0x401001' at +0xa jumps to +0x1, inside the bytes replaced "
				 "[+0x0, +0x8)");
	assert_int_equal(plan(sys, sizeof(sys), TO, NULL, 0, &p), -EOPNOTSUPP);
	assert_string_equal(why, "'syscall' at +0x2: an interrupt or system call in the bytes the "
				 "5-byte jump replaces");
	assert_int_equal(plan(bad, sizeof(bad), TO, NULL, 0, &p), -EOPNOTSUPP);
	assert_string_equal(why, "cannot decode the instruction at +0x0 (06554889e5c3)");
	assert_int_equal(plan(bad_later, sizeof(bad_later), TO, NULL, 0, &p), -EOPNOTSUPP);
	assert_string_equal(why, "cannot decode the instruction at +0x8 (06c9c3): the branches of "
				 "the function cannot be checked");
	assert_int_equal(plan(patched, sizeof(patched), TO, NULL, 0, &p), -EALREADY);
	assert_string_equal(why, "the entry already holds a jump ('jmp 0x402000' at +0x0): patched "
				 "by someone else?");
	/* arguments */
	assert_int_equal(plan(prologue, 0, TO, NULL, 0, &p), -EINVAL);
	assert_string_equal(why, "no code to patch");
	assert_int_equal(plan(prologue, sizeof(prologue), 0, NULL, 0, &p), -EINVAL);
	assert_string_equal(why, "the function or the alternative is at 0");
	assert_int_equal(plan(prologue, sizeof(prologue), ADDR + 4, NULL, 0, &p), -EINVAL);
	assert_string_equal(why, "the alternative 0x401004 is inside the function");
}

static void test_branch_to_entry(void **state)
{
	/* dec rdi; mov rax,rdi; jne +0 (the entry: a loop, allowed); ret */
	static const uint8_t code[] = {0x48, 0xff, 0xcf, 0x48, 0x89, 0xf8, 0x75, 0xf8, 0xc3};
	struct act_patch_plan p;

	assert_int_equal(plan(code, sizeof(code), TO, NULL, 0, &p), 0);
	assert_int_equal(p.len, 6);
	assert_bytes(p.bytes, "e9fb0f0000cc");
}

static void test_layout(void **state)
{
	/* what gcc -fpatchable-function-entry=16,14 emits: 14 NOPs, the entry, 2 NOPs */
	static const uint8_t code[] = {0x90, 0x90, 0x8d, 0x44, 0x7f, 0x01, 0xc3};
	static const uint8_t code66[] = {0x66, 0x90, 0x8d, 0x44, 0x7f, 0x01, 0xc3};
	static const uint8_t endbr[] = {0xf3, 0x0f, 0x1e, 0xfa, 0x90, 0x90,
					0x8d, 0x44, 0x7f, 0x01, 0xc3};
	/* the end of the previous function, then its padding */
	static const uint8_t pre[ACT_PATCH_PRE_MAX] = {0xc3, 0x66, 0x90, 0x90, 0x90, 0x90,
						       0x90, 0x90, 0x90, 0x90, 0x90, 0x90,
						       0x90, 0x90, 0x90, 0x90};
	struct act_patch_plan p;

	assert_int_equal(plan(code, sizeof(code), TO, pre, sizeof(pre), &p), 0);
	assert_true(p.layout);
	assert_false(p.absolute);
	assert_int_equal(p.at, ADDR - 5);
	assert_int_equal(p.len, 7);
	assert_bytes(p.orig, "90909090909090");
	/* jmp to - ADDR (the jump ends at the entry), then jmp -7 back to it */
	assert_bytes(p.bytes, "e900100000ebf9");

	assert_int_equal(plan(code66, sizeof(code66), TO, pre, sizeof(pre), &p), 0);
	assert_true(p.layout);
	assert_bytes(p.orig, "90909090906690");
	assert_bytes(p.bytes, "e900100000ebf9");

	/* endbr64 stays where it is, between the jump and the short jump */
	assert_int_equal(plan(endbr, sizeof(endbr), TO, pre, sizeof(pre), &p), 0);
	assert_true(p.layout);
	assert_int_equal(p.skip, 4);
	assert_int_equal(p.at, ADDR - 5);
	assert_int_equal(p.len, 11);
	assert_bytes(p.orig, "9090909090f30f1efa9090");
	assert_bytes(p.bytes, "e900100000f30f1efaebf5");

	/* far: the 14-byte jump needs 14 NOPs, which are there */
	assert_int_equal(plan(code, sizeof(code), 0x7f0000001000ull, pre, sizeof(pre), &p), 0);
	assert_true(p.layout);
	assert_true(p.absolute);
	assert_int_equal(p.at, ADDR - 14);
	assert_int_equal(p.len, 16);
	assert_bytes(p.bytes, "ff250000000000100000007f0000ebf0");

	/* 4 NOPs are not enough for any jump: whole instructions at the entry instead */
	assert_int_equal(plan(code, sizeof(code), TO, pre, 5, &p), 0);
	assert_false(p.layout);
	assert_int_equal(p.at, ADDR);
	assert_int_equal(p.len, 6);
	assert_bytes(p.bytes, "e9fb0f0000cc");
	/* without the bytes before, the same */
	assert_int_equal(plan(code, sizeof(code), TO, NULL, 0, &p), 0);
	assert_false(p.layout);

	/* an entry that holds the short jump already */
	static const uint8_t patched[] = {0xeb, 0xf9, 0x8d, 0x44, 0x7f, 0x01, 0xc3};

	assert_int_equal(plan(patched, sizeof(patched), TO, pre, sizeof(pre), &p), -EALREADY);
	assert_string_equal(why, "the entry already holds a jump ('jmp 0x400ffb' at +0x0): patched "
				 "by someone else?");

	/* a branch of the function into the NOPs before the entry is refused, one to the entry
	 * is not: nop; nop; jne -0x3 (entry - 3 bytes, in the pre-area); jmp +0 (the entry) */
	static const uint8_t into[] = {0x90, 0x90, 0x75, 0xfb, 0xc3};
	static const uint8_t loop[] = {0x90, 0x90, 0x75, 0xfc, 0xc3};

	assert_int_equal(plan(into, sizeof(into), TO, pre, sizeof(pre), &p), -EOPNOTSUPP);
	assert_string_equal(why, "'jne 0x400fff' at +0x2 jumps to -0x1, inside the bytes replaced "
				 "[-0x5, +0x2)");
	assert_int_equal(plan(loop, sizeof(loop), TO, pre, sizeof(pre), &p), 0);
	assert_true(p.layout);
}

static void test_hex(void **state)
{
	static const uint8_t b[] = {0x00, 0x9f, 0xff, 0x5a};
	uint8_t out[4];
	char buf[9];
	size_t n = 99;

	assert_int_equal(act_hex_format(b, sizeof(b), buf, sizeof(buf)), 0);
	assert_string_equal(buf, "009fff5a");
	assert_int_equal(act_hex_format(b, sizeof(b), buf, 8), -ENAMETOOLONG);
	assert_string_equal(buf, "");
	assert_int_equal(act_hex_format(b, 0, buf, 1), 0);
	assert_string_equal(buf, "");
	assert_int_equal(act_hex_parse("009FfF5a", out, sizeof(out), &n), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(out, b, 4);
	assert_int_equal(act_hex_parse("", out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(act_hex_parse("abc", out, sizeof(out), &n), -EINVAL);
	assert_int_equal(act_hex_parse("0x12", out, sizeof(out), &n), -EINVAL);
	assert_int_equal(act_hex_parse("12 4", out, sizeof(out), &n), -EINVAL);
	assert_int_equal(act_hex_parse("0011223344", out, sizeof(out), &n), -E2BIG);
}

static void patch_req(struct act_request *req, pid_t pid)
{
	act_request_init(req, ACT_KIND_PATCH);
	req->pid = pid;
	req->patch.addr = ADDR;
	req->patch.to = TO;
	req->patch.size = 64;
	strcpy(req->patch.function, "hot_fn");
	strcpy(req->patch.alternative, "hot_fn__alt_fast");
}

static void test_validate(void **state)
{
	struct act_request req;
	char msg[64];

	patch_req(&req, 4242);
	assert_int_equal(act_validate(&req, why, sizeof(why)), 0);
	req.pid = 1;
	assert_int_equal(act_validate(&req, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "a patch needs one process other than init (pid > 1), not 1");
	req.pid = getpid();
	assert_int_equal(act_validate(&req, why, sizeof(why)), -EINVAL);
	snprintf(msg, sizeof(msg), "homeostat does not patch itself (pid %d)", (int)getpid());
	assert_string_equal(why, msg);

	patch_req(&req, 4242);
	req.patch.function[0] = '\0';
	assert_int_equal(act_validate(&req, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "function name is empty");
	strcpy(req.patch.function, "hot fn");
	assert_int_equal(act_validate(&req, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "function name holds a blank or non-printable character (0x20)");
	strcpy(req.patch.function, "hot_fn");
	memset(req.patch.alternative, 'a', sizeof(req.patch.alternative));
	assert_int_equal(act_validate(&req, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "alternative name is longer than 127 bytes");
	strcpy(req.patch.alternative, "alt\x01");
	assert_int_equal(act_validate(&req, why, sizeof(why)), -EINVAL);
	assert_string_equal(why,
			    "alternative name holds a blank or non-printable character (0x01)");

	patch_req(&req, 4242);
	req.patch.to = 0;
	assert_int_equal(act_validate(&req, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "the address of 'hot_fn__alt_fast' is 0");
	req.patch.to = TO;
	req.patch.addr = 0;
	assert_int_equal(act_validate(&req, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "the address of 'hot_fn' is 0");
	req.patch.addr = ADDR;
	req.patch.size = 0;
	assert_int_equal(act_validate(&req, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "the size of 'hot_fn', 0, must be between 1 and 65536");
	req.patch.size = ACT_PATCH_CODE_MAX + 1;
	assert_int_equal(act_validate(&req, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "the size of 'hot_fn', 65537, must be between 1 and 65536");
	req.patch.size = 0x2000;
	assert_int_equal(act_validate(&req, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "the alternative 'hot_fn__alt_fast' is inside 'hot_fn'");
}

/* A patch not applied yet (an intent, a change waiting for approval) is a spec line without
 * state, with its patch library when the alternative is still to be loaded: it is taken back
 * as it was, and has nothing to revert. */
static void test_spec_intent_library(void **state)
{
	static const char line[] =
	    "v=1 kind=patch pid=4242 addr=0x401000 to=0x0 size=64 function=hot_fn "
	    "alternative=hot_fn__alt_lib library=/opt/patches/libalt.so dlopen=0x7f0000001000 "
	    "to_offset=0x1220";
	struct act_result res, back;
	char spec[1024];

	(void)state;
	memset(&res, 0, sizeof(res));
	patch_req(&res.req, 4242);
	res.req.patch.to = 0;
	strcpy(res.req.patch.alternative, "hot_fn__alt_lib");
	strcpy(res.req.patch.library, "/opt/patches/libalt.so");
	res.req.patch.dlopen_addr = 0x7f0000001000;
	res.req.patch.to_offset = 0x1220;
	assert_int_equal(act_validate(&res.req, why, sizeof(why)), 0);
	assert_int_equal(act_spec_format(&res, spec, sizeof(spec)), 0);
	assert_string_equal(spec, line);
	assert_int_equal(act_spec_parse(spec, "hot_fn", "hot_fn__alt_lib", &back, why, sizeof(why)),
			 0);
	assert_string_equal(back.req.patch.library, "/opt/patches/libalt.so");
	assert_int_equal(back.req.patch.dlopen_addr, 0x7f0000001000);
	assert_int_equal(back.req.patch.to_offset, 0x1220);
	assert_int_equal(back.req.patch.to, 0);
	assert_int_equal(back.patch_len, 0);
	assert_int_equal(act_revert(&back), -EINVAL);
	assert_string_equal(back.why, "no bytes to put back");

	/* a library needs an absolute path, the process's dlopen and the alternative's offset */
	strcpy(res.req.patch.library, "libalt.so");
	assert_int_equal(act_validate(&res.req, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "the patch library must be an absolute path");
	strcpy(res.req.patch.library, "/opt/patches/libalt.so");
	res.req.patch.dlopen_addr = 0;
	assert_int_equal(act_validate(&res.req, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "a patch library needs the process's dlopen and the offset of "
				 "'hot_fn__alt_lib'");
}

/* The state of an applied patch survives as a spec line, and only an exact one is taken. */
static void test_spec_round_trip(void **state)
{
	static const char line[] =
	    "v=1 kind=patch pid=4242 start=99 addr=0x401000 to=0x402000 size=64 function=hot_fn "
	    "alternative=hot_fn__alt_fast at=0x401000 len=8 orig=554889e54883ec10 "
	    "new=e9fb0f0000cccccc layout=0";
	struct act_result res, back;
	struct act_patch_plan p;
	char spec[1024], bad[1200];

	memset(&res, 0, sizeof(res));
	patch_req(&res.req, 4242);
	res.pid_start = 99;
	assert_int_equal(plan(prologue, sizeof(prologue), TO, NULL, 0, &p), 0);
	res.patch_at = p.at;
	res.patch_len = p.len;
	memcpy(res.patch_orig, p.orig, p.len);
	memcpy(res.patch_new, p.bytes, p.len);
	assert_int_equal(act_spec_format(&res, spec, sizeof(spec)), 0);
	assert_string_equal(spec, line);

	assert_int_equal(
	    act_spec_parse(spec, "554889e54883ec10", "e9fb0f0000cccccc", &back, why, sizeof(why)),
	    0);
	assert_true(back.applied);
	assert_int_equal(back.pidfd, -1);
	assert_int_equal(back.req.kind, ACT_KIND_PATCH);
	assert_int_equal(back.req.pid, 4242);
	assert_int_equal(back.pid_start, 99);
	assert_int_equal(back.req.patch.addr, ADDR);
	assert_int_equal(back.req.patch.to, TO);
	assert_int_equal(back.req.patch.size, 64);
	assert_string_equal(back.req.patch.function, "hot_fn");
	assert_string_equal(back.req.patch.alternative, "hot_fn__alt_fast");
	assert_int_equal(back.patch_at, ADDR);
	assert_int_equal(back.patch_len, 8);
	assert_memory_equal(back.patch_orig, p.orig, 8);
	assert_memory_equal(back.patch_new, p.bytes, 8);
	assert_false(back.patch_layout);
	assert_string_equal(back.before, "554889e54883ec10");
	assert_string_equal(back.after, "e9fb0f0000cccccc");
	assert_string_equal(back.revert_cmd,
			    "printf '\\125\\110\\211\\345\\110\\203\\354\\020' | dd "
			    "of=/proc/4242/mem bs=8 count=1 seek=$((0x401000)) oflag=seek_bytes "
			    "iflag=fullblock conv=notrunc status=none");
	assert_int_equal(act_spec_format(&back, bad, sizeof(bad)), 0);
	assert_string_equal(bad, line);

	/* before and after lost: made from the bytes */
	assert_int_equal(act_spec_parse(spec, NULL, NULL, &back, why, sizeof(why)), 0);
	assert_string_equal(back.before, "554889e54883ec10");

	/* what is refused */
	assert_int_equal(act_spec_parse(spec, "00", "e9fb0f0000cccccc", &back, why, sizeof(why)),
			 -EINVAL);
	assert_string_equal(why, "before and after are not the patch's orig and new bytes");
	snprintf(bad, sizeof(bad), "%s shebang=1", line);
	assert_int_equal(act_spec_parse(bad, NULL, NULL, &back, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "bad or unknown key 'shebang' for patch");
	assert_int_equal(act_spec_parse("v=1 kind=patch pid=4242 addr=0x401000 to=0x402000 size=64 "
					"function=f alternative=g at=0x401000 len=2 orig=5548",
					NULL, NULL, &back, why, sizeof(why)),
			 -EINVAL);
	assert_string_equal(why, "a patch needs at, len, orig and new");
	assert_int_equal(act_spec_parse("v=1 kind=patch pid=4242 addr=0x401000 to=0x402000 size=64 "
					"function=f alternative=g at=0x401000 len=2 orig=5548 "
					"new=9090",
					NULL, NULL, &back, why, sizeof(why)),
			 -EINVAL);
	assert_string_equal(why, "the new bytes of a patch are not a jump");
	assert_int_equal(act_spec_parse("v=1 kind=patch pid=4242 addr=401000 to=0x402000", NULL,
					NULL, &back, why, sizeof(why)),
			 -EINVAL);
	assert_string_equal(why, "bad or unknown key 'addr' for patch");
	assert_int_equal(act_spec_parse("v=1 kind=patch pid=4242 addr=0x401000 to=0x402000 size=64 "
					"function=f alternative=g at=0x401000 len=2 orig=554889",
					NULL, NULL, &back, why, sizeof(why)),
			 -EINVAL);
	assert_string_equal(why, "bad or unknown key 'orig' for patch");
	assert_int_equal(
	    act_spec_parse("v=1 kind=patch pid=4242 addr=0x401000 to=0x402000 size=64 "
			   "function=f alternative=g at=0x400ff0 len=5 orig=554889e548 "
			   "new=e9fb0f0000",
			   NULL, NULL, &back, why, sizeof(why)),
	    -EINVAL);
	assert_string_equal(why, "patch bytes at 0x400ff0 do not hold 0x401000");
}

/* ---- a live child ---- */

struct shared {
	volatile long plain, pfe;
	volatile unsigned long calls;
};

static struct shared *sh;

__attribute__((noipa)) long t_plain(long x)
{
	long r = x;

	for (int i = 0; i < 3; i++)
		r = r * 31 + i;
	return r ^ 0x5a5a;
}

__attribute__((noipa)) long t_plain__alt_b(long x)
{
	return -x;
}

__attribute__((noipa, patchable_function_entry(16, 14))) long t_pfe(long x)
{
	return x * 7 + 3;
}

__attribute__((noipa)) long t_pfe__alt_b(long x)
{
	return -2 * x;
}

static void *spin(void *arg)
{
	for (;;) {
		sh->plain = t_plain(5);
		sh->pfe = t_pfe(5);
		sh->calls++;
	}
	return NULL;
}

static bool wait_value(volatile long *v, long want)
{
	for (int i = 0; i < 2000; i++) {
		if (*v == want)
			return true;
		usleep(1000);
	}
	return false;
}

/* Waits (at most 2 s) until process pid has n threads: a thread the child creates may not
 * exist yet when one of its siblings has already written to the shared page. */
static bool wait_threads(pid_t pid, int n)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	for (int i = 0; i < 2000; i++) {
		DIR *d = opendir(path);
		struct dirent *e;
		int k = 0;

		if (!d)
			return false;
		while ((e = readdir(d)))
			k += e->d_name[0] != '.';
		closedir(d);
		if (k == n)
			return true;
		usleep(1000);
	}
	return false;
}

static void fill(struct obs_symbolizer *s, pid_t pid, const char *fn, const char *alt,
		 struct act_request *req)
{
	struct obs_sym_addr a, b;

	assert_int_equal(obs_sym_find(s, pid, NULL, fn, &a), 0);
	assert_int_equal(obs_sym_find(s, pid, NULL, alt, &b), 0);
	assert_string_equal(a.object, "test_patch");
	act_request_init(req, ACT_KIND_PATCH);
	req->pid = pid;
	req->patch.addr = a.addr;
	req->patch.size = a.size;
	req->patch.to = b.addr;
	strcpy(req->patch.function, fn);
	strcpy(req->patch.alternative, alt);
}

static void test_live_child(void **state)
{
	struct obs_symbolizer *s;
	struct act_request req;
	struct act_result res, pfe;
	char value[ACT_VALUE_MAX], hex[2 * ACT_PATCH_MAX + 1];
	uint8_t orig[ACT_PATCH_MAX], junk = 0x90;
	char path[64];
	pid_t pid;
	int fd, r;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(sh != MAP_FAILED);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		pthread_t t;

		prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion leaves no child behind */
		for (int i = 0; i < 2; i++)
			pthread_create(&t, NULL, spin, NULL);
		spin(NULL);
	}
	assert_true(wait_value(&sh->plain, t_plain(5)));
	assert_true(wait_threads(pid, 3));
	assert_int_equal(obs_sym_new(NULL, &s), 0);

	/* plain: the addresses of the fork are ours */
	fill(s, pid, "t_plain", "t_plain__alt_b", &req);
	assert_int_equal(req.patch.addr, (uintptr_t)&t_plain);
	assert_int_equal(req.patch.to, (uintptr_t)&t_plain__alt_b);
	assert_int_equal(act_read(&req, value, sizeof(value)), 0);
	r = act_apply(&req, &res);
	if (r == -EPERM && strstr(res.why, "cannot trace")) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		obs_sym_free(s);
		skip(); /* ptrace is not allowed here at all */
	}
	assert_int_equal(r, 0);
	assert_string_equal(res.why, "");
	assert_true(res.applied);
	assert_false(res.patch_layout);
	assert_int_equal(res.patch_at, req.patch.addr);
	assert_string_equal(res.before, value); /* act_read said what apply replaces */
	assert_int_equal(res.patch_threads, 3);
	assert_true(res.patch_pause_ns > 0);
	assert_true(res.patch_pause_ns < 2000000000ull);
	assert_int_equal(res.patch_new[0], 0xe9);
	assert_memory_equal(res.patch_orig, (void *)(uintptr_t)req.patch.addr, res.patch_len);
	assert_true(wait_value(&sh->plain, -5));
	assert_int_equal(act_verify(&req, &res), 0);
	/* a second patch of the same entry: it holds a jump now */
	r = act_apply(&req, &pfe);
	assert_int_equal(r, -EALREADY);
	assert_non_null(strstr(pfe.why, "the entry already holds a jump"));
	assert_int_equal(act_revert(&res), 0);
	assert_true(res.reverted);
	assert_true(wait_value(&sh->plain, t_plain(5)));
	assert_int_equal(act_verify(&req, &res), -ESTALE);
	assert_int_equal(act_revert(&res), -EALREADY);

	/* the layout of a patchable entry */
	fill(s, pid, "t_pfe", "t_pfe__alt_b", &req);
	assert_int_equal(act_apply(&req, &pfe), 0);
	assert_true(pfe.patch_layout);
	assert_int_equal(pfe.patch_at, req.patch.addr - 5);
	assert_int_equal(pfe.patch_len, 7);
	assert_string_equal(pfe.before, "90909090909090");
	assert_true(wait_value(&sh->pfe, -10));
	assert_int_equal(act_verify(&req, &pfe), 0);

	/* someone else writes over our short jump: verify says so, revert leaves it alone */
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, orig, pfe.patch_len, (off_t)pfe.patch_at), pfe.patch_len);
	assert_int_equal(pwrite(fd, &junk, 1, (off_t)req.patch.addr), 1);
	assert_int_equal(act_verify(&req, &pfe), -ESTALE);
	assert_int_equal(act_revert(&pfe), -ESTALE);
	orig[5] = junk;
	act_hex_format(orig, pfe.patch_len, hex, sizeof(hex));
	assert_non_null(strstr(pfe.why, hex));
	assert_non_null(strstr(pfe.why, "changed by someone else since homeostat wrote them"));
	assert_false(pfe.reverted);
	junk = 0xeb;
	assert_int_equal(pwrite(fd, &junk, 1, (off_t)req.patch.addr), 1);
	close(fd);
	assert_int_equal(act_revert(&pfe), 0);
	assert_true(wait_value(&sh->pfe, 38));

	/* the process is gone: -ESRCH */
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	assert_int_equal(act_verify(&req, &pfe), -ESRCH);
	pfe.reverted = false;
	assert_int_equal(act_revert(&pfe), -ESRCH);
	obs_sym_free(s);
	munmap(sh, sizeof(*sh));
}

/* A loop whose head is the entry: 4 NOPs and dec rdi (the 7 bytes replaced), jnz back to the
 * entry (allowed: after the patch it goes to the alternative with the loop's state, as a call
 * would). Threads running it are inside the replaced bytes most of the time: the actuator must
 * see them there and wait, else they would resume in the middle of the jump and crash. The
 * alternative counts its calls. */
__asm__(".text\n"
	".globl t_spin\n"
	".type t_spin, @function\n"
	"t_spin:\n"
	"1:	nop\n"
	"	nop\n"
	"	nop\n"
	"	nop\n"
	"	dec %rdi\n"
	"	jnz 1b\n"
	"	ret\n"
	".size t_spin, .-t_spin\n"
	".globl t_spin__alt_b\n"
	".type t_spin__alt_b, @function\n"
	"t_spin__alt_b:\n"
	"	lock incq t_spin_alt_calls(%rip)\n"
	"2:	dec %rdi\n"
	"	jnz 2b\n"
	"	ret\n"
	".size t_spin__alt_b, .-t_spin__alt_b\n");
void t_spin(long n);
void t_spin__alt_b(long n);
volatile long t_spin_alt_calls;

static void *spin_entry(void *arg)
{
	for (;;) {
		t_spin(64);
		sh->calls = (unsigned long)t_spin_alt_calls;
	}
	return NULL;
}

static void test_live_threads_inside(void **state)
{
	struct obs_symbolizer *s;
	struct act_request req;
	struct act_result res;
	unsigned retries = 0, busy = 0, applied = 0;
	int status = 0;
	pid_t pid;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(sh != MAP_FAILED);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		pthread_t t;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		pthread_create(&t, NULL, spin_entry, NULL);
		spin_entry(NULL);
	}
	assert_int_equal(obs_sym_new(NULL, &s), 0);
	fill(s, pid, "t_spin", "t_spin__alt_b", &req);
	obs_sym_free(s);
	assert_int_equal(req.patch.size, 10);
	for (int i = 0; i < 30; i++) {
		int r = act_apply(&req, &res);

		if (r == -EPERM && strstr(res.why, "cannot trace")) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			skip();
		}
		retries += res.patch_retries;
		if (r == -EBUSY) {
			assert_non_null(strstr(res.why, "was inside the bytes replaced (at +0x"));
			busy++;
			continue;
		}
		assert_int_equal(r, 0);
		assert_int_equal(res.patch_len, 7);
		applied++;
		usleep(2000);
		for (int t = 0; (r = act_revert(&res)) == -EBUSY && t < 100; t++) {
			retries += res.patch_retries;
			usleep(1000);
		}
		assert_int_equal(r, 0);
		retries += res.patch_retries;
	}
	/* alive, the bytes back, and the alternative ran */
	assert_int_equal(waitpid(pid, &status, WNOHANG), 0);
	assert_memory_equal((void *)(uintptr_t)req.patch.addr, res.patch_orig, 7);
	assert_true(applied > 0);
	assert_true(wait_value((volatile long *)&sh->calls, (long)sh->calls) && sh->calls > 0);
	print_message("threads inside the bytes at %u stops, %u of 30 applies gave up\n", retries,
		      busy);
	assert_true(retries > 0);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	munmap(sh, sizeof(*sh));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_prologue),
	    cmocka_unit_test(test_endbr64_first),
	    cmocka_unit_test(test_far_target),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_branch_to_entry),
	    cmocka_unit_test(test_layout),
	    cmocka_unit_test(test_hex),
	    cmocka_unit_test(test_validate),
	    cmocka_unit_test(test_spec_round_trip),
	    cmocka_unit_test(test_spec_intent_library),
	    cmocka_unit_test(test_live_child),
	    cmocka_unit_test(test_live_threads_inside),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
